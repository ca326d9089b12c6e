"""`grok probe` on a real smoke run: offline probes match the training loop's, are idempotent, and fail on one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grokking.checkpoint import DIGEST_KEY

pytestmark = pytest.mark.slow  # every test needs the trained smoke run

RUN = Path("runs/qf-smoke/depth=2/seed=42")


def grok(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    command = [shutil.which("grok") or "", *args]
    if not command[0]:
        command = [sys.executable, "-c", "import sys; from cli.main import main; sys.exit(main())", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, text: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grok: error: ") and text in lines[0], result.stderr


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    """A 30-step smoke run with snapshots at 0 (init), 15 and 30 and online probes at step 30."""
    cwd = tmp_path_factory.mktemp("probe_cli")
    result = grok(cwd, "train", "experiment=smoke", "task.steps=30", "train.snapshot_every=15")
    assert result.returncode == 0, result.stderr[-2000:]
    return cwd


def test_offline_probes_match_training_and_are_idempotent(smoke_run):
    run_dir = smoke_run / RUN
    result = grok(smoke_run, "probe", str(RUN))
    assert result.returncode == 0, result.stderr
    assert "probed 3 of 3 snapshots" in result.stdout
    out = run_dir / "probes.jsonl"
    probed = records(out)
    assert [r["step"] for r in probed] == [0, 15, 30]
    for key in ("probe/weight_norm", "probe/weight_norm_per_layer", "probe/norm/layer1", "probe/attn_entropy",
                "probe/attn_sparsity", "probe/attn_entropy/layer0", "probe/tscore", "probe/tscore_exact",
                "probe/tparseval", "probe/tparseval_right_branching", "probe/attn_sparsity_sg"):
        assert all(isinstance(r[key], float) for r in probed), key
    online = next(r for r in records(run_dir / "metrics.jsonl") if r.get("step") == 30 and "probe/tscore" in r)
    for key, value in probed[2].items():
        if key.startswith("probe/"):
            assert value == pytest.approx(online[key], rel=1e-5, abs=1e-6), key

    before = out.read_bytes()
    again = grok(smoke_run, "probe", str(RUN))
    assert again.returncode == 0 and "already probed" in again.stdout
    assert out.read_bytes() == before

    out.write_text("".join(json.dumps(r) + "\n" for r in probed if r["step"] != 15))
    partial = grok(smoke_run, "probe", str(RUN))
    assert "probed 1 of 3 snapshots" in partial.stdout
    assert out.read_bytes() == before

    forced = grok(smoke_run, "probe", str(RUN), "--force", "--device", "cpu")
    assert "probed 3 of 3 snapshots" in forced.stdout
    assert out.read_bytes() == before


def test_missing_run_dir_and_missing_snapshots(smoke_run, tmp_path):
    assert_one_line_error(grok(smoke_run, "probe", "runs/nowhere"), "no run directory")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(smoke_run / RUN / "config.yaml", bare / "config.yaml")
    assert_one_line_error(grok(smoke_run, "probe", str(bare)), "has no snapshots")
    assert_one_line_error(grok(smoke_run, "probe", str(tmp_path)), "no config.yaml")


def test_corrupt_snapshots_are_moved_aside_and_skipped_and_unhashed_ones_probed(smoke_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(smoke_run / RUN, copy)
    (copy / "probes.jsonl").unlink(missing_ok=True)
    snapshots = copy / "ckpt" / "snapshots"
    tampered = torch.load(snapshots / "step_000000015.pt", weights_only=True)
    next(iter(tampered["model"].values())).view(-1)[0] += 1.0  # one weight changed, the stored hash kept
    torch.save(tampered, snapshots / "step_000000015.pt")
    legacy = torch.load(snapshots / "step_000000030.pt", weights_only=True)
    del legacy[DIGEST_KEY]  # as an older grok wrote it
    torch.save(legacy, snapshots / "step_000000030.pt")
    (copy / "ckpt" / "init.pt").write_bytes(b"not a checkpoint")

    result = grok(smoke_run, "probe", str(copy))
    assert result.returncode == 0, result.stderr
    assert "probed 1 of 3 snapshots (2 unusable, skipped)" in result.stdout
    warnings = result.stderr.strip().splitlines()
    assert len(warnings) == 3 and "Traceback" not in result.stderr, result.stderr
    assert warnings[0].startswith("skipping snapshot init.pt (unreadable: ") and "-> init.pt.corrupt-" in warnings[0]
    assert warnings[1].startswith("skipping snapshot step_000000015.pt (content hash mismatch) -> "
                                  "step_000000015.pt.corrupt-"), warnings[1]
    assert "1 snapshot(s) of" in warnings[2] and "written by an older grok, no content hash" in warnings[2]
    assert [r["step"] for r in records(copy / "probes.jsonl")] == [30]
    assert len(list(copy.rglob("*.corrupt-*"))) == 2

    again = grok(smoke_run, "probe", str(copy))
    assert again.returncode == 0 and "all 1 snapshots already probed" in again.stdout, again.stdout + again.stderr
