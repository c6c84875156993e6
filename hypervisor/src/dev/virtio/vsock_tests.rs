//! Tests of the virtio-vsock device and the switch: two (or three) fake cells with fake RAM and
//! a fake Linux-like driver (rx chains of a 44-byte header buffer and a 4096-byte data buffer, as
//! Linux 6.1's `virtio_vsock_rx_fill` posts them; tx chains of a header descriptor and a payload
//! descriptor, or one descriptor for both), connected through a [`VsockSwitch`].

use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::dev::mmio::AccessWidth;
use crate::dev::virtio::mmio::{VirtioMmio, offset, status};
use crate::dev::virtio::queue::{DESC_F_NEXT, DESC_F_WRITE};
use crate::dev::virtio::test_ram::Ram;
use crate::dev::virtio::{F_VERSION_1, VirtioError};

const A: u64 = 3;
const B: u64 = 4;
const C: u64 = 5;
const WORD: AccessWidth = AccessWidth::Word;
const QUEUE_SIZE: u16 = 64;
/// Where a cell's buffers start (after its three queues).
const BUFFER_AREA: u64 = 0x4_0000;
/// Linux's rx data buffer (VIRTIO_VSOCK_DEFAULT_RX_BUF_SIZE).
const RX_BUF: u32 = 4096;

/// One queue as the driver sees it; descriptors are handed out round-robin.
struct DriverQueue {
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
}

impl DriverQueue {
    fn new(base: u64, index: u64) -> Self {
        let start = base + index * 0x1_0000;
        Self {
            desc: start,
            avail: start + 0x4000,
            used: start + 0x8000,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
        }
    }

    fn write_desc(&self, ram: &mut Ram, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..].copy_from_slice(&next.to_le_bytes());
        ram.put(self.desc + 16 * u64::from(index), &raw);
    }

    fn offer(&mut self, ram: &mut Ram, head: u16) {
        let slot = u64::from(self.avail_idx % QUEUE_SIZE);
        ram.put(self.avail + 4 + 2 * slot, &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.put(self.avail + 2, &self.avail_idx.to_le_bytes());
    }

    /// Posts a chain of `(addr, len, writable)` buffers; returns its head.
    fn post(&mut self, ram: &mut Ram, buffers: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_desc;
        for (position, &(addr, len, writable)) in buffers.iter().enumerate() {
            let index = self.next_desc;
            let next = (index + 1) % QUEUE_SIZE;
            let last = position + 1 == buffers.len();
            let flags =
                if writable { DESC_F_WRITE } else { 0 } | if last { 0 } else { DESC_F_NEXT };
            self.write_desc(ram, index, addr, len, flags, next);
            self.next_desc = next;
        }
        self.offer(ram, head);
        head
    }

    fn take_used(&mut self, ram: &Ram) -> Vec<(u32, u32)> {
        let idx = ram.u16_at(self.used + 2);
        let mut out = Vec::new();
        while self.used_seen != idx {
            let slot = u64::from(self.used_seen % QUEUE_SIZE);
            let element = self.used + 4 + 8 * slot;
            out.push((ram.u32_at(element), ram.u32_at(element + 4)));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }
}

/// A fake cell: RAM, its vsock device behind virtio-mmio, and a Linux-like driver.
struct Cell {
    cid: u64,
    mmio: VirtioMmio<VsockDevice>,
    ram: Ram,
    rx: DriverQueue,
    tx: DriverQueue,
    /// Posted rx chains: head, header buffer, data buffer.
    rx_posted: Vec<(u16, u64, u64)>,
    next_buffer: u64,
    /// Packets received, in order.
    inbox: Vec<(Header, Vec<u8>)>,
    /// The driver's fwd_cnt (bytes its applications read: everything received).
    fwd_cnt: u32,
    buf_alloc: u32,
}

impl Cell {
    fn new(cid: u64, base: u64) -> Self {
        let mut cell = Self {
            cid,
            mmio: VirtioMmio::new(VsockDevice::new(cid)),
            ram: Ram::new(base),
            rx: DriverQueue::new(base, 0),
            tx: DriverQueue::new(base, 1),
            rx_posted: Vec::new(),
            next_buffer: 0,
            inbox: Vec::new(),
            fwd_cnt: 0,
            buf_alloc: 256 * 1024,
        };
        cell.handshake();
        cell
    }

    fn write(&mut self, offset: u64, value: u32) {
        self.mmio.write(offset, WORD, value, &mut self.ram).unwrap();
    }

    fn handshake(&mut self) {
        self.write(offset::STATUS, 0);
        self.write(offset::STATUS, status::ACKNOWLEDGE | status::DRIVER);
        self.write(offset::DRIVER_FEATURES_SEL, 1);
        self.write(offset::DRIVER_FEATURES, 1);
        let base = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK;
        self.write(offset::STATUS, base);
        for index in 0..3u64 {
            let queue = DriverQueue::new(self.ram.base, index);
            self.write(offset::QUEUE_SEL, index as u32);
            self.write(offset::QUEUE_NUM, u32::from(QUEUE_SIZE));
            for (low, address) in [
                (offset::QUEUE_DESC_LOW, queue.desc),
                (offset::QUEUE_DRIVER_LOW, queue.avail),
                (offset::QUEUE_DEVICE_LOW, queue.used),
            ] {
                self.write(low, address as u32);
                self.write(low + 4, (address >> 32) as u32);
            }
            self.write(offset::QUEUE_READY, 1);
        }
        self.write(offset::STATUS, base | status::DRIVER_OK);
        assert!(self.mmio.is_live());
        self.rx = DriverQueue::new(self.ram.base, 0);
        self.tx = DriverQueue::new(self.ram.base, 1);
        self.rx_posted.clear();
        assert!(self.mmio.device_mut().take_reset());
    }

    /// A buffer of `len` bytes in the cell's buffer area (round-robin over 512 KiB).
    fn buffer(&mut self, len: u32) -> u64 {
        if self.next_buffer + u64::from(len) > 0x8_0000 {
            self.next_buffer = 0;
        }
        let at = self.ram.base + BUFFER_AREA + self.next_buffer;
        self.next_buffer += u64::from(len).next_multiple_of(64);
        at
    }

    /// Posts `count` rx chains as Linux 6.1 does: header buffer + 4096-byte data buffer.
    fn post_rx(&mut self, count: usize) {
        for _ in 0..count {
            let header = self.buffer(HEADER_SIZE as u32);
            let data = self.buffer(RX_BUF);
            let head = self.rx.post(
                &mut self.ram,
                &[(header, HEADER_SIZE as u32, true), (data, RX_BUF, true)],
            );
            self.rx_posted.push((head, header, data));
        }
    }

    /// Queues a tx packet: header and payload in two descriptors (`split`) or one.
    fn send_raw(&mut self, header: &Header, payload: &[u8], split: bool) {
        let bytes = header.to_bytes();
        if split && !payload.is_empty() {
            let at = self.buffer(HEADER_SIZE as u32);
            self.ram.put(at, &bytes);
            let data = self.buffer(payload.len() as u32);
            self.ram.put(data, payload);
            self.tx.post(
                &mut self.ram,
                &[
                    (at, HEADER_SIZE as u32, false),
                    (data, payload.len() as u32, false),
                ],
            );
        } else {
            let mut all = bytes.to_vec();
            all.extend_from_slice(payload);
            let at = self.buffer(all.len() as u32);
            self.ram.put(at, &all);
            self.tx
                .post(&mut self.ram, &[(at, all.len() as u32, false)]);
        }
        self.write(offset::QUEUE_NOTIFY, TXQ as u32);
    }

    /// A header from this cell with its credit fields.
    fn header(&self, src_port: u32, dst_cid: u64, dst_port: u32, op: u16, len: u32) -> Header {
        Header {
            src_cid: self.cid,
            dst_cid,
            src_port,
            dst_port,
            len,
            kind: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: self.buf_alloc,
            fwd_cnt: self.fwd_cnt,
        }
    }

    fn send(&mut self, src_port: u32, dst_cid: u64, dst_port: u32, op: u16, payload: &[u8]) {
        let header = self.header(src_port, dst_cid, dst_port, op, payload.len() as u32);
        self.send_raw(&header, payload, true);
    }

    /// Runs the device against the switch and collects what arrived (reposting rx buffers as
    /// Linux does).
    fn service(&mut self, switch: &mut VsockSwitch) -> bool {
        self.mmio.device_mut().take_kick();
        let progress = self.mmio.service(&mut self.ram, switch);
        for (head, written) in self.rx.take_used(&self.ram) {
            let position = self
                .rx_posted
                .iter()
                .position(|&(posted, _, _)| u32::from(posted) == head)
                .expect("a used rx chain was posted");
            let (_, header_at, data_at) = self.rx_posted.remove(position);
            assert!(written as usize >= HEADER_SIZE, "rx used length {written}");
            let header =
                Header::parse(self.ram.get(header_at, HEADER_SIZE)).expect("a whole header");
            let len = written as usize - HEADER_SIZE;
            assert_eq!(
                header.len as usize, len,
                "header len matches the used length"
            );
            let payload = self.ram.get(data_at, len).to_vec();
            self.fwd_cnt = self.fwd_cnt.wrapping_add(header.len);
            self.inbox.push((header, payload));
            self.post_rx(1);
        }
        self.tx.take_used(&self.ram);
        progress
    }

    fn take_inbox(&mut self) -> Vec<(Header, Vec<u8>)> {
        core::mem::take(&mut self.inbox)
    }
}

static FLOWS: [Flow; 4] = [
    Flow {
        from: "alpha",
        to: "beta",
        port: 1234,
        max_message: MAX_PAYLOAD,
        rate_per_second: 1000,
        only_while_focused: FocusRule::None,
    },
    Flow {
        from: "alpha",
        to: "beta",
        port: 77,
        max_message: 100,
        rate_per_second: 4,
        only_while_focused: FocusRule::None,
    },
    Flow {
        from: "alpha",
        to: "gamma",
        port: 5,
        max_message: MAX_PAYLOAD,
        rate_per_second: 1000,
        only_while_focused: FocusRule::Destination,
    },
    Flow {
        from: "gamma",
        to: "beta",
        port: 9,
        max_message: MAX_PAYLOAD,
        rate_per_second: 1000,
        only_while_focused: FocusRule::Source,
    },
];

fn switch() -> VsockSwitch {
    VsockSwitch::new(
        &[("alpha", A), ("beta", B), ("gamma", C)],
        Policy { flows: &FLOWS },
    )
}

/// A stream connection request from `src_cid`:`src_port` to `dst_cid`:`dst_port`, with 64 KiB
/// of credit.
fn request(src_cid: u64, dst_cid: u64, src_port: u32, dst_port: u32) -> Header {
    Header {
        src_cid,
        dst_cid,
        src_port,
        dst_port,
        kind: TYPE_STREAM,
        op: op::REQUEST,
        buf_alloc: 65536,
        ..Header::default()
    }
}

/// The listener's acceptance of `request`.
fn response_to(request: &Header) -> Header {
    Header {
        src_cid: request.dst_cid,
        dst_cid: request.src_cid,
        src_port: request.dst_port,
        dst_port: request.src_port,
        op: op::RESPONSE,
        ..*request
    }
}

/// alpha:1's request to beta:77 (the flow with a 100-byte message and 4 a second) and beta's
/// response, as the switch sees them.
fn request_and_response() -> (Header, Header) {
    let request = request(A, B, 1, 77);
    (request, response_to(&request))
}

fn cells() -> (Cell, Cell, VsockSwitch) {
    let mut alpha = Cell::new(A, 0x4000_0000);
    let mut beta = Cell::new(B, 0x8000_0000);
    alpha.post_rx(8);
    beta.post_rx(8);
    (alpha, beta, switch())
}

/// Services both cells until nothing moves.
fn settle(alpha: &mut Cell, beta: &mut Cell, switch: &mut VsockSwitch) {
    for _ in 0..64 {
        let a = alpha.service(switch);
        let b = beta.service(switch);
        if !a && !b {
            return;
        }
    }
    panic!("no quiescence");
}

/// alpha:1000 connects to beta:1234 and beta accepts.
fn connect(alpha: &mut Cell, beta: &mut Cell, switch: &mut VsockSwitch) {
    alpha.send(1000, B, 1234, op::REQUEST, &[]);
    settle(alpha, beta, switch);
    let got = beta.take_inbox();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.op, op::REQUEST);
    assert_eq!((got[0].0.src_cid, got[0].0.src_port), (A, 1000));
    beta.send(1234, A, 1000, op::RESPONSE, &[]);
    settle(alpha, beta, switch);
    let got = alpha.take_inbox();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0.op, op::RESPONSE);
}

fn ops(packets: &[(Header, Vec<u8>)]) -> Vec<u16> {
    packets.iter().map(|(header, _)| header.op).collect()
}

#[test]
fn header_has_the_linux_layout() {
    let header = Header {
        src_cid: 0x0102_0304_0506_0708,
        dst_cid: 3,
        src_port: 0x1122_3344,
        dst_port: 9,
        len: 0x55,
        kind: TYPE_STREAM,
        op: op::CREDIT_REQUEST,
        flags: 3,
        buf_alloc: 0xaabb_ccdd,
        fwd_cnt: 0x0eee_ffff,
    };
    let bytes = header.to_bytes();
    assert_eq!(bytes[0], 0x08);
    assert_eq!(bytes[7], 0x01);
    assert_eq!(bytes[8], 3);
    assert_eq!(&bytes[16..20], &0x1122_3344u32.to_le_bytes());
    assert_eq!(bytes[24], 0x55);
    assert_eq!(&bytes[28..30], &[1, 0]);
    assert_eq!(&bytes[30..32], &[7, 0]);
    assert_eq!(bytes[32], 3);
    assert_eq!(&bytes[36..40], &0xaabb_ccddu32.to_le_bytes());
    assert_eq!(&bytes[40..44], &0x0eee_ffffu32.to_le_bytes());
    assert_eq!(Header::parse(&bytes), Some(header));
    assert_eq!(Header::parse(&bytes[..43]), None);
}

#[test]
fn device_identity_and_config() {
    let mut cell = Cell::new(0x1_0000_0007, 0x4000_0000);
    assert_eq!(cell.mmio.read(offset::DEVICE_ID, WORD), Ok(19));
    cell.write(offset::DEVICE_FEATURES_SEL, 0);
    assert_eq!(cell.mmio.read(offset::DEVICE_FEATURES, WORD), Ok(0));
    assert_eq!(cell.mmio.offered_features(), F_VERSION_1);
    assert_eq!(cell.mmio.read(0x100, WORD), Ok(7));
    assert_eq!(cell.mmio.read(0x104, WORD), Ok(1));
    assert_eq!(cell.mmio.read(0x108, WORD), Ok(0));
    assert_eq!(cell.mmio.read(0x101, AccessWidth::Byte), Ok(0));
    assert_eq!(cell.mmio.queues().len(), 3);
    // A notify of the event queue does nothing; of a queue beyond 2, fails the device.
    cell.write(offset::QUEUE_NOTIFY, EVENTQ as u32);
    assert!(cell.mmio.is_live());
}

#[test]
fn an_allowed_flow_connects_and_data_arrives_in_order() {
    let (mut alpha, mut beta, mut switch) = cells();
    connect(&mut alpha, &mut beta, &mut switch);
    assert_eq!(switch.connection_count(), 1);
    // One descriptor, two descriptors, and a payload longer than one rx buffer.
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    alpha.send(1000, B, 1234, op::RW, b"hello ");
    let header = alpha.header(1000, B, 1234, op::RW, 6);
    alpha.send_raw(&header, b"world!", false);
    alpha.send(1000, B, 1234, op::RW, &big);
    settle(&mut alpha, &mut beta, &mut switch);
    let got = beta.take_inbox();
    assert!(got.iter().all(|(header, _)| header.op == op::RW
        && header.src_cid == A
        && header.dst_cid == B
        && header.dst_port == 1234));
    let data: Vec<u8> = got
        .iter()
        .flat_map(|(_, payload)| payload.clone())
        .collect();
    let mut expected = b"hello world!".to_vec();
    expected.extend_from_slice(&big);
    assert_eq!(data, expected);
    // 10,000 bytes in 4096-byte rx buffers: three pieces.
    assert_eq!(got.len(), 5);
    // And back.
    beta.send(1234, A, 1000, op::RW, b"pong");
    settle(&mut alpha, &mut beta, &mut switch);
    let got = alpha.take_inbox();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"pong");
    let (flow, stats) = switch.flow_stats().next().unwrap();
    assert_eq!(flow.port, 1234);
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.packets, 4);
    assert_eq!(stats.bytes, 12 + 10_000 + 4);
    assert_eq!(stats.refusals, 0);
    // Nothing was written outside the cells' used rings and posted rx buffers.
    for cell in [&alpha, &beta] {
        for &(ipa, len) in &cell.ram.writes {
            let offset = ipa - cell.ram.base;
            assert!(
                offset < 0x3_0000 || offset + len as u64 <= BUFFER_AREA + 0x8_0000,
                "write at {ipa:#x}"
            );
        }
    }
}

#[test]
fn credit_limits_the_bytes_in_flight() {
    let (mut alpha, mut beta, mut switch) = cells();
    beta.buf_alloc = 8192;
    connect(&mut alpha, &mut beta, &mut switch);
    // alpha sends exactly the credit beta gave; beta does not read (no rx buffers consumed:
    // the data sits in the switch), so fwd_cnt stays 0 as far as alpha knows.
    let payload = vec![7u8; 4096];
    let header = alpha.header(1000, B, 1234, op::RW, 4096);
    assert_eq!(switch.route(A, &header, &payload), Verdict::Forwarded);
    assert_eq!(switch.route(A, &header, &payload), Verdict::Forwarded);
    let one = alpha.header(1000, B, 1234, op::RW, 1);
    // Beta has credited nothing more: one byte more is refused.
    let mut second = switch.clone();
    assert_eq!(
        second.route(A, &one, &[1]),
        Verdict::Refused(Refusal::CreditExceeded)
    );
    assert_eq!(second.connection_count(), 0);
    // With beta's credit update (it consumed 4096 bytes), alpha may send 4096 more.
    let mut update = beta.header(1234, A, 1000, op::CREDIT_UPDATE, 0);
    update.fwd_cnt = 4096;
    assert_eq!(switch.route(B, &update, &[]), Verdict::Forwarded);
    assert_eq!(switch.route(A, &header, &payload), Verdict::Forwarded);
    assert_eq!(
        switch.route(A, &one, &[1]),
        Verdict::Refused(Refusal::CreditExceeded)
    );
}

#[test]
fn credit_fields_pass_unchanged_and_a_large_buf_alloc_is_still_bounded_by_the_queue() {
    let (mut alpha, mut beta, mut switch) = cells();
    beta.buf_alloc = 1 << 30;
    alpha.send(1000, B, 1234, op::REQUEST, &[]);
    settle(&mut alpha, &mut beta, &mut switch);
    beta.take_inbox();
    beta.send(1234, A, 1000, op::RESPONSE, &[]);
    settle(&mut alpha, &mut beta, &mut switch);
    let got = alpha.take_inbox();
    // Linux's receiver counts its free space against the buf_alloc it advertised: the switch
    // must not change it.
    assert_eq!(got[0].0.buf_alloc, 1 << 30);
    // beta asks for a gigabyte; what waits for it in cellvisor stays bounded.
    let payload = vec![0u8; MAX_PAYLOAD as usize];
    let header = alpha.header(1000, B, 1234, op::RW, MAX_PAYLOAD);
    let mut forwarded = 0;
    while switch.route(A, &header, &payload) == Verdict::Forwarded {
        forwarded += 1;
        assert!(forwarded < 100);
    }
    assert_eq!(forwarded, RX_BYTES / MAX_PAYLOAD as usize);
    assert_eq!(switch.queued_bytes(B), RX_BYTES);
    assert_eq!(switch.route(A, &header, &payload), Verdict::Busy);
    assert_eq!(switch.cell_stats(A).unwrap().refusals, 0);
}

#[test]
fn a_credit_request_is_answered_by_the_switch() {
    let (mut alpha, mut beta, mut switch) = cells();
    beta.buf_alloc = 5000;
    connect(&mut alpha, &mut beta, &mut switch);
    alpha.send(1000, B, 1234, op::CREDIT_REQUEST, &[]);
    settle(&mut alpha, &mut beta, &mut switch);
    let got = alpha.take_inbox();
    assert_eq!(ops(&got), [op::CREDIT_UPDATE]);
    assert_eq!(got[0].0.buf_alloc, 5000);
    assert_eq!((got[0].0.src_cid, got[0].0.src_port), (B, 1234));
    assert!(beta.take_inbox().is_empty());
}

#[test]
fn shutdown_and_reset_close_the_connection() {
    let (mut alpha, mut beta, mut switch) = cells();
    connect(&mut alpha, &mut beta, &mut switch);
    let mut shutdown = alpha.header(1000, B, 1234, op::SHUTDOWN, 0);
    shutdown.flags = SHUTDOWN_RCV | SHUTDOWN_SEND;
    alpha.send_raw(&shutdown, &[], true);
    settle(&mut alpha, &mut beta, &mut switch);
    let got = beta.take_inbox();
    assert_eq!(ops(&got), [op::SHUTDOWN]);
    assert_eq!(got[0].0.flags, 3);
    // Data after the sender's own SHUTDOWN(SEND) is a violation.
    let mut copy = switch.clone();
    let rw = alpha.header(1000, B, 1234, op::RW, 1);
    assert_eq!(
        copy.route(A, &rw, &[1]),
        Verdict::Refused(Refusal::Protocol)
    );
    // beta answers with RST, as Linux does once the peer shut down both ways.
    beta.send(1234, A, 1000, op::RST, &[]);
    settle(&mut alpha, &mut beta, &mut switch);
    assert_eq!(ops(&alpha.take_inbox()), [op::RST]);
    assert_eq!(switch.connection_count(), 0);
    // The connection is gone: data on it gets an RST, an RST gets nothing.
    alpha.send(1000, B, 1234, op::RW, b"late");
    alpha.send(1000, B, 1234, op::RST, &[]);
    settle(&mut alpha, &mut beta, &mut switch);
    assert_eq!(ops(&alpha.take_inbox()), [op::RST]);
    assert!(beta.take_inbox().is_empty());
}

#[test]
fn data_queued_before_a_guest_reset_still_arrives() {
    let (mut alpha, mut beta, mut switch) = cells();
    connect(&mut alpha, &mut beta, &mut switch);
    let rw = alpha.header(1000, B, 1234, op::RW, 3);
    assert_eq!(switch.route(A, &rw, b"abc"), Verdict::Forwarded);
    let rst = alpha.header(1000, B, 1234, op::RST, 0);
    assert_eq!(switch.route(A, &rst, &[]), Verdict::Forwarded);
    settle(&mut alpha, &mut beta, &mut switch);
    let got = beta.take_inbox();
    assert_eq!(ops(&got), [op::RW, op::RST]);
    assert_eq!(got[0].1, b"abc");
}

#[test]
fn a_refused_flow_gets_rst_and_is_counted() {
    let (mut alpha, mut beta, mut switch) = cells();
    // No flow for port 4321, and none from beta to alpha.
    alpha.send(1000, B, 4321, op::REQUEST, &[]);
    beta.send(2000, A, 1234, op::REQUEST, &[]);
    settle(&mut alpha, &mut beta, &mut switch);
    let got = alpha.take_inbox();
    assert_eq!(ops(&got), [op::RST]);
    assert_eq!((got[0].0.src_cid, got[0].0.src_port), (B, 4321));
    assert_eq!((got[0].0.dst_cid, got[0].0.dst_port), (A, 1000));
    assert_eq!(ops(&beta.take_inbox()), [op::RST]);
    assert_eq!(switch.connection_count(), 0);
    assert_eq!(switch.cell_stats(A).unwrap().refusals, 1);
    assert_eq!(switch.cell_stats(B).unwrap().refusals, 1);
    assert_eq!(
        switch.take_refusal(A).map(|(why, _)| why),
        Some(Refusal::NoFlow)
    );
    assert_eq!(switch.take_refusal(A), None);
}

#[test]
fn the_focus_rule_follows_the_focused_flag() {
    let mut switch = switch();
    let request = request(A, C, 1, 5);
    assert_eq!(
        switch.route(A, &request, &[]),
        Verdict::Refused(Refusal::NotFocused)
    );
    assert_eq!(switch.flow_stats().nth(2).unwrap().1.refusals, 1);
    // The source being focused does not help a Destination rule.
    switch.set_focused(A, true);
    assert_eq!(
        switch.route(A, &request, &[]),
        Verdict::Refused(Refusal::NotFocused)
    );
    switch.set_focused(C, true);
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    let response = response_to(&request);
    assert_eq!(switch.route(C, &response, &[]), Verdict::Forwarded);
    let rw = Header {
        op: op::RW,
        len: 2,
        ..request
    };
    assert_eq!(switch.route(A, &rw, b"ok"), Verdict::Forwarded);
    // gamma goes behind: data in either direction resets the connection.
    switch.set_focused(C, false);
    let back = Header {
        op: op::RW,
        len: 2,
        ..response
    };
    assert_eq!(
        switch.route(C, &back, b"no"),
        Verdict::Refused(Refusal::NotFocused)
    );
    assert_eq!(switch.connection_count(), 0);
    let to_alpha: Vec<u16> = core::iter::from_fn(|| switch.next_rx(A, 4096))
        .map(|(header, _)| header.op)
        .collect();
    // alpha had not taken the RESPONSE yet: it is taken back, only the RST is left.
    assert_eq!(to_alpha, [op::RST]);
    // A Source rule: gamma -> beta only while gamma is focused.
    let request = Header {
        src_cid: C,
        dst_cid: B,
        dst_port: 9,
        ..request
    };
    assert_eq!(
        switch.route(C, &request, &[]),
        Verdict::Refused(Refusal::NotFocused)
    );
    switch.set_focused(C, true);
    assert_eq!(switch.route(C, &request, &[]), Verdict::Forwarded);
}

#[test]
fn rate_and_message_size_are_enforced() {
    let mut switch = switch();
    let (request, response) = request_and_response();
    switch.set_now(10_000);
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);

    assert_eq!(switch.route(B, &response, &[]), Verdict::Forwarded);
    let rw = Header {
        op: op::RW,
        len: 100,
        ..request
    };
    let payload = [0u8; 101];
    assert_eq!(
        switch.route(A, &Header { len: 101, ..rw }, &payload),
        Verdict::Refused(Refusal::MessageTooLarge)
    );
    // Reconnect (the refusal reset the connection); 4 messages a second, the request is one.
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    assert_eq!(switch.route(B, &response, &[]), Verdict::Forwarded);
    // The bucket held 4: two requests spent two.
    assert_eq!(switch.route(A, &rw, &payload[..100]), Verdict::Forwarded);
    assert_eq!(switch.route(A, &rw, &payload[..100]), Verdict::Forwarded);
    assert_eq!(
        switch.route(A, &rw, &payload[..100]),
        Verdict::Refused(Refusal::RateExceeded)
    );
    let (_, stats) = switch.flow_stats().nth(1).unwrap();
    assert_eq!(stats.refusals, 2);
    assert_eq!(stats.packets, 2);
    // Half a second later two more tokens: a new connection and one message.
    switch.set_now(10_500);
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    assert_eq!(switch.route(B, &response, &[]), Verdict::Forwarded);
    assert_eq!(switch.route(A, &rw, &payload[..100]), Verdict::Forwarded);
    assert_eq!(
        switch.route(A, &rw, &payload[..100]),
        Verdict::Refused(Refusal::RateExceeded)
    );
    // A clock going back does not mint tokens.
    switch.set_now(0);
    assert_eq!(
        switch.route(A, &request, &[]),
        Verdict::Refused(Refusal::RateExceeded)
    );
}

#[test]
fn protocol_violations_are_reset() {
    let mut switch = switch();
    let request = request(A, B, 1, 1234);
    let response = response_to(&request);
    let rw = Header {
        op: op::RW,
        len: 1,
        ..request
    };
    // Data before the RESPONSE.
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    assert_eq!(
        switch.route(A, &rw, b"x"),
        Verdict::Refused(Refusal::Protocol)
    );
    assert_eq!(switch.connection_count(), 0);
    // beta never took the REQUEST: it is taken back and beta gets nothing; alpha gets RST.
    assert_eq!(switch.queued(B), 0);
    assert_eq!(switch.next_rx(A, 0).map(|(h, _)| h.op), Some(op::RST));
    // A duplicate REQUEST resets the connection on both sides.
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    assert_eq!(switch.next_rx(B, 0).map(|(h, _)| h.op), Some(op::REQUEST));
    assert_eq!(
        switch.route(A, &request, &[]),
        Verdict::Refused(Refusal::DuplicateRequest)
    );
    assert_eq!(switch.next_rx(B, 0).map(|(h, _)| h.op), Some(op::RST));
    assert_eq!(switch.next_rx(A, 0).map(|(h, _)| h.op), Some(op::RST));
    // A RESPONSE from the connecting side.
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    let wrong = Header {
        op: op::RESPONSE,
        ..request
    };
    assert_eq!(
        switch.route(A, &wrong, &[]),
        Verdict::Refused(Refusal::Protocol)
    );
    // An unknown op on a connection is dropped, as Linux drops it; the connection stays.
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    assert_eq!(switch.route(B, &response, &[]), Verdict::Forwarded);
    let unknown = Header { op: 99, ..request };
    assert_eq!(
        switch.route(A, &unknown, &[]),
        Verdict::Dropped(Refusal::UnknownOp)
    );
    assert_eq!(switch.connection_count(), 1);
    // ...but without a connection it gets an RST.
    let stray = Header {
        op: 99,
        src_port: 50,
        ..request
    };
    assert_eq!(
        switch.route(A, &stray, &[]),
        Verdict::Refused(Refusal::NoConnection)
    );
    // A socket type other than stream (SEQPACKET is 2), an unknown CID, the host's CID.
    let seqpacket = Header {
        kind: 2,
        src_port: 51,
        ..request
    };
    assert_eq!(
        switch.route(A, &seqpacket, &[]),
        Verdict::Refused(Refusal::BadType)
    );
    for cid in [CID_HOST, 99, A, u64::MAX] {
        let elsewhere = Header {
            dst_cid: cid,
            src_port: 52,
            ..request
        };
        assert_eq!(
            switch.route(A, &elsewhere, &[]),
            Verdict::Refused(Refusal::UnknownCid)
        );
    }
    // A spoofed source is dropped without an answer.
    let before = switch.queued(A);
    let spoofed = Header {
        src_cid: C,
        src_port: 53,
        ..request
    };
    assert_eq!(
        switch.route(A, &spoofed, &[]),
        Verdict::Dropped(Refusal::SpoofedSource)
    );
    assert_eq!(switch.queued(A), before);
    assert_eq!(switch.queued(C), 0);
    assert_eq!(switch.cell_stats(A).unwrap().dropped, 2);
    // A payload on a packet other than RW, or a len that disagrees with the payload.
    let fat = Header {
        len: 1,
        src_port: 54,
        ..request
    };
    assert_eq!(
        switch.route(A, &fat, b"x"),
        Verdict::Refused(Refusal::Malformed)
    );
    assert_eq!(
        switch.route(A, &Header { len: 5, ..rw }, b"x"),
        Verdict::Refused(Refusal::Malformed)
    );
    // That last one was on the live connection: it is gone, beta got an RST.
    assert_eq!(switch.connection_count(), 0);
}

#[test]
fn malformed_tx_packets_get_rst_and_never_panic() {
    let (mut alpha, mut beta, mut switch) = cells();
    connect(&mut alpha, &mut beta, &mut switch);
    // len larger than what the chain holds: the packet is not trusted, the connection reset.
    let mut header = alpha.header(1000, B, 1234, op::RW, 100);
    alpha.send_raw(&header, b"short", true);
    settle(&mut alpha, &mut beta, &mut switch);
    assert_eq!(ops(&alpha.take_inbox()), [op::RST]);
    assert_eq!(ops(&beta.take_inbox()), [op::RST]);
    assert_eq!(alpha.mmio.device().stats().malformed, 1);
    // len beyond the payload cap, without a connection: RST to the sender only.
    header.len = MAX_PAYLOAD + 1;
    header.src_port = 2000;
    alpha.send_raw(&header, &[0u8; 64], false);
    // A runt: fewer bytes than a header. Nobody to answer: dropped.
    let at = alpha.buffer(16);
    alpha.tx.post(&mut alpha.ram, &[(at, 16, false)]);
    alpha.write(offset::QUEUE_NOTIFY, TXQ as u32);
    settle(&mut alpha, &mut beta, &mut switch);
    assert_eq!(ops(&alpha.take_inbox()), [op::RST]);
    assert!(beta.take_inbox().is_empty());
    assert_eq!(alpha.mmio.device().stats().runts, 1);
    assert!(alpha.mmio.is_live());
    assert_eq!(switch.cell_stats(A).unwrap().refusals, 2);
}

/// Asserts the device failed with `error` and wrote nothing but used rings.
fn assert_failed(cell: &mut Cell, error: VirtioError) {
    assert_eq!(cell.mmio.take_error(), Some(error));
    assert_ne!(cell.mmio.status() & status::DEVICE_NEEDS_RESET, 0);
    assert!(!cell.mmio.is_live());
}

#[test]
fn hostile_queues_fail_the_device_and_write_nothing_outside() {
    // A descriptor loop on tx.
    let (mut alpha, beta, mut switch) = cells();
    let at = alpha.buffer(64);
    alpha
        .tx
        .write_desc(&mut alpha.ram, 0, at, 8, DESC_F_NEXT, 1);
    alpha
        .tx
        .write_desc(&mut alpha.ram, 1, at, 8, DESC_F_NEXT, 0);
    alpha.tx.offer(&mut alpha.ram, 0);
    alpha.ram.writes.clear();
    alpha.service(&mut switch);
    assert_failed(&mut alpha, VirtioError::ChainTooLong);
    assert!(alpha.ram.writes.is_empty());
    // A chain longer than the queue (every descriptor chained to the next, 64 of them).
    let mut alpha = Cell::new(A, 0x4000_0000);
    for index in 0..QUEUE_SIZE {
        alpha
            .tx
            .write_desc(&mut alpha.ram, index, at, 1, DESC_F_NEXT, index + 1);
    }
    alpha.tx.offer(&mut alpha.ram, 0);
    alpha.service(&mut switch);
    assert_failed(&mut alpha, VirtioError::DescriptorOutOfRange);
    // A tx buffer outside the cell's RAM (inside the other cell's).
    let mut alpha = Cell::new(A, 0x4000_0000);
    alpha
        .tx
        .post(&mut alpha.ram, &[(beta.ram.base + BUFFER_AREA, 64, false)]);
    alpha.service(&mut switch);
    assert_failed(&mut alpha, VirtioError::OutsideRam);
    // An rx buffer outside beta's RAM, pointing into alpha's: nothing written anywhere.
    let mut alpha = Cell::new(A, 0x4000_0000);
    alpha.post_rx(4);
    let mut beta = Cell::new(B, 0x8000_0000);
    beta.rx.post(
        &mut beta.ram,
        &[
            (alpha.ram.base + BUFFER_AREA, 44, true),
            (alpha.ram.base, 4096, true),
        ],
    );
    alpha.send(1000, B, 1234, op::REQUEST, &[]);
    alpha.service(&mut switch);
    beta.ram.writes.clear();
    let before = alpha.ram.bytes.clone();
    beta.service(&mut switch);
    assert_failed(&mut beta, VirtioError::OutsideRam);
    assert!(beta.ram.writes.is_empty());
    assert_eq!(alpha.ram.bytes, before);
    // An rx buffer too short for a header, and a readable one.
    let mut beta = Cell::new(B, 0x8000_0000);
    let at = beta.buffer(64);
    request_to_beta(&mut switch, 1100);
    beta.rx.post(&mut beta.ram, &[(at, 43, true)]);
    beta.service(&mut switch);
    assert_failed(&mut beta, VirtioError::BufferTooShort);
    let mut beta = Cell::new(B, 0x8000_0000);
    beta.rx.post(&mut beta.ram, &[(at, 64, false)]);
    beta.service(&mut switch);
    assert_failed(&mut beta, VirtioError::UnexpectedReadable);
    // A header-only rx buffer takes a packet without payload but not data.
    let mut beta = Cell::new(B, 0x8000_0000);
    while switch.next_rx(B, 4096).is_some() {}
    request_to_beta(&mut switch, 1101);
    beta.rx.post(&mut beta.ram, &[(at, 44, true)]);
    beta.mmio.service(&mut beta.ram, &mut switch);
    assert!(beta.mmio.is_live());
    assert_eq!(beta.rx.take_used(&beta.ram), [(0, 44)]);
}

/// alpha:`port` asks for beta:1234 (queued for beta).
fn request_to_beta(switch: &mut VsockSwitch, port: u32) {
    let request = request(A, B, port, 1234);
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
}

#[test]
fn a_full_receiver_throttles_the_sender_without_dropping() {
    let (mut alpha, mut beta, mut switch) = cells();
    connect(&mut alpha, &mut beta, &mut switch);
    // beta's driver does not run for a while: everything waits in the switch.
    for i in 0..80u8 {
        alpha.send(1000, B, 1234, op::RW, &[i]);
        alpha.service(&mut switch);
    }
    assert!(alpha.mmio.device().stalled());
    assert_eq!(switch.queued(B), RX_PACKETS);
    // alpha's tx queue holds the rest: the REQUEST and 64 packets forwarded, 1 held, 15 not
    // yet taken.
    assert_eq!(alpha.mmio.queues()[TXQ].last_avail(), 66);
    // beta drains: everything arrives in order, nothing was lost.
    beta.post_rx(16);
    let mut data = Vec::new();
    for _ in 0..32 {
        alpha.service(&mut switch);
        beta.service(&mut switch);
        data.extend(beta.take_inbox().into_iter().flat_map(|(_, p)| p));
    }
    assert_eq!(data, (0..80u8).collect::<Vec<_>>());
    assert!(!alpha.mmio.device().stalled());
    assert_eq!(switch.cell_stats(A).unwrap().refusals, 0);
}

#[test]
fn reset_cell_drops_queued_data_and_resets_the_peers() {
    let (mut alpha, mut beta, mut switch) = cells();
    connect(&mut alpha, &mut beta, &mut switch);
    // alpha's data waits in the switch (beta has not serviced its queue yet).
    let rw = alpha.header(1000, B, 1234, op::RW, 6);
    assert_eq!(switch.route(A, &rw, b"secret"), Verdict::Forwarded);
    let second = alpha.header(1001, B, 1234, op::REQUEST, 0);
    assert_eq!(switch.route(A, &second, &[]), Verdict::Forwarded);
    // Something for alpha waits too.
    let back = beta.header(1234, A, 1000, op::RW, 2);
    assert_eq!(switch.route(B, &back, b"hi"), Verdict::Forwarded);
    assert_eq!(switch.reset_cell(A), 2);
    assert_eq!(switch.connection_count(), 0);
    assert_eq!(switch.queued(A), 0);
    settle(&mut alpha, &mut beta, &mut switch);
    // beta gets the RST of the connection it knew, not the data, and nothing of the request
    // it never saw.
    let got = beta.take_inbox();
    assert_eq!(ops(&got), [op::RST]);
    assert_eq!(
        (got[0].0.src_cid, got[0].0.src_port, got[0].0.dst_port),
        (A, 1000, 1234)
    );
    assert!(alpha.take_inbox().is_empty());
    assert_eq!(switch.cell_stats(A).unwrap().resets, 2);
    // A device reset is reported, so the caller resets the cell in the switch.
    alpha.write(offset::STATUS, 0);
    assert!(alpha.mmio.device_mut().take_reset());
}

#[test]
fn a_wiped_cells_held_back_packet_never_arrives() {
    let (mut alpha, mut beta, mut switch) = cells();
    connect(&mut alpha, &mut beta, &mut switch);
    for i in 0..70u8 {
        let header = alpha.header(1000, B, 1234, op::RW, 1);
        alpha.send_raw(&header, &[i], false);
        alpha.service(&mut switch);
    }
    assert!(alpha.mmio.device().stalled());
    // The wipe: the cell's device is reset and the switch forgets the cell.
    alpha.mmio.reset();
    assert!(!alpha.mmio.device().stalled());
    switch.reset_cell(A);
    let left: Vec<u16> = core::iter::from_fn(|| switch.next_rx(B, 4096))
        .map(|(h, _)| h.op)
        .collect();
    assert_eq!(left, [op::RST]);
}

#[test]
fn connecting_everywhere_does_not_grow_the_table() {
    let mut switch = switch();
    let mut forwarded = 0;
    for port in 0..5000u32 {
        for cid in [0, 1, CID_HOST, A, B, C, 6, u64::MAX] {
            let request = Header {
                src_cid: A,
                dst_cid: cid,
                src_port: 40_000 + port,
                dst_port: port,
                kind: TYPE_STREAM,
                op: op::REQUEST,
                buf_alloc: 65536,
                ..Header::default()
            };
            let mut verdict = switch.route(A, &request, &[]);
            if verdict == Verdict::Busy {
                // alpha's own queue is full of resets: its driver takes them.
                while switch.next_rx(A, 4096).is_some() {}
                verdict = switch.route(A, &request, &[]);
            }
            match verdict {
                Verdict::Refused(_) => {}
                // The two flows from alpha to beta (gamma is not focused).
                Verdict::Forwarded => {
                    assert!(cid == B && (port == 77 || port == 1234));
                    forwarded += 1;
                }
                verdict => panic!("port {port} cid {cid}: {verdict:?}"),
            }
            assert!(switch.queued(A) <= CONTROL_RESERVE);
        }
    }
    assert_eq!(forwarded, 2);
    assert_eq!(switch.connection_count(), 2);
    assert_eq!(switch.cell_stats(A).unwrap().refusals, 5000 * 8 - 2);
    // Many source ports to an allowed port: the pair's share of the table is the limit.
    let flood = |switch: &mut VsockSwitch, from: u64, to: u64, port: u32| {
        let mut table_full = 0;
        for source in 0..1000u32 {
            let request = request(from, to, source, port);
            for cid in [A, B, C] {
                while switch.next_rx(cid, 4096).is_some() {}
            }
            match switch.route(from, &request, &[]) {
                Verdict::Forwarded => {}
                Verdict::Refused(Refusal::TableFull) => table_full += 1,
                verdict => panic!("source {source}: {verdict:?}"),
            }
        }
        table_full
    };
    assert_eq!(
        flood(&mut switch, A, B, 1234),
        1000 - (MAX_PAIR_CONNECTIONS - 2)
    );
    assert_eq!(switch.connection_count(), MAX_PAIR_CONNECTIONS);
    // gamma still reaches beta, up to its own share of the pair.
    switch.set_focused(C, true);
    assert_eq!(flood(&mut switch, C, B, 9), 1000 - MAX_PAIR_CONNECTIONS);
    assert_eq!(switch.connection_count(), 2 * MAX_PAIR_CONNECTIONS);
    // alpha's reset frees its entries, not gamma's.
    switch.reset_cell(A);
    assert_eq!(switch.connection_count(), MAX_PAIR_CONNECTIONS);
    assert_eq!(
        switch.cell_stats(A).unwrap().resets,
        MAX_PAIR_CONNECTIONS as u64
    );
}

#[test]
fn every_kind_of_refusal_has_its_own_dense_index() {
    use Refusal::*;
    let all = [
        UnknownSender,
        SpoofedSource,
        UnknownCid,
        BadType,
        NoFlow,
        NotFocused,
        RateExceeded,
        MessageTooLarge,
        CreditExceeded,
        TableFull,
        DuplicateRequest,
        Protocol,
        NoConnection,
        Malformed,
        UnknownOp,
        StrayReset,
        ChannelOff,
        PeerAbsent,
        AfterReset,
    ];
    assert_eq!(all.len(), Refusal::COUNT);
    for (expected, kind) in all.into_iter().enumerate() {
        // A new kind added to the enum but not here fails the match below to compile.
        match kind {
            UnknownSender | SpoofedSource | UnknownCid | BadType | NoFlow | NotFocused
            | RateExceeded | MessageTooLarge | CreditExceeded | TableFull | DuplicateRequest
            | Protocol | NoConnection | Malformed | UnknownOp | StrayReset | ChannelOff
            | PeerAbsent | AfterReset => {}
        }
        assert_eq!(kind.index(), expected, "{kind:?}");
    }
}

#[test]
fn what_the_peer_had_in_flight_at_a_reset_is_answered_but_not_blamed_on_it() {
    let mut switch = switch();
    let (request, response) = request_and_response();

    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    assert_eq!(switch.route(B, &response, &[]), Verdict::Forwarded);
    // alpha breaks the flow's size: the switch resets both ends.
    let payload = [0u8; 101];
    let too_large = Header {
        op: op::RW,
        len: 101,
        ..request
    };
    assert_eq!(
        switch.route(A, &too_large, &payload),
        Verdict::Refused(Refusal::MessageTooLarge)
    );
    // beta's credit update and data, sent before it took its RST, are answered quietly.
    let update = Header {
        op: op::CREDIT_UPDATE,
        ..response
    };
    assert_eq!(
        switch.route(B, &update, &[]),
        Verdict::Refused(Refusal::AfterReset)
    );
    let data = Header {
        op: op::RW,
        len: 2,
        ..response
    };
    assert_eq!(
        switch.route(B, &data, b"hi"),
        Verdict::Refused(Refusal::AfterReset)
    );
    let beta = switch.cell_stats(B).unwrap();
    assert_eq!((beta.refusals, beta.dropped), (0, 0));
    let answers: Vec<(u16, u32, u32)> = core::iter::from_fn(|| switch.next_rx(B, 4096))
        .map(|(header, _)| (header.op, header.src_port, header.dst_port))
        .collect();
    // One RST for each late packet, as Linux answers them (beta never took the request from its
    // queue, so the switch's reset itself owed it none).
    assert_eq!(answers, [(op::RST, 1, 77); 2]);
    assert_eq!(switch.cell_stats(A).unwrap().refusals, 1);
    assert!(!Refusal::AfterReset.is_logged());
    // alpha caused the reset: its own data on the dead connection gets no such pass...
    let small = Header {
        op: op::RW,
        len: 2,
        ..request
    };
    assert_eq!(
        switch.route(A, &small, b"hi"),
        Verdict::Refused(Refusal::NoConnection)
    );
    assert_eq!(switch.cell_stats(A).unwrap().refusals, 2);
    // ...and a new connection on the same ports is a connection like any other. alpha resets
    // it itself: beta's shutdown that crossed the RST is answered quietly too.
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    assert_eq!(switch.route(B, &response, &[]), Verdict::Forwarded);
    let close = Header {
        op: op::RST,
        ..request
    };
    assert_eq!(switch.route(A, &close, &[]), Verdict::Forwarded);
    assert_eq!(
        switch.route(A, &small, b"hi"),
        Verdict::Refused(Refusal::NoConnection),
        "alpha sent the RST: its data after it is its own fault"
    );
    let shutdown = Header {
        op: op::SHUTDOWN,
        flags: SHUTDOWN_RCV | SHUTDOWN_SEND,
        ..response
    };
    assert_eq!(
        switch.route(B, &shutdown, &[]),
        Verdict::Refused(Refusal::AfterReset)
    );
    // A connection that never existed is refused, as before.
    let stranger = Header {
        src_port: 78,
        ..data
    };
    assert_eq!(
        switch.route(B, &stranger, b"hi"),
        Verdict::Refused(Refusal::NoConnection)
    );
    // The memory is bounded: after RECENT_RESETS more resets the first is forgotten.
    assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
    assert_eq!(switch.route(B, &response, &[]), Verdict::Forwarded);
    assert_eq!(
        switch.route(A, &too_large, &payload),
        Verdict::Refused(Refusal::MessageTooLarge)
    );
    for port in 0..RECENT_RESETS as u32 {
        let request = Header {
            src_port: 100 + port,
            ..request
        };
        switch.set_now(u64::from(port) * 1000);
        assert_eq!(switch.route(A, &request, &[]), Verdict::Forwarded);
        let response = Header {
            dst_port: 100 + port,
            ..response
        };
        assert_eq!(switch.route(B, &response, &[]), Verdict::Forwarded);
        assert_eq!(
            switch.route(
                A,
                &Header {
                    src_port: 100 + port,
                    ..too_large
                },
                &payload
            ),
            Verdict::Refused(Refusal::MessageTooLarge)
        );
    }
    assert_eq!(
        switch.route(B, &data, b"hi"),
        Verdict::Refused(Refusal::NoConnection)
    );
}
