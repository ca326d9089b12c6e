"""scripts/gpu_wheels.sh's package lists cannot rot: every dependency in pyproject.toml is either in the device
image (IMAGE_HAS) or fetched as a wheel (MISSING), nothing else is fetched, and scripts/gpu_check.sh's pre-flight
imports every fetched package. With .whl/ built, every listed package has its wheel there."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INDIRECT = {"antlr4-python3-runtime"}  # hydra-core's and omegaconf's, pinned to 4.9.3 (built from its sdist)
IMAGE_EXTRAS = {"pytest", "pyyaml", "regex"}  # in the image, not grok's runtime dependencies
IMPORT_NAME = {"hydra-core": "hydra", "antlr4-python3-runtime": "antlr4", "pyyaml": "yaml",
               "hydra-submitit-launcher": "hydra_plugins.hydra_submitit_launcher"}


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def shell_list(name: str) -> set[str]:
    match = re.search(rf"^{name}=\(([^)]*)\)", (ROOT / "scripts/gpu_wheels.sh").read_text(), re.MULTILINE)
    assert match, f"{name}=(...) not found in scripts/gpu_wheels.sh"
    return {normal(n) for n in match.group(1).split()}


def dependencies() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {normal(re.split(r"[ <>=!~;\[]", d, maxsplit=1)[0]) for d in deps}


@pytest.mark.slow
def test_gpu_wheels_lists_every_dependency_once():
    image, missing, deps = shell_list("IMAGE_HAS"), shell_list("MISSING"), dependencies()
    assert not image & missing, image & missing
    assert deps <= image | missing, f"in pyproject.toml but in neither list: {sorted(deps - image - missing)}"
    assert missing <= deps | INDIRECT, f"fetched but not a dependency: {sorted(missing - deps - INDIRECT)}"
    assert image <= deps | IMAGE_EXTRAS, sorted(image - deps - IMAGE_EXTRAS)


@pytest.mark.slow
def test_gpu_check_preflight_imports_every_fetched_package():
    script = (ROOT / "scripts/gpu_check.sh").read_text()
    preflight = script[script.index("preflight() {"):]
    for name in shell_list("MISSING") | shell_list("IMAGE_HAS"):
        module = IMPORT_NAME.get(name, name.replace("-", "_"))
        assert f'"{module}"' in preflight, f"gpu_check.sh's pre-flight does not import {module} ({name})"


@pytest.mark.slow
@pytest.mark.parametrize("folder, tag", [(".whl", "cp312"), (".whl/py311", "cp311")])
def test_built_wheel_folders_hold_every_missing_package(folder, tag):
    wheels = list((ROOT / folder).glob("*.whl"))
    if not wheels:
        pytest.skip(f"{folder} not built (bash scripts/gpu_wheels.sh)")
    names = {normal(w.name.split("-")[0]) for w in wheels}
    assert shell_list("MISSING") | {"grok"} <= names, sorted(shell_list("MISSING") - names)
    assert not names & shell_list("IMAGE_HAS"), "the image's own packages must not be shadowed"
    for wheel in wheels:  # name-version(-build)-python-abi-platform.whl
        python, abi, platform = wheel.stem.split("-")[-3:]
        assert platform == "any" or ("x86_64" in platform and "linux" in platform), wheel.name
        pythons = python.split(".")
        assert abi in ("none", "abi3", tag) and (tag in pythons or "py3" in pythons or abi == "abi3"), wheel.name
