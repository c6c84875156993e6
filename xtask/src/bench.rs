//! `cargo xtask bench`: cellvisor measured against native QEMU, side by side (see docs/benchmarks.md).
//!
//! Micro-operations come from the bench guest (guests/bench-guest), run under cellvisor (layout
//! `bench`) and natively at EL1 on the same QEMU CPU model, each under `-icount shift=0,sleep=off`
//! (deterministic) and under plain TCG. EL2 cost is read by the guest from QEMU's PMU: event
//! counter 0 counts instructions retired (exact under icount) filtered to EL2 only (PMEVTYPER0
//! with P, U and NSH set). Linux boot alternates native / one cell / two cells. Footprint comes
//! from the hypervisor ELF, the host-built stage-2 tables and the source tree.
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cellvisor::mem::addr::{GuestPhysAddr, PhysAddr};
use cellvisor::mem::stage2::Stage2;

use crate::fail;
use crate::images::{self, Ingredients, Overrides};
use crate::prereq::{self, Qemu};
use crate::util::{self, Context, Result};

/// Options of `cargo xtask bench`.
#[derive(Clone, Debug, Default)]
pub struct BenchOptions {
    /// Fewer iterations and one Linux boot per configuration.
    pub quick: bool,
    /// Rewrite docs/benchmarks.md (and docs/benchmarks.svg).
    pub record: bool,
    /// Leave out the Linux boot runs.
    pub no_linux: bool,
}

/// The guest's operations, in its print order, with what each figure means.
const OPS: [(&str, &str); 9] = [
    ("null", "counter-read pair (measurement overhead)"),
    ("hvc", "null hypercall round trip"),
    ("gicd_read", "GICD_IIDR read (trapped, emulated)"),
    ("gicd_write", "GICD_IPRIORITYR write (trapped, emulated)"),
    ("uart_read", "UART FR read (vUART, trapped)"),
    ("sgi_self", "self-SGI: send + ack + EOI"),
    ("eoi", "EOI of a virtual interrupt"),
    ("ipi", "IPI round trip to the sibling vCPU (2 IPIs)"),
    ("timer", "virtual timer: deadline to handler"),
];

/// Goals and published anchors (EL2 instructions), from issue 6.
const GOALS: [(&str, &str, u64, u64); 5] = [
    ("null hypercall", "hvc", 100, 0),
    ("per interrupt (timer)", "timer", 150, 190),
    ("trapped distributor write", "gicd_write", 400, 520),
    ("IPI send", "ipi:el2_send_median", 400, 520),
    ("IPI receive", "ipi:el2_receive_median", 400, 590),
];

/// How QEMU keeps time in a run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Icount,
    Tcg,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Icount => "icount",
            Mode::Tcg => "tcg",
        }
    }

    fn args(self) -> Vec<String> {
        match self {
            Mode::Icount => vec!["-icount".into(), "shift=0,sleep=off".into()],
            Mode::Tcg => Vec::new(),
        }
    }
}

/// CPU model both sides get (cellvisor hides SVE/SME from cells; native runs see the same).
const CPU: &str = "max,sve=off,sme=off";
/// Where the bench guest reads its bootargs when run natively (guests/bench-guest/src/main.rs).
const NATIVE_ARGS_ADDRESS: &str = "0x43f00000";

/// Stage-2 figures of one cell: (layout, cell, RAM bytes, table bytes, blocks, pages).
type Stage2Row = (String, String, u64, u64, u64, u64);

/// One op line's fields.
type OpFields = BTreeMap<String, String>;

/// Micro-operation results of one environment in one mode.
#[derive(Default, Debug)]
struct MicroRun {
    start: OpFields,
    ops: BTreeMap<String, OpFields>,
}

fn fields(line: &str) -> OpFields {
    line.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.trim_matches('"').to_owned()))
        .collect()
}

fn parse_micro(transcript: &str) -> MicroRun {
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

fn number(fields: Option<&OpFields>, key: &str) -> Option<f64> {
    fields?.get(key)?.parse().ok()
}

fn bench_dir() -> PathBuf {
    util::target_dir().join("bench")
}

/// Runs `command` to completion (or `timeout`), returning stdout+stderr.
fn run_to_end(mut command: Command, timeout: Duration, log: &Path) -> Result<String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .context(|| format!("cannot start {}", util::show(&command)))?;
    let (sender, receiver) = mpsc::channel();
    let mut readers = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        readers.push(spawn_lines(stdout, sender.clone()));
    }
    if let Some(stderr) = child.stderr.take() {
        readers.push(spawn_lines(stderr, sender.clone()));
    }
    drop(sender);
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok((_, line)) => {
                text.push_str(&line);
                text.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                text.push_str("xtask bench: timed out\n");
                break;
            }
        }
    }
    let _ = child.wait();
    std::fs::write(log, &text).context(|| format!("cannot write {}", log.display()))?;
    Ok(text)
}

type Line = (Instant, String);

fn spawn_lines(
    stream: impl std::io::Read + Send + 'static,
    sender: mpsc::Sender<Line>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        while matches!(reader.read_until(b'\n', &mut buffer), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buffer).trim_end().to_owned();
            buffer.clear();
            if sender.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    })
}

/// QEMU `virt` with `machine` as its `-M` options, the bench CPU model, `smp` CPUs and `memory` of
/// RAM, headless with the serial console on stdio, in `mode`; the caller adds what to boot.
fn qemu_command(qemu: &Qemu, machine: &str, smp: &str, memory: &str, mode: Mode) -> Command {
    let mut command = Command::new(&qemu.path);
    command.args(["-M", machine, "-cpu", CPU, "-smp", smp, "-m", memory]);
    command.args(cellvisor_tests::HEADLESS_SERIAL_ARGS);
    command.args(mode.args());
    command
}

/// Native QEMU booting `kernel` with `initrd` and `bootargs` on a machine the size of one Linux
/// cell (2 CPUs, 768 MiB).
fn native_linux_command(
    qemu: &Qemu,
    kernel: &Path,
    initrd: &Path,
    bootargs: &str,
    mode: Mode,
) -> Command {
    let mut command = qemu_command(qemu, "virt,gic-version=3", "2", "768M", mode);
    command
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(bootargs);
    command
}

fn cellvisor_command(qemu: &Qemu, bundle: &Path, layout: &str, mode: Mode) -> Command {
    let mut command = qemu_command(
        qemu,
        "virt,virtualization=on,gic-version=3",
        "4",
        "2G",
        mode,
    );
    command
        .arg("-kernel")
        .arg(images::hypervisor_image())
        .arg("-initrd")
        .arg(bundle)
        .arg("-append")
        .arg(format!("cellvisor.layout={layout}"));
    command
}

fn native_micro_command(qemu: &Qemu, args_file: &Path, mode: Mode) -> Command {
    let mut command = qemu_command(qemu, "virt,gic-version=3", "2", "64M", mode);
    command
        .arg("-kernel")
        .arg(images::rust_guest_elf(images::BENCH_GUEST_ENTRY))
        .arg("-device")
        .arg(format!(
            "loader,file={},addr={NATIVE_ARGS_ADDRESS},force-raw=on",
            args_file.display()
        ));
    command
}

/// Linux boot configurations, in the order runs alternate.
const BOOT_CONFIGS: [&str; 3] = ["native", "one cell", "two cells"];

/// One Linux boot: host seconds to the personal banner, guest uptime, host seconds to cellvisor's
/// `cell personal:` log line (cellvisor runs only).
#[derive(Clone, Copy, Debug, Default)]
struct Boot {
    host: f64,
    uptime: f64,
    hypervisor_host: Option<f64>,
    /// Seconds since reset when cellvisor entered the personal cell's first vCPU (its log line
    /// `cell personal: entering vCPU 0 at counter N (F Hz)`); natively 0.
    entry: Option<f64>,
}

impl Boot {
    /// Reset to the ready banner: cellvisor's boot up to the cell's first instruction plus the
    /// guest's own uptime at the banner.
    fn reset_to_init(&self) -> f64 {
        self.entry.unwrap_or(0.0) + self.uptime
    }
}

/// `N / F` from `... entering vCPU 0 at counter N (F Hz)`.
fn entry_seconds(line: &str) -> Option<f64> {
    let rest = line.split("entering vCPU 0 at counter ").nth(1)?;
    let mut words = rest.split_whitespace();
    let counter: f64 = words.next()?.parse().ok()?;
    let frequency: f64 = words.next()?.trim_start_matches('(').parse().ok()?;
    (frequency > 0.0).then(|| counter / frequency)
}

struct LinuxSetup {
    kernel: PathBuf,
    initrd: PathBuf,
    bootargs: &'static str,
}

fn boot_linux(
    qemu: &Qemu,
    setup: &LinuxSetup,
    config: &str,
    mode: Mode,
    log: &Path,
) -> Result<Boot> {
    let mut command = if config == "native" {
        native_linux_command(qemu, &setup.kernel, &setup.initrd, setup.bootargs, mode)
    } else {
        let layout = if config == "one cell" {
            "linux-personal"
        } else {
            "linux"
        };
        cellvisor_command(qemu, &images::bundle_path(layout), layout, mode)
    };
    let needles: Vec<&str> = if config == "two cells" {
        vec!["cellvisor-ready: personal ", "cellvisor-ready: corporate "]
    } else {
        vec!["cellvisor-ready: personal "]
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .context(|| format!("cannot start {}", util::show(&command)))?;
    let (sender, receiver) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        spawn_lines(stdout, sender.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        spawn_lines(stderr, sender.clone());
    }
    drop(sender);
    let deadline = started + Duration::from_secs(240);
    let mut text = String::new();
    let mut boot = Boot::default();
    let mut found = vec![false; needles.len()];
    let outcome = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok((when, line)) => {
                let seconds = when.duration_since(started).as_secs_f64();
                if boot.hypervisor_host.is_none() && line.contains("INFO  cell personal:") {
                    boot.hypervisor_host = Some(seconds);
                }
                if boot.entry.is_none() && line.contains("INFO  cell personal: entering vCPU 0") {
                    boot.entry = entry_seconds(&line);
                }
                for (needle, seen) in needles.iter().zip(found.iter_mut()) {
                    if !*seen && line.contains(needle) {
                        *seen = true;
                        if needle.contains("personal") {
                            boot.uptime = line
                                .split("uptime=")
                                .nth(1)
                                .and_then(|rest| rest.split_whitespace().next())
                                .and_then(|value| value.parse().ok())
                                .unwrap_or(f64::NAN);
                        }
                        boot.host = boot.host.max(seconds);
                    }
                }
                text.push_str(&line);
                text.push('\n');
                if found.iter().all(|seen| *seen) {
                    break Ok(boot);
                }
                if line.contains("Kernel panic") {
                    break Err(util::Error(format!("{config}: kernel panic: {line}")));
                }
            }
            Err(_) => {
                break Err(util::Error(format!(
                    "{config} ({}) did not reach its banner; see {}",
                    mode.name(),
                    util::pretty(log)
                )));
            }
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(log, &text).context(|| format!("cannot write {}", log.display()))?;
    outcome
}

/// median, min, max.
fn stats(values: &[f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = if sorted.len() % 2 == 1 {
        sorted[sorted.len() / 2]
    } else {
        (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) / 2.0
    };
    Some((median, sorted[0], sorted[sorted.len() - 1]))
}

/// Section sizes of an ELF64 file: (name, size, flags, type).
fn elf_sections(data: &[u8]) -> Result<Vec<(String, u64, u64, u32)>> {
    let u16_at = |offset: usize| -> Option<u64> {
        Some(u64::from(u16::from_le_bytes(
            data.get(offset..offset + 2)?.try_into().ok()?,
        )))
    };
    let u32_at = |offset: usize| -> Option<u32> {
        Some(u32::from_le_bytes(
            data.get(offset..offset + 4)?.try_into().ok()?,
        ))
    };
    let u64_at = |offset: usize| -> Option<u64> {
        Some(u64::from_le_bytes(
            data.get(offset..offset + 8)?.try_into().ok()?,
        ))
    };
    let parse = || -> Option<Vec<(String, u64, u64, u32)>> {
        if data.get(..4)? != b"\x7fELF" {
            return None;
        }
        let table = usize::try_from(u64_at(0x28)?).ok()?;
        let entry_size = usize::try_from(u16_at(0x3A)?).ok()?;
        let count = usize::try_from(u16_at(0x3C)?).ok()?;
        let names_index = usize::try_from(u16_at(0x3E)?).ok()?;
        let header = |index: usize| table + index * entry_size;
        let names = usize::try_from(u64_at(header(names_index) + 0x18)?).ok()?;
        let mut sections = Vec::new();
        for index in 1..count {
            let at = header(index);
            let name_offset = names + usize::try_from(u32_at(at)?).ok()?;
            let name_bytes = data.get(name_offset..)?;
            let end = name_bytes.iter().position(|&byte| byte == 0)?;
            let name = String::from_utf8_lossy(&name_bytes[..end]).into_owned();
            sections.push((name, u64_at(at + 0x20)?, u64_at(at + 8)?, u32_at(at + 4)?));
        }
        Some(sections)
    };
    match parse() {
        Some(sections) => Ok(sections),
        None => fail!("the hypervisor ELF has no readable section table"),
    }
}

/// Image footprint: text, read-only data, data, bss (without heap and stacks), heap, stacks.
fn image_footprint(elf: &Path) -> Result<BTreeMap<&'static str, u64>> {
    const SHF_WRITE: u64 = 1;
    const SHF_ALLOC: u64 = 2;
    const SHF_EXECINSTR: u64 = 4;
    const SHT_NOBITS: u32 = 8;
    let data = std::fs::read(elf).context(|| format!("cannot read {}", elf.display()))?;
    let mut sizes = BTreeMap::new();
    for (name, size, flags, kind) in elf_sections(&data)? {
        if flags & SHF_ALLOC == 0 {
            continue;
        }
        let class = if name.contains("heap") {
            "heap"
        } else if name.contains("stack") {
            "stacks"
        } else if kind == SHT_NOBITS {
            "bss"
        } else if flags & SHF_EXECINSTR != 0 {
            "text"
        } else if flags & SHF_WRITE != 0 {
            "data"
        } else {
            "rodata"
        };
        *sizes.entry(class).or_insert(0) += size;
    }
    Ok(sizes)
}

/// Per cell of a layout: (layout, cell, RAM bytes, table bytes, blocks, pages).
fn stage2_footprint() -> Result<Vec<Stage2Row>> {
    let mut rows = Vec::new();
    for layout in images::layouts() {
        for (index, cell) in layout.cells.iter().enumerate() {
            let vmid = u16::try_from(index + 1).unwrap_or(1);
            let mut stage2 =
                Stage2::new(vmid).map_err(|error| util::Error(format!("{error:?}")))?;
            let mut ram = 0;
            for region in cell.memory {
                stage2
                    .map_ram(
                        GuestPhysAddr::new(region.guest_base()),
                        PhysAddr::new(region.physical.base),
                        region.physical.size,
                    )
                    .map_err(|error| util::Error(format!("{error:?}")))?;
                ram += region.physical.size;
            }
            let stats = stage2.stats();
            rows.push((
                layout.name.to_owned(),
                cell.name.to_owned(),
                ram,
                stats.table_bytes,
                stats.block_descriptors,
                stats.page_descriptors,
            ));
        }
    }
    Ok(rows)
}

/// Source lines of hypervisor/src without blank lines, comments, tests.rs files and the trailing
/// `#[cfg(test)]` modules.
fn hypervisor_sloc() -> Result<u64> {
    fn walk(dir: &Path, total: &mut u64) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, total)?;
            } else if path.extension().is_some_and(|ext| ext == "rs")
                && path.file_name().is_some_and(|name| name != "tests.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for line in text.lines() {
                    let line = line.trim();
                    if line == "#[cfg(test)]" {
                        break;
                    }
                    if !line.is_empty() && !line.starts_with("//") {
                        *total += 1;
                    }
                }
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(
        &util::workspace_root().join("hypervisor").join("src"),
        &mut total,
    )?;
    Ok(total)
}

fn json_string(text: &str) -> String {
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

fn json_number(value: Option<f64>) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value}"),
        _ => "null".to_owned(),
    }
}

fn fmt_opt(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(value) if value.is_finite() => format!("{value:.decimals$}"),
        _ => "-".to_owned(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// Everything measured.
struct Report {
    qemu_version: String,
    host: String,
    cpus: String,
    command: String,
    iterations: u64,
    micro: BTreeMap<(&'static str, &'static str), MicroRun>,
    boots: BTreeMap<(&'static str, &'static str), Vec<Boot>>,
    linux_note: Option<String>,
    disk: BTreeMap<(&'static str, &'static str), DiskRun>,
    disk_note: Option<String>,
    disk_mib: u64,
    image: BTreeMap<&'static str, u64>,
    stage2: Vec<Stage2Row>,
    sloc: u64,
}

impl Report {
    fn op(&self, mode: &str, env: &str, op: &str) -> Option<&OpFields> {
        let key = self.micro.keys().find(|(m, e)| *m == mode && *e == env)?;
        self.micro.get(key)?.ops.get(op)
    }

    fn el2(&self, spec: &str) -> Option<f64> {
        let (op, key) = spec.split_once(':').unwrap_or((spec, "el2_instr_per_op"));
        number(self.op("icount", "cellvisor", op), key)
    }

    fn entry_ticks(&self, mode: &str, env: &str) -> Option<f64> {
        let key = self.micro.keys().find(|(m, e)| *m == mode && *e == env)?;
        self.micro.get(key)?.start.get("entry_ticks")?.parse().ok()
    }

    fn boot_stats(
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

    /// Markdown tables (terminal output and docs/benchmarks.md share them).
    fn tables(&self) -> String {
        let mut out = String::new();
        for mode in ["icount", "tcg"] {
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
            let _ = writeln!(
                out,
                "| op | what | cellvisor ns/op | native ns/op | ratio | EL2 instructions/op |"
            );
            let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
            for (op, what) in OPS {
                let ours = number(self.op(mode, "cellvisor", op), "ns_per_op");
                let native = number(self.op(mode, "native", op), "ns_per_op");
                let el2 = match op {
                    "ipi" => {
                        let fields = self.op(mode, "cellvisor", op);
                        match (
                            number(fields, "el2_send_median"),
                            number(fields, "el2_receive_median"),
                            number(fields, "el2_instr_per_op"),
                        ) {
                            (Some(send), Some(receive), Some(mean)) => format!(
                                "send {send:.0} + receive {receive:.0} (mean per round trip {mean:.0})"
                            ),
                            _ => fmt_opt(number(fields, "el2_instr_per_op"), 0),
                        }
                    }
                    _ => fmt_opt(
                        number(self.op(mode, "cellvisor", op), "el2_instr_per_op"),
                        0,
                    ),
                };
                let _ = writeln!(
                    out,
                    "| {op} | {what} | {} | {} | {} | {el2} |",
                    fmt_opt(ours, 1),
                    fmt_opt(native, 1),
                    fmt_opt(ratio(ours, native), 1)
                );
            }
        }
        let _ = writeln!(
            out,
            "\n### EL2 instructions against the goals (icount, PMU EL2 filter)\n"
        );
        let _ = writeln!(
            out,
            "| path | measured | goal | best published peer | verdict |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---|");
        for (name, spec, goal, anchor) in GOALS {
            let measured = self.el2(spec);
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

    fn json(&self) -> String {
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
        let mut items = Vec::new();
        for ((mode, env), run) in &self.micro {
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
        out.push_str(&items.join(",\n"));
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
        let items: Vec<String> = GOALS
            .iter()
            .map(|(name, spec, goal, anchor)| {
                format!(
                    "    {{\"path\": {}, \"measured\": {}, \"goal\": {goal}, \"anchor\": {anchor}}}",
                    json_string(name),
                    json_number(self.el2(spec))
                )
            })
            .collect();
        out.push_str(&items.join(",\n"));
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
                    "    {{\"mode\": {}, \"env\": {}, \"method\": {}, \"bytes_per_read\": {}, \"mb_per_s\": [{}], \"virtio_interrupts\": {}, \"all_guest_interrupts\": {}, \"exit_deltas\": {exits}}}",
                    json_string(mode),
                    json_string(env),
                    json_string(run.method),
                    json_number(Some(run.bytes)),
                    rates.join(", "),
                    run.interrupt_delta("virtio0"),
                    run.all_interrupts_delta()
                )
            })
            .collect();
        out.push_str(&items.join(",\n"));
        out.push_str("\n  ],\n  \"image\": {");
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

    /// Horizontal grouped bars, log scale, cellvisor vs native ns/op under icount and TCG.
    fn svg(&self) -> String {
        let ops: Vec<&str> = OPS
            .iter()
            .map(|(op, _)| *op)
            .filter(|op| *op != "null")
            .collect();
        let series = [
            ("icount", "cellvisor", "#c0392b"),
            ("icount", "native", "#2980b9"),
            ("tcg", "cellvisor", "#e6a19a"),
            ("tcg", "native", "#9cc3e0"),
        ];
        let bar = 9.0;
        let group = bar * series.len() as f64 + 12.0;
        let left = 110.0;
        let width = 560.0;
        let top = 40.0;
        let height = top + group * ops.len() as f64 + 40.0;
        let (low, high) = (0.0_f64, 6.0_f64); // 1 ns .. 1 ms, log10
        let x =
            |ns: f64| left + width * ((ns.max(1.0).log10() - low) / (high - low)).clamp(0.0, 1.0);
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">\n",
            left + width + 30.0
        );
        let _ = writeln!(
            svg,
            "<text x=\"{left}\" y=\"16\" font-size=\"13\">cellvisor vs native QEMU: ns per operation (log scale, shorter is better)</text>"
        );
        for decade in 0..=6 {
            let position = x(10f64.powi(decade));
            let label =
                ["1 ns", "10 ns", "100 ns", "1 µs", "10 µs", "100 µs", "1 ms"][decade as usize];
            let _ = writeln!(
                svg,
                "<line x1=\"{position}\" y1=\"{}\" x2=\"{position}\" y2=\"{}\" stroke=\"#ddd\"/><text x=\"{position}\" y=\"{}\" text-anchor=\"middle\">{label}</text>",
                top - 6.0,
                height - 30.0,
                height - 16.0
            );
        }
        for (index, op) in ops.iter().enumerate() {
            let y0 = top + group * index as f64;
            let _ = writeln!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{op}</text>",
                left - 6.0,
                y0 + group / 2.0
            );
            for (row, (mode, env, colour)) in series.iter().enumerate() {
                let Some(ns) = number(self.op(mode, env, op), "ns_per_op") else {
                    continue;
                };
                let y = y0 + bar * row as f64;
                let _ = writeln!(
                    svg,
                    "<rect x=\"{left}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"{colour}\"><title>{op} {mode} {env}: {ns} ns</title></rect><text x=\"{:.1}\" y=\"{}\" font-size=\"8\">{ns:.0}</text>",
                    (x(ns) - left).max(0.5),
                    bar - 1.0,
                    x(ns) + 3.0,
                    y + bar - 2.0
                );
            }
        }
        for (row, (mode, env, colour)) in series.iter().enumerate() {
            let lx = left + 140.0 * row as f64;
            let _ = writeln!(
                svg,
                "<rect x=\"{lx}\" y=\"24\" width=\"10\" height=\"10\" fill=\"{colour}\"/><text x=\"{}\" y=\"33\">{env} ({mode})</text>",
                lx + 14.0
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

fn host_description() -> (String, String) {
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

fn micro_runs(
    qemu: &Qemu,
    iterations: u64,
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
    let args_file = dir.join("native-bootargs");
    let mut args_bytes = bootargs.into_bytes();
    args_bytes.push(0);
    std::fs::write(&args_file, args_bytes)
        .context(|| format!("cannot write {}", args_file.display()))?;
    for mode in [Mode::Icount, Mode::Tcg] {
        for env in ["cellvisor", "native"] {
            let command = if env == "cellvisor" {
                cellvisor_command(qemu, &bundle, "bench", mode)
            } else {
                native_micro_command(qemu, &args_file, mode)
            };
            eprintln!("  micro-operations: {env}, {}", mode.name());
            let log = dir.join(format!("micro-{env}-{}.log", mode.name()));
            let text = run_to_end(command, Duration::from_secs(300), &log)?;
            if !text.contains("bench: done") || text.contains("bench: error") {
                eprintln!(
                    "warning: the {env} {} run did not finish cleanly; see {}",
                    mode.name(),
                    util::pretty(&log)
                );
            }
            let env: &'static str = if env == "cellvisor" {
                "cellvisor"
            } else {
                "native"
            };
            report.insert((mode.name(), env), parse_micro(&text));
        }
    }
    Ok(())
}

fn linux_runs(
    qemu: &Qemu,
    runs: usize,
    boots: &mut BTreeMap<(&'static str, &'static str), Vec<Boot>>,
) -> Result<()> {
    let mut ingredients = Ingredients::default();
    for name in ["linux", "linux-personal"] {
        images::build_bundle(
            images::layout(name)?,
            &Overrides::default(),
            &mut ingredients,
            &images::bundle_path(name),
        )?;
    }
    let guest = crate::debian::linux_guest()?;
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
                let boot = boot_linux(qemu, &setup, config, mode, &log)?;
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
    let mut report = Report {
        qemu_version: qemu.version.clone(),
        host,
        cpus,
        command,
        iterations,
        micro: BTreeMap::new(),
        boots: BTreeMap::new(),
        linux_note: None,
        disk: BTreeMap::new(),
        disk_note: None,
        disk_mib: 0,
        image: BTreeMap::new(),
        stage2: Vec::new(),
        sloc: 0,
    };
    eprintln!("Micro-operations ({iterations} iterations each)");
    micro_runs(&qemu, iterations, &mut report.micro)?;
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
        match disk_runs(&qemu, options.quick, &mut report.disk) {
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
    report.image = image_footprint(&elf)?;
    report.stage2 = stage2_footprint()?;
    report.sloc = hypervisor_sloc()?;

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
        let markdown = record_markdown(&report, &tables);
        std::fs::write(docs.join("benchmarks.md"), markdown)
            .context(|| "cannot write docs/benchmarks.md".to_owned())?;
        println!("Recorded docs/benchmarks.md and docs/benchmarks.svg");
    }
    Ok(())
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
release build, layout `bench` (one cell, CPUs 0–1, 64 MiB), `-smp 4 -m 2G`.

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

**Where the EL2 instructions go.** Traced with QEMU's `-d exec,nochain,in_asm -dfilter
0x40200000..0x40400000` on the release image, each exit's translation blocks attributed to
functions with `addr2line -i` (December 2026, 256 iterations; figures rounded). Every exit pays the
world switch: 30 instructions to save the guest's 31 registers and return to the run loop, 28 to
load them and ERET. A null hypercall (~200) adds the syndrome decode (~20), SMCCC dispatch (~60)
and the vGIC's no-change check under its lock (~40). A timer interrupt (~540) adds reading back the
list register of the previous interrupt (`sync`, ~70), acknowledging and dispatching the physical
interrupt (~150: owner lookup, the vGIC lock, the model update), and refilling the list registers
(`flush`, ~150: the candidate scan, the LR write, ICH_HCR_EL2). Reaching the ≤150 goal needs a
direct path for hardware-linked private interrupts that writes the list register at once under one
lock, without the rescan; that is not built yet.

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

**Footprint.** Section sizes of the release ELF (`target/aarch64-unknown-none-softfloat/release/
cellvisor-qemu-virt`): text, rodata, data, bss, and the reserved heap and stacks. Stage-2 tables
are built on the host with `cellvisor::mem::stage2::Stage2` from each layout's cell memory
(`map_ram`, as the hypervisor does) and measured with `stats()`; device windows are emulated, not
mapped, so only RAM appears. SLOC counts non-blank, non-comment lines of `hypervisor/src/**/*.rs`
up to each file's `#[cfg(test)]`, without `tests.rs` files.

**Passed-through disk.** The corporate cell of layout `linux` owns QEMU's virtio-blk disk
(virtio-mmio slot 31, INTID 79) and reads it with
`dd if=/dev/vda of=/dev/null bs=1M count=64 iflag=direct` (`--quick`: 16 MiB; busybox dd supports
O_DIRECT, so the guest page cache is bypassed and every MiB goes to the device), five times per boot;
the table shows the median and every read. busybox dd prints no timing line, so each read is timed
with the guest's monotonic clock read from `/proc/timer_list` (`now at <ns> nsecs`) right before and
after dd (MB = 10^6 bytes; the two `grep`s add a fork each, the same natively). The native twin is
the same Debian kernel with `initrd-corporate.cpio.gz` and the corporate bootargs on
`-M virt,gic-version=3 -cpu max,sve=off,sme=off -smp 2 -m 768M` with the same `-drive …,format=raw`
and `-device virtio-blk-device` arguments (the device tree comes from QEMU). Both read a private copy
of the corporate disk image (`target/bench/disk.img`, 64 MiB ext2, no snapshot overlay) that is in
the host page cache, so the host disk is not measured. The cellvisor side runs both cells
(personal idles at its shell). Under `-icount` the figures are *not* deterministic: the disk's
requests complete on QEMU's I/O threads in host time, and with `sleep=off` an idle vCPU's clock
jumps to its next timer deadline, so a read's virtual duration depends on whether each completion
arrives before the vCPU goes idle; read the spread, not just the median.

**Passthrough interrupts.** Around the reads the bench counts the guest's interrupts
(`/proc/interrupts`: `virtio0` is the disk, plus timer and IPI lines) and opens cellvisor's
management prompt (Ctrl-A m, `cells`) before and after to read the corporate cell's exits by reason
(the exit window also holds the typed command and its console output, i.e. a few hundred trapped
UART accesses). The disk's interrupt is injected through a hardware-linked list register, so the
guest's EOI (ICC_EOIR1_EL1, then the deactivation the HW bit forwards to the physical GIC) never
traps: if it did, every guest interrupt would add a `sysreg` exit (or a maintenance `irq` exit).
The cell's other sysreg exits are its IPIs (each ICC_SGI1R_EL1 write traps; the `IPI*` lines of
/proc/interrupts count them on the receiving vCPU), so the table shows the sysreg exits left after
subtracting the IPIs, per guest interrupt: an upper bound on traps per EOI, which is 0 when the
EOI path has no trap. The EL2 instructions of the delivery are not counted inside Linux (the guest
has no perf tool); the table's estimate is the timer op's EL2 instructions from the micro-operations
(the same path: a physical interrupt taken at EL2 once and written into a list register with the HW
bit), plus zero for the EOI. An interrupt that arrives while its vCPU is idle in cellvisor (a
trapped WFI) is taken at EL2 during that wait, so it shows in the `wfi` exits rather than as an
`irq` exit of its own; that is why irq exits are fewer than guest interrupts. The virtio-mmio registers themselves trap (the disk shares its
4 KiB page with personal's network device, so each access is forwarded by cellvisor): those are
the `mmio` exits, a cost on the request path that a device on its own page would not have.

Raw results: `target/bench/report.json`, chart `target/bench/chart.svg`, every QEMU transcript in
`target/bench/*.log`.
"#;

fn record_markdown(report: &Report, tables: &str) -> String {
    format!(
        "# Benchmarks: cellvisor against native QEMU\n\n\
         Recorded by `{}` (rewritten by `cargo xtask bench --record`; do not edit the figures by hand).\n\n\
         - QEMU {}\n- host: `{}`, {} CPUs\n- reproduce: `cargo xtask bench --record` (a few minutes on 2 cores; `--quick` for a short run)\n\n\
         ![cellvisor vs native, ns per operation](benchmarks.svg)\n\n## Figures\n{tables}\n{METHOD}",
        report.command, report.qemu_version, report.host, report.cpus
    )
}

// ---------------------------------------------------------------------------------------------
// Passed-through disk: sequential read inside the corporate cell against the same kernel natively.

/// Repetitions of the disk read per boot (the table shows the median).
const DISK_REPEATS: usize = 5;

/// A QEMU whose console is driven interactively (the disk benchmark types shell commands and
/// opens cellvisor's management prompt). The console text is kept cleaned of escape sequences and
/// carriage returns.
struct Session {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    text: std::sync::Arc<(std::sync::Mutex<Vec<u8>>, std::sync::Condvar)>,
    counter: u32,
}

impl Session {
    fn start(mut command: Command) -> Result<Session> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .context(|| format!("cannot start {}", util::show(&command)))?;
        let text =
            std::sync::Arc::new((std::sync::Mutex::new(Vec::new()), std::sync::Condvar::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let text = std::sync::Arc::clone(&text);
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut filter = cellvisor_tests::ConsoleFilter::default();
                let mut buffer = [0u8; 4096];
                while let Ok(count) = stream.read(&mut buffer) {
                    if count == 0 {
                        break;
                    }
                    let (lock, changed) = &*text;
                    let mut state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    filter.feed(&buffer[..count], &mut state);
                    changed.notify_all();
                }
            });
        }
        Ok(Session {
            stdin: child.stdin.take(),
            child,
            text,
            counter: 0,
        })
    }

    fn mark(&self) -> usize {
        self.text.0.lock().map_or(0, |state| state.len())
    }

    fn transcript(&self) -> String {
        self.text
            .0
            .lock()
            .map(|state| String::from_utf8_lossy(&state).into_owned())
            .unwrap_or_default()
    }

    /// Waits for the first line containing `needle` at or after `since`; returns (line, offset
    /// past it).
    fn wait_for(&self, needle: &str, since: usize, timeout: Duration) -> Result<(String, usize)> {
        let deadline = Instant::now() + timeout;
        let (lock, changed) = &*self.text;
        let mut state = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            let from = since.min(state.len());
            let haystack = String::from_utf8_lossy(&state[from..]);
            // Only whole lines count: the console prints some lines in fragments.
            if let Some(at) = haystack.find(needle)
                && let Some(newline) = haystack[at..].find('\n')
            {
                let start = haystack[..at].rfind('\n').map_or(0, |n| n + 1);
                let end = at + newline + 1;
                let line = haystack[start..end].trim_end().to_owned();
                return Ok((line, from + end));
            }
            let now = Instant::now();
            if now >= deadline {
                let tail: Vec<&str> = haystack.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                fail!(
                    "timed out after {:.0} s waiting for {needle:?}; last lines:\n{}",
                    timeout.as_secs_f64(),
                    tail.join("\n")
                );
            }
            state = changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        use std::io::Write as _;
        let Some(stdin) = self.stdin.as_mut() else {
            fail!("QEMU's stdin is closed");
        };
        stdin
            .write_all(bytes)
            .and_then(|()| stdin.flush())
            .context(|| "cannot write to QEMU".to_owned())
    }

    /// Runs `command` in the focused shell; returns its output lines with any `[cell] ` prefix
    /// removed. The markers' typed form differs from their printed form, so the terminal's echo
    /// of the typed line is never mistaken for output.
    fn shell(&mut self, command: &str, timeout: Duration) -> Result<String> {
        self.counter += 1;
        let id = self.counter;
        let since = self.mark();
        self.send(
            format!("echo 'bench-''begin-{id}'; {command}; echo \"bench-\"\"end-{id} $?\"\r")
                .as_bytes(),
        )?;
        let (_, body_start) = self.wait_for(&format!("bench-begin-{id}"), since, timeout)?;
        let (end_line, _) = self.wait_for(&format!("bench-end-{id} "), body_start, timeout)?;
        let text = self.transcript();
        let end_at = text[body_start.min(text.len())..]
            .find(&format!("bench-end-{id} "))
            .map_or(text.len(), |at| body_start + at);
        let body = &text[body_start.min(end_at)..end_at];
        let mut out = String::new();
        for line in body.lines() {
            let line = match line
                .strip_prefix('[')
                .and_then(|rest| rest.split_once("] "))
            {
                Some((_, rest)) => rest,
                None => line,
            };
            out.push_str(line);
            out.push('\n');
        }
        if !end_line.trim_end().ends_with(" 0") {
            eprintln!("warning: `{command}` ended with {end_line:?}");
        }
        Ok(out)
    }

    /// The corporate row of cellvisor's `cells` table (Ctrl-A m, `cells`, `exit`): exit counts
    /// calls, mmio, sysreg, wfi, irq.
    fn cell_exits(&mut self, cell: &str) -> Result<[u64; 5]> {
        let since = self.mark();
        self.send(&[cellvisor_tests::CONSOLE_ESCAPE, b'm'])?;
        let (_, opened) = self.wait_for(
            "cellvisor management prompt",
            since,
            Duration::from_secs(30),
        )?;
        self.send(b"cells\r")?;
        let (_, header) = self.wait_for("cell         state", opened, Duration::from_secs(30))?;
        let (row, _) = self.wait_for(&format!("{cell:<12} "), header, Duration::from_secs(30))?;
        let words: Vec<&str> = row
            .get(row.find(&format!("{cell:<12} ")).unwrap_or(0)..)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let since = self.mark();
        self.send(b"exit\r")?;
        self.wait_for("exit", since, Duration::from_secs(30))?;
        // cell state vcpus ram uptime calls mmio sysreg wfi irq faults restarts
        let mut counts = [0; 5];
        for (slot, word) in counts.iter_mut().zip(words.iter().skip(5)) {
            match word.parse() {
                Ok(value) => *slot = value,
                Err(_) => fail!("cannot read the cells row {row:?}"),
            }
        }
        if words.len() < 10 {
            fail!("cannot read the cells row {row:?}");
        }
        Ok(counts)
    }

    fn finish(mut self, log: &Path) -> Result<()> {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::fs::write(log, self.transcript()).context(|| format!("cannot write {}", log.display()))
    }
}

/// Sum over CPUs of each /proc/interrupts line, keyed by its last word (`virtio0`, `arch_timer`,
/// `IPI0`-style rows keyed by their first column).
fn interrupt_totals(text: &str) -> BTreeMap<String, u64> {
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
fn read_seconds(line: &str) -> Option<f64> {
    let rest = line.strip_prefix("bench-read ")?;
    let mut times = rest
        .split("now at ")
        .filter_map(|part| part.split_whitespace().next()?.parse::<u64>().ok());
    let t0 = times.next()?;
    let t1 = times.next()?;
    (t1 > t0).then(|| (t1 - t0) as f64 / 1e9)
}

/// One boot's disk reads.
#[derive(Clone, Debug, Default)]
struct DiskRun {
    /// MB/s (10^6 bytes per guest second) of each read.
    rates: Vec<f64>,
    /// Bytes per read.
    bytes: f64,
    /// /proc/interrupts totals before and after the reads.
    interrupts_before: BTreeMap<String, u64>,
    interrupts_after: BTreeMap<String, u64>,
    /// cellvisor's exit counts of the corporate cell (calls, mmio, sysreg, wfi, irq) around the reads.
    exits: Option<([u64; 5], [u64; 5])>,
    /// How the page cache was bypassed.
    method: &'static str,
}

impl DiskRun {
    fn interrupt_delta(&self, name: &str) -> u64 {
        let after = self.interrupts_after.get(name).copied().unwrap_or(0);
        after.saturating_sub(self.interrupts_before.get(name).copied().unwrap_or(0))
    }

    fn all_interrupts_delta(&self) -> u64 {
        self.interrupts_after
            .keys()
            .filter(|name| name.as_str() != "Err")
            .map(|name| self.interrupt_delta(name))
            .sum()
    }

    fn exit_delta(&self, index: usize) -> Option<u64> {
        self.exits
            .map(|(before, after)| after[index].saturating_sub(before[index]))
    }
}

const EXIT_NAMES: [&str; 5] = ["calls", "mmio", "sysreg", "wfi", "irq"];

fn disk_run(
    qemu: &Qemu,
    env: &str,
    mode: Mode,
    disk: &Path,
    megabytes: u64,
    log: &Path,
) -> Result<DiskRun> {
    let cellvisor = env == "cellvisor";
    let command = if cellvisor {
        let mut command = cellvisor_command(qemu, &images::bundle_path("linux"), "linux", mode);
        command.args(cellvisor_tests::passthrough_device_args(disk, false));
        command
    } else {
        let guest = crate::debian::linux_guest()?;
        let Some(corporate) = images::layout("linux")?.cells.get(1) else {
            fail!("layout linux has no corporate cell");
        };
        let mut command = native_linux_command(
            qemu,
            &guest.kernel_image,
            &util::out_dir().join("initrd-corporate.cpio.gz"),
            corporate.bootargs,
            mode,
        );
        let file = disk.to_string_lossy().replace(',', ",,");
        command.args([
            "-drive".to_owned(),
            format!("file={file},if=none,format=raw,id=disk0"),
            "-device".to_owned(),
            "virtio-blk-device,drive=disk0".to_owned(),
        ]);
        command
    };
    let mut session = Session::start(command)?;
    let outcome = (|| -> Result<DiskRun> {
        let boot = Duration::from_secs(240);
        let (_, mounted) = session.wait_for("cellvisor-disk: mounted /dev/vda", 0, boot)?;
        let (_, mut since) = session.wait_for("cellvisor-ready: corporate ", mounted, boot)?;
        if cellvisor {
            session.wait_for("cellvisor-ready: personal ", 0, boot)?;
            since = since.max(session.mark());
            session.send(&[cellvisor_tests::CONSOLE_ESCAPE, b'2'])?;
            session.wait_for(
                "console input now goes to corporate",
                since,
                Duration::from_secs(30),
            )?;
        }
        let command_timeout = Duration::from_secs(300);
        session.shell("true", command_timeout)?;
        // busybox dd supports iflag=direct (O_DIRECT): the guest page cache is bypassed.
        let mut run = DiskRun {
            method: "iflag=direct",
            ..DiskRun::default()
        };
        let probe = session.shell(
            "dd if=/dev/vda of=/dev/null bs=1M count=1 iflag=direct 2>&1",
            command_timeout,
        )?;
        let direct = probe.contains("1+0 records in");
        if !direct {
            run.method = "drop_caches + plain read";
        }
        run.interrupts_before =
            interrupt_totals(&session.shell("cat /proc/interrupts", command_timeout)?);
        if cellvisor {
            let before = session.cell_exits("corporate")?;
            run.exits = Some((before, before));
        }
        // busybox dd prints no timing line and busybox date has no %N: the guest's monotonic
        // clock (ns) is read around dd from /proc/timer_list (`now at <ns> nsecs`).
        let (drop, flag) = if direct {
            ("", " iflag=direct")
        } else {
            ("echo 3 > /proc/sys/vm/drop_caches; ", "")
        };
        let read = format!(
            "{drop}t0=$(grep -m1 'now at' /proc/timer_list); dd if=/dev/vda of=/dev/null bs=1M count={megabytes}{flag} 2>&1; t1=$(grep -m1 'now at' /proc/timer_list); echo \"bench-read $t0 $t1\""
        );
        let output = session.shell(
            &format!(
                "for i in {}; do {read}; done",
                (1..=DISK_REPEATS)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            command_timeout,
        )?;
        if let Some((before, _)) = run.exits {
            run.exits = Some((before, session.cell_exits("corporate")?));
        }
        run.interrupts_after =
            interrupt_totals(&session.shell("cat /proc/interrupts", command_timeout)?);
        if output.matches(&format!("{megabytes}+0 records in")).count() < DISK_REPEATS {
            fail!("dd did not read {megabytes} MiB {DISK_REPEATS} times:\n{output}");
        }
        run.bytes = (megabytes << 20) as f64;
        for line in output.lines() {
            if let Some(seconds) = read_seconds(line) {
                run.rates.push(run.bytes / 1e6 / seconds);
            }
        }
        if run.rates.is_empty() {
            fail!("no dd result in:\n{output}");
        }
        Ok(run)
    })();
    session.finish(log)?;
    outcome
}

fn disk_runs(
    qemu: &Qemu,
    quick: bool,
    runs: &mut BTreeMap<(&'static str, &'static str), DiskRun>,
) -> Result<u64> {
    let dir = bench_dir();
    let bundle = images::bundle_path("linux");
    if !bundle.is_file() || !util::out_dir().join("initrd-corporate.cpio.gz").is_file() {
        images::build_bundle(
            images::layout("linux")?,
            &Overrides::default(),
            &mut Ingredients::default(),
            &bundle,
        )?;
    }
    // A private copy of the corporate disk (64 MiB ext2): the shared image may be locked by an
    // interactive run, and the bench must not change it.
    let source = images::corporate_disk()?;
    let disk = dir.join("disk.img");
    std::fs::copy(&source, &disk)
        .context(|| format!("cannot copy {} to {}", source.display(), disk.display()))?;
    let size = std::fs::metadata(&disk)
        .context(|| format!("cannot read {}", disk.display()))?
        .len();
    let megabytes = if quick { 16 } else { 64 }.min(size >> 20);
    for mode in [Mode::Icount, Mode::Tcg] {
        for env in ["native", "cellvisor"] {
            let log = dir.join(format!("disk-{env}-{}.log", mode.name()));
            let run = disk_run(qemu, env, mode, &disk, megabytes, &log)?;
            eprintln!(
                "  disk read {env:<9} {:<6}: {} MB/s ({}, {} MiB x {})",
                mode.name(),
                run.rates
                    .iter()
                    .map(|rate| format!("{rate:.1}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                run.method,
                megabytes,
                run.rates.len()
            );
            let env: &'static str = if env == "native" {
                "native"
            } else {
                "cellvisor"
            };
            runs.insert((mode.name(), env), run);
        }
    }
    Ok(megabytes)
}

impl Report {
    fn disk_run(&self, mode: &str, env: &str) -> Option<&DiskRun> {
        self.disk
            .iter()
            .find(|((m, e), _)| *m == mode && *e == env)
            .map(|(_, run)| run)
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
            if native.is_none() && ours.is_none() {
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
        let _ = writeln!(
            out,
            "\n### Passthrough interrupts during the reads (corporate cell; exits from the `cells` table)\n"
        );
        let _ = writeln!(
            out,
            "| mode | disk interrupts (native) | disk interrupts | all guest interrupts | guest IPIs | irq exits | wfi exits | sysreg exits | mmio exits | calls | sysreg exits not from IPIs, per guest interrupt | EL2 instructions per disk interrupt (est.) |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        let per_interrupt = self.el2("timer");
        for mode in ["icount", "tcg"] {
            let Some(run) = self.disk_run(mode, "cellvisor") else {
                continue;
            };
            let native_virtio = self.disk_run(mode, "native").map_or("-".to_owned(), |run| {
                run.interrupt_delta("virtio0").to_string()
            });
            let virtio = run.interrupt_delta("virtio0");
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
