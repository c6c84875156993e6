//! SMMUv3 register offsets and bit layouts (IHI 0070, chapter 6), and the decoding of the ID
//! registers into [`Features`] checked against what cellvisor needs ([`check`]).
#![forbid(unsafe_code)]

use tock_registers::{LocalRegisterCopy, register_bitfields};

use super::SmmuError;
use super::ste::OutputSize;
use crate::mem::addr::PhysAddr;

/// `SMMU_IDR0`.
pub const IDR0: usize = 0x0000;
/// `SMMU_IDR1`.
pub const IDR1: usize = 0x0004;
/// `SMMU_IDR5`.
pub const IDR5: usize = 0x0014;
/// `SMMU_CR0`.
pub const CR0: usize = 0x0020;
/// `SMMU_CR0ACK`.
pub const CR0ACK: usize = 0x0024;
/// `SMMU_CR1`.
pub const CR1: usize = 0x0028;
/// `SMMU_CR2`.
pub const CR2: usize = 0x002C;
/// `SMMU_GBPA`.
pub const GBPA: usize = 0x0044;
/// `SMMU_IRQ_CTRL`.
pub const IRQ_CTRL: usize = 0x0050;
/// `SMMU_IRQ_CTRLACK`.
pub const IRQ_CTRLACK: usize = 0x0054;
/// `SMMU_GERROR`.
pub const GERROR: usize = 0x0060;
/// `SMMU_GERRORN`.
pub const GERRORN: usize = 0x0064;
/// `SMMU_GERROR_IRQ_CFG0` (64-bit; 0 = no MSI).
pub const GERROR_IRQ_CFG0: usize = 0x0068;
/// `SMMU_STRTAB_BASE` (64-bit).
pub const STRTAB_BASE: usize = 0x0080;
/// `SMMU_STRTAB_BASE_CFG`.
pub const STRTAB_BASE_CFG: usize = 0x0088;
/// `SMMU_CMDQ_BASE` (64-bit).
pub const CMDQ_BASE: usize = 0x0090;
/// `SMMU_CMDQ_PROD`.
pub const CMDQ_PROD: usize = 0x0098;
/// `SMMU_CMDQ_CONS`.
pub const CMDQ_CONS: usize = 0x009C;
/// `SMMU_EVENTQ_BASE` (64-bit).
pub const EVENTQ_BASE: usize = 0x00A0;
/// `SMMU_EVENTQ_IRQ_CFG0` (64-bit; 0 = no MSI).
pub const EVENTQ_IRQ_CFG0: usize = 0x00B0;
/// `SMMU_EVENTQ_PROD`: in register page 1 (offset 0x1_0000), as the spec places it.
pub const EVENTQ_PROD: usize = 0x1_00A8;
/// `SMMU_EVENTQ_CONS`: in register page 1.
pub const EVENTQ_CONS: usize = 0x1_00AC;

register_bitfields![u32,
    /// `SMMU_IDR0`: which translation features the SMMU implements.
    pub IDR0 [
        /// Stage 2 translation implemented.
        S2P OFFSET(0) NUMBITS(1) [],
        /// Stage 1 translation implemented.
        S1P OFFSET(1) NUMBITS(1) [],
        /// Translation table formats.
        TTF OFFSET(2) NUMBITS(2) [
            AArch32 = 0b01,
            AArch64 = 0b10,
            Both = 0b11
        ],
        /// Coherent access to tables, queues and (with the interconnect) DMA.
        COHACC OFFSET(4) NUMBITS(1) [],
        /// Broadcast TLB maintenance from the PEs is honoured.
        BTM OFFSET(5) NUMBITS(1) [],
        /// Hypervisor stage 1 contexts (and the `CMD_TLBI_EL2_*` commands).
        HYP OFFSET(9) NUMBITS(1) [],
        /// 16-bit ASIDs.
        ASID16 OFFSET(12) NUMBITS(1) [],
        /// MSIs for the queues and GERROR.
        MSI OFFSET(13) NUMBITS(1) [],
        /// 16-bit VMIDs (else 8-bit).
        VMID16 OFFSET(18) NUMBITS(1) [],
        /// Endianness of translation table walks.
        TTENDIAN OFFSET(21) NUMBITS(2) [
            Mixed = 0b00,
            Little = 0b10,
            Big = 0b11
        ],
        /// Multi-level stream tables: 0 linear only, 1 two-level too.
        ST_LEVEL OFFSET(27) NUMBITS(2) []
    ],

    /// `SMMU_IDR1`: table and queue sizes.
    pub IDR1 [
        /// Stream ID bits.
        SIDSIZE OFFSET(0) NUMBITS(6) [],
        /// log2 of the largest event queue.
        EVENTQS OFFSET(16) NUMBITS(5) [],
        /// log2 of the largest command queue.
        CMDQS OFFSET(21) NUMBITS(5) [],
        /// Queue base registers are fixed (preset by the implementation).
        QUEUES_PRESET OFFSET(29) NUMBITS(1) [],
        /// Stream table base registers are fixed.
        TABLES_PRESET OFFSET(30) NUMBITS(1) []
    ],

    /// `SMMU_IDR5`: output address size and granules.
    pub IDR5 [
        /// Output address size, the `VTCR_EL2.PS` encoding.
        OAS OFFSET(0) NUMBITS(3) [],
        /// 4 KiB translation granule.
        GRAN4K OFFSET(4) NUMBITS(1) [],
        /// 16 KiB translation granule.
        GRAN16K OFFSET(5) NUMBITS(1) [],
        /// 64 KiB translation granule.
        GRAN64K OFFSET(6) NUMBITS(1) []
    ],

    /// `SMMU_CR0` / `SMMU_CR0ACK`: enables.
    pub CR0 [
        /// Translation enabled (else `SMMU_GBPA` decides).
        SMMUEN OFFSET(0) NUMBITS(1) [],
        /// Event queue enabled.
        EVENTQEN OFFSET(2) NUMBITS(1) [],
        /// Command queue enabled.
        CMDQEN OFFSET(3) NUMBITS(1) []
    ],

    /// `SMMU_CR1`: attributes of the SMMU's own accesses to tables and queues.
    pub CR1 [
        /// Queue inner cacheability.
        QUEUE_IC OFFSET(0) NUMBITS(2) [NonCacheable = 0, WriteBack = 1, WriteThrough = 2],
        /// Queue outer cacheability.
        QUEUE_OC OFFSET(2) NUMBITS(2) [NonCacheable = 0, WriteBack = 1, WriteThrough = 2],
        /// Queue shareability.
        QUEUE_SH OFFSET(4) NUMBITS(2) [NonShareable = 0, Outer = 2, Inner = 3],
        /// Table inner cacheability.
        TABLE_IC OFFSET(6) NUMBITS(2) [NonCacheable = 0, WriteBack = 1, WriteThrough = 2],
        /// Table outer cacheability.
        TABLE_OC OFFSET(8) NUMBITS(2) [NonCacheable = 0, WriteBack = 1, WriteThrough = 2],
        /// Table shareability.
        TABLE_SH OFFSET(10) NUMBITS(2) [NonShareable = 0, Outer = 2, Inner = 3]
    ],

    /// `SMMU_CR2`.
    pub CR2 [
        /// EL2-E2H translation regime for hypervisor stage 1 (unused: 0).
        E2H OFFSET(0) NUMBITS(1) [],
        /// Record `C_BAD_STREAMID` for transactions with an out-of-range StreamID.
        RECINVSID OFFSET(1) NUMBITS(1) [],
        /// Private TLB maintenance: ignore broadcast TLBI from the PEs.
        PTM OFFSET(2) NUMBITS(1) []
    ],

    /// `SMMU_GBPA`: what happens to transactions while `SMMUEN` is 0.
    pub GBPA [
        /// Abort every incoming transaction (instead of bypassing it).
        ABORT OFFSET(20) NUMBITS(1) [],
        /// Write 1 with a change; reads 1 until the change took effect.
        UPDATE OFFSET(31) NUMBITS(1) []
    ],

    /// `SMMU_IRQ_CTRL` / `SMMU_IRQ_CTRLACK`: wired/MSI interrupt enables.
    pub IRQ_CTRL [
        /// Global error interrupt.
        GERROR_IRQEN OFFSET(0) NUMBITS(1) [],
        /// PRI queue interrupt.
        PRIQ_IRQEN OFFSET(1) NUMBITS(1) [],
        /// Event queue interrupt.
        EVENTQ_IRQEN OFFSET(2) NUMBITS(1) []
    ],

    /// `SMMU_STRTAB_BASE_CFG`.
    pub STRTAB_BASE_CFG [
        /// log2 of the number of stream table entries (linear format).
        LOG2SIZE OFFSET(0) NUMBITS(6) [],
        /// Two-level split (unused: linear).
        SPLIT OFFSET(6) NUMBITS(5) [],
        /// Stream table format.
        FMT OFFSET(16) NUMBITS(2) [Linear = 0, TwoLevel = 1]
    ],

    /// `SMMU_CMDQ_CONS`: the consumer index, and the error of a stopped queue.
    pub CMDQ_CONS [
        /// Why the command at the consumer index was not executed (valid with `GERROR.CMDQ_ERR`).
        ERR OFFSET(24) NUMBITS(7) []
    ],

    /// `SMMU_EVENTQ_PROD` / `SMMU_EVENTQ_CONS`: the overflow flag and its acknowledgement.
    pub EVENTQ_INDEX [
        /// `OVFLG` in PROD (toggled on overflow), `OVACKFLG` in CONS (copied by software).
        OVERFLOW OFFSET(31) NUMBITS(1) []
    ]
];

register_bitfields![u64,
    /// `SMMU_STRTAB_BASE`.
    pub STRTAB_BASE [
        /// Stream table address, bits [51:6].
        ADDR OFFSET(6) NUMBITS(46) [],
        /// Read-allocate hint.
        RA OFFSET(62) NUMBITS(1) []
    ],

    /// `SMMU_CMDQ_BASE` / `SMMU_EVENTQ_BASE`.
    pub QUEUE_BASE [
        /// log2 of the number of entries.
        LOG2SIZE OFFSET(0) NUMBITS(5) [],
        /// Queue address, bits [51:5].
        ADDR OFFSET(5) NUMBITS(47) [],
        /// Read-allocate (command queue) or write-allocate (event queue) hint.
        ALLOCATE OFFSET(62) NUMBITS(1) []
    ]
];

/// `SMMU_IDR0.TTF`: which descriptor formats the table walker understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableFormats {
    /// Reserved encoding 0b00.
    Reserved,
    /// AArch32 (LPAE) only.
    AArch32,
    /// AArch64 only.
    AArch64,
    /// Both.
    Both,
}

impl TableFormats {
    /// Whether AArch64 (VMSAv8-64) descriptors, the format of cellvisor's stage 2, are supported.
    pub fn aarch64(self) -> bool {
        matches!(self, Self::AArch64 | Self::Both)
    }
}

/// `SMMU_IDR0.TTENDIAN`: the endianness of table walks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableEndianness {
    /// Either, chosen per context (`S2ENDI`).
    Mixed,
    /// Reserved encoding 0b01.
    Reserved,
    /// Little-endian only.
    Little,
    /// Big-endian only.
    Big,
}

/// What an SMMUv3 implements, decoded from `SMMU_IDR0`, `SMMU_IDR1` and `SMMU_IDR5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// Physical address of the SMMU's register page 0 (for messages).
    pub base: PhysAddr,
    /// `IDR0.S1P`.
    pub stage1: bool,
    /// `IDR0.S2P`.
    pub stage2: bool,
    /// `IDR0.TTF`.
    pub table_formats: TableFormats,
    /// `IDR0.COHACC`: the SMMU's table and queue accesses are coherent with the PEs' caches.
    pub coherent: bool,
    /// `IDR0.BTM`.
    pub broadcast_tlb_maintenance: bool,
    /// `IDR0.HYP`: the `CMD_TLBI_EL2_*` commands exist.
    pub hyp: bool,
    /// `IDR0.VMID16`: VMIDs are 16 bits (else 8).
    pub vmid16: bool,
    /// `IDR0.TTENDIAN`.
    pub endianness: TableEndianness,
    /// `IDR0.ST_LEVEL`: two-level stream tables (cellvisor uses linear ones regardless).
    pub two_level_stream_table: bool,
    /// `IDR1.SIDSIZE`: StreamIDs have this many bits.
    pub stream_id_bits: u8,
    /// `IDR1.CMDQS`: the command queue may hold up to 2^this entries.
    pub command_queue_log2: u8,
    /// `IDR1.EVENTQS`: the event queue may hold up to 2^this entries.
    pub event_queue_log2: u8,
    /// `IDR1.TABLES_PRESET` or `QUEUES_PRESET`: base registers cannot be programmed.
    pub preset: bool,
    /// `IDR5.OAS`, `None` for a reserved encoding.
    pub output_size: Option<OutputSize>,
    /// `IDR5.GRAN4K`.
    pub granule_4k: bool,
}

impl Features {
    /// Decodes the ID registers of the SMMU at `base`.
    pub fn decode(base: PhysAddr, idr0: u32, idr1: u32, idr5: u32) -> Self {
        let idr0 = LocalRegisterCopy::<u32, IDR0::Register>::new(idr0);
        let idr1 = LocalRegisterCopy::<u32, IDR1::Register>::new(idr1);
        let idr5 = LocalRegisterCopy::<u32, IDR5::Register>::new(idr5);
        let table_formats = match idr0.read(IDR0::TTF) {
            0b01 => TableFormats::AArch32,
            0b10 => TableFormats::AArch64,
            0b11 => TableFormats::Both,
            _ => TableFormats::Reserved,
        };
        let endianness = match idr0.read(IDR0::TTENDIAN) {
            0b00 => TableEndianness::Mixed,
            0b10 => TableEndianness::Little,
            0b11 => TableEndianness::Big,
            _ => TableEndianness::Reserved,
        };
        Self {
            base,
            stage1: idr0.is_set(IDR0::S1P),
            stage2: idr0.is_set(IDR0::S2P),
            table_formats,
            coherent: idr0.is_set(IDR0::COHACC),
            broadcast_tlb_maintenance: idr0.is_set(IDR0::BTM),
            hyp: idr0.is_set(IDR0::HYP),
            vmid16: idr0.is_set(IDR0::VMID16),
            endianness,
            two_level_stream_table: idr0.read(IDR0::ST_LEVEL) == 1,
            stream_id_bits: idr1.read(IDR1::SIDSIZE) as u8,
            command_queue_log2: idr1.read(IDR1::CMDQS) as u8,
            event_queue_log2: idr1.read(IDR1::EVENTQS) as u8,
            preset: idr1.is_set(IDR1::TABLES_PRESET) || idr1.is_set(IDR1::QUEUES_PRESET),
            output_size: OutputSize::from_field(idr5.read(IDR5::OAS) as u8),
            granule_4k: idr5.is_set(IDR5::GRAN4K),
        }
    }

    /// Bits of VMID the SMMU implements.
    pub fn vmid_bits(&self) -> u32 {
        if self.vmid16 { 16 } else { 8 }
    }

    /// Bits of input (IPA) address a stage-2 table may translate: the OAS, as only AArch64
    /// tables are used (`IAS = OAS` unless AArch32 tables are implemented too, then at least 40).
    pub fn input_bits(&self) -> u32 {
        let oas = self.output_size.map_or(32, OutputSize::bits);
        if matches!(
            self.table_formats,
            TableFormats::Both | TableFormats::AArch32
        ) {
            oas.max(40)
        } else {
            oas
        }
    }
}

/// What cellvisor needs of the SMMU to confine its cells' devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requirements {
    /// The highest StreamID any cell's device uses (it sizes the linear stream table).
    pub max_stream_id: u32,
    /// The highest physical address any cell's stage-2 table holds or lives at (RAM, device
    /// pages, the tables themselves): the SMMU's output size must reach it.
    pub highest_output_address: PhysAddr,
    /// The highest VMID a cell uses.
    pub max_vmid: u16,
}

/// Whether `features` meet `needed`: the first unmet requirement as an error that says what is
/// wrong and how to fix it.
pub fn check(features: &Features, needed: &Requirements) -> Result<(), SmmuError> {
    let base = features.base;
    if !features.stage2 {
        return Err(SmmuError::NoStage2 { base });
    }
    if !features.table_formats.aarch64() {
        return Err(SmmuError::NoAArch64Tables { base });
    }
    if features.endianness == TableEndianness::Big {
        return Err(SmmuError::BigEndianTablesOnly { base });
    }
    if !features.granule_4k {
        return Err(SmmuError::No4KGranule { base });
    }
    let needed_bits = 64 - needed.highest_output_address.raw().leading_zeros();
    let output_bits = features.output_size.map_or(0, OutputSize::bits);
    if output_bits < needed_bits {
        return Err(SmmuError::OutputSizeTooSmall {
            base,
            output_bits,
            needed_bits,
        });
    }
    let stream_id_bits = u32::from(features.stream_id_bits);
    if stream_id_bits < 32 && needed.max_stream_id >> stream_id_bits != 0 {
        return Err(SmmuError::StreamIdTooWide {
            base,
            stream_id_bits,
            max_stream_id: needed.max_stream_id,
        });
    }
    let vmid_bits = features.vmid_bits();
    if u32::from(needed.max_vmid) >> vmid_bits != 0 {
        return Err(SmmuError::VmidTooWide {
            base,
            vmid_bits,
            max_vmid: needed.max_vmid,
        });
    }
    if features.preset {
        return Err(SmmuError::PresetTables { base });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: PhysAddr = PhysAddr::new(0x905_0000);

    /// QEMU 10.0's `arm-smmuv3` with `stage=2` (hw/arm/smmuv3.c, `smmuv3_init_regs`): S2P, TTF
    /// AArch64, COHACC, ASID16, VMID16, TTENDIAN little, STALL_MODEL 1, TERM_MODEL, ST_LEVEL 1;
    /// SIDSIZE 16, EVENTQS 19, CMDQS 19; OAS 44 bits, 4K/16K/64K granules.
    const QEMU_IDR0: u32 = 1
        | (2 << 2)
        | (1 << 4)
        | (1 << 12)
        | (1 << 18)
        | (2 << 21)
        | (1 << 24)
        | (1 << 26)
        | (1 << 27);
    const QEMU_IDR1: u32 = 16 | (19 << 16) | (19 << 21);
    const QEMU_IDR5: u32 = 4 | (1 << 4) | (1 << 5) | (1 << 6);

    fn qemu() -> Features {
        Features::decode(BASE, QEMU_IDR0, QEMU_IDR1, QEMU_IDR5)
    }

    fn needed() -> Requirements {
        Requirements {
            max_stream_id: 0x10,
            highest_output_address: PhysAddr::new(0x1_3fff_ffff),
            max_vmid: 2,
        }
    }

    #[test]
    fn decodes_qemu_stage2_smmu() {
        let features = qemu();
        assert!(features.stage2);
        assert!(!features.stage1);
        assert_eq!(features.table_formats, TableFormats::AArch64);
        assert!(features.coherent);
        assert!(!features.hyp);
        assert!(features.vmid16);
        assert_eq!(features.endianness, TableEndianness::Little);
        assert!(features.two_level_stream_table);
        assert_eq!(features.stream_id_bits, 16);
        assert_eq!(features.command_queue_log2, 19);
        assert_eq!(features.event_queue_log2, 19);
        assert_eq!(features.output_size, Some(OutputSize::Bits44));
        assert!(features.granule_4k);
        assert_eq!(features.input_bits(), 44);
        assert_eq!(check(&features, &needed()), Ok(()));
    }

    #[test]
    fn field_positions() {
        assert_eq!(IDR0::S2P::SET.value, 1 << 0);
        assert_eq!(IDR0::S1P::SET.value, 1 << 1);
        assert_eq!(IDR0::COHACC::SET.value, 1 << 4);
        assert_eq!(IDR0::HYP::SET.value, 1 << 9);
        assert_eq!(IDR0::VMID16::SET.value, 1 << 18);
        assert_eq!(IDR1::CMDQS.val(0x1f).value, 0x1f << 21);
        assert_eq!(IDR1::EVENTQS.val(0x1f).value, 0x1f << 16);
        assert_eq!(CR0::CMDQEN::SET.value, 1 << 3);
        assert_eq!(CR0::EVENTQEN::SET.value, 1 << 2);
        assert_eq!(CR2::RECINVSID::SET.value, 1 << 1);
        assert_eq!(CR2::PTM::SET.value, 1 << 2);
        assert_eq!(GBPA::ABORT::SET.value, 1 << 20);
        assert_eq!(GBPA::UPDATE::SET.value, 1 << 31);
        assert_eq!(IRQ_CTRL::EVENTQ_IRQEN::SET.value, 1 << 2);
        assert_eq!(CMDQ_CONS::ERR.val(0x7f).value, 0x7f << 24);
        assert_eq!(STRTAB_BASE_CFG::FMT::TwoLevel.value, 1 << 16);
        assert_eq!(STRTAB_BASE::RA::SET.value, 1 << 62);
        assert_eq!(STRTAB_BASE::ADDR.val(1).value, 1 << 6);
        assert_eq!(QUEUE_BASE::ADDR.val(1).value, 1 << 5);
        let cr1 = CR1::TABLE_SH::Inner + CR1::TABLE_OC::WriteBack + CR1::TABLE_IC::WriteBack;
        assert_eq!(cr1.value, (3 << 10) | (1 << 8) | (1 << 6));
    }

    #[test]
    fn refuses_stage1_only_with_the_qemu_fix() {
        let features = Features::decode(BASE, (QEMU_IDR0 & !1) | 2, QEMU_IDR1, QEMU_IDR5);
        let error = check(&features, &needed()).unwrap_err();
        assert_eq!(error, SmmuError::NoStage2 { base: BASE });
        let text = error.to_string();
        assert!(
            text.contains("0x9050000") && text.contains("S2P=0"),
            "{text}"
        );
        assert!(text.contains("-global arm-smmuv3.stage=2"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn refuses_aarch32_only_tables() {
        let features = Features::decode(
            BASE,
            (QEMU_IDR0 & !(3 << 2)) | (1 << 2),
            QEMU_IDR1,
            QEMU_IDR5,
        );
        assert_eq!(
            check(&features, &needed()),
            Err(SmmuError::NoAArch64Tables { base: BASE })
        );
        assert_eq!(features.input_bits(), 44);
    }

    #[test]
    fn refuses_big_endian_walks() {
        let features = Features::decode(BASE, QEMU_IDR0 | (3 << 21), QEMU_IDR1, QEMU_IDR5);
        assert_eq!(
            check(&features, &needed()),
            Err(SmmuError::BigEndianTablesOnly { base: BASE })
        );
    }

    #[test]
    fn refuses_missing_4k_granule() {
        let features = Features::decode(BASE, QEMU_IDR0, QEMU_IDR1, QEMU_IDR5 & !(1 << 4));
        assert_eq!(
            check(&features, &needed()),
            Err(SmmuError::No4KGranule { base: BASE })
        );
    }

    #[test]
    fn refuses_small_output_size() {
        // OAS 36 bits; the cell tables reach 0x1_3fff_ffff (33 bits) fine, 0x10_0000_0000 (37) not.
        let features = Features::decode(BASE, QEMU_IDR0, QEMU_IDR1, (QEMU_IDR5 & !7) | 1);
        assert_eq!(check(&features, &needed()), Ok(()));
        let far = Requirements {
            highest_output_address: PhysAddr::new(0x10_0000_0000),
            ..needed()
        };
        let error = check(&features, &far).unwrap_err();
        assert_eq!(
            error,
            SmmuError::OutputSizeTooSmall {
                base: BASE,
                output_bits: 36,
                needed_bits: 37
            }
        );
        assert!(error.to_string().contains("OAS"));
        // A reserved OAS encoding counts as no output at all.
        let reserved = Features::decode(BASE, QEMU_IDR0, QEMU_IDR1, QEMU_IDR5 | 7);
        assert_eq!(reserved.output_size, None);
        assert!(matches!(
            check(&reserved, &needed()),
            Err(SmmuError::OutputSizeTooSmall { output_bits: 0, .. })
        ));
    }

    #[test]
    fn refuses_stream_ids_beyond_sidsize() {
        let features = Features::decode(BASE, QEMU_IDR0, (QEMU_IDR1 & !0x3f) | 4, QEMU_IDR5);
        let ok = Requirements {
            max_stream_id: 15,
            ..needed()
        };
        assert_eq!(check(&features, &ok), Ok(()));
        assert_eq!(
            check(&features, &needed()),
            Err(SmmuError::StreamIdTooWide {
                base: BASE,
                stream_id_bits: 4,
                max_stream_id: 0x10
            })
        );
    }

    #[test]
    fn refuses_vmids_beyond_8_bits() {
        let features = Features::decode(BASE, QEMU_IDR0 & !(1 << 18), QEMU_IDR1, QEMU_IDR5);
        assert_eq!(features.vmid_bits(), 8);
        assert_eq!(check(&features, &needed()), Ok(()));
        let wide = Requirements {
            max_vmid: 256,
            ..needed()
        };
        assert_eq!(
            check(&features, &wide),
            Err(SmmuError::VmidTooWide {
                base: BASE,
                vmid_bits: 8,
                max_vmid: 256
            })
        );
    }

    #[test]
    fn refuses_preset_tables() {
        let features = Features::decode(BASE, QEMU_IDR0, QEMU_IDR1 | (1 << 30), QEMU_IDR5);
        assert_eq!(
            check(&features, &needed()),
            Err(SmmuError::PresetTables { base: BASE })
        );
    }
}
