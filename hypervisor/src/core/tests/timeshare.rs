//! A time-shared CPU's run loop (`core::timeshare`) on the fake CPU: the `linux-shared` layout,
//! whose personal and corporate vCPU 0 both run on physical CPU 0.

use super::{Fixture, fixture, only};
use crate::arch::fake::script::GuestExit;
use crate::arch::fake::{Event, FakeSaved};
use crate::core::hardware::Machine;
use crate::core::lifecycle::{AfterStop, CellState, stop_cell};
use crate::core::psci::CPU_OFF;
use crate::core::run::Step;
use crate::core::timeshare::SharedCpu;

/// The slice timer's PPI (the EL2 physical timer of QEMU virt's DT).
fn slice_timer(fixture: &Fixture) -> u32 {
    fixture.runtime.platform.timer.hypervisor_physical
}

fn shared_cpu0(fixture: &Fixture) -> SharedCpu<FakeSaved> {
    assert!(fixture.runtime.is_time_shared(0));
    SharedCpu::new(fixture.runtime, &fixture.cpu0).expect("CPU 0 is time-shared")
}

/// The switches and starts of CPU 0, in order.
fn switches(fixture: &Fixture) -> Vec<Event> {
    only(fixture.cpu0.events(), |event| {
        matches!(
            event,
            Event::Prepared { .. } | Event::Saved | Event::Restored { .. } | Event::Quiesced
        )
    })
}

#[test]
fn a_cpu_of_linux_shared_runs_a_vcpu_of_each_cell_and_the_others_run_one() {
    let shared = fixture("linux-shared");
    let runtime = shared.runtime;
    assert_eq!(runtime.vcpus_of_cpu(0), [(0, 0), (1, 0)]);
    assert_eq!(runtime.vcpus_of_cpu(1), [(0, 1), (1, 1)]);
    assert!(runtime.vcpus_of_cpu(2).is_empty());
    assert_eq!(
        runtime.owner_of_cpu(0),
        None,
        "no one owner on a shared CPU"
    );
    assert!(!fixture("linux").runtime.is_time_shared(0));
}

#[test]
fn a_waiting_vcpu_yields_its_cpu_and_its_timer_brings_it_back_in_front() {
    let mut fixture = fixture("linux-shared");
    let mut cpu = shared_cpu0(&fixture);
    let slice = slice_timer(&fixture);
    // Personal (in front) waits with its timer armed a little ahead; corporate runs meanwhile
    // until the wake-up timer fires, then personal runs again and switches its vCPU off.
    let deadline = fixture.cpu0.counter().0 + 40_000;
    fixture.cpu0.set_timer_deadline(Some(deadline));
    fixture.cpu0.script([
        GuestExit::wfi(),
        GuestExit::interrupt(slice),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);
    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);
    assert!(
        fixture
            .cpu0
            .events()
            .contains(&Event::SliceTimer(Some(deadline))),
        "the CPU is woken at the waiting vCPU's timer deadline: {:?}",
        fixture.cpu0.events()
    );
    while fixture.cpu0.counter().0 < deadline {}
    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    assert_eq!(
        switches(&fixture),
        [
            Event::Prepared { cell: 0, vcpu: 0 },
            Event::Saved,
            Event::Prepared { cell: 1, vcpu: 0 },
            Event::Saved,
            Event::Restored { cell: 0, vcpu: 0 },
            Event::Quiesced,
        ]
    );
    let resumed = fixture.cpu0.entries().last().expect("entered").regs.elr;
    let first = fixture.cpu0.entries()[0].regs.elr;
    assert_eq!(resumed, first + 4, "personal resumes past its WFI");
    assert!(fixture.cell("personal").cpu_time.total() > 0);
    // One switch to personal (corporate saved, personal restored); corporate only started.
    assert_eq!(fixture.cell("personal").cpu_time.switches().0, 1);
    assert_eq!(fixture.cell("corporate").cpu_time.switches(), (0, None));
    assert!(fixture.cell("corporate").cpu_time.total() > 0);
}

#[test]
fn the_focus_decides_which_busy_cell_runs() {
    let mut fixture = fixture("linux-shared");
    let mut cpu = shared_cpu0(&fixture);
    let slice = slice_timer(&fixture);
    fixture.cpu0.script([
        // Personal, in front, is busy: it keeps the CPU across slices.
        GuestExit::interrupt(slice),
        GuestExit::interrupt(slice),
        // The focus moves to corporate: it runs next, from its entry point.
        GuestExit::interrupt(slice),
    ]);

    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);
    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);
    assert_eq!(switches(&fixture), [Event::Prepared { cell: 0, vcpu: 0 }]);
    fixture.runtime.set_foreground(1, &mut fixture.cpu0);
    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    assert_eq!(
        switches(&fixture),
        [
            Event::Prepared { cell: 0, vcpu: 0 },
            Event::Saved,
            Event::Prepared { cell: 1, vcpu: 0 },
        ]
    );
    assert_eq!(fixture.runtime.loaded_on(0), Some((1, 0)));
}

#[test]
fn a_restarted_cell_never_resumes_the_state_saved_for_its_previous_instance() {
    let mut fixture = fixture("linux-shared");
    let mut cpu = shared_cpu0(&fixture);
    let slice = slice_timer(&fixture);
    let personal = fixture.cell("personal");
    fixture.cpu0.script([
        GuestExit::interrupt(slice),
        // Corporate in front now; personal's state is saved.
        GuestExit::interrupt(slice),
        GuestExit::interrupt(slice),
    ]);
    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);
    fixture.runtime.set_foreground(1, &mut fixture.cpu0);
    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    // Personal restarts (CPU 0 is its home, so this CPU carries it out); then it is in front.
    stop_cell(personal, AfterStop::Restart, &mut fixture.cpu0);
    assert_eq!(
        cpu.step(fixture.runtime, &mut fixture.cpu0),
        Step::Lifecycle(AfterStop::Restart)
    );
    assert_eq!(personal.state(), CellState::Running);
    fixture.runtime.set_foreground(0, &mut fixture.cpu0);
    assert_eq!(cpu.step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    assert_eq!(
        switches(&fixture),
        [
            Event::Prepared { cell: 0, vcpu: 0 },
            Event::Saved,
            Event::Prepared { cell: 1, vcpu: 0 },
            Event::Saved,
            // A fresh start from the new instance's entry point, not the old registers.
            Event::Prepared { cell: 0, vcpu: 0 },
        ]
    );
}

#[test]
fn a_descheduled_vcpus_ppis_are_neither_sampled_nor_deactivated_for_its_cell() {
    use crate::dev::CellPhysical;
    use crate::dev::vgic::PhysicalDistributor;

    let mut fixture = fixture("linux-shared");
    let personal = fixture.cell("personal");
    let timer = fixture.runtime.platform.timer.virtual_timer;
    // CPU 1 holds corporate's vCPU 1 (not personal's): its timer PPI is corporate's line.
    fixture.board.set_line(1, timer, false);
    let holds = |vcpu: usize| vcpu == 0;
    let mut physical = CellPhysical::time_shared(&mut fixture.cpu0, &personal.plan, &holds);
    assert!(
        physical.line_asserted(timer, 1),
        "kept as asserted, not read from the other cell's line"
    );
    // Not passed to the physical GIC (whose fake would refuse deactivating an inactive PPI).
    physical.deactivate(timer, 1);
    assert!(
        !fixture
            .cpu0
            .events()
            .iter()
            .any(|event| matches!(event, Event::Deactivated { .. })),
        "nothing deactivated for a descheduled vCPU"
    );
    // Where the CPU holds the vCPU, its line is read as it is.
    let own = |_: usize| true;
    let mut physical = CellPhysical::time_shared(&mut fixture.cpu0, &personal.plan, &own);
    assert!(!physical.line_asserted(timer, 1));
}
