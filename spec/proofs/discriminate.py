"""Z3 search for calls that tell two options of an arithmetic reading apart (A1, A2, A3, A5).

Theory of operation
-------------------
A reading whose options live in :class:`~spec.arith.ArithReadings` changes only what
``spec.arith.plan_external`` computes. For two options ``x`` and ``y`` of such a reading, the
same ``plan_external``, ``packet_size`` and ``fits_ring`` are built over
:class:`~spec.proofs.z3arith.Z3IntArith` (exact integers, sound for the 64-bit spec by P5)
under ``Profile.arith`` of each option, and Z3 is asked for a call that is

* accepted under one option and rejected under the other, or
* accepted under both with different GPA ranges (present, byte offset, byte count, first PFN
  or PFN count of some range),

so the two verdicts have no outcome in common (a rejection under both always shares one: any
error status). The search goes through the call's *shapes* (FORCE_MDL_LENGTH or not, one MDL
or two), plainest first, and minimises the numbers of the first shape that has such a call
(lexicographically: their sum, then MdlOffset, MdlLength and each MDL's ByteCount and
ByteOffset), so the call is small and the answer does not depend on the solver's whims.

Cover check, as for the proofs: before a shape's query counts, each option must both accept
and reject some call of that shape; a shape where an option's predicate is constant would make
a "found" or "none" meaningless, and raises :class:`VacuousSearch`.

The call found is re-evaluated by ``spec.rules.evaluate_send`` under both profiles; should
the two verdicts share an outcome after all (two ranges past an MDL's PFN array carry the same
unknown PFNs), that model is excluded and the search goes on.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import z3

from vmbspec.spec.arith import (
    ArithReadings,
    Plan,
    fits_ring,
    packet_size,
    plan_external,
)
from vmbspec.spec.call import SendCall
from vmbspec.spec.constants import SendFlags
from vmbspec.spec.proofs.properties import symbolic_inputs
from vmbspec.spec.proofs.z3arith import Z3IntArith
from vmbspec.spec.readings import Profile

#: (FORCE_MDL_LENGTH, MDLs in the chain), plainest first.
SHAPES: tuple[tuple[bool, int], ...] = ((False, 1), (True, 1), (False, 2), (True, 2))
#: ByteCount of the MDLs searched: a few pages, so the PFN arrays stay short.
MAX_BYTE_COUNT = 0x4000
#: The ring of the probes (16 pages) and their 8-byte in-line buffer.
RING_PAGES = 16
BUFFER_LENGTH = 8
#: Models excluded after a failed re-check before a shape is given up.
MAX_RETRIES = 8
TIMEOUT_MS = 10_000


class VacuousSearch(AssertionError):
    """A shape on which an option's acceptance is constant: the query would prove nothing."""


def arith_readings(reading: str, option: str) -> ArithReadings:
    """What ``spec.arith`` is given under the default profile with ``reading`` = ``option``."""
    return Profile.default().with_choice(reading, option).arith


def _accepted(a: Z3IntArith, inp: Any, segments: Sequence[Any], forced: bool,
              readings: ArithReadings) -> tuple[Plan[Any, Any], Any]:
    plan = plan_external(a, segments, inp.mdl_offset, inp.mdl_length, forced, readings)
    size = packet_size(a, plan.ranges, inp.buffer_length)
    fits = fits_ring(a, size.data_offset, size.total, inp.ring_data_size)
    return plan, a.all_of(plan.in_bounds, fits)


def _ranges_differ(first: Plan[Any, Any], second: Plan[Any, Any]) -> Any:
    """Some range is present under one plan and not the other, or differs. The plans may have
    different numbers of range terms (READ-A5 (c) uses one MDL of the chain, (a) every one):
    a term only one plan has differs where it is present."""
    differ = []
    for s, t in itertools.zip_longest(first.ranges, second.ranges):
        if s is None or t is None:
            differ.append((t if s is None else s).present)
            continue
        same_range = z3.And(
            s.byte_offset == t.byte_offset,
            s.byte_count == t.byte_count,
            s.first_pfn == t.first_pfn,
            s.pfn_count == t.pfn_count,
        )
        differ.append(z3.Or(s.present != t.present, z3.And(s.present, z3.Not(same_range))))
    return z3.Or(*differ)


def _cover(ctx: Any, base: list[Any], goal: Any, what: str) -> None:
    solver = z3.Solver(ctx=ctx)
    solver.set("timeout", TIMEOUT_MS)
    solver.add(*base, goal)
    if solver.check() != z3.sat:
        raise VacuousSearch(what)


def _call(values: dict[str, int], forced: bool, chain: int) -> SendCall:
    from vmbspec.spec.discriminate import make_call  # the probes' one way of building a call

    shape = [(values[f"mdl{i}.ByteOffset"], values[f"mdl{i}.ByteCount"]) for i in range(chain)]
    flags = int(SendFlags.WAIT_FOR_COMPLETION) | (
        int(SendFlags.FORCE_MDL_LENGTH) if forced else 0
    )
    return make_call(shape, values["MdlOffset"], values["MdlLength"], flags)


def _rechecked(call: SendCall, reading: str, x: str, y: str) -> bool:
    from vmbspec.spec.discriminate import fresh_context, share_outcome
    from vmbspec.spec.rules import evaluate_send

    default = Profile.default()
    context = fresh_context()
    verdicts = [evaluate_send(call, context, default.with_choice(reading, o)) for o in (x, y)]
    return not share_outcome(*verdicts)


def search_shape(
    reading: str, x: str, y: str, forced: bool, chain: int
) -> SendCall | None:
    """The smallest call of one shape whose verdicts under ``x`` and ``y`` share no outcome."""
    ctx = z3.Context()
    a = Z3IntArith(ctx)
    sym = symbolic_inputs(a, chain)
    inp, v = sym.inputs, sym.variables
    segments = inp.segments[:chain]
    plan_x, ok_x = _accepted(a, inp, segments, forced, arith_readings(reading, x))
    plan_y, ok_y = _accepted(a, inp, segments, forced, arith_readings(reading, y))
    unused = [v[f"mdl{i}.{f}"] == 0 for i in range(chain, len(inp.segments))
              for f in ("ByteOffset", "ByteCount")]
    base = [
        sym.domain,
        v["chain_length"] == chain,
        v["ring_pages"] == RING_PAGES,
        v["BufferLength"] == BUFFER_LENGTH,
        *(v[f"mdl{i}.ByteCount"] <= MAX_BYTE_COUNT for i in range(chain)),
        *unused,
    ]
    for option, ok in ((x, ok_x), (y, ok_y)):
        shape = f"{reading}={option}, FORCE={forced}, {chain} MDL(s)"
        _cover(ctx, base, ok, f"{shape}: no call is accepted")
        _cover(ctx, base, z3.Not(ok), f"{shape}: no call is rejected")
    separate = z3.Or(ok_x != ok_y, z3.And(ok_x, ok_y, _ranges_differ(plan_x, plan_y)))
    numbers = [v["MdlOffset"], v["MdlLength"]]
    for i in range(chain):
        numbers += [v[f"mdl{i}.ByteCount"], v[f"mdl{i}.ByteOffset"]]
    blocked: list[Any] = []
    for _ in range(MAX_RETRIES):
        optimizer = z3.Optimize(ctx=ctx)
        optimizer.set("timeout", TIMEOUT_MS)
        optimizer.add(*base, separate, *blocked)
        optimizer.minimize(z3.Sum(*numbers))
        for number in numbers:
            optimizer.minimize(number)
        if optimizer.check() != z3.sat:
            return None
        model = optimizer.model()
        values = {n: model.eval(t, model_completion=True).as_long() for n, t in v.items()}
        call = _call(values, forced, chain)
        if _rechecked(call, reading, x, y):
            return call
        blocked.append(z3.Or(*(t != values[n] for n, t in v.items())))
    return None


def separating_call(reading: str, x: str, y: str) -> SendCall | None:
    """The plainest call (shapes in :data:`SHAPES` order) that tells option ``x`` of an
    arithmetic reading from ``y``, or None when the arithmetic cannot tell them apart."""
    for forced, chain in SHAPES:
        call = search_shape(reading, x, y, forced, chain)
        if call is not None:
            return call
    return None
