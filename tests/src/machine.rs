//! [`Machine`]: one running QEMU, its serial console driven and its transcript awaited and saved.

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::config::{
    Artifacts, CORPORATE_DISK, PassthroughDevices, QemuBoard, QemuConfig, scaled, unique_qmp_socket,
};
use crate::error::{HarnessError, TAIL_LINES, rename};
use crate::qmp::Qmp;
use crate::transcript::{
    Match, Transcript, TranscriptState, arrival, awaits_resumption, cell_output, exit_code,
    find_line, last_lines, spawn_reader,
};

/// The byte that opens cellvisor's console escape sequences (Ctrl-A): Ctrl-A then `1`/`2` switches input
/// focus to cell 1/2, Ctrl-A then `m` opens the management prompt.
pub const CONSOLE_ESCAPE: u8 = 0x01;

/// A running QEMU. Dropping it kills QEMU and saves the transcript.
pub struct Machine {
    child: Child,
    stdin: Option<ChildStdin>,
    transcript: Arc<Transcript>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    log_path: Option<PathBuf>,
    command_counter: u32,
    qmp_socket: Option<PathBuf>,
}

/// How long [`Machine::qmp`] tries to connect, and then waits for each QMP reply (scaled).
const QMP_TIMEOUT: Duration = Duration::from_secs(30);

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
        let disk = (config.passthrough_devices != PassthroughDevices::None).then(|| {
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
        let qmp_socket =
            (config.display && config.board == QemuBoard::Virt).then(unique_qmp_socket);
        if let Some(socket) = &qmp_socket {
            // A stale socket of an earlier process with this pid would stop QEMU's bind.
            let _ = std::fs::remove_file(socket);
        }
        let mut child = Command::new(&artifacts.qemu)
            .args(config.qemu_args_with_qmp(artifacts, qmp_socket.as_deref()))
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
            qmp_socket,
        })
    }

    /// The QMP socket of a machine booted with [`QemuConfig::display`].
    pub fn qmp_socket(&self) -> Option<&Path> {
        self.qmp_socket.as_deref()
    }

    /// Connects to the machine's QMP socket (booted with [`QemuConfig::display`]); each call
    /// opens a new connection (QEMU serves one at a time: drop the last first).
    pub fn qmp(&self) -> Result<Qmp, HarnessError> {
        let socket = self.qmp_socket.as_deref().ok_or_else(|| {
            HarnessError::Setup(
                "this machine has no QMP socket: boot it with QemuConfig { display: true, .. }"
                    .to_owned(),
            )
        })?;
        Qmp::connect(socket, scaled(QMP_TIMEOUT))
    }

    /// The current end of the transcript, to wait for output that comes after it.
    pub fn mark(&self) -> usize {
        self.transcript.lock().text.len()
    }

    /// When the console byte at transcript offset `offset` arrived on the host (to the resolution
    /// of the reader's reads); `None` if it has not yet. For latencies the tests report, never
    /// assert.
    pub fn arrived_at(&self, offset: usize) -> Option<Instant> {
        arrival(&self.transcript.lock().arrivals, offset)
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
                // Give a half-printed or broken-off line a moment to finish so callers see all
                // of it.
                let line_deadline = (Instant::now() + Duration::from_millis(500)).min(deadline);
                while (found.line_end == state.text.len() && !state.text.ends_with(b"\n")
                    || awaits_resumption(&state.text, &found))
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

    /// The transcript's bytes from offset `start` to `end` (offsets as [`Machine::mark`] and
    /// the finds return them), as text.
    pub fn text_between(&self, start: usize, end: usize) -> String {
        let transcript = self.transcript.lock();
        let end = end.min(transcript.text.len());
        String::from_utf8_lossy(transcript.text.get(start.min(end)..end).unwrap_or_default())
            .into_owned()
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

    /// Saves the transcript now and says where it is (`transcript: PATH`), for a failing
    /// assertion's message; empty when there is no log file.
    pub fn transcript_note(&self) -> String {
        let _ = self.save_transcript();
        self.log_path()
            .map(|path| format!("transcript: {}", path.display()))
            .unwrap_or_default()
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
        if let Some(socket) = &self.qmp_socket {
            let _ = std::fs::remove_file(socket);
        }
    }
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
