//! Just enough GICv3 to receive SGIs, the virtual timer PPI and a level-triggered SPI: the
//! distributor and this vCPU's redistributor (emulated by cellvisor, real under native QEMU) and
//! the system-register CPU interface (virtual under cellvisor).

use crate::sys::{self, read_sysreg, write_sysreg};

/// GICD base (cell view and QEMU virt).
pub const GICD_BASE: usize = 0x0800_0000;
/// GICD_CTLR.
const GICD_CTLR: usize = 0x0000;
/// GICD_IIDR: a read-only identification register (trapped and emulated under cellvisor).
pub const GICD_IIDR: usize = 0x0008;
/// GICD_IPRIORITYR for SPIs 40..43: a harmless register to write.
pub const GICD_IPRIORITYR_SPI40: usize = 0x0428;
/// GICD_IGROUPR<n>, GICD_ISENABLER<n>, GICD_IPRIORITYR<n>, GICD_ICFGR<n>, GICD_IROUTER<n>.
const GICD_IGROUPR: usize = 0x0080;
const GICD_ISENABLER: usize = 0x0100;
const GICD_IPRIORITYR: usize = 0x0400;
const GICD_ICFGR: usize = 0x0C00;
const GICD_IROUTER: usize = 0x6000;
/// Priority given to an SPI (any value the priority mask 0xFF lets through).
const SPI_PRIORITY: u32 = 0xA0;
/// GICD_CTLR.RWP: register write pending.
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR: ARE (ARE_NS in the non-secure view) and EnableGrp1 (EnableGrp1A).
const GICD_CTLR_ENABLE: u32 = (1 << 4) | (1 << 1);
/// First redistributor; one 128 KiB frame pair per vCPU.
const GICR_BASE: usize = 0x080A_0000;
/// Redistributor stride.
const GICR_STRIDE: usize = 0x2_0000;
/// GICR_WAKER.
const GICR_WAKER: usize = 0x0014;
/// GICR_WAKER.ProcessorSleep.
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep.
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// Offset of the SGI/PPI frame.
const SGI_FRAME: usize = 0x1_0000;
/// GICR_IGROUPR0 (SGI frame).
const GICR_IGROUPR0: usize = SGI_FRAME + 0x0080;
/// GICR_ISENABLER0 (SGI frame).
const GICR_ISENABLER0: usize = SGI_FRAME + 0x0100;
/// Spurious INTID.
pub const SPURIOUS: u64 = 1023;

/// SGI the IPI ping-pong uses.
pub const SGI_IPI: u64 = 0;
/// SGI a vCPU sends itself for the EOI measurement.
pub const SGI_SELF: u64 = 1;
/// The EL1 virtual timer PPI.
pub const VIRTUAL_TIMER: u64 = 27;

/// Reads a 32-bit GIC register.
#[inline(always)]
pub fn read32(address: usize) -> u32 {
    // SAFETY: `address` is a GIC register in the device window every cell and native QEMU map;
    // reads of the registers used here have no side effects.
    unsafe { (address as *const u32).read_volatile() }
}

/// Writes a 32-bit GIC register.
#[inline(always)]
pub fn write32(address: usize, value: u32) {
    // SAFETY: `address` is a GIC register in the device window; it touches no Rust memory.
    unsafe { (address as *mut u32).write_volatile(value) }
}

/// Makes SPI `intid` group 1 and level-sensitive, routes it to the vCPU with Aff0 `target`
/// (Aff3..1 = 0) and enables it at the distributor (trapped and emulated under cellvisor, which
/// routes the physical SPI of a passed-through line to the target vCPU's CPU).
pub fn route_level_spi(intid: u32, target: u64) {
    let intid = intid as usize;
    let (word, bit) = (intid / 32 * 4, intid % 32);
    let group = GICD_BASE + GICD_IGROUPR + word;
    write32(group, read32(group) | 1 << bit);
    let config = GICD_BASE + GICD_ICFGR + intid / 16 * 4;
    write32(config, read32(config) & !(1 << (2 * (intid % 16) + 1)));
    let priority = GICD_BASE + GICD_IPRIORITYR + intid / 4 * 4;
    let shift = 8 * (intid % 4);
    write32(
        priority,
        (read32(priority) & !(0xFF << shift)) | SPI_PRIORITY << shift,
    );
    let router = (GICD_BASE + GICD_IROUTER + intid * 8) as *mut u64;
    // SAFETY: GICD_IROUTER<intid> is a 64-bit distributor register in the device window; it
    // touches no Rust memory.
    unsafe { router.write_volatile(target) };
    write32(GICD_BASE + GICD_ISENABLER + word, 1 << bit);
}

/// Enables the distributor (affinity routing, group 1). vCPU 0 calls it once.
pub fn init_distributor() {
    write32(GICD_BASE + GICD_CTLR, GICD_CTLR_ENABLE);
    for _ in 0..1_000_000 {
        if read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP == 0 {
            break;
        }
    }
}

/// Wakes this vCPU's redistributor, makes SGIs/PPIs group 1, enables the benchmark's interrupts
/// and the CPU interface.
pub fn init_this_cpu() {
    let index = usize::try_from(sys::vcpu_index()).unwrap_or(0);
    let redistributor = GICR_BASE + index * GICR_STRIDE;
    let waker = read32(redistributor + GICR_WAKER);
    write32(redistributor + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
    for _ in 0..1_000_000 {
        if read32(redistributor + GICR_WAKER) & WAKER_CHILDREN_ASLEEP == 0 {
            break;
        }
    }
    write32(redistributor + GICR_IGROUPR0, u32::MAX);
    write32(
        redistributor + GICR_ISENABLER0,
        (1 << SGI_IPI) | (1 << SGI_SELF) | (1 << VIRTUAL_TIMER),
    );
    // SRE, DFB, DIB: the system-register interface (QEMU and cellvisor both require it).
    write_sysreg!("icc_sre_el1", 0x7);
    sys::isb();
    write_sysreg!("icc_pmr_el1", 0xFF);
    write_sysreg!("icc_bpr1_el1", 0);
    write_sysreg!("icc_ctlr_el1", 0);
    write_sysreg!("icc_igrpen1_el1", 1);
    sys::isb();
}

/// ICC_SGI1R_EL1 value sending `intid` to the vCPU with Aff0 `target` (Aff1..3 = 0).
#[inline(always)]
pub fn sgi_value(intid: u64, target: u64) -> u64 {
    (intid << 24) | (1 << target)
}

/// Sends the SGI described by `value` (see [`sgi_value`]).
#[inline(always)]
pub fn send_sgi(value: u64) {
    sys::dsb();
    write_sysreg!("icc_sgi1r_el1", value);
    sys::isb();
}

/// Acknowledges the highest-priority pending group-1 interrupt.
#[inline(always)]
pub fn acknowledge() -> u64 {
    let intid = read_sysreg!("icc_iar1_el1") & 0xFF_FFFF;
    sys::dsb();
    intid
}

/// Ends (and, with EOImode 0, deactivates) `intid`.
#[inline(always)]
pub fn end_of_interrupt(intid: u64) {
    write_sysreg!("icc_eoir1_el1", intid);
}
