"""What every atheris target here checks (the Python twin of fuzz/cpp/typed_errors.h): the call
either succeeds or raises ValueError / TypeError (ConfigError and CheckpointError are ValueError
subclasses) whose message names what was wrong. Any other exception, or a typed one whose message
names none of the expected things (a bare UnicodeEncodeError is a ValueError that names nothing),
propagates: atheris stops and saves the input as a crash file."""
from __future__ import annotations

import os
import sys


class Untyped(AssertionError):
    """A typed exception whose message names nothing the caller gave."""


def expect_typed(fn, *names: str):
    """fn() or None when it raised a typed error whose message contains one of `names`."""
    try:
        return fn()
    except (ValueError, TypeError) as e:
        msg = str(e)
        if not msg or (names and not any(n in msg for n in names)):
            raise Untyped(f"{type(e).__name__} names none of {names}: {msg[:300]!r}") from e
        return None


def run(test_one_input, argv=None) -> None:
    """atheris.Setup + Fuzz with this script's arguments (libFuzzer flags and corpus folders)."""
    import atheris

    atheris.Setup(list(argv or sys.argv), test_one_input)
    atheris.Fuzz()


def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
