//! Time-sharing (layout `linux-shared`: personal and corporate, two vCPUs each, both on the two
//! CPUs of a `-smp 2` machine, plain TCG). The switch cost comes from `test-guests-shared` under
//! `-icount shift=0,sleep=off` on one CPU, where the 1 GHz counter counts that CPU's instructions,
//! so the management prompt's `sched` gives the mean switch cost in EL2 instructions (from before
//! the save to after the restore, two counter reads included).
//!
//! Both cells run a counting loop on each of their CPUs, personal in front: `sched`'s share
//! column (each cell's share of its CPUs in the last 100 ms period) is read a few times and
//! averaged (goal: front ≥ 90 %, behind within ±2 points of its 10 % budget). Then personal's
//! loops stop (it idles): corporate's share shows whether the scheduler is work-conserving (goal:
//! ≥ 95 %).
use std::time::Duration;

use crate::images::{self, Ingredients, Overrides};
use crate::prereq::Qemu;
use crate::util::{self, Result};

use super::bench_dir;
use super::disk::Session;
use super::qemu::{self, Mode};

const LAYOUT: &str = "linux-shared";
/// `sched` readings averaged per phase, one per host second.
const READINGS: usize = 6;

/// What the time-sharing run showed (shares in per cent of the CPUs' time).
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct Sharing {
    /// Both cells busy: the front one's (personal's) mean share.
    pub(super) busy_front: f64,
    /// Both cells busy: the one behind's (corporate's) mean share.
    pub(super) busy_behind: f64,
    /// Personal idle: corporate's mean share.
    pub(super) idle_front_behind: f64,
    /// Personal idle: personal's own mean share.
    pub(super) idle_front: f64,
    /// Switches to each cell at the end, and their mean cost (counter ticks = EL2 instructions).
    pub(super) switches: Vec<(String, u64, Option<u64>)>,
}

impl Sharing {
    /// One progress line.
    pub(super) fn summary(&self) -> String {
        format!(
            "both busy: front {:.1} %, behind {:.1} %; front idle: behind {:.1} %; switch {}",
            self.busy_front,
            self.busy_behind,
            self.idle_front_behind,
            self.mean_switch()
                .map_or_else(|| "-".to_owned(), |mean| format!("{mean} EL2 instructions"))
        )
    }

    /// The mean switch cost over both cells' switches.
    pub(super) fn mean_switch(&self) -> Option<u64> {
        let (count, total) = self
            .switches
            .iter()
            .filter_map(|(_, count, mean)| mean.map(|mean| (*count, count * mean)))
            .fold((0, 0), |(c, t), (count, sum)| (c + count, t + sum));
        total.checked_div(count)
    }

    pub(super) fn json(&self) -> String {
        let switches: Vec<String> = self
            .switches
            .iter()
            .map(|(cell, count, mean)| {
                format!(
                    "{{\"cell\": \"{cell}\", \"switches\": {count}, \"mean_el2_instructions\": {}}}",
                    mean.map_or_else(|| "null".to_owned(), |mean| mean.to_string())
                )
            })
            .collect();
        format!(
            "{{\"layout\": \"{LAYOUT}\", \"both_busy_front_percent\": {:.1}, \"both_busy_behind_percent\": {:.1}, \"front_idle_behind_percent\": {:.1}, \"front_idle_front_percent\": {:.1}, \"switches\": [{}]}}",
            self.busy_front,
            self.busy_behind,
            self.idle_front_behind,
            self.idle_front,
            switches.join(", ")
        )
    }
}

/// One `sched` row: (cell, share %, switches, mean switch ticks).
type SchedRow = (String, Option<f64>, u64, Option<u64>);

/// Parses the rows of a `sched` table (`cell  cpu-ms  share  switches  mean`).
fn parse_sched(text: &str, cells: &[&str]) -> Vec<SchedRow> {
    cells
        .iter()
        .filter_map(|cell| {
            let line = text
                .lines()
                .rev()
                .find(|line| line.starts_with(&format!("{cell:<12} ")))?;
            let words: Vec<&str> = line.split_whitespace().collect();
            let share = words
                .get(2)
                .and_then(|share| share.strip_suffix('%'))
                .and_then(|share| share.parse().ok());
            let switches = words.get(3)?.parse().ok()?;
            let mean = words.get(4).and_then(|mean| mean.parse().ok());
            Some(((*cell).to_owned(), share, switches, mean))
        })
        .collect()
}

/// Opens the management prompt, runs `sched`, leaves; returns the rows.
fn sched(session: &mut Session) -> Result<Vec<SchedRow>> {
    let timeout = Duration::from_secs(60);
    let since = session.mark();
    session.send(&[cellvisor_tests::CONSOLE_ESCAPE, b'm'])?;
    let (_, opened) = session.wait_for("cellvisor management prompt", since, timeout)?;
    session.send(b"sched\r")?;
    let (_, header) = session.wait_for("cell         cpu ms", opened, timeout)?;
    session.wait_for("corporate    ", header, timeout)?;
    let text = session.transcript();
    let rows = parse_sched(
        text.get(header..).unwrap_or_default(),
        &["personal", "corporate"],
    );
    let since = session.mark();
    session.send(b"exit\r")?;
    session.wait_for("left the management prompt", since, timeout)?;
    Ok(rows)
}

/// The mean share of each cell over [`READINGS`] `sched` readings a second apart: (personal,
/// corporate), and the last rows.
fn mean_shares(session: &mut Session) -> Result<((f64, f64), Vec<SchedRow>)> {
    let mut sums = (0.0, 0.0);
    let mut count = 0.0;
    let mut last = Vec::new();
    for _ in 0..READINGS {
        std::thread::sleep(Duration::from_secs(1));
        let rows = sched(session)?;
        let share = |cell: &str| rows.iter().find(|row| row.0 == cell).and_then(|row| row.1);
        if let (Some(personal), Some(corporate)) = (share("personal"), share("corporate")) {
            sums.0 += personal;
            sums.1 += corporate;
            count += 1.0;
        }
        last = rows;
    }
    if count == 0.0 {
        crate::fail!("`sched` showed no shares (are the CPUs time-shared?)");
    }
    Ok(((sums.0 / count, sums.1 / count), last))
}

/// Gives `cell` (console index `key`) the focus and starts a counting loop on each of its CPUs.
fn start_loops(session: &mut Session, key: u8, cell: &str) -> Result<()> {
    let since = session.mark();
    session.send(&[cellvisor_tests::CONSOLE_ESCAPE, key])?;
    session.wait_for(
        &format!("console input now goes to {cell}"),
        since,
        Duration::from_secs(60),
    )?;
    session.shell(
        "echo 'i=0; while :; do i=$((i+1)); done' > /tmp/spin; for c in 0 1; do taskset -c $c sh /tmp/spin & echo $! >> /tmp/spin.pids; done",
        Duration::from_secs(120),
    )?;
    Ok(())
}

/// Boots `linux-shared` (plain TCG, so the CPUs run in parallel as a phone's do) and measures
/// the shares, then [`SWITCH_LAYOUT`] under icount for the switch cost.
pub(super) fn sharing_run(qemu: &Qemu) -> Result<Sharing> {
    let layout = images::layout(LAYOUT)?;
    let bundle = images::bundle_path(LAYOUT);
    images::build_bundle(
        layout,
        &Overrides::default(),
        &mut Ingredients::default(),
        &bundle,
    )?;
    let mut command = qemu::cellvisor_command(qemu, &bundle, LAYOUT, Mode::Tcg);
    command.args(
        cellvisor_tests::PassthroughDevices::of_layout(LAYOUT)
            .args(&images::corporate_disk()?, true),
    );
    let log = bench_dir().join("sharing-tcg.log");
    let mut session = Session::start(command)?;
    let outcome = measure(&mut session);
    session.finish(&log)?;
    let mut sharing =
        outcome.map_err(|error| util::Error(format!("{error}; see {}", util::pretty(&log))))?;
    sharing.switches = switch_cost(qemu)?;
    Ok(sharing)
}

/// The layout whose switches are counted: two test guests time-sharing the one CPU of a
/// `-smp 1` machine. With one CPU, QEMU's icount counter advances only with that CPU's
/// instructions, so a switch's counter ticks are its EL2 instructions exactly (with more CPUs,
/// the round-robin icount scheduler may run another CPU between the two counter reads).
const SWITCH_LAYOUT: &str = "test-guests-shared";

/// Boots [`SWITCH_LAYOUT`] under icount and reads `sched` after a while: the switches to each
/// cell and their mean EL2 instructions.
fn switch_cost(qemu: &Qemu) -> Result<Vec<(String, u64, Option<u64>)>> {
    let layout = images::layout(SWITCH_LAYOUT)?;
    let bundle = images::bundle_path(SWITCH_LAYOUT);
    // Rounds enough that both probes still run when `sched` is read (under icount with
    // sleep=off, guest time runs ahead of the host's).
    let mut overrides = Overrides::default();
    for (cell, seed) in [("personal", 1), ("corporate", 2)] {
        overrides.bootargs.insert(
            cell.to_owned(),
            format!("test=switch seed={seed} rounds=100000000"),
        );
    }
    images::build_bundle(layout, &overrides, &mut Ingredients::default(), &bundle)?;
    let command = qemu::cellvisor_command(qemu, &bundle, SWITCH_LAYOUT, Mode::Icount);
    let log = bench_dir().join("sharing-switch-icount.log");
    let mut session = Session::start(command)?;
    let outcome = (|| {
        let timeout = Duration::from_secs(120);
        session.wait_for("cell corporate: entering vCPU 0", 0, timeout)?;
        std::thread::sleep(Duration::from_secs(8));
        sched(&mut session)
    })();
    session.finish(&log)?;
    let rows =
        outcome.map_err(|error| util::Error(format!("{error}; see {}", util::pretty(&log))))?;
    Ok(rows
        .into_iter()
        .map(|(cell, _, switches, mean)| (cell, switches, mean))
        .collect())
}

fn measure(session: &mut Session) -> Result<Sharing> {
    let boot = Duration::from_secs(300);
    session.wait_for("cellvisor-ready: personal ", 0, boot)?;
    session.wait_for("cellvisor-ready: corporate ", 0, boot)?;
    // Corporate's loops first, then personal's: the focus (the front) ends on personal.
    start_loops(session, b'2', "corporate")?;
    start_loops(session, b'1', "personal")?;
    std::thread::sleep(Duration::from_secs(2));
    let ((busy_front, busy_behind), _) = mean_shares(session)?;
    session.shell("kill $(cat /tmp/spin.pids)", Duration::from_secs(120))?;
    std::thread::sleep(Duration::from_secs(2));
    let ((idle_front, idle_front_behind), _) = mean_shares(session)?;
    Ok(Sharing {
        busy_front,
        busy_behind,
        idle_front_behind,
        idle_front,
        switches: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sched_rows_are_read_from_the_last_table() {
        let text = "cell         cpu ms    share   switches  mean switch ticks\npersonal     12880     89.6%   412       1436\ncorporate    4582      9.7%    415       1390\n";
        let rows = parse_sched(text, &["personal", "corporate"]);
        assert_eq!(
            rows,
            vec![
                ("personal".to_owned(), Some(89.6), 412, Some(1436)),
                ("corporate".to_owned(), Some(9.7), 415, Some(1390)),
            ]
        );
        let none = parse_sched(
            "personal     0         -       0         -\n",
            &["personal"],
        );
        assert_eq!(none, vec![("personal".to_owned(), None, 0, None)]);
        let sharing = Sharing {
            switches: vec![
                ("personal".to_owned(), 1, Some(1000)),
                ("corporate".to_owned(), 3, Some(2000)),
            ],
            ..Sharing::default()
        };
        assert_eq!(sharing.mean_switch(), Some(1750));
    }
}
