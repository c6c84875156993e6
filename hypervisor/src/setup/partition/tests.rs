//! Host tests of layout validation: the real QEMU virt board, and one test per malformed layout.

extern crate std;

use super::qemu_virt;
use super::*;
use crate::board::{
    AllCellsOff, CellConfig, CellMemory, CellPolicy, Device, DeviceReset, El2Counting, FaultLoop,
    GuestPlacement, MemRange,
};
use crate::dev::passthrough::PassthroughError;
use crate::setup::platform;
use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec;
use std::format;

const MIB: u64 = 1024 * 1024;
const DTB: &[u8] = include_bytes!("../../../tests/data/qemu-virt-gicv3.dtb");

fn qemu_platform() -> Platform {
    platform::parse(DTB).expect("fixture parses")
}

fn leak<T>(items: Vec<T>) -> &'static [T] {
    Box::leak(items.into_boxed_slice())
}

fn identity(base: u64, size: u64) -> CellMemory {
    CellMemory {
        physical: MemRange::new(base, size),
        placement: GuestPlacement::Identity,
    }
}

fn cell(name: &'static str, cpus: Vec<usize>, memory: Vec<CellMemory>) -> CellConfig {
    CellConfig {
        name,
        cpus: leak(cpus),
        memory: leak(memory),
        devices: &[],
        kernel: "linux",
        initrd: None,
        bootargs: "",
        policy: CellPolicy::ALL,
        trusted_with_all_memory: false,
    }
}

fn with_devices(mut config: CellConfig, devices: Vec<&'static str>) -> CellConfig {
    config.devices = leak(devices);
    config
}

const DEVICES: &[Device] = &[
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
        interrupts: &[],
        dma_capable: false,
        reset: DeviceReset::UnsafeAccepted,
    },
];

fn board(cells: Vec<CellConfig>) -> Board {
    Board {
        name: "test-board",
        hypervisor_memory: MemRange::new(0x4000_0000, 512 * MIB),
        devices: DEVICES,
        pci: None,
        smmu: None,
        layouts: leak(vec![Layout {
            name: "main",
            cpu_sharing: None,
            channel: &[],
            cells: leak(cells),
        }]),
        when_all_cells_off: AllCellsOff::PowerOff,
        raw_binaries: true,
        fault_loop: FaultLoop::Stop { after: 64 },
        display: None,
        channel: None,
    }
}

fn two_cells() -> Vec<CellConfig> {
    vec![
        cell(
            "personal",
            vec![0, 1],
            vec![identity(0x6000_0000, 256 * MIB)],
        ),
        cell(
            "corporate",
            vec![2, 3],
            vec![identity(0x9000_0000, 256 * MIB)],
        ),
    ]
}

fn check(cells: Vec<CellConfig>) -> Result<Partition, LayoutError> {
    validate(&board(cells), None, &qemu_platform(), &[])
}

fn error_of(cells: Vec<CellConfig>) -> LayoutError {
    let error = check(cells).expect_err("layout must be refused");
    let line = error.to_string();
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.contains(": "), "names a fix: {line}");
    error
}

#[test]
fn qemu_virt_board_validates_both_layouts() {
    let platform = qemu_platform();
    for layout in ["linux", "test-guests"] {
        let partition = validate(&qemu_virt::BOARD, Some(layout), &platform, &[])
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(partition.layout, layout);
        assert_eq!(partition.cells.len(), 2);
        assert_eq!(partition.cells[1].vmid, 2);
    }
    let default = validate(&qemu_virt::BOARD, None, &platform, &[]).expect("default layout");
    assert_eq!(default.layout, "linux");
}

/// Every layout of the real board validates, except `invalid-dma-remapped`, which exists only
/// to be refused with exactly the DMA rule.
#[test]
fn qemu_virt_layouts_validate_except_the_deliberately_invalid_one() {
    let platform = qemu_platform();
    for layout in qemu_virt::BOARD.layouts {
        let result = validate(&qemu_virt::BOARD, Some(layout.name), &platform, &[]);
        if layout.name == "invalid-dma-remapped" {
            let error = result.expect_err("the DMA rule refuses it");
            assert_eq!(
                error,
                LayoutError::DmaWithoutIdentity {
                    site: LayoutSite {
                        board: "qemu-virt",
                        layout: "invalid-dma-remapped"
                    },
                    cell: "corporate",
                    device: "virtio-disk",
                }
            );
            let line = error.to_string();
            assert!(line.contains("DMA-capable") && line.contains("identity-mapped"));
        } else if let Err(error) = result {
            panic!("layout {}: {error}", layout.name);
        }
    }
}

/// Counting at EL2 is a measurement-only exception: the bench guest's cell (layouts `bench` and
/// `bench-shared`) has it, no other cell of the real board does.
#[test]
fn only_the_bench_cell_may_count_at_el2() {
    let counting: Vec<(&str, &str)> = qemu_virt::BOARD
        .layouts
        .iter()
        .flat_map(|layout| layout.cells.iter().map(move |cell| (layout.name, cell)))
        .filter(|(_, cell)| cell.policy.el2_counting != El2Counting::Prohibited)
        .map(|(layout, cell)| (layout, cell.name))
        .collect();
    assert_eq!(counting, [("bench", "bench"), ("bench-shared", "bench")]);
}

#[test]
fn qemu_virt_linux_cells_own_one_virtio_slot_each() {
    let partition =
        validate(&qemu_virt::BOARD, Some("linux"), &qemu_platform(), &[]).expect("valid");
    let devices: Vec<(&str, &[&str])> = partition
        .cells
        .iter()
        .map(|cell| (cell.name, cell.config.devices))
        .collect();
    assert_eq!(
        devices,
        [
            ("personal", &["virtio-net-pci"][..]),
            ("corporate", &["virtio-blk-pci"][..])
        ]
    );
    // Personal is identity-mapped; corporate's RAM is remapped, its disk's DMA translated.
    let bases: Vec<(u64, u64)> = partition
        .cells
        .iter()
        .map(|cell| {
            (
                cell.memory[0].guest_base.raw(),
                cell.memory[0].physical.base().raw(),
            )
        })
        .collect();
    assert_eq!(
        bases,
        [(0x6000_0000, 0x6000_0000), (0x4000_0000, 0x9000_0000)]
    );
}

#[test]
fn passthrough_conflicts_are_layout_errors() {
    const CLASHING: &[Device] = &[
        Device {
            name: "disk",
            mmio: &[MemRange::new(0x0A00_3E00, 0x200)],
            interrupts: &[79],
            dma_capable: false,
            reset: DeviceReset::UnsafeAccepted,
        },
        Device {
            name: "disk-alias",
            mmio: &[MemRange::new(0x0A00_3F00, 0x100)],
            interrupts: &[79],
            dma_capable: false,
            reset: DeviceReset::UnsafeAccepted,
        },
        Device {
            name: "phantom",
            mmio: &[MemRange::new(0x0A00_8000, 0x200)],
            interrupts: &[],
            dma_capable: false,
            reset: DeviceReset::UnsafeAccepted,
        },
    ];
    let layout = |cells: Vec<CellConfig>| {
        let mut board = board(cells);
        board.devices = CLASHING;
        validate(&board, None, &qemu_platform(), &[])
    };
    let [a, b] = <[CellConfig; 2]>::try_from(two_cells()).unwrap();
    let error = layout(vec![
        with_devices(a, vec!["disk"]),
        with_devices(b, vec!["disk-alias"]),
    ])
    .unwrap_err();
    assert!(matches!(
        error,
        LayoutError::Passthrough {
            cell: "personal",
            error: PassthroughError::WindowOverlap { .. },
            ..
        }
    ));
    assert!(!error.to_string().contains('\n'));
    let error = layout(vec![with_devices(a, vec!["phantom"]), b]).unwrap_err();
    assert!(matches!(
        error,
        LayoutError::Passthrough {
            error: PassthroughError::NotInPlatform { .. },
            ..
        }
    ));
}

#[test]
fn plan_pins_vcpus_and_renumbers_mpidrs() {
    let partition = check(two_cells()).expect("valid");
    let corporate = &partition.cells[1];
    assert_eq!(
        (corporate.index, corporate.name, corporate.vmid),
        (1, "corporate", 2)
    );
    assert_eq!(
        corporate.vcpus,
        [
            VcpuPlan {
                index: 0,
                physical_cpu: 2,
                physical_mpidr: 2,
                virtual_mpidr: 0
            },
            VcpuPlan {
                index: 1,
                physical_cpu: 3,
                physical_mpidr: 3,
                virtual_mpidr: 1
            },
        ]
    );
    assert_eq!(
        corporate.memory,
        [RamRegion::from_board(&identity(0x9000_0000, 256 * MIB))]
    );
    assert_eq!(partition.cell_of_cpu(3), Some((1, 1)));
    assert_eq!(partition.cell_of_cpu(0), Some((0, 0)));
    assert_eq!(partition.cell_of_cpu(4), None);
}

#[test]
fn idle_cpus_belong_to_no_cell() {
    let cells = vec![cell("only", vec![1], vec![identity(0x6000_0000, MIB)])];
    let partition = check(cells).expect("valid");
    assert_eq!(partition.cell_of_cpu(0), None);
    assert_eq!(partition.cell_of_cpu(1), Some((0, 0)));
}

#[test]
fn unknown_layout() {
    let error = validate(&board(two_cells()), Some("nope"), &qemu_platform(), &[]).unwrap_err();
    assert!(
        matches!(error, LayoutError::UnknownLayout { ref requested, .. } if requested == "nope")
    );
    assert!(error.to_string().contains("one of main"), "{error}");
}

#[test]
fn board_without_layouts() {
    let mut empty = board(two_cells());
    empty.layouts = &[];
    let error = validate(&empty, None, &qemu_platform(), &[]).unwrap_err();
    assert_eq!(
        error,
        LayoutError::NoLayouts {
            board: "test-board"
        }
    );
}

#[test]
fn cell_without_cpus() {
    let error = error_of(vec![cell(
        "lonely",
        vec![],
        vec![identity(0x6000_0000, MIB)],
    )]);
    assert!(matches!(error, LayoutError::NoCpus { cell: "lonely", .. }));
}

#[test]
fn cell_without_memory() {
    let error = error_of(vec![cell("lonely", vec![0], vec![])]);
    assert!(matches!(
        error,
        LayoutError::NoMemory { cell: "lonely", .. }
    ));
}

#[test]
fn cpu_the_platform_lacks() {
    let error = error_of(vec![cell(
        "big",
        vec![0, 4],
        vec![identity(0x6000_0000, MIB)],
    )]);
    assert!(matches!(
        error,
        LayoutError::UnknownCpu {
            cpu: 4,
            platform_cpus: 4,
            ..
        }
    ));
}

#[test]
fn cpu_in_two_cells() {
    let mut cells = two_cells();
    cells[1] = cell("corporate", vec![1, 2], vec![identity(0x9000_0000, MIB)]);
    let error = error_of(cells);
    assert!(matches!(
        error,
        LayoutError::CpuAssignedTwice {
            cpu: 1,
            first_cell: "personal",
            second_cell: "corporate",
            ..
        }
    ));
}

#[test]
fn cpu_twice_in_one_cell() {
    let error = error_of(vec![cell(
        "greedy",
        vec![2, 2],
        vec![identity(0x6000_0000, MIB)],
    )]);
    assert!(matches!(
        error,
        LayoutError::CpuAssignedTwice {
            cpu: 2,
            first_cell: "greedy",
            second_cell: "greedy",
            ..
        }
    ));
    assert!(error.to_string().contains("twice"));
}

#[test]
fn memory_outside_platform_ram() {
    let error = error_of(vec![cell(
        "high",
        vec![0],
        vec![identity(0xBFF0_0000, 2 * MIB)],
    )]);
    assert!(matches!(error, LayoutError::MemoryOutsideRam { .. }));
}

#[test]
fn memory_overlapping_another_cell() {
    let mut cells = two_cells();
    cells[1] = cell("corporate", vec![2], vec![identity(0x6800_0000, 256 * MIB)]);
    let error = error_of(cells);
    assert!(matches!(
        error,
        LayoutError::MemoryOverlap {
            cell: "corporate",
            other_cell: "personal",
            ..
        }
    ));
    assert_eq!(
        error.to_string(),
        "layout \"main\": cell \"corporate\" RAM 0x6800_0000..0x7800_0000 overlaps cell \"personal\" \
         RAM 0x6000_0000..0x7000_0000: move or shrink one of them in boards/test-board"
    );
}

#[test]
fn memory_overlapping_own_region() {
    let error = error_of(vec![cell(
        "twice",
        vec![0],
        vec![
            identity(0x6000_0000, 2 * MIB),
            identity(0x6010_0000, 2 * MIB),
        ],
    )]);
    assert!(matches!(
        error,
        LayoutError::MemoryOverlap {
            cell: "twice",
            other_cell: "twice",
            ..
        }
    ));
}

#[test]
fn memory_overlapping_hypervisor() {
    let error = error_of(vec![cell(
        "thief",
        vec![0],
        vec![identity(0x5FF0_0000, 2 * MIB)],
    )]);
    assert!(matches!(
        error,
        LayoutError::MemoryOverlapsHypervisor { .. }
    ));
}

#[test]
fn hypervisor_memory_outside_ram() {
    let mut bad = board(two_cells());
    bad.hypervisor_memory = MemRange::new(0x3000_0000, 512 * MIB);
    let error = validate(&bad, None, &qemu_platform(), &[]).unwrap_err();
    assert!(matches!(
        error,
        LayoutError::HypervisorMemoryOutsideRam { .. }
    ));
}

#[test]
fn reserved_range_outside_hypervisor_memory() {
    let inside = Reserved {
        what: ReservedKind::HypervisorImage,
        range: MemRange::new(0x4020_0000, 4 * MIB),
    };
    let outside = Reserved {
        what: ReservedKind::GuestBundle,
        range: MemRange::new(0x5FF0_0000, 2 * MIB),
    };
    let platform = qemu_platform();
    assert!(validate(&board(two_cells()), None, &platform, &[inside]).is_ok());
    let error = validate(&board(two_cells()), None, &platform, &[inside, outside]).unwrap_err();
    assert!(matches!(
        error,
        LayoutError::ReservedOutsideHypervisorMemory {
            what: ReservedKind::GuestBundle,
            ..
        }
    ));
    assert!(
        error
            .to_string()
            .starts_with("the guest bundle at 0x5ff0_0000..0x6010_0000")
    );
}

#[test]
fn memory_not_page_aligned() {
    let error = error_of(vec![cell("odd", vec![0], vec![identity(0x6000_0800, MIB)])]);
    assert!(matches!(error, LayoutError::MisalignedMemory { .. }));
    let error = error_of(vec![cell(
        "odd",
        vec![0],
        vec![identity(0x6000_0000, 0x1800)],
    )]);
    assert!(matches!(error, LayoutError::MisalignedMemory { .. }));
    let placed = CellMemory {
        physical: MemRange::new(0x6000_0000, MIB),
        placement: GuestPlacement::At(0x4000_0010),
    };
    let error = error_of(vec![cell("odd", vec![0], vec![placed])]);
    assert!(matches!(error, LayoutError::MisalignedMemory { .. }));
}

#[test]
fn memory_of_zero_size() {
    let error = error_of(vec![cell("none", vec![0], vec![identity(0x6000_0000, 0)])]);
    assert!(matches!(error, LayoutError::EmptyMemory { .. }));
}

#[test]
fn memory_wrapping() {
    let error = error_of(vec![cell(
        "wrap",
        vec![0],
        vec![identity(u64::MAX - 0xFFF, 0x2000)],
    )]);
    assert!(matches!(error, LayoutError::WrappingMemory { .. }));
    let placed = CellMemory {
        physical: MemRange::new(0x6000_0000, 2 * MIB),
        placement: GuestPlacement::At(u64::MAX - 0xFFF),
    };
    let error = error_of(vec![cell("wrap", vec![0], vec![placed])]);
    assert!(matches!(error, LayoutError::WrappingMemory { .. }));
}

#[test]
fn guest_regions_overlapping() {
    let first = CellMemory {
        physical: MemRange::new(0x6000_0000, 2 * MIB),
        placement: GuestPlacement::At(0x4000_0000),
    };
    let second = CellMemory {
        physical: MemRange::new(0x7000_0000, 2 * MIB),
        placement: GuestPlacement::At(0x4010_0000),
    };
    let error = error_of(vec![cell("folded", vec![0], vec![first, second])]);
    assert!(matches!(error, LayoutError::GuestMemoryOverlap { .. }));
}

fn placed_at(guest: u64) -> Vec<CellConfig> {
    vec![cell(
        "hider",
        vec![0, 1],
        vec![CellMemory {
            physical: MemRange::new(0x6000_0000, 2 * MIB),
            placement: GuestPlacement::At(guest),
        }],
    )]
}

#[test]
fn guest_ram_over_emulated_devices() {
    let error = error_of(placed_at(0x0800_0000));
    assert!(matches!(
        error,
        LayoutError::GuestMemoryHidesDevice {
            device: "GIC distributor",
            ..
        }
    ));
    let error = error_of(placed_at(0x0900_0000));
    assert!(matches!(
        error,
        LayoutError::GuestMemoryHidesDevice { device: "UART", .. }
    ));
    // Two vCPUs use redistributor frames 0x080A_0000..0x080E_0000; 0x0820_0000 is past them.
    assert!(check(placed_at(0x0820_0000)).is_ok());
}

#[test]
fn guest_ram_over_redistributors() {
    // 0x080C_0000 is the second vCPU's frame; the distributor and UART are elsewhere.
    let mut cells = placed_at(0);
    cells[0].memory = leak(vec![CellMemory {
        physical: MemRange::new(0x6000_0000, 0x1_0000),
        placement: GuestPlacement::At(0x080C_0000),
    }]);
    let error = error_of(cells);
    assert!(matches!(
        error,
        LayoutError::GuestMemoryHidesDevice {
            device: "GIC redistributors",
            ..
        }
    ));
}

#[test]
fn unknown_device() {
    let cells = vec![with_devices(
        cell("a", vec![0], vec![identity(0x6000_0000, MIB)]),
        vec!["modem"],
    )];
    let error = error_of(cells);
    assert!(matches!(
        error,
        LayoutError::UnknownDevice {
            device: "modem",
            ..
        }
    ));
}

#[test]
fn device_in_two_cells() {
    let cells = two_cells()
        .into_iter()
        .map(|config| with_devices(config, vec!["leds"]))
        .collect();
    let error = error_of(cells);
    assert!(matches!(
        error,
        LayoutError::DeviceAssignedTwice {
            device: "leds",
            first_cell: "personal",
            second_cell: "corporate",
            ..
        }
    ));
    let twice = vec![with_devices(
        cell("a", vec![0], vec![identity(0x6000_0000, MIB)]),
        vec!["leds", "leds"],
    )];
    assert!(matches!(
        error_of(twice),
        LayoutError::DeviceAssignedTwice { .. }
    ));
}

#[test]
fn dma_device_needs_identity_ram() {
    let placed = CellMemory {
        physical: MemRange::new(0x6000_0000, MIB),
        placement: GuestPlacement::At(0x4000_0000),
    };
    let cells = vec![with_devices(cell("a", vec![0], vec![placed]), vec!["disk"])];
    let error = error_of(cells);
    assert!(matches!(
        error,
        LayoutError::DmaWithoutIdentity { device: "disk", .. }
    ));
    let identity_cells = vec![with_devices(
        cell("a", vec![0], vec![identity(0x6000_0000, MIB)]),
        vec!["disk"],
    )];
    assert!(matches!(
        error_of(identity_cells.clone()),
        LayoutError::UnconfinedDma { device: "disk", .. }
    ));
    let trusted_cells = vec![CellConfig {
        trusted_with_all_memory: true,
        ..identity_cells[0]
    }];
    assert!(check(trusted_cells).is_ok());
}

#[test]
fn passthrough_window_is_part_of_the_guest_map() {
    let placed = CellMemory {
        physical: MemRange::new(0x6000_0000, MIB),
        placement: GuestPlacement::At(0x0903_0000),
    };
    let cells = vec![with_devices(cell("a", vec![0], vec![placed]), vec!["leds"])];
    assert!(matches!(
        error_of(cells),
        LayoutError::GuestMemoryHidesDevice { device: "leds", .. }
    ));
}

#[test]
fn duplicate_cell_names() {
    let mut cells = two_cells();
    cells[1].name = "personal";
    let error = error_of(cells);
    assert!(matches!(
        error,
        LayoutError::DuplicateCellName {
            name: "personal",
            ..
        }
    ));
}

#[test]
fn more_cells_than_vmids() {
    let cells = (0..=MAX_CELLS)
        .map(|index| {
            let name: &'static str = Box::leak(format!("c{index}").into_boxed_str());
            cell(
                name,
                vec![0],
                vec![identity(0x6000_0000 + index as u64 * MIB, MIB)],
            )
        })
        .collect();
    let error = error_of(cells);
    assert!(matches!(
        error,
        LayoutError::TooManyCells { count: 256, .. }
    ));
}

#[test]
fn describe_board_lists_every_cell() {
    let text = describe_board(&qemu_virt::BOARD);
    assert!(text.contains("layout linux") && text.contains("layout test-guests"));
    assert!(text.contains("corporate"));
}

/// The board's PCI cells with the default layout's RAM and `devices`.
fn qemu_virt_with(layout: Layout, pci: Option<crate::board::PciHost>) -> &'static Board {
    Box::leak(Box::new(Board {
        layouts: leak(vec![layout]),
        pci,
        ..qemu_virt::BOARD
    }))
}

#[test]
fn pci_functions_behind_the_smmu_need_neither_identity_ram_nor_trust() {
    let remapped = CellConfig {
        memory: leak(vec![CellMemory {
            physical: MemRange::new(0x9000_0000, 768 * MIB),
            placement: GuestPlacement::At(0x4000_0000),
        }]),
        ..qemu_virt::LINUX_CELLS.cells[1]
    };
    let layout = Layout {
        name: "remapped",
        cpu_sharing: None,
        channel: &[],
        cells: leak(vec![remapped]),
    };
    let board = qemu_virt_with(layout, qemu_virt::BOARD.pci);
    validate(board, None, &qemu_platform(), &[]).expect("the SMMU confines the disk's DMA");

    // Without the SMMU the same function's DMA reaches all memory.
    let unconfined = crate::board::PciHost {
        behind_smmu: false,
        ..qemu_virt::PCI_HOST
    };
    let board = qemu_virt_with(layout, Some(unconfined));
    let error = validate(board, None, &qemu_platform(), &[]).unwrap_err();
    assert!(
        matches!(
            error,
            LayoutError::DmaWithoutIdentity {
                device: "virtio-blk-pci",
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn pci_layouts_need_the_smmu_and_the_host_in_the_platform_tree() {
    const NO_SMMU: &[u8] = include_bytes!("../../../tests/data/qemu-virt-gicv3-no-smmu.dtb");
    let platform = crate::setup::platform::parse(NO_SMMU).expect("parses");
    let error = validate(&qemu_virt::BOARD, Some("linux"), &platform, &[]).unwrap_err();
    let message = error.to_string();
    assert!(matches!(
        error,
        LayoutError::SmmuMissing {
            registers: 0x0905_0000,
            ..
        }
    ));
    assert!(
        message.contains("iommu=smmuv3") && message.contains("arm-smmuv3.stage=2"),
        "{message}"
    );
    // The virtio-mmio layout needs no SMMU.
    validate(&qemu_virt::BOARD, Some("linux-mmio"), &platform, &[]).expect("valid");
}

#[test]
fn pci_bar_windows_stay_in_the_host_window_and_apart() {
    let function = |name, base, size| crate::board::PciFunction {
        name,
        bar_window: MemRange::new(base, size),
        ..qemu_virt::VIRTIO_BLK_PCI
    };
    let cases = [
        (vec![function("a", 0x1000_0800, 0x1000)], "not whole pages"),
        (vec![function("a", 0x0fff_f000, 0x2000)], "not whole pages"),
        (
            vec![
                function("a", 0x1000_0000, 0x2000),
                function("b", 0x1000_1000, 0x1000),
            ],
            "overlap",
        ),
    ];
    for (functions, expected) in cases {
        let names: Vec<&'static str> = functions.iter().map(|function| function.name).collect();
        let host = crate::board::PciHost {
            functions: leak(functions),
            ..qemu_virt::PCI_HOST
        };
        let cells: Vec<CellConfig> = names
            .iter()
            .enumerate()
            .map(|(index, &name)| CellConfig {
                devices: leak(vec![name]),
                ..qemu_virt::LINUX_CELLS.cells[index]
            })
            .collect();
        let layout = Layout {
            name: "pci",
            cpu_sharing: None,
            channel: &[],
            cells: leak(cells),
        };
        let board = qemu_virt_with(layout, Some(host));
        let message = validate(board, None, &qemu_platform(), &[])
            .unwrap_err()
            .to_string();
        assert!(message.contains(expected), "{message}");
    }
}

#[test]
fn a_pci_functions_window_and_legacy_interrupt_pass_through_to_its_cell() {
    let partition = validate(&qemu_virt::BOARD, Some("linux"), &qemu_platform(), &[]).unwrap();
    let corporate = crate::dev::passthrough::PassthroughPlan::for_cell(
        &qemu_virt::BOARD,
        &partition,
        &partition.cells[1],
    )
    .unwrap();
    assert_eq!(corporate.direct_pages(), [MemRange::new(0x1000_0000, MIB)]);
    let owners = crate::dev::passthrough::interrupt_owners(&qemu_virt::BOARD, &partition).unwrap();
    // Slot 2 INTA is SPI 5 (INTID 37), slot 3 INTA SPI 6 (INTID 38): the QEMU interrupt-map.
    assert_eq!(owners, [(37, 1), (38, 0)]);
}

#[test]
fn two_cells_pci_functions_on_one_intx_line_are_refused() {
    // Slots 2 and 6 both swizzle INTA to SPI 5 (INTID 37): one line cannot serve two cells.
    let second = crate::board::PciFunction {
        name: "second-disk",
        address: crate::board::PciAddress::new(0, 6, 0),
        bar_window: MemRange::new(0x1020_0000, MIB),
        ..qemu_virt::VIRTIO_BLK_PCI
    };
    let host = crate::board::PciHost {
        functions: leak(vec![qemu_virt::VIRTIO_BLK_PCI, second]),
        ..qemu_virt::PCI_HOST
    };
    let layout = Layout {
        name: "shared-intx",
        cpu_sharing: None,
        channel: &[],
        cells: leak(vec![
            CellConfig {
                devices: &["second-disk"],
                ..qemu_virt::LINUX_CELLS.cells[0]
            },
            qemu_virt::LINUX_CELLS.cells[1],
        ]),
    };
    let board = qemu_virt_with(layout, Some(host));
    let error = validate(board, None, &qemu_platform(), &[]).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, LayoutError::Passthrough { .. }),
        "{message}"
    );
    assert!(message.contains("37"), "names the shared line: {message}");
}

#[test]
fn the_display_windows_must_not_land_on_a_cells_devices_or_under_its_ram() {
    let display = |cell_display: MemRange| crate::board::Display {
        cell_display,
        ..qemu_virt::DISPLAY
    };
    let with = |display: crate::board::Display, cells: Vec<CellConfig>| {
        let board = Board {
            display: Some(display),
            ..board(cells)
        };
        validate(&board, None, &qemu_platform(), &[])
    };
    assert!(with(qemu_virt::DISPLAY, two_cells()).is_ok());
    let error = with(display(MemRange::new(0x0900_0000, 0x1000)), two_cells())
        .expect_err("the PL111 on the UART");
    assert!(
        matches!(
            error,
            LayoutError::EmulatedWindowOverlaps { device: "UART", .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("cell_display"), "{error}");
    let error = with(display(MemRange::new(0x6000_0000, 0x1000)), two_cells())
        .expect_err("the PL111 under personal's RAM");
    assert!(
        matches!(
            error,
            LayoutError::GuestMemoryHidesDevice {
                device: "emulated PL111 display",
                ..
            }
        ),
        "{error}"
    );
}

/// The board's channel with the two-cell layout's flows `flows`.
fn with_channel(
    channel: crate::board::Channel,
    flows: &'static [crate::board::Flow],
) -> Result<Partition, LayoutError> {
    let mut board = board(two_cells());
    board.channel = Some(channel);
    board.layouts = leak(vec![Layout {
        channel: flows,
        ..board.layouts[0]
    }]);
    validate(&board, None, &qemu_platform(), &[])
}

#[test]
fn the_channel_gives_each_member_its_cid_and_keeps_the_flows() {
    let partition = with_channel(qemu_virt::CHANNEL, qemu_virt::DEFAULT_FLOWS).expect("valid");
    let channel = partition.channel.as_ref().expect("a channel");
    assert_eq!(channel.members, [(0, 3), (1, 4)]);
    assert_eq!(channel.flows, qemu_virt::DEFAULT_FLOWS);
    assert_eq!(channel.intid, 152);
    assert_eq!(partition.cid_of(1), Some(4));
    // No flows: no channel, whatever the board has.
    let partition = with_channel(qemu_virt::CHANNEL, &[]).expect("valid");
    assert_eq!(partition.channel, None);
    assert_eq!(partition.cid_of(0), None);
    // The real board's default layout has the policy.
    let partition = validate(&qemu_virt::BOARD, None, &qemu_platform(), &[]).expect("valid");
    assert_eq!(
        partition.channel.as_ref().map(|channel| channel.flows),
        Some(qemu_virt::DEFAULT_FLOWS)
    );
}

#[test]
fn bad_cids_flows_windows_and_interrupts_are_refused_in_one_line() {
    use crate::board::{CellCid, Channel, Flow, FocusRule};
    let flow = Flow {
        from: "corporate",
        to: "personal",
        port: 5000,
        max_message: 256,
        rate_per_second: 20,
        only_while_focused: FocusRule::None,
    };
    let refused = |channel: Channel, flows: Vec<Flow>| {
        let error = with_channel(channel, leak(flows)).expect_err("must be refused");
        let line = error.to_string();
        assert!(
            !line.contains('\n') && line.contains("boards/test-board"),
            "{line}"
        );
        error
    };
    let cids = |pairs: &[(&'static str, u32)]| -> &'static [CellCid] {
        leak(
            pairs
                .iter()
                .map(|&(cell, cid)| CellCid { cell, cid })
                .collect(),
        )
    };
    let channel = qemu_virt::CHANNEL;
    for bad in [
        cids(&[("personal", 2), ("corporate", 4)]),
        cids(&[("personal", 3), ("corporate", 3)]),
        cids(&[("personal", 3), ("corporate", u32::MAX)]),
    ] {
        let error = refused(
            Channel {
                cids: bad,
                ..channel
            },
            vec![flow],
        );
        assert!(matches!(error, LayoutError::BadCid { .. }), "{error}");
    }
    for (bad, why) in [
        (
            Flow {
                from: "nobody",
                ..flow
            },
            "connecting cell",
        ),
        (
            Flow {
                to: "nobody",
                ..flow
            },
            "listening cell",
        ),
        (
            Flow {
                to: "corporate",
                ..flow
            },
            "itself",
        ),
        (
            Flow {
                max_message: 0,
                ..flow
            },
            "max_message",
        ),
        (
            Flow {
                max_message: 65537,
                ..flow
            },
            "max_message",
        ),
        (
            Flow {
                rate_per_second: 0,
                ..flow
            },
            "rate_per_second",
        ),
        (
            Flow {
                port: u32::MAX,
                ..flow
            },
            "VMADDR_PORT_ANY",
        ),
    ] {
        let error = refused(channel, vec![bad]);
        assert!(matches!(error, LayoutError::BadFlow { .. }), "{error}");
        assert!(error.to_string().contains(why), "{error}");
    }
    let error = refused(channel, vec![flow, flow]);
    assert!(error.to_string().contains("repeats"), "{error}");
    // A cell without a CID cannot be in a flow.
    let error = refused(
        Channel {
            cids: cids(&[("personal", 3)]),
            ..channel
        },
        vec![flow],
    );
    assert!(error.to_string().contains("no CID"), "{error}");
    let error = refused(
        Channel {
            cell_window: MemRange::new(0x0C02_0000, 0x100),
            ..channel
        },
        vec![flow],
    );
    assert!(
        matches!(error, LayoutError::ChannelWindowTooSmall { .. }),
        "{error}"
    );
    let error = refused(
        Channel {
            cell_window: MemRange::new(0x0900_0000, 0x200),
            ..channel
        },
        vec![flow],
    );
    assert!(
        matches!(
            error,
            LayoutError::EmulatedWindowOverlaps { device: "UART", .. }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("Channel::cell_window"),
        "{error}"
    );
    let error = refused(
        Channel {
            cell_window: MemRange::new(0x6000_0000, 0x200),
            ..channel
        },
        vec![flow],
    );
    assert!(
        matches!(
            error,
            LayoutError::GuestMemoryHidesDevice {
                device: "emulated virtio-vsock device",
                ..
            }
        ),
        "{error}"
    );
    let error = refused(
        Channel {
            intid: 27,
            ..channel
        },
        vec![flow],
    );
    assert!(
        matches!(error, LayoutError::ChannelInterrupt { owner: None, .. }),
        "{error}"
    );
    // Flows without a board channel.
    let mut board = board(two_cells());
    board.layouts = leak(vec![Layout {
        channel: leak(vec![flow]),
        ..board.layouts[0]
    }]);
    let error = validate(&board, None, &qemu_platform(), &[]).expect_err("no channel");
    assert!(
        matches!(error, LayoutError::ChannelNotOnBoard { .. }),
        "{error}"
    );
}
