//! `guest_fdt::generate` from random valid cell plans against the QEMU virt platform.
#![forbid(unsafe_code)]

use cellvisor::board::{CellConfig, CellMemory, CellPolicy, GuestPlacement, MemRange};
use cellvisor::mem::addr::GuestPhysAddr;
use cellvisor::setup::guest_fdt::{self, GuestDtSpec};
use cellvisor::setup::partition::{CellPlan, RamRegion, VcpuPlan};
use fdt::Fdt;

use super::qemu_platform;
use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct GuestFdt;

/// A valid cell plan and the caller's choices.
#[derive(Clone, Debug)]
pub struct Case {
    /// The plan.
    pub plan: CellPlan,
    /// `/chosen/bootargs` (no NUL).
    pub bootargs: String,
    /// Guest-physical initrd start and size.
    pub initrd: Option<(GuestPhysAddr, u64)>,
}

/// `generate` reads only the plan's name, vCPUs and memory; the config is a stand-in.
static CONFIG: CellConfig = CellConfig {
    name: "fuzz",
    cpus: &[0],
    memory: &[],
    devices: &[],
    kernel: "linux",
    initrd: None,
    bootargs: "",
    policy: CellPolicy::ALL,
    trusted_with_all_memory: false,
};

const MIB: u64 = 1 << 20;
const NAMES: &[&str] = &["personal", "corporate", "c", "cell-with-a-long-name_0"];

impl FuzzTarget for GuestFdt {
    type Input = Case;
    const NAME: &'static str = "guest-fdt";
    const SUMMARY: &'static str = "guest DT generation: valid plans always give a tree that parses back with their CPUs and RAM";

    fn generate(rng: &mut Rng) -> Case {
        let vcpu_count = rng.range(1, 4) as usize;
        let vcpus = (0..vcpu_count)
            .map(|index| VcpuPlan {
                index,
                physical_cpu: rng.index(4),
                physical_mpidr: rng.below(4),
                virtual_mpidr: index as u64,
            })
            .collect();
        // 1-2 regions in 0x4000_0000..0x1_0000_0000 (above the device windows), 4 KiB or 2 MiB
        // aligned, not overlapping in guest space.
        let mut memory: Vec<CellMemory> = Vec::new();
        for _ in 0..rng.range(1, 2) {
            let align = if rng.coin() { 2 * MIB } else { 4096 };
            let size = rng.range(1, 512 * MIB / align) * align;
            let base = 0x4000_0000 + rng.below((0xc000_0000 - size) / align) * align;
            let range = MemRange::new(base, size);
            if memory.iter().any(|region| {
                MemRange::new(region.guest_base(), region.physical.size).overlaps(&range)
            }) {
                continue;
            }
            let placement = if rng.coin() {
                GuestPlacement::Identity
            } else {
                GuestPlacement::At(base)
            };
            let physical_base = match placement {
                GuestPlacement::Identity => base,
                GuestPlacement::At(_) => 0x4000_0000 + rng.below(0x8000_0000 / 4096) * 4096,
            };
            memory.push(CellMemory {
                physical: MemRange::new(physical_base, size),
                placement,
            });
        }
        let bootargs = (0..rng.below(80))
            .map(|_| rng.range(0x20, 0x7e) as u8 as char)
            .collect();
        let initrd = rng.coin().then(|| {
            (
                GuestPhysAddr::new((0x4000_0000 + rng.below(0x8000_0000)) & !0xfff),
                rng.below(64 * MIB),
            )
        });
        Case {
            plan: CellPlan {
                index: rng.index(4),
                name: rng.pick(NAMES),
                config: &CONFIG,
                vmid: rng.range(1, 255) as u16,
                vcpus,
                memory: memory.iter().map(RamRegion::from_board).collect(),
                raw_binaries: rng.coin(),
            },
            bootargs,
            initrd,
        }
    }

    fn check(case: &Case) -> Result<(), String> {
        let spec = GuestDtSpec {
            bootargs: &case.bootargs,
            initrd: case.initrd,
            pci: None,
            display: None,
            channel: None,
        };
        let dtb = guest_fdt::generate(&case.plan, qemu_platform(), &spec)
            .map_err(|error| format!("valid plan refused: {error}"))?;
        let tree = Fdt::new_unaligned_fallible(&dtb)
            .map_err(|error| format!("output does not parse: {error:?}"))?;
        let root = tree
            .find_node("/")
            .map_err(|error| format!("no root: {error:?}"))?
            .ok_or("no root node")?;

        let mut cpus = 0usize;
        let mut memory: Vec<(u64, u64)> = Vec::new();
        let mut bootargs = None;
        for child in root
            .children()
            .map_err(|error| format!("children: {error:?}"))?
        {
            let child = child.map_err(|error| format!("child: {error:?}"))?;
            let name = child
                .name()
                .map_err(|error| format!("name: {error:?}"))?
                .to_string();
            let properties: Vec<(String, Vec<u8>)> = child
                .properties()
                .map_err(|error| format!("properties: {error:?}"))?
                .iter()
                .map(|property| {
                    property.map(|property| (property.name.to_string(), property.value.to_vec()))
                })
                .collect::<Result<_, _>>()
                .map_err(|error| format!("property: {error:?}"))?;
            let property = |wanted: &str| {
                properties
                    .iter()
                    .find(|(name, _)| name == wanted)
                    .map(|(_, value)| value.clone())
            };
            if name.starts_with("memory@") {
                let reg = property("reg").ok_or("memory node without reg")?;
                ensure!(reg.len() == 16, "memory reg of {} bytes", reg.len());
                let base = u64::from_be_bytes(reg[..8].try_into().unwrap_or_default());
                let size = u64::from_be_bytes(reg[8..].try_into().unwrap_or_default());
                memory.push((base, size));
            } else if name == "cpus" {
                for cpu in child
                    .children()
                    .map_err(|error| format!("cpus: {error:?}"))?
                {
                    let cpu = cpu.map_err(|error| format!("cpu: {error:?}"))?;
                    if cpu
                        .name()
                        .map_err(|error| format!("cpu name: {error:?}"))?
                        .to_string()
                        .starts_with("cpu@")
                    {
                        cpus += 1;
                    }
                }
            } else if name == "chosen" {
                bootargs = property("bootargs");
            }
        }
        ensure!(
            cpus == case.plan.vcpus.len(),
            "{cpus} cpu nodes for {} vCPUs",
            case.plan.vcpus.len()
        );
        let expected: Vec<(u64, u64)> = case
            .plan
            .memory
            .iter()
            .map(|region| (region.guest_base.raw(), region.physical.size()))
            .collect();
        ensure!(
            memory == expected,
            "memory nodes {memory:x?}, expected {expected:x?}"
        );
        let mut expected_bootargs = case.bootargs.clone().into_bytes();
        expected_bootargs.push(0);
        ensure!(bootargs == Some(expected_bootargs), "bootargs {bootargs:?}");
        Ok(())
    }
}
