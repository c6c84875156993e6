//! HVC exits through the run loop: PSCI CPU_ON starting a sibling vCPU on its own physical CPU.

use core::sync::atomic::Ordering;

use super::{Fixture, fixture};
use crate::arch::fake::gic::KICK_SGI;
use crate::arch::fake::script::GuestExit;
use crate::arch::fake::{Deactivator, Event};
use crate::core::hardware::SPSR_EL1H_MASKED;
use crate::core::psci::{CPU_OFF, CPU_ON_64, VcpuPower};
use crate::core::run::{Step, step};
use crate::core::smccc::SUCCESS;
use crate::mem::addr::GuestPhysAddr;
use crate::setup::partition::qemu_virt::TEST_GUEST_BASE;

/// Where vCPU 1 is started, and its context (x0).
const SECONDARY_ENTRY: u64 = TEST_GUEST_BASE + 0x1000;
const SECONDARY_CONTEXT: u64 = 0xc0ff_ee00;

/// vCPU 0 of `personal` starts vCPU 1 (virtual MPIDR 1) and then turns itself off.
fn cpu_on_then_off() -> [GuestExit; 2] {
    [
        GuestExit::hvc(CPU_ON_64, &[1, SECONDARY_ENTRY, SECONDARY_CONTEXT]),
        GuestExit::hvc(CPU_OFF, &[]),
    ]
}

#[test]
fn cpu_on_from_vcpu0_starts_vcpu1_and_kicks_its_cpu() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    let Fixture {
        runtime,
        board,
        cpu0,
        ..
    } = &mut fixture;
    cpu0.script(cpu_on_then_off());

    assert_eq!(step(runtime, cpu0), Step::Ran);

    let entries = cpu0.entries();
    assert_eq!(
        entries.len(),
        2,
        "boot, then back from CPU_ON; CPU_OFF leaves"
    );
    assert_eq!(
        entries[0].regs.elr, TEST_GUEST_BASE,
        "vCPU 0 boots at the image"
    );
    assert_eq!(entries[1].regs.x[0], SUCCESS, "CPU_ON's result in x0");
    assert_eq!(
        entries[1].regs.elr,
        TEST_GUEST_BASE + 4,
        "resumes past the HVC"
    );
    assert_eq!(
        cpu0.kicks(),
        [1],
        "vCPU 1's physical CPU, and only it, is kicked"
    );
    assert_eq!(
        board.highest_pending(1),
        Some(KICK_SGI),
        "the kick is pending there"
    );
    assert_eq!(personal.counters.calls.load(Ordering::Relaxed), 2);
    assert_eq!(
        personal.psci.lock().state(1),
        Some(VcpuPower::OnPending {
            entry: GuestPhysAddr::new(SECONDARY_ENTRY),
            context: SECONDARY_CONTEXT
        })
    );
    assert_eq!(
        personal.take_start(1),
        Some((GuestPhysAddr::new(SECONDARY_ENTRY), SECONDARY_CONTEXT))
    );
    assert_eq!(personal.take_start(1), None, "a start is taken once");
    assert_eq!(personal.take_start(0), None, "vCPU 0 is off after CPU_OFF");
    assert_eq!(cpu0.events().last(), Some(&Event::Quiesced));
}

#[test]
fn started_sibling_takes_the_kick_and_enters_at_its_entry_with_its_context() {
    let mut fixture = fixture("test-guests");
    let mut cpu1 = fixture.board.cpu(1);
    fixture.cpu0.script(cpu_on_then_off());
    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    cpu1.script([GuestExit::hvc(CPU_OFF, &[])]);
    assert_eq!(step(fixture.runtime, &mut cpu1), Step::Ran);

    let entries = cpu1.entries();
    assert_eq!(
        entries.len(),
        2,
        "the pending kick exits at once, then CPU_OFF"
    );
    for entry in entries {
        assert_eq!(entry.regs.elr, SECONDARY_ENTRY);
        assert_eq!(entry.regs.x[0], SECONDARY_CONTEXT);
        assert_eq!(entry.regs.spsr, SPSR_EL1H_MASKED);
    }
    assert_eq!(
        cpu1.events(),
        [
            Event::Prepared { cell: 0, vcpu: 1 },
            Event::Entered,
            Event::Acknowledged { intid: KICK_SGI },
            Event::Deactivated {
                intid: KICK_SGI,
                cpu: 1,
                by: Deactivator::Hypervisor
            },
            Event::Entered,
            Event::Quiesced,
        ]
    );
}
