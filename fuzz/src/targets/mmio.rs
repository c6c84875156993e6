//! `mmio::load_result` and `mmio::store_value` on random accesses and values.
#![forbid(unsafe_code)]

use cellvisor::dev::mmio::{self, AccessWidth, MmioAccess, TransferRegister};

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Mmio;

/// One access and the two values that cross it.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    /// The decoded access.
    pub access: MmioAccess,
    /// What the device answers to a load.
    pub raw: u64,
    /// The register a store reads.
    pub register_value: u64,
}

impl FuzzTarget for Mmio {
    type Input = Transfer;
    const NAME: &'static str = "mmio";
    const SUMMARY: &'static str = "MMIO load/store narrowing: nothing above the width but sign extension, W loads clear bits 63:32";

    fn generate(rng: &mut Rng) -> Transfer {
        Transfer {
            access: MmioAccess {
                width: AccessWidth::from_sas(rng.below(4) as u8),
                sign_extend: rng.coin(),
                register: TransferRegister::from_srt(rng.below(32) as u8),
                sixty_four: rng.coin(),
                acquire_release: rng.coin(),
            },
            raw: rng.interesting_u64(),
            register_value: rng.interesting_u64(),
        }
    }

    fn check(transfer: &Transfer) -> Result<(), String> {
        let access = &transfer.access;
        let mask = access.width.mask();
        let bits = access.width.bits();

        let stored = mmio::store_value(access, transfer.register_value);
        ensure!(
            stored & !mask == 0,
            "store {stored:#x} has bits above {bits}"
        );
        ensure!(
            stored == transfer.register_value & mask,
            "store {stored:#x} lost low bits"
        );

        let loaded = mmio::load_result(access, transfer.raw);
        let register_mask = if access.sixty_four {
            u64::MAX
        } else {
            0xffff_ffff
        };
        ensure!(
            loaded & !register_mask == 0,
            "W load {loaded:#x} has bits 63:32 set"
        );
        let low = transfer.raw & mask;
        ensure!(
            loaded & mask & register_mask == low & register_mask,
            "load {loaded:#x} changed the data bits"
        );
        let upper = loaded & !mask & register_mask;
        let negative = bits < 64 && low >> (bits - 1) & 1 != 0;
        let expected_upper = if access.sign_extend && negative {
            !mask & register_mask
        } else {
            0
        };
        ensure!(
            upper == expected_upper,
            "load {loaded:#x}: bits above the width are {upper:#x}, expected {expected_upper:#x}"
        );
        Ok(())
    }
}
