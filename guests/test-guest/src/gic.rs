//! The GICv3 pieces the interrupt tests (`test=sgis`, `test=spis`, `test=timer-levels`) share: the
//! distributor and redistributors where QEMU `virt` places them (and a cell sees them), this vCPU's
//! CPU interface through the system registers, and PSTATE.I.

use core::arch::asm;

/// GICv3 distributor and redistributors as QEMU `virt` places them (and a cell sees them).
pub const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080A_0000;
/// Bytes per redistributor (RD frame and SGI frame).
const GICR_STRIDE: u64 = 0x2_0000;
/// GICD_CTLR and its ARE_NS | EnableGrp1NS bits.
const GICD_CTLR: u64 = 0x0;
const GICD_CTLR_ENABLE: u32 = (1 << 4) | (1 << 1);
/// `GICD_IGROUPR<n>`, `GICD_ISENABLER<n>`, `GICD_IPRIORITYR<n>`, `GICD_ICFGR<n>`, `GICD_IROUTER<n>`.
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ICFGR: u64 = 0x0C00;
const GICD_IROUTER: u64 = 0x6000;
/// GICR_WAKER and its ProcessorSleep and ChildrenAsleep bits.
const GICR_WAKER: u64 = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICR_IGROUPR0 and GICR_ISENABLER0, in the SGI frame.
const GICR_IGROUPR0: u64 = 0x1_0080;
const GICR_ISENABLER0: u64 = 0x1_0100;
/// ICC_IAR1_EL1's answer when nothing is pending.
pub const SPURIOUS_INTID: u32 = 1023;
/// Priority given to the SPI (any value the priority mask 0xFF lets through).
const SPI_PRIORITY: u8 = 0xA0;

/// A register of a redistributor's SGI frame with one bit per SGI/PPI (INTIDs 0-31).
#[derive(Clone, Copy)]
pub enum Bits {
    /// GICR_ISENABLER0.
    SetEnable = 0x1_0100,
    /// GICR_ICENABLER0.
    ClearEnable = 0x1_0180,
    /// GICR_ISPENDR0.
    SetPending = 0x1_0200,
    /// GICR_ICPENDR0.
    ClearPending = 0x1_0280,
    /// GICR_ISACTIVER0.
    SetActive = 0x1_0300,
}

/// Trigger of an SPI, as its device tree `interrupts` flags give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Rising edge (flags 1).
    Edge,
    /// Level, high (flags 4).
    Level,
}

/// 32-bit device register accesses: one plain `ldr`/`str` each, so a trapped access carries a
/// valid syndrome (see [`cellvisor_guest_support::mmio`]).
pub use cellvisor_guest_support::mmio::{read32, write32};

fn write64(address: u64, value: u64) {
    // SAFETY: as for `write32`; GICD_IROUTER<n> takes 64-bit accesses.
    unsafe { (address as *mut u64).write_volatile(value) }
}

/// Reads `register` of the redistributor of the vCPU with Aff0 `index`.
pub fn read_bits(index: u64, register: Bits) -> u32 {
    read32(GICR + index * GICR_STRIDE + register as u64)
}

/// Writes `value` to `register` of the redistributor of the vCPU with Aff0 `index`.
pub fn write_bits(index: u64, register: Bits, value: u32) {
    write32(GICR + index * GICR_STRIDE + register as u64, value);
}

/// Reads GICD_CTLR (a trapped access under cellvisor that touches no interrupt's state).
pub fn distributor_control() -> u32 {
    read32(GICD + GICD_CTLR)
}

/// Enables the distributor for group 1 (affinity routing on).
pub fn enable_distributor() {
    write32(GICD + GICD_CTLR, GICD_CTLR_ENABLE);
}

/// Makes SPI `intid` group 1 with `trigger`, routes it to the vCPU with Aff0 `target` (Aff3..1 =
/// 0) and enables it at the distributor.
pub fn route_spi(intid: u32, trigger: Trigger, target: u8) {
    let (word, bit) = (u64::from(intid / 32) * 4, intid % 32);
    write32(
        GICD + GICD_IGROUPR + word,
        read32(GICD + GICD_IGROUPR + word) | 1 << bit,
    );
    let config = GICD + GICD_ICFGR + u64::from(intid / 16) * 4;
    let edge_bit = 1 << (2 * (intid % 16) + 1);
    let value = read32(config) & !edge_bit;
    write32(
        config,
        if trigger == Trigger::Edge {
            value | edge_bit
        } else {
            value
        },
    );
    let priority = GICD + GICD_IPRIORITYR + u64::from(intid / 4) * 4;
    let shift = 8 * (intid % 4);
    write32(
        priority,
        (read32(priority) & !(0xFF << shift)) | u32::from(SPI_PRIORITY) << shift,
    );
    write64(
        GICD + GICD_IROUTER + u64::from(intid) * 8,
        u64::from(target),
    );
    write32(GICD + GICD_ISENABLER + word, 1 << bit);
}

/// Wakes the redistributor of vCPU `index`, makes its SGIs and PPIs group 1 and enables those in
/// `enable` (bit n = INTID n), and opens this vCPU's CPU interface (system registers, priority
/// mask, group 1).
pub fn init_this_cpu(index: u64, enable: u32) {
    let frame = GICR + index * GICR_STRIDE;
    write32(
        frame + GICR_WAKER,
        read32(frame + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    // Bounded: a redistributor that never wakes shows as a lost interrupt.
    let _ = crate::timer::wait_until(crate::WAIT_MS, || {
        read32(frame + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0
    });
    write32(frame + GICR_IGROUPR0, u32::MAX);
    if enable != 0 {
        write32(frame + GICR_ISENABLER0, enable);
    }
    // SAFETY: ICC_SRE_EL1 = SRE | DFB | DIB (the system-register interface), ICC_PMR_EL1 = 0xFF
    // (every priority) and ICC_IGRPEN1_EL1 = 1 only configure this vCPU's CPU interface.
    unsafe {
        asm!(
            "msr S3_0_C12_C12_5, {sre}",
            "isb",
            "msr S3_0_C4_C6_0, {pmr}",
            "msr S3_0_C12_C12_7, {enable}",
            "isb",
            sre = in(reg) 0x7u64,
            pmr = in(reg) 0xFFu64,
            enable = in(reg) 1u64,
            options(nomem, nostack),
        )
    };
}

/// Sends SGI `intid` to the vCPU with Aff0 `target` (Aff3..1 = 0) through ICC_SGI1R_EL1.
pub fn send_sgi(intid: u32, target: u32) {
    let value = u64::from(intid) << 24 | 1 << target;
    // SAFETY: ICC_SGI1R_EL1 is trapped by cellvisor and turned into a virtual SGI in this cell;
    // the DSB orders the counter reads before it, as a real IPI sender would.
    unsafe { asm!("dsb sy", "msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nostack)) };
}

/// ICC_IAR1_EL1: acknowledges the highest-priority pending group-1 interrupt.
pub fn acknowledge() -> u32 {
    let value: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges an interrupt (the caller ends it); no memory.
    unsafe { asm!("mrs {}, S3_0_C12_C12_0", out(reg) value, options(nomem, nostack)) };
    (value & 0xFF_FFFF) as u32
}

/// ICC_EOIR1_EL1: ends (EOImode 0: also deactivates) `intid`.
pub fn end_of_interrupt(intid: u32) {
    // SAFETY: ends the interrupt this vCPU acknowledged; no memory.
    unsafe { asm!("msr S3_0_C12_C12_1, {}", in(reg) u64::from(intid), options(nomem, nostack)) };
}

/// Sets PSTATE.I.
pub fn mask_irq() {
    // SAFETY: sets PSTATE.I; the compiler may not move memory accesses across it.
    unsafe { asm!("msr daifset, #2", options(nostack)) };
}

/// Clears PSTATE.I.
pub fn unmask_irq() {
    // SAFETY: clears PSTATE.I; the IRQ vector (`exception::handle`) is in place from `cpu_setup`.
    unsafe { asm!("msr daifclr, #2", options(nostack)) };
}

/// Waits for an interrupt (trapped by cellvisor).
pub fn wfi() {
    // SAFETY: waits for an interrupt; no memory or register effects.
    unsafe { asm!("wfi", options(nomem, nostack)) };
}
