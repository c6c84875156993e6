//! The GICv2 (GIC-400) side of [`crate::gic`]: the distributor (emulated by cellvisor, QEMU's
//! GICv2 natively) and the memory-mapped CPU interface `GICC` (under cellvisor the hardware GICV
//! frame mapped in stage 2, so acknowledge and EOI do not trap). No GICv3 system register is
//! touched: a GICv2 has none.
//!
//! Every interrupt stays Group 0 and is signalled as an IRQ: cellvisor's GICv2 view has only
//! Group 0 (`GICD_IGROUPR` RAZ/WI; its list registers present Group 0 with `GICV_CTLR.FIQEn`
//! clear), and QEMU's GICv2 on `virt` (no Security Extensions without `secure=on`) resets every
//! interrupt to Group 0, which `GICC_CTLR.FIQEn` = 0 signals as an IRQ.

use crate::gic::{GICD_BASE, GICD_ISENABLER, read32, write32};
use crate::sys;

/// `GICD_CTLR.EnableGrp0` (`Enable` in cellvisor's view).
const GICD_CTLR_ENABLE_GROUP0: u32 = 1;
/// `GICD_ITARGETSR<n>`: one CPU-target byte per INTID.
const GICD_ITARGETSR: usize = 0x0800;
/// `GICD_SGIR`: software-generated interrupts.
const GICD_SGIR: usize = 0x0F00;
/// `GICD_SGIR.CPUTargetList` (TargetListFilter 0: the CPUs the list names).
const SGIR_TARGET_LIST_SHIFT: u64 = 16;
/// GICC base (cell view and QEMU virt with `gic-version=2`).
const GICC_BASE: usize = 0x0801_0000;
/// `GICC_CTLR`, `GICC_PMR`, `GICC_BPR`, `GICC_IAR`, `GICC_EOIR`.
const GICC_CTLR: usize = 0x0000;
const GICC_PMR: usize = 0x0004;
const GICC_BPR: usize = 0x0008;
const GICC_IAR: usize = 0x000C;
const GICC_EOIR: usize = 0x0010;
/// `GICC_CTLR.EnableGrp0`, with FIQEn clear (Group 0 as IRQ) and EOImode 0 (EOI deactivates).
const GICC_CTLR_ENABLE_GROUP0: u32 = 1;
/// `GICC_IAR.InterruptID`; bits [12:10] (CPUID) name an SGI's sender and go back with the EOI.
const IAR_INTERRUPT_ID: u32 = 0x3FF;

/// Enables the distributor (Group 0).
pub fn init_distributor() {
    write32(GICD_BASE, GICD_CTLR_ENABLE_GROUP0);
}

/// Enables `enable` (a bit per SGI or PPI) in this CPU's banked `GICD_ISENABLER0` and this CPU's
/// interface, with every priority let through.
pub fn init_this_cpu(enable: u32) {
    write32(GICD_BASE + GICD_ISENABLER, enable);
    write32(GICC_BASE + GICC_PMR, 0xFF);
    write32(GICC_BASE + GICC_BPR, 0);
    write32(GICC_BASE + GICC_CTLR, GICC_CTLR_ENABLE_GROUP0);
}

/// Targets SPI `intid` at the CPU interface `target` (the cell's vCPU `target` under cellvisor).
pub fn target_spi(intid: usize, target: u64) {
    let register = GICD_BASE + GICD_ITARGETSR + intid / 4 * 4;
    let shift = 8 * (intid % 4);
    let mask = (1u32 << (target & 7)) << shift;
    write32(register, (read32(register) & !(0xFF << shift)) | mask);
}

/// `GICD_SGIR` value sending `intid` to the CPU interface `target`.
#[inline(always)]
pub fn sgi_value(intid: u64, target: u64) -> u64 {
    (1 << (SGIR_TARGET_LIST_SHIFT + (target & 7))) | intid
}

/// Writes `value` (see [`sgi_value`]) to `GICD_SGIR` (trapped and emulated under cellvisor).
#[inline(always)]
pub fn send_sgi(value: u64) {
    sys::dsb();
    write32(GICD_BASE + GICD_SGIR, value as u32);
    sys::isb();
}

/// Reads `GICC_IAR`: the INTID and the whole value, which the EOI writes back.
#[inline(always)]
pub fn acknowledge() -> (u64, u64) {
    let iar = read32(GICC_BASE + GICC_IAR);
    sys::dsb();
    (u64::from(iar & IAR_INTERRUPT_ID), u64::from(iar))
}

/// Writes `iar` (as [`acknowledge`] read it) to `GICC_EOIR`: priority drop and deactivation.
#[inline(always)]
pub fn end_of_interrupt(iar: u64) {
    write32(GICC_BASE + GICC_EOIR, iar as u32);
}
