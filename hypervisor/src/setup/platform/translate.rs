//! Bus address translation: a node's `reg` carried up through every ancestor bus's `ranges`.

use alloc::string::String;
use alloc::vec::Vec;

use crate::board::MemRange;

use super::error::PlatformError;
use super::properties::{CellSizes, Node, bad_property, node_name, read_cells, reg};

/// One `ranges` entry of a bus: child-bus addresses `child .. child + size` appear at
/// `parent .. parent + size` on the bus above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RangeEntry {
    /// First address of the window on the child bus.
    child: u64,
    /// Where that address appears on the parent bus.
    parent: u64,
    /// Length of the window in bytes.
    size: u64,
}

/// How one bus maps its children's addresses onto its parent's.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BusLevel {
    /// The bus node's name, for errors.
    name: String,
    /// The bus's `ranges`; `None` when it is empty (identity).
    ranges: Option<Vec<RangeEntry>>,
}

/// The buses between the root and a node's parent, outermost first: empty for a node directly
/// under the root, whose `reg` is already a CPU physical address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct AddressMap {
    /// One level per bus, outermost first.
    levels: Vec<BusLevel>,
}

impl AddressMap {
    /// The map of the root's children: no translation.
    pub(super) fn root() -> Self {
        Self::default()
    }

    /// The map of `bus`'s children, where `bus` is a child of this map's innermost bus and
    /// `parent_cells` are the cell sizes its parent states. A bus without `ranges` maps nothing
    /// onto its parent ([`PlatformError::TranslatedAddress`]).
    pub(super) fn enter(
        &self,
        bus: &Node<'_>,
        parent_cells: CellSizes,
    ) -> Result<Self, PlatformError> {
        let child_cells = CellSizes::of(bus)?;
        let property = bus
            .raw_property("ranges")?
            .ok_or_else(|| PlatformError::TranslatedAddress(node_name(bus)))?;
        let ranges = if property.value.is_empty() {
            None
        } else {
            let entry_size = (child_cells.address + parent_cells.address + child_cells.size) * 4;
            if entry_size == 0 || property.value.len() % entry_size != 0 {
                return Err(bad_property(bus, "ranges"));
            }
            let entries = property
                .value
                .chunks_exact(entry_size)
                .map(|entry| {
                    let (child, rest) = entry.split_at(child_cells.address * 4);
                    let (parent, size) = rest.split_at(parent_cells.address * 4);
                    match (
                        read_cells(child, child_cells.address),
                        read_cells(parent, parent_cells.address),
                        read_cells(size, child_cells.size),
                    ) {
                        (Some(child), Some(parent), Some(size)) => Ok(RangeEntry {
                            child,
                            parent,
                            size,
                        }),
                        _ => Err(bad_property(bus, "ranges")),
                    }
                })
                .collect::<Result<Vec<RangeEntry>, PlatformError>>()?;
            Some(entries)
        };
        let mut levels = self.levels.clone();
        levels.push(BusLevel {
            name: node_name(bus),
            ranges,
        });
        Ok(Self { levels })
    }

    /// Carries `window`, a `reg` entry of `node` (a child of the innermost bus), up to a CPU
    /// physical address. The whole window must fit one `ranges` entry at every level.
    pub(super) fn translate(
        &self,
        node: &Node<'_>,
        window: MemRange,
    ) -> Result<MemRange, PlatformError> {
        let mut window = window;
        for level in self.levels.iter().rev() {
            let Some(entries) = &level.ranges else {
                continue;
            };
            let fits = |entry: &&RangeEntry| {
                window.base >= entry.child
                    && window
                        .size
                        .checked_add(window.base - entry.child)
                        .is_some_and(|end| end <= entry.size)
            };
            let entry =
                entries
                    .iter()
                    .find(fits)
                    .ok_or_else(|| PlatformError::UntranslatableAddress {
                        node: node_name(node),
                        address: window.base,
                        bus: level.name.clone(),
                    })?;
            let base = (window.base - entry.child)
                .checked_add(entry.parent)
                .ok_or_else(|| bad_property(node, "reg"))?;
            window = MemRange::new(base, window.size);
        }
        Ok(window)
    }

    /// Every `reg` window of `node` as CPU physical addresses (`parent_cells` are its parent's
    /// cell sizes).
    pub(super) fn reg(
        &self,
        node: &Node<'_>,
        parent_cells: CellSizes,
    ) -> Result<Vec<MemRange>, PlatformError> {
        reg(node, parent_cells)?
            .into_iter()
            .map(|window| self.translate(node, window))
            .collect()
    }

    /// The first `reg` window of `node` as a CPU physical address.
    pub(super) fn first_reg(
        &self,
        node: &Node<'_>,
        parent_cells: CellSizes,
    ) -> Result<MemRange, PlatformError> {
        self.reg(node, parent_cells)?
            .first()
            .copied()
            .ok_or_else(|| bad_property(node, "reg"))
    }
}
