//! The DMA attack through a passed-through virtio PCI disk (docs/security.md): a bare-metal guest
//! owning a DMA-capable PCI function asks it to read the disk into memory that is not the guest's.
//!
//! Both tests boot the Rust test guest with `test=dma-attack targets=NAME:ADDR,...`
//! (guests/test-guest/src/dma_attack.rs) and a virtio-blk PCI disk at 00:02.0
//! ([`cellvisor_tests::pci_disk_args`]) whose image this file writes: every sector holds
//! `cellvisor-dma-sector-<n>` repeated, so the guest can tell which read landed where.
//!
//! `dma_attack_lands_natively` runs the guest on plain QEMU, without cellvisor or an IOMMU (QEMU
//! loads the image as an arm64 Image and passes the bootargs in its device tree; nobody assigns
//! the BARs, so the guest does): every target lands, the corporate cell's pattern region and the
//! addresses where cellvisor's image and heap live under cellvisor included, so the attack path
//! the second test proves blocked is real. An address where nothing is mapped makes the device
//! stop with DEVICE_NEEDS_RESET, and the guest's reset brings it back for the next target.
//!
//! `dma_attack_is_blocked_by_the_smmu_and_the_victim_stays_intact` boots cellvisor with layout
//! `dma-attack` on `virt` with an SMMUv3 translating stage 2 (`cellvisor_tests::QemuConfig` starts every machine with it):
//! cell `personal` (the test guest, 64 MiB identity-mapped at 0x6000_0000, owning 00:02.0) runs
//! the attack, cell `corporate` (64 MiB at physical 0x9000_0000, seen at 0x4000_0000) runs
//! `test=pattern` over its RAM from 1 to 3 MiB. Every target outside personal's RAM is blocked
//! and logged by cellvisor as a DMA fault of cell personal, the one inside lands, corporate's
//! pattern stays intact and cellvisor survives.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cellvisor_tests::{
    Artifacts, HEADLESS_SERIAL_ARGS, HarnessError, Machine, PassthroughDevices, QemuConfig,
    disasters, pci_disk_args, scaled,
};

/// Generous: the machine running the tests is shared and slow.
const BOOT_TIMEOUT: Duration = Duration::from_secs(180);
/// For the victim's next check (it checks every second).
const PATTERN_TIMEOUT: Duration = Duration::from_secs(30);

/// The layout the lead engineer's board provides for the cellvisor test, and its cells.
const LAYOUT: &str = "dma-attack";
const ATTACKER: &str = "personal";
const VICTIM: &str = "corporate";

/// Sectors of the disk image: room for the reads of 31 targets (the guest's are 256 sectors apart).
const DISK_SECTORS: u64 = 8192;
const SECTOR_SIZE: usize = 512;
/// File name of the disk image in the output directory.
const DISK_IMAGE: &str = "dma-attack-disk.img";

/// What a target must end as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// `landed`: every sector's text is there.
    Landed,
    /// `blocked (...)`.
    Blocked,
    /// `blocked (device needs reset)`, then the guest resets the disk.
    NeedsReset,
}

/// The targets of layout `dma-attack`'s personal bootargs, and what cellvisor must make of them:
/// corporate's pattern region (its physical RAM 1 MiB in), cellvisor's image (at 0x4020_0000) and
/// heap, the first address past personal's 64 MiB, and personal's own RAM.
const CELLVISOR_TARGETS: [(&str, u64, Expect); 5] = [
    ("corporate", 0x9010_0000, Expect::Blocked),
    ("cellvisor-image", 0x4021_0000, Expect::Blocked),
    ("cellvisor-heap", 0x4400_0000, Expect::Blocked),
    ("beyond", 0x6400_0000, Expect::Blocked),
    ("own", 0x6200_0000, Expect::Landed),
];

/// The same attack natively, where everything lands. Natively QEMU loads the guest itself at
/// 0x4020_0000 (the guest skips a target overlapping its own image), so the target for
/// cellvisor's image is the free RAM just below; `nowhere` is an address with nothing mapped,
/// whose read the device cannot map (as it cannot one the SMMU faults): it must stop with
/// DEVICE_NEEDS_RESET and the target after it must land on the reset disk.
const NATIVE_TARGETS: [(&str, u64, Expect); 6] = [
    ("corporate", 0x9010_0000, Expect::Landed),
    ("cellvisor-image", 0x4010_0000, Expect::Landed),
    ("cellvisor-heap", 0x4400_0000, Expect::Landed),
    ("beyond", 0x6400_0000, Expect::Landed),
    ("nowhere", 0x1_0000_0000, Expect::NeedsReset),
    ("own", 0x6200_0000, Expect::Landed),
];

/// Texts the test guest prints (guests/test-guest/src/lines.rs).
mod guest {
    pub const DMA_ATTACK: &str = "test-guest: dma-attack: ";
    pub const DISK_ASSIGNED: &str = "test-guest: dma-attack: disk 00:02.0 virtio-pci, ";
    pub const BARS_ASSIGNED: &str = "BARs assigned by the guest";
    pub const DISK_RESET: &str = "test-guest: dma-attack: disk reset and set up again";
    pub const DONE: &str = "test-guest: dma-attack: done ";
    pub const PATTERN_WRITTEN: &str = "test-guest: pattern: written ";
    pub const PATTERN_INTACT: &str = "test-guest: pattern: intact ";
    pub const PATTERN_CHANGED: &str = "test-guest: pattern: CHANGED";
    pub const FAIL: &str = "test-guest: FAIL";
}

fn fail(error: HarnessError) -> ! {
    panic!("{error}")
}

fn artifacts() -> Artifacts {
    Artifacts::from_env().unwrap_or_else(|error| fail(error))
}

/// Sector `sector`'s 512 bytes: `cellvisor-dma-sector-<sector>` repeated, cut at 512.
fn sector_contents(sector: u64) -> Vec<u8> {
    format!("cellvisor-dma-sector-{sector}")
        .into_bytes()
        .into_iter()
        .cycle()
        .take(SECTOR_SIZE)
        .collect()
}

/// Writes the disk image into the output directory (through a temporary file, so a concurrent
/// test never sees half of it) and returns its path.
fn dma_disk(artifacts: &Artifacts) -> PathBuf {
    let path = artifacts.out_dir.join(DISK_IMAGE);
    let partial = artifacts
        .out_dir
        .join(format!("{DISK_IMAGE}.{}.partial", std::process::id()));
    let contents: Vec<u8> = (0..DISK_SECTORS).flat_map(sector_contents).collect();
    std::fs::write(&partial, contents)
        .and_then(|()| std::fs::rename(&partial, &path))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}

/// `targets=` for `targets`.
fn targets_bootarg(targets: &[(&str, u64, Expect)]) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|(name, address, _)| format!("{name}:{address:#x}"))
        .collect();
    format!("targets={}", list.join(","))
}

/// The outcome the guest printed for target `name` at `address` in `lines`, if any.
fn outcome<'a>(lines: &'a str, name: &str, address: u64) -> Option<&'a str> {
    let needle = format!("{}{name} {address:#x}: ", guest::DMA_ATTACK);
    lines
        .lines()
        .find_map(|line| line.split_once(&needle).map(|(_, outcome)| outcome.trim()))
}

/// Checks every target's outcome against what it must be.
fn assert_outcomes(transcript: &str, targets: &[(&str, u64, Expect)]) {
    for &(name, address, expect) in targets {
        let outcome = outcome(transcript, name, address)
            .unwrap_or_else(|| panic!("no outcome for {name} {address:#x}:\n{transcript}"));
        let ok = match expect {
            Expect::Landed => outcome == "landed",
            Expect::Blocked => outcome.starts_with("blocked ("),
            Expect::NeedsReset => outcome == "blocked (device needs reset)",
        };
        assert!(
            ok,
            "{name} {address:#x} must be {expect:?}, the guest says {outcome:?}:\n{transcript}"
        );
    }
    let done = format!("{}{} targets: ", guest::DONE, targets.len());
    assert!(transcript.contains(&done), "no {done:?}:\n{transcript}");
}

/// Runs the test guest natively (no cellvisor, no IOMMU) with `bootargs` and the PCI disk on
/// `disk` until it powers off; returns its console output, also saved as `<name>.log` in the
/// transcript directory.
fn run_natively(artifacts: &Artifacts, disk: &Path, bootargs: &str, name: &str) -> String {
    let image = artifacts.out_dir.join("test-guest.bin");
    assert!(
        image.is_file(),
        "{} is missing: run `cargo xtask build`",
        image.display()
    );
    let mut child = Command::new(&artifacts.qemu)
        .args([
            "-M",
            "virt,gic-version=3",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "2G",
        ])
        .args(HEADLESS_SERIAL_ARGS)
        .arg("-kernel")
        .arg(&image)
        .args(["-append", bootargs])
        .args(pci_disk_args(disk))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", artifacts.qemu.display()));
    let mut readers = Vec::new();
    for mut pipe in [
        child
            .stdout
            .take()
            .map(|out| Box::new(out) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|err| Box::new(err) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            let _ = sender.send(String::from_utf8_lossy(&text).into_owned());
        });
        readers.push(receiver);
    }
    let timeout = scaled(BOOT_TIMEOUT);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut output: Vec<String> = readers
        .iter()
        .map(|receiver| receiver.recv().unwrap_or_default())
        .collect();
    let stderr = output.pop().unwrap_or_default();
    let stdout = output.pop().unwrap_or_default().replace('\r', "");
    let log = artifacts.transcript_dir().join(format!("{name}.log"));
    let _ = std::fs::create_dir_all(artifacts.transcript_dir());
    let _ = std::fs::write(&log, format!("{stdout}\n--- QEMU stderr ---\n{stderr}"));
    assert!(
        status.is_some(),
        "native QEMU did not power off within {timeout:?} (transcript {}):\n{stdout}",
        log.display()
    );
    stdout
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn dma_attack_lands_natively() {
    let artifacts = artifacts();
    let disk = dma_disk(&artifacts);
    let bootargs = format!("test=dma-attack {}", targets_bootarg(&NATIVE_TARGETS));
    let transcript = run_natively(&artifacts, &disk, &bootargs, "dma_attack_lands_natively");
    let disk_line = transcript
        .lines()
        .find(|line| line.starts_with(guest::DISK_ASSIGNED))
        .unwrap_or_else(|| panic!("the guest found no disk at 00:02.0:\n{transcript}"));
    assert!(
        disk_line.contains(guest::BARS_ASSIGNED),
        "natively nobody assigns the BARs but the guest: {disk_line}"
    );
    assert_outcomes(&transcript, &NATIVE_TARGETS);
    let reset_after = transcript
        .find(&format!("{}nowhere ", guest::DMA_ATTACK))
        .expect("nowhere's line");
    assert!(
        transcript[reset_after..].contains(guest::DISK_RESET),
        "the guest reset the disk after DEVICE_NEEDS_RESET:\n{transcript}"
    );
    let failures: Vec<&str> = transcript
        .lines()
        .filter(|line| line.contains(guest::FAIL))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The cell lines of `cell` in `transcript`, prefix removed.
fn cell_lines<'a>(transcript: &'a str, cell: &str) -> Vec<&'a str> {
    let prefix = format!("[{cell}] ");
    transcript
        .lines()
        .filter_map(|line| line.find(&prefix).map(|at| &line[at + prefix.len()..]))
        .collect()
}

#[test]
#[ignore = "boots QEMU: run through cargo xtask test"]
fn dma_attack_is_blocked_by_the_smmu_and_the_victim_stays_intact() {
    let artifacts = artifacts();
    let disk = dma_disk(&artifacts);
    let extra_args = pci_disk_args(&disk);
    let config = QemuConfig {
        // The PCI disk is this test's own (pci_disk_args), not the virtio-mmio devices.
        passthrough_devices: PassthroughDevices::None,
        extra_args,
        ..QemuConfig::new(LAYOUT)
    };
    let mut machine = Machine::boot(&artifacts, &config)
        .unwrap_or_else(|error| panic!("cannot boot QEMU: {error}"));
    machine
        .find_after(
            &format!("[{VICTIM}] {}", guest::PATTERN_WRITTEN),
            0,
            BOOT_TIMEOUT,
        )
        .unwrap_or_else(|error| fail(error));
    let done = machine
        .find_after(&format!("[{ATTACKER}] {}", guest::DONE), 0, BOOT_TIMEOUT)
        .unwrap_or_else(|error| fail(error))
        .line_end;
    // A check of the victim's that started after the last attack finished.
    machine
        .find_after(
            &format!("[{VICTIM}] {}", guest::PATTERN_INTACT),
            done,
            PATTERN_TIMEOUT,
        )
        .unwrap_or_else(|error| fail(error));

    let transcript = machine.transcript();
    let attacker = cell_lines(&transcript, ATTACKER).join("\n");
    assert_outcomes(&attacker, &CELLVISOR_TARGETS);
    let victim = cell_lines(&transcript, VICTIM);
    let changed: Vec<&&str> = victim
        .iter()
        .filter(|line| line.contains(guest::PATTERN_CHANGED))
        .collect();
    assert!(
        changed.is_empty(),
        "the victim's pattern changed: {changed:#?}"
    );

    // cellvisor's own records (not cell output) of each blocked target's fault, loosely:
    // `cellvisor: cpu0 WARN  cell personal: DMA fault: stream 0x10 ... address 0x90100000 ...`.
    let records: Vec<&str> = transcript
        .lines()
        .filter(|line| line.contains("cellvisor:") && !line.starts_with('['))
        .collect();
    for &(name, address, expect) in &CELLVISOR_TARGETS {
        if expect == Expect::Landed {
            continue;
        }
        let address = format!("{address:#x}");
        assert!(
            records
                .iter()
                .any(|line| line.contains(&format!("cell {ATTACKER}"))
                    && line.contains("DMA")
                    && line.contains(&address)),
            "no cellvisor record of {ATTACKER}'s DMA fault at {address} ({name}):\n{}",
            records.join("\n")
        );
    }

    let failures: Vec<&str> = cell_lines(&transcript, ATTACKER)
        .into_iter()
        .chain(victim.iter().copied())
        .filter(|line| line.contains(guest::FAIL))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let mut disasters = disasters(&transcript);
    disasters.extend(
        transcript
            .lines()
            .filter(|line| line.contains("cellvisor panic"))
            .map(str::to_owned),
    );
    assert!(disasters.is_empty(), "{disasters:#?}");
    assert!(machine.is_running(), "cellvisor kept running");
}

#[test]
fn sector_contents_repeat_the_sector_number() {
    let sector = sector_contents(7);
    assert_eq!(sector.len(), SECTOR_SIZE);
    assert!(sector.starts_with(b"cellvisor-dma-sector-7cellvisor-dma-sector-7"));
    let text = "test-guest: dma-attack: own 0x62000000: landed\n\
                test-guest: dma-attack: corporate 0x90100000: blocked (device needs reset)";
    assert_eq!(outcome(text, "own", 0x6200_0000), Some("landed"));
    assert_eq!(
        outcome(text, "corporate", 0x9010_0000),
        Some("blocked (device needs reset)")
    );
    assert_eq!(outcome(text, "beyond", 0x6400_0000), None);
    assert_eq!(
        targets_bootarg(&CELLVISOR_TARGETS),
        "targets=corporate:0x90100000,cellvisor-image:0x40210000,cellvisor-heap:0x44000000,\
         beyond:0x64000000,own:0x62000000"
    );
}
