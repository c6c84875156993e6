//! Linux QEMU tests: cellvisor boots the default layout `linux` (*personal* Linux on CPUs 0-1 with
//! 768 MiB at 0x6000_0000, *corporate* Linux on CPUs 2-3 with 768 MiB physically at 0x9000_0000,
//! seen at 0x4000_0000), and the tests
//! check from a shell inside each cell what the cell sees: CPUs, memory, timer and IPIs, the console
//! focus switch, and that personal cannot read corporate's memory.
//!
//! Commands are written to the console in one burst, as a paste would be ([`Machine::shell`]): a
//! command line is longer than the vUART's 16-byte receive FIFO, so this also relies on cellvisor
//! holding back input the guest has not read yet (`a_pasted_line_reaches_the_cell_whole`).
//!
//! The console may show the focused cell's unfinished line (the prompt) early and repeat it later, so
//! assertions look for whole texts, never at the first line that starts like one.
//!
//! Every test also fails on a warning or error cellvisor logged (`cellvisor: cpu<N> WARN ...`)
//! that the test did not provoke: nothing an unmodified Debian kernel does while it boots and
//! runs these shells may make cellvisor complain.

use std::time::Duration;

use cellvisor_tests::{
    Artifacts, HarnessError, Machine, QemuConfig, cellvisor_warnings, disasters, shell,
};

/// Generous: the machine running the tests is shared and slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// For one shell command or one console reaction.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
/// The cells in console order: Ctrl-A `1` focuses the first, Ctrl-A `2` the second.
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];

/// Corporate's RAM starts here (boards/qemu-virt, layout `linux`).
const CORPORATE_RAM: u64 = 0x9000_0000;
/// Each cell's configured RAM.
const CELL_RAM_KIB: u64 = 768 * 1024;
/// MemTotal must be above this: 768 MiB minus what the kernel reserves for itself.
const MEMTOTAL_FLOOR_KIB: u64 = 600 * 1024;

/// Exit status of a shell command killed by SIGBUS (128 + 7).
const SIGBUS_STATUS: i32 = 135;

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

/// Boots the `linux` layout and waits until both cells have printed their ready banner and the
/// focused cell (personal) has shown its prompt.
fn boot() -> Machine {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| fail(error));
    let mut machine = Machine::boot(&artifacts, &QemuConfig::default())
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);
    machine
}

/// Gives `cell` the console focus and waits until cellvisor confirms it and the cell's prompt is on
/// the terminal (an Enter makes the shell print a fresh one).
fn focus(machine: &mut Machine, cell: &str) {
    shell::focus(machine, &CELLS, cell, COMMAND_TIMEOUT);
}

/// Runs `command` in `cell`, which has the focus; returns its output and exit code.
fn run(machine: &mut Machine, cell: &str, command: &str) -> (String, i32) {
    machine
        .shell(cell, command, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error))
}

/// Runs `command` in `cell` and expects exit code 0; returns its output.
fn run_ok(machine: &mut Machine, cell: &str, command: &str) -> String {
    shell::run_ok(machine, cell, command, COMMAND_TIMEOUT)
}

/// Calls `check` with each cell's name after giving that cell the focus, personal first; leaves the
/// focus on personal.
fn in_each_cell(machine: &mut Machine, check: impl FnMut(&mut Machine, &str)) {
    shell::in_each_cell(machine, &CELLS, COMMAND_TIMEOUT, check);
}

/// Fails on a kernel panic or oops, a fatal cellvisor error, or a warning or error cellvisor
/// logged, except warnings containing one of `provoked` (what the test made a cell do on purpose).
fn assert_clean_except(machine: &Machine, provoked: &[&str]) {
    let transcript = machine.transcript();
    let mut problems = disasters(&transcript);
    problems.extend(
        cellvisor_warnings(&transcript)
            .into_iter()
            .filter(|line| !provoked.iter().any(|text| line.contains(text))),
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

fn assert_no_disasters(machine: &Machine) {
    assert_clean_except(machine, &[]);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn linux_cells_boot_to_a_shell() {
    let mut machine = boot();
    // A shell answers in each cell: the banner alone could come from init before the shell starts.
    in_each_cell(&mut machine, |machine, cell| {
        let output = run_ok(machine, cell, "echo shell-in-$(hostname)");
        assert!(
            output
                .lines()
                .any(|line| line == format!("shell-in-{cell}")),
            "{cell}'s shell said:\n{output}"
        );
    });
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn each_cell_sees_two_cpus() {
    let mut machine = boot();
    in_each_cell(&mut machine, |machine, cell| {
        let output = run_ok(machine, cell, "nproc");
        assert_eq!(output.trim(), "2", "nproc in {cell}");
        let online = run_ok(machine, cell, "cat /sys/devices/system/cpu/online");
        assert_eq!(online.trim(), "0-1", "online CPUs in {cell}");
    });
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn each_cell_sees_its_configured_memory() {
    let mut machine = boot();
    in_each_cell(&mut machine, |machine, cell| {
        let output = run_ok(machine, cell, "grep MemTotal /proc/meminfo");
        let kib = shell::mem_total_kib(&output)
            .unwrap_or_else(|| panic!("no MemTotal in {cell}'s output:\n{output}"));
        assert!(
            kib > MEMTOTAL_FLOOR_KIB && kib <= CELL_RAM_KIB,
            "{cell}: MemTotal {kib} kB is not in ({MEMTOTAL_FLOOR_KIB}, {CELL_RAM_KIB}] kB"
        );
    });
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn timer_interrupts_work() {
    let mut machine = boot();
    in_each_cell(&mut machine, |machine, cell| {
        shell::assert_sleep_advances_date(machine, cell, COMMAND_TIMEOUT);
    });
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn both_cpus_take_interrupts() {
    let mut machine = boot();
    in_each_cell(&mut machine, |machine, cell| {
        // Keep both CPUs busy for a moment so each takes timer ticks and IPIs of its own.
        shell::assert_timer_and_ipis_on_both_cpus(machine, cell, COMMAND_TIMEOUT);
    });
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn console_focus_switch_delivers_input_to_the_right_cell() {
    let mut machine = boot();
    let transcript_after = |machine: &Machine, since: usize| -> String {
        machine
            .transcript()
            .get(since..)
            .unwrap_or_default()
            .to_owned()
    };
    // Personal has the focus after boot. The marker's printed form (`focus-personal-<n>`) differs
    // from its typed form, so only the shell's output matches.
    for (cell, other) in [(PERSONAL, CORPORATE), (CORPORATE, PERSONAL)] {
        if cell != PERSONAL {
            focus(&mut machine, cell);
        }
        let since = machine.mark();
        machine
            .send_line(&format!("echo focus-{cell}-$$-$RANDOM''"))
            .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
        let found = machine
            .find_after(&format!("[{cell}] focus-{cell}-"), since, COMMAND_TIMEOUT)
            .unwrap_or_else(|error| fail(error));
        let after = transcript_after(&machine, since);
        let strays: Vec<&str> = after
            .lines()
            .filter(|line| line.contains(&format!("[{other}]")) && line.contains("focus-"))
            .collect();
        assert!(
            strays.is_empty(),
            "input typed with focus on {cell} reached {other}: {strays:#?}"
        );
        // The marker is the shell's output: a number follows the cell name.
        let marker = found.line.split("focus-").nth(1).unwrap_or_default();
        assert!(
            marker.starts_with(&format!("{cell}-"))
                && marker[cell.len() + 1..]
                    .split('-')
                    .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit())),
            "unexpected marker line {:?}",
            found.line
        );
    }
    // And back: Ctrl-A 1 returns the input to personal.
    focus(&mut machine, PERSONAL);
    let output = run_ok(&mut machine, PERSONAL, "hostname");
    assert_eq!(output.trim(), PERSONAL);
    assert_no_disasters(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn personal_cannot_read_corporate_memory() {
    let mut machine = boot();
    let address = format!("{CORPORATE_RAM:#x}");

    // Personal reads corporate's first RAM word through /dev/mem: the access must abort.
    let since = machine.mark();
    let (output, code) = run(&mut machine, PERSONAL, &format!("devmem {address}"));
    assert!(
        code == SIGBUS_STATUS || output.contains("Bus error"),
        "devmem {address} in personal did not die of SIGBUS (exit {code}):\n{output}"
    );
    assert!(
        !output.lines().any(|line| line.trim().starts_with("0x")),
        "devmem {address} in personal returned data:\n{output}"
    );
    let violation = format!("cell {PERSONAL}: access outside the cell ({address})");
    machine
        .find_after(&violation, since, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error));

    // One access, one log line.
    let since_loop = machine.mark();
    let logged_once = machine
        .transcript()
        .get(since..since_loop)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("cellvisor:") && line.contains(&violation))
        .count();
    assert_eq!(
        logged_once, 1,
        "one access from personal was logged {logged_once} times"
    );

    // A guest retrying in a loop must not flood the console: the log is rate-limited.
    let attempts = 40;
    let (output, code) = run(
        &mut machine,
        PERSONAL,
        &format!(
            "i=0; n=0; while [ $i -lt {attempts} ]; do i=$((i+1)); devmem {address} >/dev/null 2>&1 || n=$((n+1)); done; echo aborted=$n"
        ),
    );
    assert_eq!(code, 0, "loop failed:\n{output}");
    assert!(
        output
            .lines()
            .any(|line| line == format!("aborted={attempts}")),
        "not every retry aborted:\n{output}"
    );
    let logged = machine
        .transcript()
        .get(since_loop..)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains("cellvisor:") && line.contains(&violation))
        .count();
    assert!(
        logged < attempts,
        "cellvisor logged the violation {logged} times for {attempts} retries (not rate-limited)"
    );

    // Personal is still alive, and so is corporate, which answers at its console.
    assert_eq!(run_ok(&mut machine, PERSONAL, "echo alive").trim(), "alive");
    focus(&mut machine, CORPORATE);
    assert_eq!(
        run_ok(&mut machine, CORPORATE, "echo alive").trim(),
        "alive"
    );
    let (uptime, _) = run(&mut machine, CORPORATE, "cat /proc/uptime");
    assert!(!uptime.trim().is_empty(), "corporate has no uptime");
    let corporate_faults: Vec<String> = machine
        .transcript()
        .lines()
        .filter(|line| line.contains(&format!("cell {CORPORATE}:")) && line.contains("WARN"))
        .map(str::to_owned)
        .collect();
    assert!(
        corporate_faults.is_empty(),
        "corporate was blamed for personal's access: {corporate_faults:#?}"
    );
    focus(&mut machine, PERSONAL);
    assert_clean_except(&machine, &[&violation]);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_pasted_line_reaches_the_cell_whole() {
    let mut machine = boot();
    // A 100-character word in a command written in one burst, as a paste or a fast serial line
    // delivers it.
    let payload = "x".repeat(100);
    let (output, code) = machine
        .shell(
            PERSONAL,
            &format!("v={payload}; echo length=${{#v}}"),
            COMMAND_TIMEOUT,
        )
        .unwrap_or_else(|error| fail(error));
    assert_eq!(code, 0, "{output}");
    assert!(
        output.lines().any(|line| line == "length=100"),
        "the cell did not receive every byte:\n{output}"
    );
    assert_no_disasters(&machine);
}
