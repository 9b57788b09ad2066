"""The arguments of one call, as a frozen value.

``NTSTATUS VmbPacketSendWithExternalMdl(VMBPACKET PacketObject, PVOID Buffer, UINT32
BufferLength, PMDL ExternalDataMdl, UINT32 MdlOffset, UINT32 MdlLength, UINT32 Flags)``

The packet object is not part of the value: its state is what the rules need, and that lives
in ``spec.lifecycle``. ``buffer`` is the in-line bytes as they are at the call (``None`` for a
NULL Buffer); ``buffer_length`` is BufferLength, which with a non-NULL buffer must equal
``len(buffer)`` (the spec models a buffer of exactly BufferLength readable bytes).
"""

from __future__ import annotations

from dataclasses import dataclass

from vmbspec.spec.constants import UINT32_MAX, SendFlags
from vmbspec.spec.errors import InvalidType, InvalidValue
from vmbspec.spec.mdl import MdlChain, shown_int


def _uint32(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidType(f"{name} is a UINT32, not {type(value).__name__}")
    if not 0 <= value <= UINT32_MAX:
        raise InvalidValue(f"{name} = {shown_int(value)} is not a UINT32 (0..0xFFFFFFFF)")
    return value


@dataclass(frozen=True)
class SendCall:
    """Buffer, BufferLength, ExternalDataMdl, MdlOffset, MdlLength and Flags of one call."""

    buffer: bytes | None
    buffer_length: int
    mdl: MdlChain | None
    mdl_offset: int
    mdl_length: int
    flags: int

    def __post_init__(self) -> None:
        _uint32("BufferLength", self.buffer_length)
        _uint32("MdlOffset", self.mdl_offset)
        _uint32("MdlLength", self.mdl_length)
        _uint32("Flags", self.flags)
        if self.buffer is not None:
            if not isinstance(self.buffer, bytes):
                raise InvalidType(f"Buffer is bytes or None, not {type(self.buffer).__name__}")
            if len(self.buffer) != self.buffer_length:
                raise InvalidValue(
                    f"BufferLength {self.buffer_length} does not match the "
                    f"{len(self.buffer)} bytes of Buffer"
                )
        if self.mdl is not None and not isinstance(self.mdl, MdlChain):
            kind = type(self.mdl).__name__
            raise InvalidType(f"ExternalDataMdl is an MdlChain or None, not {kind}")

    def has(self, flag: SendFlags) -> bool:
        return bool(self.flags & flag)

    def describe(self) -> str:
        """A one-line C-like rendering, for reports."""
        buffer = "NULL" if self.buffer is None else f"<{len(self.buffer)} bytes>"
        if self.mdl is None:
            mdl = "NULL"
        else:
            mdl = "[" + ", ".join(
                f"{{ByteOffset={s.byte_offset:#x}, ByteCount={s.byte_count:#x}}}"
                for s in self.mdl.segments
            ) + "]"
        return (
            f"VmbPacketSendWithExternalMdl(Packet, {buffer}, {self.buffer_length:#x}, {mdl}, "
            f"{self.mdl_offset:#x}, {self.mdl_length:#x}, {self.flags:#x})"
        )
