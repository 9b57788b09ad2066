//! The VMBus packet as bytes (reference §4; Linux hyperv.h, OpenVMM vmbus_ring agree).
//!
//! ```text
//! +0x00 u16 type  +0x02 u16 data_offset8  +0x04 u16 length8  +0x06 u16 flags
//! +0x08 u64 transaction_id
//! GPA direct only: +0x10 u32 reserved (0)  +0x14 u32 range_count
//!                  ranges: { u32 byte_count; u32 byte_offset; u64 pfn[n] } back to back
//! in-line payload at data_offset8 * 8, zero padding up to length8 * 8
//! ```
//!
//! [`Layout`] computes the sizes from the range plan *before* any PFN is read, so the
//! never-fits check runs on numbers, and [`encode`] writes the bytes once the PFNs are known.

#![forbid(unsafe_code)]

use crate::error::{Error, Result};

/// Packet type: in-band data (no external data).
pub const TYPE_DATA_INBAND: u16 = 0x6;
/// Packet type: data using GPA direct ranges.
pub const TYPE_DATA_GPA_DIRECT: u16 = 0x9;
/// Descriptor flag bit 0: completion requested.
pub const FLAG_COMPLETION_REQUESTED: u16 = 0x1;
/// The packet descriptor.
pub const DESCRIPTOR_SIZE: u64 = 16;
/// `reserved` + `range_count` of a GPA direct packet.
pub const GPA_DIRECT_HEADER_SIZE: u64 = 8;
/// `byte_count` + `byte_offset` of one range.
pub const RANGE_HEADER_SIZE: u64 = 8;
/// One PFN.
pub const PFN_SIZE: u64 = 8;
/// length8 is a u16 count of 8-byte units.
pub const MAX_PACKET_BYTES: u64 = 0xFFFF * 8;

/// A GPA range with its PFNs, ready to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpaRange {
    /// Bytes in the range.
    pub byte_count: u32,
    /// Offset of the first byte in the first page.
    pub byte_offset: u32,
    /// Exactly `ceil((byte_offset + byte_count) / 4096)` PFNs.
    pub pfns: Vec<u64>,
}

/// The sizes of one packet, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Where the in-line payload starts (a multiple of 8): data_offset8 * 8.
    pub data_offset: u64,
    /// The packet length, payload padded to 8: length8 * 8.
    pub total: u64,
    /// Whether the packet carries GPA direct ranges (type 9) or not (type 6).
    pub gpa_direct: bool,
}

fn overflow(what: &'static str) -> Error {
    Error::Overflow { what }
}

impl Layout {
    /// Sizes for a packet with the given PFN count per range (`None`: no external data) and
    /// `payload_len` in-line bytes. Fails with [`Error::PacketTooLarge`] past length8's range.
    pub fn new(pfn_counts: Option<&[u64]>, payload_len: u64) -> Result<Self> {
        let mut header = DESCRIPTOR_SIZE;
        if let Some(counts) = pfn_counts {
            header = header
                .checked_add(GPA_DIRECT_HEADER_SIZE)
                .ok_or(overflow("header"))?;
            for &n in counts {
                let pfn_bytes = n.checked_mul(PFN_SIZE).ok_or(overflow("PFN bytes"))?;
                header = header
                    .checked_add(RANGE_HEADER_SIZE)
                    .and_then(|h| h.checked_add(pfn_bytes))
                    .ok_or(overflow("range bytes"))?;
            }
        }
        let unpadded = header
            .checked_add(payload_len)
            .ok_or(overflow("packet length"))?;
        let total = unpadded.checked_add(7).ok_or(overflow("packet padding"))? & !7;
        if total > MAX_PACKET_BYTES {
            return Err(Error::PacketTooLarge { total });
        }
        Ok(Self {
            data_offset: header,
            total,
            gpa_direct: pfn_counts.is_some(),
        })
    }
}

fn u16_of(value: u64, what: &'static str) -> Result<u16> {
    u16::try_from(value).map_err(|_| overflow(what))
}

/// The packet bytes. `ranges` must match the layout's PFN counts (checked).
pub fn encode(
    layout: Layout,
    transaction_id: u64,
    ranges: &[GpaRange],
    payload: &[u8],
) -> Result<Vec<u8>> {
    let total = usize::try_from(layout.total).map_err(|_| overflow("packet length"))?;
    let mut out = Vec::with_capacity(total);
    let packet_type = if layout.gpa_direct {
        TYPE_DATA_GPA_DIRECT
    } else {
        TYPE_DATA_INBAND
    };
    out.extend_from_slice(&packet_type.to_le_bytes());
    out.extend_from_slice(&u16_of(layout.data_offset >> 3, "data_offset8")?.to_le_bytes());
    out.extend_from_slice(&u16_of(layout.total >> 3, "length8")?.to_le_bytes());
    out.extend_from_slice(&FLAG_COMPLETION_REQUESTED.to_le_bytes());
    out.extend_from_slice(&transaction_id.to_le_bytes());
    if layout.gpa_direct {
        let count = u32::try_from(ranges.len()).map_err(|_| overflow("range_count"))?;
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        for range in ranges {
            out.extend_from_slice(&range.byte_count.to_le_bytes());
            out.extend_from_slice(&range.byte_offset.to_le_bytes());
            for pfn in &range.pfns {
                out.extend_from_slice(&pfn.to_le_bytes());
            }
        }
    }
    let data_offset = usize::try_from(layout.data_offset).map_err(|_| overflow("data offset"))?;
    if out.len() != data_offset {
        return Err(overflow("ranges disagree with the layout"));
    }
    out.extend_from_slice(payload);
    if out.len() > total {
        return Err(overflow("payload disagrees with the layout"));
    }
    out.resize(total, 0);
    Ok(out)
}

/// The fields of a packet descriptor, as a host reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// Packet type.
    pub packet_type: u16,
    /// Payload offset in 8-byte units.
    pub data_offset8: u16,
    /// Packet length in 8-byte units.
    pub length8: u16,
    /// Descriptor flags.
    pub flags: u16,
    /// Transaction id.
    pub transaction_id: u64,
}

impl Descriptor {
    /// Parses the first 16 bytes; `None` when `bytes` is shorter.
    #[must_use]
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let u16_at = |at: usize| -> Option<u16> {
            let end = at.checked_add(2)?;
            Some(u16::from_le_bytes(bytes.get(at..end)?.try_into().ok()?))
        };
        Some(Self {
            packet_type: u16_at(0)?,
            data_offset8: u16_at(2)?,
            length8: u16_at(4)?,
            flags: u16_at(6)?,
            transaction_id: u64::from_le_bytes(bytes.get(8..16)?.try_into().ok()?),
        })
    }
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_layout() {
        let layout = Layout::new(Some(&[3]), 0x40).unwrap();
        assert_eq!(layout.data_offset, 56);
        assert_eq!(layout.data_offset / 8, 7);
        assert_eq!(layout.total / 8, 15);
    }

    #[test]
    fn inband_layout_pads_to_eight() {
        let layout = Layout::new(None, 3).unwrap();
        assert_eq!((layout.data_offset, layout.total), (16, 24));
        let bytes = encode(layout, 5, &[], b"abc").unwrap();
        let d = Descriptor::parse(&bytes).unwrap();
        assert_eq!(
            (d.packet_type, d.data_offset8, d.length8, d.flags),
            (6, 2, 3, 1)
        );
        assert_eq!(&bytes[16..], b"abc\0\0\0\0\0");
    }

    #[test]
    fn length8_limit() {
        assert!(Layout::new(None, MAX_PACKET_BYTES - 16).is_ok());
        assert_eq!(
            Layout::new(None, MAX_PACKET_BYTES - 15),
            Err(Error::PacketTooLarge {
                total: MAX_PACKET_BYTES + 8
            })
        );
        assert!(matches!(
            Layout::new(Some(&[u64::MAX]), 0),
            Err(Error::Overflow { .. })
        ));
    }
}
