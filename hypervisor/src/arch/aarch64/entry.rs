//! Boot entry, the arm64 Image header, EL2 exception vectors and the guest world switch (assembly).
//!
//! Register use is written next to each block. Struct offsets come from `offset_of!`.

use core::arch::global_asm;
use core::mem::offset_of;

use super::{MAX_CPUS, STACK_SLOT};
use crate::core::hardware::GuestRegs;

/// Why `enter_guest` returned: which EL2 vector the guest's exception arrived on.
pub const EXIT_SYNC: u64 = 0;
/// A physical IRQ arrived while the guest ran.
pub const EXIT_IRQ: u64 = 1;
/// A physical FIQ arrived while the guest ran.
pub const EXIT_FIQ: u64 = 2;
/// An SError arrived while the guest ran.
pub const EXIT_SERROR: u64 = 3;
/// Not a vector: the fast path answered the exit and the vCPU leaves its guest.
pub const EXIT_LEAVE: u64 = 4;

const _: () = assert!(size_of::<GuestRegs>() == 33 * 8);
const _: () = assert!(offset_of!(GuestRegs, x) == 0);

// Boot: the Image header, the primary and secondary entry points.
//
// The primary CPU arrives with x0 = physical address of the platform device tree. Registers:
//   x19 = device tree address (kept across the BSS clear), x20 = CurrentEL.EL.
// Secondaries arrive from PSCI CPU_ON with x0 = their CPU index (the context id we passed).
global_asm!(
    r#"
    .section .text.head, "ax"
    .global _start
_start:
    b       cellvisor_primary_entry               // code0: branch to the real entry
    .long   0                       // code1
    .quad   __text_offset           // text_offset from a 2 MiB-aligned RAM base
    .quad   __image_size            // image_size: file + BSS + stacks + heap
    .quad   0x2                     // flags: little-endian, 4 KiB pages, 2 MiB-aligned base
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

    .section .text, "ax"
cellvisor_primary_entry:
    mov     x19, x0
    mrs     x20, CurrentEL
    ubfx    x20, x20, #2, #2
    // Clear BSS (16-byte aligned by the linker script).
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  // Stack of CPU 0: the top of the first slot (its guard is the slot's lower half).
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    add     sp, x1, #{stack_slot}
    cmp     x20, #2
    b.ne    3f
    adrp    x1, cellvisor_el2_vectors
    add     x1, x1, :lo12:cellvisor_el2_vectors
    msr     vbar_el2, x1
    isb
3:  mov     x0, x19
    mov     x1, x20
    bl      {primary_main}
4:  wfi
    b       4b

    .global cellvisor_secondary_entry
cellvisor_secondary_entry:
    // x0 = CPU index (< MAX_CPUS, checked before CPU_ON). sp = top of that CPU's stack.
    mov     x19, x0
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    mov     x2, #{stack_slot}
    madd    x1, x0, x2, x1
    add     sp, x1, x2
    adrp    x1, cellvisor_el2_vectors
    add     x1, x1, :lo12:cellvisor_el2_vectors
    msr     vbar_el2, x1
    isb
    mov     x0, x19
    bl      {secondary_main}
5:  wfi
    b       5b

    // A CPU released from a spin table (`enable-method = "spin-table"`) arrives here with its MMU
    // and caches off and nothing in x0 we can use: it finds its index by its MPIDR affinity in
    // SPIN_TABLE_MPIDRS (filled and cleaned to the point of coherency by the boot CPU before the
    // release) and continues as a PSCI-started CPU would. A CPU not at EL2, or not in the table,
    // parks.
    .global cellvisor_spin_table_entry
cellvisor_spin_table_entry:
    mrs     x1, CurrentEL
    ubfx    x1, x1, #2, #2
    cmp     x1, #2
    b.ne    7f
    mrs     x1, mpidr_el1
    ubfx    x2, x1, #32, #8                 // Aff3
    and     x1, x1, #0xffffff               // Aff2..Aff0
    orr     x1, x1, x2, lsl #32
    adrp    x2, {spin_table_mpidrs}
    add     x2, x2, :lo12:{spin_table_mpidrs}
    mov     x0, #0
6:  cmp     x0, #{max_cpus}
    b.hs    7f
    ldr     x3, [x2, x0, lsl #3]
    cmp     x3, x1
    b.eq    cellvisor_secondary_entry
    add     x0, x0, #1
    b       6b
7:  wfe
    b       7b
"#,
    primary_main = sym super::boot::primary_main,
    secondary_main = sym super::boot::secondary_main,
    spin_table_mpidrs = sym super::boot::SPIN_TABLE_MPIDRS,
    stack_slot = const STACK_SLOT,
    max_cpus = const MAX_CPUS,
);

// EL2 vectors. Exceptions taken from EL2 itself are hypervisor faults; exceptions from EL1/EL0
// (the guest) end `enter_guest`.
//
// Guest exit registers: [sp] holds the guest's x0/x1 during the save, x1 = exit kind,
// x0 = pointer to the GuestRegs of this CPU (TPIDR_EL2).
global_asm!(
    r#"
    .macro  hyp_fault kind
    .balign 0x80
    mov     x0, #\kind
    mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    mrs     x4, spsr_el2
    bl      {hyp_fault}
    .endm

    .macro  guest_exit kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!
    mov     x1, #\kind
    b       cellvisor_guest_exit_common
    .endm

    .section .text.vectors, "ax"
    .balign 0x800
cellvisor_el2_vectors:
    hyp_fault 0                    // current EL, SP_EL0: sync
    hyp_fault 1                    // irq
    hyp_fault 2                    // fiq
    hyp_fault 3                    // serror
    .balign 0x80                   // current EL, SP_ELx: sync (an aborted device access
    b       cellvisor_el2_sync     // resumes, anything else is a fault: arch::aarch64::device)
    hyp_fault 5                    // irq
    hyp_fault 6                    // fiq
    hyp_fault 7                    // serror
    guest_exit {exit_sync}         // lower EL, AArch64: sync
    guest_exit {exit_irq}          // irq
    guest_exit {exit_fiq}          // fiq
    guest_exit {exit_serror}       // serror
    guest_exit {exit_sync}         // lower EL, AArch32 (guest EL0 only): sync
    guest_exit {exit_irq}          // irq
    guest_exit {exit_fiq}          // fiq
    guest_exit {exit_serror}       // serror

cellvisor_guest_exit_common:
    // Save the guest's caller-saved registers (x0-x18, x30) and ELR/SPSR into its GuestRegs.
    // x19-x29 still hold the guest's values and the fast path preserves them (AAPCS64).
    mrs     x0, tpidr_el2
    stp     x2, x3, [x0, #16]
    stp     x4, x5, [x0, #32]
    stp     x6, x7, [x0, #48]
    stp     x8, x9, [x0, #64]
    stp     x10, x11, [x0, #80]
    stp     x12, x13, [x0, #96]
    stp     x14, x15, [x0, #112]
    stp     x16, x17, [x0, #128]
    str     x18, [x0, #144]
    str     x30, [x0, #240]
    ldp     x2, x3, [sp], #16       // the guest's x0, x1
    stp     x2, x3, [x0, #0]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x0, #{elr}]
    // The fast path: x0 = the FastContext enter_guest keeps on the EL2 stack, x1 = exit kind.
    // It returns 0 when it answered the exit, else the exit kind + 1.
    ldr     x0, [sp, #{context}]
    bl      {fast_exit}
    cbnz    x0, 1f
    // Answered: load the caller-saved registers and ELR/SPSR back and return to the guest.
    mrs     x0, tpidr_el2
    // Guest resume, shared with enter_guest: x0 = its GuestRegs, x19-x29 already the guest's.
cellvisor_guest_resume:
    ldp     x2, x3, [x0, #{elr}]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldr     x18, [x0, #144]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0, #0]
    eret
    dsb     nsh
    isb
1:  // Left to the run loop: save the guest's x19-x29 too, then return from enter_guest with the
    // exit kind (x0 - 1), restoring the host's callee-saved registers it pushed.
    sub     x1, x0, #1
    mrs     x0, tpidr_el2
    stp     x19, x20, [x0, #152]
    stp     x21, x22, [x0, #168]
    stp     x23, x24, [x0, #184]
    stp     x25, x26, [x0, #200]
    stp     x27, x28, [x0, #216]
    str     x29, [x0, #232]
    mov     x0, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #{frame}
    ret

    // enter_guest(x0 = *mut GuestRegs, x1 = *mut FastContext) -> exit kind. Saves x19-x30 and
    // the context on the EL2 stack, points TPIDR_EL2 at the GuestRegs, loads the guest's x19-x29
    // and takes the guest resume above for the rest (ELR/SPSR, x0-x18, x30, ERET).
    .global cellvisor_enter_guest
cellvisor_enter_guest:
    sub     sp, sp, #{frame}
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    str     x1, [sp, #{context}]
    msr     tpidr_el2, x0
    ldp     x19, x20, [x0, #152]
    ldp     x21, x22, [x0, #168]
    ldp     x23, x24, [x0, #184]
    ldp     x25, x26, [x0, #200]
    ldp     x27, x28, [x0, #216]
    ldr     x29, [x0, #232]
    b       cellvisor_guest_resume
"#,
    hyp_fault = sym super::boot::hyp_fault,
    fast_exit = sym super::cpu::cellvisor_fast_exit,
    frame = const ENTER_FRAME,
    context = const ENTER_FRAME - 16,
    exit_sync = const EXIT_SYNC,
    exit_irq = const EXIT_IRQ,
    exit_fiq = const EXIT_FIQ,
    exit_serror = const EXIT_SERROR,
    elr = const offset_of!(GuestRegs, elr),
);

const _: () = assert!(offset_of!(GuestRegs, spsr) == offset_of!(GuestRegs, elr) + 8);
const _: () = assert!(offset_of!(GuestRegs, elr) == 31 * 8);

/// Bytes `enter_guest` keeps on the EL2 stack while the guest runs: x19-x30 (96 bytes), then the
/// fast-path context pointer, padded to keep the stack 16-byte aligned.
const ENTER_FRAME: usize = 112;
const _: () = assert!(MAX_CPUS * STACK_SLOT <= 0x100000);
// `add sp, x1, #imm`: the slot fits an add immediate (shifted by 12).
const _: () = assert!(STACK_SLOT.is_multiple_of(0x1000) && STACK_SLOT >> 12 < 0x1000);

unsafe extern "C" {
    /// Where secondary CPUs start (PSCI CPU_ON entry point), context id = CPU index.
    pub fn cellvisor_secondary_entry();
    /// Where CPUs started through a spin table jump once released (see `SPIN_TABLE_MPIDRS`).
    pub fn cellvisor_spin_table_entry();
    /// Runs the guest described by `regs` until an exit the fast path (given `context`) leaves
    /// to the run loop; returns that exit's kind.
    pub fn cellvisor_enter_guest(regs: *mut GuestRegs, context: *mut core::ffi::c_void) -> u64;
}
