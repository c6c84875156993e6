//! Delivery through the list registers: `flush` before guest entry, `sync` after guest exit.
//!
//! Between an exit and the next entry the model is the only copy of a vCPU's interrupt state:
//! `sync` folds every list register `flush` filled back into the model and empties it; `flush`
//! then picks what the vCPU should see (its active interrupts first, then the highest-priority
//! deliverable pending ones) and writes them. When more are deliverable than there are list
//! registers, `flush` asks for a maintenance interrupt (`ICH_HCR_EL2.NPIE` if it wrote a pending
//! entry, else `UIE`), so the vCPU exits once it has taken what it has and gets the rest. A held
//! hardware-linked level-sensitive instance is written only if its line is still high
//! (`ListRegisters::line_asserted`); otherwise `flush` drops it and deactivates its physical
//! interrupt.
#![forbid(unsafe_code)]

use tock_registers::LocalRegisterCopy;

use super::regs::{ICH_HCR_EL2, ICH_LR_EL2, ICH_VTR_EL2};
use super::state::{IrqState, Route};
use super::{Bank, ListRegisters, MAX_LIST_REGISTERS, SPI_BASE_INTID, VcpuSet, Vgic, VgicError};

/// What [`Vgic::forward_ppi_direct`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direct {
    /// Written into a list register: the guest takes it at entry.
    Written,
    /// Pending but not deliverable now (disabled, distributor off): nothing to write.
    Held,
    /// Recorded pending; the list registers need a full [`Vgic::flush`] before entry.
    NeedsFlush,
}

/// What [`Vgic::flush`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flushed {
    /// It left entries in the list registers: the `sync` after the guest's exit has work (if not,
    /// it may be skipped).
    pub holds_list_registers: bool,
    /// Other vCPUs to kick: the [`Vgic::sync`] the flush did first took back an SPI that now
    /// goes to them.
    pub kick: VcpuSet,
}

/// The number of list registers `ICH_VTR_EL2` reports.
pub fn list_register_count_from_vtr(vtr: u64) -> usize {
    let vtr = LocalRegisterCopy::<u64, ICH_VTR_EL2::Register>::new(vtr);
    vtr.read(ICH_VTR_EL2::ListRegs) as usize + 1
}

/// An interrupt `flush` may write, with the order it sorts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    /// Active interrupts first: the guest must be able to deactivate them.
    inactive: bool,
    priority: u8,
    intid: u16,
}

impl Candidate {
    fn of(intid: u16, irq: &IrqState) -> Self {
        Self {
            inactive: !irq.active,
            priority: irq.priority,
            intid,
        }
    }

    /// One number that sorts like the candidate (inactive, then priority, then INTID).
    fn key(self) -> u32 {
        (u32::from(self.inactive) << 24) | (u32::from(self.priority) << 16) | u32::from(self.intid)
    }
}

/// The most list registers `flush` fills. GICv3 allows 16, the Arm cores so far implement 4; the
/// bound keeps [`Chosen`] small enough to set up with a few stores on every flush (at 16 the
/// soft-float EL2 build called `memset`). With more deliverable interrupts the maintenance
/// interrupt brings the rest, as when the hardware has fewer.
pub const MAX_FILLED: usize = 8;

/// The best candidates `flush` has seen so far, sorted, at most `capacity` of them (as
/// [`Candidate::key`]s: cheap to set up and to shift on the path of every injected interrupt).
struct Chosen {
    keys: [u32; MAX_FILLED],
    count: usize,
    capacity: usize,
    /// More candidates were offered than fit.
    overflow: bool,
}

impl Chosen {
    fn new(capacity: usize) -> Self {
        Self {
            keys: [0; MAX_FILLED],
            count: 0,
            capacity: capacity.min(MAX_FILLED),
            overflow: false,
        }
    }

    /// Keeps `candidate` if it is among the `capacity` best so far.
    fn offer(&mut self, candidate: Candidate) {
        let key = candidate.key();
        if self.count == self.capacity {
            self.overflow = true;
            match self
                .count
                .checked_sub(1)
                .and_then(|last| self.keys.get(last))
            {
                Some(&worst) if key < worst => self.count -= 1,
                _ => return,
            }
        }
        // Insertion: move the worse ones up by one (keys are distinct: one per INTID).
        let mut position = self.count;
        while let Some(&before) = position.checked_sub(1).and_then(|at| self.keys.get(at)) {
            if before < key {
                break;
            }
            if let Some(slot) = self.keys.get_mut(position) {
                *slot = before;
            }
            position -= 1;
        }
        if let Some(slot) = self.keys.get_mut(position) {
            *slot = key;
            self.count += 1;
        }
    }

    /// The INTID of the `n`th best candidate.
    fn intid(&self, n: usize) -> Option<u16> {
        if n < self.count {
            self.keys.get(n).map(|&key| key as u16)
        } else {
            None
        }
    }
}

/// The list-register image of `irq` and whether it hands the pending latch to the guest.
fn list_register_value(intid: u16, irq: &IrqState) -> (u64, bool) {
    let pending = irq.pending();
    // A hardware-linked interrupt is never written pending and active: its pending state lives
    // at the physical distributor.
    let written_pending = pending && !(irq.active && irq.hardware_link.is_some());
    let state = match (written_pending, irq.active) {
        (false, false) => ICH_LR_EL2::State::Invalid,
        (true, false) => ICH_LR_EL2::State::Pending,
        (false, true) => ICH_LR_EL2::State::Active,
        (true, true) => ICH_LR_EL2::State::PendingActive,
    };
    let mut lr = LocalRegisterCopy::<u64, ICH_LR_EL2::Register>::new(0);
    lr.modify(
        ICH_LR_EL2::vINTID.val(u64::from(intid))
            + ICH_LR_EL2::Priority.val(u64::from(irq.priority))
            + ICH_LR_EL2::Group::SET
            + state,
    );
    match irq.hardware_link {
        Some(physical) => {
            lr.modify(ICH_LR_EL2::HW::SET + ICH_LR_EL2::pINTID.val(u64::from(physical)))
        }
        // A level-sensitive line may still be high when the guest EOIs: ask to be told, so
        // `sync` can re-pend it at once.
        None if !irq.edge_triggered => lr.modify(ICH_LR_EL2::EOI::SET),
        None => {}
    }
    (lr.get(), written_pending)
}

/// Writes list register `n` with `value`, the entry of `intid`: through
/// [`ListRegisters::write_sgi`] for an SGI, so a GICv2 interface can report its `source`.
#[inline(always)]
fn write_entry(lrs: &mut impl ListRegisters, n: usize, intid: u16, value: u64, source: u8) {
    if intid < 16 {
        lrs.write_sgi(n, value, source);
    } else {
        lrs.write(n, value);
    }
}

impl Vgic {
    /// Before entering vCPU `vcpu`'s guest, on the CPU it is pinned to: writes its active
    /// interrupts and its highest-priority deliverable pending ones into the list registers,
    /// empties the others, and sets or clears `ICH_HCR_EL2.UIE`/`NPIE` (maintenance interrupt
    /// when more were deliverable than fit). A held hardware-linked level-sensitive interrupt
    /// whose line `lrs` reports low is dropped instead, and its physical interrupt deactivated.
    /// Calls [`Vgic::sync`] first if the list registers still hold entries from the last
    /// `flush`, and passes on the vCPUs that sync says to kick.
    #[inline]
    pub fn flush(
        &mut self,
        vcpu: usize,
        lrs: &mut impl ListRegisters,
    ) -> Result<Flushed, VgicError> {
        if self.flush_is_idle(vcpu) {
            Ok(Flushed::default())
        } else {
            self.flush_slow(vcpu, lrs)
        }
    }

    /// Whether [`Vgic::flush`] of `vcpu` has nothing to do: the list registers are empty and
    /// nothing changed since the last flush found nothing to deliver to this vCPU (exits such as
    /// hypercalls touch no interrupt state), or since the last flush (or direct write) left
    /// everything deliverable in the list registers (`sync` only took back entries the guest
    /// completed). Inline, so the common case costs no call.
    #[inline]
    fn flush_is_idle(&self, vcpu: usize) -> bool {
        self.vcpus
            .get(vcpu)
            .is_some_and(|state| state.list_registers_in_use == 0 && state.posted == 0)
            && (self.idle_at.get(vcpu) == Some(&self.generation)
                || self.complete_at.get(vcpu) == Some(&self.generation))
    }

    /// [`Vgic::flush`] when it has something to do.
    #[inline(never)]
    fn flush_slow(
        &mut self,
        vcpu: usize,
        lrs: &mut impl ListRegisters,
    ) -> Result<Flushed, VgicError> {
        let tracked = self.vcpus.get(vcpu).ok_or(VgicError::NoSuchVcpu)?;
        let in_use = tracked.list_registers_in_use != 0;
        let kick = if in_use {
            self.sync(vcpu, lrs)
        } else {
            VcpuSet::empty()
        };
        let implemented = lrs.count().min(MAX_LIST_REGISTERS);
        let capacity = implemented.min(self.list_register_count);

        // The `capacity` best candidates, kept sorted; no allocation.
        let mut chosen = Chosen::new(capacity);
        // Private interrupts: only those `watch` says may be pending or active, lowest first;
        // the ones found neither drop out of `watch`. A held hardware-linked level-sensitive
        // instance goes into a list register only if its line is still high; the others are
        // dropped below (`low`).
        let mut idle = 0u32;
        let mut low = 0u32;
        if let Some(state) = self.vcpus.get(vcpu) {
            let mut watch = state.watch;
            while watch != 0 {
                let intid = watch.trailing_zeros();
                watch &= watch - 1;
                let Some(irq) = state.private.get(intid as usize) else {
                    continue;
                };
                if !irq.may_need_list_register() {
                    idle |= 1 << intid;
                } else if self.is_candidate(irq, vcpu) {
                    if let Some(link) = irq.held_line()
                        && !lrs.line_asserted(u32::from(link))
                    {
                        low |= 1 << intid;
                        continue;
                    }
                    chosen.offer(Candidate::of(intid as u16, irq));
                }
            }
        }
        if let Some(state) = self.vcpus.get_mut(vcpu) {
            state.watch &= !idle;
            // Whatever was posted is among the candidates now.
            state.posted = 0;
        }
        while low != 0 {
            let intid = low.trailing_zeros();
            low &= low - 1;
            self.drop_low_line(Bank::Private(vcpu), intid, lrs);
        }
        // Only the cell's own SPIs can be candidates: scan those, not every line.
        for index in 0..self.owned_spis.len() {
            let Some(intid) = self.owned_spis.get(index).map(|spi| spi.intid) else {
                continue;
            };
            let Some(irq) = intid
                .checked_sub(SPI_BASE_INTID)
                .and_then(|index| self.spis.get(index as usize))
            else {
                continue;
            };
            if irq.may_need_list_register() && self.is_candidate(irq, vcpu) {
                if let Some(link) = irq.held_line()
                    && !lrs.line_asserted(u32::from(link))
                {
                    self.drop_low_line(Bank::Shared, intid, lrs);
                    continue;
                }
                chosen.offer(Candidate::of(intid as u16, irq));
            }
        }
        let chosen_count = chosen.count;
        let overflow = chosen.overflow;

        let empty = lrs.empty_list_registers();
        let mut wrote_pending = false;
        let mut wrote_any = false;
        for n in 0..implemented {
            let Some(intid) = chosen.intid(n) else {
                if empty & 1 << n == 0 {
                    lrs.write(n, 0);
                }
                continue;
            };
            let bank = if u32::from(intid) < SPI_BASE_INTID {
                Bank::Private(vcpu)
            } else {
                Bank::Shared
            };
            let Some(irq) = self.irq_mut(bank, u32::from(intid)) else {
                continue;
            };
            let (value, gives_pending) = list_register_value(intid, irq);
            if gives_pending {
                irq.latch_in_list_register = irq.pending_latch;
                irq.pending_latch = false;
                wrote_pending = true;
            }
            irq.in_list_register = true;
            irq.holder_vcpu = vcpu as u8;
            let source = irq.source;
            write_entry(lrs, n, intid, value, source);
            wrote_any = true;
            if let Some(state) = self.vcpus.get_mut(vcpu)
                && let Some(slot) = state.list_registers.get_mut(n)
            {
                *slot = Some(intid);
                state.list_registers_in_use |= 1 << n;
            }
        }

        let generation = self.generation;
        if chosen_count == 0
            && let Some(idle) = self.idle_at.get_mut(vcpu)
        {
            *idle = generation;
        }
        if let Some(complete) = self.complete_at.get_mut(vcpu) {
            *complete = if overflow { 0 } else { generation };
        }
        let mut hcr = LocalRegisterCopy::<u64, ICH_HCR_EL2::Register>::new(lrs.hcr());
        let before = hcr.get();
        hcr.modify(ICH_HCR_EL2::UIE::CLEAR + ICH_HCR_EL2::NPIE::CLEAR);
        if overflow {
            // NPIE fires once the guest has taken every pending entry; with only active entries
            // written, UIE fires once it has deactivated all but one. Neither can fire at once.
            hcr.modify(if wrote_pending {
                ICH_HCR_EL2::NPIE::SET
            } else {
                ICH_HCR_EL2::UIE::SET
            });
        }
        if hcr.get() != before {
            lrs.set_hcr(hcr.get());
        }
        Ok(Flushed {
            holds_list_registers: wrote_any,
            kick,
        })
    }

    /// Drops the held hardware-linked instance of `intid` in `bank`, whose line `flush` found low
    /// on this CPU, and deactivates its physical interrupt through `lrs`.
    fn drop_low_line(&mut self, bank: Bank, intid: u32, lrs: &mut impl ListRegisters) {
        if let Some(link) = self
            .irq_mut(bank, intid)
            .and_then(IrqState::drop_held_instance)
        {
            lrs.deactivate_physical(u32::from(link));
        }
    }

    /// After vCPU `vcpu`'s guest exits, on the CPU it is pinned to: reads back the list registers
    /// the last [`Vgic::flush`] wrote, folds what the guest did (acknowledged, EOIed, deactivated)
    /// into the model and empties them. Cheap when nothing was written. Returns the other vCPUs
    /// to kick: an SPI taken back pending now goes to one of them (its route changed while this
    /// vCPU held it), and a vCPU that spins would otherwise not look until it exits by itself.
    /// A `vcpu` the cell does not have has nothing to sync (the set is empty).
    pub fn sync(&mut self, vcpu: usize, lrs: &mut impl ListRegisters) -> VcpuSet {
        let Some(state) = self.vcpus.get_mut(vcpu) else {
            return VcpuSet::empty();
        };
        let mut tracked = core::mem::take(&mut state.list_registers_in_use);
        if tracked == 0 {
            return VcpuSet::empty();
        }
        let empty = lrs.empty_list_registers();
        let implemented = lrs.count().min(MAX_LIST_REGISTERS);
        // Only the list registers `flush` filled (their bits in `tracked`), lowest first.
        while tracked != 0 {
            let n = tracked.trailing_zeros() as usize;
            tracked &= tracked - 1;
            let intid = self.take_back(vcpu, n, empty, implemented, lrs);
            if intid >= SPI_BASE_INTID {
                // SPIs take more care; out of line, so that the SGIs and PPIs of every IPI and
                // every timer interrupt do not pay for it.
                return self.sync_after_spi(vcpu, tracked, empty, implemented, lrs);
            }
            self.took_back_private(vcpu, intid);
        }
        VcpuSet::empty()
    }

    /// The rest of [`Vgic::sync`] once it took back an SPI: the other list registers in `tracked`,
    /// then the other vCPUs that the SPIs `vcpu` held last are deliverable to now (their route
    /// changed while `vcpu` held them), to be kicked.
    #[inline(never)]
    fn sync_after_spi(
        &mut self,
        vcpu: usize,
        mut tracked: u16,
        empty: u16,
        implemented: usize,
        lrs: &mut impl ListRegisters,
    ) -> VcpuSet {
        // An SPI the guest acknowledged or completed may now go to another vCPU.
        self.touch();
        while tracked != 0 {
            let n = tracked.trailing_zeros() as usize;
            tracked &= tracked - 1;
            let intid = self.take_back(vcpu, n, empty, implemented, lrs);
            if intid >= SPI_BASE_INTID {
                self.touch();
            } else {
                self.took_back_private(vcpu, intid);
            }
        }
        let mut kick = VcpuSet::empty();
        for spi in &self.owned_spis {
            if let Some(irq) = self.irq(Bank::Shared, spi.intid)
                && usize::from(irq.holder_vcpu) == vcpu
                && self.is_deliverable(irq)
            {
                let target = self.target_of(irq, vcpu);
                if target != vcpu {
                    kick.insert(target);
                }
            }
        }
        kick
    }

    /// [`Vgic::sync`] of `vcpu`'s list register `n`: reads it (unless `ICH_ELRSR_EL2`'s `empty`
    /// says it is empty, or it is not implemented), empties it and folds it into the model.
    /// Returns the INTID it held (0 if none).
    #[inline(always)]
    fn take_back(
        &mut self,
        vcpu: usize,
        n: usize,
        empty: u16,
        implemented: usize,
        lrs: &mut impl ListRegisters,
    ) -> u32 {
        let value = if n >= implemented || empty & 1 << n != 0 {
            0
        } else {
            let value = lrs.read(n);
            lrs.write(n, 0);
            value
        };
        self.fold_list_register(vcpu, n, value)
    }

    /// [`Vgic::sync`] took private INTID `intid` of `vcpu` back.
    #[inline(always)]
    fn took_back_private(&mut self, vcpu: usize, intid: u32) {
        if self
            .vcpus
            .get(vcpu)
            .and_then(|state| state.private.get(intid as usize))
            .is_some_and(IrqState::may_need_list_register)
        {
            // Still pending or active: it needs a list register again. One the guest completed
            // changes nothing else (deliverability is per interrupt), so the next flush need not
            // look if nothing else changed.
            self.touch_vcpu(vcpu);
        }
    }

    /// Folds the list-register image `value` of `vcpu`'s list register `n` (as the guest left
    /// it) into the model and frees the slot. Returns the INTID it held (0 if none).
    fn fold_list_register(&mut self, vcpu: usize, n: usize, value: u64) -> u32 {
        let Some(intid) = self
            .vcpus
            .get_mut(vcpu)
            .and_then(|state| {
                state.list_registers_in_use &= !(1 << n);
                state.list_registers.get_mut(n)
            })
            .and_then(Option::take)
        else {
            return 0;
        };
        let lr = LocalRegisterCopy::<u64, ICH_LR_EL2::Register>::new(value);
        let lr_state = lr.read(ICH_LR_EL2::State);
        let (pending, active) = (lr_state & 0b01 != 0, lr_state & 0b10 != 0);
        let bank = if u32::from(intid) < SPI_BASE_INTID {
            Bank::Private(vcpu)
        } else {
            Bank::Shared
        };
        let Some(irq) = self.irq_mut(bank, u32::from(intid)) else {
            return u32::from(intid);
        };
        irq.in_list_register = false;
        irq.active = active;
        if pending {
            irq.pending_latch |= irq.latch_in_list_register;
        }
        irq.latch_in_list_register = false;
        if !pending && !active && !irq.link_renewed {
            // The guest deactivated it; with HW set that deactivated the physical one too.
            irq.hardware_link = None;
        }
        irq.link_renewed = false;
        u32::from(intid)
    }

    /// Forwards the physical PPI `intid` of `vcpu`'s CPU, acknowledged and left active, as the
    /// vCPU's hardware-linked virtual PPI of the same INTID, straight into a free list register:
    /// what [`Vgic::inject_hardware`] followed by [`Vgic::flush`] would write, without the
    /// flush's scan. That holds only while the list registers hold everything deliverable to
    /// `vcpu` since its last flush (nothing else changed for it, no overflow); the PPI's previous
    /// instance, if a list register still tracks it, is folded back first. Otherwise the model is
    /// updated as by `inject_hardware` and the caller must `flush` before entering the guest.
    pub fn forward_ppi_direct(
        &mut self,
        vcpu: usize,
        intid: u32,
        lrs: &mut impl ListRegisters,
    ) -> Result<Direct, VgicError> {
        if !(16..SPI_BASE_INTID).contains(&intid) {
            return Err(VgicError::NotOwned(intid));
        }
        let mut complete = self.complete_at.get(vcpu) == Some(&self.generation);
        if complete && let Some(written) = self.rearm_ppi(vcpu, intid, lrs) {
            return Ok(written);
        }
        let state = self.vcpus.get(vcpu).ok_or(VgicError::NoSuchVcpu)?;
        let slot = state
            .list_registers
            .iter()
            .position(|&held| held.map(u32::from) == Some(intid));
        if let Some(n) = slot {
            // The physical PPI fired again, so the guest normally completed the previous
            // instance (it stayed active at the distributor until then): fold its list register
            // back. If it is somehow still live, leave the decision to a full flush.
            let value = if lrs.empty_list_registers() & 1 << n != 0 {
                0
            } else {
                let value = lrs.read(n);
                lrs.write(n, 0);
                value
            };
            let lr = LocalRegisterCopy::<u64, ICH_LR_EL2::Register>::new(value);
            complete &= lr.read(ICH_LR_EL2::State) == 0;
            self.fold_list_register(vcpu, n, value);
        }
        let capacity = lrs
            .count()
            .min(MAX_LIST_REGISTERS)
            .min(self.list_register_count);
        let in_use = self
            .vcpus
            .get(vcpu)
            .map_or(u16::MAX, |state| state.list_registers_in_use);
        let free = !in_use & ((1u32 << capacity) - 1) as u16;
        let irq = self
            .irq_mut(Bank::Private(vcpu), intid)
            .ok_or(VgicError::NotOwned(intid))?;
        // Below 1020: fits pINTID's 13 bits.
        irq.hardware_link = Some(intid as u16);
        irq.pending_latch = true;
        if !complete || free == 0 {
            self.touch_vcpu(vcpu);
            return Ok(Direct::NeedsFlush);
        }
        let snapshot = *irq;
        if !self.is_candidate(&snapshot, vcpu) {
            // Held (disabled, or the distributor is off) exactly as `flush` would leave it.
            return Ok(Direct::Held);
        }
        let n = free.trailing_zeros() as usize;
        let Some(irq) = self.irq_mut(Bank::Private(vcpu), intid) else {
            return Err(VgicError::NotOwned(intid));
        };
        let (value, gives_pending) = list_register_value(intid as u16, irq);
        if gives_pending {
            irq.latch_in_list_register = irq.pending_latch;
            irq.pending_latch = false;
        }
        irq.in_list_register = true;
        irq.holder_vcpu = vcpu as u8;
        lrs.write(n, value);
        if let Some(state) = self.vcpus.get_mut(vcpu)
            && let Some(held) = state.list_registers.get_mut(n)
        {
            *held = Some(intid as u16);
            state.list_registers_in_use |= 1 << n;
        }
        Ok(Direct::Written)
    }

    /// A new instance of the passed-through SPI `intid`, taken on the CPU of `vcpu`: written
    /// hardware-linked straight into a free list register of `vcpu`, as a flush would, when that
    /// is all a flush would do: `vcpu`'s list registers hold everything else deliverable to it
    /// (nothing changed since its last flush), the SPI is routed to `vcpu` alone, and no earlier
    /// instance of it is pending, active or in a list register. Nothing else is touched, so the
    /// other vCPUs' flushes are not disturbed either. `Ok(false)`: nothing was changed, the caller
    /// takes the general path ([`Vgic::inject_hardware`]).
    pub fn forward_spi_direct(
        &mut self,
        vcpu: usize,
        intid: u32,
        lrs: &mut impl ListRegisters,
    ) -> Result<bool, VgicError> {
        if intid < SPI_BASE_INTID || self.complete_at.get(vcpu) != Some(&self.generation) {
            return Ok(false);
        }
        // The physical SPI fired again, so the guest normally completed the previous instance,
        // which this vCPU's list register may still be recorded to hold: if that list register is
        // empty, fold it back (as the next sync would); if it is somehow live, the general path.
        let slot = self
            .vcpus
            .get(vcpu)
            .ok_or(VgicError::NoSuchVcpu)?
            .list_registers
            .iter()
            .position(|&held| held.map(u32::from) == Some(intid));
        if let Some(n) = slot {
            if lrs.empty_list_registers() & 1 << n == 0 {
                return Ok(false);
            }
            self.fold_list_register(vcpu, n, 0);
        }
        let capacity = lrs
            .count()
            .min(MAX_LIST_REGISTERS)
            .min(self.list_register_count);
        let in_use = self
            .vcpus
            .get(vcpu)
            .ok_or(VgicError::NoSuchVcpu)?
            .list_registers_in_use;
        let free = !in_use & ((1u32 << capacity) - 1) as u16;
        let group1 = self.group1_enabled;
        let Some(irq) = self.irq_mut(Bank::Shared, intid) else {
            return Err(VgicError::NotOwned(intid));
        };
        let quiet = !irq.pending() && !irq.active && !irq.in_list_register;
        let here = irq.route == Route::Vcpu(vcpu as u8);
        if !irq.hardware_spi || !irq.enabled || !group1 || !quiet || !here || free == 0 {
            return Ok(false);
        }
        // Below 1020: fits pINTID's 13 bits.
        irq.hardware_link = Some(intid as u16);
        irq.pending_latch = true;
        let (value, gives_pending) = list_register_value(intid as u16, irq);
        if gives_pending {
            irq.latch_in_list_register = irq.pending_latch;
            irq.pending_latch = false;
        }
        irq.in_list_register = true;
        irq.holder_vcpu = vcpu as u8;
        let n = free.trailing_zeros() as usize;
        lrs.write(n, value);
        if let Some(state) = self.vcpus.get_mut(vcpu)
            && let Some(held) = state.list_registers.get_mut(n)
        {
            *held = Some(intid as u16);
            state.list_registers_in_use |= 1 << n;
        }
        Ok(true)
    }

    /// Records that SGI `intid` became pending on `target` through `sender`'s write: posted
    /// (delivered by [`Vgic::deliver_posted`] at `target`'s kick, without a flush's scan) while
    /// `target`'s list registers hold everything else deliverable to it, else a change that makes
    /// its next flush look.
    pub(super) fn post_sgi(&mut self, target: usize, sender: usize, intid: u32) {
        let complete = self.complete_at.get(target) == Some(&self.generation);
        match self.vcpus.get_mut(target) {
            Some(state) if complete && target != sender && intid < 16 => {
                state.posted |= 1 << intid;
            }
            _ => self.touch_vcpu(target),
        }
    }

    /// At `vcpu`'s kick, on its CPU: writes the SGIs posted to it (`Vgic::post_sgi`) straight
    /// into free list registers, as a flush would, if nothing else changed for `vcpu` since its
    /// last flush. Returns `Ok(true)` when that covered everything (the guest can be entered at
    /// once), `Ok(false)` when the caller must [`Vgic::flush`].
    pub fn deliver_posted(
        &mut self,
        vcpu: usize,
        lrs: &mut impl ListRegisters,
    ) -> Result<bool, VgicError> {
        if self.complete_at.get(vcpu) != Some(&self.generation) {
            return Ok(false);
        }
        let capacity = self.list_register_count.min(MAX_LIST_REGISTERS);
        let group1 = self.group1_enabled;
        let state = self.vcpus.get_mut(vcpu).ok_or(VgicError::NoSuchVcpu)?;
        while state.posted != 0 {
            let intid = state.posted.trailing_zeros() as usize;
            let Some(irq) = state.private.get_mut(intid) else {
                return Ok(false);
            };
            if irq.in_list_register || irq.active {
                // Its previous instance is still with the guest: leave it to the flush.
                return Ok(false);
            }
            if irq.owned && irq.enabled && group1 && irq.pending() {
                let free = !state.list_registers_in_use & ((1u32 << capacity) - 1) as u16;
                if free == 0 {
                    return Ok(false);
                }
                let n = free.trailing_zeros() as usize;
                let (value, gives_pending) = list_register_value(intid as u16, irq);
                if gives_pending {
                    irq.latch_in_list_register = irq.pending_latch;
                    irq.pending_latch = false;
                }
                irq.in_list_register = true;
                irq.holder_vcpu = vcpu as u8;
                lrs.write_sgi(n, value, irq.source);
                if let Some(held) = state.list_registers.get_mut(n) {
                    *held = Some(intid as u16);
                }
                state.list_registers_in_use |= 1 << n;
            }
            // Not deliverable (disabled, distributor off): held, as a flush would leave it.
            state.posted &= !(1 << intid);
        }
        Ok(true)
    }

    /// The common case of [`Vgic::forward_ppi_direct`]: a list register still holds the PPI's
    /// previous instance, which the guest has completed (the list register is empty: the physical
    /// PPI could not fire again before that). Nothing changed for `vcpu` since (the caller checked
    /// `complete_at`), so the PPI is still deliverable and that list register is the one a flush
    /// would use: it is written again with the new instance, pending. `None` if that case does not
    /// apply (nothing changed then).
    fn rearm_ppi(
        &mut self,
        vcpu: usize,
        intid: u32,
        lrs: &mut impl ListRegisters,
    ) -> Option<Direct> {
        let state = self.vcpus.get_mut(vcpu)?;
        let slot = intid as u16;
        let n = state
            .list_registers
            .iter()
            .position(|&held| held == Some(slot))?;
        if lrs.empty_list_registers() & 1 << n == 0 {
            return None;
        }
        let irq = state.private.get_mut(intid as usize)?;
        irq.hardware_link = Some(slot);
        irq.active = false;
        irq.pending_latch = true;
        let (value, gives_pending) = list_register_value(slot, irq);
        irq.latch_in_list_register = gives_pending;
        irq.pending_latch = !gives_pending;
        lrs.write(n, value);
        Some(Direct::Written)
    }

    /// Whether `irq` belongs in `vcpu`'s list registers now.
    fn is_candidate(&self, irq: &IrqState, vcpu: usize) -> bool {
        if !irq.owned || irq.in_list_register {
            return false;
        }
        if irq.active {
            return usize::from(irq.holder_vcpu) == vcpu;
        }
        self.is_deliverable(irq)
            && match irq.route {
                Route::Vcpu(target) => usize::from(target) == vcpu,
                Route::Any => true,
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(inactive: bool, priority: u8, intid: u16) -> Candidate {
        Candidate {
            inactive,
            priority,
            intid,
        }
    }

    #[test]
    fn keys_sort_like_candidates() {
        let ordered = [
            candidate(false, 0xff, 900),
            candidate(true, 0x00, 1000),
            candidate(true, 0x80, 3),
            candidate(true, 0x80, 27),
        ];
        for pair in ordered.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].key() < pair[1].key(), "{pair:?}");
        }
    }

    #[test]
    fn chosen_keeps_the_best_in_order_and_notes_overflow() {
        let mut chosen = Chosen::new(3);
        for (priority, intid) in [(0xa0, 40), (0x10, 41), (0xf0, 42), (0x10, 30), (0x50, 43)] {
            chosen.offer(candidate(true, priority, intid));
        }
        let intids: Vec<_> = (0..4).map(|n| chosen.intid(n)).collect();
        assert_eq!(intids, [Some(30), Some(41), Some(43), None]);
        assert!(chosen.overflow);
        let mut none = Chosen::new(0);
        none.offer(candidate(false, 0, 1));
        assert_eq!(none.intid(0), None);
        assert!(none.overflow);
    }
}
