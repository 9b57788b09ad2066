"""The stateful conformance test: a Hypothesis RuleBasedStateMachine over the API calls.

Theory of operation
-------------------
Each rule performs a *piece of work* of a driver's life, several calls long, and hands each call
to :class:`conformance.driver.Driver` as a *step*; the driver performs it on the target and
checks the result with the spec as the oracle, so a shrunk failure is a list of steps that
replays on any target. The rules:

* ``send``: one VmbPacketSendWithExternalMdl (allocating a packet first when none is free),
  then the host takes 0 to 2 packets;
* ``pressure``: two or three sends of mixed sizes aimed at the ring's free space (exactly full,
  half of it, a quarter of the ring), so that packets queue behind a full ring and later, smaller
  sends arrive while older ones wait: FIFO order between queued and new packets is tested in
  most examples;
* ``host``: the host takes up to three packets and completes up to three, in any order, with
  any status and completion bytes; packets are then reused by later sends (KMCL-REUSE);
* ``caller``: VmbPacketFree, VmbPacketAllocate, a change to a queued packet's buffer (to see
  when the target read it, READ-A11), and on targets that declare
  ``robust-contract-violations`` the free of a busy packet (READ-A10), whose later life the
  driver then follows.

Opening a channel late and disabling it are *phases*, not rules: the example draws when they
happen when it starts (``late-open`` early, ``disable`` in the last part of the example), so an
example completes packets before it disables, and its tail checks what a disabled channel does.

Speed. Hypothesis's engine costs tens of microseconds per draw and more per rule choice; the
oracle and the simulator cost less. So every rule draws its whole piece of work as *one* integer,
read digit by digit (:class:`Choices`) against fixed tables of shapes: where bugs live (each
bound, just inside and just past it, values that wrap 32 bits, ByteOffset 0 and 0xFFF, buffers
at the ring's free space) and plain values. No rule has a precondition or a Bundle (both cost a
filtered draw per step). A smaller integer reads as a plainer piece of work, so Hypothesis's
shrinking still moves toward simple calls; :mod:`conformance.minimise` then deletes whole steps.

Each example enables a random subset of features (swarm testing: FORCE_MDL_LENGTH, PAGED_BUFFER,
chains, a NULL MDL, unknown flag bits, contract violations, buffer mutation, disable, late
open, 32-bit wrap), so that rare interactions are not drowned by common ones.
"""

from __future__ import annotations

import collections
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from vmbspec.conformance import interrupt
from vmbspec.conformance.driver import Driver, Evidence, Step, chain_to_json
from vmbspec.spec.call import SendCall
from vmbspec.spec.constants import RING_TRAILER_SIZE, UINT32_MAX, NtStatus, SendFlags
from vmbspec.spec.lifecycle import ChannelState, PacketState
from vmbspec.spec.mdl import ROUND_TO_PAGES, MdlChain, MdlSegment
from vmbspec.spec.readings import Profile
from vmbspec.spec.rules import SendContext, evaluate_send

FEATURES = (
    "force",
    "paged",
    "chains",
    "null-mdl",
    "unknown-flags",
    "no-wait",
    "contract",
    "mutate",
    "disable",
    "late-open",
    "wrap32",
)
RING_SIZES = (4096, 8192, 16384, 65536)
#: Packets a driver holds at most in one example (allocated on demand by the send rules).
MAX_PACKETS = 6
HOST_STATUSES = (
    int(NtStatus.STATUS_SUCCESS),
    int(NtStatus.STATUS_UNSUCCESSFUL),
    int(NtStatus.STATUS_BUFFER_OVERFLOW),
    int(NtStatus.STATUS_PENDING),
)
#: Every rule's work is one draw: 64 random bytes, read as one integer by :class:`Choices`.
#: Bytes, not ``st.integers``: Hypothesis draws most wide integers from a few small sizes
#: (16 or 32 bits), which would leave every later digit 0; its bytes are uniform, and shrink
#: toward zero bytes, that is toward the plainest work.
WORK = st.binary(min_size=64, max_size=64)

#: What a generated example did, counted per example for the generation report
#: (:meth:`RunState.depth_report`).
DEPTH_MEASURES = (
    "accepted-send",
    "completion-before-disable",
    "completion-then-disable",
    "queued-behind-full-ring",
    "fifo-order-tested",
    "busy-free",
    "disable",
)


@dataclass
class RunState:
    """Shared between the machine's instances and the runner of one run."""

    evidence: Evidence
    #: Rule calls per example (Hypothesis's ``stateful_step_count``): the phases are placed
    #: relative to it.
    steps_per_example: int = 40
    last_log: list[Step] = field(default_factory=list)
    #: Examples generated, and the re-runs Hypothesis made while shrinking a failure (counted
    #: apart, so the progress line and the summary agree).
    examples: int = 0
    shrink_runs: int = 0
    #: ``failed_now``: this example failed; ``shrinking``: an earlier one did, so every
    #: example from now on is Hypothesis shrinking it.
    failed_now: bool = False
    shrinking: bool = False
    #: ``time.perf_counter()`` when the first failure was seen (0.0: none yet): shrinking,
    #: Hypothesis's and then the step-deletion pass, is timed from there.
    failed_at: float = 0.0
    on_example: Callable[[int, int], None] | None = None
    #: A digest of every generated example's steps, in order: two runs that generated the
    #: same sequences have the same digest.
    digest: Any = field(default_factory=hashlib.sha256)
    #: Examples that did each of :data:`DEPTH_MEASURES` at least once, and the sends.
    depth: collections.Counter[str] = field(default_factory=collections.Counter)

    def depth_report(self) -> dict[str, Any]:
        """How deep the generated examples went: shares of examples, sends per example."""
        examples = self.examples
        shares = {
            name: round(self.depth[name] / examples, 4) if examples else 0.0
            for name in DEPTH_MEASURES
        }
        return {
            "examples": examples,
            "steps_per_example": round(self.evidence.total_steps / examples, 2)
            if examples else 0.0,
            "rule_calls_per_example": round(self.depth["rule-calls"] / examples, 2)
            if examples else 0.0,
            "sends_per_example": round(self.depth["sends"] / examples, 2) if examples else 0.0,
            "accepted_sends_per_example": round(self.depth["accepted-sends"] / examples, 2)
            if examples else 0.0,
            "share_of_examples": shares,
        }


# ---------------------------------------------------------------------------------------------
# Reading one draw as a piece of work
# ---------------------------------------------------------------------------------------------


class Choices:
    """A non-negative integer read as mixed-radix digits, least significant first: each read
    takes one digit. 0 reads as 0 everywhere, so a smaller draw is a plainer piece of work."""

    __slots__ = ("_value",)

    def __init__(self, work: bytes | int) -> None:
        self._value = int.from_bytes(work, "little") if isinstance(work, bytes) else work

    def below(self, limit: int) -> int:
        """A value in ``0 .. limit - 1`` (``limit`` >= 1)."""
        self._value, digit = divmod(self._value, limit)
        return digit

    def upto(self, limit: int) -> int:
        """A value in ``0 .. limit``."""
        return self.below(limit + 1)

    def pick(self, values: Sequence[Any]) -> Any:
        return values[self.below(len(values))]

    def chance(self, numerator: int, denominator: int) -> bool:
        """True with probability ``numerator / denominator`` (False reads as plainer)."""
        return self.below(denominator) >= denominator - numerator


_BYTE_OFFSETS = (0, 0, 1, 8, 0x7FF, 0xFF8, 0xFFF, -1)  # -1: any value below 0x1000
_BYTE_COUNTS = (0x1000, 0x2000, 1, 0xFFF, 0x1001, 0x3000, 0, -1)  # -1: any up to 0x6000
_CHAIN_LENGTHS = (1, 1, 1, 2, 3)
_WRAP_OFFSETS = (0xFFFF_FFFF, 0xFFFF_F000, 0x8000_0000, 2**32 - 0x1000)
_SMALL_LENGTHS = (0, 8, 1, 7, 0x40, -1)  # -1: any up to 256
_TAKES = (0, 1, 1, 2)
#: In-line buffer sizes of a send without a deviation (see ``_send``).
_SIZES = ("small", "small", "small", "small", "quarter", "half", "over", "fill")


def read_chain(choices: Choices, chains: bool) -> MdlChain:
    """An MDL chain: 1 to 3 MDLs (1 unless ``chains``), each ByteOffset and ByteCount from a
    table of edges or any value, with distinct PFNs per MDL so that a range taken from the
    wrong MDL or page shows."""
    count = choices.pick(_CHAIN_LENGTHS) if chains else 1
    base = 1 + choices.below(2**28) * 0x1000
    segments = []
    for index in range(count):
        byte_offset = choices.pick(_BYTE_OFFSETS)
        if byte_offset < 0:
            byte_offset = choices.below(0x1000)
        byte_count = choices.pick(_BYTE_COUNTS)
        if byte_count < 0:
            byte_count = choices.upto(0x6000)
        segments.append(MdlSegment.with_pages(byte_offset, byte_count, base + index * 0x100))
    return MdlChain(tuple(segments))


def mdl_chains() -> st.SearchStrategy[MdlChain]:
    """The MDL chains the generator builds (1 to 3 MDLs), as a strategy of their own."""
    return WORK.map(lambda work: read_chain(Choices(work), chains=True))


def _clip(values: list[int]) -> list[int]:
    return sorted({v for v in values if 0 <= v <= UINT32_MAX})


def read_offset(choices: Choices, chain: MdlChain) -> int:
    """MdlOffset: mostly inside the chain, often on an edge, sometimes where 32 bits wrap."""
    first = chain.first
    total = chain.byte_count
    kind = choices.below(8)
    if kind <= 2:
        return 0
    if kind <= 4:
        return choices.upto(total)
    if kind == 5:
        forced = ROUND_TO_PAGES(first.byte_offset + first.byte_count) - first.byte_offset
        return int(choices.pick(_clip([0, 1, total - 1, total, total + 1, first.byte_count,
                                       forced - 1, forced])))
    if kind == 6:
        return int(choices.pick(_WRAP_OFFSETS))
    return choices.upto(UINT32_MAX)


def read_length(choices: Choices, chain: MdlChain, offset: int, forced: bool) -> int:
    """MdlLength for ``offset``: 0, lengths that fit, and lengths at and past the bound that
    applies (the chain's total, or under FORCE_MDL_LENGTH the page-rounded bound and the
    unsafe ROUND_TO_PAGES(ByteCount) of reading A3 (b))."""
    first = chain.first
    if forced:
        bound = ROUND_TO_PAGES(first.byte_offset + first.byte_count) - first.byte_offset
        unsafe = ROUND_TO_PAGES(first.byte_count)
        edges = [bound - offset, bound - offset + 1, bound - offset - 1, unsafe - offset,
                 unsafe - offset + 1, first.byte_count - offset]
    else:
        bound = chain.byte_count
        edges = [bound - offset, bound - offset + 1, bound - offset - 1,
                 first.byte_count - offset, first.byte_count - offset + 1]
    kind = choices.below(8)
    if kind <= 1:
        return 0
    if kind <= 4:
        return 1 + choices.upto(max(0, bound - offset - 1))
    if kind <= 6:
        return int(choices.pick(_clip([1, *edges, 2**32 - offset, 2**32 - offset + 0x1000])))
    return choices.upto(UINT32_MAX)


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------


def build_machine(
    target_factory: Callable[[], Any], profile: Profile, state: RunState
) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine class bound to one target factory, profile and evidence sink."""
    last_rule = max(2, state.steps_per_example)

    class VmbConformance(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.target = target_factory()
            self.driver = Driver(self.target, profile, Evidence())
            self.features: frozenset[str] = frozenset()
            self.robust = "robust-contract-violations" in self.driver.capabilities
            self.rules_run = 0
            self.open_at = 0
            self.disable_at = 0
            self.did: set[str] = set()
            self.sends = 0
            self.accepted_sends = 0

        # -- helpers -------------------------------------------------------------------------

        def _do(self, step: Step) -> None:
            interrupt.check()  # Ctrl-C is taken here, between steps (conformance.interrupt)
            try:
                self.driver.execute(step)
            except BaseException:
                state.failed_now = True
                if not state.failed_at:
                    state.failed_at = time.perf_counter()
                raise

        @property
        def channel(self) -> Any:
            return self.driver.channels[0]

        def _has(self, feature: str) -> bool:
            return feature in self.features

        def _phase(self) -> None:
            """Before each rule: open late, or disable, when this example's time has come."""
            self.rules_run += 1
            if self.rules_run == self.open_at and self.channel.state is ChannelState.NOT_OPEN:
                self._do({"op": "open", "channel": 0})
            if self.rules_run == self.disable_at and (
                self.channel.state is not ChannelState.DISABLED
            ):
                if "completion-before-disable" in self.did:
                    self.did.add("completion-then-disable")
                self.did.add("disable")
                self._do({"op": "disable", "channel": 0})

        def _exact_fit(
            self, mdl: MdlChain | None, offset: int, length: int, flags: int, slack: int
        ) -> int:
            """A BufferLength that makes packet + trailer land on the ring's free space less
            ``slack``: exactly full (must queue or be rejected), or a unit short (fits)."""
            verdict = evaluate_send(
                SendCall(None, 0, mdl, offset, length, flags),
                SendContext.fresh(self.channel.data_size),
                profile,
            )
            header = verdict.accepted.data_offset if verdict.accepted else 56
            room: int = self.channel.free
            return max(0, min(UINT32_MAX, room - RING_TRAILER_SIZE - header - slack))

        def _packet_to_send(self, violate: bool) -> int | None:
            """A packet that may be sent (a busy one for a READ-A10 violation), allocating
            one when every packet is busy and the example holds fewer than MAX_PACKETS."""
            packets = self.driver.packets
            if violate:
                busy = [p.index for p in packets if not self.driver.sendable(p)]
                if busy:
                    return busy[0]
            for packet in packets:
                if self.driver.sendable(packet):
                    return packet.index
            if len(packets) < MAX_PACKETS:
                self._do({"op": "allocate", "channel": 0})
                return len(packets) - 1
            return self._wait_for_completion()

        def _wait_for_completion(self) -> int | None:
            """Every packet is busy: as a driver waits for one to come back, the host takes
            the oldest packet in the ring (if none is taken) and completes it."""
            channel = self.channel
            if not channel.taken and channel.ring:
                self._do({"op": "host_take", "channel": 0})
            if not channel.taken:
                return None
            packet = min(t.packet for t in channel.taken.values())
            self._complete(packet, int(NtStatus.STATUS_SUCCESS), b"")
            return packet if self.driver.sendable(self.driver.packets[packet]) else None

        def _complete(self, packet: int, status: int, payload: bytes) -> None:
            self._do({
                "op": "host_complete",
                "packet": packet,
                "status": status,
                "data": payload.hex(),
            })
            if self.channel.state is not ChannelState.DISABLED:
                self.did.add("completion-before-disable")

        # -- initialisation ------------------------------------------------------------------

        @initialize(
            features=st.frozensets(st.sampled_from(FEATURES)),
            ring=st.sampled_from(RING_SIZES),
            phases=WORK,
        )
        def create(self, features: frozenset[str], ring: int, phases: bytes) -> None:
            self.features = features
            choices = Choices(phases)
            if "late-open" in features:
                self.open_at = 2 + choices.below(max(1, last_rule // 3))
            if "disable" in features:
                # The last part of the example: packets were sent and completed before, and
                # the tail checks what a disabled channel does with sends and completions.
                start = last_rule // 2
                self.disable_at = start + choices.below(max(1, last_rule - start - 1))
            self._do({"op": "create_channel", "ring_data_size": ring})
            self._do({"op": "allocate", "channel": 0})
            if "late-open" not in features:
                self._do({"op": "open", "channel": 0})

        # -- the caller's work ---------------------------------------------------------------

        def _deviations(self) -> tuple[str, ...]:
            """What may go wrong in one call of this example: "none" (where shrinking goes)
            about half the time, else one of the deviations its features allow."""
            enabled = ["fill-ring", "null-buffer", "big-buffer"]
            enabled += [f for f in ("null-mdl", "no-wait", "unknown-flags", "wrap32")
                        if f in self.features]
            if self.robust and "contract" in self.features:
                enabled.append("violate")  # READ-A10, only on robust targets
            return ("none",) * len(enabled) + tuple(enabled)

        def _flag_choices(self) -> tuple[int, ...]:
            force = int(SendFlags.FORCE_MDL_LENGTH) if self._has("force") else 0
            paged = int(SendFlags.PAGED_BUFFER) if self._has("paged") else 0
            return tuple(sorted({0, force, paged, force | paged}))

        def _send(self, choices: Choices, size: str = "") -> None:
            """One send. ``size`` fixes the in-line buffer's size (ring pressure): "fill"
            (packet + trailer exactly the ring's free space, or a unit short), "over" (a few
            units more than the free space: it must queue), "half" (half the free space),
            "quarter" (a quarter of the ring), "small" (up to 256 bytes); "" draws one of the
            example's deviations, and without one a size (mostly small: ring pressure comes
            from every send rule, not only from ``pressure``)."""
            pressure = bool(size)
            deviation = "none" if pressure else choices.pick(self._deviations())
            if deviation == "none" and not pressure:
                size = choices.pick(_SIZES)
            packet = self._packet_to_send(deviation == "violate")
            if packet is None:
                return
            chain = read_chain(choices, self._has("chains"))
            mdl: MdlChain | None = None if deviation == "null-mdl" else chain
            raw_flags = int(choices.pick(self._flag_choices()))
            if deviation != "no-wait":
                raw_flags |= int(SendFlags.WAIT_FOR_COMPLETION)
            if deviation == "unknown-flags":
                raw_flags |= choices.pick((0x8, 0x10, 0x18, 0x8000_0000))
            if mdl is None:
                offset = int(choices.pick((0, 0, 1)))
                length = int(choices.pick((0, 0, 0x1000)))
            elif deviation == "wrap32":
                # Reference §6: MdlOffset + MdlLength past 2**32, wrapping to a small sum that
                # a 32-bit check would find inside the MDL.
                offset = int(choices.pick(_WRAP_OFFSETS))
                wrapped = choices.upto(mdl.byte_count)
                length = (2**32 - offset + wrapped) & UINT32_MAX
            elif pressure:
                # Ring pressure wants accepted sends: a sub-buffer inside the chain.
                if mdl.byte_count == 0:
                    mdl, offset, length = None, 0, 0
                else:
                    offset = choices.below(mdl.byte_count)
                    length = 1 + choices.below(mdl.byte_count - offset)
            else:
                offset = read_offset(choices, mdl)
                forced = bool(raw_flags & SendFlags.FORCE_MDL_LENGTH)
                length = read_length(choices, mdl, offset, forced)
            ring = self.channel.data_size
            free = self.channel.free
            if size == "over" and free >= ring:
                size = "half"  # an empty ring: nothing can queue behind it by size alone
            if size == "fill" or deviation == "fill-ring":
                slack = int(choices.pick((0, 8, -8, 1)))
                buffer_length = self._exact_fit(mdl, offset, length, raw_flags, slack)
            elif size == "over":
                slack = -8 * (1 + choices.below(4))
                buffer_length = self._exact_fit(mdl, offset, length, raw_flags, slack)
            elif size == "half":
                buffer_length = max(0, free // 2 - 128)
            elif size == "quarter":
                buffer_length = ring // 4 - choices.below(64) * 8
            elif deviation == "big-buffer":  # READ-A13
                buffer_length = int(choices.pick((ring - 64, ring - 40, ring - 24, ring)))
            else:
                buffer_length = int(choices.pick(_SMALL_LENGTHS))
                if buffer_length < 0:
                    buffer_length = choices.upto(256)
            fill = choices.below(256)
            was_open = self.channel.state is ChannelState.OPEN
            queue_before = len(self.channel.queue)
            accepted_before = self.driver.evidence.outcomes["accepted"]
            self._do({
                "op": "send",
                "packet": packet,
                # READ-A14: a NULL Buffer, with or without a length.
                "buffer": None if deviation == "null-buffer" else {"fill": fill},
                "buffer_length": buffer_length,
                "mdl": chain_to_json(mdl),
                "mdl_offset": offset,
                "mdl_length": length,
                "flags": raw_flags,
            })
            self.sends += 1
            if self.driver.evidence.outcomes["accepted"] > accepted_before:
                self.accepted_sends += 1
                self.did.add("accepted-send")
                if was_open and len(self.channel.queue) > queue_before:
                    self.did.add("queued-behind-full-ring")
                    expected = self.driver.packets[packet].expected
                    if queue_before and expected is not None and (
                        expected.total + RING_TRAILER_SIZE < self.channel.free
                    ):
                        # It would fit now: only FIFO order keeps it behind the older ones.
                        self.did.add("fifo-order-tested")

        def _takes(self, count: int) -> None:
            for _ in range(count):
                self._do({"op": "host_take", "channel": 0})

        @rule(work=WORK)
        def send(self, work: bytes) -> None:
            # One send, or now and then (Hypothesis may not pick ``pressure`` in an example)
            # a burst of ring pressure; then the host takes 0 to 2 packets.
            self._phase()
            choices = Choices(work)
            if choices.chance(1, 5):
                self._pressure(choices)
            else:
                self._send(choices)
            self._takes(choices.pick(_TAKES))

        @rule(work=WORK)
        def pressure(self, work: bytes) -> None:
            self._phase()
            choices = Choices(work)
            self._pressure(choices)
            self._takes(choices.pick(_TAKES))

        def _pressure(self, choices: Choices) -> None:
            """Mixed sizes aimed at the free space: the ring is filled past half, then a send
            that cannot fit (or fits exactly) queues, then small sends that would fit go
            behind it, so FIFO order between queued and new packets is tested."""
            for _ in range(2):
                if self.channel.free <= self.channel.data_size // 2:
                    break
                self._send(choices, choices.pick(("half", "quarter")))
            self._send(choices, choices.pick(("over", "over", "fill")))
            for _ in range(1 + choices.below(2)):
                self._send(choices, "small")

        @rule(work=WORK)
        def host(self, work: bytes) -> None:
            # The host takes up to three packets and completes up to three, in any order.
            self._phase()
            choices = Choices(work)
            self._takes(choices.pick((1, 1, 2, 3, 0)))
            for _ in range(choices.pick((1, 1, 2, 3, 0))):
                taken = sorted({t.packet for t in self.channel.taken.values()})
                if not taken:
                    break
                packet = taken[0] if choices.chance(1, 3) else choices.pick(taken)
                status = choices.pick(HOST_STATUSES)
                count = choices.pick((0, 0, 1, 8, 16))
                start = choices.below(256)
                payload = bytes((start + i) & 0xFF for i in range(count))
                self._complete(packet, int(status), payload)
            # Then, most often, a send: a completed packet is reused (KMCL-REUSE), and a new
            # packet may go behind the older ones still in the ring.
            if not choices.chance(1, 3):
                self._send(choices)

        @rule(work=WORK)
        def caller(self, work: bytes) -> None:
            # VmbPacketFree, VmbPacketAllocate, a change to a queued packet's buffer, and on
            # robust targets a free of a busy packet (READ-A10).
            # Then, most often, a send, so that the call stays the centre of every example.
            self._phase()
            choices = Choices(work)
            self._caller_action(choices)
            if not choices.chance(1, 3):
                self._send(choices)

        def _caller_action(self, choices: Choices) -> None:
            packets = self.driver.packets
            what = choices.pick(("free", "allocate", "mutate", "busy-free"))
            if what == "busy-free" and self.robust and self._has("contract"):
                busy = [p.index for p in packets
                        if p.state in (PacketState.QUEUED, PacketState.IN_RING)]
                if busy:
                    self._do({"op": "free", "packet": choices.pick(busy)})
                    self.did.add("busy-free")
                    return
            if what == "mutate" and self._has("mutate"):
                queued = [p.index for p in packets if p.state is PacketState.QUEUED]
                if queued:
                    self._do({"op": "mutate_buffer", "packet": choices.pick(queued)})
                    return
            if what == "allocate" and len(packets) < MAX_PACKETS:
                self._do({"op": "allocate", "channel": 0})
                return
            free_able = [p.index for p in packets
                         if p.state in (PacketState.IDLE, PacketState.COMPLETED)]
            if free_able:
                self._do({"op": "free", "packet": choices.pick(free_able)})

        def teardown(self) -> None:
            state.last_log = list(self.driver.log)
            self.driver.evidence.end_case()
            state.evidence.merge(self.driver.evidence)
            if state.shrinking:
                state.shrink_runs += 1
            else:
                state.examples += 1
                state.digest.update(json.dumps(self.driver.log, sort_keys=True).encode())
                state.depth.update(self.did)
                state.depth["sends"] += self.sends
                state.depth["accepted-sends"] += self.accepted_sends
                state.depth["rule-calls"] += self.rules_run
                if state.on_example is not None:
                    state.on_example(state.examples, self.driver.evidence.total_steps)
            state.shrinking = state.shrinking or state.failed_now
            state.failed_now = False
            close = getattr(self.target, "close", None)
            if close is not None:
                close()

    return VmbConformance
