//! Time-sharing one physical CPU between the vCPUs of several cells: the scheduling policy alone,
//! pure and host-tested. [`crate::core::timeshare`] runs it on every CPU that a layout with
//! `cpu_sharing` gives to more than one cell; every other CPU runs its one vCPU without it.
//!
//! Each physical CPU has a [`RunQueue`] of the vCPUs pinned to it. The policy is fixed priority
//! with a guaranteed budget:
//!
//! - the *foreground* vCPUs (the focused cell's, or a cell the board fixes there) run whenever
//!   they are runnable;
//! - every *background* vCPU is guaranteed `budget` ticks of each `period` ticks. When the time
//!   left in the period is no more than the budget it has not yet had, it runs, foreground or not:
//!   its share is reserved at the end of the period, so a busy foreground cannot starve it and a
//!   background cell cannot take more than its budget while the foreground is busy;
//! - the policy is work-conserving: when no foreground vCPU is runnable (idle in WFI), the
//!   background ones run, beyond their budget;
//! - vCPUs of the same class take turns (round robin, one `slice` each).
//!
//! [`RunQueue::pick`] says which vCPU runs next and until when (the deadline the EL2 physical
//! timer is armed for, `None` when nothing else is runnable: no timer at all).

use alloc::vec::Vec;

/// How a vCPU ranks on its physical CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Runs whenever runnable (the focused cell, or a board-fixed foreground).
    Foreground,
    /// Runs when no foreground vCPU is runnable, and for its guaranteed budget in every period.
    Background,
}

/// The time-sharing settings of one physical CPU, in counter ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shares {
    /// The accounting period (e.g. 100 ms).
    pub period: u64,
    /// What each background vCPU is guaranteed in every period (e.g. 10 ms); below `period`.
    pub budget: u64,
    /// The longest a vCPU runs before another runnable one of its class gets its turn.
    pub slice: u64,
}

/// Why a [`RunQueue`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedError {
    /// A zero period or slice, or a budget that does not fit the period for every background
    /// vCPU at once.
    BadShares,
}

/// One vCPU on the run queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The cell's index.
    pub cell: usize,
    /// The vCPU's index in its cell.
    pub vcpu: usize,
    /// Its class now.
    pub class: Class,
    /// Whether it can run (not waiting in WFI, not stopped).
    pub runnable: bool,
    /// Ticks it ran in the current period.
    pub used: u64,
    /// Ticks it ran in the period that ended last.
    pub previous: u64,
}

/// The vCPUs time-sharing one physical CPU and their accounting.
#[derive(Clone, Debug)]
pub struct RunQueue {
    shares: Shares,
    entries: Vec<Entry>,
    /// Start of the current period.
    period_start: u64,
    /// The entry that ran last (for round robin within a class).
    last: Option<usize>,
    /// Periods that ended so far.
    finished: u64,
}

/// What runs next on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Index of the entry in the run queue.
    pub entry: usize,
    /// When to look again (arm the EL2 physical timer), if anything else could run before then.
    pub until: Option<u64>,
}

impl RunQueue {
    /// A run queue of `entries` (all runnable, nothing used) starting its first period at `now`.
    pub fn new(shares: Shares, entries: Vec<Entry>, now: u64) -> Result<Self, SchedError> {
        let background = entries
            .iter()
            .filter(|entry| entry.class == Class::Background)
            .count() as u64;
        let reserved = shares.budget.checked_mul(background);
        if shares.period == 0
            || shares.slice == 0
            || reserved.is_none_or(|reserved| reserved >= shares.period)
        {
            return Err(SchedError::BadShares);
        }
        Ok(Self {
            shares,
            entries,
            period_start: now,
            last: None,
            finished: 0,
        })
    }

    /// The entries, in queue order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Marks entry `index` runnable or not (WFI, stop, an interrupt for it).
    pub fn set_runnable(&mut self, index: usize, runnable: bool) {
        if let Some(entry) = self.entries.get_mut(index) {
            entry.runnable = runnable;
        }
    }

    /// Makes the vCPUs of `cell` the foreground and every other one background (the focus moved),
    /// except the cells `fixed` names, which keep the class the board gave them.
    pub fn focus(&mut self, cell: usize, fixed: impl Fn(usize) -> Option<Class>) {
        for entry in &mut self.entries {
            entry.class = fixed(entry.cell).unwrap_or(if entry.cell == cell {
                Class::Foreground
            } else {
                Class::Background
            });
        }
    }

    /// Entry `index`, if it exists.
    pub fn entry(&self, index: usize) -> Option<&Entry> {
        self.entries.get(index)
    }

    /// Charges entry `index` with the ticks from `from` to `to` (it ran then), splitting the time
    /// at period boundaries so each period is charged only its own part.
    pub fn account(&mut self, index: usize, from: u64, to: u64) {
        let mut from = from.max(self.period_start);
        while from < to {
            self.catch_up(from);
            let period_end = self.period_start.saturating_add(self.shares.period);
            let ran = to.min(period_end) - from;
            if let Some(entry) = self.entries.get_mut(index) {
                entry.used = entry.used.saturating_add(ran);
            }
            from += ran;
        }
        self.last = Some(index);
    }

    /// Starts the period `now` lies in, if the current one has ended: in one step however many
    /// periods passed (a CPU idle for hours does not loop through them).
    fn catch_up(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.period_start);
        if elapsed >= self.shares.period {
            let start = self.period_start + elapsed - elapsed % self.shares.period;
            self.next_period(start);
        }
    }

    /// Starts the period at `start`: nobody has used anything of it yet. What each entry used in
    /// the period that ended stays readable as [`Entry::previous`] (0 where whole periods passed
    /// in between, with the CPU idle).
    fn next_period(&mut self, start: u64) {
        let consecutive = self.period_start.saturating_add(self.shares.period) == start;
        self.period_start = start;
        self.finished = self.finished.wrapping_add(1);
        for entry in &mut self.entries {
            entry.previous = if consecutive { entry.used } else { 0 };
            entry.used = 0;
        }
    }

    /// How many periods ended so far: when it changes, [`Entry::previous`] is new.
    pub fn periods_finished(&self) -> u64 {
        self.finished
    }

    /// The settings the queue was built with.
    pub fn shares(&self) -> Shares {
        self.shares
    }

    /// Which entry runs at `now`, and until when; `None` when nothing is runnable (the CPU idles
    /// until an interrupt makes a vCPU runnable).
    pub fn pick(&mut self, now: u64) -> Option<Decision> {
        self.catch_up(now);
        let period_end = self.period_start.saturating_add(self.shares.period);
        let left = period_end.saturating_sub(now).max(1);
        // What the runnable background vCPUs are still owed in this period: reserved at its end.
        let owed = |entry: &Entry| self.shares.budget.saturating_sub(entry.used);
        let is_owed =
            |entry: &Entry| entry.runnable && entry.class == Class::Background && owed(entry) > 0;
        let total_owed: u64 = self
            .entries
            .iter()
            .filter(|entry| is_owed(entry))
            .map(owed)
            .sum();
        let urgent = if total_owed >= left {
            self.round_robin(is_owed)
        } else {
            None
        };
        let chosen = urgent
            .or_else(|| {
                self.round_robin(|entry| entry.runnable && entry.class == Class::Foreground)
            })
            .or_else(|| {
                self.round_robin(|entry| entry.runnable && entry.class == Class::Background)
            })?;
        let others = self
            .entries
            .iter()
            .enumerate()
            .any(|(index, entry)| index != chosen && entry.runnable);
        if !others {
            return Some(Decision {
                entry: chosen,
                until: None,
            });
        }
        let entry = self.entries.get(chosen)?;
        let slice_end = now.saturating_add(self.shares.slice).min(period_end);
        let until = if urgent.is_some() {
            // Its own budget, then the next owed one's turn.
            slice_end.min(now.saturating_add(owed(entry)))
        } else {
            // Stop in time for the budgets still owed at the end of the period.
            slice_end.min(period_end - total_owed.min(left))
        };
        Some(Decision {
            entry: chosen,
            until: Some(until.max(now.saturating_add(1))),
        })
    }

    /// The first entry after the one that ran last (wrapping) for which `wanted` holds.
    fn round_robin(&self, wanted: impl Fn(&Entry) -> bool) -> Option<usize> {
        let count = self.entries.len();
        let start = self.last.map_or(0, |last| last + 1);
        (0..count)
            .map(|offset| (start + offset) % count)
            .find(|&index| self.entries.get(index).is_some_and(&wanted))
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    /// 100 ms periods, 10 ms background budget, 5 ms slices, at 1 tick per µs.
    const SHARES: Shares = Shares {
        period: 100_000,
        budget: 10_000,
        slice: 5_000,
    };

    fn entry(cell: usize, vcpu: usize, class: Class) -> Entry {
        Entry {
            cell,
            vcpu,
            class,
            runnable: true,
            used: 0,
            previous: 0,
        }
    }

    /// Personal (cell 0, foreground) and corporate (cell 1, background), vCPU 0 of each.
    fn two_cells() -> RunQueue {
        RunQueue::new(
            SHARES,
            vec![
                entry(0, 0, Class::Foreground),
                entry(1, 0, Class::Background),
            ],
            0,
        )
        .expect("valid shares")
    }

    /// Runs the queue from `start` for `ticks`, always doing what `pick` says; returns the ticks
    /// each entry ran.
    fn simulate(queue: &mut RunQueue, start: u64, ticks: u64) -> Vec<u64> {
        let mut ran = vec![0; queue.entries().len()];
        let mut now = start;
        while now < start + ticks {
            let Some(decision) = queue.pick(now) else {
                break;
            };
            let end = decision.until.unwrap_or(start + ticks).min(start + ticks);
            queue.account(decision.entry, now, end);
            ran[decision.entry] += end - now;
            now = end;
        }
        ran
    }

    #[test]
    fn both_busy_the_background_gets_exactly_its_budget_and_the_foreground_the_rest() {
        let mut queue = two_cells();
        let ran = simulate(&mut queue, 0, 10 * SHARES.period);
        assert_eq!(ran, [10 * 90_000, 10 * 10_000]);
    }

    #[test]
    fn an_idle_foreground_leaves_the_whole_cpu_to_the_background() {
        let mut queue = two_cells();
        queue.set_runnable(0, false);
        let ran = simulate(&mut queue, 0, 3 * SHARES.period);
        assert_eq!(ran, [0, 3 * SHARES.period]);
        // Alone, it runs without a deadline: no timer is armed.
        assert_eq!(queue.pick(0).map(|decision| decision.until), Some(None));
    }

    #[test]
    fn moving_the_focus_moves_the_share() {
        let mut queue = two_cells();
        queue.focus(1, |_| None);
        let ran = simulate(&mut queue, 0, 10 * SHARES.period);
        assert_eq!(ran, [10 * 10_000, 10 * 90_000]);
    }

    #[test]
    fn two_background_vcpus_each_get_their_budget_and_take_turns_with_each_other() {
        let mut queue = RunQueue::new(
            SHARES,
            vec![
                entry(0, 0, Class::Foreground),
                entry(1, 0, Class::Background),
                entry(2, 0, Class::Background),
            ],
            0,
        )
        .expect("valid shares");
        let ran = simulate(&mut queue, 0, 10 * SHARES.period);
        assert_eq!(ran, [10 * 80_000, 10 * 10_000, 10 * 10_000]);
        queue.set_runnable(0, false);
        let ran = simulate(&mut queue, 10 * SHARES.period, 10 * SHARES.period);
        assert_eq!(ran[0], 0);
        // Round robin in slices: equal halves of the idle foreground's time.
        assert_eq!(ran[1], ran[2]);
    }

    #[test]
    fn a_foreground_vcpu_made_runnable_preempts_a_background_one_past_its_budget() {
        let mut queue = two_cells();
        queue.set_runnable(0, false);
        simulate(&mut queue, 0, 30_000);
        assert_eq!(queue.entries()[1].used, 30_000);
        // An interrupt for personal: it runs at once, and corporate has had its budget.
        queue.set_runnable(0, true);
        let decision = queue.pick(30_000).expect("runnable");
        assert_eq!(decision.entry, 0);
        assert_eq!(decision.until, Some(35_000));
        let ran = simulate(&mut queue, 30_000, 70_000);
        assert_eq!(ran, [70_000, 0]);
    }

    #[test]
    fn a_long_idle_and_the_end_of_the_counter_are_caught_up_in_one_step() {
        let mut queue = two_cells();
        queue.account(1, 0, 5_000);
        // A million periods later: a fresh period, nothing used.
        let later = 1_000_000 * SHARES.period + 123;
        assert_eq!(queue.pick(later).map(|decision| decision.entry), Some(0));
        assert_eq!(queue.entries()[1].used, 0);
        let end = u64::MAX;
        assert!(queue.pick(end).is_some());
        queue.account(0, end - 10, end);
    }

    #[test]
    fn nothing_runnable_idles() {
        let mut queue = two_cells();
        queue.set_runnable(0, false);
        queue.set_runnable(1, false);
        assert_eq!(queue.pick(0), None);
    }

    #[test]
    fn budgets_that_cannot_all_fit_are_refused() {
        let entries = vec![
            entry(0, 0, Class::Background),
            entry(1, 0, Class::Background),
        ];
        for shares in [
            Shares {
                budget: 50_000,
                ..SHARES
            },
            Shares { slice: 0, ..SHARES },
            Shares {
                period: 0,
                ..SHARES
            },
            Shares {
                budget: u64::MAX,
                ..SHARES
            },
        ] {
            assert_eq!(
                RunQueue::new(shares, entries.clone(), 0).map(|_| ()),
                Err(SchedError::BadShares)
            );
        }
    }

    #[test]
    fn time_spanning_a_period_boundary_is_charged_to_each_period() {
        let mut queue = two_cells();
        queue.account(1, 95_000, 105_000);
        assert_eq!(queue.pick(105_000).map(|decision| decision.entry), Some(0));
        // 5,000 of the second period are charged: its budget is half used.
        assert_eq!(queue.entries()[1].used, 5_000);
    }
}
