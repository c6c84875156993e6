//! The console transcript: escape-sequence filtering, line search and the buffer QEMU's readers fill.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Instant;

/// A line of the transcript that matched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Match {
    /// The whole line containing the match, without its newline.
    pub line: String,
    /// Transcript offset of the first byte of the line.
    pub line_start: usize,
    /// Transcript offset just past the line (past its newline, if it had one yet).
    pub line_end: usize,
}

/// Removes ANSI escape sequences and carriage returns from a byte stream fed in arbitrary chunks.
#[derive(Clone, Debug, Default)]
pub struct ConsoleFilter {
    state: FilterState,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum FilterState {
    #[default]
    Text,
    /// Seen ESC.
    Escape,
    /// Inside `ESC [ ...` until a final byte (0x40..=0x7e).
    ControlSequence,
    /// Inside `ESC ] ...` until BEL or `ESC \`.
    OperatingSystemCommand,
    /// Inside an OSC, seen ESC.
    OperatingSystemCommandEscape,
}

impl ConsoleFilter {
    /// Appends the printable part of `input` to `output`.
    pub fn feed(&mut self, input: &[u8], output: &mut Vec<u8>) {
        for &byte in input {
            self.state = match (self.state, byte) {
                (FilterState::Text, 0x1b) => FilterState::Escape,
                (FilterState::Text, b'\r') => FilterState::Text,
                (FilterState::Text, _) => {
                    output.push(byte);
                    FilterState::Text
                }
                (FilterState::Escape, b'[') => FilterState::ControlSequence,
                (FilterState::Escape, b']') => FilterState::OperatingSystemCommand,
                // Two-byte sequences (ESC 7, ESC c, ...): drop both bytes.
                (FilterState::Escape, _) => FilterState::Text,
                (FilterState::ControlSequence, 0x40..=0x7e) => FilterState::Text,
                (FilterState::ControlSequence, _) => FilterState::ControlSequence,
                (FilterState::OperatingSystemCommand, 0x07) => FilterState::Text,
                (FilterState::OperatingSystemCommand, 0x1b) => {
                    FilterState::OperatingSystemCommandEscape
                }
                (FilterState::OperatingSystemCommand, _) => FilterState::OperatingSystemCommand,
                (FilterState::OperatingSystemCommandEscape, _) => FilterState::Text,
            };
        }
    }
}

/// Finds `needle` in `text` at or after `since`; returns the line around it.
///
/// A line the console multiplexer broke off (a cell's partial line ending in `…`, interrupted by
/// another line and written again, whole, further on) is not a finished line: a match in one
/// moves to the line that finishes it. [`awaits_resumption`] says whether that line is still to
/// come.
pub fn find_line(text: &[u8], needle: &str, since: usize) -> Option<Match> {
    let mut found = find_raw(text, needle, since)?;
    while let Resumption::Resumed(next) = resumption(text, &found) {
        found = next;
    }
    Some(found)
}

/// Whether `found` is a line the multiplexer broke off whose resumption is not in `text` yet.
pub fn awaits_resumption(text: &[u8], found: &Match) -> bool {
    matches!(resumption(text, found), Resumption::Awaited)
}

enum Resumption {
    /// The line is finished (or a cut line, continued on its own terms).
    Finished,
    /// The line was broken off and this later line writes it again.
    Resumed(Match),
    /// The line was broken off and its cell has printed nothing since.
    Awaited,
}

/// Follows a broken-off cell line (`[cell] text…`) to the next line of the same cell, if that line
/// starts with the same text; a cut line's continuation (`[cell] …more`) is not a resumption.
fn resumption(text: &[u8], found: &Match) -> Resumption {
    let Some(broken) = found.line.strip_suffix('…') else {
        return Resumption::Finished;
    };
    let Some(prefix_len) = broken.starts_with('[').then(|| broken.find("] ")).flatten() else {
        return Resumption::Finished;
    };
    let prefix = &broken.as_bytes()[..prefix_len + 2];
    let mut at = found.line_end;
    while at < text.len() {
        let rest = &text[at..];
        let newline = rest.iter().position(|&byte| byte == b'\n');
        let line = &rest[..newline.unwrap_or(rest.len())];
        if line.starts_with(prefix) {
            if !line.starts_with(broken.as_bytes()) {
                return Resumption::Finished;
            }
            return Resumption::Resumed(Match {
                line: String::from_utf8_lossy(line).into_owned(),
                line_start: at,
                line_end: newline.map_or(text.len(), |offset| at + offset + 1),
            });
        }
        match newline {
            Some(offset) => at += offset + 1,
            None => break,
        }
    }
    Resumption::Awaited
}

fn find_raw(text: &[u8], needle: &str, since: usize) -> Option<Match> {
    let since = since.min(text.len());
    let needle = needle.as_bytes();
    if needle.is_empty() {
        return None;
    }
    let position = text[since..]
        .windows(needle.len())
        .position(|window| window == needle)?
        + since;
    let line_start = text[..position]
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |newline| newline + 1);
    let (line_stop, line_end) = match text[position..].iter().position(|&byte| byte == b'\n') {
        Some(offset) => (position + offset, position + offset + 1),
        None => (text.len(), text.len()),
    };
    Some(Match {
        line: String::from_utf8_lossy(&text[line_start..line_stop]).into_owned(),
        line_start,
        line_end,
    })
}

/// The last `count` lines of `text`.
pub fn last_lines(text: &str, count: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(count)..].join("\n")
}

/// The lines of `transcript` that are cellvisor's own log records at level WARN or ERROR
/// (`cellvisor: cpu<N> WARN  ...`, the format of hypervisor/src/console/logger.rs). A cell's output
/// never matches: it is prefixed with `[cell]`.
pub fn cellvisor_warnings(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter(|line| {
            let Some(record) = line.strip_prefix("cellvisor: cpu") else {
                return false;
            };
            let mut words = record.split_whitespace();
            let cpu = words.next().unwrap_or_default();
            let level = words.next().unwrap_or_default();
            !cpu.is_empty()
                && cpu.chars().all(|c| c.is_ascii_digit())
                && matches!(level, "WARN" | "ERROR")
        })
        .map(str::to_owned)
        .collect()
}

/// The lines of `transcript` that report a disaster: a kernel panic or oops in a cell, or a fatal
/// cellvisor error.
pub fn disasters(transcript: &str) -> Vec<String> {
    transcript
        .lines()
        .filter(|line| {
            line.contains("Kernel panic")
                || line.contains("Internal error:")
                || line.contains("cellvisor: fatal")
        })
        .map(str::to_owned)
        .collect()
}

/// Removes a console prefix `[cell] ` from a line, if present.
pub fn strip_cell_prefix<'a>(line: &'a str, cell: &str) -> &'a str {
    let prefix = format!("[{cell}]");
    match line.find(&prefix) {
        Some(index) => line[index + prefix.len()..]
            .strip_prefix(' ')
            .unwrap_or(&line[index + prefix.len()..]),
        None => line,
    }
}

/// When the byte at `offset` of the cleaned console text arrived, from `arrivals` (see
/// [`TranscriptState::arrivals`]); `None` if it has not.
pub(crate) fn arrival(arrivals: &[(usize, Instant)], offset: usize) -> Option<Instant> {
    let index = arrivals.partition_point(|&(length, _)| length <= offset);
    arrivals.get(index).map(|&(_, at)| at)
}

/// What the reader threads collected so far.
#[derive(Default)]
pub(crate) struct TranscriptState {
    /// Console output, cleaned.
    pub(crate) text: Vec<u8>,
    /// When console output arrived: the length of `text` after each read, and the time of it.
    pub(crate) arrivals: Vec<(usize, Instant)>,
    /// QEMU's stderr, verbatim.
    pub(crate) stderr: Vec<u8>,
    /// The serial reader reached end of file (QEMU exited or closed stdout).
    pub(crate) closed: bool,
}

/// The transcript shared between a [`Machine`](crate::Machine) and its reader threads.
pub(crate) struct Transcript {
    pub(crate) state: Mutex<TranscriptState>,
    pub(crate) changed: Condvar,
}

impl Transcript {
    pub(crate) fn lock(&self) -> MutexGuard<'_, TranscriptState> {
        // A reader thread that panicked cannot leave the buffer half-written: keep using it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The lines of `body` that `cell` printed, prefixes removed; all lines if none carries a prefix
/// (a guest running without cellvisor).
///
/// Kernel log lines (`[   12.345678] ...`) are dropped too: the cell's own kernel may print to the
/// same console while a command runs (e.g. personal's network coming up), and they are never a
/// command's output (read `dmesg -t` rather than `dmesg` through
/// [`Machine::shell`](crate::Machine::shell)).
pub(crate) fn cell_output(body: &str, cell: &str) -> String {
    let prefix = format!("[{cell}]");
    let prefixed = body.lines().any(|line| line.starts_with(&prefix));
    finished_lines(body)
        .into_iter()
        .filter(|line| !prefixed || line.starts_with(&prefix))
        .map(|line| strip_cell_prefix(line, cell))
        .filter(|line| !is_kernel_log_line(line))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of `body` without those the console multiplexer broke off and wrote again further on
/// (see [`find_line`]).
pub fn finished_lines(body: &str) -> Vec<&str> {
    let mut offset = 0;
    let mut lines = Vec::new();
    for line in body.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let found = Match {
            line: line.trim_end_matches('\n').to_owned(),
            line_start: start,
            line_end: offset,
        };
        if !matches!(resumption(body.as_bytes(), &found), Resumption::Resumed(_)) {
            lines.push(line.trim_end_matches('\n'));
        }
    }
    lines
}

/// Whether `line` is a timestamped Linux kernel message: `[`, optional spaces, digits, `.`, digits, `]`.
fn is_kernel_log_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix('[') else {
        return false;
    };
    let Some((stamp, _)) = rest.split_once(']') else {
        return false;
    };
    let Some((seconds, fraction)) = stamp.trim_start().split_once('.') else {
        return false;
    };
    !seconds.is_empty()
        && !fraction.is_empty()
        && seconds.bytes().all(|byte| byte.is_ascii_digit())
        && fraction.bytes().all(|byte| byte.is_ascii_digit())
}

/// The number after `marker` in `line`, or -1.
pub(crate) fn exit_code(line: &str, marker: &str) -> i32 {
    line.split_once(marker)
        .and_then(|(_, code)| code.trim().parse::<i32>().ok())
        .unwrap_or(-1)
}

/// Starts a thread that copies `source` into `transcript`: filtered into the console text when
/// `is_console`, else verbatim into QEMU's stderr.
pub(crate) fn spawn_reader(
    mut source: impl Read + Send + 'static,
    transcript: Arc<Transcript>,
    is_console: bool,
) -> JoinHandle<()> {
    thread::spawn(move || {
        let mut filter = ConsoleFilter::default();
        let mut buffer = [0u8; 4096];
        loop {
            let count = match source.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => count,
            };
            let mut state = transcript.lock();
            if is_console {
                filter.feed(&buffer[..count], &mut state.text);
                let length = state.text.len();
                state.arrivals.push((length, Instant::now()));
            } else {
                state.stderr.extend_from_slice(&buffer[..count]);
            }
            drop(state);
            transcript.changed.notify_all();
        }
        if is_console {
            transcript.lock().closed = true;
            transcript.changed.notify_all();
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_drops_colour_codes_and_carriage_returns_across_chunks() {
        let mut filter = ConsoleFilter::default();
        let mut output = Vec::new();
        filter.feed(b"\x1b[1;3", &mut output);
        filter.feed(b"2m[personal]\x1b[0m hello\r\n", &mut output);
        filter.feed(b"\x1b]0;title\x07done\x1b7!\n", &mut output);
        assert_eq!(output, b"[personal] hello\ndone!\n");
    }

    #[test]
    fn find_line_returns_whole_line_and_respects_since() {
        let text = b"boot\n[personal] cellvisor-ready: personal uptime=1.5\n[corporate] x\n[personal] cellvisor-ready: personal uptime=9\n";
        let first = find_line(text, "cellvisor-ready: personal", 0).expect("first banner");
        assert_eq!(
            first.line,
            "[personal] cellvisor-ready: personal uptime=1.5"
        );
        assert_eq!(&text[first.line_start..first.line_start + 4], b"[per");
        let second =
            find_line(text, "cellvisor-ready: personal", first.line_end).expect("second banner");
        assert!(second.line.ends_with("uptime=9"));
        assert!(find_line(text, "cellvisor-ready: personal", second.line_end).is_none());
        assert!(find_line(text, "", 0).is_none());
        assert!(find_line(text, "boot", 1000).is_none());
    }

    #[test]
    fn a_broken_off_line_is_followed_to_the_line_that_finishes_it() {
        let text = "[personal] suite: 3 attacks, 3 o…\n[corporate] beat 7\n[personal] suite: 3 attacks, 3 ok\n";
        let found = find_line(text.as_bytes(), "suite:", 0).expect("match");
        assert_eq!(found.line, "[personal] suite: 3 attacks, 3 ok");
        assert_eq!(found.line_end, text.len());
        let waiting = "[personal] suite: 3 o…\n[corporate] beat 7\n";
        let found = find_line(waiting.as_bytes(), "suite:", 0).expect("match");
        assert_eq!(found.line, "[personal] suite: 3 o…");
        assert!(awaits_resumption(waiting.as_bytes(), &found));
        // A cut long line goes on with `…` and is not a broken-off one.
        let cut = "[personal] long…\n[personal] …rest\n";
        let found = find_line(cut.as_bytes(), "long", 0).expect("match");
        assert_eq!(found.line, "[personal] long…");
        assert!(!awaits_resumption(cut.as_bytes(), &found));
        // Cellvisor's own lines are never broken off.
        let own = "cellvisor: text…\n";
        assert!(!awaits_resumption(
            own.as_bytes(),
            &find_line(own.as_bytes(), "text", 0).expect("match")
        ));
    }

    #[test]
    fn finished_lines_leave_out_broken_off_ones() {
        let body =
            "[personal] 2…\n[corporate] noise\n[personal] 2\n[personal] long…\n[personal] …rest\n";
        assert_eq!(
            finished_lines(body),
            [
                "[corporate] noise",
                "[personal] 2",
                "[personal] long…",
                "[personal] …rest"
            ]
        );
        assert_eq!(cell_output(body, "personal"), "2\nlong…\n…rest");
    }

    #[test]
    fn unfinished_line_ends_at_transcript_end() {
        let found = find_line(b"a\nhalf a li", "half", 0).expect("match");
        assert_eq!(found.line, "half a li");
        assert_eq!(found.line_end, 11);
    }

    #[test]
    fn shell_output_keeps_the_cells_lines_only() {
        let body = "[personal] 2\n[corporate] noise\n[personal] second\n";
        assert_eq!(cell_output(body, "personal"), "2\nsecond");
        assert_eq!(cell_output("2\n", "personal"), "2");
        let with_kernel = "[personal] [   14.103212] IPv6: ADDRCONF(NETDEV_CHANGE): eth0: link becomes ready\n[personal] 2\n";
        assert_eq!(cell_output(with_kernel, "personal"), "2");
        assert!(!is_kernel_log_line("[1] not a stamp"));
        assert!(!is_kernel_log_line("[ .5] nor this"));
        assert!(is_kernel_log_line("[12.5] x"));
        assert_eq!(
            exit_code("[personal] cellvisor-end-3 127", "cellvisor-end-3 "),
            127
        );
        assert_eq!(
            exit_code("[personal] cellvisor-end-3 ", "cellvisor-end-3 "),
            -1
        );
    }

    #[test]
    fn cellvisor_warnings_are_its_own_warn_and_error_records() {
        let transcript = "cellvisor: cpu0 INFO  layout linux: 2 cells\n\
                          cellvisor: cpu2 WARN  cell corporate: unexpected trap (0x1)\n\
                          cellvisor: cpu13 ERROR cell personal: restart failed, left off\n\
                          [personal] cellvisor: insmod kernel/virtio.ko failed\n\
                          [personal] cellvisor: cpu0 WARN  typed by a guest\n\
                          cellvisor: cpux WARN  not a record\n\
                          cellvisor: console input now goes to corporate\n";
        assert_eq!(
            cellvisor_warnings(transcript),
            [
                "cellvisor: cpu2 WARN  cell corporate: unexpected trap (0x1)",
                "cellvisor: cpu13 ERROR cell personal: restart failed, left off",
            ]
        );
        let disasters = disasters(
            "[personal] Kernel panic - not syncing\n[corporate] Internal error: Oops\nok\ncellvisor: fatal: no\n",
        );
        assert_eq!(disasters.len(), 3, "{disasters:?}");
    }

    #[test]
    fn arrivals_find_the_read_that_brought_a_byte() {
        let start = Instant::now();
        let later = start + std::time::Duration::from_millis(5);
        let arrivals = [(3, start), (3, start), (10, later)];
        assert_eq!(arrival(&arrivals, 0), Some(start));
        assert_eq!(arrival(&arrivals, 2), Some(start));
        assert_eq!(arrival(&arrivals, 3), Some(later));
        assert_eq!(arrival(&arrivals, 9), Some(later));
        assert_eq!(arrival(&arrivals, 10), None);
    }

    #[test]
    fn prefixes_and_tails() {
        assert_eq!(strip_cell_prefix("[corporate] 2", "corporate"), "2");
        assert_eq!(strip_cell_prefix("plain", "corporate"), "plain");
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("", 2), "");
    }
}
