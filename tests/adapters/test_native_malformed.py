"""What a native library returns is not trusted: a library that lies about a length, a handle,
a count or a completion gets a clean ``crash`` verdict naming the function, in process and
isolated, and the adapter never reads or allocates on the strength of the lie.

The liar is a shim built here with gcc: it dlopens the real Rust core and forwards every
function of the ABI to it, then overwrites one result with a value set at run time. The values
live in a small control file (its path is compiled into the shim) that this process maps and
writes, so the same lie reaches the shim loaded in this process and in a worker process.

The Hypothesis campaign at the end draws the lie (which result, which value) and runs one short
scenario per example; ``bench/malformed_native.py`` runs the same generator 10,000 times.
"""

from __future__ import annotations

import json
import mmap
import shutil
import struct
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vmbspec.adapters import native
from vmbspec.adapters.native import (
    ImpossibleResult,
    IsolatedTarget,
    NativeTarget,
    TargetCrashed,
    TargetError,
)
from vmbspec.adapters.rust.build import CRATE_DIR
from vmbspec.conformance import run_conformance
from vmbspec.conformance.cases import load_cases
from vmbspec.conformance.targets import resolve_target

WAIT = 0x1
STATUS_SUCCESS = 0
STATUS_BUFFER_TOO_SMALL = 0xC000_0023
#: Handle lie meaning "the handle this function returned last time".
PREVIOUS = 0xFFFF_FFFF_FFFF_FFFF

#: The knobs of the control file: which result of which function the shim overwrites.
KNOBS = (
    "create_status",
    "create_handle",
    "alloc_handle",
    "send_status",
    "take_status",
    "take_length",
    "ring_status",
    "ring_length",
    "open_status",
    "disable_status",
    "complete_status",
    "completion_length",
    "completion_repeat",
    "completion_status",
)
KNOB = {name: index for index, name in enumerate(KNOBS)}
CONTROL_SIZE = 16 * len(KNOBS)

LIAR = r"""
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "vmbcore.h"

enum { CREATE_STATUS, CREATE_HANDLE, ALLOC_HANDLE, SEND_STATUS, TAKE_STATUS, TAKE_LENGTH,
       RING_STATUS, RING_LENGTH, OPEN_STATUS, DISABLE_STATUS, COMPLETE_STATUS,
       COMPLETION_LENGTH, COMPLETION_REPEAT, COMPLETION_STATUS, KNOB_COUNT };
#define PREVIOUS 0xFFFFFFFFFFFFFFFFull

struct knob { uint64_t set, value; };
static volatile struct knob *knobs;
static void *core;

static void *real(const char *name)
{
    if (core == NULL) {
        core = dlopen(CORE_PATH, RTLD_NOW | RTLD_LOCAL);
        if (core == NULL) { fprintf(stderr, "liar: %s\n", dlerror()); abort(); }
    }
    void *function = dlsym(core, name);
    if (function == NULL) { fprintf(stderr, "liar: %s\n", dlerror()); abort(); }
    return function;
}
#define REAL(name) ((__typeof__(&name))real(#name))

/* 1 and *value set when the knob is set in the control file. */
static int lie(int knob, uint64_t *value)
{
    if (knobs == NULL) {
        int fd = open(CONTROL_PATH, O_RDWR);
        if (fd < 0) { perror("liar: " CONTROL_PATH); abort(); }
        void *map = mmap(NULL, 16 * KNOB_COUNT, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED) { perror("liar: mmap"); abort(); }
        close(fd);
        knobs = map;
    }
    if (!knobs[knob].set) return 0;
    *value = knobs[knob].value;
    return 1;
}

static NTSTATUS status_lie(int knob, NTSTATUS status)
{
    uint64_t value;
    return lie(knob, &value) ? (NTSTATUS)value : status;
}

static void *handle_lie(int knob, void *handle, void **previous)
{
    uint64_t value;
    void *result = handle;
    if (lie(knob, &value)) result = value == PREVIOUS ? *previous : (void *)(uintptr_t)value;
    *previous = handle;
    return result;
}

/* The routine each packet registered; the core calls the trampoline instead. */
static struct { VMBPACKET packet; PFN_VMB_PACKET_COMPLETION_ROUTINE routine; } routines[1024];
static unsigned char spare[1 << 16];

static void trampoline(VMBPACKET packet, NTSTATUS status, void *buffer, uint32_t length)
{
    PFN_VMB_PACKET_COMPLETION_ROUTINE routine = NULL;
    for (unsigned i = 0; i < 1024; i++)
        if (routines[i].packet == packet) routine = routines[i].routine;
    if (routine == NULL) return;
    uint64_t value, repeat = 0;
    if (lie(COMPLETION_LENGTH, &value)) { buffer = spare; length = (uint32_t)value; }
    status = status_lie(COMPLETION_STATUS, status);
    lie(COMPLETION_REPEAT, &repeat);
    for (uint64_t i = 0; i <= repeat; i++) routine(packet, status, buffer, length);
}

VMBPACKET VmbPacketAllocate(VMBCHANNEL Channel)
{
    static void *previous;
    return handle_lie(ALLOC_HANDLE, REAL(VmbPacketAllocate)(Channel), &previous);
}
void VmbPacketFree(VMBPACKET Packet) { REAL(VmbPacketFree)(Packet); }
void VmbPacketSetCompletionRoutine(VMBPACKET Packet, PFN_VMB_PACKET_COMPLETION_ROUTINE Routine)
{
    unsigned slot = (unsigned)(((uintptr_t)Packet >> 4) % 1024);
    for (unsigned i = 0; i < 1024; i++)
        if (routines[i].packet == Packet || routines[i].packet == NULL) { slot = i; break; }
    routines[slot].packet = Packet;
    routines[slot].routine = Routine;
    REAL(VmbPacketSetCompletionRoutine)(Packet, Routine ? trampoline : NULL);
}
NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, void *Buffer, uint32_t BufferLength,
                                      MDL *ExternalDataMdl, uint32_t MdlOffset,
                                      uint32_t MdlLength, uint32_t Flags)
{
    return status_lie(SEND_STATUS, REAL(VmbPacketSendWithExternalMdl)(
        PacketObject, Buffer, BufferLength, ExternalDataMdl, MdlOffset, MdlLength, Flags));
}
NTSTATUS vmbcore_channel_create(uint32_t size, VMBCHANNEL *out)
{
    static void *previous;
    NTSTATUS status = REAL(vmbcore_channel_create)(size, out);
    if (status == STATUS_SUCCESS) *out = handle_lie(CREATE_HANDLE, *out, &previous);
    return status_lie(CREATE_STATUS, status);
}
NTSTATUS vmbcore_channel_open(VMBCHANNEL c)
{ return status_lie(OPEN_STATUS, REAL(vmbcore_channel_open)(c)); }
NTSTATUS vmbcore_channel_disable(VMBCHANNEL c)
{ return status_lie(DISABLE_STATUS, REAL(vmbcore_channel_disable)(c)); }
void vmbcore_channel_destroy(VMBCHANNEL c) { REAL(vmbcore_channel_destroy)(c); }
NTSTATUS vmbcore_host_take_packet(VMBCHANNEL c, uint8_t *out, uint32_t cap, uint32_t *len)
{
    uint64_t value;
    NTSTATUS status = REAL(vmbcore_host_take_packet)(c, out, cap, len);
    if (lie(TAKE_LENGTH, &value)) *len = (uint32_t)value;
    return status_lie(TAKE_STATUS, status);
}
NTSTATUS vmbcore_host_complete(VMBCHANNEL c, uint64_t t, NTSTATUS s, const uint8_t *d, uint32_t n)
{ return status_lie(COMPLETE_STATUS, REAL(vmbcore_host_complete)(c, t, s, d, n)); }
NTSTATUS vmbcore_channel_ring_bytes(VMBCHANNEL c, uint8_t *out, uint32_t cap, uint32_t *len)
{
    uint64_t value;
    NTSTATUS status = REAL(vmbcore_channel_ring_bytes)(c, out, cap, len);
    if (lie(RING_LENGTH, &value)) *len = (uint32_t)value;
    return status_lie(RING_STATUS, status);
}
"""


class Control:
    """The shim's control file, mapped here: :meth:`set` makes a lie, :meth:`clear` ends all."""

    def __init__(self, path: Path) -> None:
        path.write_bytes(bytes(CONTROL_SIZE))
        self.path = path
        with path.open("r+b") as file:
            self._map = mmap.mmap(file.fileno(), CONTROL_SIZE)

    def set(self, knob: str, value: int) -> None:
        struct.pack_into("<QQ", self._map, 16 * KNOB[knob], 1, value)

    def clear(self) -> None:
        self._map[:] = bytes(CONTROL_SIZE)


@dataclass(frozen=True)
class Liar:
    library: Path
    control: Control


def build_liar(folder: Path, core: Path) -> Liar:
    """Compiles the shim in ``folder`` over the Rust core at ``core``. Self-contained (its own
    preamble and gcc command rather than conftest's shim builder): bench/malformed_native.py
    imports it outside pytest."""
    control = Control(folder / "liar.control")
    source = folder / "liar.c"
    source.write_text(LIAR)
    library = folder / "libliar.so"
    subprocess.run(
        [
            "gcc", "-std=gnu11", "-O1", "-Wall", "-Werror", "-shared", "-fPIC",
            f"-DCORE_PATH={json.dumps(str(core.resolve()))}",
            f"-DCONTROL_PATH={json.dumps(str(control.path.resolve()))}",
            f"-I{CRATE_DIR / 'include'}",
            str(source), "-o", str(library), "-ldl",
        ],
        check=True,
        capture_output=True,
    )
    return Liar(library, control)


@pytest.fixture(scope="module")
def liar(tmp_path_factory: pytest.TempPathFactory, rust_core: Path) -> Iterator[Liar]:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    made = build_liar(tmp_path_factory.mktemp("liar"), rust_core)
    yield made
    made.control.clear()


@pytest.fixture
def control(liar: Liar) -> Iterator[Control]:
    liar.control.clear()
    yield liar.control
    liar.control.clear()


Factory = Callable[[], NativeTarget | IsolatedTarget]


@pytest.fixture(params=["in-process", "isolated"])
def make(request: pytest.FixtureRequest, liar: Liar) -> Iterator[Factory]:
    """Targets on the liar, in this process or in its shared worker."""
    made: list[NativeTarget | IsolatedTarget] = []

    def factory() -> NativeTarget | IsolatedTarget:
        target: NativeTarget | IsolatedTarget
        if request.param == "in-process":
            target = NativeTarget(liar.library)
        else:
            target = IsolatedTarget(liar.library, timeout=10)
        made.append(target)
        return target

    yield factory
    for target in made:
        target.close()


# ---- one scenario, the unit of the campaign --------------------------------------------------

CHAIN = ((0x10, 0x2000, (7, 8, 9)),)
REPLY = b"reply"


def scenario(target: NativeTarget | IsolatedTarget) -> None:
    """Every function of the ABI, once or twice: create, open, allocate, send, ring, take,
    complete, collect, then a second send cancelled by disable."""
    channel = target.create_channel(8192)
    target.open_channel(channel)
    packet = target.allocate_packet(channel)
    if packet is None:
        return
    target.send_with_external_mdl(packet, bytearray(b"payload!"), 8, CHAIN, 0, 0x10, WAIT)
    target.ring_bytes(channel)
    raw = target.host_take_packet(channel)
    if raw is not None and len(raw) >= 16:
        transaction_id = int.from_bytes(raw[8:16], "little")
        target.host_complete(channel, transaction_id, 0, REPLY)
    target.completions()
    second = target.allocate_packet(channel)
    if second is not None:
        target.send_with_external_mdl(second, None, 0, None, 0, 0, WAIT)
    target.disable_channel(channel)
    target.completions()


def outcome(run: Callable[[], None]) -> str:
    """``"ok"``, ``"crash"`` (a crash-class verdict naming a function of the ABI) or
    ``"target-error"`` (a harness call failed with a status); anything else propagates."""
    try:
        run()
    except TargetCrashed as crashed:
        assert crashed.kind == "crash", crashed
        if isinstance(crashed, ImpossibleResult):
            assert any(name in crashed.detail for name in ABI_FUNCTIONS), crashed.detail
        return "crash"
    except TargetError:
        return "target-error"
    return "ok"


ABI_FUNCTIONS = (
    "VmbPacketAllocate",
    "VmbPacketSendWithExternalMdl",
    "vmbcore_channel_create",
    "vmbcore_channel_open",
    "vmbcore_channel_disable",
    "vmbcore_host_take_packet",
    "vmbcore_host_complete",
    "vmbcore_channel_ring_bytes",
)


def _impossible(target: NativeTarget | IsolatedTarget, run: Callable[[], object]) -> str:
    with pytest.raises(ImpossibleResult) as caught:
        run()
    assert caught.value.kind == "crash"
    if isinstance(target, IsolatedTarget):
        assert caught.value.calls, "an isolated verdict lists the calls"
    return caught.value.detail


# ---- each lie, one at a time ----------------------------------------------------------------


def test_the_honest_scenario_works(make: Factory, control: Control) -> None:
    target = make()
    assert outcome(lambda: scenario(target)) == "ok"


@pytest.mark.parametrize("extra", [1, 0x4000, 0xFFFE_FFFF])
def test_a_packet_longer_than_the_capacity_given_is_a_crash(
    make: Factory, control: Control, extra: int
) -> None:
    target = make()
    channel = target.create_channel(0x10000)
    target.open_channel(channel)
    control.set("take_length", 0x10000 + extra)
    detail = _impossible(target, lambda: target.host_take_packet(channel))
    assert "vmbcore_host_take_packet" in detail and "impossible length" in detail


def test_a_ring_copy_longer_than_the_capacity_given_is_a_crash(
    make: Factory, control: Control
) -> None:
    target = make()
    channel = target.create_channel(4096)
    control.set("ring_length", 0x14000)  # 16 KiB past the adapter's first 64 KiB buffer
    detail = _impossible(target, lambda: target.ring_bytes(channel))
    assert "vmbcore_channel_ring_bytes" in detail and "0x14000" in detail


def test_a_length_past_the_channels_ring_is_a_crash(make: Factory, control: Control) -> None:
    target = make()
    channel = target.create_channel(4096)
    target.open_channel(channel)
    control.set("take_length", 4097)  # within the adapter's buffer, not within the ring
    detail = _impossible(target, lambda: target.host_take_packet(channel))
    assert "vmbcore_host_take_packet" in detail


@pytest.mark.parametrize("needed", [0x1000_0000, 0xFFFF_FFFF])
def test_asking_for_an_impossible_buffer_is_a_crash_without_allocating(
    make: Factory, control: Control, needed: int
) -> None:
    target = make()
    channel = target.create_channel(8192)
    control.set("ring_status", STATUS_BUFFER_TOO_SMALL)
    control.set("ring_length", needed)
    detail = _impossible(target, lambda: target.ring_bytes(channel))
    assert "vmbcore_channel_ring_bytes asked for" in detail
    assert f"{needed:#x}" in detail
    if isinstance(target, NativeTarget):
        assert len(target._scratch) <= 0x10000  # nothing was allocated for the lie


def test_a_ring_larger_than_the_abi_allows_gets_no_larger_buffer(
    liar: Liar, control: Control
) -> None:
    """A library that accepted a ring over 64 MiB (the Rust core does not: faked here) still
    gets at most the ABI's largest ring copy."""
    target = NativeTarget(liar.library)
    try:
        channel = target.create_channel(4096)
        target._rings[channel] = 0x8000_0000
        control.set("ring_status", STATUS_BUFFER_TOO_SMALL)
        control.set("ring_length", native.MAX_RING_BYTES + 1)
        detail = _impossible(target, lambda: target.ring_bytes(channel))
        assert f"asked for {native.MAX_RING_BYTES + 1:#x} bytes" in detail
        assert len(target._scratch) <= 0x10000
    finally:
        target.close()


def test_too_small_for_what_it_was_given_is_a_crash(make: Factory, control: Control) -> None:
    target = make()
    channel = target.create_channel(8192)
    control.set("take_status", STATUS_BUFFER_TOO_SMALL)
    control.set("take_length", 16)
    detail = _impossible(target, lambda: target.host_take_packet(channel))
    assert "STATUS_BUFFER_TOO_SMALL" in detail


def test_a_null_channel_on_success_is_a_crash(make: Factory, control: Control) -> None:
    target = make()
    control.set("create_handle", 0)
    detail = _impossible(target, lambda: target.create_channel(4096))
    assert "vmbcore_channel_create" in detail and "NULL" in detail


def test_a_channel_handed_out_twice_is_a_crash(make: Factory, control: Control) -> None:
    target = make()
    target.create_channel(4096)
    control.set("create_handle", PREVIOUS)
    detail = _impossible(target, lambda: target.create_channel(4096))
    assert "already a live channel" in detail


def test_a_live_packet_handed_out_twice_is_a_crash(make: Factory, control: Control) -> None:
    target = make()
    channel = target.create_channel(4096)
    assert target.allocate_packet(channel) is not None
    control.set("alloc_handle", PREVIOUS)
    detail = _impossible(target, lambda: target.allocate_packet(channel))
    assert "VmbPacketAllocate" in detail and "already allocated" in detail


def test_a_freed_packet_handed_out_again_is_fine(make: Factory, control: Control) -> None:
    target = make()
    channel = target.create_channel(4096)
    first = target.allocate_packet(channel)
    assert first is not None
    target.free_packet(first)
    control.set("alloc_handle", PREVIOUS)
    assert target.allocate_packet(channel) == first


@pytest.mark.parametrize("length", [len(REPLY) + 1, 0x10000, 0xFFFF_FFFF])
def test_a_completion_longer_than_the_host_sent_is_a_crash(
    make: Factory, control: Control, length: int
) -> None:
    target = make()
    channel = target.create_channel(8192)
    target.open_channel(channel)
    packet = target.allocate_packet(channel)
    assert packet is not None
    assert target.send_with_external_mdl(packet, None, 0, CHAIN, 0, 0x10, WAIT) == 0
    raw = target.host_take_packet(channel)
    assert raw is not None
    control.set("completion_length", length)
    transaction_id = int.from_bytes(raw[8:16], "little")
    detail = _impossible(target, lambda: target.host_complete(channel, transaction_id, 0, REPLY))
    assert "vmbcore_host_complete called the completion routine" in detail
    assert f"Length {length:#x}" in detail


def test_a_routine_called_without_end_is_a_crash(control: Control, liar: Liar) -> None:
    target = NativeTarget(liar.library)  # in process: 65,537 calls through a pipe are slow
    try:
        channel = target.create_channel(8192)
        target.open_channel(channel)
        packet = target.allocate_packet(channel)
        assert packet is not None
        assert target.send_with_external_mdl(packet, None, 0, None, 0, 0, WAIT) == 0
        control.set("completion_repeat", native.MAX_PENDING_COMPLETIONS)
        detail = _impossible(target, lambda: target.disable_channel(channel))
        assert "vmbcore_channel_disable" in detail and "impossible count" in detail
        assert len(target.completions()) == native.MAX_PENDING_COMPLETIONS
    finally:
        target.close()


def test_completions_past_the_pending_byte_bound_are_a_crash(
    make: Factory, control: Control
) -> None:
    target = make()
    channel = target.create_channel(0x40000)
    target.open_channel(channel)
    packet = target.allocate_packet(channel)
    assert packet is not None
    assert target.send_with_external_mdl(packet, None, 0, None, 0, 0, WAIT) == 0
    raw = target.host_take_packet(channel)
    assert raw is not None
    # 0x411 calls of 64 KiB each: just past the bound of 64 MiB + 4 KiB.
    control.set("completion_length", 0x10000)
    control.set("completion_repeat", 0x410)
    transaction_id = int.from_bytes(raw[8:16], "little")
    detail = _impossible(
        target, lambda: target.host_complete(channel, transaction_id, 0, bytes(0x10000))
    )
    assert "vmbcore_host_complete" in detail and "bytes in all" in detail


def test_a_failing_status_is_a_target_error_not_a_crash(make: Factory, control: Control) -> None:
    target = make()
    control.set("open_status", 0xC000_0001)
    channel = target.create_channel(4096)
    with pytest.raises(TargetError, match="vmbcore_channel_open failed with NTSTATUS 0xc0000001"):
        target.open_channel(channel)


def test_an_isolated_lie_restarts_the_worker(liar: Liar, control: Control) -> None:
    with IsolatedTarget(liar.library, timeout=10) as target:
        channel = target.create_channel(4096)
        control.set("ring_length", 0x20000)
        with pytest.raises(ImpossibleResult) as caught:
            target.ring_bytes(channel)
        assert [method for method, _ in caught.value.calls] == ["create_channel", "ring_bytes"]
        assert "impossible length" in str(caught.value)
        assert target.restarts == 1
        control.clear()
        assert outcome(lambda: scenario(target)) == "ok"


@pytest.mark.parametrize("isolate", [False, True])
def test_the_suite_blames_the_function_not_the_ring_layout(
    liar: Liar, control: Control, isolate: bool
) -> None:
    """Through the whole catalog: a ring copy longer than its buffer is a crash verdict naming
    vmbcore_channel_ring_bytes in every case, never a failing ring-layout requirement."""
    _name, factory = resolve_target(f"native:{liar.library}", {"isolate": isolate})
    control.set("ring_length", 0x14000)
    report = run_conformance(factory, examples=0, stateful=False)
    assert report.cases_run == len(load_cases())
    assert len(report.failures) == report.cases_run
    for failure in report.failures:
        assert failure.kind == "crash", failure.message
        assert "vmbcore_channel_ring_bytes" in failure.message
        assert "0x14000" in failure.message and "impossible length" in failure.message


# ---- the campaign ---------------------------------------------------------------------------

U32 = 0xFFFF_FFFF
LENGTHS = st.one_of(
    st.sampled_from([0, 1, 8, 16, 0xFFF, 0x1000, 0x2000, 0x2001, 0x3000, 0x3001, 0x10000,
                     0x10001, 0x4000_0000, U32 - 1, U32]),
    st.integers(0, U32),
)
STATUSES = st.one_of(
    st.sampled_from([STATUS_SUCCESS, STATUS_BUFFER_TOO_SMALL, 0xC000_000D, 0xC000_0001,
                     0x0000_0103, 0x8000_0005, U32]),
    st.integers(0, U32),
)
HANDLES = st.one_of(st.sampled_from([0, 1, PREVIOUS, 0xFFFF_FFFF_FFFF_FFF0]),
                    st.integers(0, 2**64 - 1))
#: knob -> the values drawn for it (the repeat count stays small: each is a callback).
VALUES = {
    "create_status": STATUSES,
    "create_handle": HANDLES,
    "alloc_handle": HANDLES,
    "send_status": STATUSES,
    "take_status": STATUSES,
    "take_length": LENGTHS,
    "ring_status": STATUSES,
    "ring_length": LENGTHS,
    "open_status": STATUSES,
    "disable_status": STATUSES,
    "complete_status": STATUSES,
    "completion_length": LENGTHS,
    "completion_repeat": st.integers(0, 3),
    "completion_status": STATUSES,
}
LIE = st.sampled_from(KNOBS).flatmap(lambda knob: st.tuples(st.just(knob), VALUES[knob]))
#: One to three lies at once.
LIES = st.lists(LIE, min_size=1, max_size=3, unique_by=lambda lie: lie[0])


def run_lies(
    control: Control, make_target: Callable[[], NativeTarget | IsolatedTarget],
    lies: list[tuple[str, int]],
) -> str:
    """The scenario on a fresh target with ``lies`` set; its outcome."""
    control.clear()
    for knob, value in lies:
        control.set(knob, value)
    target = make_target()
    try:
        return outcome(lambda: scenario(target))
    finally:
        control.clear()
        target.close()


def _must_crash(lies: list[tuple[str, int]]) -> bool:
    """Lies no correct library tells, whatever else happens: a NULL channel on success."""
    told = dict(lies)
    return told.get("create_handle") == 0 and told.get("create_status", 0) == 0


CAMPAIGN = settings(
    max_examples=300, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@CAMPAIGN
@given(lies=LIES)
def test_campaign_in_process(liar: Liar, lies: list[tuple[str, int]]) -> None:
    result = run_lies(liar.control, lambda: NativeTarget(liar.library), lies)
    event(result)
    assert result in ("ok", "crash", "target-error")
    if _must_crash(lies):
        assert result == "crash"


@settings(CAMPAIGN, max_examples=150)
@given(lies=LIES)
def test_campaign_isolated(liar: Liar, lies: list[tuple[str, int]]) -> None:
    result = run_lies(liar.control, lambda: IsolatedTarget(liar.library, timeout=10), lies)
    event(result)
    assert result in ("ok", "crash", "target-error")
    if _must_crash(lies):
        assert result == "crash"
