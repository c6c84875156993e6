//! Runtime state of the partition: cells, their vCPUs, emulated devices and lifecycle.
//!
//! Lock order: a cell's `psci` lock, then its `uart` lock, then the terminal lock
//! (`logger::terminal`). No lock is held while entering a guest.
#![forbid(unsafe_code)]

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use spin::Mutex;

use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::board::{Board, CellPolicy, MemRange};
use crate::setup::bundle::{Bundle, BundleError};
use crate::setup::guest_fdt::{self, GuestDtSpec};
use crate::setup::image::{self, ImageError};
use crate::console::manage::{CellSummary, Command, ExitCounts, HELP, format_cells};
use crate::dev::mmio::{AccessWidth, MmioError};
use crate::setup::partition::{CellPlan, Partition};
use crate::dev::passthrough::{Forward, PassthroughError, PassthroughPlan, interrupt_owners};
use crate::setup::platform::{GICV3_REDISTRIBUTOR_STRIDE, Platform, PlatformDevice};
use crate::core::psci::{PsciAction, PsciCell};
use crate::console::ratelimit::RateLimiter;
use crate::core::smccc::{self, Caller, Dispatch, SmcccCall, SmcccResult};
use crate::mem::stage2::{Stage2, Stage2Error};
use crate::dev::vgic::{
    self, Delivery, PhysicalDistributor, SpiAssignment, SpiKind, Trigger, VcpuSet, Vgic,
    VgicConfig, VgicConfigError, VgicError,
};
use crate::dev::vuart::Pl011;

/// Room reserved for a cell's generated device tree.
const DTB_RESERVE: usize = 64 * 1024;

/// What the core needs from the machine outside a guest run: physical memory (image loading,
/// scrubbing) and the physical GIC's SPIs (passthrough). The arch glue implements it.
pub trait Machine {
    /// Copies `bytes` to physical address `address`, visible to a guest with caches off.
    fn write_memory(&mut self, address: PhysAddr, bytes: &[u8]);
    /// Zeroes `length` bytes at `address`, visible to a guest with caches off.
    fn zero_memory(&mut self, address: PhysAddr, length: u64);
    /// Enables or disables physical SPI `intid`.
    fn spi_set_enabled(&mut self, intid: u32, enabled: bool);
    /// Sets the priority of physical SPI `intid`.
    fn spi_set_priority(&mut self, intid: u32, priority: u8);
    /// Sets the trigger mode of physical SPI `intid`.
    fn spi_set_edge_triggered(&mut self, intid: u32, edge: bool);
    /// Routes physical SPI `intid` to physical CPU `cpu`.
    fn spi_route(&mut self, intid: u32, cpu: usize);
    /// Deactivates physical interrupt `intid` (for a PPI: the one of physical CPU `cpu`).
    fn deactivate_interrupt(&mut self, intid: u32, cpu: usize);
    /// Reads a passthrough device register at `address` (Device memory, naturally aligned).
    fn device_read(&mut self, address: PhysAddr, width: AccessWidth) -> u64;
    /// Writes a passthrough device register at `address` (Device memory, naturally aligned).
    fn device_write(&mut self, address: PhysAddr, width: AccessWidth, value: u64);
    /// Counts the non-zero bytes in `length` bytes at `address` (to verify a wipe).
    fn count_nonzero(&mut self, address: PhysAddr, length: u64) -> u64;
    /// The system counter and its frequency in Hz.
    fn counter(&self) -> (u64, u64);
}

/// The physical GIC narrowed to one cell, for its vGIC: maps vCPU indices to physical CPUs.
struct CellPhysical<'a, M: Machine + ?Sized> {
    machine: &'a mut M,
    plan: &'a CellPlan,
}

impl<M: Machine + ?Sized> CellPhysical<'_, M> {
    fn cpu_of(&self, vcpu: usize) -> Option<usize> {
        self.plan.vcpus.get(vcpu).map(|plan| plan.physical_cpu)
    }
}

impl<M: Machine + ?Sized> PhysicalDistributor for CellPhysical<'_, M> {
    fn set_enabled(&mut self, intid: u32, enabled: bool) {
        self.machine.spi_set_enabled(intid, enabled);
    }

    fn set_priority(&mut self, intid: u32, priority: u8) {
        self.machine.spi_set_priority(intid, priority);
    }

    fn set_trigger(&mut self, intid: u32, trigger: Trigger) {
        self.machine
            .spi_set_edge_triggered(intid, trigger == Trigger::Edge);
    }

    fn route_to(&mut self, intid: u32, vcpu: usize) {
        if let Some(cpu) = self.cpu_of(vcpu) {
            self.machine.spi_route(intid, cpu);
        }
    }

    fn deactivate(&mut self, intid: u32, vcpu: usize) {
        if let Some(cpu) = self.cpu_of(vcpu) {
            self.machine.deactivate_interrupt(intid, cpu);
        }
    }
}

/// What cellvisor knows about the physical GIC when it builds the cells.
#[derive(Clone, Copy, Debug)]
pub struct GicInfo {
    /// `GICD_TYPER.ITLinesNumber` of the physical distributor.
    pub spi_lines: u32,
    /// Implemented list registers (`ICH_VTR_EL2.ListRegs` + 1).
    pub list_register_count: usize,
}

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
    const fn to_u8(self) -> u8 {
        match self {
            Self::Running => 0,
            Self::Stopping(AfterStop::Off) => 1,
            Self::Stopping(AfterStop::Restart) => 2,
            Self::Stopping(AfterStop::Wipe) => 3,
            Self::Off => 4,
            Self::Stopping(AfterStop::Start) => 5,
        }
    }

    const fn from_u8(value: u8) -> Self {
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

/// Why an exit happened, for the per-cell counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// HVC or trapped SMC.
    Call,
    /// Emulated MMIO.
    Mmio,
    /// Trapped system register.
    SysReg,
    /// Trapped WFI.
    Wfi,
    /// Physical interrupt.
    Interrupt,
    /// Anything else (aborts outside the cell, undefined traps).
    Other,
}

/// An emulated device in a cell's guest-physical space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmulatedDevice {
    /// The cell's PL011.
    Uart,
    /// The GIC distributor.
    Distributor,
    /// The cell's redistributor frames.
    Redistributors,
    /// A page shared by passthrough devices of several cells: forwarded when the bytes are the
    /// cell's, read-as-zero otherwise.
    Passthrough,
}

/// Why a cell could not be built or reloaded.
#[derive(Debug)]
pub enum CellError {
    /// A guest image is missing or malformed in the bundle.
    Bundle(BundleError),
    /// The kernel/initrd/DT do not fit the cell's RAM.
    Image(ImageError),
    /// The generated device tree could not be written.
    DeviceTree(guest_fdt::GuestFdtError),
    /// The stage-2 table could not be built.
    Stage2(Stage2Error),
    /// The vGIC could not be configured.
    Vgic(VgicConfigError),
    /// The cell's passthrough devices cannot be set up as the board says.
    Passthrough(PassthroughError),
    /// An address of the load plan lies outside the cell's RAM (a bug in the plan).
    OutsideRam(GuestPhysAddr),
}

impl fmt::Display for CellError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bundle(error) => write!(f, "{error}"),
            Self::Image(error) => write!(f, "{error}"),
            Self::DeviceTree(error) => write!(f, "device tree: {error}"),
            Self::Stage2(error) => write!(f, "stage-2 table: {error}"),
            Self::Vgic(error) => write!(f, "virtual GIC: {error}"),
            Self::Passthrough(error) => write!(f, "passthrough: {error}"),
            Self::OutsideRam(address) => {
                write!(f, "load address {address} is outside the cell's RAM")
            }
        }
    }
}

/// Per-cell event counters, shown by the management prompt and the benchmark.
#[derive(Debug, Default)]
pub struct Counters {
    /// HVC/SMC calls.
    pub calls: AtomicU64,
    /// Emulated MMIO accesses.
    pub mmio: AtomicU64,
    /// Trapped system registers.
    pub sysreg: AtomicU64,
    /// Trapped WFIs.
    pub wfi: AtomicU64,
    /// Physical interrupts taken while the guest ran.
    pub interrupts: AtomicU64,
    /// Other exits.
    pub other: AtomicU64,
    /// Aborts and undefined-instruction exceptions injected.
    pub injected_faults: AtomicU64,
    /// Restarts.
    pub restarts: AtomicU64,
}

impl Counters {
    fn exits(&self) -> ExitCounts {
        ExitCounts {
            calls: self.calls.load(Ordering::Relaxed),
            mmio: self.mmio.load(Ordering::Relaxed),
            sysreg: self.sysreg.load(Ordering::Relaxed),
            wfi: self.wfi.load(Ordering::Relaxed),
            interrupts: self.interrupts.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }
}

/// One running cell.
pub struct Cell {
    index: usize,
    plan: CellPlan,
    bundle: Bundle<'static>,
    stage2: Stage2,
    state: AtomicU8,
    psci: Mutex<PsciCell>,
    uart: Mutex<VirtualUart>,
    passthrough: PassthroughPlan,
    passthrough_nodes: Vec<PlatformDevice>,
    vgic: Mutex<Vgic>,
    uart_intid: u32,
    in_guest: Vec<AtomicBool>,
    started_at: AtomicU64,
    uart_window: MemRange,
    distributor_window: MemRange,
    redistributor_window: MemRange,
    /// Event counters.
    pub counters: Counters,
    fault_log: RateLimiter,
}

impl Cell {
    /// The cell's name.
    pub fn name(&self) -> &'static str {
        self.plan.name
    }

    /// The cell's index in the partition.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Its plan (CPUs, memory).
    pub fn plan(&self) -> &CellPlan {
        &self.plan
    }

    /// The VTTBR_EL2 value of its stage-2 table.
    pub fn vttbr(&self) -> u64 {
        self.stage2.vttbr()
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.plan.vcpus.len()
    }

    /// The physical CPU that runs `vcpu`.
    pub fn physical_cpu_of(&self, vcpu: usize) -> Option<usize> {
        self.plan.vcpus.get(vcpu).map(|plan| plan.physical_cpu)
    }

    /// Its virtual MPIDR for `vcpu`.
    pub fn virtual_mpidr(&self, vcpu: usize) -> u64 {
        self.plan
            .vcpus
            .get(vcpu)
            .map_or(0, |plan| plan.virtual_mpidr)
    }

    /// Current lifecycle state.
    pub fn state(&self) -> CellState {
        CellState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// Changes the lifecycle state.
    pub fn set_state(&self, state: CellState) {
        self.state.store(state.to_u8(), Ordering::Release);
    }

    /// Asks the cell to stop and then do `after`. A later request can upgrade an earlier one
    /// (stop, then wipe). The caller kicks the cell's CPUs.
    pub fn request_stop(&self, after: AfterStop) {
        let _ = self
            .state
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
                let upgraded = match (CellState::from_u8(current), after) {
                    (CellState::Stopping(AfterStop::Wipe), _) => AfterStop::Wipe,
                    (CellState::Stopping(AfterStop::Restart), AfterStop::Off) => AfterStop::Restart,
                    (_, after) => after,
                };
                Some(CellState::Stopping(upgraded).to_u8())
            });
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

    /// Whether `cpu` is this cell's home CPU (vCPU 0's), which performs stops and restarts.
    pub fn is_home(&self, cpu: usize) -> bool {
        self.physical_cpu_of(0) == Some(cpu)
    }

    /// Records the counter value at which the cell was (re)started.
    pub fn mark_started(&self, counter: u64) {
        self.started_at.store(counter, Ordering::Relaxed);
    }

    /// A row of the management prompt's `cells` table; `now`/`frequency` from the system counter.
    pub fn summary(&self, now: u64, frequency: u64) -> CellSummary {
        let state = self.state();
        let vcpus_on = {
            let psci = self.psci.lock();
            (0..self.vcpu_count())
                .filter(|&vcpu| {
                    psci.state(vcpu)
                        .is_some_and(|power| power != crate::core::psci::VcpuPower::Off)
                })
                .count()
        };
        let uptime_seconds = (state == CellState::Running && frequency != 0)
            .then(|| now.saturating_sub(self.started_at.load(Ordering::Relaxed)) / frequency);
        CellSummary {
            name: self.name(),
            state: state.word(),
            vcpus_on: if state == CellState::Off { 0 } else { vcpus_on },
            vcpus: self.vcpu_count(),
            ram_mib: self
                .plan
                .memory
                .iter()
                .map(|region| region.physical.size)
                .sum::<u64>()
                >> 20,
            uptime_seconds,
            exits: self.counters.exits(),
            faults: self.counters.injected_faults.load(Ordering::Relaxed),
            restarts: self.counters.restarts.load(Ordering::Relaxed),
        }
    }

    /// Whether `vcpu` is inside its run loop (entered and not yet left).
    pub fn is_in_guest(&self, vcpu: usize) -> bool {
        self.in_guest
            .get(vcpu)
            .is_some_and(|flag| flag.load(Ordering::Acquire))
    }

    /// Records whether `vcpu` is inside its guest.
    pub fn set_in_guest(&self, vcpu: usize, inside: bool) {
        if let Some(flag) = self.in_guest.get(vcpu) {
            flag.store(inside, Ordering::Release);
        }
    }

    /// Waits (bounded) until every vCPU other than `caller` has left the guest. Siblings leave
    /// promptly: a kick is a physical interrupt, which always traps to EL2.
    pub fn wait_until_out_of_guest(&self, caller: usize) {
        for _ in 0..100_000_000u64 {
            let busy = self
                .in_guest
                .iter()
                .enumerate()
                .any(|(vcpu, flag)| vcpu != caller && flag.load(Ordering::Acquire));
            if !busy {
                return;
            }
            core::hint::spin_loop();
        }
        log::warn!(
            "cell {}: a vCPU did not leave its guest in time",
            self.name()
        );
    }

    /// If `vcpu` was started (CPU_ON, or boot for vCPU 0) and the cell runs: its entry and x0.
    pub fn take_start(&self, vcpu: usize) -> Option<(GuestPhysAddr, u64)> {
        if self.state() != CellState::Running {
            return None;
        }
        self.psci.lock().vcpu_started(vcpu)
    }

    /// Counts an exit.
    pub fn count_exit(&self, reason: ExitReason) {
        let counter = match reason {
            ExitReason::Call => &self.counters.calls,
            ExitReason::Mmio => &self.counters.mmio,
            ExitReason::SysReg => &self.counters.sysreg,
            ExitReason::Wfi => &self.counters.wfi,
            ExitReason::Interrupt => &self.counters.interrupts,
            ExitReason::Other => &self.counters.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an injected fault.
    pub fn count_injected_fault(&self) {
        self.counters
            .injected_faults
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Logs a guest-caused fault, rate-limited per cell on the clock reading `(now, frequency)`
    /// (`Machine::counter`): 10 lines at once, then one a second with the number hidden.
    pub fn log_guest_fault(&self, reason: &str, value: u64, (now, frequency): (u64, u64)) {
        if let Some(suppressed) = self.fault_log.allow(now, frequency) {
            if suppressed > 0 {
                log::warn!(
                    "cell {}: {reason} ({value:#x}); {suppressed} similar events not shown",
                    self.name()
                );
            } else {
                log::warn!("cell {}: {reason} ({value:#x})", self.name());
            }
        }
    }

    /// Whether `[ipa, ipa + length)` lies inside one of the cell's RAM regions.
    pub fn ram_contains(&self, ipa: GuestPhysAddr, length: u64) -> bool {
        self.ipa_to_pa(ipa, length).is_some()
    }

    /// The physical address behind `[ipa, ipa + length)`, if it lies inside one RAM region.
    pub fn ipa_to_pa(&self, ipa: GuestPhysAddr, length: u64) -> Option<PhysAddr> {
        self.plan.memory.iter().find_map(|region| {
            let offset = ipa.raw().checked_sub(region.guest_base())?;
            let end = offset.checked_add(length)?;
            (end <= region.physical.size).then(|| PhysAddr(region.physical.base + offset))
        })
    }

    /// The emulated device at `ipa`, if any.
    pub fn device_at(&self, ipa: GuestPhysAddr) -> Option<EmulatedDevice> {
        let address = ipa.raw();
        if self.uart_window.contains(address) {
            Some(EmulatedDevice::Uart)
        } else if self.distributor_window.contains(address) {
            Some(EmulatedDevice::Distributor)
        } else if self.redistributor_window.contains(address) {
            Some(EmulatedDevice::Redistributors)
        } else if self.passthrough.is_trapped(ipa) {
            Some(EmulatedDevice::Passthrough)
        } else {
            None
        }
    }

    /// Handles an SMCCC call from `vcpu`.
    pub fn smccc(&self, vcpu: usize, call: &SmcccCall) -> (SmcccResult, PsciAction) {
        let caller = Caller {
            cell: self.index,
            vcpu_count: self.vcpu_count(),
            vcpu,
        };
        match smccc::dispatch(call, &caller) {
            Dispatch::Done(result) => (result, PsciAction::Return),
            Dispatch::Psci => {
                let outcome = self
                    .psci
                    .lock()
                    .handle(vcpu, call, &|ipa: GuestPhysAddr| self.ram_contains(ipa, 4));
                (SmcccResult::x0(outcome.result), outcome.action)
            }
        }
    }

    /// Emulates a read of `width` at `ipa` from an emulated device.
    pub fn mmio_read<M: Machine + ?Sized>(
        &self,
        vcpu: usize,
        device: EmulatedDevice,
        ipa: GuestPhysAddr,
        width: AccessWidth,
        machine: &mut M,
    ) -> Result<(u64, VcpuSet), MmioError> {
        match device {
            EmulatedDevice::Uart => {
                let offset = ipa
                    .offset_from(GuestPhysAddr(self.uart_window.base))
                    .ok_or(MmioError::BadOffset)?;
                let mut uart = self.uart.lock();
                let value = uart.device.read(offset, width)?;
                // A read may have made room in the receive FIFO.
                uart.refill();
                // Reading DR can lower the receive interrupt; update the line under the UART lock.
                let kick = self.set_uart_line(&uart.device, vcpu);
                Ok((u64::from(value), kick))
            }
            EmulatedDevice::Distributor => {
                let offset = ipa
                    .offset_from(GuestPhysAddr(self.distributor_window.base))
                    .ok_or(MmioError::BadOffset)?;
                let value = self
                    .vgic
                    .lock()
                    .distributor_read(offset, width)
                    .map_err(vgic_error)?;
                Ok((value, VcpuSet::empty()))
            }
            EmulatedDevice::Redistributors => {
                let offset = ipa
                    .offset_from(GuestPhysAddr(self.redistributor_window.base))
                    .ok_or(MmioError::BadOffset)?;
                let value = self
                    .vgic
                    .lock()
                    .redistributor_read(offset, width)
                    .map_err(vgic_error)?;
                Ok((value, VcpuSet::empty()))
            }
            EmulatedDevice::Passthrough => match self.passthrough.forward(ipa, width) {
                Forward::Device(address) => {
                    Ok((machine.device_read(address, width), VcpuSet::empty()))
                }
                Forward::ReadAsZero => Ok((0, VcpuSet::empty())),
            },
        }
    }

    /// Emulates a write of `value` (`width`) at `ipa` to an emulated device. Returns the vCPUs
    /// that now have an interrupt to take (to be kicked).
    pub fn mmio_write<M: Machine + ?Sized>(
        &self,
        vcpu: usize,
        device: EmulatedDevice,
        ipa: GuestPhysAddr,
        width: AccessWidth,
        value: u64,
        machine: &mut M,
    ) -> Result<VcpuSet, MmioError> {
        match device {
            EmulatedDevice::Uart => {
                let offset = ipa
                    .offset_from(GuestPhysAddr(self.uart_window.base))
                    .ok_or(MmioError::BadOffset)?;
                let index = self.index;
                let mut uart = self.uart.lock();
                uart.device
                    .write(offset, width, value as u32, &mut |byte| {
                        crate::console::logger::cell_output(index, byte);
                    })?;
                Ok(self.set_uart_line(&uart.device, vcpu))
            }
            EmulatedDevice::Distributor => {
                let offset = ipa
                    .offset_from(GuestPhysAddr(self.distributor_window.base))
                    .ok_or(MmioError::BadOffset)?;
                let mut physical = CellPhysical {
                    machine,
                    plan: &self.plan,
                };
                self.vgic
                    .lock()
                    .distributor_write(offset, width, value, &mut physical)
                    .map_err(vgic_error)
            }
            EmulatedDevice::Redistributors => {
                let offset = ipa
                    .offset_from(GuestPhysAddr(self.redistributor_window.base))
                    .ok_or(MmioError::BadOffset)?;
                let mut physical = CellPhysical {
                    machine,
                    plan: &self.plan,
                };
                self.vgic
                    .lock()
                    .redistributor_write(offset, width, value, &mut physical)
                    .map_err(vgic_error)
            }
            EmulatedDevice::Passthrough => {
                if let Forward::Device(address) = self.passthrough.forward(ipa, width) {
                    machine.device_write(address, width, value);
                }
                Ok(VcpuSet::empty())
            }
        }
    }

    /// Drives the vUART's interrupt line into the vGIC. Called with the UART lock held so line
    /// changes reach the vGIC in the order they happened (lock order: uart, then vgic).
    fn set_uart_line(&self, uart: &Pl011, current_vcpu: usize) -> VcpuSet {
        let mut kick = VcpuSet::empty();
        if let Ok(Delivery::Ready { vcpu }) = self
            .vgic
            .lock()
            .set_level(self.uart_intid, uart.interrupt_level())
            && vcpu != current_vcpu
        {
            kick.insert(vcpu);
        }
        kick
    }

    /// A byte typed at the console while this cell has the focus. Returns the vCPUs to kick.
    pub fn console_input(&self, byte: u8) -> VcpuSet {
        let mut uart = self.uart.lock();
        uart.push_input(byte);
        self.set_uart_line(&uart.device, usize::MAX)
    }

    /// A guest's ICC_SGI1R_EL1 write: marks the SGI pending on the targets inside the cell and
    /// returns the vCPUs to kick (never the caller).
    pub fn write_sgi1r(&self, vcpu: usize, value: u64) -> VcpuSet {
        let targets = self
            .vgic
            .lock()
            .write_sgi1r(vcpu, value)
            .unwrap_or_default();
        let mut kick = VcpuSet::empty();
        for target in targets.iter().filter(|&target| target != vcpu) {
            kick.insert(target);
        }
        kick
    }

    /// Forwards a physical PPI of this vCPU's CPU (its timers) as a hardware-linked virtual
    /// interrupt. Returns false if the vGIC refused it (the caller deactivates it).
    pub fn forward_ppi(&self, vcpu: usize, intid: u32) -> bool {
        self.vgic.lock().inject_hardware(vcpu, intid, intid).is_ok()
    }

    /// Whether `vcpu` has an interrupt to take now.
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        self.vgic.lock().has_deliverable(vcpu)
    }

    /// Forwards a physical passthrough SPI of this cell hardware-linked. Returns the vCPU that
    /// will take it, or `None` if the vGIC refused it (the caller deactivates it).
    pub fn forward_spi(&self, intid: u32) -> Option<Option<usize>> {
        match self.vgic.lock().inject_hardware(0, intid, intid) {
            Ok(Delivery::Ready { vcpu }) => Some(Some(vcpu)),
            Ok(Delivery::Held) => Some(None),
            Err(_) => None,
        }
    }

    /// Fills the list registers of `vcpu` before it enters the guest. Returns whether they hold
    /// entries, i.e. whether [`Cell::vgic_sync`] has anything to do after the exit.
    pub fn vgic_flush<L: vgic::ListRegisters>(&self, vcpu: usize, lists: &mut L) -> bool {
        self.vgic.lock().flush(vcpu, lists).unwrap_or(false)
    }

    /// Reads back the list registers of `vcpu` after it left the guest.
    pub fn vgic_sync<L: vgic::ListRegisters>(&self, vcpu: usize, lists: &mut L) {
        let _ = self.vgic.lock().sync(vcpu, lists);
    }

    /// Emits whatever partial line the cell's console holds.
    pub fn flush_console(&self) {
        crate::console::logger::cell_flush(self.index);
    }

    /// Loads the cell's images and device tree into its RAM and resets its PSCI, vUART and vGIC.
    fn load<M: Machine + ?Sized>(
        &self,
        platform: &Platform,
        machine: &mut M,
    ) -> Result<(), CellError> {
        let images = self
            .bundle
            .cell_images(self.plan.config)
            .map_err(CellError::Bundle)?;
        let first = self
            .plan
            .memory
            .first()
            .ok_or(CellError::OutsideRam(GuestPhysAddr(0)))?;
        let ram = (GuestPhysAddr(first.guest_base()), first.physical.size);
        let plan = image::plan(
            images.kernel,
            images.initrd.map(<[u8]>::len),
            DTB_RESERVE,
            ram,
        )
        .map_err(CellError::Image)?;
        let initrd = match (plan.initrd_at, images.initrd) {
            (Some(at), Some(bytes)) => Some((at, bytes.len() as u64)),
            _ => None,
        };
        let spec = GuestDtSpec {
            bootargs: images.bootargs,
            initrd,
        };
        let dtb = guest_fdt::generate_with_passthrough(
            &self.plan,
            platform,
            &spec,
            &self.passthrough_nodes,
        )
        .map_err(CellError::DeviceTree)?;
        self.copy_in(machine, plan.kernel_at, images.kernel)?;
        if let (Some(at), Some(bytes)) = (plan.initrd_at, images.initrd) {
            self.copy_in(machine, at, bytes)?;
        }
        self.copy_in(machine, plan.dtb_at, &dtb)?;
        self.psci.lock().reset(plan.entry, plan.dtb_at.raw());
        let mut uart = self.uart.lock();
        uart.reset();
        let mut physical = CellPhysical {
            machine,
            plan: &self.plan,
        };
        self.vgic.lock().reset(&mut physical);
        drop(uart);
        Ok(())
    }

    fn copy_in<M: Machine + ?Sized>(
        &self,
        machine: &mut M,
        at: GuestPhysAddr,
        bytes: &[u8],
    ) -> Result<(), CellError> {
        let pa = self
            .ipa_to_pa(at, bytes.len() as u64)
            .ok_or(CellError::OutsideRam(at))?;
        machine.write_memory(pa, bytes);
        Ok(())
    }
}

fn vgic_error(error: VgicError) -> MmioError {
    match error {
        VgicError::Unaligned => MmioError::Unaligned,
        VgicError::UnsupportedWidth => MmioError::BadWidth,
        _ => MmioError::BadOffset,
    }
}

/// A cell's emulated PL011 plus a backlog of console input that did not fit its receive FIFO
/// (typed or pasted faster than the guest reads), fed in as the guest drains the FIFO.
struct VirtualUart {
    device: Pl011,
    backlog: VecDeque<u8>,
}

/// Console input kept for a cell beyond its UART's FIFO; more is dropped.
const INPUT_BACKLOG: usize = 4096;

impl VirtualUart {
    fn new() -> Self {
        Self {
            device: Pl011::new(),
            backlog: VecDeque::new(),
        }
    }

    fn reset(&mut self) {
        self.device.reset();
        self.backlog.clear();
    }

    fn push_input(&mut self, byte: u8) {
        self.refill();
        if self.backlog.is_empty() && self.device.push_input(byte) {
            return;
        }
        if self.backlog.len() < INPUT_BACKLOG {
            self.backlog.push_back(byte);
        }
    }

    fn refill(&mut self) {
        while let Some(&byte) = self.backlog.front() {
            if !self.device.push_input(byte) {
                break;
            }
            self.backlog.pop_front();
        }
    }
}

/// Zeroes all of a cell's RAM; returns the bytes scrubbed.
fn scrub<M: Machine + ?Sized>(cell: &Cell, machine: &mut M) -> u64 {
    cell.plan
        .memory
        .iter()
        .map(|region| {
            machine.zero_memory(PhysAddr(region.physical.base), region.physical.size);
            region.physical.size
        })
        .sum()
}

/// What a management command did.
#[derive(Debug, Default)]
pub struct ManageOutcome {
    /// Lines to print.
    pub lines: Vec<String>,
    /// Physical CPUs to kick.
    pub kick: Vec<usize>,
    /// Move console focus to this cell.
    pub focus: Option<usize>,
    /// Leave the prompt.
    pub leave_prompt: bool,
}

/// The whole partition at run time.
pub struct Runtime {
    /// The board this image was built for.
    pub board: &'static Board,
    /// What the platform device tree said.
    pub platform: Platform,
    /// The cells, in layout order.
    pub cells: Vec<Cell>,
    cpu_owner: Vec<Option<(usize, usize)>>,
    /// Which cell owns each passthrough SPI: `(INTID, cell index)`, sorted.
    spi_owners: Vec<(u32, usize)>,
}

impl Runtime {
    /// Builds every cell of the validated partition: stage-2 tables, emulated devices, and loads
    /// their images. Nothing runs yet.
    pub fn build(
        board: &'static Board,
        platform: Platform,
        partition: Partition,
        bundle: Bundle<'static>,
        gic: GicInfo,
        machine: &mut dyn Machine,
    ) -> Result<Self, (usize, CellError)> {
        let mut cpu_owner = alloc::vec![None; platform.cpus.len()];
        let mut cells = Vec::new();
        let uart_window = platform.console.registers;
        let distributor_window = platform.gic.distributor;
        let redistributor_base = platform
            .gic
            .redistributor_regions
            .first()
            .map_or(0, |region| region.base);
        let mut passthrough_plans = Vec::new();
        for plan in &partition.cells {
            let passthrough = PassthroughPlan::for_cell(board, &partition, plan)
                .map_err(|error| (plan.index, CellError::Passthrough(error)))?;
            let nodes = passthrough
                .device_nodes(&platform)
                .map_err(|error| (plan.index, CellError::Passthrough(error)))?;
            passthrough_plans.push((passthrough, nodes));
        }
        let spi_owners = interrupt_owners(board, &partition)
            .map_err(|error| (0, CellError::Passthrough(error)))?;
        for ((index, plan), (passthrough, passthrough_nodes)) in partition
            .cells
            .into_iter()
            .enumerate()
            .zip(passthrough_plans)
        {
            for (vcpu, vcpu_plan) in plan.vcpus.iter().enumerate() {
                if let Some(owner) = cpu_owner.get_mut(vcpu_plan.physical_cpu) {
                    *owner = Some((index, vcpu));
                }
            }
            let mut stage2 =
                Stage2::new(plan.vmid).map_err(|error| (index, CellError::Stage2(error)))?;
            for region in &plan.memory {
                stage2
                    .map_ram(
                        GuestPhysAddr(region.guest_base()),
                        PhysAddr(region.physical.base),
                        region.physical.size,
                    )
                    .map_err(|error| (index, CellError::Stage2(error)))?;
            }
            // Pages wholly the cell's devices' are mapped (no trap on the data path); shared
            // pages stay unmapped and are forwarded byte-exactly.
            for page in passthrough.direct_pages() {
                stage2
                    .map_device(GuestPhysAddr(page.base), PhysAddr(page.base), page.size)
                    .map_err(|error| (index, CellError::Stage2(error)))?;
            }
            let vcpu_count = plan.vcpus.len();
            let uart_intid = platform.console.intid;
            let vgic_config = VgicConfig {
                vcpu_count,
                owned_spis: core::iter::once(SpiAssignment {
                    intid: uart_intid,
                    kind: SpiKind::Virtual,
                })
                .chain(passthrough.interrupts().iter().map(|&intid| SpiAssignment {
                    intid,
                    kind: SpiKind::Hardware,
                }))
                .collect(),
                spi_lines: gic.spi_lines,
                list_register_count: gic.list_register_count,
            };
            let vgic = Vgic::new(&vgic_config).map_err(|error| (index, CellError::Vgic(error)))?;
            let cell = Cell {
                index,
                bundle: bundle.clone(),
                stage2,
                state: AtomicU8::new(CellState::Running.to_u8()),
                psci: Mutex::new(PsciCell::new(vcpu_count, GuestPhysAddr(0), 0)),
                uart: Mutex::new(VirtualUart::new()),
                passthrough,
                passthrough_nodes,
                vgic: Mutex::new(vgic),
                uart_intid,
                in_guest: (0..vcpu_count).map(|_| AtomicBool::new(false)).collect(),
                started_at: AtomicU64::new(0),
                uart_window,
                distributor_window,
                redistributor_window: MemRange::new(
                    redistributor_base,
                    GICV3_REDISTRIBUTOR_STRIDE * vcpu_count as u64,
                ),
                counters: Counters::default(),
                fault_log: RateLimiter::new(),
                plan,
            };
            cell.load(&platform, machine)
                .map_err(|error| (index, error))?;
            cell.mark_started(machine.counter().0);
            cells.push(cell);
        }
        Ok(Self {
            board,
            platform,
            cells,
            cpu_owner,
            spi_owners,
        })
    }

    /// The cell and vCPU that physical CPU `cpu` runs, if any.
    pub fn owner_of_cpu(&self, cpu: usize) -> Option<(usize, usize)> {
        self.cpu_owner.get(cpu).copied().flatten()
    }

    /// Whether every cell is off.
    pub fn all_cells_off(&self) -> bool {
        self.cells.iter().all(|cell| cell.state() == CellState::Off)
    }

    /// Finishes a stop on the cell's home CPU once its own vCPU has left the guest: waits for the
    /// others, then leaves the cell off, restarts it, or wipes it.
    pub fn complete_stop<M: Machine + ?Sized>(
        &self,
        cell: &Cell,
        after: AfterStop,
        machine: &mut M,
    ) {
        cell.wait_until_out_of_guest(usize::MAX);
        cell.flush_console();
        match after {
            AfterStop::Off => {
                cell.set_state(CellState::Off);
                log::info!("cell {}: stopped", cell.name());
            }
            AfterStop::Restart | AfterStop::Start => {
                let (done, verb) = if after == AfterStop::Start {
                    ("started", "start")
                } else {
                    ("restarted", "restart")
                };
                scrub(cell, machine);
                match cell.load(&self.platform, machine) {
                    Ok(()) => {
                        if after == AfterStop::Restart {
                            cell.counters.restarts.fetch_add(1, Ordering::Relaxed);
                        }
                        cell.mark_started(machine.counter().0);
                        cell.set_state(CellState::Running);
                        log::info!("cell {}: {done}", cell.name());
                    }
                    Err(error) => {
                        cell.set_state(CellState::Off);
                        log::error!("cell {}: {verb} failed, left off: {error}", cell.name());
                    }
                }
            }
            AfterStop::Wipe => {
                let bytes = scrub(cell, machine);
                let left = cell
                    .plan
                    .memory
                    .iter()
                    .map(|region| {
                        machine.count_nonzero(PhysAddr(region.physical.base), region.physical.size)
                    })
                    .sum::<u64>();
                cell.set_state(CellState::Off);
                if left == 0 {
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

    /// Carries out a management-prompt command. Returns the lines to print and the physical CPUs
    /// to kick.
    pub fn manage<M: Machine + ?Sized>(&self, command: &Command, machine: &mut M) -> ManageOutcome {
        let mut outcome = ManageOutcome::default();
        let find = |name: &str| self.cells.iter().find(|cell| cell.name() == name);
        let lifecycle =
            |outcome: &mut ManageOutcome,
             name: &str,
             what: &'static str,
             allowed: fn(&CellPolicy) -> bool,
             request: &dyn Fn(&Cell) -> Result<(), LifecycleError>| {
                let Some(cell) = find(name) else {
                    outcome.lines.push(format!("no cell {name:?}: type cells"));
                    return;
                };
                if !allowed(&cell.plan.config.policy) {
                    outcome.lines.push(format!(
                        "{what} {name}: refused: {}",
                        LifecycleError::NotAllowed(what)
                    ));
                    return;
                }
                match request(cell) {
                    Ok(()) => {
                        outcome.lines.push(format!("{what} {name}: requested"));
                        outcome
                            .kick
                            .extend(cell.plan.vcpus.iter().map(|vcpu| vcpu.physical_cpu));
                    }
                    Err(error) => outcome
                        .lines
                        .push(format!("{what} {name}: refused: {error}")),
                }
            };
        match command {
            Command::Cells => {
                let (now, frequency) = machine.counter();
                let rows: Vec<CellSummary> = self
                    .cells
                    .iter()
                    .map(|cell| cell.summary(now, frequency))
                    .collect();
                outcome.lines = format_cells(&rows);
            }
            Command::Restart(name) => lifecycle(
                &mut outcome,
                name,
                "restart",
                |policy| policy.may_restart,
                &|cell| {
                    cell.request_stop(AfterStop::Restart);
                    Ok(())
                },
            ),
            Command::Stop(name) => lifecycle(
                &mut outcome,
                name,
                "stop",
                |policy| policy.may_stop,
                &|cell| {
                    cell.request_stop(AfterStop::Off);
                    Ok(())
                },
            ),
            Command::Start(name) => lifecycle(
                &mut outcome,
                name,
                "start",
                |policy| policy.may_stop,
                &Cell::request_start,
            ),
            Command::Wipe(name) => lifecycle(
                &mut outcome,
                name,
                "wipe",
                |policy| policy.may_wipe,
                &|cell| {
                    cell.request_stop(AfterStop::Wipe);
                    Ok(())
                },
            ),
            Command::Focus(name) => match self.cells.iter().position(|cell| cell.name() == name) {
                Some(index) => {
                    outcome.focus = Some(index);
                    outcome.leave_prompt = true;
                }
                None => outcome.lines.push(format!("no cell {name:?}: type cells")),
            },
            Command::Help => outcome
                .lines
                .extend(HELP.iter().map(|line| String::from(*line))),
            Command::Exit => outcome.leave_prompt = true,
        }
        outcome
    }

    /// Decides what happens to a physical interrupt physical CPU `cpu` acknowledged (other than
    /// the console UART's, which the arch glue drains itself).
    pub fn physical_interrupt(&self, cpu: usize, intid: u32) -> Disposition {
        let timers = [
            self.platform.timer.virtual_timer,
            self.platform.timer.nonsecure_physical,
        ];
        if timers.contains(&intid) {
            if let Some((cell_index, vcpu)) = self.owner_of_cpu(cpu)
                && let Some(cell) = self.cells.get(cell_index)
                && cell.is_in_guest(vcpu)
                && cell.forward_ppi(vcpu, intid)
            {
                return Disposition::Forwarded;
            }
            return Disposition::Deactivate;
        }
        let owner = self
            .spi_owners
            .binary_search_by_key(&intid, |&(owned, _)| owned)
            .ok()
            .and_then(|found| self.spi_owners.get(found))
            .and_then(|&(_, cell)| self.cells.get(cell));
        if let Some(cell) = owner {
            match cell.forward_spi(intid) {
                Some(Some(vcpu)) => match cell.physical_cpu_of(vcpu) {
                    Some(target) if target != cpu => return Disposition::ForwardedTo(target),
                    _ => return Disposition::Forwarded,
                },
                Some(None) => return Disposition::Forwarded,
                None => {}
            }
        }
        Disposition::Deactivate
    }

    /// The physical CPU of `vcpu` of cell `cell`, for kicks.
    pub fn cpu_of(&self, cell: &Cell, vcpu: usize) -> Option<usize> {
        cell.physical_cpu_of(vcpu)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
