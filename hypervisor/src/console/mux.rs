//! Console multiplexer: cell output line by line with a name prefix, input focus and the escape key.
#![forbid(unsafe_code)]
//!
//! Output: every cell's bytes are collected into lines, and each line is written as
//! `[name] text\r\n` (the prefix in the cell's own ANSI colour when colour is on). Lines longer than
//! [`MAX_LINE`] bytes are cut, the cut marked with `…` at the end of the first part and the start
//! of the next. The *focused* cell's partial line is also shown as it is typed, so prompts and
//! echoed input appear at once; when another cell's line (or a hypervisor line) has to be printed
//! in between, the partial line is broken off and shown again below it. On a colour terminal the
//! broken-off part is erased (it is drawn again anyway); on a plain terminal, which a log file or a
//! CI pipeline reads line by line, it ends with `…`, so no reader takes it for a finished line.
//!
//! While the management prompt is open, its line (`cellvisor> ` and what is typed so far) owns the
//! bottom of the terminal: no cell's partial line is shown live, and every complete cell line or
//! hypervisor line is printed above the prompt, which is then drawn again below it, so typing is
//! never mixed into a cell's output.
//!
//! Carriage returns: `\r\n` (and `\r\r\n`) end a line like `\n`; a `\r` followed by anything else
//! ends the current line too (a progress counter then shows each update as its own line instead
//! of overwriting the prefix).
//!
//! Input: bytes go to the focused cell, except after the escape key Ctrl-A (0x01):
//! Ctrl-A `1`..`9` focuses that cell, Ctrl-A `m` opens the management prompt, Ctrl-A `?`/`h`
//! shows help, Ctrl-A Ctrl-A sends one Ctrl-A to the focused cell; any other key after Ctrl-A is
//! dropped.
//!
//! The multiplexer allocates only when it is created; it holds no lock (its owner, the logger's
//! terminal, does) and never blocks.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// The escape key: Ctrl-A.
pub const ESCAPE: u8 = 0x01;
/// Longest line written in one piece; longer lines are cut and continued.
pub const MAX_LINE: usize = 240;
/// Longest note [`Console::dropped_note`] appends to a line (`…(18446744073709551615 bytes
/// dropped)` is 38 bytes).
const MAX_NOTE: usize = 40;

/// The continuation mark, U+2026 HORIZONTAL ELLIPSIS in UTF-8.
const CONTINUATION: &[u8] = "…".as_bytes();
/// Carriage return and ANSI "erase the whole line".
const ERASE_LINE: &[u8] = b"\r\x1b[2K";
/// ANSI "reset all attributes".
const RESET: &[u8] = b"\x1b[0m";
/// Prefix colours, one per cell, repeating: bold green, cyan, magenta, yellow, blue, red.
const PALETTE: [&[u8]; 6] = [
    b"\x1b[1;32m",
    b"\x1b[1;36m",
    b"\x1b[1;35m",
    b"\x1b[1;33m",
    b"\x1b[1;34m",
    b"\x1b[1;31m",
];

/// What the caller does with one input byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputAction {
    /// Give `byte` to cell `cell`'s UART.
    ToCell(usize, u8),
    /// Input focus moved to cell `cell` (already recorded; the caller may print a notice).
    SwitchFocus(usize),
    /// Open the management prompt.
    Management,
    /// Print [`Console::help`].
    Help,
    /// Nothing to do: the escape key is waiting for its second key, or the key after it meant
    /// nothing (an unknown key or a cell that does not exist).
    Nothing,
}

struct CellConsole {
    name: String,
    /// The partial line; never longer than [`MAX_LINE`].
    line: Vec<u8>,
    /// A `\r` arrived and the next byte decides what it meant.
    pending_cr: bool,
    /// The current line continues a cut one (prefix it with `…`).
    continued: bool,
}

/// The console multiplexer (see the module documentation).
pub struct Console {
    cells: Vec<CellConsole>,
    color: bool,
    focused: usize,
    escape_pending: bool,
    /// The cell whose partial line is on the terminal, cursor at its end.
    open: Option<usize>,
    /// The management prompt's line while the prompt is open (empty while a command runs).
    prompt: Option<Vec<u8>>,
    /// Whether `prompt` is on the terminal, cursor at its end.
    prompt_shown: bool,
}

impl Console {
    /// A multiplexer for cells with these names (cell `i` is `cell_names[i]`); `color` turns on ANSI
    /// colours for the prefixes. Cell 0 has the input focus.
    pub fn new(cell_names: &[&str], color: bool) -> Self {
        Self {
            cells: cell_names
                .iter()
                .map(|name| CellConsole {
                    name: String::from(*name),
                    line: Vec::with_capacity(MAX_LINE + MAX_NOTE),
                    pending_cr: false,
                    continued: false,
                })
                .collect(),
            color,
            focused: 0,
            escape_pending: false,
            open: None,
            prompt: None,
            prompt_shown: false,
        }
    }

    /// The cell that receives input.
    pub fn focused(&self) -> usize {
        self.focused
    }

    /// Moves input focus to `cell` (ignored for a cell that does not exist).
    pub fn set_focus(&mut self, cell: usize) {
        if cell < self.cells.len() {
            self.focused = cell;
        }
    }

    /// The line printed at boot that tells the user the keys.
    pub fn banner(&self) -> String {
        let cells: Vec<String> = self
            .cells
            .iter()
            .take(9)
            .enumerate()
            .map(|(index, cell)| format!("{} {}", index + 1, cell.name))
            .collect();
        let focused = self
            .cells
            .get(self.focused)
            .map_or("none", |cell| cell.name.as_str());
        format!(
            "cellvisor console: input goes to {focused}; Ctrl-A 1..{} switches cell ({}), \
             Ctrl-A m management, Ctrl-A ? help, Ctrl-A Ctrl-A sends Ctrl-A",
            cells.len(),
            cells.join(", ")
        )
    }

    /// The help text for Ctrl-A `?`, one line per key (print it with [`Console::hypervisor_line`]).
    pub fn help(&self) -> String {
        let mut help = String::from("cellvisor console keys:\n");
        for (index, cell) in self.cells.iter().take(9).enumerate() {
            let marker = if index == self.focused {
                " (focused)"
            } else {
                ""
            };
            help.push_str(&format!(
                "  Ctrl-A {}  input to {}{marker}\n",
                index + 1,
                cell.name
            ));
        }
        help.push_str("  Ctrl-A m  management prompt\n");
        help.push_str("  Ctrl-A ?  this help\n");
        help.push_str("  Ctrl-A Ctrl-A  send Ctrl-A to the focused cell");
        help
    }

    /// Handles one byte typed on the console.
    pub fn input(&mut self, byte: u8) -> InputAction {
        if self.escape_pending {
            self.escape_pending = false;
            return match byte {
                ESCAPE => self.to_focused(ESCAPE),
                b'1'..=b'9' => {
                    let cell = usize::from(byte - b'1');
                    if cell < self.cells.len() {
                        self.focused = cell;
                        InputAction::SwitchFocus(cell)
                    } else {
                        InputAction::Nothing
                    }
                }
                b'm' | b'M' => InputAction::Management,
                b'?' | b'h' | b'H' => InputAction::Help,
                _ => InputAction::Nothing,
            };
        }
        if byte == ESCAPE {
            self.escape_pending = true;
            return InputAction::Nothing;
        }
        self.to_focused(byte)
    }

    fn to_focused(&self, byte: u8) -> InputAction {
        if self.focused < self.cells.len() {
            InputAction::ToCell(self.focused, byte)
        } else {
            InputAction::Nothing
        }
    }

    /// One byte of output from cell `cell`'s UART. Bytes for a cell that does not exist are dropped.
    pub fn cell_output(&mut self, cell: usize, byte: u8, sink: &mut impl FnMut(&[u8])) {
        let Some(state) = self.cells.get_mut(cell) else {
            return;
        };
        if state.pending_cr {
            match byte {
                b'\r' => return,
                b'\n' => {
                    state.pending_cr = false;
                    self.end_line(cell, false, sink);
                    return;
                }
                _ => {
                    state.pending_cr = false;
                    self.end_line(cell, false, sink);
                }
            }
        }
        match byte {
            b'\r' => {
                if let Some(state) = self.cells.get_mut(cell) {
                    state.pending_cr = true;
                }
            }
            b'\n' => self.end_line(cell, false, sink),
            _ => self.append(cell, byte, sink),
        }
    }

    /// Marks where `count` bytes of cell `cell`'s output were dropped (its output ring was full):
    /// `…(N bytes dropped)` ends the cell's current line, so a reader knows text is missing there.
    pub fn dropped_note(&mut self, cell: usize, count: u64, sink: &mut impl FnMut(&[u8])) {
        let Some(state) = self.cells.get_mut(cell) else {
            return;
        };
        if core::mem::take(&mut state.pending_cr) {
            self.end_line(cell, false, sink);
        }
        let mut note = NoteBuffer::default();
        let _ = core::fmt::Write::write_fmt(&mut note, format_args!("…({count} bytes dropped)"));
        for &byte in note.bytes() {
            self.append_unbounded(cell, byte, sink);
        }
        self.end_line(cell, false, sink);
    }

    /// Writes out cell `cell`'s partial line, if it has one, as a complete line (e.g. when the cell
    /// stops, so its last words are not lost).
    pub fn flush_cell(&mut self, cell: usize, sink: &mut impl FnMut(&[u8])) {
        let Some(state) = self.cells.get_mut(cell) else {
            return;
        };
        state.pending_cr = false;
        if !state.line.is_empty() || self.open == Some(cell) {
            self.end_line(cell, false, sink);
        }
    }

    /// Writes a hypervisor line (a log record or message) as it is, without a cell prefix. Embedded
    /// `\n` split it into several lines; `\r` is dropped.
    pub fn hypervisor_line(&mut self, line: &str, sink: &mut impl FnMut(&[u8])) {
        let reopen = self.break_open_line(sink);
        for part in line.split('\n') {
            for piece in part.split('\r') {
                sink(piece.as_bytes());
            }
            sink(b"\r\n");
        }
        self.reopen(reopen, sink);
    }

    /// Opens the management prompt: breaks off a cell's partial line, prints the `banner` line and
    /// draws `line` (the prompt).
    pub fn open_prompt(&mut self, banner: &str, line: &[u8], sink: &mut impl FnMut(&[u8])) {
        let _ = self.break_open_line(sink);
        sink(banner.as_bytes());
        sink(b"\r\n");
        self.prompt = Some(line.to_vec());
        sink(line);
        self.prompt_shown = true;
    }

    /// The prompt line became `line` by `echo` (a typed byte, or a backspace sequence): writes the
    /// echo if the prompt is on the terminal, otherwise draws the whole line.
    pub fn prompt_typed(&mut self, line: &[u8], echo: &[u8], sink: &mut impl FnMut(&[u8])) {
        if self.prompt.is_none() {
            return;
        }
        self.prompt = Some(line.to_vec());
        if self.prompt_shown {
            sink(echo);
        } else {
            let _ = self.break_open_line(sink);
            sink(line);
            self.prompt_shown = true;
        }
    }

    /// The typed line was submitted: ends the prompt's terminal line; nothing is drawn below
    /// other output until [`Console::show_prompt`].
    pub fn prompt_submitted(&mut self, sink: &mut impl FnMut(&[u8])) {
        if self.prompt.is_none() {
            return;
        }
        if self.prompt_shown {
            sink(b"\r\n");
            self.prompt_shown = false;
        }
        self.prompt = Some(Vec::new());
    }

    /// Draws a fresh prompt `line` (after a command's output) if the prompt is open.
    pub fn show_prompt(&mut self, line: &[u8], sink: &mut impl FnMut(&[u8])) {
        if self.prompt.is_none() {
            return;
        }
        if self.prompt_shown {
            sink(b"\r\n");
        }
        self.prompt = Some(line.to_vec());
        sink(line);
        self.prompt_shown = true;
    }

    /// Closes the management prompt with a `farewell` line; the focused cell's partial line, if any,
    /// is shown live again below it.
    pub fn close_prompt(&mut self, farewell: &str, sink: &mut impl FnMut(&[u8])) {
        if self.prompt.take().is_none() {
            return;
        }
        if self.prompt_shown {
            sink(b"\r\n");
            self.prompt_shown = false;
        }
        sink(farewell.as_bytes());
        sink(b"\r\n");
        self.reopen(Some(self.focused), sink);
    }

    /// Whether the management prompt is open.
    pub fn prompt_open(&self) -> bool {
        self.prompt.is_some()
    }

    fn append(&mut self, cell: usize, byte: u8, sink: &mut impl FnMut(&[u8])) {
        let full = self
            .cells
            .get(cell)
            .is_some_and(|state| state.line.len() >= MAX_LINE);
        if full {
            self.end_line(cell, true, sink);
        }
        self.append_unbounded(cell, byte, sink);
    }

    /// Appends `byte` to `cell`'s line without cutting it at [`MAX_LINE`] (for notes).
    fn append_unbounded(&mut self, cell: usize, byte: u8, sink: &mut impl FnMut(&[u8])) {
        let live = cell == self.focused && self.prompt.is_none();
        if live && self.open != Some(cell) {
            // Another (formerly focused) cell's partial line is broken off for good: the focused
            // cell takes the terminal.
            if self.open.take().is_some() {
                self.break_partial(sink);
            }
            self.write_partial(cell, sink);
            self.open = Some(cell);
        }
        if let Some(state) = self.cells.get_mut(cell) {
            state.line.push(byte);
        }
        if live {
            sink(&[byte]);
        }
    }

    /// Ends cell `cell`'s current line; `cut` marks it as continued on the next line.
    fn end_line(&mut self, cell: usize, cut: bool, sink: &mut impl FnMut(&[u8])) {
        if cell >= self.cells.len() {
            return;
        }
        if self.open == Some(cell) {
            // Already on the terminal: just finish it.
            if cut {
                sink(CONTINUATION);
            }
            sink(b"\r\n");
            self.open = None;
        } else {
            let reopen = self.break_open_line(sink);
            self.write_prefix(cell, sink);
            if let Some(state) = self.cells.get(cell) {
                sink(&state.line);
            }
            if cut {
                sink(CONTINUATION);
            }
            sink(b"\r\n");
            self.reopen(reopen, sink);
        }
        if let Some(state) = self.cells.get_mut(cell) {
            state.line.clear();
            state.continued = cut;
        }
    }

    /// If a partial line is on the terminal, ends the terminal line there and returns its cell so
    /// it can be shown again after whatever is printed next.
    /// The prompt line, if it is on the terminal, is ended there too (and drawn again by `reopen`).
    /// On a colour terminal the prompt line is erased instead (it is drawn again anyway).
    fn break_open_line(&mut self, sink: &mut impl FnMut(&[u8])) -> Option<usize> {
        let open = self.open.take();
        if self.prompt_shown {
            self.prompt_shown = false;
            sink(if self.color { ERASE_LINE } else { b"\r\n" });
        } else if open.is_some() {
            self.break_partial(sink);
        }
        open
    }

    /// Takes a partial cell line that is on the terminal off it: erased on a colour terminal,
    /// ended with `…` on a plain one. Its text stays buffered and is written again, whole.
    fn break_partial(&self, sink: &mut impl FnMut(&[u8])) {
        if self.color {
            sink(ERASE_LINE);
        } else {
            sink(CONTINUATION);
            sink(b"\r\n");
        }
    }

    /// Shows `cell`'s partial line again after a break, if it still has the focus and a partial line;
    /// while the prompt is open, draws the prompt line instead.
    fn reopen(&mut self, cell: Option<usize>, sink: &mut impl FnMut(&[u8])) {
        if let Some(line) = &self.prompt {
            if !self.prompt_shown && !line.is_empty() {
                sink(line);
                self.prompt_shown = true;
            }
            return;
        }
        let Some(cell) = cell else {
            return;
        };
        let has_partial = self
            .cells
            .get(cell)
            .is_some_and(|state| !state.line.is_empty());
        if cell == self.focused && has_partial {
            self.write_partial(cell, sink);
            self.open = Some(cell);
        }
    }

    fn write_partial(&self, cell: usize, sink: &mut impl FnMut(&[u8])) {
        self.write_prefix(cell, sink);
        if let Some(state) = self.cells.get(cell) {
            sink(&state.line);
        }
    }

    fn write_prefix(&self, cell: usize, sink: &mut impl FnMut(&[u8])) {
        let Some(state) = self.cells.get(cell) else {
            return;
        };
        if self.color {
            sink(PALETTE.get(cell % PALETTE.len()).copied().unwrap_or(b""));
        }
        sink(b"[");
        sink(state.name.as_bytes());
        sink(b"]");
        if self.color {
            sink(RESET);
        }
        sink(b" ");
        if state.continued {
            sink(CONTINUATION);
        }
    }
}

/// A note's text, formatted without allocating.
struct NoteBuffer {
    bytes: [u8; MAX_NOTE],
    len: usize,
}

impl Default for NoteBuffer {
    fn default() -> Self {
        Self {
            bytes: [0; MAX_NOTE],
            len: 0,
        }
    }
}

impl NoteBuffer {
    fn bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

impl core::fmt::Write for NoteBuffer {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let end = self.len + text.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// Collects everything written to the terminal.
    #[derive(Default)]
    struct Terminal(Vec<u8>);

    impl Terminal {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0).to_string()
        }
    }

    fn feed(console: &mut Console, terminal: &mut Terminal, cell: usize, bytes: &[u8]) {
        for &byte in bytes {
            console.cell_output(cell, byte, &mut |out: &[u8]| {
                terminal.0.extend_from_slice(out)
            });
        }
    }

    fn two_cells() -> Console {
        Console::new(&["personal", "corporate"], false)
    }

    #[test]
    fn unfocused_lines_are_prefixed_whole() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 1, b"hello");
        assert_eq!(terminal.text(), "");
        feed(&mut console, &mut terminal, 1, b" world\r\nsecond\n\n");
        assert_eq!(
            terminal.text(),
            "[corporate] hello world\r\n[corporate] second\r\n[corporate] \r\n"
        );
    }

    #[test]
    fn focused_cell_is_echoed_live() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 0, b"/ # ");
        assert_eq!(terminal.text(), "[personal] / # ");
        feed(&mut console, &mut terminal, 0, b"ls\r\n");
        assert_eq!(terminal.text(), "[personal] / # ls\r\n");
    }

    #[test]
    fn other_output_breaks_and_restores_the_focused_partial_line() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 0, b"/ # ");
        feed(&mut console, &mut terminal, 1, b"boot\n");
        console.hypervisor_line("cellvisor: note", &mut |out: &[u8]| {
            terminal.0.extend_from_slice(out)
        });
        feed(&mut console, &mut terminal, 0, b"x\n");
        assert_eq!(
            terminal.text(),
            "[personal] / # …\r\n[corporate] boot\r\n[personal] / # …\r\ncellvisor: note\r\n[personal] / # x\r\n"
        );
    }

    #[test]
    fn on_a_colour_terminal_a_broken_off_partial_line_is_erased_and_drawn_again() {
        let mut console = Console::new(&["p", "c"], true);
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 0, b"3 o");
        feed(&mut console, &mut terminal, 1, b"beat\n");
        feed(&mut console, &mut terminal, 0, b"k\n");
        assert_eq!(
            terminal.text(),
            "\x1b[1;32m[p]\x1b[0m 3 o\r\x1b[2K\x1b[1;36m[c]\x1b[0m beat\r\n\
             \x1b[1;32m[p]\x1b[0m 3 ok\r\n"
        );
    }

    #[test]
    fn cell_lines_print_above_the_open_prompt_which_is_drawn_again() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        let mut out = Vec::new();
        feed(&mut console, &mut terminal, 0, b"/ # ");
        console.open_prompt(
            "cellvisor management prompt",
            b"cellvisor> ",
            &mut |b: &[u8]| out.extend_from_slice(b),
        );
        console.prompt_typed(b"cellvisor> e", b"e", &mut |b: &[u8]| {
            out.extend_from_slice(b)
        });
        terminal.0.extend_from_slice(&out);
        // The focused cell is not live while the prompt is open: its bytes wait for the line end.
        feed(&mut console, &mut terminal, 0, b"te");
        feed(&mut console, &mut terminal, 1, b"beat\n");
        feed(&mut console, &mut terminal, 0, b"st\n");
        let mut out = Vec::new();
        console.prompt_typed(b"cellvisor> ex", b"x", &mut |b: &[u8]| {
            out.extend_from_slice(b)
        });
        console.prompt_submitted(&mut |b: &[u8]| out.extend_from_slice(b));
        console.hypervisor_line("result", &mut |b: &[u8]| out.extend_from_slice(b));
        console.close_prompt("left", &mut |b: &[u8]| out.extend_from_slice(b));
        terminal.0.extend_from_slice(&out);
        feed(&mut console, &mut terminal, 0, b"/ # ");
        assert_eq!(
            terminal.text(),
            "[personal] / # …\r\ncellvisor management prompt\r\ncellvisor> e\r\n\
             [corporate] beat\r\ncellvisor> e\r\n[personal] / # test\r\ncellvisor> ex\r\n\
             result\r\nleft\r\n[personal] / # "
        );
        assert!(!console.prompt_open());
    }

    #[test]
    fn on_a_colour_terminal_the_prompt_line_is_erased_not_repeated() {
        let mut console = Console::new(&["personal", "corporate"], true);
        let mut out = Vec::new();
        console.open_prompt("banner", b"cellvisor> ", &mut |b: &[u8]| {
            out.extend_from_slice(b)
        });
        console.hypervisor_line("note", &mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(out, b"banner\r\ncellvisor> \r\x1b[2Knote\r\ncellvisor> ");
        // A command's output: the prompt comes back once, after it.
        let mut out = Vec::new();
        console.prompt_submitted(&mut |b: &[u8]| out.extend_from_slice(b));
        console.hypervisor_line("a", &mut |b: &[u8]| out.extend_from_slice(b));
        console.show_prompt(b"cellvisor> ", &mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(out, b"\r\na\r\ncellvisor> ");
        assert!(console.prompt_open());
    }

    #[test]
    fn prompt_calls_without_an_open_prompt_write_nothing() {
        let mut console = two_cells();
        let mut out = Vec::new();
        console.prompt_typed(b"x", b"x", &mut |b: &[u8]| out.extend_from_slice(b));
        console.prompt_submitted(&mut |b: &[u8]| out.extend_from_slice(b));
        console.show_prompt(b"p", &mut |b: &[u8]| out.extend_from_slice(b));
        console.close_prompt("left", &mut |b: &[u8]| out.extend_from_slice(b));
        assert!(out.is_empty());
    }

    #[test]
    fn interleaved_unfocused_cells_do_not_mix() {
        let mut console = Console::new(&["a", "b", "c"], false);
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 1, b"one ");
        feed(&mut console, &mut terminal, 2, b"two ");
        feed(&mut console, &mut terminal, 1, b"done\n");
        feed(&mut console, &mut terminal, 2, b"done\n");
        assert_eq!(terminal.text(), "[b] one done\r\n[c] two done\r\n");
    }

    #[test]
    fn carriage_returns() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 1, b"a\r\r\nb\r10%\r20%\r\n");
        assert_eq!(
            terminal.text(),
            "[corporate] a\r\n[corporate] b\r\n[corporate] 10%\r\n[corporate] 20%\r\n"
        );
    }

    #[test]
    fn long_lines_are_cut_with_continuation_marks() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        let long = [b'x'; MAX_LINE + 5];
        feed(&mut console, &mut terminal, 1, &long);
        feed(&mut console, &mut terminal, 1, b"\n");
        let expected = format!(
            "[corporate] {}…\r\n[corporate] …xxxxx\r\n",
            "x".repeat(MAX_LINE)
        );
        assert_eq!(terminal.text(), expected);
        // The next line is not marked.
        terminal.0.clear();
        feed(&mut console, &mut terminal, 1, b"ok\n");
        assert_eq!(terminal.text(), "[corporate] ok\r\n");
        // Same for the focused, live-echoed cell.
        terminal.0.clear();
        feed(&mut console, &mut terminal, 0, &long);
        feed(&mut console, &mut terminal, 0, b"\n");
        let expected = format!(
            "[personal] {}…\r\n[personal] …xxxxx\r\n",
            "x".repeat(MAX_LINE)
        );
        assert_eq!(terminal.text(), expected);
    }

    #[test]
    fn colors_per_cell_with_reset() {
        let mut console = Console::new(&["p", "c"], true);
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 1, b"hi\n");
        console.input(ESCAPE);
        console.input(b'2');
        feed(&mut console, &mut terminal, 0, b"yo\n");
        assert_eq!(
            terminal.text(),
            "\x1b[1;36m[c]\x1b[0m hi\r\n\x1b[1;32m[p]\x1b[0m yo\r\n"
        );
    }

    #[test]
    fn flush_writes_the_partial_line() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 1, b"last words");
        console.flush_cell(1, &mut |out: &[u8]| terminal.0.extend_from_slice(out));
        console.flush_cell(1, &mut |out: &[u8]| terminal.0.extend_from_slice(out));
        console.flush_cell(7, &mut |out: &[u8]| terminal.0.extend_from_slice(out));
        assert_eq!(terminal.text(), "[corporate] last words\r\n");
        feed(&mut console, &mut terminal, 0, b"# ");
        console.flush_cell(0, &mut |out: &[u8]| terminal.0.extend_from_slice(out));
        assert_eq!(
            terminal.text(),
            "[corporate] last words\r\n[personal] # \r\n"
        );
    }

    #[test]
    fn a_dropped_note_ends_the_line_where_the_bytes_went_missing() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 1, b"half a li");
        console.dropped_note(1, 1234, &mut |out: &[u8]| terminal.0.extend_from_slice(out));
        feed(&mut console, &mut terminal, 1, b"next\n");
        console.dropped_note(1, u64::MAX, &mut |out: &[u8]| {
            terminal.0.extend_from_slice(out)
        });
        // The focused cell's line was live: the note is echoed too.
        feed(&mut console, &mut terminal, 0, b"# ");
        console.dropped_note(0, 7, &mut |out: &[u8]| terminal.0.extend_from_slice(out));
        console.dropped_note(9, 7, &mut |out: &[u8]| terminal.0.extend_from_slice(out));
        assert_eq!(
            terminal.text(),
            "[corporate] half a li…(1234 bytes dropped)\r\n[corporate] next\r\n\
             [corporate] …(18446744073709551615 bytes dropped)\r\n\
             [personal] # …(7 bytes dropped)\r\n"
        );
    }

    #[test]
    fn unknown_cells_are_ignored() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 5, b"ghost\n");
        assert_eq!(terminal.text(), "");
    }

    #[test]
    fn hypervisor_lines_split_on_newlines() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        console.hypervisor_line("a\nb\r", &mut |out: &[u8]| {
            terminal.0.extend_from_slice(out)
        });
        assert_eq!(terminal.text(), "a\r\nb\r\n");
    }

    #[test]
    fn input_goes_to_focused_cell() {
        let mut console = two_cells();
        assert_eq!(console.focused(), 0);
        assert_eq!(console.input(b'l'), InputAction::ToCell(0, b'l'));
        assert_eq!(console.input(ESCAPE), InputAction::Nothing);
        assert_eq!(console.input(b'2'), InputAction::SwitchFocus(1));
        assert_eq!(console.focused(), 1);
        assert_eq!(console.input(b's'), InputAction::ToCell(1, b's'));
        assert_eq!(console.input(b'\r'), InputAction::ToCell(1, b'\r'));
    }

    #[test]
    fn escape_sequences() {
        let mut console = two_cells();
        let mut escape = |key| {
            assert_eq!(console.input(ESCAPE), InputAction::Nothing);
            console.input(key)
        };
        assert_eq!(escape(ESCAPE), InputAction::ToCell(0, ESCAPE));
        assert_eq!(escape(b'm'), InputAction::Management);
        assert_eq!(escape(b'?'), InputAction::Help);
        assert_eq!(escape(b'h'), InputAction::Help);
        // No cell 3, no cell 0, unknown keys: dropped, focus unchanged.
        assert_eq!(escape(b'3'), InputAction::Nothing);
        assert_eq!(escape(b'0'), InputAction::Nothing);
        assert_eq!(escape(b'x'), InputAction::Nothing);
        assert_eq!(escape(b'1'), InputAction::SwitchFocus(0));
        // After an escape sequence, input is normal again.
        assert_eq!(console.input(b'1'), InputAction::ToCell(0, b'1'));
    }

    #[test]
    fn no_cells_means_no_target() {
        let mut console = Console::new(&[], false);
        assert_eq!(console.input(b'a'), InputAction::Nothing);
        assert_eq!(console.input(ESCAPE), InputAction::Nothing);
        assert_eq!(console.input(b'1'), InputAction::Nothing);
        assert!(console.banner().contains("none"));
    }

    #[test]
    fn banner_and_help_name_the_keys() {
        let console = two_cells();
        let banner = console.banner();
        assert!(banner.contains("Ctrl-A 1..2"), "{banner}");
        assert!(banner.contains("1 personal, 2 corporate"), "{banner}");
        assert!(banner.contains("Ctrl-A m"), "{banner}");
        assert!(banner.contains("input goes to personal"), "{banner}");
        let help = console.help();
        assert!(help.contains("Ctrl-A 2  input to corporate"), "{help}");
        assert!(help.contains("personal (focused)"), "{help}");
        assert!(!banner.contains('\n'));
    }

    #[test]
    fn focus_switch_mid_line() {
        let mut console = two_cells();
        let mut terminal = Terminal::default();
        feed(&mut console, &mut terminal, 0, b"# ");
        console.input(ESCAPE);
        console.input(b'2');
        // The old focus's partial line stays buffered; the new focus's output takes over the terminal.
        feed(&mut console, &mut terminal, 1, b"$ ");
        feed(&mut console, &mut terminal, 0, b"ok\n");
        assert_eq!(
            terminal.text(),
            "[personal] # …\r\n[corporate] $ …\r\n[personal] # ok\r\n[corporate] $ "
        );
    }
}
