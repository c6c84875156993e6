//! Tests of the virtqueue, the virtio-mmio transport and the input device, against a fake RAM
//! and a small fake driver that lays out its rings as Linux does.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use super::input::{
    EVENTQ, InputConfig, InputEvent, PENDING_CAPACITY, STATUSQ, VirtioInput, select,
};
use super::mmio::{INTERRUPT_CONFIG, INTERRUPT_USED, VirtioMmio, offset, status};
use super::queue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use super::test_ram::{RAM_SIZE, Ram};
use super::{OutsideRam, VirtioError, Virtqueue};
use crate::dev::mmio::{AccessWidth, MmioError};

const RAM_BASE: u64 = 0x4000_0000;
const BUFFERS: u64 = RAM_BASE + 0x8_0000;
const WORD: AccessWidth = AccessWidth::Word;

/// One queue as a Linux-like driver lays it out: descriptor table, available ring and used ring
/// in separate pages, descriptors handed out round-robin.
#[derive(Clone, Copy)]
struct DriverQueue {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
}

impl DriverQueue {
    fn new(index: u64, size: u16) -> Self {
        let base = RAM_BASE + index * 0x1_0000;
        Self {
            size,
            desc: base,
            avail: base + 0x4000,
            used: base + 0x8000,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
        }
    }

    fn write_desc(
        ram: &mut Ram,
        desc: u64,
        index: u16,
        addr: u64,
        len: u32,
        flags: u16,
        next: u16,
    ) {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..].copy_from_slice(&next.to_le_bytes());
        ram.put(desc + 16 * u64::from(index), &raw);
    }

    /// Makes `head` available (without writing descriptors).
    fn offer(&mut self, ram: &mut Ram, head: u16) {
        let slot = u64::from(self.avail_idx % self.size);
        ram.put(self.avail + 4 + 2 * slot, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.put(self.avail + 2, &self.avail_idx.to_le_bytes());
    }

    /// Posts a chain of `(addr, len, writable)` buffers; returns its head.
    fn post(&mut self, ram: &mut Ram, buffers: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (position, &(addr, len, writable)) in buffers.iter().enumerate() {
            let index = self.next_desc;
            let next = (index + 1) % self.size;
            let last = position + 1 == buffers.len();
            let flags =
                if writable { DESC_F_WRITE } else { 0 } | if last { 0 } else { DESC_F_NEXT };
            Self::write_desc(ram, self.desc, index, addr, len, flags, next);
            self.next_desc = next;
        }
        self.offer(ram, head);
        head
    }

    /// The used elements added since the last call.
    fn take_used(&mut self, ram: &Ram) -> Vec<(u32, u32)> {
        let idx = ram.u16_at(self.used + 2);
        let mut out = Vec::new();
        while self.used_seen != idx {
            let slot = u64::from(self.used_seen % self.size);
            let element = self.used + 4 + 8 * slot;
            out.push((ram.u32_at(element), ram.u32_at(element + 4)));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }
}

fn config() -> Arc<InputConfig> {
    let mut abs_x = [0u8; 20];
    abs_x[4..8].copy_from_slice(&1023u32.to_le_bytes());
    Arc::new(InputConfig {
        name: b"cellvisor test keyboard".to_vec(),
        serial: b"0001".to_vec(),
        devids: [0x19, 0, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00],
        prop_bits: vec![],
        ev_bits: vec![
            (0, vec![0x0b]),
            (1, vec![0xfe, 0xff, 0xff, 0xff]),
            (3, vec![0x03]),
        ],
        abs: vec![(0, abs_x), (1, abs_x)],
    })
}

fn device() -> VirtioMmio<VirtioInput> {
    VirtioMmio::new(VirtioInput::new(config()))
}

fn write(mmio: &mut VirtioMmio<VirtioInput>, ram: &mut Ram, offset: u64, value: u32) {
    mmio.write(offset, WORD, value, ram).unwrap();
}

fn read(mmio: &mut VirtioMmio<VirtioInput>, offset: u64) -> u32 {
    mmio.read(offset, WORD).unwrap()
}

/// Programs queue `index` from `queue` (QueueNum, the three areas) and makes it ready.
fn setup_queue(mmio: &mut VirtioMmio<VirtioInput>, ram: &mut Ram, index: u32, queue: &DriverQueue) {
    write(mmio, ram, offset::QUEUE_SEL, index);
    assert_eq!(read(mmio, offset::QUEUE_READY), 0);
    assert_eq!(read(mmio, offset::QUEUE_NUM_MAX), 64);
    write(mmio, ram, offset::QUEUE_NUM, u32::from(queue.size));
    for (low, address) in [
        (offset::QUEUE_DESC_LOW, queue.desc),
        (offset::QUEUE_DRIVER_LOW, queue.avail),
        (offset::QUEUE_DEVICE_LOW, queue.used),
    ] {
        write(mmio, ram, low, address as u32);
        write(mmio, ram, low + 4, (address >> 32) as u32);
    }
    write(mmio, ram, offset::QUEUE_READY, 1);
}

/// The Linux probe sequence; returns the driver's view of the two queues.
fn handshake(mmio: &mut VirtioMmio<VirtioInput>, ram: &mut Ram, size: u16) -> [DriverQueue; 2] {
    write(mmio, ram, offset::STATUS, 0);
    write(mmio, ram, offset::STATUS, status::ACKNOWLEDGE);
    write(
        mmio,
        ram,
        offset::STATUS,
        status::ACKNOWLEDGE | status::DRIVER,
    );
    write(mmio, ram, offset::DEVICE_FEATURES_SEL, 1);
    let high = read(mmio, offset::DEVICE_FEATURES);
    write(mmio, ram, offset::DEVICE_FEATURES_SEL, 0);
    let low = read(mmio, offset::DEVICE_FEATURES);
    write(mmio, ram, offset::DRIVER_FEATURES_SEL, 1);
    write(mmio, ram, offset::DRIVER_FEATURES, high & 1);
    write(mmio, ram, offset::DRIVER_FEATURES_SEL, 0);
    write(mmio, ram, offset::DRIVER_FEATURES, low);
    let base = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
    write(mmio, ram, offset::STATUS, base);
    assert_eq!(read(mmio, offset::STATUS), base, "FEATURES_OK accepted");
    let queues = [DriverQueue::new(0, size), DriverQueue::new(1, size)];
    for (index, queue) in queues.iter().enumerate() {
        setup_queue(mmio, ram, index as u32, queue);
    }
    write(mmio, ram, offset::STATUS, base | status::DRIVER_OK);
    assert!(mmio.is_live());
    queues
}

fn key(code: u16, value: u32) -> InputEvent {
    InputEvent {
        kind: 1,
        code,
        value,
    }
}

fn event_at(ram: &Ram, ipa: u64) -> InputEvent {
    InputEvent::from_bytes(ram.get(ipa, 8).try_into().unwrap())
}

/// Posts `count` 8-byte event buffers on `queue`, the i-th at `BUFFERS + 8 * (first + i)`.
fn post_event_buffers(queue: &mut DriverQueue, ram: &mut Ram, first: u64, count: u64) {
    for i in first..first + count {
        queue.post(ram, &[(BUFFERS + 8 * i, 8, true)]);
    }
}

/// Asserts the device failed with `error`, and that a reset and a new handshake bring it back.
fn assert_failed_then_recovers(
    mmio: &mut VirtioMmio<VirtioInput>,
    ram: &mut Ram,
    error: VirtioError,
) {
    assert_eq!(mmio.take_error(), Some(error));
    assert_eq!(mmio.take_error(), None, "reported once");
    assert_ne!(read(mmio, offset::STATUS) & status::DEVICE_NEEDS_RESET, 0);
    assert!(!mmio.is_live());
    assert_ne!(read(mmio, offset::INTERRUPT_STATUS) & INTERRUPT_CONFIG, 0);
    assert!(mmio.interrupt_level());
    // Nothing is served until the reset.
    let writes = ram.writes.len();
    write(mmio, ram, offset::QUEUE_NOTIFY, 0);
    assert!(!mmio.input_event(key(30, 1), ram));
    assert_eq!(ram.writes.len(), writes, "no queue served while failed");
    // The driver resets and starts over on fresh rings.
    *ram = Ram::new(RAM_BASE);
    let [mut eventq, _] = handshake(mmio, ram, 8);
    assert_eq!(read(mmio, offset::INTERRUPT_STATUS), 0);
    post_event_buffers(&mut eventq, ram, 0, 1);
    assert!(mmio.input_event(key(31, 1), ram));
    assert_eq!(eventq.take_used(ram), vec![(0, 8)]);
    assert_eq!(event_at(ram, BUFFERS), key(31, 1));
}

#[test]
fn identity_registers() {
    let mut mmio = device();
    assert_eq!(read(&mut mmio, offset::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(read(&mut mmio, offset::VERSION), 2);
    assert_eq!(read(&mut mmio, offset::DEVICE_ID), 18);
    assert_eq!(read(&mut mmio, offset::VENDOR_ID), super::mmio::VENDOR_ID);
    assert_eq!(read(&mut mmio, offset::SHM_LEN_LOW), u32::MAX);
    assert_eq!(read(&mut mmio, offset::CONFIG_GENERATION), 0);
    // Queue registers of a queue the device does not have.
    let mut ram = Ram::new(RAM_BASE);
    write(&mut mmio, &mut ram, offset::QUEUE_SEL, 2);
    assert_eq!(read(&mut mmio, offset::QUEUE_NUM_MAX), 0);
    assert_eq!(read(&mut mmio, offset::QUEUE_READY), 0);
    write(&mut mmio, &mut ram, offset::QUEUE_READY, 1);
    assert_eq!(read(&mut mmio, offset::QUEUE_READY), 0);
    assert_eq!(mmio.take_error(), None);
}

#[test]
fn full_handshake() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    write(&mut mmio, &mut ram, offset::DEVICE_FEATURES_SEL, 1);
    assert_eq!(read(&mut mmio, offset::DEVICE_FEATURES), 1, "VERSION_1");
    write(&mut mmio, &mut ram, offset::DEVICE_FEATURES_SEL, 0);
    assert_eq!(read(&mut mmio, offset::DEVICE_FEATURES), 0);
    write(&mut mmio, &mut ram, offset::DEVICE_FEATURES_SEL, 2);
    assert_eq!(read(&mut mmio, offset::DEVICE_FEATURES), 0);
    assert!(!mmio.is_live());
    handshake(&mut mmio, &mut ram, 64);
    assert_eq!(mmio.driver_features(), super::F_VERSION_1);
    assert_eq!(
        read(&mut mmio, offset::STATUS),
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
    );
    for queue in mmio.queues() {
        assert!(queue.ready());
        assert_eq!(queue.size(), 64);
    }
    assert_eq!(mmio.take_error(), None);
    assert!(!mmio.interrupt_level());
}

#[test]
fn features_ok_refused_for_bad_features() {
    for (high, low) in [(0, 0), (1, 1), (3, 0), (1, 0x1000_0000)] {
        let mut mmio = device();
        let mut ram = Ram::new(RAM_BASE);
        write(
            &mut mmio,
            &mut ram,
            offset::STATUS,
            status::ACKNOWLEDGE | status::DRIVER,
        );
        write(&mut mmio, &mut ram, offset::DRIVER_FEATURES_SEL, 1);
        write(&mut mmio, &mut ram, offset::DRIVER_FEATURES, high);
        write(&mut mmio, &mut ram, offset::DRIVER_FEATURES_SEL, 0);
        write(&mut mmio, &mut ram, offset::DRIVER_FEATURES, low);
        write(
            &mut mmio,
            &mut ram,
            offset::STATUS,
            status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK,
        );
        assert_eq!(
            read(&mut mmio, offset::STATUS) & status::FEATURES_OK,
            0,
            "{high:#x}:{low:#x}"
        );
        write(&mut mmio, &mut ram, offset::STATUS, 0x0f);
        assert!(!mmio.is_live(), "no DRIVER_OK without FEATURES_OK");
    }
}

#[test]
fn driver_features_frozen_after_features_ok() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    handshake(&mut mmio, &mut ram, 8);
    write(&mut mmio, &mut ram, offset::DRIVER_FEATURES_SEL, 0);
    write(&mut mmio, &mut ram, offset::DRIVER_FEATURES, 0xffff_ffff);
    assert_eq!(mmio.driver_features(), super::F_VERSION_1);
}

#[test]
fn queue_config_ignored_while_ready() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    let [eventq, _] = handshake(&mut mmio, &mut ram, 8);
    write(&mut mmio, &mut ram, offset::QUEUE_SEL, 0);
    write(&mut mmio, &mut ram, offset::QUEUE_NUM, 3);
    write(&mut mmio, &mut ram, offset::QUEUE_DESC_LOW, 0x1234);
    write(&mut mmio, &mut ram, offset::QUEUE_DEVICE_HIGH, 7);
    let queue = &mmio.queues()[0];
    assert_eq!(
        (queue.size(), queue.desc_table(), queue.device_area()),
        (8, eventq.desc, eventq.used)
    );
    // Not ready: the configuration may change again.
    write(&mut mmio, &mut ram, offset::QUEUE_READY, 0);
    write(&mut mmio, &mut ram, offset::QUEUE_NUM, 4);
    assert_eq!(mmio.queues()[0].size(), 4);
}

#[test]
fn events_delivered_in_order_into_posted_buffers() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    let [mut eventq, _] = handshake(&mut mmio, &mut ram, 8);
    post_event_buffers(&mut eventq, &mut ram, 0, 4);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, EVENTQ as u32);
    assert!(!mmio.interrupt_level(), "no events yet");
    let events = [
        key(30, 1),
        key(30, 0),
        InputEvent {
            kind: 0,
            code: 0,
            value: 0,
        },
    ];
    for event in events {
        assert!(mmio.input_event(event, &mut ram));
    }
    assert_eq!(eventq.take_used(&ram), vec![(0, 8), (1, 8), (2, 8)]);
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event_at(&ram, BUFFERS + 8 * i as u64), *event);
    }
    assert_eq!(read(&mut mmio, offset::INTERRUPT_STATUS), INTERRUPT_USED);
    assert!(mmio.interrupt_level());
    write(&mut mmio, &mut ram, offset::INTERRUPT_ACK, INTERRUPT_USED);
    assert!(!mmio.interrupt_level());
    assert_eq!(mmio.device().pending(), 0);
}

#[test]
fn events_held_without_buffers_then_delivered_on_notify() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    // An event from before the driver's reset is dropped with the reset.
    mmio.device_mut().push_event(key(99, 1));
    let [mut eventq, _] = handshake(&mut mmio, &mut ram, 4);
    assert_eq!(mmio.device().pending(), 0);
    for code in 1..7 {
        assert!(!mmio.input_event(key(code, 1), &mut ram));
    }
    assert_eq!(mmio.device().pending(), 6);
    assert!(!mmio.interrupt_level());
    post_event_buffers(&mut eventq, &mut ram, 0, 4);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, EVENTQ as u32);
    assert!(mmio.interrupt_level());
    assert_eq!(eventq.take_used(&ram).len(), 4);
    assert_eq!(mmio.device().pending(), 2);
    for (i, code) in (1..5).enumerate() {
        assert_eq!(event_at(&ram, BUFFERS + 8 * i as u64), key(code, 1));
    }
    // The driver recycles two buffers.
    post_event_buffers(&mut eventq, &mut ram, 10, 2);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, EVENTQ as u32);
    assert_eq!(eventq.take_used(&ram).len(), 2);
    assert_eq!(event_at(&ram, BUFFERS + 80), key(5, 1));
    assert_eq!(event_at(&ram, BUFFERS + 88), key(6, 1));
    assert_eq!(mmio.device().pending(), 0);
}

#[test]
fn pending_ring_full_drops_are_counted() {
    let mut input = VirtioInput::new(config());
    for code in 0..PENDING_CAPACITY as u16 + 5 {
        let taken = input.push_event(key(code, 1));
        assert_eq!(taken, usize::from(code) < PENDING_CAPACITY);
    }
    assert_eq!(input.pending(), PENDING_CAPACITY);
    assert_eq!(input.dropped(), 5);
    // The oldest are kept, and delivered first.
    let mut mmio = VirtioMmio::new(input);
    let mut ram = Ram::new(RAM_BASE);
    // A driver reset (the handshake's Status 0) drops everything from before.
    let [mut eventq, _] = handshake(&mut mmio, &mut ram, 64);
    assert_eq!(mmio.device().pending(), 0);
    assert_eq!(mmio.device().dropped(), 0);
    for code in 0..PENDING_CAPACITY as u16 + 1 {
        mmio.input_event(key(code, 1), &mut ram);
    }
    assert_eq!(mmio.device().dropped(), 1);
    post_event_buffers(&mut eventq, &mut ram, 0, 64);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 0);
    assert_eq!(eventq.take_used(&ram).len(), 64);
    assert_eq!(event_at(&ram, BUFFERS), key(0, 1));
    assert_eq!(event_at(&ram, BUFFERS + 8 * 63), key(63, 1));
    assert_eq!(mmio.device().pending(), PENDING_CAPACITY - 64);
}

#[test]
fn ring_indices_wrap() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    let [mut eventq, _] = handshake(&mut mmio, &mut ram, 2);
    for round in 0..70_000u32 {
        eventq.post(&mut ram, &[(BUFFERS, 8, true)]);
        assert!(mmio.input_event(
            InputEvent {
                kind: 4,
                code: 4,
                value: round
            },
            &mut ram
        ));
        assert_eq!(eventq.take_used(&ram).len(), 1);
        assert_eq!(event_at(&ram, BUFFERS).value, round);
    }
    assert_eq!(mmio.take_error(), None);
}

#[test]
fn status_queue_consumed() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    let [_, mut statusq] = handshake(&mut mmio, &mut ram, 8);
    let led = InputEvent {
        kind: 0x11,
        code: 0,
        value: 1,
    };
    for i in 0..3 {
        ram.put(BUFFERS + 8 * i, &led.to_bytes());
        statusq.post(&mut ram, &[(BUFFERS + 8 * i, 8, false)]);
    }
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, STATUSQ as u32);
    assert_eq!(statusq.take_used(&ram), vec![(0, 0), (1, 0), (2, 0)]);
    assert!(mmio.interrupt_level());
    // Nothing more to consume.
    write(&mut mmio, &mut ram, offset::INTERRUPT_ACK, 3);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, STATUSQ as u32);
    assert!(!mmio.interrupt_level());
    assert_eq!(mmio.take_error(), None);
}

fn select_entry(
    mmio: &mut VirtioMmio<VirtioInput>,
    ram: &mut Ram,
    select: u8,
    subsel: u8,
) -> Vec<u8> {
    mmio.write(0x100, AccessWidth::Byte, u32::from(select), ram)
        .unwrap();
    mmio.write(0x101, AccessWidth::Byte, u32::from(subsel), ram)
        .unwrap();
    assert_eq!(
        mmio.read(0x100, AccessWidth::Byte).unwrap(),
        u32::from(select)
    );
    assert_eq!(
        mmio.read(0x101, AccessWidth::Byte).unwrap(),
        u32::from(subsel)
    );
    let size = mmio.read(0x102, AccessWidth::Byte).unwrap() as u64;
    (0..size)
        .map(|i| mmio.read(0x108 + i, AccessWidth::Byte).unwrap() as u8)
        .collect()
}

#[test]
fn config_space_reads() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    assert_eq!(
        select_entry(&mut mmio, &mut ram, select::ID_NAME, 0),
        b"cellvisor test keyboard"
    );
    assert_eq!(
        select_entry(&mut mmio, &mut ram, select::ID_SERIAL, 0),
        b"0001"
    );
    assert_eq!(
        select_entry(&mut mmio, &mut ram, select::ID_DEVIDS, 0),
        [0x19, 0, 1, 0, 1, 0, 1, 0]
    );
    assert_eq!(
        mmio.read(0x108, AccessWidth::Halfword).unwrap(),
        0x19,
        "bustype le16"
    );
    assert_eq!(select_entry(&mut mmio, &mut ram, select::PROP_BITS, 0), b"");
    assert_eq!(
        select_entry(&mut mmio, &mut ram, select::EV_BITS, 1),
        [0xfe, 0xff, 0xff, 0xff]
    );
    assert_eq!(mmio.read(0x108, WORD).unwrap(), 0xffff_fffe);
    assert_eq!(
        select_entry(&mut mmio, &mut ram, select::EV_BITS, 2),
        b"",
        "no EV_REL"
    );
    let abs = select_entry(&mut mmio, &mut ram, select::ABS_INFO, 1);
    assert_eq!(abs.len(), 20);
    assert_eq!(mmio.read(0x10c, WORD).unwrap(), 1023, "max");
    assert_eq!(select_entry(&mut mmio, &mut ram, select::ABS_INFO, 2), b"");
    assert_eq!(select_entry(&mut mmio, &mut ram, select::UNSET, 0), b"");
    assert_eq!(select_entry(&mut mmio, &mut ram, 0x7f, 0), b"");
    assert_eq!(
        select_entry(&mut mmio, &mut ram, select::ID_NAME, 1),
        b"",
        "subsel must be 0"
    );
    // A 16-bit store sets select and subsel at once; reserved bytes and the union ignore stores.
    mmio.write(0x100, AccessWidth::Halfword, 0x0111, &mut ram)
        .unwrap();
    mmio.write(0x104, WORD, u32::MAX, &mut ram).unwrap();
    mmio.write(0x108, WORD, 0, &mut ram).unwrap();
    assert_eq!(mmio.read(0x100, WORD).unwrap(), 0x0004_0111);
    assert_eq!(mmio.read(0x104, WORD).unwrap(), 0);
    assert_eq!(mmio.read(0x108, WORD).unwrap(), 0xffff_fffe);
    // Past the configuration: zero.
    assert_eq!(mmio.read(0x1fc, WORD).unwrap(), 0);
    // A reset forgets the selection.
    mmio.reset();
    assert_eq!(mmio.read(0x100, WORD).unwrap(), 0);
}

#[test]
fn config_from_query() {
    let built = InputConfig::from_query(|select, subsel, out| match (select, subsel) {
        (select::ID_NAME, 0) => {
            out[..4].copy_from_slice(b"pad0");
            4
        }
        (select::ID_DEVIDS, 0) => {
            out[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            8
        }
        (select::EV_BITS, 3) => {
            out[0] = 0x05; // ABS_X, ABS_Z
            out[6] = 0x80; // axis 55
            7
        }
        (select::EV_BITS, 0x1f) => {
            out.fill(0xff);
            200 // cut to 128
        }
        (select::ABS_INFO, axis) => {
            out[0] = axis;
            20
        }
        _ => 0,
    });
    assert_eq!(built.name, b"pad0");
    assert!(built.serial.is_empty());
    assert_eq!(built.devids, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(built.ev_bits.len(), 2);
    assert_eq!(built.ev_bits[1].1.len(), 128);
    let axes: Vec<u8> = built
        .abs
        .iter()
        .map(|(axis, info)| {
            assert_eq!(info[0], *axis);
            *axis
        })
        .collect();
    assert_eq!(axes, [0, 2, 55]);
    assert_eq!(built.entry(select::EV_BITS, 3), &[5, 0, 0, 0, 0, 0, 0x80]);
}

#[test]
fn every_offset_and_width_is_safe() {
    let widths = [
        AccessWidth::Byte,
        AccessWidth::Halfword,
        AccessWidth::Word,
        AccessWidth::Doubleword,
    ];
    for live in [false, true] {
        let mut mmio = device();
        let mut ram = Ram::new(RAM_BASE);
        if live {
            handshake(&mut mmio, &mut ram, 8);
        }
        for offset in 0..0x210u64 {
            for width in widths {
                let expected = if offset >= 0x200 {
                    Err(MmioError::BadOffset)
                } else if (offset < 0x100 && width != WORD) || width == AccessWidth::Doubleword {
                    Err(MmioError::BadWidth)
                } else if !width.is_aligned(offset) {
                    Err(MmioError::Unaligned)
                } else {
                    Ok(())
                };
                assert_eq!(
                    mmio.read(offset, width).map(|_| ()),
                    expected,
                    "read {offset:#x} {width:?}"
                );
                for value in [0, 1, 0x8000_0000, u32::MAX] {
                    let result = mmio.write(offset, width, value, &mut ram);
                    assert_eq!(result, expected, "write {offset:#x} {width:?}");
                }
            }
        }
        // Whatever that did, the state is coherent and a reset restores the power-on state.
        assert_eq!(mmio.interrupt_level(), mmio.interrupt_status() != 0);
        mmio.reset();
        assert_eq!(mmio.status(), 0);
        assert_eq!(mmio.take_error(), None);
        assert!(!mmio.interrupt_level());
    }
}

/// A live device whose event queue (size 8) is about to see a chain the test builds by hand.
fn hostile_setup() -> (VirtioMmio<VirtioInput>, Ram, DriverQueue) {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    let [eventq, _] = handshake(&mut mmio, &mut ram, 8);
    mmio.device_mut().push_event(key(1, 1));
    (mmio, ram, eventq)
}

/// Posts a hand-built chain (descriptor table entries `(index, addr, len, flags, next)`, then
/// head `head` offered), notifies the event queue, and expects `error`.
fn hostile_chain(descriptors: &[(u16, u64, u32, u16, u16)], head: u16, error: VirtioError) {
    let (mut mmio, mut ram, mut eventq) = hostile_setup();
    for &(index, addr, len, flags, next) in descriptors {
        DriverQueue::write_desc(&mut ram, eventq.desc, index, addr, len, flags, next);
    }
    eventq.offer(&mut ram, head);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 0);
    assert_failed_then_recovers(&mut mmio, &mut ram, error);
}

const W: u16 = DESC_F_WRITE;
const N: u16 = DESC_F_NEXT;

#[test]
fn hostile_head_out_of_range() {
    hostile_chain(&[], 8, VirtioError::DescriptorOutOfRange);
    hostile_chain(&[], u16::MAX, VirtioError::DescriptorOutOfRange);
}

#[test]
fn hostile_next_out_of_range() {
    hostile_chain(
        &[(0, BUFFERS, 4, W | N, 9)],
        0,
        VirtioError::DescriptorOutOfRange,
    );
}

#[test]
fn hostile_descriptor_loop() {
    hostile_chain(
        &[(0, BUFFERS, 4, W | N, 1), (1, BUFFERS, 4, W | N, 0)],
        0,
        VirtioError::ChainTooLong,
    );
    hostile_chain(&[(3, BUFFERS, 4, W | N, 3)], 3, VirtioError::ChainTooLong);
}

#[test]
fn hostile_chain_longer_than_queue() {
    let chain: Vec<_> = (0..8)
        .map(|i| (i, BUFFERS, 1, W | N, (i + 1) % 8))
        .collect();
    hostile_chain(&chain, 0, VirtioError::ChainTooLong);
}

#[test]
fn hostile_buffers_outside_ram() {
    let end = RAM_BASE + RAM_SIZE;
    hostile_chain(&[(0, end - 4, 8, W, 0)], 0, VirtioError::OutsideRam);
    hostile_chain(&[(0, end, 8, W, 0)], 0, VirtioError::OutsideRam);
    hostile_chain(&[(0, 0, 8, W, 0)], 0, VirtioError::OutsideRam);
    hostile_chain(&[(0, u64::MAX - 3, 8, W, 0)], 0, VirtioError::OutsideRam);
}

#[test]
fn hostile_huge_lengths() {
    // u32::MAX from a buffer in RAM: the write of 8 bytes fits, so the device must not write
    // more than it has; the length passes. Two of them overflow the chain's total.
    hostile_chain(
        &[
            (0, BUFFERS, u32::MAX, W | N, 1),
            (1, BUFFERS, u32::MAX, W, 0),
        ],
        0,
        VirtioError::ChainTooLarge,
    );
    hostile_chain(
        &[(0, u64::MAX - 8, u32::MAX, W, 0)],
        0,
        VirtioError::OutsideRam,
    );
}

#[test]
fn huge_length_writes_only_the_event() {
    let (mut mmio, mut ram, mut eventq) = hostile_setup();
    ram.put(BUFFERS + 8, &[0xaa; 8]);
    DriverQueue::write_desc(&mut ram, eventq.desc, 0, BUFFERS, u32::MAX, W, 0);
    eventq.offer(&mut ram, 0);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 0);
    assert_eq!(mmio.take_error(), None);
    assert_eq!(eventq.take_used(&ram), vec![(0, 8)]);
    assert_eq!(ram.get(BUFFERS + 8, 8), &[0xaa; 8]);
}

#[test]
fn hostile_indirect_and_zero_length() {
    hostile_chain(
        &[(0, BUFFERS, 16, W | DESC_F_INDIRECT, 0)],
        0,
        VirtioError::Indirect,
    );
    hostile_chain(&[(0, BUFFERS, 0, W, 0)], 0, VirtioError::ZeroLength);
}

#[test]
fn hostile_wrong_direction_and_short_buffers() {
    hostile_chain(&[(0, BUFFERS, 8, 0, 0)], 0, VirtioError::UnexpectedReadable);
    hostile_chain(
        &[(0, BUFFERS, 4, N, 1), (1, BUFFERS, 8, W, 0)],
        0,
        VirtioError::UnexpectedReadable,
    );
    hostile_chain(
        &[(0, BUFFERS, 4, W | N, 1), (1, BUFFERS, 8, 0, 0)],
        0,
        VirtioError::ReadableAfterWritable,
    );
    hostile_chain(&[(0, BUFFERS, 7, W, 0)], 0, VirtioError::BufferTooShort);
}

#[test]
fn short_segments_are_filled_in_order() {
    let (mut mmio, mut ram, mut eventq) = hostile_setup();
    let head = eventq.post(&mut ram, &[(BUFFERS, 3, true), (BUFFERS + 0x100, 5, true)]);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 0);
    assert_eq!(mmio.take_error(), None);
    assert_eq!(eventq.take_used(&ram), vec![(u32::from(head), 8)]);
    let bytes = key(1, 1).to_bytes();
    assert_eq!(ram.get(BUFFERS, 3), &bytes[..3]);
    assert_eq!(ram.get(BUFFERS + 0x100, 5), &bytes[3..]);
}

#[test]
fn hostile_avail_jump() {
    let (mut mmio, mut ram, eventq) = hostile_setup();
    ram.put(eventq.avail + 2, &9u16.to_le_bytes());
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 0);
    assert_failed_then_recovers(&mut mmio, &mut ram, VirtioError::AvailJump);
    let (mut mmio, mut ram, eventq) = hostile_setup();
    ram.put(eventq.avail + 2, &u16::MAX.to_le_bytes());
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 0);
    assert_failed_then_recovers(&mut mmio, &mut ram, VirtioError::AvailJump);
}

#[test]
fn hostile_rings_outside_ram() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    handshake(&mut mmio, &mut ram, 8);
    write(&mut mmio, &mut ram, offset::STATUS, 0);
    // The same handshake, with the available ring's address just past the end of RAM.
    let mut queue = DriverQueue::new(0, 8);
    queue.avail = RAM_BASE + RAM_SIZE;
    write(&mut mmio, &mut ram, offset::STATUS, 3);
    write(&mut mmio, &mut ram, offset::DRIVER_FEATURES_SEL, 1);
    write(&mut mmio, &mut ram, offset::DRIVER_FEATURES, 1);
    write(&mut mmio, &mut ram, offset::STATUS, 0xb);
    setup_queue(&mut mmio, &mut ram, 0, &queue);
    setup_queue(&mut mmio, &mut ram, 1, &DriverQueue::new(1, 8));
    write(&mut mmio, &mut ram, offset::STATUS, 0xf);
    assert!(!mmio.input_event(key(1, 1), &mut ram));
    assert_failed_then_recovers(&mut mmio, &mut ram, VirtioError::OutsideRam);
}

#[test]
fn hostile_queue_sizes() {
    for size in [0u32, 3, 12, 128, 0x1_0000, u32::MAX] {
        let mut mmio = device();
        let mut ram = Ram::new(RAM_BASE);
        write(&mut mmio, &mut ram, offset::STATUS, 0xb);
        write(&mut mmio, &mut ram, offset::QUEUE_SEL, 0);
        write(&mut mmio, &mut ram, offset::QUEUE_NUM, size);
        write(&mut mmio, &mut ram, offset::QUEUE_READY, 1);
        assert_eq!(read(&mut mmio, offset::QUEUE_READY), 0, "size {size}");
        assert_failed_then_recovers(&mut mmio, &mut ram, VirtioError::QueueSize);
    }
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    write(&mut mmio, &mut ram, offset::QUEUE_NUM, 8);
    write(&mut mmio, &mut ram, offset::QUEUE_DESC_LOW, 0x4000_0008);
    write(&mut mmio, &mut ram, offset::QUEUE_READY, 1);
    assert_failed_then_recovers(&mut mmio, &mut ram, VirtioError::QueueMisaligned);
}

#[test]
fn hostile_notifies() {
    for (queue, error) in [
        (2, VirtioError::NoSuchQueue),
        (u32::MAX, VirtioError::NoSuchQueue),
    ] {
        let (mut mmio, mut ram, _) = hostile_setup();
        write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, queue);
        assert_failed_then_recovers(&mut mmio, &mut ram, error);
    }
    let (mut mmio, mut ram, _) = hostile_setup();
    write(&mut mmio, &mut ram, offset::QUEUE_SEL, 1);
    write(&mut mmio, &mut ram, offset::QUEUE_READY, 0);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 1);
    assert_failed_then_recovers(&mut mmio, &mut ram, VirtioError::QueueNotReady);
    // Before DRIVER_OK a notify is ignored.
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 5);
    assert_eq!(mmio.take_error(), None);
}

#[test]
fn device_calls_outside_the_transport() {
    let mut memory = Ram::new(RAM_BASE);
    let mut input = VirtioInput::new(config());
    let mut queues = [Virtqueue::new(8)];
    use super::VirtioDevice;
    assert_eq!(
        input.notify(1, &mut queues, &mut memory),
        Err(VirtioError::NoSuchQueue)
    );
    assert_eq!(
        input.notify(7, &mut queues, &mut memory),
        Err(VirtioError::NoSuchQueue)
    );
    assert_eq!(
        input.notify(0, &mut queues, &mut memory),
        Ok(false),
        "nothing pending"
    );
    input.push_event(key(1, 1));
    assert_eq!(
        input.notify(0, &mut queues, &mut memory),
        Ok(false),
        "held while the queue is not ready"
    );
    assert_eq!(input.pending(), 1);
    assert_eq!(queues[0].pop(&mut memory), Err(VirtioError::QueueNotReady));
    assert_eq!(
        queues[0].push_used(&mut memory, 0, 8),
        Err(VirtioError::QueueNotReady)
    );
    // A queue's maximum is a power of two, 1 to 32768.
    assert_eq!(Virtqueue::new(0).max_size(), 1);
    assert_eq!(Virtqueue::new(100).max_size(), 64);
    assert_eq!(Virtqueue::new(u16::MAX).max_size(), 32768);
}

#[test]
fn power_on_reset_forgets_everything() {
    let (mut mmio, mut ram, _) = hostile_setup();
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 9);
    assert!(mmio.interrupt_level());
    mmio.reset();
    assert_eq!(mmio.take_error(), None);
    assert_eq!(mmio.status(), 0);
    assert!(!mmio.interrupt_level());
    assert_eq!(mmio.device().pending(), 0);
    assert!(
        mmio.queues()
            .iter()
            .all(|queue| !queue.ready() && queue.size() == 64)
    );
}

#[test]
fn errors_display() {
    assert_eq!(
        alloc::format!("{}", VirtioError::ChainTooLong),
        "descriptor chain longer than the queue (loop?)"
    );
    assert_eq!(
        alloc::format!("{}", VirtioError::from(OutsideRam)),
        "buffer or ring outside the cell's ram"
    );
}

#[test]
fn events_wait_while_the_event_queue_is_not_ready() {
    let mut mmio = device();
    let mut ram = Ram::new(RAM_BASE);
    handshake(&mut mmio, &mut ram, 8);
    write(&mut mmio, &mut ram, offset::QUEUE_SEL, EVENTQ as u32);
    write(&mut mmio, &mut ram, offset::QUEUE_READY, 0);
    assert!(!mmio.input_event(key(1, 1), &mut ram));
    assert_eq!(mmio.take_error(), None);
    assert!(mmio.is_live());
    assert_eq!(mmio.device().pending(), 1);
}

#[test]
fn used_element_is_written_before_used_idx() {
    let (mut mmio, mut ram, mut eventq) = hostile_setup();
    eventq.post(&mut ram, &[(BUFFERS, 8, true)]);
    ram.writes.clear();
    write(&mut mmio, &mut ram, offset::QUEUE_NOTIFY, 0);
    // The event, the used element, then the used ring's index.
    let addresses: Vec<u64> = ram.writes.iter().map(|&(ipa, _)| ipa).collect();
    assert_eq!(addresses, vec![BUFFERS, eventq.used + 4, eventq.used + 2]);
    assert_eq!(read(&mut mmio, offset::CONFIG_GENERATION), 0);
}

#[test]
fn chain_reads_stop_at_the_buffer_and_the_segments() {
    let mut ram = Ram::new(RAM_BASE);
    let mut driver = DriverQueue::new(0, 4);
    let mut queue = Virtqueue::new(4);
    queue.set_desc_table(driver.desc);
    queue.set_driver_area(driver.avail);
    queue.set_device_area(driver.used);
    queue.set_ready(true).unwrap();
    assert_eq!(queue.pop(&mut ram), Ok(None));
    ram.put(BUFFERS, b"abc");
    ram.put(BUFFERS + 0x10, b"defgh");
    let head = driver.post(
        &mut ram,
        &[
            (BUFFERS, 3, false),
            (BUFFERS + 0x10, 5, false),
            (BUFFERS + 0x20, 4, true),
        ],
    );
    let chain = queue.pop(&mut ram).unwrap().unwrap();
    assert_eq!(chain.head(), head);
    assert_eq!(chain.segments().len(), 3);
    assert_eq!((chain.readable_len(), chain.writable_len()), (8, 4));
    let mut small = [0u8; 6];
    assert_eq!(chain.read_all(&mut ram, &mut small), Ok(6));
    assert_eq!(&small, b"abcdef");
    let mut large = [0u8; 32];
    assert_eq!(chain.read_all(&mut ram, &mut large), Ok(8));
    assert_eq!(&large[..8], b"abcdefgh");
    assert_eq!(chain.write_all(&mut ram, b"0123456789"), Ok(4));
    assert_eq!(ram.get(BUFFERS + 0x20, 5), b"0123\0");
    queue.push_used(&mut ram, chain.head(), 4).unwrap();
    assert_eq!(driver.take_used(&ram), vec![(u32::from(head), 4)]);
    assert_eq!(
        queue.push_used(&mut ram, 4, 0),
        Err(VirtioError::DescriptorOutOfRange)
    );
    assert_eq!(queue.pop(&mut ram), Ok(None));
    queue.reset();
    assert!(!queue.ready());
    assert_eq!((queue.last_avail(), queue.next_used()), (0, 0));
}

#[test]
fn run_serves_only_a_live_device_and_applies_the_error_handling() {
    let mut mmio = VirtioMmio::with_queue_max(VirtioInput::new(config()), 16);
    let mut ram = Ram::new(RAM_BASE);
    let mut called = false;
    assert!(!mmio.run(&mut ram, |_, _, _| {
        called = true;
        Ok(true)
    }));
    assert!(!called, "not live: nothing runs");
    write(&mut mmio, &mut ram, offset::QUEUE_SEL, 1);
    assert_eq!(read(&mut mmio, offset::QUEUE_NUM_MAX), 16);
    write(&mut mmio, &mut ram, offset::STATUS, 0);
    write(&mut mmio, &mut ram, offset::STATUS, 3);
    write(&mut mmio, &mut ram, offset::DRIVER_FEATURES_SEL, 1);
    write(&mut mmio, &mut ram, offset::DRIVER_FEATURES, 1);
    write(&mut mmio, &mut ram, offset::STATUS, 0xb);
    write(&mut mmio, &mut ram, offset::STATUS, 0xf);
    assert!(mmio.is_live());
    assert!(mmio.run(&mut ram, |device, queues, _| {
        assert_eq!(queues.len(), 2);
        device.push_event(key(1, 1));
        Ok(true)
    }));
    assert_eq!(read(&mut mmio, offset::INTERRUPT_STATUS), INTERRUPT_USED);
    assert!(!mmio.run(&mut ram, |_, _, _| Err(VirtioError::BufferTooShort)));
    assert_eq!(
        read(&mut mmio, offset::INTERRUPT_STATUS),
        INTERRUPT_USED | INTERRUPT_CONFIG
    );
    assert_eq!(mmio.take_error(), Some(VirtioError::BufferTooShort));
    assert!(!mmio.is_live());
    // The driver cannot clear DEVICE_NEEDS_RESET but by a reset.
    write(&mut mmio, &mut ram, offset::STATUS, 0xf);
    assert!(!mmio.is_live());
    write(&mut mmio, &mut ram, offset::STATUS, 0);
    assert_eq!(read(&mut mmio, offset::STATUS), 0);
    assert_eq!(read(&mut mmio, offset::INTERRUPT_STATUS), 0);
}
