//! The Arm SMMUv3's in-memory formats, as pure data: Stream Table Entries ([`ste`]), commands
//! ([`command`]), event records and global errors ([`event`]), queue index arithmetic
//! ([`queue`]) and the ID registers ([`regs`]). The MMIO driver that uses them is
//! `drivers::smmuv3`; docs/smmu.md is the design (stage-2-only STEs sharing each cell's stage-2
//! table and VMID).
//!
//! Hand-written: the one SMMUv3 crate on crates.io (`smmu`) is a std-based software model of the
//! SMMU's translation (an emulator with DashMap caches), not a no_std driver of real hardware,
//! and no kept no_std driver crate exists. Layouts were cross-checked against the spec (IHI 0070),
//! QEMU's model (hw/arm/smmuv3-internal.h, smmuv3.c) and Linux's arm-smmu-v3.h.
#![forbid(unsafe_code)]

pub mod command;
pub mod event;
pub mod queue;
pub mod regs;
pub mod ste;

use core::fmt;

pub use command::{Command, CommandError};
pub use event::{Access, Event, EventKind, GlobalError, GlobalErrors};
pub use queue::Queue;
pub use regs::{Features, Requirements, check};
pub use ste::{Cacheability, OutputSize, S2Config, Shareability, Ste};

use crate::mem::addr::PhysAddr;

/// Why the SMMU cannot be used, or an operation on it failed. Each `Display` is one line saying
/// what is wrong and how to fix it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmmuError {
    /// `SMMU_IDR0.S2P = 0`.
    NoStage2 {
        /// The SMMU's register base.
        base: PhysAddr,
    },
    /// `SMMU_IDR0.TTF` lacks AArch64.
    NoAArch64Tables {
        /// The SMMU's register base.
        base: PhysAddr,
    },
    /// `SMMU_IDR0.TTENDIAN` is big-endian only.
    BigEndianTablesOnly {
        /// The SMMU's register base.
        base: PhysAddr,
    },
    /// `SMMU_IDR5.GRAN4K = 0`.
    No4KGranule {
        /// The SMMU's register base.
        base: PhysAddr,
    },
    /// `SMMU_IDR5.OAS` cannot reach every physical address the cells' tables hold.
    OutputSizeTooSmall {
        /// The SMMU's register base.
        base: PhysAddr,
        /// The SMMU's output size (0 for a reserved encoding).
        output_bits: u32,
        /// Bits the highest address needs.
        needed_bits: u32,
    },
    /// A StreamID does not fit `SMMU_IDR1.SIDSIZE`.
    StreamIdTooWide {
        /// The SMMU's register base.
        base: PhysAddr,
        /// `SIDSIZE`.
        stream_id_bits: u32,
        /// The StreamID needed.
        max_stream_id: u32,
    },
    /// A VMID does not fit the SMMU's 8 or 16 bits.
    VmidTooWide {
        /// The SMMU's register base.
        base: PhysAddr,
        /// VMID bits the SMMU implements.
        vmid_bits: u32,
        /// The VMID needed.
        max_vmid: u16,
    },
    /// `SMMU_IDR1.TABLES_PRESET` or `QUEUES_PRESET`: cellvisor cannot place its own tables.
    PresetTables {
        /// The SMMU's register base.
        base: PhysAddr,
    },
    /// A stage-2 root that is not 4 KiB aligned.
    RootMisaligned {
        /// The root.
        root: PhysAddr,
    },
    /// A stage-2 root beyond the effective output size.
    RootOutOfRange {
        /// The root.
        root: PhysAddr,
        /// `MIN(S2PS, OAS)` in bits.
        output_bits: u32,
    },
    /// `S2T0SZ` and the starting level do not make a table the SMMU can walk.
    InvalidInputSize {
        /// The T0SZ.
        t0sz: u8,
        /// The starting level.
        start_level: u8,
        /// The SMMU's input address size.
        input_bits: u32,
    },
    /// A StreamID beyond the stream table cellvisor built.
    StreamIdOutOfRange {
        /// The StreamID.
        stream_id: u32,
        /// Entries in the stream table.
        entries: u32,
    },
    /// The table memory provider had no memory.
    OutOfMemory {
        /// What the memory was for.
        what: &'static str,
        /// Bytes asked for.
        size: usize,
    },
    /// The SMMU did not acknowledge or complete something in time.
    Timeout {
        /// The SMMU's register base.
        base: PhysAddr,
        /// What was awaited.
        what: &'static str,
    },
    /// The command queue stopped at a command (it was skipped and the queue restarted).
    Command {
        /// The SMMU's register base.
        base: PhysAddr,
        /// The opcode of the failing command.
        opcode: u8,
        /// `SMMU_CMDQ_CONS.ERR`.
        error: CommandError,
    },
    /// The driver was used before a successful `init`.
    NotInitialised,
}

impl fmt::Display for SmmuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoStage2 { base } => write!(
                f,
                "the SMMUv3 at {base} implements no stage 2 (SMMU_IDR0.S2P=0): start QEMU with \
                 -global arm-smmuv3.stage=2 (or nested), or do not assign DMA devices behind it"
            ),
            Self::NoAArch64Tables { base } => write!(
                f,
                "the SMMUv3 at {base} cannot walk AArch64 tables (SMMU_IDR0.TTF): cell stage-2 \
                 tables are AArch64; do not assign DMA devices behind this SMMU"
            ),
            Self::BigEndianTablesOnly { base } => write!(
                f,
                "the SMMUv3 at {base} walks big-endian tables only (SMMU_IDR0.TTENDIAN): cell \
                 stage-2 tables are little-endian; do not assign DMA devices behind this SMMU"
            ),
            Self::No4KGranule { base } => write!(
                f,
                "the SMMUv3 at {base} has no 4 KiB granule (SMMU_IDR5.GRAN4K=0): cell stage-2 \
                 tables use 4 KiB; do not assign DMA devices behind this SMMU"
            ),
            Self::OutputSizeTooSmall {
                base,
                output_bits,
                needed_bits,
            } => write!(
                f,
                "the SMMUv3 at {base} outputs {output_bits}-bit addresses (SMMU_IDR5.OAS) but the \
                 cells' tables reach {needed_bits}-bit ones: place cell RAM and cellvisor's heap \
                 below 2^{output_bits}"
            ),
            Self::StreamIdTooWide {
                base,
                stream_id_bits,
                max_stream_id,
            } => write!(
                f,
                "stream ID {max_stream_id:#x} does not fit the {stream_id_bits} StreamID bits of \
                 the SMMUv3 at {base} (SMMU_IDR1.SIDSIZE): check the board's stream IDs and the \
                 DT iommu-map"
            ),
            Self::VmidTooWide {
                base,
                vmid_bits,
                max_vmid,
            } => write!(
                f,
                "VMID {max_vmid} does not fit the {vmid_bits}-bit VMIDs of the SMMUv3 at {base} \
                 (SMMU_IDR0.VMID16): use fewer cells or lower VMIDs"
            ),
            Self::PresetTables { base } => write!(
                f,
                "the SMMUv3 at {base} has preset tables or queues (SMMU_IDR1.*_PRESET): cellvisor \
                 must place its own; do not assign DMA devices behind this SMMU"
            ),
            Self::RootMisaligned { root } => write!(
                f,
                "stage-2 root {root} is not 4 KiB aligned: pass the cell's Stage2::root_address"
            ),
            Self::RootOutOfRange { root, output_bits } => write!(
                f,
                "stage-2 root {root} lies beyond the SMMU's {output_bits}-bit output size: \
                 allocate cell tables lower or raise S2PS"
            ),
            Self::InvalidInputSize {
                t0sz,
                start_level,
                input_bits,
            } => write!(
                f,
                "S2T0SZ {t0sz} with start level {start_level} is no table this SMMU can walk (one \
                 4 KiB root, {input_bits}-bit input): use the stage2.rs geometry (T0SZ 25, level 1)"
            ),
            Self::StreamIdOutOfRange { stream_id, entries } => write!(
                f,
                "stream ID {stream_id:#x} is beyond the {entries}-entry stream table: raise \
                 max_stream_id at SMMU init"
            ),
            Self::OutOfMemory { what, size } => write!(
                f,
                "no memory for the SMMU {what} ({size:#x} bytes): enlarge cellvisor's heap or use \
                 fewer stream IDs"
            ),
            Self::Timeout { base, what } => write!(
                f,
                "the SMMUv3 at {base} did not complete {what} in time: check that it is powered \
                 and mapped as device memory"
            ),
            Self::Command {
                base,
                opcode,
                error,
            } => write!(
                f,
                "the SMMUv3 at {base} refused command {opcode:#04x} ({error}); it was skipped: \
                 this SMMU lacks a command cellvisor assumed (report it)"
            ),
            Self::NotInitialised => {
                f.write_str("the SMMUv3 was used before init succeeded: call init first")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_one_line() {
        let base = PhysAddr::new(0x905_0000);
        let errors = [
            SmmuError::NoStage2 { base },
            SmmuError::NoAArch64Tables { base },
            SmmuError::BigEndianTablesOnly { base },
            SmmuError::No4KGranule { base },
            SmmuError::OutputSizeTooSmall {
                base,
                output_bits: 40,
                needed_bits: 44,
            },
            SmmuError::StreamIdTooWide {
                base,
                stream_id_bits: 8,
                max_stream_id: 0x100,
            },
            SmmuError::VmidTooWide {
                base,
                vmid_bits: 8,
                max_vmid: 300,
            },
            SmmuError::PresetTables { base },
            SmmuError::RootMisaligned {
                root: PhysAddr::new(0x1001),
            },
            SmmuError::RootOutOfRange {
                root: PhysAddr::new(1 << 45),
                output_bits: 44,
            },
            SmmuError::InvalidInputSize {
                t0sz: 24,
                start_level: 1,
                input_bits: 44,
            },
            SmmuError::StreamIdOutOfRange {
                stream_id: 0x20,
                entries: 16,
            },
            SmmuError::OutOfMemory {
                what: "stream table",
                size: 0x1000,
            },
            SmmuError::Timeout {
                base,
                what: "CR0ACK",
            },
            SmmuError::Command {
                base,
                opcode: 0x20,
                error: CommandError::Illegal,
            },
            SmmuError::NotInitialised,
        ];
        for error in errors {
            let text = error.to_string();
            assert!(!text.contains('\n'), "{text}");
            assert!(text.contains(": "), "says what to do: {text}");
        }
        assert_eq!(
            SmmuError::NoStage2 { base }.to_string(),
            "the SMMUv3 at 0x9050000 implements no stage 2 (SMMU_IDR0.S2P=0): start QEMU with \
             -global arm-smmuv3.stage=2 (or nested), or do not assign DMA devices behind it"
        );
    }
}
