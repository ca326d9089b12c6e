"""scripts/gpu_check.sh fails loudly: a missing or stale wheel folder ends it at install / pre-flight with exit 1
and one line, and results.json records every step's status. (The full CPU rehearsal,
`GPU_CHECK_REHEARSE=1 bash scripts/gpu_check.sh`, takes minutes; these reuse this venv as the "image".)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def gpu_check(tmp_path: Path, wheels: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPU_CHECK_REHEARSE": "1", "GPU_CHECK_IMAGE": sys.executable,
           "GPU_CHECK_WHEELS": str(wheels), "GPU_CHECK_WORK": str(tmp_path / "work"), "OUT": str(tmp_path / "out")}
    return subprocess.run(["bash", str(ROOT / "scripts/gpu_check.sh")], capture_output=True, text=True, env=env,
                          timeout=300)


def steps(tmp_path: Path) -> dict[str, str]:
    results = json.loads((tmp_path / "out/results.json").read_text())
    return {s["step"]: s["status"] for s in results["steps"]}


@pytest.mark.slow
def test_an_empty_wheel_folder_ends_the_check_at_install_with_one_line(tmp_path):
    (tmp_path / "wheels").mkdir()
    result = gpu_check(tmp_path, tmp_path / "wheels")
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("gpu_check: install from") and "scripts/gpu_wheels.sh" in last, result.stdout
    assert steps(tmp_path) == {"install": "failed"}
    assert len(list((tmp_path / "out").iterdir())) <= 8


@pytest.mark.slow
def test_a_wheel_that_is_not_the_working_tree_fails_the_preflight_with_one_line(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    info = "grok-0.0.0.dist-info"
    with zipfile.ZipFile(wheels / "grok-0.0.0-py3-none-any.whl", "w") as wheel:  # installs, holds no code
        wheel.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: grok\nVersion: 0.0.0\n")
        wheel.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{info}/RECORD", "")
    result = gpu_check(tmp_path, wheels)
    assert result.returncode == 1, result.stdout + result.stderr
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("gpu_check: preflight: the grok wheel in .whl/ is not this working tree"), result.stdout
    assert steps(tmp_path) == {"install": "ok", "preflight": "failed"}
