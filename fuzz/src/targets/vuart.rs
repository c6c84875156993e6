//! The emulated PL011 (`vuart::Pl011`) under random register access and input sequences.
#![forbid(unsafe_code)]

use cellvisor::dev::mmio::AccessWidth;
use cellvisor::dev::vuart::{FIFO_DEPTH, Pl011, offset};

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Vuart;

/// One thing that happens to the UART.
#[derive(Clone, Copy, Debug)]
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
    /// A byte typed on the console for this cell.
    Input(u8),
    /// A cell restart.
    Reset,
}

const REGISTERS: &[u64] = &[
    offset::DR,
    offset::RSR_ECR,
    offset::FR,
    offset::ILPR,
    offset::IBRD,
    offset::FBRD,
    offset::LCR_H,
    offset::CR,
    offset::IFLS,
    offset::IMSC,
    offset::RIS,
    offset::MIS,
    offset::ICR,
    offset::DMACR,
];

fn random_offset(rng: &mut Rng) -> u64 {
    match rng.below(8) {
        0 => rng.below(0x1100),
        1 => offset::PERIPH_ID0 + rng.below(0x20),
        2 => rng.pick(REGISTERS) + rng.below(4),
        _ => rng.pick(REGISTERS),
    }
}

fn random_value(rng: &mut Rng, offset: u64) -> u32 {
    match offset & !3 {
        // Mostly enable the FIFO, loopback and the interrupts so the interesting states happen.
        offset::LCR_H if rng.coin() => 0x10 | rng.next_u32() & 0xef,
        offset::CR if rng.coin() => 0x301 | (rng.next_u32() & 0x80),
        offset::IMSC if rng.coin() => 0x70 & rng.next_u32(),
        _ => rng.interesting_u64() as u32,
    }
}

impl FuzzTarget for Vuart {
    type Input = Vec<Op>;
    const NAME: &'static str = "vuart";
    const SUMMARY: &'static str = "PL011 model: FIFO within its depth, interrupt line == RIS & IMSC, refused accesses change nothing";

    fn generate(rng: &mut Rng) -> Vec<Op> {
        (0..rng.range(1, 64))
            .map(|_| match rng.below(20) {
                0..=5 => {
                    let offset = random_offset(rng);
                    Op::Read {
                        offset,
                        width: AccessWidth::from_sas(rng.below(4) as u8),
                    }
                }
                6..=13 => {
                    let offset = random_offset(rng);
                    Op::Write {
                        offset,
                        width: AccessWidth::from_sas(rng.below(4) as u8),
                        value: random_value(rng, offset),
                    }
                }
                19 if rng.chance(1, 4) => Op::Reset,
                _ => Op::Input(rng.next_u64() as u8),
            })
            .collect()
    }

    fn check(ops: &Vec<Op>) -> Result<(), String> {
        let mut uart = Pl011::new();
        for (index, op) in ops.iter().enumerate() {
            let before = uart.clone();
            let refused = match *op {
                Op::Read { offset, width } => match uart.read(offset, width) {
                    Ok(value) => {
                        ensure!(
                            u64::from(value) & !width.mask() == 0,
                            "step {index}: {width:?} read returned {value:#x}"
                        );
                        false
                    }
                    Err(_) => true,
                },
                Op::Write {
                    offset,
                    width,
                    value,
                } => {
                    let mut sent = 0usize;
                    let result = uart.write(offset, width, value, &mut |_| sent += 1);
                    ensure!(sent <= 1, "step {index}: one store sent {sent} bytes");
                    result.is_err()
                }
                Op::Input(byte) => {
                    let could = uart.can_accept_input();
                    let took = uart.push_input(byte);
                    ensure!(
                        took == could,
                        "step {index}: push_input {took} but can_accept_input {could}"
                    );
                    false
                }
                Op::Reset => {
                    uart.reset();
                    false
                }
            };
            if let Op::Read { offset, width } | Op::Write { offset, width, .. } = *op {
                let must_refuse = offset >= offset::WINDOW
                    || width == AccessWidth::Doubleword
                    || offset % width.bytes() != 0;
                ensure!(
                    refused == must_refuse,
                    "step {index}: {op:?} refused: {refused}"
                );
            }
            if refused {
                ensure!(
                    format!("{before:?}") == format!("{uart:?}"),
                    "step {index}: a refused access changed the UART"
                );
            }
            check_state(&mut uart).map_err(|reason| format!("step {index}: {reason}"))?;
        }
        Ok(())
    }
}

/// The interrupt line agrees with the registers, and the receive FIFO holds at most its depth.
fn check_state(uart: &mut Pl011) -> Result<(), String> {
    let word = AccessWidth::Word;
    let ris = uart
        .read(offset::RIS, word)
        .map_err(|error| format!("RIS: {error}"))?;
    let imsc = uart
        .read(offset::IMSC, word)
        .map_err(|error| format!("IMSC: {error}"))?;
    let mis = uart
        .read(offset::MIS, word)
        .map_err(|error| format!("MIS: {error}"))?;
    let level = uart.interrupt_level();
    ensure!(
        level == (ris & imsc != 0),
        "interrupt_level {level} but RIS {ris:#x} IMSC {imsc:#x}"
    );
    ensure!(
        mis == ris & imsc,
        "MIS {mis:#x} != RIS {ris:#x} & IMSC {imsc:#x}"
    );

    let mut drained = uart.clone();
    let mut held = 0usize;
    while drained
        .read(offset::FR, word)
        .map_err(|error| format!("FR: {error}"))?
        & (1 << 4)
        == 0
    {
        held += 1;
        ensure!(
            held <= FIFO_DEPTH,
            "the receive FIFO holds more than {FIFO_DEPTH} bytes"
        );
        drained
            .read(offset::DR, word)
            .map_err(|error| format!("DR: {error}"))?;
    }
    Ok(())
}
