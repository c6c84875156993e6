//! Fault loops: a vCPU whose guest cannot run a single instruction of its exception handler.
//!
//! cellvisor answers a guest's bad access with an abort injected at the guest's own vector. When
//! that vector is itself unusable (no vector table yet, VBAR_EL1 pointing outside the cell, a
//! handler whose first instruction faults), the injected abort faults again, identically, at the
//! vector it was sent to, and the vCPU loops for ever at full speed: a raw image whose first
//! instruction fetch is outside the cell does exactly that (VBAR_EL1 is 0 at reset, so every
//! instruction abort is sent to 0x200, which is outside the cell too).
//!
//! [`FaultStreak`] recognises the loop from the faults alone: a fault *repeats* the one before when
//! its syndrome (ESR_EL2), its fault address (FAR_EL2) and its PC are those of the previous fault,
//! and its PC lies in the 128-byte vector entry the previous fault was injected to, so nothing but
//! the first instructions of that entry ran in between. No other guest behaviour looks like that:
//! a handler that ran, a user program retrying a bad access, or a kernel fixing up a faulting
//! `copy_from_user` all fault from a PC outside the vector entry. What happens on a loop is the
//! board's [`FaultLoop`] policy.
#![forbid(unsafe_code)]

pub use crate::board::FaultLoop;

/// Bytes of one entry of an AArch64 exception vector table.
const VECTOR_ENTRY_SIZE: u64 = 0x80;

/// The syndrome of one fault exit, as EL2 saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The guest's PC at the fault (ELR_EL2).
    pub pc: u64,
    /// ESR_EL2.
    pub esr: u64,
    /// FAR_EL2 (meaningless, but just as repeatable, for traps without an address).
    pub far: u64,
}

/// One vCPU's latest injected fault and how many identical ones came in a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStreak {
    last: Option<(Fault, u64)>,
    count: u32,
}

impl FaultStreak {
    /// No fault yet.
    pub const fn new() -> Self {
        Self {
            last: None,
            count: 0,
        }
    }

    /// Records `fault`, which cellvisor is about to answer by sending the guest to `vector` (the
    /// injection's new PC); returns how many identical faults came in a row, this one included.
    pub fn record(&mut self, fault: Fault, vector: u64) -> u32 {
        let repeats = self.last.is_some_and(|(last, last_vector)| {
            last == fault && fault.pc.wrapping_sub(last_vector) < VECTOR_ENTRY_SIZE
        });
        self.count = if repeats {
            self.count.saturating_add(1)
        } else {
            1
        };
        self.last = Some((fault, vector));
        self.count
    }

    /// Forgets the streak (a new instance of the cell starts).
    pub fn clear(&mut self) {
        *self = Self::new();
    }
}

/// Whether `policy` stops a cell whose vCPU has had `count` identical faults in a row; a `Stop`
/// threshold below 2 counts as 2 (one fault is never a loop).
pub const fn stops_at(policy: FaultLoop, count: u32) -> bool {
    match policy {
        FaultLoop::Stop { after } => count >= if after < 2 { 2 } else { after },
        FaultLoop::KeepInjecting => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: u64 = 0x200;

    fn fetch_at(pc: u64) -> Fault {
        Fault {
            pc,
            esr: 0x8200_0006,
            far: pc,
        }
    }

    #[test]
    fn a_fault_at_the_vector_it_was_sent_to_repeats() {
        let mut streak = FaultStreak::new();
        // The first fetch (at the image's entry) differs from the loop that follows.
        assert_eq!(streak.record(fetch_at(0x4000_0000), VECTOR), 1);
        assert_eq!(streak.record(fetch_at(VECTOR), VECTOR), 1);
        for expected in 2..100 {
            assert_eq!(streak.record(fetch_at(VECTOR), VECTOR), expected);
        }
    }

    #[test]
    fn a_fault_after_the_handler_ran_or_with_another_syndrome_starts_again() {
        let mut streak = FaultStreak::new();
        let handler = 0x4008_0000;
        let user_retry = Fault {
            pc: 0x40_1000,
            esr: 0x9200_0046,
            far: 0x1000_0000,
        };
        // The same fault from a PC outside the vector entry (the handler ran and returned).
        for _ in 0..10 {
            assert_eq!(streak.record(user_retry, handler + 0x400), 1);
        }
        // Inside the entry, but another syndrome or address.
        let at_vector = Fault {
            pc: handler + 0x400 + 8,
            ..user_retry
        };
        assert_eq!(streak.record(at_vector, handler + 0x400), 1);
        assert_eq!(streak.record(at_vector, handler + 0x400), 2);
        let other_address = Fault {
            far: 0x2000_0000,
            ..at_vector
        };
        assert_eq!(streak.record(other_address, handler + 0x400), 1);
        let other_syndrome = Fault {
            esr: 0x9200_0006,
            ..other_address
        };
        assert_eq!(streak.record(other_syndrome, handler + 0x400), 1);
        // The entry is 128 bytes: a PC just past it is the handler making progress.
        let past_entry = Fault {
            pc: handler + 0x480,
            ..other_syndrome
        };
        assert_eq!(streak.record(past_entry, handler + 0x400), 1);
        assert_eq!(streak.record(past_entry, handler + 0x400), 1);
        streak.clear();
        assert_eq!(streak, FaultStreak::new());
    }

    #[test]
    fn the_policy_stops_at_its_threshold_and_never_at_one_fault() {
        let policy = FaultLoop::Stop { after: 64 };
        assert!(!stops_at(policy, 63));
        assert!(stops_at(policy, 64));
        assert!(!stops_at(FaultLoop::Stop { after: 0 }, 1));
        assert!(stops_at(FaultLoop::Stop { after: 1 }, 2));
        assert!(!stops_at(FaultLoop::KeepInjecting, u32::MAX));
    }
}
