//! PCI configuration space through an ECAM window, as the device tree's `pci-host-ecam-generic`
//! node describes it (`reg`: the window, `bus-range`, `ranges`: the memory windows BARs live in),
//! and memory BARs: read, and assigned where nobody did; `interrupt-map` gives a function's INTx
//! line ([`Host::intx_intid`]).
//!
//! Under cellvisor the node lists only the cell's own functions and their BARs are already
//! assigned (`linux,pci-probe-only`): they are read, never written. On plain QEMU `virt` nobody
//! assigns them (they read 0), so [`ensure_bar`] sizes such a BAR and gives it a naturally
//! aligned place in the 32-bit memory window. Every access is an aligned 32-bit one (the form
//! every ECAM implementation takes); 16-bit registers are read out of their 32-bit word and the
//! Command register is written with the Status half 0, which changes no Status bit (they are
//! write-1-to-clear).
#![forbid(unsafe_code)]

use core::fmt;

use crate::fdt;
use crate::mmio::{read32, write32};

/// `compatible` of the host bridge node.
pub const COMPATIBLE: &str = "pci-host-ecam-generic";
/// Configuration space bytes per function in ECAM.
const FUNCTION_SPACE: u64 = 4096;
/// Functions per device and devices per bus.
const FUNCTIONS: u8 = 8;
const DEVICES: u8 = 32;

/// Configuration space registers (byte offsets).
const VENDOR_DEVICE: u16 = 0x00;
const COMMAND_STATUS: u16 = 0x04;
const HEADER_TYPE_WORD: u16 = 0x0C;
const BAR0: u16 = 0x10;
const CAPABILITIES_POINTER: u16 = 0x34;
/// Status register bit 4 (bit 20 of the Command/Status word): the function has a capability list.
const STATUS_CAPABILITIES: u32 = 1 << 20;
/// Header Type bit 7 (bit 23 of its word): a multi-function device.
const HEADER_MULTI_FUNCTION: u32 = 1 << 23;
/// Command register bits.
pub const COMMAND_MEMORY: u16 = 1 << 1;
/// Bus Master Enable: the function may issue DMA.
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// INTx Disable: the function raises no legacy interrupt.
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
/// BAR bits: I/O space, the memory type field (64-bit: 0b10).
const BAR_IO: u32 = 1;
const BAR_TYPE_MASK: u32 = 0b110;
const BAR_TYPE_64: u32 = 0b100;
/// A capability list holds at most this many entries (48 fit in 192 bytes): a loop guard.
const MAX_CAPABILITIES: usize = 48;
/// `ranges` phys.hi space code (bits 24-25): 32-bit and 64-bit memory.
const SPACE_MEMORY_32: u32 = 0b10;
const SPACE_MEMORY_64: u32 = 0b11;
/// Memory windows kept from `ranges`.
const MAX_WINDOWS: usize = 4;
/// `interrupt-map` entries kept.
const MAX_INTX_ENTRIES: usize = 16;
/// Cells of one `interrupt-map` entry with a GICv3 parent of `#address-cells = <2>` and
/// `#interrupt-cells = <3>` (how cellvisor and QEMU virt write it): child unit address (3), pin
/// (1), the GIC's phandle (1), parent unit address (2), `GIC_SPI spi flags` (3).
const INTX_ENTRY_CELLS: usize = 10;
/// The GIC binding's interrupt type cell of an SPI.
const GIC_SPI: u32 = 0;
/// INTID of SPI 0.
const SPI_BASE_INTID: u32 = 32;
/// The Interrupt Pin register (byte 0x3D): 1..=4 for INTA..INTD, 0 for none.
const INTERRUPT_PIN: u16 = 0x3D;

/// One `interrupt-map` entry: the child unit address's high cell (bus, device, function) and pin
/// it matches (after the mask), and the INTID it raises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IntxEntry {
    address_high: u32,
    pin: u32,
    intid: u32,
}

/// A memory window of the host bridge: PCI addresses `pci..pci + size` appear to the CPU at
/// `cpu..cpu + size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First PCI bus address.
    pub pci: u64,
    /// The CPU (guest-physical) address it appears at.
    pub cpu: u64,
    /// Bytes.
    pub size: u64,
    /// Whether it is a 32-bit window (BARs are assigned there).
    pub below_4g: bool,
}

/// The host bridge: its ECAM window, its buses and its memory windows.
pub struct Host {
    /// Guest-physical base of the ECAM window (bus `first_bus` at offset 0).
    pub ecam: u64,
    /// Bytes of the window.
    pub ecam_size: u64,
    /// First and last bus number (`bus-range`).
    pub first_bus: u8,
    /// Last bus number the window covers.
    pub last_bus: u8,
    windows: [Option<Window>; MAX_WINDOWS],
    /// `interrupt-map-mask`'s cells for the unit address's high cell and the pin.
    intx_mask: (u32, u32),
    intx: [Option<IntxEntry>; MAX_INTX_ENTRIES],
}

/// Why the device tree's host bridge could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostError {
    /// No `pci-host-ecam-generic` node with a `reg`.
    NoHost,
    /// `reg` or `ranges` cannot be read with the cell counts the tree gives.
    Malformed(&'static str),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHost => write!(f, "no {COMPATIBLE} node with a reg in the device tree"),
            Self::Malformed(what) => write!(f, "the {COMPATIBLE} node's {what} is malformed"),
        }
    }
}

impl Host {
    /// The first `pci-host-ecam-generic` node of `device_tree`.
    pub fn from_device_tree(device_tree: &[u8]) -> Result<Host, HostError> {
        let (address_cells, size_cells) = fdt::root_cells(device_tree);
        let property = |name| fdt::device_property(device_tree, COMPATIBLE, name);
        let reg = property("reg").ok_or(HostError::NoHost)?;
        let ecam = fdt::cells_value(reg, address_cells).ok_or(HostError::Malformed("reg"))?;
        let ecam_size = reg
            .get(address_cells * 4..)
            .and_then(|size| fdt::cells_value(size, size_cells))
            .ok_or(HostError::Malformed("reg"))?;
        let (first_bus, last_bus) = match property("bus-range") {
            Some(range) => (
                fdt::cells_value(range, 1).ok_or(HostError::Malformed("bus-range"))?,
                fdt::cells_value(range.get(4..).unwrap_or(&[]), 1)
                    .ok_or(HostError::Malformed("bus-range"))?,
            ),
            None => (0, (ecam_size >> 20).saturating_sub(1)),
        };
        let (Ok(first_bus), Ok(last_bus)) = (u8::try_from(first_bus), u8::try_from(last_bus))
        else {
            return Err(HostError::Malformed("bus-range"));
        };
        // The node's own cells describe the child (PCI) side of `ranges`: 3 and 2 by the binding.
        let child_cells = property("#address-cells")
            .and_then(|value| fdt::cells_value(value, 1))
            .unwrap_or(3) as usize;
        let child_size_cells = property("#size-cells")
            .and_then(|value| fdt::cells_value(value, 1))
            .unwrap_or(2) as usize;
        if child_cells != 3 {
            return Err(HostError::Malformed("#address-cells"));
        }
        let mut windows = [None; MAX_WINDOWS];
        let entry = (child_cells + address_cells + child_size_cells) * 4;
        let ranges = property("ranges").unwrap_or(&[]);
        let mut slots = windows.iter_mut();
        for chunk in ranges.chunks_exact(entry) {
            let malformed = HostError::Malformed("ranges");
            let space = fdt::cells_value(chunk, 1).ok_or(malformed)? as u32 >> 24 & 0b11;
            let pci = fdt::cells_value(chunk.get(4..).ok_or(malformed)?, 2).ok_or(malformed)?;
            let cpu = fdt::cells_value(chunk.get(12..).ok_or(malformed)?, address_cells)
                .ok_or(malformed)?;
            let size = fdt::cells_value(
                chunk.get(12 + address_cells * 4..).ok_or(malformed)?,
                child_size_cells,
            )
            .ok_or(malformed)?;
            if space != SPACE_MEMORY_32 && space != SPACE_MEMORY_64 {
                continue;
            }
            let Some(slot) = slots.next() else { break };
            *slot = Some(Window {
                pci,
                cpu,
                size,
                below_4g: space == SPACE_MEMORY_32 && pci.saturating_add(size) <= 1 << 32,
            });
        }
        let mask = property("interrupt-map-mask").unwrap_or(&[]);
        let intx_mask = (
            fdt::cells_value(mask, 1).map_or(u32::MAX, |cell| cell as u32),
            fdt::cells_value(mask.get(12..).unwrap_or(&[]), 1).map_or(u32::MAX, |cell| cell as u32),
        );
        let mut intx = [None; MAX_INTX_ENTRIES];
        let map = property("interrupt-map").unwrap_or(&[]);
        let mut slots = intx.iter_mut();
        for chunk in map.chunks_exact(INTX_ENTRY_CELLS * 4) {
            let cell = |index: usize| {
                fdt::cells_value(chunk.get(index * 4..).unwrap_or(&[]), 1).map(|cell| cell as u32)
            };
            let (Some(address_high), Some(pin), Some(kind), Some(spi)) =
                (cell(0), cell(3), cell(7), cell(8))
            else {
                return Err(HostError::Malformed("interrupt-map"));
            };
            if kind != GIC_SPI {
                continue;
            }
            let Some(slot) = slots.next() else { break };
            *slot = Some(IntxEntry {
                address_high: address_high & intx_mask.0,
                pin: pin & intx_mask.1,
                intid: SPI_BASE_INTID + spi,
            });
        }
        Ok(Host {
            ecam,
            ecam_size,
            first_bus,
            last_bus,
            windows,
            intx_mask,
            intx,
        })
    }

    /// The INTID `function`'s INTx pin raises, from the node's `interrupt-map` (entries for a
    /// GICv3 parent, see [`INTX_ENTRY_CELLS`]); `None` for a function without a pin or without an
    /// entry.
    pub fn intx_intid(&self, function: &Function) -> Option<u32> {
        let pin = u32::from(function.read8(INTERRUPT_PIN));
        if pin == 0 {
            return None;
        }
        let address_high = u32::from(function.bus) << 16
            | u32::from(function.device) << 11
            | u32::from(function.function) << 8;
        self.intx.iter().flatten().find_map(|entry| {
            (entry.address_high == address_high & self.intx_mask.0
                && entry.pin == pin & self.intx_mask.1)
                .then_some(entry.intid)
        })
    }

    /// The 32-bit memory window, where [`ensure_bar`] assigns BARs.
    pub fn window_32(&self) -> Option<Window> {
        self.windows.iter().flatten().copied().find(|w| w.below_4g)
    }

    /// The CPU address at which PCI memory address `pci` (`size` bytes) appears, if a window
    /// holds it all.
    pub fn cpu_address(&self, pci: u64, size: u64) -> Option<u64> {
        self.windows.iter().flatten().find_map(|window| {
            let offset = pci.checked_sub(window.pci)?;
            (offset.checked_add(size)? <= window.size).then(|| window.cpu + offset)
        })
    }

    /// Function `device`.`function` on `bus`, if the ECAM window covers it.
    pub fn function(&self, bus: u8, device: u8, function: u8) -> Option<Function> {
        if !(self.first_bus..=self.last_bus).contains(&bus)
            || device >= DEVICES
            || function >= FUNCTIONS
        {
            return None;
        }
        let offset = (u64::from(bus - self.first_bus) << 20)
            | (u64::from(device) << 15)
            | (u64::from(function) << 12);
        (offset + FUNCTION_SPACE <= self.ecam_size).then(|| Function {
            config: self.ecam + offset,
            bus,
            device,
            function,
        })
    }

    /// The first function on the first bus with `vendor` and `device` IDs.
    pub fn find(&self, vendor: u16, device: u16) -> Option<Function> {
        let wanted = u32::from(device) << 16 | u32::from(vendor);
        for slot in 0..DEVICES {
            let Some(first) = self.function(self.first_bus, slot, 0) else {
                continue;
            };
            if first.read32(VENDOR_DEVICE) & 0xFFFF == 0xFFFF {
                continue;
            }
            let functions = if first.read32(HEADER_TYPE_WORD) & HEADER_MULTI_FUNCTION != 0 {
                FUNCTIONS
            } else {
                1
            };
            for number in 0..functions {
                let function = self.function(self.first_bus, slot, number)?;
                if function.read32(VENDOR_DEVICE) == wanted {
                    return Some(function);
                }
            }
        }
        None
    }
}

/// One function's configuration space.
#[derive(Clone, Copy)]
pub struct Function {
    config: u64,
    /// Bus number.
    pub bus: u8,
    /// Device number.
    pub device: u8,
    /// Function number.
    pub function: u8,
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

impl Function {
    /// The 32-bit configuration word at `offset` (rounded down to a multiple of 4).
    pub fn read32(&self, offset: u16) -> u32 {
        read32(self.config + u64::from(offset & 0xFFC))
    }

    /// Writes the 32-bit configuration word at `offset` (rounded down to a multiple of 4).
    pub fn write32(&self, offset: u16, value: u32) {
        write32(self.config + u64::from(offset & 0xFFC), value);
    }

    /// The byte at `offset`, out of its 32-bit word.
    pub fn read8(&self, offset: u16) -> u8 {
        (self.read32(offset) >> (8 * (offset & 3))) as u8
    }

    /// The Command register.
    pub fn command(&self) -> u16 {
        self.read32(COMMAND_STATUS) as u16
    }

    /// Writes the Command register (the Status half written as 0: no Status bit changes).
    pub fn set_command(&self, command: u16) {
        self.write32(COMMAND_STATUS, u32::from(command));
    }

    /// Offsets of the function's capabilities, in list order, with their IDs: at most
    /// [`MAX_CAPABILITIES`], each in the header's capability area (0x40..0x100, 4-aligned).
    pub fn capabilities(&self) -> impl Iterator<Item = (u16, u8)> + '_ {
        let listed = self.read32(COMMAND_STATUS) & STATUS_CAPABILITIES != 0;
        let mut next = if listed {
            u16::from(self.read8(CAPABILITIES_POINTER) & 0xFC)
        } else {
            0
        };
        (0..MAX_CAPABILITIES).map_while(move |_| {
            if !(0x40..0x100).contains(&next) {
                return None;
            }
            let offset = next;
            let header = self.read32(offset);
            next = u16::from((header >> 8) as u8 & 0xFC);
            Some((offset, header as u8))
        })
    }

    /// BAR `index` (0..6): its kind and the address it holds.
    pub fn bar(&self, index: u8) -> Bar {
        let Some(offset) = bar_offset(index) else {
            return Bar::Absent;
        };
        let low = self.read32(offset);
        if low & BAR_IO != 0 {
            return Bar::Io;
        }
        if low & BAR_TYPE_MASK == BAR_TYPE_64 {
            let Some(high_offset) = bar_offset(index + 1) else {
                return Bar::Absent;
            };
            let high = self.read32(high_offset);
            return Bar::Memory {
                address: u64::from(high) << 32 | u64::from(low & !0xF),
                wide: true,
            };
        }
        Bar::Memory {
            address: u64::from(low & !0xF),
            wide: false,
        }
    }

    /// The size of memory BAR `index`, found by writing all ones and reading back (memory decode
    /// must be off); the BAR is left holding 0. 0 for a BAR that is not implemented.
    fn size_memory_bar(&self, index: u8, wide: bool) -> u64 {
        let (Some(low), high) = (bar_offset(index), bar_offset(index + 1)) else {
            return 0;
        };
        self.write32(low, u32::MAX);
        let mut mask = u64::from(self.read32(low) & !0xF);
        self.write32(low, 0);
        match (wide, high) {
            (true, Some(high)) => {
                self.write32(high, u32::MAX);
                mask |= u64::from(self.read32(high)) << 32;
                self.write32(high, 0);
            }
            _ => mask |= 0xFFFF_FFFF_0000_0000,
        }
        if mask & 0xFFFF_FFF0 == 0 && mask >> 32 == 0xFFFF_FFFF {
            // A 32-bit BAR that kept no bit, or a 64-bit one whose low half did not either.
            return 0;
        }
        (!mask).wrapping_add(1)
    }

    fn set_memory_bar(&self, index: u8, wide: bool, address: u64) {
        if let Some(low) = bar_offset(index) {
            self.write32(low, address as u32);
        }
        if let (true, Some(high)) = (wide, bar_offset(index + 1)) {
            self.write32(high, (address >> 32) as u32);
        }
    }
}

fn bar_offset(index: u8) -> Option<u16> {
    (index < 6).then(|| BAR0 + 4 * u16::from(index))
}

/// What a BAR is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Not there (index out of range).
    Absent,
    /// An I/O-space BAR.
    Io,
    /// A memory BAR holding PCI address `address` (0: not assigned); `wide` for a 64-bit one.
    Memory {
        /// The PCI address (type bits cleared).
        address: u64,
        /// A 64-bit BAR (it uses the next BAR's register too).
        wide: bool,
    },
}

/// Hands out naturally aligned PCI addresses from a memory window, from its bottom up.
pub struct Allocator {
    next: u64,
    end: u64,
}

impl Allocator {
    /// Addresses of `window`.
    pub fn new(window: Window) -> Self {
        Self {
            next: window.pci,
            end: window.pci.saturating_add(window.size),
        }
    }

    /// `size` bytes (a power of two) aligned to `size`.
    fn allocate(&mut self, size: u64) -> Option<u64> {
        if !size.is_power_of_two() {
            return None;
        }
        let start = self.next.checked_add(size - 1)? & !(size - 1);
        let end = start.checked_add(size)?;
        if end > self.end {
            return None;
        }
        self.next = end;
        Some(start)
    }
}

/// Why a BAR could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarError {
    /// The BAR is an I/O BAR or not there.
    NotMemory(u8),
    /// The BAR reads 0 and sizing found it unimplemented.
    Unimplemented(u8),
    /// The BAR reads 0 and the window has no room (or there is no window).
    NoRoom(u8, u64),
    /// The BAR's address is in no memory window of the host bridge.
    OutsideWindows(u8, u64),
}

impl fmt::Display for BarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMemory(index) => write!(f, "BAR{index} is not a memory BAR"),
            Self::Unimplemented(index) => write!(f, "BAR{index} is not implemented"),
            Self::NoRoom(index, size) => {
                write!(
                    f,
                    "no room for BAR{index} ({size:#x} bytes) in the 32-bit window"
                )
            }
            Self::OutsideWindows(index, address) => {
                write!(
                    f,
                    "BAR{index} at {address:#x} is in no memory window of the host"
                )
            }
        }
    }
}

/// Memory BAR `index` of `function`, as a CPU address: the address it holds, or, if it holds 0
/// (nobody assigned it: plain QEMU), a naturally aligned one from `allocator`, written into it
/// with memory decode off. Returns the CPU address and whether this call assigned it. Turning
/// memory decode on is the caller's job.
pub fn ensure_bar(
    host: &Host,
    function: &Function,
    index: u8,
    allocator: &mut Option<Allocator>,
) -> Result<(u64, bool), BarError> {
    let Bar::Memory { address, wide } = function.bar(index) else {
        return Err(BarError::NotMemory(index));
    };
    let (address, assigned) = if address != 0 {
        (address, false)
    } else {
        let command = function.command();
        function.set_command(command & !COMMAND_MEMORY);
        let size = function.size_memory_bar(index, wide);
        if size == 0 {
            function.set_command(command);
            return Err(BarError::Unimplemented(index));
        }
        let Some(address) = allocator.as_mut().and_then(|pool| pool.allocate(size)) else {
            function.set_command(command);
            return Err(BarError::NoRoom(index, size));
        };
        function.set_memory_bar(index, wide, address);
        function.set_command(command);
        (address, true)
    };
    let cpu = host
        .cpu_address(address, 1)
        .ok_or(BarError::OutsideWindows(index, address))?;
    Ok((cpu, assigned))
}
