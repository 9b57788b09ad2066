"""Guard pages: the MDLs and the in-line buffer of a send laid out against inaccessible pages,
so that a library reading past what the call describes faults instead of reading heap memory.

Layout
------
Each MDL of a chain and the in-line buffer get a *region* of their own, one anonymous mapping
``[guard page][data pages, read-write][guard page]`` (guard pages are ``PROT_NONE``):

* an MDL's header and PFN array sit at the end of the data pages, so the last PFN slot's last
  byte is the last byte before the trailing guard page; the bytes of the first data page before
  the header are zero, and the leading guard page catches a read further back. The header
  starts its page only when ``0x30 + 8 * slots`` is a whole number of pages: an MDL is one
  object, the header and its PFN array contiguous (reading before the header within its page
  is not caught);
* the buffer's ``BufferLength`` bytes end right before the trailing guard page (a zero-length
  buffer is a pointer to the guard page itself: any read faults).

The OS page size is the granule (4 KiB on x86-64). Regions are pooled by size (a mapping and two
``mprotect`` calls per region otherwise): a released region of a few pages waits in a free list
for the next send. A region is released when its send's memory may no longer be read: for a
send the library accepted, when the packet's completion routine runs or the target closes;
for a rejected send, when the call returns (the same lifetime the heap memory had).

Faults
------
:func:`install_fault_handler` installs a ``SIGSEGV``/``SIGBUS`` handler (``sigaction`` through
ctypes, glibc's 64-bit layout) that reads the faulting address (``si_addr``), finds the region
whose guard page it is in (:func:`describe_address`), hands one line to a *reporter*, then puts
the previous handler back and returns: the faulting instruction runs again and faults again,
and the previous disposition (Python's faulthandler, or the default: death by the signal) does
what it always did. The isolated worker's reporter writes the line to its parent as a
``("fault", text)`` reply, which becomes a ``crash`` verdict naming the call
(:mod:`.isolated`); in process, the default reporter prints it on stderr with a hint to run
the target isolated (in process a fault ends the process).

The handler runs Python code in a signal handler. That is safe here because of where faults
happen: inside a library call made through ctypes, with the GIL released, exactly where the
library's completion-routine calls come from; the handler touches no lock of the C library. A
fault inside the C library's allocator could in principle leave its lock held; the handler
allocates only Python objects (pymalloc) to stay clear of it.

Guards need Linux (``mmap``/``mprotect``/``sigaction`` through ctypes, x86-64 or AArch64):
:data:`GUARD_AVAILABLE` says whether this platform has them.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import os
import platform
import signal
import sys
import threading
from collections.abc import Callable, Sequence

from .abi import (
    MDL_HEADER_SIZE,
    MDL_PAGES_LOCKED,
    UINT32_MAX,
    UINT64_MAX,
    MdlHeader,
    check_uint,
    span_pages,
)

#: Whether guard pages can be had here: Linux on a 64-bit platform whose glibc/musl
#: ``struct sigaction`` and ``siginfo_t`` layouts this module knows.
GUARD_AVAILABLE = sys.platform == "linux" and platform.machine() in {"x86_64", "aarch64"}

PROT_NONE = 0
PROT_READ = 1
PROT_WRITE = 2
MAP_PRIVATE = 0x02
MAP_ANONYMOUS = 0x20
SA_SIGINFO = 0x4
#: Regions of at most this many data pages are pooled, at most :data:`POOL_DEPTH` per size.
POOLED_PAGES = 16
POOL_DEPTH = 16


class GuardError(OSError):
    """Guard memory could not be mapped (or guard pages are not available here)."""


class _Libc:
    """The C library's mmap/mprotect/munmap/sigaction, declared once."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        vp, size_t, c_int = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int
        self.mmap = libc.mmap
        self.mmap.restype = vp
        self.mmap.argtypes = [vp, size_t, c_int, c_int, c_int, ctypes.c_long]
        self.mprotect = libc.mprotect
        self.mprotect.restype = c_int
        self.mprotect.argtypes = [vp, size_t, c_int]
        self.munmap = libc.munmap
        self.munmap.restype = c_int
        self.munmap.argtypes = [vp, size_t]
        self.sigaction = libc.sigaction
        self.sigaction.restype = c_int
        self.sigaction.argtypes = [c_int, vp, vp]


_libc: _Libc | None = None


def _c() -> _Libc:
    global _libc
    if not GUARD_AVAILABLE:
        raise GuardError("guard pages need Linux on x86-64 or AArch64")
    if _libc is None:
        _libc = _Libc()
    return _libc


PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 0x1000


def _pages(size: int) -> int:
    """Whole pages holding ``size`` bytes (at least one)."""
    return max(1, -(-size // PAGE))


class Region:
    """One mapping ``[guard][data_pages pages][guard]``. ``data_start``/``data_end`` bound the
    read-write part; ``label`` says what it holds while a call describes it (None in the
    pool); ``fresh`` is True until its memory is first used (an anonymous mapping is zero)."""

    __slots__ = ("base", "data_end", "data_pages", "data_start", "fresh", "label")

    def __init__(self, data_pages: int) -> None:
        libc = _c()
        length = (data_pages + 2) * PAGE
        base = libc.mmap(None, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if base is None or base == ctypes.c_void_p(-1).value:
            raise GuardError(ctypes.get_errno(), f"mmap of {length} bytes failed")
        if libc.mprotect(int(base) + PAGE, data_pages * PAGE, PROT_READ | PROT_WRITE) != 0:
            errno = ctypes.get_errno()
            libc.munmap(base, length)
            raise GuardError(errno, "mprotect of guarded memory failed")
        self.base: int = int(base)
        self.data_pages = data_pages
        self.data_start = self.base + PAGE
        self.data_end = self.data_start + data_pages * PAGE
        self.label: str | None = None
        self.fresh = True

    @property
    def end(self) -> int:
        return self.data_end + PAGE

    def unmap(self) -> None:
        if self.base:
            _c().munmap(self.base, (self.data_pages + 2) * PAGE)
            self.base = 0


class _Pool:
    """Every mapped region (for the fault handler) and the free ones, by data page count."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.free: dict[int, list[Region]] = {}
        #: Every mapped region, in use or free, by base address.
        self.mapped: dict[int, Region] = {}

    def take(self, size: int, label: str) -> Region:
        pages = _pages(size)
        with self.lock:
            free = self.free.get(pages)
            region = free.pop() if free else None
        if region is None:
            region = Region(pages)
            with self.lock:
                self.mapped[region.base] = region
        region.label = label
        return region

    def give_back(self, region: Region) -> None:
        region.label = None
        region.fresh = False
        with self.lock:
            free = self.free.setdefault(region.data_pages, [])
            if region.data_pages <= POOLED_PAGES and len(free) < POOL_DEPTH:
                free.append(region)
                return
            self.mapped.pop(region.base, None)
        region.unmap()

    def find(self, address: int) -> Region | None:
        # No lock: called from the fault handler (a copy of the values is atomic under the GIL).
        for region in list(self.mapped.values()):
            if region.base <= address < region.end:
                return region
        return None


_POOL = _Pool()


class Guarded:
    """The regions of one send, released together by :meth:`release` (idempotent)."""

    __slots__ = ("regions",)

    def __init__(self) -> None:
        self.regions: list[Region] = []

    def release(self) -> None:
        regions, self.regions = self.regions, []
        for region in regions:
            _POOL.give_back(region)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # at interpreter exit the pool may be gone
            self.release()


def _zero_before(region: Region, start: int) -> None:
    if not region.fresh and start > region.data_start:
        ctypes.memset(region.data_start, 0, start - region.data_start)


def place_buffer(guarded: Guarded, data: bytes | bytearray, length: int, what: str) -> int:
    """Copies the first ``length`` bytes of ``data`` so that they end right before a guard
    page; returns their address (a zero-length buffer points at the guard page itself)."""
    region = _POOL.take(length, f"the in-line buffer ({length:#x} bytes) {what}")
    guarded.regions.append(region)
    start = region.data_end - length
    _zero_before(region, start)
    if length:
        source = (ctypes.c_char * length).from_buffer_copy(memoryview(data)[:length])
        ctypes.memmove(start, source, length)
    region.fresh = False
    return start


def place_mdl_chain(
    guarded: Guarded, chain: Sequence[tuple[int, int, Sequence[int]]], what: str
) -> int:
    """Lays out ``chain`` as Windows x64 MDLs, each in a region of its own with its PFN array
    ending right before a guard page; returns the first MDL's address. Each MDL gets
    ``max(len(pfns), ADDRESS_AND_SIZE_TO_SPAN_PAGES)`` PFN slots (missing ones are 0), as
    :func:`~adapters.native.abi.build_mdl_chain` does."""
    items = list(chain)
    next_address = 0
    for index in range(len(items) - 1, -1, -1):
        byte_offset, byte_count, pfns = items[index]
        check_uint("ByteOffset", byte_offset, UINT32_MAX)
        check_uint("ByteCount", byte_count, UINT32_MAX)
        pfn_array = array.array("Q", (check_uint("PFN", p, UINT64_MAX) for p in pfns))
        slots = max(len(pfn_array), span_pages(byte_offset, byte_count))
        size = MDL_HEADER_SIZE + 8 * slots
        region = _POOL.take(
            size, f"MDL {index} of the chain ({slots} PFN slot{'s' if slots != 1 else ''}) {what}"
        )
        guarded.regions.append(region)
        start = region.data_end - size
        _zero_before(region, start)
        header = MdlHeader()
        header.Next = next_address or None
        header.Size = size if size <= 0x7FFF else 0  # CSHORT; not read by the ABI
        header.MdlFlags = MDL_PAGES_LOCKED
        header.ByteCount = byte_count
        header.ByteOffset = byte_offset
        ctypes.memmove(start, ctypes.addressof(header), MDL_HEADER_SIZE)
        pfns_at = start + MDL_HEADER_SIZE
        if pfn_array:
            address, _ = pfn_array.buffer_info()
            ctypes.memmove(pfns_at, address, 8 * len(pfn_array))
        if not region.fresh and slots > len(pfn_array):
            ctypes.memset(pfns_at + 8 * len(pfn_array), 0, 8 * (slots - len(pfn_array)))
        region.fresh = False
        next_address = start
    return next_address


def describe_address(address: int) -> str:
    """Where ``address`` lies with respect to the guarded regions, in words."""
    region = _POOL.find(address)
    if region is None:
        return (
            f"at {address:#x}, in no guard page (not a read just past an MDL or the buffer: "
            "a stray pointer, or memory of a send released long ago)"
        )
    label = region.label or "memory of a send already completed or rejected (released)"
    if address < region.data_start:
        side = f"{region.data_start - address:#x} bytes before the page holding"
    elif address >= region.data_end:
        side = f"{address - region.data_end:#x} bytes past the end of"
    else:  # cannot fault: the data pages are read-write
        side = "inside"
    return f"at {address:#x}, in a guard page: {side} {label}"


#: Where the handler's line goes: set by :func:`install_fault_handler`.
_reporter: Callable[[str], None] | None = None
_installed: dict[int, ctypes.Array[ctypes.c_char]] = {}
_HANDLER_TYPE = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
#: struct sigaction (glibc and musl, 64-bit Linux): handler, 128-byte mask, flags, restorer.
_SIGACTION_SIZE = 8 + 128 + 8 + 8
_SIGACTION_FLAGS = 8 + 128
#: siginfo_t: si_addr at +16 for SIGSEGV and SIGBUS on 64-bit Linux.
_SI_ADDR = 16


def _unknown_address() -> str:
    """What can be said without the faulting address: the guarded regions in use."""
    labels = [r.label for r in list(_POOL.mapped.values()) if r.label is not None]
    return "at an unknown address; the MDLs and buffers in guarded memory: " + (
        "; ".join(labels) if labels else "none"
    )


def _on_fault(signal_number: int, info: int | None, _context: int | None) -> None:
    try:
        address = ctypes.c_uint64.from_address(info + _SI_ADDR).value if info else None
        try:
            name = signal.Signals(signal_number).name
        except ValueError:
            name = f"signal {signal_number}"
        where = _unknown_address() if address is None else describe_address(address)
        line = (
            f"{name}: the target touched memory outside the MDLs and buffer the call "
            f"described: {where}"
            if address is not None and _POOL.find(address) is not None
            else f"{name} {where}"
        )
        if _reporter is not None:
            _reporter(line)
    finally:
        # The previous handler back; returning runs the faulting instruction again.
        previous = _installed.pop(signal_number, None)
        if previous is not None:
            _c().sigaction(signal_number, ctypes.addressof(previous), None)


_handler = _HANDLER_TYPE(_on_fault)


def stderr_reporter(line: str) -> None:
    """The in-process reporter: the line and what to do, on stderr."""
    os.write(
        2,
        (
            f"\nvmbspec: {line}.\nvmbspec: a fault ends an in-process run; run the target "
            "isolated (--isolate, the default for native:PATH) to get a crash verdict naming "
            "the call and go on, or pass --no-guard to run without guard pages.\n"
        ).encode("utf-8", "replace"),
    )


def install_fault_handler(reporter: Callable[[str], None] | None = None) -> None:
    """Installs the SIGSEGV/SIGBUS handler, unless it is the one in place (if something
    replaced it since, it is installed again). ``reporter`` receives the handler's line; None
    keeps the one set before, or :func:`stderr_reporter`. Raises :class:`GuardError` where
    guard pages are not available."""
    global _reporter
    libc = _c()
    if reporter is not None or _reporter is None:
        _reporter = reporter or stderr_reporter
    ours = ctypes.cast(_handler, ctypes.c_void_p).value
    for signal_number in (signal.SIGSEGV, signal.SIGBUS):
        current = ctypes.create_string_buffer(_SIGACTION_SIZE)
        if libc.sigaction(signal_number, None, ctypes.addressof(current)) == 0 and (
            ctypes.c_void_p.from_buffer(current).value == ours
        ):
            continue
        action = ctypes.create_string_buffer(_SIGACTION_SIZE)
        ctypes.c_void_p.from_buffer(action).value = ours
        ctypes.c_int.from_buffer(action, _SIGACTION_FLAGS).value = SA_SIGINFO
        previous = ctypes.create_string_buffer(_SIGACTION_SIZE)
        if libc.sigaction(signal_number, ctypes.addressof(action), ctypes.addressof(previous)):
            raise GuardError(ctypes.get_errno(), "sigaction failed")
        _installed[signal_number] = previous
