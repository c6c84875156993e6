//! `platform::parse` on mutations of the QEMU virt GICv3 device tree.
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use super::QEMU_VIRT_DTB;
use crate::{FuzzTarget, Rng};

/// The fixture cut to the bytes its header uses (QEMU pads the blob to 1 MiB), with `totalsize`
/// rewritten to match, so mutations land on the structure and strings rather than padding.
pub fn trimmed_fixture() -> &'static [u8] {
    static TRIMMED: OnceLock<Vec<u8>> = OnceLock::new();
    TRIMMED.get_or_init(|| {
        let word = |at: usize| {
            u32::from_be_bytes([
                QEMU_VIRT_DTB[at],
                QEMU_VIRT_DTB[at + 1],
                QEMU_VIRT_DTB[at + 2],
                QEMU_VIRT_DTB[at + 3],
            ]) as usize
        };
        // off_dt_struct + size_dt_struct and off_dt_strings + size_dt_strings.
        let used = (word(8) + word(36))
            .max(word(12) + word(32))
            .next_multiple_of(8);
        let mut blob = QEMU_VIRT_DTB[..used.min(QEMU_VIRT_DTB.len())].to_vec();
        let total = blob.len() as u32;
        blob[4..8].copy_from_slice(&total.to_be_bytes());
        blob
    })
}

/// The target.
pub struct Platform;

/// One change to the fixture.
#[derive(Clone, Copy, Debug)]
pub enum Mutation {
    /// XOR a byte.
    Flip {
        /// Byte offset.
        at: usize,
        /// XOR mask.
        mask: u8,
    },
    /// Overwrite a big-endian u32 at a 4-byte aligned offset (header fields, tokens, lengths,
    /// string offsets, cell values).
    Word {
        /// Byte offset.
        at: usize,
        /// The value.
        value: u32,
    },
    /// Cut the blob.
    Truncate(usize),
    /// Copy `length` bytes from `from` over `to` (duplicated or misplaced tokens).
    Copy {
        /// Source offset.
        from: usize,
        /// Destination offset.
        to: usize,
        /// Length.
        length: usize,
    },
}

fn interesting_word(rng: &mut Rng, len: usize) -> u32 {
    match rng.below(8) {
        0 => 0,
        1 => u32::MAX,
        2 => rng.range(1, 9) as u32,
        3 => len as u32 + rng.below(64) as u32 - 32,
        4 => 0x8000_0000,
        5 => rng.below(len as u64) as u32,
        _ => rng.next_u32(),
    }
}

impl FuzzTarget for Platform {
    type Input = Vec<Mutation>;
    const NAME: &'static str = "platform";
    const SUMMARY: &'static str =
        "platform device tree parsing: mutated QEMU virt trees give errors, never panics";

    fn generate(rng: &mut Rng) -> Vec<Mutation> {
        let len = trimmed_fixture().len();
        (0..rng.range(0, 6))
            .map(|_| match rng.below(10) {
                0..=2 => Mutation::Flip {
                    at: rng.index(len),
                    mask: 1 << rng.below(8),
                },
                3..=6 => {
                    let at = if rng.chance(1, 4) {
                        rng.index(40)
                    } else {
                        rng.index(len)
                    } & !3;
                    Mutation::Word {
                        at,
                        value: interesting_word(rng, len),
                    }
                }
                7 => Mutation::Truncate(rng.index(len)),
                _ => Mutation::Copy {
                    from: rng.index(len) & !3,
                    to: rng.index(len) & !3,
                    length: rng.range(4, 64) as usize & !3,
                },
            })
            .collect()
    }

    fn check(mutations: &Vec<Mutation>) -> Result<(), String> {
        let mut dtb = trimmed_fixture().to_vec();
        for mutation in mutations {
            match *mutation {
                Mutation::Flip { at, mask } => {
                    if let Some(byte) = dtb.get_mut(at) {
                        *byte ^= mask;
                    }
                }
                Mutation::Word { at, value } => {
                    if let Some(word) = dtb.get_mut(at..at + 4) {
                        word.copy_from_slice(&value.to_be_bytes());
                    }
                }
                Mutation::Truncate(length) => dtb.truncate(length),
                Mutation::Copy { from, to, length } => {
                    if let Some(chunk) = dtb.get(from..from + length).map(<[u8]>::to_vec)
                        && let Some(target) = dtb.get_mut(to..to + length)
                    {
                        target.copy_from_slice(&chunk);
                    }
                }
            }
        }
        match cellvisor::setup::platform::parse(&dtb) {
            Ok(_) => {}
            Err(error) => {
                let text = error.to_string();
                if text.contains('\n') {
                    return Err(format!("error text has a newline: {text:?}"));
                }
            }
        }
        if mutations.is_empty() && cellvisor::setup::platform::parse(&dtb).is_err() {
            return Err(String::from("the unmodified fixture is refused"));
        }
        Ok(())
    }
}
