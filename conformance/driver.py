"""The driver: performs one step on a target and checks it against the spec.

Theory of operation
-------------------
A *step* is a small JSON-able dict (``{"op": "send", "packet": 0, ...}``); a run, a case and a
replay file are lists of steps, so any failure can be replayed on any target. The
:class:`Driver` keeps the suite's model of the world, the oracle's side: per channel its
lifecycle state, the packets it has written to the ring and not yet handed to the host, its FIFO
queue and the transactions the host has taken; per packet its lifecycle state and what its
accepted send must look like on the wire. The model's moves come from ``spec.lifecycle`` and its
verdicts from ``spec.rules.evaluate_send``: the driver never decides what is correct, it only
keeps track of where things are, so it can ask the spec.

Before a step touches the target it is checked: its shape and values against the step schema
(``conformance.steps``), the channel or packet it names against the model, and the lifecycle
move it asks for against the caller's rules of ``spec.lifecycle`` (open a channel twice, free a
packet in flight) and READ-A10 (send a packet in flight, only on targets that declare
``robust-contract-violations``). A step that fails is a :class:`StepError` naming the step: a
bad replay file or case, never the target's failure.

After every step the driver checks what the target did:

* the status a send returned is one the verdict allows; a rejected call emitted nothing
  (the ring did not change) and left the packet usable;
* a packet the host takes decodes strictly (``spec.wire``) and carries exactly the predicted
  ranges, flags and payload, in the FIFO order the model predicts;
* completion-routine calls: exactly one per accepted send, after its completion and with the
  host's status and bytes; none for a rejected send; exactly one per outstanding packet, with a
  failure status, when the channel is disabled;
* with the ``ring-bytes`` capability, the raw ring decodes and holds as many packets as the
  model says.

A mismatch raises :class:`ConformanceFailure` naming the requirement IDs it breaks. The
evidence (which requirements each step exercised, lifecycle transitions visited, flag
combinations and boundary classes hit) goes to an :class:`Evidence` collector for the report.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from vmbspec.conformance import steps as step_schema
from vmbspec.conformance.guard import GuardedTarget
from vmbspec.conformance.inputs import InputError
from vmbspec.spec import wire
from vmbspec.spec.call import SendCall
from vmbspec.spec.catalog import CATALOG
from vmbspec.spec.constants import (
    NT_ERROR,
    RING_TRAILER_SIZE,
    NtStatus,
    SendFlags,
    status_name,
)
from vmbspec.spec.errors import InvalidValue, SpecViolation, WireFormatError
from vmbspec.spec.lifecycle import (
    ChannelEvent,
    ChannelState,
    PacketEvent,
    PacketState,
    step_channel,
    step_packet,
    survive_violation,
)
from vmbspec.spec.mdl import MdlChain, MdlSegment
from vmbspec.spec.readings import Profile
from vmbspec.spec.rules import (
    Accepted,
    Disposition,
    Rejected,
    SendContext,
    Verdict,
    evaluate_send,
)

Step = dict[str, Any]

#: Statuses READ-A12 allows for a packet outstanding when its channel closes (default reading).
SHUTDOWN_STATUSES = frozenset({NtStatus.STATUS_CANCELLED, NtStatus.STATUS_DEVICE_REMOVED})


class ConformanceFailure(AssertionError):
    """The target did something the spec does not allow."""

    def __init__(self, requirements: Iterable[str], message: str) -> None:
        self.requirements = tuple(dict.fromkeys(requirements))
        self.message = message
        super().__init__(f"[{', '.join(self.requirements)}] {message}")


class StepError(ValueError):
    """A step that cannot be performed as written: malformed (``conformance.steps``), naming a
    channel or packet that does not exist, or breaking a rule the caller must keep (opening a
    channel twice, freeing a packet in flight). Raised before the target is called, so a bad
    replay file or case is never reported as the target's failure."""


class CaseDisagrees(StepError):
    """A case file's expected verdict is not one the spec allows: the case has drifted."""


# ---------------------------------------------------------------------------------------------
# Evidence
# ---------------------------------------------------------------------------------------------


@dataclass
class Evidence:
    """What a run exercised, per requirement and per coverage class."""

    steps: collections.Counter[str] = field(default_factory=collections.Counter)
    cases: collections.Counter[str] = field(default_factory=collections.Counter)
    transitions: collections.Counter[str] = field(default_factory=collections.Counter)
    flag_combinations: collections.Counter[str] = field(default_factory=collections.Counter)
    boundaries: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    #: Cases that ended before their last step under a profile other than the one they were
    #: written for (a step needed the verdict the case expected): case id -> the step's text.
    ended_early: dict[str, str] = field(default_factory=dict)
    total_steps: int = 0
    _case: set[str] = field(default_factory=set)

    def exercised(self, requirements: Iterable[str]) -> None:
        for requirement in requirements:
            self.steps[requirement] += 1
            self._case.add(requirement)

    def end_case(self) -> None:
        for requirement in self._case:
            self.cases[requirement] += 1
        self._case.clear()

    def merge(self, other: Evidence) -> None:
        for name in ("steps", "cases", "transitions", "flag_combinations", "boundaries",
                     "outcomes"):
            getattr(self, name).update(getattr(other, name))
        self.total_steps += other.total_steps
        self.ended_early.update(other.ended_early)


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------


@dataclass
class PacketModel:
    index: int
    handle: int
    channel: int
    state: PacketState = PacketState.IDLE
    expected: Accepted | None = None
    buffer: bytearray | None = None
    #: The buffer's bytes when the packet left the queue (READ-A11), if it was queued.
    written_bytes: bytes | None = None
    transaction_id: int | None = None
    #: A completion the model expects from the host's completion (status, data).
    held: bool = False
    #: VmbPacketFree was called while the packet was busy (READ-A10: must be ignored).
    busy_free: bool = False


@dataclass
class Transmission:
    """One accepted send of a packet, from the call to its completion. A packet object can
    have two at once: under READ-A4 (b) a send without WAIT_FOR_COMPLETION completes when it
    is written, and the packet may be sent again while the first is still in the ring."""

    packet: int
    expected: Accepted
    #: The call and the context it was judged in (to name the reading a packet follows).
    call: SendCall | None = None
    context: SendContext | None = None
    #: The caller's buffer (it may change later: READ-A11) and its bytes when written.
    buffer: bytearray | None = None
    written_bytes: bytes | None = None
    #: Completed when written (READ-A4 (b)): the host's completion then calls nothing.
    completed_early: bool = False

    @property
    def total(self) -> int:
        return self.expected.total


@dataclass
class ChannelModel:
    index: int
    handle: int
    data_size: int
    state: ChannelState = ChannelState.NOT_OPEN
    #: Transmissions written to the ring and not yet taken by the host, oldest first.
    ring: collections.deque[Transmission] = field(default_factory=collections.deque)
    queue: collections.deque[Transmission] = field(default_factory=collections.deque)
    #: transaction id -> transmission, for those the host has taken and not completed.
    taken: dict[int, Transmission] = field(default_factory=dict)
    #: Bytes of the data area in use: the packets in ``ring`` and their trailers.
    used: int = 0

    @property
    def free(self) -> int:
        return self.data_size - self.used

    def write(self, transmission: Transmission) -> None:
        self.ring.append(transmission)
        self.used += transmission.total + RING_TRAILER_SIZE

    def take(self) -> Transmission:
        transmission = self.ring.popleft()
        self.used -= transmission.total + RING_TRAILER_SIZE
        return transmission

    def discard(self) -> None:
        self.ring.clear()
        self.queue.clear()
        self.taken.clear()
        self.used = 0


def _hex(data: bytes) -> str:
    return data.hex()


def chain_from_json(value: Any) -> MdlChain | None:
    """The MDL chain of a step's ``mdl``: ``[[byte_offset, byte_count, [pfn, ...]], ...]``."""
    if value is None:
        return None
    try:
        return MdlChain(tuple(MdlSegment(int(bo), int(bc), tuple(int(p) for p in pfns))
                              for bo, bc, pfns in value))
    except (TypeError, ValueError) as error:
        raise StepError(f"bad MDL chain in step: {error}") from error


def buffer_from_json(value: Any, length: Any) -> bytes | None:
    """A step's ``buffer``: None (NULL), hex bytes, or ``{"fill": F}`` for bytes F, F+1, ..."""
    if value is None:
        return None
    if isinstance(value, str):
        return bytes.fromhex(value)
    if isinstance(value, dict) and isinstance(value.get("fill"), int) and isinstance(length, int):
        start = value["fill"] & 0xFF
        return (_PATTERN * (length // 256 + 2))[start:start + length]
    raise StepError(f"bad buffer in step: {value!r:.60}")


_PATTERN = bytes(range(256))


def send_call(step: Step) -> SendCall:
    """The call a ``send`` step makes; a step that cannot be one is a :class:`StepError`."""
    try:
        return SendCall(
            buffer=buffer_from_json(step.get("buffer"), step.get("buffer_length", 0)),
            buffer_length=int(step.get("buffer_length", 0)),
            mdl=chain_from_json(step.get("mdl")),
            mdl_offset=int(step.get("mdl_offset", 0)),
            mdl_length=int(step.get("mdl_length", 0)),
            flags=int(step.get("flags", 0)),
        )
    except (TypeError, ValueError, InvalidValue) as error:
        raise StepError(f"bad send step: {error}") from error


def ring_bytes(step: Step, profile: Profile) -> int | None:
    """The ring bytes the packet of a ``send`` step takes when the spec accepts it on an open
    channel with room (the packet's total and its 8-byte trailer, RING-LAYOUT), or None."""
    try:
        call = send_call(step)
    except StepError:
        return None
    accepted = evaluate_send(call, SendContext.fresh(), profile).accepted
    return None if accepted is None else accepted.total + RING_TRAILER_SIZE


def chain_to_json(chain: MdlChain | None) -> Any:
    if chain is None:
        return None
    return [[s.byte_offset, s.byte_count, list(s.pfns)] for s in chain.segments]


class Driver:
    """Performs steps on one target, keeping the model and checking each result."""

    def __init__(
        self,
        target: Any,
        profile: Profile,
        evidence: Evidence | None = None,
        limits: step_schema.Limits = step_schema.SEQUENCE_LIMITS,
    ) -> None:
        # Every call on the target is checked at the boundary (conformance.guard), so what the
        # target raised or returned wrongly is told apart from a bug of the suite's own.
        self.target = target if isinstance(target, GuardedTarget) else GuardedTarget(target)
        self.profile = profile
        self.limits = limits
        self.evidence = evidence if evidence is not None else Evidence()
        self.channels: list[ChannelModel] = []
        self.packets: list[PacketModel] = []
        self.capabilities: frozenset[str] = frozenset(getattr(target, "capabilities", ()))
        self.log: list[Step] = []
        #: Check a step's ``expect`` against the spec (a case under the profile its
        #: expectations were written for; conformance.cases).
        self.check_expectations = True

    # -- helpers -----------------------------------------------------------------------------

    def _packet(self, index: Any) -> PacketModel:
        if not isinstance(index, int) or not 0 <= index < len(self.packets):
            raise StepError(f"no packet #{index!r} (allocated: {len(self.packets)})")
        return self.packets[index]

    def _channel(self, index: Any) -> ChannelModel:
        if not isinstance(index, int) or not 0 <= index < len(self.channels):
            raise StepError(f"no channel {index!r} (created: {len(self.channels)})")
        return self.channels[index]

    def _move_packet(self, packet: PacketModel, event: PacketEvent) -> None:
        move = step_packet(packet.state, event)
        self.evidence.transitions[f"packet:{packet.state.value}--{event.value}"] += 1
        self.evidence.exercised(move.requirements)
        packet.state = move.target

    def _move_channel(self, channel: ChannelModel, event: ChannelEvent) -> None:
        move = step_channel(channel.state, event)
        self.evidence.transitions[f"channel:{channel.state.value}--{event.value}"] += 1
        self.evidence.exercised(move.requirements)
        channel.state = move.target

    def sendable(self, packet: PacketModel) -> bool:
        return packet.state in (PacketState.IDLE, PacketState.COMPLETED)

    # -- steps -------------------------------------------------------------------------------

    def execute(self, step: Step) -> None:
        """Perform ``step`` on the target and check the result."""
        where = f"step {len(self.log) + 1}"
        try:
            op = step_schema.check_step(step, where, self.limits)
        except InputError as error:
            raise StepError(str(error)) from error
        handler = _HANDLERS[op]
        self.log.append(step)
        self.evidence.total_steps += 1
        try:
            handler(self, step)
        except StepError as error:
            if str(error).startswith(where):
                raise
            raise type(error)(f"{where} ({op}): {error}") from error
        self._check_ring()

    def _wrong_status(
        self, call: SendCall, context: SendContext, verdict: Verdict, status: int
    ) -> NoReturn:
        """Raise the failure for a status the verdict does not allow: the rules it breaks,
        led by the readings under which it would be right (the target may follow another
        reading of the documentation, not the active profile's)."""
        followed = self._readings_allowing(
            call, context, lambda alternative: alternative.outcome_for(status) is not None
        )
        readings = tuple(f"READ-{r}" for r, _ in followed)
        other = (
            f"; it is what {_options_text(followed)} allows, not the active profile "
            f"{self.profile.name}" if followed else ""
        )
        if status == NtStatus.STATUS_SUCCESS and verdict.rejected is not None:
            ids: tuple[str, ...] = verdict.rejected.violated  # accepted a call the spec rejects
        elif verdict.rejected is None and _error_like(status):
            # A call the spec accepts, refused: blame the rules whose conditions it met (the
            # bound it was inside of, the flags it had), then the send itself.
            satisfied = _conditions_met(verdict.accepted)
            ids = (*satisfied, "SEED-SEND", "SEED-RETURN", "KMCL-NO-RESOURCE-FAILURE")
            raise ConformanceFailure(
                tuple(dict.fromkeys((*readings, *ids))),
                f"{call.describe()} returned {status_name(status)}, but the call meets "
                f"{', '.join(satisfied) or 'every rule'}: the spec expects it accepted "
                f"({verdict.describe()}){other}",
            )
        else:
            ids = ("SEED-RETURN", "READ-A8")  # a status no reading allows
        raise ConformanceFailure(
            tuple(dict.fromkeys((*readings, *ids))),
            f"{call.describe()} returned {status_name(status)}; allowed: "
            f"{verdict.describe()}{other}",
        )

    def _named(self, handle: int) -> str:
        """A packet in a message: its index in the step list and the target's handle."""
        index = next((p.index for p in self.packets if p.handle == handle), None)
        return f"packet handle {handle}" if index is None else f"packet #{index} (handle {handle})"

    def _readings_allowing(
        self, call: SendCall, context: SendContext, allows: Callable[[Any], bool]
    ) -> list[tuple[str, str]]:
        """The (reading, option) pairs, each one option away from the active profile, under
        which the spec allows what the target did (``allows`` of that profile's verdict): a
        target that deviates exactly where the documentation is ambiguous follows another
        reading, and the failure names it."""
        found = []
        for reading, options in _READING_OPTIONS:
            for option in options:
                if option == self.profile[reading]:
                    continue
                try:
                    alternative = evaluate_send(
                        call, context, self.profile.with_choice(reading, option)
                    )
                except (InvalidValue, SpecViolation):
                    continue
                if allows(alternative):
                    found.append((reading, option))
        return found

    @staticmethod
    def _blame_busy_free(
        ids: tuple[str, ...], packets: Iterable[PacketModel]
    ) -> tuple[str, ...]:
        """``ids``, led by READ-A10 when one of ``packets`` was freed while busy: a robust
        target must have ignored that free, and a packet that then went missing points at it."""
        if any(p.busy_free for p in packets):
            return ("READ-A10", *ids)
        return ids

    def _caller_may(self, what: str, check: Callable[[], object]) -> None:
        """Refuse a step that breaks a rule the documentation puts on the caller
        (``spec.lifecycle``): a bad sequence, not something the target did."""
        try:
            check()
        except SpecViolation as violation:
            raise StepError(
                f"{what} breaks the caller's rule {violation.requirement} "
                f"({violation.message}); the spec does not let a caller make this call"
            ) from violation

    def _create_channel(self, step: Step) -> None:
        size = step["ring_data_size"]
        ring_bytes = sum(c.data_size for c in self.channels) + size
        if len(self.channels) >= self.limits.max_channels or (
            ring_bytes > self.limits.max_total_ring_bytes
        ):
            raise StepError(f"more than {self.limits.max_channels} channels or "
                            f"{self.limits.max_total_ring_bytes} bytes of rings in one sequence")
        handle = self.target.create_channel(size)
        self.channels.append(ChannelModel(len(self.channels), handle, size))

    def _open(self, step: Step) -> None:
        channel = self._channel(step.get("channel"))
        self._caller_may(f"opening channel {channel.index}",
                         lambda: step_channel(channel.state, ChannelEvent.OPEN))
        self._move_channel(channel, ChannelEvent.OPEN)
        self.target.open_channel(channel.handle)
        self._expect_completions({}, self._flush(channel))

    def _disable(self, step: Step) -> None:
        channel = self._channel(step.get("channel"))
        self._caller_may(f"disabling channel {channel.index}",
                         lambda: step_channel(channel.state, ChannelEvent.DISABLE))
        self._move_channel(channel, ChannelEvent.DISABLE)
        self.target.disable_channel(channel.handle)
        outstanding = [
            p for p in self.packets
            if p.channel == channel.index and p.state in (PacketState.QUEUED, PacketState.IN_RING)
        ]
        # A packet completed when written (READ-A4 (b)) whose bytes are still in the ring is
        # not outstanding: it is COMPLETED, and gets no cancellation.
        calls = self.target.completions()
        self._check_cancellations(outstanding, calls)
        for packet in outstanding:
            self._move_packet(packet, PacketEvent.CANCEL)
            packet.expected = None
            packet.held = False
            packet.busy_free = False
        channel.discard()

    def _check_cancellations(
        self, outstanding: list[PacketModel], calls: list[tuple[int, int, bytes]]
    ) -> None:
        # READ-A12: exactly one completion-routine call per outstanding packet, failure status.
        ids = ("READ-A12", "SEED-WAIT")
        expected = {p.handle: p for p in outstanding}
        seen: set[int] = set()
        for handle, status, _data in calls:
            if handle not in expected:
                raise ConformanceFailure(
                    ids, f"disable called the completion routine of {self._named(handle)}, which "
                    "was not outstanding",
                )
            if handle in seen:
                raise ConformanceFailure(
                    ids, f"disable called the completion routine of {self._named(handle)} twice"
                )
            seen.add(handle)
            allowed = SHUTDOWN_STATUSES if self.profile["A12"] == "cancel" else None
            if (allowed is not None and status not in allowed) or not NT_ERROR(status):
                raise ConformanceFailure(
                    ids, f"{self._named(handle)} was cancelled with {status_name(status)}; "
                    "expected STATUS_CANCELLED or STATUS_DEVICE_REMOVED",
                )
        missing = [h for h in expected if h not in seen]
        if missing:
            raise ConformanceFailure(
                self._blame_busy_free(ids, [expected[h] for h in missing]),
                f"disable left {', '.join(self._named(h) for h in missing)} without a "
                "completion-routine call",
            )
        if outstanding:
            self.evidence.exercised(ids)

    def _allocate(self, step: Step) -> None:
        channel = self._channel(step.get("channel"))
        handle = self.target.allocate_packet(channel.handle)
        if handle is None:
            raise ConformanceFailure(
                ("KMCL-NO-RESOURCE-FAILURE",), "VmbPacketAllocate returned NULL"
            )
        self.packets.append(PacketModel(len(self.packets), handle, channel.index))
        self.evidence.exercised(("KMCL-NO-RESOURCE-FAILURE",))

    def _free(self, step: Step) -> None:
        packet = self._packet(step.get("packet"))
        survived = survive_violation(packet.state, PacketEvent.FREE)
        if survived is not None and "robust-contract-violations" in self.capabilities:
            # READ-A10: a free of a busy packet, which a robust target ignores; the packet's
            # later life (written, taken, completed once) is checked by the steps that follow.
            self.evidence.transitions[f"packet:{packet.state.value}--free (ignored)"] += 1
            self.evidence.exercised(survived.requirements)
            self.target.free_packet(packet.handle)
            packet.busy_free = True
            self._expect_completions({})
            return
        self._caller_may(f"freeing packet #{packet.index}",
                         lambda: step_packet(packet.state, PacketEvent.FREE))
        self._move_packet(packet, PacketEvent.FREE)
        self.target.free_packet(packet.handle)
        self._expect_completions({})

    def _mutate_buffer(self, step: Step) -> None:
        # The caller owns the buffer: change it after the call to see when the target read it.
        packet = self._packet(step.get("packet"))
        if packet.buffer is not None:
            for i in range(len(packet.buffer)):
                packet.buffer[i] ^= 0xA5

    def _send(self, step: Step) -> None:
        packet = self._packet(step.get("packet"))
        channel = self.channels[packet.channel]
        call = send_call(step)
        context = SendContext(
            packet=packet.state,
            channel=channel.state,
            ring_data_size=channel.data_size,
            ring_free=channel.free,
            queue_empty=not channel.queue,
        )
        verdict = evaluate_send(call, context, self.profile)
        expect = step.get("expect")
        if expect is not None and self.check_expectations:
            kinds = {"accepted" if isinstance(o, Accepted) else "rejected"
                     for o in verdict.alternatives}
            if expect not in kinds:
                raise CaseDisagrees(
                    f"the case expects the call to be {expect}; under profile "
                    f"{self.profile.name} the spec says {verdict.describe()}"
                )
        self._note_send(call, verdict.accepted)
        rejected = verdict.rejected
        if rejected is not None and rejected.contract_violation and (
            "robust-contract-violations" not in self.capabilities
        ):
            raise StepError(
                f"sending packet #{packet.index} breaks the caller's rule "
                f"{', '.join(rejected.violated)} ({'; '.join(rejected.reasons)}); only a target "
                "that declares robust-contract-violations is given such a call"
            )
        buffer = None if call.buffer is None else bytearray(call.buffer)
        ring_before = len(channel.ring)
        status = self.target.send_with_external_mdl(
            packet.handle,
            buffer,
            call.buffer_length,
            None if call.mdl is None else call.mdl.as_tuples(),
            call.mdl_offset,
            call.mdl_length,
            call.flags,
        )
        outcome = verdict.outcome_for(status)
        if outcome is None:
            self._wrong_status(call, context, verdict, status)
        self.evidence.outcomes["accepted" if isinstance(outcome, Accepted) else "rejected"] += 1
        self.evidence.exercised(outcome.requirements)
        if isinstance(outcome, Rejected):
            # A rejected call emits nothing and leaves the packet as it was (SEED-RETURN).
            self._expect_completions({})
            if len(channel.ring) != ring_before:
                raise AssertionError("model changed on a rejected call")
            self._check_nothing_emitted(channel, outcome.violated)
            return
        packet.expected = outcome
        packet.buffer = buffer
        transmission = Transmission(packet.index, outcome, call, context, buffer)
        early: list[Transmission] = []
        if outcome.disposition is Disposition.RING:
            self._move_packet(packet, PacketEvent.SEND_TO_RING)
            self._write(channel, transmission, early)
        else:
            self._move_packet(packet, PacketEvent.SEND_QUEUED)
            if outcome.disposition is Disposition.HELD:
                packet.held = True
            else:
                channel.queue.append(transmission)
        self._expect_completions({}, early)

    def _write(
        self, channel: ChannelModel, transmission: Transmission, early: list[Transmission]
    ) -> None:
        """``transmission`` reaches the ring (at the call, or from the queue). Without
        WAIT_FOR_COMPLETION under READ-A4 (b) it completes there: added to ``early``."""
        buffer = transmission.buffer
        transmission.written_bytes = bytes(buffer) if buffer is not None else b""
        channel.write(transmission)
        if not transmission.expected.waits_for_completion:
            transmission.completed_early = True
            early.append(transmission)

    def _check_nothing_emitted(self, channel: ChannelModel, violated: tuple[str, ...]) -> None:
        if "ring-bytes" not in self.capabilities or channel.state is ChannelState.DISABLED:
            return
        contents = self._read_ring(channel)
        if len(contents.entries) != len(channel.ring):
            raise ConformanceFailure(
                (*violated, "SEED-RETURN"),
                f"a rejected call changed the ring: {len(contents.entries)} packets in it, "
                f"{len(channel.ring)} expected",
            )

    def _note_send(self, call: SendCall, accepted: Accepted | None) -> None:
        names = [str(f.name) for f in SendFlags if call.flags & f] or ["none"]
        if call.flags & ~0x7:
            names.append("unknown-bits")
        self.evidence.flag_combinations["|".join(names)] += 1
        if call.mdl is None:
            self.evidence.boundaries["mdl:null"] += 1
            return
        total = call.mdl.byte_count
        end = call.mdl_offset + call.mdl_length
        if call.mdl_length == 0:
            self.evidence.boundaries["length:zero"] += 1
        if end > 0xFFFF_FFFF:
            self.evidence.boundaries["offset+length:wraps-32-bits"] += 1
        if call.flags & SendFlags.FORCE_MDL_LENGTH:
            first = call.mdl.first
            bound = ((first.byte_offset + first.byte_count + 0xFFF) & ~0xFFF) - first.byte_offset
            name = "force-bound"
        else:
            bound, name = total, "chain-bound"
        if call.mdl_length:
            where = "at" if end == bound else "inside" if end < bound else "outside"
            self.evidence.boundaries[f"{name}:{where}"] += 1
        if len(call.mdl.segments) > 1:
            self.evidence.boundaries["chain:multiple-mdls"] += 1
        if any(s.byte_offset == 0xFFF for s in call.mdl.segments):
            self.evidence.boundaries["byte-offset:0xfff"] += 1

    def _flush(self, channel: ChannelModel) -> list[Transmission]:
        """KMCL-QUEUE-FULL / KMCL-QUEUE-CLOSED: queued packets are written in FIFO order as
        soon as the channel is open and they fit. Returns those that completed when written
        (READ-A4 (b))."""
        early: list[Transmission] = []
        if channel.state is not ChannelState.OPEN:
            return early
        while channel.queue:
            transmission = channel.queue[0]
            if transmission.total + RING_TRAILER_SIZE >= channel.free:
                break
            channel.queue.popleft()
            self._move_packet(self.packets[transmission.packet], PacketEvent.WRITTEN)
            self._write(channel, transmission, early)
        return early

    def _host_take(self, step: Step) -> None:
        channel = self._channel(step.get("channel"))
        data = self.target.host_take_packet(channel.handle)
        if not channel.ring or channel.state is ChannelState.DISABLED:
            if data is not None:
                raise ConformanceFailure(
                    ("KMCL-QUEUE-CLOSED", "KMCL-QUEUE-FULL", "SEED-RETURN"),
                    f"the host found a packet ({len(data)} bytes) where none was expected",
                )
            self._expect_completions({})
            return
        if data is None:
            index = channel.ring[0].packet
            raise ConformanceFailure(
                self._blame_busy_free(("SEED-SEND", "KMCL-QUEUE-FULL"), [self.packets[index]]),
                f"packet #{index} should be in the ring, but the host found the ring empty",
            )
        transmission = channel.take()
        self._check_packet(transmission, bytes(data), channel)
        self._expect_completions({}, self._flush(channel))

    def _check_packet(
        self, transmission: Transmission, data: bytes, channel: ChannelModel
    ) -> None:
        packet = self.packets[transmission.packet]
        expected = transmission.expected
        try:
            decoded = wire.decode_packet(data)
        except WireFormatError as error:
            requirement = getattr(error, "requirement", "WIRE-LAYOUT")
            raise ConformanceFailure((requirement, "WIRE-LAYOUT"), str(error)) from error
        where = f"packet #{packet.index}"
        if decoded.type != expected.packet_type:
            raise ConformanceFailure(
                ("WIRE-LAYOUT", "READ-A6"),
                f"{where} has type {decoded.type}, expected {expected.packet_type}",
            )
        if (
            expected.completion_requested is not None
            and decoded.completion_requested != expected.completion_requested
        ):
            raise ConformanceFailure(
                ("WIRE-FLAGS", "SEED-WAIT"),
                f"{where}: completion requested is {decoded.completion_requested}",
            )
        actual = [(r.byte_count, r.byte_offset, tuple(r.pfns)) for r in decoded.ranges]
        wanted: list[tuple[int, int, tuple[int | None, ...]]] = [
            (r.byte_count, r.byte_offset, r.pfns) for r in expected.ranges
        ]
        if expected.unsafe and _same_ranges(actual, wanted):
            # An unsafe reading (A3 (b), (d)) the active profile adopts on purpose: the range
            # runs past the MDL's PFN array, where the spec knows no PFN (None) and C would
            # read whatever lies there. Counted, so the report shows the exposure.
            self.evidence.boundaries["unsafe:pfn-past-the-mdl-array"] += 1
            wanted = list(actual)
        if actual != wanted:
            followed: list[tuple[str, str]] = []
            if transmission.call is not None and transmission.context is not None:
                followed = self._readings_allowing(
                    transmission.call, transmission.context,
                    lambda alternative: any(
                        [(r.byte_count, r.byte_offset, r.pfns) for r in o.ranges] == actual
                        for o in alternative.alternatives if isinstance(o, Accepted)
                    ),
                )
            range_ids = _range_requirements(expected)
            how = ""
            if followed:
                range_ids = (*(f"READ-{r}" for r, _ in followed), *range_ids)
                how = f"; that is what {_options_text(followed)} gives"
            raise ConformanceFailure(
                range_ids,
                f"{where} carries ranges {_show_ranges(actual)}, expected "
                f"{_show_ranges(wanted)} under the active profile {self.profile.name}{how}",
            )
        if decoded.data_offset != expected.data_offset or decoded.total_size != expected.total:
            raise ConformanceFailure(
                ("WIRE-LAYOUT", "WIRE-LENGTH8"),
                f"{where}: data_offset {decoded.data_offset} / length {decoded.total_size}, "
                f"expected {expected.data_offset} / {expected.total}",
            )
        try:
            payload = decoded.payload(len(expected.payload))
        except WireFormatError as error:
            raise ConformanceFailure(("WIRE-LAYOUT", "SEED-BUFFER"), str(error)) from error
        allowed = [expected.payload]
        if expected.payload_may_be_late and transmission.written_bytes is not None:
            allowed.append(transmission.written_bytes)
        if payload not in allowed:
            ids: tuple[str, ...] = ("SEED-BUFFER", "SEED-BUFFERLENGTH")
            if transmission.buffer is not None and payload == bytes(transmission.buffer):
                ids = ("SEED-PAGED", "READ-A11", "SEED-BUFFER")
            raise ConformanceFailure(
                ids, f"{where}: in-line payload {payload[:16].hex()}… is not the caller's "
                f"buffer as it was at the call ({expected.payload[:16].hex()}…)",
            )
        if decoded.transaction_id in channel.taken:
            raise ConformanceFailure(
                ("KMCL-COMPLETION",),
                f"{where} reuses transaction id {decoded.transaction_id:#x} of an outstanding "
                "transaction",
            )
        channel.taken[decoded.transaction_id] = transmission
        packet.transaction_id = decoded.transaction_id

    def _host_complete(self, step: Step) -> None:
        packet = self._packet(step.get("packet"))
        channel = self.channels[packet.channel]
        # The packet's oldest transaction the host has taken (there can be two: READ-A4 (b)).
        transaction_id, transmission = next(
            ((tid, t) for tid, t in channel.taken.items() if t.packet == packet.index),
            (None, None),
        )
        if transaction_id is None or transmission is None:
            raise StepError(f"packet #{packet.index} has no transaction the host has taken")
        status = int(step.get("status", 0))
        data = bytes.fromhex(step.get("data", ""))
        self.target.host_complete(channel.handle, transaction_id, status, data)
        del channel.taken[transaction_id]
        if not any(t.packet == packet.index for t in channel.taken.values()):
            packet.transaction_id = None
        if transmission.completed_early:
            # READ-A4 (b): it completed when written; the host's completion calls nothing.
            self._expect_completions({})
            return
        self._expect_completions({packet.handle: (status, data)})
        self._move_packet(packet, PacketEvent.COMPLETE)
        packet.expected = None
        packet.busy_free = False

    def _expect_completions(
        self, expected: Mapping[int, tuple[int, bytes]], early: Sequence[Transmission] = ()
    ) -> None:
        """The completion-routine calls since the last step are exactly ``expected``, and one
        with a success status for each packet in ``early`` (written without
        WAIT_FOR_COMPLETION under READ-A4 (b): it completes once it is in the ring)."""
        calls = self.target.completions()
        ids = ("SEED-WAIT", "KMCL-COMPLETION")
        seen: set[int] = set()
        waiting = {self.packets[t.packet].handle: self.packets[t.packet] for t in early}
        for handle, status, data in calls:
            if handle in waiting:
                if not _success(status):
                    raise ConformanceFailure(
                        ("READ-A4", "SEED-WAIT"),
                        f"packet #{waiting[handle].index}, sent without WAIT_FOR_COMPLETION, "
                        f"completed with {status_name(status)} when written; a success "
                        "status is expected",
                    )
                self._move_packet(waiting.pop(handle), PacketEvent.COMPLETE)
                continue
            held = next((p for p in self.packets if p.handle == handle and p.held), None)
            if held is not None and NT_ERROR(status):
                # KMCL-QUEUE-CLOSED: a send accepted on a closed channel may be cancelled.
                self._move_packet(held, PacketEvent.CANCEL)
                held.held = False
                continue
            if handle not in expected:
                raise ConformanceFailure(
                    ids, f"unexpected completion-routine call for {self._named(handle)} "
                    f"({status_name(status)})",
                )
            if handle in seen:
                raise ConformanceFailure(
                    ids, f"the completion routine of {self._named(handle)} ran twice"
                )
            seen.add(handle)
            want_status, want_data = expected[handle]
            if status != want_status or bytes(data) != want_data:
                raise ConformanceFailure(
                    ids, f"{self._named(handle)} completed with {status_name(status)} and "
                    f"{bytes(data).hex() or 'no bytes'}, the host sent "
                    f"{status_name(want_status)} and {want_data.hex() or 'no bytes'}",
                )
        if waiting:
            raise ConformanceFailure(
                ("READ-A4", "SEED-WAIT"),
                f"packet(s) {', '.join(f'#{p.index}' for p in waiting.values())}, sent without "
                "WAIT_FOR_COMPLETION, did not complete when written to the ring (READ-A4 (b): "
                "the transaction completes once it is in the ring)",
            )
        missing = [h for h in expected if h not in seen]
        if missing:
            raise ConformanceFailure(
                self._blame_busy_free(ids, [p for p in self.packets if p.handle in missing]),
                f"the completion routine of {', '.join(self._named(h) for h in missing)} did "
                "not run",
            )
        if expected:
            self.evidence.exercised(ids)

    def _read_ring(self, channel: ChannelModel) -> wire.RingContents:
        raw = self.target.ring_bytes(channel.handle)
        try:
            return wire.read_ring(bytes(raw), channel.data_size)
        except WireFormatError as error:
            requirement = getattr(error, "requirement", "RING-LAYOUT")
            raise ConformanceFailure((requirement, "RING-LAYOUT"), f"ring: {error}") from error

    def _check_ring(self) -> None:
        if "ring-bytes" not in self.capabilities:
            return
        for channel in self.channels:
            if channel.state is ChannelState.DISABLED:
                continue
            contents = self._read_ring(channel)
            if len(contents.entries) != len(channel.ring):
                raise ConformanceFailure(
                    self._blame_busy_free(
                        ("RING-LAYOUT", "KMCL-QUEUE-FULL"),
                        [p for p in self.packets if p.channel == channel.index],
                    ),
                    f"channel {channel.index}'s ring holds {len(contents.entries)} packets, "
                    f"the model {len(channel.ring)}",
                )
            free = channel.data_size - sum(
                len(e.packet) + RING_TRAILER_SIZE for e in contents.entries
            )
            if contents.entries and free < 1:
                raise ConformanceFailure(("RING-NEVER-FULL",), "the ring is completely full")
        self.evidence.exercised(("RING-LAYOUT", "RING-TRAILER"))


def _conditions_met(accepted: Accepted | None) -> tuple[str, ...]:
    """The rules of the documentation (and the readings) whose conditions an accepted call
    met: what a target that refused it broke. The facts about the emitted packet (WIRE-,
    RING-, KMCL-) are left out: a refused call emitted none, and the status choice (READ-A8)
    is not in question."""
    if accepted is None:
        return ()
    met = [
        rid for rid in accepted.requirements
        if CATALOG.requirements[rid].kind in ("MUST", "reading")
        and rid not in ("READ-A8", "SEED-SEND", "SEED-RETURN")
    ]
    # Most specific first: the bounds and readings a refusal most likely got wrong, then the
    # rules every accepted call meets (a buffer, a WAIT flag, an MDL).
    return tuple(sorted(met, key=lambda rid: _BLAME_ORDER.get(rid, len(_BLAME_ORDER))))


_BLAME_ORDER = {rid: rank for rank, rid in enumerate((
    "SEED-FORCE-BOUND", "READ-A3", "SEED-FORCE-FIRST", "SEED-FORCE-LENGTH",
    "SEED-OFFSET-LENGTH", "SEED-MDLOFFSET", "SEED-MDLLENGTH", "SEED-MDLLENGTH-ZERO",
    "READ-A1", "READ-A2", "READ-A5", "READ-A9", "READ-A13", "READ-A14", "READ-A6", "READ-A7",
    "READ-A4", "SEED-PAGED", "READ-A11",
))}


#: Every reading of the catalog with its options, in order (A1 .. A14).
_READING_OPTIONS: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (rid.removeprefix("READ-"), tuple(requirement.options or ()))
    for rid, requirement in CATALOG.requirements.items()
    if requirement.kind == "reading" and len(requirement.options or ()) > 1
)


def _options_text(followed: Sequence[tuple[str, str]]) -> str:
    return " or ".join(
        f"reading {reading} ({option}: "
        f"{(CATALOG.requirements[f'READ-{reading}'].options or {}).get(option, '')})"
        for reading, option in followed
    )


def _error_like(status: int) -> bool:
    return status >= 0x8000_0000


def _success(status: int) -> bool:
    return status < 0x8000_0000


def _same_ranges(
    actual: Sequence[tuple[int, int, tuple[int, ...]]],
    wanted: Sequence[tuple[int, int, tuple[int | None, ...]]],
) -> bool:
    """The ranges agree, a PFN the spec cannot know (None: past the MDL's array) matching any
    PFN."""
    return len(actual) == len(wanted) and all(
        a[:2] == w[:2] and len(a[2]) == len(w[2])
        and all(x is None or x == y for x, y in zip(w[2], a[2], strict=True))
        for a, w in zip(actual, wanted, strict=True)
    )


def _range_requirements(expected: Accepted) -> tuple[str, ...]:
    ids = ["SEED-MDL", "SEED-MDLOFFSET", "SEED-MDLLENGTH", "WIRE-RANGE-CONTIGUOUS",
           "WIRE-PFN-COUNT", "MDL-PFNS"]
    if "SEED-FORCE-LENGTH" in expected.requirements:
        ids += ["SEED-FORCE-LENGTH", "SEED-FORCE-BOUND", "SEED-FORCE-FIRST"]
    if "READ-A5" in expected.requirements:
        ids.append("READ-A5")
    return tuple(ids)


def _show_ranges(ranges: Sequence[tuple[int, int, tuple[int | None, ...]]]) -> str:
    """Ranges for a message; a PFN the MDL's array does not have (an unsafe reading reads
    past it) shows as ``?``, so two lists that differ only there do not print the same."""
    def pfns(values: tuple[int | None, ...]) -> str:
        shown = ["?" if v is None else f"{v:#x}" for v in values[:4]]
        return " ".join(shown) + (f" +{len(values) - 4}" if len(values) > 4 else "")

    return "[" + ", ".join(
        f"{{count {c:#x}, offset {o:#x}, PFNs {pfns(p)}}}" for c, o, p in ranges
    ) + "]"


_HANDLERS = {
    "create_channel": Driver._create_channel,
    "open": Driver._open,
    "disable": Driver._disable,
    "allocate": Driver._allocate,
    "free": Driver._free,
    "send": Driver._send,
    "mutate_buffer": Driver._mutate_buffer,
    "host_take": Driver._host_take,
    "host_complete": Driver._host_complete,
}

__all__ = [
    "CaseDisagrees",
    "ChannelModel",
    "ConformanceFailure",
    "Driver",
    "Evidence",
    "PacketModel",
    "Step",
    "StepError",
    "chain_from_json",
    "chain_to_json",
]
