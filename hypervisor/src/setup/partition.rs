//! Validation of a board layout against the platform: board + platform -> partition or a typed error.
//!
//! [`validate`] runs once at boot, before any cell exists. It picks the layout, checks every CPU,
//! RAM region and device against the platform device tree and against each other, and returns a
//! [`Partition`]: the plan the rest of cellvisor builds cells from. Every way a layout can be wrong
//! is one [`LayoutError`] variant whose message names the conflict and the fix.
#![forbid(unsafe_code)]

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

use crate::board::{Board, CellConfig, CellMemory, GuestPlacement, Layout, MemRange};
use crate::dev::gic::REDISTRIBUTOR_STRIDE;
use crate::dev::passthrough::{PassthroughError, PassthroughPlan};
use crate::setup::platform::Platform;

use crate::mem::PAGE_SIZE;
use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::mem::range::{IpaRange, PhysRange};

/// VMIDs are 8 bits wide and VMID 0 is kept for cellvisor, so at most this many cells.
pub const MAX_CELLS: usize = 255;

/// What a [`Reserved`] range holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReservedKind {
    /// cellvisor's own image (text, data, BSS, stacks).
    HypervisorImage,
    /// The guest bundle the boot loader loaded as initrd.
    GuestBundle,
    /// The platform device tree.
    PlatformDeviceTree,
}

impl fmt::Display for ReservedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HypervisorImage => "the hypervisor image",
            Self::GuestBundle => "the guest bundle",
            Self::PlatformDeviceTree => "the platform device tree",
        })
    }
}

/// A range of RAM in use at boot, which must lie inside the board's `hypervisor_memory`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    /// What occupies the range.
    pub what: ReservedKind,
    /// Where it is.
    pub range: MemRange,
}

/// One vCPU of a cell and the physical CPU it is pinned to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuPlan {
    /// Index of the vCPU inside its cell (0-based).
    pub index: usize,
    /// Physical CPU index (position in the platform's `/cpus`).
    pub physical_cpu: usize,
    /// MPIDR affinity of the physical CPU, from the platform DT.
    pub physical_mpidr: u64,
    /// MPIDR affinity the guest sees (`VMPIDR_EL2`): affinity 0 = vCPU index.
    pub virtual_mpidr: u64,
}

/// A validated cell: what to build for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellPlan {
    /// Position of the cell in its layout.
    pub index: usize,
    /// The cell's name.
    pub name: &'static str,
    /// The board's description of the cell.
    pub config: &'static CellConfig,
    /// Stage-2 VMID, 1-based (VMID 0 is never given to a cell).
    pub vmid: u16,
    /// vCPUs in cell order.
    pub vcpus: Vec<VcpuPlan>,
    /// RAM regions in board order; the first receives kernel, device tree and initrd.
    pub memory: Vec<RamRegion>,
}

/// One RAM region of a validated cell: the physical RAM it owns and where its guest sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamRegion {
    /// The physical RAM.
    pub physical: PhysRange,
    /// Guest physical address of its first byte.
    pub guest_base: GuestPhysAddr,
}

impl RamRegion {
    /// The region the board describes as `memory`.
    pub const fn from_board(memory: &CellMemory) -> Self {
        Self {
            physical: PhysRange::from_board(memory.physical),
            guest_base: GuestPhysAddr::new(memory.guest_base()),
        }
    }

    /// The region's window in the cell's guest physical space.
    pub const fn guest(&self) -> IpaRange {
        IpaRange::new(self.guest_base, self.physical.size())
    }

    /// The physical address behind `[ipa, ipa + length)`, if that lies inside the region.
    pub fn phys_of(&self, ipa: GuestPhysAddr, length: u64) -> Option<PhysAddr> {
        let offset = ipa.offset_from(self.guest_base)?;
        let end = offset.checked_add(length)?;
        if end > self.physical.size() {
            return None;
        }
        self.physical.base().checked_add(offset)
    }
}

/// The validated layout: every cell that will run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// Name of the chosen layout.
    pub layout: &'static str,
    /// The cells, in layout order.
    pub cells: Vec<CellPlan>,
}

impl CellPlan {
    /// The physical CPU that runs `vcpu`.
    pub fn physical_cpu_of(&self, vcpu: usize) -> Option<usize> {
        self.vcpus.get(vcpu).map(|plan| plan.physical_cpu)
    }

    /// The physical CPUs of the cell's vCPUs, in vCPU order.
    pub fn physical_cpus(&self) -> impl Iterator<Item = usize> + '_ {
        self.vcpus.iter().map(|plan| plan.physical_cpu)
    }
}

impl Partition {
    /// The cell and vCPU a physical CPU runs: `(cell index, vCPU index)`, or `None` if it is idle.
    pub fn cell_of_cpu(&self, physical_cpu: usize) -> Option<(usize, usize)> {
        self.cells.iter().find_map(|cell| {
            cell.vcpus
                .iter()
                .find(|vcpu| vcpu.physical_cpu == physical_cpu)
                .map(|vcpu| (cell.index, vcpu.index))
        })
    }
}

/// Board and layout an error was found in, for the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutSite {
    /// Board name: the fix goes into `boards/<board>`.
    pub board: &'static str,
    /// Layout name.
    pub layout: &'static str,
}

/// Why a layout cannot run on this platform.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The board defines no layouts at all.
    NoLayouts {
        /// Board name.
        board: &'static str,
    },
    /// `cellvisor.layout=` names a layout the board does not have.
    UnknownLayout {
        /// Board name.
        board: &'static str,
        /// The requested name.
        requested: String,
        /// The layouts the board offers.
        available: &'static [Layout],
    },
    /// The layout has more cells than there are VMIDs.
    TooManyCells {
        /// Where.
        site: LayoutSite,
        /// Cells in the layout.
        count: usize,
    },
    /// Two cells share a name.
    DuplicateCellName {
        /// Where.
        site: LayoutSite,
        /// The repeated name.
        name: &'static str,
    },
    /// A cell has no CPUs.
    NoCpus {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
    },
    /// A cell names a CPU index the platform does not have.
    UnknownCpu {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The CPU index.
        cpu: usize,
        /// CPUs in the platform's `/cpus`.
        platform_cpus: usize,
    },
    /// A CPU is given twice (to two cells, or twice to one cell).
    CpuAssignedTwice {
        /// Where.
        site: LayoutSite,
        /// The CPU index.
        cpu: usize,
        /// The cell that has it first.
        first_cell: &'static str,
        /// The cell that names it again.
        second_cell: &'static str,
    },
    /// A cell has no RAM.
    NoMemory {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
    },
    /// A RAM region has zero size.
    EmptyMemory {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The region's physical range.
        region: MemRange,
    },
    /// A RAM region wraps the 64-bit address space (physically or in guest-physical space).
    WrappingMemory {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The region's physical range.
        region: MemRange,
    },
    /// A RAM region's physical base, size or guest base is not 4 KiB aligned.
    MisalignedMemory {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The region.
        region: CellMemory,
    },
    /// A RAM region is not inside one of the platform's RAM ranges.
    MemoryOutsideRam {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The region's physical range.
        region: MemRange,
    },
    /// Two RAM regions overlap physically (of two cells, or two regions of one cell).
    MemoryOverlap {
        /// Where.
        site: LayoutSite,
        /// The cell named later in the layout.
        cell: &'static str,
        /// Its region.
        region: MemRange,
        /// The cell it collides with.
        other_cell: &'static str,
        /// That cell's region.
        other_region: MemRange,
    },
    /// A cell's RAM overlaps the board's `hypervisor_memory`.
    MemoryOverlapsHypervisor {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The region's physical range.
        region: MemRange,
        /// The board's `hypervisor_memory`.
        hypervisor: MemRange,
    },
    /// The board's `hypervisor_memory` is not inside platform RAM.
    HypervisorMemoryOutsideRam {
        /// Board name.
        board: &'static str,
        /// The board's `hypervisor_memory`.
        hypervisor: MemRange,
    },
    /// Something loaded at boot lies (partly) outside `hypervisor_memory`.
    ReservedOutsideHypervisorMemory {
        /// Board name.
        board: &'static str,
        /// What it is.
        what: ReservedKind,
        /// Where it is.
        range: MemRange,
        /// The board's `hypervisor_memory`.
        hypervisor: MemRange,
    },
    /// Two RAM regions of one cell overlap in the cell's guest-physical space.
    GuestMemoryOverlap {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// Guest-physical range of one region.
        first: MemRange,
        /// Guest-physical range of the other.
        second: MemRange,
    },
    /// A RAM region covers a device window in the cell's guest-physical space.
    GuestMemoryHidesDevice {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// Guest-physical range of the region.
        region: MemRange,
        /// Which device window.
        device: &'static str,
        /// The window.
        window: MemRange,
    },
    /// A cell names a device the board does not describe.
    UnknownDevice {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The device name.
        device: &'static str,
    },
    /// A device is given twice (to two cells, or twice to one cell).
    DeviceAssignedTwice {
        /// Where.
        site: LayoutSite,
        /// The device name.
        device: &'static str,
        /// The cell that has it first.
        first_cell: &'static str,
        /// The cell that names it again.
        second_cell: &'static str,
    },
    /// A DMA-capable device is given to a cell whose RAM is not identity-mapped.
    DmaWithoutIdentity {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The device name.
        device: &'static str,
    },
    /// A cell's devices cannot be passed through (windows or SPIs shared with another device, or
    /// not matching the platform device tree).
    Passthrough {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// What is wrong.
        error: PassthroughError,
    },
}

/// Formats an address as `0x8000_0000` (hex digits grouped by four).
struct Hex(u64);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = {
            let mut digits = String::new();
            let _ = write!(digits, "{:x}", self.0);
            digits
        };
        f.write_str("0x")?;
        let leading = digits.len() % 4;
        for (position, character) in digits.chars().enumerate() {
            if position != 0 && position % 4 == leading % 4 {
                f.write_char('_')?;
            }
            f.write_char(character)?;
        }
        Ok(())
    }
}

/// Formats a range as `0x4000_0000..0x6000_0000`, or `BASE+SIZE` when the end wraps.
struct Span(MemRange);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.end() {
            Some(end) => write!(f, "{}..{}", Hex(self.0.base), Hex(end)),
            None => write!(f, "{}+{}", Hex(self.0.base), Hex(self.0.size)),
        }
    }
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLayouts { board } => write!(
                f,
                "board {board:?} has no layouts: add at least one Layout to boards/{board}"
            ),
            Self::UnknownLayout {
                board,
                requested,
                available,
            } => {
                write!(
                    f,
                    "board {board:?} has no layout {requested:?}: pass cellvisor.layout= with one of"
                )?;
                for (position, layout) in available.iter().enumerate() {
                    let separator = if position == 0 { " " } else { ", " };
                    write!(f, "{separator}{}", layout.name)?;
                }
                Ok(())
            }
            Self::TooManyCells { site, count } => write!(
                f,
                "layout {:?}: {count} cells but only {MAX_CELLS} VMIDs: use fewer cells in boards/{}",
                site.layout, site.board
            ),
            Self::DuplicateCellName { site, name } => write!(
                f,
                "layout {:?}: two cells are named {name:?}: rename one of them in boards/{}",
                site.layout, site.board
            ),
            Self::NoCpus { site, cell } => write!(
                f,
                "layout {:?}: cell {cell:?} has no CPUs: give it at least one in boards/{}",
                site.layout, site.board
            ),
            Self::UnknownCpu {
                site,
                cell,
                cpu,
                platform_cpus,
            } => write!(
                f,
                "layout {:?}: cell {cell:?} uses CPU {cpu} but the platform has {platform_cpus} CPUs: \
                 use CPUs 0..{platform_cpus} in boards/{} or start the machine with more CPUs",
                site.layout, site.board
            ),
            Self::CpuAssignedTwice {
                site,
                cpu,
                first_cell,
                second_cell,
            } => {
                if first_cell == second_cell {
                    write!(
                        f,
                        "layout {:?}: cell {first_cell:?} lists CPU {cpu} twice: list each CPU once in boards/{}",
                        site.layout, site.board
                    )
                } else {
                    write!(
                        f,
                        "layout {:?}: CPU {cpu} is in cell {first_cell:?} and cell {second_cell:?}: \
                         give it to one of them in boards/{}",
                        site.layout, site.board
                    )
                }
            }
            Self::NoMemory { site, cell } => write!(
                f,
                "layout {:?}: cell {cell:?} has no RAM: give it a memory region in boards/{}",
                site.layout, site.board
            ),
            Self::EmptyMemory { site, cell, region } => write!(
                f,
                "layout {:?}: cell {cell:?} RAM at {} has size 0: give it a size or remove it in boards/{}",
                site.layout,
                Hex(region.base),
                site.board
            ),
            Self::WrappingMemory { site, cell, region } => write!(
                f,
                "layout {:?}: cell {cell:?} RAM {} wraps the address space: fix its base, size or guest \
                 address in boards/{}",
                site.layout,
                Span(*region),
                site.board
            ),
            Self::MisalignedMemory { site, cell, region } => write!(
                f,
                "layout {:?}: cell {cell:?} RAM {} (guest {}) is not 4 KiB aligned: align base, size and \
                 guest address to 0x1000 in boards/{}",
                site.layout,
                Span(region.physical),
                Hex(region.guest_base()),
                site.board
            ),
            Self::MemoryOutsideRam { site, cell, region } => write!(
                f,
                "layout {:?}: cell {cell:?} RAM {} is not inside platform RAM: move it into a memory node's \
                 range in boards/{} or give the machine more RAM",
                site.layout,
                Span(*region),
                site.board
            ),
            Self::MemoryOverlap {
                site,
                cell,
                region,
                other_cell,
                other_region,
            } => write!(
                f,
                "layout {:?}: cell {cell:?} RAM {} overlaps cell {other_cell:?} RAM {}: move or shrink one \
                 of them in boards/{}",
                site.layout,
                Span(*region),
                Span(*other_region),
                site.board
            ),
            Self::MemoryOverlapsHypervisor {
                site,
                cell,
                region,
                hypervisor,
            } => write!(
                f,
                "layout {:?}: cell {cell:?} RAM {} overlaps hypervisor memory {}: move the cell's RAM in \
                 boards/{}",
                site.layout,
                Span(*region),
                Span(*hypervisor),
                site.board
            ),
            Self::HypervisorMemoryOutsideRam { board, hypervisor } => write!(
                f,
                "board {board:?} hypervisor memory {} is not inside platform RAM: fix hypervisor_memory \
                 in boards/{board}",
                Span(*hypervisor)
            ),
            Self::ReservedOutsideHypervisorMemory {
                board,
                what,
                range,
                hypervisor,
            } => write!(
                f,
                "{what} at {} is outside hypervisor memory {}: load it inside, or grow hypervisor_memory \
                 in boards/{board}",
                Span(*range),
                Span(*hypervisor)
            ),
            Self::GuestMemoryOverlap {
                site,
                cell,
                first,
                second,
            } => write!(
                f,
                "layout {:?}: cell {cell:?} RAM regions overlap at guest addresses {} and {}: give them \
                 disjoint guest addresses in boards/{}",
                site.layout,
                Span(*first),
                Span(*second),
                site.board
            ),
            Self::GuestMemoryHidesDevice {
                site,
                cell,
                region,
                device,
                window,
            } => write!(
                f,
                "layout {:?}: cell {cell:?} RAM at guest {} covers the {device} at {}: place the RAM \
                 elsewhere (GuestPlacement::At) in boards/{}",
                site.layout,
                Span(*region),
                Span(*window),
                site.board
            ),
            Self::UnknownDevice { site, cell, device } => write!(
                f,
                "layout {:?}: cell {cell:?} uses device {device:?} which the board does not describe: add \
                 it to Board::devices or remove it from the cell in boards/{}",
                site.layout, site.board
            ),
            Self::DeviceAssignedTwice {
                site,
                device,
                first_cell,
                second_cell,
            } => write!(
                f,
                "layout {:?}: device {device:?} is given to cell {first_cell:?} and cell {second_cell:?}: \
                 give it to one cell once in boards/{}",
                site.layout, site.board
            ),
            Self::DmaWithoutIdentity { site, cell, device } => write!(
                f,
                "layout {:?}: cell {cell:?} gets DMA-capable device {device:?} but its RAM is not \
                 identity-mapped: use GuestPlacement::Identity for its RAM in boards/{}",
                site.layout, site.board
            ),
            Self::Passthrough { site, cell, error } => write!(
                f,
                "layout {:?}: cell {cell:?}: {error} (boards/{})",
                site.layout, site.board
            ),
        }
    }
}

/// Checks the chosen layout of `board` against `platform` and the ranges in use at boot.
///
/// `layout` is the `cellvisor.layout=` value, `None` for the board's default (first) layout.
pub fn validate(
    board: &Board,
    layout: Option<&str>,
    platform: &Platform,
    reserved: &[Reserved],
) -> Result<Partition, LayoutError> {
    let layout = choose_layout(board, layout)?;
    let site = LayoutSite {
        board: board.name,
        layout: layout.name,
    };
    check_hypervisor_memory(board, platform, reserved)?;
    if layout.cells.len() > MAX_CELLS {
        return Err(LayoutError::TooManyCells {
            site,
            count: layout.cells.len(),
        });
    }

    for (position, cell) in layout.cells.iter().enumerate() {
        if layout.cells[..position]
            .iter()
            .any(|earlier| earlier.name == cell.name)
        {
            return Err(LayoutError::DuplicateCellName {
                site,
                name: cell.name,
            });
        }
    }

    let mut cpu_owner: Vec<Option<&'static str>> = alloc::vec![None; platform.cpus.len()];
    let mut cells = Vec::with_capacity(layout.cells.len());
    for (index, cell) in layout.cells.iter().enumerate() {
        let vcpus = plan_vcpus(site, cell, platform, &mut cpu_owner)?;
        check_cell_memory(site, board, cell, platform)?;
        check_memory_against_earlier_cells(site, cell, &layout.cells[..index])?;
        check_guest_address_space(site, board, cell, platform, vcpus.len())?;
        check_devices(site, board, cell, &layout.cells[..index])?;
        cells.push(CellPlan {
            index,
            name: cell.name,
            config: cell,
            // `index < MAX_CELLS` (255), so `index + 1` fits in a u16 and is never 0.
            vmid: u16::try_from(index + 1).unwrap_or(u16::MAX),
            vcpus,
            memory: cell.memory.iter().map(RamRegion::from_board).collect(),
        });
    }
    let partition = Partition {
        layout: layout.name,
        cells,
    };
    check_passthrough(site, board, &partition, platform)?;
    Ok(partition)
}

/// Every cell's passthrough plan can be made and its devices are nodes of the platform tree.
fn check_passthrough(
    site: LayoutSite,
    board: &Board,
    partition: &Partition,
    platform: &Platform,
) -> Result<(), LayoutError> {
    for cell in &partition.cells {
        PassthroughPlan::for_cell(board, partition, cell)
            .and_then(|plan| plan.device_nodes(platform))
            .map_err(|error| LayoutError::Passthrough {
                site,
                cell: cell.name,
                error,
            })?;
    }
    Ok(())
}

fn choose_layout(board: &Board, requested: Option<&str>) -> Result<&'static Layout, LayoutError> {
    if board.layouts.is_empty() {
        return Err(LayoutError::NoLayouts { board: board.name });
    }
    match requested {
        None => board
            .default_layout()
            .ok_or(LayoutError::NoLayouts { board: board.name }),
        Some(name) => board
            .layout(name)
            .ok_or_else(|| LayoutError::UnknownLayout {
                board: board.name,
                requested: String::from(name),
                available: board.layouts,
            }),
    }
}

fn check_hypervisor_memory(
    board: &Board,
    platform: &Platform,
    reserved: &[Reserved],
) -> Result<(), LayoutError> {
    let hypervisor = board.hypervisor_memory;
    if !platform.ram_contains(&hypervisor) {
        return Err(LayoutError::HypervisorMemoryOutsideRam {
            board: board.name,
            hypervisor,
        });
    }
    match reserved
        .iter()
        .find(|item| !hypervisor.contains_range(&item.range))
    {
        Some(item) => Err(LayoutError::ReservedOutsideHypervisorMemory {
            board: board.name,
            what: item.what,
            range: item.range,
            hypervisor,
        }),
        None => Ok(()),
    }
}

fn plan_vcpus(
    site: LayoutSite,
    cell: &'static CellConfig,
    platform: &Platform,
    cpu_owner: &mut [Option<&'static str>],
) -> Result<Vec<VcpuPlan>, LayoutError> {
    if cell.cpus.is_empty() {
        return Err(LayoutError::NoCpus {
            site,
            cell: cell.name,
        });
    }
    let mut vcpus = Vec::with_capacity(cell.cpus.len());
    for (index, &physical_cpu) in cell.cpus.iter().enumerate() {
        let (Some(cpu), Some(owner)) = (
            platform.cpus.get(physical_cpu),
            cpu_owner.get_mut(physical_cpu),
        ) else {
            return Err(LayoutError::UnknownCpu {
                site,
                cell: cell.name,
                cpu: physical_cpu,
                platform_cpus: platform.cpus.len(),
            });
        };
        if let Some(first_cell) = *owner {
            return Err(LayoutError::CpuAssignedTwice {
                site,
                cpu: physical_cpu,
                first_cell,
                second_cell: cell.name,
            });
        }
        *owner = Some(cell.name);
        vcpus.push(VcpuPlan {
            index,
            physical_cpu,
            physical_mpidr: cpu.mpidr,
            virtual_mpidr: index as u64,
        });
    }
    Ok(vcpus)
}

/// The guest-physical range a region occupies, or `None` if it wraps.
fn guest_range(region: &CellMemory) -> Option<MemRange> {
    let range = MemRange::new(region.guest_base(), region.physical.size);
    range.end().map(|_| range)
}

fn check_cell_memory(
    site: LayoutSite,
    board: &Board,
    cell: &'static CellConfig,
    platform: &Platform,
) -> Result<(), LayoutError> {
    if cell.memory.is_empty() {
        return Err(LayoutError::NoMemory {
            site,
            cell: cell.name,
        });
    }
    for region in cell.memory {
        let physical = region.physical;
        if physical.size == 0 {
            return Err(LayoutError::EmptyMemory {
                site,
                cell: cell.name,
                region: physical,
            });
        }
        if physical.end().is_none() || guest_range(region).is_none() {
            return Err(LayoutError::WrappingMemory {
                site,
                cell: cell.name,
                region: physical,
            });
        }
        let aligned = [physical.base, physical.size, region.guest_base()]
            .iter()
            .all(|value| value.is_multiple_of(PAGE_SIZE));
        if !aligned {
            return Err(LayoutError::MisalignedMemory {
                site,
                cell: cell.name,
                region: *region,
            });
        }
        if physical.overlaps(&board.hypervisor_memory) {
            return Err(LayoutError::MemoryOverlapsHypervisor {
                site,
                cell: cell.name,
                region: physical,
                hypervisor: board.hypervisor_memory,
            });
        }
        if !platform.ram_contains(&physical) {
            return Err(LayoutError::MemoryOutsideRam {
                site,
                cell: cell.name,
                region: physical,
            });
        }
    }
    Ok(())
}

/// Physical overlap with earlier cells' RAM and between this cell's own regions.
fn check_memory_against_earlier_cells(
    site: LayoutSite,
    cell: &'static CellConfig,
    earlier_cells: &'static [CellConfig],
) -> Result<(), LayoutError> {
    for (position, region) in cell.memory.iter().enumerate() {
        let own_earlier = cell.memory[..position]
            .iter()
            .map(|other| (cell.name, other));
        let other_cells = earlier_cells
            .iter()
            .flat_map(|other| other.memory.iter().map(move |region| (other.name, region)));
        for (other_cell, other_region) in other_cells.chain(own_earlier) {
            if region.physical.overlaps(&other_region.physical) {
                return Err(LayoutError::MemoryOverlap {
                    site,
                    cell: cell.name,
                    region: region.physical,
                    other_cell,
                    other_region: other_region.physical,
                });
            }
        }
    }
    Ok(())
}

/// The windows a cell's guest-physical space needs for devices: emulated ones and passthrough.
fn device_windows(
    board: &Board,
    cell: &CellConfig,
    platform: &Platform,
    vcpu_count: usize,
) -> Vec<(&'static str, MemRange)> {
    let mut windows = alloc::vec![
        ("GIC distributor", platform.gic.distributor),
        ("UART", platform.console.registers),
    ];
    if let Some(region) = platform.gic.redistributor_regions.first() {
        let size = REDISTRIBUTOR_STRIDE.saturating_mul(vcpu_count as u64);
        windows.push(("GIC redistributors", MemRange::new(region.base, size)));
    }
    for device in cell.devices.iter().filter_map(|name| board.device(name)) {
        windows.extend(device.mmio.iter().map(|window| (device.name, *window)));
    }
    windows
}

fn check_guest_address_space(
    site: LayoutSite,
    board: &Board,
    cell: &'static CellConfig,
    platform: &Platform,
    vcpu_count: usize,
) -> Result<(), LayoutError> {
    let windows = device_windows(board, cell, platform, vcpu_count);
    // `check_cell_memory` already refused wrapping regions, so every guest range exists.
    let ranges: Vec<MemRange> = cell.memory.iter().filter_map(guest_range).collect();
    for (position, range) in ranges.iter().enumerate() {
        if let Some(earlier) = ranges[..position]
            .iter()
            .find(|earlier| earlier.overlaps(range))
        {
            return Err(LayoutError::GuestMemoryOverlap {
                site,
                cell: cell.name,
                first: *earlier,
                second: *range,
            });
        }
        if let Some((device, window)) = windows.iter().find(|(_, window)| window.overlaps(range)) {
            return Err(LayoutError::GuestMemoryHidesDevice {
                site,
                cell: cell.name,
                region: *range,
                device,
                window: *window,
            });
        }
    }
    Ok(())
}

fn check_devices(
    site: LayoutSite,
    board: &Board,
    cell: &'static CellConfig,
    earlier_cells: &'static [CellConfig],
) -> Result<(), LayoutError> {
    for (position, &name) in cell.devices.iter().enumerate() {
        let Some(device) = board.device(name) else {
            return Err(LayoutError::UnknownDevice {
                site,
                cell: cell.name,
                device: name,
            });
        };
        let earlier_owner = earlier_cells
            .iter()
            .find(|other| other.devices.contains(&name))
            .map(|other| other.name)
            .or_else(|| {
                cell.devices[..position]
                    .contains(&name)
                    .then_some(cell.name)
            });
        if let Some(first_cell) = earlier_owner {
            return Err(LayoutError::DeviceAssignedTwice {
                site,
                device: name,
                first_cell,
                second_cell: cell.name,
            });
        }
        let identity = cell
            .memory
            .iter()
            .all(|region| region.placement == GuestPlacement::Identity);
        if device.dma_capable && !identity {
            return Err(LayoutError::DmaWithoutIdentity {
                site,
                cell: cell.name,
                device: name,
            });
        }
    }
    Ok(())
}

/// A human-readable summary of a board's layouts (used by the board binary on the host).
pub fn describe_board(board: &Board) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "board {}", board.name);
    for layout in board.layouts {
        let _ = writeln!(out, "layout {}", layout.name);
        for cell in layout.cells {
            let ram: u64 = cell.memory.iter().map(|region| region.physical.size).sum();
            let _ = writeln!(
                out,
                "  {:<10} cpus {:?} ram {} MiB kernel {}",
                cell.name,
                cell.cpus,
                ram >> 20,
                cell.kernel
            );
        }
    }
    out
}

/// The real QEMU virt board data, compiled into the tests: cellvisor cannot depend on the board
/// crate, which depends on cellvisor.
#[cfg(test)]
#[allow(unused_attributes, dead_code)]
#[path = "../../../boards/qemu-virt/src/lib.rs"]
pub(crate) mod qemu_virt;

#[cfg(test)]
mod tests {
    extern crate std;

    use super::qemu_virt;
    use super::*;
    use crate::board::{CellPolicy, Device};
    use crate::setup::platform;
    use alloc::boxed::Box;
    use alloc::string::ToString;
    use alloc::vec;
    use std::format;

    const MIB: u64 = 1024 * 1024;
    const DTB: &[u8] = include_bytes!("../../tests/data/qemu-virt-gicv3.dtb");

    fn qemu_platform() -> Platform {
        platform::parse(DTB).expect("fixture parses")
    }

    fn leak<T>(items: Vec<T>) -> &'static [T] {
        Box::leak(items.into_boxed_slice())
    }

    fn identity(base: u64, size: u64) -> CellMemory {
        CellMemory {
            physical: MemRange::new(base, size),
            placement: GuestPlacement::Identity,
        }
    }

    fn cell(name: &'static str, cpus: Vec<usize>, memory: Vec<CellMemory>) -> CellConfig {
        CellConfig {
            name,
            cpus: leak(cpus),
            memory: leak(memory),
            devices: &[],
            kernel: "linux",
            initrd: None,
            bootargs: "",
            policy: CellPolicy::ALL,
        }
    }

    fn with_devices(mut config: CellConfig, devices: Vec<&'static str>) -> CellConfig {
        config.devices = leak(devices);
        config
    }

    const DEVICES: &[Device] = &[
        Device {
            name: "disk",
            mmio: &[MemRange::new(0x0A00_3E00, 0x200)],
            interrupts: &[79],
            dma_capable: true,
        },
        Device {
            name: "leds",
            mmio: &[MemRange::new(0x0903_0000, 0x1000)],
            interrupts: &[],
            dma_capable: false,
        },
    ];

    fn board(cells: Vec<CellConfig>) -> Board {
        Board {
            name: "test-board",
            hypervisor_memory: MemRange::new(0x4000_0000, 512 * MIB),
            devices: DEVICES,
            layouts: leak(vec![Layout {
                name: "main",
                cells: leak(cells),
            }]),
            power_off_when_all_cells_off: true,
        }
    }

    fn two_cells() -> Vec<CellConfig> {
        vec![
            cell(
                "personal",
                vec![0, 1],
                vec![identity(0x6000_0000, 256 * MIB)],
            ),
            cell(
                "corporate",
                vec![2, 3],
                vec![identity(0x9000_0000, 256 * MIB)],
            ),
        ]
    }

    fn check(cells: Vec<CellConfig>) -> Result<Partition, LayoutError> {
        validate(&board(cells), None, &qemu_platform(), &[])
    }

    fn error_of(cells: Vec<CellConfig>) -> LayoutError {
        let error = check(cells).expect_err("layout must be refused");
        let line = error.to_string();
        assert!(!line.contains('\n'), "one line: {line}");
        assert!(line.contains(": "), "names a fix: {line}");
        error
    }

    #[test]
    fn qemu_virt_board_validates_both_layouts() {
        let platform = qemu_platform();
        for layout in ["linux", "test-guests"] {
            let partition = validate(&qemu_virt::BOARD, Some(layout), &platform, &[])
                .unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(partition.layout, layout);
            assert_eq!(partition.cells.len(), 2);
            assert_eq!(partition.cells[1].vmid, 2);
        }
        let default = validate(&qemu_virt::BOARD, None, &platform, &[]).expect("default layout");
        assert_eq!(default.layout, "linux");
    }

    /// Every layout of the real board validates, except `invalid-dma-remapped`, which exists only
    /// to be refused with exactly the DMA rule.
    #[test]
    fn qemu_virt_layouts_validate_except_the_deliberately_invalid_one() {
        let platform = qemu_platform();
        for layout in qemu_virt::BOARD.layouts {
            let result = validate(&qemu_virt::BOARD, Some(layout.name), &platform, &[]);
            if layout.name == "invalid-dma-remapped" {
                let error = result.expect_err("the DMA rule refuses it");
                assert_eq!(
                    error,
                    LayoutError::DmaWithoutIdentity {
                        site: LayoutSite {
                            board: "qemu-virt",
                            layout: "invalid-dma-remapped"
                        },
                        cell: "corporate",
                        device: "virtio-disk",
                    }
                );
                let line = error.to_string();
                assert!(line.contains("DMA-capable") && line.contains("identity-mapped"));
            } else if let Err(error) = result {
                panic!("layout {}: {error}", layout.name);
            }
        }
    }

    #[test]
    fn qemu_virt_linux_cells_own_one_virtio_slot_each() {
        let partition =
            validate(&qemu_virt::BOARD, Some("linux"), &qemu_platform(), &[]).expect("valid");
        let devices: Vec<(&str, &[&str])> = partition
            .cells
            .iter()
            .map(|cell| (cell.name, cell.config.devices))
            .collect();
        assert_eq!(
            devices,
            [
                ("personal", &["virtio-net"][..]),
                ("corporate", &["virtio-disk"][..])
            ]
        );
        for cell in &partition.cells {
            assert!(
                cell.memory
                    .iter()
                    .all(|region| region.guest_base.raw() == region.physical.base().raw())
            );
        }
    }

    #[test]
    fn passthrough_conflicts_are_layout_errors() {
        const CLASHING: &[Device] = &[
            Device {
                name: "disk",
                mmio: &[MemRange::new(0x0A00_3E00, 0x200)],
                interrupts: &[79],
                dma_capable: false,
            },
            Device {
                name: "disk-alias",
                mmio: &[MemRange::new(0x0A00_3F00, 0x100)],
                interrupts: &[79],
                dma_capable: false,
            },
            Device {
                name: "phantom",
                mmio: &[MemRange::new(0x0A00_8000, 0x200)],
                interrupts: &[],
                dma_capable: false,
            },
        ];
        let layout = |cells: Vec<CellConfig>| {
            let mut board = board(cells);
            board.devices = CLASHING;
            validate(&board, None, &qemu_platform(), &[])
        };
        let [a, b] = <[CellConfig; 2]>::try_from(two_cells()).unwrap();
        let error = layout(vec![
            with_devices(a, vec!["disk"]),
            with_devices(b, vec!["disk-alias"]),
        ])
        .unwrap_err();
        assert!(matches!(
            error,
            LayoutError::Passthrough {
                cell: "personal",
                error: PassthroughError::WindowOverlap { .. },
                ..
            }
        ));
        assert!(!error.to_string().contains('\n'));
        let error = layout(vec![with_devices(a, vec!["phantom"]), b]).unwrap_err();
        assert!(matches!(
            error,
            LayoutError::Passthrough {
                error: PassthroughError::NotInPlatform { .. },
                ..
            }
        ));
    }

    #[test]
    fn plan_pins_vcpus_and_renumbers_mpidrs() {
        let partition = check(two_cells()).expect("valid");
        let corporate = &partition.cells[1];
        assert_eq!(
            (corporate.index, corporate.name, corporate.vmid),
            (1, "corporate", 2)
        );
        assert_eq!(
            corporate.vcpus,
            [
                VcpuPlan {
                    index: 0,
                    physical_cpu: 2,
                    physical_mpidr: 2,
                    virtual_mpidr: 0
                },
                VcpuPlan {
                    index: 1,
                    physical_cpu: 3,
                    physical_mpidr: 3,
                    virtual_mpidr: 1
                },
            ]
        );
        assert_eq!(
            corporate.memory,
            [RamRegion::from_board(&identity(0x9000_0000, 256 * MIB))]
        );
        assert_eq!(partition.cell_of_cpu(3), Some((1, 1)));
        assert_eq!(partition.cell_of_cpu(0), Some((0, 0)));
        assert_eq!(partition.cell_of_cpu(4), None);
    }

    #[test]
    fn idle_cpus_belong_to_no_cell() {
        let cells = vec![cell("only", vec![1], vec![identity(0x6000_0000, MIB)])];
        let partition = check(cells).expect("valid");
        assert_eq!(partition.cell_of_cpu(0), None);
        assert_eq!(partition.cell_of_cpu(1), Some((0, 0)));
    }

    #[test]
    fn unknown_layout() {
        let error = validate(&board(two_cells()), Some("nope"), &qemu_platform(), &[]).unwrap_err();
        assert!(
            matches!(error, LayoutError::UnknownLayout { ref requested, .. } if requested == "nope")
        );
        assert!(error.to_string().contains("one of main"), "{error}");
    }

    #[test]
    fn board_without_layouts() {
        let mut empty = board(two_cells());
        empty.layouts = &[];
        let error = validate(&empty, None, &qemu_platform(), &[]).unwrap_err();
        assert_eq!(
            error,
            LayoutError::NoLayouts {
                board: "test-board"
            }
        );
    }

    #[test]
    fn cell_without_cpus() {
        let error = error_of(vec![cell(
            "lonely",
            vec![],
            vec![identity(0x6000_0000, MIB)],
        )]);
        assert!(matches!(error, LayoutError::NoCpus { cell: "lonely", .. }));
    }

    #[test]
    fn cell_without_memory() {
        let error = error_of(vec![cell("lonely", vec![0], vec![])]);
        assert!(matches!(
            error,
            LayoutError::NoMemory { cell: "lonely", .. }
        ));
    }

    #[test]
    fn cpu_the_platform_lacks() {
        let error = error_of(vec![cell(
            "big",
            vec![0, 4],
            vec![identity(0x6000_0000, MIB)],
        )]);
        assert!(matches!(
            error,
            LayoutError::UnknownCpu {
                cpu: 4,
                platform_cpus: 4,
                ..
            }
        ));
    }

    #[test]
    fn cpu_in_two_cells() {
        let mut cells = two_cells();
        cells[1] = cell("corporate", vec![1, 2], vec![identity(0x9000_0000, MIB)]);
        let error = error_of(cells);
        assert!(matches!(
            error,
            LayoutError::CpuAssignedTwice {
                cpu: 1,
                first_cell: "personal",
                second_cell: "corporate",
                ..
            }
        ));
    }

    #[test]
    fn cpu_twice_in_one_cell() {
        let error = error_of(vec![cell(
            "greedy",
            vec![2, 2],
            vec![identity(0x6000_0000, MIB)],
        )]);
        assert!(matches!(
            error,
            LayoutError::CpuAssignedTwice {
                cpu: 2,
                first_cell: "greedy",
                second_cell: "greedy",
                ..
            }
        ));
        assert!(error.to_string().contains("twice"));
    }

    #[test]
    fn memory_outside_platform_ram() {
        let error = error_of(vec![cell(
            "high",
            vec![0],
            vec![identity(0xBFF0_0000, 2 * MIB)],
        )]);
        assert!(matches!(error, LayoutError::MemoryOutsideRam { .. }));
    }

    #[test]
    fn memory_overlapping_another_cell() {
        let mut cells = two_cells();
        cells[1] = cell("corporate", vec![2], vec![identity(0x6800_0000, 256 * MIB)]);
        let error = error_of(cells);
        assert!(matches!(
            error,
            LayoutError::MemoryOverlap {
                cell: "corporate",
                other_cell: "personal",
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "layout \"main\": cell \"corporate\" RAM 0x6800_0000..0x7800_0000 overlaps cell \"personal\" \
             RAM 0x6000_0000..0x7000_0000: move or shrink one of them in boards/test-board"
        );
    }

    #[test]
    fn memory_overlapping_own_region() {
        let error = error_of(vec![cell(
            "twice",
            vec![0],
            vec![
                identity(0x6000_0000, 2 * MIB),
                identity(0x6010_0000, 2 * MIB),
            ],
        )]);
        assert!(matches!(
            error,
            LayoutError::MemoryOverlap {
                cell: "twice",
                other_cell: "twice",
                ..
            }
        ));
    }

    #[test]
    fn memory_overlapping_hypervisor() {
        let error = error_of(vec![cell(
            "thief",
            vec![0],
            vec![identity(0x5FF0_0000, 2 * MIB)],
        )]);
        assert!(matches!(
            error,
            LayoutError::MemoryOverlapsHypervisor { .. }
        ));
    }

    #[test]
    fn hypervisor_memory_outside_ram() {
        let mut bad = board(two_cells());
        bad.hypervisor_memory = MemRange::new(0x3000_0000, 512 * MIB);
        let error = validate(&bad, None, &qemu_platform(), &[]).unwrap_err();
        assert!(matches!(
            error,
            LayoutError::HypervisorMemoryOutsideRam { .. }
        ));
    }

    #[test]
    fn reserved_range_outside_hypervisor_memory() {
        let inside = Reserved {
            what: ReservedKind::HypervisorImage,
            range: MemRange::new(0x4020_0000, 4 * MIB),
        };
        let outside = Reserved {
            what: ReservedKind::GuestBundle,
            range: MemRange::new(0x5FF0_0000, 2 * MIB),
        };
        let platform = qemu_platform();
        assert!(validate(&board(two_cells()), None, &platform, &[inside]).is_ok());
        let error = validate(&board(two_cells()), None, &platform, &[inside, outside]).unwrap_err();
        assert!(matches!(
            error,
            LayoutError::ReservedOutsideHypervisorMemory {
                what: ReservedKind::GuestBundle,
                ..
            }
        ));
        assert!(
            error
                .to_string()
                .starts_with("the guest bundle at 0x5ff0_0000..0x6010_0000")
        );
    }

    #[test]
    fn memory_not_page_aligned() {
        let error = error_of(vec![cell("odd", vec![0], vec![identity(0x6000_0800, MIB)])]);
        assert!(matches!(error, LayoutError::MisalignedMemory { .. }));
        let error = error_of(vec![cell(
            "odd",
            vec![0],
            vec![identity(0x6000_0000, 0x1800)],
        )]);
        assert!(matches!(error, LayoutError::MisalignedMemory { .. }));
        let placed = CellMemory {
            physical: MemRange::new(0x6000_0000, MIB),
            placement: GuestPlacement::At(0x4000_0010),
        };
        let error = error_of(vec![cell("odd", vec![0], vec![placed])]);
        assert!(matches!(error, LayoutError::MisalignedMemory { .. }));
    }

    #[test]
    fn memory_of_zero_size() {
        let error = error_of(vec![cell("none", vec![0], vec![identity(0x6000_0000, 0)])]);
        assert!(matches!(error, LayoutError::EmptyMemory { .. }));
    }

    #[test]
    fn memory_wrapping() {
        let error = error_of(vec![cell(
            "wrap",
            vec![0],
            vec![identity(u64::MAX - 0xFFF, 0x2000)],
        )]);
        assert!(matches!(error, LayoutError::WrappingMemory { .. }));
        let placed = CellMemory {
            physical: MemRange::new(0x6000_0000, 2 * MIB),
            placement: GuestPlacement::At(u64::MAX - 0xFFF),
        };
        let error = error_of(vec![cell("wrap", vec![0], vec![placed])]);
        assert!(matches!(error, LayoutError::WrappingMemory { .. }));
    }

    #[test]
    fn guest_regions_overlapping() {
        let first = CellMemory {
            physical: MemRange::new(0x6000_0000, 2 * MIB),
            placement: GuestPlacement::At(0x4000_0000),
        };
        let second = CellMemory {
            physical: MemRange::new(0x7000_0000, 2 * MIB),
            placement: GuestPlacement::At(0x4010_0000),
        };
        let error = error_of(vec![cell("folded", vec![0], vec![first, second])]);
        assert!(matches!(error, LayoutError::GuestMemoryOverlap { .. }));
    }

    fn placed_at(guest: u64) -> Vec<CellConfig> {
        vec![cell(
            "hider",
            vec![0, 1],
            vec![CellMemory {
                physical: MemRange::new(0x6000_0000, 2 * MIB),
                placement: GuestPlacement::At(guest),
            }],
        )]
    }

    #[test]
    fn guest_ram_over_emulated_devices() {
        let error = error_of(placed_at(0x0800_0000));
        assert!(matches!(
            error,
            LayoutError::GuestMemoryHidesDevice {
                device: "GIC distributor",
                ..
            }
        ));
        let error = error_of(placed_at(0x0900_0000));
        assert!(matches!(
            error,
            LayoutError::GuestMemoryHidesDevice { device: "UART", .. }
        ));
        // Two vCPUs use redistributor frames 0x080A_0000..0x080E_0000; 0x0820_0000 is past them.
        assert!(check(placed_at(0x0820_0000)).is_ok());
    }

    #[test]
    fn guest_ram_over_redistributors() {
        // 0x080C_0000 is the second vCPU's frame; the distributor and UART are elsewhere.
        let mut cells = placed_at(0);
        cells[0].memory = leak(vec![CellMemory {
            physical: MemRange::new(0x6000_0000, 0x1_0000),
            placement: GuestPlacement::At(0x080C_0000),
        }]);
        let error = error_of(cells);
        assert!(matches!(
            error,
            LayoutError::GuestMemoryHidesDevice {
                device: "GIC redistributors",
                ..
            }
        ));
    }

    #[test]
    fn unknown_device() {
        let cells = vec![with_devices(
            cell("a", vec![0], vec![identity(0x6000_0000, MIB)]),
            vec!["modem"],
        )];
        let error = error_of(cells);
        assert!(matches!(
            error,
            LayoutError::UnknownDevice {
                device: "modem",
                ..
            }
        ));
    }

    #[test]
    fn device_in_two_cells() {
        let cells = two_cells()
            .into_iter()
            .map(|config| with_devices(config, vec!["leds"]))
            .collect();
        let error = error_of(cells);
        assert!(matches!(
            error,
            LayoutError::DeviceAssignedTwice {
                device: "leds",
                first_cell: "personal",
                second_cell: "corporate",
                ..
            }
        ));
        let twice = vec![with_devices(
            cell("a", vec![0], vec![identity(0x6000_0000, MIB)]),
            vec!["leds", "leds"],
        )];
        assert!(matches!(
            error_of(twice),
            LayoutError::DeviceAssignedTwice { .. }
        ));
    }

    #[test]
    fn dma_device_needs_identity_ram() {
        let placed = CellMemory {
            physical: MemRange::new(0x6000_0000, MIB),
            placement: GuestPlacement::At(0x4000_0000),
        };
        let cells = vec![with_devices(cell("a", vec![0], vec![placed]), vec!["disk"])];
        let error = error_of(cells);
        assert!(matches!(
            error,
            LayoutError::DmaWithoutIdentity { device: "disk", .. }
        ));
        let identity_cells = vec![with_devices(
            cell("a", vec![0], vec![identity(0x6000_0000, MIB)]),
            vec!["disk"],
        )];
        assert!(check(identity_cells).is_ok());
    }

    #[test]
    fn passthrough_window_is_part_of_the_guest_map() {
        let placed = CellMemory {
            physical: MemRange::new(0x6000_0000, MIB),
            placement: GuestPlacement::At(0x0903_0000),
        };
        let cells = vec![with_devices(cell("a", vec![0], vec![placed]), vec!["leds"])];
        assert!(matches!(
            error_of(cells),
            LayoutError::GuestMemoryHidesDevice { device: "leds", .. }
        ));
    }

    #[test]
    fn duplicate_cell_names() {
        let mut cells = two_cells();
        cells[1].name = "personal";
        let error = error_of(cells);
        assert!(matches!(
            error,
            LayoutError::DuplicateCellName {
                name: "personal",
                ..
            }
        ));
    }

    #[test]
    fn more_cells_than_vmids() {
        let cells = (0..=MAX_CELLS)
            .map(|index| {
                let name: &'static str = Box::leak(format!("c{index}").into_boxed_str());
                cell(
                    name,
                    vec![0],
                    vec![identity(0x6000_0000 + index as u64 * MIB, MIB)],
                )
            })
            .collect();
        let error = error_of(cells);
        assert!(matches!(
            error,
            LayoutError::TooManyCells { count: 256, .. }
        ));
    }

    #[test]
    fn hex_groups_digits() {
        assert_eq!(Hex(0x8000_0000).to_string(), "0x8000_0000");
        assert_eq!(Hex(0x1_0000).to_string(), "0x1_0000");
        assert_eq!(Hex(0).to_string(), "0x0");
        assert_eq!(Hex(0xabc).to_string(), "0xabc");
    }

    #[test]
    fn describe_board_lists_every_cell() {
        let text = describe_board(&qemu_virt::BOARD);
        assert!(text.contains("layout linux") && text.contains("layout test-guests"));
        assert!(text.contains("corporate"));
    }
}
