//! `aarch32-el0`: a 32-bit user program (AArch32 User mode, A32 and T32) run from the attack code
//! with the MMU off. It reads another cell's RAM, writes another cell's RAM, loads from the vUART
//! with LDM and LDRD (no syndrome), runs from another cell's RAM, and uses the vUART with single
//! loads and stores (emulated, so cellvisor must decode an AArch32 syndrome and step a 16-bit
//! T32 instruction by 2). cellvisor must answer each fault the way the architecture takes it: at
//! the guest kernel's lower-EL AArch32 vector (VBAR_EL1 + 0x600) with a "from a lower EL"
//! syndrome, never by stopping the cell.
//!
//! Each program ends with `svc #0`; the recording vector table sends an SVC from AArch32 (and an
//! AArch32 instruction abort) back to [`run`]'s caller through `attack_aarch32_return` instead
//! of returning to the program.

use cellvisor_guest_support::println;
use core::arch::{asm, global_asm};

use super::probe::{Outcome, last_trap, read32, trap_count, write32};
use super::{PREFIX, UART, Verdict};

/// ESR_EL1.EC of a data abort and an instruction abort from a lower EL.
const EC_DATA_ABORT_LOWER: u64 = 0x24;
const EC_INSTRUCTION_ABORT_LOWER: u64 = 0x20;
/// The recording table's number for the lower-EL AArch32 synchronous vector (VBAR_EL1 + 0x600).
const VECTOR_LOWER_AARCH32_SYNC: u64 = 12;
/// SPSR_EL1 for AArch32 User mode (M = 0b10000) with A, I and F masked; and the T bit (T32).
const SPSR_USER32: u64 = 0x10 | (0b111 << 6);
const SPSR_T: u64 = 1 << 5;
/// Another cell's RAM and the personal cell's RAM at its physical address.
const FOREIGN_RAM: u64 = 0x9000_0000;
const OWN_PHYSICAL_RAM: u64 = 0x6000_0000;
/// The vUART's flag register.
const UARTFR: u64 = UART + 0x18;
/// What r0 and r2 start with when the program should not change them.
const UNTOUCHED: u64 = 0x7E57;

// Register use, `attack_aarch32_run`: in x0, x1, x2 = r0, r1, r2 for the program, x3 = its entry,
// x4 = its SPSR; x18-x30 and DAIF are saved on SP_EL1 (nothing but r0-r14 survives AArch32
// state) and the program is entered with ERET. `attack_aarch32_return` is reached from the
// vector with x0-x2 pushed (32 bytes) on the same stack: it pops them (r0-r2 as the program left
// them), restores the saved registers and returns to the caller with x0 = r0, x2 = r2.
global_asm!(
    r#"
    .section .text, "ax"
    .balign 4
    .global attack_aarch32_run
attack_aarch32_run:
    stp     x29, x30, [sp, #-112]!
    stp     x27, x28, [sp, #16]
    stp     x25, x26, [sp, #32]
    stp     x23, x24, [sp, #48]
    stp     x21, x22, [sp, #64]
    stp     x19, x20, [sp, #80]
    mrs     x5, daif
    stp     x18, x5, [sp, #96]
    msr     elr_el1, x3
    msr     spsr_el1, x4
    eret

    .global attack_aarch32_return
attack_aarch32_return:
    ldr     x2, [sp, #16]
    ldp     x0, x1, [sp], #32
    ldp     x18, x5, [sp, #96]
    msr     daif, x5
    ldp     x19, x20, [sp, #80]
    ldp     x21, x22, [sp, #64]
    ldp     x23, x24, [sp, #48]
    ldp     x25, x26, [sp, #32]
    ldp     x27, x28, [sp, #16]
    ldp     x29, x30, [sp], #112
    ret

// The programs, hand-encoded (the assembler here only speaks A64).
    .balign 4
    .global attack_a32_load
attack_a32_load:
    .word   0xe5910000              // ldr r0, [r1]
    .word   0xef000000              // svc #0
    .global attack_a32_store
attack_a32_store:
    .word   0xe5810000              // str r0, [r1]
    .word   0xef000000              // svc #0
    .global attack_a32_load_multiple
attack_a32_load_multiple:
    .word   0xe8910005              // ldm r1, {{r0, r2}}
    .word   0xef000000              // svc #0
    .global attack_a32_load_double
attack_a32_load_double:
    .word   0xe1c120d0              // ldrd r2, r3, [r1]
    .word   0xef000000              // svc #0
    .global attack_a32_mmio
attack_a32_mmio:
    .word   0xe5910000              // ldr r0, [r1]
    .word   0xe3a02001              // mov r2, #1
    .word   0xef000000              // svc #0
    .global attack_a32_print
attack_a32_print:
    .word   0xe5810000              // str r0, [r1]
    .word   0xe5812000              // str r2, [r1]
    .word   0xef000000              // svc #0
    .global attack_t32_mmio
attack_t32_mmio:
    .hword  0x6808                  // ldr r0, [r1]      (16-bit)
    .hword  0x2201                  // movs r2, #1       (16-bit)
    .hword  0xdf00                  // svc #0
    .hword  0xdf00                  // svc #0
"#
);

unsafe extern "C" {
    static attack_a32_load: u8;
    static attack_a32_store: u8;
    static attack_a32_load_multiple: u8;
    static attack_a32_load_double: u8;
    static attack_a32_mmio: u8;
    static attack_a32_print: u8;
    static attack_t32_mmio: u8;
}

/// What a program left and the exception it raised before its SVC, if any.
struct Ran {
    r0: u64,
    r2: u64,
    trap: Option<(u64, u64, u64)>,
}

/// Runs the AArch32 program at `entry` (T32 if `thumb`) in User mode with r0, r1, r2.
fn run(entry: *const u8, thumb: bool, [r0, r1, r2]: [u64; 3]) -> Ran {
    let spsr = SPSR_USER32 | if thumb { SPSR_T } else { 0 };
    let before = trap_count();
    let (mut out0, mut out2) = (r0, r2);
    // SAFETY: `attack_aarch32_run` saves every register the AArch32 program cannot preserve and
    // returns here through `attack_aarch32_return` when the program's SVC (or an instruction
    // abort) reaches the recording vector table; the program only touches r0-r3 and memory
    // outside this guest's Rust objects (another cell's RAM, the vUART), with the MMU off.
    unsafe {
        asm!(
            "bl attack_aarch32_run",
            inout("x0") out0,
            in("x1") r1,
            inout("x2") out2,
            in("x3") entry as u64,
            in("x4") spsr,
            clobber_abi("C"),
        );
    }
    let trap = (trap_count() != before).then(last_trap);
    Ran {
        r0: out0 & 0xFFFF_FFFF,
        r2: out2 & 0xFFFF_FFFF,
        trap,
    }
}

/// Whether `ran` took a data abort from a lower EL at the AArch32 vector for `address`.
fn aborted_at(ran: &Ran, class: u64, address: u64) -> bool {
    matches!(ran.trap, Some((esr, far, vector))
        if esr >> 26 & 0x3F == class && esr & 0x3F == 0x10 && far == address
            && vector == VECTOR_LOWER_AARCH32_SYNC)
}

fn report(what: &str, ran: &Ran) {
    let (r0, r2) = (ran.r0, ran.r2);
    match ran.trap {
        Some((esr, far, vector)) => println!(
            "{PREFIX}aarch32-el0: {what} -> esr={esr:#x} far={far:#x} vector {vector}, r0={r0:#x} r2={r2:#x}"
        ),
        None => println!("{PREFIX}aarch32-el0: {what} -> no exception, r0={r0:#x} r2={r2:#x}"),
    }
}

pub(super) fn aarch32_el0() -> Verdict {
    let pfr0: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64pfr0_el1", out(reg) pfr0, options(nomem, nostack)) };
    if pfr0 & 0xF != 0b0010 {
        println!("{PREFIX}aarch32-el0: ID_AA64PFR0_EL1 {pfr0:#x}: EL0 is AArch64 only");
        return Ok("skipped: no AArch32 EL0");
    }
    let mut ok = true;
    let load = &raw const attack_a32_load;
    let store = &raw const attack_a32_store;
    // Another cell's RAM: data aborts at VBAR_EL1 + 0x600, r0 untouched.
    let ran = run(load, false, [UNTOUCHED, FOREIGN_RAM, UNTOUCHED]);
    report("A32 ldr r0, [0x90000000]", &ran);
    ok &= aborted_at(&ran, EC_DATA_ABORT_LOWER, FOREIGN_RAM) && ran.r0 == UNTOUCHED;
    let ran = run(store, false, [0xBAD, OWN_PHYSICAL_RAM, UNTOUCHED]);
    report("A32 str r0, [0x60000000]", &ran);
    ok &= aborted_at(&ran, EC_DATA_ABORT_LOWER, OWN_PHYSICAL_RAM)
        && matches!(ran.trap, Some((esr, _, _)) if esr >> 6 & 1 == 1);
    // No syndrome: LDM and LDRD from the vUART are refused the same way.
    for (what, program) in [
        (
            "A32 ldm r1, {r0, r2} of the vUART",
            &raw const attack_a32_load_multiple,
        ),
        (
            "A32 ldrd r2, r3, [vUART]",
            &raw const attack_a32_load_double,
        ),
    ] {
        let ran = run(program, false, [UNTOUCHED, UART, UNTOUCHED]);
        report(what, &ran);
        ok &= aborted_at(&ran, EC_DATA_ABORT_LOWER, UART);
    }
    // Running from another cell's RAM: an instruction abort from a lower EL.
    let ran = run(FOREIGN_RAM as *const u8, false, [UNTOUCHED, 0, UNTOUCHED]);
    report("A32 execute 0x90000000", &ran);
    ok &= aborted_at(&ran, EC_INSTRUCTION_ABORT_LOWER, FOREIGN_RAM);
    // The vUART from user space: emulated from the AArch32 syndrome, the PC stepped by the
    // instruction's length (4 for A32, 2 for 16-bit T32: `movs r2, #1` must run).
    let flags = match read32(UARTFR) {
        Outcome::Done(value) => value,
        Outcome::Trapped { .. } => return Err("UARTFR did not read"),
    };
    for (what, program, thumb) in [
        (
            "A32 ldr r0, [UARTFR]; mov r2, #1",
            &raw const attack_a32_mmio,
            false,
        ),
        (
            "T32 ldr r0, [UARTFR]; movs r2, #1",
            &raw const attack_t32_mmio,
            true,
        ),
    ] {
        let ran = run(program, thumb, [UNTOUCHED, UARTFR, UNTOUCHED]);
        report(what, &ran);
        ok &= ran.trap.is_none() && ran.r0 == flags && ran.r2 == 1;
    }
    // Two bytes written by the user program, inside a line the QEMU test looks for.
    for byte in b"test-guest: attack aarch32-el0: user program wrote " {
        let _ = write32(UART, u32::from(*byte));
    }
    let ran = run(
        &raw const attack_a32_print,
        false,
        [u64::from(b'3'), UART, u64::from(b'2')],
    );
    let _ = write32(UART, u32::from(b'\n'));
    report("A32 str r0, [UARTDR]; str r2, [UARTDR]", &ran);
    ok &= ran.trap.is_none();
    if ok {
        Ok("every AArch32 user fault came to the lower-EL AArch32 vector, user MMIO was emulated")
    } else {
        Err("an AArch32 user fault or access was mishandled")
    }
}
