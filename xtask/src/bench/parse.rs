//! Parsing guest transcripts: bench guest lines, cell entry, /proc/interrupts, disk read times.
use std::collections::BTreeMap;

/// One op line's fields.
pub(super) type OpFields = BTreeMap<String, String>;

/// Micro-operation results of one environment in one mode.
#[derive(Default, Debug)]
pub(super) struct MicroRun {
    /// The fields of the guest's `bench: start` line.
    pub(super) start: OpFields,
    /// Each op line's fields, by op name.
    pub(super) ops: BTreeMap<String, OpFields>,
}

/// The `key=value` words of a line (quotes around values removed).
fn fields(line: &str) -> OpFields {
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
        .collect()
}

/// The `bench:` lines of a bench guest transcript.
pub(super) fn parse_micro(transcript: &str) -> MicroRun {
    let mut run = MicroRun::default();
    for line in transcript.lines() {
        let Some(start) = line.find("bench: ") else {
            continue;
        };
        let line = &line[start + "bench: ".len()..];
        if let Some(rest) = line.strip_prefix("start ") {
            run.start = fields(rest);
        } else if line.starts_with("op=") {
            let fields = fields(line);
            if let Some(op) = fields.get("op") {
                run.ops.insert(op.clone(), fields);
            }
        }
    }
    run
}

/// Field `key` of an op line as a number.
pub(super) fn number(fields: Option<&OpFields>, key: &str) -> Option<f64> {
    fields?.get(key)?.parse().ok()
}

/// One Linux boot: host seconds to the personal banner, guest uptime, host seconds to cellvisor's
/// `cell personal:` log line (cellvisor runs only).
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Boot {
    /// Host seconds from QEMU start to the banner (two cells: the later banner).
    pub(super) host: f64,
    /// The guest's uptime printed in the personal banner.
    pub(super) uptime: f64,
    /// Host seconds to cellvisor's first `cell personal:` log line.
    pub(super) hypervisor_host: Option<f64>,
    /// Seconds since reset when cellvisor entered the personal cell's first vCPU (its log line
    /// `cell personal: entering vCPU 0 at counter N (F Hz)`); natively 0.
    pub(super) entry: Option<f64>,
}

impl Boot {
    /// Reset to the ready banner: cellvisor's boot up to the cell's first instruction plus the
    /// guest's own uptime at the banner.
    pub(super) fn reset_to_init(&self) -> f64 {
        self.entry.unwrap_or(0.0) + self.uptime
    }
}

/// `N / F` from `... entering vCPU 0 at counter N (F Hz)`.
pub(super) fn entry_seconds(line: &str) -> Option<f64> {
    let rest = line.split("entering vCPU 0 at counter ").nth(1)?;
    let mut words = rest.split_whitespace();
    let counter: f64 = words.next()?.parse().ok()?;
    let frequency: f64 = words.next()?.trim_start_matches('(').parse().ok()?;
    (frequency > 0.0).then(|| counter / frequency)
}

/// Sum over CPUs of each /proc/interrupts line, keyed by its last word (`virtio0`, `arch_timer`,
/// `IPI0`-style rows keyed by their first column).
pub(super) fn interrupt_totals(text: &str) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in text.lines() {
        let Some((name, counts)) = line.split_once(':') else {
            continue;
        };
        let numbers: Vec<u64> = counts
            .split_whitespace()
            .map_while(|field| field.parse::<u64>().ok())
            .collect();
        if numbers.is_empty() {
            continue;
        }
        let name = name.trim();
        let key = if name.chars().all(|c| c.is_ascii_digit()) {
            counts.split_whitespace().last().unwrap_or(name).to_owned()
        } else {
            name.to_owned()
        };
        *totals.entry(key).or_insert(0) += numbers.iter().sum::<u64>();
    }
    totals
}

/// Guest seconds of one read from `bench-read now at <t0> nsecs now at <t1> nsecs`.
pub(super) fn read_seconds(line: &str) -> Option<f64> {
    let rest = line.strip_prefix("bench-read ")?;
    let mut times = rest
        .split("now at ")
        .filter_map(|part| part.split_whitespace().next()?.parse::<u64>().ok());
    let t0 = times.next()?;
    let t1 = times.next()?;
    (t1 > t0).then(|| (t1 - t0) as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_entry_counter_is_read_from_the_log_line() {
        let line = "cellvisor: cpu0 INFO  cell personal: entering vCPU 0 at counter 8429593 (1000000000 Hz)";
        let seconds = entry_seconds(line).expect("parsed");
        assert!((seconds - 0.008_429_593).abs() < 1e-12, "{seconds}");
        assert_eq!(
            entry_seconds("cell personal: entering vCPU 0 at counter x (1 Hz)"),
            None
        );
        assert_eq!(entry_seconds("entering vCPU 0 at counter 5 (0 Hz)"), None);
        let boot = Boot {
            uptime: 0.87,
            entry: Some(0.01),
            ..Boot::default()
        };
        assert!((boot.reset_to_init() - 0.88).abs() < 1e-12);
    }
}
