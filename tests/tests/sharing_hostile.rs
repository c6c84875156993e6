//! Time-sharing QEMU tests: layout `test-guests-shared` puts both test-guest cells' one vCPU on
//! physical CPU 0 (`-smp 1`), each running `test=switch` with a seed of its own
//! (guests/test-guest/src/switch.rs): V0-V31, FPCR, FPSR, the thread and context ID registers,
//! PAR_EL1, AFSR0_EL1, CNTKCTL_EL1, the EL1 physical timer and DBGBVR0_EL1 hold values derived
//! from the seed, and are compared with them over and over through busy phases (the vCPU never
//! idles, so it only loses the CPU when the scheduler takes it) and idle phases (WFI until the
//! virtual timer's interrupt: the vCPU yields). With different seeds in the two cells, any
//! register a vCPU switch fails to save or restore shows either as lost or as the other cell's.
//!
//! Each test proves: both cells print PASS and no FAIL; both were descheduled during busy phases
//! (`descheduled=` > 0: a gap of more than 1 ms between two reads of the virtual counter, so the
//! switches really happened while the registers were live); cellvisor logged no WARN or ERROR
//! and no disaster; the machine powers off once both cells did. No timing thresholds: the
//! guests' own waits are generous, the harness only waits for lines.
//!
//! The cell in front (personal at boot) never idles during its busy phases: the background cell
//! still finishing every round shows a busy foreground does not starve it. A third test proves
//! the comparison can fail: a cell told to expect another seed's values (`check_seed=`) reports
//! the first register, V0, with both values.

use std::time::Duration;

use cellvisor_tests::{
    Artifacts, HarnessError, Machine, QemuConfig, bundle, cellvisor_warnings, disasters,
    finished_lines,
};

/// The layout: both test-guest cells on CPU 0.
const LAYOUT: &str = "test-guests-shared";
/// Generous: the machine running the tests is shared and slow.
const TIMEOUT: Duration = Duration::from_secs(240);

const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];

/// Texts the test guest prints (guests/test-guest/src/lines.rs).
const HELLO: &str = "test-guest: hello from vcpu 0";
const SWITCH: &str = "test-guest: switch-probe: ";
const PASS: &str = "test-guest: switch-probe: PASS ";
const FAIL: &str = "test-guest: FAIL";

/// Texts cellvisor prints on its console.
const PROMPT_OPENED: &str = "cellvisor management prompt";
const PROMPT: &str = "cellvisor> ";

/// `line` as the console shows it for `cell`.
fn from(cell: &str, line: &str) -> String {
    format!("[{cell}] {line}")
}

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|error| panic!("{error}"))
}

/// Boots the layout; `bootargs` replaces a cell's (the layout's own when empty).
fn boot(bootargs: &[(&str, &str)]) -> Machine {
    let artifacts = artifacts();
    let mut config = QemuConfig::new(LAYOUT);
    assert_eq!(config.smp, 1, "both cells share the one CPU");
    if !bootargs.is_empty() {
        config.bundle = Some(bundle::with_bootargs(&artifacts, LAYOUT, bootargs, ""));
    }
    Machine::boot(&artifacts, &config).unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"))
}

/// Waits for `needle` at or after `since`; returns where its line ends.
fn wait(machine: &mut Machine, needle: &str, since: usize) -> usize {
    machine
        .find_after(needle, since, TIMEOUT)
        .map(|found| found.line_end)
        .unwrap_or_else(|error: HarnessError| panic!("{error}"))
}

/// Transcript lines containing `needle`.
fn lines_with(machine: &Machine, needle: &str) -> Vec<String> {
    finished_lines(&machine.transcript())
        .into_iter()
        .filter(|line| line.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// The number after `key=` in `line`.
fn field(line: &str, key: &str) -> Option<u64> {
    let prefix = format!("{key}=");
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(prefix.as_str()))
        .and_then(|value| value.parse().ok())
}

/// The PASS line `cell` printed (a whole one: the console may show a fragment early).
fn pass_line(machine: &Machine, cell: &str) -> String {
    lines_with(machine, &from(cell, PASS))
        .into_iter()
        .find(|line| field(line, "max_gap_us").is_some())
        .unwrap_or_else(|| panic!("{cell} printed no whole PASS line"))
}

/// Both cells passed `rounds` rounds, were descheduled during busy phases and compared more
/// often than once per phase; nothing failed, cellvisor warned of nothing, the machine powered
/// off by itself.
fn assert_both_pass(machine: &mut Machine, rounds: u64) {
    for cell in CELLS {
        if let Err(error) = machine.find_after(&from(cell, PASS), 0, TIMEOUT) {
            let failures = lines_with(machine, FAIL);
            panic!("{cell} did not pass: {failures:#?}\n{error}");
        }
    }
    machine
        .wait_exit(TIMEOUT)
        .unwrap_or_else(|error| panic!("QEMU did not power off: {error}"));
    let failures = lines_with(machine, FAIL);
    assert!(failures.is_empty(), "a probe failed: {failures:#?}");
    for cell in CELLS {
        let line = pass_line(machine, cell);
        eprintln!("{line}");
        assert_eq!(field(&line, "rounds"), Some(rounds), "{line}");
        let checks = field(&line, "checks").unwrap_or(0);
        // At least the idle phase's comparison and one of the busy phase's, every round.
        assert!(checks >= 2 * rounds, "too few comparisons: {line}");
        let descheduled = field(&line, "descheduled").unwrap_or(0);
        assert!(
            descheduled > 0,
            "{cell} never lost the CPU during a busy phase, so no switch was probed: {line}"
        );
        // One instance of each cell: no restart hid a failure.
        let entries = lines_with(machine, &format!("cell {cell}: entering vCPU 0")).len();
        assert_eq!(entries, 1, "{cell} restarted");
    }
    let warnings = cellvisor_warnings(&machine.transcript());
    assert!(warnings.is_empty(), "cellvisor warned: {warnings:#?}");
    let disasters = disasters(&machine.transcript());
    assert!(disasters.is_empty(), "{disasters:#?}");
    for bad in ["panic", "EL2 exception", "test-guest: exception"] {
        let found = lines_with(machine, bad);
        assert!(found.is_empty(), "{bad:?}: {found:#?}");
    }
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn register_fp_and_timer_state_never_crosses_cells_that_share_a_cpu() {
    let mut machine = boot(&[]);
    for cell in CELLS {
        wait(&mut machine, &from(cell, HELLO), 0);
    }
    for (cell, seed) in [(PERSONAL, 1), (CORPORATE, 2)] {
        wait(
            &mut machine,
            &from(
                cell,
                &format!("{SWITCH}seed={seed} check_seed={seed} rounds=200"),
            ),
            0,
        );
    }
    assert_both_pass(&mut machine, 200);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn moving_the_focus_mid_run_keeps_both_cells_registers() {
    // More rounds than the layout's, so that the focus surely moves while both still run.
    const ROUNDS: u64 = 400;
    let personal = format!("test=switch seed=1 rounds={ROUNDS}");
    let corporate = format!("test=switch seed=2 rounds={ROUNDS}");
    let mut machine = boot(&[(PERSONAL, &personal), (CORPORATE, &corporate)]);
    // Both are well into their rounds: corporate, behind, has done 50.
    let progress = format!("{SWITCH}round 50/{ROUNDS} ");
    for cell in CELLS {
        wait(&mut machine, &from(cell, &progress), 0);
    }
    let before = machine.mark();
    machine
        .send(&[cellvisor_tests::CONSOLE_ESCAPE, b'm'])
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    let opened = wait(&mut machine, PROMPT_OPENED, before);
    wait(&mut machine, PROMPT, opened);
    machine
        .send_line(&format!("focus {CORPORATE}"))
        .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
    let moved = wait(
        &mut machine,
        "cellvisor: console input now goes to cell 2",
        opened,
    );
    // The focus moved before either cell finished.
    for cell in CELLS {
        assert!(
            machine
                .find(&from(cell, PASS), 0)
                .is_none_or(|pass| pass.line_start > moved),
            "{cell} finished before the focus moved"
        );
    }
    // Progress of the new foreground and the new background after the move.
    let later = format!("{SWITCH}round {}/{ROUNDS} ", ROUNDS - 50);
    for cell in CELLS {
        wait(&mut machine, &from(cell, &later), moved);
    }
    assert_both_pass(&mut machine, ROUNDS);
}

/// The raw pattern word of `test=switch` (guests/test-guest/src/switch.rs `pattern`).
fn pattern(seed: u64, index: u64) -> u64 {
    seed.wrapping_mul(0x0101_0101_0101_0101) ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn the_probe_reports_a_register_that_holds_another_cells_value() {
    // Personal writes seed 1's values and expects seed 2's (corporate's): as if every register
    // had come back with the other cell's value. It must fail at the first one, V0.
    let mut machine = boot(&[(PERSONAL, "test=switch seed=1 check_seed=2 rounds=5")]);
    let v0 = |seed| u128::from(pattern(seed, 1)) << 64 | u128::from(pattern(seed, 0));
    let expected = format!(
        "{FAIL} switch-probe: V0 expected {:#x} got {:#x}",
        v0(2),
        v0(1)
    );
    wait(&mut machine, &from(PERSONAL, &expected), 0);
    // Corporate, unaffected, passes its rounds.
    wait(&mut machine, &from(CORPORATE, PASS), 0);
    machine
        .wait_exit(TIMEOUT)
        .unwrap_or_else(|error| panic!("QEMU did not power off: {error}"));
    let failures = lines_with(&machine, FAIL);
    assert!(
        failures
            .iter()
            .all(|line| line.contains(&from(PERSONAL, ""))),
        "only personal fails: {failures:#?}"
    );
    let warnings = cellvisor_warnings(&machine.transcript());
    assert!(warnings.is_empty(), "cellvisor warned: {warnings:#?}");
}
