//! The `raspi4b` board on QEMU's Raspberry Pi 4 Model B, as `cargo xtask run --board raspi4b` boots
//! it: Debian's unmodified `bcm2711-rpi-4-b.dtb` (`-dtb`), the GIC-400 behind `/soc`'s bus
//! `ranges`, CPUs 1-3 held in QEMU's spin table (no PSCI firmware), the PL011 console named by
//! `cellvisor.console=serial0`. One boot, then from a shell in each cell: the GIC the kernel found,
//! nproc, MemTotal, the timer, IPIs on both CPUs; that personal cannot read corporate's RAM; and
//! that once both cells power themselves off, cellvisor halts (the board cannot switch itself
//! off), leaving QEMU for the test to end.

use std::time::Duration;

use cellvisor_tests::{
    Artifacts, HarnessError, Machine, QemuConfig, cellvisor_warnings, disasters, shell,
};

const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
const PERSONAL: &str = "personal";
const CORPORATE: &str = "corporate";
const CELLS: [&str; 2] = [PERSONAL, CORPORATE];
/// Corporate's RAM starts here (boards/raspi4b, layout `linux`).
const CORPORATE_RAM: u64 = 0x2600_0000;
const CELL_RAM_KIB: u64 = 352 * 1024;
const MEMTOTAL_FLOOR_KIB: u64 = 250 * 1024;
/// What cellvisor says when the last cell is off on a board without PSCI SYSTEM_OFF.
const HALTED: &str = "all cells are off: halted (this board cannot switch itself off)";

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn linux_cells_run_on_the_raspberry_pi_4_and_the_board_halts_when_both_are_off() {
    let artifacts = Artifacts::from_env().unwrap_or_else(|error| fail(error));
    let config = QemuConfig::raspi4b("linux");
    let mut machine = Machine::boot_named(&artifacts, &config, "raspi4b-linux")
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    shell::wait_ready(&mut machine, &CELLS, PERSONAL, BOOT_TIMEOUT);
    assert!(
        machine.find(" on board raspi4b: 4 CPUs", 0).is_some(),
        "cellvisor did not start on raspi4b"
    );

    shell::in_each_cell(&mut machine, &CELLS, COMMAND_TIMEOUT, |machine, cell| {
        shell::assert_gicv2_linux_cell(
            machine,
            cell,
            "intc@ff841000",
            MEMTOTAL_FLOOR_KIB + 1..=CELL_RAM_KIB,
            COMMAND_TIMEOUT,
        );
    });
    // Isolation: personal's read of corporate's RAM aborts, and only personal is blamed.
    let violation =
        shell::assert_foreign_read_aborts(&mut machine, PERSONAL, CORPORATE_RAM, COMMAND_TIMEOUT);

    // Both cells power off (PSCI SYSTEM_OFF to cellvisor): the board's setting is to halt.
    for cell in CELLS {
        shell::focus(&mut machine, &CELLS, cell, COMMAND_TIMEOUT);
        let since = machine.mark();
        machine
            .send_line("poweroff -f")
            .unwrap_or_else(|error| panic!("cannot write to QEMU: {error}"));
        machine
            .find_after(&format!("cell {cell}: SYSTEM_OFF"), since, COMMAND_TIMEOUT)
            .unwrap_or_else(|error| fail(error));
    }
    machine
        .find_after(HALTED, 0, COMMAND_TIMEOUT)
        .unwrap_or_else(|error| fail(error));
    assert!(
        machine.is_running(),
        "QEMU exited, but a halted raspi4b stays on until its user ends it"
    );
    machine.kill();

    let transcript = machine.transcript();
    let mut problems = disasters(&transcript);
    problems.extend(
        cellvisor_warnings(&transcript)
            .into_iter()
            .filter(|line| !line.contains(&violation)),
    );
    assert!(problems.is_empty(), "{problems:#?}");
}
