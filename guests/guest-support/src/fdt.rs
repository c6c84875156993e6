//! Just enough of a flattened device tree reader to find `/chosen/bootargs`, the devices under
//! the root node by `compatible` (their first `reg` entry and first `interrupts` specifier, or any
//! property's raw value) and the RAM the `/memory` nodes describe.
#![forbid(unsafe_code)]

const FDT_MAGIC: u32 = 0xD00D_FEED;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

fn be32(blob: &[u8], offset: usize) -> Option<u32> {
    let bytes = blob.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

/// The NUL-terminated string at the start of `bytes`.
fn c_str(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|&byte| byte == 0)?;
    core::str::from_utf8(bytes.get(..end)?).ok()
}

fn align4(value: usize) -> Option<usize> {
    Some(value.checked_add(3)? & !3)
}

/// `totalsize` from a device tree header, if `header` starts with the FDT magic.
pub fn total_size(header: &[u8]) -> Option<usize> {
    if be32(header, 0)? != FDT_MAGIC {
        return None;
    }
    usize::try_from(be32(header, 4)?).ok()
}

/// One token of the structure block, as [`walk`] hands it over.
enum Token<'a> {
    /// A node starts; the root node is depth 1, its children depth 2.
    Begin { name: &'a str, depth: usize },
    /// A property of the innermost open node, which is at `depth`.
    Property {
        name: &'a str,
        value: &'a [u8],
        depth: usize,
    },
    /// The node at `depth` ends.
    End { depth: usize },
}

/// Walks the structure block, handing every token to `visit` until it returns `Some`.
fn walk<'a, T>(blob: &'a [u8], mut visit: impl FnMut(Token<'a>) -> Option<T>) -> Option<T> {
    total_size(blob)?;
    let structure = usize::try_from(be32(blob, 8)?).ok()?;
    let strings = usize::try_from(be32(blob, 12)?).ok()?;
    let mut offset = structure;
    let mut depth = 0usize;
    // Every token moves `offset` forward by at least 4 and reads are bounds-checked, so this ends.
    loop {
        let token = be32(blob, offset)?;
        offset += 4;
        let found = match token {
            FDT_BEGIN_NODE => {
                let name = c_str(blob.get(offset..)?)?;
                offset = align4(offset + name.len() + 1)?;
                depth += 1;
                visit(Token::Begin { name, depth })
            }
            FDT_END_NODE => {
                let found = visit(Token::End { depth });
                depth = depth.checked_sub(1)?;
                found
            }
            FDT_PROP => {
                let length = usize::try_from(be32(blob, offset)?).ok()?;
                let name_offset = usize::try_from(be32(blob, offset + 4)?).ok()?;
                let value = blob.get(offset + 8..offset.checked_add(8 + length)?)?;
                offset = align4(offset + 8 + length)?;
                let name = c_str(blob.get(strings.checked_add(name_offset)?..)?)?;
                visit(Token::Property { name, value, depth })
            }
            FDT_NOP => None,
            _ => return None,
        };
        if found.is_some() {
            return found;
        }
    }
}

/// The `bootargs` property of the `/chosen` node, if the blob has one.
pub fn chosen_bootargs(blob: &[u8]) -> Option<&str> {
    let mut in_chosen = false;
    walk(blob, |token| match token {
        Token::Begin { name, depth } => {
            in_chosen = depth == 2 && name == "chosen";
            None
        }
        Token::Property {
            name: "bootargs",
            value,
            depth: 2,
        } if in_chosen => c_str(value),
        Token::Property { .. } | Token::End { .. } => None,
    })
}

/// A child of the root node, as [`for_each_device`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceNode {
    /// The first `reg` entry's address (with the root's `#address-cells`).
    pub address: u64,
    /// The first `reg` entry's size (with the root's `#size-cells`); 0 if the node has no `reg`.
    pub size: u64,
    /// The first three cells of `interrupts` (for the GIC: type, number, flags), if it has them.
    pub interrupt: Option<[u32; 3]>,
}

/// Reads `cells` (1 or 2) big-endian cells from the start of `bytes` as one number.
pub fn cells_value(bytes: &[u8], cells: usize) -> Option<u64> {
    match cells {
        1 => be32(bytes, 0).map(u64::from),
        2 => Some(u64::from(be32(bytes, 0)?) << 32 | u64::from(be32(bytes, 4)?)),
        _ => None,
    }
}

/// Hands every child of the root whose `compatible` list names `compatible` and which has a `reg`
/// to `found`, in tree order, until it returns `true`. A property it cannot read is skipped.
pub fn for_each_device(blob: &[u8], compatible: &str, mut found: impl FnMut(DeviceNode) -> bool) {
    // The devicetree specification's defaults, until the root says otherwise.
    let (mut address_cells, mut size_cells) = (2usize, 1usize);
    let mut matches = false;
    let mut node = DeviceNode::default();
    let _ = walk(blob, |token| {
        match token {
            Token::Begin { depth: 2, .. } => {
                matches = false;
                node = DeviceNode::default();
            }
            Token::Property { name, value, depth } => match (depth, name) {
                (1, "#address-cells") => address_cells = be32(value, 0)? as usize,
                (1, "#size-cells") => size_cells = be32(value, 0)? as usize,
                (2, "compatible") => {
                    matches = value
                        .split(|&byte| byte == 0)
                        .any(|entry| entry == compatible.as_bytes());
                }
                (2, "reg") => {
                    node.address = cells_value(value, address_cells)?;
                    node.size = cells_value(value.get(address_cells * 4..)?, size_cells)?;
                }
                (2, "interrupts") => {
                    node.interrupt = Some([be32(value, 0)?, be32(value, 4)?, be32(value, 8)?]);
                }
                _ => {}
            },
            Token::End { depth: 2 } if matches && node.size != 0 && found(node) => {
                return Some(());
            }
            Token::Begin { .. } | Token::End { .. } => {}
        }
        None
    });
}

/// The root node's `#address-cells` and `#size-cells` (the devicetree specification's defaults, 2
/// and 1, where it does not say).
pub fn root_cells(blob: &[u8]) -> (usize, usize) {
    let (mut address_cells, mut size_cells) = (2usize, 1usize);
    let _ = walk(blob, |token| {
        match token {
            Token::Property {
                name: "#address-cells",
                value,
                depth: 1,
            } => address_cells = be32(value, 0)? as usize,
            Token::Property {
                name: "#size-cells",
                value,
                depth: 1,
            } => size_cells = be32(value, 0)? as usize,
            // The root's properties come before its first child.
            Token::Begin { depth: 2, .. } => return Some(()),
            Token::Begin { .. } | Token::Property { .. } | Token::End { .. } => {}
        }
        None
    });
    (address_cells, size_cells)
}

/// The raw value of `property` of the first child of the root whose `compatible` list names
/// `compatible` and which has that property.
pub fn device_property<'a>(blob: &'a [u8], compatible: &str, property: &str) -> Option<&'a [u8]> {
    let mut matches = false;
    let mut found: Option<&'a [u8]> = None;
    walk(blob, |token| match token {
        Token::Begin { depth: 2, .. } => {
            matches = false;
            found = None;
            None
        }
        Token::Property {
            name,
            value,
            depth: 2,
        } => {
            if name == "compatible" {
                matches = value
                    .split(|&byte| byte == 0)
                    .any(|entry| entry == compatible.as_bytes());
            }
            if name == property {
                found = Some(value);
            }
            None
        }
        Token::End { depth: 2 } if matches => found,
        Token::Begin { .. } | Token::Property { .. } | Token::End { .. } => None,
    })
}

/// Hands every `reg` entry (base, size) of every child of the root whose `device_type` is
/// `memory` to `found`, in tree order. An entry it cannot read ends that node's list.
pub fn for_each_memory(blob: &[u8], mut found: impl FnMut(u64, u64)) {
    let (address_cells, size_cells) = root_cells(blob);
    let entry = (address_cells + size_cells) * 4;
    let mut is_memory = false;
    let mut reg: &[u8] = &[];
    let _ = walk(blob, |token| {
        match token {
            Token::Begin { depth: 2, .. } => {
                is_memory = false;
                reg = &[];
            }
            Token::Property {
                name: "device_type",
                value,
                depth: 2,
            } => is_memory = c_str(value) == Some("memory"),
            Token::Property {
                name: "reg",
                value,
                depth: 2,
            } => reg = value,
            Token::End { depth: 2 } if is_memory && entry != 0 => {
                for chunk in reg.chunks_exact(entry) {
                    let (Some(base), Some(size)) = (
                        cells_value(chunk, address_cells),
                        cells_value(chunk.get(address_cells * 4..)?, size_cells),
                    ) else {
                        break;
                    };
                    found(base, size);
                }
            }
            Token::Begin { .. } | Token::Property { .. } | Token::End { .. } => {}
        }
        None::<()>
    });
}
