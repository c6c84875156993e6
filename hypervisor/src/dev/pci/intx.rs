//! INTx: the host bridge's swizzle from slot and pin to SPI, a cell's `interrupt-map` entries
//! and the boot-time check that no two cells share a line.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use super::emulator::CellFunction;
use super::{Bdf, PciError};
use crate::dev::gic::SPI_BASE_INTID;

/// An INTx pin (the Interrupt Pin register's 1..=4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum IntxPin {
    /// INTA#.
    A = 1,
    /// INTB#.
    B = 2,
    /// INTC#.
    C = 3,
    /// INTD#.
    D = 4,
}

impl IntxPin {
    /// The pin named by an Interrupt Pin register value; `None` for 0 (no INTx) and the
    /// reserved values above 4.
    pub const fn from_register(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::A),
            2 => Some(Self::B),
            3 => Some(Self::C),
            4 => Some(Self::D),
            _ => None,
        }
    }

    /// The register value, 1..=4 (also the device tree's child interrupt specifier).
    pub const fn number(self) -> u8 {
        self as u8
    }
}

/// QEMU virt's INTx SPIs (`hw/arm/virt.c`, `create_pcie_irq_map`): swizzled line 0..4 raises
/// SPI 3..7 (INTID 35..39), level-triggered.
pub const QEMU_VIRT_INTX_SPIS: [u32; 4] = [3, 4, 5, 6];

/// The SPI number (INTID - 32) that pin `pin` of slot `slot` on the root bus raises, through
/// the standard swizzle of a host bridge with `interrupt-map-mask = <0x1800 0 0 7>`:
/// `spis[(slot + pin - 1) % 4]`.
pub fn intx_spi(slot: u8, pin: IntxPin, spis: &[u32; 4]) -> u32 {
    spis[(usize::from(slot) + usize::from(pin.number()) - 1) % 4]
}

/// The `interrupt-map-mask` of a cell's PCI node: the entries match the whole device and
/// function (functions may be renumbered, so the swizzle does not hold in the cell) and the pin.
pub const INTERRUPT_MAP_MASK: [u32; 4] = [0xff00, 0, 0, 7];

/// The device tree's `GIC_SPI` interrupt type cell.
const GIC_SPI: u32 = 0;
/// The device tree's `IRQ_TYPE_LEVEL_HIGH` flags cell.
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;

/// One `interrupt-map` entry of a cell: its function's pin raises the physical SPI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptMapEntry {
    /// The function as the cell numbers it.
    pub guest: Bdf,
    /// The physical function.
    pub physical: Bdf,
    /// Its pin.
    pub pin: IntxPin,
    /// The SPI number (INTID - 32) the physical function's pin raises.
    pub spi: u32,
}

impl InterruptMapEntry {
    /// The SPI's INTID.
    pub const fn intid(&self) -> u32 {
        SPI_BASE_INTID + self.spi
    }

    /// The entry's cells, for a GIC node with `#address-cells = <2>` and
    /// `#interrupt-cells = <3>`: child unit address (3), pin, GIC phandle, parent unit address
    /// (2), `GIC_SPI spi IRQ_TYPE_LEVEL_HIGH`.
    pub const fn cells(&self, gic_phandle: u32) -> [u32; 10] {
        let address_high = ((self.guest.bus() as u32) << 16) | ((self.guest.devfn() as u32) << 8);
        [
            address_high,
            0,
            0,
            self.pin.number() as u32,
            gic_phandle,
            0,
            0,
            GIC_SPI,
            self.spi,
            IRQ_TYPE_LEVEL_HIGH,
        ]
    }
}

/// The `interrupt-map` entries for a cell's functions (those with an INTx pin), in the order
/// given: the guest's device/function and pin to the SPI of the physical slot and pin, on a root
/// bus whose swizzle raises `spis`.
pub fn interrupt_map(functions: &[CellFunction], spis: &[u32; 4]) -> Vec<InterruptMapEntry> {
    functions
        .iter()
        .filter_map(|function| {
            let pin = function.info.interrupt_pin?;
            Some(InterruptMapEntry {
                guest: function.guest,
                physical: function.physical,
                pin,
                spi: intx_spi(function.physical.device(), pin, spis),
            })
        })
        .collect()
}

/// One cell's INTx lines, for [`check_intx_sharing`].
#[derive(Clone, Copy, Debug)]
pub struct CellIntx<'a> {
    /// The cell's name.
    pub cell: &'static str,
    /// Its `interrupt-map` entries.
    pub entries: &'a [InterruptMapEntry],
}

/// Fails if functions of two different cells raise the same SPI: a level-triggered line shared
/// between cells would let one cell hold the other's line asserted. Functions of one cell may
/// share a line (its Linux handles shared INTx).
pub fn check_intx_sharing(cells: &[CellIntx<'_>]) -> Result<(), PciError> {
    for (position, cell) in cells.iter().enumerate() {
        for other in &cells[position + 1..] {
            for entry in cell.entries {
                if let Some(other_entry) = other.entries.iter().find(|o| o.spi == entry.spi) {
                    return Err(PciError::SharedIntx {
                        spi: entry.spi,
                        cell: cell.cell,
                        function: entry.physical,
                        other_cell: other.cell,
                        other_function: other_entry.physical,
                    });
                }
            }
        }
    }
    Ok(())
}
