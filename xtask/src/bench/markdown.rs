//! Markdown rendering: the tables printed after a run and docs/benchmarks.md (`--record`).
use std::fmt::Write as _;

use cellvisor_tests::GicVersion;

use super::console::CONSOLE_BAUD;
use super::disk::{DISK_REPEATS, DiskRun, disk_throughput_meaningful};
use super::parse::{Boot, number};
use super::report::Report;
use super::stats::{ratio, stats};
use super::{BOOT_CONFIGS, GOALS, GOALS_GICV2, OPS, SHARED_ENV, gic_name};

/// `value` with `decimals` decimals, `-` when missing.
fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:.decimals$}"),
        _ => "-".to_owned(),
    }
}

impl Report {
    /// Markdown tables (terminal output and docs/benchmarks.md share them).
    pub(super) fn tables(&self) -> String {
        let mut out = String::new();
        for mode in ["icount", "tcg"] {
            self.micro_table(&mut out, mode);
        }
        self.goals_table(&mut out);
        let _ = writeln!(
            out,
            "\n### Boot to the first guest instruction (bench guest, counter at entry)\n"
        );
        let _ = writeln!(out, "| mode | cellvisor | native | cellvisor's own boot |");
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for mode in ["icount", "tcg"] {
            let ours = self.entry_ticks(mode, "cellvisor");
            let native = self.entry_ticks(mode, "native");
            let own = match (ours, native) {
                (Some(a), Some(b)) => Some((a - b) / 1e6),
                _ => None,
            };
            let _ = writeln!(
                out,
                "| {mode} | {} ms | {} ms | {} ms |",
                fmt_opt(ours.map(|t| t / 1e6), 2),
                fmt_opt(native.map(|t| t / 1e6), 2),
                fmt_opt(own, 2)
            );
        }
        let _ = writeln!(
            out,
            "\n### Linux boot to `cellvisor-ready:` (median / min / max)\n"
        );
        if let Some(note) = &self.linux_note {
            let _ = writeln!(out, "{note}\n");
        }
        let _ = writeln!(
            out,
            "| mode | config | runs | host s to banner | ratio | guest uptime s | ratio | reset-to-init s | ratio |"
        );
        let _ = writeln!(out, "|---|---|---:|---|---:|---|---:|---:|---:|");
        for mode in ["icount", "tcg"] {
            let native_host = self.boot_stats(mode, "native", |boot| boot.host);
            let native_uptime = self.boot_stats(mode, "native", |boot| boot.uptime);
            let own_boot = match (
                self.entry_ticks(mode, "cellvisor"),
                self.entry_ticks(mode, "native"),
            ) {
                (Some(a), Some(b)) => Some(((a - b) / 1e9).max(0.0)),
                _ => None,
            };
            for config in BOOT_CONFIGS {
                let runs = self
                    .boots
                    .iter()
                    .find(|((m, c), _)| *m == mode && *c == config)
                    .map_or(0, |(_, boots)| boots.len());
                if runs == 0 {
                    continue;
                }
                let host = self.boot_stats(mode, config, |boot| boot.host);
                let uptime = self.boot_stats(mode, config, |boot| boot.uptime);
                // The cell's own entry counter when cellvisor logged it (every run since it does);
                // otherwise the bench guest's figure for cellvisor's boot.
                let logged_entry = config != "native"
                    && self
                        .boots
                        .iter()
                        .filter(|((m, c), _)| *m == mode && *c == config)
                        .all(|(_, boots)| boots.iter().all(|boot| boot.entry.is_some()));
                let reset_to_init = if config == "native" || logged_entry {
                    self.boot_stats(mode, config, Boot::reset_to_init)
                        .map(|(median, _, _)| median)
                } else {
                    uptime.map(|(median, _, _)| median + own_boot.unwrap_or(0.0))
                };
                let native_reset = native_uptime.map(|(median, _, _)| median);
                let show = |s: Option<(f64, f64, f64)>| match s {
                    Some((median, min, max)) => format!("{median:.2} ({min:.2}–{max:.2})"),
                    None => "-".to_owned(),
                };
                let _ = writeln!(
                    out,
                    "| {mode} | {config} | {runs} | {} | {} | {} | {} | {} | {} |",
                    show(host),
                    fmt_opt(ratio(host.map(|s| s.0), native_host.map(|s| s.0)), 3),
                    show(uptime),
                    fmt_opt(ratio(uptime.map(|s| s.0), native_uptime.map(|s| s.0)), 3),
                    fmt_opt(reset_to_init, 3),
                    fmt_opt(ratio(reset_to_init, native_reset), 3),
                );
            }
        }
        self.disk_tables(&mut out);
        self.console_table(&mut out);
        self.sharing_table(&mut out);
        self.display_table(&mut out);
        self.channel_table(&mut out);
        let _ = writeln!(out, "\n### Footprint\n");
        let _ = writeln!(out, "| hypervisor image (release ELF) | bytes |");
        let _ = writeln!(out, "|---|---:|");
        for class in ["text", "rodata", "data", "bss", "heap", "stacks"] {
            let _ = writeln!(
                out,
                "| {class} | {} |",
                self.image.get(class).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(
            out,
            "\n| layout | cell | RAM MiB | stage-2 table bytes | block descriptors | page descriptors |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
        for (layout, cell, ram, table, blocks, pages) in &self.stage2 {
            let _ = writeln!(
                out,
                "| {layout} | {cell} | {} | {table} | {blocks} | {pages} |",
                ram >> 20
            );
        }
        let _ = writeln!(
            out,
            "\nSLOC of hypervisor/src (no blank lines, comments or tests): {}",
            self.sloc
        );
        out
    }

    /// The micro-operation table of `mode`: GICv3, and with `--gic 2` the GICv2 figures beside
    /// them (the columns then say which GIC they are from).
    fn micro_table(&self, out: &mut String, mode: &str) {
        let _ = writeln!(
            out,
            "\n### Micro-operations, {} ({} iterations each)\n",
            if mode == "icount" {
                "`-icount shift=0,sleep=off` (1 instruction = 1 ns, deterministic)"
            } else {
                "plain TCG (host-dependent)"
            },
            self.iterations
        );
        let gics: &[GicVersion] = if self.has_gicv2() {
            &[GicVersion::V3, GicVersion::V2]
        } else {
            &[GicVersion::V3]
        };
        let mut header = String::from("| op | what |");
        let mut rule = String::from("|---|---|");
        for &gic in gics {
            let gic_prefix = if self.has_gicv2() {
                format!("{} ", gic_name(gic))
            } else {
                String::new()
            };
            let _ = write!(
                header,
                " {gic_prefix}cellvisor ns/op | {gic_prefix}native ns/op | {gic_prefix}ratio | {gic_prefix}EL2 instructions/op |"
            );
            rule.push_str("---:|---:|---:|---:|");
        }
        let _ = writeln!(out, "{header}\n{rule}");
        for (op, what) in OPS {
            let mut row = format!("| {op} | {what} |");
            for &gic in gics {
                let ours = number(self.op_on(gic, mode, "cellvisor", op), "ns_per_op");
                let native = number(self.op_on(gic, mode, "native", op), "ns_per_op");
                let _ = write!(
                    row,
                    " {} | {} | {} | {} |",
                    fmt_opt(ours, 1),
                    fmt_opt(native, 1),
                    fmt_opt(ratio(ours, native), 1),
                    self.el2_cell(gic, mode, op)
                );
            }
            let _ = writeln!(out, "{row}");
        }
    }

    /// The EL2 instructions of `op` on `gic` under `mode` as a table cell: the median send and
    /// receive for `ipi`, the mean with its breakdown for `pci_intx`, the mean otherwise.
    fn el2_cell(&self, gic: GicVersion, mode: &str, op: &str) -> String {
        let fields = self.op_on(gic, mode, "cellvisor", op);
        match op {
            "ipi" => match (
                number(fields, "el2_send_median"),
                number(fields, "el2_receive_median"),
                number(fields, "el2_instr_per_op"),
            ) {
                (Some(send), Some(receive), Some(mean)) => {
                    format!("send {send:.0} + receive {receive:.0} (mean per round trip {mean:.0})")
                }
                _ => fmt_opt(number(fields, "el2_instr_per_op"), 0),
            },
            "pci_intx" => match (
                number(fields, "el2_instr_per_op"),
                number(fields, "el2_median"),
                number(fields, "el2_notify_per_op"),
                number(fields, "el2_after_entry_per_op"),
            ) {
                (Some(mean), Some(median), Some(notify), Some(after)) => format!(
                    "{mean:.0} (median {median:.0}; notify alone {notify:.0}, after the handler's entry {after:.0})"
                ),
                (mean, ..) => fmt_opt(mean, 0),
            },
            _ => fmt_opt(number(fields, "el2_instr_per_op"), 0),
        }
    }

    /// The EL2 goals: [`GOALS`] on GICv3, then [`GOALS_GICV2`] when the GICv2 ran.
    fn goals_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### EL2 instructions against the goals (icount, PMU EL2 filter)\n"
        );
        let _ = writeln!(
            out,
            "| path | measured | goal | best published peer | verdict |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---|");
        let gicv2: &[_] = if self.has_gicv2() { &GOALS_GICV2 } else { &[] };
        let rows = GOALS
            .iter()
            .map(|goal| (GicVersion::V3, goal))
            .chain(gicv2.iter().map(|goal| (GicVersion::V2, goal)));
        for (gic, &(name, spec, goal, anchor)) in rows {
            let measured = self.el2_on(gic, spec);
            let verdict = match measured {
                Some(value) if value <= goal as f64 => "meets goal",
                Some(_) => "over goal",
                None => "not measured",
            };
            let anchor = if anchor == 0 {
                "-".to_owned()
            } else {
                format!("~{anchor}")
            };
            let _ = writeln!(
                out,
                "| {name} | {} | ≤{goal} | {anchor} | {verdict} |",
                fmt_opt(measured, 0)
            );
        }
    }

    /// The console flood table.
    fn console_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### Console flood: the other cell's heartbeat while one floods a {CONSOLE_BAUD}-baud console (TCG)\n"
        );
        let Some(flood) = &self.console else {
            let _ = writeln!(
                out,
                "{}",
                self.console_note
                    .as_deref()
                    .unwrap_or("Console flood not run.")
            );
            return;
        };
        let _ = writeln!(
            out,
            "| attacker sent | attacker dropped | victim dropped | victim beats (missing) | largest victim gap, console | median, console | largest, victim's clock | no flood: largest, console | no flood: largest, victim's clock |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| {} B | {} B | {} B | {} ({}) | {} ms | {} ms | {} ms | {} ms | {} ms |",
            flood.sent_bytes,
            flood.dropped_bytes,
            flood.victim_dropped_bytes,
            flood.beats,
            flood.missing_beats,
            fmt_opt(Some(flood.console_gap_ms), 1),
            fmt_opt(Some(flood.console_gap_median_ms), 1),
            fmt_opt(Some(flood.guest_gap_ms), 1),
            fmt_opt(Some(flood.quiet_console_gap_ms), 1),
            fmt_opt(Some(flood.quiet_guest_gap_ms), 1),
        );
    }

    /// The time-sharing table (layout `linux-shared`, icount).
    fn sharing_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### Time-sharing: personal and corporate on the same two CPUs (`linux-shared`, TCG; the switch: `test-guests-shared`, icount, one CPU)\n"
        );
        let Some(sharing) = &self.sharing else {
            let _ = writeln!(
                out,
                "{}",
                self.sharing_note
                    .as_deref()
                    .unwrap_or("Time-sharing not run.")
            );
            return;
        };
        let _ = writeln!(
            out,
            "| both busy: front share (goal ≥ 90 %) | both busy: behind share (goal 10 ± 2 %) | front idle: behind share (goal ≥ 95 %) | one switch, EL2 instructions (goal ≤ 1,500) |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| {:.1} % | {:.1} % | {:.1} % | {} |",
            sharing.busy_front,
            sharing.busy_behind,
            sharing.idle_front_behind,
            fmt_opt(sharing.mean_switch().map(|mean| mean as f64), 0),
        );
        let _ = writeln!(
            out,
            "\nThe bench guest in front, a test guest that never idles behind it on CPU 0 (`bench-shared`, icount), against the bench guest alone (`bench`):\n"
        );
        let _ = writeln!(
            out,
            "| op | alone ns/op | background busy ns/op | ratio | alone EL2 instr/op | background busy EL2 instr/op |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|");
        let alone = self.micro.get(&("icount", "cellvisor"));
        let shared = self.micro.get(&("icount", SHARED_ENV));
        for op in ["timer", "ipi", "hvc"] {
            let a = alone.map(|run| run.ops.get(op));
            let b = shared.map(|run| run.ops.get(op));
            let ns = |fields: Option<Option<&_>>| number(fields.flatten(), "ns_per_op");
            let el2 = |fields: Option<Option<&_>>| number(fields.flatten(), "el2_instr_per_op");
            let _ = writeln!(
                out,
                "| {op} | {} | {} | {} | {} | {} |",
                fmt_opt(ns(a), 1),
                fmt_opt(ns(b), 1),
                fmt_opt(ratio(ns(b), ns(a)), 3),
                fmt_opt(el2(a), 0),
                fmt_opt(el2(b), 0),
            );
        }
        for (cell, switches, mean) in &sharing.switches {
            let _ = writeln!(
                out,
                "\n{cell}: {switches} switches to it, mean {} EL2 instructions each.",
                mean.map_or_else(|| "-".to_owned(), |mean| mean.to_string())
            );
        }
    }

    /// The display and input switching table (`test-guests-shared`, icount, one CPU).
    fn display_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### Display and input: the switch key and forwarded events (`test-guests-shared` with ramfb and virtio-input, icount, one CPU: a tick is an EL2 instruction and a nanosecond)\n"
        );
        let Some(display) = &self.display else {
            let _ = writeln!(
                out,
                "{}",
                self.display_note
                    .as_deref()
                    .unwrap_or("Display run not made.")
            );
            return;
        };
        let _ = writeln!(
            out,
            "| switch: key interrupt to the banner on the scanout, EL2 instructions | icount time (goal < 16 ms) | switches | per forwarded input event, EL2 instructions | events |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| {} | {:.3} ms | {} | {} | {} |",
            display.switch_instructions,
            display.switch_instructions as f64 / 1e6,
            display.switches,
            display.event_instructions,
            display.events
        );
    }

    /// The channel table (`linux-bench`, icount, one vCPU per cell).
    fn channel_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### Channel: personal → corporate port 7000 against TCP loopback inside personal (`linux-bench`, icount, one vCPU per cell; times in icount ns, one per instruction of the machine)\n"
        );
        let Some(channel) = &self.channel else {
            let _ = writeln!(
                out,
                "{}",
                self.channel_note
                    .as_deref()
                    .unwrap_or("Channel run not made.")
            );
            return;
        };
        let (blast, tcp_blast) = channel.blast_ns();
        let _ = writeln!(
            out,
            "| | channel (virtio-vsock through cellvisor) | TCP loopback in personal | ratio channel / loopback |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| round trip of {} bytes, mean ({} round trips) | {} ns | {} ns | {} (time) |",
            channel.ping.size,
            channel.ping.count,
            channel.ping.avg_ns,
            channel.tcp_ping.avg_ns,
            fmt_opt(channel.latency_ratio(), 2)
        );
        let _ = writeln!(
            out,
            "| round trip, min – max | {} – {} ns | {} – {} ns | |",
            channel.ping.min_ns,
            channel.ping.max_ns,
            channel.tcp_ping.min_ns,
            channel.tcp_ping.max_ns
        );
        let _ = writeln!(
            out,
            "| 1 MiB transfer to a sink, median of {} | {} ms, {} MB/s | {} ms, {} MB/s | {} (throughput) |",
            channel.blasts.len(),
            fmt_opt(blast.map(|ns| ns as f64 / 1e6), 3),
            fmt_opt(super::channel::ChannelFigures::mb_per_s(blast), 1),
            fmt_opt(tcp_blast.map(|ns| ns as f64 / 1e6), 3),
            fmt_opt(super::channel::ChannelFigures::mb_per_s(tcp_blast), 1),
            fmt_opt(channel.throughput_ratio(), 3)
        );
        let _ = writeln!(
            out,
            "\n| EL2 work of the channel's pump (`channel` command, before and after) | packets moved | counter ticks per packet moved | per round trip / per MiB |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let row = |what: &str,
                   window: Option<super::channel::Window>,
                   per: Option<f64>,
                   unit: &str| match window {
            Some(window) => format!(
                "| {what} | {} | {:.0} ± {:.0} | {} {unit} |",
                window.packets,
                window.ticks_per_packet,
                window.error.ceil(),
                fmt_opt(
                    per.map(|per| per * window.ticks_per_packet * window.packets as f64),
                    0
                )
            ),
            None => format!("| {what} | - | - | - |"),
        };
        let rounds = (channel.ping.count != 0).then(|| 1.0 / channel.ping.count as f64);
        let mebibytes = (!channel.blasts.is_empty()).then(|| 1.0 / channel.blasts.len() as f64);
        let _ = writeln!(
            out,
            "{}",
            row(
                "during the round trips (the other cell idle: EL2 instructions)",
                channel.ping_el2,
                rounds,
                "ticks per round trip"
            )
        );
        let _ = writeln!(
            out,
            "{}",
            row(
                "during the 1 MiB transfers (both cells busy: an upper bound)",
                channel.blast_el2,
                mebibytes,
                "ticks per MiB"
            )
        );
    }

    /// The disk throughput and passthrough-interrupt tables.
    fn disk_tables(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "\n### Passed-through disk: sequential read in the corporate cell vs native (median of {DISK_REPEATS} reads)\n"
        );
        if let Some(note) = &self.disk_note {
            let _ = writeln!(out, "{note}\n");
        }
        let _ = writeln!(
            out,
            "| mode | read | native MB/s | cellvisor MB/s | ratio | goal | verdict |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---|");
        for mode in ["icount", "tcg"] {
            let native = self.disk_run(mode, "native");
            let ours = self.disk_run(mode, "cellvisor");
            if !disk_throughput_meaningful(mode) || (native.is_none() && ours.is_none()) {
                continue;
            }
            let median = |run: Option<&DiskRun>| run.and_then(|run| stats(&run.rates)).map(|s| s.0);
            let all = |run: Option<&DiskRun>| match run {
                Some(run) if !run.rates.is_empty() => format!(
                    "{:.1} ({})",
                    median(Some(run)).unwrap_or(f64::NAN),
                    run.rates
                        .iter()
                        .map(|rate| format!("{rate:.1}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => "-".to_owned(),
            };
            let ratio = ratio(median(ours), median(native));
            let verdict = match ratio {
                Some(value) if value >= 0.95 => "meets goal",
                Some(_) => "under goal",
                None => "not measured",
            };
            let method = ours.or(native).map_or("-", |run| run.method);
            let _ = writeln!(
                out,
                "| {mode} | {} MiB, bs=1M, {method} | {} | {} | {} | ≥0.95 | {verdict} |",
                self.disk_mib,
                all(native),
                all(ours),
                fmt_opt(ratio, 3)
            );
        }
        if self.disk_run("icount", "cellvisor").is_some() {
            let _ = writeln!(
                out,
                "\nNo icount row: under `-icount` the guest clock does not advance with QEMU's I/O \
                 threads, so a read's guest duration is not a throughput (see Method); the icount \
                 reads are counted below."
            );
        }
        let _ = writeln!(
            out,
            "\n### Passthrough interrupts during the reads (corporate cell; exits from the `cells` table)\n"
        );
        let _ = writeln!(
            out,
            "| mode | disk interrupts (native) | disk interrupts | all guest interrupts | guest IPIs | irq exits | wfi exits | sysreg exits | mmio exits | calls | sysreg exits not from IPIs, per guest interrupt | EL2 instructions per disk interrupt (`pci_intx`) |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        let per_interrupt = self.el2("pci_intx");
        for mode in ["icount", "tcg"] {
            let Some(run) = self.disk_run(mode, "cellvisor") else {
                continue;
            };
            let native_virtio = self
                .disk_run(mode, "native")
                .map_or("-".to_owned(), |run| run.disk_interrupt_delta().to_string());
            let virtio = run.disk_interrupt_delta();
            let all = run.all_interrupts_delta();
            let exit = |index: usize| run.exit_delta(index).map(|value| value as f64);
            let show = |value: Option<f64>| fmt_opt(value, 0);
            let ipis: u64 = run
                .interrupts_after
                .keys()
                .filter(|name| name.starts_with("IPI"))
                .map(|name| run.interrupt_delta(name))
                .sum();
            // Every IPI the cell sends is one trapped ICC_SGI1R_EL1 write; a trapped EOI would add
            // one more sysreg exit per guest interrupt.
            let eoi_bound = exit(2).map(|sysreg| (sysreg - ipis as f64).max(0.0));
            let estimate = match per_interrupt {
                Some(cost) => format!("≈{cost:.0} (delivery) + 0 (EOI)"),
                None => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "| {mode} | {native_virtio} | {virtio} | {all} | {ipis} | {} | {} | {} | {} | {} | {} | {estimate} |",
                show(exit(4)),
                show(exit(3)),
                show(exit(2)),
                show(exit(1)),
                show(exit(0)),
                fmt_opt(ratio(eoi_bound, Some(all as f64)), 3),
            );
        }
    }
}

/// The method section of docs/benchmarks.md (kept here so `--record` rewrites the whole file).
const METHOD: &str = r#"## Method

**Micro-operations.** `guests/bench-guest` is a bare-metal EL1 Rust guest. vCPU 0 times one window
of N iterations (65,536; `--quick`: 4,096; bootargs `iterations=N`) per operation, reading
CNTVCT_EL0, PMCCNTR_EL0 and PMEVCNTR0_EL0 between `isb` barriers at both ends. `null` is the cost
of one such counter-read pair; `eoi` is timed per iteration and has that pair subtracted. `ipi` is a
round trip: vCPU 0 sends SGI 0 to vCPU 1 and waits in WFI until vCPU 1's handler sends SGI 0
back (two IPIs per figure). `timer` programs CNTV_CVAL_EL0 5 µs ahead and reports the counter at
the IRQ vector's first instruction minus the deadline. The same ELF runs natively
(`-M virt,gic-version=3 -cpu max,sve=off,sme=off -smp 2 -m 64M -kernel bench-guest`): QEMU loads the
ELF at 0x4000_0000 and passes no device tree (x0 = 0), so the guest reads its bootargs from
0x43F0_0000, put there with `-device loader,file=…,addr=0x43f00000,force-raw=on`; natively the
null hypercall is PSCI_VERSION to QEMU's built-in PSCI (an unknown SMCCC call through HVC is
UNDEFINED without EL2), under cellvisor CELLVISOR_VERSION. Under cellvisor the hypervisor is the
release build, layout `bench` (one cell, CPUs 0–1, 64 MiB, owning `virtio-blk-pci`),
`-smp 4 -m 2G`.

**EL2 instructions per operation.** cellvisor does not trap or switch the PMU, so the guest
programs event counter 0 with INST_RETIRED (0x08) and the filter bits P and U (do not count EL1,
EL0) and NSH (count EL2). QEMU applies PMU filters at every exception-level change, and its
instructions-retired event exists only under `-icount` (PMCEID0 bit 8 is clear otherwise), where it
is QEMU's exact instruction count; so EL2 figures come from the icount runs only. Sanity checks in
every run: `null` and `eoi` (nothing traps) read 0 EL2 instructions, and under icount
ns/op − EL2 instructions/op equals the guest's own instructions. For `ipi`, the send part is the
EL2 count across the ICC_SGI1R_EL1 write alone; "receive" is everything else vCPU 0 spends at EL2
per round trip: the reply arrives as a physical SGI (cellvisor's kick) while vCPU 0 spins with
interrupts unmasked, is taken at EL2 and injected into a list register. vCPU 0 spins instead of
waiting in WFI because under `-icount` QEMU's instruction counter is the whole machine's: a CPU
idling at EL2 would count the other CPUs' instructions as its own EL2 instructions (an earlier
version of this op did, and reported ~1900 "receive" instructions where the trace showed ~500).
For the same reason the window around the send is not always clean: QEMU's round-robin may hand
its one thread to vCPU 1 at cellvisor's kick while vCPU 0 is still at EL2, and vCPU 1's work is
then counted too (a full run of 65,536 round trips once averaged 908 "send" instructions where the
exec trace shows 526 per send exit, and the same run with other code around it averaged 526).
Whether it happens depends on the exact instruction counts of the build, so the table and the goals
use the median per-iteration counts (`el2_send_median`, `el2_receive_median`, from a histogram in
the guest); the mean EL2 instructions per round trip are shown beside them.
The "per interrupt" goal is compared with the timer op: a physical PPI 27 taken at EL2 and forwarded
as a hardware-linked virtual interrupt while the guest spins.

**On a GICv2 (`--gic 2`).** `cargo xtask bench --gic 2` also runs the micro-operations on QEMU's
GIC-400 model, after the GICv3 runs of the same invocation: under cellvisor on
`-M virt,virtualization=on,gic-version=2,iommu=smmuv3` (same layout, disk, SMMU and `-smp 4
-m 2G`), natively on `-M virt,gic-version=2` (same CPU model, `-smp 2 -m 64M`); `--gic 3` is the
default, GICv3 only. The micro-operation tables then show GICv2 columns (cellvisor and native
ns/op, their ratio, EL2 instructions/op) beside the GICv3 ones, and the goals table a row for the
GICv2 timer: the per-interrupt goal ≤150 holds there too, and its anchor ~190 is the best
static-partitioning peer's figure on GIC-400 hardware. `report.json` has them as `micro_gicv2`
and `el2_goals_gicv2` (empty without the option); the chart and the boot-to-first-instruction
table stay GICv3. The guest finds its GIC at run time from `GICD_PIDR2` at the GICv2 offset 0xFE8
(ArchRev 2 on QEMU's GIC-400 and in cellvisor's GICv2 view, 0x2B in both; reserved, read as zero,
on a GICv3, whose PIDR2 is at 0xFFE8) and on a GICv2 touches no ICC_* register: every interrupt is
Group 0 signalled as an IRQ (cellvisor's GICv2 view has only Group 0, and QEMU's GICv2 without
Security Extensions resets to it), the disk's SPI is targeted with `GICD_ITARGETSR`, SGIs go
through `GICD_SGIR` (CPU target list; trapped and emulated, so the `ipi` send and `sgi_self`
include an MMIO trap where GICv3 has a system-register trap), interrupts are acknowledged through
`GICC_IAR` and ended through `GICC_EOIR` with the whole IAR value (an SGI's source CPU included).
Under cellvisor the guest's `GICC` is the hardware GICV frame mapped in stage 2, so `eoi` reads 0
EL2 instructions on both GICs, as acknowledging does. The ops, their names and their windows are
the same on both, so the figures compare; `pci_intx` runs on GICv2 too (the disk's INTx is SPI 37
in the cell's `interrupt-map` there as well). `gicd_read` and `gicd_write` reach the same registers
(GICD_IIDR, GICD_IPRIORITYR) through cellvisor's 4 KiB GICv2 distributor emulation
(`distributor_v2.rs`) instead of the GICv3 one.

**Where the EL2 instructions go.** Traced with QEMU's `-d exec,nochain,in_asm -dfilter
0x40200000..0x40400000` on the release image with the bench guest's `only=OP` bootargs (one
operation per run), each exit's instructions attributed to functions with `addr2line` (December
2026; figures rounded). The exits every guest takes all the time are answered by the fast path
(`core::fast`) at the exception vector: it saves only the caller-saved registers (x0-x18, x30,
ELR, SPSR: 21 instructions) and loads them back (17 with the ERET); x19-x29 never leave the CPU,
and the run loop and its second register frame are not entered. A null hypercall (~97) adds the
call into the fast path (~12), the ESR check (~8), SMCCC dispatch (~35), the exit counter (5) and
the results (4). A timer interrupt (~143) adds acknowledging it with the priority drop (~11) and,
under the vGIC lock, re-arming the list register that held the timer's previous, completed
instance (~45): the list registers already hold everything else deliverable to the vCPU, which the
vGIC tracks per vCPU, so no flush scan is needed. A trapped distributor write (~287) adds the
syndrome decode and device lookup (~40), the distributor's IPRIORITYR emulation under the vGIC
lock (~90, inlined from the bus to the bank registers) and the flush's inline check that nothing
changed for the vCPU (~25). An IPI send (~392) is the ICC_SGI1R_EL1 trap, the vGIC's SGI
emulation and the physical kick SGI to the sibling's CPU; the SGI is *posted* to the sibling, whose
receive (~201) is the kick's acknowledge and deactivate plus writing the posted SGI straight into
a free list register, again without a flush scan. Exits the fast path leaves to the run loop
(PSCI, WFI, aborts outside the cell, console input, passthrough SPIs) pay about 60 more for the
full register save and the run loop.

**IPI send over its goal since the bench cell owns a PCI function.** With `pci_intx` the bench
cell owns the disk's INTx (SPI 37) besides its vUART's SPI, and the vGIC's flush scan walks the
cell's owned SPIs: the mean IPI send rose from 398 (December 2026, no device) to 404 with the same
code (a run of only 64 sends gives a mean of 394.6 and a median of 396), and `sgi_self` from 682
to 704. Left as measured; the fix is to
track which of a cell's SPIs may need a list register, as `watch` does for private interrupts, so
the scan skips idle ones.

**Passthrough interrupts on the PCIe path (`pci_intx`).** The bench cell owns the board's
`virtio-blk-pci` (00:02.0, behind the SMMU, which translates its DMA with the cell's stage 2, so the
remapped RAM is fine; the bench's QEMU gives it the corporate disk image through a snapshot overlay)
and drives it with the test guest's driver (`guests/guest-support`: `pci`, `virtio_pci`,
`virtqueue`) with the function's INTx enabled: INTA of slot 2 is INTID 37, level, which the guest
finds in its device tree's `interrupt-map`, routes to vCPU 0 and enables in its vGIC distributor,
and which cellvisor injects hardware-linked. Each of N iterations reads sector 0: with IRQs masked,
vCPU 0 queues the request and writes the queue's notification register (a BAR the cell maps: no
trap), then unmasks IRQs and spins (with YIELD, not WFI, for the reason given for `ipi`) until its
handler has run. The handler reads the device's ISR status, which lowers the level line, before its
EOI; otherwise the deactivation the HW bit forwards would find the line still high and the SPI would
fire again. The figure is the EL2 count across the N reads over N, beside the median per read
(`el2_median`). The physical SPI is taken at EL2 whenever it arrives, also while the guest still
masks IRQs right after the notify, so inside a read the delivery cannot be told from the notify; two
more figures show that nothing else is in the window: the EL2 count from the handler's entry to the
end of the spin (`el2_after_entry_per_op`: the ISR read, the EOI, the return) and that of N notifies
on a queue with nothing new, which raise no interrupt, after the reads (`el2_notify_per_op`: the BAR
write alone). Both are 0, neither traps. ns/op is the whole read, which QEMU's I/O threads complete
in host time, so it is not deterministic even under icount; natively the guest has no device tree
and the op is skipped.

**The PCIe INTx goal, and where its EL2 instructions go.** The goal, ≤200, is the timer's ≤150 plus
a margin: a passed-through SPI needs the same work as the timer PPI (acknowledge it with the
priority drop, write one hardware-linked list register) plus finding its owner. The first
measurement (December 2026) was ~850: the fast path acknowledged the SPI and handed it to the run
loop, whose sync (~170), `inject_hardware` (~170, which also invalidates every vCPU's "list
registers complete" state) and flush scan `flush_slow` (~390) did the rest. Now the fast path
forwards a passed-through SPI straight into a free list register (`Vgic::forward_spi_direct`)
when that is all a flush would do: the SPI is routed to the vCPU whose CPU took it, that vCPU's
list registers hold everything else deliverable to it, and no earlier instance is pending or live
(a completed one still recorded in a list register is folded back first); anything else takes the
run loop as before. That brought it to ~275. What remains over the timer's 143 is the owner lookup
and the fold of the previous instance's list register, which the timer's rearm avoids; the goal is
kept, and the verdict says where the figure stands. The "EL2 instructions per disk interrupt"
column of the passthrough-interrupt table is this op's figure.

**Deterministic mode.** `-icount shift=0,sleep=off`: one instruction is one nanosecond of virtual
time and idle time jumps to the next timer deadline instead of following the host clock, so every
figure repeats exactly run to run. Plain TCG (multi-threaded, host clock) is reported beside it;
there the counter is host time and the PMU cycle counter is derived from the same clock (TCG does
not model caches, TLBs or stage-2 walk cost in either mode).

**Linux boot.** The Debian kernel and `initrd-personal.cpio.gz` boot natively
(`-M virt,gic-version=3 -cpu max,sve=off,sme=off -smp 2 -m 768M`, same CPU features as a cell and
the same bootargs), in one cell alone (layout `linux-personal`) and with both cells (layout
`linux`); configurations alternate (native, one cell, two cells, native, …). Each run reports host
wall time from QEMU start to the personal cell's `cellvisor-ready:` banner (two cells: the later of
both banners) and the guest's own uptime printed in the banner. *reset-to-init* = cellvisor's own
boot + guest uptime (median over the runs), where cellvisor's own boot is the counter at which it
enters the personal cell's first vCPU, from its log line `cell personal: entering vCPU 0 at counter N
(F Hz)` (CNTPCT_EL0, so under icount it counts instructions since reset). It includes loading the
27 MB kernel and the initramfs into the cell and generating its device tree. Natively QEMU starts
the kernel at reset, so native reset-to-init is the guest uptime alone. The "boot to the first guest
instruction" table above gives the same figure for the small bench guest.

Under `-icount` QEMU runs all vCPUs round-robin on one thread and one virtual clock that advances
with every instruction of every CPU, so a guest's uptime also grows with the other cell's work: the
two-cell icount uptimes measure the machine, not a slowdown of either cell. Plain TCG runs vCPUs in
parallel host threads, but this host has only 2 cores for up to 4 busy vCPUs.

**On the raspi4b board (`--board raspi4b`).** The bench guest cannot run on QEMU's Raspberry
Pi 4 B (its GIC and UART addresses are QEMU virt's), so `cargo xtask bench --board raspi4b` runs
none of the above: it times Debian's default cloud kernel booting to its `Run /init as init
process` line on `-M raspi4b` with the board's real DTB, natively and in both cells of the
raspi4b layout `linux`, under plain TCG and `-icount shift=0,sleep=off`, 3 runs each (`--quick`:
1). Its figures are recorded in [benchmarks-raspi4b.md](benchmarks-raspi4b.md) (`--record --board
raspi4b` rewrites that file only, and a qemu-virt `--record` leaves it alone), its raw results in
`target/bench/report-raspi4b.json`; `--gic` is refused there (the SoC's GIC-400).

**Footprint.** Section sizes of the release ELF (`target/aarch64-unknown-none-softfloat/release/
cellvisor-qemu-virt`): text, rodata, data, bss, and the reserved heap and stacks. Stage-2 tables
are built on the host with `cellvisor::mem::stage2::Stage2` from each layout's cell memory
(`map_ram`, as the hypervisor does) and measured with `stats()`, RAM only: the cell's emulated
devices are not mapped, and the BAR windows of its PCI functions (one 1 MiB window each, mapped
at boot) are left out. SLOC counts non-blank, non-comment lines of `hypervisor/src/**/*.rs`
up to each file's `#[cfg(test)]`, without `tests.rs` files.

**Passed-through disk.** The corporate cell of layout `linux` owns QEMU's virtio-blk PCI function
at 00:02.0 (`-device virtio-blk-pci,drive=disk0,addr=0x2,disable-legacy=on,romfile=,iommu_platform=on`
on `-M virt,virtualization=on,gic-version=3,iommu=smmuv3 -global arm-smmuv3.stage=2`). cellvisor
places the function's BARs and maps them directly into the cell's stage 2, so the driver's register
accesses (queue notifications, the ISR read that acknowledges each interrupt) do not trap; only
configuration-space accesses do (the cell's ECAM, filtered by cellvisor, used at probe). Its INTx
(INTA, SPI 5 = INTID 37) is forwarded as a hardware-linked virtual interrupt, and its DMA goes
through the SMMU, which translates it with the cell's own stage-2 table (docs/smmu.md). The cell
reads the disk with `dd if=/dev/vda of=/dev/null bs=1M count=64 iflag=direct` (`--quick`: 16 MiB;
busybox dd supports O_DIRECT, so the guest page cache is bypassed and every MiB goes to the
device), five times per boot; the table shows the median and every read. busybox dd prints no
timing line, so each read is timed with the guest's monotonic clock read from `/proc/timer_list`
(`now at <ns> nsecs`) right before and after dd (MB = 10^6 bytes; the two `grep`s add a fork each,
the same natively). The native twin is the same Debian kernel with `initrd-corporate.cpio.gz` and
the corporate bootargs on `-M virt,gic-version=3,its=off -cpu max,sve=off,sme=off -smp 2 -m 768M`
with the same `-drive` and `-device` arguments (`cellvisor_tests::pci_disk_device_args`, which the
cellvisor command line's `pci_device_args` is built from). Natively Linux assigns the BARs itself
and there is no SMMU, so the device's DMA goes straight to memory (`iommu_platform=on` without an
IOMMU only has the driver accept VIRTIO_F_ACCESS_PLATFORM). `its=off` because cellvisor gives
cells no ITS, so the cell's driver falls back to INTx (`GICv3 37 Level virtioN` in
`/proc/interrupts`); with virt's ITS, native Linux would take MSI-X (`virtioN-req.M`, one vector per
queue, no ISR read), and the ratio would compare two interrupt paths instead of one device with
and without cellvisor. Both read a private copy of the corporate disk image
(`target/bench/disk.img`, 64 MiB ext2, no snapshot overlay) that is in the host page cache, so the
host disk is not measured. The cellvisor side runs both cells (personal idles at its shell, its
virtio-net function at 00:03.0 attached and idle).

**Why the throughput has no icount row.** The ratio is cellvisor's median MB/s over native's, goal
≥0.95, under plain TCG only. The icount boots make the same reads (the next table counts them) but
report no throughput: under `-icount shift=0,sleep=off` the guest clock advances with the
instructions executed and, when every vCPU is idle, jumps to the next timer deadline, while the
disk's requests are completed by QEMU's I/O threads in host time, which the guest clock does not
see. A read's guest duration then depends on whether each completion arrives before the vCPU goes
idle, that is on QEMU's scheduling, not on the device path: earlier recordings read 3.0× and 5.3×
native under icount, with one boot's reads spread from 515 to 5170 MB/s. Bytes per guest second
would be a well-defined number but no comparison of the two environments, so it is left out;
`report.json` keeps the icount reads' guest-clock rates as raw data, marked
`"mb_per_s_is_throughput": false`. Under plain TCG the guest clock and QEMU's I/O threads both run
in host time, so the ratio compares what the goal is about; the host has 2 cores for up to 4 busy
vCPUs plus QEMU's I/O thread, and its load shows in the spread (read the five reads, not only the
median).

**Passthrough interrupts.** Around the reads the bench counts the guest's interrupts
(`/proc/interrupts`: the disk's INTx line is the one of INTID 37, `virtio0` natively and `virtio1`
in the cell, whose channel device probes first; plus timer and IPI lines) and opens cellvisor's management prompt (Ctrl-A m, `cells`) before and after to read the
corporate cell's exits by reason (the exit window also holds the typed command and its console
output, i.e. a few hundred trapped UART accesses). These are counts, not times, so the icount row
is as meaningful as the TCG one (in both modes the split between `irq` and `wfi` exits depends on
timing). The disk's interrupt is injected through a hardware-linked list register, so the guest's
EOI (ICC_EOIR1_EL1, then the deactivation the HW bit forwards to the physical GIC) never traps: if
it did, every guest interrupt would add a `sysreg` exit (or a maintenance `irq` exit). The cell's
other sysreg exits are its IPIs (each ICC_SGI1R_EL1 write traps; the `IPI*` lines of
/proc/interrupts count them on the receiving vCPU), so the table shows the sysreg exits left after
subtracting the IPIs, per guest interrupt: an upper bound on traps per EOI, which is 0 when the
EOI path has no trap. The EL2 instructions of the delivery are not counted inside Linux (the guest
has no perf tool); the table's estimate is the timer op's EL2 instructions from the
micro-operations (the same path: a physical interrupt taken at EL2 once and written into a list
register with the HW bit), plus zero for the EOI. An interrupt that arrives while its vCPU is idle
in cellvisor (a trapped WFI) is taken at EL2 during that wait, so it shows in the `wfi` exits
rather than as an `irq` exit of its own; that is why irq exits are fewer than guest interrupts.
The disk's registers do not trap (its BARs are in the cell's stage 2), so the `mmio` exits are
not on the request path: they are the cell's trapped UART accesses (the typed commands and their
output) and its GIC distributor accesses, and their number does not grow with the amount read.

**Console flood.** Layout `test-guests` under plain TCG, cellvisor's console paced to a
115200-baud line with a 32-byte FIFO (`cellvisor.console_baud=115200`: QEMU's PL011 is instant). The
personal cell runs the hostile suite's `console-flood` attack (both vCPUs write to their vUART as
fast as they can for 3 s, then wait 3 s); corporate beats every 100 ms with `gaps=on`. The table
counts the victim's beats between the attack's `start` and its report, the beats missing among
them, and the gaps between consecutive beats: as the console showed them (host arrival time of each
line, so host load shows in it) and on the victim's own clock (whether its vCPU was held up). The
period is 100 ms, so a gap near 100 ms means the flood cost the victim nothing; the *no flood*
columns come from a second boot where personal powers off at once and corporate beats alone, on the
same host, so what the flood adds can be told from what host load adds. The attacker's dropped bytes
are the sum of its `…(N bytes dropped)` notes (the same count as its `cells` row).

**Channel.** Layout `linux-bench`: the `linux` cells with the default flows plus personal →
corporate port 7000 (64 KiB messages, 1,000,000 messages/s, no focus rule; the policy is still
checked on every packet), under `-icount shift=0,sleep=off` on `-smp 4`, both cells' bootargs
ending in `maxcpus=1`, so each cell runs one vCPU (personal's on CPU 0, corporate's on CPU 2; Linux
never powers on its second one). corporate runs `vsock listen 7000 --sink` (later `--echo`),
personal TCP listeners on its own 127.0.0.1 (`vsock listen … --sink --tcp`, `--echo --tcp`). From
personal's shell the guest tool (`guests/linux/vsock-tool`) sends 1 MiB to corporate's sink
(`vsock blast corporate 7000 --bytes 1048576`, three times, `--quick` once) and to its own
loopback sink (`--tcp`), then makes 2,000 (`--quick`: 200) round trips of 64 bytes against
corporate's echo (`vsock ping corporate 7000 --count 2000 --size 64`) and against its loopback
echo (`--tcp`), all in the same boot. The tool times with CLOCK_MONOTONIC, which under icount is
virtual time: one nanosecond per instruction executed by any vCPU (QEMU runs them round-robin on
one thread and one clock) and, when every vCPU is idle, a jump to the next timer deadline. The
times therefore count the instructions of both cells and of cellvisor on the path, not host
speed; a wake-up that waited for a timer would show as such a jump, far above the work. The
ratios are channel / loopback: the mean round trip's time over loopback's (above 1: the channel
is slower) and the transfer's MB/s (10^6 bytes per guest second, median transfer) over
loopback's (below 1: the channel is slower). Loopback runs client and server on personal's one
vCPU through its TCP stack; the channel runs the client on personal's vCPU and the server on
corporate's, each packet copied by cellvisor at EL2 from the sender's RAM into the receiver's
rx buffers (docs/channel.md).

**The channel's EL2 work.** cellvisor reads the counter at the entry and the exit of the channel's
pump (`pump` in `hypervisor/src/core/channel.rs`, run on a trapped write to a cell's vsock
registers, and on a stop or the kill switch), and the `channel` command prints the ticks summed
over every pump divided by the packets moved: `EL2 work: N packets moved, T counter ticks per
packet`. A *packet moved* is a tx descriptor chain taken from a sender's queue or an rx buffer
filled for a receiver, so a data packet crossing the channel counts twice, and cellvisor's own
packets (resets, credit answers) once. The bench reads the line before and after the channel's
transfers and before and after its round trips and divides the differences; the printed ticks per
packet are rounded down, so a window's figure is known to ± (packets at the later reading) /
(packets in the window), shown after it. The windows also hold corporate's badge to personal every
5 s (the cells' init example, a few packets per badge) and the connection set-up of each transfer.
Inside the ticks are the pump's EL2 instructions: the policy checks, the copies from the sender's
RAM into cellvisor's heap and on into the receiver's rx buffers, the used-ring updates, and any
spinning on the switch's lock while the other CPU pumps. Outside are the trap's entry and exit and
the MMIO decode around the register write, and the virtual interrupt for the receiver (its kick
comes after the second counter read). Unlike the display and time-sharing figures, which run on a
one-CPU machine where a tick is exactly an EL2 instruction of that CPU, this machine has two
running vCPUs, and QEMU's round-robin may hand its thread to the other cell's vCPU in the middle
of a pump, whose instructions are then counted too. During the round trips the other cell waits
for the packet in WFI (a halted vCPU executes nothing), so that figure is the EL2 instructions per
packet up to rare switches; during the transfers both cells are busy and the figure is an upper
bound. "Per round trip" and "per MiB" are a window's ticks over its round trips or MiB.

**The transfer under icount and cellvisor's spin locks.** cellvisor's locks (`spin::Mutex`) wait
with `core::hint::spin_loop`, an ISB on AArch64, and QEMU's round-robin hands its thread to the
next vCPU only at the end of a time slice, at a halt or at a YIELD. So when QEMU deschedules a vCPU
in the middle of a pump, holding the switch's lock or a device's, and the other cell's vCPU traps
into the channel, an ISB-spinning waiter spins for the rest of its time slice, though on hardware
(every vCPU on its own CPU, EL2 never preempted) it would wait at most one pump. In December 2026
that showed as 377 M ticks in a 282 ms window of an 8 MiB transfer. The channel's locks therefore
wait with YIELD (`arch::RelaxedMutex`, `arch::Relax`): the waiter gives QEMU's thread back to the
holder at once, which moved the same 8 MiB in half the time (window ticks per packet 54,485 before,
14,143 after) and the 1 MiB transfer of `--quick` from 37.9 ms to 12.1 ms; the round trips did not
change. cellvisor's other locks still spin with ISB. The ticks a waiting pump counts while the
holder runs are the holder's instructions counted once more, which is why the transfers' figure is
an upper bound; the round trips, one vCPU busy at a time, do not have it.

Raw results: `target/bench/report.json`, chart `target/bench/chart.svg`, every QEMU transcript in
`target/bench/*.log`.
"#;

/// The whole of docs/benchmarks.md: header, `tables` and [`METHOD`].
pub(super) fn record_markdown(report: &Report, tables: &str) -> String {
    format!(
        "# Benchmarks: cellvisor against native QEMU\n\n\
         Recorded by `{}` (rewritten by `cargo xtask bench --record`; do not edit the figures by hand).\n\n\
         - QEMU {}\n- host: `{}`, {} CPUs\n- reproduce: `cargo xtask bench --record` (a few minutes on 2 cores; `--quick` for a short run)\n\
         - raspi4b (Linux boot on QEMU's Raspberry Pi 4 B, native vs two cells): [benchmarks-raspi4b.md](benchmarks-raspi4b.md), `cargo xtask bench --board raspi4b --record`\n\n\
         ![cellvisor vs native, ns per operation](benchmarks.svg)\n\n## Figures\n{tables}\n{METHOD}",
        report.command, report.qemu_version, report.host, report.cpus
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::bench::parse::{MicroRun, parse_micro};

    /// A report with no figures but those `micro` and `micro_gicv2` give.
    fn report(
        micro: BTreeMap<(&'static str, &'static str), MicroRun>,
        micro_gicv2: BTreeMap<(&'static str, &'static str), MicroRun>,
    ) -> Report {
        Report {
            micro,
            micro_gicv2,
            ..Report::new(
                "10.0.2".to_owned(),
                "host".to_owned(),
                "2".to_owned(),
                "cargo xtask bench --quick".to_owned(),
                4096,
            )
        }
    }

    /// icount runs of the timer and IPI ops: cellvisor with `timer_el2` and `send` EL2
    /// instructions, and native.
    fn icount_runs(timer_el2: u32, send: u32) -> BTreeMap<(&'static str, &'static str), MicroRun> {
        let cellvisor = format!(
            "[bench] bench: op=timer iterations=4096 ticks=1 ns_per_op={}.00 el2_instr_per_op={timer_el2}.00\n\
             [bench] bench: op=ipi iterations=4096 ticks=1 ns_per_op=3000.00 el2_instr_per_op=849.00 el2_send_median={send} el2_receive_median=225\n",
            timer_el2 + 4
        );
        let native = "bench: op=timer iterations=4096 ticks=1 ns_per_op=4.00 el2_instr_per_op=-\n\
                      bench: op=ipi iterations=4096 ticks=1 ns_per_op=300.00 el2_instr_per_op=-\n";
        BTreeMap::from([
            (("icount", "cellvisor"), parse_micro(&cellvisor)),
            (("icount", "native"), parse_micro(native)),
        ])
    }

    #[test]
    fn the_recorded_file_links_the_raspi4b_figures_and_ends_with_the_method() {
        let recorded = record_markdown(&report(BTreeMap::new(), BTreeMap::new()), "");
        assert!(
            recorded.contains("[benchmarks-raspi4b.md](benchmarks-raspi4b.md)"),
            "{recorded}"
        );
        // docs/benchmarks.md is this function's output: its method is this file's.
        let path = crate::util::workspace_root().join("docs/benchmarks.md");
        let docs = std::fs::read_to_string(&path).expect("docs/benchmarks.md");
        assert!(
            docs.ends_with(METHOD),
            "docs/benchmarks.md's method differs from METHOD"
        );
        assert!(docs.contains("[benchmarks-raspi4b.md](benchmarks-raspi4b.md)"));
    }

    #[test]
    fn the_channel_table_shows_the_figures_ratios_and_el2_work_or_the_note() {
        use crate::bench::channel::{Blast, ChannelFigures, Ping, Window};
        let mut report = report(BTreeMap::new(), BTreeMap::new());
        report.channel_note = Some("Channel run incomplete: no tool".to_owned());
        let tables = report.tables();
        assert!(tables.contains("### Channel: "), "{tables}");
        assert!(
            tables.contains("Channel run incomplete: no tool"),
            "{tables}"
        );
        let ping = |transport: &str, avg_ns| Ping {
            transport: transport.to_owned(),
            count: 200,
            size: 64,
            total_ns: avg_ns * 200,
            avg_ns,
            min_ns: avg_ns / 2,
            max_ns: avg_ns * 2,
        };
        let blast = |transport: &str, ns| Blast {
            transport: transport.to_owned(),
            bytes: 1 << 20,
            ns,
        };
        report.channel = Some(ChannelFigures {
            ping: ping("vsock", 60_000),
            tcp_ping: ping("tcp", 20_000),
            blasts: vec![blast("vsock", 4_194_304)],
            tcp_blasts: vec![blast("tcp", 1_048_576)],
            blast_el2: Some(Window {
                packets: 600,
                ticks_per_packet: 5000.0,
                error: 0.4,
            }),
            ping_el2: Some(Window {
                packets: 1000,
                ticks_per_packet: 3000.0,
                error: 1.6,
            }),
        });
        let tables = report.tables();
        assert!(
            tables.contains("| round trip of 64 bytes, mean (200 round trips) | 60000 ns | 20000 ns | 3.00 (time) |"),
            "{tables}"
        );
        assert!(
            tables.contains("| 1 MiB transfer to a sink, median of 1 | 4.194 ms, 250.0 MB/s | 1.049 ms, 1000.0 MB/s | 0.250 (throughput) |"),
            "{tables}"
        );
        assert!(
            tables.contains(
                "| during the round trips (the other cell idle: EL2 instructions) | 1000 | 3000 ± 2 | 15000 ticks per round trip |"
            ),
            "{tables}"
        );
        assert!(
            tables.contains(
                "| during the 1 MiB transfers (both cells busy: an upper bound) | 600 | 5000 ± 1 | 3000000 ticks per MiB |"
            ),
            "{tables}"
        );
        let json = report.json();
        assert!(json.contains("\"latency_ratio\": 3"), "{json}");
        assert!(
            json.contains("\"channel_note\": \"Channel run incomplete: no tool\""),
            "{json}"
        );
    }

    #[test]
    fn without_gicv2_the_tables_name_no_gic() {
        let tables = report(icount_runs(148, 400), BTreeMap::new()).tables();
        assert!(tables.contains(
            "| op | what | cellvisor ns/op | native ns/op | ratio | EL2 instructions/op |\n|---|---|---:|---:|---:|---:|\n"
        ));
        assert!(tables.contains(
            "| timer | virtual timer: deadline to handler | 152.0 | 4.0 | 38.0 | 148 |\n"
        ));
        assert!(tables.contains("| per interrupt (timer) | 148 | ≤150 | ~190 | meets goal |\n"));
        assert!(!tables.contains("GICv"), "{tables}");
        let json = report(icount_runs(148, 400), BTreeMap::new()).json();
        assert!(json.contains("\"micro_gicv2\": [\n\n  ]"), "{json}");
        assert!(json.contains("\"el2_goals_gicv2\": [\n\n  ]"), "{json}");
    }

    #[test]
    fn gicv2_figures_stand_beside_the_gicv3_ones() {
        let report = report(icount_runs(148, 400), icount_runs(151, 624));
        let tables = report.tables();
        assert!(tables.contains(
            "| op | what | GICv3 cellvisor ns/op | GICv3 native ns/op | GICv3 ratio | GICv3 EL2 instructions/op | GICv2 cellvisor ns/op | GICv2 native ns/op | GICv2 ratio | GICv2 EL2 instructions/op |\n\
             |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        ));
        assert!(tables.contains(
            "| timer | virtual timer: deadline to handler | 152.0 | 4.0 | 38.0 | 148 | 155.0 | 4.0 | 38.8 | 151 |\n"
        ));
        assert!(tables.contains(
            "| ipi | IPI round trip to the sibling vCPU (2 IPIs) | 3000.0 | 300.0 | 10.0 | send 400 + receive 225 (mean per round trip 849) | 3000.0 | 300.0 | 10.0 | send 624 + receive 225 (mean per round trip 849) |\n"
        ));
        // An op neither GIC measured is a row of dashes on both.
        assert!(
            tables
                .contains("| hvc | null hypercall round trip | - | - | - | - | - | - | - | - |\n")
        );
        // The GICv3 goals keep their figures; the GICv2 timer has its own row.
        assert!(tables.contains("| per interrupt (timer) | 148 | ≤150 | ~190 | meets goal |\n"));
        assert!(tables.contains("| IPI send | 400 | ≤400 | ~520 | meets goal |\n"));
        assert!(
            tables.contains("| per interrupt (timer), GICv2 | 151 | ≤150 | ~190 | over goal |\n")
        );
        let json = report.json();
        assert!(json.contains(
            "\"el2_goals_gicv2\": [\n    {\"path\": \"per interrupt (timer), GICv2\", \"measured\": 151, \"goal\": 150, \"anchor\": 190}\n  ]"
        ), "{json}");
        assert!(json.contains(
            "\"micro_gicv2\": [\n    {\"mode\": \"icount\", \"env\": \"cellvisor\", \"op\": \"ipi\", "
        ), "{json}");
    }
}
