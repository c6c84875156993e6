//! SMCCC attacks: unknown and malformed function IDs through HVC and SMC, odd immediates.

use crate::psci;
use cellvisor_guest_support::println;
use core::arch::asm;

use super::probe::{hvc4, smc4};
use super::{CELLVISOR_ABI, CELLVISOR_VERSION, PREFIX, Verdict};

/// Unknown or malformed SMCCC function IDs: every owner's unused numbers, yielding calls, fast
/// calls with bits 23:16 set, SMC32 and SMC64.
fn unknown_function_ids() -> impl Iterator<Item = u64> {
    let owners = (0u64..64).flat_map(|owner| {
        [0x8000_0000u64, 0xC000_0000]
            .into_iter()
            .flat_map(move |kind| {
                [0x0123u64, 0xFEFF, 0xFF00, 0xFFFF]
                    .into_iter()
                    .map(move |number| kind | owner << 24 | number)
            })
    });
    let specific = [
        0x8000_0002u64,
        0x8000_8000,
        0x8600_0002,
        0xC600_0002,
        0x8600_FF01,
        0xC600_FF03,
        0x8600_FFFF,
        0x8400_0020,
        0xC400_001F,
        0x8401_0000,
        0xC6FF_0000,
        0x8080_0000, // bits 23:16 set
        0x0000_0000,
        0x0400_0000,
        0x0600_0000,
        0x4600_0001,
        0x3F00_FFFF, // yielding
    ];
    owners.chain(specific)
}

pub(super) fn smccc() -> Verdict {
    let mut calls = 0u32;
    let mut wrong = 0u32;
    let mut leaked = 0u32;
    for id in unknown_function_ids() {
        for conduit in ["hvc", "smc"] {
            let (x1, x2, x3) = (0x1111_1111_1111_1111, 0x2222, u64::MAX);
            let out = if conduit == "hvc" {
                hvc4(id, x1, x2, x3)
            } else {
                smc4(id, x1, x2, x3)
            };
            calls += 1;
            if out[0] as i64 != psci::NOT_SUPPORTED {
                wrong += 1;
                println!("{PREFIX}smccc: {conduit} {id:#x} returned {:#x}", out[0]);
            }
            // x1..x3 must not carry anything from cellvisor: zero or what the caller passed.
            let passed = [x1, x2, x3];
            for (index, &value) in out[1..].iter().enumerate() {
                if value != 0 && value != passed[index] {
                    leaked += 1;
                    println!(
                        "{PREFIX}smccc: {conduit} {id:#x} left x{} = {value:#x}",
                        index + 1
                    );
                }
            }
        }
    }
    // Non-zero immediates, with otherwise valid function IDs.
    let immediate = |which: u32| -> i64 {
        let mut x0 = u64::from(CELLVISOR_VERSION);
        // SAFETY: HVC/SMC trap to cellvisor, which writes x0..x3 only.
        unsafe {
            match which {
                0 => {
                    asm!("hvc #1", inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, options(nostack))
                }
                1 => {
                    asm!("hvc #0xffff", inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, options(nostack))
                }
                2 => {
                    asm!("smc #0x1234", inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, options(nostack))
                }
                _ => {
                    asm!("smc #1", inout("x0") x0, out("x1") _, out("x2") _, out("x3") _, options(nostack))
                }
            }
        }
        x0 as i64
    };
    for (which, what) in ["hvc #1", "hvc #0xffff", "smc #0x1234", "smc #1"]
        .into_iter()
        .enumerate()
    {
        let result = immediate(which as u32);
        calls += 1;
        println!("{PREFIX}smccc: {what} with CELLVISOR_VERSION -> {result}");
        if result != psci::NOT_SUPPORTED {
            wrong += 1;
        }
    }
    // Garbage in x0's upper half with a valid 32-bit ID: either the call or NOT_SUPPORTED.
    let upper = hvc4(
        0xDEAD_BEEF_0000_0000 | u64::from(CELLVISOR_VERSION),
        0,
        0,
        0,
    )[0] as i64;
    println!("{PREFIX}smccc: CELLVISOR_VERSION with x0[63:32] set -> {upper:#x}");
    if upper != CELLVISOR_ABI && upper != psci::NOT_SUPPORTED {
        wrong += 1;
    }
    println!("{PREFIX}smccc: {calls} calls, {wrong} wrong results, {leaked} leaked registers");
    match (wrong, leaked) {
        (0, 0) => Ok("every unknown or malformed call returned NOT_SUPPORTED"),
        (0, _) => Err("an unknown call left a non-zero value in x1..x3"),
        _ => Err("an unknown or malformed call did not return NOT_SUPPORTED"),
    }
}
