//! `cargo xtask bench`: cellvisor measured against native QEMU, side by side (see docs/benchmarks.md).
//!
//! Micro-operations come from the bench guest (guests/bench-guest), run under cellvisor (layout
//! `bench`) and natively at EL1 on the same QEMU CPU model, each under `-icount shift=0,sleep=off`
//! (deterministic) and under plain TCG, on GICv3 and, with `--gic 2`, also on GICv2 (GIC-400;
//! natively on the same GIC model). EL2 cost is read by the guest from QEMU's PMU: event
//! counter 0 counts instructions retired (exact under icount) filtered to EL2 only (PMEVTYPER0
//! with P, U and NSH set). Linux boot alternates native / one cell / two cells. Footprint comes
//! from the hypervisor ELF, the host-built stage-2 tables and the source tree.
//!
//! On another board (`--board raspi4b`) the bench guest cannot run (its GIC and UART addresses
//! are virt's), so `board` times Linux boot there instead, natively and in two cells.
//!
//! This module holds the options and the orchestration; `qemu` builds and runs the QEMU commands,
//! `parse` reads the transcripts, `disk` drives the passed-through disk session, `console` the
//! console flood (the victim's heartbeat gap while the other cell floods), `channel` the channel
//! between the Linux cells against TCP loopback, `footprint`
//! measures the image, `stats` reduces repeated runs, `report` holds the figures and writes the
//! JSON, `markdown` and `svg` render them.
mod board;
mod channel;
mod console;
mod disk;
mod display;
mod footprint;
mod markdown;
mod parse;
mod qemu;
mod report;
mod sharing;
mod stats;
mod svg;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cellvisor_tests::GicVersion;

use crate::boards::{self, BoardTarget};
use crate::fail;
use crate::images::{self, Ingredients, Overrides};
use crate::prereq::{self, Qemu};
use crate::util::{self, Context, Result};

use disk::DISK_REPEATS;
use parse::{Boot, MicroRun};
use qemu::{LinuxSetup, Mode};
use report::Report;

/// Options of `cargo xtask bench`.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Fewer iterations and one Linux boot per configuration.
    pub quick: bool,
    /// Rewrite docs/benchmarks.md (and docs/benchmarks.svg).
    pub record: bool,
    /// Leave out the Linux boot runs.
    pub no_linux: bool,
    /// Also run the micro-operations on a GICv2 (`--gic 2`), beside the GICv3 runs.
    pub gicv2: bool,
    /// The board (`--board`): qemu-virt runs the whole bench, raspi4b its Linux boot
    /// ([`board`]).
    pub board: &'static BoardTarget,
}

impl Default for BenchOptions {
    /// The whole bench on qemu-virt, GICv3 only, full length, not recorded.
    fn default() -> Self {
        BenchOptions {
            quick: false,
            record: false,
            no_linux: false,
            gicv2: false,
            board: &boards::QEMU_VIRT,
        }
    }
}

/// The guest's operations, in its print order, with what each figure means.
const OPS: [(&str, &str); 10] = [
    ("null", "counter-read pair (measurement overhead)"),
    ("hvc", "null hypercall round trip"),
    ("gicd_read", "GICD_IIDR read (trapped, emulated)"),
    ("gicd_write", "GICD_IPRIORITYR write (trapped, emulated)"),
    ("uart_read", "UART FR read (vUART, trapped)"),
    ("sgi_self", "self-SGI: send + ack + EOI"),
    ("eoi", "EOI of a virtual interrupt"),
    ("ipi", "IPI round trip to the sibling vCPU (2 IPIs)"),
    ("timer", "virtual timer: deadline to handler"),
    (
        "pci_intx",
        "virtio-blk-pci read ended by its INTx (passed through): notify to handler",
    ),
];

/// Goals and published anchors (EL2 instructions), from issue 6; the PCIe INTx goal is the timer's
/// plus the run loop's share (docs/benchmarks.md).
const GOALS: [(&str, &str, u64, u64); 6] = [
    ("null hypercall", "hvc", 100, 0),
    ("per interrupt (timer)", "timer", 150, 190),
    (
        "per interrupt (PCIe INTx, passed through)",
        "pci_intx",
        200,
        0,
    ),
    ("trapped distributor write", "gicd_write", 300, 520),
    ("IPI send", "ipi:el2_send_median", 400, 520),
    ("IPI receive", "ipi:el2_receive_median", 300, 590),
];

/// Goals and published anchors (EL2 instructions) that apply on a GICv2 too, as in [`GOALS`]; the
/// anchor is the best static-partitioning peer's on GIC-400 hardware.
const GOALS_GICV2: [(&str, &str, u64, u64); 1] =
    [("per interrupt (timer), GICv2", "timer", 150, 190)];

/// Linux boot configurations, in the order runs alternate ("two cells, 2 CPUs": layout
/// `linux-shared`, both cells time-sharing a two-CPU machine, against the same native 2 CPUs).
const BOOT_CONFIGS: [&str; 4] = ["native", "one cell", "two cells", "two cells, 2 CPUs"];

/// target/bench: the report, the chart and every transcript.
pub(super) fn bench_dir() -> PathBuf {
    util::target_dir().join("bench")
}

/// `uname -a` and the number of CPUs available.
pub(super) fn host_description() -> (String, String) {
    let uname = Command::new("uname")
        .arg("-a")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism()
        .map(|count| count.get().to_string())
        .unwrap_or_else(|_| "?".to_owned());
    (uname, cpus)
}

/// The GIC's part of a micro-operation log's name: none for GICv3 (the default), `gicv2-`.
fn gic_log_prefix(gic: GicVersion) -> &'static str {
    match gic {
        GicVersion::V3 => "",
        GicVersion::V2 => "gicv2-",
    }
}

/// `GICv3` or `GICv2`, as the progress lines and tables name them.
fn gic_name(gic: GicVersion) -> &'static str {
    match gic {
        GicVersion::V3 => "GICv3",
        GicVersion::V2 => "GICv2",
    }
}

/// Runs the bench guest under cellvisor and natively on `gic`, in both modes, into `report`.
fn micro_runs(
    qemu: &Qemu,
    iterations: u64,
    gic: GicVersion,
    report: &mut BTreeMap<(&'static str, &'static str), MicroRun>,
) -> Result<()> {
    let dir = bench_dir();
    let bootargs = format!("iterations={iterations}");
    let layout = images::layout("bench")?;
    let mut overrides = Overrides::default();
    overrides
        .bootargs
        .insert("bench".to_owned(), bootargs.clone());
    let bundle = dir.join("bundle-bench.cpio");
    images::build_bundle(layout, &overrides, &mut Ingredients::default(), &bundle)?;
    let disk = images::corporate_disk()?;
    let args_file = dir.join("native-bootargs");
    let mut args_bytes = bootargs.into_bytes();
    args_bytes.push(0);
    std::fs::write(&args_file, args_bytes)
        .context(|| format!("cannot write {}", args_file.display()))?;
    for mode in [Mode::Icount, Mode::Tcg] {
        for env in ["cellvisor", "native"] {
            let command = if env == "cellvisor" {
                // The cell's virtio-blk-pci (the `pci_intx` op) reads the corporate disk through
                // a snapshot overlay: the image stays unchanged and unlocked.
                let mut command = qemu::cellvisor_command_on(qemu, gic, &bundle, "bench", mode, "");
                command.args(cellvisor_tests::pci_device_args(&disk, true));
                command
            } else {
                qemu::native_micro_command(qemu, gic, &args_file, mode)
            };
            eprintln!(
                "  micro-operations: {env}, {}, {}",
                mode.name(),
                gic_name(gic)
            );
            let log = dir.join(format!(
                "micro-{}{env}-{}.log",
                gic_log_prefix(gic),
                mode.name()
            ));
            let text = qemu::run_to_end(command, Duration::from_secs(300), &log)?;
            if !text.contains("bench: done") || text.contains("bench: error") {
                eprintln!(
                    "warning: the {env} {} run on {} did not finish cleanly; see {}",
                    mode.name(),
                    gic_name(gic),
                    util::pretty(&log)
                );
            }
            let env: &'static str = if env == "cellvisor" {
                "cellvisor"
            } else {
                "native"
            };
            report.insert((mode.name(), env), parse::parse_micro(&text));
        }
    }
    if gic == GicVersion::V3 {
        // The same guest in front of a cell that never idles on CPU 0 (layout `bench-shared`):
        // its timer and IPI latency with a busy background, against the runs above.
        let layout = images::layout("bench-shared")?;
        let bundle = dir.join("bundle-bench-shared.cpio");
        images::build_bundle(layout, &overrides, &mut Ingredients::default(), &bundle)?;
        let mode = Mode::Icount;
        let mut command = qemu::cellvisor_command_on(qemu, gic, &bundle, "bench-shared", mode, "");
        command.args(cellvisor_tests::pci_device_args(&disk, true));
        eprintln!("  micro-operations: cellvisor with a busy cell sharing CPU 0, icount, GICv3");
        let log = dir.join("micro-cellvisor-shared-icount.log");
        // The busy cell beats on for ever: the run ends with the bench guest's last line.
        let mut text = String::new();
        qemu::run_until(command, Duration::from_secs(600), &log, |_, line| {
            text.push_str(line);
            text.push('\n');
            line.contains("bench: done")
        })?;
        if !text.contains("bench: done") || text.contains("bench: error") {
            eprintln!(
                "warning: the shared run did not finish cleanly; see {}",
                util::pretty(&log)
            );
        }
        report.insert((mode.name(), SHARED_ENV), parse::parse_micro(&text));
    }
    Ok(())
}

/// The micro-operation runs' environment of `bench-shared` (icount only).
const SHARED_ENV: &str = "cellvisor, background busy";

/// Boots Linux `runs` times per configuration and mode, the configurations alternating.
fn linux_runs(
    qemu: &Qemu,
    runs: usize,
    boots: &mut BTreeMap<(&'static str, &'static str), Vec<Boot>>,
) -> Result<()> {
    let mut ingredients = Ingredients::default();
    for name in ["linux", "linux-personal", "linux-shared"] {
        images::build_bundle(
            images::layout(name)?,
            &Overrides::default(),
            &mut ingredients,
            &images::bundle_path(name),
        )?;
    }
    let guest = crate::debian::linux_guest(&crate::debian::DEFAULT_KERNEL)?;
    let initrd = util::out_dir().join("initrd-personal.cpio.gz");
    let Some(personal) = images::layout("linux")?.cells.first() else {
        fail!("layout linux has no cells");
    };
    let setup = LinuxSetup {
        kernel: guest.kernel_image.clone(),
        initrd,
        bootargs: personal.bootargs,
    };
    for mode in [Mode::Icount, Mode::Tcg] {
        for round in 0..runs {
            for config in BOOT_CONFIGS {
                let log = bench_dir().join(format!(
                    "linux-{}-{}-{round}.log",
                    config.replace(' ', "-"),
                    mode.name()
                ));
                let boot = qemu::boot_linux(qemu, &setup, config, mode, &log)?;
                eprintln!(
                    "  Linux {config:<9} {:<6} run {}: {:.2} s host, uptime {:.2} s",
                    mode.name(),
                    round + 1,
                    boot.host,
                    boot.uptime
                );
                boots.entry((mode.name(), config)).or_default().push(boot);
            }
        }
    }
    Ok(())
}

/// `cargo xtask bench`.
pub fn bench(options: &BenchOptions) -> Result<()> {
    if !options.board.is_default() {
        return board::bench_board(options);
    }
    let started = Instant::now();
    let qemu = prereq::qemu()?;
    let dir = bench_dir();
    std::fs::create_dir_all(&dir).context(|| format!("cannot create {}", dir.display()))?;
    eprintln!("Building the hypervisor image (release) and the bench guest");
    images::build_hypervisor(true)?;
    let iterations = if options.quick { 4096 } else { 65_536 };
    let runs = if options.quick { 1 } else { 3 };
    let (host, cpus) = host_description();
    let mut command = String::from("cargo xtask bench");
    if options.quick {
        command.push_str(" --quick");
    }
    if options.no_linux {
        command.push_str(" --no-linux");
    }
    if options.gicv2 {
        command.push_str(" --gic 2");
    }
    let mut report = Report::new(qemu.version.clone(), host, cpus, command, iterations);
    eprintln!("Micro-operations ({iterations} iterations each)");
    micro_runs(&qemu, iterations, GicVersion::V3, &mut report.micro)?;
    if options.gicv2 {
        eprintln!("Micro-operations on a GICv2 (GIC-400, `--gic 2`)");
        micro_runs(&qemu, iterations, GicVersion::V2, &mut report.micro_gicv2)?;
    }
    eprintln!(
        "Console flood: personal floods a {}-baud console, corporate beats",
        console::CONSOLE_BAUD
    );
    match console::console_flood(&qemu) {
        Ok(flood) => {
            eprintln!(
                "  victim's largest gap {:.1} ms on the console, {:.1} ms on its clock; {} attacker bytes dropped",
                flood.console_gap_ms, flood.guest_gap_ms, flood.dropped_bytes
            );
            report.console = Some(flood);
        }
        Err(error) => {
            eprintln!("warning: console flood incomplete: {error}");
            report.console_note = Some(format!("Console flood incomplete: {error}"));
        }
    }
    if options.no_linux {
        report.sharing_note = Some("Time-sharing runs left out (`--no-linux`).".to_owned());
    } else {
        eprintln!(
            "Time-sharing: layout linux-shared, both cells busy, then the front one idle (TCG); switch cost on test-guests-shared (icount)"
        );
        match sharing::sharing_run(&qemu) {
            Ok(figures) => {
                eprintln!("  {}", figures.summary());
                report.sharing = Some(figures);
            }
            Err(error) => {
                eprintln!("warning: time-sharing runs incomplete: {error}");
                report.sharing_note = Some(format!("Time-sharing runs incomplete: {error}"));
            }
        }
    }
    eprintln!(
        "Display and input: the switch key's switch and forwarded key events (test-guests-shared with ramfb and virtio-input, icount, one CPU)"
    );
    match display::display_run(&qemu) {
        Ok(figures) => {
            eprintln!("  {}", figures.summary());
            report.display = Some(figures);
        }
        Err(error) => {
            eprintln!("warning: display run incomplete: {error}");
            report.display_note = Some(format!("Display run incomplete: {error}"));
        }
    }
    if options.no_linux {
        report.channel_note = Some("Channel run left out (`--no-linux`).".to_owned());
    } else {
        eprintln!(
            "Channel: personal -> corporate:7000 against TCP loopback in personal (linux-bench, icount, one vCPU per cell)"
        );
        match channel::channel_run(&qemu, options.quick) {
            Ok(figures) => {
                eprintln!("  {}", figures.summary());
                report.channel = Some(figures);
            }
            Err(error) => {
                eprintln!("warning: channel run incomplete: {error}");
                report.channel_note = Some(format!("Channel run incomplete: {error}"));
            }
        }
    }
    if options.no_linux {
        report.linux_note = Some("Linux boot runs left out (`--no-linux`).".to_owned());
    } else {
        eprintln!(
            "Linux boot: native / one cell / two cells alternating, {runs} run(s) each per mode"
        );
        if let Err(error) = linux_runs(&qemu, runs, &mut report.boots) {
            eprintln!("warning: Linux boot runs incomplete: {error}");
            report.linux_note = Some(format!("Linux boot runs incomplete: {error}"));
        }
        eprintln!(
            "Passed-through disk: sequential read in corporate vs natively, {DISK_REPEATS} reads per boot"
        );
        match disk::disk_runs(&qemu, options.quick, &mut report.disk) {
            Ok(megabytes) => report.disk_mib = megabytes,
            Err(error) => {
                eprintln!("warning: disk runs incomplete: {error}");
                report.disk_note = Some(format!("Disk runs incomplete: {error}"));
            }
        }
    }
    let elf = util::target_dir()
        .join(images::HYPERVISOR_TARGET)
        .join("release")
        .join("cellvisor-qemu-virt");
    report.image = footprint::image_footprint(&elf)?;
    report.stage2 = footprint::stage2_footprint()?;
    report.sloc = footprint::hypervisor_sloc()?;

    let tables = report.tables();
    println!("{tables}");
    let json_path = dir.join("report.json");
    std::fs::write(&json_path, report.json())
        .context(|| format!("cannot write {}", json_path.display()))?;
    let svg_path = dir.join("chart.svg");
    let svg = report.svg();
    std::fs::write(&svg_path, &svg).context(|| format!("cannot write {}", svg_path.display()))?;
    println!(
        "Report: {} and {} (transcripts in {}); {:.0} s in all",
        util::pretty(&json_path),
        util::pretty(&svg_path),
        util::pretty(&dir),
        started.elapsed().as_secs_f64()
    );
    if options.record {
        let docs = util::workspace_root().join("docs");
        std::fs::write(docs.join("benchmarks.svg"), &svg)
            .context(|| "cannot write docs/benchmarks.svg".to_owned())?;
        let markdown = markdown::record_markdown(&report, &tables);
        std::fs::write(docs.join("benchmarks.md"), markdown)
            .context(|| "cannot write docs/benchmarks.md".to_owned())?;
        println!("Recorded docs/benchmarks.md and docs/benchmarks.svg");
    }
    Ok(())
}
