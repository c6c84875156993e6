//! The log backend and the shared terminal: log lines with level and CPU number, and cell output
//! multiplexed line by line, all written to the one physical console.
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use spin::{Mutex, Once};

use crate::console::manage::{self, Command, PROMPT, Prompt, PromptEvent};
use crate::console::mux::{Console, InputAction};

/// Where terminal bytes go: the physical UART.
pub trait ConsoleOutput: Send {
    /// Writes bytes to the terminal.
    fn write_bytes(&mut self, bytes: &[u8]);
}

struct Terminal {
    output: Box<dyn ConsoleOutput>,
    mux: Option<Console>,
    /// The management prompt, while it is open.
    prompt: Option<Prompt>,
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

/// Installs the terminal and the logger. `current_cpu` tells the logger which CPU is logging.
pub fn init(output: Box<dyn ConsoleOutput>, current_cpu: fn() -> usize, level: log::LevelFilter) {
    TERMINAL.call_once(|| {
        Mutex::new(Terminal {
            output,
            mux: None,
            prompt: None,
        })
    });
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
        let Terminal { output, mux, .. } = &mut *terminal;
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
    let _ = with_multiplexer(|mux, _, mut sink| mux.cell_output(cell, byte, &mut sink));
}

/// Emits a cell's partial output line, if any.
pub fn cell_flush(cell: usize) {
    let _ = with_multiplexer(|mux, _, mut sink| mux.flush_cell(cell, &mut sink));
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
/// prompt (which echoes as it goes).
pub fn console_input(bytes: &[u8]) -> Vec<ConsoleEvent> {
    with_multiplexer(|mux, prompt, sink| {
        let mut events = Vec::new();
        feed_input(bytes, mux, prompt, sink, &mut events);
        events
    })
    .unwrap_or_default()
}

/// Runs `f` with the multiplexer, the prompt and the terminal, under the terminal's lock; `None`
/// before [`set_cells`].
fn with_multiplexer<R>(
    f: impl FnOnce(&mut Console, &mut Option<Prompt>, &mut dyn FnMut(&[u8])) -> R,
) -> Option<R> {
    let mut terminal = TERMINAL.get()?.lock();
    let Terminal {
        output,
        mux,
        prompt,
    } = &mut *terminal;
    let mux = mux.as_mut()?;
    Some(f(mux, prompt, &mut |bytes: &[u8]| {
        output.write_bytes(bytes)
    }))
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
    let _ = with_multiplexer(|mux, prompt, mut sink| {
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

/// Printed when the management prompt closes.
const LEFT_PROMPT: &str = "cellvisor: left the management prompt";

/// The prompt's terminal line: [`PROMPT`] and what is typed.
fn prompt_line(typed: &str) -> Vec<u8> {
    let mut line = Vec::with_capacity(PROMPT.len() + typed.len());
    line.extend_from_slice(PROMPT.as_bytes());
    line.extend_from_slice(typed.as_bytes());
    line
}
