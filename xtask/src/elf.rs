//! ELF64 → raw binary, like `objcopy -O binary`: the PT_LOAD segments' file bytes at their physical
//! addresses, gaps zero-filled, starting at the lowest loaded address; and the section table.
use crate::fail;
use crate::util::Result;

/// `EM_AARCH64`.
const MACHINE_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
const PT_INTERP: u32 = 3;
/// Section flag: writable.
pub const SHF_WRITE: u64 = 1;
/// Section flag: occupies memory at run time.
pub const SHF_ALLOC: u64 = 2;
/// Section flag: executable.
pub const SHF_EXECINSTR: u64 = 4;
/// Section type: occupies no file space (`.bss`).
pub const SHT_NOBITS: u32 = 8;

/// A raw image made from an ELF file.
#[derive(Debug, PartialEq, Eq)]
pub struct RawImage {
    /// Physical address of the first byte.
    pub base: u64,
    /// The ELF entry point.
    pub entry: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// One section header's fields that matter here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// Name, from the section-name string table.
    pub name: String,
    /// `sh_size`: bytes in memory (for `SHT_NOBITS`) or in the file.
    pub size: u64,
    /// `sh_flags` (`SHF_*`).
    pub flags: u64,
    /// `sh_type` (`SHT_*`).
    pub kind: u32,
}

/// One program header's fields that matter here.
#[derive(Clone, Copy, Debug)]
struct Segment {
    kind: u32,
    offset: u64,
    physical: u64,
    file_size: u64,
}

fn read_u16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn read_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn read_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

fn segments(data: &[u8]) -> Option<Vec<Segment>> {
    let table = usize::try_from(read_u64(data, 0x20)?).ok()?;
    let entry_size = usize::from(read_u16(data, 0x36)?);
    let count = usize::from(read_u16(data, 0x38)?);
    (0..count)
        .map(|index| {
            let at = table.checked_add(index.checked_mul(entry_size)?)?;
            Some(Segment {
                kind: read_u32(data, at)?,
                offset: read_u64(data, at + 8)?,
                physical: read_u64(data, at + 24)?,
                file_size: read_u64(data, at + 32)?,
            })
        })
        .collect()
}

fn section_table(data: &[u8]) -> Option<Vec<Section>> {
    if data.get(..4)? != b"\x7fELF" {
        return None;
    }
    let table = usize::try_from(read_u64(data, 0x28)?).ok()?;
    let entry_size = usize::from(read_u16(data, 0x3A)?);
    let count = usize::from(read_u16(data, 0x3C)?);
    let names_index = usize::from(read_u16(data, 0x3E)?);
    let header = |index: usize| table.checked_add(index.checked_mul(entry_size)?);
    let names = usize::try_from(read_u64(data, header(names_index)?.checked_add(0x18)?)?).ok()?;
    // Entry 0 is the null section.
    (1..count)
        .map(|index| {
            let at = header(index)?;
            let name_offset = names.checked_add(usize::try_from(read_u32(data, at)?).ok()?)?;
            let name_bytes = data.get(name_offset..)?;
            let end = name_bytes.iter().position(|&byte| byte == 0)?;
            Some(Section {
                name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
                size: read_u64(data, at + 0x20)?,
                flags: read_u64(data, at + 8)?,
                kind: read_u32(data, at + 4)?,
            })
        })
        .collect()
}

/// The sections of an ELF64 file (without the null section 0); `what` names it in errors.
pub fn sections(data: &[u8], what: &str) -> Result<Vec<Section>> {
    match section_table(data) {
        Some(sections) => Ok(sections),
        None => fail!("{what} has no readable section table"),
    }
}

/// Checks that `data` is a little-endian ELF64 for AArch64; `what` names it in errors.
pub fn check_aarch64(data: &[u8], what: &str) -> Result<()> {
    if data.get(..4) != Some(b"\x7fELF") {
        fail!("{what} is not an ELF file");
    }
    if data.get(4) != Some(&2) || data.get(5) != Some(&1) {
        fail!("{what} is not a little-endian 64-bit ELF file");
    }
    if read_u16(data, 0x12) != Some(MACHINE_AARCH64) {
        fail!("{what} is not an AArch64 ELF file");
    }
    Ok(())
}

/// Whether the ELF asks for a dynamic loader.
pub fn is_dynamic(data: &[u8]) -> bool {
    segments(data).is_some_and(|list| list.iter().any(|segment| segment.kind == PT_INTERP))
}

/// Converts an AArch64 ELF executable to a raw image.
pub fn to_raw(data: &[u8], what: &str) -> Result<RawImage> {
    check_aarch64(data, what)?;
    let Some(entry) = read_u64(data, 0x18) else {
        fail!("{what}: truncated ELF header");
    };
    let Some(all) = segments(data) else {
        fail!("{what}: truncated program header table");
    };
    let loads: Vec<Segment> = all
        .into_iter()
        .filter(|segment| segment.kind == PT_LOAD && segment.file_size > 0)
        .collect();
    let Some(base) = loads.iter().map(|segment| segment.physical).min() else {
        fail!("{what} has no loadable segment with contents");
    };
    let mut end = base;
    for segment in &loads {
        let Some(segment_end) = segment.physical.checked_add(segment.file_size) else {
            fail!(
                "{what}: segment at {:#x} wraps the address space",
                segment.physical
            );
        };
        end = end.max(segment_end);
    }
    if end - base > 1 << 30 {
        fail!(
            "{what}: loadable segments span {:#x} bytes (more than 1 GiB)",
            end - base
        );
    }
    let mut bytes = vec![0u8; (end - base) as usize];
    for segment in &loads {
        let source = usize::try_from(segment.offset)
            .ok()
            .and_then(|start| {
                Some(start..start.checked_add(usize::try_from(segment.file_size).ok()?)?)
            })
            .and_then(|range| data.get(range));
        let Some(source) = source else {
            fail!(
                "{what}: segment at {:#x} lies outside the file",
                segment.physical
            );
        };
        let start = (segment.physical - base) as usize;
        bytes[start..start + source.len()].copy_from_slice(source);
    }
    Ok(RawImage { base, entry, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal AArch64 ELF with the given (physical address, contents) segments.
    fn elf(entry: u64, loads: &[(u64, &[u8])]) -> Vec<u8> {
        let table = 64usize;
        let mut data = vec![0u8; table + 56 * loads.len()];
        data[..4].copy_from_slice(b"\x7fELF");
        data[4] = 2;
        data[5] = 1;
        data[0x12..0x14].copy_from_slice(&MACHINE_AARCH64.to_le_bytes());
        data[0x18..0x20].copy_from_slice(&entry.to_le_bytes());
        data[0x20..0x28].copy_from_slice(&(table as u64).to_le_bytes());
        data[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        data[0x38..0x3a].copy_from_slice(&(loads.len() as u16).to_le_bytes());
        for (index, (physical, contents)) in loads.iter().enumerate() {
            let offset = data.len() as u64;
            let at = table + 56 * index;
            data[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            data[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
            data[at + 16..at + 24].copy_from_slice(&(physical + 0xffff_0000_0000).to_le_bytes());
            data[at + 24..at + 32].copy_from_slice(&physical.to_le_bytes());
            data[at + 32..at + 40].copy_from_slice(&(contents.len() as u64).to_le_bytes());
            data[at + 40..at + 48].copy_from_slice(&(contents.len() as u64 + 64).to_le_bytes());
            data.extend_from_slice(contents);
        }
        data
    }

    #[test]
    fn segments_land_at_physical_addresses_with_zeroed_gaps() {
        let data = elf(
            0x4000_0000,
            &[(0x4000_0008, b"data"), (0x4000_0000, b"code")],
        );
        let image = to_raw(&data, "test").expect("converts");
        assert_eq!(image.base, 0x4000_0000);
        assert_eq!(image.entry, 0x4000_0000);
        assert_eq!(image.bytes, b"code\0\0\0\0data");
    }

    #[test]
    fn rejects_non_elf_and_empty_images() {
        assert!(to_raw(b"not an elf at all", "x").is_err());
        assert!(to_raw(&elf(0, &[]), "x").is_err());
        let mut truncated = elf(0, &[(0x1000, b"abcd")]);
        truncated.truncate(truncated.len() - 2);
        assert!(to_raw(&truncated, "x").is_err());
    }

    /// A minimal ELF with a section table: the null section, `.names` (the section-name string
    /// table) and the given (name, size, flags, type) sections.
    fn elf_with_sections(sections: &[(&str, u64, u64, u32)]) -> Vec<u8> {
        let mut names = b"\0.names\0".to_vec();
        let mut offsets = Vec::new();
        for (name, ..) in sections {
            offsets.push(names.len() as u32);
            names.extend_from_slice(name.as_bytes());
            names.push(0);
        }
        let names_at = 64u64;
        let table = names_at as usize + names.len();
        let count = sections.len() + 2;
        let mut data = vec![0u8; table + 64 * count];
        data[..4].copy_from_slice(b"\x7fELF");
        data[4] = 2;
        data[5] = 1;
        data[0x28..0x30].copy_from_slice(&(table as u64).to_le_bytes());
        data[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        data[0x3c..0x3e].copy_from_slice(&(count as u16).to_le_bytes());
        data[0x3e..0x40].copy_from_slice(&1u16.to_le_bytes());
        data[64..table].copy_from_slice(&names);
        let mut header =
            |index: usize, name: u32, kind: u32, flags: u64, offset: u64, size: u64| {
                let at = table + 64 * index;
                data[at..at + 4].copy_from_slice(&name.to_le_bytes());
                data[at + 4..at + 8].copy_from_slice(&kind.to_le_bytes());
                data[at + 8..at + 16].copy_from_slice(&flags.to_le_bytes());
                data[at + 0x18..at + 0x20].copy_from_slice(&offset.to_le_bytes());
                data[at + 0x20..at + 0x28].copy_from_slice(&size.to_le_bytes());
            };
        header(1, 1, 3, 0, names_at, names.len() as u64);
        for (index, ((_, size, flags, kind), name)) in sections.iter().zip(offsets).enumerate() {
            header(index + 2, name, *kind, *flags, 0, *size);
        }
        data
    }

    #[test]
    fn section_table_is_read_with_names() {
        let data = elf_with_sections(&[
            (".text", 0x1234, SHF_ALLOC | SHF_EXECINSTR, 1),
            (".bss", 0x80, SHF_ALLOC | SHF_WRITE, SHT_NOBITS),
        ]);
        let sections = sections(&data, "test").expect("reads");
        let found: Vec<(&str, u64, u64, u32)> = sections
            .iter()
            .map(|s| (s.name.as_str(), s.size, s.flags, s.kind))
            .collect();
        assert_eq!(
            found,
            [
                (".names", 19, 0, 3),
                (".text", 0x1234, SHF_ALLOC | SHF_EXECINSTR, 1),
                (".bss", 0x80, SHF_ALLOC | SHF_WRITE, SHT_NOBITS),
            ]
        );
    }

    #[test]
    fn unreadable_section_table_is_an_error() {
        let error = sections(b"\x7fELFxx", "the image").expect_err("too short");
        assert_eq!(error.0, "the image has no readable section table");
        assert!(sections(b"not an elf at all, but long enough to have a header", "x").is_err());
        let mut truncated = elf_with_sections(&[(".text", 4, SHF_ALLOC, 1)]);
        truncated.truncate(truncated.len() - 32);
        assert!(sections(&truncated, "x").is_err());
    }
}
