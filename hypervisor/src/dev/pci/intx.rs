//! INTx: the Interrupt Pin register's pins. The swizzle from slot and pin to SPI is the board's
//! (`PciFunction::intx_intid`), the cell's `interrupt-map` is written by `setup::guest_fdt`, and a
//! line two cells' devices would share is refused by the passthrough plan like any shared SPI.
#![forbid(unsafe_code)]

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
