"""`hydra/launcher=slurm`: hydra-submitit-launcher's SLURM launcher, with a submission that cannot work ending on one
`grok: error:` line instead of a submitit traceback or a wait that never ends (grokking/slurm.py explains it):

* sbatch rejects the submission (e.g. `gpus_per_node: 1` on a cluster without GPUs): sbatch's own message and
  the likely fix. submitit echoes sbatch's stderr before raising; those lines are held back from stderr.
* the array is accepted but can never start (pending with reason PartitionConfig, or Resources while a task asks
  for more than any node has): it is cancelled and the line names the key to lower. To find its own jobs in
  squeue, the launcher adds `grok-launch:<id>` to the job's --comment.
"""

from __future__ import annotations

import _thread
import contextlib
import io
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import IO

from hydra.core.utils import JobReturn
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher

from cli.errors import fail
from grokking.slurm import PendingWatch, capacity, rejection_line


class WithoutSbatchLines(io.TextIOBase):
    """A text stream that passes every line on to `stream` except sbatch's own (`sbatch: ...`)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream, self.partial = stream, ""

    def write(self, text: str) -> int:
        *lines, self.partial = (self.partial + text).split("\n")
        for line in lines:
            if not line.startswith("sbatch: "):
                self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        if not self.partial.startswith("sbatch: "):
            self.stream.write(self.partial)
            self.partial = ""
        self.stream.flush()


@contextlib.contextmanager
def without_sbatch_lines() -> Iterator[None]:
    """stderr without sbatch's lines while the block runs."""
    held = WithoutSbatchLines(sys.stderr)
    try:
        with contextlib.redirect_stderr(held):
            yield
    finally:
        held.flush()


class GrokSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from submitit.core.utils import FailedJobError

        comment = self.params.get("comment")
        tag = f"grok-launch:{uuid.uuid4().hex[:12]}"
        self.params["comment"] = f"{comment} {tag}" if comment else tag
        watch = PendingWatch(tag, self.params, on_problem=_thread.interrupt_main)
        try:
            with watch, without_sbatch_lines():
                return super().launch(job_overrides, initial_job_idx)
        except KeyboardInterrupt:  # from the watch, or a real Ctrl-C
            if watch.problem is None:
                raise
            fail(watch.problem)
        except FailedJobError as exc:
            sbatch = exc.__cause__
            if not (isinstance(sbatch, subprocess.CalledProcessError) and sbatch.cmd[0] == "sbatch"):
                raise
            fail(rejection_line(sbatch.stderr or str(exc), self.params, capacity(self.params.get("partition"))))
        finally:
            self.params["comment"] = comment
