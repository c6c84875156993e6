//! Just enough GICv3 for the interrupt tests (`test=sgis`, `test=timer-levels`): the distributor
//! and redistributor registers they use, and this vCPU's CPU interface through system registers.

use crate::timer;
use core::arch::asm;

/// GICv3 distributor and redistributors as QEMU `virt` places them (and a cell sees them).
const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080A_0000;
/// Bytes per redistributor (RD frame and SGI frame).
const GICR_STRIDE: u64 = 0x2_0000;
/// GICD_CTLR and its ARE_NS | EnableGrp1NS bits.
const GICD_CTLR: u64 = 0x0;
const GICD_CTLR_ENABLE: u32 = (1 << 4) | (1 << 1);
/// GICR_WAKER and its ProcessorSleep and ChildrenAsleep bits.
const GICR_WAKER: u64 = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICR_IGROUPR0, in the SGI frame.
const GICR_IGROUPR0: u64 = 0x1_0080;

/// ICC_IAR1_EL1's answer when nothing is pending.
pub const SPURIOUS_INTID: u32 = 1023;

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

fn read32(address: u64) -> u32 {
    // SAFETY: `address` is a GIC register in the device window every cell maps; it touches no
    // Rust object, and reads of the registers used here have no side effects.
    unsafe { (address as *const u32).read_volatile() }
}

fn write32(address: u64, value: u32) {
    // SAFETY: `address` is a GIC register in the device window; it touches no Rust object.
    unsafe { (address as *mut u32).write_volatile(value) }
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

/// Turns the distributor on: affinity routing and Group 1.
pub fn enable_distributor() {
    write32(GICD + GICD_CTLR, GICD_CTLR_ENABLE);
}

/// Wakes the redistributor of the vCPU with Aff0 `index`, makes its SGIs and PPIs Group 1 and
/// enables the ones in `enable`, and opens this vCPU's CPU interface (system registers, priority
/// mask, Group 1).
pub fn init_this_cpu(index: u64, enable: u32) {
    let frame = GICR + index * GICR_STRIDE;
    write32(
        frame + GICR_WAKER,
        read32(frame + GICR_WAKER) & !WAKER_PROCESSOR_SLEEP,
    );
    // Bounded: a redistributor that never wakes shows as a lost interrupt.
    let _ = timer::wait_until(crate::WAIT_MS, || {
        read32(frame + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0
    });
    write32(frame + GICR_IGROUPR0, u32::MAX);
    write_bits(index, Bits::SetEnable, enable);
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

/// Sends SGI `intid` to the vCPU with Aff0 `target` (Aff3..1 = 0) through ICC_SGI1R_EL1.
pub fn send_sgi(intid: u32, target: u32) {
    let value = u64::from(intid) << 24 | 1 << target;
    // SAFETY: ICC_SGI1R_EL1 is trapped by cellvisor and turned into a virtual SGI in this cell;
    // the DSB orders the counter reads before it, as a real IPI sender would.
    unsafe { asm!("dsb sy", "msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nostack)) };
}

/// Masks IRQs at this vCPU (sets PSTATE.I).
pub fn mask_irq() {
    // SAFETY: sets PSTATE.I; the compiler may not move memory accesses across it.
    unsafe { asm!("msr daifset, #2", options(nostack)) };
}

/// Unmasks IRQs at this vCPU (clears PSTATE.I); the vector table's IRQ entry must be in place.
pub fn unmask_irq() {
    // SAFETY: clears PSTATE.I; the IRQ vector (`exception::handle`) is in place from entry.
    unsafe { asm!("msr daifclr, #2", options(nostack)) };
}

/// Waits for an interrupt.
pub fn wfi() {
    // SAFETY: waits for an interrupt (trapped by cellvisor); no memory or register effects.
    unsafe { asm!("wfi", options(nomem, nostack)) };
}
