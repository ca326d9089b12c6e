"""Signals during a training run: SIGTERM / SIGUSR2 (preemption; SLURM's warning) and SIGINT (Ctrl-C).

The handlers go in at the start of `train()`, before anything is written. A signal only sets a flag: start-up
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

    def chain(self) -> None:
        """Run the handler ours replaced for the signal received (e.g. submitit's: requeue the job, then exit)."""
        handler = self.previous.get(self.signum)
        if self.signum != signal.SIGINT and callable(handler):
            handler(self.signum, None)
