"""Checks of the arguments the native targets are built with: the library path, the display
name, the capabilities and the timeouts. Each raises TypeError or ValueError with a message
naming the argument, at construction, so that a bad value never surfaces later as a target
error."""

from __future__ import annotations

import math
import os
from typing import Any

#: The longest a call may be allowed to take, in seconds (one day).
MAX_TIMEOUT = 86_400.0


def check_path(path: object) -> str:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"the library path must be a str or os.PathLike, not {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise ValueError(f"the library path must be a non-empty text path, not {path!r}")
    return text


def check_name(name: object) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {name!r}")
    return name


def check_capabilities(capabilities: object) -> frozenset[str]:
    if isinstance(capabilities, frozenset | set | list | tuple):
        items: frozenset[Any] = frozenset(capabilities)
        if all(isinstance(c, str) for c in items):
            return items
    raise TypeError(f"capabilities must be a set of str, not {capabilities!r}")


def check_guard(guard: object) -> bool:
    """``guard`` as a bool: None is "where the platform allows" (Linux on x86-64 or AArch64);
    True where it does not is a ValueError."""
    from .guard import GUARD_AVAILABLE

    if guard is None:
        return GUARD_AVAILABLE
    if not isinstance(guard, bool):
        raise TypeError(f"guard must be True, False or None, not {guard!r}")
    if guard and not GUARD_AVAILABLE:
        raise ValueError("guard pages need Linux on x86-64 or AArch64; run with --no-guard")
    return guard


def check_seconds(name: str, value: object) -> float:
    """``value`` as seconds: a finite number in (0, :data:`MAX_TIMEOUT`]; TypeError or
    ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT:
        raise ValueError(
            f"{name} must be a finite number of seconds above 0 and at most {MAX_TIMEOUT:g}, "
            f"not {value!r}"
        )
    return seconds
