//! The core: the run loop and its one handler per exit kind, physical interrupts, the cells and
//! their lifecycle state machine, the runtime, SMCCC and PSCI.

pub mod cell;
pub mod channel;
pub mod esr;
pub mod exit;
pub mod fast;
pub mod fault_loop;
pub mod hardware;
pub mod inject;
pub mod irq;
pub mod lifecycle;
pub mod manage;
pub mod pci;
pub mod psci;
pub mod quiesce;
pub mod reset;
pub mod run;
pub mod runtime;
pub mod sched;
pub mod screen;
pub mod set_way;
pub mod smccc;
pub mod sysreg;
#[cfg(test)]
mod tests;
pub mod timers;
pub mod timeshare;
