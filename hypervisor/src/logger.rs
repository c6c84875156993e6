//! The log backend and the shared terminal: log lines with level and CPU number, and cell output
//! multiplexed line by line, all written to the one physical console.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use spin::{Mutex, Once};

use crate::console::{Console, InputAction};

/// Where terminal bytes go: the physical UART.
pub trait ConsoleOutput: Send {
    /// Writes bytes to the terminal.
    fn write_bytes(&mut self, bytes: &[u8]);
}

struct Terminal {
    output: Box<dyn ConsoleOutput>,
    mux: Option<Console>,
}

static TERMINAL: Once<Mutex<Terminal>> = Once::new();
static CURRENT_CPU: Once<fn() -> usize> = Once::new();

struct Logger;

static LOGGER: Logger = Logger;

impl log::Log for Logger {
    fn enabled(&self, _metadata: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let cpu = CURRENT_CPU.get().map_or(0, |current| current());
        let mut line = String::new();
        let _ = write!(line, "cellvisor: cpu{cpu} {:<5} {}", record.level(), record.args());
        hypervisor_line(&line);
    }

    fn flush(&self) {}
}

/// Installs the terminal and the logger. `current_cpu` tells the logger which CPU is logging.
pub fn init(output: Box<dyn ConsoleOutput>, current_cpu: fn() -> usize, level: log::LevelFilter) {
    TERMINAL.call_once(|| Mutex::new(Terminal { output, mux: None }));
    CURRENT_CPU.call_once(|| current_cpu);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Starts multiplexing cell output, once the cells are known. Prints the key banner.
pub fn set_cells(names: &[&str], color: bool) {
    if let Some(terminal) = TERMINAL.get() {
        let console = Console::new(names, color);
        let banner = console.banner();
        terminal.lock().mux = Some(console);
        hypervisor_line(&banner);
    }
}

/// Writes one hypervisor line (a log record or a message) to the terminal.
pub fn hypervisor_line(line: &str) {
    if let Some(terminal) = TERMINAL.get() {
        let mut terminal = terminal.lock();
        let Terminal { output, mux } = &mut *terminal;
        match mux {
            Some(mux) => mux.hypervisor_line(line, &mut |bytes: &[u8]| output.write_bytes(bytes)),
            None => {
                output.write_bytes(line.as_bytes());
                output.write_bytes(b"\r\n");
            }
        }
    }
}

/// A byte a cell's UART transmitted.
pub fn cell_output(cell: usize, byte: u8) {
    if let Some(terminal) = TERMINAL.get() {
        let mut terminal = terminal.lock();
        let Terminal { output, mux } = &mut *terminal;
        if let Some(mux) = mux {
            mux.cell_output(cell, byte, &mut |bytes: &[u8]| output.write_bytes(bytes));
        }
    }
}

/// Emits a cell's partial output line, if any.
pub fn cell_flush(cell: usize) {
    if let Some(terminal) = TERMINAL.get() {
        let mut terminal = terminal.lock();
        let Terminal { output, mux } = &mut *terminal;
        if let Some(mux) = mux {
            mux.flush_cell(cell, &mut |bytes: &[u8]| output.write_bytes(bytes));
        }
    }
}

/// Feeds console input bytes through the multiplexer's focus/escape logic.
pub fn console_input(bytes: &[u8]) -> Vec<InputAction> {
    let mut actions = Vec::new();
    if let Some(terminal) = TERMINAL.get() {
        let mut terminal = terminal.lock();
        if let Some(mux) = terminal.mux.as_mut() {
            actions.extend(bytes.iter().map(|&byte| mux.input(byte)));
        }
    }
    actions
}
