"""The simulator's channels and packets: the queue, completions, disable, contract violations,
and when the in-line buffer is read."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from vmbspec.adapters.sim import SimTarget
from vmbspec.adapters.sim.channel import PacketState

SUCCESS = 0
CANCELLED = 0xC0000120
INVALID_DEVICE_STATE = 0xC0000184
DEVICE_REMOVED = 0xC00002B6
WAIT, FORCE, PAGED = 0x1, 0x2, 0x4
MDL = ((0, 0x100, (42,)),)


def tid(raw: bytes) -> int:
    return int(struct.unpack_from("<Q", raw, 8)[0])


def payload_of(raw: bytes) -> bytes:
    return raw[struct.unpack_from("<H", raw, 2)[0] * 8 :]


def send(sim: SimTarget, packet: int, payload: bytes = b"", flags: int = WAIT) -> int:
    return sim.send_with_external_mdl(packet, bytearray(payload), len(payload), MDL, 0, 0, flags)


def send_new(sim: SimTarget, channel: int, payload: bytes = b"", flags: int = WAIT) -> int:
    packet = sim.allocate_packet(channel)
    assert packet is not None
    assert send(sim, packet, payload, flags) == SUCCESS, sim.last_rejection
    return packet


def drain(sim: SimTarget, channel: int) -> list[bytes]:
    out = []
    while (raw := sim.host_take_packet(channel)) is not None:
        out.append(raw)
    return out


def test_packets_sent_before_open_are_queued_then_written_in_order(sim) -> None:
    channel = sim.create_channel(8192)
    for tag in range(3):
        send_new(sim, channel, bytes([tag]) * 8)
    assert sim.host_take_packet(channel) is None
    assert struct.unpack_from("<II", sim.ring_bytes(channel)) == (0, 0)
    assert sim.queued_count(channel) == 3
    sim.open_channel(channel)
    assert [payload_of(raw)[:1] for raw in drain(sim, channel)] == [b"\0", b"\1", b"\2"]
    assert sim.queued_count(channel) == 0


def test_full_ring_queues_in_fifo_order_and_taking_a_packet_flushes(sim) -> None:
    channel = sim.create_channel(4096)
    sim.open_channel(channel)
    big = bytes(1500)
    first = send_new(sim, channel, b"A" + big)
    second = send_new(sim, channel, b"B" + big)
    third = send_new(sim, channel, b"C" + big)  # 3 * ~1560 does not fit 4096
    fourth = send_new(sim, channel, b"D")  # would fit, but must not overtake
    assert [sim.packet_state(p) for p in (first, second, third, fourth)] == [
        PacketState.IN_RING,
        PacketState.IN_RING,
        PacketState.QUEUED,
        PacketState.QUEUED,
    ]
    pending = struct.unpack_from("<I", sim.ring_bytes(channel), 12)[0]
    assert pending > 1500  # the queue's head asks for room
    assert payload_of(sim.host_take_packet(channel))[:1] == b"A"
    assert sim.packet_state(third) is PacketState.IN_RING
    assert sim.packet_state(fourth) is PacketState.IN_RING
    assert struct.unpack_from("<I", sim.ring_bytes(channel), 12)[0] == 0
    assert [payload_of(raw)[:1] for raw in drain(sim, channel)] == [b"B", b"C", b"D"]


def test_completions_in_any_order_carry_exactly_the_hosts_status_and_bytes(sim) -> None:
    channel = sim.create_channel(8192)
    sim.open_channel(channel)
    packets = [send_new(sim, channel, bytes([i])) for i in range(3)]
    ids = [tid(raw) for raw in drain(sim, channel)]
    assert len(set(ids)) == 3
    sim.host_complete(channel, ids[2], 0x1234, b"two")
    sim.host_complete(channel, ids[0], 0, b"")
    assert sim.completions() == [(packets[2], 0x1234, b"two"), (packets[0], 0, b"")]
    assert sim.completions() == []
    sim.host_complete(channel, ids[1], 0xC0000001, b"x" * 100)
    assert sim.completions() == [(packets[1], 0xC0000001, b"x" * 100)]
    assert {sim.packet_state(p) for p in packets} == {PacketState.COMPLETED}


def test_completed_packet_is_reusable_and_a_stray_completion_is_ignored(sim) -> None:
    channel = sim.create_channel(8192)
    sim.open_channel(channel)
    packet = send_new(sim, channel, b"one")
    first = tid(sim.host_take_packet(channel))
    sim.host_complete(channel, first, 0, b"")
    sim.host_complete(channel, first, 0, b"")  # a second completion for the same id
    assert sim.completions() == [(packet, 0, b"")]
    assert send(sim, packet, b"two") == SUCCESS
    raw = sim.host_take_packet(channel)
    assert payload_of(raw)[:3] == b"two"
    sim.host_complete(channel, tid(raw), 7, b"done")
    assert sim.completions() == [(packet, 7, b"done")]
    sim.free_packet(packet)
    assert sim.packet_state(packet) is PacketState.FREED


def test_disable_cancels_each_outstanding_packet_exactly_once(sim) -> None:
    channel = sim.create_channel(4096)
    sim.open_channel(channel)
    done = send_new(sim, channel, b"done")
    sim.host_complete(channel, tid(sim.host_take_packet(channel)), 0, b"")
    taken = send_new(sim, channel, bytes(1500))
    sim.host_take_packet(channel)
    in_ring = send_new(sim, channel, bytes(1500))
    queued = [send_new(sim, channel, bytes(1500)) for _ in range(2)]
    idle = sim.allocate_packet(channel)
    assert sim.completions() == [(done, 0, b"")]
    sim.disable_channel(channel)
    calls = sim.completions()
    assert sorted(calls) == sorted((p, CANCELLED, b"") for p in [taken, in_ring, *queued])
    sim.disable_channel(channel)
    assert sim.completions() == []
    assert sim.host_take_packet(channel) is None
    sim.host_complete(channel, 1, 0, b"")
    assert sim.completions() == []
    assert send(sim, idle) == DEVICE_REMOVED
    assert send(sim, taken) == DEVICE_REMOVED
    assert sim.completions() == []
    with pytest.raises(ValueError, match="disabled"):
        sim.open_channel(channel)


def test_disable_before_open_cancels_the_queue(sim) -> None:
    channel = sim.create_channel(4096)
    packets = [send_new(sim, channel) for _ in range(3)]
    sim.disable_channel(channel)
    assert sim.completions() == [(p, CANCELLED, b"") for p in packets]


def test_sending_an_outstanding_or_freed_packet_is_rejected_and_changes_nothing(sim) -> None:
    channel = sim.create_channel(4096)
    sim.open_channel(channel)
    taken = send_new(sim, channel, b"t")
    sim.host_take_packet(channel)
    in_ring = send_new(sim, channel, bytes(2000))
    queued = send_new(sim, channel, bytes(2000))
    freed = sim.allocate_packet(channel)
    sim.free_packet(freed)
    before = (sim.ring_bytes(channel), sim.queued_count(channel))
    for packet in (taken, in_ring, queued, freed):
        assert send(sim, packet, b"again") == INVALID_DEVICE_STATE
    assert (sim.ring_bytes(channel), sim.queued_count(channel)) == before
    for packet in (taken, in_ring, queued):
        sim.free_packet(packet)  # freeing an outstanding packet is ignored
    assert sim.contract_violations == 3
    assert sim.packet_state(queued) is PacketState.QUEUED
    assert sim.completions() == []


def test_paged_buffer_is_copied_at_the_call_even_when_queued(sim) -> None:
    channel = sim.create_channel(8192)
    packet = sim.allocate_packet(channel)
    buffer = bytearray(b"before")
    assert sim.send_with_external_mdl(packet, buffer, 6, MDL, 0, 0, WAIT | PAGED) == SUCCESS
    buffer[:] = b"after!"
    sim.open_channel(channel)
    assert payload_of(sim.host_take_packet(channel))[:6] == b"before"


def test_non_paged_queued_buffer_is_read_when_written(sim) -> None:
    channel = sim.create_channel(8192)
    packet = sim.allocate_packet(channel)
    buffer = bytearray(b"before")
    assert sim.send_with_external_mdl(packet, buffer, 6, MDL, 0, 0, WAIT) == SUCCESS
    buffer[:] = b"after!"
    sim.open_channel(channel)
    assert payload_of(sim.host_take_packet(channel))[:6] == b"after!"


def test_non_paged_buffer_written_at_the_call_is_read_at_the_call(sim) -> None:
    channel = sim.create_channel(8192)
    sim.open_channel(channel)
    packet = sim.allocate_packet(channel)
    buffer = bytearray(b"before")
    assert sim.send_with_external_mdl(packet, buffer, 6, MDL, 0, 0, WAIT) == SUCCESS
    buffer[:] = b"after!"
    assert payload_of(sim.host_take_packet(channel))[:6] == b"before"


def test_writer_signals_the_host_on_empty_to_non_empty(sim) -> None:
    channel = sim.create_channel(8192)
    send_new(sim, channel)
    send_new(sim, channel)
    assert sim.signal_count(channel) == 0
    sim.open_channel(channel)
    assert sim.signal_count(channel) == 1
    drain(sim, channel)
    sim.set_interrupt_mask(channel, 1)
    send_new(sim, channel)
    assert sim.signal_count(channel) == 1


def test_unknown_handles_raise_value_error(sim) -> None:
    for call in (
        lambda: sim.open_channel(5),
        lambda: sim.disable_channel(5),
        lambda: sim.host_take_packet(5),
        lambda: sim.ring_bytes(5),
        lambda: sim.free_packet(5),
        lambda: sim.allocate_packet("x"),
    ):
        with pytest.raises(ValueError, match="not a"):
            call()


# -- a random walk through the lifecycle ------------------------------------------------------


class Lifecycle(RuleBasedStateMachine):
    """Random sends, takes, completions and a disable, against a small model: packets reach
    the host in send order, each accepted send completes exactly once, with what was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.sim = SimTarget()
        self.channel = self.sim.create_channel(4096)
        self.opened = False
        self.disabled = False
        self.order: list[int] = []  # packets in send order, not yet taken
        self.taken: dict[int, int] = {}  # transaction id -> packet
        self.expected: list[tuple[int, int, bytes]] = []
        self.completed: dict[int, int] = {}  # packet -> completion calls seen
        self.outstanding: set[int] = set()
        self.idle: list[int] = []

    @rule(size=st.integers(0, 1800))
    def send(self, size: int) -> None:
        packet = self.idle.pop() if self.idle else self.sim.allocate_packet(self.channel)
        assert packet is not None
        status = send(self.sim, packet, bytes([packet & 0xFF]) * size)
        if self.disabled:
            assert status == DEVICE_REMOVED
            self.idle.append(packet)
            return
        assert status == SUCCESS
        self.order.append(packet)
        self.outstanding.add(packet)

    @precondition(lambda self: not self.opened and not self.disabled)
    @rule()
    def open(self) -> None:
        self.sim.open_channel(self.channel)
        self.opened = True

    @rule()
    def take(self) -> None:
        raw = self.sim.host_take_packet(self.channel)
        if raw is None:
            return
        assert not self.disabled
        packet = self.order.pop(0)
        assert payload_of(raw)[:1] in (bytes([packet & 0xFF]), b"")
        assert tid(raw) not in self.taken  # unique among outstanding transactions
        self.taken[tid(raw)] = packet

    @precondition(lambda self: bool(self.taken))
    @rule(data=st.data(), status=st.integers(0, 0xFFFFFFFF), reply=st.binary(max_size=8))
    def complete(self, data: Any, status: int, reply: bytes) -> None:
        transaction_id = data.draw(st.sampled_from(sorted(self.taken)))
        packet = self.taken.pop(transaction_id)
        self.sim.host_complete(self.channel, transaction_id, status, reply)
        self.expected.append((packet, status, reply))
        self.outstanding.discard(packet)
        self.idle.append(packet)

    @precondition(lambda self: not self.disabled)
    @rule()
    def disable(self) -> None:
        self.sim.disable_channel(self.channel)
        self.disabled = True
        self.expected.extend((p, CANCELLED, b"") for p in sorted(self.outstanding))
        self.outstanding.clear()
        self.order.clear()
        self.taken.clear()

    @invariant()
    def completions_match(self) -> None:
        calls = self.sim.completions()
        assert sorted(calls) == sorted(self.expected)
        self.expected.clear()

    @invariant()
    def nothing_is_written_before_open(self) -> None:
        if not self.opened:
            assert struct.unpack_from("<I", self.sim.ring_bytes(self.channel))[0] == 0


Lifecycle.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_lifecycle = Lifecycle.TestCase
