//! BAR assignment: packing a function's memory BARs into its board window, and writing them.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::probe::{BarKind, FunctionInfo};
use super::regs::*;
use super::{Bdf, ConfigAccess, PciError, read16};
use crate::board::MemRange;
use crate::mem::PAGE_SIZE;

/// 4 GiB: a 32-bit BAR must end at or below it.
const FOUR_GIB: u64 = 1 << 32;

/// A memory BAR with the address cellvisor gave it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AssignedBar {
    /// The BAR index (the low register of a 64-bit BAR).
    pub index: u8,
    /// Its kind (never [`BarKind::Io`]).
    pub kind: BarKind,
    /// The physical (= guest physical) address.
    pub address: u64,
    /// The BAR's size.
    pub size: u64,
}

impl AssignedBar {
    /// The value of the BAR's low register: the address's low bits and the type bits.
    pub const fn low_register(&self) -> u32 {
        (self.address as u32 & BAR_MEMORY_ADDRESS_MASK) | self.kind.type_bits()
    }

    /// The value of a 64-bit BAR's high register.
    pub const fn high_register(&self) -> u32 {
        (self.address >> 32) as u32
    }

    /// The low register's answer to a size probe: the size mask and the type bits.
    pub const fn low_size_mask(&self) -> u32 {
        (!(self.size - 1) as u32 & BAR_MEMORY_ADDRESS_MASK) | self.kind.type_bits()
    }

    /// A 64-bit BAR's high register's answer to a size probe.
    pub const fn high_size_mask(&self) -> u32 {
        (!(self.size - 1) >> 32) as u32
    }

    /// The pages the BAR occupies: every BAR gets whole pages of its own, so it can be mapped
    /// into the cell without exposing a neighbour.
    pub const fn footprint(&self) -> u64 {
        footprint(self.size)
    }
}

const fn footprint(size: u64) -> u64 {
    if size < PAGE_SIZE { PAGE_SIZE } else { size }
}

/// Places the function's memory BARs in `window`: largest first, each naturally aligned and on
/// whole pages of its own, 32-bit BARs below 4 GiB. I/O BARs are never assigned. The result is
/// sorted by BAR index.
///
/// Fails if the window is empty, wraps or is not page aligned, if the BARs do not fit it, or if a
/// 32-bit BAR would land at or above 4 GiB.
pub fn assign(info: &FunctionInfo, window: MemRange) -> Result<Vec<AssignedBar>, PciError> {
    let bdf = info.bdf;
    let bad_window = PciError::BadWindow { bdf, window };
    let window_end = window.end().ok_or(bad_window.clone())?;
    if window.size == 0
        || !window.base.is_multiple_of(PAGE_SIZE)
        || !window.size.is_multiple_of(PAGE_SIZE)
    {
        return Err(bad_window);
    }
    let mut bars: Vec<_> = info.memory_bars().copied().collect();
    bars.sort_by(|a, b| b.size.cmp(&a.size).then(a.index.cmp(&b.index)));

    let mut assigned = Vec::with_capacity(bars.len());
    let mut cursor = window.base;
    let mut fits = true;
    for bar in bars {
        let align = footprint(bar.size);
        let address = cursor
            .checked_next_multiple_of(align)
            .and_then(|address| address.checked_add(align).map(|end| (address, end)));
        let Some((address, end)) = address else {
            return Err(bad_window);
        };
        cursor = end;
        fits &= end <= window_end;
        if fits && matches!(bar.kind, BarKind::Memory32 { .. }) && end > FOUR_GIB {
            return Err(PciError::BarAboveFourGiB {
                bdf,
                index: bar.index,
                address,
            });
        }
        assigned.push(AssignedBar {
            index: bar.index,
            kind: bar.kind,
            address,
            size: bar.size,
        });
    }
    if !fits {
        return Err(PciError::BarsDoNotFit {
            bdf,
            needed: cursor - window.base,
            window,
        });
    }
    assigned.sort_by_key(|bar| bar.index);
    Ok(assigned)
}

/// Writes the assigned BARs into the function `bdf` (both halves of a 64-bit BAR), every other
/// BAR register (I/O, unimplemented) and the expansion ROM BAR 0, with I/O and Memory decode
/// disabled; decode stays disabled (the cell enables Memory Space).
pub fn program<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    assigned: &[AssignedBar],
) -> Result<(), PciError> {
    let command = read16(access, bdf, COMMAND)?;
    let decode = COMMAND_IO_SPACE | COMMAND_MEMORY_SPACE;
    if command & decode != 0 {
        access.write16(bdf, COMMAND, command & !decode)?;
    }
    let mut registers = [0u32; BAR_COUNT];
    for bar in assigned {
        let index = usize::from(bar.index);
        if let Some(low) = registers.get_mut(index) {
            *low = bar.low_register();
        }
        if let (BarKind::Memory64 { .. }, Some(high)) = (bar.kind, registers.get_mut(index + 1)) {
            *high = bar.high_register();
        }
    }
    for (index, value) in registers.into_iter().enumerate() {
        access.write32(bdf, BAR0 + 4 * index as u16, value)?;
    }
    access.write32(bdf, EXPANSION_ROM, 0)
}
