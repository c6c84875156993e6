//! Two virtio-vsock devices (`dev::virtio::vsock`) behind virtio-mmio, connected through a
//! `VsockSwitch`, under random packets (plausible and garbage), hostile rings, RAM pokes, focus
//! and clock changes, kill switches and device resets.
#![forbid(unsafe_code)]

use cellvisor::dev::mmio::AccessWidth;
use cellvisor::dev::virtio::mmio::{VirtioMmio, offset, status};
use cellvisor::dev::virtio::vsock::{
    CONTROL_RESERVE, Flow, FocusRule, HEADER_SIZE, Header, MAX_CONNECTIONS, Policy, RX_BYTES,
    RX_PACKETS, Switch, Verdict, VsockDevice, VsockSwitch, op,
};

use super::guest_ram::Ram;
use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Vsock;

/// The cells' CIDs.
const CIDS: [u64; 2] = [3, 4];
/// Where each cell's RAM starts.
const BASES: [u64; 2] = [0x4000_0000, 0x8000_0000];
/// How large each RAM is.
const RAM_SIZE: usize = 0x8000;
/// Where the queues' areas are: queue `q` at `base + q * 0x400` (descriptors), `+ 0x100`
/// (available ring), `+ 0x200` (used ring).
const QUEUE_STRIDE: u64 = 0x400;
/// Where buffers go.
const BUFFERS: u64 = 0x1000;

static FLOWS: [Flow; 3] = [
    Flow {
        from: "a",
        to: "b",
        port: 1,
        max_message: 4096,
        rate_per_second: 50,
        only_while_focused: FocusRule::None,
    },
    Flow {
        from: "b",
        to: "a",
        port: 2,
        max_message: 65536,
        rate_per_second: 1000,
        only_while_focused: FocusRule::Source,
    },
    Flow {
        from: "a",
        to: "b",
        port: 3,
        max_message: 16,
        rate_per_second: 5,
        only_while_focused: FocusRule::Destination,
    },
];

/// One thing that happens.
#[derive(Clone, Debug)]
pub enum Op {
    /// The driver's probe of cell `cell` with queues of `size` entries.
    Handshake {
        /// Which cell.
        cell: usize,
        /// QueueNum of the three queues.
        size: u32,
    },
    /// The driver sends a packet: `header` and `payload` in one descriptor or two.
    Send {
        /// Which cell.
        cell: usize,
        /// The header as sent (its `len` may lie).
        header: Header,
        /// The payload.
        payload: Vec<u8>,
        /// Header and payload in separate descriptors.
        split: bool,
        /// Notify the tx queue and service both cells right after.
        notify: bool,
    },
    /// The driver posts an rx chain of writable buffers of these lengths.
    PostRx {
        /// Which cell.
        cell: usize,
        /// Buffer lengths.
        lens: Vec<u32>,
    },
    /// The driver posts anything on any queue: address, length, flags per buffer.
    PostRaw {
        /// Which cell.
        cell: usize,
        /// Which queue.
        queue: usize,
        /// The buffers.
        buffers: Vec<(u64, u32, u16)>,
    },
    /// The guest writes its RAM.
    Poke {
        /// Which cell.
        cell: usize,
        /// Offset in the RAM.
        at: usize,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A QueueNotify of `queue`, then the caller services the device.
    Notify {
        /// Which cell.
        cell: usize,
        /// The queue number written.
        queue: u32,
    },
    /// A cell comes to the front or goes behind.
    Focus {
        /// Which cell.
        cell: usize,
        /// Focused or not.
        focused: bool,
    },
    /// The clock advances.
    Clock(u64),
    /// The kill switch (or a wipe) for a cell: its device reset and `reset_cell`.
    Kill(usize),
    /// `channel off CELL` / `channel on CELL`: `set_enabled`.
    Switch {
        /// Which cell.
        cell: usize,
        /// On or off.
        on: bool,
    },
}

/// What happens.
#[derive(Clone, Debug)]
pub struct Input {
    /// The operations.
    pub ops: Vec<Op>,
}

/// The driver's side of one queue.
#[derive(Clone, Copy, Default)]
struct DriverQueue {
    size: u16,
    desc: u64,
    avail: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl DriverQueue {
    fn post(&mut self, ram: &mut Ram, buffers: &[(u64, u32, u16)]) {
        if self.size == 0 {
            return;
        }
        let head = self.next_desc;
        for (position, &(addr, len, flags)) in buffers.iter().enumerate() {
            let index = self.next_desc;
            let next = index.wrapping_add(1) % self.size;
            let flags = if position + 1 < buffers.len() {
                flags | 1
            } else {
                flags & !1
            };
            let mut raw = [0u8; 16];
            raw[..8].copy_from_slice(&addr.to_le_bytes());
            raw[8..12].copy_from_slice(&len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..].copy_from_slice(&next.to_le_bytes());
            ram.poke(self.desc.wrapping_add(16 * u64::from(index)), &raw);
            self.next_desc = next;
        }
        let slot = u64::from(self.avail_idx % self.size);
        ram.poke(self.avail.wrapping_add(4 + 2 * slot), &head.to_le_bytes());
        self.avail_idx = self.avail_idx.wrapping_add(1);
        ram.poke(self.avail.wrapping_add(2), &self.avail_idx.to_le_bytes());
    }
}

/// One fake cell.
struct Cell {
    mmio: VirtioMmio<VsockDevice>,
    ram: Ram,
    queues: [DriverQueue; 3],
    next_buffer: u64,
}

impl Cell {
    fn buffer(&mut self, len: usize) -> u64 {
        let len = len as u64;
        if BUFFERS + self.next_buffer + len > RAM_SIZE as u64 {
            self.next_buffer = 0;
        }
        let at = self.ram.base + BUFFERS + self.next_buffer;
        self.next_buffer += len.next_multiple_of(16);
        at
    }

    /// Writable descriptors of the rx queue's table, as the RAM holds them now.
    fn rx_buffers(&self) -> Vec<(u64, u64)> {
        let Some(queue) = self.mmio.queues().first().filter(|queue| queue.ready()) else {
            return Vec::new();
        };
        (0..u64::from(queue.size()))
            .filter_map(|index| {
                let raw: [u8; 16] = self.ram.peek(queue.desc_table().wrapping_add(16 * index))?;
                let addr = u64::from_le_bytes(raw[..8].try_into().ok()?);
                let len = u32::from_le_bytes(raw[8..12].try_into().ok()?);
                let flags = u16::from_le_bytes(raw[12..14].try_into().ok()?);
                (flags & 2 != 0).then(|| (addr, addr.saturating_add(u64::from(len))))
            })
            .collect()
    }
}

/// The switch, checking everything it hands out.
struct Checked {
    inner: VsockSwitch,
    /// Cells reset by the kill switch that have sent nothing since.
    silenced: [bool; 2],
    /// Cells whose channel is switched off.
    off: [bool; 2],
    violation: Option<String>,
}

impl Switch for Checked {
    fn route(&mut self, from_cid: u64, header: &Header, payload: &[u8]) -> Verdict {
        if header.len as usize != payload.len() && self.violation.is_none() {
            self.violation = Some(format!(
                "routed len {} with {} bytes",
                header.len,
                payload.len()
            ));
        }
        if let Some(index) = CIDS.iter().position(|&cid| cid == from_cid) {
            self.silenced[index] = false;
        }
        self.inner.route(from_cid, header, payload)
    }

    fn malformed(&mut self, from_cid: u64, header: &Header) -> Verdict {
        if let Some(index) = CIDS.iter().position(|&cid| cid == from_cid) {
            self.silenced[index] = false;
        }
        self.inner.malformed(from_cid, header)
    }

    fn has_rx(&self, cid: u64) -> bool {
        self.inner.has_rx(cid)
    }

    fn next_rx(&mut self, cid: u64, max_payload: u32) -> Option<(Header, Vec<u8>)> {
        let packet = self.inner.next_rx(cid, max_payload)?;
        let (header, payload) = &packet;
        let from_silenced = CIDS
            .iter()
            .position(|&other| other == header.src_cid)
            .is_some_and(|index| self.silenced[index]);
        let problem = if header.dst_cid != cid {
            Some("delivered to the wrong cell")
        } else if header.op != op::RST && (header.src_cid == cid || !CIDS.contains(&header.src_cid))
        {
            // (An RST answering a packet to nowhere comes from where the packet went.)
            Some("source is not another cell")
        } else if header.len as usize != payload.len() || header.len > max_payload {
            Some("bad delivered length")
        } else if header.op == op::RW && header.len == 0 {
            Some("empty RW delivered")
        } else if header.op != op::RW && header.len != 0 {
            Some("payload on a packet other than RW")
        } else if from_silenced && header.op != op::RST {
            Some("a killed cell's packet arrived after the kill")
        } else if header.op != op::RST
            && CIDS
                .iter()
                .enumerate()
                .any(|(index, &other)| self.off[index] && (other == header.src_cid || other == cid))
        {
            Some("traffic of a cell whose channel is off")
        } else if !(op::REQUEST..=op::CREDIT_UPDATE).contains(&header.op) {
            Some("an op the switch never sends")
        } else {
            None
        };
        if let Some(problem) = problem
            && self.violation.is_none()
        {
            self.violation = Some(format!("{problem}: {header:?} to {cid}"));
        }
        Some(packet)
    }
}

fn random_header(rng: &mut Rng, cell: usize, len: u32) -> Header {
    let own = CIDS[cell];
    let peer = CIDS[1 - cell];
    let (r64, r1, r2, r3) = (
        rng.next_u64(),
        rng.next_u32(),
        rng.next_u32(),
        rng.next_u32(),
    );
    Header {
        src_cid: if rng.chance(15, 16) {
            own
        } else {
            rng.pick(&[peer, 0, 2, u64::MAX])
        },
        dst_cid: if rng.chance(7, 8) {
            peer
        } else {
            rng.pick(&[own, 2, 5, r64])
        },
        src_port: rng.pick(&[1, 2, 3, 1000, 1001, r1]),
        dst_port: rng.pick(&[1, 2, 3, 1000, 1001, r2]),
        len: if rng.chance(7, 8) {
            len
        } else {
            rng.interesting_u64() as u32
        },
        kind: if rng.chance(15, 16) {
            1
        } else {
            rng.next_u32() as u16
        },
        op: if rng.chance(15, 16) {
            rng.range(1, 8) as u16
        } else {
            rng.next_u32() as u16
        },
        flags: rng.below(4) as u32,
        buf_alloc: rng.pick(&[0, 16, 4096, 65536, 1 << 20, r3]),
        fwd_cnt: if rng.coin() {
            0
        } else {
            rng.next_u32() % 70_000
        },
    }
}

/// Conversations a well-behaved driver holds: connecting cell, its port, listening cell, port
/// (the three flows of [`FLOWS`]).
const CONVERSATIONS: [(usize, u32, usize, u32); 3] =
    [(0, 1000, 1, 1), (1, 1001, 0, 2), (0, 1002, 1, 3)];

/// A packet of one of the [`CONVERSATIONS`], as Linux would send it in the conversation's
/// phase (`phases`: 0 closed, 1 requested, 2 established; advanced as the packet would);
/// returns the sending cell.
fn coherent_header(rng: &mut Rng, phases: &mut [u8; 3], len: u32) -> (usize, Header) {
    let which = rng.index(CONVERSATIONS.len());
    let (initiator, source, target, port) = CONVERSATIONS[which];
    let phase = &mut phases[which];
    let (forward, kind) = match *phase {
        0 => (true, op::REQUEST),
        1 => (false, op::RESPONSE),
        _ => {
            let kind = match rng.below(24) {
                0 => op::SHUTDOWN,
                1 => op::RST,
                2 | 3 => op::CREDIT_UPDATE,
                4 => op::CREDIT_REQUEST,
                5 => op::REQUEST,
                _ => op::RW,
            };
            (rng.coin(), kind)
        }
    };
    *phase = match kind {
        op::REQUEST => 1,
        op::RESPONSE => 2,
        op::RST | op::SHUTDOWN => 0,
        _ => *phase,
    };
    let (cell, src_port, peer, dst_port) = if forward {
        (initiator, source, target, port)
    } else {
        (target, port, initiator, source)
    };
    let header = Header {
        src_cid: CIDS[cell],
        dst_cid: CIDS[peer],
        src_port,
        dst_port,
        len: if kind == op::RW { len.max(1) } else { 0 },
        kind: 1,
        op: kind,
        flags: if kind == op::SHUTDOWN {
            rng.range(1, 4) as u32
        } else {
            0
        },
        buf_alloc: 65536,
        fwd_cnt: rng.below(8) as u32 * 4096,
    };
    (cell, header)
}

fn random_address(rng: &mut Rng, cell: usize) -> u64 {
    match rng.below(8) {
        0 => rng.interesting_u64(),
        1 => BASES[1 - cell] + rng.below(RAM_SIZE as u64),
        2 => BASES[cell] + RAM_SIZE as u64 - rng.below(64),
        _ => BASES[cell] + rng.below(RAM_SIZE as u64),
    }
}

/// A QueueNotify of `queue` on `cell`, then the caller's work: that cell's device serviced, and
/// each cell the switch woke (its rx may have packets; a held-back sender may go on).
fn notify_and_service(
    cells: &mut [Cell; 2],
    switch: &mut Checked,
    cell: usize,
    queue: u32,
) -> Result<(), cellvisor::dev::mmio::MmioError> {
    let c = &mut cells[cell];
    c.mmio
        .write(offset::QUEUE_NOTIFY, AccessWidth::Word, queue, &mut c.ram)?;
    c.mmio.device_mut().take_kick();
    c.mmio.service(&mut c.ram, switch);
    for _ in 0..4 {
        let mut progress = false;
        for (index, c) in cells.iter_mut().enumerate() {
            if switch.inner.take_woken(CIDS[index]) || c.mmio.device().stalled() {
                progress |= c.mmio.service(&mut c.ram, switch);
            }
        }
        if !progress {
            break;
        }
    }
    Ok(())
}

impl FuzzTarget for Vsock {
    type Input = Input;
    const NAME: &'static str = "vsock";
    const SUMMARY: &'static str = "two virtio-vsock devices through a VsockSwitch on garbage packets and rings: no panic, writes only to used rings and posted rx buffers, queues and table bounded, deliveries addressed right, a killed cell's data never arrives, failure => NEEDS_RESET";

    fn generate(rng: &mut Rng) -> Input {
        let mut ops = vec![
            Op::Handshake { cell: 0, size: 16 },
            Op::Handshake { cell: 1, size: 16 },
        ];
        for cell in 0..2 {
            for _ in 0..rng.below(6) {
                ops.push(Op::PostRx {
                    cell,
                    lens: vec![HEADER_SIZE as u32, 4096],
                });
            }
        }
        // Mostly a well-behaved pair of drivers (coherent conversations, sane rx buffers, no
        // hostile rings) with now and then a garbage packet; otherwise anything goes.
        let gentle = rng.chance(2, 3);
        let mut phases = [0u8; 3];
        if gentle && rng.chance(3, 4) {
            // Both in front (as far as the switch knows): the focus rules let the flows pass.
            ops.extend((0..2).map(|cell| Op::Focus {
                cell,
                focused: true,
            }));
        }
        for _ in 0..rng.range(1, 120) {
            let cell = rng.index(2);
            let choice = if gentle {
                [0, 1, 2, 3, 4, 5, 6, 12, 13, 20, 27, 29][rng.index(12)]
            } else {
                rng.below(32)
            };
            ops.push(match choice {
                0..=11 => {
                    let len = if rng.chance(3, 4) {
                        rng.below(64) as usize
                    } else {
                        rng.below(6000) as usize
                    };
                    let (cell, header) = if rng.chance(if gentle { 15 } else { 3 }, 16) {
                        coherent_header(rng, &mut phases, len as u32)
                    } else {
                        let mut header = random_header(rng, cell, len as u32);
                        if header.op != op::RW && rng.chance(7, 8) {
                            header.len = 0;
                        }
                        (cell, header)
                    };
                    let payload = rng.bytes(header.len.min(6000) as usize);
                    Op::Send {
                        cell,
                        header,
                        payload,
                        split: rng.coin(),
                        notify: rng.chance(7, 8),
                    }
                }
                12..=16 => Op::PostRx {
                    cell,
                    lens: match if gentle { 5 } else { rng.below(6) } {
                        0 => vec![rng.below(100) as u32],
                        1 => vec![HEADER_SIZE as u32 + rng.below(64) as u32],
                        2 => (0..rng.range(1, 5))
                            .map(|_| rng.below(2000) as u32 + 1)
                            .collect(),
                        _ => vec![HEADER_SIZE as u32, 4096],
                    },
                },
                17 | 18 => Op::PostRaw {
                    cell,
                    queue: rng.index(3),
                    buffers: (0..rng.range(1, 4))
                        .map(|_| {
                            (
                                random_address(rng, cell),
                                if rng.coin() {
                                    rng.below(128) as u32
                                } else {
                                    rng.interesting_u64() as u32
                                },
                                rng.pick(&[0u16, 1, 2, 3, 4, 6]),
                            )
                        })
                        .collect(),
                },
                19 => Op::Poke {
                    cell,
                    at: rng.index(RAM_SIZE),
                    bytes: if rng.coin() {
                        (rng.below(20) as u16).to_le_bytes().to_vec()
                    } else {
                        let len = rng.index(24);
                        rng.bytes(len)
                    },
                },
                20..=26 => Op::Notify {
                    cell,
                    queue: if rng.chance(7, 8) {
                        rng.below(3) as u32
                    } else {
                        rng.next_u32()
                    },
                },
                27 | 28 => Op::Focus {
                    cell,
                    focused: rng.coin(),
                },
                29 | 30 => Op::Clock(rng.pick(&[1, 50, 200, 1000, u64::MAX])),
                _ if rng.chance(1, 4) => Op::Switch {
                    cell,
                    on: rng.coin(),
                },
                _ if rng.chance(1, 3) => Op::Handshake {
                    cell,
                    size: rng.pick(&[1, 4, 16, 3, 0, 64]),
                },
                _ => Op::Kill(cell),
            });
        }
        Input { ops }
    }

    fn check(input: &Input) -> Result<(), String> {
        let mut cells = [0, 1].map(|index| Cell {
            mmio: VirtioMmio::with_queue_max(VsockDevice::new(CIDS[index]), 16),
            ram: Ram::new(BASES[index], vec![0; RAM_SIZE]),
            queues: [DriverQueue::default(); 3],
            next_buffer: 0,
        });
        let mut switch = Checked {
            inner: VsockSwitch::new(&[("a", CIDS[0]), ("b", CIDS[1])], Policy { flows: &FLOWS }),
            silenced: [false; 2],
            off: [false; 2],
            violation: None,
        };
        let mut now = 0u64;
        for (step, op) in input.ops.iter().enumerate() {
            for cell in &mut cells {
                cell.ram.writes.clear();
            }
            // What each cell may have written this step: its used rings and rx buffers.
            let allowed: Vec<Vec<(u64, u64)>> = cells
                .iter()
                .map(|cell| {
                    let mut ranges = cell.rx_buffers();
                    for queue in cell.mmio.queues().iter().filter(|queue| queue.ready()) {
                        let start = queue.device_area();
                        ranges.push((start, start.saturating_add(4 + 8 * u64::from(queue.size()))));
                    }
                    ranges
                })
                .collect();
            let live: Vec<bool> = cells.iter().map(|cell| cell.mmio.is_live()).collect();
            match op {
                &Op::Handshake { cell, size } => {
                    let c = &mut cells[cell];
                    let mut write = |offset, value| {
                        c.mmio
                            .write(offset, AccessWidth::Word, value, &mut c.ram)
                            .map_err(|error| format!("step {step}: handshake: {error}"))
                    };
                    write(offset::STATUS, 0)?;
                    write(offset::STATUS, 3)?;
                    write(offset::DRIVER_FEATURES_SEL, 1)?;
                    write(offset::DRIVER_FEATURES, 1)?;
                    write(offset::STATUS, 0xb)?;
                    for queue in 0..3u64 {
                        let base = BASES[cell] + queue * QUEUE_STRIDE;
                        write(offset::QUEUE_SEL, queue as u32)?;
                        write(offset::QUEUE_NUM, size)?;
                        for (low, address) in [
                            (offset::QUEUE_DESC_LOW, base),
                            (offset::QUEUE_DRIVER_LOW, base + 0x100),
                            (offset::QUEUE_DEVICE_LOW, base + 0x200),
                        ] {
                            write(low, address as u32)?;
                            write(low + 4, (address >> 32) as u32)?;
                        }
                        write(offset::QUEUE_READY, 1)?;
                    }
                    write(offset::STATUS, 0xf)?;
                    for queue in 0..3u64 {
                        let base = BASES[cell] + queue * QUEUE_STRIDE;
                        c.ram.poke(base + 0x100, &[0; 4]);
                        c.ram.poke(base + 0x200, &[0; 4]);
                    }
                    let size = u16::try_from(size)
                        .ok()
                        .filter(|size| size.is_power_of_two());
                    c.queues = [0u64, 1, 2].map(|queue| DriverQueue {
                        size: size.unwrap_or(0),
                        desc: BASES[cell] + queue * QUEUE_STRIDE,
                        avail: BASES[cell] + queue * QUEUE_STRIDE + 0x100,
                        next_desc: 0,
                        avail_idx: 0,
                    });
                    if c.mmio.device_mut().take_reset() {
                        switch.inner.reset_cell(CIDS[cell]);
                        switch.silenced[cell] = true;
                    }
                }
                Op::Send {
                    cell,
                    header,
                    payload,
                    split,
                    notify,
                } => {
                    let c = &mut cells[*cell];
                    let bytes = header.to_bytes();
                    if *split && !payload.is_empty() {
                        let at = c.buffer(HEADER_SIZE);
                        c.ram.poke(at, &bytes);
                        let data = c.buffer(payload.len());
                        c.ram.poke(data, payload);
                        let mut queue = c.queues[1];
                        queue.post(
                            &mut c.ram,
                            &[(at, HEADER_SIZE as u32, 0), (data, payload.len() as u32, 0)],
                        );
                        c.queues[1] = queue;
                    } else {
                        let mut all = bytes.to_vec();
                        all.extend_from_slice(payload);
                        let at = c.buffer(all.len());
                        c.ram.poke(at, &all);
                        let mut queue = c.queues[1];
                        queue.post(&mut c.ram, &[(at, all.len() as u32, 0)]);
                        c.queues[1] = queue;
                    }
                    if *notify {
                        notify_and_service(&mut cells, &mut switch, *cell, 1)
                            .map_err(|error| format!("step {step}: notify: {error}"))?;
                    }
                }
                Op::PostRx { cell, lens } => {
                    let c = &mut cells[*cell];
                    let buffers: Vec<(u64, u32, u16)> = lens
                        .iter()
                        .map(|&len| (c.buffer(len as usize), len, 2))
                        .collect();
                    let mut queue = c.queues[0];
                    queue.post(&mut c.ram, &buffers);
                    c.queues[0] = queue;
                }
                Op::PostRaw {
                    cell,
                    queue,
                    buffers,
                } => {
                    let c = &mut cells[*cell];
                    let mut driver = c.queues[*queue];
                    driver.post(&mut c.ram, buffers);
                    c.queues[*queue] = driver;
                }
                Op::Poke { cell, at, bytes } => {
                    let c = &mut cells[*cell];
                    c.ram.poke(BASES[*cell] + *at as u64, bytes);
                }
                &Op::Notify { cell, queue } => {
                    notify_and_service(&mut cells, &mut switch, cell, queue)
                        .map_err(|error| format!("step {step}: notify: {error}"))?;
                }
                &Op::Focus { cell, focused } => switch.inner.set_focused(CIDS[cell], focused),
                &Op::Clock(delta) => {
                    now = now.saturating_add(delta);
                    switch.inner.set_now(now);
                }
                &Op::Kill(cell) => {
                    let c = &mut cells[cell];
                    c.mmio.reset();
                    c.mmio.device_mut().take_reset();
                    switch.inner.reset_cell(CIDS[cell]);
                    switch.silenced[cell] = true;
                    c.queues = [DriverQueue::default(); 3];
                }
                &Op::Switch { cell, on } => {
                    switch.inner.set_enabled(CIDS[cell], on);
                    switch.off[cell] = !on;
                    if !on {
                        switch.silenced[cell] = true;
                    }
                }
            }
            if let Some(violation) = switch.violation.take() {
                return Err(format!("step {step}: {violation}"));
            }
            let serviced = matches!(op, Op::Notify { .. } | Op::Send { notify: true, .. });
            for (index, cell) in cells.iter_mut().enumerate() {
                if serviced && !live[index] {
                    ensure!(
                        cell.ram.writes.is_empty(),
                        "step {step}: cell {index} written while not live: {:?}",
                        cell.ram.writes
                    );
                }
                if serviced {
                    for &(ipa, len) in &cell.ram.writes {
                        let end = ipa.saturating_add(len as u64);
                        ensure!(
                            allowed[index]
                                .iter()
                                .any(|&(start, stop)| ipa >= start && end <= stop),
                            "step {step}: cell {index}: {len}-byte write at {ipa:#x} outside its used rings and rx buffers"
                        );
                    }
                }
                let cid = CIDS[index];
                ensure!(
                    switch.inner.queued(cid) <= RX_PACKETS + CONTROL_RESERVE,
                    "step {step}: {} packets queued for cell {index}",
                    switch.inner.queued(cid)
                );
                ensure!(
                    switch.inner.queued_bytes(cid) <= RX_BYTES,
                    "step {step}: {} bytes queued for cell {index}",
                    switch.inner.queued_bytes(cid)
                );
                if let Some(error) = cell.mmio.take_error() {
                    ensure!(
                        cell.mmio.status() & status::DEVICE_NEEDS_RESET != 0
                            && !cell.mmio.is_live(),
                        "step {step}: {error} without DEVICE_NEEDS_RESET"
                    );
                }
            }
            ensure!(
                switch.inner.connection_count() <= MAX_CONNECTIONS,
                "step {step}: {} connections",
                switch.inner.connection_count()
            );
        }
        Ok(())
    }
}
