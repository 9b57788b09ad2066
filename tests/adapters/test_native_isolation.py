"""IsolatedTarget: a library that crashes or hangs becomes a TargetCrashed verdict naming the
input, and the next call runs on a fresh worker.

The misbehaving libraries are tiny C stubs built here with gcc against the Rust core's header
(so they export the same ABI): they accept everything and misbehave on one MdlOffset.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vmbspec.adapters.native import IsolatedTarget, TargetCrashed, TargetError
from vmbspec.adapters.native.errors import MAX_KEPT_CALLS

CRASH_OFFSET = 0x1234
HANG_OFFSET = 0x4321
ABORT_OFFSET = 0xABCD
WAIT = 0x1

STUB = r"""
#include <stdlib.h>
#include <string.h>
#include "vmbcore.h"

/* Distinct handles, as a correct library gives (the adapter refuses a live one twice). */
static char objects[4096];
static unsigned next_object;

static void *new_object(void) { return &objects[next_object++ % sizeof objects]; }

VMBPACKET VmbPacketAllocate(VMBCHANNEL Channel) { (void)Channel; return new_object(); }
void VmbPacketFree(VMBPACKET Packet) { (void)Packet; }
void VmbPacketSetCompletionRoutine(VMBPACKET Packet, PFN_VMB_PACKET_COMPLETION_ROUTINE Routine)
{ (void)Packet; (void)Routine; }

NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, void *Buffer, uint32_t BufferLength,
                                      MDL *ExternalDataMdl, uint32_t MdlOffset,
                                      uint32_t MdlLength, uint32_t Flags)
{
    (void)PacketObject; (void)Buffer; (void)BufferLength; (void)ExternalDataMdl;
    (void)MdlLength; (void)Flags;
#ifdef CRASH
    if (MdlOffset == 0x1234) { volatile int *volatile p = NULL; *p = 1; }
    if (MdlOffset == 0xABCD) { abort(); }
#endif
#ifdef HANG
    if (MdlOffset == 0x4321) { volatile int spin = 1; while (spin) { } }
#endif
    return STATUS_SUCCESS;
}

NTSTATUS vmbcore_channel_create(uint32_t size, VMBCHANNEL *out)
{ (void)size; *out = new_object(); return STATUS_SUCCESS; }
NTSTATUS vmbcore_channel_open(VMBCHANNEL c) { (void)c; return STATUS_SUCCESS; }
NTSTATUS vmbcore_channel_disable(VMBCHANNEL c) { (void)c; return STATUS_SUCCESS; }
void vmbcore_channel_destroy(VMBCHANNEL c) { (void)c; }
NTSTATUS vmbcore_host_take_packet(VMBCHANNEL c, uint8_t *out, uint32_t cap, uint32_t *len)
{ (void)c; (void)out; (void)cap; *len = 0; return STATUS_SUCCESS; }
NTSTATUS vmbcore_host_complete(VMBCHANNEL c, uint64_t t, NTSTATUS s, const uint8_t *d, uint32_t n)
{ (void)c; (void)t; (void)s; (void)d; (void)n; return STATUS_SUCCESS; }
NTSTATUS vmbcore_channel_ring_bytes(VMBCHANNEL c, uint8_t *out, uint32_t cap, uint32_t *len)
{ (void)c; if (cap < 4) { *len = 4; return STATUS_BUFFER_TOO_SMALL; }
  memset(out, 0, 4); *len = 4; return STATUS_SUCCESS; }
"""


def _build_stub(compile_c: Callable[..., Path], tmp: Path, name: str, define: str) -> Path:
    return compile_c(STUB, tmp / f"lib{name}.so", defines=[define], std="c11")


@pytest.fixture(scope="module")
def crashing_library(
    tmp_path_factory: pytest.TempPathFactory, compile_c: Callable[..., Path]
) -> Path:
    return _build_stub(compile_c, tmp_path_factory.mktemp("crash"), "crashstub", "CRASH")


@pytest.fixture(scope="module")
def hanging_library(
    tmp_path_factory: pytest.TempPathFactory, compile_c: Callable[..., Path]
) -> Path:
    return _build_stub(compile_c, tmp_path_factory.mktemp("hang"), "hangstub", "HANG")


def _send(target: IsolatedTarget, offset: int) -> int:
    channel = target.create_channel(8192)
    packet = target.allocate_packet(channel)
    assert packet is not None
    return target.send_with_external_mdl(
        packet, bytearray(b"abc"), 3, ((0, 0x10000, tuple(range(16))),), offset, 8, WAIT
    )


def test_a_segfault_is_reported_as_a_crash_with_the_calls(crashing_library: Path) -> None:
    with IsolatedTarget(crashing_library, timeout=10) as target:
        assert _send(target, 0) == 0
        with pytest.raises(TargetCrashed) as caught:
            _send(target, CRASH_OFFSET)
        crashed = caught.value
        assert crashed.kind == "crash"
        assert "SIGSEGV" in crashed.detail
        method, args = crashed.calls[-1]
        assert method == "send_with_external_mdl"
        assert args[4] == CRASH_OFFSET
        assert args[1] == b"abc"  # the buffer crosses as a copy of its bytes
        # Every call since the worker started, in order.
        assert [m for m, _ in crashed.calls] == [
            "create_channel",
            "allocate_packet",
            "send_with_external_mdl",
            "create_channel",
            "allocate_packet",
            "send_with_external_mdl",
        ]
        assert "crash" in str(crashed) and "0x1234" in str(crashed)
        # The next call runs on a fresh worker.
        assert _send(target, 0) == 0
        assert target.restarts == 1
        assert target.ring_bytes(target.create_channel(4096)) == bytes(4)


def test_a_crash_report_keeps_the_last_calls_and_counts_them_all(crashing_library: Path) -> None:
    with IsolatedTarget(crashing_library, timeout=10) as target:
        calls = MAX_KEPT_CALLS + 5
        for _ in range(calls - 3):
            target.completions()
        with pytest.raises(TargetCrashed) as caught:
            _send(target, CRASH_OFFSET)  # create, allocate, send
        crashed = caught.value
        assert len(crashed.calls) == MAX_KEPT_CALLS
        assert crashed.total == calls
        assert f"after {calls} call(s)" in str(crashed)
        assert crashed.calls[-1][0] == "send_with_external_mdl"


def test_an_abort_is_reported_as_a_crash(crashing_library: Path) -> None:
    with IsolatedTarget(crashing_library, timeout=10) as target:
        with pytest.raises(TargetCrashed) as caught:
            _send(target, ABORT_OFFSET)
        assert caught.value.kind == "crash"
        assert "SIGABRT" in caught.value.detail
        assert target.completions() == []


def test_a_hang_is_reported_after_the_timeout(hanging_library: Path) -> None:
    with IsolatedTarget(hanging_library, timeout=1.0) as target:
        target.create_channel(4096)
        started = time.monotonic()
        with pytest.raises(TargetCrashed) as caught:
            _send(target, HANG_OFFSET)
        elapsed = time.monotonic() - started
        assert caught.value.kind == "hang"
        assert 0.9 <= elapsed < 10
        assert caught.value.calls[-1][1][4] == HANG_OFFSET
        assert len(caught.value.calls) == 4
        assert _send(target, 0) == 0
        assert target.restarts == 1


def test_an_unloadable_library_is_a_target_error(tmp_path: Path) -> None:
    with IsolatedTarget(tmp_path / "missing.so", timeout=5) as target, pytest.raises(TargetError):
        target.create_channel(4096)


def test_the_rust_core_runs_isolated() -> None:
    from vmbspec.adapters.rust.build import build_library

    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    with IsolatedTarget(build_library(), timeout=10) as target:
        assert target.name.startswith("native:")
        assert target.capabilities == frozenset({"ring-bytes", "robust-contract-violations"})
        channel = target.create_channel(8192)
        target.open_channel(channel)
        packet = target.allocate_packet(channel)
        assert packet is not None
        buffer = bytearray(b"payload!")
        status = target.send_with_external_mdl(
            packet, buffer, 8, ((0x100, 0x2000, (7, 8, 9)),), 0, 0, WAIT
        )
        assert status == 0
        buffer[:] = bytes(8)  # changed after the call: the packet has the bytes at the call
        taken = target.host_take_packet(channel)
        assert taken is not None and taken[56:64] == b"payload!"
        transaction_id = int.from_bytes(taken[8:16], "little")
        target.host_complete(channel, transaction_id, 0, b"\x01")
        assert target.completions() == [(packet, 0, b"\x01")]
        # Errors raised in the worker are raised here, and the worker survives them.
        with pytest.raises(TargetError):
            target.create_channel(4095)
        assert target.host_take_packet(channel) is None
        assert target.restarts == 0
