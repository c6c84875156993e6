//! PSCI attacks: CPU_ON races and bad arguments, SYSTEM_RESET and SYSTEM_OFF from another vCPU.

use crate::psci;
use cellvisor_guest_support::println;
use core::sync::atomic::{AtomicU32, Ordering};

use super::{
    CELLVISOR_VERSION, CONTEXT_TAG, JOB_PSCI_RACE, JOB_SYSTEM_OFF, ON_PENDING, PREFIX, RAM_END,
    RESET_MAGIC, RESET_MARKER, Verdict,
};

/// vCPU 1 start/stop generations for `psci-cpu-on`.
static SECONDARY_STARTS: AtomicU32 = AtomicU32::new(0);
static SECONDARY_RELEASES: AtomicU32 = AtomicU32::new(0);
static SECONDARY_ERRORS: AtomicU32 = AtomicU32::new(0);

pub(super) fn start_vcpu1(job: u64) -> i64 {
    psci::cpu_on(
        1,
        crate::entry::secondary_entry as *const () as u64,
        CONTEXT_TAG | job,
    )
}

pub(super) fn psci_cpu_on() -> Verdict {
    let entry = crate::entry::secondary_entry as *const () as u64;
    let mut ok = true;
    let mut check = |what: &str, got: i64, expected: &[i64]| {
        if !expected.contains(&got) {
            println!("{PREFIX}psci-cpu-on: {what} returned {got}, expected {expected:?}");
            ok = false;
        }
    };
    // Targets outside the cell.
    for target in [
        2u64,
        3,
        0x100,
        0x1_0000,
        0xFF_0000_0000,
        0xFFFF_FFFF,
        u64::MAX,
    ] {
        check(
            "cpu_on(foreign target)",
            psci::cpu_on(target, entry, 0),
            &[psci::INVALID_PARAMETERS],
        );
        check(
            "affinity_info(foreign target)",
            psci::affinity_info(target),
            &[psci::INVALID_PARAMETERS],
        );
    }
    // Entry points outside the cell's RAM (vCPU 1 is off, so the entry is the only fault).
    for bad_entry in [
        0u64,
        0x9000_0000,
        0x6000_0000,
        RAM_END,
        0x4020_0000_0000,
        u64::MAX,
    ] {
        check(
            "cpu_on(1, entry outside RAM)",
            psci::cpu_on(1, bad_entry, 0),
            &[psci::INVALID_ADDRESS],
        );
    }
    check(
        "affinity_info(1, level 1)",
        psci::hvc(psci::AFFINITY_INFO, 1, 1, 0),
        &[psci::INVALID_PARAMETERS],
    );
    check(
        "affinity_info(1, level 255)",
        psci::hvc(psci::AFFINITY_INFO, 1, 255, 0),
        &[psci::INVALID_PARAMETERS],
    );
    // Start vCPU 1 twice at once, let both vCPUs hammer CPU_ON, stop it; five times over.
    for cycle in 1..=5u32 {
        let first = start_vcpu1(JOB_PSCI_RACE);
        let second = start_vcpu1(JOB_PSCI_RACE);
        check("first cpu_on(1)", first, &[psci::SUCCESS]);
        check("second cpu_on(1)", second, &[psci::ALREADY_ON, ON_PENDING]);
        if first != psci::SUCCESS {
            break;
        }
        if !crate::timer::wait_until(10_000, || SECONDARY_STARTS.load(Ordering::SeqCst) == cycle) {
            println!("{PREFIX}psci-cpu-on: vcpu 1 did not start in cycle {cycle}");
            return Err("vcpu 1 did not start");
        }
        for _ in 0..300 {
            check(
                "cpu_on(0) from vcpu 0",
                psci::cpu_on(0, entry, 0),
                &[psci::ALREADY_ON],
            );
            check(
                "cpu_on(1) while on",
                psci::cpu_on(1, entry, 0),
                &[psci::ALREADY_ON, ON_PENDING],
            );
            check(
                "cpu_on(2) from vcpu 0",
                psci::cpu_on(2, entry, 0),
                &[psci::INVALID_PARAMETERS],
            );
        }
        SECONDARY_RELEASES.store(cycle, Ordering::SeqCst);
        if !crate::timer::wait_until(10_000, || psci::affinity_info(1) == psci::AFFINITY_OFF) {
            return Err("vcpu 1 did not turn off");
        }
    }
    let errors = SECONDARY_ERRORS.load(Ordering::SeqCst);
    if errors > 0 {
        println!("{PREFIX}psci-cpu-on: vcpu 1 saw {errors} wrong results");
        ok = false;
    }
    if ok {
        Ok("foreign targets -2, bad entries -9, racing CPU_ONs one SUCCESS")
    } else {
        Err("a PSCI call returned the wrong code")
    }
}

/// vCPU 1's side of `psci-cpu-on`: hammer CPU_ON until vCPU 0 releases this generation.
pub(super) fn psci_race_secondary() -> ! {
    let entry = crate::entry::secondary_entry as *const () as u64;
    let generation = SECONDARY_STARTS.fetch_add(1, Ordering::SeqCst) + 1;
    while SECONDARY_RELEASES.load(Ordering::SeqCst) < generation {
        let results = [
            psci::cpu_on(0, entry, 0) == psci::ALREADY_ON,
            psci::cpu_on(1, entry, 0) == psci::ALREADY_ON,
            psci::cpu_on(3, entry, 0) == psci::INVALID_PARAMETERS,
            psci::affinity_info(0) == 0,
        ];
        if results.contains(&false) {
            SECONDARY_ERRORS.fetch_add(1, Ordering::SeqCst);
        }
    }
    psci::cpu_off()
}

/// Resets the cell with PSCI SYSTEM_RESET, every boot: the test counts the boots and ends the run.
/// A marker written before each reset shows whether cellvisor scrubbed the cell's RAM.
pub(super) fn system_reset() -> Verdict {
    let marker = RESET_MARKER as *mut u64;
    // SAFETY: RESET_MARKER is RAM of this cell below the device tree and above everything the
    // guest image uses; nothing else reads or writes it.
    let (magic, count) = unsafe { (marker.read_volatile(), marker.add(1).read_volatile()) };
    if magic == RESET_MAGIC {
        println!(
            "{PREFIX}system-reset: marker of boot {count} survived the reset (RAM not scrubbed)"
        );
    } else {
        println!(
            "{PREFIX}system-reset: no marker from a previous boot (RAM scrubbed or first boot)"
        );
    }
    let count = if magic == RESET_MAGIC { count + 1 } else { 1 };
    // SAFETY: as above.
    unsafe {
        marker.write_volatile(RESET_MAGIC);
        marker.add(1).write_volatile(count);
    }
    println!("{PREFIX}system-reset: resetting");
    let result = psci::hvc(0x8400_0009, 0, 0, 0);
    println!("{PREFIX}system-reset: SYSTEM_RESET returned {result}");
    Err("SYSTEM_RESET returned")
}

pub(super) fn system_off_from_vcpu1() -> ! {
    println!("{PREFIX}system-off: vcpu 1 calls SYSTEM_OFF while vcpu 0 floods HVCs");
    let started = start_vcpu1(JOB_SYSTEM_OFF);
    if started != psci::SUCCESS {
        println!("{PREFIX}system-off: FAIL cpu_on(1) returned {started}");
        psci::park();
    }
    let deadline = crate::timer::Instant::now().after_ms(20_000);
    while !deadline.has_passed() {
        psci::hvc(CELLVISOR_VERSION, 0, 0, 0);
    }
    println!("{PREFIX}system-off: FAIL vcpu 0 still runs 20 s after SYSTEM_OFF");
    psci::park()
}
