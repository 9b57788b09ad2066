"""The rules of VmbPacketSendWithExternalMdl: what a call may do, given the state around it.

Theory of operation
-------------------
:func:`evaluate_send` is a pure function from a call (:class:`~spec.call.SendCall`), the state
of its packet and channel (:class:`SendContext`) and a :class:`~spec.readings.Profile` to a
:class:`Verdict`: the set of outcomes the documentation allows. There are two kinds:

* :class:`Rejected`: the call returns a failure status from :attr:`Rejected.statuses`, emits
  nothing and leaves the packet as it was. ``violated`` lists every requirement the call broke.
* :class:`Accepted`: the call returns STATUS_SUCCESS, and the packet it emits (now or, when
  ``disposition`` is QUEUE, once it leaves the channel's queue) carries exactly ``ranges``,
  ``completion_requested`` and ``payload``.

Where the documentation allows more than one outcome (readings A4 (b), A7, A8, A11, A13, and a
send on a closed channel) the verdict holds every one of them; the spec never picks silently.

Every rule below is headed by its requirement ID and the sentence it enforces. The offset and
length arithmetic is not written here: it is ``spec.arith.plan_external``, the code the Z3
model proves things about. This module turns its results into outcomes and reasons.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum

from vmbspec.spec import arith
from vmbspec.spec.call import SendCall
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.constants import NT_ERROR as _nt_error
from vmbspec.spec.constants import (
    PAGE_SIZE,
    RING_TRAILER_SIZE,
    UINT32_MAX,
    VMBUS_CHANNEL_FORMAT_FLAGS,
    NtStatus,
    PacketType,
    SendFlags,
    status_name,
)
from vmbspec.spec.errors import InvalidType, InvalidValue
from vmbspec.spec.lifecycle import ChannelState, PacketState
from vmbspec.spec.mdl import MdlChain, shown_int
from vmbspec.spec.readings import Profile

DEFAULT_PROFILE = Profile.default()


def _ids(*ids: str) -> tuple[str, ...]:
    return CATALOG.require(*ids)


# ---------------------------------------------------------------------------------------------
# Outcomes
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusRule:
    """The failure statuses a rejection may return.

    READ-A8: "an appropriate NTSTATUS error code": any NT_ERROR status by default; the exact
    profile narrows it to the recommended statuses. ``also`` admits a listed non-error status
    (STATUS_BUFFER_OVERFLOW, a warning, for READ-A13).
    """

    any_error: bool
    exact: frozenset[int] = frozenset()
    also: frozenset[int] = frozenset()

    def allows(self, status: int) -> bool:
        if status in self.exact or status in self.also:
            return True
        return self.any_error and _nt_error(status)

    def describe(self) -> str:
        parts = ["any NT_ERROR status"] if self.any_error else []
        parts += sorted(status_name(s) for s in self.exact | self.also)
        return " or ".join(parts)

    def union(self, other: StatusRule) -> StatusRule:
        return StatusRule(
            self.any_error or other.any_error, self.exact | other.exact, self.also | other.also
        )


@dataclass(frozen=True)
class Rejected:
    """The call fails: a status from ``statuses``, nothing emitted, the packet unchanged."""

    violated: tuple[str, ...]
    reasons: tuple[str, ...]
    statuses: StatusRule
    #: True when the call breaks a rule for the caller (READ-A10): only robust targets are
    #: expected to reject it; others may do anything, so the suite does not make the call.
    contract_violation: bool = False

    @property
    def requirements(self) -> tuple[str, ...]:
        return self.violated


class Disposition(Enum):
    """Where an accepted packet goes at the call."""

    RING = "ring"  # written to the ring during the call
    QUEUE = "queue"  # appended to the channel's FIFO queue (KMCL-QUEUE-FULL, KMCL-QUEUE-CLOSED)
    HELD = "held"  # accepted on a closed channel: queued, never sent (KMCL-QUEUE-CLOSED)


@dataclass(frozen=True)
class ExpectedRange:
    """One GPA range: ``pfns[i]`` is ``None`` where a reading sends past the MDL's PFN array."""

    mdl_index: int
    byte_offset: int
    byte_count: int
    pfns: tuple[int | None, ...]


@dataclass(frozen=True)
class Accepted:
    """The call succeeds; the emitted packet must be exactly this."""

    packet_type: PacketType
    ranges: tuple[ExpectedRange, ...]
    #: The descriptor's "completion requested" bit; ``None`` where either value conforms.
    completion_requested: bool | None
    #: Whether the packet is complete only when the opposite endpoint completes it (SEED-WAIT).
    waits_for_completion: bool
    payload: bytes
    #: READ-A11: a non-paged buffer on a queued packet may be read when the packet is written.
    payload_may_be_late: bool
    data_offset: int
    total: int
    disposition: Disposition
    requirements: tuple[str, ...]
    #: Requirements an unsafe reading of the active profile breaks for this call (A3 (b)/(d)).
    unsafe: tuple[str, ...] = ()


Outcome = Accepted | Rejected


@dataclass(frozen=True)
class Verdict:
    """Every outcome the documentation allows for one call."""

    alternatives: tuple[Outcome, ...]

    @property
    def accepted(self) -> Accepted | None:
        return next((o for o in self.alternatives if isinstance(o, Accepted)), None)

    @property
    def rejected(self) -> Rejected | None:
        return next((o for o in self.alternatives if isinstance(o, Rejected)), None)

    @property
    def requirements(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for outcome in self.alternatives:
            seen.update(dict.fromkeys(outcome.requirements))
        return tuple(seen)

    def outcome_for(self, status: int) -> Outcome | None:
        """The alternative a returned status selects, or None if no alternative allows it."""
        if status == NtStatus.STATUS_SUCCESS:
            return self.accepted
        return next(
            (
                o for o in self.alternatives
                if isinstance(o, Rejected) and o.statuses.allows(status)
            ),
            None,
        )

    def describe(self) -> str:
        parts = []
        for outcome in self.alternatives:
            if isinstance(outcome, Accepted):
                parts.append(
                    f"STATUS_SUCCESS, {len(outcome.ranges)} range(s), {outcome.total} bytes, "
                    f"{outcome.disposition.value}"
                )
            else:
                parts.append(f"{outcome.statuses.describe()} ({', '.join(outcome.violated)})")
        return " | ".join(parts)


# ---------------------------------------------------------------------------------------------
# Context
# ---------------------------------------------------------------------------------------------


def _ring_data_size(value: object) -> int:
    """The data area of a ring: whole pages (the ring is built of them), and a UINT32."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidType(f"ring_data_size is an int, not {type(value).__name__}")
    if not PAGE_SIZE <= value <= UINT32_MAX or value % PAGE_SIZE:
        raise InvalidValue(
            f"ring_data_size = {shown_int(value)} is not a multiple of {PAGE_SIZE} in "
            f"{PAGE_SIZE}..{UINT32_MAX:#x}"
        )
    return value



@dataclass(frozen=True)
class SendContext:
    """What the rules need to know besides the arguments."""

    packet: PacketState
    channel: ChannelState
    ring_data_size: int
    #: Free bytes in the ring now (``data size - used``).
    ring_free: int
    queue_empty: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.packet, PacketState):
            raise InvalidType(f"packet is a PacketState, not {type(self.packet).__name__}")
        if not isinstance(self.channel, ChannelState):
            raise InvalidType(f"channel is a ChannelState, not {type(self.channel).__name__}")
        size = _ring_data_size(self.ring_data_size)
        if isinstance(self.ring_free, bool) or not isinstance(self.ring_free, int):
            raise InvalidType(f"ring_free is an int, not {type(self.ring_free).__name__}")
        if not 0 <= self.ring_free <= size:
            raise InvalidValue(
                f"ring_free = {shown_int(self.ring_free)} is outside 0..ring_data_size ({size})"
            )
        if not isinstance(self.queue_empty, bool):
            raise InvalidType(f"queue_empty is a bool, not {type(self.queue_empty).__name__}")

    @classmethod
    def fresh(cls, ring_data_size: int = 0x10000, *, open_channel: bool = True) -> SendContext:
        """An idle packet on an empty channel."""
        if not isinstance(open_channel, bool):
            raise InvalidType(f"open_channel is a bool, not {type(open_channel).__name__}")
        _ring_data_size(ring_data_size)
        channel = ChannelState.OPEN if open_channel else ChannelState.NOT_OPEN
        return cls(PacketState.IDLE, channel, ring_data_size, ring_data_size)


# ---------------------------------------------------------------------------------------------
# Statuses (READ-A8)
# ---------------------------------------------------------------------------------------------

_RECOMMENDED: dict[str, frozenset[int]] = {
    "READ-A10": frozenset({NtStatus.STATUS_INVALID_DEVICE_STATE}),
    "KMCL-QUEUE-CLOSED": frozenset({NtStatus.STATUS_DEVICE_REMOVED}),
    "READ-A13": frozenset({NtStatus.STATUS_BUFFER_OVERFLOW, NtStatus.STATUS_INVALID_PARAMETER}),
}


def _statuses(violated: tuple[str, ...], profile: Profile) -> StatusRule:
    # READ-A13: STATUS_BUFFER_OVERFLOW is a warning, not NT_ERROR, yet documented for
    # "did not fit and was not queued"; it is allowed for that rule alone.
    also = frozenset({NtStatus.STATUS_BUFFER_OVERFLOW}) if "READ-A13" in violated else frozenset()
    if profile["A8"] == "any-error":
        return StatusRule(any_error=True, also=also)
    exact: frozenset[int] = frozenset()
    for requirement in violated:
        exact |= _RECOMMENDED.get(requirement, frozenset({NtStatus.STATUS_INVALID_PARAMETER}))
    return StatusRule(any_error=False, exact=exact)


def _reject(
    violations: list[tuple[tuple[str, ...], str]], profile: Profile, contract: bool = False
) -> Rejected:
    violated: dict[str, None] = {}
    for ids, _ in violations:
        violated.update(dict.fromkeys(ids))
    ids = tuple(violated)
    return Rejected(ids, tuple(r for _, r in violations), _statuses(ids, profile), contract)


# ---------------------------------------------------------------------------------------------
# The external data: MdlOffset / MdlLength over the chain
# ---------------------------------------------------------------------------------------------


@dataclass
class _External:
    ranges: list[ExpectedRange] = field(default_factory=list)
    violations: list[tuple[tuple[str, ...], str]] = field(default_factory=list)
    exercised: list[str] = field(default_factory=list)
    unsafe: list[str] = field(default_factory=list)


def _segments(chain: MdlChain) -> list[arith.Segment[int]]:
    return [s.as_term for s in chain.segments]


def _ranges_of(plan: arith.Plan[int, bool], chain: MdlChain) -> list[ExpectedRange]:
    ranges = []
    for term in plan.ranges:
        if not term.present:
            continue
        pfn_array = chain.segments[term.mdl_index].pfns
        pfns = tuple(
            pfn_array[i] if i < len(pfn_array) else None
            for i in range(term.first_pfn, term.first_pfn + term.pfn_count)
        )
        ranges.append(
            ExpectedRange(term.mdl_index, term.byte_offset, term.byte_count, pfns)
        )
    return ranges


def _external(call: SendCall, chain: MdlChain, forced: bool, profile: Profile) -> _External:
    result = _External()
    result.exercised += [
        "SEED-MDL",
        "SEED-MDLOFFSET",
        "SEED-MDLLENGTH",
        "SEED-OFFSET-LENGTH",
        "READ-A2",
        "MDL-PFNS",
        "MDL-BYTEOFFSET",
    ]
    if call.mdl_length == 0:
        result.exercised += ["SEED-MDLLENGTH-ZERO", "READ-A1"]
    if forced:
        # SEED-FORCE-FIRST: "If this flag is set, only the first MDL in the MDL chain is used."
        result.exercised += ["SEED-FORCE-LENGTH", "SEED-FORCE-BOUND", "SEED-FORCE-FIRST", "READ-A3"]
    elif len(chain.segments) > 1:
        # READ-A5: (a) the chain is one logical buffer; (b) offset and length on the first MDL,
        # the rest sent whole; (c) the first MDL only (spec.arith.plan_external).
        result.exercised.append("READ-A5")
    # READ-A2: "The offset from the buffer described by the MDL where the data starts." (a)
    # counts from MmGetMdlVirtualAddress, byte 0 of ByteCount; (b) from StartVa, the start of
    # the first MDL's first page, ByteOffset bytes earlier (spec.arith.plan_external).
    plan = arith.plan_external(
        arith.PY, _segments(chain), call.mdl_offset, call.mdl_length, forced, profile.arith
    )
    if not plan.origin_ok:
        result.violations.append((
            _ids("SEED-MDLOFFSET", "READ-A2"),
            f"MdlOffset {call.mdl_offset:#x}, counted from StartVa (A2 (b)), points before the "
            f"data the MDL describes, which starts at ByteOffset {chain.first.byte_offset:#x}",
        ))
        return result
    # Under A2 (b), what the bounds below compare is MdlOffset counted from the data.
    offset = f"MdlOffset {call.mdl_offset:#x}"
    if plan.offset != call.mdl_offset:
        offset += f" ({plan.offset:#x} into the data, A2 (b))"
    # SEED-MDLOFFSET, SEED-MDLLENGTH: the sub-buffer [MdlOffset, MdlOffset + length) lies in
    # the buffer the MDL describes. SEED-FORCE-BOUND: under FORCE_MDL_LENGTH the length may
    # exceed ByteCount "only ... by rounding up to a page boundary" (READ-A3).
    if not plan.in_bounds:
        bound_ids: tuple[str, ...] = ("SEED-MDLOFFSET", "SEED-MDLLENGTH")
        if forced:
            bound_ids += ("SEED-FORCE-BOUND", "READ-A3")
        if plan.length != 0:
            reason = (
                f"{offset} + length {plan.length:#x} = "
                f"{plan.offset + plan.length:#x} exceeds the bound {plan.bound:#x}"
            )
            result.violations.append((_ids(*bound_ids), reason))
        elif call.mdl_length == 0 and profile["A1"] == "c" and plan.offset != 0:
            reason = "MdlLength 0 asks for the entire MDL, which needs MdlOffset 0 (A1 (c))"
            result.violations.append((_ids("SEED-MDLLENGTH-ZERO", "READ-A1"), reason))
        elif plan.offset > plan.whole:
            reason = f"{offset} is past the {plan.whole:#x} bytes described"
            result.violations.append((_ids(*bound_ids), reason))
        elif profile["A9"] == "no-range":
            return result  # READ-A9 (no-range): a packet without external data
        else:
            # READ-A9: a resolved length of 0 would be a 0-byte range (WIRE-RANGE-NONEMPTY).
            reason = (
                f"the external data resolves to 0 bytes ({offset}, "
                f"MdlLength {call.mdl_length:#x}, {plan.whole:#x} bytes described)"
            )
            result.violations.append((_ids("READ-A9", "WIRE-RANGE-NONEMPTY"), reason))
        return result

    result.ranges = _ranges_of(plan, chain)
    if any(None in r.pfns for r in result.ranges):
        # Only the unsafe readings A3 (b) and (d) get here: the packet names pages past the
        # MDL's PFN array (MDL-PFNS); the Z3 model's P7 shows it.
        result.unsafe.append("MDL-PFNS")
    return result


# ---------------------------------------------------------------------------------------------
# The call
# ---------------------------------------------------------------------------------------------


def evaluate_send(
    call: SendCall, context: SendContext, profile: Profile = DEFAULT_PROFILE
) -> Verdict:
    """Every outcome the documentation allows for ``call`` in ``context``."""
    for name, value, kind in (("call", call, SendCall), ("context", context, SendContext),
                              ("profile", profile, Profile)):
        if not isinstance(value, kind):
            raise InvalidType(f"{name} is a {kind.__name__}, not {type(value).__name__}")
    # READ-A10: the packet object "represents the packet throughout the lifetime of the
    # transaction"; sending it again before it completes, or after VmbPacketFree, is undefined.
    if context.packet not in (PacketState.IDLE, PacketState.COMPLETED):
        violation = (
            _ids("READ-A10", "SEED-ASSOCIATE"),
            f"the packet is {context.packet.value}; only an idle or completed packet may be sent",
        )
        return Verdict((_reject([violation], profile, contract=True),))

    # READ-A7: "The following are pertinent flags": bits outside 0x7 are ignored or rejected.
    unknown = call.flags & ~VMBUS_CHANNEL_FORMAT_FLAGS
    known_flags = call.flags & VMBUS_CHANNEL_FORMAT_FLAGS
    if not unknown:
        return Verdict(_evaluate(call, known_flags, context, profile))
    flag_violation = (_ids("READ-A7"), f"Flags has bits {unknown:#x} outside the documented 0x7")
    if profile["A7"] == "reject":
        return Verdict((_reject([flag_violation], profile),))
    ignored = tuple(
        replace(o, requirements=(*o.requirements, "READ-A7")) if isinstance(o, Accepted) else o
        for o in _evaluate(call, known_flags, context, profile)
    )
    if profile["A7"] == "ignore":
        return Verdict(ignored)
    return Verdict((*ignored, _reject([flag_violation], profile)))


def _evaluate(
    call: SendCall, flags: int, context: SendContext, profile: Profile
) -> tuple[Outcome, ...]:
    violations: list[tuple[tuple[str, ...], str]] = []
    exercised = ["SEED-SEND", "SEED-RETURN", "SEED-BUFFER", "SEED-BUFFERLENGTH", "READ-A8"]
    if context.packet is PacketState.COMPLETED:
        exercised.append("KMCL-REUSE")

    # SEED-WAIT-MUST: "This flag must be set." (READ-A4)
    waits = bool(flags & SendFlags.WAIT_FOR_COMPLETION)
    may_skip_wait = False
    if not waits:
        exercised += ["SEED-WAIT-MUST", "READ-A4"]
        if profile["A4"] == "a":
            violations.append(
                (_ids("SEED-WAIT-MUST", "READ-A4"), "WAIT_FOR_COMPLETION is not set")
            )
        elif profile["A4"] == "b":
            may_skip_wait = True
        else:
            waits = True
    else:
        exercised += ["SEED-WAIT", "KMCL-COMPLETION"]

    # READ-A14: Buffer NULL with BufferLength > 0 has no bytes to send.
    if call.buffer is None and call.buffer_length > 0:
        violations.append(
            (_ids("READ-A14", "SEED-BUFFER", "SEED-BUFFERLENGTH"),
             f"Buffer is NULL but BufferLength is {call.buffer_length:#x}")
        )

    forced = bool(flags & SendFlags.FORCE_MDL_LENGTH)
    paged = bool(flags & SendFlags.PAGED_BUFFER)
    ranges: list[ExpectedRange] = []
    unsafe: list[str] = []
    packet_type = PacketType.DATA_USING_GPA_DIRECT
    if call.mdl is None:
        # READ-A6: "sends the data in a packet buffer or external data MDL": with no MDL and
        # no offset or length, a send like VmbPacketSend without external data.
        exercised.append("READ-A6")
        if profile["A6"] == "b" or call.mdl_offset or call.mdl_length:
            violations.append(
                (_ids("READ-A6", "SEED-MDL"),
                 "ExternalDataMdl is NULL"
                 + (" but MdlOffset or MdlLength is not 0" if profile["A6"] == "a" else ""))
            )
        packet_type = PacketType.DATA_INBAND
    else:
        external = _external(call, call.mdl, forced, profile)
        violations += external.violations
        exercised += external.exercised
        ranges = external.ranges
        unsafe = external.unsafe
        if not ranges and not external.violations:
            # READ-A9 (no-range): nothing external to send; a GPA-direct packet needs at least
            # one range (WIRE-LAYOUT), so the packet is in-band, as with a NULL MDL.
            exercised.append("READ-A9")
            packet_type = PacketType.DATA_INBAND
    if paged:
        exercised += ["SEED-PAGED", "READ-A11"]

    # READ-A13: a packet that can never fit is rejected, not queued for ever.
    data_offset, total = _packet_size(ranges, call.buffer_length, packet_type)
    if not arith.fits_ring(arith.PY, data_offset, total, context.ring_data_size):
        violations.append(
            (_ids("READ-A13", "WIRE-LENGTH8", "RING-NEVER-FULL"),
             f"the packet can never fit: {total} bytes (data at {data_offset}) + trailer "
             f"against a {context.ring_data_size}-byte ring and the u16 length8")
        )

    if violations:
        if context.channel is ChannelState.DISABLED:
            # READ-A8 (exact): a call that breaks a rule on a closed channel breaks two; the
            # status recommended for either conforms (KMCL-QUEUE-CLOSED: STATUS_DEVICE_REMOVED).
            violations.append((_ids("KMCL-QUEUE-CLOSED"), "the channel is closed"))
        return (_reject(violations, profile),)

    exercised += ["WIRE-LAYOUT", "WIRE-FLAGS", "RING-LAYOUT", "RING-TRAILER", "RING-NEVER-FULL"]
    if ranges:
        exercised += ["WIRE-RANGE-NONEMPTY", "WIRE-RANGE-OFFSET", "WIRE-PFN-COUNT",
                      "WIRE-RANGE-CONTIGUOUS", "KMCL-PINNED"]
    if context.channel is ChannelState.DISABLED:
        disposition = Disposition.HELD
    elif (
        context.channel is ChannelState.OPEN
        and context.queue_empty
        and total + RING_TRAILER_SIZE < context.ring_free
    ):
        disposition = Disposition.RING
    else:
        disposition = Disposition.QUEUE
        exercised.append(
            "KMCL-QUEUE-FULL" if context.channel is ChannelState.OPEN else "KMCL-QUEUE-CLOSED"
        )
    payload = call.buffer or b""
    late = (not paged) and disposition is not Disposition.RING and profile["A11"] != "at-call"
    accepted = Accepted(
        packet_type=packet_type,
        ranges=tuple(ranges),
        completion_requested=True if waits else None,
        waits_for_completion=waits,
        payload=payload,
        payload_may_be_late=late,
        data_offset=data_offset,
        total=total,
        disposition=disposition,
        requirements=_ids(*dict.fromkeys(exercised)),
        unsafe=tuple(unsafe),
    )
    outcomes: list[Outcome] = [accepted]
    if may_skip_wait:
        # READ-A4 (b): "must be set" binds the caller only: rejecting conforms too.
        outcomes.append(
            _reject([(_ids("SEED-WAIT-MUST", "READ-A4"), "WAIT_FOR_COMPLETION is not set")],
                    profile)
        )
    if context.channel is ChannelState.DISABLED:
        # KMCL-QUEUE-CLOSED: "after it is closed, packets can be queued but are not sent";
        # refusing the call is the other conformant answer.
        outcomes.append(
            _reject([(_ids("KMCL-QUEUE-CLOSED"), "the channel is closed")], profile)
        )
    return tuple(outcomes)


def _packet_size(
    ranges: list[ExpectedRange], buffer_length: int, packet_type: PacketType
) -> tuple[int, int]:
    """``(data_offset, total)`` in bytes (WIRE-LAYOUT)."""
    if packet_type is PacketType.DATA_INBAND:
        size = arith.inband_packet_size(arith.PY, buffer_length)
        data_offset, total = size.data_offset, size.total
    else:
        terms = [
            arith.RangeTerm(True, r.mdl_index, r.byte_offset, r.byte_count, 0, len(r.pfns))
            for r in ranges
        ]
        size = arith.packet_size(arith.PY, terms, buffer_length)
        data_offset, total = size.data_offset, size.total
    return data_offset, total
