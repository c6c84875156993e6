//! Time from the virtual counter (CNTVCT_EL0 at CNTFRQ_EL0), for heartbeats and bounded waits.

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading CNTVCT_EL0 (after an ISB so it is not read early) has no side effects.
    unsafe {
        core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack))
    };
    value
}

fn frequency() -> u64 {
    let value: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    // A zero frequency (firmware did not set it) would make every wait end at once; assume 1 GHz.
    if value == 0 { 1_000_000_000 } else { value }
}

/// Counter ticks in `milliseconds`.
pub fn ticks_in_ms(milliseconds: u64) -> u64 {
    frequency().saturating_mul(milliseconds) / 1000
}

/// A point in virtual-counter time.
#[derive(Clone, Copy)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    pub fn now() -> Self {
        Self(counter())
    }

    /// This instant plus `milliseconds`.
    pub fn after_ms(self, milliseconds: u64) -> Self {
        Self(self.0.saturating_add(ticks_in_ms(milliseconds)))
    }

    /// Milliseconds from this instant to now.
    pub fn elapsed_ms(self) -> u64 {
        counter().saturating_sub(self.0) * 1000 / frequency()
    }

    /// Microseconds from this instant to now.
    pub fn elapsed_us(self) -> u64 {
        let ticks = u128::from(counter().saturating_sub(self.0));
        u64::try_from(ticks * 1_000_000 / u128::from(frequency())).unwrap_or(u64::MAX)
    }

    /// Whether this instant has passed.
    pub fn has_passed(self) -> bool {
        counter() >= self.0
    }
}

/// Spins until `condition` holds or `timeout_ms` passed; returns whether it held.
pub fn wait_until(timeout_ms: u64, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now().after_ms(timeout_ms);
    loop {
        if condition() {
            return true;
        }
        if deadline.has_passed() {
            return condition();
        }
        core::hint::spin_loop();
    }
}
