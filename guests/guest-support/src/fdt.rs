//! Just enough of a flattened device tree reader to find `/chosen/bootargs`.
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

/// The `bootargs` property of the `/chosen` node, if the blob has one.
pub fn chosen_bootargs(blob: &[u8]) -> Option<&str> {
    total_size(blob)?;
    let structure = usize::try_from(be32(blob, 8)?).ok()?;
    let strings = usize::try_from(be32(blob, 12)?).ok()?;
    let mut offset = structure;
    let mut depth = 0usize;
    let mut in_chosen = false;
    // Every token moves `offset` forward by at least 4 and reads are bounds-checked, so this ends.
    loop {
        let token = be32(blob, offset)?;
        offset += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name = c_str(blob.get(offset..)?)?;
                offset = align4(offset + name.len() + 1)?;
                depth += 1;
                // The root node is depth 1, its children depth 2.
                in_chosen = depth == 2 && name == "chosen";
            }
            FDT_END_NODE => {
                if in_chosen {
                    return None;
                }
                depth = depth.checked_sub(1)?;
            }
            FDT_PROP => {
                let length = usize::try_from(be32(blob, offset)?).ok()?;
                let name_offset = usize::try_from(be32(blob, offset + 4)?).ok()?;
                let value = blob.get(offset + 8..offset.checked_add(8 + length)?)?;
                offset = align4(offset + 8 + length)?;
                if in_chosen && c_str(blob.get(strings.checked_add(name_offset)?..)?)? == "bootargs"
                {
                    return c_str(value);
                }
            }
            FDT_NOP => {}
            _ => return None,
        }
    }
}
