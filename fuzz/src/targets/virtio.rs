//! The virtio-mmio transport with the virtio-input device (`dev::virtio`) under random register
//! accesses, garbage rings and descriptors in a small fake RAM, and interleaved input events.
#![forbid(unsafe_code)]

use std::sync::Arc;

use cellvisor::dev::mmio::{AccessWidth, MmioError};
use cellvisor::dev::virtio::input::{InputConfig, InputEvent, PENDING_CAPACITY, VirtioInput};
use cellvisor::dev::virtio::mmio::{VirtioMmio, offset, status};

use super::guest_ram::Ram;
use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Virtio;

/// Where the fake RAM starts.
const RAM_BASE: u64 = 0x4000_0000;
/// How large it is.
const RAM_SIZE: usize = 0x4000;

/// One thing that happens to the device.
#[derive(Clone, Debug)]
pub enum Op {
    /// A guest load.
    Read {
        /// Offset in the window.
        offset: u64,
        /// Access width.
        width: AccessWidth,
    },
    /// A guest store.
    Write {
        /// Offset in the window.
        offset: u64,
        /// Access width.
        width: AccessWidth,
        /// The stored value.
        value: u32,
    },
    /// The driver's probe: status, features, both queues at these addresses, DRIVER_OK.
    Handshake {
        /// QueueNum of both queues.
        size: u32,
        /// Descriptor table, driver area, device area of each queue.
        areas: [[u64; 3]; 2],
    },
    /// The guest writes its RAM (a ring index, a descriptor).
    Poke {
        /// Offset in the RAM.
        at: usize,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The driver posts a chain on a queue set up by the last [`Op::Handshake`], as Linux does
    /// (descriptors round-robin, then the available ring's slot, then its index).
    Post {
        /// The queue.
        queue: usize,
        /// The chain's buffers: address, length, descriptor flags (NEXT is added in between).
        buffers: Vec<(u64, u32, u16)>,
    },
    /// An event from the physical device.
    Event(InputEvent),
    /// A QueueNotify.
    Notify(u32),
    /// A cell restart.
    Reset,
}

/// The RAM's initial contents and what happens.
#[derive(Clone, Debug)]
pub struct Input {
    /// The RAM's initial contents (garbage, with plausible descriptors sprinkled in).
    pub ram: Vec<u8>,
    /// The operations.
    pub ops: Vec<Op>,
}

const REGISTERS: &[u64] = &[
    offset::MAGIC_VALUE,
    offset::DEVICE_FEATURES,
    offset::DEVICE_FEATURES_SEL,
    offset::DRIVER_FEATURES,
    offset::DRIVER_FEATURES_SEL,
    offset::QUEUE_SEL,
    offset::QUEUE_NUM_MAX,
    offset::QUEUE_NUM,
    offset::QUEUE_READY,
    offset::QUEUE_NOTIFY,
    offset::INTERRUPT_STATUS,
    offset::INTERRUPT_ACK,
    offset::STATUS,
    offset::QUEUE_DESC_LOW,
    offset::QUEUE_DESC_HIGH,
    offset::QUEUE_DRIVER_LOW,
    offset::QUEUE_DRIVER_HIGH,
    offset::QUEUE_DEVICE_LOW,
    offset::QUEUE_DEVICE_HIGH,
    offset::CONFIG_GENERATION,
];

fn random_offset(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0 => rng.below(0x240),
        1 | 2 => 0x100 + rng.below(0x90),
        _ => rng.pick(REGISTERS),
    }
}

/// An address in (or just around) the RAM, mostly aligned.
fn random_address(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0 => rng.interesting_u64(),
        1 => RAM_BASE + RAM_SIZE as u64 - rng.below(32),
        _ => RAM_BASE + (rng.below(RAM_SIZE as u64) & !0xf),
    }
}

fn random_width(rng: &mut Rng) -> AccessWidth {
    if rng.chance(3, 4) {
        AccessWidth::Word
    } else {
        AccessWidth::from_sas(rng.below(4) as u8)
    }
}

fn random_value(rng: &mut Rng, offset: u64) -> u32 {
    match offset {
        offset::STATUS if rng.coin() => [0, 1, 3, 0xb, 0xf, 0x4f][rng.index(6)],
        offset::QUEUE_NUM | offset::QUEUE_SEL | offset::QUEUE_NOTIFY if rng.coin() => {
            rng.below(9) as u32
        }
        offset::QUEUE_READY if rng.coin() => 1,
        0x100 if rng.coin() => rng.pick(&[0u32, 1, 2, 3, 0x10, 0x11, 0x12]),
        _ => rng.interesting_u64() as u32,
    }
}

/// A plausible descriptor (or a hostile one) for the RAM.
fn random_descriptor(rng: &mut Rng) -> [u8; 16] {
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(&random_address(rng).to_le_bytes());
    let len: u32 = if rng.chance(1, 8) {
        rng.interesting_u64() as u32
    } else {
        rng.below(24) as u32
    };
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    let flags: u16 = [0u16, 1, 2, 3, 4, 6, 7][rng.index(7)];
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    let next = if rng.chance(1, 8) {
        rng.next_u32() as u16
    } else {
        rng.below(10) as u16
    };
    raw[14..].copy_from_slice(&next.to_le_bytes());
    raw
}

/// Descriptor table, driver area and device area of both queues in a driver's usual layout.
const SANE_AREAS: [[u64; 3]; 2] = [
    [RAM_BASE, RAM_BASE + 0x1000, RAM_BASE + 0x2000],
    [RAM_BASE + 0x800, RAM_BASE + 0x1800, RAM_BASE + 0x2800],
];

/// Where posted buffers usually point.
const BUFFERS: u64 = RAM_BASE + 0x3000;

/// A chain a driver posts: mostly one 8-byte writable event buffer (or a readable status
/// buffer), sometimes something hostile.
fn random_chain(rng: &mut Rng) -> Vec<(u64, u32, u16)> {
    let buffer = BUFFERS + 8 * rng.below(0x100);
    match rng.below(8) {
        0..=3 => vec![(buffer, 8, 2)],
        4 => vec![(buffer, 8, 0)],
        5 => vec![(buffer, 3, 2), (buffer + 3, 5, 2)],
        _ => (0..rng.range(1, 4))
            .map(|_| {
                let len = if rng.coin() {
                    rng.below(16) as u32
                } else {
                    rng.interesting_u64() as u32
                };
                (random_address(rng), len, [0u16, 2, 4, 6][rng.index(4)])
            })
            .collect(),
    }
}

/// The driver's side of one queue, for [`Op::Post`].
#[derive(Clone, Copy)]
struct DriverQueue {
    size: u16,
    desc: u64,
    avail: u64,
    next_desc: u16,
    avail_idx: u16,
}

impl DriverQueue {
    fn post(&mut self, ram: &mut Ram, buffers: &[(u64, u32, u16)]) {
        let head = self.next_desc;
        for (position, &(addr, len, flags)) in buffers.iter().enumerate() {
            let index = self.next_desc;
            let next = index.wrapping_add(1) % self.size;
            let flags = if position + 1 < buffers.len() {
                flags | 1
            } else {
                flags
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

fn config() -> Arc<InputConfig> {
    Arc::new(InputConfig {
        name: b"fuzz".to_vec(),
        serial: vec![0x5a; 200],
        devids: [1, 2, 3, 4, 5, 6, 7, 8],
        prop_bits: vec![1],
        ev_bits: vec![(1, vec![0xff; 64]), (3, vec![3])],
        abs: vec![(0, [7; 20])],
    })
}

impl FuzzTarget for Virtio {
    type Input = Input;
    const NAME: &'static str = "virtio";
    const SUMMARY: &'static str = "virtio-mmio + virtio-input on garbage rings: no panic, register widths enforced, no RAM writes unless live, writes only to used rings or one event, failure => NEEDS_RESET";

    fn generate(rng: &mut Rng) -> Input {
        let mut ram = if rng.coin() {
            rng.bytes(RAM_SIZE)
        } else {
            vec![0; RAM_SIZE]
        };
        for _ in 0..rng.below(64) {
            let at = rng.index(RAM_SIZE / 16) * 16;
            ram[at..at + 16].copy_from_slice(&random_descriptor(rng));
        }
        // Mostly a well-behaved driver (handshake first, rarely a random register store) whose
        // rings now and then get garbage; otherwise anything goes.
        let gentle = rng.chance(2, 3);
        let mut ops = Vec::new();
        if gentle {
            ops.push(Op::Handshake {
                size: 1 << rng.below(7),
                areas: SANE_AREAS,
            });
        }
        ops.extend((0..rng.range(1, 80)).map(|_| {
            let choice = if gentle && rng.chance(7, 8) {
                // Posts, events, notifies, reads.
                [0, 16, 17, 20, 21, 24, 25, 26, 27][rng.index(9)]
            } else {
                rng.below(28)
            };
            match choice {
                0..=3 => Op::Read {
                    offset: random_offset(rng),
                    width: random_width(rng),
                },
                4..=9 => {
                    let offset = random_offset(rng);
                    Op::Write {
                        offset,
                        width: random_width(rng),
                        value: random_value(rng, offset),
                    }
                }
                10 | 11 => Op::Handshake {
                    size: if rng.chance(7, 8) {
                        1 << rng.below(7)
                    } else {
                        rng.interesting_u64() as u32
                    },
                    areas: [
                        [
                            random_address(rng),
                            random_address(rng),
                            random_address(rng),
                        ],
                        [
                            random_address(rng),
                            random_address(rng),
                            random_address(rng),
                        ],
                    ],
                },
                12..=15 => {
                    let bytes = if rng.coin() {
                        random_descriptor(rng).to_vec()
                    } else {
                        // Mostly a small ring index or head.
                        (rng.below(12) as u16).to_le_bytes().to_vec()
                    };
                    Op::Poke {
                        at: rng.index(RAM_SIZE),
                        bytes,
                    }
                }
                16..=19 => Op::Event(InputEvent {
                    kind: rng.below(4) as u16,
                    code: rng.next_u32() as u16,
                    value: rng.next_u32(),
                }),
                20..=22 => Op::Notify(if rng.chance(7, 8) {
                    rng.below(2) as u32
                } else {
                    rng.next_u32()
                }),
                _ if rng.chance(1, 8) => Op::Reset,
                _ => Op::Post {
                    queue: rng.index(2),
                    buffers: random_chain(rng),
                },
            }
        }));
        Input { ram, ops }
    }

    fn check(input: &Input) -> Result<(), String> {
        let mut mmio = VirtioMmio::new(VirtioInput::new(config()));
        let mut ram = Ram::new(RAM_BASE, input.ram.clone());
        let mut driver: Option<[DriverQueue; 2]> = None;
        for (index, op) in input.ops.iter().enumerate() {
            let live = mmio.is_live();
            // The used rings of the ready queues, as they were before the step.
            let used_rings: Vec<(u64, u64)> = mmio
                .queues()
                .iter()
                .filter(|queue| queue.ready())
                .map(|queue| {
                    let start = queue.device_area();
                    (start, start.saturating_add(4 + 8 * u64::from(queue.size())))
                })
                .collect();
            ram.writes.clear();
            match op {
                &Op::Read { offset, width } => {
                    let result = mmio.read(offset, width).map(|_| ());
                    ensure!(
                        result == expected(offset, width),
                        "step {index}: read {offset:#x} {width:?}: {result:?}"
                    );
                }
                &Op::Write {
                    offset,
                    width,
                    value,
                } => {
                    let result = mmio.write(offset, width, value, &mut ram);
                    ensure!(
                        result == expected(offset, width),
                        "step {index}: write {offset:#x} {width:?}: {result:?}"
                    );
                }
                Op::Handshake { size, areas } => {
                    // The driver clears its rings' flags and indices first, as Linux does.
                    for [_, avail, used] in areas {
                        ram.poke(*avail, &[0; 4]);
                        ram.poke(*used, &[0; 4]);
                    }
                    handshake(&mut mmio, &mut ram, *size, areas)
                        .map_err(|error| format!("step {index}: handshake: {error}"))?;
                    driver = u16::try_from(*size)
                        .ok()
                        .filter(|size| size.is_power_of_two())
                        .map(|size| {
                            areas.map(|[desc, avail, _]| DriverQueue {
                                size,
                                desc,
                                avail,
                                next_desc: 0,
                                avail_idx: 0,
                            })
                        });
                }
                Op::Post { queue, buffers } => {
                    if let Some(driver_queue) =
                        driver.as_mut().and_then(|queues| queues.get_mut(*queue))
                    {
                        driver_queue.post(&mut ram, buffers);
                    }
                }
                Op::Poke { at, bytes } => {
                    let end = (*at + bytes.len()).min(RAM_SIZE);
                    ram.bytes[*at..end].copy_from_slice(&bytes[..end - *at]);
                }
                Op::Event(event) => {
                    mmio.input_event(*event, &mut ram);
                }
                &Op::Notify(queue) => mmio
                    .write(offset::QUEUE_NOTIFY, AccessWidth::Word, queue, &mut ram)
                    .map_err(|error| format!("step {index}: notify: {error}"))?,
                Op::Reset => {
                    mmio.reset();
                    driver = None;
                }
            }
            let steady = matches!(op, Op::Read { .. } | Op::Event(_) | Op::Notify(_));
            if steady && !live {
                ensure!(
                    ram.writes.is_empty(),
                    "step {index}: RAM written while not live: {:?}",
                    ram.writes
                );
            }
            for &(ipa, len) in &ram.writes {
                let in_used = used_rings
                    .iter()
                    .any(|&(start, end)| ipa >= start && ipa.saturating_add(len as u64) <= end);
                ensure!(
                    in_used || len <= 8,
                    "step {index}: {len}-byte write at {ipa:#x} outside the used rings"
                );
            }
            ensure!(
                mmio.interrupt_level() == (mmio.interrupt_status() != 0),
                "step {index}: interrupt level disagrees with InterruptStatus"
            );
            ensure!(
                mmio.device().pending() <= PENDING_CAPACITY,
                "step {index}: {} events pending",
                mmio.device().pending()
            );
            if let Some(error) = mmio.take_error() {
                ensure!(
                    mmio.status() & status::DEVICE_NEEDS_RESET != 0 && !mmio.is_live(),
                    "step {index}: {error} without DEVICE_NEEDS_RESET"
                );
                ensure!(
                    !error.to_string().is_empty(),
                    "step {index}: empty error text"
                );
            }
        }
        Ok(())
    }
}

/// What an access at `offset` of `width` must answer.
fn expected(offset: u64, width: AccessWidth) -> Result<(), MmioError> {
    if offset >= 0x200 {
        Err(MmioError::BadOffset)
    } else if (offset < 0x100 && width != AccessWidth::Word) || width == AccessWidth::Doubleword {
        Err(MmioError::BadWidth)
    } else if !width.is_aligned(offset) {
        Err(MmioError::Unaligned)
    } else {
        Ok(())
    }
}

fn handshake(
    mmio: &mut VirtioMmio<VirtioInput>,
    ram: &mut Ram,
    size: u32,
    areas: &[[u64; 3]; 2],
) -> Result<(), MmioError> {
    let word = AccessWidth::Word;
    let mut write =
        |mmio: &mut VirtioMmio<VirtioInput>, offset, value| mmio.write(offset, word, value, ram);
    write(mmio, offset::STATUS, 0)?;
    write(mmio, offset::STATUS, 3)?;
    write(mmio, offset::DRIVER_FEATURES_SEL, 1)?;
    write(mmio, offset::DRIVER_FEATURES, 1)?;
    write(mmio, offset::STATUS, 0xb)?;
    for (queue, [desc, driver, device]) in areas.iter().enumerate() {
        write(mmio, offset::QUEUE_SEL, queue as u32)?;
        write(mmio, offset::QUEUE_NUM, size)?;
        for (low, address) in [
            (offset::QUEUE_DESC_LOW, desc),
            (offset::QUEUE_DRIVER_LOW, driver),
            (offset::QUEUE_DEVICE_LOW, device),
        ] {
            write(mmio, low, *address as u32)?;
            write(mmio, low + 4, (*address >> 32) as u32)?;
        }
        write(mmio, offset::QUEUE_READY, 1)?;
    }
    write(mmio, offset::STATUS, 0xf)
}
