"""Minimal failing sequences: delete every step whose removal keeps the same failure.

Hypothesis shrinks a failing example within its own model of the run (rules and draws), and
it stops early when re-running is slow (a target that crashes restarts its worker on every
try) or when its budget of shrink attempts runs out. What the user replays is the list of
steps, so the last word is a pass over that list: each step is removed in turn, the rest run
on a fresh target, and the removal is kept when the run fails the same way (the same kind of
failure naming the same requirements). Passes repeat until none removes anything, so the
result is *1-minimal*: no single step can go.

A candidate that is no longer a valid sequence (a send on a packet that is no longer
allocated, a step the spec forbids the caller) ends in ``StepError`` in the driver and is
simply not the same failure. The pass is bounded by a count of re-runs and by time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: The most re-runs one minimisation may make, and the most seconds it may take.
MAX_RUNS = 400
MAX_SECONDS = 60.0

Signature = tuple[str, tuple[str, ...]]
#: Runs a step list on a fresh target: the failure's (kind, requirements), or None.
RunFn = Callable[[list[Any]], Signature | None]


def minimise(
    steps: list[Any],
    signature: Signature,
    run: RunFn,
    max_runs: int = MAX_RUNS,
    max_seconds: float = MAX_SECONDS,
) -> tuple[list[Any], int]:
    """The shortest list this pass finds that still fails with ``signature``, and the number
    of re-runs it made. The last step (the one that failed) is tried too: a failure can be
    caused by an earlier step and seen at a later one."""
    started = time.monotonic()
    runs = 0
    current = list(steps)
    changed = True
    while changed:
        changed = False
        index = len(current) - 1
        while index >= 0:
            if runs >= max_runs or time.monotonic() - started > max_seconds:
                return current, runs
            candidate = current[:index] + current[index + 1 :]
            runs += 1
            if candidate and run(candidate) == signature:
                current = candidate
                changed = True
            index -= 1
    return current, runs
