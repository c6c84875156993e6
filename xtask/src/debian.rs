//! Fetches Debian's arm64 cloud kernel and `busybox-static` from the Debian archive with apt, verifies
//! them and caches them under `target/guests/debian/`.
//!
//! The kernel is pinned; when the archive has dropped the pinned build, the one the meta-package
//! `linux-image-cloud-arm64` depends on is used instead, with a warning. `CELLVISOR_LINUX_IMAGE` and
//! `CELLVISOR_BUSYBOX` name local files to use instead (hosts without apt or network); a
//! gzip-compressed `CELLVISOR_LINUX_IMAGE` is decompressed to `target/cellvisor/linux-image-env`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cellvisor::setup::image::has_arm64_image_magic;

use crate::elf;
use crate::fail;
use crate::kernel;
use crate::util::{self, Context, Result};

/// The pinned kernel package and version.
pub const KERNEL_PACKAGE: &str = "linux-image-6.1.0-56-cloud-arm64";
/// Version of [`KERNEL_PACKAGE`].
pub const KERNEL_VERSION: &str = "6.1.192-2";
/// Its fallback: the meta-package whose dependency names the current cloud kernel.
const KERNEL_META_PACKAGE: &str = "linux-image-cloud-arm64";
/// The busybox package (any version the archive has).
const BUSYBOX_PACKAGE: &str = "busybox-static";

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

fn cache_dir() -> PathBuf {
    util::target_dir().join("guests").join("debian")
}

/// The Debian kernel and busybox: from the environment overrides, the cache, or the archive.
pub fn linux_guest() -> Result<LinuxGuest> {
    let image_override = std::env::var_os("CELLVISOR_LINUX_IMAGE").map(PathBuf::from);
    let busybox_override = std::env::var_os("CELLVISOR_BUSYBOX").map(PathBuf::from);
    let image_override = image_override
        .map(|path| env_kernel_image(&path))
        .transpose()?;
    if let (Some(kernel_image), Some(busybox)) = (&image_override, &busybox_override) {
        check_busybox(busybox)?;
        return Ok(LinuxGuest {
            kernel_image: kernel_image.clone(),
            kernel_release: None,
            kernel_tree: None,
            busybox: busybox.clone(),
            description: "kernel and busybox from CELLVISOR_LINUX_IMAGE / CELLVISOR_BUSYBOX".into(),
        });
    }
    let mut guest = match cached()? {
        Some(guest) => guest,
        None => fetch()?,
    };
    if let Some(kernel_image) = image_override {
        guest.kernel_image = kernel_image;
        guest.kernel_release = None;
        guest
            .description
            .push_str(" (kernel from CELLVISOR_LINUX_IMAGE)");
    }
    if let Some(busybox) = busybox_override {
        check_busybox(&busybox)?;
        guest.busybox = busybox;
        guest
            .description
            .push_str(" (busybox from CELLVISOR_BUSYBOX)");
    }
    Ok(guest)
}

/// `CELLVISOR_LINUX_IMAGE` as an arm64 `Image` file: itself, or when it is gzip-compressed its
/// decompressed copy `target/cellvisor/linux-image-env`.
fn env_kernel_image(path: &Path) -> Result<PathBuf> {
    let mut magic = [0u8; 2];
    let read = std::fs::File::open(path).and_then(|mut file| {
        use std::io::Read;
        file.read_exact(&mut magic)
    });
    read.context(|| format!("cannot read kernel image {}", path.display()))?;
    if !kernel::is_gzip(&magic) {
        check_kernel_image(path)?;
        return Ok(path.to_owned());
    }
    let image = kernel::load(path)?;
    let unpacked = util::out_dir().join("linux-image-env");
    util::write_if_changed(&unpacked, &image)?;
    eprintln!(
        "  {} (CELLVISOR_LINUX_IMAGE decompressed, {} MiB)",
        util::pretty(&unpacked),
        image.len().div_ceil(1 << 20)
    );
    Ok(unpacked)
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

fn manifest_path() -> PathBuf {
    cache_dir().join("manifest.txt")
}

fn read_manifest() -> Option<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(manifest_path()).ok()?;
    Some(
        text.lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
            .collect(),
    )
}

/// The cached guest if the manifest's checksums still match the files.
fn cached() -> Result<Option<LinuxGuest>> {
    let Some(manifest) = read_manifest() else {
        return Ok(None);
    };
    let field = |key: &str| manifest.get(key).cloned().unwrap_or_default();
    let dir = cache_dir();
    let kernel_image = dir.join(field("kernel_image"));
    let busybox = dir.join(field("busybox"));
    for (path, key) in [
        (&kernel_image, "kernel_image_sha256"),
        (&busybox, "busybox_sha256"),
    ] {
        if !path.is_file() || util::sha256(path)? != field(key) {
            eprintln!("note: cached Debian guest files changed or missing; fetching again");
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

fn how_to_fix() -> &'static str {
    "or set CELLVISOR_LINUX_IMAGE=<arm64 Image> and CELLVISOR_BUSYBOX=<static arm64 busybox>"
}

/// Makes sure apt knows arm64 packages; updates the package lists once if needed.
fn prepare_apt() -> Result<()> {
    if !util::is_debian_like() {
        fail!(
            "cannot fetch Debian's arm64 kernel on this host (no apt-get): {}",
            how_to_fix()
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
    let mut updated = false;
    if !foreign.split_whitespace().any(|arch| arch == "arm64") {
        if !util::is_root() {
            fail!(
                "apt cannot fetch arm64 packages: run `sudo dpkg --add-architecture arm64 && sudo apt-get update`, {}",
                how_to_fix()
            );
        }
        util::run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
        util::run(apt_command("apt-get").args(["update", "-q"]))?;
        updated = true;
    }
    let known = |package: &str| {
        util::output_of(apt_command("apt-cache").args([
            "show",
            "--no-all-versions",
            &format!("{package}:arm64"),
        ]))
        .is_ok_and(|text| !text.trim().is_empty())
    };
    if !known(BUSYBOX_PACKAGE) || !known(KERNEL_META_PACKAGE) {
        if updated || !util::is_root() {
            fail!(
                "apt does not know {BUSYBOX_PACKAGE}:arm64 / {KERNEL_META_PACKAGE}:arm64: run `sudo apt-get update`, {}",
                how_to_fix()
            );
        }
        util::run(apt_command("apt-get").args(["update", "-q"]))?;
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

/// The pinned kernel, or the one the meta-package depends on.
fn choose_kernel() -> Result<(String, String)> {
    if available(KERNEL_PACKAGE, Some(KERNEL_VERSION)).is_some() {
        return Ok((KERNEL_PACKAGE.to_owned(), KERNEL_VERSION.to_owned()));
    }
    let text = util::output_of(apt_command("apt-cache").args([
        "show",
        "--no-all-versions",
        &format!("{KERNEL_META_PACKAGE}:arm64"),
    ]))?;
    let depends = text
        .lines()
        .find_map(|line| line.strip_prefix("Depends:"))
        .unwrap_or_default();
    let Some(package) = depends
        .split([',', ' ', '|'])
        .find(|word| word.starts_with("linux-image-"))
        .map(|word| word.trim_end_matches(":arm64").to_owned())
    else {
        fail!(
            "cannot tell which kernel {KERNEL_META_PACKAGE}:arm64 depends on (Depends: {depends})"
        );
    };
    let Some(version) = available(&package, None) else {
        fail!("apt cannot find {package}:arm64 that {KERNEL_META_PACKAGE} depends on");
    };
    eprintln!(
        "warning: the pinned kernel {KERNEL_PACKAGE} {KERNEL_VERSION} is no longer in the archive; \
         using {package} {version} (update the pin in xtask/src/debian.rs)"
    );
    Ok((package, version))
}

/// Downloads `package` at `version` into `dir` and returns the .deb.
fn download(dir: &Path, package: &str, version: &str) -> Result<PathBuf> {
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
        .map_err(|error| util::Error(format!("{error}; no network? {}", how_to_fix())))?;
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

/// Fetches, verifies and caches the kernel and busybox.
fn fetch() -> Result<LinuxGuest> {
    eprintln!(
        "Fetching Debian's arm64 kernel and busybox-static (cached under target/guests/debian)"
    );
    prepare_apt()?;
    let dir = cache_dir();
    let downloads = dir.join("downloads");
    let (kernel_package, kernel_version) = choose_kernel()?;
    let Some(busybox_version) = available(BUSYBOX_PACKAGE, None) else {
        fail!("apt cannot find {BUSYBOX_PACKAGE}:arm64");
    };
    let kernel_deb = download(&downloads, &kernel_package, &kernel_version)?;
    let busybox_deb = download(&downloads, BUSYBOX_PACKAGE, &busybox_version)?;

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
    util::write_if_changed(&manifest_path(), manifest.as_bytes())?;
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
