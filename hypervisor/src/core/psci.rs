//! PSCI for guests: the per-cell vCPU power state machine.
#![forbid(unsafe_code)]
//!
//! cellvisor implements PSCI 1.1 (DEN0022) for its guests over the HVC conduit. vCPUs are numbered
//! from 0 inside each cell and a vCPU's MPIDR is its index in Aff0 (Aff1..Aff3 zero), matching the
//! guest device tree. [`PsciCell::handle`] only changes the model and says what the arch glue has
//! to do ([`PsciAction`]); it never touches a CPU.
//!
//! Locking: a cell's `PsciCell` sits behind one lock shared by the cell's vCPUs; `handle` and
//! `vcpu_started` run with that lock held and never block.

use alloc::vec::Vec;

use crate::core::smccc::{PsciError, SUCCESS, SmcccCall, SmcccError};
use crate::mem::addr::GuestPhysAddr;

/// PSCI_VERSION (SMC32).
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// CPU_SUSPEND (SMC32).
pub const CPU_SUSPEND: u32 = 0x8400_0001;
/// CPU_SUSPEND (SMC64).
pub const CPU_SUSPEND_64: u32 = 0xC400_0001;
/// CPU_OFF (SMC32).
pub const CPU_OFF: u32 = 0x8400_0002;
/// CPU_ON (SMC32).
pub const CPU_ON: u32 = 0x8400_0003;
/// CPU_ON (SMC64).
pub const CPU_ON_64: u32 = 0xC400_0003;
/// AFFINITY_INFO (SMC32).
pub const AFFINITY_INFO: u32 = 0x8400_0004;
/// AFFINITY_INFO (SMC64).
pub const AFFINITY_INFO_64: u32 = 0xC400_0004;
/// MIGRATE_INFO_TYPE (SMC32).
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
/// SYSTEM_OFF (SMC32).
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// SYSTEM_RESET (SMC32).
pub const SYSTEM_RESET: u32 = 0x8400_0009;
/// PSCI_FEATURES (SMC32).
pub const PSCI_FEATURES: u32 = 0x8400_000A;
/// SYSTEM_RESET2 (SMC32).
pub const SYSTEM_RESET2: u32 = 0x8400_0012;
/// SYSTEM_RESET2 (SMC64).
pub const SYSTEM_RESET2_64: u32 = 0xC400_0012;

/// The PSCI version cellvisor implements: 1.1.
pub const PSCI_VERSION_1_1: u64 = 0x1_0001;

/// MIGRATE_INFO_TYPE answer: no Trusted OS needs migration (2 = not present / MP-capable).
pub const MIGRATE_INFO_TYPE_NOT_PRESENT: u64 = 2;

/// AFFINITY_INFO answers.
pub mod affinity_state {
    /// The vCPU is on.
    pub const ON: u64 = 0;
    /// The vCPU is off.
    pub const OFF: u64 = 1;
    /// The vCPU has a pending CPU_ON.
    pub const ON_PENDING: u64 = 2;
}

/// The power state of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuPower {
    /// Not running; CPU_ON may start it.
    Off,
    /// CPU_ON accepted (or cell boot); its physical CPU has not entered the guest yet.
    OnPending {
        /// Where the vCPU starts (in EL1h, MMU off).
        entry: GuestPhysAddr,
        /// The value for the vCPU's X0 at entry.
        context: u64,
    },
    /// Running guest code.
    On,
}

/// What the arch glue does after a PSCI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciAction {
    /// Write [`PsciOutcome::result`] to X0 and return to the caller.
    Return,
    /// Return to the caller as for [`Return`](Self::Return), and kick the physical CPU of `vcpu`,
    /// which then calls [`PsciCell::vcpu_started`] and enters the guest at `entry` with X0 = `context`.
    StartVcpu {
        /// The vCPU index within the cell.
        vcpu: usize,
        /// Its entry point.
        entry: GuestPhysAddr,
        /// Its X0 at entry.
        context: u64,
    },
    /// CPU_OFF: the caller's vCPU is now Off; do not return to it, idle its physical CPU until a
    /// later CPU_ON (or a cell reset).
    StopCaller,
    /// SYSTEM_OFF: stop every vCPU of the cell.
    CellOff,
    /// SYSTEM_RESET / SYSTEM_RESET2 warm reset: stop every vCPU and boot the cell again.
    CellReset,
}

/// The result of one PSCI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsciOutcome {
    /// The value for the caller's X0 (meaningless for [`PsciAction::StopCaller`], `CellOff` and
    /// `CellReset`, which do not return to the caller).
    pub result: u64,
    /// What the arch glue does next.
    pub action: PsciAction,
}

impl PsciOutcome {
    const fn value(result: u64) -> Self {
        Self {
            result,
            action: PsciAction::Return,
        }
    }

    const fn error(error: PsciError) -> Self {
        Self::value(error.to_register())
    }
}

/// The PSCI model of one cell: the power state of each of its vCPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsciCell {
    vcpus: Vec<VcpuPower>,
}

impl PsciCell {
    /// A cell with `vcpu_count` vCPUs, all Off except vCPU 0, which is OnPending at `boot_entry`
    /// with X0 = `boot_context` (for Linux: the guest device tree's address).
    pub fn new(vcpu_count: usize, boot_entry: GuestPhysAddr, boot_context: u64) -> Self {
        let mut cell = Self {
            vcpus: alloc::vec![VcpuPower::Off; vcpu_count],
        };
        cell.reset(boot_entry, boot_context);
        cell
    }

    /// Back to the boot state: every vCPU Off, vCPU 0 OnPending at `boot_entry` with X0 = `boot_context`.
    pub fn reset(&mut self, boot_entry: GuestPhysAddr, boot_context: u64) {
        self.vcpus.fill(VcpuPower::Off);
        if let Some(first) = self.vcpus.first_mut() {
            *first = VcpuPower::OnPending {
                entry: boot_entry,
                context: boot_context,
            };
        }
    }

    /// Number of vCPUs in the cell.
    pub fn vcpu_count(&self) -> usize {
        self.vcpus.len()
    }

    /// The power state of `vcpu`, or `None` if there is no such vCPU.
    pub fn state(&self, vcpu: usize) -> Option<VcpuPower> {
        self.vcpus.get(vcpu).copied()
    }

    /// Whether any vCPU is On or OnPending.
    pub fn any_running(&self) -> bool {
        self.vcpus.iter().any(|state| *state != VcpuPower::Off)
    }

    /// Whether `vcpu` waits to be started (CPU_ON, or vCPU 0 of a fresh instance).
    pub fn start_pending(&self, vcpu: usize) -> bool {
        matches!(self.vcpus.get(vcpu), Some(VcpuPower::OnPending { .. }))
    }

    /// Called on the target's physical CPU: an OnPending vCPU becomes On and the entry point and
    /// X0 are returned. `None` if the vCPU is not OnPending (nothing to start).
    pub fn vcpu_started(&mut self, vcpu: usize) -> Option<(GuestPhysAddr, u64)> {
        let state = self.vcpus.get_mut(vcpu)?;
        match *state {
            VcpuPower::OnPending { entry, context } => {
                *state = VcpuPower::On;
                Some((entry, context))
            }
            VcpuPower::Off | VcpuPower::On => None,
        }
    }

    /// Handles one PSCI call from vCPU `caller`. `memory` says whether an IPA is inside the
    /// cell's RAM (CPU_ON entry points must be).
    ///
    /// CPU_SUSPEND is treated as a standby request that ends at once: it returns SUCCESS without
    /// waiting, which PSCI allows (a wake-up may end the suspend immediately, and for a power-down
    /// request the implementation may choose a shallower state). No context is lost.
    pub fn handle(
        &mut self,
        caller: usize,
        call: &SmcccCall,
        memory: &impl Fn(GuestPhysAddr) -> bool,
    ) -> PsciOutcome {
        match call.function_id.0 {
            PSCI_VERSION => PsciOutcome::value(PSCI_VERSION_1_1),
            PSCI_FEATURES => PsciOutcome::value(features(call.arg(1) as u32)),
            CPU_SUSPEND | CPU_SUSPEND_64 => PsciOutcome::value(SUCCESS),
            CPU_OFF => self.cpu_off(caller),
            CPU_ON | CPU_ON_64 => self.cpu_on(call, memory),
            AFFINITY_INFO | AFFINITY_INFO_64 => self.affinity_info(call),
            MIGRATE_INFO_TYPE => PsciOutcome::value(MIGRATE_INFO_TYPE_NOT_PRESENT),
            SYSTEM_OFF => PsciOutcome {
                result: SUCCESS,
                action: PsciAction::CellOff,
            },
            SYSTEM_RESET => PsciOutcome {
                result: SUCCESS,
                action: PsciAction::CellReset,
            },
            SYSTEM_RESET2 | SYSTEM_RESET2_64 => system_reset2(call.arg(1) as u32),
            _ => PsciOutcome::error(PsciError::NotSupported),
        }
    }

    fn cpu_off(&mut self, caller: usize) -> PsciOutcome {
        match self.vcpus.get_mut(caller) {
            Some(state) => {
                *state = VcpuPower::Off;
                PsciOutcome {
                    result: SUCCESS,
                    action: PsciAction::StopCaller,
                }
            }
            // Only reachable through an arch-glue bug; the caller keeps running.
            None => PsciOutcome::error(PsciError::Denied),
        }
    }

    fn cpu_on(&mut self, call: &SmcccCall, memory: &impl Fn(GuestPhysAddr) -> bool) -> PsciOutcome {
        let Some(vcpu) = self.vcpu_for_mpidr(call.arg(1)) else {
            return PsciOutcome::error(PsciError::InvalidParameters);
        };
        let entry = GuestPhysAddr::new(call.arg(2));
        let context = call.arg(3);
        let Some(state) = self.vcpus.get_mut(vcpu) else {
            return PsciOutcome::error(PsciError::InvalidParameters);
        };
        match *state {
            VcpuPower::On => PsciOutcome::error(PsciError::AlreadyOn),
            VcpuPower::OnPending { .. } => PsciOutcome::error(PsciError::OnPending),
            VcpuPower::Off => {
                if !entry.is_aligned(4) || !memory(entry) {
                    return PsciOutcome::error(PsciError::InvalidAddress);
                }
                *state = VcpuPower::OnPending { entry, context };
                PsciOutcome {
                    result: SUCCESS,
                    action: PsciAction::StartVcpu {
                        vcpu,
                        entry,
                        context,
                    },
                }
            }
        }
    }

    fn affinity_info(&self, call: &SmcccCall) -> PsciOutcome {
        if call.arg(2) != 0 {
            // Only affinity level 0 (a single vCPU) is supported.
            return PsciOutcome::error(PsciError::InvalidParameters);
        }
        match self
            .vcpu_for_mpidr(call.arg(1))
            .and_then(|vcpu| self.vcpus.get(vcpu))
        {
            Some(VcpuPower::On) => PsciOutcome::value(affinity_state::ON),
            Some(VcpuPower::Off) => PsciOutcome::value(affinity_state::OFF),
            Some(VcpuPower::OnPending { .. }) => PsciOutcome::value(affinity_state::ON_PENDING),
            None => PsciOutcome::error(PsciError::InvalidParameters),
        }
    }

    /// The vCPU with this MPIDR: Aff0 is the index, Aff1..Aff3 must be zero, non-affinity bits
    /// (U, MT, RES1 bit 31) are ignored.
    fn vcpu_for_mpidr(&self, mpidr: u64) -> Option<usize> {
        const AFF1_TO_AFF3: u64 = 0xff_00ff_ff00;
        if mpidr & AFF1_TO_AFF3 != 0 {
            return None;
        }
        let vcpu = (mpidr & 0xff) as usize;
        (vcpu < self.vcpus.len()).then_some(vcpu)
    }
}

/// PSCI_FEATURES: SUCCESS (0; for CPU_SUSPEND also "original power_state format, platform
/// coordinated") for implemented functions, NOT_SUPPORTED otherwise. SMCCC_VERSION is listed
/// because Linux asks PSCI_FEATURES about it to detect SMCCC 1.1.
fn features(function_id: u32) -> u64 {
    match function_id {
        PSCI_VERSION
        | CPU_SUSPEND
        | CPU_SUSPEND_64
        | CPU_OFF
        | CPU_ON
        | CPU_ON_64
        | AFFINITY_INFO
        | AFFINITY_INFO_64
        | MIGRATE_INFO_TYPE
        | SYSTEM_OFF
        | SYSTEM_RESET
        | PSCI_FEATURES
        | SYSTEM_RESET2
        | SYSTEM_RESET2_64
        | crate::core::smccc::SMCCC_VERSION => SUCCESS,
        _ => SmcccError::NotSupported.to_register(),
    }
}

/// SYSTEM_RESET2: architectural type 0 (SYSTEM_WARM_RESET) resets the cell; other architectural
/// types are invalid, vendor-specific ones (bit 31 set) unsupported.
fn system_reset2(reset_type: u32) -> PsciOutcome {
    if reset_type == 0 {
        PsciOutcome {
            result: SUCCESS,
            action: PsciAction::CellReset,
        }
    } else if reset_type & (1 << 31) != 0 {
        PsciOutcome::error(PsciError::NotSupported)
    } else {
        PsciOutcome::error(PsciError::InvalidParameters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::smccc::FunctionId;

    const BOOT: GuestPhysAddr = GuestPhysAddr::new(0x4008_0000);
    const DTB: u64 = 0x4800_0000;

    fn ram(ipa: GuestPhysAddr) -> bool {
        (0x4000_0000..0x8000_0000).contains(&ipa.raw())
    }

    fn call(id: u32, x1: u64, x2: u64, x3: u64) -> SmcccCall {
        SmcccCall {
            function_id: FunctionId(id),
            args: [x1, x2, x3, 0, 0, 0],
        }
    }

    fn err(error: PsciError) -> u64 {
        error.to_register()
    }

    /// A 4-vCPU cell whose boot vCPU has started.
    fn booted() -> PsciCell {
        let mut cell = PsciCell::new(4, BOOT, DTB);
        assert_eq!(cell.vcpu_started(0), Some((BOOT, DTB)));
        cell
    }

    #[test]
    fn boot_state_and_start() {
        let mut cell = PsciCell::new(2, BOOT, DTB);
        assert_eq!(
            cell.state(0),
            Some(VcpuPower::OnPending {
                entry: BOOT,
                context: DTB
            })
        );
        assert_eq!(cell.state(1), Some(VcpuPower::Off));
        assert_eq!(cell.state(2), None);
        assert_eq!(cell.vcpu_started(1), None);
        assert_eq!(cell.vcpu_started(0), Some((BOOT, DTB)));
        assert_eq!(cell.vcpu_started(0), None);
        assert_eq!(cell.state(0), Some(VcpuPower::On));
        assert_eq!(cell.vcpu_started(99), None);
        assert!(PsciCell::new(0, BOOT, DTB).vcpu_count() == 0);
    }

    #[test]
    fn version_features_migrate() {
        let mut cell = booted();
        let mut ask = |id, x1| cell.handle(0, &call(id, x1, 0, 0), &ram);
        assert_eq!(ask(PSCI_VERSION, 0), PsciOutcome::value(0x10001));
        assert_eq!(ask(MIGRATE_INFO_TYPE, 0).result, 2);
        for id in [
            PSCI_VERSION,
            CPU_ON,
            CPU_ON_64,
            CPU_OFF,
            CPU_SUSPEND,
            AFFINITY_INFO,
            SYSTEM_OFF,
            SYSTEM_RESET,
            SYSTEM_RESET2,
            PSCI_FEATURES,
            0x8000_0000,
        ] {
            assert_eq!(ask(PSCI_FEATURES, u64::from(id)).result, SUCCESS, "{id:#x}");
        }
        for id in [
            0x8400_0005u32,
            0x8400_000E,
            0x8400_0013,
            0xC400_000E,
            0x1234,
        ] {
            assert_eq!(
                ask(PSCI_FEATURES, u64::from(id)).result,
                err(PsciError::NotSupported),
                "{id:#x}"
            );
        }
        // Unimplemented functions.
        for id in [
            0x8400_0005,
            0xC400_0007,
            0x8400_000B,
            0x8400_000E,
            0x8400_0013,
            0x8400_001F,
        ] {
            assert_eq!(
                ask(id, 0),
                PsciOutcome::error(PsciError::NotSupported),
                "{id:#x}"
            );
        }
    }

    #[test]
    fn cpu_on_lifecycle() {
        let mut cell = booted();
        let entry = 0x4010_0000;
        let outcome = cell.handle(0, &call(CPU_ON_64, 1, entry, 0xc0ffee), &ram);
        assert_eq!(
            outcome,
            PsciOutcome {
                result: SUCCESS,
                action: PsciAction::StartVcpu {
                    vcpu: 1,
                    entry: GuestPhysAddr::new(entry),
                    context: 0xc0ffee
                },
            }
        );
        assert_eq!(
            cell.handle(0, &call(CPU_ON_64, 1, entry, 0), &ram).result,
            err(PsciError::OnPending)
        );
        assert_eq!(
            cell.handle(0, &call(AFFINITY_INFO_64, 1, 0, 0), &ram)
                .result,
            affinity_state::ON_PENDING
        );
        assert_eq!(
            cell.vcpu_started(1),
            Some((GuestPhysAddr::new(entry), 0xc0ffee))
        );
        assert_eq!(
            cell.handle(0, &call(CPU_ON_64, 1, entry, 0), &ram).result,
            err(PsciError::AlreadyOn)
        );
        assert_eq!(
            cell.handle(0, &call(AFFINITY_INFO_64, 1, 0, 0), &ram)
                .result,
            affinity_state::ON
        );
        // The caller itself is on.
        assert_eq!(
            cell.handle(0, &call(CPU_ON_64, 0, entry, 0), &ram).result,
            err(PsciError::AlreadyOn)
        );

        // CPU_OFF on vCPU 1, then it can be started again.
        assert_eq!(
            cell.handle(1, &call(CPU_OFF, 0, 0, 0), &ram),
            PsciOutcome {
                result: SUCCESS,
                action: PsciAction::StopCaller
            }
        );
        assert_eq!(
            cell.handle(0, &call(AFFINITY_INFO, 1, 0, 0), &ram).result,
            affinity_state::OFF
        );
        assert_eq!(
            cell.handle(0, &call(CPU_ON, 1, entry, 7), &ram).result,
            SUCCESS
        );
    }

    #[test]
    fn cpu_on_argument_checks() {
        let mut cell = booted();
        let mut on = |id, mpidr, entry| cell.handle(0, &call(id, mpidr, entry, 0), &ram).result;
        // No such vCPU, Aff1..3 non-zero.
        assert_eq!(
            on(CPU_ON_64, 4, 0x4000_0000),
            err(PsciError::InvalidParameters)
        );
        assert_eq!(
            on(CPU_ON_64, 0x100, 0x4000_0000),
            err(PsciError::InvalidParameters)
        );
        assert_eq!(
            on(CPU_ON_64, 0x1_0000, 0x4000_0000),
            err(PsciError::InvalidParameters)
        );
        assert_eq!(
            on(CPU_ON_64, 0x1_0000_0000, 0x4000_0000),
            err(PsciError::InvalidParameters)
        );
        // Entry outside RAM or misaligned.
        assert_eq!(
            on(CPU_ON_64, 1, 0x0900_0000),
            err(PsciError::InvalidAddress)
        );
        assert_eq!(
            on(CPU_ON_64, 1, 0x1_4000_0000),
            err(PsciError::InvalidAddress)
        );
        assert_eq!(
            on(CPU_ON_64, 1, 0x4000_0002),
            err(PsciError::InvalidAddress)
        );
        // Non-affinity MPIDR bits (bit 31 RES1, U bit 30) are ignored.
        assert_eq!(on(CPU_ON_64, 0x8000_0002, 0x4000_0000), SUCCESS);
        // The SMC32 variant only looks at W1..W3: 0x1_4000_0000 becomes 0x4000_0000.
        assert_eq!(on(CPU_ON, 0xffff_ffff_0000_0003, 0x1_4000_0000), SUCCESS);
        assert_eq!(
            cell.state(3),
            Some(VcpuPower::OnPending {
                entry: GuestPhysAddr::new(0x4000_0000),
                context: 0
            })
        );
        // Failed calls changed nothing for vCPU 1.
        assert_eq!(cell.state(1), Some(VcpuPower::Off));
    }

    #[test]
    fn affinity_info_levels_and_targets() {
        let mut cell = booted();
        assert_eq!(
            cell.handle(0, &call(AFFINITY_INFO_64, 0, 0, 0), &ram)
                .result,
            affinity_state::ON
        );
        assert_eq!(
            cell.handle(0, &call(AFFINITY_INFO_64, 2, 0, 0), &ram)
                .result,
            affinity_state::OFF
        );
        assert_eq!(
            cell.handle(0, &call(AFFINITY_INFO_64, 0, 1, 0), &ram)
                .result,
            err(PsciError::InvalidParameters)
        );
        assert_eq!(
            cell.handle(0, &call(AFFINITY_INFO_64, 9, 0, 0), &ram)
                .result,
            err(PsciError::InvalidParameters)
        );
        assert_eq!(
            cell.handle(0, &call(AFFINITY_INFO_64, 0x100, 0, 0), &ram)
                .result,
            err(PsciError::InvalidParameters)
        );
    }

    #[test]
    fn last_cpu_off_leaves_no_running_vcpu() {
        let mut cell = booted();
        assert!(cell.any_running());
        assert_eq!(
            cell.handle(0, &call(CPU_OFF, 0, 0, 0), &ram).action,
            PsciAction::StopCaller
        );
        assert!(!cell.any_running());
        // A bogus caller index (arch bug) is refused without effect.
        assert_eq!(
            cell.handle(17, &call(CPU_OFF, 0, 0, 0), &ram).result,
            err(PsciError::Denied)
        );
    }

    #[test]
    fn suspend_system_off_reset() {
        let mut cell = booted();
        assert_eq!(
            cell.handle(0, &call(CPU_SUSPEND_64, 0x1_0000, 0x4000_0000, 0), &ram),
            PsciOutcome::value(SUCCESS)
        );
        assert_eq!(
            cell.handle(0, &call(SYSTEM_OFF, 0, 0, 0), &ram).action,
            PsciAction::CellOff
        );
        assert_eq!(
            cell.handle(0, &call(SYSTEM_RESET, 0, 0, 0), &ram).action,
            PsciAction::CellReset
        );
        assert_eq!(
            cell.handle(0, &call(SYSTEM_RESET2_64, 0, 0, 0), &ram)
                .action,
            PsciAction::CellReset
        );
        assert_eq!(
            cell.handle(0, &call(SYSTEM_RESET2, 1, 0, 0), &ram).result,
            err(PsciError::InvalidParameters)
        );
        assert_eq!(
            cell.handle(0, &call(SYSTEM_RESET2, 0x8000_0000, 0, 0), &ram)
                .result,
            err(PsciError::NotSupported)
        );
    }

    #[test]
    fn reset_returns_to_boot_state() {
        let mut cell = booted();
        cell.handle(0, &call(CPU_ON_64, 1, 0x4000_0000, 0), &ram);
        cell.reset(BOOT, DTB);
        assert_eq!(cell, PsciCell::new(4, BOOT, DTB));
    }

    #[test]
    fn racing_cpu_on_has_one_winner() {
        use std::sync::Arc;
        use std::sync::Barrier;

        for round in 0..20 {
            let cell = Arc::new(spin::Mutex::new(booted()));
            let barrier = Arc::new(Barrier::new(8));
            let threads: Vec<_> = (0..8)
                .map(|thread| {
                    let cell = Arc::clone(&cell);
                    let barrier = Arc::clone(&barrier);
                    std::thread::spawn(move || {
                        barrier.wait();
                        let outcome =
                            cell.lock()
                                .handle(0, &call(CPU_ON_64, 2, 0x4000_0000, thread), &ram);
                        // Half of the threads let the target come up midway, as its physical CPU would.
                        if thread % 2 == 1 {
                            cell.lock().vcpu_started(2);
                        }
                        outcome
                    })
                })
                .collect();
            let outcomes: Vec<PsciOutcome> =
                threads.into_iter().map(|t| t.join().unwrap()).collect();
            let winners = outcomes.iter().filter(|o| o.result == SUCCESS).count();
            assert_eq!(winners, 1, "round {round}: {outcomes:?}");
            for outcome in &outcomes {
                assert!(
                    outcome.result == SUCCESS
                        || outcome.result == err(PsciError::AlreadyOn)
                        || outcome.result == err(PsciError::OnPending),
                    "round {round}: {outcome:?}"
                );
            }
            let started = outcomes
                .iter()
                .filter(|o| matches!(o.action, PsciAction::StartVcpu { vcpu: 2, .. }))
                .count();
            assert_eq!(started, 1);
        }
    }
}
