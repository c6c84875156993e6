//! Hostile-guest attacks (`test=attack name=a,b,c`): each tries one way of escaping the cell or
//! breaking cellvisor, checks what it got back (an SMCCC error, an injected abort, an undefined
//! instruction, RAZ/WI emulation) and prints `test-guest: attack <name>: ok (...)` or
//! `test-guest: attack <name>: FAIL ...`; the run ends with `test-guest: attack-suite: N attacks,
//! M ok`. Attacks that never return (`system-off`, `bogus-sp`) run after that line; `bogus-vbar`
//! only launches vCPU 1 into its endless exception loop. The QEMU side is tests/tests/hostile.rs.
//!
//! While attacks run, VBAR_EL1 points at a recording vector table: every exception taken at EL1 is
//! counted with its ESR/FAR, and a synchronous one resumes at the next instruction (an instruction
//! abort resumes at x30, so branch probes use `blr`). Every probe is one instruction in its own
//! `asm!` block, so "did it trap" is "did the count change".

use crate::psci;
use cellvisor_guest_support::println;
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every attack line.
const PREFIX: &str = "test-guest: attack ";
/// CPU_ON context ids for vCPU 1 jobs: this tag in bits 63:16, the job in 15:0.
const CONTEXT_TAG: u64 = 0xA77A_C000_0000_0000;
const JOB_PSCI_RACE: u64 = 1;
const JOB_BOGUS_VBAR: u64 = 2;
const JOB_SYSTEM_OFF: u64 = 3;

/// The attacks `name=` may list, in the order they run.
const ATTACKS: [&str; 18] = [
    "foreign-ram",
    "gic-distributor",
    "gic-redistributors",
    "uart",
    "mmio-no-syndrome",
    "smccc",
    "psci-cpu-on",
    "sysregs",
    "timer",
    "gic-sgi",
    "wfi-storm",
    "hvc-flood",
    "fault-flood",
    "system-reset",
    "bogus-vbar",
    // The two below never return; they run after the suite line.
    "system-off",
    "bogus-sp",
    "all",
];

/// ESR_EL1.EC values the attacks tell apart.
const EC_UNKNOWN: u64 = 0x00;
const EC_INSTRUCTION_ABORT_SAME_EL: u64 = 0x21;
const EC_DATA_ABORT_SAME_EL: u64 = 0x25;

/// The PL011 every cell sees, its flag register and a peripheral ID register.
const UART: u64 = 0x0900_0000;
/// GICv3 distributor, redistributors and ITS as QEMU `virt` places them.
const GICD: u64 = 0x0800_0000;
const GICR: u64 = 0x080A_0000;
const GICR_FRAME: u64 = 0x2_0000;
const GICR_REGION_END: u64 = 0x0900_0000;
const GITS: u64 = 0x0808_0000;
/// The vUART's interrupt (SPI 1): the only SPI a test cell owns.
const UART_INTID: u32 = 33;
/// The attacker's RAM (guest-physical) and the marker `system-reset` keeps across resets (below
/// the device tree cellvisor puts in the last 2 MiB).
const RAM_BASE: u64 = 0x4000_0000;
const RAM_END: u64 = 0x4400_0000;
const RESET_MARKER: u64 = 0x43D0_0000;
const RESET_MAGIC: u64 = 0x5245_5345_5443_4E54;
/// CELLVISOR_VERSION (SMC64) and what it answers.
const CELLVISOR_VERSION: u32 = 0xC600_0000;
const CELLVISOR_ABI: i64 = 0x1_0000;
const ON_PENDING: i64 = -5;

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
// aborts resume there) and never written.
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
    mrs     x0, mpidr_el1
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
);

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

/// Points this vCPU's VBAR_EL1 at the recording vector table.
fn install_vectors() {
    let table = (&raw const attack_vectors) as u64;
    // SAFETY: the table is 2 KiB-aligned code in this image that handles every vector.
    unsafe { asm!("msr vbar_el1, {}", "isb", in(reg) table, options(nostack)) };
}

/// What one probe instruction did.
#[derive(Clone, Copy)]
enum Outcome {
    /// It completed; for a load, what it read.
    Done(u64),
    /// It raised this exception.
    Trapped { esr: u64, far: u64 },
}

impl Outcome {
    fn class(self) -> Option<u64> {
        match self {
            Outcome::Done(_) => None,
            Outcome::Trapped { esr, .. } => Some(esr >> 26 & 0x3F),
        }
    }

    fn is_data_abort(self) -> bool {
        self.class() == Some(EC_DATA_ABORT_SAME_EL)
    }

    fn is_undefined(self) -> bool {
        self.class() == Some(EC_UNKNOWN)
    }

    /// Data abort with FAR valid (ISS.FnV clear) and equal to `address`.
    fn is_data_abort_at(self, address: u64) -> bool {
        match self {
            Outcome::Trapped { esr, far } => {
                esr >> 26 & 0x3F == EC_DATA_ABORT_SAME_EL && (esr >> 10 & 1 == 1 || far == address)
            }
            Outcome::Done(_) => false,
        }
    }
}

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
fn attempt(probe: impl FnOnce() -> u64) -> Outcome {
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

fn read64(address: u64) -> Outcome {
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

fn read32(address: u64) -> Outcome {
    attempt(|| {
        let mut value = 0x7E57_u64;
        // SAFETY: as for `read64`.
        unsafe {
            asm!("ldr {v:w}, [{a}]", a = in(reg) address, v = inout(reg) value, options(nostack))
        };
        value
    })
}

fn write64(address: u64, value: u64) -> Outcome {
    attempt(|| {
        // SAFETY: a store to an address outside this guest's Rust objects (device registers or
        // memory of no cell); an abort is skipped by the vector table.
        unsafe { asm!("str {v}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack)) };
        0
    })
}

fn write32(address: u64, value: u32) -> Outcome {
    attempt(|| {
        // SAFETY: as for `write64`.
        unsafe {
            asm!("str {v:w}, [{a}]", a = in(reg) address, v = in(reg) value, options(nostack))
        };
        0
    })
}

/// An SMCCC call through `hvc #0` with x1..x3; returns x0..x3.
fn hvc4(x0: u64, x1: u64, x2: u64, x3: u64) -> [u64; 4] {
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
fn smc4(x0: u64, x1: u64, x2: u64, x3: u64) -> [u64; 4] {
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

/// A verdict: `Ok(what happened)` or `Err(what went wrong)`.
type Verdict = Result<&'static str, &'static str>;

/// The `name=` list if the bootargs select `test=attack`.
pub fn requested(bootargs: &str) -> Option<&str> {
    let mut words = bootargs.split_ascii_whitespace();
    if !words.clone().any(|word| word == "test=attack") {
        return None;
    }
    Some(
        words
            .find_map(|word| word.strip_prefix("name="))
            .unwrap_or("all"),
    )
}

fn selected(names: &str, attack: &str) -> bool {
    names
        .split(',')
        .any(|name| name == attack || (name == "all" && !never_returns(attack) && !loops(attack)))
}

fn never_returns(attack: &str) -> bool {
    matches!(attack, "system-off" | "bogus-sp")
}

/// Attacks that leave a vCPU looping (or reset the cell): not part of `all`.
fn loops(attack: &str) -> bool {
    matches!(attack, "system-reset" | "bogus-vbar" | "all")
}

/// Runs the attacks `names` lists (comma-separated, or `all`), then powers the cell off.
pub fn run(names: &str) -> ! {
    install_vectors();
    for name in names.split(',').filter(|name| !ATTACKS.contains(name)) {
        println!("{PREFIX}{name}: FAIL unknown attack");
    }
    let (mut count, mut ok) = (0u32, 0u32);
    for attack in ATTACKS
        .into_iter()
        .filter(|attack| selected(names, attack) && !never_returns(attack))
    {
        println!("{PREFIX}{attack}: start");
        count += 1;
        match run_one(attack) {
            Ok(what) => {
                ok += 1;
                println!("{PREFIX}{attack}: ok ({what})");
            }
            Err(what) => println!("{PREFIX}{attack}: FAIL {what}"),
        }
    }
    println!("test-guest: attack-suite: {count} attacks, {ok} ok");
    // At most one of them runs: neither returns.
    if let Some(attack) = ATTACKS
        .into_iter()
        .find(|attack| selected(names, attack) && never_returns(attack))
    {
        println!("{PREFIX}{attack}: start");
        match attack {
            "system-off" => system_off_from_vcpu1(),
            _ => bogus_stack(),
        }
    }
    println!("{}", crate::lines::DONE);
    psci::system_off()
}

fn run_one(attack: &str) -> Verdict {
    match attack {
        "foreign-ram" => foreign_ram(),
        "gic-distributor" => gic_distributor(),
        "gic-redistributors" => gic_redistributors(),
        "uart" => uart(),
        "mmio-no-syndrome" => mmio_no_syndrome(),
        "smccc" => smccc(),
        "psci-cpu-on" => psci_cpu_on(),
        "sysregs" => sysregs(),
        "timer" => timer(),
        "gic-sgi" => gic_sgi(),
        "wfi-storm" => wfi_storm(),
        "hvc-flood" => hvc_flood(),
        "fault-flood" => fault_flood(),
        "system-reset" => system_reset(),
        "bogus-vbar" => bogus_vbar(),
        _ => Err("not an attack"),
    }
}

/// Addresses outside the attacker's IPA space: another cell's and its own physical RAM,
/// cellvisor's RAM (image, bundle, heap with the stage-2 tables), and IPAs up to and past the
/// 39-bit IPA size.
const FOREIGN_ADDRESSES: [u64; 14] = [
    0x9000_0000,      // corporate's RAM (PA)
    0x9100_0000,      // inside corporate's RAM
    0x6000_0000,      // the attacker's own RAM at its physical address
    0x0,              // IPA 0
    0x4400_0000,      // just past the attacker's RAM
    0x4800_0000,      // cellvisor's RAM: the guest bundle (PA)
    0x5000_0000,      // cellvisor's RAM: heap and page tables (PA)
    0x5FFF_F000,      // cellvisor's last page
    0x8000_0000,      // between cells
    0xC000_0000,      // past the end of the machine's RAM
    0x40_0000_0000,   // 256 GiB
    0x7F_FFFF_F000,   // the last page of the 39-bit IPA space
    0x80_0000_0000,   // past the IPA size
    0xFFFF_FFFF_F000, // past any PA size
];

fn foreign_ram() -> Verdict {
    let mut ok = true;
    for address in FOREIGN_ADDRESSES {
        for write in [false, true] {
            let outcome = if write {
                write64(address, 0xBAD0_BAD0_BAD0_BAD0)
            } else {
                read64(address)
            };
            let access = if write { "write" } else { "read" };
            println!("{PREFIX}foreign-ram: {access} {address:#x} -> {outcome}");
            if !outcome.is_data_abort_at(address) {
                ok = false;
            }
        }
    }
    // Instruction fetch from another cell's RAM.
    let target = 0x9000_0000u64;
    let fetch = attempt(|| {
        // SAFETY: branches to memory outside the cell; the fetch aborts and the vector table
        // resumes at x30, the instruction after the `blr`.
        unsafe {
            asm!("blr {t}", t = in(reg) target, out("x30") _, clobber_abi("C"), options(nostack))
        };
        0
    });
    println!("{PREFIX}foreign-ram: execute {target:#x} -> {fetch}");
    ok &= fetch.class() == Some(EC_INSTRUCTION_ABORT_SAME_EL);
    // IPA 0x4020_0000 is the attacker's own RAM, not cellvisor's image at that physical address:
    // it must not hold cellvisor's arm64 Image header magic ("ARM\x64" at 0x38).
    let magic = read32(RAM_BASE + 0x20_0038);
    println!("{PREFIX}foreign-ram: read own ipa 0x40200038 -> {magic}");
    if matches!(magic, Outcome::Done(0x644D_5241)) {
        return Err("IPA 0x40200000 shows cellvisor's image");
    }
    if ok {
        Ok("every access aborted")
    } else {
        Err("an access did not abort")
    }
}

fn gic_distributor() -> Verdict {
    let typer = read32(GICD + 0x4);
    println!("{PREFIX}gic-distributor: GICD_TYPER -> {typer}");
    let mut leaks = 0u32;
    let mut aborted = 0u32;
    // Enable, set pending, activate, give priority to, configure and route every SPI the
    // register space can name (32..1019), then read the state back.
    for (base, stride_bits) in [
        (0x100u64, 1u64),
        (0x200, 1),
        (0x300, 1),
        (0x400, 8),
        (0xC00, 2),
    ] {
        let registers = 1024 * stride_bits / 32;
        for register in 32 * stride_bits / 32..registers {
            let address = GICD + base + 4 * register;
            if write32(address, u32::MAX).is_data_abort() {
                aborted += 1;
            }
        }
    }
    for intid in 32..1020u64 {
        if write64(GICD + 0x6000 + 8 * intid, 0xFF_00FF_FFFF).is_data_abort() {
            aborted += 1;
        }
    }
    // Read back: only the cell's own SPI (the vUART's) may show state.
    for (base, stride_bits) in [(0x100u64, 1u64), (0x200, 1), (0x300, 1)] {
        for register in 1..32u64 {
            let first_intid = register * 32 / stride_bits;
            let mut allowed = 0u64;
            let own = u64::from(UART_INTID);
            if (first_intid..first_intid + 32).contains(&own) {
                allowed = 1 << (own - first_intid);
            }
            match read32(GICD + base + 4 * register) {
                Outcome::Done(value) if value & !allowed != 0 => {
                    leaks += 1;
                    println!(
                        "{PREFIX}gic-distributor: {:#x} reads {value:#x} after the writes",
                        GICD + base + 4 * register
                    );
                }
                Outcome::Done(_) => {}
                Outcome::Trapped { .. } => aborted += 1,
            }
        }
    }
    for intid in (34..1020u64).step_by(7) {
        match read64(GICD + 0x6000 + 8 * intid) {
            Outcome::Done(0) | Outcome::Trapped { .. } => {}
            Outcome::Done(value) => {
                leaks += 1;
                println!("{PREFIX}gic-distributor: IROUTER{intid} reads {value:#x}");
            }
        }
    }
    let own_route = read64(GICD + 0x6000 + 8 * u64::from(UART_INTID));
    println!(
        "{PREFIX}gic-distributor: own SPI {UART_INTID} IROUTER after routing to 255.255.255.255 -> {own_route}"
    );
    // Read-only and odd registers: TYPER, IIDR, PIDR2, GICv2's SGIR, the last word.
    for (what, offset) in [
        ("TYPER", 0x4u64),
        ("IIDR", 0x8),
        ("SGIR", 0xF00),
        ("PIDR2", 0xFFE8),
        ("last word", 0xFFFC),
    ] {
        let write = write32(GICD + offset, 0xFFFF_FFFF);
        let read = read32(GICD + offset);
        println!("{PREFIX}gic-distributor: write {what} -> {write}, read -> {read}");
    }
    let typer_after = read32(GICD + 0x4);
    if let (Outcome::Done(before), Outcome::Done(after)) = (typer, typer_after)
        && before != after
    {
        return Err("GICD_TYPER changed after a write");
    }
    println!(
        "{PREFIX}gic-distributor: {aborted} accesses aborted, {leaks} foreign SPIs show state"
    );
    if leaks == 0 {
        Ok("foreign SPIs stay RAZ/WI")
    } else {
        Err("a foreign SPI kept state")
    }
}

fn gic_redistributors() -> Verdict {
    let mut ok = true;
    for vcpu in 0..2u64 {
        let typer = read64(GICR + vcpu * GICR_FRAME + 0x8);
        println!("{PREFIX}gic-redistributors: own frame {vcpu} GICR_TYPER -> {typer}");
        if let Outcome::Done(value) = typer {
            let last = value >> 4 & 1 == 1;
            if (value >> 32) != vcpu || last != (vcpu == 1) {
                println!("{PREFIX}gic-redistributors: unexpected affinity or Last bit");
                ok = false;
            }
        }
    }
    // Every frame past the cell's two vCPUs, the ITS and the gap between GICD and the ITS.
    let mut frames = 0u32;
    let mut address = GICR + 2 * GICR_FRAME;
    while address < GICR_REGION_END {
        for offset in [0x0u64, 0x8, 0x1_0100] {
            let read = read32(address + offset);
            let write = write32(address + offset, u32::MAX);
            if !read.is_data_abort_at(address + offset) || !write.is_data_abort_at(address + offset)
            {
                println!(
                    "{PREFIX}gic-redistributors: frame {:#x}+{offset:#x}: read {read}, write {write}",
                    address
                );
                ok = false;
            }
        }
        frames += 1;
        address += GICR_FRAME;
    }
    for (what, address) in [
        ("ITS GITS_CTLR", GITS),
        ("ITS GITS_TRANSLATER", GITS + 0x1_0040),
        ("GICv2m gap", GICD + 0x1_0000),
    ] {
        let read = read32(address);
        let write = write32(address, u32::MAX);
        println!("{PREFIX}gic-redistributors: {what}: read {read}, write {write}");
        ok &= read.is_data_abort_at(address) && write.is_data_abort_at(address);
    }
    println!("{PREFIX}gic-redistributors: {frames} foreign frames probed");
    if ok {
        Ok("foreign redistributors and the ITS abort")
    } else {
        Err("a foreign GIC frame answered")
    }
}

fn uart() -> Verdict {
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

/// Runs the syndrome-less instruction `template` (operands: `a` = address, `v` = a data
/// register) against `address`.
macro_rules! no_syndrome {
    ($address:expr, $template:literal) => {{
        let address: u64 = $address;
        attempt(|| {
            let mut value = 0x5A5A_u64;
            // SAFETY: one access to an emulated device register page; it aborts (skipped by the
            // vector table) or is emulated; x9..x11 and q0/q1 are declared clobbered.
            unsafe {
                asm!(".arch_extension lse", $template, "// {v}", a = in(reg) address, v = inout(reg) value,
                    out("x9") _, out("x10") _, out("x11") _, out("v0") _, out("v1") _,
                    options(nostack))
            };
            value
        })
    }};
}

fn mmio_no_syndrome() -> Verdict {
    let mut ok = true;
    for (device, base) in [("uart", UART), ("gicd", GICD), ("gicr", GICR)] {
        // A register that exists on every one of these devices: offset 0 (UARTDR, GICD_CTLR,
        // GICR_CTLR), then the same instructions at offset 8.
        let probes = [
            ("ldp", no_syndrome!(base, "ldp {v}, x9, [{a}]")),
            ("stp", no_syndrome!(base, "stp xzr, xzr, [{a}]")),
            ("ldxr", no_syndrome!(base, "ldxr {v}, [{a}]")),
            ("stxr", no_syndrome!(base, "stxr w9, {v}, [{a}]")),
            ("ldar", no_syndrome!(base, "ldar {v}, [{a}]")),
            ("ldadd", no_syndrome!(base, "ldadd {v}, x9, [{a}]")),
            ("cas", no_syndrome!(base, "cas {v}, x9, [{a}]")),
            ("swp", no_syndrome!(base, "swp {v}, x9, [{a}]")),
            ("dc zva", no_syndrome!(base, "dc zva, {a}")),
            ("dc civac", no_syndrome!(base, "dc civac, {a}")),
            (
                "unaligned ldr +1",
                no_syndrome!(base + 1, "ldr {v:w}, [{a}]"),
            ),
            ("unaligned ldr +6", no_syndrome!(base + 6, "ldr {v}, [{a}]")),
            ("ldp q", no_syndrome!(base, "ldp q0, q1, [{a}]")),
            ("ldr q", no_syndrome!(base, "ldr q0, [{a}]")),
            ("str q", no_syndrome!(base, "str q0, [{a}]")),
            ("ld1 vector", no_syndrome!(base, "ld1 {{v0.16b}}, [{a}]")),
            (
                "ldr post-index",
                no_syndrome!(base + 8, "mov x9, {a}\n ldr {v:w}, [x9], #4"),
            ),
            (
                "str pre-index",
                no_syndrome!(base + 4, "mov x9, {a}\n str {v:w}, [x9, #4]!"),
            ),
            ("prfm", no_syndrome!(base, "prfm pldl1keep, [{a}]")),
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

fn smccc() -> Verdict {
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

/// vCPU 1 start/stop generations for `psci-cpu-on`.
static SECONDARY_STARTS: AtomicU32 = AtomicU32::new(0);
static SECONDARY_RELEASES: AtomicU32 = AtomicU32::new(0);
static SECONDARY_ERRORS: AtomicU32 = AtomicU32::new(0);

fn start_vcpu1(job: u64) -> i64 {
    psci::cpu_on(
        1,
        crate::entry::secondary_entry as *const () as u64,
        CONTEXT_TAG | job,
    )
}

fn psci_cpu_on() -> Verdict {
    let entry = crate::entry::secondary_entry as *const () as u64;
    let mut ok = true;
    let mut check = |what: &str, got: i64, expected: &[i64]| {
        if !expected.contains(&got) {
            println!("{PREFIX}psci-cpu-on: {what} returned {got}, expected {expected:?}");
            ok = false;
        }
    };
    // Targets outside the cell.
    for target in [
        2u64,
        3,
        0x100,
        0x1_0000,
        0xFF_0000_0000,
        0xFFFF_FFFF,
        u64::MAX,
    ] {
        check(
            "cpu_on(foreign target)",
            psci::cpu_on(target, entry, 0),
            &[psci::INVALID_PARAMETERS],
        );
        check(
            "affinity_info(foreign target)",
            psci::affinity_info(target),
            &[psci::INVALID_PARAMETERS],
        );
    }
    // Entry points outside the cell's RAM (vCPU 1 is off, so the entry is the only fault).
    for bad_entry in [
        0u64,
        0x9000_0000,
        0x6000_0000,
        RAM_END,
        0x4020_0000_0000,
        u64::MAX,
    ] {
        check(
            "cpu_on(1, entry outside RAM)",
            psci::cpu_on(1, bad_entry, 0),
            &[psci::INVALID_ADDRESS],
        );
    }
    check(
        "affinity_info(1, level 1)",
        psci::hvc(psci::AFFINITY_INFO, 1, 1, 0),
        &[psci::INVALID_PARAMETERS],
    );
    check(
        "affinity_info(1, level 255)",
        psci::hvc(psci::AFFINITY_INFO, 1, 255, 0),
        &[psci::INVALID_PARAMETERS],
    );
    // Start vCPU 1 twice at once, let both vCPUs hammer CPU_ON, stop it; five times over.
    for cycle in 1..=5u32 {
        let first = start_vcpu1(JOB_PSCI_RACE);
        let second = start_vcpu1(JOB_PSCI_RACE);
        check("first cpu_on(1)", first, &[psci::SUCCESS]);
        check("second cpu_on(1)", second, &[psci::ALREADY_ON, ON_PENDING]);
        if first != psci::SUCCESS {
            break;
        }
        if !crate::timer::wait_until(10_000, || SECONDARY_STARTS.load(Ordering::SeqCst) == cycle) {
            println!("{PREFIX}psci-cpu-on: vcpu 1 did not start in cycle {cycle}");
            return Err("vcpu 1 did not start");
        }
        for _ in 0..300 {
            check(
                "cpu_on(0) from vcpu 0",
                psci::cpu_on(0, entry, 0),
                &[psci::ALREADY_ON],
            );
            check(
                "cpu_on(1) while on",
                psci::cpu_on(1, entry, 0),
                &[psci::ALREADY_ON, ON_PENDING],
            );
            check(
                "cpu_on(2) from vcpu 0",
                psci::cpu_on(2, entry, 0),
                &[psci::INVALID_PARAMETERS],
            );
        }
        SECONDARY_RELEASES.store(cycle, Ordering::SeqCst);
        if !crate::timer::wait_until(10_000, || psci::affinity_info(1) == psci::AFFINITY_OFF) {
            return Err("vcpu 1 did not turn off");
        }
    }
    let errors = SECONDARY_ERRORS.load(Ordering::SeqCst);
    if errors > 0 {
        println!("{PREFIX}psci-cpu-on: vcpu 1 saw {errors} wrong results");
        ok = false;
    }
    if ok {
        Ok("foreign targets -2, bad entries -9, racing CPU_ONs one SUCCESS")
    } else {
        Err("a PSCI call returned the wrong code")
    }
}

/// vCPU 1's side of `psci-cpu-on`: hammer CPU_ON until vCPU 0 releases this generation.
fn psci_race_secondary() -> ! {
    let entry = crate::entry::secondary_entry as *const () as u64;
    let generation = SECONDARY_STARTS.fetch_add(1, Ordering::SeqCst) + 1;
    while SECONDARY_RELEASES.load(Ordering::SeqCst) < generation {
        let results = [
            psci::cpu_on(0, entry, 0) == psci::ALREADY_ON,
            psci::cpu_on(1, entry, 0) == psci::ALREADY_ON,
            psci::cpu_on(3, entry, 0) == psci::INVALID_PARAMETERS,
            psci::affinity_info(0) == 0,
        ];
        if results.contains(&false) {
            SECONDARY_ERRORS.fetch_add(1, Ordering::SeqCst);
        }
    }
    psci::cpu_off()
}

/// Whether `context_id` (from CPU_ON) is an attack job for vCPU 1; runs it if so.
pub fn secondary(context_id: u64) {
    if context_id & !0xFFFF != CONTEXT_TAG {
        return;
    }
    match context_id & 0xFFFF {
        JOB_PSCI_RACE => {
            install_vectors();
            psci_race_secondary()
        }
        JOB_BOGUS_VBAR => bogus_vbar_secondary(),
        JOB_SYSTEM_OFF => {
            let result = psci::hvc(psci::SYSTEM_OFF, 0, 0, 0);
            println!("{PREFIX}system-off: FAIL SYSTEM_OFF from vcpu 1 returned {result}");
            psci::park()
        }
        _ => {}
    }
}

/// `mrs` of a system register named by `$name` (its assembler name or S-encoding).
macro_rules! try_read {
    ($name:literal) => {
        attempt(|| {
            let mut value = 0x7E57_u64;
            // SAFETY: reads a system register; if it is undefined at EL1 or trapped and refused,
            // the vector table skips the instruction.
            unsafe { asm!(concat!("mrs {}, ", $name), inout(reg) value, options(nostack)) };
            value
        })
    };
}

/// `msr` of a system register with `$value`.
macro_rules! try_write {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        attempt(|| {
            // SAFETY: writes a system register whose effect on this guest is harmless (debug,
            // PMU, GIC CPU interface, timers) or that EL1 cannot write at all (EL2 registers).
            unsafe { asm!(concat!("msr ", $name, ", {}"), "isb", in(reg) value, options(nostack)) };
            0
        })
    }};
}

fn sysregs() -> Verdict {
    let mut ok = true;
    // Registers EL1 may use (possibly trapped by cellvisor and refused): anything but a hang.
    let allowed = [
        ("MDSCR_EL1 read", try_read!("mdscr_el1")),
        ("MDSCR_EL1 write", try_write!("mdscr_el1", 0x0000_A000)),
        ("MDSCR_EL1 clear", try_write!("mdscr_el1", 0)),
        ("OSLSR_EL1 read", try_read!("oslsr_el1")),
        ("OSLAR_EL1 lock", try_write!("oslar_el1", 1)),
        ("OSLAR_EL1 unlock", try_write!("oslar_el1", 0)),
        ("DBGBVR0_EL1 write", try_write!("dbgbvr0_el1", 0x9000_0000)),
        ("DBGBCR0_EL1 write", try_write!("dbgbcr0_el1", 0)),
        ("PMCR_EL0 read", try_read!("pmcr_el0")),
        ("PMCR_EL0 write", try_write!("pmcr_el0", 0x7)),
        ("PMCCNTR_EL0 read", try_read!("pmccntr_el0")),
        ("PMCCNTR_EL0 write", try_write!("pmccntr_el0", u64::MAX)),
        (
            "PMCNTENSET_EL0 write",
            try_write!("pmcntenset_el0", u64::MAX),
        ),
        ("PMUSERENR_EL0 write", try_write!("pmuserenr_el0", 0xF)),
        ("PMCR_EL0 stop", try_write!("pmcr_el0", 0)),
        ("ACTLR_EL1 read", try_read!("actlr_el1")),
        ("ICC_SRE_EL1 read", try_read!("S3_0_C12_C12_5")),
        ("ICC_SRE_EL1 write 0", try_write!("S3_0_C12_C12_5", 0)),
        ("ICC_CTLR_EL1 read", try_read!("S3_0_C12_C12_4")),
        (
            "ICC_SGI0R_EL1 broadcast",
            try_write!("S3_0_C12_C11_7", 1 << 40),
        ),
        (
            "ICC_ASGI1R_EL1 broadcast",
            try_write!("S3_0_C12_C11_6", 1 << 40),
        ),
        ("ICC_IAR1_EL1 read", try_read!("S3_0_C12_C12_0")),
        ("ICC_DIR_EL1 write 1019", try_write!("S3_0_C12_C11_1", 1019)),
        (
            "DC ISW",
            attempt(|| {
                // SAFETY: set/way clean-invalidate of set 0 way 0 of L1: at worst it cleans a line.
                unsafe { asm!("dc cisw, {}", in(reg) 0u64, options(nostack)) };
                0
            }),
        ),
    ];
    for (what, outcome) in allowed {
        println!("{PREFIX}sysregs: {what} -> {outcome}");
        if let Some(class) = outcome.class() {
            ok &= class == EC_UNKNOWN;
        }
    }
    // EL2 registers, the physical GIC's virtualization registers and EL2 TLB/AT operations:
    // undefined at EL1, whatever cellvisor does.
    let undefined = [
        ("ICH_HCR_EL2 read", try_read!("S3_4_C12_C11_0")),
        ("ICH_VTR_EL2 read", try_read!("S3_4_C12_C11_1")),
        ("ICH_LR0_EL2 write", try_write!("S3_4_C12_C12_0", u64::MAX)),
        ("ICC_SRE_EL2 read", try_read!("S3_4_C12_C9_5")),
        ("HCR_EL2 read", try_read!("hcr_el2")),
        ("HCR_EL2 write", try_write!("hcr_el2", 0)),
        ("VTTBR_EL2 write", try_write!("vttbr_el2", 0)),
        ("VBAR_EL2 write", try_write!("vbar_el2", 0)),
        ("SCTLR_EL2 read", try_read!("sctlr_el2")),
        ("CNTVOFF_EL2 write", try_write!("cntvoff_el2", u64::MAX)),
        ("CNTHCTL_EL2 write", try_write!("cnthctl_el2", u64::MAX)),
        (
            "TLBI ALLE2",
            attempt(|| {
                // SAFETY: undefined at EL1; if it were not, it would only invalidate TLBs.
                unsafe { asm!("tlbi alle2", "dsb sy", options(nostack)) };
                0
            }),
        ),
        (
            "AT S12E1R",
            attempt(|| {
                // SAFETY: undefined at EL1; otherwise an address translation with no side effect.
                unsafe { asm!("at s12e1r, {}", in(reg) 0x9000_0000u64, options(nostack)) };
                0
            }),
        ),
    ];
    for (what, outcome) in undefined {
        println!("{PREFIX}sysregs: {what} -> {outcome}");
        ok &= outcome.is_undefined();
    }
    if ok {
        Ok("EL2 and ICH registers undefined, the rest emulated or undefined")
    } else {
        Err("an EL2 register was reachable or a trap was mishandled")
    }
}

fn timer_read(which: u32) -> u64 {
    let value: u64;
    // SAFETY: reads of the EL1 virtual timer registers have no side effects.
    unsafe {
        match which {
            0 => asm!("mrs {}, cntv_ctl_el0", out(reg) value, options(nomem, nostack)),
            1 => asm!("mrs {}, cntv_tval_el0", out(reg) value, options(nomem, nostack)),
            _ => asm!("mrs {}, cntv_cval_el0", out(reg) value, options(nomem, nostack)),
        }
    }
    value
}

fn timer_set(control: u64, compare: u64) {
    // SAFETY: programs this vCPU's virtual timer; its interrupt stays masked by PSTATE.I.
    unsafe {
        asm!("msr cntv_cval_el0, {c}", "msr cntv_ctl_el0, {t}", "isb", c = in(reg) compare,
            t = in(reg) control, options(nostack));
    }
}

fn timer_set_tval(value: u64) {
    // SAFETY: as for `timer_set`.
    unsafe {
        asm!("msr cntv_tval_el0, {v}", "msr cntv_ctl_el0, {c}", "isb", v = in(reg) value, c = in(reg) 1u64, options(nostack))
    };
}

fn timer() -> Verdict {
    let mut ok = true;
    for (what, compare) in [
        ("CVAL 0", 0u64),
        ("CVAL u64::MAX", u64::MAX),
        ("CVAL 1<<63", 1 << 63),
    ] {
        timer_set(1, compare);
        let control = timer_read(0);
        println!(
            "{PREFIX}timer: {what} -> CTL {control:#x} TVAL {:#x}",
            timer_read(1) as i32
        );
        // ISTATUS must say whether the compare value has passed.
        ok &= (control >> 2 & 1 == 1) == (compare == 0);
    }
    for (what, tval) in [
        ("TVAL -1", 0xFFFF_FFFFu64),
        ("TVAL i32::MIN", 0x8000_0000),
        ("TVAL i32::MAX", 0x7FFF_FFFF),
    ] {
        timer_set_tval(tval);
        println!(
            "{PREFIX}timer: {what} -> CTL {:#x} CVAL {:#x}",
            timer_read(0),
            timer_read(2)
        );
    }
    // The physical timer (EL1PCEN) and the secure one: allowed, trapped or undefined, no hang.
    let others = [
        ("CNTP_CVAL_EL0 0", try_write!("cntp_cval_el0", 0)),
        ("CNTP_CTL_EL0 enable", try_write!("cntp_ctl_el0", 1)),
        ("CNTP_CTL_EL0 read", try_read!("cntp_ctl_el0")),
        ("CNTP_CTL_EL0 disable", try_write!("cntp_ctl_el0", 0)),
        ("CNTPS_CTL_EL1 read", try_read!("S3_7_C14_C2_1")),
        ("CNTKCTL_EL1 write", try_write!("cntkctl_el1", u64::MAX)),
        ("CNTFRQ_EL0 write", try_write!("cntfrq_el0", 1)),
    ];
    for (what, outcome) in others {
        println!("{PREFIX}timer: {what} -> {outcome}");
    }
    timer_set(0, u64::MAX);
    // The guest's own clock still runs.
    let start = crate::timer::Instant::now().after_ms(1);
    ok &= crate::timer::wait_until(10_000, || start.has_passed());
    if ok {
        Ok("extreme compare values behave, the counter runs")
    } else {
        Err("timer status wrong")
    }
}

fn sgi1r(value: u64) {
    // SAFETY: ICC_SGI1R_EL1 is trapped by cellvisor and turned into virtual SGIs in this cell.
    unsafe { asm!("msr S3_0_C12_C11_5, {}", "isb", in(reg) value, options(nostack)) };
}

fn gic_sgi() -> Verdict {
    let mut sent = 0u32;
    for intid in 0..16u64 {
        // IRM=1: every PE but self.
        sgi1r(1 << 40 | intid << 24);
        // Every affinity level non-zero, full target lists, every range selector.
        for aff in [0u64, 1, 0x55, 0xFF] {
            for range in [0u64, 1, 0xF] {
                sgi1r(aff << 48 | range << 44 | aff << 32 | intid << 24 | aff << 16 | 0xFFFF);
                sent += 1;
            }
        }
        sgi1r(intid << 24 | 0xFFFF);
        sent += 2;
    }
    // Reserved bits and an INTID field past 15.
    sgi1r(u64::MAX);
    sgi1r(0xF << 24 | 0xFFFF | 0xFFFF_0000_0000_0000);
    println!("{PREFIX}gic-sgi: sent {} SGI1R writes", sent + 2);
    Ok("SGIs to every affinity accepted; the victim keeps beating")
}

/// Minimal GIC setup so the virtual timer can wake WFI: group 1 on in the distributor, the
/// redistributor awake, PPI 27 enabled, the CPU interface's priority mask open.
fn enable_timer_interrupt() -> bool {
    let setup = [
        write32(GICD, 0x12),                // GICD_CTLR: ARE_NS | EnableGrp1NS
        write32(GICR + 0x14, 0),            // GICR_WAKER: ProcessorSleep = 0
        write32(GICR + 0x1_0080, u32::MAX), // GICR_IGROUPR0: group 1
        write32(GICR + 0x1_0100, 1 << 27),  // GICR_ISENABLER0: PPI 27
        try_write!("S3_0_C4_C6_0", 0xFF),   // ICC_PMR_EL1
        try_write!("S3_0_C12_C12_7", 1),    // ICC_IGRPEN1_EL1
    ];
    setup
        .iter()
        .all(|outcome| matches!(outcome, Outcome::Done(_)))
}

fn counter() -> u64 {
    let value: u64;
    // SAFETY: reading CNTVCT_EL0 after an ISB has no side effects.
    unsafe { asm!("isb", "mrs {}, cntvct_el0", out(reg) value, options(nomem, nostack)) };
    value
}

fn counter_frequency() -> u64 {
    let value: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) value, options(nomem, nostack)) };
    if value == 0 { 1_000_000_000 } else { value }
}

fn wfi() {
    // SAFETY: waits for an interrupt; IRQs stay masked, so none is taken.
    unsafe { asm!("wfi", options(nomem, nostack)) };
}

fn wfi_storm() -> Verdict {
    if !enable_timer_interrupt() {
        println!("{PREFIX}wfi-storm: GIC setup was refused");
    }
    let ticks_per_ms = (counter_frequency() / 1000).max(1);
    let mut woken = 0u32;
    let mut acknowledged = 0u32;
    for round in 0..500u32 {
        // Fire 20 us from now (and 0 = already expired every 50th round).
        let compare = if round % 50 == 0 {
            0
        } else {
            counter() + ticks_per_ms / 50
        };
        timer_set(1, compare);
        // At most 1000 WFIs per round: spurious wake-ups are allowed, a missing one would hang.
        for _ in 0..1000 {
            wfi();
            if timer_read(0) & 0b100 != 0 {
                woken += 1;
                break;
            }
        }
        timer_set(0, u64::MAX);
        if let Outcome::Done(27) = try_read!("S3_0_C12_C12_0") {
            acknowledged += 1;
            let _ = try_write!("S3_0_C12_C12_1", 27); // ICC_EOIR1_EL1
        }
    }
    // WFE: must return (events or spurious), never sleep forever.
    for _ in 0..20_000 {
        // SAFETY: WFE only waits for an event, and SEVL makes the next one return at once.
        unsafe { asm!("sevl", "wfe", "wfe", options(nomem, nostack)) };
    }
    println!(
        "{PREFIX}wfi-storm: 500 timer rounds, {woken} woken by the timer, {acknowledged} timer interrupts acknowledged; 20000 WFE pairs"
    );
    if woken == 500 {
        Ok("WFI always woke on the timer")
    } else {
        Err("a WFI round ended without the timer firing")
    }
}

fn hvc_flood() -> Verdict {
    const CALLS: u32 = 1_000_000;
    let mut wrong = 0u32;
    for index in 0..CALLS {
        let id = if index % 2 == 0 {
            CELLVISOR_VERSION
        } else {
            0xC600_1234
        };
        let expected = if index % 2 == 0 {
            CELLVISOR_ABI
        } else {
            psci::NOT_SUPPORTED
        };
        if psci::hvc(id, 0, 0, 0) != expected {
            wrong += 1;
        }
    }
    for _ in 0..100_000 {
        if smc4(0x8200_0000, 0, 0, 0)[0] as i64 != psci::NOT_SUPPORTED {
            wrong += 1;
        }
    }
    println!("{PREFIX}hvc-flood: {CALLS} HVCs and 100000 SMCs, {wrong} wrong results");
    if wrong == 0 {
        Ok("every call answered")
    } else {
        Err("a call in the flood got a wrong answer")
    }
}

/// Faults the flood raises; the log must show far fewer lines.
pub const FAULT_FLOOD: u32 = 20_000;

fn fault_flood() -> Verdict {
    // At least FAULT_FLOOD faults, and for at least 2.5 s: cellvisor's log allows a burst and then
    // one line a second, so a later line must report the faults it hid.
    let until = crate::timer::Instant::now().after_ms(2_500);
    let mut attempts = 0u32;
    let mut aborted = 0u32;
    while attempts < FAULT_FLOOD || !until.has_passed() {
        let outcome = if attempts.is_multiple_of(2) {
            read64(0x9000_0000)
        } else {
            write64(0x9000_0008, 0)
        };
        attempts = attempts.saturating_add(1);
        if outcome.is_data_abort() {
            aborted += 1;
        }
    }
    // And as many undefined sysreg traps.
    let mut undefined = 0u32;
    for _ in 0..FAULT_FLOOD / 4 {
        if try_read!("pmccntr_el0").is_undefined() {
            undefined += 1;
        }
    }
    println!(
        "{PREFIX}fault-flood: {attempts} foreign accesses, {aborted} aborted; {} PMCCNTR reads, {undefined} undefined",
        FAULT_FLOOD / 4
    );
    if aborted == attempts {
        Ok("every access in the flood aborted")
    } else {
        Err("an access in the flood did not abort")
    }
}

/// Resets the cell with PSCI SYSTEM_RESET, every boot: the test counts the boots and ends the run.
/// A marker written before each reset shows whether cellvisor scrubbed the cell's RAM.
fn system_reset() -> Verdict {
    let marker = RESET_MARKER as *mut u64;
    // SAFETY: RESET_MARKER is RAM of this cell below the device tree and above everything the
    // guest image uses; nothing else reads or writes it.
    let (magic, count) = unsafe { (marker.read_volatile(), marker.add(1).read_volatile()) };
    if magic == RESET_MAGIC {
        println!(
            "{PREFIX}system-reset: marker of boot {count} survived the reset (RAM not scrubbed)"
        );
    } else {
        println!(
            "{PREFIX}system-reset: no marker from a previous boot (RAM scrubbed or first boot)"
        );
    }
    let count = if magic == RESET_MAGIC { count + 1 } else { 1 };
    // SAFETY: as above.
    unsafe {
        marker.write_volatile(RESET_MAGIC);
        marker.add(1).write_volatile(count);
    }
    println!("{PREFIX}system-reset: resetting");
    let result = psci::hvc(0x8400_0009, 0, 0, 0);
    println!("{PREFIX}system-reset: SYSTEM_RESET returned {result}");
    Err("SYSTEM_RESET returned")
}

fn system_off_from_vcpu1() -> ! {
    println!("{PREFIX}system-off: vcpu 1 calls SYSTEM_OFF while vcpu 0 floods HVCs");
    let started = start_vcpu1(JOB_SYSTEM_OFF);
    if started != psci::SUCCESS {
        println!("{PREFIX}system-off: FAIL cpu_on(1) returned {started}");
        psci::park();
    }
    let deadline = crate::timer::Instant::now().after_ms(20_000);
    while !deadline.has_passed() {
        psci::hvc(CELLVISOR_VERSION, 0, 0, 0);
    }
    println!("{PREFIX}system-off: FAIL vcpu 0 still runs 20 s after SYSTEM_OFF");
    psci::park()
}

/// Set by vCPU 1 once it has printed its `bogus-vbar` line: the console has no lock, so vCPU 0
/// waits for it before printing again (two vCPUs writing at once mix their bytes in one line).
static BOGUS_VBAR_ANNOUNCED: AtomicU32 = AtomicU32::new(0);

fn bogus_vbar() -> Verdict {
    let started = start_vcpu1(JOB_BOGUS_VBAR);
    if started != psci::SUCCESS {
        println!("{PREFIX}bogus-vbar: cpu_on(1) returned {started}");
        return Err("could not start vcpu 1");
    }
    let deadline = crate::timer::Instant::now().after_ms(5_000);
    while BOGUS_VBAR_ANNOUNCED.load(Ordering::SeqCst) == 0 {
        if deadline.has_passed() {
            return Err("vcpu 1 did not announce its exception loop within 5 s");
        }
    }
    Ok("vcpu 1 launched into an endless exception loop")
}

fn bogus_vbar_secondary() -> ! {
    println!("{PREFIX}bogus-vbar: vcpu 1 sets VBAR_EL1=0x444444444444 and reads 0x90000000");
    BOGUS_VBAR_ANNOUNCED.store(1, Ordering::SeqCst);
    // SAFETY: deliberately breaks this vCPU: the abort goes to an unmapped vector, whose fetch
    // aborts again, forever. Nothing returns from here.
    unsafe {
        asm!("msr vbar_el1, {v}", "isb", "ldr x9, [{a}]", "1: b 1b", v = in(reg) 0x4444_4444_4444u64,
            a = in(reg) 0x9000_0000u64, options(noreturn, nostack))
    }
}

fn bogus_stack() -> ! {
    println!("{PREFIX}bogus-sp: vcpu 0 sets SP=0x90000000 and raises an undefined instruction");
    // SAFETY: deliberately breaks this vCPU: the exception's frame push aborts at a foreign
    // address, whose abort pushes again, forever. Nothing returns from here.
    unsafe {
        asm!("mov sp, {s}", "udf #0", "1: b 1b", s = in(reg) 0x9000_0000u64, options(noreturn))
    }
}

const _: () = assert!(RAM_BASE < RESET_MARKER && RESET_MARKER < RAM_END);
