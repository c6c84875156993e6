//! Data-abort exits through the run loop: the GIC distributor emulated by the cell's vGIC, a
//! passthrough page shared with another cell's device forwarded byte-exactly, and an access
//! outside the cell answered with an abort at the guest's own vector.

use core::sync::atomic::Ordering;

use super::{KERNEL, build, fixture, only};
use crate::arch::fake::Event;
use crate::arch::fake::script::{GuestAction, GuestExit};
use crate::board::{Board, FaultLoop};
use crate::core::hardware::SPSR_EL1H_MASKED;
use crate::core::inject::Injection;
use crate::core::lifecycle::CellState;
use crate::core::psci::CPU_OFF;
use crate::core::run::{Step, step};
use crate::dev::mmio::AccessWidth;
use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::setup::partition::qemu_virt::{self, TEST_GUEST_BASE, VIRTIO_DISK, VIRTIO_NET};

/// `GICD_ISENABLER1`: set-enable bits of INTIDs 32-63.
const GICD_ISENABLER1: u64 = 0x104;
/// `GICD_IPRIORITYR8`: priorities of INTIDs 32-35, one byte each.
const GICD_IPRIORITYR8: u64 = 0x420;

#[test]
fn distributor_writes_are_emulated_and_read_back() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    let gicd = fixture.runtime.platform.gic.distributor.base;
    let uart_intid = fixture.runtime.platform.console.intid;
    assert_eq!(
        uart_intid, 33,
        "the only SPI a test-guests cell owns: its vUART's"
    );
    fixture.cpu0.script([
        GuestExit::store(
            gicd + GICD_ISENABLER1,
            AccessWidth::Word,
            1,
            u64::from(u32::MAX),
        ),
        GuestExit::load(gicd + GICD_ISENABLER1, AccessWidth::Word, 2),
        GuestExit::store(gicd + GICD_IPRIORITYR8, AccessWidth::Word, 3, 0xa0a0_a0a0),
        GuestExit::load(gicd + GICD_IPRIORITYR8, AccessWidth::Word, 4),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let entries = fixture.cpu0.entries();
    assert_eq!(entries.len(), 5);
    for (n, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.regs.elr,
            TEST_GUEST_BASE + 4 * n as u64,
            "entry {n}: ELR advanced past each emulated access"
        );
    }
    assert_eq!(
        entries[2].regs.x[2], 0b10,
        "only INTID 33 (bit 1) is the cell's to enable"
    );
    assert_eq!(
        entries[4].regs.x[4], 0x0000_a000,
        "only INTID 33's priority byte is kept"
    );
    assert_eq!(personal.counters.mmio.load(Ordering::Relaxed), 4);
    assert!(
        fixture.cpu0.injections().is_empty(),
        "no access was refused"
    );
    assert_eq!(
        only(fixture.cpu0.events(), |event| matches!(
            event,
            Event::SpiEnabled { .. } | Event::SpiPriority { .. } | Event::SpiRouted { .. }
        )),
        [],
        "the vUART's SPI is virtual: nothing reaches the physical distributor"
    );
}

#[test]
fn access_outside_the_cell_injects_an_abort_at_the_guest_vector() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    let vbar = TEST_GUEST_BASE + 0x800;
    let outside = 0x0c00_0000;
    assert!(
        personal
            .devices
            .device_at(GuestPhysAddr::new(outside))
            .is_none()
    );
    fixture.cpu0.script([
        GuestExit::store(outside, AccessWidth::Word, 1, 0xdead_beef)
            .with(GuestAction::SetVbar(vbar)),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    // EC 0x25 (data abort, same EL: the guest runs at EL1h), IL, WnR, FSC 0x10 (synchronous
    // external abort).
    let esr_el1 = (0x25 << 26) | (1 << 25) | (1 << 6) | 0x10;
    let current_el_spx_synchronous = 0x200;
    assert_eq!(
        fixture.cpu0.injections(),
        [Injection {
            esr_el1,
            far_el1: Some(outside),
            elr_el1: TEST_GUEST_BASE,
            spsr_el1: SPSR_EL1H_MASKED,
            new_pc: vbar + current_el_spx_synchronous,
            new_pstate: SPSR_EL1H_MASKED,
        }]
    );
    let el1 = fixture.cpu0.el1();
    assert_eq!(
        (el1.esr, el1.far, el1.elr),
        (esr_el1, outside, TEST_GUEST_BASE)
    );
    let resumed = &fixture.cpu0.entries()[1].regs;
    assert_eq!(
        resumed.elr,
        vbar + current_el_spx_synchronous,
        "at the guest's vector"
    );
    assert_eq!(resumed.spsr, SPSR_EL1H_MASKED);
    assert_eq!(personal.counters.injected_faults.load(Ordering::Relaxed), 1);
    assert_eq!(personal.counters.mmio.load(Ordering::Relaxed), 0);
    assert_eq!(
        only(fixture.cpu0.events(), |event| matches!(
            event,
            Event::MemoryWritten { .. } | Event::DeviceWritten { .. }
        )),
        [],
        "the store went nowhere"
    );
}

#[test]
fn shared_passthrough_page_forwards_only_the_cells_own_device() {
    let mut fixture = fixture("linux-mmio");
    let own = VIRTIO_NET.mmio[0].base;
    let other = VIRTIO_DISK.mmio[0].base;
    assert_eq!(own / 0x1000, other / 0x1000, "one page, two cells' devices");
    let virtio_magic = 0x7472_6976;
    fixture
        .board
        .set_device_register(PhysAddr::new(own), virtio_magic);
    fixture
        .board
        .set_device_register(PhysAddr::new(other), virtio_magic);
    fixture.cpu0.script([
        GuestExit::load(own, AccessWidth::Word, 5),
        GuestExit::load(other, AccessWidth::Word, 6),
        GuestExit::store(other, AccessWidth::Word, 7, 0xff),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let entries = fixture.cpu0.entries();
    assert_eq!(entries[1].regs.x[5], virtio_magic, "its own device is read");
    assert_eq!(
        entries[2].regs.x[6], 0,
        "the other cell's device reads as zero"
    );
    assert_eq!(
        only(fixture.cpu0.events(), |event| matches!(
            event,
            Event::DeviceRead { .. } | Event::DeviceWritten { .. }
        )),
        [Event::DeviceRead {
            address: PhysAddr::new(own),
            width: AccessWidth::Word
        }],
        "nothing reaches the other cell's device"
    );
    assert!(fixture.cpu0.injections().is_empty());
}

#[test]
fn a_guest_faulting_at_its_own_vector_is_stopped_after_the_boards_limit() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    let FaultLoop::Stop { after } = qemu_virt::BOARD.fault_loop else {
        panic!("the QEMU virt board stops fault loops");
    };
    // A raw image whose vector table lies outside the cell: the first store outside the cell is
    // answered at the vector, where the guest faults again, identically, for ever.
    let vbar = 0x0c00_0000;
    let outside = 0x0c10_0000;
    let mut script =
        vec![GuestExit::store(outside, AccessWidth::Word, 1, 0).with(GuestAction::SetVbar(vbar))];
    // The first fault (at the image's entry) and the `after` identical ones at the vector; one
    // more that must never be played.
    script.extend((0..=after).map(|_| GuestExit::store(outside, AccessWidth::Word, 1, 0)));
    fixture.cpu0.script(script);

    let mut steps = 0;
    while personal.state() != CellState::Off {
        steps += 1;
        assert!(steps < 4, "the cell stops within a few steps");
        step(fixture.runtime, &mut fixture.cpu0);
    }

    let injections = fixture.cpu0.injections();
    assert_eq!(
        injections.len(),
        after as usize,
        "the entry fault and {} identical faults at the vector were answered; the {after}th stopped \
         the cell",
        after - 1
    );
    assert!(
        injections
            .iter()
            .skip(1)
            .all(|injection| injection.elr_el1 == vbar + 0x200 && injection.new_pc == vbar + 0x200),
        "every repeat faulted at the vector it was sent to"
    );
    assert_eq!(
        fixture.cpu0.entries().len(),
        after as usize + 1,
        "the vCPU was not entered again after the stop"
    );
    assert_eq!(fixture.cell("corporate").state(), CellState::Running);
}

#[test]
fn faults_that_let_the_handler_run_never_stop_the_cell() {
    let mut fixture = fixture("test-guests");
    let personal = fixture.cell("personal");
    let vbar = TEST_GUEST_BASE + 0x800;
    let outside = 0x0c00_0000;
    // The handler runs and returns to the faulting instruction each time: a guest retrying a bad
    // access is making progress as far as cellvisor can tell, however often it does.
    let retry_at = TEST_GUEST_BASE + 0x40;
    let mut script = vec![
        GuestExit::store(outside, AccessWidth::Word, 1, 0)
            .with(GuestAction::SetVbar(vbar))
            .with(GuestAction::RunTo(retry_at)),
    ];
    for _ in 1..200 {
        script.push(
            GuestExit::store(outside, AccessWidth::Word, 1, 0).with(GuestAction::RunTo(retry_at)),
        );
    }
    script.push(GuestExit::hvc(CPU_OFF, &[]));
    fixture.cpu0.script(script);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);
    assert_eq!(fixture.cpu0.injections().len(), 200);
    assert_eq!(personal.state(), CellState::Running);
}

/// The QEMU virt board with raw binaries refused, as a board whose cells only run Linux has it.
static LINUX_ONLY: Board = Board {
    raw_binaries: false,
    ..qemu_virt::BOARD
};

#[test]
fn a_board_without_raw_binaries_refuses_a_raw_kernel_and_boots_an_image() {
    let Err((cell, error)) = build(&LINUX_ONLY, "test-guests", KERNEL) else {
        panic!("a raw kernel is refused");
    };
    assert_eq!(cell, "0");
    assert!(
        error.contains("the kernel is a raw binary") && error.contains("arm64 Image"),
        "names the format and the fix: {error}"
    );
    // The same bytes behind an arm64 Image header (text_offset 0, image_size 1 MiB) boot.
    let mut image = vec![0u8; 64];
    image[16..24].copy_from_slice(&(1u64 << 20).to_le_bytes());
    image[56..60].copy_from_slice(b"ARM\x64");
    image.extend_from_slice(KERNEL);
    let image: &'static [u8] = Vec::leak(image);
    let fixture = build(&LINUX_ONLY, "test-guests", image)
        .unwrap_or_else(|(cell, error)| panic!("cell {cell}: {error}"));
    assert_eq!(fixture.cell("personal").state(), CellState::Running);
}

#[test]
fn a_forwarded_access_the_device_aborts_is_an_abort_for_that_guest_only() {
    let mut fixture = fixture("linux-mmio");
    let own = VIRTIO_NET.mmio[0].base;
    // A clock-gated block: the device answers every access with an external abort.
    fixture.board.make_device_abort(PhysAddr::new(own));
    let vbar = TEST_GUEST_BASE + 0x800;
    fixture.cpu0.script([
        GuestExit::load(own, AccessWidth::Word, 5).with(GuestAction::SetVbar(vbar)),
        GuestExit::store(own, AccessWidth::Word, 6, 1),
        GuestExit::hvc(CPU_OFF, &[]),
    ]);

    assert_eq!(step(fixture.runtime, &mut fixture.cpu0), Step::Ran);

    let injections = fixture.cpu0.injections();
    assert_eq!(
        injections.len(),
        2,
        "the load and the store each get an abort"
    );
    for (injection, write) in injections.iter().zip([false, true]) {
        let wnr = (injection.esr_el1 >> 6) & 1 == 1;
        assert_eq!(
            (injection.esr_el1 >> 26, injection.far_el1, wnr),
            (0x25, Some(own), write),
            "a data abort at the device's address"
        );
    }
    assert_eq!(fixture.cell("corporate").state(), CellState::Running);
    assert_eq!(fixture.cell("personal").state(), CellState::Running);
}
