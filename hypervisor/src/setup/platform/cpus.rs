//! The platform's CPUs (`/cpus`) and how PSCI calls reach its firmware (`/psci`).

use alloc::string::ToString;
use alloc::vec::Vec;

use super::error::PlatformError;
use super::properties::{
    CellSizes, Node, bad_property, node_name, read_cells, string_property, u32_or_u64_property,
};

/// How PSCI calls reach the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    /// Secure monitor call.
    Smc,
    /// Hypervisor call.
    Hvc,
}

/// How a secondary CPU is started (the cpu node's `enable-method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnableMethod {
    /// PSCI `CPU_ON` (`enable-method = "psci"`, or no `enable-method`: the boot CPU of many
    /// DTs, and the trees cellvisor writes for its cells, say nothing).
    Psci,
    /// A spin table (`enable-method = "spin-table"`): the CPU waits in firmware until a
    /// non-zero entry address is written to `release_address` and an event is sent.
    SpinTable {
        /// Physical address of the 64-bit release word (`cpu-release-addr`).
        release_address: u64,
    },
}

/// One CPU of the platform, in `/cpus` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// The affinity fields of the CPU's MPIDR_EL1 (the node's `reg`).
    pub mpidr: u64,
    /// How the CPU is started.
    pub enable_method: EnableMethod,
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
        let enable_method = match string_property(&child, "enable-method")? {
            None | Some("psci") => EnableMethod::Psci,
            Some("spin-table") => EnableMethod::SpinTable {
                release_address: u32_or_u64_property(&child, "cpu-release-addr")?
                    .ok_or_else(|| bad_property(&child, "cpu-release-addr"))?,
            },
            Some(method) => {
                return Err(PlatformError::UnsupportedEnableMethod {
                    cpu: node_name(&child),
                    method: method.to_string(),
                });
            }
        };
        list.push(Cpu {
            mpidr,
            enable_method,
        });
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
