//! Reading the platform device tree: RAM, CPUs, GIC, UART, PSCI method, timer.
//!
//! [`parse`] turns the device tree the boot loader passed in `x0` into a [`Platform`] value. Only
//! nodes directly under the root are read, and a node's `reg` is only trusted when its parent is the
//! root or a bus with an empty `ranges` (identity translation): anything else is refused with
//! [`PlatformError::TranslatedAddress`] rather than silently misread.
#![forbid(unsafe_code)]

mod chosen;
mod cpus;
mod devices;
mod error;
mod gic;
mod properties;

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use fdt::Fdt;

use crate::board::MemRange;

pub use chosen::Uart;
pub use cpus::{Cpu, PsciMethod};
pub use devices::{GicInterrupt, PlatformDevice, TimerInterrupts, VirtioMmio};
pub use error::PlatformError;
pub use gic::{Gic, GicV2Frames, GicVersion, GuestGicFrames};

use chosen::{read_console, read_initrd};
use cpus::{read_cpus, read_psci_method};
use devices::{read_device, read_timer};
use gic::{gic_version, read_gic};
use properties::{CellSizes, StringList, check_header, first_reg, first_spi, reg, string_property};

/// The `cellvisor.layout=` key on the hypervisor's command line.
const LAYOUT_BOOTARG: &str = "cellvisor.layout=";

/// What the platform device tree says about the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// RAM ranges from every `memory` node, in DT order.
    pub memory: Vec<MemRange>,
    /// CPUs in `/cpus` order; a board's CPU index is a position in this list.
    pub cpus: Vec<Cpu>,
    /// The interrupt controller.
    pub gic: Gic,
    /// The console UART.
    pub console: Uart,
    /// How to call PSCI firmware.
    pub psci_method: PsciMethod,
    /// Generic timer interrupts.
    pub timer: TimerInterrupts,
    /// `/chosen/bootargs`, empty when absent.
    pub bootargs: String,
    /// The initrd the boot loader placed (`/chosen/linux,initrd-start` .. `linux,initrd-end`).
    pub initrd: Option<MemRange>,
    /// `virtio,mmio` transports, in DT order.
    pub virtio_mmio: Vec<VirtioMmio>,
    /// Root-level device nodes (with `reg` and `compatible`, other than memory and the GIC), in DT
    /// order: what [`Platform::device_node`] searches.
    pub devices: Vec<PlatformDevice>,
}

impl Platform {
    /// The value of `cellvisor.layout=NAME` in the bootargs, if present (the last one wins).
    pub fn layout_name(&self) -> Option<&str> {
        layout_from_bootargs(&self.bootargs)
    }

    /// The root-level device node one of whose `reg` windows contains `address`, if any.
    pub fn device_node(&self, address: u64) -> Option<&PlatformDevice> {
        self.devices.iter().find(|device| device.contains(address))
    }

    /// Whether a root-level node compatible with `compatible` has a `reg` window holding
    /// `address`.
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
    bootargs
        .split_ascii_whitespace()
        .filter_map(|argument| argument.strip_prefix(LAYOUT_BOOTARG))
        .next_back()
}

/// Reads the platform device tree.
pub fn parse(dtb: &[u8]) -> Result<Platform, PlatformError> {
    check_header(dtb)?;
    let tree = Fdt::new_unaligned_fallible(dtb)?;
    let root = tree
        .find_node("/")?
        .ok_or(PlatformError::BadHeader("no root node"))?;
    let root_cells = CellSizes::of(&root)?;

    let mut memory = Vec::new();
    let mut cpus = Vec::new();
    let mut gic = None;
    let mut psci_method = None;
    let mut timer = None;
    let mut virtio_mmio = Vec::new();
    let mut devices = Vec::new();
    let mut chosen = None;
    let mut aliases = None;

    for child in root.children()? {
        let child = child?;
        let name = child.name()?.name;
        let compatible = StringList::of(&child, "compatible")?;
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
        } else if let Some(version) = gic_version(&compatible) {
            gic = Some(read_gic(&child, root_cells, version)?);
        } else if compatible.contains("arm,armv8-timer") {
            timer = Some(read_timer(&child)?);
        } else if compatible.contains("virtio,mmio") {
            virtio_mmio.push(VirtioMmio {
                registers: first_reg(&child, root_cells)?,
                intid: first_spi(&child)?,
            });
        }
        if let Some(device) = read_device(&child, root_cells, &compatible)? {
            devices.push(device);
        }
    }

    if memory.is_empty() {
        return Err(PlatformError::NoMemory);
    }
    if cpus.is_empty() {
        return Err(PlatformError::NoCpus);
    }
    let chosen = chosen.ok_or(PlatformError::NoConsole)?;
    let bootargs = string_property(&chosen, "bootargs")?
        .unwrap_or("")
        .to_string();
    let initrd = read_initrd(&chosen)?;
    let console = read_console(&root, &chosen, aliases.as_ref())?;

    Ok(Platform {
        memory,
        cpus,
        gic: gic.ok_or(PlatformError::NoGic)?,
        console,
        psci_method: psci_method.ok_or(PlatformError::NoPsci)?,
        timer: timer.ok_or(PlatformError::NoTimer)?,
        bootargs,
        initrd,
        virtio_mmio,
        devices,
    })
}

#[cfg(test)]
mod tests;
