"""The stateful conformance test: a Hypothesis RuleBasedStateMachine over the API calls.

Rules are the calls a driver makes (allocate, send, free) and the host's actions (take a packet
from the ring, complete a transaction, open or disable the channel). Each rule builds a *step*
and hands it to :class:`conformance.driver.Driver`, which performs it on the target and checks
the result with the spec as the oracle, so a shrunk failure is a list of steps that replays on
any target.

Inputs are biased to where bugs live: offsets and lengths at, just inside and just past every
bound (the chain's ByteCount total, the FORCE_MDL_LENGTH page-rounded bound, ROUND_TO_PAGES of
ByteCount alone), values that wrap 32 bits, ByteOffset 0 and 0xFFF, buffers at the ring's size.
Each case enables a random subset of features (swarm testing: FORCE_MDL_LENGTH, PAGED_BUFFER,
chains, a NULL MDL, unknown flag bits, contract violations, buffer mutation, disable), so that
rare interactions are not drowned by common ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
)

from conformance import interrupt
from conformance.driver import Driver, Evidence, Step, chain_to_json
from spec.call import SendCall
from spec.constants import RING_TRAILER_SIZE, UINT32_MAX, NtStatus, SendFlags
from spec.lifecycle import ChannelState, PacketState
from spec.mdl import ROUND_TO_PAGES, MdlChain, MdlSegment
from spec.readings import Profile
from spec.rules import SendContext, evaluate_send

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
MAX_PACKETS = 4
HOST_STATUSES = (
    int(NtStatus.STATUS_SUCCESS),
    int(NtStatus.STATUS_UNSUCCESSFUL),
    int(NtStatus.STATUS_BUFFER_OVERFLOW),
    int(NtStatus.STATUS_PENDING),
)


@dataclass
class RunState:
    """Shared between the machine's instances and the runner of one run."""

    evidence: Evidence
    last_log: list[Step] = field(default_factory=list)
    #: Examples generated, and the re-runs Hypothesis made while shrinking a failure (counted
    #: apart, so the progress line and the summary agree).
    examples: int = 0
    shrink_runs: int = 0
    #: ``failed_now``: this example failed; ``shrinking``: an earlier one did, so every
    #: example from now on is Hypothesis shrinking it.
    failed_now: bool = False
    shrinking: bool = False
    on_example: Callable[[int, int], None] | None = None
    #: A digest of every generated example's steps, in order: two runs that generated the
    #: same sequences have the same digest.
    digest: Any = field(default_factory=hashlib.sha256)


# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

byte_offsets = st.one_of(st.sampled_from([0, 1, 8, 0x7FF, 0xFF8, 0xFFF]), st.integers(0, 0xFFF))
byte_counts = st.one_of(
    st.sampled_from([0, 1, 0xFFF, 0x1000, 0x1001, 0x2000, 0x3000]),
    st.integers(0, 0x6000),
)


_CHAIN_LENGTHS = st.integers(1, 3)
_PFN_BASES = st.integers(1, 2**40)
#: Strategies are built once: Hypothesis validates every new strategy object, and building
#: them per call cost a third of the run. Values that depend on the MDL are drawn as a kind
#: (which shrinks toward the plainest) and an index or a fraction of a fixed strategy.
_KINDS = st.integers(0, 5)
_PICKS = st.integers(0, 63)
_U32 = st.integers(0, UINT32_MAX)
_SMALL_LENGTHS = st.one_of(st.sampled_from([0, 1, 7, 8, 0x40]), st.integers(0, 256))
_WRAP_OFFSETS = (0xFFFF_FFFF, 0xFFFF_F000, 0x8000_0000, 2**32 - 0x1000)
_BYTES = st.integers(0, 255)
_COMPLETION_BYTES = st.binary(max_size=16)
_ONE_IN_THREE = st.sampled_from([False, False, True])


@st.composite
def mdl_chains(draw: st.DrawFn) -> MdlChain:
    count = draw(_CHAIN_LENGTHS)
    base = draw(_PFN_BASES)
    # Distinct PFNs per segment, so a range taken from the wrong MDL or page shows.
    return MdlChain(tuple(
        MdlSegment.with_pages(draw(byte_offsets), draw(byte_counts), base + i * 0x100)
        for i in range(count)
    ))


def _clip(values: list[int]) -> list[int]:
    return sorted({v for v in values if 0 <= v <= UINT32_MAX})


def _pick(data: st.DataObject, values: list[int] | tuple[int, ...], label: str) -> int:
    return values[data.draw(_PICKS, label=label) % len(values)]


def _below(data: st.DataObject, limit: int, label: str) -> int:
    """A value in ``0 .. limit``; shrinks toward 0."""
    return int(data.draw(_U32, label=label) % (limit + 1))


def draw_offset(data: st.DataObject, chain: MdlChain) -> int:
    """MdlOffset: mostly inside the chain, often on an edge, sometimes where 32 bits wrap."""
    first = chain.first
    total = chain.byte_count
    forced = ROUND_TO_PAGES(first.byte_offset + first.byte_count) - first.byte_offset
    kind = data.draw(_KINDS, label="offset kind")
    if kind == 0:
        return 0
    if kind <= 2:
        return _below(data, total, "offset inside")
    if kind == 3:
        edges = _clip([0, 1, total - 1, total, total + 1, first.byte_count, forced - 1, forced])
        return _pick(data, edges, "offset edge")
    if kind == 4:
        return _pick(data, _WRAP_OFFSETS, "offset near 2**32")
    return int(data.draw(_U32, label="offset"))


def draw_length(data: st.DataObject, chain: MdlChain, offset: int, forced: bool) -> int:
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
    kind = data.draw(_KINDS, label="length kind")
    if kind == 0:
        return 0
    if kind <= 2:
        return 1 + _below(data, max(0, bound - offset - 1), "length that fits")
    if kind <= 4:
        return _pick(data, _clip([1, *edges, 2**32 - offset, 2**32 - offset + 0x1000]),
                     "length edge")
    return int(data.draw(_U32, label="length"))


# ---------------------------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------------------------


def build_machine(
    target_factory: Callable[[], Any], profile: Profile, state: RunState
) -> type[RuleBasedStateMachine]:
    """A RuleBasedStateMachine class bound to one target factory, profile and evidence sink."""

    class VmbConformance(RuleBasedStateMachine):
        mdls = Bundle("mdls")

        def __init__(self) -> None:
            super().__init__()
            self.target = target_factory()
            self.driver = Driver(self.target, profile, Evidence())
            self.features: frozenset[str] = frozenset()
            self.robust = "robust-contract-violations" in self.driver.capabilities

        # -- helpers -------------------------------------------------------------------------

        def _do(self, step: Step) -> None:
            interrupt.check()  # Ctrl-C is taken here, between steps (conformance.interrupt)
            try:
                self.driver.execute(step)
            except BaseException:
                state.failed_now = True
                raise

        @property
        def channel(self) -> Any:
            return self.driver.channels[0]

        def _has(self, feature: str) -> bool:
            return feature in self.features

        def _exact_fit(
            self, mdl: MdlChain | None, offset: int, length: int, flags: int,
            data: st.DataObject,
        ) -> int:
            """A BufferLength that makes packet + trailer land on the ring's free space:
            exactly full (must queue or be rejected), or one 8-byte unit short (fits)."""
            verdict = evaluate_send(
                SendCall(None, 0, mdl, offset, length, flags),
                SendContext.fresh(self.channel.data_size),
                profile,
            )
            header = verdict.accepted.data_offset if verdict.accepted else 56
            room: int = self.channel.free
            slack = _pick(data, (0, 8, -8, 1), "slack")
            return max(0, min(UINT32_MAX, room - RING_TRAILER_SIZE - header - slack))

        # -- rules ---------------------------------------------------------------------------

        @initialize(
            features=st.frozensets(st.sampled_from(FEATURES)),
            ring=st.sampled_from(RING_SIZES),
        )
        def create(self, features: frozenset[str], ring: int) -> None:
            self.features = features
            self._do({"op": "create_channel", "ring_data_size": ring})
            self._do({"op": "allocate", "channel": 0})
            if "late-open" not in features:
                self._do({"op": "open", "channel": 0})

        @rule(target=mdls, chain=mdl_chains())
        def make_mdl(self, chain: MdlChain) -> MdlChain:
            if not self._has("chains") and len(chain.segments) > 1:
                chain = MdlChain(chain.segments[:1])
            return chain

        @precondition(lambda self: len(self.driver.packets) < MAX_PACKETS)
        @rule()
        def allocate(self) -> None:
            self._do({"op": "allocate", "channel": 0})

        @precondition(lambda self: self.channel.state is ChannelState.NOT_OPEN)
        @rule()
        def open(self) -> None:
            self._do({"op": "open", "channel": 0})

        @precondition(
            lambda self: self._has("disable") and self.channel.state is not ChannelState.DISABLED
        )
        @rule()
        def disable(self) -> None:
            self._do({"op": "disable", "channel": 0})

        @rule(chain=mdls, data=st.data())
        def send(self, chain: MdlChain, data: st.DataObject) -> None:
            self._send(chain, data)

        @rule(chain=mdls, data=st.data(), takes=st.integers(0, 2))
        def send_then_take(self, chain: MdlChain, data: st.DataObject, takes: int) -> None:
            # A send and the host's next takes in one rule: a second way to reach the call
            # (doubling its weight) that costs Hypothesis one rule choice for several steps.
            self._send(chain, data)
            for _ in range(takes):
                self._do({"op": "host_take", "channel": 0})

        def _deviations(self) -> tuple[str, ...]:
            """What may go wrong in one call of this case: one draw picks at most one, and
            "none" (index 0, where shrinking goes) about half the time."""
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

        def _send(self, chain: MdlChain, data: st.DataObject) -> None:
            deviations = self._deviations()
            deviation = deviations[data.draw(_PICKS, label="deviation") % len(deviations)]
            sendable = [p.index for p in self.driver.packets
                        if deviation == "violate" or self.driver.sendable(p)]
            if not sendable:
                return
            packet = _pick(data, sendable, "packet")
            mdl: MdlChain | None = None if deviation == "null-mdl" else chain
            raw_flags = _pick(data, self._flag_choices(), "FORCE_MDL_LENGTH / PAGED_BUFFER")
            if deviation != "no-wait":
                raw_flags |= SendFlags.WAIT_FOR_COMPLETION
            if deviation == "unknown-flags":
                raw_flags |= _pick(data, (0x8, 0x10, 0x18, 0x8000_0000), "unknown bits")
            if mdl is None:
                offset = _pick(data, (0, 0, 1), "offset")
                length = _pick(data, (0, 0, 0x1000), "length")
            elif deviation == "wrap32":
                # Reference §6: MdlOffset + MdlLength past 2**32, wrapping to a small sum that
                # a 32-bit check would find inside the MDL.
                offset = _pick(data, _WRAP_OFFSETS, "offset near 2**32")
                wrapped = _below(data, mdl.byte_count, "wrapped end")
                length = (2**32 - offset + wrapped) & UINT32_MAX
            else:
                offset = draw_offset(data, mdl)
                forced = bool(raw_flags & SendFlags.FORCE_MDL_LENGTH)
                length = draw_length(data, mdl, offset, forced)
            ring = self.channel.data_size
            if deviation == "fill-ring":
                buffer_length = self._exact_fit(mdl, offset, length, raw_flags, data)
            elif deviation == "big-buffer":  # READ-A13
                buffer_length = _pick(data, (ring - 64, ring - 40, ring - 24, ring), "big buffer")
            else:
                buffer_length = int(data.draw(_SMALL_LENGTHS, label="buffer length"))
            fill = int(data.draw(_BYTES, label="fill"))
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

        @precondition(lambda self: self._has("mutate"))
        @rule(data=st.data())
        def mutate_buffer(self, data: st.DataObject) -> None:
            queued = [p.index for p in self.driver.packets if p.state is PacketState.QUEUED]
            if queued:
                packet = _pick(data, queued, "packet")
                self._do({"op": "mutate_buffer", "packet": packet})

        # The host's rules act on up to three packets at once: fewer rule selections per
        # driver step (Hypothesis spends most of a run choosing rules), and a count shrinks
        # toward 1 like any other draw.

        @rule(count=st.integers(1, 3))
        def host_take(self, count: int) -> None:
            for _ in range(count):
                self._do({"op": "host_take", "channel": 0})

        @precondition(lambda self: bool(self.channel.taken))
        @rule(data=st.data(), count=st.integers(1, 3))
        def host_complete(self, data: st.DataObject, count: int) -> None:
            for _ in range(count):
                taken = sorted(self.channel.taken.values())
                if not taken:
                    return
                packet = _pick(data, taken, "packet")
                status = _pick(data, HOST_STATUSES, "status")
                payload = data.draw(_COMPLETION_BYTES, label="completion bytes")
                self._do({
                    "op": "host_complete",
                    "packet": packet,
                    "status": int(status),
                    "data": payload.hex(),
                })

        @rule(data=st.data())
        def free(self, data: st.DataObject) -> None:
            free_able = [p.index for p in self.driver.packets
                         if p.state in (PacketState.IDLE, PacketState.COMPLETED)]
            if not free_able or not data.draw(_ONE_IN_THREE, label="free"):
                return
            packet = _pick(data, free_able, "packet")
            self._do({"op": "free", "packet": packet})

        def teardown(self) -> None:
            state.last_log = list(self.driver.log)
            self.driver.evidence.end_case()
            state.evidence.merge(self.driver.evidence)
            if state.shrinking:
                state.shrink_runs += 1
            else:
                state.examples += 1
                state.digest.update(json.dumps(self.driver.log, sort_keys=True).encode())
                if state.on_example is not None:
                    state.on_example(state.examples, self.driver.evidence.total_steps)
            state.shrinking = state.shrinking or state.failed_now
            state.failed_now = False
            close = getattr(self.target, "close", None)
            if close is not None:
                close()

    return VmbConformance
