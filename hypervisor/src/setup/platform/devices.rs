//! Device nodes (under the root or a `simple-bus`): passthrough candidates, `virtio,mmio` slots and the generic timer.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::board::MemRange;

use super::error::PlatformError;
use super::gic::gic_version;
use super::properties::{
    CellSizes, INTERRUPT_TYPE_SPI, Node, StringList, bad_property, interrupt_triples,
    specifier_intid, string_property,
};
use super::translate::AddressMap;

/// The timer-node property that names the Allwinner A64 counter erratum.
pub const COUNTER_ERRATUM_PROPERTY: &str = "allwinner,erratum-unknown1";

/// INTIDs of the generic timer's interrupts, as listed by the `arm,armv8-timer` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerInterrupts {
    /// Secure EL1 physical timer.
    pub secure_physical: u32,
    /// Non-secure EL1 physical timer.
    pub nonsecure_physical: u32,
    /// EL1 virtual timer.
    pub virtual_timer: u32,
    /// EL2 (hypervisor) physical timer.
    pub hypervisor_physical: u32,
    /// EL2 virtual timer, when the DT lists it (ARMv8.1 VHE).
    pub hypervisor_virtual: Option<u32>,
    /// The node has `allwinner,erratum-unknown1` (Allwinner A64): reads of the counter and
    /// timer registers are sometimes wrong, so each must be repeated until two reads agree.
    pub counter_erratum: bool,
}

/// A `virtio,mmio` transport slot, a candidate for passthrough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmio {
    /// Register window.
    pub registers: MemRange,
    /// GIC INTID of the slot's interrupt (32 + SPI number).
    pub intid: u32,
}

/// A three-cell GIC interrupt specifier of a device node: `<type number flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicInterrupt {
    /// Type cell: 0 for an SPI, 1 for a PPI.
    pub kind: u32,
    /// SPI number (INTID - 32) or PPI number (INTID - 16).
    pub number: u32,
    /// Trigger flags (1 = edge rising, 4 = level high, ...).
    pub flags: u32,
}

impl GicInterrupt {
    /// The GIC INTID the specifier names, or `None` if its type or number is out of range.
    pub fn intid(&self) -> Option<u32> {
        specifier_intid([self.kind, self.number, self.flags])
    }

    /// Whether the specifier names a shared peripheral interrupt.
    pub fn is_spi(&self) -> bool {
        self.kind == INTERRUPT_TYPE_SPI
    }
}

/// A device node under the root or a `simple-bus` (anything with a `reg` and a `compatible`),
/// as a candidate for passthrough: what a cell's device tree needs to describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformDevice {
    /// Node name with its unit address, e.g. `virtio_mmio@a003e00`.
    pub name: String,
    /// The `compatible` strings, most specific first.
    pub compatible: Vec<String>,
    /// Every `reg` window, in DT order, as CPU physical addresses (translated through the
    /// `ranges` of the buses above the node; never empty).
    pub registers: Vec<MemRange>,
    /// The `interrupts` specifiers; empty when the node has none or they are not GIC triples.
    pub interrupts: Vec<GicInterrupt>,
    /// The node has `dma-coherent`.
    pub dma_coherent: bool,
}

impl PlatformDevice {
    /// Whether one of the node's `reg` windows contains `address`.
    pub fn contains(&self, address: u64) -> bool {
        self.registers.iter().any(|window| window.contains(address))
    }

    /// The INTIDs of the node's interrupts, in DT order (specifiers out of range are skipped).
    pub fn intids(&self) -> Vec<u32> {
        self.interrupts
            .iter()
            .filter_map(GicInterrupt::intid)
            .collect()
    }
}

/// A node under the root or a bus as a [`PlatformDevice`], or `None` for nodes that are not devices (no `reg`,
/// no `compatible`, memory, the GIC). Interrupts that are not three-cell GIC specifiers are left
/// out rather than refused: most platform devices are never passed through.
pub(super) fn read_device(
    node: &Node<'_>,
    parent_cells: CellSizes,
    map: &AddressMap,
    compatible: &StringList<'_>,
) -> Result<Option<PlatformDevice>, PlatformError> {
    let name = node.name()?;
    let is_memory =
        name.name == "memory" || string_property(node, "device_type")? == Some("memory");
    if is_memory || gic_version(compatible).is_some() || compatible.iter().next().is_none() {
        return Ok(None);
    }
    let registers = map.reg(node, parent_cells)?;
    if registers.is_empty() {
        return Ok(None);
    }
    let interrupts = interrupt_triples(node)
        .unwrap_or_default()
        .into_iter()
        .map(|[kind, number, flags]| GicInterrupt {
            kind,
            number,
            flags,
        })
        .collect();
    Ok(Some(PlatformDevice {
        name: name.to_string(),
        compatible: compatible
            .iter()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .collect(),
        registers,
        interrupts,
        dma_coherent: node.raw_property("dma-coherent")?.is_some(),
    }))
}

pub(super) fn read_timer(node: &Node<'_>) -> Result<TimerInterrupts, PlatformError> {
    let intids = interrupt_triples(node)?
        .into_iter()
        .map(|triple| specifier_intid(triple).ok_or_else(|| bad_property(node, "interrupts")))
        .collect::<Result<Vec<u32>, PlatformError>>()?;
    match intids.as_slice() {
        [
            secure_physical,
            nonsecure_physical,
            virtual_timer,
            hypervisor_physical,
            rest @ ..,
        ] => Ok(TimerInterrupts {
            secure_physical: *secure_physical,
            nonsecure_physical: *nonsecure_physical,
            virtual_timer: *virtual_timer,
            hypervisor_physical: *hypervisor_physical,
            hypervisor_virtual: rest.first().copied(),
            counter_erratum: node.raw_property(COUNTER_ERRATUM_PROPERTY)?.is_some(),
        }),
        _ => Err(PlatformError::NoTimer),
    }
}
