//! This physical CPU as the core sees it: the [`Machine`] and [`VcpuHardware`] implementations
//! (memory loading and scrubbing, the physical GIC, EL2 trap configuration, the world switch).

use super::boot::{CPU_MPIDRS, FIRMWARE, GIC, KICK_SGI, UART};
use super::context::{self, Saved, Shape};
use super::entry::{EXIT_FIQ, EXIT_IRQ, EXIT_LEAVE, EXIT_SERROR, EXIT_SYNC, cellvisor_enter_guest};
use super::gic::{CpuInterface, ListRegisters};
use super::psci;
use super::sysreg::{self, isb, read_sysreg, write_sysreg};
use super::{cache, device, memory, reset, timer, traps};
use crate::board::El2Counting;
use crate::core::cell::Cell;
use crate::core::exit::RunningVcpu;
use crate::core::fast::{self, Fast};
use crate::core::hardware::{
    InputEvent, ScanoutFrame,
    DeviceAbort, DmaControlError, ExitKind, GuestRegs, Machine, Syndrome, VcpuHardware,
};
use crate::core::inject::Injection;
use crate::dev::mmio::AccessWidth;
use crate::dev::vgic::ListRegisters as _;
use crate::mem::addr::PhysAddr;
use crate::setup::platform::TimerInterrupts;

/// This physical CPU as the core sees it, driving its GIC CPU interface through `I` (chosen once
/// at boot: the run loop is compiled for each GIC version, so its hot paths never ask which).
pub struct Cpu<I> {
    lists: ListRegisters<I>,
    /// This CPU's index in the platform's `/cpus` order (what `current_cpu` finds), kept so the
    /// interrupt path need not search the MPIDRs.
    index: usize,
    /// An interrupt the fast path acknowledged and handed back to the run loop.
    deferred: Option<u32>,
    /// Per SGI, the handle its last acknowledgement returned (`gic::acknowledge`): on a GICv2 the
    /// SGI's deactivation must name the CPU that sent it.
    sgi_handles: [u32; 16],
    /// What this CPU implements, read once: the features its guest configuration and a vCPU
    /// switch depend on.
    shape: Shape,
    /// The guest configuration of EL2 on this CPU, computed once from `shape` (a vCPU switch
    /// writes it without building it again).
    el2: GuestEl2,
    /// When the time-sharing scheduler wants CNTHP to fire.
    slice_deadline: Option<u64>,
    /// When the screen wants CNTHP to fire (a switch banner's end).
    screen_deadline: Option<u64>,
}

/// The EL2 register values every guest on a CPU runs with (the cell-dependent ones, VTTBR,
/// VMPIDR, CNTVOFF and MDCR_EL2 of a cell allowed to count at EL2, are written beside them).
struct GuestEl2 {
    midr: u64,
    vtcr: u64,
    hcr: u64,
    cptr: u64,
    smcr: u64,
    hcrx: u64,
    hfgrtr: u64,
    hfgwtr: u64,
    hfgitr: u64,
    hdfgrtr: u64,
    hdfgwtr: u64,
    hfgrtr2: u64,
    hfgwtr2: u64,
    /// MDCR_EL2 of a cell that may not count at EL2 (every cell but the bench guest's).
    mdcr: u64,
}

impl GuestEl2 {
    fn of(features: &traps::CpuFeatures) -> Self {
        Self {
            midr: read_sysreg!("midr_el1"),
            vtcr: traps::vtcr_el2(),
            hcr: traps::hcr_el2_guest(features).value,
            cptr: traps::cptr_el2_guest(features).value,
            smcr: traps::smcr_el2_guest(features).value,
            hcrx: traps::hcrx_el2_guest(features).value,
            hfgrtr: traps::hfgrtr_el2_guest(features).value,
            hfgwtr: traps::hfgwtr_el2_guest(features).value,
            hfgitr: traps::hfgitr_el2_guest(features).value,
            hdfgrtr: traps::hdfgrtr_el2_guest(features).value,
            hdfgwtr: traps::hdfgwtr_el2_guest(features).value,
            hfgrtr2: traps::hfgrtr2_el2_guest(features),
            hfgwtr2: traps::hfgwtr2_el2_guest(features),
            mdcr: traps::mdcr_el2(features, El2Counting::Prohibited),
        }
    }
}

impl<I: CpuInterface> Cpu<I> {
    /// Physical CPU `index` (in the platform's `/cpus` order), with GIC CPU interface `interface`,
    /// whose guests' timers raise the PPIs `timers` names.
    pub fn new(index: usize, interface: I, timers: &TimerInterrupts) -> Self {
        let shape = Shape::this_cpu();
        Self {
            lists: ListRegisters::new(interface, timers),
            index,
            deferred: None,
            sgi_handles: core::array::from_fn(|sgi| sgi as u32),
            shape,
            el2: GuestEl2::of(&shape.features),
            slice_deadline: None,
            screen_deadline: None,
        }
    }

    /// EL2's configuration for `vcpu` of `cell`, shared by a fresh start and a restore: stage 2,
    /// the virtual MPIDR/MIDR, every trap register, the cell's virtual counter offset. The list
    /// registers and the guest's own registers are the callers'.
    ///
    /// # Safety
    /// No guest runs on this CPU; the next guest entered is `vcpu` of `cell`.
    unsafe fn configure_el2(&mut self, cell: &Cell, vcpu: usize) {
        let config = &self.el2;
        let features = &self.shape.features;
        let mdcr = match cell.plan().config.policy.el2_counting {
            El2Counting::Prohibited => config.mdcr,
            counting => traps::mdcr_el2(features, counting),
        };
        // SAFETY: the stage-2 table confines the guest to its cell; the traps configured here
        // route everything else (physical interrupts, SMC) to EL2.
        unsafe {
            sysreg::set_stage2(cell.vttbr(), config.vtcr);
            sysreg::set_hcr_el2(config.hcr);
            write_sysreg!("vmpidr_el2", traps::vmpidr_el2(cell.virtual_mpidr(vcpu)));
            write_sysreg!("vpidr_el2", config.midr);
            write_sysreg!("cptr_el2", config.cptr);
            // ZCR_EL2, SMCR_EL2 and SVCR are reachable only once CPTR_EL2 no longer traps them.
            isb();
            if features.sve {
                write_sysreg!("s3_4_c1_c2_0", traps::ZCR_GUEST.value); // ZCR_EL2
            }
            if features.sme {
                write_sysreg!("s3_4_c1_c2_6", config.smcr); // SMCR_EL2
                if features.sme_priority {
                    write_sysreg!("s3_4_c1_c2_5", traps::SMPRIMAP_GUEST); // SMPRIMAP_EL2
                }
            }
            if features.hcx {
                write_sysreg!("s3_4_c1_c2_2", config.hcrx); // HCRX_EL2
            }
            if features.fgt {
                write_sysreg!("s3_4_c1_c1_4", config.hfgrtr); // HFGRTR_EL2
                write_sysreg!("s3_4_c1_c1_5", config.hfgwtr); // HFGWTR_EL2
                write_sysreg!("s3_4_c1_c1_6", config.hfgitr); // HFGITR_EL2
                write_sysreg!("s3_4_c3_c1_4", config.hdfgrtr); // HDFGRTR_EL2
                write_sysreg!("s3_4_c3_c1_5", config.hdfgwtr); // HDFGWTR_EL2
                if features.amu {
                    write_sysreg!("s3_4_c3_c1_6", traps::HAFGRTR_GUEST.value); // HAFGRTR_EL2
                }
            }
            if features.fgt2 {
                write_sysreg!("s3_4_c3_c1_2", config.hfgrtr2); // HFGRTR2_EL2
                write_sysreg!("s3_4_c3_c1_3", config.hfgwtr2); // HFGWTR2_EL2
                write_sysreg!("s3_4_c3_c1_7", traps::FGT2_OTHERS_GUEST); // HFGITR2_EL2
                write_sysreg!("s3_4_c3_c1_0", traps::FGT2_OTHERS_GUEST); // HDFGRTR2_EL2
                write_sysreg!("s3_4_c3_c1_1", traps::FGT2_OTHERS_GUEST); // HDFGWTR2_EL2
            }
            write_sysreg!("mdcr_el2", mdcr);
            write_sysreg!("cnthctl_el2", traps::CNTHCTL_GUEST.value);
            // The cell's own virtual time (zero at its instance's start; docs/architecture.md
            // "Time-sharing").
            write_sysreg!("cntvoff_el2", cell.virtual_offset());
            write_sysreg!("hstr_el2", traps::HSTR_GUEST.value);
        }
    }

    /// The bits of the guest timers' PPIs in a CPU's SGI/PPI words.
    fn timer_ppi_bits(&self) -> u32 {
        let (virtual_timer, physical_timer) = self.lists.timer_ppis();
        (1u32.checked_shl(virtual_timer).unwrap_or(0))
            | (1u32.checked_shl(physical_timer).unwrap_or(0))
    }
}

/// What the exception vector hands to [`cellvisor_fast_exit`]: the CPU and the running vCPU of
/// the `enter` call the exit interrupted, and the fast path compiled for that CPU's GIC.
#[repr(C)]
pub struct FastContext {
    /// A `Cpu<I>`, its interface type erased for the trip through the assembly.
    cpu: *mut (),
    /// A `RunningVcpu<'_>`, its lifetime erased for the trip through the assembly.
    running: *mut (),
    /// `fast_exit::<I>` for the `I` of `cpu`.
    fast_exit: unsafe fn(&mut FastContext, u64) -> u64,
}

fn exit_kind(kind: u64) -> ExitKind {
    match kind {
        EXIT_IRQ => ExitKind::Irq,
        EXIT_FIQ => ExitKind::Fiq,
        EXIT_SERROR => ExitKind::SError,
        EXIT_LEAVE => ExitKind::Leave,
        _ => ExitKind::Synchronous,
    }
}

/// Called by the exception vector at every guest exit with the guest's caller-saved registers
/// saved: returns 0 when [`fast::exit`] answered the exit (the vector re-enters the guest at once),
/// otherwise `kind + 1` (the vector completes the register save and returns from `enter`).
///
/// # Safety
/// `context` is the `FastContext` of the `Cpu::enter` call running on this CPU, whose guest just
/// exited; nothing else uses it or what it points to until this returns.
pub unsafe extern "C" fn cellvisor_fast_exit(context: *mut FastContext, kind: u64) -> u64 {
    // SAFETY: the caller passes the live context of this CPU's `enter` call (see above).
    let context = unsafe { &mut *context };
    // SAFETY: `enter` put the fast path for its own `Cpu<I>` in the context it passed.
    unsafe { (context.fast_exit)(context, kind) }
}

/// [`cellvisor_fast_exit`] for a CPU driving its GIC through `I`.
///
/// # Safety
/// `context` was built by `Cpu::<I>::enter` and is live (see [`cellvisor_fast_exit`]).
unsafe fn fast_exit<I: CpuInterface>(context: &mut FastContext, kind: u64) -> u64 {
    // SAFETY: both pointers were made by `Cpu::<I>::enter` from references that outlive this
    // call, and nothing else uses them until it returns.
    let (cpu, running) = unsafe {
        (
            &mut *context.cpu.cast::<Cpu<I>>(),
            &mut *context.running.cast::<RunningVcpu<'_>>(),
        )
    };
    let fast = match kind {
        EXIT_SYNC => fast::synchronous(running, cpu),
        EXIT_IRQ => fast::interrupt(running, cpu),
        _ => Fast::Slow,
    };
    match fast {
        Fast::Resume => 0,
        Fast::Slow => kind + 1,
        Fast::Leave => EXIT_LEAVE + 1,
    }
}

pub(super) fn mpidr_of(cpu: usize) -> Option<u64> {
    CPU_MPIDRS.get().and_then(|mpidrs| mpidrs.get(cpu).copied())
}

impl<I: CpuInterface> Machine for Cpu<I> {
    fn write_memory(&mut self, address: PhysAddr, bytes: &[u8]) {
        let target = address.to_virt().as_usize() as *mut u8;
        // SAFETY: `address` lies inside a cell's RAM (checked by the caller against the cell's
        // plan), which EL2 maps as normal memory and no guest runs in while it is loaded.
        unsafe { memory::copy(target, bytes.as_ptr(), bytes.len()) };
        // The guest starts with caches off: push the bytes to the point of coherency.
        cache::clean_invalidate_to_poc(target as usize, bytes.len());
    }

    fn read_memory(&mut self, address: PhysAddr, buffer: &mut [u8]) {
        let source = address.to_virt().as_usize() as *const u8;
        // SAFETY: `address` lies inside RAM EL2 maps as normal memory (a cell's, checked by the
        // caller against its plan, or cellvisor's own); a guest may change it concurrently, which
        // the caller treats as untrusted bytes.
        unsafe { memory::copy(buffer.as_mut_ptr(), source, buffer.len()) };
    }

    fn zero_memory(&mut self, address: PhysAddr, length: u64) {
        let target = address.to_virt().as_usize() as *mut u8;
        // SAFETY: as in `write_memory`.
        unsafe { memory::zero(target, length as usize) };
        cache::clean_invalidate_to_poc(target as usize, length as usize);
    }

    fn clean_invalidate_memory(&mut self, address: PhysAddr, length: u64) {
        // EL2's identity map has every cell's RAM as Normal write-back memory, so DC CIVAC by
        // its address reaches every cached copy of the cell's lines.
        cache::clean_invalidate_to_poc(address.to_virt().as_usize(), length as usize);
    }

    fn spi_set_enabled(&mut self, intid: u32, enabled: bool) {
        if let Some(gic) = GIC.get() {
            gic.set_spi_enabled(intid, enabled);
        }
    }

    fn spi_set_priority(&mut self, intid: u32, priority: u8) {
        if let Some(gic) = GIC.get() {
            gic.set_spi_priority(intid, priority);
        }
    }

    fn spi_set_edge_triggered(&mut self, intid: u32, edge: bool) {
        if let Some(gic) = GIC.get() {
            gic.set_spi_edge_triggered(intid, edge);
        }
    }

    fn spi_route(&mut self, intid: u32, cpu: usize) {
        if let (Some(gic), Some(mpidr)) = (GIC.get(), mpidr_of(cpu)) {
            gic.route_spi(intid, mpidr);
        }
    }

    fn deactivate_interrupt(&mut self, intid: u32, cpu: usize) {
        if let (Some(gic), Some(mpidr)) = (GIC.get(), mpidr_of(cpu)) {
            gic.deactivate_on(intid, mpidr);
        }
    }

    fn interrupt_line_asserted(&mut self, intid: u32, cpu: usize) -> bool {
        if cpu == self.index {
            // This CPU's own: its vCPU is loaded here, so its timers can be read directly.
            return self.lists.line_asserted(intid);
        }
        match (GIC.get(), mpidr_of(cpu)) {
            (Some(gic), Some(mpidr)) => gic.is_pending(intid, mpidr),
            // No such CPU: nothing to sample; keep the instance.
            _ => true,
        }
    }

    fn device_read(&mut self, address: PhysAddr, width: AccessWidth) -> Result<u64, DeviceAbort> {
        // SAFETY: `address` is a naturally aligned register of a device the running cell owns
        // (checked by its passthrough plan), mapped as Device memory in EL2's identity map.
        unsafe { device::read(address, width) }
    }

    fn device_write(
        &mut self,
        address: PhysAddr,
        width: AccessWidth,
        value: u64,
    ) -> Result<(), DeviceAbort> {
        // SAFETY: as in `device_read`.
        unsafe { device::write(address, width, value) }
    }

    fn count_nonzero(&mut self, address: PhysAddr, length: u64) -> u64 {
        let start = address.to_virt().as_usize();
        let words = (length / 8) as usize;
        // SAFETY: the range is a cell's RAM (from its validated plan), mapped normal in EL2's
        // identity map, and none of the cell's vCPUs runs while it is verified.
        unsafe { memory::count_nonzero(start as *const u64, words) }
    }

    fn counter(&self) -> (u64, u64) {
        (timer::counter(), timer::frequency())
    }

    fn dma_allow(&mut self, stream: u32, vmid: u16, root: PhysAddr) -> Result<(), DmaControlError> {
        super::smmu::allow(stream, vmid, root).map_err(|error| {
            log::error!("SMMU: stream {stream:#x} not allowed: {error}");
            DmaControlError
        })
    }

    fn dma_block(&mut self, stream: u32, _vmid: u16) -> Result<(), DmaControlError> {
        super::smmu::block(stream).map_err(|error| {
            log::error!("SMMU: stream {stream:#x} not blocked: {error}");
            DmaControlError
        })
    }
}

impl<I: CpuInterface> VcpuHardware for Cpu<I> {
    type Lists = ListRegisters<I>;

    fn cpu(&self) -> usize {
        self.index
    }

    fn list_registers(&mut self) -> &mut ListRegisters<I> {
        &mut self.lists
    }

    fn quiesce(&mut self) {
        // SAFETY: disabling this CPU's EL1 timers only affects the guest that just left it.
        unsafe {
            write_sysreg!("cntv_ctl_el0", 0);
            write_sysreg!("cntp_ctl_el0", 0);
        }
        for n in 0..self.lists.count() {
            self.lists.write(n, 0);
        }
        self.lists.set_hcr(traps::ICH_HCR_GUEST.value);
        isb();
    }

    fn prepare(&mut self, cell: &Cell, vcpu: usize) {
        let features = self.shape.features;
        let count = self.lists.count();
        for n in 0..count {
            self.lists.write(n, 0);
        }
        // SAFETY: no guest runs here; the next one is `vcpu` of `cell` (`configure_el2`). EL1
        // state is reset so nothing of a previous run of this CPU's vCPU leaks into the new one,
        // and the TLB entries of the cell's previous instance are invalidated.
        unsafe {
            self.configure_el2(cell, vcpu);
            core::arch::asm!(
                "tlbi vmalls12e1",
                "dsb nsh",
                "isb",
                options(nostack, preserves_flags)
            );
            // Every EL1/EL0 register the guest can write, the register files and the virtual
            // interface's active priorities (core::reset's table); FP/SVE are untrapped above.
            reset::vcpu(&features);
        }
        self.lists.set_hcr(traps::ICH_HCR_GUEST.value);
        isb();
    }

    fn enter(&mut self, running: &mut RunningVcpu<'_>) -> ExitKind {
        let regs: *mut GuestRegs = &mut running.regs;
        let mut context = FastContext {
            cpu: (self as *mut Self).cast(),
            running: (running as *mut RunningVcpu<'_>).cast(),
            fast_exit: fast_exit::<I>,
        };
        // SAFETY: `prepare` configured stage 2 and the traps for this vCPU. `regs` and `context`
        // (with the `self` and `running` it points to) are valid for the whole call and used by
        // nothing else until it returns: only `cellvisor_fast_exit`, called from the exception
        // vector inside this call on this CPU, touches them. The assembly saves and restores
        // every callee-saved register.
        let kind = unsafe { cellvisor_enter_guest(regs, (&raw mut context).cast()) };
        exit_kind(kind)
    }

    fn syndrome(&self) -> Syndrome {
        Syndrome {
            esr: read_sysreg!("esr_el2"),
            far: read_sysreg!("far_el2"),
            hpfar: read_sysreg!("hpfar_el2"),
        }
    }

    fn vbar_el1(&self) -> u64 {
        read_sysreg!("vbar_el1")
    }

    fn sctlr_el1(&self) -> u64 {
        read_sysreg!("sctlr_el1")
    }

    fn pmcr_el0(&self) -> u64 {
        read_sysreg!("pmcr_el0")
    }

    fn set_pmcr_el0(&mut self, value: u64) {
        // SAFETY: the PMU of this CPU belongs to the guest running on it; its control register
        // only starts, stops and resets the guest's counters.
        unsafe { write_sysreg!("pmcr_el0", value) };
        isb();
    }

    fn write_injection(&mut self, injection: &Injection) {
        // SAFETY: these EL1 registers belong to the guest on this CPU; writing them only affects it.
        unsafe {
            write_sysreg!("esr_el1", injection.esr_el1);
            if let Some(far) = injection.far_el1 {
                write_sysreg!("far_el1", far);
            }
            write_sysreg!("elr_el1", injection.elr_el1);
            write_sysreg!("spsr_el1", injection.spsr_el1);
        }
    }

    fn inject_serror(&mut self, syndrome: u64) {
        let features = self.shape.features;
        // SAFETY: HCR_EL2.VSE only makes a virtual SError pending for the guest of this CPU; the
        // CPU clears it when the guest takes it, and `prepare` writes HCR_EL2 without it, so no
        // pending SError survives into another instance. VSESR_EL2 (FEAT_RAS) is its syndrome.
        unsafe {
            if features.ras {
                // ISS only: IDS, AET, EA and DFSC as the physical SError had them.
                write_sysreg!("s3_4_c5_c2_3", syndrome & traps::VSESR_ISS_MASK); // VSESR_EL2
            }
        }
        let hcr = read_sysreg!("hcr_el2");
        // SAFETY: as above.
        unsafe { sysreg::set_hcr_el2(hcr | traps::HCR_VSE) };
    }

    fn acknowledge_interrupt(&mut self) -> Option<u32> {
        if let Some(intid) = self.deferred.take() {
            return Some(intid);
        }
        let interface = self.lists.interface();
        let (intid, handle) = interface.acknowledge()?;
        interface.end_of_interrupt(handle);
        if let Some(slot) = self.sgi_handles.get_mut(intid as usize) {
            *slot = handle;
        }
        Some(intid)
    }

    fn defer_interrupt(&mut self, intid: u32) {
        self.deferred = Some(intid);
    }

    fn deactivate(&mut self, intid: u32) {
        // An SGI's handle names its sender on a GICv2; a PPI's or SPI's is its INTID.
        let handle = self
            .sgi_handles
            .get(intid as usize)
            .copied()
            .unwrap_or(intid);
        self.lists.interface().deactivate(handle);
    }

    fn dma_faults(&mut self, sink: &mut dyn FnMut(crate::core::hardware::DmaFault)) {
        use crate::smmu::{Access, EventKind};
        let (drained, errors) = super::smmu::drain(&mut |event| {
            let kind = match event.kind {
                EventKind::Translation => "translation",
                EventKind::AddrSize => "address size",
                EventKind::Access => "access flag",
                EventKind::Permission => "permission",
                EventKind::BadStreamId => "unknown stream",
                EventKind::BadSte => "bad stream table entry",
                _ => "other",
            };
            sink(crate::core::hardware::DmaFault {
                stream: event.stream_id,
                address: event.input_address.or(event.ipa).unwrap_or(0),
                write: event.access == Some(Access::Write),
                kind,
            });
        });
        if drained.overflowed {
            log::warn!("SMMU: its event queue overflowed; some DMA faults were not recorded");
        }
        for error in errors.iter() {
            log::warn!("SMMU: global error {error:?}");
        }
    }

    fn console_receive(&mut self, buffer: &mut [u8]) -> usize {
        let mut count = 0;
        if let Some(uart) = UART.get() {
            let mut uart = uart.lock();
            // Clear first, then drain: a byte arriving after the drain raises the interrupt again.
            uart.clear_receive_interrupt();
            for slot in buffer.iter_mut() {
                let Some(byte) = uart.read_byte() else { break };
                *slot = byte;
                count += 1;
            }
        }
        count
    }

    fn wait_for_interrupt(&mut self) {
        sysreg::dsb_sy();
        sysreg::wfi();
    }

    fn kick(&mut self, cpu: usize) {
        if cpu == self.index {
            return;
        }
        if let Some(mpidr) = mpidr_of(cpu) {
            self.lists.interface().send_sgi(mpidr, KICK_SGI);
        }
    }

    fn power_off(&mut self) -> ! {
        match FIRMWARE.get() {
            Some(&conduit) => psci::system_off(conduit),
            None => loop {
                sysreg::wfi();
            },
        }
    }

    fn halt(&mut self) -> ! {
        loop {
            sysreg::wfi();
        }
    }

    fn sync_guest_memory(&mut self, _cell: &Cell) {
        cache::invalidate_icache();
    }

    type Saved = Saved;

    fn save_vcpu(&mut self, saved: &mut Saved) {
        let mpidr = sysreg::mpidr();
        let timer_ppis = self.timer_ppi_bits();
        let count = self.lists.count();
        let active = || GIC.get().map_or(0, |gic| gic.private_active(mpidr));
        // SAFETY: the run loop saves the vCPU it loaded on this CPU, between guest entries; the
        // guest configuration leaves FP/SIMD/SVE/SME untrapped for EL2.
        unsafe {
            context::save(
                &self.shape,
                self.lists.interface(),
                count,
                timer_ppis,
                active,
                saved,
            )
        };
    }

    fn restore_vcpu(&mut self, cell: &Cell, vcpu: usize, saved: &Saved) {
        let mpidr = sysreg::mpidr();
        let count = self.lists.count();
        let activate = |bits| {
            if let Some(gic) = GIC.get() {
                gic.activate_private(mpidr, bits);
            }
        };
        // SAFETY: no guest runs here; `saved` is what `save_vcpu` took of `vcpu` of `cell` on
        // this CPU (its run queue is per CPU). No TLB invalidation: the cell's VMID tags its
        // entries, and only this vCPU of the cell runs on this CPU (docs/architecture.md).
        unsafe {
            self.configure_el2(cell, vcpu);
            context::restore(&self.shape, self.lists.interface(), count, activate, saved);
        }
    }

    fn saved_timer_deadline(&self, saved: &Saved) -> Option<u64> {
        crate::core::timers::earliest(&[saved.virtual_timer, saved.physical_timer])
    }

    fn set_slice_timer(&mut self, deadline: Option<u64>) {
        self.slice_deadline = deadline;
        self.arm_el2_timer();
    }

    fn set_screen_timer(&mut self, deadline: Option<u64>) {
        self.screen_deadline = deadline;
        self.arm_el2_timer();
    }

    fn scanout(&mut self, frame: &ScanoutFrame) -> bool {
        super::screen::scanout(self, frame)
    }

    fn input_events(&mut self, device: usize, sink: &mut dyn FnMut(InputEvent)) {
        super::input::drain(device, sink);
    }
}

impl<I: CpuInterface> Cpu<I> {
    /// Programs CNTHP for the earlier of the scheduler's and the screen's deadlines.
    fn arm_el2_timer(&mut self) {
        let deadline = match (self.slice_deadline, self.screen_deadline) {
            (Some(slice), Some(screen)) => Some(slice.min(screen)),
            (slice, screen) => slice.or(screen),
        };
        // SAFETY: CNTHP is EL2's own timer; it only interrupts this CPU (its PPI is EL2's).
        unsafe {
            match deadline {
                Some(deadline) => {
                    write_sysreg!("cnthp_cval_el2", deadline);
                    write_sysreg!("cnthp_ctl_el2", CNTHP_ON);
                }
                None => write_sysreg!("cnthp_ctl_el2", CNTHP_OFF),
            }
        }
        isb();
    }
}

/// CNTHP_CTL_EL2: enabled, interrupt not masked.
const CNTHP_ON: u64 = 1;
/// CNTHP_CTL_EL2: disabled (its interrupt deasserts).
pub(super) const CNTHP_OFF: u64 = 0;
