//! `cargo xtask bench --board raspi4b`: Linux boot on QEMU's Raspberry Pi 4 B, natively and in
//! both cells of the board's layout `linux`, to the kernel's `Run /init as init process` line.
//!
//! The bench guest cannot run on this board (its GIC and UART addresses are QEMU virt's), so
//! what is compared is the one thing both sides do on the same machine: the same Debian kernel
//! booting to its init. Natively the kernel's PL011 driver never probes on the real DTB (the
//! UART's clocks come from the Pi firmware driver the cloud kernel lacks), so the initramfs's
//! `cellvisor-ready:` banner never appears there; the kernel's `Run /init` line, printed through
//! earlycon, is the common milestone.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use cellvisor_tests::{Artifacts, QemuBoard};

use crate::fail;
use crate::images::{self, BuildOptions};
use crate::prereq::{self, Qemu};
use crate::util::{self, Context, Result};

use super::parse::init_line;
use super::qemu::{self, LinuxSetup, Mode};
use super::report::{json_number, json_string};
use super::stats::{ratio, stats};
use super::{BenchOptions, bench_dir, host_description};

/// The board's layout the cells boot.
const LAYOUT: &str = "linux";
/// The cells of [`LAYOUT`], whose `Run /init` lines the cellvisor runs wait for.
const CELLS: [&str; 2] = ["personal", "corporate"];
/// What each run is, in the order they alternate.
const ENVIRONMENTS: [&str; 2] = ["native", "two cells"];
/// The time modes, in the order they run.
const MODES: [Mode; 2] = [Mode::Icount, Mode::Tcg];
/// How long one boot may take to reach `Run /init` (everywhere it ran, well under a minute).
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);

/// One boot to `Run /init`: by console (`native`, or the cell's name), the host seconds from
/// QEMU's start at which the line arrived and the kernel's own timestamp on it.
#[derive(Clone, Debug, Default, PartialEq)]
pub(super) struct InitBoot {
    /// Host seconds to each console's `Run /init` line.
    pub(super) host: BTreeMap<String, f64>,
    /// The kernel's printk timestamp on that line, where it has one.
    pub(super) kernel: BTreeMap<String, f64>,
}

impl InitBoot {
    /// The later host time of `consoles`' `Run /init` lines, if every one of them printed it.
    fn last_of(&self, consoles: &[&str]) -> Option<f64> {
        consoles
            .iter()
            .map(|console| self.host.get(*console).copied())
            .try_fold(0.0_f64, |later, seconds| Some(later.max(seconds?)))
    }
}

/// Records the `Run /init` line `line` (arrived `seconds` after QEMU's start) in `boot`, keyed by
/// the cell that printed it or `native`; the first line of each console counts.
pub(super) fn record_init(boot: &mut InitBoot, seconds: f64, line: &str) {
    let Some(found) = init_line(line) else {
        return;
    };
    let console = found.cell.unwrap_or("native").to_owned();
    if boot.host.contains_key(&console) {
        return;
    }
    if let Some(kernel) = found.kernel_seconds {
        boot.kernel.insert(console.clone(), kernel);
    }
    boot.host.insert(console, seconds);
}

/// The consoles whose `Run /init` ends a run of `environment`.
fn consoles(environment: &str) -> &'static [&'static str] {
    if environment == "native" {
        &["native"]
    } else {
        &CELLS
    }
}

/// Everything `cargo xtask bench --board raspi4b` measured.
pub(super) struct BoardReport {
    /// The board's name.
    pub(super) board: &'static str,
    /// The QEMU version.
    pub(super) qemu_version: String,
    /// `uname -a`.
    pub(super) host: String,
    /// Host CPUs available.
    pub(super) cpus: String,
    /// The command line that made the report.
    pub(super) command: String,
    /// The host's load averages (1, 5, 15 minutes, from /proc/loadavg) as the bench started.
    pub(super) load: String,
    /// Boots by (mode, environment) that reached every `Run /init` they wait for.
    pub(super) boots: BTreeMap<(&'static str, &'static str), Vec<InitBoot>>,
    /// What went wrong, one line each (boots that did not reach `Run /init`).
    pub(super) notes: Vec<String>,
}

/// `(median, min, max)` as `median (min–max)`, `-` when missing.
fn show(values: Option<(f64, f64, f64)>) -> String {
    match values {
        Some((median, min, max)) => format!("{median:.2} ({min:.2}–{max:.2})"),
        None => "-".to_owned(),
    }
}

/// `value` with 3 decimals, `-` when missing.
fn show_ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.3}"))
}

impl BoardReport {
    /// The boots of `environment` under `mode`.
    fn runs(&self, mode: &str, environment: &str) -> &[InitBoot] {
        self.boots
            .iter()
            .find(|((m, e), _)| *m == mode && *e == environment)
            .map_or(&[], |(_, boots)| boots.as_slice())
    }

    /// Median, min and max of `pick` over the boots of `environment` under `mode` that have it.
    fn stats_of(
        &self,
        mode: &str,
        environment: &str,
        pick: impl Fn(&InitBoot) -> Option<f64>,
    ) -> Option<(f64, f64, f64)> {
        let values: Vec<f64> = self
            .runs(mode, environment)
            .iter()
            .filter_map(pick)
            .collect();
        stats(&values)
    }

    /// The markdown tables (printed after the run, and the figures of the recorded file).
    pub(super) fn tables(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n### {}: Linux boot, native vs two cells (host s from QEMU's start to `Run /init as init process`; median (min–max))\n",
            self.board
        );
        for note in &self.notes {
            let _ = writeln!(out, "{note}\n");
        }
        let _ = writeln!(
            out,
            "| mode | runs | native | cellvisor: personal | cellvisor: corporate | cellvisor: later of both | ratio personal / native | ratio later / native |"
        );
        let _ = writeln!(out, "|---|---:|---|---|---|---|---:|---:|");
        for mode in MODES {
            let mode = mode.name();
            let runs = self
                .runs(mode, "native")
                .len()
                .max(self.runs(mode, "two cells").len());
            if runs == 0 {
                continue;
            }
            let native = self.stats_of(mode, "native", |boot| boot.last_of(&["native"]));
            let personal =
                self.stats_of(mode, "two cells", |boot| boot.host.get(CELLS[0]).copied());
            let corporate =
                self.stats_of(mode, "two cells", |boot| boot.host.get(CELLS[1]).copied());
            let later = self.stats_of(mode, "two cells", |boot| boot.last_of(&CELLS));
            let median = |values: Option<(f64, f64, f64)>| values.map(|(median, _, _)| median);
            let _ = writeln!(
                out,
                "| {mode} | {runs} | {} | {} | {} | {} | {} | {} |",
                show(native),
                show(personal),
                show(corporate),
                show(later),
                show_ratio(ratio(median(personal), median(native))),
                show_ratio(ratio(median(later), median(native))),
            );
        }
        let _ = writeln!(
            out,
            "\nThe kernel's own timestamp on its `Run /init` line (guest s since the kernel's clock started; median (min–max)):\n"
        );
        let _ = writeln!(
            out,
            "| mode | native | cellvisor: personal | cellvisor: corporate | ratio personal / native |"
        );
        let _ = writeln!(out, "|---|---|---|---|---:|");
        for mode in MODES {
            let mode = mode.name();
            if self.runs(mode, "native").is_empty() && self.runs(mode, "two cells").is_empty() {
                continue;
            }
            let native = self.stats_of(mode, "native", |boot| boot.kernel.get("native").copied());
            let personal =
                self.stats_of(mode, "two cells", |boot| boot.kernel.get(CELLS[0]).copied());
            let corporate =
                self.stats_of(mode, "two cells", |boot| boot.kernel.get(CELLS[1]).copied());
            let _ = writeln!(
                out,
                "| {mode} | {} | {} | {} | {} |",
                show(native),
                show(personal),
                show(corporate),
                show_ratio(ratio(
                    personal.map(|(median, _, _)| median),
                    native.map(|(median, _, _)| median)
                )),
            );
        }
        out
    }

    /// The JSON report (target/bench/report-<board>.json).
    pub(super) fn json(&self) -> String {
        let mut out = String::from("{\n");
        let _ = writeln!(out, "  \"board\": {},", json_string(self.board));
        let _ = writeln!(
            out,
            "  \"qemu_version\": {},",
            json_string(&self.qemu_version)
        );
        let _ = writeln!(out, "  \"host\": {},", json_string(&self.host));
        let _ = writeln!(out, "  \"cpus\": {},", json_string(&self.cpus));
        let _ = writeln!(out, "  \"command\": {},", json_string(&self.command));
        let _ = writeln!(out, "  \"load_average\": {},", json_string(&self.load));
        let _ = writeln!(
            out,
            "  \"milestone\": {},",
            json_string(super::parse::INIT_MILESTONE)
        );
        out.push_str("  \"linux_boot_to_init\": [\n");
        let mut items = Vec::new();
        for ((mode, environment), boots) in &self.boots {
            for boot in boots {
                let map = |values: &BTreeMap<String, f64>| {
                    let pairs: Vec<String> = values
                        .iter()
                        .map(|(console, seconds)| {
                            format!("{}: {}", json_string(console), json_number(Some(*seconds)))
                        })
                        .collect();
                    format!("{{{}}}", pairs.join(", "))
                };
                items.push(format!(
                    "    {{\"mode\": {}, \"env\": {}, \"host_seconds\": {}, \"host_seconds_last\": {}, \"kernel_seconds\": {}}}",
                    json_string(mode),
                    json_string(environment),
                    map(&boot.host),
                    json_number(boot.last_of(consoles(environment))),
                    map(&boot.kernel)
                ));
            }
        }
        out.push_str(&items.join(",\n"));
        out.push_str("\n  ],\n  \"notes\": [");
        let notes: Vec<String> = self.notes.iter().map(|note| json_string(note)).collect();
        out.push_str(&notes.join(", "));
        out.push_str("]\n}\n");
        out
    }

    /// The whole of docs/benchmarks-<board>.md: header, the tables and [`METHOD`].
    pub(super) fn record_markdown(&self, tables: &str) -> String {
        format!(
            "# Benchmarks on {board}: Linux boot, native vs two cells\n\n\
             Recorded by `{}` (rewritten by `cargo xtask bench --board {board} --record`; do not edit the figures by hand). \
             The qemu-virt figures are in [benchmarks.md](benchmarks.md).\n\n\
             - QEMU {}\n- host: `{}`, {} CPUs, load average {} as the bench started\n\n## Figures\n{tables}\n{METHOD}",
            self.command,
            self.qemu_version,
            self.host,
            self.cpus,
            self.load,
            board = self.board,
        )
    }
}

/// The method section of docs/benchmarks-raspi4b.md (kept here so `--record` rewrites the whole
/// file).
const METHOD: &str = r#"## Method

**What is compared.** The bench guest cannot run on QEMU's `raspi4b` (its GIC and UART addresses
are QEMU virt's), so this bench compares what both sides do on the same machine: Debian's default
cloud kernel (the one every Linux cell boots) booting to its init. Natively it runs directly on
`qemu-system-aarch64 -M raspi4b -dtb bcm2711-rpi-4-b.dtb -kernel Image -initrd
initrd-personal.cpio.gz -append "console=ttyAMA0 earlycon=pl011,0xfe201000 rdinit=/init"`
(Debian's unmodified DTB, the machine's own 4 Cortex-A72 and 2 GiB; the bootargs are the raspi4b
`linux` cells'). Under cellvisor the release image boots the board's layout `linux` on the same
machine and DTB, as `cargo xtask run --board raspi4b` does: personal (CPUs 0-1) and corporate
(CPUs 2-3), 352 MiB each, the same kernel, each with its own initramfs. Runs alternate (native,
two cells, native, …), 3 of each per mode (`--quick`: 1).

**Not the same guest machine.** Natively the kernel has the whole board: 4 CPUs and the 960 MiB
of RAM the DT gives the ARM, against 2 CPUs and 352 MiB per cell. Bringing up twice the CPUs and
initialising almost three times the memory costs the native kernel time a cell does not spend, so
under plain TCG, where both cells run in parallel, the ratio understates cellvisor's cost and can
fall below 1: that is the smaller machine, not cellvisor making Linux faster. On this 2-core host
the TCG ratio (later of both / native) has ranged from 0.88 to 1.39 between runs, with the
host's load: read it with the load average in the header, which is taken as the bench starts.
Under icount the kernel timestamps repeat exactly, but QEMU's one thread emulates both cells'
kernels, so the host seconds and each cell's clock grow with both.
The figures answer "how much later is each cell at its init than the same kernel alone on the
board", with cellvisor's own boot (its image, DT parsing, loading two 27 MB kernels and their
initramfs, releasing the CPUs from the spin table) included in the host seconds.

**The milestone.** Each run is timed in host seconds from QEMU's start to the kernel's `Run /init
as init process` line (under cellvisor each cell's, prefixed `[personal] ` / `[corporate] ` on
the console, and the later of the two). It is the last line both sides print: natively the
kernel's PL011 driver never probes on the real DTB (the UART's clocks come from the Raspberry Pi
firmware driver, which the cloud kernel lacks), so natively only earlycon's output is seen and
the initramfs's `cellvisor-ready:` banner never appears; in a cell the PL011 is cellvisor's
emulated one and the banner follows. The kernel's own printk timestamp on that line (its clock
since it started, so cellvisor's own boot is not in it) is shown beside.

**Time modes.** Plain TCG (host clock, vCPUs in parallel host threads: this host has 2 cores for
the machine's 4 CPUs) and `-icount shift=0,sleep=off` (one instruction is one nanosecond of
virtual time, all CPUs round-robin on one thread). Under icount the host seconds still measure how
long QEMU takes; the kernel timestamps are then deterministic, but a cell's clock also advances
with the other cell's instructions, as on qemu-virt (benchmarks.md, Linux boot).

Raw results: `target/bench/report-raspi4b.json`, every QEMU transcript in
`target/bench/raspi4b-*.log` (each line with its host time).
"#;

/// The host's 1, 5 and 15 minute load averages (`-` where /proc/loadavg cannot be read): under
/// TCG another busy program on the host shows in every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|load| !load.is_empty())
        .unwrap_or_else(|| "-".to_owned())
}

/// `cargo xtask bench --board NAME` on a board other than qemu-virt.
pub(super) fn bench_board(options: &BenchOptions) -> Result<()> {
    let target = options.board;
    if target.qemu_board("bench")? != QemuBoard::Raspi4b {
        fail!("board `{}` has no bench", target.name);
    }
    let started = Instant::now();
    let qemu = prereq::qemu()?;
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).context(|| format!("cannot create {}", dir.display()))?;
    eprintln!(
        "Building the hypervisor image of board {} (release) and its layout `{LAYOUT}`",
        target.name
    );
    let build = BuildOptions {
        release: true,
        layouts: vec![LAYOUT.to_owned()],
        board: Some(target.name.to_owned()),
    };
    if let Some(failure) = images::build_board(target, &build).into_iter().next() {
        fail!("{failure}");
    }
    let layout = images::board_layout(target, LAYOUT)?;
    let Some(personal) = layout.cells.first() else {
        fail!("layout {LAYOUT} of board {} has no cells", target.name);
    };
    // The same kernel the cells boot, with the personal cell's initramfs and bootargs.
    let guest = crate::debian::linux_guest(&crate::debian::DEFAULT_KERNEL)?;
    let setup = LinuxSetup {
        kernel: guest.kernel_image.clone(),
        initrd: util::out_dir().join("initrd-personal.cpio.gz"),
        bootargs: personal.bootargs,
    };
    let dtb = target.out_dir().join(cellvisor_tests::RASPI4B_DTB);
    let artifacts = Artifacts {
        out_dir: util::out_dir(),
        qemu: qemu.path.clone(),
    };
    let runs = if options.quick { 1 } else { 3 };
    let (host, cpus) = host_description();
    let mut command = format!("cargo xtask bench --board {}", target.name);
    if options.quick {
        command.push_str(" --quick");
    }
    let mut report = BoardReport {
        board: target.name,
        qemu_version: qemu.version.clone(),
        host,
        cpus,
        command,
        load: load_average(),
        boots: BTreeMap::new(),
        notes: Vec::new(),
    };
    eprintln!(
        "Linux boot to `Run /init` on {}: native / two cells alternating, {runs} run(s) each per mode (host load average {})",
        target.name, report.load
    );
    let machines = Machines {
        qemu: &qemu,
        artifacts: &artifacts,
        setup: &setup,
        dtb: &dtb,
        board: target.name,
    };
    for mode in MODES {
        for round in 0..runs {
            for environment in ENVIRONMENTS {
                match boot_to_init(&machines, environment, mode, round) {
                    Ok(boot) => report
                        .boots
                        .entry((mode.name(), environment))
                        .or_default()
                        .push(boot),
                    Err(error) => {
                        eprintln!("warning: {error}");
                        report.notes.push(error.to_string());
                    }
                }
            }
        }
    }
    let tables = report.tables();
    println!("{tables}");
    let json_path = dir.join(format!("report-{}.json", target.name));
    std::fs::write(&json_path, report.json())
        .context(|| format!("cannot write {}", json_path.display()))?;
    println!(
        "Report: {} (transcripts in {}); {:.0} s in all",
        util::pretty(&json_path),
        util::pretty(&dir),
        started.elapsed().as_secs_f64()
    );
    if options.record {
        let name = format!("benchmarks-{}.md", target.name);
        let path = util::workspace_root().join("docs").join(&name);
        std::fs::write(&path, report.record_markdown(&tables))
            .context(|| format!("cannot write docs/{name}"))?;
        println!("Recorded docs/{name}");
    }
    Ok(())
}

/// What every boot of a board bench runs.
struct Machines<'a> {
    /// The QEMU.
    qemu: &'a Qemu,
    /// The board's built image, bundle and DTB (under cellvisor).
    artifacts: &'a Artifacts,
    /// The kernel, initramfs and bootargs of the native boot.
    setup: &'a LinuxSetup,
    /// The board's real DTB (native boot).
    dtb: &'a Path,
    /// The board's name, for log names and messages.
    board: &'a str,
}

/// Boots `environment` (one of [`ENVIRONMENTS`]) in `mode` to every `Run /init` it waits for;
/// the transcript goes to `target/bench/<board>-<environment>-<mode>-<round>.log`.
fn boot_to_init(
    machines: &Machines<'_>,
    environment: &'static str,
    mode: Mode,
    round: usize,
) -> Result<InitBoot> {
    let Machines {
        qemu,
        artifacts,
        setup,
        dtb,
        board,
    } = *machines;
    let command = if environment == "native" {
        qemu::raspi4b_native_linux_command(qemu, dtb, setup, mode)
    } else {
        qemu::raspi4b_cellvisor_command(qemu, artifacts, LAYOUT, mode)
    };
    let log = bench_dir().join(format!(
        "{board}-{}-{}-{round}.log",
        environment.replace(' ', "-"),
        mode.name()
    ));
    let wanted = consoles(environment);
    let mut boot = InitBoot::default();
    let reached = qemu::run_until(command, BOOT_TIMEOUT, &log, |seconds, line| {
        record_init(&mut boot, seconds, line);
        boot.last_of(wanted).is_some()
    })?;
    if !reached {
        let missing: Vec<&str> = wanted
            .iter()
            .copied()
            .filter(|console| !boot.host.contains_key(*console))
            .collect();
        fail!(
            "{board} {environment} ({}) run {}: no `Run /init` from {} (see {})",
            mode.name(),
            round + 1,
            missing.join(", "),
            util::pretty(&log)
        );
    }
    let times: Vec<String> = wanted
        .iter()
        .map(|console| {
            let host = boot.host.get(*console).copied().unwrap_or(f64::NAN);
            match boot.kernel.get(*console) {
                Some(kernel) => format!("{console} {host:.2} s host (kernel {kernel:.2} s)"),
                None => format!("{console} {host:.2} s host"),
            }
        })
        .collect();
    eprintln!(
        "  {board} Linux {environment:<9} {:<6} run {}: `Run /init` at {}",
        mode.name(),
        round + 1,
        times.join(", ")
    );
    Ok(boot)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cellvisor transcript's lines (as `run_until` hands them over) with both cells' milestones.
    const CELLS_TRANSCRIPT: &str = "\
cellvisor: cpu0 INFO  cell personal: entering vCPU 0 at counter 1 (54000000 Hz)
[personal] [    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]
[corporate] [    0.000000] Booting Linux on physical CPU 0x0000000002 [0x410fd083]
[personal] [    2.100000] Run /init as init process
[personal] [    2.100100]   with arguments:
[personal] cellvisor-ready: personal uptime=2.40
[corporate] [    2.500000] Run /init as init process
";

    #[test]
    fn a_two_cell_boot_ends_at_the_later_run_init_of_both_cells() {
        let mut boot = InitBoot::default();
        let mut ended_at = None;
        for (index, line) in CELLS_TRANSCRIPT.lines().enumerate() {
            record_init(&mut boot, index as f64, line);
            if ended_at.is_none() && boot.last_of(consoles("two cells")).is_some() {
                ended_at = Some(index);
            }
        }
        assert_eq!(ended_at, Some(6));
        assert_eq!(boot.host["personal"], 3.0);
        assert_eq!(boot.host["corporate"], 6.0);
        assert_eq!(boot.last_of(&CELLS), Some(6.0));
        assert_eq!(boot.kernel["corporate"], 2.5);
        assert!(!boot.host.contains_key("native"));
        // A native boot waits for the unprefixed line, which a cell transcript does not have.
        assert_eq!(boot.last_of(consoles("native")), None);
    }

    #[test]
    fn a_native_boot_ends_at_its_unprefixed_run_init() {
        let mut boot = InitBoot::default();
        record_init(
            &mut boot,
            0.5,
            "[    0.000000] Booting Linux on physical CPU 0x0000000000",
        );
        assert_eq!(boot.last_of(consoles("native")), None);
        record_init(&mut boot, 4.25, "[    3.200000] Run /init as init process");
        // Only the first milestone of a console counts.
        record_init(&mut boot, 9.0, "[    8.000000] Run /init as init process");
        assert_eq!(boot.last_of(consoles("native")), Some(4.25));
        assert_eq!(boot.kernel["native"], 3.2);
    }

    #[test]
    fn the_tables_give_medians_and_ratios_to_native() {
        let native = |host: f64| InitBoot {
            host: BTreeMap::from([("native".to_owned(), host)]),
            kernel: BTreeMap::from([("native".to_owned(), 2.0)]),
        };
        let cells = |personal: f64, corporate: f64| InitBoot {
            host: BTreeMap::from([
                ("personal".to_owned(), personal),
                ("corporate".to_owned(), corporate),
            ]),
            kernel: BTreeMap::from([("personal".to_owned(), 3.0), ("corporate".to_owned(), 3.0)]),
        };
        let report = BoardReport {
            board: "raspi4b",
            qemu_version: "10.0.2".to_owned(),
            host: "host".to_owned(),
            cpus: "2".to_owned(),
            command: "cargo xtask bench --board raspi4b".to_owned(),
            load: "0.50 0.40 0.30".to_owned(),
            boots: BTreeMap::from([
                (
                    ("tcg", "native"),
                    vec![native(4.0), native(5.0), native(6.0)],
                ),
                (
                    ("tcg", "two cells"),
                    vec![cells(8.0, 9.0), cells(7.0, 11.0), cells(9.0, 10.0)],
                ),
            ]),
            notes: vec!["raspi4b native (icount) run 1: no `Run /init` from native".to_owned()],
        };
        let tables = report.tables();
        assert!(tables.contains(
            "| tcg | 3 | 5.00 (4.00–6.00) | 8.00 (7.00–9.00) | 10.00 (9.00–11.00) | 10.00 (9.00–11.00) | 1.600 | 2.000 |\n"
        ), "{tables}");
        assert!(
            tables.contains(
                "| tcg | 2.00 (2.00–2.00) | 3.00 (3.00–3.00) | 3.00 (3.00–3.00) | 1.500 |\n"
            ),
            "{tables}"
        );
        // No icount boot made it: no icount rows, and the note says why.
        assert!(!tables.contains("| icount |"), "{tables}");
        assert!(tables.contains("no `Run /init` from native"), "{tables}");
        let json = report.json();
        assert!(json.contains(
            "{\"mode\": \"tcg\", \"env\": \"two cells\", \"host_seconds\": {\"corporate\": 9, \"personal\": 8}, \"host_seconds_last\": 9, \"kernel_seconds\": {\"corporate\": 3, \"personal\": 3}}"
        ), "{json}");
        let recorded = report.record_markdown(&tables);
        assert!(recorded.starts_with("# Benchmarks on raspi4b: Linux boot, native vs two cells\n"));
        assert!(recorded.contains("[benchmarks.md](benchmarks.md)"));
        assert!(recorded.contains(", 2 CPUs, load average 0.50 0.40 0.30 as the bench started\n"));
        assert!(recorded.ends_with(METHOD));
    }
}
