"""The target interface: what an implementation's adapter provides to the conformance suite.

An adapter is any object with these methods (structural typing: adapters never import this
module, so that a target cannot share code with the spec or the suite). Handles are small ints
chosen by the target. MDLs cross the interface as plain tuples so that no type is shared:

    mdl = ((byte_offset, byte_count, (pfn0, pfn1, ...)), ...)   # the chain, first MDL first

The suite owns the in-line buffer: it passes a ``bytearray`` and may change its bytes after the
call returns, to observe when a target reads them (reading A11, PAGED_BUFFER).

Host side: the suite plays the opposite endpoint. ``host_take_packet`` removes the next packet
the target wrote into the ring (without the 8-byte trailer) and returns its bytes, or ``None``
if the ring is empty. ``host_complete`` delivers a completion packet for a transaction id.

Observations: ``completions()`` returns and forgets the completion-routine calls made since the
last call, in order, as ``(packet, status, data)`` triples.

Capabilities (``Target.capabilities``), each a string from :data:`CAPABILITIES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

#: Every capability a target may declare, with what the suite does with it.
CAPABILITIES: dict[str, str] = {
    "ring-bytes": "ring_bytes(channel) returns the raw ring (control page + data area); the suite "
    "checks indices, alignment and trailers",
    "robust-contract-violations": "the target survives contract violations (reading A10: send "
    "of a queued, in-flight or freed packet; free of an outstanding packet) and rejects them "
    "with a failure status instead of crashing",
    "reads-buffer-late": "the target may read a non-paged in-line buffer when the packet leaves "
    "the queue rather than at the call (reading A11); declared so the suite mutates buffers",
}

MdlChain = Sequence[tuple[int, int, Sequence[int]]]


@runtime_checkable
class Target(Protocol):
    """What the suite calls. Every method may raise only for a broken target."""

    name: str
    capabilities: frozenset[str]

    def create_channel(self, ring_data_size: int) -> int:
        """A new channel, not yet open, whose outgoing ring has a data area of this many bytes
        (a multiple of 4096, at least 4096). Returns the channel handle."""
        ...

    def open_channel(self, channel: int) -> None:
        """Open the channel: packets queued before now are written to the ring in FIFO order."""
        ...

    def disable_channel(self, channel: int) -> None:
        """Close the channel: every outstanding packet (queued or awaiting completion) gets
        exactly one completion-routine call with a failure status."""
        ...

    def allocate_packet(self, channel: int) -> int | None:
        """VmbPacketAllocate: a packet handle, or None on failure."""
        ...

    def free_packet(self, packet: int) -> None:
        """VmbPacketFree."""
        ...

    def send_with_external_mdl(
        self,
        packet: int,
        buffer: bytearray | None,
        buffer_length: int,
        mdl: MdlChain | None,
        mdl_offset: int,
        mdl_length: int,
        flags: int,
    ) -> int:
        """VmbPacketSendWithExternalMdl; returns the NTSTATUS as an unsigned 32-bit int."""
        ...

    def host_take_packet(self, channel: int) -> bytes | None:
        """The next packet in the channel's ring (its bytes, without trailer), or None."""
        ...

    def host_complete(self, channel: int, transaction_id: int, status: int, data: bytes) -> None:
        """Deliver the opposite endpoint's completion packet for ``transaction_id``."""
        ...

    def completions(self) -> list[tuple[int, int, bytes]]:
        """Completion-routine calls since the last call: ``(packet, status, data)``."""
        ...

    def ring_bytes(self, channel: int) -> bytes:
        """The raw outgoing ring (capability ``ring-bytes``)."""
        ...

    def close(self) -> None:
        """Release everything the target holds."""
        ...
