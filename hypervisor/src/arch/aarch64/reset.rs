//! The vCPU reset: writes every row of [`crate::core::reset`]'s table that this CPU implements,
//! then the state the table lists as reset beside it (the numbered debug and PMU registers, the
//! FP/SIMD/SVE register files, the guest's GIC CPU interface priorities).

use super::sysreg::{isb, read_sysreg};
use super::traps::CpuFeatures;
use crate::el1_registers;

/// Whether the register a row `needs` exists on a CPU with `features`.
macro_rules! exists {
    ($features:ident, always) => {
        true
    };
    ($features:ident, ls64_accdata) => {
        $features.ls64 >= 3
    };
    ($features:ident, $needs:ident) => {
        $features.$needs
    };
}
/// The switch (`context`) saves and restores the same rows where the reset writes them.
pub(super) use exists;

/// One `msr` per row, each only where the CPU has the register.
macro_rules! write_rows {
    ($(($name:ident, $encoding:literal, $value:expr, $needs:ident)),* $(,)?) => {
        /// Writes every table row this CPU implements.
        ///
        /// # Safety
        /// Only the guest's EL1/EL0 state (and VDISR_EL2, its DISR_EL1) changes; call it with no
        /// guest running on this CPU.
        unsafe fn write_table(features: &CpuFeatures) {
            $(
                if exists!(features, $needs) {
                    let value: u64 = $value;
                    // SAFETY: see the function's contract; the row exists on this CPU.
                    unsafe {
                        core::arch::asm!(
                            concat!("msr ", $encoding, ", {}"),
                            in(reg) value,
                            options(nostack, preserves_flags),
                        );
                    }
                }
            )*
        }
    };
}
el1_registers!(write_rows);

/// Zeroes debug register `$kind` (`"bcr"`, `"bvr"`, `"wcr"`, `"wvr"`) number `$n` (0-15).
macro_rules! zero_debug {
    ($kind:literal, $n:expr) => {
        match $n {
            0 => zero_debug!(@one $kind, 0),
            1 => zero_debug!(@one $kind, 1),
            2 => zero_debug!(@one $kind, 2),
            3 => zero_debug!(@one $kind, 3),
            4 => zero_debug!(@one $kind, 4),
            5 => zero_debug!(@one $kind, 5),
            6 => zero_debug!(@one $kind, 6),
            7 => zero_debug!(@one $kind, 7),
            8 => zero_debug!(@one $kind, 8),
            9 => zero_debug!(@one $kind, 9),
            10 => zero_debug!(@one $kind, 10),
            11 => zero_debug!(@one $kind, 11),
            12 => zero_debug!(@one $kind, 12),
            13 => zero_debug!(@one $kind, 13),
            14 => zero_debug!(@one $kind, 14),
            15 => zero_debug!(@one $kind, 15),
            _ => {}
        }
    };
    (@one $kind:literal, $n:literal) => {
        // SAFETY: the caller checked that the register exists; it is the guest's.
        unsafe {
            core::arch::asm!(
                concat!("msr dbg", $kind, $n, "_el1, xzr"),
                options(nostack, preserves_flags)
            )
        }
    };
}

/// Resets everything of the guest's EL1/EL0 state that [`crate::core::reset`] lists.
///
/// # Safety
/// No guest runs on this CPU; CPTR_EL2 already lets EL2 use FP/SIMD (and SVE where `features`
/// has it), as the guest configuration `prepare` writes first does.
pub unsafe fn vcpu(features: &CpuFeatures) {
    // SAFETY: the caller's contract covers every write below.
    unsafe {
        write_table(features);
        debug_registers();
        if features.pmu {
            pmu_event_types();
        }
        register_files(features);
    }
    super::gic::reset_virtual_interface();
    isb();
}

/// Every breakpoint and watchpoint this CPU implements, disabled and cleared.
unsafe fn debug_registers() {
    let dfr0 = read_sysreg!("id_aa64dfr0_el1");
    let breakpoints = ((dfr0 >> 12) & 0xf) + 1;
    let watchpoints = ((dfr0 >> 20) & 0xf) + 1;
    for n in 0..breakpoints {
        zero_debug!("bcr", n);
        zero_debug!("bvr", n);
    }
    for n in 0..watchpoints {
        zero_debug!("wcr", n);
        zero_debug!("wvr", n);
    }
}

/// Every event counter's type (filter and event) cleared, through PMSELR_EL0; PMSELR_EL0 back at 0.
unsafe fn pmu_event_types() {
    let counters = (read_sysreg!("pmcr_el0") >> 11) & 0x1f;
    for n in 0..counters {
        // SAFETY: `n` selects an implemented counter; the registers are the guest's.
        unsafe {
            core::arch::asm!(
                "msr pmselr_el0, {n}",
                "isb",
                "msr pmxevtyper_el0, xzr",
                n = in(reg) n,
                options(nostack, preserves_flags),
            );
        }
    }
    // SAFETY: as above.
    unsafe { core::arch::asm!("msr pmselr_el0, xzr", options(nostack, preserves_flags)) };
}

/// V0-V31 zeroed (with SVE, an AdvSIMD write zeroes the rest of each Z register), and with SVE the
/// predicates and FFR. EL2 is built soft-float and never holds values in these registers.
unsafe fn register_files(features: &CpuFeatures) {
    // SAFETY: CPTR_EL2.TFP is clear (the caller's contract); only guest state changes.
    unsafe {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            "movi v0.2d, #0",
            "movi v1.2d, #0",
            "movi v2.2d, #0",
            "movi v3.2d, #0",
            "movi v4.2d, #0",
            "movi v5.2d, #0",
            "movi v6.2d, #0",
            "movi v7.2d, #0",
            "movi v8.2d, #0",
            "movi v9.2d, #0",
            "movi v10.2d, #0",
            "movi v11.2d, #0",
            "movi v12.2d, #0",
            "movi v13.2d, #0",
            "movi v14.2d, #0",
            "movi v15.2d, #0",
            "movi v16.2d, #0",
            "movi v17.2d, #0",
            "movi v18.2d, #0",
            "movi v19.2d, #0",
            "movi v20.2d, #0",
            "movi v21.2d, #0",
            "movi v22.2d, #0",
            "movi v23.2d, #0",
            "movi v24.2d, #0",
            "movi v25.2d, #0",
            "movi v26.2d, #0",
            "movi v27.2d, #0",
            "movi v28.2d, #0",
            "movi v29.2d, #0",
            "movi v30.2d, #0",
            "movi v31.2d, #0",
            options(nomem, nostack, preserves_flags),
        );
    }
    if features.sve {
        // SAFETY: CPTR_EL2.TZ is clear with SVE (the caller's contract).
        unsafe {
            core::arch::asm!(
                ".arch_extension sve",
                "pfalse p0.b",
                "pfalse p1.b",
                "pfalse p2.b",
                "pfalse p3.b",
                "pfalse p4.b",
                "pfalse p5.b",
                "pfalse p6.b",
                "pfalse p7.b",
                "pfalse p8.b",
                "pfalse p9.b",
                "pfalse p10.b",
                "pfalse p11.b",
                "pfalse p12.b",
                "pfalse p13.b",
                "pfalse p14.b",
                "pfalse p15.b",
                "wrffr p0.b",
                options(nomem, nostack, preserves_flags),
            );
        }
    }
}

/// The guest's active-priority registers: every ICH_AP0R<n>/ICH_AP1R<n>_EL2 the CPU interface
/// implements (one, two or four of each for 5, 6 or 7 priority bits), so no interrupt of a
/// previous instance stays active in the new one's view.
pub(super) unsafe fn gic_priorities() {
    let priority_bits = ((read_sysreg!("ich_vtr_el2") >> 29) & 0x7) + 1;
    // SAFETY: each register written exists for this many priority bits; they are the guest's.
    unsafe {
        core::arch::asm!(
            "msr ich_ap0r0_el2, xzr",
            "msr ich_ap1r0_el2, xzr",
            options(nostack, preserves_flags)
        );
        if priority_bits >= 6 {
            core::arch::asm!(
                "msr ich_ap0r1_el2, xzr",
                "msr ich_ap1r1_el2, xzr",
                options(nostack, preserves_flags)
            );
        }
        if priority_bits >= 7 {
            core::arch::asm!(
                "msr ich_ap0r2_el2, xzr",
                "msr ich_ap1r2_el2, xzr",
                "msr ich_ap0r3_el2, xzr",
                "msr ich_ap1r3_el2, xzr",
                options(nostack, preserves_flags)
            );
        }
    }
}
