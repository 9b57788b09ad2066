"""Minimal failing sequences: delete every step whose removal keeps the same failure.

Hypothesis shrinks a failing example within its own model of the run (rules and draws), and
it stops early when re-running is slow (a target that crashes restarts its worker on every
try) or when its budget of shrink attempts runs out. What the user replays is the list of
steps, so the last word is a pass over that list (delta debugging): first whole runs of steps
(halves, quarters, ...), then each step in turn, are removed, the rest run on a fresh target,
and a removal is kept when the run fails the same way (the same kind of failure naming the
same requirements). Removing an allocation removes its packet's whole life and renumbers the
later packets (:func:`without`), so a spare packet goes too. Single-step passes repeat until
none removes anything, so the result is *1-minimal*: no single step can go.

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


def without(steps: list[Any], index: int) -> list[Any]:
    """``steps`` less step ``index``. Packets are numbered in the order they are allocated, so
    removing an ``allocate`` removes that packet's whole life (every step that names it) and
    renumbers the packets allocated after it: a spare allocation can go too."""
    step = steps[index]
    if not (isinstance(step, dict) and step.get("op") == "allocate"):
        return steps[:index] + steps[index + 1 :]
    number = sum(1 for s in steps[:index] if isinstance(s, dict) and s.get("op") == "allocate")
    kept: list[Any] = []
    for position, other in enumerate(steps):
        if position == index:
            continue
        packet = other.get("packet") if isinstance(other, dict) else None
        if isinstance(packet, int) and not isinstance(packet, bool):
            if packet == number:
                continue
            if packet > number:
                other = {**other, "packet": packet - 1}
        kept.append(other)
    return kept


def minimise(
    steps: list[Any],
    signature: Signature,
    run: RunFn,
    max_runs: int = MAX_RUNS,
    max_seconds: float = MAX_SECONDS,
) -> tuple[list[Any], int]:
    """The shortest list this pass finds that still fails with ``signature``, and the number
    of re-runs it made. First whole runs of steps go (halves, quarters, ...: delta
    debugging), then single steps (:func:`without`). The last step (the one that failed) is
    tried too: a failure can be caused by an earlier step and seen at a later one."""
    started = time.monotonic()
    runs = 0
    current = list(steps)

    def out_of_budget() -> bool:
        return runs >= max_runs or time.monotonic() - started > max_seconds

    def same_failure(candidate: list[Any]) -> bool:
        nonlocal runs
        runs += 1
        return bool(candidate) and run(candidate) == signature

    chunk = len(current) // 2
    while chunk >= 2:
        start = len(current) - chunk
        while start >= 0:
            if out_of_budget():
                return current, runs
            candidate = current[:start] + current[start + chunk :]
            if same_failure(candidate):
                current = candidate
            start -= chunk
        chunk //= 2
    changed = True
    while changed:
        changed = False
        index = len(current) - 1
        while index >= 0:
            if out_of_budget():
                return current, runs
            if index < len(current):
                candidate = without(current, index)
                if same_failure(candidate):
                    current = candidate
                    changed = True
            index -= 1
    return current, runs
