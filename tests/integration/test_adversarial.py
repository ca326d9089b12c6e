"""Adversarial input and faults: every bad input is one `grok: error:` line with its exit code and no traceback;
corrupt checkpoints are detected, moved aside and never rotated over a good one; write failures, malformed log
lines and signals during start-up leave a truthful status.json."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
import torch
from conftest import GROK, wait_for_step

from cli.main import main as grok_main
from grokking.checkpoint import DIGEST_KEY, FULL_KEYS, save_latest, verify
from grokking.runfiles import read_lines

FAST = ["task.steps=20", "task.eval_every=10", "train.save_every=10", "train.log_every=5", "probes.enabled=false"]

BAD_INPUT = [
    # grok train: every numeric knob, checked before anything is created
    (["train", "seed=-5"], "seed must be >= 0"),
    (["train", "data.seed=-1"], "data.seed must be >= 0"),
    (["train", "optim.betas=[2,0.5]"], "optim.betas must be two numbers in [0, 1)"),
    (["train", "optim.betas=[0.9]"], "optim.betas must be two numbers"),
    (["train", "optim.betas=[0.9,0.99,0.5]"], "optim.betas must be two numbers"),
    (["train", "optim.eps=-1"], "optim.eps must be positive"),
    (["train", "optim.eps=0"], "optim.eps must be positive"),
    (["train", "optim.lr=nan"], "optim.lr must be a finite number"),
    (["train", "optim.lr=inf"], "optim.lr must be a finite number"),
    (["train", "optim.lr=0"], "optim.lr must be positive"),
    (["train", "optim.weight_decay=-0.1"], "optim.weight_decay must be >= 0"),
    (["train", "optim.grad_clip=nan"], "optim.grad_clip must be a finite number"),
    (["train", "optim.warmup_steps=-1"], "optim.warmup_steps must be >= 0"),
    (["train", "optim.decay_horizon=5"], "optim.decay_horizon must exceed optim.warmup_steps"),
    (["train", "model.dropout=1.0"], "model.dropout must be in [0, 1)"),
    (["train", "model.attn_dropout=-0.1"], "model.attn_dropout must be in [0, 1)"),
    (["train", "model.n_heads=7"], "must be divisible by model.n_heads"),
    (["train", "model.max_len=0"], "model.max_len must be positive"),
    (["train", "train.batch_size=0"], "train.batch_size must be positive"),
    (["train", "train.log_every=0"], "train.log_every must be positive"),
    (["train", "train.snapshot_every=-1"], "train.snapshot_every must be >= 0"),
    (["train", "depth=-2"], "depth must be positive"),
    (["train", "precision=fp16"], "precision must be fp32, tf32 or bf16"),
    (["train", "resume=sometimes"], "resume must be auto, force or never"),
    (["train", "logger.mode=loud"], "logger.mode must be online, offline or disabled"),
    (["train", "diagnostics.log_ratio=1.0"], "diagnostics.log_ratio must be > 1"),
    (["train", "diagnostics.n_per_split=0"], "diagnostics.n_per_split must be positive"),
    (["train", "probes.sample_seed=-1"], "probes.sample_seed must be >= 0"),
    (["train", "task.n_val=0"], "task.n_val must be positive"),
    (["train", "seed=abc"], "could not be converted to Integer"),
    (["train", "model.d_modle=3"], "model.d_modle: Key 'd_modle' not in 'ModelConfig'"),
    (["train", "~logger"], "Missing mandatory value: logger"),  # no second default behind the YAML
    (["train", "seeds=[]"], "seeds must be a non-empty list of distinct seeds"),
    (["train", "seeds=[3,3]"], "seeds must be a non-empty list of distinct seeds"),
    (["train", "seeds=[1,2]", "seed=5"], "seed=5 is not a member of seeds=[1, 2]"),
    (["train", "eval.ema=[1.5]"], "eval.ema must be distinct decays in (0, 1)"),
    (["train", "-m", "+sweep=smoke", "--cfg", "job"], "--cfg shows one job's config: drop -m/+sweep="),
    (["train", "eval.ema=[0.99,0.99]"], "eval.ema must be distinct decays in (0, 1)"),
    (["train", "eval.ema=0.99"], "eval.ema: Invalid value assigned"),
    (["train", "pack=seeds"], "pack=seeds groups the seeds of a sweep"),
    (["train", "--cfg"], "--cfg needs a value"),
    (["train", "-m", "seed=range(0)"], "the sweep has no jobs"),
    (["train", "tag=_éü日本"], """non-ASCII values need quotes, e.g. 'tag="_éü日本"'"""),
    (["train", "tag=a;b"], """at ';': values with such characters need quotes, e.g. 'tag="a;b"'"""),
    (["train", "task.steps=1000000000000000000000"], "train.steps (task.steps) must be at most 10**9"),
    (["train", "task.steps=1e21"], "task.steps: Value '1e+21' of type 'float' could not be converted to Integer"),
    (["train", "task.steps=2.5"], "task.steps: Value '2.5' of type 'float' could not be converted to Integer"),
    (["train", "model.d_model=1000000", "model.d_ff=1000000"], "the run needs at least 192.0 TB of memory"),
    (["train", "-m", "depth=2,0"], "depth must be positive"),
    # grok data
    (["data", "data.seed=-3"], "data.seed must be >= 0"),
    (["data", "--bogus"], "grok data takes config overrides only"),
    # grok status
    (["status"], "the following arguments are required: dir"),
    (["status", ".", "--bogus"], "unrecognized arguments: --bogus"),
    (["status", "no/such/dir"], "no such directory"),
    (["status", ".", "--sweep", "nosuch"], "no sweep preset 'nosuch'"),
    (["status", ".", "seed=range(0)"], "the sweep has no jobs"),
    (["status", ".", "tag=_éü日本"], "non-ASCII values need quotes"),
    # grok probe
    (["probe"], "the following arguments are required: run_dir"),
    (["probe", ".", "--bogus"], "unrecognized arguments: --bogus"),
    (["probe", "no/such/run"], "no run directory"),
    (["probe", ".", "--device", "warp"], "unknown device 'warp'"),
    # grok sweep
    (["sweep"], "missing action"),
    (["sweep", "frobnicate"], "unknown action 'frobnicate'"),
    (["sweep", "emit"], "nothing to emit"),
    (["sweep", "emit", "nosuch"], "no sweep preset 'nosuch'"),
    (["sweep", "emit", "seed=range(0)"], "the sweep has no jobs"),
    (["sweep", "emit", "smoke", "depth=0"], "depth must be positive"),
    (["sweep", "emit", "smoke", "tag=_éü日本"], "non-ASCII values need quotes"),
    (["sweep", "emit", "--bogus"], "unrecognized arguments: --bogus"),
    # grok report / analyze / unknown subcommand
    (["report"], "the following arguments are required: dir"),
    (["report", "no/such/dir"], "no such directory"),
    (["report", ".", "--threshold", "2"], "--threshold must be in (0, 1]"),
    (["analyze"], "give one run directory"),
    (["frobnicate"], "unknown subcommand 'frobnicate'"),
]


def smoke_args(argv: list[str]) -> list[str]:
    """Config overrides get the tiny smoke experiment, so only the bad value can fail."""
    if argv[0] in ("train", "data") and not any(a.startswith("-") and a != "-m" for a in argv[1:]):
        return [argv[0], "experiment=smoke", *argv[1:]]
    return argv


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2_and_creates_nothing(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        code = grok_main(smoke_args(argv))
        raise SystemExit(code)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("grok: error: ") and message in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "runs").exists()


# -- helpers for the fault tests ---------------------------------------------------------------------------
def train_args(data_dir: Path, *extra: str) -> list[str]:
    return ["train", "experiment=smoke", f"data.dir={data_dir}", "run_dir=run", *FAST, *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir) -> Path:
    """A directory holding `run/`: the tiny run trained to step 20 (checkpoints at 10 and 20), made once."""
    root = tmp_path_factory.mktemp("finished")
    result = subprocess.run([GROK, *train_args(data_dir)], cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def copied(tmp_path, finished) -> Path:
    """A private copy of the finished run under tmp_path/run."""
    shutil.copytree(finished / "run", tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    return tmp_path / "run"


def flip_tensor_bytes(path: Path) -> None:
    """Invert 4 bytes in the middle of the largest tensor record of a torch zip checkpoint (its CRC is unchecked)."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = struct.unpack("<HH", handle.read(4))
        handle.seek(info.header_offset + 30 + name_len + extra_len + info.file_size // 2)
        where = handle.tell()
        flipped = bytes(b ^ 0xFF for b in handle.read(4))
        handle.seek(where)
        handle.write(flipped)


def step_of(path: Path) -> int:
    loaded = verify(path, FULL_KEYS)
    assert loaded.problem is None and not loaded.legacy, loaded.problem
    return loaded.state["step"]


def status_of(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def tmp_files(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*.tmp*")]


# -- checkpoint integrity ------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("damage", ["bit_flip", "truncated", "directory"])
def test_a_damaged_latest_is_moved_aside_and_the_fallback_survives_rotation(tmp_path, copied, grok, data_dir, damage):
    ckpt = copied / "ckpt"
    latest = ckpt / "latest.pt"
    assert torch.load(latest, weights_only=True)["step"] == 20
    if damage == "bit_flip":
        flip_tensor_bytes(latest)
        assert torch.load(latest, weights_only=True)["step"] == 20  # torch alone would load it silently
    elif damage == "truncated":
        latest.write_bytes(latest.read_bytes()[:1000])
    else:
        latest.unlink()
        latest.mkdir()
    result = grok(*train_args(data_dir, "task.steps=40"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    announced = [line for line in output.splitlines() if "latest.pt is corrupt" in line]
    assert len(announced) == 1 and "resuming from previous.pt (step 10)" in announced[0], output
    aside = list(ckpt.glob("latest.pt.corrupt-*"))
    assert len(aside) == 1 and aside[0].name in announced[0]
    # saves at 20 (nothing to demote), 30 (demotes the verified 20), 40: previous.pt is always a good file
    assert step_of(ckpt / "previous.pt") == 30 and step_of(latest) == 40
    assert status_of(tmp_path / "run")["status"] == "done"
    status = grok("status", "run", cwd=tmp_path)
    assert status.returncode == 0 and "1 corrupt checkpoint(s) moved aside: ckpt/latest.pt.corrupt-" in status.stdout


@pytest.mark.slow
def test_a_run_saved_before_content_hashes_resumes_with_one_warning(tmp_path, copied, grok, data_dir):
    ckpt = copied / "ckpt"
    for path in [ckpt / "latest.pt", ckpt / "previous.pt", *ckpt.glob("snapshots/*.pt")]:
        state = torch.load(path, weights_only=True)
        del state[DIGEST_KEY]
        torch.save(state, path)  # as an older grok wrote it
    result = grok(*train_args(data_dir, "task.steps=40"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    warned = [line for line in output.splitlines() if "no content hash" in line]
    assert len(warned) == 1 and "latest.pt was written by an older grok, no content hash; re-saved with one at the " \
                                "next save" in warned[0], output
    assert "from latest.pt at step 20" in output and "corrupt" not in output
    assert not list(ckpt.rglob("*.corrupt-*"))
    assert step_of(ckpt / "previous.pt") == 30 and step_of(ckpt / "latest.pt") == 40  # both hashed by now
    assert [r["step"] for r in read_lines(copied / "metrics.jsonl")[0]] == [0, 10, 20, 30, 40]


def test_rotation_never_demotes_a_corrupt_latest(tmp_path):
    good = {"model": {"w": torch.ones(3)}, "optimizer": {}, "step": 10, "rng": torch.zeros(2, dtype=torch.uint8)}
    save_latest(good, tmp_path)
    save_latest({**good, "step": 20}, tmp_path)
    flip_tensor_bytes(tmp_path / "latest.pt")
    save_latest({**good, "step": 30}, tmp_path)
    assert step_of(tmp_path / "previous.pt") == 10 and step_of(tmp_path / "latest.pt") == 30
    assert len(list(tmp_path.glob("latest.pt.corrupt-*"))) == 1
    assert not tmp_files(tmp_path)


@pytest.mark.slow
def test_a_full_disk_during_a_save_fails_on_one_line_with_a_failed_status_and_no_temp_files(tmp_path, data_dir,
                                                                                             monkeypatch):
    from cli.compose import compose_config
    from grokking import checkpoint
    from grokking.errors import WriteError
    from grokking.train import train

    real_save, calls = checkpoint.torch.save, {"n": 0}

    def disk_full(obj, handle):
        calls["n"] += 1
        if calls["n"] > 2:  # init.pt and the step-10 latest.pt go through
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_save(obj, handle)

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    cfg = compose_config(["experiment=smoke", f"data.dir={data_dir}", f"run_dir={tmp_path}/run", *FAST])
    with pytest.raises(WriteError, match=r"cannot write .*latest\.pt: No space left on device"):
        train(cfg)
    run = tmp_path / "run"
    status = status_of(run)
    assert status["status"] == "failed" and "No space left on device" in status["reason"]
    assert status["step"] == 10 and step_of(run / "ckpt" / "latest.pt") == 10
    assert not tmp_files(run)


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A real 2 MB filesystem (tmpfs) under tmp_path; skips where it cannot be mounted (not root, no mount)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True,
                             text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.slow
def test_a_really_full_disk_fails_on_one_line_with_a_failed_status_and_no_temp_files(tmp_path, small_disk, grok,
                                                                                      data_dir, one_line_error):
    # a snapshot every step fills 2 MB within ~20 steps, whatever write then comes first
    result = grok("train", "experiment=smoke", f"data.dir={data_dir}", f"run_dir={small_disk}/run", "task.steps=200",
                  "train.snapshot_every=1", "train.save_every=5", "probes.enabled=false", cwd=tmp_path)
    one_line_error(result, "No space left on device", code=1)
    assert f"cannot write {small_disk}/run/" in result.stderr
    run = small_disk / "run"
    status = status_of(run)
    assert status["status"] == "failed" and "No space left on device" in status["reason"]
    latest = run / "ckpt" / "latest.pt"
    assert status["step"] == (step_of(latest) if latest.exists() else 0)
    assert not tmp_files(run)


@contextlib.contextmanager
def read_only(directory: Path):
    """Make `directory` unwritable for this process: by permissions, or, for root (who ignores them), by a
    read-only bind mount of it onto itself. Skips where neither is possible."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield "Permission denied"
        finally:
            directory.chmod(0o755)
        return
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a directory read-only for root")
    bound = subprocess.run(["mount", "--bind", str(directory), str(directory)], capture_output=True, text=True)
    if bound.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bound.stderr.strip()}")
    try:
        remounted = subprocess.run(["mount", "-o", "remount,bind,ro", str(directory)], capture_output=True, text=True)
        if remounted.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {remounted.stderr.strip()}")
        yield "Read-only file system"
    finally:
        subprocess.run(["umount", str(directory)], check=True)


@pytest.mark.slow
def test_an_unwritable_checkpoint_directory_is_one_line(tmp_path, copied, grok, data_dir, one_line_error):
    ckpt = copied / "ckpt"
    before = {path: path.read_bytes() for path in ckpt.rglob("*") if path.is_file()}
    with read_only(ckpt) as os_error:
        with pytest.raises(OSError):
            (ckpt / "probe").write_text("")
        result = grok(*train_args(data_dir, "task.steps=40"), cwd=tmp_path)
    one_line_error(result, os_error, code=1)
    assert "cannot write run/ckpt/" in result.stderr
    status = status_of(tmp_path / "run")
    assert status["status"] == "failed" and os_error in status["reason"]
    assert status["step"] == step_of(ckpt / "latest.pt") == 20  # the last good checkpoint, untouched
    assert {path: path.read_bytes() for path in ckpt.rglob("*") if path.is_file()} == before


# -- run directory lifecycle ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_changed_config_resume_never_and_force_keep_every_old_file(tmp_path, copied, grok, data_dir, one_line_error):
    run = copied
    one_line_error(grok(*train_args(data_dir, "optim.lr=3e-4"), cwd=tmp_path), "different training config (optim.lr)")
    assert status_of(run)["status"] == "done"

    never = grok(*train_args(data_dir, "resume=never", "seed=3"), cwd=tmp_path)
    assert never.returncode == 0, never.stderr
    (archived,) = (run / "archive").iterdir()
    assert (archived / "ckpt" / "latest.pt").exists() and (archived / "metrics.jsonl").exists()
    assert "seed: 42" in (archived / "config.yaml").read_text() and "seed: 3" in (run / "config.yaml").read_text()

    forced = grok(*train_args(data_dir, "force=true"), cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert len(list((run / "archive").iterdir())) == 2
    new_log = (run / "train.log").read_text()
    assert "force=true: previous run files moved to" in new_log and "done at step 20" in new_log
    for old in (run / "archive").iterdir():
        assert "force=true" not in (old / "train.log").read_text()


# -- tolerant readers ----------------------------------------------------------------------------------------
MALFORMED = ['[1, 2, 3]', '{"step": "ten", "val/acc": 0.5}', 'not json', '{"step": 1.5}', '"text"']


@pytest.mark.slow
def test_malformed_log_lines_are_skipped_with_one_warning_by_resume_status_and_report(tmp_path, copied, grok,
                                                                                      data_dir):
    run = copied
    for name in ("metrics.jsonl", "train_log.jsonl"):
        with open(run / name, "a") as handle:
            handle.write("\n".join(MALFORMED) + "\n")
    records, problems = read_lines(run / "metrics.jsonl")
    assert len(problems) == len(MALFORMED) and all(isinstance(r["step"], int) for r in records)

    status = grok("status", "run", cwd=tmp_path)
    assert status.returncode == 0 and "Traceback" not in status.stderr
    assert "done" in status.stdout and len(status.stderr.strip().splitlines()) == 2  # one per file
    resumed = grok(*train_args(data_dir, "task.steps=30"), cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert [r["step"] for r in read_lines(run / "metrics.jsonl")[0]][-3:] == [10, 20, 30]
    assert read_lines(run / "metrics.jsonl")[1] == []  # resume rewrote the file without the bad lines
    report = grok("report", "run", cwd=tmp_path)
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr


# -- signals -------------------------------------------------------------------------------------------------
def start(tmp_path: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([GROK, *args], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 75), (signal.SIGINT, 130)])
def test_a_signal_during_start_up_exits_with_a_truthful_status_and_no_traceback(tmp_path, sig, code):
    # a fresh data directory: the data is generated (and checked) before the run directory exists; after the lock
    # start-up still builds the model, the evaluator and the init checkpoint before the first step
    process = start(tmp_path, ["train", "experiment=smoke", f"data.dir={tmp_path}/data", "run_dir=run", *FAST])
    deadline = time.monotonic() + 60
    while not (tmp_path / "run" / ".lock").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    time.sleep(0.05)
    process.send_signal(sig)
    assert process.wait(timeout=60) == code
    stderr = process.stderr.read()
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    status = status_of(tmp_path / "run")
    assert status["status"] == "preempted" and "during start-up" in status["reason"] and status["step"] == 0


@pytest.mark.slow
def test_a_signal_right_after_the_command_creates_the_run_directory_leaves_a_preempted_status(tmp_path, data_dir):
    # the command creates the run directory before Hydra starts and train() installs its own handlers
    process = start(tmp_path, ["train", "experiment=smoke", f"data.dir={data_dir}", "run_dir=run", *FAST])
    deadline = time.monotonic() + 60
    while not (tmp_path / "run").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.001)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 75
    stderr = process.stderr.read()
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    status = status_of(tmp_path / "run")
    assert status["status"] == "preempted" and "during start-up" in status["reason"] and status["step"] == 0


def test_a_signal_before_the_run_directory_exists_creates_nothing(tmp_path, monkeypatch, capsys, data_dir):
    from cli.train import launch
    from grokking.signals import TrainingSignals

    monkeypatch.chdir(tmp_path)
    signals = TrainingSignals()
    signals.signum = signal.SIGINT  # as the command's handler records a Ctrl-C during validation
    with pytest.raises(SystemExit) as exit_info:
        launch([], ["experiment=smoke", f"data.dir={data_dir}", "run_dir=run"], False, signals)
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.startswith("grok: error: SIGINT received during start-up")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_ctrl_c_saves_at_the_next_step_and_exits_130(tmp_path, data_dir):
    args = ["train", "experiment=smoke", f"data.dir={data_dir}", "run_dir=run", "task.steps=400",
            "train.save_every=1000", "train.log_every=5", "probes.enabled=false"]
    process = start(tmp_path, args)
    wait_for_step(tmp_path / "run" / "train_log.jsonl", 20, process)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 130
    stderr = process.stderr.read()
    assert "Traceback" not in stderr and stderr.strip().splitlines() == [line for line in stderr.strip().splitlines()
                                                                        if line.startswith("grok: error: SIGINT")]
    status = status_of(tmp_path / "run")
    assert status["status"] == "preempted" and "SIGINT received" in status["reason"]
    assert status["step"] == step_of(tmp_path / "run" / "ckpt" / "latest.pt") >= 20


# -- damaged run files and impossible runs (issue 20) ----------------------------------------------------------
NEW_BAD_INPUT = [  # through the real console script as well as in BAD_INPUT
    (["tag=_éü日本"], """grok: error: cannot parse the override tag=_éü日本 at 'é': non-ASCII values need quotes, """
                     """e.g. 'tag="_éü日本"'"""),
    (["task.steps=1000000000000000000000"], "train.steps (task.steps) must be at most 10**9 (1000000000), got "
                                            "1000000000000000000000"),
    (["model.d_model=1000000", "model.d_ff=1000000"], "the run needs at least 192.0 TB of memory (48.0 TB weights, "
                                                      "144.0 TB gradients and AdamW state"),
]


@pytest.mark.parametrize(("overrides", "message"), NEW_BAD_INPUT, ids=[" ".join(o) for o, _ in NEW_BAD_INPUT])
def test_unquoted_unicode_absurd_steps_and_a_model_too_big_for_memory_are_one_line(tmp_path, grok, data_dir,
                                                                                     one_line_error, overrides,
                                                                                     message):
    result = grok(*train_args(data_dir, *overrides), cwd=tmp_path)
    one_line_error(result, message)
    assert not (tmp_path / "run").exists()


def test_a_quoted_unicode_tag_is_accepted(tmp_path, grok):
    result = grok("sweep", "emit", "smoke", """tag="_éü日本\"""", cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "_éü日本" in result.stdout


def test_data_problems_are_refused_before_the_run_directory_exists(tmp_path, grok, data_dir, one_line_error):
    short = grok(*train_args(data_dir, "model.max_len=5"), cwd=tmp_path)
    one_line_error(short, "model.max_len (5) is shorter than the longest sequence")
    assert not (tmp_path / "run").exists()
    assert grok("data", "experiment=smoke", f"data.dir={data_dir}", f"export={tmp_path}/orig",
                cwd=tmp_path).returncode == 0
    (tmp_path / "orig" / "question.dev").write_text("")
    empty = grok(*train_args(data_dir, f"data.source={tmp_path}/orig", "run_dir=src"), cwd=tmp_path)
    one_line_error(empty, f"empty val split in data.source={tmp_path}/orig")
    (tmp_path / "orig" / "question.train").unlink()
    missing = grok(*train_args(data_dir, f"data.source={tmp_path}/orig", "run_dir=src"), cwd=tmp_path)
    one_line_error(missing, f"missing data file {tmp_path}/orig/question.train (data.source)")
    nowhere = grok(*train_args(data_dir, f"data.source={tmp_path}/none", "run_dir=src"), cwd=tmp_path)
    one_line_error(nowhere, f"data.source {tmp_path}/none is not a directory")
    assert not (tmp_path / "src").exists()


@pytest.mark.slow
@pytest.mark.parametrize("content", ["[1, 2]", '"hello"'])
def test_a_status_json_that_is_no_status_record_counts_as_missing(tmp_path, copied, grok, data_dir, content):
    (copied / "status.json").write_text(content + "\n")
    status = grok("status", "run", cwd=tmp_path)
    assert status.returncode == 0 and not status.stderr, status.stderr
    (row,) = [line for line in status.stdout.splitlines() if line.startswith(".")]
    assert " unknown " in row and "unreadable status.json (not a status record)" in row
    resumed = grok(*train_args(data_dir, "task.steps=30"), cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert "from latest.pt at step 20" in resumed.stdout + resumed.stderr  # the checkpoints decided
    assert status_of(copied)["status"] == "done" and status_of(copied)["step"] == 30


@pytest.mark.slow
def test_a_config_yaml_that_is_not_yaml_is_moved_aside_and_rewritten(tmp_path, copied, grok, data_dir,
                                                                     one_line_error):
    garbage = "task: [qf\n  depth: }\n"
    (copied / "config.yaml").write_text(garbage)
    probed = grok("probe", "run", cwd=tmp_path)
    one_line_error(probed, "run/config.yaml is not a valid config (not YAML: ")
    assert "restore it, or re-run the run's grok train command" in probed.stderr

    changed = grok(*train_args(data_dir, "task.steps=30", "optim.lr=3e-4"), cwd=tmp_path)
    one_line_error(changed, "holds a run with a different training config (config hash differs)")
    (aside,) = copied.glob("config.yaml.corrupt-*")
    assert aside.read_text() == garbage and not (copied / "config.yaml").exists()

    (copied / "config.yaml").write_text(garbage)
    resumed = grok(*train_args(data_dir, "task.steps=30"), cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    output = resumed.stdout + resumed.stderr
    warned = [line for line in output.splitlines() if "is not a valid config" in line]
    assert len(warned) == 1 and "run/config.yaml is not a valid config (not YAML: " in warned[0], output
    assert "moved aside to config.yaml.corrupt-" in warned[0] and "from latest.pt at step 20" in output
    assert sorted(p.read_text() for p in copied.glob("config.yaml.corrupt-*")) == [garbage, garbage]
    assert "steps: 30" in (copied / "config.yaml").read_text()
    assert status_of(copied)["status"] == "done" and status_of(copied)["step"] == 30
    assert grok("status", "run", cwd=tmp_path).stdout.count(" done ") == 1


@pytest.mark.slow
def test_a_refusal_names_every_changed_key(tmp_path, copied, grok, data_dir, one_line_error):
    changed = ["optim.lr=3e-4", "optim.eps=1e-8", "optim.weight_decay=0.1", "optim.grad_clip=2", "model.dropout=0.2",
               "model.attn_dropout=0.2", "optim.betas=[0.8,0.99]"]
    result = grok(*train_args(data_dir, *changed), cwd=tmp_path)
    one_line_error(result, "different training config (model.attn_dropout, model.dropout, optim.betas, optim.eps, "
                           "optim.grad_clip, optim.lr, optim.weight_decay); use resume=force")
    more = grok(*train_args(data_dir, *changed, "model.output_bias=false", "model.scale_embedding=false"),
                cwd=tmp_path)
    one_line_error(more, "optim.grad_clip, optim.lr, and 1 more); use resume=force")


@pytest.mark.slow
def test_stale_temporary_files_of_dead_processes_are_removed_at_start(tmp_path, copied, grok, data_dir):
    dead = [copied / "ckpt" / ".latest.pt.tmp999999999", copied / ".status.json.tmp999999998",
            copied / "ckpt" / "snapshots" / ".step_000000010.pt.tmp999999997"]
    alive = copied / "ckpt" / f".previous.pt.tmp{os.getpid()}"  # this test's process: a live writer
    for path in [*dead, alive]:
        path.write_bytes(b"")  # as a SIGKILL mid-save leaves them
    result = grok(*train_args(data_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any(path.exists() for path in dead) and alive.exists()
    assert "removed 3 stale temporary file(s) of killed processes" in result.stdout + result.stderr


# -- damaged diagnostics ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory, data_dir) -> Path:
    """A directory holding `run/`: the tiny run trained to step 20 with diagnostics=on, made once."""
    root = tmp_path_factory.mktemp("diagnosed")
    result = subprocess.run([GROK, *train_args(data_dir, "diagnostics=on", "diagnostics.n_per_split=15",
                                               "diagnostics.log_start=2")],
                            cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return root


def diagnosed_copy(diagnosed: Path, target: Path) -> Path:
    shutil.copytree(diagnosed / "run", target, ignore=shutil.ignore_patterns(".lock"))
    return target


@pytest.mark.slow
def test_a_truncated_diagnostics_array_is_one_line_for_analyze_and_skipped_by_report(tmp_path, diagnosed, grok,
                                                                                     one_line_error):
    bad = diagnosed_copy(diagnosed, tmp_path / "runs" / "bad")
    good = diagnosed_copy(diagnosed, tmp_path / "runs" / "good")
    array = bad / "diagnostics" / "surprisal.val.npy"
    array.write_bytes(array.read_bytes()[: array.stat().st_size // 2])
    one_line_error(grok("analyze", "runs/bad", cwd=tmp_path),
                   "runs/bad/diagnostics/surprisal.val.npy: truncated or corrupt (")

    report = grok("report", "runs", cwd=tmp_path)
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    warned = [line for line in report.stderr.splitlines() if "diagnostics skipped" in line]
    assert len(warned) == 1 and "runs/bad/diagnostics/surprisal.val.npy: truncated or corrupt" in warned[0]
    assert (tmp_path / "runs" / "report" / "diag_good_heatmap.png").exists()
    assert not (tmp_path / "runs" / "report" / "diag_bad_heatmap.png").exists()
    assert "diagnostics not analysed" in (tmp_path / "runs" / "report" / "report.md").read_text()

    analysed_then_damaged = grok("analyze", "runs/good", cwd=tmp_path)  # analysis files exist, the figures fail
    assert analysed_then_damaged.returncode == 0, analysed_then_damaged.stderr
    chunk = good / "diagnostics" / "param_hist.npy"
    chunk.write_bytes(chunk.read_bytes()[:40])
    again = grok("report", "runs", cwd=tmp_path)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr
    assert sum("diagnostics skipped" in line for line in again.stderr.splitlines()) == 2


@pytest.mark.slow
def test_garbage_in_positions_csv_is_skipped_at_the_end_and_one_line_in_the_middle(tmp_path, diagnosed, grok,
                                                                                    one_line_error):
    run = diagnosed_copy(diagnosed, tmp_path / "run")
    positions = run / "diagnostics" / "positions.csv"
    lines = positions.read_text().splitlines(keepends=True)
    positions.write_text("".join(lines) + "garbage,,line\n")
    tail = grok("analyze", "run", cwd=tmp_path)
    assert tail.returncode == 0 and "Traceback" not in tail.stderr, tail.stderr
    assert tail.stderr.strip().splitlines() == [
        f"grok: warning: run/diagnostics/positions.csv: skipped 1 malformed line(s) at the end (line "
        f"{len(lines) + 1}: 3 fields, not 11)"]
    positions.write_text("".join([*lines[:5], "garbage,,line\n", *lines[5:]]))
    one_line_error(grok("analyze", "run", cwd=tmp_path),
                   "run/diagnostics/positions.csv: line 6 is malformed (3 fields, not 11); copy it from another "
                   "seed's run")


@pytest.mark.slow
def test_analyze_names_the_missing_diagnostics_file(tmp_path, diagnosed, grok, one_line_error):
    run = diagnosed_copy(diagnosed, tmp_path / "run")
    (run / "diagnostics" / "evals.csv").unlink()
    one_line_error(grok("analyze", "run", cwd=tmp_path),
                   "run/diagnostics/evals.csv: missing (the index of the recorded evaluations)")
    shutil.rmtree(run / "diagnostics")
    one_line_error(grok("analyze", "run", cwd=tmp_path), "run has no diagnostics (train with diagnostics=on)")
