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

/// The archive written into `bookworm-backports` sources when the host's own apt sources name none.
const FALLBACK_DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// Whether `uri` is the root of a Debian archive (`http(s)://HOST/.../debian`), where suites such as
/// `bookworm-backports` live; security and ports archives are not.
fn is_debian_archive(uri: &str) -> bool {
    let Some(rest) = uri
        .strip_prefix("http://")
        .or_else(|| uri.strip_prefix("https://"))
    else {
        return false;
    };
    rest.trim_end_matches('/')
        .split_once('/')
        .is_some_and(|(_, path)| path.rsplit('/').next() == Some("debian"))
}

/// The first Debian archive of a one-line-style sources file (`deb [OPTIONS] URI SUITE ...`).
fn mirror_in_list(text: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default().trim();
        let rest = line.strip_prefix("deb")?;
        let rest = rest.strip_prefix(char::is_whitespace)?.trim_start();
        // Options in brackets come before the URI.
        let rest = match rest.strip_prefix('[') {
            Some(options) => options.split_once(']')?.1,
            None => rest,
        };
        let uri = rest.split_whitespace().next()?;
        is_debian_archive(uri).then(|| uri.trim_end_matches('/').to_owned())
    })
}

/// The first Debian archive of a deb822 sources file: the `URIs:` of a stanza whose `Types:`
/// include `deb` and which is not `Enabled: no`.
fn mirror_in_deb822(text: &str) -> Option<String> {
    let uncommented: Vec<&str> = text
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .collect();
    uncommented
        .split(|line| line.trim().is_empty())
        .find_map(|stanza| {
            let field = |name: &str| {
                stanza.iter().find_map(|line| {
                    let (key, value) = line.split_once(':')?;
                    key.trim().eq_ignore_ascii_case(name).then(|| value.trim())
                })
            };
            let is_deb = field("Types")
                .is_some_and(|types| types.split_whitespace().any(|kind| kind == "deb"));
            let enabled = field("Enabled").is_none_or(|value| !value.eq_ignore_ascii_case("no"));
            if !is_deb || !enabled {
                return None;
            }
            field("URIs")?
                .split_whitespace()
                .find(|uri| is_debian_archive(uri))
                .map(|uri| uri.trim_end_matches('/').to_owned())
        })
}

/// The Debian archive the first of `sources` (file name, contents; in apt's reading order) names:
/// `.sources` files are deb822, everything else one-line style.
fn mirror_in_sources(sources: &[(String, String)]) -> Option<String> {
    sources.iter().find_map(|(name, text)| {
        if name.ends_with(".sources") {
            mirror_in_deb822(text)
        } else {
            mirror_in_list(text)
        }
    })
}

/// The host's apt sources in apt's reading order: `/etc/apt/sources.list`, then
/// `/etc/apt/sources.list.d/*.list` and `*.sources` sorted by name.
fn apt_sources() -> Vec<(String, String)> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut extra: Vec<PathBuf> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "list" || extension == "sources")
            })
            .collect();
        extra.sort();
        files.extend(extra);
    }
    files
        .into_iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(&file).ok()?;
            Some((file.display().to_string(), text))
        })
        .collect()
}

/// The Debian archive to add `bookworm-backports` from: the one the host's apt sources already use
/// (so a local or nearby mirror keeps being used), else [`FALLBACK_DEBIAN_MIRROR`] with a note.
fn debian_mirror() -> String {
    mirror_in_sources(&apt_sources()).unwrap_or_else(|| {
        eprintln!(
            "note: the host's apt sources name no Debian archive; using {FALLBACK_DEBIAN_MIRROR} for bookworm-backports"
        );
        FALLBACK_DEBIAN_MIRROR.to_owned()
    })
}

/// The release whose backports suite xtask adds to apt's sources ([`BACKPORTS_SUITE`]).
const BACKPORTS_RELEASE: &str = "bookworm";
/// The suite QEMU (on bookworm) and Debian's newest cloud kernel come from.
pub const BACKPORTS_SUITE: &str = "bookworm-backports";
/// The sources file xtask writes for [`BACKPORTS_SUITE`].
const BACKPORTS_LIST: &str = "/etc/apt/sources.list.d/cellvisor-backports.list";

/// The [`BACKPORTS_SUITE`] sources line for `mirror`.
fn backports_line(mirror: &str) -> String {
    format!("deb {mirror} {BACKPORTS_SUITE} main")
}

fn is_backports_release() -> bool {
    util::os_release("VERSION_CODENAME").as_deref() == Some(BACKPORTS_RELEASE)
}

/// The shell command that adds [`BACKPORTS_SUITE`] to apt's sources and updates the lists.
fn add_backports_command() -> String {
    format!(
        "echo '{}' | sudo tee {BACKPORTS_LIST} && sudo apt-get update",
        backports_line(&debian_mirror())
    )
}

fn install_command() -> String {
    if is_backports_release() {
        format!(
            "{} && sudo apt-get install -y --no-install-recommends -t {BACKPORTS_SUITE} qemu-system-arm",
            add_backports_command()
        )
    } else {
        "sudo apt-get update && sudo apt-get install -y --no-install-recommends qemu-system-arm"
            .to_owned()
    }
}

fn has_backports_source() -> bool {
    apt_sources().iter().any(|(_, text)| {
        text.lines()
            .any(|line| !line.trim_start().starts_with('#') && line.contains(BACKPORTS_SUITE))
    })
}

/// Makes sure apt's sources name [`BACKPORTS_SUITE`]: when none does, writes it (from the host's
/// own Debian mirror, [`debian_mirror`]) to `/etc/apt/sources.list.d/cellvisor-backports.list`.
/// Returns whether it wrote the file, after which apt's package lists need an update. Fails in one
/// line with the command to run when it may not (not root, or the host is not bookworm).
pub fn backports_source() -> Result<bool> {
    if has_backports_source() {
        return Ok(false);
    }
    if !util::is_root() || !is_backports_release() {
        fail!(
            "apt's sources do not name {BACKPORTS_SUITE}: run `{}`",
            add_backports_command()
        );
    }
    let line = format!("{}\n", backports_line(&debian_mirror()));
    std::fs::write(BACKPORTS_LIST, line).map_err(|error| {
        util::Error(format!(
            "cannot add {BACKPORTS_SUITE} to apt sources ({BACKPORTS_LIST}): {error}"
        ))
    })?;
    eprintln!("  added {BACKPORTS_SUITE} to apt's sources ({BACKPORTS_LIST})");
    Ok(true)
}

fn install_qemu() -> Result<()> {
    eprintln!("Installing QEMU with apt (qemu-system-arm)...");
    apt_install("qemu-system-arm")
}

/// Installs `package` with apt, from bookworm-backports on bookworm (where QEMU comes from).
fn apt_install(package: &str) -> Result<()> {
    let backports = is_backports_release();
    if backports {
        backports_source()?;
    }
    util::run(Command::new("apt-get").args(["update", "-q"]))?;
    let mut install = Command::new("apt-get");
    install.env("DEBIAN_FRONTEND", "noninteractive").args([
        "install",
        "-y",
        "-q",
        "--no-install-recommends",
    ]);
    if backports {
        install.args(["-t", BACKPORTS_SUITE]);
    }
    util::run(install.arg(package))
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

/// The Debian package with QEMU's GTK and SDL display backends (`ui-gtk`, `ui-sdl` modules).
pub const QEMU_GUI_PACKAGE: &str = "qemu-system-gui";

/// The display backends `cargo xtask run --display` can open a window with, in order of
/// preference.
pub const WINDOW_BACKENDS: [&str; 2] = ["gtk", "sdl"];

/// The backends `qemu-system-aarch64 -display help` lists (one per line after its `Available
/// display backend types:` line, up to the first blank line).
pub fn display_backends(help: &str) -> Vec<&str> {
    help.lines()
        .skip_while(|line| {
            !line
                .trim_start()
                .starts_with("Available display backend types")
        })
        .skip(1)
        .map(str::trim)
        .take_while(|line| !line.is_empty())
        .collect()
}

/// The first of [`WINDOW_BACKENDS`] that `-display help`'s output lists.
pub fn choose_window_backend(help: &str) -> Option<&'static str> {
    let listed = display_backends(help);
    WINDOW_BACKENDS
        .into_iter()
        .find(|backend| listed.contains(backend))
}

/// Why no window can be opened on this host's desktop (`DISPLAY` and `WAYLAND_DISPLAY` as
/// given), in one line; `None` when one of them is set.
pub fn desktop_problem(display: Option<&str>, wayland: Option<&str>) -> Option<String> {
    let set = |value: Option<&str>| value.is_some_and(|value| !value.trim().is_empty());
    if set(display) || set(wayland) {
        return None;
    }
    Some(
        "cargo xtask run --display: no X11 or Wayland display (DISPLAY and WAYLAND_DISPLAY are unset); run it from a desktop session, or use cargo xtask run (the console alone) or cargo xtask run --check --display (headless)"
            .to_owned(),
    )
}

/// The shell command that installs [`QEMU_GUI_PACKAGE`] to go with the QEMU [`install_command`]
/// installs (from the same suite).
fn install_gui_command() -> String {
    if is_backports_release() {
        format!(
            "{} && sudo apt-get install -y --no-install-recommends -t {BACKPORTS_SUITE} {QEMU_GUI_PACKAGE}",
            add_backports_command()
        )
    } else {
        format!(
            "sudo apt-get update && sudo apt-get install -y --no-install-recommends {QEMU_GUI_PACKAGE}"
        )
    }
}

fn window_backend_of(qemu: &Qemu) -> Result<Option<&'static str>> {
    let output = Command::new(&qemu.path)
        .args(["-display", "help"])
        .output()
        .map_err(|error| {
            util::Error(format!(
                "cannot run `{} -display help`: {error}",
                qemu.path.display()
            ))
        })?;
    Ok(choose_window_backend(&String::from_utf8_lossy(
        &output.stdout,
    )))
}

/// The display backend `cargo xtask run --display` opens its window with: GTK, else SDL, as
/// `qemu` lists them. When it has neither and is apt's QEMU (not `CELLVISOR_QEMU`), installs
/// [`QEMU_GUI_PACKAGE`] with apt when running as root on Debian/Ubuntu (from `bookworm-backports`
/// on bookworm, like QEMU itself); otherwise fails in one line saying what to install.
pub fn window_backend(qemu: &Qemu) -> Result<&'static str> {
    if let Some(backend) = window_backend_of(qemu)? {
        return Ok(backend);
    }
    let wanted = WINDOW_BACKENDS.join(" or ");
    let from_apt = std::env::var_os("CELLVISOR_QEMU").is_none()
        && qemu.path.starts_with("/usr/bin")
        && util::is_debian_like();
    if !from_apt {
        fail!(
            "{} has no {wanted} display backend (`-display help`), which cargo xtask run --display needs: use a QEMU built with GTK or SDL (on Debian: the {QEMU_GUI_PACKAGE} package of its version)",
            qemu.path.display()
        );
    }
    if !util::is_root() {
        fail!(
            "QEMU {} has no {wanted} display backend, which cargo xtask run --display needs: run `{}`",
            qemu.version,
            install_gui_command()
        );
    }
    eprintln!("QEMU has no {wanted} display backend; installing {QEMU_GUI_PACKAGE} with apt");
    apt_install(QEMU_GUI_PACKAGE)?;
    match window_backend_of(qemu)? {
        Some(backend) => Ok(backend),
        None => fail!(
            "{QEMU_GUI_PACKAGE} is installed but {} still lists no {wanted} display backend (`-display help`): check that {QEMU_GUI_PACKAGE} and qemu-system-arm are the same version",
            qemu.path.display()
        ),
    }
}

/// The cross-compilation targets the images are built for (also listed in rust-toolchain.toml).
pub const RUST_TARGETS: [&str; 3] = [
    crate::images::HYPERVISOR_TARGET,
    crate::images::GUEST_TARGET,
    crate::images::LINUX_TOOL_TARGET,
];

/// The workspace toolchain's sysroot (`rustc --print sysroot`).
fn rust_sysroot() -> Result<PathBuf> {
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
    Ok(PathBuf::from(
        String::from_utf8_lossy(&output.stdout).trim(),
    ))
}

/// Makes sure the toolchain has its own linker, `rust-lld` (in the `rustc` component, under
/// `lib/rustlib/<host>/bin/`), which links the static musl `vsock` tool without a cross gcc.
pub fn rust_lld() -> Result<()> {
    let sysroot = rust_sysroot()?;
    let found = std::fs::read_dir(sysroot.join("lib/rustlib"))
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| entry.path().join("bin/rust-lld").is_file());
    if !found {
        fail!(
            "the Rust toolchain in {} has no rust-lld (lib/rustlib/<host>/bin/rust-lld), which links the Linux cells' vsock tool: reinstall it with `rustup toolchain install` in the workspace (rust-toolchain.toml names it)",
            sysroot.display()
        );
    }
    Ok(())
}

/// The [`RUST_TARGETS`] whose standard library the workspace's toolchain lacks.
fn missing_rust_targets() -> Result<Vec<&'static str>> {
    let sysroot = rust_sysroot()?;
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
                .args(["install", "-y", "-q", "--no-install-recommends", package]),
        )?;
        if util::which(program).is_some() {
            return Ok(());
        }
    }
    fail!("`{program}` is missing: run `sudo apt-get install -y --no-install-recommends {package}`")
}

/// Tools for building Linux cell images: gzip for the initramfs, dpkg-deb and sha256sum for the
/// Debian packages (apt-get itself is checked when fetching, xz when a module is compressed).
pub fn linux_tools() -> Result<()> {
    tool("gzip", "gzip")?;
    tool("sha256sum", "coreutils")?;
    let fetching = crate::debian::KERNELS
        .iter()
        .any(|pin| std::env::var_os(pin.image_variable).is_none())
        || std::env::var_os("CELLVISOR_BUSYBOX").is_none();
    if fetching && util::is_debian_like() {
        tool("dpkg-deb", "dpkg")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(files: &[(&str, &str)]) -> Vec<(String, String)> {
        files
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect()
    }

    #[test]
    fn mirror_from_one_line_sources() {
        let list = "# deb http://commented.example/debian bookworm main\n\
                    deb-src http://src.example/debian bookworm main\n\
                    deb http://security.debian.org/debian-security bookworm-security main\n\
                    deb [arch=amd64 signed-by=/usr/share/keyrings/debian.gpg] http://ftp.de.debian.org/debian/ bookworm main contrib\n\
                    deb http://deb.debian.org/debian bookworm-updates main\n";
        assert_eq!(
            mirror_in_list(list).as_deref(),
            Some("http://ftp.de.debian.org/debian")
        );
        assert_eq!(
            mirror_in_list("deb https://mirror.example.org/pub/debian bookworm main # local")
                .as_deref(),
            Some("https://mirror.example.org/pub/debian")
        );
        // Not Debian archives: a CD-ROM, Ubuntu, a PPA-like path, a `debian` host without the path.
        let none = "deb cdrom:[Debian 12]/ bookworm main\n\
                    deb http://archive.ubuntu.com/ubuntu noble main\n\
                    deb http://ppa.example/debian-extras stable main\n\
                    deb http://debian/ bookworm main\n\
                    debx http://deb.debian.org/debian bookworm main\n";
        assert_eq!(mirror_in_list(none), None);
    }

    #[test]
    fn mirror_from_deb822_sources() {
        let text = "# Modernized from /etc/apt/sources.list\n\
                    Types: deb-src\n\
                    URIs: http://src-only.example/debian\n\
                    Suites: bookworm\n\
                    \n\
                    Types: deb\n\
                    URIs: http://disabled.example/debian\n\
                    Suites: bookworm\n\
                    Enabled: no\n\
                    \n\
                    Types: deb deb-src\n\
                    URIs: http://security.debian.org/debian-security https://mirror.example.net/debian/\n\
                    Suites: bookworm bookworm-updates\n\
                    Components: main\n\
                    Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";
        assert_eq!(
            mirror_in_deb822(text).as_deref(),
            Some("https://mirror.example.net/debian")
        );
        assert_eq!(mirror_in_deb822("Types: deb\nSuites: bookworm\n"), None);
    }

    #[test]
    fn first_file_in_apt_order_wins_and_format_follows_the_name() {
        let files = sources(&[
            ("/etc/apt/sources.list", "# empty on deb822 hosts\n"),
            (
                "/etc/apt/sources.list.d/debian.sources",
                "Types: deb\nURIs: http://deb822.example/debian\nSuites: bookworm\n",
            ),
            (
                "/etc/apt/sources.list.d/z.list",
                "deb http://later.example/debian bookworm main\n",
            ),
        ]);
        assert_eq!(
            mirror_in_sources(&files).as_deref(),
            Some("http://deb822.example/debian")
        );
        // A deb822 text in a `.list` file is not read as one-line entries.
        let misnamed = sources(&[("x.list", "Types: deb\nURIs: http://a.example/debian\n")]);
        assert_eq!(mirror_in_sources(&misnamed), None);
        assert_eq!(mirror_in_sources(&[]), None);
        assert_eq!(
            backports_line("http://ftp.de.debian.org/debian"),
            "deb http://ftp.de.debian.org/debian bookworm-backports main"
        );
    }

    /// `qemu-system-aarch64 -display help` of Debian's QEMU 10.0 with qemu-system-gui installed.
    const DISPLAY_HELP_GUI: &str = "Available display backend types:\n\
        none\n\
        gtk\n\
        sdl\n\
        egl-headless\n\
        curses\n\
        spice-app\n\
        dbus\n\
        \n\
        Some display backends support suboptions, which can be set with\n   \
        -display backend,option=value,option=value...\n\
        For a short list of the suboptions for each display, see the top-level -help output; more detail is in the documentation.\n";

    #[test]
    fn the_window_backend_is_gtk_then_sdl_from_display_help() {
        assert_eq!(
            display_backends(DISPLAY_HELP_GUI),
            [
                "none",
                "gtk",
                "sdl",
                "egl-headless",
                "curses",
                "spice-app",
                "dbus"
            ]
        );
        assert_eq!(choose_window_backend(DISPLAY_HELP_GUI), Some("gtk"));
        let sdl_only = "Available display backend types:\nnone\nsdl\ncurses\n\nSome display backends support suboptions, e.g. gtk\n";
        assert_eq!(choose_window_backend(sdl_only), Some("sdl"));
        // Without qemu-system-gui (this host's QEMU): no window, though the text names no gtk.
        let headless = "Available display backend types:\nnone\ncurses\n\nSome display backends support suboptions, which can be set with\n   -display backend,option=value,option=value...\n";
        assert_eq!(display_backends(headless), ["none", "curses"]);
        assert_eq!(choose_window_backend(headless), None);
        assert_eq!(choose_window_backend(""), None);
        assert_eq!(choose_window_backend("gtk\nsdl\n"), None);
    }

    #[test]
    fn a_window_needs_a_desktop() {
        assert_eq!(desktop_problem(Some(":0"), None), None);
        assert_eq!(desktop_problem(None, Some("wayland-0")), None);
        assert_eq!(desktop_problem(Some(""), Some("wayland-0")), None);
        for (display, wayland) in [(None, None), (Some(""), None), (Some(" "), Some(""))] {
            let problem = desktop_problem(display, wayland).expect("no desktop");
            assert!(!problem.contains('\n'), "{problem}");
            assert!(problem.contains("DISPLAY"), "{problem}");
            assert!(problem.contains("cargo xtask run"), "{problem}");
        }
        assert!(install_gui_command().contains(QEMU_GUI_PACKAGE));
    }

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
