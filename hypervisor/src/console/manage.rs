//! The management prompt on the hypervisor console: a line editor, the command parser and the
//! `cells` table. Opened with Ctrl-A m; every byte typed there stays in cellvisor.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// The longest command line the prompt keeps; further bytes are ignored.
pub const MAX_LINE: usize = 120;

/// The prompt string.
pub const PROMPT: &str = "cellvisor> ";

/// The help text, one line each.
pub const HELP: &[&str] = &[
    "cells          state, vCPUs, RAM, uptime, exits by reason, faults, restarts, dropped output of each cell",
    "sched          each cell's CPU time, share and vCPU switches on time-shared CPUs",
    "screen         who is on the phone's screen, each cell's frame, switches and input events",
    "channel        the channel's cells, flows and counters",
    "channel off CELL  reset all of CELL's channel connections, refuse its traffic until `channel on CELL`",
    "channel on CELL   let CELL use the channel again",
    "restart CELL   stop CELL, reload its images and boot it again",
    "stop CELL      stop every vCPU of CELL (its RAM is kept)",
    "start CELL     boot a stopped CELL again from its images",
    "wipe CELL      stop CELL, zero all its RAM, verify the zeroing, leave it stopped",
    "verify CELL    count the non-zero bytes of a stopped CELL's RAM (0 after a wipe)",
    "focus CELL     send console input to CELL",
    "help           this text",
    "exit           leave the prompt (Ctrl-A m, Ctrl-C and Ctrl-D too)",
];

/// A management command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Show the cells table.
    Cells,
    /// Show the time-sharing figures.
    Sched,
    /// Show the screen and input figures.
    Screen,
    /// Show the channel's cells, flows and counters.
    Channel,
    /// The channel's kill switch for a cell.
    ChannelOff(String),
    /// Let a cell use the channel again.
    ChannelOn(String),
    /// Restart a cell.
    Restart(String),
    /// Stop a cell.
    Stop(String),
    /// Start a stopped cell.
    Start(String),
    /// Stop a cell and scrub its RAM.
    Wipe(String),
    /// Count the non-zero bytes of a stopped cell's RAM.
    Verify(String),
    /// Move console input to a cell.
    Focus(String),
    /// Show help.
    Help,
    /// Leave the prompt.
    Exit,
}

/// Why a command line was not understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The line is empty (nothing to do).
    Empty,
    /// The first word is not a command.
    Unknown(String),
    /// The command needs a cell name.
    MissingCell(&'static str),
    /// Words after the command's arguments.
    TrailingWords(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty command"),
            Self::Unknown(word) => write!(f, "unknown command {word:?}: type help"),
            Self::MissingCell(command) => write!(f, "{command} needs a cell name: {command} CELL"),
            Self::TrailingWords(command) => write!(f, "too many words for {command}: type help"),
        }
    }
}

/// Parses one command line.
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let mut words = line.split_whitespace();
    let Some(command) = words.next() else {
        return Err(ParseError::Empty);
    };
    let (name, with_cell): (&'static str, fn(String) -> Command) = match command {
        "cells" | "ls" => return no_more(words, "cells", Command::Cells),
        "sched" => return no_more(words, "sched", Command::Sched),
        "screen" => return no_more(words, "screen", Command::Screen),
        "channel" => {
            let (name, with_cell): (&'static str, fn(String) -> Command) = match words.next() {
                None => return Ok(Command::Channel),
                Some("off") => ("channel off", Command::ChannelOff),
                Some("on") => ("channel on", Command::ChannelOn),
                Some(_) => return Err(ParseError::Unknown(String::from(line.trim()))),
            };
            let cell = words.next().ok_or(ParseError::MissingCell(name))?;
            return no_more(words, name, with_cell(String::from(cell)));
        }
        "help" | "?" => return no_more(words, "help", Command::Help),
        "exit" | "quit" => return no_more(words, "exit", Command::Exit),
        "restart" => ("restart", Command::Restart),
        "stop" => ("stop", Command::Stop),
        "start" => ("start", Command::Start),
        "wipe" => ("wipe", Command::Wipe),
        "verify" => ("verify", Command::Verify),
        "focus" => ("focus", Command::Focus),
        other => return Err(ParseError::Unknown(String::from(other))),
    };
    let cell = words.next().ok_or(ParseError::MissingCell(name))?;
    no_more(words, name, with_cell(String::from(cell)))
}

fn no_more<'a>(
    mut words: impl Iterator<Item = &'a str>,
    name: &'static str,
    command: Command,
) -> Result<Command, ParseError> {
    match words.next() {
        Some(_) => Err(ParseError::TrailingWords(name)),
        None => Ok(command),
    }
}

/// What a byte typed at the prompt means.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PromptEvent {
    /// Echo these bytes to the terminal.
    Echo(&'static [u8]),
    /// Echo the typed byte.
    EchoByte(u8),
    /// A complete line was entered.
    Submit(String),
    /// Leave the prompt.
    Leave,
    /// Nothing visible happens.
    Nothing,
}

/// Where the line editor is inside a terminal escape sequence (arrow keys, a terminal's answer to a
/// cell's cursor-position query, ...): such sequences are swallowed whole, never typed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Escape {
    /// Not in a sequence.
    #[default]
    None,
    /// After ESC.
    Start,
    /// In a control sequence (`ESC [`), until its final byte (0x40..=0x7e).
    Csi,
    /// After `ESC O` (SS3): one more byte.
    Ss3,
}

/// The prompt's line editor.
#[derive(Clone, Debug, Default)]
pub struct Prompt {
    line: String,
    escape: Escape,
}

impl Prompt {
    /// An empty prompt.
    pub const fn new() -> Self {
        Self {
            line: String::new(),
            escape: Escape::None,
        }
    }

    /// What is typed so far.
    pub fn text(&self) -> &str {
        &self.line
    }

    /// Handles one typed byte.
    pub fn input(&mut self, byte: u8) -> PromptEvent {
        if self.escape != Escape::None && byte < 0x20 {
            // A control key cuts a sequence short and counts on its own (Ctrl-C still leaves).
            self.escape = Escape::None;
        }
        match (self.escape, byte) {
            (Escape::None, 0x1b) => {
                self.escape = Escape::Start;
                return PromptEvent::Nothing;
            }
            (Escape::None, _) => {}
            (Escape::Start, b'[') => {
                self.escape = Escape::Csi;
                return PromptEvent::Nothing;
            }
            (Escape::Start, b'O') => {
                self.escape = Escape::Ss3;
                return PromptEvent::Nothing;
            }
            (Escape::Csi, 0x20..=0x3f) => return PromptEvent::Nothing,
            (Escape::Start | Escape::Csi | Escape::Ss3, _) => {
                // The sequence ends here (a final byte, or something that cannot continue it).
                self.escape = Escape::None;
                return PromptEvent::Nothing;
            }
        }
        match byte {
            b'\r' | b'\n' => PromptEvent::Submit(core::mem::take(&mut self.line)),
            0x03 | 0x04 => {
                self.line.clear();
                PromptEvent::Leave
            }
            0x08 | 0x7f => {
                if self.line.pop().is_some() {
                    PromptEvent::Echo(b"\x08 \x08")
                } else {
                    PromptEvent::Nothing
                }
            }
            0x20..=0x7e if self.line.len() < MAX_LINE => {
                self.line.push(char::from(byte));
                PromptEvent::EchoByte(byte)
            }
            _ => PromptEvent::Nothing,
        }
    }
}

/// Exit counters of a cell, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitCounts {
    /// HVC/SMC calls.
    pub calls: u64,
    /// Emulated MMIO accesses.
    pub mmio: u64,
    /// Trapped system registers.
    pub sysreg: u64,
    /// Trapped WFI.
    pub wfi: u64,
    /// Physical interrupts.
    pub interrupts: u64,
    /// Everything else.
    pub other: u64,
}

/// One row of the `cells` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellSummary {
    /// Cell name.
    pub name: &'static str,
    /// Lifecycle state, as a word.
    pub state: &'static str,
    /// vCPUs on / total.
    pub vcpus_on: usize,
    /// Total vCPUs.
    pub vcpus: usize,
    /// RAM in MiB.
    pub ram_mib: u64,
    /// Seconds since the cell was last started, if it runs.
    pub uptime_seconds: Option<u64>,
    /// Exits by reason.
    pub exits: ExitCounts,
    /// Aborts and undefined-instruction exceptions injected.
    pub faults: u64,
    /// Restarts since boot.
    pub restarts: u64,
    /// Console output bytes dropped since boot (its output ring was full).
    pub dropped: u64,
    /// CPU time its vCPUs ran on time-shared CPUs since boot, in milliseconds (`None`: none,
    /// its CPUs are its own).
    pub cpu_ms: Option<u64>,
    /// Its share of its time-shared CPUs in the last scheduling period, in per mille.
    pub share_permille: Option<u64>,
    /// Its packets the channel refused or dropped since boot (`None`: it is not on a channel).
    pub channel_refused: Option<u64>,
}

/// The `cells` table as lines.
pub fn format_cells(cells: &[CellSummary]) -> Vec<String> {
    let mut lines = Vec::with_capacity(cells.len() + 1);
    lines.push(String::from(
        "cell         state     vcpus  RAM MiB  uptime s  calls     mmio      sysreg    wfi       irq       faults  restarts  refused  cpu ms    share   dropped",
    ));
    for cell in cells {
        let uptime = cell
            .uptime_seconds
            .map_or_else(|| String::from("-"), |seconds| format!("{seconds}"));
        let cpu_ms = cell
            .cpu_ms
            .map_or_else(|| String::from("-"), |ms| format!("{ms}"));
        let refused = cell
            .channel_refused
            .map_or_else(|| String::from("-"), |count| format!("{count}"));
        let share = cell.share_permille.map_or_else(
            || String::from("-"),
            |permille| format!("{}.{}%", permille / 10, permille % 10),
        );
        lines.push(format!(
            "{:<12} {:<9} {:>1}/{:<3}  {:>7}  {:>8}  {:<9} {:<9} {:<9} {:<9} {:<9} {:<7} {:<9} {:<8} {:<9} {:<7} {}",
            cell.name,
            cell.state,
            cell.vcpus_on,
            cell.vcpus,
            cell.ram_mib,
            uptime,
            cell.exits.calls,
            cell.exits.mmio,
            cell.exits.sysreg,
            cell.exits.wfi,
            cell.exits.interrupts,
            cell.faults,
            cell.restarts,
            refused,
            cpu_ms,
            share,
            cell.dropped,
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        assert_eq!(parse("cells"), Ok(Command::Cells));
        assert_eq!(
            parse("  restart   corporate "),
            Ok(Command::Restart("corporate".into()))
        );
        assert_eq!(parse("stop personal"), Ok(Command::Stop("personal".into())));
        assert_eq!(
            parse("start personal"),
            Ok(Command::Start("personal".into()))
        );
        assert_eq!(
            parse("wipe corporate"),
            Ok(Command::Wipe("corporate".into()))
        );
        assert_eq!(
            parse("focus corporate"),
            Ok(Command::Focus("corporate".into()))
        );
        assert_eq!(parse("help"), Ok(Command::Help));
        assert_eq!(parse("sched"), Ok(Command::Sched));
        assert_eq!(parse("screen"), Ok(Command::Screen));
        assert_eq!(parse("channel"), Ok(Command::Channel));
        assert_eq!(
            parse("channel off corporate"),
            Ok(Command::ChannelOff(String::from("corporate")))
        );
        assert_eq!(
            parse("channel on personal"),
            Ok(Command::ChannelOn(String::from("personal")))
        );
        assert_eq!(
            parse("channel off"),
            Err(ParseError::MissingCell("channel off"))
        );
        assert_eq!(
            parse("channel off a b"),
            Err(ParseError::TrailingWords("channel off"))
        );
        assert!(matches!(parse("channel up"), Err(ParseError::Unknown(_))));
        assert_eq!(parse("exit"), Ok(Command::Exit));
    }

    #[test]
    fn refuses_malformed_lines_with_one_line_errors() {
        assert_eq!(parse(""), Err(ParseError::Empty));
        assert_eq!(parse("reboot"), Err(ParseError::Unknown("reboot".into())));
        assert_eq!(parse("wipe"), Err(ParseError::MissingCell("wipe")));
        assert_eq!(parse("cells now"), Err(ParseError::TrailingWords("cells")));
        assert_eq!(parse("stop a b"), Err(ParseError::TrailingWords("stop")));
        for error in [
            ParseError::Unknown("x".into()),
            ParseError::MissingCell("stop"),
        ] {
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn the_line_editor_echoes_edits_and_submits() {
        let mut prompt = Prompt::new();
        assert_eq!(prompt.input(b'c'), PromptEvent::EchoByte(b'c'));
        assert_eq!(prompt.input(b'x'), PromptEvent::EchoByte(b'x'));
        assert_eq!(prompt.input(0x7f), PromptEvent::Echo(b"\x08 \x08"));
        for &byte in b"ells" {
            prompt.input(byte);
        }
        assert_eq!(prompt.input(b'\r'), PromptEvent::Submit("cells".into()));
        assert_eq!(prompt.input(0x7f), PromptEvent::Nothing);
        assert_eq!(prompt.input(0x1b), PromptEvent::Nothing);
        assert_eq!(prompt.input(b'x'), PromptEvent::Nothing);
        assert_eq!(prompt.input(0x03), PromptEvent::Leave);
    }

    #[test]
    fn escape_sequences_are_swallowed_whole() {
        let mut prompt = Prompt::new();
        // A terminal's cursor-position report (answering a cell's query), an arrow key in both
        // encodings, Alt-x: none of it is typed.
        for &byte in b"ce\x1b[45;28R\x1b[A\x1bOB\x1bxl" {
            prompt.input(byte);
        }
        assert_eq!(prompt.text(), "cel");
        for &byte in b"ls" {
            prompt.input(byte);
        }
        assert_eq!(prompt.input(b'\r'), PromptEvent::Submit("cells".into()));
        // Ctrl-C inside an unfinished sequence still leaves.
        assert_eq!(prompt.input(0x1b), PromptEvent::Nothing);
        assert_eq!(prompt.input(b'['), PromptEvent::Nothing);
        assert_eq!(prompt.input(0x03), PromptEvent::Leave);
    }

    #[test]
    fn the_line_is_bounded() {
        let mut prompt = Prompt::new();
        for _ in 0..1000 {
            prompt.input(b'a');
        }
        match prompt.input(b'\n') {
            PromptEvent::Submit(line) => assert_eq!(line.len(), MAX_LINE),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn the_table_has_a_row_per_cell() {
        let cell = CellSummary {
            name: "corporate",
            state: "running",
            vcpus_on: 2,
            vcpus: 2,
            ram_mib: 768,
            uptime_seconds: Some(12),
            exits: ExitCounts {
                calls: 3,
                mmio: 4,
                sysreg: 5,
                wfi: 6,
                interrupts: 7,
                other: 0,
            },
            faults: 1,
            restarts: 0,
            dropped: 4096,
            cpu_ms: None,
            share_permille: None,
            channel_refused: Some(9),
        };
        let lines = format_cells(&[
            cell.clone(),
            CellSummary {
                uptime_seconds: None,
                ..cell
            },
        ]);
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("corporate    running   2/2"));
        assert!(
            lines[1].ends_with(" 1       0         9        -         -       4096"),
            "{}",
            lines[1]
        );
        assert!(lines[0].ends_with("restarts  refused  cpu ms    share   dropped"));
        assert!(lines[2].contains(" - "));
    }
}
