//! The cell lifecycle state machine: `Running`, `Stopping(after)`, `Off`; stop, restart, start
//! and wipe requests, and the home CPU's work once a stopping cell's vCPUs have left.
#![forbid(unsafe_code)]

use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::core::cell::Cell;
use crate::core::hardware::{DeviceAbort, DmaControlError, Machine, VcpuHardware};
use crate::core::irq;
use crate::core::quiesce::quiesce_devices;
use crate::core::runtime::Runtime;
use crate::dev::mmio::AccessWidth;
use crate::mem::addr::PhysAddr;

/// Bytes the home CPU zeroes, copies or verifies between two looks at its pending interrupts
/// while it scrubs, reloads or verifies a cell ([`Responsive`]): small enough that console input
/// is read long before the UART's receive FIFO fills (a 32-byte FIFO lasts 2.8 ms at 115200 baud;
/// a MiB takes well under that on a phone's cores).
pub const LIFECYCLE_CHUNK: u64 = 1024 * 1024;

/// Lifecycle state of a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellState {
    /// Its vCPUs may run.
    Running,
    /// Its vCPUs are leaving; then the cell's home CPU (the one of vCPU 0) does `AfterStop`.
    Stopping(AfterStop),
    /// Stopped.
    Off,
}

/// What the home CPU does once every vCPU of a stopping cell has left its guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterStop {
    /// Leave the cell off.
    Off,
    /// Zero its RAM, reload its images and device tree, boot vCPU 0 again.
    Restart,
    /// Zero its RAM, verify the zeroing, leave it off.
    Wipe,
    /// Boot a cell that was off (`start`): like `Restart`, but not counted as a restart.
    Start,
}

impl CellState {
    pub(crate) const fn to_u8(self) -> u8 {
        match self {
            Self::Running => 0,
            Self::Stopping(AfterStop::Off) => 1,
            Self::Stopping(AfterStop::Restart) => 2,
            Self::Stopping(AfterStop::Wipe) => 3,
            Self::Off => 4,
            Self::Stopping(AfterStop::Start) => 5,
        }
    }

    pub(crate) const fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Running,
            1 => Self::Stopping(AfterStop::Off),
            2 => Self::Stopping(AfterStop::Restart),
            3 => Self::Stopping(AfterStop::Wipe),
            5 => Self::Stopping(AfterStop::Start),
            _ => Self::Off,
        }
    }

    /// A word for the management prompt.
    pub const fn word(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopping(AfterStop::Off) => "stopping",
            Self::Stopping(AfterStop::Restart) => "restart",
            Self::Stopping(AfterStop::Wipe) => "wiping",
            Self::Stopping(AfterStop::Start) => "starting",
            Self::Off => "off",
        }
    }
}

/// Why a lifecycle request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifecycleError {
    /// `start` of a cell that is not off.
    NotOff,
    /// The board does not allow this from the console.
    NotAllowed(&'static str),
}

impl fmt::Display for LifecycleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotOff => f.write_str("it is not off (stop it first, or use restart)"),
            Self::NotAllowed(what) => write!(
                f,
                "the board does not allow {what} for this cell from the console"
            ),
        }
    }
}

impl Cell {
    /// Current lifecycle state.
    pub fn state(&self) -> CellState {
        CellState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Changes the lifecycle state.
    pub fn set_state(&self, state: CellState) {
        self.state.store(state.to_u8(), Ordering::Release);
    }

    /// Asks the cell to stop and then do `after`. The later request wins, except that a pending
    /// wipe stays a wipe (nothing may spare a cell's RAM from it). A request is never lost: one
    /// that arrives while the home CPU carries out an earlier one (a restart, say) stays pending,
    /// and [`complete_stop`] leaves it for the home CPU's next pass. The caller kicks the cell's
    /// CPUs. Returns the state the request found.
    pub fn request_stop(&self, after: AfterStop) -> CellState {
        let previous = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                let next = match CellState::from_u8(current) {
                    CellState::Stopping(AfterStop::Wipe) => AfterStop::Wipe,
                    _ => after,
                };
                Some(CellState::Stopping(next).to_u8())
            });
        let (Ok(previous) | Err(previous)) = previous;
        CellState::from_u8(previous)
    }

    /// Asks a stopped cell to boot again. The caller kicks the cell's home CPU.
    pub fn request_start(&self) -> Result<(), LifecycleError> {
        self.state
            .compare_exchange(
                CellState::Off.to_u8(),
                CellState::Stopping(AfterStop::Start).to_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .map(|_| ())
            .map_err(|_| LifecycleError::NotOff)
    }

    /// Moves from `Stopping(after)` to `next` unless another request replaced `after` meanwhile
    /// (that request then stays, and the home CPU carries it out next).
    fn finish(&self, after: AfterStop, next: CellState) -> bool {
        self.state
            .compare_exchange(
                CellState::Stopping(after).to_u8(),
                next.to_u8(),
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }

    /// Waits until every vCPU other than `caller` has left the guest, however long that takes:
    /// the caller is about to scrub or reload the cell, and a vCPU still in the guest (or still in
    /// EL2 with the old instance's registers) would run on in the new image. Siblings leave
    /// promptly, since a kick is a physical interrupt, which always traps to EL2; should one not
    /// have (a kick lost on its way), every [`KICK_AGAIN_SPINS`] the busy ones are kicked again.
    pub fn wait_until_out_of_guest<H: VcpuHardware + ?Sized>(
        &self,
        caller: usize,
        hardware: &mut H,
    ) {
        let mut warned = false;
        let mut spins = 0u64;
        loop {
            let busy =
                |vcpu: usize, flag: &AtomicBool| vcpu != caller && flag.load(Ordering::Acquire);
            if !self
                .in_guest
                .iter()
                .enumerate()
                .any(|(vcpu, flag)| busy(vcpu, flag))
            {
                return;
            }
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(KICK_AGAIN_SPINS) {
                for (vcpu, flag) in self.in_guest.iter().enumerate() {
                    if !busy(vcpu, flag) {
                        continue;
                    }
                    if !warned {
                        warned = true;
                        log::warn!(
                            "cell {}: vCPU {vcpu} has not left its guest yet: kicking it again",
                            self.name()
                        );
                    }
                    if let Some(cpu) = self.plan().physical_cpu_of(vcpu) {
                        hardware.kick(cpu);
                    }
                }
            }
            core::hint::spin_loop();
        }
    }
}

/// Spins of [`Cell::wait_until_out_of_guest`] between kicks of a vCPU that has not left its guest
/// (about a millisecond).
pub const KICK_AGAIN_SPINS: u64 = 1 << 20;

/// Asks every vCPU of `cell` to leave its guest; the home CPU then does `after`. Returns the state
/// the request found (so of two vCPUs stopping their cell at once, one knows it was first).
pub fn stop_cell<H: VcpuHardware + ?Sized>(
    cell: &Cell,
    after: AfterStop,
    hardware: &mut H,
) -> CellState {
    let previous = cell.request_stop(after);
    for vcpu in 0..cell.vcpu_count() {
        if let Some(cpu) = cell.plan().physical_cpu_of(vcpu) {
            hardware.kick(cpu);
        }
    }
    previous
}

/// Zeroes all of a cell's RAM; returns the bytes scrubbed.
fn scrub<M: Machine + ?Sized>(cell: &Cell, machine: &mut M) -> u64 {
    cell.plan
        .memory
        .iter()
        .map(|region| {
            machine.zero_memory(region.physical.base(), region.physical.size());
            region.physical.size()
        })
        .sum()
}

/// The machine as the home CPU's lifecycle work sees it: memory is zeroed, written and verified in
/// [`LIFECYCLE_CHUNK`]s, and between two chunks the CPU handles its pending physical interrupts
/// ([`irq::handle_interrupts`]: console input and the management commands it carries, kicks), so
/// a cell that restarts in a loop on the CPU that takes console input never makes cellvisor deaf
/// (docs/architecture.md "Console input while a cell restarts").
pub struct Responsive<'a, H: VcpuHardware + ?Sized> {
    runtime: &'a Runtime,
    hardware: &'a mut H,
}

impl<'a, H: VcpuHardware + ?Sized> Responsive<'a, H> {
    /// `hardware` for the lifecycle work of `runtime`'s cells.
    pub fn new(runtime: &'a Runtime, hardware: &'a mut H) -> Self {
        Self { runtime, hardware }
    }

    /// Runs `work` on each chunk of `[address, address + length)` (its address, offset and
    /// length), handling pending interrupts between chunks.
    fn chunked(
        &mut self,
        address: PhysAddr,
        length: u64,
        mut work: impl FnMut(&mut H, PhysAddr, u64, u64),
    ) {
        let mut offset = 0;
        while offset < length {
            if offset > 0 {
                irq::handle_interrupts(self.runtime, self.hardware);
            }
            let size = (length - offset).min(LIFECYCLE_CHUNK);
            work(
                self.hardware,
                PhysAddr::new(address.raw().saturating_add(offset)),
                offset,
                size,
            );
            offset += size;
        }
    }
}

impl<H: VcpuHardware + ?Sized> Machine for Responsive<'_, H> {
    fn clean_invalidate_memory(&mut self, address: PhysAddr, length: u64) {
        self.hardware.clean_invalidate_memory(address, length);
    }

    fn interrupt_line_asserted(&mut self, intid: u32, cpu: usize) -> bool {
        self.hardware.interrupt_line_asserted(intid, cpu)
    }

    fn write_memory(&mut self, address: PhysAddr, bytes: &[u8]) {
        self.chunked(address, bytes.len() as u64, |machine, at, offset, size| {
            // Offsets and sizes lie inside `bytes`, whose length fits a usize.
            let range = offset as usize..(offset + size) as usize;
            machine.write_memory(at, bytes.get(range).unwrap_or_default());
        });
    }

    fn read_memory(&mut self, address: PhysAddr, buffer: &mut [u8]) {
        self.hardware.read_memory(address, buffer);
    }

    fn zero_memory(&mut self, address: PhysAddr, length: u64) {
        self.chunked(address, length, |machine, at, _, size| {
            machine.zero_memory(at, size);
        });
    }

    fn count_nonzero(&mut self, address: PhysAddr, length: u64) -> u64 {
        let mut nonzero = 0u64;
        self.chunked(address, length, |machine, at, _, size| {
            nonzero = nonzero.saturating_add(machine.count_nonzero(at, size));
        });
        nonzero
    }

    fn spi_set_enabled(&mut self, intid: u32, enabled: bool) {
        self.hardware.spi_set_enabled(intid, enabled);
    }

    fn spi_set_priority(&mut self, intid: u32, priority: u8) {
        self.hardware.spi_set_priority(intid, priority);
    }

    fn spi_set_edge_triggered(&mut self, intid: u32, edge: bool) {
        self.hardware.spi_set_edge_triggered(intid, edge);
    }

    fn spi_route(&mut self, intid: u32, cpu: usize) {
        self.hardware.spi_route(intid, cpu);
    }

    fn deactivate_interrupt(&mut self, intid: u32, cpu: usize) {
        self.hardware.deactivate_interrupt(intid, cpu);
    }

    fn device_read(&mut self, address: PhysAddr, width: AccessWidth) -> Result<u64, DeviceAbort> {
        self.hardware.device_read(address, width)
    }

    fn dma_allow(&mut self, stream: u32, vmid: u16, root: PhysAddr) -> Result<(), DmaControlError> {
        self.hardware.dma_allow(stream, vmid, root)
    }

    fn dma_block(&mut self, stream: u32, vmid: u16) -> Result<(), DmaControlError> {
        self.hardware.dma_block(stream, vmid)
    }

    fn device_write(
        &mut self,
        address: PhysAddr,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), DeviceAbort> {
        self.hardware.device_write(address, width, value)
    }

    fn counter(&self) -> (u64, u64) {
        self.hardware.counter()
    }
}

/// Finishes a stop on the cell's home CPU once its own vCPU has left the guest: waits for the
/// others, quiesces the cell's devices ([`quiesce_devices`]), then leaves the cell off, restarts
/// it, or wipes it. If another request arrived while this one was carried out, the cell stays
/// `Stopping` with that request and the home CPU's next pass carries it out. Memory work goes
/// through [`Responsive`], so console input and management commands are handled while it runs (a
/// `wipe` typed meanwhile replaces a restart).
///
/// A device that is not known to be quiet (no safe reset, an abort, a reset that did not take
/// effect in time) may still write the cell's RAM, so a restart or start is not carried out: the
/// cell is left off, unscrubbed, with an ERROR line (a later `start` tries the reset again). A wipe
/// still scrubs (the previous instance's data is destroyed either way) but reports that it cannot
/// vouch for the RAM staying zero.
pub fn complete_stop<H: VcpuHardware + ?Sized>(
    runtime: &Runtime,
    cell: &Cell,
    after: AfterStop,
    hardware: &mut H,
) {
    cell.wait_until_out_of_guest(usize::MAX, hardware);
    cell.flush_console();
    // The screen leaves the cell's RAM and forgets its frame and held keys: nothing of this
    // instance is shown or typed into the next.
    if let Some(screen) = &runtime.screen {
        screen.forget(cell, hardware);
    }
    // The channel lets go of the cell before its RAM is scrubbed or reloaded: its device is
    // reset (no packet lands in its RAM any more), its connections reset and what it sent and
    // was sent dropped, so no half-sent data outlives this instance.
    if let Some(channel) = &runtime.channel {
        channel.forget(
            &runtime.cells,
            cell,
            hardware,
            &mut |cell, vcpus, hardware| crate::core::irq::kick_vcpus(cell, vcpus, hardware),
        );
    }
    let verb = match after {
        AfterStop::Off => "stop",
        AfterStop::Restart => "restart",
        AfterStop::Start => "start",
        AfterStop::Wipe => "wipe",
    };
    let machine = &mut Responsive::new(runtime, hardware);
    let quiet = quiesce_devices(cell, verb, machine);
    match after {
        AfterStop::Off => {
            if cell.finish(after, CellState::Off) {
                match quiet {
                    Ok(()) => cell.log_lifecycle(format_args!("stopped"), machine.counter()),
                    Err(error) => log::error!("cell {}: stopped, but {error}", cell.name()),
                }
            }
        }
        AfterStop::Restart | AfterStop::Start => {
            let done = if after == AfterStop::Start {
                "started"
            } else {
                "restarted"
            };
            if let Err(error) = quiet {
                if cell.finish(after, CellState::Off) {
                    log::error!(
                        "cell {}: {verb} refused, left off and not scrubbed: {error}",
                        cell.name()
                    );
                }
                return;
            }
            scrub(cell, machine);
            match cell.load(&runtime.platform, machine) {
                Ok(()) => {
                    if after == AfterStop::Restart {
                        cell.counters.restarts.fetch_add(1, Ordering::Relaxed);
                    }
                    cell.restart_virtual_time(machine.counter().0);
                    cell.mark_started(machine.counter().0);
                    if cell.finish(after, CellState::Running) {
                        cell.log_lifecycle(format_args!("{done}"), machine.counter());
                    }
                }
                Err(error) => {
                    if cell.finish(after, CellState::Off) {
                        log::error!("cell {}: {verb} failed, left off: {error}", cell.name());
                    }
                }
            }
        }
        AfterStop::Wipe => {
            let bytes = scrub(cell, machine);
            let left = count_nonzero(cell, machine);
            // A wipe is final: nothing replaces it (see `request_stop`), so this always lands.
            cell.finish(after, CellState::Off);
            if let Err(error) = quiet {
                log::error!(
                    "cell {}: wipe verification FAILED: {bytes} bytes scrubbed, {left} not zero, \
                     and {error}",
                    cell.name()
                );
            } else if left == 0 {
                log::info!(
                    "cell {}: wiped: {bytes} bytes scrubbed, verified zero",
                    cell.name()
                );
            } else {
                log::error!(
                    "cell {}: wipe verification FAILED: {left} of {bytes} bytes are not zero",
                    cell.name()
                );
            }
        }
    }
}

/// Counts the non-zero bytes of all of a cell's RAM.
pub fn count_nonzero<M: Machine + ?Sized>(cell: &Cell, machine: &mut M) -> u64 {
    cell.plan
        .memory
        .iter()
        .map(|region| machine.count_nonzero(region.physical.base(), region.physical.size()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn cell_states_survive_their_atomic_encoding() {
        let states = [
            CellState::Running,
            CellState::Stopping(AfterStop::Off),
            CellState::Stopping(AfterStop::Restart),
            CellState::Stopping(AfterStop::Wipe),
            CellState::Stopping(AfterStop::Start),
            CellState::Off,
        ];
        for state in states {
            assert_eq!(CellState::from_u8(state.to_u8()), state);
        }
        let mut words: Vec<&str> = states.iter().map(|state| state.word()).collect();
        words.sort_unstable();
        words.dedup();
        assert_eq!(words.len(), states.len(), "every state has its own word");
    }
}
