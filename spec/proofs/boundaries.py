"""Boundary vectors: for every bound of the rules, calls at it, just inside and just outside.

Theory of operation
-------------------
A :class:`Bound` names a *measure* and a *limit*, both computed by the spec's own functions
(``plan_external``, ``packet_size``) over an :class:`~spec.arith.Arith`: for example, under
FORCE_MDL_LENGTH the measure is MdlOffset + length and the limit is the bound of reading A3 (a).
Z3 (over exact integers, sound by P5) finds inputs where ``measure - limit`` is 0 ("at"), minus
the inward step ("inside") or plus the outward step ("outside"), with extra constraints that make
the case discriminating (a ByteOffset that is not 0, an end past ByteCount, a sum that a 32-bit
check would wrap, ...). The verdict of each case comes from the executable spec on Python ints.

:func:`generate_boundary_cases` returns JSON-ready dicts, saved once as
``conformance/cases/boundaries.json``. The PFN values are not chosen here: a case gives each
MDL's PFN count and the suite fills in PFNs. A test re-evaluates every saved case with
``PyArith`` (:func:`check_case`), so a file written by another Z3 version stays checkable.

Positions that cannot exist are left out and listed in :data:`NOT_REPRESENTABLE`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import z3

from vmbspec.spec.arith import (
    PY,
    Arith,
    PacketSize,
    Plan,
    fits_ring,
    mdl_pfn_count,
    packet_size,
    plan_external,
)
from vmbspec.spec.constants import MAX_PACKET_BYTES, PAGE_SIZE, RING_TRAILER_SIZE, UINT32_MAX
from vmbspec.spec.proofs.properties import (
    FORCE,
    MAX_CHAIN,
    WAIT,
    Inputs,
    concrete_inputs,
    symbolic_inputs,
)
from vmbspec.spec.proofs.z3arith import Z3IntArith

Position = Literal["at", "inside", "outside"]
POSITIONS: tuple[Position, ...] = ("at", "inside", "outside")

#: (bound, position): why no case exists.
NOT_REPRESENTABLE: dict[tuple[str, str], str] = {
    ("mdl-byte-offset-max", "outside"): "ByteOffset 0x1000 is not a valid MDL (MDL-BYTEOFFSET)",
    ("mdl-byte-offset-min", "outside"): "ByteOffset is unsigned: there is nothing below 0",
}

Measure = Callable[[Arith[Any, Any], Inputs[Any], Plan[Any, Any], PacketSize[Any]], Any]
Extra = Callable[
    [Arith[Any, Any], Inputs[Any], Plan[Any, Any], PacketSize[Any], Position], list[Any]
]


def _nothing(
    a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: PacketSize[Any],
    position: Position,
) -> list[Any]:
    return []


@dataclass(frozen=True)
class Bound:
    """``measure <= limit`` (or the named relation) at one shape of the call."""

    name: str
    requirements: tuple[str, ...]
    description: str
    forced: bool
    chain_len: int
    measure: Measure
    limit: Measure
    step_in: int = 1
    step_out: int = 1
    extra: Extra = _nothing
    ring_pages: int | None = 16

    def delta(self, position: Position) -> int:
        return {"at": 0, "inside": -self.step_in, "outside": self.step_out}[position]


def _plan(a: Arith[Any, Any], inp: Inputs[Any], bound: Bound) -> tuple[Any, Any]:
    segments = inp.segments[: bound.chain_len]
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, bound.forced)
    return plan, packet_size(a, plan.ranges, inp.buffer_length)


def _end(a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any) -> Any:
    return a.add(inp.mdl_offset, plan.length)


def _bound_of_plan(a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any) -> Any:
    return plan.bound


def _nonzero_length(a: Arith[Any, Any], inp: Inputs[Any]) -> Any:
    return a.not_(a.eq(inp.mdl_length, a.lit(0)))


def _const(value: int) -> Measure:
    return lambda a, inp, plan, size: a.lit(value)


def _forced_extra(
    a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any, position: Position
) -> list[Any]:
    first = inp.segments[0]
    end = _end(a, inp, plan, size)
    extra = [
        _nonzero_length(a, inp),
        a.not_(a.eq(first.byte_offset, a.lit(0))),  # where A3 (a) and (b) differ
        a.ult(first.byte_count, end),  # really past ByteCount
    ]
    if position == "outside":
        # One byte past A3 (a) yet within ROUND_TO_PAGES(ByteCount): A3 (b) would accept it.
        rounded = a.band(a.add(first.byte_count, a.lit(PAGE_SIZE - 1)), ~(PAGE_SIZE - 1))
        extra.append(a.ule(end, rounded))
    return extra


def _chain_extra(
    a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any, position: Position
) -> list[Any]:
    first, second = inp.segments[0], inp.segments[1]
    return [
        _nonzero_length(a, inp),
        a.ult(inp.mdl_offset, first.byte_count),  # starts in the first MDL
        a.ult(a.lit(0), second.byte_count),
    ]


def _zero_extra(
    a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any, position: Position
) -> list[Any]:
    extra = [a.eq(inp.mdl_length, a.lit(0)), a.ult(a.lit(0), inp.segments[1].byte_count)]
    if not plan.forced:  # the offset lies in the second MDL
        extra.append(a.ule(inp.segments[0].byte_count, inp.mdl_offset))
    return extra


def _raw_sum(a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any) -> Any:
    return a.add(inp.mdl_offset, inp.mdl_length)


def _wrap_extra(
    a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any, position: Position
) -> list[Any]:
    extra = [_nonzero_length(a, inp)]
    if position != "inside":
        # What a UINT32 sum wraps to is within ByteCount: a naive check accepts the call.
        wrapped = a.band(_raw_sum(a, inp, plan, size), UINT32_MAX)
        extra.append(a.ule(wrapped, inp.segments[0].byte_count))
    return extra


def _accepted_extra(
    a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any, position: Position
) -> list[Any]:
    return [_nonzero_length(a, inp), plan.in_bounds]


def _offsets_extra(
    a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any, position: Position
) -> list[Any]:
    return [
        *_accepted_extra(a, inp, plan, size, position),
        a.not_(a.eq(inp.segments[0].byte_offset, a.lit(0))),
        a.not_(a.eq(inp.mdl_offset, a.lit(0))),
    ]


def _whole_mdl_extra(
    a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any, position: Position
) -> list[Any]:
    return [
        a.eq(inp.mdl_offset, a.lit(0)),
        a.eq(inp.mdl_length, a.lit(0)),
        a.ule(a.lit(2), inp.segments[0].byte_count),
    ]


def _first_range_span(a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any) -> Any:
    term = plan.ranges[0]
    return a.add(term.byte_offset, term.byte_count)


def _with_trailer(a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any) -> Any:
    return a.add(size.total, a.lit(RING_TRAILER_SIZE))


def _ring(a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any) -> Any:
    return inp.ring_data_size


def _total(a: Arith[Any, Any], inp: Inputs[Any], plan: Plan[Any, Any], size: Any) -> Any:
    return size.total


BOUNDS: tuple[Bound, ...] = (
    Bound(
        "force-bound", ("SEED-FORCE-BOUND", "SEED-FORCE-LENGTH", "READ-A3"),
        "FORCE_MDL_LENGTH: MdlOffset + length <= ROUND_TO_PAGES(ByteOffset + ByteCount) - "
        "ByteOffset (A3 (a)); outside is still within ROUND_TO_PAGES(ByteCount) (A3 (b))",
        True, 1, _end, _bound_of_plan, extra=_forced_extra,
    ),
    Bound(
        "byte-count", ("SEED-MDLOFFSET", "SEED-MDLLENGTH"),
        "no FORCE, one MDL: MdlOffset + length <= ByteCount",
        False, 1, _end, _bound_of_plan, extra=lambda a, i, p, s, pos: [_nonzero_length(a, i)],
    ),
    Bound(
        "chain-total", ("SEED-MDLOFFSET", "SEED-MDLLENGTH", "READ-A5"),
        "no FORCE, two MDLs: MdlOffset + length <= the chain's total ByteCount",
        False, 2, _end, _bound_of_plan, extra=_chain_extra,
    ),
    Bound(
        "zero-length-rest", ("SEED-MDLLENGTH-ZERO", "READ-A1", "READ-A9", "READ-A5"),
        "MdlLength 0, no FORCE, two MDLs: MdlOffset < the chain's total (the rest is not empty)",
        False, 2, lambda a, i, p, s: i.mdl_offset, _bound_of_plan, extra=_zero_extra,
    ),
    Bound(
        "zero-length-forced", ("SEED-MDLLENGTH-ZERO", "SEED-FORCE-FIRST", "READ-A1", "READ-A9"),
        "MdlLength 0 with FORCE_MDL_LENGTH, two MDLs: MdlOffset < the first MDL's ByteCount",
        True, 2, lambda a, i, p, s: i.mdl_offset, lambda a, i, p, s: p.whole, extra=_zero_extra,
    ),
    Bound(
        "wrap32", ("SEED-MDLOFFSET", "SEED-MDLLENGTH"),
        "MdlOffset + MdlLength against 2**32: at and outside, a 32-bit sum wraps to within "
        "ByteCount (a naive check accepts; the spec rejects)",
        False, 1, _raw_sum, _const(1 << 32), extra=_wrap_extra,
    ),
    Bound(
        "range-byte-offset", ("WIRE-RANGE-OFFSET", "MDL-PFNS"),
        "ByteOffset + MdlOffset against 0xFFF: the range's byte_offset is masked to the page "
        "and the first PFN advances (outside: byte_offset 0 on the next page)",
        False, 1, lambda a, i, p, s: a.add(i.segments[0].byte_offset, i.mdl_offset),
        _const(PAGE_SIZE - 1), extra=_offsets_extra,
    ),
    Bound(
        "mdl-byte-offset-max", ("MDL-BYTEOFFSET", "WIRE-RANGE-OFFSET"),
        "ByteOffset at its largest value 0xFFF, the whole MDL sent",
        False, 1, lambda a, i, p, s: i.segments[0].byte_offset, _const(PAGE_SIZE - 1),
        extra=_whole_mdl_extra,
    ),
    Bound(
        "mdl-byte-offset-min", ("MDL-BYTEOFFSET", "WIRE-RANGE-OFFSET"),
        "ByteOffset at 0 (inside: 1), the whole MDL sent",
        False, 1, lambda a, i, p, s: a.lit(0), lambda a, i, p, s: i.segments[0].byte_offset,
        extra=_whole_mdl_extra,
    ),
    Bound(
        "range-pfn-count", ("WIRE-PFN-COUNT",),
        "byte_offset + byte_count of the range against 2 pages: 2 PFNs at and inside, 3 outside",
        False, 1, _first_range_span, _const(2 * PAGE_SIZE), extra=_accepted_extra,
    ),
    Bound(
        "ring-fit", ("RING-NEVER-FULL", "READ-A13"),
        "packet + trailer against the ring's data size: it must leave a free byte (packets are "
        "8-aligned, so inside is 8 below)",
        False, 1, _with_trailer, _ring, step_in=8, step_out=8,
        extra=lambda a, i, p, s, pos: [_nonzero_length(a, i), p.in_bounds,
                                       a.ule(i.ring_data_size, a.lit(0x2000))],
        ring_pages=None,
    ),
    Bound(
        "length8", ("WIRE-LENGTH8", "READ-A13"),
        "the packet's total length against 0xFFFF * 8 bytes (length8 is a u16), on a 1 MiB ring",
        False, 1, _total, _const(MAX_PACKET_BYTES), step_in=8, step_out=8,
        extra=_accepted_extra, ring_pages=256,
    ),
)


def spec_accepts(inp: Inputs[int], forced: bool) -> bool:
    """The offset/length rules and the ring fit (reading A13), on Python ints."""
    segments = inp.segments[: inp.chain_len]
    plan = plan_external(PY, segments, inp.mdl_offset, inp.mdl_length, forced)
    if not plan.in_bounds:
        return False
    size = packet_size(PY, plan.ranges, inp.buffer_length)
    return bool(fits_ring(PY, size.data_offset, size.total, inp.ring_data_size))


def _inputs_of_case(case: dict[str, Any]) -> Inputs[int]:
    values: dict[str, int] = {
        "chain_length": len(case["mdl"]),
        "MdlOffset": case["mdl_offset"],
        "MdlLength": case["mdl_length"],
        "Flags": case["flags"],
        "BufferLength": case["buffer_length"],
        "ring_pages": case["ring_data_size"] // PAGE_SIZE,
    }
    for i, (bo, bc, _npfn) in enumerate(case["mdl"]):
        values[f"mdl{i}.ByteOffset"] = bo
        values[f"mdl{i}.ByteCount"] = bc
    return concrete_inputs(values)


def bound_named(name: str) -> Bound:
    for bound in BOUNDS:
        if bound.name == name:
            return bound
    raise KeyError(name)


def check_case(case: dict[str, Any]) -> list[str]:
    """What is wrong with a saved case (empty when it is where it says): re-evaluated on ints."""
    problems = []
    bound = bound_named(case["bound"])
    inp = _inputs_of_case(case)
    forced = bool(case["flags"] & FORCE)
    if forced != bound.forced or inp.chain_len != bound.chain_len:
        problems.append("the call's shape does not match the bound")
        return problems
    for i, (bo, bc, npfn) in enumerate(case["mdl"]):
        if npfn != mdl_pfn_count(PY, inp.segments[i]):
            problems.append(f"MDL[{i}] ({bo:#x}, {bc:#x}) has {npfn} PFNs in the file")
    plan, size = _plan(PY, inp, bound)
    measure, limit = bound.measure(PY, inp, plan, size), bound.limit(PY, inp, plan, size)
    want = bound.delta(case["position"])
    if measure - limit != want:
        problems.append(f"measure {measure:#x} - limit {limit:#x} is not {want}")
    expected = "accept" if spec_accepts(inp, forced) else "reject"
    if expected != case["expected"]:
        problems.append(f"the spec says {expected}, the file {case['expected']}")
    return problems


def find_case(bound: Bound, position: Position, timeout_s: float = 10.0) -> dict[str, Any] | None:
    """Ask Z3 for a call at ``position`` of ``bound``; None if there is none."""
    ctx = z3.Context()
    a = Z3IntArith(ctx)
    sym = symbolic_inputs(a, MAX_CHAIN)
    inp = sym.inputs
    plan, size = _plan(a, inp, bound)
    measure, limit = bound.measure(a, inp, plan, size), bound.limit(a, inp, plan, size)
    v = sym.variables
    flags = WAIT | (FORCE if bound.forced else 0)
    constraints = [
        sym.domain,
        measure == limit + bound.delta(position),
        v["chain_length"] == bound.chain_len,
        v["Flags"] == flags,
        *bound.extra(a, inp, plan, size, position),
    ]
    if bound.ring_pages is not None:
        constraints.append(v["ring_pages"] == bound.ring_pages)
    # Prefer small PFN arrays, a short payload and MDLs that describe at least one byte.
    small = [v[f"mdl{i}.ByteCount"] <= 0x10000 for i in range(MAX_CHAIN)]
    nonempty = [v[f"mdl{i}.ByteCount"] >= 1 for i in range(bound.chain_len)]
    preferences = [
        [v["BufferLength"] <= 0x40, *small, *nonempty],
        [*small, *nonempty],
        small,
        [],
    ]
    for preference in preferences:
        solver = z3.Solver(ctx=ctx)
        solver.set("timeout", max(1, int(timeout_s * 1000)))
        solver.add(*constraints, *preference)
        if solver.check() == z3.sat:
            model = solver.model()
            values = {n: model.eval(x, model_completion=True).as_long() for n, x in v.items()}
            return _case(bound, position, values)
    return None


def _case(bound: Bound, position: Position, values: dict[str, int]) -> dict[str, Any]:
    inp = concrete_inputs(values)
    segments = inp.segments[: bound.chain_len]
    return {
        "id": f"{bound.name}-{position}",
        "requirements": list(bound.requirements),
        "bound": bound.name,
        "position": position,
        "description": bound.description,
        "mdl": [[s.byte_offset, s.byte_count, mdl_pfn_count(PY, s)] for s in segments],
        "mdl_offset": inp.mdl_offset,
        "mdl_length": inp.mdl_length,
        "flags": inp.flags,
        "buffer_length": inp.buffer_length,
        "ring_data_size": inp.ring_data_size,
        "expected": "accept" if spec_accepts(inp, bound.forced) else "reject",
    }


def generate_boundary_cases(timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Every bound at every representable position; raises if Z3 finds none where one exists."""
    cases = []
    for bound in BOUNDS:
        for position in POSITIONS:
            if (bound.name, position) in NOT_REPRESENTABLE:
                continue
            case = find_case(bound, position, timeout_s)
            if case is None:
                raise RuntimeError(f"no call {position} bound {bound.name}")
            cases.append(case)
    return cases
