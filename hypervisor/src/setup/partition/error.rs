//! [`LayoutError`]: every way a layout can be wrong, and its one-line message naming the fix.

use alloc::string::String;
use core::fmt::{self, Write};

use crate::board::{CellMemory, Layout, MemRange};
use crate::dev::passthrough::PassthroughError;

use super::plan::{MAX_CELLS, ReservedKind};

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
    /// The layout's `cpu_sharing` settings cannot be met.
    BadCpuSharing {
        /// Where.
        site: LayoutSite,
        /// What is wrong and how to fix it.
        reason: String,
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
    /// A window of a device cellvisor emulates (the screen, the input devices, the channel's
    /// socket device) lands on another device window of a cell.
    EmulatedWindowOverlaps {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The emulated device's window.
        window: MemRange,
        /// The other device.
        device: &'static str,
        /// Its window.
        other: MemRange,
        /// The board setting that places the emulated device.
        setting: &'static str,
    },
    /// The layout allows channel flows but the board has no channel.
    ChannelNotOnBoard {
        /// Where.
        site: LayoutSite,
    },
    /// The board's channel window is too small for a virtio-mmio socket device.
    ChannelWindowTooSmall {
        /// Where.
        site: LayoutSite,
        /// The window.
        window: MemRange,
    },
    /// The channel's INTID is not a free SPI.
    ChannelInterrupt {
        /// Where.
        site: LayoutSite,
        /// The INTID.
        intid: u32,
        /// The cell and device that raise it already (`None`: not an SPI at all).
        owner: Option<(&'static str, &'static str)>,
    },
    /// A CID of the board's channel is reserved or repeated.
    BadCid {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// Its CID.
        cid: u32,
    },
    /// A flow of the layout's channel is wrong.
    BadFlow {
        /// Where.
        site: LayoutSite,
        /// The flow's position in `Layout::channel`.
        index: usize,
        /// Its connecting cell.
        from: &'static str,
        /// Its listening cell.
        to: &'static str,
        /// Its port.
        port: u32,
        /// What is wrong.
        why: &'static str,
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
    /// A cell the board does not trust with all memory gets a device whose DMA no SMMU confines.
    UnconfinedDma {
        /// Where.
        site: LayoutSite,
        /// The cell.
        cell: &'static str,
        /// The device name.
        device: &'static str,
    },
    /// A PCI function's BAR window is not page-aligned inside its host's memory window.
    PciWindow {
        /// Where.
        site: LayoutSite,
        /// The function.
        function: &'static str,
        /// Its BAR window.
        window: MemRange,
        /// The host's memory window.
        host_window: MemRange,
    },
    /// Two PCI functions' BAR windows overlap.
    PciWindowsOverlap {
        /// Where.
        site: LayoutSite,
        /// The first function.
        first: &'static str,
        /// The second function.
        second: &'static str,
    },
    /// The board's PCI host bridge is not in the platform device tree.
    PciHostMissing {
        /// Where.
        site: LayoutSite,
        /// The ECAM base the board expects.
        ecam: u64,
    },
    /// The board's SMMU, which confines the passed-through PCI functions, is not in the platform
    /// device tree.
    SmmuMissing {
        /// Where.
        site: LayoutSite,
        /// The register base the board expects.
        registers: u64,
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
                         give it to one of them, or let them time-share it with the layout's \
                         cpu_sharing, in boards/{}",
                        site.layout, site.board
                    )
                }
            }
            Self::BadCpuSharing { site, reason } => write!(
                f,
                "layout {:?}: cpu_sharing: {reason}: fix it in boards/{}",
                site.layout, site.board
            ),
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
            Self::EmulatedWindowOverlaps {
                site,
                cell,
                window,
                device,
                other,
                setting,
            } => write!(
                f,
                "layout {:?}: cell {cell:?} would see an emulated device at {} over its {device} \
                 at {}: move {setting} in boards/{}",
                site.layout,
                Span(*window),
                Span(*other),
                site.board
            ),
            Self::ChannelNotOnBoard { site } => write!(
                f,
                "layout {:?} allows channel flows but board {:?} has no channel: add \
                 Board::channel or empty the layout's `channel` in boards/{}",
                site.layout, site.board, site.board
            ),
            Self::ChannelWindowTooSmall { site, window } => write!(
                f,
                "board {:?}: the channel's window {} is smaller than a virtio-mmio device's 0x200 \
                 bytes: enlarge Channel::cell_window in boards/{}",
                site.board,
                Span(*window),
                site.board
            ),
            Self::ChannelInterrupt {
                site,
                intid,
                owner: None,
            } => write!(
                f,
                "board {:?}: the channel's INTID {intid} is not an SPI (32 to 1019): fix \
                 Channel::intid in boards/{}",
                site.board, site.board
            ),
            Self::ChannelInterrupt {
                site,
                intid,
                owner: Some((cell, device)),
            } => write!(
                f,
                "layout {:?}: the channel's INTID {intid} is already raised by {device} of cell \
                 {cell:?}: pick a free SPI for Channel::intid in boards/{}",
                site.layout, site.board
            ),
            Self::BadCid { site, cell, cid } => write!(
                f,
                "board {:?}: cell {cell:?} has channel CID {cid}: CIDs must be 3 or more, below \
                 0xFFFF_FFFF, and one per cell: fix Channel::cids in boards/{}",
                site.board, site.board
            ),
            Self::BadFlow {
                site,
                index,
                from,
                to,
                port,
                why,
            } => write!(
                f,
                "layout {:?}: channel flow {index} ({from} -> {to}:{port}) {why}: fix the \
                 layout's `channel` in boards/{}",
                site.layout, site.board
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
            Self::UnconfinedDma { site, cell, device } => write!(
                f,
                "layout {:?}: cell {cell:?} gets device {device:?}, whose DMA no SMMU confines (it \
                 can read and write all memory), but the board does not trust the cell with all \
                 memory: put the device behind an SMMU, or set trusted_with_all_memory for the \
                 cell in boards/{}",
                site.layout, site.board
            ),
            Self::PciWindow {
                site,
                function,
                window,
                host_window,
            } => write!(
                f,
                "layout {:?}: PCI function {function:?} has BAR window {:#x}+{:#x}, which is not \
                 whole pages inside the host's memory window {:#x}+{:#x}: fix its bar_window in \
                 boards/{}",
                site.layout,
                window.base,
                window.size,
                host_window.base,
                host_window.size,
                site.board
            ),
            Self::PciWindowsOverlap {
                site,
                first,
                second,
            } => write!(
                f,
                "layout {:?}: the BAR windows of PCI functions {first:?} and {second:?} overlap: \
                 give each its own pages in boards/{}",
                site.layout, site.board
            ),
            Self::PciHostMissing { site, ecam } => write!(
                f,
                "layout {:?}: the board's PCI host (ECAM at {ecam:#x}) is not in the platform \
                 device tree: boot on the machine boards/{} describes",
                site.layout, site.board
            ),
            Self::SmmuMissing { site, registers } => write!(
                f,
                "layout {:?}: its PCI devices are confined by the SMMUv3 at {registers:#x}, which \
                 the platform device tree does not have: start QEMU with -M \
                 virt,iommu=smmuv3 -global arm-smmuv3.stage=2 (cargo xtask run does), or pick a \
                 layout without PCI devices (boards/{})",
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

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;
    use alloc::string::ToString;

    #[test]
    fn hex_groups_digits() {
        assert_eq!(Hex(0x8000_0000).to_string(), "0x8000_0000");
        assert_eq!(Hex(0x1_0000).to_string(), "0x1_0000");
        assert_eq!(Hex(0).to_string(), "0x0");
        assert_eq!(Hex(0xabc).to_string(), "0xabc");
    }
}
