//! Isolation under time-sharing with a focused Rust guest: layout `test-guests-shared` runs two
//! test-guest cells, one vCPU each, on the one CPU of a `-smp 1` machine, each running the switch
//! probe (`test=switch`, guests/test-guest/src/switch.rs) with its own seed. The probe fills
//! V0-V31 and system registers (TLS, SP_EL0, CONTEXTIDR, FAR, MAIR, the physical timer's compare
//! value, CNTKCTL) with its seed's pattern, and checks them after every busy phase (about 20 ms
//! in one assembly block, during which the other cell runs now and then) and every idle phase
//! (a virtual timer 2 ms ahead awaited in WFI): a register that lost its value, or took the other
//! cell's, fails it, as does a timer that never fires.
//!
//! Personal is in front and never idles during its busy phases, so corporate's progress also shows
//! that a busy foreground cannot starve the background's budget. Both cells must report that
//! they were descheduled (a gap in their counter reads), so the checks really spanned switches.

use std::time::Duration;

use cellvisor_tests::{
    Artifacts, CONSOLE_ESCAPE, Machine, QemuConfig, cellvisor_warnings, disasters,
};

const LAYOUT: &str = "test-guests-shared";
const CELLS: [&str; 2] = ["personal", "corporate"];
/// Generous: 150 rounds of about 22 ms each, on a shared, slow machine.
const TIMEOUT: Duration = Duration::from_secs(300);
const PASS: &str = "test-guest: switch-probe PASS ";

fn boot() -> Machine {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| panic!("{error}"));
    let config = QemuConfig::new(LAYOUT);
    assert_eq!(config.smp, 1, "both cells share the one CPU");
    Machine::boot(&artifacts, &config).unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"))
}

/// Waits for both cells' PASS lines; returns each cell's `descheduled=` count.
fn both_pass(machine: &mut Machine) -> Vec<u64> {
    CELLS
        .iter()
        .map(|cell| {
            let found = machine
                .find_after(&format!("[{cell}] {PASS}"), 0, TIMEOUT)
                .unwrap_or_else(|error| panic!("{cell}: {error}"));
            found
                .line
                .split("descheduled=")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|count| count.parse().ok())
                .unwrap_or_else(|| panic!("no descheduled count in {:?}", found.line))
        })
        .collect()
}

fn assert_clean(machine: &Machine) {
    let transcript = machine.transcript();
    let fails: Vec<&str> = transcript
        .lines()
        .filter(|line| line.contains("FAIL"))
        .collect();
    assert!(fails.is_empty(), "{fails:#?}");
    let mut problems = disasters(&transcript);
    problems.extend(cellvisor_warnings(&transcript));
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn register_fp_and_timer_state_never_crosses_cells_that_share_a_cpu() {
    let mut machine = boot();
    let descheduled = both_pass(&mut machine);
    for (cell, count) in CELLS.iter().zip(&descheduled) {
        assert!(
            *count > 0,
            "{cell} was never descheduled: the probe did not span a switch"
        );
    }
    assert_clean(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn the_state_survives_a_focus_switch_mid_run() {
    let mut machine = boot();
    // Once both have passed round 50, corporate comes to the front (management prompt).
    for cell in CELLS {
        machine
            .find_after(
                &format!("[{cell}] test-guest: switch-probe round 50/"),
                0,
                TIMEOUT,
            )
            .unwrap_or_else(|error| panic!("{cell}: {error}"));
    }
    let since = machine.mark();
    machine
        .send(&[CONSOLE_ESCAPE, b'm'])
        .unwrap_or_else(|error| panic!("{error}"));
    machine
        .find_after("cellvisor> ", since, TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    machine
        .send_line("focus corporate")
        .unwrap_or_else(|error| panic!("{error}"));
    machine
        .find_after("cellvisor: left the management prompt", since, TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let descheduled = both_pass(&mut machine);
    assert!(
        descheduled.iter().all(|&count| count > 0),
        "{descheduled:?}"
    );
    assert_clean(&machine);
}
