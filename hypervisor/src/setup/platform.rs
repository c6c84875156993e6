//! Reading the platform device tree: RAM, CPUs, GIC, UART, PSCI method, timer.
//!
//! [`parse`] turns the device tree the boot loader passed in `x0` into a [`Platform`] value. Only
//! nodes directly under the root are read, and a node's `reg` is only trusted when its parent is the
//! root or a bus with an empty `ranges` (identity translation): anything else is refused with
//! [`PlatformError::TranslatedAddress`] rather than silently misread.
#![forbid(unsafe_code)]

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use fdt::Fdt;
use fdt::helpers::UnalignedFallibleNode;

use crate::board::MemRange;
use crate::dev::gic::{PPI_BASE_INTID, SPI_BASE_INTID, SPI_END_INTID};

/// The `cellvisor.layout=` key on the hypervisor's command line.
const LAYOUT_BOOTARG: &str = "cellvisor.layout=";

/// Version of the platform's interrupt controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicVersion {
    /// GICv2 (`arm,cortex-a15-gic`, `arm,gic-400`, ...): recognised but not supported by cellvisor.
    V2,
    /// GICv3 (`arm,gic-v3`).
    V3,
}

/// The platform's generic interrupt controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gic {
    /// GIC architecture version.
    pub version: GicVersion,
    /// The distributor (GICD) register window.
    pub distributor: MemRange,
    /// GICv3 redistributor (GICR) regions, in device-tree order; empty for GICv2.
    pub redistributor_regions: Vec<MemRange>,
    /// The GICv3 ITS register window, if the platform has one.
    pub its: Option<MemRange>,
    /// INTID of the virtual-interface maintenance interrupt, if the DT states it.
    pub maintenance_intid: Option<u32>,
}

impl Gic {
    /// Fails with [`PlatformError::UnsupportedGicVersion`] unless the GIC is a GICv3.
    pub fn require_v3(&self) -> Result<(), PlatformError> {
        match self.version {
            GicVersion::V3 => Ok(()),
            GicVersion::V2 => Err(PlatformError::UnsupportedGicVersion),
        }
    }
}

/// The console UART (`/chosen/stdout-path`), an Arm PL011.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Register window.
    pub registers: MemRange,
    /// GIC INTID of the UART interrupt (32 + SPI number).
    pub intid: u32,
}

/// How PSCI calls reach the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    /// Secure monitor call.
    Smc,
    /// Hypervisor call.
    Hvc,
}

/// INTIDs of the generic timer's interrupts, as listed by the `arm,armv8-timer` node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerInterrupts {
    /// Secure EL1 physical timer.
    pub secure_physical: u32,
    /// Non-secure EL1 physical timer.
    pub nonsecure_physical: u32,
    /// EL1 virtual timer.
    pub virtual_timer: u32,
    /// EL2 (hypervisor) physical timer.
    pub hypervisor_physical: u32,
    /// EL2 virtual timer, when the DT lists it (ARMv8.1 VHE).
    pub hypervisor_virtual: Option<u32>,
}

/// A `virtio,mmio` transport slot, a candidate for passthrough.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmio {
    /// Register window.
    pub registers: MemRange,
    /// GIC INTID of the slot's interrupt (32 + SPI number).
    pub intid: u32,
}

/// A three-cell GIC interrupt specifier of a device node: `<type number flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicInterrupt {
    /// Type cell: 0 for an SPI, 1 for a PPI.
    pub kind: u32,
    /// SPI number (INTID - 32) or PPI number (INTID - 16).
    pub number: u32,
    /// Trigger flags (1 = edge rising, 4 = level high, ...).
    pub flags: u32,
}

impl GicInterrupt {
    /// The GIC INTID the specifier names, or `None` if its type or number is out of range.
    pub fn intid(&self) -> Option<u32> {
        specifier_intid([self.kind, self.number, self.flags])
    }

    /// Whether the specifier names a shared peripheral interrupt.
    pub fn is_spi(&self) -> bool {
        self.kind == INTERRUPT_TYPE_SPI
    }
}

/// A device node directly under the root (anything with a `reg` and a `compatible`), as a
/// candidate for passthrough: what a cell's device tree needs to describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformDevice {
    /// Node name with its unit address, e.g. `virtio_mmio@a003e00`.
    pub name: String,
    /// The `compatible` strings, most specific first.
    pub compatible: Vec<String>,
    /// Every `reg` window, in DT order (root cell sizes; never empty).
    pub registers: Vec<MemRange>,
    /// The `interrupts` specifiers; empty when the node has none or they are not GIC triples.
    pub interrupts: Vec<GicInterrupt>,
    /// The node has `dma-coherent`.
    pub dma_coherent: bool,
}

impl PlatformDevice {
    /// Whether one of the node's `reg` windows contains `address`.
    pub fn contains(&self, address: u64) -> bool {
        self.registers.iter().any(|window| window.contains(address))
    }

    /// The INTIDs of the node's interrupts, in DT order (specifiers out of range are skipped).
    pub fn intids(&self) -> Vec<u32> {
        self.interrupts
            .iter()
            .filter_map(GicInterrupt::intid)
            .collect()
    }
}

/// One CPU of the platform, in `/cpus` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// The affinity fields of the CPU's MPIDR_EL1 (the node's `reg`).
    pub mpidr: u64,
}

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

/// Why the platform device tree could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlatformError {
    /// The blob is not a flattened device tree or its header is inconsistent.
    BadHeader(&'static str),
    /// The `fdt` parser refused the structure block.
    Malformed(String),
    /// No `memory` node with a non-empty range.
    NoMemory,
    /// No `cpu` node under `/cpus`.
    NoCpus,
    /// No interrupt controller node with a known GIC `compatible`.
    NoGic,
    /// GICv2 was found; cellvisor needs GICv3.
    UnsupportedGicVersion,
    /// `/chosen/stdout-path` is missing or does not name a node.
    NoConsole,
    /// The console named by `/chosen/stdout-path` is not an Arm PL011.
    UnsupportedConsole(String),
    /// No `/psci` node, or its `method` is neither `smc` nor `hvc`.
    NoPsci,
    /// No `arm,armv8-timer` node with at least four interrupts.
    NoTimer,
    /// A property has the wrong size or encoding.
    BadProperty {
        /// Node name.
        node: String,
        /// Property name.
        property: &'static str,
    },
    /// A node sits under a bus whose `ranges` translate addresses; cellvisor does not translate.
    TranslatedAddress(String),
}

impl fmt::Display for PlatformError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadHeader(what) => write!(
                f,
                "platform device tree: {what}: pass a valid DTB address in x0 (QEMU -M virt does this)"
            ),
            Self::Malformed(what) => write!(
                f,
                "platform device tree is malformed ({what}): check the DTB with `dtc -I dtb -O dts`"
            ),
            Self::NoMemory => write!(
                f,
                "platform device tree has no memory node: give the machine RAM (QEMU -m)"
            ),
            Self::NoCpus => write!(
                f,
                "platform device tree has no cpu nodes under /cpus: fix the boot loader's DTB"
            ),
            Self::NoGic => write!(
                f,
                "platform device tree has no GIC node (compatible \"arm,gic-v3\"): fix the boot loader's DTB"
            ),
            Self::UnsupportedGicVersion => write!(
                f,
                "platform has a GICv2 but cellvisor needs GICv3: run QEMU with -M virt,gic-version=3"
            ),
            Self::NoConsole => write!(
                f,
                "platform device tree has no usable /chosen/stdout-path: point it at the PL011 console"
            ),
            Self::UnsupportedConsole(node) => write!(
                f,
                "console {node} is not an Arm PL011: point /chosen/stdout-path at a PL011 UART"
            ),
            Self::NoPsci => write!(
                f,
                "platform device tree has no /psci node with method \"smc\" or \"hvc\": enable PSCI firmware"
            ),
            Self::NoTimer => write!(
                f,
                "platform device tree has no arm,armv8-timer node with four interrupts: fix the boot loader's DTB"
            ),
            Self::BadProperty { node, property } => write!(
                f,
                "platform device tree node {node} has a malformed {property} property: fix the boot loader's DTB"
            ),
            Self::TranslatedAddress(node) => write!(
                f,
                "platform device tree node {node} is behind a bus with address translation: move it to the root"
            ),
        }
    }
}

impl From<fdt::FdtError> for PlatformError {
    fn from(error: fdt::FdtError) -> Self {
        Self::Malformed(error.to_string())
    }
}

type Node<'a> = UnalignedFallibleNode<'a>;

/// FDT header magic, big-endian.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the FDT header fields we check (ten big-endian `u32`s).
const FDT_HEADER_SIZE: usize = 40;

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
            psci_method = match string_property(&child, "method")? {
                Some("smc") => Some(PsciMethod::Smc),
                Some("hvc") => Some(PsciMethod::Hvc),
                _ => None,
            };
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

/// A root-level node as a [`PlatformDevice`], or `None` for nodes that are not devices (no `reg`,
/// no `compatible`, memory, the GIC). Interrupts that are not three-cell GIC specifiers are left
/// out rather than refused: most platform devices are never passed through.
fn read_device(
    node: &Node<'_>,
    root_cells: CellSizes,
    compatible: &StringList<'_>,
) -> Result<Option<PlatformDevice>, PlatformError> {
    let name = node.name()?;
    let is_memory =
        name.name == "memory" || string_property(node, "device_type")? == Some("memory");
    if is_memory || gic_version(compatible).is_some() || compatible.iter().next().is_none() {
        return Ok(None);
    }
    let registers = reg(node, root_cells)?;
    if registers.is_empty() {
        return Ok(None);
    }
    let interrupts = interrupt_triples(node)
        .unwrap_or_default()
        .into_iter()
        .map(|[kind, number, flags]| GicInterrupt {
            kind,
            number,
            flags,
        })
        .collect();
    Ok(Some(PlatformDevice {
        name: name.to_string(),
        compatible: compatible
            .iter()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .collect(),
        registers,
        interrupts,
        dma_coherent: node.raw_property("dma-coherent")?.is_some(),
    }))
}

/// Checks the header fields the `fdt` crate trusts before it slices with them.
fn check_header(dtb: &[u8]) -> Result<(), PlatformError> {
    let field = |index: usize| -> Option<u32> {
        let bytes = dtb.get(index * 4..index * 4 + 4)?;
        Some(u32::from_be_bytes(bytes.try_into().ok()?))
    };
    if dtb.len() < FDT_HEADER_SIZE {
        return Err(PlatformError::BadHeader("shorter than an FDT header"));
    }
    let (Some(magic), Some(total_size), Some(structs_offset), Some(strings_offset)) =
        (field(0), field(1), field(2), field(3))
    else {
        return Err(PlatformError::BadHeader("shorter than an FDT header"));
    };
    let (Some(strings_size), Some(structs_size)) = (field(8), field(9)) else {
        return Err(PlatformError::BadHeader("shorter than an FDT header"));
    };
    if magic != FDT_MAGIC {
        return Err(PlatformError::BadHeader("bad magic"));
    }
    // A structure block needs at least a BEGIN_NODE and an END token; the fdt crate underflows
    // on anything shorter (found by the platform fuzz target).
    if structs_size < 8 {
        return Err(PlatformError::BadHeader("structure block too small"));
    }
    let total_size = total_size as usize;
    let within = |offset: u32, size: u32| u64::from(offset) + u64::from(size) <= total_size as u64;
    if total_size > dtb.len()
        || !within(structs_offset, structs_size)
        || !within(strings_offset, strings_size)
    {
        return Err(PlatformError::BadHeader("blocks extend past the blob"));
    }
    Ok(())
}

/// `#address-cells` / `#size-cells` that a node states for its children.
#[derive(Clone, Copy, Debug)]
struct CellSizes {
    address: usize,
    size: usize,
}

impl CellSizes {
    fn of(node: &Node<'_>) -> Result<Self, PlatformError> {
        let address = u32_property(node, "#address-cells")?.unwrap_or(2);
        let size = u32_property(node, "#size-cells")?.unwrap_or(1);
        if address > 2 || size > 2 {
            return Err(bad_property(node, "#address-cells/#size-cells"));
        }
        Ok(Self {
            address: address as usize,
            size: size as usize,
        })
    }
}

/// A `stringlist` property value.
struct StringList<'a>(&'a [u8]);

impl<'a> StringList<'a> {
    fn of(node: &Node<'a>, name: &str) -> Result<Self, PlatformError> {
        Ok(Self(
            node.raw_property(name)?
                .map(|property| property.value)
                .unwrap_or(&[]),
        ))
    }

    fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .split(|byte| *byte == 0)
            .filter(|string| !string.is_empty())
    }

    fn contains(&self, wanted: &str) -> bool {
        self.iter().any(|string| string == wanted.as_bytes())
    }
}

fn node_name(node: &Node<'_>) -> String {
    match node.name() {
        Ok(name) => name.to_string(),
        Err(_) => "<unnamed>".to_string(),
    }
}

fn bad_property(node: &Node<'_>, property: &'static str) -> PlatformError {
    PlatformError::BadProperty {
        node: node_name(node),
        property,
    }
}

fn u32_property(node: &Node<'_>, name: &'static str) -> Result<Option<u32>, PlatformError> {
    match node.raw_property(name)? {
        None => Ok(None),
        Some(property) => match <[u8; 4]>::try_from(property.value) {
            Ok(bytes) => Ok(Some(u32::from_be_bytes(bytes))),
            Err(_) => Err(bad_property(node, name)),
        },
    }
}

/// A property of one or two cells (`linux,initrd-start` comes in both sizes).
fn u32_or_u64_property(node: &Node<'_>, name: &'static str) -> Result<Option<u64>, PlatformError> {
    match node.raw_property(name)? {
        None => Ok(None),
        Some(property) => match read_cells(property.value, property.value.len() / 4) {
            Some(value) if matches!(property.value.len(), 4 | 8) => Ok(Some(value)),
            _ => Err(bad_property(node, name)),
        },
    }
}

/// A string property without its NUL; `None` when absent.
fn string_property<'a>(
    node: &Node<'a>,
    name: &'static str,
) -> Result<Option<&'a str>, PlatformError> {
    match node.raw_property(name)? {
        None => Ok(None),
        Some(property) => {
            let bytes = property.value.strip_suffix(&[0]).unwrap_or(property.value);
            core::str::from_utf8(bytes)
                .map(Some)
                .map_err(|_| bad_property(node, name))
        }
    }
}

/// Reads `count` big-endian cells (at most two) as one number.
fn read_cells(bytes: &[u8], count: usize) -> Option<u64> {
    if count > 2 || bytes.len() != count * 4 {
        return None;
    }
    Some(bytes.chunks_exact(4).fold(0u64, |value, cell| {
        let mut word = [0u8; 4];
        word.copy_from_slice(cell);
        (value << 32) | u64::from(u32::from_be_bytes(word))
    }))
}

/// Every `(address, size)` pair of a node's `reg`, interpreted with its parent's cell sizes.
fn reg(node: &Node<'_>, parent_cells: CellSizes) -> Result<Vec<MemRange>, PlatformError> {
    let Some(property) = node.raw_property("reg")? else {
        return Ok(Vec::new());
    };
    let entry_size = (parent_cells.address + parent_cells.size) * 4;
    if entry_size == 0 || property.value.len() % entry_size != 0 {
        return Err(bad_property(node, "reg"));
    }
    property
        .value
        .chunks_exact(entry_size)
        .map(|entry| {
            let (address, size) = entry.split_at(parent_cells.address * 4);
            match (
                read_cells(address, parent_cells.address),
                read_cells(size, parent_cells.size),
            ) {
                (Some(base), Some(size)) => Ok(MemRange::new(base, size)),
                _ => Err(bad_property(node, "reg")),
            }
        })
        .collect()
}

fn first_reg(node: &Node<'_>, parent_cells: CellSizes) -> Result<MemRange, PlatformError> {
    reg(node, parent_cells)?
        .first()
        .copied()
        .ok_or_else(|| bad_property(node, "reg"))
}

/// The `interrupts` property as `(type, number, flags)` triples (three-cell GIC specifiers).
fn interrupt_triples(node: &Node<'_>) -> Result<Vec<[u32; 3]>, PlatformError> {
    let Some(property) = node.raw_property("interrupts")? else {
        return Ok(Vec::new());
    };
    if property.value.len() % 12 != 0 {
        return Err(bad_property(node, "interrupts"));
    }
    Ok(property
        .value
        .chunks_exact(12)
        .map(|triple| {
            let mut cells = [0u32; 3];
            for (cell, bytes) in cells.iter_mut().zip(triple.chunks_exact(4)) {
                let mut word = [0u8; 4];
                word.copy_from_slice(bytes);
                *cell = u32::from_be_bytes(word);
            }
            cells
        })
        .collect())
}

/// GIC specifier type cell values.
const INTERRUPT_TYPE_SPI: u32 = 0;
const INTERRUPT_TYPE_PPI: u32 = 1;

/// INTID of a three-cell GIC interrupt specifier, if its numbers are in range.
fn specifier_intid([kind, number, _flags]: [u32; 3]) -> Option<u32> {
    match kind {
        INTERRUPT_TYPE_SPI if number < SPI_END_INTID - SPI_BASE_INTID => {
            Some(SPI_BASE_INTID + number)
        }
        INTERRUPT_TYPE_PPI if number < SPI_BASE_INTID - PPI_BASE_INTID => {
            Some(PPI_BASE_INTID + number)
        }
        _ => None,
    }
}

fn first_spi(node: &Node<'_>) -> Result<u32, PlatformError> {
    match interrupt_triples(node)?.first() {
        Some(&triple) if triple[0] == INTERRUPT_TYPE_SPI => {
            specifier_intid(triple).ok_or_else(|| bad_property(node, "interrupts"))
        }
        _ => Err(bad_property(node, "interrupts")),
    }
}

fn gic_version(compatible: &StringList<'_>) -> Option<GicVersion> {
    const V2_COMPATIBLES: &[&str] = &[
        "arm,gic-400",
        "arm,cortex-a15-gic",
        "arm,cortex-a9-gic",
        "arm,cortex-a7-gic",
        "arm,arm11mp-gic",
        "arm,pl390",
    ];
    if compatible.contains("arm,gic-v3") {
        Some(GicVersion::V3)
    } else if V2_COMPATIBLES.iter().any(|name| compatible.contains(name)) {
        Some(GicVersion::V2)
    } else {
        None
    }
}

fn read_cpus(cpus: &Node<'_>) -> Result<Vec<Cpu>, PlatformError> {
    let cells = CellSizes::of(cpus)?;
    let mut list = Vec::new();
    for child in cpus.children()? {
        let child = child?;
        let is_cpu =
            child.name()?.name == "cpu" || string_property(&child, "device_type")? == Some("cpu");
        if !is_cpu {
            continue;
        }
        let property = child
            .raw_property("reg")?
            .ok_or_else(|| bad_property(&child, "reg"))?;
        let mpidr = property
            .value
            .get(..cells.address * 4)
            .and_then(|bytes| read_cells(bytes, cells.address))
            .ok_or_else(|| bad_property(&child, "reg"))?;
        list.push(Cpu { mpidr });
    }
    Ok(list)
}

fn read_gic(
    node: &Node<'_>,
    root_cells: CellSizes,
    version: GicVersion,
) -> Result<Gic, PlatformError> {
    let windows = reg(node, root_cells)?;
    let distributor = *windows.first().ok_or_else(|| bad_property(node, "reg"))?;
    let mut redistributor_regions = Vec::new();
    let mut its = None;
    if version == GicVersion::V3 {
        let region_count = u32_property(node, "#redistributor-regions")?.unwrap_or(1) as usize;
        redistributor_regions = windows.iter().skip(1).take(region_count).copied().collect();
        if redistributor_regions.len() != region_count || region_count == 0 {
            return Err(bad_property(node, "reg"));
        }
        let child_cells = CellSizes::of(node)?;
        let identity = node
            .raw_property("ranges")?
            .is_some_and(|ranges| ranges.value.is_empty());
        for child in node.children()? {
            let child = child?;
            if StringList::of(&child, "compatible")?.contains("arm,gic-v3-its") {
                if !identity {
                    return Err(PlatformError::TranslatedAddress(node_name(&child)));
                }
                its = Some(first_reg(&child, child_cells)?);
            }
        }
    }
    let maintenance_intid = match interrupt_triples(node)?.first() {
        Some(&triple) => {
            Some(specifier_intid(triple).ok_or_else(|| bad_property(node, "interrupts"))?)
        }
        None => None,
    };
    Ok(Gic {
        version,
        distributor,
        redistributor_regions,
        its,
        maintenance_intid,
    })
}

fn read_timer(node: &Node<'_>) -> Result<TimerInterrupts, PlatformError> {
    let intids = interrupt_triples(node)?
        .into_iter()
        .map(|triple| specifier_intid(triple).ok_or_else(|| bad_property(node, "interrupts")))
        .collect::<Result<Vec<u32>, PlatformError>>()?;
    match intids.as_slice() {
        [
            secure_physical,
            nonsecure_physical,
            virtual_timer,
            hypervisor_physical,
            rest @ ..,
        ] => Ok(TimerInterrupts {
            secure_physical: *secure_physical,
            nonsecure_physical: *nonsecure_physical,
            virtual_timer: *virtual_timer,
            hypervisor_physical: *hypervisor_physical,
            hypervisor_virtual: rest.first().copied(),
        }),
        _ => Err(PlatformError::NoTimer),
    }
}

fn read_initrd(chosen: &Node<'_>) -> Result<Option<MemRange>, PlatformError> {
    let start = u32_or_u64_property(chosen, "linux,initrd-start")?;
    let end = u32_or_u64_property(chosen, "linux,initrd-end")?;
    match (start, end) {
        (Some(start), Some(end)) if end >= start => Ok(Some(MemRange::new(start, end - start))),
        (None, None) => Ok(None),
        _ => Err(bad_property(chosen, "linux,initrd-start/end")),
    }
}

/// Finds the node `stdout-path` names (a path, or an alias) and reads it as a PL011.
fn read_console<'a>(
    root: &Node<'a>,
    chosen: &Node<'a>,
    aliases: Option<&Node<'a>>,
) -> Result<Uart, PlatformError> {
    let stdout_path = string_property(chosen, "stdout-path")?
        .or(string_property(chosen, "linux,stdout-path")?)
        .ok_or(PlatformError::NoConsole)?;
    // "serial0:115200n8" names the node before the colon.
    let mut path = stdout_path.split(':').next().unwrap_or(stdout_path);
    if !path.starts_with('/') {
        let alias = match aliases {
            Some(aliases) => string_lookup(aliases, path)?,
            None => None,
        };
        path = alias.ok_or(PlatformError::NoConsole)?;
    }
    let mut parent = *root;
    let mut node = *root;
    for component in path.split('/').filter(|component| !component.is_empty()) {
        parent = node;
        node = node.child(component)?.ok_or(PlatformError::NoConsole)?;
    }
    if node.name()?.name == "/" {
        return Err(PlatformError::NoConsole);
    }
    if parent.name()?.name != "/" {
        return Err(PlatformError::TranslatedAddress(node_name(&node)));
    }
    if !StringList::of(&node, "compatible")?.contains("arm,pl011") {
        return Err(PlatformError::UnsupportedConsole(node_name(&node)));
    }
    Ok(Uart {
        registers: first_reg(&node, CellSizes::of(root)?)?,
        intid: first_spi(&node)?,
    })
}

/// A string property looked up by a runtime name (aliases are named by the DT, not by us).
fn string_lookup<'a>(node: &Node<'a>, name: &str) -> Result<Option<&'a str>, PlatformError> {
    match node.raw_property(name)? {
        None => Ok(None),
        Some(property) => {
            let bytes = property.value.strip_suffix(&[0]).unwrap_or(property.value);
            Ok(core::str::from_utf8(bytes).ok())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const QEMU_VIRT_GICV3: &[u8] =
        include_bytes!("../../tests/data/qemu-virt-gicv3.dtb");
    const QEMU_VIRT_GICV2: &[u8] = include_bytes!("../../tests/data/qemu-virt-gicv2.dtb");

    #[test]
    fn reads_qemu_virt_gicv3() {
        let platform = parse(QEMU_VIRT_GICV3).expect("fixture parses");
        assert_eq!(platform.memory, [MemRange::new(0x4000_0000, 0x8000_0000)]);
        let mpidrs: Vec<u64> = platform.cpus.iter().map(|cpu| cpu.mpidr).collect();
        assert_eq!(mpidrs, [0, 1, 2, 3]);
        assert_eq!(platform.gic.version, GicVersion::V3);
        assert_eq!(
            platform.gic.distributor,
            MemRange::new(0x0800_0000, 0x1_0000)
        );
        assert_eq!(
            platform.gic.redistributor_regions,
            [MemRange::new(0x080A_0000, 0xF6_0000)]
        );
        assert_eq!(platform.gic.its, Some(MemRange::new(0x0808_0000, 0x2_0000)));
        assert_eq!(platform.gic.maintenance_intid, Some(16 + 9));
        assert!(platform.gic.require_v3().is_ok());
        assert_eq!(
            platform.console,
            Uart {
                registers: MemRange::new(0x0900_0000, 0x1000),
                intid: 33
            }
        );
        assert_eq!(platform.psci_method, PsciMethod::Smc);
        assert_eq!(
            platform.timer,
            TimerInterrupts {
                secure_physical: 29,
                nonsecure_physical: 30,
                virtual_timer: 27,
                hypervisor_physical: 26,
                hypervisor_virtual: Some(28),
            }
        );
        assert_eq!(platform.bootargs, "");
        assert_eq!(platform.initrd, None);
        assert_eq!(platform.virtio_mmio.len(), 32);
        assert!(platform.virtio_mmio.contains(&VirtioMmio {
            registers: MemRange::new(0x0A00_3E00, 0x200),
            intid: 32 + 47,
        }));
        assert!(platform.virtio_mmio.contains(&VirtioMmio {
            registers: MemRange::new(0x0A00_0000, 0x200),
            intid: 32 + 16,
        }));
    }

    #[test]
    fn device_nodes_are_found_by_any_address_in_their_windows() {
        let platform = parse(QEMU_VIRT_GICV3).expect("fixture parses");
        let expected = PlatformDevice {
            name: "virtio_mmio@a003e00".into(),
            compatible: alloc::vec!["virtio,mmio".into()],
            registers: alloc::vec![MemRange::new(0x0A00_3E00, 0x200)],
            interrupts: alloc::vec![GicInterrupt {
                kind: 0,
                number: 47,
                flags: 1
            }],
            dma_coherent: true,
        };
        for address in [0x0A00_3E00, 0x0A00_3E04, 0x0A00_3FFF] {
            assert_eq!(platform.device_node(address), Some(&expected));
        }
        assert_eq!(expected.intids(), [79]);
        let slot_30 = platform.device_node(0x0A00_3DFF).expect("slot 30");
        assert_eq!(slot_30.name, "virtio_mmio@a003c00");
        assert_eq!(slot_30.intids(), [78]);
        let uart = platform.device_node(0x0900_0000).expect("pl011");
        assert_eq!(uart.compatible, ["arm,pl011", "arm,primecell"]);
        assert!(!uart.dma_coherent);
        assert!(uart.interrupts.iter().all(GicInterrupt::is_spi));
        assert_eq!(uart.intids(), [33]);
        // Neither RAM nor the GIC is a device node; a gap between slots is no device.
        assert_eq!(platform.device_node(0x4000_0000), None);
        assert_eq!(platform.device_node(0x0800_0000), None);
        assert_eq!(platform.device_node(0x0A00_4000), None);
        let virtio_nodes = platform
            .devices
            .iter()
            .filter(|device| device.compatible.iter().any(|c| c == "virtio,mmio"))
            .count();
        assert_eq!(virtio_nodes, 32);
    }

    #[test]
    fn recognises_gicv2_and_refuses_it() {
        let platform = parse(QEMU_VIRT_GICV2).expect("fixture parses");
        assert_eq!(platform.gic.version, GicVersion::V2);
        assert_eq!(
            platform.gic.distributor,
            MemRange::new(0x0800_0000, 0x1_0000)
        );
        assert!(platform.gic.redistributor_regions.is_empty());
        let error = platform.gic.require_v3().unwrap_err();
        assert_eq!(error, PlatformError::UnsupportedGicVersion);
        assert!(error.to_string().contains("gic-version=3"));
    }

    #[test]
    fn layout_name_comes_from_bootargs() {
        assert_eq!(
            layout_from_bootargs("quiet cellvisor.layout=linux"),
            Some("linux")
        );
        assert_eq!(
            layout_from_bootargs("cellvisor.layout=a x cellvisor.layout=test-guests"),
            Some("test-guests")
        );
        assert_eq!(layout_from_bootargs("cellvisor.layoutx=a"), None);
        assert_eq!(layout_from_bootargs(""), None);
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        assert!(matches!(parse(&[]), Err(PlatformError::BadHeader(_))));
        assert!(matches!(
            parse(&[0u8; 64]),
            Err(PlatformError::BadHeader(_))
        ));
        // A truncated real tree: the header promises more than the slice holds.
        assert!(matches!(
            parse(&QEMU_VIRT_GICV3[..4096]),
            Err(PlatformError::BadHeader(_))
        ));
        // Header offsets pointing past the blob.
        let mut broken = QEMU_VIRT_GICV3[..QEMU_VIRT_GICV3.len()].to_vec();
        broken[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(parse(&broken), Err(PlatformError::BadHeader(_))));
    }

    #[test]
    fn corrupted_trees_give_errors_not_panics() {
        let header_field = |index: usize| {
            let bytes = &QEMU_VIRT_GICV3[index * 4..index * 4 + 4];
            u32::from_be_bytes(bytes.try_into().unwrap()) as usize
        };
        // Keep only the used part of the 1 MiB fixture so corruptions land in the structure.
        let used = (header_field(2) + header_field(9)).max(header_field(3) + header_field(8));
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut noise = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let mut bytes = QEMU_VIRT_GICV3[..used].to_vec();
            bytes[4..8].copy_from_slice(&(used as u32).to_be_bytes());
            for _ in 0..1 + noise() % 3 {
                let position = FDT_HEADER_SIZE + (noise() as usize % (used - FDT_HEADER_SIZE));
                bytes[position] = noise() as u8;
            }
            let _ = parse(&bytes);
        }
    }

    #[test]
    fn errors_are_one_line() {
        let errors = [
            PlatformError::BadHeader("bad magic"),
            PlatformError::Malformed("x".into()),
            PlatformError::NoMemory,
            PlatformError::NoCpus,
            PlatformError::NoGic,
            PlatformError::UnsupportedGicVersion,
            PlatformError::NoConsole,
            PlatformError::UnsupportedConsole("uart@1".into()),
            PlatformError::NoPsci,
            PlatformError::NoTimer,
            PlatformError::BadProperty {
                node: "n".into(),
                property: "reg",
            },
            PlatformError::TranslatedAddress("n".into()),
        ];
        for error in errors {
            let line = error.to_string();
            assert!(!line.contains('\n') && line.contains(": "), "{line}");
        }
    }
}
