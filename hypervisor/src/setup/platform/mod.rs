//! Reading the platform device tree: RAM, CPUs, GIC, UART, PSCI method, timer.
//!
//! [`parse`] turns the device tree the boot loader passed in `x0` into a [`Platform`] value. Nodes
//! directly under the root are read, and so are the nodes under `simple-bus` buses (`/soc`),
//! recursively: their `reg` is carried up through every ancestor bus's `ranges` (an empty `ranges`
//! is the identity). An address no `ranges` entry covers is refused with
//! [`PlatformError::UntranslatableAddress`], a bus without `ranges` with
//! [`PlatformError::TranslatedAddress`], rather than silently misread.
#![forbid(unsafe_code)]

mod chosen;
mod cpus;
mod devices;
mod error;
mod gic;
mod properties;
mod translate;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use fdt::Fdt;

use crate::board::MemRange;

pub use chosen::{Uart, UartKind};
pub use cpus::{Cpu, EnableMethod, PsciMethod};
pub use devices::{
    COUNTER_ERRATUM_PROPERTY, GicInterrupt, PlatformDevice, TimerInterrupts, VirtioMmio,
};
pub use error::PlatformError;
pub use gic::{Gic, GicV2Frames, GicVersion, GuestGicFrames};

use chosen::{read_console, read_initrd};
use cpus::{read_cpus, read_psci_method};
use devices::{read_device, read_timer};
use gic::{gic_version, read_gic};
use properties::{CellSizes, Node, StringList, check_header, first_spi, reg, string_property};
use translate::AddressMap;

/// The `cellvisor.layout=` key on the hypervisor's command line.
const LAYOUT_BOOTARG: &str = "cellvisor.layout=";
/// The bootarg that names the console UART instead of `stdout-path`.
const CONSOLE_BOOTARG: &str = "cellvisor.console=";

/// What the platform device tree says about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// RAM ranges from every `memory` node, in DT order (or the fallback given to
    /// [`parse_with_memory`] when the DT has none).
    pub memory: Vec<MemRange>,
    /// CPUs in `/cpus` order; a board's CPU index is a position in this list.
    pub cpus: Vec<Cpu>,
    /// The interrupt controller.
    pub gic: Gic,
    /// The console UART.
    pub console: Uart,
    /// How to call PSCI firmware; `None` when the DT has no `/psci` node and every CPU starts
    /// through a spin table.
    pub psci_method: Option<PsciMethod>,
    /// Generic timer interrupts.
    pub timer: TimerInterrupts,
    /// `/chosen/bootargs`, empty when absent.
    pub bootargs: String,
    /// The initrd the boot loader placed (`/chosen/linux,initrd-start` .. `linux,initrd-end`).
    pub initrd: Option<MemRange>,
    /// `virtio,mmio` transports, in DT order.
    pub virtio_mmio: Vec<VirtioMmio>,
    /// Device nodes (with `reg` and `compatible`, other than memory and the GIC) under the root
    /// and under `simple-bus` buses, in DT order, with translated addresses: what
    /// [`Platform::device_node`] searches.
    pub devices: Vec<PlatformDevice>,
}

impl Platform {
    /// The value of `cellvisor.layout=NAME` in the bootargs, if present (the last one wins).
    pub fn layout_name(&self) -> Option<&str> {
        layout_from_bootargs(&self.bootargs)
    }

    /// The device node one of whose `reg` windows contains the physical `address`, if any.
    pub fn device_node(&self, address: u64) -> Option<&PlatformDevice> {
        self.devices.iter().find(|device| device.contains(address))
    }

    /// Whether a device node compatible with `compatible` has a `reg` window holding the
    /// physical `address`.
    pub fn has_node_at(&self, address: u64, compatible: &str) -> bool {
        self.devices.iter().any(|node| {
            node.contains(address) && node.compatible.iter().any(|name| name == compatible)
        })
    }

    /// Whether `range` lies entirely inside one RAM range of the platform.
    pub fn ram_contains(&self, range: &MemRange) -> bool {
        self.memory.iter().any(|ram| ram.contains_range(range))
    }
}

/// The value of `cellvisor.layout=NAME` in a kernel-style command line (the last one wins).
pub fn layout_from_bootargs(bootargs: &str) -> Option<&str> {
    bootarg(bootargs, LAYOUT_BOOTARG)
}

/// The value of `cellvisor.console=ALIAS-OR-PATH` in a kernel-style command line (the last one
/// wins): the UART cellvisor takes as its console instead of the one `stdout-path` names, for a
/// platform DT whose `stdout-path` is a UART cellvisor does not drive (the Raspberry Pi 4's is its
/// mini UART).
pub fn console_from_bootargs(bootargs: &str) -> Option<&str> {
    bootarg(bootargs, CONSOLE_BOOTARG)
}

/// The value of the last `prefix` argument of `bootargs`.
fn bootarg<'a>(bootargs: &'a str, prefix: &str) -> Option<&'a str> {
    bootargs
        .split_ascii_whitespace()
        .filter_map(|argument| argument.strip_prefix(prefix))
        .next_back()
}

/// What the walk over the root's and the buses' children collects.
#[derive(Default)]
struct Collected {
    /// The interrupt controller, once found.
    gic: Option<Gic>,
    /// The generic timer, once found.
    timer: Option<TimerInterrupts>,
    /// `virtio,mmio` transports.
    virtio_mmio: Vec<VirtioMmio>,
    /// Device nodes.
    devices: Vec<PlatformDevice>,
}

/// Reads one node that may sit under the root or a bus (`parent_cells` and `map` are its
/// parent's), and the nodes under it when it is a `simple-bus`.
fn read_bus_child(
    node: &Node<'_>,
    parent_cells: CellSizes,
    map: &AddressMap,
    collected: &mut Collected,
) -> Result<(), PlatformError> {
    let compatible = StringList::of(node, "compatible")?;
    if let Some(version) = gic_version(&compatible) {
        collected.gic = Some(read_gic(node, parent_cells, map, version)?);
    } else if compatible.contains("arm,armv8-timer") {
        collected.timer = Some(read_timer(node)?);
    } else if compatible.contains("virtio,mmio") {
        collected.virtio_mmio.push(VirtioMmio {
            registers: map.first_reg(node, parent_cells)?,
            intid: first_spi(node)?,
        });
    }
    if let Some(device) = read_device(node, parent_cells, map, &compatible)? {
        collected.devices.push(device);
    }
    if compatible.contains("simple-bus") {
        let bus_map = map.enter(node, parent_cells)?;
        let bus_cells = CellSizes::of(node)?;
        for child in node.children()? {
            read_bus_child(&child?, bus_cells, &bus_map, collected)?;
        }
    }
    Ok(())
}

/// The PSCI conduit of the platform device tree's `/psci` node alone (`None` without one): how to
/// power off after saying why the whole tree could not be read.
pub fn parse_psci_method(dtb: &[u8]) -> Result<Option<PsciMethod>, PlatformError> {
    check_header(dtb)?;
    let tree = Fdt::new_unaligned_fallible(dtb)?;
    match tree.find_node("/psci")? {
        Some(psci) => read_psci_method(&psci),
        None => Ok(None),
    }
}

/// Reads only the console UART of the platform device tree (`/chosen/stdout-path`, or the
/// `cellvisor.console=` bootarg): where to say why the whole tree could not be read.
pub fn parse_console(dtb: &[u8]) -> Result<Uart, PlatformError> {
    check_header(dtb)?;
    let tree = Fdt::new_unaligned_fallible(dtb)?;
    let root = tree
        .find_node("/")?
        .ok_or(PlatformError::BadHeader("no root node"))?;
    let chosen = tree.find_node("/chosen")?.ok_or(PlatformError::NoConsole)?;
    let aliases = tree.find_node("/aliases")?;
    let bootargs = string_property(&chosen, "bootargs")?.unwrap_or("");
    read_console(
        &root,
        &chosen,
        aliases.as_ref(),
        console_from_bootargs(bootargs),
    )
}

/// Reads the platform device tree; it must have a `memory` node with a non-empty range.
pub fn parse(dtb: &[u8]) -> Result<Platform, PlatformError> {
    parse_with_memory(dtb, &[])
}

/// Reads the platform device tree, taking `fallback` as the machine's RAM when the tree has no
/// `memory` node with a non-empty range: for boards whose boot loader adds it (U-Boot on the
/// PinePhone; the Raspberry Pi firmware fills in an empty `memory@0`). `fallback` is ignored when
/// the tree names RAM; an empty `fallback` makes a tree without RAM a
/// [`PlatformError::NoMemory`].
pub fn parse_with_memory(dtb: &[u8], fallback: &[MemRange]) -> Result<Platform, PlatformError> {
    check_header(dtb)?;
    let tree = Fdt::new_unaligned_fallible(dtb)?;
    let root = tree
        .find_node("/")?
        .ok_or(PlatformError::BadHeader("no root node"))?;
    let root_cells = CellSizes::of(&root)?;
    let root_map = AddressMap::root();

    let mut memory = Vec::new();
    let mut cpus = Vec::new();
    let mut psci_method = None;
    let mut collected = Collected::default();
    let mut chosen = None;
    let mut aliases = None;

    for child in root.children()? {
        let child = child?;
        let name = child.name()?.name;
        if name == "memory" || string_property(&child, "device_type")? == Some("memory") {
            let ranges = reg(&child, root_cells)?;
            memory.extend(ranges.into_iter().filter(|range| range.size != 0));
        } else if name == "cpus" {
            cpus = read_cpus(&child)?;
        } else if name == "psci" {
            psci_method = read_psci_method(&child)?;
        } else if name == "chosen" {
            chosen = Some(child);
        } else if name == "aliases" {
            aliases = Some(child);
        } else {
            read_bus_child(&child, root_cells, &root_map, &mut collected)?;
        }
    }

    if memory.is_empty() {
        memory.extend(fallback.iter().copied().filter(|range| range.size != 0));
    }
    if memory.is_empty() {
        return Err(PlatformError::NoMemory);
    }
    if cpus.is_empty() {
        return Err(PlatformError::NoCpus);
    }
    let needs_psci = cpus
        .iter()
        .any(|cpu| cpu.enable_method == EnableMethod::Psci);
    if needs_psci && psci_method.is_none() {
        return Err(PlatformError::NoPsci);
    }
    let chosen = chosen.ok_or(PlatformError::NoConsole)?;
    let bootargs = string_property(&chosen, "bootargs")?
        .unwrap_or("")
        .to_string();
    let initrd = read_initrd(&chosen)?;
    let console = read_console(
        &root,
        &chosen,
        aliases.as_ref(),
        console_from_bootargs(&bootargs),
    )?;

    Ok(Platform {
        memory,
        cpus,
        gic: collected.gic.ok_or(PlatformError::NoGic)?,
        console,
        psci_method,
        timer: collected.timer.ok_or(PlatformError::NoTimer)?,
        bootargs,
        initrd,
        virtio_mmio: collected.virtio_mmio,
        devices: collected.devices,
    })
}

#[cfg(test)]
mod tests;
