"""NativeTarget over the Rust core (RustTarget): the behaviour of docs/target-behaviour.md,
observed through the target interface only. Packets are decoded here, from reference §4."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from vmbspec.adapters.native import NativeTarget, RustTarget, build_mdl_chain, span_pages
from vmbspec.adapters.rust import build

WAIT, FORCE, PAGED = 0x1, 0x2, 0x4
STATUS_CANCELLED = 0xC000_0120
STATUS_INVALID_DEVICE_STATE = 0xC000_0184
STATUS_DEVICE_REMOVED = 0xC000_02B6


def nt_error(status: int) -> bool:
    return status >> 30 == 3


@pytest.fixture(scope="module")
def library() -> Path:
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    return build.build_library()


@pytest.fixture
def target(library: Path) -> Iterator[NativeTarget]:
    t = RustTarget()
    yield t
    t.close()


def mdl(
    byte_offset: int, byte_count: int, first_pfn: int = 0x100
) -> tuple[int, int, tuple[int, ...]]:
    n = span_pages(byte_offset, byte_count)
    return (byte_offset, byte_count, tuple(range(first_pfn, first_pfn + n)))


class Decoded(NamedTuple):
    type: int
    data_offset8: int
    length8: int
    flags: int
    txid: int
    ranges: list[tuple[int, int, tuple[int, ...]]]
    payload: bytes


def decode(packet: bytes) -> Decoded:
    ptype, off8, len8, flags, txid = struct.unpack_from("<HHHHQ", packet)
    assert len(packet) == len8 * 8
    ranges: list[tuple[int, int, tuple[int, ...]]] = []
    if ptype == 9:
        reserved, count = struct.unpack_from("<II", packet, 16)
        assert reserved == 0
        at = 24
        for _ in range(count):
            byte_count, byte_offset = struct.unpack_from("<II", packet, at)
            n = (byte_offset + byte_count + 0xFFF) >> 12
            pfns = tuple(int(p) for p in struct.unpack_from(f"<{n}Q", packet, at + 8))
            ranges.append((byte_count, byte_offset, pfns))
            at += 8 + 8 * n
        assert at == off8 * 8
    return Decoded(ptype, off8, len8, flags, txid, ranges, packet[off8 * 8 :])


def opened(target: NativeTarget, size: int = 16384) -> int:
    channel = target.create_channel(size)
    target.open_channel(channel)
    return channel


def packet_of(target: NativeTarget, channel: int) -> int:
    packet = target.allocate_packet(channel)
    assert packet is not None
    return packet


def test_rust_target_is_a_target(target: NativeTarget) -> None:
    pytest.importorskip("statemachine")
    from vmbspec.conformance.target import CAPABILITIES, Target

    assert isinstance(target, Target)
    assert target.name == "rust"
    assert target.capabilities <= CAPABILITIES.keys()


def test_worked_example(target: NativeTarget) -> None:
    channel = opened(target)
    packet = packet_of(target, channel)
    buffer = bytearray(range(0x40))
    chain = [(0x100, 0x2000, (0xA, 0xB, 0xC))]
    assert target.send_with_external_mdl(packet, buffer, 0x40, chain, 0, 0, WAIT) == 0
    raw = target.host_take_packet(channel)
    assert raw is not None
    d = decode(raw)
    assert (d.type, d.data_offset8, d.length8, d.flags) == (9, 7, 15, 1)
    assert d.ranges == [(0x2000, 0x100, (0xA, 0xB, 0xC))]
    assert d.payload == bytes(range(0x40))  # 56 + 64 = 120 = 15 * 8: no padding
    target.host_complete(channel, d.txid, 0x1234, b"reply")
    assert target.completions() == [(packet, 0x1234, b"reply")]
    assert target.completions() == []


@pytest.mark.parametrize(
    ("buffer", "length", "chain", "offset", "mdl_length", "flags"),
    [
        pytest.param(b"ab", 2, [mdl(0, 0x1000)], 0, 0, 0, id="no-wait-for-completion"),
        pytest.param(b"ab", 2, [mdl(0, 0x1000)], 0, 0, PAGED | FORCE, id="no-wait-other-bits"),
        pytest.param(None, 4, None, 0, 0, WAIT, id="null-buffer-with-length"),
        pytest.param(b"", 0, None, 8, 0, WAIT, id="null-mdl-with-offset"),
        pytest.param(b"", 0, None, 0, 8, WAIT, id="null-mdl-with-length"),
        pytest.param(b"", 0, [mdl(0, 0x3000)], 0xFFFF_F000, 0x2000, WAIT, id="wrap-32-bit"),
        pytest.param(b"", 0, [mdl(0, 0x3000)], 0x2000, 0x1001, WAIT, id="past-byte-count"),
        pytest.param(b"", 0, [mdl(0, 0)], 0, 0, WAIT, id="resolved-length-zero"),
        pytest.param(b"", 0, [mdl(0, 0x10)], 0x10, 0, WAIT, id="rest-is-empty"),
        pytest.param(b"", 0, [mdl(0x100, 0x10)], 0, 0xF01, WAIT | FORCE, id="force-past-page"),
        pytest.param(
            b"",
            0,
            [mdl(0x100, 0x10), mdl(0, 0x8000)],
            0,
            0x1000,
            WAIT | FORCE,
            id="force-ignores-chain",
        ),
        pytest.param(bytes(16368), 16368, None, 0, 0, WAIT, id="never-fits"),
        pytest.param(b"", 0, [mdl(0, 0xFFFF_F000)], 0, 0, WAIT, id="never-fits-huge-mdl"),
        pytest.param(b"", 0, [(0x1000, 1, (1, 2))], 0, 1, WAIT, id="byte-offset-too-large"),
    ],
)
def test_rejected_calls_change_nothing(
    target: NativeTarget,
    buffer: bytes | None,
    length: int,
    chain: list[tuple[int, int, tuple[int, ...]]] | None,
    offset: int,
    mdl_length: int,
    flags: int,
) -> None:
    channel = opened(target)
    packet = packet_of(target, channel)
    before = target.ring_bytes(channel)
    data = None if buffer is None else bytearray(buffer)
    status = target.send_with_external_mdl(packet, data, length, chain, offset, mdl_length, flags)
    assert nt_error(status), hex(status)
    assert target.ring_bytes(channel) == before
    assert target.completions() == []
    # The packet is still usable.
    assert target.send_with_external_mdl(packet, None, 0, None, 0, 0, WAIT) == 0


def test_bits_outside_the_mask_are_ignored(target: NativeTarget) -> None:
    channel = opened(target)
    packet = packet_of(target, channel)
    assert target.send_with_external_mdl(packet, None, 0, [mdl(0, 0x10)], 0, 0, 0x13) == 0


def test_chain_is_one_range_per_mdl_touched(target: NativeTarget) -> None:
    channel = opened(target)
    packet = packet_of(target, channel)
    chain = [mdl(0x800, 0x1800, 10), mdl(0, 0, 0), mdl(0x10, 0x3000, 20)]
    assert target.send_with_external_mdl(packet, None, 0, chain, 0x1000, 0, WAIT) == 0
    raw = target.host_take_packet(channel)
    assert raw is not None
    assert decode(raw).ranges == [
        (0x800, 0x800, (11,)),  # bytes 0x1000..0x1800 of MDL 0: ByteOffset 0x1800 -> page 1
        (0x3000, 0x10, (20, 21, 22, 23)),
    ]


def test_force_covers_the_rest_of_the_last_page(target: NativeTarget) -> None:
    channel = opened(target)
    packet = packet_of(target, channel)
    chain = [mdl(0x100, 0x10, 7), mdl(0, 0x8000)]
    assert target.send_with_external_mdl(packet, None, 0, chain, 0x10, 0xEF0, WAIT | FORCE) == 0
    raw = target.host_take_packet(channel)
    assert raw is not None
    assert decode(raw).ranges == [(0xEF0, 0x110, (7,))]


def test_queue_before_open_then_fifo_when_full(target: NativeTarget) -> None:
    channel = target.create_channel(4096)
    packets = [packet_of(target, channel) for _ in range(5)]
    for i, packet in enumerate(packets):
        buffer = bytearray([i]) * 1000
        assert target.send_with_external_mdl(packet, buffer, 1000, None, 0, 0, PAGED | WAIT) == 0
    assert target.host_take_packet(channel) is None
    target.open_channel(channel)
    seen = []
    while (raw := target.host_take_packet(channel)) is not None:
        seen.append(decode(raw).payload[0])
    assert seen == [0, 1, 2, 3, 4]


def test_buffer_is_read_at_the_call_even_when_queued(target: NativeTarget) -> None:
    channel = target.create_channel(8192)
    packet = packet_of(target, channel)
    buffer = bytearray(b"original")
    assert target.send_with_external_mdl(packet, buffer, 8, None, 0, 0, WAIT) == 0
    buffer[:] = b"mutated!"
    target.open_channel(channel)
    raw = target.host_take_packet(channel)
    assert raw is not None and raw[16:24] == b"original"


def test_ring_bytes_show_indices_and_trailers_across_the_wrap(target: NativeTarget) -> None:
    channel = opened(target, 4096)
    packet = packet_of(target, channel)
    for round_ in range(12):
        buffer = bytearray([round_]) * 700
        assert target.send_with_external_mdl(packet, buffer, 700, None, 0, 0, WAIT) == 0
        ring = target.ring_bytes(channel)
        write, read = struct.unpack_from("<II", ring)
        start = read
        assert write == (start + 720 + 8) % 4096
        trailer = bytes(ring[4096:] * 2)[(start + 720) % 4096 :][:8]
        assert struct.unpack("<Q", trailer)[0] == start << 32
        raw = target.host_take_packet(channel)
        assert raw is not None and raw[16] == round_
        target.host_complete(channel, decode(raw).txid, 0, b"")
        assert len(target.completions()) == 1


def test_disable_completes_each_outstanding_packet_once(target: NativeTarget) -> None:
    channel = opened(target, 4096)
    taken, in_ring, queued, idle = (packet_of(target, channel) for _ in range(4))
    for packet, size in ((taken, 64), (in_ring, 3000), (queued, 3000)):
        assert target.send_with_external_mdl(packet, bytearray(size), size, None, 0, 0, WAIT) == 0
        if packet == taken:
            assert target.host_take_packet(channel) is not None
    target.disable_channel(channel)
    calls = target.completions()
    assert sorted(p for p, _, _ in calls) == sorted([taken, in_ring, queued])
    assert {s for _, s, _ in calls} == {STATUS_CANCELLED}
    assert target.host_take_packet(channel) is None
    status = target.send_with_external_mdl(idle, None, 0, None, 0, 0, WAIT)
    assert status == STATUS_DEVICE_REMOVED
    target.disable_channel(channel)
    assert target.completions() == []


def test_contract_violations_are_refused_without_change(target: NativeTarget) -> None:
    channel = target.create_channel(8192)
    packet = packet_of(target, channel)
    assert target.send_with_external_mdl(packet, bytearray(b"q"), 1, None, 0, 0, WAIT) == 0
    again = target.send_with_external_mdl(packet, bytearray(b"r"), 1, None, 0, 0, WAIT)
    assert again == STATUS_INVALID_DEVICE_STATE
    target.free_packet(packet)  # outstanding: ignored
    target.open_channel(channel)
    raw = target.host_take_packet(channel)
    assert raw is not None and raw[16:17] == b"q"
    assert target.host_take_packet(channel) is None
    target.host_complete(channel, decode(raw).txid, 0, b"")
    assert target.completions() == [(packet, 0, b"")]
    target.free_packet(packet)
    freed = target.send_with_external_mdl(packet, None, 0, None, 0, 0, WAIT)
    assert freed == STATUS_INVALID_DEVICE_STATE


def test_mdl_layout_in_ctypes_memory() -> None:
    import ctypes

    address, keep = build_mdl_chain([(0x10, 0x2000, (5, 6, 7)), (0, 0x10, (9,))])
    assert len(keep) == 2
    header = ctypes.string_at(address, 0x30 + 3 * 8)
    next_, size, _flags = struct.unpack_from("<QhH", header)
    assert size == 0x30 + 3 * 8
    assert struct.unpack_from("<II", header, 0x28) == (0x2000, 0x10)
    assert struct.unpack_from("<3Q", header, 0x30) == (5, 6, 7)
    second = ctypes.string_at(next_, 0x38)
    assert struct.unpack_from("<Q", second)[0] == 0
    assert struct.unpack_from("<IIQ", second, 0x28) == (0x10, 0, 9)


def test_library_path_says_how_to_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(build.ENV_VAR, raising=False)
    monkeypatch.setattr(build, "TARGET_DIR", tmp_path)
    monkeypatch.setattr(build, "CRATE_DIR", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"build\.py"):
        build.library_path()
    monkeypatch.setenv(build.ENV_VAR, str(tmp_path / "nope.so"))
    with pytest.raises(FileNotFoundError, match=build.ENV_VAR):
        build.library_path()


def test_the_conformance_suite_passes_on_the_rust_core(library: Path) -> None:
    pytest.importorskip("statemachine")
    from vmbspec.conformance.runner import run_conformance

    report = run_conformance("rust", examples=40, seed=1234)
    assert report.passed, [f.as_json() for f in report.failures]


def test_library_path_finds_the_newest_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.machinery
    import os

    monkeypatch.delenv(build.ENV_VAR, raising=False)
    monkeypatch.setattr(build, "TARGET_DIR", tmp_path / "target")
    monkeypatch.setattr(build, "CRATE_DIR", tmp_path)
    release = tmp_path / "target" / "release" / build.LIBRARY_NAME
    release.parent.mkdir(parents=True)
    release.write_bytes(b"")
    os.utime(release, (1, 1))
    assert build.library_path() == release
    # What setuptools-rust (binding NoBinding, target adapters.rust.vmbcore) installs.
    packaged = tmp_path / f"vmbcore{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    packaged.write_bytes(b"")
    assert build.library_path() == packaged
