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

use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, MAIR_EL2, SCTLR_EL2, TCR_EL2};
use tock_registers::LocalRegisterCopy;
use tock_registers::fields::FieldValue;

use super::fields::{merge, sctlr_el2, tcr_el2};
use super::sysreg::{dsb_ish, isb, read_sysreg, set_sctlr_el2, write_sysreg};
use crate::board::MemRange;

/// MAIR_EL2: index 0 = Device-nGnRE (`DEVICE`), index 1 = Normal inner/outer write-back
/// non-transient read/write-allocate (`NORMAL`).
const MAIR: FieldValue<u64, MAIR_EL2::Register> = merge(&[
    MAIR_EL2::Attr0_Device::nonGathering_nonReordering_EarlyWriteAck,
    MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc,
    MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
]);
const _: () = assert!(MAIR.value == 0xff04);

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

/// SCTLR_EL2 with the MMU on: MMU, data and instruction caches and stack alignment checks on,
/// little-endian, no WXN; the RES1 bits of the nVHE layout set.
const SCTLR_EL2_ON: FieldValue<u64, SCTLR_EL2::Register> = merge(&[
    SCTLR_EL2::M::Enable,
    SCTLR_EL2::C::Cacheable,
    SCTLR_EL2::SA::Enable,
    SCTLR_EL2::I::Cacheable,
    SCTLR_EL2::A::Disable,
    SCTLR_EL2::WXN::Disable,
    SCTLR_EL2::EE::Little,
    // RES1 without FEAT_ExS; with it, exception entry and exit are context synchronizing.
    SCTLR_EL2::EOS::IsSynch,
    SCTLR_EL2::EIS::IsSynch,
    sctlr_el2::RES1_4_5.val(0b11),
    sctlr_el2::RES1_16.val(1),
    sctlr_el2::RES1_18.val(1),
    sctlr_el2::SPAN.val(1),
    sctlr_el2::nTLSMD.val(1),
    sctlr_el2::LSMAOE.val(1),
]);
const _: () = assert!(SCTLR_EL2_ON.value == 0x30C5_183D);

/// TTBR0_EL2 value shared with the secondary CPUs.
static ROOT: AtomicU64 = AtomicU64::new(0);

/// The physical address size field for TCR_EL2/VTCR_EL2.PS (ID_AA64MMFR0_EL1.PARange, the same
/// encoding), capped at 48 bits.
pub fn physical_address_size() -> u64 {
    let mmfr0 =
        LocalRegisterCopy::<u64, ID_AA64MMFR0_EL1::Register>::new(read_sysreg!("id_aa64mmfr0_el1"));
    mmfr0
        .read(ID_AA64MMFR0_EL1::PARange)
        .min(ID_AA64MMFR0_EL1::PARange::Value::Bits_48 as u64)
}

/// TCR_EL2 for EL2's identity map, `physical_address_size` being the PS encoding.
const fn tcr_el2_for(physical_address_size: u64) -> FieldValue<u64, TCR_EL2::Register> {
    merge(&[
        tcr_el2::RES1_31.val(1),
        tcr_el2::RES1_23.val(1),
        TCR_EL2::PS.val(physical_address_size),
        TCR_EL2::TG0::KiB_4,
        TCR_EL2::T0SZ.val(T0SZ),
        // Table walks: inner shareable, write-back read/write-allocate cacheable.
        TCR_EL2::SH0::Inner,
        TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable,
        TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable,
    ])
}
const _: () = assert!(tcr_el2_for(0).value == 0x8080_3519);
const _: () = assert!(tcr_el2_for(5).value == 0x8085_3519);

fn tcr_el2() -> u64 {
    tcr_el2_for(physical_address_size()).value
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
    /// The stack guards (the lower half of each CPU's stack slot), left unmapped.
    pub stack_guards: MemRange,
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
    // Invalid entries (no VALID bit): a push below a stack faults in its guard.
    let slots = layout.stack_guards;
    let mut guard = slots.base;
    while guard < slots.end().unwrap_or(guard) {
        let range = MemRange::new(guard, super::STACK_SIZE as u64);
        map.map_range(&region(&range), El23Attributes::empty())?;
        guard += super::STACK_SLOT as u64;
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
        write_sysreg!("mair_el2", MAIR.value);
        write_sysreg!("tcr_el2", tcr_el2());
        write_sysreg!("ttbr0_el2", root);
        isb();
        core::arch::asm!("tlbi alle2", options(nostack, preserves_flags));
        dsb_ish();
        isb();
        set_sctlr_el2(SCTLR_EL2_ON.value);
    }
}
