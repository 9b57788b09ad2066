"""VmbPacketSendWithExternalMdl: decide, then build, then hand the packet to its channel.

The order of decisions, first match wins (docs/target-behaviour.md "The send call"):

1. the suite's own misuse (a value no C caller could pass: not a u32, a ``buffer_length``
   longer than the ``bytearray``) -> ValueError, because it is the suite that is broken;
2. the packet is queued, in flight or freed (reading A10) -> STATUS_INVALID_DEVICE_STATE;
3. the channel is disabled -> STATUS_DEVICE_REMOVED;
4. Flags has bits outside 0x7: ignored (reading A7 ignore), rejected with the A7=reject switch;
5. Flags lacks WAIT_FOR_COMPLETION: rejected (reading A4 a); with A4=b accepted as a packet
   that completes when written, with A4=c handled as if the flag were set;
6. Buffer NULL with BufferLength > 0 (reading A14);
7. MDL NULL with MdlOffset or MdlLength non-zero (reading A6; any NULL MDL with A6=b); a
   malformed MDL;
8. the sub-buffer out of bounds or of resolved length 0 (:mod:`adapters.sim.mdl`, where the
   switches of readings A1, A2, A3, A5 and A9 act);
9. a packet that can never fit: length8 overflow or ``total + 8 >= D`` (reading A13).

Statuses come from one table, :data:`STATUS_FOR`, keyed by the kind of rule broken: the status
reading A8 recommends for each (STATUS_INVALID_PARAMETER for 4 to 9: STATUS_BUFFER_OVERFLOW is a
warning, not an error, so it is not used for 9). A rejected call changes nothing.

An accepted call fixes the packet's layout and a copy of the payload at the call. Without
PAGED_BUFFER it also keeps a reference to the caller's buffer: if the packet is queued, the
payload is read again when the packet is written (reading A11 allows it; declared as the
capability ``reads-buffer-late`` so that the suite exercises that path). With A11=at-call it
never does.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmbspec.adapters.sim.channel import SENDABLE, ChannelState, Packet
from vmbspec.adapters.sim.consts import (
    FLAG_FORCE_MDL_LENGTH,
    FLAG_PAGED_BUFFER,
    FLAG_WAIT_FOR_COMPLETION,
    MAX_PACKET_SIZE,
    STATUS_DEVICE_REMOVED,
    STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_PARAMETER,
    STATUS_SUCCESS,
    TRAILER_SIZE,
    U32_MAX,
)
from vmbspec.adapters.sim.mdl import Rejected, resolve
from vmbspec.adapters.sim.readings import DEFAULT_READINGS, Readings
from vmbspec.adapters.sim.wire import PacketLayout

#: Known flags of the call; anything else is reading A7's question.
KNOWN_FLAGS = FLAG_WAIT_FOR_COMPLETION | FLAG_FORCE_MDL_LENGTH | FLAG_PAGED_BUFFER

#: The kind of rule a rejected call broke -> the status returned: the recommended status of
#: each rule (reading A8 exact; these are NT_ERROR statuses, so A8 any-error is met too).
STATUS_FOR: dict[str, int] = {
    "packet-busy": STATUS_INVALID_DEVICE_STATE,  # reading A10
    "channel-disabled": STATUS_DEVICE_REMOVED,  # KMCL-QUEUE-CLOSED
    "parameter": STATUS_INVALID_PARAMETER,  # every rule on the arguments
    "never-fits": STATUS_INVALID_PARAMETER,  # reading A13
}


@dataclass(frozen=True)
class Outcome:
    """The status returned, and for a rejection the reason (kept for diagnosis)."""

    status: int
    reason: str = ""


def _u32_arg(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= U32_MAX:
        raise ValueError(f"{name}={value} is not a UINT32")
    return value


def send_with_external_mdl(
    packet: Packet,
    buffer: bytearray | bytes | None,
    buffer_length: int,
    mdl: object,
    mdl_offset: int,
    mdl_length: int,
    flags: int,
    bugs: frozenset[str],
    readings: Readings = DEFAULT_READINGS,
) -> Outcome:
    buffer_length = _u32_arg("buffer_length", buffer_length)
    mdl_offset = _u32_arg("mdl_offset", mdl_offset)
    mdl_length = _u32_arg("mdl_length", mdl_length)
    flags = _u32_arg("flags", flags)
    if buffer is not None:
        if not isinstance(buffer, bytearray | bytes):
            raise ValueError(f"buffer must be a bytearray or None, not {type(buffer).__name__}")
        if buffer_length > len(buffer):
            raise ValueError(f"buffer_length {buffer_length} exceeds the {len(buffer)}-byte buffer")

    if packet.state not in SENDABLE:
        return Outcome(
            STATUS_FOR["packet-busy"], f"packet is {packet.state.value} (reading A10)"
        )
    channel = packet.channel
    if channel.state is ChannelState.DISABLED:
        return Outcome(STATUS_FOR["channel-disabled"], "the channel is disabled")

    try:
        layout = _layout(
            buffer, buffer_length, mdl, mdl_offset, mdl_length, flags, bugs, readings
        )
    except Rejected as rejection:
        return Outcome(STATUS_FOR["parameter"], rejection.reason)
    total = layout.total
    if total > MAX_PACKET_SIZE or not channel.ring.can_ever_fit(total):
        return Outcome(
            STATUS_FOR["never-fits"],
            f"a {total}-byte packet never fits (length8 max {MAX_PACKET_SIZE // 8}, ring data "
            f"{channel.ring.data_size} bytes less the {TRAILER_SIZE}-byte trailer) (reading A13)",
        )

    payload = bytes(buffer[:buffer_length]) if buffer is not None else b""
    paged = bool(flags & FLAG_PAGED_BUFFER) and "paged-not-copied" not in bugs
    # Reading A11 (at-call): the buffer is never read after the call, paged or not.
    read_late = not paged and readings["A11"] != "at-call"
    packet.layout = layout
    packet.payload_at_call = payload
    packet.late_buffer = buffer if isinstance(buffer, bytearray) and read_late else None
    packet.transaction_id = channel.new_transaction_id()
    channel.submit(packet)
    return Outcome(STATUS_SUCCESS)


def _layout(
    buffer: bytearray | bytes | None,
    buffer_length: int,
    mdl: object,
    mdl_offset: int,
    mdl_length: int,
    flags: int,
    bugs: frozenset[str],
    readings: Readings,
) -> PacketLayout:
    if flags & ~KNOWN_FLAGS and readings["A7"] == "reject":
        raise Rejected(f"Flags has bits {flags & ~KNOWN_FLAGS:#x} outside 0x7 (reading A7)")
    completion_requested = _completion_requested(flags, bugs, readings)
    if buffer is None and buffer_length > 0:
        raise Rejected(f"Buffer is NULL with BufferLength {buffer_length} (reading A14)")
    if mdl is None:
        if readings["A6"] == "b":
            raise Rejected("no MDL (reading A6 b: ExternalDataMdl is required)")
        if mdl_offset or mdl_length:
            raise Rejected(
                f"no MDL but MdlOffset {mdl_offset:#x} / MdlLength {mdl_length:#x} (reading A6)"
            )
        return PacketLayout(None, buffer_length, completion_requested)
    force = bool(flags & FLAG_FORCE_MDL_LENGTH)
    ranges = resolve(mdl, mdl_offset, mdl_length, force, bugs, readings)
    # Reading A9 (no-range): nothing external resolved, so an in-band packet, as with no MDL.
    return PacketLayout(ranges or None, buffer_length, completion_requested)


def _completion_requested(flags: int, bugs: frozenset[str], readings: Readings) -> bool:
    """Whether the packet waits for the host's completion; Rejected when WAIT_FOR_COMPLETION
    is missing and reading A4 (a) is followed."""
    if flags & FLAG_WAIT_FOR_COMPLETION or "ignore-wait-flag" in bugs:
        return True
    option = readings["A4"]
    if option == "b":
        return False  # accepted; the packet completes when it is written
    if option == "c":
        return True  # the flag is set implicitly
    raise Rejected("Flags lacks WAIT_FOR_COMPLETION (reading A4)")
