"""docs/architecture.md names files and functions (`path::name`): every one must exist, or the map misleads."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = re.compile(r"`([\w/]+\.(?:py|yaml))(?:::([\w.]+))?`")


def test_every_name_in_the_code_map_resolves():
    text = (ROOT / "docs" / "architecture.md").read_text()
    references = REFERENCE.findall(text)
    assert len(references) >= 30, len(references)
    for path, name in references:
        assert (ROOT / path).is_file(), path
        if not name:
            continue
        module = importlib.import_module(path.removesuffix(".py").replace("/", ".").removesuffix(".__init__"))
        target = module
        for part in name.split("."):
            assert hasattr(target, part), f"{path}::{name}"
            target = getattr(target, part)
