//! `/chosen`: the console UART `stdout-path` names and the initrd the boot loader placed.

use crate::board::MemRange;

use super::error::PlatformError;
use super::properties::{
    CellSizes, Node, StringList, bad_property, first_reg, first_spi, node_name, string_lookup,
    string_property, u32_or_u64_property,
};

/// The console UART (`/chosen/stdout-path`), an Arm PL011.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart {
    /// Register window.
    pub registers: MemRange,
    /// GIC INTID of the UART interrupt (32 + SPI number).
    pub intid: u32,
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

/// Finds the node `stdout-path` names (a path, or an alias) and reads it as a PL011.
pub(super) fn read_console<'a>(
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
