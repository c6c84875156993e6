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

/// PSCI functions and the answers that do not change the cell's state.
const PSCI_FEATURES: u32 = 0x8400_000A;
const CPU_SUSPEND: u32 = 0x8400_0001;
const CPU_SUSPEND_64: u32 = 0xC400_0001;
const AFFINITY_INFO_64: u32 = 0xC400_0004;
const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
const SYSTEM_RESET2: u32 = 0x8400_0012;
const SYSTEM_RESET2_64: u32 = 0xC400_0012;
/// Functions PSCI_FEATURES may say exist but that stop, reset or start vCPUs: never called here.
const STATE_CHANGING: [u32; 7] = [
    0x8400_0002, // CPU_OFF
    0x8400_0003, // CPU_ON
    0xC400_0003, // CPU_ON (SMC64)
    0x8400_0008, // SYSTEM_OFF
    0x8400_0009, // SYSTEM_RESET
    SYSTEM_RESET2,
    SYSTEM_RESET2_64,
];

pub(super) fn psci_flood() -> Verdict {
    let mut wrong = 0u32;
    let mut supported = 0u32;
    // PSCI_FEATURES of every function number in the PSCI range, SMC32 and SMC64: a function said
    // to be missing must answer NOT_SUPPORTED when called (with foreign-looking arguments).
    for id in (0x8400_0000u32..=0x8400_001F).chain(0xC400_0000..=0xC400_001F) {
        let features = psci::hvc(PSCI_FEATURES, u64::from(id), 0, 0);
        if features >= 0 {
            supported += 1;
            continue;
        }
        if features != psci::NOT_SUPPORTED || STATE_CHANGING.contains(&id) {
            println!("{PREFIX}psci-flood: PSCI_FEATURES({id:#x}) -> {features}");
            wrong += 1;
            continue;
        }
        let result = psci::hvc(id, 0x9000_0000, 0x9000_0000, u64::MAX);
        if result != psci::NOT_SUPPORTED {
            println!("{PREFIX}psci-flood: {id:#x}, said to be missing, returned {result}");
            wrong += 1;
        }
    }
    // 20,000 CPU_SUSPENDs: standby, power-down with an entry point in another cell's RAM or
    // nowhere, and malformed states. Each returns here (cellvisor treats all as a standby that
    // ends at once; an error for a bad state would also do), never at the entry point.
    let states = [
        0u64,
        0x1_0000,
        0x1_0000 | 0x0100_0000,
        0xFFFF_FFFF,
        0x4000_0000,
    ];
    let entries = [0x9000_0000u64, 0, u64::MAX, 0x4000_0000];
    for round in 0..20_000usize {
        let function = if round % 2 == 0 {
            CPU_SUSPEND
        } else {
            CPU_SUSPEND_64
        };
        let state = states[round % states.len()];
        let entry = entries[round / states.len() % entries.len()];
        let result = psci::hvc(function, state, entry, 0xC0FFEE);
        if !matches!(
            result,
            psci::SUCCESS | psci::INVALID_PARAMETERS | psci::INVALID_ADDRESS
        ) {
            if wrong < 8 {
                println!("{PREFIX}psci-flood: CPU_SUSPEND({state:#x}, {entry:#x}) -> {result}");
            }
            wrong += 1;
        }
    }
    // 100,000 AFFINITY_INFOs: itself (on), vCPUs and levels it does not have (invalid).
    let queries = [
        (0u64, 0u64, Some(0i64)),
        (0x100, 0, Some(psci::INVALID_PARAMETERS)),
        (0, 1, Some(psci::INVALID_PARAMETERS)),
        (7, 0, Some(psci::INVALID_PARAMETERS)),
        (u64::MAX, 0, Some(psci::INVALID_PARAMETERS)),
        // vCPU 1 may be on or off, never anything else.
        (1, 0, None),
    ];
    for round in 0..100_000usize {
        let (target, level, expected) = queries[round % queries.len()];
        let result = psci::hvc(AFFINITY_INFO_64, target, level, 0);
        let right = match expected {
            Some(expected) => result == expected,
            None => (0..=2).contains(&result),
        };
        if !right {
            if wrong < 8 {
                println!("{PREFIX}psci-flood: AFFINITY_INFO({target:#x}, {level}) -> {result}");
            }
            wrong += 1;
        }
    }
    // SYSTEM_RESET2 with every kind of reset type but the one that resets (0, warm): invalid
    // architectural types and vendor types; none may reset the cell.
    for function in [SYSTEM_RESET2, SYSTEM_RESET2_64] {
        for (reset_type, expected) in [
            (1u64, psci::INVALID_PARAMETERS),
            (0x7FFF_FFFF, psci::INVALID_PARAMETERS),
            (0x8000_0000, psci::NOT_SUPPORTED),
            (0xFFFF_FFFF, psci::NOT_SUPPORTED),
        ] {
            let result = psci::hvc(function, reset_type, 0x9000_0000, 0);
            if result != expected {
                println!(
                    "{PREFIX}psci-flood: SYSTEM_RESET2 {function:#x} type {reset_type:#x} -> {result}"
                );
                wrong += 1;
            }
        }
    }
    let migrate = psci::hvc(MIGRATE_INFO_TYPE, 0, 0, 0);
    wrong += u32::from(migrate != 2);
    println!(
        "{PREFIX}psci-flood: {supported} PSCI functions supported, 20000 CPU_SUSPEND, 100000 AFFINITY_INFO, 8 SYSTEM_RESET2 with bad types, MIGRATE_INFO_TYPE {migrate}: {wrong} wrong"
    );
    if wrong == 0 {
        Ok("every PSCI call answered for this cell only, none suspended, reset or jumped")
    } else {
        Err("a PSCI call in the flood got a wrong answer")
    }
}
