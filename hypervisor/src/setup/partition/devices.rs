//! Device checks: each board device is given to one cell at most, and can be passed through.

use crate::board::{Board, CellConfig, GuestPlacement};
use crate::dev::passthrough::PassthroughPlan;
use crate::setup::platform::Platform;

use super::error::{LayoutError, LayoutSite};
use super::plan::Partition;

pub(super) fn check_devices(
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

/// Every cell's passthrough plan can be made and its devices are nodes of the platform tree.
pub(super) fn check_passthrough(
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
