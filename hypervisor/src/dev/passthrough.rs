//! Device passthrough planning: which pages a cell maps directly, which trap, and where a trapped access goes.
//!
//! A cell's passthrough devices are identity-placed (IPA = PA). A 4 KiB page every byte of which
//! belongs to the cell's own device windows is mapped straight into its stage 2 as device memory
//! ([`PassthroughPlan::direct_pages`]). A page the cell shares with another cell's device, or with
//! bytes that belong to no device of the cell (QEMU's virtio-mmio slots are 0x200 apart, eight to a
//! page), stays unmapped ([`PassthroughPlan::trapped_pages`]); each access to it traps and
//! [`PassthroughPlan::forward`] says whether it reaches the device or reads as zero / ignores the
//! write. The cell's SPIs keep their INTIDs and are injected hardware-linked.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

use crate::board::{Board, Device, DeviceReset, MemRange, PciFunction};
use crate::dev::gic::{SPI_BASE_INTID, SPI_END_INTID};
use crate::dev::mmio::AccessWidth;
use crate::mem::PAGE_SIZE;
use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::setup::partition::{CellPlan, Partition};
use crate::setup::platform::{Platform, PlatformDevice};

/// A device window of the cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceWindow {
    /// The board's name of the device.
    pub device: &'static str,
    /// The window (physical = guest physical).
    pub range: MemRange,
}

/// Where a trapped access to a passthrough page goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Perform the access at this physical address with the trapped width.
    Device(PhysAddr),
    /// Not the cell's bytes (or not a naturally aligned access): a load reads 0, a store is dropped.
    ReadAsZero,
}

/// Why a cell's devices cannot be passed through as the board describes them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PassthroughError {
    /// The cell names a device the board does not describe.
    UnknownDevice {
        /// The device name.
        device: &'static str,
    },
    /// A device window has size 0.
    EmptyWindow {
        /// The device.
        device: &'static str,
        /// The window.
        window: MemRange,
    },
    /// A device window wraps the address space.
    WrappingWindow {
        /// The device.
        device: &'static str,
        /// The window.
        window: MemRange,
    },
    /// Two device windows share bytes (of this cell, or this cell's and another cell's).
    WindowOverlap {
        /// The cell's device.
        device: &'static str,
        /// Its window.
        window: MemRange,
        /// The device it collides with.
        other_device: &'static str,
        /// That device's window.
        other_window: MemRange,
    },
    /// A device interrupt is not an SPI (INTID 32..1020).
    NotAnSpi {
        /// The device.
        device: &'static str,
        /// The INTID.
        intid: u32,
    },
    /// Two devices (of this cell, or this cell's and another cell's) raise the same SPI.
    SharedInterrupt {
        /// The cell's device.
        device: &'static str,
        /// The INTID.
        intid: u32,
        /// The other device.
        other_device: &'static str,
    },
    /// No platform device-tree node (under the root or a `simple-bus`) covers a device window.
    NotInPlatform {
        /// The device.
        device: &'static str,
        /// The window.
        window: MemRange,
    },
    /// A device's reset declaration names a register outside its windows (or misaligned), or
    /// a virtio-mmio window too small for the Status register.
    ResetOutsideWindow {
        /// The device.
        device: &'static str,
    },
    /// The board's interrupts for a device differ from its platform node's.
    InterruptMismatch {
        /// The device.
        device: &'static str,
        /// The platform node's name.
        node: alloc::string::String,
    },
}

impl fmt::Display for PassthroughError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownDevice { device } => write!(
                f,
                "device {device:?} is not described by the board: add it to Board::devices"
            ),
            Self::EmptyWindow { device, window } => write!(
                f,
                "device {device:?} has an empty MMIO window at {:#x}: give it a size in the board",
                window.base
            ),
            Self::WrappingWindow { device, window } => write!(
                f,
                "device {device:?} MMIO window {:#x}+{:#x} wraps the address space: fix it in the board",
                window.base, window.size
            ),
            Self::WindowOverlap {
                device,
                window,
                other_device,
                other_window,
            } => write!(
                f,
                "device {device:?} MMIO window {:#x}+{:#x} overlaps device {other_device:?} window \
                 {:#x}+{:#x}: fix the windows in the board",
                window.base, window.size, other_window.base, other_window.size
            ),
            Self::NotAnSpi { device, intid } => write!(
                f,
                "device {device:?} interrupt {intid} is not an SPI (INTID {SPI_BASE_INTID}..{SPI_END_INTID}): \
                 fix its interrupts in the board"
            ),
            Self::SharedInterrupt {
                device,
                intid,
                other_device,
            } => write!(
                f,
                "devices {device:?} and {other_device:?} both raise INTID {intid}: a passed-through SPI \
                 must belong to one device, fix the board"
            ),
            Self::NotInPlatform { device, window } => write!(
                f,
                "device {device:?} MMIO window {:#x}+{:#x} is not a device node of the platform device \
                 tree: fix the board or start the machine with the device",
                window.base, window.size
            ),
            Self::ResetOutsideWindow { device } => write!(
                f,
                "device {device:?} reset register is not a 4-byte aligned word inside one of its \
                 MMIO windows (virtio-mmio: Status at {VIRTIO_MMIO_STATUS:#x} of every window): fix \
                 its reset in the board"
            ),
            Self::InterruptMismatch { device, node } => write!(
                f,
                "device {device:?} interrupts differ from platform node {node}: make the board's \
                 interrupts match the device tree"
            ),
        }
    }
}

/// What cellvisor does with one cell's passthrough devices. Build it with [`PassthroughPlan::new`]
/// or [`PassthroughPlan::for_cell`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PassthroughPlan {
    /// The cell's device windows, sorted by base.
    windows: Vec<DeviceWindow>,
    /// Page-aligned ranges mapped IPA = PA as device memory, sorted, disjoint.
    direct_pages: Vec<MemRange>,
    /// Single pages that trap, sorted, disjoint.
    trapped_pages: Vec<MemRange>,
    /// INTIDs of the cell's device SPIs, sorted.
    interrupts: Vec<u32>,
    /// The board devices, in the cell's order.
    devices: Vec<Device>,
}

const fn page_down(address: u64) -> u64 {
    address & !(PAGE_SIZE - 1)
}

fn check_windows(device: &Device) -> Result<(), PassthroughError> {
    for window in device.mmio {
        if window.size == 0 {
            return Err(PassthroughError::EmptyWindow {
                device: device.name,
                window: *window,
            });
        }
        // Page rounding of the end must not wrap either.
        if window
            .end()
            .and_then(|end| end.checked_add(PAGE_SIZE))
            .is_none()
        {
            return Err(PassthroughError::WrappingWindow {
                device: device.name,
                window: *window,
            });
        }
    }
    Ok(())
}

/// Offset of the virtio-mmio Status register: writing 0 resets the device (virtio 1.2, 4.2.2).
pub const VIRTIO_MMIO_STATUS: u64 = 0x70;

/// Whether the word at `offset` lies inside `window`, 4-byte aligned.
fn word_inside(window: &MemRange, offset: u64) -> bool {
    offset.is_multiple_of(4) && offset.checked_add(4).is_some_and(|end| end <= window.size)
}

/// The device's reset registers lie inside its windows.
fn check_reset(device: &Device) -> Result<(), PassthroughError> {
    let inside = match device.reset {
        DeviceReset::VirtioMmio => device
            .mmio
            .iter()
            .all(|window| word_inside(window, VIRTIO_MMIO_STATUS)),
        DeviceReset::RegisterWrite {
            window,
            offset,
            settled,
            ..
        } => device.mmio.get(window).is_some_and(|window| {
            word_inside(window, offset)
                && settled.is_none_or(|settled| word_inside(window, settled.offset))
        }),
        DeviceReset::None | DeviceReset::UnsafeAccepted | DeviceReset::PciFunction => true,
    };
    if inside {
        Ok(())
    } else {
        Err(PassthroughError::ResetOutsideWindow {
            device: device.name,
        })
    }
}

fn check_interrupts(device: &Device) -> Result<(), PassthroughError> {
    match device
        .interrupts
        .iter()
        .find(|intid| !(SPI_BASE_INTID..SPI_END_INTID).contains(*intid))
    {
        Some(&intid) => Err(PassthroughError::NotAnSpi {
            device: device.name,
            intid,
        }),
        None => Ok(()),
    }
}

/// Fails if `device` shares a window byte or an SPI with `other`.
fn check_disjoint(device: &Device, other: &Device) -> Result<(), PassthroughError> {
    for window in device.mmio {
        if let Some(other_window) = other.mmio.iter().find(|other| other.overlaps(window)) {
            return Err(PassthroughError::WindowOverlap {
                device: device.name,
                window: *window,
                other_device: other.name,
                other_window: *other_window,
            });
        }
    }
    if let Some(&intid) = device
        .interrupts
        .iter()
        .find(|intid| other.interrupts.contains(intid))
    {
        return Err(PassthroughError::SharedInterrupt {
            device: device.name,
            intid,
            other_device: other.name,
        });
    }
    Ok(())
}

impl PassthroughPlan {
    /// Plans the cell that owns `own`, given every device other cells own (`others`).
    ///
    /// Devices of the board that no cell owns may be listed in `others` or left out: their bytes do
    /// not belong to this cell either way. Fails if a window is empty or wraps, if two devices
    /// share window bytes or an SPI, or if an interrupt is not an SPI.
    pub fn new(own: &[Device], others: &[Device]) -> Result<PassthroughPlan, PassthroughError> {
        for (position, device) in own.iter().enumerate() {
            check_windows(device)?;
            check_reset(device)?;
            check_interrupts(device)?;
            for other in own[..position].iter().chain(others) {
                check_disjoint(device, other)?;
            }
        }

        let mut windows: Vec<DeviceWindow> = own
            .iter()
            .flat_map(|device| {
                device.mmio.iter().map(|range| DeviceWindow {
                    device: device.name,
                    range: *range,
                })
            })
            .collect();
        windows.sort_by_key(|window| window.range.base);

        // Coalesce touching windows into spans: a page is direct when one span covers all of it.
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for window in &windows {
            // `check_windows` refused wrapping windows, so `end` exists.
            let (start, end) = (window.range.base, window.range.end().unwrap_or(u64::MAX));
            match spans.last_mut() {
                Some((_, last_end)) if *last_end >= start => *last_end = (*last_end).max(end),
                _ => spans.push((start, end)),
            }
        }

        let mut direct_pages: Vec<MemRange> = Vec::new();
        let mut trapped_pages: Vec<MemRange> = Vec::new();
        let mut trap = |page: u64| {
            if trapped_pages.last().is_none_or(|last| last.base < page) {
                trapped_pages.push(MemRange::new(page, PAGE_SIZE));
            }
        };
        for (start, end) in spans {
            let first_full = page_down(start + (PAGE_SIZE - 1));
            let last_full_end = page_down(end);
            if first_full < last_full_end {
                direct_pages.push(MemRange::new(first_full, last_full_end - first_full));
                if start < first_full {
                    trap(page_down(start));
                }
                if last_full_end < end {
                    trap(last_full_end);
                }
            } else {
                // No whole page inside the span: it touches one or two partial pages.
                trap(page_down(start));
                trap(page_down(end - 1));
            }
        }

        let mut interrupts: Vec<u32> = own
            .iter()
            .flat_map(|device| device.interrupts.iter().copied())
            .collect();
        interrupts.sort_unstable();

        Ok(PassthroughPlan {
            windows,
            direct_pages,
            trapped_pages,
            interrupts,
            devices: own.to_vec(),
        })
    }

    /// Plans cell `cell` of a validated partition of `board`.
    pub fn for_cell(
        board: &Board,
        partition: &Partition,
        cell: &CellPlan,
    ) -> Result<PassthroughPlan, PassthroughError> {
        let resolve = |name: &'static str| {
            board
                .device(name)
                .copied()
                .or_else(|| pci_window_device(board, name))
                .ok_or(PassthroughError::UnknownDevice { device: name })
        };
        let own = cell
            .config
            .devices
            .iter()
            .map(|name| resolve(name))
            .collect::<Result<Vec<Device>, _>>()?;
        let others = partition
            .cells
            .iter()
            .filter(|other| other.index != cell.index)
            .flat_map(|other| other.config.devices.iter())
            .map(|name| resolve(name))
            .collect::<Result<Vec<Device>, _>>()?;
        PassthroughPlan::new(&own, &others)
    }

    /// The cell's device windows, sorted by base address.
    pub fn windows(&self) -> &[DeviceWindow] {
        &self.windows
    }

    /// The board devices the plan was made from, in the cell's order.
    pub fn devices(&self) -> &[Device] {
        &self.devices
    }

    /// Page-aligned ranges to map into the cell's stage 2 as device memory, IPA = PA; sorted and
    /// disjoint (adjacent whole pages are one range).
    pub fn direct_pages(&self) -> &[MemRange] {
        &self.direct_pages
    }

    /// Pages that stay unmapped in stage 2 so that accesses trap and go through [`Self::forward`];
    /// one page per entry, sorted.
    pub fn trapped_pages(&self) -> &[MemRange] {
        &self.trapped_pages
    }

    /// Whether `ipa` lies in one of the [trapped pages](Self::trapped_pages): a data abort there
    /// belongs to passthrough forwarding.
    pub fn is_trapped(&self, ipa: GuestPhysAddr) -> bool {
        self.trapped_pages
            .iter()
            .any(|page| page.contains(ipa.raw()))
    }

    /// Where a trapped access of `width` bytes at `ipa` goes: to the device when
    /// `[ipa, ipa + width)` lies entirely inside one of the cell's windows and `ipa` is a multiple
    /// of the width (EL2 maps devices as Device memory, where an unaligned access would fault at
    /// EL2); otherwise it reads as zero and writes are ignored.
    pub fn forward(&self, ipa: GuestPhysAddr, width: AccessWidth) -> Forward {
        let bytes = width.bytes();
        let Some(end) = ipa.checked_add(bytes) else {
            return Forward::ReadAsZero;
        };
        if !ipa.is_aligned(bytes) {
            return Forward::ReadAsZero;
        }
        let access = MemRange::new(ipa.raw(), end.raw() - ipa.raw());
        if self
            .windows
            .iter()
            .any(|window| window.range.contains_range(&access))
        {
            // Passthrough devices are identity-placed.
            Forward::Device(PhysAddr::new(ipa.raw()))
        } else {
            Forward::ReadAsZero
        }
    }

    /// INTIDs of the cell's passthrough SPIs, sorted: route each to a CPU of the cell and inject it
    /// hardware-linked with the same virtual INTID.
    pub fn interrupts(&self) -> &[u32] {
        &self.interrupts
    }

    /// Whether the physical SPI `intid` belongs to this cell.
    pub fn owns_interrupt(&self, intid: u32) -> bool {
        self.interrupts.binary_search(&intid).is_ok()
    }

    /// The platform device-tree nodes of the cell's devices, in the cell's device order, for
    /// [`crate::setup::guest_fdt::generate_with_passthrough`]. Every window must lie in a device node
    /// whose SPIs are exactly the board's interrupts for the device.
    pub fn device_nodes(
        &self,
        platform: &Platform,
    ) -> Result<Vec<PlatformDevice>, PassthroughError> {
        let mut nodes: Vec<PlatformDevice> = Vec::new();
        // A PCI function's BAR window is described by the cell's PCI host node instead.
        for device in self
            .devices
            .iter()
            .filter(|device| device.reset != DeviceReset::PciFunction)
        {
            for window in device.mmio {
                let node = platform
                    .devices
                    .iter()
                    .find(|node| node.registers.iter().any(|reg| reg.contains_range(window)))
                    .ok_or(PassthroughError::NotInPlatform {
                        device: device.name,
                        window: *window,
                    })?;
                let mut node_intids = node.intids();
                let mut board_intids = device.interrupts.to_vec();
                node_intids.sort_unstable();
                board_intids.sort_unstable();
                if node_intids != board_intids {
                    return Err(PassthroughError::InterruptMismatch {
                        device: device.name,
                        node: node.name.clone(),
                    });
                }
                if !nodes.contains(node) {
                    nodes.push(node.clone());
                }
            }
        }
        Ok(nodes)
    }
}

/// Every INTID, each as a one-element slice: `&INTIDS[n..n + 1]` is a `'static` list holding
/// just `n` (a PCI function's interrupt, for [`pci_window_device`], without allocating).
static INTIDS: [u32; 1024] = {
    let mut intids = [0u32; 1024];
    let mut n = 0;
    while n < intids.len() {
        intids[n] = n as u32;
        n += 1;
    }
    intids
};

/// The PCI function `name` of the board's host as a passthrough device: its BAR window, mapped
/// into the cell's stage 2 (IPA = PA), and its legacy interrupt, forwarded to the cell like any
/// passthrough SPI. Not DMA-capable as a platform device is: its DMA is the host's (and the SMMU's)
/// business, checked by the layout validation.
pub fn pci_window_device(board: &Board, name: &str) -> Option<Device> {
    let host = board.pci.as_ref()?;
    let function: &'static PciFunction = host.function(name)?;
    let interrupts: &'static [u32] = match function.intx_intid(host) {
        Some(intid) => INTIDS
            .get(intid as usize..intid as usize + 1)
            .unwrap_or(&[]),
        None => &[],
    };
    Some(Device {
        name: function.name,
        mmio: core::slice::from_ref(&function.bar_window),
        interrupts,
        dma_capable: false,
        reset: DeviceReset::PciFunction,
    })
}

/// Which cell owns each passthrough SPI of a partition: `(INTID, cell index)`, sorted by INTID.
pub fn interrupt_owners(
    board: &Board,
    partition: &Partition,
) -> Result<Vec<(u32, usize)>, PassthroughError> {
    let mut owners = Vec::new();
    for cell in &partition.cells {
        let plan = PassthroughPlan::for_cell(board, partition, cell)?;
        owners.extend(plan.interrupts().iter().map(|intid| (*intid, cell.index)));
    }
    owners.sort_unstable();
    Ok(owners)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::partition::{qemu_virt, validate};
    use crate::setup::platform;
    use alloc::string::ToString;
    use alloc::vec;

    const DTB: &[u8] = include_bytes!("../../tests/data/qemu-virt-gicv3.dtb");

    const fn device(
        name: &'static str,
        mmio: &'static [MemRange],
        interrupts: &'static [u32],
    ) -> Device {
        Device {
            name,
            mmio,
            interrupts,
            dma_capable: true,
            reset: DeviceReset::VirtioMmio,
        }
    }

    const SLOT_31: Device = device("slot31", &[MemRange::new(0x0A00_3E00, 0x200)], &[79]);
    const SLOT_30: Device = device("slot30", &[MemRange::new(0x0A00_3C00, 0x200)], &[78]);
    const SLOT_0: Device = device("slot0", &[MemRange::new(0x0A00_0000, 0x200)], &[48]);
    /// Three whole pages plus a ragged head and tail: 0x1_0F00..0x1_4100.
    const BIG: Device = device("big", &[MemRange::new(0x1_0F00, 0x3200)], &[100]);

    const WIDTHS: [AccessWidth; 4] = [
        AccessWidth::Byte,
        AccessWidth::Halfword,
        AccessWidth::Word,
        AccessWidth::Doubleword,
    ];

    fn ipa(address: u64) -> GuestPhysAddr {
        GuestPhysAddr::new(address)
    }

    #[test]
    fn a_reset_register_outside_the_device_windows_is_refused() {
        use crate::board::RegisterMatch;
        let with = |mmio: &'static [MemRange], reset: DeviceReset| Device {
            reset,
            ..device("dev", mmio, &[79])
        };
        const SLOT: &[MemRange] = &[MemRange::new(0x0A00_3E00, 0x200)];
        const SHORT: &[MemRange] = &[MemRange::new(0x0A00_3E00, 0x70)];
        let slot = SLOT;
        let refused = Err(PassthroughError::ResetOutsideWindow { device: "dev" });
        let register = |window, offset, settled| DeviceReset::RegisterWrite {
            window,
            offset,
            value: 1,
            settled,
        };
        let settled = |offset| {
            Some(RegisterMatch {
                offset,
                mask: 1,
                value: 0,
            })
        };
        for (mmio, reset, accepted) in [
            (slot, DeviceReset::VirtioMmio, true),
            // Too small for the Status register at 0x70.
            (SHORT, DeviceReset::VirtioMmio, false),
            (slot, register(0, 0x1FC, None), true),
            (slot, register(0, 0x1FC, settled(0x4)), true),
            (slot, register(0, 0x200, None), false),
            (slot, register(0, 0x102, None), false),
            (slot, register(1, 0, None), false),
            (slot, register(0, 0, settled(0x1FE)), false),
            (slot, register(0, u64::MAX - 1, None), false),
            (slot, DeviceReset::None, true),
            (slot, DeviceReset::UnsafeAccepted, true),
        ] {
            let result = PassthroughPlan::new(&[with(mmio, reset)], &[]).map(|_| ());
            if accepted {
                assert_eq!(result, Ok(()), "{reset:?} in {mmio:?}");
            } else {
                assert_eq!(result, refused, "{reset:?} in {mmio:?}");
            }
        }
    }

    #[test]
    fn sub_page_slot_traps_and_forwards_only_its_own_offsets() {
        let plan = PassthroughPlan::new(&[SLOT_31], &[SLOT_30]).unwrap();
        assert!(plan.direct_pages().is_empty());
        assert_eq!(
            plan.trapped_pages(),
            [MemRange::new(0x0A00_3000, PAGE_SIZE)]
        );
        assert!(plan.is_trapped(ipa(0x0A00_3000)) && plan.is_trapped(ipa(0x0A00_3FFF)));
        assert!(!plan.is_trapped(ipa(0x0A00_4000)) && !plan.is_trapped(ipa(0x0A00_2FFF)));
        assert_eq!(plan.interrupts(), [79]);
        assert!(plan.owns_interrupt(79) && !plan.owns_interrupt(78));
        for width in WIDTHS {
            let bytes = width.bytes();
            // First and last aligned offsets of the window.
            for address in [0x0A00_3E00, 0x0A00_4000 - bytes] {
                assert_eq!(
                    plan.forward(ipa(address), width),
                    Forward::Device(PhysAddr::new(address)),
                    "{width:?} at {address:#x}"
                );
            }
            // Just before the window (slot 30's last bytes) and just after (next page).
            for address in [0x0A00_3E00 - bytes, 0x0A00_4000, 0x0A00_3000, 0x0A00_3C00] {
                assert_eq!(
                    plan.forward(ipa(address), width),
                    Forward::ReadAsZero,
                    "{width:?} at {address:#x}"
                );
            }
        }
    }

    #[test]
    fn every_offset_of_a_shared_page_has_exactly_one_owner() {
        let personal = PassthroughPlan::new(&[SLOT_30], &[SLOT_31]).unwrap();
        let corporate = PassthroughPlan::new(&[SLOT_31], &[SLOT_30]).unwrap();
        assert_eq!(personal.trapped_pages(), corporate.trapped_pages());
        for width in WIDTHS {
            let bytes = width.bytes();
            for offset in (0..PAGE_SIZE).step_by(bytes as usize) {
                let address = 0x0A00_3000 + offset;
                let owners = [&personal, &corporate]
                    .iter()
                    .filter(|plan| plan.forward(ipa(address), width) != Forward::ReadAsZero)
                    .count();
                let expected = usize::from(address >= 0x0A00_3C00);
                assert_eq!(owners, expected, "{width:?} at {address:#x}");
            }
        }
    }

    #[test]
    fn straddling_and_unaligned_accesses_read_as_zero() {
        // Slots 30 and 31 in one cell: adjacent windows, still two devices.
        let plan = PassthroughPlan::new(&[SLOT_30, SLOT_31], &[]).unwrap();
        assert_eq!(
            plan.trapped_pages(),
            [MemRange::new(0x0A00_3000, PAGE_SIZE)]
        );
        // An aligned doubleword cannot straddle 0x3E00; unaligned accesses that would are refused.
        for (address, width) in [
            (0x0A00_3DFF, AccessWidth::Halfword),
            (0x0A00_3DFE, AccessWidth::Word),
            (0x0A00_3DFC, AccessWidth::Doubleword),
            (0x0A00_3E01, AccessWidth::Halfword),
            (0x0A00_3E02, AccessWidth::Word),
            (0x0A00_3E04, AccessWidth::Doubleword),
        ] {
            assert_eq!(plan.forward(ipa(address), width), Forward::ReadAsZero);
        }
        // A single window never reaches past its end, even at the top of the address space.
        assert_eq!(
            plan.forward(ipa(u64::MAX), AccessWidth::Byte),
            Forward::ReadAsZero
        );
        assert_eq!(
            plan.forward(ipa(u64::MAX - 7), AccessWidth::Doubleword),
            Forward::ReadAsZero
        );
        assert_eq!(
            plan.forward(ipa(0x0A00_3DF8), AccessWidth::Doubleword),
            Forward::Device(PhysAddr::new(0x0A00_3DF8))
        );
        assert_eq!(plan.interrupts(), [78, 79]);
    }

    #[test]
    fn whole_pages_are_direct_and_ragged_edges_trap() {
        let plan = PassthroughPlan::new(&[BIG, SLOT_0], &[SLOT_31]).unwrap();
        assert_eq!(plan.direct_pages(), [MemRange::new(0x1_1000, 0x3000)]);
        assert_eq!(
            plan.trapped_pages(),
            [
                MemRange::new(0x1_0000, PAGE_SIZE),
                MemRange::new(0x1_4000, PAGE_SIZE),
                MemRange::new(0x0A00_0000, PAGE_SIZE),
            ]
        );
        assert_eq!(
            plan.forward(ipa(0x1_0F00), AccessWidth::Word),
            Forward::Device(PhysAddr::new(0x1_0F00))
        );
        assert_eq!(
            plan.forward(ipa(0x1_0EFC), AccessWidth::Word),
            Forward::ReadAsZero
        );
        assert_eq!(
            plan.forward(ipa(0x1_40FC), AccessWidth::Word),
            Forward::Device(PhysAddr::new(0x1_40FC))
        );
        assert_eq!(
            plan.forward(ipa(0x1_4100), AccessWidth::Byte),
            Forward::ReadAsZero
        );
        assert_eq!(plan.interrupts(), [48, 100]);
        assert_eq!(plan.windows().len(), 2);
        assert_eq!(plan.windows()[0].device, "big");

        // A page-aligned, page-sized window is direct and traps nothing.
        const PAGE: Device = device("page", &[MemRange::new(0x2_0000, PAGE_SIZE)], &[]);
        let plan = PassthroughPlan::new(&[PAGE], &[]).unwrap();
        assert_eq!(plan.direct_pages(), [MemRange::new(0x2_0000, PAGE_SIZE)]);
        assert!(plan.trapped_pages().is_empty());
        // Eight slots that fill a page together make it direct.
        const HALF_A: Device = device("a", &[MemRange::new(0x3_0000, 0x800)], &[]);
        const HALF_B: Device = device("b", &[MemRange::new(0x3_0800, 0x800)], &[]);
        let plan = PassthroughPlan::new(&[HALF_B, HALF_A], &[]).unwrap();
        assert_eq!(plan.direct_pages(), [MemRange::new(0x3_0000, PAGE_SIZE)]);
        assert!(plan.trapped_pages().is_empty());
        // A window crossing a page boundary without covering either page traps both.
        const CROSS: Device = device("cross", &[MemRange::new(0x4_0F00, 0x200)], &[]);
        let plan = PassthroughPlan::new(&[CROSS], &[]).unwrap();
        assert!(plan.direct_pages().is_empty());
        assert_eq!(
            plan.trapped_pages(),
            [
                MemRange::new(0x4_0000, PAGE_SIZE),
                MemRange::new(0x4_1000, PAGE_SIZE)
            ]
        );
        // A cell without devices has nothing.
        assert_eq!(
            PassthroughPlan::new(&[], &[SLOT_31]).unwrap(),
            PassthroughPlan::default()
        );
    }

    #[test]
    fn malformed_devices_are_refused() {
        const EMPTY: Device = device("empty", &[MemRange::new(0x1000, 0)], &[]);
        const WRAPS: Device = device("wraps", &[MemRange::new(u64::MAX - 0xFFF, 0x1000)], &[]);
        const PPI: Device = device("ppi", &[MemRange::new(0x1000, 0x100)], &[27]);
        const SPECIAL: Device = device("special", &[MemRange::new(0x1000, 0x100)], &[1023]);
        const OVERLAPS_31: Device = device("overlap", &[MemRange::new(0x0A00_3F00, 0x200)], &[]);
        const SAME_SPI: Device = device("same-spi", &[MemRange::new(0x1000, 0x100)], &[79]);
        assert!(matches!(
            PassthroughPlan::new(&[EMPTY], &[]),
            Err(PassthroughError::EmptyWindow { .. })
        ));
        assert!(matches!(
            PassthroughPlan::new(&[WRAPS], &[]),
            Err(PassthroughError::WrappingWindow { .. })
        ));
        assert!(matches!(
            PassthroughPlan::new(&[PPI], &[]),
            Err(PassthroughError::NotAnSpi { intid: 27, .. })
        ));
        assert!(matches!(
            PassthroughPlan::new(&[SPECIAL], &[]),
            Err(PassthroughError::NotAnSpi { intid: 1023, .. })
        ));
        // Overlap with another cell's device, and with the cell's own.
        for (own, others) in [
            (vec![OVERLAPS_31], vec![SLOT_31]),
            (vec![SLOT_31, OVERLAPS_31], vec![]),
        ] {
            assert!(matches!(
                PassthroughPlan::new(&own, &others),
                Err(PassthroughError::WindowOverlap { .. })
            ));
        }
        assert!(matches!(
            PassthroughPlan::new(&[SAME_SPI], &[SLOT_31]),
            Err(PassthroughError::SharedInterrupt { intid: 79, .. })
        ));
        let errors = [
            PassthroughError::UnknownDevice { device: "x" },
            PassthroughPlan::new(&[EMPTY], &[]).unwrap_err(),
            PassthroughPlan::new(&[WRAPS], &[]).unwrap_err(),
            PassthroughPlan::new(&[PPI], &[]).unwrap_err(),
            PassthroughPlan::new(&[OVERLAPS_31], &[SLOT_31]).unwrap_err(),
            PassthroughPlan::new(&[SAME_SPI], &[SLOT_31]).unwrap_err(),
            PassthroughError::NotInPlatform {
                device: "x",
                window: MemRange::new(0, 1),
            },
            PassthroughError::InterruptMismatch {
                device: "x",
                node: "n@0".into(),
            },
        ];
        for error in errors {
            let line = error.to_string();
            assert!(!line.contains('\n') && line.contains(": "), "{line}");
        }
    }

    #[test]
    fn qemu_virt_linux_layout_splits_the_virtio_page_between_the_cells() {
        let platform = platform::parse(DTB).unwrap();
        let board = &qemu_virt::BOARD;
        let partition = validate(board, Some("linux-mmio"), &platform, &[]).unwrap();
        let personal = &partition.cells[0];
        let corporate = &partition.cells[1];
        assert_eq!((personal.name, corporate.name), ("personal", "corporate"));
        let personal = PassthroughPlan::for_cell(board, &partition, personal).unwrap();
        let corporate = PassthroughPlan::for_cell(board, &partition, corporate).unwrap();
        let page = [MemRange::new(0x0A00_3000, PAGE_SIZE)];
        assert_eq!(personal.trapped_pages(), page);
        assert_eq!(corporate.trapped_pages(), page);
        assert!(personal.direct_pages().is_empty() && corporate.direct_pages().is_empty());
        assert_eq!(personal.interrupts(), [78]);
        assert_eq!(corporate.interrupts(), [79]);
        assert_eq!(
            corporate.forward(ipa(0x0A00_3E70), AccessWidth::Word),
            Forward::Device(PhysAddr::new(0x0A00_3E70))
        );
        assert_eq!(
            personal.forward(ipa(0x0A00_3E70), AccessWidth::Word),
            Forward::ReadAsZero
        );
        assert_eq!(
            interrupt_owners(board, &partition).unwrap(),
            [(78, 0), (79, 1)]
        );

        let nodes = corporate.device_nodes(&platform).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0].name, "virtio_mmio@a003e00");
        let nodes = personal.device_nodes(&platform).unwrap();
        assert_eq!(nodes[0].name, "virtio_mmio@a003c00");

        // The test-guest layout passes nothing through.
        let partition = validate(board, Some("test-guests"), &platform, &[]).unwrap();
        for cell in &partition.cells {
            let plan = PassthroughPlan::for_cell(board, &partition, cell).unwrap();
            assert_eq!(plan, PassthroughPlan::default());
        }
    }

    #[test]
    fn device_nodes_must_exist_and_agree_on_interrupts() {
        let platform = platform::parse(DTB).unwrap();
        const NOWHERE: Device = device("nowhere", &[MemRange::new(0x0A00_5000, 0x200)], &[]);
        const WRONG_SPI: Device = device("wrong", &[MemRange::new(0x0A00_3E00, 0x200)], &[78]);
        let plan = PassthroughPlan::new(&[NOWHERE], &[]).unwrap();
        assert!(matches!(
            plan.device_nodes(&platform),
            Err(PassthroughError::NotInPlatform { .. })
        ));
        let plan = PassthroughPlan::new(&[WRONG_SPI], &[]).unwrap();
        assert_eq!(
            plan.device_nodes(&platform),
            Err(PassthroughError::InterruptMismatch {
                device: "wrong",
                node: "virtio_mmio@a003e00".to_string()
            })
        );
    }
}
