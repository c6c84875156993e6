//! The platform's interrupt controller: GIC version, distributor, redistributors and ITS.

use alloc::vec::Vec;

use crate::board::MemRange;

use super::error::PlatformError;
use super::properties::{
    CellSizes, Node, StringList, bad_property, first_reg, interrupt_triples, node_name, reg,
    specifier_intid, u32_property,
};

/// Version of the platform's interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`, ...): recognised but not supported by cellvisor.
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
}

impl Gic {
    /// Fails with [`PlatformError::UnsupportedGicVersion`] unless the GIC is a GICv3.
    pub fn require_v3(&self) -> Result<(), PlatformError> {
        match self.version {
            GicVersion::V3 => Ok(()),
            GicVersion::V2 => Err(PlatformError::UnsupportedGicVersion),
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
    root_cells: CellSizes,
    version: GicVersion,
) -> Result<Gic, PlatformError> {
    let windows = reg(node, root_cells)?;
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
                its = Some(first_reg(&child, child_cells)?);
            }
        }
    }
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
    })
}
