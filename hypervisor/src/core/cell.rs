//! One cell at run time: its plan, stage 2, PSCI state, device bus, counters and fault log, and
//! loading its images and device tree.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};

use spin::Mutex;

use crate::console::manage::{CellSummary, ExitCounts};
use crate::console::ratelimit::RateLimiter;
use crate::core::fault_loop::{Fault, FaultStreak};
use crate::core::hardware::Machine;
use crate::core::lifecycle::CellState;
use crate::core::psci::{PsciCell, VcpuPower};
use crate::core::runtime::CellError;
use crate::core::set_way::{self, SetWayClean};
use crate::dev::{CellPhysical, DeviceBus};
use crate::mem::addr::{GuestPhysAddr, PhysAddr};
use crate::mem::stage2::Stage2;
use crate::setup::bundle::Bundle;
use crate::setup::guest_fdt::{self, GuestDtSpec, GuestPci};
use crate::setup::image;
use crate::setup::partition::CellPlan;
use crate::setup::platform::{Platform, PlatformDevice};

/// Room reserved for a cell's generated device tree.
const DTB_RESERVE: usize = 64 * 1024;

/// Why an exit happened, for the per-cell counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// HVC or trapped SMC.
    Call,
    /// Emulated MMIO.
    Mmio,
    /// Trapped system register.
    SysReg,
    /// Trapped WFI.
    Wfi,
    /// Physical interrupt.
    Interrupt,
    /// Anything else (aborts outside the cell, undefined traps).
    Other,
}

/// Per-cell event counters, shown by the management prompt and the benchmark.
#[derive(Debug, Default)]
pub struct Counters {
    /// HVC/SMC calls.
    pub calls: AtomicU64,
    /// Emulated MMIO accesses.
    pub mmio: AtomicU64,
    /// Trapped system registers.
    pub sysreg: AtomicU64,
    /// Trapped WFIs.
    pub wfi: AtomicU64,
    /// Physical interrupts taken while the guest ran.
    pub interrupts: AtomicU64,
    /// Other exits.
    pub other: AtomicU64,
    /// Aborts and undefined-instruction exceptions injected.
    pub injected_faults: AtomicU64,
    /// Restarts.
    pub restarts: AtomicU64,
}

/// The CPU time a cell's vCPUs had on the CPUs they time-share with other cells, in counter ticks,
/// as their run queues charged it ([`crate::core::sched`]); each vCPU's own CPU writes its entry.
#[derive(Debug, Default)]
pub struct CpuTime {
    /// Per vCPU, all the time it ran since cellvisor started.
    total: Vec<AtomicU64>,
    /// Per vCPU, what it ran in the last accounting period that ended on its CPU.
    last_period: Vec<AtomicU64>,
    /// The period's length (0 until one ended: the CPUs are not time-shared, or just started).
    period: AtomicU64,
    /// Switches to one of the cell's vCPUs from another cell's (a save and a restore).
    switches: AtomicU64,
    /// Counter ticks those switches took at EL2, from before the save to after the restore
    /// (EL2 instructions under QEMU's `-icount shift=0` with its 1 GHz counter).
    switch_ticks: AtomicU64,
}

impl CpuTime {
    fn new(vcpus: usize) -> Self {
        Self {
            total: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            last_period: (0..vcpus).map(|_| AtomicU64::new(0)).collect(),
            period: AtomicU64::new(0),
            switches: AtomicU64::new(0),
            switch_ticks: AtomicU64::new(0),
        }
    }

    /// Records a switch to one of the cell's vCPUs that took `ticks`.
    pub fn record_switch(&self, ticks: u64) {
        self.switches.fetch_add(1, Ordering::Relaxed);
        self.switch_ticks.fetch_add(ticks, Ordering::Relaxed);
    }

    /// Switches to the cell's vCPUs so far and the mean ticks of one (`None` before the first).
    pub fn switches(&self) -> (u64, Option<u64>) {
        let switches = self.switches.load(Ordering::Relaxed);
        let ticks = self.switch_ticks.load(Ordering::Relaxed);
        (switches, ticks.checked_div(switches))
    }

    /// Charges `vcpu` with `ticks` it ran.
    pub fn charge(&self, vcpu: usize, ticks: u64) {
        if let Some(total) = self.total.get(vcpu) {
            total.fetch_add(ticks, Ordering::Relaxed);
        }
    }

    /// Records what `vcpu` ran in the period of `period` ticks that just ended.
    pub fn end_period(&self, vcpu: usize, used: u64, period: u64) {
        if let Some(last) = self.last_period.get(vcpu) {
            last.store(used, Ordering::Relaxed);
            self.period.store(period, Ordering::Relaxed);
        }
    }

    /// All the CPU time of the cell's vCPUs, in ticks.
    pub fn total(&self) -> u64 {
        self.total
            .iter()
            .map(|ticks| ticks.load(Ordering::Relaxed))
            .sum()
    }

    /// The cell's share of its CPUs in the last accounting period, in per mille of the time its
    /// vCPUs' CPUs had; `None` where no period ended yet (or its CPUs are not time-shared).
    pub fn last_share_permille(&self) -> Option<u64> {
        let period = self.period.load(Ordering::Relaxed);
        let available = period.saturating_mul(self.last_period.len() as u64);
        let used: u64 = self
            .last_period
            .iter()
            .map(|ticks| ticks.load(Ordering::Relaxed))
            .sum();
        (available > 0).then(|| used.saturating_mul(1000) / available)
    }
}

impl Counters {
    fn exits(&self) -> ExitCounts {
        ExitCounts {
            calls: self.calls.load(Ordering::Relaxed),
            mmio: self.mmio.load(Ordering::Relaxed),
            sysreg: self.sysreg.load(Ordering::Relaxed),
            wfi: self.wfi.load(Ordering::Relaxed),
            interrupts: self.interrupts.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
        }
    }
}

/// One cell.
pub struct Cell {
    pub(crate) plan: CellPlan,
    bundle: Bundle<'static>,
    stage2: Stage2,
    pub(crate) state: AtomicU8,
    /// The cell's PSCI state machine (lock order: before the device bus's locks).
    pub psci: Mutex<PsciCell>,
    /// The cell's emulated and forwarded devices.
    pub devices: DeviceBus,
    passthrough_nodes: Vec<PlatformDevice>,
    guest_pci: Option<GuestPci>,
    /// SMMU streams of the cell's devices: allowed through its stage 2 whenever it is loaded,
    /// blocked first when it stops.
    dma_streams: Vec<u32>,
    pub(crate) in_guest: Vec<AtomicBool>,
    started_at: AtomicU64,
    /// CNTVOFF_EL2 of the cell's vCPUs: 0 for the instance booted with the machine (its virtual
    /// counter counts from the machine's reset), the counter value of the restart for every later
    /// instance (its virtual time starts at zero, as after a reset of its own).
    virtual_offset: AtomicU64,
    /// Bumped at every (re)start: a vCPU context saved for an earlier instance is never resumed.
    generation: AtomicU32,
    /// CPU time of the cell's vCPUs where they time-share a CPU (docs/architecture.md
    /// "Time-sharing").
    pub cpu_time: CpuTime,
    /// Event counters.
    pub counters: Counters,
    fault_log: RateLimiter,
    /// Rate limit of the lifecycle lines a guest can cause in a loop (SYSTEM_RESET, restarted).
    lifecycle_log: RateLimiter,
    /// Each vCPU's latest injected fault, to recognise a fault loop (only the vCPU's own CPU
    /// takes its lock, so it is never contended).
    fault_streaks: Vec<Mutex<FaultStreak>>,
    /// Each vCPU's set/way clean in progress (only the vCPU's own CPU takes its lock).
    set_way_cleans: Vec<Mutex<SetWayClean>>,
}

impl Cell {
    /// A cell that is `Running` but not loaded yet ([`Cell::load`] fills its RAM).
    pub fn new(
        plan: CellPlan,
        bundle: Bundle<'static>,
        stage2: Stage2,
        devices: DeviceBus,
        passthrough_nodes: Vec<PlatformDevice>,
        guest_pci: Option<GuestPci>,
        dma_streams: Vec<u32>,
    ) -> Self {
        let vcpu_count = plan.vcpus.len();
        Self {
            bundle,
            stage2,
            state: AtomicU8::new(CellState::Running.to_u8()),
            psci: Mutex::new(PsciCell::new(vcpu_count, GuestPhysAddr::new(0), 0)),
            devices,
            passthrough_nodes,
            guest_pci,
            dma_streams,
            in_guest: (0..vcpu_count).map(|_| AtomicBool::new(false)).collect(),
            started_at: AtomicU64::new(0),
            virtual_offset: AtomicU64::new(0),
            generation: AtomicU32::new(0),
            cpu_time: CpuTime::new(vcpu_count),
            counters: Counters::default(),
            fault_log: RateLimiter::new(),
            lifecycle_log: RateLimiter::new(),
            fault_streaks: (0..vcpu_count)
                .map(|_| Mutex::new(FaultStreak::new()))
                .collect(),
            set_way_cleans: (0..vcpu_count)
                .map(|_| Mutex::new(SetWayClean::new()))
                .collect(),
            plan,
        }
    }

    /// The cell's name.
    pub fn name(&self) -> &'static str {
        self.plan.name
    }

    /// The cell's index in the partition.
    pub fn index(&self) -> usize {
        self.plan.index
    }

    /// Its plan (CPUs, memory).
    pub fn plan(&self) -> &CellPlan {
        &self.plan
    }

    /// The VTTBR_EL2 value of its stage-2 table.
    pub fn vttbr(&self) -> u64 {
        self.stage2.vttbr()
    }

    /// Number of vCPUs.
    pub fn vcpu_count(&self) -> usize {
        self.plan.vcpus.len()
    }

    /// Its virtual MPIDR for `vcpu`.
    pub fn virtual_mpidr(&self, vcpu: usize) -> u64 {
        self.plan
            .vcpus
            .get(vcpu)
            .map_or(0, |plan| plan.virtual_mpidr)
    }

    /// Whether `cpu` is this cell's home CPU (vCPU 0's), which performs stops and restarts.
    pub fn is_home(&self, cpu: usize) -> bool {
        self.plan.physical_cpu_of(0) == Some(cpu)
    }

    /// Records the counter value at which the cell was (re)started.
    pub fn mark_started(&self, counter: u64) {
        self.started_at.store(counter, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Makes the virtual time of the instance that starts now begin at zero (a restart, a start
    /// after a stop or a wipe): CNTVOFF_EL2 = `counter`.
    pub fn restart_virtual_time(&self, counter: u64) {
        self.virtual_offset.store(counter, Ordering::Relaxed);
    }

    /// CNTVOFF_EL2 for the cell's vCPUs.
    pub fn virtual_offset(&self) -> u64 {
        self.virtual_offset.load(Ordering::Relaxed)
    }

    /// Which instance of the cell runs: changes at every (re)start.
    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::Acquire)
    }

    /// A row of the management prompt's `cells` table; `now`/`frequency` from the system counter.
    pub fn summary(&self, now: u64, frequency: u64) -> CellSummary {
        let state = self.state();
        let vcpus_on = {
            let psci = self.psci.lock();
            (0..self.vcpu_count())
                .filter(|&vcpu| {
                    psci.state(vcpu)
                        .is_some_and(|power| power != VcpuPower::Off)
                })
                .count()
        };
        let uptime_seconds = (state == CellState::Running && frequency != 0)
            .then(|| now.saturating_sub(self.started_at.load(Ordering::Relaxed)) / frequency);
        CellSummary {
            name: self.name(),
            state: state.word(),
            vcpus_on: if state == CellState::Off { 0 } else { vcpus_on },
            vcpus: self.vcpu_count(),
            ram_mib: self.ram_bytes() >> 20,
            uptime_seconds,
            exits: self.counters.exits(),
            faults: self.counters.injected_faults.load(Ordering::Relaxed),
            restarts: self.counters.restarts.load(Ordering::Relaxed),
            dropped: crate::console::logger::dropped(self.index()),
            cpu_ms: {
                let ticks = self.cpu_time.total();
                (ticks != 0 && frequency != 0).then(|| {
                    u64::try_from(u128::from(ticks) * 1000 / u128::from(frequency))
                        .unwrap_or(u64::MAX)
                })
            },
            share_permille: self.cpu_time.last_share_permille(),
            channel_refused: None,
        }
    }

    /// All of the cell's RAM, in bytes.
    pub fn ram_bytes(&self) -> u64 {
        self.plan
            .memory
            .iter()
            .map(|region| region.physical.size())
            .sum()
    }

    /// Whether `vcpu` is inside its run loop (entered and not yet left).
    pub fn is_in_guest(&self, vcpu: usize) -> bool {
        self.in_guest
            .get(vcpu)
            .is_some_and(|flag| flag.load(Ordering::Acquire))
    }

    /// Records whether `vcpu` is inside its guest.
    pub fn set_in_guest(&self, vcpu: usize, inside: bool) {
        if let Some(flag) = self.in_guest.get(vcpu) {
            flag.store(inside, Ordering::Release);
        }
    }

    /// If `vcpu` was started (CPU_ON, or boot for vCPU 0) and the cell runs: its entry and x0.
    pub fn take_start(&self, vcpu: usize) -> Option<(GuestPhysAddr, u64)> {
        if self.state() != CellState::Running {
            return None;
        }
        self.psci.lock().vcpu_started(vcpu)
    }

    /// Whether `vcpu` waits to be started and the cell is running ([`Cell::take_start`] would
    /// start it).
    pub fn start_pending(&self, vcpu: usize) -> bool {
        self.state() == CellState::Running && self.psci.lock().start_pending(vcpu)
    }

    /// Counts an exit.
    pub fn count_exit(&self, reason: ExitReason) {
        let counter = match reason {
            ExitReason::Call => &self.counters.calls,
            ExitReason::Mmio => &self.counters.mmio,
            ExitReason::SysReg => &self.counters.sysreg,
            ExitReason::Wfi => &self.counters.wfi,
            ExitReason::Interrupt => &self.counters.interrupts,
            ExitReason::Other => &self.counters.other,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an injected fault.
    pub fn count_injected_fault(&self) {
        self.counters
            .injected_faults
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Logs a guest-caused fault, rate-limited per cell on the clock reading `(now, frequency)`
    /// (`Machine::counter`): 10 lines at once, then one a second with the number hidden.
    pub fn log_guest_fault(&self, reason: &str, value: u64, (now, frequency): (u64, u64)) {
        if let Some(suppressed) = self.fault_log.allow(now, frequency) {
            if suppressed > 0 {
                log::warn!(
                    "cell {}: {reason} ({value:#x}); {suppressed} similar events not shown",
                    self.name()
                );
            } else {
                log::warn!("cell {}: {reason} ({value:#x})", self.name());
            }
        }
    }

    /// Logs a DMA fault of one of the cell's devices, rate-limited with its CPU faults.
    pub fn log_dma_fault(
        &self,
        fault: &crate::core::hardware::DmaFault,
        access: &str,
        (now, frequency): (u64, u64),
    ) {
        if let Some(suppressed) = self.fault_log.allow(now, frequency) {
            let hidden = if suppressed > 0 {
                alloc::format!("; {suppressed} similar events not shown")
            } else {
                alloc::string::String::new()
            };
            log::warn!(
                "cell {}: DMA fault blocked by the SMMU: stream {:#x} {access} at {:#x} ({}){hidden}",
                self.name(),
                fault.stream,
                fault.address,
                fault.kind
            );
        }
    }

    /// Logs a lifecycle event of the cell that its guest can cause at will (a SYSTEM_RESET loop),
    /// through the same kind of token bucket as [`Cell::log_guest_fault`], so such a guest's share
    /// of the console is bounded by time.
    pub fn log_lifecycle(&self, what: core::fmt::Arguments<'_>, (now, frequency): (u64, u64)) {
        if let Some(suppressed) = self.lifecycle_log.allow(now, frequency) {
            if suppressed > 0 {
                log::info!(
                    "cell {}: {what}; {suppressed} similar events not shown",
                    self.name()
                );
            } else {
                log::info!("cell {}: {what}", self.name());
            }
        }
    }

    /// Records that `vcpu` is about to be sent to `vector` for `fault`; returns how many identical
    /// faults it has had in a row at the vector entry the previous one was sent to (see
    /// [`crate::core::fault_loop`]).
    pub fn record_fault(&self, vcpu: usize, fault: Fault, vector: u64) -> u32 {
        self.fault_streaks
            .get(vcpu)
            .map_or(1, |streak| streak.lock().record(fault, vector))
    }

    /// What `vcpu`'s set/way operation with operand `value` does next: a piece of the cell's
    /// RAM to clean, or nothing (see [`crate::core::set_way`]).
    pub fn set_way_step(&self, vcpu: usize, value: u64) -> set_way::Step {
        self.set_way_cleans
            .get(vcpu)
            .map_or(set_way::Step::Complete, |clean| {
                clean.lock().step(&self.plan.memory, value)
            })
    }

    /// Whether `[ipa, ipa + length)` lies inside one of the cell's RAM regions.
    pub fn ram_contains(&self, ipa: GuestPhysAddr, length: u64) -> bool {
        self.ipa_to_pa(ipa, length).is_some()
    }

    /// The physical address behind `[ipa, ipa + length)`, if it lies inside one RAM region.
    pub fn ipa_to_pa(&self, ipa: GuestPhysAddr, length: u64) -> Option<PhysAddr> {
        self.plan
            .memory
            .iter()
            .find_map(|region| region.phys_of(ipa, length))
    }

    /// Emits whatever partial line the cell's console holds.
    pub fn flush_console(&self) {
        crate::console::logger::cell_flush(self.index());
    }

    /// Loads the cell's images and device tree into its RAM and resets its PSCI state and devices.
    pub fn load<M: Machine + ?Sized>(
        &self,
        platform: &Platform,
        machine: &mut M,
    ) -> Result<(), CellError> {
        let images = self
            .bundle
            .cell_images(self.plan.config)
            .map_err(CellError::Bundle)?;
        let first = self
            .plan
            .memory
            .first()
            .ok_or(CellError::OutsideRam(GuestPhysAddr::new(0)))?;
        let ram = (first.guest_base, first.physical.size());
        let plan = image::plan(
            images.kernel,
            images.initrd.map(<[u8]>::len),
            DTB_RESERVE,
            ram,
        )
        .map_err(CellError::Image)?;
        if plan.format == image::ImageFormat::Raw && !self.plan.raw_binaries {
            return Err(CellError::Image(image::ImageError::RawBinaryRefused));
        }
        let initrd = match (plan.initrd_at, images.initrd) {
            (Some(at), Some(bytes)) => Some((at, bytes.len() as u64)),
            _ => None,
        };
        let display = self.devices.guest_display();
        let channel = self.devices.guest_channel();
        let spec = GuestDtSpec {
            bootargs: images.bootargs,
            initrd,
            pci: self.guest_pci.as_ref(),
            display: display.as_ref(),
            channel: channel.as_ref(),
        };
        let dtb = guest_fdt::generate_with_passthrough(
            &self.plan,
            platform,
            &spec,
            &self.passthrough_nodes,
        )
        .map_err(CellError::DeviceTree)?;
        self.copy_in(machine, plan.kernel_at, images.kernel)?;
        if let (Some(at), Some(bytes)) = (plan.initrd_at, images.initrd) {
            self.copy_in(machine, at, bytes)?;
        }
        self.copy_in(machine, plan.dtb_at, &dtb)?;
        self.psci.lock().reset(plan.entry, plan.dtb_at.raw());
        for streak in &self.fault_streaks {
            streak.lock().clear();
        }
        for clean in &self.set_way_cleans {
            clean.lock().clear();
        }
        self.devices
            .reset(&mut CellPhysical::new(machine, &self.plan));
        // The devices may reach the new instance's RAM only now that it holds nothing else.
        for &stream in &self.dma_streams {
            machine
                .dma_allow(stream, self.plan.vmid, self.stage2.root_address())
                .map_err(|_| CellError::Dma { stream })?;
        }
        Ok(())
    }

    /// The SMMU streams of the cell's devices.
    pub fn dma_streams(&self) -> &[u32] {
        &self.dma_streams
    }

    fn copy_in<M: Machine + ?Sized>(
        &self,
        machine: &mut M,
        at: GuestPhysAddr,
        bytes: &[u8],
    ) -> Result<(), CellError> {
        let pa = self
            .ipa_to_pa(at, bytes.len() as u64)
            .ok_or(CellError::OutsideRam(at))?;
        machine.write_memory(pa, bytes);
        Ok(())
    }
}
