//! Address newtypes: physical addresses, guest physical addresses (IPAs) and hypervisor virtual addresses.
#![forbid(unsafe_code)]

use core::fmt;

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// The address `raw`.
            pub const fn new(raw: u64) -> Self {
                Self(raw)
            }

            /// The raw address.
            pub const fn raw(self) -> u64 {
                self.0
            }

            /// `self + offset`, or `None` on overflow.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(address) => Some(Self(address)),
                    None => None,
                }
            }

            /// Offset of `self` from `base`, or `None` if `self` is below `base`.
            pub const fn offset_from(self, base: Self) -> Option<u64> {
                self.0.checked_sub(base.0)
            }

            /// Whether the address is a multiple of `align` (a power of two).
            pub const fn is_aligned(self, align: u64) -> bool {
                self.0 & (align - 1) == 0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{:#x}"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

address_type!(
    /// A physical address (output of stage-2 translation, what the bus sees).
    PhysAddr,
    "PA:"
);
address_type!(
    /// A guest physical address: what a cell's guest believes is physical (input of stage 2).
    GuestPhysAddr,
    "IPA:"
);
address_type!(
    /// A virtual address in cellvisor's own EL2 translation regime.
    VirtAddr,
    "VA:"
);

impl PhysAddr {
    /// The hypervisor virtual address of this physical address. cellvisor's EL2 map is an
    /// identity map, so this is the same number; keeping it a function makes the assumption findable.
    pub const fn to_virt(self) -> VirtAddr {
        VirtAddr(self.0)
    }
}

impl VirtAddr {
    /// The physical address behind a hypervisor virtual address (identity map, see [`PhysAddr::to_virt`]).
    pub const fn to_phys(self) -> PhysAddr {
        PhysAddr(self.0)
    }

    /// The address as a `usize`, for pointer arithmetic in the arch glue.
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}
