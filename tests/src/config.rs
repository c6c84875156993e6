//! Where the built images are, and how QEMU is started: machine, devices and timeouts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::HarnessError;

/// Built images and the QEMU to run them with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifacts {
    /// Directory holding `qemu-virt.bin` and `bundle-<layout>.cpio` (`target/cellvisor`).
    pub out_dir: PathBuf,
    /// The `qemu-system-aarch64` binary.
    pub qemu: PathBuf,
}

impl Artifacts {
    /// Reads `CELLVISOR_OUT` and `CELLVISOR_QEMU`, which `cargo xtask test` sets.
    pub fn from_env() -> Result<Artifacts, HarnessError> {
        let out_dir = std::env::var_os("CELLVISOR_OUT").ok_or_else(|| {
            HarnessError::Setup(
                "CELLVISOR_OUT is not set: QEMU tests need built images, run `cargo xtask test`"
                    .into(),
            )
        })?;
        let qemu = std::env::var_os("CELLVISOR_QEMU").ok_or_else(|| {
            HarnessError::Setup(
                "CELLVISOR_QEMU is not set: QEMU tests need a checked QEMU, run `cargo xtask test`"
                    .into(),
            )
        })?;
        Ok(Artifacts {
            out_dir: PathBuf::from(out_dir),
            qemu: PathBuf::from(qemu),
        })
    }

    /// The raw hypervisor image for the `qemu-virt` board.
    pub fn hypervisor_image(&self) -> PathBuf {
        self.out_dir.join("qemu-virt.bin")
    }

    /// Where the images of a board other than `qemu-virt` are: `<out_dir>/<board>/`.
    pub fn board_dir(&self, board: &str) -> PathBuf {
        self.out_dir.join(board)
    }

    /// The guest bundle (cpio newc) for a layout.
    pub fn bundle(&self, layout: &str) -> PathBuf {
        self.out_dir.join(format!("bundle-{layout}.cpio"))
    }

    /// The bundle of `layout` with the kernel `variant` ([`NEWEST_KERNEL`]):
    /// `bundle-<layout>-<variant>.cpio`.
    pub fn kernel_bundle(&self, layout: &str, variant: &str) -> PathBuf {
        self.out_dir.join(format!("bundle-{layout}-{variant}.cpio"))
    }

    /// Where transcripts are saved.
    pub fn transcript_dir(&self) -> PathBuf {
        self.out_dir.join("transcripts")
    }
}

/// QEMU's machine for the `qemu-virt` board: GICv3, EL2, and the SMMUv3 that confines the PCI
/// devices' DMA (its stage 2 is advertised by [`SMMU_ARGS`]).
pub const MACHINE: &str = "virt,virtualization=on,gic-version=3,iommu=smmuv3";
/// [`MACHINE`] with a GICv2 (QEMU's GIC-400 model with the virtualization extensions) instead of
/// the GICv3: `cargo xtask run --gic 2`.
pub const MACHINE_GICV2: &str = "virt,virtualization=on,gic-version=2,iommu=smmuv3";

/// Which QEMU machine a test boots: a board cellvisor has a QEMU model of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QemuBoard {
    /// `qemu-virt`: QEMU's `virt` machine, with the GIC [`QemuConfig::gic`] names.
    #[default]
    Virt,
    /// `raspi4b`: QEMU's Raspberry Pi 4 Model B (GIC-400, spin-table CPUs, no PSCI), given the
    /// real `bcm2711-rpi-4-b.dtb` ([`RASPI4B_DTB`]) with `-dtb`.
    Raspi4b,
}

/// The file name of the raspi4b platform DT in `<out_dir>/raspi4b/` (`cargo xtask build --board
/// raspi4b` fetches and pins it).
pub const RASPI4B_DTB: &str = "bcm2711-rpi-4-b.dtb";
/// The file name of a non-default board's hypervisor image in `<out_dir>/<board>/`.
pub const BOARD_IMAGE: &str = "Image";

impl QemuBoard {
    /// The board crate's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Virt => "qemu-virt",
            Self::Raspi4b => "raspi4b",
        }
    }
}

/// Which GIC QEMU's `virt` machine gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv3 (the default).
    #[default]
    V3,
    /// GICv2 with the virtualization extensions.
    V2,
}

impl GicVersion {
    /// `2` or `3` as `--gic` takes it; `None` for anything else.
    pub fn from_number(number: &str) -> Option<Self> {
        match number {
            "2" => Some(Self::V2),
            "3" => Some(Self::V3),
            _ => None,
        }
    }

    /// The `-M` value of the `qemu-virt` board with this GIC.
    pub fn machine(self) -> &'static str {
        match self {
            Self::V3 => MACHINE,
            Self::V2 => MACHINE_GICV2,
        }
    }
}

/// QEMU arguments that make virt's SMMUv3 advertise stage 2 (QEMU's default is stage 1 only),
/// which cellvisor translates cell DMA with.
pub const SMMU_ARGS: [&str; 2] = ["-global", "arm-smmuv3.stage=2"];

/// Layouts whose cells own QEMU's virtio PCI functions (boards/qemu-virt: `virtio-blk-pci` at
/// 00:02.0 for corporate and `virtio-net-pci` at 00:03.0 for personal in `linux`; the disk for the
/// attacker in `dma-attack` and for the bench guest's `pci_intx` op in `bench`): [`QemuConfig::new`]
/// attaches [`pci_device_args`] for them.
pub const PCI_LAYOUTS: &[&str] = &["linux", "linux-shared", "dma-attack", "bench"];

/// Layouts whose cells own QEMU's virtio-mmio devices (`virtio-disk` in slot 31, `virtio-net` in
/// slot 30: `linux-mmio`; the disk alone in `test-guest-disk` and `test-guest-dma`):
/// [`QemuConfig::new`] attaches [`mmio_device_args`] for them.
pub const MMIO_LAYOUTS: &[&str] = &["linux-mmio", "test-guest-disk", "test-guest-dma"];

/// The `-smp` of the default board's layout `layout`: 4, except for a layout whose cells
/// time-share CPUs, which runs on the CPUs its cells use (`linux-shared`: 2, a two-core phone).
pub fn machine_cpus(layout: &str) -> u32 {
    match qemu_virt::BOARD.layout(layout) {
        Some(layout) if layout.cpu_sharing.is_some() => layout
            .cells
            .iter()
            .flat_map(|cell| cell.cpus.iter())
            .max()
            .map_or(4, |&cpu| cpu as u32 + 1),
        _ => 4,
    }
}

/// Which passed-through devices QEMU is started with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassthroughDevices {
    /// None.
    None,
    /// [`pci_device_args`].
    Pci,
    /// [`mmio_device_args`].
    Mmio,
}

impl PassthroughDevices {
    /// The devices `layout`'s cells own.
    pub fn of_layout(layout: &str) -> Self {
        if PCI_LAYOUTS.contains(&layout) {
            Self::Pci
        } else if MMIO_LAYOUTS.contains(&layout) {
            Self::Mmio
        } else {
            Self::None
        }
    }

    /// QEMU's arguments for them, the disk on `disk` (see [`pci_device_args`]).
    pub fn args(self, disk: &Path, snapshot: bool) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::Pci => pci_device_args(disk, snapshot),
            Self::Mmio => mmio_device_args(disk, snapshot),
        }
    }
}

/// The kernel variant that is Debian's newest cloud kernel for the host's release (bookworm-backports'
/// 6.12 on bookworm; xtask/src/debian.rs pins it). Besides each layout's bundle, `cargo xtask build`
/// makes [`Artifacts::kernel_bundle`]`(layout, NEWEST_KERNEL)` for every layout of
/// [`NEWEST_KERNEL_LAYOUTS`]: every Linux cell boots that kernel, with an initramfs built with its
/// own modules.
pub const NEWEST_KERNEL: &str = "newest";

/// The layouts `cargo xtask build` also bundles with the [`NEWEST_KERNEL`].
pub const NEWEST_KERNEL_LAYOUTS: &[&str] = &["linux"];

/// File name of the corporate cell's disk image in the output directory (`cargo xtask build`
/// makes it: 64 MiB, ext2).
pub const CORPORATE_DISK: &str = "corporate-disk.img";

/// QEMU arguments for a headless run with the serial console on stdio: no display, no monitor
/// (so every input byte reaches the UART unmodified), no reboot (a reset ends QEMU), and no
/// default network card (virt's is a virtio-net PCI card the board does not describe, whose
/// option ROM comes from a package QEMU only recommends; the passed-through virtio-net is added
/// explicitly with `-netdev`/`-device`).
pub const HEADLESS_SERIAL_ARGS: [&str; 9] = [
    "-display",
    "none",
    "-serial",
    "stdio",
    "-monitor",
    "none",
    "-no-reboot",
    "-nic",
    "none",
];

/// The screen and input devices of a phone-like machine ([`QemuConfig::display`], `cargo xtask run
/// --display`), which cellvisor owns: QEMU's `ramfb` (the screen cellvisor scans the focused cell's
/// framebuffer out to), a virtio-mmio keyboard and a virtio-mmio tablet (keys and touch, which
/// cellvisor hands to the focused cell). They come after the passthrough devices, so those keep
/// their virtio-mmio slots (`-device virtio-*-device` fills slots from the top).
pub const DISPLAY_DEVICE_ARGS: [&str; 6] = [
    "-device",
    "ramfb",
    "-device",
    "virtio-keyboard-device",
    "-device",
    "virtio-tablet-device",
];

/// QEMU arguments for a QMP server on the Unix socket `socket` that QEMU does not wait for.
pub fn qmp_args(socket: &Path) -> Vec<String> {
    // QEMU's option syntax escapes a comma by doubling it.
    let path = socket.to_string_lossy().replace(',', ",,");
    vec!["-qmp".to_owned(), format!("unix:{path},server=on,wait=off")]
}

/// A QMP socket path no other machine of this process (or, by the process id, of another test
/// process) uses: `<temp dir>/cellvisor-qmp-<pid>-<n>.sock`.
pub fn unique_qmp_socket() -> PathBuf {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!("cellvisor-qmp-{}-{n}.sock", std::process::id()))
}

/// The `-drive` for the disk on `disk`. With `snapshot`, the disk's writes go to a temporary
/// overlay that lives as long as QEMU: tests can run in parallel on one image (and next to an
/// interactive run) and leave it unchanged; the snapshot opens the image read-only and without
/// locks, so it also works while an interactive `cargo xtask run` holds the image's write lock.
fn disk_drive(disk: &Path, snapshot: bool) -> [String; 2] {
    // QEMU's option syntax escapes a comma by doubling it.
    let file = disk.to_string_lossy().replace(',', ",,");
    let snapshot = if snapshot {
        ",snapshot=on,file.locking=off"
    } else {
        ""
    };
    [
        "-drive".to_owned(),
        format!("file={file},if=none,format=raw,id=disk0{snapshot}"),
    ]
}

/// QEMU arguments for the passed-through PCI functions of the default layout: the virtio-blk disk
/// on `disk` at 00:02.0 and virtio-net with QEMU user networking at 00:03.0 (nothing outside the
/// machine is reachable except through QEMU's NAT), both modern-only (`disable-legacy=on`: no I/O
/// BAR), without option ROMs, and with `iommu_platform=on`: only then does QEMU send a virtio
/// device's DMA through the machine's SMMU (hw/virtio/virtio-bus.c). The `-drive` comes first
/// (see [`QemuConfig::disk_options`]).
pub fn pci_device_args(disk: &Path, snapshot: bool) -> Vec<String> {
    let mut args = pci_disk_device_args(disk, snapshot);
    args.extend(
        [
            "-netdev",
            "user,id=net0",
            "-device",
            "virtio-net-pci,netdev=net0,addr=0x3,disable-legacy=on,romfile=,iommu_platform=on",
        ]
        .map(String::from),
    );
    args
}

/// QEMU arguments for the disk of [`pci_device_args`] alone (its `-drive` and its `-device`, the
/// same options), without the network: what `cargo xtask bench` gives its native twin of the
/// corporate cell, so both read the same device.
pub fn pci_disk_device_args(disk: &Path, snapshot: bool) -> Vec<String> {
    let mut args = disk_drive(disk, snapshot).to_vec();
    args.extend(
        [
            "-device",
            "virtio-blk-pci,drive=disk0,addr=0x2,disable-legacy=on,romfile=,iommu_platform=on",
        ]
        .map(String::from),
    );
    args
}

/// QEMU arguments for the virtio-mmio devices, in the order that puts them in the right slots
/// (`-device virtio-*-device` fills slots from the top): first the virtio-blk disk on `disk`
/// (slot 31, INTID 79), then virtio-net with QEMU user networking (slot 30, INTID 78). The
/// `-drive` comes first.
pub fn mmio_device_args(disk: &Path, snapshot: bool) -> Vec<String> {
    let mut args = disk_drive(disk, snapshot).to_vec();
    args.extend(
        [
            "-device",
            "virtio-blk-device,drive=disk0",
            "-netdev",
            "user,id=net0",
            "-device",
            "virtio-net-device,netdev=net0",
        ]
        .map(String::from),
    );
    args
}
/// PCI device number (bus 0, function 0) of the virtio-blk PCI disk of [`pci_disk_args`]: 00:02.0.
pub const PCI_DISK_DEVICE: u8 = 2;

/// QEMU arguments for a virtio-blk PCI disk on `disk` at PCI 00:02.0 (`addr=0x2`, see
/// [`PCI_DISK_DEVICE`]), modern only (`disable-legacy=on`: device ID 0x1042, no I/O BAR), as a
/// snapshot (see [`pci_device_args`]). With `iommu_platform=on`: only then does QEMU send a
/// virtio device's DMA through the machine's IOMMU (hw/virtio/virtio-bus.c: without it the
/// device's address space is plain system memory, whatever the SMMU is told), and it then offers
/// VIRTIO_F_ACCESS_PLATFORM, which a driver must accept. Without an IOMMU the DMA goes to memory
/// through the function's Bus Master gate.
pub fn pci_disk_args(disk: &Path) -> Vec<String> {
    let file = disk.to_string_lossy().replace(',', ",,");
    vec![
        "-drive".to_owned(),
        format!("file={file},if=none,format=raw,id=disk0,snapshot=on,file.locking=off"),
        "-device".to_owned(),
        format!(
            "virtio-blk-pci,drive=disk0,addr={PCI_DISK_DEVICE:#x},disable-legacy=on,iommu_platform=on"
        ),
    ]
}

/// How to start QEMU. Build one with [`QemuConfig::new`] (or `Default`, the `linux` layout) and
/// change fields with struct-update syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuConfig {
    /// Cell layout, passed to cellvisor as `cellvisor.layout=<layout>`; also selects the bundle.
    pub layout: String,
    /// `-smp`.
    pub smp: u32,
    /// `-m`, in MiB.
    pub memory_mib: u32,
    /// Run with `-icount shift=0` (deterministic: one instruction is one nanosecond).
    pub icount: bool,
    /// `-cpu`.
    pub cpu: String,
    /// Appended to the hypervisor command line after `cellvisor.layout=<layout>`.
    pub hypervisor_args: String,
    /// Appended to the QEMU command line.
    pub extra_args: Vec<String>,
    /// Use this bundle instead of `<out_dir>/bundle-<layout>.cpio`.
    pub bundle: Option<PathBuf>,
    /// The passthrough devices to attach (on `<out_dir>/`[`CORPORATE_DISK`], as a snapshot);
    /// [`QemuConfig::new`] picks the layout's ([`PassthroughDevices::of_layout`]).
    pub passthrough_devices: PassthroughDevices,
    /// Appended to the disk's `-drive` options (each starting with a comma), e.g.
    /// `,throttling.bps-read=262144` to keep its reads in flight for longer.
    pub disk_options: String,
    /// The machine's interrupt controller (on [`QemuBoard::Virt`]; the other boards' GIC is the
    /// SoC's).
    pub gic: GicVersion,
    /// The QEMU machine.
    pub board: QemuBoard,
    /// Give the machine a screen and input devices ([`DISPLAY_DEVICE_ARGS`]: `ramfb`, a
    /// virtio-mmio keyboard and tablet) and a QMP socket to look at the screen and type with:
    /// [`Machine::boot`](crate::Machine::boot) picks the socket ([`unique_qmp_socket`]) and
    /// [`Machine::qmp`](crate::Machine::qmp) connects to it. Still headless (`-display none`):
    /// the screen is read with QMP `screendump`. On [`QemuBoard::Virt`] only.
    pub display: bool,
}

impl QemuConfig {
    /// The default machine (`-smp 4 -m 2G`, `-cpu max,sve=off,sme=off`) running `layout`; a
    /// layout whose cells time-share CPUs runs on just the CPUs it uses ([`machine_cpus`]).
    pub fn new(layout: &str) -> QemuConfig {
        QemuConfig {
            layout: layout.to_owned(),
            smp: machine_cpus(layout),
            memory_mib: 2048,
            icount: false,
            cpu: "max,sve=off,sme=off".to_owned(),
            hypervisor_args: String::new(),
            extra_args: Vec::new(),
            bundle: None,
            passthrough_devices: PassthroughDevices::of_layout(layout),
            disk_options: String::new(),
            gic: GicVersion::V3,
            board: QemuBoard::Virt,
            display: false,
        }
    }

    /// The layout `layout` on QEMU's raspi4b (`-smp 4 -m 2G` are the machine's own).
    pub fn raspi4b(layout: &str) -> QemuConfig {
        QemuConfig {
            board: QemuBoard::Raspi4b,
            passthrough_devices: PassthroughDevices::None,
            ..QemuConfig::new(layout)
        }
    }

    /// The hypervisor's command line (`-append`).
    pub fn hypervisor_command_line(&self) -> String {
        let mut line = format!("cellvisor.layout={}", self.layout);
        if self.board == QemuBoard::Raspi4b {
            line.push(' ');
            line.push_str(raspi4b::CONSOLE_BOOTARG);
        }
        if !self.hypervisor_args.trim().is_empty() {
            line.push(' ');
            line.push_str(self.hypervisor_args.trim());
        }
        line
    }

    /// QEMU's arguments (without the program), serial on stdio and no monitor, so every input byte
    /// reaches the UART unmodified. With [`QemuConfig::display`], the display devices but no QMP
    /// socket (see [`QemuConfig::qemu_args_with_qmp`]).
    pub fn qemu_args(&self, artifacts: &Artifacts) -> Vec<String> {
        self.qemu_args_with_qmp(artifacts, None)
    }

    /// [`QemuConfig::qemu_args`], plus a QMP server on `qmp` (see [`qmp_args`]) before
    /// [`QemuConfig::extra_args`] if given.
    pub fn qemu_args_with_qmp(&self, artifacts: &Artifacts, qmp: Option<&Path>) -> Vec<String> {
        if self.board == QemuBoard::Raspi4b {
            return self.raspi4b_args(artifacts);
        }
        let bundle = self
            .bundle
            .clone()
            .unwrap_or_else(|| artifacts.bundle(&self.layout));
        let mut args: Vec<String> = [
            "-M",
            self.gic.machine(),
            SMMU_ARGS[0],
            SMMU_ARGS[1],
            "-cpu",
            &self.cpu,
            "-smp",
            &self.smp.to_string(),
            "-m",
            &format!("{}M", self.memory_mib),
        ]
        .iter()
        .chain(&HEADLESS_SERIAL_ARGS)
        .chain(&[
            "-kernel",
            &artifacts.hypervisor_image().to_string_lossy(),
            "-initrd",
            &bundle.to_string_lossy(),
            "-append",
            &self.hypervisor_command_line(),
        ])
        .map(|s| s.to_string())
        .collect();
        if self.icount {
            args.extend(["-icount".to_owned(), "shift=0".to_owned()]);
        }
        let mut devices = self
            .passthrough_devices
            .args(&artifacts.out_dir.join(CORPORATE_DISK), true);
        if let Some(drive) = devices.get_mut(1) {
            drive.push_str(&self.disk_options);
        }
        args.extend(devices);
        if self.display {
            args.extend(DISPLAY_DEVICE_ARGS.map(String::from));
        }
        if let Some(socket) = qmp {
            args.extend(qmp_args(socket));
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

impl QemuConfig {
    /// [`QemuConfig::qemu_args`] on QEMU's raspi4b.
    fn raspi4b_args(&self, artifacts: &Artifacts) -> Vec<String> {
        let mut args: Vec<String> = HEADLESS_SERIAL_ARGS.iter().map(|s| s.to_string()).collect();
        args.extend(self.raspi4b_machine_args(artifacts));
        args
    }

    /// QEMU's raspi4b with the board's image, bundle and real DTB from `<out_dir>/raspi4b/`, and
    /// [`QemuConfig::extra_args`]; no console arguments.
    pub fn raspi4b_machine_args(&self, artifacts: &Artifacts) -> Vec<String> {
        let dir = artifacts.board_dir(QemuBoard::Raspi4b.name());
        let bundle = self
            .bundle
            .clone()
            .unwrap_or_else(|| dir.join(format!("bundle-{}.cpio", self.layout)));
        let mut args = vec!["-M".to_owned(), "raspi4b".to_owned()];
        args.extend([
            "-dtb".to_owned(),
            dir.join(RASPI4B_DTB).to_string_lossy().into_owned(),
            "-kernel".to_owned(),
            dir.join(BOARD_IMAGE).to_string_lossy().into_owned(),
            "-initrd".to_owned(),
            bundle.to_string_lossy().into_owned(),
            "-append".to_owned(),
            self.hypervisor_command_line(),
        ]);
        if self.icount {
            args.extend(["-icount".to_owned(), "shift=0".to_owned()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

impl Default for QemuConfig {
    fn default() -> Self {
        QemuConfig::new("linux")
    }
}

/// Multiplies a timeout by `CELLVISOR_TIMEOUT_SCALE` (default 1).
pub fn scaled(timeout: Duration) -> Duration {
    static SCALE: OnceLock<f64> = OnceLock::new();
    let scale = *SCALE.get_or_init(|| {
        std::env::var("CELLVISOR_TIMEOUT_SCALE")
            .ok()
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|scale| scale.is_finite() && *scale > 0.0)
            .unwrap_or(1.0)
    });
    timeout.mul_f64(scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_layout_gets_its_devices_the_disk_first() {
        let artifacts = Artifacts {
            out_dir: PathBuf::from("/out"),
            qemu: PathBuf::from("qemu-system-aarch64"),
        };
        let drive = "-drive file=/out/corporate-disk.img,if=none,format=raw,id=disk0,snapshot=on,\
                     file.locking=off";
        let args = QemuConfig::new("linux").qemu_args(&artifacts).join(" ");
        let pci = format!(
            "{drive} -device virtio-blk-pci,drive=disk0,addr=0x2,disable-legacy=on,romfile=,\
             iommu_platform=on \
             -netdev user,id=net0 -device virtio-net-pci,netdev=net0,addr=0x3,disable-legacy=on,\
             romfile=,iommu_platform=on"
        );
        assert!(args.contains(&pci), "{args}");
        assert!(
            args.contains("iommu=smmuv3 -global arm-smmuv3.stage=2"),
            "{args}"
        );
        let args = QemuConfig::new("linux-mmio")
            .qemu_args(&artifacts)
            .join(" ");
        let mmio = format!(
            "{drive} -device virtio-blk-device,drive=disk0 -netdev user,id=net0 -device \
             virtio-net-device,netdev=net0"
        );
        assert!(args.contains(&mmio), "{args}");
        let interactive = pci_device_args(Path::new("/a,b/disk.img"), false).join(" ");
        assert!(interactive.starts_with("-drive file=/a,,b/disk.img,if=none,format=raw,id=disk0 "));
        let disk_alone = pci_disk_device_args(Path::new("/a,b/disk.img"), false).join(" ");
        assert!(
            interactive.starts_with(&format!("{disk_alone} -netdev ")),
            "{interactive}"
        );
        assert!(!disk_alone.contains("net"), "{disk_alone}");
        assert_eq!(
            QemuConfig::new("test-guests").passthrough_devices,
            PassthroughDevices::None
        );
        assert_eq!(
            PassthroughDevices::of_layout("dma-attack"),
            PassthroughDevices::Pci
        );
        assert_eq!(
            PassthroughDevices::of_layout("test-guest-dma"),
            PassthroughDevices::Mmio
        );
    }

    #[test]
    fn qemu_command_line_has_serial_on_stdio_and_the_layout() {
        let artifacts = Artifacts {
            out_dir: PathBuf::from("/out"),
            qemu: PathBuf::from("qemu-system-aarch64"),
        };
        let config = QemuConfig {
            icount: true,
            hypervisor_args: "loglevel=debug".into(),
            extra_args: vec!["-s".into()],
            ..QemuConfig::new("test-guests")
        };
        let args = config.qemu_args(&artifacts).join(" ");
        assert!(args.contains(
            "-M virt,virtualization=on,gic-version=3,iommu=smmuv3 -global arm-smmuv3.stage=2 -cpu max,sve=off,sme=off -smp 4 -m 2048M"
        ));
        assert!(args.contains("-display none -serial stdio -monitor none"));
        assert!(args.contains("-kernel /out/qemu-virt.bin -initrd /out/bundle-test-guests.cpio"));
        assert!(args.contains("-append cellvisor.layout=test-guests loglevel=debug"));
        assert!(!args.contains("virtio"));
        assert!(args.ends_with("-icount shift=0 -s"));
        assert!(!args.contains("-nographic"));
    }

    #[test]
    fn a_display_machine_gets_its_screen_and_input_after_the_passthrough_devices() {
        let artifacts = Artifacts {
            out_dir: PathBuf::from("/out"),
            qemu: PathBuf::from("qemu-system-aarch64"),
        };
        let plain = QemuConfig::new("linux-mmio")
            .qemu_args(&artifacts)
            .join(" ");
        assert!(
            !plain.contains("ramfb") && !plain.contains("-qmp"),
            "{plain}"
        );
        let config = QemuConfig {
            display: true,
            extra_args: vec!["-s".into()],
            ..QemuConfig::new("linux-mmio")
        };
        let socket = unique_qmp_socket();
        assert_ne!(socket, unique_qmp_socket());
        assert!(
            socket
                .to_string_lossy()
                .contains(&format!("cellvisor-qmp-{}-", std::process::id()))
        );
        let args = config
            .qemu_args_with_qmp(&artifacts, Some(Path::new("/tmp/q,1.sock")))
            .join(" ");
        assert!(
            args.ends_with(
                "-device virtio-net-device,netdev=net0 -device ramfb -device \
                 virtio-keyboard-device -device virtio-tablet-device -qmp \
                 unix:/tmp/q,,1.sock,server=on,wait=off -s"
            ),
            "{args}"
        );
        assert!(
            args.contains("-display none -serial stdio -monitor none"),
            "{args}"
        );
        let without_qmp = config.qemu_args(&artifacts).join(" ");
        assert!(
            without_qmp.contains("-device virtio-tablet-device -s")
                && !without_qmp.contains("-qmp"),
            "{without_qmp}"
        );
    }

    #[test]
    fn the_pci_disk_is_modern_at_00_02_0_behind_the_iommu() {
        let args = pci_disk_args(Path::new("/a,b/disk.img")).join(" ");
        assert_eq!(
            args,
            "-drive file=/a,,b/disk.img,if=none,format=raw,id=disk0,snapshot=on,file.locking=off \
             -device virtio-blk-pci,drive=disk0,addr=0x2,disable-legacy=on,iommu_platform=on"
        );
        assert_eq!(SMMU_ARGS.join(" "), "-global arm-smmuv3.stage=2");
        assert!(MACHINE.ends_with(",iommu=smmuv3"));
    }

    #[test]
    fn missing_environment_names_the_command_to_run() {
        // Only meaningful when the variables are absent (plain `cargo test`).
        if std::env::var_os("CELLVISOR_OUT").is_none() {
            let message = Artifacts::from_env()
                .expect_err("no environment")
                .to_string();
            assert!(message.contains("cargo xtask test"), "{message}");
        }
    }
}
