"""The named properties of the send arithmetic, and the runner that proves them one at a time.

Theory of operation
-------------------
A property is a *body*: a function over an :class:`~spec.arith.Arith` and one set of inputs
(an MDL chain of up to :data:`MAX_CHAIN` MDLs, MdlOffset, MdlLength, Flags, BufferLength and the
ring's data size) that returns a :class:`Judgement`: a premise, a claim and optional cover goals.
The body calls the spec's own functions (``spec.arith.plan_external``, ``packet_size``, ...) and
states its claim in plain terms about their outputs, so the same body runs

* on :class:`~spec.proofs.z3arith.Z3Arith` with symbolic inputs, where the solver looks for
  inputs that satisfy the premise and break the claim, and
* on ``PyArith`` with the concrete inputs of a counterexample, which replays it through the
  executable spec: the replay must reproduce the failure, or the model is wrong.

FORCE_MDL_LENGTH is a Python ``bool`` for ``plan_external`` and the chain length is the length
of a Python list, so a body is evaluated once per *shape* (flag value x chain length) and the
shapes are joined by guards over the symbolic Flags and chain length: one query quantifies
over both.

The runner (:func:`run_property`) gives every property its own Z3 context and solver frame:

1. cover: the premise, each shape's premise and each named cover goal must be satisfiable;
   otherwise the property is ``vacuous``, which always fails (STYLE.md: no vacuous proofs);
2. claim: ``domain & premise & not claim``; unsat is ``proved``, sat a ``counterexample``
   (replayed and printed as a concrete call), anything else ``unknown``.

What this module does not know: statuses and packet lifetimes (``spec.rules``). It states no
rule of its own: even the ring fit of reading A13 is ``spec.arith.fits_ring``, the function
``spec.rules`` calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Literal, Protocol

import z3

from vmbspec.spec.arith import (
    DEFAULT_ARITH_READINGS,
    PY,
    Arith,
    ArithReadings,
    B,
    ChainUse,
    ForcedBound,
    Origin,
    Plan,
    Segment,
    W,
    ZeroLength,
    fits_ring,
    mdl_pfn_count,
    packet_size,
    plan_external,
)
from vmbspec.spec.constants import (
    PAGE_SHIFT,
    PAGE_SIZE,
    RING_TRAILER_SIZE,
    UINT32_MAX,
    SendFlags,
)
from vmbspec.spec.errors import ArithmeticWrap
from vmbspec.spec.proofs import examples
from vmbspec.spec.proofs.z3arith import Bool, Z3Arith, Z3IntArith

#: Chains are explored up to this many MDLs (P3, P4, P5, P6, P8, P9).
MAX_CHAIN = 3
#: The default per-query timeout.
DEFAULT_TIMEOUT_S = 10.0
FORCE = int(SendFlags.FORCE_MDL_LENGTH)
WAIT = int(SendFlags.WAIT_FOR_COMPLETION)

Status = Literal["proved", "counterexample", "unknown", "vacuous"]
Expected = Literal["proved", "counterexample"]


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inputs(Generic[W]):
    """One call's numbers: the chain (``MAX_CHAIN`` slots, the first ``chain_len`` used)."""

    segments: tuple[Segment[W], ...]
    chain_len: W
    mdl_offset: W
    mdl_length: W
    flags: W
    buffer_length: W
    ring_data_size: W


@dataclass
class Symbols:
    """The symbolic inputs, their raw Z3 variables by name, and the domain they range over."""

    inputs: Inputs[Any]
    variables: dict[str, Any]
    domain: Bool


Engine = Literal["int", "bv64"]


def make_arith(engine: Engine, ctx: Any) -> Z3Arith | Z3IntArith:
    """The Arith a property is built over: 64-bit bit-vectors, or exact integers (sound for
    the 64-bit spec because P5 proves that no operation leaves 64 bits)."""
    return Z3Arith(ctx) if engine == "bv64" else Z3IntArith(ctx)


def symbolic_inputs(a: Z3Arith | Z3IntArith, max_chain: int = MAX_CHAIN) -> Symbols:
    """UINT32 MdlOffset, MdlLength, Flags, BufferLength and ByteCount; ByteOffset < 4096
    (MDL-BYTEOFFSET); the ring a multiple of 4096 bytes, at least one page
    (``Target.create_channel``); chain length 1..``max_chain``."""
    ctx = a.ctx
    variables: dict[str, Any] = {}
    ranges: list[Any] = []

    def var(name: str, bits: int) -> Any:
        if isinstance(a, Z3Arith):
            variables[name] = z3.BitVec(name, bits, ctx)
            return z3.ZeroExt(a.width - bits, variables[name])
        variables[name] = z3.Int(name, ctx)
        ranges.extend([variables[name] >= 0, variables[name] < (1 << bits)])
        return variables[name]

    segments = tuple(
        Segment(var(f"mdl{i}.ByteOffset", 12), var(f"mdl{i}.ByteCount", 32))
        for i in range(MAX_CHAIN)
    )
    chain_len = var("chain_length", 2)
    ring_pages = var("ring_pages", 20)
    inputs = Inputs(
        segments=segments,
        chain_len=chain_len,
        mdl_offset=var("MdlOffset", 32),
        mdl_length=var("MdlLength", 32),
        flags=var("Flags", 32),
        buffer_length=var("BufferLength", 32),
        ring_data_size=ring_pages * PAGE_SIZE if isinstance(a, Z3IntArith)
        else ring_pages << PAGE_SHIFT,
    )
    domain = z3.And(
        *ranges,
        a.ule(a.lit(1), chain_len),
        a.ule(chain_len, a.lit(max_chain)),
        a.ule(a.lit(1), ring_pages),
    )
    return Symbols(inputs, variables, domain)


def concrete_inputs(values: dict[str, int]) -> Inputs[int]:
    """The inputs a model (or a test) gives, as ints."""
    return Inputs(
        segments=tuple(
            Segment(values.get(f"mdl{i}.ByteOffset", 0), values.get(f"mdl{i}.ByteCount", 0))
            for i in range(MAX_CHAIN)
        ),
        chain_len=max(1, values.get("chain_length", 1)),
        mdl_offset=values.get("MdlOffset", 0),
        mdl_length=values.get("MdlLength", 0),
        flags=values.get("Flags", WAIT),
        buffer_length=values.get("BufferLength", 0),
        ring_data_size=values.get("ring_pages", 16) << PAGE_SHIFT,
    )


# ---------------------------------------------------------------------------------------------
# Judgements and shapes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Judgement(Generic[B]):
    """``premise -> claim``; each cover goal must be satisfiable together with the premise."""

    premise: B
    claim: B
    covers: tuple[tuple[str, B], ...] = ()


class ShapeBody(Protocol):
    """A property for one shape: a Python ``forced`` and the chain's first ``n`` MDLs."""

    def __call__(
        self,
        a: Arith[W, B],
        inp: Inputs[W],
        segments: Sequence[Segment[W]],
        forced: bool,
        readings: ArithReadings,
    ) -> Judgement[B]: ...


@dataclass(frozen=True)
class Shape:
    forced: bool
    chain_len: int

    @property
    def label(self) -> str:
        flag = "FORCE_MDL_LENGTH" if self.forced else "no FORCE"
        return f"{flag}, {self.chain_len} MDL{'s' if self.chain_len > 1 else ''}"


def shape_guard(a: Arith[W, B], inp: Inputs[W], shape: Shape) -> B:
    forced_bit = a.eq(a.band(inp.flags, FORCE), a.lit(FORCE))
    return a.all_of(
        forced_bit if shape.forced else a.not_(forced_bit),
        a.eq(inp.chain_len, a.lit(shape.chain_len)),
    )


@dataclass(frozen=True)
class ShapePart(Generic[B]):
    """One shape of a property: its reachability (guard and premise), claim and the "no wrap"
    obligations recorded while its body was evaluated (Z3 only)."""

    label: str
    reach: B
    claim: B
    obligations: tuple[Any, ...]


def over_shapes(
    a: Arith[W, B],
    inp: Inputs[W],
    shapes: Sequence[Shape],
    body: ShapeBody,
    readings: ArithReadings,
) -> tuple[Judgement[B], list[ShapePart[B]]]:
    """Join the shapes: premise = some shape's guard and premise; claim = for every shape,
    guard and premise imply its claim. Also returns the shapes one by one: the solver checks
    each separately, which is several times faster than the joined claim."""
    premises: list[B] = []
    claims: list[B] = []
    parts: list[ShapePart[B]] = []
    covers: dict[str, list[B]] = {}
    recorded: list[Any] = getattr(a, "obligations", [])
    for shape in shapes:
        guard = shape_guard(a, inp, shape)
        before = len(recorded)
        j = body(a, inp, inp.segments[: shape.chain_len], shape.forced, readings)
        reach = a.all_of(guard, j.premise)
        premises.append(reach)
        claims.append(a.any_of(a.not_(reach), j.claim))
        parts.append(ShapePart(shape.label, reach, j.claim, tuple(recorded[before:])))
        for label, goal in j.covers:
            covers.setdefault(label, []).append(a.all_of(reach, goal))
    joined = Judgement(
        premise=a.any_of(*premises),
        claim=a.all_of(*claims),
        covers=tuple((label, a.any_of(*goals)) for label, goals in covers.items()),
    )
    return joined, parts


def shapes_for(forced: Sequence[bool], chains: Sequence[int]) -> tuple[Shape, ...]:
    return tuple(Shape(f, n) for f in forced for n in chains)


# ---------------------------------------------------------------------------------------------
# Helpers the claims use (plain statements, not spec formulas)
# ---------------------------------------------------------------------------------------------


def _end(a: Arith[W, B], inp: Inputs[W], plan: Plan[W, B]) -> W:
    """MdlOffset + the resolved length: one past the last byte of the sub-buffer, counted from
    byte 0 of the data the MDL describes (``plan.offset``: MdlOffset itself unless A2 (b))."""
    return a.add(plan.offset, plan.length)


def _sum(a: Arith[W, B], values: Sequence[W]) -> W:
    total = a.lit(0)
    for value in values:
        total = a.add(total, value)
    return total


def _minus_one(a: Arith[W, B], x: W) -> W:
    return a.cases(a.ult(a.lit(0), x), lambda: a.sub(x, a.lit(1)), lambda: a.lit(0))


def pfns_inside_own_mdl(a: Arith[W, B], plan: Plan[W, B], segments: Sequence[Segment[W]]) -> B:
    """Every PFN index a present range names is below its MDL's PFN count (MDL-PFNS)."""
    conds = []
    for term in plan.ranges:
        npfn = mdl_pfn_count(a, segments[term.mdl_index])
        inside = a.ule(a.add(term.first_pfn, term.pfn_count), npfn)
        conds.append(a.any_of(a.not_(term.present), inside))
    return a.all_of(*conds)


# ---------------------------------------------------------------------------------------------
# The property bodies
# ---------------------------------------------------------------------------------------------


def body_forced_pfns(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    first_only = all(term.mdl_index == 0 for term in plan.ranges)  # SEED-FORCE-FIRST
    claim = pfns_inside_own_mdl(a, plan, segments)
    if not first_only:
        claim = a.any_of()
    exceeds = a.ult(segments[0].byte_count, _end(a, inp, plan))
    return Judgement(plan.in_bounds, claim, (("length exceeds ByteCount", exceeds),))


def body_forced_excess(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    first = segments[0]
    end = _end(a, inp, plan)
    exceeds = a.ult(first.byte_count, end)
    excess = a.cases(exceeds, lambda: a.sub(end, first.byte_count), lambda: a.lit(0))
    last_page = _minus_one(a, mdl_pfn_count(a, first))
    # Byte k of the MDL lives in PFN index (ByteOffset + k) >> 12 (MDL-PFNS): the first and the
    # last byte past ByteCount must both be in the last page.
    first_excess_page = a.shr(a.add(first.byte_offset, first.byte_count), PAGE_SHIFT)
    last_excess_page = a.shr(_minus_one(a, a.add(first.byte_offset, end)), PAGE_SHIFT)
    claim = a.any_of(
        a.not_(exceeds),
        a.all_of(
            a.ult(excess, a.lit(PAGE_SIZE)),
            a.eq(first_excess_page, last_page),
            a.eq(last_excess_page, last_page),
        ),
    )
    return Judgement(plan.in_bounds, claim, (("length exceeds ByteCount", exceeds),))


def _range_inside_segment(a: Arith[W, B], term: Any, segment: Segment[W]) -> B:
    """The range's bytes lie in ``[ByteOffset, ByteOffset + ByteCount)`` of its MDL's pages."""
    start = a.add(a.shl(term.first_pfn, PAGE_SHIFT), term.byte_offset)
    return a.all_of(
        a.ule(segment.byte_offset, start),
        a.ule(
            a.add(start, term.byte_count), a.add(segment.byte_offset, segment.byte_count)
        ),
    )


def body_chain_inside(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    total = _sum(a, [s.byte_count for s in segments])
    conds = [a.ule(_end(a, inp, plan), total), pfns_inside_own_mdl(a, plan, segments)]
    for term in plan.ranges:
        inside = _range_inside_segment(a, term, segments[term.mdl_index])
        conds.append(a.any_of(a.not_(term.present), inside))
    every = a.all_of(*(term.present for term in plan.ranges))
    return Judgement(plan.in_bounds, a.all_of(*conds), (("a range in every MDL", every),))


def body_zero_length(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    # READ-A1 (a): "the entire MDL" is the rest after MdlOffset of the bytes described: the
    # first MDL under FORCE_MDL_LENGTH (SEED-FORCE-FIRST), else the whole chain (READ-A5).
    whole = segments[0].byte_count if forced else _sum(a, [s.byte_count for s in segments])
    something_left = a.ult(inp.mdl_offset, whole)
    accepts_iff = a.any_of(
        a.all_of(plan.in_bounds, something_left),
        a.all_of(a.not_(plan.in_bounds), a.not_(something_left)),
    )
    ends_at_whole = a.any_of(a.not_(plan.in_bounds), a.eq(_end(a, inp, plan), whole))
    premise = a.eq(inp.mdl_length, a.lit(0))
    nonzero_offset = a.all_of(plan.in_bounds, a.not_(a.eq(inp.mdl_offset, a.lit(0))))
    return Judgement(
        premise, a.all_of(accepts_iff, ends_at_whole),
        (("accepted with MdlOffset != 0", nonzero_offset),),
    )


def body_no_wrap(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    """Evaluate everything the spec computes for a call; the claim is added by the runner
    (Z3: every recorded obligation) or is the absence of ArithmeticWrap (PyArith)."""
    variants = [readings]
    if forced:
        variants += [ArithReadings(forced_bound=f) for f in ForcedBound]
    variants += [ArithReadings(zero_length=z) for z in ZeroLength]
    variants += [ArithReadings(origin=o) for o in Origin]
    if not forced:
        variants += [ArithReadings(chain_use=c) for c in ChainUse]
    for variant in dict.fromkeys(variants):
        plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, variant)
        packet_size(a, plan.ranges, inp.buffer_length)
    for segment in segments:
        mdl_pfn_count(a, segment)
    wraps32 = a.ult(a.lit(UINT32_MAX), a.add(inp.mdl_offset, inp.mdl_length))
    return Judgement(a.all_of(), a.all_of(), (("MdlOffset + MdlLength exceeds 32 bits", wraps32),))


def body_naive_wraps(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    first = segments[0]
    accepts = examples.naive_32bit_check(
        a, first.byte_offset, first.byte_count, inp.mdl_offset, inp.mdl_length, forced
    )
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    # The claim: what the naive check accepts lies inside the spec's bound, as real integers.
    return Judgement(accepts, a.ule(_end(a, inp, plan), plan.bound))


def body_encodable(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    size = packet_size(a, plan.ranges, inp.buffer_length)
    fits = fits_ring(a, size.data_offset, size.total, inp.ring_data_size)
    accepted = a.all_of(plan.in_bounds, fits)
    conds = [a.any_of(*(term.present for term in plan.ranges))]
    for term in plan.ranges:
        span = a.add(term.byte_offset, term.byte_count)
        pfn_ok = a.all_of(
            a.ule(span, a.shl(term.pfn_count, PAGE_SHIFT)),
            a.ult(a.shl(_minus_one(a, term.pfn_count), PAGE_SHIFT), span),
        )
        conds.append(
            a.any_of(
                a.not_(term.present),
                a.all_of(
                    a.ult(term.byte_offset, a.lit(PAGE_SIZE)),  # WIRE-RANGE-OFFSET
                    a.ult(a.lit(0), term.byte_count),  # WIRE-RANGE-NONEMPTY
                    a.ule(term.byte_count, a.lit(UINT32_MAX)),  # a u32 on the wire
                    pfn_ok,  # WIRE-PFN-COUNT: n = ceil((byte_offset + byte_count) / 4096)
                ),
            )
        )
    conds += [
        a.eq(a.band(size.data_offset, 7), a.lit(0)),
        a.eq(a.band(size.total, 7), a.lit(0)),
        a.ule(a.shr(size.data_offset, 3), a.lit(0xFFFF)),
        a.ule(a.shr(size.total, 3), a.lit(0xFFFF)),
        a.ule(size.data_offset, size.total),
        a.ult(a.add(size.total, a.lit(RING_TRAILER_SIZE)), inp.ring_data_size),
    ]
    return Judgement(accepted, a.all_of(*conds))


def body_ranges_cover(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    end = _end(a, inp, plan)
    counts = [
        a.cases(term.present, lambda t=term: t.byte_count, lambda: a.lit(0))  # type: ignore[misc]
        for term in plan.ranges
    ]
    conds = [a.eq(_sum(a, counts), plan.length)]
    start_of_segment = a.lit(0)
    for term, segment in zip(plan.ranges, segments, strict=True):
        page_pos = a.add(a.shl(term.first_pfn, PAGE_SHIFT), term.byte_offset)
        inside = a.cases(
            a.ule(segment.byte_offset, page_pos),
            lambda p=page_pos, s=segment: a.sub(p, s.byte_offset),  # type: ignore[misc]
            lambda: a.lit(0),
        )
        logical = a.add(start_of_segment, inside)
        conds.append(
            a.any_of(
                a.not_(term.present),
                a.all_of(
                    a.ule(inp.mdl_offset, logical),
                    a.ule(a.add(logical, term.byte_count), end),
                ),
            )
        )
        start_of_segment = a.add(start_of_segment, segment.byte_count)
    return Judgement(plan.in_bounds, a.all_of(*conds))


# ---------------------------------------------------------------------------------------------
# P8: the plain rule over unbounded integers
# ---------------------------------------------------------------------------------------------


class IntOps(Protocol):
    """What the plain rule needs from an integer type: a choice and a page round-up."""

    def ite(self, cond: Any, then: Any, otherwise: Any) -> Any: ...
    def and_(self, *conds: Any) -> Any: ...
    def or_(self, *conds: Any) -> Any: ...
    def round_up_page(self, x: Any) -> Any: ...


class _PyInts:
    def ite(self, cond: Any, then: Any, otherwise: Any) -> Any:
        return then if cond else otherwise

    def and_(self, *conds: Any) -> Any:
        return all(conds)

    def or_(self, *conds: Any) -> Any:
        return any(conds)

    def round_up_page(self, x: Any) -> Any:
        return -(-x // PAGE_SIZE) * PAGE_SIZE


class _Z3Ints:
    def ite(self, cond: Any, then: Any, otherwise: Any) -> Any:
        return z3.If(cond, then, otherwise)

    def and_(self, *conds: Any) -> Any:
        return z3.And(*conds)

    def or_(self, *conds: Any) -> Any:
        return z3.Or(*conds)

    def round_up_page(self, x: Any) -> Any:
        return ((x + (PAGE_SIZE - 1)) / PAGE_SIZE) * PAGE_SIZE


def plain_rule(
    ops: IntOps, chain: Sequence[tuple[Any, Any]], offset: Any, length: Any, forced: bool
) -> Any:
    """The acceptance rule as the documentation and readings say it, over unbounded integers.

    The bytes described are ByteCount of the first MDL under FORCE_MDL_LENGTH, else the sum of
    the chain's ByteCounts (SEED-FORCE-FIRST, READ-A5). MdlLength 0 means the rest after
    MdlOffset, or nothing if MdlOffset is past the end (READ-A1 (a)). The call is accepted when
    the resolved length is not 0 (READ-A9) and MdlOffset + length is at most the bytes
    described, or under FORCE_MDL_LENGTH at most the end of the last page counted from the first
    byte (SEED-FORCE-BOUND, READ-A3 (a)).
    """
    described = chain[0][1] if forced else sum((bc for _, bc in chain[1:]), chain[0][1])
    if forced:
        bo, bc = chain[0]
        limit = ops.round_up_page(bo + bc) - bo
    else:
        limit = described
    rest = ops.ite(offset <= described, described - offset, 0)
    resolved = ops.ite(length == 0, rest, length)
    return ops.and_(resolved > 0, offset + resolved <= limit)


PY_INTS = _PyInts()
Z3_INTS = _Z3Ints()


def body_equivalence(
    a: Arith[W, B], inp: Inputs[W], segments: Sequence[Segment[W]], forced: bool,
    readings: ArithReadings,
) -> Judgement[B]:
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    if isinstance(a, (Z3Arith, Z3IntArith)):
        ops: IntOps = Z3_INTS

        def num(x: Any) -> Any:
            return z3.BV2Int(x, is_signed=False) if isinstance(a, Z3Arith) else x

        plain = plain_rule(
            ops, [(num(s.byte_offset), num(s.byte_count)) for s in segments],
            num(inp.mdl_offset), num(inp.mdl_length), forced,
        )
        same: Any = plan.in_bounds == plain
    else:
        plain = plain_rule(
            PY_INTS, [(s.byte_offset, s.byte_count) for s in segments],
            inp.mdl_offset, inp.mdl_length, forced,
        )
        same = bool(plan.in_bounds) == bool(plain)
    return Judgement(a.all_of(), same, (("accepted", plan.in_bounds),))


# ---------------------------------------------------------------------------------------------
# The catalogue of properties
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Property:
    """One named property: the sentence it proves, where, and what the runner should find."""

    name: str
    title: str
    requirements: tuple[str, ...]
    sentence: str
    expected: Expected
    body: ShapeBody
    shapes: tuple[Shape, ...]
    readings: ArithReadings = DEFAULT_ARITH_READINGS
    #: What the solver works over: exact integers (fast; sound for the 64-bit spec given P5)
    #: or the spec's own 64-bit words.
    engine: Engine = "int"
    #: The width column: the engine unless the property is about another width.
    width: str = ""
    #: The claim also includes every "no wrap" obligation recorded while building (P5).
    no_wrap: bool = False
    #: Extra premise conjoined by tests (e.g. to make it unreachable); body-independent.
    extra_premise: Callable[[Arith[Any, Any], Inputs[Any]], Any] | None = None


FORCE_SENTENCE = (
    "Always use MdlLength for the length of the external data MDL, even if this length is "
    "longer than the ByteCount field of the MDL. This only allows exceeding the length of the "
    "MDL by rounding up to a page boundary."
)
PFN_SENTENCE = (
    "An MDL has exactly ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount) valid PFNs."
)

FORCED_ONLY = shapes_for([True], [1, MAX_CHAIN])
UNFORCED_CHAINS = shapes_for([False], range(1, MAX_CHAIN + 1))
ALL_SHAPES = (Shape(True, 1), *UNFORCED_CHAINS)

PROPERTIES: tuple[Property, ...] = (
    Property(
        "P1", "FORCE accepted: every PFN index is inside the first MDL's PFN array",
        ("SEED-FORCE-BOUND", "SEED-FORCE-FIRST", "READ-A3", "MDL-PFNS"),
        FORCE_SENTENCE + " If this flag is set, only the first MDL in the MDL chain is used.",
        "proved", body_forced_pfns, FORCED_ONLY,
    ),
    Property(
        "P2", "FORCE accepted: the bytes past ByteCount are < 4096 and in the last page",
        ("SEED-FORCE-BOUND", "SEED-FORCE-LENGTH", "READ-A3", "MDL-PFNS"),
        "This only allows exceeding the length of the MDL by rounding up to a page boundary.",
        "proved", body_forced_excess, shapes_for([True], [1]),
    ),
    Property(
        "P3", f"no FORCE, accepted: the sub-buffer is inside the chain (<= {MAX_CHAIN} MDLs), "
        "each range inside its MDL",
        ("SEED-MDLOFFSET", "SEED-MDLLENGTH", "READ-A5", "MDL-PFNS"),
        "The offset from the buffer described by the MDL where the data starts. The length of "
        "the sub-buffer to send.",
        "proved", body_chain_inside, UNFORCED_CHAINS,
    ),
    Property(
        "P4", "MdlLength 0 is the rest after MdlOffset (A1 (a)), for every offset",
        ("SEED-MDLLENGTH-ZERO", "READ-A1", "READ-A9"),
        "Use 0 for the entire MDL.",
        "proved", body_zero_length, ALL_SHAPES,
    ),
    Property(
        "P5", "no intermediate computation of the spec leaves 0..2**64-1 (all readings)",
        ("SEED-MDLOFFSET", "SEED-MDLLENGTH", "MDL-PFNS", "WIRE-LENGTH8"),
        "The offset from the buffer described by the MDL where the data starts. The length of "
        "the sub-buffer to send.",
        "proved", body_no_wrap, ALL_SHAPES, no_wrap=True,
    ),
    Property(
        "P5-naive", "the naive 32-bit check MdlOffset + length <= bound wraps and accepts",
        ("SEED-MDLOFFSET", "SEED-MDLLENGTH"),
        "The length of the sub-buffer to send.",
        "counterexample", body_naive_wraps, shapes_for([False, True], [1]), width="bv32",
    ),
    Property(
        "P6", "accepted: the packet is encodable and fits the ring",
        ("WIRE-RANGE-NONEMPTY", "WIRE-RANGE-OFFSET", "WIRE-PFN-COUNT", "WIRE-LAYOUT",
         "WIRE-LENGTH8", "RING-NEVER-FULL", "READ-A9", "READ-A13"),
        "A range carries n = ceil((byte_offset + byte_count) / 4096) PFNs; length8 is a u16; "
        "the ring is never filled completely.",
        "proved", body_encodable, ALL_SHAPES,
    ),
    Property(
        "P7-b", "A3 (b) ROUND_TO_PAGES(ByteCount) reads past the PFN array",
        ("READ-A3", "SEED-FORCE-BOUND", "MDL-PFNS"),
        "This only allows exceeding the length of the MDL by rounding up to a page boundary.",
        "counterexample", body_forced_pfns, shapes_for([True], [1]),
        readings=ArithReadings(forced_bound=ForcedBound.ROUNDED_BYTECOUNT),
    ),
    Property(
        "P7-d", "A3 (d) an unenforced FORCE length reads past the PFN array",
        ("READ-A3", "SEED-FORCE-BOUND", "MDL-PFNS"),
        "This only allows exceeding the length of the MDL by rounding up to a page boundary.",
        "counterexample", body_forced_pfns, shapes_for([True], [1]),
        readings=ArithReadings(forced_bound=ForcedBound.NOT_ENFORCED),
    ),
    Property(
        "P7-c", "A3 (c) the silent clamp stays inside the PFN array",
        ("READ-A3", "SEED-FORCE-BOUND", "MDL-PFNS"),
        "This only allows exceeding the length of the MDL by rounding up to a page boundary.",
        "proved", body_forced_pfns, shapes_for([True], [1]),
        readings=ArithReadings(forced_bound=ForcedBound.SILENT_CLAMP),
    ),
    Property(
        "P10-A2b", "A2 (b) MdlOffset from StartVa, no FORCE, accepted: each range inside its MDL",
        ("READ-A2", "SEED-MDLOFFSET", "SEED-MDLLENGTH", "MDL-PFNS"),
        "The offset from the buffer described by the MDL where the data starts.",
        "proved", body_chain_inside, UNFORCED_CHAINS,
        readings=ArithReadings(origin=Origin.START_VA),
    ),
    Property(
        "P10-A2b-force", "A2 (b) MdlOffset from StartVa, FORCE accepted: every PFN index inside "
        "the first MDL's PFN array",
        ("READ-A2", "SEED-FORCE-BOUND", "SEED-FORCE-FIRST", "MDL-PFNS"),
        "The offset from the buffer described by the MDL where the data starts. " + FORCE_SENTENCE,
        "proved", body_forced_pfns, FORCED_ONLY, readings=ArithReadings(origin=Origin.START_VA),
    ),
    *(
        Property(
            f"P10-A5{use.value}", f"A5 ({use.value}) {what}, accepted: each range inside its MDL",
            ("READ-A5", "SEED-MDLOFFSET", "SEED-MDLLENGTH", "MDL-PFNS"),
            "The offset from the buffer described by the MDL where the data starts. The length "
            "of the sub-buffer to send.",
            "proved", body_chain_inside, UNFORCED_CHAINS, readings=ArithReadings(chain_use=use),
        )
        for use, what in (
            (ChainUse.FIRST_THEN_WHOLE, "first MDL, the rest whole"),
            (ChainUse.FIRST_ONLY, "first MDL only"),
        )
    ),
    Property(
        "P8", "the 64-bit acceptance predicate equals the plain rule over unbounded integers",
        ("SEED-MDLOFFSET", "SEED-MDLLENGTH", "SEED-MDLLENGTH-ZERO", "SEED-FORCE-BOUND",
         "READ-A1", "READ-A3", "READ-A5", "READ-A9"),
        "The offset from the buffer described by the MDL where the data starts. The length of "
        "the sub-buffer to send. Use 0 for the entire MDL.",
        "proved", body_equivalence, ALL_SHAPES,
    ),
    Property(
        "P9", "no FORCE, accepted: the ranges cover exactly the sub-buffer, in order",
        ("READ-A5", "WIRE-RANGE-CONTIGUOUS", "SEED-MDLLENGTH"),
        "The length of the sub-buffer to send.",
        "proved", body_ranges_cover, UNFORCED_CHAINS,
    ),
)


#: Slower companions, run by ``vmbspec prove --extended`` and the benchmark: P5 over the
#: spec's own 64-bit words (``BVAddNoOverflow`` and friends) instead of exact integers.
EXTENDED: tuple[Property, ...] = (
    replace(
        PROPERTIES[4], name="P5-bv64", engine="bv64",
        title="no add/sub/shl of the spec wraps a 64-bit word (bit-vector obligations)",
    ),
)


def property_named(name: str) -> Property:
    for prop in (*PROPERTIES, *EXTENDED):
        if prop.name == name:
            return prop
    raise KeyError(f"no property {name!r}; properties: {', '.join(p.name for p in PROPERTIES)}")


# ---------------------------------------------------------------------------------------------
# Results, replay and the runner
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counterexample:
    """A model turned into a call, and whether the executable spec reproduces the failure."""

    values: dict[str, int]
    call: str
    replayed: bool
    replay: str


@dataclass(frozen=True)
class PropertyResult:
    name: str
    title: str
    requirements: tuple[str, ...]
    sentence: str
    width: str
    expected: Expected
    status: Status
    seconds: float
    detail: str = ""
    counterexample: Counterexample | None = None
    covers: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """As expected, and a counterexample (if any) reproduced by the executable spec."""
        if self.status != self.expected:
            return False
        return self.counterexample is None or self.counterexample.replayed

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "title": self.title,
            "requirements": list(self.requirements),
            "sentence": self.sentence,
            "width": self.width,
            "status": self.status,
            "expected": self.expected,
            "ok": self.ok,
            "seconds": round(self.seconds, 4),
            "covers": list(self.covers),
        }
        if self.detail:
            data["detail"] = self.detail
        if self.counterexample is not None:
            data["counterexample"] = {
                "values": self.counterexample.values,
                "call": self.counterexample.call,
                "replayed": self.counterexample.replayed,
                "replay": self.counterexample.replay,
            }
        return data


def readings_profile_choices(readings: ArithReadings) -> dict[str, str]:
    return {
        "A1": readings.zero_length.value,
        "A2": readings.origin.value,
        "A3": readings.forced_bound.value,
        "A5": readings.chain_use.value,
    }


def describe_call(inp: Inputs[int], readings: ArithReadings = DEFAULT_ARITH_READINGS) -> str:
    """The concrete MDL chain and call, the plan the spec makes of it, and its verdict."""
    forced = bool(inp.flags & FORCE)
    segments = inp.segments[: inp.chain_len]
    lines = []
    for i, s in enumerate(segments):
        npfn = mdl_pfn_count(PY, s)
        lines.append(
            f"  MDL[{i}]: ByteOffset={s.byte_offset:#x} ByteCount={s.byte_count:#x} "
            f"PFN array of {npfn}"
        )
    lines.append(
        f"  VmbPacketSendWithExternalMdl(Packet, Buffer, BufferLength={inp.buffer_length:#x}, "
        f"Mdl, MdlOffset={inp.mdl_offset:#x}, MdlLength={inp.mdl_length:#x}, "
        f"Flags={inp.flags:#x}) on a ring of {inp.ring_data_size:#x} bytes"
    )
    try:
        plan = plan_external(PY, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    except ArithmeticWrap as wrap:
        lines.append(f"  spec.arith: {wrap}")
        return "\n".join(lines)
    lines.append(
        f"  spec.arith: in_bounds={plan.in_bounds} length={plan.length:#x} bound={plan.bound:#x}"
        f" ({', '.join(f'{k} {v}' for k, v in readings_profile_choices(readings).items())})"
    )
    for term in plan.ranges:
        if not term.present:
            continue
        npfn = mdl_pfn_count(PY, segments[term.mdl_index])
        last = term.first_pfn + term.pfn_count - 1
        past = "  <-- past the PFN array" if last >= npfn else ""
        lines.append(
            f"    range: MDL[{term.mdl_index}] byte_offset={term.byte_offset:#x} "
            f"byte_count={term.byte_count:#x} PFN indices {term.first_pfn}..{last} of {npfn}"
            f"{past}"
        )
    verdict = _rules_verdict(inp, readings)
    if verdict:
        lines.append(f"  spec.rules: {verdict}")
    return "\n".join(lines)


def _rules_verdict(inp: Inputs[int], readings: ArithReadings) -> str:
    """The executable spec's verdict for the call, if ``spec.rules`` can evaluate it."""
    try:
        from vmbspec.spec.call import SendCall
        from vmbspec.spec.mdl import MdlChain, MdlSegment
        from vmbspec.spec.readings import Profile
        from vmbspec.spec.rules import SendContext, evaluate_send
    except ImportError:  # pragma: no cover - spec.rules not yet present
        return ""
    segments = inp.segments[: inp.chain_len]
    if any(mdl_pfn_count(PY, s) > 1 << 16 for s in segments):
        return "(not evaluated: an MDL of more than 65536 pages)"
    chain = MdlChain.of(MdlSegment.with_pages(s.byte_offset, s.byte_count) for s in segments)
    buffer = bytes(inp.buffer_length) if inp.buffer_length <= 1 << 20 else None
    if buffer is None:
        return "(not evaluated: BufferLength over 1 MiB)"
    call = SendCall(buffer, inp.buffer_length, chain, inp.mdl_offset, inp.mdl_length, inp.flags)
    profile = Profile.default()
    for reading, option in readings_profile_choices(readings).items():
        if profile[reading] != option:
            profile = profile.with_choice(reading, option)
    verdict = evaluate_send(call, SendContext.fresh(inp.ring_data_size), profile)
    return verdict.describe()


def replay(prop: Property, inp: Inputs[int]) -> tuple[bool, str]:
    """Run the property's body on PyArith: True when the premise holds and the claim fails."""
    try:
        joined, _ = over_shapes(PY, inp, prop.shapes, prop.body, prop.readings)
        premise = bool(joined.premise)
        if prop.extra_premise is not None:
            premise = premise and bool(prop.extra_premise(PY, inp))
        claim = bool(joined.claim)
    except ArithmeticWrap as wrap:
        if prop.no_wrap:
            return True, f"PyArith raises ArithmeticWrap: {wrap}"
        return False, f"PyArith raises ArithmeticWrap unexpectedly: {wrap}"
    if premise and not claim:
        return True, "the executable spec reproduces it: premise holds, claim fails"
    return False, f"NOT reproduced by the executable spec (premise={premise}, claim={claim})"


def _model_values(model: Any, variables: dict[str, Any]) -> dict[str, int]:
    return {
        name: model.eval(var, model_completion=True).as_long() for name, var in variables.items()
    }


def _nice(sym: Symbols) -> list[list[Any]]:
    """Constraints that make a counterexample read like a real call, tried in turn."""
    v = sym.variables
    flags = z3.Or(*(v["Flags"] == value for value in (WAIT, WAIT | FORCE)))
    small = [v["BufferLength"] <= 0x40, v["ring_pages"] == 16, flags]
    if isinstance(v["Flags"], z3.BitVecRef):
        small[0] = z3.ULE(v["BufferLength"], 0x40)
    counts = [v[f"mdl{i}.ByteCount"] for i in range(MAX_CHAIN)]
    le = z3.ULE if isinstance(counts[0], z3.BitVecRef) else (lambda x, y: x <= y)
    return [[*small, *(le(c, 0x10000) for c in counts)], small]


def _open_obligations(obligations: Sequence[Any]) -> list[Any]:
    """The obligations that simplification does not already discharge, without duplicates."""
    seen: set[int] = set()
    left = []
    for obligation in obligations:
        expr = z3.simplify(obligation.as_bool())
        if not z3.is_true(expr) and expr.get_id() not in seen:
            seen.add(expr.get_id())
            left.append(expr)
    return left


def _solve(ctx: Any, timeout_s: float, *assertions: Any) -> tuple[Any, Any]:
    """One query in a fresh solver (a solver reused through push/pop switches to Z3's
    incremental core, which is several times slower on these queries)."""
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", max(1, int(timeout_s * 1000)))
    solver.add(*assertions)
    answer = solver.check()
    if answer == z3.sat:
        return answer, solver.model()
    return answer, solver.reason_unknown() if answer != z3.unsat else None


def run_property(
    prop: Property, timeout_s: float = DEFAULT_TIMEOUT_S
) -> PropertyResult:
    """Cover, then claim, in a Z3 context of the property's own."""
    started = time.perf_counter()
    ctx = z3.Context()
    a = make_arith(prop.engine, ctx)
    sym = symbolic_inputs(a, max(shape.chain_len for shape in prop.shapes))
    joined, parts = over_shapes(a, sym.inputs, prop.shapes, prop.body, prop.readings)
    extra = prop.extra_premise(a, sym.inputs) if prop.extra_premise is not None else None
    premise = joined.premise if extra is None else z3.And(joined.premise, extra)

    def result(status: Status, detail: str = "", cex: Counterexample | None = None,
               covers: Sequence[str] = ()) -> PropertyResult:
        return PropertyResult(
            prop.name, prop.title, prop.requirements, prop.sentence, prop.width or prop.engine,
            prop.expected, status, time.perf_counter() - started, detail, cex, tuple(covers),
        )

    def reach(part: ShapePart[Any]) -> Any:
        return part.reach if extra is None else z3.And(part.reach, extra)

    # 1. Cover: the premise, every shape's premise and every named cover goal are reachable.
    goals: list[tuple[str, Any]] = [("premise", premise)]
    if len(parts) > 1:
        goals += [(f"premise reachable ({part.label})", reach(part)) for part in parts]
    goals += [(label, z3.And(premise, goal)) for label, goal in joined.covers]
    covered: list[str] = []
    for label, goal in goals:
        answer, info = _solve(ctx, timeout_s, sym.domain, goal)
        if answer == z3.unsat:
            return result("vacuous", f"cover failed: {label} is unreachable", covers=covered)
        if answer != z3.sat:
            return result("unknown", f"cover {label}: {info}", covers=covered)
        covered.append(label)

    # 2. The claim, shape by shape: each query is small (the joined claim is slower).
    for part in parts:
        claim = part.claim
        if prop.no_wrap:
            claim = z3.And(claim, *_open_obligations(part.obligations))
        answer, info = _solve(ctx, timeout_s, sym.domain, reach(part), z3.Not(claim))
        if answer == z3.unsat:
            continue
        if answer != z3.sat:
            return result("unknown", f"{part.label}: {info}", covers=covered)
        model = info
        for nice in _nice(sym):
            nicer, nice_model = _solve(
                ctx, timeout_s, sym.domain, reach(part), z3.Not(claim), *nice
            )
            if nicer == z3.sat:
                model = nice_model
                break
        values = _model_values(model, sym.variables)
        inp = concrete_inputs(values)
        replayed, how = replay(prop, inp)
        cex = Counterexample(values, describe_call(inp, prop.readings), replayed, how)
        return result("counterexample", cex.call, cex, covered)
    return result("proved", covers=covered)


def run_properties(
    progress: Callable[[PropertyResult], None] | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    properties: Sequence[Property] = PROPERTIES,
    engine: Engine | None = None,
) -> list[PropertyResult]:
    """Every property, one at a time; ``progress`` is called as each one finishes.

    ``engine`` forces every property onto one engine (``"bv64"``: the spec's own words, slower).
    """
    results = []
    for prop in properties:
        if engine is not None and prop.width == "":
            prop = replace(prop, engine=engine)
        outcome = run_property(prop, timeout_s)
        if progress is not None:
            progress(outcome)
        results.append(outcome)
    return results


def with_unreachable_premise(prop: Property) -> Property:
    """``prop`` with a premise no input satisfies (ByteCount of the first MDL above 2**32 - 1):
    the runner must call it vacuous, never proved."""

    def impossible(a: Arith[Any, Any], inp: Inputs[Any]) -> Any:
        return a.ult(a.lit(UINT32_MAX), inp.segments[0].byte_count)

    return replace(prop, name=f"{prop.name}-unreachable", extra_premise=impossible)
