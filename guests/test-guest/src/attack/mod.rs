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
//!
//! Attacks run with the MMU off (every data access Device-nGnRnE) except the `mmu-*` ones, which
//! turn on a stage-1 identity map with write-back caches around themselves (`mmu`), and
//! `aarch32-el0`, which drops to a 32-bit user program and back (`aarch32`).

#[macro_use]
mod probe;

mod aarch32;
mod cacheable;
mod exceptions;
mod floods;
mod gic;
mod gic_cpu;
mod gicv2;
mod hypercalls;
mod memory;
mod mmio;
mod mmu;
mod power;
mod registers;
mod serror;
mod shared;
mod storms;

use crate::psci;
use cellvisor_guest_support::println;

use aarch32::aarch32_el0;
use cacheable::{
    mmu_device_alias, mmu_device_normal, mmu_foreign_ram, mmu_no_syndrome, mmu_unaligned,
    mmu_walk_outside,
};
use exceptions::{bogus_stack, bogus_vbar, bogus_vbar_secondary};
use floods::{console_flood, console_flood_secondary, fault_flood, hvc_flood, wfi_storm};
use gic::{gic_distributor, gic_redistributors, gic_sgi};
use gic_cpu::{gicr_waker_storm, icc_registers};
use gicv2::{gicv2_frames, gicv2_sgir, gicv2_targets};
use hypercalls::{psci_flood, smccc};
use memory::foreign_ram;
use mmio::{mmio_no_syndrome, uart};
use power::{psci_cpu_on, psci_race_secondary, system_off_from_vcpu1, system_reset};
use probe::install_vectors;
use registers::{sysregs, timer};
use serror::serror;
use shared::{pmu_el2, ras_impdef, set_way_storm, trace_amu};
use storms::timer_storm;

/// Prefix of every attack line.
const PREFIX: &str = "test-guest: attack ";
/// CPU_ON context ids for vCPU 1 jobs: this tag in bits 63:16, the job in 15:0.
const CONTEXT_TAG: u64 = 0xA77A_C000_0000_0000;
const JOB_PSCI_RACE: u64 = 1;
const JOB_BOGUS_VBAR: u64 = 2;
const JOB_SYSTEM_OFF: u64 = 3;
const JOB_CONSOLE_FLOOD: u64 = 4;

/// The attacks `name=` may list, in the order they run.
const ATTACKS: [&str; 38] = [
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
    "timer-storm",
    "mmu-device-normal",
    "mmu-device-alias",
    "mmu-unaligned",
    "mmu-foreign-ram",
    "mmu-no-syndrome",
    "mmu-walk-outside",
    "aarch32-el0",
    "serror",
    "icc-registers",
    "gicr-waker-storm",
    "psci-flood",
    "hvc-flood",
    "fault-flood",
    "set-way-storm",
    "pmu-el2",
    "trace-amu",
    "ras-impdef",
    "console-flood",
    "system-reset",
    "bogus-vbar",
    // GICv2 only (-M virt,gic-version=2): not part of `all`.
    "gicv2-targets",
    "gicv2-sgir",
    "gicv2-frames",
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
    // `all` is a name= word (listed in ATTACKS so it is not "unknown"), never an attack to run.
    attack != "all"
        && names.split(',').any(|name| {
            name == attack || (name == "all" && !never_returns(attack) && !loops(attack))
        })
}

fn never_returns(attack: &str) -> bool {
    matches!(attack, "system-off" | "bogus-sp")
}

/// Attacks that leave a vCPU looping (or reset the cell), or need a GICv2: not part of `all`.
fn loops(attack: &str) -> bool {
    matches!(
        attack,
        "system-reset" | "bogus-vbar" | "all" | "gicv2-targets" | "gicv2-sgir" | "gicv2-frames"
    )
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
        "timer-storm" => timer_storm(),
        "mmu-device-normal" => mmu_device_normal(),
        "mmu-device-alias" => mmu_device_alias(),
        "mmu-unaligned" => mmu_unaligned(),
        "mmu-foreign-ram" => mmu_foreign_ram(),
        "mmu-no-syndrome" => mmu_no_syndrome(),
        "mmu-walk-outside" => mmu_walk_outside(),
        "aarch32-el0" => aarch32_el0(),
        "serror" => serror(),
        "icc-registers" => icc_registers(),
        "gicr-waker-storm" => gicr_waker_storm(),
        "psci-flood" => psci_flood(),
        "hvc-flood" => hvc_flood(),
        "fault-flood" => fault_flood(),
        "set-way-storm" => set_way_storm(),
        "pmu-el2" => pmu_el2(),
        "trace-amu" => trace_amu(),
        "ras-impdef" => ras_impdef(),
        "system-reset" => system_reset(),
        "bogus-vbar" => bogus_vbar(),
        "console-flood" => console_flood(),
        "gicv2-targets" => gicv2_targets(),
        "gicv2-sgir" => gicv2_sgir(),
        "gicv2-frames" => gicv2_frames(),
        _ => Err("not an attack"),
    }
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
        JOB_CONSOLE_FLOOD => console_flood_secondary(),
        JOB_SYSTEM_OFF => {
            let result = psci::hvc(psci::SYSTEM_OFF, 0, 0, 0);
            println!("{PREFIX}system-off: FAIL SYSTEM_OFF from vcpu 1 returned {result}");
            psci::park()
        }
        _ => {}
    }
}

const _: () = assert!(RAM_BASE < RESET_MARKER && RESET_MARKER < RAM_END);
