//! Physical interrupts taken at EL2: the kick SGI, console input (and the management commands it
//! carries), and the guests' timer PPIs and passthrough SPIs, forwarded hardware-linked.
#![forbid(unsafe_code)]

use crate::console::logger::{self, ConsoleEvent};
use crate::console::mux::InputAction;
use crate::core::cell::Cell;
use crate::core::hardware::VcpuHardware;
use crate::core::runtime::Runtime;
use crate::dev::vgic::{Delivery, VcpuSet};

/// Physical interrupts handled per exit; the rest stay pending for the next exit.
const INTERRUPTS_PER_EXIT: usize = 16;

/// What to do with a physical interrupt after cellvisor acknowledged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Handled by cellvisor: deactivate it.
    Deactivate,
    /// Forwarded as a hardware-linked virtual interrupt: the guest's EOI deactivates it.
    Forwarded,
    /// Forwarded, and the vCPU that takes it runs on this other physical CPU: kick it.
    ForwardedTo(usize),
}

/// Handles the physical interrupts pending on this CPU (acknowledge, dispatch, deactivate).
pub fn handle_interrupts<H: VcpuHardware + ?Sized>(runtime: &Runtime, hardware: &mut H) {
    let cpu = hardware.cpu();
    for _ in 0..INTERRUPTS_PER_EXIT {
        let Some(intid) = hardware.acknowledge_interrupt() else {
            return;
        };
        if runtime
            .board
            .smmu
            .is_some_and(|smmu| intid == smmu.event_intid || intid == smmu.gerror_intid)
        {
            dma_faults(runtime, hardware);
            hardware.deactivate(intid);
            continue;
        }
        if intid == runtime.platform.timer.hypervisor_physical {
            // A time-shared CPU's slice or wake-up timer: its run queue decides again now and
            // arms it anew.
            hardware.set_slice_timer(None);
            if let Some(screen) = &runtime.screen {
                screen.timer_fired(&runtime.cells, hardware);
            }
            hardware.deactivate(intid);
            continue;
        }
        if let Some(device) = runtime.input_device_of(intid) {
            input(runtime, device, hardware);
            hardware.deactivate(intid);
            continue;
        }
        if intid == runtime.platform.console.intid {
            console_input(runtime, hardware);
            hardware.deactivate(intid);
            continue;
        }
        match disposition(runtime, cpu, intid) {
            Disposition::Forwarded => {}
            Disposition::ForwardedTo(target) => hardware.kick(target),
            Disposition::Deactivate => hardware.deactivate(intid),
        }
    }
}

/// Waits until something may have changed for this CPU (an interrupt arrived), handling it.
pub fn idle<H: VcpuHardware + ?Sized>(runtime: &Runtime, hardware: &mut H) {
    hardware.wait_for_interrupt();
    handle_interrupts(runtime, hardware);
}

/// Decides what happens to a physical interrupt physical CPU `cpu` acknowledged (other than the
/// console UART's): the guest timers of the vCPU on this CPU, and passthrough SPIs, are forwarded
/// to their cell's vGIC; anything else (the kick SGI, a stale interrupt) is deactivated.
pub fn disposition(runtime: &Runtime, cpu: usize, intid: u32) -> Disposition {
    let timers = [
        runtime.platform.timer.virtual_timer,
        runtime.platform.timer.nonsecure_physical,
    ];
    if timers.contains(&intid) {
        // The timers raise their PPIs for the vCPU whose state this CPU holds: on a time-shared
        // CPU that vCPU's state is live also between two of its runs (it waits for an interrupt
        // with nothing else to run).
        if let Some((cell_index, vcpu)) = runtime.loaded_on(cpu)
            && let Some(cell) = runtime.cells.get(cell_index)
            && (cell.is_in_guest(vcpu) || runtime.is_time_shared(cpu))
            && cell
                .devices
                .vgic()
                .inject_hardware(vcpu, intid, intid)
                .is_ok()
        {
            return Disposition::Forwarded;
        }
        return Disposition::Deactivate;
    }
    let Some(cell) = runtime.owner_of_spi(intid) else {
        return Disposition::Deactivate;
    };
    match cell.devices.vgic().inject_hardware(0, intid, intid) {
        Ok(Delivery::Ready { vcpu }) => match cell.plan().physical_cpu_of(vcpu) {
            Some(target) if target != cpu => Disposition::ForwardedTo(target),
            _ => Disposition::Forwarded,
        },
        Ok(Delivery::Held) => Disposition::Forwarded,
        Err(_) => Disposition::Deactivate,
    }
}

/// Logs the DMA faults the SMMU recorded, each for the cell whose device caused it (rate-limited
/// like its CPU faults); a fault of a stream no cell owns is logged as such, once per drain.
fn dma_faults<H: VcpuHardware + ?Sized>(runtime: &Runtime, hardware: &mut H) {
    let clock = hardware.counter();
    let mut unowned = 0u32;
    hardware.dma_faults(&mut |fault| match runtime
        .cells
        .iter()
        .find(|cell| cell.dma_streams().contains(&fault.stream))
    {
        Some(cell) => {
            let access = if fault.write { "write" } else { "read" };
            cell.log_dma_fault(&fault, access, clock);
        }
        None => unowned += 1,
    });
    if unowned > 0 {
        log::warn!("SMMU: {unowned} faults of streams no cell owns");
    }
}

/// Kicks the physical CPUs of the given vCPUs of `cell`.
pub fn kick_vcpus<H: VcpuHardware + ?Sized>(cell: &Cell, vcpus: VcpuSet, hardware: &mut H) {
    for vcpu in vcpus.iter() {
        if let Some(cpu) = cell.plan().physical_cpu_of(vcpu) {
            hardware.kick(cpu);
        }
    }
}

/// Events of physical input device `device`: to the cell in front, except the switch key, which
/// brings the next cell to the front (the events after it go to that cell).
#[cold]
#[inline(never)]
fn input<H: VcpuHardware + ?Sized>(runtime: &Runtime, device: usize, hardware: &mut H) {
    let start = hardware.counter().0;
    let mut events = alloc::vec::Vec::new();
    hardware.input_events(device, &mut |event| events.push(event));
    let Some(screen) = &runtime.screen else {
        return;
    };
    let switch_key = screen.switch_key();
    let mut rest = events.as_slice();
    while !rest.is_empty() {
        // Up to and including the next press of the switch key.
        let end = rest
            .iter()
            .position(|event| event.kind == 1 && event.code == switch_key && event.value == 1)
            .map_or(rest.len(), |at| at + 1);
        let (batch, after) = rest.split_at(end);
        rest = after;
        let front = runtime.foreground();
        let routed = hardware.counter().0;
        if screen.route_input(&runtime.cells, front, device, batch, hardware) {
            let next = (front + 1) % runtime.cells.len().max(1);
            runtime.set_foreground(next, hardware);
            screen.record_key_switch(hardware.counter().0.saturating_sub(start));
            if let Some(cell) = runtime.cells.get(next) {
                logger::set_focus(next, cell.name());
            }
        } else {
            let forwarded = batch.len() as u64;
            // The first batch carries the interrupt's cost too.
            let from = if core::ptr::eq(batch.as_ptr(), events.as_ptr()) {
                start
            } else {
                routed
            };
            screen.record_events(forwarded, hardware.counter().0.saturating_sub(from));
        }
    }
}

/// Drains the physical console and hands the bytes to the multiplexer: typed bytes go to the
/// focused cell's vUART, management commands are carried out. Kept out of line so its buffers do
/// not weigh on [`handle_interrupts`], which every forwarded interrupt goes through.
#[cold]
#[inline(never)]
fn console_input<H: VcpuHardware + ?Sized>(runtime: &Runtime, hardware: &mut H) {
    let mut bytes = [0u8; 64];
    let count = hardware.console_receive(&mut bytes);
    for event in logger::console_input(bytes.get(..count).unwrap_or_default()) {
        match event {
            ConsoleEvent::Input(InputAction::ToCell(index, byte)) => {
                if let Some(cell) = runtime.cells.get(index) {
                    let kick = cell.devices.console_input(byte);
                    kick_vcpus(cell, kick, hardware);
                }
            }
            ConsoleEvent::Input(InputAction::SwitchFocus(index)) => {
                if let Some(cell) = runtime.cells.get(index) {
                    runtime.set_foreground(index, hardware);
                    logger::hypervisor_line(&alloc::format!(
                        "cellvisor: console input now goes to {}",
                        cell.name()
                    ));
                }
            }
            ConsoleEvent::Input(_) => {}
            ConsoleEvent::Command(command) => {
                let outcome = runtime.manage(&command, hardware);
                if let Some(index) = outcome.focus {
                    runtime.set_foreground(index, hardware);
                }
                for target in outcome.kick.iter().copied() {
                    hardware.kick(target);
                }
                logger::command_done(&outcome.lines, outcome.focus, outcome.leave_prompt);
            }
        }
    }
}
