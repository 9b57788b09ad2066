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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: The most re-runs one minimisation may make, and the most seconds it may take.
MAX_RUNS = 400
MAX_SECONDS = 60.0

Signature = tuple[str, tuple[str, ...]]


@dataclass(frozen=True)
class Invalid:
    """A candidate that is not a valid sequence: the driver refused step ``index`` (a
    StepError: a complete of a packet the host never took, a send on a packet that is gone)."""

    index: int


#: Runs a step list on a fresh target: the failure's (kind, requirements), :class:`Invalid`,
#: or None (it passed).
RunFn = Callable[[list[Any]], "Signature | Invalid | None"]
#: How many refused steps one candidate may drop (see :func:`minimise`).
MAX_REPAIRS = 8


def same(outcome: Signature | Invalid | None, signature: Signature) -> bool:
    """``outcome`` is the failure ``signature``: the same kind naming the same requirements;
    or the same less a leading READ-A10, which the driver names first when a packet freed
    while busy goes missing (the same failure without that free blames the rest alone)."""
    if not isinstance(outcome, tuple):
        return False
    if outcome == signature:
        return True
    kind, requirements = signature
    return bool(requirements) and requirements[0] == "READ-A10" and (
        outcome == (kind, requirements[1:])
    )


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


def simpler(step: Any) -> Iterator[Any]:
    """Plainer versions of one step, plainest first: no completion bytes, a success status,
    an in-line buffer of fewer bytes, the plainest fill pattern."""
    if not isinstance(step, dict):
        return
    if step.get("op") == "host_complete":
        if step.get("data"):
            yield {**step, "data": ""}
        if step.get("status"):
            yield {**step, "status": 0}
    if step.get("op") == "send":
        length = step.get("buffer_length")
        if isinstance(length, int) and length > 0:
            for smaller in sorted({0, 1, 8, length // 2} - {length}):
                if smaller < length:
                    yield {**step, "buffer_length": smaller}
        buffer = step.get("buffer")
        if isinstance(buffer, dict) and buffer.get("fill"):
            yield {**step, "buffer": {"fill": 0}}


def minimise(
    steps: list[Any],
    signature: Signature,
    run: RunFn,
    max_runs: int = MAX_RUNS,
    max_seconds: float = MAX_SECONDS,
) -> tuple[list[Any], int]:
    """The shortest list this pass finds that still fails with ``signature``, and the number
    of re-runs it made. First whole runs of steps go (halves, quarters, ...: delta
    debugging), then single steps (:func:`without`); then each remaining step is made
    plainer where it can be (:func:`simpler`). A candidate the driver refuses at some step
    (the step depended on one removed: a completion of a send that is gone) has that step
    dropped too, up to :data:`MAX_REPAIRS` times. The last step (the one that failed) is
    tried too: a failure can be caused by an earlier step and seen at a later one."""
    started = time.monotonic()
    runs = 0
    current = list(steps)

    def out_of_budget() -> bool:
        return runs >= max_runs or time.monotonic() - started > max_seconds

    def same_failure(candidate: list[Any]) -> list[Any] | None:
        """``candidate``, repaired, if it still fails with ``signature``."""
        nonlocal runs
        for _ in range(MAX_REPAIRS + 1):
            if not candidate or out_of_budget():
                return None
            runs += 1
            outcome = run(candidate)
            if not isinstance(outcome, Invalid):
                return candidate if same(outcome, signature) else None
            if not 0 <= outcome.index < len(candidate):
                return None
            candidate = candidate[:outcome.index] + candidate[outcome.index + 1 :]
        return None

    chunk = len(current) // 2
    while chunk >= 2:
        start = len(current) - chunk
        while start >= 0:
            if out_of_budget():
                return current, runs
            kept = same_failure(current[:start] + current[start + chunk :])
            if kept is not None:
                current = kept
            start = min(start, len(current)) - chunk
        chunk //= 2
    changed = True
    while changed:
        changed = False
        index = len(current) - 1
        while index >= 0:
            if out_of_budget():
                return current, runs
            if index < len(current):
                kept = same_failure(without(current, index))
                if kept is not None:
                    current = kept
                    changed = True
            index -= 1
    for index in range(len(current)):
        simplified = True
        while simplified:  # each success is strictly plainer, so this ends
            simplified = False
            for plainer in simpler(current[index]):
                if out_of_budget():
                    return current, runs
                runs += 1
                candidate = [*current[:index], plainer, *current[index + 1 :]]
                if same(run(candidate), signature):
                    current = candidate
                    simplified = True
                    break
    return current, runs
