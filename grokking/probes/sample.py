"""The fixed probe sample (docs/metrics.md; docs/paper-vs-code.md #23), saved as `<run_dir>/probe_sample.json`.

Inputs per task: QF, the declarative of every training line whose marker is `quest` (without the final "." and
the marker; subject-RC sentences never qualify); TI, the sentence of every training line (without "." and the
marker); Dyck, every training string. Inputs longer than the model's position table (`[SOS] + words` over
`model.max_len`) are left out; only long Dyck strings can be. A seeded numpy draw without replacement keeps `sample_size` of them (all
if fewer), in training order. The file is written once and reused as is on every later call (resumes, offline
probing), so every probe of a run sees the same sentences.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from grokking.errors import RunDirError
from grokking.tasks import get_task

log = logging.getLogger(__name__)
SAMPLE_FILE = "probe_sample.json"


def probe_inputs(task: str, train, max_words: int) -> list[tuple[str, ...]]:
    """The candidate probe sentences (1 to `max_words` words) of a task's training split (a list of `Example`):
    what `Task.probe_input` takes from each example."""
    probe_input = get_task(task).probe_input
    candidates = (probe_input(example) for example in train)
    return [words for words in candidates if words is not None and 0 < len(words) <= max_words]


def draw_sample(inputs: list[tuple[str, ...]], size: int, seed: int) -> list[tuple[str, ...]]:
    if len(inputs) <= size:
        return list(inputs)
    chosen = np.sort(np.random.default_rng(seed).choice(len(inputs), size=size, replace=False))
    return [inputs[i] for i in chosen]


def load_or_create_sample(path: Path, task: str, train, size: int, seed: int,
                          max_words: int) -> list[tuple[str, ...]]:
    """The sample stored at `path`, or a new one drawn from `train` and written there atomically."""
    if path.exists():
        try:
            stored = json.loads(path.read_text())
            sentences = [tuple(words) for words in stored["sentences"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunDirError(f"probe sample {path} is unreadable ({exc}); delete it to draw a new one") from None
        if (stored.get("task"), stored.get("size"), stored.get("seed")) != (task, size, seed):
            log.warning("reusing probe sample %s (task=%s size=%s seed=%s), not the configured size=%d seed=%d",
                        path, stored.get("task"), stored.get("size"), stored.get("seed"), size, seed)
        return sentences
    sentences = draw_sample(probe_inputs(task, train, max_words), size, seed)
    record = {"task": task, "size": size, "seed": seed, "sentences": [list(words) for words in sentences]}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    return sentences
