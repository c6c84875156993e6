//! Rate limiting for log lines a guest can trigger.
#![forbid(unsafe_code)]
//!
//! A [`RateLimiter`] is a token bucket on the caller's clock: it lets a burst of events through,
//! then at most a fixed number per second, and tells the logger how many events it hid since the
//! last one it let through. However fast a guest faults, its share of the console is bounded by
//! time, not by how many faults it makes. It is `const`-constructible (a small spin lock around
//! four integers), so it can live in a `static` or in a per-cell structure shared by the cell's
//! vCPUs.

use spin::Mutex;

/// What a line let through by [`RateLimiter::allow`] adds about the `hidden` events before it:
/// nothing, or `; N similar events not shown`.
pub fn hidden_note(hidden: u64) -> alloc::string::String {
    if hidden == 0 {
        alloc::string::String::new()
    } else {
        alloc::format!("; {hidden} similar events not shown")
    }
}

/// Counts events and decides which of them may be logged.
#[derive(Debug)]
pub struct RateLimiter {
    state: Mutex<Bucket>,
    burst: u64,
    per_second: u64,
}

#[derive(Debug)]
struct Bucket {
    /// Events that may be let through now.
    tokens: u64,
    /// Clock value up to which tokens have been credited.
    credited_to: u64,
    /// Whether the first event has been seen (the clock starts then).
    started: bool,
    /// Events hidden since the last one let through.
    suppressed: u64,
    /// Events recorded in all.
    events: u64,
}

impl RateLimiter {
    /// Events let through at once, for [`RateLimiter::new`].
    pub const DEFAULT_BURST: u64 = 10;
    /// Events let through per second after the burst, for [`RateLimiter::new`].
    pub const DEFAULT_PER_SECOND: u64 = 1;

    /// A limiter with the default policy: 10 events at once, then one a second.
    pub const fn new() -> Self {
        Self::with_limits(Self::DEFAULT_BURST, Self::DEFAULT_PER_SECOND)
    }

    /// A limiter that lets `burst` events through at once and then earns `per_second` more each
    /// second, holding at most `burst` (at least 1 of each).
    pub const fn with_limits(burst: u64, per_second: u64) -> Self {
        let burst = if burst == 0 { 1 } else { burst };
        Self {
            state: Mutex::new(Bucket {
                tokens: burst,
                credited_to: 0,
                started: false,
                suppressed: 0,
                events: 0,
            }),
            burst,
            per_second: if per_second == 0 { 1 } else { per_second },
        }
    }

    /// Records one event at clock value `now` of a clock running at `frequency` Hz. `Some(hidden)`
    /// means "log it", with the number of events hidden since the previous one that was let
    /// through; `None` means "stay quiet". A clock that goes backwards earns nothing.
    pub fn allow(&self, now: u64, frequency: u64) -> Option<u64> {
        let mut bucket = self.state.lock();
        bucket.events = bucket.events.wrapping_add(1);
        if !bucket.started {
            bucket.started = true;
            bucket.credited_to = now;
        }
        // Ticks per token, at least 1; credit whole tokens only, so no fraction is lost.
        let interval = (frequency / self.per_second).max(1);
        let earned = now.saturating_sub(bucket.credited_to) / interval;
        if earned > 0 {
            bucket.tokens = bucket.tokens.saturating_add(earned).min(self.burst);
            bucket.credited_to = if bucket.tokens == self.burst {
                now
            } else {
                bucket
                    .credited_to
                    .saturating_add(earned.saturating_mul(interval))
            };
        }
        if bucket.tokens == 0 {
            bucket.suppressed = bucket.suppressed.saturating_add(1);
            return None;
        }
        bucket.tokens -= 1;
        Some(core::mem::take(&mut bucket.suppressed))
    }

    /// How many events have been recorded since construction or the last [`reset`](Self::reset).
    pub fn events(&self) -> u64 {
        self.state.lock().events
    }

    /// Starts over, e.g. when a cell is restarted: the next `burst` events are let through again.
    pub fn reset(&self) {
        let mut bucket = self.state.lock();
        bucket.tokens = self.burst;
        bucket.started = false;
        bucket.suppressed = 0;
        bucket.events = 0;
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

    const HZ: u64 = 1_000_000_000;

    static GLOBAL: RateLimiter = RateLimiter::with_limits(2, 1);

    #[test]
    fn burst_then_a_steady_rate_with_counts() {
        let limiter = RateLimiter::with_limits(3, 2);
        // A flood at one clock value: the burst, then silence.
        let flood: Vec<Option<u64>> = (0..6).map(|_| limiter.allow(HZ, HZ)).collect();
        assert_eq!(flood, [Some(0), Some(0), Some(0), None, None, None]);
        // Half a second later one token was earned: it reports the three hidden events.
        assert_eq!(limiter.allow(HZ + HZ / 2, HZ), Some(3));
        assert_eq!(limiter.allow(HZ + HZ / 2, HZ), None);
        // Ten seconds later the bucket is full again, but never fuller than the burst.
        let later: Vec<Option<u64>> = (0..4).map(|_| limiter.allow(11 * HZ, HZ)).collect();
        assert_eq!(later, [Some(1), Some(0), Some(0), None]);
        assert_eq!(limiter.events(), 12);
    }

    #[test]
    fn a_guest_faulting_forever_gets_one_line_a_second() {
        let limiter = RateLimiter::new();
        // One fault every microsecond for 60 seconds of clock.
        let mut lines = 0;
        let mut hidden = 0;
        let mut now = 0;
        while now < 60 * HZ {
            if let Some(suppressed) = limiter.allow(now, HZ) {
                lines += 1;
                hidden += suppressed;
            }
            now += 1_000;
        }
        assert_eq!(lines, 10 + 59, "the burst, then one per second");
        let still_hidden = limiter.state.lock().suppressed;
        assert_eq!(lines + hidden + still_hidden, limiter.events());
    }

    #[test]
    fn partial_credit_is_kept_and_odd_clocks_do_not_panic() {
        let limiter = RateLimiter::with_limits(1, 1);
        assert_eq!(limiter.allow(0, 1000), Some(0));
        assert_eq!(limiter.allow(600, 1000), None);
        // 600 + 600 ticks: one whole token, earned over two calls.
        assert_eq!(limiter.allow(1200, 1000), Some(1));
        // Backwards, zero frequency, the end of the clock.
        assert_eq!(limiter.allow(5, 1000), None);
        assert_eq!(limiter.allow(u64::MAX, 0), Some(1));
        assert_eq!(limiter.allow(u64::MAX, u64::MAX), None);
        let zeroes = RateLimiter::with_limits(0, 0);
        assert_eq!(zeroes.allow(0, HZ), Some(0));
        assert_eq!(zeroes.allow(0, HZ), None);
    }

    #[test]
    fn reset_restarts_the_burst() {
        let limiter = RateLimiter::with_limits(1, 1);
        assert_eq!(limiter.allow(0, HZ), Some(0));
        assert_eq!(limiter.allow(0, HZ), None);
        limiter.reset();
        assert_eq!(limiter.events(), 0);
        assert_eq!(limiter.allow(0, HZ), Some(0));
    }

    #[test]
    fn static_limiter_across_threads() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..1000).filter(|_| GLOBAL.allow(7, HZ).is_some()).count())
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        // One clock value: the burst of 2 and nothing more.
        assert_eq!(allowed, 2);
        assert_eq!(GLOBAL.events(), 4000);
    }
}
