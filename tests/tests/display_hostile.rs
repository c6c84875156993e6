//! A hostile cell against its emulated display and input devices (docs/architecture.md, "Display
//! and input"): the *personal* cell runs `test=display-attack` (guests/test-guest/src/
//! display_attack.rs) on QEMU with `-device ramfb` and a virtio keyboard and tablet, while the
//! *corporate* cell prints heartbeats. The attacker programs PL111 frames outside its RAM (each
//! must be refused and counted by the `screen` management command) and malformed virtqueues on
//! its virtio-input transport (each must leave the guest running, and the device in
//! DEVICE_NEEDS_RESET where the queue is consumed on notification), floods notifications and
//! sweeps the registers; then it sets up a proper event queue and a key pressed through QMP
//! (`input-send-event`) must reach it, the focused cell, and not the victim.
//!
//! No timing thresholds: every wait is a generous upper bound.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cellvisor_tests::bundle;
use cellvisor_tests::{Artifacts, CONSOLE_ESCAPE, HarnessError, Machine, QemuConfig};

const LAYOUT: &str = "test-guests";
/// Generous: the machine running the tests is shared and slow, and the flood takes a while.
const TIMEOUT: Duration = Duration::from_secs(300);
const ATTACKER: &str = "personal";
const VICTIM: &str = "corporate";
const ATTACKER_ARGS: &str = "test=display-attack";
/// The victim: heartbeats for far longer than the test runs.
const VICTIM_ARGS: &str = "test=heartbeat beats=1000000 period_ms=100";
/// Heartbeats the victim must print after the attacks.
const BEATS_AFTER: u64 = 3;

/// Texts the test guest prints (guests/test-guest/src/lines.rs).
mod guest {
    pub const HEARTBEAT: &str = "test-guest: heartbeat ";
    /// Prefix of every failure line of the test guest.
    pub const FAIL: &str = "test-guest: FAIL";
    /// Prefix of every `test=display-attack` line.
    pub const DISPLAY_ATTACK: &str = "test-guest: display-attack: ";
    /// `... pl111: 6 bad frames programmed`.
    pub const BAD_FRAMES: &str = "test-guest: display-attack: pl111: ";
    pub const VALID_FRAME: &str = "test-guest: display-attack: valid frame at ";
    pub const READY: &str = "test-guest: display-attack: ready for keys";
    pub const EVENT: &str = "test-guest: display-attack: event ";
    /// The key `a` pressed: EV_KEY, KEY_A, 1 (followed by ` (input N)`: the keyboard is not the
    /// first input device, cellvisor numbers them in QEMU's slot order, the tablet's first).
    pub const KEY_A_DOWN: &str = "test-guest: display-attack: event type=1 code=30 value=1";
    pub const KEY_A_UP: &str = "test-guest: display-attack: event type=1 code=30 value=0";
    /// The test guest's last line before it powers off.
    pub const DONE: &str = "test-guest: done, powering off";
    pub const GOT_EVENTS: &str = "test-guest: display-attack: got events";
    pub const NO_EVENTS: &str = "test-guest: display-attack: no events";
}

/// The bad frames the attacker programs (`pl111-base <name>`): the least the `screen` command
/// must count as refused.
const BAD_FRAMES: [&str; 6] = [
    "other-cell-ram",
    "personal-physical-ram",
    "cellvisor-memory",
    "straddling-ram-end",
    "zero",
    "top-of-4g",
];

/// The `screen` command's first line when cellvisor found no ramfb.
const NO_SCREEN: &str = "no screen found";

/// What cellvisor logs, as the cell's fault, for a refused frame (hypervisor/src/core/screen.rs).
const REFUSAL_LOG: &str = "screen: framebuffer not inside the cell's RAM refused";

/// The malformed-queue attacks, run on both queues (`statusq <name>`, `eventq <name>`).
const QUEUE_ATTACKS: [&str; 7] = [
    "desc-table-outside-ram",
    "buffer-outside-ram",
    "buffer-in-other-cell",
    "length-max",
    "chain-loop",
    "next-out-of-range",
    "avail-jump",
];

/// Every step that must print `PASS <step>:`.
fn steps() -> Vec<String> {
    let mut steps = vec!["pl111-id".to_owned()];
    steps.extend(BAD_FRAMES.iter().map(|name| format!("pl111-base {name}")));
    steps.extend(
        [
            "pl111-valid-frame",
            "input-id",
            "input-handshake",
            "statusq-baseline",
        ]
        .map(String::from),
    );
    for queue in ["statusq", "eventq"] {
        steps.extend(QUEUE_ATTACKS.iter().map(|name| format!("{queue} {name}")));
    }
    steps.extend(
        [
            "eventq device-readable-buffer",
            "notify-flood",
            "register-sweep",
            "eventq-ready",
        ]
        .map(String::from),
    );
    steps
}

/// `line` as the console shows it for `cell`.
fn from(cell: &str, line: &str) -> String {
    format!("[{cell}] {line}")
}

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

/// Waits for `needle` at or after `since`; returns the match.
fn wait(machine: &mut Machine, needle: &str, since: usize) -> cellvisor_tests::Match {
    machine
        .find_after(needle, since, TIMEOUT)
        .unwrap_or_else(|error| fail(error))
}

/// Waits for the attacker's `ready for keys` at or after `since`, failing at once (with the
/// attacker's lines) if it powers off before.
fn wait_ready(machine: &mut Machine, since: usize) -> cellvisor_tests::Match {
    let deadline = Instant::now() + cellvisor_tests::scaled(TIMEOUT);
    loop {
        if let Some(ready) = machine.find(&from(ATTACKER, guest::READY), since) {
            return ready;
        }
        assert!(
            machine.find(&from(ATTACKER, guest::DONE), since).is_none() && machine.is_running(),
            "the attacker stopped before it was ready for keys:\n{}",
            lines_with(machine, &from(ATTACKER, "")).join("\n")
        );
        assert!(
            Instant::now() < deadline,
            "the attacker was not ready for keys in {TIMEOUT:?}:\n{}",
            lines_with(machine, &from(ATTACKER, "")).join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whole transcript lines containing `needle`.
fn lines_with(machine: &Machine, needle: &str) -> Vec<String> {
    cellvisor_tests::finished_lines(&machine.transcript())
        .into_iter()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The victim's heartbeat numbers on lines that end between `from_offset` and `to`.
fn victim_beats(machine: &Machine, from_offset: usize, to: usize) -> Vec<u64> {
    let transcript = machine.transcript();
    let prefix = from(VICTIM, guest::HEARTBEAT);
    let mut beats = Vec::new();
    let mut offset = 0;
    for line in transcript.split_inclusive('\n') {
        let end = offset + line.len();
        if offset >= from_offset
            && end <= to
            && line.ends_with('\n')
            && let Some(rest) = line.trim_start_matches('\r').strip_prefix(&prefix)
            && let Some(number) = rest.split('/').next().and_then(|n| n.parse().ok())
        {
            beats.push(number);
        }
        offset = end;
    }
    beats
}

/// A minimal QMP client (JSON by hand: the commands are fixed texts, the answers are only
/// checked for `"return"`).
struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to QEMU's QMP socket at `path` (QEMU creates it as it starts: retried), reads the
    /// greeting and leaves capabilities negotiation.
    fn connect(path: &PathBuf, timeout: Duration) -> Qmp {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => panic!("cannot connect to QMP at {}: {error}", path.display()),
            }
        };
        stream
            .set_read_timeout(Some(timeout))
            .expect("QMP read timeout");
        let writer = stream.try_clone().expect("QMP stream clone");
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message();
        assert!(greeting.contains("\"QMP\""), "QMP greeting: {greeting}");
        qmp.execute(r#"{"execute":"qmp_capabilities"}"#);
        qmp
    }

    /// One line of QMP output.
    fn read_message(&mut self) -> String {
        let mut line = String::new();
        let read = self
            .reader
            .read_line(&mut line)
            .unwrap_or_else(|error| panic!("reading QMP: {error}"));
        assert!(read > 0, "QMP closed the connection");
        line
    }

    /// Sends `command` and waits for its answer (skipping asynchronous events), which must be a
    /// `return`.
    fn execute(&mut self, command: &str) {
        self.writer
            .write_all(format!("{command}\n").as_bytes())
            .and_then(|()| self.writer.flush())
            .unwrap_or_else(|error| panic!("writing QMP: {error}"));
        loop {
            let answer = self.read_message();
            if answer.contains("\"event\"") {
                continue;
            }
            assert!(
                answer.contains("\"return\""),
                "QMP answered {command} with {answer}"
            );
            return;
        }
    }

    /// Presses or releases the key with QEMU qcode `key`.
    fn key(&mut self, key: &str, down: bool) {
        self.execute(&format!(
            r#"{{"execute":"input-send-event","arguments":{{"events":[{{"type":"key","data":{{"down":{down},"key":{{"type":"qcode","data":"{key}"}}}}}}]}}}}"#
        ));
    }

    /// Presses and releases `key`.
    fn tap(&mut self, key: &str) {
        self.key(key, true);
        self.key(key, false);
    }
}

/// Removes the QMP socket when the test ends.
struct SocketFile(PathBuf);

impl Drop for SocketFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `screen` at the management prompt (Ctrl-A m) and returns its lines, then leaves it.
fn screen(machine: &mut Machine) -> Vec<String> {
    let since = machine.mark();
    machine
        .send(&[CONSOLE_ESCAPE, b'm'])
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    let opened = wait(machine, "cellvisor management prompt", since).line_end;
    wait(machine, "cellvisor> ", opened);
    let since = machine.mark();
    machine
        .send_line("screen")
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    // The last of its lines; the others (and perhaps a guest's) come before it.
    let last = wait(machine, " frames refused", since);
    let text = machine.transcript();
    let lines = text
        .get(since..last.line_end)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    let since = machine.mark();
    machine
        .send_line("exit")
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    wait(machine, "exit", since);
    lines
}

/// The `N` of `...; N frames refused`.
fn refused_frames(line: &str) -> Option<u64> {
    line.strip_suffix(" frames refused")?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_hostile_cells_display_and_input_devices_cannot_reach_outside_it() {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| fail(error));
    let socket = SocketFile(std::env::temp_dir().join(format!(
        "cellvisor-display-hostile-{}.qmp",
        std::process::id()
    )));
    let _ = std::fs::remove_file(&socket.0);
    let mut config = QemuConfig::new(LAYOUT);
    config.extra_args = cellvisor_tests::DISPLAY_DEVICE_ARGS
        .iter()
        .map(|arg| arg.to_string())
        .collect();
    config.extra_args.extend([
        "-qmp".to_owned(),
        format!("unix:{},server=on,wait=off", socket.0.display()),
    ]);
    config.bundle = Some(bundle::with_bootargs(
        &artifacts,
        LAYOUT,
        &[(ATTACKER, ATTACKER_ARGS), (VICTIM, VICTIM_ARGS)],
        "",
    ));
    let mut machine =
        Machine::boot(&artifacts, &config).unwrap_or_else(|error| panic!("cannot boot: {error}"));
    let mut qmp = Qmp::connect(&socket.0, Duration::from_secs(60));

    // The attacks: every step passes, and the victim beats through them.
    let first = wait(&mut machine, &from(ATTACKER, guest::DISPLAY_ATTACK), 0);
    let ready = wait_ready(&mut machine, first.line_start);
    for step in steps() {
        let pass = format!("{}PASS {step}:", guest::DISPLAY_ATTACK);
        assert!(
            machine.find(&from(ATTACKER, &pass), 0).is_some(),
            "no {pass:?}; the attacker said:\n{}",
            lines_with(&machine, &from(ATTACKER, "")).join("\n")
        );
    }
    let failures = lines_with(&machine, guest::FAIL);
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    let programmed = wait(&mut machine, &from(ATTACKER, guest::BAD_FRAMES), 0);
    let bad_frames: u64 = programmed
        .line
        .split(guest::BAD_FRAMES)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count in {:?}", programmed.line));
    assert_eq!(bad_frames, BAD_FRAMES.len() as u64, "{}", programmed.line);
    wait(&mut machine, &from(ATTACKER, guest::VALID_FRAME), 0);
    let during = victim_beats(&machine, first.line_start, ready.line_start);
    assert!(
        !during.is_empty(),
        "the victim printed no heartbeat while the attacks ran"
    );
    let mut end = ready.line_end;
    let last = *during.last().unwrap_or(&0);
    for beat in last + 1..=last + BEATS_AFTER {
        end = wait(
            &mut machine,
            &from(VICTIM, &format!("{}{beat}/", guest::HEARTBEAT)),
            end,
        )
        .line_end;
    }

    // The screen refused every bad frame and shows the valid one.
    let screen = screen(&mut machine);
    assert!(
        !screen.iter().any(|line| line.contains(NO_SCREEN)),
        "cellvisor found no screen (ramfb through fw_cfg), so it checks no frame:\n{screen:#?}"
    );
    let refused = screen
        .iter()
        .find_map(|line| refused_frames(line.trim_end()))
        .unwrap_or_else(|| panic!("no refused count in the screen output:\n{screen:#?}"));
    assert!(
        refused >= bad_frames,
        "screen counted {refused} refused frames, the attacker programmed {bad_frames}:\n{screen:#?}"
    );
    let row = |cell: &str| {
        screen
            .iter()
            .find(|line| line.trim_start().starts_with(&format!("{cell} ")))
            .cloned()
            .unwrap_or_else(|| panic!("no row for {cell} in the screen output:\n{screen:#?}"))
    };
    let attacker_row = row(ATTACKER);
    assert!(
        attacker_row.contains("frame at") && attacker_row.contains("640x480, stride 2560"),
        "the attacker's valid frame is not its frame: {attacker_row}"
    );
    // cellvisor logged the refusals as the attacker's faults (rate-limited: at least the first).
    let refusals = lines_with(&machine, REFUSAL_LOG);
    assert!(
        refusals
            .iter()
            .any(|line| line.contains(&format!("cell {ATTACKER}: "))),
        "no refused frame logged for {ATTACKER}"
    );
    assert!(
        !refusals
            .iter()
            .any(|line| line.contains(&format!("cell {VICTIM}: "))),
        "a refused frame logged for {VICTIM}: {refusals:#?}"
    );
    assert!(
        row(VICTIM).contains("no picture"),
        "the victim has a frame: {}",
        row(VICTIM)
    );

    // Keys reach the focused attacker (twice `a`: 8 events with their SYN_REPORTs).
    let since = machine.mark();
    qmp.tap("a");
    let down = wait(
        &mut machine,
        &from(ATTACKER, guest::KEY_A_DOWN),
        ready.line_end,
    );
    wait(
        &mut machine,
        &from(ATTACKER, guest::KEY_A_UP),
        down.line_end,
    );
    qmp.tap("a");
    let done = wait(&mut machine, &from(ATTACKER, guest::GOT_EVENTS), since);
    assert!(
        lines_with(&machine, &from(ATTACKER, guest::NO_EVENTS)).is_empty(),
        "the attacker got no events"
    );
    assert!(
        lines_with(&machine, &from(VICTIM, guest::EVENT)).is_empty(),
        "the victim printed an event line"
    );
    let failures = lines_with(&machine, guest::FAIL);
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));

    // The victim still beats, cellvisor is alive and said nothing fatal.
    let last = victim_beats(&machine, 0, done.line_end)
        .into_iter()
        .max()
        .unwrap_or(0);
    let mut end = done.line_end;
    for beat in last + 1..=last + BEATS_AFTER {
        end = wait(
            &mut machine,
            &from(VICTIM, &format!("{}{beat}/", guest::HEARTBEAT)),
            end,
        )
        .line_end;
    }
    assert!(
        machine.is_running(),
        "QEMU exited:\n{}",
        machine.transcript()
    );
    for bad in ["cellvisor: fatal", "panic", "EL2 exception"] {
        let found = lines_with(&machine, bad);
        assert!(found.is_empty(), "cellvisor printed {bad:?}: {found:#?}");
    }
    let restarts = lines_with(&machine, &format!("cell {VICTIM}: entering vCPU 0")).len();
    assert_eq!(restarts, 1, "the victim restarted");
    let victim_faults: Vec<String> = lines_with(&machine, &format!("cell {VICTIM}: "))
        .into_iter()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    assert!(
        victim_faults.is_empty(),
        "cellvisor logged faults of the victim: {victim_faults:#?}"
    );
}

#[test]
fn the_refused_count_is_read_from_the_screen_line() {
    assert_eq!(
        refused_frames("input: 12 events forwarded, mean 3400 ns each; 5 frames refused"),
        Some(5)
    );
    assert_eq!(refused_frames("input: 0 events forwarded"), None);
    assert_eq!(
        steps().len(),
        1 + BAD_FRAMES.len() + 4 + 2 * QUEUE_ATTACKS.len() + 4
    );
}
