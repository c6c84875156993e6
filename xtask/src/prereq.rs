//! Prerequisite checks: QEMU (installed with apt when we can), and host tools. Every missing thing
//! is one line saying what is missing and how to fix it.
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fail;
use crate::util::{self, Result};

/// Oldest QEMU that runs cellvisor's board as documented (`-cpu max` with a 1 GHz counter, ...).
pub const MIN_QEMU: (u32, u32) = (9, 1);

/// A usable QEMU.
#[derive(Clone, Debug)]
pub struct Qemu {
    /// The `qemu-system-aarch64` binary.
    pub path: PathBuf,
    /// Its version as printed (e.g. `10.0.2`).
    pub version: String,
}

/// Parses the `major.minor.patch` from `qemu-system-aarch64 --version`.
pub fn parse_qemu_version(text: &str) -> Option<(u32, u32, u32)> {
    let rest = text.split("version ").nth(1)?;
    let word = rest
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?;
    let mut parts = word.split('.').map(|part| part.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

fn probe(path: &Path) -> Option<(u32, u32, u32)> {
    let output = Command::new(path).arg("--version").output().ok()?;
    parse_qemu_version(&String::from_utf8_lossy(&output.stdout))
}

fn install_command() -> String {
    if util::os_release("VERSION_CODENAME").as_deref() == Some("bookworm") {
        "echo 'deb http://deb.debian.org/debian bookworm-backports main' | sudo tee /etc/apt/sources.list.d/backports.list && sudo apt-get update && sudo apt-get install -y -t bookworm-backports qemu-system-arm".to_owned()
    } else {
        "sudo apt-get update && sudo apt-get install -y qemu-system-arm".to_owned()
    }
}

fn has_backports_source() -> bool {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(entries.flatten().map(|entry| entry.path()));
    }
    files.iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines().any(|line| {
                !line.trim_start().starts_with('#') && line.contains("bookworm-backports")
            })
        })
    })
}

fn install_qemu() -> Result<()> {
    eprintln!("Installing QEMU with apt (qemu-system-arm)...");
    if util::os_release("VERSION_CODENAME").as_deref() == Some("bookworm") {
        if !has_backports_source() {
            let line = "deb http://deb.debian.org/debian bookworm-backports main\n";
            std::fs::write("/etc/apt/sources.list.d/cellvisor-backports.list", line).map_err(
                |error| {
                    util::Error(format!(
                        "cannot add bookworm-backports to apt sources: {error}"
                    ))
                },
            )?;
        }
        util::run(Command::new("apt-get").args(["update", "-q"]))?;
        util::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args([
                    "install",
                    "-y",
                    "-q",
                    "-t",
                    "bookworm-backports",
                    "qemu-system-arm",
                ]),
        )
    } else {
        util::run(Command::new("apt-get").args(["update", "-q"]))?;
        util::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-q", "qemu-system-arm"]),
        )
    }
}

/// Finds `qemu-system-aarch64` ≥ [`MIN_QEMU`] (`CELLVISOR_QEMU` may name one); installs it with apt
/// when running as root on Debian/Ubuntu.
pub fn qemu() -> Result<Qemu> {
    let (min_major, min_minor) = MIN_QEMU;
    let good = |version: (u32, u32, u32)| (version.0, version.1) >= MIN_QEMU;
    let show = |version: (u32, u32, u32)| format!("{}.{}.{}", version.0, version.1, version.2);
    if let Some(path) = std::env::var_os("CELLVISOR_QEMU").map(PathBuf::from) {
        return match probe(&path) {
            Some(version) if good(version) => Ok(Qemu {
                path,
                version: show(version),
            }),
            Some(version) => fail!(
                "CELLVISOR_QEMU={} is QEMU {}, need >= {min_major}.{min_minor}",
                path.display(),
                show(version)
            ),
            None => fail!(
                "CELLVISOR_QEMU={} does not run as qemu-system-aarch64",
                path.display()
            ),
        };
    }
    let found = util::which("qemu-system-aarch64").map(|path| {
        let version = probe(&path);
        (path, version)
    });
    if let Some((path, Some(version))) = &found
        && good(*version)
    {
        return Ok(Qemu {
            path: path.clone(),
            version: show(*version),
        });
    }
    let problem = match &found {
        None => "qemu-system-aarch64 is not installed".to_owned(),
        Some((path, Some(version))) => {
            format!("{} is QEMU {}, too old", path.display(), show(*version))
        }
        Some((path, None)) => format!("{} does not report a version", path.display()),
    };
    if !(util::is_root() && util::is_debian_like()) {
        fail!(
            "{problem} (need QEMU >= {min_major}.{min_minor}): run `{}`",
            install_command()
        );
    }
    eprintln!("{problem}; installing it");
    install_qemu()?;
    match util::which("qemu-system-aarch64")
        .and_then(|path| probe(&path).map(|version| (path, version)))
    {
        Some((path, version)) if good(version) => Ok(Qemu {
            path,
            version: show(version),
        }),
        Some((path, version)) => fail!(
            "apt installed QEMU {} at {}, need >= {min_major}.{min_minor}: install a newer qemu-system-arm (e.g. from backports)",
            show(version),
            path.display()
        ),
        None => fail!(
            "apt did not provide qemu-system-aarch64: run `{}`",
            install_command()
        ),
    }
}

/// The cross-compilation targets the images are built for (also listed in rust-toolchain.toml).
pub const RUST_TARGETS: [&str; 2] = [
    crate::images::HYPERVISOR_TARGET,
    crate::images::GUEST_TARGET,
];

/// The [`RUST_TARGETS`] whose standard library the workspace's toolchain lacks.
fn missing_rust_targets() -> Result<Vec<&'static str>> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .current_dir(util::workspace_root())
        .args(["--print", "sysroot"])
        .output()
        .map_err(|error| {
            util::Error(format!(
                "cannot run `{} --print sysroot` ({error}): install Rust with rustup (https://rustup.rs)",
                rustc.to_string_lossy()
            ))
        })?;
    if !output.status.success() {
        fail!(
            "`{} --print sysroot` failed: {}",
            rustc.to_string_lossy(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    Ok(RUST_TARGETS
        .into_iter()
        .filter(|target| {
            !sysroot
                .join("lib/rustlib")
                .join(target)
                .join("lib")
                .is_dir()
        })
        .collect())
}

/// Makes sure the toolchain can build for [`RUST_TARGETS`]: adds missing targets with rustup (which
/// does not always do it by itself from rust-toolchain.toml, e.g. with `RUSTUP_AUTO_INSTALL=0`).
/// Checked once per xtask run.
pub fn rust_targets() -> Result<()> {
    static CHECKED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| ensure_rust_targets().map_err(|error| error.0))
        .clone()
        .map_err(util::Error)
}

fn ensure_rust_targets() -> Result<()> {
    let missing = missing_rust_targets()?;
    if missing.is_empty() {
        return Ok(());
    }
    let add = format!("rustup target add {}", missing.join(" "));
    if util::which("rustup").is_none() {
        fail!(
            "the Rust standard library for {} is not installed and rustup is missing: install the target(s) for this toolchain (with rustup: `{add}`)",
            missing.join(", ")
        );
    }
    eprintln!(
        "Rust target(s) {} missing; installing them",
        missing.join(", ")
    );
    util::run(
        Command::new("rustup")
            .current_dir(util::workspace_root())
            .args(["target", "add"])
            .args(&missing),
    )
    .map_err(|error| util::Error(format!("{error}: run `{add}` in the workspace")))?;
    let still = missing_rust_targets()?;
    if !still.is_empty() {
        fail!(
            "`{add}` did not install {}: run it by hand in the workspace and check `rustup show`",
            still.join(", ")
        );
    }
    Ok(())
}

/// Makes sure a host tool is present; installs `package` with apt when we can.
pub fn tool(program: &str, package: &str) -> Result<()> {
    if util::which(program).is_some() {
        return Ok(());
    }
    if util::is_root() && util::is_debian_like() {
        eprintln!("`{program}` is missing; installing {package}");
        util::run(
            Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-q", package]),
        )?;
        if util::which(program).is_some() {
            return Ok(());
        }
    }
    fail!("`{program}` is missing: run `sudo apt-get install -y {package}`")
}

/// Tools for building Linux cell images: gzip for the initramfs, dpkg-deb and sha256sum for the
/// Debian packages (apt-get itself is checked when fetching).
pub fn linux_tools() -> Result<()> {
    tool("gzip", "gzip")?;
    tool("sha256sum", "coreutils")?;
    let fetching = std::env::var_os("CELLVISOR_LINUX_IMAGE").is_none()
        || std::env::var_os("CELLVISOR_BUSYBOX").is_none();
    if fetching && util::is_debian_like() {
        tool("dpkg-deb", "dpkg")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_qemu_versions() {
        let debian =
            "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright";
        assert_eq!(parse_qemu_version(debian), Some((10, 0, 2)));
        assert_eq!(
            parse_qemu_version("QEMU emulator version 7.2.15"),
            Some((7, 2, 15))
        );
        assert_eq!(
            parse_qemu_version("QEMU emulator version 9.1"),
            Some((9, 1, 0))
        );
        assert_eq!(parse_qemu_version("nonsense"), None);
        assert!((9, 1) >= MIN_QEMU && (9, 0) < MIN_QEMU && (10, 0) >= MIN_QEMU);
    }
}
