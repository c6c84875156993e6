//! The probe machinery: the recording vector table, one-instruction probes and SMCCC calls.

use core::arch::{asm, global_asm};

use super::{EC_DATA_ABORT_SAME_EL, EC_INSTRUCTION_ABORT_SAME_EL, EC_UNKNOWN};

/// One vCPU's record of the exceptions it took (written by the vector table below).
#[repr(C)]
#[derive(Clone, Copy)]
struct TrapRecord {
    count: u64,
    esr: u64,
    far: u64,
    vector: u64,
}

const TRAP_RECORD_SIZE: usize = 32;
const _: () = assert!(core::mem::size_of::<TrapRecord>() == TRAP_RECORD_SIZE);

/// Per-vCPU trap records, indexed by MPIDR_EL1.Aff0 (0..3); only the vector table writes them.
static mut TRAPS: [TrapRecord; 4] = [TrapRecord {
    count: 0,
    esr: 0,
    far: 0,
    vector: 0,
}; 4];

unsafe extern "C" {
    /// The recording vector table.
    static attack_vectors: u8;
}

// Register use: x0..x2 are saved on the (valid) SP_EL1 and restored; x30 is read (instruction
// aborts resume there) and never written. Exceptions from an AArch32 program (aarch32.rs) use
// the lower-EL AArch32 vector (number 12): its SVC and an instruction abort leave the program
// through `attack_aarch32_return`, which pops x0..x2 itself; its other exceptions are recorded
// and skipped (4 bytes: only its A32 instructions fault).
global_asm!(
    r#"
    .section .text, "ax"
    .balign 0x800
    .global attack_vectors
attack_vectors:
    .irp    kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    .balign 0x80
    stp     x0, x1, [sp, #-32]!
    str     x2, [sp, #16]
    mov     x2, #\kind
    b       attack_trap
    .endr

attack_trap:
    cmp     x2, #12                 // lower EL, AArch32, synchronous: an SVC ends the AArch32
    b.ne    0f                      // program (aarch32.rs), unrecorded
    mrs     x0, esr_el1
    lsr     x0, x0, #26
    cmp     x0, #{ec_svc32}
    b.eq    attack_aarch32_return
0:  mrs     x0, mpidr_el1
    and     x0, x0, #3
    lsl     x0, x0, #5
    adrp    x1, {traps}
    add     x1, x1, :lo12:{traps}
    add     x1, x1, x0              // x1 = &TRAPS[vcpu]
    ldr     x0, [x1]
    add     x0, x0, #1
    str     x0, [x1]
    mrs     x0, esr_el1
    str     x0, [x1, #8]
    mrs     x0, far_el1
    str     x0, [x1, #16]
    str     x2, [x1, #24]
    and     x2, x2, #3
    cbnz    x2, 3f                  // IRQ/FIQ/SError: return to where it hit
    mrs     x0, esr_el1
    lsr     x0, x0, #26
    cmp     x0, #{ec_iabt_lower}    // an AArch32 program's instruction abort ends it too
    b.eq    attack_aarch32_return
    cmp     x0, #{ec_iabt}
    b.ne    1f
    msr     elr_el1, x30            // instruction abort: back to the branch's return address
    b       3f
1:  mrs     x0, elr_el1
    add     x0, x0, #4              // anything else synchronous: skip the instruction
    msr     elr_el1, x0
3:  ldr     x2, [sp, #16]
    ldp     x0, x1, [sp], #32
    eret
    "#,
    traps = sym TRAPS,
    ec_iabt = const EC_INSTRUCTION_ABORT_SAME_EL,
    ec_iabt_lower = const EC_INSTRUCTION_ABORT_LOWER_EL,
    ec_svc32 = const EC_SVC_AARCH32,
);

/// ESR_EL1.EC of an instruction abort from a lower EL and of an SVC from AArch32.
const EC_INSTRUCTION_ABORT_LOWER_EL: u64 = 0x20;
const EC_SVC_AARCH32: u64 = 0x11;

fn vcpu_index() -> usize {
    let value: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) value, options(nomem, nostack)) };
    (value & 3) as usize
}

fn record() -> TrapRecord {
    // SAFETY: TRAPS has 4 entries and the index is masked to 0..3; the vector table writes the
    // entry of this vCPU only, and only while this vCPU is in an exception, so a volatile read
    // here sees a complete record.
    unsafe {
        (&raw const TRAPS)
            .cast::<TrapRecord>()
            .add(vcpu_index())
            .read_volatile()
    }
}

/// How many exceptions this vCPU has taken at EL1 since its vector table was installed.
pub(super) fn trap_count() -> u64 {
    record().count
}

/// ESR, FAR and vector number (0..15, in table order) of this vCPU's last exception.
pub(super) fn last_trap() -> (u64, u64, u64) {
    let record = record();
    (record.esr, record.far, record.vector)
}

/// Points this vCPU's VBAR_EL1 at the recording vector table.
pub(super) fn install_vectors() {
    let table = (&raw const attack_vectors) as u64;
    // SAFETY: the table is 2 KiB-aligned code in this image that handles every vector.
    unsafe { asm!("msr vbar_el1, {}", "isb", in(reg) table, options(nostack)) };
}

/// What one probe instruction did.
#[derive(Clone, Copy)]
pub(super) enum Outcome {
    /// It completed; for a load, what it read.
    Done(u64),
    /// It raised this exception.
    Trapped { esr: u64, far: u64 },
}

impl Outcome {
    pub(super) fn class(self) -> Option<u64> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Trapped { esr, .. } => Some(esr >> 26 & 0x3F),
        }
    }

    pub(super) fn is_data_abort(self) -> bool {
        self.class() == Some(EC_DATA_ABORT_SAME_EL)
    }

    pub(super) fn is_undefined(self) -> bool {
        self.class() == Some(EC_UNKNOWN)
    }

    /// Data abort with FAR valid (ISS.FnV clear) and equal to `address`.
    pub(super) fn is_data_abort_at(self, address: u64) -> bool {
        match self {
            Outcome::Trapped { esr, far } => {
                esr >> 26 & 0x3F == EC_DATA_ABORT_SAME_EL && (esr >> 10 & 1 == 1 || far == address)
            }
            Outcome::Done(_) => false,
        }
    }

    /// The fault status code (ISS.DFSC/IFSC) of an abort.
    pub(super) fn fault_status(self) -> Option<u64> {
        match self {
            Outcome::Trapped { esr, .. }
                if matches!(
                    esr >> 26 & 0x3F,
                    EC_DATA_ABORT_SAME_EL | EC_INSTRUCTION_ABORT_SAME_EL
                ) =>
            {
                Some(esr & 0x3F)
            }
            _ => None,
        }
    }

    /// A data abort cellvisor injected (a synchronous external abort, DFSC 0x10) for `address`:
    /// stage 1 translated the access and stage 2 refused it.
    pub(super) fn is_injected_abort_at(self, address: u64) -> bool {
        self.is_data_abort_at(address) && self.fault_status() == Some(DFSC_EXTERNAL_ABORT)
    }

    /// A data abort cellvisor injected, wherever it was.
    pub(super) fn is_injected_abort(self) -> bool {
        self.is_data_abort() && self.fault_status() == Some(DFSC_EXTERNAL_ABORT)
    }

    /// The CPU's own stage-1 alignment fault (DFSC 0x21): the access never left the guest.
    pub(super) fn is_alignment_fault(self) -> bool {
        self.is_data_abort() && self.fault_status() == Some(DFSC_ALIGNMENT)
    }
}

/// ISS.DFSC of a synchronous external abort (what cellvisor injects) and of an alignment fault.
pub(super) const DFSC_EXTERNAL_ABORT: u64 = 0x10;
pub(super) const DFSC_ALIGNMENT: u64 = 0x21;

impl core::fmt::Display for Outcome {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Outcome::Done(value) => write!(f, "completed ({value:#x})"),
            Outcome::Trapped { esr, far } => {
                let class = esr >> 26 & 0x3F;
                match class {
                    EC_DATA_ABORT_SAME_EL => {
                        write!(f, "data abort dfsc={:#x} far={far:#x}", esr & 0x3F)
                    }
                    EC_INSTRUCTION_ABORT_SAME_EL => {
                        write!(f, "instruction abort ifsc={:#x} far={far:#x}", esr & 0x3F)
                    }
                    EC_UNKNOWN => write!(f, "undefined instruction"),
                    _ => write!(f, "exception ec={class:#x} esr={esr:#x}"),
                }
            }
        }
    }
}

/// Runs `probe` (one possibly trapping instruction) and says what happened.
pub(super) fn attempt(probe: impl FnOnce() -> u64) -> Outcome {
    let before = record().count;
    let value = probe();
    let after = record();
    if after.count == before {
        Outcome::Done(value)
    } else {
        Outcome::Trapped {
            esr: after.esr,
            far: after.far,
        }
    }
}

pub(super) fn read64(address: u64) -> Outcome {
    attempt(|| {
        let mut value = 0x7E57_u64;
        // SAFETY: a load of an address outside this guest's Rust objects; if it aborts the
        // vector table skips it and `value` keeps its marker.
        unsafe {
            asm!("ldr {v}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack))
        };
        value
    })
}

pub(super) fn read32(address: u64) -> Outcome {
    attempt(|| {
        let mut value = 0x7E57_u64;
        // SAFETY: as for `read64`.
        unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack))
        };
        value
    })
}

pub(super) fn write64(address: u64, value: u64) -> Outcome {
    attempt(|| {
        // SAFETY: a store to an address outside this guest's Rust objects (device registers or
        // memory of no cell); an abort is skipped by the vector table.
        unsafe { asm!("str {v}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)) };
        0
    })
}

pub(super) fn write32(address: u64, value: u32) -> Outcome {
    attempt(|| {
        // SAFETY: as for `write64`.
        unsafe {
            asm!("str {v:w}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack))
        };
        0
    })
}

/// An SMCCC call through `hvc #0` with x1..x3; returns x0..x3.
pub(super) fn hvc4(x0: u64, x1: u64, x2: u64, x3: u64) -> [u64; 4] {
    let mut regs = [x0, x1, x2, x3];
    // SAFETY: HVC traps to cellvisor, which only writes x0..x3 for unknown calls.
    unsafe {
        asm!("hvc #0", inout("x0") regs[0], inout("x1") regs[1], inout("x2") regs[2],
            inout("x3") regs[3], out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
            out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
    }
    regs
}

/// As [`hvc4`] through `smc #0` (trapped by cellvisor, HCR_EL2.TSC).
pub(super) fn smc4(x0: u64, x1: u64, x2: u64, x3: u64) -> [u64; 4] {
    let mut regs = [x0, x1, x2, x3];
    // SAFETY: as for `hvc4`.
    unsafe {
        asm!("smc #0", inout("x0") regs[0], inout("x1") regs[1], inout("x2") regs[2],
            inout("x3") regs[3], out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
            out("x14") _, out("x15") _, out("x16") _, out("x17") _, options(nostack));
    }
    regs
}

/// `mrs` of a system register named by `$name` (its assembler name or S-encoding).
macro_rules! try_read {
    ($name:literal) => {
        $crate::attack::probe::attempt(|| {
            let mut value = 0x7E57_u64;
            // SAFETY: reads a system register; if it is undefined at EL1 or trapped and refused,
            // the vector table skips the instruction.
            unsafe { ::core::arch::asm!(concat!("mrs {}, ", $name), inout(reg) value, options(nostack)) };
            value
        })
    };
}

/// `msr` of a system register with `$value`.
macro_rules! try_write {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        $crate::attack::probe::attempt(|| {
            // SAFETY: writes a system register whose effect on this guest is harmless (debug,
            // PMU, GIC CPU interface, timers) or that EL1 cannot write at all (EL2 registers).
            unsafe { ::core::arch::asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) value, options(nostack)) };
            0
        })
    }};
}

/// Runs the one access instruction `template` (operands: `a` = address, `v` = a data register)
/// against `address`: any load, store, atomic, exclusive or cache maintenance instruction,
/// including those that give no usable ISS syndrome when they trap.
macro_rules! access {
    ($address:expr, $template:literal) => {{
        let address: u64 = $address;
        $crate::attack::probe::attempt(|| {
            let mut value = 0x5A5A_u64;
            // SAFETY: one access to an emulated device register page or memory outside the cell;
            // it aborts (skipped by the vector table) or is emulated; x9..x11 and q0/q1 are
            // declared clobbered.
            unsafe {
                ::core::arch::asm!(".arch_extension lse", ".arch_extension rcpc", $template, "// {v}", a = in(reg) address,
                    v = inout(reg) value, out("x9") _, out("x10") _, out("x11") _, out("v0") _,
                    out("v1") _, options(nostack))
            };
            value
        })
    }};
}
