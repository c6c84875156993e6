//! Floods: WFI/WFE storms on the virtual timer, a million hypercalls, tens of thousands of faults,
//! console output from both vCPUs as fast as they can write.

use crate::psci;
use cellvisor_guest_support::println;
use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::power::start_vcpu1;
use super::probe::{Outcome, read64, smc4, write32, write64};
use super::registers::{timer_read, timer_set};
use super::{
    CELLVISOR_ABI, CELLVISOR_VERSION, GICD, GICR, JOB_CONSOLE_FLOOD, PREFIX, UART, Verdict,
};

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

pub(super) fn wfi_storm() -> Verdict {
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

pub(super) fn hvc_flood() -> Verdict {
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

pub(super) fn fault_flood() -> Verdict {
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

/// How long `console-flood` prints.
pub const CONSOLE_FLOOD_MS: u64 = 3_000;
/// Bytes vCPU 1 wrote in `console-flood`, once it stopped (`u64::MAX` until then).
static FLOOD_SECONDARY_BYTES: AtomicU64 = AtomicU64::new(u64::MAX);
/// vCPU 0 tells vCPU 1 to stop flooding.
static FLOOD_STOP: AtomicBool = AtomicBool::new(false);

/// Writes `byte` to the UART's data register without looking at the flags (a guest in a hurry).
fn transmit(byte: u8) {
    // SAFETY: the UART's data register is device memory at UART in every cell; a 32-bit store
    // transmits one byte and touches no Rust memory.
    unsafe { ((UART) as *mut u32).write_volatile(u32::from(byte)) };
}

/// Both vCPUs write to the console as fast as they can for [`CONSOLE_FLOOD_MS`]: vCPU 0 numbered
/// lines (so the transcript shows which ones got through), vCPU 1 raw 100-byte lines of `z`
/// straight to the data register. cellvisor must keep showing the other cell's output and drop
/// only this cell's excess (its `cells` row counts it, the console marks each gap). Then it waits
/// as long again, for the console to catch up, and reports what it sent.
pub(super) fn console_flood() -> Verdict {
    FLOOD_STOP.store(false, Ordering::SeqCst);
    FLOOD_SECONDARY_BYTES.store(u64::MAX, Ordering::SeqCst);
    let started = start_vcpu1(JOB_CONSOLE_FLOOD);
    if started != psci::SUCCESS {
        println!("{PREFIX}console-flood: cpu_on(1) returned {started}");
        return Err("vcpu 1 did not start");
    }
    let until = crate::timer::Instant::now().after_ms(CONSOLE_FLOOD_MS);
    let mut line = 0u64;
    let mut bytes = 0u64;
    while !until.has_passed() {
        line += 1;
        // "test-guest: attack console-flood: line N " + 60 dashes + "\n".
        for &byte in PREFIX.as_bytes().iter().chain(b"console-flood: line ") {
            transmit(byte);
        }
        let mut digits = [0u8; 20];
        let mut count = 0;
        let mut rest = line;
        loop {
            digits[count] = b'0' + (rest % 10) as u8;
            count += 1;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        for &digit in digits[..count].iter().rev() {
            transmit(digit);
        }
        transmit(b' ');
        for _ in 0..60 {
            transmit(b'-');
        }
        transmit(b'\n');
        bytes += (PREFIX.len() + "console-flood: line ".len() + count + 62) as u64;
    }
    FLOOD_STOP.store(true, Ordering::SeqCst);
    let mut secondary = u64::MAX;
    if !crate::timer::wait_until(10_000, || {
        secondary = FLOOD_SECONDARY_BYTES.load(Ordering::SeqCst);
        secondary != u64::MAX
    }) {
        return Err("vcpu 1 did not stop flooding");
    }
    if !crate::timer::wait_until(10_000, || psci::affinity_info(1) == psci::AFFINITY_OFF) {
        return Err("vcpu 1 did not turn off");
    }
    // The console shows this cell's output at the UART's speed and drops what does not fit its
    // ring until the ring has drained: give it time to catch up before reporting, or the report
    // would be this cell's own excess too.
    let settle = crate::timer::Instant::now().after_ms(CONSOLE_FLOOD_MS);
    while !settle.has_passed() {
        core::hint::spin_loop();
    }
    // Own line: the flood's last line may have lost its end.
    println!();
    println!(
        "{PREFIX}console-flood: sent {} bytes in {CONSOLE_FLOOD_MS} ms ({line} lines from vcpu 0, {secondary} bytes from vcpu 1)",
        bytes + secondary
    );
    Ok("both vCPUs flooded, then stopped")
}

/// vCPU 1's side of `console-flood`: 100-byte lines of `z` until vCPU 0 says stop, then CPU_OFF.
pub(super) fn console_flood_secondary() -> ! {
    let mut bytes = 0u64;
    while !FLOOD_STOP.load(Ordering::SeqCst) {
        for _ in 0..99 {
            transmit(b'z');
        }
        transmit(b'\n');
        bytes += 100;
    }
    FLOOD_SECONDARY_BYTES.store(bytes, Ordering::SeqCst);
    psci::cpu_off()
}
