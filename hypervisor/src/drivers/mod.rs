//! Drivers of the physical devices cellvisor itself owns: the interrupt controller's distributor
//! and redistributors ([`gicv3`]), or a GICv2's distributor, CPU interface and virtual interface
//! control ([`gicv2`]), and the console UART ([`pl011`], [`ns16550`]), each behind a narrow trait
//! the arch glue uses; [`counter`], the system counter read around a SoC's erratum; and
//! [`fw_cfg`], QEMU's firmware configuration device, through which its `ramfb` display is set.
//!
//! Drivers are MMIO only (no system registers, no assembly) and build on the host too; they decide
//! nothing about which cell gets what.

pub mod counter;
pub mod fw_cfg;
mod gic_mmio;
mod gic_spi;
pub mod gicv2;
pub mod gicv3;
pub mod ns16550;
pub mod pl011;
pub mod smmuv3;

/// The physical interrupt controller's distributor side: what the boot path and the core's
/// passthrough configuration need. Methods take `&self` because every CPU uses the one controller
/// at once; each call is a few independent register writes.
pub trait InterruptController: Send + Sync {
    /// Global setup on the boot CPU: every SPI disabled, Group 1, default priority; affinity
    /// routing and Group 1 forwarding on.
    fn init(&self);
    /// Per-CPU setup for the CPU with affinity `mpidr`: wakes its redistributor, makes its SGIs
    /// and PPIs Group 1 with the default priority and enables the SGIs and `ppis`. False if the
    /// CPU has no redistributor.
    fn init_cpu(&self, mpidr: u64, ppis: &[u32]) -> bool;
    /// `GICD_TYPER.ITLinesNumber`: the controller handles INTIDs below 32 × (this + 1).
    fn it_lines_number(&self) -> u32;
    /// Enables or disables SPI `intid` (ignored for anything that is not an implemented SPI).
    fn set_spi_enabled(&self, intid: u32, enabled: bool);
    /// Sets the priority of SPI `intid`, never above cellvisor's own interrupts' priority.
    fn set_spi_priority(&self, intid: u32, priority: u8);
    /// Sets SPI `intid` edge-triggered (`true`) or level-sensitive.
    fn set_spi_edge_triggered(&self, intid: u32, edge: bool);
    /// Routes SPI `intid` to the CPU with affinity `mpidr` without changing its enable.
    fn route_spi(&self, intid: u32, mpidr: u64);
    /// Deactivates `intid`: an SPI for the whole machine, an SGI or PPI of the CPU with affinity
    /// `mpidr` (which need not be the calling CPU).
    fn deactivate_on(&self, intid: u32, mpidr: u64);
    /// Whether `intid` is pending (`GICD_ISPENDR`, or for an SGI or PPI the `GICR_ISPENDR0` of
    /// the CPU with affinity `mpidr`). For a level-sensitive interrupt that is its line, also
    /// while it is active. False for an INTID the controller does not implement.
    fn is_pending(&self, intid: u32, mpidr: u64) -> bool;
    /// The active bits of the SGIs and PPIs of the CPU with affinity `mpidr` (`GICR_ISACTIVER0`,
    /// or a GICv2's banked `GICD_ISACTIVER0`, readable by that CPU only: 0 for another).
    fn private_active(&self, mpidr: u64) -> u32;
    /// Makes the SGIs and PPIs whose bits `bits` sets active on the CPU with affinity `mpidr`
    /// (a GICv2: only on the calling CPU), the others unchanged.
    fn activate_private(&self, mpidr: u64, bits: u32);
}

/// The console UART cellvisor owns.
pub trait ConsoleUart: Send {
    /// Sends bytes, giving up on a byte after a bounded wait so a stuck UART cannot hang EL2.
    fn write_bytes(&mut self, bytes: &[u8]);
    /// Sends the leading bytes that fit in the transmit FIFO now, without waiting; returns how many.
    fn try_write_bytes(&mut self, bytes: &[u8]) -> usize;
    /// Enables or disables the transmit interrupt (the FIFO drained below its trigger level), on
    /// the same SPI as the receive interrupts. Enabling arms it only while the FIFO holds bytes
    /// (only then will it drain); the caller asks again after writing more.
    fn set_transmit_interrupt(&mut self, enabled: bool);
    /// A received byte, if one is waiting; line errors drop the byte.
    fn read_byte(&mut self) -> Option<u8>;
    /// Enables the receive interrupts, so console input raises the UART's SPI.
    fn enable_receive_interrupt(&mut self);
    /// Clears the receive interrupts (before draining the receive FIFO).
    fn clear_receive_interrupt(&mut self);
}
