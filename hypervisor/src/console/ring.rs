//! A cell's console output ring: the bytes its vUART transmitted that are not on the terminal yet,
//! bounded, with the bytes it had no room for counted.
#![forbid(unsafe_code)]
//!
//! The cell's vCPUs append (under the cell's UART lock, see docs/architecture.md "Lock order");
//! cellvisor's drainer reads (under the terminal lock). The ring's own lock is held only to copy a
//! few bytes in or out, never across I/O to the physical UART, so a vCPU appending never waits for
//! the terminal, whatever another cell prints.
//!
//! When the ring is full the cell loses its own bytes, never another cell's time: every byte that
//! does not fit is dropped and counted, and so is every byte after it until the drainer has taken
//! everything that came before. The gap is therefore always at the end of what the ring holds,
//! and the drainer learns of it ([`Taken::dropped`]) exactly where it lies in the stream, to mark
//! it on the terminal.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

/// Bytes a cell's output ring holds: a burst (a Linux boot's early log) fits while the terminal
/// catches up.
pub const RING_BYTES: usize = 16 * 1024;

/// One cell's output ring.
pub struct OutputRing {
    state: Mutex<RingState>,
    /// Bytes dropped since boot (the `cells` table's `dropped` column).
    dropped_total: AtomicU64,
}

struct RingState {
    bytes: Vec<u8>,
    /// Index of the oldest byte.
    head: usize,
    /// Bytes held.
    len: usize,
    /// Bytes dropped since the drainer last took a gap: while non-zero the ring accepts nothing,
    /// so the gap stays at its end.
    gap: u64,
}

/// What [`OutputRing::take`] found after the bytes it consumed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The ring is empty now.
    pub empty: bool,
    /// Bytes that were dropped right after the consumed ones (now reported; 0 if none).
    pub dropped: u64,
}

impl OutputRing {
    /// An empty ring of `capacity` bytes (allocated once, here).
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(RingState {
                bytes: vec![0; capacity.max(1)],
                head: 0,
                len: 0,
                gap: 0,
            }),
            dropped_total: AtomicU64::new(0),
        }
    }

    /// Appends one byte the cell transmitted; `false` if it was dropped (the ring is full, or a
    /// gap the drainer has not reached yet is waiting at its end).
    pub fn push(&self, byte: u8) -> bool {
        let mut state = self.state.lock();
        let capacity = state.bytes.len();
        if state.gap > 0 || state.len >= capacity {
            state.gap = state.gap.saturating_add(1);
            drop(state);
            self.dropped_total.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let tail = (state.head + state.len) % capacity;
        if let Some(slot) = state.bytes.get_mut(tail) {
            *slot = byte;
        }
        state.len += 1;
        true
    }

    /// Copies up to `buffer.len()` of the oldest bytes into `buffer` without consuming them;
    /// returns how many. Only the drainer (one at a time, under the terminal lock) reads.
    pub fn peek(&self, buffer: &mut [u8]) -> usize {
        let state = self.state.lock();
        let capacity = state.bytes.len();
        let count = buffer.len().min(state.len);
        for (offset, slot) in buffer.iter_mut().take(count).enumerate() {
            *slot = state
                .bytes
                .get((state.head + offset) % capacity)
                .copied()
                .unwrap_or(0);
        }
        count
    }

    /// Consumes the `count` oldest bytes (at most what the ring holds). If that empties the ring
    /// and bytes were dropped after them, the gap is handed over (and the ring accepts bytes
    /// again).
    pub fn take(&self, count: usize) -> Taken {
        let mut state = self.state.lock();
        let capacity = state.bytes.len();
        let count = count.min(state.len);
        state.head = (state.head + count) % capacity;
        state.len -= count;
        let empty = state.len == 0;
        let dropped = if empty {
            core::mem::take(&mut state.gap)
        } else {
            0
        };
        Taken { empty, dropped }
    }

    /// Whether the drainer has something to do here: bytes, or a gap to report.
    pub fn has_output(&self) -> bool {
        let state = self.state.lock();
        state.len > 0 || state.gap > 0
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.state.lock().len
    }

    /// Whether the ring holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes dropped since boot.
    pub fn dropped(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Whether the ring's lock is held right now (for tests that check the drainer never holds it
    /// across terminal output).
    #[cfg(test)]
    pub fn is_locked(&self) -> bool {
        self.state.is_locked()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain_all(ring: &OutputRing) -> (Vec<u8>, u64) {
        let mut out = Vec::new();
        let mut dropped = 0;
        loop {
            let mut buffer = [0u8; 5];
            let count = ring.peek(&mut buffer);
            out.extend_from_slice(&buffer[..count]);
            let taken = ring.take(count);
            dropped += taken.dropped;
            if taken.empty {
                return (out, dropped);
            }
        }
    }

    #[test]
    fn bytes_come_out_in_order_across_the_wrap() {
        let ring = OutputRing::new(8);
        for round in 0..10u8 {
            for byte in 0..5u8 {
                assert!(ring.push(round * 10 + byte));
            }
            let (out, dropped) = drain_all(&ring);
            assert_eq!(
                out,
                (0..5).map(|byte| round * 10 + byte).collect::<Vec<_>>()
            );
            assert_eq!(dropped, 0);
        }
        assert_eq!(ring.dropped(), 0);
        assert!(!ring.has_output());
    }

    #[test]
    fn a_full_ring_drops_and_counts_until_the_drainer_reaches_the_gap() {
        let ring = OutputRing::new(4);
        for byte in b"abcdefg" {
            ring.push(*byte);
        }
        assert_eq!(ring.len(), 4, "bounded");
        assert_eq!(ring.dropped(), 3);
        // Room made by the drainer is not refilled while the gap waits: the gap stays at the end.
        let mut buffer = [0u8; 2];
        assert_eq!(ring.peek(&mut buffer), 2);
        assert_eq!(
            ring.take(2),
            Taken {
                empty: false,
                dropped: 0
            }
        );
        assert!(!ring.push(b'h'));
        assert_eq!(ring.dropped(), 4);
        let (out, dropped) = drain_all(&ring);
        assert_eq!(out, b"cd");
        assert_eq!(
            dropped, 4,
            "the gap is reported once the bytes before it are out"
        );
        // After the gap, bytes are accepted again.
        assert!(ring.push(b'i'));
        assert_eq!(drain_all(&ring), (b"i".to_vec(), 0));
        assert_eq!(ring.dropped(), 4, "the total stays");
    }

    #[test]
    fn a_gap_alone_is_still_output() {
        let ring = OutputRing::new(1);
        ring.push(b'a');
        ring.push(b'b');
        assert_eq!(
            ring.take(1),
            Taken {
                empty: true,
                dropped: 1
            }
        );
        assert!(!ring.has_output());
        // A ring that dropped while empty of bytes cannot happen with capacity >= 1; a zero
        // capacity is raised to one.
        let tiny = OutputRing::new(0);
        assert!(tiny.push(b'x'));
        assert!(!tiny.push(b'y'));
        assert_eq!(
            tiny.take(usize::MAX),
            Taken {
                empty: true,
                dropped: 1
            }
        );
    }
}
