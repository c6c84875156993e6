//! Stream Table Entries (IHI 0070 section 5.2): abort, bypass and stage-2-only entries, 64 bytes
//! as eight little-endian 64-bit words.
#![forbid(unsafe_code)]

use tock_registers::{LocalRegisterCopy, register_bitfields};

use super::SmmuError;
use super::regs::Features;
use crate::mem::PAGE_SIZE;
use crate::mem::addr::PhysAddr;
use crate::mem::stage2::{ROOT_LEVEL, VTCR_T0SZ};

register_bitfields![u64,
    /// STE word 0 (bits 63:0).
    pub STE_0 [
        /// Valid: 0 makes every transaction of the stream fault with `C_BAD_STE`.
        V OFFSET(0) NUMBITS(1) [],
        /// What the stream's transactions go through.
        Config OFFSET(1) NUMBITS(3) [
            Abort = 0b000,
            Bypass = 0b100,
            Stage1 = 0b101,
            Stage2 = 0b110,
            Nested = 0b111
        ]
    ],

    /// STE word 1 (bits 127:64).
    pub STE_1 [
        /// ATS: devices may not cache translations (0).
        EATS OFFSET(28) NUMBITS(2) [],
        /// Shareability of the stream's transactions.
        SHCFG OFFSET(44) NUMBITS(2) [
            NonShareable = 0b00,
            Incoming = 0b01,
            Outer = 0b10,
            Inner = 0b11
        ]
    ],

    /// STE word 2 (bits 191:128): the stage-2 context, laid out as `VTCR_EL2` from bit 32.
    pub STE_2 [
        /// VMID tagging the SMMU's TLB entries of the stream.
        S2VMID OFFSET(0) NUMBITS(16) [],
        /// IPA size is 2^(64 - S2T0SZ).
        S2T0SZ OFFSET(32) NUMBITS(6) [],
        /// Starting level, the `VTCR_EL2.SL0` encoding.
        S2SL0 OFFSET(38) NUMBITS(2) [],
        /// Inner cacheability of table walks.
        S2IR0 OFFSET(40) NUMBITS(2) [],
        /// Outer cacheability of table walks.
        S2OR0 OFFSET(42) NUMBITS(2) [],
        /// Shareability of table walks.
        S2SH0 OFFSET(44) NUMBITS(2) [],
        /// Granule.
        S2TG OFFSET(46) NUMBITS(2) [Granule4K = 0b00, Granule64K = 0b01, Granule16K = 0b10],
        /// Output (physical) address size, the `VTCR_EL2.PS` encoding.
        S2PS OFFSET(48) NUMBITS(3) [],
        /// AArch64 (VMSAv8-64) descriptors.
        S2AA64 OFFSET(51) NUMBITS(1) [],
        /// Big-endian table walks.
        S2ENDI OFFSET(52) NUMBITS(1) [],
        /// Access flag faults disabled (a descriptor with AF=0 is used as if AF=1).
        S2AFFD OFFSET(53) NUMBITS(1) [],
        /// Protected table walk (only matters with stage 1).
        S2PTW OFFSET(54) NUMBITS(1) [],
        /// Hardware dirty-state update.
        S2HD OFFSET(55) NUMBITS(1) [],
        /// Hardware access-flag update.
        S2HA OFFSET(56) NUMBITS(1) [],
        /// Stall (rather than terminate) faulting transactions.
        S2S OFFSET(57) NUMBITS(1) [],
        /// Record stage-2 faults in the event queue.
        S2R OFFSET(58) NUMBITS(1) []
    ],

    /// STE word 3 (bits 255:192).
    pub STE_3 [
        /// Stage-2 root table address, bits [51:4].
        S2TTB OFFSET(4) NUMBITS(48) []
    ]
];

/// Output address size: the `SMMU_IDR5.OAS`, `STE.S2PS` and `VTCR_EL2.PS` encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum OutputSize {
    /// 32 bits (4 GiB).
    Bits32 = 0,
    /// 36 bits.
    Bits36 = 1,
    /// 40 bits.
    Bits40 = 2,
    /// 42 bits.
    Bits42 = 3,
    /// 44 bits.
    Bits44 = 4,
    /// 48 bits.
    Bits48 = 5,
    /// 52 bits (SMMUv3.1 and later).
    Bits52 = 6,
}

impl OutputSize {
    /// The size with encoding `field`, `None` for the reserved 0b111.
    pub fn from_field(field: u8) -> Option<Self> {
        Some(match field {
            0 => Self::Bits32,
            1 => Self::Bits36,
            2 => Self::Bits40,
            3 => Self::Bits42,
            4 => Self::Bits44,
            5 => Self::Bits48,
            6 => Self::Bits52,
            _ => return None,
        })
    }

    /// The encoding.
    pub fn field(self) -> u8 {
        self as u8
    }

    /// Address bits.
    pub fn bits(self) -> u32 {
        match self {
            Self::Bits32 => 32,
            Self::Bits36 => 36,
            Self::Bits40 => 40,
            Self::Bits42 => 42,
            Self::Bits44 => 44,
            Self::Bits48 => 48,
            Self::Bits52 => 52,
        }
    }
}

/// Cacheability of the SMMU's table walks (`S2IR0`, `S2OR0`, as `VTCR_EL2.IRGN0`/`ORGN0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cacheability {
    /// Non-cacheable.
    NonCacheable = 0b00,
    /// Write-back, read- and write-allocate.
    WriteBackAllocate = 0b01,
    /// Write-through, read-allocate.
    WriteThrough = 0b10,
    /// Write-back, read-allocate, no write-allocate.
    WriteBackNoWriteAllocate = 0b11,
}

/// Shareability of the SMMU's table walks (`S2SH0`, as `VTCR_EL2.SH0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shareability {
    /// Non-shareable.
    NonShareable = 0b00,
    /// Outer shareable.
    Outer = 0b10,
    /// Inner shareable.
    Inner = 0b11,
}

/// A stage-2-only context: the SMMU walks a cell's stage-2 table (4 KiB granule, AArch64
/// descriptors, little-endian), never stalls, and cannot update descriptors itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S2Config {
    /// The cell's VMID (the one in its `VTTBR_EL2`).
    pub vmid: u16,
    /// Physical address of the root table (one 4 KiB page), `VTTBR_EL2.BADDR`.
    pub root: PhysAddr,
    /// IPA size is 2^(64 - `t0sz`) bytes, as `VTCR_EL2.T0SZ`.
    pub t0sz: u8,
    /// Level the walk starts at (0, 1 or 2 with the 4 KiB granule).
    pub start_level: u8,
    /// Output address size (`S2PS`): at least the highest PA the table maps.
    pub output_size: OutputSize,
    /// Inner cacheability of table walks.
    pub inner_cacheability: Cacheability,
    /// Outer cacheability of table walks.
    pub outer_cacheability: Cacheability,
    /// Shareability of table walks.
    pub shareability: Shareability,
    /// Record stage-2 faults in the event queue (`S2R`).
    pub record_faults: bool,
    /// Treat descriptors with AF=0 as accessed instead of faulting (`S2AFFD`). The CPU's stage 2
    /// faults on them (no FEAT_HAFDBS in use), so cellvisor keeps this false.
    pub access_flag_fault_disable: bool,
}

impl S2Config {
    /// The context of a cell's [`Stage2`](crate::mem::stage2::Stage2) table: the same geometry
    /// and walk attributes `VTCR_EL2` gets (`VTCR_T0SZ`, `VTCR_SL0`, inner shareable WB-WA),
    /// faults recorded.
    pub fn for_cell(vmid: u16, root: PhysAddr, output_size: OutputSize) -> Self {
        Self {
            vmid,
            root,
            t0sz: VTCR_T0SZ as u8,
            start_level: ROOT_LEVEL as u8,
            output_size,
            inner_cacheability: Cacheability::WriteBackAllocate,
            outer_cacheability: Cacheability::WriteBackAllocate,
            shareability: Shareability::Inner,
            record_faults: true,
            access_flag_fault_disable: false,
        }
    }

    /// `S2SL0` for the 4 KiB granule: 0b10 = level 0, 0b01 = level 1, 0b00 = level 2.
    fn sl0(&self) -> Option<u64> {
        match self.start_level {
            0 => Some(0b10),
            1 => Some(0b01),
            2 => Some(0b00),
            _ => None,
        }
    }

    /// Checks the context against the SMMU: VMID width, root alignment and reach, and an IPA
    /// size that the starting level resolves with one 4 KiB root table and the SMMU can input.
    pub fn validate(&self, features: &Features) -> Result<(), SmmuError> {
        let vmid_bits = features.vmid_bits();
        if u32::from(self.vmid) >> vmid_bits != 0 {
            return Err(SmmuError::VmidTooWide {
                base: features.base,
                vmid_bits,
                max_vmid: self.vmid,
            });
        }
        if !self.root.is_aligned(PAGE_SIZE) {
            return Err(SmmuError::RootMisaligned { root: self.root });
        }
        let output_bits = self.output_size.bits().min(
            features
                .output_size
                .map_or(self.output_size.bits(), OutputSize::bits),
        );
        if self.root.raw() >> output_bits != 0 {
            return Err(SmmuError::RootOutOfRange {
                root: self.root,
                output_bits,
            });
        }
        let invalid = SmmuError::InvalidInputSize {
            t0sz: self.t0sz,
            start_level: self.start_level,
            input_bits: features.input_bits(),
        };
        let Some(_) = self.sl0() else {
            return Err(invalid);
        };
        // S2T0SZ: at most 39 (no small translation tables), at least MAX(16, 64 - IAS).
        let min_t0sz = 16.max(64u32.saturating_sub(features.input_bits()));
        if u32::from(self.t0sz) > 39 || u32::from(self.t0sz) < min_t0sz {
            return Err(invalid);
        }
        // The starting level resolves bits above `shift`; with one 4 KiB root table (512
        // entries, no concatenation) it covers shift+1 ..= shift+9 input bits.
        let input_bits = 64 - u32::from(self.t0sz);
        let shift = 12 + 9 * (3 - u32::from(self.start_level));
        if input_bits <= shift || input_bits > shift + 9 {
            return Err(invalid);
        }
        Ok(())
    }
}

/// One 64-byte Stream Table Entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ste {
    /// The eight words, word 0 holding `V` and `Config`.
    pub words: [u64; 8],
}

impl Ste {
    /// Words in an STE.
    pub const WORDS: usize = 8;
    /// Bytes in an STE.
    pub const SIZE: usize = 64;

    /// Valid, `Config = abort`: every transaction is terminated, none recorded.
    pub fn abort() -> Self {
        let word0 = STE_0::V::SET + STE_0::Config::Abort;
        Self {
            words: [word0.value, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// Valid, `Config = bypass`, incoming shareability: transactions reach memory untranslated.
    /// For tests and documentation only; cellvisor never installs it.
    pub fn bypass() -> Self {
        let word0 = STE_0::V::SET + STE_0::Config::Bypass;
        let word1 = STE_1::SHCFG::Incoming;
        Self {
            words: [word0.value, word1.value, 0, 0, 0, 0, 0, 0],
        }
    }

    /// Valid, stage 1 bypassed, stage 2 through `config` (validated against `features`).
    pub fn stage2(config: &S2Config, features: &Features) -> Result<Self, SmmuError> {
        config.validate(features)?;
        let sl0 = config.sl0().ok_or(SmmuError::InvalidInputSize {
            t0sz: config.t0sz,
            start_level: config.start_level,
            input_bits: features.input_bits(),
        })?;
        let word0 = STE_0::V::SET + STE_0::Config::Stage2;
        let word1 = STE_1::SHCFG::Incoming + STE_1::EATS.val(0);
        let word2 = STE_2::S2VMID.val(u64::from(config.vmid))
            + STE_2::S2T0SZ.val(u64::from(config.t0sz))
            + STE_2::S2SL0.val(sl0)
            + STE_2::S2IR0.val(config.inner_cacheability as u64)
            + STE_2::S2OR0.val(config.outer_cacheability as u64)
            + STE_2::S2SH0.val(config.shareability as u64)
            + STE_2::S2TG::Granule4K
            + STE_2::S2PS.val(u64::from(config.output_size.field()))
            + STE_2::S2AA64::SET
            + STE_2::S2ENDI::CLEAR
            + STE_2::S2AFFD.val(u64::from(config.access_flag_fault_disable))
            + STE_2::S2PTW::SET
            + STE_2::S2HD::CLEAR
            + STE_2::S2HA::CLEAR
            + STE_2::S2S::CLEAR
            + STE_2::S2R.val(u64::from(config.record_faults));
        let word3 = STE_3::S2TTB.val(config.root.raw() >> 4);
        Ok(Self {
            words: [
                word0.value,
                word1.value,
                word2.value,
                word3.value,
                0,
                0,
                0,
                0,
            ],
        })
    }

    /// The entry's word 0 fields: whether it is valid and its `Config`.
    fn word0(&self) -> LocalRegisterCopy<u64, STE_0::Register> {
        LocalRegisterCopy::new(self.words[0])
    }

    /// Whether the entry is valid with `Config = abort`.
    pub fn is_abort(&self) -> bool {
        let word0 = self.word0();
        word0.is_set(STE_0::V) && word0.read(STE_0::Config) == STE_0::Config::Abort.value >> 1
    }

    /// The VMID of a valid stage-2 entry, `None` for any other entry.
    pub fn stage2_vmid(&self) -> Option<u16> {
        let word0 = self.word0();
        if !word0.is_set(STE_0::V) || word0.read(STE_0::Config) != STE_0::Config::Stage2.value >> 1
        {
            return None;
        }
        let word2 = LocalRegisterCopy::<u64, STE_2::Register>::new(self.words[2]);
        Some(word2.read(STE_2::S2VMID) as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::stage2::VTCR_SL0;

    const QEMU_IDR0: u32 = 1 | (2 << 2) | (1 << 4) | (1 << 12) | (1 << 18) | (2 << 21);
    const QEMU_IDR1: u32 = 16 | (19 << 16) | (19 << 21);
    const QEMU_IDR5: u32 = 4 | (1 << 4);

    fn qemu() -> Features {
        Features::decode(PhysAddr::new(0x905_0000), QEMU_IDR0, QEMU_IDR1, QEMU_IDR5)
    }

    fn bits(word: u64, high: u32, low: u32) -> u64 {
        (word >> low) & ((1u64 << (high - low + 1)) - 1)
    }

    fn cell() -> S2Config {
        S2Config::for_cell(3, PhysAddr::new(0x4123_4000), OutputSize::Bits40)
    }

    #[test]
    fn abort_entry() {
        let ste = Ste::abort();
        assert_eq!(ste.words, [1, 0, 0, 0, 0, 0, 0, 0]);
        assert!(ste.is_abort());
        assert_eq!(ste.stage2_vmid(), None);
    }

    #[test]
    fn bypass_entry() {
        let ste = Ste::bypass();
        assert_eq!(bits(ste.words[0], 0, 0), 1);
        assert_eq!(bits(ste.words[0], 3, 1), 0b100);
        // SHCFG, STE bits [109:108].
        assert_eq!(bits(ste.words[1], 45, 44), 0b01);
        assert!(!ste.is_abort());
    }

    #[test]
    fn stage2_fields_at_spec_positions() {
        let ste = Ste::stage2(&cell(), &qemu()).unwrap();
        let [w0, w1, w2, w3, w4, w5, w6, w7] = ste.words;
        assert_eq!(bits(w0, 0, 0), 1, "V");
        assert_eq!(bits(w0, 3, 1), 0b110, "Config: S1 bypass, S2 translate");
        assert_eq!(w0 >> 4, 0, "S1 fields unused");
        assert_eq!(bits(w1, 45, 44), 0b01, "SHCFG incoming");
        assert_eq!(bits(w1, 29, 28), 0, "EATS");
        assert_eq!(w1 & !(0b11 << 44), 0);
        assert_eq!(bits(w2, 15, 0), 3, "S2VMID");
        assert_eq!(bits(w2, 31, 16), 0);
        assert_eq!(bits(w2, 37, 32), 25, "S2T0SZ");
        assert_eq!(bits(w2, 39, 38), 0b01, "S2SL0: level 1");
        assert_eq!(bits(w2, 41, 40), 0b01, "S2IR0 WB-WA");
        assert_eq!(bits(w2, 43, 42), 0b01, "S2OR0 WB-WA");
        assert_eq!(bits(w2, 45, 44), 0b11, "S2SH0 inner");
        assert_eq!(bits(w2, 47, 46), 0b00, "S2TG 4K");
        assert_eq!(bits(w2, 50, 48), 0b010, "S2PS 40 bits");
        assert_eq!(bits(w2, 51, 51), 1, "S2AA64");
        assert_eq!(bits(w2, 52, 52), 0, "S2ENDI");
        assert_eq!(bits(w2, 53, 53), 0, "S2AFFD");
        assert_eq!(bits(w2, 54, 54), 1, "S2PTW");
        assert_eq!(bits(w2, 56, 55), 0, "S2HD, S2HA");
        assert_eq!(bits(w2, 57, 57), 0, "S2S");
        assert_eq!(bits(w2, 58, 58), 1, "S2R");
        assert_eq!(bits(w2, 63, 59), 0);
        assert_eq!(bits(w3, 51, 4) << 4, 0x4123_4000, "S2TTB");
        assert_eq!(w3 & 0xf, 0);
        assert_eq!(w3 >> 52, 0);
        assert_eq!([w4, w5, w6, w7], [0; 4]);
        assert_eq!(ste.stage2_vmid(), Some(3));
        assert!(!ste.is_abort());
    }

    #[test]
    fn stage2_word2_is_qemu_word5_layout() {
        // QEMU reads 32-bit word 5 (bits 191:160): S2T0SZ [5:0], S2SL0 [7:6], S2TG [15:14],
        // S2PS [18:16], S2AA64 19, S2ENDI 20, S2AFFD 21, S2HD 23, S2HA 24, S2S 25, S2R 26.
        let mut config = cell();
        config.access_flag_fault_disable = true;
        let word5 = (Ste::stage2(&config, &qemu()).unwrap().words[2] >> 32) as u32;
        assert_eq!(word5 & 0x3f, 25);
        assert_eq!((word5 >> 6) & 3, 1);
        assert_eq!((word5 >> 14) & 3, 0);
        assert_eq!((word5 >> 16) & 7, 2);
        assert_eq!((word5 >> 19) & 1, 1);
        assert_eq!((word5 >> 20) & 1, 0);
        assert_eq!((word5 >> 21) & 1, 1);
        assert_eq!((word5 >> 25) & 1, 0);
        assert_eq!((word5 >> 26) & 1, 1);
    }

    #[test]
    fn cell_context_matches_vtcr() {
        let config = cell();
        assert_eq!(u64::from(config.t0sz), VTCR_T0SZ);
        assert_eq!(config.sl0(), Some(VTCR_SL0));
        assert_eq!(config.validate(&qemu()), Ok(()));
    }

    #[test]
    fn records_faults_only_when_asked() {
        let mut config = cell();
        config.record_faults = false;
        let ste = Ste::stage2(&config, &qemu()).unwrap();
        assert_eq!(bits(ste.words[2], 58, 58), 0);
    }

    #[test]
    fn refuses_misaligned_root() {
        let mut config = cell();
        config.root = PhysAddr::new(0x4123_4010);
        assert_eq!(
            Ste::stage2(&config, &qemu()),
            Err(SmmuError::RootMisaligned { root: config.root })
        );
    }

    #[test]
    fn refuses_root_beyond_output_size() {
        let mut config = cell();
        config.root = PhysAddr::new(1 << 40);
        assert_eq!(
            Ste::stage2(&config, &qemu()),
            Err(SmmuError::RootOutOfRange {
                root: config.root,
                output_bits: 40
            })
        );
        // S2PS 48 is capped by QEMU's 44-bit OAS.
        config.output_size = OutputSize::Bits48;
        config.root = PhysAddr::new(1 << 44);
        assert!(matches!(
            Ste::stage2(&config, &qemu()),
            Err(SmmuError::RootOutOfRange {
                output_bits: 44,
                ..
            })
        ));
    }

    #[test]
    fn refuses_vmid_wider_than_the_smmu() {
        let narrow = Features::decode(
            PhysAddr::new(0x905_0000),
            QEMU_IDR0 & !(1 << 18),
            QEMU_IDR1,
            QEMU_IDR5,
        );
        let mut config = cell();
        config.vmid = 255;
        assert_eq!(config.validate(&narrow), Ok(()));
        config.vmid = 256;
        assert!(matches!(
            Ste::stage2(&config, &narrow),
            Err(SmmuError::VmidTooWide {
                vmid_bits: 8,
                max_vmid: 256,
                ..
            })
        ));
    }

    #[test]
    fn input_size_and_level_combinations() {
        let features = qemu();
        let valid = |t0sz: u8, start_level: u8| {
            let mut config = cell();
            config.t0sz = t0sz;
            config.start_level = start_level;
            config.validate(&features).is_ok()
        };
        // Level 1 covers 31..=39 bits with one table.
        assert!(valid(25, 1));
        assert!(valid(33, 1));
        assert!(!valid(24, 1), "40 bits need concatenated level-1 tables");
        assert!(!valid(34, 1), "30 bits start at level 2");
        // Level 2: 22..=30 bits, but S2T0SZ is at most 39.
        assert!(valid(34, 2));
        assert!(valid(39, 2));
        assert!(!valid(40, 2));
        // Level 0: 40..=44 bits here (IAS = OAS = 44 bits).
        assert!(valid(20, 0));
        assert!(!valid(19, 0), "45 bits exceed the 44-bit input size");
        assert!(!valid(25, 0));
        assert!(!valid(25, 3), "level 3 is no starting level");
        let error = {
            let mut config = cell();
            config.start_level = 2;
            Ste::stage2(&config, &features).unwrap_err()
        };
        assert_eq!(
            error,
            SmmuError::InvalidInputSize {
                t0sz: 25,
                start_level: 2,
                input_bits: 44
            }
        );
    }

    #[test]
    fn output_size_encoding() {
        for field in 0..=6 {
            assert_eq!(OutputSize::from_field(field).unwrap().field(), field);
        }
        assert_eq!(OutputSize::from_field(7), None);
        assert_eq!(OutputSize::Bits44.bits(), 44);
        assert_eq!(OutputSize::Bits52.bits(), 52);
    }
}
