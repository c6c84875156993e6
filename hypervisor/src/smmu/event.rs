//! Event queue records (IHI 0070 chapter 7, 32 bytes as four 64-bit words) and `SMMU_GERROR`
//! global errors, decoded without trusting any field: an unknown event is [`EventKind::Other`].
#![forbid(unsafe_code)]

use core::fmt;

use tock_registers::{LocalRegisterCopy, register_bitfields};

register_bitfields![u64,
    /// Event word 0.
    pub EVT_0 [
        /// Event type.
        EventType OFFSET(0) NUMBITS(8) [],
        /// `SubstreamID` valid.
        SSV OFFSET(11) NUMBITS(1) [],
        /// SubstreamID.
        SubstreamID OFFSET(12) NUMBITS(20) [],
        /// StreamID of the transaction.
        StreamID OFFSET(32) NUMBITS(32) []
    ],

    /// Event word 1 (fault records).
    pub EVT_1 [
        /// Stall tag (stall model only).
        STAG OFFSET(0) NUMBITS(16) [],
        /// The transaction is stalled (never with `S2S = 0`).
        Stall OFFSET(31) NUMBITS(1) [],
        /// Privileged (1) or unprivileged.
        PnU OFFSET(33) NUMBITS(1) [],
        /// Instruction (1) or data.
        InD OFFSET(34) NUMBITS(1) [],
        /// Read (1) or write.
        RnW OFFSET(35) NUMBITS(1) [],
        /// The fault was in stage 2.
        S2 OFFSET(39) NUMBITS(1) [],
        /// What the faulting access was: CD fetch, table walk, or the input transaction.
        CLASS OFFSET(40) NUMBITS(2) [CD = 0b00, TT = 0b01, IN = 0b10]
    ],

    /// Event word 3 of the translation faults.
    pub EVT_3 [
        /// Bits [51:12] of the intermediate physical address (when stage 1 produced it).
        IPA OFFSET(12) NUMBITS(40) []
    ]
];

/// The event types of section 7.3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// `F_UUT` (0x01): unsupported upstream transaction.
    UnsupportedUpstream,
    /// `C_BAD_STREAMID` (0x02): StreamID beyond the stream table.
    BadStreamId,
    /// `F_STE_FETCH` (0x03): abort fetching the STE.
    SteFetch,
    /// `C_BAD_STE` (0x04): invalid or illegal STE.
    BadSte,
    /// `F_BAD_ATS_TREQ` (0x05).
    BadAtsRequest,
    /// `F_STREAM_DISABLED` (0x06).
    StreamDisabled,
    /// `F_TRANSL_FORBIDDEN` (0x07).
    TranslationForbidden,
    /// `C_BAD_SUBSTREAMID` (0x08).
    BadSubstreamId,
    /// `F_CD_FETCH` (0x09).
    CdFetch,
    /// `C_BAD_CD` (0x0A).
    BadCd,
    /// `F_WALK_EABT` (0x0B): external abort during a table walk.
    WalkExternalAbort,
    /// `F_TRANSLATION` (0x10): no valid descriptor (the address is not the cell's).
    Translation,
    /// `F_ADDR_SIZE` (0x11): an address beyond the input or output size.
    AddrSize,
    /// `F_ACCESS` (0x12): access flag 0.
    Access,
    /// `F_PERMISSION` (0x13): e.g. a write to a read-only mapping.
    Permission,
    /// `F_TLB_CONFLICT` (0x20).
    TlbConflict,
    /// `F_CFG_CONFLICT` (0x21).
    ConfigConflict,
    /// `E_PAGE_REQUEST` (0x24).
    PageRequest,
    /// `F_VMS_FETCH` (0x25).
    VmsFetch,
    /// Any other event type.
    Other(u8),
}

impl EventKind {
    /// The kind of event type `id`.
    pub fn from_id(id: u8) -> Self {
        match id {
            0x01 => Self::UnsupportedUpstream,
            0x02 => Self::BadStreamId,
            0x03 => Self::SteFetch,
            0x04 => Self::BadSte,
            0x05 => Self::BadAtsRequest,
            0x06 => Self::StreamDisabled,
            0x07 => Self::TranslationForbidden,
            0x08 => Self::BadSubstreamId,
            0x09 => Self::CdFetch,
            0x0A => Self::BadCd,
            0x0B => Self::WalkExternalAbort,
            0x10 => Self::Translation,
            0x11 => Self::AddrSize,
            0x12 => Self::Access,
            0x13 => Self::Permission,
            0x20 => Self::TlbConflict,
            0x21 => Self::ConfigConflict,
            0x24 => Self::PageRequest,
            0x25 => Self::VmsFetch,
            other => Self::Other(other),
        }
    }

    /// Whether the record is a translation fault whose word 1 and addresses are meaningful.
    pub fn is_translation_fault(self) -> bool {
        matches!(
            self,
            Self::WalkExternalAbort
                | Self::Translation
                | Self::AddrSize
                | Self::Access
                | Self::Permission
        )
    }

    /// Whether word 2 holds the transaction's input address (`F_UUT`, `F_TRANSL_FORBIDDEN`,
    /// the translation faults).
    fn has_input_address(self) -> bool {
        self.is_translation_fault()
            || matches!(self, Self::UnsupportedUpstream | Self::TranslationForbidden)
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::UnsupportedUpstream => "unsupported transaction",
            Self::BadStreamId => "bad stream ID",
            Self::SteFetch => "STE fetch abort",
            Self::BadSte => "bad STE",
            Self::BadAtsRequest => "bad ATS request",
            Self::StreamDisabled => "stream disabled",
            Self::TranslationForbidden => "translation forbidden",
            Self::BadSubstreamId => "bad substream ID",
            Self::CdFetch => "CD fetch abort",
            Self::BadCd => "bad CD",
            Self::WalkExternalAbort => "table walk abort",
            Self::Translation => "translation",
            Self::AddrSize => "address size",
            Self::Access => "access flag",
            Self::Permission => "permission",
            Self::TlbConflict => "TLB conflict",
            Self::ConfigConflict => "configuration conflict",
            Self::PageRequest => "page request",
            Self::VmsFetch => "VMS fetch abort",
            Self::Other(id) => return write!(f, "event {id:#04x}"),
        };
        f.write_str(name)
    }
}

/// Direction of a faulting access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A read by the device (a DMA from memory).
    Read,
    /// A write by the device (a DMA to memory).
    Write,
}

/// One decoded event record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// The device's stream.
    pub stream_id: u32,
    /// The SubstreamID (PASID), if the transaction had one.
    pub substream_id: Option<u32>,
    /// The address the device used: for cellvisor's stage-2-only streams, the IPA. `None` for
    /// events without one.
    pub input_address: Option<u64>,
    /// The IPA field of a translation fault (`None` if zero or not a translation fault). QEMU
    /// leaves it zero for stage-2-only streams, whose IPA is `input_address`.
    pub ipa: Option<u64>,
    /// Read or write, for translation faults.
    pub access: Option<Access>,
    /// The fault was reported by stage 2 (translation faults).
    pub stage2: bool,
    /// The raw record.
    pub raw: [u64; 4],
}

impl Event {
    /// Bytes in an event record.
    pub const SIZE: usize = 32;
    /// 64-bit words in an event record.
    pub const WORDS: usize = 4;

    /// Decodes a record; every bit pattern decodes.
    pub fn decode(raw: [u64; 4]) -> Self {
        let word0 = LocalRegisterCopy::<u64, EVT_0::Register>::new(raw[0]);
        let word1 = LocalRegisterCopy::<u64, EVT_1::Register>::new(raw[1]);
        let word3 = LocalRegisterCopy::<u64, EVT_3::Register>::new(raw[3]);
        let kind = EventKind::from_id(word0.read(EVT_0::EventType) as u8);
        let fault = kind.is_translation_fault();
        let ipa = word3.read(EVT_3::IPA) << 12;
        Self {
            kind,
            stream_id: word0.read(EVT_0::StreamID) as u32,
            substream_id: word0
                .is_set(EVT_0::SSV)
                .then(|| word0.read(EVT_0::SubstreamID) as u32),
            input_address: kind.has_input_address().then_some(raw[2]),
            ipa: (fault && ipa != 0).then_some(ipa),
            access: (fault || kind == EventKind::TranslationForbidden).then(|| {
                if word1.is_set(EVT_1::RnW) {
                    Access::Read
                } else {
                    Access::Write
                }
            }),
            stage2: fault && word1.is_set(EVT_1::S2),
            raw,
        }
    }
}

impl fmt::Display for Event {
    /// E.g. `stream 0x10 IPA 0x400000000 (translation, write)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stream {:#x}", self.stream_id)?;
        if let Some(address) = self.input_address {
            write!(f, " IPA {address:#x}")?;
        }
        write!(f, " ({}", self.kind)?;
        match self.access {
            Some(Access::Read) => f.write_str(", read")?,
            Some(Access::Write) => f.write_str(", write")?,
            None => {}
        }
        f.write_str(")")
    }
}

/// One `SMMU_GERROR` condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalError {
    /// `CMDQ_ERR` (bit 0): the command queue stopped at a bad command.
    CommandQueue,
    /// `EVENTQ_ABT_ERR` (bit 2): an abort writing the event queue (QEMU: also when it is full).
    EventQueueAbort,
    /// `PRIQ_ABT_ERR` (bit 3).
    PriQueueAbort,
    /// `MSI_CMDQ_ABT_ERR` (bit 4).
    MsiCommandQueueAbort,
    /// `MSI_EVENTQ_ABT_ERR` (bit 5).
    MsiEventQueueAbort,
    /// `MSI_PRIQ_ABT_ERR` (bit 6).
    MsiPriQueueAbort,
    /// `MSI_GERROR_ABT_ERR` (bit 7).
    MsiGerrorAbort,
    /// `SFM_ERR` (bit 8): the SMMU entered service failure mode and stopped translating.
    ServiceFailure,
}

impl GlobalError {
    const ALL: [(u32, Self); 8] = [
        (0, Self::CommandQueue),
        (2, Self::EventQueueAbort),
        (3, Self::PriQueueAbort),
        (4, Self::MsiCommandQueueAbort),
        (5, Self::MsiEventQueueAbort),
        (6, Self::MsiPriQueueAbort),
        (7, Self::MsiGerrorAbort),
        (8, Self::ServiceFailure),
    ];
}

impl fmt::Display for GlobalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CommandQueue => "command queue error (CMDQ_ERR)",
            Self::EventQueueAbort => "event queue write abort or overflow (EVENTQ_ABT_ERR)",
            Self::PriQueueAbort => "PRI queue write abort (PRIQ_ABT_ERR)",
            Self::MsiCommandQueueAbort => "CMD_SYNC MSI abort (MSI_CMDQ_ABT_ERR)",
            Self::MsiEventQueueAbort => "event queue MSI abort (MSI_EVENTQ_ABT_ERR)",
            Self::MsiPriQueueAbort => "PRI queue MSI abort (MSI_PRIQ_ABT_ERR)",
            Self::MsiGerrorAbort => "GERROR MSI abort (MSI_GERROR_ABT_ERR)",
            Self::ServiceFailure => "service failure mode (SFM_ERR)",
        })
    }
}

/// The active global errors: the bits where `SMMU_GERROR` differs from `SMMU_GERRORN`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GlobalErrors {
    /// The active bits.
    pub bits: u32,
}

impl GlobalErrors {
    /// The errors active for this `SMMU_GERROR` / `SMMU_GERRORN` pair.
    pub fn active(gerror: u32, gerrorn: u32) -> Self {
        Self {
            bits: gerror ^ gerrorn,
        }
    }

    /// Whether no error is active.
    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    /// Whether `error` is active.
    pub fn contains(self, error: GlobalError) -> bool {
        self.iter().any(|active| active == error)
    }

    /// The active errors, lowest bit first (unknown bits are skipped; see `bits`).
    pub fn iter(self) -> impl Iterator<Item = GlobalError> {
        GlobalError::ALL
            .into_iter()
            .filter(move |(bit, _)| self.bits & (1 << bit) != 0)
            .map(|(_, error)| error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u8, stream_id: u32, word1: u64, address: u64, word3: u64) -> [u64; 4] {
        [
            u64::from(id) | (u64::from(stream_id) << 32),
            word1,
            address,
            word3,
        ]
    }

    #[test]
    fn stage2_translation_fault_as_qemu_writes_it() {
        // QEMU (smmuv3_record_event, F_TRANSLATION): type, SID, S2 = 1, InputAddr, RnW = 0.
        let event = Event::decode(record(0x10, 0x10, 1 << 39, 0x4_0000_0000, 0));
        assert_eq!(event.kind, EventKind::Translation);
        assert_eq!(event.stream_id, 0x10);
        assert_eq!(event.substream_id, None);
        assert_eq!(event.input_address, Some(0x4_0000_0000));
        assert_eq!(event.ipa, None);
        assert_eq!(event.access, Some(Access::Write));
        assert!(event.stage2);
        assert_eq!(
            event.to_string(),
            "stream 0x10 IPA 0x400000000 (translation, write)"
        );
    }

    #[test]
    fn permission_fault_read_with_ipa_and_substream() {
        let word0 = 0x13 | (1 << 11) | (0x5 << 12) | (0x208u64 << 32);
        let word1 = (1 << 35) | (1 << 39) | (0b01 << 40);
        let event = Event::decode([word0, word1, 0x1234, 0x8_0000_1fff]);
        assert_eq!(event.kind, EventKind::Permission);
        assert_eq!(event.stream_id, 0x208);
        assert_eq!(event.substream_id, Some(5));
        assert_eq!(event.access, Some(Access::Read));
        assert_eq!(event.ipa, Some(0x8_0000_1000));
        assert_eq!(event.input_address, Some(0x1234));
    }

    #[test]
    fn configuration_errors_have_no_address() {
        for (id, kind) in [
            (0x02, EventKind::BadStreamId),
            (0x04, EventKind::BadSte),
            (0x06, EventKind::StreamDisabled),
        ] {
            let event = Event::decode(record(id, 7, u64::MAX, 0xdead, 0xbeef));
            assert_eq!(event.kind, kind);
            assert_eq!(event.input_address, None);
            assert_eq!(event.access, None);
            assert!(!event.stage2);
            assert_eq!(event.to_string(), format!("stream 0x7 ({kind})"));
        }
    }

    #[test]
    fn every_fault_kind() {
        for (id, kind) in [
            (0x01, EventKind::UnsupportedUpstream),
            (0x03, EventKind::SteFetch),
            (0x05, EventKind::BadAtsRequest),
            (0x07, EventKind::TranslationForbidden),
            (0x08, EventKind::BadSubstreamId),
            (0x09, EventKind::CdFetch),
            (0x0a, EventKind::BadCd),
            (0x0b, EventKind::WalkExternalAbort),
            (0x11, EventKind::AddrSize),
            (0x12, EventKind::Access),
            (0x20, EventKind::TlbConflict),
            (0x21, EventKind::ConfigConflict),
            (0x24, EventKind::PageRequest),
            (0x25, EventKind::VmsFetch),
        ] {
            assert_eq!(EventKind::from_id(id), kind);
        }
    }

    #[test]
    fn unknown_ids_never_panic() {
        for id in 0..=u8::MAX {
            let event = Event::decode([u64::from(id) | !0xff, u64::MAX, u64::MAX, u64::MAX]);
            let _ = event.to_string();
        }
        let event = Event::decode(record(0xee, 1, 0, 0, 0));
        assert_eq!(event.kind, EventKind::Other(0xee));
        assert_eq!(event.to_string(), "stream 0x1 (event 0xee)");
    }

    #[test]
    fn global_errors() {
        assert!(GlobalErrors::active(0x105, 0x105).is_empty());
        // GERROR toggled CMDQ_ERR and SFM_ERR; EVENTQ_ABT_ERR was acknowledged already.
        let errors = GlobalErrors::active(0x105, 0x004);
        let list: Vec<_> = errors.iter().collect();
        assert_eq!(
            list,
            [GlobalError::CommandQueue, GlobalError::ServiceFailure]
        );
        assert!(errors.contains(GlobalError::CommandQueue));
        assert!(!errors.contains(GlobalError::EventQueueAbort));
        let all: Vec<_> = GlobalErrors::active(0x1fd, 0).iter().collect();
        assert_eq!(all.len(), 8);
        assert_eq!(
            GlobalErrors::active(0x2, 0).iter().count(),
            0,
            "bit 1 is reserved"
        );
        assert!(GlobalError::ServiceFailure.to_string().contains("SFM_ERR"));
    }
}
