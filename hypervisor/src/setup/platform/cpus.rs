//! The platform's CPUs (`/cpus`) and how PSCI calls reach its firmware (`/psci`).

use alloc::vec::Vec;

use super::error::PlatformError;
use super::properties::{CellSizes, Node, bad_property, read_cells, string_property};

/// How PSCI calls reach the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    /// Secure monitor call.
    Smc,
    /// Hypervisor call.
    Hvc,
}

/// One CPU of the platform, in `/cpus` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// The affinity fields of the CPU's MPIDR_EL1 (the node's `reg`).
    pub mpidr: u64,
}

pub(super) fn read_cpus(cpus: &Node<'_>) -> Result<Vec<Cpu>, PlatformError> {
    let cells = CellSizes::of(cpus)?;
    let mut list = Vec::new();
    for child in cpus.children()? {
        let child = child?;
        let is_cpu =
            child.name()?.name == "cpu" || string_property(&child, "device_type")? == Some("cpu");
        if !is_cpu {
            continue;
        }
        let property = child
            .raw_property("reg")?
            .ok_or_else(|| bad_property(&child, "reg"))?;
        let mpidr = property
            .value
            .get(..cells.address * 4)
            .and_then(|bytes| read_cells(bytes, cells.address))
            .ok_or_else(|| bad_property(&child, "reg"))?;
        list.push(Cpu { mpidr });
    }
    Ok(list)
}

/// The `method` of the `/psci` node, `None` when it is neither `smc` nor `hvc`.
pub(super) fn read_psci_method(psci: &Node<'_>) -> Result<Option<PsciMethod>, PlatformError> {
    Ok(match string_property(psci, "method")? {
        Some("smc") => Some(PsciMethod::Smc),
        Some("hvc") => Some(PsciMethod::Hvc),
        _ => None,
    })
}
