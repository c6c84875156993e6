//! The cells' PCI functions at run time: discovered, placed and programmed once at boot, their
//! configuration space filtered per cell ([`crate::dev::pci::PciBus`] behind the cell's ECAM
//! window), and stopped on the cell's stop path after the SMMU has blocked their DMA.
//!
//! Physical configuration accesses go through [`Machine::device_read`]/[`Machine::device_write`]
//! at the host's ECAM (mapped Device-nGnRE in EL2, in no cell), so a function that answers with
//! an external abort costs the access, not cellvisor.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

use crate::board::{PciFunction, PciHost, PciReset};
use crate::core::hardware::Machine;
use crate::dev::mmio::AccessWidth;
use crate::dev::pci::regs::{COMMAND, COMMAND_MEMORY_SPACE};
use crate::dev::pci::{
    self, AssignedBar, Bdf, CellFunction, ConfigAccess, IntxPin, PciError, function_level_reset,
    stop_dma, virtio_reset_location,
};
use crate::mem::addr::PhysAddr;

/// How long a function may take to show its reset took effect, in milliseconds.
pub const RESET_LIMIT_MS: u64 = 100;
/// How long a Function Level Reset takes before the function may be accessed again (PCIe base
/// specification, 6.6.2).
pub const FLR_WAIT_MS: u64 = 100;

/// The physical ECAM of `host` through the machine.
pub struct Ecam<'a, M: Machine + ?Sized> {
    machine: &'a mut M,
    base: u64,
}

impl<'a, M: Machine + ?Sized> Ecam<'a, M> {
    /// The ECAM of `host`.
    pub fn new(machine: &'a mut M, host: &PciHost) -> Self {
        Self::at(machine, host.ecam.base)
    }

    /// The ECAM whose bus 0 is at physical address `base`.
    pub fn at(machine: &'a mut M, base: u64) -> Self {
        Self { machine, base }
    }

    fn address(&self, bdf: Bdf, offset: u16) -> PhysAddr {
        PhysAddr::new(self.base + bdf.ecam_offset() + u64::from(offset & 0xfff))
    }

    fn write(
        &mut self,
        bdf: Bdf,
        offset: u16,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), PciError> {
        let address = self.address(bdf, offset);
        self.machine
            .device_write(address, width, value)
            .map_err(|_| PciError::Access { bdf, offset })
    }
}

impl<M: Machine + ?Sized> ConfigAccess for Ecam<'_, M> {
    fn read32(&mut self, bdf: Bdf, offset: u16) -> Result<u32, PciError> {
        let address = self.address(bdf, offset);
        self.machine
            .device_read(address, AccessWidth::Word)
            .map(|value| value as u32)
            .map_err(|_| PciError::Access { bdf, offset })
    }

    fn write32(&mut self, bdf: Bdf, offset: u16, value: u32) -> Result<(), PciError> {
        self.write(bdf, offset, AccessWidth::Word, u64::from(value))
    }

    fn write16(&mut self, bdf: Bdf, offset: u16, value: u16) -> Result<(), PciError> {
        self.write(bdf, offset, AccessWidth::Halfword, u64::from(value))
    }

    fn write8(&mut self, bdf: Bdf, offset: u16, value: u8) -> Result<(), PciError> {
        self.write(bdf, offset, AccessWidth::Byte, u64::from(value))
    }
}

/// Why a board PCI function cannot be given to its cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PciSetupError {
    /// The board's address is not a PCI function address.
    BadAddress {
        /// The function.
        function: &'static str,
    },
    /// Discovery, placement or programming failed.
    Pci {
        /// The function.
        function: &'static str,
        /// What failed.
        error: PciError,
    },
    /// The function's Interrupt Pin register is not what the board says.
    PinMismatch {
        /// The function.
        function: &'static str,
        /// What the board says (1 = INTA).
        board: u8,
        /// What the function reads (0 = none).
        device: u8,
    },
    /// The board resets the function in a way it does not support.
    NoReset {
        /// The function.
        function: &'static str,
        /// The board's reset.
        reset: PciReset,
    },
}

impl fmt::Display for PciSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress { function } => write!(
                f,
                "PCI function {function}: its board address is not a device/function number \
                 (device < 32, function < 8): fix it in the board crate"
            ),
            Self::Pci { function, error } => write!(f, "PCI function {function}: {error}"),
            Self::PinMismatch {
                function,
                board,
                device,
            } => write!(
                f,
                "PCI function {function}: the board says interrupt pin {board}, the function's \
                 Interrupt Pin register reads {device}: fix interrupt_pin in the board crate"
            ),
            Self::NoReset { function, reset } => write!(
                f,
                "PCI function {function}: the board resets it by {reset:?}, which it does not \
                 support (no Function Level Reset capability, or no virtio common configuration \
                 in a memory BAR): choose the reset it has in the board crate"
            ),
        }
    }
}

/// The physical address of PCI function `function`.
pub fn bdf_of(function: &PciFunction) -> Result<Bdf, PciSetupError> {
    let address = function.address;
    Bdf::new(address.bus, address.device, address.function).ok_or(PciSetupError::BadAddress {
        function: function.name,
    })
}

/// Discovers each of the cell's PCI functions, packs its memory BARs into its board window,
/// programs them and leaves the function quiet (no decode, no Bus Master, no MSI): what the cell's
/// [`PciBus`](crate::dev::pci::PciBus) is built from. Runs once, at boot.
pub fn prepare<M: Machine + ?Sized>(
    host: &PciHost,
    functions: &[&'static PciFunction],
    machine: &mut M,
) -> Result<Vec<CellFunction>, PciSetupError> {
    let mut ecam = Ecam::new(machine, host);
    let mut prepared = Vec::with_capacity(functions.len());
    for function in functions {
        let name = function.name;
        let bdf = bdf_of(function)?;
        let pci = |error| PciSetupError::Pci {
            function: name,
            error,
        };
        let info = pci::probe(&mut ecam, bdf).map_err(pci)?;
        let device_pin = info.interrupt_pin.map_or(0, IntxPin::number);
        if device_pin != function.interrupt_pin {
            return Err(PciSetupError::PinMismatch {
                function: name,
                board: function.interrupt_pin,
                device: device_pin,
            });
        }
        let supported = match function.reset {
            PciReset::FunctionLevel => info.flr.is_some(),
            PciReset::Virtio => virtio_reset_location(&info).is_some(),
        };
        if !supported {
            return Err(PciSetupError::NoReset {
                function: name,
                reset: function.reset,
            });
        }
        let bars = pci::assign(&info, function.bar_window).map_err(pci)?;
        pci::quiesce(&mut ecam, bdf, &info).map_err(pci)?;
        pci::program(&mut ecam, bdf, &bars).map_err(pci)?;
        prepared.push(CellFunction {
            guest: bdf,
            physical: bdf,
            info,
            bars,
        });
    }
    Ok(prepared)
}

/// Why one of a stopping cell's PCI functions is not known to be quiet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StopError {
    /// The function (physical address).
    pub function: Bdf,
    /// What went wrong.
    pub reason: StopFailure,
}

/// What went wrong stopping a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StopFailure {
    /// A configuration or BAR access failed.
    Access(PciError),
    /// The virtio `device_status` register in the function's BAR answered with an abort.
    BarAborted {
        /// The register.
        address: u64,
    },
    /// The virtio `device_status` did not read 0 within [`RESET_LIMIT_MS`].
    ResetTimedOut {
        /// What it read last.
        last: u8,
    },
    /// The function has neither the reset the board named nor another.
    NoReset,
}

impl fmt::Display for StopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let function = self.function;
        match &self.reason {
            StopFailure::Access(error) => write!(f, "PCI {function} did not stop: {error}"),
            StopFailure::BarAborted { address } => write!(
                f,
                "PCI {function} aborted its reset at {address:#x} (virtio device_status)"
            ),
            StopFailure::ResetTimedOut { last } => write!(
                f,
                "PCI {function} did not reset within {RESET_LIMIT_MS} ms (device_status reads \
                 {last:#x})"
            ),
            StopFailure::NoReset => write!(f, "PCI {function} has no reset"),
        }
    }
}

/// Waits `milliseconds` of the system counter.
fn wait_ms<M: Machine + ?Sized>(machine: &mut M, milliseconds: u64) {
    let (start, frequency) = machine.counter();
    let ticks = frequency / 1000 * milliseconds;
    while machine.counter().0.wrapping_sub(start) < ticks {
        core::hint::spin_loop();
    }
}

/// Stops one function of a stopping cell, whose SMMU stream is already blocked: Bus Master off,
/// then the board's reset (a virtio reset through the BAR, or an FLR after which the BARs are
/// written again), then no decode and no MSI. The cell's next instance finds the function as
/// [`prepare`] left it.
pub fn stop<M: Machine + ?Sized>(
    ecam: u64,
    reset: PciReset,
    function: &CellFunction,
    machine: &mut M,
) -> Result<(), StopError> {
    let bdf = function.physical;
    let fail = |reason| StopError {
        function: bdf,
        reason,
    };
    let access = |error| fail(StopFailure::Access(error));
    stop_dma(&mut Ecam::at(machine, ecam), bdf).map_err(access)?;
    match reset {
        PciReset::Virtio => {
            let (bar, offset) =
                virtio_reset_location(&function.info).ok_or_else(|| fail(StopFailure::NoReset))?;
            let Some(assigned) = function.bars.iter().find(|assigned| assigned.index == bar) else {
                return Err(fail(StopFailure::NoReset));
            };
            virtio_reset(ecam, bdf, assigned, offset, machine).map_err(fail)?;
        }
        PciReset::FunctionLevel => {
            let started = function_level_reset(&mut Ecam::at(machine, ecam), bdf, &function.info)
                .map_err(access)?;
            if !started {
                return Err(fail(StopFailure::NoReset));
            }
            wait_ms(machine, FLR_WAIT_MS);
            pci::program(&mut Ecam::at(machine, ecam), bdf, &function.bars).map_err(access)?;
        }
    }
    pci::quiesce(&mut Ecam::at(machine, ecam), bdf, &function.info).map_err(access)
}

/// Writes 0 to the virtio common configuration's `device_status` (byte `offset` into `bar`) and
/// waits, bounded, until it reads 0: the device has dropped every request (virtio 1.2, 4.1.4.3).
/// Memory Space is turned on for it (Bus Master stays off): the cell may have left it off.
fn virtio_reset<M: Machine + ?Sized>(
    ecam: u64,
    bdf: Bdf,
    bar: &AssignedBar,
    offset: u64,
    machine: &mut M,
) -> Result<(), StopFailure> {
    Ecam::at(machine, ecam)
        .write16(bdf, COMMAND, COMMAND_MEMORY_SPACE)
        .map_err(StopFailure::Access)?;
    let register = PhysAddr::new(bar.address + offset);
    let failed = |_| StopFailure::BarAborted {
        address: register.raw(),
    };
    machine
        .device_write(register, AccessWidth::Byte, 0)
        .map_err(failed)?;
    let (start, frequency) = machine.counter();
    let limit = frequency / 1000 * RESET_LIMIT_MS;
    loop {
        let status = machine
            .device_read(register, AccessWidth::Byte)
            .map_err(failed)? as u8;
        if status == 0 {
            return Ok(());
        }
        if machine.counter().0.wrapping_sub(start) > limit {
            return Err(StopFailure::ResetTimedOut { last: status });
        }
        core::hint::spin_loop();
    }
}
