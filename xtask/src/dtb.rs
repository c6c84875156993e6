//! Platform device trees of real boards, fetched from Debian's `linux-image-arm64` kernel package
//! (which ships the DTBs of about a thousand boards), pinned by package version and sha256 and
//! cached, like the guest kernels (`debian`).
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::debian;
use crate::fail;
use crate::util::{self, Context, Result};

/// One board's DTB inside a pinned Debian kernel package.
#[derive(Clone, Copy, Debug)]
pub struct DtbPin {
    /// The kernel package that ships it.
    pub package: &'static str,
    /// The package version.
    pub version: &'static str,
    /// Where the package keeps its DTBs (`/usr/lib/linux-image-<release>/`).
    pub dtb_dir: &'static str,
    /// The DTB's path below `dtb_dir`.
    pub path: &'static str,
    /// The DTB's sha256.
    pub sha256: &'static str,
    /// The same file, committed as a test fixture (hypervisor/tests/data): used when the package
    /// cannot be fetched and its checksum matches.
    pub fixture: &'static str,
}

/// The Raspberry Pi 4 Model B's DTB (`raspi4b`), from Debian's 6.12 kernel in bookworm-backports.
pub const RASPI4B: DtbPin = DtbPin {
    package: "linux-image-6.12.95+deb12-arm64-unsigned",
    version: "6.12.95-1~bpo12+1",
    dtb_dir: "usr/lib/linux-image-6.12.95+deb12-arm64",
    path: "broadcom/bcm2711-rpi-4-b.dtb",
    sha256: "35767bd9bf386edb22685c639f2cf0a538aefa34a08c503aca604f6f06179811",
    fixture: "hypervisor/tests/data/bcm2711-rpi-4-b.dtb",
};

impl DtbPin {
    /// The DTB's file name.
    pub fn file_name(&self) -> &'static str {
        self.path.rsplit('/').next().unwrap_or(self.path)
    }

    /// Where the verified DTB is cached.
    fn cached(&self) -> PathBuf {
        util::target_dir()
            .join("guests")
            .join("dtb")
            .join(self.file_name())
    }
}

/// The DTB of `pin`, copied to `into`: from the cache, else fetched from the Debian archive, else
/// (no network, or the pinned version left the archive) the committed fixture with the same
/// sha256. Fails in one line when none of them has the pinned contents.
pub fn fetch_into(pin: &DtbPin, into: &Path) -> Result<()> {
    let cached = pin.cached();
    if !matches(&cached, pin)
        && let Err(error) = fetch(pin, &cached)
    {
        let fixture = util::workspace_root().join(pin.fixture);
        if !matches(&fixture, pin) {
            fail!(
                "cannot fetch {} from {} {} ({error}) and {} does not match its pin",
                pin.path,
                pin.package,
                pin.version,
                util::pretty(&fixture)
            );
        }
        eprintln!(
            "note: {error}; using the committed copy {} (same sha256)",
            util::pretty(&fixture)
        );
        copy(&fixture, &cached)?;
    }
    copy(&cached, into)?;
    eprintln!(
        "  {} ({} {}, sha256 verified)",
        util::pretty(into),
        pin.package,
        pin.version
    );
    Ok(())
}

/// Whether `path` holds the pinned DTB.
fn matches(path: &Path, pin: &DtbPin) -> bool {
    path.is_file() && util::sha256(path).is_ok_and(|sum| sum == pin.sha256)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    let bytes = std::fs::read(from).context(|| format!("cannot read {}", from.display()))?;
    util::write_if_changed(to, &bytes)
}

/// Downloads the pinned package, extracts the DTB alone to `cached` and checks its sha256; the
/// package itself is deleted afterwards (it is large; the DTB is all the board needs).
fn fetch(pin: &DtbPin, cached: &Path) -> Result<()> {
    eprintln!(
        "Fetching {} from {} {} (cached under {})",
        pin.path,
        pin.package,
        pin.version,
        util::pretty(cached.parent().unwrap_or(cached))
    );
    // The 6.12 cloud kernel's apt set-up: arm64 packages and bookworm-backports.
    debian::prepare_apt(&debian::NEWEST_KERNEL)?;
    let downloads = cached.with_extension("downloads");
    let how_to_fix = format!(
        "or copy {} (sha256 {}) to {}",
        pin.path,
        pin.sha256,
        cached.display()
    );
    let deb = debian::download(&downloads, pin.package, pin.version, &how_to_fix)?;
    let member = format!("./{}/{}", pin.dtb_dir, pin.path);
    let mut archive = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(&deb)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context(|| "cannot run dpkg-deb".to_owned())?;
    let Some(tarfile) = archive.stdout.take() else {
        fail!("dpkg-deb --fsys-tarfile gave no output");
    };
    let output = Command::new("tar")
        .args(["-xO", &member])
        .stdin(tarfile)
        .output()
        .context(|| "cannot run tar".to_owned())?;
    let _ = archive.wait();
    let _ = std::fs::remove_dir_all(&downloads);
    if !output.status.success() || output.stdout.is_empty() {
        fail!("{} has no {member}", pin.package);
    }
    let partial = cached.with_extension("partial");
    util::write_if_changed(&partial, &output.stdout)?;
    if !matches(&partial, pin) {
        fail!(
            "{member} of {} {} does not have the pinned sha256 {}",
            pin.package,
            pin.version,
            pin.sha256
        );
    }
    std::fs::rename(&partial, cached).context(|| format!("cannot write {}", cached.display()))?;
    Ok(())
}
