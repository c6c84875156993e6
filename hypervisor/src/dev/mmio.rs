//! Emulated-MMIO helpers: access widths, the register transfer of a trapped load/store, device errors.
#![forbid(unsafe_code)]
//!
//! A trapped guest load or store arrives as an [`MmioAccess`] (built by [`crate::core::esr`] from a data
//! abort syndrome with ISS.ISV = 1). The caller reads the source register, narrows it with
//! [`store_value`], hands it to the device, and for a load widens the device's answer with
//! [`load_result`] before writing the destination register. Devices answer with
//! `Result<_, MmioError>`; on `Err` the caller injects a synchronous external abort into the guest.

use core::fmt;

/// The size of one MMIO access, as encoded by ISS.SAS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum AccessWidth {
    /// 8 bits (SAS = 0b00).
    Byte = 0,
    /// 16 bits (SAS = 0b01).
    Halfword = 1,
    /// 32 bits (SAS = 0b10).
    Word = 2,
    /// 64 bits (SAS = 0b11).
    Doubleword = 3,
}

impl AccessWidth {
    /// The width encoded by a 2-bit ISS.SAS field; only the low two bits of `sas` are used.
    pub const fn from_sas(sas: u8) -> Self {
        match sas & 0b11 {
            0b00 => Self::Byte,
            0b01 => Self::Halfword,
            0b10 => Self::Word,
            _ => Self::Doubleword,
        }
    }

    /// The width for an access of `bytes` bytes, or `None` unless `bytes` is 1, 2, 4 or 8.
    pub const fn from_bytes(bytes: u64) -> Option<Self> {
        match bytes {
            1 => Some(Self::Byte),
            2 => Some(Self::Halfword),
            4 => Some(Self::Word),
            8 => Some(Self::Doubleword),
            _ => None,
        }
    }

    /// Number of bytes transferred: 2 to the power of the SAS encoding (a shift, no table).
    #[inline(always)]
    pub const fn bytes(self) -> u64 {
        1 << self as u8
    }

    /// Whether `offset` is a multiple of the access size (a mask test: the size is a power of
    /// two, so no division).
    #[inline(always)]
    pub const fn is_aligned(self, offset: u64) -> bool {
        offset & (self.bytes() - 1) == 0
    }

    /// Number of bits transferred.
    pub const fn bits(self) -> u32 {
        match self {
            Self::Byte => 8,
            Self::Halfword => 16,
            Self::Word => 32,
            Self::Doubleword => 64,
        }
    }

    /// A mask with the low [`bits`](Self::bits) bits set.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Doubleword => u64::MAX,
            _ => (1u64 << self.bits()) - 1,
        }
    }
}

/// The general-purpose register a trapped load or store transfers (ISS.SRT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransferRegister {
    /// `X0`..`X30` (or their `W` views); the value is always in `0..=30`.
    X(u8),
    /// SRT = 31: the zero register. A store writes zero; a load's result is discarded.
    Zero,
}

impl TransferRegister {
    /// The register named by a 5-bit SRT field; only the low five bits of `srt` are used.
    pub const fn from_srt(srt: u8) -> Self {
        match srt & 0x1f {
            31 => Self::Zero,
            n => Self::X(n),
        }
    }

    /// The register number `0..=30`, or `None` for the zero register.
    pub const fn index(self) -> Option<usize> {
        match self {
            Self::X(n) => Some(n as usize),
            Self::Zero => None,
        }
    }
}

/// One trapped guest load or store, decoded from a valid (ISV = 1) data abort syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MmioAccess {
    /// How many bytes move (ISS.SAS).
    pub width: AccessWidth,
    /// Loads only: sign-extend the loaded value to the register width (ISS.SSE).
    pub sign_extend: bool,
    /// The register written by a load or read by a store (ISS.SRT).
    pub register: TransferRegister,
    /// The register is 64-bit `Xn` rather than 32-bit `Wn` (ISS.SF).
    pub sixty_four: bool,
    /// The instruction has acquire/release semantics (ISS.AR); emulation is already ordered, so
    /// this is informational.
    pub acquire_release: bool,
}

/// The value a store puts on the bus: `register_value` truncated to the access width.
///
/// For [`TransferRegister::Zero`] pass `0` as `register_value`.
pub const fn store_value(access: &MmioAccess, register_value: u64) -> u64 {
    register_value & access.width.mask()
}

/// The value a load writes to its destination register, from the device's `raw` answer.
///
/// `raw` is first truncated to the access width, then sign-extended if ISS.SSE was set; a load
/// into a `W` register (ISS.SF = 0) clears bits 63:32, as the architecture does.
pub const fn load_result(access: &MmioAccess, raw: u64) -> u64 {
    let width = access.width;
    let mut value = raw & width.mask();
    if access.sign_extend && !matches!(width, AccessWidth::Doubleword) {
        let sign_bit = 1u64 << (width.bits() - 1);
        if value & sign_bit != 0 {
            value |= !width.mask();
        }
    }
    if !access.sixty_four {
        value &= 0xffff_ffff;
    }
    value
}

/// Why an emulated device refused an access. The caller injects an abort into the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MmioError {
    /// No register at this offset (or the offset is outside the device's window).
    BadOffset,
    /// The device does not accept accesses of this width.
    BadWidth,
    /// The offset is not a multiple of the access width.
    Unaligned,
    /// A write to a read-only register the device chooses to fault on.
    ReadOnly,
    /// A read of a write-only register the device chooses to fault on.
    WriteOnly,
    /// The data abort carried no usable syndrome (ISS.ISV = 0), so the access cannot be emulated.
    NoSyndrome,
    /// The passed-through device answered the forwarded access with an external abort.
    DeviceAbort,
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadOffset => "no register at this offset",
            Self::BadWidth => "unsupported access width",
            Self::Unaligned => "unaligned access",
            Self::ReadOnly => "write to a read-only register",
            Self::WriteOnly => "read of a write-only register",
            Self::NoSyndrome => "no instruction syndrome (ISV=0)",
            Self::DeviceAbort => "the device answered with an external abort",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(width: AccessWidth, sign_extend: bool, sixty_four: bool) -> MmioAccess {
        MmioAccess {
            width,
            sign_extend,
            register: TransferRegister::X(3),
            sixty_four,
            acquire_release: false,
        }
    }

    #[test]
    fn widths_from_sas_and_bytes() {
        assert_eq!(AccessWidth::from_sas(0), AccessWidth::Byte);
        assert_eq!(AccessWidth::from_sas(1), AccessWidth::Halfword);
        assert_eq!(AccessWidth::from_sas(2), AccessWidth::Word);
        assert_eq!(AccessWidth::from_sas(3), AccessWidth::Doubleword);
        assert_eq!(AccessWidth::from_sas(0xff), AccessWidth::Doubleword);
        for width in [
            AccessWidth::Byte,
            AccessWidth::Halfword,
            AccessWidth::Word,
            AccessWidth::Doubleword,
        ] {
            assert_eq!(AccessWidth::from_bytes(width.bytes()), Some(width));
            assert_eq!(u64::from(width.bits()), width.bytes() * 8);
            for offset in 0..32 {
                assert_eq!(
                    width.is_aligned(offset),
                    offset.is_multiple_of(width.bytes())
                );
            }
        }
        assert_eq!(
            [1, 2, 4, 8],
            [
                AccessWidth::Byte.bytes(),
                AccessWidth::Halfword.bytes(),
                AccessWidth::Word.bytes(),
                AccessWidth::Doubleword.bytes()
            ]
        );
        assert_eq!(AccessWidth::from_bytes(3), None);
        assert_eq!(AccessWidth::from_bytes(16), None);
        assert_eq!(AccessWidth::Doubleword.mask(), u64::MAX);
        assert_eq!(AccessWidth::Halfword.mask(), 0xffff);
    }

    #[test]
    fn transfer_register() {
        assert_eq!(TransferRegister::from_srt(0), TransferRegister::X(0));
        assert_eq!(TransferRegister::from_srt(30), TransferRegister::X(30));
        assert_eq!(TransferRegister::from_srt(31), TransferRegister::Zero);
        assert_eq!(TransferRegister::from_srt(31 + 32), TransferRegister::Zero);
        assert_eq!(TransferRegister::X(7).index(), Some(7));
        assert_eq!(TransferRegister::Zero.index(), None);
    }

    #[test]
    fn store_truncates() {
        let value = 0x1122_3344_5566_7788;
        assert_eq!(
            store_value(&access(AccessWidth::Byte, false, true), value),
            0x88
        );
        assert_eq!(
            store_value(&access(AccessWidth::Halfword, false, true), value),
            0x7788
        );
        assert_eq!(
            store_value(&access(AccessWidth::Word, false, true), value),
            0x5566_7788
        );
        assert_eq!(
            store_value(&access(AccessWidth::Doubleword, false, true), value),
            value
        );
    }

    #[test]
    fn load_zero_extends() {
        let raw = 0xdead_beef_cafe_f00d;
        assert_eq!(
            load_result(&access(AccessWidth::Byte, false, true), raw),
            0x0d
        );
        assert_eq!(
            load_result(&access(AccessWidth::Halfword, false, false), raw),
            0xf00d
        );
        assert_eq!(
            load_result(&access(AccessWidth::Word, false, true), raw),
            0xcafe_f00d
        );
        assert_eq!(
            load_result(&access(AccessWidth::Doubleword, false, true), raw),
            raw
        );
    }

    #[test]
    fn load_sign_extends_per_sse_and_sf() {
        // LDRSB Xt: 0x80 -> 0xffff_ffff_ffff_ff80
        assert_eq!(
            load_result(&access(AccessWidth::Byte, true, true), 0x80),
            0xffff_ffff_ffff_ff80
        );
        // LDRSB Wt: 0x80 -> 0x0000_0000_ffff_ff80
        assert_eq!(
            load_result(&access(AccessWidth::Byte, true, false), 0x80),
            0xffff_ff80
        );
        // LDRSH Xt with a positive value stays positive.
        assert_eq!(
            load_result(&access(AccessWidth::Halfword, true, true), 0x7fff),
            0x7fff
        );
        // LDRSW Xt
        assert_eq!(
            load_result(&access(AccessWidth::Word, true, true), 0x8000_0000),
            0xffff_ffff_8000_0000
        );
        // A 64-bit load ignores SSE.
        assert_eq!(
            load_result(&access(AccessWidth::Doubleword, true, true), 1),
            1
        );
        // Garbage above the width is dropped before extension.
        assert_eq!(
            load_result(&access(AccessWidth::Byte, true, true), 0x17f),
            0x7f
        );
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            alloc::format!("{}", MmioError::BadWidth),
            "unsupported access width"
        );
    }
}
