//! The run loop of a physical CPU that a layout's `cpu_sharing` gives to vCPUs of several cells:
//! one [`RunQueue`] decides which runs, and a vCPU switch saves the state of the one that ran and
//! loads the next one's (docs/architecture.md, "Time-sharing").
//!
//! Each vCPU pinned to the CPU has a [`Slot`]: its general-purpose registers and what
//! [`VcpuHardware::save_vcpu`] saved, and whether it is off (not started), ready, or waiting in
//! WFI. The run queue is asked again after every physical interrupt the CPU takes (the slice
//! timer, a kick because an interrupt became pending for one of its vCPUs, the focus moving) and
//! whenever the running vCPU waits: so a waiting vCPU of the cell in front that gets an interrupt
//! preempts at once. A waiting vCPU that is not loaded has its timers saved, not running: the EL2
//! physical timer (CNTHP) is armed for the earliest of their deadlines as well as for the end of
//! the slice, and wakes the CPU then.
//!
//! A vCPU's state is loaded on its CPU only there: the CPU's loop is the only code that touches
//! its slots. Other CPUs reach it through kicks, the cell's state (a stop drops the saved state
//! of an instance that ended, recognised by the cell's generation) and the runtime's foreground.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::board::CpuClass;
use crate::core::cell::Cell;
use crate::core::exit::{Exiting, RunningVcpu};
use crate::core::hardware::{GuestRegs, VcpuHardware};
use crate::core::irq;
use crate::core::lifecycle::CellState;
use crate::core::run::{self, Step, Stopped};
use crate::core::runtime::Runtime;
use crate::core::sched::{Class, Entry, RunQueue, Shares};

/// Where a vCPU of a time-shared CPU is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not started (or its instance ended): it runs once PSCI starts it, from its entry point.
    Off,
    /// Started, and runnable.
    Ready,
    /// Started, and waiting in WFI for an interrupt.
    Waiting,
}

/// A vCPU pinned to the CPU, with its state while it does not run.
struct Slot<S> {
    cell: usize,
    vcpu: usize,
    phase: Phase,
    /// The cell's generation when the vCPU started: saved state of an earlier instance is never
    /// resumed.
    generation: u32,
    regs: GuestRegs,
    holds_list_registers: bool,
    saved: S,
}

/// One time-shared physical CPU: its run queue and its vCPUs' slots (in the same order).
pub struct SharedCpu<S> {
    cpu: usize,
    queue: RunQueue,
    slots: Vec<Slot<S>>,
    /// The slot whose state the CPU's registers hold.
    loaded: Option<usize>,
    /// The run queue's periods already published to the cells' CPU time.
    published: u64,
}

/// Microseconds of the board's settings in counter ticks.
fn ticks(microseconds: u32, frequency: u64) -> u64 {
    (u128::from(microseconds) * u128::from(frequency) / 1_000_000).clamp(1, u128::from(u64::MAX))
        as u64
}

impl<S: Default> SharedCpu<S> {
    /// The run queue of the CPU `hardware` drives, with every vCPU the layout pins to it; `None`
    /// (with an ERROR line) if the layout's settings cannot be met, which validation prevents.
    pub fn new<H: VcpuHardware<Saved = S>>(runtime: &Runtime, hardware: &H) -> Option<Self> {
        let cpu = hardware.cpu();
        let sharing = runtime.cpu_sharing?;
        let (now, frequency) = hardware.counter();
        let shares = Shares {
            period: ticks(sharing.period_us, frequency),
            budget: ticks(sharing.budget_us, frequency),
            slice: ticks(sharing.slice_us, frequency),
        };
        let vcpus = runtime.vcpus_of_cpu(cpu);
        let entries = vcpus
            .iter()
            .map(|&(cell, vcpu)| Entry {
                cell,
                vcpu,
                class: Class::Background,
                runnable: false,
                used: 0,
                previous: 0,
            })
            .collect();
        let mut queue = match RunQueue::new(shares, entries, now) {
            Ok(queue) => queue,
            Err(error) => {
                log::error!("CPU {cpu}: cannot time-share it ({error:?}): it stays idle");
                return None;
            }
        };
        queue.focus(runtime.foreground(), |cell| fixed_class(runtime, cell));
        let slots = vcpus
            .iter()
            .map(|&(cell, vcpu)| Slot {
                cell,
                vcpu,
                phase: Phase::Off,
                generation: 0,
                regs: GuestRegs::default(),
                holds_list_registers: false,
                saved: S::default(),
            })
            .collect();
        runtime.set_loaded(cpu, None);
        Some(Self {
            cpu,
            queue,
            slots,
            loaded: None,
            published: 0,
        })
    }

    /// One pass: the home CPU's lifecycle work for a cell that stops, else one decision of the
    /// run queue and a run of the vCPU it chose (or an idle wait).
    pub fn step<H: VcpuHardware<Saved = S>>(
        &mut self,
        runtime: &Runtime,
        hardware: &mut H,
    ) -> Step {
        for index in 0..self.slots.len() {
            let Some(cell) = self.cell_of(runtime, index) else {
                continue;
            };
            if let (true, CellState::Stopping(after)) = (cell.is_home(self.cpu), cell.state()) {
                self.drop_state(runtime, index, hardware);
                run::carry_out_stop(runtime, cell, after, hardware);
                return Step::Lifecycle(after);
            }
        }
        let now = hardware.counter().0;
        self.queue
            .focus(runtime.foreground(), |cell| fixed_class(runtime, cell));
        for index in 0..self.slots.len() {
            let runnable = self.refresh(runtime, index, now, hardware);
            self.queue.set_runnable(index, runnable);
        }
        let decision = self.queue.pick(now);
        self.publish(runtime);
        let Some(decision) = decision else {
            hardware.set_slice_timer(self.wake(hardware));
            irq::idle(runtime, hardware);
            return Step::Idle;
        };
        if !self.load(runtime, decision.entry, hardware) {
            return Step::Idle;
        }
        // After the load: the vCPU it saved may be waiting for its timer.
        let until = match (decision.until, self.wake(hardware)) {
            (Some(until), Some(wake)) => Some(until.min(wake)),
            (until, wake) => until.or(wake),
        };
        hardware.set_slice_timer(until);
        self.run_loaded(runtime, decision.entry, hardware);
        Step::Ran
    }

    fn cell_of<'r>(&self, runtime: &'r Runtime, index: usize) -> Option<&'r Cell> {
        runtime.cells.get(self.slots.get(index)?.cell)
    }

    /// Whether slot `index` can run now. A slot whose cell no longer runs the instance it
    /// started in loses its state; a waiting one becomes ready once an interrupt is deliverable
    /// to it or (not loaded, so its timers are not live) a deadline of its timers passed.
    fn refresh<H: VcpuHardware<Saved = S>>(
        &mut self,
        runtime: &Runtime,
        index: usize,
        now: u64,
        hardware: &mut H,
    ) -> bool {
        let Some(cell) = self.cell_of(runtime, index) else {
            return false;
        };
        let loaded = self.loaded == Some(index);
        let Some(slot) = self.slots.get(index) else {
            return false;
        };
        if slot.phase != Phase::Off
            && (cell.state() != CellState::Running || cell.generation() != slot.generation)
        {
            self.drop_state(runtime, index, hardware);
            return false;
        }
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        match slot.phase {
            Phase::Off => cell.start_pending(slot.vcpu),
            Phase::Ready => true,
            Phase::Waiting => {
                let deadline = (!loaded)
                    .then(|| hardware.saved_timer_deadline(&slot.saved))
                    .flatten();
                let ready = cell.devices.vgic().has_deliverable(slot.vcpu)
                    || deadline.is_some_and(|deadline| deadline <= now);
                if ready {
                    slot.phase = Phase::Ready;
                }
                ready
            }
        }
    }

    /// The earliest timer deadline of the waiting vCPUs this CPU does not hold (a held vCPU's
    /// timers are live and interrupt the CPU themselves): when the CPU must look again.
    fn wake<H: VcpuHardware<Saved = S>>(&self, hardware: &H) -> Option<u64> {
        self.slots
            .iter()
            .enumerate()
            .filter(|&(index, slot)| slot.phase == Phase::Waiting && self.loaded != Some(index))
            .filter_map(|(_, slot)| hardware.saved_timer_deadline(&slot.saved))
            .min()
    }

    /// Forgets slot `index`'s state (its vCPU left, or its instance ended): if the CPU holds it,
    /// the CPU is quiesced (timers off, list registers empty).
    fn drop_state<H: VcpuHardware<Saved = S>>(
        &mut self,
        runtime: &Runtime,
        index: usize,
        hardware: &mut H,
    ) {
        if self.loaded == Some(index) {
            hardware.quiesce();
            self.loaded = None;
            runtime.set_loaded(self.cpu, None);
        }
        if let Some(slot) = self.slots.get_mut(index) {
            slot.phase = Phase::Off;
            slot.holds_list_registers = false;
        }
    }

    /// Makes the CPU hold slot `index`'s state: saves the one it holds, then starts the vCPU
    /// (PSCI's entry point, EL1 reset) or restores what was saved. False if it has nothing to
    /// start after all (its start was taken back meanwhile).
    fn load<H: VcpuHardware<Saved = S>>(
        &mut self,
        runtime: &Runtime,
        index: usize,
        hardware: &mut H,
    ) -> bool {
        if self.loaded == Some(index) {
            return true;
        }
        let switch_started = hardware.counter().0;
        let mut saved_one = false;
        if let Some(previous) = self.loaded.take()
            && let Some(slot) = self.slots.get_mut(previous)
        {
            hardware.save_vcpu(&mut slot.saved);
            saved_one = true;
        }
        runtime.set_loaded(self.cpu, None);
        let Some(cell) = self.cell_of(runtime, index) else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return false;
        };
        if slot.phase == Phase::Off {
            let Some((entry, context)) = cell.take_start(slot.vcpu) else {
                return false;
            };
            slot.generation = cell.generation();
            slot.regs = GuestRegs::boot(entry, context);
            slot.holds_list_registers = false;
            slot.phase = Phase::Ready;
            hardware.prepare(cell, slot.vcpu);
            run::log_boot_entry(cell, slot.vcpu, hardware);
        } else {
            hardware.restore_vcpu(cell, slot.vcpu, &slot.saved);
            if saved_one {
                let ticks = hardware.counter().0.wrapping_sub(switch_started);
                cell.cpu_time.record_switch(ticks);
            }
        }
        self.loaded = Some(index);
        runtime.set_loaded(self.cpu, Some((slot.cell, slot.vcpu)));
        true
    }

    /// Runs the loaded slot `index` until it waits, leaves its guest or an interrupt makes the
    /// run queue decide again; charges it the time.
    fn run_loaded<H: VcpuHardware<Saved = S>>(
        &mut self,
        runtime: &Runtime,
        index: usize,
        hardware: &mut H,
    ) {
        let Some(cell) = self.cell_of(runtime, index) else {
            return;
        };
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let (vcpu, generation) = (slot.vcpu, slot.generation);
        // In guest first, then the state check: a stop that the check misses waits for the flag.
        cell.set_in_guest(vcpu, true);
        if cell.state() != CellState::Running || cell.generation() != generation {
            cell.set_in_guest(vcpu, false);
            self.drop_state(runtime, index, hardware);
            return;
        }
        let mut running = RunningVcpu {
            at: Exiting {
                runtime,
                cell,
                vcpu,
                time_shared: true,
            },
            regs: core::mem::take(&mut slot.regs),
            holds_list_registers: slot.holds_list_registers,
        };
        let from = hardware.counter().0;
        let stopped = run::run_vcpu(&mut running, hardware);
        let to = hardware.counter().0;
        self.queue.account(index, from, to);
        cell.cpu_time.charge(vcpu, to.saturating_sub(from));
        if let Some(slot) = self.slots.get_mut(index) {
            slot.regs = running.regs;
            slot.holds_list_registers = running.holds_list_registers;
            match stopped {
                Stopped::Left => {}
                Stopped::Waits => slot.phase = Phase::Waiting,
                Stopped::Interrupted => {}
            }
        }
        if stopped == Stopped::Left {
            self.drop_state(runtime, index, hardware);
        }
        cell.set_in_guest(vcpu, false);
    }

    /// Hands the run queue's last finished period to the cells' CPU time (`cells` shows it).
    fn publish(&mut self, runtime: &Runtime) {
        let finished = self.queue.periods_finished();
        if finished == self.published {
            return;
        }
        self.published = finished;
        let period = self.queue.shares().period;
        for entry in self.queue.entries() {
            if let Some(cell) = runtime.cells.get(entry.cell) {
                cell.cpu_time.end_period(entry.vcpu, entry.previous, period);
            }
        }
    }
}

/// The class the layout fixes for `cell`, if it does.
fn fixed_class(runtime: &Runtime, cell: usize) -> Option<Class> {
    let name = runtime.cells.get(cell)?.name();
    let fixed = runtime
        .cpu_sharing?
        .fixed
        .iter()
        .find(|fixed| fixed.cell == name)?;
    Some(match fixed.class {
        CpuClass::Foreground => Class::Foreground,
        CpuClass::Background => Class::Background,
    })
}
