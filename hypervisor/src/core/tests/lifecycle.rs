//! Lifecycle through the run loop: SYSTEM_RESET with the sibling vCPU still in its guest on
//! another thread (from the home vCPU and from the sibling), a stop that arrives while a restart
//! is carried out, a wipe, and the quiesce of a cell's passed-through devices before its RAM is
//! scrubbed (a virtio reset, one that never takes effect, a device without a safe reset).

use core::sync::atomic::Ordering;
use std::time::Duration;

use super::{KERNEL, build, fixture, merged, only};
use crate::arch::fake::gic::KICK_SGI;
use crate::arch::fake::script::{GuestAction, GuestExit};
use crate::arch::fake::{Event, Record};
use crate::board::{Board, Device, DeviceReset};
use crate::console::manage::Command;
use crate::core::hardware::Machine;
use crate::core::lifecycle::{AfterStop, CellState, LIFECYCLE_CHUNK};
use crate::core::psci::{CPU_ON_64, SYSTEM_RESET};
use crate::core::run::{Step, step};
use crate::dev::mmio::AccessWidth;
use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::setup::partition::qemu_virt::{self, TEST_GUEST_BASE, VIRTIO_DISK, VIRTIO_NET};

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
    // CPU_ON's kick, then the stop's, then (if the slow sibling is still in its guest after
    // KICK_AGAIN_SPINS spins, which depends on the host's speed) the waiting home CPU's re-kicks.
    let kicks = fixture.cpu0.kicks();
    assert!(
        kicks.len() >= 2 && kicks.iter().all(|&cpu| cpu == 1),
        "CPU_ON's kick, then the stop's (and re-kicks), all of CPU 1: {kicks:?}"
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
fn a_lost_kick_delays_the_restart_until_the_sibling_has_left_never_past_it() {
    let mut fixture = fixture("test-guests");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let personal = fixture.cell("personal");
    let ram = personal.plan().memory[0].physical.base();
    let mut cpu1 = board.cpu(1);
    fixture.cpu0.script([
        GuestExit::hvc(CPU_ON_64, &[1, TEST_GUEST_BASE + 0x1000, 0]),
        // CPU_ON's kick arrives and is taken (vCPU 1 enters its guest with it still pending, and
        // exits for it at once), vCPU 1 is back in its guest; the stop's first kick to vCPU 1's
        // CPU is lost on the way, so vCPU 1 spins on until the home CPU kicks it again.
        GuestExit::hvc(SYSTEM_RESET, &[])
            .with(GuestAction::AwaitAcknowledged {
                cpu: 1,
                intid: KICK_SGI,
            })
            .with(GuestAction::AwaitGuestOn(1))
            .with(GuestAction::LoseKicksTo { cpu: 1, count: 1 }),
    ]);

    let cpu1 = std::thread::scope(|scope| {
        let sibling = scope.spawn(move || {
            while step(runtime, &mut cpu1) != Step::Ran {}
            cpu1
        });
        assert_eq!(step(runtime, &mut fixture.cpu0), Step::Ran);
        assert_eq!(
            step(runtime, &mut fixture.cpu0),
            Step::Lifecycle(AfterStop::Restart)
        );
        sibling.join().expect("CPU 1 ran")
    });
    drop(cpu1);

    let events = board.events();
    let position = |wanted: &Record| events.iter().position(|record| record == wanted);
    let lost = position(&Record {
        cpu: 0,
        event: Event::KickLost { to: 1 },
    })
    .expect("the stop's kick was lost");
    let sibling_left = position(&Record {
        cpu: 1,
        event: Event::Quiesced,
    })
    .expect("vCPU 1 left its guest");
    // The first chunk of the scrub.
    let scrubbed = position(&Record {
        cpu: 0,
        event: Event::MemoryZeroed {
            address: ram,
            length: LIFECYCLE_CHUNK,
        },
    })
    .expect("the home CPU scrubbed the cell's RAM");
    assert!(
        lost < sibling_left && sibling_left < scrubbed,
        "scrubbed only after the sibling left, kicked again after the lost kick"
    );
    assert_eq!(
        fixture.cpu0.kicks(),
        [1, 1],
        "CPU_ON's kick, then the second kick of the stop: {events:#?}"
    );
    assert_eq!(personal.state(), CellState::Running);
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

/// A `linux` cell's RAM (768 MiB).
const LINUX_CELL_RAM: u64 = 768 * 1024 * 1024;
/// The virtio-mmio Status registers of corporate's disk and personal's network device: their
/// windows share one page.
const DISK_STATUS: PhysAddr = PhysAddr::new(0x0A00_3E70);
const NET_STATUS: PhysAddr = PhysAddr::new(0x0A00_3C70);
/// Physical CPU 2: vCPU 0 of `linux`'s corporate, the home CPU of the disk's cell.
const CORPORATE_HOME: usize = 2;

/// Whether `event` is a device access to the page the disk and the network device share.
fn touches_device(event: &Event) -> bool {
    matches!(
        event,
        Event::DeviceRead { .. } | Event::DeviceWritten { .. }
    )
}

#[test]
fn a_wipe_resets_the_cells_own_virtio_device_before_the_scrub_and_only_that_one() {
    let fixture = fixture("linux-mmio");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let corporate = fixture.cell("corporate");
    let ram = corporate.plan().memory[0].physical.base();
    // Both devices are running (DRIVER_OK and more): only the disk is corporate's.
    board.set_device_register(DISK_STATUS, 0xF);
    board.set_device_register(NET_STATUS, 0xF);
    let mut home = board.cpu(CORPORATE_HOME);
    let outcome = runtime.manage(&Command::Wipe("corporate".into()), &mut home);
    assert_eq!(outcome.lines, ["wipe corporate: requested"]);

    assert_eq!(step(runtime, &mut home), Step::Lifecycle(AfterStop::Wipe));

    assert_eq!(corporate.state(), CellState::Off);
    assert_eq!(
        merged(home.events()),
        [
            Event::DeviceWritten {
                address: DISK_STATUS,
                width: AccessWidth::Word,
                value: 0,
            },
            Event::DeviceRead {
                address: DISK_STATUS,
                width: AccessWidth::Word,
            },
            Event::MemoryZeroed {
                address: ram,
                length: LINUX_CELL_RAM,
            },
            Event::MemoryVerified {
                address: ram,
                length: LINUX_CELL_RAM,
                nonzero: 0,
            },
        ],
        "the disk is reset, its Status reads 0, then the RAM is scrubbed and verified; \
         personal's network device on the same page is not touched"
    );
    assert_eq!(fixture.cell("personal").state(), CellState::Running);
}

#[test]
fn a_stop_and_a_restart_reset_the_device_first_too() {
    let fixture = fixture("linux-mmio");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let corporate = fixture.cell("corporate");
    let mut home = board.cpu(CORPORATE_HOME);
    for (command, after, state) in [
        (
            Command::Stop("corporate".into()),
            AfterStop::Off,
            CellState::Off,
        ),
        (
            Command::Start("corporate".into()),
            AfterStop::Start,
            CellState::Running,
        ),
        (
            Command::Restart("corporate".into()),
            AfterStop::Restart,
            CellState::Running,
        ),
    ] {
        board.set_device_register(DISK_STATUS, 0xF);
        board.clear_events();
        runtime.manage(&command, &mut home);
        assert_eq!(step(runtime, &mut home), Step::Lifecycle(after));
        assert_eq!(corporate.state(), state, "{command:?}");
        let events = home.events();
        assert_eq!(
            events.first(),
            Some(&Event::DeviceWritten {
                address: DISK_STATUS,
                width: AccessWidth::Word,
                value: 0,
            }),
            "{command:?}: the reset comes first: {events:#?}"
        );
        let reset_done = events
            .iter()
            .position(|event| matches!(event, Event::DeviceRead { .. }));
        let scrubbed = events
            .iter()
            .position(|event| matches!(event, Event::MemoryZeroed { .. }));
        assert!(reset_done.is_some(), "{command:?}: {events:#?}");
        assert!(
            scrubbed.is_none() || reset_done < scrubbed,
            "{command:?}: {events:#?}"
        );
    }
}

#[test]
fn a_device_whose_reset_never_takes_effect_leaves_the_cell_off_unscrubbed() {
    let fixture = fixture("linux-mmio");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let corporate = fixture.cell("corporate");
    let ram = corporate.plan().memory[0].physical.base();
    let secret = PhysAddr::new(ram.raw() + 0x10_0000);
    board.guest_writes_memory(secret, b"corporate secret");
    board.stick_device_register(DISK_STATUS, 0xF);
    let mut home = board.cpu(CORPORATE_HOME);
    runtime.manage(&Command::Restart("corporate".into()), &mut home);

    assert_eq!(
        step(runtime, &mut home),
        Step::Lifecycle(AfterStop::Restart)
    );

    assert_eq!(corporate.state(), CellState::Off, "left off, not restarted");
    assert_eq!(corporate.take_start(0), None, "vCPU 0 does not boot");
    let events = home.events();
    assert!(
        !events.iter().any(|event| matches!(
            event,
            Event::MemoryZeroed { .. } | Event::MemoryWritten { .. }
        )),
        "neither scrubbed nor reloaded while the device may still write: {events:#?}"
    );
    let reads = only(events, touches_device);
    assert!(
        reads.len() > 2,
        "the Status register was polled until the time limit: {reads:?}"
    );
    assert_eq!(board.read_memory(secret, 16), *b"corporate secret");

    // Once the device resets, `start` carries out what the restart could not.
    board.unstick_device_register(DISK_STATUS);
    let outcome = runtime.manage(&Command::Start("corporate".into()), &mut home);
    assert_eq!(outcome.lines, ["start corporate: requested"]);
    assert_eq!(step(runtime, &mut home), Step::Lifecycle(AfterStop::Start));
    assert_eq!(corporate.state(), CellState::Running);
    assert_eq!(board.read_memory(secret, 16), [0; 16], "scrubbed now");
}

#[test]
fn a_device_that_aborts_its_reset_leaves_the_cell_off_unscrubbed() {
    let fixture = fixture("linux-mmio");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let corporate = fixture.cell("corporate");
    board.make_device_abort(DISK_STATUS);
    let mut home = board.cpu(CORPORATE_HOME);
    runtime.manage(&Command::Restart("corporate".into()), &mut home);

    assert_eq!(
        step(runtime, &mut home),
        Step::Lifecycle(AfterStop::Restart)
    );

    assert_eq!(corporate.state(), CellState::Off);
    assert!(
        !home
            .events()
            .iter()
            .any(|event| matches!(event, Event::MemoryZeroed { .. })),
        "not scrubbed"
    );
}

/// The QEMU virt board with a disk that has no safe reset.
static DISK_WITHOUT_RESET: Board = Board {
    devices: &[
        Device {
            reset: DeviceReset::None,
            ..VIRTIO_DISK
        },
        VIRTIO_NET,
    ],
    ..qemu_virt::BOARD
};

/// [`DISK_WITHOUT_RESET`] with corporate owning both devices, the one without a reset first.
static BOTH_DEVICES_FIRST_WITHOUT_RESET: Board = Board {
    layouts: &[crate::board::Layout {
        name: "linux-mmio",
        cpu_sharing: None,
        channel: &[],
        cells: &[
            crate::board::CellConfig {
                devices: &[],
                ..qemu_virt::LINUX_MMIO_CELLS.cells[0]
            },
            crate::board::CellConfig {
                devices: &["virtio-disk", "virtio-net"],
                ..qemu_virt::LINUX_MMIO_CELLS.cells[1]
            },
        ],
    }],
    ..DISK_WITHOUT_RESET
};

#[test]
fn stopping_a_cell_resets_all_its_devices_even_after_one_without_a_reset() {
    let fixture = build(&BOTH_DEVICES_FIRST_WITHOUT_RESET, "linux-mmio", KERNEL)
        .unwrap_or_else(|(cell, error)| panic!("cell {cell}: {error}"));
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let corporate = fixture.cell("corporate");
    board.set_device_register(NET_STATUS, 0xF);
    let mut home = board.cpu(CORPORATE_HOME);
    let outcome = runtime.manage(&Command::Stop("corporate".into()), &mut home);
    assert_eq!(outcome.lines, ["stop corporate: requested"]);
    assert_eq!(step(runtime, &mut home), Step::Lifecycle(AfterStop::Off));
    assert_eq!(corporate.state(), CellState::Off);
    assert!(
        home.events().contains(&Event::DeviceWritten {
            address: NET_STATUS,
            width: AccessWidth::Word,
            value: 0,
        }),
        "the network device is reset although the disk before it has no reset: {:?}",
        home.events()
    );
}

#[test]
fn a_cell_owning_a_device_without_a_safe_reset_may_be_stopped_but_not_restarted_or_wiped() {
    let fixture = build(&DISK_WITHOUT_RESET, "linux-mmio", KERNEL)
        .unwrap_or_else(|(cell, error)| panic!("cell {cell}: {error}"));
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let corporate = fixture.cell("corporate");
    let ram = corporate.plan().memory[0].physical.base();
    let mut home = board.cpu(CORPORATE_HOME);
    for (verb, command) in [
        ("restart", Command::Restart("corporate".into())),
        ("wipe", Command::Wipe("corporate".into())),
    ] {
        let outcome = runtime.manage(&command, &mut home);
        assert_eq!(
            outcome.lines,
            [format!(
                "{verb} corporate: refused: device virtio-disk has no safe reset (the board \
                 declares none), so it could still write the cell's RAM"
            )]
        );
        assert!(outcome.kick.is_empty());
        assert_eq!(corporate.state(), CellState::Running);
    }
    // The other cell's devices reset normally.
    let outcome = runtime.manage(&Command::Restart("personal".into()), &mut board.cpu(0));
    assert_eq!(outcome.lines, ["restart personal: requested"]);

    // The guest's own SYSTEM_RESET stops the cell instead of restarting it.
    home.script([GuestExit::hvc(SYSTEM_RESET, &[])]);
    assert_eq!(step(runtime, &mut home), Step::Ran);
    assert_eq!(
        step(runtime, &mut home),
        Step::Lifecycle(AfterStop::Restart)
    );
    assert_eq!(corporate.state(), CellState::Off);
    assert!(
        !home.events().iter().any(|event| matches!(
            event,
            Event::MemoryZeroed { address, .. } if *address == ram
        )),
        "neither scrubbed nor reloaded"
    );
    assert_eq!(corporate.counters.restarts.load(Ordering::Relaxed), 0);

    // Off, it cannot be started again either; a stop is allowed.
    let outcome = runtime.manage(&Command::Start("corporate".into()), &mut home);
    assert_eq!(outcome.lines.len(), 1);
    assert!(
        outcome.lines[0].starts_with("start corporate: refused: device virtio-disk has no safe"),
        "{:?}",
        outcome.lines
    );
    let outcome = runtime.manage(&Command::Stop("corporate".into()), &mut home);
    assert_eq!(outcome.lines, ["stop corporate: requested"]);
}

#[test]
fn verify_counts_the_non_zero_bytes_of_an_off_cell_only() {
    let mut fixture = fixture("test-guests");
    let runtime = fixture.runtime;
    let outcome = runtime.manage(&Command::Verify("personal".into()), &mut fixture.cpu0);
    assert_eq!(
        outcome.lines,
        ["verify personal: refused: it is running (only an off cell's RAM stays put)"]
    );
    runtime.manage(&Command::Stop("personal".into()), &mut fixture.cpu0);
    assert_eq!(
        step(runtime, &mut fixture.cpu0),
        Step::Lifecycle(AfterStop::Off)
    );
    let loaded = KERNEL.iter().filter(|&&byte| byte != 0).count();
    let outcome = runtime.manage(&Command::Verify("personal".into()), &mut fixture.cpu0);
    assert_eq!(outcome.lines.len(), 1);
    let nonzero: u64 = outcome.lines[0]
        .strip_prefix("verify personal: ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", outcome.lines));
    assert!(
        nonzero >= loaded as u64,
        "the image is still there: {outcome:?}"
    );
    assert!(outcome.lines[0].ends_with(&format!(" of {CELL_RAM} bytes are not zero")));

    runtime.manage(&Command::Wipe("personal".into()), &mut fixture.cpu0);
    assert_eq!(
        step(runtime, &mut fixture.cpu0),
        Step::Lifecycle(AfterStop::Wipe)
    );
    let outcome = runtime.manage(&Command::Verify("personal".into()), &mut fixture.cpu0);
    assert_eq!(
        outcome.lines,
        [format!(
            "verify personal: 0 of {CELL_RAM} bytes are not zero"
        )]
    );
    let outcome = runtime.manage(&Command::Verify("nobody".into()), &mut fixture.cpu0);
    assert_eq!(outcome.lines, ["no cell \"nobody\": type cells"]);
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

#[test]
fn a_pci_cells_stream_is_blocked_before_its_function_is_reset_and_its_ram_scrubbed() {
    let fixture = fixture("linux");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let corporate = fixture.cell("corporate");
    let vmid = corporate.plan().vmid;
    assert_eq!(corporate.dma_streams(), [0x10], "00:02.0 is stream 0x10");
    let mut home = board.cpu(CORPORATE_HOME);
    runtime.manage(&Command::Restart("corporate".into()), &mut home);
    assert_eq!(
        step(runtime, &mut home),
        Step::Lifecycle(AfterStop::Restart)
    );
    assert_eq!(corporate.state(), CellState::Running);

    let events = merged(home.events());
    let first = |wanted: &dyn Fn(&Event) -> bool| events.iter().position(wanted);
    let ecam = 0x40_1000_0000 + (2 << 15);
    let blocked = first(&|event| matches!(event, Event::DmaBlocked { stream: 0x10 }))
        .expect("the stream is blocked");
    let config_write = first(&|event| {
        matches!(event, Event::DeviceWritten { address, .. }
            if (ecam..ecam + 0x1000).contains(&address.raw()))
    })
    .expect("the function is stopped through its configuration space");
    // BAR 4 (16 KiB, packed first) holds the common configuration at 0: device_status is 0x14.
    let virtio_reset = first(&|event| {
        *event
            == Event::DeviceWritten {
                address: PhysAddr::new(0x1000_0014),
                width: AccessWidth::Byte,
                value: 0,
            }
    })
    .expect("the virtio device is reset through its BAR");
    let scrubbed = first(&|event| matches!(event, Event::MemoryZeroed { .. })).expect("scrubbed");
    let loaded = events
        .iter()
        .rposition(|event| matches!(event, Event::MemoryWritten { .. }))
        .expect("reloaded");
    let allowed = first(&|event| *event == Event::DmaAllowed { stream: 0x10, vmid })
        .expect("the stream is allowed again");
    assert!(
        blocked < config_write && config_write < virtio_reset && virtio_reset < scrubbed,
        "block, then reset, then scrub: {events:#?}"
    );
    assert!(
        loaded < allowed,
        "allowed only once the new instance is loaded"
    );
    assert!(
        !events.iter().any(|event| matches!(
            event,
            Event::DmaBlocked { stream: 0x18 } | Event::DmaAllowed { stream: 0x18, .. }
        )),
        "personal's network function is not touched"
    );
}
