//! Lifecycle through the run loop: SYSTEM_RESET with the sibling vCPU still in its guest on
//! another thread (from the home vCPU and from the sibling), a stop that arrives while a restart
//! is carried out, and a wipe.

use core::sync::atomic::Ordering;
use std::time::Duration;

use super::{KERNEL, fixture, merged, only};
use crate::arch::fake::gic::KICK_SGI;
use crate::arch::fake::script::{GuestAction, GuestExit};
use crate::arch::fake::{Event, Record};
use crate::console::manage::Command;
use crate::core::hardware::Machine;
use crate::core::lifecycle::{AfterStop, CellState, LIFECYCLE_CHUNK};
use crate::core::psci::{CPU_ON_64, SYSTEM_RESET};
use crate::core::run::{Step, step};
use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::setup::partition::qemu_virt::TEST_GUEST_BASE;

/// 64 MiB, a test-guests cell's RAM.
const CELL_RAM: u64 = 64 * 1024 * 1024;

#[test]
fn system_reset_waits_for_the_sibling_then_scrubs_and_reloads() {
    let mut fixture = fixture("test-guests");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let personal = fixture.cell("personal");
    let corporate = fixture.cell("corporate");
    let ram = personal.plan().memory[0].physical.base();
    let secret = PhysAddr::new(ram.raw() + 0x10_0000);
    board.guest_writes_memory(secret, b"personal secret");
    let mut cpu1 = board.cpu(1);
    // A sibling slow to leave: a home CPU that did not wait would scrub before it left.
    cpu1.set_exit_latency(Duration::from_millis(20));
    fixture.cpu0.script([
        GuestExit::hvc(CPU_ON_64, &[1, TEST_GUEST_BASE + 0x1000, 0]),
        GuestExit::hvc(SYSTEM_RESET, &[]).with(GuestAction::AwaitGuestOn(1)),
    ]);

    let cpu1 = std::thread::scope(|scope| {
        let sibling = scope.spawn(move || {
            // Idle until CPU_ON's kick, then run vCPU 1 until the reset makes it leave.
            while step(runtime, &mut cpu1) != Step::Ran {}
            cpu1
        });
        assert_eq!(step(runtime, &mut fixture.cpu0), Step::Ran);
        assert_eq!(personal.state(), CellState::Stopping(AfterStop::Restart));
        assert_eq!(
            step(runtime, &mut fixture.cpu0),
            Step::Lifecycle(AfterStop::Restart)
        );
        sibling.join().expect("CPU 1 ran")
    });

    let events = board.events();
    let position = |wanted: &Record| events.iter().position(|record| record == wanted);
    let sibling_left = position(&Record {
        cpu: 1,
        event: Event::Quiesced,
    })
    .expect("vCPU 1 left its guest");
    let scrubbed = position(&Record {
        cpu: 0,
        event: Event::MemoryZeroed {
            address: ram,
            length: LIFECYCLE_CHUNK,
        },
    })
    .expect("the home CPU scrubbed the cell's RAM");
    assert!(
        merged(fixture.cpu0.events()).contains(&Event::MemoryZeroed {
            address: ram,
            length: CELL_RAM
        }),
        "all of it"
    );
    assert!(
        sibling_left < scrubbed,
        "scrubbed only after the sibling left"
    );
    assert_eq!(
        fixture.cpu0.kicks(),
        [1, 1],
        "CPU_ON's kick, then the stop's"
    );
    assert_eq!(cpu1.entries()[0].regs.elr, TEST_GUEST_BASE + 0x1000);

    assert_eq!(personal.state(), CellState::Running);
    assert_eq!(personal.counters.restarts.load(Ordering::Relaxed), 1);
    assert_eq!(board.read_memory(secret, 15), [0; 15], "nothing survives");
    assert_eq!(
        board.read_memory(ram, KERNEL.len() as u64),
        KERNEL,
        "reloaded"
    );
    let dtb = fixture.cpu0.entries()[0].regs.x[0];
    assert_eq!(
        personal.take_start(0),
        Some((GuestPhysAddr::new(TEST_GUEST_BASE), dtb)),
        "vCPU 0 boots again, with its device tree"
    );
    assert_eq!(personal.take_start(1), None, "vCPU 1 is off again");
    assert!(
        fixture
            .cpu0
            .events()
            .contains(&Event::GuestMemorySynced { cell: 0 })
    );

    assert_eq!(corporate.state(), CellState::Running);
    let corporate_ram = corporate.plan().memory[0].physical.base();
    assert!(
        only(fixture.cpu0.events(), |event| matches!(
            event,
            Event::MemoryZeroed { address, .. } if *address == corporate_ram
        ))
        .is_empty(),
        "the other cell is left alone"
    );
}

#[test]
fn system_reset_from_the_sibling_kicks_the_home_cpu_which_carries_it_out() {
    let fixture = fixture("test-guests");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let personal = fixture.cell("personal");
    let mut cpu0 = fixture.cpu0;
    let mut cpu1 = board.cpu(1);
    // vCPU 0 starts vCPU 1, then spins in its guest until something makes it exit.
    cpu0.script([GuestExit::hvc(CPU_ON_64, &[1, TEST_GUEST_BASE + 0x1000, 0])]);
    cpu1.script([GuestExit::hvc(SYSTEM_RESET, &[]).with(GuestAction::AwaitGuestOn(0))]);

    let (cpu0, home_steps) = std::thread::scope(|scope| {
        let home = scope.spawn(move || {
            let steps = [step(runtime, &mut cpu0), step(runtime, &mut cpu0)];
            (cpu0, steps)
        });
        // Idle until CPU_ON's kick, then run vCPU 1, which resets the cell.
        while step(runtime, &mut cpu1) != Step::Ran {}
        home.join().expect("CPU 0 ran")
    });

    assert_eq!(
        home_steps,
        [Step::Ran, Step::Lifecycle(AfterStop::Restart)],
        "the home CPU left its guest, then carried out the restart"
    );
    assert_eq!(cpu1.kicks(), [0], "the requester kicks the home CPU");
    let home_events = cpu0.events();
    let acknowledged = home_events
        .iter()
        .position(|event| *event == Event::Acknowledged { intid: KICK_SGI });
    let left = home_events
        .iter()
        .position(|event| *event == Event::Quiesced);
    let scrubbed = home_events
        .iter()
        .position(|event| matches!(event, Event::MemoryZeroed { .. }));
    assert!(acknowledged.is_some() && acknowledged < left && left < scrubbed);
    assert!(
        only(cpu1.events(), |event| matches!(
            event,
            Event::MemoryZeroed { .. }
        ))
        .is_empty(),
        "only the home CPU scrubs"
    );
    assert_eq!(personal.state(), CellState::Running);
    assert_eq!(personal.counters.restarts.load(Ordering::Relaxed), 1);
}

#[test]
fn stop_requested_during_a_restart_is_carried_out_next() {
    let mut fixture = fixture("test-guests");
    let runtime = fixture.runtime;
    let personal = fixture.cell("personal");
    fixture.cpu0.script([GuestExit::hvc(SYSTEM_RESET, &[])]);
    assert_eq!(step(runtime, &mut fixture.cpu0), Step::Ran);
    // `stop personal` typed at the console, handled on CPU 2 while CPU 0 scrubs for the restart.
    let mut console_cpu = fixture.board.cpu(2);
    fixture.cpu0.on_scrub(move || {
        let outcome = runtime.manage(&Command::Stop("personal".into()), &mut console_cpu);
        assert_eq!(outcome.lines, ["stop personal: requested"]);
    });

    assert_eq!(
        step(runtime, &mut fixture.cpu0),
        Step::Lifecycle(AfterStop::Restart)
    );
    assert_eq!(personal.counters.restarts.load(Ordering::Relaxed), 1);
    assert_eq!(
        personal.state(),
        CellState::Stopping(AfterStop::Off),
        "the stop is still pending, not lost to the restart"
    );

    assert_eq!(
        step(runtime, &mut fixture.cpu0),
        Step::Lifecycle(AfterStop::Off)
    );
    assert_eq!(personal.state(), CellState::Off);
    assert_eq!(personal.take_start(0), None, "an off cell does not boot");
    assert_eq!(fixture.cell("corporate").state(), CellState::Running);
}

#[test]
fn wipe_scrubs_and_verifies_every_byte_of_the_cell() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    let ram = personal.plan().memory[0].physical.base();
    assert!(fixture.board.nonzero_bytes(ram, CELL_RAM) > 0, "loaded");
    let outcome = fixture
        .runtime
        .manage(&Command::Wipe("personal".into()), &mut fixture.cpu0);
    assert_eq!(outcome.kick, [0, 1]);

    assert_eq!(
        step(fixture.runtime, &mut fixture.cpu0),
        Step::Lifecycle(AfterStop::Wipe)
    );

    assert_eq!(personal.state(), CellState::Off);
    assert_eq!(fixture.board.nonzero_bytes(ram, CELL_RAM), 0);
    assert_eq!(
        merged(fixture.cpu0.events()),
        [
            Event::MemoryZeroed {
                address: ram,
                length: CELL_RAM
            },
            Event::MemoryVerified {
                address: ram,
                length: CELL_RAM,
                nonzero: 0
            },
        ]
    );
}

#[test]
fn a_wipe_typed_while_the_home_cpu_scrubs_for_a_restart_is_read_at_once_and_wins() {
    // Personal resets itself; the console UART's interrupt goes to its home CPU 0, which is busy
    // scrubbing for the restart when `wipe personal` is typed.
    let mut fixture = fixture("test-guests");
    let runtime = fixture.runtime;
    let personal = fixture.cell("personal");
    let ram = personal.plan().memory[0].physical.base();
    let console_intid = runtime.platform.console.intid;
    super::console();
    fixture.cpu0.spi_set_enabled(console_intid, true);
    fixture.cpu0.spi_route(console_intid, 0);
    fixture.cpu0.script([GuestExit::hvc(SYSTEM_RESET, &[])]);
    assert_eq!(step(runtime, &mut fixture.cpu0), Step::Ran);
    fixture.cpu0.type_on_console(b"\x01mwipe personal\r");
    let board = fixture.board.clone();
    fixture.cpu0.on_scrub(move || board.raise(0, console_intid));
    fixture.board.clear_events();

    assert_eq!(
        step(runtime, &mut fixture.cpu0),
        Step::Lifecycle(AfterStop::Restart)
    );
    let events = fixture.cpu0.events();
    let zeroed: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, event)| matches!(event, Event::MemoryZeroed { .. }))
        .map(|(index, _)| index)
        .collect();
    let read = events
        .iter()
        .position(|event| *event == Event::ConsoleReceived { bytes: 16 })
        .expect("the typed line was read");
    assert!(
        zeroed.first() < Some(&read) && Some(&read) < zeroed.get(1),
        "read right after the first chunk of the scrub, not after all of it"
    );
    assert_eq!(
        personal.state(),
        CellState::Stopping(AfterStop::Wipe),
        "the wipe replaced the restart, which did not finish"
    );
    assert!(
        super::console().contains("wipe personal: requested"),
        "the prompt answered"
    );

    assert_eq!(
        step(runtime, &mut fixture.cpu0),
        Step::Lifecycle(AfterStop::Wipe)
    );
    assert_eq!(personal.state(), CellState::Off);
    assert_eq!(fixture.board.nonzero_bytes(ram, CELL_RAM), 0);
    assert_eq!(personal.take_start(0), None, "a wiped cell stays off");
    assert_eq!(fixture.cell("corporate").state(), CellState::Running);
}
