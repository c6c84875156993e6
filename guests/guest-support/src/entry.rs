//! Entry points, per-vCPU stacks and the EL1 exception vector table (the guests' only assembly
//! besides what they time or attack with), laid down in each guest by
//! [`guest_entry!`](crate::guest_entry).

use core::mem::{offset_of, size_of};

/// SCTLR_EL1 as a guest runs: the ARMv8.0 RES1 bits only, so MMU, caches and alignment checks are
/// off and data is little-endian.
pub const SCTLR_EL1_VALUE: u64 = 0x30D0_0800;
/// CPACR_EL1.FPEN = 0b11: FP/SIMD does not trap at EL1/EL0 (the guests are hard-float).
pub const CPACR_EL1_FPEN: u64 = 0b11 << 20;
/// ELF relocation type `R_AARCH64_RELATIVE`: store load offset + addend at the offset.
pub const R_AARCH64_RELATIVE: u32 = 1027;

/// `VCPUS` stacks of `SIZE` bytes each, 16-aligned; the type of the `STACKS` static that
/// [`guest_entry!`](crate::guest_entry) places in the NOLOAD `.stacks` section.
#[repr(C, align(16))]
pub struct Stacks<const VCPUS: usize, const SIZE: usize>([[u8; SIZE]; VCPUS]);

impl<const VCPUS: usize, const SIZE: usize> Stacks<VCPUS, SIZE> {
    /// Zeroed stacks (in a NOLOAD section nothing is actually written).
    pub const fn zeroed() -> Self {
        Self([[0; SIZE]; VCPUS])
    }
}

/// Registers saved by the vector table, handed to the guest's exception handler.
#[repr(C)]
pub struct ExceptionFrame {
    /// x0..x30.
    pub x: [u64; 31],
    /// ELR_EL1: where the exception returns to.
    pub elr: u64,
    /// SPSR_EL1.
    pub spsr: u64,
    /// FPSR.
    pub fpsr: u64,
    /// FPCR.
    pub fpcr: u64,
    /// q0..q31: the handler is Rust on a hard-float target and may use them.
    pub q: [u128; 32],
}

const _: () = assert!(offset_of!(ExceptionFrame, x) == 0);
const _: () = assert!(offset_of!(ExceptionFrame, spsr) == offset_of!(ExceptionFrame, elr) + 8);
const _: () = assert!(offset_of!(ExceptionFrame, fpcr) == offset_of!(ExceptionFrame, fpsr) + 8);
const _: () = assert!(size_of::<ExceptionFrame>().is_multiple_of(16));
// `stp`/`ldp` of x registers reach offsets up to 504 from sp.
const _: () = assert!(offset_of!(ExceptionFrame, fpsr) <= 504);

unsafe extern "C" {
    /// First instruction of a secondary vCPU (the entry point given to PSCI CPU_ON); defined by
    /// [`guest_entry!`](crate::guest_entry).
    pub safe fn secondary_entry();
}

/// Lays down a guest's entry points (`_start`, the image's first instruction in `.text.entry`, and
/// [`secondary_entry`]), its per-vCPU stacks (a `STACKS` static in `.stacks`) and its EL1 exception
/// vector table. Use it once per guest binary:
///
/// ```ignore
/// cellvisor_guest_support::guest_entry! {
///     max_vcpus: MAX_VCPUS,         // a vCPU with a higher MPIDR_EL1.Aff0 parks itself
///     stack_size: STACK_SIZE,       // bytes per vCPU (the linker script reserves VCPUS * SIZE)
///     counter_at_entry: false,      // see below
///     relocate: false,              // see below
///     primary_main: crate::primary_main,
///     secondary_main: crate::secondary_main,
///     exception_handler: crate::exception::handle,
/// }
/// ```
///
/// Every vCPU sets its stack, SCTLR_EL1 ([`SCTLR_EL1_VALUE`]), CPACR_EL1 ([`CPACR_EL1_FPEN`]) and
/// VBAR_EL1. vCPU 0 (entered at `_start`) zeroes `.bss` (`__bss_start`..`__bss_end` from the linker
/// script) and calls `primary_main(x0 as entered)`; a secondary vCPU calls
/// `secondary_main(context_id, vcpu_index)`; neither returns (if one does, the vCPU parks). Each
/// exception saves an [`ExceptionFrame`] and calls `exception_handler(&mut frame, vector)` with
/// the vector number 0..15 in table order, then restores the frame (the handler may change ELR)
/// and returns.
///
/// With `counter_at_entry: true` the virtual counter (CNTVCT_EL0) is also read at `_start`'s first
/// instruction and passed to `primary_main` as its second argument, and at each vector's first
/// instructions (exception entry is context-synchronising, so no ISB is needed) and passed to the
/// handler as its third argument.
///
/// With `image_header: true` (optional, after `relocate`; default false) the image starts with an
/// arm64 Linux `Image` header (Documentation/arch/arm64/booting.rst): `_start`'s first instruction
/// branches over the 64-byte header, which says `text_offset` 0, `image_size` = the absolute
/// symbol `__image_size` (from the linker script: everything from the first byte to the end of the
/// stacks), little-endian, 4 KiB pages, anywhere in RAM. A loader that knows the format (QEMU's
/// `-kernel`, cellvisor) then enters it with x0 = a device tree; the entry is still the first byte.
/// With `counter_at_entry` the counter is then read at the header's branch target, one instruction
/// after entry.
///
/// With `relocate: true` the guest is a position-independent executable: vCPU 0 applies its
/// `R_AARCH64_RELATIVE` relocations (`__rela_start`..`__rela_end`, offsets and addends relative to
/// the absolute symbol `__link_base`, all from the linker script) for the address `_start` really
/// runs at, before it zeroes `.bss` and before any Rust code runs. Any other relocation type parks
/// the vCPU (the guest's pointers would be wrong). With `relocate: false` the guest must be entered
/// where it is linked.
#[macro_export]
macro_rules! guest_entry {
    (
        max_vcpus: $max_vcpus:expr,
        stack_size: $stack_size:expr,
        counter_at_entry: $counter_at_entry:expr,
        relocate: $relocate:expr,
        $(image_header: $image_header:expr,)?
        primary_main: $primary_main:path,
        secondary_main: $secondary_main:path,
        exception_handler: $handler:path $(,)?
    ) => {
        /// The vCPU stacks, in the NOLOAD `.stacks` section; only the entry assembly touches them.
        #[unsafe(link_section = ".stacks")]
        static mut STACKS: $crate::entry::Stacks<{ $max_vcpus }, { $stack_size }> =
            $crate::entry::Stacks::zeroed();

        // Register use: x19 keeps the boot argument (x0: device tree or CPU_ON context id) and,
        // with the counter at entry, x20 the counter value read at the first instruction, across
        // `cpu_setup`; `cpu_setup` returns the vCPU index in x0 and clobbers x1, x2; the relocation
        // loop uses x1-x6. In the vector path x3/x4 are the scratch registers, so that x2 (the
        // counter, if read) reaches the handler.
        ::core::arch::global_asm!(
            r#"
    .section .text.entry, "ax"
    .global _start
_start:
.if {image_header}
    b       5f                          // code0: over the rest of the header
    .long   0                           // code1
    .quad   0                           // text_offset: at the 2 MiB-aligned RAM base
    .quad   __image_size                // image_size: image, .bss and stacks
    .quad   0xa                         // flags: little-endian, 4 KiB pages, anywhere in RAM
    .quad   0                           // res2
    .quad   0                           // res3
    .quad   0                           // res4
    .ascii  "ARM\x64"                   // magic
    .long   0                           // res5
5:
.endif
.if {counter_at_entry}
    mrs     x20, cntvct_el0             // when this guest was first entered (since reset: CNTVOFF=0)
.endif
    mov     x19, x0
    bl      cpu_setup
    cbnz    x0, park                    // only vCPU 0 boots through _start
.if {relocate}
    adr     x1, _start
    ldr     x2, =__link_base            // absolute: the linker resolves it, no relocation
    sub     x1, x1, x2                  // x1 = load address - link address
    adrp    x2, __rela_start
    add     x2, x2, :lo12:__rela_start
    adrp    x3, __rela_end
    add     x3, x3, :lo12:__rela_end
3:  cmp     x2, x3                      // each Elf64_Rela: r_offset, r_info, r_addend
    b.hs    4f
    ldp     x4, x5, [x2], #16
    ldr     x6, [x2], #8
    cmp     w5, #{r_aarch64_relative}   // type in r_info's low half, no symbol
    b.ne    park
    add     x6, x6, x1                  // the pointer, for the load address
    str     x6, [x4, x1]                // at r_offset, for the load address
    b       3b
4:
.endif
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2                      // zero .bss, 16 bytes at a time (both ends 16-aligned)
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  mov     x0, x19                     // x0 = device tree (0 natively: QEMU passes none)
.if {counter_at_entry}
    mov     x1, x20                     // x1 = entry counter
.endif
    bl      {primary_main}
    b       park

    .section .text, "ax"
    .global secondary_entry
secondary_entry:
    mov     x19, x0
    bl      cpu_setup
    mov     x1, x0                      // x1 = vCPU index
    mov     x0, x19                     // x0 = CPU_ON context id
    bl      {secondary_main}
    b       park

// Out: x0 = vCPU index (MPIDR_EL1.Aff0), sp = top of its stack, SCTLR/CPACR/VBAR_EL1 set.
cpu_setup:
    mrs     x0, mpidr_el1
    and     x0, x0, #0xff
    cmp     x0, #{max_vcpus}
    b.hs    park
    adrp    x1, {stacks}
    add     x1, x1, :lo12:{stacks}
    mov     x2, #{stack_size}
    madd    x2, x0, x2, x2              // x2 = (index + 1) * STACK_SIZE
    add     x1, x1, x2
    mov     sp, x1
    ldr     x1, ={sctlr}
    msr     sctlr_el1, x1
    mov     x1, #{cpacr}
    msr     cpacr_el1, x1
    adrp    x1, vectors
    add     x1, x1, :lo12:vectors
    msr     vbar_el1, x1
    isb
    ret

park:
    wfe
    b       park

// The 16 vectors: each saves x0/x1 (with the counter at entry also x2/x3, and reads the virtual
// counter into x2), puts its number (0..15) in x1 and joins the common path.
    .balign 0x800
vectors:
    .irp    kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 0x80
    sub     sp, sp, #{frame_size}
    stp     x0, x1, [sp]
.if {counter_at_entry}
    stp     x2, x3, [sp, #16]
    mrs     x2, cntvct_el0
.endif
    mov     x1, #\kind
    b       exception_common
    .endr

// Saves the rest of the frame, calls the handler with x0 = frame, x1 = vector number (x2 = counter
// at vector entry, if read), restores (the handler may have changed ELR) and returns.
exception_common:
.if {counter_at_entry} == 0
    stp     x2, x3, [sp, #16]
.endif
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    str     x30, [sp, #240]
    mrs     x3, elr_el1
    mrs     x4, spsr_el1
    stp     x3, x4, [sp, #{elr}]
    add     x3, sp, #{q}
    stp     q0, q1, [x3, #0]
    stp     q2, q3, [x3, #32]
    stp     q4, q5, [x3, #64]
    stp     q6, q7, [x3, #96]
    stp     q8, q9, [x3, #128]
    stp     q10, q11, [x3, #160]
    stp     q12, q13, [x3, #192]
    stp     q14, q15, [x3, #224]
    stp     q16, q17, [x3, #256]
    stp     q18, q19, [x3, #288]
    stp     q20, q21, [x3, #320]
    stp     q22, q23, [x3, #352]
    stp     q24, q25, [x3, #384]
    stp     q26, q27, [x3, #416]
    stp     q28, q29, [x3, #448]
    stp     q30, q31, [x3, #480]
    mrs     x3, fpsr
    mrs     x4, fpcr
    stp     x3, x4, [sp, #{fpsr}]
    mov     x0, sp
    bl      {handler}
    ldp     x2, x3, [sp, #{fpsr}]
    msr     fpsr, x2
    msr     fpcr, x3
    add     x2, sp, #{q}
    ldp     q0, q1, [x2, #0]
    ldp     q2, q3, [x2, #32]
    ldp     q4, q5, [x2, #64]
    ldp     q6, q7, [x2, #96]
    ldp     q8, q9, [x2, #128]
    ldp     q10, q11, [x2, #160]
    ldp     q12, q13, [x2, #192]
    ldp     q14, q15, [x2, #224]
    ldp     q16, q17, [x2, #256]
    ldp     q18, q19, [x2, #288]
    ldp     q20, q21, [x2, #320]
    ldp     q22, q23, [x2, #352]
    ldp     q24, q25, [x2, #384]
    ldp     q26, q27, [x2, #416]
    ldp     q28, q29, [x2, #448]
    ldp     q30, q31, [x2, #480]
    ldp     x2, x3, [sp, #{elr}]
    msr     elr_el1, x2
    msr     spsr_el1, x3
    ldr     x30, [sp, #240]
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp]
    add     sp, sp, #{frame_size}
    eret
    "#,
            primary_main = sym $primary_main,
            secondary_main = sym $secondary_main,
            handler = sym $handler,
            stacks = sym STACKS,
            max_vcpus = const $max_vcpus,
            stack_size = const $stack_size,
            counter_at_entry = const $counter_at_entry as u8,
            relocate = const $relocate as u8,
            image_header = const (false $(|| $image_header)?) as u8,
            r_aarch64_relative = const $crate::entry::R_AARCH64_RELATIVE,
            sctlr = const $crate::entry::SCTLR_EL1_VALUE,
            cpacr = const $crate::entry::CPACR_EL1_FPEN,
            frame_size = const ::core::mem::size_of::<$crate::entry::ExceptionFrame>(),
            elr = const ::core::mem::offset_of!($crate::entry::ExceptionFrame, elr),
            q = const ::core::mem::offset_of!($crate::entry::ExceptionFrame, q),
            fpsr = const ::core::mem::offset_of!($crate::entry::ExceptionFrame, fpsr),
        );
    };
}
