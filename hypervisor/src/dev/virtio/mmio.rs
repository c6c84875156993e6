//! The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2): the register file a guest's
//! `virtio_mmio` driver programs, in a 0x200-byte window.
#![forbid(unsafe_code)]
//!
//! Registers 0x000 to 0x0FF are 32 bits wide and must be accessed with aligned 32-bit loads and
//! stores (other widths: [`MmioError::BadWidth`], misaligned: [`MmioError::Unaligned`]).
//! Write-only registers read as zero and stores to read-only or reserved registers are ignored.
//! The device configuration space at 0x100 to 0x1FF takes aligned 8-, 16- and 32-bit accesses and
//! is the device's ([`VirtioDevice::config_read`]). Offsets from 0x200 on are
//! [`MmioError::BadOffset`].
//!
//! A [`VirtioError`] from a queue (a guest that broke a ring) puts the device in the failed
//! state: Status gets DEVICE_NEEDS_RESET, InterruptStatus its configuration-change bit, no
//! queue is served until the driver writes 0 to Status, and the error waits in
//! [`VirtioMmio::take_error`] for the caller to log.

use alloc::vec::Vec;

use super::{F_VERSION_1, GuestMemory, TRANSPORT_FEATURES, VirtioDevice, VirtioError, Virtqueue};
use crate::dev::mmio::{AccessWidth, MmioError};

/// MagicValue: "virt" in little-endian.
pub const MAGIC: u32 = 0x7472_6976;
/// Version: 2, the modern (virtio 1.x) interface.
pub const VERSION: u32 = 2;
/// VendorID: "CEVL" little-endian (0x4c564543), cellvisor's own; drivers do not match on it.
pub const VENDOR_ID: u32 = 0x4c56_4543;
/// QueueNumMax of [`VirtioMmio::new`].
pub const DEFAULT_QUEUE_MAX: u16 = 64;
/// Size of the register window.
pub const WINDOW: u64 = 0x200;
/// Start of the device configuration space.
pub const CONFIG: u64 = 0x100;

/// Register offsets.
pub mod offset {
    /// MagicValue (R).
    pub const MAGIC_VALUE: u64 = 0x000;
    /// Version (R).
    pub const VERSION: u64 = 0x004;
    /// DeviceID (R).
    pub const DEVICE_ID: u64 = 0x008;
    /// VendorID (R).
    pub const VENDOR_ID: u64 = 0x00c;
    /// DeviceFeatures (R).
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// DeviceFeaturesSel (W).
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// DriverFeatures (W).
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// DriverFeaturesSel (W).
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// QueueSel (W).
    pub const QUEUE_SEL: u64 = 0x030;
    /// QueueNumMax (R).
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// QueueNum (W).
    pub const QUEUE_NUM: u64 = 0x038;
    /// QueueReady (RW).
    pub const QUEUE_READY: u64 = 0x044;
    /// QueueNotify (W).
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// InterruptStatus (R).
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// InterruptACK (W).
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// Status (RW).
    pub const STATUS: u64 = 0x070;
    /// QueueDescLow (W).
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// QueueDescHigh (W).
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// QueueDriverLow (W).
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// QueueDriverHigh (W).
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// QueueDeviceLow (W).
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// QueueDeviceHigh (W).
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// SHMLenLow (R): no shared memory regions, so all ones.
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// SHMLenHigh (R): all ones.
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// SHMBaseLow (R): all ones.
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// SHMBaseHigh (R): all ones.
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// ConfigGeneration (R).
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

/// Device status bits (virtio 1.2 §2.1).
pub mod status {
    /// ACKNOWLEDGE: the guest found the device.
    pub const ACKNOWLEDGE: u32 = 1;
    /// DRIVER: the guest has a driver for it.
    pub const DRIVER: u32 = 2;
    /// DRIVER_OK: the driver is set up and the device may be used.
    pub const DRIVER_OK: u32 = 4;
    /// FEATURES_OK: the driver's features were accepted.
    pub const FEATURES_OK: u32 = 8;
    /// DEVICE_NEEDS_RESET: the device failed and must be reset.
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
    /// FAILED: the driver gave up on the device.
    pub const FAILED: u32 = 0x80;
}

/// InterruptStatus bit: used buffers were added to a queue.
pub const INTERRUPT_USED: u32 = 1;
/// InterruptStatus bit: the configuration changed (or the device needs a reset).
pub const INTERRUPT_CONFIG: u32 = 2;

/// A virtio device behind its virtio-mmio register file.
#[derive(Debug)]
pub struct VirtioMmio<D: VirtioDevice> {
    device: D,
    queues: Vec<Virtqueue>,
    queue_max: u16,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    interrupt_status: u32,
    status: u32,
    config_generation: u32,
    error: Option<VirtioError>,
}

impl<D: VirtioDevice> VirtioMmio<D> {
    /// `device` behind a transport whose queues are at most [`DEFAULT_QUEUE_MAX`] entries.
    pub fn new(device: D) -> Self {
        Self::with_queue_max(device, DEFAULT_QUEUE_MAX)
    }

    /// `device` behind a transport whose queues are at most `queue_max` entries (rounded down to
    /// a power of two, 1 to 32768). The device is reset.
    pub fn with_queue_max(device: D, queue_max: u16) -> Self {
        let queue = Virtqueue::new(queue_max);
        let queue_max = queue.max_size();
        let queues = (0..device.queue_count()).map(|_| queue.clone()).collect();
        let mut transport = Self {
            device,
            queues,
            queue_max,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            interrupt_status: 0,
            status: 0,
            config_generation: 0,
            error: None,
        };
        transport.reset();
        transport
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutable (to feed it events; queue work goes through [`VirtioMmio::run`]).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The queues, as the driver configured them.
    pub fn queues(&self) -> &[Virtqueue] {
        &self.queues
    }

    /// The feature bits offered: the device's, without transport bits, plus VERSION_1.
    pub fn offered_features(&self) -> u64 {
        (self.device.features() & !TRANSPORT_FEATURES) | F_VERSION_1
    }

    /// The feature bits the driver accepted (meaningful once FEATURES_OK is set).
    pub fn driver_features(&self) -> u64 {
        self.driver_features
    }

    /// The Status register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The InterruptStatus register.
    pub fn interrupt_status(&self) -> u32 {
        self.interrupt_status
    }

    /// The level of the device's interrupt line: InterruptStatus is not zero.
    pub fn interrupt_level(&self) -> bool {
        self.interrupt_status != 0
    }

    /// Signals used buffers (InterruptStatus bit 0).
    pub fn raise_used(&mut self) {
        self.interrupt_status |= INTERRUPT_USED;
    }

    /// Signals a configuration change (InterruptStatus bit 1, ConfigGeneration advances).
    pub fn raise_config_change(&mut self) {
        self.config_generation = self.config_generation.wrapping_add(1);
        self.interrupt_status |= INTERRUPT_CONFIG;
    }

    /// Whether the driver has the device running: DRIVER_OK set and DEVICE_NEEDS_RESET not.
    pub fn is_live(&self) -> bool {
        self.status & status::DRIVER_OK != 0 && self.status & status::DEVICE_NEEDS_RESET == 0
    }

    /// The error that put the device in the failed state, once (for the caller's log).
    pub fn take_error(&mut self) -> Option<VirtioError> {
        self.error.take()
    }

    /// Power-on state (a cell restart): the device and every queue reset, every register
    /// cleared, no recorded error.
    pub fn reset(&mut self) {
        self.reset_device();
        self.error = None;
        self.config_generation = 0;
    }

    /// The device reset a driver asks for by writing 0 to Status.
    fn reset_device(&mut self) {
        self.device.reset();
        for queue in &mut self.queues {
            queue.reset();
        }
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.queue_sel = 0;
        self.interrupt_status = 0;
        self.status = 0;
    }

    /// Enters the failed state for `error`.
    fn fail(&mut self, error: VirtioError) {
        if self.error.is_none() {
            self.error = Some(error);
        }
        // The specification asks for a configuration-change notification; the configuration
        // itself did not change, so ConfigGeneration stays.
        self.status |= status::DEVICE_NEEDS_RESET;
        self.interrupt_status |= INTERRUPT_CONFIG;
    }

    /// Runs queue work for an event from outside the guest (a key press): `work` gets the
    /// device, the queues and the guest's memory, and answers as [`VirtioDevice::notify`] does.
    /// Nothing runs unless the device [`is_live`](Self::is_live). `Ok(true)` raises the
    /// used-buffer interrupt, `Err` puts the device in the failed state. Returns whether used
    /// buffers were added.
    pub fn run(
        &mut self,
        memory: &mut dyn GuestMemory,
        work: impl FnOnce(&mut D, &mut [Virtqueue], &mut dyn GuestMemory) -> Result<bool, VirtioError>,
    ) -> bool {
        if !self.is_live() {
            return false;
        }
        match work(&mut self.device, &mut self.queues, memory) {
            Ok(true) => {
                self.raise_used();
                true
            }
            Ok(false) => false,
            Err(error) => {
                self.fail(error);
                false
            }
        }
    }

    fn selected_queue(&self) -> Option<&Virtqueue> {
        usize::try_from(self.queue_sel)
            .ok()
            .and_then(|index| self.queues.get(index))
    }

    fn selected_queue_mut(&mut self) -> Option<&mut Virtqueue> {
        usize::try_from(self.queue_sel)
            .ok()
            .and_then(|index| self.queues.get_mut(index))
    }

    /// A guest load of `width` at `offset` in the window.
    pub fn read(&mut self, offset: u64, width: AccessWidth) -> Result<u32, MmioError> {
        if offset >= WINDOW {
            return Err(MmioError::BadOffset);
        }
        if offset >= CONFIG {
            check_config_access(offset, width)?;
            return Ok(self.device.config_read(offset - CONFIG, width));
        }
        check_register_access(offset, width)?;
        let high = |value: u64| (value >> 32) as u32;
        Ok(match offset {
            offset::MAGIC_VALUE => MAGIC,
            offset::VERSION => VERSION,
            offset::DEVICE_ID => self.device.device_id(),
            offset::VENDOR_ID => VENDOR_ID,
            offset::DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => high(self.offered_features()),
                _ => 0,
            },
            offset::QUEUE_NUM_MAX => self
                .selected_queue()
                .map_or(0, |queue| u32::from(queue.max_size())),
            offset::QUEUE_READY => self
                .selected_queue()
                .map_or(0, |queue| u32::from(queue.ready())),
            offset::INTERRUPT_STATUS => self.interrupt_status,
            offset::STATUS => self.status,
            offset::SHM_LEN_LOW
            | offset::SHM_LEN_HIGH
            | offset::SHM_BASE_LOW
            | offset::SHM_BASE_HIGH => u32::MAX,
            offset::CONFIG_GENERATION => self.config_generation,
            _ => 0,
        })
    }

    /// A guest store of `value` (`width`) at `offset` in the window; a QueueNotify runs the
    /// device's queue work on `memory`.
    pub fn write(
        &mut self,
        offset: u64,
        width: AccessWidth,
        value: u32,
        memory: &mut dyn GuestMemory,
    ) -> Result<(), MmioError> {
        if offset >= WINDOW {
            return Err(MmioError::BadOffset);
        }
        if offset >= CONFIG {
            check_config_access(offset, width)?;
            self.device.config_write(offset - CONFIG, width, value);
            return Ok(());
        }
        check_register_access(offset, width)?;
        let features_open = self.status & status::FEATURES_OK == 0;
        match offset {
            offset::DEVICE_FEATURES_SEL => self.device_features_sel = value,
            offset::DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            offset::DRIVER_FEATURES if features_open => match self.driver_features_sel {
                0 => {
                    self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(value);
                }
                1 => {
                    self.driver_features =
                        (self.driver_features & 0xffff_ffff) | (u64::from(value) << 32);
                }
                _ => {}
            },
            offset::QUEUE_SEL => self.queue_sel = value,
            offset::QUEUE_NUM => {
                if let Some(queue) = self.selected_queue_mut() {
                    queue.set_size(value);
                }
            }
            offset::QUEUE_READY => self.write_queue_ready(value),
            offset::QUEUE_DESC_LOW
            | offset::QUEUE_DESC_HIGH
            | offset::QUEUE_DRIVER_LOW
            | offset::QUEUE_DRIVER_HIGH
            | offset::QUEUE_DEVICE_LOW
            | offset::QUEUE_DEVICE_HIGH => self.write_queue_address(offset, value),
            offset::QUEUE_NOTIFY => self.notify(value, memory),
            offset::INTERRUPT_ACK => self.interrupt_status &= !value,
            offset::STATUS => self.write_status(value),
            _ => {}
        }
        Ok(())
    }

    fn write_queue_ready(&mut self, value: u32) {
        let Some(queue) = self.selected_queue_mut() else {
            return;
        };
        if let Err(error) = queue.set_ready(value & 1 != 0) {
            self.fail(error);
        }
    }

    fn write_queue_address(&mut self, offset: u64, value: u32) {
        let Some(queue) = self.selected_queue_mut() else {
            return;
        };
        let merge = |old: u64| {
            if offset & 4 == 0 {
                (old & !0xffff_ffff) | u64::from(value)
            } else {
                (old & 0xffff_ffff) | (u64::from(value) << 32)
            }
        };
        match offset & !4 {
            offset::QUEUE_DESC_LOW => queue.set_desc_table(merge(queue.desc_table())),
            offset::QUEUE_DRIVER_LOW => queue.set_driver_area(merge(queue.driver_area())),
            _ => queue.set_device_area(merge(queue.device_area())),
        }
    }

    fn write_status(&mut self, value: u32) {
        if value == 0 {
            self.reset_device();
            return;
        }
        // DEVICE_NEEDS_RESET is the device's: the driver neither sets nor clears it.
        let mut new =
            (value & !status::DEVICE_NEEDS_RESET) | (self.status & status::DEVICE_NEEDS_RESET);
        let had_features_ok = self.status & status::FEATURES_OK != 0;
        if new & status::FEATURES_OK != 0 && !had_features_ok {
            let offered = self.offered_features();
            let acceptable =
                self.driver_features & !offered == 0 && self.driver_features & F_VERSION_1 != 0;
            if !acceptable {
                new &= !status::FEATURES_OK;
            }
        }
        if new & status::FEATURES_OK == 0 {
            // No DRIVER_OK without accepted features.
            new &= !status::DRIVER_OK;
        }
        self.status = new;
    }

    fn notify(&mut self, value: u32, memory: &mut dyn GuestMemory) {
        if !self.is_live() {
            return;
        }
        let index = usize::try_from(value).unwrap_or(usize::MAX);
        let Some(queue) = self.queues.get(index) else {
            self.fail(VirtioError::NoSuchQueue);
            return;
        };
        if !queue.ready() {
            self.fail(VirtioError::QueueNotReady);
            return;
        }
        self.run(memory, |device, queues, memory| {
            device.notify(index, queues, memory)
        });
    }

    /// QueueNumMax of every queue.
    pub fn queue_max(&self) -> u16 {
        self.queue_max
    }
}

fn check_register_access(offset: u64, width: AccessWidth) -> Result<(), MmioError> {
    if width != AccessWidth::Word {
        return Err(MmioError::BadWidth);
    }
    if !width.is_aligned(offset) {
        return Err(MmioError::Unaligned);
    }
    Ok(())
}

fn check_config_access(offset: u64, width: AccessWidth) -> Result<(), MmioError> {
    if width == AccessWidth::Doubleword {
        return Err(MmioError::BadWidth);
    }
    if !width.is_aligned(offset) {
        return Err(MmioError::Unaligned);
    }
    Ok(())
}
