//! The state the vGIC keeps for one interrupt, and the per-vCPU state around it.
#![forbid(unsafe_code)]

use super::MAX_LIST_REGISTERS;

/// Where the distributor sends an SPI (`GICD_IROUTER<n>`); SGIs and PPIs route to their own vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To this vCPU of the cell (`Interrupt_Routing_Mode` = 0, affinity = the vCPU's virtual MPIDR).
    Vcpu(u8),
    /// To any vCPU of the cell (`Interrupt_Routing_Mode` = 1): the first to enter the guest takes it.
    Any,
}

/// The state of one interrupt of the cell.
///
/// Pending is split in three: `pending_latch` (an edge, `GICD_ISPENDR`, an SGI, a hardware
/// interrupt), `line_level` (the input of a level-sensitive virtual interrupt) and
/// `latch_in_list_register` (a latch handed to a list register by `flush`, given back by `sync`
/// if the guest has not taken it yet).
///
/// A level-sensitive hardware-linked interrupt is pending by its latch, set when EL2 acknowledged
/// the physical interrupt (and left it active); while that instance is held outside the list
/// registers ([`IrqState::held_line`]) its pending state is the physical line's, resampled
/// whenever it matters (see the vGIC's `follow_line`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IrqState {
    /// The cell owns this interrupt; if not, its registers are RAZ/WI and nothing can pend it.
    pub owned: bool,
    /// An SPI of a physical device the cell owns: enable, priority, trigger and route writes are
    /// forwarded to the physical distributor.
    pub hardware_spi: bool,
    pub enabled: bool,
    pub pending_latch: bool,
    pub line_level: bool,
    pub latch_in_list_register: bool,
    pub active: bool,
    /// `GICD_ICFGR`: edge-triggered (true) or level-sensitive (false).
    pub edge_triggered: bool,
    pub priority: u8,
    pub route: Route,
    /// The physical INTID of a hardware-linked instance (the physical interrupt is active at the
    /// physical GIC until the guest deactivates the virtual one).
    pub hardware_link: Option<u16>,
    /// `hardware_link` was set for a new physical instance while a list register still held the
    /// previous one (completed by the guest, unseen: the physical interrupt could not fire again
    /// before that). That list register's deactivation ended only the previous instance, so the
    /// `sync` that takes it back keeps the link.
    pub link_renewed: bool,
    /// Held in a list register of `holder_vcpu`.
    pub in_list_register: bool,
    /// The vCPU whose list register holds the interrupt, or on which it is active.
    pub holder_vcpu: u8,
    /// GICv2 `GICD_ITARGETSR` of an SPI as the guest wrote it (bit n = the cell's vCPU n); the
    /// interrupt goes to the lowest vCPU named (`route`). Unused on GICv3.
    pub targets: u8,
    /// The vCPU whose `GICD_SGIR` made an SGI pending last: GICv2 reports it to the acknowledging
    /// guest (`GICC_IAR.CPUID`) and in `GICD_SPENDSGIR`. Unused on GICv3.
    pub source: u8,
}

impl IrqState {
    /// An interrupt the cell does not own.
    pub const UNOWNED: Self = Self {
        owned: false,
        hardware_spi: false,
        enabled: false,
        pending_latch: false,
        line_level: false,
        latch_in_list_register: false,
        active: false,
        edge_triggered: false,
        priority: 0,
        route: Route::Vcpu(0),
        hardware_link: None,
        link_renewed: false,
        in_list_register: false,
        holder_vcpu: 0,
        targets: 0,
        source: 0,
    };

    /// Power-on state of an owned interrupt: disabled, inactive, priority 0, level-sensitive
    /// (edge for SGIs, which are edge only), routed to `route`.
    pub const fn reset(route: Route, edge_triggered: bool, hardware_spi: bool) -> Self {
        Self {
            owned: true,
            hardware_spi,
            edge_triggered,
            route,
            ..Self::UNOWNED
        }
    }

    /// Whether the interrupt may need a list register at all: pending (by latch or line) or
    /// active. A cheap filter for the scans in `flush` and `has_deliverable`; everything it
    /// rejects is neither deliverable nor active.
    #[inline]
    pub fn may_need_list_register(&self) -> bool {
        self.pending_latch | self.line_level | self.active
    }

    /// The physical INTID of a hardware-linked level-sensitive instance held for the guest
    /// outside the list registers: pending, neither active nor in a list register, its physical
    /// interrupt acknowledged by EL2 and left active. Its pending state is the physical line's,
    /// so the line must be sampled before it is shown or delivered. `None` for anything else.
    #[inline]
    pub fn held_line(&self) -> Option<u16> {
        if self.pending_latch && !self.edge_triggered && !self.active && !self.in_list_register {
            self.hardware_link
        } else {
            None
        }
    }

    /// Drops a held hardware-linked instance whose line went low: no longer pending, no longer
    /// linked. Returns the physical INTID, which the caller deactivates (its source no longer
    /// asserts it, so it does not fire again until the line rises, as a fresh interrupt).
    pub fn drop_held_instance(&mut self) -> Option<u16> {
        self.pending_latch = false;
        self.latch_in_list_register = false;
        self.hardware_link.take()
    }

    /// Pending as the guest sees it through `GICD_ISPENDR`.
    pub fn pending_view(&self) -> bool {
        self.pending() || self.latch_in_list_register
    }

    /// Pending in the model (a latch given to a list register is not counted).
    #[inline]
    pub fn pending(&self) -> bool {
        self.pending_latch || (!self.edge_triggered && self.line_level)
    }
}

/// What one vCPU owns: its SGIs and PPIs, its list-register bookkeeping, its redistributor's
/// power state.
#[derive(Clone, Debug)]
pub(crate) struct VcpuState {
    /// INTIDs 0-31 of this vCPU.
    pub private: [IrqState; 32],
    /// The INTID `flush` put into each list register, until `sync` takes it back.
    pub list_registers: [Option<u16>; MAX_LIST_REGISTERS],
    /// Bit n set = `list_registers[n]` is `Some` (kept in step with it, so the run loop's
    /// checks for "anything in the list registers" are one compare).
    pub list_registers_in_use: u16,
    /// Bit n set: private INTID n may be pending or active. A superset kept cheaply: every
    /// change to a private interrupt (through `Vgic::irq_mut`) sets its bit, and `flush` clears
    /// the bits of interrupts it finds neither pending nor active, so the scans in `flush` and
    /// `has_deliverable` only visit these.
    pub watch: u32,
    /// SGIs another vCPU made pending while this vCPU's list registers held everything else
    /// deliverable to it (see `Vgic::deliver_posted`); cleared by every full `flush`.
    pub posted: u16,
    /// `GICR_WAKER.ProcessorSleep`.
    pub processor_sleep: bool,
}

impl VcpuState {
    /// Power-on state of vCPU `index`.
    pub fn reset(index: u8) -> Self {
        let mut private = [IrqState::reset(Route::Vcpu(index), false, false); 32];
        for irq in &mut private {
            irq.holder_vcpu = index;
        }
        for sgi in private.iter_mut().take(16) {
            sgi.edge_triggered = true;
        }
        Self {
            private,
            list_registers: [None; MAX_LIST_REGISTERS],
            list_registers_in_use: 0,
            watch: 0,
            posted: 0,
            processor_sleep: true,
        }
    }
}
