//! cellvisor's own EL2 stage-1 translation: an identity map built with aarch64-paging.
//!
//! Normal memory (cellvisor's region and every cell's RAM, which EL2 loads and scrubs) is
//! write-back cacheable; the GIC and UART are Device-nGnRE; everything is execute-never except
//! cellvisor's text.

use aarch64_paging::MapError;
use aarch64_paging::descriptor::El23Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El2, MemoryRegion};
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU64, Ordering};

use super::sysreg::{dsb_ish, isb, read_sysreg, set_sctlr_el2, write_sysreg};
use crate::board::MemRange;

/// MAIR_EL2: index 0 = Device-nGnRE, index 1 = Normal inner/outer write-back read/write-allocate.
const MAIR_EL2: u64 = 0x04 | (0xff << 8);

const NORMAL: El23Attributes = El23Attributes::VALID
    .union(El23Attributes::ATTRIBUTE_INDEX_1)
    .union(El23Attributes::INNER_SHAREABLE)
    .union(El23Attributes::ACCESSED)
    .union(El23Attributes::USER_RES1);
const DEVICE: El23Attributes = El23Attributes::VALID
    .union(El23Attributes::ATTRIBUTE_INDEX_0)
    .union(El23Attributes::ACCESSED)
    .union(El23Attributes::USER_RES1)
    .union(El23Attributes::XN);

/// Root level of the EL2 table: level 1 covers a 39-bit (512 GiB) address space.
const ROOT_LEVEL: usize = 1;
const T0SZ: u64 = 64 - 39;

/// SCTLR_EL2 RES1 bits (nVHE) plus M (MMU), C (data cache), SA (stack alignment), I (icache).
const SCTLR_EL2_ON: u64 = 0x30C5_0830 | (1 << 0) | (1 << 2) | (1 << 3) | (1 << 12);

/// TTBR0_EL2 value shared with the secondary CPUs.
static ROOT: AtomicU64 = AtomicU64::new(0);

/// The physical address size field for TCR_EL2/VTCR_EL2.PS, capped at 48 bits.
pub fn physical_address_size() -> u64 {
    (read_sysreg!("id_aa64mmfr0_el1") & 0xf).min(5)
}

fn tcr_el2() -> u64 {
    // RES1 bits 31 and 23; T0SZ; IRGN0=WBWA; ORGN0=WBWA; SH0=inner; TG0=4 KiB; PS.
    (1 << 31)
        | (1 << 23)
        | (physical_address_size() << 16)
        | (3 << 12)
        | (1 << 10)
        | (1 << 8)
        | T0SZ
}

/// The ranges to map, by kind.
pub struct El2Layout<'a> {
    /// cellvisor's own region (code and data).
    pub hypervisor: MemRange,
    /// The start and end of the executable text inside `hypervisor`.
    pub text: MemRange,
    /// All platform RAM.
    pub ram: &'a [MemRange],
    /// Device register frames cellvisor drives.
    pub devices: &'a [MemRange],
}

fn region(range: &MemRange) -> MemoryRegion {
    let end = range.end().unwrap_or(u64::MAX);
    MemoryRegion::new(range.base as usize, end as usize)
}

/// Builds the identity map and turns the MMU and caches on for the boot CPU.
///
/// # Safety
/// Must run once, on the boot CPU, with the MMU off; the layout must cover all code, stacks,
/// heap and device registers cellvisor uses afterwards.
pub unsafe fn enable_boot_cpu(layout: &El2Layout<'_>) -> Result<(), MapError> {
    let mut map = Box::new(IdMap::new(ROOT_LEVEL, El2));
    for ram in layout.ram {
        map.map_range(&region(ram), NORMAL | El23Attributes::XN)?;
    }
    map.map_range(&region(&layout.hypervisor), NORMAL | El23Attributes::XN)?;
    map.map_range(&region(&layout.text), NORMAL | El23Attributes::READ_ONLY)?;
    for device in layout.devices {
        map.map_range(&region(device), DEVICE)?;
    }
    let root = map.root_address().0 as u64;
    ROOT.store(root, Ordering::Release);
    // The table lives for the rest of the hypervisor's life.
    Box::leak(map);
    // SAFETY: forwarded from the caller: the map covers everything in use.
    unsafe { enable_this_cpu() };
    Ok(())
}

/// Turns the MMU on for this CPU with the table the boot CPU built.
///
/// # Safety
/// `enable_boot_cpu` must have completed; the MMU of this CPU must be off.
pub unsafe fn enable_this_cpu() {
    let root = ROOT.load(Ordering::Acquire);
    // SAFETY: the registers describe the identity map built in `enable_boot_cpu`, which covers all
    // code and data; TLBs are invalidated before the MMU is enabled.
    unsafe {
        write_sysreg!("mair_el2", MAIR_EL2);
        write_sysreg!("tcr_el2", tcr_el2());
        write_sysreg!("ttbr0_el2", root);
        isb();
        core::arch::asm!("tlbi alle2", options(nostack, preserves_flags));
        dsb_ish();
        isb();
        set_sctlr_el2(SCTLR_EL2_ON);
    }
}
