"""Discriminating calls: for every two options of a reading, a call whose verdicts differ.

Theory of operation
-------------------
``vmbspec probe`` tells which reading of the documentation a target follows by running calls
on it whose verdicts, under two options of a reading, have *no outcome in common*: whatever the
target does, it is consistent with at most one of the two. This module finds those calls from
the spec itself, so no list of probes is kept by hand:

* the readings that live in the arithmetic (A1, A2, A3 and A5:
  :class:`~spec.arith.ArithReadings`) are searched by Z3 over the very ``spec.arith``
  functions the executable spec evaluates (:mod:`spec.proofs.discriminate`: a satisfiability
  query with a cover check, minimised so the call is small); a call another reading's option
  could fool gives way to a robust one of the lattice (:func:`find_group`);
* every other reading, and the interacting readings taken jointly (:data:`JOINT`), is searched
  over a bounded lattice of calls (:func:`lattice_calls`: ByteOffset 0, 1 and 0xFFF; ByteCount
  0, 1, 0x1000 and 0x1001; chains of one or two MDLs; offsets and lengths at the page bounds;
  the flags with and without WAIT_FOR_COMPLETION, FORCE_MDL_LENGTH and a bit outside the mask;
  a NULL MDL), smallest call first, with :func:`~spec.rules.evaluate_send` as the judge;
* the readings whose options differ only in how much they allow (A4 (a)/(b), A7 either, A8,
  A11, A12) have no separating call: a target following the narrower option is consistent
  with both. They are listed as *unobservable*, with the reason, and get a short step sequence
  each (:func:`sequence_probes`) that still shows a target taking the wider option's freedom.

A call that separates two options may still be fooled by a target that follows another option
of a third reading. Among the separating calls of the lattice the search prefers a *robust*
one (:func:`robust`: no single other reading's option makes the two look alike); the readings
that can still fool a probe are exactly those :data:`JOINT` declares interacting, whose
combinations are searched as joint groups (``"A1+A5"``, options ``"b+a"``) for the probe to
infer jointly (:func:`interacting`).

Two verdicts *share an outcome* (:func:`share_outcome`) when an ``Accepted`` of one emits what
an ``Accepted`` of the other emits (packet type, ranges with their PFNs, total length, the
completion-requested bit, and whether the packet completes when written or when the host
completes it), or when a ``Rejected`` of one and a ``Rejected`` of the other allow a common
status. Every probe written is re-checked in plain Python by :func:`verify_probe`.

The options of every reading come from the catalog (``spec/requirements.toml``) and the
profiles from :class:`~spec.readings.Profile`: a new option of a reading is searched for with
no new code here, as long as ``spec.rules`` (and ``spec.arith`` for A1, A2, A3, A5) implement
it.

Output: :func:`generate` returns the JSON-able document of ``conformance/probe/calls.json``;
``python -m vmbspec.spec.discriminate --write conformance/probe/calls.json`` writes it (the only I/O
of this module, in :func:`main`).
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vmbspec.spec.call import SendCall
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.constants import NT_ERROR, NtStatus, SendFlags
from vmbspec.spec.mdl import MdlChain, MdlSegment
from vmbspec.spec.readings import READING_IDS, Profile
from vmbspec.spec.rules import Accepted, Rejected, SendContext, StatusRule, Verdict, evaluate_send

GENERATED_BY = "python -m vmbspec.spec.discriminate --write conformance/probe/calls.json"

#: The ring every probe's channel has: 16 pages, as ``SendContext.fresh``.
RING_DATA_SIZE = 0x10000
#: The in-line buffer of every probe's send: 8 bytes, the same under every option.
BUFFER = bytes(range(1, 9))
WAIT = int(SendFlags.WAIT_FOR_COMPLETION)
FORCE = int(SendFlags.FORCE_MDL_LENGTH)
#: A flag bit outside the documented mask 0x7 (READ-A7).
UNKNOWN_FLAG = 0x8
#: The PFNs of MDL number i start at ``FIRST_PFN + i * PFN_STRIDE``: distinct everywhere, so two
#: ranges that name different pages of the chain never carry the same PFNs.
FIRST_PFN = 0x1000
PFN_STRIDE = 0x100

#: Readings whose options interact (issue 13 part 4): searched jointly, every combination.
JOINT: tuple[tuple[str, ...], ...] = (("A1", "A5"), ("A1", "A9"), ("A2", "A3"))
#: Readings whose options live in ``spec.arith`` (``Profile.arith``): searched with Z3.
ARITH_READINGS: tuple[str, ...] = ("A1", "A2", "A3", "A5")

#: Why options that no call separates cannot be told apart (beside the computed relation).
UNOBSERVABLE_WHY: Mapping[str, str] = {
    "A4": "(b) lets the target reject a send without WAIT_FOR_COMPLETION, which is what (a) "
          "requires: a target that rejects it is consistent with both; one that accepts it "
          "is not (a)",
    "A7": "'either' allows ignoring and rejecting a bit outside 0x7: a target does one of "
          "them and is then consistent with 'either' and that option",
    "A8": "'exact' allows only the recommended status, which 'any-error' allows too: a target "
          "returning STATUS_INVALID_PARAMETER is consistent with both; another error status "
          "is 'any-error' only",
    "A11": "'at-call' sends the bytes of the call, which 'call-or-write' allows too: a target "
           "that copies at the call is consistent with both; one that reads a queued "
           "non-paged buffer when it writes the packet is 'call-or-write' only",
    "A12": "'cancel' allows STATUS_CANCELLED and STATUS_DEVICE_REMOVED, which 'any-error' "
           "allows too: a target using them is consistent with both; another error status "
           "is 'any-error' only",
}


# ---------------------------------------------------------------------------------------------
# Readings, options and their profiles
# ---------------------------------------------------------------------------------------------


def reading_options(reading: str) -> tuple[str, ...]:
    """The options of ``reading`` (``"A3"``), in the catalog's order."""
    return tuple(CATALOG.reading(reading).options or ())


def multi_option_readings() -> tuple[str, ...]:
    """The readings with more than one option: those a probe has something to tell apart."""
    return tuple(r for r in READING_IDS if len(reading_options(r)) > 1)


@dataclass(frozen=True)
class Group:
    """One reading, or interacting readings taken jointly (options are tuples, one each)."""

    readings: tuple[str, ...]

    @property
    def key(self) -> str:
        return "+".join(self.readings)

    def options(self) -> list[tuple[str, ...]]:
        return list(itertools.product(*(reading_options(r) for r in self.readings)))

    def pairs(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        return list(itertools.combinations(self.options(), 2))

    def profile(self, option: tuple[str, ...]) -> Profile:
        """The default profile with this group's readings set to ``option``."""
        return _profile(self.readings, option)


@functools.lru_cache(maxsize=4096)
def _profile(readings: tuple[str, ...], option: tuple[str, ...]) -> Profile:
    name = "default" + "".join(f"+{r}={o}" for r, o in zip(readings, option, strict=True))
    return Profile(name, dict(zip(readings, option, strict=True)))


def label(option: tuple[str, ...]) -> str:
    """A joint option as the probe file writes it: ``"b+a"``."""
    return "+".join(option)


def interacting(readings: Sequence[str]) -> frozenset[str]:
    """The readings :data:`JOINT` ties to any of ``readings`` (transitively), besides them."""
    found = set(readings)
    while True:
        more = {r for joint in JOINT if found & set(joint) for r in joint} - found
        if not more:
            return frozenset(found - set(readings))
        found |= more


def groups() -> list[Group]:
    """Every multi-option reading alone, then the interacting readings jointly."""
    return [Group((r,)) for r in multi_option_readings()] + [Group(j) for j in JOINT]


# ---------------------------------------------------------------------------------------------
# Outcomes and when two verdicts share one
# ---------------------------------------------------------------------------------------------

#: One emitted range as a target shows it: (byte_count, byte_offset, PFNs).
RangeKey = tuple[int, int, tuple[int | None, ...]]


@dataclass(frozen=True)
class Emission:
    """What an accepted call shows at the interface."""

    packet_type: int
    ranges: tuple[RangeKey, ...]
    total: int
    #: ``None`` where either value of the bit conforms.
    completion_requested: bool | None
    #: False when the packet completes once written (READ-A4 (b)), True when the host's
    #: completion completes it: the completion routine runs at a different step.
    waits_for_completion: bool

    def overlaps(self, other: Emission) -> bool:
        bit_ok = (
            self.completion_requested is None
            or other.completion_requested is None
            or self.completion_requested == other.completion_requested
        )
        return (
            bit_ok
            and (self.packet_type, self.total, self.waits_for_completion)
            == (other.packet_type, other.total, other.waits_for_completion)
            and len(self.ranges) == len(other.ranges)
            and all(_ranges_overlap(r, s) for r, s in zip(self.ranges, other.ranges, strict=True))
        )


def _ranges_overlap(first: RangeKey, second: RangeKey) -> bool:
    """The same range, a PFN past the MDL's array (``None``, unsafe readings) matching any."""
    return (
        first[:2] == second[:2]
        and len(first[2]) == len(second[2])
        and all(a is None or b is None or a == b for a, b in zip(first[2], second[2], strict=True))
    )


def emission(accepted: Accepted) -> Emission:
    return Emission(
        packet_type=int(accepted.packet_type),
        ranges=tuple((r.byte_count, r.byte_offset, r.pfns) for r in accepted.ranges),
        total=accepted.total,
        completion_requested=accepted.completion_requested,
        waits_for_completion=accepted.waits_for_completion,
    )


@dataclass(frozen=True)
class Signature:
    """A verdict reduced to what a target can show: emissions and status rules."""

    emissions: tuple[Emission, ...]
    statuses: tuple[StatusRule, ...]


def signature(verdict: Verdict) -> Signature:
    return Signature(
        tuple(emission(o) for o in verdict.alternatives if isinstance(o, Accepted)),
        tuple(o.statuses for o in verdict.alternatives if isinstance(o, Rejected)),
    )


def statuses_overlap(first: StatusRule, second: StatusRule) -> bool:
    """Some status both rules allow. A status both allow is in one of the listed sets, or is
    any NT_ERROR status allowed by both through ``any_error`` (STATUS_INVALID_PARAMETER is
    then one)."""
    candidates = first.exact | first.also | second.exact | second.also
    candidates |= {int(NtStatus.STATUS_INVALID_PARAMETER)}
    assert NT_ERROR(NtStatus.STATUS_INVALID_PARAMETER)
    return any(first.allows(s) and second.allows(s) for s in candidates)


def signatures_share(first: Signature, second: Signature) -> bool:
    if any(a.overlaps(b) for a in first.emissions for b in second.emissions):
        return True
    return any(statuses_overlap(a, b) for a in first.statuses for b in second.statuses)


def share_outcome(first: Verdict, second: Verdict) -> bool:
    """The two verdicts have an outcome in common (see the module's docstring)."""
    return signatures_share(signature(first), signature(second))


def status_subset(narrow: StatusRule, wide: StatusRule) -> bool:
    """Every status ``narrow`` allows, ``wide`` allows."""
    if narrow.any_error and not wide.any_error:
        return False
    return all(wide.allows(s) for s in narrow.exact | narrow.also)


def within(narrow: Signature, wide: Signature) -> bool:
    """Every outcome of ``narrow`` is one ``wide`` allows too (an emission with either value
    of the completion bit is taken as allowed where one of them is)."""
    return all(any(e.overlaps(w) for w in wide.emissions) for e in narrow.emissions) and all(
        any(status_subset(s, w) for w in wide.statuses) for s in narrow.statuses
    )


# ---------------------------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------------------------


def fresh_context() -> SendContext:
    """An idle packet on an open, empty channel of :data:`RING_DATA_SIZE` bytes."""
    return SendContext.fresh(RING_DATA_SIZE)


def chain_of(shape: Sequence[tuple[int, int]]) -> MdlChain:
    """An MDL chain with distinct made-up PFNs for each ``(ByteOffset, ByteCount)``."""
    return MdlChain(tuple(
        MdlSegment.with_pages(bo, bc, FIRST_PFN + index * PFN_STRIDE)
        for index, (bo, bc) in enumerate(shape)
    ))


def make_call(
    shape: Sequence[tuple[int, int]] | None, mdl_offset: int, mdl_length: int, flags: int
) -> SendCall:
    """A send of :data:`BUFFER` with the MDL chain ``shape`` (None: a NULL MDL)."""
    return SendCall(
        buffer=BUFFER,
        buffer_length=len(BUFFER),
        mdl=None if shape is None else chain_of(shape),
        mdl_offset=mdl_offset,
        mdl_length=mdl_length,
        flags=flags,
    )


def _cost(call: SendCall) -> tuple[int, ...]:
    """Smaller is plainer: fewer MDLs, WAIT alone, small numbers."""
    segments = () if call.mdl is None else call.mdl.segments
    flag_rank = {WAIT: 0, WAIT | FORCE: 1, 0: 2, WAIT | UNKNOWN_FLAG: 3}.get(call.flags, 4)
    numbers = call.mdl_offset + call.mdl_length + sum(
        s.byte_offset + s.byte_count for s in segments
    )
    return (len(segments), flag_rank, numbers)


#: ByteOffset and ByteCount of the MDLs of the lattice (the sweep's page bounds).
LATTICE_BYTE_OFFSETS = (0, 1, 0xFFF)
LATTICE_BYTE_COUNTS = (0, 1, 0x1000, 0x1001)
#: Second MDLs of two-MDL chains: a smaller set (the first MDL ranges over all of the above).
LATTICE_SECOND_MDLS = ((0, 1), (0, 0x1000), (1, 0x1001))
LATTICE_OFFSETS = (0, 1, 0xFFF, 0x1000, 0x1001, 0x2000)
LATTICE_LENGTHS = (0, 1, 0xFFF, 0x1000, 0x1001, 0x2000)
LATTICE_FLAGS = (WAIT, WAIT | FORCE, 0, WAIT | UNKNOWN_FLAG)
#: (MdlOffset, MdlLength) of the sends with a NULL MDL.
LATTICE_NULL_MDL = ((0, 0), (1, 0), (0, 1))


def lattice_calls() -> list[SendCall]:
    """The bounded lattice of single calls, plainest first."""
    singles = [((bo, bc),) for bo in LATTICE_BYTE_OFFSETS for bc in LATTICE_BYTE_COUNTS]
    doubles = [(first[0], second) for first in singles for second in LATTICE_SECOND_MDLS]
    calls = [
        make_call(shape, offset, length, flags)
        for shape in (*singles, *doubles)
        for offset in LATTICE_OFFSETS
        for length in LATTICE_LENGTHS
        for flags in LATTICE_FLAGS
    ]
    calls += [
        make_call(None, offset, length, flags)
        for offset, length in LATTICE_NULL_MDL
        for flags in LATTICE_FLAGS
    ]
    return sorted(calls, key=_cost)


# ---------------------------------------------------------------------------------------------
# Steps (the conformance step format, no "expect" fields)
# ---------------------------------------------------------------------------------------------


def mdl_json(call: SendCall) -> Any:
    if call.mdl is None:
        return None
    return [[s.byte_offset, s.byte_count, list(s.pfns)] for s in call.mdl.segments]


def send_step(call: SendCall) -> dict[str, Any]:
    return {
        "op": "send",
        "packet": 0,
        "buffer": None if call.buffer is None else call.buffer.hex(),
        "buffer_length": call.buffer_length,
        "mdl": mdl_json(call),
        "mdl_offset": call.mdl_offset,
        "mdl_length": call.mdl_length,
        "flags": call.flags,
    }


def single_call_steps(call: SendCall) -> list[dict[str, Any]]:
    """An open channel, one packet, the send, and the host taking what was written (so its
    ranges, flags and the completion-routine calls are checked)."""
    return [
        {"op": "create_channel", "ring_data_size": RING_DATA_SIZE},
        {"op": "open", "channel": 0},
        {"op": "allocate", "channel": 0},
        send_step(call),
        {"op": "host_take", "channel": 0},
    ]


def call_of_steps(steps: Sequence[Mapping[str, Any]]) -> SendCall:
    """The send of a single-call probe, rebuilt from its steps (for re-verification)."""
    (step,) = [s for s in steps if s["op"] == "send"]
    mdl = step["mdl"]
    return SendCall(
        buffer=None if step["buffer"] is None else bytes.fromhex(step["buffer"]),
        buffer_length=step["buffer_length"],
        mdl=None if mdl is None else MdlChain(tuple(
            MdlSegment(bo, bc, tuple(pfns)) for bo, bc, pfns in mdl
        )),
        mdl_offset=step["mdl_offset"],
        mdl_length=step["mdl_length"],
        flags=step["flags"],
    )


# ---------------------------------------------------------------------------------------------
# What each option does with a call, in one line
# ---------------------------------------------------------------------------------------------


def _ranges_text(ranges: tuple[RangeKey, ...]) -> str:
    def pfns(values: tuple[int | None, ...]) -> str:
        return " ".join("?" if v is None else f"{v:#x}" for v in values)

    return ", ".join(f"{{count {c:#x}, offset {o:#x}, PFNs {pfns(p)}}}" for c, o, p in ranges)


def outcome_text(verdict: Verdict) -> str:
    parts = []
    for outcome in verdict.alternatives:
        if isinstance(outcome, Rejected):
            parts.append(f"rejects ({', '.join(outcome.violated[:2])})")
            continue
        what = emission(outcome)
        sent = f"sends {_ranges_text(what.ranges)}" if what.ranges else "sends no range"
        if not what.waits_for_completion:
            sent += ", completing when written"
        parts.append(sent)
    return " or ".join(parts)


#: The most characters of a probe's ``why``.
MAX_WHY = 1500


def why_text(group: Group, call: SendCall, options: Iterable[tuple[str, ...]]) -> str:
    """The call, then what each option does with it (options that do the same, together)."""
    context = fresh_context()
    by_outcome: dict[str, list[str]] = {}
    for option in options:
        text = outcome_text(evaluate_send(call, context, group.profile(option)))
        by_outcome.setdefault(text, []).append(label(option))
    lines = [f"{group.key}={', '.join(names)}: {text}" for text, names in by_outcome.items()]
    text = f"{call.describe()}: " + "; ".join(lines)
    return text if len(text) <= MAX_WHY else text[: MAX_WHY - 3] + "..."


# ---------------------------------------------------------------------------------------------
# The lattice search
# ---------------------------------------------------------------------------------------------

Pair = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass
class Judge:
    """Signatures of calls under profiles, each computed once (groups share profiles)."""

    calls: list[SendCall]
    context: SendContext = field(default_factory=fresh_context)
    #: (call index, the profile's choices) -> signature.
    _cache: dict[tuple[int, tuple[tuple[str, str], ...]], Signature] = field(
        default_factory=dict
    )
    #: The choices of each profile seen (by identity: profiles are built once and cached).
    _choices: dict[int, tuple[Profile, tuple[tuple[str, str], ...]]] = field(
        default_factory=dict
    )
    evaluations: int = 0

    def __post_init__(self) -> None:
        #: The lattice is ``calls[:lattice_size]``; calls found elsewhere (Z3) come after.
        self.lattice_size = len(self.calls)

    def add(self, call: SendCall) -> int:
        """Index of ``call``, appended after the lattice if it is not in it."""
        self.calls.append(call)
        return len(self.calls) - 1

    def signature(self, index: int, profile: Profile) -> Signature:
        known = self._choices.get(id(profile))
        if known is None or known[0] is not profile:
            known = self._choices[id(profile)] = (profile, tuple(sorted(profile.choices.items())))
        key = (index, known[1])
        found = self._cache.get(key)
        if found is None:
            self.evaluations += 1
            found = signature(evaluate_send(self.calls[index], self.context, profile))
            self._cache[key] = found
        return found

    def separates(self, index: int, group: Group, pair: Pair) -> bool:
        first, second = (self.signature(index, group.profile(o)) for o in pair)
        return not signatures_share(first, second)


def neighbours(group: Group) -> list[tuple[str, str]]:
    """(reading, option): one other reading set to one of its other options. A target may
    follow such an option; a robust probe is not fooled by it."""
    return [
        (reading, option)
        for reading in multi_option_readings()
        if reading not in group.readings
        for option in reading_options(reading)
        if option != CATALOG.reading(reading).default
    ]


_WITH: dict[tuple[str, str, str], Profile] = {}


def _with(profile: Profile, reading: str, option: str) -> Profile:
    """``profile.with_choice(reading, option)``, built once (profiles are not hashable; their
    names say every choice they make)."""
    key = (profile.name, reading, option)
    found = _WITH.get(key)
    if found is None:
        found = _WITH[key] = profile.with_choice(reading, option)
    return found


def robust(judge: Judge, index: int, group: Group, pair: Pair) -> bool:
    """The call separates ``pair`` even when the target follows another option of one other
    reading: a target following (x, S=o) is consistent with neither (y) nor (y, S=o), and the
    same the other way round."""
    x, y = group.profile(pair[0]), group.profile(pair[1])
    sx, sy = judge.signature(index, x), judge.signature(index, y)
    for reading, option in neighbours(group):
        nx = judge.signature(index, _with(x, reading, option))
        ny = judge.signature(index, _with(y, reading, option))
        if signatures_share(nx, ny) or signatures_share(nx, sy) or signatures_share(ny, sx):
            return False
    return True


#: Separating calls tried for robustness before the plainest one is taken as it is.
ROBUST_TRIES = 48


def search_lattice(judge: Judge, group: Group, pairs: Sequence[Pair]) -> dict[Pair, int]:
    """For each pair, the index of the plainest lattice call that separates it robustly
    (:func:`robust`), else the plainest that separates it; pairs without one are left out."""
    found: dict[Pair, int] = {}
    for pair in pairs:
        tries = 0
        for index in range(judge.lattice_size):
            if not judge.separates(index, group, pair):
                continue
            found.setdefault(pair, index)
            if robust(judge, index, group, pair):
                found[pair] = index
                break
            tries += 1
            if tries >= ROBUST_TRIES:
                break
    return found


# ---------------------------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------------------------


@dataclass
class Found:
    """A call that separates ``pair`` of ``group``, and how it was found."""

    group: Group
    pair: Pair
    index: int
    source: str


#: A Z3 search: (reading, option x, option y) -> a separating call, or None.
Z3Search = Callable[[str, str, str], SendCall | None]


def _separated_pairs(group: Group, call: SendCall) -> list[Pair]:
    context = fresh_context()
    verdicts = {o: evaluate_send(call, context, group.profile(o)) for o in group.options()}
    return [p for p in group.pairs() if not share_outcome(verdicts[p[0]], verdicts[p[1]])]


def _probe(
    group: Group, pair: Pair, call: SendCall, source: str, number: int
) -> dict[str, Any]:
    pairs = _separated_pairs(group, call)
    first = pair
    involved = list(dict.fromkeys(o for pair in pairs for o in pair))
    return {
        "id": f"{group.key}:{label(first[0])}|{label(first[1])}:{source}-{number}",
        "reading": group.key,
        "separates": [[label(a), label(b)] for a, b in pairs],
        "source": source,
        "why": why_text(group, call, involved),
        "steps": single_call_steps(call),
    }


def find_group(judge: Judge, group: Group, z3_search: Z3Search | None) -> list[Found]:
    """A separating call for every pair of ``group`` that has one: Z3 for a single arithmetic
    reading (when ``z3_search`` is given), the lattice for the rest, where Z3 finds nothing,
    and where Z3's call is not :func:`robust` but the lattice has one that is."""
    pairs = group.pairs()
    by_z3: dict[Pair, int] = {}
    fooled: dict[Pair, int] = {}  # Z3's call, which another reading's option can fool
    if z3_search is not None and len(group.readings) == 1 and (
        group.readings[0] in ARITH_READINGS
    ):
        for pair in pairs:
            call = z3_search(group.readings[0], pair[0][0], pair[1][0])
            if call is not None:
                index = judge.add(call)
                if robust(judge, index, group, pair):
                    by_z3[pair] = index
                else:
                    fooled[pair] = index
    by_lattice = search_lattice(judge, group, [p for p in pairs if p not in by_z3])
    found = []
    for pair in pairs:
        if pair in by_z3:
            found.append(Found(group, pair, by_z3[pair], "z3"))
        elif pair in by_lattice and (
            pair not in fooled or robust(judge, by_lattice[pair], group, pair)
        ):
            found.append(Found(group, pair, by_lattice[pair], "lattice"))
        elif pair in fooled:
            found.append(Found(group, pair, fooled[pair], "z3"))
    return found


def find_all(judge: Judge, z3_search: Z3Search | None) -> list[Found]:
    """:func:`find_group` for every group (:func:`groups`)."""
    return [item for group in groups() for item in find_group(judge, group, z3_search)]


def probes_of(judge: Judge, found: Sequence[Found]) -> list[dict[str, Any]]:
    """One probe per call, each listing every pair of its group it separates; a pair already
    separated robustly by an earlier probe of the group gets no probe of its own."""
    probes: list[dict[str, Any]] = []
    covered: dict[str, set[tuple[str, str]]] = {}
    numbers: dict[tuple[str, str], int] = {}
    made: set[tuple[str, SendCall]] = set()
    for item in found:
        done = covered.setdefault(item.group.key, set())
        key = (label(item.pair[0]), label(item.pair[1]))
        call = judge.calls[item.index]
        if key in done or (item.group.key, call) in made:
            continue
        made.add((item.group.key, call))
        number = numbers.get((item.group.key, item.source), 0) + 1
        numbers[(item.group.key, item.source)] = number
        probe = _probe(item.group, item.pair, call, item.source, number)
        done.add(key)
        done.update(
            (label(pair[0]), label(pair[1]))
            for pair in item.group.pairs()
            if judge.separates(item.index, item.group, pair)
            and robust(judge, item.index, item.group, pair)
        )
        probes.append(probe)
    return probes


# ---------------------------------------------------------------------------------------------
# Sequences for the readings no call separates
# ---------------------------------------------------------------------------------------------


def sequence_probes() -> list[dict[str, Any]]:
    """Short sequences where a target may use the freedom of the wider option of A4, A8, A11
    and A12. They separate no pair (a target keeping the narrower option passes under both),
    so ``separates`` is empty; a target that takes the freedom is consistent with the wider
    option only."""
    plain = make_call(((0, 0x10),), 0, 0, WAIT)
    rejected = make_call(None, 1, 0, WAIT)  # a NULL MDL with MdlOffset 1: an error under A6
    no_wait = make_call(((0, 0x10),), 0, 0, 0)
    setup = [
        {"op": "create_channel", "ring_data_size": RING_DATA_SIZE},
        {"op": "open", "channel": 0},
        {"op": "allocate", "channel": 0},
    ]
    return [
        {
            "id": "A4:a|b:sequence-1",
            "reading": "A4",
            "separates": [],
            "source": "sequence",
            "why": f"{no_wait.describe()} then the host takes it: (a) rejects it; (b) rejects it "
                   "or sends it and completes it when written; a target that accepts is not (a)",
            "steps": [*setup, send_step(no_wait), {"op": "host_take", "channel": 0}],
        },
        {
            "id": "A8:any-error|exact:sequence-1",
            "reading": "A8",
            "separates": [],
            "source": "sequence",
            "why": f"{rejected.describe()} is rejected under every reading: 'exact' allows "
                   "STATUS_INVALID_PARAMETER only, 'any-error' any error status",
            "steps": [*setup, send_step(rejected)],
        },
        {
            "id": "A11:call-or-write|at-call:sequence-1",
            "reading": "A11",
            "separates": [],
            "source": "sequence",
            "why": f"{plain.describe()} on a channel not yet open (queued), the buffer changed, "
                   "then the channel opened and the packet taken: 'at-call' sends the bytes of "
                   "the call; 'call-or-write' those or the changed ones",
            "steps": [
                {"op": "create_channel", "ring_data_size": RING_DATA_SIZE},
                {"op": "allocate", "channel": 0},
                send_step(plain),
                {"op": "mutate_buffer", "packet": 0},
                {"op": "open", "channel": 0},
                {"op": "host_take", "channel": 0},
            ],
        },
        {
            "id": "A12:cancel|any-error:sequence-1",
            "reading": "A12",
            "separates": [],
            "source": "sequence",
            "why": f"{plain.describe()}, then the channel disabled with the packet in the ring: "
                   "'cancel' allows STATUS_CANCELLED or STATUS_DEVICE_REMOVED for its "
                   "completion, 'any-error' any error status",
            "steps": [*setup, send_step(plain), {"op": "disable", "channel": 0}],
        },
    ]


# ---------------------------------------------------------------------------------------------
# Unobservable pairs
# ---------------------------------------------------------------------------------------------


def unobservable(judge: Judge, probes: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The pairs of single readings no probe separates, with why: the relation the lattice
    shows (one option allows all the other allows) and the reading's own reason."""
    separated = {
        (p["reading"], a, b) for p in probes for a, b in p["separates"]
    } | {(p["reading"], b, a) for p in probes for a, b in p["separates"]}
    entries = []
    for reading in multi_option_readings():
        group = Group((reading,))
        for x, y in group.pairs():
            if (reading, x[0], y[0]) in separated:
                continue
            entries.append({
                "reading": reading,
                "options": [x[0], y[0]],
                "why": _unobservable_why(judge, group, x, y),
            })
    return entries


def _unobservable_why(judge: Judge, group: Group, x: tuple[str, ...], y: tuple[str, ...]) -> str:
    profiles = (group.profile(x), group.profile(y))
    x_in_y = all(
        within(judge.signature(i, profiles[0]), judge.signature(i, profiles[1]))
        for i in range(judge.lattice_size)
    )
    y_in_x = all(
        within(judge.signature(i, profiles[1]), judge.signature(i, profiles[0]))
        for i in range(judge.lattice_size)
    )
    if x_in_y and y_in_x:
        relation = "every call of the lattice has the same outcomes under both"
    elif x_in_y:
        relation = f"on every call of the lattice ({y[0]}) allows every outcome ({x[0]}) allows"
    elif y_in_x:
        relation = f"on every call of the lattice ({x[0]}) allows every outcome ({y[0]}) allows"
    else:
        relation = "no call of the lattice has verdicts without an outcome in common"
    reason = UNOBSERVABLE_WHY.get(group.readings[0])
    return f"{relation}; {reason}" if reason else relation


# ---------------------------------------------------------------------------------------------
# Verification and the document
# ---------------------------------------------------------------------------------------------


def group_of(key: str) -> Group:
    return Group(tuple(key.split("+")))


def verify_probe(probe: Mapping[str, Any]) -> list[str]:
    """What is wrong with a probe (empty when each pair it claims is separated): its send is
    re-evaluated under both options of each pair with ``evaluate_send``."""
    if not probe["separates"]:
        return []
    group = group_of(probe["reading"])
    call = call_of_steps(probe["steps"])
    context = fresh_context()
    problems = []
    for a, b in probe["separates"]:
        first, second = (
            evaluate_send(call, context, group.profile(tuple(o.split("+")))) for o in (a, b)
        )
        if share_outcome(first, second):
            problems.append(
                f"{probe['id']}: ({a}) and ({b}) share an outcome: "
                f"{outcome_text(first)} / {outcome_text(second)}"
            )
    return problems


@dataclass
class Timings:
    z3_seconds: float = 0.0
    lattice_seconds: float = 0.0
    evaluations: int = 0
    lattice_calls: int = 0


def generate(use_z3: bool = True, timings: Timings | None = None) -> dict[str, Any]:
    """The document of ``conformance/probe/calls.json``: the arithmetic readings searched by
    :func:`spec.proofs.discriminate.separating_call` (or, without ``use_z3``, by the lattice
    like the others)."""
    from vmbspec.spec.proofs.discriminate import separating_call

    timings = timings if timings is not None else Timings()
    z3_time = [0.0]

    def timed_z3(reading: str, x: str, y: str) -> SendCall | None:
        start = time.perf_counter()
        try:
            return separating_call(reading, x, y)
        finally:
            z3_time[0] += time.perf_counter() - start

    start = time.perf_counter()
    judge = Judge(lattice_calls())
    found = find_all(judge, timed_z3 if use_z3 else None)
    probes = probes_of(judge, found) + sequence_probes()
    hidden = unobservable(judge, probes)
    problems = [p for probe in probes for p in verify_probe(probe)]
    if problems:
        raise AssertionError("; ".join(problems))
    timings.z3_seconds = z3_time[0]
    timings.lattice_seconds = time.perf_counter() - start - z3_time[0]
    timings.evaluations = judge.evaluations
    timings.lattice_calls = judge.lattice_size
    return {"generated_by": GENERATED_BY, "probes": probes, "unobservable": hidden}


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=1) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vmbspec.spec.discriminate",
        description="find the calls that tell the options of each reading apart",
    )
    parser.add_argument("--write", metavar="FILE", help="write the probes to FILE")
    args = parser.parse_args(argv)
    timings = Timings()
    document = generate(timings=timings)
    text = render(document)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    print(
        f"{len(document['probes'])} probes, {len(document['unobservable'])} unobservable "
        f"pairs; Z3 {timings.z3_seconds:.2f} s, lattice {timings.lattice_seconds:.2f} s "
        f"({timings.lattice_calls} calls, {timings.evaluations} verdicts)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
