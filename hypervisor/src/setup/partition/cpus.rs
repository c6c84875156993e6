//! CPU checks: every vCPU of a cell is pinned to a platform CPU no other vCPU has, or, where the
//! layout time-shares CPUs, that no vCPU of another cell... of the same cell has; and the
//! time-sharing settings can be met on every shared CPU.

use alloc::format;
use alloc::vec::Vec;

use crate::board::{CellConfig, CpuClass, Layout};
use crate::setup::platform::Platform;

use super::error::{LayoutError, LayoutSite};
use super::plan::VcpuPlan;

/// The vCPUs of `cell`, each pinned to its physical CPU; `cpu_owners` records which cells have
/// which CPU. Two cells may name the same CPU only when the layout time-shares CPUs (`shared`);
/// one cell never names a CPU twice.
pub(super) fn plan_vcpus(
    site: LayoutSite,
    cell: &'static CellConfig,
    platform: &Platform,
    cpu_owners: &mut [Vec<&'static str>],
    shared: bool,
) -> Result<Vec<VcpuPlan>, LayoutError> {
    if cell.cpus.is_empty() {
        return Err(LayoutError::NoCpus {
            site,
            cell: cell.name,
        });
    }
    let mut vcpus = Vec::with_capacity(cell.cpus.len());
    for (index, &physical_cpu) in cell.cpus.iter().enumerate() {
        let (Some(cpu), Some(owners)) = (
            platform.cpus.get(physical_cpu),
            cpu_owners.get_mut(physical_cpu),
        ) else {
            return Err(LayoutError::UnknownCpu {
                site,
                cell: cell.name,
                cpu: physical_cpu,
                platform_cpus: platform.cpus.len(),
            });
        };
        let same_cell = owners.contains(&cell.name);
        if let Some(&first_cell) = owners.first()
            && (same_cell || !shared)
        {
            return Err(LayoutError::CpuAssignedTwice {
                site,
                cpu: physical_cpu,
                first_cell: if same_cell { cell.name } else { first_cell },
                second_cell: cell.name,
            });
        }
        owners.push(cell.name);
        vcpus.push(VcpuPlan {
            index,
            physical_cpu,
            physical_mpidr: cpu.mpidr,
            virtual_mpidr: index as u64,
        });
    }
    Ok(vcpus)
}

/// Checks the layout's time-sharing settings against the CPUs its cells share (`cpu_owners`, as
/// [`plan_vcpus`] filled it): non-zero period and slice, fixed priorities of cells that exist,
/// and on every CPU room in the period for the budgets of all the vCPUs that can be in the
/// background at once (every vCPU there whose cell is not fixed in the foreground: the focus may
/// be on a cell that has no vCPU on that CPU).
pub(super) fn check_sharing(
    site: LayoutSite,
    layout: &Layout,
    cpu_owners: &[Vec<&'static str>],
) -> Result<(), LayoutError> {
    let Some(sharing) = layout.cpu_sharing else {
        return Ok(());
    };
    let bad = |reason: alloc::string::String| LayoutError::BadCpuSharing { site, reason };
    if sharing.period_us == 0 || sharing.slice_us == 0 {
        return Err(bad(format!(
            "period_us ({}) and slice_us ({}) must not be zero",
            sharing.period_us, sharing.slice_us
        )));
    }
    if sharing.slice_us > sharing.period_us {
        return Err(bad(format!(
            "slice_us ({}) is longer than period_us ({})",
            sharing.slice_us, sharing.period_us
        )));
    }
    for fixed in sharing.fixed {
        if !layout.cells.iter().any(|cell| cell.name == fixed.cell) {
            return Err(bad(format!(
                "fixed names cell {:?}, which the layout does not have",
                fixed.cell
            )));
        }
    }
    let fixed_foreground = |name: &str| {
        sharing
            .fixed
            .iter()
            .any(|fixed| fixed.cell == name && fixed.class == CpuClass::Foreground)
    };
    for (cpu, owners) in cpu_owners.iter().enumerate() {
        if owners.len() < 2 {
            continue;
        }
        let background = owners.iter().filter(|name| !fixed_foreground(name)).count() as u64;
        let reserved = u64::from(sharing.budget_us) * background;
        if reserved >= u64::from(sharing.period_us) {
            return Err(bad(format!(
                "CPU {cpu} has {background} vCPUs that can be in the background, and their \
                 budgets ({background} x {} us) do not leave room in the {} us period: shorten \
                 budget_us or share the CPU between fewer cells",
                sharing.budget_us, sharing.period_us
            )));
        }
    }
    Ok(())
}
