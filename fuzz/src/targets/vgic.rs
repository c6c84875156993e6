//! The per-cell virtual GICv3 (`vgic::Vgic`) under random guest register accesses, SGIs and
//! deliveries, for random cell shapes.
#![forbid(unsafe_code)]

use cellvisor::dev::gic::{REDISTRIBUTOR_STRIDE, SGI_FRAME_OFFSET, SPI_BASE_INTID, SPI_END_INTID};
use cellvisor::dev::vgic::{
    self, AccessWidth, Delivery, ListRegisters, PhysicalDistributor, SpiAssignment, SpiKind,
    Trigger, VgicConfig,
};

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Vgic;

/// One thing that happens to the vGIC.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    /// A guest store to the distributor frame.
    DistributorWrite(u64, AccessWidth, u64),
    /// A guest load from the distributor frame.
    DistributorRead(u64, AccessWidth),
    /// A guest store to the redistributor region.
    RedistributorWrite(u64, AccessWidth, u64),
    /// A guest load from the redistributor region.
    RedistributorRead(u64, AccessWidth),
    /// vCPU `.0` writes `.1` to ICC_SGI1R_EL1 (the vCPU index may not exist).
    Sgi1r(usize, u64),
    /// cellvisor raises INTID `.0` with vCPU hint `.1`.
    Inject(u32, usize),
    /// cellvisor raises a hardware-linked INTID `.1` (physical `.2`) on vCPU `.0`.
    InjectHardware(usize, u32, u32),
    /// cellvisor sets the line of INTID `.0`.
    SetLevel(u32, bool),
    /// The physical line of INTID `.0` (every CPU's, for a PPI) goes high (`.1`) or low: what
    /// the vGIC samples for hardware-linked level-sensitive interrupts.
    PhysicalLine(u32, bool),
    /// vCPU `.0` exits and re-enters: sync, flush, then the guest acknowledges (and EOIs if `.1`).
    Run(usize, bool),
    /// The cell restarts.
    Reset,
}

/// A cell's vGIC configuration and what happens to it.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The configuration.
    pub config: VgicConfig,
    /// List registers the fake vCPU interface implements.
    pub implemented_list_registers: usize,
    /// The sequence.
    pub ops: Vec<Op>,
}

/// A vCPU interface that records misuse instead of panicking, and a guest that acknowledges.
/// Physical lines are high unless `low_lines` names them.
struct FakeListRegisters {
    values: [u64; 16],
    count: usize,
    hcr: u64,
    misuse: Option<String>,
    low_lines: Vec<u32>,
    /// Physical INTIDs deactivated through the interface.
    deactivated: Vec<u32>,
}

const LR_STATE_SHIFT: u32 = 62;
const LR_HW: u64 = 1 << 61;
const LR_EOI: u64 = 1 << 41;

fn lr_state(value: u64) -> u64 {
    value >> LR_STATE_SHIFT
}

fn lr_intid(value: u64) -> u32 {
    value as u32
}

impl FakeListRegisters {
    fn new(count: usize) -> Self {
        Self {
            values: [0; 16],
            count,
            hcr: 1,
            misuse: None,
            low_lines: Vec::new(),
            deactivated: Vec::new(),
        }
    }

    fn guest_acknowledge_and_eoi(&mut self, eoi: bool) {
        let Some(n) = (0..self.count)
            .filter(|&n| lr_state(self.values[n]) & 1 != 0)
            .min_by_key(|&n| (self.values[n] >> 48) & 0xff)
        else {
            return;
        };
        // Pending -> active (or active and pending -> active), then EOI: active bit cleared.
        let value = self.values[n] & !(3 << LR_STATE_SHIFT);
        self.values[n] = if eoi {
            value
        } else {
            value | 2 << LR_STATE_SHIFT
        };
    }
}

impl ListRegisters for FakeListRegisters {
    fn count(&self) -> usize {
        self.count
    }
    fn read(&self, n: usize) -> u64 {
        // A read past the end cannot be recorded through `&self`; it reads 0 like RES0 space and
        // is caught by the write check below when it matters.
        self.values
            .get(n)
            .copied()
            .filter(|_| n < self.count)
            .unwrap_or(0)
    }
    fn write(&mut self, n: usize, value: u64) {
        if n >= self.count {
            self.misuse
                .get_or_insert(format!("write to ICH_LR{n}_EL2 of {}", self.count));
        } else {
            self.values[n] = value;
        }
    }
    fn empty_list_registers(&self) -> u16 {
        (0..self.count).fold(0, |bits, n| {
            let value = self.values[n];
            let empty = lr_state(value) == 0 && (value & LR_HW != 0 || value & LR_EOI == 0);
            bits | u16::from(empty) << n
        })
    }
    fn hcr(&self) -> u64 {
        self.hcr
    }
    fn set_hcr(&mut self, value: u64) {
        self.hcr = value;
    }
    fn line_asserted(&mut self, physical_intid: u32) -> bool {
        !self.low_lines.contains(&physical_intid)
    }
    fn deactivate_physical(&mut self, physical_intid: u32) {
        self.deactivated.push(physical_intid);
    }
}

/// A physical distributor that records what reaches it; lines are high unless `low_lines`
/// names them.
#[derive(Default)]
struct FakePhysical {
    log: Vec<(&'static str, u32, usize)>,
    low_lines: Vec<u32>,
}

impl PhysicalDistributor for FakePhysical {
    fn set_enabled(&mut self, intid: u32, _enabled: bool) {
        self.log.push(("enable", intid, 0));
    }
    fn set_priority(&mut self, intid: u32, _priority: u8) {
        self.log.push(("priority", intid, 0));
    }
    fn set_trigger(&mut self, intid: u32, _trigger: Trigger) {
        self.log.push(("trigger", intid, 0));
    }
    fn route_to(&mut self, intid: u32, vcpu: usize) {
        self.log.push(("route", intid, vcpu));
    }
    fn deactivate(&mut self, intid: u32, vcpu: usize) {
        self.log.push(("deactivate", intid, vcpu));
    }
    fn line_asserted(&mut self, intid: u32, vcpu: usize) -> bool {
        self.log.push(("sample", intid, vcpu));
        !self.low_lines.contains(&intid)
    }
}

const WIDTHS: [AccessWidth; 4] = [
    AccessWidth::Byte,
    AccessWidth::Halfword,
    AccessWidth::Word,
    AccessWidth::Doubleword,
];

/// Distributor register families (base, bytes per INTID in eighths: 1 bit = 1).
const FAMILIES: &[u64] = &[
    0x0080, 0x0100, 0x0180, 0x0200, 0x0280, 0x0300, 0x0380, 0x0400, 0x0800, 0x0C00, 0x0D00, 0x0E00,
    0x6000,
];

fn distributor_offset(rng: &mut Rng, owned: &[SpiAssignment]) -> u64 {
    let intid = if !owned.is_empty() && rng.coin() {
        u64::from(rng.pick(owned).intid)
    } else {
        rng.below(1024)
    };
    match rng.below(8) {
        0 => rng.next_u64(),
        1 => rng.below(0x1_0100),
        2 => rng.below(0x100),
        3 => 0x6000 + intid * 8 + rng.below(2) * 4,
        4 => 0x0400 + intid,
        5 => 0x0C00 + intid / 16 * 4,
        _ => rng.pick(FAMILIES) + intid / 32 * 4,
    }
}

fn redistributor_offset(rng: &mut Rng, vcpus: usize) -> u64 {
    let frame = rng.below(vcpus as u64 + 2) * REDISTRIBUTOR_STRIDE;
    let within = match rng.below(6) {
        0 => rng.below(REDISTRIBUTOR_STRIDE),
        1 => rng.below(0x40),
        2 => {
            SGI_FRAME_OFFSET
                + rng.pick(&[
                    0x80, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380, 0xC00, 0xC04, 0xD00,
                ])
        }
        3 => SGI_FRAME_OFFSET + 0x400 + rng.below(32),
        4 => return rng.next_u64(),
        _ => SGI_FRAME_OFFSET + rng.below(0x1000),
    };
    frame + within
}

fn value(rng: &mut Rng) -> u64 {
    if rng.coin() {
        u64::MAX
    } else {
        rng.interesting_u64()
    }
}

fn sgi1r(rng: &mut Rng) -> u64 {
    let mut value = rng.below(16) << 24 | rng.next_u64() & 0xffff;
    if rng.chance(1, 4) {
        value |= 1 << 40;
    }
    if rng.chance(1, 4) {
        value |= rng.below(16) << 44;
    }
    if rng.chance(1, 4) {
        value |= (rng.next_u64() & 0xff) << rng.pick(&[16, 32, 48]);
    }
    if rng.chance(1, 8) {
        value = rng.next_u64();
    }
    value
}

impl FuzzTarget for Vgic {
    type Input = Scenario;
    const NAME: &'static str = "vgic";
    const SUMMARY: &'static str = "vGIC: no unowned SPI enabled/pending/active/routed, routes and SGIs stay in the cell, flush within the LRs";

    fn generate(rng: &mut Rng) -> Scenario {
        let vcpu_count = rng.range(1, 6) as usize;
        let mut owned_spis: Vec<SpiAssignment> = Vec::new();
        for _ in 0..rng.range(0, 5) {
            let intid = if rng.coin() {
                rng.range(32, 63) as u32
            } else {
                rng.range(u64::from(SPI_BASE_INTID), u64::from(SPI_END_INTID - 1)) as u32
            };
            if owned_spis.iter().all(|spi| spi.intid != intid) {
                let kind = if rng.coin() {
                    SpiKind::Hardware
                } else {
                    SpiKind::Virtual
                };
                owned_spis.push(SpiAssignment { intid, kind });
            }
        }
        let list_register_count = rng.range(2, 16) as usize;
        let implemented_list_registers = if rng.chance(1, 4) {
            rng.range(1, 16) as usize
        } else {
            list_register_count
        };
        let config = VgicConfig {
            vcpu_count,
            owned_spis,
            spi_lines: 31,
            list_register_count,
        };
        let mut ops = vec![
            // Usually start with the distributor on so deliveries happen.
            Op::DistributorWrite(0, AccessWidth::Word, 0x12),
        ];
        for _ in 0..rng.range(1, 120) {
            let vcpu = if rng.chance(1, 16) {
                rng.index(20)
            } else {
                rng.index(vcpu_count)
            };
            let owned = &config.owned_spis;
            let intid = match rng.below(4) {
                0 if !owned.is_empty() => rng.pick(owned).intid,
                1 => rng.below(32) as u32,
                _ => rng.below(1100) as u32,
            };
            ops.push(match rng.below(24) {
                0..=6 => Op::DistributorWrite(
                    distributor_offset(rng, owned),
                    rng.pick(&WIDTHS),
                    value(rng),
                ),
                7..=8 => Op::DistributorRead(distributor_offset(rng, owned), rng.pick(&WIDTHS)),
                9..=12 => Op::RedistributorWrite(
                    redistributor_offset(rng, vcpu_count),
                    rng.pick(&WIDTHS),
                    value(rng),
                ),
                13 => {
                    Op::RedistributorRead(redistributor_offset(rng, vcpu_count), rng.pick(&WIDTHS))
                }
                14..=15 => Op::Sgi1r(vcpu, sgi1r(rng)),
                16 => Op::Inject(intid, vcpu),
                17 => Op::InjectHardware(
                    vcpu,
                    intid,
                    if rng.coin() {
                        intid
                    } else {
                        rng.below(1100) as u32
                    },
                ),
                18 => Op::SetLevel(intid, rng.coin()),
                19 => Op::PhysicalLine(intid, rng.coin()),
                23 if rng.chance(1, 8) => Op::Reset,
                _ => Op::Run(vcpu, rng.coin()),
            });
        }
        Scenario {
            config,
            implemented_list_registers,
            ops,
        }
    }

    fn check(scenario: &Scenario) -> Result<(), String> {
        let config = &scenario.config;
        let vcpus = config.vcpu_count;
        let owned: Vec<u32> = config.owned_spis.iter().map(|spi| spi.intid).collect();
        let hardware: Vec<u32> = config
            .owned_spis
            .iter()
            .filter(|spi| spi.kind == SpiKind::Hardware)
            .map(|spi| spi.intid)
            .collect();
        let mut vgic =
            vgic::Vgic::new(config).map_err(|error| format!("valid config refused: {error}"))?;
        let mut physical = FakePhysical::default();
        let mut lrs: Vec<FakeListRegisters> = (0..vcpus)
            .map(|_| FakeListRegisters::new(scenario.implemented_list_registers))
            .collect();
        vgic.reset(&mut physical);

        for (index, op) in scenario.ops.iter().enumerate() {
            let in_cell = |vcpu: usize| vcpu < vcpus;
            match *op {
                Op::DistributorWrite(offset, width, value) => {
                    let _ = vgic.distributor_write(offset, width, value, &mut physical);
                }
                Op::DistributorRead(offset, width) => {
                    if let Ok(value) = vgic.distributor_read(offset, width, &mut physical) {
                        ensure!(
                            width == AccessWidth::Doubleword || value >> (8 * width.bytes()) == 0,
                            "step {index}: {width:?} read of {offset:#x} gave {value:#x}"
                        );
                    }
                }
                Op::RedistributorWrite(offset, width, value) => {
                    let result = vgic.redistributor_write(offset, width, value, &mut physical);
                    ensure!(
                        offset < vcpus as u64 * REDISTRIBUTOR_STRIDE || result.is_err(),
                        "step {index}: write past the last redistributor accepted at {offset:#x}"
                    );
                }
                Op::RedistributorRead(offset, width) => {
                    let result = vgic.redistributor_read(offset, width, &mut physical);
                    ensure!(
                        offset < vcpus as u64 * REDISTRIBUTOR_STRIDE || result.is_err(),
                        "step {index}: read past the last redistributor accepted at {offset:#x}"
                    );
                }
                Op::Sgi1r(vcpu, value) => match vgic.write_sgi1r(vcpu, value) {
                    Ok(kick) => {
                        ensure!(
                            in_cell(vcpu),
                            "step {index}: SGI1R from missing vCPU {vcpu} accepted"
                        );
                        ensure!(
                            kick.iter().all(in_cell),
                            "step {index}: SGI kicks {kick:?} outside {vcpus} vCPUs"
                        );
                    }
                    Err(_) => ensure!(
                        !in_cell(vcpu),
                        "step {index}: SGI1R from vCPU {vcpu} refused"
                    ),
                },
                Op::Inject(intid, vcpu) => {
                    let result = vgic.inject(intid, vcpu);
                    check_delivery(result, intid, &owned, vcpus)
                        .map_err(|reason| format!("step {index}: {reason}"))?;
                }
                Op::InjectHardware(vcpu, intid, physical_intid) => {
                    let result = vgic.inject_hardware(vcpu, intid, physical_intid);
                    check_delivery(result, intid, &owned, vcpus)
                        .map_err(|reason| format!("step {index}: {reason}"))?;
                    if intid >= 32 && result.is_ok() {
                        ensure!(
                            hardware.contains(&intid) && physical_intid == intid,
                            "step {index}: hardware link {intid} -> {physical_intid} accepted"
                        );
                    }
                }
                Op::SetLevel(intid, level) => {
                    let result = vgic.set_level(intid, level);
                    check_delivery(result, intid, &owned, vcpus)
                        .map_err(|reason| format!("step {index}: {reason}"))?;
                }
                Op::PhysicalLine(intid, asserted) => {
                    for low_lines in lrs
                        .iter_mut()
                        .map(|lrs| &mut lrs.low_lines)
                        .chain(core::iter::once(&mut physical.low_lines))
                    {
                        low_lines.retain(|&low| low != intid);
                        if !asserted {
                            low_lines.push(intid);
                        }
                    }
                }
                Op::Run(vcpu, eoi) => {
                    let Some(lrs) = lrs.get_mut(vcpu) else {
                        let mut spare = FakeListRegisters::new(scenario.implemented_list_registers);
                        ensure!(
                            vgic.sync(vcpu, &mut spare).is_empty(),
                            "step {index}: sync of missing vCPU {vcpu} names vCPUs"
                        );
                        ensure!(
                            vgic.flush(vcpu, &mut spare).is_err(),
                            "step {index}: flush of missing vCPU {vcpu}"
                        );
                        continue;
                    };
                    let synced = vgic.sync(vcpu, lrs);
                    let flushed = vgic
                        .flush(vcpu, lrs)
                        .map_err(|error| format!("step {index}: flush: {error:?}"))?;
                    // The vCPUs a sync names to kick are other vCPUs of this cell.
                    for other in synced.union(flushed.kick).iter() {
                        ensure!(
                            other < vcpus && other != vcpu,
                            "step {index}: vCPU {vcpu}'s sync names vCPU {other} of {vcpus}"
                        );
                    }
                    if let Some(misuse) = &lrs.misuse {
                        return Err(format!("step {index}: {misuse}"));
                    }
                    for &value in &lrs.values[..lrs.count] {
                        let intid = lr_intid(value);
                        ensure!(
                            lr_state(value) == 0 || intid < 32 || owned.contains(&intid),
                            "step {index}: INTID {intid} in vCPU {vcpu}'s list registers"
                        );
                    }
                    lrs.guest_acknowledge_and_eoi(eoi);
                }
                Op::Reset => vgic.reset(&mut physical),
            }
        }
        for (vcpu, lrs) in lrs.iter().enumerate() {
            for &intid in &lrs.deactivated {
                ensure!(
                    hardware.contains(&intid) || (16..32).contains(&intid),
                    "vCPU {vcpu}'s interface deactivated physical INTID {intid}"
                );
            }
        }
        check_isolation(&mut vgic, &owned, &hardware, &physical, vcpus)
    }
}

/// A raised interrupt is delivered only inside the cell, and only if the cell owns it.
fn check_delivery(
    result: Result<Delivery, vgic::VgicError>,
    intid: u32,
    owned: &[u32],
    vcpus: usize,
) -> Result<(), String> {
    match result {
        Ok(Delivery::Ready { vcpu }) => {
            ensure!(
                vcpu < vcpus,
                "INTID {intid} delivered to vCPU {vcpu} of {vcpus}"
            );
        }
        Ok(Delivery::Held) => {}
        Err(_) => return Ok(()),
    }
    ensure!(
        intid < 32 || owned.contains(&intid),
        "unowned INTID {intid} accepted"
    );
    Ok(())
}

/// Through the guest's own registers: no unowned SPI is enabled, pending or active or has a route,
/// owned SPIs route only to the cell's vCPUs; and only the cell's hardware SPIs (and, for
/// deactivations and line samples, the PPIs) reached the physical distributor.
fn check_isolation(
    vgic: &mut vgic::Vgic,
    owned: &[u32],
    hardware: &[u32],
    physical: &FakePhysical,
    vcpus: usize,
) -> Result<(), String> {
    // The pending reads below may sample lines (and deactivate): checked with the rest.
    let mut physical_reads = FakePhysical {
        log: Vec::new(),
        low_lines: physical.low_lines.clone(),
    };
    for word in 1..32u32 {
        let unowned_bits = (0..32u32)
            .filter(|bit| !owned.contains(&(word * 32 + bit)))
            .fold(0u64, |mask, bit| mask | 1 << bit);
        for (family, base) in [
            ("ISENABLER", 0x100u64),
            ("ISPENDR", 0x200),
            ("ISACTIVER", 0x300),
        ] {
            let offset = base + u64::from(word) * 4;
            let bits = vgic
                .distributor_read(offset, AccessWidth::Word, &mut physical_reads)
                .unwrap_or(0);
            ensure!(
                bits & unowned_bits == 0,
                "GICD_{family}{word} = {bits:#x} shows unowned SPIs {:#x}",
                bits & unowned_bits
            );
        }
    }
    for intid in SPI_BASE_INTID..SPI_END_INTID {
        let route = vgic
            .distributor_read(
                0x6000 + 8 * u64::from(intid),
                AccessWidth::Doubleword,
                &mut physical_reads,
            )
            .unwrap_or(0);
        if owned.contains(&intid) {
            ensure!(
                route == 1 << 31 || route < vcpus as u64,
                "SPI {intid} routed to {route:#x} in a cell of {vcpus} vCPUs"
            );
        } else {
            ensure!(route == 0, "unowned SPI {intid} has route {route:#x}");
        }
    }
    for &(what, intid, vcpu) in physical.log.iter().chain(&physical_reads.log) {
        let allowed = match what {
            "deactivate" | "sample" => hardware.contains(&intid) || (16..32).contains(&intid),
            _ => hardware.contains(&intid),
        };
        ensure!(
            allowed && vcpu < vcpus,
            "physical distributor got {what} INTID {intid} vCPU {vcpu}"
        );
    }
    Ok(())
}
