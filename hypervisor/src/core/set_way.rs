//! A guest's data cache maintenance by set/way (DC ISW/CSW/CISW and the allocation-tag forms),
//! trapped by HCR_EL2.TSW and carried out by address over the cell's own RAM.
//!
//! Set/way operations act on the physical caches, which the cells and cellvisor share: one cell
//! could discard (ISW) or write back another's lines, and a guest cannot know which set and way
//! hold its data anyway. As KVM does, cellvisor turns them into what a guest uses them for: all
//! of the cell's RAM cleaned and invalidated to the point of coherency by address, once per walk.
//!
//! A guest walks a cache level by issuing one operation per set and way; every common walk (the
//! Arm ARM's example, Linux before 4.x, U-Boot, TF-A) counts both down, so the operation naming
//! set 0 and way 0 of a level is the one that ends it (and, for a walk counting up, the one that
//! starts it). That operation cleans the RAM; every other set/way operation completes at once.
//! The clean is cut into [`CHUNK`]-byte pieces, one per exit: the operation's PC does not advance
//! until the last piece is done, so the guest executes it again and EL2 does a bounded amount of
//! work per exit (however big the cell, however many operations a guest issues), stays
//! responsive to stop requests between pieces, and the guest sees its operation complete only
//! once all of its RAM is clean. The work runs on the guest's own CPU and is what the guest could
//! do itself with DC CIVAC: a storm of set/way operations costs only the cell that issues it.
#![forbid(unsafe_code)]

use crate::mem::range::PhysRange;
use crate::setup::partition::RamRegion;

/// Bytes of the cell's RAM cleaned per exit.
pub const CHUNK: u64 = 2 * 1024 * 1024;

/// Whether the set/way operand `value` (Rt: Level in bits 3:1, set and way in bits 31:4) names
/// set 0 and way 0, which ends (or starts) a walk of its level.
pub const fn ends_walk(value: u64) -> bool {
    (value >> 4) & 0x0fff_ffff == 0
}

/// What one trapped set/way operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to clean: the operation completes.
    Complete,
    /// Clean and invalidate `range`; the operation completes only if `last`, else the guest
    /// executes it again for the next piece.
    Clean {
        /// The piece of the cell's RAM.
        range: PhysRange,
        /// Whether this is the last piece of the clean.
        last: bool,
    },
}

/// One vCPU's clean in progress: how far into its cell's RAM (all regions in order) it got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SetWayClean {
    /// Bytes of the cell's RAM cleaned so far, if a clean is under way.
    done: Option<u64>,
}

impl SetWayClean {
    /// No clean under way.
    pub const fn new() -> Self {
        Self { done: None }
    }

    /// Forgets a clean under way (a new instance of the vCPU).
    pub fn clear(&mut self) {
        self.done = None;
    }

    /// The step of one set/way operation with operand `value` over the cell's `regions`. A clean
    /// under way goes on whatever the operand (an interrupt handler's operation in the middle of
    /// one continues it); otherwise only an operation that [`ends_walk`] starts one.
    pub fn step(&mut self, regions: &[RamRegion], value: u64) -> Step {
        let offset = match self.done {
            Some(done) => done,
            None if ends_walk(value) => 0,
            None => return Step::Complete,
        };
        let total: u64 = regions.iter().map(|region| region.physical.size()).sum();
        let mut base = 0u64;
        for region in regions {
            let size = region.physical.size();
            if offset < base.saturating_add(size) {
                let within = offset - base;
                let length = CHUNK.min(size - within);
                let Some(start) = region.physical.base().checked_add(within) else {
                    break;
                };
                let done = offset + length;
                let last = done >= total;
                self.done = (!last).then_some(done);
                return Step::Clean {
                    range: PhysRange::new(start, length),
                    last,
                };
            }
            base = base.saturating_add(size);
        }
        self.done = None;
        Step::Complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::addr::{GuestPhysAddr, PhysAddr};
    use std::vec::Vec;

    const MIB: u64 = 1024 * 1024;

    fn region(base: u64, size: u64) -> RamRegion {
        RamRegion {
            physical: PhysRange::new(PhysAddr::new(base), size),
            guest_base: GuestPhysAddr::new(base),
        }
    }

    /// Plays operations with `value` until the one that completes; returns the pieces cleaned.
    fn walk_end(clean: &mut SetWayClean, regions: &[RamRegion], value: u64) -> Vec<PhysRange> {
        let mut pieces = Vec::new();
        for _ in 0..10_000 {
            match clean.step(regions, value) {
                Step::Complete => return pieces,
                Step::Clean { range, last } => {
                    pieces.push(range);
                    if last {
                        return pieces;
                    }
                }
            }
        }
        panic!("the clean never completed");
    }

    #[test]
    fn set_0_way_0_of_any_level_ends_a_walk() {
        assert!(ends_walk(0));
        assert!(ends_walk(0b0010)); // level 2
        assert!(ends_walk(0b1110)); // level 8
        assert!(!ends_walk(1 << 6)); // set 1 with 64-byte lines
        assert!(!ends_walk(1 << 31)); // way 1 of 2
        // RES0 bits above 31 are ignored.
        assert!(ends_walk(0xffff_ffff_0000_0002));
    }

    #[test]
    fn only_the_end_of_a_walk_cleans_and_every_piece_is_bounded() {
        let regions = [region(0x6000_0000, 5 * MIB), region(0x9000_0000, MIB)];
        let mut clean = SetWayClean::new();
        // Set 3, way 1 of level 1: completes without work.
        assert_eq!(clean.step(&regions, (1 << 31) | (3 << 6)), Step::Complete);
        let pieces = walk_end(&mut clean, &regions, 0);
        assert_eq!(
            pieces,
            [
                PhysRange::new(PhysAddr::new(0x6000_0000), 2 * MIB),
                PhysRange::new(PhysAddr::new(0x6020_0000), 2 * MIB),
                PhysRange::new(PhysAddr::new(0x6040_0000), MIB),
                PhysRange::new(PhysAddr::new(0x9000_0000), MIB),
            ],
            "all of the cell's RAM, in pieces of at most CHUNK bytes"
        );
        // Done: the next non-final operation does nothing again.
        assert_eq!(clean.step(&regions, 1 << 6), Step::Complete);
    }

    #[test]
    fn a_clean_under_way_goes_on_whatever_the_operand() {
        let regions = [region(0x6000_0000, 4 * MIB)];
        let mut clean = SetWayClean::new();
        assert!(matches!(
            clean.step(&regions, 0),
            Step::Clean { last: false, .. }
        ));
        // An interrupt handler's operation on set 7 continues (and here completes) it.
        assert_eq!(
            clean.step(&regions, 7 << 6),
            Step::Clean {
                range: PhysRange::new(PhysAddr::new(0x6020_0000), 2 * MIB),
                last: true
            }
        );
        // A new instance starts with nothing under way.
        assert!(matches!(
            clean.step(&regions, 0),
            Step::Clean { last: false, .. }
        ));
        clean.clear();
        assert_eq!(clean.step(&regions, 7 << 6), Step::Complete);
    }

    #[test]
    fn a_cell_without_ram_completes_at_once() {
        let mut clean = SetWayClean::new();
        assert_eq!(clean.step(&[], 0), Step::Complete);
    }
}
