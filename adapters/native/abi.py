"""The C ABI of ``vmbcore.h`` as ctypes sees it: the NTSTATUS values and limits the adapter
uses, the Windows x64 MDL layout, the completion-routine type, and loading a library with the
prototypes declared on it. Nothing here calls the library."""

from __future__ import annotations

import array
import ctypes
import os
from collections.abc import Sequence
from typing import Any

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
#: The most completion bytes recorded and not yet collected (so that a worker's reply with
#: them stays far below its bound): as much as the largest ring holds.
MAX_PENDING_COMPLETION_BYTES = MAX_RING_BYTES

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


def check_uint(name: str, value: int, limit: int) -> int:
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
        check_uint("ByteOffset", byte_offset, UINT32_MAX)
        check_uint("ByteCount", byte_count, UINT32_MAX)
        pfn_array = array.array("Q", (check_uint("PFN", p, UINT64_MAX) for p in pfns))
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


def declare(lib: ctypes.CDLL) -> None:
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
    declare(lib)
    return lib


class LibraryError(ValueError):
    """A library that cannot serve as a target: not loadable, or lacking part of the ABI."""
