"""scripts/bench_train.py times the trainer's own step (SingleStep / PackStep, built as the trainer builds them),
not TransformerLM.loss, and says truthfully what --compile means on the device."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

from grokking import step

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_train.py"


@pytest.mark.parametrize("members, engine", [(1, "SingleStep"), (2, "PackStep")])
def test_bench_train_times_the_trainers_step(members, engine, monkeypatch, capsys):
    calls = []
    original = getattr(step, engine).__call__

    def counted(self, batches, *args):
        calls.append(len(batches))
        return original(self, batches, *args)

    monkeypatch.setattr(getattr(step, engine), "__call__", counted)
    pack = ["--members", str(members)] if members > 1 else []
    monkeypatch.setattr(sys, "argv", ["bench_train.py", "--depths", "1", "--steps", "2", "--rounds", "1", *pack])
    runpy.run_path(str(SCRIPT), run_name="__main__")
    out = capsys.readouterr().out
    assert calls and set(calls) == {members}  # every timed step went through the trainer's engine
    assert f"grok={engine}" in out and "compile=no" in out and "padding-free loss" in out
