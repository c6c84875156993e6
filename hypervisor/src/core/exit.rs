//! One handler per kind of synchronous exit: hypercalls (SMCCC: PSCI and cellvisor's calls), data
//! aborts (the cell's device bus), instruction aborts, WFI/WFE, trapped system registers and
//! everything the architecture can still send (injected as undefined).
//!
//! Each handler decodes its guest input with functions that return `Result` and answers bad input
//! with an SMCCC error or an exception injected into the calling guest.
#![forbid(unsafe_code)]

use crate::console::logger;
use crate::core::cell::{Cell, ExitReason};
use crate::core::esr::{self, DataAbort, Exit, SysRegAccess};
use crate::core::fault_loop::{self, Fault};
use crate::core::hardware::{GuestRegs, Syndrome, VcpuHardware};
use crate::core::inject::{self, GuestExceptionState, InjectKind};
use crate::core::irq::{self, kick_vcpus};
use crate::core::lifecycle::{AfterStop, CellState, stop_cell};
use crate::core::psci::PsciAction;
use crate::core::runtime::Runtime;
use crate::core::set_way;
use crate::core::smccc::{self, Caller, Dispatch, SmcccCall, SmcccResult};
use crate::core::sysreg::{self, Answer};
use crate::dev::mmio::{self, MmioAccess, MmioError};
use crate::dev::{CellPhysical, Device, Target};

/// What to do after an exit was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Re-enter the guest.
    Resume,
    /// Leave the guest: the vCPU stopped (CPU_OFF) or the cell stopped or is resetting.
    Leave,
    /// The vCPU waits for an interrupt (WFI) on a time-shared CPU: the CPU may run another vCPU
    /// until one is deliverable to it.
    Yield,
}

/// The running vCPU an exit belongs to.
#[derive(Clone, Copy)]
pub struct Exiting<'a> {
    /// The partition.
    pub runtime: &'a Runtime,
    /// The vCPU's cell.
    pub cell: &'a Cell,
    /// The vCPU's index in its cell.
    pub vcpu: usize,
    /// Whether its physical CPU is time-shared with vCPUs of other cells.
    pub time_shared: bool,
}

/// A vCPU while its guest runs: what every exit handler needs, owned by the run loop and lent to
/// the arch glue's fast path at each entry.
pub struct RunningVcpu<'a> {
    /// Whose exits these are.
    pub at: Exiting<'a>,
    /// The guest's registers, saved at every exit.
    pub regs: GuestRegs,
    /// Whether the vCPU's list registers hold entries the vGIC filled (so the `sync` after the
    /// next exit has something to read back).
    pub holds_list_registers: bool,
}

/// Handles one synchronous exit: decodes the syndrome and calls the one handler for its kind.
pub fn synchronous<H: VcpuHardware + ?Sized>(
    at: &Exiting<'_>,
    regs: &mut GuestRegs,
    syndrome: Syndrome,
    hardware: &mut H,
) -> Next {
    let cell = at.cell;
    match esr::decode(syndrome.esr, syndrome.far, syndrome.hpfar) {
        Exit::Hvc { imm } => {
            cell.count_exit(ExitReason::Call);
            hypercall(at, regs, imm, hardware)
        }
        Exit::Smc { imm } => {
            cell.count_exit(ExitReason::Call);
            // A trapped SMC's ELR points at the instruction itself.
            regs.elr = regs.elr.wrapping_add(4);
            hypercall(at, regs, imm, hardware)
        }
        Exit::DataAbort(abort) => data_abort(at, regs, &abort, syndrome, hardware),
        Exit::InstructionAbort { ipa, .. } => {
            cell.count_exit(ExitReason::Other);
            match ipa {
                Some(ipa) => cell.log_guest_fault(
                    "instruction fetch outside the cell",
                    ipa.raw(),
                    hardware.counter(),
                ),
                None => cell.log_guest_fault(
                    "instruction abort at no recorded address (ESR_EL2)",
                    syndrome.esr,
                    hardware.counter(),
                ),
            }
            let kind = InjectKind::InstructionAbort { far: syndrome.far };
            inject_or_stop(at, regs, kind, syndrome, hardware)
        }
        Exit::Wfx { timeout, .. } => {
            cell.count_exit(ExitReason::Wfi);
            regs.elr = regs.elr.wrapping_add(esr::instruction_length(syndrome.esr));
            // WFIT completes at once (EL2 keeps no timer for its timeout): a guest's `udelay`
            // polls its counter instead of sleeping until an interrupt that may never come.
            if !timeout && !cell.devices.vgic().has_deliverable(at.vcpu) {
                if at.time_shared {
                    // The CPU's run queue runs another vCPU meanwhile, or idles.
                    return Next::Yield;
                }
                irq::idle(at.runtime, hardware);
            }
            Next::Resume
        }
        Exit::SysReg(access) => {
            cell.count_exit(ExitReason::SysReg);
            system_register(at, regs, &access, syndrome, hardware)
        }
        Exit::FpTrap | Exit::SveTrap | Exit::Pauth | Exit::Other { .. } => {
            cell.count_exit(ExitReason::Other);
            cell.log_guest_fault("unexpected trap", syndrome.esr, hardware.counter());
            inject_or_stop(at, regs, InjectKind::Undefined, syndrome, hardware)
        }
    }
}

/// HVC or trapped SMC: SMCCC architecture and cellvisor calls answered at once, PSCI by the
/// cell's PSCI state machine; results in x0..x3.
fn hypercall<H: VcpuHardware + ?Sized>(
    at: &Exiting<'_>,
    regs: &mut GuestRegs,
    imm: u16,
    hardware: &mut H,
) -> Next {
    let cell = at.cell;
    if imm != 0 {
        regs.x[0] = SmcccResult::not_supported().x0;
        return Next::Resume;
    }
    let call = SmcccCall::from_registers([
        regs.x[0], regs.x[1], regs.x[2], regs.x[3], regs.x[4], regs.x[5], regs.x[6],
    ]);
    let caller = Caller {
        cell: cell.index(),
        vcpu_count: cell.vcpu_count(),
        vcpu: at.vcpu,
    };
    let (result, action) = match smccc::dispatch(&call, &caller) {
        Dispatch::Done(result) => (result, PsciAction::Return),
        Dispatch::Psci => {
            let outcome = cell
                .psci
                .lock()
                .handle(at.vcpu, &call, &|ipa| cell.ram_contains(ipa, 4));
            (SmcccResult::x0(outcome.result), outcome.action)
        }
    };
    regs.x[0] = result.x0;
    regs.x[1] = result.x1;
    regs.x[2] = result.x2;
    regs.x[3] = result.x3;
    match action {
        PsciAction::Return => Next::Resume,
        PsciAction::StartVcpu { vcpu: target, .. } => {
            if let Some(cpu) = cell.plan().physical_cpu_of(target) {
                hardware.kick(cpu);
            }
            Next::Resume
        }
        PsciAction::StopCaller => Next::Leave,
        PsciAction::CellOff => {
            cell.log_lifecycle(format_args!("SYSTEM_OFF"), hardware.counter());
            stop_cell(cell, AfterStop::Off, hardware);
            Next::Leave
        }
        PsciAction::CellReset => {
            cell.log_lifecycle(format_args!("SYSTEM_RESET"), hardware.counter());
            stop_cell(cell, AfterStop::Restart, hardware);
            Next::Leave
        }
    }
}

/// A stage-2 data abort: an access to one of the cell's devices is emulated or forwarded by its
/// device bus; anything else is refused with a data abort injected at the guest's vector.
fn data_abort<H: VcpuHardware + ?Sized>(
    at: &Exiting<'_>,
    regs: &mut GuestRegs,
    abort: &DataAbort,
    syndrome: Syndrome,
    hardware: &mut H,
) -> Next {
    let cell = at.cell;
    let Some(ipa) = abort.ipa else {
        // An external abort, alignment fault, ... of the guest's own access: HPFAR_EL2 names no
        // address, so nothing can be emulated; the guest gets the abort.
        cell.count_exit(ExitReason::Other);
        let reason = "abort at no recorded address (ESR_EL2)";
        return refuse(
            at,
            regs,
            (syndrome.esr, abort.write),
            syndrome,
            reason,
            hardware,
        );
    };
    let device = cell.devices.device_at(ipa);
    cell.count_exit(if device.is_some() {
        ExitReason::Mmio
    } else {
        ExitReason::Other
    });
    let usable = abort
        .access
        .filter(|_| !abort.s1ptw && !abort.cache_maintenance);
    let (device, access) = match (device, usable) {
        (None, _) => {
            let reason = "access outside the cell";
            return refuse(
                at,
                regs,
                (ipa.raw(), abort.write),
                syndrome,
                reason,
                hardware,
            );
        }
        (Some(_), None) => {
            let reason = mmio_error_reason(MmioError::NoSyndrome);
            return refuse(
                at,
                regs,
                (ipa.raw(), abort.write),
                syndrome,
                reason,
                hardware,
            );
        }
        (Some(device), Some(access)) => (device, access),
    };
    emulate(at, regs, device, &access, abort.write, syndrome, hardware)
}

/// Emulates a trapped access with a usable syndrome to the cell's device at `device`: the device
/// bus reads or writes it, the vCPUs it made an interrupt deliverable to are kicked and the guest
/// resumes after the instruction; an access the device refuses is answered with a data abort.
/// Shared by the run loop and the fast path (inlined into each, so neither pays a second frame).
#[inline(always)]
pub(crate) fn emulate<H: VcpuHardware + ?Sized>(
    at: &Exiting<'_>,
    regs: &mut GuestRegs,
    device: Target,
    access: &MmioAccess,
    write: bool,
    syndrome: Syndrome,
    hardware: &mut H,
) -> Next {
    let cell = at.cell;
    let runtime = at.runtime;
    let holds = |vcpu: usize| {
        cell.plan.physical_cpu_of(vcpu).is_none_or(|cpu| {
            !runtime.is_time_shared(cpu) || runtime.loaded_on(cpu) == Some((cell.index(), vcpu))
        })
    };
    let result = if write {
        let value = mmio::store_value(access, register_value(regs, access));
        let index = cell.index();
        cell.devices.write(
            at.vcpu,
            device,
            access.width,
            value,
            &mut CellPhysical::time_shared(hardware, &cell.plan, &holds),
            &mut |byte| logger::cell_output(index, byte),
        )
    } else {
        cell.devices
            .read(
                at.vcpu,
                device,
                access.width,
                &mut CellPhysical::time_shared(hardware, &cell.plan, &holds),
            )
            .map(|(raw, kick)| {
                if let Some(index) = access.register.index() {
                    regs.set(index, mmio::load_result(access, raw));
                }
                kick
            })
    };
    match result {
        Ok(kick) => {
            kick_vcpus(cell, kick, hardware);
            if write && device.device == Device::Display {
                display_written(at, hardware);
            }
            if write && device.device == Device::Vsock {
                channel_written(at, hardware);
            }
            regs.elr = regs.elr.wrapping_add(esr::instruction_length(syndrome.esr));
            Next::Resume
        }
        Err(error) => refuse(
            at,
            regs,
            (device.ipa.raw(), write),
            syndrome,
            mmio_error_reason(error),
            hardware,
        ),
    }
}

/// The cell wrote its PL111: the screen checks its frame again and, if the cell is on screen,
/// shows it (a frame outside the cell's RAM is refused and logged; the screen keeps the old one).
#[cold]
#[inline(never)]
fn display_written<H: VcpuHardware + ?Sized>(at: &Exiting<'_>, hardware: &mut H) {
    if let Some(screen) = &at.runtime.screen {
        let request = at.cell.devices.display_frame().flatten();
        let _ = screen.frame_changed(at.cell, request, hardware);
    }
}

/// The cell wrote its virtio-vsock device: the channel runs the queue work it asked for (its
/// packets through the policy to their cells, theirs into its rx buffers).
#[cold]
#[inline(never)]
fn channel_written<H: VcpuHardware + ?Sized>(at: &Exiting<'_>, hardware: &mut H) {
    if let Some(channel) = &at.runtime.channel {
        channel.written(
            &at.runtime.cells,
            at.cell.index(),
            hardware,
            &mut |cell, vcpus, hardware| kick_vcpus(cell, vcpus, hardware),
        );
    }
}

/// A trapped system register or system instruction, answered as [`sysreg::answer`] says: a
/// write of ICC_SGI1R_EL1 sends virtual SGIs inside the cell, a set/way cache operation cleans a
/// piece of the cell's own RAM, the RAS error records, ACTLR_EL1 and the activity monitors read
/// as zero and ignore writes, PMCR_EL0 is written with DP forced on; anything else is undefined
/// for the guest.
fn system_register<H: VcpuHardware + ?Sized>(
    at: &Exiting<'_>,
    regs: &mut GuestRegs,
    access: &SysRegAccess,
    syndrome: Syndrome,
    hardware: &mut H,
) -> Next {
    let cell = at.cell;
    let value = regs.get(usize::from(access.rt));
    match sysreg::answer(access) {
        Answer::SendSgis => {
            let targets = cell
                .devices
                .vgic()
                .write_sgi1r(at.vcpu, value)
                .unwrap_or_default();
            for target in targets.iter().filter(|&target| target != at.vcpu) {
                if let Some(cpu) = cell.plan().physical_cpu_of(target) {
                    hardware.kick(cpu);
                }
            }
        }
        Answer::SetWay => match cell.set_way_step(at.vcpu, value) {
            set_way::Step::Complete => {}
            set_way::Step::Clean { range, last } => {
                hardware.clean_invalidate_memory(range.base(), range.size());
                if !last {
                    // The guest executes the operation again for the next piece.
                    return Next::Resume;
                }
            }
        },
        Answer::ReadAsZero => {
            if access.read {
                regs.set(usize::from(access.rt), 0);
            }
        }
        Answer::PmuControl => {
            if access.read {
                regs.set(usize::from(access.rt), hardware.pmcr_el0());
            } else {
                hardware.set_pmcr_el0(value | sysreg::PMCR_EL0_DP);
            }
        }
        Answer::Undefined => {
            cell.log_guest_fault(
                "trapped system register access",
                syndrome.esr,
                hardware.counter(),
            );
            return inject_or_stop(at, regs, InjectKind::Undefined, syndrome, hardware);
        }
    }
    regs.elr = regs.elr.wrapping_add(esr::instruction_length(syndrome.esr));
    Next::Resume
}

/// A refused access: logged (rate-limited, with `logged`: its IPA, or the syndrome where there is
/// none) and answered with a data abort at the guest's vector.
fn refuse<H: VcpuHardware + ?Sized>(
    at: &Exiting<'_>,
    regs: &mut GuestRegs,
    (logged, write): (u64, bool),
    syndrome: Syndrome,
    reason: &str,
    hardware: &mut H,
) -> Next {
    at.cell.log_guest_fault(reason, logged, hardware.counter());
    let kind = InjectKind::DataAbort {
        far: syndrome.far,
        write,
    };
    inject_or_stop(at, regs, kind, syndrome, hardware)
}

/// Injects `kind`, the answer to the fault `syndrome` describes, into the guest. If even that is
/// impossible (a corrupt PSTATE), or the guest is caught in a fault loop and the board's policy
/// says so (see [`crate::core::fault_loop`]), stops the cell instead.
fn inject_or_stop<H: VcpuHardware + ?Sized>(
    at: &Exiting<'_>,
    regs: &mut GuestRegs,
    kind: InjectKind,
    syndrome: Syndrome,
    hardware: &mut H,
) -> Next {
    let cell = at.cell;
    cell.count_injected_fault();
    let state = GuestExceptionState {
        pc: regs.elr,
        pstate: regs.spsr,
        vbar_el1: hardware.vbar_el1(),
    };
    // With SCTLR_EL1 the injection also gets PSTATE.PAN and SSBS right (SPAN, DSSBS).
    match inject::synchronous_abort_with_sctlr(state, hardware.sctlr_el1(), kind) {
        Ok(injection) => {
            let fault = Fault {
                pc: regs.elr,
                esr: syndrome.esr,
                far: syndrome.far,
            };
            let repeats = cell.record_fault(at.vcpu, fault, injection.new_pc);
            if fault_loop::stops_at(at.runtime.board.fault_loop, repeats) {
                // Both vCPUs of a cell may loop at once: the one whose request stopped a running
                // cell says so.
                if stop_cell(cell, AfterStop::Off, hardware) == CellState::Running {
                    log::error!(
                        "cell {}: vCPU {} faulted {repeats} times in a row at the exception vector \
                         it was sent to (PC {:#x}, ESR {:#x}, FAR {:#x}) and cannot make progress: \
                         stopping the cell (the board's fault_loop policy)",
                        cell.name(),
                        at.vcpu,
                        fault.pc,
                        fault.esr,
                        fault.far,
                    );
                }
                return Next::Leave;
            }
            hardware.write_injection(&injection);
            regs.elr = injection.new_pc;
            regs.spsr = injection.new_pstate;
            Next::Resume
        }
        Err(error) => {
            log::error!(
                "cell {}: cannot inject an exception ({error}): stopping the cell",
                cell.name()
            );
            stop_cell(cell, AfterStop::Off, hardware);
            Next::Leave
        }
    }
}

fn register_value(regs: &GuestRegs, access: &mmio::MmioAccess) -> u64 {
    access.register.index().map_or(0, |index| regs.get(index))
}

fn mmio_error_reason(error: MmioError) -> &'static str {
    match error {
        MmioError::BadOffset => "device access to an unimplemented register",
        MmioError::BadWidth => "device access with an unsupported width",
        MmioError::Unaligned => "unaligned device access",
        MmioError::ReadOnly => "write to a read-only device register",
        MmioError::WriteOnly => "read of a write-only device register",
        MmioError::NoSyndrome => "device access without a usable syndrome",
        MmioError::DeviceAbort => "forwarded device access aborted at the device",
    }
}
