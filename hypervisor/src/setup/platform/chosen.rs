//! `/chosen`: the console UART `stdout-path` names and the initrd the boot loader placed.

use crate::board::MemRange;

use super::error::PlatformError;
use super::properties::{
    CellSizes, Node, StringList, bad_property, first_spi, node_name, string_lookup,
    string_property, u32_or_u64_property, u32_property,
};
use super::translate::AddressMap;

/// `compatible` strings of 16550-style UARTs whose registers [`UartKind::Ns16550`] describes.
const NS16550_COMPATIBLES: &[&str] = &["snps,dw-apb-uart", "ns16550a", "ns16550"];

/// The console UART (`/chosen/stdout-path`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Register window (a CPU physical address, after bus translation).
    pub registers: MemRange,
    /// GIC INTID of the UART interrupt (32 + SPI number).
    pub intid: u32,
    /// Which register interface the UART has.
    pub kind: UartKind,
}

/// The register interface of the console UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UartKind {
    /// An Arm PL011 (`arm,pl011`).
    Pl011,
    /// A 16550-compatible UART (`snps,dw-apb-uart`, `ns16550a`, `ns16550`).
    Ns16550 {
        /// Register `n` sits at byte offset `n << reg_shift` (`reg-shift`, 0 when absent).
        reg_shift: u32,
        /// Access width in bytes, 1 or 4 (`reg-io-width`, 1 when absent).
        reg_io_width: u32,
    },
}

pub(super) fn read_initrd(chosen: &Node<'_>) -> Result<Option<MemRange>, PlatformError> {
    let start = u32_or_u64_property(chosen, "linux,initrd-start")?;
    let end = u32_or_u64_property(chosen, "linux,initrd-end")?;
    match (start, end) {
        (Some(start), Some(end)) if end >= start => Ok(Some(MemRange::new(start, end - start))),
        (None, None) => Ok(None),
        _ => Err(bad_property(chosen, "linux,initrd-start/end")),
    }
}

/// Finds the node `stdout-path` names (a path, or an alias), or `chosen_console` (the
/// `cellvisor.console=` bootarg) when given, and reads it as a PL011 or a 16550, its `reg`
/// translated through the `ranges` of every bus on the path.
pub(super) fn read_console<'a>(
    root: &Node<'a>,
    chosen: &Node<'a>,
    aliases: Option<&Node<'a>>,
    chosen_console: Option<&'a str>,
) -> Result<Uart, PlatformError> {
    let stdout_path = match chosen_console {
        Some(console) => console,
        None => string_property(chosen, "stdout-path")?
            .or(string_property(chosen, "linux,stdout-path")?)
            .ok_or(PlatformError::NoConsole)?,
    };
    // "serial0:115200n8" names the node before the colon.
    let mut path = stdout_path.split(':').next().unwrap_or(stdout_path);
    if !path.starts_with('/') {
        let alias = match aliases {
            Some(aliases) => string_lookup(aliases, path)?,
            None => None,
        };
        path = alias.ok_or(PlatformError::NoConsole)?;
    }
    let mut map = AddressMap::root();
    let mut parent_cells = CellSizes::of(root)?;
    let mut node = *root;
    for component in path.split('/').filter(|component| !component.is_empty()) {
        if node.name()?.name != "/" {
            map = map.enter(&node, parent_cells)?;
            parent_cells = CellSizes::of(&node)?;
        }
        node = node.child(component)?.ok_or(PlatformError::NoConsole)?;
    }
    if node.name()?.name == "/" {
        return Err(PlatformError::NoConsole);
    }
    let compatible = StringList::of(&node, "compatible")?;
    let kind = if compatible.contains("arm,pl011") {
        UartKind::Pl011
    } else if NS16550_COMPATIBLES
        .iter()
        .any(|name| compatible.contains(name))
    {
        let reg_shift = u32_property(&node, "reg-shift")?.unwrap_or(0);
        let reg_io_width = u32_property(&node, "reg-io-width")?.unwrap_or(1);
        if reg_shift > 2 {
            return Err(bad_property(&node, "reg-shift"));
        }
        if !matches!(reg_io_width, 1 | 4) {
            return Err(bad_property(&node, "reg-io-width"));
        }
        UartKind::Ns16550 {
            reg_shift,
            reg_io_width,
        }
    } else {
        return Err(PlatformError::UnsupportedConsole(node_name(&node)));
    };
    Ok(Uart {
        registers: map.first_reg(&node, parent_cells)?,
        intid: first_spi(&node)?,
        kind,
    })
}
