//! Emulated-device attacks: the vUART's registers, and MMIO instructions without a syndrome.

use cellvisor_guest_support::println;
use core::arch::asm;

use super::probe::{Outcome, attempt, read32, write32, write64};
use super::{EC_DATA_ABORT_SAME_EL, GICD, GICR, PREFIX, UART, Verdict};

pub(super) fn uart() -> Verdict {
    // A line that tries to pass for the victim's, with a carriage return, an escape sequence and
    // the console escape key (Ctrl-A) inside it.
    println!("{PREFIX}uart: marker 7e57-personal");
    for byte in b"\r[corporate] test-guest: heartbeat 9999/9999\x1b[2K\x01q\n" {
        let _ = write32(UART, u32::from(*byte));
    }
    // 8-, 16- and 64-bit data writes, writes to the read-only flag register, reads of
    // unimplemented and identification registers, an unaligned access.
    let outcomes = [
        (
            "8-bit DR write",
            attempt(|| {
                // SAFETY: a byte store to the emulated UART's data register.
                unsafe {
                    asm!("strb {v:w}, [{a}]", a = in(reg) UART, v = in(reg) u32::from(b'#'), options(nostack))
                };
                0
            }),
        ),
        (
            "16-bit DR write",
            attempt(|| {
                // SAFETY: a halfword store to the emulated UART's data register.
                unsafe {
                    asm!("strh {v:w}, [{a}]", a = in(reg) UART, v = in(reg) u32::from(b'#'), options(nostack))
                };
                0
            }),
        ),
        ("64-bit DR write", write64(UART, 0x0A23_2323)),
        ("FR write", write32(UART + 0x18, u32::MAX)),
        ("FR read", read32(UART + 0x18)),
        ("PeriphID0 read", read32(UART + 0xFE0)),
        ("offset 0xFFC read", read32(UART + 0xFFC)),
        ("offset 0x800 write", write32(UART + 0x800, u32::MAX)),
        ("unaligned DR+1 read", read32(UART + 1)),
        ("IMSC write all", write32(UART + 0x38, u32::MAX)),
        ("ICR write all", write32(UART + 0x44, u32::MAX)),
        ("IMSC clear", write32(UART + 0x38, 0)),
    ];
    println!();
    for (what, outcome) in outcomes {
        println!("{PREFIX}uart: {what} -> {outcome}");
    }
    // The UART must still work: this line is the proof.
    println!("{PREFIX}uart: still printing after the register attacks");
    // A 600-byte line with no newline until the end: the console must cut or carry it, not hang.
    for _ in 0..600 {
        let _ = write32(UART, u32::from(b'x'));
    }
    let _ = write32(UART, u32::from(b'\n'));
    Ok("the UART stayed usable; output shows under the attacker's prefix only")
}

pub(super) fn mmio_no_syndrome() -> Verdict {
    let mut ok = true;
    for (device, base) in [("uart", UART), ("gicd", GICD), ("gicr", GICR)] {
        // A register that exists on every one of these devices: offset 0 (UARTDR, GICD_CTLR,
        // GICR_CTLR), then the same instructions at offset 8.
        let probes = [
            ("ldp", access!(base, "ldp {v}, x9, [{a}]")),
            ("stp", access!(base, "stp xzr, xzr, [{a}]")),
            ("ldxr", access!(base, "ldxr {v}, [{a}]")),
            ("stxr", access!(base, "stxr w9, {v}, [{a}]")),
            ("ldar", access!(base, "ldar {v}, [{a}]")),
            ("ldadd", access!(base, "ldadd {v}, x9, [{a}]")),
            ("cas", access!(base, "cas {v}, x9, [{a}]")),
            ("swp", access!(base, "swp {v}, x9, [{a}]")),
            ("dc zva", access!(base, "dc zva, {a}")),
            ("dc civac", access!(base, "dc civac, {a}")),
            ("unaligned ldr +1", access!(base + 1, "ldr {v:w}, [{a}]")),
            ("unaligned ldr +6", access!(base + 6, "ldr {v}, [{a}]")),
            ("ldp q", access!(base, "ldp q0, q1, [{a}]")),
            ("ldr q", access!(base, "ldr q0, [{a}]")),
            ("str q", access!(base, "str q0, [{a}]")),
            ("ld1 vector", access!(base, "ld1 {{v0.16b}}, [{a}]")),
            (
                "ldr post-index",
                access!(base + 8, "mov x9, {a}\n ldr {v:w}, [x9], #4"),
            ),
            (
                "str pre-index",
                access!(base + 4, "mov x9, {a}\n str {v:w}, [x9, #4]!"),
            ),
            ("prfm", access!(base, "prfm pldl1keep, [{a}]")),
        ];
        for (what, outcome) in probes {
            println!("{PREFIX}mmio-no-syndrome: {device} {what} -> {outcome}");
            // Everything that traps must trap as a data abort (stage 1 alignment fault or an
            // abort cellvisor injected); an undefined instruction would mean a bad emulation.
            if let Some(class) = outcome.class() {
                ok &= class == EC_DATA_ABORT_SAME_EL;
            }
        }
    }
    // The devices still answer afterwards.
    let flags = read32(UART + 0x18);
    println!("{PREFIX}mmio-no-syndrome: UARTFR afterwards -> {flags}");
    ok &= matches!(flags, Outcome::Done(_));
    if ok {
        Ok("each access aborted or was emulated, no hang")
    } else {
        Err("an access raised something other than a data abort")
    }
}
