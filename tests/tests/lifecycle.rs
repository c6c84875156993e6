//! Cell lifecycle QEMU tests: the management prompt (Ctrl-A m, then `cells`, `restart`, `wipe`,
//! `start`, ...) and a guest's own PSCI SYSTEM_RESET / SYSTEM_OFF act on one cell while the other
//! keeps running.
//!
//! Two layouts are used: `test-guests` (the Rust test guest in both cells, 64 MiB each, in
//! `test=heartbeat` mode so each prints numbered beats) where the point is that the other cell is
//! never disturbed, and `linux` (768 MiB each) where the point is a real OS: wiping and restarting
//! it, and `reboot -f` / `poweroff -f` inside it.
//!
//! What cellvisor prints for a command (hypervisor/src/manage.rs, cell.rs, logger.rs): the prompt
//! echoes what is typed; `restart CELL` answers `restart CELL: requested` and, once the cell's own
//! CPUs have done the work, logs `cell CELL: restarted`; `wipe CELL` logs
//! `cell CELL: wiped: <bytes> bytes scrubbed, verified zero`; refusals and parse errors are one
//! line followed by a fresh prompt.
//!
//! Guest output interleaves with the prompt, and the console may show a focused cell's unfinished
//! line early and repeat it whole later, so assertions look for whole texts, never at the first line
//! that starts like one.

use std::time::Duration;

use cellvisor_tests::bundle;
use cellvisor_tests::shell::{self, ready_banner, shell_prompt};
use cellvisor_tests::{Artifacts, HarnessError, Machine, QemuConfig, finished_lines};

/// Generous: the machine running the tests is shared and slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// For one command, prompt reaction or test-guest boot.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// A wipe scrubs and then re-reads all of a cell's RAM (768 MiB for Linux, under TCG).
const WIPE_TIMEOUT: Duration = Duration::from_secs(240);

const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
/// The cells in console order: Ctrl-A `1` focuses the first, Ctrl-A `2` the second.
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];

/// RAM of each cell in the `test-guests` layout (boards/qemu-virt): 64 MiB.
const TEST_GUEST_RAM_BYTES: u64 = 64 * 1024 * 1024;
/// RAM of each cell in the `linux` layout (boards/qemu-virt): 768 MiB.
const LINUX_RAM_BYTES: u64 = 768 * 1024 * 1024;

/// More beats than any test lasts: the heartbeat cells never power off by themselves.
const BEATS: u64 = 1_000_000;
/// Test-guest bootargs that make a cell beat "forever", ten times a second.
const HEARTBEAT_FOREVER: &str = "test=heartbeat beats=1000000 period_ms=100";
/// Beats personal must print past its last one before a step, to count as "keeps beating".
const BEATS_AFTER: u64 = 3;

/// Texts the test guest prints (guests/test-guest/src/lines.rs).
mod guest {
    pub const HELLO: &str = "test-guest: hello from vcpu 0";
    pub const HEARTBEAT: &str = "test-guest: heartbeat ";
    pub const FAIL: &str = "test-guest: FAIL";
    pub const RESIDUE_CLEAN: &str = "test-guest: residue clean: ";
    pub const RESIDUE_FILLED: &str = "test-guest: residue filled";
}

/// Texts cellvisor prints on its console.
mod cellvisor {
    /// Printed when Ctrl-A m opens the prompt.
    pub const PROMPT_OPENED: &str = "cellvisor management prompt: type help, exit to leave";
    /// The prompt itself.
    pub const PROMPT: &str = "cellvisor> ";
    /// Printed when the prompt is left with Ctrl-C or Ctrl-D.
    pub const PROMPT_LEFT: &str = "cellvisor: left the management prompt";
    /// First words of the `cells` table's header.
    pub const CELLS_HEADER: &str = "cell         state     vcpus  RAM MiB";
    /// `start` of a running cell.
    pub const NOT_OFF: &str = "refused: it is not off (stop it first, or use restart)";
    /// Logged when the verification after a wipe found non-zero bytes.
    pub const WIPE_FAILED: &str = "wipe verification FAILED";
}

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|error| fail(error))
}

/// `line` as the console shows it for `cell`.
fn from(cell: &str, line: &str) -> String {
    format!("[{cell}] {line}")
}

/// Writes `bytes` to the console, failing the test if QEMU's stdin is gone.
fn send(machine: &mut Machine, bytes: &[u8]) {
    machine
        .send(bytes)
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
}

/// Waits for `needle` at or after `since` within `timeout`; returns where its line ends.
fn wait(machine: &mut Machine, needle: &str, since: usize, timeout: Duration) -> usize {
    machine
        .find_after(needle, since, timeout)
        .map(|found| found.line_end)
        .unwrap_or_else(|error| fail(error))
}

/// Waits for `needle` at or after `since`; returns its whole line.
fn wait_line(machine: &mut Machine, needle: &str, since: usize, timeout: Duration) -> String {
    machine
        .find_after(needle, since, timeout)
        .map(|found| found.line)
        .unwrap_or_else(|error| fail(error))
}

/// Transcript lines containing `needle`, from offset `since` on.
fn lines_with(machine: &Machine, needle: &str, since: usize) -> Vec<String> {
    let transcript = machine.transcript();
    finished_lines(transcript.get(since..).unwrap_or_default())
        .into_iter()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The whole lines `cell` printed from offset `since` on, each from its `[cell] ` prefix.
///
/// The console may show the focused cell's unfinished line early, break it off with `…` and print
/// it whole later; such broken-off fragments are left out ([`finished_lines`]).
fn cell_lines(machine: &Machine, cell: &str, since: usize) -> Vec<String> {
    let transcript = machine.transcript();
    whole_lines(transcript.get(since..).unwrap_or_default(), cell)
}

/// [`cell_lines`] of a text.
fn whole_lines(text: &str, cell: &str) -> Vec<String> {
    let prefix = from(cell, "");
    finished_lines(text)
        .into_iter()
        .filter_map(|line| line.find(&prefix).map(|start| line[start..].to_owned()))
        .collect()
}

/// How many whole lines of `cell` from `since` on contain `text`.
fn count_cell_lines(machine: &Machine, cell: &str, text: &str, since: usize) -> usize {
    cell_lines(machine, cell, since)
        .iter()
        .filter(|line| line.contains(text))
        .count()
}

/// Lines reporting a kernel panic, a test-guest failure, or a fatal/panicking cellvisor.
fn assert_no_disasters(machine: &Machine) {
    let transcript = machine.transcript();
    let disasters: Vec<&str> = transcript
        .lines()
        .filter(|line| {
            line.contains("Kernel panic")
                || line.contains("cellvisor: fatal")
                || line.contains("panicked")
                || line.contains(guest::FAIL)
                || line.contains(cellvisor::WIPE_FAILED)
        })
        .collect();
    assert!(disasters.is_empty(), "{disasters:#?}");
}

// ---------------------------------------------------------------------------------------------
// The management prompt.

/// Opens the management prompt (Ctrl-A m) and waits for it.
fn open_prompt(machine: &mut Machine) {
    let since = machine.mark();
    send(machine, &[cellvisor_tests::CONSOLE_ESCAPE, b'm']);
    let opened = wait(machine, cellvisor::PROMPT_OPENED, since, COMMAND_TIMEOUT);
    wait(machine, cellvisor::PROMPT, opened, COMMAND_TIMEOUT);
}

/// Types `line` at the open prompt; returns the transcript offset from which its results count.
fn command(machine: &mut Machine, line: &str) -> usize {
    let since = machine.mark();
    machine
        .send_line(line)
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    since
}

/// Types a lifecycle command (`restart corporate`, ...) and waits for cellvisor to accept it
/// (`restart corporate: requested`); returns the offset from which its effects count.
fn lifecycle(machine: &mut Machine, verb: &str, cell: &str) -> usize {
    let since = command(machine, &format!("{verb} {cell}"));
    wait(
        machine,
        &format!("{verb} {cell}: requested"),
        since,
        COMMAND_TIMEOUT,
    );
    since
}

/// Leaves the prompt with `exit`. cellvisor closes the prompt without a message (unlike Ctrl-C,
/// which prints [`cellvisor::PROMPT_LEFT`]), so this waits for the echo of the submitted line; what
/// follows (a shell command answering, ...) shows that input reaches the cell again.
fn leave_prompt(machine: &mut Machine) {
    let since = command(machine, "exit");
    wait(machine, "exit\n", since, COMMAND_TIMEOUT);
}

/// One row of the `cells` table.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CellRow {
    state: String,
    /// `on/total`.
    vcpus: String,
    ram_mib: u64,
    restarts: u64,
    /// Console output bytes dropped (the last column).
    dropped: u64,
}

/// Runs `cells` at the open prompt and returns the row of each cell in [`CELLS`].
fn cells(machine: &mut Machine) -> Vec<(String, CellRow)> {
    let since = command(machine, "cells");
    let header = wait(machine, cellvisor::CELLS_HEADER, since, COMMAND_TIMEOUT);
    CELLS
        .iter()
        .map(|cell| {
            // A row starts with the name padded to 12 columns; guest lines say `[name] `.
            let needle = format!("{cell:<12} ");
            let line = wait_line(machine, &needle, header, COMMAND_TIMEOUT);
            let row = line
                .find(&needle)
                .and_then(|start| parse_row(&line[start..]))
                .unwrap_or_else(|| panic!("cannot read the cells row of {cell}: {line:?}"));
            ((*cell).to_owned(), row)
        })
        .collect()
}

/// `corporate    running   2/2        64        12  ...  0       1         -   -   0` → its
/// state, vCPUs, RAM, restarts and dropped console bytes.
fn parse_row(row: &str) -> Option<CellRow> {
    let words: Vec<&str> = row.split_whitespace().collect();
    // cell state vcpus ram uptime calls mmio sysreg wfi irq faults restarts refused cpu-ms share
    // dropped
    if words.len() != 16 {
        return None;
    }
    Some(CellRow {
        state: words[1].to_owned(),
        vcpus: words[2].to_owned(),
        ram_mib: words[3].parse().ok()?,
        restarts: words[11].parse().ok()?,
        dropped: words[15].parse().ok()?,
    })
}

/// The state of `cell` in a `cells` result.
fn state_of<'a>(rows: &'a [(String, CellRow)], cell: &str) -> &'a CellRow {
    rows.iter()
        .find(|(name, _)| name == cell)
        .map(|(_, row)| row)
        .unwrap_or_else(|| panic!("{cell} is not in the cells table: {rows:#?}"))
}

/// The number in `... cell corporate: wiped: 67108864 bytes scrubbed, verified zero`.
fn wiped_bytes(line: &str) -> Option<u64> {
    let rest = line.split(": wiped: ").nth(1)?;
    let digits = rest.strip_suffix(" bytes scrubbed, verified zero")?;
    digits.trim().parse().ok()
}

/// Wipes `cell` from the open prompt and checks that cellvisor verified all `ram_bytes` zero.
fn wipe_and_check(machine: &mut Machine, cell: &str, ram_bytes: u64) -> usize {
    let since = lifecycle(machine, "wipe", cell);
    let found = machine
        .find_after(&format!("cell {cell}: wipe"), since, WIPE_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    assert!(
        !found.line.contains(cellvisor::WIPE_FAILED),
        "the wipe of {cell} left non-zero bytes: {}",
        found.line
    );
    assert_eq!(
        wiped_bytes(&found.line),
        Some(ram_bytes),
        "the wipe of {cell} did not report all {ram_bytes} bytes of its RAM scrubbed and verified \
         zero: {:?}",
        found.line
    );
    found.line_end
}

// ---------------------------------------------------------------------------------------------
// Test guests in heartbeat mode.

/// Boots the `test-guests` layout with both cells beating "forever"; waits for both hellos.
fn boot_heartbeats() -> Machine {
    boot_test_guests(HEARTBEAT_FOREVER)
}

/// Boots the `test-guests` layout with each (cell, bootargs) of `bootargs`; waits for nothing.
fn boot_with_bootargs(bootargs: &[(&str, &str)]) -> Machine {
    let artifacts = artifacts();
    let config = QemuConfig {
        bundle: Some(bundle::with_bootargs(
            &artifacts,
            "test-guests",
            bootargs,
            "lifecycle-",
        )),
        ..QemuConfig::new("test-guests")
    };
    Machine::boot(&artifacts, &config).unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"))
}

/// Boots the `test-guests` layout with personal beating "forever" and corporate running
/// `corporate` (which must beat too); waits for both hellos and first beats.
fn boot_test_guests(corporate: &str) -> Machine {
    let mut machine = boot_with_bootargs(&[(PERSONAL, HEARTBEAT_FOREVER), (CORPORATE, corporate)]);
    for cell in CELLS {
        let hello = wait(&mut machine, &from(cell, guest::HELLO), 0, COMMAND_TIMEOUT);
        wait(
            &mut machine,
            &from(cell, &format!("{}1/{BEATS}", guest::HEARTBEAT)),
            hello,
            COMMAND_TIMEOUT,
        );
    }
    machine
}

/// The beat number of a whole heartbeat line of `cell` (`[cell] test-guest: heartbeat 12/1000000`);
/// `None` for other lines and for fragments of one.
fn beat_number(line: &str, cell: &str) -> Option<u64> {
    let prefix = from(cell, guest::HEARTBEAT);
    let rest = &line[line.find(&prefix)? + prefix.len()..];
    let (number, total) = rest.split_once('/')?;
    (total.trim_end() == BEATS.to_string())
        .then(|| number.parse().ok())
        .flatten()
}

/// Every whole heartbeat `cell` printed, in transcript order.
fn beats_of(machine: &Machine, cell: &str) -> Vec<u64> {
    cell_lines(machine, cell, 0)
        .iter()
        .filter_map(|line| beat_number(line, cell))
        .collect()
}

/// The highest beat `cell` printed before transcript offset `until`.
fn last_beat_before(machine: &Machine, cell: &str, until: usize) -> u64 {
    let transcript = machine.transcript();
    transcript
        .get(..until)
        .unwrap_or(&transcript)
        .lines()
        .filter_map(|line| beat_number(line, cell))
        .max()
        .unwrap_or(0)
}

/// `cell` keeps beating past offset `since`: it prints the [`BEATS_AFTER`] beats numbered after
/// the last one it printed before `since`. Returns where the last of them ends.
fn assert_keeps_beating(machine: &mut Machine, cell: &str, since: usize) -> usize {
    let last = last_beat_before(machine, cell, since);
    let mut end = 0;
    for beat in last + 1..=last + BEATS_AFTER {
        // A beat number is printed once per boot, and [`assert_never_restarted`] checks there was
        // one boot: search the whole transcript, so a beat whose line straddles `since` counts.
        end = end.max(wait(
            machine,
            &from(cell, &format!("{}{beat}/{BEATS}", guest::HEARTBEAT)),
            0,
            COMMAND_TIMEOUT,
        ));
    }
    end
}

/// `cell` never restarted: one hello, and its beat numbers only ever went up.
fn assert_never_restarted(machine: &Machine, cell: &str) {
    let hellos = count_cell_lines(machine, cell, guest::HELLO, 0);
    assert_eq!(hellos, 1, "{cell} said hello {hellos} times: it restarted");
    let beats = beats_of(machine, cell);
    let went_back: Vec<(u64, u64)> = beats
        .windows(2)
        .filter(|pair| pair[1] <= pair[0])
        .map(|pair| (pair[0], pair[1]))
        .collect();
    assert!(
        went_back.is_empty(),
        "{cell}'s heartbeat numbers went back (restart or repeated output): {went_back:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Linux cells.

/// Boots the `linux` layout and waits for both ready banners and personal's prompt.
fn boot_linux() -> Machine {
    let artifacts = artifacts();
    let mut machine = Machine::boot(&artifacts, &QemuConfig::new("linux"))
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);
    machine
}

/// Gives `cell` the console focus (Ctrl-A 1/2) and waits for its shell prompt.
fn focus(machine: &mut Machine, cell: &str) {
    shell::focus(machine, &CELLS, cell, COMMAND_TIMEOUT);
}

/// Presses Enter and waits for `cell`'s shell prompt after `since` (the focused cell answers).
fn await_shell(machine: &mut Machine, cell: &str, since: usize) {
    shell::await_shell(machine, cell, since, COMMAND_TIMEOUT);
}

/// Runs `command` in the focused `cell` and expects exit code 0; returns its output.
fn run_ok(machine: &mut Machine, cell: &str, command: &str) -> String {
    shell::run_ok(machine, cell, command, COMMAND_TIMEOUT)
}

/// A shell in the focused `cell` answers, and it is `cell`'s (its hostname).
fn assert_shell_answers(machine: &mut Machine, cell: &str) {
    let output = run_ok(machine, cell, "echo shell-in-$(hostname)");
    assert!(
        output
            .lines()
            .any(|line| line.trim() == format!("shell-in-{cell}")),
        "{cell}'s shell said:\n{output}"
    );
}

/// Seconds since boot in the focused `cell` (first field of `/proc/uptime`).
fn uptime(machine: &mut Machine, cell: &str) -> f64 {
    let output = run_ok(machine, cell, "cat /proc/uptime");
    output
        .lines()
        .find_map(|line| line.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no uptime in {cell}'s output:\n{output}"))
}

/// The uptime in a ready banner line (`... uptime=3.52`).
fn banner_uptime(line: &str) -> Option<f64> {
    line.split("uptime=")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn management_prompt_restarts_and_wipes_corporate_while_personal_keeps_beating() {
    let mut machine = boot_heartbeats();
    open_prompt(&mut machine);

    let rows = cells(&mut machine);
    for cell in CELLS {
        let row = state_of(&rows, cell);
        assert_eq!(row.state, "running", "{cell} before anything: {row:?}");
        assert_eq!(
            row.vcpus, "1/2",
            "{cell} runs one of its two vCPUs: {row:?}"
        );
        assert_eq!(row.ram_mib, TEST_GUEST_RAM_BYTES >> 20, "{cell}: {row:?}");
        assert_eq!(row.restarts, 0, "{cell}: {row:?}");
    }

    // Restart: corporate boots again from its images; personal beats on across it.
    let restart = lifecycle(&mut machine, "restart", CORPORATE);
    let restarted = wait(
        &mut machine,
        &format!("cell {CORPORATE}: restarted"),
        restart,
        COMMAND_TIMEOUT,
    );
    let hello = wait(
        &mut machine,
        &from(CORPORATE, guest::HELLO),
        restarted,
        COMMAND_TIMEOUT,
    );
    wait(
        &mut machine,
        &from(CORPORATE, &format!("{}1/{BEATS}", guest::HEARTBEAT)),
        hello,
        COMMAND_TIMEOUT,
    );
    assert_keeps_beating(&mut machine, PERSONAL, hello);
    let rows = cells(&mut machine);
    let corporate = state_of(&rows, CORPORATE);
    assert_eq!(corporate.state, "running", "after restart: {corporate:?}");
    assert_eq!(corporate.restarts, 1, "after restart: {corporate:?}");
    assert_eq!(state_of(&rows, PERSONAL).restarts, 0, "{rows:#?}");

    // Wipe: every byte of corporate's RAM scrubbed and verified zero, corporate left off.
    let wiped = wipe_and_check(&mut machine, CORPORATE, TEST_GUEST_RAM_BYTES);
    assert_keeps_beating(&mut machine, PERSONAL, wiped);
    let rows = cells(&mut machine);
    let corporate = state_of(&rows, CORPORATE);
    assert_eq!(corporate.state, "off", "after wipe: {rows:#?}");
    assert_eq!(corporate.vcpus, "0/2", "after wipe: {rows:#?}");
    assert_eq!(state_of(&rows, PERSONAL).state, "running", "{rows:#?}");
    let corporate_beats = lines_with(&machine, &from(CORPORATE, guest::HEARTBEAT), wiped);
    assert!(
        corporate_beats.is_empty(),
        "corporate beat after its wipe: {corporate_beats:#?}"
    );

    // Start: corporate boots again from its images.
    let start = lifecycle(&mut machine, "start", CORPORATE);
    let hello = wait(
        &mut machine,
        &from(CORPORATE, guest::HELLO),
        start,
        COMMAND_TIMEOUT,
    );
    wait(
        &mut machine,
        &from(CORPORATE, &format!("{}1/{BEATS}", guest::HEARTBEAT)),
        hello,
        COMMAND_TIMEOUT,
    );
    let rows = cells(&mut machine);
    assert_eq!(state_of(&rows, CORPORATE).state, "running", "{rows:#?}");
    assert_eq!(state_of(&rows, PERSONAL).state, "running", "{rows:#?}");
    leave_prompt(&mut machine);

    // Personal is still beating at the end, and never restarted.
    let end = machine.mark();
    assert_keeps_beating(&mut machine, PERSONAL, end);
    assert!(
        lines_with(&machine, &format!("cell {PERSONAL}: "), 0)
            .iter()
            .all(|line| !line.contains("restarted") && !line.contains("stopped")),
        "personal was restarted or stopped"
    );
    assert_never_restarted(&machine, PERSONAL);
    let corporate_hellos = count_cell_lines(&machine, CORPORATE, guest::HELLO, 0);
    assert_eq!(corporate_hellos, 3, "boot, restart and start");
    assert!(machine.is_running(), "QEMU exited");
    assert_no_disasters(&machine);
}

/// Waits for an instance of corporate in `test=residue` mode, started after `since`, to report
/// every register at its reset value and fill them; returns where its `filled` line ends.
fn assert_residue_clean(machine: &mut Machine, since: usize) -> usize {
    let clean = wait(
        machine,
        &from(CORPORATE, guest::RESIDUE_CLEAN),
        since,
        COMMAND_TIMEOUT,
    );
    let filled = wait(
        machine,
        &from(CORPORATE, guest::RESIDUE_FILLED),
        clean,
        COMMAND_TIMEOUT,
    );
    let residue = lines_with(machine, &from(CORPORATE, guest::FAIL), since);
    assert!(
        residue.is_empty(),
        "the new instance found the previous one's registers: {residue:#?}"
    );
    filled
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_wiped_cell_starts_with_no_register_of_its_previous_instance() {
    // Corporate checks its registers, then fills V0-V31, FPCR/FPSR, TPIDR_EL0/EL1, PAuth keys, a
    // breakpoint and a watchpoint, PMU counter 0 and more with a pattern (guests/test-guest
    // `residue`), and beats.
    let mut machine = boot_test_guests("test=residue beats=1000000 period_ms=100");
    assert_residue_clean(&mut machine, 0);
    open_prompt(&mut machine);
    wipe_and_check(&mut machine, CORPORATE, TEST_GUEST_RAM_BYTES);
    let start = lifecycle(&mut machine, "start", CORPORATE);
    let filled = assert_residue_clean(&mut machine, start);
    // A restart is a new instance too.
    let restart = lifecycle(&mut machine, "restart", CORPORATE);
    assert!(restart >= filled);
    assert_residue_clean(&mut machine, restart);
    leave_prompt(&mut machine);
    assert_eq!(
        count_cell_lines(&machine, CORPORATE, guest::RESIDUE_CLEAN, 0),
        3,
        "boot, start after the wipe, restart"
    );
    assert_never_restarted(&machine, PERSONAL);
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn wipe_of_a_linux_cell_reports_all_its_ram_zero_and_start_boots_it_again() {
    let mut machine = boot_linux();
    open_prompt(&mut machine);
    wipe_and_check(&mut machine, CORPORATE, LINUX_RAM_BYTES);
    let rows = cells(&mut machine);
    assert_eq!(state_of(&rows, CORPORATE).state, "off", "{rows:#?}");
    assert_eq!(state_of(&rows, PERSONAL).state, "running", "{rows:#?}");

    let start = lifecycle(&mut machine, "start", CORPORATE);
    wait(&mut machine, &ready_banner(CORPORATE), start, BOOT_TIMEOUT);
    leave_prompt(&mut machine);

    // Personal (which kept the focus) still answers, and so does the new corporate.
    let since = machine.mark();
    await_shell(&mut machine, PERSONAL, since);
    assert_shell_answers(&mut machine, PERSONAL);
    focus(&mut machine, CORPORATE);
    assert_shell_answers(&mut machine, CORPORATE);
    assert_eq!(
        count_cell_lines(&machine, PERSONAL, &ready_banner(PERSONAL), 0),
        1,
        "personal restarted"
    );
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn guest_reboot_restarts_only_that_cell() {
    let mut machine = boot_linux();
    focus(&mut machine, CORPORATE);
    let corporate_before = uptime(&mut machine, CORPORATE);

    // `reboot -f` in personal is PSCI SYSTEM_RESET: cellvisor restarts personal only.
    focus(&mut machine, PERSONAL);
    let reboot = machine.mark();
    machine
        .send_line("reboot -f")
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    wait(
        &mut machine,
        &format!("cell {PERSONAL}: restarted"),
        reboot,
        COMMAND_TIMEOUT,
    );
    let banner = machine
        .find_after(&ready_banner(PERSONAL), reboot, BOOT_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    let personal_uptime = banner_uptime(&banner.line)
        .unwrap_or_else(|| panic!("no uptime in personal's banner {:?}", banner.line));
    wait(
        &mut machine,
        &shell_prompt(PERSONAL),
        banner.line_end,
        BOOT_TIMEOUT,
    );
    assert_shell_answers(&mut machine, PERSONAL);

    focus(&mut machine, CORPORATE);
    let corporate_after = uptime(&mut machine, CORPORATE);
    assert!(
        corporate_after > corporate_before,
        "corporate's uptime went from {corporate_before} s to {corporate_after} s: it restarted"
    );
    // Personal's new kernel started after corporate's first reading, so its uptime at its banner
    // fits in what corporate counted meanwhile (both count the same physical clock).
    assert!(
        personal_uptime < corporate_after - corporate_before,
        "personal's banner says uptime={personal_uptime} s, but only {} s passed in corporate \
         since before the reboot: personal's clock did not start again",
        corporate_after - corporate_before
    );
    assert_eq!(
        count_cell_lines(&machine, CORPORATE, &ready_banner(CORPORATE), 0),
        1,
        "corporate printed a second ready banner"
    );
    assert_eq!(
        count_cell_lines(&machine, PERSONAL, &ready_banner(PERSONAL), 0),
        2,
        "personal booted twice"
    );
    let corporate_lifecycle: Vec<String> = lines_with(&machine, &format!("cell {CORPORATE}: "), 0)
        .into_iter()
        .filter(|line| line.contains("restarted") || line.contains("SYSTEM_"))
        .collect();
    assert!(
        corporate_lifecycle.is_empty(),
        "corporate was touched: {corporate_lifecycle:#?}"
    );
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn refusals_are_clear() {
    let mut machine = boot_heartbeats();
    open_prompt(&mut machine);

    // Each refusal is one line, directly followed by a fresh prompt.
    for (line, answer) in [
        (
            "start personal".to_owned(),
            format!("start personal: {}", cellvisor::NOT_OFF),
        ),
        (
            "restart nosuchcell".to_owned(),
            "no cell \"nosuchcell\": type cells".to_owned(),
        ),
        (
            "focus nosuchcell".to_owned(),
            "no cell \"nosuchcell\": type cells".to_owned(),
        ),
        (
            "frobnicate corporate".to_owned(),
            "unknown command \"frobnicate\": type help".to_owned(),
        ),
        (
            "wipe".to_owned(),
            "wipe needs a cell name: wipe CELL".to_owned(),
        ),
        (
            "stop personal now".to_owned(),
            "too many words for stop: type help".to_owned(),
        ),
    ] {
        let since = command(&mut machine, &line);
        let found = machine
            .find_after(
                &format!("{answer}\n{}", cellvisor::PROMPT),
                since,
                COMMAND_TIMEOUT,
            )
            .unwrap_or_else(|error| fail(error));
        assert!(
            found.line.ends_with(&answer),
            "{line:?} got {:?}",
            found.line
        );
    }

    // Nothing happened to either cell.
    let rows = cells(&mut machine);
    for cell in CELLS {
        let row = state_of(&rows, cell);
        assert_eq!(row.state, "running", "{cell}: {rows:#?}");
        assert_eq!(row.restarts, 0, "{cell}: {rows:#?}");
    }
    // Ctrl-C leaves the prompt and says so.
    let since = machine.mark();
    send(&mut machine, &[0x03]);
    wait(&mut machine, cellvisor::PROMPT_LEFT, since, COMMAND_TIMEOUT);
    let after = machine.mark();
    for cell in CELLS {
        assert_keeps_beating(&mut machine, cell, after);
        assert_never_restarted(&machine, cell);
    }
    let lifecycle_lines = lines_with(&machine, ": requested", 0);
    assert!(
        lifecycle_lines.is_empty(),
        "a refused command was carried out: {lifecycle_lines:#?}"
    );
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn poweroff_of_both_cells_powers_the_machine_off() {
    let mut machine = boot_linux();
    // `poweroff -f` is PSCI SYSTEM_OFF: it stops the caller's cell only.
    let since = machine.mark();
    machine
        .send_line("poweroff -f")
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    wait(
        &mut machine,
        &format!("cell {PERSONAL}: SYSTEM_OFF"),
        since,
        COMMAND_TIMEOUT,
    );
    focus(&mut machine, CORPORATE);
    assert_shell_answers(&mut machine, CORPORATE);
    assert!(machine.is_running(), "QEMU exited with one cell still on");

    let since = machine.mark();
    machine
        .send_line("poweroff -f")
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    wait(
        &mut machine,
        &format!("cell {CORPORATE}: SYSTEM_OFF"),
        since,
        COMMAND_TIMEOUT,
    );
    let status = machine
        .wait_exit(COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    assert!(status.success(), "QEMU exited with {status}");
    assert!(
        machine
            .find("all cells are off: powering off", since)
            .is_some(),
        "cellvisor did not say why it powered off"
    );
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_wipe_typed_while_a_cell_resets_in_a_loop_wins() {
    // Personal calls SYSTEM_RESET at every boot (the hostile suite's `system-reset` attack), so
    // its home CPU 0, which also takes console input, spends its time scrubbing and reloading
    // personal's RAM. Corporate beats.
    let mut machine = boot_with_bootargs(&[
        (PERSONAL, "test=attack name=system-reset"),
        (CORPORATE, HEARTBEAT_FOREVER),
    ]);
    let resetting = from(PERSONAL, "test-guest: attack system-reset: resetting");
    let mut since = 0;
    for _ in 0..3 {
        since = wait(&mut machine, &resetting, since, COMMAND_TIMEOUT);
    }

    // The prompt opens and the wipe is taken while the loop goes on.
    let typed = std::time::Instant::now();
    let before_prompt = machine.mark();
    open_prompt(&mut machine);
    let prompt_shown = machine
        .find(cellvisor::PROMPT, before_prompt)
        .and_then(|found| machine.arrived_at(found.line_start));
    let wipe_sent = std::time::Instant::now();
    let request = command(&mut machine, &format!("wipe {PERSONAL}"));
    let requested = machine
        .find_after(
            &format!("wipe {PERSONAL}: requested"),
            request,
            COMMAND_TIMEOUT,
        )
        .unwrap_or_else(|error| fail(error));
    let requested_at = machine.arrived_at(requested.line_end - 1);
    let restarts_before_wipe =
        lines_with(&machine, &format!("cell {PERSONAL}: restarted"), 0).len();
    let wiped = machine
        .find_after(&format!("cell {PERSONAL}: wipe"), request, WIPE_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    assert_eq!(
        wiped_bytes(&wiped.line),
        Some(TEST_GUEST_RAM_BYTES),
        "the wipe scrubbed and verified all of personal's RAM: {}",
        wiped.line
    );

    // The wipe won: personal is off, and no later reset or restart brought it back.
    let end = assert_keeps_beating(&mut machine, CORPORATE, wiped.line_end);
    assert_keeps_beating(&mut machine, CORPORATE, end);
    let rows = cells(&mut machine);
    let personal = state_of(&rows, PERSONAL);
    assert_eq!(personal.state, "off", "after the wipe: {rows:#?}");
    assert_eq!(personal.vcpus, "0/2", "after the wipe: {rows:#?}");
    assert!(personal.restarts >= 2, "personal looped: {personal:?}");
    assert_eq!(state_of(&rows, CORPORATE).state, "running", "{rows:#?}");
    assert_eq!(state_of(&rows, CORPORATE).restarts, 0, "{rows:#?}");
    let after: Vec<String> = lines_with(&machine, &from(PERSONAL, "test-guest:"), wiped.line_end)
        .into_iter()
        .chain(lines_with(
            &machine,
            &format!("cell {PERSONAL}: restarted"),
            wiped.line_end,
        ))
        .collect();
    assert!(
        after.is_empty(),
        "personal ran on after its wipe: {after:#?}"
    );
    leave_prompt(&mut machine);
    assert_never_restarted(&machine, CORPORATE);
    assert_no_disasters(&machine);

    // Figures (reported, not asserted): how long the prompt and the command took to answer while
    // personal looped.
    let since = |from: std::time::Instant, to: Option<std::time::Instant>| {
        to.map_or(f64::NAN, |to| {
            to.saturating_duration_since(from).as_secs_f64() * 1000.0
        })
    };
    println!(
        "reset-loop figures: prompt shown {:.0} ms after Ctrl-A m, `wipe {PERSONAL}: requested` \
         {:.0} ms after the command was sent; personal had restarted {restarts_before_wipe} \
         times, {} in all",
        since(typed, prompt_shown),
        since(wipe_sent, requested_at),
        personal.restarts,
    );
}

#[test]
fn console_texts_parse() {
    assert_eq!(
        wiped_bytes(
            "cellvisor: cpu2 INFO  cell corporate: wiped: 67108864 bytes scrubbed, verified zero"
        ),
        Some(67_108_864)
    );
    assert_eq!(
        wiped_bytes(
            "cellvisor: cpu2 ERROR cell corporate: wipe verification FAILED: 4 of 8 bytes are not zero"
        ),
        None
    );
    let row = "corporate    off       0/2       64         -  12        34        0         5         6         0       1         -        -         -       4096";
    assert_eq!(
        parse_row(row),
        Some(CellRow {
            state: "off".into(),
            vcpus: "0/2".into(),
            ram_mib: 64,
            restarts: 1,
            dropped: 4096,
        })
    );
    assert_eq!(parse_row("corporate    running   1/2"), None);
    assert_eq!(
        beat_number("[personal] test-guest: heartbeat 12/1000000", PERSONAL),
        Some(12)
    );
    // A fragment, another cell's beat, or another total is not a whole beat of this run.
    assert_eq!(
        beat_number("[personal] test-guest: heartbeat 12/100", PERSONAL),
        None
    );
    assert_eq!(
        beat_number("[corporate] test-guest: heartbeat 12/1000000", PERSONAL),
        None
    );
    assert_eq!(
        beat_number("[personal] test-guest: heartbeat 1", PERSONAL),
        None
    );
    assert_eq!(
        banner_uptime("[personal] cellvisor-ready: personal uptime=3.52"),
        Some(3.52)
    );
    let text = "[personal] test-guest: hello from vcpu 0 (mpidr …\n\
                [corporate] test-guest: hello from vcpu 0 (mpidr 0x80000000)\n\
                [personal] test-guest: hello from vcpu 0 (mpidr 0x80000000)\n\
                cellvisor> [personal] test-guest: heartbeat 1/1000000\n";
    assert_eq!(
        whole_lines(text, PERSONAL),
        [
            "[personal] test-guest: hello from vcpu 0 (mpidr 0x80000000)",
            "[personal] test-guest: heartbeat 1/1000000"
        ]
    );
    assert_eq!(
        HEARTBEAT_FOREVER,
        format!("test=heartbeat beats={BEATS} period_ms=100")
    );
}
