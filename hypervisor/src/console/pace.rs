//! A console UART paced to a baud rate (`cellvisor.console_baud=N`), so a machine whose UART is
//! instant (QEMU's PL011 sends every byte at once) shows the console as a real serial line would.
#![forbid(unsafe_code)]
//!
//! The paced UART behaves like a real one with a [`FIFO_BYTES`]-byte transmit FIFO: it takes
//! bytes while its FIFO has room and empties it at `baud / 10` bytes a second (8N1), measured on
//! the system counter. A real UART's transmit interrupt would bring the pump back each time the
//! FIFO drains while output waits; the paced one has no interrupt, so while the pump says output
//! waits ([`ConsoleOutput::set_transmit_interrupt`]) it counts the line time that passes as bytes
//! the interrupt would have refilled and sent, and takes that many more at the next pump (the next
//! exit of a printing vCPU or cellvisor's next line). Throughput and order are a real line's; a
//! byte may reach the terminal up to one pump interval later than it would on one. It exists for
//! tests and `cargo xtask bench`; boards with a real UART do not use it.

use crate::console::screen::ConsoleOutput;

/// The transmit FIFO of the paced UART (a PL011 r1p5's depth).
pub const FIFO_BYTES: u64 = 32;

/// The bootarg that paces the console: `cellvisor.console_baud=115200`.
const BAUD_BOOTARG: &str = "cellvisor.console_baud=";

/// The baud rate `cellvisor.console_baud=N` in cellvisor's command line asks for (the last one
/// wins); `None` without it, or for a value that is not a number of at least 10.
pub fn baud_from_bootargs(bootargs: &str) -> Option<u64> {
    bootargs
        .split_ascii_whitespace()
        .filter_map(|argument| argument.strip_prefix(BAUD_BOOTARG))
        .next_back()
        .and_then(|value| value.parse().ok())
        .filter(|&baud| baud >= 10)
}

/// Polls of a full FIFO before [`Paced::write_bytes`] gives up waiting (as `drivers::pl011` does).
const MAX_SPINS: u32 = 1_000_000;

/// A [`ConsoleOutput`] that takes bytes no faster than a serial line of `baud` bits a second.
pub struct Paced<O> {
    inner: O,
    bytes_per_second: u64,
    clock: fn() -> (u64, u64),
    /// Bytes in the modelled FIFO at `at`.
    level: u64,
    /// Counter value `level` was computed at.
    at: u64,
    /// The pump has output waiting (it asked for the transmit interrupt).
    waiting: bool,
    /// Bytes the line could have sent since the FIFO emptied while output waited (what the
    /// transmit interrupt would have refilled it with), at most a second's worth.
    owed: u64,
}

impl<O: ConsoleOutput> Paced<O> {
    /// Paces `inner` to `baud` (at least 10, one byte a second); `clock` reads the system counter
    /// and its frequency.
    pub fn new(inner: O, baud: u64, clock: fn() -> (u64, u64)) -> Self {
        Self {
            inner,
            bytes_per_second: (baud / 10).max(1),
            clock,
            level: 0,
            at: clock().0,
            waiting: false,
            owed: 0,
        }
    }

    /// Room in the modelled FIFO now.
    fn room(&mut self) -> u64 {
        let (now, frequency) = (self.clock)();
        let elapsed = now.saturating_sub(self.at);
        let sent =
            u128::from(elapsed) * u128::from(self.bytes_per_second) / u128::from(frequency.max(1));
        let sent = u64::try_from(sent).unwrap_or(u64::MAX);
        if sent >= self.level {
            // Empty: idle time is not banked beyond the FIFO, except while bytes wait for it.
            if self.waiting {
                let idle = sent - self.level;
                self.owed = self.owed.saturating_add(idle).min(self.bytes_per_second);
            }
            self.level = 0;
            self.at = now;
        } else if sent > 0 {
            // Keep the part of a byte time already elapsed.
            self.level -= sent;
            let took = u128::from(sent) * u128::from(frequency) / u128::from(self.bytes_per_second);
            self.at = self
                .at
                .saturating_add(u64::try_from(took).unwrap_or(u64::MAX));
        }
        FIFO_BYTES
            .saturating_sub(self.level)
            .saturating_add(self.owed)
    }
}

impl<O: ConsoleOutput> ConsoleOutput for Paced<O> {
    fn try_write(&mut self, bytes: &[u8]) -> usize {
        let room = usize::try_from(self.room()).unwrap_or(usize::MAX);
        let count = bytes.len().min(room);
        let written = self.inner.try_write(bytes.get(..count).unwrap_or_default());
        // What the line owed goes first (it was sent while the bytes waited); the rest fills the
        // FIFO.
        let from_owed = self.owed.min(written as u64);
        self.owed -= from_owed;
        self.level += written as u64 - from_owed;
        written
    }

    fn write_bytes(&mut self, bytes: &[u8]) {
        // Wait for room as the real UART's driver does: bounded, a byte's time at the line's speed
        // several times over per byte, on the counter.
        let (_, frequency) = (self.clock)();
        let per_byte = frequency / self.bytes_per_second;
        let mut rest = bytes;
        let mut deadline = (self.clock)()
            .0
            .saturating_add(per_byte.saturating_mul(4) + 1);
        let mut spins = 0u32;
        while !rest.is_empty() {
            let written = self.try_write(rest);
            rest = rest.get(written..).unwrap_or_default();
            let now = (self.clock)().0;
            if written > 0 {
                deadline = now.saturating_add(per_byte.saturating_mul(4) + 1);
                spins = 0;
            } else if now > deadline || spins >= MAX_SPINS {
                // A clock that does not move cannot hold EL2: give the rest to the real UART.
                self.inner.write_bytes(rest);
                return;
            } else {
                spins += 1;
                core::hint::spin_loop();
            }
        }
    }

    fn set_transmit_interrupt(&mut self, enabled: bool) {
        // Not passed on: the real UART is never full, so its interrupt would fire at once and for
        // ever. The paced one stands in for it (see the module documentation).
        self.waiting = enabled;
        if !enabled {
            self.owed = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    /// 1 MHz counter the tests move by hand.
    static NOW: AtomicU64 = AtomicU64::new(0);
    /// Tests sharing [`NOW`] run one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn clock() -> (u64, u64) {
        (NOW.load(Ordering::SeqCst), 1_000_000)
    }

    /// Each reading moves the clock 100 µs (one byte at 100,000 baud = 10,000 bytes/s).
    fn ticking_clock() -> (u64, u64) {
        (NOW.fetch_add(100, Ordering::SeqCst), 1_000_000)
    }

    #[derive(Default)]
    struct Sink(Vec<u8>);

    impl ConsoleOutput for Sink {
        fn try_write(&mut self, bytes: &[u8]) -> usize {
            self.0.extend_from_slice(bytes);
            bytes.len()
        }
        fn write_bytes(&mut self, bytes: &[u8]) {
            self.0.extend_from_slice(bytes);
        }
        fn set_transmit_interrupt(&mut self, _enabled: bool) {}
    }

    #[test]
    fn the_bootarg_names_the_rate() {
        assert_eq!(
            baud_from_bootargs("cellvisor.layout=x cellvisor.console_baud=115200"),
            Some(115_200)
        );
        assert_eq!(
            baud_from_bootargs("cellvisor.console_baud=9600 cellvisor.console_baud=300"),
            Some(300)
        );
        assert_eq!(baud_from_bootargs("cellvisor.console_baud=fast"), None);
        assert_eq!(baud_from_bootargs("cellvisor.console_baud=5"), None);
        assert_eq!(baud_from_bootargs("console_baud=115200"), None);
    }

    #[test]
    fn takes_a_fifo_at_once_then_the_line_rate() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        NOW.store(0, Ordering::SeqCst);
        // 115200 baud: 11,520 bytes a second, one per ~86.8 µs.
        let mut uart = Paced::new(Sink::default(), 115_200, clock);
        assert_eq!(
            uart.try_write(&[0; 100]),
            32,
            "an idle UART takes a FIFO's worth"
        );
        assert_eq!(uart.try_write(&[0; 100]), 0, "then it is full");
        NOW.store(1_000, Ordering::SeqCst);
        assert_eq!(
            uart.try_write(&[0; 100]),
            11,
            "1 ms later: 11 bytes sent, 11 taken"
        );
        NOW.store(1_000_000, Ordering::SeqCst);
        assert_eq!(
            uart.try_write(&[0; 100]),
            32,
            "idle time is not banked beyond the FIFO"
        );
        assert_eq!(uart.inner.0.len(), 75);
    }

    #[test]
    fn while_bytes_wait_the_line_keeps_sending_as_its_interrupt_would_refill_it() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        NOW.store(0, Ordering::SeqCst);
        let mut uart = Paced::new(Sink::default(), 115_200, clock);
        assert_eq!(uart.try_write(&[0; 100]), 32);
        uart.set_transmit_interrupt(true);
        // 100 ms later the line has sent 1,152 bytes: the FIFO's 32 and 1,120 refills.
        NOW.store(100_000, Ordering::SeqCst);
        assert_eq!(uart.try_write(&[0; 2000]), 1_120 + 32);
        assert_eq!(uart.try_write(&[0; 10]), 0, "then it is full again");
        // Once nothing waits, idle time is idle again.
        uart.set_transmit_interrupt(false);
        NOW.store(10_000_000, Ordering::SeqCst);
        assert_eq!(uart.try_write(&[0; 2000]), 32);
    }

    #[test]
    fn waiting_writes_follow_the_clock_and_give_up_on_a_stopped_one() {
        let _serial = SERIAL
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        NOW.store(0, Ordering::SeqCst);
        let mut uart = Paced::new(Sink::default(), 100_000, ticking_clock);
        uart.write_bytes(&[7; 200]);
        assert_eq!(uart.inner.0.len(), 200);
        assert!(
            NOW.load(Ordering::SeqCst) >= 160 * 100,
            "200 bytes through a 32-byte FIFO at 10,000 bytes/s take at least 16.8 ms"
        );
        // A counter that never moves: bounded, the bytes still get out.
        let mut stuck = Paced::new(Sink::default(), 9600, clock);
        stuck.write_bytes(&[1; 100]);
        assert_eq!(stuck.inner.0.len(), 100);
    }
}
