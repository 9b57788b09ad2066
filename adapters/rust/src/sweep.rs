//! The sweep runner (declared in `include/vmbsweep.h`): runs a batch of single calls of
//! `VmbPacketSendWithExternalMdl` on ANY library with the `vmbcore.h` ABI, loaded by path,
//! with every MDL's PFN array and the in-line buffer ending exactly at a page boundary
//! followed by an inaccessible page.
//!
//! For each shape of the batch the runner, in native code:
//! 1. creates a channel of `ring_data_size` bytes and opens it (`vmbcore_channel_create`,
//!    `vmbcore_channel_open`);
//! 2. allocates a packet (`VmbPacketAllocate`) and registers a completion routine that counts
//!    its calls (`VmbPacketSetCompletionRoutine`);
//! 3. lays the MDL chain out as Windows x64 does (0x30-byte header, PFN array right after it,
//!    `Next` chaining; `max(pfns given, ADDRESS_AND_SIZE_TO_SPAN_PAGES)` PFN slots, the missing
//!    ones 0, exactly as `adapters/native/abi.py` does) and the buffer's `BufferLength` bytes,
//!    each ending at a page boundary with a `PROT_NONE` page after it and one before its
//!    mapping;
//! 4. calls `VmbPacketSendWithExternalMdl`, reads the completion count, takes the packet from
//!    the ring (`vmbcore_host_take_packet`, capacity `ring_data_size`: the ABI says a packet is
//!    at most that long), frees the packet and destroys the channel (`VmbPacketFree`,
//!    `vmbcore_channel_destroy`, which calls no routine).
//!
//! Nothing the library returns is followed: a length above the capacity given, or a
//! STATUS_BUFFER_TOO_SMALL that contradicts the capacity, is an error code in the shape's
//! record; no byte is read on the strength of it.
//!
//! A read past a guard page faults and the process dies: run the runner in a child process
//! (`adapters/native/sweep.py` does) and watch [`Progress`], which the runner updates after
//! every shape in memory the caller may share with its parent. With
//! [`VMBSWEEP_CATCH_FAULTS`] a SIGSEGV/SIGBUS handler records the faulting address and which
//! guard it hit in [`Progress`], then lets the signal kill the process as before.
//!
//! Runs are serialised by one process-wide lock (the completion counter is process-wide).
//! Linux only: elsewhere [`vmbsweep_run`] returns [`VMBSWEEP_UNSUPPORTED`].
//!
//! Encodings (little-endian, packed, no alignment):
//!
//! ```text
//! shape:  u32 mdl_count (0: NULL MDL)  u32 MdlOffset  u32 MdlLength  u32 Flags
//!         u32 buffer_present (0: NULL, 1: present)  u32 BufferLength
//!         [BufferLength bytes when present]
//!         mdl_count x { u32 ByteOffset  u32 ByteCount  u32 pfn_count  pfn_count x u64 }
//! record: u32 status  u32 calls  u32 error  u32 detail  u32 packet_length
//!         [packet_length bytes: the packet without its 8-byte trailer]
//! ```

use std::ffi::{c_char, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use crate::status::NtStatus;

/// Every shape ran and has its record.
pub const VMBSWEEP_OK: i32 = 0;
/// The results buffer is full: `shapes_done` shapes have records; call again for the rest
/// (the shape that did not fit ran and runs again).
pub const VMBSWEEP_RESULTS_FULL: i32 = 1;
/// A NULL pointer where one is required, or a zero cycle count.
pub const VMBSWEEP_BAD_ARGUMENT: i32 = 2;
/// The shape at `shapes_done` is malformed (truncated, a flag not 0/1, too many MDLs).
pub const VMBSWEEP_BAD_SHAPE: i32 = 3;
/// `dlopen` failed on the library path.
pub const VMBSWEEP_LOAD_FAILED: i32 = 4;
/// The library lacks a function of the `vmbcore.h` ABI.
pub const VMBSWEEP_MISSING_SYMBOL: i32 = 5;
/// Guard memory could not be mapped (`mmap`/`mprotect` failed).
pub const VMBSWEEP_OUT_OF_MEMORY: i32 = 6;
/// A Rust panic inside the runner (a bug of the runner).
pub const VMBSWEEP_PANIC: i32 = 7;
/// Not available on this platform (Linux only).
pub const VMBSWEEP_UNSUPPORTED: i32 = 8;
/// A harness call of a cycle failed (`vmbsweep_raw_rate`).
pub const VMBSWEEP_CYCLE_FAILED: i32 = 9;

/// [`vmbsweep_run`] option: install a SIGSEGV/SIGBUS handler that records the fault.
pub const VMBSWEEP_CATCH_FAULTS: u32 = 0x1;

/// Record error: none; status, calls and packet are the call's.
pub const SHAPE_OK: u32 = 0;
/// `vmbcore_channel_create` failed; `detail` is its NTSTATUS.
pub const SHAPE_CHANNEL_CREATE_FAILED: u32 = 1;
/// `vmbcore_channel_create` returned success and a NULL channel.
pub const SHAPE_CHANNEL_NULL: u32 = 2;
/// `vmbcore_channel_open` failed; `detail` is its NTSTATUS.
pub const SHAPE_CHANNEL_OPEN_FAILED: u32 = 3;
/// `VmbPacketAllocate` returned NULL.
pub const SHAPE_ALLOCATE_FAILED: u32 = 4;
/// `vmbcore_host_take_packet` failed; `detail` is its NTSTATUS.
pub const SHAPE_TAKE_FAILED: u32 = 5;
/// `vmbcore_host_take_packet` returned success with `out_length` (`detail`) above the
/// capacity it was given: not followed.
pub const SHAPE_LENGTH_ABOVE_CAPACITY: u32 = 6;
/// `vmbcore_host_take_packet` returned STATUS_BUFFER_TOO_SMALL asking for `detail` bytes:
/// more than a packet of the ring can have, or no more than it was given.
pub const SHAPE_IMPOSSIBLE_TOO_SMALL: u32 = 7;

/// Fault region: the faulting address is in none of the runner's guarded regions.
pub const REGION_UNKNOWN: u32 = 0;
/// Fault region: an MDL (header and PFN array); `fault_index` is its position in the chain.
pub const REGION_MDL: u32 = 1;
/// Fault region: the in-line buffer.
pub const REGION_BUFFER: u32 = 2;
/// Fault side: inside the mapped data (cannot fault by a read; a write to read-only memory).
pub const SIDE_INSIDE: u32 = 0;
/// Fault side: the guard page before the region.
pub const SIDE_BEFORE: u32 = 1;
/// Fault side: the guard page right after the region's last byte.
pub const SIDE_AFTER: u32 = 2;

/// `VMBSWEEP_PROGRESS`: where the runner reports progress and a caught fault. Updated with
/// volatile stores after every shape, so a parent process sharing this memory sees it even
/// when the runner's process dies.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Progress {
    /// Shapes that have a complete record in the results buffer.
    pub shapes_done: u64,
    /// Bytes of records written.
    pub results_len: u64,
    /// The faulting address (with [`VMBSWEEP_CATCH_FAULTS`]), else 0.
    pub fault_address: u64,
    /// The signal caught (11 SIGSEGV, 7 SIGBUS), 0 when none.
    pub fault_signal: u32,
    /// [`REGION_UNKNOWN`], [`REGION_MDL`] or [`REGION_BUFFER`].
    pub fault_region: u32,
    /// The MDL's position in the chain (for [`REGION_MDL`]).
    pub fault_index: u32,
    /// [`SIDE_INSIDE`], [`SIDE_BEFORE`] or [`SIDE_AFTER`].
    pub fault_side: u32,
}

/// The most MDLs a shape may have (the ABI rejects more than 64; a few more are allowed so a
/// sweep can try that rejection).
pub const MAX_SHAPE_MDLS: usize = 256;
/// Size of the record header.
pub const RECORD_HEADER_SIZE: usize = 20;
/// Windows x64: the PFN array starts right after the 0x30-byte MDL header.
pub const MDL_HEADER_SIZE: usize = 0x30;
const MDL_PAGES_LOCKED: i16 = 0x2;

const STATUS_SUCCESS: NtStatus = 0;
const STATUS_BUFFER_TOO_SMALL: NtStatus = 0xC000_0023;
const FLAG_WAIT_FOR_COMPLETION: u32 = 0x1;

static RUN_LOCK: Mutex<()> = Mutex::new(());
static CALLS: AtomicU32 = AtomicU32::new(0);

/// The completion routine of every packet the runner sends: counts calls (saturating).
extern "C" fn count_completion(_: *mut c_void, _: NtStatus, _: *mut c_void, _: u32) {
    let _ = CALLS.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_add(1));
}

/// Shapes as bytes, and results as bytes: no `unsafe` here.
mod plan {
    #![forbid(unsafe_code)]

    use super::{MAX_SHAPE_MDLS, RECORD_HEADER_SIZE};

    /// One MDL of a shape: ByteOffset, ByteCount and the PFNs given (little-endian u64s).
    #[derive(Debug, Clone, Copy)]
    pub struct MdlShape<'a> {
        pub byte_offset: u32,
        pub byte_count: u32,
        pub pfns: &'a [u8],
    }

    impl MdlShape<'_> {
        /// PFNs given.
        pub const fn pfn_count(&self) -> usize {
            self.pfns.len() / 8
        }

        /// PFN slots laid out: max(given, ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset,
        /// ByteCount)); the span is at most 2^20 + 1, so this cannot overflow.
        pub fn slots(&self) -> Option<usize> {
            let span = (u64::from(self.byte_offset) & 0xFFF)
                .checked_add(u64::from(self.byte_count))?
                .checked_add(0xFFF)?
                >> 12;
            Some(usize::try_from(span).ok()?.max(self.pfn_count()))
        }

        /// Bytes of the MDL: header and PFN slots.
        pub fn size(&self) -> Option<usize> {
            self.slots()?
                .checked_mul(8)?
                .checked_add(super::MDL_HEADER_SIZE)
        }
    }

    /// One call: a NULL MDL when `mdls` is empty, a NULL buffer when `buffer` is None.
    #[derive(Debug, Default)]
    pub struct Shape<'a> {
        pub mdl_offset: u32,
        pub mdl_length: u32,
        pub flags: u32,
        pub buffer: Option<&'a [u8]>,
        pub buffer_length: u32,
        pub mdls: Vec<MdlShape<'a>>,
    }

    /// Reads shapes one after the other from the encoded batch.
    pub struct Reader<'a> {
        bytes: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        pub const fn new(bytes: &'a [u8]) -> Self {
            Self { bytes, pos: 0 }
        }

        pub const fn at_end(&self) -> bool {
            self.pos >= self.bytes.len()
        }

        fn take(&mut self, n: usize) -> Option<&'a [u8]> {
            let end = self.pos.checked_add(n)?;
            let slice = self.bytes.get(self.pos..end)?;
            self.pos = end;
            Some(slice)
        }

        fn u32(&mut self) -> Option<u32> {
            Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
        }

        /// The next shape into `shape` (its MDL vector reused); None if malformed.
        pub fn next_into(&mut self, shape: &mut Shape<'a>) -> Option<()> {
            let mdl_count = usize::try_from(self.u32()?).ok()?;
            if mdl_count > MAX_SHAPE_MDLS {
                return None;
            }
            shape.mdl_offset = self.u32()?;
            shape.mdl_length = self.u32()?;
            shape.flags = self.u32()?;
            let present = self.u32()?;
            shape.buffer_length = self.u32()?;
            shape.buffer = match present {
                0 => None,
                1 => Some(self.take(usize::try_from(shape.buffer_length).ok()?)?),
                _ => return None,
            };
            shape.mdls.clear();
            for _ in 0..mdl_count {
                let byte_offset = self.u32()?;
                let byte_count = self.u32()?;
                let pfn_count = usize::try_from(self.u32()?).ok()?;
                let pfns = self.take(pfn_count.checked_mul(8)?)?;
                shape.mdls.push(MdlShape {
                    byte_offset,
                    byte_count,
                    pfns,
                });
            }
            Some(())
        }
    }

    /// What one shape gave.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct Record {
        pub status: u32,
        pub calls: u32,
        pub error: u32,
        pub detail: u32,
    }

    /// Appends `record` and `packet` to `out` at `*len`; false (nothing written) if they do
    /// not fit.
    pub fn write_record(out: &mut [u8], len: &mut usize, record: Record, packet: &[u8]) -> bool {
        let Ok(packet_length) = u32::try_from(packet.len()) else {
            return false;
        };
        let Some(end) = RECORD_HEADER_SIZE
            .checked_add(packet.len())
            .and_then(|n| n.checked_add(*len))
        else {
            return false;
        };
        let Some(slot) = out.get_mut(*len..end) else {
            return false;
        };
        let (header, body) = slot.split_at_mut(RECORD_HEADER_SIZE);
        let fields = [
            record.status,
            record.calls,
            record.error,
            record.detail,
            packet_length,
        ];
        for (chunk, value) in header.chunks_exact_mut(4).zip(fields) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        body.copy_from_slice(packet);
        *len = end;
        true
    }

    /// Writes the Windows x64 MDL header and the given PFNs into `out` (exactly
    /// `mdl.size()` bytes, all zero on entry).
    pub fn write_mdl(out: &mut [u8], mdl: &MdlShape<'_>, next: usize) {
        let size = out.len();
        let mut put = |at: usize, bytes: &[u8]| {
            let end = at.checked_add(bytes.len());
            if let Some(dst) = end.and_then(|end| out.get_mut(at..end)) {
                dst.copy_from_slice(bytes);
            }
        };
        put(0x00, &u64::try_from(next).unwrap_or(0).to_le_bytes());
        // Size is a CSHORT (not read by the ABI): 0 when it does not fit, as abi.py does.
        let cshort = i16::try_from(size).unwrap_or(0);
        put(0x08, &cshort.to_le_bytes());
        put(0x0A, &super::MDL_PAGES_LOCKED.to_le_bytes());
        put(0x28, &mdl.byte_count.to_le_bytes());
        put(0x2C, &mdl.byte_offset.to_le_bytes());
        put(super::MDL_HEADER_SIZE, mdl.pfns);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn shape_bytes(mdls: &[(u32, u32, &[u64])], buffer: Option<&[u8]>) -> Vec<u8> {
            let mut v = Vec::new();
            for x in [u32::try_from(mdls.len()).unwrap(), 1, 2, 3] {
                v.extend_from_slice(&x.to_le_bytes());
            }
            v.extend_from_slice(&u32::from(buffer.is_some()).to_le_bytes());
            let blen = buffer.map_or(7, <[u8]>::len);
            v.extend_from_slice(&u32::try_from(blen).unwrap().to_le_bytes());
            v.extend_from_slice(buffer.unwrap_or_default());
            for (bo, bc, pfns) in mdls {
                v.extend_from_slice(&bo.to_le_bytes());
                v.extend_from_slice(&bc.to_le_bytes());
                v.extend_from_slice(&u32::try_from(pfns.len()).unwrap().to_le_bytes());
                for p in *pfns {
                    v.extend_from_slice(&p.to_le_bytes());
                }
            }
            v
        }

        #[test]
        fn reads_shapes_back() {
            let mut bytes = shape_bytes(&[(8, 0x2000, &[5, 6, 7]), (0, 0, &[])], Some(b"abc"));
            bytes.extend(shape_bytes(&[], None));
            let mut reader = Reader::new(&bytes);
            let mut shape = Shape::default();
            reader.next_into(&mut shape).unwrap();
            assert_eq!((shape.mdl_offset, shape.mdl_length, shape.flags), (1, 2, 3));
            assert_eq!(shape.buffer, Some(&b"abc"[..]));
            assert_eq!(shape.mdls.len(), 2);
            assert_eq!(shape.mdls[0].pfn_count(), 3);
            assert_eq!(shape.mdls[0].slots(), Some(3));
            assert_eq!(shape.mdls[1].slots(), Some(0));
            reader.next_into(&mut shape).unwrap();
            assert!(shape.buffer.is_none() && shape.mdls.is_empty());
            assert_eq!(shape.buffer_length, 7);
            assert!(reader.at_end());
        }

        #[test]
        fn rejects_truncated_and_bad_shapes() {
            let bytes = shape_bytes(&[(0, 0x1000, &[1])], Some(b"x"));
            for cut in 0..bytes.len() {
                let mut shape = Shape::default();
                assert!(Reader::new(&bytes[..cut]).next_into(&mut shape).is_none());
            }
            let mut bad = bytes.clone();
            bad[16] = 2; // buffer_present neither 0 nor 1
            assert!(Reader::new(&bad).next_into(&mut Shape::default()).is_none());
            let mut many = bytes;
            many[..4].copy_from_slice(&u32::MAX.to_le_bytes());
            assert!(
                Reader::new(&many)
                    .next_into(&mut Shape::default())
                    .is_none()
            );
        }

        #[test]
        fn span_of_the_largest_mdl_is_counted() {
            let mdl = MdlShape {
                byte_offset: 0xFFF,
                byte_count: u32::MAX,
                pfns: &[],
            };
            assert_eq!(mdl.slots(), Some(0x10_0001));
            assert_eq!(mdl.size(), Some(0x30 + 8 * 0x10_0001));
        }

        #[test]
        fn records_fit_or_are_refused() {
            let mut out = [0_u8; 30];
            let mut len = 0;
            let rec = Record {
                status: 1,
                calls: 2,
                error: 0,
                detail: 0,
            };
            assert!(write_record(&mut out, &mut len, rec, b"12345678"));
            assert_eq!(len, 28);
            assert!(!write_record(&mut out, &mut len, rec, b""));
            assert_eq!(len, 28);
            assert_eq!(
                &out[16..28],
                &[8, 0, 0, 0, b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8']
            );
        }

        #[test]
        fn mdl_header_is_laid_out_as_windows_x64() {
            let pfns = 9_u64.to_le_bytes();
            let mdl = MdlShape {
                byte_offset: 0x10,
                byte_count: 0x20,
                pfns: &pfns,
            };
            let mut out = vec![0_u8; mdl.size().unwrap()];
            write_mdl(&mut out, &mdl, 0x1234);
            assert_eq!(out.len(), 0x38);
            assert_eq!(&out[0..8], &0x1234_u64.to_le_bytes());
            assert_eq!(&out[8..10], &0x38_i16.to_le_bytes());
            assert_eq!(&out[0x28..0x30], &[0x20, 0, 0, 0, 0x10, 0, 0, 0]);
            assert_eq!(&out[0x30..], &pfns);
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod os {
    //! The only `unsafe` of the runner: libc's dlopen/dlsym/mmap/mprotect/sigaction, and calls
    //! through the library's function pointers.

    use std::ffi::{CStr, c_char, c_int, c_long, c_void};
    use std::ptr;
    use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

    use super::{
        Progress, REGION_BUFFER, REGION_MDL, REGION_UNKNOWN, SIDE_AFTER, SIDE_BEFORE, SIDE_INSIDE,
    };
    use crate::status::NtStatus;

    const RTLD_NOW: c_int = 2;
    const RTLD_LOCAL: c_int = 0;
    const PROT_NONE: c_int = 0;
    const PROT_READ: c_int = 1;
    const PROT_WRITE: c_int = 2;
    const MAP_PRIVATE: c_int = 0x02;
    const MAP_ANONYMOUS: c_int = 0x20;
    const SC_PAGESIZE: c_int = 30;
    const SIGBUS: c_int = 7;
    const SIGSEGV: c_int = 11;
    const SA_SIGINFO: c_int = 4;
    const SA_RESETHAND: c_int = i32::MIN; // 0x8000_0000

    /// glibc's `struct sigaction` on 64-bit Linux (x86_64, aarch64).
    #[repr(C)]
    struct SigAction {
        sa_sigaction: usize,
        sa_mask: [u64; 16],
        sa_flags: c_int,
        sa_restorer: usize,
    }

    /// The start of glibc's `siginfo_t` on 64-bit Linux: `si_addr` at +16 for SIGSEGV/SIGBUS.
    #[repr(C)]
    struct SigInfo {
        si_signo: c_int,
        si_errno: c_int,
        si_code: c_int,
        _pad: c_int,
        si_addr: usize,
    }

    unsafe extern "C" {
        fn dlopen(filename: *const c_char, flag: c_int) -> *mut c_void;
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
        fn dlclose(handle: *mut c_void) -> c_int;
        fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: c_int,
            flags: c_int,
            fd: c_int,
            offset: i64,
        ) -> *mut c_void;
        fn mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int;
        fn munmap(addr: *mut c_void, len: usize) -> c_int;
        fn sysconf(name: c_int) -> c_long;
        fn sigaction(signum: c_int, act: *const SigAction, old: *mut SigAction) -> c_int;
        fn raise(signum: c_int) -> c_int;
    }

    const MAP_FAILED: usize = usize::MAX;

    /// The OS page size (the guard granule).
    pub fn page_size() -> usize {
        // SAFETY: sysconf takes no pointer and has no precondition.
        let size = unsafe { sysconf(SC_PAGESIZE) };
        usize::try_from(size)
            .ok()
            .filter(|&s| s >= 4096)
            .unwrap_or(4096)
    }

    type AllocateFn = unsafe extern "C" fn(*mut c_void) -> *mut c_void;
    type FreeFn = unsafe extern "C" fn(*mut c_void);
    type Routine = extern "C" fn(*mut c_void, NtStatus, *mut c_void, u32);
    type SetRoutineFn = unsafe extern "C" fn(*mut c_void, Option<Routine>);
    type SendFn =
        unsafe extern "C" fn(*mut c_void, *mut c_void, u32, *mut c_void, u32, u32, u32) -> NtStatus;
    type CreateFn = unsafe extern "C" fn(u32, *mut *mut c_void) -> NtStatus;
    type ChannelFn = unsafe extern "C" fn(*mut c_void) -> NtStatus;
    type DestroyFn = unsafe extern "C" fn(*mut c_void);
    type TakeFn = unsafe extern "C" fn(*mut c_void, *mut u8, u32, *mut u32) -> NtStatus;
    type CompleteFn = unsafe extern "C" fn(*mut c_void, u64, NtStatus, *const u8, u32) -> NtStatus;

    /// A library with the vmbcore.h ABI, loaded with dlopen (closed on drop).
    pub struct Library {
        handle: *mut c_void,
        allocate: AllocateFn,
        free: FreeFn,
        set_routine: SetRoutineFn,
        send: SendFn,
        create: CreateFn,
        open: ChannelFn,
        destroy: DestroyFn,
        take: TakeFn,
        complete: CompleteFn,
    }

    /// Why a library could not be loaded.
    pub enum LoadError {
        Open,
        Missing,
    }

    /// `dlsym(handle, name)` as a function pointer of type `F`.
    ///
    /// # Safety
    /// `handle` is a live dlopen handle, and the symbol, if present, is a function of type `F`.
    unsafe fn symbol<F: Copy>(handle: *mut c_void, name: &CStr) -> Result<F, LoadError> {
        // SAFETY: `handle` is live by contract and `name` is NUL-terminated.
        let address = unsafe { dlsym(handle, name.as_ptr()) };
        if address.is_null() {
            return Err(LoadError::Missing);
        }
        debug_assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
        // SAFETY: F is a function pointer type (the contract), the size of a data pointer on
        // the platforms dlsym serves, and `address` is that function's entry.
        Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&address) })
    }

    impl Library {
        /// Loads the library at `path` and looks up the ABI.
        ///
        /// # Safety
        /// The library's exports named like the vmbcore.h functions have their prototypes (the
        /// one thing about a library that cannot be checked), and loading it runs its
        /// initialisers.
        pub unsafe fn load(path: &CStr) -> Result<Self, LoadError> {
            // SAFETY: `path` is NUL-terminated; dlopen has no other precondition.
            let handle = unsafe { dlopen(path.as_ptr(), RTLD_NOW | RTLD_LOCAL) };
            if handle.is_null() {
                return Err(LoadError::Open);
            }
            // SAFETY: `handle` is live; the prototypes are this function's contract.
            let lookup = || unsafe {
                Ok(Self {
                    handle,
                    allocate: symbol(handle, c"VmbPacketAllocate")?,
                    free: symbol(handle, c"VmbPacketFree")?,
                    set_routine: symbol(handle, c"VmbPacketSetCompletionRoutine")?,
                    send: symbol(handle, c"VmbPacketSendWithExternalMdl")?,
                    create: symbol(handle, c"vmbcore_channel_create")?,
                    open: symbol(handle, c"vmbcore_channel_open")?,
                    destroy: symbol(handle, c"vmbcore_channel_destroy")?,
                    take: symbol(handle, c"vmbcore_host_take_packet")?,
                    complete: symbol(handle, c"vmbcore_host_complete")?,
                })
            };
            let library = lookup();
            if library.is_err() {
                // SAFETY: `handle` is live and nothing of it is kept.
                unsafe { dlclose(handle) };
            }
            library
        }

        /// `vmbcore_channel_create`: (status, channel).
        pub fn create_channel(&self, ring_data_size: u32) -> (NtStatus, *mut c_void) {
            let mut channel = ptr::null_mut();
            // SAFETY: the prototype is Library::load's contract; `channel` is writable.
            let status = unsafe { (self.create)(ring_data_size, &raw mut channel) };
            (status, channel)
        }

        /// `vmbcore_channel_open`.
        pub fn open_channel(&self, channel: *mut c_void) -> NtStatus {
            // SAFETY: the prototype is Library::load's contract; any handle value is allowed.
            unsafe { (self.open)(channel) }
        }

        /// `vmbcore_channel_destroy`.
        pub fn destroy_channel(&self, channel: *mut c_void) {
            // SAFETY: as open_channel.
            unsafe { (self.destroy)(channel) }
        }

        /// `VmbPacketAllocate` then `VmbPacketSetCompletionRoutine(routine)`; NULL on failure.
        pub fn allocate_packet(&self, channel: *mut c_void, routine: Routine) -> *mut c_void {
            // SAFETY: as open_channel.
            let packet = unsafe { (self.allocate)(channel) };
            if !packet.is_null() {
                // SAFETY: as open_channel; `routine` is a static function.
                unsafe { (self.set_routine)(packet, Some(routine)) };
            }
            packet
        }

        /// `VmbPacketFree`.
        pub fn free_packet(&self, packet: *mut c_void) {
            // SAFETY: as open_channel.
            unsafe { (self.free)(packet) }
        }

        /// `VmbPacketSendWithExternalMdl` with pointers into guarded regions (or NULL).
        #[allow(clippy::too_many_arguments)]
        pub fn send(
            &self,
            packet: *mut c_void,
            buffer: *mut u8,
            buffer_length: u32,
            mdl: *mut u8,
            mdl_offset: u32,
            mdl_length: u32,
            flags: u32,
        ) -> NtStatus {
            // SAFETY: the prototype is Library::load's contract. `buffer` is NULL or readable
            // for `buffer_length` bytes and `mdl` NULL or a chain laid out as vmbcore.h says,
            // both staying mapped until the channel is destroyed (the caller's duty).
            unsafe {
                (self.send)(
                    packet,
                    buffer.cast(),
                    buffer_length,
                    mdl.cast(),
                    mdl_offset,
                    mdl_length,
                    flags,
                )
            }
        }

        /// `vmbcore_host_take_packet` into `out` (capacity: its length, clamped to u32):
        /// (status, out_length as reported, not checked).
        pub fn take_packet(&self, channel: *mut c_void, out: &mut [u8]) -> (NtStatus, u32) {
            let capacity = u32::try_from(out.len()).unwrap_or(u32::MAX);
            let mut length = 0_u32;
            // SAFETY: the prototype is Library::load's contract; `out` is writable for at
            // least `capacity` bytes and `length` for one u32.
            let status =
                unsafe { (self.take)(channel, out.as_mut_ptr(), capacity, &raw mut length) };
            (status, length)
        }

        /// `vmbcore_host_complete` with no completion bytes.
        pub fn complete(&self, channel: *mut c_void, transaction_id: u64) -> NtStatus {
            // SAFETY: the prototype is Library::load's contract; NULL data with length 0.
            unsafe { (self.complete)(channel, transaction_id, 0, ptr::null(), 0) }
        }
    }

    impl Drop for Library {
        fn drop(&mut self) {
            // SAFETY: `handle` came from dlopen and is closed once; no pointer into the
            // library outlives `self` (channels are destroyed before the run returns).
            unsafe { dlclose(self.handle) };
        }
    }

    /// The regions the fault handler knows: slot 0 the buffer, slot 1 + i the MDL at chain
    /// position i (start of the mapping with its leading guard, length of the data part).
    pub const TRACKED_REGIONS: usize = 1 + super::MAX_SHAPE_MDLS;
    static REGION_BASE: [AtomicUsize; TRACKED_REGIONS] =
        [const { AtomicUsize::new(0) }; TRACKED_REGIONS];
    static REGION_DATA: [AtomicUsize; TRACKED_REGIONS] =
        [const { AtomicUsize::new(0) }; TRACKED_REGIONS];
    static PAGE: AtomicUsize = AtomicUsize::new(4096);
    static PROGRESS: AtomicPtr<Progress> = AtomicPtr::new(ptr::null_mut());
    /// The regions the current shape uses: slots below this (slot 0, the buffer, only when
    /// the shape has one: see [`set_current`]).
    static CURRENT_SLOTS: AtomicUsize = AtomicUsize::new(0);
    static CURRENT_BUFFER: AtomicUsize = AtomicUsize::new(0);

    /// Tells the fault handler which regions the shape about to be sent uses, so that a
    /// fault in a region kept from an earlier, longer chain is not blamed on it.
    pub fn set_current(mdl_count: usize, has_buffer: bool) {
        CURRENT_SLOTS.store(mdl_count.saturating_add(1), Ordering::SeqCst);
        CURRENT_BUFFER.store(usize::from(has_buffer), Ordering::SeqCst);
    }

    /// `[guard page][data: whole pages, read-write][guard page]`, reused from shape to shape
    /// and grown when a shape needs more. Objects are placed to end at the data's end.
    pub struct GuardRegion {
        slot: usize,
        base: *mut u8,
        data_len: usize,
        /// The part of the data written by the last placement (cleared before the next).
        dirty: (usize, usize),
    }

    impl GuardRegion {
        /// An empty region reported to the fault handler as `slot`.
        pub const fn new(slot: usize) -> Self {
            Self {
                slot,
                base: ptr::null_mut(),
                data_len: 0,
                dirty: (0, 0),
            }
        }

        fn unmap(&mut self) {
            if self.base.is_null() {
                return;
            }
            if let Some(tracked) = REGION_BASE.get(self.slot) {
                tracked.store(0, Ordering::SeqCst);
            }
            let page = PAGE.load(Ordering::Relaxed);
            if let Some(total) = self
                .data_len
                .checked_add(page)
                .and_then(|n| n.checked_add(page))
            {
                // SAFETY: `base` and `total` are exactly the mapping made by `grow`.
                unsafe { munmap(self.base.cast(), total) };
            }
            self.base = ptr::null_mut();
            self.data_len = 0;
            self.dirty = (0, 0);
        }

        /// Makes the data part at least `len` bytes; false if the memory cannot be had.
        fn grow(&mut self, len: usize) -> bool {
            let page = PAGE.load(Ordering::Relaxed);
            let Some(data_len) = len.max(1).checked_next_multiple_of(page) else {
                return false;
            };
            if data_len <= self.data_len {
                return true;
            }
            self.unmap();
            let Some(total) = data_len.checked_add(page).and_then(|n| n.checked_add(page)) else {
                return false;
            };
            // SAFETY: an anonymous private mapping at an address of the kernel's choosing.
            let base = unsafe {
                mmap(
                    ptr::null_mut(),
                    total,
                    PROT_NONE,
                    MAP_PRIVATE | MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if base.addr() == MAP_FAILED || base.is_null() {
                return false;
            }
            let base = base.cast::<u8>();
            // SAFETY: `base + page .. base + page + data_len` lies inside the new mapping.
            let ok = unsafe { mprotect(base.add(page).cast(), data_len, PROT_READ | PROT_WRITE) };
            if ok != 0 {
                // SAFETY: the mapping just made.
                unsafe { munmap(base.cast(), total) };
                return false;
            }
            self.base = base;
            self.data_len = data_len;
            self.dirty = (0, 0);
            if let (Some(b), Some(d)) = (REGION_BASE.get(self.slot), REGION_DATA.get(self.slot)) {
                d.store(data_len, Ordering::SeqCst);
                b.store(base.addr(), Ordering::SeqCst);
            }
            true
        }

        /// Makes room for an object of `len` bytes ending at the data's end, zeroed (what the
        /// previous placement wrote is cleared); its address, or None if the memory cannot
        /// be had.
        pub fn prepare(&mut self, len: usize) -> Option<*mut u8> {
            if !self.grow(len) {
                return None;
            }
            let start = self.data_len.checked_sub(len)?;
            let (from, to) = self.dirty;
            if let Some(dirty) = self.data().get_mut(from..to) {
                dirty.fill(0);
            }
            self.dirty = (start, start);
            let offset = PAGE.load(Ordering::Relaxed).checked_add(start)?;
            // SAFETY: `page + start` is inside the mapping (start <= data_len).
            Some(unsafe { self.base.add(offset) })
        }

        /// Writes the object last prepared with `writer`, which returns how many of its bytes
        /// (from the start) it may have made non-zero.
        pub fn fill(&mut self, writer: impl FnOnce(&mut [u8]) -> usize) {
            let (start, _) = self.dirty;
            let data_len = self.data_len;
            let written = self.data().get_mut(start..).map_or(0, writer);
            self.dirty = (start, start.saturating_add(written).min(data_len));
        }

        /// The read-write data part (empty before the first growth).
        fn data(&mut self) -> &mut [u8] {
            if self.base.is_null() {
                return &mut [];
            }
            let page = PAGE.load(Ordering::Relaxed);
            // SAFETY: `base + page` starts the read-write data part of `data_len` bytes of
            // this region's own mapping; the slice borrows `self`, so it is the only one.
            unsafe { std::slice::from_raw_parts_mut(self.base.add(page), self.data_len) }
        }
    }

    impl Drop for GuardRegion {
        fn drop(&mut self) {
            self.unmap();
        }
    }

    /// Sets the guard granule (call once per run, before any region grows).
    pub fn init_page_size() {
        PAGE.store(page_size(), Ordering::Relaxed);
    }

    /// Where a faulting address lies: (region, index, side).
    fn locate(address: usize) -> (u32, u32, u32) {
        let page = PAGE.load(Ordering::Relaxed);
        let slots = CURRENT_SLOTS.load(Ordering::SeqCst).min(TRACKED_REGIONS);
        let first = if CURRENT_BUFFER.load(Ordering::SeqCst) == 0 {
            1
        } else {
            0
        };
        for slot in first..slots {
            let (Some(b), Some(d)) = (REGION_BASE.get(slot), REGION_DATA.get(slot)) else {
                break;
            };
            let base = b.load(Ordering::SeqCst);
            if base == 0 {
                continue;
            }
            let data = d.load(Ordering::SeqCst);
            let Some(data_start) = base.checked_add(page) else {
                continue;
            };
            let Some(data_end) = data_start.checked_add(data) else {
                continue;
            };
            let Some(end) = data_end.checked_add(page) else {
                continue;
            };
            if address < base || address >= end {
                continue;
            }
            let side = if address < data_start {
                SIDE_BEFORE
            } else if address >= data_end {
                SIDE_AFTER
            } else {
                SIDE_INSIDE
            };
            let (region, index) = match slot.checked_sub(1) {
                None => (REGION_BUFFER, 0),
                Some(i) => (REGION_MDL, u32::try_from(i).unwrap_or(u32::MAX)),
            };
            return (region, index, side);
        }
        (REGION_UNKNOWN, 0, SIDE_INSIDE)
    }

    /// The SIGSEGV/SIGBUS handler: records the fault in the run's [`Progress`] (atomic loads
    /// and volatile stores only: async-signal-safe), raises the signal again and returns.
    /// SA_RESETHAND has restored the default action, so the pending signal kills the process
    /// as soon as the handler returns (a signal sent with kill or raise too, not only a fault
    /// that would recur).
    extern "C" fn on_fault(signal: c_int, info: *mut SigInfo, _: *mut c_void) {
        record_fault(signal, info);
        // SAFETY: raise is async-signal-safe; the default action is back (SA_RESETHAND).
        unsafe { raise(signal) };
    }

    fn record_fault(signal: c_int, info: *mut SigInfo) {
        let address = if info.is_null() {
            0
        } else {
            // SAFETY: the kernel passes a valid siginfo_t with SA_SIGINFO; si_addr is at +16.
            unsafe { ptr::addr_of!((*info).si_addr).read() }
        };
        let (region, index, side) = locate(address);
        let progress = PROGRESS.load(Ordering::SeqCst);
        if progress.is_null() {
            return;
        }
        // SAFETY: PROGRESS is set only while the run's Progress is alive and writable.
        unsafe {
            ptr::addr_of_mut!((*progress).fault_address)
                .write_volatile(u64::try_from(address).unwrap_or(0));
            ptr::addr_of_mut!((*progress).fault_region).write_volatile(region);
            ptr::addr_of_mut!((*progress).fault_index).write_volatile(index);
            ptr::addr_of_mut!((*progress).fault_side).write_volatile(side);
            ptr::addr_of_mut!((*progress).fault_signal)
                .write_volatile(u32::try_from(signal).unwrap_or(0));
        }
    }

    /// Installs [`on_fault`] for SIGSEGV and SIGBUS (one shot each).
    pub fn catch_faults() -> bool {
        let handler: extern "C" fn(c_int, *mut SigInfo, *mut c_void) = on_fault;
        let action = SigAction {
            sa_sigaction: handler as usize,
            sa_mask: [0; 16],
            sa_flags: SA_SIGINFO | SA_RESETHAND,
            sa_restorer: 0,
        };
        [SIGSEGV, SIGBUS].iter().all(|&signal| {
            // SAFETY: `action` is a valid glibc struct sigaction; the old action is not wanted.
            unsafe { sigaction(signal, &raw const action, ptr::null_mut()) == 0 }
        })
    }

    /// Where the run reports progress (NULL: nowhere). Must outlive the run; cleared after.
    pub fn set_progress(progress: *mut Progress) {
        PROGRESS.store(progress, Ordering::SeqCst);
    }

    /// Publishes the progress of a run (volatile: a parent process may be watching).
    pub fn publish(progress: *mut Progress, shapes_done: u64, results_len: u64) {
        if progress.is_null() {
            return;
        }
        // SAFETY: non-NULL and writable by vmbsweep_run's contract.
        unsafe {
            ptr::addr_of_mut!((*progress).results_len).write_volatile(results_len);
            ptr::addr_of_mut!((*progress).shapes_done).write_volatile(shapes_done);
        }
    }

    /// Clears the fault fields of `progress`.
    pub fn clear_fault(progress: *mut Progress) {
        if progress.is_null() {
            return;
        }
        // SAFETY: non-NULL and writable by vmbsweep_run's contract.
        unsafe {
            ptr::addr_of_mut!((*progress).fault_address).write_volatile(0);
            ptr::addr_of_mut!((*progress).fault_signal).write_volatile(0);
            ptr::addr_of_mut!((*progress).fault_region).write_volatile(REGION_UNKNOWN);
            ptr::addr_of_mut!((*progress).fault_index).write_volatile(0);
            ptr::addr_of_mut!((*progress).fault_side).write_volatile(SIDE_INSIDE);
        }
    }

    /// The caller's byte slices from raw parts.
    ///
    /// # Safety
    /// `pointer` is readable for `len` bytes for the lifetime chosen (NULL only with 0).
    pub unsafe fn input<'a>(pointer: *const u8, len: usize) -> &'a [u8] {
        if len == 0 || pointer.is_null() {
            return &[];
        }
        // SAFETY: the contract of this function.
        unsafe { std::slice::from_raw_parts(pointer, len) }
    }

    /// The caller's writable results buffer.
    ///
    /// # Safety
    /// `pointer` is writable for `len` bytes for the lifetime chosen, and not aliased.
    pub unsafe fn output<'a>(pointer: *mut u8, len: usize) -> &'a mut [u8] {
        if len == 0 || pointer.is_null() {
            return &mut [];
        }
        // SAFETY: the contract of this function.
        unsafe { std::slice::from_raw_parts_mut(pointer, len) }
    }

    /// The library path as a C string.
    ///
    /// # Safety
    /// `path` is a NUL-terminated string.
    pub unsafe fn c_path<'a>(path: *const c_char) -> &'a CStr {
        // SAFETY: the contract of this function.
        unsafe { CStr::from_ptr(path) }
    }
}

/// The memory of one run: a guarded region per chain position and one for the buffer, and
/// the scratch buffer packets are taken into.
#[cfg(target_os = "linux")]
struct Arena {
    buffer: os::GuardRegion,
    mdls: Vec<os::GuardRegion>,
    addresses: Vec<*mut u8>,
    packet: Vec<u8>,
}

#[cfg(target_os = "linux")]
impl Arena {
    fn new(ring_data_size: u32) -> Self {
        let capacity = usize::try_from(ring_data_size).unwrap_or(0);
        Self {
            buffer: os::GuardRegion::new(0),
            mdls: Vec::new(),
            addresses: Vec::new(),
            packet: vec![0; capacity],
        }
    }

    /// Lays out the shape's buffer and MDL chain; (buffer pointer, first MDL pointer), or
    /// None if guard memory cannot be had.
    fn lay_out(&mut self, shape: &plan::Shape<'_>) -> Option<(*mut u8, *mut u8)> {
        let buffer = match shape.buffer {
            None => std::ptr::null_mut(),
            Some(bytes) => {
                let pointer = self.buffer.prepare(bytes.len())?;
                self.buffer.fill(|out| {
                    out.copy_from_slice(bytes);
                    bytes.len()
                });
                pointer
            }
        };
        while self.mdls.len() < shape.mdls.len() {
            let slot = self.mdls.len().checked_add(1)?;
            self.mdls.push(os::GuardRegion::new(slot));
        }
        // First every MDL's place (so each knows its successor's address), then the headers.
        self.addresses.clear();
        for (region, mdl) in self.mdls.iter_mut().zip(&shape.mdls) {
            self.addresses.push(region.prepare(mdl.size()?)?);
        }
        for (i, (region, mdl)) in self.mdls.iter_mut().zip(&shape.mdls).enumerate() {
            let next = self
                .addresses
                .get(i.checked_add(1)?)
                .map_or(0, |p| p.addr());
            region.fill(|out| {
                plan::write_mdl(out, mdl, next);
                MDL_HEADER_SIZE.saturating_add(mdl.pfns.len())
            });
        }
        let first = self
            .addresses
            .first()
            .copied()
            .unwrap_or(std::ptr::null_mut());
        Some((buffer, first))
    }
}

/// Runs one shape; its record and the packet (in `arena.packet`, the first `packet_len`
/// bytes), or None when guard memory could not be had.
#[cfg(target_os = "linux")]
fn run_shape(
    library: &os::Library,
    ring_data_size: u32,
    arena: &mut Arena,
    shape: &plan::Shape<'_>,
) -> Option<(plan::Record, usize)> {
    let mut record = plan::Record::default();
    let (status, channel) = library.create_channel(ring_data_size);
    if status != STATUS_SUCCESS {
        record.error = SHAPE_CHANNEL_CREATE_FAILED;
        record.detail = status;
        return Some((record, 0));
    }
    if channel.is_null() {
        record.error = SHAPE_CHANNEL_NULL;
        return Some((record, 0));
    }
    let result = run_on_channel(library, channel, arena, shape, record);
    library.destroy_channel(channel);
    result
}

#[cfg(target_os = "linux")]
fn run_on_channel(
    library: &os::Library,
    channel: *mut c_void,
    arena: &mut Arena,
    shape: &plan::Shape<'_>,
    mut record: plan::Record,
) -> Option<(plan::Record, usize)> {
    let status = library.open_channel(channel);
    if status != STATUS_SUCCESS {
        record.error = SHAPE_CHANNEL_OPEN_FAILED;
        record.detail = status;
        return Some((record, 0));
    }
    let packet = library.allocate_packet(channel, count_completion);
    if packet.is_null() {
        record.error = SHAPE_ALLOCATE_FAILED;
        return Some((record, 0));
    }
    let (buffer, mdl) = arena.lay_out(shape)?;
    os::set_current(shape.mdls.len(), shape.buffer.is_some());
    CALLS.store(0, Ordering::Relaxed);
    record.status = library.send(
        packet,
        buffer,
        shape.buffer_length,
        mdl,
        shape.mdl_offset,
        shape.mdl_length,
        shape.flags,
    );
    record.calls = CALLS.load(Ordering::Relaxed);
    let capacity = arena.packet.len();
    let (status, length) = library.take_packet(channel, &mut arena.packet);
    let length_usize = usize::try_from(length).unwrap_or(usize::MAX);
    let mut packet_len = 0;
    if status == STATUS_SUCCESS {
        if length_usize > capacity {
            record.error = SHAPE_LENGTH_ABOVE_CAPACITY;
            record.detail = length;
        } else {
            packet_len = length_usize;
        }
    } else if status == STATUS_BUFFER_TOO_SMALL {
        record.error = SHAPE_IMPOSSIBLE_TOO_SMALL;
        record.detail = length;
    } else {
        record.error = SHAPE_TAKE_FAILED;
        record.detail = status;
    }
    library.free_packet(packet);
    Some((record, packet_len))
}

/// The loop of [`vmbsweep_run`] once the arguments are checked.
#[cfg(target_os = "linux")]
fn run_batch(
    library: &os::Library,
    ring_data_size: u32,
    shapes: &[u8],
    results: &mut [u8],
    progress: *mut Progress,
) -> i32 {
    let mut arena = Arena::new(ring_data_size);
    let mut reader = plan::Reader::new(shapes);
    let mut shape = plan::Shape::default();
    let mut done: u64 = 0;
    let mut written: usize = 0;
    while !reader.at_end() {
        if reader.next_into(&mut shape).is_none() {
            return VMBSWEEP_BAD_SHAPE;
        }
        let Some((record, packet_len)) = run_shape(library, ring_data_size, &mut arena, &shape)
        else {
            return VMBSWEEP_OUT_OF_MEMORY;
        };
        let packet = arena.packet.get(..packet_len).unwrap_or_default();
        if !plan::write_record(results, &mut written, record, packet) {
            return VMBSWEEP_RESULTS_FULL;
        }
        done = done.saturating_add(1);
        os::publish(progress, done, u64::try_from(written).unwrap_or(u64::MAX));
    }
    VMBSWEEP_OK
}

/// Runs the batch of encoded `shapes` on the library at `library_path` and writes one record
/// per shape to `results` (encodings in the module documentation). `progress` (required) is
/// first written once the library is loaded (shapes_done 0), then after every shape; with
/// `options & VMBSWEEP_CATCH_FAULTS` a fault is recorded there before it kills the process.
/// Returns a `VMBSWEEP_*` code.
///
/// # Safety
/// `library_path` is a NUL-terminated path; `shapes` is readable for `shapes_len` bytes and
/// `results` writable for `results_capacity` bytes (either may be NULL when its length is 0);
/// `progress` is writable and stays so until the process ends when faults are caught. The
/// library at the path has the vmbcore.h ABI.
#[unsafe(no_mangle)]
#[allow(unsafe_code)]
pub unsafe extern "C" fn vmbsweep_run(
    library_path: *const c_char,
    ring_data_size: u32,
    shapes: *const u8,
    shapes_len: usize,
    results: *mut u8,
    results_capacity: usize,
    progress: *mut Progress,
    options: u32,
) -> i32 {
    if library_path.is_null()
        || progress.is_null()
        || (shapes.is_null() && shapes_len > 0)
        || (results.is_null() && results_capacity > 0)
    {
        return VMBSWEEP_BAD_ARGUMENT;
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (ring_data_size, options);
        VMBSWEEP_UNSUPPORTED
    }
    #[cfg(target_os = "linux")]
    {
        let _lock = RUN_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            os::init_page_size();
            // SAFETY: the contract of vmbsweep_run.
            let path = unsafe { os::c_path(library_path) };
            // SAFETY: the contract of vmbsweep_run: the library has the vmbcore.h ABI.
            let library = match unsafe { os::Library::load(path) } {
                Ok(library) => library,
                Err(os::LoadError::Open) => return VMBSWEEP_LOAD_FAILED,
                Err(os::LoadError::Missing) => return VMBSWEEP_MISSING_SYMBOL,
            };
            // Only now, with the library loaded (its initialisers run), is progress written:
            // a watcher that still sees its own initial value knows no shape was reached.
            os::publish(progress, 0, 0);
            os::clear_fault(progress);
            // SAFETY: the contract of vmbsweep_run.
            let shapes = unsafe { os::input(shapes, shapes_len) };
            // SAFETY: the contract of vmbsweep_run.
            let results = unsafe { os::output(results, results_capacity) };
            os::set_progress(progress);
            if options & VMBSWEEP_CATCH_FAULTS != 0 && !os::catch_faults() {
                os::set_progress(std::ptr::null_mut());
                return VMBSWEEP_BAD_ARGUMENT;
            }
            let code = run_batch(&library, ring_data_size, shapes, results, progress);
            if options & VMBSWEEP_CATCH_FAULTS == 0 {
                os::set_progress(std::ptr::null_mut());
            }
            code
        }));
        outcome.unwrap_or(VMBSWEEP_PANIC)
    }
}

/// The library's raw rate, timed from Rust: `cycles` cycles of `VmbPacketSendWithExternalMdl`
/// (an 8-byte buffer, one MDL of one page, MdlLength 0x100, WAIT_FOR_COMPLETION) +
/// `vmbcore_host_take_packet` + `vmbcore_host_complete` on one packet of one open channel of
/// 64 KiB, as `examples/raw_loop.rs` does but through dlopen like [`vmbsweep_run`]. Writes
/// the elapsed nanoseconds. Returns a `VMBSWEEP_*` code.
///
/// # Safety
/// `library_path` is a NUL-terminated path of a library with the vmbcore.h ABI;
/// `nanoseconds` is writable.
#[unsafe(no_mangle)]
#[allow(unsafe_code)]
pub unsafe extern "C" fn vmbsweep_raw_rate(
    library_path: *const c_char,
    cycles: u64,
    nanoseconds: *mut u64,
) -> i32 {
    if library_path.is_null() || nanoseconds.is_null() || cycles == 0 {
        return VMBSWEEP_BAD_ARGUMENT;
    }
    #[cfg(not(target_os = "linux"))]
    {
        VMBSWEEP_UNSUPPORTED
    }
    #[cfg(target_os = "linux")]
    {
        let _lock = RUN_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: the contract of vmbsweep_raw_rate.
            let path = unsafe { os::c_path(library_path) };
            // SAFETY: the contract of vmbsweep_raw_rate: the library has the vmbcore.h ABI.
            let library = match unsafe { os::Library::load(path) } {
                Ok(library) => library,
                Err(os::LoadError::Open) => return Err(VMBSWEEP_LOAD_FAILED),
                Err(os::LoadError::Missing) => return Err(VMBSWEEP_MISSING_SYMBOL),
            };
            raw_cycles(&library, cycles)
        }));
        match outcome {
            Ok(Ok(elapsed)) => {
                // SAFETY: non-NULL and writable by this function's contract.
                unsafe { nanoseconds.write(elapsed) };
                VMBSWEEP_OK
            }
            Ok(Err(code)) => code,
            Err(_) => VMBSWEEP_PANIC,
        }
    }
}

/// The cycles of [`vmbsweep_raw_rate`]; the elapsed nanoseconds.
#[cfg(target_os = "linux")]
fn raw_cycles(library: &os::Library, cycles: u64) -> Result<u64, i32> {
    const RING: u32 = 0x1_0000;
    let (status, channel) = library.create_channel(RING);
    if status != STATUS_SUCCESS || channel.is_null() {
        return Err(VMBSWEEP_CYCLE_FAILED);
    }
    let result = (|| {
        if library.open_channel(channel) != STATUS_SUCCESS {
            return Err(VMBSWEEP_CYCLE_FAILED);
        }
        let packet = library.allocate_packet(channel, count_completion);
        if packet.is_null() {
            return Err(VMBSWEEP_CYCLE_FAILED);
        }
        let mut arena = Arena::new(RING);
        let pfn = 0x1234_u64.to_le_bytes();
        let shape = plan::Shape {
            mdl_offset: 0,
            mdl_length: 0x100,
            flags: FLAG_WAIT_FOR_COMPLETION,
            buffer: Some(b"payload!"),
            buffer_length: 8,
            mdls: vec![plan::MdlShape {
                byte_offset: 0,
                byte_count: 0x1000,
                pfns: &pfn,
            }],
        };
        let (buffer, mdl) = arena.lay_out(&shape).ok_or(VMBSWEEP_OUT_OF_MEMORY)?;
        CALLS.store(0, Ordering::Relaxed);
        let started = Instant::now();
        for _ in 0..cycles {
            let status = library.send(packet, buffer, 8, mdl, 0, 0x100, FLAG_WAIT_FOR_COMPLETION);
            let (take, length) = library.take_packet(channel, &mut arena.packet);
            let id = arena
                .packet
                .get(8..16)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_le_bytes);
            let (Some(id), STATUS_SUCCESS, STATUS_SUCCESS, 16..) = (id, status, take, length)
            else {
                return Err(VMBSWEEP_CYCLE_FAILED);
            };
            if library.complete(channel, id) != STATUS_SUCCESS {
                return Err(VMBSWEEP_CYCLE_FAILED);
            }
        }
        let elapsed = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        if u64::from(CALLS.load(Ordering::Relaxed)) != cycles.min(u64::from(u32::MAX)) {
            return Err(VMBSWEEP_CYCLE_FAILED);
        }
        library.free_packet(packet);
        Ok(elapsed)
    })();
    library.destroy_channel(channel);
    result
}
