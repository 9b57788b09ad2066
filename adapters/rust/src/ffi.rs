//! The C ABI (declared in `include/vmbcore.h`): the only module allowed `unsafe`.
//!
//! Conventions (rustls-ffi): no panic crosses into C (every entry point runs under
//! [`std::panic::catch_unwind`]; a panic becomes STATUS_UNSUCCESSFUL, NULL or nothing), every
//! pointer is NULL-checked, out-parameters are written only on success (the one exception,
//! as in Windows, is the needed length reported with STATUS_BUFFER_TOO_SMALL), and harness
//! names are `vmbcore_<object>_<verb>`.
//!
//! This is the single checkpoint for values from outside: the MDL chain is read here once,
//! validated into [`MdlDesc`] values (ByteOffset below a page, at most
//! [`MAX_CHAIN_LENGTH`] MDLs), and only the PFNs the packet names are read afterwards.
//!
//! Handles are opaque tokens (see [`crate::registry`]): never dereferenced, so a freed packet
//! handle is rejected with STATUS_INVALID_DEVICE_STATE instead of being a use-after-free.
//!
//! Completion routines run synchronously inside `vmbcore_host_complete` and
//! `vmbcore_channel_disable`, after the library's lock is released, so a routine may call any
//! function here (free or resend its packet). A packet without a registered routine gets no
//! call: the real KMCL default routine frees the packet, but a harness wants the packet to
//! stay inspectable, so this library leaves it idle and owned by the caller.

use std::ffi::c_void;
use std::mem::{offset_of, size_of};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr;
use std::sync::{Mutex, PoisonError};

use crate::channel::{FLAG_FORCE_MDL_LENGTH, SendRequest};
use crate::error::{Error, Result};
use crate::mdl::{MAX_CHAIN_LENGTH, MdlDesc};
use crate::registry::{Delivery, Registry, Take};
use crate::status::{NtStatus, STATUS_SUCCESS, STATUS_UNSUCCESSFUL};

/// The opaque object behind `VMBCHANNEL`.
#[repr(C)]
pub struct VmbChannelObject {
    _private: [u8; 0],
}

/// The opaque object behind `VMBPACKET`.
#[repr(C)]
pub struct VmbPacketObject {
    _private: [u8; 0],
}

/// `VMBCHANNEL`.
pub type VmbChannel = *mut VmbChannelObject;
/// `VMBPACKET`.
pub type VmbPacket = *mut VmbPacketObject;

/// `PFN_VMB_PACKET_COMPLETION_ROUTINE`.
pub type CompletionRoutine =
    unsafe extern "C" fn(packet: VmbPacket, status: NtStatus, buffer: *mut c_void, length: u32);

/// The Windows x64 `MDL` header (wdm.h; reference §3). The PFN array (`u64` each) follows it
/// directly at +0x30 with ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount) entries.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Mdl {
    /// Next MDL of the chain, NULL at the end.
    pub next: *mut Mdl,
    /// `sizeof(MDL) + 8 * pages` (not used by this library).
    pub size: i16,
    /// MDL_* flags (not used by this library).
    pub mdl_flags: i16,
    /// Owning process (not used).
    pub process: *mut c_void,
    /// System mapping (not used).
    pub mapped_system_va: *mut c_void,
    /// Page-aligned start address (not used: offsets count from ByteOffset, reading A2).
    pub start_va: *mut c_void,
    /// Bytes described.
    pub byte_count: u32,
    /// Offset of the first byte inside the first page, < 4096.
    pub byte_offset: u32,
}

/// Where the PFN array starts.
pub const MDL_PFN_ARRAY_OFFSET: usize = 0x30;

const _: () = {
    assert!(offset_of!(Mdl, next) == 0x00);
    assert!(offset_of!(Mdl, size) == 0x08);
    assert!(offset_of!(Mdl, mdl_flags) == 0x0A);
    assert!(offset_of!(Mdl, process) == 0x10);
    assert!(offset_of!(Mdl, mapped_system_va) == 0x18);
    assert!(offset_of!(Mdl, start_va) == 0x20);
    assert!(offset_of!(Mdl, byte_count) == 0x28);
    assert!(offset_of!(Mdl, byte_offset) == 0x2C);
    assert!(size_of::<Mdl>() == MDL_PFN_ARRAY_OFFSET);
};

static REGISTRY: Mutex<Registry<CompletionRoutine>> = Mutex::new(Registry::new());

fn with_registry<T>(f: impl FnOnce(&mut Registry<CompletionRoutine>) -> T) -> T {
    // A panic while the lock was held poisons it; the registry's own operations leave it
    // consistent at every `?`, so keep going.
    let mut guard = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    f(&mut guard)
}

/// Runs `f`, turning its error into an NTSTATUS and a panic into STATUS_UNSUCCESSFUL.
fn status_of(f: impl FnOnce() -> Result<()>) -> NtStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => STATUS_SUCCESS,
        Ok(Err(error)) => error.status(),
        Err(_) => STATUS_UNSUCCESSFUL,
    }
}

fn id_of<T>(handle: *mut T) -> u64 {
    u64::try_from(handle.addr()).unwrap_or(0)
}

fn handle_of<T>(id: u64) -> *mut T {
    usize::try_from(id).map_or(ptr::null_mut(), ptr::without_provenance_mut)
}

fn not_null<T>(pointer: *const T, argument: &'static str) -> Result<()> {
    if pointer.is_null() {
        Err(Error::NullPointer { argument })
    } else {
        Ok(())
    }
}

/// Calls the completion routines, outside the lock.
fn deliver(deliveries: Vec<Delivery<CompletionRoutine>>) {
    for mut d in deliveries {
        let Some(routine) = d.routine else { continue };
        let length = u32::try_from(d.data.len()).unwrap_or(u32::MAX);
        let buffer = if d.data.is_empty() {
            ptr::null_mut()
        } else {
            d.data.as_mut_ptr().cast::<c_void>()
        };
        // SAFETY: `routine` was registered by the caller through VmbPacketSetCompletionRoutine
        // as a PFN_VMB_PACKET_COMPLETION_ROUTINE; `buffer` points at `length` bytes owned by
        // `d.data`, which outlives the call (NULL when there are none).
        unsafe { routine(handle_of(d.packet), d.status, buffer, length) };
    }
}

/// Reads the chain starting at `first` into validated headers and the MDL pointers (only the
/// first MDL when `first_only`, as FORCE_MDL_LENGTH uses only it).
///
/// # Safety
/// `first` must point to a readable MDL header whose `next` chain is readable up to NULL.
unsafe fn read_chain(
    first: *const Mdl,
    first_only: bool,
) -> Result<(Vec<MdlDesc>, Vec<*const Mdl>)> {
    let mut descs = Vec::new();
    let mut mdls = Vec::new();
    let mut current = first;
    while !current.is_null() {
        if descs.len() == MAX_CHAIN_LENGTH {
            return Err(Error::ChainTooLong {
                limit: MAX_CHAIN_LENGTH,
            });
        }
        // SAFETY: `current` is non-NULL and, by this function's contract, a readable MDL
        // header; read_unaligned tolerates a caller's misaligned MDL.
        let header = unsafe { ptr::read_unaligned(current) };
        descs.push(MdlDesc::new(
            descs.len(),
            header.byte_offset,
            header.byte_count,
        )?);
        mdls.push(current);
        if first_only {
            break;
        }
        current = header.next;
    }
    Ok((descs, mdls))
}

/// PFN `index` of `mdl`; 0 if the offset cannot be formed.
///
/// # Safety
/// `mdl` must be an MDL whose PFN array has more than `index` entries.
unsafe fn read_pfn(mdl: *const Mdl, index: u64) -> u64 {
    let offset = usize::try_from(index)
        .ok()
        .and_then(|i| i.checked_mul(8))
        .and_then(|o| o.checked_add(MDL_PFN_ARRAY_OFFSET));
    let Some(offset) = offset else { return 0 };
    // SAFETY: by the contract, entry `index` of the PFN array that follows the header lies
    // inside the caller's MDL allocation; read_unaligned needs no alignment.
    unsafe { ptr::read_unaligned(mdl.cast::<u8>().add(offset).cast::<u64>()) }
}

/// `VmbPacketAllocate`: a new packet object of `channel`, or NULL on failure.
#[unsafe(no_mangle)]
pub extern "C" fn VmbPacketAllocate(channel: VmbChannel) -> VmbPacket {
    let id = catch_unwind(|| with_registry(|reg| reg.allocate_packet(id_of(channel))));
    match id {
        Ok(Ok(id)) => handle_of(id),
        _ => ptr::null_mut(),
    }
}

/// `VmbPacketFree`. Freeing an outstanding, freed or unknown packet is a contract violation
/// that this library ignores (nothing changes).
#[unsafe(no_mangle)]
pub extern "C" fn VmbPacketFree(packet: VmbPacket) {
    let _ = catch_unwind(|| with_registry(|reg| reg.free_packet(id_of(packet))));
}

/// `VmbPacketSetCompletionRoutine`; NULL removes the routine. Ignored for an unknown packet.
#[unsafe(no_mangle)]
pub extern "C" fn VmbPacketSetCompletionRoutine(
    packet: VmbPacket,
    routine: Option<CompletionRoutine>,
) {
    let _ =
        catch_unwind(|| with_registry(|reg| reg.set_completion_routine(id_of(packet), routine)));
}

/// `VmbPacketSendWithExternalMdl`.
///
/// # Safety
/// `buffer` must be NULL or readable for `buffer_length` bytes; `external_data_mdl` must be
/// NULL or a valid MDL chain whose PFN arrays have ADDRESS_AND_SIZE_TO_SPAN_PAGES entries.
/// Both are read only during the call (the buffer is copied).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn VmbPacketSendWithExternalMdl(
    packet_object: VmbPacket,
    buffer: *mut c_void,
    buffer_length: u32,
    external_data_mdl: *mut Mdl,
    mdl_offset: u32,
    mdl_length: u32,
    flags: u32,
) -> NtStatus {
    status_of(|| {
        not_null(packet_object, "PacketObject")?;
        let packet = id_of(packet_object);
        with_registry(|reg| {
            // A queued, in-flight or freed packet is refused before its arguments are read.
            reg.check_sendable(packet)?;
            let (descs, mdls) = if external_data_mdl.is_null() {
                (None, Vec::new())
            } else {
                let force = flags & FLAG_FORCE_MDL_LENGTH != 0;
                // SAFETY: non-NULL, and the caller's contract makes it a readable chain.
                let (descs, mdls) = unsafe { read_chain(external_data_mdl, force)? };
                (Some(descs), mdls)
            };
            let bytes: Option<&[u8]> = if buffer.is_null() {
                None
            } else {
                let len = usize::try_from(buffer_length).map_err(|_| Error::Overflow {
                    what: "BufferLength",
                })?;
                // SAFETY: non-NULL, and the caller's contract makes it readable for
                // `buffer_length` bytes for the duration of this call; the bytes are copied
                // into the packet before the call returns.
                Some(unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), len) })
            };
            let request = SendRequest {
                buffer: bytes,
                buffer_length,
                chain: descs.as_deref(),
                mdl_offset,
                mdl_length,
                flags,
            };
            let pfn = |mdl_index: usize, index: u64| -> u64 {
                mdls.get(mdl_index).map_or(0, |&mdl| {
                    // SAFETY: the channel asks only for indices below the MDL's
                    // ADDRESS_AND_SIZE_TO_SPAN_PAGES, which its PFN array holds by contract.
                    unsafe { read_pfn(mdl, index) }
                })
            };
            reg.send(packet, &request, &pfn).map(|_| ())
        })
    })
}

/// Creates a channel (not yet open) whose ring data area has `ring_data_size` bytes.
///
/// # Safety
/// `out` must be NULL or writable for one handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmbcore_channel_create(
    ring_data_size: u32,
    out: *mut VmbChannel,
) -> NtStatus {
    status_of(|| {
        not_null(out, "out")?;
        let id = with_registry(|reg| reg.create_channel(ring_data_size))?;
        // SAFETY: `out` is non-NULL and writable by the caller's contract.
        unsafe { out.write(handle_of(id)) };
        Ok(())
    })
}

/// Opens a channel: queued packets are written in FIFO order.
#[unsafe(no_mangle)]
pub extern "C" fn vmbcore_channel_open(channel: VmbChannel) -> NtStatus {
    status_of(|| with_registry(|reg| reg.open_channel(id_of(channel))))
}

/// Disables a channel: every outstanding packet's routine runs once with STATUS_CANCELLED,
/// before this returns.
#[unsafe(no_mangle)]
pub extern "C" fn vmbcore_channel_disable(channel: VmbChannel) -> NtStatus {
    status_of(|| {
        let deliveries = with_registry(|reg| reg.disable_channel(id_of(channel)))?;
        deliver(deliveries);
        Ok(())
    })
}

/// Destroys a channel and its packets without calling any completion routine.
#[unsafe(no_mangle)]
pub extern "C" fn vmbcore_channel_destroy(channel: VmbChannel) {
    let _ = catch_unwind(|| with_registry(|reg| reg.destroy_channel(id_of(channel))));
}

/// Copies `bytes` to `out` (capacity `capacity`) and sets `*out_length`; reports the needed
/// length with STATUS_BUFFER_TOO_SMALL.
///
/// # Safety
/// `out` NULL or writable for `capacity` bytes; `out_length` non-NULL and writable.
unsafe fn copy_out(bytes: &[u8], out: *mut u8, capacity: u32, out_length: *mut u32) -> Result<()> {
    let needed = u32::try_from(bytes.len()).map_err(|_| Error::Overflow {
        what: "output length",
    })?;
    if needed > capacity {
        // SAFETY: the caller checked `out_length` non-NULL; writable by contract.
        unsafe { out_length.write(needed) };
        return Err(Error::BufferTooSmall { needed, capacity });
    }
    if needed > 0 {
        not_null(out, "out")?;
        // SAFETY: `out` is non-NULL and writable for `capacity >= needed` bytes by contract;
        // `bytes` is a separate Rust allocation, so the ranges do not overlap.
        unsafe { ptr::copy_nonoverlapping(bytes.as_ptr(), out, bytes.len()) };
    }
    // SAFETY: as above.
    unsafe { out_length.write(needed) };
    Ok(())
}

/// The host removes the next packet (without trailer) into `out`. Empty ring: success with
/// `*out_length` 0. Short `capacity`: STATUS_BUFFER_TOO_SMALL, `*out_length` = needed, and
/// the packet stays in the ring.
///
/// # Safety
/// `out` NULL or writable for `capacity` bytes; `out_length` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmbcore_host_take_packet(
    channel: VmbChannel,
    out: *mut u8,
    capacity: u32,
    out_length: *mut u32,
) -> NtStatus {
    status_of(|| {
        not_null(out_length, "out_length")?;
        if capacity > 0 {
            not_null(out, "out")?;
        }
        let take = with_registry(|reg| reg.host_take_packet(id_of(channel), capacity))?;
        let bytes = match take {
            Take::Empty => Vec::new(),
            Take::TooSmall { needed } => {
                // SAFETY: checked non-NULL above; writable by contract.
                unsafe { out_length.write(needed) };
                return Err(Error::BufferTooSmall { needed, capacity });
            }
            Take::Packet(bytes) => bytes,
        };
        // SAFETY: the contract of this function is the contract of copy_out.
        unsafe { copy_out(&bytes, out, capacity, out_length) }
    })
}

/// The host's completion packet for `transaction_id`: the packet's routine runs once, with
/// `status` and the `length` bytes at `data`, before this returns. After disable: ignored.
///
/// # Safety
/// `data` NULL (with `length` 0) or readable for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmbcore_host_complete(
    channel: VmbChannel,
    transaction_id: u64,
    status: NtStatus,
    data: *const u8,
    length: u32,
) -> NtStatus {
    status_of(|| {
        let bytes: &[u8] = if length == 0 {
            &[]
        } else {
            not_null(data, "data")?;
            let len = usize::try_from(length).map_err(|_| Error::Overflow { what: "length" })?;
            // SAFETY: non-NULL and readable for `length` bytes by contract; copied before
            // the call returns.
            unsafe { std::slice::from_raw_parts(data, len) }
        };
        let deliveries =
            with_registry(|reg| reg.host_complete(id_of(channel), transaction_id, status, bytes))?;
        deliver(deliveries);
        Ok(())
    })
}

/// A copy of the raw ring: the 4096-byte control page then the data area.
///
/// # Safety
/// `out` NULL or writable for `capacity` bytes; `out_length` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn vmbcore_channel_ring_bytes(
    channel: VmbChannel,
    out: *mut u8,
    capacity: u32,
    out_length: *mut u32,
) -> NtStatus {
    status_of(|| {
        not_null(out_length, "out_length")?;
        if capacity > 0 {
            not_null(out, "out")?;
        }
        let bytes = with_registry(|reg| reg.ring_bytes(id_of(channel)))?;
        // SAFETY: the contract of this function is the contract of copy_out.
        unsafe { copy_out(&bytes, out, capacity, out_length) }
    })
}
