//! IRQ and WFI exits through the run loop: a passthrough SPI forwarded hardware-linked, again and
//! again to a vCPU that completes each in its list register without an exit (as a spinning guest
//! does), and to a new vCPU after the guest re-routes it away from a spinning one; SGIs to a
//! spinning sibling; a WFI that idles the CPU until an interrupt arrives; the guest timers'
//! level-sensitive PPIs that stop being pending when the timer's condition ends; and a physical
//! SError given back to its guest.

use core::sync::atomic::Ordering;

use super::{Fixture, fixture, only};
use crate::arch::fake::Entry;
use crate::arch::fake::lists::{EntryState, ListEntry};
use crate::arch::fake::script::{GuestAction, GuestExit};
use crate::arch::fake::{Deactivator, Event};
use crate::core::psci::{CPU_OFF, CPU_ON_64, PSCI_VERSION};
use crate::core::run::{Step, step};
use crate::core::runtime::Runtime;
use crate::dev::gic::REDISTRIBUTOR_STRIDE;
use crate::dev::gic::SGI_FRAME_OFFSET;
use crate::dev::mmio::AccessWidth;
use crate::setup::partition::qemu_virt::{TEST_GUEST_BASE, VIRTIO_DISK, VIRTIO_NET};

/// `GICD_CTLR.EnableGrp1A`.
const GICD_CTLR_ENABLE_GRP1A: u64 = 1 << 1;
/// Offset of `GICD_IROUTER<n>` for INTID 0 in the distributor frame (8 bytes per INTID).
const GICD_IROUTER: u64 = 0x6000;
/// Offset of `GICR_ISENABLER0` in a redistributor (its SGI frame is the second 64 KiB).
const GICR_ISENABLER0: u64 = 0x1_0100;
/// How often the tests below raise an interrupt the guest then completes without an exit.
const ROUNDS: u32 = 64;

/// The guest's stores that enable the distributor and SPI `spi` at it, configured edge-triggered
/// as QEMU's device tree describes a virtio-mmio device's interrupt (`GICD_ICFGR`).
fn enable_spi(runtime: &Runtime, spi: u32) -> [GuestExit; 3] {
    let gicd = runtime.platform.gic.distributor.base;
    let icfgr = gicd + 0xC00 + 4 * u64::from(spi / 16);
    let isenabler = gicd + 0x100 + 4 * u64::from(spi / 32);
    [
        GuestExit::store(gicd, AccessWidth::Word, 1, GICD_CTLR_ENABLE_GRP1A),
        GuestExit::store(icfgr, AccessWidth::Word, 1, 0b10 << (2 * (spi % 16))),
        GuestExit::store(isenabler, AccessWidth::Word, 1, 1 << (spi % 32)),
    ]
}

/// The guest's store that routes SPI `spi` to its vCPU `vcpu` (`GICD_IROUTER`, Aff0 = `vcpu`).
fn route_spi(runtime: &Runtime, spi: u32, vcpu: u64) -> GuestExit {
    let irouter = runtime.platform.gic.distributor.base + GICD_IROUTER + 8 * u64::from(spi);
    GuestExit::store(irouter, AccessWidth::Doubleword, 2, vcpu)
}

/// The list registers of `entry` hold `intid` pending, hardware-linked to the same physical INTID.
fn lists_hold_linked(entry: &Entry, intid: u32) -> bool {
    entry.lists.iter().any(|list| {
        list.virtual_intid == intid
            && list.physical_intid == Some(intid)
            && list.state == EntryState::Pending
    })
}

#[test]
fn passthrough_spi_is_acknowledged_at_el2_and_injected_hardware_linked() {
    let mut fixture = fixture("linux-mmio");
    let personal = fixture.cell("personal");
    let spi = VIRTIO_NET.interrupts[0];
    assert_eq!(personal.plan().config.devices, ["virtio-net"]);
    let ram = personal.plan().memory[0].physical.base().raw();
    let gicd = fixture.runtime.platform.gic.distributor.base;
    let isenabler = gicd + 0x100 + 4 * u64::from(spi / 32);
    fixture.cpu0.script([
        GuestExit::store(gicd, AccessWidth::Word, 1, GICD_CTLR_ENABLE_GRP1A),
        GuestExit::store(isenabler, AccessWidth::Word, 1, 1 << (spi % 32)),
        // A level-sensitive device line, held until the guest's handler services the device.
        GuestExit::level_interrupt(spi),
        GuestExit::hvc(CPU_OFF, &[])
            .with(GuestAction::TakeVirtual(spi))
            .with(GuestAction::SetLine {
                intid: spi,
                asserted: false,
            })
            .with(GuestAction::CompleteVirtual(spi)),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let physical = fixture.board.spi(spi);
    assert!(
        physical.enabled,
        "the guest's enable reached the physical SPI"
    );
    assert_eq!(physical.route, Some(0), "routed to vCPU 0's CPU");
    assert!(
        !physical.active,
        "deactivated by the guest, through the link"
    );
    let entries = fixture.cpu0.entries();
    assert_eq!(entries.len(), 4);
    let after_irq = &entries[3];
    assert_eq!(
        after_irq.regs.elr,
        ram + 8,
        "an IRQ exit resumes where it interrupted"
    );
    assert_eq!(
        after_irq.lists,
        [ListEntry {
            virtual_intid: spi,
            physical_intid: Some(spi),
            state: EntryState::Pending,
            priority: 0,
            group1: true,
            eoi_maintenance: false,
        }],
        "hardware-linked: HW set, pINTID = the SPI, no EOI maintenance"
    );
    assert!(
        fixture
            .cpu0
            .lists()
            .writes()
            .contains(&(0, after_irq.lists[0].encode())),
        "ICH_LR0_EL2 was written with the real encoding of that entry"
    );
    let interrupt_events = only(fixture.cpu0.events(), |event| {
        matches!(
            event,
            Event::Acknowledged { .. } | Event::Deactivated { .. } | Event::Kick { .. }
        )
    });
    assert_eq!(
        interrupt_events,
        [
            Event::Acknowledged { intid: spi },
            Event::Deactivated {
                intid: spi,
                cpu: 0,
                by: Deactivator::Guest
            },
        ],
        "EL2 never deactivates it, and no CPU is kicked (the SPI's vCPU runs here)"
    );
    assert_eq!(personal.counters.interrupts.load(Ordering::Relaxed), 1);
}

#[test]
fn wfit_completes_at_once_without_waiting() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    fixture
        .cpu0
        .script([GuestExit::wfit(), GuestExit::hvc(CPU_OFF, &[])]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    assert_eq!(
        fixture.cpu0.events(),
        [
            Event::Prepared { cell: 0, vcpu: 0 },
            Event::Entered,
            Event::Entered,
            Event::Quiesced,
        ],
        "EL2 has no timer for WFIT's timeout, so it never waits for an interrupt"
    );
    let resumed = &fixture.cpu0.entries()[1].regs;
    assert_eq!(resumed.elr, TEST_GUEST_BASE + 4, "past the WFIT");
    assert_eq!(personal.counters.wfi.load(Ordering::Relaxed), 1);
}

#[test]
fn wfi_with_nothing_pending_waits_then_resumes_past_the_wfi() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    let timer = fixture.runtime.platform.timer.virtual_timer;
    fixture
        .cpu0
        .script([GuestExit::wfi(), GuestExit::hvc(CPU_OFF, &[])]);
    fixture.cpu0.arrive_while_waiting(timer);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    assert_eq!(
        fixture.cpu0.events(),
        [
            Event::Prepared { cell: 0, vcpu: 0 },
            Event::Entered,
            Event::WaitedForInterrupt,
            Event::Acknowledged { intid: timer },
            Event::Entered,
            Event::Quiesced,
        ],
        "the WFI idles the CPU; the guest's timer ends the wait and is left for the guest"
    );
    assert!(
        fixture.board.is_active(0, timer),
        "forwarded hardware-linked: active until the guest deactivates it"
    );
    let resumed = &fixture.cpu0.entries()[1].regs;
    assert_eq!(resumed.elr, TEST_GUEST_BASE + 4, "past the WFI");
    assert_eq!(personal.counters.wfi.load(Ordering::Relaxed), 1);
}

#[test]
fn a_physical_serror_of_the_guest_comes_back_to_it_as_a_virtual_serror() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    // SError, IDS 0, AET "uncontainable" (0b000), DFSC 0x11 (asynchronous SError interrupt).
    let esr = (0x2f << 26) | (1 << 25) | 0x11;
    fixture
        .cpu0
        .script([GuestExit::serror(esr), GuestExit::hvc(CPU_OFF, &[])]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    assert_eq!(
        only(fixture.cpu0.events(), |event| matches!(
            event,
            Event::VirtualSError { .. }
        )),
        [Event::VirtualSError { esr }],
        "the guest gets the SError back, with its syndrome"
    );
    assert_eq!(personal.counters.injected_faults.load(Ordering::Relaxed), 1);
    assert_eq!(
        fixture
            .cell("corporate")
            .counters
            .injected_faults
            .load(Ordering::Relaxed),
        0
    );
}

/// `GICR_ISPENDR0`, in a redistributor's SGI frame.
const GICR_ISPENDR0: u64 = SGI_FRAME_OFFSET + 0x200;
const _: () = assert!(GICR_ISENABLER0 == SGI_FRAME_OFFSET + 0x100);

#[test]
fn a_timer_that_fired_while_its_ppi_was_disabled_stops_pending_when_the_timer_stops() {
    let mut fixture = fixture("test-guests");
    let timer = fixture.runtime.platform.timer.virtual_timer;
    let gicd = fixture.runtime.platform.gic.distributor.base;
    let gicr = fixture.runtime.platform.gic.redistributor_regions[0].base;
    fixture.cpu0.script([
        GuestExit::store(gicd, AccessWidth::Word, 1, GICD_CTLR_ENABLE_GRP1A),
        // PPI 27 is disabled (its reset state); the guest's timer fires.
        GuestExit::level_interrupt(timer),
        GuestExit::load(gicr + GICR_ISPENDR0, AccessWidth::Word, 2),
        // The guest disables its timer: the line drops.
        GuestExit::load(gicr + GICR_ISPENDR0, AccessWidth::Word, 3).with(GuestAction::SetLine {
            intid: timer,
            asserted: false,
        }),
        GuestExit::store(gicr + GICR_ISENABLER0, AccessWidth::Word, 4, 1 << timer),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let entries = fixture.cpu0.entries();
    assert_eq!(entries.len(), 6);
    assert_eq!(
        entries[3].regs.x[2],
        1 << timer,
        "held for the guest while its line is high"
    );
    assert_eq!(entries[4].regs.x[3], 0, "not pending once the line is low");
    assert!(
        entries[5].lists.is_empty(),
        "enabling the PPI delivers nothing"
    );
    assert_eq!(
        only(fixture.cpu0.events(), |event| matches!(
            event,
            Event::Acknowledged { .. } | Event::Deactivated { .. }
        )),
        [
            Event::Acknowledged { intid: timer },
            Event::Deactivated {
                intid: timer,
                cpu: 0,
                by: Deactivator::Distributor
            },
        ],
        "the physical PPI EL2 held is deactivated when the pending read finds the line low"
    );
    assert!(!fixture.board.is_active(0, timer));
}

#[test]
fn a_pending_timer_entry_whose_line_drops_is_retired_at_the_next_exit() {
    // The guest has IRQs masked, so the timer's hardware-linked entry waits pending in a list
    // register; the guest disables its timer, then makes a trapped access of another kind.
    let mut fixture = fixture("test-guests");
    let timer = fixture.runtime.platform.timer.nonsecure_physical;
    let gicd = fixture.runtime.platform.gic.distributor.base;
    let gicr = fixture.runtime.platform.gic.redistributor_regions[0].base;
    fixture.cpu0.script([
        GuestExit::store(gicd, AccessWidth::Word, 1, GICD_CTLR_ENABLE_GRP1A),
        GuestExit::store(gicr + GICR_ISENABLER0, AccessWidth::Word, 2, 1 << timer),
        GuestExit::level_interrupt(timer),
        // An exit while the line is still high keeps the entry.
        GuestExit::load(gicd, AccessWidth::Word, 3),
        GuestExit::load(gicd, AccessWidth::Word, 3).with(GuestAction::SetLine {
            intid: timer,
            asserted: false,
        }),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let entries = fixture.cpu0.entries();
    assert_eq!(entries.len(), 6);
    let pending = [ListEntry {
        virtual_intid: timer,
        physical_intid: Some(timer),
        state: EntryState::Pending,
        priority: 0,
        group1: true,
        eoi_maintenance: false,
    }];
    assert_eq!(entries[3].lists, pending, "forwarded hardware-linked");
    assert_eq!(entries[4].lists, pending, "line high: kept");
    assert!(entries[5].lists.is_empty(), "line low: retired");
    assert_eq!(
        only(fixture.cpu0.events(), |event| matches!(
            event,
            Event::Acknowledged { .. } | Event::Deactivated { .. }
        )),
        [
            Event::Acknowledged { intid: timer },
            Event::Deactivated {
                intid: timer,
                cpu: 0,
                by: Deactivator::Hypervisor
            },
        ],
        "EL2 deactivates the physical PPI it held, on this CPU"
    );
    assert!(!fixture.board.is_active(0, timer));
}

#[test]
fn passthrough_spis_to_a_vcpu_that_completes_each_without_an_exit_are_all_injected() {
    // As a spinning guest with IRQs unmasked does: it takes and completes each SPI in its list
    // register and never exits by itself, so the run loop sees the completion only at the next
    // SPI's exit. Every SPI must still reach a list register, hardware-linked.
    let mut fixture = fixture("test-guest-disk");
    let disk = fixture.cell("disk");
    let spi = VIRTIO_DISK.interrupts[0];
    assert_eq!(disk.plan().config.devices, ["virtio-disk"]);
    fixture.cpu0.script(enable_spi(fixture.runtime, spi));
    fixture.cpu0.script([GuestExit::interrupt(spi)]);
    for _ in 1..ROUNDS {
        fixture.cpu0.script([GuestExit::runs_until_interrupted()
            .with(GuestAction::TakeVirtual(spi))
            .with(GuestAction::CompleteVirtual(spi))
            .with(GuestAction::RaisePhysical(spi))]);
    }
    fixture.cpu0.script([GuestExit::hvc(CPU_OFF, &[])
        .with(GuestAction::TakeVirtual(spi))
        .with(GuestAction::CompleteVirtual(spi))]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let injected = fixture
        .cpu0
        .entries()
        .iter()
        .filter(|entry| lists_hold_linked(entry, spi))
        .count();
    assert_eq!(
        injected, ROUNDS as usize,
        "every SPI reached a list register"
    );
    let events = fixture.cpu0.events();
    let count = |wanted: Event| events.iter().filter(|event| **event == wanted).count();
    assert_eq!(count(Event::Acknowledged { intid: spi }), ROUNDS as usize);
    assert_eq!(
        count(Event::Deactivated {
            intid: spi,
            cpu: 0,
            by: Deactivator::Guest
        }),
        ROUNDS as usize,
        "each deactivated by the guest, through the link"
    );
    assert!(
        !events.iter().any(|event| matches!(
            event,
            Event::Deactivated { intid, by, .. } if *intid == spi && *by != Deactivator::Guest
        )),
        "EL2 never deactivates it"
    );
    assert!(!fixture.board.spi(spi).active);
    assert_eq!(
        disk.counters.interrupts.load(Ordering::Relaxed),
        u64::from(ROUNDS)
    );
}

#[test]
fn sgis_to_a_sibling_that_completes_each_without_an_exit_are_all_delivered() {
    // vCPU 0 sends SGI 1 to vCPU 1 once vCPU 1 completed the previous one in its list register,
    // unseen by EL2 (vCPU 1 spins and exits only for kicks). Every SGI must still reach vCPU 1.
    const SGI: u32 = 1;
    let fixture = fixture("test-guests");
    let (runtime, board) = (fixture.runtime, fixture.board.clone());
    let gicr = runtime.platform.gic.redistributor_regions[0].base;
    let mut cpu0 = fixture.cpu0;
    let mut cpu1 = board.cpu(1);
    let enable_on_vcpu1 = gicr + REDISTRIBUTOR_STRIDE + GICR_ISENABLER0;
    cpu0.script([
        GuestExit::hvc(CPU_ON_64, &[1, TEST_GUEST_BASE + 0x1000, 0]),
        GuestExit::store(
            runtime.platform.gic.distributor.base,
            AccessWidth::Word,
            1,
            GICD_CTLR_ENABLE_GRP1A,
        ),
        GuestExit::store(enable_on_vcpu1, AccessWidth::Word, 1, 1 << SGI),
    ]);
    let sgi_to_vcpu1 = u64::from(SGI) << 24 | 1 << 1;
    for round in 0..ROUNDS {
        let wait = if round == 0 {
            GuestAction::AwaitGuestOn(1)
        } else {
            GuestAction::AwaitCompleted {
                cpu: 1,
                intid: SGI,
                count: round,
            }
        };
        cpu0.script([GuestExit::send_sgis(3, sgi_to_vcpu1).with(wait)]);
    }
    cpu0.script([
        GuestExit::hvc(CPU_OFF, &[]).with(GuestAction::AwaitCompleted {
            cpu: 1,
            intid: SGI,
            count: ROUNDS,
        }),
    ]);
    for round in 0..ROUNDS {
        let take = if round + 1 < ROUNDS {
            GuestExit::runs_until_interrupted()
        } else {
            GuestExit::hvc(CPU_OFF, &[])
        };
        cpu1.script([take
            .once_listed(SGI)
            .with(GuestAction::TakeVirtual(SGI))
            .with(GuestAction::CompleteVirtual(SGI))]);
    }

    let cpu1 = std::thread::scope(|scope| {
        let sibling = scope.spawn(move || {
            while step(runtime, &mut cpu1) != Step::Ran {}
            cpu1
        });
        assert_eq!(step(runtime, &mut cpu0), Step::Ran);
        sibling.join().expect("CPU 1 ran")
    });

    assert_eq!(
        board.completions(1, SGI),
        ROUNDS,
        "vCPU 1 took and completed every SGI"
    );
    assert!(
        cpu1.entries().iter().all(|entry| entry.lists.len() <= 1),
        "one SGI at a time"
    );
    assert!(
        cpu0.kicks().iter().all(|&cpu| cpu == 1),
        "only vCPU 1's CPU is kicked"
    );
}

#[test]
fn a_passthrough_spi_rerouted_away_from_a_spinning_vcpu_reaches_its_new_vcpu() {
    // vCPU 1 takes the disk's SPI and completes it without an exit, so EL2 still sees that
    // instance in vCPU 1's list register. The guest then routes the SPI to vCPU 0, and the next
    // one arrives at vCPU 0's CPU. It must reach vCPU 0, hardware-linked: vCPU 1 has to give the
    // completed instance back (it is kicked), and vCPU 0 has to look again once it did.
    let fixture = fixture("test-guest-disk");
    let ram = fixture.cell("disk").plan().memory[0].physical.base().raw();
    let Fixture {
        runtime,
        board,
        mut cpu0,
    } = fixture;
    let spi = VIRTIO_DISK.interrupts[0];
    let mut cpu1 = board.cpu(1);
    cpu0.script([GuestExit::hvc(CPU_ON_64, &[1, ram + 0x1000, 0])]);
    cpu0.script(enable_spi(runtime, spi));
    cpu0.script([
        route_spi(runtime, spi, 1),
        // The first instance, for vCPU 1, once it runs (PSCI_VERSION: any exit answered at once).
        GuestExit::hvc(PSCI_VERSION, &[])
            .with(GuestAction::AwaitGuestOn(1))
            .with(GuestAction::RaisePhysical(spi)),
        route_spi(runtime, spi, 0).with(GuestAction::AwaitCompleted {
            cpu: 1,
            intid: spi,
            count: 1,
        }),
        // The second instance, now routed here.
        GuestExit::interrupt(spi),
        GuestExit::hvc(CPU_OFF, &[])
            .once_listed(spi)
            .with(GuestAction::TakeVirtual(spi))
            .with(GuestAction::CompleteVirtual(spi)),
    ]);
    cpu1.script([
        GuestExit::runs_until_interrupted()
            .once_listed(spi)
            .with(GuestAction::TakeVirtual(spi))
            .with(GuestAction::CompleteVirtual(spi)),
        GuestExit::hvc(CPU_OFF, &[]).with(GuestAction::AwaitCompleted {
            cpu: 0,
            intid: spi,
            count: 1,
        }),
    ]);

    let (cpu0, cpu1) = std::thread::scope(|scope| {
        let sibling = scope.spawn(move || {
            while step(runtime, &mut cpu1) != Step::Ran {}
            cpu1
        });
        assert_eq!(step(runtime, &mut cpu0), Step::Ran);
        (cpu0, sibling.join().expect("CPU 1 ran"))
    });

    assert!(
        cpu1.entries()
            .iter()
            .any(|entry| lists_hold_linked(entry, spi)),
        "the first instance reached vCPU 1"
    );
    assert!(
        cpu0.entries()
            .iter()
            .any(|entry| lists_hold_linked(entry, spi)),
        "the second reached vCPU 0, hardware-linked"
    );
    let guest_deactivations = board
        .events()
        .into_iter()
        .filter(|record| {
            record.event
                == Event::Deactivated {
                    intid: spi,
                    cpu: record.cpu,
                    by: Deactivator::Guest,
                }
        })
        .map(|record| record.cpu)
        .collect::<std::vec::Vec<_>>();
    assert_eq!(
        guest_deactivations,
        [1, 0],
        "each instance deactivated by the guest that took it"
    );
    assert!(!board.spi(spi).active, "nothing left active");
    assert_eq!(board.completions(0, spi), 1);
    let events = cpu0.events();
    let second_instance = events
        .iter()
        .position(|event| *event == Event::Acknowledged { intid: spi })
        .expect("CPU 0 acknowledged the second instance");
    assert!(
        events[second_instance..].contains(&Event::Kick { to: 1 }),
        "then made vCPU 1 exit"
    );
    assert_eq!(cpu1.kicks(), [0], "vCPU 1 made vCPU 0 look again");
}
