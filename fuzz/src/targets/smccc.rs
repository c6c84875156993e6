//! `smccc::dispatch` and `psci::PsciCell::handle` driven by random call sequences on two cells.
#![forbid(unsafe_code)]

use cellvisor::core::psci::{self, PsciAction, PsciCell, VcpuPower};
use cellvisor::core::smccc::{self, Caller, Dispatch, PsciError, SmcccCall, SmcccResult};
use cellvisor::mem::addr::GuestPhysAddr;

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct SmcccPsci;

/// Guest RAM of every cell: `RAM_BASE..RAM_BASE + RAM_SIZE` (entry points must lie inside).
const RAM_BASE: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 0x1000_0000;
const BOOT_ENTRY: GuestPhysAddr = GuestPhysAddr::new(RAM_BASE + 0x8_0000);

/// One step of the sequence.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    /// vCPU `vcpu` of cell `cell` issues an SMCCC call with X0..X6 = `registers`.
    Call {
        /// The calling cell (0 or 1).
        cell: usize,
        /// The calling vCPU (sometimes outside the cell).
        vcpu: usize,
        /// X0..X6.
        registers: [u64; 7],
    },
    /// The physical CPU of `vcpu` notices it was started (`PsciCell::vcpu_started`).
    Started {
        /// The cell.
        cell: usize,
        /// The vCPU.
        vcpu: usize,
    },
}

/// Two cells and what they do.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// vCPUs of each cell.
    pub vcpu_counts: [usize; 2],
    /// The calls, in order.
    pub steps: Vec<Step>,
}

const PSCI_IDS: &[u32] = &[
    psci::PSCI_VERSION,
    psci::CPU_SUSPEND,
    psci::CPU_SUSPEND_64,
    psci::CPU_OFF,
    psci::CPU_ON,
    psci::CPU_ON_64,
    psci::CPU_ON_64,
    psci::CPU_ON,
    psci::AFFINITY_INFO,
    psci::AFFINITY_INFO_64,
    psci::MIGRATE_INFO_TYPE,
    psci::SYSTEM_OFF,
    psci::SYSTEM_RESET,
    psci::PSCI_FEATURES,
    psci::SYSTEM_RESET2,
    psci::SYSTEM_RESET2_64,
];

const OTHER_KNOWN_IDS: &[u32] = &[
    smccc::SMCCC_VERSION,
    smccc::SMCCC_ARCH_FEATURES,
    smccc::SMCCC_ARCH_SOC_ID,
    smccc::SMCCC_ARCH_WORKAROUND_1,
    smccc::SMCCC_ARCH_WORKAROUND_2,
    smccc::SMCCC_ARCH_WORKAROUND_3,
    smccc::CELLVISOR_VERSION,
    smccc::CELLVISOR_VERSION_32,
    smccc::CELLVISOR_CELL_INFO,
    smccc::CELLVISOR_CELL_INFO_32,
];

fn function_id(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0..=3 => rng.pick(PSCI_IDS),
        4 => rng.pick(OTHER_KNOWN_IDS),
        // Owner 4 (PSCI), any function number, either convention.
        5 => 0x8400_0000 | (rng.next_u32() & 0x4000_00ff),
        // Arch, vendor-hypervisor and other owners' fast calls.
        6 => 0x8000_0000 | (rng.below(64) as u32) << 24 | (rng.next_u32() & 0x4000_ffff),
        // A known ID with one random bit flipped.
        7 => rng.pick(PSCI_IDS) ^ (1 << rng.below(32)),
        _ => rng.next_u32(),
    }
}

/// An MPIDR argument: mostly a small Aff0, sometimes with other affinity or RES bits.
fn mpidr(rng: &mut Rng) -> u64 {
    let aff0 = rng.below(12);
    match rng.below(6) {
        0 => rng.next_u64(),
        1 => aff0 | (1 << rng.below(40)),
        2 => aff0 | 0x8000_0000 | (rng.next_u64() & 0xffff_ffff_0000_0000),
        _ => aff0,
    }
}

/// An entry point: inside RAM, just outside it, unaligned or anywhere.
fn entry(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => RAM_BASE + rng.below(RAM_SIZE / 4) * 4,
        1 => RAM_BASE + RAM_SIZE - 4 * rng.range(0, 2),
        2 => RAM_BASE - 4 * rng.range(0, 2),
        3 => RAM_BASE + rng.below(RAM_SIZE),
        4 => (RAM_BASE + rng.below(RAM_SIZE)) | 1 << rng.range(32, 63),
        _ => rng.interesting_u64(),
    }
}

fn in_ram(ipa: GuestPhysAddr) -> bool {
    (RAM_BASE..RAM_BASE + RAM_SIZE).contains(&ipa.raw())
}

fn states(cell: &PsciCell) -> Vec<VcpuPower> {
    (0..cell.vcpu_count())
        .filter_map(|vcpu| cell.state(vcpu))
        .collect()
}

impl FuzzTarget for SmcccPsci {
    type Input = Scenario;
    const NAME: &'static str = "smccc-psci";
    const SUMMARY: &'static str = "SMCCC dispatch + PSCI model: CPU_ON starts at most one in-cell vCPU at an in-RAM entry, unknown IDs give -1";

    fn generate(rng: &mut Rng) -> Scenario {
        let vcpu_counts = [rng.range(1, 8) as usize, rng.range(1, 4) as usize];
        let steps = (0..rng.range(1, 40))
            .map(|_| {
                let cell = rng.index(2);
                let vcpu = if rng.chance(1, 10) {
                    rng.index(20)
                } else {
                    rng.index(vcpu_counts[cell])
                };
                if rng.chance(1, 4) {
                    return Step::Started { cell, vcpu };
                }
                let id = function_id(rng);
                let high = if rng.chance(1, 8) {
                    rng.next_u64() << 32
                } else {
                    0
                };
                let mut registers = [
                    u64::from(id) | high,
                    mpidr(rng),
                    entry(rng),
                    rng.next_u64(),
                    0,
                    0,
                    0,
                ];
                for register in registers.iter_mut().skip(4) {
                    *register = rng.interesting_u64();
                }
                if rng.chance(1, 8) {
                    registers[1] = u64::from(rng.pick(PSCI_IDS));
                }
                Step::Call {
                    cell,
                    vcpu,
                    registers,
                }
            })
            .collect();
        Scenario { vcpu_counts, steps }
    }

    fn check(scenario: &Scenario) -> Result<(), String> {
        let mut cells: Vec<PsciCell> = scenario
            .vcpu_counts
            .iter()
            .map(|&count| PsciCell::new(count, BOOT_ENTRY, 0x4800_0000))
            .collect();
        // Entry points that CPU_ON accepted and not yet started, per cell and vCPU.
        let mut accepted: Vec<Vec<Option<(GuestPhysAddr, u64)>>> = scenario
            .vcpu_counts
            .iter()
            .map(|&count| {
                let mut entries = vec![None; count];
                entries[0] = Some((BOOT_ENTRY, 0x4800_0000));
                entries
            })
            .collect();
        for (index, step) in scenario.steps.iter().enumerate() {
            let step_result = match *step {
                Step::Started { cell, vcpu } => {
                    let before = cells[cell].state(vcpu);
                    let started = cells[cell].vcpu_started(vcpu);
                    let expected = accepted[cell].get_mut(vcpu).and_then(Option::take);
                    ensure!(
                        started == expected,
                        "step {index}: vCPU {vcpu} of cell {cell} started {started:?}, expected {expected:?} (was {before:?})"
                    );
                    if started.is_some() {
                        ensure!(
                            cells[cell].state(vcpu) == Some(VcpuPower::On),
                            "step {index}: started vCPU is not On"
                        );
                    }
                    Ok(())
                }
                Step::Call {
                    cell,
                    vcpu,
                    registers,
                } => call(
                    &mut cells,
                    &mut accepted,
                    cell,
                    vcpu,
                    registers,
                    scenario.vcpu_counts[cell],
                ),
            };
            step_result.map_err(|reason| format!("step {index}: {reason}"))?;
        }
        Ok(())
    }
}

fn call(
    cells: &mut [PsciCell],
    accepted: &mut [Vec<Option<(GuestPhysAddr, u64)>>],
    cell: usize,
    vcpu: usize,
    registers: [u64; 7],
    vcpu_count: usize,
) -> Result<(), String> {
    let call = SmcccCall::from_registers(registers);
    let id = call.function_id.0;
    let caller = Caller {
        cell,
        vcpu_count,
        vcpu,
    };
    let other = 1 - cell;
    let other_before = states(&cells[other]);
    match smccc::dispatch(&call, &caller) {
        Dispatch::Done(result) => {
            ensure!(
                id & 0xbfff_ffe0 != 0x8400_0000,
                "PSCI function {id:#x} was not forwarded to PSCI"
            );
            if !OTHER_KNOWN_IDS.contains(&id) {
                ensure!(
                    result == SmcccResult::not_supported(),
                    "unknown ID {id:#x} gave {result:?}"
                );
            }
        }
        Dispatch::Psci => {
            ensure!(id & 0xbfff_ffe0 == 0x8400_0000, "{id:#x} forwarded to PSCI");
            let before = states(&cells[cell]);
            let outcome = cells[cell].handle(vcpu, &call, &in_ram);
            let after = states(&cells[cell]);
            let changed: Vec<usize> = (0..before.len())
                .filter(|&n| before[n] != after[n])
                .collect();
            match outcome.action {
                PsciAction::StartVcpu {
                    vcpu: target,
                    entry,
                    context,
                } => {
                    ensure!(
                        matches!(id, psci::CPU_ON | psci::CPU_ON_64),
                        "{id:#x} started a vCPU"
                    );
                    ensure!(
                        outcome.result == smccc::SUCCESS,
                        "StartVcpu with result {:#x}",
                        outcome.result
                    );
                    ensure!(
                        target < vcpu_count,
                        "CPU_ON started vCPU {target} of {vcpu_count}"
                    );
                    ensure!(
                        in_ram(entry) && entry.is_aligned(4),
                        "CPU_ON accepted entry {entry:?}"
                    );
                    ensure!(
                        before[target] == VcpuPower::Off,
                        "CPU_ON started a vCPU that was {:?}",
                        before[target]
                    );
                    ensure!(changed == [target], "CPU_ON changed vCPUs {changed:?}");
                    ensure!(
                        after[target] == VcpuPower::OnPending { entry, context },
                        "CPU_ON left {:?}",
                        after[target]
                    );
                    accepted[cell][target] = Some((entry, context));
                }
                PsciAction::StopCaller => {
                    ensure!(id == psci::CPU_OFF, "{id:#x} stopped the caller");
                    ensure!(
                        vcpu < vcpu_count && changed.iter().all(|&n| n == vcpu),
                        "CPU_OFF changed {changed:?}"
                    );
                    ensure!(
                        after[vcpu] == VcpuPower::Off,
                        "CPU_OFF left the caller {:?}",
                        after[vcpu]
                    );
                    accepted[cell][vcpu] = None;
                }
                PsciAction::CellOff | PsciAction::CellReset => {
                    ensure!(
                        matches!(
                            id,
                            psci::SYSTEM_OFF
                                | psci::SYSTEM_RESET
                                | psci::SYSTEM_RESET2
                                | psci::SYSTEM_RESET2_64
                        ),
                        "{id:#x} gave {:?}",
                        outcome.action
                    );
                    ensure!(
                        changed.is_empty(),
                        "{:?} changed vCPUs {changed:?} itself",
                        outcome.action
                    );
                    // The glue resets only the caller's cell.
                    cells[cell].reset(BOOT_ENTRY, 0x4800_0000);
                    accepted[cell].fill(None);
                    accepted[cell][0] = Some((BOOT_ENTRY, 0x4800_0000));
                }
                PsciAction::Return => {
                    ensure!(
                        changed.is_empty(),
                        "{id:#x} returned but changed vCPUs {changed:?}"
                    );
                    if !PSCI_IDS.contains(&id) {
                        ensure!(
                            outcome.result == PsciError::NotSupported.to_register(),
                            "unknown PSCI ID {id:#x} gave {:#x}",
                            outcome.result
                        );
                    }
                }
            }
        }
    }
    ensure!(
        states(&cells[other]) == other_before,
        "a call from cell {cell} changed cell {other}"
    );
    Ok(())
}
