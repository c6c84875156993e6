//! The default layout on QEMU virt with a GICv2 (`-M virt,gic-version=2,virtualization=on`: QEMU's
//! GIC-400 model with the virtualization extensions), as `cargo xtask run --gic 2` boots it. Each
//! cell's unmodified Debian kernel drives an `arm,gic-400` whose distributor cellvisor emulates and
//! whose CPU interface is the hardware GICV frame. One boot, then from a shell in each cell: the
//! GIC the kernel found, nproc, MemTotal, the timer, IPIs on both CPUs, and that personal cannot
//! read corporate's RAM.

use std::time::Duration;

use cellvisor_tests::{
    Artifacts, GicVersion, HarnessError, Machine, QemuConfig, cellvisor_warnings, disasters, shell,
};

const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];
/// Corporate's RAM starts here (boards/qemu-virt, layout `linux`).
const CORPORATE_RAM: u64 = 0x9000_0000;
const CELL_RAM_KIB: u64 = 768 * 1024;
const MEMTOTAL_FLOOR_KIB: u64 = 600 * 1024;

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn linux_cells_run_on_a_gicv2() {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| fail(error));
    let config = QemuConfig {
        gic: GicVersion::V2,
        ..QemuConfig::default()
    };
    let mut machine = Machine::boot_named(&artifacts, &config, "gicv2-linux")
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);

    shell::in_each_cell(&mut machine, &CELLS, COMMAND_TIMEOUT, |machine, cell| {
        shell::assert_gicv2_linux_cell(
            machine,
            cell,
            "intc@8000000",
            MEMTOTAL_FLOOR_KIB + 1..=CELL_RAM_KIB,
            COMMAND_TIMEOUT,
        );
        shell::assert_sleep_advances_date(machine, cell, COMMAND_TIMEOUT);
    });

    // Isolation: personal's read of corporate's RAM aborts, and only personal is blamed.
    let violation =
        shell::assert_foreign_read_aborts(&mut machine, PERSONAL, CORPORATE_RAM, COMMAND_TIMEOUT);

    let transcript = machine.transcript();
    let mut problems = disasters(&transcript);
    problems.extend(
        cellvisor_warnings(&transcript)
            .into_iter()
            .filter(|line| !line.contains(&violation)),
    );
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn a_gicv2_without_virtualization_is_refused_in_one_line_on_the_console_and_powers_off() {
    // The platform DT as a GICv2 without its GICH and GICV frames: cellvisor cannot run a cell
    // there, and says so on the console that DT names before powering off through its PSCI.
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| fail(error));
    let dtb = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../hypervisor/tests/data/qemu-virt-gicv2-without-virtualization.dtb");
    let config = QemuConfig {
        gic: GicVersion::V2,
        extra_args: vec!["-dtb".to_owned(), dtb.to_string_lossy().into_owned()],
        ..QemuConfig::default()
    };
    let mut machine = Machine::boot_named(&artifacts, &config, "gicv2-without-virtualization")
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    let line = machine
        .wait_for("cellvisor: fatal:", BOOT_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    assert!(
        line.contains("platform GICv2 has no virtualization extensions"),
        "the fatal line says what is wrong: {line}"
    );
    let status = machine
        .wait_exit(BOOT_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    assert!(status.success(), "QEMU exited with {status}");
    assert_eq!(
        machine
            .transcript()
            .lines()
            .filter(|line| line.contains("cellvisor: fatal"))
            .count(),
        1
    );
}
