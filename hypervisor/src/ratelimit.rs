//! Rate limiting for log lines a guest can trigger.
#![forbid(unsafe_code)]
//!
//! A [`RateLimiter`] lets the first `burst` events through, then only every 2^k-th, and tells the
//! logger how many events it hid since the last one it let through. It is one atomic counter, so
//! it is `const`-constructible, needs no allocation or lock, and can live in a `static` or inside a
//! per-cell structure shared by that cell's vCPUs.

use core::sync::atomic::{AtomicU64, Ordering};

/// Counts events and decides which of them may be logged.
#[derive(Debug)]
pub struct RateLimiter {
    events: AtomicU64,
    burst: u64,
    every_log2: u32,
}

impl RateLimiter {
    /// Events let through before limiting starts, for [`RateLimiter::new`].
    pub const DEFAULT_BURST: u64 = 10;
    /// After the burst, [`RateLimiter::new`] lets one event in 2^`DEFAULT_EVERY_LOG2` (64) through.
    pub const DEFAULT_EVERY_LOG2: u32 = 6;

    /// A limiter with the default policy: 10 events, then every 64th.
    pub const fn new() -> Self {
        Self::with_limits(Self::DEFAULT_BURST, Self::DEFAULT_EVERY_LOG2)
    }

    /// A limiter that lets `burst` events through, then one in 2^`every_log2` (`every_log2` is
    /// capped at 63; 0 lets everything through).
    pub const fn with_limits(burst: u64, every_log2: u32) -> Self {
        Self {
            events: AtomicU64::new(0),
            burst,
            every_log2: if every_log2 > 63 { 63 } else { every_log2 },
        }
    }

    /// Records one event. `Some(suppressed)` means "log it", with the number of events hidden since
    /// the previous one that was let through; `None` means "stay quiet".
    pub fn allow(&self) -> Option<u64> {
        // fetch_add wraps on overflow, which at one event per nanosecond takes 584 years.
        let index = self.events.fetch_add(1, Ordering::Relaxed);
        self.decide(index)
    }

    /// The decision for the event with 0-based number `index`.
    const fn decide(&self, index: u64) -> Option<u64> {
        if index < self.burst {
            return Some(0);
        }
        let period = 1u64 << self.every_log2;
        let since_burst = (index - self.burst).wrapping_add(1);
        if since_burst & (period - 1) == 0 {
            Some(period - 1)
        } else {
            None
        }
    }

    /// How many events have been recorded since construction or the last [`reset`](Self::reset).
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Starts over, e.g. when a cell is restarted: the next `burst` events are let through again.
    pub fn reset(&self) {
        self.events.store(0, Ordering::Relaxed);
    }
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static GLOBAL: RateLimiter = RateLimiter::with_limits(2, 1);

    #[test]
    fn burst_then_every_nth_with_counts() {
        let limiter = RateLimiter::with_limits(3, 2);
        let decisions: Vec<Option<u64>> = (0..14).map(|_| limiter.allow()).collect();
        assert_eq!(
            decisions,
            [
                Some(0),
                Some(0),
                Some(0),
                None,
                None,
                None,
                Some(3),
                None,
                None,
                None,
                Some(3),
                None,
                None,
                None,
            ]
        );
        assert_eq!(limiter.events(), 14);
    }

    #[test]
    fn default_policy() {
        let limiter = RateLimiter::new();
        let allowed: Vec<u64> = (0..10 + 64 * 3).filter_map(|_| limiter.allow()).collect();
        assert_eq!(allowed.len(), 10 + 3);
        assert_eq!(allowed[10..], [63, 63, 63]);
        let total: u64 = allowed.iter().sum::<u64>() + allowed.len() as u64;
        assert_eq!(total, limiter.events());
    }

    #[test]
    fn zero_shift_allows_everything_and_zero_burst_limits_at_once() {
        let all = RateLimiter::with_limits(0, 0);
        assert!((0..100).all(|_| all.allow() == Some(0)));
        let none_free = RateLimiter::with_limits(0, 1);
        assert_eq!(none_free.allow(), None);
        assert_eq!(none_free.allow(), Some(1));
    }

    #[test]
    fn huge_shift_is_capped() {
        let limiter = RateLimiter::with_limits(1, 200);
        assert_eq!(limiter.allow(), Some(0));
        assert!((0..1000).all(|_| limiter.allow().is_none()));
    }

    #[test]
    fn reset_restarts_the_burst() {
        let limiter = RateLimiter::with_limits(1, 4);
        assert_eq!(limiter.allow(), Some(0));
        assert_eq!(limiter.allow(), None);
        limiter.reset();
        assert_eq!(limiter.allow(), Some(0));
    }

    #[test]
    fn counter_wrap_does_not_panic() {
        let limiter = RateLimiter::with_limits(0, 3);
        limiter.events.store(u64::MAX, Ordering::Relaxed);
        let _ = limiter.allow();
        let _ = limiter.allow();
        assert_eq!(limiter.events(), 1);
    }

    #[test]
    fn static_limiter_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..1000).filter(|_| GLOBAL.allow().is_some()).count()))
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // 2 burst events, then one in 2 of the remaining 3998.
        assert_eq!(allowed, 2 + 3998 / 2);
    }
}
