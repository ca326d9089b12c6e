"""Seed packs survive any crash: a SIGKILL between two members' saves, a member's corrupt checkpoint, a member
directory deleted between runs or mid-run. The pack resumes from the latest step every member can restore
exactly, refuses on one line (changing nothing) when there is none, and exits non-zero when a member is left out.

The SIGKILL between saves uses the trainer's test-only switch GROK_TEST_KILL_AFTER_MEMBER_SAVE=SEED:STEP.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import GROK, check_one_line_error, wait_for_step

pytestmark = pytest.mark.slow

SEEDS = (42, 52, 62)
PACK = "seeds=[42,52,62]"
ARGS = ["deterministic=true", "model.dropout=0", "model.attn_dropout=0", "probes.enabled=false",
        "train.save_every=10", "train.log_every=5"]


def pack_args(data_dir: Path, *extra: str) -> list[str]:
    return ["train", "experiment=smoke", f"data.dir={data_dir}", PACK, *ARGS, *extra]


def grok(cwd: Path, args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([GROK, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def member(root: Path, seed: int) -> Path:
    return root / "runs" / "qf-smoke" / "depth=2" / f"seed={seed}"


def metrics(root: Path, seed: int) -> list[dict]:
    lines = (member(root, seed) / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "elapsed_s"} for line in lines]


def status(root: Path, seed: int) -> dict:
    return json.loads((member(root, seed) / "status.json").read_text())


def checkpoint_step(root: Path, seed: int, name: str = "latest.pt") -> int:
    return int(torch.load(member(root, seed) / "ckpt" / name, weights_only=True)["step"])


def kill_after_save(seed: int, step: int) -> dict:
    return {**os.environ, "GROK_TEST_KILL_AFTER_MEMBER_SAVE": f"{seed}:{step}"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir) -> Path:
    """The uninterrupted pack."""
    root = tmp_path_factory.mktemp("reference")
    result = grok(root, pack_args(data_dir))
    assert result.returncode == 0, result.stderr
    return root


def assert_as_uninterrupted(root: Path, reference: Path, exact: bool = True) -> None:
    """Every member's metrics are the uninterrupted pack's: identical, or (a member that trained alone for a while:
    its evaluation is a single run's, ~1e-7 relative from a pack member's on the CPU) with the losses to 1e-6."""
    for seed in SEEDS:
        ours, theirs = metrics(root, seed), metrics(reference, seed)
        if exact:
            assert ours == theirs, seed
        else:
            assert [r.keys() for r in ours] == [r.keys() for r in theirs]
            for mine, expected in zip(ours, theirs, strict=True):
                for key, value in expected.items():
                    assert mine[key] == (value if "acc" in key or key == "step" else pytest.approx(value, rel=1e-6)), key
        assert status(root, seed)["status"] == "done" and status(root, seed)["step"] == 60


def test_a_sigkill_between_two_members_saves_resumes_at_their_common_step(tmp_path, data_dir, reference):
    killed = grok(tmp_path, pack_args(data_dir), env=kill_after_save(42, 20))
    assert killed.returncode == -signal.SIGKILL
    assert [checkpoint_step(tmp_path, s) for s in SEEDS] == [20, 10, 10]
    assert [status(tmp_path, s)["step"] for s in SEEDS] == [20, 10, 10]  # status.json names the checkpoint's step
    resumed = grok(tmp_path, pack_args(data_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "seed 42: latest.pt is at step 20, ahead of the pack; it resumes from previous.pt at step 10" in (
        resumed.stdout + resumed.stderr)
    assert_as_uninterrupted(tmp_path, reference)


def test_one_members_corrupt_checkpoint_resumes_the_pack_from_the_previous_step(tmp_path, data_dir, reference):
    assert grok(tmp_path, pack_args(data_dir, "task.steps=30")).returncode == 0
    latest = member(tmp_path, 52) / "ckpt" / "latest.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the content hash catches it
    latest.write_bytes(bytes(data))
    resumed = grok(tmp_path, pack_args(data_dir))
    assert resumed.returncode == 0, resumed.stderr
    assert "resumes from previous.pt at step 20" in resumed.stdout + resumed.stderr
    assert list((member(tmp_path, 52) / "ckpt").glob("latest.pt.corrupt-*"))
    assert_as_uninterrupted(tmp_path, reference)


def test_a_member_deleted_between_runs_is_refused_on_one_line_and_changes_nothing(tmp_path, data_dir, reference):
    assert grok(tmp_path, pack_args(data_dir, "task.steps=30")).returncode == 0
    shutil.rmtree(member(tmp_path, 62))
    before = {s: (member(tmp_path, s) / "status.json").read_text() for s in (42, 52)}
    refused = grok(tmp_path, pack_args(data_dir))
    check_one_line_error(refused, "share no checkpoint step (seed 42: 30, 20; seed 52: 30, 20; seed 62: none)")
    assert "train seed 62 alone to step 30" in refused.stderr and "seed=SEED task.steps=30" in refused.stderr
    assert {s: (member(tmp_path, s) / "status.json").read_text() for s in (42, 52)} == before
    assert not member(tmp_path, 62).exists()  # no empty directory left behind
    # the fix the line names: the member alone to the others' step, then the pack
    alone = grok(tmp_path, ["train", "experiment=smoke", f"data.dir={data_dir}", *ARGS, "seed=62", "task.steps=30"])
    assert alone.returncode == 0, alone.stderr
    assert grok(tmp_path, pack_args(data_dir)).returncode == 0
    assert_as_uninterrupted(tmp_path, reference, exact=False)


def test_a_missing_first_member_leaves_no_directory_either(tmp_path, data_dir):
    """The first member's directory is the one `grok train` creates before Hydra runs: a refusal removes it too."""
    assert grok(tmp_path, pack_args(data_dir, "task.steps=10")).returncode == 0
    shutil.rmtree(member(tmp_path, 42))
    refused = grok(tmp_path, pack_args(data_dir, "task.steps=20"))
    check_one_line_error(refused, "seed 42: none")
    assert not member(tmp_path, 42).exists()


def test_a_member_deleted_mid_run_leaves_the_pack_and_the_others_finish(tmp_path, data_dir):
    args = pack_args(data_dir, "task.steps=300")
    process = subprocess.Popen([GROK, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    wait_for_step(member(tmp_path, 62) / "train_log.jsonl", 40, process)
    process.send_signal(signal.SIGSTOP)  # deleted between two of its writes (a deletion racing a write is a write error)
    shutil.rmtree(member(tmp_path, 62))
    process.send_signal(signal.SIGCONT)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 1, stderr
    assert "1 of 3 members of the seed pack did not finish: seed 62: its run directory" in stderr
    for seed in (42, 52):
        assert status(tmp_path, seed) == {**status(tmp_path, seed), "status": "done", "step": 300}
        assert checkpoint_step(tmp_path, seed) == 300
    again = grok(tmp_path, args)  # the survivors are done; the deleted member trains alone, from scratch
    assert again.returncode == 0, again.stderr
    assert status(tmp_path, 62)["status"] == "done" and (again.stdout + again.stderr).count("already done") == 2


def test_a_pack_that_trains_nothing_exits_non_zero(tmp_path, data_dir):
    assert grok(tmp_path, pack_args(data_dir, "task.steps=10")).returncode == 0
    for seed in SEEDS:
        path = member(tmp_path, seed) / "status.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "status": "failed", "reason": "test"}))
    result = grok(tmp_path, pack_args(data_dir, "task.steps=20"))
    check_one_line_error(result, "nothing trained: every member of the seed pack failed earlier", code=1)


def test_status_names_the_checkpoints_step_while_running_and_after_a_sigkill(tmp_path, data_dir):
    process = subprocess.Popen([GROK, *pack_args(data_dir, "task.steps=3000")], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_step(member(tmp_path, 62) / "train_log.jsonl", 45, process)
    running = status(tmp_path, 42)
    assert running["status"] == "running" and running["step"] >= 40
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    for seed in SEEDS:
        assert status(tmp_path, seed)["step"] == checkpoint_step(tmp_path, seed)


def test_a_pack_sigkilled_at_five_points_ends_as_the_uninterrupted_pack(tmp_path, data_dir, reference):
    rng = random.Random(3)
    args = pack_args(data_dir)

    def kill_at_random_after(step: int) -> None:
        process = subprocess.Popen([GROK, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_step(member(tmp_path, 42) / "train_log.jsonl", step + rng.randrange(0, 5), process)
        time.sleep(rng.random() * 0.2)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)

    # two kills between members' saves (each before the pack got there), three at random moments in between
    assert grok(tmp_path, args, env=kill_after_save(52, 20)).returncode == -signal.SIGKILL
    kill_at_random_after(25)
    assert grok(tmp_path, args, env=kill_after_save(62, 40)).returncode == -signal.SIGKILL
    kill_at_random_after(42)
    kill_at_random_after(50)
    final = grok(tmp_path, args)
    assert final.returncode == 0, final.stderr
    assert_as_uninterrupted(tmp_path, reference)
