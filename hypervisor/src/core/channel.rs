//! The channel between cells (docs/channel.md): one [`VsockSwitch`] under a lock, connected to
//! the emulated virtio-vsock device of every member cell.
#![forbid(unsafe_code)]
//!
//! A cell's register writes land in its device ([`crate::dev::DeviceBus::write`]); when one
//! asks for queue work (a notification), or resets the device, the writing CPU runs [`pump`]: it
//! takes the switch, services that cell's device (its tx packets go through the policy, the
//! switch's packets for it into its rx buffers), then the device of every cell the switch
//! queued packets for, or whose held-back packet may now fit, until nothing moves. Each device
//! is serviced with its own cell's RAM ([`CellRam`], bounds-checked against that cell's
//! regions), so a payload is copied from the sender's RAM into cellvisor's heap and from there
//! into the receiver's: no cell ever sees another's memory. The receiver's interrupt is raised
//! and its vCPUs kicked from the CPU that moved the packet.
//!
//! Lock order: the switch, then one cell's device at a time, then that cell's vGIC. A register
//! write holds the device lock (and the vGIC's) but never the switch, so the two cannot wait on
//! each other.
//!
//! A stopping cell leaves the channel before its RAM is scrubbed ([`Channel::forget`], from
//! `lifecycle::complete_stop`): its device is reset under the switch's lock, so no packet is
//! written into its RAM from then on, and the switch resets its connections (the peers get an
//! RST) and drops everything it sent that was still queued: none of its half-sent data arrives
//! after the stop. Its next instance starts with an empty table.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::console::ratelimit::{RateLimiter, hidden_note};
use crate::core::cell::Cell;
use crate::core::hardware::Machine;
use crate::dev::guest_ram::CellRam;
use crate::dev::vgic::VcpuSet;
use crate::dev::virtio::vsock::{FocusRule, Header, Policy, Refusal, VsockSwitch};
use crate::setup::partition::ChannelPlan;

/// Rounds of [`pump`] over the member cells before it stops (each round moves at least one
/// packet or it stops earlier): bounds the work one register write can cause.
const MAX_ROUNDS: usize = 16;

/// The channel of a running layout.
pub struct Channel {
    switch: crate::arch::RelaxedMutex<VsockSwitch>,
    /// The member cells: (cell index, CID).
    members: Vec<(usize, u64)>,
    /// Per member, the refusal log's rate limiters: one per kind of refusal (a flood of one kind,
    /// a port scan, say, does not hide the first of another kind) and one, last, for a device
    /// the cell's driver broke.
    refusal_log: Vec<RefusalLog>,
    /// Counter ticks spent in [`pump`] (at EL2), and the packets it moved, for `channel`.
    ticks: AtomicU64,
    packets: AtomicU64,
}

/// One cell's log limiters: [`Refusal::COUNT`] kinds of refusal, then the broken device.
type RefusalLog = [RateLimiter; Refusal::COUNT + 1];

/// The cell whose device asked for work, and how it asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Trigger {
    /// A register write of the cell at this member position.
    Written(usize),
    /// Something outside the devices (focus, kill switch, a stop): every due device.
    Outside,
}

impl Channel {
    /// The channel of `plan` between `cells` (name of each, by index).
    pub fn new(plan: &ChannelPlan, names: &[&'static str]) -> Self {
        let members: Vec<(usize, u64)> = plan
            .members
            .iter()
            .map(|&(index, cid)| (index, u64::from(cid)))
            .collect();
        let switch_cells: Vec<(&'static str, u64)> = members
            .iter()
            .filter_map(|&(index, cid)| names.get(index).map(|&name| (name, cid)))
            .collect();
        let mut switch = VsockSwitch::new(&switch_cells, Policy { flows: plan.flows });
        // No driver yet: nothing is queued for a cell until its driver sets DRIVER_OK.
        for &(_, cid) in &members {
            switch.set_attached(cid, false);
        }
        Self {
            switch: crate::arch::RelaxedMutex::new(switch),
            refusal_log: members
                .iter()
                .map(|_| core::array::from_fn(|_| RateLimiter::new()))
                .collect(),
            members,
            ticks: AtomicU64::new(0),
            packets: AtomicU64::new(0),
        }
    }

    /// The CID of cell `index`, if it is a member.
    pub fn cid_of(&self, index: usize) -> Option<u64> {
        self.position(index)
            .and_then(|position| self.members.get(position))
            .map(|&(_, cid)| cid)
    }

    fn position(&self, index: usize) -> Option<usize> {
        self.members.iter().position(|&(member, _)| member == index)
    }

    /// Cell `index` wrote its device's registers: runs the queue work it asked for.
    pub fn written<M: Machine + ?Sized>(
        &self,
        cells: &[Cell],
        index: usize,
        machine: &mut M,
        kick: &mut dyn FnMut(&Cell, VcpuSet, &mut M),
    ) {
        let Some(position) = self.position(index) else {
            return;
        };
        pump(self, cells, Trigger::Written(position), machine, kick);
    }

    /// The cell in front is now `front`: flows with a focus rule follow it.
    pub fn set_focus(&self, front: usize) {
        let mut switch = self.switch.lock();
        for &(index, cid) in &self.members {
            switch.set_focused(cid, index == front);
        }
    }

    /// Cell `cell` is stopping: its device is reset (nothing is written into its RAM from now
    /// on), its connections are reset and its queued packets dropped; the peers' RSTs are
    /// delivered.
    pub fn forget<M: Machine + ?Sized>(
        &self,
        cells: &[Cell],
        cell: &Cell,
        machine: &mut M,
        kick: &mut dyn FnMut(&Cell, VcpuSet, &mut M),
    ) {
        let Some(cid) = self.cid_of(cell.index()) else {
            return;
        };
        {
            let mut switch = self.switch.lock();
            if let Some(vsock) = cell.devices.vsock() {
                let mut device = vsock.device.lock();
                device.reset();
                // The reset is the stop's, not the driver's: the switch hears of it here.
                let _ = device.device_mut().take_reset();
                let _ = cell.devices.vsock_line(&device);
            }
            switch.set_attached(cid, false);
            switch.reset_cell(cid);
        }
        pump(self, cells, Trigger::Outside, machine, kick);
    }

    /// The kill switch: `on` false resets every connection of cell `index` and refuses its
    /// traffic until it is switched on again. Returns the connections reset, `None` when the
    /// cell is not on the channel.
    pub fn switch_cell<M: Machine + ?Sized>(
        &self,
        cells: &[Cell],
        index: usize,
        on: bool,
        machine: &mut M,
        kick: &mut dyn FnMut(&Cell, VcpuSet, &mut M),
    ) -> Option<usize> {
        let cid = self.cid_of(index)?;
        let reset = self.switch.lock().set_enabled(cid, on);
        pump(self, cells, Trigger::Outside, machine, kick);
        Some(reset)
    }

    /// Packets of cell `index` refused or dropped since boot (`None`: not a member).
    pub fn refused(&self, index: usize) -> Option<u64> {
        let cid = self.cid_of(index)?;
        let stats = self.switch.lock().cell_stats(cid)?;
        Some(stats.refusals.saturating_add(stats.dropped))
    }

    /// The `channel` command's lines.
    pub fn lines(&self, cells: &[Cell]) -> Vec<String> {
        let switch = self.switch.lock();
        let name_of = |index: usize| cells.get(index).map_or("?", Cell::name);
        let mut lines = Vec::new();
        lines.push(String::from(
            "cell         cid    channel  driver  connections  delivered  bytes        refused  dropped  resets",
        ));
        for &(index, cid) in &self.members {
            let stats = switch.cell_stats(cid).unwrap_or_default();
            lines.push(format!(
                "{:<12} {:<6} {:<8} {:<7} {:<12} {:<10} {:<12} {:<8} {:<8} {}",
                name_of(index),
                cid,
                if switch.enabled(cid) { "on" } else { "off" },
                if switch.attached(cid) { "yes" } else { "no" },
                switch.connections_of(cid),
                stats.delivered_packets,
                stats.delivered_bytes,
                stats.refusals,
                stats.dropped,
                stats.resets,
            ));
        }
        lines.push(String::from(
            "flow                             max msg  rate/s  focus        connections  packets    bytes        refused",
        ));
        for (flow, stats) in switch.flow_stats() {
            let focus = match flow.only_while_focused {
                FocusRule::None => "-",
                FocusRule::Source => "source",
                FocusRule::Destination => "destination",
            };
            lines.push(format!(
                "{:<32} {:<8} {:<7} {:<12} {:<12} {:<10} {:<12} {}",
                format!("{} -> {}:{}", flow.from, flow.to, flow.port),
                flow.max_message,
                flow.rate_per_second,
                focus,
                stats.connections,
                stats.packets,
                stats.bytes,
                stats.refusals,
            ));
        }
        let packets = self.packets.load(Ordering::Relaxed);
        let ticks = self.ticks.load(Ordering::Relaxed);
        lines.push(match ticks.checked_div(packets) {
            Some(per_packet) => {
                format!("EL2 work: {packets} packets moved, {per_packet} counter ticks per packet")
            }
            None => String::from("EL2 work: no packet moved yet"),
        });
        lines.push(String::from(
            "everything no flow allows is refused with a connection reset",
        ));
        lines
    }
}

/// Services the devices that have work, starting with the one `trigger` names, until no packet
/// moves (at most [`MAX_ROUNDS`] rounds); logs the refusals, rate-limited.
fn pump<M: Machine + ?Sized>(
    channel: &Channel,
    cells: &[Cell],
    trigger: Trigger,
    machine: &mut M,
    kick: &mut dyn FnMut(&Cell, VcpuSet, &mut M),
) {
    let (start, frequency) = machine.counter();
    let mut kicks: Vec<(usize, VcpuSet)> = Vec::new();
    let mut refusals: Vec<(usize, Refusal, Header)> = Vec::new();
    let mut broken: Vec<(usize, crate::dev::virtio::VirtioError)> = Vec::new();
    let mut moved = 0u64;
    {
        let mut switch = channel.switch.lock();
        if frequency != 0 {
            let ms = u128::from(start) * 1000 / u128::from(frequency);
            switch.set_now(u64::try_from(ms).unwrap_or(u64::MAX));
        }
        let count = channel.members.len();
        let first = match trigger {
            Trigger::Written(position) => position,
            Trigger::Outside => 0,
        };
        for round in 0..MAX_ROUNDS {
            let mut progress = false;
            for step in 0..count {
                let position = (first + step) % count.max(1);
                let Some(&(index, cid)) = channel.members.get(position) else {
                    continue;
                };
                let Some(cell) = cells.get(index) else {
                    continue;
                };
                let Some(vsock) = cell.devices.vsock() else {
                    continue;
                };
                let mut device = vsock.device.lock();
                if device.device_mut().take_reset() {
                    // The driver reset its device: it lost every connection.
                    switch.reset_cell(cid);
                }
                switch.set_attached(cid, device.is_live());
                let asked = round == 0 && trigger == Trigger::Written(position);
                let kicked = device.device_mut().take_kick();
                let woken = switch.take_woken(cid);
                if !(asked || kicked || woken || device.device().stalled()) {
                    continue;
                }
                let before = device.device().stats();
                let used = {
                    let mut memory = CellRam::new(&cell.plan, &mut *machine);
                    device.service(&mut memory, &mut *switch)
                };
                let after = device.device().stats();
                moved = moved
                    .saturating_add(after.transmitted.saturating_sub(before.transmitted))
                    .saturating_add(after.received.saturating_sub(before.received));
                if let Some(error) = device.take_error() {
                    broken.push((index, error));
                    // A failed device has no driver until it is reset.
                    switch.set_attached(cid, false);
                }
                let line = cell.devices.vsock_line(&device);
                drop(device);
                if !line.is_empty() {
                    kicks.push((index, line));
                }
                if let Some((why, header)) = switch.take_refusal(cid) {
                    refusals.push((index, why, header));
                }
                progress |= used;
            }
            if !progress {
                break;
            }
        }
    }
    let (end, _) = machine.counter();
    channel
        .ticks
        .fetch_add(end.saturating_sub(start), Ordering::Relaxed);
    channel.packets.fetch_add(moved, Ordering::Relaxed);
    for (index, vcpus) in kicks {
        if let Some(cell) = cells.get(index) {
            kick(cell, vcpus, machine);
        }
    }
    for (index, why, header) in refusals {
        log_refusal(channel, cells, index, why, &header, end, frequency);
    }
    for (index, error) in broken {
        let Some(cell) = cells.get(index) else {
            continue;
        };
        if let Some(position) = channel.position(index)
            && let Some(limiters) = channel.refusal_log.get(position)
            && let Some(hidden) = limiters[Refusal::COUNT].allow(end, frequency)
        {
            log::warn!(
                "cell {}: virtio-vsock: {error}: refused, the device needs a reset{}",
                cell.name(),
                hidden_note(hidden)
            );
        }
    }
}

/// Logs a refusal of cell `index`'s packet, rate-limited per cell and kind of refusal.
fn log_refusal(
    channel: &Channel,
    cells: &[Cell],
    index: usize,
    why: Refusal,
    header: &Header,
    now: u64,
    frequency: u64,
) {
    if !why.is_logged() {
        return;
    }
    let Some(limiter) = channel
        .position(index)
        .and_then(|position| channel.refusal_log.get(position))
        .and_then(|limiters| limiters.get(why.index()))
    else {
        return;
    };
    let Some(hidden) = limiter.allow(now, frequency) else {
        return;
    };
    let name_of_cid = |cid: u64| {
        channel
            .members
            .iter()
            .find(|&&(_, member)| member == cid)
            .and_then(|&(member, _)| cells.get(member))
            .map_or_else(|| format!("cid {cid}"), |cell| String::from(cell.name()))
    };
    let sender = cells.get(index).map_or("?", Cell::name);
    log::warn!(
        "channel: refused {sender}:{} -> {}:{}: {}{}",
        header.src_port,
        name_of_cid(header.dst_cid),
        header.dst_port,
        why.as_str(),
        hidden_note(hidden)
    );
}
