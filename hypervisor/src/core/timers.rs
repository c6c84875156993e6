//! The EL1 timers of a descheduled vCPU: when they would assert their interrupt, so a time-shared
//! CPU can wake the vCPU at its deadline (docs/architecture.md "Time-sharing").
#![forbid(unsafe_code)]

/// `CNTx_CTL_EL0.ENABLE`.
const ENABLE: u64 = 1 << 0;
/// `CNTx_CTL_EL0.IMASK`.
const IMASK: u64 = 1 << 1;

/// One saved EL1 timer: its control and compare value, and the offset its counter runs behind
/// the physical counter (CNTVOFF_EL2 for the virtual timer, 0 for the physical one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SavedTimer {
    pub ctl: u64,
    pub cval: u64,
    pub offset: u64,
}

impl SavedTimer {
    /// The physical counter value from which the timer asserts its interrupt: `None` when it is
    /// disabled or masked (it never interrupts). The compare value is in the timer's own counter,
    /// which is the physical one minus `offset` (modulo 2^64, as the architecture computes it).
    pub fn deadline(&self) -> Option<u64> {
        (self.ctl & ENABLE != 0 && self.ctl & IMASK == 0)
            .then(|| self.cval.wrapping_add(self.offset))
    }
}

/// The earliest deadline of `timers` (see [`SavedTimer::deadline`]).
pub fn earliest(timers: &[SavedTimer]) -> Option<u64> {
    timers.iter().filter_map(SavedTimer::deadline).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_or_masked_timer_has_no_deadline() {
        let off = SavedTimer {
            ctl: 0,
            cval: 5,
            offset: 0,
        };
        let masked = SavedTimer {
            ctl: ENABLE | IMASK,
            cval: 5,
            offset: 0,
        };
        assert_eq!(off.deadline(), None);
        assert_eq!(masked.deadline(), None);
        assert_eq!(earliest(&[off, masked]), None);
    }

    #[test]
    fn the_virtual_deadline_is_in_physical_counter_time() {
        let virtual_timer = SavedTimer {
            ctl: ENABLE,
            cval: 1_000,
            offset: 50_000,
        };
        assert_eq!(virtual_timer.deadline(), Some(51_000));
        // ISTATUS (bit 2) set by the hardware does not change anything.
        let fired = SavedTimer {
            ctl: ENABLE | 1 << 2,
            ..virtual_timer
        };
        assert_eq!(fired.deadline(), Some(51_000));
    }

    #[test]
    fn the_earliest_of_both_timers_wins() {
        let physical = SavedTimer {
            ctl: ENABLE,
            cval: 70_000,
            offset: 0,
        };
        let virtual_timer = SavedTimer {
            ctl: ENABLE,
            cval: 10_000,
            offset: 50_000,
        };
        assert_eq!(earliest(&[physical, virtual_timer]), Some(60_000));
    }

    #[test]
    fn a_compare_value_past_the_wrap_wraps_like_the_counter() {
        let virtual_timer = SavedTimer {
            ctl: ENABLE,
            cval: u64::MAX,
            offset: 2,
        };
        assert_eq!(virtual_timer.deadline(), Some(1));
    }
}
