"""The verdicts of many single calls at once: ``spec.arith`` evaluated over NumPy arrays.

Theory of operation
-------------------
:class:`NpArith` is a third implementation of the :class:`spec.arith.Arith` interface, beside
``PyArith`` (Python ints) and the Z3 ones: a word is a ``numpy.uint64`` array with one *lane*
per call, a truth value a ``bool`` array. The formulas are not copied: :func:`evaluate_batch`
calls ``spec.arith.plan_external``, ``packet_size`` and ``fits_ring`` themselves, so the one
source of the arithmetic stays ``spec.arith``.

NumPy evaluates both branches of :meth:`NpArith.cases` on every lane, so the arithmetic keeps a
*lane mask*: while a branch runs, only the lanes where its guard holds are live, and a wrap
(an add past 2**64, a subtract below 0, a shift losing bits) raises
:class:`~spec.errors.ArithmeticWrap` only when it happens in a live lane. A branch evaluated
on lanes it does not govern computes garbage there, which :func:`numpy.where` then drops,
exactly as ``PyArith`` never evaluates it.

:func:`evaluate_batch` is :func:`spec.rules.evaluate_send` for a batch of calls that all run
on a fresh idle packet of an open channel with an empty ring (the context of a sweep), whose
MDL chains all have the same number of MDLs. It turns the arithmetic's results into outcomes
with the same rules, in the same order, as ``spec.rules`` (the tests check it against
``evaluate_send`` on random samples). It returns what a result is compared against: which
statuses are allowed and, for an accepted call, a summary of the packet (type, flags,
data_offset, total size, and per GPA range its byte count, byte offset and PFN indices).
Profiles it cannot evaluate in batch (READ-A8 exact) are refused by :func:`batch_supported`;
the caller then uses ``evaluate_send`` per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from vmbspec.spec import arith
from vmbspec.spec.constants import (
    UINT64_MAX,
    VMBUS_CHANNEL_FORMAT_FLAGS,
    PacketType,
    SendFlags,
)
from vmbspec.spec.errors import ArithmeticWrap, InvalidValue
from vmbspec.spec.readings import Profile

Words = npt.NDArray[np.uint64]
Bools = npt.NDArray[np.bool_]

_ALL_ONES = np.uint64(UINT64_MAX)


class NpArith:
    """:class:`spec.arith.Arith` over ``uint64`` arrays, with a lane mask (see the module)."""

    def __init__(self, live: Bools) -> None:
        self.live = live

    def _check(self, wrapped: Bools, what: str) -> None:
        bad = np.logical_and(wrapped, self.live)
        if bool(np.any(bad)):
            lane = int(np.flatnonzero(np.broadcast_to(bad, self.live.shape))[0])
            raise ArithmeticWrap(f"{what} in lane {lane}")

    def lit(self, value: int) -> Words:
        if not 0 <= value <= UINT64_MAX:
            raise ArithmeticWrap(f"constant {value} is not a 64-bit unsigned word")
        return cast(Words, np.uint64(value))

    def add(self, a: Words, b: Words) -> Words:
        with np.errstate(over="ignore"):
            result = cast(Words, np.add(a, b, dtype=np.uint64))
        self._check(result < a, "an add wraps 64 bits")
        return result

    def sub(self, a: Words, b: Words) -> Words:
        self._check(b > a, "a subtract goes below zero")
        with np.errstate(over="ignore"):
            return cast(Words, np.subtract(a, b, dtype=np.uint64))

    def shl(self, a: Words, bits: int) -> Words:
        shift = np.uint64(bits)
        result = cast(Words, np.left_shift(a, shift))
        self._check(np.right_shift(result, shift) != a, f"a shift by {bits} loses bits")
        return result

    def shr(self, a: Words, bits: int) -> Words:
        return cast(Words, np.right_shift(a, np.uint64(bits)))

    def band(self, a: Words, mask: int) -> Words:
        return cast(Words, np.bitwise_and(a, np.uint64(mask & UINT64_MAX)))

    def ult(self, a: Words, b: Words) -> Bools:
        return cast(Bools, np.less(a, b))

    def ule(self, a: Words, b: Words) -> Bools:
        return cast(Bools, np.less_equal(a, b))

    def eq(self, a: Words, b: Words) -> Bools:
        return cast(Bools, np.equal(a, b))

    def all_of(self, *conds: Bools) -> Bools:
        return reduce(np.logical_and, conds, cast(Bools, np.bool_(True)))

    def any_of(self, *conds: Bools) -> Bools:
        return reduce(np.logical_or, conds, cast(Bools, np.bool_(False)))

    def not_(self, cond: Bools) -> Bools:
        return cast(Bools, np.logical_not(cond))

    def cases(self, cond: Bools, then: Callable[[], Words], otherwise: Callable[[], Words]
              ) -> Words:
        outer = self.live
        try:
            self.live = np.logical_and(outer, cond)
            chosen = then()
            self.live = np.logical_and(outer, np.logical_not(cond))
            other = otherwise()
        finally:
            self.live = outer
        return cast(Words, np.where(cond, chosen, other).astype(np.uint64, copy=False))


# ---------------------------------------------------------------------------------------------
# A batch of calls and its verdicts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallBatch:
    """``n`` calls whose chains all hold ``len(byte_offsets)`` MDLs (0: a NULL MDL).

    ``byte_offsets[i]`` and ``byte_counts[i]`` are the fields of MDL ``i`` of every chain;
    ``buffer_null`` marks a NULL Buffer. Every array has ``n`` lanes of ``uint64`` (``bool``
    for ``buffer_null``); every value is a UINT32 and ByteOffset is below 4096.
    """

    byte_offsets: tuple[Words, ...]
    byte_counts: tuple[Words, ...]
    mdl_offset: Words
    mdl_length: Words
    flags: Words
    buffer_length: Words
    buffer_null: Bools

    @property
    def size(self) -> int:
        return int(self.mdl_offset.shape[0])


@dataclass(frozen=True)
class BatchRange:
    """GPA range number ``index`` of each lane's packet, present where ``present`` holds."""

    present: Bools
    mdl_index: int
    byte_offset: Words
    byte_count: Words
    first_pfn: Words
    pfn_count: Words


@dataclass(frozen=True)
class BatchVerdict:
    """Per lane: what the documentation allows of the call.

    ``accept``: STATUS_SUCCESS conforms, with exactly the packet summarised by the other
    fields; ``reject``: a failure status conforms (any NT_ERROR status, plus
    STATUS_BUFFER_OVERFLOW where ``overflow_ok``). ``completion_requested`` is 1, 0, or -1 where
    either value conforms; ``completes_at_send`` is the one completion-routine call an accepted
    send without WAIT_FOR_COMPLETION gets as soon as it is in the ring (READ-A4 (b)).
    ``past_array`` marks an accepted packet that names pages past an MDL's PFN array (only the
    unsafe readings A3 (b)/(d) allow one).
    """

    accept: Bools
    reject: Bools
    overflow_ok: Bools
    inband: Bools
    completion_requested: npt.NDArray[np.int8]
    completes_at_send: Bools
    data_offset: Words
    total: Words
    ranges: tuple[BatchRange, ...]
    past_array: Bools

    @property
    def size(self) -> int:
        return int(self.accept.shape[0])

    def packet_type(self, lane: int) -> PacketType:
        return PacketType.DATA_INBAND if self.inband[lane] else PacketType.DATA_USING_GPA_DIRECT


def batch_supported(profile: Profile, chain_length: int) -> str | None:
    """None if :func:`evaluate_batch` evaluates calls of this profile and chain length; else
    why not (the caller uses ``spec.rules.evaluate_send`` per call)."""
    if profile["A8"] != "any-error":
        return "READ-A8 exact names a status per rule; the batch knows only accept/reject"
    return None


def _zeros(n: int) -> Words:
    return np.zeros(n, dtype=np.uint64)


def _lanes(value: Words | Bools, n: int) -> Any:
    """A value broadcast to ``n`` lanes (a literal of the arithmetic is a scalar)."""
    return np.broadcast_to(value, (n,))


def _segments(batch: CallBatch) -> list[arith.Segment[Words]]:
    return [arith.Segment(bo, bc) for bo, bc in zip(batch.byte_offsets, batch.byte_counts,
                                                    strict=True)]


@dataclass
class _External:
    violation: Bools
    no_range: Bools
    ranges: list[BatchRange]
    past_array: Bools


def _plan(
    batch: CallBatch, segments: Sequence[arith.Segment[Words]], forced: bool, live: Bools,
    profile: Profile,
) -> arith.Plan[Words, Bools]:
    a = NpArith(live)
    return arith.plan_external(
        a, segments, batch.mdl_offset, batch.mdl_length, forced, profile.arith
    )


def _external(batch: CallBatch, forced: Bools, profile: Profile) -> _External:
    """The offset/length rules of ``spec.rules._external`` for every lane."""
    n = batch.size
    segments = _segments(batch)
    # Both plans on every lane, each live only where its FORCE_MDL_LENGTH setting holds.
    with_force = _plan(batch, segments[:1], True, forced, profile)
    without = _plan(batch, segments, False, np.logical_not(forced), profile)

    def pick(f: Any, w: Any) -> Any:
        return np.where(forced, _lanes(f, n), _lanes(w, n))

    in_bounds = pick(with_force.in_bounds, without.in_bounds)
    length = pick(with_force.length, without.length)
    whole = pick(with_force.whole, without.whole)
    # MdlOffset counted from the data (READ-A2), and whether it points before the data.
    offset = pick(with_force.offset, without.offset)
    origin_ok = pick(with_force.origin_ok, without.origin_ok)
    # Out of bounds: a violation, except READ-A9 (no-range) for a resolved length of 0 that
    # no other rule refuses.
    zero_needs_offset_zero = np.logical_and(batch.mdl_length == 0, offset != 0) \
        if profile["A1"] == "c" else np.zeros(n, dtype=np.bool_)
    excused = np.zeros(n, dtype=np.bool_)
    if profile["A9"] == "no-range":
        excused = origin_ok & (length == 0) & ~zero_needs_offset_zero & ~(offset > whole)
    violation = ~in_bounds & ~excused
    no_range = ~in_bounds & excused
    ranges: list[BatchRange] = []
    for number, term in enumerate(without.ranges):
        present = _lanes(term.present, n)
        if number == 0:
            forced_term = with_force.ranges[0]
            ranges.append(BatchRange(
                present=np.where(forced, True, present) & in_bounds,
                mdl_index=0,
                byte_offset=pick(forced_term.byte_offset, term.byte_offset),
                byte_count=pick(forced_term.byte_count, term.byte_count),
                first_pfn=pick(forced_term.first_pfn, term.first_pfn),
                pfn_count=pick(forced_term.pfn_count, term.pfn_count),
            ))
        else:
            ranges.append(BatchRange(
                present=present & ~forced & in_bounds, mdl_index=number,
                byte_offset=_lanes(term.byte_offset, n), byte_count=_lanes(term.byte_count, n),
                first_pfn=_lanes(term.first_pfn, n), pfn_count=_lanes(term.pfn_count, n),
            ))
    # PFNs past an MDL's array (only the unsafe readings of A3 reach them).
    past = np.zeros(n, dtype=np.bool_)
    counter = NpArith(np.ones(n, dtype=np.bool_))
    for emitted in ranges:
        segment = arith.Segment(batch.byte_offsets[emitted.mdl_index],
                                batch.byte_counts[emitted.mdl_index])
        carried = arith.mdl_pfn_count(counter, segment)
        end = np.add(emitted.first_pfn, emitted.pfn_count, dtype=np.uint64)
        past |= emitted.present & (end > carried)
    return _External(violation, no_range, ranges, past)


def evaluate_batch(
    batch: CallBatch, ring_data_size: int, profile: Profile
) -> BatchVerdict:
    """:func:`spec.rules.evaluate_send` of every call of ``batch`` on a fresh idle packet of
    an open channel whose empty ring has ``ring_data_size`` bytes of data area."""
    chain_length = len(batch.byte_offsets)
    why = batch_supported(profile, chain_length)
    if why is not None:
        raise InvalidValue(f"evaluate_batch cannot evaluate this profile: {why}")
    n = batch.size
    known = batch.flags & np.uint64(VMBUS_CHANNEL_FORMAT_FLAGS)
    unknown = (batch.flags & ~np.uint64(VMBUS_CHANNEL_FORMAT_FLAGS)) != 0
    waits = (known & np.uint64(SendFlags.WAIT_FOR_COMPLETION)) != 0
    forced = (known & np.uint64(SendFlags.FORCE_MDL_LENGTH)) != 0
    violation = np.zeros(n, dtype=np.bool_)
    may_skip_wait = np.zeros(n, dtype=np.bool_)
    # SEED-WAIT-MUST (READ-A4).
    if profile["A4"] == "a":
        violation |= ~waits
    elif profile["A4"] == "b":
        may_skip_wait = ~waits
    else:
        waits = np.ones(n, dtype=np.bool_)
    # READ-A14: a NULL Buffer with BufferLength > 0.
    violation |= batch.buffer_null & (batch.buffer_length > 0)
    empty = np.zeros(n, dtype=np.bool_)
    ranges: list[BatchRange] = []
    past_array = empty
    if chain_length == 0:
        # READ-A6: a NULL MDL is an in-band send when MdlOffset and MdlLength are 0.
        if profile["A6"] == "b":
            violation |= True
        else:
            violation |= (batch.mdl_offset != 0) | (batch.mdl_length != 0)
        inband = np.ones(n, dtype=np.bool_)
    else:
        external = _external(batch, forced, profile)
        violation |= external.violation
        ranges = external.ranges
        past_array = external.past_array
        inband = external.no_range
    # The packet's size (WIRE-LAYOUT) and READ-A13.
    a = NpArith(np.ones(n, dtype=np.bool_))
    terms = [arith.RangeTerm(r.present, r.mdl_index, r.byte_offset, r.byte_count, r.first_pfn,
                             r.pfn_count) for r in ranges]
    direct = arith.packet_size(a, terms, batch.buffer_length)
    in_band = arith.inband_packet_size(a, batch.buffer_length)
    data_offset = np.where(inband, _lanes(in_band.data_offset, n),
                           _lanes(direct.data_offset, n)).astype(np.uint64)
    total = np.where(inband, _lanes(in_band.total, n), _lanes(direct.total, n)).astype(np.uint64)
    fits = _lanes(arith.fits_ring(a, data_offset, total, a.lit(ring_data_size)), n)
    too_big = ~fits
    violation |= too_big
    accept = ~violation
    reject = violation | (accept & may_skip_wait)
    overflow_ok = violation & too_big
    # READ-A7: bits outside the mask are ignored, rejected, or either.
    if profile["A7"] == "reject":
        accept = accept & ~unknown
        reject = reject | unknown
        overflow_ok = overflow_ok & ~unknown
    elif profile["A7"] == "either":
        reject = reject | unknown
    completion = np.where(waits, np.int8(1), np.int8(-1)).astype(np.int8)
    return BatchVerdict(
        accept=accept,
        reject=reject,
        overflow_ok=overflow_ok,
        inband=np.asarray(inband, dtype=np.bool_),
        completion_requested=completion,
        completes_at_send=accept & ~waits,
        data_offset=data_offset,
        total=total,
        ranges=tuple(ranges),
        past_array=past_array & accept,
    )


def batch_from_calls(
    calls: Sequence[tuple[Sequence[tuple[int, int]] | None, int, int, int, bool, int]],
) -> CallBatch:
    """A :class:`CallBatch` from ``(chain, mdl_offset, mdl_length, flags, buffer_null,
    buffer_length)`` tuples whose chains (``((byte_offset, byte_count), ...)`` or None) all
    have the same length."""
    if not calls:
        raise InvalidValue("a batch holds at least one call")
    lengths = {0 if c[0] is None else len(c[0]) for c in calls}
    if len(lengths) != 1:
        raise InvalidValue(f"a batch holds chains of one length, not {sorted(lengths)}")
    chain_length = lengths.pop()

    def column(values: Any) -> Words:
        return np.fromiter(values, dtype=np.uint64, count=len(calls))

    byte_offsets = tuple(
        column(c[0][i][0] if c[0] is not None else 0 for c in calls) for i in range(chain_length)
    )
    byte_counts = tuple(
        column(c[0][i][1] if c[0] is not None else 0 for c in calls) for i in range(chain_length)
    )
    return CallBatch(
        byte_offsets=byte_offsets,
        byte_counts=byte_counts,
        mdl_offset=column(c[1] for c in calls),
        mdl_length=column(c[2] for c in calls),
        flags=column(c[3] for c in calls),
        buffer_length=column(c[5] for c in calls),
        buffer_null=np.fromiter((c[4] for c in calls), dtype=np.bool_, count=len(calls)),
    )


__all__ = [
    "BatchRange",
    "BatchVerdict",
    "CallBatch",
    "NpArith",
    "batch_from_calls",
    "batch_supported",
    "evaluate_batch",
]
