"""Every default is written once, in conf/: the schema (grokking/config.py) has types and no values, every option of
every config group composes to a config with every key set, and a key that no YAML sets is reported, not
defaulted."""

from __future__ import annotations

import dataclasses
import re
import shutil
import typing
from pathlib import Path

import pytest
import yaml
from omegaconf import MISSING, OmegaConf

from cli.compose import compose_config
from grokking import config, paperconfig
from grokking.config import CONFIG_DIR, GrokConfig, compose
from grokking.errors import ConfigError

CONF = Path(CONFIG_DIR)
GROUPS = [entry for entry in yaml.safe_load((CONF / "train.yaml").read_text())["defaults"] if isinstance(entry, dict)]
OPTIONS = [f"{group}={path.stem}" for entry in GROUPS for group in entry
           if not group.startswith(("optional", "override")) for path in sorted((CONF / group).glob("*.yaml"))]


def schema_fields(schema: type = GrokConfig, prefix: str = "") -> list[tuple[str, dataclasses.Field]]:
    """Every field of the schema and its sections, by its dotted key."""
    found, hints = [], typing.get_type_hints(schema)
    for field in dataclasses.fields(schema):
        found.append((f"{prefix}{field.name}", field))
        if dataclasses.is_dataclass(hints[field.name]):
            found += schema_fields(hints[field.name], f"{prefix}{field.name}.")
    return found


def test_no_schema_field_has_a_default():
    """A value belongs in conf/; a default in the schema would be a second copy that YAML silently overrides."""
    fields = schema_fields()
    assert {"task.n_train", "model.d_model", "diagnostics.n_per_split", "logger.mode", "depth"} <= {k for k, _ in fields}
    with_default = [key for key, field in fields if field.default not in (dataclasses.MISSING, MISSING)
                    or field.default_factory is not dataclasses.MISSING]
    assert with_default == []


@pytest.mark.parametrize("option", OPTIONS)
def test_every_option_sets_every_key(option):
    """Each option of each group composes with every schema key set (compose itself raises on a missing one)."""
    assert OmegaConf.missing_keys(compose([option])) == set()


def test_the_options_cover_every_group():
    assert {"task=qf", "task=ti", "task=dyck", "model=paper_literal", "diagnostics=off", "diagnostics=on",
            "logger=none", "logger=wandb", "optim=adamw", "paths=default", "experiment=smoke"} <= set(OPTIONS)


@pytest.fixture
def conf_copy(tmp_path, monkeypatch) -> Path:
    """A copy of conf/ that compose() reads instead of the real one."""
    copy = tmp_path / "conf"
    shutil.copytree(CONF, copy, ignore=shutil.ignore_patterns("local", "__pycache__"))
    monkeypatch.setattr(config, "CONFIG_DIR", str(copy))
    return copy


@pytest.mark.parametrize(("file", "line", "key"), [
    ("train.yaml", "  batch_size: 8 ", "train.batch_size"),
    ("task/ti.yaml", "n_val: 1000 ", "task.n_val"),
    ("diagnostics/on.yaml", "hist_bins: 201 ", "diagnostics.hist_bins"),
])
def test_a_key_missing_from_yaml_is_reported_on_one_line(conf_copy, monkeypatch, file, line, key):
    path = conf_copy / file
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not ln.startswith(line)]
    assert len(kept) == len(lines) - 1
    path.write_text("".join(kept))
    overrides = ["task=ti", "diagnostics=on"]
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: Missing mandatory value: ") as error:
        compose_config(overrides)
    assert "\n" not in str(error.value)
    monkeypatch.undo()  # the real conf/ sets it
    assert OmegaConf.select(compose_config(overrides), key) is not None


@pytest.mark.parametrize(("override", "message"), [
    ("dpeth=6", "Key 'dpeth' not in 'GrokConfig'"),
    ("model.d_modle=3", "Key 'd_modle' not in 'ModelConfig'"),
    ("depth=abc", "could not be converted to Integer"),
    ("~diagnostics", "Missing mandatory value"),
])
def test_typos_wrong_types_and_removed_groups_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        compose_config([override])
    assert "\n" not in str(error.value)


def test_the_help_lists_the_composed_defaults():
    """`grok train --help` names the top-level knobs with their values: they must be the composed ones."""
    template = yaml.safe_load((CONF / "train.yaml").read_text())["hydra"]["help"]["template"]
    knobs = re.findall(r"^(\w+)=(\S+)\s", template.split("== Top-level knobs ==")[1], flags=re.MULTILINE)
    cfg = compose([])
    assert len(knobs) >= 9
    for key, shown in knobs:
        value = cfg[key]
        assert shown == (str(value).lower() if isinstance(value, bool) else repr(value) if value == "" else str(value))


def test_the_paper_reference_ignores_per_machine_overrides(conf_copy, monkeypatch):
    (conf_copy / "local").mkdir()
    (conf_copy / "local" / "default.yaml").write_text("# @package _global_\nprecision: tf32\n")
    monkeypatch.setattr(paperconfig, "LOCAL", conf_copy / "local" / "default.yaml")
    paperconfig.paper_training_config.cache_clear()
    try:
        assert compose(["task=qf"]).precision == "tf32"
        assert paperconfig.paper_training_config("qf")["precision"] == "fp32"
    finally:
        paperconfig.paper_training_config.cache_clear()
