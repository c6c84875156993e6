//! Data-abort exits through the run loop: the GIC distributor emulated by the cell's vGIC, a
//! passthrough page shared with another cell's device forwarded byte-exactly, and an access
//! outside the cell answered with an abort at the guest's own vector.

use core::sync::atomic::Ordering;

use super::{fixture, only};
use crate::arch::fake::Event;
use crate::arch::fake::script::{GuestAction, GuestExit};
use crate::core::hardware::SPSR_EL1H_MASKED;
use crate::core::inject::Injection;
use crate::core::psci::CPU_OFF;
use crate::core::run::{Step, step};
use crate::dev::mmio::AccessWidth;
use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::setup::partition::qemu_virt::{TEST_GUEST_BASE, VIRTIO_DISK, VIRTIO_NET};

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
    let mut fixture = fixture("linux");
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
