//! Parsing guest transcripts: bench guest lines, cell entry, /proc/interrupts, disk read times,
//! the kernel's `Run /init` line.
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

/// The line the kernel prints as it starts the initramfs's init: the milestone a Linux boot on
/// raspi4b reaches both natively and in a cell (natively the PL011 driver never probes there, so
/// only earlycon's output, up to this line, is seen).
pub(super) const INIT_MILESTONE: &str = "Run /init as init process";

/// A `Run /init` line: whose console printed it and the kernel's timestamp on it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct InitLine<'a> {
    /// The cell whose console cellvisor prefixed the line with (`[personal] `); `None` natively.
    pub(super) cell: Option<&'a str>,
    /// The kernel's printk timestamp (`[    1.234567]`), seconds since its clock started.
    pub(super) kernel_seconds: Option<f64>,
}

/// Whether `word` can be a cell's name in cellvisor's console prefix (`[personal] `), not a
/// kernel timestamp (`[    1.234567]`).
fn is_cell_name(word: &str) -> bool {
    !word.is_empty()
        && word.chars().any(|c| c.is_ascii_alphabetic())
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `line` as a [`INIT_MILESTONE`] line, natively (`[    1.23] Run /init as init process`) or
/// from a cell (`[corporate] [    1.23] Run /init as init process`); `None` for any other line.
pub(super) fn init_line(line: &str) -> Option<InitLine<'_>> {
    let at = line.find(INIT_MILESTONE)?;
    let before = line[..at].trim();
    let (cell, rest) = match before
        .strip_prefix('[')
        .and_then(|inner| inner.split_once(']'))
    {
        Some((name, rest)) if is_cell_name(name) => (Some(name), rest.trim()),
        _ => (None, before),
    };
    let kernel_seconds = rest
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .and_then(|stamp| stamp.trim().parse().ok());
    Some(InitLine {
        cell,
        kernel_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_init_is_found_natively_and_in_each_cell() {
        assert_eq!(
            init_line("[    2.345678] Run /init as init process"),
            Some(InitLine {
                cell: None,
                kernel_seconds: Some(2.345_678)
            })
        );
        assert_eq!(
            init_line("[personal] [    1.500000] Run /init as init process"),
            Some(InitLine {
                cell: Some("personal"),
                kernel_seconds: Some(1.5)
            })
        );
        assert_eq!(
            init_line("[corporate] [   12.000001] Run /init as init process"),
            Some(InitLine {
                cell: Some("corporate"),
                kernel_seconds: Some(12.000_001)
            })
        );
        // Without printk timestamps the line still counts, natively and prefixed.
        assert_eq!(
            init_line("Run /init as init process"),
            Some(InitLine {
                cell: None,
                kernel_seconds: None
            })
        );
        assert_eq!(
            init_line("[corporate] Run /init as init process"),
            Some(InitLine {
                cell: Some("corporate"),
                kernel_seconds: None
            })
        );
        // Its neighbours are not the milestone.
        assert_eq!(
            init_line("[personal] [    1.400000] Freeing unused kernel memory: 9216K"),
            None
        );
        assert_eq!(init_line("[    1.500100]   with arguments:"), None);
    }

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
