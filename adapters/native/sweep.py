"""Batches of single calls on a native library, run in native code against guard pages.

Theory of operation
-------------------
The sweep runner lives in the Rust core's shared library (``adapters/rust/src/sweep.rs``,
declared in ``adapters/rust/include/vmbsweep.h``). ``vmbsweep_run`` loads ANY library with the
``vmbcore.h`` ABI by path and, for each shape of a batch, creates and opens a fresh channel,
allocates a fresh packet with a completion routine that counts its calls, lays the MDL chain out
as Windows x64 does, calls ``VmbPacketSendWithExternalMdl``, reads the completion count, takes
the packet from the ring, frees the packet and destroys the channel. Every MDL's PFN array
(``max(PFNs given, ADDRESS_AND_SIZE_TO_SPAN_PAGES)`` slots, the missing ones 0, exactly as
:func:`adapters.native.abi.build_mdl_chain` lays them out) and the buffer's first
``BufferLength`` bytes end at a page boundary followed by an inaccessible page, so a read one
PFN or one byte past what the call describes faults.

A fault kills the process, so the runner never runs in this one: :func:`sweep_shapes` writes the
encoded batch to a file, starts a child process (``python -c ...``, like the isolated worker of
:mod:`.isolated`) that maps a shared results file and calls the runner once, and watches the
runner's progress record in that file (updated after every shape). When the child dies, the
first shape without a record is the one that faulted; the runner's SIGSEGV/SIGBUS handler has
written the faulting address and which guard it hit (which MDL of the chain, or the buffer)
into the same record before the signal killed it. When the progress stops for ``timeout``
seconds the child is killed and the shape it was on hung. Either way the shape becomes a
:class:`ShapeFault` and a new child runs the shapes after it.

Nothing the library returns is followed: the runner reads a packet only up to the capacity it
gave (``ring_data_size``: a packet is at most that long) and records a longer length, or a
STATUS_BUFFER_TOO_SMALL contradicting the capacity, as an error of the shape, which becomes a
``crash`` :class:`ShapeFault` here.

Interfaces: :func:`run_shapes` (the sweep's: results only, :class:`SweepFault` at the first
faulting shape, carrying the results before it), :func:`sweep_shapes` (a result or a
:class:`ShapeFault` for every shape, going on after faults), :func:`rust_library_path` (the
library ``--target rust`` uses, which is also the runner's), :func:`raw_rate` (the library's
own send/take/complete rate timed in native code, for benchmarks).

Only the standard library is used, and nothing from ``spec`` or ``conformance``.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .abi import MAX_RING_DATA_SIZE, PAGE_SIZE, UINT32_MAX, UINT64_MAX, LibraryError
from .boot import ROOT, boot_code

#: One call: ``(mdl, mdl_offset, mdl_length, flags, buffer, buffer_length)``; ``mdl`` is None
#: or a sequence of ``(byte_offset, byte_count, pfns)``, ``buffer`` None or bytes.
Shape = tuple[Any, ...]
#: ``(status, packet without its 8-byte trailer or None, completion-routine calls right after
#: the send)``.
Result = tuple[int, bytes | None, int]

# vmbsweep.h
VMBSWEEP_OK = 0
VMBSWEEP_RESULTS_FULL = 1
VMBSWEEP_BAD_ARGUMENT = 2
VMBSWEEP_BAD_SHAPE = 3
VMBSWEEP_LOAD_FAILED = 4
VMBSWEEP_MISSING_SYMBOL = 5
VMBSWEEP_OUT_OF_MEMORY = 6
VMBSWEEP_PANIC = 7
VMBSWEEP_UNSUPPORTED = 8
VMBSWEEP_CATCH_FAULTS = 0x1
REGION_MDL = 1
REGION_BUFFER = 2
SIDE_BEFORE = 1
SIDE_AFTER = 2

#: The most MDLs in one shape (vmbsweep.h; the ABI itself rejects more than 64).
MAX_SHAPE_MDLS = 256
#: The most shapes in one call of :func:`sweep_shapes`.
MAX_SHAPES = 1 << 26
#: Seconds the runner may spend on one shape before it counts as a hang.
DEFAULT_TIMEOUT = 10.0
#: Seconds a child may take to start and load the runner.
START_TIMEOUT = 30.0
#: The largest results file one child writes into (sparse: only what is written costs).
MAX_RESULTS_BYTES = 1 << 30
#: shapes_done before the runner starts (it writes 0 once the library is loaded).
_NOT_STARTED = UINT64_MAX

_SHAPE_HEAD = struct.Struct("<6I")
_MDL_HEAD = struct.Struct("<3I")
_RECORD = struct.Struct("<5I")
#: VMBSWEEP_PROGRESS: shapes_done, results_len, fault_address, signal, region, index, side.
_PROGRESS = struct.Struct("<3Q4I")

_ERRORS = {
    1: "vmbcore_channel_create failed with NTSTATUS {detail:#010x}",
    2: "vmbcore_channel_create returned STATUS_SUCCESS and a NULL channel",
    3: "vmbcore_channel_open failed with NTSTATUS {detail:#010x}",
    4: "VmbPacketAllocate returned NULL on an open channel",
    5: "vmbcore_host_take_packet failed with NTSTATUS {detail:#010x}",
    6: (
        "vmbcore_host_take_packet reported out_length {detail:#x}, more than the {capacity:#x} "
        "bytes it was given: an impossible length (not followed)"
    ),
    7: (
        "vmbcore_host_take_packet returned STATUS_BUFFER_TOO_SMALL asking for {detail:#x} "
        "bytes, though given {capacity:#x} (the most a packet of the ring can have): an "
        "impossible length (not followed)"
    ),
}
#: Record errors that are a harness call failing (kind "error"), not an impossible result.
_HARNESS_ERRORS = frozenset({1, 3, 4, 5})

#: What the child process runs: ``python -c _BOOT ROOT RUNNER LIBRARY ...``.
_BOOT = boot_code("sweep", "child_main", "sys.argv[2:]")


@dataclass(frozen=True)
class ShapeFault:
    """Shape ``index`` (its position in the shapes given) has no result.

    ``kind``: ``"crash"`` (the process died: a fault, an abort; or the library returned an
    impossible value), ``"hang"`` (no progress for the timeout) or ``"error"`` (a harness call
    of the ABI failed, so the call could not be made). ``detail`` says what happened, and for
    a fault caught by a guard page which MDL or the buffer the target read past; ``guard`` is
    then ``("mdl", i, "after"|"before")`` or ``("buffer", 0, ...)``.
    """

    index: int
    kind: str
    detail: str
    guard: tuple[str, int, str] | None = None


class SweepFault(Exception):
    """Raised by :func:`run_shapes` at the first shape without a result: ``fault`` names it,
    ``results`` holds the results of the shapes before it (resume after ``fault.index``)."""

    def __init__(self, fault: ShapeFault, results: list[Result]) -> None:
        super().__init__(f"shape {fault.index}: {fault.kind}: {fault.detail}")
        self.fault = fault
        self.results = results


@dataclass
class SweepStats:
    """What a sweep cost: children started, seconds inside ``vmbsweep_run`` (as the children
    measured it) and in all."""

    children: int = 0
    runner_seconds: float = 0.0
    total_seconds: float = 0.0
    shapes: int = 0
    faults: list[ShapeFault] = field(default_factory=list)


def rust_library_path() -> str:
    """The Rust core's shared library, as ``--target rust`` finds it (``$VMBCORE_LIB``, the
    packaged or the newest cargo build); it also holds the sweep runner. FileNotFoundError
    says how to build it."""
    from vmbspec.adapters.rust.build import library_path

    return str(library_path())


# -- shapes -------------------------------------------------------------------------------


def _uint(value: Any, limit: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{what} must be an int in [0, {limit:#x}], not {value!r}")
    return value


def encode_shape(shape: Shape, chains: dict[int, tuple[Any, int, bytes]] | None = None) -> bytes:
    """One shape in the runner's encoding (vmbsweep.h). ValueError names what is wrong: a
    shape that is not a 6-tuple, an integer out of range, a BufferLength longer than the
    buffer, more than :data:`MAX_SHAPE_MDLS` MDLs. ``chains``, if given, caches the encoded
    MDL chains by identity (a sweep sends one chain object with many offsets, lengths and
    flags); the caller keeps the shapes, hence the chains, alive while it uses the cache."""
    if type(shape) is not tuple or len(shape) != 6:
        raise ValueError(f"a shape is a 6-tuple, not {shape!r:.200}")
    mdl, mdl_offset, mdl_length, flags, buffer, buffer_length = shape
    if not (
        type(mdl_offset) is int and 0 <= mdl_offset <= UINT32_MAX
        and type(mdl_length) is int and 0 <= mdl_length <= UINT32_MAX
        and type(flags) is int and 0 <= flags <= UINT32_MAX
        and type(buffer_length) is int and 0 <= buffer_length <= UINT32_MAX
    ):
        _uint(mdl_offset, UINT32_MAX, "MdlOffset")
        _uint(mdl_length, UINT32_MAX, "MdlLength")
        _uint(flags, UINT32_MAX, "Flags")
        _uint(buffer_length, UINT32_MAX, "BufferLength")
    if mdl is None:
        count, encoded_chain = 0, b""
    elif chains is None:
        count, encoded_chain = _encode_chain(mdl)
    else:
        hit = chains.get(id(mdl))
        if hit is not None and hit[0] is mdl:
            _, count, encoded_chain = hit
        else:
            count, encoded_chain = _encode_chain(mdl)
            if len(chains) < _MAX_CACHED_CHAINS:
                chains[id(mdl)] = (mdl, count, encoded_chain)
    if buffer is None:
        head = _SHAPE_HEAD.pack(count, mdl_offset, mdl_length, flags, 0, buffer_length)
        return head + encoded_chain
    if type(buffer) is not bytes:
        if not isinstance(buffer, bytes | bytearray | memoryview):
            raise ValueError(f"the buffer must be bytes or None, not {type(buffer).__name__}")
        buffer = bytes(buffer)
    if buffer_length > len(buffer):
        raise ValueError(f"BufferLength {buffer_length} exceeds the {len(buffer)}-byte buffer")
    head = _SHAPE_HEAD.pack(count, mdl_offset, mdl_length, flags, 1, buffer_length)
    return head + buffer[:buffer_length] + encoded_chain


#: The most distinct MDL chains :func:`sweep_shapes` keeps encoded.
_MAX_CACHED_CHAINS = 1 << 16


def _encode_chain(mdl: Any) -> tuple[int, bytes]:
    """The MDL count and the MDL part of a shape's encoding."""
    if not isinstance(mdl, tuple | list):
        raise ValueError(f"the MDL chain must be a tuple, a list or None, not {mdl!r:.200}")
    chain = tuple(mdl)
    if len(chain) > MAX_SHAPE_MDLS:
        raise ValueError(f"{len(chain)} MDLs, more than the runner's {MAX_SHAPE_MDLS}")
    parts: list[bytes] = []
    for entry in chain:
        if not isinstance(entry, tuple | list) or len(entry) != 3:
            raise ValueError(f"an MDL is (byte_offset, byte_count, pfns), not {entry!r:.200}")
        byte_offset, byte_count, pfns = entry
        if not isinstance(pfns, tuple | list):
            raise ValueError(f"an MDL's PFNs must be a tuple or a list, not {pfns!r:.200}")
        pfn_list = list(pfns)
        if len(pfn_list) > 0x20_0000:
            raise ValueError(f"{len(pfn_list)} PFNs in one MDL, more than 0x200000")
        try:  # struct refuses negative, too large and non-integer values...
            parts.append(_MDL_HEAD.pack(byte_offset, byte_count, len(pfn_list)))
            parts.append(struct.pack(f"<{len(pfn_list)}Q", *pfn_list))
            valid = not any(type(v) is bool for v in (byte_offset, byte_count, *pfn_list))
        except struct.error:
            valid = False
        if not valid:  # ...and this says which, and refuses bools too
            _uint(byte_offset, UINT32_MAX, "ByteOffset")
            _uint(byte_count, UINT32_MAX, "ByteCount")
            for p in pfn_list:
                _uint(p, UINT64_MAX, "a PFN")
    return len(chain), b"".join(parts)


def _decode_records(
    data: bytes | mmap.mmap, start: int, end: int, count: int
) -> list[tuple[int, int, int, int, bytes | None]]:
    """``count`` records from ``data[start:end]``: (status, calls, error, detail, packet)."""
    records = []
    position = start
    for _ in range(count):
        if position + _RECORD.size > end:
            raise RuntimeError("the sweep runner's records end early (a bug of the runner)")
        status, calls, error, detail, length = _RECORD.unpack_from(data, position)
        position += _RECORD.size
        if position + length > end:
            raise RuntimeError("a sweep runner record runs past its end (a bug of the runner)")
        packet = bytes(data[position : position + length]) if length else None
        position += length
        records.append((status, calls, error, detail, packet))
    if position != end:
        raise RuntimeError("the sweep runner wrote more than its records (a bug of the runner)")
    return records


# -- the child process ------------------------------------------------------------------------


class _Progress(ctypes.Structure):
    _fields_ = (
        ("shapes_done", ctypes.c_uint64),
        ("results_len", ctypes.c_uint64),
        ("fault_address", ctypes.c_uint64),
        ("fault_signal", ctypes.c_uint32),
        ("fault_region", ctypes.c_uint32),
        ("fault_index", ctypes.c_uint32),
        ("fault_side", ctypes.c_uint32),
    )


def _load_runner(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    lib.vmbsweep_run.restype = ctypes.c_int32
    lib.vmbsweep_run.argtypes = [
        ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t,
        ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(_Progress), ctypes.c_uint32,
    ]
    lib.vmbsweep_raw_rate.restype = ctypes.c_int32
    lib.vmbsweep_raw_rate.argtypes = [
        ctypes.c_char_p, ctypes.c_uint64, ctypes.POINTER(ctypes.c_uint64),
    ]
    return lib


def child_main(argv: list[str]) -> int:
    """The child: ``RUNNER LIBRARY RING_DATA_SIZE SHAPES_FILE RESULTS_FILE``. Maps the results
    file (VMBSWEEP_PROGRESS, then the records), runs the batch once with faults caught, and
    prints ``CODE NANOSECONDS``."""
    runner, library, ring, shapes_file, results_file = argv
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource  # no core file for a fault the runner is expected to catch

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    lib = _load_runner(runner)
    shapes = Path(shapes_file).read_bytes()
    with open(results_file, "r+b") as handle:
        memory = mmap.mmap(handle.fileno(), 0)
    buffer = (ctypes.c_uint8 * len(memory)).from_buffer(memory)
    progress = _Progress.from_buffer(buffer)
    results = ctypes.addressof(buffer) + _PROGRESS.size
    started = time.perf_counter_ns()
    code = lib.vmbsweep_run(
        os.fsencode(library), int(ring), shapes, len(shapes),
        results, len(memory) - _PROGRESS.size, ctypes.byref(progress), VMBSWEEP_CATCH_FAULTS,
    )
    elapsed = time.perf_counter_ns() - started
    sys.stdout.write(f"{code} {elapsed}\n")
    sys.stdout.flush()
    return 0


def _describe_fault(signal_number: int, address: int, region: int, index: int, side: int
                    ) -> tuple[str, tuple[str, int, str] | None]:
    try:
        name = signal.Signals(signal_number).name
    except ValueError:
        name = f"signal {signal_number}"
    where = {SIDE_BEFORE: "before", SIDE_AFTER: "after"}.get(side)
    if region == REGION_MDL and where is not None:
        what = (
            f"the guard page after MDL {index}'s PFN array (the last slot the call describes)"
            if where == "after"
            else f"the guard page below MDL {index}'s mapping, before its header"
        )
        return (
            f"the target touched memory outside the MDLs and buffer the call described: "
            f"{name} at {address:#x}, in {what}",
            ("mdl", index, where),
        )
    if region == REGION_BUFFER and where is not None:
        what = (
            "the guard page right after the buffer's BufferLength bytes"
            if where == "after"
            else "the guard page before the buffer's mapping"
        )
        return (
            f"the target touched memory outside the MDLs and buffer the call described: "
            f"{name} at {address:#x}, in {what}",
            ("buffer", 0, where),
        )
    return f"the runner's process was killed by {name} at {address:#x}, outside the guard "\
        "pages (a crash of the library)", None


@dataclass
class _ChildRun:
    code: int | None  # the runner's return code, None if the child died or hung
    records: list[tuple[int, int, int, int, bytes | None]]
    fault: ShapeFault | None  # for the shape right after the records
    runner_seconds: float


def _run_child(
    runner: str, library: str, ring_data_size: int, encoded: list[bytes], first: int,
    timeout: float, folder: str,
) -> _ChildRun:
    """One child on ``encoded`` (shapes ``first`` onwards of the caller's list)."""
    shapes_path = os.path.join(folder, "shapes.bin")
    results_path = os.path.join(folder, "results.bin")
    with open(shapes_path, "wb") as handle:
        handle.write(b"".join(encoded))
    # Room for every record at its longest, up to MAX_RESULTS_BYTES (a sparse file: only what
    # is written costs), and never less than one record of the longest packet, so that every
    # child makes progress.
    capacity = min(len(encoded) * (_RECORD.size + ring_data_size), MAX_RESULTS_BYTES)
    size = _PROGRESS.size + max(capacity, _RECORD.size + ring_data_size, PAGE_SIZE)
    with open(results_path, "w+b") as handle:
        handle.truncate(size)
        memory = mmap.mmap(handle.fileno(), size)
    # shapes_done = the sentinel until the runner has loaded the library and starts.
    struct.pack_into("<Q", memory, 0, _NOT_STARTED)
    with memory, tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", _BOOT, ROOT, runner, library, str(ring_data_size),
             shapes_path, results_path],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
        hung = _watch(process, memory, timeout)
        out = process.stdout.read() if process.stdout is not None else b""
        if process.stdout is not None:
            process.stdout.close()
        done, written, address, signal_number, region, index, side = _PROGRESS.unpack_from(
            memory, 0
        )
        words = out.decode("ascii", "replace").split()
        finished = (
            not hung and process.returncode == 0 and len(words) == 2
            and all(w.isdigit() for w in words)
        )
        if done == _NOT_STARTED and finished:
            done = written = 0  # the runner returned before the first shape (a load error)
        elif done == _NOT_STARTED:
            stderr.seek(0)
            said = stderr.read()[-1000:].decode("utf-8", "replace").strip()
            how = "did not start within the timeout" if hung else _describe_exit(
                process.returncode
            )
            raise RuntimeError(
                f"the sweep child never reached the first shape ({how}): loading the runner "
                f"{runner} or the library {library} failed" + (f"; stderr: {said}" if said else "")
            )
        done = min(done, len(encoded))
        end = _PROGRESS.size + written
        if end > size:
            raise RuntimeError("the sweep runner reports more results than it was given room for")
        records = _decode_records(memory, _PROGRESS.size, end, done)
        if hung:
            fault = ShapeFault(
                first + done, "hang",
                f"no progress on this shape within {timeout:g} s; the runner was killed",
            )
            return _ChildRun(None, records, fault, 0.0)
        if finished:
            return _ChildRun(int(words[0]), records, None, int(words[1]) / 1e9)
        if signal_number:
            detail, guard = _describe_fault(signal_number, address, region, index, side)
        else:
            stderr.seek(0)
            said = stderr.read()[-1000:].decode("utf-8", "replace").strip()
            detail = f"the runner's process ended: {_describe_exit(process.returncode)}" + (
                f"; its stderr ends: {said}" if said else ""
            )
            guard = None
        if done >= len(encoded):
            raise RuntimeError(f"the sweep child failed after the last shape: {detail}")
        return _ChildRun(None, records, ShapeFault(first + done, "crash", detail, guard), 0.0)


def _describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


def _watch(process: subprocess.Popen[bytes], memory: mmap.mmap, timeout: float) -> bool:
    """Waits for the child; kills it and returns True when its progress stops for
    ``timeout`` seconds (:data:`START_TIMEOUT` before the runner has loaded the library)."""
    last = _NOT_STARTED
    deadline = time.monotonic() + START_TIMEOUT
    pause = 0.001
    while True:
        try:
            process.wait(timeout=pause)
            return False
        except subprocess.TimeoutExpired:
            pass
        pause = min(pause * 2, 0.05)
        (done,) = struct.unpack_from("<Q", memory, 0)
        now = time.monotonic()
        if done != last:
            last = done
            deadline = now + timeout
        elif now > deadline:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            return True


# -- the interfaces ---------------------------------------------------------------------------


def _check_arguments(library_path: str, ring_data_size: int, shapes: Sequence[Shape]) -> None:
    if not isinstance(library_path, str | os.PathLike) or not os.path.isfile(library_path):
        raise LibraryError(f"{library_path!r} is not a file")
    _uint(ring_data_size, MAX_RING_DATA_SIZE, "ring_data_size")
    if len(shapes) > MAX_SHAPES:
        raise ValueError(f"{len(shapes)} shapes, more than {MAX_SHAPES} in one sweep")


def sweep_shapes(
    library_path: str,
    ring_data_size: int,
    shapes: Sequence[Shape],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    stop_at_first_fault: bool = False,
    stats: SweepStats | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[Result | ShapeFault]:
    """A :data:`Result` or a :class:`ShapeFault` per shape, in order (fewer when
    ``stop_at_first_fault``: up to and including the first fault). Raises ValueError for a
    malformed shape (naming its index), :class:`LibraryError` for a library that cannot be
    loaded or lacks part of the ABI, FileNotFoundError when the Rust core is not built."""
    started = time.perf_counter()
    _check_arguments(library_path, ring_data_size, shapes)
    library = os.path.abspath(os.fspath(library_path))
    runner = rust_library_path()
    _check_runner(runner)
    encoded = []
    chains: dict[int, tuple[Any, int, bytes]] = {}
    for index, shape in enumerate(shapes):
        try:
            encoded.append(encode_shape(shape, chains))
        except ValueError as error:
            raise ValueError(f"shape {index}: {error}") from None
    stats = stats if stats is not None else SweepStats()
    outcomes: list[Result | ShapeFault] = []
    with tempfile.TemporaryDirectory(prefix="vmbsweep-", dir=_scratch_dir()) as folder:
        while len(outcomes) < len(encoded):
            first = len(outcomes)
            run = _run_child(runner, library, ring_data_size, encoded[first:], first, timeout,
                             folder)
            stats.children += 1
            stats.runner_seconds += run.runner_seconds
            for offset, record in enumerate(run.records):
                outcomes.append(_outcome(first + offset, record, ring_data_size))
            if run.fault is not None:
                outcomes.append(run.fault)
            elif run.code == VMBSWEEP_LOAD_FAILED:
                raise LibraryError(f"cannot load {library} as a shared library (dlopen failed)")
            elif run.code == VMBSWEEP_MISSING_SYMBOL:
                raise LibraryError(f"{library} does not export the whole vmbcore.h ABI")
            elif run.code == VMBSWEEP_OUT_OF_MEMORY:
                raise MemoryError("the sweep runner could not map its guard pages")
            elif run.code not in (VMBSWEEP_OK, VMBSWEEP_RESULTS_FULL):
                raise RuntimeError(f"the sweep runner returned code {run.code} (a bug of ours)")
            elif not run.records:
                raise RuntimeError("the sweep runner made no progress (a bug of ours)")
            if on_progress is not None:
                on_progress(len(outcomes))
            faults = [o for o in outcomes[first:] if isinstance(o, ShapeFault)]
            stats.faults.extend(faults)
            if stop_at_first_fault and faults:
                del outcomes[faults[0].index + 1 :]
                break
    stats.shapes += len(outcomes)
    stats.total_seconds += time.perf_counter() - started
    return outcomes


def _outcome(
    index: int, record: tuple[int, int, int, int, bytes | None], ring_data_size: int
) -> Result | ShapeFault:
    status, calls, error, detail, packet = record
    if error == 0:
        return (status, packet, calls)
    template = _ERRORS.get(error, "the runner recorded error {error} (unknown)")
    text = template.format(detail=detail, capacity=ring_data_size, error=error)
    return ShapeFault(index, "error" if error in _HARNESS_ERRORS else "crash", text)


def run_shapes(
    library_path: str, ring_data_size: int, shapes: Sequence[Shape]
) -> list[Result]:
    """Runs every shape on a fresh idle packet of a fresh open channel of the library at
    ``library_path``, in native code with guard pages, in a child process: a result per
    shape, ``(status, packet bytes without the 8-byte trailer or None, completion-routine
    calls right after the send)``. Raises :class:`SweepFault` at the first shape that
    faulted, hung or drew an impossible value, with the results before it."""
    outcomes = sweep_shapes(library_path, ring_data_size, shapes, stop_at_first_fault=True)
    results: list[Result] = []
    for outcome in outcomes:
        if isinstance(outcome, ShapeFault):
            raise SweepFault(outcome, results)
        results.append(outcome)
    return results


def raw_rate(library_path: str, cycles: int) -> float:
    """The library's send/take/complete cycles per second, timed in native code through
    dlopen (``vmbsweep_raw_rate``), in this process: for trusted libraries (benchmarks)."""
    lib = _load_runner(rust_library_path())
    nanoseconds = ctypes.c_uint64(0)
    code = lib.vmbsweep_raw_rate(
        os.fsencode(os.path.abspath(library_path)), _uint(cycles, UINT64_MAX, "cycles"),
        ctypes.byref(nanoseconds),
    )
    if code != VMBSWEEP_OK:
        raise RuntimeError(f"vmbsweep_raw_rate returned code {code}")
    return cycles / max(nanoseconds.value, 1) * 1e9


_CHECKED_RUNNERS: set[tuple[str, int]] = set()


def _check_runner(path: str) -> None:
    """The Rust core at ``path`` has the sweep runner (an older build has not), and this is
    Linux: FileNotFoundError or RuntimeError saying so, before any child starts."""
    if not sys.platform.startswith("linux"):
        raise RuntimeError("the native sweep runner needs Linux (mmap guard pages, dlopen)")
    stamp = (os.path.realpath(path), os.stat(path).st_mtime_ns)
    if stamp in _CHECKED_RUNNERS:
        return
    try:
        _load_runner(path)
    except (OSError, AttributeError) as error:
        raise FileNotFoundError(
            f"the Rust core at {path} has no sweep runner ({error}); rebuild it with "
            "`python adapters/rust/build.py`"
        ) from None
    _CHECKED_RUNNERS.add(stamp)


def _scratch_dir() -> str | None:
    """Memory-backed temporary files where there are (/dev/shm), else the default."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
