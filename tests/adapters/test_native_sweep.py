"""The sweep runner (``adapters/native/sweep.py`` over ``vmbsweep_run`` of the Rust core):

- on the Rust core its results equal the in-process native adapter's for the same calls
  (statuses, packet bytes, completion-routine calls), on a seeded sample of shapes around the
  page, chain and u32 bounds, with guard pages on and no fault;
- a library that reads one PFN past an MDL's array, or one byte past the buffer, is caught by
  the guard page: a ``crash`` naming the shape, the MDL (or the buffer) and the side, and the
  shapes after it still run;
- a library that lies about a packet's length is reported for that shape, not followed;
- a library that hangs on one shape is a ``hang`` naming it; one that dies while it is
  loaded is an error that blames no shape.

The misbehaving libraries are shims built here with gcc (as in test_native_suite.py): they
forward every function to the real Rust core and misbehave only when MdlOffset is
``TRIGGER``, which no other shape here uses.
"""

from __future__ import annotations

import ctypes
import os
import random
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmbspec.adapters.native import LibraryError, NativeTarget
from vmbspec.adapters.native import sweep as native_sweep
from vmbspec.adapters.native.sweep import Shape, ShapeFault, SweepFault, run_shapes, sweep_shapes
from vmbspec.adapters.rust.build import CRATE_DIR, library_path

RING = 0x1_0000
TRIGGER = 0x321
SEED = 20261130

#: Overrides VmbPacketSendWithExternalMdl and vmbcore_host_take_packet; the shim forwards
#: everything else to the core.
SHIM = r"""
#include <signal.h>

static int lie_next_take;

NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, void *Buffer, uint32_t BufferLength,
                                      MDL *ExternalDataMdl, uint32_t MdlOffset,
                                      uint32_t MdlLength, uint32_t Flags)
{
    if (MdlOffset == TRIGGER) {
#ifdef PFN_OVERREAD
        /* Reads one PFN past the array of the last MDL, as a prefetch would; emits nothing. */
        MDL *last = ExternalDataMdl;
        while (last != NULL && last->Next != NULL) last = last->Next;
        if (last != NULL) {
            uint64_t span = ((last->ByteOffset & 0xFFF) + (uint64_t)last->ByteCount + 0xFFF) >> 12;
            volatile uint64_t pfn = MmGetMdlPfnArray(last)[span];
            (void)pfn;
        }
#endif
#ifdef BUFFER_OVERREAD
        volatile uint8_t byte = ((const uint8_t *)Buffer)[BufferLength];
        (void)byte;
#endif
#ifdef LYING_LENGTH
        lie_next_take = 1;
#endif
#ifdef HANG
        volatile int spin = 1; while (spin) { }
#endif
#ifdef RAISE_SEGV
        raise(SIGSEGV); /* a signal, not a fault: no access to run again */
#endif
    }
    return REAL(VmbPacketSendWithExternalMdl)(PacketObject, Buffer, BufferLength,
                                              ExternalDataMdl, MdlOffset, MdlLength, Flags);
}

#ifdef CTOR_CRASH
__attribute__((constructor)) static void crash_on_load(void) { abort(); }
#endif

NTSTATUS vmbcore_host_take_packet(VMBCHANNEL c, uint8_t *out, uint32_t cap, uint32_t *len)
{
    NTSTATUS status = REAL(vmbcore_host_take_packet)(c, out, cap, len);
    if (lie_next_take) {
        lie_next_take = 0;
        *len = cap + 8; /* more than it was given */
        return STATUS_SUCCESS;
    }
    return status;
}
"""


@pytest.fixture(scope="module")
def core(rust_core: Path) -> str:
    return str(rust_core)


@pytest.fixture(scope="module")
def shims(build_shim: Callable[..., Path]) -> dict[str, str]:
    overrides = ["VmbPacketSendWithExternalMdl", "vmbcore_host_take_packet"]
    return {
        variant: str(build_shim(SHIM, variant, overrides=overrides, defines=[f"TRIGGER={TRIGGER}"]))
        for variant in ("PFN_OVERREAD", "BUFFER_OVERREAD", "LYING_LENGTH", "HANG", "CTOR_CRASH",
                        "RAISE_SEGV")
    }


def sample_shapes(count: int, seed: int = SEED) -> list[Shape]:
    """Seeded shapes around the bounds: ByteOffset in the boundary classes, ByteCount around
    page multiples (and the u32 end), MdlOffset/MdlLength around the chain's total and 0,
    flags over the documented three and one bit outside, NULL MDL and NULL buffer."""
    rng = random.Random(seed)
    offsets = (0, 1, 8, 0x7FF, 0xFF8, 0xFFF)
    shapes: list[Shape] = []
    for _ in range(count):
        chain = []
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            byte_offset = rng.choice(offsets)
            pages = rng.choice((0, 1, 2, 3))
            byte_count = max(0, pages * 0x1000 + rng.choice((-1, 0, 1, 0x10)))
            if rng.random() < 0.03:
                byte_count = rng.choice((0xFFFF_FFFF, 0xFFFF_F000))
            span = ((byte_offset & 0xFFF) + byte_count + 0xFFF) >> 12
            given = min(span, 4) + rng.choice((0, 0, 1))
            pfns = tuple(rng.randrange(1, 1 << 40) for _ in range(given))
            chain.append((byte_offset, byte_count, pfns))
        total = sum(bc for _, bc, _ in chain)
        bounds = (0, 1, total, max(total - 1, 0), total + 1, 0x1000, 0xFFFF_FFFF)
        mdl_offset = rng.choice(bounds) & 0xFFFF_FFFF
        mdl_length = rng.choice(bounds) & 0xFFFF_FFFF
        flags = rng.randrange(8) | (0x8 if rng.random() < 0.1 else 0)
        buffer = None if rng.random() < 0.2 else rng.randbytes(rng.choice((0, 1, 8, 13, 64)))
        buffer_length = len(buffer) if buffer is not None else rng.choice((0, 8))
        mdl = tuple(chain) if chain or rng.random() < 0.5 else None
        shapes.append((mdl, mdl_offset, mdl_length, flags, buffer, buffer_length))
    return shapes


def in_process(core: str, shapes: list[Shape]) -> Iterator[tuple[int, bytes | None, int]]:
    """The same calls through the in-process native adapter: a fresh channel and packet each."""
    target = NativeTarget(core, name="rust")
    try:
        for mdl, mdl_offset, mdl_length, flags, buffer, buffer_length in shapes:
            channel = target.create_channel(RING)
            target.open_channel(channel)
            packet = target.allocate_packet(channel)
            assert packet is not None
            status = target.send_with_external_mdl(
                packet, None if buffer is None else bytearray(buffer), buffer_length,
                mdl, mdl_offset, mdl_length, flags,
            )
            calls = len(target.completions())
            yield status, target.host_take_packet(channel), calls
            target.free_packet(packet)
    finally:
        target.close()


def test_results_equal_the_in_process_adapter_on_the_rust_core(core: str) -> None:
    shapes = sample_shapes(400)
    results = run_shapes(core, RING, shapes)
    expected = list(in_process(core, shapes))
    assert len(results) == len(shapes)
    for index, (got, want) in enumerate(zip(results, expected, strict=True)):
        assert got == want, (index, shapes[index])
    # The sample is not degenerate: accepted and rejected calls, packets of both types.
    statuses = {status for status, _, _ in results}
    assert 0 in statuses and 0xC000_000D in statuses
    types = {packet[0] for _, packet, _ in results if packet is not None}
    assert types == {6, 9}


def test_a_pfn_read_past_the_array_is_a_crash_naming_the_shape(shims: dict[str, str]) -> None:
    shapes = sample_shapes(30, seed=1)
    chain = ((0x8, 0x1FF8, (11, 12)), (0xFFF, 0x1001, (13, 14)))  # spans 2 and 2
    shapes.insert(17, (chain, TRIGGER, 0x10, 1, b"abcdefgh", 8))
    outcomes = sweep_shapes(shims["PFN_OVERREAD"], RING, shapes)
    assert len(outcomes) == len(shapes)
    faults = [o for o in outcomes if isinstance(o, ShapeFault)]
    assert [f.index for f in faults] == [17]
    fault = faults[0]
    assert fault.kind == "crash"
    assert fault.guard == ("mdl", 1, "after")
    assert "outside the MDLs and buffer" in fault.detail
    assert "after MDL 1's PFN array" in fault.detail
    # run_shapes stops there, with the results before it.
    with pytest.raises(SweepFault) as caught:
        run_shapes(shims["PFN_OVERREAD"], RING, shapes)
    assert caught.value.fault.index == 17
    assert caught.value.results == outcomes[:17]


def test_a_byte_read_past_the_buffer_is_a_crash_naming_the_shape(
    shims: dict[str, str],
) -> None:
    shapes = [
        (None, 0, 0, 1, b"x" * 13, 13),
        (None, TRIGGER, 0, 1, b"y" * 13, 13),
        (None, TRIGGER, 0, 1, b"z" * 64, 5),  # the guard follows BufferLength, not the bytes
        (None, 0, 0, 1, b"w" * 8, 8),
    ]
    outcomes = sweep_shapes(shims["BUFFER_OVERREAD"], RING, shapes)
    assert [type(o) is ShapeFault for o in outcomes] == [False, True, True, False]
    for fault in outcomes[1:3]:
        assert isinstance(fault, ShapeFault)
        assert fault.guard == ("buffer", 0, "after")
        assert "after the buffer's BufferLength bytes" in fault.detail


def test_the_rust_core_never_touches_a_guard_page(core: str) -> None:
    """Shapes whose every byte sits against a guard: a buffer of every length up to 16,
    MDLs whose PFN arrays have exactly the span, the largest MDLs, the FORCE flag."""
    shapes: list[Shape] = []
    for length in range(17):
        shapes.append((None, 0, 0, 1, bytes(range(length)), length))
    for byte_offset in (0, 1, 0x7FF, 0xFF8, 0xFFF):
        for byte_count in (0, 1, 0xFFF, 0x1000, 0x1001, 0x3000, 0xFFFF_FFFF):
            span = ((byte_offset & 0xFFF) + byte_count + 0xFFF) >> 12
            pfns = tuple(range(1, min(span, 8) + 1))
            chain = ((byte_offset, byte_count, pfns), (0, 0x1000, (99,)))
            for mdl_offset, mdl_length, flags in (
                (0, byte_count, 1), (0, 0, 3), (byte_count, 0x1000, 1), (0, 0xFFFF_FFFF, 3),
            ):
                shapes.append((chain, mdl_offset, mdl_length, flags, b"", 0))
    outcomes = sweep_shapes(core, RING, shapes)
    assert not [o for o in outcomes if isinstance(o, ShapeFault)]
    assert outcomes == list(in_process(core, shapes))


def test_a_raised_sigsegv_is_a_crash_outside_the_guards(shims: dict[str, str]) -> None:
    """The fault handler re-raises the signal: one sent by raise() kills the runner too,
    and the crash names the shape without blaming a guard page."""
    shapes = [(None, 0, 0, 1, b"a", 1), (None, TRIGGER, 0, 1, b"b", 1), (None, 0, 0, 1, b"c", 1)]
    outcomes = sweep_shapes(shims["RAISE_SEGV"], RING, shapes)
    fault = outcomes[1]
    assert isinstance(fault, ShapeFault) and fault.kind == "crash" and fault.guard is None
    assert "SIGSEGV" in fault.detail and "outside the guard pages" in fault.detail
    assert not isinstance(outcomes[2], ShapeFault)


def test_a_lying_length_is_reported_not_followed(shims: dict[str, str]) -> None:
    shapes = [
        (None, 0, 0, 1, b"12345678", 8),
        (None, TRIGGER, 0, 1, b"12345678", 8),
        (None, 0, 0, 1, b"abcdefgh", 8),
    ]
    outcomes = sweep_shapes(shims["LYING_LENGTH"], RING, shapes)
    fault = outcomes[1]
    assert isinstance(fault, ShapeFault)
    assert fault.kind == "crash"
    assert f"out_length {RING + 8:#x}" in fault.detail and "not followed" in fault.detail
    good = outcomes[2]
    assert not isinstance(good, ShapeFault)
    assert good[1] is not None and good[1].endswith(b"abcdefgh")


def test_a_hang_is_named_and_the_rest_runs(shims: dict[str, str]) -> None:
    shapes = [(None, 0, 0, 1, b"a", 1), (None, TRIGGER, 0, 1, b"b", 1), (None, 0, 0, 1, b"c", 1)]
    outcomes = sweep_shapes(shims["HANG"], RING, shapes, timeout=0.5)
    assert isinstance(outcomes[1], ShapeFault) and outcomes[1].kind == "hang"
    assert not isinstance(outcomes[0], ShapeFault) and not isinstance(outcomes[2], ShapeFault)


def test_a_hang_on_the_first_shape_takes_the_timeout_not_the_start_timeout(
    shims: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native_sweep, "START_TIMEOUT", 120.0)
    started = time.monotonic()
    outcomes = sweep_shapes(shims["HANG"], RING, [(None, TRIGGER, 0, 1, b"a", 1)], timeout=0.5)
    assert isinstance(outcomes[0], ShapeFault) and outcomes[0].kind == "hang"
    assert time.monotonic() - started < 60  # not the 120 s allowed for a start


def test_a_library_that_dies_while_loading_blames_no_shape(shims: dict[str, str]) -> None:
    with pytest.raises(RuntimeError, match="never reached the first shape"):
        sweep_shapes(shims["CTOR_CRASH"], RING, [(None, 0, 0, 1, None, 0)])


def test_results_do_not_depend_on_how_the_batch_is_cut(
    core: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A results file too small for the batch: the runner stops, a new child goes on."""
    shapes = sample_shapes(200, seed=2)
    whole = run_shapes(core, 0x1000, shapes)
    monkeypatch.setattr(native_sweep, "MAX_RESULTS_BYTES", 600)
    stats = native_sweep.SweepStats()
    assert sweep_shapes(core, 0x1000, shapes, stats=stats) == whole
    assert stats.children > 1


def test_bad_shapes_and_libraries_are_refused_before_anything_runs(
    core: str, tmp_path: Path
) -> None:
    for shape, message in (
        ((None, 0, 0, 1, b"ab", 3), "BufferLength 3 exceeds"),
        ((None, -1, 0, 1, None, 0), "MdlOffset"),
        ((None, 0, 0, 1 << 32, None, 0), "Flags"),
        ((((0, 0, (1 << 64,)),), 0, 0, 1, None, 0), "PFN"),
        (((0, 0),), "6-tuple"),
    ):
        with pytest.raises(ValueError, match=message):
            run_shapes(core, RING, [(None, 0, 0, 1, None, 0), shape])
    with pytest.raises(LibraryError):
        run_shapes(str(tmp_path / "missing.so"), RING, [])
    text = tmp_path / "not-a-library.so"
    text.write_text("no ELF here")
    with pytest.raises(LibraryError, match="cannot load"):
        run_shapes(str(text), RING, [(None, 0, 0, 1, None, 0)])


def test_an_invalid_ring_size_is_an_error_per_shape(core: str) -> None:
    outcomes = sweep_shapes(core, 0x1001, [(None, 0, 0, 1, None, 0)])
    assert isinstance(outcomes[0], ShapeFault) and outcomes[0].kind == "error"
    assert "vmbcore_channel_create failed" in outcomes[0].detail


# -- malformed inputs: shapes as Python values, and the runner's encoded batch -----------------
#
# The generators below are shared with bench/malformed_sweep_native.py, which runs 10,000 of
# each. A Python shape either encodes or raises ValueError naming what is wrong; an encoded
# batch, however mangled, makes the runner return VMBSWEEP_OK, VMBSWEEP_BAD_SHAPE or
# VMBSWEEP_RESULTS_FULL with records that decode, and never crash (the runner runs in this
# process here: a fault would end the test run).

BOUNDARY_INTS = (0, 1, 0xFFF, 0x1000, 0xFFFF_FFFF, 0x1_0000_0000, -1, (1 << 64) - 1, 1 << 64)
#: Ring data sizes the campaigns use: valid ones and invalid ones (a per-shape error record).
CAMPAIGN_RINGS = (0x1000, 0x4000, 0x1_0000, 0, 0x1001)


def _values() -> st.SearchStrategy[Any]:
    """An integer field as drawn: mostly good, boundary or out of range, sometimes no int."""
    return st.one_of(
        st.sampled_from(BOUNDARY_INTS),
        st.integers(min_value=0, max_value=0xFFFF_FFFF),
        st.integers(min_value=-(1 << 70), max_value=1 << 70),
        st.booleans(),
        st.none(),
        st.floats(allow_nan=True),
        st.text(max_size=2),
        st.binary(max_size=2),
    )


def _small_u32() -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((0, 1, 0xFFF, 0x1000, 0x1001, 0x2000, 0xFFFF_FFFF)),
                     st.integers(min_value=0, max_value=0x5000))


@st.composite
def _mdl_entry(draw: st.DrawFn, wild: bool) -> Any:
    number = _values() if wild else _small_u32()
    pfns = st.lists(_values() if wild else st.integers(0, (1 << 64) - 1), max_size=5)
    entry = (draw(number), draw(number), tuple(draw(pfns)))
    if wild and draw(st.integers(0, 9)) == 0:
        first, second = entry[0], entry[1]
        return draw(st.sampled_from([entry[:2], [*entry], (*entry, 0), 7, "mdl",
                                     (first, second, 7), (first, second, "pfns"),
                                     (first, second, None)]))
    return entry


@st.composite
def python_shapes(draw: st.DrawFn) -> Any:
    """A shape as the sweep passes it, every part of it possibly malformed."""
    wild = draw(st.booleans())
    number = _values() if wild else _small_u32()
    chain = draw(st.lists(_mdl_entry(wild), max_size=4))
    mdl = draw(st.sampled_from([None, tuple(chain), chain, "chain", ((0, 0x1000, (1,)),) * 257,
                                iter(chain), 5]))
    buffer = draw(st.one_of(st.none(), st.binary(max_size=16), st.binary(max_size=16).map(
        bytearray), st.sampled_from([7, "text", memoryview(b"mv")])))
    shape = (mdl, draw(number), draw(number), draw(number), buffer, draw(number))
    if wild and draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([shape[:5], [*shape], (*shape, 0), None, 3]))
    return shape


@st.composite
def encoded_batches(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """Encoded batches of valid shapes, then mangled: bytes flipped, cut, inserted, a field
    set to an extreme, or plain noise. The count is known only when nothing was mangled."""
    shapes = draw(st.lists(valid_shapes(), max_size=4))
    data = bytearray(b"".join(native_sweep.encode_shape(s) for s in shapes))
    mangle = draw(st.sampled_from(["none", "flip", "cut", "insert", "field", "noise"]))
    if mangle == "noise":
        return draw(st.binary(max_size=200)), None
    if not data or mangle == "none":
        return bytes(data), len(shapes)
    at = draw(st.integers(0, len(data) - 1))
    if mangle == "flip":
        for _ in range(draw(st.integers(1, 4))):
            data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    elif mangle == "cut":
        del data[at:]
    elif mangle == "insert":
        data[at:at] = draw(st.binary(min_size=1, max_size=8))
    else:
        start = at - at % 4
        data[start : start + 4] = draw(st.sampled_from(
            [0, 1, 2, 0xFF, 0x100, 0x101, 0xFFFF_FFFF, 0x8000_0000])).to_bytes(4, "little")
    return bytes(data), None


@st.composite
def valid_shapes(draw: st.DrawFn) -> Shape:
    """A well-formed shape (any call, accepted or rejected by the target)."""
    chain = tuple(draw(st.lists(_mdl_entry(False), max_size=3)))
    buffer = draw(st.one_of(st.none(), st.binary(max_size=16)))
    limit = 0xFFFF_FFFF if buffer is None else len(buffer)
    return (
        chain if chain or draw(st.booleans()) else None, draw(_small_u32()), draw(_small_u32()),
        draw(_small_u32()), buffer, draw(st.integers(0, limit)),
    )


def check_python_shape(shape: Any) -> str:
    """``"encoded"`` or ``"refused"``; anything else raises."""
    try:
        encoded = native_sweep.encode_shape(shape)
    except ValueError as error:
        assert str(error), shape
        return "refused"
    assert isinstance(encoded, bytes)
    return "encoded"


class InProcessRunner:
    """``vmbsweep_run`` of the Rust core, called in this process on the Rust core itself."""

    def __init__(self, core: str) -> None:
        self.core = os.fsencode(core)
        self.lib = native_sweep._load_runner(core)
        self.results = (ctypes.c_uint8 * (1 << 20))()

    def check(self, data: bytes, count: int | None, ring: int) -> str:
        """The runner's code as a name; raises on anything a correct runner cannot do."""
        progress = native_sweep._Progress()
        code = self.lib.vmbsweep_run(
            self.core, ring, data, len(data), ctypes.addressof(self.results),
            len(self.results), ctypes.byref(progress), 0,
        )
        names = {0: "ok", 1: "results-full", 3: "bad-shape"}
        assert code in names, code
        assert progress.results_len <= len(self.results)
        native_sweep._decode_records(
            ctypes.string_at(self.results, progress.results_len), 0, progress.results_len,
            progress.shapes_done,
        )
        if count is not None:
            assert code == 0 and progress.shapes_done == count, (code, progress.shapes_done)
        return names[code]


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(shape=python_shapes())
def test_a_malformed_python_shape_is_refused_with_a_value_error(shape: Any) -> None:
    check_python_shape(shape)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(batch=encoded_batches(), ring=st.sampled_from(CAMPAIGN_RINGS))
def test_a_mangled_batch_never_crashes_the_runner(
    batch: tuple[bytes, int | None], ring: int
) -> None:
    runner = _RUNNER.get("runner")
    if runner is None:
        runner = _RUNNER["runner"] = InProcessRunner(str(library_path()))
    data, count = batch
    runner.check(data, count, ring)


_RUNNER: dict[str, InProcessRunner] = {}


SWEEP_C = r"""
#include <stdio.h>
#include <string.h>
#include "vmbcore.h"
#include "vmbsweep.h"

static void put32(uint8_t **p, uint32_t v) { memcpy(*p, &v, 4); *p += 4; }

int main(int argc, char **argv)
{
    uint8_t shapes[64], *p = shapes;
    /* one shape: NULL MDL, MdlOffset 0, MdlLength 0, WAIT, a 3-byte buffer */
    put32(&p, 0); put32(&p, 0); put32(&p, 0); put32(&p, 1); put32(&p, 1); put32(&p, 3);
    memcpy(p, "abc", 3); p += 3;
    static uint8_t results[1 << 16];
    VMBSWEEP_PROGRESS progress;
    memset(&progress, 0xAB, sizeof progress);
    int32_t code = vmbsweep_run(argv[1], 0x4000, shapes, (size_t)(p - shapes), results,
                                sizeof results, &progress, 0);
    uint32_t record[5];
    memcpy(record, results, sizeof record);
    printf("%d %llu %llu %u %u %u %u %u %u\n", code, (unsigned long long)progress.shapes_done,
           (unsigned long long)progress.results_len, progress.fault_signal, record[0],
           record[1], record[2], record[3], record[4]);
    uint64_t ns = 0;
    int32_t raw = vmbsweep_raw_rate(argv[1], 1000, &ns);
    printf("%d %d\n", raw, ns > 0);
    return argc == 2 ? 0 : 1;
}
"""


def test_the_header_matches_the_runner_from_c(core: str, tmp_path: Path) -> None:
    """A C program built against vmbsweep.h runs a batch of one shape and the raw rate."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    source = tmp_path / "sweep.c"
    source.write_text(SWEEP_C)
    binary = tmp_path / "sweep"
    folder = str(Path(core).parent)
    subprocess.run(
        ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", f"-I{CRATE_DIR / 'include'}",
         str(source), f"-L{folder}", f"-l:{Path(core).name}", f"-Wl,-rpath,{folder}",
         "-o", str(binary)],
        check=True, capture_output=True,
    )
    run = subprocess.run([str(binary), core], capture_output=True, text=True, timeout=60,
                         check=True)
    first, second = run.stdout.splitlines()
    # OK, one shape, a 20-byte record + a 24-byte in-band packet, no fault; status 0, no
    # completion call, no error, detail 0, packet length 24.
    assert first.split() == ["0", "1", "44", "0", "0", "0", "0", "0", "24"]
    assert second.split() == ["0", "1"]
