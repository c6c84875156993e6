//! The channel between cells (docs/channel.md): the board's CIDs and the layout's flows checked
//! once at boot, so the switch only ever sees a consistent policy.

use alloc::vec::Vec;

use crate::board::{Board, Layout};

use super::error::{LayoutError, LayoutSite};
use super::plan::ChannelPlan;

/// Bytes of a cell's virtio-mmio socket device window (registers and the 8-byte configuration).
pub const CHANNEL_WINDOW: u64 = 0x200;

/// The layout's channel: `None` when it allows no flow.
pub(super) fn plan_channel(
    site: LayoutSite,
    board: &Board,
    layout: &Layout,
) -> Result<Option<ChannelPlan>, LayoutError> {
    if layout.channel.is_empty() {
        return Ok(None);
    }
    let Some(channel) = board.channel else {
        return Err(LayoutError::ChannelNotOnBoard { site });
    };
    if channel.cell_window.size < CHANNEL_WINDOW {
        return Err(LayoutError::ChannelWindowTooSmall {
            site,
            window: channel.cell_window,
        });
    }
    if !(32..1020).contains(&channel.intid) {
        return Err(LayoutError::ChannelInterrupt {
            site,
            intid: channel.intid,
            owner: None,
        });
    }
    for (position, entry) in channel.cids.iter().enumerate() {
        let duplicate = channel.cids[..position]
            .iter()
            .any(|earlier| earlier.cid == entry.cid || earlier.cell == entry.cell);
        if entry.cid < 3 || entry.cid == u32::MAX || duplicate {
            return Err(LayoutError::BadCid {
                site,
                cell: entry.cell,
                cid: entry.cid,
            });
        }
    }
    let members: Vec<(usize, u32)> = layout
        .cells
        .iter()
        .enumerate()
        .filter_map(|(index, cell)| channel.cid_of(cell.name).map(|cid| (index, cid)))
        .collect();
    let on_channel = |name: &str| {
        layout
            .cells
            .iter()
            .position(|cell| cell.name == name)
            .is_some_and(|index| members.iter().any(|&(member, _)| member == index))
    };
    for (index, flow) in layout.channel.iter().enumerate() {
        let why = if !on_channel(flow.from) {
            Some("names a connecting cell that is not in the layout or has no CID")
        } else if !on_channel(flow.to) {
            Some("names a listening cell that is not in the layout or has no CID")
        } else if flow.from == flow.to {
            Some("connects a cell to itself")
        } else if flow.max_message == 0 || flow.max_message > 65536 {
            Some("needs a max_message of 1 to 65536 bytes")
        } else if flow.rate_per_second == 0 {
            Some("allows no message (rate_per_second is 0)")
        } else if flow.port == u32::MAX {
            Some("names port 0xFFFF_FFFF (VMADDR_PORT_ANY), which no socket listens on")
        } else if layout.channel[..index].iter().any(|earlier| {
            (earlier.from, earlier.to, earlier.port) == (flow.from, flow.to, flow.port)
        }) {
            Some("repeats an earlier flow")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(LayoutError::BadFlow {
                site,
                index,
                from: flow.from,
                to: flow.to,
                port: flow.port,
                why,
            });
        }
    }
    for &(index, _) in &members {
        let Some(cell) = layout.cells.get(index) else {
            continue;
        };
        let owner = cell
            .devices
            .iter()
            .filter_map(|name| board.device(name))
            .find(|device| device.interrupts.contains(&channel.intid));
        if let Some(device) = owner {
            return Err(LayoutError::ChannelInterrupt {
                site,
                intid: channel.intid,
                owner: Some((cell.name, device.name)),
            });
        }
    }
    if let Some(display) = &board.display {
        let inputs = display.cell_input.size / 0x200;
        let first = display.cell_input_intid;
        if (u64::from(first)..u64::from(first) + inputs).contains(&u64::from(channel.intid)) {
            return Err(LayoutError::ChannelInterrupt {
                site,
                intid: channel.intid,
                owner: Some(("every cell", "emulated virtio-input devices")),
            });
        }
    }
    Ok(Some(ChannelPlan {
        window: channel.cell_window,
        intid: channel.intid,
        flows: layout.channel,
        members,
    }))
}
