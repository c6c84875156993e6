//! `partition::validate` on random boards, most of them broken on purpose.
#![forbid(unsafe_code)]
//!
//! A board is built valid for the QEMU virt platform (4 CPUs, RAM 0x4000_0000..0xC000_0000) and
//! then 0-2 rules are broken in it on purpose; each iteration also varies the platform (fewer CPUs,
//! less RAM) and the reserved ranges. Whenever any rule is broken, `validate` must refuse; when it
//! accepts, the partition is checked independently (CPUs and RAM exclusive, inside the platform,
//! away from cellvisor's memory).
//!
//! `Board` holds `&'static` data, so boards are leaked. To keep memory bounded in long runs, a
//! board is a function of a key below [`BOARD_POOL`] and is built (and leaked) once per key.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use cellvisor::board::{
    AllCellsOff, Board, CellConfig, CellMemory, CellPolicy, Device, DeviceReset, Display,
    FaultLoop, GuestPlacement, Layout, MemRange, VirtioMmioSlots,
};
use cellvisor::setup::partition::{self, Reserved, ReservedKind};
use cellvisor::setup::platform::Platform as PlatformInfo;

use super::qemu_platform;
use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Partition;

/// Distinct boards a process builds at most (each is leaked once, about 1 KiB).
pub const BOARD_POOL: u64 = 1 << 15;

const MIB: u64 = 1 << 20;
const RAM: (u64, u64) = (0x4000_0000, 0xC000_0000);
const PLATFORM_CPUS: usize = 4;

/// Board devices: one DMA-capable, two not.
static DEVICES: &[Device] = &[
    Device {
        name: "disk",
        mmio: &[MemRange::new(0x0A00_3E00, 0x200)],
        interrupts: &[79],
        dma_capable: true,
        reset: DeviceReset::VirtioMmio,
    },
    Device {
        name: "leds",
        mmio: &[MemRange::new(0x0903_0000, 0x1000)],
        // The platform's pl061 node: SPI 7.
        interrupts: &[39],
        dma_capable: false,
        reset: DeviceReset::UnsafeAccepted,
    },
    Device {
        name: "rtc",
        mmio: &[MemRange::new(0x0901_0000, 0x1000)],
        interrupts: &[34],
        dma_capable: false,
        reset: DeviceReset::UnsafeAccepted,
    },
];

/// A rule a generated board breaks on purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Two cells share a name.
    DuplicateCellName,
    /// A cell has no CPUs.
    NoCpus,
    /// A CPU is given twice.
    CpuTwice,
    /// A CPU index the platform does not have.
    UnknownCpu,
    /// A cell has no RAM.
    NoMemory,
    /// A zero-sized region.
    EmptyRegion,
    /// A region not 4 KiB aligned (base, size or guest base).
    Misaligned,
    /// A region that wraps physically or in guest space.
    Wrapping,
    /// A region outside platform RAM.
    OutsideRam,
    /// Two regions overlap physically.
    PhysicalOverlap,
    /// A region overlaps cellvisor's memory.
    OverlapsHypervisor,
    /// Two regions of a cell overlap in guest space.
    GuestOverlap,
    /// A region covers a device window in guest space.
    HidesDevice,
    /// A cell names a device the board lacks.
    UnknownDevice,
    /// A device is given twice.
    DeviceTwice,
    /// A DMA-capable device in a cell whose RAM is not identity-mapped.
    DmaWithoutIdentity,
    /// `hypervisor_memory` outside platform RAM.
    HypervisorOutsideRam,
    /// The board has no layouts.
    NoLayouts,
}

const RULES: &[Rule] = &[
    Rule::DuplicateCellName,
    Rule::NoCpus,
    Rule::CpuTwice,
    Rule::UnknownCpu,
    Rule::NoMemory,
    Rule::EmptyRegion,
    Rule::Misaligned,
    Rule::Wrapping,
    Rule::OutsideRam,
    Rule::PhysicalOverlap,
    Rule::OverlapsHypervisor,
    Rule::GuestOverlap,
    Rule::HidesDevice,
    Rule::UnknownDevice,
    Rule::DeviceTwice,
    Rule::DmaWithoutIdentity,
    Rule::HypervisorOutsideRam,
    Rule::NoLayouts,
];

/// A pooled board and the rules it breaks.
#[derive(Clone, Copy, Debug)]
pub struct BoardCase {
    /// The board.
    pub board: &'static Board,
    /// Name of the layout under test (`None` if the board has none).
    pub layout: Option<&'static str>,
    /// Whether that layout is the board's first (so `None` selects it too).
    pub layout_is_default: bool,
    /// The rules broken on purpose.
    pub broken: &'static [Rule],
}

/// One iteration: a pooled board, the layout request, the platform and the reserved ranges.
#[derive(Clone, Debug)]
pub struct Case {
    /// Pool key the board was built from.
    pub board_key: u64,
    /// The board.
    pub board: BoardCase,
    /// The `cellvisor.layout=` value.
    pub request: Option<String>,
    /// CPUs the platform keeps (of 4).
    pub platform_cpus: usize,
    /// Platform RAM ranges.
    pub platform_ram: Vec<MemRange>,
    /// Ranges in use at boot.
    pub reserved: Vec<Reserved>,
}

fn leak<T>(items: Vec<T>) -> &'static [T] {
    Box::leak(items.into_boxed_slice())
}

/// The board for `key`, built once per process.
fn pooled_board(key: u64) -> BoardCase {
    static POOL: OnceLock<Mutex<HashMap<u64, BoardCase>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| Mutex::new(HashMap::new()));
    let mut pool = pool.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    *pool
        .entry(key)
        .or_insert_with(|| build_board(&mut Rng::new(key ^ 0xB0A4D)))
}

struct CellDraft {
    name: &'static str,
    cpus: Vec<usize>,
    memory: Vec<CellMemory>,
    devices: Vec<&'static str>,
}

const CELL_NAMES: &[&str] = &["personal", "corporate", "modem", "camera", "tee", "spare"];

fn build_board(rng: &mut Rng) -> BoardCase {
    // cellvisor's memory: 512 MiB at the start of RAM, or 64 MiB somewhere in it.
    let hypervisor = if rng.coin() {
        MemRange::new(RAM.0, 512 * MIB)
    } else {
        MemRange::new(RAM.0 + rng.below(32) * 64 * MIB, 64 * MIB)
    };
    // Free 64 MiB slots of RAM, shuffled, handed out to cells so regions never collide.
    let mut slots: Vec<u64> = (0..(RAM.1 - RAM.0) / (64 * MIB))
        .map(|n| RAM.0 + n * 64 * MIB)
        .filter(|&base| !MemRange::new(base, 64 * MIB).overlaps(&hypervisor))
        .collect();
    for n in (1..slots.len()).rev() {
        slots.swap(n, rng.index(n + 1));
    }
    let mut cpus: Vec<usize> = (0..PLATFORM_CPUS).collect();
    for n in (1..cpus.len()).rev() {
        cpus.swap(n, rng.index(n + 1));
    }
    let cell_count = rng.range(1, 4) as usize;
    let mut free_devices: Vec<&'static str> = DEVICES.iter().map(|device| device.name).collect();
    let mut cells: Vec<CellDraft> = (0..cell_count)
        .map(|index| {
            let cpu_count = if index + 1 == cell_count {
                cpus.len()
            } else {
                rng.range(1, (cpus.len() - (cell_count - index - 1)) as u64) as usize
            };
            let cell_cpus: Vec<usize> = cpus.drain(..cpu_count).collect();
            let identity = rng.coin();
            let mut memory = Vec::new();
            for region in 0..rng.range(1, 2) {
                let Some(slot) = slots.pop() else { break };
                let size = rng.range(1, 64 * MIB / 4096) * 4096;
                let offset = rng.below((64 * MIB - size) / 4096 + 1) * 4096;
                let placement = if identity {
                    GuestPlacement::Identity
                } else {
                    // Guest space from 1 GiB up, one 1 GiB window per region: no device window
                    // there and no overlap between the cell's regions.
                    GuestPlacement::At(
                        0x4000_0000 * (region + 1) + rng.below(0x3000_0000 / 4096) * 4096,
                    )
                };
                memory.push(CellMemory {
                    physical: MemRange::new(slot + offset, size),
                    placement,
                });
            }
            let mut devices = Vec::new();
            while !free_devices.is_empty() && rng.chance(1, 3) {
                let device = free_devices.remove(rng.index(free_devices.len()));
                let dma = DEVICES
                    .iter()
                    .any(|known| known.name == device && known.dma_capable);
                if dma && !identity {
                    continue;
                }
                devices.push(device);
            }
            CellDraft {
                name: CELL_NAMES[index],
                cpus: cell_cpus,
                memory,
                devices,
            }
        })
        .collect();
    let mut hypervisor_memory = hypervisor;
    let mut no_layouts = false;

    let mut broken = Vec::new();
    for _ in 0..rng.below(3) {
        let rule = rng.pick(RULES);
        if break_rule(
            rng,
            rule,
            &mut cells,
            &mut hypervisor_memory,
            &mut no_layouts,
        ) {
            broken.push(rule);
        }
    }

    let configs: Vec<CellConfig> = cells
        .into_iter()
        .map(|cell| CellConfig {
            // A cell given a DMA-capable device (none is behind an SMMU here) must be trusted
            // with all memory to be valid.
            trusted_with_all_memory: cell.devices.iter().any(|device| {
                DEVICES
                    .iter()
                    .any(|known| known.name == *device && known.dma_capable)
            }),
            name: cell.name,
            cpus: leak(cell.cpus),
            memory: leak(cell.memory),
            devices: leak(cell.devices),
            kernel: "linux",
            initrd: None,
            bootargs: "console=ttyAMA0",
            policy: CellPolicy::ALL,
        })
        .collect();
    let target = Layout {
        name: "target",
        cpu_sharing: None,
        channel: &[],
        cells: leak(configs),
    };
    // Sometimes a valid-looking decoy layout comes first or second; it is never selected.
    let decoy = Layout {
        name: "decoy",
        cpu_sharing: None,
        channel: &[],
        cells: &[],
    };
    let (layouts, layout, layout_is_default) = if no_layouts {
        (vec![], None, false)
    } else {
        match rng.below(3) {
            0 => (vec![decoy, target], Some("target"), false),
            1 => (vec![target, decoy], Some("target"), true),
            _ => (vec![target], Some("target"), true),
        }
    };
    let board = Box::leak(Box::new(Board {
        name: "fuzz-board",
        hypervisor_memory,
        devices: DEVICES,
        pci: None,
        smmu: None,
        layouts: leak(layouts),
        when_all_cells_off: rng.pick(&[
            AllCellsOff::PowerOff,
            AllCellsOff::Halt,
            AllCellsOff::KeepRunning,
        ]),
        raw_binaries: rng.coin(),
        fault_loop: if rng.coin() {
            FaultLoop::KeepInjecting
        } else {
            FaultLoop::Stop { after: 64 }
        },
        // The board's display (its emulated windows where QEMU virt has nothing, so a valid
        // layout stays valid; the overlaps are host-tested in setup::partition).
        display: rng.coin().then(|| {
            let base = rng.pick(&[0x0C00_0000, 0x0D00_0000]);
            Display {
                fw_cfg: MemRange::new(0x0902_0000, 0x1000),
                width: 640,
                height: 480,
                cell_display: MemRange::new(base, 0x1000),
                input_transports: VirtioMmioSlots {
                    base: 0x0A00_0000,
                    count: 32,
                    stride: 0x200,
                    first_intid: 48,
                },
                cell_input: MemRange::new(base + rng.pick(&[0x1000, 0x1_0000]), 0x1000),
                cell_input_intid: 144,
                switch_key: 119,
                banner_ms: 400,
                colours: &[],
            }
        }),
        // The layouts have no flows, so a channel only has to stay out of the way.
        channel: rng.coin().then_some(cellvisor::board::Channel {
            cell_window: MemRange::new(0x0E00_0000, 0x200),
            intid: 200,
            cids: &[],
        }),
    }));
    BoardCase {
        board,
        layout,
        layout_is_default,
        broken: leak(broken),
    }
}

/// Breaks `rule` in the drafts; `false` if this board cannot break it (e.g. one cell only).
fn break_rule(
    rng: &mut Rng,
    rule: Rule,
    cells: &mut [CellDraft],
    hypervisor: &mut MemRange,
    no_layouts: &mut bool,
) -> bool {
    let count = cells.len();
    let victim = rng.index(count);
    let other = rng.index(count);
    let hypervisor_range = *hypervisor;
    let cell = &mut cells[victim];
    let region = rng.index(cell.memory.len().max(1));
    match rule {
        Rule::DuplicateCellName => {
            if count < 2 {
                return false;
            }
            let name = cells[(victim + 1) % count].name;
            cells[victim].name = name;
        }
        Rule::NoCpus => cell.cpus.clear(),
        Rule::CpuTwice => {
            let Some(&cpu) = cells[other].cpus.first() else {
                return false;
            };
            cells[victim].cpus.push(cpu);
        }
        Rule::UnknownCpu => cell.cpus.push(PLATFORM_CPUS + rng.index(300)),
        Rule::NoMemory => cell.memory.clear(),
        Rule::EmptyRegion => {
            let Some(region) = cell.memory.get_mut(region) else {
                return false;
            };
            region.physical.size = 0;
        }
        Rule::Misaligned => {
            let Some(region) = cell.memory.get_mut(region) else {
                return false;
            };
            let skew = rng.range(1, 4095);
            match rng.below(3) {
                0 => region.physical.base = region.physical.base.wrapping_add(skew),
                1 => region.physical.size = region.physical.size.wrapping_add(skew),
                _ => region.placement = GuestPlacement::At(region.guest_base().wrapping_add(skew)),
            }
        }
        Rule::Wrapping => {
            let Some(region) = cell.memory.get_mut(region) else {
                return false;
            };
            // base + size >= 2^64: the last page below 2^64, moved down by fewer pages than the
            // region has.
            let pages = (region.physical.size / 4096).max(1);
            let near_top = !0xfff_u64 - rng.below(pages) * 4096;
            if region.physical.size < 4096 {
                return false;
            }
            if rng.coin() {
                region.physical.base = near_top;
            } else {
                region.placement = GuestPlacement::At(near_top);
            }
        }
        Rule::OutsideRam => {
            let Some(region) = cell.memory.get_mut(region) else {
                return false;
            };
            region.physical.base = if rng.coin() {
                RAM.1 - rng.below(region.physical.size / 4096) * 4096
            } else {
                rng.below(RAM.0 / 4096) * 4096
            };
            if inside(MemRange::new(RAM.0, RAM.1 - RAM.0), region.physical) {
                return false;
            }
        }
        Rule::PhysicalOverlap => {
            let Some(&theirs) = cells[other].memory.first() else {
                return false;
            };
            let shifted = theirs
                .physical
                .base
                .wrapping_add(rng.below(theirs.physical.size / 4096) * 4096);
            cells[victim].memory.push(CellMemory {
                physical: MemRange::new(shifted, 4096 * rng.range(1, 16)),
                placement: GuestPlacement::At(0xF000_0000),
            });
        }
        Rule::OverlapsHypervisor => {
            let Some(region) = cell.memory.get_mut(region) else {
                return false;
            };
            region.physical.base =
                hypervisor_range.base + rng.below(hypervisor_range.size / 4096) * 4096;
        }
        Rule::GuestOverlap => {
            let Some(&first) = cell.memory.first() else {
                return false;
            };
            cell.memory.push(CellMemory {
                physical: MemRange::new(
                    first.physical.base.wrapping_add(first.physical.size),
                    4096,
                ),
                placement: GuestPlacement::At(first.guest_base()),
            });
        }
        Rule::HidesDevice => {
            let Some(region) = cell.memory.get_mut(region) else {
                return false;
            };
            // The GIC distributor, the UART and the first redistributor frame.
            let window: u64 = rng.pick(&[0x0800_0000, 0x0900_0000, 0x080A_0000]);
            let back = rng.below((region.physical.size / 4096).min(4)) * 4096;
            region.placement = GuestPlacement::At(window - back);
        }
        Rule::UnknownDevice => cell.devices.push("no-such-device"),
        Rule::DeviceTwice => {
            let device = rng.pick(&["leds", "rtc"]);
            cells[victim].devices.push(device);
            cells[other].devices.push(device);
        }
        Rule::DmaWithoutIdentity => {
            for cell in cells.iter_mut() {
                cell.devices.retain(|device| *device != "disk");
            }
            let cell = &mut cells[victim];
            let Some(region) = cell.memory.first_mut() else {
                return false;
            };
            region.placement = GuestPlacement::At(0x4000_0000);
            cell.devices.push("disk");
        }
        Rule::HypervisorOutsideRam => {
            hypervisor.base = if rng.coin() {
                RAM.1 - 4096 * rng.below(4)
            } else {
                0x1000
            };
        }
        Rule::NoLayouts => *no_layouts = true,
    }
    true
}

fn inside(outer: MemRange, inner: MemRange) -> bool {
    let (outer_end, inner_end) = (
        u128::from(outer.base) + u128::from(outer.size),
        u128::from(inner.base) + u128::from(inner.size),
    );
    inner.base >= outer.base && inner_end <= outer_end
}

fn overlap(a: MemRange, b: MemRange) -> bool {
    a.size != 0
        && b.size != 0
        && u128::from(a.base) < u128::from(b.base) + u128::from(b.size)
        && u128::from(b.base) < u128::from(a.base) + u128::from(a.size)
}

impl FuzzTarget for Partition {
    type Input = Case;
    const NAME: &'static str = "partition";
    const SUMMARY: &'static str = "layout validation: any broken rule is refused with a one-line error, accepted partitions are exclusive";

    fn generate(rng: &mut Rng) -> Case {
        let board_key = rng.below(BOARD_POOL);
        let board = pooled_board(board_key);
        let request = match (board.layout, rng.below(8)) {
            (_, 0) => Some(String::from("no-such-layout")),
            (Some(_), 1..=3) if board.layout_is_default => None,
            (Some(name), _) => Some(String::from(name)),
            (None, _) => None,
        };
        let platform_cpus = if rng.chance(1, 5) {
            rng.range(1, 4) as usize
        } else {
            PLATFORM_CPUS
        };
        let platform_ram = match rng.below(6) {
            0 => vec![MemRange::new(
                RAM.0,
                rng.range(1, (RAM.1 - RAM.0) / (64 * MIB)) * 64 * MIB,
            )],
            1 => vec![
                MemRange::new(RAM.0, 0x4000_0000),
                MemRange::new(0x8000_0000 + 64 * MIB, 0x4000_0000 - 64 * MIB),
            ],
            _ => vec![MemRange::new(RAM.0, RAM.1 - RAM.0)],
        };
        let hypervisor = board.board.hypervisor_memory;
        let reserved = (0..rng.below(4))
            .map(|_| {
                let what = rng.pick(&[
                    ReservedKind::HypervisorImage,
                    ReservedKind::GuestBundle,
                    ReservedKind::PlatformDeviceTree,
                ]);
                let range = if rng.chance(1, 4) {
                    MemRange::new(rng.interesting_u64(), rng.interesting_u64())
                } else {
                    let size = rng.range(1, 8 * MIB);
                    MemRange::new(
                        hypervisor.base + rng.below(hypervisor.size.saturating_sub(size).max(1)),
                        size,
                    )
                };
                Reserved { what, range }
            })
            .collect();
        Case {
            board_key,
            board,
            request,
            platform_cpus,
            platform_ram,
            reserved,
        }
    }

    fn check(case: &Case) -> Result<(), String> {
        let mut platform: PlatformInfo = qemu_platform().clone();
        platform.cpus.truncate(case.platform_cpus);
        platform.memory.clone_from(&case.platform_ram);
        let board = case.board.board;
        let result = partition::validate(board, case.request.as_deref(), &platform, &case.reserved);

        let layout = case
            .request
            .as_deref()
            .map_or(board.layouts.first(), |name| board.layout(name));
        let ram_has = |range: MemRange| case.platform_ram.iter().any(|ram| inside(*ram, range));
        let mut reasons: Vec<String> = case
            .board
            .broken
            .iter()
            .map(|rule| format!("{rule:?}"))
            .collect();
        if layout.is_none_or(|layout| layout.name != "target") {
            reasons.push(String::from("unknown or missing layout"));
        }
        if !ram_has(board.hypervisor_memory) {
            reasons.push(String::from("hypervisor memory outside platform RAM"));
        }
        if case
            .reserved
            .iter()
            .any(|item| !inside(board.hypervisor_memory, item.range))
        {
            reasons.push(String::from("reserved range outside hypervisor memory"));
        }
        if let Some(layout) = layout {
            for cell in layout.cells {
                if cell.cpus.iter().any(|&cpu| cpu >= case.platform_cpus) {
                    reasons.push(format!("cell {} uses a CPU the platform lacks", cell.name));
                }
                if cell.memory.iter().any(|region| !ram_has(region.physical)) {
                    reasons.push(format!("cell {} has RAM outside the platform's", cell.name));
                }
            }
        }

        match result {
            Err(error) => {
                let text = error.to_string();
                ensure!(
                    !text.is_empty() && !text.contains('\n'),
                    "error text is not one line: {text:?}"
                );
                ensure!(!reasons.is_empty(), "valid layout refused: {text}");
            }
            Ok(partition) => {
                ensure!(
                    reasons.is_empty(),
                    "accepted although it breaks: {}",
                    reasons.join(", ")
                );
                let mut cpus_seen = Vec::new();
                let mut ram_seen: Vec<MemRange> = Vec::new();
                for (index, cell) in partition.cells.iter().enumerate() {
                    ensure!(
                        usize::from(cell.vmid) == index + 1,
                        "cell {index} has VMID {}",
                        cell.vmid
                    );
                    ensure!(
                        !cell.vcpus.is_empty() && !cell.memory.is_empty(),
                        "cell {} is empty",
                        cell.name
                    );
                    for vcpu in &cell.vcpus {
                        ensure!(
                            vcpu.physical_cpu < case.platform_cpus,
                            "CPU {} is not on the platform",
                            vcpu.physical_cpu
                        );
                        ensure!(
                            !cpus_seen.contains(&vcpu.physical_cpu),
                            "CPU {} given twice",
                            vcpu.physical_cpu
                        );
                        cpus_seen.push(vcpu.physical_cpu);
                    }
                    for region in &cell.memory {
                        let physical = region.physical.to_board();
                        ensure!(
                            physical.size > 0
                                && physical.base % 4096 == 0
                                && physical.size % 4096 == 0,
                            "region {physical:x?}"
                        );
                        ensure!(
                            ram_has(physical),
                            "region {physical:x?} outside platform RAM"
                        );
                        ensure!(
                            !overlap(physical, board.hypervisor_memory),
                            "region {physical:x?} overlaps cellvisor"
                        );
                        ensure!(
                            !ram_seen.iter().any(|seen| overlap(*seen, physical)),
                            "region {physical:x?} given twice"
                        );
                        ram_seen.push(physical);
                    }
                }
            }
        }
        Ok(())
    }
}
