"""The :class:`~spec.arith.Arith` protocol over 64-bit Z3 bit-vectors, with "no wrap" obligations.

Theory of operation
-------------------
``PyArith`` raises when an add, subtract or shift leaves 64 bits; a bit-vector would wrap
silently instead. So :class:`Z3Arith` records, for every ``add``, ``sub`` and ``shl`` it builds,
the condition under which that operation is exact, guarded by the *path condition*: the
conjunction of the :meth:`Z3Arith.cases` conditions under which the operation is evaluated at
all. ``PyArith`` evaluates only the branch it takes, so an obligation outside the taken branch
must not count; the guard makes the Z3 obligation exactly as strong as the ``PyArith`` check.
Property P5 proves the conjunction of all recorded obligations.

Inputs enter as 32-bit (or narrower) variables zero-extended to the 64-bit word
(:meth:`Z3Arith.uint`), so the domain constraint "UINT32" is built into the variable and needs
no assumption.

z3 ships no type hints, so ``Word`` and ``Bool`` are aliases of its (untyped) classes; the
protocol's type variables are bound to them here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import z3

from vmbspec.spec.arith import WORD_BITS
from vmbspec.spec.constants import UINT64_MAX

#: The narrowest word a property may use: every input is a UINT32 and some sums need carries.
MIN_WIDTH = 36

#: z3.BitVecRef, Int and z3.BoolRef: z3 has no type hints, so these are Any.
Word: TypeAlias = Any
Int: TypeAlias = Any
Bool: TypeAlias = Any


@dataclass(frozen=True)
class Obligation:
    """``guard -> exact``: the operation ``what`` does not wrap where it is evaluated."""

    what: str
    guard: Bool
    exact: Bool

    def as_bool(self) -> Bool:
        return z3.Implies(self.guard, self.exact)


class _PathConditions:
    """What both Z3 arithmetics share: truth values, the path condition under which each
    operation is evaluated (:meth:`cases`), and the no-wrap obligations guarded by it."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx if ctx is not None else z3.main_ctx()
        self._path: list[Bool] = []
        self.obligations: list[Obligation] = []

    def _guard(self) -> Bool:
        return z3.And(*self._path) if self._path else z3.BoolVal(True, self.ctx)

    def _oblige(self, what: str, exact: Bool) -> None:
        self.obligations.append(Obligation(what, self._guard(), exact))

    def all_of(self, *conds: Bool) -> Bool:
        if not conds:
            return z3.BoolVal(True, self.ctx)
        return conds[0] if len(conds) == 1 else z3.And(*conds)

    def any_of(self, *conds: Bool) -> Bool:
        if not conds:
            return z3.BoolVal(False, self.ctx)
        return conds[0] if len(conds) == 1 else z3.Or(*conds)

    def not_(self, cond: Bool) -> Bool:
        return z3.Not(cond)

    def cases(self, cond: Bool, then: Callable[[], Any], otherwise: Callable[[], Any]) -> Any:
        with self.assuming(cond):
            taken = then()
        with self.assuming(z3.Not(cond)):
            other = otherwise()
        return z3.If(cond, taken, other)

    @contextmanager
    def assuming(self, cond: Bool) -> Iterator[None]:
        """Evaluate the body under ``cond``: its obligations are guarded by it."""
        self._path.append(cond)
        try:
            yield
        finally:
            self._path.pop()

    def no_wrap(self) -> Bool:
        """The conjunction of every obligation recorded so far."""
        return self.all_of(*(o.as_bool() for o in self.obligations))


class Z3Arith(_PathConditions):
    """:class:`~spec.arith.Arith` over ``BitVec(64)``; records an obligation per add/sub/shl.

    ``ctx`` is the Z3 context the expressions live in (the default context unless given), so
    a property can be built and solved in a context of its own.
    """

    def __init__(self, ctx: Any = None, width: int = WORD_BITS) -> None:
        if not MIN_WIDTH <= width <= WORD_BITS:
            raise ValueError(f"width {width} is not in {MIN_WIDTH}..{WORD_BITS}")
        super().__init__(ctx)
        self.width = width
        self.top = (1 << width) - 1

    # -- inputs ---------------------------------------------------------------------------

    def uint(self, name: str, bits: int = 32) -> Word:
        """A fresh unsigned input of ``bits`` bits, zero-extended to the 64-bit word."""
        var = z3.BitVec(name, bits, self.ctx)
        return z3.ZeroExt(self.width - bits, var) if bits < self.width else var

    # -- the protocol ---------------------------------------------------------------------

    def lit(self, value: int) -> Word:
        if value == UINT64_MAX:
            value = self.top  # "no limit" (reading A3 (d)): the largest word of this width
        if not 0 <= value <= self.top:
            raise ValueError(f"constant {value:#x} is not a {self.width}-bit unsigned word")
        return z3.BitVecVal(value, self.width, self.ctx)

    def add(self, a: Word, b: Word) -> Word:
        self._oblige("add", z3.BVAddNoOverflow(a, b, False))
        return a + b

    def sub(self, a: Word, b: Word) -> Word:
        self._oblige("sub", z3.ULE(b, a))
        return a - b

    def shl(self, a: Word, bits: int) -> Word:
        if not 0 <= bits < self.width:
            raise ValueError(f"shift by {bits} is not below {self.width}")
        if bits:
            lost = z3.Extract(self.width - 1, self.width - bits, a)
            self._oblige("shl", lost == z3.BitVecVal(0, bits, self.ctx))
        return a << bits

    def shr(self, a: Word, bits: int) -> Word:
        return z3.LShR(a, bits)

    def band(self, a: Word, mask: int) -> Word:
        return a & z3.BitVecVal(mask & self.top, self.width, self.ctx)

    def ult(self, a: Word, b: Word) -> Bool:
        return z3.ULT(a, b)

    def ule(self, a: Word, b: Word) -> Bool:
        return z3.ULE(a, b)

    def eq(self, a: Word, b: Word) -> Bool:
        return a == b


class Z3IntArith(_PathConditions):
    """:class:`~spec.arith.Arith` over unbounded Z3 integers: the exact value of every formula.

    Linear integer arithmetic proves the page properties in milliseconds where bit-blasting
    64-bit adders takes seconds. The bridge to the spec's 64-bit words is property P5: it proves
    (over :class:`Z3Arith`) that no operation of the spec leaves ``[0, 2**64)``, and on that
    range each operation here (``+``, ``-``, ``* 2**k``, ``div 2**k``, the masks below) has the
    value of the 64-bit one. The same obligations are recorded here, over integers, so a
    property can also check its own claim's arithmetic.

    ``band`` takes the masks the formulas use: a low mask ``2**k - 1`` (``mod``), its complement
    within 64 bits (``x - x mod 2**k``, exact for ``x < 2**64``) and masks of a few bits.
    """

    width = 0  # unbounded

    def __init__(self, ctx: Any = None) -> None:
        super().__init__(ctx)

    def uint(self, name: str, bits: int = 32) -> Int:
        """A fresh integer variable; its range ``0 .. 2**bits - 1`` is :meth:`domain_of`."""
        return z3.Int(name, self.ctx)

    def lit(self, value: int) -> Int:
        if not 0 <= value <= UINT64_MAX:
            raise ValueError(f"constant {value} is not a 64-bit unsigned word")
        return z3.IntVal(value, self.ctx)

    def add(self, a: Int, b: Int) -> Int:
        result = a + b
        self._oblige("add", result <= UINT64_MAX)
        return result

    def sub(self, a: Int, b: Int) -> Int:
        self._oblige("sub", b <= a)
        return a - b

    def shl(self, a: Int, bits: int) -> Int:
        result = a * (1 << bits)
        self._oblige("shl", result <= UINT64_MAX)
        return result

    def shr(self, a: Int, bits: int) -> Int:
        return a / (1 << bits) if bits else a

    def band(self, a: Int, mask: int) -> Int:
        mask &= UINT64_MAX
        low = mask + 1
        if low & mask == 0:  # 2**k - 1
            return a % low if mask != UINT64_MAX else a
        high = (UINT64_MAX ^ mask) + 1
        if high & (high - 1) == 0:  # 2**64 - 2**k
            return a - a % high
        if bin(mask).count("1") <= 8:
            bits = [i for i in range(64) if mask >> i & 1]
            return z3.Sum(*(((a / (1 << i)) % 2) * (1 << i) for i in bits))
        raise ValueError(f"mask {mask:#x} has no linear form here")

    def ult(self, a: Int, b: Int) -> Bool:
        return a < b

    def ule(self, a: Int, b: Int) -> Bool:
        return a <= b

    def eq(self, a: Int, b: Int) -> Bool:
        return a == b
