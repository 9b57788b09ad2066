"""The target interface over a shared library loaded in this process (:class:`NativeTarget`),
and :func:`RustTarget`, the same over the Rust core.

Nothing the library returns is trusted: lengths are checked against the capacity the adapter
gave and the channel's ring, handles against the live ones, completion-routine calls against
the bytes the host sent; an impossible value raises :class:`ImpossibleResult` naming the
function before the adapter reads or allocates anything on the strength of it.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from .abi import (
    COMPLETION_ROUTINE,
    DEFAULT_CAPABILITIES,
    MAX_PENDING_COMPLETION_BYTES,
    MAX_PENDING_COMPLETIONS,
    MAX_RING_DATA_SIZE,
    PAGE_SIZE,
    STATUS_BUFFER_TOO_SMALL,
    STATUS_SUCCESS,
    UINT32_MAX,
    UINT64_MAX,
    MdlChainArg,
    build_mdl_chain,
    check_uint,
    load_library,
)
from .arguments import check_capabilities, check_guard, check_name, check_path
from .errors import ImpossibleResult, TargetError
from .guard import Guarded, install_fault_handler, place_buffer, place_mdl_chain


def _drop(keep: list[object] | None) -> None:
    """Releases the guarded memory among ``keep`` (the rest is left to the collector)."""
    for item in keep or ():
        if isinstance(item, Guarded):
            item.release()


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
        guard: bool | None = None,
    ) -> None:
        self.path = check_path(path)
        self.guard = check_guard(guard)
        if self.guard:
            install_fault_handler(None)
        self.name = check_name(name) or f"native:{self.path}"
        self.capabilities = check_capabilities(capabilities)
        if library is not None and not isinstance(library, ctypes.CDLL):
            raise TypeError(f"library must be a ctypes.CDLL from load_library, not {library!r}")
        # ``library``: one already loaded with load_library, shared by the worker's targets.
        self._lib = library if library is not None else load_library(self.path)
        self._completions: list[tuple[int, int, bytes]] = []
        self._pending_bytes = 0
        # Kept alive as long as the target: the library holds a pointer to it.
        self._routine = COMPLETION_ROUTINE(self._on_complete)
        #: Live channels (in creation order) and their ring data sizes.
        self._rings: dict[int, int] = {}
        #: Packets allocated and not freed.
        self._packets: set[int] = set()
        # Per packet: the buffer and MDL memory of its outstanding send.
        self._keepalive: dict[int, list[object]] = {}
        # The memory of a send accepted while an earlier one of its packet was outstanding
        # (a contract violation a robust library rejects): kept until close, as it may be read.
        self._retired: list[list[object]] = []
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
        if self._pending_bytes + length > MAX_PENDING_COMPLETION_BYTES:
            self._violation = (
                f"called the completion routine with more than {MAX_PENDING_COMPLETION_BYTES:#x} "
                "bytes in all between two collections: an impossible count"
            )
            return
        data = ctypes.string_at(buffer, length) if buffer and length else b""
        self._pending_bytes += len(data)
        self._completions.append((handle, status & UINT32_MAX, data))
        _drop(self._keepalive.pop(handle, None))

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
        check_uint("ring_data_size", ring_data_size, UINT32_MAX)
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
            check_uint(name, value, UINT32_MAX)
        if buffer is not None and buffer_length > len(buffer):
            raise ValueError(f"BufferLength {buffer_length} exceeds the {len(buffer)}-byte buffer")
        if self.guard:
            keep, buffer_address, mdl_address = self._guarded_arguments(
                packet, buffer, buffer_length, mdl
            )
        else:
            keep, buffer_address, mdl_address = self._heap_arguments(buffer, mdl)
        try:
            status = int(
                self._invoke(
                    self._lib.VmbPacketSendWithExternalMdl,
                    packet, buffer_address, buffer_length, mdl_address, mdl_offset, mdl_length,
                    flags,
                )
            )
        except BaseException:
            _drop(keep)
            raise
        if status == STATUS_SUCCESS:
            earlier = self._keepalive.get(packet)
            if earlier is not None:
                self._retired.append(earlier)
            self._keepalive[packet] = keep
        else:
            _drop(keep)
        return status & UINT32_MAX

    def _guarded_arguments(
        self,
        packet: int,
        buffer: bytearray | None,
        buffer_length: int,
        mdl: MdlChainArg | None,
    ) -> tuple[list[object], int | None, int | None]:
        """The buffer and MDL chain in guarded memory: ``(keep, buffer address, MDL
        address)``."""
        guarded = Guarded()
        what = f"of the send on packet {packet:#x}"
        try:
            buffer_address = (
                None if buffer is None else place_buffer(guarded, buffer, buffer_length, what)
            )
            mdl_address = None if mdl is None else place_mdl_chain(guarded, mdl, what)
        except BaseException:
            guarded.release()
            raise
        return [guarded], buffer_address, mdl_address

    def _heap_arguments(
        self, buffer: bytearray | None, mdl: MdlChainArg | None
    ) -> tuple[list[object], int | None, int | None]:
        """The buffer (the caller's own memory) and MDL chain in ctypes heap memory."""
        keep: list[object] = []
        buffer_address: int | None = None
        if buffer is not None:
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
        return keep, buffer_address, mdl_address

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
                        f"but it was given {capacity:#x} bytes: an impossible length"
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

    def _ring_size(self, channel: int) -> int:
        """The data size of ``channel``'s ring as created, at most the ABI's largest (a library
        that accepted a larger one still gets no larger buffer); the largest for a handle this
        target did not create."""
        return min(self._rings.get(channel, MAX_RING_DATA_SIZE), MAX_RING_DATA_SIZE)

    def host_take_packet(self, channel: int) -> bytes | None:
        size = self._ring_size(channel)
        data = self._read(
            self._lib.vmbcore_host_take_packet, channel, size,
            f"a packet in a {size:#x}-byte ring",
        )
        return data or None

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        check_uint("transaction_id", transaction_id, UINT64_MAX)
        check_uint("status", status, UINT32_MAX)
        payload = bytes(data)
        check_uint("the completion data's length", len(payload), UINT32_MAX)
        self._largest_completion = max(self._largest_completion, len(payload))
        result = self._invoke(
            self._lib.vmbcore_host_complete,
            channel, transaction_id, status, payload or None, len(payload),
        )
        self._status(f"vmbcore_host_complete({transaction_id:#x})", result)

    def completions(self) -> list[tuple[int, int, bytes]]:
        calls, self._completions = self._completions, []
        self._pending_bytes = 0
        return calls

    def ring_bytes(self, channel: int) -> bytes:
        size = self._ring_size(channel)
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
        for keep in [*self._keepalive.values(), *self._retired]:
            _drop(keep)
        self._keepalive.clear()
        self._retired.clear()
        self._violation = None


def RustTarget(guard: bool | None = None) -> NativeTarget:
    """The Rust core (``adapters/rust``), in process, with guard pages unless ``guard`` is
    False. Build it first with ``python adapters/rust/build.py``; the error says so if it is
    missing."""
    from vmbspec.adapters.rust.build import library_path

    return NativeTarget(library_path(), name="rust", guard=guard)
