"""Each bug switch of the simulator changes its behaviour observably, and only when switched on.

Every scenario returns what it observed; the correct target must observe the value the
behaviour document asks for, the broken variant something else. A scenario for every name in
the catalog is required, so a new switch cannot be added without a test that it bites.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest

from vmbspec.adapters.sim import BUGS, SimTarget
from vmbspec.adapters.sim.mdl import POISON_PFN

SUCCESS = 0
INVALID_PARAMETER = 0xC000000D
CANCELLED = 0xC0000120
WAIT, FORCE, PAGED = 0x1, 0x2, 0x4


def opened(sim: SimTarget, size: int = 16384) -> int:
    channel = sim.create_channel(size)
    sim.open_channel(channel)
    return channel


def send(
    sim: SimTarget,
    channel: int,
    mdl: Any,
    offset: int,
    length: int,
    flags: int,
    payload: bytes = b"",
) -> tuple[int, int | None]:
    packet = sim.allocate_packet(channel)
    assert packet is not None
    status = sim.send_with_external_mdl(
        packet, bytearray(payload), len(payload), mdl, offset, length, flags
    )
    return status, packet


def ranges_of(raw: bytes) -> list[tuple[int, int, tuple[int, ...]]]:
    """Ranges read with the PFN count taken from the space before data_offset8 when a range
    claims fewer PFNs than that space (so extra PFNs are visible, not a parse error)."""
    data_offset = struct.unpack_from("<H", raw, 2)[0] * 8
    (count,) = struct.unpack_from("<I", raw, 20)
    pos, out = 24, []
    for index in range(count):
        byte_count, byte_offset = struct.unpack_from("<II", raw, pos)
        n = (byte_offset + byte_count + 0xFFF) >> 12
        if index == count - 1:
            n = (data_offset - pos - 8) // 8
        out.append((byte_count, byte_offset, struct.unpack_from(f"<{n}Q", raw, pos + 8)))
        pos += 8 + 8 * n
    return out


def wrap32(sim: SimTarget) -> object:
    channel = opened(sim)
    return send(sim, channel, ((0, 0x2000, (1, 2)),), 0xFFFFF000, 0x2000, WAIT)[0]


def force_ignores_byteoffset(sim: SimTarget) -> object:
    channel = opened(sim)
    mdl = ((0x100, 0x1F00, (1, 2)),)  # correct bound 0x1F00, the buggy one 0x2000
    status, _ = send(sim, channel, mdl, 0, 0x2000, WAIT | FORCE)
    raw = sim.host_take_packet(channel)
    return status, raw and POISON_PFN in ranges_of(raw)[0][2]


def double_completion(sim: SimTarget) -> object:
    channel = opened(sim)
    send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    raw = sim.host_take_packet(channel)
    sim.host_complete(channel, struct.unpack_from("<Q", raw, 8)[0], 0, b"")
    closed = sim.create_channel(8192)
    send(sim, closed, ((0, 8, (1,)),), 0, 0, WAIT)  # queued: disable cancels it
    sim.disable_channel(closed)
    return [status for _, status, _ in sim.completions()]


def paged_not_copied(sim: SimTarget) -> object:
    channel = sim.create_channel(8192)
    packet = sim.allocate_packet(channel)
    buffer = bytearray(b"at-call!")
    sim.send_with_external_mdl(packet, buffer, 8, ((0, 8, (1,)),), 0, 0, WAIT | PAGED)
    buffer[:] = b"changed!"
    sim.open_channel(channel)
    raw = sim.host_take_packet(channel)
    return raw[-8:]


def range_per_page(sim: SimTarget) -> object:
    channel = opened(sim)
    send(sim, channel, ((0x100, 0x2000, (1, 2, 3)),), 0, 0, WAIT, b"\0" * 0x40)
    return ranges_of(sim.host_take_packet(channel))


def zero_length_range(sim: SimTarget) -> object:
    channel = opened(sim)
    status, _ = send(sim, channel, ((0x80, 0, (1,)),), 0, 0, WAIT)
    raw = sim.host_take_packet(channel)
    return status, raw and ranges_of(raw)


def extra_pfn(sim: SimTarget) -> object:
    channel = opened(sim)
    send(sim, channel, ((0x100, 0x2000, (1, 2, 3)),), 0, 0x1000, WAIT)
    raw = sim.host_take_packet(channel)
    return struct.unpack_from("<H", raw, 4)[0], ranges_of(raw)


def ignore_wait_flag(sim: SimTarget) -> object:
    channel = opened(sim)
    return send(sim, channel, ((0, 8, (1,)),), 0, 0, FORCE)[0]


def ring_full(sim: SimTarget) -> object:
    channel = opened(sim, 4096)
    send(sim, channel, None, 0, 0, WAIT, bytes(2000 - 16))
    send(sim, channel, None, 0, 0, WAIT, bytes(2080 - 16))  # exactly fills the ring
    taken = []
    while (raw := sim.host_take_packet(channel)) is not None:
        taken.append(len(raw))
    return taken


def cancel_skips_taken(sim: SimTarget) -> object:
    channel = opened(sim)
    send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    sim.host_take_packet(channel)
    sim.disable_channel(channel)
    return [status for _, status, _ in sim.completions()]


def taken_sizes(sim: SimTarget, channel: int) -> list[int]:
    """The sizes of the packets the host takes, in order, until the ring is empty."""
    sizes = []
    while (raw := sim.host_take_packet(channel)) is not None:
        sizes.append(len(raw))
    return sizes


def queue_overtaking(sim: SimTarget) -> object:
    channel = opened(sim, 4096)
    send(sim, channel, None, 0, 0, WAIT, bytes(2000 - 16))  # 2008 used, 2088 free
    send(sim, channel, None, 0, 0, WAIT, bytes(2088 - 16))  # needs 2096: queued
    send(sim, channel, None, 0, 0, WAIT, bytes(8))  # fits, but must wait behind it
    return taken_sizes(sim, channel)


def busy_free_honoured(sim: SimTarget) -> object:
    closed = sim.create_channel(8192)
    _, queued = send(sim, closed, ((0, 8, (1,)),), 0, 0, WAIT)
    sim.free_packet(queued)  # a contract violation: to be ignored
    sim.open_channel(closed)
    written = sim.host_take_packet(closed) is not None
    channel = opened(sim)
    _, in_ring = send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    sim.free_packet(in_ring)
    raw = sim.host_take_packet(channel)
    sim.host_complete(channel, struct.unpack_from("<Q", raw, 8)[0], 0, b"")
    return written, [(handle == in_ring, status) for handle, status, _ in sim.completions()]


def completion_left_outstanding(sim: SimTarget) -> object:
    channel = opened(sim)
    send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    raw = sim.host_take_packet(channel)
    sim.host_complete(channel, struct.unpack_from("<Q", raw, 8)[0], 0, b"")
    sim.disable_channel(channel)
    return [status for _, status, _ in sim.completions()]


def txid_reuse(sim: SimTarget) -> object:
    channel = opened(sim)
    for _ in range(2):
        send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    first, second = (struct.unpack_from("<Q", sim.host_take_packet(channel), 8)[0]
                     for _ in range(2))
    sim.host_complete(channel, first, 0, b"")
    send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    third = struct.unpack_from("<Q", sim.host_take_packet(channel), 8)[0]
    return third != second  # the second is still outstanding


SCENARIOS: dict[str, tuple[Callable[[SimTarget], object], object]] = {
    "wrap32": (wrap32, INVALID_PARAMETER),
    "force-ignores-byteoffset": (force_ignores_byteoffset, (INVALID_PARAMETER, None)),
    "double-completion": (double_completion, [0, CANCELLED]),
    "paged-not-copied": (paged_not_copied, b"at-call!"),
    "range-per-page": (range_per_page, [(0x2000, 0x100, (1, 2, 3))]),
    "zero-length-range": (zero_length_range, (INVALID_PARAMETER, None)),
    "extra-pfn": (extra_pfn, (6, [(0x1000, 0x100, (1, 2))])),
    "ignore-wait-flag": (ignore_wait_flag, INVALID_PARAMETER),
    "ring-full": (ring_full, [2000, 2080]),
    "cancel-skips-taken": (cancel_skips_taken, [CANCELLED]),
    "queue-overtaking": (queue_overtaking, [2000, 2088, 24]),
    "busy-free-honoured": (busy_free_honoured, (True, [(True, SUCCESS)])),
    "completion-left-outstanding": (completion_left_outstanding, [SUCCESS]),
    "txid-reuse": (txid_reuse, True),
}


def test_every_bug_in_the_catalog_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(BUGS)


@pytest.mark.parametrize("bug", sorted(SCENARIOS))
def test_correct_target_observes_the_documented_behaviour(bug: str) -> None:
    scenario, expected = SCENARIOS[bug]
    assert scenario(SimTarget()) == expected


@pytest.mark.parametrize("bug", sorted(SCENARIOS))
def test_bug_switch_changes_the_observation(bug: str) -> None:
    scenario, expected = SCENARIOS[bug]
    assert scenario(SimTarget(bugs={bug})) != expected


@pytest.mark.parametrize("bug", sorted(SCENARIOS))
def test_each_switch_bites_only_its_own_scenario(bug: str) -> None:
    """A switch may not break the scenarios of the other switches (one defect per switch)."""
    for other, (scenario, expected) in SCENARIOS.items():
        if other != bug and (bug, other) not in OVERLAPS:
            assert scenario(SimTarget(bugs={bug})) == expected, other


# Scenarios that legitimately see two defects: a per-page split also changes the PFN layout
# the extra-pfn scenario reads (and vice versa); a doubled completion doubles the cancellation
# the cancel-skips-taken scenario counts, and the host completion the busy-free-honoured and
# completion-left-outstanding scenarios count.
OVERLAPS = {
    ("range-per-page", "extra-pfn"),
    ("extra-pfn", "range-per-page"),
    ("double-completion", "cancel-skips-taken"),
    ("double-completion", "busy-free-honoured"),
    ("double-completion", "completion-left-outstanding"),
}


def test_broken_variant_is_named_after_its_bugs() -> None:
    assert SimTarget(bugs={"wrap32", "extra-pfn"}).name == "sim[extra-pfn,wrap32]"
    assert SimTarget().name == "sim"
    assert SimTarget().bugs == frozenset()


@pytest.mark.parametrize("bugs", [{"wrap-32"}, "wrap32", {"wrap32", "nope"}])
def test_unknown_bug_names_are_refused(bugs: Any) -> None:
    with pytest.raises(ValueError, match="bug"):
        SimTarget(bugs=bugs)


# -- the new switches keep the simulator's own bookkeeping legal ------------------------------
# A broken variant must fail the suite's checks, never the simulator's own assertions: its
# packets move only along adapters.sim.channel.TRANSITIONS and its ring stays decodable.


def transaction_id(raw: bytes) -> int:
    return int(struct.unpack_from("<Q", raw, 8)[0])


def test_busy_free_honoured_frees_a_queued_packet_and_writes_the_next() -> None:
    sim = SimTarget(bugs={"busy-free-honoured"})
    channel = opened(sim, 4096)
    send(sim, channel, None, 0, 0, WAIT, bytes(2000 - 16))
    _, queued = send(sim, channel, None, 0, 0, WAIT, bytes(2088 - 16))
    _, small = send(sim, channel, None, 0, 0, WAIT, bytes(8))
    assert sim.queued_count(channel) == 2
    sim.free_packet(queued)
    assert sim.packet_state(queued).name == "FREED"
    assert sim.queued_count(channel) == 0  # the small one, now at the head, fits
    assert sim.packet_state(small).name == "IN_RING"
    assert taken_sizes(sim, channel) == [2000, 24]
    assert sim.completions() == []


def test_busy_free_honoured_packet_in_the_ring_is_taken_then_freed_silently() -> None:
    sim = SimTarget(bugs={"busy-free-honoured"})
    channel = opened(sim)
    _, packet = send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    sim.free_packet(packet)
    sim.free_packet(packet)  # a second free changes nothing more
    assert sim.packet_state(packet).name == "IN_RING"
    raw = sim.host_take_packet(channel)
    assert raw is not None and sim.packet_state(packet).name == "TAKEN"
    sim.host_complete(channel, transaction_id(raw), 0, b"")
    assert sim.packet_state(packet).name == "FREED"
    assert sim.completions() == []
    # Cancelled at disable: freed as well, still without a call; the other packet is cancelled.
    _, other = send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    _, freed = send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    sim.free_packet(freed)
    sim.disable_channel(channel)
    assert sim.packet_state(freed).name == "FREED"
    assert sim.completions() == [(other, CANCELLED, b"")]


def test_busy_free_without_the_switch_is_ignored() -> None:
    sim = SimTarget()
    channel = opened(sim)
    _, packet = send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    sim.free_packet(packet)
    assert sim.contract_violations == 1
    assert sim.packet_state(packet).name == "IN_RING"


def test_completion_left_outstanding_cancels_stale_handles_without_moving_packets() -> None:
    sim = SimTarget(bugs={"completion-left-outstanding"})
    channel = opened(sim)
    _, packet = send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    sim.host_complete(channel, transaction_id(sim.host_take_packet(channel)), 0, b"")
    sim.free_packet(packet)  # completed, so freeing it is allowed
    sim.disable_channel(channel)
    assert sim.packet_state(packet).name == "FREED"
    assert sim.completions() == [(packet, SUCCESS, b""), (packet, CANCELLED, b"")]
    sim.disable_channel(channel)  # once only
    assert sim.completions() == []


def test_txid_reuse_later_packet_replaces_the_earlier_in_the_hosts_table() -> None:
    sim = SimTarget(bugs={"txid-reuse"})
    channel = opened(sim)
    packets = [send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)[1] for _ in range(2)]
    first, second = (transaction_id(sim.host_take_packet(channel)) for _ in range(2))
    assert (first, second) == (1, 2)
    sim.host_complete(channel, first, 0, b"")
    _, third = send(sim, channel, ((0, 8, (1,)),), 0, 0, WAIT)
    assert transaction_id(sim.host_take_packet(channel)) == 2
    sim.host_complete(channel, 2, 0, b"")
    assert sim.completions() == [(packets[0], SUCCESS, b""), (third, SUCCESS, b"")]
    assert sim.packet_state(packets[1]).name == "TAKEN"  # lost: never completed
    sim.disable_channel(channel)
    assert sim.completions() == []
