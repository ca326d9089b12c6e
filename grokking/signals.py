"""Signals during a training run: SIGTERM / SIGUSR2 (preemption; SLURM's warning) and SIGINT (Ctrl-C).

The handlers go in when `grok train` starts a single run (before it creates the run directory) and again at
the start of `train()`, which inherits a signal the command's own handlers caught (`train()` also runs without
the command, in a SLURM task started by submitit). A signal only sets a flag: start-up
checks it between its stages (`check_start_up()`: stop before training, with a truthful status.json) and the
loop at every step boundary, where it saves and stops. Raising from the handler instead could land in a
destructor or a `finally`, where Python prints and drops the exception. A second Ctrl-C aborts at once
(KeyboardInterrupt). Handlers that were there before ours (submitit's requeue handler among them) run after our
checkpoint and status are written (`chain()`).
"""

from __future__ import annotations

import signal
from typing import Any

from grokking.errors import GrokError

HANDLED = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT)


class Preempted(GrokError):
    """Stopped by a signal after saving (or during start-up, before training); re-running the command resumes.
    Exits 130 for Ctrl-C (the shell's convention), else 75 (EX_TEMPFAIL: try again)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 130 if signum == signal.SIGINT else 75


class TrainingSignals:
    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> TrainingSignals:
        for sig in HANDLED:
            self.previous[sig] = signal.signal(sig, self._handle)
        outer = self.outer()
        if outer is not None:
            self.signum = outer.signum  # caught before train() started: start-up stops at its first check
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def check_start_up(self) -> None:
        """Stop before training if a signal came during start-up."""
        if self.signum is not None:
            raise Preempted(f"{self.name} received during start-up, before any training step; re-run the same "
                            "command to resume", self.signum)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without saving

    def outer(self) -> TrainingSignals | None:
        """The TrainingSignals whose handlers ours replaced (the command's own), if any."""
        owner = getattr(self.previous.get(signal.SIGTERM), "__self__", None)
        return owner if isinstance(owner, TrainingSignals) else None

    def chain(self) -> None:
        """Run the handler ours replaced for the signal received (e.g. submitit's: requeue the job, then exit);
        the command's own handlers have nothing left to do."""
        handler = self.previous.get(self.signum)
        if self.signum != signal.SIGINT and callable(handler) and self.outer() is None:
            handler(self.signum, None)
