//! The one error type of the crate.
//!
//! Every failure carries the numbers that made it fail, so a rejected call can be explained
//! without a debugger (the vm-memory `Overflow { base, offset }` habit). The mapping to NTSTATUS
//! lives in [`Error::status`] and is applied only at the C boundary.

#![forbid(unsafe_code)]

use std::fmt;

use crate::status::{
    NtStatus, STATUS_BUFFER_TOO_SMALL, STATUS_DEVICE_REMOVED, STATUS_INVALID_DEVICE_STATE,
    STATUS_INVALID_HANDLE, STATUS_INVALID_PARAMETER, STATUS_UNSUCCESSFUL,
};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// `Flags` lacks VMBUS_CHANNEL_FORMAT_FLAG_WAIT_FOR_COMPLETION ("This flag must be set",
    /// reading A4 (a)).
    MissingWaitForCompletion {
        /// The Flags argument.
        flags: u32,
    },
    /// `Buffer` is NULL but `BufferLength` is not 0 (reading A14).
    NullBuffer {
        /// The BufferLength argument.
        length: u32,
    },
    /// `ExternalDataMdl` is NULL but `MdlOffset` or `MdlLength` is not 0 (reading A6).
    NullMdlWithRange {
        /// The MdlOffset argument.
        offset: u32,
        /// The MdlLength argument.
        length: u32,
    },
    /// An MDL's ByteOffset is not below the page size (wdm.h: "< PAGE_SIZE").
    ByteOffsetTooLarge {
        /// Position of the MDL in the chain, 0 for the first.
        index: usize,
        /// Its ByteOffset field.
        byte_offset: u32,
    },
    /// The chain is longer than [`crate::mdl::MAX_CHAIN_LENGTH`] (or loops).
    ChainTooLong {
        /// The cap that was reached.
        limit: usize,
    },
    /// An owned MDL does not carry exactly ADDRESS_AND_SIZE_TO_SPAN_PAGES PFNs.
    PfnCount {
        /// Pages the MDL spans.
        expected: u64,
        /// PFNs supplied.
        actual: u64,
    },
    /// The resolved external length is 0 (reading A9: a 0-byte range is invalid on the wire).
    EmptyExternalData {
        /// The MdlOffset argument.
        offset: u32,
        /// The MdlLength argument.
        length: u32,
    },
    /// `MdlOffset + length` (computed in 64 bits) exceeds what the MDL (chain) describes.
    OutOfBounds {
        /// The MdlOffset argument.
        offset: u32,
        /// The resolved length (MdlLength, or the rest when MdlLength is 0).
        length: u64,
        /// The largest allowed `offset + length`.
        limit: u64,
    },
    /// The packet is longer than length8 can express (0xFFFF * 8 bytes).
    PacketTooLarge {
        /// The packet length in bytes.
        total: u64,
    },
    /// The packet plus its trailer can never fit the ring (`total + 8 >= D`, reading A13).
    NeverFits {
        /// The packet length in bytes.
        total: u64,
        /// The ring's data-area size D.
        ring_data_size: u32,
    },
    /// An intermediate size or offset would wrap.
    Overflow {
        /// Which computation.
        what: &'static str,
    },
    /// The ring data size is not a multiple of 4096 in `4096..=MAX_RING_DATA_SIZE`.
    BadRingSize {
        /// The requested size.
        size: u32,
    },
    /// The packet is queued, in the ring or awaiting completion (reading A10).
    PacketBusy {
        /// The packet handle.
        packet: u64,
    },
    /// The packet handle is unknown: freed, or never handed out (reading A10).
    UnknownPacket {
        /// The packet handle.
        packet: u64,
    },
    /// The channel handle is unknown or destroyed.
    UnknownChannel {
        /// The channel handle.
        channel: u64,
    },
    /// The channel is disabled.
    ChannelDisabled,
    /// The host completed a transaction id that is not awaiting completion.
    UnknownTransaction {
        /// The transaction id.
        transaction_id: u64,
    },
    /// An output buffer is too small.
    BufferTooSmall {
        /// Bytes needed.
        needed: u32,
        /// Bytes offered.
        capacity: u32,
    },
    /// A required pointer argument is NULL.
    NullPointer {
        /// The parameter's name.
        argument: &'static str,
    },
    /// The ring bytes contradict what this library wrote (an internal invariant broke).
    RingCorrupt {
        /// The read index at the time.
        read_index: u32,
        /// The write index at the time.
        write_index: u32,
    },
    /// A Rust panic was caught at the C boundary.
    Panic,
}

impl Error {
    /// The NTSTATUS a C caller receives for this error.
    #[must_use]
    pub const fn status(&self) -> NtStatus {
        match self {
            Self::PacketBusy { .. } | Self::UnknownPacket { .. } => STATUS_INVALID_DEVICE_STATE,
            Self::ChannelDisabled => STATUS_DEVICE_REMOVED,
            Self::UnknownChannel { .. } => STATUS_INVALID_HANDLE,
            Self::BufferTooSmall { .. } => STATUS_BUFFER_TOO_SMALL,
            Self::RingCorrupt { .. } | Self::Panic => STATUS_UNSUCCESSFUL,
            Self::MissingWaitForCompletion { .. }
            | Self::NullBuffer { .. }
            | Self::NullMdlWithRange { .. }
            | Self::ByteOffsetTooLarge { .. }
            | Self::ChainTooLong { .. }
            | Self::PfnCount { .. }
            | Self::EmptyExternalData { .. }
            | Self::OutOfBounds { .. }
            | Self::PacketTooLarge { .. }
            | Self::NeverFits { .. }
            | Self::Overflow { .. }
            | Self::BadRingSize { .. }
            | Self::UnknownTransaction { .. }
            | Self::NullPointer { .. } => STATUS_INVALID_PARAMETER,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingWaitForCompletion { flags } => {
                write!(f, "flags {flags:#x} lack WAIT_FOR_COMPLETION (0x1)")
            }
            Self::NullBuffer { length } => write!(f, "Buffer is NULL but BufferLength is {length}"),
            Self::NullMdlWithRange { offset, length } => write!(
                f,
                "ExternalDataMdl is NULL but MdlOffset {offset:#x} / MdlLength {length:#x} are not 0"
            ),
            Self::ByteOffsetTooLarge { index, byte_offset } => {
                write!(f, "MDL {index} has ByteOffset {byte_offset:#x} >= 0x1000")
            }
            Self::ChainTooLong { limit } => write!(f, "MDL chain longer than {limit}"),
            Self::PfnCount { expected, actual } => {
                write!(f, "MDL spans {expected} pages but carries {actual} PFNs")
            }
            Self::EmptyExternalData { offset, length } => write!(
                f,
                "MdlOffset {offset:#x} / MdlLength {length:#x} resolve to 0 bytes of external data"
            ),
            Self::OutOfBounds {
                offset,
                length,
                limit,
            } => write!(
                f,
                "MdlOffset {offset:#x} + length {length:#x} exceeds the MDL bound {limit:#x}"
            ),
            Self::PacketTooLarge { total } => {
                write!(f, "packet of {total} bytes exceeds 0xFFFF * 8 bytes")
            }
            Self::NeverFits {
                total,
                ring_data_size,
            } => write!(
                f,
                "packet of {total} bytes plus trailer never fits a ring of {ring_data_size} bytes"
            ),
            Self::Overflow { what } => write!(f, "arithmetic overflow computing {what}"),
            Self::BadRingSize { size } => write!(f, "bad ring data size {size:#x}"),
            Self::PacketBusy { packet } => write!(f, "packet {packet:#x} is outstanding"),
            Self::UnknownPacket { packet } => write!(f, "packet {packet:#x} is unknown or freed"),
            Self::UnknownChannel { channel } => write!(f, "channel {channel:#x} is unknown"),
            Self::ChannelDisabled => write!(f, "the channel is disabled"),
            Self::UnknownTransaction { transaction_id } => {
                write!(
                    f,
                    "transaction {transaction_id:#x} is not awaiting completion"
                )
            }
            Self::BufferTooSmall { needed, capacity } => {
                write!(f, "output needs {needed} bytes, capacity is {capacity}")
            }
            Self::NullPointer { argument } => write!(f, "{argument} is NULL"),
            Self::RingCorrupt {
                read_index,
                write_index,
            } => write!(
                f,
                "ring corrupt at read index {read_index:#x}, write index {write_index:#x}"
            ),
            Self::Panic => write!(f, "panic caught at the C boundary"),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
