//! MDLs as safe values, and the one place that decides which bytes a send describes.
//!
//! Theory of operation: the FFI module reads each MDL's header once and turns it into an
//! [`MdlDesc`] (ByteOffset validated below the page size). [`plan_ranges`] then resolves
//! `MdlOffset`/`MdlLength` against the chain and returns one [`RangePlan`] per MDL the
//! sub-buffer touches, naming the PFN *indices* it needs. PFN values are read only after the
//! plan is known to fit the packet (so a huge MDL is never walked), through a callback.
//!
//! All arithmetic is in `u64` and checked: `MdlOffset + MdlLength` may exceed 2^32 and must
//! not wrap (reference §6, the hv_netvsc / OpenVMM PR 4145 bug class).
//!
//! Rules kept here (docs/target-behaviour.md, "when it is rejected" item 4 and "what an
//! accepted call emits"):
//! - MdlOffset counts from byte 0 of ByteCount (reading A2).
//! - MdlLength 0 means the rest after MdlOffset: of the whole chain without FORCE_MDL_LENGTH,
//!   of the first MDL's ByteCount with it (reading A1 (a)). A resolved length of 0 is rejected
//!   (reading A9).
//! - Without FORCE: `offset + length <= sum(ByteCount)`; one range per MDL touched, in chain
//!   order (reading A5 (a)).
//! - With FORCE: only the first MDL; `offset + length <= ROUND_TO_PAGES(ByteOffset + ByteCount)
//!   - ByteOffset` (reading A3 (a)), which never names a PFN beyond the MDL's array.

#![forbid(unsafe_code)]

use crate::error::{Error, Result};

/// wdm.h `PAGE_SIZE`; VMBus PFNs are always 4 KiB pages (reference §4).
pub const PAGE_SIZE: u64 = 0x1000;
/// wdm.h `PAGE_SHIFT`.
pub const PAGE_SHIFT: u32 = 12;
/// `PAGE_SIZE - 1`, the `BYTE_OFFSET` mask.
pub const PAGE_MASK: u64 = 0xFFF;
/// The longest chain accepted. KMCL limits chains with
/// VmbChannelInitSetMaximumExternalData(DataSize, ChainLength); 64 is this library's choice,
/// and it also stops a looping chain.
pub const MAX_CHAIN_LENGTH: usize = 64;

/// `ROUND_TO_PAGES(n)`, checked.
pub fn round_to_pages(n: u64) -> Result<u64> {
    let sum = n.checked_add(PAGE_MASK).ok_or(Error::Overflow {
        what: "ROUND_TO_PAGES",
    })?;
    Ok(sum & !PAGE_MASK)
}

/// `ADDRESS_AND_SIZE_TO_SPAN_PAGES(byte_offset, byte_count)`, checked:
/// `((byte_offset & 0xFFF) + byte_count + 0xFFF) >> 12`.
pub fn span_pages(byte_offset: u64, byte_count: u64) -> Result<u64> {
    let end = (byte_offset & PAGE_MASK)
        .checked_add(byte_count)
        .ok_or(Error::Overflow { what: "page span" })?;
    Ok(round_to_pages(end)? >> PAGE_SHIFT)
}

/// One MDL's header fields that matter, validated (ByteOffset below the page size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MdlDesc {
    byte_offset: u32,
    byte_count: u32,
}

impl MdlDesc {
    /// Validates the header of the MDL at position `index` of its chain.
    pub fn new(index: usize, byte_offset: u32, byte_count: u32) -> Result<Self> {
        if u64::from(byte_offset) >= PAGE_SIZE {
            return Err(Error::ByteOffsetTooLarge { index, byte_offset });
        }
        Ok(Self {
            byte_offset,
            byte_count,
        })
    }

    /// ByteOffset: where the described bytes start inside the first page.
    #[must_use]
    pub const fn byte_offset(&self) -> u32 {
        self.byte_offset
    }

    /// ByteCount: how many bytes the MDL describes.
    #[must_use]
    pub const fn byte_count(&self) -> u32 {
        self.byte_count
    }

    /// The number of valid PFNs: ADDRESS_AND_SIZE_TO_SPAN_PAGES(ByteOffset, ByteCount). Cannot
    /// overflow (both fields are 32-bit), so this is infallible.
    #[must_use]
    pub fn pfn_count(&self) -> u64 {
        // ByteOffset < 0x1000 and ByteCount < 2^32: the sum is far below 2^64.
        span_pages(u64::from(self.byte_offset), u64::from(self.byte_count)).unwrap_or(u64::MAX)
    }
}

/// An MDL owned by Rust code (tests, Rust callers): the header and exactly its PFNs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMdl {
    desc: MdlDesc,
    pfns: Vec<u64>,
}

impl OwnedMdl {
    /// An MDL describing `byte_count` bytes from `byte_offset` in the first of `pfns`; the PFN
    /// count must be exactly ADDRESS_AND_SIZE_TO_SPAN_PAGES(byte_offset, byte_count).
    pub fn new(byte_offset: u32, byte_count: u32, pfns: Vec<u64>) -> Result<Self> {
        let desc = MdlDesc::new(0, byte_offset, byte_count)?;
        let actual =
            u64::try_from(pfns.len()).map_err(|_| Error::Overflow { what: "PFN count" })?;
        if actual != desc.pfn_count() {
            return Err(Error::PfnCount {
                expected: desc.pfn_count(),
                actual,
            });
        }
        Ok(Self { desc, pfns })
    }

    /// The validated header.
    #[must_use]
    pub const fn desc(&self) -> MdlDesc {
        self.desc
    }

    /// The PFN array.
    #[must_use]
    pub fn pfns(&self) -> &[u64] {
        &self.pfns
    }
}

/// One GPA range to emit: `byte_count` bytes starting at `byte_offset` inside PFN index
/// `first_pfn` of MDL `mdl_index`, spanning `pfn_count` PFNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RangePlan {
    /// Position of the MDL in the chain.
    pub mdl_index: usize,
    /// Index into that MDL's PFN array of the range's first page.
    pub first_pfn: u64,
    /// `ceil((byte_offset + byte_count) / 4096)`.
    pub pfn_count: u64,
    /// Offset of the first byte inside the first page (< 4096).
    pub byte_offset: u32,
    /// Bytes in the range (> 0).
    pub byte_count: u32,
}

/// Resolves `mdl_offset`/`mdl_length` against a non-empty chain into the ranges to emit.
pub fn plan_ranges(
    chain: &[MdlDesc],
    mdl_offset: u32,
    mdl_length: u32,
    force_mdl_length: bool,
) -> Result<Vec<RangePlan>> {
    let offset = u64::from(mdl_offset);
    let empty = Error::EmptyExternalData {
        offset: mdl_offset,
        length: mdl_length,
    };
    if force_mdl_length {
        let Some(first) = chain.first() else {
            return Err(empty);
        };
        let byte_offset = u64::from(first.byte_offset());
        let byte_count = u64::from(first.byte_count());
        let length = if mdl_length == 0 {
            // The rest of the first MDL's ByteCount (reading A1 (a) with FORCE).
            byte_count.checked_sub(offset).ok_or(Error::OutOfBounds {
                offset: mdl_offset,
                length: 0,
                limit: byte_count,
            })?
        } else {
            u64::from(mdl_length)
        };
        if length == 0 {
            return Err(empty);
        }
        // Reading A3 (a): up to the end of the last page the MDL touches, never past its PFNs.
        let limit =
            round_to_pages(byte_offset.checked_add(byte_count).ok_or(Error::Overflow {
                what: "ByteOffset + ByteCount",
            })?)?
            .checked_sub(byte_offset)
            .ok_or(Error::Overflow {
                what: "FORCE bound",
            })?;
        let end = offset.checked_add(length).ok_or(Error::Overflow {
            what: "MdlOffset + length",
        })?;
        if end > limit {
            return Err(Error::OutOfBounds {
                offset: mdl_offset,
                length,
                limit,
            });
        }
        let range = range_in_mdl(0, first, offset, length)?;
        return Ok(vec![range]);
    }

    let mut total: u64 = 0;
    for mdl in chain {
        total = total
            .checked_add(u64::from(mdl.byte_count()))
            .ok_or(Error::Overflow {
                what: "sum of ByteCount",
            })?;
    }
    let length = if mdl_length == 0 {
        total.checked_sub(offset).ok_or(Error::OutOfBounds {
            offset: mdl_offset,
            length: 0,
            limit: total,
        })?
    } else {
        u64::from(mdl_length)
    };
    if length == 0 {
        return Err(empty);
    }
    let end = offset.checked_add(length).ok_or(Error::Overflow {
        what: "MdlOffset + length",
    })?;
    if end > total {
        return Err(Error::OutOfBounds {
            offset: mdl_offset,
            length,
            limit: total,
        });
    }

    // Walk the chain as one logical buffer: MDL i covers [start, start + ByteCount).
    let mut ranges = Vec::new();
    let mut start: u64 = 0;
    for (index, mdl) in chain.iter().enumerate() {
        let stop = start
            .checked_add(u64::from(mdl.byte_count()))
            .ok_or(Error::Overflow {
                what: "chain position",
            })?;
        let lo = offset.max(start);
        let hi = end.min(stop);
        if lo < hi {
            let local = lo.checked_sub(start).ok_or(Error::Overflow {
                what: "offset in MDL",
            })?;
            let count = hi.checked_sub(lo).ok_or(Error::Overflow {
                what: "bytes in MDL",
            })?;
            ranges.push(range_in_mdl(index, mdl, local, count)?);
        }
        if stop >= end {
            break;
        }
        start = stop;
    }
    Ok(ranges)
}

/// The range covering `count` bytes from byte `local` of `mdl` (byte k of an MDL lives in PFN
/// index `(ByteOffset + k) >> 12` at page offset `(ByteOffset + k) & 0xFFF`).
fn range_in_mdl(index: usize, mdl: &MdlDesc, local: u64, count: u64) -> Result<RangePlan> {
    let absolute = u64::from(mdl.byte_offset())
        .checked_add(local)
        .ok_or(Error::Overflow {
            what: "ByteOffset + offset",
        })?;
    let first_pfn = absolute >> PAGE_SHIFT;
    let in_page = absolute & PAGE_MASK;
    let pfn_count = span_pages(in_page, count)?;
    let last = first_pfn.checked_add(pfn_count).ok_or(Error::Overflow {
        what: "last PFN index",
    })?;
    if last > mdl.pfn_count() {
        // Unreachable given the bounds above; refuse rather than read past the PFN array.
        return Err(Error::OutOfBounds {
            offset: u32::try_from(local).unwrap_or(u32::MAX),
            length: count,
            limit: u64::from(mdl.byte_count()),
        });
    }
    Ok(RangePlan {
        mdl_index: index,
        first_pfn,
        pfn_count,
        byte_offset: u32::try_from(in_page).map_err(|_| Error::Overflow {
            what: "range byte_offset",
        })?,
        byte_count: u32::try_from(count).map_err(|_| Error::Overflow {
            what: "range byte_count",
        })?,
    })
}

#[cfg(test)]
#[allow(clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn desc(bo: u32, bc: u32) -> MdlDesc {
        MdlDesc::new(0, bo, bc).unwrap()
    }

    #[test]
    fn span_matches_the_wdm_macro() {
        assert_eq!(span_pages(0x100, 0x2000).unwrap(), 3);
        assert_eq!(span_pages(0, 0x1000).unwrap(), 1);
        assert_eq!(span_pages(0, 0).unwrap(), 0);
        assert_eq!(span_pages(0xFFF, 1).unwrap(), 1);
        assert_eq!(span_pages(0xFFF, 2).unwrap(), 2);
        assert_eq!(desc(0xFFF, u32::MAX).pfn_count(), 0x10_0001);
    }

    #[test]
    fn byte_offset_must_be_below_a_page() {
        assert_eq!(
            MdlDesc::new(2, 0x1000, 1),
            Err(Error::ByteOffsetTooLarge {
                index: 2,
                byte_offset: 0x1000
            })
        );
    }

    #[test]
    fn worked_example_is_one_range_of_three_pfns() {
        let plan = plan_ranges(&[desc(0x100, 0x2000)], 0, 0, false).unwrap();
        assert_eq!(
            plan,
            vec![RangePlan {
                mdl_index: 0,
                first_pfn: 0,
                pfn_count: 3,
                byte_offset: 0x100,
                byte_count: 0x2000
            }]
        );
    }

    #[test]
    fn offset_moves_into_later_pages_without_extra_pfns() {
        let plan = plan_ranges(&[desc(0x100, 0x3000)], 0x1000, 0x10, false).unwrap();
        assert_eq!(plan[0].first_pfn, 1);
        assert_eq!(plan[0].byte_offset, 0x100);
        assert_eq!(plan[0].pfn_count, 1);
    }

    #[test]
    fn thirty_two_bit_wrap_is_rejected() {
        let err = plan_ranges(&[desc(0, 0x3000)], 0xFFFF_F000, 0x2000, false).unwrap_err();
        assert_eq!(
            err,
            Error::OutOfBounds {
                offset: 0xFFFF_F000,
                length: 0x2000,
                limit: 0x3000
            }
        );
        assert!(plan_ranges(&[desc(0, 0x3000)], 0xFFFF_F000, 0x2000, true).is_err());
    }

    #[test]
    fn chain_is_one_logical_buffer_with_one_range_per_mdl_touched() {
        let chain = [desc(0x800, 0x1000), desc(0, 0x10), desc(0x10, 0x2000)];
        let plan = plan_ranges(&chain, 0xF00, 0x200, false).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(
            (plan[0].first_pfn, plan[0].byte_offset, plan[0].byte_count),
            (1, 0x700, 0x100)
        );
        assert_eq!((plan[1].byte_offset, plan[1].byte_count), (0, 0x10));
        assert_eq!((plan[2].byte_offset, plan[2].byte_count), (0x10, 0xF0));
        assert_eq!(plan[2].pfn_count, 1);
        // MdlLength 0: the rest of the whole chain.
        let rest = plan_ranges(&chain, 0x1008, 0, false).unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(rest[0].byte_count, 8);
        assert_eq!(rest[1].byte_count, 0x2000);
    }

    #[test]
    fn zero_byte_mdls_are_never_touched() {
        let chain = [desc(0, 0x10), desc(0x20, 0), desc(0, 0x10)];
        let plan = plan_ranges(&chain, 0, 0, false).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[1].mdl_index, 2);
    }

    #[test]
    fn resolved_length_zero_is_rejected() {
        assert!(matches!(
            plan_ranges(&[desc(0, 0)], 0, 0, false),
            Err(Error::EmptyExternalData { .. })
        ));
        assert!(matches!(
            plan_ranges(&[desc(0, 0x10)], 0x10, 0, false),
            Err(Error::EmptyExternalData { .. })
        ));
        assert!(matches!(
            plan_ranges(&[desc(0, 0x10)], 0x10, 0, true),
            Err(Error::EmptyExternalData { .. })
        ));
        assert!(matches!(
            plan_ranges(&[desc(0, 0x10)], 0x11, 0, false),
            Err(Error::OutOfBounds { .. })
        ));
    }

    #[test]
    fn force_allows_up_to_the_page_end_of_the_first_mdl_only() {
        let chain = [desc(0x100, 0x10), desc(0, 0x5000)];
        // ROUND_TO_PAGES(0x110) - 0x100 = 0xF00.
        let ok = plan_ranges(&chain, 0, 0xF00, true).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!((ok[0].byte_count, ok[0].pfn_count), (0xF00, 1));
        assert_eq!(
            plan_ranges(&chain, 0, 0xF01, true),
            Err(Error::OutOfBounds {
                offset: 0,
                length: 0xF01,
                limit: 0xF00
            })
        );
        // Without FORCE the chain counts instead.
        assert!(plan_ranges(&chain, 0, 0xF01, false).is_ok());
        // MdlLength 0 with FORCE: the rest of the first MDL's ByteCount.
        let rest = plan_ranges(&chain, 4, 0, true).unwrap();
        assert_eq!(rest[0].byte_count, 0xC);
    }

    #[test]
    fn force_bound_never_names_a_pfn_past_the_array() {
        for bo in [0u32, 1, 0x7FF, 0xFFF] {
            for bc in [1u32, 0xFFF, 0x1000, 0x1001, 0x2345] {
                let d = desc(bo, bc);
                let limit = round_to_pages(u64::from(bo + bc)).unwrap() - u64::from(bo);
                let plan = plan_ranges(&[d], 0, u32::try_from(limit).unwrap(), true).unwrap();
                assert_eq!(plan[0].first_pfn + plan[0].pfn_count, d.pfn_count());
            }
        }
    }
}
