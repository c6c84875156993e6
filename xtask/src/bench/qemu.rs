//! QEMU for the bench: time modes, command lines, runs to completion and Linux boots.
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cellvisor_tests::{Artifacts, GicVersion, QemuConfig};

use crate::images;
use crate::prereq::Qemu;
use crate::util::{self, Context, Result};

use super::parse::{Boot, entry_seconds};

/// How QEMU keeps time in a run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Mode {
    /// `-icount shift=0,sleep=off`: one instruction per nanosecond, deterministic.
    Icount,
    /// Plain TCG on the host clock.
    Tcg,
}

impl Mode {
    /// The mode's name in reports and log file names.
    pub(super) fn name(self) -> &'static str {
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

/// Runs `command` to completion (or `timeout`), returning stdout+stderr.
pub(super) fn run_to_end(mut command: Command, timeout: Duration, log: &Path) -> Result<String> {
    let (mut child, receiver) = spawn_piped(&mut command)?;
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

/// One console line and when it arrived.
type Line = (Instant, String);

/// Starts `command` with stdin closed and stdout and stderr read line by line (each line with its
/// arrival time) into the returned channel, which ends when both streams have.
fn spawn_piped(command: &mut Command) -> Result<(std::process::Child, mpsc::Receiver<Line>)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .context(|| format!("cannot start {}", util::show(command)))?;
    let (sender, receiver) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        spawn_lines(stdout, sender.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        spawn_lines(stderr, sender);
    }
    Ok((child, receiver))
}

/// A thread sending `stream`'s lines to `sender`.
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
pub(super) fn native_linux_command(
    qemu: &Qemu,
    kernel: &Path,
    initrd: &Path,
    bootargs: &str,
    mode: Mode,
) -> Command {
    native_linux_command_on(qemu, "virt,gic-version=3", kernel, initrd, bootargs, mode)
}

/// The machine of the disk bench's native twin: no ITS, so Linux drives the virtio-blk PCI
/// function with INTx (SPI 5, INTID 37) as the corporate cell does (cellvisor gives cells no ITS);
/// with an ITS it would take MSI-X, a different interrupt path. No SMMU: natively the device's DMA
/// goes straight to memory.
const NATIVE_DISK_MACHINE: &str = "virt,gic-version=3,its=off";

/// [`native_linux_command`] on [`NATIVE_DISK_MACHINE`] with the corporate cell's PCI disk on
/// `disk` (the same `-drive` and `-device` as under cellvisor, from
/// [`cellvisor_tests::pci_disk_device_args`]; Linux assigns its BARs itself).
pub(super) fn native_disk_command(
    qemu: &Qemu,
    kernel: &Path,
    initrd: &Path,
    bootargs: &str,
    mode: Mode,
    disk: &Path,
) -> Command {
    let mut command =
        native_linux_command_on(qemu, NATIVE_DISK_MACHINE, kernel, initrd, bootargs, mode);
    command.args(cellvisor_tests::pci_disk_device_args(disk, false));
    command
}

/// [`native_linux_command`] with `machine` as the `-M` options.
fn native_linux_command_on(
    qemu: &Qemu,
    machine: &str,
    kernel: &Path,
    initrd: &Path,
    bootargs: &str,
    mode: Mode,
) -> Command {
    let mut command = qemu_command(qemu, machine, "2", "768M", mode);
    command
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(bootargs);
    command
}

/// QEMU running the release hypervisor with `bundle` and `cellvisor.layout=layout`.
pub(super) fn cellvisor_command(qemu: &Qemu, bundle: &Path, layout: &str, mode: Mode) -> Command {
    cellvisor_command_with(qemu, bundle, layout, mode, "")
}

/// [`cellvisor_command`] with `arguments` added to cellvisor's command line.
pub(super) fn cellvisor_command_with(
    qemu: &Qemu,
    bundle: &Path,
    layout: &str,
    mode: Mode,
    arguments: &str,
) -> Command {
    cellvisor_command_on(qemu, GicVersion::V3, bundle, layout, mode, arguments)
}

/// [`cellvisor_command_with`] on the `qemu-virt` board's machine with `gic`
/// ([`GicVersion::machine`]).
pub(super) fn cellvisor_command_on(
    qemu: &Qemu,
    gic: GicVersion,
    bundle: &Path,
    layout: &str,
    mode: Mode,
    arguments: &str,
) -> Command {
    let cpus = cellvisor_tests::machine_cpus(layout).to_string();
    let mut command = qemu_command(qemu, gic.machine(), &cpus, "2G", mode);
    command
        .args(cellvisor_tests::SMMU_ARGS)
        .arg("-kernel")
        .arg(images::hypervisor_image())
        .arg("-initrd")
        .arg(bundle)
        .arg("-append")
        .arg(format!("cellvisor.layout={layout} {arguments}").trim_end());
    command
}

/// Runs `command` until it exits (or `timeout`), returning its console lines, each with the host
/// seconds since the start at which it arrived; the transcript goes to `log`.
pub(super) fn run_timed(
    mut command: Command,
    timeout: Duration,
    log: &Path,
) -> Result<Vec<(f64, String)>> {
    let started = Instant::now();
    let (mut child, receiver) = spawn_piped(&mut command)?;
    let deadline = started + timeout;
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok((when, line)) => lines.push((when.duration_since(started).as_secs_f64(), line)),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                lines.push((timeout.as_secs_f64(), "xtask bench: timed out".to_owned()));
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let text: String = lines
        .iter()
        .map(|(seconds, line)| format!("{seconds:10.6} {line}\n"))
        .collect();
    std::fs::write(log, text).context(|| format!("cannot write {}", log.display()))?;
    Ok(lines)
}

/// The machine the bench guest runs on natively with `gic`: the same GIC model as under cellvisor,
/// without EL2 (QEMU would start the guest there) and without the SMMU (no device natively).
pub(super) fn native_micro_machine(gic: GicVersion) -> &'static str {
    match gic {
        GicVersion::V3 => "virt,gic-version=3",
        GicVersion::V2 => "virt,gic-version=2",
    }
}

/// Native QEMU running the bench guest on [`native_micro_machine`]`(gic)`, its bootargs loaded
/// from `args_file`.
pub(super) fn native_micro_command(
    qemu: &Qemu,
    gic: GicVersion,
    args_file: &Path,
    mode: Mode,
) -> Command {
    let mut command = qemu_command(qemu, native_micro_machine(gic), "2", "64M", mode);
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

/// Native QEMU `raspi4b` (its own 4 Cortex-A72 and 2 GiB) booting `setup`'s kernel, initramfs and
/// bootargs on the board's real DTB `dtb`, headless with the PL011 on stdio, in `mode`.
pub(super) fn raspi4b_native_linux_command(
    qemu: &Qemu,
    dtb: &Path,
    setup: &LinuxSetup,
    mode: Mode,
) -> Command {
    let mut command = Command::new(&qemu.path);
    command.args(["-M", "raspi4b"]);
    command.args(cellvisor_tests::HEADLESS_SERIAL_ARGS);
    command.args(mode.args());
    command
        .arg("-dtb")
        .arg(dtb)
        .arg("-kernel")
        .arg(&setup.kernel)
        .arg("-initrd")
        .arg(&setup.initrd)
        .arg("-append")
        .arg(setup.bootargs);
    command
}

/// QEMU `raspi4b` running the board's image with the bundle of `layout` and the real DTB from
/// `artifacts`' `raspi4b/` ([`QemuConfig::raspi4b`], as `cargo xtask run --board raspi4b`), in
/// `mode`.
pub(super) fn raspi4b_cellvisor_command(
    qemu: &Qemu,
    artifacts: &Artifacts,
    layout: &str,
    mode: Mode,
) -> Command {
    let mut command = Command::new(&qemu.path);
    command.args(QemuConfig::raspi4b(layout).qemu_args(artifacts));
    command.args(mode.args());
    command
}

/// Runs `command` until `done`, given each console line with the host seconds since the start at
/// which it arrived, returns true (or QEMU exits, or `timeout`); the transcript, each line with
/// its time, goes to `log`. Returns whether `done` ended the run.
pub(super) fn run_until(
    mut command: Command,
    timeout: Duration,
    log: &Path,
    mut done: impl FnMut(f64, &str) -> bool,
) -> Result<bool> {
    let started = Instant::now();
    let (mut child, receiver) = spawn_piped(&mut command)?;
    let deadline = started + timeout;
    let mut text = String::new();
    let mut finished = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(left) {
            Ok((when, line)) => {
                let seconds = when.duration_since(started).as_secs_f64();
                let _ = writeln!(text, "{seconds:10.6} {line}");
                if done(seconds, &line) {
                    finished = true;
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                text.push_str("xtask bench: timed out\n");
                break;
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::write(log, text).context(|| format!("cannot write {}", log.display()))?;
    Ok(finished)
}

/// What the native Linux boot runs.
pub(super) struct LinuxSetup {
    /// The Debian kernel.
    pub(super) kernel: PathBuf,
    /// The personal initramfs.
    pub(super) initrd: PathBuf,
    /// The personal cell's bootargs.
    pub(super) bootargs: &'static str,
}

/// Boots Linux in `config` (one of [`BOOT_CONFIGS`](super::BOOT_CONFIGS)) and `mode` to its
/// banner(s), writing the transcript to `log`.
pub(super) fn boot_linux(
    qemu: &Qemu,
    setup: &LinuxSetup,
    config: &str,
    mode: Mode,
    log: &Path,
) -> Result<Boot> {
    let mut command = if config == "native" {
        native_linux_command(qemu, &setup.kernel, &setup.initrd, setup.bootargs, mode)
    } else {
        let layout = match config {
            "one cell" => "linux-personal",
            "two cells, 2 CPUs" => "linux-shared",
            _ => "linux",
        };
        let mut command = cellvisor_command(qemu, &images::bundle_path(layout), layout, mode);
        // cellvisor refuses to boot a layout whose PCI functions are missing: attach the layout's
        // devices as the tests do (the disk as a snapshot, so the image is left unchanged).
        command.args(
            cellvisor_tests::PassthroughDevices::of_layout(layout)
                .args(&images::corporate_disk()?, true),
        );
        command
    };
    let needles: Vec<&str> = if config.starts_with("two cells") {
        vec!["cellvisor-ready: personal ", "cellvisor-ready: corporate "]
    } else {
        vec!["cellvisor-ready: personal "]
    };
    let started = Instant::now();
    let (mut child, receiver) = spawn_piped(&mut command)?;
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
