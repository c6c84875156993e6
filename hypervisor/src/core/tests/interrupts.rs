//! IRQ and WFI exits through the run loop: a passthrough SPI forwarded hardware-linked, a WFI
//! that idles the CPU until an interrupt arrives, and the guest timers' level-sensitive PPIs that
//! stop being pending when the timer's condition ends.

use core::sync::atomic::Ordering;

use super::{fixture, only};
use crate::arch::fake::lists::{EntryState, ListEntry};
use crate::arch::fake::script::{GuestAction, GuestExit};
use crate::arch::fake::{Deactivator, Event};
use crate::core::psci::CPU_OFF;
use crate::core::run::{Step, step};
use crate::dev::gic::SGI_FRAME_OFFSET;
use crate::dev::mmio::AccessWidth;
use crate::setup::partition::qemu_virt::{TEST_GUEST_BASE, VIRTIO_NET};

/// `GICD_CTLR.EnableGrp1A`.
const GICD_CTLR_ENABLE_GRP1A: u64 = 1 << 1;

#[test]
fn passthrough_spi_is_acknowledged_at_el2_and_injected_hardware_linked() {
    let mut fixture = fixture("linux");
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

/// `GICR_ISENABLER0` and `GICR_ISPENDR0`, in a redistributor's SGI frame.
const GICR_ISENABLER0: u64 = SGI_FRAME_OFFSET + 0x100;
const GICR_ISPENDR0: u64 = SGI_FRAME_OFFSET + 0x200;

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
