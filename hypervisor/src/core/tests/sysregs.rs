//! Trapped system registers and system instructions through the run loop: set/way cache
//! maintenance turned into a clean of the cell's own RAM, a bounded piece per exit; the RAS error
//! records, ACTLR_EL1 and the activity monitors read as zero; IMPLEMENTATION DEFINED registers
//! and the trace filter answered with an undefined instruction.

use core::sync::atomic::Ordering;

use super::{fixture, only};
use crate::arch::fake::Event;
use crate::arch::fake::script::{GuestAction, GuestExit};
use crate::core::psci::CPU_OFF;
use crate::core::run::{Step, step};
use crate::core::set_way::CHUNK;
use crate::mem::addr::PhysAddr;
use crate::setup::partition::qemu_virt::TEST_GUEST_BASE;

/// DC CISW, DC ISW, DC CSW (op0 1, op1 0, c7).
const DC_CISW: (u8, u8, u8, u8, u8) = (1, 0, 7, 14, 2);
const DC_ISW: (u8, u8, u8, u8, u8) = (1, 0, 7, 6, 2);
const DC_CSW: (u8, u8, u8, u8, u8) = (1, 0, 7, 10, 2);
const ERRIDR_EL1: (u8, u8, u8, u8, u8) = (3, 0, 5, 3, 0);
const ERRSELR_EL1: (u8, u8, u8, u8, u8) = (3, 0, 5, 3, 1);
const ERXSTATUS_EL1: (u8, u8, u8, u8, u8) = (3, 0, 5, 4, 2);
const ACTLR_EL1: (u8, u8, u8, u8, u8) = (3, 0, 1, 0, 1);
const AMEVCNTR00_EL0: (u8, u8, u8, u8, u8) = (3, 3, 13, 4, 0);
/// Cortex-A57's CPUACTLR_EL1, which QEMU's `max` CPU implements.
const CPUACTLR_EL1: (u8, u8, u8, u8, u8) = (3, 1, 15, 2, 0);
/// TRFCR_EL1, the trace filter control.
const TRFCR_EL1: (u8, u8, u8, u8, u8) = (3, 0, 1, 2, 1);
/// Set 1 (64-byte lines), way 0, level 1: not the end of a walk.
const SET_1: u64 = 1 << 6;

fn cleaned(events: Vec<Event>) -> Vec<(PhysAddr, u64)> {
    only(events, |event| matches!(event, Event::MemoryCleaned { .. }))
        .into_iter()
        .filter_map(|event| match event {
            Event::MemoryCleaned { address, length } => Some((address, length)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_set_way_walk_cleans_the_cells_own_ram_a_bounded_piece_per_exit() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    let ram = personal.plan().memory[0].physical;
    let pieces = ram.size().div_ceil(CHUNK) as usize;
    assert!(pieces > 1, "the cell's RAM takes several pieces");
    // Two operations inside the walk, then the one naming set 0 / way 0 (the walk's end),
    // executed again until its clean is done, then two more that start nothing.
    let mut script = vec![
        GuestExit::msr(DC_CISW, 1, SET_1),
        GuestExit::msr(DC_ISW, 2, SET_1 | (1 << 31)),
    ];
    script.extend((0..pieces).map(|_| GuestExit::msr(DC_CISW, 3, 0)));
    script.push(GuestExit::msr(DC_CSW, 4, SET_1));
    script.push(GuestExit::hvc(CPU_OFF, &[]));
    fixture.cpu0.script(script);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let pcs: Vec<u64> = fixture
        .cpu0
        .entries()
        .iter()
        .map(|entry| entry.regs.elr - TEST_GUEST_BASE)
        .collect();
    let mut expected = vec![0, 4];
    // The set 0 / way 0 operation at offset 8 is executed once per piece, then completes.
    expected.extend(core::iter::repeat_n(8, pieces));
    expected.extend([12, 16]);
    assert_eq!(
        pcs, expected,
        "the PC advances only past a completed operation"
    );
    let cleaned = cleaned(fixture.cpu0.events());
    assert_eq!(cleaned.len(), pieces, "one piece per exit");
    let mut next = ram.base();
    for &(address, length) in &cleaned {
        assert_eq!(address, next, "pieces in order, without gaps");
        assert!(length <= CHUNK, "each piece is bounded");
        next = PhysAddr::new(address.raw() + length);
    }
    assert_eq!(
        next.raw(),
        ram.base().raw() + ram.size(),
        "all of the cell's own RAM, nothing else"
    );
    assert!(fixture.cpu0.injections().is_empty());
    assert_eq!(
        personal.counters.sysreg.load(Ordering::Relaxed),
        pieces as u64 + 3
    );
}

#[test]
fn a_set_way_storm_costs_at_most_one_piece_per_exit() {
    let mut fixture = fixture("test-guests");
    // Every operation names set 0 / way 0: each one is a whole clean, a piece per exit.
    fixture
        .cpu0
        .script((0..100).map(|n| GuestExit::msr(DC_CISW, 1, (n % 7) << 1)));
    fixture.cpu0.script([GuestExit::hvc(CPU_OFF, &[])]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let cleaned = cleaned(fixture.cpu0.events());
    assert_eq!(
        cleaned.len(),
        100,
        "exactly one piece per trapped operation"
    );
    assert!(cleaned.iter().all(|&(_, length)| length <= CHUNK));
    let corporate = fixture.cell("corporate").plan().memory[0].physical;
    assert!(
        cleaned
            .iter()
            .all(|&(address, _)| !corporate.contains(address)),
        "never the other cell's RAM"
    );
}

#[test]
fn error_records_actlr_and_activity_monitors_read_as_zero_and_ignore_writes() {
    let mut fixture = fixture("test-guests");
    let marker = |n| GuestAction::SetRegister {
        n,
        value: 0x7e57_7e57,
    };
    fixture.cpu0.script([
        GuestExit::mrs(ERRIDR_EL1, 5).with(marker(5)),
        GuestExit::msr(ERRSELR_EL1, 6, 1),
        GuestExit::mrs(ERXSTATUS_EL1, 7).with(marker(7)),
        GuestExit::msr(ACTLR_EL1, 8, u64::MAX),
        GuestExit::mrs(ACTLR_EL1, 9).with(marker(9)),
        GuestExit::mrs(AMEVCNTR00_EL0, 10).with(marker(10)),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let entries = fixture.cpu0.entries();
    assert_eq!(entries.len(), 7);
    for (n, entry) in entries.iter().enumerate() {
        assert_eq!(entry.regs.elr, TEST_GUEST_BASE + 4 * n as u64, "entry {n}");
    }
    assert_eq!(entries[1].regs.x[5], 0, "ERRIDR_EL1: no error record");
    assert_eq!(entries[3].regs.x[7], 0, "ERXSTATUS_EL1");
    assert_eq!(entries[5].regs.x[9], 0, "ACTLR_EL1 ignored the write");
    assert_eq!(entries[6].regs.x[10], 0, "AMEVCNTR00_EL0");
    assert_eq!(
        entries[6].regs.x[8],
        u64::MAX,
        "a write leaves its register"
    );
    assert!(fixture.cpu0.injections().is_empty());
    assert_eq!(
        fixture
            .cell("personal")
            .counters
            .sysreg
            .load(Ordering::Relaxed),
        6
    );
}

#[test]
fn implementation_defined_registers_and_the_trace_filter_are_undefined() {
    let mut fixture = fixture("test-guests");
    let vbar = TEST_GUEST_BASE + 0x800;
    fixture.cpu0.script([
        GuestExit::mrs(CPUACTLR_EL1, 1)
            .with(GuestAction::SetVbar(vbar))
            .with(GuestAction::RunTo(TEST_GUEST_BASE)),
        GuestExit::msr(TRFCR_EL1, 2, u64::MAX).with(GuestAction::RunTo(TEST_GUEST_BASE + 4)),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let injections = fixture.cpu0.injections();
    assert_eq!(injections.len(), 2);
    for (injection, pc) in injections.iter().zip([0, 4]) {
        // EC 0 (unknown reason), IL: an undefined instruction at the access, taken at the
        // guest's own vector.
        assert_eq!(injection.esr_el1, 1 << 25);
        assert_eq!(injection.elr_el1, TEST_GUEST_BASE + pc);
        assert_eq!(injection.new_pc, vbar + 0x200);
    }
    assert_eq!(
        fixture
            .cell("personal")
            .counters
            .injected_faults
            .load(Ordering::Relaxed),
        2
    );
}

#[test]
fn a_trapped_pmcr_write_keeps_the_cycle_counter_off_at_el2() {
    let mut fixture = fixture("test-guests");
    // PMCR_EL0 (trapped where the core has HPMD but not HCCD): E, C, LC written, DP clear.
    let pmcr = (3, 3, 9, 12, 0);
    fixture.cpu0.script([
        GuestExit::msr(pmcr, 1, 0b100_0101),
        GuestExit::mrs(pmcr, 2),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let dp = crate::core::sysreg::PMCR_EL0_DP;
    assert_eq!(
        fixture.cpu0.el1().pmcr,
        0b100_0101 | dp,
        "the write reached the PMU with DP forced on"
    );
    assert_eq!(fixture.cpu0.entries()[2].regs.x[2], 0b100_0101 | dp);
    assert!(fixture.cpu0.injections().is_empty());
}
