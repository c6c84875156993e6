//! The console flood: how long the victim's heartbeats wait while the other cell prints as fast as
//! both its vCPUs can, through a console paced like a phone's 115200-baud debug UART.
//!
//! Layout `test-guests`: personal runs the hostile suite's `console-flood` attack (3 s of output
//! from both vCPUs, then 3 s of silence), corporate beats every 100 ms with `gaps=on` (each beat
//! says how long after the previous one it came, on the guest's clock); cellvisor runs with
//! `cellvisor.console_baud=115200` (QEMU's own PL011 is instant). Plain TCG, so the console's
//! arrival times are host times. A quiet run (personal powers off at once, corporate beats alone)
//! gives the same gaps without a flood, for comparison on the same host.
use std::time::Duration;

use crate::images::{self, Ingredients, Overrides};
use crate::prereq::Qemu;
use crate::util::Result;

use super::bench_dir;
use super::qemu::{self, Mode};

/// The paced console's speed.
pub(super) const CONSOLE_BAUD: u64 = 115_200;
/// The victim's beat period.
const PERIOD_MS: u64 = 100;
/// Beats the victim prints before it powers off (and with it, after the attacker, the machine).
const VICTIM_BEATS: u64 = 120;
/// Beats of the quiet run.
const QUIET_BEATS: u64 = 60;

/// What one console flood showed.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct ConsoleFlood {
    /// Bytes the attacker wrote (its own count).
    pub(super) sent_bytes: u64,
    /// Attacker bytes the console dropped (the sum of its `…(N bytes dropped)` notes).
    pub(super) dropped_bytes: u64,
    /// Victim bytes the console dropped (its notes; 0 is the point).
    pub(super) victim_dropped_bytes: u64,
    /// Victim beats shown between the attack's start and its report.
    pub(super) beats: u64,
    /// Victim beats missing from those (0 is the point).
    pub(super) missing_beats: u64,
    /// The largest gap between two victim beats on the victim's own clock, ms.
    pub(super) guest_gap_ms: f64,
    /// The largest gap between two victim beats as the console showed them (host time), ms.
    pub(super) console_gap_ms: f64,
    /// The median of those console gaps, ms.
    pub(super) console_gap_median_ms: f64,
    /// The largest gap on the console with no flood (the quiet run), ms.
    pub(super) quiet_console_gap_ms: f64,
    /// The largest gap on the victim's clock with no flood, ms.
    pub(super) quiet_guest_gap_ms: f64,
}

/// The victim's whole beats among `lines`: (host seconds, number, gap µs on its clock).
fn victim_beats(lines: &[(f64, String)]) -> Vec<(f64, u64, Option<u64>)> {
    lines
        .iter()
        .filter_map(|(when, line)| {
            let rest = line.strip_prefix("[corporate] test-guest: heartbeat ")?;
            let (number, rest) = rest.split_once('/')?;
            let gap = rest
                .split(" gap_us=")
                .nth(1)
                .and_then(|gap| gap.trim().parse().ok());
            Some((*when, number.parse().ok()?, gap))
        })
        .collect()
}

/// The largest gap between consecutive `beats` on the console and on the victim's clock, ms.
fn largest_gaps(beats: &[(f64, u64, Option<u64>)]) -> (f64, f64) {
    let console = beats
        .windows(2)
        .map(|pair| (pair[1].0 - pair[0].0) * 1000.0)
        .fold(f64::NAN, f64::max);
    let guest = beats
        .iter()
        .filter_map(|beat| beat.2)
        .max()
        .map_or(f64::NAN, |gap| gap as f64 / 1000.0);
    (console, guest)
}

/// The largest gaps (console, victim's clock; ms) of a quiet run's transcript: every beat but the
/// first (which waits for the cell's boot).
pub(super) fn parse_quiet(lines: &[(f64, String)]) -> (f64, f64) {
    let beats = victim_beats(lines);
    largest_gaps(beats.get(1..).unwrap_or_default())
}

/// The sum of the `…(N bytes dropped)` notes on lines starting with `prefix`.
fn noted(lines: &[(f64, String)], prefix: &str) -> u64 {
    lines
        .iter()
        .filter(|(_, line)| line.starts_with(prefix))
        .filter_map(|(_, line)| {
            line.rsplit("…(")
                .next()?
                .strip_suffix(" bytes dropped)")?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The figures of a console-flood transcript (host seconds, line), as [`run_timed`] returns it.
///
/// [`run_timed`]: super::qemu::run_timed
pub(super) fn parse(lines: &[(f64, String)]) -> ConsoleFlood {
    let attacker = "[personal] ";
    let start = lines
        .iter()
        .position(|(_, line)| line.contains("test-guest: attack console-flood: start"));
    let report = lines
        .iter()
        .position(|(_, line)| line.contains("test-guest: attack console-flood: sent "));
    let mut flood = ConsoleFlood {
        dropped_bytes: noted(lines, attacker),
        victim_dropped_bytes: noted(lines, "[corporate] "),
        ..ConsoleFlood::default()
    };
    if let Some(report) = report {
        flood.sent_bytes = lines[report]
            .1
            .split("sent ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|bytes| bytes.parse().ok())
            .unwrap_or(0);
    }
    let (Some(start), Some(report)) = (start, report) else {
        return flood;
    };
    let beats = victim_beats(lines.get(start..report).unwrap_or_default());
    flood.beats = beats.len() as u64;
    flood.missing_beats = beats
        .windows(2)
        .map(|pair| pair[1].1.saturating_sub(pair[0].1 + 1))
        .sum();
    (flood.console_gap_ms, flood.guest_gap_ms) = largest_gaps(&beats);
    let mut gaps: Vec<f64> = beats
        .windows(2)
        .map(|pair| (pair[1].0 - pair[0].0) * 1000.0)
        .collect();
    gaps.sort_by(f64::total_cmp);
    flood.console_gap_median_ms = gaps.get(gaps.len() / 2).copied().unwrap_or(f64::NAN);
    flood.quiet_console_gap_ms = f64::NAN;
    flood.quiet_guest_gap_ms = f64::NAN;
    flood
}

/// Boots `test-guests` with `personal` and `corporate` as the cells' bootargs on the paced
/// console; returns the timed transcript (also written to `target/bench/<name>.log`).
fn run(qemu: &Qemu, name: &str, personal: &str, corporate: &str) -> Result<Vec<(f64, String)>> {
    let layout = images::layout("test-guests")?;
    let mut overrides = Overrides::default();
    overrides
        .bootargs
        .insert("personal".to_owned(), personal.to_owned());
    overrides
        .bootargs
        .insert("corporate".to_owned(), corporate.to_owned());
    let dir = bench_dir();
    let bundle = dir.join(format!("bundle-{name}.cpio"));
    images::build_bundle(layout, &overrides, &mut Ingredients::default(), &bundle)?;
    let command = qemu::cellvisor_command_with(
        qemu,
        &bundle,
        "test-guests",
        Mode::Tcg,
        &format!("cellvisor.console_baud={CONSOLE_BAUD}"),
    );
    qemu::run_timed(
        command,
        Duration::from_secs(120),
        &dir.join(format!("{name}-tcg.log")),
    )
}

/// Runs the console flood once, and the quiet run.
pub(super) fn console_flood(qemu: &Qemu) -> Result<ConsoleFlood> {
    let lines = run(
        qemu,
        "console-flood",
        "test=attack name=console-flood",
        &format!("test=heartbeat beats={VICTIM_BEATS} period_ms={PERIOD_MS} gaps=on"),
    )?;
    let mut flood = parse(&lines);
    let quiet = run(
        qemu,
        "console-quiet",
        "test=heartbeat beats=1 period_ms=1",
        &format!("test=heartbeat beats={QUIET_BEATS} period_ms={PERIOD_MS} gaps=on"),
    )?;
    (flood.quiet_console_gap_ms, flood.quiet_guest_gap_ms) = parse_quiet(&quiet);
    Ok(flood)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_come_from_the_flood_window() {
        let lines: Vec<(f64, String)> = [
            (0.9, "[corporate] test-guest: heartbeat 1/120 gap_us=100000"),
            (1.0, "[personal] test-guest: attack console-flood: start"),
            (
                1.05,
                "[corporate] test-guest: heartbeat 2/120 gap_us=100000",
            ),
            (1.1, "[personal] zzzz…(1000 bytes dropped)"),
            (1.2, "[corporate] test-guest: heartbeat 3/120 gap_us=104000"),
            (1.45, "[corporate] test-guest: heartbeat 5/120 gap_us=99000"),
            (
                1.5,
                "[personal] test-guest: attack console-flood: sent 5000 bytes in 3000 ms",
            ),
            (1.6, "[corporate] test-guest: heartbeat 6/120 gap_us=900000"),
            (1.7, "[personal] line…(24 bytes dropped)"),
        ]
        .into_iter()
        .map(|(when, line)| (when, line.to_owned()))
        .collect();
        let flood = parse(&lines);
        assert_eq!(flood.sent_bytes, 5000);
        assert_eq!(flood.dropped_bytes, 1024);
        assert_eq!(flood.victim_dropped_bytes, 0);
        assert_eq!(flood.beats, 3);
        assert_eq!(flood.missing_beats, 1);
        assert_eq!(flood.guest_gap_ms, 104.0);
        assert!((flood.console_gap_ms - 250.0).abs() < 1e-6);
        assert!((flood.console_gap_median_ms - 250.0).abs() < 1e-6);
        let (console, guest) = parse_quiet(&lines);
        assert!((console - 250.0).abs() < 1e-6, "{console}");
        assert_eq!(guest, 900.0);
    }
}
