//! `test=vsock-attack`: a hostile cell against its end of the channel (docs/channel.md; the QEMU
//! side is tests/tests/channel_hostile.rs). It runs as *personal* (CID 3) of layout
//! `channel-attack`, whose *corporate* (CID 4) is Debian Linux listening on port 6000 and sending
//! a badge to personal:5000 every 5 s.
//!
//! A minimal virtio-vsock driver of its own (queues and buffers in one static, polled, no
//! interrupts) attacks the device and the switch: malformed queues (tables and buffers outside
//! its RAM or in the other cell's, length 0xFFFF_FFFF, a descriptor loop, a chain over every
//! descriptor and back, NEXT out of range, the available index jumped, device-readable and
//! too-short rx buffers), each of which must put the device in DEVICE_NEEDS_RESET (or be
//! harmlessly used) and leave it working after a reset; malformed headers (a runt, `len` beyond
//! the buffer and above 64 KiB, unknown op and type, spoofed source CIDs, its own, the host's and
//! unknown destination CIDs, data and a response without a connection); a connection request to
//! every port of corporate and to ports of every other CID (all reset but corporate:6000, which
//! Linux accepts); a flood over the allowed paste flow until the switch resets it for the rate;
//! a message above the flow's 16 KiB. Every rx buffer is followed by canary bytes that must stay
//! untouched. Last, a clean paste to corporate:6000 and a badge received from corporate show the
//! channel still works both ways. Every attack starts once corporate's Linux accepts on port
//! 6000 (step `corporate-up`). Lines: `test-guest: vsock-attack: PASS <step>: ...` or
//! `test-guest: FAIL vsock-attack <step>: ...`.

use crate::exception::{probe_read32, probe_write32};
use crate::virtio_mmio::*;
use crate::{OTHER_CELL_RAM, RAM_SIZE, lines, ram_base, timer};
use cellvisor_guest_support::println;
use core::cell::UnsafeCell;
use core::fmt::Display;

/// The cell's virtio-vsock transport (boards/qemu-virt `CHANNEL.cell_window`).
const VSOCK: u64 = 0x0C02_0000;
/// Its configuration space: `le64 guest_cid`.
const CONFIG: u64 = 0x100;
const MAGIC: u32 = 0x7472_6976;
const DEVICE_ID_VSOCK: u32 = 19;
const OWN_CID: u64 = 3;
const CORPORATE_CID: u64 = 4;
const PASTE_PORT: u32 = 6000;
const BADGE_PORT: u32 = 5000;

const ACKNOWLEDGE: u32 = 1;
const DRIVER: u32 = 2;
const DRIVER_OK: u32 = 4;
const FEATURES_OK: u32 = 8;
const NEEDS_RESET: u32 = 0x40;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

const RXQ: u32 = 0;
const TXQ: u32 = 1;
const SIZE: u16 = 64;
const HEADER: usize = 44;
/// Each rx buffer's bytes, and the distance between two (the rest are canaries).
const RX_BYTES: u32 = 256;
const RX_STRIDE: usize = 512;
const CANARY: u8 = 0xA5;

const OP_REQUEST: u16 = 1;
const OP_RESPONSE: u16 = 2;
const OP_RST: u16 = 3;
const OP_SHUTDOWN: u16 = 4;
const OP_RW: u16 = 5;
const STREAM: u16 = 1;
/// The receive buffer this driver advertises.
const BUF_ALLOC: u32 = 64 * 1024;

/// How long an answer may take.
const ANSWER_MS: u64 = 2000;

// The static's layout: rings, rx buffers, a large and a small tx buffer.
const RX_DESC: usize = 0x0000;
const RX_AVAIL: usize = 0x1000;
const RX_USED: usize = 0x2000;
const TX_DESC: usize = 0x3000;
const TX_AVAIL: usize = 0x4000;
const TX_USED: usize = 0x5000;
const RX_BUFFERS: usize = 0x8000;
const TX_LARGE: usize = 0x10000;
const TX_SMALL: usize = 0x1C000;
const MEMORY: usize = 0x20000;

#[repr(C, align(4096))]
struct Memory([u8; MEMORY]);

/// Memory the device reaches: accessed only through volatile raw-pointer reads and writes.
struct Dma(UnsafeCell<Memory>);

// SAFETY: only vCPU 0 runs this mode, and only through volatile raw-pointer accesses.
unsafe impl Sync for Dma {}

static MEM: Dma = Dma(UnsafeCell::new(Memory([0; MEMORY])));

fn address(offset: usize) -> u64 {
    MEM.0.get() as u64 + offset as u64
}

fn put(offset: usize, bytes: &[u8]) {
    let base = MEM.0.get() as *mut u8;
    for (index, byte) in bytes.iter().enumerate() {
        let at = offset + index;
        if at < MEMORY {
            // SAFETY: inside the static.
            unsafe { base.add(at).write_volatile(*byte) };
        }
    }
    // SAFETY: a barrier, so the device sees the bytes before the notification.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

fn get(offset: usize) -> u8 {
    let base = MEM.0.get() as *const u8;
    // SAFETY: inside the static (callers stay below MEMORY).
    unsafe { base.add(offset.min(MEMORY - 1)).read_volatile() }
}

fn get16(offset: usize) -> u16 {
    u16::from_le_bytes([get(offset), get(offset + 1)])
}

fn get32(offset: usize) -> u32 {
    u32::from_le_bytes([
        get(offset),
        get(offset + 1),
        get(offset + 2),
        get(offset + 3),
    ])
}

fn get64(offset: usize) -> u64 {
    u64::from(get32(offset)) | u64::from(get32(offset + 4)) << 32
}

fn descriptor(table: usize, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..].copy_from_slice(&next.to_le_bytes());
    put(table + 16 * usize::from(index % SIZE), &raw);
}

/// A packet header as the wire has it.
#[derive(Clone, Copy, Default)]
struct Header {
    src_cid: u64,
    dst_cid: u64,
    src_port: u32,
    dst_port: u32,
    len: u32,
    kind: u16,
    op: u16,
    flags: u32,
    buf_alloc: u32,
    fwd_cnt: u32,
}

impl Header {
    fn to(dst_cid: u64, src_port: u32, dst_port: u32, op: u16) -> Self {
        Self {
            src_cid: OWN_CID,
            dst_cid,
            src_port,
            dst_port,
            kind: STREAM,
            op,
            buf_alloc: BUF_ALLOC,
            ..Self::default()
        }
    }

    fn bytes(&self) -> [u8; HEADER] {
        let mut out = [0u8; HEADER];
        out[0..8].copy_from_slice(&self.src_cid.to_le_bytes());
        out[8..16].copy_from_slice(&self.dst_cid.to_le_bytes());
        out[16..20].copy_from_slice(&self.src_port.to_le_bytes());
        out[20..24].copy_from_slice(&self.dst_port.to_le_bytes());
        out[24..28].copy_from_slice(&self.len.to_le_bytes());
        out[28..30].copy_from_slice(&self.kind.to_le_bytes());
        out[30..32].copy_from_slice(&self.op.to_le_bytes());
        out[32..36].copy_from_slice(&self.flags.to_le_bytes());
        out[36..40].copy_from_slice(&self.buf_alloc.to_le_bytes());
        out[40..44].copy_from_slice(&self.fwd_cnt.to_le_bytes());
        out
    }

    fn at(offset: usize) -> Self {
        Self {
            src_cid: get64(offset),
            dst_cid: get64(offset + 8),
            src_port: get32(offset + 16),
            dst_port: get32(offset + 20),
            len: get32(offset + 24),
            kind: get16(offset + 28),
            op: get16(offset + 30),
            flags: get32(offset + 32),
            buf_alloc: get32(offset + 36),
            fwd_cnt: get32(offset + 40),
        }
    }
}

fn rx_buffer(index: u16) -> usize {
    RX_BUFFERS + usize::from(index % SIZE) * RX_STRIDE
}

/// How a queue is to be broken before the device sees it.
#[derive(Clone, Copy)]
enum Attack {
    TableOutside,
    BufferAt(u64),
    LengthMax,
    Loop,
    WholeRing,
    NextOutOfRange,
    AvailableJump,
    RxReadable,
    RxTooShort,
}

struct Driver {
    aborts: u32,
    tx_avail: u16,
    rx_avail: u16,
    rx_seen: u16,
    canary_broken: u32,
}

impl Driver {
    fn get(&mut self, offset: u64) -> u32 {
        match probe_read32(VSOCK + offset) {
            Ok(_) => {
                self.aborts += 1;
                0
            }
            Err(value) => value,
        }
    }

    fn set(&mut self, offset: u64, value: u32) {
        if probe_write32(VSOCK + offset, value).is_some() {
            self.aborts += 1;
        }
    }

    fn status(&mut self) -> u32 {
        self.get(STATUS)
    }

    /// Reset, handshake, both queues (the tx table at `tx_table` if given), every rx buffer
    /// posted (broken as `attack` says), DRIVER_OK.
    fn up(&mut self, attack: Option<Attack>) -> Result<(), &'static str> {
        self.set(STATUS, 0);
        if !timer::wait_until(ANSWER_MS, || matches!(probe_read32(VSOCK + STATUS), Err(0))) {
            return Err("Status did not read 0 after the reset");
        }
        for offset in (0..RX_BUFFERS).step_by(256) {
            put(offset, &[0u8; 256]);
        }
        for index in 0..SIZE {
            let buffer = rx_buffer(index);
            put(buffer, &[0u8; RX_BYTES as usize]);
            put(
                buffer + RX_BYTES as usize,
                &[CANARY; RX_STRIDE - RX_BYTES as usize],
            );
        }
        self.tx_avail = 0;
        self.rx_avail = 0;
        self.rx_seen = 0;
        self.set(STATUS, ACKNOWLEDGE);
        self.set(STATUS, ACKNOWLEDGE | DRIVER);
        self.set(DEVICE_FEATURES_SEL, 1);
        if self.get(DEVICE_FEATURES) & 1 == 0 {
            return Err("no VIRTIO_F_VERSION_1");
        }
        self.set(DRIVER_FEATURES_SEL, 0);
        self.set(DRIVER_FEATURES, 0);
        self.set(DRIVER_FEATURES_SEL, 1);
        self.set(DRIVER_FEATURES, 1);
        self.set(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        if self.status() & FEATURES_OK == 0 {
            return Err("FEATURES_OK did not stick");
        }
        let tx_table = match attack {
            Some(Attack::TableOutside) => OTHER_CELL_RAM,
            _ => address(TX_DESC),
        };
        for (queue, table, avail, used) in [
            (RXQ, address(RX_DESC), RX_AVAIL, RX_USED),
            (TXQ, tx_table, TX_AVAIL, TX_USED),
        ] {
            self.set(QUEUE_SEL, queue);
            if self.get(QUEUE_NUM_MAX) < u32::from(SIZE) {
                return Err("QueueNumMax below 64");
            }
            self.set(QUEUE_NUM, u32::from(SIZE));
            for (low, value) in [
                (QUEUE_DESC_LOW, table),
                (QUEUE_DRIVER_LOW, address(avail)),
                (QUEUE_DEVICE_LOW, address(used)),
            ] {
                self.set(low, value as u32);
                self.set(low + 4, (value >> 32) as u32);
            }
            self.set(QUEUE_READY, 1);
        }
        for index in 0..SIZE {
            let (len, flags) = match attack {
                Some(Attack::RxReadable) => (RX_BYTES, 0),
                Some(Attack::RxTooShort) => (8, F_WRITE),
                _ => (RX_BYTES, F_WRITE),
            };
            descriptor(RX_DESC, index, address(rx_buffer(index)), len, flags, 0);
            put(RX_AVAIL + 4 + 2 * usize::from(index), &index.to_le_bytes());
        }
        self.rx_avail = SIZE;
        put(RX_AVAIL + 2, &self.rx_avail.to_le_bytes());
        self.set(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        self.set(QUEUE_NOTIFY, RXQ);
        Ok(())
    }

    /// Puts `header` and `payload_len` payload bytes (of `fill`) in a tx buffer, offers it
    /// (broken as `attack` says) and notifies; returns whether the device used it.
    fn send_with(
        &mut self,
        header: &Header,
        payload_len: usize,
        fill: u8,
        attack: Option<Attack>,
    ) -> bool {
        let total = HEADER + payload_len;
        let buffer = if total <= 0x1000 { TX_SMALL } else { TX_LARGE };
        put(buffer, &header.bytes());
        let chunk = [fill; 256];
        let mut written = 0;
        while written < payload_len {
            let n = (payload_len - written).min(chunk.len());
            put(buffer + HEADER + written, &chunk[..n]);
            written += n;
        }
        let slot = self.tx_avail % SIZE;
        let own = address(buffer);
        let mut step = 1u16;
        match attack {
            Some(Attack::BufferAt(at)) => descriptor(TX_DESC, slot, at, total as u32, 0, 0),
            Some(Attack::LengthMax) => descriptor(TX_DESC, slot, own, u32::MAX, 0, 0),
            Some(Attack::Loop) => {
                descriptor(TX_DESC, slot, own, HEADER as u32, F_NEXT, slot + 1);
                descriptor(TX_DESC, slot + 1, own, 16, F_NEXT, slot);
            }
            Some(Attack::WholeRing) => {
                for index in 0..SIZE {
                    descriptor(TX_DESC, index, own, 16, F_NEXT, (index + 1) % SIZE);
                }
            }
            Some(Attack::NextOutOfRange) => {
                descriptor(TX_DESC, slot, own, total as u32, F_NEXT, SIZE + 7)
            }
            Some(Attack::AvailableJump) => {
                descriptor(TX_DESC, slot, own, total as u32, 0, 0);
                step = 0x8000;
            }
            _ => descriptor(TX_DESC, slot, own, total as u32, 0, 0),
        }
        put(TX_AVAIL + 4 + 2 * usize::from(slot), &slot.to_le_bytes());
        self.tx_avail = self.tx_avail.wrapping_add(step);
        put(TX_AVAIL + 2, &self.tx_avail.to_le_bytes());
        self.set(QUEUE_NOTIFY, TXQ);
        let wanted = self.tx_avail;
        timer::wait_until(ANSWER_MS, || get16(TX_USED + 2) == wanted)
    }

    fn send(&mut self, header: &Header, payload_len: usize) -> bool {
        self.send_with(header, payload_len, b'x', None)
    }

    /// Hands each packet delivered since the last call to `seen` (header, payload start),
    /// checks its canaries and posts its buffer again.
    fn poll(&mut self, mut seen: impl FnMut(&mut Self, Header, usize)) {
        let used = get16(RX_USED + 2);
        let mut reposted = false;
        while self.rx_seen != used {
            let slot = usize::from(self.rx_seen % SIZE);
            let id = get32(RX_USED + 4 + 8 * slot) as u16;
            let buffer = rx_buffer(id);
            if (RX_BYTES as usize..RX_STRIDE).any(|at| get(buffer + at) != CANARY) {
                self.canary_broken += 1;
            }
            let header = Header::at(buffer);
            seen(self, header, buffer + HEADER);
            put(
                RX_AVAIL + 4 + 2 * usize::from(self.rx_avail % SIZE),
                &id.to_le_bytes(),
            );
            self.rx_avail = self.rx_avail.wrapping_add(1);
            self.rx_seen = self.rx_seen.wrapping_add(1);
            reposted = true;
        }
        if reposted {
            put(RX_AVAIL + 2, &self.rx_avail.to_le_bytes());
            self.set(QUEUE_NOTIFY, RXQ);
        }
    }

    /// Waits up to `ms` for a packet to `my_port` from `peer_port`; answers badge requests
    /// from corporate with a reset meanwhile. Returns its op.
    fn answer(&mut self, my_port: u32, peer_port: Option<u32>, ms: u64) -> Option<u16> {
        let mut found = None;
        let start = timer::Instant::now();
        while found.is_none() && start.elapsed_ms() < ms {
            self.poll(|driver, header, _| {
                if header.dst_port == my_port
                    && peer_port.is_none_or(|port| header.src_port == port)
                {
                    found = Some(header.op);
                } else if header.op == OP_REQUEST {
                    let reset =
                        Header::to(header.src_cid, header.dst_port, header.src_port, OP_RST);
                    driver.send(&reset, 0);
                }
            });
        }
        found
    }
}

fn report(pass: bool, step: impl Display, what: impl Display) {
    if pass {
        println!("{}PASS {step}: {what}", lines::VSOCK_ATTACK);
    } else {
        println!("{}vsock-attack {step}: {what}", lines::FAIL);
    }
}

pub fn run() {
    let mut driver = Driver {
        aborts: 0,
        tx_avail: 0,
        rx_avail: 0,
        rx_seen: 0,
        canary_broken: 0,
    };
    let (magic, version, device) = (
        driver.get(MAGIC_VALUE),
        driver.get(VERSION),
        driver.get(DEVICE_ID),
    );
    let cid = u64::from(driver.get(CONFIG)) | u64::from(driver.get(CONFIG + 4)) << 32;
    report(
        magic == MAGIC && version == 2 && device == DEVICE_ID_VSOCK && cid == OWN_CID,
        "probe",
        format_args!("magic {magic:#x} version {version} device {device} guest_cid {cid}"),
    );
    if let Err(why) = driver.up(None) {
        report(false, "handshake", why);
        return;
    }
    let works = |driver: &mut Driver| -> bool {
        // A request no flow allows: the switch answers it with a reset.
        driver.send(&Header::to(CORPORATE_CID, 7777, 1, OP_REQUEST), 0)
            && driver.answer(7777, Some(1), ANSWER_MS) == Some(OP_RST)
    };
    report(
        works(&mut driver),
        "baseline",
        "a refused request is answered with RST",
    );

    corporate_up(&mut driver);
    queues(&mut driver, works);
    headers(&mut driver);
    scan(&mut driver);
    flood(&mut driver);
    conversation(&mut driver);
    report(
        driver.canary_broken == 0 && driver.aborts == 0,
        "canaries",
        format_args!(
            "{} rx buffers with a byte written past their end, {} register accesses aborted",
            driver.canary_broken, driver.aborts
        ),
    );
}

/// Waits (up to 5 minutes) until corporate's Linux accepts a paste connection, so that every
/// attack meets a live peer, not a device without a driver.
fn corporate_up(driver: &mut Driver) {
    let start = timer::Instant::now();
    let mut tries = 0u32;
    let mut up = false;
    while !up && start.elapsed_ms() < 300_000 {
        tries += 1;
        let src = 30000 + tries % 1000;
        up = connect(driver, src);
        if up {
            driver.send(&Header::to(CORPORATE_CID, src, PASTE_PORT, OP_RST), 0);
        } else {
            timer::wait_until(500, || false);
        }
    }
    report(
        up,
        "corporate-up",
        format_args!(
            "corporate:{PASTE_PORT} accepted after {tries} tries, {} ms",
            start.elapsed_ms()
        ),
    );
}

/// The malformed queues.
fn queues(driver: &mut Driver, works: impl Fn(&mut Driver) -> bool) {
    let end = ram_base() + RAM_SIZE;
    let attacks: [(&str, Attack); 9] = [
        ("tx-desc-table-outside-ram", Attack::TableOutside),
        ("tx-buffer-outside-ram", Attack::BufferAt(end)),
        ("tx-buffer-in-other-cell", Attack::BufferAt(OTHER_CELL_RAM)),
        ("tx-length-max", Attack::LengthMax),
        ("tx-chain-loop", Attack::Loop),
        ("tx-chain-over-the-whole-ring", Attack::WholeRing),
        ("tx-next-out-of-range", Attack::NextOutOfRange),
        ("tx-avail-jump", Attack::AvailableJump),
        ("rx-device-readable", Attack::RxReadable),
    ];
    for (name, attack) in attacks
        .into_iter()
        .chain([("rx-too-short", Attack::RxTooShort)])
    {
        if let Err(why) = driver.up(Some(attack)) {
            report(false, name, format_args!("setup: {why}"));
            continue;
        }
        let rx = matches!(attack, Attack::RxReadable | Attack::RxTooShort);
        // A packet for the broken rx queue: the switch's reset to a refused request.
        driver.send_with(
            &Header::to(CORPORATE_CID, 7000, 1, OP_REQUEST),
            0,
            0,
            if rx { None } else { Some(attack) },
        );
        let base = VSOCK;
        let needs_reset = timer::wait_until(
            ANSWER_MS,
            || matches!(probe_read32(base + STATUS), Err(status) if status & NEEDS_RESET != 0),
        );
        let status = driver.status();
        let after = driver.up(None).is_ok() && works(driver);
        // A buffer whose length is all ones may be read in part and used; every other attack
        // must be refused.
        let pass = (needs_reset || matches!(attack, Attack::LengthMax)) && after;
        report(
            pass,
            name,
            format_args!(
                "status {status:#x} ({}), after a reset the device works: {after}",
                if needs_reset {
                    "needs reset"
                } else {
                    "no reset asked"
                }
            ),
        );
    }
}

/// Malformed headers on a sound queue: each is answered with a reset or dropped.
fn headers(driver: &mut Driver) {
    let _ = driver.up(None);
    let request = |port| Header::to(CORPORATE_CID, port, PASTE_PORT, OP_REQUEST);
    let cases: [(&str, Header, usize, bool); 13] = [
        (
            "len-beyond-buffer",
            Header {
                len: 1000,
                ..request(9001)
            },
            0,
            true,
        ),
        (
            "len-above-64k",
            Header {
                len: 70000,
                ..request(9002)
            },
            0,
            true,
        ),
        (
            "unknown-op",
            Header {
                op: 99,
                ..request(9003)
            },
            0,
            true,
        ),
        (
            "seqpacket-type",
            Header {
                kind: 2,
                ..request(9004)
            },
            0,
            true,
        ),
        (
            "spoofed-corporate",
            Header {
                src_cid: CORPORATE_CID,
                ..request(9005)
            },
            0,
            false,
        ),
        (
            "spoofed-host",
            Header {
                src_cid: 2,
                ..request(9006)
            },
            0,
            false,
        ),
        (
            "spoofed-max",
            Header {
                src_cid: u64::MAX,
                ..request(9007)
            },
            0,
            false,
        ),
        (
            "to-itself",
            Header {
                dst_cid: OWN_CID,
                ..request(9008)
            },
            0,
            true,
        ),
        (
            "to-the-host",
            Header {
                dst_cid: 2,
                ..request(9009)
            },
            0,
            true,
        ),
        (
            "to-cid-99",
            Header {
                dst_cid: 99,
                ..request(9010)
            },
            0,
            true,
        ),
        (
            "to-cid-max",
            Header {
                dst_cid: u64::MAX,
                ..request(9011)
            },
            0,
            true,
        ),
        (
            "data-without-connection",
            Header {
                op: OP_RW,
                len: 16,
                ..request(9012)
            },
            16,
            true,
        ),
        (
            "response-without-request",
            Header {
                op: OP_RESPONSE,
                ..request(9013)
            },
            0,
            true,
        ),
    ];
    for (name, header, payload, answered) in cases {
        let used = driver.send(&header, payload);
        let answer = driver.answer(
            header.src_port,
            None,
            if answered { ANSWER_MS } else { 300 },
        );
        let status = driver.status();
        let pass = used
            && status & NEEDS_RESET == 0
            && if answered {
                answer == Some(OP_RST)
            } else {
                answer.is_none()
            };
        report(
            pass,
            format_args!("header {name}"),
            format_args!("used {used}, answer {answer:?}, status {status:#x}"),
        );
    }
}

/// A request to every port of corporate and to ports of every other CID.
fn scan(driver: &mut Driver) {
    let _ = driver.up(None);
    let (mut resets, mut accepted, mut silent) = (0u32, 0u32, 0u32);
    for port in 0..=u32::from(u16::MAX) {
        let src = 20000;
        if !driver.send(&Header::to(CORPORATE_CID, src, port, OP_REQUEST), 0) {
            silent += 1;
            continue;
        }
        match driver.answer(src, Some(port), ANSWER_MS) {
            Some(OP_RST) => resets += 1,
            Some(OP_RESPONSE) => {
                accepted += 1;
                driver.send(&Header::to(CORPORATE_CID, src, port, OP_RST), 0);
            }
            _ => silent += 1,
        }
    }
    report(
        resets == 65535 && accepted == 1 && silent == 0,
        "scan corporate",
        format_args!(
            "65536 ports: {resets} reset, {accepted} accepted (6000 by Linux), {silent} unanswered"
        ),
    );
    let (mut resets, mut other) = (0u32, 0u32);
    for cid in [0, 1, 2, OWN_CID, 5, 99, u64::from(u32::MAX), u64::MAX] {
        for port in [0, 1, BADGE_PORT, PASTE_PORT, 65535, u32::MAX] {
            driver.send(&Header::to(cid, 20001, port, OP_REQUEST), 0);
            match driver.answer(20001, Some(port), ANSWER_MS) {
                Some(OP_RST) => resets += 1,
                _ => other += 1,
            }
        }
    }
    report(
        other == 0,
        "scan other cids",
        format_args!("8 CIDs x 6 ports: {resets} reset, {other} otherwise"),
    );
}

/// Connects to corporate:6000; whether Linux accepted.
fn connect(driver: &mut Driver, src: u32) -> bool {
    driver.send(&Header::to(CORPORATE_CID, src, PASTE_PORT, OP_REQUEST), 0)
        && driver.answer(src, Some(PASTE_PORT), ANSWER_MS) == Some(OP_RESPONSE)
}

/// Floods the paste flow past its rate, then sends a message above its size.
fn flood(driver: &mut Driver) {
    let src = 41000;
    if !connect(driver, src) {
        report(false, "flood", "corporate:6000 did not accept");
        return;
    }
    let mut sent = 0u32;
    let mut reset = false;
    while sent < 2000 && !reset {
        let data = Header {
            op: OP_RW,
            len: 16,
            ..Header::to(CORPORATE_CID, src, PASTE_PORT, OP_RW)
        };
        driver.send(&data, 16);
        sent += 1;
        driver.poll(|_, header, _| {
            if header.dst_port == src && header.op == OP_RST {
                reset = true;
            }
        });
    }
    report(
        reset && sent < 2000,
        "flood",
        format_args!("{sent} data packets sent before the connection was reset for the rate"),
    );
    // The bucket refills at 50 a second.
    timer::wait_until(2000, || false);
    let src = 42000;
    if !connect(driver, src) {
        report(false, "too-large", "corporate:6000 did not accept");
        return;
    }
    let data = Header {
        op: OP_RW,
        len: 16385,
        ..Header::to(CORPORATE_CID, src, PASTE_PORT, OP_RW)
    };
    let used = driver.send(&data, 16385);
    let answer = driver.answer(src, Some(PASTE_PORT), ANSWER_MS);
    report(
        used && answer == Some(OP_RST),
        "too-large",
        format_args!("16385 bytes on a 16384-byte flow: answer {answer:?}"),
    );
}

/// After everything: a paste reaches corporate and a badge comes from it.
fn conversation(driver: &mut Driver) {
    timer::wait_until(2000, || false);
    let _ = driver.up(None);
    let src = 43000;
    let text = b"after-attacks\n";
    let accepted = connect(driver, src);
    let mut sent = false;
    if accepted {
        let header = Header {
            op: OP_RW,
            len: text.len() as u32,
            ..Header::to(CORPORATE_CID, src, PASTE_PORT, OP_RW)
        };
        put(TX_SMALL + HEADER, text);
        let slot = driver.tx_avail % SIZE;
        put(TX_SMALL, &header.bytes());
        descriptor(
            TX_DESC,
            slot,
            address(TX_SMALL),
            (HEADER + text.len()) as u32,
            0,
            0,
        );
        put(TX_AVAIL + 4 + 2 * usize::from(slot), &slot.to_le_bytes());
        driver.tx_avail = driver.tx_avail.wrapping_add(1);
        put(TX_AVAIL + 2, &driver.tx_avail.to_le_bytes());
        driver.set(QUEUE_NOTIFY, TXQ);
        let wanted = driver.tx_avail;
        sent = timer::wait_until(ANSWER_MS, || get16(TX_USED + 2) == wanted);
        let shutdown = Header {
            flags: 3,
            ..Header::to(CORPORATE_CID, src, PASTE_PORT, OP_SHUTDOWN)
        };
        driver.send(&shutdown, 0);
        let _ = driver.answer(src, Some(PASTE_PORT), ANSWER_MS);
    }
    println!("{}pasted after-attacks", lines::VSOCK_ATTACK);
    report(
        accepted && sent,
        "paste-after-attacks",
        format_args!("accepted {accepted}, sent {sent}"),
    );

    // A badge: corporate connects to port 5000 every 5 s.
    let mut peer_port = None;
    let start = timer::Instant::now();
    while peer_port.is_none() && start.elapsed_ms() < 30_000 {
        driver.poll(|_, header, _| {
            if header.op == OP_REQUEST
                && header.dst_port == BADGE_PORT
                && header.src_cid == CORPORATE_CID
            {
                peer_port = Some(header.src_port);
            }
        });
    }
    let Some(port) = peer_port else {
        report(false, "badge", "no badge request from corporate in 30 s");
        return;
    };
    driver.send(&Header::to(CORPORATE_CID, BADGE_PORT, port, OP_RESPONSE), 0);
    let mut badge = [0u8; 200];
    let mut badge_len = 0;
    let start = timer::Instant::now();
    while badge_len == 0 && start.elapsed_ms() < ANSWER_MS * 5 {
        driver.poll(|_, header, payload| {
            if header.op == OP_RW && header.src_port == port {
                badge_len = (header.len as usize).min(badge.len());
                for (index, byte) in badge.iter_mut().take(badge_len).enumerate() {
                    *byte = get(payload + index);
                }
            }
        });
    }
    driver.send(&Header::to(CORPORATE_CID, BADGE_PORT, port, OP_RST), 0);
    let text = core::str::from_utf8(&badge[..badge_len]).unwrap_or("(not UTF-8)");
    println!("{}badge: {}", lines::VSOCK_ATTACK, text.trim_end());
    report(
        text.contains("badge "),
        "badge",
        format_args!("{badge_len} bytes from corporate:{port}"),
    );
}
