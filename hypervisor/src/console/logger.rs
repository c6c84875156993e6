//! The log backend and the shared terminal: log lines with level and CPU number, and cell output
//! multiplexed line by line, all written to the one physical console.
#![forbid(unsafe_code)]
//!
//! A cell's output bytes only go into its own [`OutputRing`] ([`cell_output`]); the terminal
//! (multiplexer, management prompt, [`Screen`] queue and physical UART, under one lock) takes them
//! from there in [`screen::pump`], called without any cell lock: by [`drain`] after a vCPU
//! printed (with a try-lock, so a CPU never waits for another CPU's terminal work), after every
//! hypervisor line, console input and command, and from the UART's transmit interrupt. See
//! docs/architecture.md "Console output".

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use spin::{Mutex, Once};

use crate::console::manage::{self, Command, PROMPT, Prompt, PromptEvent};
use crate::console::mux::{Console, InputAction};
use crate::console::ring::{OutputRing, RING_BYTES};
use crate::console::screen::{self, Screen, any_output, feed_cell, pump};

pub use crate::console::screen::ConsoleOutput;

/// Terminal bytes one [`drain`] (after a vCPU printed) may queue: about a line, so the printing
/// CPU's share of other cells' output stays small.
const TRAP_BUDGET: usize = 256;
/// Terminal bytes a pump after a hypervisor line, console input or command may queue.
const TERMINAL_BUDGET: usize = 1024;
/// Bytes of the logging CPU's own cell taken out of its ring before a hypervisor line, so a line
/// cellvisor logs about what the guest just did comes after what the guest printed before it
/// (bounded: a flooding cell's ring is not emptied for it).
const LOG_ORDER_BYTES: usize = 512;

struct Terminal {
    output: Box<dyn ConsoleOutput>,
    mux: Option<Console>,
    /// The management prompt, while it is open.
    prompt: Option<Prompt>,
    /// Terminal bytes waiting for the UART.
    screen: Screen,
    /// The cell each physical CPU runs (CPU index → cell index).
    cpu_cells: Vec<Option<usize>>,
}

/// Lock order: taken with no cell lock held (cell output takes it only in [`drain`], once the
/// vUART's lock is released, and only with a try-lock); the rings' locks are taken under it, and the
/// physical UART's lock inside `output`.
static TERMINAL: Once<Mutex<Terminal>> = Once::new();
/// Each cell's output ring (cell `i` is ring `i`), from [`set_cells`] on.
static RINGS: Once<Vec<OutputRing>> = Once::new();
static CURRENT_CPU: Once<fn() -> usize> = Once::new();

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let cpu = current_cpu();
        let mut line = String::new();
        let _ = write!(
            line,
            "cellvisor: cpu{cpu} {:<5} {}",
            record.level(),
            record.args()
        );
        hypervisor_line(&line);
    }

    fn flush(&self) {}
}

fn current_cpu() -> usize {
    CURRENT_CPU.get().map_or(0, |current| current())
}

fn rings() -> &'static [OutputRing] {
    RINGS.get().map_or(&[], Vec::as_slice)
}

/// Installs the terminal and the logger. `current_cpu` tells the logger which CPU is logging.
pub fn init(output: Box<dyn ConsoleOutput>, current_cpu: fn() -> usize, level: log::LevelFilter) {
    TERMINAL.call_once(|| {
        Mutex::new(Terminal {
            output,
            mux: None,
            prompt: None,
            screen: Screen::new(),
            cpu_cells: Vec::new(),
        })
    });
    CURRENT_CPU.call_once(|| current_cpu);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Starts multiplexing cell output, once the cells are known: one output ring per cell, and
/// `cpu_cells[cpu]` the cell physical CPU `cpu` runs. Prints the key banner.
pub fn set_cells(names: &[&str], cpu_cells: Vec<Option<usize>>, color: bool) {
    RINGS.call_once(|| names.iter().map(|_| OutputRing::new(RING_BYTES)).collect());
    if let Some(terminal) = TERMINAL.get() {
        let console = Console::new(names, color);
        let banner = console.banner();
        {
            let mut terminal = terminal.lock();
            terminal.mux = Some(console);
            terminal.cpu_cells = cpu_cells;
        }
        hypervisor_line(&banner);
    }
}

/// Writes one hypervisor line (a log record or a message) to the terminal. It is queued whole,
/// after what the logging CPU's own cell printed before it, and never dropped.
pub fn hypervisor_line(line: &str) {
    if let Some(terminal) = TERMINAL.get() {
        let cpu = current_cpu();
        let mut terminal = terminal.lock();
        let Terminal {
            output,
            mux,
            screen,
            cpu_cells,
            ..
        } = &mut *terminal;
        let output = &mut **output;
        match mux {
            Some(mux) => {
                if let Some(cell) = cpu_cells.get(cpu).copied().flatten() {
                    feed_cell(mux, rings(), cell, screen, output, LOG_ORDER_BYTES);
                }
                mux.hypervisor_line(line, &mut |bytes: &[u8]| screen.push(bytes, output));
                pump(mux, rings(), screen, output, TERMINAL_BUDGET);
            }
            None => {
                screen.flush(output);
                output.write_bytes(line.as_bytes());
                output.write_bytes(b"\r\n");
            }
        }
    }
}

/// A byte a cell's UART transmitted: appended to the cell's output ring (dropped, and counted,
/// when the ring is full). Never touches the terminal: call [`drain`] once the cell's locks are
/// released.
pub fn cell_output(cell: usize, byte: u8) {
    if let Some(ring) = rings().get(cell) {
        ring.push(byte);
    }
}

/// Moves cell output to the terminal if no other CPU is doing so (try-lock), up to a bounded
/// amount (`TRAP_BUDGET`, 256 terminal bytes): called after a vCPU printed, with no cell lock
/// held. What is left goes at the next pump, on whichever CPU runs it.
#[cold]
#[inline(never)]
pub fn drain() {
    let Some(terminal) = TERMINAL.get() else {
        return;
    };
    let mut budget = TRAP_BUDGET;
    loop {
        let Some(mut guard) = terminal.try_lock() else {
            // The CPU holding the terminal pumps, and looks at the rings again after it lets go.
            return;
        };
        let Terminal {
            output,
            mux,
            screen,
            ..
        } = &mut *guard;
        let Some(mux) = mux else {
            return;
        };
        let pumped = pump(mux, rings(), screen, &mut **output, budget);
        drop(guard);
        budget = pumped.budget_left;
        // A byte appended while this CPU held the terminal found it taken: look again.
        if pumped.uart_full || budget == 0 || !any_output(rings()) {
            return;
        }
    }
}

/// Emits a cell's output so far and its partial line, if any (it stopped: its last words are not
/// lost). Runs on the cell's own CPU, which waits for the UART to take the cell's ring (bounded by
/// the ring's size, and by `FLUSH_SPINS` looks without progress) with the terminal lock let go
/// between turns, so the other CPUs' console work never waits behind it.
pub fn cell_flush(cell: usize) {
    let Some(terminal) = TERMINAL.get() else {
        return;
    };
    let mut spins = 0u32;
    loop {
        let mut guard = terminal.lock();
        let Terminal {
            output,
            mux,
            screen,
            ..
        } = &mut *guard;
        let Some(mux) = mux else {
            return;
        };
        let output = &mut **output;
        let ring_len = || rings().get(cell).map_or(0, OutputRing::len);
        let before = (ring_len(), screen.len());
        let emptied = feed_cell(mux, rings(), cell, screen, output, usize::MAX);
        if emptied || spins >= FLUSH_SPINS {
            mux.flush_cell(cell, &mut |bytes: &[u8]| screen.push(bytes, output));
            pump(mux, rings(), screen, output, TERMINAL_BUDGET);
            return;
        }
        let progress = ring_len() < before.0 || screen.len() < before.1;
        spins = if progress { 0 } else { spins + 1 };
        drop(guard);
        core::hint::spin_loop();
    }
}

/// Looks at a full UART [`cell_flush`] makes without progress before it gives up waiting (the
/// rest of the ring then goes at later pumps).
const FLUSH_SPINS: u32 = 1_000_000;

/// Bytes cell `cell`'s output ring has dropped since boot.
pub fn dropped(cell: usize) -> u64 {
    rings().get(cell).map_or(0, OutputRing::dropped)
}

/// What console input asks cellvisor to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConsoleEvent {
    /// A byte for a cell, or a focus change.
    Input(InputAction),
    /// A management command entered at the prompt.
    Command(Command),
}

/// Feeds console input bytes through the escape keys and, while it is open, the management
/// prompt (which echoes as it goes); then moves waiting output on (the console interrupt also
/// means the UART has room again).
pub fn console_input(bytes: &[u8]) -> Vec<ConsoleEvent> {
    with_multiplexer(|mux, prompt, screen, output| {
        let mut events = Vec::new();
        let mut sink = |bytes: &[u8]| screen.push(bytes, output);
        feed_input(bytes, mux, prompt, &mut sink, &mut events);
        events
    })
    .unwrap_or_default()
}

/// Runs `f` with the multiplexer, the prompt, the screen queue and the UART under the terminal's
/// lock, then pumps; `None` before [`set_cells`].
fn with_multiplexer<R>(
    f: impl FnOnce(&mut Console, &mut Option<Prompt>, &mut Screen, &mut dyn ConsoleOutput) -> R,
) -> Option<R> {
    let mut terminal = TERMINAL.get()?.lock();
    let Terminal {
        output,
        mux,
        prompt,
        screen,
        ..
    } = &mut *terminal;
    let mux = mux.as_mut()?;
    let output = &mut **output;
    let result = f(mux, prompt, screen, output);
    screen::pump(mux, rings(), screen, output, TERMINAL_BUDGET);
    Some(result)
}

fn feed_input(
    bytes: &[u8],
    mux: &mut Console,
    prompt: &mut Option<Prompt>,
    mut sink: &mut dyn FnMut(&[u8]),
    events: &mut Vec<ConsoleEvent>,
) {
    for &byte in bytes {
        if let Some(editor) = prompt.as_mut() {
            match editor.input(byte) {
                PromptEvent::EchoByte(byte) => {
                    mux.prompt_typed(&prompt_line(editor.text()), &[byte], &mut sink);
                }
                PromptEvent::Echo(echo) => {
                    mux.prompt_typed(&prompt_line(editor.text()), echo, &mut sink)
                }
                PromptEvent::Submit(line) => {
                    mux.prompt_submitted(&mut sink);
                    match manage::parse(&line) {
                        Ok(command) => events.push(ConsoleEvent::Command(command)),
                        Err(manage::ParseError::Empty) => {
                            mux.show_prompt(PROMPT.as_bytes(), &mut sink)
                        }
                        Err(error) => {
                            mux.hypervisor_line(&alloc::format!("{error}"), &mut sink);
                            mux.show_prompt(PROMPT.as_bytes(), &mut sink);
                        }
                    }
                }
                PromptEvent::Leave => {
                    *prompt = None;
                    mux.close_prompt(LEFT_PROMPT, &mut sink);
                }
                PromptEvent::Nothing => {}
            }
            continue;
        }
        match mux.input(byte) {
            InputAction::Management => {
                *prompt = Some(Prompt::new());
                mux.open_prompt(
                    "cellvisor management prompt: type help, exit to leave",
                    PROMPT.as_bytes(),
                    &mut sink,
                );
            }
            InputAction::Help => {
                let help = mux.help();
                mux.hypervisor_line(&help, &mut sink);
            }
            action => events.push(ConsoleEvent::Input(action)),
        }
    }
}

/// Prints a command's result at the prompt and, unless it closes the prompt, a new prompt.
/// `focus` moves console input to that cell.
pub fn command_done(lines: &[String], focus: Option<usize>, leave: bool) {
    let _ = with_multiplexer(|mux, prompt, screen, output| {
        let mut sink = |bytes: &[u8]| screen.push(bytes, output);
        for line in lines {
            mux.hypervisor_line(line, &mut sink);
        }
        if let Some(cell) = focus {
            mux.set_focus(cell);
            mux.hypervisor_line(
                &alloc::format!("cellvisor: console input now goes to cell {}", cell + 1),
                &mut sink,
            );
        }
        if leave {
            if prompt.take().is_some() {
                mux.close_prompt(LEFT_PROMPT, &mut sink);
            }
        } else if prompt.is_some() {
            mux.show_prompt(PROMPT.as_bytes(), &mut sink);
        }
    });
}

/// Moves console input to `cell` (the input device's switch key brought it to the front) and
/// says so.
pub fn set_focus(cell: usize, name: &str) {
    let _ = with_multiplexer(|mux, _prompt, screen, output| {
        let mut sink = |bytes: &[u8]| screen.push(bytes, output);
        mux.set_focus(cell);
        mux.hypervisor_line(
            &alloc::format!("cellvisor: console input now goes to {name}"),
            &mut sink,
        );
    });
}

/// Printed when the management prompt closes.
const LEFT_PROMPT: &str = "cellvisor: left the management prompt";

/// The prompt's terminal line: [`PROMPT`] and what is typed.
fn prompt_line(typed: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(PROMPT.len() + typed.len());
    line.extend_from_slice(PROMPT.as_bytes());
    line.extend_from_slice(typed.as_bytes());
    line
}
