//! Time-sharing with real Linux: layout `linux-shared` runs *personal* and *corporate*, two vCPUs
//! each, both on physical CPUs 0-1 of a `-smp 2` machine (a two-core phone). The tests check from
//! a shell inside each cell what the static layout's tests check (a shell, two CPUs, its memory,
//! timer ticks and IPIs on both CPUs, console focus, no reading the other cell's RAM), then that
//! the focus decides who gets the CPUs when both cells are busy, without starving the one behind
//! (its CPU time, read from the management prompt's `cells` table, keeps growing).
//!
//! No timing thresholds: the share checks compare the two cells' CPU time with each other (the
//! one in front must have had more than the one behind, and the one behind more than none),
//! which the scheduler's priorities decide, not the host's speed. The figures themselves are
//! `cargo xtask bench`'s.

use std::time::Duration;

use cellvisor_tests::{
    Artifacts, CONSOLE_ESCAPE, Machine, QemuConfig, cellvisor_warnings, disasters, shell,
};

const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];
const LAYOUT: &str = "linux-shared";

/// Corporate's RAM starts here (boards/qemu-virt, layout `linux-shared` keeps `linux`'s memory).
const CORPORATE_RAM: u64 = 0x9000_0000;
const CELL_RAM_KIB: u64 = 768 * 1024;
const MEMTOTAL_FLOOR_KIB: u64 = 600 * 1024;

/// How long the host waits between two reads of the `cells` table while both cells are busy: a
/// few scheduling periods (100 ms each), not a threshold.
const BUSY_WAIT: Duration = Duration::from_secs(4);

fn fail(error: impl std::fmt::Display) -> ! {
    panic!("{error}")
}

fn boot() -> Machine {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| fail(error));
    let config = QemuConfig::new(LAYOUT);
    assert_eq!(config.smp, 2, "linux-shared runs on a two-CPU machine");
    let mut machine = Machine::boot(&artifacts, &config)
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);
    machine
}

fn run_ok(machine: &mut Machine, cell: &str, command: &str) -> String {
    shell::run_ok(machine, cell, command, COMMAND_TIMEOUT)
}

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

/// One row of the `cells` table: the cell's CPU time in ms (column `cpu ms`).
#[derive(Debug, Clone, Copy)]
struct CpuTime {
    personal_ms: u64,
    corporate_ms: u64,
}

/// Opens the management prompt, reads `cells`, and leaves the prompt: through `then` (a `focus`
/// command, which leaves it) or `exit`.
fn cells_table(machine: &mut Machine, then: Option<&str>) -> CpuTime {
    let since = machine.mark();
    machine
        .send(&[CONSOLE_ESCAPE, b'm'])
        .unwrap_or_else(|error| fail(error));
    let opened = machine
        .find_after("cellvisor management prompt", since, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error))
        .line_end;
    machine
        .find_after("cellvisor> ", opened, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    let since = machine.mark();
    machine
        .send_line("cells")
        .unwrap_or_else(|error| fail(error));
    let header = machine
        .find_after("cell         state", since, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    assert!(
        header
            .line
            .trim_end()
            .ends_with("cpu ms    share   dropped"),
        "the cells table ends with `cpu ms`, `share` and `dropped`: {}",
        header.line
    );
    // A row's last three values are its CPU time, share and dropped bytes.
    let mut read = |cell: &str| -> u64 {
        let row = machine
            .find_after(&format!("{cell:<12} "), header.line_end, COMMAND_TIMEOUT)
            .unwrap_or_else(|error| fail(error));
        let values: Vec<&str> = row.line.split_whitespace().collect();
        let value = values
            .len()
            .checked_sub(3)
            .and_then(|index| values.get(index))
            .unwrap_or_else(|| panic!("no CPU time in {:?}", row.line));
        value
            .parse()
            .unwrap_or_else(|_| panic!("CPU time {value:?} of {cell} in {:?}", row.line))
    };
    let time = CpuTime {
        personal_ms: read(PERSONAL),
        corporate_ms: read(CORPORATE),
    };
    // `focus` leaves the prompt itself, with the focus on that cell; typing goes on only once
    // the prompt is gone.
    let since = machine.mark();
    machine
        .send_line(then.unwrap_or("exit"))
        .unwrap_or_else(|error| fail(error));
    machine
        .find_after(
            "cellvisor: left the management prompt",
            since,
            COMMAND_TIMEOUT,
        )
        .unwrap_or_else(|error| fail(error));
    time
}

/// Starts a counting loop on each of `cell`'s two CPUs, in the background; `cell` has the focus.
fn start_busy_loops(machine: &mut Machine, cell: &str) {
    let output = run_ok(
        machine,
        cell,
        "for c in 0 1; do taskset -c $c sh -c 'i=0; while :; do i=$((i+1)); done' >/dev/null 2>&1 & done; echo busy-started",
    );
    assert!(output.contains("busy-started"), "{cell}: {output}");
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn linux_cells_sharing_two_cpus_see_their_own_machine() {
    let mut machine = boot();
    shell::in_each_cell(&mut machine, &CELLS, COMMAND_TIMEOUT, |machine, cell| {
        let output = run_ok(machine, cell, "echo shell-in-$(hostname)");
        assert!(
            output
                .lines()
                .any(|line| line == format!("shell-in-{cell}")),
            "{cell}'s shell said:\n{output}"
        );
        assert_eq!(
            run_ok(machine, cell, "nproc").trim(),
            "2",
            "nproc in {cell}"
        );
        assert_eq!(
            run_ok(machine, cell, "cat /sys/devices/system/cpu/online").trim(),
            "0-1",
            "online CPUs in {cell}"
        );
        let meminfo = run_ok(machine, cell, "grep MemTotal /proc/meminfo");
        let kib = shell::mem_total_kib(&meminfo)
            .unwrap_or_else(|| panic!("no MemTotal in {cell}'s output:\n{meminfo}"));
        assert!(
            kib > MEMTOTAL_FLOOR_KIB && kib <= CELL_RAM_KIB,
            "{cell}: MemTotal {kib} kB"
        );
        shell::assert_sleep_advances_date(machine, cell, COMMAND_TIMEOUT);
        shell::assert_timer_and_ipis_on_both_cpus(machine, cell, COMMAND_TIMEOUT);
    });
    // Personal has the focus again: it cannot read corporate's RAM, though they share CPUs.
    let violation =
        shell::assert_foreign_read_aborts(&mut machine, PERSONAL, CORPORATE_RAM, COMMAND_TIMEOUT);
    shell::focus(&mut machine, &CELLS, CORPORATE, COMMAND_TIMEOUT);
    assert_eq!(
        run_ok(&mut machine, CORPORATE, "echo alive").trim(),
        "alive"
    );
    assert_clean_except(&machine, &[&violation]);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn the_focus_decides_who_gets_the_cpus_and_the_cell_behind_keeps_its_budget() {
    let mut machine = boot();
    // Both cells busy on both CPUs; personal (focused at boot) last, so the focus stays on it.
    shell::focus(&mut machine, &CELLS, CORPORATE, COMMAND_TIMEOUT);
    start_busy_loops(&mut machine, CORPORATE);
    shell::focus(&mut machine, &CELLS, PERSONAL, COMMAND_TIMEOUT);
    start_busy_loops(&mut machine, PERSONAL);

    let before = cells_table(&mut machine, None);
    std::thread::sleep(BUSY_WAIT);
    let after = cells_table(&mut machine, Some("focus corporate"));
    let personal = after.personal_ms.saturating_sub(before.personal_ms);
    let corporate = after.corporate_ms.saturating_sub(before.corporate_ms);
    assert!(
        personal > corporate,
        "personal in front ran {personal} ms, corporate behind {corporate} ms"
    );
    assert!(
        corporate > 0,
        "corporate behind got no CPU time while personal was busy: starved"
    );

    // The focus moved to corporate (`focus corporate` at the prompt): now it gets the CPUs.
    std::thread::sleep(BUSY_WAIT);
    let before = cells_table(&mut machine, None);
    std::thread::sleep(BUSY_WAIT);
    let after = cells_table(&mut machine, None);
    let personal = after.personal_ms.saturating_sub(before.personal_ms);
    let corporate = after.corporate_ms.saturating_sub(before.corporate_ms);
    assert!(
        corporate > personal,
        "corporate in front ran {corporate} ms, personal behind {personal} ms"
    );
    assert!(personal > 0, "personal behind got no CPU time: starved");

    // Both shells still answer while the other cell's loops run.
    assert_eq!(
        run_ok(&mut machine, CORPORATE, "echo alive").trim(),
        "alive"
    );
    shell::focus(&mut machine, &CELLS, PERSONAL, COMMAND_TIMEOUT);
    assert_eq!(run_ok(&mut machine, PERSONAL, "echo alive").trim(), "alive");
    assert_clean_except(&machine, &[]);
}
