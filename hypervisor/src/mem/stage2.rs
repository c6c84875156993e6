//! Per-cell stage-2 translation tables (built with aarch64-paging).
//!
//! One [`Stage2`] per cell maps the cell's guest-physical addresses (IPAs) to physical addresses:
//! RAM as normal write-back memory, passthrough devices as Device-nGnRE. The geometry is fixed:
//! 4 KiB granule, 39-bit IPA space, lookup starting at level 1 (see [`VTCR_T0SZ`], [`VTCR_SL0`]).
//! The arch glue programs `VTCR_EL2` from these constants and `VTTBR_EL2` from [`Stage2::vttbr`].
//!
//! Tables are built while the cell is not running; aarch64-paging only does TLB maintenance for
//! tables marked active, which these never are, so a caller changing a live table must invalidate
//! the cell's VMID itself (`TLBI VMALLS12E1IS`).
//!
//! The only `unsafe` is the [`Translation`] impl that aarch64-paging's trait requires.
#![deny(unsafe_code)]

use core::fmt;
use core::ptr::NonNull;

use aarch64_paging::MapError;
use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes};
use aarch64_paging::idmap::IdTranslation;
use aarch64_paging::paging::{
    Constraints, MemoryRegion, PageTable, Stage2 as Stage2Regime, Translation,
};

use crate::mem::addr::{GuestPhysAddr, PhysAddr, VirtAddr};

use crate::mem::PAGE_SIZE;
/// Bits of guest-physical address the tables translate.
pub const IPA_BITS: u32 = 39;
/// Size of the guest-physical address space: 512 GiB.
pub const IPA_SPACE_SIZE: u64 = 1 << IPA_BITS;
/// `VTCR_EL2.T0SZ`: the IPA space is 2^(64 - T0SZ) bytes.
pub const VTCR_T0SZ: u64 = 64 - IPA_BITS as u64;
/// Translation table level the walk starts at.
pub const ROOT_LEVEL: usize = 1;
/// `VTCR_EL2.SL0` for a 4 KiB granule starting at level 1.
pub const VTCR_SL0: u64 = 1;
/// Highest physical address bit a descriptor can hold (48-bit PA, no LPA).
pub const PHYSICAL_ADDRESS_BITS: u32 = 48;
/// Bit position of the VMID in `VTTBR_EL2`.
pub const VTTBR_VMID_SHIFT: u32 = 48;

/// Attributes of a RAM mapping: normal inner/outer write-back, inner shareable, read-write,
/// executable, access flag set.
pub const RAM_ATTRIBUTES: Stage2Attributes = Stage2Attributes::VALID
    .union(Stage2Attributes::MEMATTR_NORMAL_INNER_WB)
    .union(Stage2Attributes::MEMATTR_NORMAL_OUTER_WB)
    .union(Stage2Attributes::S2AP_ACCESS_RW)
    .union(Stage2Attributes::SH_INNER)
    .union(Stage2Attributes::ACCESS_FLAG);

/// Attributes of a device mapping: Device-nGnRE, read-write, execute-never, access flag set.
pub const DEVICE_ATTRIBUTES: Stage2Attributes = Stage2Attributes::VALID
    .union(Stage2Attributes::MEMATTR_DEVICE_nGnRE)
    .union(Stage2Attributes::S2AP_ACCESS_RW)
    .union(Stage2Attributes::ACCESS_FLAG)
    .union(Stage2Attributes::XN);

/// Mask of the `MemAttr[3:0]` field in a stage-2 descriptor.
pub const MEMATTR_MASK: Stage2Attributes = Stage2Attributes::from_bits_retain(0b1111 << 2);

/// Why a stage-2 operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage2Error {
    /// VMIDs are 8 bits and VMID 0 is cellvisor's own.
    InvalidVmid(u16),
    /// An address or size is not a multiple of 4 KiB.
    Unaligned {
        /// Guest-physical start.
        ipa: GuestPhysAddr,
        /// Physical start (equal to the IPA for unmap).
        pa: PhysAddr,
        /// Length in bytes.
        size: u64,
    },
    /// The range is empty, wraps, or leaves the IPA or PA space.
    OutOfRange {
        /// Guest-physical start.
        ipa: GuestPhysAddr,
        /// Physical start.
        pa: PhysAddr,
        /// Length in bytes.
        size: u64,
    },
    /// aarch64-paging refused the update.
    Map {
        /// Guest-physical start.
        ipa: GuestPhysAddr,
        /// Length in bytes.
        size: u64,
        /// The library's reason.
        reason: MapError,
    },
}

impl fmt::Display for Stage2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidVmid(vmid) => write!(
                f,
                "stage-2 VMID {vmid} is invalid: use 1..=255 (VMID 0 is the hypervisor's)"
            ),
            Self::Unaligned { ipa, pa, size } => write!(
                f,
                "stage-2 mapping of {size:#x} bytes at IPA {ipa} -> PA {pa} is not 4 KiB aligned: align \
                 addresses and size to 0x1000"
            ),
            Self::OutOfRange { ipa, pa, size } => write!(
                f,
                "stage-2 mapping of {size:#x} bytes at IPA {ipa} -> PA {pa} is empty or leaves the \
                 {IPA_BITS}-bit IPA / {PHYSICAL_ADDRESS_BITS}-bit PA space: use a smaller or lower range"
            ),
            Self::Map { ipa, size, reason } => write!(
                f,
                "stage-2 mapping of {size:#x} bytes at IPA {ipa} failed ({reason}): check the cell's \
                 memory layout"
            ),
        }
    }
}

/// Allocates stage-2 tables from the global allocator and counts them.
///
/// cellvisor's EL2 map is an identity map, so a table's physical address is its virtual address
/// ([`PhysAddr::to_virt`]).
#[derive(Debug, Default)]
pub struct TableAllocator {
    /// Tables currently allocated (including the root).
    table_count: usize,
}

impl TableAllocator {
    /// Tables currently allocated, including the root.
    pub fn table_count(&self) -> usize {
        self.table_count
    }
}

#[allow(unsafe_code)]
impl Translation<Stage2Attributes> for TableAllocator {
    fn allocate_table(&mut self) -> (NonNull<PageTable<Stage2Attributes>>, PhysicalAddress) {
        // `PageTable::new` returns a zeroed, 4 KiB-aligned page from the global allocator.
        let table = PageTable::new();
        self.table_count += 1;
        let physical = VirtAddr::new(table.as_ptr().addr() as u64).to_phys();
        (table, PhysicalAddress(physical.raw() as usize))
    }

    unsafe fn deallocate_table(&mut self, page_table: NonNull<PageTable<Stage2Attributes>>) {
        self.table_count = self.table_count.saturating_sub(1);
        // SAFETY: our caller promises `page_table` came from `allocate_table` on this allocator and
        // was not freed yet. `allocate_table` used `PageTable::new`, exactly as
        // `IdTranslation::allocate_table` does, so `IdTranslation::deallocate_table` frees it with the
        // matching layout.
        unsafe { IdTranslation::new().deallocate_table(page_table) }
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<Stage2Attributes>> {
        let virtual_address = PhysAddr::new(pa.0 as u64).to_virt();
        // Only addresses of tables this allocator handed out reach here, and the allocator never
        // returns address 0; guest input never reaches table addresses.
        NonNull::new(virtual_address.as_usize() as *mut PageTable<Stage2Attributes>)
            .expect("stage-2 table at physical address 0")
    }
}

/// Counts from a walk of a stage-2 table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Bytes used by translation tables (4 KiB each, root included).
    pub table_bytes: u64,
    /// Valid block descriptors (1 GiB at level 1, 2 MiB at level 2).
    pub block_descriptors: u64,
    /// Valid page descriptors (4 KiB, level 3).
    pub page_descriptors: u64,
}

/// Where one IPA leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translated {
    /// The physical address the IPA maps to.
    pub pa: PhysAddr,
    /// Level of the leaf descriptor: 1 (1 GiB block), 2 (2 MiB block) or 3 (page).
    pub level: usize,
    /// The descriptor's attribute bits.
    pub attributes: Stage2Attributes,
}

/// A cell's stage-2 translation table and VMID.
#[derive(Debug)]
pub struct Stage2 {
    mapping: Mapping<TableAllocator, Stage2Regime>,
    vmid: u8,
}

/// Bytes covered by one descriptor at `level` (4 KiB at level 3, 2 MiB at 2, 1 GiB at 1).
const fn granularity_at_level(level: usize) -> u64 {
    PAGE_SIZE << ((3 - level) * 9)
}

impl Stage2 {
    /// An empty table for the cell with this VMID (1..=255).
    pub fn new(vmid: u16) -> Result<Self, Stage2Error> {
        let vmid = match u8::try_from(vmid) {
            Ok(vmid) if vmid != 0 => vmid,
            _ => return Err(Stage2Error::InvalidVmid(vmid)),
        };
        Ok(Self {
            mapping: Mapping::new(TableAllocator::default(), ROOT_LEVEL, Stage2Regime),
            vmid,
        })
    }

    /// The cell's VMID.
    pub fn vmid(&self) -> u8 {
        self.vmid
    }

    /// Maps `size` bytes of RAM at `pa` to `ipa`: normal write-back, inner shareable, read-write,
    /// executable. Uses 1 GiB and 2 MiB blocks wherever IPA and PA alignment allow.
    pub fn map_ram(
        &mut self,
        ipa: GuestPhysAddr,
        pa: PhysAddr,
        size: u64,
    ) -> Result<(), Stage2Error> {
        self.map(ipa, pa, size, RAM_ATTRIBUTES)
    }

    /// Maps a device window at `pa` to `ipa`: Device-nGnRE, read-write, execute-never.
    pub fn map_device(
        &mut self,
        ipa: GuestPhysAddr,
        pa: PhysAddr,
        size: u64,
    ) -> Result<(), Stage2Error> {
        self.map(ipa, pa, size, DEVICE_ATTRIBUTES)
    }

    /// Removes any mapping of `size` bytes at `ipa` (blocks are split as needed). On a live table
    /// the caller must then invalidate the VMID's TLB entries.
    pub fn unmap(&mut self, ipa: GuestPhysAddr, size: u64) -> Result<(), Stage2Error> {
        self.map(
            ipa,
            PhysAddr::new(ipa.raw()),
            size,
            Stage2Attributes::empty(),
        )
    }

    fn map(
        &mut self,
        ipa: GuestPhysAddr,
        pa: PhysAddr,
        size: u64,
        attributes: Stage2Attributes,
    ) -> Result<(), Stage2Error> {
        if !(ipa.is_aligned(PAGE_SIZE)
            && pa.is_aligned(PAGE_SIZE)
            && size.is_multiple_of(PAGE_SIZE))
        {
            return Err(Stage2Error::Unaligned { ipa, pa, size });
        }
        let out_of_range = Stage2Error::OutOfRange { ipa, pa, size };
        let (Some(ipa_end), Some(pa_end)) = (ipa.checked_add(size), pa.checked_add(size)) else {
            return Err(out_of_range);
        };
        if size == 0 || ipa_end.raw() > IPA_SPACE_SIZE || pa_end.raw() > 1 << PHYSICAL_ADDRESS_BITS
        {
            return Err(out_of_range);
        }
        // Both ends are below 2^48, so they fit in `usize` on the 64-bit targets cellvisor builds for.
        let region = MemoryRegion::new(ipa.raw() as usize, ipa_end.raw() as usize);
        self.mapping
            .map_range(
                &region,
                PhysicalAddress(pa.raw() as usize),
                attributes,
                Constraints::empty(),
            )
            .map_err(|reason| Stage2Error::Map { ipa, size, reason })
    }

    /// Where `ipa` leads, or `None` if it is unmapped or outside the IPA space.
    pub fn translate(&self, ipa: GuestPhysAddr) -> Option<Translated> {
        if ipa.raw() >= IPA_SPACE_SIZE {
            return None;
        }
        let page = ipa.raw() & !(PAGE_SIZE - 1);
        let region = MemoryRegion::new(page as usize, (page + PAGE_SIZE) as usize);
        let mut found = None;
        self.mapping
            .walk_range(&region, &mut |_, descriptor, level| {
                if descriptor.is_valid() {
                    let offset = ipa.raw() & (granularity_at_level(level) - 1);
                    found = Some(Translated {
                        pa: PhysAddr::new(descriptor.output_address().0 as u64 + offset),
                        level,
                        attributes: descriptor.flags(),
                    });
                }
                Ok(())
            })
            .ok()?;
        found
    }

    /// Physical address of the root table (`VTTBR_EL2.BADDR`).
    pub fn root_address(&self) -> PhysAddr {
        PhysAddr::new(self.mapping.root_address().0 as u64)
    }

    /// The `VTTBR_EL2` value for this cell: VMID in bits 63:48 (8-bit VMID), root table below.
    pub fn vttbr(&self) -> u64 {
        (u64::from(self.vmid) << VTTBR_VMID_SHIFT) | self.root_address().raw()
    }

    /// Walks the whole table and counts tables, blocks and pages.
    pub fn stats(&self) -> TableStats {
        let mut stats = TableStats {
            table_bytes: self.mapping.translation().table_count() as u64 * PAGE_SIZE,
            ..TableStats::default()
        };
        let everything = MemoryRegion::new(0, IPA_SPACE_SIZE as usize);
        // The region is the table's own range, so the walk cannot fail.
        let _ = self
            .mapping
            .walk_range(&everything, &mut |_, descriptor, level| {
                if descriptor.is_valid() {
                    if level == 3 {
                        stats.page_descriptors += 1;
                    } else {
                        stats.block_descriptors += 1;
                    }
                }
                Ok(())
            });
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;

    #[test]
    fn aligned_ram_becomes_blocks() {
        let mut table = Stage2::new(1).unwrap();
        table
            .map_ram(
                GuestPhysAddr::new(0x4000_0000),
                PhysAddr::new(0x6000_0000),
                6 * MIB,
            )
            .unwrap();
        let stats = table.stats();
        assert_eq!(stats.block_descriptors, 3);
        assert_eq!(stats.page_descriptors, 0);
        // Root (level 1) + one level-2 table.
        assert_eq!(stats.table_bytes, 2 * PAGE_SIZE);
        let translated = table.translate(GuestPhysAddr::new(0x4012_3456)).unwrap();
        assert_eq!(translated.pa, PhysAddr::new(0x6012_3456));
        assert_eq!(translated.level, 2);
    }

    #[test]
    fn gigabyte_alignment_gives_level_one_blocks() {
        let mut table = Stage2::new(1).unwrap();
        table
            .map_ram(
                GuestPhysAddr::new(0x4000_0000),
                PhysAddr::new(0x4000_0000),
                GIB,
            )
            .unwrap();
        assert_eq!(
            table
                .translate(GuestPhysAddr::new(0x7fff_ffff))
                .unwrap()
                .level,
            1
        );
        assert_eq!(
            table.stats(),
            TableStats {
                table_bytes: PAGE_SIZE,
                block_descriptors: 1,
                page_descriptors: 0
            }
        );
    }

    #[test]
    fn unaligned_tail_becomes_pages() {
        let mut table = Stage2::new(1).unwrap();
        table
            .map_ram(
                GuestPhysAddr::new(0x4000_0000),
                PhysAddr::new(0x6000_0000),
                2 * MIB + 3 * PAGE_SIZE,
            )
            .unwrap();
        let stats = table.stats();
        assert_eq!((stats.block_descriptors, stats.page_descriptors), (1, 3));
        assert_eq!(stats.table_bytes, 3 * PAGE_SIZE);
        assert_eq!(
            table
                .translate(GuestPhysAddr::new(0x4020_2000))
                .unwrap()
                .level,
            3
        );
        assert_eq!(table.translate(GuestPhysAddr::new(0x4020_3000)), None);
    }

    #[test]
    fn mismatched_alignment_falls_back_to_pages() {
        let mut table = Stage2::new(1).unwrap();
        // The IPA is 2 MiB aligned but the PA is not: no block can describe it.
        table
            .map_ram(
                GuestPhysAddr::new(0x4000_0000),
                PhysAddr::new(0x6000_1000),
                2 * MIB,
            )
            .unwrap();
        let stats = table.stats();
        assert_eq!((stats.block_descriptors, stats.page_descriptors), (0, 512));
    }

    #[test]
    fn ram_attributes_are_normal_rw_executable() {
        let mut table = Stage2::new(1).unwrap();
        table
            .map_ram(
                GuestPhysAddr::new(0x4000_0000),
                PhysAddr::new(0x6000_0000),
                PAGE_SIZE,
            )
            .unwrap();
        let attributes = table
            .translate(GuestPhysAddr::new(0x4000_0000))
            .unwrap()
            .attributes;
        assert_eq!(
            attributes & MEMATTR_MASK,
            Stage2Attributes::MEMATTR_NORMAL_INNER_WB | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
        );
        assert!(attributes.contains(Stage2Attributes::S2AP_ACCESS_RW));
        assert!(attributes.contains(Stage2Attributes::SH_INNER));
        assert!(attributes.contains(Stage2Attributes::ACCESS_FLAG));
        assert!(!attributes.contains(Stage2Attributes::XN));
    }

    #[test]
    fn device_attributes_are_device_and_execute_never() {
        let mut table = Stage2::new(3).unwrap();
        table
            .map_device(
                GuestPhysAddr::new(0x0A00_3000),
                PhysAddr::new(0x0A00_3000),
                PAGE_SIZE,
            )
            .unwrap();
        let translated = table.translate(GuestPhysAddr::new(0x0A00_3E00)).unwrap();
        assert_eq!(translated.pa, PhysAddr::new(0x0A00_3E00));
        assert_eq!(
            translated.attributes & MEMATTR_MASK,
            Stage2Attributes::MEMATTR_DEVICE_nGnRE
        );
        assert!(translated.attributes.contains(Stage2Attributes::XN));
        assert!(
            translated
                .attributes
                .contains(Stage2Attributes::S2AP_ACCESS_RW)
        );
        assert!(
            translated
                .attributes
                .contains(Stage2Attributes::ACCESS_FLAG)
        );
    }

    #[test]
    fn unmapped_addresses_do_not_translate() {
        let mut table = Stage2::new(1).unwrap();
        assert_eq!(table.translate(GuestPhysAddr::new(0)), None);
        table
            .map_ram(
                GuestPhysAddr::new(0x4000_0000),
                PhysAddr::new(0x6000_0000),
                2 * MIB,
            )
            .unwrap();
        assert_eq!(table.translate(GuestPhysAddr::new(0x3fff_ffff)), None);
        assert_eq!(table.translate(GuestPhysAddr::new(0x4020_0000)), None);
        assert_eq!(table.translate(GuestPhysAddr::new(IPA_SPACE_SIZE)), None);
        assert_eq!(table.translate(GuestPhysAddr::new(u64::MAX)), None);
    }

    #[test]
    fn unmap_splits_blocks() {
        let mut table = Stage2::new(1).unwrap();
        table
            .map_ram(
                GuestPhysAddr::new(0x4000_0000),
                PhysAddr::new(0x6000_0000),
                2 * MIB,
            )
            .unwrap();
        table
            .unmap(GuestPhysAddr::new(0x4000_1000), PAGE_SIZE)
            .unwrap();
        assert_eq!(table.translate(GuestPhysAddr::new(0x4000_1000)), None);
        assert_eq!(
            table.translate(GuestPhysAddr::new(0x4000_2000)).unwrap().pa,
            PhysAddr::new(0x6000_2000)
        );
        assert_eq!(table.stats().page_descriptors, 511);
    }

    #[test]
    fn vttbr_carries_the_vmid() {
        let table = Stage2::new(0x2a).unwrap();
        let vttbr = table.vttbr();
        assert_eq!(vttbr >> 48, 0x2a);
        assert_eq!(vttbr & 0xffff_ffff_ffff, table.root_address().raw());
        assert!(table.root_address().is_aligned(PAGE_SIZE));
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(Stage2::new(0).unwrap_err(), Stage2Error::InvalidVmid(0));
        assert_eq!(Stage2::new(256).unwrap_err(), Stage2Error::InvalidVmid(256));
        let mut table = Stage2::new(255).unwrap();
        let unaligned = table.map_ram(
            GuestPhysAddr::new(0x4000_0800),
            PhysAddr::new(0x6000_0000),
            PAGE_SIZE,
        );
        assert!(matches!(unaligned, Err(Stage2Error::Unaligned { .. })));
        let empty = table.map_ram(
            GuestPhysAddr::new(0x4000_0000),
            PhysAddr::new(0x6000_0000),
            0,
        );
        assert!(matches!(empty, Err(Stage2Error::OutOfRange { .. })));
        let too_high = table.map_ram(
            GuestPhysAddr::new(IPA_SPACE_SIZE - PAGE_SIZE),
            PhysAddr::new(0),
            2 * PAGE_SIZE,
        );
        assert!(matches!(too_high, Err(Stage2Error::OutOfRange { .. })));
        let wraps = table.map_device(
            GuestPhysAddr::new(0),
            PhysAddr::new(u64::MAX - 0xfff),
            2 * PAGE_SIZE,
        );
        assert!(matches!(wraps, Err(Stage2Error::OutOfRange { .. })));
        for error in [unaligned, empty, too_high, wraps] {
            let line = error.unwrap_err().to_string();
            assert!(!line.contains('\n') && line.contains(": "), "{line}");
        }
        assert_eq!(
            table.stats().block_descriptors + table.stats().page_descriptors,
            0
        );
    }

    #[test]
    fn geometry_constants_agree() {
        assert_eq!(VTCR_T0SZ, 25);
        // A level-1 root table of 512 entries of 1 GiB covers exactly the IPA space.
        assert_eq!(512 * granularity_at_level(ROOT_LEVEL), IPA_SPACE_SIZE);
    }
}
