//! QEMU harness for the integration tests: boot a cellvisor image, read and drive its serial console.
//!
//! The tests in `tests/tests/*.rs` are `#[ignore]`d by default; `cargo xtask test` builds the images and
//! runs them with `--include-ignored`, passing where the images are through `CELLVISOR_OUT` and which QEMU
//! to use through `CELLVISOR_QEMU`.
//!
//! A [`Machine`] is one running QEMU whose serial port is on piped stdio. A reader thread appends every
//! byte QEMU prints to a shared transcript, with ANSI escape sequences and carriage returns removed, so
//! tests can wait for plain text. Transcript positions are byte offsets into that cleaned text: take a
//! [`Machine::mark`] before an action and wait for its effect with [`Machine::wait_for_after`].
//! Every machine's transcript is saved to `<CELLVISOR_OUT>/transcripts/<test name>.log` when it is
//! dropped.
//!
//! Timeouts given to the harness are multiplied by `CELLVISOR_TIMEOUT_SCALE` (a float, default 1) so a
//! slow host can be given more time without editing tests.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod shell;

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The byte that opens cellvisor's console escape sequences (Ctrl-A): Ctrl-A then `1`/`2` switches input
/// focus to cell 1/2, Ctrl-A then `m` opens the management prompt.
pub const CONSOLE_ESCAPE: u8 = 0x01;

/// How many transcript lines an error message quotes.
const TAIL_LINES: usize = 60;

/// Built images and the QEMU to run them with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifacts {
    /// Directory holding `qemu-virt.bin` and `bundle-<layout>.cpio` (`target/cellvisor`).
    pub out_dir: PathBuf,
    /// The `qemu-system-aarch64` binary.
    pub qemu: PathBuf,
}

impl Artifacts {
    /// Reads `CELLVISOR_OUT` and `CELLVISOR_QEMU`, which `cargo xtask test` sets.
    pub fn from_env() -> Result<Artifacts, HarnessError> {
        let out_dir = std::env::var_os("CELLVISOR_OUT").ok_or_else(|| {
            HarnessError::Setup(
                "CELLVISOR_OUT is not set: QEMU tests need built images, run `cargo xtask test`"
                    .into(),
            )
        })?;
        let qemu = std::env::var_os("CELLVISOR_QEMU").ok_or_else(|| {
            HarnessError::Setup(
                "CELLVISOR_QEMU is not set: QEMU tests need a checked QEMU, run `cargo xtask test`"
                    .into(),
            )
        })?;
        Ok(Artifacts {
            out_dir: PathBuf::from(out_dir),
            qemu: PathBuf::from(qemu),
        })
    }

    /// The raw hypervisor image for the `qemu-virt` board.
    pub fn hypervisor_image(&self) -> PathBuf {
        self.out_dir.join("qemu-virt.bin")
    }

    /// The guest bundle (cpio newc) for a layout.
    pub fn bundle(&self, layout: &str) -> PathBuf {
        self.out_dir.join(format!("bundle-{layout}.cpio"))
    }

    /// Where transcripts are saved.
    pub fn transcript_dir(&self) -> PathBuf {
        self.out_dir.join("transcripts")
    }
}

/// Layouts whose cells own QEMU's virtio devices (boards/qemu-virt: `virtio-disk` in slot 31 for
/// corporate, `virtio-net` in slot 30 for personal): [`QemuConfig::new`] attaches the devices for
/// them.
pub const PASSTHROUGH_LAYOUTS: &[&str] = &["linux"];

/// File name of the corporate cell's disk image in the output directory (`cargo xtask build`
/// makes it: 64 MiB, ext2).
pub const CORPORATE_DISK: &str = "corporate-disk.img";

/// QEMU arguments for a headless run with the serial console on stdio: no display, no monitor
/// (so every input byte reaches the UART unmodified) and no reboot (a reset ends QEMU).
pub const HEADLESS_SERIAL_ARGS: [&str; 7] = [
    "-display",
    "none",
    "-serial",
    "stdio",
    "-monitor",
    "none",
    "-no-reboot",
];

/// QEMU arguments for the passed-through devices, in the order that puts them in the right
/// virtio-mmio slots (`-device virtio-*-device` fills slots from the top): first the virtio-blk disk
/// on `disk` (slot 31, INTID 79), then virtio-net with QEMU user networking (slot 30, INTID 78;
/// nothing outside the machine is reachable except through QEMU's NAT). With `snapshot`, the disk's
/// writes go to a temporary overlay that lives as long as QEMU: tests can run in parallel on one
/// image (and next to an interactive run) and leave it unchanged.
pub fn passthrough_device_args(disk: &Path, snapshot: bool) -> Vec<String> {
    // QEMU's option syntax escapes a comma by doubling it.
    let file = disk.to_string_lossy().replace(',', ",,");
    // The snapshot opens the image read-only and without locks, so it also works while an
    // interactive `cargo xtask run` holds the image's write lock.
    let snapshot = if snapshot {
        ",snapshot=on,file.locking=off"
    } else {
        ""
    };
    vec![
        "-drive".to_owned(),
        format!("file={file},if=none,format=raw,id=disk0{snapshot}"),
        "-device".to_owned(),
        "virtio-blk-device,drive=disk0".to_owned(),
        "-netdev".to_owned(),
        "user,id=net0".to_owned(),
        "-device".to_owned(),
        "virtio-net-device,netdev=net0".to_owned(),
    ]
}

/// How to start QEMU. Build one with [`QemuConfig::new`] (or `Default`, the `linux` layout) and
/// change fields with struct-update syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// Cell layout, passed to cellvisor as `cellvisor.layout=<layout>`; also selects the bundle.
    pub layout: String,
    /// `-smp`.
    pub smp: u32,
    /// `-m`, in MiB.
    pub memory_mib: u32,
    /// Run with `-icount shift=0` (deterministic: one instruction is one nanosecond).
    pub icount: bool,
    /// `-cpu`.
    pub cpu: String,
    /// Appended to the hypervisor command line after `cellvisor.layout=<layout>`.
    pub hypervisor_args: String,
    /// Appended to the QEMU command line.
    pub extra_args: Vec<String>,
    /// Use this bundle instead of `<out_dir>/bundle-<layout>.cpio`.
    pub bundle: Option<PathBuf>,
    /// Attach the passthrough devices ([`passthrough_device_args`] on `<out_dir>/`[`CORPORATE_DISK`],
    /// as a snapshot); [`QemuConfig::new`] sets it for [`PASSTHROUGH_LAYOUTS`].
    pub passthrough_devices: bool,
}

impl QemuConfig {
    /// The default machine (`-smp 4 -m 2G`, `-cpu max,sve=off,sme=off`) running `layout`.
    pub fn new(layout: &str) -> QemuConfig {
        QemuConfig {
            layout: layout.to_owned(),
            smp: 4,
            memory_mib: 2048,
            icount: false,
            cpu: "max,sve=off,sme=off".to_owned(),
            hypervisor_args: String::new(),
            extra_args: Vec::new(),
            bundle: None,
            passthrough_devices: PASSTHROUGH_LAYOUTS.contains(&layout),
        }
    }

    /// The hypervisor's command line (`-append`).
    pub fn hypervisor_command_line(&self) -> String {
        let mut line = format!("cellvisor.layout={}", self.layout);
        if !self.hypervisor_args.trim().is_empty() {
            line.push(' ');
            line.push_str(self.hypervisor_args.trim());
        }
        line
    }

    /// QEMU's arguments (without the program), serial on stdio and no monitor, so every input byte
    /// reaches the UART unmodified.
    pub fn qemu_args(&self, artifacts: &Artifacts) -> Vec<String> {
        let bundle = self
            .bundle
            .clone()
            .unwrap_or_else(|| artifacts.bundle(&self.layout));
        let mut args: Vec<String> = [
            "-M",
            "virt,virtualization=on,gic-version=3",
            "-cpu",
            &self.cpu,
            "-smp",
            &self.smp.to_string(),
            "-m",
            &format!("{}M", self.memory_mib),
        ]
        .iter()
        .chain(&HEADLESS_SERIAL_ARGS)
        .chain(&[
            "-kernel",
            &artifacts.hypervisor_image().to_string_lossy(),
            "-initrd",
            &bundle.to_string_lossy(),
            "-append",
            &self.hypervisor_command_line(),
        ])
        .map(|s| s.to_string())
        .collect();
        if self.icount {
            args.extend(["-icount".to_owned(), "shift=0".to_owned()]);
        }
        if self.passthrough_devices {
            args.extend(passthrough_device_args(
                &artifacts.out_dir.join(CORPORATE_DISK),
                true,
            ));
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig::new("linux")
    }
}

/// Why waiting on a machine failed. `Display` quotes the end of the transcript.
#[derive(Debug)]
pub enum HarnessError {
    /// The environment is not set up (message says how to fix it).
    Setup(String),
    /// Starting or talking to QEMU failed.
    Io(io::Error),
    /// `what` did not happen within `waited`.
    Timeout {
        /// What was awaited.
        what: String,
        /// How long the harness waited.
        waited: Duration,
        /// The last lines of the transcript (and QEMU's stderr, if any).
        tail: String,
    },
    /// QEMU exited before `what` happened.
    Exited {
        /// What was awaited.
        what: String,
        /// QEMU's exit status, if it was collected.
        status: Option<ExitStatus>,
        /// The last lines of the transcript (and QEMU's stderr, if any).
        tail: String,
    },
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HarnessError::Setup(message) => write!(f, "{message}"),
            HarnessError::Io(error) => write!(f, "QEMU i/o error: {error}"),
            HarnessError::Timeout { what, waited, tail } => write!(
                f,
                "timed out after {:.1} s waiting for {what}\n--- last {TAIL_LINES} lines of the console ---\n{tail}",
                waited.as_secs_f64()
            ),
            HarnessError::Exited { what, status, tail } => {
                let status = status.map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                write!(
                    f,
                    "QEMU exited ({status}) while waiting for {what}\n--- last {TAIL_LINES} lines of the console ---\n{tail}"
                )
            }
        }
    }
}

impl std::error::Error for HarnessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HarnessError::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<io::Error> for HarnessError {
    fn from(error: io::Error) -> Self {
        HarnessError::Io(error)
    }
}

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

/// Multiplies a timeout by `CELLVISOR_TIMEOUT_SCALE` (default 1).
pub fn scaled(timeout: Duration) -> Duration {
    static SCALE: OnceLock<f64> = OnceLock::new();
    let scale = *SCALE.get_or_init(|| {
        std::env::var("CELLVISOR_TIMEOUT_SCALE")
            .ok()
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|scale| scale.is_finite() && *scale > 0.0)
            .unwrap_or(1.0)
    });
    timeout.mul_f64(scale)
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
pub fn find_line(text: &[u8], needle: &str, since: usize) -> Option<Match> {
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

#[derive(Default)]
struct TranscriptState {
    /// Console output, cleaned.
    text: Vec<u8>,
    /// QEMU's stderr, verbatim.
    stderr: Vec<u8>,
    /// The serial reader reached end of file (QEMU exited or closed stdout).
    closed: bool,
}

struct Transcript {
    state: Mutex<TranscriptState>,
    changed: Condvar,
}

impl Transcript {
    fn lock(&self) -> MutexGuard<'_, TranscriptState> {
        // A reader thread that panicked cannot leave the buffer half-written: keep using it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running QEMU. Dropping it kills QEMU and saves the transcript.
pub struct Machine {
    child: Child,
    stdin: Option<ChildStdin>,
    transcript: Arc<Transcript>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    log_path: Option<PathBuf>,
    command_counter: u32,
}

impl Machine {
    /// Starts QEMU with `config`; the transcript is saved under the current test's name.
    pub fn boot(artifacts: &Artifacts, config: &QemuConfig) -> io::Result<Machine> {
        let name = thread::current()
            .name()
            .filter(|name| *name != "main")
            .map(|name| name.rsplit("::").next().unwrap_or(name).to_owned())
            .unwrap_or_else(|| format!("qemu-{}", config.layout));
        Machine::boot_named(artifacts, config, &name)
    }

    /// Starts QEMU with `config`; the transcript is saved as `<out_dir>/transcripts/<name>[-n].log`.
    pub fn boot_named(
        artifacts: &Artifacts,
        config: &QemuConfig,
        name: &str,
    ) -> io::Result<Machine> {
        let disk = config.passthrough_devices.then(|| {
            (
                "corporate disk image",
                artifacts.out_dir.join(CORPORATE_DISK),
            )
        });
        for (what, path) in [
            ("hypervisor image", artifacts.hypervisor_image()),
            (
                "guest bundle",
                config
                    .bundle
                    .clone()
                    .unwrap_or_else(|| artifacts.bundle(&config.layout)),
            ),
        ]
        .into_iter()
        .chain(disk)
        {
            if !path.is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!(
                        "{what} {} is missing: run `cargo xtask build`",
                        path.display()
                    ),
                ));
            }
        }
        let mut child = Command::new(&artifacts.qemu)
            .args(config.qemu_args(artifacts))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot start {}: {error}", artifacts.qemu.display()),
                )
            })?;
        let transcript = Arc::new(Transcript {
            state: Mutex::new(TranscriptState::default()),
            changed: Condvar::new(),
        });
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(spawn_reader(stdout, Arc::clone(&transcript), true));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(spawn_reader(stderr, Arc::clone(&transcript), false));
        }
        Ok(Machine {
            stdin: child.stdin.take(),
            child,
            transcript,
            readers,
            status: None,
            log_path: Some(unique_log_path(&artifacts.transcript_dir(), name)),
            command_counter: 0,
        })
    }

    /// The current end of the transcript, to wait for output that comes after it.
    pub fn mark(&self) -> usize {
        self.transcript.lock().text.len()
    }

    /// The first line containing `needle` at or after `since`, without waiting.
    pub fn find(&self, needle: &str, since: usize) -> Option<Match> {
        find_line(&self.transcript.lock().text, needle, since)
    }

    /// Waits until `needle` appears anywhere in the transcript; returns the line containing it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, HarnessError> {
        self.wait_for_after(needle, 0, timeout)
    }

    /// Waits until `needle` appears at or after transcript offset `since`; returns its line.
    pub fn wait_for_after(
        &mut self,
        needle: &str,
        since: usize,
        timeout: Duration,
    ) -> Result<String, HarnessError> {
        self.find_after(needle, since, timeout)
            .map(|found| found.line)
    }

    /// Waits until `needle` appears at or after `since`; returns the line with its position, so
    /// repeated messages can be awaited one after another (`since = previous.line_end`).
    ///
    /// If the matching line has no newline yet, waits briefly for the rest of the line.
    pub fn find_after(
        &mut self,
        needle: &str,
        since: usize,
        timeout: Duration,
    ) -> Result<Match, HarnessError> {
        let timeout = scaled(timeout);
        self.find_until(needle, since, Instant::now() + timeout, timeout)
    }

    fn find_until(
        &mut self,
        needle: &str,
        since: usize,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<Match, HarnessError> {
        let mut state = self.transcript.lock();
        loop {
            if let Some(mut found) = find_line(&state.text, needle, since) {
                // Give a half-printed line a moment to finish so callers see all of it.
                let line_deadline = (Instant::now() + Duration::from_millis(500)).min(deadline);
                while found.line_end == state.text.len()
                    && !state.text.ends_with(b"\n")
                    && !state.closed
                    && Instant::now() < line_deadline
                {
                    let wait = line_deadline.saturating_duration_since(Instant::now());
                    state = self
                        .transcript
                        .changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .0;
                    found = find_line(&state.text, needle, since).unwrap_or(found);
                }
                return Ok(found);
            }
            if state.closed {
                drop(state);
                return Err(self.exited_error(format!("{needle:?}")));
            }
            let now = Instant::now();
            if now >= deadline {
                drop(state);
                return Err(self.timeout_error(format!("{needle:?}"), timeout));
            }
            state = self
                .transcript
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    /// Writes `bytes` to the serial port (the guest UART sees exactly these bytes).
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "QEMU's stdin is closed"))?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }

    /// Types `line` followed by Enter (a carriage return, as a terminal sends it).
    pub fn send_line(&mut self, line: &str) -> io::Result<()> {
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\r');
        self.send(&bytes)
    }

    /// Sends cellvisor's console escape (Ctrl-A) followed by `key`, e.g. `b'2'` to focus cell 2.
    pub fn send_escape(&mut self, key: u8) -> io::Result<()> {
        self.send(&[CONSOLE_ESCAPE, key])
    }

    /// Runs `command` in the shell of `cell`, which must have input focus, and returns its output lines
    /// (console prefixes removed) and its exit code.
    ///
    /// The command is bracketed by `echo` markers whose typed form differs from their printed form, so
    /// the terminal's echo of the typed line is never mistaken for output.
    pub fn shell(
        &mut self,
        cell: &str,
        command: &str,
        timeout: Duration,
    ) -> Result<(String, i32), HarnessError> {
        self.command_counter += 1;
        let id = self.command_counter;
        let begin = format!("cellvisor-begin-{id}");
        let end = format!("cellvisor-end-{id} ");
        let since = self.mark();
        self.send_line(&format!(
            "echo 'cellvisor-''begin-{id}'; {command}; echo \"cellvisor-\"\"end-{id} $?\""
        ))?;
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        let begin_match = self
            .find_until(&begin, since, deadline, timeout)
            .map_err(|error| rename(error, &format!("{command:?} to start in {cell}")))?;
        let end_match = self
            .find_until(&end, begin_match.line_end, deadline, timeout)
            .map_err(|error| rename(error, &format!("{command:?} to finish in {cell}")))?;
        let text = self.transcript.lock().text.clone();
        let body = String::from_utf8_lossy(&text[begin_match.line_end..end_match.line_start]);
        Ok((cell_output(&body, cell), exit_code(&end_match.line, &end)))
    }

    /// Waits for QEMU to exit by itself (e.g. the machine powered off); kills it on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus, HarnessError> {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status()? {
                self.join_readers();
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let error = self.timeout_error("QEMU to exit".to_owned(), timeout);
                self.kill();
                return Err(error);
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether QEMU is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.try_status(), Ok(None))
    }

    /// The whole transcript so far (cleaned of escape sequences and carriage returns).
    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.transcript.lock().text).into_owned()
    }

    /// QEMU's stderr so far.
    pub fn qemu_stderr(&self) -> String {
        String::from_utf8_lossy(&self.transcript.lock().stderr).into_owned()
    }

    /// Where the transcript will be saved.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Kills QEMU (if still running) and waits for it.
    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
        self.stdin = None;
        self.join_readers();
    }

    /// Writes the transcript (and QEMU's stderr, if any) to the log file now.
    pub fn save_transcript(&self) -> io::Result<()> {
        let Some(path) = &self.log_path else {
            return Ok(());
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let state = self.transcript.lock();
        let mut contents = state.text.clone();
        if !state.stderr.is_empty() {
            contents.extend_from_slice(b"\n--- QEMU stderr ---\n");
            contents.extend_from_slice(&state.stderr);
        }
        std::fs::write(path, contents)
    }

    fn try_status(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }

    fn tail(&self) -> String {
        let state = self.transcript.lock();
        let mut tail = last_lines(&String::from_utf8_lossy(&state.text), TAIL_LINES);
        if !state.stderr.is_empty() {
            tail.push_str("\n--- QEMU stderr ---\n");
            tail.push_str(&last_lines(&String::from_utf8_lossy(&state.stderr), 20));
        }
        if let Some(path) = &self.log_path {
            tail.push_str(&format!("\n--- full transcript: {} ---", path.display()));
        }
        tail
    }

    fn timeout_error(&self, what: String, waited: Duration) -> HarnessError {
        let _ = self.save_transcript();
        HarnessError::Timeout {
            what,
            waited,
            tail: self.tail(),
        }
    }

    fn exited_error(&mut self, what: String) -> HarnessError {
        // The reader saw end of file: QEMU is exiting; collect its status briefly.
        let deadline = Instant::now() + Duration::from_secs(2);
        while matches!(self.try_status(), Ok(None)) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if self.status.is_some() {
            // QEMU is gone, so both pipes are at end of file: collect the last of its stderr.
            self.join_readers();
        }
        let _ = self.save_transcript();
        HarnessError::Exited {
            what,
            status: self.status,
            tail: self.tail(),
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.kill();
        let _ = self.save_transcript();
    }
}

/// The lines of `body` that `cell` printed, prefixes removed; all lines if none carries a prefix
/// (a guest running without cellvisor).
///
/// Kernel log lines (`[   12.345678] ...`) are dropped too: the cell's own kernel may print to the
/// same console while a command runs (e.g. personal's network coming up), and they are never a
/// command's output (read `dmesg -t` rather than `dmesg` through [`Machine::shell`]).
fn cell_output(body: &str, cell: &str) -> String {
    let prefix = format!("[{cell}]");
    let prefixed = body.lines().any(|line| line.starts_with(&prefix));
    body.lines()
        .filter(|line| !prefixed || line.starts_with(&prefix))
        .map(|line| strip_cell_prefix(line, cell))
        .filter(|line| !is_kernel_log_line(line))
        .collect::<Vec<_>>()
        .join("\n")
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
fn exit_code(line: &str, marker: &str) -> i32 {
    line.split_once(marker)
        .and_then(|(_, code)| code.trim().parse::<i32>().ok())
        .unwrap_or(-1)
}

fn rename(error: HarnessError, what: &str) -> HarnessError {
    match error {
        HarnessError::Timeout { waited, tail, .. } => HarnessError::Timeout {
            what: what.to_owned(),
            waited,
            tail,
        },
        HarnessError::Exited { status, tail, .. } => HarnessError::Exited {
            what: what.to_owned(),
            status,
            tail,
        },
        other => other,
    }
}

fn spawn_reader(
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

/// `<dir>/<name>.log`, or `<name>-2.log`, ... if this process already used that name.
fn unique_log_path(dir: &Path, name: &str) -> PathBuf {
    static USED: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut used = USED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let count = used.entry(safe.clone()).or_insert(0);
    *count += 1;
    if *count == 1 {
        dir.join(format!("{safe}.log"))
    } else {
        dir.join(format!("{safe}-{count}.log"))
    }
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
    fn unfinished_line_ends_at_transcript_end() {
        let found = find_line(b"a\nhalf a li", "half", 0).expect("match");
        assert_eq!(found.line, "half a li");
        assert_eq!(found.line_end, 11);
    }

    #[test]
    fn linux_layout_gets_the_disk_first_then_the_network() {
        let artifacts = Artifacts {
            out_dir: PathBuf::from("/out"),
            qemu: PathBuf::from("qemu-system-aarch64"),
        };
        let args = QemuConfig::new("linux").qemu_args(&artifacts).join(" ");
        let disk = "-drive file=/out/corporate-disk.img,if=none,format=raw,id=disk0,snapshot=on,\
                    file.locking=off -device virtio-blk-device,drive=disk0";
        let net = "-netdev user,id=net0 -device virtio-net-device,netdev=net0";
        assert!(args.contains(&format!("{disk} {net}")), "{args}");
        let interactive = passthrough_device_args(Path::new("/a,b/disk.img"), false).join(" ");
        assert!(interactive.starts_with("-drive file=/a,,b/disk.img,if=none,format=raw,id=disk0 "));
        assert!(!QemuConfig::new("test-guests").passthrough_devices);
    }

    #[test]
    fn qemu_command_line_has_serial_on_stdio_and_the_layout() {
        let artifacts = Artifacts {
            out_dir: PathBuf::from("/out"),
            qemu: PathBuf::from("qemu-system-aarch64"),
        };
        let config = QemuConfig {
            icount: true,
            hypervisor_args: "loglevel=debug".into(),
            extra_args: vec!["-s".into()],
            ..QemuConfig::new("test-guests")
        };
        let args = config.qemu_args(&artifacts).join(" ");
        assert!(args.contains(
            "-M virt,virtualization=on,gic-version=3 -cpu max,sve=off,sme=off -smp 4 -m 2048M"
        ));
        assert!(args.contains("-display none -serial stdio -monitor none"));
        assert!(args.contains("-kernel /out/qemu-virt.bin -initrd /out/bundle-test-guests.cpio"));
        assert!(args.contains("-append cellvisor.layout=test-guests loglevel=debug"));
        assert!(!args.contains("virtio"));
        assert!(args.ends_with("-icount shift=0 -s"));
        assert!(!args.contains("-nographic"));
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
    fn prefixes_and_tails() {
        assert_eq!(strip_cell_prefix("[corporate] 2", "corporate"), "2");
        assert_eq!(strip_cell_prefix("plain", "corporate"), "plain");
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("", 2), "");
    }

    #[test]
    fn missing_environment_names_the_command_to_run() {
        // Only meaningful when the variables are absent (plain `cargo test`).
        if std::env::var_os("CELLVISOR_OUT").is_none() {
            let message = Artifacts::from_env()
                .expect_err("no environment")
                .to_string();
            assert!(message.contains("cargo xtask test"), "{message}");
        }
    }

    #[test]
    fn machine_reports_early_exit_with_the_transcript() {
        // A fake "QEMU" (a shell script) exercises the process plumbing without QEMU.
        let dir = std::env::temp_dir().join(format!("cellvisor-harness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let fake = dir.join("fake-qemu");
        std::fs::write(
            &fake,
            "#!/bin/sh\nprintf '\\033[32m[personal]\\033[0m hello\\r\\n'\nline=$(head -c 5 | tr -d '\\r')\necho \"[personal] got $line\"\necho oops >&2\nexit 3\n",
        )
        .expect("script");
        std::fs::write(dir.join("qemu-virt.bin"), b"").expect("image");
        std::fs::write(dir.join("bundle-linux.cpio"), b"").expect("bundle");
        std::fs::write(dir.join(CORPORATE_DISK), b"").expect("disk");
        let mut permissions = std::fs::metadata(&fake).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
        std::fs::set_permissions(&fake, permissions).expect("chmod");
        let artifacts = Artifacts {
            out_dir: dir.clone(),
            qemu: fake,
        };
        let mut machine =
            Machine::boot_named(&artifacts, &QemuConfig::default(), "self-test").expect("boot");
        let line = machine
            .wait_for("hello", Duration::from_secs(10))
            .expect("hello");
        assert_eq!(line, "[personal] hello");
        let mark = machine.mark();
        machine.send_line("ping").expect("send");
        let line = machine
            .wait_for_after("got", mark, Duration::from_secs(10))
            .expect("reply");
        assert_eq!(line, "[personal] got ping");
        let error = machine
            .wait_for("never printed", Duration::from_secs(10))
            .expect_err("exits first");
        let message = error.to_string();
        assert!(message.contains("QEMU exited"), "{message}");
        assert!(message.contains("[personal] got ping"), "{message}");
        assert!(message.contains("oops"), "{message}");
        let status = machine.wait_exit(Duration::from_secs(10)).expect("exit");
        assert_eq!(status.code(), Some(3));
        drop(machine);
        let saved = std::fs::read_to_string(dir.join("transcripts/self-test.log")).expect("log");
        assert!(saved.starts_with("[personal] hello\n"), "{saved}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
