//! Fetches Debian's arm64 cloud kernels and `busybox-static` from the Debian archive with apt,
//! verifies them and caches them, one directory per kernel: the default kernel (6.1, bookworm) in
//! `target/guests/debian/`, Debian's newest cloud kernel for the host's release (6.12 from
//! bookworm-backports) in `target/guests/debian-newest/`.
//!
//! Each kernel is pinned ([`KernelPin`]); when the archive has dropped the pinned build, the one the
//! meta-package `linux-image-cloud-arm64` of the pin's suite depends on is used instead, with a
//! warning. A pin's environment variable (`CELLVISOR_LINUX_IMAGE` for the default kernel,
//! `CELLVISOR_LINUX_IMAGE_NEWEST` for the newest) names a local arm64 `Image` (or `Image.gz`,
//! decompressed to `target/cellvisor/linux-image-env[-newest]`) to use instead of that kernel;
//! `CELLVISOR_BUSYBOX` names a local static busybox for every initramfs. With both set nothing of
//! that kernel is fetched (hosts without apt or network); the initramfs then gets kernel modules
//! only from a fetched Debian package of the same release as the Image.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cellvisor::setup::image::has_arm64_image_magic;
use cellvisor_tests::bundle::linux_release;

use crate::elf;
use crate::fail;
use crate::kernel;
use crate::prereq;
use crate::util::{self, Context, Result};

/// A Debian cloud kernel xtask fetches: the pinned package, its fallback and where it is cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelPin {
    /// What the kernel is, for messages (`Debian's default cloud kernel`).
    pub role: &'static str,
    /// Added to the names of the files built with this kernel (`bundle-linux-newest.cpio`,
    /// `initrd-personal-newest.cpio.gz`); `None` for the default kernel, whose files have the plain
    /// names.
    pub variant: Option<&'static str>,
    /// The pinned package.
    pub package: &'static str,
    /// Its version.
    pub version: &'static str,
    /// The suite the package comes from, when it is one apt's sources may lack
    /// ([`prereq::BACKPORTS_SUITE`]); its meta-package is the fallback. `None`: the host's own
    /// release, whose meta-package candidate is the fallback.
    pub suite: Option<&'static str>,
    /// Cache directory under `target/guests/`.
    pub cache: &'static str,
    /// The environment variable naming a local `Image` to use instead.
    pub image_variable: &'static str,
}

/// Debian's default (bookworm) cloud kernel: what every Linux cell boots unless told otherwise.
pub const DEFAULT_KERNEL: KernelPin = KernelPin {
    role: "Debian's default cloud kernel",
    variant: None,
    package: "linux-image-6.1.0-56-cloud-arm64",
    version: "6.1.192-2",
    suite: None,
    cache: "debian",
    image_variable: "CELLVISOR_LINUX_IMAGE",
};

/// Debian's newest cloud kernel for the host's release: bookworm-backports' (the guest-fidelity
/// tests boot it in both cells).
pub const NEWEST_KERNEL: KernelPin = KernelPin {
    role: "Debian's newest cloud kernel (bookworm-backports)",
    variant: Some(cellvisor_tests::NEWEST_KERNEL),
    package: "linux-image-6.12.95+deb12-cloud-arm64",
    version: "6.12.95-1~bpo12+1",
    suite: Some(prereq::BACKPORTS_SUITE),
    cache: "debian-newest",
    image_variable: "CELLVISOR_LINUX_IMAGE_NEWEST",
};

/// Every kernel xtask fetches.
pub const KERNELS: [KernelPin; 2] = [DEFAULT_KERNEL, NEWEST_KERNEL];

/// The fallback: the meta-package whose dependency names the current cloud kernel of a suite.
const KERNEL_META_PACKAGE: &str = "linux-image-cloud-arm64";
/// The busybox package (any version the archive has).
const BUSYBOX_PACKAGE: &str = "busybox-static";
/// The environment variable naming a local static arm64 busybox.
const BUSYBOX_VARIABLE: &str = "CELLVISOR_BUSYBOX";

impl KernelPin {
    /// The name `cargo xtask run --linux` knows the kernel by: its variant, or `default`.
    pub fn name(&self) -> &'static str {
        self.variant.unwrap_or("default")
    }

    /// The pin called `name` ([`KernelPin::name`]), or a one-line error listing the names.
    pub fn named(name: &str) -> Result<KernelPin> {
        match KERNELS.iter().find(|pin| pin.name() == name) {
            Some(pin) => Ok(*pin),
            None => {
                let names: Vec<&str> = KERNELS.iter().map(KernelPin::name).collect();
                fail!("no Debian kernel `{name}` (kernels: {})", names.join(", "))
            }
        }
    }

    /// `name` with the variant added before its extension (`bundle-linux.cpio` →
    /// `bundle-linux-newest.cpio`); unchanged for the default kernel.
    pub fn file_name(&self, name: &str) -> String {
        let Some(variant) = self.variant else {
            return name.to_owned();
        };
        match name.split_once('.') {
            Some((stem, extension)) => format!("{stem}-{variant}.{extension}"),
            None => format!("{name}-{variant}"),
        }
    }

    fn cache_dir(&self) -> PathBuf {
        util::target_dir().join("guests").join(self.cache)
    }

    fn manifest_path(&self) -> PathBuf {
        self.cache_dir().join("manifest.txt")
    }

    /// `package version`, as the manifest records which pin it was fetched for.
    fn pinned(&self) -> String {
        format!("{} {}", self.package, self.version)
    }

    /// One line saying how to do without the archive.
    fn how_to_fix(&self) -> String {
        format!(
            "or set {}=<arm64 Image> and {BUSYBOX_VARIABLE}=<static arm64 busybox>",
            self.image_variable
        )
    }
}

/// The cached guest ingredients.
#[derive(Clone, Debug)]
pub struct LinuxGuest {
    /// The raw arm64 `Image`.
    pub kernel_image: PathBuf,
    /// The kernel release (e.g. `6.1.0-56-cloud-arm64`), if known.
    pub kernel_release: Option<String>,
    /// The extracted kernel package (modules under `lib/modules/<release>/`), if fetched from Debian.
    pub kernel_tree: Option<PathBuf>,
    /// Static arm64 busybox.
    pub busybox: PathBuf,
    /// One line saying where they came from.
    pub description: String,
}

/// The kernel of `pin` and busybox: from the environment overrides, the cache, or the archive.
pub fn linux_guest(pin: &KernelPin) -> Result<LinuxGuest> {
    let image_override = std::env::var_os(pin.image_variable).map(PathBuf::from);
    let busybox_override = std::env::var_os(BUSYBOX_VARIABLE).map(PathBuf::from);
    let image_override = image_override
        .map(|path| env_kernel_image(pin, &path))
        .transpose()?;
    if let (Some((kernel_image, release)), Some(busybox)) = (&image_override, &busybox_override) {
        check_busybox(busybox)?;
        return Ok(LinuxGuest {
            kernel_image: kernel_image.clone(),
            kernel_release: release.clone(),
            kernel_tree: None,
            busybox: busybox.clone(),
            description: format!(
                "kernel and busybox from {} / {BUSYBOX_VARIABLE}",
                pin.image_variable
            ),
        });
    }
    let mut guest = match cached(pin)? {
        Some(guest) => guest,
        None => fetch(pin)?,
    };
    if let Some((kernel_image, release)) = image_override {
        guest.kernel_image = kernel_image;
        guest.kernel_release = release;
        guest
            .description
            .push_str(&format!(" (kernel from {})", pin.image_variable));
    }
    if let Some(busybox) = busybox_override {
        check_busybox(&busybox)?;
        guest.busybox = busybox;
        guest
            .description
            .push_str(&format!(" (busybox from {BUSYBOX_VARIABLE})"));
    }
    Ok(guest)
}

/// The `Image` a pin's environment variable names, with its release (from its `Linux version`
/// banner, when it has one): the file itself, or when it is gzip-compressed its decompressed copy
/// `target/cellvisor/linux-image-env[-<variant>]`.
fn env_kernel_image(pin: &KernelPin, path: &Path) -> Result<(PathBuf, Option<String>)> {
    let data =
        std::fs::read(path).context(|| format!("cannot read kernel image {}", path.display()))?;
    if !kernel::is_gzip(&data) {
        check_kernel_image(path)?;
        return Ok((path.to_owned(), linux_release(&data)));
    }
    let image = kernel::gunzip_image(&data, &path.display().to_string())?;
    let unpacked = util::out_dir().join(pin.file_name("linux-image-env"));
    util::write_if_changed(&unpacked, &image)?;
    eprintln!(
        "  {} ({} decompressed, {} MiB)",
        util::pretty(&unpacked),
        pin.image_variable,
        image.len().div_ceil(1 << 20)
    );
    Ok((unpacked, linux_release(&image)))
}

/// Checks the arm64 `Image` magic.
pub fn check_kernel_image(path: &Path) -> Result<()> {
    let mut header = [0u8; 64];
    let read = std::fs::File::open(path).and_then(|mut file| {
        use std::io::Read;
        file.read_exact(&mut header)
    });
    read.context(|| format!("cannot read kernel image {}", path.display()))?;
    if !has_arm64_image_magic(&header) {
        fail!(
            "{} is not a raw arm64 Image (no \"ARM\\x64\" magic at offset 56)",
            path.display()
        );
    }
    Ok(())
}

/// Checks that busybox is a static AArch64 executable.
pub fn check_busybox(path: &Path) -> Result<()> {
    let data = std::fs::read(path).context(|| format!("cannot read busybox {}", path.display()))?;
    elf::check_aarch64(&data, &path.display().to_string())?;
    if elf::is_dynamic(&data) {
        fail!(
            "{} is dynamically linked: the initramfs needs busybox-static",
            path.display()
        );
    }
    Ok(())
}

fn read_manifest(pin: &KernelPin) -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(pin.manifest_path()).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect(),
    )
}

/// The cached guest of `pin` if the cache was fetched for this pin and the manifest's checksums
/// still match the files.
fn cached(pin: &KernelPin) -> Result<Option<LinuxGuest>> {
    let Some(manifest) = read_manifest(pin) else {
        return Ok(None);
    };
    let field = |key: &str| manifest.get(key).cloned().unwrap_or_default();
    // Caches written before the manifest recorded its pin hold the pinned package itself.
    let for_this_pin = field("pinned") == pin.pinned()
        || (field("kernel_package") == pin.package && field("kernel_version") == pin.version);
    if !for_this_pin {
        eprintln!(
            "note: the cached kernel in {} is not for the pin {}; fetching again",
            util::pretty(&pin.cache_dir()),
            pin.pinned()
        );
        return Ok(None);
    }
    let dir = pin.cache_dir();
    let kernel_image = dir.join(field("kernel_image"));
    let busybox = dir.join(field("busybox"));
    for (path, key) in [
        (&kernel_image, "kernel_image_sha256"),
        (&busybox, "busybox_sha256"),
    ] {
        if !path.is_file() || util::sha256(path)? != field(key) {
            eprintln!(
                "note: cached Debian guest files in {} changed or missing; fetching again",
                util::pretty(&dir)
            );
            return Ok(None);
        }
    }
    Ok(Some(LinuxGuest {
        kernel_image,
        kernel_release: Some(field("kernel_release")),
        kernel_tree: Some(dir.join("linux-image")),
        busybox,
        description: format!(
            "Debian {} {} and {} {} (cached, sha256 verified)",
            field("kernel_package"),
            field("kernel_version"),
            BUSYBOX_PACKAGE,
            field("busybox_version")
        ),
    }))
}

fn apt_command(program: &str) -> Command {
    let mut command = Command::new(program);
    command.env("LC_ALL", "C");
    if util::is_root() {
        // apt-get download as root otherwise drops to `_apt`, which cannot write into target/.
        command.args(["-o", "APT::Sandbox::User=root"]);
    }
    command
}

/// Makes sure apt knows arm64 packages and the pin's suite; updates the package lists once if
/// needed.
pub(crate) fn prepare_apt(pin: &KernelPin) -> Result<()> {
    if !util::is_debian_like() {
        fail!(
            "cannot fetch {} on this host (no apt-get): {}",
            pin.role,
            pin.how_to_fix()
        );
    }
    for tool in ["dpkg-deb", "sha256sum"] {
        if util::which(tool).is_none() {
            fail!(
                "`{tool}` is missing: run `apt-get install -y --no-install-recommends dpkg coreutils`"
            );
        }
    }
    let foreign = util::output_of(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    let mut stale = false;
    if !foreign.split_whitespace().any(|arch| arch == "arm64") {
        if !util::is_root() {
            fail!(
                "apt cannot fetch arm64 packages: run `sudo dpkg --add-architecture arm64 && sudo apt-get update`, {}",
                pin.how_to_fix()
            );
        }
        util::run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
        stale = true;
    }
    if pin.suite.is_some() {
        stale |= prereq::backports_source()
            .map_err(|error| util::Error(format!("{error}, {}", pin.how_to_fix())))?;
    }
    if stale {
        util::run(apt_command("apt-get").args(["update", "-q"]))?;
    }
    let known = || available(BUSYBOX_PACKAGE, None).is_some() && meta_version(pin).is_some();
    if !known() {
        let suite = pin
            .suite
            .map(|suite| format!(" ({suite})"))
            .unwrap_or_default();
        let what = format!("{BUSYBOX_PACKAGE}:arm64 / {KERNEL_META_PACKAGE}:arm64{suite}");
        if stale || !util::is_root() {
            fail!(
                "apt does not know {what}: run `sudo apt-get update`, {}",
                pin.how_to_fix()
            );
        }
        util::run(apt_command("apt-get").args(["update", "-q"]))?;
        if !known() {
            fail!(
                "apt does not know {what} even after `apt-get update`: check apt's sources, {}",
                pin.how_to_fix()
            );
        }
    }
    Ok(())
}

/// The package's candidate version, if apt has `package:arm64` (at `version`, when given).
fn available(package: &str, version: Option<&str>) -> Option<String> {
    let spec = match version {
        Some(version) => format!("{package}:arm64={version}"),
        None => format!("{package}:arm64"),
    };
    let text = util::output_of(apt_command("apt-cache").args(["show", "--no-all-versions", &spec]))
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("Version:"))
        .map(|version| version.trim().to_owned())
}

/// The version `apt-cache madison` lists for the suite `suite` (`... | VERSION | URI SUITE/COMPONENT
/// arm64 Packages`), the first (newest) if several.
fn madison_version(madison: &str, suite: &str) -> Option<String> {
    madison.lines().find_map(|line| {
        let mut columns = line.split('|').map(str::trim);
        let version = columns.nth(1)?;
        let source = columns.next()?;
        source
            .split_whitespace()
            .any(|word| word.split('/').next() == Some(suite))
            .then(|| version.to_owned())
    })
}

/// The version of the pin's fallback meta-package: from its suite, or apt's candidate.
fn meta_version(pin: &KernelPin) -> Option<String> {
    let Some(suite) = pin.suite else {
        return available(KERNEL_META_PACKAGE, None);
    };
    let madison = util::output_of(
        apt_command("apt-cache").args(["madison", &format!("{KERNEL_META_PACKAGE}:arm64")]),
    )
    .ok()?;
    madison_version(&madison, suite)
}

/// The kernel package a meta-package's `Depends:` names, with the version it requires (`(= V)`),
/// if it requires one.
fn meta_dependency(depends: &str) -> Option<(String, Option<String>)> {
    depends.split([',', '|']).find_map(|alternative| {
        let alternative = alternative.trim();
        let (name, rest) = alternative
            .split_once(char::is_whitespace)
            .unwrap_or((alternative, ""));
        let name = name.trim_end_matches(":arm64");
        if !name.starts_with("linux-image-") {
            return None;
        }
        let version = rest
            .trim()
            .strip_prefix("(=")
            .and_then(|rest| rest.strip_suffix(')'))
            .map(|version| version.trim().to_owned());
        Some((name.to_owned(), version))
    })
}

/// The pinned kernel, or the one the pin's meta-package depends on.
fn choose_kernel(pin: &KernelPin) -> Result<(String, String)> {
    if available(pin.package, Some(pin.version)).is_some() {
        return Ok((pin.package.to_owned(), pin.version.to_owned()));
    }
    let Some(meta) = meta_version(pin) else {
        fail!(
            "apt cannot find {KERNEL_META_PACKAGE}:arm64 for {}",
            pin.role
        );
    };
    let text = util::output_of(apt_command("apt-cache").args([
        "show",
        "--no-all-versions",
        &format!("{KERNEL_META_PACKAGE}:arm64={meta}"),
    ]))?;
    let depends = text
        .lines()
        .find_map(|line| line.strip_prefix("Depends:"))
        .unwrap_or_default();
    let Some((package, required)) = meta_dependency(depends) else {
        fail!(
            "cannot tell which kernel {KERNEL_META_PACKAGE}:arm64 {meta} depends on (Depends: {depends})"
        );
    };
    let Some(version) = required.or_else(|| available(&package, None)) else {
        fail!("apt cannot find {package}:arm64 that {KERNEL_META_PACKAGE} {meta} depends on");
    };
    eprintln!(
        "warning: the pinned kernel {} is no longer in the archive; using {package} {version} \
         for {} (update the pin in xtask/src/debian.rs)",
        pin.pinned(),
        pin.role
    );
    Ok((package, version))
}

/// Downloads `package` at `version` into `dir` and returns the .deb; `how_to_fix` ends the error
/// line when the archive cannot be reached.
pub(crate) fn download(
    dir: &Path,
    package: &str,
    version: &str,
    how_to_fix: &str,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).context(|| format!("cannot create {}", dir.display()))?;
    let prefix = format!("{package}_");
    let find = || -> Option<PathBuf> {
        let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with(&prefix) && name.ends_with("_arm64.deb"))
            })
            .collect();
        debs.sort();
        debs.pop()
    };
    // Old downloads of other versions are removed so `find` sees only this one.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    let mut command = apt_command("apt-get");
    command
        .current_dir(dir)
        .args(["download", "-q", &format!("{package}:arm64={version}")]);
    util::run(&mut command)
        .map_err(|error| util::Error(format!("{error}; no network? {how_to_fix}")))?;
    let Some(deb) = find() else {
        fail!(
            "apt-get download left no {package}_*_arm64.deb in {}",
            dir.display()
        );
    };
    // apt verified the hash against the signed archive index; check the archive itself is sound.
    let fields = util::output_of(Command::new("dpkg-deb").arg("--field").arg(&deb).args([
        "Package",
        "Version",
        "Architecture",
    ]))?;
    let expected = [
        format!("Package: {package}"),
        format!("Version: {version}"),
        "Architecture: arm64".to_owned(),
    ];
    for line in expected {
        if !fields.lines().any(|field| field.trim() == line) {
            fail!(
                "{} is not {package} {version} for arm64 (dpkg-deb says: {})",
                deb.display(),
                fields.replace('\n', "; ")
            );
        }
    }
    util::output_of(Command::new("dpkg-deb").arg("--info").arg(&deb))?;
    Ok(deb)
}

fn extract(deb: &Path, into: &Path) -> Result<()> {
    if into.exists() {
        std::fs::remove_dir_all(into).context(|| format!("cannot clear {}", into.display()))?;
    }
    std::fs::create_dir_all(into).context(|| format!("cannot create {}", into.display()))?;
    util::output_of(Command::new("dpkg-deb").arg("-x").arg(deb).arg(into))?;
    Ok(())
}

/// Fetches, verifies and caches the kernel of `pin` and busybox.
fn fetch(pin: &KernelPin) -> Result<LinuxGuest> {
    let dir = pin.cache_dir();
    eprintln!(
        "Fetching {} and busybox-static for arm64 (cached under {})",
        pin.role,
        util::pretty(&dir)
    );
    prepare_apt(pin)?;
    let downloads = dir.join("downloads");
    let (kernel_package, kernel_version) = choose_kernel(pin)?;
    let Some(busybox_version) = available(BUSYBOX_PACKAGE, None) else {
        fail!("apt cannot find {BUSYBOX_PACKAGE}:arm64");
    };
    let how_to_fix = pin.how_to_fix();
    let kernel_deb = download(&downloads, &kernel_package, &kernel_version, &how_to_fix)?;
    let busybox_deb = download(&downloads, BUSYBOX_PACKAGE, &busybox_version, &how_to_fix)?;

    let kernel_tree = dir.join("linux-image");
    extract(&kernel_deb, &kernel_tree)?;
    let release = kernel_package.trim_start_matches("linux-image-").to_owned();
    let kernel_relative = format!("linux-image/boot/vmlinuz-{release}");
    let kernel_image = dir.join(&kernel_relative);
    check_kernel_image(&kernel_image)?;

    let busybox_tree = dir.join("busybox-static");
    extract(&busybox_deb, &busybox_tree)?;
    let busybox_relative = "busybox-static/bin/busybox";
    let busybox = dir.join(busybox_relative);
    check_busybox(&busybox)?;

    let manifest = [
        ("pinned", pin.pinned()),
        ("kernel_package", kernel_package.clone()),
        ("kernel_version", kernel_version.clone()),
        ("kernel_release", release.clone()),
        ("kernel_deb_sha256", util::sha256(&kernel_deb)?),
        ("kernel_image", kernel_relative),
        ("kernel_image_sha256", util::sha256(&kernel_image)?),
        ("busybox_package", BUSYBOX_PACKAGE.to_owned()),
        ("busybox_version", busybox_version.clone()),
        ("busybox_deb_sha256", util::sha256(&busybox_deb)?),
        ("busybox", busybox_relative.to_owned()),
        ("busybox_sha256", util::sha256(&busybox)?),
    ]
    .iter()
    .map(|(key, value)| format!("{key}={value}\n"))
    .collect::<String>();
    util::write_if_changed(&pin.manifest_path(), manifest.as_bytes())?;
    Ok(LinuxGuest {
        kernel_image,
        kernel_release: Some(release),
        kernel_tree: Some(kernel_tree),
        busybox,
        description: format!(
            "Debian {kernel_package} {kernel_version} and {BUSYBOX_PACKAGE} {busybox_version} (fetched, verified)"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_have_their_own_caches_variables_and_file_names() {
        assert_eq!(
            DEFAULT_KERNEL.file_name("bundle-linux.cpio"),
            "bundle-linux.cpio"
        );
        assert_eq!(
            NEWEST_KERNEL.file_name("bundle-linux.cpio"),
            "bundle-linux-newest.cpio"
        );
        assert_eq!(
            NEWEST_KERNEL.file_name("initrd-personal.cpio.gz"),
            "initrd-personal-newest.cpio.gz"
        );
        assert_eq!(
            NEWEST_KERNEL.file_name("linux-image-env"),
            "linux-image-env-newest"
        );
        for (index, pin) in KERNELS.iter().enumerate() {
            assert!(
                pin.package.starts_with("linux-image-") && pin.package.ends_with("-cloud-arm64")
            );
            for other in &KERNELS[index + 1..] {
                assert_ne!(pin.cache, other.cache);
                assert_ne!(pin.image_variable, other.image_variable);
                assert_ne!(pin.variant, other.variant);
            }
        }
        // The default kernel keeps the cache path and variable it always had.
        assert_eq!(DEFAULT_KERNEL.cache, "debian");
        assert_eq!(DEFAULT_KERNEL.image_variable, "CELLVISOR_LINUX_IMAGE");
    }

    #[test]
    fn pins_are_found_by_name() {
        assert_eq!(KernelPin::named("default").unwrap(), DEFAULT_KERNEL);
        assert_eq!(KernelPin::named("newest").unwrap(), NEWEST_KERNEL);
        let error = KernelPin::named("6.12").unwrap_err().to_string();
        assert!(error.contains("default, newest"), "{error}");
    }

    #[test]
    fn madison_versions_are_picked_by_suite() {
        let madison = "linux-image-cloud-arm64:arm64 | 6.12.95-1~bpo12+1 | http://deb.debian.org/debian bookworm-backports/main arm64 Packages\n\
                       linux-image-cloud-arm64:arm64 |  6.1.192-3 | http://deb.debian.org/debian-security bookworm-security/main arm64 Packages\n\
                       linux-image-cloud-arm64:arm64 |  6.1.176-1 | http://deb.debian.org/debian bookworm/main arm64 Packages\n";
        assert_eq!(
            madison_version(madison, "bookworm-backports").as_deref(),
            Some("6.12.95-1~bpo12+1")
        );
        assert_eq!(
            madison_version(madison, "bookworm").as_deref(),
            Some("6.1.176-1")
        );
        assert_eq!(madison_version(madison, "trixie-backports"), None);
        assert_eq!(madison_version("", "bookworm"), None);
    }

    #[test]
    fn meta_dependencies_name_the_kernel_and_its_version() {
        assert_eq!(
            meta_dependency(" linux-image-6.12.95+deb12-cloud-arm64 (= 6.12.95-1~bpo12+1)"),
            Some((
                "linux-image-6.12.95+deb12-cloud-arm64".to_owned(),
                Some("6.12.95-1~bpo12+1".to_owned())
            ))
        );
        assert_eq!(
            meta_dependency(
                " initramfs-tools | linux-initramfs-tool, linux-image-6.1.0-57-cloud-arm64:arm64"
            ),
            Some(("linux-image-6.1.0-57-cloud-arm64".to_owned(), None))
        );
        assert_eq!(meta_dependency(" busybox, kmod (>= 1)"), None);
    }
}
