"""Shared fixtures: the reference data next to the repository (tests that need it skip when it is absent)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

# Tiny test models gain nothing from threads; on CI's 2 cores, parallel subprocesses (SLURM tasks) would only fight.
os.environ.setdefault("OMP_NUM_THREADS", "1")
GROK = shutil.which("grok") or str(Path(sys.executable).with_name("grok"))
REFERENCE_DATA = (Path(__file__).resolve().parents[1] / "../shared/reference-data").resolve()


def seeded_models(seeds, **shape) -> list:
    """One TransformerLM of `shape` (ModelShape's fields) per seed, each built right after torch.manual_seed(seed),
    as that seed's single run builds it."""
    from grokking.model import ModelShape, TransformerLM

    out = []
    for seed in seeds:
        torch.manual_seed(seed)
        out.append(TransformerLM(ModelShape(**shape)))
    return out


def mostly_padding_batches(seed: int, members: int, vocab_size: int, long: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One batch of 8 per member that is mostly padding, as a Dyck pack's are: short strings (3-12 tokens), and in
    the second member one of `long` tokens that sets the padded width of every member's batch; targets end in EOS (2)."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for member in range(members):
        lengths = torch.randint(3, 13, (8,), generator=generator).tolist()
        if member == 1:
            lengths[5] = long
        ids = torch.zeros(8, max(lengths), dtype=torch.long)
        targets = torch.full((8, max(lengths)), -100)
        for row, length in enumerate(lengths):
            ids[row, :length] = torch.randint(1, vocab_size, (length,), generator=generator)
            targets[row, : length - 1] = ids[row, 1:length]
            targets[row, length - 1] = 2
        out.append((ids, targets))
    return out


@pytest.fixture(scope="session")
def reference_data() -> Path:
    if not REFERENCE_DATA.is_dir():
        pytest.skip(f"reference data not found at {REFERENCE_DATA}")
    return REFERENCE_DATA


def run_grok(*args: str, cwd: Path, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real console script (as a user would), from `cwd`."""
    return subprocess.run([GROK, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def check_one_line_error(result: subprocess.CompletedProcess, text: str, code: int = 2) -> None:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grok: error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def grok():
    return run_grok


@pytest.fixture
def one_line_error():
    return check_one_line_error


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """One dataset cache for the whole session, so each CLI run does not regenerate the smoke data."""
    return tmp_path_factory.mktemp("data")


def wait_for_step(log_file: Path, step: int, process: subprocess.Popen, timeout: float = 120) -> None:
    """Block until a background run's JSON-lines log reaches `step` (fails if the run exits first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr else ""
            raise AssertionError(f"training exited early with {process.returncode}: {stderr}")
        lines = log_file.read_text().splitlines() if log_file.exists() else []
        if lines and json.loads(lines[-1]).get("step", 0) >= step:
            return
        time.sleep(0.05)
    raise AssertionError(f"{log_file} did not reach step {step} in {timeout}s")


# The CPU rehearsal of the gpu-marked tests (kept here: a second conftest.py in tests/gpu would shadow this module
# for `from conftest import ...`).
GPU_REHEARSAL = os.environ.get("GROK_GPU_REHEARSAL") == "1"
CUDA_UNAVAILABLE = re.compile(r"not compiled with CUDA|No CUDA GPUs|NVIDIA driver|CUDA is not available|"
                              r"CUDA driver initialization failed|cuda.*not available", re.IGNORECASE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The CPU rehearsal of the gpu-marked tests (`GROK_GPU_REHEARSAL=1`, set by `GPU_CHECK_REHEARSE=1 bash
    scripts/gpu_check.sh`): on a machine without CUDA every gpu test runs instead of being skipped, and one that
    stops at its first CUDA call (torch's "not compiled with CUDA" / "no CUDA GPUs", grok's "CUDA is not
    available") counts as xfailed -- it collected, composed its config and built its inputs, so on the GPU it
    reaches the device. Any other error fails as usual (e.g. a config that does not compose)."""
    outcome = yield
    report = outcome.get_result()
    if not GPU_REHEARSAL or call.when != "call" or call.excinfo is None or "gpu" not in item.keywords:
        return
    import torch

    if torch.cuda.is_available():
        return
    message = str(call.excinfo.value)
    if CUDA_UNAVAILABLE.search(message):
        report.outcome = "skipped"
        report.wasxfail = f"rehearsal: reached its first CUDA call ({message.splitlines()[0][:120]})"
