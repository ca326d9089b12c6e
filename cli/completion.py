"""`grok completion bash`: tab completion for bash.

    source <(grok completion bash)                          # this shell (put it in ~/.bashrc to keep it)
    grok completion bash > ~/.local/share/bash-completion/completions/grok   # loaded on demand (bash-completion)

It completes subcommands (`grok tr<TAB>`); for `grok train` and `grok data`, config groups and their options from
conf/ (`task=<TAB>` -> qf ti dyck, `+sweep=`, `hydra/launcher=`), the schema's config keys (`dep<TAB>` -> depth=,
`task.st<TAB>` -> task.steps=), true/false for switches and Hydra's flags; sweep presets after `grok status --sweep`
and `grok sweep emit`. Anything else (run directories) completes as file names. The script asks
`grok completion complete LINE` for the candidates, so they always match the installed configs.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import yaml

from cli.errors import fail
from cli.main import SUBCOMMANDS
from grokking.config import CONFIG_DIR, GrokConfig

CONFIG_TREE = Path(CONFIG_DIR)
PRIMARY_CONFIG = CONFIG_TREE / "train.yaml"
PRIVATE_GROUPS = ("local",)  # git-ignored per-machine overrides, applied automatically
HYDRA_OPTIONS = {"hydra/launcher": ("basic",)}  # Hydra's own default launcher (no file in conf/)
OVERRIDE_SUBCOMMANDS = ("train", "data")
TRAIN_FLAGS = ("-m", "--multirun", "--cfg", "--help", "--version")
CFG_VALUES = ("job", "hydra", "all")

BASH_SCRIPT = r"""# bash completion for grok: source <(grok completion bash)
_grok_complete() {
    local line="${COMP_LINE:0:COMP_POINT}"
    local IFS=$'\n'
    local -a found=($("${COMP_WORDS[0]}" completion complete "$line" 2>/dev/null))
    # bash splits the word at = and :, so reply with what follows the last of them in the word
    local word="${line##*[[:space:]]}"
    local head="${word%"${word##*[=:]}"}"
    COMPREPLY=("${found[@]#"$head"}")
    local candidate
    for candidate in "${COMPREPLY[@]}"; do
        [[ $candidate == *[=.] ]] && compopt -o nospace
    done
}
complete -o default -F _grok_complete grok
"""


def groups() -> dict[str, list[str]]:
    """`group=` (`+group=` for groups outside the primary config's defaults) -> its options, from conf/."""
    defaults = yaml.safe_load(PRIMARY_CONFIG.read_text())["defaults"]
    in_defaults = {key.split()[-1] for entry in defaults if isinstance(entry, dict) for key in entry}
    found = {}
    for directory in sorted(p for p in CONFIG_TREE.rglob("*") if p.is_dir()):
        name = directory.relative_to(CONFIG_TREE).as_posix()
        options = sorted(p.stem for p in directory.glob("*.yaml"))
        if options and name.split("/")[0] not in PRIVATE_GROUPS:
            prefix = "" if name in in_defaults or name.startswith("hydra/") else "+"
            found[f"{prefix}{name}"] = sorted([*options, *HYDRA_OPTIONS.get(name, ())])
    return found


def config_keys(schema: type = GrokConfig, prefix: str = "") -> dict[str, type]:
    """Every key of the schema (`depth`, `task.steps`, ...) -> its type; nested sections as `task.` -> dict."""
    keys: dict[str, type] = {}
    for name, hint in typing.get_type_hints(schema).items():
        if dataclasses.is_dataclass(hint):
            keys[f"{prefix}{name}."] = dict
            keys |= config_keys(hint, f"{prefix}{name}.")
        else:
            keys[f"{prefix}{name}"] = hint
    return keys


def override_candidates(previous: str, current: str, flags: tuple[str, ...]) -> list[str]:
    """Completions of one override (or flag) of `grok train` / `grok data`."""
    if previous == "--cfg":
        return list(CFG_VALUES)
    if current.startswith("-"):
        return list(flags)
    options = groups()
    if "=" in current:
        key = current.split("=", 1)[0]
        if key in options:
            return [f"{key}={option}" for option in options[key]]
        return [f"{key}=true", f"{key}=false"] if config_keys().get(key.lstrip("+~")) is bool else []
    parent = current.rpartition(".")[0]  # complete one level at a time: `task.` first, then `task.steps=`
    keys = [key if kind is dict else f"{key}=" for key, kind in config_keys().items()
            if key.rstrip(".").rpartition(".")[0] == parent]
    return [f"{group}=" for group in options] * (not parent) + keys


def candidates(line: str) -> list[str]:
    """Completions of the last word of a command line that starts with `grok` (the word may be empty)."""
    words = line.split()
    current = "" if not words or line[-1:].isspace() else words.pop()
    words = words[1:]  # the program
    if not words:
        found = [*SUBCOMMANDS, "--help", "--version"]
    elif words[0] in OVERRIDE_SUBCOMMANDS:
        found = override_candidates(words[-1], current, TRAIN_FLAGS if words[0] == "train" else ())
    elif words[-1] == "--sweep":
        found = groups()["+sweep"]
    elif words[0] == "sweep":  # grok sweep emit [PRESET] OVERRIDE...
        presets = groups()["+sweep"] if len(words) == 2 and not current.startswith("-") else []
        found = ["emit"] if len(words) == 1 else presets + override_candidates(words[-1], current, ("--out",))
    elif words[0] == "completion" and len(words) == 1:
        found = ["bash"]
    else:
        found = []  # run directories and the like: the shell completes file names
    return [c for c in found if c.startswith(current)]


def run(argv: list[str]) -> int:
    if argv == ["bash"]:
        print(BASH_SCRIPT, end="")
    elif argv[:1] == ["complete"] and len(argv) == 2:
        print("\n".join(candidates(argv[1])))
    elif argv in ([], ["-h"], ["--help"]):
        print(__doc__)
    else:
        fail(f"unknown shell {' '.join(argv)!r}; only bash is supported: source <(grok completion bash)")
    return 0
