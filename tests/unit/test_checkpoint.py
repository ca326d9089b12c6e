"""Checkpoint verification on hand-made files: hashed, legacy (written before content hashes) and bad ones."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from grokking.checkpoint import DIGEST_KEY, FULL_KEYS, load_resume_state, save_latest, verify

STATE = {"model": {"w": torch.arange(3.0)}, "optimizer": {}, "step": 10, "rng": torch.zeros(2, dtype=torch.uint8)}
LEGACY_LINE = "written by an older grok, no content hash; re-saved with one at the next save"


def save_legacy(state: dict, path: Path) -> None:
    """What grok wrote before checkpoints carried a content hash."""
    torch.save(state, path)


def test_a_saved_checkpoint_verifies_with_its_hash(tmp_path: Path):
    save_latest(STATE, tmp_path)
    loaded = verify(tmp_path / "latest.pt", FULL_KEYS)
    assert loaded.problem is None and not loaded.legacy and loaded.state["step"] == 10
    assert DIGEST_KEY not in loaded.state and DIGEST_KEY in torch.load(tmp_path / "latest.pt", weights_only=True)


def test_a_legacy_checkpoint_resumes_with_one_warning_and_the_next_save_hashes_it(tmp_path: Path, caplog):
    save_legacy(STATE, tmp_path / "latest.pt")
    with caplog.at_level(logging.WARNING):
        state, source = load_resume_state(tmp_path)
        save_latest({**STATE, "step": 20}, tmp_path)  # demotes the legacy file: it loads and is complete
    assert source == "latest.pt" and state["step"] == 10
    assert [r.getMessage() for r in caplog.records] == [f"latest.pt was {LEGACY_LINE}"]
    assert not list(tmp_path.glob("*.corrupt-*"))
    latest, previous = verify(tmp_path / "latest.pt", FULL_KEYS), verify(tmp_path / "previous.pt", FULL_KEYS)
    assert latest.state["step"] == 20 and not latest.legacy
    assert previous.state["step"] == 10 and previous.legacy


def test_a_legacy_checkpoint_missing_a_key_is_moved_aside_and_never_rotated(tmp_path: Path):
    save_latest(STATE, tmp_path)
    save_legacy({k: v for k, v in STATE.items() if k != "optimizer"}, tmp_path / "latest.pt")
    assert verify(tmp_path / "latest.pt", FULL_KEYS).problem == "incomplete (no optimizer)"
    save_latest({**STATE, "step": 30}, tmp_path)
    assert not (tmp_path / "previous.pt").exists()  # the incomplete file was not demoted
    assert len(list(tmp_path.glob("latest.pt.corrupt-*"))) == 1
    assert verify(tmp_path / "latest.pt", FULL_KEYS).state["step"] == 30


def test_a_hash_mismatch_is_still_corrupt(tmp_path: Path, caplog):
    save_latest(STATE, tmp_path)
    save_latest({**STATE, "step": 20}, tmp_path)
    tampered = torch.load(tmp_path / "latest.pt", weights_only=True)
    tampered["step"] = 21  # the hash no longer matches the content
    torch.save(tampered, tmp_path / "latest.pt")
    assert verify(tmp_path / "latest.pt", FULL_KEYS).problem == "content hash mismatch"
    with caplog.at_level(logging.WARNING):
        state, source = load_resume_state(tmp_path)
    assert source == "previous.pt" and state["step"] == 10
    assert len(caplog.records) == 1 and "latest.pt is corrupt; resuming from previous.pt" in caplog.text
    assert len(list(tmp_path.glob("latest.pt.corrupt-*"))) == 1
