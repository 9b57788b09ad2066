//! Handles: the process-wide table from C handle values to channels and packets.
//!
//! A `VMBCHANNEL` or `VMBPACKET` handed to C is an opaque token (a process-unique id carried
//! in a pointer-sized value), never a pointer this library dereferences. A freed or destroyed
//! handle is therefore *recognised* (reading A10: "robust targets reject it with a failure
//! status") instead of being a use-after-free, and ids are never reused.
//!
//! The completion routine type is a parameter (`R`), so this module knows nothing of C.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use crate::channel::{Channel, PacketId, SendRequest, TransactionId, fresh_id};
use crate::error::{Error, Result};
use crate::status::NtStatus;

/// A completion routine call to make once the registry lock is released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<R> {
    /// The packet's routine; `None`: no routine registered, so nothing is called.
    pub routine: Option<R>,
    /// The packet handle.
    pub packet: PacketId,
    /// The status to pass.
    pub status: NtStatus,
    /// The completion bytes to pass.
    pub data: Vec<u8>,
}

/// What `host_take_packet` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Take {
    /// The ring is empty.
    Empty,
    /// The next packet needs more room than offered; nothing was removed.
    TooSmall {
        /// Bytes needed.
        needed: u32,
    },
    /// The packet, removed from the ring.
    Packet(Vec<u8>),
}

/// All channels and packets of the process.
#[derive(Debug)]
pub struct Registry<R> {
    channels: BTreeMap<u64, Channel>,
    owner: BTreeMap<PacketId, u64>,
    routines: BTreeMap<PacketId, R>,
}

impl<R: Copy> Default for Registry<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<R: Copy> Registry<R> {
    /// An empty registry (const, so it can back a `static`).
    #[must_use]
    pub const fn new() -> Self {
        Self {
            channels: BTreeMap::new(),
            owner: BTreeMap::new(),
            routines: BTreeMap::new(),
        }
    }

    fn channel(&mut self, channel: u64) -> Result<&mut Channel> {
        self.channels
            .get_mut(&channel)
            .ok_or(Error::UnknownChannel { channel })
    }

    fn owner_of(&self, packet: PacketId) -> Result<u64> {
        self.owner
            .get(&packet)
            .copied()
            .ok_or(Error::UnknownPacket { packet })
    }

    fn deliveries(&self, completions: Vec<crate::channel::Completion>) -> Vec<Delivery<R>> {
        completions
            .into_iter()
            .map(|c| Delivery {
                routine: self.routines.get(&c.packet).copied(),
                packet: c.packet,
                status: c.status,
                data: c.data,
            })
            .collect()
    }

    /// Creates a channel; returns its handle value.
    pub fn create_channel(&mut self, ring_data_size: u32) -> Result<u64> {
        let channel = Channel::new(ring_data_size)?;
        let id = fresh_id();
        self.channels.insert(id, channel);
        Ok(id)
    }

    /// Opens a channel.
    pub fn open_channel(&mut self, channel: u64) -> Result<()> {
        self.channel(channel)?.open()
    }

    /// Disables a channel; returns the completion routine calls to make.
    pub fn disable_channel(&mut self, channel: u64) -> Result<Vec<Delivery<R>>> {
        let completions = self.channel(channel)?.disable();
        Ok(self.deliveries(completions))
    }

    /// Destroys a channel and every packet it owns, calling nothing.
    pub fn destroy_channel(&mut self, channel: u64) -> Result<()> {
        let removed = self
            .channels
            .remove(&channel)
            .ok_or(Error::UnknownChannel { channel })?;
        for packet in removed.packet_ids() {
            self.owner.remove(&packet);
            self.routines.remove(&packet);
        }
        Ok(())
    }

    /// VmbPacketAllocate.
    pub fn allocate_packet(&mut self, channel: u64) -> Result<PacketId> {
        let packet = self.channel(channel)?.allocate_packet();
        self.owner.insert(packet, channel);
        Ok(packet)
    }

    /// VmbPacketFree; an outstanding packet is refused ([`Error::PacketBusy`]).
    pub fn free_packet(&mut self, packet: PacketId) -> Result<()> {
        let channel = self.owner_of(packet)?;
        self.channel(channel)?.free_packet(packet)?;
        self.owner.remove(&packet);
        self.routines.remove(&packet);
        Ok(())
    }

    /// VmbPacketSetCompletionRoutine (`None` clears it).
    pub fn set_completion_routine(&mut self, packet: PacketId, routine: Option<R>) -> Result<()> {
        self.owner_of(packet)?;
        match routine {
            Some(r) => self.routines.insert(packet, r),
            None => self.routines.remove(&packet),
        };
        Ok(())
    }

    /// Whether `packet` may be sent now (checked before the MDL is read).
    pub fn check_sendable(&mut self, packet: PacketId) -> Result<()> {
        let channel = self.owner_of(packet)?;
        self.channel(channel)?.check_sendable(packet)
    }

    /// VmbPacketSendWithExternalMdl.
    pub fn send(
        &mut self,
        packet: PacketId,
        request: &SendRequest<'_>,
        pfn: &dyn Fn(usize, u64) -> u64,
    ) -> Result<TransactionId> {
        let channel = self.owner_of(packet)?;
        self.channel(channel)?.send(packet, request, pfn)
    }

    /// The host takes the next packet if it fits `capacity` bytes.
    pub fn host_take_packet(&mut self, channel: u64, capacity: u32) -> Result<Take> {
        let ch = self.channel(channel)?;
        let Some(length) = ch.host_peek_length()? else {
            return Ok(Take::Empty);
        };
        let needed = u32::try_from(length).map_err(|_| Error::Overflow {
            what: "packet length",
        })?;
        if needed > capacity {
            return Ok(Take::TooSmall { needed });
        }
        Ok(ch.host_take_packet()?.map_or(Take::Empty, Take::Packet))
    }

    /// The host completes a transaction; returns the routine call to make, if any.
    pub fn host_complete(
        &mut self,
        channel: u64,
        transaction_id: TransactionId,
        status: NtStatus,
        data: &[u8],
    ) -> Result<Vec<Delivery<R>>> {
        let completion = self
            .channel(channel)?
            .host_complete(transaction_id, status, data)?;
        Ok(self.deliveries(completion.into_iter().collect()))
    }

    /// A copy of the raw ring (control page and data area).
    pub fn ring_bytes(&mut self, channel: u64) -> Result<Vec<u8>> {
        Ok(self.channel(channel)?.ring().as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::FLAG_WAIT_FOR_COMPLETION;

    #[test]
    fn freed_and_destroyed_handles_are_recognised() {
        let mut reg: Registry<u8> = Registry::new();
        let ch = reg.create_channel(8192).unwrap();
        let p = reg.allocate_packet(ch).unwrap();
        reg.set_completion_routine(p, Some(1)).unwrap();
        reg.free_packet(p).unwrap();
        assert_eq!(reg.free_packet(p), Err(Error::UnknownPacket { packet: p }));
        assert_eq!(
            reg.check_sendable(p),
            Err(Error::UnknownPacket { packet: p })
        );
        let q = reg.allocate_packet(ch).unwrap();
        reg.destroy_channel(ch).unwrap();
        assert_eq!(
            reg.check_sendable(q),
            Err(Error::UnknownPacket { packet: q })
        );
        assert_eq!(
            reg.open_channel(ch),
            Err(Error::UnknownChannel { channel: ch })
        );
    }

    #[test]
    fn take_reports_the_needed_length_without_consuming() {
        let mut reg: Registry<u8> = Registry::new();
        let ch = reg.create_channel(8192).unwrap();
        reg.open_channel(ch).unwrap();
        assert_eq!(reg.host_take_packet(ch, 0).unwrap(), Take::Empty);
        let p = reg.allocate_packet(ch).unwrap();
        reg.set_completion_routine(p, Some(9)).unwrap();
        let request = SendRequest {
            buffer: Some(b"abc"),
            buffer_length: 3,
            chain: None,
            mdl_offset: 0,
            mdl_length: 0,
            flags: FLAG_WAIT_FOR_COMPLETION,
        };
        let txid = reg.send(p, &request, &|_, _| 0).unwrap();
        assert_eq!(
            reg.host_take_packet(ch, 8).unwrap(),
            Take::TooSmall { needed: 24 }
        );
        let Take::Packet(bytes) = reg.host_take_packet(ch, 24).unwrap() else {
            panic!("expected a packet")
        };
        assert_eq!(bytes.len(), 24);
        let calls = reg.host_complete(ch, txid, 5, b"done").unwrap();
        assert_eq!(
            calls,
            vec![Delivery {
                routine: Some(9),
                packet: p,
                status: 5,
                data: b"done".to_vec()
            }]
        );
    }
}
