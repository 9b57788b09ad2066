"""Targets backed by a shared library that exports the KMCL-shaped C ABI of ``vmbcore.h``.

Theory of operation
-------------------
:class:`NativeTarget` loads a library with :mod:`ctypes` in this process and provides the
suite's target interface (``conformance/target.py``, structurally: nothing here imports the
``spec`` or ``conformance`` packages). It lays MDL chains out in ctypes memory exactly as
Windows x64 does (header of 0x30 bytes, PFN array right after it, chained through ``Next``),
passes the caller's ``bytearray`` itself as ``Buffer`` (so a target that reads the buffer late
sees later changes, reading A11), and keeps both alive until the packet's completion routine
runs. One ctypes completion routine, registered on every packet at allocation, records
``(packet handle, status, bytes)``.

:class:`RustTarget` is a :class:`NativeTarget` on the library built from ``adapters/rust``.

:class:`IsolatedTarget` runs a :class:`NativeTarget` in a worker process (this file run as a
script, speaking length-prefixed pickles over pipes) and forwards every call. When the worker
dies (segfault, abort, a panic that aborts) or does not answer within ``timeout``
seconds, the call raises :class:`TargetCrashed` with kind ``"crash"`` or ``"hang"`` and the
calls made on that target; the next call starts a fresh worker (the old state is gone: the
suite starts a fresh case). Isolation has one visible difference: the in-line buffer crosses
the process boundary as a copy of its bytes at the call, so a target that reads the buffer late
sees the bytes as they were at the call (which reading A11 allows).

Workers are pooled: by default every :class:`IsolatedTarget` on one library file talks to the
same worker process, which keeps one :class:`NativeTarget` per target id on one loaded copy of
the library. The suite makes a fresh target per case and per stateful example (hundreds a
run); a process start for each would cost more than the run itself. The consequence: targets
on one library are not isolated from each other, only from this process. A library with global
state (a counter, a cache, a leak, a corrupted heap) carries it from one target to the next,
as it would in process, and when one target crashes or hangs the worker every other live
target on that library loses its state too (its next call raises :class:`TargetCrashed`).
``IsolatedTarget(..., shared=False)`` gives a target a worker of its own.

Nothing a library returns is trusted. Every length is checked against the capacity the adapter
gave and the largest ring the ABI allows (64 MiB of data) before a byte is read or allocated;
every handle against the live ones; every completion-routine call against the bytes the host
sent and a bound on pending calls. An impossible value raises :class:`ImpossibleResult`, a
``crash`` naming the function (in the worker too, which is then replaced). Bad arguments to
the constructors and to :func:`resolve` raise TypeError or ValueError at once. The worker's
replies cross as plain values only (no class or function can be named in them), at most
:data:`MAX_REPLY_BYTES` long, of the shape each method returns; anything else is a crash.

:func:`resolve` turns the ``--target`` names ``rust`` and ``native:PATH`` into factories
(``conformance/targets.py``).

This module uses only the standard library, so the worker can run it as a plain script.
"""

from __future__ import annotations

import array
import atexit
import contextlib
import ctypes
import io
import math
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import IO, Any

STATUS_SUCCESS = 0x0000_0000
STATUS_INVALID_PARAMETER = 0xC000_000D
STATUS_BUFFER_TOO_SMALL = 0xC000_0023

UINT32_MAX = 0xFFFF_FFFF
UINT64_MAX = 0xFFFF_FFFF_FFFF_FFFF
PAGE_SIZE = 0x1000
#: Windows x64: the PFN array starts right after the 0x30-byte MDL header.
MDL_HEADER_SIZE = 0x30
MDL_PAGES_LOCKED = 0x2

#: The largest ring data size of the ABI (vmbcore.h: a multiple of 4096 up to 64 MiB).
MAX_RING_DATA_SIZE = 64 << 20
#: The most bytes ``vmbcore_channel_ring_bytes`` can return: the control page and the data.
MAX_RING_BYTES = PAGE_SIZE + MAX_RING_DATA_SIZE
#: The most completion-routine calls recorded and not yet collected by :meth:`completions`;
#: a library that calls the routine more often than that is reported, not buffered forever.
MAX_PENDING_COMPLETIONS = 0x1_0000
#: The longest a call may be allowed to take, in seconds (one day).
MAX_TIMEOUT = 86_400.0

#: What a library with this ABI is assumed to offer (``conformance/target.py`` CAPABILITIES).
DEFAULT_CAPABILITIES = frozenset({"ring-bytes", "robust-contract-violations"})

MdlChainArg = Sequence[tuple[int, int, Sequence[int]]]

#: ``PFN_VMB_PACKET_COMPLETION_ROUTINE``: (VMBPACKET, NTSTATUS, void *Buffer, UINT32 Length).
COMPLETION_ROUTINE = ctypes.CFUNCTYPE(
    None, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_void_p, ctypes.c_uint32
)


class MdlHeader(ctypes.Structure):
    """The Windows x64 ``MDL`` header (wdm.h); reference §3."""

    _fields_ = (
        ("Next", ctypes.c_void_p),
        ("Size", ctypes.c_int16),
        ("MdlFlags", ctypes.c_int16),
        ("Process", ctypes.c_void_p),
        ("MappedSystemVa", ctypes.c_void_p),
        ("StartVa", ctypes.c_void_p),
        ("ByteCount", ctypes.c_uint32),
        ("ByteOffset", ctypes.c_uint32),
    )


if ctypes.sizeof(MdlHeader) != MDL_HEADER_SIZE or MdlHeader.ByteCount.offset != 0x28:
    raise ImportError("ctypes does not lay out the x64 MDL as Windows does")


def span_pages(byte_offset: int, byte_count: int) -> int:
    """wdm.h ADDRESS_AND_SIZE_TO_SPAN_PAGES (kept here: adapters may not import ``spec``)."""
    return ((byte_offset & (PAGE_SIZE - 1)) + byte_count + PAGE_SIZE - 1) >> 12


def _check_uint(name: str, value: int, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise ValueError(f"{name} must be an int in [0, {limit:#x}], not {value!r}")
    return value


def build_mdl_chain(chain: MdlChainArg) -> tuple[int, list[object]]:
    """Lays out ``chain`` as Windows x64 MDLs; returns the first MDL's address and the ctypes
    objects that must stay alive while the address is in use.

    Each MDL gets ``max(len(pfns), ADDRESS_AND_SIZE_TO_SPAN_PAGES)`` PFN slots (missing ones
    are 0), so a library that trusts the span never reads outside the allocation.
    """
    keep: list[object] = []
    next_address = 0
    for byte_offset, byte_count, pfns in reversed(list(chain)):
        _check_uint("ByteOffset", byte_offset, UINT32_MAX)
        _check_uint("ByteCount", byte_count, UINT32_MAX)
        pfn_array = array.array("Q", (_check_uint("PFN", p, UINT64_MAX) for p in pfns))
        slots = max(len(pfn_array), span_pages(byte_offset, byte_count))
        size = MDL_HEADER_SIZE + 8 * slots
        memory = (ctypes.c_uint64 * (size // 8))()  # zeroed and 8-aligned
        header = MdlHeader.from_buffer(memory)
        header.Next = next_address or None
        header.Size = size if size <= 0x7FFF else 0  # CSHORT; not read by the ABI
        header.MdlFlags = MDL_PAGES_LOCKED
        header.ByteCount = byte_count
        header.ByteOffset = byte_offset
        if pfn_array:
            address, _ = pfn_array.buffer_info()
            ctypes.memmove(ctypes.addressof(memory) + MDL_HEADER_SIZE, address, 8 * len(pfn_array))
        keep.append(memory)
        next_address = ctypes.addressof(memory)
    return next_address, keep


def _declare(lib: ctypes.CDLL) -> None:
    """The prototypes of ``include/vmbcore.h``."""
    vp, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
    u8p, u32p = ctypes.POINTER(ctypes.c_uint8), ctypes.POINTER(ctypes.c_uint32)
    prototypes: dict[str, tuple[Any, list[Any]]] = {
        "VmbPacketAllocate": (vp, [vp]),
        "VmbPacketFree": (None, [vp]),
        "VmbPacketSetCompletionRoutine": (None, [vp, COMPLETION_ROUTINE]),
        "VmbPacketSendWithExternalMdl": (u32, [vp, vp, u32, vp, u32, u32, u32]),
        "vmbcore_channel_create": (u32, [u32, ctypes.POINTER(vp)]),
        "vmbcore_channel_open": (u32, [vp]),
        "vmbcore_channel_disable": (u32, [vp]),
        "vmbcore_channel_destroy": (None, [vp]),
        "vmbcore_host_take_packet": (u32, [vp, u8p, u32, u32p]),
        "vmbcore_host_complete": (u32, [vp, u64, u32, vp, u32]),
        "vmbcore_channel_ring_bytes": (u32, [vp, u8p, u32, u32p]),
    }
    missing = [name for name in prototypes if not hasattr(lib, name)]
    if missing:
        raise LibraryError(
            f"{lib._name} does not export the vmbcore.h ABI: {', '.join(missing)} missing"
        )
    for name, (restype, argtypes) in prototypes.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


def load_library(path: str | os.PathLike[str]) -> ctypes.CDLL:
    """Loads ``path`` and declares the ``vmbcore.h`` prototypes on it. Raises
    :class:`LibraryError` naming the path when it is no loadable shared library or lacks a
    function of the ABI."""
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as error:
        raise LibraryError(f"cannot load {path} as a shared library: {error}") from error
    _declare(lib)
    return lib


class LibraryError(ValueError):
    """A library that cannot serve as a target: not loadable, or lacking part of the ABI."""


class TargetError(RuntimeError):
    """A harness call failed in a way the target interface has no result for."""


class TargetCrashed(Exception):
    """The target died (``kind == "crash"``) or did not answer in time (``kind == "hang"``).

    ``calls`` lists the calls made on an isolated target since its worker last started, the
    fatal one last, as ``(method, args)`` (empty in process); ``stderr`` is the end of what the
    worker wrote there (a Rust panic message, say); the target's state is lost. The suite's
    runner reads ``kind`` and gives the verdict of that name.
    """

    def __init__(
        self,
        kind: str,
        detail: str,
        calls: list[tuple[str, tuple[Any, ...]]],
        stderr: str = "",
    ) -> None:
        super().__init__(kind, detail, calls)
        self.kind = kind
        self.detail = detail
        self.calls = calls
        self.stderr = stderr

    def __str__(self) -> str:
        said = f"; the worker's stderr ends: {self.stderr}" if self.stderr else ""
        if not self.calls:
            return f"{self.kind}: {self.detail}{said}"
        last = f"; last call {_show_call(self.calls[-1])}"
        return f"{self.kind}: {self.detail} after {len(self.calls)} call(s){last}{said}"


class ImpossibleResult(TargetCrashed):
    """The library returned something no correct library can: a length larger than the
    buffer it was given or than any ring, a NULL or duplicate handle on success, a completion
    with more bytes than the host ever sent. The adapter reads nothing on the strength of it
    and reports a ``crash`` naming the function (the library's memory may be corrupt)."""

    def __init__(
        self,
        detail: str,
        calls: list[tuple[str, tuple[Any, ...]]] | None = None,
        stderr: str = "",
    ) -> None:
        super().__init__("crash", detail, [] if calls is None else calls, stderr)


def _show_value(value: Any) -> str:
    """Ints in hex, also inside the MDL chain's tuples; long bytes cut short."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#x}"
    if isinstance(value, tuple):
        inner = ", ".join(_show_value(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)[:60]


def _show_call(call: tuple[str, tuple[Any, ...]]) -> str:
    method, args = call
    return f"{method}({', '.join(_show_value(a) for a in args)})"


def _check_path(path: object) -> str:
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"the library path must be a str or os.PathLike, not {path!r}")
    text = os.fspath(path)
    if not isinstance(text, str) or not text:
        raise ValueError(f"the library path must be a non-empty text path, not {path!r}")
    return text


def _check_name(name: object) -> str | None:
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a str or None, not {name!r}")
    return name


def _check_capabilities(capabilities: object) -> frozenset[str]:
    if isinstance(capabilities, frozenset | set | list | tuple):
        items: frozenset[Any] = frozenset(capabilities)
        if all(isinstance(c, str) for c in items):
            return items
    raise TypeError(f"capabilities must be a set of str, not {capabilities!r}")


def check_seconds(name: str, value: object) -> float:
    """``value`` as seconds: a finite number in (0, :data:`MAX_TIMEOUT`]; TypeError or
    ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    seconds = float(value)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT:
        raise ValueError(
            f"{name} must be a finite number of seconds above 0 and at most {MAX_TIMEOUT:g}, "
            f"not {value!r}"
        )
    return seconds


class NativeTarget:
    """The target interface over a shared library exporting the ``vmbcore.h`` ABI.

    Nothing the library returns is trusted: lengths are checked against the capacity given
    and the channel's ring, handles against the live ones, completion-routine calls against
    what the host sent; an impossible value raises :class:`ImpossibleResult` naming the
    function, before the adapter reads anything on the strength of it.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        capabilities: frozenset[str] = DEFAULT_CAPABILITIES,
        library: ctypes.CDLL | None = None,
    ) -> None:
        self.path = _check_path(path)
        self.name = _check_name(name) or f"native:{self.path}"
        self.capabilities = _check_capabilities(capabilities)
        if library is not None and not isinstance(library, ctypes.CDLL):
            raise TypeError(f"library must be a ctypes.CDLL from load_library, not {library!r}")
        # ``library``: one already loaded with load_library, shared by the worker's targets.
        self._lib = library if library is not None else load_library(self.path)
        self._completions: list[tuple[int, int, bytes]] = []
        # Kept alive as long as the target: the library holds a pointer to it.
        self._routine = COMPLETION_ROUTINE(self._on_complete)
        #: Live channels (in creation order) and their ring data sizes.
        self._rings: dict[int, int] = {}
        #: Packets allocated and not freed.
        self._packets: set[int] = set()
        # Per packet: the buffer and MDL memory of its outstanding send.
        self._keepalive: dict[int, list[object]] = {}
        self._scratch = (ctypes.c_uint8 * 0x10000)()
        #: The most bytes the host has completed a packet with: a routine's Length bound.
        self._largest_completion = 0
        #: What the completion routine found impossible, raised when the library returns.
        self._violation: str | None = None
        self._closed = False

    # -- the completion routine --------------------------------------------------------

    def _on_complete(
        self, packet: int | None, status: int, buffer: int | None, length: int
    ) -> None:
        # An exception cannot cross the library: the violation is raised when it returns.
        if self._violation is not None:
            return
        handle = packet or 0
        if length > self._largest_completion:
            self._violation = (
                f"called the completion routine of packet {handle:#x} with Length {length:#x}, "
                f"more than the {self._largest_completion:#x} bytes the host ever completed "
                "a packet with: an impossible length"
            )
            return
        if len(self._completions) >= MAX_PENDING_COMPLETIONS:
            self._violation = (
                f"called the completion routine more than {MAX_PENDING_COMPLETIONS} times "
                "between two collections: an impossible count"
            )
            return
        data = ctypes.string_at(buffer, length) if buffer and length else b""
        self._completions.append((handle, status & UINT32_MAX, data))
        self._keepalive.pop(handle, None)

    def _invoke(self, function: Any, *args: Any) -> Any:
        """Calls ``function`` of the library; raises what its completion-routine calls found
        impossible."""
        result = function(*args)
        if self._violation is not None:
            violation, self._violation = self._violation, None
            raise ImpossibleResult(f"{function.__name__} {violation}")
        return result

    # -- channel ------------------------------------------------------------------------

    def _status(self, what: str, status: int) -> None:
        if status != STATUS_SUCCESS:
            raise TargetError(f"{what} failed with NTSTATUS {status:#010x}")

    def create_channel(self, ring_data_size: int) -> int:
        _check_uint("ring_data_size", ring_data_size, UINT32_MAX)
        out = ctypes.c_void_p()
        function = self._lib.vmbcore_channel_create
        status = self._invoke(function, ring_data_size, ctypes.byref(out))
        self._status(f"vmbcore_channel_create({ring_data_size:#x})", status)
        channel = out.value
        if not channel:
            raise ImpossibleResult(
                "vmbcore_channel_create returned STATUS_SUCCESS and a NULL channel"
            )
        if channel in self._rings:
            raise ImpossibleResult(
                f"vmbcore_channel_create returned channel {channel:#x}, "
                "which is already a live channel of this target"
            )
        self._rings[channel] = ring_data_size
        return channel

    def open_channel(self, channel: int) -> None:
        status = self._invoke(self._lib.vmbcore_channel_open, channel)
        self._status("vmbcore_channel_open", status)

    def disable_channel(self, channel: int) -> None:
        status = self._invoke(self._lib.vmbcore_channel_disable, channel)
        self._status("vmbcore_channel_disable", status)

    # -- packets ------------------------------------------------------------------------

    def allocate_packet(self, channel: int) -> int | None:
        packet = self._invoke(self._lib.VmbPacketAllocate, channel)
        if not packet:
            return None
        if packet in self._packets:
            raise ImpossibleResult(
                f"VmbPacketAllocate returned packet {packet:#x}, "
                "which is already allocated and not freed"
            )
        self._packets.add(packet)
        self._invoke(self._lib.VmbPacketSetCompletionRoutine, packet, self._routine)
        return int(packet)

    def free_packet(self, packet: int) -> None:
        # The keepalive stays until completion: freeing an outstanding packet is a contract
        # violation the library may ignore, and it may still read the memory.
        self._packets.discard(packet)
        self._invoke(self._lib.VmbPacketFree, packet)

    def send_with_external_mdl(
        self,
        packet: int,
        buffer: bytearray | None,
        buffer_length: int,
        mdl: MdlChainArg | None,
        mdl_offset: int,
        mdl_length: int,
        flags: int,
    ) -> int:
        for name, value in (
            ("BufferLength", buffer_length),
            ("MdlOffset", mdl_offset),
            ("MdlLength", mdl_length),
            ("Flags", flags),
        ):
            _check_uint(name, value, UINT32_MAX)
        keep: list[object] = []
        buffer_address: int | None = None
        if buffer is not None:
            if buffer_length > len(buffer):
                raise ValueError(
                    f"BufferLength {buffer_length} exceeds the {len(buffer)}-byte buffer"
                )
            if isinstance(buffer, bytearray):
                # The caller's own memory: a target that reads late sees later changes.
                memory: ctypes.Array[ctypes.c_char] = (ctypes.c_char * len(buffer)).from_buffer(
                    buffer
                )
            else:
                memory = ctypes.create_string_buffer(bytes(buffer), max(len(buffer), 1))
            keep.append(memory)
            buffer_address = ctypes.addressof(memory)
        mdl_address: int | None = None
        if mdl is not None:
            mdl_address, mdl_keep = build_mdl_chain(mdl)
            keep.extend(mdl_keep)
        status = int(
            self._invoke(
                self._lib.VmbPacketSendWithExternalMdl,
                packet, buffer_address, buffer_length, mdl_address, mdl_offset, mdl_length, flags,
            )
        )
        if status == STATUS_SUCCESS:
            self._keepalive[packet] = keep
        return status & UINT32_MAX

    # -- host side ------------------------------------------------------------------------

    def _read(self, function: Any, channel: int, limit: int, what: str) -> bytes:
        """Calls a ``(channel, out, capacity, *out_length)`` function, growing the scratch
        buffer on STATUS_BUFFER_TOO_SMALL up to ``limit`` bytes (the most ``what`` can hold).
        Reads at most the capacity given; a length past it or past ``limit`` is an
        :class:`ImpossibleResult`."""
        name = function.__name__
        for _ in range(3):
            capacity = min(len(self._scratch), limit)
            length = ctypes.c_uint32(0)
            out = ctypes.cast(self._scratch, ctypes.POINTER(ctypes.c_uint8))
            status = self._invoke(function, channel, out, capacity, ctypes.byref(length))
            needed = length.value
            if status == STATUS_BUFFER_TOO_SMALL:
                if needed <= capacity:
                    raise ImpossibleResult(
                        f"{name} returned STATUS_BUFFER_TOO_SMALL with out_length {needed:#x}, "
                        f"but it was given {capacity:#x} bytes"
                    )
                if needed > limit:
                    raise ImpossibleResult(
                        f"{name} asked for {needed:#x} bytes, more than {what} can hold "
                        f"({limit:#x} bytes): an impossible length"
                    )
                self._scratch = (ctypes.c_uint8 * needed)()
                continue
            self._status(name, status)
            if needed > capacity:
                raise ImpossibleResult(
                    f"{name} reported out_length {needed:#x}, more than the {capacity:#x} "
                    "bytes it was given: an impossible length"
                )
            return ctypes.string_at(self._scratch, needed)
        raise ImpossibleResult(
            f"{name} returned STATUS_BUFFER_TOO_SMALL three times, though given what it asked"
        )

    def host_take_packet(self, channel: int) -> bytes | None:
        size = self._rings.get(channel, MAX_RING_DATA_SIZE)
        data = self._read(
            self._lib.vmbcore_host_take_packet, channel, size,
            f"a packet in a {size:#x}-byte ring",
        )
        return data or None

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        _check_uint("transaction_id", transaction_id, UINT64_MAX)
        _check_uint("status", status, UINT32_MAX)
        payload = bytes(data)
        _check_uint("the completion data's length", len(payload), UINT32_MAX)
        self._largest_completion = max(self._largest_completion, len(payload))
        result = self._invoke(
            self._lib.vmbcore_host_complete,
            channel, transaction_id, status, payload or None, len(payload),
        )
        self._status(f"vmbcore_host_complete({transaction_id:#x})", result)

    def completions(self) -> list[tuple[int, int, bytes]]:
        calls, self._completions = self._completions, []
        return calls

    def ring_bytes(self, channel: int) -> bytes:
        size = self._rings.get(channel, MAX_RING_DATA_SIZE)
        return self._read(
            self._lib.vmbcore_channel_ring_bytes, channel, PAGE_SIZE + size,
            f"the control page and a {size:#x}-byte ring",
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for channel in self._rings:
            self._lib.vmbcore_channel_destroy(channel)
        self._rings.clear()
        self._packets.clear()
        self._keepalive.clear()
        self._violation = None


def RustTarget() -> NativeTarget:
    """The Rust core (``adapters/rust``), in process. Build it first with
    ``python adapters/rust/build.py``; the error says so if it is missing."""
    from adapters.rust.build import library_path

    return NativeTarget(library_path(), name="rust")


# ---- isolation ----------------------------------------------------------------------------

#: Seconds one call to an isolated target may take before it counts as a hang.
DEFAULT_TIMEOUT = 10.0
#: Seconds a worker may take to start and load its library.
DEFAULT_START_TIMEOUT = 30.0


#: The methods a worker forwards: the target interface.
_FORWARDED = frozenset(
    {
        "create_channel",
        "open_channel",
        "disable_channel",
        "allocate_packet",
        "free_packet",
        "send_with_external_mdl",
        "host_take_packet",
        "host_complete",
        "completions",
        "ring_bytes",
    }
)
_HEADER = struct.Struct("<I")
#: The longest reply a worker may send: a whole ring of the largest size, with room for the
#: framing. Anything longer is a worker that lost its way (its library wrote on the pipe).
MAX_REPLY_BYTES = 2 * MAX_RING_BYTES
#: The most of a worker's error message kept.
MAX_ERROR_TEXT = 2000
_READ_CHUNK = 1 << 20


class ProtocolError(Exception):
    """A message from the worker that is not one the protocol allows."""


class _PlainUnpickler(pickle.Unpickler):
    """Only plain values (None, bool, int, bytes, str, tuple, list) may cross the pipe: a
    message naming a class or function is refused, so a library writing on the pipe cannot
    make this process run anything."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"the message names {module}.{name}")


def _write_message(stream: IO[bytes], message: object) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exact(fd: int, count: int, deadline: float | None) -> bytes | None:
    """``count`` bytes from ``fd``; None on end of file; TimeoutError past ``deadline``."""
    chunks: list[bytes] = []
    while count > 0:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
        chunk = os.read(fd, min(count, _READ_CHUNK))
        if not chunk:
            return None
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _read_message(
    fd: int, deadline: float | None, limit: int | None = None
) -> tuple[bool, Any]:
    """``(True, message)``, or ``(False, None)`` on end of file. With ``limit``, a message
    longer than that or not made of plain values raises :class:`ProtocolError`."""
    header = _read_exact(fd, _HEADER.size, deadline)
    if header is None:
        return False, None
    (length,) = _HEADER.unpack(header)
    if limit is not None and length > limit:
        raise ProtocolError(f"a {length}-byte message, more than the {limit} allowed")
    payload = _read_exact(fd, length, deadline)
    if payload is None:
        return False, None
    try:
        return True, _PlainUnpickler(io.BytesIO(payload)).load()
    except Exception as error:  # garbage can fail in many ways; all mean the same here
        raise ProtocolError(f"an unreadable message ({type(error).__name__}: {error})") from None


def _is_int(value: object, limit: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit


def _is_completion(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) == 3
        and _is_int(value[0], UINT64_MAX)
        and _is_int(value[1], UINT32_MAX)
        and isinstance(value[2], bytes)
    )


def _check_result(method: str, value: Any) -> Any:
    """``value`` if it is what ``method`` returns; ProtocolError otherwise."""
    if method == "create_channel":
        ok = _is_int(value, UINT64_MAX) and value != 0
    elif method == "allocate_packet":
        ok = value is None or (_is_int(value, UINT64_MAX) and value != 0)
    elif method == "send_with_external_mdl":
        ok = _is_int(value, UINT32_MAX)
    elif method == "host_take_packet":
        ok = value is None or (isinstance(value, bytes) and value != b"")
    elif method == "ring_bytes":
        ok = isinstance(value, bytes)
    elif method == "completions":
        ok = isinstance(value, list) and all(_is_completion(c) for c in value)
    else:
        ok = value is None
    if not ok:
        raise ProtocolError(f"{method} answered {_show_value(value)}")
    return value


def _unpack_reply(reply: Any) -> tuple[str, Any]:
    """``(kind, value)`` of a worker's reply; ProtocolError if it has another shape."""
    if not (isinstance(reply, tuple) and len(reply) == 2 and isinstance(reply[0], str)):
        raise ProtocolError(f"a reply of the wrong shape: {_show_value(reply)}")
    kind, value = reply
    if kind == "ok":
        return kind, value
    if kind == "impossible" and isinstance(value, str):
        return kind, value[:MAX_ERROR_TEXT]
    if (
        kind == "error"
        and isinstance(value, tuple)
        and len(value) == 2
        and all(isinstance(v, str) for v in value)
    ):
        return kind, (value[0][:100], value[1][:MAX_ERROR_TEXT])
    raise ProtocolError(f"a reply of the wrong shape: {_show_value(reply)}")


#: The exceptions a worker's target raises that are raised here as themselves: the caller's
#: bad arguments (ValueError, TypeError) and the harness's failures (TargetError).
_REBUILT: dict[str, type[Exception]] = {
    "TargetError": TargetError,
    "ValueError": ValueError,
    "TypeError": TypeError,
    "AttributeError": AttributeError,
}


def _rebuild_error(type_name: str, message: str) -> Exception:
    """The parent's copy of an exception the worker's target raised."""
    kind = _REBUILT.get(type_name)
    if kind is not None:
        return kind(message)
    return TargetError(f"{type_name}: {message}")


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "the worker stopped answering"
    if returncode < 0:
        try:
            return f"the worker was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"the worker was killed by signal {-returncode}"
    return f"the worker exited with status {returncode}"


class _Worker:
    """One worker process for one library, serving any number of :class:`IsolatedTarget`
    objects, each under its own id. ``generation`` changes when a process starts or stops, so
    that a target can tell that the process holding its handles has gone."""

    def __init__(self, path: str, start_timeout: float) -> None:
        self.path = path
        self.start_timeout = start_timeout
        self.generation = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._next_id = 0
        self._lock = threading.Lock()
        self.last_stderr = ""

    def new_id(self) -> int:
        """Starts the process if none is running; a fresh target id in it."""
        if self._process is None or self._process.poll() is not None:
            self.stop()
            self._start()
        self._next_id += 1
        return self._next_id

    def _start(self) -> None:
        # Closed by stop(), which outlives this function.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--worker", self.path],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self._process = process
        self.generation += 1
        assert process.stdout is not None
        try:
            ok, ready = _read_message(
                process.stdout.fileno(), time.monotonic() + self.start_timeout, MAX_REPLY_BYTES
            )
        except (TimeoutError, ProtocolError):
            ok, ready = False, None
        if not ok:
            detail = self.stop()
            raise TargetCrashed(
                "crash", f"the worker failed to start: {detail}", [], self.last_stderr
            )
        if ready != ("ready", None):
            self.stop()
            said = ready[1] if isinstance(ready, tuple) and len(ready) == 2 else ready
            raise TargetError(
                f"the worker could not load {self.path}: {str(said)[:MAX_ERROR_TEXT]}"
            )

    def request(self, message: tuple[Any, ...], timeout: float) -> tuple[bool, Any]:
        """One request and its reply: ``(True, reply)``, or ``(False, None)`` if the worker
        died. Raises TimeoutError when no reply comes within ``timeout`` seconds, and
        ProtocolError for a reply longer than :data:`MAX_REPLY_BYTES` or not plain values."""
        with self._lock:
            process = self._process
            if process is None:
                return False, None
            assert process.stdin is not None and process.stdout is not None
            try:
                _write_message(process.stdin, message)
                return _read_message(
                    process.stdout.fileno(), time.monotonic() + timeout, MAX_REPLY_BYTES
                )
            except (TimeoutError, ProtocolError):
                raise
            except OSError:  # a broken pipe: the worker is gone
                return False, None

    def _stderr_tail(self) -> str:
        """The last 1000 bytes the worker wrote to stderr."""
        if self._stderr is None:
            return ""
        try:
            size = self._stderr.seek(0, os.SEEK_END)
            self._stderr.seek(max(0, size - 1000))
            return self._stderr.read(1000).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def stop(self) -> str:
        """Kills the process (if alive) and returns how it ended; keeps the end of its stderr
        in ``last_stderr``."""
        process, self._process = self._process, None
        if process is None:
            return "no worker"
        self.generation += 1  # the targets attached to this process lose their handles
        if process.poll() is None:
            process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        detail = _describe_exit(process.returncode)
        self.last_stderr = self._stderr_tail()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        return detail

    def shutdown(self) -> None:
        """Asks the process to exit (closing its targets), then makes sure it has."""
        process = self._process
        if process is not None and process.poll() is None and process.stdin is not None:
            try:
                _write_message(process.stdin, (0, "shutdown", ()))
                process.wait(timeout=5.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()


#: The shared workers: one per library file (its real path and modification time, so that a
#: rebuilt library gets a new worker).
_POOL: dict[tuple[str, int | None], _Worker] = {}
_POOL_LOCK = threading.Lock()


def _shared_worker(path: str, start_timeout: float) -> _Worker:
    real = os.path.realpath(path)
    try:
        stamp: int | None = os.stat(real).st_mtime_ns
    except OSError:
        stamp = None
    with _POOL_LOCK:
        worker = _POOL.get((real, stamp))
        if worker is None:
            worker = _POOL[(real, stamp)] = _Worker(path, start_timeout)
        return worker


def shutdown_workers() -> None:
    """Stops every shared worker. They end with this process anyway (their input pipe
    closes); this is for callers that want them gone sooner."""
    with _POOL_LOCK:
        workers = list(_POOL.values())
        _POOL.clear()
    for worker in workers:
        worker.shutdown()


atexit.register(shutdown_workers)


class IsolatedTarget:
    """A :class:`NativeTarget` in a worker process; see the module docstring.

    ``shared=True`` (the default) runs the target in the pooled worker of its library, next to
    other targets on that library; ``shared=False`` gives it a worker of its own, started on
    its first call and stopped by :meth:`close` (a fresh library instance, at the cost of a
    process start per target).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        timeout: float = DEFAULT_TIMEOUT,
        *,
        name: str | None = None,
        capabilities: frozenset[str] = DEFAULT_CAPABILITIES,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        shared: bool = True,
    ) -> None:
        self.path = _check_path(path)
        self.timeout = check_seconds("timeout", timeout)
        start_timeout = check_seconds("start_timeout", start_timeout)
        self.name = _check_name(name) or f"native:{self.path}"
        self.capabilities = _check_capabilities(capabilities)
        if not isinstance(shared, bool):
            raise TypeError(f"shared must be True or False, not {shared!r}")
        self.shared = shared
        self._worker = (
            _shared_worker(self.path, start_timeout)
            if shared
            else _Worker(self.path, start_timeout)
        )
        self._id: int | None = None
        self._generation = 0
        self._calls: list[tuple[str, tuple[Any, ...]]] = []
        #: How many times a crash or hang of this target stopped its worker.
        self.restarts = 0

    def _lost(self, kind: str, what: str | None) -> TargetCrashed:
        """Stops the worker after a crash or hang of this target; the exception to raise."""
        calls = self._calls
        detail = self._worker.stop()
        self._id = None
        self.restarts += 1
        message = detail if what is None else f"{what} ({detail})"
        return TargetCrashed(kind, message, calls, self._worker.last_stderr)

    def _impossible(self, detail: str) -> ImpossibleResult:
        """Stops the worker after its library returned something impossible (its memory may
        be corrupt, so nothing more is asked of it); the exception to raise."""
        calls = self._calls
        self._worker.stop()
        self._id = None
        self.restarts += 1
        return ImpossibleResult(detail, calls, self._worker.last_stderr)

    def _call(self, method: str, *args: Any) -> Any:
        worker = self._worker
        if self._id is not None and worker.generation != self._generation:
            # Another target on the shared worker crashed or hung it: our handles went too.
            calls, self._calls, self._id = self._calls, [], None
            raise TargetCrashed(
                "crash",
                "the shared worker was restarted after another target on it crashed or hung; "
                "this target's state is lost",
                calls,
            )
        if self._id is None:
            self._id = worker.new_id()
            self._generation = worker.generation
            self._calls = []
        self._calls.append((method, args))
        try:
            ok, reply = worker.request((self._id, method, args), self.timeout)
            if not ok:
                raise self._lost("crash", None)
            kind, value = _unpack_reply(reply)
            if kind == "ok":
                return _check_result(method, value)
        except TimeoutError:
            raise self._lost("hang", f"no answer within {self.timeout:g} s") from None
        except ProtocolError as error:
            raise self._lost("crash", f"the worker's reply was malformed: {error}") from None
        if kind == "impossible":
            raise self._impossible(value)
        raise _rebuild_error(*value)

    # -- the target interface -----------------------------------------------------------

    def create_channel(self, ring_data_size: int) -> int:
        return int(self._call("create_channel", ring_data_size))

    def open_channel(self, channel: int) -> None:
        self._call("open_channel", channel)

    def disable_channel(self, channel: int) -> None:
        self._call("disable_channel", channel)

    def allocate_packet(self, channel: int) -> int | None:
        packet = self._call("allocate_packet", channel)
        return None if packet is None else int(packet)

    def free_packet(self, packet: int) -> None:
        self._call("free_packet", packet)

    def send_with_external_mdl(
        self,
        packet: int,
        buffer: bytearray | None,
        buffer_length: int,
        mdl: MdlChainArg | None,
        mdl_offset: int,
        mdl_length: int,
        flags: int,
    ) -> int:
        # A copy of the bytes at the call crosses the process boundary (see the docstring).
        data = None if buffer is None else bytes(buffer)
        chain = None if mdl is None else tuple((bo, bc, tuple(pfns)) for bo, bc, pfns in mdl)
        return int(
            self._call(
                "send_with_external_mdl",
                packet,
                data,
                buffer_length,
                chain,
                mdl_offset,
                mdl_length,
                flags,
            )
        )

    def host_take_packet(self, channel: int) -> bytes | None:
        data = self._call("host_take_packet", channel)
        return None if data is None else bytes(data)

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        self._call("host_complete", channel, transaction_id, status, bytes(data))

    def completions(self) -> list[tuple[int, int, bytes]]:
        return list(self._call("completions"))

    def ring_bytes(self, channel: int) -> bytes:
        return bytes(self._call("ring_bytes", channel))

    def close(self) -> None:
        """Releases the target's handles in the worker. A crash or hang while doing so stops
        the worker (the next target gets a fresh one) and is not reported: the suite has its
        verdict by then."""
        target_id, self._id = self._id, None
        worker = self._worker
        if target_id is not None and worker.generation == self._generation:
            ok = False
            with contextlib.suppress(TimeoutError):
                ok, _reply = worker.request((target_id, "close", ()), min(self.timeout, 5.0))
            if not ok:
                worker.stop()
        if not self.shared:
            worker.shutdown()

    def __enter__(self) -> IsolatedTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "shared", True):
            self._worker.stop()


def _worker_main(path: str) -> int:
    """The worker loop: one request ``(target id, method, args)``, one reply, until
    ``shutdown`` or end of input. A target is created on the first call naming its id."""
    # Private copies of the protocol pipes; the library's own stdout goes to stderr.
    requests = os.dup(0)
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    # No faulthandler: its traceback would always show this loop; the calls say more.
    try:
        library = load_library(path)
    except LibraryError as error:  # its message names the path and what is wrong
        _write_message(replies, ("error", str(error)))
        return 1
    except Exception as error:
        _write_message(replies, ("error", f"{type(error).__name__}: {error}"))
        return 1
    _write_message(replies, ("ready", None))
    targets: dict[int, NativeTarget] = {}
    while True:
        ok, message = _read_message(requests, None)
        if not ok:
            break
        target_id, method, args = message
        if method == "shutdown":
            break
        try:
            if method == "close":
                closing = targets.pop(target_id, None)
                if closing is not None:
                    closing.close()
                result = None
            elif method not in _FORWARDED:
                raise AttributeError(f"the worker does not forward {method!r}")
            else:
                target = targets.get(target_id)
                if target is None:
                    target = targets[target_id] = NativeTarget(path, library=library)
                if method == "send_with_external_mdl" and args[1] is not None:
                    args = (args[0], bytearray(args[1]), *args[2:])
                result = getattr(target, method)(*args)
            reply: tuple[str, Any] = ("ok", result)
        except ImpossibleResult as error:
            reply = ("impossible", error.detail)
        except Exception as error:
            # By name: classes defined here are __main__.X in the worker.
            reply = ("error", (type(error).__name__, str(error)))
        _write_message(replies, reply)
    for target in targets.values():
        target.close()
    return 0


# ---- target names -------------------------------------------------------------------------


def _probe_isolated(path: str, start_timeout: float) -> None:
    """Starts the shared worker of ``path`` (so it loads the library); ValueError if it
    cannot. The worker stays up for the targets that follow."""
    worker = _shared_worker(path, start_timeout)
    try:
        worker.new_id()
    except TargetError as error:
        raise ValueError(str(error)) from None
    except TargetCrashed as error:
        raise ValueError(f"loading {path} in a worker process failed: {error.detail}") from None


def resolve(spec: str, options: dict[str, Any]) -> tuple[str, Any]:
    """``(display name, factory)`` for ``rust`` and ``native:PATH`` (``conformance.targets``).

    * ``rust``: the built Rust core, in this process; ``options["isolate"] is True`` runs it in
      a worker process instead.
    * ``native:PATH``: the library at PATH, in a worker process unless
      ``options["isolate"] is False``.

    Isolated targets share one worker process per library (:class:`IsolatedTarget` with
    ``shared=True``): the suite makes a fresh target for every case and example, hundreds a run,
    and a process start each would cost more than the run. Each target has its own channels and
    packets in that process, but they share one instance of the library: a library with global
    state (a counter, a cache, a leak) carries it from one case to the next, exactly as it does
    in process. The worker is replaced only after a crash or hang. ``options["timeout"]`` is how
    long one call may take (default :data:`DEFAULT_TIMEOUT`) before it counts as a hang.

    Raises ValueError with a message for the user when the library is missing, is not a shared
    library, or lacks part of the ABI, or when ``timeout`` is not a finite number of seconds
    in (0, :data:`MAX_TIMEOUT`] or ``isolate`` is not True, False or None.
    """
    kind, separator, rest = spec.partition(":")
    isolate = options.get("isolate")
    if isolate is not None and not isinstance(isolate, bool):
        raise ValueError(f"the isolate option must be true, false or unset, not {isolate!r}")
    timeout = options.get("timeout")
    try:
        timeout = DEFAULT_TIMEOUT if timeout is None else check_seconds("the timeout", timeout)
    except TypeError as error:  # a usage error all the same
        raise ValueError(str(error)) from None

    if kind == "rust":
        if separator:
            raise ValueError(f"target {spec!r}: `rust` takes no argument")
        from adapters.rust.build import library_path

        try:
            path = str(library_path())
        except FileNotFoundError as error:
            raise ValueError(str(error)) from None
        if isolate is True:
            _probe_isolated(path, DEFAULT_START_TIMEOUT)
            name = "rust (isolated)"
            return name, lambda: IsolatedTarget(path, timeout, name=name)
        load_library(path)  # LibraryError (a ValueError) names what is wrong
        return "rust", RustTarget

    if kind != "native" or not separator:
        raise ValueError(f"target {spec!r}: expected `rust` or `native:PATH`")
    if not rest:
        raise ValueError("native:PATH needs the path of a shared library after the colon")
    path = os.path.abspath(os.path.expanduser(rest))
    if not os.path.exists(path):
        raise ValueError(f"native:{rest}: no such file {path}")
    if not os.path.isfile(path):
        raise ValueError(f"native:{rest}: {path} is not a file")
    name = f"native:{rest}"
    if isolate is False:
        load_library(path)
        return name, lambda: NativeTarget(path, name=name)
    _probe_isolated(path, DEFAULT_START_TIMEOUT)
    return name, lambda: IsolatedTarget(path, timeout, name=name)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        raise SystemExit(_worker_main(sys.argv[2]))
    print(f"usage: {sys.argv[0]} --worker LIBRARY", file=sys.stderr)
    raise SystemExit(2)
