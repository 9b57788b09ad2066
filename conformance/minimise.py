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

Some failures need a ring filled to the byte, which no single deletion keeps. Two more passes
shorten those: a send's ring bytes move onto an earlier send (:func:`merged`), and a take goes
with the send it took (:func:`untaken`); they alternate with the deletions until none
shortens the list.

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
MAX_RUNS = 2000
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
#: The ring bytes a ``send`` step's packet takes (its total and trailer), or None when it is
#: not a send the spec accepts (see :func:`merged`).
SizeFn = Callable[[Any], "int | None"]


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


def _is_send(step: Any) -> bool:
    return isinstance(step, dict) and step.get("op") == "send"


def merged(steps: list[Any], index: int, size: SizeFn) -> list[Any] | None:
    """``steps`` with send ``index`` gone and its ring bytes added to the in-line buffer of the
    nearest send before it, or None when there is none that can take them.

    Deleting a send changes how full the ring is, so a failure that needs a ring filled to
    one byte (a ring exactly full, a send that just cannot fit) survives no deletion: every
    filling send stays. Moving a packet's bytes onto another keeps the ring as full with one
    send fewer. Packet totals and trailers are multiples of 8 and the in-line buffer is
    padded to 8, so the other packet grows by exactly the bytes that went."""
    if not _is_send(steps[index]):
        return None
    moved = size(steps[index])
    if moved is None:
        return None
    for into in range(index - 1, -1, -1):
        other = steps[into]
        if not _is_send(other) or size(other) is None:
            continue
        buffer = other.get("buffer")
        if buffer is not None and not (isinstance(buffer, dict) and "fill" in buffer):
            return None  # explicit bytes: growing them would mean inventing some
        grown = {**other, "buffer": buffer or {"fill": 0},
                 "buffer_length": int(other.get("buffer_length", 0)) + moved}
        return [*steps[:into], grown, *steps[into + 1 : index], *steps[index + 1 :]]
    return None


def untaken(steps: list[Any], index: int, size: SizeFn) -> list[Any] | None:
    """``steps`` less host_take ``index`` and the send whose packet it took, or None.

    A send and the take that empties it leave the ring as full as before, so the pair can go
    where neither can alone. The host takes packets in ring order, so the take is matched
    with the send it took by counting: the k-th take of a channel takes the k-th send on it
    that the spec accepts (sends of the same packet count each time)."""
    step = steps[index]
    if not (isinstance(step, dict) and step.get("op") == "host_take"):
        return None
    channel = step.get("channel")
    channel_of: list[Any] = []  # a packet's channel, by packet number (allocation order)
    sends: list[int] = []
    takes = 0
    for position, other in enumerate(steps[:index]):
        op = other.get("op") if isinstance(other, dict) else None
        if op == "allocate":
            channel_of.append(other.get("channel"))
        elif op == "host_take" and other.get("channel") == channel:
            takes += 1
        elif op == "send":
            packet = other.get("packet")
            if (isinstance(packet, int) and 0 <= packet < len(channel_of)
                    and channel_of[packet] == channel and size(other) is not None):
                sends.append(position)
    if takes >= len(sends):
        return None
    taken = sends[takes]
    return [other for position, other in enumerate(steps) if position not in (taken, index)]


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
    size: SizeFn | None = None,
) -> tuple[list[Any], int]:
    """The shortest list this pass finds that still fails with ``signature``, and the number
    of re-runs it made. First whole runs of steps go (halves, quarters, ...: delta
    debugging), then single steps (:func:`without`); then each remaining step is made
    plainer where it can be (:func:`simpler`). A candidate the driver refuses at some step
    (the step depended on one removed: a completion of a send that is gone) has that step
    dropped too, up to :data:`MAX_REPAIRS` times. The last step (the one that failed) is
    tried too: a failure can be caused by an earlier step and seen at a later one. Given
    ``size``, sends are also merged (:func:`merged`) and a take goes with the send it took
    (:func:`untaken`); the three passes repeat until none shortens the list."""
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

    def one_pass(change: Callable[[list[Any], int], list[Any] | None]) -> bool | None:
        """Each step in turn, last first, changed by ``change`` where the failure stays;
        whether any change was kept, or None when the budget ran out."""
        nonlocal current
        changed = False
        index = len(current) - 1
        while index >= 0:
            if out_of_budget():
                return None
            candidate = change(current, index) if index < len(current) else None
            kept = None if candidate is None else same_failure(candidate)
            if kept is not None:
                current = kept
                changed = True
            index -= 1
        return changed

    changes: list[Callable[[list[Any], int], list[Any] | None]] = [without]
    if size is not None:
        changes += [lambda steps, index: merged(steps, index, size),
                    lambda steps, index: untaken(steps, index, size)]
    changed = True
    while changed:  # every kept change shortens the list, so this ends
        changed = False
        for change in changes:
            shortened = one_pass(change)
            if shortened is None:
                return current, runs
            changed = changed or shortened
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
