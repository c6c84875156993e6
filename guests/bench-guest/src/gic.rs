//! Just enough GIC to receive SGIs, the virtual timer PPI and a level-triggered SPI, on a GICv3
//! or a GICv2 (GIC-400), whichever [`detect`] finds. GICv3: the distributor and this vCPU's
//! redistributor (emulated by cellvisor, real under native QEMU) and the system-register CPU
//! interface (virtual under cellvisor); GICv2: [`crate::gicv2`].

use core::sync::atomic::{AtomicBool, Ordering};

use crate::gicv2;
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
pub const GICD_ISENABLER: usize = 0x0100;
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
/// `GICD_PIDR2` in a GICv2's 4 KiB distributor frame; its ArchRev (bits [7:4]) is 2 on QEMU's
/// GICv2 and in cellvisor's GICv2 view (both 0x2B, as a GIC-400's). On a GICv3 the offset is
/// reserved and reads as zero (its PIDR2 is at 0xFFE8), natively and under cellvisor.
const GICD_PIDR2_V2: usize = 0x0FE8;
/// `GICD_PIDR2.ArchRev` of a GICv2.
const ARCH_REV_GICV2: u32 = 2;

/// Whether the GIC is a GICv2 (set by [`detect`] before any vCPU initialises its interface).
static GICV2: AtomicBool = AtomicBool::new(false);

/// An acknowledged interrupt.
#[derive(Clone, Copy)]
pub struct Interrupt {
    /// Its INTID.
    pub intid: u64,
    /// What its EOI writes: the INTID on GICv3, the whole `GICC_IAR` value on GICv2 (an SGI's
    /// sender included).
    eoi: u64,
}

impl Interrupt {
    /// What an acknowledge returns when nothing is pending.
    pub const SPURIOUS: Self = Self {
        intid: SPURIOUS,
        eoi: SPURIOUS,
    };
}

/// Finds out which GIC the guest has, from the distributor's `GICD_PIDR2` at the GICv2 offset.
/// vCPU 0 calls it first, before starting vCPU 1.
pub fn detect() {
    let arch_rev = (read32(GICD_BASE + GICD_PIDR2_V2) >> 4) & 0xF;
    GICV2.store(arch_rev == ARCH_REV_GICV2, Ordering::SeqCst);
}

/// Whether [`detect`] found a GICv2.
#[inline(always)]
pub fn is_gicv2() -> bool {
    GICV2.load(Ordering::Relaxed)
}

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

/// Makes SPI `intid` level-sensitive (and group 1 on GICv3), routes it to the vCPU with Aff0
/// `target` (Aff3..1 = 0; on GICv2 CPU interface `target`) and enables it at the distributor
/// (trapped and emulated under cellvisor, which routes the physical SPI of a passed-through line
/// to the target vCPU's CPU).
pub fn route_level_spi(intid: u32, target: u64) {
    let gicv2 = is_gicv2();
    let intid = intid as usize;
    let (word, bit) = (intid / 32 * 4, intid % 32);
    if !gicv2 {
        let group = GICD_BASE + GICD_IGROUPR + word;
        write32(group, read32(group) | 1 << bit);
    }
    let config = GICD_BASE + GICD_ICFGR + intid / 16 * 4;
    write32(config, read32(config) & !(1 << (2 * (intid % 16) + 1)));
    let priority = GICD_BASE + GICD_IPRIORITYR + intid / 4 * 4;
    let shift = 8 * (intid % 4);
    write32(
        priority,
        (read32(priority) & !(0xFF << shift)) | SPI_PRIORITY << shift,
    );
    if gicv2 {
        gicv2::target_spi(intid, target);
    } else {
        let router = (GICD_BASE + GICD_IROUTER + intid * 8) as *mut u64;
        // SAFETY: GICD_IROUTER<intid> is a 64-bit distributor register in the device window; it
        // touches no Rust memory.
        unsafe { router.write_volatile(target) };
    }
    write32(GICD_BASE + GICD_ISENABLER + word, 1 << bit);
}

/// Enables the distributor (GICv3: affinity routing, group 1; GICv2: group 0). vCPU 0 calls it
/// once, after [`detect`].
pub fn init_distributor() {
    if is_gicv2() {
        gicv2::init_distributor();
        return;
    }
    write32(GICD_BASE + GICD_CTLR, GICD_CTLR_ENABLE);
    for _ in 0..1_000_000 {
        if read32(GICD_BASE + GICD_CTLR) & GICD_CTLR_RWP == 0 {
            break;
        }
    }
}

/// The benchmark's SGIs and PPI, as an enable mask of INTIDs 0..31.
const PRIVATE_INTERRUPTS: u32 = (1 << SGI_IPI) | (1 << SGI_SELF) | (1 << VIRTUAL_TIMER);

/// Enables the benchmark's interrupts and this vCPU's CPU interface; on GICv3 first wakes its
/// redistributor and makes SGIs/PPIs group 1.
pub fn init_this_cpu() {
    if is_gicv2() {
        gicv2::init_this_cpu(PRIVATE_INTERRUPTS);
        return;
    }
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
    write32(redistributor + GICR_ISENABLER0, PRIVATE_INTERRUPTS);
    // SRE, DFB, DIB: the system-register interface (QEMU and cellvisor both require it).
    write_sysreg!("icc_sre_el1", 0x7);
    sys::isb();
    write_sysreg!("icc_pmr_el1", 0xFF);
    write_sysreg!("icc_bpr1_el1", 0);
    write_sysreg!("icc_ctlr_el1", 0);
    write_sysreg!("icc_igrpen1_el1", 1);
    sys::isb();
}

/// The value [`send_sgi`] writes to send `intid` to the vCPU with Aff0 `target` (Aff1..3 = 0):
/// an ICC_SGI1R_EL1 value on GICv3, a GICD_SGIR value on GICv2.
#[inline(always)]
pub fn sgi_value(intid: u64, target: u64) -> u64 {
    if is_gicv2() {
        gicv2::sgi_value(intid, target)
    } else {
        (intid << 24) | (1 << target)
    }
}

/// Sends the SGI described by `value` (see [`sgi_value`]): an ICC_SGI1R_EL1 write on GICv3, a
/// GICD_SGIR write on GICv2 (both trapped under cellvisor).
#[inline(always)]
pub fn send_sgi(value: u64) {
    if is_gicv2() {
        gicv2::send_sgi(value);
        return;
    }
    sys::dsb();
    write_sysreg!("icc_sgi1r_el1", value);
    sys::isb();
}

/// Acknowledges the highest-priority pending interrupt (ICC_IAR1_EL1, group 1, on GICv3;
/// GICC_IAR, group 0, on GICv2).
#[inline(always)]
pub fn acknowledge() -> Interrupt {
    if is_gicv2() {
        let (intid, iar) = gicv2::acknowledge();
        return Interrupt { intid, eoi: iar };
    }
    let intid = read_sysreg!("icc_iar1_el1") & 0xFF_FFFF;
    sys::dsb();
    Interrupt { intid, eoi: intid }
}

/// Ends (and, with EOImode 0, deactivates) `interrupt`: ICC_EOIR1_EL1 on GICv3, GICC_EOIR on
/// GICv2; neither traps under cellvisor.
#[inline(always)]
pub fn end_of_interrupt(interrupt: Interrupt) {
    if is_gicv2() {
        gicv2::end_of_interrupt(interrupt.eoi);
        return;
    }
    write_sysreg!("icc_eoir1_el1", interrupt.eoi);
}
