//! `cargo xtask run`: boot cellvisor in QEMU, interactively or as a headless readiness check.
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use cellvisor_board::{CellConfig, Layout};
use cellvisor_tests::{
    Artifacts, DISPLAY_DEVICE_ARGS, GicVersion, Machine, PassthroughDevices, QemuBoard, QemuConfig,
    SMMU_ARGS,
};

use crate::boards::BoardTarget;
use crate::debian::KernelPin;
use crate::fail;
use crate::images::{self, Ingredients, Overrides};
use crate::prereq::{self, Qemu};
use crate::util::{self, Result};

/// Options of `cargo xtask run`.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Layout to boot.
    pub layout: String,
    /// Headless readiness check instead of an interactive console.
    pub check: bool,
    /// Seconds `--check` waits for every cell.
    pub timeout: u64,
    /// Hypervisor built with the release profile.
    pub release: bool,
    /// The Debian kernel the layout's Linux cells boot (`--linux`).
    pub kernel: KernelPin,
    /// Per-cell overrides.
    pub overrides: Overrides,
    /// Extra QEMU arguments (after `--`).
    pub qemu_args: Vec<String>,
    /// The `virt` machine's GIC (`--gic 2|3`).
    pub gic: GicVersion,
    /// The board (`--board`; one QEMU can boot).
    pub board: &'static BoardTarget,
    /// The phone's screen and input (`--display`): QEMU's `ramfb` and virtio-mmio keyboard and
    /// tablet ([`DISPLAY_DEVICE_ARGS`]), shown in a GTK or SDL window; with `--check`, the same
    /// devices headless.
    pub display: bool,
}

/// Default layout of `cargo xtask run`.
pub const DEFAULT_LAYOUT: &str = "linux";
/// Default `--timeout`.
pub const DEFAULT_TIMEOUT: u64 = 120;

/// Builds what the layout needs and returns (QEMU, bundle path).
fn prepare(options: &RunOptions, layout: &Layout) -> Result<(Qemu, PathBuf)> {
    let qemu = prereq::qemu()?;
    options.overrides.check(layout)?;
    eprintln!("Building the hypervisor image");
    images::build_hypervisor(options.release)?;
    let mut ingredients = Ingredients::with_kernel(options.kernel);
    eprintln!(
        "Building the guest bundle of layout `{}` ({})",
        layout.name, options.kernel.role
    );
    let bundle = images::kernel_bundle_path(layout.name, &options.kernel);
    images::build_bundle(layout, &Overrides::default(), &mut ingredients, &bundle)?;
    if PassthroughDevices::of_layout(layout.name) != PassthroughDevices::None {
        images::corporate_disk()?;
    }
    if options.overrides.is_empty() {
        return Ok((qemu, bundle));
    }
    // Overrides go into a separate bundle so the tests' bundles stay as built.
    let path = util::out_dir().join("run").join(
        options
            .kernel
            .file_name(&format!("bundle-{}.cpio", layout.name)),
    );
    eprintln!("Building the bundle with overrides");
    images::build_bundle(layout, &options.overrides, &mut ingredients, &path)?;
    Ok((qemu, path))
}

/// `cargo xtask run` on a board other than the default: its image, bundle and DTB, then QEMU.
fn run_board(options: &RunOptions) -> Result<()> {
    let target = options.board;
    if target.qemu_board("run")? != QemuBoard::Raspi4b {
        fail!("board `{}` is not booted this way", target.name);
    }
    let layout = images::board_layout(target, &options.layout)?;
    if !options.overrides.is_empty() || options.kernel.cache != crate::debian::DEFAULT_KERNEL.cache
    {
        fail!(
            "--kernel, --initrd, --append and --linux work on qemu-virt only for now; board `{}` boots its layouts' own images",
            target.name
        );
    }
    let qemu = prereq::qemu()?;
    let build = images::BuildOptions {
        release: options.release,
        layouts: vec![layout.name.to_owned()],
        board: Some(target.name.to_owned()),
    };
    if let Some(failure) = images::build_board(target, &build).into_iter().next() {
        fail!("{failure}");
    }
    let artifacts = Artifacts {
        out_dir: util::out_dir(),
        qemu: qemu.path.clone(),
    };
    let config = QemuConfig {
        extra_args: options.qemu_args.clone(),
        ..QemuConfig::raspi4b(layout.name)
    };
    if options.check {
        return check_with(options, layout, &qemu, &artifacts, &config);
    }
    let mut command = Command::new(&qemu.path);
    // Interactive: QEMU's own escape on Ctrl-] (see `run`), the machine's console on stdio.
    command
        .args(["-nographic", "-echr", "0x1d", "-no-reboot", "-nic", "none"])
        .args(config.raspi4b_machine_args(&artifacts));
    run_interactive(&mut command, false)
}

/// Runs QEMU's `command` on this terminal after saying how to drive the console (and, with
/// `window`, the screen).
fn run_interactive(command: &mut Command, window: bool) -> Result<()> {
    print_console_help(window);
    eprintln!("$ {}", util::show(command));
    let status = util::status_of(command)?;
    if !status.success() {
        fail!("QEMU exited with {status}");
    }
    Ok(())
}

/// How to drive the console of an interactive run (and, with `window`, its screen).
fn print_console_help(window: bool) {
    eprintln!();
    eprintln!(
        "cellvisor console: Ctrl-A 1 / Ctrl-A 2 focus a cell, Ctrl-A m opens the management prompt."
    );
    eprintln!(
        "QEMU's own escape is Ctrl-] (not Ctrl-A, so Ctrl-A reaches cellvisor): Ctrl-] x quits, Ctrl-] c toggles the monitor."
    );
    if window {
        eprintln!(
            "The window is the phone's screen: it shows the focused cell, keys and touch (the mouse) go to it, and the Pause key switches to the next cell."
        );
    }
}

/// The window backend `--display` opens (GTK, else SDL), after checking there is a desktop to
/// open it on; fails in one line before anything is built.
fn window_backend() -> Result<&'static str> {
    let variable = |name: &str| std::env::var(name).ok();
    if let Some(problem) = prereq::desktop_problem(
        variable("DISPLAY").as_deref(),
        variable("WAYLAND_DISPLAY").as_deref(),
    ) {
        fail!("{problem}");
    }
    prereq::window_backend(&prereq::qemu()?)
}

/// QEMU's console and display arguments of an interactive run: the serial console (multiplexed
/// with QEMU's monitor, escape Ctrl-]) on this terminal, and no display (`-nographic`) or the
/// `window` backend's.
fn console_args(window: Option<&str>) -> Vec<String> {
    let mut args: Vec<&str> = match window {
        None => vec!["-nographic"],
        // What -nographic sets up besides no display: the console (and QEMU's monitor, behind
        // Ctrl-]) stays on this terminal, not in the window, and no parallel port console.
        Some(backend) => vec![
            "-display",
            backend,
            "-serial",
            "mon:stdio",
            "-parallel",
            "none",
        ],
    };
    args.extend(["-echr", "0x1d"]);
    args.into_iter().map(str::to_owned).collect()
}

/// `cargo xtask run`.
pub fn run(options: &RunOptions) -> Result<()> {
    if !options.board.is_default() {
        return run_board(options);
    }
    let layout = images::layout(&options.layout)?;
    let window = if options.display && !options.check {
        Some(window_backend()?)
    } else {
        None
    };
    let (qemu, bundle) = prepare(options, layout)?;
    if options.check {
        return check(options, layout, &qemu, bundle);
    }
    let mut command = Command::new(&qemu.path);
    let cpus = cellvisor_tests::machine_cpus(layout.name).to_string();
    command.args([
        "-M",
        options.gic.machine(),
        SMMU_ARGS[0],
        SMMU_ARGS[1],
        "-cpu",
        "max,sve=off,sme=off",
        "-smp",
        &cpus,
        "-m",
        "2G",
    ]);
    command.args(console_args(window));
    command.args([
        "-no-reboot",
        // No default network card: see cellvisor_tests::HEADLESS_SERIAL_ARGS.
        "-nic",
        "none",
        "-kernel",
    ]);
    command
        .arg(images::hypervisor_image())
        .arg("-initrd")
        .arg(&bundle);
    // On a terminal, cellvisor colours the cell prefixes and redraws its prompt in place.
    let color = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        " cellvisor.color=on"
    } else {
        ""
    };
    command
        .arg("-append")
        .arg(format!("cellvisor.layout={}{color}", layout.name));
    // The layout's devices (PCI functions behind the SMMU, or virtio-mmio slots); writes persist.
    let devices = PassthroughDevices::of_layout(layout.name);
    if devices != PassthroughDevices::None {
        command.args(devices.args(&images::corporate_disk()?, false));
    }
    // The screen and input devices come after the passthrough devices (their virtio-mmio slots).
    if window.is_some() {
        command.args(DISPLAY_DEVICE_ARGS);
    }
    command.args(&options.qemu_args);
    run_interactive(&mut command, window.is_some())
}

fn cpu_list(cpus: &[usize]) -> String {
    match (cpus.first(), cpus.last()) {
        (Some(first), Some(last)) if cpus.len() > 1 && last - first + 1 == cpus.len() => {
            format!("{first}-{last}")
        }
        _ => cpus
            .iter()
            .map(|cpu| cpu.to_string())
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// What a cell prints when it is up: Linux cells' init prints `cellvisor-ready: <cell> uptime=...`;
/// the Rust test guest greets from its first vCPU.
fn ready_needle(cell: &CellConfig) -> String {
    if cell.kernel == images::TEST_GUEST_ENTRY {
        format!("[{}] test-guest: hello", cell.name)
    } else {
        format!("cellvisor-ready: {} ", cell.name)
    }
}

/// The value after `key=` in a line.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    line[start..].split_whitespace().next()
}

/// `cargo xtask run --check`: boot headless, wait for every cell's ready banner, print a table.
fn check(options: &RunOptions, layout: &Layout, qemu: &Qemu, bundle: PathBuf) -> Result<()> {
    let artifacts = Artifacts {
        out_dir: util::out_dir(),
        qemu: qemu.path.clone(),
    };
    let config = QemuConfig {
        extra_args: options.qemu_args.clone(),
        bundle: Some(bundle),
        gic: options.gic,
        display: options.display,
        ..QemuConfig::new(layout.name)
    };
    check_with(options, layout, qemu, &artifacts, &config)
}

/// [`check`] of the machine `config` describes.
fn check_with(
    options: &RunOptions,
    layout: &Layout,
    qemu: &Qemu,
    artifacts: &Artifacts,
    config: &QemuConfig,
) -> Result<()> {
    eprintln!(
        "Booting layout `{}` headless (QEMU {}); waiting up to {} s for every cell's ready banner",
        layout.name, qemu.version, options.timeout
    );
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.timeout);
    let mut machine = Machine::boot_named(artifacts, config, "run-check")
        .map_err(|error| util::Error(format!("cannot start QEMU: {error}")))?;
    // Poll for every banner at once so each cell's time is when its own banner appeared.
    let mut ready: Vec<Option<(f64, String)>> = vec![None; layout.cells.len()];
    loop {
        // Sample QEMU's state before scanning, so output printed just before it exited is seen.
        let running = machine.is_running();
        if !running {
            machine.kill();
        }
        for (cell, slot) in layout.cells.iter().zip(ready.iter_mut()) {
            if slot.is_none()
                && let Some(found) = machine.find(&ready_needle(cell), 0)
            {
                if !found.line.contains(&format!("[{}]", cell.name)) {
                    eprintln!(
                        "warning: the banner of `{}` lacks the console prefix `[{}]`: {}",
                        cell.name, cell.name, found.line
                    );
                }
                *slot = Some((started.elapsed().as_secs_f64(), found.line));
            }
        }
        if ready.iter().all(Option::is_some) {
            break;
        }
        let waiting: Vec<&str> = layout
            .cells
            .iter()
            .zip(&ready)
            .filter(|(_, slot)| slot.is_none())
            .map(|(cell, _)| cell.name)
            .collect();
        // A cell whose kernel panicked will never be ready: fail at once instead of at the timeout.
        let transcript = machine.transcript();
        let panicked = waiting.iter().find_map(|name| {
            let prefix = format!("[{name}]");
            transcript
                .lines()
                .find(|line| {
                    line.starts_with(&prefix) && line.contains("Kernel panic - not syncing")
                })
                .map(|line| (*name, line.to_owned()))
        });
        if !running || Instant::now() >= deadline || panicked.is_some() {
            // Stop QEMU and collect the rest of its output before quoting it.
            machine.kill();
            let _ = machine.save_transcript();
            eprintln!("--- last 60 lines of the console ---");
            eprintln!("{}", cellvisor_tests::last_lines(&machine.transcript(), 60));
            let stderr = machine.qemu_stderr();
            if !stderr.trim().is_empty() {
                eprintln!("--- QEMU stderr ---\n{}", stderr.trim_end());
            }
            let log = machine.log_path().map(util::pretty).unwrap_or_default();
            if let Some((name, line)) = panicked {
                fail!(
                    "cell `{name}` panicked before its ready banner: {line}; full transcript: {log}"
                );
            }
            let why = if running {
                format!("timed out after {} s", options.timeout)
            } else {
                "QEMU exited".to_owned()
            };
            fail!(
                "cell `{}` did not print its ready banner ({why}; not ready: {}); full transcript: {log}",
                waiting[0],
                waiting.join(", ")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut rows = Vec::new();
    for (cell, slot) in layout.cells.iter().zip(ready) {
        let Some((host, line)) = slot else { continue };
        let ram: u64 = cell.memory.iter().map(|region| region.physical.size).sum();
        let uptime = field(&line, "uptime=").unwrap_or("-").to_owned();
        rows.push((
            cell.name,
            cpu_list(cell.cpus),
            format!("{} MiB", ram >> 20),
            host,
            uptime,
        ));
    }
    let _ = machine.save_transcript();
    drop(machine);
    println!();
    println!(
        "{:<12} {:<6} {:<10} {:>16} {:>14}",
        "cell", "CPUs", "RAM", "host s to ready", "guest uptime"
    );
    for (name, cpus, ram, host, uptime) in &rows {
        println!("{name:<12} {cpus:<6} {ram:<10} {host:>16.2} {uptime:>14}");
    }
    println!();
    println!(
        "All {} cells of layout `{}` are ready.",
        rows.len(),
        layout.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_and_fields() {
        assert_eq!(cpu_list(&[0, 1]), "0-1");
        assert_eq!(cpu_list(&[2]), "2");
        assert_eq!(cpu_list(&[0, 2]), "0,2");
        assert_eq!(
            field(
                "[personal] cellvisor-ready: personal uptime=1.23",
                "uptime="
            ),
            Some("1.23")
        );
        assert_eq!(field("no banner", "uptime="), None);
    }

    #[test]
    fn a_window_keeps_the_console_on_the_terminal() {
        assert_eq!(console_args(None), ["-nographic", "-echr", "0x1d"]);
        assert_eq!(
            console_args(Some("gtk")),
            [
                "-display",
                "gtk",
                "-serial",
                "mon:stdio",
                "-parallel",
                "none",
                "-echr",
                "0x1d"
            ]
        );
    }
}
