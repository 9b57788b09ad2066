"""The same command tests the same sequences, whatever else is importable.

Hypothesis draws a few of its values (about one in twenty) from constants it collects in the
*local* modules loaded in the process: every loaded ``.py`` file outside site-packages. Which
modules those are depends on the install (an editable install makes vmbspec itself local), on
what the user's process imported (a pytest run imports every test module), and on when the
collection first ran. So one seed could generate different sequences on two machines, and a
failure found on one might not be generated on the other.

:func:`fixed_generation` removes that input for the duration of a run: Hypothesis sees no
local constants (its global ones, part of the pinned Hypothesis version, stay), and its cache
of constants is emptied before and after so nothing leaks in from earlier runs. What is left to
decide the sequences is the vmbspec version, the pinned Hypothesis version, the target's
answers, the profile, the example count and the seed.

It reaches into Hypothesis internals (``hypothesis.internal.conjecture.providers``); the
Hypothesis version is pinned in ``pyproject.toml`` for that reason, and
:data:`REPRODUCIBLE` says whether the hook could be installed (a test fails if not).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_providers: Any
try:
    from hypothesis.internal.conjecture import providers as _providers_module

    _providers = _providers_module
    _EMPTY: Any = _providers.Constants(
        integers=_providers.SortedSet(),
        floats=_providers.SortedSet(key=_providers.float_to_int),
        bytes=_providers.SortedSet(),
        strings=_providers.SortedSet(),
    )
    REPRODUCIBLE = callable(getattr(_providers, "_get_local_constants", None)) and hasattr(
        getattr(_providers, "CONSTANTS_CACHE", None), "cache"
    )
except (ImportError, AttributeError, TypeError):  # pragma: no cover - another Hypothesis
    _providers = None
    _EMPTY = None
    REPRODUCIBLE = False


def _no_local_constants() -> Any:
    return _EMPTY


@contextlib.contextmanager
def fixed_generation() -> Iterator[bool]:
    """Run the body with Hypothesis's local constants switched off; yields whether that
    could be done (:data:`REPRODUCIBLE`)."""
    if not REPRODUCIBLE or _providers is None:
        yield False
        return
    original = _providers._get_local_constants
    _providers.CONSTANTS_CACHE.cache.clear()
    _providers._get_local_constants = _no_local_constants
    try:
        yield True
    finally:
        _providers._get_local_constants = original
        _providers.CONSTANTS_CACHE.cache.clear()
