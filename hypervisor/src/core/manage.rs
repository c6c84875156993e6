//! Carrying out the management prompt's commands: list cells, restart, stop, start, wipe, focus.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::board::CellPolicy;
use crate::console::manage::{CellSummary, Command, HELP, format_cells};
use crate::core::cell::Cell;
use crate::core::hardware::Machine;
use crate::core::lifecycle::{AfterStop, CellState, LifecycleError, count_nonzero};
use crate::core::quiesce::QuiesceError;
use crate::core::runtime::Runtime;

/// What a management command did.
#[derive(Debug, Default)]
pub struct ManageOutcome {
    /// Lines to print.
    pub lines: Vec<String>,
    /// Physical CPUs to kick.
    pub kick: Vec<usize>,
    /// Move console focus to this cell.
    pub focus: Option<usize>,
    /// Leave the prompt.
    pub leave_prompt: bool,
}

impl Runtime {
    /// Carries out a management-prompt command. Returns the lines to print and the physical CPUs
    /// to kick.
    pub fn manage<M: Machine + ?Sized>(&self, command: &Command, machine: &mut M) -> ManageOutcome {
        let mut outcome = ManageOutcome::default();
        let find = |name: &str| self.cells.iter().find(|cell| cell.name() == name);
        let lifecycle =
            |outcome: &mut ManageOutcome,
             name: &str,
             what: &'static str,
             allowed: fn(&CellPolicy) -> bool,
             request: &dyn Fn(&Cell) -> Result<(), LifecycleError>| {
                let Some(cell) = find(name) else {
                    outcome.lines.push(format!("no cell {name:?}: type cells"));
                    return;
                };
                if !allowed(&cell.plan.config.policy) {
                    outcome.lines.push(format!(
                        "{what} {name}: refused: {}",
                        LifecycleError::NotAllowed(what)
                    ));
                    return;
                }
                // A stop needs no clean RAM; everything else scrubs and reuses it.
                if what != "stop"
                    && let Some(device) = cell.device_without_reset()
                {
                    outcome.lines.push(format!(
                        "{what} {name}: refused: {}",
                        QuiesceError::NoReset { device }
                    ));
                    return;
                }
                match request(cell) {
                    Ok(()) => {
                        outcome.lines.push(format!("{what} {name}: requested"));
                        outcome.kick.extend(cell.plan.physical_cpus());
                    }
                    Err(error) => outcome
                        .lines
                        .push(format!("{what} {name}: refused: {error}")),
                }
            };
        match command {
            Command::Sched => {
                let (_, frequency) = machine.counter();
                outcome.lines = sched_lines(&self.cells, frequency);
            }
            Command::Screen => {
                let (_, frequency) = machine.counter();
                outcome.lines = match &self.screen {
                    Some(screen) => screen.lines(&self.cells, self.foreground(), frequency),
                    None => alloc::vec![String::from("this board has no screen")],
                };
            }
            Command::Channel => {
                outcome.lines = match &self.channel {
                    Some(channel) => channel.lines(&self.cells),
                    None => alloc::vec![String::from("this layout has no channel between cells")],
                };
            }
            Command::ChannelOff(name) | Command::ChannelOn(name) => {
                let on = matches!(command, Command::ChannelOn(_));
                let verb = if on { "channel on" } else { "channel off" };
                match (&self.channel, find(name)) {
                    (None, _) => outcome
                        .lines
                        .push(String::from("this layout has no channel between cells")),
                    (Some(_), None) => outcome.lines.push(format!("no cell {name:?}: type cells")),
                    (Some(channel), Some(cell)) => {
                        let mut cpus = Vec::new();
                        let reset = channel.switch_cell(
                            &self.cells,
                            cell.index(),
                            on,
                            machine,
                            &mut |cell, vcpus, _| {
                                cpus.extend(
                                    vcpus
                                        .iter()
                                        .filter_map(|vcpu| cell.plan.physical_cpu_of(vcpu)),
                                )
                            },
                        );
                        outcome.kick.extend(cpus);
                        outcome.lines.push(match reset {
                            None => format!("{verb} {name}: refused: {name} is not on the channel"),
                            Some(_) if on => format!("{verb} {name}: done"),
                            Some(reset) => format!(
                                "{verb} {name}: done, {reset} connection{} reset; its traffic is \
                                 refused until `channel on {name}`",
                                if reset == 1 { "" } else { "s" }
                            ),
                        });
                    }
                }
            }
            Command::Cells => {
                let (now, frequency) = machine.counter();
                let rows: Vec<CellSummary> = self
                    .cells
                    .iter()
                    .map(|cell| {
                        let mut summary = cell.summary(now, frequency);
                        summary.channel_refused = self
                            .channel
                            .as_ref()
                            .and_then(|channel| channel.refused(cell.index()));
                        summary
                    })
                    .collect();
                outcome.lines = format_cells(&rows);
            }
            Command::Restart(name) => lifecycle(
                &mut outcome,
                name,
                "restart",
                |policy| policy.may_restart,
                &|cell| {
                    cell.request_stop(AfterStop::Restart);
                    Ok(())
                },
            ),
            Command::Stop(name) => lifecycle(
                &mut outcome,
                name,
                "stop",
                |policy| policy.may_stop,
                &|cell| {
                    cell.request_stop(AfterStop::Off);
                    Ok(())
                },
            ),
            Command::Start(name) => lifecycle(
                &mut outcome,
                name,
                "start",
                |policy| policy.may_stop,
                &Cell::request_start,
            ),
            Command::Wipe(name) => lifecycle(
                &mut outcome,
                name,
                "wipe",
                |policy| policy.may_wipe,
                &|cell| {
                    cell.request_stop(AfterStop::Wipe);
                    Ok(())
                },
            ),
            Command::Verify(name) => match find(name) {
                None => outcome.lines.push(format!("no cell {name:?}: type cells")),
                Some(cell) if cell.state() != CellState::Off => outcome.lines.push(format!(
                    "verify {name}: refused: it is {} (only an off cell's RAM stays put)",
                    cell.state().word()
                )),
                Some(cell) => {
                    let bytes: u64 = cell
                        .plan
                        .memory
                        .iter()
                        .map(|region| region.physical.size())
                        .sum();
                    let nonzero = count_nonzero(cell, machine);
                    outcome.lines.push(format!(
                        "verify {name}: {nonzero} of {bytes} bytes are not zero"
                    ));
                }
            },
            Command::Focus(name) => match self.cells.iter().position(|cell| cell.name() == name) {
                Some(index) => {
                    outcome.focus = Some(index);
                    outcome.leave_prompt = true;
                }
                None => outcome.lines.push(format!("no cell {name:?}: type cells")),
            },
            Command::Help => outcome
                .lines
                .extend(HELP.iter().map(|line| String::from(*line))),
            Command::Exit => outcome.leave_prompt = true,
        }
        outcome
    }
}

/// The `sched` lines: per cell, the CPU time its vCPUs ran on time-shared CPUs, its share of them
/// in the last period, and the switches to it with their mean cost in counter ticks.
fn sched_lines(cells: &[Cell], frequency: u64) -> Vec<String> {
    let mut lines = Vec::with_capacity(cells.len() + 1);
    lines.push(String::from(
        "cell         cpu ms    share   switches  mean switch ticks",
    ));
    for cell in cells {
        let ticks = cell.cpu_time.total();
        let ms = u128::from(ticks) * 1000 / u128::from(frequency.max(1));
        let share = cell.cpu_time.last_share_permille().map_or_else(
            || String::from("-"),
            |permille| format!("{}.{}%", permille / 10, permille % 10),
        );
        let (switches, mean) = cell.cpu_time.switches();
        let mean = mean.map_or_else(|| String::from("-"), |mean| format!("{mean}"));
        lines.push(format!(
            "{:<12} {:<9} {:<7} {:<9} {}",
            cell.name(),
            ms,
            share,
            switches,
            mean
        ));
    }
    lines
}
