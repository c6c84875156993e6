//! Attacks with the stage-1 MMU on (the map is `mmu`'s): emulated device pages mapped Normal
//! write-back, twice with different attributes, accessed unaligned and across page boundaries,
//! with instructions that give no syndrome; another cell's and cellvisor's RAM mapped Normal
//! write-back; translation tables outside the cell. Stage 2 never depends on the guest's stage-1
//! attributes: an emulated device page is unmapped at stage 2, so every access to it traps, and is
//! emulated from its syndrome or refused with an abort cellvisor injects (DFSC 0x10).

use cellvisor_guest_support::println;
use core::arch::asm;

use super::mmu::{
    Alias, CELLVISOR_RAM, FOREIGN_RAM, WALK_OUTSIDE, mmu_is_on, scratch_page, translate, with_mmu,
    with_ttbr1_root,
};
use super::probe::{Outcome, attempt, read32, read64, write32, write64};
use super::{
    EC_DATA_ABORT_SAME_EL, EC_INSTRUCTION_ABORT_SAME_EL, GICD, GICR, PREFIX, UART, Verdict,
};

/// Byte offset of SPI 33's (the vUART's) priority in GICD_IPRIORITYR, and the word holding it.
const PRIORITY_WORD: u64 = 0x420;
const PRIORITY_SHIFT: u32 = 8;
/// GICD_ISENABLER1 / ICENABLER1 and SPI 33's bit in them.
const ISENABLER1: u64 = 0x104;
const ICENABLER1: u64 = 0x184;
const SPI33_BIT: u64 = 1 << 1;
/// GICD_IROUTER<33>, from the start of GICD page 6.
const IROUTER33_IN_PAGE: u64 = 8 * 33;
/// UARTIMSC.
const UARTIMSC: u64 = 0x38;
/// UARTFR.
const UARTFR: u64 = 0x18;

/// The value a probe read, if it completed.
fn value(outcome: Outcome) -> Option<u64> {
    match outcome {
        Outcome::Done(value) => Some(value),
        Outcome::Trapped { .. } => None,
    }
}

/// `Some(value)` as `0x..`, `None` as `aborted`.
struct Read(Option<u64>);

impl core::fmt::Display for Read {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value:#x}"),
            None => f.write_str("aborted"),
        }
    }
}

/// Writes `text` and a newline to the UART data register at `data`, byte by byte; true if no
/// write trapped.
fn print_through(data: u64, text: &str) -> bool {
    let mut ok = true;
    for byte in text.bytes().chain(core::iter::once(b'\n')) {
        ok &= matches!(write32(data, u32::from(byte)), Outcome::Done(_));
    }
    ok
}

/// Runs `attack` with the MMU on, after checking that it is on and that the alias window maps
/// what it says (AT S1E1R of the vUART alias gives the vUART's IPA).
fn mmu_attack(name: &str, attack: impl FnOnce() -> Verdict) -> Verdict {
    with_mmu(|| {
        if !mmu_is_on() {
            return Err("the MMU did not turn on");
        }
        let par = translate(Alias::UartNormal.va());
        println!("{PREFIX}{name}: AT S1E1R of the write-back vUART alias -> {par}");
        match par {
            Outcome::Done(par) if par & 1 == 0 && par & 0xF_FFFF_FFFF_F000 == UART => attack(),
            _ => Err("the alias page does not translate to the vUART"),
        }
    })
}

pub(super) fn mmu_device_normal() -> Verdict {
    mmu_attack("mmu-device-normal", || {
        let mut ok = true;
        // The same registers through the identity (Device-nGnRE) map and a Normal mapping.
        let gicd = Alias::GicdNormal.va();
        let router = Alias::GicdRouterNormal.va();
        let gicr = Alias::GicrNormal.va();
        let gicr_sgi = Alias::GicrSgiNormal.va();
        let uart = Alias::UartNormal.va();
        let uart_nc = Alias::UartNonCacheable.va();
        let pairs: [(&str, Outcome, Outcome); 12] = [
            ("GICD_CTLR", read32(GICD), read32(gicd)),
            ("GICD_TYPER", read32(GICD + 4), read32(gicd + 4)),
            ("GICD_IIDR", read32(GICD + 8), read32(gicd + 8)),
            (
                "GICD_ISENABLER1",
                read32(GICD + ISENABLER1),
                read32(gicd + ISENABLER1),
            ),
            (
                "GICD_IROUTER33",
                read64(GICD + 0x6000 + IROUTER33_IN_PAGE),
                read64(router + IROUTER33_IN_PAGE),
            ),
            ("GICR_TYPER", read64(GICR + 8), read64(gicr + 8)),
            ("GICR_WAKER", read32(GICR + 0x14), read32(gicr + 0x14)),
            (
                "GICR_ISENABLER0",
                read32(GICR + 0x1_0100),
                read32(gicr_sgi + 0x100),
            ),
            ("UARTFR", read32(UART + UARTFR), read32(uart + UARTFR)),
            ("UARTIMSC", read32(UART + UARTIMSC), read32(uart + UARTIMSC)),
            ("UARTPeriphID0", read32(UART + 0xFE0), read32(uart + 0xFE0)),
            (
                "UARTFR non-cacheable",
                read32(UART + UARTFR),
                read32(uart_nc + UARTFR),
            ),
        ];
        for (what, device, normal) in pairs {
            println!("{PREFIX}mmu-device-normal: {what}: device {device}, normal {normal}");
            // A single aligned load has a syndrome whatever stage 1 says: it must be emulated,
            // and read what the device mapping reads.
            ok &= matches!((device, normal), (Outcome::Done(a), Outcome::Done(b)) if a == b);
        }
        // Writes through the write-back mapping reach the emulation.
        let old = value(read32(GICD + PRIORITY_WORD)).unwrap_or(0) as u32;
        let wrote = write32(
            gicd + PRIORITY_WORD,
            (old & !(0xFF << PRIORITY_SHIFT)) | (0xA0 << PRIORITY_SHIFT),
        );
        let priority =
            value(read32(GICD + PRIORITY_WORD)).map(|word| word >> PRIORITY_SHIFT & 0xFF);
        let _ = write32(gicd + PRIORITY_WORD, old);
        println!(
            "{PREFIX}mmu-device-normal: SPI 33 priority 0xa0 written write-back ({wrote}), reads {} through the device mapping",
            Read(priority)
        );
        ok &= matches!(wrote, Outcome::Done(_)) && priority == Some(0xA0);
        // Route the vUART's SPI to vCPUs the cell lacks (Aff0 2, 3: the other cell's CPUs'
        // numbers) and far away through the write-back mapping: ignored, the route stays. 1-of-N
        // (IRM) is the cell's to choose and sticks.
        let route = router + IROUTER33_IN_PAGE;
        let old_route = value(read64(route)).unwrap_or(0);
        for (target, kept) in [
            (2u64, old_route),
            (3, old_route),
            (0xFF_00FF_FFFF, old_route),
            (1 << 31, 1 << 31),
        ] {
            let wrote = write64(route, target);
            let now = read64(GICD + 0x6000 + IROUTER33_IN_PAGE);
            println!(
                "{PREFIX}mmu-device-normal: IROUTER33 = {target:#x} write-back ({wrote}) -> device reads {now}"
            );
            ok &= matches!(wrote, Outcome::Done(_))
                && matches!(now, Outcome::Done(value) if value == kept);
        }
        let _ = write64(route, old_route);
        // A line through each Normal mapping of the vUART (the QEMU test looks for them).
        ok &= print_through(
            uart,
            "test-guest: attack mmu-device-normal: printed through a write-back mapping",
        );
        ok &= print_through(
            uart_nc,
            "test-guest: attack mmu-device-normal: printed through a non-cacheable mapping",
        );
        if ok {
            Ok(
                "single accesses through Normal mappings of the vGIC and vUART are emulated like device ones",
            )
        } else {
            Err("a Normal-mapped device access was not emulated like its device-mapped twin")
        }
    })
}

pub(super) fn mmu_device_alias() -> Verdict {
    mmu_attack("mmu-device-alias", || {
        let mut ok = true;
        let normal = Alias::GicdNormal.va();
        let device = Alias::GicdDevice.va();
        let old = value(read32(device + PRIORITY_WORD)).unwrap_or(0) as u32;
        let with = |priority: u32| (old & !(0xFF << PRIORITY_SHIFT)) | (priority << PRIORITY_SHIFT);
        let read_priority = |base: u64| {
            value(read32(base + PRIORITY_WORD)).map(|word| word >> PRIORITY_SHIFT & 0xFF)
        };
        // Written write-back, cleaned to the point of coherency, read through the Device alias;
        // and the other way round.
        let _ = write32(normal + PRIORITY_WORD, with(0x60));
        let clean = access!(normal + PRIORITY_WORD, "dc civac, {a}");
        let seen_device = read_priority(device);
        let _ = write32(device + PRIORITY_WORD, with(0xC0));
        let seen_normal = read_priority(normal);
        let _ = write32(device + PRIORITY_WORD, old);
        println!(
            "{PREFIX}mmu-device-alias: priority 0x60 written write-back (then dc civac: {clean}) reads {} through Device; 0xc0 written Device reads {} write-back",
            Read(seen_device),
            Read(seen_normal)
        );
        ok &= seen_device == Some(0x60) && seen_normal == Some(0xC0);
        ok &= !matches!(clean, Outcome::Trapped { .. }) || clean.is_injected_abort();
        // Enable SPI 33 through one alias, disable it through the other.
        let was = value(read32(device + ISENABLER1)).unwrap_or(0) & SPI33_BIT;
        let _ = write32(normal + ISENABLER1, SPI33_BIT as u32);
        let enabled = value(read32(device + ISENABLER1)).map(|bits| bits & SPI33_BIT != 0);
        let _ = write32(device + ICENABLER1, SPI33_BIT as u32);
        let disabled = value(read32(normal + ISENABLER1)).map(|bits| bits & SPI33_BIT == 0);
        if was != 0 {
            let _ = write32(device + ISENABLER1, SPI33_BIT as u32);
        }
        println!(
            "{PREFIX}mmu-device-alias: SPI 33 enabled write-back -> Device sees {enabled:?}; disabled Device -> write-back sees it off {disabled:?}"
        );
        ok &= enabled == Some(true) && disabled == Some(true);
        // The vUART's interrupt mask through both aliases.
        let uart_normal = Alias::UartNormal.va();
        let uart_device = Alias::UartDevice.va();
        let old_mask = value(read32(uart_device + UARTIMSC)).unwrap_or(0) as u32;
        let _ = write32(uart_normal + UARTIMSC, 0x10);
        let mask_device = value(read32(uart_device + UARTIMSC));
        let _ = write32(uart_device + UARTIMSC, 0);
        let mask_normal = value(read32(uart_normal + UARTIMSC));
        let _ = write32(uart_device + UARTIMSC, old_mask);
        println!(
            "{PREFIX}mmu-device-alias: UARTIMSC 0x10 write-back -> Device reads {}; 0 Device -> write-back reads {}",
            Read(mask_device),
            Read(mask_normal)
        );
        ok &= mask_device == Some(0x10) && mask_normal == Some(0);
        // One line, its bytes alternately through each alias: it must come out whole, in order.
        let line =
            b"test-guest: attack mmu-device-alias: one line through two mappings of the vUART\n";
        for (index, byte) in line.iter().enumerate() {
            let data = if index % 2 == 0 {
                uart_normal
            } else {
                uart_device
            };
            ok &= matches!(write32(data, u32::from(*byte)), Outcome::Done(_));
        }
        if ok {
            Ok("both aliases see one device: no stale or split state")
        } else {
            Err("the two mappings of one emulated page disagree")
        }
    })
}

pub(super) fn mmu_unaligned() -> Verdict {
    mmu_attack("mmu-unaligned", || {
        let mut ok = true;
        let typer = read32(GICD + 4);
        // Device memory: the CPU's own alignment fault at stage 1, before stage 2 is asked.
        let device = [
            ("device UART+1 ldr w", access!(UART + 1, "ldr {v:w}, [{a}]")),
            ("device GICD+4 ldr x", access!(GICD + 4, "ldr {v}, [{a}]")),
            ("device GICD+2 str w", access!(GICD + 2, "str {v:w}, [{a}]")),
            (
                "device GICR+0x14+2 ldrh",
                access!(GICR + 0x15, "ldrh {v:w}, [{a}]"),
            ),
        ];
        for (what, outcome) in device {
            println!("{PREFIX}mmu-unaligned: {what} -> {outcome}");
            ok &= outcome.is_alignment_fault();
        }
        // Normal memory: no alignment check, so the access reaches stage 2, where the emulated
        // device cannot take it (misaligned, or across its page): an abort cellvisor injects.
        let uart = Alias::UartNormal.va();
        let gicd = Alias::GicdNormal.va();
        let scratch = Alias::ScratchNormal.va();
        let straddle = Alias::UartAfterScratch.va();
        let normal = [
            ("UART+1 ldr w", access!(uart + 1, "ldr {v:w}, [{a}]")),
            ("UART+4 ldr x", access!(uart + 4, "ldr {v}, [{a}]")),
            ("UART+1 ldrh", access!(uart + 1, "ldrh {v:w}, [{a}]")),
            ("UART+2 str w", access!(uart + 2, "str {v:w}, [{a}]")),
            (
                "UART non-cacheable+1 ldr w",
                access!(Alias::UartNonCacheable.va() + 1, "ldr {v:w}, [{a}]"),
            ),
            ("GICD+2 ldr w", access!(gicd + 2, "ldr {v:w}, [{a}]")),
            ("GICD+4 ldr x", access!(gicd + 4, "ldr {v}, [{a}]")),
            (
                "GICD+0x421 str w",
                access!(gicd + 0x421, "str {v:w}, [{a}]"),
            ),
            (
                "IROUTER33+4 ldr x",
                access!(
                    Alias::GicdRouterNormal.va() + IROUTER33_IN_PAGE + 4,
                    "ldr {v}, [{a}]"
                ),
            ),
            (
                "GICR_TYPER+4 ldr x",
                access!(Alias::GicrNormal.va() + 0xC, "ldr {v}, [{a}]"),
            ),
            (
                "UART->GICD straddle ldr x",
                access!(straddle + 0xFFC, "ldr {v}, [{a}]"),
            ),
            (
                "UART->GICD straddle str x",
                access!(straddle + 0xFFC, "str {v}, [{a}]"),
            ),
        ];
        for (what, outcome) in normal {
            println!("{PREFIX}mmu-unaligned: normal {what} -> {outcome}");
            ok &= outcome.is_injected_abort();
        }
        // From the cell's own RAM across the page boundary into the vUART. QEMU reports the
        // fault of the second page with ISV = 1 and FAR = that page's first byte, so cellvisor
        // sees an aligned access to UARTDR: refused where the width does not fit the vUART
        // (64-bit), emulated as a UARTDR access otherwise (the store writes a newline). Either
        // way only the cell's own device is touched.
        let _ = write64(scratch + 0xFF8, 0);
        let crossing = [
            ("ldr x", access!(scratch + 0xFFC, "ldr {v}, [{a}]")),
            ("ldr w", access!(scratch + 0xFFE, "ldr {v:w}, [{a}]")),
            (
                "str x",
                access!(scratch + 0xFFC, "mov {v}, #0x0a0a\n str {v}, [{a}]"),
            ),
            (
                "str w",
                access!(scratch + 0xFFE, "mov {v:w}, #0x0a0a\n str {v:w}, [{a}]"),
            ),
        ];
        for (what, outcome) in crossing {
            println!("{PREFIX}mmu-unaligned: RAM->UART page crossing {what} -> {outcome}");
            ok &= matches!(outcome, Outcome::Done(_)) || outcome.is_injected_abort();
        }
        let ram_half = read64(scratch + 0xFF8);
        println!("{PREFIX}mmu-unaligned: the RAM side of the crossing stores reads {ram_half}");
        // A misaligned access to RAM through the same kind of mapping just works (the control).
        let ram = access!(scratch + 0x11, "ldr {v}, [{a}]");
        println!("{PREFIX}mmu-unaligned: normal scratch RAM+0x11 ldr x -> {ram}");
        ok &= matches!(ram, Outcome::Done(_));
        // The devices are unharmed.
        let after = read32(GICD + 4);
        let flags = read32(UART + UARTFR);
        println!("{PREFIX}mmu-unaligned: GICD_TYPER before {typer}, after {after}; UARTFR {flags}");
        ok &= matches!((typer, after), (Outcome::Done(a), Outcome::Done(b)) if a == b);
        ok &= matches!(flags, Outcome::Done(_));
        if ok {
            Ok("Device mappings fault in the guest, Normal ones are refused by cellvisor")
        } else {
            Err("an unaligned or straddling device access was not refused")
        }
    })
}

/// Loads, stores, exclusives, atomics and DC ZVA of `va`, which maps memory outside the cell:
/// each must be an abort cellvisor injected with FAR = `va`. Cache maintenance and prefetches
/// may also complete without effect. Returns how many did something else.
fn foreign_accesses(name: &str, what: &str, va: u64) -> u32 {
    let must_abort = [
        ("ldr", access!(va, "ldr {v}, [{a}]")),
        ("str", access!(va, "str {v}, [{a}]")),
        ("ldp", access!(va, "ldp {v}, x9, [{a}]")),
        ("stp", access!(va, "stp {v}, {v}, [{a}]")),
        ("ldxr", access!(va, "ldxr {v}, [{a}]")),
        ("ldadd", access!(va, "ldadd {v}, x9, [{a}]")),
        ("cas", access!(va, "cas {v}, x9, [{a}]")),
        ("ldr q", access!(va, "ldr q0, [{a}]")),
        ("dc zva", access!(va, "dc zva, {a}")),
    ];
    let may_complete = [
        ("dc civac", access!(va, "dc civac, {a}")),
        ("dc ivac", access!(va, "dc ivac, {a}")),
        ("prfm", access!(va, "prfm pldl1keep, [{a}]")),
    ];
    let mut wrong = 0;
    for (instruction, outcome) in must_abort {
        println!("{PREFIX}{name}: {what} {instruction} {va:#x} -> {outcome}");
        if !outcome.is_injected_abort_at(va) {
            wrong += 1;
        }
    }
    for (instruction, outcome) in may_complete {
        println!("{PREFIX}{name}: {what} {instruction} {va:#x} -> {outcome}");
        if !matches!(outcome, Outcome::Done(_)) && !outcome.is_injected_abort_at(va) {
            wrong += 1;
        }
    }
    wrong
}

/// Branches to `va` (the vector table resumes at the return address if the fetch aborts).
fn execute(va: u64) -> Outcome {
    attempt(|| {
        // SAFETY: a branch to memory outside the cell; the fetch aborts and the vector table
        // resumes at x30, the instruction after the `blr`.
        unsafe {
            asm!("blr {t}", t = in(reg) va, out("x30") _, clobber_abi("C"), options(nostack))
        };
        0
    })
}

pub(super) fn mmu_foreign_ram() -> Verdict {
    mmu_attack("mmu-foreign-ram", || {
        // The control: the cell's own page through the alias window is ordinary memory.
        let scratch = Alias::ScratchNormal.va();
        let _ = write64(scratch + 0x100, 0x7E57_C0DE);
        let back = read64(scratch + 0x100);
        let direct = read64(scratch_page() + 0x100);
        println!(
            "{PREFIX}mmu-foreign-ram: own page through the alias -> {back}, directly {direct}"
        );
        if !matches!(
            (back, direct),
            (Outcome::Done(0x7E57_C0DE), Outcome::Done(0x7E57_C0DE))
        ) {
            return Err("the alias window does not map the cell's own page");
        }
        let mut wrong = 0;
        for (what, va) in [
            (
                "another cell's RAM (write-back alias)",
                Alias::ForeignNormal.va(),
            ),
            (
                "another cell's RAM (Device alias)",
                Alias::ForeignDevice.va(),
            ),
            ("another cell's RAM (identity block)", FOREIGN_RAM),
            (
                "another cell's RAM +1 MiB (identity block)",
                FOREIGN_RAM + 0x10_0000,
            ),
            ("cellvisor's RAM", Alias::CellvisorNormal.va()),
            (
                "the cell's RAM at its physical address",
                Alias::OwnPhysicalNormal.va(),
            ),
        ] {
            wrong += foreign_accesses("mmu-foreign-ram", what, va);
        }
        for (what, va) in [
            ("another cell's RAM", Alias::ForeignNormal.va()),
            ("another cell's RAM (identity)", FOREIGN_RAM),
            ("cellvisor's RAM", Alias::CellvisorNormal.va()),
            ("the vUART (write-back)", Alias::UartNormal.va()),
        ] {
            let fetch = execute(va);
            println!("{PREFIX}mmu-foreign-ram: execute {what} {va:#x} -> {fetch}");
            if fetch.class() != Some(EC_INSTRUCTION_ABORT_SAME_EL)
                || fetch.fault_status() != Some(0x10)
            {
                wrong += 1;
            }
        }
        println!("{PREFIX}mmu-foreign-ram: {wrong} accesses not refused");
        if wrong == 0 {
            Ok("every access through a write-back mapping of memory outside the cell aborted")
        } else {
            Err("an access to memory outside the cell was not refused")
        }
    })
}

pub(super) fn mmu_no_syndrome() -> Verdict {
    mmu_attack("mmu-no-syndrome", || {
        let mut ok = true;
        let typer = read32(GICD + 4);
        let gicr_typer = read64(GICR + 8);
        for (device, base) in [
            ("uart", Alias::UartNormal.va()),
            ("gicd", Alias::GicdNormal.va()),
            ("gicr", Alias::GicrNormal.va()),
        ] {
            // No syndrome (pairs, exclusives, atomics, SIMD, writeback, DC ZVA): refused.
            let refused = [
                ("ldp", access!(base, "ldp {v}, x9, [{a}]")),
                ("stp", access!(base, "stp xzr, xzr, [{a}]")),
                ("ldnp", access!(base, "ldnp {v}, x9, [{a}]")),
                ("stnp", access!(base, "stnp xzr, xzr, [{a}]")),
                ("ldxr", access!(base, "ldxr {v:w}, [{a}]")),
                ("ldaxr", access!(base, "ldaxr {v:w}, [{a}]")),
                ("ldxp", access!(base, "ldxp {v:w}, w9, [{a}]")),
                ("ldadd", access!(base, "ldadd {v:w}, w9, [{a}]")),
                ("ldaddal", access!(base, "ldaddal {v:w}, w9, [{a}]")),
                ("stset", access!(base, "stset {v:w}, [{a}]")),
                ("cas", access!(base, "cas {v:w}, w9, [{a}]")),
                (
                    "casp",
                    access!(
                        base,
                        "mov x10, #0\n mov x11, #0\n casp x10, x11, x10, x11, [{a}]"
                    ),
                ),
                ("swp", access!(base, "swp {v:w}, w9, [{a}]")),
                ("dc zva", access!(base, "dc zva, {a}")),
                ("ldp q", access!(base, "ldp q0, q1, [{a}]")),
                ("ldr q", access!(base, "ldr q0, [{a}]")),
                ("str s", access!(base, "str s0, [{a}]")),
                ("ld1", access!(base, "ld1 {{v0.4s}}, [{a}]")),
                ("st1", access!(base, "st1 {{v0.4s}}, [{a}]")),
                (
                    "ldr post-index",
                    access!(base + 8, "mov x9, {a}\n ldr {v:w}, [x9], #4"),
                ),
                (
                    "str pre-index",
                    access!(base + 4, "mov x9, {a}\n str {v:w}, [x9, #4]!"),
                ),
            ];
            for (what, outcome) in refused {
                println!("{PREFIX}mmu-no-syndrome: {device} {what} -> {outcome}");
                ok &= outcome.is_injected_abort();
            }
            // Acquire/release single loads and stores have a syndrome: emulated. A store
            // exclusive without a monitor fails without an access; cache maintenance and
            // prefetches may complete without effect.
            let either = [
                ("ldar", access!(base + 4, "ldar {v:w}, [{a}]")),
                ("ldapr", access!(base + 4, "ldapr {v:w}, [{a}]")),
                ("stxr", access!(base, "stxr w9, {v:w}, [{a}]")),
                ("dc civac", access!(base, "dc civac, {a}")),
                ("dc cvac", access!(base, "dc cvac, {a}")),
                ("dc ivac", access!(base, "dc ivac, {a}")),
                ("dc cvau", access!(base, "dc cvau, {a}")),
                ("ic ivau", access!(base, "ic ivau, {a}")),
                ("prfm", access!(base, "prfm pstl1strm, [{a}]")),
            ];
            for (what, outcome) in either {
                println!("{PREFIX}mmu-no-syndrome: {device} {what} -> {outcome}");
                if let Some(class) = outcome.class() {
                    ok &= class == EC_DATA_ABORT_SAME_EL && outcome.is_injected_abort();
                }
            }
        }
        let after = read32(GICD + 4);
        let gicr_after = read64(GICR + 8);
        let flags = read32(UART + UARTFR);
        println!(
            "{PREFIX}mmu-no-syndrome: GICD_TYPER {typer} -> {after}, GICR_TYPER {gicr_typer} -> {gicr_after}, UARTFR {flags}"
        );
        ok &= matches!((typer, after), (Outcome::Done(a), Outcome::Done(b)) if a == b);
        ok &= matches!((gicr_typer, gicr_after), (Outcome::Done(a), Outcome::Done(b)) if a == b);
        ok &= matches!(flags, Outcome::Done(_));
        if ok {
            Ok("every syndrome-less access to a write-back device page was refused")
        } else {
            Err("a syndrome-less access to a write-back device page was not refused")
        }
    })
}

pub(super) fn mmu_walk_outside() -> Verdict {
    mmu_attack("mmu-walk-outside", || {
        let mut wrong = 0u32;
        for (va, table, what) in WALK_OUTSIDE {
            let read = read64(va);
            let write = write64(va + 8, 0xBAD);
            let fetch = execute(va);
            let at = translate(va);
            println!(
                "{PREFIX}mmu-walk-outside: table in {what} ({table:#x}): read {va:#x} -> {read}; write -> {write}; execute -> {fetch}; AT S1E1R -> {at}"
            );
            wrong += u32::from(!read.is_injected_abort_at(va));
            wrong += u32::from(!write.is_injected_abort_at(va + 8));
            wrong += u32::from(
                fetch.class() != Some(EC_INSTRUCTION_ABORT_SAME_EL)
                    || fetch.fault_status() != Some(0x10),
            );
            // AT must not translate through a table it cannot read: a failed walk in PAR_EL1
            // (bit 0) or an abort.
            wrong += u32::from(match at {
                Outcome::Done(par) => par & 1 == 0,
                Outcome::Trapped { .. } => !at.is_data_abort(),
            });
        }
        // A root table outside the cell (TTBR1_EL1 walks turned on for it).
        for (what, root) in [
            ("another cell's RAM", FOREIGN_RAM),
            ("the vUART", UART),
            ("the vGIC distributor", GICD),
            ("cellvisor's RAM", CELLVISOR_RAM),
        ] {
            let (read, write) = with_ttbr1_root(root, |va| (read64(va), write64(va, 0xBAD)));
            println!(
                "{PREFIX}mmu-walk-outside: TTBR1 root in {what} ({root:#x}): read -> {read}; write -> {write}"
            );
            wrong += u32::from(!read.is_injected_abort() || !write.is_injected_abort());
        }
        // The cell's own translations still work.
        let own = read64(Alias::ScratchNormal.va());
        println!("{PREFIX}mmu-walk-outside: own page afterwards -> {own}; {wrong} wrong");
        wrong += u32::from(!matches!(own, Outcome::Done(_)));
        if wrong == 0 {
            Ok("every walk through a table outside the cell aborted")
        } else {
            Err("a walk through a table outside the cell did not abort")
        }
    })
}
