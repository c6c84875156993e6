//! The per-physical-CPU run loop: wait until the CPU's vCPU is started, enter the guest, hand
//! each exit to its one handler, repeat; the cell's home CPU also carries out its lifecycle.
//!
//! Written against [`VcpuHardware`]: the aarch64 glue implements it with real registers and the
//! host tests with `arch::fake::FakeCpu`, so the loop tested on the host is the one that runs.
#![forbid(unsafe_code)]

use crate::board::AllCellsOff;
use crate::core::cell::{Cell, ExitReason};
use crate::core::exit::{self, Exiting, Next, RunningVcpu};
use crate::core::hardware::{ExitKind, GuestRegs, VcpuHardware};
use crate::core::irq;
use crate::core::lifecycle::{self, AfterStop, CellState};
use crate::core::runtime::Runtime;
use crate::core::timeshare::SharedCpu;
use crate::mem::addr::GuestPhysAddr;

/// What one pass of the run loop did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The CPU runs no vCPU, or its vCPU is not started: it waited for an interrupt.
    Idle,
    /// The home CPU carried out a stop, restart, start or wipe of its cell.
    Lifecycle(AfterStop),
    /// The vCPU ran its guest until it left (CPU_OFF, or its cell stopping).
    Ran,
}

/// The endless loop of the physical CPU `hardware` drives: its one vCPU's, or the run queue's of
/// a CPU the layout time-shares ([`crate::core::timeshare`]).
pub fn run<H: VcpuHardware>(runtime: &Runtime, hardware: &mut H) -> ! {
    if runtime.is_time_shared(hardware.cpu())
        && let Some(mut shared) = SharedCpu::new(runtime, hardware)
    {
        loop {
            shared.step(runtime, hardware);
        }
    }
    loop {
        step(runtime, hardware);
    }
}

/// One pass of the run loop of a CPU that runs one vCPU.
pub fn step<H: VcpuHardware>(runtime: &Runtime, hardware: &mut H) -> Step {
    let cpu = hardware.cpu();
    let Some((cell, vcpu)) = runtime
        .owner_of_cpu(cpu)
        .and_then(|(cell, vcpu)| Some((runtime.cells.get(cell)?, vcpu)))
    else {
        irq::idle(runtime, hardware);
        return Step::Idle;
    };
    if let (true, CellState::Stopping(after)) = (cell.is_home(cpu), cell.state()) {
        carry_out_stop(runtime, cell, after, hardware);
        return Step::Lifecycle(after);
    }
    let Some((entry, context)) = cell.take_start(vcpu) else {
        irq::idle(runtime, hardware);
        return Step::Idle;
    };
    run_guest(runtime, cell, vcpu, entry, context, hardware);
    Step::Ran
}

/// The home CPU's part of a stop, restart, start or wipe of `cell`, then what the board does once
/// every cell is off.
pub(crate) fn carry_out_stop<H: VcpuHardware>(
    runtime: &Runtime,
    cell: &Cell,
    after: AfterStop,
    hardware: &mut H,
) {
    lifecycle::complete_stop(runtime, cell, after, hardware);
    if matches!(after, AfterStop::Restart | AfterStop::Start) {
        hardware.sync_guest_memory(cell);
    }
    if runtime.all_cells_off() {
        match runtime.board.when_all_cells_off {
            AllCellsOff::PowerOff => {
                log::info!("all cells are off: powering off");
                hardware.power_off();
            }
            AllCellsOff::Halt => {
                log::info!("all cells are off: halted (this board cannot switch itself off)");
                hardware.halt();
            }
            AllCellsOff::KeepRunning => {}
        }
    }
}

/// Logs the entry of a cell's vCPU 0 (a boot of the cell) with the counter value.
pub(crate) fn log_boot_entry<H: VcpuHardware>(cell: &Cell, vcpu: usize, hardware: &H) {
    if vcpu == 0 {
        let (counter, frequency) = hardware.counter();
        log::info!(
            "cell {}: entering vCPU 0 at counter {counter} ({frequency} Hz)",
            cell.name()
        );
    }
}

/// Runs `vcpu` of `cell` from `entry` (x0 = `context`) until it leaves its guest.
fn run_guest<H: VcpuHardware>(
    runtime: &Runtime,
    cell: &Cell,
    vcpu: usize,
    entry: GuestPhysAddr,
    context: u64,
    hardware: &mut H,
) {
    cell.set_in_guest(vcpu, true);
    hardware.prepare(cell, vcpu);
    log_boot_entry(cell, vcpu, hardware);
    let mut running = RunningVcpu {
        at: Exiting {
            runtime,
            cell,
            vcpu,
            time_shared: false,
        },
        regs: GuestRegs::boot(entry, context),
        holds_list_registers: false,
    };
    // On a CPU that is not time-shared nothing yields or is preempted: this returns once the vCPU
    // leaves its guest.
    run_vcpu(&mut running, hardware);
    hardware.quiesce();
    cell.set_in_guest(vcpu, false);
}

/// Why [`run_vcpu`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stopped {
    /// The vCPU left its guest (CPU_OFF, its cell stopping).
    Left,
    /// It waits for an interrupt (WFI, time-shared CPUs only).
    Waits,
    /// A physical interrupt came on a time-shared CPU: its run queue decides again.
    Interrupted,
}

/// Enters the guest of `running` and handles its exits, until it leaves its guest or, on a
/// time-shared CPU (`running.at.time_shared`), until it waits for an interrupt or a physical
/// interrupt makes the run queue decide again. The caller set the vCPU in guest and loaded its
/// state.
pub(crate) fn run_vcpu<H: VcpuHardware>(
    running: &mut RunningVcpu<'_>,
    hardware: &mut H,
) -> Stopped {
    let (runtime, cell, vcpu) = (running.at.runtime, running.at.cell, running.at.vcpu);
    while cell.state() == CellState::Running {
        // Only this CPU fills `vcpu`'s list registers: if they hold nothing the vGIC filled, the
        // sync after the exit would find nothing to read back, so it (and its lock) is skipped.
        let flushed = cell
            .devices
            .vgic()
            .flush(vcpu, hardware.list_registers())
            .unwrap_or_default();
        running.holds_list_registers = flushed.holds_list_registers;
        irq::kick_vcpus(cell, flushed.kick, hardware);
        // The arch glue hands every exit to `fast::exit` first and returns only the ones it
        // leaves to the run loop; the fast path may fill list registers (and says so).
        let kind = hardware.enter(running);
        if running.holds_list_registers {
            // An SPI this vCPU held but now goes elsewhere: that vCPU must look again.
            let kick = cell.devices.vgic().sync(vcpu, hardware.list_registers());
            irq::kick_vcpus(cell, kick, hardware);
        }
        let next = match kind {
            ExitKind::Synchronous => {
                let syndrome = hardware.syndrome();
                exit::synchronous(&running.at, &mut running.regs, syndrome, hardware)
            }
            ExitKind::Irq | ExitKind::Fiq => {
                cell.count_exit(ExitReason::Interrupt);
                irq::handle_interrupts(runtime, hardware);
                if running.at.time_shared {
                    return Stopped::Interrupted;
                }
                Next::Resume
            }
            ExitKind::Leave => Next::Leave,
            ExitKind::SError => {
                // A physical SError while the guest ran is the guest's (an external abort of its
                // own access, routed to EL2 by HCR_EL2.AMO): it gets it back as a virtual SError,
                // as it would without cellvisor, instead of it vanishing.
                cell.count_exit(ExitReason::Other);
                let syndrome = hardware.syndrome();
                cell.log_guest_fault("SError from guest", syndrome.esr, hardware.counter());
                hardware.inject_serror(syndrome.esr);
                cell.count_injected_fault();
                Next::Resume
            }
        };
        match next {
            Next::Resume => {}
            Next::Leave => return Stopped::Left,
            Next::Yield => return Stopped::Waits,
        }
    }
    Stopped::Left
}
