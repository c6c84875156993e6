//! Stopping a cell's passed-through devices before its RAM is scrubbed, reloaded or wiped: each
//! device is reset the way its board declares (`Device::reset`), so that no request still in
//! flight writes into the RAM after it was made clean.
#![forbid(unsafe_code)]

use core::fmt;

use crate::board::{Device, DeviceReset, RegisterMatch};
use crate::core::cell::Cell;
use crate::core::hardware::{DeviceAbort, Machine};
use crate::dev::mmio::AccessWidth;
use crate::dev::passthrough::VIRTIO_MMIO_STATUS;
use crate::mem::addr::PhysAddr;

/// How long a device may take to show that its reset has taken effect, in milliseconds of the
/// system counter. A virtio-mmio reset on QEMU is done when the Status write returns (QEMU drains
/// the device's requests in it); real devices are expected to settle in microseconds.
pub const QUIESCE_LIMIT_MS: u64 = 100;

/// Why a device of a stopping cell is not known to be quiet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuiesceError {
    /// The SMMU did not confirm that the stream of one of the cell's devices is blocked.
    DmaNotBlocked {
        /// The stream.
        stream: u32,
    },
    /// A PCI function did not stop.
    PciFunction(crate::core::pci::StopError),
    /// The board declares no safe reset for the device ([`DeviceReset::None`]).
    NoReset {
        /// The device.
        device: &'static str,
    },
    /// The device answered a reset access with an external abort.
    Aborted {
        /// The device.
        device: &'static str,
        /// The register accessed.
        register: PhysAddr,
    },
    /// The reset did not take effect within [`QUIESCE_LIMIT_MS`].
    TimedOut {
        /// The device.
        device: &'static str,
        /// The register polled.
        register: PhysAddr,
        /// What it read last.
        last: u32,
    },
}

impl fmt::Display for QuiesceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DmaNotBlocked { stream } => write!(
                f,
                "the SMMU did not confirm that stream {stream:#x} is blocked: its device may \
                 still write the cell's RAM"
            ),
            Self::PciFunction(error) => write!(f, "{error}: it may still write the cell's RAM"),
            Self::NoReset { device } => write!(
                f,
                "device {device} has no safe reset (the board declares none), so it could still \
                 write the cell's RAM"
            ),
            Self::Aborted { device, register } => write!(
                f,
                "device {device} aborted its reset access at {:#x}: it may still write the cell's \
                 RAM",
                register.raw()
            ),
            Self::TimedOut {
                device,
                register,
                last,
            } => write!(
                f,
                "device {device} did not reset within {QUIESCE_LIMIT_MS} ms (register {:#x} reads \
                 {last:#x}): it may still write the cell's RAM",
                register.raw()
            ),
        }
    }
}

impl Cell {
    /// The first of the cell's devices that has no safe reset ([`DeviceReset::None`]): the cell
    /// may not be restarted, started or wiped, since its RAM could not be made clean.
    pub fn device_without_reset(&self) -> Option<&'static str> {
        self.devices
            .passthrough()
            .devices()
            .iter()
            .find(|device| device.reset == DeviceReset::None)
            .map(|device| device.name)
    }
}

/// Blocks the DMA of `cell`'s streams at the SMMU and resets every passed-through device and PCI
/// function of it, waiting (bounded) until each reset has taken effect. A failure does not stop
/// the rest: every other device is still blocked and reset, so one device without a reset cannot
/// leave the others running; the first failure is returned, any later ones are logged. Only the cell's own windows are written, even
/// where they share a page with another cell's device. A device whose board accepts the risk
/// ([`DeviceReset::UnsafeAccepted`]) is left alone with a WARN line naming `what` (the step
/// about to happen: `restart`, `wipe`, ...).
pub fn quiesce_devices<M: Machine + ?Sized>(
    cell: &Cell,
    what: &str,
    machine: &mut M,
) -> Result<(), QuiesceError> {
    let mut failures = Failures::new(cell);
    // First the SMMU: from here on nothing the devices still do reaches memory.
    for &stream in cell.dma_streams() {
        failures.note(
            machine
                .dma_block(stream, cell.plan().vmid)
                .map_err(|_| QuiesceError::DmaNotBlocked { stream }),
        );
    }
    if let Some(pci) = cell.devices.pci() {
        for (function, reset) in &pci.functions {
            failures.note(
                crate::core::pci::stop(pci.physical_ecam, *reset, function, machine)
                    .map_err(QuiesceError::PciFunction),
            );
        }
    }
    for device in cell.devices.passthrough().devices() {
        failures.note(reset_device(cell, device, what, machine));
    }
    failures.first.map_or(Ok(()), Err)
}

/// The failures of one [`quiesce_devices`]: the first is kept for the caller, later ones logged.
struct Failures<'a> {
    cell: &'a Cell,
    first: Option<QuiesceError>,
}

impl<'a> Failures<'a> {
    fn new(cell: &'a Cell) -> Self {
        Self { cell, first: None }
    }

    fn note(&mut self, result: Result<(), QuiesceError>) {
        if let Err(error) = result {
            if self.first.is_none() {
                self.first = Some(error);
            } else {
                log::error!("cell {}: also, {error}", self.cell.name());
            }
        }
    }
}

/// Resets one passed-through device of `cell` (see [`quiesce_devices`]).
fn reset_device<M: Machine + ?Sized>(
    cell: &Cell,
    device: &Device,
    what: &str,
    machine: &mut M,
) -> Result<(), QuiesceError> {
    match device.reset {
        DeviceReset::VirtioMmio => {
            for window in device.mmio {
                let status = PhysAddr::new(window.base + VIRTIO_MMIO_STATUS);
                write(device, status, 0, machine)?;
                let settled = RegisterMatch {
                    offset: VIRTIO_MMIO_STATUS,
                    mask: u32::MAX,
                    value: 0,
                };
                wait_for(device, window.base, settled, machine)?;
            }
        }
        DeviceReset::RegisterWrite {
            window,
            offset,
            value,
            settled,
        } => {
            // `check_reset` (at boot) made sure the window exists and holds both registers.
            let Some(window) = device.mmio.get(window) else {
                return Err(QuiesceError::NoReset {
                    device: device.name,
                });
            };
            write(device, PhysAddr::new(window.base + offset), value, machine)?;
            if let Some(settled) = settled {
                wait_for(device, window.base, settled, machine)?;
            }
        }
        DeviceReset::None => {
            return Err(QuiesceError::NoReset {
                device: device.name,
            });
        }
        // Stopped through the SMMU and its configuration space (`quiesce_pci_functions`).
        DeviceReset::PciFunction => {}
        DeviceReset::UnsafeAccepted => log::warn!(
            "cell {}: device {} has no safe reset and is not stopped; the board accepts that \
                 it may write the cell's RAM after the {what}",
            cell.name(),
            device.name
        ),
    }
    Ok(())
}

fn write<M: Machine + ?Sized>(
    device: &Device,
    register: PhysAddr,
    value: u32,
    machine: &mut M,
) -> Result<(), QuiesceError> {
    machine
        .device_write(register, AccessWidth::Word, u64::from(value))
        .map_err(|DeviceAbort| QuiesceError::Aborted {
            device: device.name,
            register,
        })
}

/// Reads `settled` in the window at `base` until it matches, for at most [`QUIESCE_LIMIT_MS`].
fn wait_for<M: Machine + ?Sized>(
    device: &Device,
    base: u64,
    settled: RegisterMatch,
    machine: &mut M,
) -> Result<(), QuiesceError> {
    let register = PhysAddr::new(base + settled.offset);
    let (start, frequency) = machine.counter();
    let limit = frequency / 1000 * QUIESCE_LIMIT_MS;
    loop {
        let read = machine
            .device_read(register, AccessWidth::Word)
            .map_err(|DeviceAbort| QuiesceError::Aborted {
                device: device.name,
                register,
            })?;
        // A word read: the upper half is zero.
        let last = read as u32;
        if last & settled.mask == settled.value {
            return Ok(());
        }
        if machine.counter().0.wrapping_sub(start) > limit {
            return Err(QuiesceError::TimedOut {
                device: device.name,
                register,
                last,
            });
        }
        core::hint::spin_loop();
    }
}
