//! The report: everything measured, shared lookups and the JSON (target/bench/report.json).
use std::collections::BTreeMap;
use std::fmt::Write as _;

use cellvisor_tests::GicVersion;

use super::console::{CONSOLE_BAUD, ConsoleFlood};
use super::disk::{DiskRun, EXIT_NAMES, disk_throughput_meaningful};
use super::footprint::Stage2Row;
use super::parse::{Boot, MicroRun, OpFields, number};
use super::stats::stats;
use super::{GOALS, GOALS_GICV2};

/// `text` as a JSON string.
pub(super) fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `value` as a JSON number, `null` when missing or not finite.
pub(super) fn json_number(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value}"),
        _ => "null".to_owned(),
    }
}

/// The JSON objects of `micro`'s op lines, one a line: mode, environment, op and every field.
fn micro_items(micro: &BTreeMap<(&'static str, &'static str), MicroRun>) -> String {
    let mut items = Vec::new();
    for ((mode, env), run) in micro {
        for (op, fields) in &run.ops {
            let body: Vec<String> = fields
                .iter()
                .filter(|(key, _)| key.as_str() != "op")
                .map(|(key, value)| {
                    let value = match value.parse::<f64>() {
                        Ok(number) if number.is_finite() => format!("{number}"),
                        _ if value == "-" => "null".to_owned(),
                        _ => json_string(value),
                    };
                    format!("{}: {value}", json_string(key))
                })
                .collect();
            items.push(format!(
                "    {{\"mode\": {}, \"env\": {}, \"op\": {}, {}}}",
                json_string(mode),
                json_string(env),
                json_string(op),
                body.join(", ")
            ));
        }
    }
    items.join(",\n")
}

/// Everything measured.
pub(super) struct Report {
    /// The QEMU version (e.g. `10.0.2`).
    pub(super) qemu_version: String,
    /// `uname -a`.
    pub(super) host: String,
    /// Host CPUs available.
    pub(super) cpus: String,
    /// The command line that made the report.
    pub(super) command: String,
    /// Iterations per micro-operation.
    pub(super) iterations: u64,
    /// Micro-operation runs on GICv3 by (mode, environment).
    pub(super) micro: BTreeMap<(&'static str, &'static str), MicroRun>,
    /// Micro-operation runs on GICv2 by (mode, environment); empty without `--gic 2`.
    pub(super) micro_gicv2: BTreeMap<(&'static str, &'static str), MicroRun>,
    /// Linux boots by (mode, configuration).
    pub(super) boots: BTreeMap<(&'static str, &'static str), Vec<Boot>>,
    /// Why Linux boot figures are missing, if they are.
    pub(super) linux_note: Option<String>,
    /// Disk reads by (mode, environment).
    pub(super) disk: BTreeMap<(&'static str, &'static str), DiskRun>,
    /// Why disk figures are missing, if they are.
    pub(super) disk_note: Option<String>,
    /// MiB per disk read.
    pub(super) disk_mib: u64,
    /// The console flood.
    pub(super) console: Option<ConsoleFlood>,
    /// Why the console flood figures are missing, if they are.
    pub(super) console_note: Option<String>,
    /// Time-sharing figures (layout `linux-shared`).
    pub(super) sharing: Option<super::sharing::Sharing>,
    /// Display and input switching figures.
    pub(super) display: Option<super::display::DisplayFigures>,
    /// Why the display figures are missing.
    pub(super) display_note: Option<String>,
    /// The channel's figures (layout `linux-bench`).
    pub(super) channel: Option<super::channel::ChannelFigures>,
    /// Why the channel figures are missing.
    pub(super) channel_note: Option<String>,
    /// Why they are missing, if they are.
    pub(super) sharing_note: Option<String>,
    /// Hypervisor image bytes by section class.
    pub(super) image: BTreeMap<&'static str, u64>,
    /// Stage-2 footprint per cell of every layout.
    pub(super) stage2: Vec<Stage2Row>,
    /// Source lines of hypervisor/src.
    pub(super) sloc: u64,
}

impl Report {
    /// A report of this QEMU, host and command with no figures yet.
    pub(super) fn new(
        qemu_version: String,
        host: String,
        cpus: String,
        command: String,
        iterations: u64,
    ) -> Report {
        Report {
            qemu_version,
            host,
            cpus,
            command,
            iterations,
            micro: BTreeMap::new(),
            micro_gicv2: BTreeMap::new(),
            boots: BTreeMap::new(),
            linux_note: None,
            disk: BTreeMap::new(),
            disk_note: None,
            disk_mib: 0,
            console: None,
            console_note: None,
            sharing: None,
            sharing_note: None,
            display: None,
            display_note: None,
            channel: None,
            channel_note: None,
            image: BTreeMap::new(),
            stage2: Vec::new(),
            sloc: 0,
        }
    }
}

impl Report {
    /// The micro-operation runs on `gic`.
    pub(super) fn micro_on(
        &self,
        gic: GicVersion,
    ) -> &BTreeMap<(&'static str, &'static str), MicroRun> {
        match gic {
            GicVersion::V3 => &self.micro,
            GicVersion::V2 => &self.micro_gicv2,
        }
    }

    /// Whether the micro-operations also ran on a GICv2 (`--gic 2`).
    pub(super) fn has_gicv2(&self) -> bool {
        !self.micro_gicv2.is_empty()
    }

    /// The fields of `op` on GICv3 in environment `env` under `mode`.
    pub(super) fn op(&self, mode: &str, env: &str, op: &str) -> Option<&OpFields> {
        self.op_on(GicVersion::V3, mode, env, op)
    }

    /// The fields of `op` on `gic` in environment `env` under `mode`.
    pub(super) fn op_on(
        &self,
        gic: GicVersion,
        mode: &str,
        env: &str,
        op: &str,
    ) -> Option<&OpFields> {
        let micro = self.micro_on(gic);
        let key = micro.keys().find(|(m, e)| *m == mode && *e == env)?;
        micro.get(key)?.ops.get(op)
    }

    /// EL2 instructions on GICv3 under icount for `op` or `op:key` (default key
    /// `el2_instr_per_op`).
    pub(super) fn el2(&self, spec: &str) -> Option<f64> {
        self.el2_on(GicVersion::V3, spec)
    }

    /// [`Report::el2`] on `gic`.
    pub(super) fn el2_on(&self, gic: GicVersion, spec: &str) -> Option<f64> {
        let (op, key) = spec.split_once(':').unwrap_or((spec, "el2_instr_per_op"));
        number(self.op_on(gic, "icount", "cellvisor", op), key)
    }

    /// The bench guest's counter at its first instruction in `env` under `mode`.
    pub(super) fn entry_ticks(&self, mode: &str, env: &str) -> Option<f64> {
        let key = self.micro.keys().find(|(m, e)| *m == mode && *e == env)?;
        self.micro.get(key)?.start.get("entry_ticks")?.parse().ok()
    }

    /// Median, min and max of `pick` over the Linux boots of `config` under `mode`.
    pub(super) fn boot_stats(
        &self,
        mode: &str,
        config: &str,
        pick: fn(&Boot) -> f64,
    ) -> Option<(f64, f64, f64)> {
        let key = self
            .boots
            .keys()
            .find(|(m, c)| *m == mode && *c == config)?;
        let values: Vec<f64> = self.boots.get(key)?.iter().map(pick).collect();
        stats(&values)
    }

    /// The disk reads of `env` under `mode`.
    pub(super) fn disk_run(&self, mode: &str, env: &str) -> Option<&DiskRun> {
        self.disk
            .iter()
            .find(|((m, e), _)| *m == mode && *e == env)
            .map(|(_, run)| run)
    }

    /// The JSON objects of `goals` measured on `gic`, one a line.
    fn goal_items(&self, gic: GicVersion, goals: &[(&str, &str, u64, u64)]) -> String {
        let items: Vec<String> = goals
            .iter()
            .map(|(name, spec, goal, anchor)| {
                format!(
                    "    {{\"path\": {}, \"measured\": {}, \"goal\": {goal}, \"anchor\": {anchor}}}",
                    json_string(name),
                    json_number(self.el2_on(gic, spec))
                )
            })
            .collect();
        items.join(",\n")
    }

    /// target/bench/report.json.
    pub(super) fn json(&self) -> String {
        let mut out = String::from("{\n");
        let _ = writeln!(
            out,
            "  \"qemu_version\": {},",
            json_string(&self.qemu_version)
        );
        let _ = writeln!(out, "  \"host\": {},", json_string(&self.host));
        let _ = writeln!(out, "  \"cpus\": {},", json_string(&self.cpus));
        let _ = writeln!(out, "  \"command\": {},", json_string(&self.command));
        let _ = writeln!(out, "  \"iterations\": {},", self.iterations);
        out.push_str("  \"micro\": [\n");
        out.push_str(&micro_items(&self.micro));
        out.push_str("\n  ],\n  \"micro_gicv2\": [\n");
        out.push_str(&micro_items(&self.micro_gicv2));
        out.push_str("\n  ],\n  \"entry_ticks\": {");
        let entries: Vec<String> = self
            .micro
            .iter()
            .map(|((mode, env), run)| {
                format!(
                    "{}: {}",
                    json_string(&format!("{mode}/{env}")),
                    json_number(run.start.get("entry_ticks").and_then(|v| v.parse().ok()))
                )
            })
            .collect();
        out.push_str(&entries.join(", "));
        out.push_str("},\n  \"linux_boot\": [\n");
        let mut items = Vec::new();
        for ((mode, config), boots) in &self.boots {
            for boot in boots {
                items.push(format!(
                    "    {{\"mode\": {}, \"config\": {}, \"host_seconds\": {}, \"uptime_seconds\": {}, \"hypervisor_log_host_seconds\": {}, \"cell_entry_seconds\": {}}}",
                    json_string(mode),
                    json_string(config),
                    json_number(Some(boot.host)),
                    json_number(Some(boot.uptime)),
                    json_number(boot.hypervisor_host),
                    json_number(boot.entry)
                ));
            }
        }
        out.push_str(&items.join(",\n"));
        out.push_str("\n  ],\n  \"el2_goals\": [\n");
        out.push_str(&self.goal_items(GicVersion::V3, &GOALS));
        out.push_str("\n  ],\n  \"el2_goals_gicv2\": [\n");
        if self.has_gicv2() {
            out.push_str(&self.goal_items(GicVersion::V2, &GOALS_GICV2));
        }
        out.push_str("\n  ],\n  \"disk\": [\n");
        let items: Vec<String> = self
            .disk
            .iter()
            .map(|((mode, env), run)| {
                let exits = match run.exits {
                    Some(_) => {
                        let pairs: Vec<String> = EXIT_NAMES
                            .iter()
                            .enumerate()
                            .map(|(index, name)| {
                                format!("{}: {}", json_string(name), json_number(run.exit_delta(index).map(|v| v as f64)))
                            })
                            .collect();
                        format!("{{{}}}", pairs.join(", "))
                    }
                    None => "null".to_owned(),
                };
                let rates: Vec<String> = run.rates.iter().map(|rate| json_number(Some(*rate))).collect();
                format!(
                    "    {{\"mode\": {}, \"env\": {}, \"method\": {}, \"bytes_per_read\": {}, \"mb_per_s\": [{}], \"mb_per_s_is_throughput\": {}, \"virtio_interrupts\": {}, \"all_guest_interrupts\": {}, \"exit_deltas\": {exits}}}",
                    json_string(mode),
                    json_string(env),
                    json_string(run.method),
                    json_number(Some(run.bytes)),
                    rates.join(", "),
                    disk_throughput_meaningful(mode),
                    run.disk_interrupt_delta(),
                    run.all_interrupts_delta()
                )
            })
            .collect();
        out.push_str(&items.join(",\n"));
        out.push_str("\n  ],\n  \"time_sharing\": ");
        match &self.sharing {
            Some(sharing) => out.push_str(&sharing.json()),
            None => out.push_str("null"),
        }
        out.push_str(",\n  \"display\": ");
        match &self.display {
            Some(display) => out.push_str(&display.json()),
            None => out.push_str("null"),
        }
        out.push_str(",\n  \"channel\": ");
        match &self.channel {
            Some(channel) => out.push_str(&channel.json()),
            None => out.push_str("null"),
        }
        out.push_str(",\n  \"channel_note\": ");
        match &self.channel_note {
            Some(note) => out.push_str(&json_string(note)),
            None => out.push_str("null"),
        }
        out.push_str(",\n  \"console_flood\": ");
        match &self.console {
            Some(flood) => {
                let _ = write!(
                    out,
                    "{{\"baud\": {CONSOLE_BAUD}, \"sent_bytes\": {}, \"dropped_bytes\": {}, \"victim_dropped_bytes\": {}, \"victim_beats\": {}, \"victim_missing_beats\": {}, \"victim_gap_guest_ms\": {}, \"victim_gap_console_ms\": {}, \"victim_gap_console_median_ms\": {}, \"quiet_gap_console_ms\": {}, \"quiet_gap_guest_ms\": {}}}",
                    flood.sent_bytes,
                    flood.dropped_bytes,
                    flood.victim_dropped_bytes,
                    flood.beats,
                    flood.missing_beats,
                    json_number(Some(flood.guest_gap_ms)),
                    json_number(Some(flood.console_gap_ms)),
                    json_number(Some(flood.console_gap_median_ms)),
                    json_number(Some(flood.quiet_console_gap_ms)),
                    json_number(Some(flood.quiet_guest_gap_ms)),
                );
            }
            None => out.push_str("null"),
        }
        out.push_str(",\n  \"image\": {");
        let items: Vec<String> = self
            .image
            .iter()
            .map(|(class, size)| format!("{}: {size}", json_string(class)))
            .collect();
        out.push_str(&items.join(", "));
        out.push_str("},\n  \"stage2\": [\n");
        let items: Vec<String> = self
            .stage2
            .iter()
            .map(|(layout, cell, ram, table, blocks, pages)| {
                format!(
                    "    {{\"layout\": {}, \"cell\": {}, \"ram_bytes\": {ram}, \"table_bytes\": {table}, \"block_descriptors\": {blocks}, \"page_descriptors\": {pages}}}",
                    json_string(layout),
                    json_string(cell)
                )
            })
            .collect();
        out.push_str(&items.join(",\n"));
        let _ = write!(out, "\n  ],\n  \"hypervisor_sloc\": {}\n}}\n", self.sloc);
        out
    }
}
