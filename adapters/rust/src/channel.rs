//! A channel's send side: packet objects, the FIFO send queue, the ring, completions.
//!
//! Theory of operation (docs/target-behaviour.md, "Channel", "Packet objects", "Completion"):
//!
//! | packet state          | send            | free           | host takes | host completes |
//! |-----------------------|-----------------|----------------|------------|----------------|
//! | `Idle`                | -> Queued/InRing| gone           |            |                |
//! | `Queued`              | busy (A10)      | busy, ignored  |            |                |
//! | `InRing`              | busy            | busy, ignored  | -> Awaiting|                |
//! | `AwaitingCompletion`  | busy            | busy, ignored  |            | -> Idle + call |
//!
//! A send builds the whole packet at the call (the in-line buffer is copied then, always:
//! reading A11 allows it, and it makes PAGED_BUFFER trivially right). An accepted packet goes
//! to the ring when the channel is open, the queue is empty and it fits; otherwise to the back
//! of the queue. The queue is flushed in order on `open` and whenever the host takes a packet.
//!
//! `disable` gives every outstanding packet (queued, in the ring, taken and not completed)
//! exactly one [`Completion`] with STATUS_CANCELLED, in send order; afterwards the host sees no
//! packets, completions are ignored and sends fail with [`Error::ChannelDisabled`].
//!
//! This module never calls out: completions are returned as values and the caller (the FFI
//! layer) runs the completion routines after releasing its lock, so a routine may call back in.

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::mdl::{MdlDesc, OwnedMdl, plan_ranges};
use crate::ring::{Ring, TRAILER_SIZE};
use crate::status::{NtStatus, STATUS_CANCELLED};
use crate::wire::{self, GpaRange, Layout};

/// VMBUS_CHANNEL_FORMAT_FLAG_WAIT_FOR_COMPLETION.
pub const FLAG_WAIT_FOR_COMPLETION: u32 = 0x1;
/// VMBUS_CHANNEL_FORMAT_FLAG_FORCE_MDL_LENGTH.
pub const FLAG_FORCE_MDL_LENGTH: u32 = 0x2;
/// VMBUS_CHANNEL_FORMAT_FLAG_PAGED_BUFFER (the buffer is always copied at the call).
pub const FLAG_PAGED_BUFFER: u32 = 0x4;

/// A packet object's identity; also its C handle value. Unique in the process, never reused,
/// so a freed handle is recognised instead of aliasing a new packet (reading A10).
pub type PacketId = u64;
/// A transaction id as written in the packet descriptor.
pub type TransactionId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(0x1000);

/// A fresh process-unique id (packets and channels share the space, so handles never collide).
#[must_use]
pub fn fresh_id() -> u64 {
    // 2^64 ids cannot run out in practice; wrapping here would only repeat very old ids.
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Where a packet object is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketState {
    /// Allocated or completed: may be sent or freed.
    Idle,
    /// Accepted and waiting in the channel's FIFO queue.
    Queued,
    /// Written to the ring, not yet taken by the host.
    InRing,
    /// Taken by the host, waiting for its completion packet.
    AwaitingCompletion,
}

/// Whether the channel is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    /// Created, not yet open: sends are queued.
    Initialized,
    /// Open: sends go to the ring when they fit.
    Open,
    /// Disabled for good.
    Disabled,
}

/// One completion-routine call to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The packet completed.
    pub packet: PacketId,
    /// The status given to the routine.
    pub status: NtStatus,
    /// The completion bytes given to the routine.
    pub data: Vec<u8>,
}

/// The arguments of VmbPacketSendWithExternalMdl after the FFI checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct SendRequest<'a> {
    /// `Buffer`: `None` for NULL, else exactly `BufferLength` bytes.
    pub buffer: Option<&'a [u8]>,
    /// `BufferLength`.
    pub buffer_length: u32,
    /// `ExternalDataMdl` as validated headers: `None` for NULL, else at least one MDL (only the
    /// first when FORCE_MDL_LENGTH is set).
    pub chain: Option<&'a [MdlDesc]>,
    /// `MdlOffset`.
    pub mdl_offset: u32,
    /// `MdlLength`.
    pub mdl_length: u32,
    /// `Flags`; bits outside 0x7 are ignored (reading A7 (a)).
    pub flags: u32,
}

#[derive(Debug)]
struct Packet {
    state: PacketState,
    transaction: Option<TransactionId>,
    /// The encoded packet while it is queued.
    bytes: Vec<u8>,
}

/// The guest side of one channel.
#[derive(Debug)]
pub struct Channel {
    state: ChannelState,
    ring: Ring,
    packets: BTreeMap<PacketId, Packet>,
    queue: VecDeque<PacketId>,
    /// Every transaction not yet completed: queued, in the ring or awaiting completion.
    outstanding: BTreeMap<TransactionId, PacketId>,
    next_transaction: TransactionId,
}

impl Channel {
    /// A channel, not yet open, whose ring has a data area of `ring_data_size` bytes.
    pub fn new(ring_data_size: u32) -> Result<Self> {
        Ok(Self {
            state: ChannelState::Initialized,
            ring: Ring::new(ring_data_size)?,
            packets: BTreeMap::new(),
            queue: VecDeque::new(),
            outstanding: BTreeMap::new(),
            next_transaction: 1,
        })
    }

    /// Whether the channel is open.
    #[must_use]
    pub const fn state(&self) -> ChannelState {
        self.state
    }

    /// The ring.
    #[must_use]
    pub const fn ring(&self) -> &Ring {
        &self.ring
    }

    /// Packets waiting in the FIFO queue.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Opens the channel and writes what was queued. Opening an open channel does nothing.
    pub fn open(&mut self) -> Result<()> {
        match self.state {
            ChannelState::Disabled => Err(Error::ChannelDisabled),
            ChannelState::Open => Ok(()),
            ChannelState::Initialized => {
                self.state = ChannelState::Open;
                self.flush()
            }
        }
    }

    /// Disables the channel: one STATUS_CANCELLED completion per outstanding packet, in send
    /// order. Disabling twice returns nothing the second time.
    pub fn disable(&mut self) -> Vec<Completion> {
        self.state = ChannelState::Disabled;
        self.queue.clear();
        self.ring.set_pending_send_size(0);
        let outstanding = std::mem::take(&mut self.outstanding);
        let mut done = Vec::with_capacity(outstanding.len());
        for packet in outstanding.into_values() {
            if let Some(p) = self.packets.get_mut(&packet) {
                p.state = PacketState::Idle;
                p.transaction = None;
                p.bytes = Vec::new();
            }
            done.push(Completion {
                packet,
                status: STATUS_CANCELLED,
                data: Vec::new(),
            });
        }
        done
    }

    /// VmbPacketAllocate: a new idle packet. Resources are reserved here (the ring is
    /// preallocated and a packet object is a few words), so this does not fail.
    pub fn allocate_packet(&mut self) -> PacketId {
        let id = fresh_id();
        self.packets.insert(
            id,
            Packet {
                state: PacketState::Idle,
                transaction: None,
                bytes: Vec::new(),
            },
        );
        id
    }

    /// The state of a packet of this channel, `None` if unknown or freed.
    #[must_use]
    pub fn packet_state(&self, packet: PacketId) -> Option<PacketState> {
        self.packets.get(&packet).map(|p| p.state)
    }

    /// The packets this channel owns.
    pub fn packet_ids(&self) -> impl Iterator<Item = PacketId> + '_ {
        self.packets.keys().copied()
    }

    /// VmbPacketFree. Freeing an outstanding packet is a contract violation: refused with
    /// [`Error::PacketBusy`] and nothing changes (the packet completes later as usual).
    pub fn free_packet(&mut self, packet: PacketId) -> Result<()> {
        self.check_sendable(packet)?;
        self.packets.remove(&packet);
        Ok(())
    }

    /// Whether `packet` may be sent now: it exists and is idle (reading A10).
    pub fn check_sendable(&self, packet: PacketId) -> Result<()> {
        match self.packets.get(&packet) {
            None => Err(Error::UnknownPacket { packet }),
            Some(p) if p.state != PacketState::Idle => Err(Error::PacketBusy { packet }),
            Some(_) => Ok(()),
        }
    }

    /// VmbPacketSendWithExternalMdl. `pfn(mdl_index, pfn_index)` returns a PFN of the chain;
    /// it is only asked for indices below that MDL's `pfn_count()`, and only after the packet
    /// is known to be acceptable. Returns the transaction id.
    pub fn send(
        &mut self,
        packet: PacketId,
        request: &SendRequest<'_>,
        pfn: &dyn Fn(usize, u64) -> u64,
    ) -> Result<TransactionId> {
        self.check_sendable(packet)?;
        if self.state == ChannelState::Disabled {
            return Err(Error::ChannelDisabled);
        }
        if request.flags & FLAG_WAIT_FOR_COMPLETION == 0 {
            return Err(Error::MissingWaitForCompletion {
                flags: request.flags,
            });
        }
        let payload: &[u8] = match request.buffer {
            None if request.buffer_length != 0 => {
                return Err(Error::NullBuffer {
                    length: request.buffer_length,
                });
            }
            None => &[],
            Some(bytes) => {
                if u64::try_from(bytes.len()).ok() != Some(u64::from(request.buffer_length)) {
                    return Err(Error::Overflow {
                        what: "buffer slice disagrees with BufferLength",
                    });
                }
                bytes
            }
        };
        let plan = match request.chain {
            None if request.mdl_offset != 0 || request.mdl_length != 0 => {
                return Err(Error::NullMdlWithRange {
                    offset: request.mdl_offset,
                    length: request.mdl_length,
                });
            }
            None => None,
            Some(chain) => Some(plan_ranges(
                chain,
                request.mdl_offset,
                request.mdl_length,
                request.flags & FLAG_FORCE_MDL_LENGTH != 0,
            )?),
        };
        let counts: Option<Vec<u64>> = plan
            .as_ref()
            .map(|ranges| ranges.iter().map(|r| r.pfn_count).collect());
        let layout = Layout::new(counts.as_deref(), u64::from(request.buffer_length))?;
        if !self.ring.could_ever_fit(layout.total) {
            return Err(Error::NeverFits {
                total: layout.total,
                ring_data_size: self.ring.data_size(),
            });
        }

        // Accepted. Only now read PFNs: at most the ring's size worth of them.
        let mut ranges = Vec::new();
        for r in plan.iter().flatten() {
            let mut pfns = Vec::new();
            let mut index = r.first_pfn;
            let end = r
                .first_pfn
                .checked_add(r.pfn_count)
                .ok_or(Error::Overflow { what: "PFN index" })?;
            while index < end {
                pfns.push(pfn(r.mdl_index, index));
                index = index
                    .checked_add(1)
                    .ok_or(Error::Overflow { what: "PFN index" })?;
            }
            ranges.push(GpaRange {
                byte_count: r.byte_count,
                byte_offset: r.byte_offset,
                pfns,
            });
        }
        let transaction = self.next_transaction;
        let bytes = wire::encode(layout, transaction, &ranges, payload)?;
        self.next_transaction = transaction.checked_add(1).ok_or(Error::Overflow {
            what: "transaction id",
        })?;

        let p = self
            .packets
            .get_mut(&packet)
            .ok_or(Error::UnknownPacket { packet })?;
        p.state = PacketState::Queued;
        p.transaction = Some(transaction);
        p.bytes = bytes;
        self.outstanding.insert(transaction, packet);
        self.queue.push_back(packet);
        self.flush()?;
        Ok(transaction)
    }

    /// [`Channel::send`] for Rust callers holding [`OwnedMdl`]s.
    pub fn send_owned(
        &mut self,
        packet: PacketId,
        buffer: Option<&[u8]>,
        chain: Option<&[OwnedMdl]>,
        mdl_offset: u32,
        mdl_length: u32,
        flags: u32,
    ) -> Result<TransactionId> {
        let buffer_length = match buffer {
            Some(b) => u32::try_from(b.len()).map_err(|_| Error::Overflow {
                what: "BufferLength",
            })?,
            None => 0,
        };
        let descs: Option<Vec<MdlDesc>> = chain.map(|c| c.iter().map(OwnedMdl::desc).collect());
        let request = SendRequest {
            buffer,
            buffer_length,
            chain: descs.as_deref(),
            mdl_offset,
            mdl_length,
            flags,
        };
        let lookup = |mdl: usize, index: u64| -> u64 {
            chain
                .and_then(|c| c.get(mdl))
                .and_then(|m| m.pfns().get(usize::try_from(index).ok()?).copied())
                .unwrap_or(0)
        };
        self.send(packet, &request, &lookup)
    }

    /// Writes queued packets, in order, while the channel is open and the head fits.
    fn flush(&mut self) -> Result<()> {
        if self.state != ChannelState::Open {
            return Ok(());
        }
        while let Some(&head) = self.queue.front() {
            let packet = self
                .packets
                .get_mut(&head)
                .ok_or(Error::UnknownPacket { packet: head })?;
            let total = u64::try_from(packet.bytes.len()).map_err(|_| Error::Overflow {
                what: "packet length",
            })?;
            if !self.ring.fits(total)? {
                let need = total.checked_add(TRAILER_SIZE).ok_or(Error::Overflow {
                    what: "pending_send_size",
                })?;
                self.ring
                    .set_pending_send_size(u32::try_from(need).unwrap_or(u32::MAX));
                return Ok(());
            }
            self.ring.write_packet(&packet.bytes)?;
            packet.bytes = Vec::new();
            packet.state = PacketState::InRing;
            self.queue.pop_front();
        }
        self.ring.set_pending_send_size(0);
        Ok(())
    }

    /// The length of the next packet in the ring, `None` if empty (or disabled).
    pub fn host_peek_length(&self) -> Result<Option<u64>> {
        if self.state == ChannelState::Disabled {
            return Ok(None);
        }
        self.ring.peek_length()
    }

    /// The host removes the next packet from the ring (without its trailer); room appears, so
    /// the queue is flushed. `None` when the ring is empty or the channel is disabled.
    pub fn host_take_packet(&mut self) -> Result<Option<Vec<u8>>> {
        if self.state == ChannelState::Disabled {
            return Ok(None);
        }
        let Some(bytes) = self.ring.read_packet()? else {
            return Ok(None);
        };
        let (read_index, write_index) = (0, 0);
        let descriptor = wire::Descriptor::parse(&bytes).ok_or(Error::RingCorrupt {
            read_index,
            write_index,
        })?;
        let packet = self
            .outstanding
            .get(&descriptor.transaction_id)
            .and_then(|id| self.packets.get_mut(id))
            .ok_or(Error::RingCorrupt {
                read_index,
                write_index,
            })?;
        packet.state = PacketState::AwaitingCompletion;
        self.flush()?;
        Ok(Some(bytes))
    }

    /// The host's completion packet for `transaction_id`. Returns the completion to deliver;
    /// `None` when the channel is disabled (completions are then ignored).
    pub fn host_complete(
        &mut self,
        transaction_id: TransactionId,
        status: NtStatus,
        data: &[u8],
    ) -> Result<Option<Completion>> {
        if self.state == ChannelState::Disabled {
            return Ok(None);
        }
        let unknown = Error::UnknownTransaction { transaction_id };
        let id = *self
            .outstanding
            .get(&transaction_id)
            .ok_or(unknown.clone())?;
        let packet = self.packets.get_mut(&id).ok_or(unknown.clone())?;
        if packet.state != PacketState::AwaitingCompletion {
            return Err(unknown);
        }
        packet.state = PacketState::Idle;
        packet.transaction = None;
        self.outstanding.remove(&transaction_id);
        Ok(Some(Completion {
            packet: id,
            status,
            data: data.to_vec(),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects, clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::status::STATUS_SUCCESS;

    const W: u32 = FLAG_WAIT_FOR_COMPLETION;

    fn mdl(bo: u32, bc: u32, first_pfn: u64) -> OwnedMdl {
        let n = crate::mdl::span_pages(u64::from(bo), u64::from(bc)).unwrap();
        OwnedMdl::new(bo, bc, (first_pfn..first_pfn + n).collect()).unwrap()
    }

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    fn open_channel(size: u32) -> Channel {
        let mut ch = Channel::new(size).unwrap();
        ch.open().unwrap();
        ch
    }

    #[test]
    fn worked_example() {
        let mut ch = open_channel(16384);
        let p = ch.allocate_packet();
        let buffer: Vec<u8> = (0..0x40).collect();
        let chain = [mdl(0x100, 0x2000, 0x500)];
        let txid = ch
            .send_owned(p, Some(&buffer), Some(&chain), 0, 0, W)
            .unwrap();
        let b = ch.host_take_packet().unwrap().unwrap();
        assert_eq!(u16_at(&b, 0), 9);
        assert_eq!(u16_at(&b, 2), 7);
        assert_eq!(u16_at(&b, 4), 15);
        assert_eq!(u16_at(&b, 6), 1);
        assert_eq!(u64_at(&b, 8), txid);
        assert_eq!(u32_at(&b, 0x10), 0);
        assert_eq!(u32_at(&b, 0x14), 1);
        assert_eq!(u32_at(&b, 0x18), 0x2000);
        assert_eq!(u32_at(&b, 0x1C), 0x100);
        assert_eq!(
            [u64_at(&b, 0x20), u64_at(&b, 0x28), u64_at(&b, 0x30)],
            [0x500, 0x501, 0x502]
        );
        assert_eq!(&b[56..120], &buffer[..]);
        assert_eq!(b.len(), 120);
        assert_eq!(ch.packet_state(p), Some(PacketState::AwaitingCompletion));
        let done = ch
            .host_complete(txid, STATUS_SUCCESS, b"ok")
            .unwrap()
            .unwrap();
        assert_eq!(
            done,
            Completion {
                packet: p,
                status: STATUS_SUCCESS,
                data: b"ok".to_vec()
            }
        );
        assert_eq!(ch.packet_state(p), Some(PacketState::Idle));
    }

    #[test]
    fn rejection_rules_leave_the_packet_usable() {
        let mut ch = open_channel(8192);
        let p = ch.allocate_packet();
        let chain = [mdl(0, 0x1000, 1)];
        type Case<'a> = (
            Option<&'a [u8]>,
            Option<&'a [OwnedMdl]>,
            u32,
            u32,
            u32,
            Error,
        );
        let cases: Vec<Case<'_>> = vec![
            (
                None,
                Some(&chain),
                0,
                0,
                0,
                Error::MissingWaitForCompletion { flags: 0 },
            ),
            (
                None,
                Some(&chain),
                0,
                0,
                0x6,
                Error::MissingWaitForCompletion { flags: 6 },
            ),
            (
                None,
                None,
                1,
                0,
                W,
                Error::NullMdlWithRange {
                    offset: 1,
                    length: 0,
                },
            ),
            (
                None,
                None,
                0,
                1,
                W,
                Error::NullMdlWithRange {
                    offset: 0,
                    length: 1,
                },
            ),
            (
                None,
                Some(&chain),
                0xFFFF_F000,
                0x2000,
                W,
                Error::OutOfBounds {
                    offset: 0xFFFF_F000,
                    length: 0x2000,
                    limit: 0x1000,
                },
            ),
            (
                None,
                Some(&chain),
                0x1000,
                0,
                W,
                Error::EmptyExternalData {
                    offset: 0x1000,
                    length: 0,
                },
            ),
        ];
        for (buffer, chain, off, len, flags, want) in cases {
            assert_eq!(ch.send_owned(p, buffer, chain, off, len, flags), Err(want));
            assert_eq!(ch.ring().peek_length().unwrap(), None);
            assert_eq!(ch.packet_state(p), Some(PacketState::Idle));
        }
        // NULL buffer with a length.
        let request = SendRequest {
            buffer: None,
            buffer_length: 4,
            chain: None,
            mdl_offset: 0,
            mdl_length: 0,
            flags: W,
        };
        assert_eq!(
            ch.send(p, &request, &|_, _| 0),
            Err(Error::NullBuffer { length: 4 })
        );
        // Still usable: bits outside 0x7 are ignored.
        assert!(ch.send_owned(p, None, Some(&chain), 0, 0, 0x13).is_ok());
    }

    #[test]
    fn null_mdl_sends_an_inband_packet() {
        let mut ch = open_channel(8192);
        let p = ch.allocate_packet();
        ch.send_owned(p, Some(b"hello"), None, 0, 0, W).unwrap();
        let b = ch.host_take_packet().unwrap().unwrap();
        assert_eq!((u16_at(&b, 0), u16_at(&b, 2), u16_at(&b, 4)), (6, 2, 3));
        assert_eq!(&b[16..21], b"hello");
        // NULL buffer, length 0, NULL MDL: a bare descriptor.
        let q = ch.allocate_packet();
        ch.send_owned(q, None, None, 0, 0, W).unwrap();
        assert_eq!(ch.host_take_packet().unwrap().unwrap().len(), 16);
    }

    #[test]
    fn never_fits_is_rejected() {
        let mut ch = open_channel(4096);
        let p = ch.allocate_packet();
        // 16 + 4072 = 4088; + 8 = 4096 is not < 4096.
        let big = vec![0u8; 4072];
        assert_eq!(
            ch.send_owned(p, Some(&big), None, 0, 0, W),
            Err(Error::NeverFits {
                total: 4088,
                ring_data_size: 4096
            })
        );
        let ok = vec![0u8; 4064];
        assert!(ch.send_owned(p, Some(&ok), None, 0, 0, W).is_ok());
        // length8 overflow on a large ring.
        let mut large = open_channel(1 << 20);
        let q = large.allocate_packet();
        let huge = vec![0u8; 0xFFFF * 8];
        assert_eq!(
            large.send_owned(q, Some(&huge), None, 0, 0, W),
            Err(Error::PacketTooLarge {
                total: 0xFFFF * 8 + 16
            })
        );
    }

    #[test]
    fn busy_and_freed_packets_are_refused_without_change() {
        let mut ch = Channel::new(8192).unwrap();
        let p = ch.allocate_packet();
        ch.send_owned(p, Some(b"x"), None, 0, 0, W).unwrap();
        assert_eq!(ch.packet_state(p), Some(PacketState::Queued));
        assert_eq!(
            ch.send_owned(p, Some(b"y"), None, 0, 0, W),
            Err(Error::PacketBusy { packet: p })
        );
        assert_eq!(ch.free_packet(p), Err(Error::PacketBusy { packet: p }));
        assert_eq!(ch.queued(), 1);
        ch.open().unwrap();
        let b = ch.host_take_packet().unwrap().unwrap();
        assert_eq!(b[16], b'x');
        assert_eq!(
            ch.send_owned(p, Some(b"y"), None, 0, 0, W),
            Err(Error::PacketBusy { packet: p })
        );
        ch.host_complete(u64_at(&b, 8), 0, &[]).unwrap();
        ch.free_packet(p).unwrap();
        assert_eq!(
            ch.send_owned(p, Some(b"y"), None, 0, 0, W),
            Err(Error::UnknownPacket { packet: p })
        );
        assert_eq!(ch.host_take_packet().unwrap(), None);
    }

    #[test]
    fn queue_before_open_and_when_full_keeps_fifo_order() {
        let mut ch = Channel::new(4096).unwrap();
        let ids: Vec<PacketId> = (0..5).map(|_| ch.allocate_packet()).collect();
        let payload = vec![0u8; 1000];
        // Before open: everything queues.
        for &p in &ids[..2] {
            ch.send_owned(p, Some(&payload), None, 0, 0, W).unwrap();
        }
        assert_eq!(ch.queued(), 2);
        assert_eq!(ch.host_take_packet().unwrap(), None);
        ch.open().unwrap();
        assert_eq!(ch.queued(), 0);
        // 1016 + 8 per packet: 3 fit in 4096 (3072 < 4096), a 4th would need 4096.
        for &p in &ids[2..] {
            ch.send_owned(p, Some(&payload), None, 0, 0, W).unwrap();
        }
        assert_eq!(ch.queued(), 2);
        assert_eq!(ch.packet_state(ids[3]), Some(PacketState::Queued));
        let pending = u32::from_le_bytes(ch.ring().as_bytes()[12..16].try_into().unwrap());
        assert_eq!(pending, 1024);
        let mut order = Vec::new();
        while let Some(b) = ch.host_take_packet().unwrap() {
            order.push(u64_at(&b, 8));
        }
        assert_eq!(order, vec![1, 2, 3, 4, 5]);
        assert_eq!(ch.queued(), 0);
    }

    #[test]
    fn a_queued_packet_blocks_later_small_ones() {
        let mut ch = open_channel(4096);
        let big = ch.allocate_packet();
        let filler = ch.allocate_packet();
        let small = ch.allocate_packet();
        ch.send_owned(filler, Some(&[0u8; 3000]), None, 0, 0, W)
            .unwrap();
        ch.send_owned(big, Some(&[0u8; 2000]), None, 0, 0, W)
            .unwrap();
        ch.send_owned(small, Some(&[0u8; 8]), None, 0, 0, W)
            .unwrap();
        assert_eq!(ch.packet_state(small), Some(PacketState::Queued));
        let order: Vec<u64> = std::iter::from_fn(|| ch.host_take_packet().unwrap())
            .map(|b| u64_at(&b, 8))
            .collect();
        assert_eq!(order, vec![1, 2, 3]);
    }

    #[test]
    fn ring_wraps_across_many_sends() {
        let mut ch = open_channel(4096);
        let p = ch.allocate_packet();
        for round in 0..50u32 {
            let payload: Vec<u8> = (0..(round * 37 % 900)).map(|i| i as u8).collect();
            let txid = ch.send_owned(p, Some(&payload), None, 0, 0, W).unwrap();
            let b = ch.host_take_packet().unwrap().unwrap();
            assert_eq!(&b[16..16 + payload.len()], &payload[..]);
            ch.host_complete(txid, 0, &[]).unwrap().unwrap();
        }
    }

    #[test]
    fn completions_in_any_order() {
        let mut ch = open_channel(8192);
        let a = ch.allocate_packet();
        let b = ch.allocate_packet();
        let ta = ch.send_owned(a, Some(b"a"), None, 0, 0, W).unwrap();
        let tb = ch.send_owned(b, Some(b"b"), None, 0, 0, W).unwrap();
        ch.host_take_packet().unwrap();
        ch.host_take_packet().unwrap();
        assert_eq!(ch.host_complete(tb, 7, b"B").unwrap().unwrap().packet, b);
        assert_eq!(ch.host_complete(ta, 8, b"A").unwrap().unwrap().packet, a);
        assert_eq!(
            ch.host_complete(ta, 8, b"A"),
            Err(Error::UnknownTransaction { transaction_id: ta })
        );
    }

    #[test]
    fn completing_a_packet_not_yet_taken_is_refused() {
        let mut ch = open_channel(8192);
        let a = ch.allocate_packet();
        let ta = ch.send_owned(a, None, None, 0, 0, W).unwrap();
        assert!(ch.host_complete(ta, 0, &[]).is_err());
        assert_eq!(ch.packet_state(a), Some(PacketState::InRing));
    }

    #[test]
    fn disable_completes_every_outstanding_packet_once() {
        let mut ch = open_channel(4096);
        let taken = ch.allocate_packet();
        let in_ring = ch.allocate_packet();
        let queued = ch.allocate_packet();
        let idle = ch.allocate_packet();
        ch.send_owned(taken, Some(&[1; 100]), None, 0, 0, W)
            .unwrap();
        ch.host_take_packet().unwrap().unwrap();
        ch.send_owned(in_ring, Some(&[2; 3000]), None, 0, 0, W)
            .unwrap();
        ch.send_owned(queued, Some(&[3; 3000]), None, 0, 0, W)
            .unwrap();
        assert_eq!(ch.packet_state(queued), Some(PacketState::Queued));
        let done = ch.disable();
        let packets: Vec<PacketId> = done.iter().map(|c| c.packet).collect();
        assert_eq!(packets, vec![taken, in_ring, queued]);
        assert!(done.iter().all(|c| c.status == STATUS_CANCELLED));
        assert!(!packets.contains(&idle));
        assert_eq!(ch.disable(), vec![]);
        assert_eq!(ch.host_take_packet().unwrap(), None);
        assert_eq!(ch.host_complete(1, 0, &[]).unwrap(), None);
        assert_eq!(
            ch.send_owned(idle, None, None, 0, 0, W),
            Err(Error::ChannelDisabled)
        );
        assert_eq!(Error::ChannelDisabled.status(), 0xC000_02B6);
        assert_eq!(ch.open(), Err(Error::ChannelDisabled));
        // Packets are idle again and can be freed.
        ch.free_packet(taken).unwrap();
    }

    #[test]
    fn force_ignores_the_rest_of_the_chain() {
        let mut ch = open_channel(8192);
        let p = ch.allocate_packet();
        let chain = [mdl(0x100, 0x10, 7), mdl(0, 0x4000, 100)];
        ch.send_owned(p, None, Some(&chain), 0, 0xF00, W | FLAG_FORCE_MDL_LENGTH)
            .unwrap();
        let b = ch.host_take_packet().unwrap().unwrap();
        assert_eq!(u32_at(&b, 0x14), 1);
        assert_eq!((u32_at(&b, 0x18), u32_at(&b, 0x1C)), (0xF00, 0x100));
        assert_eq!(u64_at(&b, 0x20), 7);
        assert_eq!(b.len(), 0x28);
    }

    #[test]
    fn chain_emits_one_range_per_mdl_touched() {
        let mut ch = open_channel(8192);
        let p = ch.allocate_packet();
        let chain = [mdl(0x800, 0x1000, 10), mdl(0, 0x2000, 20)];
        ch.send_owned(p, None, Some(&chain), 0x900, 0x1000, W)
            .unwrap();
        let b = ch.host_take_packet().unwrap().unwrap();
        assert_eq!(u32_at(&b, 0x14), 2);
        // First range: bytes 0x900..0x1000 of MDL 0 -> ByteOffset 0x800 + 0x900 = 0x1100.
        assert_eq!(
            (u32_at(&b, 0x18), u32_at(&b, 0x1C), u64_at(&b, 0x20)),
            (0x700, 0x100, 11)
        );
        // Second range: the first 0x900 bytes of MDL 1, one PFN.
        assert_eq!(
            (u32_at(&b, 0x28), u32_at(&b, 0x2C), u64_at(&b, 0x30)),
            (0x900, 0, 20)
        );
        assert_eq!(b.len(), 0x38);
    }
}
