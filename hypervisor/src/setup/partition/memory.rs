//! RAM checks: hypervisor memory, each cell's regions physically and in its guest-physical space.

use alloc::vec::Vec;

use crate::board::{Board, CellConfig, CellMemory, MemRange};
use crate::mem::PAGE_SIZE;
use crate::setup::platform::{GuestGicFrames, Platform};

use super::error::{LayoutError, LayoutSite};
use super::plan::Reserved;

pub(super) fn check_hypervisor_memory(
    board: &Board,
    platform: &Platform,
    reserved: &[Reserved],
) -> Result<(), LayoutError> {
    let hypervisor = board.hypervisor_memory;
    if !platform.ram_contains(&hypervisor) {
        return Err(LayoutError::HypervisorMemoryOutsideRam {
            board: board.name,
            hypervisor,
        });
    }
    match reserved
        .iter()
        .find(|item| !hypervisor.contains_range(&item.range))
    {
        Some(item) => Err(LayoutError::ReservedOutsideHypervisorMemory {
            board: board.name,
            what: item.what,
            range: item.range,
            hypervisor,
        }),
        None => Ok(()),
    }
}

/// The guest-physical range a region occupies, or `None` if it wraps.
fn guest_range(region: &CellMemory) -> Option<MemRange> {
    let range = MemRange::new(region.guest_base(), region.physical.size);
    range.end().map(|_| range)
}

pub(super) fn check_cell_memory(
    site: LayoutSite,
    board: &Board,
    cell: &'static CellConfig,
    platform: &Platform,
) -> Result<(), LayoutError> {
    if cell.memory.is_empty() {
        return Err(LayoutError::NoMemory {
            site,
            cell: cell.name,
        });
    }
    for region in cell.memory {
        let physical = region.physical;
        if physical.size == 0 {
            return Err(LayoutError::EmptyMemory {
                site,
                cell: cell.name,
                region: physical,
            });
        }
        if physical.end().is_none() || guest_range(region).is_none() {
            return Err(LayoutError::WrappingMemory {
                site,
                cell: cell.name,
                region: physical,
            });
        }
        let aligned = [physical.base, physical.size, region.guest_base()]
            .iter()
            .all(|value| value.is_multiple_of(PAGE_SIZE));
        if !aligned {
            return Err(LayoutError::MisalignedMemory {
                site,
                cell: cell.name,
                region: *region,
            });
        }
        if physical.overlaps(&board.hypervisor_memory) {
            return Err(LayoutError::MemoryOverlapsHypervisor {
                site,
                cell: cell.name,
                region: physical,
                hypervisor: board.hypervisor_memory,
            });
        }
        if !platform.ram_contains(&physical) {
            return Err(LayoutError::MemoryOutsideRam {
                site,
                cell: cell.name,
                region: physical,
            });
        }
    }
    Ok(())
}

/// Physical overlap with earlier cells' RAM and between this cell's own regions.
pub(super) fn check_memory_against_earlier_cells(
    site: LayoutSite,
    cell: &'static CellConfig,
    earlier_cells: &'static [CellConfig],
) -> Result<(), LayoutError> {
    for (position, region) in cell.memory.iter().enumerate() {
        let own_earlier = cell.memory[..position]
            .iter()
            .map(|other| (cell.name, other));
        let other_cells = earlier_cells
            .iter()
            .flat_map(|other| other.memory.iter().map(move |region| (other.name, region)));
        for (other_cell, other_region) in other_cells.chain(own_earlier) {
            if region.physical.overlaps(&other_region.physical) {
                return Err(LayoutError::MemoryOverlap {
                    site,
                    cell: cell.name,
                    region: region.physical,
                    other_cell,
                    other_region: other_region.physical,
                });
            }
        }
    }
    Ok(())
}

/// The windows a cell's guest-physical space needs for devices: emulated ones and passthrough.
fn device_windows(
    board: &Board,
    cell: &CellConfig,
    platform: &Platform,
    vcpu_count: usize,
) -> Vec<(&'static str, MemRange)> {
    let mut windows = alloc::vec![
        ("GIC distributor", platform.gic.distributor),
        ("UART", platform.console.registers),
    ];
    match platform.gic.guest_frames(vcpu_count) {
        Some(GuestGicFrames::V3 { redistributors, .. }) => {
            windows.push(("GIC redistributors", redistributors));
        }
        Some(GuestGicFrames::V2 { cpu_interface, .. }) => {
            windows.push(("GIC CPU interface", cpu_interface));
        }
        None => {}
    }
    for device in cell.devices.iter().filter_map(|name| board.device(name)) {
        windows.extend(device.mmio.iter().map(|window| (device.name, *window)));
    }
    windows
}

pub(super) fn check_guest_address_space(
    site: LayoutSite,
    board: &Board,
    cell: &'static CellConfig,
    platform: &Platform,
    vcpu_count: usize,
    on_channel: bool,
) -> Result<(), LayoutError> {
    let mut windows = device_windows(board, cell, platform, vcpu_count);
    let mut emulated = Vec::new();
    if let Some(display) = &board.display {
        emulated.push((
            "emulated PL111 display",
            display.cell_display,
            "Display::cell_display",
        ));
        emulated.push((
            "emulated virtio-input devices",
            display.cell_input,
            "Display::cell_input",
        ));
    }
    if let Some(channel) = board.channel.as_ref().filter(|_| on_channel) {
        emulated.push((
            "emulated virtio-vsock device",
            channel.cell_window,
            "Channel::cell_window",
        ));
    }
    {
        for (name, window, setting) in emulated {
            if let Some((device, other)) = windows.iter().find(|(_, other)| other.overlaps(&window))
            {
                return Err(LayoutError::EmulatedWindowOverlaps {
                    site,
                    cell: cell.name,
                    window,
                    device,
                    other: *other,
                    setting,
                });
            }
            windows.push((name, window));
        }
    }
    // `check_cell_memory` already refused wrapping regions, so every guest range exists.
    let ranges: Vec<MemRange> = cell.memory.iter().filter_map(guest_range).collect();
    for (position, range) in ranges.iter().enumerate() {
        if let Some(earlier) = ranges[..position]
            .iter()
            .find(|earlier| earlier.overlaps(range))
        {
            return Err(LayoutError::GuestMemoryOverlap {
                site,
                cell: cell.name,
                first: *earlier,
                second: *range,
            });
        }
        if let Some((device, window)) = windows.iter().find(|(_, window)| window.overlaps(range)) {
            return Err(LayoutError::GuestMemoryHidesDevice {
                site,
                cell: cell.name,
                region: *range,
                device,
                window: *window,
            });
        }
    }
    Ok(())
}
