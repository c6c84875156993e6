//! `test=pattern [rounds=N]`: the victim of `test=dma-attack`. Writes a pattern over its own RAM
//! from [`REGION_OFFSET`] to [`REGION_OFFSET`] + [`REGION_BYTES`] past its image's start (1 to 3
//! MiB into its RAM under cellvisor, which loads it at the start of the RAM: under
//! cellvisor the corporate cell's, whose physical base 0x9000_0000 puts the region at
//! 0x9010_0000), then checks it every [`PERIOD_MS`] and prints the result, for `rounds` rounds
//! (0, the default: for ever). Each 64-bit word's value depends on its address, so a copy of
//! another part of the region is seen as well as any foreign data.
//!
//! Lines (see `lines::PATTERN`): `test-guest: pattern: written <base> <length>`, then per round
//! `test-guest: pattern: intact <round>` or `test-guest: pattern: CHANGED at <address> (read
//! <value>, expected <value>)` (the first difference), and with `rounds=N` at the end
//! `test-guest: pattern: done <N> rounds`.

use crate::options::Options;
use crate::{lines, timer};
use cellvisor_guest_support::println;

/// Where the region starts, from the image's first byte (under cellvisor the start of the cell's
/// RAM; natively QEMU loads the image 2 MiB into RAM).
pub const REGION_OFFSET: u64 = 1024 * 1024;
/// Bytes of the region.
pub const REGION_BYTES: u64 = 2 * 1024 * 1024;
/// Milliseconds between two checks.
pub const PERIOD_MS: u64 = 1000;

/// The pattern word at `address`.
fn pattern(address: u64) -> u64 {
    address.rotate_left(29) ^ 0x5A17_C0DE_F00D_CE11
}

/// The first word of the region that does not hold its pattern: (address, value read).
fn first_difference(base: u64) -> Option<(u64, u64)> {
    (base..base + REGION_BYTES).step_by(8).find_map(|address| {
        // SAFETY: the region lies in this cell's RAM past its image and away from its device
        // tree (checked in `run`); nothing of Rust's lives there.
        let value = unsafe { (address as *const u64).read_volatile() };
        (value != pattern(address)).then_some((address, value))
    })
}

/// Writes the pattern and checks it every [`PERIOD_MS`] for `options.rounds` rounds (0: for ever).
pub fn run(device_tree: Option<&[u8]>, options: &Options) {
    let base = crate::ram_base() + REGION_OFFSET;
    let end = base + REGION_BYTES;
    let tree = device_tree.map_or((0, 0), |tree| {
        (
            tree.as_ptr() as u64,
            tree.as_ptr() as u64 + tree.len() as u64,
        )
    });
    if crate::image_end() > base || (tree.0 < end && base < tree.1) {
        println!(
            "{}pattern: region {base:#x}..{end:#x} overlaps the image (ends {:#x}) or the device \
             tree ({:#x}..{:#x})",
            lines::FAIL,
            crate::image_end(),
            tree.0,
            tree.1
        );
        return;
    }
    for address in (base..end).step_by(8) {
        // SAFETY: as in `first_difference`.
        unsafe { (address as *mut u64).write_volatile(pattern(address)) };
    }
    println!("{}written {base:#x} {REGION_BYTES:#x}", lines::PATTERN);
    let start = timer::Instant::now();
    let mut round = 0u32;
    while options.rounds == 0 || round < options.rounds {
        round += 1;
        let due = start.after_ms(u64::from(round) * PERIOD_MS);
        while !due.has_passed() {
            core::hint::spin_loop();
        }
        match first_difference(base) {
            None => println!("{}intact {round}", lines::PATTERN),
            Some((address, value)) => println!(
                "{}CHANGED at {address:#x} (read {value:#x}, expected {:#x})",
                lines::PATTERN,
                pattern(address)
            ),
        }
    }
    println!("{}done {round} rounds", lines::PATTERN);
}
