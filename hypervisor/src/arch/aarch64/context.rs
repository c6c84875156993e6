//! A descheduled vCPU's hardware state (time-sharing, docs/architecture.md "Time-sharing"):
//! what [`save`] takes out of this CPU's registers when another cell's vCPU is loaded in its
//! place, and [`restore`] puts back.
//!
//! The EL1/EL0 system registers are [`crate::core::reset`]'s table, the same rows the vCPU reset
//! writes, so a register a guest can write is either reset *and* switched, or in neither (the
//! table's host tests check it is complete). Rows that are not a plain register pair are switched
//! by hand beside the table: the write-only set/clear views (OS lock, claim tags, PMU enables and
//! overflow flags), SVCR (with the SVE/SME register files), the EL1 timers (compare value before
//! control, so restoring never fires the previous vCPU's deadline) and PMSELR_EL0 (after the
//! counters it selects). Beside the table: the breakpoints and watchpoints, the PMU's event
//! counters, V0-V31 or the SVE Z/P/FFR registers at the CPU's vector length, ZA and ZT0 when the
//! guest has them on, a pending virtual SError, and the virtual CPU interface (list registers,
//! active priorities, VMCR, HCR) with the active state of the timer PPIs that EL2 holds for it.
//!
//! EL2 is built soft-float: the only code that touches FP/SIMD/SVE/SME registers is here and in
//! the reset, both assembly.

use alloc::vec::Vec;

use super::gic::{CpuInterface, VirtualInterface};
use super::reset::exists;
use super::sysreg::{isb, read_sysreg, write_sysreg};
use super::traps::{self, CpuFeatures};
use crate::core::timers::SavedTimer;
use crate::el1_registers;

/// What this CPU has that the switch must size or skip: its features and the counts of its
/// numbered registers, read once per CPU.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub features: CpuFeatures,
    breakpoints: usize,
    watchpoints: usize,
    pmu_counters: usize,
}

impl Shape {
    /// This CPU's shape, from its ID registers and PMCR_EL0.N.
    pub fn this_cpu() -> Self {
        let features = CpuFeatures::this_cpu();
        let dfr0 = read_sysreg!("id_aa64dfr0_el1");
        Self {
            features,
            breakpoints: (((dfr0 >> 12) & 0xf) + 1) as usize,
            watchpoints: (((dfr0 >> 20) & 0xf) + 1) as usize,
            pmu_counters: if features.pmu {
                ((read_sysreg!("pmcr_el0") >> 11) & 0x1f) as usize
            } else {
                0
            },
        }
    }
}

/// The table rows switched by hand (see the module documentation) expand to nothing here.
macro_rules! plain_row {
    (OSLAR_EL1, $($rest:tt)*) => {};
    (DBGCLAIMCLR_EL1, $($rest:tt)*) => {};
    (PMCNTENCLR_EL0, $($rest:tt)*) => {};
    (PMINTENCLR_EL1, $($rest:tt)*) => {};
    (PMOVSCLR_EL0, $($rest:tt)*) => {};
    (PMSELR_EL0, $($rest:tt)*) => {};
    (SVCR, $($rest:tt)*) => {};
    (CNTV_CTL_EL0, $($rest:tt)*) => {};
    (CNTV_CVAL_EL0, $($rest:tt)*) => {};
    (CNTP_CTL_EL0, $($rest:tt)*) => {};
    (CNTP_CVAL_EL0, $($rest:tt)*) => {};
    ($name:ident, $encoding:literal, $needs:ident, $features:ident, $slot:ident, save, $saved:ident) => {
        if exists!($features, $needs) {
            let value: u64;
            // SAFETY: reading a guest register that exists on this CPU has no side effect.
            unsafe {
                core::arch::asm!(
                    concat!("mrs {}, ", $encoding),
                    out(reg) value,
                    options(nomem, nostack, preserves_flags),
                );
            }
            $saved[$slot] = value;
        }
        $slot += 1;
    };
    ($name:ident, $encoding:literal, $needs:ident, $features:ident, $slot:ident, restore, $saved:ident) => {
        if exists!($features, $needs) {
            let value: u64 = $saved[$slot];
            // SAFETY: the caller's contract (no guest runs here; the value is the vCPU's own).
            unsafe {
                core::arch::asm!(
                    concat!("msr ", $encoding, ", {}"),
                    in(reg) value,
                    options(nostack, preserves_flags),
                );
            }
        }
        $slot += 1;
    };
}

macro_rules! table_switch {
    ($(($name:ident, $encoding:literal, $value:expr, $needs:ident)),* $(,)?) => {
        /// Slots of [`Saved::el1`]: one per table row (the hand-switched ones stay unused).
        const TABLE_ROWS: usize = [$(stringify!($name)),*].len();

        /// Reads every plain table row this CPU implements into `saved`.
        fn save_table(features: &CpuFeatures, saved: &mut [u64; TABLE_ROWS]) {
            let mut slot = 0usize;
            $( plain_row!($name, $encoding, $needs, features, slot, save, saved); )*
            let _ = slot;
        }

        /// Writes every plain table row this CPU implements from `saved`.
        ///
        /// # Safety
        /// No guest runs on this CPU; `saved` holds what [`save_table`] read for the vCPU loaded
        /// next.
        unsafe fn restore_table(features: &CpuFeatures, saved: &[u64; TABLE_ROWS]) {
            let mut slot = 0usize;
            $( plain_row!($name, $encoding, $needs, features, slot, restore, saved); )*
            let _ = slot;
        }
    };
}
el1_registers!(table_switch);

/// Reads or writes debug register `$kind` (`"bcr"`, `"bvr"`, `"wcr"`, `"wvr"`) number `$n`.
macro_rules! debug_register {
    (read $kind:literal, $n:expr) => {
        debug_register!(@dispatch read $kind, $n, 0)
    };
    (write $kind:literal, $n:expr, $value:expr) => {
        debug_register!(@dispatch write $kind, $n, $value)
    };
    (@dispatch $op:ident $kind:literal, $n:expr, $value:expr) => {
        match $n {
            0 => debug_register!(@$op $kind, 0, $value),
            1 => debug_register!(@$op $kind, 1, $value),
            2 => debug_register!(@$op $kind, 2, $value),
            3 => debug_register!(@$op $kind, 3, $value),
            4 => debug_register!(@$op $kind, 4, $value),
            5 => debug_register!(@$op $kind, 5, $value),
            6 => debug_register!(@$op $kind, 6, $value),
            7 => debug_register!(@$op $kind, 7, $value),
            8 => debug_register!(@$op $kind, 8, $value),
            9 => debug_register!(@$op $kind, 9, $value),
            10 => debug_register!(@$op $kind, 10, $value),
            11 => debug_register!(@$op $kind, 11, $value),
            12 => debug_register!(@$op $kind, 12, $value),
            13 => debug_register!(@$op $kind, 13, $value),
            14 => debug_register!(@$op $kind, 14, $value),
            15 => debug_register!(@$op $kind, 15, $value),
            _ => Default::default(),
        }
    };
    (@read $kind:literal, $n:literal, $value:expr) => {{
        let value: u64;
        // SAFETY: the caller checked that the register exists; reading it has no side effect.
        unsafe {
            core::arch::asm!(
                concat!("mrs {}, dbg", $kind, $n, "_el1"),
                out(reg) value,
                options(nomem, nostack, preserves_flags)
            )
        };
        value
    }};
    (@write $kind:literal, $n:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the caller checked that the register exists; it is the guest's.
        unsafe {
            core::arch::asm!(
                concat!("msr dbg", $kind, $n, "_el1, {}"),
                in(reg) value,
                options(nostack, preserves_flags)
            )
        };
    }};
}

/// The most breakpoints, watchpoints (16 each) and PMU event counters (31) a CPU has.
const DEBUG_REGISTERS: usize = 16;
const PMU_COUNTERS: usize = 31;

/// `OSLSR_EL1.OSLK`: the OS lock is locked.
const OSLSR_OSLK: u64 = 1 << 1;
/// Every PMU enable, interrupt enable or overflow bit (the event counters and the cycle counter).
const PMU_ALL: u64 = 0xffff_ffff;
/// `SVCR.SM` and `SVCR.ZA`.
const SVCR_SM: u64 = 1 << 0;
const SVCR_ZA: u64 = 1 << 1;
/// `CNTx_CTL_EL0` of a timer that is off.
const TIMER_OFF: u64 = 0;

/// Everything [`save`] took of one vCPU (`VcpuHardware::Saved` of the aarch64 CPU).
pub struct Saved {
    el1: [u64; TABLE_ROWS],
    os_locked: bool,
    claim_tags: u64,
    pmu_enabled: u64,
    pmu_interrupts: u64,
    pmu_overflows: u64,
    pmu_select: u64,
    pmu_cycles: u64,
    pmu_counters: [u64; PMU_COUNTERS],
    pmu_types: [u64; PMU_COUNTERS],
    breakpoints: [(u64, u64); DEBUG_REGISTERS],
    watchpoints: [(u64, u64); DEBUG_REGISTERS],
    /// The EL1 virtual timer (with the cell's CNTVOFF_EL2) and physical timer.
    pub virtual_timer: SavedTimer,
    pub physical_timer: SavedTimer,
    /// SVCR (0 without SME).
    svcr: u64,
    /// V0-V31 when the vector registers are not saved as Z registers.
    fp: [u128; 32],
    /// Z0-Z31, P0-P15 and FFR at `vector_length` (allocated the first time the vCPU is saved
    /// with SVE or streaming mode on), then ZA (`vector_length` rows) and ZT0 while ZA is on.
    vectors: Vec<u128>,
    vector_length: usize,
    /// HCR_EL2.VSE: a virtual SError is pending, with syndrome VSESR_EL2.
    serror: Option<u64>,
    /// The virtual CPU interface.
    pub interface: VirtualInterface,
    /// Bits of the timer PPIs EL2 held active for the guest (hardware-linked list registers).
    timer_ppis_active: u32,
}

impl Default for Saved {
    fn default() -> Self {
        Self {
            el1: [0; TABLE_ROWS],
            os_locked: false,
            claim_tags: 0,
            pmu_enabled: 0,
            pmu_interrupts: 0,
            pmu_overflows: 0,
            pmu_select: 0,
            pmu_cycles: 0,
            pmu_counters: [0; PMU_COUNTERS],
            pmu_types: [0; PMU_COUNTERS],
            breakpoints: [(0, 0); DEBUG_REGISTERS],
            watchpoints: [(0, 0); DEBUG_REGISTERS],
            virtual_timer: SavedTimer::default(),
            physical_timer: SavedTimer::default(),
            svcr: 0,
            fp: [0; 32],
            vectors: Vec::new(),
            vector_length: 0,
            serror: None,
            interface: VirtualInterface::default(),
            timer_ppis_active: 0,
        }
    }
}

/// Saves the loaded vCPU's state into `saved` and leaves its timers off, its virtual interface
/// empty and its timer PPIs inactive (see `VcpuHardware::save_vcpu`). `timer_ppis` are the bits
/// of the guest timers' PPIs; `active` reads this CPU's active SGI/PPI bits, `deactivate` ends
/// one PPI's active state.
///
/// # Safety
/// No guest runs on this CPU, the vCPU whose state the registers hold is the one `saved` is for,
/// and CPTR_EL2 lets EL2 reach FP/SIMD (and SVE/SME where the CPU has them), as the guest
/// configuration leaves it.
pub unsafe fn save<I: CpuInterface>(
    shape: &Shape,
    interface: I,
    list_registers: usize,
    timer_ppis: u32,
    active: impl FnOnce() -> u32,
    saved: &mut Saved,
) {
    let features = &shape.features;
    save_table(features, &mut saved.el1);
    saved.os_locked = read_sysreg!("oslsr_el1") & OSLSR_OSLK != 0;
    saved.claim_tags = read_sysreg!("dbgclaimclr_el1");
    for n in 0..shape.breakpoints {
        saved.breakpoints[n] = (
            debug_register!(read "bcr", n),
            debug_register!(read "bvr", n),
        );
    }
    for n in 0..shape.watchpoints {
        saved.watchpoints[n] = (
            debug_register!(read "wcr", n),
            debug_register!(read "wvr", n),
        );
    }
    if features.pmu {
        saved.pmu_enabled = read_sysreg!("pmcntenset_el0");
        saved.pmu_interrupts = read_sysreg!("pmintenset_el1");
        saved.pmu_overflows = read_sysreg!("pmovsset_el0");
        saved.pmu_select = read_sysreg!("pmselr_el0");
        saved.pmu_cycles = read_sysreg!("pmccntr_el0");
        for n in 0..shape.pmu_counters {
            // SAFETY: `n` selects an implemented counter; the registers are the guest's, and
            // PMSELR_EL0 is restored with the rest.
            let (count, kind) = unsafe { select_counter(n) };
            saved.pmu_counters[n] = count;
            saved.pmu_types[n] = kind;
        }
    }
    // The timers: saved, then off so they cannot fire for the next vCPU.
    saved.virtual_timer = SavedTimer {
        ctl: read_sysreg!("cntv_ctl_el0"),
        cval: read_sysreg!("cntv_cval_el0"),
        offset: read_sysreg!("cntvoff_el2"),
    };
    saved.physical_timer = SavedTimer {
        ctl: read_sysreg!("cntp_ctl_el0"),
        cval: read_sysreg!("cntp_cval_el0"),
        offset: 0,
    };
    // SAFETY: the timers are the guest's; off, they only stop interrupting this CPU.
    unsafe {
        write_sysreg!("cntv_ctl_el0", TIMER_OFF);
        write_sysreg!("cntp_ctl_el0", TIMER_OFF);
    }
    // SAFETY: the caller's contract covers the register files.
    unsafe { save_vectors(features, saved) };
    let hcr = read_sysreg!("hcr_el2");
    saved.serror = (hcr & traps::HCR_VSE != 0).then(|| {
        if features.ras {
            read_sysreg!("s3_4_c5_c2_3") // VSESR_EL2
        } else {
            0
        }
    });
    interface.save_virtual(list_registers, &mut saved.interface);
    // A timer PPI that EL2 acknowledged for this guest stays active until the guest deactivates
    // it through its list register: kept with the vCPU, and ended here so the next vCPU's timer
    // can interrupt.
    saved.timer_ppis_active = active() & timer_ppis;
    let mut bits = saved.timer_ppis_active;
    while bits != 0 {
        let intid = bits.trailing_zeros();
        interface.deactivate(intid);
        bits &= bits - 1;
    }
    isb();
}

/// Loads what [`save`] took: every register, in an order where nothing of it takes effect early
/// (timers' compare values before their controls, PMSELR_EL0 after the counters, SVCR before the
/// register files). `activate` makes this CPU's SGI/PPI bits it is given active again. EL2's
/// configuration for the vCPU (stage 2, traps, CNTVOFF_EL2) is the caller's, done first.
///
/// # Safety
/// As for [`save`]; `saved` was filled by [`save`] on this CPU for the vCPU being loaded.
pub unsafe fn restore<I: CpuInterface>(
    shape: &Shape,
    interface: I,
    list_registers: usize,
    activate: impl FnOnce(u32),
    saved: &Saved,
) {
    let features = &shape.features;
    // SAFETY: the caller's contract covers every write below.
    unsafe {
        restore_table(features, &saved.el1);
        write_sysreg!("dbgclaimclr_el1", 0xff);
        write_sysreg!("dbgclaimset_el1", saved.claim_tags);
    }
    for n in 0..shape.breakpoints {
        let (control, value) = saved.breakpoints[n];
        debug_register!(write "bvr", n, value);
        debug_register!(write "bcr", n, control);
    }
    for n in 0..shape.watchpoints {
        let (control, value) = saved.watchpoints[n];
        debug_register!(write "wvr", n, value);
        debug_register!(write "wcr", n, control);
    }
    // SAFETY: as above.
    unsafe {
        write_sysreg!("oslar_el1", u64::from(saved.os_locked));
        if features.pmu {
            for n in 0..shape.pmu_counters {
                load_counter(n, saved.pmu_counters[n], saved.pmu_types[n]);
            }
            write_sysreg!("pmselr_el0", saved.pmu_select);
            write_sysreg!("pmccntr_el0", saved.pmu_cycles);
            write_sysreg!("pmovsclr_el0", PMU_ALL);
            write_sysreg!("pmovsset_el0", saved.pmu_overflows);
            write_sysreg!("pmintenclr_el1", PMU_ALL);
            write_sysreg!("pmintenset_el1", saved.pmu_interrupts);
            write_sysreg!("pmcntenclr_el0", PMU_ALL);
            write_sysreg!("pmcntenset_el0", saved.pmu_enabled);
        }
        write_sysreg!("cntv_cval_el0", saved.virtual_timer.cval);
        write_sysreg!("cntp_cval_el0", saved.physical_timer.cval);
    }
    isb();
    // SAFETY: as above.
    unsafe {
        write_sysreg!("cntv_ctl_el0", saved.virtual_timer.ctl);
        write_sysreg!("cntp_ctl_el0", saved.physical_timer.ctl);
        restore_vectors(features, saved);
    }
    if let Some(syndrome) = saved.serror {
        let hcr = read_sysreg!("hcr_el2");
        // SAFETY: a virtual SError the vCPU had pending when it was saved, pending again for it.
        unsafe {
            if features.ras {
                write_sysreg!("s3_4_c5_c2_3", syndrome); // VSESR_EL2
            }
            super::sysreg::set_hcr_el2(hcr | traps::HCR_VSE);
        }
    }
    interface.restore_virtual(list_registers, &saved.interface);
    if saved.timer_ppis_active != 0 {
        activate(saved.timer_ppis_active);
    }
    isb();
}

/// PMEVCNTR<n>_EL0 and PMEVTYPER<n>_EL0 through PMSELR_EL0.
///
/// # Safety
/// Counter `n` exists; PMSELR_EL0 is the guest's and is restored by the caller.
unsafe fn select_counter(n: usize) -> (u64, u64) {
    let (count, kind): (u64, u64);
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "msr pmselr_el0, {n}",
            "isb",
            "mrs {count}, pmxevcntr_el0",
            "mrs {kind}, pmxevtyper_el0",
            n = in(reg) n as u64,
            count = out(reg) count,
            kind = out(reg) kind,
            options(nomem, nostack, preserves_flags),
        );
    }
    (count, kind)
}

/// Writes PMEVCNTR<n>_EL0 and PMEVTYPER<n>_EL0 through PMSELR_EL0.
///
/// # Safety
/// As for [`select_counter`].
unsafe fn load_counter(n: usize, count: u64, kind: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "msr pmselr_el0, {n}",
            "isb",
            "msr pmxevtyper_el0, {kind}",
            "msr pmxevcntr_el0, {count}",
            n = in(reg) n as u64,
            count = in(reg) count,
            kind = in(reg) kind,
            options(nostack, preserves_flags),
        );
    }
}

/// Bytes of Z0-Z31 and of P0-P15 plus FFR at vector length `vl` bytes.
fn z_bytes(vl: usize) -> usize {
    32 * vl
}
fn p_bytes(vl: usize) -> usize {
    17 * (vl / 8)
}

/// The register files: V0-V31 (no SVE, not streaming), else Z/P(/FFR) at the current vector
/// length, then ZA and ZT0 if the guest has ZA on; streaming mode and ZA end (SVCR = 0).
unsafe fn save_vectors(features: &CpuFeatures, saved: &mut Saved) {
    saved.svcr = if features.sme {
        read_sysreg!("s3_3_c4_c2_2") // SVCR
    } else {
        0
    };
    let streaming = saved.svcr & SVCR_SM != 0;
    let za = saved.svcr & SVCR_ZA != 0;
    if !features.sve && !streaming && !za {
        // SAFETY: CPTR_EL2.TFP is clear (the caller's contract); `fp` has room for 32 Q registers.
        unsafe { save_q(saved.fp.as_mut_ptr()) };
        return;
    }
    let vl = vector_length(features, streaming);
    let svl = if za { streaming_vector_length() } else { 0 };
    let bytes = z_bytes(vl) + p_bytes(vl) + svl * svl + if za { 64 } else { 0 };
    let words = bytes.div_ceil(16);
    if saved.vectors.len() < words {
        saved.vectors.resize(words, 0);
    }
    saved.vector_length = vl;
    let base = saved.vectors.as_mut_ptr().cast::<u8>();
    // SAFETY: `vectors` holds `bytes`; SVE (or streaming mode) is untrapped (the caller's
    // contract); FFR exists outside streaming mode, and in it only with FEAT_SME_FA64.
    unsafe {
        save_z(base);
        save_p(base.add(z_bytes(vl)), !streaming || features.sme_fa64);
        if za {
            let za_base = base.add(z_bytes(vl) + p_bytes(vl));
            save_za(za_base, svl);
            if features.sme2 {
                save_zt0(za_base.add(svl * svl));
            }
        }
    }
    if features.sme {
        // SAFETY: SVCR = 0 leaves streaming mode and turns ZA off: the guest's contents are saved.
        unsafe { write_sysreg!("s3_3_c4_c2_2", 0) };
        isb();
    }
}

/// Loads the register files [`save_vectors`] saved, SVCR first (entering streaming mode or
/// turning ZA on zeroes what is then loaded).
unsafe fn restore_vectors(features: &CpuFeatures, saved: &Saved) {
    if features.sme {
        // SAFETY: SVCR is the guest's; its register contents are loaded right after.
        unsafe { write_sysreg!("s3_3_c4_c2_2", saved.svcr) };
        isb();
    }
    let streaming = saved.svcr & SVCR_SM != 0;
    let za = saved.svcr & SVCR_ZA != 0;
    if !features.sve && !streaming && !za {
        // SAFETY: as in `save_vectors`.
        unsafe { load_q(saved.fp.as_ptr()) };
        return;
    }
    let vl = saved.vector_length;
    if vl == 0 || vl != vector_length(features, streaming) {
        // Never saved as Z registers (or the length changed, which EL2 never does): leave the
        // register files as the mode change left them, zero.
        return;
    }
    let svl = if za { streaming_vector_length() } else { 0 };
    let base = saved.vectors.as_ptr().cast::<u8>();
    // SAFETY: as in `save_vectors`; `vectors` was sized for this vector length and ZA.
    unsafe {
        load_p(base.add(z_bytes(vl)), !streaming || features.sme_fa64);
        load_z(base);
        if za && saved.vectors.len() * 16 >= z_bytes(vl) + p_bytes(vl) + svl * svl {
            let za_base = base.add(z_bytes(vl) + p_bytes(vl));
            load_za(za_base, svl);
            if features.sme2 {
                load_zt0(za_base.add(svl * svl));
            }
        }
    }
}

/// The vector length in bytes of the current mode (the streaming one in streaming mode).
fn vector_length(features: &CpuFeatures, streaming: bool) -> usize {
    if !features.sve && !streaming {
        return 0;
    }
    let vl: u64;
    // SAFETY: RDVL only reads the vector length; SVE or streaming mode is on.
    unsafe {
        core::arch::asm!(
            ".arch_extension sve",
            "rdvl {}, #1",
            out(reg) vl,
            options(nomem, nostack, preserves_flags)
        )
    };
    vl as usize
}

/// The streaming vector length in bytes (SME).
fn streaming_vector_length() -> usize {
    let svl: u64;
    // SAFETY: RDSVL only reads the streaming vector length.
    unsafe {
        core::arch::asm!(
            ".arch_extension sme",
            "rdsvl {}, #1",
            out(reg) svl,
            options(nomem, nostack, preserves_flags)
        )
    };
    svl as usize
}

macro_rules! q_pairs {
    ($op:literal, $base:expr) => {
        core::arch::asm!(
            ".arch_extension fp",
            ".arch_extension simd",
            concat!($op, " q0, q1, [{b}, #0]"),
            concat!($op, " q2, q3, [{b}, #32]"),
            concat!($op, " q4, q5, [{b}, #64]"),
            concat!($op, " q6, q7, [{b}, #96]"),
            concat!($op, " q8, q9, [{b}, #128]"),
            concat!($op, " q10, q11, [{b}, #160]"),
            concat!($op, " q12, q13, [{b}, #192]"),
            concat!($op, " q14, q15, [{b}, #224]"),
            concat!($op, " q16, q17, [{b}, #256]"),
            concat!($op, " q18, q19, [{b}, #288]"),
            concat!($op, " q20, q21, [{b}, #320]"),
            concat!($op, " q22, q23, [{b}, #352]"),
            concat!($op, " q24, q25, [{b}, #384]"),
            concat!($op, " q26, q27, [{b}, #416]"),
            concat!($op, " q28, q29, [{b}, #448]"),
            concat!($op, " q30, q31, [{b}, #480]"),
            b = in(reg) $base,
            options(nostack, preserves_flags),
        )
    };
}

/// Stores V0-V31 at `base` (512 bytes).
unsafe fn save_q(base: *mut u128) {
    // SAFETY: the caller's contract; `base` has room for 32 Q registers.
    unsafe { q_pairs!("stp", base) };
}

/// Loads V0-V31 from `base`.
unsafe fn load_q(base: *const u128) {
    // SAFETY: as in `save_q`.
    unsafe { q_pairs!("ldp", base) };
}

macro_rules! z_all {
    ($op:literal, $base:expr) => {
        core::arch::asm!(
            ".arch_extension sve",
            concat!($op, " z0, [{b}, #0, mul vl]"),
            concat!($op, " z1, [{b}, #1, mul vl]"),
            concat!($op, " z2, [{b}, #2, mul vl]"),
            concat!($op, " z3, [{b}, #3, mul vl]"),
            concat!($op, " z4, [{b}, #4, mul vl]"),
            concat!($op, " z5, [{b}, #5, mul vl]"),
            concat!($op, " z6, [{b}, #6, mul vl]"),
            concat!($op, " z7, [{b}, #7, mul vl]"),
            concat!($op, " z8, [{b}, #8, mul vl]"),
            concat!($op, " z9, [{b}, #9, mul vl]"),
            concat!($op, " z10, [{b}, #10, mul vl]"),
            concat!($op, " z11, [{b}, #11, mul vl]"),
            concat!($op, " z12, [{b}, #12, mul vl]"),
            concat!($op, " z13, [{b}, #13, mul vl]"),
            concat!($op, " z14, [{b}, #14, mul vl]"),
            concat!($op, " z15, [{b}, #15, mul vl]"),
            concat!($op, " z16, [{b}, #16, mul vl]"),
            concat!($op, " z17, [{b}, #17, mul vl]"),
            concat!($op, " z18, [{b}, #18, mul vl]"),
            concat!($op, " z19, [{b}, #19, mul vl]"),
            concat!($op, " z20, [{b}, #20, mul vl]"),
            concat!($op, " z21, [{b}, #21, mul vl]"),
            concat!($op, " z22, [{b}, #22, mul vl]"),
            concat!($op, " z23, [{b}, #23, mul vl]"),
            concat!($op, " z24, [{b}, #24, mul vl]"),
            concat!($op, " z25, [{b}, #25, mul vl]"),
            concat!($op, " z26, [{b}, #26, mul vl]"),
            concat!($op, " z27, [{b}, #27, mul vl]"),
            concat!($op, " z28, [{b}, #28, mul vl]"),
            concat!($op, " z29, [{b}, #29, mul vl]"),
            concat!($op, " z30, [{b}, #30, mul vl]"),
            concat!($op, " z31, [{b}, #31, mul vl]"),
            b = in(reg) $base,
            options(nostack, preserves_flags),
        )
    };
}

macro_rules! p_all {
    ($op:literal, $base:expr) => {
        core::arch::asm!(
            ".arch_extension sve",
            concat!($op, " p0, [{b}, #0, mul vl]"),
            concat!($op, " p1, [{b}, #1, mul vl]"),
            concat!($op, " p2, [{b}, #2, mul vl]"),
            concat!($op, " p3, [{b}, #3, mul vl]"),
            concat!($op, " p4, [{b}, #4, mul vl]"),
            concat!($op, " p5, [{b}, #5, mul vl]"),
            concat!($op, " p6, [{b}, #6, mul vl]"),
            concat!($op, " p7, [{b}, #7, mul vl]"),
            concat!($op, " p8, [{b}, #8, mul vl]"),
            concat!($op, " p9, [{b}, #9, mul vl]"),
            concat!($op, " p10, [{b}, #10, mul vl]"),
            concat!($op, " p11, [{b}, #11, mul vl]"),
            concat!($op, " p12, [{b}, #12, mul vl]"),
            concat!($op, " p13, [{b}, #13, mul vl]"),
            concat!($op, " p14, [{b}, #14, mul vl]"),
            concat!($op, " p15, [{b}, #15, mul vl]"),
            b = in(reg) $base,
            options(nostack, preserves_flags),
        )
    };
}

/// Stores Z0-Z31 at `base` (32 vector lengths).
unsafe fn save_z(base: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { z_all!("str", base) };
}

/// Loads Z0-Z31 from `base`.
unsafe fn load_z(base: *const u8) {
    // SAFETY: the caller's contract.
    unsafe { z_all!("ldr", base) };
}

/// Stores P0-P15 at `base`, then FFR (through P0, already saved) if `ffr`.
unsafe fn save_p(base: *mut u8, ffr: bool) {
    // SAFETY: the caller's contract.
    unsafe {
        p_all!("str", base);
        if ffr {
            core::arch::asm!(
                ".arch_extension sve",
                "rdffr p0.b",
                "str p0, [{b}, #16, mul vl]",
                b = in(reg) base,
                options(nostack, preserves_flags),
            );
        }
    }
}

/// Loads FFR (through P0) if `ffr`, then P0-P15, from `base`.
unsafe fn load_p(base: *const u8, ffr: bool) {
    // SAFETY: the caller's contract.
    unsafe {
        if ffr {
            core::arch::asm!(
                ".arch_extension sve",
                "ldr p0, [{b}, #16, mul vl]",
                "wrffr p0.b",
                b = in(reg) base,
                options(nostack, preserves_flags),
            );
        }
        p_all!("ldr", base);
    }
}

/// Stores (`"str"`) or loads (`"ldr"`) the `$svl` rows of ZA, each `$svl` bytes, at `$base`.
macro_rules! za_rows {
    ($op:literal, $base:expr, $svl:expr) => {
        core::arch::asm!(
            ".arch_extension sme",
            "mov w12, #0",
            "2:",
            concat!($op, " za[w12, 0], [{b}]"),
            "add {b}, {b}, {svl}",
            "add w12, w12, #1",
            "cmp x12, {svl}",
            "b.ne 2b",
            b = inout(reg) $base => _,
            svl = in(reg) $svl as u64,
            out("x12") _,
            options(nostack),
        )
    };
}

/// Stores the `svl` rows of ZA (each `svl` bytes) at `base`.
unsafe fn save_za(base: *mut u8, svl: usize) {
    // SAFETY: the caller's contract: ZA is on, `svl` is the streaming vector length (never 0)
    // and `base` has `svl * svl` bytes.
    unsafe { za_rows!("str", base, svl) };
}

/// Loads the `svl` rows of ZA from `base`.
unsafe fn load_za(base: *const u8, svl: usize) {
    // SAFETY: as in `save_za`.
    unsafe { za_rows!("ldr", base, svl) };
}

/// Stores ZT0 (64 bytes, SME2) at `base`.
unsafe fn save_zt0(base: *mut u8) {
    // SAFETY: the caller's contract: ZA is on, the CPU has SME2 and SMCR_EL2.EZT0 is set.
    unsafe {
        core::arch::asm!(
            ".arch_extension sme2",
            "str zt0, [{b}]",
            b = in(reg) base,
            options(nostack, preserves_flags),
        );
    }
}

/// Loads ZT0 from `base`.
unsafe fn load_zt0(base: *const u8) {
    // SAFETY: as in `save_zt0`.
    unsafe {
        core::arch::asm!(
            ".arch_extension sme2",
            "ldr zt0, [{b}]",
            b = in(reg) base,
            options(nostack, preserves_flags),
        );
    }
}
