//! PCIe passthrough per function: boot-time discovery and BAR assignment of the physical functions,
//! and the per-cell view of bus 0 of its ECAM window ([`PciBus`]).
//!
//! No firmware runs before cellvisor, so nobody has assigned BARs: at boot cellvisor [`probe`]s
//! each function the board gives a cell (refusing bridges), [`assign`]s its memory BARs inside the
//! board's window for that function and [`program`]s them. The cell then sees an ECAM window of
//! its own whose bus 0 holds only its functions, possibly renumbered, through [`PciBus`]: a model
//! that answers the header from what was probed and assigned, filters the capability list, and
//! forwards to the device only the writes listed below, through [`ConfigAccess`] (which the boot
//! path implements over the physical ECAM). The BARs themselves are mapped into the cell at their
//! physical addresses (IPA = PA) like any other passthrough window; INTx lines are the physical
//! SPIs after the host bridge's swizzle (the board's `PciFunction::intx_intid`), listed in the
//! cell's `interrupt-map` and never shared with another device (the passthrough plan).
//!
//! # The cell's view of configuration space
//!
//! | register (offset) | read | write |
//! |---|---|---|
//! | any register of a bus/device/function the cell does not have, any bus but 0 | all ones (vendor ID 0xffff: "absent") | ignored |
//! | Vendor ID, Device ID (0x00) | the device's (as probed) | ignored |
//! | Command (0x04) | the device's Memory Space, Bus Master, INTx Disable bits; every other bit 0 | Memory Space, Bus Master, INTx Disable go to the device (a 16-bit read-modify-write of Command alone); I/O Space, SERR#, Parity Error Response and the bits PCI Express hardwires to 0 are dropped. Setting Memory Space first re-writes the assigned BARs (a D3hot→D0 transition or an FLR the cell caused may have cleared them) |
//! | Status (0x06) | the device's, with Capabilities List set exactly when the filtered list is not empty | the write-1-to-clear error bits go to the device as a 16-bit write of Status alone; other bits are read-only |
//! | Revision ID, Class Code (0x08) | the device's | ignored |
//! | Cache Line Size (0x0c) | emulated scratch register per function | kept, not forwarded |
//! | Latency Timer (0x0d), BIST (0x0f) | 0 | ignored |
//! | Header Type (0x0e) | 0 (type 0), multi-function bit set when the cell has another function on the same guest device | ignored |
//! | BAR n (0x10 + 4n), memory | the assigned address with the BAR's type bits (both halves of a 64-bit BAR); after all four bytes of the register were written with 0xff, the size mask instead | all-ones bytes latch the size probe; any other write clears the latch, the address never moves |
//! | BAR n, I/O or unimplemented | 0 | ignored (I/O BARs stay 0 in the device and are never exposed) |
//! | CardBus CIS (0x28) | 0 | ignored |
//! | Subsystem Vendor ID, Subsystem ID (0x2c) | the device's | ignored |
//! | Expansion ROM BAR (0x30) | 0 (no ROM; the size probe reads 0 too) | ignored |
//! | Capabilities Pointer (0x34) | the first visible capability, or 0 | ignored |
//! | reserved (0x35..0x3c) | 0 | ignored |
//! | Interrupt Line (0x3c) | emulated scratch register per function (power-on 0) | kept, not forwarded |
//! | Interrupt Pin (0x3d) | the device's | ignored |
//! | Min_Gnt, Max_Lat (0x3e) | 0 | ignored |
//! | Power Management capability (0x01) | the device's bytes, next pointer rewritten | PMCSR (+4): PowerState and the PME_Status write-1-to-clear bit; PME_En and everything else read-only |
//! | PCI Express capability (0x10) | the device's bytes, next pointer rewritten | Device Control (+8): Relaxed Ordering, Extended Tag, Aux Power, No Snoop, Max_Read_Request_Size, Initiate FLR (a 16-bit read-modify-write of Device Control alone); the error reporting enables, Max_Payload_Size and Phantom Functions are read-only. Device Status (+0xa): the write-1-to-clear error bits. Link, Slot, Root and the "2" registers: read-only |
//! | Vendor-specific capability (0x09) | the device's bytes, next pointer rewritten | forwarded as written (same width and offset) for virtio functions (vendor 0x1af4: the `VIRTIO_PCI_CAP_PCI_CFG` window needs writes); read-only for any other vendor, whose private registers cellvisor cannot judge |
//! | MSI (0x05), MSI-X (0x11) and every other capability | hidden: skipped by the rewritten next pointers, its bytes read 0 | ignored (cells use INTx until MSI is emulated; cellvisor keeps MSI/MSI-X disabled) |
//! | bytes of 0x40..0x100 outside the visible capabilities | 0 | ignored |
//! | extended configuration space (0x100..0x1000) | 0: no extended capabilities, which hides SR-IOV (new requester IDs), ATS (translated requests bypass the SMMU), ACS, AER and the rest | ignored |
//!
//! Every access is one, two or four bytes at a naturally aligned offset and behaves like the
//! corresponding bytes of the register dword; a misaligned access or a 64-bit access (a
//! configuration request carries at most one dword) is refused with an [`MmioError`] (the caller
//! injects an abort), never a panic. A refused physical access ([`PciError::Access`]) becomes
//! [`MmioError::DeviceAbort`].
//!
//! # Sub-word writes to the device
//!
//! ECAM carries byte enables, so [`ConfigAccess`] has 8-, 16- and 32-bit writes and a forwarded
//! write reaches the device with the guest's width at the guest's offset. The model itself
//! read-modify-writes only a 16-bit register with no write-1-to-clear bits (Command, Device
//! Control, PMCSR with PME_Status masked to 0), never the Command/Status dword: a read-modify-write
//! of that dword would write back the Status error bits it read as 1 and clear them.
#![forbid(unsafe_code)]

mod assign;
mod emulator;
mod intx;
mod probe;
pub mod regs;
#[cfg(test)]
pub(crate) mod tests;

use core::fmt;

use crate::board::MemRange;
use crate::dev::mmio::MmioError;

pub use assign::{AssignedBar, assign, program};
pub use emulator::{CellFunction, PciBus};
pub use intx::IntxPin;
pub use probe::{
    BarInfo, BarKind, CAPABILITY_BOUND, Capability, FlrMethod, FunctionInfo, VirtioCommonConfig,
    function_level_reset, probe, quiesce, stop_dma, virtio_reset_location,
};

/// A PCI bus/device/function number.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    bus: u8,
    device: u8,
    function: u8,
}

impl Bdf {
    /// Devices per bus.
    pub const DEVICES: u8 = 32;
    /// Functions per device.
    pub const FUNCTIONS: u8 = 8;

    /// Bus `bus`, device `device` (0..32), function `function` (0..8); `None` if out of range.
    pub const fn new(bus: u8, device: u8, function: u8) -> Option<Self> {
        if device < Self::DEVICES && function < Self::FUNCTIONS {
            Some(Self {
                bus,
                device,
                function,
            })
        } else {
            None
        }
    }

    /// The function whose configuration space is at `offset` of an ECAM window whose bus 0 is
    /// bus `first_bus`, and the register offset inside that space; `None` past bus 255.
    pub const fn from_ecam_offset(first_bus: u8, offset: u64) -> Option<(Self, u16)> {
        let bus = (offset >> 20) + first_bus as u64;
        if bus > 0xff {
            return None;
        }
        Some((
            Self {
                bus: bus as u8,
                device: ((offset >> 15) & 0x1f) as u8,
                function: ((offset >> 12) & 0x7) as u8,
            },
            (offset & 0xfff) as u16,
        ))
    }

    /// The bus number.
    pub const fn bus(self) -> u8 {
        self.bus
    }

    /// The device number, 0..32.
    pub const fn device(self) -> u8 {
        self.device
    }

    /// The function number, 0..8.
    pub const fn function(self) -> u8 {
        self.function
    }

    /// Device and function as one byte (`device << 3 | function`).
    pub const fn devfn(self) -> u8 {
        (self.device << 3) | self.function
    }

    /// The PCIe requester ID (`bus << 8 | device << 3 | function`): the StreamID the SMMU sees for
    /// this function's DMA behind QEMU virt's host bridge (`iommu-map = <0 &smmu 0 0x10000>`).
    pub const fn requester_id(self) -> u16 {
        ((self.bus as u16) << 8) | self.devfn() as u16
    }

    /// Offset of this function's configuration space in an ECAM window starting at bus 0.
    pub const fn ecam_offset(self) -> u64 {
        ((self.bus as u64) << 20) | ((self.device as u64) << 15) | ((self.function as u64) << 12)
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

impl fmt::Debug for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bdf({self})")
    }
}

/// Physical configuration-space access to the functions cellvisor passes through, implemented by
/// the boot path over the ECAM (and by a fake in the host tests).
///
/// `offset` is the register offset in the function's 4 KiB configuration space, naturally aligned
/// to the access size. Sub-word writes exist because ECAM carries byte enables: a 16-bit write of
/// Command must not write Status, whose error bits are write-1-to-clear.
pub trait ConfigAccess {
    /// Reads the dword at `offset` (a multiple of 4).
    fn read32(&mut self, bdf: Bdf, offset: u16) -> Result<u32, PciError>;
    /// Writes the dword at `offset` (a multiple of 4).
    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) -> Result<(), PciError>;
    /// Writes the 16 bits at `offset` (a multiple of 2), and only them.
    fn write16(&mut self, bdf: Bdf, offset: u16, value: u16) -> Result<(), PciError>;
    /// Writes the byte at `offset`, and only it.
    fn write8(&mut self, bdf: Bdf, offset: u16, value: u8) -> Result<(), PciError>;
}

/// Reads the 16 bits at `offset` (a multiple of 2) through a dword read.
pub(crate) fn read16<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    offset: u16,
) -> Result<u16, PciError> {
    let dword = access.read32(bdf, offset & !3)?;
    Ok((dword >> (8 * u32::from(offset & 2))) as u16)
}

/// Reads the byte at `offset` through a dword read.
pub(crate) fn read8<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    offset: u16,
) -> Result<u8, PciError> {
    let dword = access.read32(bdf, offset & !3)?;
    Ok((dword >> (8 * u32::from(offset & 3))) as u8)
}

/// A byte count, printed in the largest binary unit that divides it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        match UNITS
            .iter()
            .find(|(unit, _)| self.0 != 0 && self.0.is_multiple_of(*unit))
        {
            Some((unit, name)) => write!(f, "{} {name}", self.0 / unit),
            None => write!(f, "{} bytes", self.0),
        }
    }
}

/// Why a PCI function cannot be discovered, placed or given to a cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PciError {
    /// The physical configuration access failed (the boot path's ECAM refused it).
    Access {
        /// The function.
        bdf: Bdf,
        /// The register offset.
        offset: u16,
    },
    /// No function answers at this address (vendor ID 0xffff).
    NoFunction {
        /// The function.
        bdf: Bdf,
    },
    /// The function has a type 1 header.
    Bridge {
        /// The function.
        bdf: Bdf,
    },
    /// The function's header layout is neither an endpoint's nor a bridge's (e.g. CardBus).
    UnsupportedHeader {
        /// The function.
        bdf: Bdf,
        /// The Header Type layout field.
        layout: u8,
    },
    /// The capability list does not end within the bound (a loop).
    CapabilityLoop {
        /// The function.
        bdf: Bdf,
    },
    /// A capability points into the header, runs past configuration space or overlaps another.
    MalformedCapability {
        /// The function.
        bdf: Bdf,
        /// Where the capability starts.
        offset: u16,
    },
    /// A BAR has a reserved memory type, or a 64-bit BAR starts in the last BAR slot.
    BadBar {
        /// The function.
        bdf: Bdf,
        /// The BAR index.
        index: u8,
    },
    /// A function's BAR window is empty, wraps the address space or is not page aligned.
    BadWindow {
        /// The function.
        bdf: Bdf,
        /// The window.
        window: MemRange,
    },
    /// The function's memory BARs do not fit its window.
    BarsDoNotFit {
        /// The function.
        bdf: Bdf,
        /// Bytes its BARs need (each rounded up to whole pages).
        needed: u64,
        /// The window.
        window: MemRange,
    },
    /// A 32-bit BAR would be placed at or above 4 GiB.
    BarAboveFourGiB {
        /// The function.
        bdf: Bdf,
        /// The BAR index.
        index: u8,
        /// The address it would get.
        address: u64,
    },
    /// The assigned BARs given for a function are not exactly its memory BARs.
    AssignmentMismatch {
        /// The function.
        bdf: Bdf,
    },
    /// A cell's function is not on its bus 0.
    GuestNotOnBusZero {
        /// The guest function.
        guest: Bdf,
    },
    /// Two of a cell's functions have the same guest number.
    DuplicateGuestFunction {
        /// The guest function.
        guest: Bdf,
    },
    /// A cell has a function on a device without function 0 (Linux would not scan it).
    NoFunctionZero {
        /// The guest function.
        guest: Bdf,
    },
}

impl fmt::Display for PciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Access { bdf, offset } => write!(
                f,
                "PCI {bdf} configuration access at {offset:#x} failed: check the board's ECAM window"
            ),
            Self::NoFunction { bdf } => write!(
                f,
                "PCI {bdf} does not answer (vendor ID 0xffff): start the machine with the device or fix the board"
            ),
            Self::Bridge { bdf } => write!(
                f,
                "PCI {bdf} is a bridge (header type 1): bridges cannot be passed through, give the cell the functions behind it"
            ),
            Self::UnsupportedHeader { bdf, layout } => write!(
                f,
                "PCI {bdf} has header layout {layout:#x}, not an endpoint's (0): it cannot be passed through"
            ),
            Self::CapabilityLoop { bdf } => write!(
                f,
                "PCI {bdf} capability list does not end within {} entries (a loop): the device is broken, do not pass it through",
                CAPABILITY_BOUND
            ),
            Self::MalformedCapability { bdf, offset } => write!(
                f,
                "PCI {bdf} capability at {offset:#x} points into the header, runs past 0x100 or overlaps another: the device is broken, do not pass it through"
            ),
            Self::BadBar { bdf, index } => write!(
                f,
                "PCI {bdf} BAR{index} has a reserved type or is a 64-bit BAR in the last slot: the device is broken, do not pass it through"
            ),
            Self::BadWindow { bdf, window } => write!(
                f,
                "PCI {bdf} board window {:#x}+{:#x} is empty, wraps or is not page aligned: fix it in the board",
                window.base, window.size
            ),
            Self::BarsDoNotFit {
                bdf,
                needed,
                window,
            } => write!(
                f,
                "PCI {bdf} needs {} of BARs but its board window {:#x}+{:#x} holds {}: give it a larger window",
                Size(*needed),
                window.base,
                window.size,
                Size(window.size)
            ),
            Self::BarAboveFourGiB {
                bdf,
                index,
                address,
            } => write!(
                f,
                "PCI {bdf} BAR{index} is 32-bit but would be placed at {address:#x}, above 4 GiB: give it a window below 4 GiB"
            ),
            Self::AssignmentMismatch { bdf } => write!(
                f,
                "PCI {bdf} assigned BARs are not its probed memory BARs: assign them with pci::assign"
            ),
            Self::GuestNotOnBusZero { guest } => write!(
                f,
                "cell PCI function {guest} is not on bus 0: a cell's functions live on its bus 0"
            ),
            Self::DuplicateGuestFunction { guest } => write!(
                f,
                "two of the cell's PCI functions are numbered {guest}: renumber one"
            ),
            Self::NoFunctionZero { guest } => write!(
                f,
                "cell PCI function {guest} is on a device without function 0, which Linux does not scan: number one of its functions {:02x}:{:02x}.0",
                guest.bus(),
                guest.device()
            ),
        }
    }
}

impl From<PciError> for MmioError {
    fn from(_: PciError) -> Self {
        MmioError::DeviceAbort
    }
}
