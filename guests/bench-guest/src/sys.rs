//! System registers the benchmark uses: counters, PMU, GICv3 CPU interface (not on a GICv2),
//! virtual timer, PSCI.

/// Reads a system register by name.
macro_rules! read_sysreg {
    ($name:literal) => {{
        let value: u64;
        // SAFETY: reading this register has no side effects on memory (ICC_IAR1_EL1 acknowledges
        // an interrupt, which is what its callers want).
        unsafe { core::arch::asm!(concat!("mrs {}, ", $name), out(reg) value, options(nostack)) };
        value
    }};
}

/// Writes a system register by name.
macro_rules! write_sysreg {
    ($name:literal, $value:expr) => {{
        let value: u64 = $value;
        // SAFETY: the registers written here (PMU, GIC CPU interface, EL1 virtual timer) only
        // affect counting and interrupt delivery of this vCPU, never Rust-visible memory.
        unsafe { core::arch::asm!(concat!("msr ", $name, ", {}"), in(reg) value, options(nostack)) };
    }};
}
pub(crate) use {read_sysreg, write_sysreg};

/// Instruction synchronisation barrier: counter reads are neither early nor late.
#[inline(always)]
pub fn isb() {
    // SAFETY: ISB has no memory or register effects.
    unsafe { core::arch::asm!("isb", options(nomem, nostack, preserves_flags)) };
}

/// Data synchronisation barrier (full system).
#[inline(always)]
pub fn dsb() {
    // SAFETY: DSB only orders memory accesses.
    unsafe { core::arch::asm!("dsb sy", options(nostack, preserves_flags)) };
}

/// Waits for an interrupt (also wakes for a pending interrupt while IRQs are masked).
#[inline(always)]
pub fn wfi() {
    // SAFETY: WFI only waits.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack, preserves_flags)) };
}

/// Masks IRQs (PSTATE.I).
#[inline(always)]
pub fn mask_irq() {
    // SAFETY: changes only PSTATE.I.
    unsafe { core::arch::asm!("msr daifset, #2", options(nomem, nostack)) };
}

/// Unmasks IRQs and lets a pending one be taken right here.
#[inline(always)]
pub fn unmask_irq() {
    // SAFETY: changes only PSTATE.I; the vector table is installed before any IRQ is enabled.
    unsafe { core::arch::asm!("msr daifclr, #2", "isb", options(nomem, nostack)) };
}

/// CNTVCT_EL0 after an ISB.
#[inline(always)]
pub fn counter() -> u64 {
    isb();
    read_sysreg!("cntvct_el0")
}

/// CNTFRQ_EL0 (1 GHz assumed if unset).
pub fn frequency() -> u64 {
    match read_sysreg!("cntfrq_el0") {
        0 => 1_000_000_000,
        value => value,
    }
}

/// MPIDR_EL1.Aff0.
pub fn vcpu_index() -> u64 {
    read_sysreg!("mpidr_el1") & 0xFF
}

/// PMU event number of "instructions architecturally executed".
const INST_RETIRED: u64 = 0x08;
/// PMEVTYPER<n>_EL0.P: do not count at EL1.
const PMEVTYPER_P: u64 = 1 << 31;
/// PMEVTYPER<n>_EL0.U: do not count at EL0.
const PMEVTYPER_U: u64 = 1 << 30;
/// PMEVTYPER<n>_EL0.NSH: count at EL2.
const PMEVTYPER_NSH: u64 = 1 << 27;
/// PMCR_EL0: E (enable), P (reset event counters), C (reset cycle counter), LC (64-bit cycles).
const PMCR_VALUE: u64 = 1 | (1 << 1) | (1 << 2) | (1 << 6);

/// What this vCPU's PMU offers.
#[derive(Clone, Copy)]
pub struct Pmu {
    /// The cycle counter runs.
    pub cycles: bool,
    /// Event counter 0 counts instructions executed at EL2 only.
    pub el2_instructions: bool,
}

impl Pmu {
    /// Enables the cycle counter (counting EL0, EL1 and EL2) and event counter 0 as an
    /// instructions-retired counter filtered to EL2, where the PMU exists.
    pub fn init() -> Self {
        let version = (read_sysreg!("id_aa64dfr0_el1") >> 8) & 0xF;
        if version == 0 || version == 0xF {
            return Self {
                cycles: false,
                el2_instructions: false,
            };
        }
        let counters = (read_sysreg!("pmcr_el0") >> 11) & 0x1F;
        let instructions = read_sysreg!("pmceid0_el0") & (1 << INST_RETIRED) != 0 && counters > 0;
        write_sysreg!("pmccfiltr_el0", PMEVTYPER_NSH);
        write_sysreg!("pmcntenclr_el0", u64::MAX);
        let mut enable = 1 << 31;
        if instructions {
            write_sysreg!("pmselr_el0", 0);
            isb();
            write_sysreg!(
                "pmxevtyper_el0",
                INST_RETIRED | PMEVTYPER_P | PMEVTYPER_U | PMEVTYPER_NSH
            );
            enable |= 1;
        }
        write_sysreg!("pmcr_el0", PMCR_VALUE);
        write_sysreg!("pmcntenset_el0", enable);
        isb();
        Self {
            cycles: true,
            el2_instructions: instructions,
        }
    }
}

/// One sample of every counter.
#[derive(Clone, Copy, Default)]
pub struct Sample {
    /// CNTVCT_EL0.
    pub ticks: u64,
    /// PMCCNTR_EL0.
    pub cycles: u64,
    /// PMEVCNTR0_EL0 (instructions at EL2).
    pub el2: u64,
}

impl Sample {
    /// Reads every counter between ISBs.
    #[inline(always)]
    pub fn now() -> Self {
        isb();
        let ticks = read_sysreg!("cntvct_el0");
        let cycles = read_sysreg!("pmccntr_el0");
        let el2 = read_sysreg!("pmevcntr0_el0");
        isb();
        Self { ticks, cycles, el2 }
    }

    /// Counts from `earlier` to `self`.
    pub fn since(self, earlier: Sample) -> Sample {
        Sample {
            ticks: self.ticks.wrapping_sub(earlier.ticks),
            cycles: self.cycles.wrapping_sub(earlier.cycles),
            el2: self.el2.wrapping_sub(earlier.el2) & 0xFFFF_FFFF,
        }
    }

    /// Adds `other` to these counts.
    pub fn add(&mut self, other: Sample) {
        self.ticks += other.ticks;
        self.cycles += other.cycles;
        self.el2 += other.el2;
    }
}

/// EL2 instructions so far (PMEVCNTR0_EL0, 32 bits).
#[inline(always)]
pub fn el2_instructions() -> u64 {
    isb();
    read_sysreg!("pmevcntr0_el0")
}

pub use cellvisor_guest_support::smccc::hvc;

/// PSCI_VERSION.
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// PSCI CPU_ON, SMC64.
pub const PSCI_CPU_ON: u32 = 0xC400_0003;
/// PSCI SYSTEM_OFF.
pub const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;
/// cellvisor's CELLVISOR_VERSION (docs/hypercalls.md).
pub const CELLVISOR_VERSION: u32 = 0xC600_0000;

/// PSCI SYSTEM_OFF; parks if it returns.
pub fn system_off() -> ! {
    hvc(PSCI_SYSTEM_OFF, 0, 0, 0);
    loop {
        wfi();
    }
}
