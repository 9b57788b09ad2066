//! `vmbcore`: a second, independent implementation of the KMCL send path
//! (`VmbPacketSendWithExternalMdl` and its neighbours) with a C ABI that mirrors KMCL.
//!
//! Layout of the crate:
//! - [`mdl`]: MDL headers as validated values; resolving `MdlOffset`/`MdlLength` into ranges.
//! - [`wire`]: the VMBus packet layout (descriptor, GPA direct ranges, payload).
//! - [`ring`]: one ring direction as real bytes (control page, data area, trailers).
//! - [`channel`]: packet objects, the FIFO send queue, completions, disable.
//! - [`registry`]: handle values <-> channels and packets, so stale handles are recognised.
//! - [`error`] and [`status`]: the one error enum and its NTSTATUS mapping.
//! - `ffi` (private, the only module allowed `unsafe`): the `extern "C"` functions declared in
//!   `include/vmbcore.h`. Every outside value passes one checkpoint there (NULL checks, the MDL
//!   read once into [`mdl::MdlDesc`] values) before any logic runs.
//! - [`sweep`]: the sweep runner (`include/vmbsweep.h`), which loads any library with that ABI
//!   by path and runs batches of single calls with guard pages after every MDL and buffer.
//!
//! The behaviour is docs/target-behaviour.md of the vmbspec repository; this crate shares no
//! code with the Python specification.

pub mod channel;
pub mod error;
pub mod mdl;
pub mod registry;
pub mod ring;
pub mod status;
pub mod wire;

#[allow(unsafe_code)]
pub mod ffi;

/// The sweep runner (`include/vmbsweep.h`): batches of single calls on any library with the
/// `vmbcore.h` ABI, MDLs and buffer against guard pages. Its `unsafe` is confined to its `os`
/// module and its two entry points.
#[allow(unsafe_code)]
pub mod sweep;

pub use channel::{Channel, ChannelState, Completion, PacketId, PacketState, SendRequest};
pub use error::{Error, Result};
pub use status::NtStatus;
