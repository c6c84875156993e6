//! The platform's interrupt controller: GIC version, distributor, redistributors and ITS.

use alloc::vec::Vec;

use crate::board::MemRange;
use crate::dev::gic::{GICV2_CPU_INTERFACE_SIZE, GICV2_DISTRIBUTOR_SIZE, REDISTRIBUTOR_STRIDE};

use super::error::PlatformError;
use super::properties::{
    CellSizes, Node, StringList, bad_property, interrupt_triples, node_name, specifier_intid,
    u32_property,
};
use super::translate::AddressMap;

/// Version of the platform's interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`, ...) with the virtualization extensions: the
    /// DT node's `reg` must name the GICH and GICV frames too.
    V2,
    /// GICv3 (`arm,gic-v3`).
    V3,
}

/// The platform's generic interrupt controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    /// GIC architecture version.
    pub version: GicVersion,
    /// The distributor (GICD) register window.
    pub distributor: MemRange,
    /// GICv3 redistributor (GICR) regions, in device-tree order; empty for GICv2.
    pub redistributor_regions: Vec<MemRange>,
    /// The GICv3 ITS register window, if the platform has one.
    pub its: Option<MemRange>,
    /// INTID of the virtual-interface maintenance interrupt, if the DT states it.
    pub maintenance_intid: Option<u32>,
    /// The frames of a GICv2 with the virtualization extensions; `None` for GICv3.
    pub v2: Option<GicV2Frames>,
}

/// The MMIO frames of a GICv2 beyond its distributor (`reg` entries 1-3 of its DT node, in the
/// order the binding fixes: GICC, GICH, GICV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicV2Frames {
    /// The physical CPU interface (GICC): cellvisor's own, banked per CPU.
    pub cpu_interface: MemRange,
    /// The virtual interface control (GICH): list registers of the CPU that accesses it.
    pub hypervisor_interface: MemRange,
    /// The virtual CPU interface (GICV): mapped into each cell where its guest's GICC is.
    pub virtual_cpu_interface: MemRange,
}

/// The interrupt controller frames a cell with some number of vCPUs sees, at the platform's own
/// addresses (guest-physical = physical).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestGicFrames {
    /// A GICv3: the emulated distributor and one emulated redistributor per vCPU.
    V3 {
        /// The distributor frame (trapped and emulated).
        distributor: MemRange,
        /// The redistributor frames of the cell's vCPUs (trapped and emulated).
        redistributors: MemRange,
    },
    /// A GICv2 with virtualization: the emulated distributor, and the guest's CPU interface,
    /// which is the hardware virtual CPU interface mapped in stage 2 (never trapped).
    V2 {
        /// The distributor frame (trapped and emulated).
        distributor: MemRange,
        /// Where the guest's GICC is: the platform's GICC address, with the GIC-400's size.
        cpu_interface: MemRange,
        /// Physical address of the GICV frame that backs `cpu_interface`.
        virtual_cpu_interface: u64,
    },
}

impl Gic {
    /// The frames a cell with `vcpus` vCPUs sees; `None` for a GICv3 without a redistributor
    /// region or a GICv2 without virtualization frames (the parser refuses the latter).
    pub fn guest_frames(&self, vcpus: usize) -> Option<GuestGicFrames> {
        match (self.version, self.v2) {
            (GicVersion::V2, Some(frames)) => Some(GuestGicFrames::V2 {
                distributor: MemRange::new(self.distributor.base, GICV2_DISTRIBUTOR_SIZE),
                cpu_interface: MemRange::new(frames.cpu_interface.base, GICV2_CPU_INTERFACE_SIZE),
                virtual_cpu_interface: frames.virtual_cpu_interface.base,
            }),
            (GicVersion::V2, None) => None,
            (GicVersion::V3, _) => {
                let region = self.redistributor_regions.first()?;
                let size = REDISTRIBUTOR_STRIDE.checked_mul(vcpus as u64)?;
                Some(GuestGicFrames::V3 {
                    distributor: self.distributor,
                    redistributors: MemRange::new(region.base, size),
                })
            }
        }
    }
}

pub(super) fn gic_version(compatible: &StringList<'_>) -> Option<GicVersion> {
    const V2_COMPATIBLES: &[&str] = &[
        "arm,gic-400",
        "arm,cortex-a15-gic",
        "arm,cortex-a9-gic",
        "arm,cortex-a7-gic",
        "arm,arm11mp-gic",
        "arm,pl390",
    ];
    if compatible.contains("arm,gic-v3") {
        Some(GicVersion::V3)
    } else if V2_COMPATIBLES.iter().any(|name| compatible.contains(name)) {
        Some(GicVersion::V2)
    } else {
        None
    }
}

pub(super) fn read_gic(
    node: &Node<'_>,
    parent_cells: CellSizes,
    map: &AddressMap,
    version: GicVersion,
) -> Result<Gic, PlatformError> {
    let windows = map.reg(node, parent_cells)?;
    let distributor = *windows.first().ok_or_else(|| bad_property(node, "reg"))?;
    let mut redistributor_regions = Vec::new();
    let mut its = None;
    if version == GicVersion::V3 {
        let region_count = u32_property(node, "#redistributor-regions")?.unwrap_or(1) as usize;
        redistributor_regions = windows.iter().skip(1).take(region_count).copied().collect();
        if redistributor_regions.len() != region_count || region_count == 0 {
            return Err(bad_property(node, "reg"));
        }
        let child_cells = CellSizes::of(node)?;
        let identity = node
            .raw_property("ranges")?
            .is_some_and(|ranges| ranges.value.is_empty());
        for child in node.children()? {
            let child = child?;
            if StringList::of(&child, "compatible")?.contains("arm,gic-v3-its") {
                if !identity {
                    return Err(PlatformError::TranslatedAddress(node_name(&child)));
                }
                its = Some(map.first_reg(&child, child_cells)?);
            }
        }
    }
    let v2 = match version {
        GicVersion::V3 => None,
        GicVersion::V2 => match windows.get(1..4) {
            Some(&[cpu_interface, hypervisor_interface, virtual_cpu_interface]) => {
                Some(GicV2Frames {
                    cpu_interface,
                    hypervisor_interface,
                    virtual_cpu_interface,
                })
            }
            _ => return Err(PlatformError::NoGicVirtualization),
        },
    };
    let maintenance_intid = match interrupt_triples(node)?.first() {
        Some(&triple) => {
            Some(specifier_intid(triple).ok_or_else(|| bad_property(node, "interrupts"))?)
        }
        None => None,
    };
    Ok(Gic {
        version,
        distributor,
        redistributor_regions,
        its,
        maintenance_intid,
        v2,
    })
}
