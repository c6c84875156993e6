//! Foundation QEMU tests: cellvisor runs two test-guest cells (layout `test-guests`: *personal* on
//! CPUs 0-1, *corporate* on CPUs 2-3) and each guest reports its checks on the console.
//!
//! The guest's lines are defined in guests/test-guest/src/lines.rs; [`guest`] mirrors the ones
//! asserted here. Per-cell behaviour is chosen with bootargs (`test=heartbeat beats=N`), passed as
//! `override/<cell>/bootargs` entries in a copy of the guest bundle.
//!
//! The console may show a focused cell's unfinished line early and repeat it whole later, so a
//! transcript line can be a fragment: assertions look for the whole text they need, never at the
//! first line that starts like it.

use std::time::Duration;

use cellvisor_tests::bundle::{self, cpio};
use cellvisor_tests::{Artifacts, HarnessError, Machine, QemuConfig};

/// Layout with the two test-guest cells.
const LAYOUT: &str = "test-guests";
/// Generous: the machine running the tests is shared and slow.
const TIMEOUT: Duration = Duration::from_secs(60);
/// For `test=sgis`: its 20,000 round trips each need both of personal's vCPU threads scheduled,
/// which on a loaded host can take milliseconds apiece.
const SGI_TIMEOUT: Duration = Duration::from_secs(300);

/// Texts the test guest prints (guests/test-guest/src/lines.rs).
mod guest {
    pub const HELLO: &str = "test-guest: hello from vcpu 0";
    pub const PSCI_VERSION: &str = "test-guest: psci version ";
    pub const SMCCC_UNKNOWN_OK: &str = "test-guest: unknown smccc calls return NOT_SUPPORTED";
    pub const VCPU1_ONLINE: &str = "test-guest: vcpu 1 online";
    pub const SMP_OK: &str = "test-guest: smp ok (2 vcpus)";
    pub const VCPU1_OFF: &str = "test-guest: vcpu 1 off";
    pub const PSCI_ERRORS_OK: &str = "test-guest: psci errors ok";
    pub const ABORT_INJECTED: &str = "test-guest: abort injected";
    pub const ISOLATION_OK: &str = "test-guest: isolation ok";
    pub const HEARTBEAT: &str = "test-guest: heartbeat ";
    pub const DONE: &str = "test-guest: done, powering off";
    pub const SGI_SPIN: &str = "test-guest: sgi-spin ";
    pub const SGI_WFI: &str = "test-guest: sgi-wfi ";
    /// SGIs `test=sgis` sends per mode (guests/test-guest/src/sgis.rs `ROUNDS`).
    pub const SGI_ROUNDS: u32 = 10_000;
    pub const TIMER_LEVELS: &str = "test-guest: timer-levels ";
    pub const FAIL: &str = "test-guest: FAIL";
}

const CELLS: [&str; 2] = ["personal", "corporate"];

/// `line` as the console shows it for `cell`.
fn from(cell: &str, line: &str) -> String {
    format!("[{cell}] {line}")
}

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|error| panic!("{error}"))
}

/// Boots the `test-guests` layout; `bootargs` replaces the bootargs of the cells it names.
fn boot(bootargs: &[(&str, &str)]) -> Machine {
    let artifacts = artifacts();
    let mut config = QemuConfig::new(LAYOUT);
    if !bootargs.is_empty() {
        config.bundle = Some(bundle::with_bootargs(&artifacts, LAYOUT, bootargs, ""));
    }
    Machine::boot(&artifacts, &config).unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"))
}

/// Waits for `line` from `cell` at or after transcript offset `since`; returns where its line ends.
fn wait(machine: &mut Machine, cell: &str, line: &str, since: usize) -> usize {
    machine
        .find_after(&from(cell, line), since, TIMEOUT)
        .map(|found| found.line_end)
        .unwrap_or_else(|error: HarnessError| panic!("{error}"))
}

/// The transcript lines `cell`'s guest printed.
fn lines_of(machine: &Machine, cell: &str) -> Vec<String> {
    let prefix = from(cell, "");
    machine
        .transcript()
        .lines()
        .filter_map(|line| line.find(&prefix).map(|start| line[start..].to_owned()))
        .collect()
}

/// Fails the test if any guest reported a failed check.
fn assert_no_failures(machine: &Machine) {
    let transcript = machine.transcript();
    let failures: Vec<&str> = transcript
        .lines()
        .filter(|line| line.contains(guest::FAIL))
        .collect();
    assert!(
        failures.is_empty(),
        "the guests reported failures:\n{}",
        failures.join("\n")
    );
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn both_cells_boot_and_print() {
    let mut machine = boot(&[]);
    for cell in CELLS {
        // Vcpu 0 says hello with its MPIDR.
        wait(
            &mut machine,
            cell,
            &format!("{} (mpidr 0x", guest::HELLO),
            0,
        );
    }
    for cell in CELLS {
        wait(&mut machine, cell, guest::DONE, 0);
    }
    assert_no_failures(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn smp_via_psci_cpu_on() {
    let mut machine = boot(&[]);
    for cell in CELLS {
        let mut since = wait(&mut machine, cell, guest::PSCI_VERSION, 0);
        for line in [
            guest::SMCCC_UNKNOWN_OK,
            guest::VCPU1_ONLINE,
            guest::SMP_OK,
            guest::VCPU1_OFF,
            guest::PSCI_ERRORS_OK,
        ] {
            since = wait(&mut machine, cell, line, since);
        }
    }
    assert_no_failures(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn out_of_cell_access_is_injected_into_that_guest_only() {
    // Personal probes 0x9000_0000 (corporate's physical RAM) and just past its own RAM; corporate
    // touches nothing outside its cell and only prints heartbeats.
    let mut machine = boot(&[("corporate", "test=heartbeat beats=30")]);
    let since = wait(&mut machine, "personal", guest::ISOLATION_OK, 0);
    let aborts: Vec<String> = lines_of(&machine, "personal")
        .into_iter()
        .filter(|line| line.contains(guest::ABORT_INJECTED))
        .collect();
    for access in ["read", "write"] {
        let write = access == "write";
        let found = aborts.iter().any(|line| {
            let Some(esr) = hex_after(line, "esr=") else {
                return false;
            };
            // EC 0x25 (data abort, same EL), DFSC 0x10 (synchronous external abort), WnR.
            esr >> 26 == 0x25
                && esr & 0x3F == 0x10
                && (esr >> 6 & 1 == 1) == write
                && hex_after(line, "far=") == Some(0x9000_0000)
        });
        assert!(
            found,
            "no injected abort for the {access} of 0x90000000 in {aborts:#?}"
        );
    }
    wait(
        &mut machine,
        "corporate",
        &format!("{}30/30", guest::HEARTBEAT),
        0,
    );
    wait(&mut machine, "corporate", guest::DONE, 0);
    wait(&mut machine, "personal", guest::DONE, since);
    let corporate = lines_of(&machine, "corporate");
    let disturbed: Vec<&String> = corporate
        .iter()
        .filter(|line| line.contains("abort") || line.contains("exception"))
        .collect();
    assert!(
        disturbed.is_empty(),
        "corporate saw personal's abort: {disturbed:#?}"
    );
    let hellos = corporate
        .iter()
        .filter(|line| line.contains(guest::HELLO))
        .count();
    assert_eq!(hellos, 1, "corporate restarted: {corporate:#?}");
    assert_no_failures(&machine);
}

/// The hexadecimal number after `key` (`esr=0x96000010` -> 0x9600_0010).
fn hex_after(line: &str, key: &str) -> Option<u64> {
    let digits = line.split(key).nth(1)?.strip_prefix("0x")?;
    let end = digits
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], 16).ok()
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn system_off_of_one_cell_leaves_the_other_running() {
    // Corporate beats for a minute, long after personal has run its checks and powered off.
    let mut machine = boot(&[("corporate", "test=heartbeat beats=600")]);
    let personal_off = wait(&mut machine, "personal", guest::DONE, 0);
    let mut since = personal_off;
    for _ in 0..3 {
        since = wait(&mut machine, "corporate", guest::HEARTBEAT, since);
    }
    assert!(
        machine.is_running(),
        "QEMU exited while corporate was still running"
    );
    let transcript = machine.transcript();
    let personal_after_off: Vec<&str> = transcript
        .get(personal_off..)
        .unwrap_or_default()
        .lines()
        .filter(|line| line.contains(&from("personal", "test-guest:")))
        .collect();
    assert!(
        personal_after_off.is_empty(),
        "personal printed after SYSTEM_OFF: {personal_after_off:#?}"
    );
    assert_no_failures(&machine);
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn machine_powers_off_at_the_end() {
    let mut machine = boot(&[]);
    for cell in CELLS {
        wait(&mut machine, cell, guest::DONE, 0);
    }
    let status = machine
        .wait_exit(TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(status.success(), "QEMU exited with {status}");
    assert_no_failures(&machine);
}

/// No lost interrupts (issue 11): personal's vCPU 0 sends SGIs one at a time to vCPU 1, each only
/// after vCPU 1's handler counted the previous one, while vCPU 1 spins with IRQs unmasked (it
/// completes each SGI without exiting, so cellvisor must kick it for the next) and then while it
/// waits in WFI. Every SGI must arrive in both modes; no timing is checked.
#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn sgis_reach_a_spinning_and_an_idle_sibling() {
    let mut machine = boot(&[
        ("personal", "test=sgis"),
        ("corporate", "test=heartbeat beats=1 period_ms=1"),
    ]);
    machine
        .find_after(&from("personal", guest::DONE), 0, SGI_TIMEOUT)
        .unwrap_or_else(|error| panic!("{error}"));
    let lines = lines_of(&machine, "personal");
    for mode in [guest::SGI_SPIN, guest::SGI_WFI] {
        let expected = format!("{mode}{}/{}", guest::SGI_ROUNDS, guest::SGI_ROUNDS);
        assert!(
            lines.iter().any(|line| line.contains(&expected)),
            "no {expected:?} from personal; its lines:\n{}",
            lines.join("\n")
        );
    }
    assert_no_failures(&machine);
}

/// Level-triggered means level (issue 11): for the EL1 virtual timer (PPI 27) and the EL1
/// physical timer (PPI 30), personal lets the timer fire while the PPI cannot be taken (disabled
/// at its redistributor, or enabled with IRQs masked), then ends the timer's condition (disables
/// the timer, sets IMASK, or moves CVAL into the future): the PPI must stop reading pending in
/// GICR_ISPENDR0/ICPENDR0 and must not be taken once it can be, as on hardware and plain QEMU. A
/// control case per timer and hold keeps the condition and must be taken exactly once.
#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn level_timer_interrupts_follow_their_line() {
    let mut machine = boot(&[
        ("personal", "test=timer-levels"),
        ("corporate", "test=heartbeat beats=1 period_ms=1"),
    ]);
    wait(&mut machine, "personal", guest::DONE, 0);
    let lines = lines_of(&machine, "personal");
    let mut missing = Vec::new();
    for timer in ["virtual", "physical"] {
        for transition in ["still-due", "disable", "imask", "cval-future"] {
            for hold in ["ppi-off", "irqs-masked"] {
                let expected = format!("{}{timer} {transition} {hold} ok", guest::TIMER_LEVELS);
                if !lines.iter().any(|line| line.contains(&expected)) {
                    missing.push(expected);
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "personal did not pass {missing:#?}; its lines:\n{}",
        lines.join("\n")
    );
    let summary = format!("{}16/16 ok", guest::TIMER_LEVELS);
    assert!(
        lines.iter().any(|line| line.contains(&summary)),
        "no {summary:?} from personal; its lines:\n{}",
        lines.join("\n")
    );
    assert_no_failures(&machine);
}

#[test]
fn bundle_entries_survive_a_round_trip() {
    let entries = vec![
        ("test-guest".to_owned(), 0o100644, vec![1, 2, 3, 4, 5]),
        (
            "override/corporate/bootargs".to_owned(),
            0o100644,
            b"test=heartbeat".to_vec(),
        ),
    ];
    assert_eq!(cpio::entries(&cpio::archive(&entries)), Some(entries));
    assert_eq!(cpio::entries(b"not an archive"), None);
    assert_eq!(
        hex_after("esr=0x96000050 far=0x90000000", "far="),
        Some(0x9000_0000)
    );
}
