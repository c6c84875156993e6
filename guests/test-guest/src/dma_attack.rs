//! `test=dma-attack targets=NAME:ADDR,...`: the bare-metal DMA attack through a passed-through
//! virtio-blk PCI disk. For each target the guest asks the disk to read [`DEFAULT_BYTES`] (or
//! `dma_bytes=`) from the disk into guest-physical address ADDR (4 KiB aligned), which may be
//! anything: its own RAM, another cell's, cellvisor's. Without an IOMMU the device writes there
//! whatever the cell's own stage 2 says; behind an SMMU whose stage 2 for the disk's stream is the
//! cell's, only the cell's own RAM is reachable.
//!
//! The disk (the test's image) holds a known text in every sector: `cellvisor-dma-sector-<n>`
//! repeated to fill its 512 bytes, `<n>` the sector number. Target `i` (from 0) reads the sectors
//! from `(i + 1) * 128` on, so every target's data is its own. Where the guest can read ADDR
//! itself (the read lies in RAM its device tree's `/memory` gives it: under cellvisor its own
//! RAM, natively all of the machine's), it first fills the range with 0xA5 and afterwards checks
//! which sectors' text is there; elsewhere a CPU read would only abort, so a completed read is
//! reported as unverified. Targets that overlap the guest's own image (code, data, stacks, the
//! virtqueue) or its device tree (the bootargs) are skipped.
//!
//! Outcomes (one line per target, formats in `lines::DMA_ATTACK`): `landed` (every sector's text
//! is at ADDR), `landed partly`, `blocked (device needs reset)` (the device could not map a buffer
//! and set DEVICE_NEEDS_RESET), `blocked (no completion)` (nothing within [`ATTEMPT_WAIT_MS`]),
//! `blocked (status N)` (the device completed the request with an error), `blocked (completed,
//! nothing landed)` (readable, completed, none of the text there), `unverified (completed,
//! outside own RAM)`. After a device-needs-reset or a missing completion the disk is reset and
//! set up again before the next target.
//!
//! Why [`DEFAULT_BYTES`] is 8 KiB: QEMU maps each descriptor's buffer for the device; an address
//! that is not RAM of the device's address space (an IOMMU fault, or nothing there) cannot be
//! mapped directly, so QEMU bounces it through a buffer of at most 4 KiB per device
//! (`x-max-bounce-buffer-size`), whose contents it then writes to the faulting address, where the
//! write is dropped, and the request completes as if it had worked. A read of more than 4 KiB
//! into such an address cannot be bounced in full: QEMU calls it a bogus descriptor and sets
//! DEVICE_NEEDS_RESET, which the guest can see. A 4 KiB read (`dma_bytes=4096`) into a faulting
//! address completes with status 0 and nothing written.

use core::fmt::{self, Write as _};

use crate::options::Options;
use crate::pci::{Allocator, Host};
use crate::virtio_pci::{DEVICE_BLOCK, VENDOR_VIRTIO, VirtioPci};
use crate::virtqueue::{self, BLK_S_OK, SECTOR_SIZE};
use crate::{lines, timer};
use cellvisor_guest_support::{fdt, println};

/// Bytes each target's read asks for (see the module documentation for why 8 KiB).
pub const DEFAULT_BYTES: u32 = 8 * 1024;
/// Largest `dma_bytes=`.
const MAX_BYTES: u32 = 64 * 1024;
/// Alignment of targets and granule of `dma_bytes=`.
const PAGE: u64 = 4096;
/// How long a request may take before it counts as never completed.
const ATTEMPT_WAIT_MS: u64 = 5000;
/// What a readable target is filled with before its read: no byte of the sector text.
const FILL: u8 = 0xA5;
/// The sector text's prefix; the sector number follows.
const SECTOR_TEXT: &str = "cellvisor-dma-sector-";
/// Sectors from one target's first sector to the next one's (more than [`MAX_BYTES`] holds).
const SECTORS_PER_TARGET: u64 = 2 * MAX_BYTES as u64 / SECTOR_SIZE as u64;
/// RAM regions kept from `/memory`.
const MAX_RAM_REGIONS: usize = 4;

/// RAM the device tree gives the guest (its `/memory` nodes): where a CPU read cannot abort.
struct Ram([Option<(u64, u64)>; MAX_RAM_REGIONS]);

impl Ram {
    fn from_device_tree(device_tree: &[u8]) -> Self {
        let mut regions = [None; MAX_RAM_REGIONS];
        let mut slots = regions.iter_mut();
        fdt::for_each_memory(device_tree, |base, size| {
            if let Some(slot) = slots.next() {
                *slot = Some((base, size));
            }
        });
        Self(regions)
    }

    /// Whether `start..start + length` lies in one region.
    fn contains(&self, start: u64, length: u64) -> bool {
        let Some(end) = start.checked_add(length) else {
            return false;
        };
        self.0
            .iter()
            .flatten()
            .any(|&(base, size)| start >= base && end <= base.saturating_add(size))
    }
}

/// How one target's read ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Every sector's text is at the target.
    Landed,
    /// Some sectors' text is at the target: (sectors found, sectors read).
    LandedPartly(u64, u64),
    /// The device set DEVICE_NEEDS_RESET instead of completing the request.
    NeedsReset,
    /// The request did not complete within [`ATTEMPT_WAIT_MS`].
    NoCompletion,
    /// The device completed the request with this status (not OK).
    Status(u8),
    /// Completed with status OK, the target is readable, and none of the text is there.
    NothingLanded,
    /// Completed with status OK, and the guest cannot read the target to see.
    Unverified,
    /// Not tried.
    Skipped(&'static str),
}

impl Outcome {
    /// Whether the device must be reset and set up again before the next request.
    fn stopped_the_device(self) -> bool {
        matches!(self, Self::NeedsReset | Self::NoCompletion)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Landed => write!(f, "landed"),
            Self::LandedPartly(found, read) => {
                write!(f, "landed partly ({found} of {read} sectors)")
            }
            Self::NeedsReset => write!(f, "blocked (device needs reset)"),
            Self::NoCompletion => write!(f, "blocked (no completion)"),
            Self::Status(status) => write!(f, "blocked (status {status})"),
            Self::NothingLanded => write!(f, "blocked (completed, nothing landed)"),
            Self::Unverified => write!(f, "unverified (completed, outside own RAM)"),
            Self::Skipped(why) => write!(f, "skipped ({why})"),
        }
    }
}

/// Outcomes counted for the summary line.
#[derive(Default)]
struct Counts {
    landed: u32,
    blocked: u32,
    unverified: u32,
    skipped: u32,
}

impl Counts {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Landed | Outcome::LandedPartly(..) => self.landed += 1,
            Outcome::NeedsReset
            | Outcome::NoCompletion
            | Outcome::Status(_)
            | Outcome::NothingLanded => self.blocked += 1,
            Outcome::Unverified => self.unverified += 1,
            Outcome::Skipped(_) => self.skipped += 1,
        }
    }

    fn total(&self) -> u32 {
        self.landed + self.blocked + self.unverified + self.skipped
    }
}

/// `NAME:ADDR` with ADDR hexadecimal (`0x` prefix) or decimal.
fn parse_target(item: &str) -> Option<(&str, u64)> {
    let (name, address) = item.split_once(':')?;
    let address = match address.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => address.parse().ok()?,
    };
    (!name.is_empty()).then_some((name, address))
}

/// A small buffer the sector text is formatted into.
struct TextBuffer {
    bytes: [u8; 48],
    length: usize,
}

impl fmt::Write for TextBuffer {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let end = self.length + text.len();
        self.bytes
            .get_mut(self.length..end)
            .ok_or(fmt::Error)?
            .copy_from_slice(text.as_bytes());
        self.length = end;
        Ok(())
    }
}

/// Whether the 512 bytes at `address` are sector `sector`'s text.
fn holds_sector(address: u64, sector: u64) -> bool {
    let mut text = TextBuffer {
        bytes: [0; 48],
        length: 0,
    };
    if write!(text, "{SECTOR_TEXT}{sector}").is_err() {
        return false;
    }
    let text = &text.bytes[..text.length];
    (0..SECTOR_SIZE)
        .zip(text.iter().cycle())
        .all(|(offset, &expected)| {
            // SAFETY: the caller checked that the whole read lies in RAM the device tree gives this
            // guest, outside its image and device tree: no Rust object is there, and it is mapped.
            let byte = unsafe { ((address + offset as u64) as *const u8).read_volatile() };
            byte == expected
        })
}

/// Fills `length` bytes at `address` with `byte`, a word at a time.
fn fill(address: u64, length: u64, byte: u8) {
    let word = u64::from_ne_bytes([byte; 8]);
    for offset in (0..length).step_by(8) {
        // SAFETY: as in `holds_sector`; `address` is 4 KiB aligned, so every word is aligned.
        unsafe { ((address + offset) as *mut u64).write_volatile(word) };
    }
}

/// Reads `bytes` from `first_sector` on into `address` and says how it ended.
fn attack(disk: &mut VirtioPci, ram: &Ram, address: u64, bytes: u32, first_sector: u64) -> Outcome {
    let readable = ram.contains(address, u64::from(bytes));
    if readable {
        fill(address, u64::from(bytes), FILL);
    }
    disk.submit(
        0,
        false,
        first_sector,
        &virtqueue::request_buffers(address, bytes),
    );
    let completed_at = disk.published();
    let mut needs_reset = false;
    timer::wait_until(ATTEMPT_WAIT_MS, || {
        disk.acknowledge_interrupt();
        needs_reset = disk.needs_reset();
        needs_reset || virtqueue::used_index() == completed_at
    });
    if virtqueue::used_index() != completed_at {
        return if needs_reset {
            Outcome::NeedsReset
        } else {
            Outcome::NoCompletion
        };
    }
    let status = virtqueue::last_status();
    if status != BLK_S_OK {
        return Outcome::Status(status);
    }
    if !readable {
        return Outcome::Unverified;
    }
    let sectors = u64::from(bytes) / SECTOR_SIZE as u64;
    let found = (0..sectors)
        .filter(|&index| holds_sector(address + index * SECTOR_SIZE as u64, first_sector + index))
        .count() as u64;
    match found {
        0 => Outcome::NothingLanded,
        _ if found == sectors => Outcome::Landed,
        _ => Outcome::LandedPartly(found, sectors),
    }
}

/// Whether `start..start + length` and `other..other + other_length` share a byte.
fn overlaps(start: u64, length: u64, other: u64, other_length: u64) -> bool {
    start < other.saturating_add(other_length) && other < start.saturating_add(length)
}

/// Runs the attack on every target of `options` and prints its lines.
pub fn run(device_tree: Option<&[u8]>, options: &Options) {
    let Some(device_tree) = device_tree else {
        println!("{}dma-attack: no device tree", lines::FAIL);
        return;
    };
    let bytes = options.dma_bytes;
    if bytes == 0 || !u64::from(bytes).is_multiple_of(PAGE) || bytes > MAX_BYTES {
        println!(
            "{}dma-attack: dma_bytes={bytes} is not a multiple of 4096 up to {MAX_BYTES}",
            lines::FAIL
        );
        return;
    }
    let ram = Ram::from_device_tree(device_tree);
    let host = match Host::from_device_tree(device_tree) {
        Ok(host) => host,
        Err(error) => {
            println!("{}dma-attack: {error}", lines::FAIL);
            return;
        }
    };
    let Some(function) = host.find(VENDOR_VIRTIO, DEVICE_BLOCK) else {
        println!(
            "{}dma-attack: no virtio-blk function ({VENDOR_VIRTIO:04x}:{DEVICE_BLOCK:04x}) on bus {} \
             of the ECAM window at {:#x}",
            lines::FAIL,
            host.first_bus,
            host.ecam
        );
        return;
    };
    let mut allocator = host.window_32().map(Allocator::new);
    let (mut disk, setup) = match VirtioPci::probe(&host, &function, &mut allocator) {
        Ok(found) => found,
        Err(error) => {
            println!("{}dma-attack: disk {function}: {error}", lines::FAIL);
            return;
        }
    };
    println!(
        "{}disk {function} virtio-pci, common config at {:#x}, BARs {}, features 32..63 {:#x}, \
         {} sectors, {bytes}-byte reads",
        lines::DMA_ATTACK,
        setup.common,
        if setup.assigned_bars {
            "assigned by the guest"
        } else {
            "as found"
        },
        setup.features_high,
        disk.capacity()
    );
    let image = (crate::ram_base(), crate::image_end() - crate::ram_base());
    let tree = (device_tree.as_ptr() as u64, device_tree.len() as u64);
    let mut counts = Counts::default();
    let mut disk_alive = true;
    for (index, item) in (0u64..).zip(options.targets.split(',').filter(|item| !item.is_empty())) {
        let Some((name, address)) = parse_target(item) else {
            println!(
                "{}dma-attack: target \"{item}\" is not NAME:ADDR",
                lines::FAIL
            );
            counts.add(Outcome::Skipped("malformed"));
            continue;
        };
        let first_sector = (index + 1) * SECTORS_PER_TARGET;
        let sectors = u64::from(bytes) / SECTOR_SIZE as u64;
        let length = u64::from(bytes);
        let outcome = if !disk_alive {
            Outcome::Skipped("no disk")
        } else if !address.is_multiple_of(PAGE) {
            Outcome::Skipped("not 4 KiB aligned")
        } else if overlaps(address, length, image.0, image.1)
            || overlaps(address, length, tree.0, tree.1)
        {
            Outcome::Skipped("overlaps this guest's image or device tree")
        } else if first_sector + sectors > disk.capacity() {
            Outcome::Skipped("the disk is too small")
        } else {
            attack(&mut disk, &ram, address, bytes, first_sector)
        };
        println!("{}{name} {address:#x}: {outcome}", lines::DMA_ATTACK);
        counts.add(outcome);
        if disk_alive && (outcome.stopped_the_device() || disk.needs_reset()) {
            match disk.initialise() {
                Ok(()) => println!("{}disk reset and set up again", lines::DMA_ATTACK),
                Err(error) => {
                    println!(
                        "{}dma-attack: the disk did not come back after a reset: {error}",
                        lines::FAIL
                    );
                    disk_alive = false;
                }
            }
        }
    }
    println!(
        "{}done {} targets: {} landed, {} blocked, {} unverified, {} skipped",
        lines::DMA_ATTACK,
        counts.total(),
        counts.landed,
        counts.blocked,
        counts.unverified,
        counts.skipped
    );
}
