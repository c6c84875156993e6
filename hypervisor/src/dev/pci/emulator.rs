//! The cell's view of bus 0 of its ECAM window: only its functions, a header answered from what
//! was probed and assigned, a filtered capability list, and the writes the module docs list.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::assign::{AssignedBar, program};
use super::probe::{BarKind, FunctionInfo};
use super::regs::*;
use super::{Bdf, ConfigAccess, PciError, read16};
use crate::dev::mmio::{AccessWidth, MmioError};

/// The Command bits a cell controls.
const COMMAND_PASSED: u16 = COMMAND_MEMORY_SPACE | COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;

/// The Device Control bits a cell controls (see the module docs for the others).
const DEVICE_CONTROL_PASSED: u16 = EXP_DEVICE_CONTROL_RELAXED_ORDERING
    | EXP_DEVICE_CONTROL_EXTENDED_TAG
    | EXP_DEVICE_CONTROL_AUX_POWER
    | EXP_DEVICE_CONTROL_NO_SNOOP
    | EXP_DEVICE_CONTROL_READ_REQUEST
    | EXP_DEVICE_CONTROL_FLR;

/// The capabilities a cell sees.
const VISIBLE_CAPABILITIES: [u8; 3] = [
    CAP_ID_POWER_MANAGEMENT,
    CAP_ID_VENDOR_SPECIFIC,
    CAP_ID_PCI_EXPRESS,
];

/// One function of a cell: how the cell numbers it, the physical function, what probing found
/// and the BARs [`assign`](super::assign) gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CellFunction {
    /// The function as the cell sees it (bus 0).
    pub guest: Bdf,
    /// The physical function.
    pub physical: Bdf,
    /// What [`probe`](super::probe) found.
    pub info: FunctionInfo,
    /// Its memory BARs, as assigned (and programmed).
    pub bars: Vec<AssignedBar>,
}

/// What one BAR register shows the cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BarRegister {
    /// I/O or unimplemented: reads 0.
    Absent,
    /// The low (or only) register of a memory BAR.
    Low(AssignedBar),
    /// The high register of a 64-bit memory BAR.
    High(AssignedBar),
}

/// A capability the cell sees, with its rewritten next pointer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct VisibleCapability {
    id: u8,
    offset: u16,
    length: u16,
    next: u8,
}

impl VisibleCapability {
    const fn contains(&self, offset: u16) -> bool {
        offset >= self.offset && offset < self.offset + self.length
    }
}

/// The cell-visible state the model keeps (not forwarded): back to power-on by `reset`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct EmulatedState {
    cache_line_size: u8,
    interrupt_line: u8,
    /// Per BAR register: which of its four bytes were last written with 0xff.
    probe_bytes: [u8; BAR_COUNT],
}

/// How the model treats writes to one register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Register {
    /// Dropped.
    ReadOnly,
    /// A 16-bit register read-modify-written alone: `writable` bits from the cell, the other
    /// bits kept, except the `clear_on_one` (write-1-to-clear) bits, written as the cell wrote
    /// them (0 where the cell's access did not cover them).
    Masked { writable: u16, clear_on_one: u16 },
    /// Command: masked, and setting Memory Space writes the BARs again first.
    Command,
    /// BAR register `0..6`.
    Bar(usize),
    /// The emulated Cache Line Size.
    CacheLineSize,
    /// The emulated Interrupt Line.
    InterruptLine,
    /// Forwarded as written.
    Forward,
}

/// One register: where it starts, how long it is, how writes are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: u16,
    length: u16,
    register: Register,
}

const fn span(start: u16, length: u16, register: Register) -> Span {
    Span {
        start,
        length,
        register,
    }
}

#[derive(Clone, Debug)]
struct Function {
    guest: Bdf,
    physical: Bdf,
    info: FunctionInfo,
    bars: Vec<AssignedBar>,
    bar_registers: [BarRegister; BAR_COUNT],
    capabilities: Vec<VisibleCapability>,
    multi_function: bool,
    state: EmulatedState,
}

impl Function {
    fn new(function: CellFunction, multi_function: bool) -> Result<Self, PciError> {
        let CellFunction {
            guest,
            physical,
            info,
            bars,
        } = function;
        // The assigned BARs must be exactly the probed memory BARs.
        let matches = bars.len() == info.memory_bars().count()
            && info.memory_bars().all(|probed| {
                bars.iter().any(|assigned| {
                    assigned.index == probed.index
                        && assigned.kind == probed.kind
                        && assigned.size == probed.size
                })
            });
        if !matches {
            return Err(PciError::AssignmentMismatch { bdf: physical });
        }
        let mut bar_registers = [BarRegister::Absent; BAR_COUNT];
        for bar in &bars {
            let index = usize::from(bar.index);
            if let Some(register) = bar_registers.get_mut(index) {
                *register = BarRegister::Low(*bar);
            }
            if let (BarKind::Memory64 { .. }, Some(register)) =
                (bar.kind, bar_registers.get_mut(index + 1))
            {
                *register = BarRegister::High(*bar);
            }
        }
        let mut capabilities: Vec<VisibleCapability> = info
            .capabilities
            .iter()
            .filter(|capability| VISIBLE_CAPABILITIES.contains(&capability.id))
            .map(|capability| VisibleCapability {
                id: capability.id,
                offset: capability.offset,
                length: capability.length,
                next: 0,
            })
            .collect();
        let offsets: Vec<u8> = capabilities.iter().map(|c| c.offset as u8).collect();
        for (capability, next) in capabilities
            .iter_mut()
            .zip(offsets.iter().skip(1).copied().chain([0]))
        {
            capability.next = next;
        }
        Ok(Self {
            guest,
            physical,
            info,
            bars,
            bar_registers,
            capabilities,
            multi_function,
            state: EmulatedState::default(),
        })
    }

    fn first_capability(&self) -> u8 {
        self.capabilities
            .first()
            .map_or(0, |capability| capability.offset as u8)
    }

    fn capability_at(&self, offset: u16) -> Option<&VisibleCapability> {
        self.capabilities
            .iter()
            .find(|capability| capability.contains(offset))
    }

    fn header_type(&self) -> u8 {
        if self.multi_function {
            HEADER_LAYOUT_ENDPOINT | HEADER_TYPE_MULTI_FUNCTION
        } else {
            HEADER_LAYOUT_ENDPOINT
        }
    }

    fn bar_register(&self, index: usize) -> u32 {
        let probing = self.state.probe_bytes.get(index) == Some(&0xf);
        match self.bar_registers.get(index) {
            Some(BarRegister::Low(bar)) if probing => bar.low_size_mask(),
            Some(BarRegister::Low(bar)) => bar.low_register(),
            Some(BarRegister::High(bar)) if probing => bar.high_size_mask(),
            Some(BarRegister::High(bar)) => bar.high_register(),
            Some(BarRegister::Absent) | None => 0,
        }
    }

    /// The dword at `offset` (a multiple of 4, below 0x1000) as the cell sees it.
    fn read_dword<A: ConfigAccess + ?Sized>(
        &self,
        offset: u16,
        access: &mut A,
    ) -> Result<u32, PciError> {
        let info = &self.info;
        Ok(match offset {
            VENDOR_ID => u32::from(info.vendor_id) | (u32::from(info.device_id) << 16),
            COMMAND => {
                let physical = access.read32(self.physical, COMMAND)?;
                let command = physical as u16 & COMMAND_PASSED;
                let mut status = (physical >> 16) as u16 & !STATUS_CAPABILITIES_LIST;
                if !self.capabilities.is_empty() {
                    status |= STATUS_CAPABILITIES_LIST;
                }
                u32::from(command) | (u32::from(status) << 16)
            }
            REVISION_ID => u32::from(info.revision) | (info.class_code << 8),
            CACHE_LINE_SIZE => {
                u32::from(self.state.cache_line_size) | (u32::from(self.header_type()) << 16)
            }
            BAR0..CARDBUS_CIS => self.bar_register(usize::from((offset - BAR0) / 4)),
            SUBSYSTEM_VENDOR_ID => {
                u32::from(info.subsystem_vendor_id) | (u32::from(info.subsystem_id) << 16)
            }
            CAPABILITY_POINTER => u32::from(self.first_capability()),
            INTERRUPT_LINE => {
                let pin = info.interrupt_pin.map_or(0, |pin| pin.number());
                u32::from(self.state.interrupt_line) | (u32::from(pin) << 8)
            }
            HEADER_END..CONFIG_SPACE_SIZE => {
                let seen = |byte: u16| self.capability_at(offset + byte);
                if (0..4).all(|byte| seen(byte).is_none()) {
                    return Ok(0);
                }
                let physical = access.read32(self.physical, offset)?.to_le_bytes();
                let mut bytes = [0u8; 4];
                for (byte, (value, device)) in bytes.iter_mut().zip(physical).enumerate() {
                    let at = offset + byte as u16;
                    *value = match seen(byte as u16) {
                        Some(capability) if at == capability.offset + CAP_NEXT => capability.next,
                        Some(_) => device,
                        None => 0,
                    };
                }
                u32::from_le_bytes(bytes)
            }
            // CardBus CIS, the expansion ROM, the reserved dwords, extended configuration space.
            _ => 0,
        })
    }

    /// The register holding the byte at `offset` (below 0x1000).
    fn span_at(&self, offset: u16) -> Span {
        match offset {
            COMMAND..STATUS => span(COMMAND, 2, Register::Command),
            STATUS..REVISION_ID => span(
                STATUS,
                2,
                Register::Masked {
                    writable: 0,
                    clear_on_one: STATUS_RW1C,
                },
            ),
            CACHE_LINE_SIZE => span(CACHE_LINE_SIZE, 1, Register::CacheLineSize),
            BAR0..CARDBUS_CIS => {
                let index = (offset - BAR0) / 4;
                span(BAR0 + 4 * index, 4, Register::Bar(usize::from(index)))
            }
            INTERRUPT_LINE => span(INTERRUPT_LINE, 1, Register::InterruptLine),
            HEADER_END..CONFIG_SPACE_SIZE => match self.capability_at(offset) {
                Some(capability) => self.capability_span(capability, offset),
                None => span(offset, 1, Register::ReadOnly),
            },
            _ => span(offset, 1, Register::ReadOnly),
        }
    }

    /// The register of the visible `capability` holding the byte at `offset`.
    fn capability_span(&self, capability: &VisibleCapability, offset: u16) -> Span {
        let base = capability.offset;
        let relative = offset - base;
        let read_only = span(offset, 1, Register::ReadOnly);
        match capability.id {
            CAP_ID_PCI_EXPRESS => match relative {
                0x08..0x0a => span(
                    base + EXP_DEVICE_CONTROL,
                    2,
                    Register::Masked {
                        writable: DEVICE_CONTROL_PASSED,
                        clear_on_one: 0,
                    },
                ),
                0x0a..0x0c => span(
                    base + EXP_DEVICE_STATUS,
                    2,
                    Register::Masked {
                        writable: 0,
                        clear_on_one: EXP_DEVICE_STATUS_RW1C,
                    },
                ),
                _ => read_only,
            },
            CAP_ID_POWER_MANAGEMENT => match relative {
                0x04..0x06 => span(
                    base + PM_CONTROL_STATUS,
                    2,
                    Register::Masked {
                        writable: PM_CONTROL_POWER_STATE,
                        clear_on_one: PM_CONTROL_PME_STATUS,
                    },
                ),
                _ => read_only,
            },
            CAP_ID_VENDOR_SPECIFIC if self.info.vendor_id == VIRTIO_VENDOR_ID && relative >= 2 => {
                span(base + 2, capability.length - 2, Register::Forward)
            }
            _ => read_only,
        }
    }

    /// Applies the cell's write of `bytes` (little-endian, `bytes.len()` bytes at `offset`,
    /// all inside `span`).
    fn write_span<A: ConfigAccess + ?Sized>(
        &mut self,
        span: Span,
        offset: u16,
        bytes: &[u8],
        access: &mut A,
    ) -> Result<(), PciError> {
        let physical = self.physical;
        match span.register {
            Register::ReadOnly => Ok(()),
            Register::CacheLineSize => {
                self.state.cache_line_size = bytes.first().copied().unwrap_or(0);
                Ok(())
            }
            Register::InterruptLine => {
                self.state.interrupt_line = bytes.first().copied().unwrap_or(0);
                Ok(())
            }
            Register::Bar(index) => {
                if let Some(probe) = self.state.probe_bytes.get_mut(index) {
                    for (byte, value) in bytes.iter().enumerate() {
                        let bit = 1 << (usize::from(offset - span.start) + byte);
                        if *value == 0xff {
                            *probe |= bit;
                        } else {
                            *probe &= !bit;
                        }
                    }
                }
                Ok(())
            }
            Register::Command => {
                let current = read16(access, physical, COMMAND)?;
                let value = masked(current, span, offset, bytes, COMMAND_PASSED, 0);
                if value & COMMAND_MEMORY_SPACE != 0 && current & COMMAND_MEMORY_SPACE == 0 {
                    // A reset the cell caused (D3hot to D0, FLR) may have cleared the BARs.
                    program(access, physical, &self.bars)?;
                }
                access.write16(physical, COMMAND, value)
            }
            Register::Masked {
                writable,
                clear_on_one,
            } => {
                let current = read16(access, physical, span.start)?;
                let value = masked(current, span, offset, bytes, writable, clear_on_one);
                access.write16(physical, span.start, value)
            }
            Register::Forward => forward(access, physical, offset, bytes),
        }
    }
}

/// The new value of a 16-bit masked register `current` after the cell wrote `bytes` at `offset`
/// (inside `span`).
fn masked(
    current: u16,
    span: Span,
    offset: u16,
    bytes: &[u8],
    writable: u16,
    clear_on_one: u16,
) -> u16 {
    // Bytes the cell did not write keep their value, with write-1-to-clear bits written as 0.
    let mut written = (current & !clear_on_one).to_le_bytes();
    for (byte, value) in bytes.iter().enumerate() {
        if let Some(slot) = written.get_mut(usize::from(offset - span.start) + byte) {
            *slot = *value;
        }
    }
    let written = u16::from_le_bytes(written);
    let passed = writable | clear_on_one;
    (current & !passed) | (written & passed)
}

/// Writes `bytes` at `offset` of `bdf` as they are, in the widest naturally aligned pieces.
fn forward<A: ConfigAccess + ?Sized>(
    access: &mut A,
    bdf: Bdf,
    offset: u16,
    bytes: &[u8],
) -> Result<(), PciError> {
    let mut position = offset;
    let mut rest = bytes;
    while let Some(&first) = rest.first() {
        let taken = match rest {
            [a, b, c, d, ..] if position.is_multiple_of(4) => {
                access.write32(bdf, position, u32::from_le_bytes([*a, *b, *c, *d]))?;
                4
            }
            [a, b, ..] if position.is_multiple_of(2) => {
                access.write16(bdf, position, u16::from_le_bytes([*a, *b]))?;
                2
            }
            _ => {
                access.write8(bdf, position, first)?;
                1
            }
        };
        position += taken as u16;
        rest = rest.get(taken..).unwrap_or(&[]);
    }
    Ok(())
}

/// A cell's PCI bus: bus 0 of its ECAM window, holding only its functions. Build it with
/// [`PciBus::new`]; see the module docs for what each register does.
#[derive(Clone, Debug)]
pub struct PciBus {
    functions: Vec<Function>,
}

/// A checked access: the function's register offset, if the cell has the function.
enum Decoded {
    Absent,
    Present { function: usize, offset: u16 },
}

impl PciBus {
    /// The bus holding `functions`.
    ///
    /// Fails if a function is not on bus 0, two have the same guest number, a device has
    /// functions but no function 0 (Linux would not scan it), or a function's assigned BARs are
    /// not exactly its probed memory BARs.
    pub fn new(functions: Vec<CellFunction>) -> Result<Self, PciError> {
        for (position, function) in functions.iter().enumerate() {
            let guest = function.guest;
            if guest.bus() != 0 {
                return Err(PciError::GuestNotOnBusZero { guest });
            }
            if functions[..position]
                .iter()
                .any(|other| other.guest == guest)
            {
                return Err(PciError::DuplicateGuestFunction { guest });
            }
            if !functions
                .iter()
                .any(|other| other.guest.device() == guest.device() && other.guest.function() == 0)
            {
                return Err(PciError::NoFunctionZero { guest });
            }
        }
        let multi: Vec<bool> = functions
            .iter()
            .map(|function| {
                functions
                    .iter()
                    .filter(|other| other.guest.device() == function.guest.device())
                    .count()
                    > 1
            })
            .collect();
        let functions = functions
            .into_iter()
            .zip(multi)
            .map(|(function, multi)| Function::new(function, multi))
            .collect::<Result<_, _>>()?;
        Ok(Self { functions })
    }

    /// The cell's functions: (guest, physical).
    pub fn functions(&self) -> impl Iterator<Item = (Bdf, Bdf)> + '_ {
        self.functions
            .iter()
            .map(|function| (function.guest, function.physical))
    }

    fn decode(&self, offset: u64, width: AccessWidth) -> Result<Decoded, MmioError> {
        if width == AccessWidth::Doubleword {
            return Err(MmioError::BadWidth);
        }
        if !width.is_aligned(offset) {
            return Err(MmioError::Unaligned);
        }
        let Some((bdf, register)) = Bdf::from_ecam_offset(0, offset) else {
            return Ok(Decoded::Absent);
        };
        if offset >> 20 != 0 {
            return Ok(Decoded::Absent);
        }
        Ok(self
            .functions
            .iter()
            .position(|function| function.guest == bdf)
            .map_or(Decoded::Absent, |function| Decoded::Present {
                function,
                offset: register,
            }))
    }

    /// The cell reads `width` at `offset` of its ECAM window.
    ///
    /// Fails on a misaligned or 64-bit access, and with [`MmioError::DeviceAbort`] if the
    /// physical configuration read failed.
    pub fn read<A: ConfigAccess + ?Sized>(
        &self,
        offset: u64,
        width: AccessWidth,
        access: &mut A,
    ) -> Result<u64, MmioError> {
        let (function, register) = match self.decode(offset, width)? {
            Decoded::Absent => return Ok(width.mask()),
            Decoded::Present { function, offset } => (function, offset),
        };
        let function = self.functions.get(function).ok_or(MmioError::BadOffset)?;
        let dword = function.read_dword(register & !3, access)?;
        Ok(u64::from(dword >> (8 * u32::from(register & 3))) & width.mask())
    }

    /// The cell writes `value` (`width`) at `offset` of its ECAM window.
    ///
    /// Fails on a misaligned or 64-bit access, and with [`MmioError::DeviceAbort`] if a
    /// physical configuration access failed.
    pub fn write<A: ConfigAccess + ?Sized>(
        &mut self,
        offset: u64,
        width: AccessWidth,
        value: u64,
        access: &mut A,
    ) -> Result<(), MmioError> {
        let (function, register) = match self.decode(offset, width)? {
            Decoded::Absent => return Ok(()),
            Decoded::Present { function, offset } => (function, offset),
        };
        let function = self
            .functions
            .get_mut(function)
            .ok_or(MmioError::BadOffset)?;
        let bytes = value.to_le_bytes();
        let bytes = bytes.get(..width.bytes() as usize).unwrap_or(&[]);
        let end = register + bytes.len() as u16;
        let mut position = register;
        while position < end {
            let span = function.span_at(position);
            let span_end = end.min(span.start + span.length);
            let piece = bytes
                .get(usize::from(position - register)..usize::from(span_end - register))
                .unwrap_or(&[]);
            function.write_span(span, position, piece, access)?;
            position = span_end;
        }
        Ok(())
    }

    /// Puts the emulated state (size-probe latches, Cache Line Size, Interrupt Line) back to
    /// power-on. The physical functions are reset by the stop path ([`quiesce`](super::quiesce),
    /// [`function_level_reset`](super::function_level_reset)).
    pub fn reset(&mut self) {
        for function in &mut self.functions {
            function.state = EmulatedState::default();
        }
    }
}
