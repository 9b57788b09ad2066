"""Each reading switch of the simulator makes it behave as that option says, and only there.

One scenario per reading: a few calls whose observations tell the reading's options apart
(status, the packet the host takes, completion-routine calls). ``EXPECTED`` holds, for every
option of the simulator's catalog, what the scenario must observe when the simulator follows
that option; the values are worked out by hand from the option's text (never computed with the
simulator's own code), and the default simulator must observe its default option's value.
Every catalog entry needs an expectation, so a new option cannot be added without a test that
it does what it says. The last tests cover the names (``sim[A5=b]``) and the ``sim:`` target
syntax of ``conformance.targets``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmbspec.adapters.sim import READINGS, SIM_DEFAULTS, UNSAFE, SimTarget
from vmbspec.adapters.sim.mdl import POISON_PFN
from vmbspec.conformance.targets import UnknownTarget, resolve_target

SUCCESS = 0
UNSUCCESSFUL = 0xC0000001
INVALID_PARAMETER = 0xC000000D
CANCELLED = 0xC0000120
INVALID_DEVICE_STATE = 0xC0000184
DEVICE_REMOVED = 0xC00002B6
WAIT, FORCE, PAGED = 0x1, 0x2, 0x4
P = POISON_PFN
REJECTED = "rejected"

Ranges = tuple[tuple[int, int, tuple[int, ...]], ...]


# -- helpers -----------------------------------------------------------------------------------


def opened(sim: SimTarget, size: int = 0x4000) -> int:
    channel = sim.create_channel(size)
    sim.open_channel(channel)
    return channel


def decode(raw: bytes) -> tuple[int, int, Ranges]:
    """(packet type, descriptor flags, ranges) of one packet the host took."""
    packet_type, data_offset8, _length8, flags = struct.unpack_from("<HHHH", raw, 0)
    if packet_type == 6:
        return packet_type, flags, ()
    (count,) = struct.unpack_from("<I", raw, 20)
    pos, ranges = 24, []
    for _ in range(count):
        byte_count, byte_offset = struct.unpack_from("<II", raw, pos)
        n = (byte_offset + byte_count + 0xFFF) >> 12
        ranges.append((byte_count, byte_offset, struct.unpack_from(f"<{n}Q", raw, pos + 8)))
        pos += 8 + 8 * n
    assert pos == data_offset8 * 8
    return packet_type, flags, tuple(ranges)


def sent(
    sim: SimTarget, mdl: Any, offset: int, length: int, flags: int = WAIT, payload: bytes = b""
) -> object:
    """``REJECTED``, or the ranges of the packet the host takes (type 6: ``"in-band"``)."""
    channel = opened(sim)
    packet = sim.allocate_packet(channel)
    status = sim.send_with_external_mdl(
        packet, bytearray(payload), len(payload), mdl, offset, length, flags
    )
    if status != SUCCESS:
        assert status >= 0xC0000000, f"a rejection returned {status:#x}"
        return REJECTED
    raw = sim.host_take_packet(channel)
    assert raw is not None
    packet_type, _flags, ranges = decode(raw)
    return "in-band" if packet_type == 6 else ranges


# -- one scenario per reading ------------------------------------------------------------------

ONE_MDL = ((0, 0x100, (1,)),)
TWO_MDLS = ((0, 0x100, (1,)), (0, 0x200, (2,)))


def a1(sim: SimTarget) -> object:
    """What MdlLength 0 covers."""
    return (
        sent(sim, ONE_MDL, 0x10, 0),
        sent(sim, ONE_MDL, 0, 0),
        sent(sim, TWO_MDLS, 0x10, 0),
        sent(sim, ONE_MDL, 0x10, 0, WAIT | FORCE),
    )


def a2(sim: SimTarget) -> object:
    """The origin of MdlOffset."""
    mdl = ((0x100, 0x200, (7,)),)
    chain = ((0x10, 0x10, (1,)), (0x20, 0x10, (2,)))
    return sent(sim, mdl, 0x180, 0x10), sent(sim, mdl, 0x80, 0x10), sent(sim, chain, 0x10, 0x20)


def a3(sim: SimTarget) -> object:
    """The FORCE_MDL_LENGTH bound: (a) is 0x2000 - 0x100 = 0x1F00 here, (b) 0x2000."""
    mdl = ((0x100, 0x1F00, (1, 2)),)
    return tuple(sent(sim, mdl, 0, n, WAIT | FORCE) for n in (0x2000, 0x3000, 0xFFFFFFFF))


def a4(sim: SimTarget) -> object:
    """A send without WAIT_FOR_COMPLETION, written at the call, then one queued until open."""
    channel = opened(sim)
    packet = sim.allocate_packet(channel)
    mdl = ((0, 8, (1,)),)
    status = sim.send_with_external_mdl(packet, bytearray(), 0, mdl, 0, 0, 0)
    at_call = sim.completions()
    raw = sim.host_take_packet(channel)
    flags = None if raw is None else decode(raw)[1]
    if raw is not None:
        sim.host_complete(channel, struct.unpack_from("<Q", raw, 8)[0], SUCCESS, b"")
    after_host = sim.completions()
    state = sim.packet_state(packet).value

    late = sim.create_channel(0x4000)
    queued = sim.allocate_packet(late)
    queued_status = sim.send_with_external_mdl(queued, bytearray(), 0, mdl, 0, 0, 0)
    before_open = sim.completions()
    sim.open_channel(late)
    at_open = sim.completions()
    return (
        status, at_call, flags, after_host, state,
        queued_status, before_open, [status for _, status, _ in at_open],
    )


CHAIN3 = ((0, 0x100, (1,)), (0, 0x200, (2,)), (0, 0, ()))


def a5(sim: SimTarget) -> object:
    """A chain without FORCE_MDL_LENGTH."""
    return sent(sim, CHAIN3, 0x10, 0x20), sent(sim, CHAIN3, 0x10, 0x100)


def a6(sim: SimTarget) -> object:
    return sent(sim, None, 0, 0, WAIT, b"xy"), sent(sim, None, 0, 1, WAIT, b"xy")


def a7(sim: SimTarget) -> object:
    return sent(sim, ONE_MDL, 0, 0, WAIT | 0x10), sent(sim, ONE_MDL, 0, 0, WAIT | 0x80000000)


def a8(sim: SimTarget) -> object:
    """The status of each kind of rejection."""
    channel = opened(sim)
    busy = sim.allocate_packet(channel)
    sim.send_with_external_mdl(busy, bytearray(), 0, ONE_MDL, 0, 0, WAIT)
    again = sim.send_with_external_mdl(busy, bytearray(), 0, ONE_MDL, 0, 0, WAIT)
    bad = sim.send_with_external_mdl(
        sim.allocate_packet(channel), bytearray(), 0, ONE_MDL, 0x200, 0, WAIT
    )
    small = opened(sim, 0x1000)
    never = sim.send_with_external_mdl(
        sim.allocate_packet(small), bytearray(0x1000), 0x1000, ONE_MDL, 0, 0, WAIT
    )
    sim.disable_channel(channel)
    sim.completions()
    closed = sim.send_with_external_mdl(
        sim.allocate_packet(channel), bytearray(), 0, ONE_MDL, 0, 0, WAIT
    )
    return again, bad, never, closed


def a9(sim: SimTarget) -> object:
    empty = ((0, 0, ()),)
    return (
        sent(sim, empty, 0, 0),
        sent(sim, empty, 0, 0, WAIT | FORCE),
        sent(sim, ONE_MDL, 0x100, 0),
        sent(sim, empty, 1, 0),
    )


def a10(sim: SimTarget) -> object:
    channel = opened(sim)
    packet = sim.allocate_packet(channel)
    sim.send_with_external_mdl(packet, bytearray(), 0, ONE_MDL, 0, 0, WAIT)
    again = sim.send_with_external_mdl(packet, bytearray(), 0, ONE_MDL, 0, 0, WAIT)
    sim.free_packet(packet)  # busy: ignored
    return again, sim.packet_state(packet).value, sim.host_take_packet(channel) is not None


def a11(sim: SimTarget) -> object:
    """A queued packet without PAGED_BUFFER, its buffer changed before it is written."""
    channel = sim.create_channel(0x4000)
    packet = sim.allocate_packet(channel)
    buffer = bytearray(b"abcd")
    sim.send_with_external_mdl(packet, buffer, 4, ONE_MDL, 0, 0, WAIT)
    buffer[:] = b"WXYZ"
    sim.open_channel(channel)
    raw = sim.host_take_packet(channel)
    assert raw is not None
    data_offset = struct.unpack_from("<H", raw, 2)[0] * 8
    return bytes(raw[data_offset : data_offset + 4]), "reads-buffer-late" in sim.capabilities


def a12(sim: SimTarget) -> object:
    channel = opened(sim)
    taken = sim.allocate_packet(channel)
    sim.send_with_external_mdl(taken, bytearray(), 0, ONE_MDL, 0, 0, WAIT)
    sim.host_take_packet(channel)
    sim.send_with_external_mdl(sim.allocate_packet(channel), bytearray(), 0, ONE_MDL, 0, 0, WAIT)
    sim.disable_channel(channel)
    return [status for _, status, _ in sim.completions()]


def a13(sim: SimTarget) -> object:
    small = opened(sim, 0x1000)
    packet = sim.allocate_packet(small)
    return sim.send_with_external_mdl(packet, bytearray(0xFE8), 0xFE8, None, 0, 0, WAIT)


def a14(sim: SimTarget) -> object:
    return sent(sim, ONE_MDL, 0, 0, WAIT, b""), sim.send_with_external_mdl(
        sim.allocate_packet(opened(sim)), None, 2, ONE_MDL, 0, 0, WAIT
    )


SCENARIOS: dict[str, Callable[[SimTarget], object]] = {
    "A1": a1, "A2": a2, "A3": a3, "A4": a4, "A5": a5, "A6": a6, "A7": a7, "A8": a8, "A9": a9,
    "A10": a10, "A11": a11, "A12": a12, "A13": a13, "A14": a14,
}

R100 = ((0x100, 0, (1,)),)
RF0 = ((0xF0, 0x10, (1,)),)
A7_ACCEPTED = (R100, R100)
A8_STATUSES = (INVALID_DEVICE_STATE, INVALID_PARAMETER, INVALID_PARAMETER, DEVICE_REMOVED)
A11_LATE = (b"WXYZ", True)

#: reading -> option -> what the reading's scenario observes under that option.
EXPECTED: dict[str, dict[str, object]] = {
    "A1": {
        "a": (RF0, R100, ((0xF0, 0x10, (1,)), (0x200, 0, (2,))), RF0),
        "b": (REJECTED, R100, REJECTED, ((0x100, 0x10, (1,)),)),
        "c": (REJECTED, R100, REJECTED, REJECTED),
        "d": (RF0, R100, RF0, RF0),
    },
    "A2": {
        "a": (((0x10, 0x280, (7,)),), ((0x10, 0x180, (7,)),), REJECTED),
        "b": (((0x10, 0x180, (7,)),), REJECTED, ((0x10, 0x10, (1,)), (0x10, 0x20, (2,)))),
    },
    "A3": {
        "a": (REJECTED, REJECTED, REJECTED),
        "b": (((0x2000, 0x100, (1, 2, P)),), REJECTED, REJECTED),
        "c": (((0x1F00, 0x100, (1, 2)),),) * 3,
        "d": (((0x2000, 0x100, (1, 2, P)),), ((0x3000, 0x100, (1, 2, P, P)),), REJECTED),
    },
    "A4": {
        # status, calls at the call, descriptor flags, calls after the host's completion,
        # packet state; then the queued send: status, calls before and at the open.
        "a": (INVALID_PARAMETER, [], None, [], "idle", INVALID_PARAMETER, [], []),
        "b": (SUCCESS, [(2, SUCCESS, b"")], 0, [], "completed", SUCCESS, [], [SUCCESS]),
        "c": (SUCCESS, [], 1, [(2, SUCCESS, b"")], "completed", SUCCESS, [], []),
    },
    "A5": {
        "a": (((0x20, 0x10, (1,)),), ((0xF0, 0x10, (1,)), (0x10, 0, (2,)))),
        "b": (((0x20, 0x10, (1,)), (0x200, 0, (2,))), REJECTED),
        "c": (((0x20, 0x10, (1,)),), REJECTED),
    },
    "A6": {"a": ("in-band", REJECTED), "b": (REJECTED, REJECTED)},
    "A7": {"either": A7_ACCEPTED, "ignore": A7_ACCEPTED, "reject": (REJECTED, REJECTED)},
    "A8": {"any-error": A8_STATUSES, "exact": A8_STATUSES},
    "A9": {
        "reject": (REJECTED, REJECTED, REJECTED, REJECTED),
        "no-range": ("in-band", "in-band", "in-band", REJECTED),
    },
    "A10": {"contract": (INVALID_DEVICE_STATE, "in ring", True)},
    "A11": {"call-or-write": A11_LATE, "at-call": (b"abcd", False)},
    "A12": {"cancel": [CANCELLED, CANCELLED], "any-error": [UNSUCCESSFUL, UNSUCCESSFUL]},
    "A13": {"reject": INVALID_PARAMETER},
    "A14": {"reject": (R100, INVALID_PARAMETER)},
}

#: (reading, option) -> other readings whose scenario it changes, and why that is right.
OVERLAPS: dict[tuple[str, str], set[str]] = {
    # A chain's MdlLength 0 under "the first MDL only" is the rest of the first MDL: A1 (d).
    ("A5", "c"): {"A1"},
}

CATALOG = [(reading, option) for reading, options in READINGS.items() for option in options]


def test_every_option_in_the_catalog_has_an_expectation() -> None:
    assert set(SCENARIOS) == set(READINGS) == set(EXPECTED)
    for reading, options in READINGS.items():
        assert set(EXPECTED[reading]) == set(options), reading
        assert SIM_DEFAULTS[reading] in options


@pytest.mark.parametrize("reading", sorted(SCENARIOS))
def test_default_simulator_follows_its_default_options(reading: str) -> None:
    observed = SCENARIOS[reading](SimTarget())
    assert observed == EXPECTED[reading][SIM_DEFAULTS[reading]]


@pytest.mark.parametrize(("reading", "option"), CATALOG)
def test_switch_follows_its_option(reading: str, option: str) -> None:
    observed = SCENARIOS[reading](SimTarget(readings={reading: option}))
    assert observed == EXPECTED[reading][option]


@pytest.mark.parametrize(
    ("reading", "option"), [(r, o) for r, o in CATALOG if o != SIM_DEFAULTS[r]]
)
def test_switch_changes_nothing_in_other_readings(reading: str, option: str) -> None:
    sim_options = {reading: option}
    for other, scenario in SCENARIOS.items():
        if other == reading or other in OVERLAPS.get((reading, option), set()):
            continue
        observed = scenario(SimTarget(readings=sim_options))
        assert observed == EXPECTED[other][SIM_DEFAULTS[other]], (reading, option, other)


def test_declared_overlaps_are_real() -> None:
    for (reading, option), others in OVERLAPS.items():
        for other in others:
            observed = SCENARIOS[other](SimTarget(readings={reading: option}))
            assert observed != EXPECTED[other][SIM_DEFAULTS[other]], (reading, option, other)


# -- details the scenarios do not show ---------------------------------------------------------


def test_a4_b_host_completion_of_a_detached_transaction_reaches_nobody_else() -> None:
    """The completed no-wait transaction keeps its id while in the ring: a resend of the same
    packet gets another id, and completing the first id does not complete the resend."""
    sim = SimTarget(readings={"A4": "b"})
    channel = opened(sim)
    packet = sim.allocate_packet(channel)
    assert sim.send_with_external_mdl(packet, bytearray(), 0, ONE_MDL, 0, 0, 0) == SUCCESS
    assert sim.completions() == [(packet, SUCCESS, b"")]
    assert sim.send_with_external_mdl(packet, bytearray(), 0, ONE_MDL, 0, 0, WAIT) == SUCCESS
    first, second = sim.host_take_packet(channel), sim.host_take_packet(channel)
    assert first is not None and second is not None
    first_id, second_id = (struct.unpack_from("<Q", raw, 8)[0] for raw in (first, second))
    assert first_id != second_id
    sim.host_complete(channel, first_id, SUCCESS, b"late")
    assert sim.completions() == []
    sim.host_complete(channel, second_id, SUCCESS, b"ok")
    assert sim.completions() == [(packet, SUCCESS, b"ok")]


def test_a4_b_disable_does_not_cancel_a_completed_no_wait_packet() -> None:
    sim = SimTarget(readings={"A4": "b"})
    channel = opened(sim)
    packet = sim.allocate_packet(channel)
    sim.send_with_external_mdl(packet, bytearray(), 0, ONE_MDL, 0, 0, 0)
    assert sim.completions() == [(packet, SUCCESS, b"")]
    sim.disable_channel(channel)
    assert sim.completions() == []


def test_a3_d_huge_range_is_rejected_without_building_it() -> None:
    sim = SimTarget(readings={"A3": "d"})
    mdl = ((0, 0x1000, (1,)),)
    assert sent(sim, mdl, 0xFFFFFFFF, 0xFFFFFFFF, WAIT | FORCE) == REJECTED


def test_a2_b_mdl_length_zero_is_the_rest_of_the_described_bytes() -> None:
    sim = SimTarget(readings={"A2": "b"})
    mdl = ((0x100, 0x200, (7,)),)
    assert sent(sim, mdl, 0x180, 0) == ((0x180, 0x180, (7,)),)
    assert sent(sim, mdl, 0x100, 0x200) == ((0x200, 0x100, (7,)),)
    assert sent(sim, mdl, 0x100, 0x201) == REJECTED
    forced = ((0x100, 0x1F00, (1, 2)),)  # the page-rounded end is 0x2000 from StartVa
    assert sent(sim, forced, 0x100, 0x1F00, WAIT | FORCE) == ((0x1F00, 0x100, (1, 2)),)
    assert sent(sim, forced, 0x100, 0x1F01, WAIT | FORCE) == REJECTED


def _has_poison(value: object) -> bool:
    if isinstance(value, tuple | list):
        return any(_has_poison(item) for item in value)
    return value == POISON_PFN


def test_unsafe_options_are_the_ones_that_read_past_the_pfn_array() -> None:
    poisoned = {
        (reading, option)
        for reading, option in CATALOG
        if _has_poison(SCENARIOS[reading](SimTarget(readings={reading: option})))
    }
    assert poisoned == set(UNSAFE) == {("A3", "b"), ("A3", "d")}
    assert SimTarget(readings={"A3": "b", "A5": "b"}).readings.unsafe == ("A3=b",)


# -- names and the sim: target syntax ----------------------------------------------------------


def test_name_shows_bugs_then_readings_in_reading_order() -> None:
    assert SimTarget(readings={"A5": "b"}).name == "sim[A5=b]"
    sim = SimTarget(bugs={"wrap32"}, readings={"A12": "any-error", "A3": "c"})
    assert sim.name == "sim[wrap32,A3=c,A12=any-error]"
    assert SimTarget().name == "sim"


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        ({"A15": "a"}, r"unknown reading 'A15'.*A1=a\|b\|c\|d"),
        ({"A5": "z"}, r"reading A5 has no option 'z'.*options: a, b, c"),
        ({"A5": 2}, "strings"),
        ("A5=b", "mapping"),
    ],
)
def test_unknown_readings_and_options_are_refused(readings: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SimTarget(readings=readings)


@pytest.mark.parametrize(
    ("target", "name", "expected"),
    [
        ("sim:A5=b", "sim:A5=b", "sim[A5=b]"),
        ("sim:A3=c+A5=b", "sim:A3=c,A5=b", "sim[A3=c,A5=b]"),
        ("sim:wrap32,A5=b", "sim:wrap32,A5=b", "sim[wrap32,A5=b]"),
        ("sim:A12=any-error+wrap32,A1=d", "sim:wrap32,A1=d,A12=any-error",
         "sim[wrap32,A1=d,A12=any-error]"),
        ("sim", "sim", "sim"),
    ],
)
def test_sim_target_names(target: str, name: str, expected: str) -> None:
    resolved, factory = resolve_target(target)
    assert resolved == name
    assert factory().name == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("sim:A5=z", r"reading A5 has no option 'z'.*options: a, b, c"),
        ("sim:A99=b", r"unknown reading 'A99'.*A5=a\|b\|c"),
        ("sim:A5=b+A5=c", "given twice"),
        ("sim:wrap33,A5=b", "unknown simulator bug 'wrap33'"),
        ("sim:help", "Reading options"),
    ],
)
def test_bad_sim_targets_are_usage_errors(target: str, message: str) -> None:
    with pytest.raises(UnknownTarget, match=message):
        resolve_target(target)


def test_a11_at_call_target_does_not_declare_reads_buffer_late() -> None:
    _, factory = resolve_target("sim:A11=at-call")
    assert "reads-buffer-late" not in factory().capabilities
    assert "reads-buffer-late" in SimTarget.capabilities


PIECES = st.one_of(
    st.sampled_from(
        ["A5=b", "A3=c", "A1=d", "A12=any-error", "A7=reject", "wrap32", "extra-pfn", "A5=a",
         "A5=", "=b", "A0=a", "A5=b=c", "help", " A4 = c ", ""]
    ),
    st.text(alphabet="Aa0159=+,-bcdz ", max_size=10),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(PIECES, max_size=5), st.lists(st.sampled_from([",", "+"]), min_size=5))
def test_any_sim_target_text_resolves_or_is_a_clean_usage_error(
    pieces: list[str], separators: list[str]
) -> None:
    text = "sim:" + "".join(p + sep for p, sep in zip(pieces, separators, strict=False))
    try:
        name, factory = resolve_target(text)
    except UnknownTarget as error:
        assert str(error)
        return
    target = factory()
    assert isinstance(target, SimTarget)
    again, factory_again = resolve_target(name)  # the display name names the same target
    assert again == name and factory_again().name == target.name
