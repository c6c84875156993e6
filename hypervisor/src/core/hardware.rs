//! What the core asks of the hardware: the [`Machine`] outside a guest run and the
//! [`VcpuHardware`] of one physical CPU, plus the register file saved at every exit.
//!
//! `arch::aarch64` implements both with real registers, `arch::fake` with plain Rust for the host
//! tests of the run loop.
#![forbid(unsafe_code)]

use crate::core::cell::Cell;
use crate::core::exit::RunningVcpu;
use crate::core::inject::Injection;
use crate::dev::mmio::AccessWidth;
use crate::dev::vgic::ListRegisters;
pub use crate::dev::virtio::input::InputEvent;
use crate::mem::addr::{GuestPhysAddr, PhysAddr};

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

/// A forwarded device access that the device answered with an external abort (a clock-gated or
/// powered-down block on a real SoC): the guest's access is refused with an abort of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceAbort;

/// A transaction of a device that the SMMU refused, as its event record says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaFault {
    /// The stream (PCI requester ID).
    pub stream: u32,
    /// The address the device used (a guest-physical address of its cell).
    pub address: u64,
    /// A write (else a read).
    pub write: bool,
    /// What kind of fault (`translation`, `permission`, ...).
    pub kind: &'static str,
}

/// The SMMU could not carry out a change of a stream's translation (a command error or timeout,
/// or no SMMU at all): the stream's DMA state is not known to be what was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaControlError;

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
    /// The fast path handled an exit after which the vCPU leaves its guest.
    Leave,
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

/// What the core needs from the machine outside a guest run: physical memory (image loading,
/// scrubbing, cache maintenance), the physical GIC's SPIs (passthrough) and the system counter.
pub trait Machine {
    /// Copies `bytes` to physical address `address`, visible to a guest with caches off.
    fn write_memory(&mut self, address: PhysAddr, bytes: &[u8]);
    /// Copies `buffer.len()` bytes of RAM at physical `address` (a cell's, or cellvisor's own)
    /// into `buffer`: what a guest or a device last wrote there (emulated devices' queues).
    fn read_memory(&mut self, address: PhysAddr, buffer: &mut [u8]);
    /// Zeroes `length` bytes at `address`, visible to a guest with caches off.
    fn zero_memory(&mut self, address: PhysAddr, length: u64);
    /// Cleans and invalidates `length` bytes at `address` (RAM of a cell) from every cache to the
    /// point of coherency, by address: a guest's set/way maintenance done on its own memory.
    fn clean_invalidate_memory(&mut self, address: PhysAddr, length: u64);
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
    /// Whether the level-sensitive physical interrupt `intid` (for a PPI: the one of physical
    /// CPU `cpu`), which EL2 acknowledged and holds active for a hardware-linked virtual
    /// interrupt, is still asserted by its source. The vGIC samples it where a guest could see
    /// the difference (docs/architecture.md, "Level-sensitive interrupts follow their line").
    fn interrupt_line_asserted(&mut self, intid: u32, cpu: usize) -> bool;
    /// Reads a passthrough device register at `address` (Device memory, naturally aligned).
    fn device_read(&mut self, address: PhysAddr, width: AccessWidth) -> Result<u64, DeviceAbort>;
    /// Writes a passthrough device register at `address` (Device memory, naturally aligned).
    fn device_write(
        &mut self,
        address: PhysAddr,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), DeviceAbort>;
    /// Counts the non-zero bytes in `length` bytes at `address` (to verify a wipe).
    fn count_nonzero(&mut self, address: PhysAddr, length: u64) -> u64;
    /// The system counter and its frequency in Hz.
    fn counter(&self) -> (u64, u64);
    /// Lets the DMA of SMMU stream `stream` through the stage-2 table of the cell with `vmid`
    /// (its root table at `root`): the device then sees exactly the cell's guest-physical space.
    fn dma_allow(&mut self, stream: u32, vmid: u16, root: PhysAddr) -> Result<(), DmaControlError>;
    /// Makes stream `stream` abort every transaction; when this returns, none of its DMA reaches
    /// memory any more (the SMMU's configuration and TLB entries for `vmid` are invalidated and
    /// the invalidation has completed).
    fn dma_block(&mut self, stream: u32, vmid: u16) -> Result<(), DmaControlError>;
}

/// What the run loop needs from the physical CPU it runs on.
pub trait VcpuHardware: Machine {
    /// The vCPU interface registers of this CPU.
    type Lists: ListRegisters;
    /// This CPU's index in the platform's `/cpus` order.
    fn cpu(&self) -> usize;
    /// This CPU's list registers, for the vGIC's flush and sync.
    fn list_registers(&mut self) -> &mut Self::Lists;
    /// Called when the vCPU leaves its guest for good (CPU_OFF, cell stop or reset): quiesces the
    /// per-CPU devices the guest may have left running (its timers) and clears the list registers.
    fn quiesce(&mut self);
    /// Configures EL2 for `vcpu` of `cell` (stage 2, virtual MPIDR, traps) and resets its EL1 state.
    fn prepare(&mut self, cell: &Cell, vcpu: usize);
    /// Runs the guest of `running` (its registers in `running.regs`) until an exit that
    /// [`crate::core::fast::exit`] leaves to the run loop: the glue hands every exit to the fast
    /// path first and resumes the guest at once where it handled it.
    fn enter(&mut self, running: &mut RunningVcpu<'_>) -> ExitKind;
    /// ESR/FAR/HPFAR of the last synchronous exit.
    fn syndrome(&self) -> Syndrome;
    /// VBAR_EL1 of the running guest.
    fn vbar_el1(&self) -> u64;
    /// SCTLR_EL1 of the running guest.
    fn sctlr_el1(&self) -> u64;
    /// PMCR_EL0 of this CPU (the running guest's PMU control).
    fn pmcr_el0(&self) -> u64;
    /// Writes PMCR_EL0 of this CPU for the running guest (trapped by MDCR_EL2.TPMCR).
    fn set_pmcr_el0(&mut self, value: u64);
    /// Writes ESR_EL1, FAR_EL1, ELR_EL1 and SPSR_EL1 for an injected exception.
    fn write_injection(&mut self, injection: &Injection);
    /// Makes a virtual SError pending for the running guest (taken when it unmasks PSTATE.A),
    /// with `syndrome` (ESR_EL2 of the physical SError) as its ESR where the CPU has FEAT_RAS.
    fn inject_serror(&mut self, syndrome: u64);
    /// Acknowledges the highest-priority pending physical interrupt and drops its running
    /// priority (EOImode 1: it stays active until [`VcpuHardware::deactivate`] or a guest EOI of
    /// the hardware-linked virtual interrupt). `None` when nothing is pending.
    fn acknowledge_interrupt(&mut self) -> Option<u32>;
    /// Hands an acknowledged interrupt back: the next [`VcpuHardware::acknowledge_interrupt`]
    /// returns it first (the fast path acknowledged it but leaves it to the run loop).
    fn defer_interrupt(&mut self, intid: u32);
    /// Deactivates physical interrupt `intid` on this CPU.
    fn deactivate(&mut self, intid: u32);
    /// Reads what the console UART received into `buffer` and clears its receive interrupt;
    /// returns the number of bytes.
    fn console_receive(&mut self, buffer: &mut [u8]) -> usize;
    /// Hands the DMA faults the SMMU recorded since the last call to `sink` (bounded: at most
    /// one event queue's worth) and acknowledges them and the SMMU's global errors.
    fn dma_faults(&mut self, sink: &mut dyn FnMut(DmaFault));
    /// Waits until a physical interrupt is pending on this CPU (it is not taken at EL2).
    fn wait_for_interrupt(&mut self);
    /// Makes physical CPU `cpu` leave its guest (or idle wait) and look at its state again; a
    /// kick of this CPU itself does nothing.
    fn kick(&mut self, cpu: usize);
    /// Powers the whole machine off.
    fn power_off(&mut self) -> !;
    /// Stops this CPU for good (the machine stays on; the other CPUs idle).
    fn halt(&mut self) -> !;
    /// Makes the cell's freshly written memory visible to a guest that starts with caches off.
    fn sync_guest_memory(&mut self, cell: &Cell);

    /// Everything of a descheduled vCPU that lives in a physical CPU's registers while it runs,
    /// kept by the run loop between [`VcpuHardware::save_vcpu`] and
    /// [`VcpuHardware::restore_vcpu`] (time-sharing, docs/architecture.md "Time-sharing").
    type Saved: Default;
    /// Saves the state of the vCPU loaded on this CPU into `saved` (EL1 system registers,
    /// FP/SIMD/SVE, both EL1 timers, the virtual CPU interface: list registers, active
    /// priorities, VMCR, HCR), then leaves none of it live: the EL1 timers are off, the list
    /// registers empty, and a guest timer PPI that EL2 holds active for a hardware-linked list
    /// register is deactivated (its active state is part of `saved`). The general-purpose
    /// registers are the run loop's (`GuestRegs`).
    fn save_vcpu(&mut self, saved: &mut Self::Saved);
    /// Loads `vcpu` of `cell` again: EL2 configured for it as [`VcpuHardware::prepare`] does
    /// (stage 2, virtual MPIDR, traps, the cell's virtual counter offset), then every register
    /// [`VcpuHardware::save_vcpu`] saved.
    fn restore_vcpu(&mut self, cell: &Cell, vcpu: usize, saved: &Self::Saved);
    /// The physical counter value at which a timer of the saved vCPU asserts its interrupt
    /// (enabled and not masked), the earliest of the two; `None` when neither is armed.
    fn saved_timer_deadline(&self, saved: &Self::Saved) -> Option<u64>;
    /// Arms the EL2 physical timer (CNTHP) to interrupt this CPU at counter value `deadline`,
    /// or disarms it (`None`), for the time-sharing scheduler. The timer fires at the earlier of
    /// this and the [`set_screen_timer`](Self::set_screen_timer) deadline.
    fn set_slice_timer(&mut self, deadline: Option<u64>);
    /// Arms (or disarms) this CPU's EL2 timer for the screen: the end of a switch banner.
    fn set_screen_timer(&mut self, deadline: Option<u64>);
    /// Points the physical screen's scanout at `frame` (RAM the display reads directly). Returns
    /// whether the screen took it (false: no screen, or the hardware refused the configuration).
    fn scanout(&mut self, frame: &ScanoutFrame) -> bool;
    /// Hands `sink` the events physical input device `device` (in probe order, see
    /// [`crate::core::runtime::Peripherals`]) reported since the last call, after its interrupt.
    fn input_events(&mut self, device: usize, sink: &mut dyn FnMut(InputEvent));
}

/// A frame for the physical screen: RAM its scanout reads directly, and how it is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanoutFrame {
    /// The first pixel's physical address.
    pub address: PhysAddr,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Bytes from one line to the next.
    pub stride: u32,
    /// The pixel format as a DRM fourcc code (what QEMU's ramfb takes).
    pub fourcc: u32,
}
