//! The SPI configuration both GIC distributors share, GICv2's and GICv3's: `GICD_IPRIORITYR`
//! (one byte per interrupt at 0x400) and `GICD_ICFGR` (two bits per interrupt at 0xC00) sit at
//! the same offsets with the same layout in both architectures.

use super::gic_mmio::{read32, write8, write32};

const GICD_IPRIORITYR: usize = 0x0400;
/// `GICD_ICFGR0`: the trigger configuration words.
pub(super) const GICD_ICFGR: usize = 0x0C00;

/// Priority given to every physical interrupt cellvisor enables; no SPI of a cell's device is
/// given a higher one (a lower value), so cellvisor's own interrupts are never held back by them.
pub(super) const DEFAULT_PRIORITY: u8 = 0xa0;

/// Serialises read-modify-writes of distributor words that several cells' interrupts share (an
/// ICFGR word holds the trigger bits of 16 SPIs, which may belong to different cells, and the
/// vGICs of different cells reach it from different CPUs). Registers written with set/clear
/// semantics (ISENABLER, ICACTIVER, ...), per-interrupt ones (IPRIORITYR and ITARGETSR bytes,
/// IROUTER) and per-CPU registers need no lock. Held only around one read and one write; nothing
/// else is taken under it (docs/architecture.md, lock order).
pub(super) static SHARED_WORDS: spin::Mutex<()> = spin::Mutex::new(());

/// Sets the priority of SPI `intid` of the distributor at `distributor`, never above
/// [`DEFAULT_PRIORITY`]. The caller checked that `intid` is an implemented SPI.
pub(super) fn set_priority(distributor: usize, intid: u32, priority: u8) {
    let address = distributor + GICD_IPRIORITYR + intid as usize;
    write8(address, priority.max(DEFAULT_PRIORITY));
}

/// Sets SPI `intid` of the distributor at `distributor` edge-triggered (`true`) or
/// level-sensitive, under [`SHARED_WORDS`]. The caller checked that `intid` is an implemented SPI.
pub(super) fn set_edge_triggered(distributor: usize, intid: u32, edge: bool) {
    // GICD_ICFGR<n>: two bits per interrupt, the upper one set for edge-triggered.
    let address = distributor + GICD_ICFGR + (intid / 16) as usize * 4;
    let edge_bit = 1 << ((intid % 16) * 2 + 1);
    let _shared = SHARED_WORDS.lock();
    let value = read32(address);
    let value = if edge {
        value | edge_bit
    } else {
        value & !edge_bit
    };
    write32(address, value);
}
