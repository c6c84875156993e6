//! Command queue entries (IHI 0070 chapter 4): the configuration and TLB invalidations cellvisor
//! issues, 16 bytes as two little-endian 64-bit words.
#![forbid(unsafe_code)]

use core::fmt;

use tock_registers::register_bitfields;

register_bitfields![u64,
    /// Command word 0 (bits 63:0).
    pub CMD_0 [
        /// Opcode.
        Opcode OFFSET(0) NUMBITS(8) [],
        /// `CMD_SYNC` completion signal.
        CS OFFSET(12) NUMBITS(2) [None = 0b00, Irq = 0b01, Sev = 0b10],
        /// `CMD_TLBI_*`: VMID.
        VMID OFFSET(32) NUMBITS(16) [],
        /// `CMD_CFGI_*`: StreamID.
        SID OFFSET(32) NUMBITS(32) []
    ],

    /// Command word 1 (bits 127:64).
    pub CMD_1 [
        /// `CMD_CFGI_STE`: only the STE itself changed (not a CD table behind it).
        Leaf OFFSET(0) NUMBITS(1) [],
        /// `CMD_CFGI_STE_RANGE`: invalidates 2^(Range + 1) StreamIDs (31: all).
        Range OFFSET(0) NUMBITS(5) []
    ]
];

/// `CMD_CFGI_STE`.
pub const OPCODE_CFGI_STE: u8 = 0x03;
/// `CMD_CFGI_ALL` (`CMD_CFGI_STE_RANGE` with Range = 31).
pub const OPCODE_CFGI_ALL: u8 = 0x04;
/// `CMD_TLBI_EL2_ALL`.
pub const OPCODE_TLBI_EL2_ALL: u8 = 0x20;
/// `CMD_TLBI_S12_VMALL`.
pub const OPCODE_TLBI_S12_VMALL: u8 = 0x28;
/// `CMD_TLBI_NSNH_ALL`.
pub const OPCODE_TLBI_NSNH_ALL: u8 = 0x30;
/// `CMD_SYNC`.
pub const OPCODE_SYNC: u8 = 0x46;

/// A command cellvisor issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Drop cached copies of the STE of one stream (`Leaf = 1`: no CD tables are used).
    CfgiSte {
        /// The stream.
        stream_id: u32,
    },
    /// Drop every cached configuration structure.
    CfgiAll,
    /// Drop every TLB entry of stage 1 and 2 tagged with the VMID.
    TlbiS12Vmall {
        /// The cell's VMID.
        vmid: u16,
    },
    /// Drop every non-secure, non-hypervisor TLB entry.
    TlbiNsnhAll,
    /// Drop every EL2 TLB entry (only with `SMMU_IDR0.HYP`).
    TlbiEl2All,
    /// Completes when every earlier command has; no signal, completion is seen by polling
    /// `SMMU_CMDQ_CONS`.
    Sync,
}

impl Command {
    /// Bytes in a command.
    pub const SIZE: usize = 16;

    /// The two words of the command.
    pub fn encode(self) -> [u64; 2] {
        let opcode = |code: u8| CMD_0::Opcode.val(u64::from(code));
        match self {
            Self::CfgiSte { stream_id } => [
                (opcode(OPCODE_CFGI_STE) + CMD_0::SID.val(u64::from(stream_id))).value,
                CMD_1::Leaf::SET.value,
            ],
            Self::CfgiAll => [opcode(OPCODE_CFGI_ALL).value, CMD_1::Range.val(31).value],
            Self::TlbiS12Vmall { vmid } => [
                (opcode(OPCODE_TLBI_S12_VMALL) + CMD_0::VMID.val(u64::from(vmid))).value,
                0,
            ],
            Self::TlbiNsnhAll => [opcode(OPCODE_TLBI_NSNH_ALL).value, 0],
            Self::TlbiEl2All => [opcode(OPCODE_TLBI_EL2_ALL).value, 0],
            Self::Sync => [(opcode(OPCODE_SYNC) + CMD_0::CS::None).value, 0],
        }
    }
}

/// `SMMU_CMDQ_CONS.ERR`: why the command queue stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandError {
    /// `CERROR_NONE`: no error recorded (the queue was stopped for another reason).
    None,
    /// `CERROR_ILL`: unknown opcode, reserved field set, or a command the SMMU does not
    /// implement.
    Illegal,
    /// `CERROR_ABT`: the SMMU got an abort reading the command.
    Abort,
    /// `CERROR_ATC_INV_SYNC`: an ATC invalidation timed out before a `CMD_SYNC`.
    AtcInvalidationSync,
    /// An encoding this driver does not know.
    Other(u8),
}

impl CommandError {
    /// Decodes `SMMU_CMDQ_CONS.ERR`.
    pub fn from_field(field: u8) -> Self {
        match field {
            0 => Self::None,
            1 => Self::Illegal,
            2 => Self::Abort,
            3 => Self::AtcInvalidationSync,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("no error code"),
            Self::Illegal => f.write_str("CERROR_ILL, illegal command"),
            Self::Abort => f.write_str("CERROR_ABT, abort reading the command queue"),
            Self::AtcInvalidationSync => f.write_str("CERROR_ATC_INV_SYNC"),
            Self::Other(code) => write!(f, "error code {code:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfgi_ste() {
        let [w0, w1] = Command::CfgiSte { stream_id: 0x10 }.encode();
        assert_eq!(w0 & 0xff, 0x03);
        assert_eq!(w0 >> 32, 0x10);
        assert_eq!(w0 & 0xffff_ff00, 0, "SSV, SSID zero");
        assert_eq!(w1, 1, "Leaf");
        let [w0, _] = Command::CfgiSte {
            stream_id: 0xffff_ffff,
        }
        .encode();
        assert_eq!(w0, 0xffff_ffff_0000_0003);
    }

    #[test]
    fn cfgi_all() {
        assert_eq!(Command::CfgiAll.encode(), [0x04, 31]);
    }

    #[test]
    fn tlbi_s12_vmall() {
        let [w0, w1] = Command::TlbiS12Vmall { vmid: 0xabcd }.encode();
        assert_eq!(w0, 0x0000_abcd_0000_0028);
        assert_eq!(w1, 0);
    }

    #[test]
    fn global_invalidations() {
        assert_eq!(Command::TlbiNsnhAll.encode(), [0x30, 0]);
        assert_eq!(Command::TlbiEl2All.encode(), [0x20, 0]);
    }

    #[test]
    fn sync_without_signal() {
        let [w0, w1] = Command::Sync.encode();
        assert_eq!(w0 & 0xff, 0x46);
        assert_eq!((w0 >> 12) & 3, 0, "CS = SIG_NONE");
        assert_eq!(w0, 0x46);
        assert_eq!(w1, 0, "no MSI address");
    }

    #[test]
    fn command_errors() {
        assert_eq!(CommandError::from_field(0), CommandError::None);
        assert_eq!(CommandError::from_field(1), CommandError::Illegal);
        assert_eq!(CommandError::from_field(2), CommandError::Abort);
        assert_eq!(
            CommandError::from_field(3),
            CommandError::AtcInvalidationSync
        );
        assert_eq!(CommandError::from_field(0x7f), CommandError::Other(0x7f));
        assert!(CommandError::Illegal.to_string().contains("CERROR_ILL"));
    }
}
