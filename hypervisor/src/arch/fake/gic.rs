//! Fake physical GICv3: per-CPU pending and active SGIs/PPIs, SPIs with the configuration the
//! core forwards (enable, priority, trigger, route), acknowledge and deactivate.
//!
//! An interrupt is pending by a latch ([`FakeGic::raise`]: an edge, cleared when the interrupt is
//! acknowledged) or by a level-sensitive line its source holds high ([`FakeGic::set_line`]: the
//! guest's timers, a device's level SPI), which stays asserted through acknowledge and
//! deactivation until the source lowers it, as on a real GIC.
//!
//! The model keeps sets of INTIDs rather than register images, and refuses what the real GIC
//! would silently mishandle: configuring an INTID that is not an SPI of this GIC, or deactivating
//! an interrupt that is not active, panics.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

use crate::dev::gic::SPI_BASE_INTID;

/// `GICD_TYPER.ITLinesNumber` of the fake distributor: INTIDs below 32 * (8 + 1) = 288, as on
/// QEMU virt.
pub const IT_LINES_NUMBER: u32 = 8;
/// The SGI the fake's kicks raise. Deliberately not the SGI the aarch64 glue uses (0): the core
/// must not care which SGI a kick is.
pub const KICK_SGI: u32 = 7;
/// Priority of every SGI and PPI (the arch glue programs them all alike).
const PRIVATE_PRIORITY: u8 = 0x80;
/// One past the last SPI the fake distributor implements.
const SPI_END: u32 = 32 * (IT_LINES_NUMBER + 1);

/// One SPI at the fake distributor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spi {
    /// `GICD_ISENABLER` bit.
    pub enabled: bool,
    /// `GICD_IPRIORITYR` byte.
    pub priority: u8,
    /// `GICD_ICFGR`: edge-triggered.
    pub edge: bool,
    /// `GICD_IROUTER`: the physical CPU it is routed to.
    pub route: Option<usize>,
    /// Pending by its latch (an edge, until acknowledged).
    pub pending: bool,
    /// Its level-sensitive line is asserted.
    pub line: bool,
    /// Active (acknowledged, not yet deactivated).
    pub active: bool,
}

/// The SGIs and PPIs of one CPU.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Private {
    /// Pending by their latch.
    pending: BTreeSet<u32>,
    /// Their level-sensitive lines are asserted.
    lines: BTreeSet<u32>,
    active: BTreeSet<u32>,
}

/// The fake physical GIC of the whole machine.
#[derive(Debug)]
pub struct FakeGic {
    cpus: Vec<Private>,
    spis: BTreeMap<u32, Spi>,
}

impl FakeGic {
    /// A GIC for `cpu_count` CPUs with nothing pending and every SPI disabled.
    pub fn new(cpu_count: usize) -> Self {
        Self {
            cpus: vec![Private::default(); cpu_count],
            spis: BTreeMap::new(),
        }
    }

    fn private(&mut self, cpu: usize) -> &mut Private {
        let count = self.cpus.len();
        self.cpus
            .get_mut(cpu)
            .unwrap_or_else(|| panic!("fake GIC: no CPU {cpu} (the machine has {count})"))
    }

    /// The SPI `intid`; panics unless the distributor implements it.
    pub fn spi_mut(&mut self, intid: u32) -> &mut Spi {
        assert!(
            (SPI_BASE_INTID..SPI_END).contains(&intid),
            "fake GIC: INTID {intid} is not an SPI of this distributor"
        );
        self.spis.entry(intid).or_default()
    }

    /// The SPI `intid` as configured so far.
    pub fn spi(&self, intid: u32) -> Spi {
        self.spis.get(&intid).copied().unwrap_or_default()
    }

    /// Makes `intid` pending: an SGI or PPI of `cpu`, or an SPI (which goes where it is routed).
    pub fn raise(&mut self, cpu: usize, intid: u32) {
        if intid < SPI_BASE_INTID {
            self.private(cpu).pending.insert(intid);
        } else {
            self.spi_mut(intid).pending = true;
        }
    }

    /// Sets the level-sensitive line of `intid`: a PPI of `cpu`, or an SPI.
    pub fn set_line(&mut self, cpu: usize, intid: u32, asserted: bool) {
        if intid < SPI_BASE_INTID {
            let lines = &mut self.private(cpu).lines;
            if asserted {
                lines.insert(intid);
            } else {
                lines.remove(&intid);
            }
        } else {
            self.spi_mut(intid).line = asserted;
        }
    }

    /// Whether SGI/PPI `intid` of `cpu`, or SPI `intid`, is pending (by its latch or its line),
    /// as its `GICR_ISPENDR0`/`GICD_ISPENDR` bit reads.
    pub fn is_pending(&self, cpu: usize, intid: u32) -> bool {
        if intid < SPI_BASE_INTID {
            self.cpus.get(cpu).is_some_and(|private| {
                private.pending.contains(&intid) || private.lines.contains(&intid)
            })
        } else {
            let spi = self.spi(intid);
            spi.pending || spi.line
        }
    }

    /// Whether SGI/PPI `intid` of `cpu`, or SPI `intid`, is active.
    pub fn is_active(&self, cpu: usize, intid: u32) -> bool {
        if intid < SPI_BASE_INTID {
            self.cpus
                .get(cpu)
                .is_some_and(|private| private.active.contains(&intid))
        } else {
            self.spi(intid).active
        }
    }

    /// The highest-priority interrupt `cpu` would be signalled now, if any.
    pub fn highest_pending(&self, cpu: usize) -> Option<u32> {
        let private = self.cpus.get(cpu)?;
        let privates = private
            .pending
            .union(&private.lines)
            .filter(|intid| !private.active.contains(intid))
            .map(|&intid| (PRIVATE_PRIORITY, intid));
        let shared = self
            .spis
            .iter()
            .filter(|(_, spi)| {
                (spi.pending || spi.line) && !spi.active && spi.enabled && spi.route == Some(cpu)
            })
            .map(|(&intid, spi)| (spi.priority, intid));
        privates.chain(shared).min().map(|(_, intid)| intid)
    }

    /// Acknowledges the highest-priority pending interrupt of `cpu`: it becomes active.
    pub fn acknowledge(&mut self, cpu: usize) -> Option<u32> {
        let intid = self.highest_pending(cpu)?;
        if intid < SPI_BASE_INTID {
            let private = self.private(cpu);
            private.pending.remove(&intid);
            private.active.insert(intid);
        } else {
            let spi = self.spi_mut(intid);
            // A line still asserted keeps it pending (and active).
            spi.pending = false;
            spi.active = true;
        }
        Some(intid)
    }

    /// Deactivates `intid` (for an SGI/PPI: `cpu`'s). Panics if it is not active.
    pub fn deactivate(&mut self, cpu: usize, intid: u32) {
        let was_active = if intid < SPI_BASE_INTID {
            self.private(cpu).active.remove(&intid)
        } else {
            core::mem::replace(&mut self.spi_mut(intid).active, false)
        };
        assert!(
            was_active,
            "fake GIC: deactivation of INTID {intid} on CPU {cpu}, which is not active"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spis_reach_only_the_cpu_they_are_routed_to_once_enabled() {
        let mut gic = FakeGic::new(2);
        gic.raise(0, 78);
        gic.spi_mut(78).route = Some(1);
        assert_eq!(gic.highest_pending(1), None, "disabled");
        gic.spi_mut(78).enabled = true;
        assert_eq!(gic.highest_pending(0), None, "routed elsewhere");
        gic.raise(1, KICK_SGI);
        assert_eq!(
            gic.acknowledge(1),
            Some(78),
            "priority 0 beats the SGI's 0x80"
        );
        assert_eq!(gic.acknowledge(1), Some(KICK_SGI));
        assert_eq!(gic.acknowledge(1), None);
        gic.deactivate(1, 78);
        assert!(!gic.is_active(1, 78));
        assert!(gic.is_active(1, KICK_SGI));
    }

    #[test]
    fn a_level_line_stays_pending_through_acknowledge_until_its_source_lowers_it() {
        let mut gic = FakeGic::new(1);
        gic.set_line(0, 27, true);
        assert_eq!(gic.acknowledge(0), Some(27));
        assert!(
            gic.is_pending(0, 27),
            "active and pending: the line is high"
        );
        assert_eq!(
            gic.highest_pending(0),
            None,
            "but not signalled while active"
        );
        gic.deactivate(0, 27);
        assert_eq!(
            gic.highest_pending(0),
            Some(27),
            "signalled again after deactivation"
        );
        gic.set_line(0, 27, false);
        assert!(!gic.is_pending(0, 27));
        assert_eq!(gic.highest_pending(0), None);
        gic.raise(0, 27);
        assert_eq!(gic.acknowledge(0), Some(27));
        assert!(!gic.is_pending(0, 27), "a latch ends with the acknowledge");
    }

    #[test]
    #[should_panic(expected = "not active")]
    fn deactivating_an_inactive_interrupt_panics() {
        FakeGic::new(1).deactivate(0, 27);
    }
}
