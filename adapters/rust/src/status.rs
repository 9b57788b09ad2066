//! NTSTATUS values (ntstatus.h, reference §2) that cross the C boundary.
//!
//! Only [`crate::error::Error::status`] and the FFI module turn outcomes into these numbers;
//! the logic speaks [`crate::Error`].

#![forbid(unsafe_code)]

/// An NTSTATUS as the C ABI carries it: the unsigned 32-bit value.
pub type NtStatus = u32;

/// The call succeeded.
pub const STATUS_SUCCESS: NtStatus = 0x0000_0000;
/// A generic failure; used only for a caught panic or a broken internal invariant.
pub const STATUS_UNSUCCESSFUL: NtStatus = 0xC000_0001;
/// A harness handle (channel) that this library did not hand out, or one already destroyed.
pub const STATUS_INVALID_HANDLE: NtStatus = 0xC000_0008;
/// A parameter is invalid (the status the spec recommends for rejected sends, reading A8).
pub const STATUS_INVALID_PARAMETER: NtStatus = 0xC000_000D;
/// The caller's output buffer is too small; the needed length is reported.
pub const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023;
/// The completion status given to packets still outstanding when the channel is disabled.
pub const STATUS_CANCELLED: NtStatus = 0xC000_0120;
/// The packet object is not in a state that allows the call (queued, in flight or freed).
pub const STATUS_INVALID_DEVICE_STATE: NtStatus = 0xC000_0184;
/// The channel has been disabled ("channel is being shut down").
pub const STATUS_DEVICE_REMOVED: NtStatus = 0xC000_02B6;

/// ntdef.h `NT_SUCCESS`: the sign bit of the 32-bit value is clear.
#[must_use]
pub const fn nt_success(status: NtStatus) -> bool {
    status < 0x8000_0000
}
