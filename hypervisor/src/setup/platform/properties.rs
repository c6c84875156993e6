//! Low-level device-tree reading: the header check, cell sizes and typed property values.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use fdt::helpers::UnalignedFallibleNode;

use crate::board::MemRange;
use crate::dev::gic::{PPI_BASE_INTID, SPI_BASE_INTID, SPI_END_INTID};

use super::error::PlatformError;

pub(super) type Node<'a> = UnalignedFallibleNode<'a>;

/// FDT header magic, big-endian.
const FDT_MAGIC: u32 = 0xd00d_feed;
/// Size of the FDT header fields we check (ten big-endian `u32`s).
pub(super) const FDT_HEADER_SIZE: usize = 40;

/// Checks the header fields the `fdt` crate trusts before it slices with them.
pub(super) fn check_header(dtb: &[u8]) -> Result<(), PlatformError> {
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
pub(super) struct CellSizes {
    pub(super) address: usize,
    pub(super) size: usize,
}

impl CellSizes {
    pub(super) fn of(node: &Node<'_>) -> Result<Self, PlatformError> {
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
pub(super) struct StringList<'a>(&'a [u8]);

impl<'a> StringList<'a> {
    pub(super) fn of(node: &Node<'a>, name: &str) -> Result<Self, PlatformError> {
        Ok(Self(
            node.raw_property(name)?
                .map(|property| property.value)
                .unwrap_or(&[]),
        ))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .split(|byte| *byte == 0)
            .filter(|string| !string.is_empty())
    }

    pub(super) fn contains(&self, wanted: &str) -> bool {
        self.iter().any(|string| string == wanted.as_bytes())
    }
}

pub(super) fn node_name(node: &Node<'_>) -> String {
    match node.name() {
        Ok(name) => name.to_string(),
        Err(_) => "<unnamed>".to_string(),
    }
}

pub(super) fn bad_property(node: &Node<'_>, property: &'static str) -> PlatformError {
    PlatformError::BadProperty {
        node: node_name(node),
        property,
    }
}

pub(super) fn u32_property(
    node: &Node<'_>,
    name: &'static str,
) -> Result<Option<u32>, PlatformError> {
    match node.raw_property(name)? {
        None => Ok(None),
        Some(property) => match <[u8; 4]>::try_from(property.value) {
            Ok(bytes) => Ok(Some(u32::from_be_bytes(bytes))),
            Err(_) => Err(bad_property(node, name)),
        },
    }
}

/// A property of one or two cells (`linux,initrd-start` comes in both sizes).
pub(super) fn u32_or_u64_property(
    node: &Node<'_>,
    name: &'static str,
) -> Result<Option<u64>, PlatformError> {
    match node.raw_property(name)? {
        None => Ok(None),
        Some(property) => match read_cells(property.value, property.value.len() / 4) {
            Some(value) if matches!(property.value.len(), 4 | 8) => Ok(Some(value)),
            _ => Err(bad_property(node, name)),
        },
    }
}

/// A string property without its NUL; `None` when absent.
pub(super) fn string_property<'a>(
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
pub(super) fn read_cells(bytes: &[u8], count: usize) -> Option<u64> {
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
pub(super) fn reg(
    node: &Node<'_>,
    parent_cells: CellSizes,
) -> Result<Vec<MemRange>, PlatformError> {
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

/// The `interrupts` property as `(type, number, flags)` triples (three-cell GIC specifiers).
pub(super) fn interrupt_triples(node: &Node<'_>) -> Result<Vec<[u32; 3]>, PlatformError> {
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
pub(super) const INTERRUPT_TYPE_SPI: u32 = 0;
const INTERRUPT_TYPE_PPI: u32 = 1;

/// INTID of a three-cell GIC interrupt specifier, if its numbers are in range.
pub(super) fn specifier_intid([kind, number, _flags]: [u32; 3]) -> Option<u32> {
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

pub(super) fn first_spi(node: &Node<'_>) -> Result<u32, PlatformError> {
    match interrupt_triples(node)?.first() {
        Some(&triple) if triple[0] == INTERRUPT_TYPE_SPI => {
            specifier_intid(triple).ok_or_else(|| bad_property(node, "interrupts"))
        }
        _ => Err(bad_property(node, "interrupts")),
    }
}

/// A string property looked up by a runtime name (aliases are named by the DT, not by us).
pub(super) fn string_lookup<'a>(
    node: &Node<'a>,
    name: &str,
) -> Result<Option<&'a str>, PlatformError> {
    match node.raw_property(name)? {
        None => Ok(None),
        Some(property) => {
            let bytes = property.value.strip_suffix(&[0]).unwrap_or(property.value);
            Ok(core::str::from_utf8(bytes).ok())
        }
    }
}
