//! A minimal stage-1 identity map for the attacks that run with the MMU on: 4 KiB granule, 39-bit
//! VA (TTBR0_EL1, walks start at level 1), write-back caches on (SCTLR_EL1.M, C, I).
//!
//! - the cell's RAM (0x4000_0000, 64 MiB) is Normal write-back, in 2 MiB blocks;
//! - the GIC and UART window (0x0800_0000..0x0A00_0000) is Device-nGnRE, in 2 MiB blocks, so
//!   `println!` and the identity-mapped device probes work as with the MMU off;
//! - 0x8000_0000..0xC000_0000 has one Normal write-back block, of another cell's RAM (0x9000_0000);
//! - VA [`ALIAS_BASE`] holds one 4 KiB page per [`Alias`]: emulated device pages, other cells' and
//!   cellvisor's RAM, the cell's own RAM, each with the memory type it names;
//! - the 2 MiB slots after it ([`WALK_OUTSIDE`]) are table descriptors whose next-level table lies
//!   outside the cell's RAM (another cell's RAM, an emulated device, cellvisor's RAM, the far end
//!   of the IPA space): touching them makes the walk itself fault at stage 2.
//!
//! [`with_mmu`] turns the MMU on around a closure and off again afterwards, cleaning the image to
//! the point of coherency first, so the MMU-off code after it sees what the cacheable code wrote.

use core::arch::asm;

use super::{GICD, GICR, RAM_BASE, UART};

/// MAIR_EL1 attribute indices.
const DEVICE_NGNRNE: u64 = 0;
const DEVICE_NGNRE: u64 = 1;
const NORMAL_WRITE_BACK: u64 = 2;
const NORMAL_NON_CACHEABLE: u64 = 3;
/// Attr0 Device-nGnRnE, Attr1 Device-nGnRE, Attr2 Normal inner/outer write-back read/write
/// allocate, Attr3 Normal inner/outer non-cacheable.
const MAIR: u64 = (0x04 << 8) | (0xFF << 16) | (0x44 << 24);

/// Descriptor bits: valid, table (levels 1-2) or page (level 3), AttrIndx, inner shareable,
/// access flag, privileged and unprivileged execute-never.
const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const INNER_SHAREABLE: u64 = 0b11 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

/// Bytes a level-2 block maps.
const BLOCK: u64 = 2 * 1024 * 1024;
/// Bytes a level-3 page maps.
const PAGE: u64 = 4096;
/// The cell's RAM.
const RAM_SIZE: u64 = 64 * 1024 * 1024;
/// Another cell's RAM (the corporate cell's physical base; no cell maps this IPA).
pub(super) const FOREIGN_RAM: u64 = 0x9000_0000;
/// cellvisor's heap and page tables (physical; no cell maps this IPA).
pub(super) const CELLVISOR_RAM: u64 = 0x5000_0000;
/// The personal cell's RAM at its physical address (no cell maps this IPA).
pub(super) const OWN_PHYSICAL_RAM: u64 = 0x6000_0000;

/// The VA of the alias pages (level-2 slot 128 of the first GiB).
pub(super) const ALIAS_BASE: u64 = 0x1000_0000;

/// A page of the alias window: what it maps and how.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Alias {
    /// The vUART, Normal write-back.
    UartNormal,
    /// The vUART, Device-nGnRE (a second mapping of the same page).
    UartDevice,
    /// The vUART, Normal non-cacheable.
    UartNonCacheable,
    /// GICD page 0 (CTLR, TYPER, ISENABLER, IPRIORITYR), Normal write-back.
    GicdNormal,
    /// GICD page 0, Device-nGnRE.
    GicdDevice,
    /// GICD page 6 (IROUTER), Normal write-back.
    GicdRouterNormal,
    /// vCPU 0's redistributor RD frame, Normal write-back.
    GicrNormal,
    /// vCPU 0's redistributor SGI frame, Normal write-back.
    GicrSgiNormal,
    /// Another cell's RAM, Normal write-back.
    ForeignNormal,
    /// Another cell's RAM, Device-nGnRnE.
    ForeignDevice,
    /// cellvisor's RAM, Normal write-back.
    CellvisorNormal,
    /// The cell's own RAM at its physical address, Normal write-back.
    OwnPhysicalNormal,
    /// A scratch page of the cell's own RAM, Normal write-back (the control: it must work).
    ScratchNormal,
    /// The vUART again, Normal write-back, right after [`Alias::ScratchNormal`]: an access
    /// at the end of the scratch page runs into it.
    UartAfterScratch,
    /// The GICD page 0 again, Normal write-back, right after [`Alias::UartAfterScratch`]: an
    /// access at the end of that page straddles two emulated devices.
    GicdAfterUart,
    /// No mapping (a translation fault at stage 1, the guest's own).
    Unmapped,
}

/// Every alias, in VA order (page n at `ALIAS_BASE + n * 4096`).
const ALIASES: [Alias; 16] = [
    Alias::UartNormal,
    Alias::UartDevice,
    Alias::UartNonCacheable,
    Alias::GicdNormal,
    Alias::GicdDevice,
    Alias::GicdRouterNormal,
    Alias::GicrNormal,
    Alias::GicrSgiNormal,
    Alias::ForeignNormal,
    Alias::ForeignDevice,
    Alias::CellvisorNormal,
    Alias::OwnPhysicalNormal,
    Alias::ScratchNormal,
    Alias::UartAfterScratch,
    Alias::GicdAfterUart,
    Alias::Unmapped,
];

impl Alias {
    /// The VA of this alias page.
    pub(super) fn va(self) -> u64 {
        let index = ALIASES.iter().position(|&alias| alias == self).unwrap_or(0);
        ALIAS_BASE + PAGE * index as u64
    }

    /// The IPA it maps and its memory attribute index, or `None` if unmapped.
    fn target(self) -> Option<(u64, u64)> {
        Some(match self {
            Alias::UartNormal | Alias::UartAfterScratch => (UART, NORMAL_WRITE_BACK),
            Alias::UartDevice => (UART, DEVICE_NGNRE),
            Alias::UartNonCacheable => (UART, NORMAL_NON_CACHEABLE),
            Alias::GicdNormal | Alias::GicdAfterUart => (GICD, NORMAL_WRITE_BACK),
            Alias::GicdDevice => (GICD, DEVICE_NGNRE),
            Alias::GicdRouterNormal => (GICD + 0x6000, NORMAL_WRITE_BACK),
            Alias::GicrNormal => (GICR, NORMAL_WRITE_BACK),
            Alias::GicrSgiNormal => (GICR + 0x1_0000, NORMAL_WRITE_BACK),
            Alias::ForeignNormal => (FOREIGN_RAM, NORMAL_WRITE_BACK),
            Alias::ForeignDevice => (FOREIGN_RAM, DEVICE_NGNRNE),
            Alias::CellvisorNormal => (CELLVISOR_RAM, NORMAL_WRITE_BACK),
            Alias::OwnPhysicalNormal => (OWN_PHYSICAL_RAM, NORMAL_WRITE_BACK),
            Alias::ScratchNormal => (scratch_page(), NORMAL_WRITE_BACK),
            Alias::Unmapped => return None,
        })
    }
}

/// Level-2 slots after the alias window whose next-level table lies outside the cell's RAM: the
/// VA each one covers and where its table "is".
pub(super) const WALK_OUTSIDE: [(u64, u64, &str); 6] = [
    (ALIAS_BASE + BLOCK, FOREIGN_RAM, "another cell's RAM"),
    (ALIAS_BASE + 2 * BLOCK, UART, "the vUART"),
    (ALIAS_BASE + 3 * BLOCK, GICD, "the vGIC distributor"),
    (ALIAS_BASE + 4 * BLOCK, CELLVISOR_RAM, "cellvisor's RAM"),
    (ALIAS_BASE + 5 * BLOCK, 0x7F_FFFF_F000, "the last IPA page"),
    (ALIAS_BASE + 6 * BLOCK, 0x80_0000_0000, "past the IPA size"),
];

/// One translation table.
#[repr(C, align(4096))]
struct Table([u64; 512]);

const EMPTY: Table = Table([0; 512]);

/// Level 1 (the root), the three level-2 tables it uses and the alias window's level 3.
static mut ROOT: Table = EMPTY;
static mut LOW: Table = EMPTY;
static mut RAM: Table = EMPTY;
static mut HIGH: Table = EMPTY;
static mut ALIAS: Table = EMPTY;
/// The page [`Alias::ScratchNormal`] maps: the cell's own RAM.
static mut SCRATCH: Table = EMPTY;

unsafe extern "C" {
    /// The image's first and last bytes (everything this guest writes lies in between).
    static __image_start: u8;
    static __image_end: u8;
}

fn address_of(table: *const Table) -> u64 {
    table as u64
}

/// The IPA of the scratch page (identity-mapped: VA = IPA).
pub(super) fn scratch_page() -> u64 {
    address_of(&raw const SCRATCH)
}

fn block(address: u64, attribute: u64) -> u64 {
    // Normal memory is executable at EL1 (so fetches reach stage 2), Device memory is not.
    let execute_never = match attribute {
        NORMAL_WRITE_BACK | NORMAL_NON_CACHEABLE => UXN,
        _ => PXN | UXN,
    };
    address | VALID | (attribute << 2) | INNER_SHAREABLE | ACCESS_FLAG | execute_never
}

fn page(address: u64, attribute: u64) -> u64 {
    block(address, attribute) | TABLE_OR_PAGE
}

fn table(next: u64) -> u64 {
    next | VALID | TABLE_OR_PAGE
}

/// Writes descriptor `index` of `table` (one of the statics above).
fn set(table: *mut Table, index: usize, descriptor: u64) {
    // SAFETY: `table` points at one of this module's tables, which only `build` writes, with the
    // MMU off and no reference to them alive; the index is bounds-checked.
    unsafe { (*table).0[index] = descriptor };
}

/// Writes every descriptor; called with the MMU off.
fn build() {
    let root = &raw mut ROOT;
    let low = &raw mut LOW;
    let ram = &raw mut RAM;
    let high = &raw mut HIGH;
    let alias = &raw mut ALIAS;
    for table in [root, low, ram, high, alias] {
        for index in 0..512 {
            set(table, index, 0);
        }
    }
    set(root, 0, table(address_of(low)));
    set(root, 1, table(address_of(ram)));
    set(root, 2, table(address_of(high)));
    // 0x0800_0000..0x0A00_0000: the GIC and the UART.
    for slot in 64..80u64 {
        set(low, slot as usize, block(slot * BLOCK, DEVICE_NGNRE));
    }
    let alias_slot = (ALIAS_BASE / BLOCK) as usize;
    set(low, alias_slot, table(address_of(alias)));
    for (index, (_, next, _)) in WALK_OUTSIDE.iter().enumerate() {
        set(low, alias_slot + 1 + index, table(*next));
    }
    for slot in 0..(RAM_SIZE / BLOCK) {
        set(
            ram,
            slot as usize,
            block(RAM_BASE + slot * BLOCK, NORMAL_WRITE_BACK),
        );
    }
    let foreign_slot = ((FOREIGN_RAM - 0x8000_0000) / BLOCK) as usize;
    set(high, foreign_slot, block(FOREIGN_RAM, NORMAL_WRITE_BACK));
    for (index, alias_page) in ALIASES.iter().enumerate() {
        if let Some((address, attribute)) = alias_page.target() {
            set(alias, index, page(address, attribute));
        }
    }
}

/// TCR_EL1: T0SZ = T1SZ = 25 (39-bit VA), 4 KiB granules, inner shareable write-back walks,
/// TTBR1 walks disabled (EPD1) unless `ttbr1` and IPS from the CPU's PARange (at most 48 bits).
fn tcr(ttbr1: bool) -> u64 {
    let t0sz = 25u64;
    let walks0 = (0b01 << 8) | (0b01 << 10) | (0b11 << 12);
    let t1sz = 25u64 << 16;
    let epd1 = if ttbr1 { 0 } else { 1 << 23 };
    let walks1 = (0b01 << 24) | (0b01 << 26) | (0b11 << 28) | (0b10 << 30);
    let mmfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) mmfr0, options(nomem, nostack)) };
    let ips = (mmfr0 & 0xf).min(0b101);
    t0sz | walks0 | t1sz | epd1 | walks1 | (ips << 32)
}

/// SCTLR_EL1.M, C and I.
const SCTLR_MMU_AND_CACHES: u64 = (1 << 0) | (1 << 2) | (1 << 12);

/// Runs `body` with the stage-1 MMU and the caches on; returns its result with the MMU off again.
pub(super) fn with_mmu<T>(body: impl FnOnce() -> T) -> T {
    build();
    let root = address_of(&raw const ROOT);
    // SAFETY: the tables identity-map everything this guest touches (its image, stacks and the
    // device window) with the attributes it had with the MMU off or stronger caching, so the
    // code, the stack and the recording vector table stay where they are. The tables were
    // written with the MMU off (to memory) and the caches hold no line of the image (the last
    // `with_mmu` cleaned and invalidated it).
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {root}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            "mrs {t}, sctlr_el1",
            "orr {t}, {t}, {bits}",
            "msr sctlr_el1, {t}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr(false),
            root = in(reg) root,
            bits = in(reg) SCTLR_MMU_AND_CACHES,
            t = out(reg) _,
            options(nostack),
        );
    }
    let result = body();
    mmu_off();
    result
}

/// Whether the MMU is on (SCTLR_EL1.M).
pub(super) fn mmu_is_on() -> bool {
    let sctlr: u64;
    // SAFETY: reading SCTLR_EL1 has no side effects.
    unsafe { asm!("mrs {}, sctlr_el1", out(reg) sctlr, options(nomem, nostack)) };
    sctlr & 1 == 1
}

/// Cleans and invalidates the image to the point of coherency, then turns the MMU and caches off.
fn mmu_off() {
    let start = (&raw const __image_start) as u64;
    let end = (&raw const __image_end) as u64;
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let line = 4u64 << ((ctr >> 16) & 0xf);
    // SAFETY: clean and invalidate by VA of this guest's own image, then the MMU and caches off;
    // no store happens between the last clean and the SCTLR_EL1 write (all in registers), and
    // the identity map makes every address the same afterwards.
    unsafe {
        asm!(
            "bic {a}, {a}, {mask}",
            "1:",
            "dc civac, {a}",
            "add {a}, {a}, {line}",
            "cmp {a}, {end}",
            "b.lo 1b",
            "dsb sy",
            "mrs {t}, sctlr_el1",
            "bic {t}, {t}, {bits}",
            "msr sctlr_el1, {t}",
            "isb",
            "ic iallu",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            a = inout(reg) start => _,
            mask = in(reg) line - 1,
            line = in(reg) line,
            end = in(reg) end,
            bits = in(reg) SCTLR_MMU_AND_CACHES,
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Runs `body` with TTBR1_EL1 walks on and their root table at `root` (outside the cell: every
/// walk faults at stage 2); the MMU must be on. Returns the VA at the bottom of the TTBR1 range.
pub(super) fn with_ttbr1_root<T>(root: u64, body: impl FnOnce(u64) -> T) -> T {
    // SAFETY: only TTBR1 walks change; nothing this guest uses lies in the TTBR1 range.
    unsafe {
        asm!(
            "msr ttbr1_el1, {root}",
            "msr tcr_el1, {tcr}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            root = in(reg) root,
            tcr = in(reg) tcr(true),
            options(nostack),
        );
    }
    let result = body(0xFFFF_FF80_0000_0000);
    // SAFETY: back to no TTBR1 walks; TTBR1_EL1 = 0 as at reset.
    unsafe {
        asm!(
            "msr tcr_el1, {tcr}",
            "msr ttbr1_el1, xzr",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            tcr = in(reg) tcr(false),
            options(nostack),
        );
    }
    result
}

/// AT S1E1R of `va`: PAR_EL1 (bit 0 set: the walk failed).
pub(super) fn translate(va: u64) -> super::probe::Outcome {
    super::probe::attempt(|| {
        let par: u64;
        // SAFETY: an address translation with no effect but PAR_EL1 (or an abort, skipped).
        unsafe {
            asm!("at s1e1r, {va}", "isb", "mrs {par}, par_el1", va = in(reg) va, par = out(reg) par,
                options(nostack))
        };
        par
    })
}

const _: () = assert!(ALIAS_BASE.is_multiple_of(BLOCK));
const _: () = {
    let mut index = 0;
    while index < WALK_OUTSIDE.len() {
        assert!(WALK_OUTSIDE[index].0 == ALIAS_BASE + BLOCK * (index as u64 + 1));
        index += 1;
    }
};
const _: () = assert!(ALIASES.len() <= 512);
