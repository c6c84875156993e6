//! The fast path: exits answered right where the exception arrives, before the world switch
//! returns to the run loop, for the exits every guest takes all the time.
//!
//! The arch glue calls [`synchronous`] or [`interrupt`] (host tests: [`exit()`]) with only the
//! guest's caller-saved registers (x0–x18, x30, ELR, SPSR) in
//! [`GuestRegs`](crate::core::hardware::GuestRegs); x19–x29 are still live in the CPU, preserved by
//! the call, so a handler here must not read them (they read as stale values in `regs`), and a
//! trap whose transfer register is one of them goes to the run loop. What this path does not answer
//! it leaves to the run loop ([`Fast::Slow`]), which then sees the exit exactly as if the fast
//! path did not exist: the glue completes the register save first.
//!
//! Skipping the run loop also skips its vGIC `flush`/`sync` around the entry. That is sound for
//! what is answered here: a hypercall answered here changes no interrupt state; a guest timer
//! goes through [`Vgic::forward_ppi_direct`](crate::dev::vgic::Vgic::forward_ppi_direct), a kick
//! through [`Vgic::deliver_posted`](crate::dev::vgic::Vgic::deliver_posted), each falling back to
//! a flush under the same lock; a device access or an SGI write is framed by the same sync and
//! flush the run loop does. Anything another CPU changes for this vCPU comes with a kick, a
//! physical interrupt that exits again at once.
#![forbid(unsafe_code)]

use crate::core::cell::ExitReason;
use crate::core::esr;
use crate::core::exit::{self, Exiting, Next, RunningVcpu};
use crate::core::hardware::{ExitKind, Syndrome, VcpuHardware};
use crate::core::irq;
use crate::core::lifecycle::CellState;
use crate::core::smccc::{self, Caller, Dispatch, SmcccCall};
use crate::dev::gic::SPI_BASE_INTID;
use crate::dev::mmio::MmioAccess;
use crate::dev::vgic::{Direct, VcpuSet};
use crate::mem::addr::GuestPhysAddr;

/// What the fast path did with an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fast {
    /// Answered: re-enter the guest at once.
    Resume,
    /// Left to the run loop.
    Slow,
    /// Answered, and the vCPU leaves its guest (its cell is stopping): back to the run loop,
    /// which sees [`ExitKind::Leave`].
    Leave,
}

/// Physical SGIs below this INTID are cellvisor's own (the kick); guests only get virtual SGIs.
const PHYSICAL_SGI_END: u32 = 16;

/// Answers `kind` for `running` if it is one of the exits this path handles.
pub fn exit<H: VcpuHardware + ?Sized>(
    running: &mut RunningVcpu<'_>,
    kind: ExitKind,
    hardware: &mut H,
) -> Fast {
    match kind {
        ExitKind::Synchronous => synchronous(running, hardware),
        ExitKind::Irq => interrupt(running, hardware),
        ExitKind::Fiq | ExitKind::SError | ExitKind::Leave => Fast::Slow,
    }
}

/// [`exit()`] for a synchronous exit (the arch glue's vector calls it directly).
#[inline(always)]
pub fn synchronous<H: VcpuHardware + ?Sized>(
    running: &mut RunningVcpu<'_>,
    hardware: &mut H,
) -> Fast {
    // Only ESR here: the hypercall needs nothing else, and `trap` reads the rest itself.
    let esr = hardware.syndrome().esr;
    match esr::hypercall(esr) {
        Some((smc, 0)) => hypercall(running, smc),
        Some(_) => Fast::Slow,
        None => trap(running, hardware),
    }
}

/// Whether the fast path has the guest's register `n` (x0-x18 and x30 are saved at every exit;
/// 31 is XZR).
fn saved(n: u8) -> bool {
    !(19..30).contains(&n)
}

/// A trap other than a hypercall: a device access ([`mmio`]), or a guest sending SGIs through
/// ICC_SGI1R_EL1 with a register the fast path has, emulated as the run loop's own handler does,
/// with the vGIC sync and flush the run loop does around every exit. Anything else goes to the
/// run loop. Out of line, so the hypercall path does not pay for its register use.
#[inline(never)]
fn trap<H: VcpuHardware + ?Sized>(running: &mut RunningVcpu<'_>, hardware: &mut H) -> Fast {
    let syndrome = hardware.syndrome();
    // Device accesses first: they are the most frequent trap.
    if let Some(access) = esr::emulable_access(syndrome.esr, syndrome.far, syndrome.hpfar) {
        return mmio(running, syndrome, access, hardware);
    }
    let Some(rt) = esr::sgi1r_write(syndrome.esr).filter(|&rt| saved(rt)) else {
        return Fast::Slow;
    };
    let at = running.at;
    at.cell.count_exit(ExitReason::SysReg);
    let mut vgic = at.cell.devices.vgic();
    let value = running.regs.get(usize::from(rt));
    let mut kick = vgic.write_sgi1r(at.vcpu, value).unwrap_or_default();
    // The sync after the write, not before, so that the vCPUs it names (an SPI it took back now
    // goes to them) join the SGIs' targets at no cost. The order does not matter: the write only
    // latches SGIs pending, and a sync that takes back this vCPU's own earlier instance of one
    // keeps the latch; this vCPU itself is never kicked below.
    if core::mem::take(&mut running.holds_list_registers) {
        kick = kick.union(vgic.sync(at.vcpu, hardware.list_registers()));
    }
    let flushed = vgic
        .flush(at.vcpu, hardware.list_registers())
        .unwrap_or_default();
    running.holds_list_registers = flushed.holds_list_registers;
    drop(vgic);
    for target in kick
        .union(flushed.kick)
        .iter()
        .filter(|&target| target != at.vcpu)
    {
        if let Some(cpu) = at.cell.plan().physical_cpu_of(target) {
            hardware.kick(cpu);
        }
    }
    running.regs.elr = running.regs.elr.wrapping_add(4);
    Fast::Resume
}

/// A trapped access to one of the cell's devices with a usable syndrome and a transfer register
/// the fast path has: emulated by the run loop's own handler, with the vGIC sync and flush the run
/// loop does around every exit. Anything else (an access outside the cell, no syndrome) goes to
/// the run loop.
#[inline(always)]
fn mmio<H: VcpuHardware + ?Sized>(
    running: &mut RunningVcpu<'_>,
    syndrome: Syndrome,
    (ipa, write, access): (GuestPhysAddr, bool, MmioAccess),
    hardware: &mut H,
) -> Fast {
    let at = running.at;
    let Some(device) = at.cell.devices.device_at(ipa) else {
        return Fast::Slow;
    };
    if !saved(access.register.index().map_or(31, |n| n as u8)) {
        return Fast::Slow;
    }
    at.cell.count_exit(ExitReason::Mmio);
    if core::mem::take(&mut running.holds_list_registers) {
        let kick = at
            .cell
            .devices
            .vgic()
            .sync(at.vcpu, hardware.list_registers());
        kick_others(&at, kick, hardware);
    }
    let next = exit::emulate(
        &at,
        &mut running.regs,
        device,
        &access,
        write,
        syndrome,
        hardware,
    );
    match next {
        Next::Leave => return Fast::Leave,
        // Only a WFI yields, and the fast path never sees one.
        Next::Yield | Next::Resume => {}
    }
    let flushed = at
        .cell
        .devices
        .vgic()
        .flush(at.vcpu, hardware.list_registers())
        .unwrap_or_default();
    running.holds_list_registers = flushed.holds_list_registers;
    kick_others(&at, flushed.kick, hardware);
    Fast::Resume
}

/// Kicks the CPUs of the other vCPUs a `sync` named (an SPI it took back now goes to them): in
/// line, so the common case (nobody) costs one compare, and the kicking itself out of line.
#[inline(always)]
fn kick_others<H: VcpuHardware + ?Sized>(at: &Exiting<'_>, vcpus: VcpuSet, hardware: &mut H) {
    if !vcpus.is_empty() {
        kick_vcpus_cold(at, vcpus, hardware);
    }
}

#[cold]
#[inline(never)]
fn kick_vcpus_cold<H: VcpuHardware + ?Sized>(at: &Exiting<'_>, vcpus: VcpuSet, hardware: &mut H) {
    irq::kick_vcpus(at.cell, vcpus, hardware);
}

/// An HVC (or trapped SMC) that SMCCC dispatch answers by itself: the SMCCC architecture calls
/// and cellvisor's own calls. PSCI (which changes vCPU state) goes to the run loop.
#[inline(always)]
fn hypercall(running: &mut RunningVcpu<'_>, smc: bool) -> Fast {
    let regs = &mut running.regs;
    let call = SmcccCall::from_registers([
        regs.x[0], regs.x[1], regs.x[2], regs.x[3], regs.x[4], regs.x[5], regs.x[6],
    ]);
    let cell = running.at.cell;
    let caller = Caller {
        cell: cell.index(),
        vcpu_count: cell.vcpu_count(),
        vcpu: running.at.vcpu,
    };
    let Dispatch::Done(result) = smccc::dispatch(&call, &caller) else {
        return Fast::Slow;
    };
    cell.count_exit(ExitReason::Call);
    if smc {
        // A trapped SMC's ELR points at the instruction itself.
        regs.elr = regs.elr.wrapping_add(4);
    }
    regs.x[0] = result.x0;
    regs.x[1] = result.x1;
    regs.x[2] = result.x2;
    regs.x[3] = result.x3;
    Fast::Resume
}

/// A physical interrupt: the guest timers of this vCPU, and a passed-through SPI of its cell routed
/// to it when nothing else waits for it, are forwarded hardware-linked straight into a list
/// register, and a kick of a running cell is answered with a flush of the vCPU's list registers.
/// Anything else (console input, other passthrough SPIs, a kick of a stopping cell, any kick on a
/// time-shared CPU, whose run queue must decide again) is handed back to the run loop,
/// acknowledged. Out of line, so the hypercall path does not pay for its
/// register use (the arch glue's vector calls it directly).
#[inline(never)]
pub fn interrupt<H: VcpuHardware + ?Sized>(
    running: &mut RunningVcpu<'_>,
    hardware: &mut H,
) -> Fast {
    let Some(intid) = hardware.acknowledge_interrupt() else {
        // Gone before it was acknowledged: nothing to do.
        return Fast::Resume;
    };
    let cell = running.at.cell;
    let vcpu = running.at.vcpu;
    let timer = &running.at.runtime.platform.timer;
    if intid == timer.virtual_timer || intid == timer.nonsecure_physical {
        cell.count_exit(ExitReason::Interrupt);
        let mut vgic = cell.devices.vgic();
        let lists = hardware.list_registers();
        match vgic.forward_ppi_direct(vcpu, intid, lists) {
            Ok(Direct::Written) => running.holds_list_registers = true,
            Ok(Direct::Held) => {}
            Ok(Direct::NeedsFlush) => {
                let flushed = vgic.flush(vcpu, lists).unwrap_or_default();
                drop(vgic);
                running.holds_list_registers |= flushed.holds_list_registers;
                kick_others(&running.at, flushed.kick, hardware);
            }
            Err(_) => {
                drop(vgic);
                hardware.deactivate(intid);
            }
        }
        return Fast::Resume;
    }
    if intid >= SPI_BASE_INTID
        && running
            .at
            .runtime
            .owner_of_spi(intid)
            .is_some_and(|owner| core::ptr::eq(owner, cell))
    {
        // A passed-through SPI routed to this vCPU, which has nothing else waiting: straight
        // into a list register, hardware-linked. Anything else goes to the run loop.
        let mut vgic = cell.devices.vgic();
        let lists = hardware.list_registers();
        if vgic.forward_spi_direct(vcpu, intid, lists) == Ok(true) {
            drop(vgic);
            cell.count_exit(ExitReason::Interrupt);
            running.holds_list_registers = true;
            return Fast::Resume;
        }
    }
    if intid < PHYSICAL_SGI_END && !running.at.time_shared && cell.state() == CellState::Running {
        // A kick: something changed for this vCPU (an SGI from a sibling, an interrupt routed
        // here); the flush picks it up.
        cell.count_exit(ExitReason::Interrupt);
        hardware.deactivate(intid);
        // SGIs a sibling posted go straight into free list registers; anything else takes a
        // flush (which reads back what the list registers hold first).
        let mut vgic = cell.devices.vgic();
        let lists = hardware.list_registers();
        if vgic.deliver_posted(vcpu, lists) == Ok(true) {
            running.holds_list_registers |= vgic.holds_list_registers(vcpu);
        } else {
            let flushed = vgic.flush(vcpu, lists).unwrap_or_default();
            drop(vgic);
            running.holds_list_registers = flushed.holds_list_registers;
            kick_others(&running.at, flushed.kick, hardware);
        }
        return Fast::Resume;
    }
    hardware.defer_interrupt(intid);
    Fast::Slow
}
