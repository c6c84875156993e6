//! `cargo xtask build`: the hypervisor image, the test guest, Linux initramfs and the guest bundles.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cellvisor::setup::cpio;
use cellvisor::setup::image::has_arm64_image_magic;
use cellvisor_board::Layout;

use crate::boards::{self, BoardTarget};
use crate::debian::{self, KernelPin, LinuxGuest};
use crate::dtb;
use crate::elf;
use crate::fail;
use crate::initramfs;
use crate::kernel;
use crate::prereq;
use crate::util::{self, Context, Result};

/// Target the hypervisor is built for (soft-float: EL2 never touches guests' FP/SIMD state).
pub const HYPERVISOR_TARGET: &str = "aarch64-unknown-none-softfloat";
/// Target the Rust test guests are built for.
pub const GUEST_TARGET: &str = "aarch64-unknown-none";
/// Target of the Linux cells' `vsock` tool: static musl, linked by rust-lld (.cargo/config.toml).
pub const LINUX_TOOL_TARGET: &str = "aarch64-unknown-linux-musl";
/// Package of the Linux cells' `vsock` tool (guests/linux/vsock-tool), and its binary.
const VSOCK_TOOL_PACKAGE: (&str, &str) = ("cellvisor-vsock", "vsock");
/// Cargo profile of the Linux cells' tools (workspace Cargo.toml: small, stripped, panic=abort).
const LINUX_TOOL_PROFILE: &str = "guest-tool";
/// Bundle entry name of the Rust test guest.
pub const TEST_GUEST_ENTRY: &str = "test-guest";
/// Bundle entry name (and package) of the Rust bench guest.
pub const BENCH_GUEST_ENTRY: &str = "bench-guest";
/// Bundle entry name of the Debian kernel.
const LINUX_ENTRY: &str = "linux";

/// Per-cell replacements placed in a bundle as `override/<cell>/{kernel,initrd,bootargs}`.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--kernel CELL=PATH`.
    pub kernel: BTreeMap<String, PathBuf>,
    /// `--initrd CELL=PATH`.
    pub initrd: BTreeMap<String, PathBuf>,
    /// `--append CELL=ARGS`.
    pub bootargs: BTreeMap<String, String>,
}

impl Overrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self.kernel.is_empty() && self.initrd.is_empty() && self.bootargs.is_empty()
    }

    /// Fails if a named cell is not in `layout` or a named file does not exist.
    pub fn check(&self, layout: &Layout) -> Result<()> {
        let cells: Vec<&str> = layout.cells.iter().map(|cell| cell.name).collect();
        let names = self
            .kernel
            .keys()
            .chain(self.initrd.keys())
            .chain(self.bootargs.keys());
        for name in names {
            if !cells.contains(&name.as_str()) {
                fail!(
                    "layout `{}` has no cell `{name}` (cells: {})",
                    layout.name,
                    cells.join(", ")
                );
            }
        }
        for path in self.kernel.values().chain(self.initrd.values()) {
            if !path.is_file() {
                fail!("{} does not exist", path.display());
            }
        }
        Ok(())
    }
}

/// The layouts of the `qemu-virt` board.
pub fn layouts() -> &'static [Layout] {
    qemu_virt::BOARD.layouts
}

/// The layout called `name` of the default board, or a one-line error listing the others.
pub fn layout(name: &str) -> Result<&'static Layout> {
    board_layout(&boards::QEMU_VIRT, name)
}

/// The layout called `name` of `target`, or a one-line error listing the others.
pub fn board_layout(target: &BoardTarget, name: &str) -> Result<&'static Layout> {
    match target.board.layout(name) {
        Some(layout) => Ok(layout),
        None => {
            let names: Vec<&str> = target
                .board
                .layouts
                .iter()
                .map(|layout| layout.name)
                .collect();
            fail!(
                "no layout `{name}` on board {} (layouts: {})",
                target.name,
                names.join(", ")
            )
        }
    }
}

/// Raw hypervisor image path of the default board.
pub fn hypervisor_image() -> PathBuf {
    boards::QEMU_VIRT.image()
}

/// The bundle of `layout`.
pub fn bundle_path(layout: &str) -> PathBuf {
    util::out_dir().join(format!("bundle-{layout}.cpio"))
}

/// The bundle of `layout` whose Linux cells boot the kernel of `pin`: [`bundle_path`] for the
/// default kernel, `bundle-<layout>-<variant>.cpio` for another.
pub fn kernel_bundle_path(layout: &str, pin: &KernelPin) -> PathBuf {
    util::out_dir().join(pin.file_name(&format!("bundle-{layout}.cpio")))
}

fn elf_to_raw(elf_path: &Path, raw_path: &Path, what: &str) -> Result<elf::RawImage> {
    let data = std::fs::read(elf_path).context(|| format!("cannot read {}", elf_path.display()))?;
    let image = elf::to_raw(&data, what)?;
    util::write_if_changed(raw_path, &image.bytes)?;
    Ok(image)
}

/// Builds the hypervisor and writes `target/cellvisor/qemu-virt.bin`.
pub fn build_hypervisor(release: bool) -> Result<PathBuf> {
    build_hypervisor_for(&boards::QEMU_VIRT, release)
}

/// Builds the hypervisor image of `target` and writes it raw to [`BoardTarget::image`].
pub fn build_hypervisor_for(target: &BoardTarget, release: bool) -> Result<PathBuf> {
    prereq::rust_targets()?;
    let mut command = util::cargo();
    command.args([
        "build",
        "-p",
        target.name,
        "--bin",
        target.bin,
        "--target",
        HYPERVISOR_TARGET,
    ]);
    if release {
        command.arg("--release");
    }
    util::run(&mut command)
        .map_err(|error| util::Error(format!("hypervisor build failed: {error}")))?;
    let profile = if release { "release" } else { "debug" };
    let elf_path = util::target_dir()
        .join(HYPERVISOR_TARGET)
        .join(profile)
        .join(target.bin);
    let raw = target.image();
    let image = elf_to_raw(&elf_path, &raw, "the hypervisor ELF")?;
    if !has_arm64_image_magic(&image.bytes) {
        fail!(
            "{} has no arm64 Image header (magic \"ARM\\x64\" at offset 56): QEMU would not boot it at EL2 as an Image",
            util::pretty(&raw)
        );
    }
    if image.base != target.load_address {
        fail!(
            "the hypervisor image starts at {:#x}, but {} loads it at {:#x}",
            image.base,
            target.name,
            target.load_address
        );
    }
    eprintln!(
        "  {} ({} KiB, {profile})",
        util::pretty(&raw),
        image.bytes.len().div_ceil(1024)
    );
    Ok(raw)
}

/// Builds the Rust test guest and writes `target/cellvisor/test-guest.bin`.
pub fn build_test_guest() -> Result<PathBuf> {
    build_rust_guest(TEST_GUEST_ENTRY)
}

/// Builds the Rust bench guest and writes `target/cellvisor/bench-guest.bin`; the ELF (for native
/// runs) is [`rust_guest_elf`]`("bench-guest")`.
pub fn build_bench_guest() -> Result<PathBuf> {
    build_rust_guest(BENCH_GUEST_ENTRY)
}

/// The ELF of the Rust guest `package` (release profile).
pub fn rust_guest_elf(package: &str) -> PathBuf {
    util::target_dir()
        .join(GUEST_TARGET)
        .join("release")
        .join(package)
}

/// Builds the Rust guest `package` (whose binary has the same name) and writes
/// `target/cellvisor/<package>.bin`.
fn build_rust_guest(package: &str) -> Result<PathBuf> {
    prereq::rust_targets()?;
    let mut command = util::cargo();
    command.args([
        "build",
        "-p",
        package,
        "--target",
        GUEST_TARGET,
        "--release",
    ]);
    util::run(&mut command)
        .map_err(|error| util::Error(format!("{package} build failed: {error}")))?;
    let elf_path = rust_guest_elf(package);
    let raw = util::out_dir().join(format!("{package}.bin"));
    let image = elf_to_raw(&elf_path, &raw, &format!("the {package} ELF"))?;
    if image.base != qemu_virt::TEST_GUEST_BASE || image.entry != image.base {
        fail!(
            "{package} must be linked at {:#x} with its entry at its first byte (it starts at {:#x}, entry {:#x})",
            qemu_virt::TEST_GUEST_BASE,
            image.base,
            image.entry
        );
    }
    eprintln!(
        "  {} ({} KiB)",
        util::pretty(&raw),
        image.bytes.len().div_ceil(1024)
    );
    Ok(raw)
}

/// Builds the Linux cells' `vsock` tool (guests/linux/vsock-tool) as a static
/// aarch64-unknown-linux-musl binary and returns its path (`target/<target>/guest-tool/vsock`).
pub fn build_vsock_tool() -> Result<PathBuf> {
    prereq::rust_targets()?;
    prereq::rust_lld()?;
    let (package, bin) = VSOCK_TOOL_PACKAGE;
    let mut command = util::cargo();
    command.args([
        "build",
        "-p",
        package,
        "--bin",
        bin,
        "--target",
        LINUX_TOOL_TARGET,
        "--profile",
        LINUX_TOOL_PROFILE,
    ]);
    util::run(&mut command)
        .map_err(|error| util::Error(format!("{package} build failed: {error}")))?;
    let path = util::target_dir()
        .join(LINUX_TOOL_TARGET)
        .join(LINUX_TOOL_PROFILE)
        .join(bin);
    let data = std::fs::read(&path).context(|| format!("cannot read {}", path.display()))?;
    elf::check_aarch64(&data, &util::pretty(&path).to_string())?;
    // A static executable asks for no dynamic loader (PT_INTERP): the initramfs has none.
    if elf::is_dynamic(&data) {
        fail!(
            "{} is dynamically linked: it must be static for the initramfs (check [target.{LINUX_TOOL_TARGET}] in .cargo/config.toml)",
            util::pretty(&path)
        );
    }
    eprintln!(
        "  {} ({} KiB, static {LINUX_TOOL_TARGET})",
        util::pretty(&path),
        data.len().div_ceil(1024)
    );
    Ok(path)
}

/// Guest ingredients that are built at most once per xtask run; the `linux` entry and the Linux
/// initramfs are those of one kernel.
pub struct Ingredients {
    kernel: KernelPin,
    test_guest: Option<PathBuf>,
    bench_guest: Option<PathBuf>,
    linux: Option<LinuxGuest>,
    vsock_tool: Option<PathBuf>,
    initrds: BTreeMap<String, PathBuf>,
}

impl Default for Ingredients {
    /// The ingredients with Debian's default kernel.
    fn default() -> Self {
        Ingredients::with_kernel(debian::DEFAULT_KERNEL)
    }
}

impl Ingredients {
    /// The ingredients whose Linux cells boot the kernel of `kernel`.
    pub fn with_kernel(kernel: KernelPin) -> Self {
        Ingredients {
            kernel,
            test_guest: None,
            bench_guest: None,
            linux: None,
            vsock_tool: None,
            initrds: BTreeMap::new(),
        }
    }

    fn linux(&mut self) -> Result<&LinuxGuest> {
        if self.linux.is_none() {
            prereq::linux_tools()?;
            let guest = debian::linux_guest(&self.kernel)?;
            eprintln!("  Linux guest: {}", guest.description);
            self.linux = Some(guest);
        }
        match &self.linux {
            Some(guest) => Ok(guest),
            None => fail!("Linux guest unavailable"),
        }
    }

    /// The file for bundle entry `name`, building it if needed.
    fn entry(&mut self, name: &str) -> Result<PathBuf> {
        if name == TEST_GUEST_ENTRY {
            if self.test_guest.is_none() {
                self.test_guest = Some(build_test_guest()?);
            }
            return self
                .test_guest
                .clone()
                .ok_or_else(|| "test guest unavailable".into());
        }
        if name == BENCH_GUEST_ENTRY {
            if self.bench_guest.is_none() {
                self.bench_guest = Some(build_bench_guest()?);
            }
            return self
                .bench_guest
                .clone()
                .ok_or_else(|| "bench guest unavailable".into());
        }
        if name == LINUX_ENTRY {
            return Ok(self.linux()?.kernel_image.clone());
        }
        if let Some(cell) = name.strip_prefix("initrd-") {
            if let Some(path) = self.initrds.get(cell) {
                return Ok(path.clone());
            }
            let guest = self.linux()?.clone();
            if self.vsock_tool.is_none() {
                self.vsock_tool = Some(build_vsock_tool()?);
            }
            let tools = initramfs::Tools {
                vsock: self
                    .vsock_tool
                    .clone()
                    .ok_or_else(|| util::Error("vsock tool unavailable".into()))?,
            };
            let path = initramfs::build(cell, &guest, &tools, &self.kernel)?;
            eprintln!(
                "  {} (from guests/linux/common + guests/linux/{cell})",
                util::pretty(&path)
            );
            self.initrds.insert(cell.to_owned(), path.clone());
            return Ok(path);
        }
        fail!(
            "xtask does not know how to build bundle entry `{name}` (known: test-guest, bench-guest, linux, initrd-<cell>)"
        )
    }
}

/// The entry names a layout's cells use, in first-use order.
pub fn entry_names(layout: &Layout) -> Vec<&'static str> {
    let mut names = Vec::new();
    for cell in layout.cells {
        for name in std::iter::once(cell.kernel).chain(cell.initrd) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// Writes the bundle of `layout` (with `overrides`) to `path`.
pub fn build_bundle(
    layout: &Layout,
    overrides: &Overrides,
    ingredients: &mut Ingredients,
    path: &Path,
) -> Result<()> {
    overrides.check(layout)?;
    let mut writer = cpio::Writer::new();
    let mut total = 0usize;
    let mut add = |writer: &mut cpio::Writer, name: &str, data: &[u8]| {
        total += data.len();
        writer.file(name, 0o644, data);
    };
    for name in entry_names(layout) {
        // An entry every cell overrides is not needed (e.g. all kernels replaced by --kernel).
        let users: Vec<&str> = layout
            .cells
            .iter()
            .filter(|cell| {
                (cell.kernel == name && !overrides.kernel.contains_key(cell.name))
                    || (cell.initrd == Some(name) && !overrides.initrd.contains_key(cell.name))
            })
            .map(|cell| cell.name)
            .collect();
        if users.is_empty() {
            continue;
        }
        let file = ingredients.entry(name)?;
        let data = std::fs::read(&file).context(|| format!("cannot read {}", file.display()))?;
        add(&mut writer, name, &data);
    }
    for (cell, file) in &overrides.kernel {
        // An `Image.gz` goes in decompressed: cellvisor places only uncompressed kernels.
        let data = kernel::load(file)?;
        add(&mut writer, &format!("override/{cell}/kernel"), &data);
    }
    for (cell, file) in &overrides.initrd {
        let data = std::fs::read(file).context(|| format!("cannot read {}", file.display()))?;
        add(&mut writer, &format!("override/{cell}/initrd"), &data);
    }
    for (cell, args) in &overrides.bootargs {
        add(
            &mut writer,
            &format!("override/{cell}/bootargs"),
            args.as_bytes(),
        );
    }
    util::write_if_changed(path, &writer.finish())?;
    eprintln!(
        "  {} ({} MiB of guests)",
        util::pretty(path),
        total.div_ceil(1 << 20)
    );
    Ok(())
}

/// What `cargo xtask build` makes.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Build the hypervisor with the release profile.
    pub release: bool,
    /// Only these layouts (all when empty).
    pub layouts: Vec<String>,
    /// The board (`--board`; `None`: the default board, qemu-virt).
    pub board: Option<String>,
}

/// Builds everything `options` names, continuing past failures; returns the failures (one line
/// each).
pub fn build_all(options: &BuildOptions) -> Vec<String> {
    match options.board.as_deref().map(boards::board) {
        None => build_default_board(options),
        Some(Ok(target)) if target.is_default() => build_default_board(options),
        Some(Ok(target)) => build_board(target, options),
        Some(Err(error)) => vec![error.to_string()],
    }
}

/// Builds a board other than the default: its image, the bundles of its layouts (with the default
/// Debian kernel) and, for a QEMU board given a real DTB, that DTB, all in
/// [`BoardTarget::out_dir`].
pub fn build_board(target: &BoardTarget, options: &BuildOptions) -> Vec<String> {
    let mut failures = Vec::new();
    eprintln!("Building the hypervisor image of board {}", target.name);
    if let Err(error) = build_hypervisor_for(target, options.release) {
        failures.push(error.to_string());
    }
    let chosen: Vec<&Layout> = if options.layouts.is_empty() {
        target.board.layouts.iter().collect()
    } else {
        match options
            .layouts
            .iter()
            .map(|name| board_layout(target, name))
            .collect::<Result<Vec<_>>>()
        {
            Ok(chosen) => chosen,
            Err(error) => {
                failures.push(error.to_string());
                return failures;
            }
        }
    };
    let mut ingredients = Ingredients::default();
    for layout in chosen {
        eprintln!(
            "Building the guest bundle of layout `{}` of board {}",
            layout.name, target.name
        );
        if let Err(error) = build_bundle(
            layout,
            &Overrides::default(),
            &mut ingredients,
            &target.bundle(layout.name),
        ) {
            failures.push(format!("bundle `{}`: {error}", layout.name));
        }
    }
    if let Some(pin) = &target.dtb {
        eprintln!("Fetching the platform device tree of board {}", target.name);
        if let Err(error) = dtb::fetch_into(pin, &target.out_dir().join(pin.file_name())) {
            failures.push(error.to_string());
        }
    }
    failures
}

/// Builds the default board: its image and every layout's bundle (with the newest kernel too
/// where the fidelity tests need it), and the corporate disk.
fn build_default_board(options: &BuildOptions) -> Vec<String> {
    let mut failures = Vec::new();
    eprintln!("Building the hypervisor image");
    if let Err(error) = build_hypervisor(options.release) {
        failures.push(error.to_string());
    }
    let chosen: Vec<&Layout> = if options.layouts.is_empty() {
        layouts().iter().collect()
    } else {
        match options
            .layouts
            .iter()
            .map(|name| layout(name))
            .collect::<Result<Vec<_>>>()
        {
            Ok(chosen) => chosen,
            Err(error) => {
                failures.push(error.to_string());
                return failures;
            }
        }
    };
    let needs_disk = chosen.iter().any(|layout| {
        cellvisor_tests::PassthroughDevices::of_layout(layout.name)
            != cellvisor_tests::PassthroughDevices::None
    });
    let mut ingredients = Ingredients::default();
    for layout in &chosen {
        eprintln!("Building the guest bundle of layout `{}`", layout.name);
        if let Err(error) = build_bundle(
            layout,
            &Overrides::default(),
            &mut ingredients,
            &bundle_path(layout.name),
        ) {
            failures.push(format!("bundle `{}`: {error}", layout.name));
        }
    }
    // The guest-fidelity tests boot Debian's newest kernel in every Linux cell of these layouts.
    let newest = debian::NEWEST_KERNEL;
    let mut ingredients = Ingredients::with_kernel(newest);
    for layout in chosen
        .iter()
        .filter(|layout| cellvisor_tests::NEWEST_KERNEL_LAYOUTS.contains(&layout.name))
    {
        eprintln!(
            "Building the guest bundle of layout `{}` with {}",
            layout.name, newest.role
        );
        if let Err(error) = build_bundle(
            layout,
            &Overrides::default(),
            &mut ingredients,
            &kernel_bundle_path(layout.name, &newest),
        ) {
            failures.push(format!(
                "bundle `{}` with {}: {error}",
                layout.name, newest.role
            ));
        }
    }
    if needs_disk && let Err(error) = corporate_disk() {
        failures.push(format!("corporate disk image: {error}"));
    }
    failures
}

/// Size of the corporate cell's disk image.
const CORPORATE_DISK_BYTES: u64 = 64 << 20;

/// `target/cellvisor/corporate-disk.img`, the disk passed through to the corporate cell: made once
/// (64 MiB, empty ext2 labelled `corporate`, made with `mkfs.ext2` from e2fsprogs) and then kept, so
/// what the cell writes survives rebuilds. Delete the file for a fresh disk.
pub fn corporate_disk() -> Result<PathBuf> {
    let path = util::out_dir().join(cellvisor_tests::CORPORATE_DISK);
    if path.is_file() {
        return Ok(path);
    }
    prereq::tool("mkfs.ext2", "e2fsprogs")?;
    let scratch = path.with_extension("img.partial");
    let file = std::fs::File::create(&scratch)
        .context(|| format!("cannot create {}", scratch.display()))?;
    file.set_len(CORPORATE_DISK_BYTES)
        .context(|| format!("cannot size {}", scratch.display()))?;
    drop(file);
    util::run(
        std::process::Command::new("mkfs.ext2")
            .args(["-F", "-q", "-L", "corporate", "-E", "root_owner=0:0"])
            .arg(&scratch),
    )
    .map_err(|error| util::Error(format!("mkfs.ext2 failed: {error}")))?;
    std::fs::rename(&scratch, &path)
        .context(|| format!("cannot rename {} to {}", scratch.display(), path.display()))?;
    eprintln!(
        "  {} ({} MiB ext2, passed through to corporate)",
        util::pretty(&path),
        CORPORATE_DISK_BYTES >> 20
    );
    Ok(path)
}
