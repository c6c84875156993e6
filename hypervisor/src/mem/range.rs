//! Typed address ranges: a window of physical addresses ([`PhysRange`]) or of a cell's guest
//! physical addresses ([`IpaRange`]). The board's untyped `MemRange` becomes one of these where
//! setup validates it.
#![forbid(unsafe_code)]

use core::fmt;

use crate::board::MemRange;
use crate::mem::addr::{GuestPhysAddr, PhysAddr};

macro_rules! range_type {
    ($(#[$doc:meta])* $name:ident, $address:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name {
            base: $address,
            size: u64,
        }

        impl $name {
            /// The `size` bytes from `base`.
            pub const fn new(base: $address, size: u64) -> Self {
                Self { base, size }
            }

            /// The range of the board's untyped `range`, read as this kind of address.
            pub const fn from_board(range: MemRange) -> Self {
                Self::new($address::new(range.base), range.size)
            }

            /// First address of the range.
            pub const fn base(self) -> $address {
                self.base
            }

            /// Length in bytes.
            pub const fn size(self) -> u64 {
                self.size
            }

            /// One past the last byte, or `None` if the range wraps the 64-bit address space.
            pub const fn end(self) -> Option<$address> {
                self.base.checked_add(self.size)
            }

            /// Whether `address` lies inside the range.
            pub fn contains(self, address: $address) -> bool {
                address >= self.base && self.end().is_none_or(|end| address < end)
            }

            /// Offset of `address` into the range, if it lies inside.
            pub fn offset_of(self, address: $address) -> Option<u64> {
                if self.contains(address) {
                    address.offset_from(self.base)
                } else {
                    None
                }
            }

            /// The range as the board's untyped `MemRange` (for messages and board-level checks).
            pub const fn to_board(self) -> MemRange {
                MemRange::new(self.base.raw(), self.size)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}+{:#x}", self.base, self.size)
            }
        }
    };
}

range_type!(
    /// A range of physical addresses.
    PhysRange,
    PhysAddr
);

impl PhysRange {
    /// The same numbers as guest-physical addresses: for windows a cell sees where the platform
    /// has them (emulated devices, identity-placed RAM and passthrough pages).
    pub const fn identity_ipa(self) -> IpaRange {
        IpaRange::new(GuestPhysAddr::new(self.base.raw()), self.size)
    }
}
range_type!(
    /// A range of a cell's guest physical addresses (IPAs).
    IpaRange,
    GuestPhysAddr
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_and_offsets() {
        let window = IpaRange::new(GuestPhysAddr::new(0x1000), 0x100);
        assert!(window.contains(GuestPhysAddr::new(0x1000)));
        assert!(window.contains(GuestPhysAddr::new(0x10ff)));
        assert!(!window.contains(GuestPhysAddr::new(0x1100)));
        assert!(!window.contains(GuestPhysAddr::new(0xfff)));
        assert_eq!(window.offset_of(GuestPhysAddr::new(0x1010)), Some(0x10));
        assert_eq!(window.offset_of(GuestPhysAddr::new(0x1100)), None);
        assert_eq!(window.end(), Some(GuestPhysAddr::new(0x1100)));
        // A range that reaches the top of the address space contains its last byte.
        let top = PhysRange::new(PhysAddr::new(u64::MAX - 0xfff), 0x1000);
        assert_eq!(top.end(), None);
        assert!(top.contains(PhysAddr::new(u64::MAX)));
        let board = MemRange::new(0x4000_0000, 0x1000);
        assert_eq!(PhysRange::from_board(board).to_board(), board);
        assert_eq!(format!("{top:?}"), "PA:0xfffffffffffff000+0x1000");
    }
}
