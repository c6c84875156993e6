//! CPU checks: every vCPU of a cell is pinned to a platform CPU no other vCPU has.

use alloc::vec::Vec;

use crate::board::CellConfig;
use crate::setup::platform::Platform;

use super::error::{LayoutError, LayoutSite};
use super::plan::VcpuPlan;

/// The vCPUs of `cell`, each pinned to its physical CPU; `cpu_owner` records which cell has
/// which CPU.
pub(super) fn plan_vcpus(
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
