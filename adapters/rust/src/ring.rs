//! One direction of a VMBus ring buffer, as real bytes (reference §4, "Ring buffer").
//!
//! ```text
//! control page (4096 bytes): +0 u32 write_index  +4 u32 read_index  +8 u32 interrupt_mask
//!                            +12 u32 pending_send_size              +64 u32 feature_bits
//! data area (D bytes)
//! ```
//! The indices live only in the control page (there is no shadow copy to drift): they are byte
//! offsets into the data area, 8-aligned, below D, and the ring is empty when they are equal.
//! Packets are written circularly and followed by an 8-byte trailer whose upper 32 bits are
//! the packet's start offset. The ring is never completely full: a packet of `total` bytes fits
//! when `total + 8 < free` (RING-NEVER-FULL).
//!
//! `feature_bits` bit 0 advertises that the writer maintains `pending_send_size` (as Linux's
//! `feat_pending_send_sz`): while the head of the send queue does not fit, `pending_send_size`
//! holds the room it needs (packet + trailer); otherwise 0.

#![forbid(unsafe_code)]

use crate::error::{Error, Result};
use crate::mdl::PAGE_SIZE;
use crate::wire::Descriptor;

/// Size of the control page that precedes the data area.
pub const CONTROL_PAGE_SIZE: usize = 4096;
/// The trailer after each packet.
pub const TRAILER_SIZE: u64 = 8;
/// The largest data area this library creates (64 MiB: far above the 0xFFFF * 8 packet limit,
/// small enough to allocate in a test).
pub const MAX_RING_DATA_SIZE: u32 = 64 << 20;
/// `feature_bits` bit 0: the writer honours `pending_send_size`.
pub const FEATURE_PENDING_SEND_SIZE: u32 = 0x1;

const WRITE_INDEX: usize = 0;
const READ_INDEX: usize = 4;
const INTERRUPT_MASK: usize = 8;
const PENDING_SEND_SIZE: usize = 12;
const FEATURE_BITS: usize = 64;

/// The ring: control page and data area in one byte vector.
#[derive(Debug, Clone)]
pub struct Ring {
    bytes: Vec<u8>,
    data_size: u32,
    signals: u64,
}

fn overflow(what: &'static str) -> Error {
    Error::Overflow { what }
}

fn to_usize(value: u64, what: &'static str) -> Result<usize> {
    usize::try_from(value).map_err(|_| overflow(what))
}

impl Ring {
    /// A ring with a data area of `data_size` bytes (a multiple of 4096, 4096 to
    /// [`MAX_RING_DATA_SIZE`]).
    pub fn new(data_size: u32) -> Result<Self> {
        if data_size == 0 || u64::from(data_size) % PAGE_SIZE != 0 || data_size > MAX_RING_DATA_SIZE
        {
            return Err(Error::BadRingSize { size: data_size });
        }
        let len = CONTROL_PAGE_SIZE
            .checked_add(to_usize(u64::from(data_size), "ring size")?)
            .ok_or(overflow("ring size"))?;
        let mut ring = Self {
            bytes: vec![0; len],
            data_size,
            signals: 0,
        };
        ring.set_u32(FEATURE_BITS, FEATURE_PENDING_SEND_SIZE);
        Ok(ring)
    }

    /// The data-area size D.
    #[must_use]
    pub const fn data_size(&self) -> u32 {
        self.data_size
    }

    /// The whole ring: control page then data area.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// How many times the writer would have signalled the reader (empty -> non-empty while
    /// `interrupt_mask` is 0).
    #[must_use]
    pub const fn signals(&self) -> u64 {
        self.signals
    }

    fn u32_at(&self, at: usize) -> u32 {
        let mut word = [0u8; 4];
        if let Some(src) = at.checked_add(4).and_then(|end| self.bytes.get(at..end)) {
            word.copy_from_slice(src);
        }
        u32::from_le_bytes(word)
    }

    fn set_u32(&mut self, at: usize, value: u32) {
        if let Some(dst) = at
            .checked_add(4)
            .and_then(|end| self.bytes.get_mut(at..end))
        {
            dst.copy_from_slice(&value.to_le_bytes());
        }
    }

    /// `(read_index, write_index)`, checked to be 8-aligned and below D.
    fn indices(&self) -> Result<(u32, u32)> {
        let read = self.u32_at(READ_INDEX);
        let write = self.u32_at(WRITE_INDEX);
        if read >= self.data_size || write >= self.data_size || read % 8 != 0 || write % 8 != 0 {
            return Err(Error::RingCorrupt {
                read_index: read,
                write_index: write,
            });
        }
        Ok((read, write))
    }

    /// Free bytes: `D - ((write - read) mod D)`.
    pub fn free(&self) -> Result<u64> {
        let (read, write) = self.indices()?;
        let d = u64::from(self.data_size);
        // (write - read) mod D, without a negative intermediate.
        let used = u64::from(write)
            .checked_add(d)
            .and_then(|x| x.checked_sub(u64::from(read)))
            .and_then(|x| x.checked_rem(d))
            .ok_or(overflow("ring used bytes"))?;
        d.checked_sub(used).ok_or(overflow("ring free bytes"))
    }

    /// Whether a packet of `total` bytes plus its trailer fits now: `total + 8 < free`.
    pub fn fits(&self, total: u64) -> Result<bool> {
        let need = total
            .checked_add(TRAILER_SIZE)
            .ok_or(overflow("packet + trailer"))?;
        Ok(need < self.free()?)
    }

    /// Whether a packet of `total` bytes can ever fit: `total + 8 < D`.
    #[must_use]
    pub fn could_ever_fit(&self, total: u64) -> bool {
        total
            .checked_add(TRAILER_SIZE)
            .is_some_and(|need| need < u64::from(self.data_size))
    }

    /// Advances a data-area offset by `by` bytes, circularly.
    fn advance(&self, at: u32, by: u64) -> Result<u32> {
        let sum = u64::from(at)
            .checked_add(by)
            .and_then(|x| x.checked_rem(u64::from(self.data_size)))
            .ok_or(overflow("ring offset"))?;
        u32::try_from(sum).map_err(|_| overflow("ring offset"))
    }

    /// The data-area slices `[at, at + len)` splits into at the wrap point.
    fn spans(&self, at: u32, len: usize) -> Result<[(usize, usize); 2]> {
        let d = to_usize(u64::from(self.data_size), "ring size")?;
        let at = to_usize(u64::from(at), "ring offset")?;
        if len > d || at >= d {
            return Err(overflow("ring span"));
        }
        let first = len.min(d.checked_sub(at).ok_or(overflow("ring span"))?);
        let second = len.checked_sub(first).ok_or(overflow("ring span"))?;
        let start = CONTROL_PAGE_SIZE
            .checked_add(at)
            .ok_or(overflow("ring span"))?;
        Ok([(start, first), (CONTROL_PAGE_SIZE, second)])
    }

    fn copy_in(&mut self, at: u32, src: &[u8]) -> Result<()> {
        let mut rest = src;
        for (start, len) in self.spans(at, src.len())? {
            let (head, tail) = rest.split_at(len);
            let end = start.checked_add(len).ok_or(overflow("ring span"))?;
            self.bytes
                .get_mut(start..end)
                .ok_or(overflow("ring span"))?
                .copy_from_slice(head);
            rest = tail;
        }
        Ok(())
    }

    fn copy_out(&self, at: u32, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        for (start, n) in self.spans(at, len)? {
            let end = start.checked_add(n).ok_or(overflow("ring span"))?;
            out.extend_from_slice(self.bytes.get(start..end).ok_or(overflow("ring span"))?);
        }
        Ok(out)
    }

    /// Writes a packet and its trailer at the write index, then publishes the new write index.
    /// The caller checked [`Ring::fits`]; this checks again and refuses rather than overwrite.
    pub fn write_packet(&mut self, packet: &[u8]) -> Result<()> {
        let total = u64::try_from(packet.len()).map_err(|_| overflow("packet length"))?;
        let (read, write) = self.indices()?;
        if total % 8 != 0 || !self.fits(total)? {
            return Err(Error::RingCorrupt {
                read_index: read,
                write_index: write,
            });
        }
        let was_empty = read == write;
        self.copy_in(write, packet)?;
        let trailer_at = self.advance(write, total)?;
        let trailer = u64::from(write) << 32;
        self.copy_in(trailer_at, &trailer.to_le_bytes())?;
        let next = self.advance(trailer_at, TRAILER_SIZE)?;
        // Publish only after the bytes are in place.
        self.set_u32(WRITE_INDEX, next);
        if was_empty && self.u32_at(INTERRUPT_MASK) == 0 {
            self.signals = self.signals.saturating_add(1);
        }
        Ok(())
    }

    /// The length of the next packet (without trailer), or `None` when the ring is empty.
    pub fn peek_length(&self) -> Result<Option<u64>> {
        let (read, write) = self.indices()?;
        if read == write {
            return Ok(None);
        }
        let head = self.copy_out(read, 16)?;
        let descriptor = Descriptor::parse(&head).ok_or(Error::RingCorrupt {
            read_index: read,
            write_index: write,
        })?;
        Ok(Some(u64::from(descriptor.length8) << 3))
    }

    /// Removes the next packet (the host side), checking its trailer; `None` when empty.
    pub fn read_packet(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(total) = self.peek_length()? else {
            return Ok(None);
        };
        let (read, write) = self.indices()?;
        let corrupt = Error::RingCorrupt {
            read_index: read,
            write_index: write,
        };
        let free = self.free()?;
        let used = u64::from(self.data_size)
            .checked_sub(free)
            .ok_or(overflow("ring used bytes"))?;
        if total == 0 || total.checked_add(TRAILER_SIZE).is_none_or(|n| n > used) {
            return Err(corrupt);
        }
        let packet = self.copy_out(read, to_usize(total, "packet length")?)?;
        let trailer_at = self.advance(read, total)?;
        let trailer = self.copy_out(trailer_at, 8)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(&trailer);
        if u64::from_le_bytes(word) != u64::from(read) << 32 {
            return Err(corrupt);
        }
        let next = self.advance(trailer_at, TRAILER_SIZE)?;
        self.set_u32(READ_INDEX, next);
        Ok(Some(packet))
    }

    /// Sets `pending_send_size` (0 when nothing waits for room).
    pub fn set_pending_send_size(&mut self, bytes: u32) {
        self.set_u32(PENDING_SEND_SIZE, bytes);
    }

    /// Sets `interrupt_mask` (the reader's "do not signal me").
    pub fn set_interrupt_mask(&mut self, mask: u32) {
        self.set_u32(INTERRUPT_MASK, mask);
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn packet(len8: u16, fill: u8) -> Vec<u8> {
        let mut p = vec![fill; usize::from(len8) * 8];
        p[0..2].copy_from_slice(&6u16.to_le_bytes());
        p[2..4].copy_from_slice(&2u16.to_le_bytes());
        p[4..6].copy_from_slice(&len8.to_le_bytes());
        p
    }

    #[test]
    fn rejects_bad_sizes() {
        for size in [0, 4095, 4097, MAX_RING_DATA_SIZE + 4096] {
            assert_eq!(Ring::new(size).unwrap_err(), Error::BadRingSize { size });
        }
    }

    #[test]
    fn never_completely_full() {
        let mut ring = Ring::new(4096).unwrap();
        assert!(!ring.could_ever_fit(4088));
        assert!(ring.could_ever_fit(4080));
        let p = packet(510, 1); // 4080 bytes + 8 trailer = 4088 < 4096
        ring.write_packet(&p).unwrap();
        assert_eq!(ring.free().unwrap(), 8);
        assert!(!ring.fits(0).unwrap());
        assert_eq!(ring.read_packet().unwrap().unwrap(), p);
        assert_eq!(ring.read_packet().unwrap(), None);
    }

    #[test]
    fn wraps_around_the_end_with_trailers() {
        let mut ring = Ring::new(4096).unwrap();
        let a = packet(300, 0xA); // 2400 bytes
        ring.write_packet(&a).unwrap();
        assert_eq!(ring.read_packet().unwrap().unwrap(), a);
        // Read = write = 2408. The next packet runs past the end of the data area.
        let b = packet(250, 0xB); // 2000 bytes
        assert!(ring.fits(2000).unwrap());
        ring.write_packet(&b).unwrap();
        let bytes = ring.as_bytes();
        let write = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
        assert_eq!(write, (2408 + 2000 + 8) % 4096);
        // The trailer holds the start offset in its upper 32 bits.
        let t_at = CONTROL_PAGE_SIZE + (2408 + 2000) % 4096;
        let trailer = u64::from_le_bytes(bytes[t_at..t_at + 8].try_into().unwrap());
        assert_eq!(trailer, 2408u64 << 32);
        assert_eq!(ring.read_packet().unwrap().unwrap(), b);
        assert_eq!(ring.free().unwrap(), 4096);
    }

    #[test]
    fn signals_only_on_empty_to_non_empty_when_unmasked() {
        let mut ring = Ring::new(8192).unwrap();
        ring.write_packet(&packet(2, 0)).unwrap();
        ring.write_packet(&packet(2, 0)).unwrap();
        assert_eq!(ring.signals(), 1);
        ring.read_packet().unwrap();
        ring.read_packet().unwrap();
        ring.set_interrupt_mask(1);
        ring.write_packet(&packet(2, 0)).unwrap();
        assert_eq!(ring.signals(), 1);
    }

    #[test]
    fn control_page_layout() {
        let mut ring = Ring::new(4096).unwrap();
        ring.set_pending_send_size(0x1234);
        let b = ring.as_bytes();
        assert_eq!(b.len(), 8192);
        assert_eq!(u32::from_le_bytes(b[12..16].try_into().unwrap()), 0x1234);
        assert_eq!(u32::from_le_bytes(b[64..68].try_into().unwrap()), 1);
    }
}
