//! The plan validation produces: the partition, its cells, their vCPUs and RAM regions.

use alloc::vec::Vec;
use core::fmt;

use crate::board::{CellConfig, CellMemory, CpuSharing, MemRange};
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
    /// The page of a secondary CPU's spin-table release address (`cpu-release-addr`), where its
    /// boot loader waits to be released.
    SpinTable,
}

impl fmt::Display for ReservedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::HypervisorImage => "the hypervisor image",
            Self::GuestBundle => "the guest bundle",
            Self::PlatformDeviceTree => "the platform device tree",
            Self::SpinTable => "a secondary CPU's spin table (cpu-release-addr)",
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
    /// Whether the board lets the cell boot a raw binary (its `raw_binaries`).
    pub raw_binaries: bool,
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
    /// How the cells time-share the CPUs they have in common (`None`: they have none).
    pub cpu_sharing: Option<CpuSharing>,
    /// The channel between the cells, if the layout allows flows.
    pub channel: Option<ChannelPlan>,
}

/// The channel of a validated layout (docs/channel.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelPlan {
    /// Where every member cell sees its virtio-vsock device (guest-physical).
    pub window: crate::board::MemRange,
    /// The device's INTID.
    pub intid: u32,
    /// The allowed flows (every cell they name is a member).
    pub flows: &'static [crate::board::Flow],
    /// The member cells: (cell index, CID), in layout order.
    pub members: Vec<(usize, u32)>,
}

impl Partition {
    /// The CID of cell `index` on the channel, if it is a member.
    pub fn cid_of(&self, index: usize) -> Option<u32> {
        self.channel.as_ref().and_then(|channel| {
            channel
                .members
                .iter()
                .find(|&&(member, _)| member == index)
                .map(|&(_, cid)| cid)
        })
    }
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
    /// The first cell and vCPU a physical CPU runs: `(cell index, vCPU index)`, or `None` if it
    /// is idle.
    pub fn cell_of_cpu(&self, physical_cpu: usize) -> Option<(usize, usize)> {
        self.vcpus_of_cpu(physical_cpu).next()
    }

    /// Every cell and vCPU a physical CPU runs, in layout order: one at most unless the layout
    /// time-shares CPUs.
    pub fn vcpus_of_cpu(&self, physical_cpu: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.cells.iter().filter_map(move |cell| {
            cell.vcpus
                .iter()
                .find(|vcpu| vcpu.physical_cpu == physical_cpu)
                .map(|vcpu| (cell.index, vcpu.index))
        })
    }
}
