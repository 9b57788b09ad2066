//! Raw-speed reference for `bench/bench_native.py`: the core's own send / take / complete
//! cycle through its C ABI, called from Rust (no Python, no ctypes).
//!
//! `cargo run --offline --release --example raw_loop -- [CYCLES]` prints one line,
//! `cycles=N seconds=S cycles_per_second=R abi_calls_per_second=R3`, where a cycle is
//! VmbPacketSendWithExternalMdl + vmbcore_host_take_packet + vmbcore_host_complete (and the
//! completion routine it runs) on one packet with one MDL of one page.
#![allow(unsafe_code)]

use std::ffi::c_void;
use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use vmbcore::NtStatus;
use vmbcore::ffi::{
    Mdl, VmbPacket, VmbPacketAllocate, VmbPacketSendWithExternalMdl, VmbPacketSetCompletionRoutine,
    vmbcore_channel_create, vmbcore_channel_destroy, vmbcore_channel_open, vmbcore_host_complete,
    vmbcore_host_take_packet,
};

const WAIT_FOR_COMPLETION: u32 = 0x1;
const RING_DATA_SIZE: u32 = 0x1_0000;

/// An MDL header with its one-entry PFN array right after it, as Windows x64 lays it out.
#[repr(C)]
struct OnePageMdl {
    header: Mdl,
    pfns: [u64; 1],
}

static COMPLETED: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn on_complete(_: VmbPacket, _: NtStatus, _: *mut c_void, _: u32) {
    COMPLETED.fetch_add(1, Ordering::Relaxed);
}

fn check(what: &str, status: NtStatus) {
    assert!(status == 0, "{what} failed with NTSTATUS {status:#010x}");
}

fn main() {
    let cycles: u64 = std::env::args().nth(1).map_or(1_000_000, |arg| {
        arg.parse().expect("CYCLES must be a number")
    });
    let mut channel = ptr::null_mut();
    // SAFETY: `channel` is a writable handle slot.
    check("vmbcore_channel_create", unsafe {
        vmbcore_channel_create(RING_DATA_SIZE, &raw mut channel)
    });
    check("vmbcore_channel_open", vmbcore_channel_open(channel));
    let packet = VmbPacketAllocate(channel);
    assert!(!packet.is_null(), "VmbPacketAllocate failed");
    VmbPacketSetCompletionRoutine(packet, Some(on_complete));

    let mut mdl = OnePageMdl {
        header: Mdl {
            next: ptr::null_mut(),
            size: 0x38,
            mdl_flags: 0x2,
            process: ptr::null_mut(),
            mapped_system_va: ptr::null_mut(),
            start_va: ptr::null_mut(),
            byte_count: 0x1000,
            byte_offset: 0,
        },
        pfns: [0x1234],
    };
    let mut buffer = *b"payload!";
    let mut out = vec![0_u8; 0x1000];
    let capacity = u32::try_from(out.len()).expect("small buffer");

    let started = Instant::now();
    for _ in 0..cycles {
        // SAFETY: the buffer is readable for 8 bytes and the MDL has the one PFN that
        // ADDRESS_AND_SIZE_TO_SPAN_PAGES(0, 0x1000) asks for; both outlive the call.
        check("VmbPacketSendWithExternalMdl", unsafe {
            VmbPacketSendWithExternalMdl(
                packet,
                buffer.as_mut_ptr().cast(),
                8,
                (&raw mut mdl).cast(),
                0,
                0x100,
                WAIT_FOR_COMPLETION,
            )
        });
        let mut length = 0_u32;
        // SAFETY: `out` is writable for `capacity` bytes and `length` for one u32.
        check("vmbcore_host_take_packet", unsafe {
            vmbcore_host_take_packet(channel, out.as_mut_ptr(), capacity, &raw mut length)
        });
        let id: [u8; 8] = out
            .get(8..16)
            .and_then(|bytes| bytes.try_into().ok())
            .expect("a packet has a transaction id at +8");
        // SAFETY: no completion bytes: NULL with length 0.
        check("vmbcore_host_complete", unsafe {
            vmbcore_host_complete(channel, u64::from_le_bytes(id), 0, ptr::null(), 0)
        });
        black_box(&out);
    }
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(
        COMPLETED.load(Ordering::Relaxed),
        cycles,
        "every cycle completes"
    );
    vmbcore_channel_destroy(channel);

    #[allow(clippy::cast_precision_loss)]
    let rate = cycles as f64 / seconds;
    println!(
        "cycles={cycles} seconds={seconds:.3} cycles_per_second={rate:.0} \
         abi_calls_per_second={:.0}",
        rate * 3.0
    );
}
