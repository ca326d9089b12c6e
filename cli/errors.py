"""Turn expected failures into one `grok: error: ...` line and an exit code, never a traceback."""

from __future__ import annotations

import argparse
import contextlib
import itertools
import re
import sys
from collections.abc import Iterator

from grokking.errors import GrokError


def fail(message: str, code: int = 2) -> None:
    print(f"grok: error: {message}", file=sys.stderr)
    raise SystemExit(code)


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes end like every other grok error: one `grok: error: ...` line, exit 2."""

    def error(self, message: str) -> None:
        fail(f"{message} ({self.prog} --help for usage)")


LEXER_ERROR = "LexerNoViableAltException: "
UNRECOGNISED = re.compile(r"token recognition error at: '(.+)'", re.DOTALL)


def unquoted_override(exc: BaseException) -> str | None:
    """Hydra's override grammar rejects characters outside its unquoted alphabet (non-ASCII letters, `;`, ...)
    with `LexerNoViableAltException: <override>`: name the override and the character, and show the quoting that
    works (`'tag="_éü日本"'`); None for any other exception."""
    for link in (exc, exc.__cause__):
        first = str(link).strip().splitlines()[0] if link is not None and str(link).strip() else ""
        if first.startswith(LEXER_ERROR):
            break
    else:
        return None
    override = first.removeprefix(LEXER_ERROR).strip()
    key, _, value = override.partition("=")
    found = UNRECOGNISED.search(str(link.__context__ or ""))
    char = found.group(1) if found else next((c for c in value if not c.isascii()), "")
    kind = "non-ASCII values" if any(not c.isascii() for c in value) else "values with such characters"
    where = f" at {char!r}" if char else ""
    return (f"cannot parse the override {override}{where}: {kind} need quotes, e.g. "
            f"'{key}=\"{value}\"' (Hydra's override grammar)")


def one_line(exc: BaseException) -> str:
    """The most specific line of an exception chain (Hydra/OmegaConf nest the useful part in __cause__)."""
    unquoted = unquoted_override(exc)
    if unquoted is not None:
        return unquoted
    deepest = exc
    while deepest.__cause__ is not None:
        deepest = deepest.__cause__
    text = str(deepest).strip() or str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    message = lines[0]
    if any(ln.startswith("Available options in") for ln in lines):  # Hydra: an unknown group option
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Available options in"))
        options = list(itertools.takewhile(lambda ln: ":" not in ln, lines[start + 1:]))
        message = f"{message}; choose one of {', '.join(options)}"
    full_key = next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("full_key:")), "")
    if full_key and full_key not in message:
        message = f"{full_key}: {message}"
    outer = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if outer and deepest is not exc and outer not in message:
        message = f"{outer.rstrip('.')}: {message}"
    return message


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Report GrokError, an OSError (a file that cannot be read or written: disk full, read-only, not a
    directory) and KeyboardInterrupt on one line; anything else is a bug and keeps its traceback."""
    try:
        yield
    except GrokError as exc:
        fail(str(exc), exc.exit_code)
    except OSError as exc:
        fail(f"{exc.filename or 'I/O'}: {exc.strerror or exc}", 1)
    except KeyboardInterrupt:
        fail("interrupted", 130)
