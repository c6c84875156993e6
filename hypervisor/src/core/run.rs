//! The per-physical-CPU run loop: enter the guest, decode the exit, dispatch, repeat.
//!
//! The loop itself ([`run`]) is plain Rust written against the [`VcpuHardware`] trait; the aarch64
//! glue implements it with real registers and the host tests with a fake.
#![forbid(unsafe_code)]

use crate::mem::addr::GuestPhysAddr;
use crate::core::cell::{AfterStop, Cell, CellState, ExitReason, Machine, Runtime};
use crate::core::esr::{self, DataAbort, Exit};
use crate::core::inject::{self, GuestExceptionState, InjectKind, Injection};
use crate::dev::mmio::{self, MmioAccess};
use crate::core::psci::PsciAction;
use crate::core::smccc::{SmcccCall, SmcccResult};
use crate::dev::vgic::{ListRegisters, VcpuSet};

/// A guest's general-purpose registers plus ELR_EL2/SPSR_EL2, saved at every exit. The layout is
/// used by the world-switch assembly (offsets via `offset_of!`).
#[repr(C)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestRegs {
    /// x0..x30.
    pub x: [u64; 31],
    /// Where the guest resumes (ELR_EL2).
    pub elr: u64,
    /// The guest's PSTATE at the exit (SPSR_EL2).
    pub spsr: u64,
}

/// PSTATE for a vCPU's first instruction: EL1h with D, A, I and F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

impl GuestRegs {
    /// Registers for a vCPU starting at `entry` with x0 = `x0` (boot: the DT; CPU_ON: the context).
    pub fn boot(entry: GuestPhysAddr, x0: u64) -> Self {
        let mut regs = Self {
            elr: entry.raw(),
            spsr: SPSR_EL1H_MASKED,
            ..Self::default()
        };
        regs.x[0] = x0;
        regs
    }

    /// Register `n` as the guest sees it, where 31 reads as zero (XZR).
    pub fn get(&self, n: usize) -> u64 {
        self.x.get(n).copied().unwrap_or(0)
    }

    /// Writes register `n`; writes to 31 (XZR) are discarded.
    pub fn set(&mut self, n: usize, value: u64) {
        if let Some(register) = self.x.get_mut(n) {
            *register = value;
        }
    }
}

/// Why an exit came back to EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitKind {
    /// A synchronous exception (trap, abort, HVC/SMC).
    Synchronous,
    /// A physical IRQ.
    Irq,
    /// A physical FIQ.
    Fiq,
    /// A physical SError.
    SError,
}

/// The syndrome registers read at a synchronous exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Syndrome {
    /// ESR_EL2.
    pub esr: u64,
    /// FAR_EL2.
    pub far: u64,
    /// HPFAR_EL2.
    pub hpfar: u64,
}

/// What the run loop needs from the CPU it runs on.
pub trait VcpuHardware: Machine {
    /// The vCPU interface registers of this CPU.
    type Lists: ListRegisters;
    /// This CPU's list registers, for the vGIC's flush and sync.
    fn list_registers(&mut self) -> &mut Self::Lists;
    /// Called when the vCPU leaves its guest for good (CPU_OFF, cell stop or reset): quiesces the
    /// per-CPU devices the guest may have left running (its timers).
    fn quiesce(&mut self);
    /// Configures EL2 for `vcpu` of `cell` (stage 2, virtual MPIDR, traps) and resets its EL1 state.
    fn prepare(&mut self, cell: &Cell, vcpu: usize);
    /// Runs the guest until it exits.
    fn enter(&mut self, regs: &mut GuestRegs) -> ExitKind;
    /// ESR/FAR/HPFAR of the last synchronous exit.
    fn syndrome(&self) -> Syndrome;
    /// VBAR_EL1 of the running guest.
    fn vbar_el1(&self) -> u64;
    /// SCTLR_EL1 of the running guest.
    fn sctlr_el1(&self) -> u64;
    /// Writes ESR_EL1, FAR_EL1, ELR_EL1 and SPSR_EL1 for an injected exception.
    fn write_injection(&mut self, injection: &Injection);
    /// Handles the physical interrupts pending on this CPU (ack, dispatch, EOI).
    fn handle_interrupts(&mut self, runtime: &Runtime);
    /// Waits until something may have changed for this CPU (an interrupt arrived), handling it.
    fn idle(&mut self, runtime: &Runtime);
    /// Makes physical CPU `cpu` leave its guest (or idle wait) and look at its state again.
    fn kick(&mut self, runtime: &Runtime, cpu: usize);
    /// Powers the whole machine off.
    fn power_off(&mut self) -> !;
    /// Makes the cell's freshly written memory visible to a guest that starts with caches off.
    fn sync_guest_memory(&mut self, cell: &Cell);
}

/// What to do after an exit was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Re-enter the guest.
    Resume,
    /// Leave the guest: the vCPU stopped (CPU_OFF) or the cell stopped or is resetting.
    Leave,
}

/// The endless loop of physical CPU `cpu`: wait until its vCPU is started, run it, repeat. The
/// cell's home CPU (vCPU 0's) also carries out the cell's stops, restarts and wipes.
pub fn run<H: VcpuHardware>(runtime: &Runtime, cpu: usize, hardware: &mut H) -> ! {
    let Some((cell_index, vcpu)) = runtime.owner_of_cpu(cpu) else {
        loop {
            hardware.idle(runtime);
        }
    };
    let Some(cell) = runtime.cells.get(cell_index) else {
        loop {
            hardware.idle(runtime);
        }
    };
    let home = cell.is_home(cpu);
    loop {
        if let (true, CellState::Stopping(after)) = (home, cell.state()) {
            runtime.complete_stop(cell, after, hardware);
            if matches!(after, AfterStop::Restart | AfterStop::Start) {
                hardware.sync_guest_memory(cell);
            }
            power_off_if_all_stopped(runtime, hardware);
            continue;
        }
        let Some((entry, context)) = cell.take_start(vcpu) else {
            hardware.idle(runtime);
            continue;
        };
        cell.set_in_guest(vcpu, true);
        hardware.prepare(cell, vcpu);
        if vcpu == 0 {
            let (counter, frequency) = hardware.counter();
            log::info!(
                "cell {}: entering vCPU 0 at counter {counter} ({frequency} Hz)",
                cell.name()
            );
        }
        let mut regs = GuestRegs::boot(entry, context);
        while cell.state() == CellState::Running {
            // Only this CPU fills `vcpu`'s list registers: if the flush left none in use, the sync
            // would find nothing to read back, so it (and its lock) is skipped.
            let holds_list_registers = cell.vgic_flush(vcpu, hardware.list_registers());
            let kind = hardware.enter(&mut regs);
            if holds_list_registers {
                cell.vgic_sync(vcpu, hardware.list_registers());
            }
            let next = match kind {
                ExitKind::Synchronous => {
                    let syndrome = hardware.syndrome();
                    handle_synchronous(runtime, cell, vcpu, &mut regs, syndrome, hardware)
                }
                ExitKind::Irq | ExitKind::Fiq => {
                    cell.count_exit(ExitReason::Interrupt);
                    hardware.handle_interrupts(runtime);
                    Next::Resume
                }
                ExitKind::SError => {
                    cell.count_exit(ExitReason::Other);
                    cell.log_guest_fault("SError from guest", regs.elr, hardware.counter());
                    Next::Resume
                }
            };
            if next == Next::Leave {
                break;
            }
        }
        hardware.quiesce();
        cell.set_in_guest(vcpu, false);
    }
}

fn power_off_if_all_stopped<H: VcpuHardware>(runtime: &Runtime, hardware: &mut H) {
    if runtime.all_cells_off() && runtime.board.power_off_when_all_cells_off {
        log::info!("all cells are off: powering off");
        hardware.power_off();
    }
}

fn inject<H: VcpuHardware>(
    regs: &mut GuestRegs,
    kind: InjectKind,
    hardware: &mut H,
) -> Result<(), inject::InjectError> {
    let state = GuestExceptionState {
        pc: regs.elr,
        pstate: regs.spsr,
        vbar_el1: hardware.vbar_el1(),
    };
    // With SCTLR_EL1 the injection also gets PSTATE.PAN and SSBS right (SPAN, DSSBS).
    let injection = inject::synchronous_abort_with_sctlr(state, hardware.sctlr_el1(), kind)?;
    hardware.write_injection(&injection);
    regs.elr = injection.new_pc;
    regs.spsr = injection.new_pstate;
    Ok(())
}

/// Injects `kind` into the guest; if even that is impossible (a corrupt PSTATE), stops the cell.
fn inject_or_stop<H: VcpuHardware>(
    runtime: &Runtime,
    cell: &Cell,
    regs: &mut GuestRegs,
    kind: InjectKind,
    hardware: &mut H,
) -> Next {
    cell.count_injected_fault();
    match inject(regs, kind, hardware) {
        Ok(()) => Next::Resume,
        Err(error) => {
            log::error!(
                "cell {}: cannot inject an exception ({error}): stopping the cell",
                cell.name()
            );
            stop_cell(runtime, cell, AfterStop::Off, hardware);
            Next::Leave
        }
    }
}

/// Handles one synchronous exit.
pub fn handle_synchronous<H: VcpuHardware>(
    runtime: &Runtime,
    cell: &Cell,
    vcpu: usize,
    regs: &mut GuestRegs,
    syndrome: Syndrome,
    hardware: &mut H,
) -> Next {
    let exit = esr::decode(syndrome.esr, syndrome.far, syndrome.hpfar);
    let reason = match exit {
        Exit::Hvc { .. } | Exit::Smc { .. } => Some(ExitReason::Call),
        // Counted by `data_abort`, which looks the device up once for both.
        Exit::DataAbort(_) => None,
        Exit::SysReg(_) => Some(ExitReason::SysReg),
        Exit::Wfx { .. } => Some(ExitReason::Wfi),
        _ => Some(ExitReason::Other),
    };
    if let Some(reason) = reason {
        cell.count_exit(reason);
    }
    match exit {
        Exit::Hvc { imm } => smccc_call(runtime, cell, vcpu, regs, imm, hardware),
        Exit::Smc { imm } => {
            // A trapped SMC's ELR points at the instruction itself.
            regs.elr = regs.elr.wrapping_add(4);
            smccc_call(runtime, cell, vcpu, regs, imm, hardware)
        }
        Exit::DataAbort(abort) => data_abort(runtime, cell, vcpu, regs, &abort, syndrome, hardware),
        Exit::InstructionAbort { ipa, .. } => {
            cell.log_guest_fault(
                "instruction fetch outside the cell",
                ipa.raw(),
                hardware.counter(),
            );
            inject_or_stop(
                runtime,
                cell,
                regs,
                InjectKind::InstructionAbort { far: syndrome.far },
                hardware,
            )
        }
        Exit::Wfx { .. } => {
            regs.elr = regs.elr.wrapping_add(esr::instruction_length(syndrome.esr));
            if !cell.has_deliverable(vcpu) {
                hardware.idle(runtime);
            }
            Next::Resume
        }
        Exit::SysReg(access) => {
            if access.is_icc_sgi1r_el1() && !access.read {
                let value = regs.get(usize::from(access.rt));
                let kick = cell.write_sgi1r(vcpu, value);
                kick_vcpus(runtime, cell, kick, hardware);
                regs.elr = regs.elr.wrapping_add(4);
                Next::Resume
            } else {
                cell.log_guest_fault(
                    "trapped system register access",
                    syndrome.esr,
                    hardware.counter(),
                );
                inject_or_stop(runtime, cell, regs, InjectKind::Undefined, hardware)
            }
        }
        Exit::FpTrap | Exit::SveTrap | Exit::Pauth | Exit::Other { .. } => {
            cell.log_guest_fault("unexpected trap", syndrome.esr, hardware.counter());
            inject_or_stop(runtime, cell, regs, InjectKind::Undefined, hardware)
        }
    }
}

fn smccc_call<H: VcpuHardware>(
    runtime: &Runtime,
    cell: &Cell,
    vcpu: usize,
    regs: &mut GuestRegs,
    imm: u16,
    hardware: &mut H,
) -> Next {
    if imm != 0 {
        regs.x[0] = SmcccResult::not_supported().x0;
        return Next::Resume;
    }
    let call = SmcccCall::from_registers([
        regs.x[0], regs.x[1], regs.x[2], regs.x[3], regs.x[4], regs.x[5], regs.x[6],
    ]);
    let (result, action) = cell.smccc(vcpu, &call);
    regs.x[0] = result.x0;
    regs.x[1] = result.x1;
    regs.x[2] = result.x2;
    regs.x[3] = result.x3;
    match action {
        PsciAction::Return => Next::Resume,
        PsciAction::StartVcpu { vcpu: target, .. } => {
            if let Some(cpu) = cell.physical_cpu_of(target) {
                hardware.kick(runtime, cpu);
            }
            Next::Resume
        }
        PsciAction::StopCaller => Next::Leave,
        PsciAction::CellOff => {
            log::info!("cell {}: SYSTEM_OFF", cell.name());
            stop_cell(runtime, cell, AfterStop::Off, hardware);
            Next::Leave
        }
        PsciAction::CellReset => {
            log::info!("cell {}: SYSTEM_RESET", cell.name());
            stop_cell(runtime, cell, AfterStop::Restart, hardware);
            Next::Leave
        }
    }
}

/// Asks every vCPU of `cell` to leave its guest; the home CPU then does `after`.
pub fn stop_cell<H: VcpuHardware>(
    runtime: &Runtime,
    cell: &Cell,
    after: AfterStop,
    hardware: &mut H,
) {
    cell.request_stop(after);
    for vcpu in 0..cell.vcpu_count() {
        if let Some(cpu) = cell.physical_cpu_of(vcpu) {
            hardware.kick(runtime, cpu);
        }
    }
}

fn data_abort<H: VcpuHardware>(
    runtime: &Runtime,
    cell: &Cell,
    vcpu: usize,
    regs: &mut GuestRegs,
    abort: &DataAbort,
    syndrome: Syndrome,
    hardware: &mut H,
) -> Next {
    let far = syndrome.far;
    let device = cell.device_at(abort.ipa);
    cell.count_exit(if device.is_some() {
        ExitReason::Mmio
    } else {
        ExitReason::Other
    });
    // Refused accesses: logged (rate-limited) and answered with a data abort at the guest's vector.
    let refuse = |reason: &str, regs: &mut GuestRegs, hardware: &mut H| {
        cell.log_guest_fault(reason, abort.ipa.raw(), hardware.counter());
        let kind = InjectKind::DataAbort {
            far,
            write: abort.write,
        };
        inject_or_stop(runtime, cell, regs, kind, hardware)
    };
    let Some(device) = device else {
        return refuse("access outside the cell", regs, hardware);
    };
    let Some(access) = abort
        .access
        .filter(|_| !abort.s1ptw && !abort.cache_maintenance)
    else {
        return refuse("device access without a usable syndrome", regs, hardware);
    };
    let result = if abort.write {
        let value = mmio::store_value(&access, register_value(regs, &access));
        cell.mmio_write(vcpu, device, abort.ipa, access.width, value, hardware)
    } else {
        cell.mmio_read(vcpu, device, abort.ipa, access.width, hardware)
            .map(|(raw, kick)| {
                if let Some(index) = access.register.index() {
                    regs.set(index, mmio::load_result(&access, raw));
                }
                kick
            })
    };
    match result {
        Ok(kick) => {
            kick_vcpus(runtime, cell, kick, hardware);
            regs.elr = regs.elr.wrapping_add(esr::instruction_length(syndrome.esr));
            Next::Resume
        }
        Err(error) => refuse(mmio_error_reason(error), regs, hardware),
    }
}

/// Kicks the physical CPUs of the given vCPUs of `cell`.
pub fn kick_vcpus<H: VcpuHardware>(
    runtime: &Runtime,
    cell: &Cell,
    vcpus: VcpuSet,
    hardware: &mut H,
) {
    for vcpu in vcpus.iter() {
        if let Some(cpu) = cell.physical_cpu_of(vcpu) {
            hardware.kick(runtime, cpu);
        }
    }
}

fn register_value(regs: &GuestRegs, access: &MmioAccess) -> u64 {
    access.register.index().map_or(0, |index| regs.get(index))
}

fn mmio_error_reason(error: mmio::MmioError) -> &'static str {
    match error {
        mmio::MmioError::BadOffset => "device access to an unimplemented register",
        mmio::MmioError::BadWidth => "device access with an unsupported width",
        mmio::MmioError::Unaligned => "unaligned device access",
        mmio::MmioError::ReadOnly => "write to a read-only device register",
        mmio::MmioError::WriteOnly => "read of a write-only device register",
        mmio::MmioError::NoSyndrome => "device access without a usable syndrome",
    }
}
