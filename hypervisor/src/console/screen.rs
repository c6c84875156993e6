//! The terminal's output side: the queue of terminal bytes waiting for the physical UART, and the
//! pump that moves the cells' output rings through the multiplexer into it, fairly and boundedly.
#![forbid(unsafe_code)]
//!
//! Cell output goes guest → its own [`OutputRing`] → (the pump, under the terminal lock) the
//! multiplexer, which makes `[name] ` lines of it → the [`Screen`] queue → the UART. The pump
//! never waits for the UART: it writes what the UART takes now ([`ConsoleOutput::try_write`]) and
//! feeds the multiplexer only while the queue holds less than [`CELL_BACKLOG`] bytes, so cell
//! output never makes any CPU busy-wait. What is left waits for the next pump: the next exit of a
//! printing vCPU, cellvisor's next line, or the UART's transmit interrupt, which the pump asks for
//! while output waits ([`ConsoleOutput::set_transmit_interrupt`]).
//!
//! Fairness: the pump serves the cells with output round-robin, a *turn* each: up to
//! [`TURN_BYTES`] bytes of the cell's ring, ending early once the turn has put [`TURN_OUTPUT`]
//! terminal bytes on the queue (one line end may put a whole line there). A cell that prints
//! faster than the terminal can show therefore fills only its own ring and loses its own bytes
//! (the ring counts them; the pump marks the gap with a `…(N bytes dropped)` note on the cell's
//! line), while every other cell still gets a turn per round. One pump call does at most
//! `budget` terminal bytes' worth of turns, so the CPU running it is bounded too.
//!
//! cellvisor's own lines bypass the rings: they go on the queue at once, whole, in order
//! ([`Screen::push`] waits for the UART only if the queue cannot hold them, which cell output
//! alone never causes: it stops at [`CELL_BACKLOG`], far below [`SCREEN_BYTES`]).

use alloc::collections::VecDeque;

use crate::console::mux::Console;
use crate::console::ring::OutputRing;

/// Where terminal bytes go: the physical UART.
pub trait ConsoleOutput: Send {
    /// Writes as many leading bytes of `bytes` as the UART takes without waiting; returns how
    /// many.
    fn try_write(&mut self, bytes: &[u8]) -> usize;
    /// Writes all of `bytes`, waiting (bounded per byte) while the UART is full.
    fn write_bytes(&mut self, bytes: &[u8]);
    /// Asks for the UART's transmit interrupt (raised when its FIFO drains, so the pump runs
    /// again) while output waits, or turns it off. Called after every pump while output waits.
    fn set_transmit_interrupt(&mut self, enabled: bool);
}

/// Bytes the screen queue holds before [`Screen::push`] waits for the UART.
pub const SCREEN_BYTES: usize = 4096;
/// Cell output is fed to the multiplexer only while the queue holds fewer bytes than this: the
/// queue is a short line of work for the UART, not a second buffer (a byte fed here waits behind
/// at most this much plus one turn).
pub const CELL_BACKLOG: usize = 256;
/// Ring bytes one turn feeds at most.
pub const TURN_BYTES: usize = 64;
/// Terminal bytes after which a turn ends early.
pub const TURN_OUTPUT: usize = 128;

/// The terminal bytes waiting for the UART, and the pump's round-robin position.
pub struct Screen {
    queue: VecDeque<u8>,
    transmit_interrupt: bool,
    next_cell: usize,
}

impl Default for Screen {
    fn default() -> Self {
        Self::new()
    }
}

impl Screen {
    /// An empty queue of [`SCREEN_BYTES`] (allocated once, here).
    pub fn new() -> Self {
        Self {
            queue: VecDeque::with_capacity(SCREEN_BYTES),
            // Unknown at first (firmware may have left it on): the first pump says.
            transmit_interrupt: true,
            next_cell: 0,
        }
    }

    /// Bytes waiting for the UART.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether nothing waits for the UART.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues terminal bytes. Bytes that do not fit make it write out what is queued first,
    /// waiting for the UART; bytes longer than the whole queue are then written straight through.
    pub fn push(&mut self, bytes: &[u8], output: &mut dyn ConsoleOutput) {
        if self.queue.len() + bytes.len() > SCREEN_BYTES {
            self.flush(output);
        }
        if bytes.len() > SCREEN_BYTES {
            output.write_bytes(bytes);
        } else {
            self.queue.extend(bytes.iter().copied());
        }
    }

    /// Writes what the UART takes now; returns whether the queue is empty.
    pub fn transmit(&mut self, output: &mut dyn ConsoleOutput) -> bool {
        while !self.queue.is_empty() {
            let (front, _) = self.queue.as_slices();
            let written = output.try_write(front).min(front.len());
            if written == 0 {
                return false;
            }
            self.queue.drain(..written);
        }
        true
    }

    /// Writes everything queued, waiting for the UART (bounded per byte).
    pub fn flush(&mut self, output: &mut dyn ConsoleOutput) {
        let (front, back) = self.queue.as_slices();
        output.write_bytes(front);
        output.write_bytes(back);
        self.queue.clear();
    }

    /// Asks for the UART's transmit interrupt while output waits (in the queue, or in a ring
    /// `pending` says has some), again after every pump, since the UART arms it only while its
    /// FIFO holds bytes; turns it off once nothing waits.
    pub fn update_interrupt(&mut self, output: &mut dyn ConsoleOutput, pending: bool) {
        let wanted = pending || !self.queue.is_empty();
        if wanted || self.transmit_interrupt {
            output.set_transmit_interrupt(wanted);
        }
        self.transmit_interrupt = wanted;
    }
}

/// What one [`pump`] call left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pumped {
    /// Budget not used (terminal bytes).
    pub budget_left: usize,
    /// It stopped because the UART was full (the transmit interrupt is asked for).
    pub uart_full: bool,
}

/// Moves cell output from `rings` (ring `i` is cell `i`) through `mux` into `screen` and on to
/// `output`, round-robin, at most `budget` terminal bytes' worth of turns (see the module
/// documentation). Takes no cell lock; each ring's lock only while bytes are copied out of it.
pub fn pump(
    mux: &mut Console,
    rings: &[OutputRing],
    screen: &mut Screen,
    output: &mut dyn ConsoleOutput,
    budget: usize,
) -> Pumped {
    let mut left = budget;
    let mut uart_full = false;
    loop {
        if !screen.transmit(output) && screen.len() >= CELL_BACKLOG {
            uart_full = true;
            break;
        }
        if left == 0 || screen.len() >= CELL_BACKLOG {
            break;
        }
        let Some(cell) = next_with_output(rings, screen.next_cell) else {
            break;
        };
        screen.next_cell = cell + 1;
        let produced = turn(mux, rings, cell, screen, output, TURN_BYTES);
        left = left.saturating_sub(produced.max(1));
    }
    screen.update_interrupt(output, any_output(rings));
    Pumped {
        budget_left: left,
        uart_full,
    }
}

/// Room the queue keeps when [`feed_cell`] feeds it: more than one turn can add.
const FEED_ROOM: usize = 1024;

/// Feeds up to `limit` bytes of cell `cell`'s ring (all of them with `usize::MAX`) to the
/// multiplexer, ahead of the other cells, writing to the UART what it takes meanwhile, without
/// waiting for it: feeding stops while the queue is nearly full. For the output of a cell up to a
/// line cellvisor logs about it, and a stopping cell's last words. Returns whether the ring has
/// nothing left.
pub fn feed_cell(
    mux: &mut Console,
    rings: &[OutputRing],
    cell: usize,
    screen: &mut Screen,
    output: &mut dyn ConsoleOutput,
    limit: usize,
) -> bool {
    let Some(ring) = rings.get(cell) else {
        return true;
    };
    let mut left = limit;
    while left > 0 && ring.has_output() {
        screen.transmit(output);
        if screen.len() > SCREEN_BYTES - FEED_ROOM {
            break;
        }
        let fed = turn_counted(mux, rings, cell, screen, output, left.min(TURN_BYTES)).0;
        left = left.saturating_sub(fed.max(1));
    }
    screen.transmit(output);
    !ring.has_output()
}

/// Whether any ring has output for the pump.
pub fn any_output(rings: &[OutputRing]) -> bool {
    rings.iter().any(OutputRing::has_output)
}

/// The first cell at or after `start` (wrapping) whose ring has output.
fn next_with_output(rings: &[OutputRing], start: usize) -> Option<usize> {
    let count = rings.len();
    (0..count)
        .map(|offset| (start + offset) % count)
        .find(|&cell| rings.get(cell).is_some_and(OutputRing::has_output))
}

/// One turn of cell `cell`: returns the terminal bytes it queued.
fn turn(
    mux: &mut Console,
    rings: &[OutputRing],
    cell: usize,
    screen: &mut Screen,
    output: &mut dyn ConsoleOutput,
    bytes: usize,
) -> usize {
    turn_counted(mux, rings, cell, screen, output, bytes).1
}

/// One turn of at most `bytes` ring bytes: returns the ring bytes consumed and the terminal bytes
/// queued.
fn turn_counted(
    mux: &mut Console,
    rings: &[OutputRing],
    cell: usize,
    screen: &mut Screen,
    output: &mut dyn ConsoleOutput,
    bytes: usize,
) -> (usize, usize) {
    let Some(ring) = rings.get(cell) else {
        return (0, 0);
    };
    let mut buffer = [0u8; TURN_BYTES];
    let window = buffer.len().min(bytes);
    let count = ring.peek(buffer.get_mut(..window).unwrap_or_default());
    let produced = core::cell::Cell::new(0usize);
    let mut sink = |terminal: &[u8]| {
        produced.set(produced.get() + terminal.len());
        screen.push(terminal, output);
    };
    let mut fed = 0;
    for &byte in buffer.get(..count).unwrap_or_default() {
        mux.cell_output(cell, byte, &mut sink);
        fed += 1;
        if produced.get() >= TURN_OUTPUT {
            break;
        }
    }
    // The ring's lock is not held while the bytes went through the multiplexer: the cell's vCPUs
    // keep appending meanwhile.
    let taken = ring.take(fed);
    if taken.dropped > 0 {
        mux.dropped_note(cell, taken.dropped, &mut sink);
    }
    (fed, produced.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::{String, ToString};
    use alloc::vec::Vec;

    /// A UART with room for `room` more bytes until the test gives it more (`usize::MAX`: an
    /// instant one, like QEMU's), recording everything.
    struct FakeUart<'a> {
        written: Vec<u8>,
        room: usize,
        interrupt: bool,
        /// Rings whose locks must be free whenever the UART is written.
        rings: &'a [OutputRing],
        /// Each write appends this byte to every ring (a guest printing meanwhile).
        append: Option<u8>,
    }

    impl<'a> FakeUart<'a> {
        fn new(rings: &'a [OutputRing], room: usize) -> Self {
            Self {
                written: Vec::new(),
                room,
                interrupt: false,
                rings,
                append: None,
            }
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.written).to_string()
        }

        fn check_no_ring_locked(&self) {
            for (cell, ring) in self.rings.iter().enumerate() {
                assert!(
                    !ring.is_locked(),
                    "ring {cell} locked while the UART is written"
                );
                if let Some(byte) = self.append {
                    ring.push(byte);
                }
            }
        }
    }

    impl ConsoleOutput for FakeUart<'_> {
        fn try_write(&mut self, bytes: &[u8]) -> usize {
            self.check_no_ring_locked();
            let count = bytes.len().min(self.room);
            if self.room != usize::MAX {
                self.room -= count;
            }
            self.written.extend_from_slice(&bytes[..count]);
            count
        }

        fn write_bytes(&mut self, bytes: &[u8]) {
            self.check_no_ring_locked();
            self.written.extend_from_slice(bytes);
        }

        fn set_transmit_interrupt(&mut self, enabled: bool) {
            self.interrupt = enabled;
        }
    }

    fn rings(count: usize, capacity: usize) -> Vec<OutputRing> {
        (0..count).map(|_| OutputRing::new(capacity)).collect()
    }

    fn print(ring: &OutputRing, text: &[u8]) {
        for &byte in text {
            ring.push(byte);
        }
    }

    #[test]
    fn one_printing_cell_is_shown_at_once_through_an_instant_uart() {
        let rings = rings(2, 64);
        let mut mux = Console::new(&["personal", "corporate"], false);
        let mut screen = Screen::new();
        let mut uart = FakeUart::new(&rings, usize::MAX);
        print(&rings[1], b"hello\n");
        let pumped = pump(&mut mux, &rings, &mut screen, &mut uart, 1024);
        assert_eq!(uart.text(), "[corporate] hello\r\n");
        assert!(!pumped.uart_full && screen.is_empty() && !uart.interrupt);
        assert!(!any_output(&rings));
    }

    #[test]
    fn two_flooding_cells_take_turns_and_lose_only_their_own_bytes() {
        // A slow UART (16 bytes per pump) and two cells printing numbered lines far faster; the
        // focus is on a third cell, so neither flooder's partial lines are shown live.
        let rings = rings(3, 512);
        let mut mux = Console::new(&["a", "b", "c"], false);
        mux.set_focus(2);
        let mut screen = Screen::new();
        let mut uart = FakeUart::new(&rings, 0);
        let mut sent = [0u32; 2];
        for _ in 0..400 {
            for (cell, ring) in rings.iter().take(2).enumerate() {
                for _ in 0..3 {
                    print(ring, format!("line {}\n", sent[cell]).as_bytes());
                    sent[cell] += 1;
                }
            }
            uart.room = 16;
            pump(&mut mux, &rings, &mut screen, &mut uart, 512);
        }
        let text = uart.text();
        let shown = |prefix: &str| text.lines().filter(|line| line.starts_with(prefix)).count();
        let (a, b) = (shown("[a] line "), shown("[b] line "));
        assert!(a > 20 && b > 20, "both cells are shown: {a} and {b}");
        assert!(a.abs_diff(b) <= 3, "round-robin: {a} lines of a, {b} of b");
        assert!(rings[0].dropped() > 0 && rings[1].dropped() > 0);
        assert!(text.contains("bytes dropped)"), "gaps are marked");
        // The UART was full: the transmit interrupt is asked for.
        assert!(uart.interrupt);
        // No line mixes two cells.
        for line in text.lines() {
            assert!(
                line.is_empty() || line.starts_with("[a] ") || line.starts_with("[b] "),
                "{line:?}"
            );
        }
    }

    #[test]
    fn a_flooding_cell_never_delays_a_quiet_one_by_more_than_a_turn() {
        let rings = rings(2, 16 * 1024);
        let mut mux = Console::new(&["flood", "quiet"], false);
        let mut screen = Screen::new();
        let mut uart = FakeUart::new(&rings, 32);
        for _ in 0..200 {
            print(&rings[0], &[b'x'; 100]);
            print(&rings[0], b"\n");
        }
        pump(&mut mux, &rings, &mut screen, &mut uart, 256);
        print(&rings[1], b"beat 1\n");
        let before = uart.written.len();
        let mut pumps = 0;
        while !uart.text()[before..].contains("[quiet] beat 1") {
            uart.room = 32;
            pump(&mut mux, &rings, &mut screen, &mut uart, 256);
            pumps += 1;
            assert!(pumps < 100, "the quiet cell's line never came out");
        }
        // Behind it: what was queued (< CELL_BACKLOG + one turn) and the flood's current turn.
        let waited = uart.text()[before..].find("[quiet]").unwrap_or(0);
        assert!(
            waited <= CELL_BACKLOG + 2 * (TURN_OUTPUT + 120),
            "{waited} bytes went out first"
        );
    }

    #[test]
    fn the_pump_is_bounded_and_holds_no_ring_lock_while_writing() {
        let rings = rings(2, 4096);
        let mut mux = Console::new(&["a", "b"], false);
        let mut screen = Screen::new();
        // Instant UART; every write, each guest appends another byte (as if still printing).
        let mut uart = FakeUart::new(&rings, usize::MAX);
        uart.append = Some(b'y');
        print(&rings[0], &[b'y'; 1000]);
        let pumped = pump(&mut mux, &rings, &mut screen, &mut uart, 300);
        assert_eq!(pumped.budget_left, 0);
        assert!(
            uart.written.len() < 300 + TURN_OUTPUT + 2 * MAX_TURN_OVERSHOOT,
            "{} bytes written for a 300-byte budget",
            uart.written.len()
        );
        assert!(any_output(&rings), "the rest waits for the next pump");
    }

    /// Upper bound of the terminal bytes one ring byte can produce (a line end with its prefix).
    const MAX_TURN_OVERSHOOT: usize = crate::console::mux::MAX_LINE + 64;

    #[test]
    fn feeding_a_stopping_cell_takes_all_of_its_ring() {
        let rings = rings(2, 4096);
        let mut mux = Console::new(&["a", "b"], false);
        let mut screen = Screen::new();
        let mut uart = FakeUart::new(&rings, 8);
        for line in 0..200 {
            print(&rings[0], format!("last words {line}\n").as_bytes());
        }
        print(&rings[1], b"other\n");
        // A slow UART: feeding stops while the queue is nearly full, and goes on as it drains.
        let mut rounds = 0;
        while !feed_cell(&mut mux, &rings, 0, &mut screen, &mut uart, usize::MAX) {
            assert!(screen.len() <= SCREEN_BYTES, "never waits for the UART");
            uart.room = 64;
            rounds += 1;
            assert!(rounds < 1000, "the ring never emptied");
        }
        screen.flush(&mut uart);
        let text = uart.text();
        assert!(text.contains("[a] last words 199\r\n"), "{text}");
        assert!(!text.contains("[b]"), "only the stopping cell");
        assert!(rings[0].is_empty() && !rings[1].is_empty());
    }

    #[test]
    fn a_gap_is_marked_where_it_happened() {
        let rings = rings(1, 8);
        let mut mux = Console::new(&["p"], false);
        let mut screen = Screen::new();
        let mut uart = FakeUart::new(&rings, usize::MAX);
        print(&rings[0], b"abc\ndefghijkl");
        pump(&mut mux, &rings, &mut screen, &mut uart, 1024);
        print(&rings[0], b"mn\n");
        pump(&mut mux, &rings, &mut screen, &mut uart, 1024);
        assert_eq!(
            uart.text(),
            "[p] abc\r\n[p] defg…(5 bytes dropped)\r\n[p] mn\r\n"
        );
        assert_eq!(rings[0].dropped(), 5);
    }

    #[test]
    fn a_line_too_long_for_the_queue_waits_for_the_uart() {
        let rings = rings(0, 1);
        let mut screen = Screen::new();
        let mut uart = FakeUart::new(&rings, 0);
        screen.push(&[b'a'; SCREEN_BYTES - 10], &mut uart);
        assert!(uart.written.is_empty());
        screen.push(&[b'b'; 20], &mut uart);
        assert_eq!(
            uart.written.len(),
            SCREEN_BYTES - 10,
            "queued bytes went first"
        );
        assert_eq!(screen.len(), 20);
        screen.push(&[b'c'; SCREEN_BYTES + 1], &mut uart);
        assert_eq!(uart.written.len(), SCREEN_BYTES + 10 + SCREEN_BYTES + 1);
        assert!(screen.is_empty());
    }
}
