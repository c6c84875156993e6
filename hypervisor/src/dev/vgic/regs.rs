//! Bit layouts of the GICv3 registers the vGIC decodes or builds, as tock-registers bitfields.
#![forbid(unsafe_code)]

use tock_registers::register_bitfields;

register_bitfields![u64,
    /// `ICH_LR<n>_EL2`: one virtual interrupt handed to the vCPU interface.
    pub ICH_LR_EL2 [
        /// The virtual INTID the guest acknowledges.
        vINTID OFFSET(0) NUMBITS(32) [],
        /// The physical INTID deactivated with the virtual one (only when `HW` is set).
        pINTID OFFSET(32) NUMBITS(13) [],
        /// Request a maintenance interrupt when the guest EOIs this entry (only when `HW` is clear;
        /// shares bit 41 with `pINTID`).
        EOI OFFSET(41) NUMBITS(1) [],
        /// The interrupt's priority.
        Priority OFFSET(48) NUMBITS(8) [],
        /// 1: Group 1 (delivered as a virtual IRQ); 0: Group 0 (virtual FIQ).
        Group OFFSET(60) NUMBITS(1) [],
        /// Hardware-linked: the guest's deactivation also deactivates `pINTID`.
        HW OFFSET(61) NUMBITS(1) [],
        /// The entry's state.
        State OFFSET(62) NUMBITS(2) [
            Invalid = 0b00,
            Pending = 0b01,
            Active = 0b10,
            PendingActive = 0b11
        ]
    ],

    /// `ICH_HCR_EL2`: the vCPU interface's control; the vGIC owns only `UIE` and `NPIE`.
    pub ICH_HCR_EL2 [
        /// Global enable of the virtual CPU interface (set by the arch glue).
        En OFFSET(0) NUMBITS(1) [],
        /// Underflow interrupt: maintenance when at most one list register holds a valid entry.
        UIE OFFSET(1) NUMBITS(1) [],
        /// Maintenance when an EOI finds no matching list register.
        LRENPIE OFFSET(2) NUMBITS(1) [],
        /// No-pending interrupt: maintenance when no list register holds a pending entry.
        NPIE OFFSET(3) NUMBITS(1) [],
        /// Count of EOIs that found no list register.
        EOIcount OFFSET(27) NUMBITS(5) []
    ],

    /// `ICH_VTR_EL2`: what the vCPU interface implements.
    pub ICH_VTR_EL2 [
        /// Number of list registers minus one.
        ListRegs OFFSET(0) NUMBITS(5) [],
        /// Number of virtual priority bits minus one.
        PRIbits OFFSET(29) NUMBITS(3) []
    ],

    /// `GICD_IROUTER<n>`: affinity routing of one SPI.
    pub GICD_IROUTER [
        Aff0 OFFSET(0) NUMBITS(8) [],
        Aff1 OFFSET(8) NUMBITS(8) [],
        Aff2 OFFSET(16) NUMBITS(8) [],
        /// 0: route to the PE named by the affinity; 1: to any participating PE.
        Interrupt_Routing_Mode OFFSET(31) NUMBITS(1) [],
        Aff3 OFFSET(32) NUMBITS(8) []
    ],

    /// `GICR_TYPER`: identifies one redistributor.
    pub GICR_TYPER [
        /// Physical LPIs supported.
        PLPIS OFFSET(0) NUMBITS(1) [],
        /// Virtual LPIs supported.
        VLPIS OFFSET(1) NUMBITS(1) [],
        /// Direct LPI injection supported.
        DirectLPI OFFSET(3) NUMBITS(1) [],
        /// The last redistributor of a contiguous region.
        Last OFFSET(4) NUMBITS(1) [],
        /// The index of the PE this redistributor serves.
        Processor_Number OFFSET(8) NUMBITS(16) [],
        /// The affinity of the PE, in MPIDR order Aff3.Aff2.Aff1.Aff0.
        Affinity_Value OFFSET(32) NUMBITS(32) []
    ],

    /// `ICC_SGI1R_EL1`: a Group 1 SGI request from the guest.
    pub ICC_SGI1R_EL1 [
        /// Bit n targets the PE with Aff0 = RS * 16 + n.
        TargetList OFFSET(0) NUMBITS(16) [],
        Aff1 OFFSET(16) NUMBITS(8) [],
        /// The SGI's INTID (0-15).
        INTID OFFSET(24) NUMBITS(4) [],
        Aff2 OFFSET(32) NUMBITS(8) [],
        /// 1: every PE except the sender; the affinity fields are ignored.
        IRM OFFSET(40) NUMBITS(1) [],
        /// Range selector: which block of 16 Aff0 values TargetList covers.
        RS OFFSET(44) NUMBITS(4) [],
        Aff3 OFFSET(48) NUMBITS(8) []
    ]
];

register_bitfields![u32,
    /// `GICD_CTLR`, the Non-secure view of a GIC with two Security states (`DS` = 0).
    pub GICD_CTLR [
        /// Forward Non-secure Group 1 interrupts (the only group a cell's guest sees).
        EnableGrp1A OFFSET(1) NUMBITS(1) [],
        /// Affinity routing: RAO/WI, the vGIC implements nothing else.
        ARE_NS OFFSET(4) NUMBITS(1) [],
        /// Register write pending: always 0, writes take effect at once.
        RWP OFFSET(31) NUMBITS(1) []
    ],

    /// `GICD_TYPER`: what the (virtual) distributor implements.
    pub GICD_TYPER [
        /// The distributor handles INTIDs below 32 * (ITLinesNumber + 1).
        ITLinesNumber OFFSET(0) NUMBITS(5) [],
        /// Number of PEs minus one (legacy; capped at 7).
        CPUNumber OFFSET(5) NUMBITS(3) [],
        /// Two Security states.
        SecurityExtn OFFSET(10) NUMBITS(1) [],
        /// Message-based SPIs.
        MBIS OFFSET(16) NUMBITS(1) [],
        /// LPIs.
        LPIS OFFSET(17) NUMBITS(1) [],
        /// Number of INTID bits minus one.
        IDbits OFFSET(19) NUMBITS(5) [],
        /// 1 of N SPI routing is *not* supported.
        No1N OFFSET(25) NUMBITS(1) []
    ],

    /// `GICR_WAKER`: the redistributor's power handshake with its PE.
    pub GICR_WAKER [
        /// Written by the PE: 1 = the PE is asleep.
        ProcessorSleep OFFSET(1) NUMBITS(1) [],
        /// Read-only: 1 = the interface to the PE is quiescent.
        ChildrenAsleep OFFSET(2) NUMBITS(1) []
    ]
];
