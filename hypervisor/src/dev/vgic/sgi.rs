//! SGIs between the cell's own vCPUs: the guest's trapped writes to `ICC_SGI1R_EL1` (GICv3), and
//! the delivery `GICD_SGIR` (GICv2) shares.
#![forbid(unsafe_code)]

use tock_registers::LocalRegisterCopy;

use super::regs::ICC_SGI1R_EL1;
use super::{Bank, VcpuSet, Vgic, VgicError};

impl Vgic {
    /// Emulates vCPU `caller_vcpu` writing `value` to `ICC_SGI1R_EL1`: marks SGI `INTID` pending
    /// on every target and returns the targets that can take it now (kick each one other than the
    /// caller). `IRM` = 1 targets every vCPU of the cell but the caller; otherwise the targets are
    /// Aff3.Aff2.Aff1 = 0.0.0 (the cell's virtual MPIDRs) and Aff0 = `RS` * 16 + each bit of
    /// `TargetList`. Affinities that are not a vCPU of the cell are dropped silently.
    pub fn write_sgi1r(&mut self, caller_vcpu: usize, value: u64) -> Result<VcpuSet, VgicError> {
        if caller_vcpu >= self.vcpus.len() {
            return Err(VgicError::NoSuchVcpu);
        }
        let sgi1r = LocalRegisterCopy::<u64, ICC_SGI1R_EL1::Register>::new(value);
        let intid = sgi1r.read(ICC_SGI1R_EL1::INTID) as u32;
        let mut targets = VcpuSet::empty();
        if sgi1r.is_set(ICC_SGI1R_EL1::IRM) {
            for vcpu in (0..self.vcpus.len()).filter(|&vcpu| vcpu != caller_vcpu) {
                targets.insert(vcpu);
            }
        } else {
            let upper = sgi1r.read(ICC_SGI1R_EL1::Aff1)
                | sgi1r.read(ICC_SGI1R_EL1::Aff2)
                | sgi1r.read(ICC_SGI1R_EL1::Aff3);
            let range_base = sgi1r.read(ICC_SGI1R_EL1::RS) as usize * 16;
            let target_list = sgi1r.read(ICC_SGI1R_EL1::TargetList);
            if upper == 0 {
                // Each set bit of TargetList, lowest first.
                let mut bits = target_list;
                while bits != 0 {
                    let vcpu = range_base + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    if vcpu < self.vcpus.len() {
                        targets.insert(vcpu);
                    }
                }
            }
        }
        Ok(self.send_sgi(caller_vcpu, intid, targets))
    }

    /// Marks SGI `intid` (0-15) pending on every vCPU in `targets`, sent by `caller`, and returns
    /// the targets to kick: the one delivery path of `ICC_SGI1R_EL1` (GICv3) and `GICD_SGIR`
    /// (GICv2).
    pub(super) fn send_sgi(&mut self, caller: usize, intid: u32, targets: VcpuSet) -> VcpuSet {
        let mut kick = VcpuSet::empty();
        for vcpu in targets.iter() {
            self.post_sgi(vcpu, caller, intid);
            if let Some(irq) = self.irq_mut(Bank::Private(vcpu), intid) {
                irq.pending_latch = true;
                irq.source = caller as u8;
                let snapshot = *irq;
                kick = kick.union(self.kick_for(&snapshot));
            }
        }
        kick
    }
}
