"""Prove your own check: is an implementation's bounds check the spec's rule?

A user writes the bounds check of their VmbPacketSendWithExternalMdl as a Python function over
the :class:`~spec.arith.Arith` interface, for one MDL::

    def check(a, byte_offset, byte_count, mdl_offset, mdl_length, forced: bool):
        '''Return a truth value of ``a``: True where the implementation accepts the call.'''

``byte_offset`` (< 4096), ``byte_count``, ``mdl_offset`` and ``mdl_length`` (UINT32) are words
of ``a``; ``forced`` is a Python bool (FORCE_MDL_LENGTH), so the function may branch on it.
Use only ``a.lit/add/sub/shl/shr/band/ult/ule/eq/all_of/any_of/not_/cases``; to model a
UINT32 local that wraps, mask it: ``a.band(a.add(x, y), 0xFFFFFFFF)``.

:func:`prove_check` runs the function on symbolic inputs and compares it with the spec's
acceptance predicate (``spec.arith.plan_external(...).in_bounds``, default readings), for both
values of ``forced``:

* ``unsafe``: some call is accepted by the check and rejected by the spec (or the check's own
  arithmetic leaves 64 bits), shown as a concrete call and replayed on Python ints;
* ``safe-but-stricter``: everything the check accepts the spec accepts, but it rejects a call
  the spec accepts (also shown);
* ``equivalent``: the two agree on every input.

The solver works over exact integers (:class:`~spec.proofs.z3arith.Z3IntArith`); the spec's
side is exact on 64-bit words by property P5, and the user's side is checked for the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import z3

from vmbspec.spec.arith import PY, Segment, plan_external
from vmbspec.spec.errors import ArithmeticWrap
from vmbspec.spec.proofs.z3arith import Z3IntArith

Verdict = Literal["equivalent", "safe-but-stricter", "unsafe", "unknown"]
CheckFunction = Callable[..., Any]

UINT32_BITS = 32


class CheckError(ValueError):
    """The user's check could not be evaluated (it raised, or returned something else)."""


@dataclass(frozen=True)
class CheckResult:
    verdict: Verdict
    seconds: float
    detail: str = ""
    #: The concrete call that separates the check from the spec, if any.
    call: str = ""
    values: dict[str, int] | None = None

    @property
    def safe(self) -> bool:
        return self.verdict in ("equivalent", "safe-but-stricter")

    def describe(self) -> str:
        text = f"{self.verdict} ({self.seconds:.3f} s)"
        if self.detail:
            text += f": {self.detail}"
        if self.call:
            text += "\n" + self.call
        return text


def _evaluate(func: CheckFunction, a: Any, args: tuple[Any, ...], forced: bool) -> Any:
    try:
        result = func(a, *args, forced)
    except ArithmeticWrap:
        raise
    except Exception as error:  # the user's code: report, never a traceback
        raise CheckError(f"the check raised {type(error).__name__}: {error}") from error
    if isinstance(result, bool):
        return result if a is PY else z3.BoolVal(result, a.ctx)
    if a is not PY and not z3.is_bool(result):
        raise CheckError(f"the check returned {type(result).__name__}, not a truth value")
    return result


def _call_text(values: dict[str, int], forced: bool, func: CheckFunction) -> str:
    bo, bc = values["ByteOffset"], values["ByteCount"]
    off, length = values["MdlOffset"], values["MdlLength"]
    flags = 0x3 if forced else 0x1
    spec = plan_external(PY, [Segment(bo, bc)], off, length, forced)
    try:
        mine: object = bool(_evaluate(func, PY, (bo, bc, off, length), forced))
    except ArithmeticWrap as wrap:
        mine = f"ArithmeticWrap ({wrap})"
    return (
        f"  MDL: ByteOffset={bo:#x} ByteCount={bc:#x}\n"
        f"  VmbPacketSendWithExternalMdl(Packet, Buffer, BufferLength, Mdl, MdlOffset={off:#x}, "
        f"MdlLength={length:#x}, Flags={flags:#x})\n"
        f"  replayed on Python ints: your check accepts={mine}, the spec accepts={spec.in_bounds} "
        f"(length {spec.length:#x}, bound {spec.bound:#x})"
    )


def prove_check(func: CheckFunction, *, timeout_s: float = 10.0) -> CheckResult:
    """Compare ``func`` with the spec's rule for every single-MDL call (see the module doc)."""
    started = time.perf_counter()
    stricter: CheckResult | None = None
    for forced in (False, True):
        ctx = z3.Context()
        a = Z3IntArith(ctx)
        names = ("ByteOffset", "ByteCount", "MdlOffset", "MdlLength")
        variables = {name: z3.Int(name, ctx) for name in names}
        domain = [v >= 0 for v in variables.values()]
        domain += [variables["ByteOffset"] < 4096]
        domain += [variables[n] < (1 << UINT32_BITS) for n in names[1:]]
        bo, bc, off, length = (variables[n] for n in names)
        spec = plan_external(a, [Segment(bo, bc)], off, length, forced).in_bounds
        user_start = len(a.obligations)
        try:
            mine = _evaluate(func, a, (bo, bc, off, length), forced)
        except ArithmeticWrap as wrap:  # pragma: no cover - Z3IntArith never raises it
            raise CheckError(str(wrap)) from wrap
        wraps = z3.Not(z3.And(*(o.as_bool() for o in a.obligations[user_start:])))
        queries: list[tuple[Verdict, str, Any]] = [
            ("unsafe", "the check's arithmetic leaves 64 bits", wraps),
            ("unsafe", "the check accepts a call the spec rejects", z3.And(mine, z3.Not(spec))),
            ("safe-but-stricter", "the check rejects a call the spec accepts",
             z3.And(spec, z3.Not(mine))),
        ]
        for verdict, what, query in queries:
            solver = z3.Solver(ctx=ctx)
            solver.set("timeout", max(1, int(timeout_s * 1000)))
            solver.add(*domain, query)
            answer = solver.check()
            if answer == z3.unsat:
                continue
            flag = "FORCE_MDL_LENGTH" if forced else "no FORCE_MDL_LENGTH"
            if answer != z3.sat:
                return CheckResult(
                    "unknown", time.perf_counter() - started,
                    f"{flag}: {what}? {solver.reason_unknown()}",
                )
            model = solver.model()
            values = {n: model.eval(v, model_completion=True).as_long()
                      for n, v in variables.items()}
            found = CheckResult(
                verdict, time.perf_counter() - started, f"{what} ({flag})",
                _call_text(values, forced, func), values,
            )
            if verdict == "unsafe":
                return found
            stricter = stricter or found
            break
    if stricter is not None:
        return CheckResult(
            stricter.verdict, time.perf_counter() - started, stricter.detail, stricter.call,
            stricter.values,
        )
    return CheckResult("equivalent", time.perf_counter() - started)
