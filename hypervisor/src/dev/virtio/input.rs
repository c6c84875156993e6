//! The virtio-input device (virtio 1.2 §5.8): a physical input device's events forwarded to a
//! cell, which sees the device's identity and capabilities as the physical driver read them.
#![forbid(unsafe_code)]
//!
//! Queue 0 (eventq) takes device-writable buffers of at least 8 bytes, each of which receives
//! one event; queue 1 (statusq) brings LED and similar events from the guest, which are consumed
//! and ignored. Events that arrive while the guest has posted no buffer wait in a ring of
//! [`PENDING_CAPACITY`] events; when it is full, further events are dropped and counted.
//!
//! The configuration space: u8 select @0, u8 subsel @1, u8 size @2, 5 reserved bytes, and a
//! 128-byte union @8 whose contents (and `size`) depend on select and subsel.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::mmio::VirtioMmio;
use super::{GuestMemory, VirtioDevice, VirtioError, Virtqueue};
use crate::dev::mmio::AccessWidth;

/// The virtio device ID of an input device.
pub const DEVICE_ID: u32 = 18;
/// The event queue's index.
pub const EVENTQ: usize = 0;
/// The status queue's index.
pub const STATUSQ: usize = 1;
/// Events held while the guest has no free event buffer.
pub const PENDING_CAPACITY: usize = 128;
/// Bytes of one event on the wire.
pub const EVENT_SIZE: usize = 8;
/// Bytes of the configuration union (and the most any of its entries holds).
pub const UNION_SIZE: usize = 128;
/// Offset of the union in the configuration space.
const UNION_OFFSET: u64 = 8;

/// Configuration selectors (`select`).
pub mod select {
    /// Nothing selected.
    pub const UNSET: u8 = 0x00;
    /// The device's name (string, subsel 0).
    pub const ID_NAME: u8 = 0x01;
    /// The device's serial number (string, subsel 0).
    pub const ID_SERIAL: u8 = 0x02;
    /// Bus type, vendor, product, version (subsel 0).
    pub const ID_DEVIDS: u8 = 0x03;
    /// Input properties bitmap (subsel 0).
    pub const PROP_BITS: u8 = 0x10;
    /// The codes supported for event type `subsel` (bitmap).
    pub const EV_BITS: u8 = 0x11;
    /// Absolute axis `subsel`'s min, max, fuzz, flat, res.
    pub const ABS_INFO: u8 = 0x12;
}

/// Event type of absolute axes (EV_ABS).
pub const EV_ABS: u8 = 0x03;
/// The highest event type (EV_MAX).
pub const EV_MAX: u8 = 0x1f;

/// One input event as the guest receives it: le16 type, le16 code, le32 value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputEvent {
    /// Event type (EV_KEY, EV_ABS, EV_SYN...).
    pub kind: u16,
    /// Event code (which key, which axis).
    pub code: u16,
    /// Value (pressed, position...).
    pub value: u32,
}

impl InputEvent {
    /// The event's 8 bytes on the wire.
    pub fn to_bytes(self) -> [u8; EVENT_SIZE] {
        let [k0, k1] = self.kind.to_le_bytes();
        let [c0, c1] = self.code.to_le_bytes();
        let [v0, v1, v2, v3] = self.value.to_le_bytes();
        [k0, k1, c0, c1, v0, v1, v2, v3]
    }

    /// The event encoded by `bytes`.
    pub fn from_bytes(bytes: [u8; EVENT_SIZE]) -> Self {
        let [k0, k1, c0, c1, v0, v1, v2, v3] = bytes;
        Self {
            kind: u16::from_le_bytes([k0, k1]),
            code: u16::from_le_bytes([c0, c1]),
            value: u32::from_le_bytes([v0, v1, v2, v3]),
        }
    }
}

/// A physical input device's identity and capabilities, as a driver elsewhere read them from
/// the device at boot. Every entry is at most [`UNION_SIZE`] bytes (longer ones are cut when
/// the guest reads them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputConfig {
    /// The device's name (ID_NAME), without a terminating NUL.
    pub name: Vec<u8>,
    /// The serial number (ID_SERIAL).
    pub serial: Vec<u8>,
    /// Bus type, vendor, product, version, le16 each (ID_DEVIDS).
    pub devids: [u8; 8],
    /// The input properties bitmap (PROP_BITS); empty: none.
    pub prop_bits: Vec<u8>,
    /// Per event type, the bitmap of its supported codes (EV_BITS); types not listed have none.
    pub ev_bits: Vec<(u8, Vec<u8>)>,
    /// Per absolute axis: le32 min, max, fuzz, flat, res (ABS_INFO).
    pub abs: Vec<(u8, [u8; 20])>,
}

impl InputConfig {
    /// Fills a configuration from `query(select, subsel, out) -> size`, the way the physical
    /// driver exposes its device (the same selectors as the virtio configuration space; a
    /// size above 128 counts as 128): ID_NAME, ID_SERIAL, ID_DEVIDS, PROP_BITS, EV_BITS for every
    /// event type 0 to EV_MAX, and ABS_INFO for every axis set in the EV_ABS bitmap.
    pub fn from_query(mut query: impl FnMut(u8, u8, &mut [u8; UNION_SIZE]) -> u8) -> Self {
        let mut ask = |select: u8, subsel: u8| -> Vec<u8> {
            let mut out = [0u8; UNION_SIZE];
            let size = usize::from(query(select, subsel, &mut out)).min(UNION_SIZE);
            out.get(..size).map(<[u8]>::to_vec).unwrap_or_default()
        };
        let name = ask(select::ID_NAME, 0);
        let serial = ask(select::ID_SERIAL, 0);
        let mut devids = [0u8; 8];
        for (to, from) in devids.iter_mut().zip(ask(select::ID_DEVIDS, 0)) {
            *to = from;
        }
        let prop_bits = ask(select::PROP_BITS, 0);
        let mut ev_bits = Vec::new();
        for kind in 0..=EV_MAX {
            let bits = ask(select::EV_BITS, kind);
            if !bits.is_empty() {
                ev_bits.push((kind, bits));
            }
        }
        let mut abs = Vec::new();
        let axes = ev_bits
            .iter()
            .find(|(kind, _)| *kind == EV_ABS)
            .map(|(_, bits)| bits.clone())
            .unwrap_or_default();
        for (byte_index, byte) in axes.iter().enumerate() {
            for bit in 0..8 {
                let Ok(axis) = u8::try_from(byte_index * 8 + bit) else {
                    continue;
                };
                if byte & (1 << bit) == 0 {
                    continue;
                }
                let info = ask(select::ABS_INFO, axis);
                if info.is_empty() {
                    continue;
                }
                let mut entry = [0u8; 20];
                for (to, from) in entry.iter_mut().zip(info) {
                    *to = from;
                }
                abs.push((axis, entry));
            }
        }
        Self {
            name,
            serial,
            devids,
            prop_bits,
            ev_bits,
            abs,
        }
    }

    /// The union's contents for `select`/`subsel`: empty when there is nothing (size 0).
    pub fn entry(&self, select: u8, subsel: u8) -> &[u8] {
        let bytes: &[u8] = match (select, subsel) {
            (select::ID_NAME, 0) => &self.name,
            (select::ID_SERIAL, 0) => &self.serial,
            (select::ID_DEVIDS, 0) => &self.devids,
            (select::PROP_BITS, 0) => &self.prop_bits,
            (select::EV_BITS, kind) => self
                .ev_bits
                .iter()
                .find(|(entry, _)| *entry == kind)
                .map_or(&[][..], |(_, bits)| bits),
            (select::ABS_INFO, axis) => self
                .abs
                .iter()
                .find(|(entry, _)| *entry == axis)
                .map_or(&[][..], |(_, info)| info),
            _ => &[],
        };
        bytes.get(..UNION_SIZE).unwrap_or(bytes)
    }
}

/// The virtio-input device: a shared [`InputConfig`] (an `Arc`, so a restarted cell's new device
/// and the physical driver share one copy), the guest's selector registers, and the events not
/// yet delivered.
#[derive(Clone, Debug)]
pub struct VirtioInput {
    config: Arc<InputConfig>,
    select: u8,
    subsel: u8,
    pending: [InputEvent; PENDING_CAPACITY],
    /// Index of the oldest pending event.
    head: usize,
    /// Number of pending events.
    len: usize,
    dropped: u64,
}

impl VirtioInput {
    /// A device presenting `config`, with no events pending.
    pub fn new(config: Arc<InputConfig>) -> Self {
        Self {
            config,
            select: select::UNSET,
            subsel: 0,
            pending: [InputEvent::default(); PENDING_CAPACITY],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }

    /// The configuration presented.
    pub fn config(&self) -> &InputConfig {
        &self.config
    }

    /// How many events wait for an event buffer.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// How many events were dropped because the pending ring was full (since the last reset).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queues `event` for the guest; `false` (and counted in [`VirtioInput::dropped`]) when
    /// [`PENDING_CAPACITY`] events already wait.
    pub fn push_event(&mut self, event: InputEvent) -> bool {
        if self.len >= PENDING_CAPACITY {
            self.dropped = self.dropped.saturating_add(1);
            return false;
        }
        let slot = (self.head + self.len) % PENDING_CAPACITY;
        if let Some(entry) = self.pending.get_mut(slot) {
            *entry = event;
            self.len += 1;
            true
        } else {
            self.dropped = self.dropped.saturating_add(1);
            false
        }
    }

    fn front(&self) -> Option<InputEvent> {
        if self.len == 0 {
            None
        } else {
            self.pending.get(self.head).copied()
        }
    }

    fn pop_front(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % PENDING_CAPACITY;
            self.len -= 1;
        }
    }

    /// Moves pending events into the event buffers the driver posted on `eventq`, one event per
    /// buffer, at most the queue size of them. `Ok(true)`: buffers were used. A buffer that is
    /// device-readable or shorter than 8 bytes is an error. While `eventq` is not ready the
    /// events wait (`Ok(false)`).
    pub fn deliver(
        &mut self,
        eventq: &mut Virtqueue,
        memory: &mut dyn GuestMemory,
    ) -> Result<bool, VirtioError> {
        let mut used = false;
        if !eventq.ready() {
            return Ok(false);
        }
        for _ in 0..eventq.size() {
            let Some(event) = self.front() else {
                break;
            };
            let Some(chain) = eventq.pop(memory)? else {
                break;
            };
            if chain.readable_len() != 0 {
                return Err(VirtioError::UnexpectedReadable);
            }
            if (chain.writable_len() as usize) < EVENT_SIZE {
                return Err(VirtioError::BufferTooShort);
            }
            let written = chain.write_all(memory, &event.to_bytes())?;
            eventq.push_used(memory, chain.head(), written as u32)?;
            self.pop_front();
            used = true;
        }
        Ok(used)
    }

    /// [`VirtioInput::deliver`] on the event queue of `queues`.
    pub fn deliver_pending(
        &mut self,
        queues: &mut [Virtqueue],
        memory: &mut dyn GuestMemory,
    ) -> Result<bool, VirtioError> {
        let eventq = queues.get_mut(EVENTQ).ok_or(VirtioError::NoSuchQueue)?;
        self.deliver(eventq, memory)
    }

    /// Consumes the status buffers on `statusq` (LED events: read, then ignored), at most the
    /// queue size of them.
    fn consume_status(
        statusq: &mut Virtqueue,
        memory: &mut dyn GuestMemory,
    ) -> Result<bool, VirtioError> {
        let mut used = false;
        for _ in 0..statusq.size() {
            let Some(chain) = statusq.pop(memory)? else {
                break;
            };
            let mut event = [0u8; EVENT_SIZE];
            chain.read_all(memory, &mut event)?;
            statusq.push_used(memory, chain.head(), 0)?;
            used = true;
        }
        Ok(used)
    }

    fn config_byte(&self, offset: u64) -> u8 {
        let entry = self.config.entry(self.select, self.subsel);
        match offset {
            0 => self.select,
            1 => self.subsel,
            // At most UNION_SIZE (128).
            2 => entry.len() as u8,
            3..UNION_OFFSET => 0,
            _ => usize::try_from(offset - UNION_OFFSET)
                .ok()
                .and_then(|index| entry.get(index))
                .copied()
                .unwrap_or(0),
        }
    }
}

impl VirtioDevice for VirtioInput {
    fn device_id(&self) -> u32 {
        DEVICE_ID
    }

    fn features(&self) -> u64 {
        0
    }

    fn queue_count(&self) -> usize {
        2
    }

    fn config_read(&self, offset: u64, width: AccessWidth) -> u32 {
        (0..width.bytes().min(4)).fold(0u32, |value, lane| {
            let byte = offset
                .checked_add(lane)
                .map_or(0, |offset| self.config_byte(offset));
            value | (u32::from(byte) << (8 * lane))
        })
    }

    fn config_write(&mut self, offset: u64, width: AccessWidth, value: u32) {
        for lane in 0..width.bytes().min(4) {
            let byte = (value >> (8 * lane)) as u8;
            match offset.checked_add(lane) {
                Some(0) => self.select = byte,
                Some(1) => self.subsel = byte,
                _ => {}
            }
        }
    }

    fn notify(
        &mut self,
        queue: usize,
        queues: &mut [Virtqueue],
        memory: &mut dyn GuestMemory,
    ) -> Result<bool, VirtioError> {
        match queue {
            EVENTQ => self.deliver_pending(queues, memory),
            STATUSQ => {
                let statusq = queues.get_mut(STATUSQ).ok_or(VirtioError::NoSuchQueue)?;
                Self::consume_status(statusq, memory)
            }
            _ => Err(VirtioError::NoSuchQueue),
        }
    }

    fn reset(&mut self) {
        self.select = select::UNSET;
        self.subsel = 0;
        self.head = 0;
        self.len = 0;
        self.dropped = 0;
    }
}

impl VirtioMmio<VirtioInput> {
    /// An event from the physical device: queued, then delivered as far as the guest's posted
    /// buffers allow (if the device is live). Returns whether used buffers were added (the
    /// caller then drives the interrupt line from [`VirtioMmio::interrupt_level`]).
    pub fn input_event(&mut self, event: InputEvent, memory: &mut dyn GuestMemory) -> bool {
        self.device_mut().push_event(event);
        self.run(memory, |device, queues, memory| {
            device.deliver_pending(queues, memory)
        })
    }
}
