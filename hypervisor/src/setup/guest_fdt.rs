//! Generation of each cell's device tree from the platform and the board.
//!
//! A cell's guest sees a plain Arm machine: its RAM at its guest addresses, its vCPUs numbered from
//! 0, the GICv3 (distributor plus one redistributor frame per vCPU), the generic timer, PSCI over
//! HVC, one PL011 at the platform console's address, its passthrough devices and `/chosen`.
//! Nothing else of the platform appears.
//!
//! A passthrough device's node is rebuilt from its [`PlatformDevice`] (an allow-list): node name,
//! `compatible`, `reg` and `dma-coherent` as on the platform, `interrupts` as `<0 spi flags>` for
//! the cell's vGIC (hardware SPIs keep their number). Everything else of the platform node
//! (`iommus`, `msi-parent`, clocks and other phandle references to nodes the cell does not have,
//! PPIs it cannot own) is left out.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use vm_fdt::FdtWriter;

use crate::board::{MemRange, PciAddress};
use crate::dev::gic::{PPI_BASE_INTID, SPI_BASE_INTID};
use crate::dev::vuart;
use crate::mem::addr::GuestPhysAddr;
use crate::setup::partition::CellPlan;
use crate::setup::platform::{COUNTER_ERRATUM_PROPERTY, GuestGicFrames, Platform, PlatformDevice};

/// Phandle of the interrupt controller node.
pub const GIC_PHANDLE: u32 = 1;
/// Phandle of the fixed 24 MHz clock feeding the PL011.
pub const CLOCK_PHANDLE: u32 = 2;
/// The first phandle of the display's nodes (its panel and graph endpoints).
const DISPLAY_PHANDLES: u32 = 0x10;
/// Frequency of the PL011 reference clock (as on QEMU `virt`).
pub const UART_CLOCK_HZ: u32 = 24_000_000;
/// PPI number of the GIC virtual-interface maintenance interrupt (INTID 25).
pub const GIC_MAINTENANCE_PPI: u32 = 9;

/// GIC interrupt specifier type cells.
const SPECIFIER_SPI: u32 = 0;
const SPECIFIER_PPI: u32 = 1;
/// Interrupt flags: level-sensitive, active high.
const LEVEL_HIGH: u32 = 4;

/// What the caller decides about a cell's device tree beyond the plan and platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestDtSpec<'a> {
    /// Kernel command line for `/chosen/bootargs`.
    pub bootargs: &'a str,
    /// Guest-physical start and size of the initrd, if the cell has one.
    pub initrd: Option<(GuestPhysAddr, u64)>,
    /// The cell's view of the PCI host, if it owns PCI functions.
    pub pci: Option<&'a GuestPci>,
    /// The cell's screen and input devices, if the board has them.
    pub display: Option<&'a GuestDisplay>,
    /// The cell's end of the channel between cells, if it is on one.
    pub channel: Option<&'a GuestChannel>,
}

/// What a cell sees of the channel between cells: its virtio-vsock device, and every cell on
/// the channel by name and CID (the node's `cellvisor,cells`, "name:cid" strings, so guest
/// tools can address a cell by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestChannel {
    /// The device's window.
    pub window: MemRange,
    /// Its INTID.
    pub intid: u32,
    /// The cells on the channel.
    pub cells: Vec<(&'static str, u32)>,
}

/// What a cell sees of the phone's screen and input: its emulated PL111 and one emulated
/// virtio-input device per physical input device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestDisplay {
    /// The PL111's window.
    pub window: MemRange,
    /// The panel's width in pixels.
    pub width: u32,
    /// The panel's height in pixels.
    pub height: u32,
    /// Each virtio-input device's window and INTID.
    pub inputs: Vec<(MemRange, u32)>,
}

/// What a cell sees of the PCI host bridge: bus 0 of its own ECAM window, its functions' BAR
/// windows as the host's memory ranges, and their legacy interrupts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestPci {
    /// The cell's ECAM window (bus 0 only: 1 MiB), at the same address as the host's.
    pub ecam: MemRange,
    /// The cell's functions' BAR windows (IPA = PA), each a 32-bit memory range of the host.
    pub windows: Vec<MemRange>,
    /// Each function: where the cell sees it, its interrupt pin (1 = INTA) and that pin's INTID.
    pub functions: Vec<(PciAddress, u8, u32)>,
}

/// The bytes of ECAM space of one bus (32 devices × 8 functions × 4 KiB).
pub const ECAM_BUS_SIZE: u64 = 1 << 20;

impl GuestPci {
    /// The PCI view of the cell of `plan` on `board`: `None` if it owns no PCI function.
    pub fn for_cell(board: &crate::board::Board, plan: &CellPlan) -> Option<GuestPci> {
        let host = board.pci.as_ref()?;
        let functions: Vec<&crate::board::PciFunction> =
            board.pci_functions_of(plan.config).collect();
        if functions.is_empty() {
            return None;
        }
        Some(GuestPci {
            ecam: MemRange::new(host.ecam.base, ECAM_BUS_SIZE),
            windows: functions
                .iter()
                .map(|function| function.bar_window)
                .collect(),
            functions: functions
                .iter()
                .filter_map(|function| {
                    let intid = function.intx_intid(host)?;
                    Some((function.address, function.interrupt_pin, intid))
                })
                .collect(),
        })
    }
}

/// The cell's `interrupt-map-mask`: its entries match the whole device and function (and the pin)
/// rather than relying on the swizzle, so a cell lists exactly its own functions.
const INTERRUPT_MAP_MASK: [u32; 4] = [0xff00, 0, 0, 7];

/// `ranges` space code of 32-bit, non-prefetchable memory (IEEE 1275 PCI binding).
const PCI_SPACE_MEMORY32: u32 = 0x0200_0000;

/// Writes the cell's PCI host node: generic ECAM, bus 0, probe-only (cellvisor assigned the BARs),
/// DMA-coherent, no MSI controller (the cell's functions use their legacy interrupts).
fn write_pci_host(writer: &mut FdtWriter, pci: &GuestPci) -> Result<(), GuestFdtError> {
    let node = writer.begin_node(&format!("pcie@{:x}", pci.ecam.base))?;
    writer.property_string("compatible", "pci-host-ecam-generic")?;
    writer.property_string("device_type", "pci")?;
    writer.property_u32("#address-cells", 3)?;
    writer.property_u32("#size-cells", 2)?;
    writer.property_u32("#interrupt-cells", 1)?;
    writer.property_array_u64("reg", &[pci.ecam.base, pci.ecam.size])?;
    writer.property_array_u32("bus-range", &[0, 0])?;
    writer.property_u32("linux,pci-domain", 0)?;
    writer.property_u32("linux,pci-probe-only", 1)?;
    writer.property_null("dma-coherent")?;
    let mut ranges = Vec::new();
    for window in &pci.windows {
        let high = |value: u64| (value >> 32) as u32;
        ranges.extend([
            PCI_SPACE_MEMORY32,
            high(window.base),
            window.base as u32,
            high(window.base),
            window.base as u32,
            high(window.size),
            window.size as u32,
        ]);
    }
    writer.property_array_u32("ranges", &ranges)?;
    let mut map = Vec::new();
    for &(address, pin, intid) in &pci.functions {
        let spi = intid
            .checked_sub(SPI_BASE_INTID)
            .ok_or(GuestFdtError::ValueTooLarge("PCI interrupt SPI"))?;
        let devfn =
            (u32::from(address.device & 0x1f) << 11) | (u32::from(address.function & 7) << 8);
        // Child: <phys.hi 0 0 pin>; parent: the GIC with its two address cells, then <SPI n level>.
        map.extend([devfn, 0, 0, u32::from(pin), GIC_PHANDLE, 0, 0]);
        map.extend([SPECIFIER_SPI, spi, LEVEL_HIGH]);
    }
    writer.property_array_u32("interrupt-map-mask", &INTERRUPT_MAP_MASK)?;
    writer.property_array_u32("interrupt-map", &map)?;
    writer.end_node(node)?;
    Ok(())
}

/// Why a cell's device tree could not be generated.
#[derive(Debug, PartialEq, Eq)]
pub enum GuestFdtError {
    /// The platform GIC has neither a GICv3 redistributor region nor GICv2 virtualization frames.
    NoRedistributors,
    /// A number does not fit the cell it must be written in.
    ValueTooLarge(&'static str),
    /// The initrd's end wraps the address space.
    InitrdWraps {
        /// Guest-physical start.
        start: GuestPhysAddr,
        /// Size in bytes.
        size: u64,
    },
    /// The device-tree writer refused (e.g. a NUL inside the bootargs).
    Writer(vm_fdt::Error),
    /// A passthrough device's node has the name of a node cellvisor writes itself (or of another
    /// passthrough device).
    DuplicateNode(String),
}

impl fmt::Display for GuestFdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoRedistributors => write!(
                f,
                "guest device tree needs a GICv3 redistributor region or a GICv2 with virtualization: run on such a platform"
            ),
            Self::ValueTooLarge(what) => write!(
                f,
                "guest device tree: {what} does not fit its 32-bit cell: check the platform device tree"
            ),
            Self::InitrdWraps { start, size } => write!(
                f,
                "guest initrd at {start} of {size:#x} bytes wraps the address space: place it lower"
            ),
            Self::Writer(error) => write!(
                f,
                "guest device tree could not be written ({error}): remove NUL characters from bootargs"
            ),
            Self::DuplicateNode(name) => write!(
                f,
                "guest device tree would have two nodes named {name}: do not pass through a device \
                 cellvisor emulates, or the same device twice"
            ),
        }
    }
}

impl From<vm_fdt::Error> for GuestFdtError {
    fn from(error: vm_fdt::Error) -> Self {
        Self::Writer(error)
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| String::from(*value)).collect()
}

/// The PPI number (DT numbering) of a PPI INTID.
fn ppi_number(intid: u32) -> Result<u32, GuestFdtError> {
    intid
        .checked_sub(PPI_BASE_INTID)
        .filter(|number| *number < 16)
        .ok_or(GuestFdtError::ValueTooLarge("timer PPI"))
}

/// Builds the flattened device tree for one cell, without passthrough devices.
pub fn generate(
    plan: &CellPlan,
    platform: &Platform,
    spec: &GuestDtSpec<'_>,
) -> Result<Vec<u8>, GuestFdtError> {
    generate_with_passthrough(plan, platform, spec, &[])
}

/// Writes one passthrough device node (see the module documentation for what is kept).
fn write_passthrough_device(
    writer: &mut FdtWriter,
    device: &PlatformDevice,
) -> Result<(), GuestFdtError> {
    let node = writer.begin_node(&device.name)?;
    writer.property_string_list("compatible", device.compatible.clone())?;
    let reg: Vec<u64> = device
        .registers
        .iter()
        .flat_map(|window| [window.base, window.size])
        .collect();
    writer.property_array_u64("reg", &reg)?;
    let interrupts: Vec<u32> = device
        .interrupts
        .iter()
        .filter(|interrupt| interrupt.is_spi() && interrupt.intid().is_some())
        .flat_map(|interrupt| [SPECIFIER_SPI, interrupt.number, interrupt.flags])
        .collect();
    if !interrupts.is_empty() {
        writer.property_array_u32("interrupts", &interrupts)?;
    }
    if device.dma_coherent {
        writer.property_null("dma-coherent")?;
    }
    writer.end_node(node)?;
    Ok(())
}

/// Builds the flattened device tree for one cell with the platform nodes of its passthrough
/// devices (from [`crate::dev::passthrough::PassthroughPlan::device_nodes`]) under the root.
pub fn generate_with_passthrough(
    plan: &CellPlan,
    platform: &Platform,
    spec: &GuestDtSpec<'_>,
    passthrough: &[PlatformDevice],
) -> Result<Vec<u8>, GuestFdtError> {
    let gic_frames = platform
        .gic
        .guest_frames(plan.vcpus.len())
        .ok_or(GuestFdtError::NoRedistributors)?;
    let uart = platform.console;
    let uart_spi = uart
        .intid
        .checked_sub(SPI_BASE_INTID)
        .ok_or(GuestFdtError::ValueTooLarge("UART SPI"))?;
    let uart_path = format!("/pl011@{:x}", uart.registers.base);

    let mut writer = FdtWriter::new()?;
    let root = writer.begin_node("")?;
    writer.property_u32("#address-cells", 2)?;
    writer.property_u32("#size-cells", 2)?;
    writer.property_string("compatible", "linux,dummy-virt")?;
    writer.property_string("model", &format!("cellvisor cell {}", plan.name))?;
    writer.property_u32("interrupt-parent", GIC_PHANDLE)?;

    for region in &plan.memory {
        let memory = writer.begin_node(&format!("memory@{:x}", region.guest_base.raw()))?;
        writer.property_string("device_type", "memory")?;
        writer.property_array_u64("reg", &[region.guest_base.raw(), region.physical.size()])?;
        writer.end_node(memory)?;
    }

    let cpus = writer.begin_node("cpus")?;
    writer.property_u32("#address-cells", 1)?;
    writer.property_u32("#size-cells", 0)?;
    for vcpu in &plan.vcpus {
        let mpidr = u32::try_from(vcpu.virtual_mpidr)
            .map_err(|_| GuestFdtError::ValueTooLarge("vCPU MPIDR"))?;
        let cpu = writer.begin_node(&format!("cpu@{mpidr:x}"))?;
        writer.property_string("device_type", "cpu")?;
        writer.property_string("compatible", "arm,armv8")?;
        writer.property_u32("reg", mpidr)?;
        writer.property_string("enable-method", "psci")?;
        writer.end_node(cpu)?;
    }
    writer.end_node(cpus)?;

    let psci = writer.begin_node("psci")?;
    writer.property_string_list("compatible", strings(&["arm,psci-1.0", "arm,psci-0.2"]))?;
    writer.property_string("method", "hvc")?;
    writer.end_node(psci)?;

    let gic = match gic_frames {
        GuestGicFrames::V3 {
            distributor,
            redistributors,
        } => {
            let gic = writer.begin_node(&format!("intc@{:x}", distributor.base))?;
            writer.property_string("compatible", "arm,gic-v3")?;
            writer.property_array_u64(
                "reg",
                &[
                    distributor.base,
                    distributor.size,
                    redistributors.base,
                    redistributors.size,
                ],
            )?;
            gic
        }
        GuestGicFrames::V2 {
            distributor,
            cpu_interface,
            ..
        } => {
            // A GIC-400 without virtualization frames of its own: the guest is not a hypervisor.
            let gic = writer.begin_node(&format!("intc@{:x}", distributor.base))?;
            writer.property_string("compatible", "arm,gic-400")?;
            writer.property_array_u64(
                "reg",
                &[
                    distributor.base,
                    distributor.size,
                    cpu_interface.base,
                    cpu_interface.size,
                ],
            )?;
            gic
        }
    };
    writer.property_u32("#interrupt-cells", 3)?;
    // As on QEMU: dtc expects an interrupt provider to state #address-cells.
    writer.property_u32("#address-cells", 2)?;
    writer.property_u32("#size-cells", 2)?;
    writer.property_null("ranges")?;
    writer.property_null("interrupt-controller")?;
    if matches!(gic_frames, GuestGicFrames::V3 { .. }) {
        writer.property_u32("#redistributor-regions", 1)?;
        writer.property_array_u32(
            "interrupts",
            &[SPECIFIER_PPI, GIC_MAINTENANCE_PPI, LEVEL_HIGH],
        )?;
    }
    writer.property_phandle(GIC_PHANDLE)?;
    writer.end_node(gic)?;

    let timer_ppis = [
        ppi_number(platform.timer.secure_physical)?,
        ppi_number(platform.timer.nonsecure_physical)?,
        ppi_number(platform.timer.virtual_timer)?,
        ppi_number(platform.timer.hypervisor_physical)?,
    ];
    let timer_interrupts: Vec<u32> = timer_ppis
        .iter()
        .flat_map(|ppi| [SPECIFIER_PPI, *ppi, LEVEL_HIGH])
        .collect();
    let timer = writer.begin_node("timer")?;
    writer.property_string("compatible", "arm,armv8-timer")?;
    writer.property_array_u32("interrupts", &timer_interrupts)?;
    writer.property_null("always-on")?;
    if platform.timer.counter_erratum {
        // The cell's vCPUs read the same counter: its kernel must work around the erratum too.
        writer.property_null(COUNTER_ERRATUM_PROPERTY)?;
    }
    writer.end_node(timer)?;

    let clock = writer.begin_node("apb-pclk")?;
    writer.property_string("compatible", "fixed-clock")?;
    writer.property_u32("#clock-cells", 0)?;
    writer.property_u32("clock-frequency", UART_CLOCK_HZ)?;
    writer.property_string("clock-output-names", "clk24mhz")?;
    writer.property_phandle(CLOCK_PHANDLE)?;
    writer.end_node(clock)?;

    let pl011 = writer.begin_node(&uart_path[1..])?;
    writer.property_string_list("compatible", strings(&["arm,pl011", "arm,primecell"]))?;
    writer.property_array_u64("reg", &[uart.registers.base, uart.registers.size])?;
    // The window is the platform UART's, which may be smaller than a PL011's 4 KiB frame (the
    // BCM2711's is 0x200, a 16550's often 0x400), so the ID registers at its end are not where a
    // PrimeCell driver looks for them: name the ID outright, as the BCM2711's own tree does.
    writer.property_u32("arm,primecell-periphid", vuart::PERIPHERAL_ID)?;
    writer.property_array_u32("interrupts", &[SPECIFIER_SPI, uart_spi, LEVEL_HIGH])?;
    writer.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
    writer.property_string_list("clock-names", strings(&["uartclk", "apb_pclk"]))?;
    writer.end_node(pl011)?;

    let own_nodes = [
        format!("intc@{:x}", platform.gic.distributor.base),
        String::from(&uart_path[1..]),
    ];
    for (position, device) in passthrough.iter().enumerate() {
        let reserved = [
            "memory", "cpus", "psci", "timer", "apb-pclk", "chosen", "aliases",
        ];
        let base_name = device.name.split('@').next().unwrap_or(&device.name);
        if own_nodes.contains(&device.name)
            || reserved.contains(&base_name)
            || passthrough[..position]
                .iter()
                .any(|earlier| earlier.name == device.name)
        {
            return Err(GuestFdtError::DuplicateNode(device.name.clone()));
        }
        write_passthrough_device(&mut writer, device)?;
    }
    if let Some(pci) = spec.pci {
        write_pci_host(&mut writer, pci)?;
    }
    if let Some(display) = spec.display {
        let mut next_phandle = DISPLAY_PHANDLES;
        crate::setup::display_fdt::write_display(
            &mut writer,
            (display.window.base, display.window.size),
            display.width,
            display.height,
            CLOCK_PHANDLE,
            &mut next_phandle,
        )?;
        for &(window, intid) in &display.inputs {
            crate::setup::display_fdt::write_virtio_mmio(
                &mut writer,
                window.base,
                window.size,
                intid,
                None,
            )?;
        }
    }
    if let Some(channel) = spec.channel {
        let cells: Vec<String> = channel
            .cells
            .iter()
            .map(|(name, cid)| alloc::format!("{name}:{cid}"))
            .collect();
        crate::setup::display_fdt::write_virtio_mmio(
            &mut writer,
            channel.window.base,
            channel.window.size,
            channel.intid,
            Some(("cellvisor,cells", cells)),
        )?;
    }

    let chosen = writer.begin_node("chosen")?;
    writer.property_string("bootargs", spec.bootargs)?;
    writer.property_string("stdout-path", &uart_path)?;
    if spec.pci.is_some() {
        // Older kernels read it here, newer ones from the host node too: the BARs are final.
        writer.property_u32("linux,pci-probe-only", 1)?;
    }
    if let Some((start, size)) = spec.initrd {
        let end = start
            .checked_add(size)
            .ok_or(GuestFdtError::InitrdWraps { start, size })?;
        writer.property_u64("linux,initrd-start", start.raw())?;
        writer.property_u64("linux,initrd-end", end.raw())?;
    }
    writer.end_node(chosen)?;

    writer.end_node(root)?;
    Ok(writer.finish()?)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::setup::partition::{Partition, validate};
    use crate::setup::platform::{self, Platform};
    use alloc::string::ToString;
    use alloc::vec;
    use fdt::Fdt;
    use fdt::helpers::UnalignedFallibleNode;

    const DTB: &[u8] = include_bytes!("../../tests/data/qemu-virt-gicv3.dtb");

    fn platform() -> Platform {
        platform::parse(DTB).expect("fixture parses")
    }

    fn partition(layout: &str) -> Partition {
        validate(
            &crate::setup::partition::qemu_virt::BOARD,
            Some(layout),
            &platform(),
            &[],
        )
        .expect("valid")
    }

    /// Every property of the tree as `(node path, property name, value)`, in tree order.
    pub(crate) fn flatten(dtb: &[u8]) -> Vec<(String, String, Vec<u8>)> {
        fn walk(
            node: UnalignedFallibleNode<'_>,
            path: &str,
            out: &mut Vec<(String, String, Vec<u8>)>,
        ) {
            for property in node.properties().unwrap().iter() {
                let property = property.unwrap();
                out.push((
                    path.to_string(),
                    property.name.to_string(),
                    property.value.to_vec(),
                ));
            }
            for child in node.children().unwrap() {
                let child = child.unwrap();
                let name = child.name().unwrap().to_string();
                walk(
                    child,
                    &format!("{}/{name}", path.trim_end_matches('/')),
                    out,
                );
            }
        }
        let tree = Fdt::new_unaligned_fallible(dtb).unwrap();
        let mut out = Vec::new();
        walk(tree.find_node("/").unwrap().unwrap(), "/", &mut out);
        out
    }

    pub(crate) fn property<'a>(
        flat: &'a [(String, String, Vec<u8>)],
        path: &str,
        name: &str,
    ) -> &'a [u8] {
        flat.iter()
            .find(|(node, property, _)| node == path && property == name)
            .map(|(_, _, value)| value.as_slice())
            .unwrap_or_else(|| panic!("{path} {name} missing"))
    }

    fn cells(values: &[u32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|value| value.to_be_bytes())
            .collect()
    }

    fn cells64(values: &[u64]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|value| value.to_be_bytes())
            .collect()
    }

    fn string_list(values: &[&str]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|value| value.bytes().chain([0]))
            .collect()
    }

    #[test]
    fn linux_cell_tree_has_every_item() {
        let partition = partition("linux");
        let plan = &partition.cells[1];
        let spec = GuestDtSpec {
            bootargs: "console=ttyAMA0",
            initrd: Some((GuestPhysAddr::new(0x9800_0000), 0x10_0000)),
            pci: None,
            display: None,
            channel: None,
        };
        let dtb = generate(plan, &platform(), &spec).unwrap();
        let flat = flatten(&dtb);

        assert_eq!(property(&flat, "/", "#address-cells"), cells(&[2]));
        assert_eq!(property(&flat, "/", "#size-cells"), cells(&[2]));
        assert_eq!(
            property(&flat, "/", "compatible"),
            string_list(&["linux,dummy-virt"])
        );
        assert_eq!(
            property(&flat, "/", "model"),
            string_list(&["cellvisor cell corporate"])
        );
        assert_eq!(
            property(&flat, "/", "interrupt-parent"),
            cells(&[GIC_PHANDLE])
        );

        assert_eq!(
            property(&flat, "/memory@40000000", "device_type"),
            string_list(&["memory"])
        );
        assert_eq!(
            property(&flat, "/memory@40000000", "reg"),
            cells64(&[0x4000_0000, 768 << 20])
        );

        assert_eq!(property(&flat, "/cpus", "#address-cells"), cells(&[1]));
        assert_eq!(property(&flat, "/cpus", "#size-cells"), cells(&[0]));
        for n in 0..2u32 {
            let path = format!("/cpus/cpu@{n}");
            assert_eq!(property(&flat, &path, "reg"), cells(&[n]));
            assert_eq!(property(&flat, &path, "device_type"), string_list(&["cpu"]));
            assert_eq!(
                property(&flat, &path, "compatible"),
                string_list(&["arm,armv8"])
            );
            assert_eq!(
                property(&flat, &path, "enable-method"),
                string_list(&["psci"])
            );
        }
        assert!(!flat.iter().any(|(node, _, _)| node == "/cpus/cpu@2"));

        assert_eq!(
            property(&flat, "/psci", "compatible"),
            string_list(&["arm,psci-1.0", "arm,psci-0.2"])
        );
        assert_eq!(property(&flat, "/psci", "method"), string_list(&["hvc"]));

        let gic = "/intc@8000000";
        assert_eq!(
            property(&flat, gic, "compatible"),
            string_list(&["arm,gic-v3"])
        );
        assert_eq!(
            property(&flat, gic, "reg"),
            cells64(&[0x0800_0000, 0x1_0000, 0x080A_0000, 2 * 0x2_0000])
        );
        assert_eq!(property(&flat, gic, "#interrupt-cells"), cells(&[3]));
        assert_eq!(property(&flat, gic, "#address-cells"), cells(&[2]));
        assert_eq!(property(&flat, gic, "interrupt-controller"), b"");
        assert_eq!(property(&flat, gic, "#redistributor-regions"), cells(&[1]));
        assert_eq!(property(&flat, gic, "interrupts"), cells(&[1, 9, 4]));
        assert_eq!(property(&flat, gic, "phandle"), cells(&[GIC_PHANDLE]));

        assert_eq!(
            property(&flat, "/timer", "compatible"),
            string_list(&["arm,armv8-timer"])
        );
        assert_eq!(
            property(&flat, "/timer", "interrupts"),
            cells(&[1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4])
        );
        assert_eq!(property(&flat, "/timer", "always-on"), b"");

        assert_eq!(
            property(&flat, "/apb-pclk", "compatible"),
            string_list(&["fixed-clock"])
        );
        assert_eq!(
            property(&flat, "/apb-pclk", "clock-frequency"),
            cells(&[24_000_000])
        );
        assert_eq!(property(&flat, "/apb-pclk", "#clock-cells"), cells(&[0]));
        assert_eq!(
            property(&flat, "/apb-pclk", "phandle"),
            cells(&[CLOCK_PHANDLE])
        );

        let uart = "/pl011@9000000";
        assert_eq!(
            property(&flat, uart, "compatible"),
            string_list(&["arm,pl011", "arm,primecell"])
        );
        assert_eq!(
            property(&flat, uart, "reg"),
            cells64(&[0x0900_0000, 0x1000])
        );
        assert_eq!(property(&flat, uart, "interrupts"), cells(&[0, 1, 4]));
        assert_eq!(
            property(&flat, uart, "arm,primecell-periphid"),
            cells(&[0x0014_1011])
        );
        assert_eq!(
            property(&flat, uart, "clocks"),
            cells(&[CLOCK_PHANDLE, CLOCK_PHANDLE])
        );
        assert_eq!(
            property(&flat, uart, "clock-names"),
            string_list(&["uartclk", "apb_pclk"])
        );

        assert_eq!(
            property(&flat, "/chosen", "bootargs"),
            string_list(&["console=ttyAMA0"])
        );
        assert_eq!(
            property(&flat, "/chosen", "stdout-path"),
            string_list(&[uart])
        );
        assert_eq!(
            property(&flat, "/chosen", "linux,initrd-start"),
            cells64(&[0x9800_0000])
        );
        assert_eq!(
            property(&flat, "/chosen", "linux,initrd-end"),
            cells64(&[0x9810_0000])
        );

        // Exactly these nodes, nothing else from the platform (no virtio, flash, PCIe, ITS, ...).
        let mut nodes: Vec<&str> = flat.iter().map(|(node, _, _)| node.as_str()).collect();
        nodes.dedup();
        assert_eq!(
            nodes,
            [
                "/",
                "/memory@40000000",
                "/cpus",
                "/cpus/cpu@0",
                "/cpus/cpu@1",
                "/psci",
                gic,
                "/timer",
                "/apb-pclk",
                uart,
                "/chosen"
            ]
        );
    }

    #[test]
    fn output_is_readable_by_cellvisors_own_platform_parser() {
        let partition = partition("linux");
        let spec = GuestDtSpec {
            bootargs: "console=ttyAMA0 cellvisor.layout=nested",
            initrd: Some((GuestPhysAddr::new(0x6800_0000), 0x2000)),
            pci: None,
            display: None,
            channel: None,
        };
        let dtb = generate(&partition.cells[0], &platform(), &spec).unwrap();
        let seen = platform::parse(&dtb).unwrap();
        assert_eq!(seen.cpus.len(), 2);
        assert_eq!(seen.psci_method, Some(platform::PsciMethod::Hvc));
        assert_eq!(
            seen.memory,
            [crate::board::MemRange::new(0x6000_0000, 768 << 20)]
        );
        assert_eq!(seen.console, platform().console);
        assert_eq!(seen.timer.virtual_timer, 27);
        assert_eq!(
            seen.initrd,
            Some(crate::board::MemRange::new(0x6800_0000, 0x2000))
        );
        assert_eq!(seen.layout_name(), Some("nested"));
        assert!(seen.virtio_mmio.is_empty());
    }

    #[test]
    fn cells_differ_only_where_they_should() {
        let partition = partition("test-guests");
        let spec = GuestDtSpec {
            bootargs: "",
            initrd: None,
            pci: None,
            display: None,
            channel: None,
        };
        let personal = flatten(&generate(&partition.cells[0], &platform(), &spec).unwrap());
        let corporate = flatten(&generate(&partition.cells[1], &platform(), &spec).unwrap());
        assert_eq!(personal.len(), corporate.len());
        let differences: Vec<(&str, &str)> = personal
            .iter()
            .zip(&corporate)
            .filter(|(a, b)| a != b)
            .map(|(a, _)| (a.0.as_str(), a.1.as_str()))
            .collect();
        // Both see 64 MiB at 0x4000_0000 and two vCPUs; only the name differs.
        assert_eq!(differences, vec![("/", "model")]);
        assert!(
            !personal
                .iter()
                .any(|(_, name, _)| name.starts_with("linux,initrd"))
        );
    }

    #[test]
    fn a_cell_with_pci_functions_sees_a_probe_only_host_of_its_own_functions() {
        let partition = partition("linux");
        let board = &crate::setup::partition::qemu_virt::BOARD;
        let corporate = &partition.cells[1];
        let pci = GuestPci::for_cell(board, corporate).expect("corporate owns a PCI function");
        assert_eq!(
            pci,
            GuestPci {
                ecam: MemRange::new(0x40_1000_0000, 1 << 20),
                windows: vec![MemRange::new(0x1000_0000, 1 << 20)],
                functions: vec![(PciAddress::new(0, 2, 0), 1, 37)],
            }
        );
        let spec = GuestDtSpec {
            bootargs: "",
            initrd: None,
            pci: Some(&pci),
            display: None,
            channel: None,
        };
        let flat = flatten(&generate(corporate, &platform(), &spec).unwrap());
        let host = "/pcie@4010000000";
        assert_eq!(
            property(&flat, host, "compatible"),
            b"pci-host-ecam-generic\0"
        );
        assert_eq!(
            property(&flat, host, "reg"),
            cells64(&[0x40_1000_0000, 1 << 20])
        );
        assert_eq!(property(&flat, host, "bus-range"), cells(&[0, 0]));
        assert_eq!(property(&flat, host, "linux,pci-probe-only"), cells(&[1]));
        assert_eq!(
            property(&flat, "/chosen", "linux,pci-probe-only"),
            cells(&[1])
        );
        assert_eq!(
            property(&flat, host, "ranges"),
            cells(&[0x0200_0000, 0, 0x1000_0000, 0, 0x1000_0000, 0, 1 << 20])
        );
        // 00:02.0 INTA -> the GIC's SPI 5, level (the host swizzle of QEMU virt's map).
        assert_eq!(
            property(&flat, host, "interrupt-map"),
            cells(&[0x1000, 0, 0, 1, GIC_PHANDLE, 0, 0, 0, 5, 4])
        );
        assert_eq!(
            property(&flat, host, "interrupt-map-mask"),
            cells(&[0xff00, 0, 0, 7])
        );
        // No MSI controller, no IOMMU: the cell sees neither.
        assert!(
            !flat.iter().any(|(_, name, _)| name == "msi-map"
                || name == "iommu-map"
                || name == "msi-parent")
        );
        // The personal cell sees only its own function's window.
        let personal = GuestPci::for_cell(board, &partition.cells[0]).unwrap();
        assert_eq!(personal.windows, [MemRange::new(0x1010_0000, 1 << 20)]);
        assert_eq!(personal.functions, [(PciAddress::new(0, 3, 0), 1, 38)]);
        assert!(
            GuestPci::for_cell(board, &super::tests::partition("test-guests").cells[0]).is_none()
        );
    }

    fn passthrough_nodes(cell: usize) -> (Partition, Vec<PlatformDevice>) {
        let partition = partition("linux-mmio");
        let plan = crate::dev::passthrough::PassthroughPlan::for_cell(
            &crate::setup::partition::qemu_virt::BOARD,
            &partition,
            &partition.cells[cell],
        )
        .unwrap();
        let nodes = plan.device_nodes(&platform()).unwrap();
        (partition, nodes)
    }

    #[test]
    fn passthrough_device_nodes_are_copied_for_the_cells_vgic() {
        let spec = GuestDtSpec {
            bootargs: "",
            initrd: None,
            pci: None,
            display: None,
            channel: None,
        };
        let (partition, corporate_devices) = passthrough_nodes(1);
        let dtb =
            generate_with_passthrough(&partition.cells[1], &platform(), &spec, &corporate_devices)
                .unwrap();
        let flat = flatten(&dtb);
        let node = "/virtio_mmio@a003e00";
        assert_eq!(
            property(&flat, node, "compatible"),
            string_list(&["virtio,mmio"])
        );
        assert_eq!(property(&flat, node, "reg"), cells64(&[0x0A00_3E00, 0x200]));
        assert_eq!(property(&flat, node, "interrupts"), cells(&[0, 47, 1]));
        assert_eq!(property(&flat, node, "dma-coherent"), b"");
        let names: Vec<&str> = flat
            .iter()
            .filter(|(path, _, _)| path == node)
            .map(|(_, name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["compatible", "reg", "interrupts", "dma-coherent"]);
        // Only the cell's own slot: not personal's, not any of the other 30.
        let virtio_nodes: Vec<&str> = flat
            .iter()
            .map(|(path, _, _)| path.as_str())
            .filter(|path| path.starts_with("/virtio_mmio@"))
            .collect();
        assert!(virtio_nodes.iter().all(|path| *path == node));

        // cellvisor's own parser sees exactly the one transport with the platform's INTID.
        let seen = platform::parse(&dtb).unwrap();
        assert_eq!(
            seen.virtio_mmio,
            [platform::VirtioMmio {
                registers: crate::board::MemRange::new(0x0A00_3E00, 0x200),
                intid: 79
            }]
        );
        assert_eq!(seen.device_node(0x0A00_3E00), Some(&corporate_devices[0]));

        let (partition, personal_devices) = passthrough_nodes(0);
        let dtb =
            generate_with_passthrough(&partition.cells[0], &platform(), &spec, &personal_devices)
                .unwrap();
        let seen = platform::parse(&dtb).unwrap();
        assert_eq!(seen.virtio_mmio.len(), 1);
        assert_eq!(seen.virtio_mmio[0].intid, 78);
        assert_eq!(seen.device_node(0x0A00_3E00), None);

        // Without passthrough the tree is what `generate` makes.
        assert_eq!(
            generate_with_passthrough(&partition.cells[0], &platform(), &spec, &[]).unwrap(),
            generate(&partition.cells[0], &platform(), &spec).unwrap()
        );
    }

    #[test]
    fn passthrough_nodes_drop_what_the_cell_cannot_use() {
        use crate::board::MemRange;
        use crate::setup::platform::GicInterrupt;
        let partition = partition("linux");
        let spec = GuestDtSpec {
            bootargs: "",
            initrd: None,
            pci: None,
            display: None,
            channel: None,
        };
        // A device whose platform node also lists a PPI and has two windows and no dma-coherent.
        let device = PlatformDevice {
            name: "ethernet@10000000".into(),
            compatible: vec!["vendor,eth".into(), "generic,eth".into()],
            registers: vec![
                MemRange::new(0x1000_0000, 0x1000),
                MemRange::new(0x1001_0000, 0x100),
            ],
            interrupts: vec![
                GicInterrupt {
                    kind: 0,
                    number: 100,
                    flags: 4,
                },
                GicInterrupt {
                    kind: 1,
                    number: 7,
                    flags: 4,
                },
            ],
            dma_coherent: false,
        };
        let dtb = generate_with_passthrough(
            &partition.cells[1],
            &platform(),
            &spec,
            core::slice::from_ref(&device),
        )
        .unwrap();
        let flat = flatten(&dtb);
        let node = "/ethernet@10000000";
        assert_eq!(
            property(&flat, node, "compatible"),
            string_list(&["vendor,eth", "generic,eth"])
        );
        assert_eq!(
            property(&flat, node, "reg"),
            cells64(&[0x1000_0000, 0x1000, 0x1001_0000, 0x100])
        );
        assert_eq!(property(&flat, node, "interrupts"), cells(&[0, 100, 4]));
        assert!(
            !flat
                .iter()
                .any(|(path, name, _)| path == node && name == "dma-coherent")
        );

        // A node cellvisor writes itself, or the same device twice, is refused.
        let mut uart = device.clone();
        uart.name = "pl011@9000000".into();
        let mut chosen = device.clone();
        chosen.name = "chosen".into();
        for devices in [vec![uart], vec![chosen], vec![device.clone(), device]] {
            let error =
                generate_with_passthrough(&partition.cells[1], &platform(), &spec, &devices)
                    .unwrap_err();
            assert!(matches!(error, GuestFdtError::DuplicateNode(_)));
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn a_gicv2_platform_gives_the_cell_a_gic_400_with_its_cpu_interface() {
        const GICV2: &[u8] = include_bytes!("../../tests/data/qemu-virt-gicv2.dtb");
        let platform = platform::parse(GICV2).expect("fixture parses");
        let partition = validate(
            &crate::setup::partition::qemu_virt::BOARD,
            Some("linux-mmio"),
            &platform,
            &[],
        )
        .expect("valid on GICv2");
        let spec = GuestDtSpec {
            bootargs: "",
            initrd: None,
            pci: None,
            display: None,
            channel: None,
        };
        let flat = flatten(&generate(&partition.cells[0], &platform, &spec).unwrap());
        let gic = "/intc@8000000";
        assert_eq!(
            property(&flat, gic, "compatible"),
            string_list(&["arm,gic-400"])
        );
        assert_eq!(
            property(&flat, gic, "reg"),
            cells64(&[0x0800_0000, 0x1000, 0x0801_0000, 0x2000])
        );
        assert_eq!(property(&flat, gic, "#interrupt-cells"), cells(&[3]));
        assert!(
            !flat
                .iter()
                .any(|(path, name, _)| path == gic && name == "#redistributor-regions"),
            "no GICv3 properties"
        );
    }

    #[test]
    fn a_cell_on_a_counter_with_the_a64_erratum_is_told_so_and_others_are_not() {
        let partition = partition("linux");
        let spec = GuestDtSpec {
            bootargs: "",
            initrd: None,
            pci: None,
            display: None,
            channel: None,
        };
        let has_erratum = |platform: &Platform| {
            flatten(&generate(&partition.cells[0], platform, &spec).unwrap())
                .iter()
                .any(|(path, name, _)| path == "/timer" && name == COUNTER_ERRATUM_PROPERTY)
        };
        let mut a64 = platform();
        assert!(!has_erratum(&a64));
        a64.timer.counter_erratum = true;
        assert!(has_erratum(&a64));
    }

    #[test]
    fn a_cell_on_the_channel_sees_its_vsock_transport_and_every_cell_by_name_and_cid() {
        let partition = partition("linux");
        let channel = GuestChannel {
            window: MemRange::new(0x0C02_0000, 0x200),
            intid: 152,
            cells: alloc::vec![("personal", 3), ("corporate", 4)],
        };
        let spec = GuestDtSpec {
            bootargs: "",
            initrd: None,
            pci: None,
            display: None,
            channel: Some(&channel),
        };
        let flat = flatten(&generate(&partition.cells[0], &platform(), &spec).unwrap());
        let node = "/virtio_mmio@c020000";
        assert_eq!(
            property(&flat, node, "compatible"),
            string_list(&["virtio,mmio"])
        );
        assert_eq!(property(&flat, node, "reg"), cells64(&[0x0C02_0000, 0x200]));
        assert_eq!(property(&flat, node, "interrupts"), cells(&[0, 120, 4]));
        assert_eq!(
            property(&flat, node, "cellvisor,cells"),
            string_list(&["personal:3", "corporate:4"])
        );
        // Without a channel, no such node.
        let spec = GuestDtSpec {
            channel: None,
            ..spec
        };
        let flat = flatten(&generate(&partition.cells[0], &platform(), &spec).unwrap());
        assert!(!flat.iter().any(|(path, _, _)| path == node));
    }

    #[test]
    fn refuses_a_gic_without_guest_frames_and_nul_in_bootargs() {
        let partition = partition("linux");
        let mut gicv2 = platform();
        gicv2.gic.redistributor_regions.clear();
        let spec = GuestDtSpec {
            bootargs: "",
            initrd: None,
            pci: None,
            display: None,
            channel: None,
        };
        assert_eq!(
            generate(&partition.cells[0], &gicv2, &spec),
            Err(GuestFdtError::NoRedistributors)
        );
        let nul = GuestDtSpec {
            bootargs: "a\0b",
            initrd: None,
            pci: None,
            display: None,
            channel: None,
        };
        let error = generate(&partition.cells[0], &platform(), &nul).unwrap_err();
        assert_eq!(error, GuestFdtError::Writer(vm_fdt::Error::InvalidString));
        assert!(!error.to_string().contains('\n'));
        let wrapping = GuestDtSpec {
            bootargs: "",
            initrd: Some((GuestPhysAddr::new(u64::MAX), 2)),
            pci: None,
            display: None,
            channel: None,
        };
        assert!(matches!(
            generate(&partition.cells[0], &platform(), &wrapping),
            Err(GuestFdtError::InitrdWraps { .. })
        ));
    }
}
