//! Boot-time discovery of one physical function (identity, BARs, ROM, capabilities, reset
//! methods) and the stop path's quiesce and reset helpers.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::intx::IntxPin;
use super::regs::*;
use super::{Bdf, ConfigAccess, PciError, read8, read16};

/// The most capabilities a list can hold in 0x40..0x100 (one per dword); a longer walk is a loop.
pub const CAPABILITY_BOUND: usize = ((CONFIG_SPACE_SIZE - HEADER_END) / 4) as usize;

/// The kind of a BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BarKind {
    /// I/O space: recorded, never assigned or exposed.
    Io,
    /// 32-bit memory (also the legacy below-1-MiB type, placed like one).
    Memory32 {
        /// The prefetchable bit.
        prefetchable: bool,
    },
    /// 64-bit memory: this BAR and the next.
    Memory64 {
        /// The prefetchable bit.
        prefetchable: bool,
    },
}

impl BarKind {
    /// Whether this is a memory BAR.
    pub const fn is_memory(self) -> bool {
        !matches!(self, Self::Io)
    }

    /// The read-only type bits of the low BAR register (bits 3:0).
    pub const fn type_bits(self) -> u32 {
        match self {
            Self::Io => BAR_IO_SPACE,
            Self::Memory32 { prefetchable } => {
                BAR_MEMORY_TYPE_32
                    | if prefetchable {
                        BAR_MEMORY_PREFETCHABLE
                    } else {
                        0
                    }
            }
            Self::Memory64 { prefetchable } => {
                BAR_MEMORY_TYPE_64
                    | if prefetchable {
                        BAR_MEMORY_PREFETCHABLE
                    } else {
                        0
                    }
            }
        }
    }
}

/// One implemented BAR of a function, as sized at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarInfo {
    /// The BAR index, 0..6 (the low register of a 64-bit BAR).
    pub index: u8,
    /// Its kind.
    pub kind: BarKind,
    /// Its size in bytes (a power of two).
    pub size: u64,
}

/// One entry of a function's capability list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// The capability ID.
    pub id: u8,
    /// Its offset in configuration space.
    pub offset: u16,
    /// Its length in bytes where the ID defines one (power management, MSI, MSI-X, PCI Express,
    /// vendor-specific, advanced features); 2 (the ID and next pointer) otherwise.
    pub length: u16,
}

impl Capability {
    /// Whether `offset` is one of this capability's bytes.
    pub const fn contains(&self, offset: u16) -> bool {
        offset >= self.offset && offset < self.offset + self.length
    }
}

/// How a function can be reset on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlrMethod {
    /// Initiate Function Level Reset in the PCI Express capability at this offset.
    PciExpress {
        /// The capability's offset.
        capability: u16,
    },
    /// Initiate FLR in the Advanced Features capability at this offset.
    AdvancedFeatures {
        /// The capability's offset.
        capability: u16,
    },
}

/// Where a modern virtio-pci function's common configuration structure is (its first
/// `VIRTIO_PCI_CAP_COMMON_CFG` capability).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioCommonConfig {
    /// The BAR index.
    pub bar: u8,
    /// Offset of the structure in the BAR.
    pub offset: u32,
    /// Length of the structure.
    pub length: u32,
}

/// What boot-time discovery learnt about one physical function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionInfo {
    /// The physical function.
    pub bdf: Bdf,
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Revision ID.
    pub revision: u8,
    /// Class code: base class, subclass, programming interface (24 bits).
    pub class_code: u32,
    /// Subsystem vendor ID.
    pub subsystem_vendor_id: u16,
    /// Subsystem ID.
    pub subsystem_id: u16,
    /// The physical multi-function bit (the cell's view computes its own).
    pub multi_function: bool,
    /// The INTx pin, if the function uses one.
    pub interrupt_pin: Option<IntxPin>,
    /// Implemented BARs, by index.
    pub bars: Vec<BarInfo>,
    /// The expansion ROM's size, if it has one (never exposed).
    pub rom_size: Option<u64>,
    /// The capability list, in list order.
    pub capabilities: Vec<Capability>,
    /// How to reset the function on its own, if it can be.
    pub flr: Option<FlrMethod>,
    /// A modern virtio-pci function's common configuration.
    pub virtio_common: Option<VirtioCommonConfig>,
}

impl FunctionInfo {
    /// The first capability with `id`.
    pub fn capability(&self, id: u8) -> Option<&Capability> {
        self.capabilities
            .iter()
            .find(|capability| capability.id == id)
    }

    /// The memory BARs.
    pub fn memory_bars(&self) -> impl Iterator<Item = &BarInfo> {
        self.bars.iter().filter(|bar| bar.kind.is_memory())
    }

    /// Whether this is a modern (virtio 1.0) virtio-pci function.
    pub const fn is_virtio(&self) -> bool {
        self.vendor_id == VIRTIO_VENDOR_ID
            && self.device_id >= VIRTIO_MODERN_DEVICE_FIRST
            && self.device_id <= VIRTIO_MODERN_DEVICE_LAST
    }
}

/// The lowest set bit of `mask` (a BAR's size from its size mask), or `None` if `mask` is 0.
const fn size_from_mask(mask: u64) -> Option<u64> {
    if mask == 0 {
        None
    } else {
        Some(mask & mask.wrapping_neg())
    }
}

/// Writes all ones to the dword at `offset`, reads the answer back and restores the original.
fn size_probe<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    offset: u16,
    probe: u32,
) -> Result<(u32, u32), PciError> {
    let original = access.read32(bdf, offset)?;
    access.write32(bdf, offset, original | probe)?;
    let answer = access.read32(bdf, offset)?;
    access.write32(bdf, offset, original)?;
    Ok((original, answer))
}

/// Sizes the six BARs (decode must be disabled).
fn size_bars<A: ConfigAccess + ?Sized>(access: &mut A, bdf: Bdf) -> Result<Vec<BarInfo>, PciError> {
    let mut bars = Vec::new();
    let mut index = 0;
    while index < BAR_COUNT {
        let offset = BAR0 + 4 * index as u16;
        let bar_index = index as u8;
        let (original, answer) = size_probe(access, bdf, offset, u32::MAX)?;
        if original & BAR_IO_SPACE != 0 {
            let mut mask = answer & BAR_IO_ADDRESS_MASK;
            if mask != 0 && mask >> 16 == 0 {
                // A 16-bit I/O decoder: the upper half is not implemented.
                mask |= 0xffff_0000;
            }
            if let Some(size) = size_from_mask(u64::from(mask)) {
                bars.push(BarInfo {
                    index: bar_index,
                    kind: BarKind::Io,
                    size,
                });
            }
            index += 1;
            continue;
        }
        let prefetchable = original & BAR_MEMORY_PREFETCHABLE != 0;
        let low = u64::from(answer & BAR_MEMORY_ADDRESS_MASK);
        let (kind, mask) = match original & BAR_MEMORY_TYPE {
            BAR_MEMORY_TYPE_32 | BAR_MEMORY_TYPE_1M => {
                index += 1;
                (
                    BarKind::Memory32 { prefetchable },
                    if low == 0 {
                        0
                    } else {
                        low | 0xffff_ffff_0000_0000
                    },
                )
            }
            BAR_MEMORY_TYPE_64 if index + 1 < BAR_COUNT => {
                let (_, high) = size_probe(access, bdf, offset + 4, u32::MAX)?;
                index += 2;
                (
                    BarKind::Memory64 { prefetchable },
                    (u64::from(high) << 32) | low,
                )
            }
            _ => {
                return Err(PciError::BadBar {
                    bdf,
                    index: bar_index,
                });
            }
        };
        if let Some(size) = size_from_mask(mask) {
            bars.push(BarInfo {
                index: bar_index,
                kind,
                size,
            });
        }
    }
    Ok(bars)
}

/// The length of the capability `id` at `offset`, from its ID (and flags where they matter).
fn capability_length<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    id: u8,
    offset: u16,
) -> Result<u16, PciError> {
    Ok(match id {
        CAP_ID_POWER_MANAGEMENT => PM_LENGTH,
        CAP_ID_MSI => {
            let flags = read16(access, bdf, offset + MSI_FLAGS)?;
            let address = if flags & MSI_FLAGS_64BIT != 0 { 8 } else { 4 };
            let masking = if flags & MSI_FLAGS_MASKBIT != 0 {
                10
            } else {
                2
            };
            4 + address + masking
        }
        CAP_ID_MSIX => MSIX_LENGTH,
        CAP_ID_PCI_EXPRESS => {
            let flags = read16(access, bdf, offset + EXP_FLAGS)?;
            if flags & EXP_FLAGS_VERSION >= 2 {
                EXP_LENGTH
            } else {
                // Version 1 requires only the registers that apply to the function: as much of
                // the 0x24 bytes as fits.
                EXP_LENGTH_V1.min(CONFIG_SPACE_SIZE - offset)
            }
        }
        CAP_ID_VENDOR_SPECIFIC => {
            let length = u16::from(read8(access, bdf, offset + CAP_VENDOR_LENGTH)?);
            if length < 3 {
                return Err(PciError::MalformedCapability { bdf, offset });
            }
            length
        }
        CAP_ID_ADVANCED_FEATURES => AF_LENGTH,
        _ => 2,
    })
}

/// Walks the capability list, at most [`CAPABILITY_BOUND`] entries.
fn walk_capabilities<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
) -> Result<Vec<Capability>, PciError> {
    let mut capabilities: Vec<Capability> = Vec::new();
    if read16(access, bdf, STATUS)? & STATUS_CAPABILITIES_LIST == 0 {
        return Ok(capabilities);
    }
    let mut pointer = read8(access, bdf, CAPABILITY_POINTER)? & CAP_POINTER_MASK;
    while pointer != 0 {
        if capabilities.len() == CAPABILITY_BOUND {
            return Err(PciError::CapabilityLoop { bdf });
        }
        let offset = u16::from(pointer);
        if offset < HEADER_END {
            return Err(PciError::MalformedCapability { bdf, offset });
        }
        if capabilities.iter().any(|seen| seen.offset == offset) {
            return Err(PciError::CapabilityLoop { bdf });
        }
        let header = access.read32(bdf, offset)?;
        let id = header as u8;
        let length = capability_length(access, bdf, id, offset)?;
        let capability = Capability { id, offset, length };
        let overlaps = capabilities.iter().any(|other| {
            capability.offset < other.offset + other.length
                && other.offset < capability.offset + capability.length
        });
        if offset + length > CONFIG_SPACE_SIZE || overlaps {
            return Err(PciError::MalformedCapability { bdf, offset });
        }
        capabilities.push(capability);
        pointer = (header >> 8) as u8 & CAP_POINTER_MASK;
    }
    Ok(capabilities)
}

/// How the function can be reset on its own.
fn flr_method<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    capabilities: &[Capability],
) -> Result<Option<FlrMethod>, PciError> {
    for capability in capabilities {
        match capability.id {
            CAP_ID_PCI_EXPRESS
                if access.read32(bdf, capability.offset + EXP_DEVICE_CAPABILITIES)?
                    & EXP_DEVICE_CAPABILITIES_FLR
                    != 0 =>
            {
                return Ok(Some(FlrMethod::PciExpress {
                    capability: capability.offset,
                }));
            }
            CAP_ID_ADVANCED_FEATURES
                if read8(access, bdf, capability.offset + AF_CAPABILITIES)?
                    & AF_CAPABILITIES_FLR
                    != 0 =>
            {
                return Ok(Some(FlrMethod::AdvancedFeatures {
                    capability: capability.offset,
                }));
            }
            _ => {}
        }
    }
    Ok(None)
}

/// The first virtio common-configuration capability.
fn virtio_common<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    capabilities: &[Capability],
) -> Result<Option<VirtioCommonConfig>, PciError> {
    for capability in capabilities {
        if capability.id != CAP_ID_VENDOR_SPECIFIC || capability.length < 16 {
            continue;
        }
        let base = capability.offset;
        if read8(access, bdf, base + VIRTIO_CAP_CFG_TYPE)? == VIRTIO_PCI_CAP_COMMON_CFG {
            return Ok(Some(VirtioCommonConfig {
                bar: read8(access, bdf, base + VIRTIO_CAP_BAR)?,
                offset: access.read32(bdf, base + VIRTIO_CAP_OFFSET)?,
                length: access.read32(bdf, base + VIRTIO_CAP_LENGTH)?,
            }));
        }
    }
    Ok(None)
}

/// Discovers the physical function `bdf` at boot: identity, BARs (sized with decode disabled,
/// then restored), expansion ROM, capability list, INTx pin, FLR support and a virtio function's
/// common configuration.
///
/// Fails if nothing answers, on a bridge (bridges cannot be passed through) or another
/// non-endpoint header, on a malformed BAR and on a capability list that loops, points into the
/// header, runs past configuration space or overlaps itself.
pub fn probe<A: ConfigAccess + ?Sized>(access: &mut A, bdf: Bdf) -> Result<FunctionInfo, PciError> {
    let identity = access.read32(bdf, VENDOR_ID)?;
    let vendor_id = identity as u16;
    if vendor_id == 0xffff {
        return Err(PciError::NoFunction { bdf });
    }
    let header_type = read8(access, bdf, HEADER_TYPE)?;
    match header_type & HEADER_TYPE_LAYOUT {
        HEADER_LAYOUT_ENDPOINT => {}
        HEADER_LAYOUT_BRIDGE => return Err(PciError::Bridge { bdf }),
        layout => return Err(PciError::UnsupportedHeader { bdf, layout }),
    }
    let class = access.read32(bdf, REVISION_ID)?;
    let subsystem = access.read32(bdf, SUBSYSTEM_VENDOR_ID)?;

    let command = read16(access, bdf, COMMAND)?;
    let decode = COMMAND_IO_SPACE | COMMAND_MEMORY_SPACE;
    if command & decode != 0 {
        access.write16(bdf, COMMAND, command & !decode)?;
    }
    let sized = size_bars(access, bdf).and_then(|bars| {
        let (_, rom) = size_probe(access, bdf, EXPANSION_ROM, EXPANSION_ROM_ADDRESS_MASK)?;
        Ok((bars, rom))
    });
    if command & decode != 0 {
        access.write16(bdf, COMMAND, command)?;
    }
    let (bars, rom) = sized?;

    let capabilities = walk_capabilities(access, bdf)?;
    let flr = flr_method(access, bdf, &capabilities)?;
    let mut info = FunctionInfo {
        bdf,
        vendor_id,
        device_id: (identity >> 16) as u16,
        revision: class as u8,
        class_code: class >> 8,
        subsystem_vendor_id: subsystem as u16,
        subsystem_id: (subsystem >> 16) as u16,
        multi_function: header_type & HEADER_TYPE_MULTI_FUNCTION != 0,
        interrupt_pin: IntxPin::from_register(read8(access, bdf, INTERRUPT_PIN)?),
        bars,
        rom_size: size_from_mask(u64::from(rom & EXPANSION_ROM_ADDRESS_MASK)),
        capabilities,
        flr,
        virtio_common: None,
    };
    if info.is_virtio() {
        info.virtio_common = virtio_common(access, bdf, &info.capabilities)?;
    }
    Ok(info)
}

/// Clears `bits` in the Command register (a 16-bit write: Status is not touched).
fn clear_command<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    bits: u16,
) -> Result<(), PciError> {
    let command = read16(access, bdf, COMMAND)?;
    access.write16(bdf, COMMAND, command & !bits)
}

/// Stops the function's DMA: clears Bus Master in Command, leaving decode on (a virtio reset
/// through the BAR still works afterwards).
pub fn stop_dma<A: ConfigAccess + ?Sized>(access: &mut A, bdf: Bdf) -> Result<(), PciError> {
    clear_command(access, bdf, COMMAND_BUS_MASTER)
}

/// Quiesces the function for the stop path (and at boot, before the cell starts): clears Bus
/// Master, Memory Space and I/O Space in Command and the MSI / MSI-X enables the cell cannot see.
///
/// Order on the stop path: [`stop_dma`], then the reset (a virtio reset through the BAR needs
/// Memory Space; see [`virtio_reset_location`] and [`function_level_reset`]), then this.
pub fn quiesce<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    info: &FunctionInfo,
) -> Result<(), PciError> {
    clear_command(
        access,
        bdf,
        COMMAND_BUS_MASTER | COMMAND_MEMORY_SPACE | COMMAND_IO_SPACE,
    )?;
    for capability in &info.capabilities {
        let (register, enable) = match capability.id {
            CAP_ID_MSI => (capability.offset + MSI_FLAGS, MSI_FLAGS_ENABLE),
            CAP_ID_MSIX => (capability.offset + MSIX_FLAGS, MSIX_FLAGS_ENABLE),
            _ => continue,
        };
        let flags = read16(access, bdf, register)?;
        if flags & enable != 0 {
            access.write16(bdf, register, flags & !enable)?;
        }
    }
    Ok(())
}

/// Initiates a Function Level Reset if the function supports one; returns whether it did.
///
/// The caller waits 100 ms before touching the function again (PCIe base spec §6.6.2) and then
/// writes its BARs again with [`program`](super::program): an FLR clears them.
pub fn function_level_reset<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    info: &FunctionInfo,
) -> Result<bool, PciError> {
    match info.flr {
        Some(FlrMethod::PciExpress { capability }) => {
            let register = capability + EXP_DEVICE_CONTROL;
            let control = read16(access, bdf, register)?;
            access.write16(bdf, register, control | EXP_DEVICE_CONTROL_FLR)?;
            Ok(true)
        }
        Some(FlrMethod::AdvancedFeatures { capability }) => {
            access.write8(bdf, capability + AF_CONTROL, AF_CONTROL_FLR)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Where to write 0 to reset a modern virtio-pci function through its BAR: the BAR index and
/// the offset of `device_status` in it. `None` unless the function is virtio and its common
/// configuration lies inside one of its memory BARs.
pub fn virtio_reset_location(info: &FunctionInfo) -> Option<(u8, u64)> {
    let common = info.virtio_common?;
    let offset = u64::from(common.offset) + VIRTIO_COMMON_DEVICE_STATUS;
    info.memory_bars()
        .find(|bar| bar.index == common.bar)
        .filter(|bar| offset < bar.size && VIRTIO_COMMON_DEVICE_STATUS < u64::from(common.length))
        .map(|bar| (bar.index, offset))
}
