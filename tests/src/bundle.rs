//! Guest bundles with per-test overrides: a copy of a layout's bundle (the uncompressed cpio newc
//! archive QEMU passes as `-initrd`) with `override/<cell>/bootargs` entries added.

use std::path::PathBuf;

use crate::Artifacts;

/// A copy of `layout`'s bundle with an `override/<cell>/bootargs` entry for each (cell, command
/// line) of `bootargs`, replacing any such entry the bundle has for that cell. It is written to
/// `<CELLVISOR_OUT>/test-bundles/<prefix><test>.cpio`, where `<test>` is the last `::` component
/// of the current thread's name (under libtest, the test's name), so each test has its own file.
///
/// Panics if the bundle cannot be read or is not a newc archive, or the copy cannot be written.
pub fn with_bootargs(
    artifacts: &Artifacts,
    layout: &str,
    bootargs: &[(&str, &str)],
    prefix: &str,
) -> PathBuf {
    let original = artifacts.bundle(layout);
    let archive = std::fs::read(&original)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", original.display()));
    let mut entries = cpio::entries(&archive)
        .unwrap_or_else(|| panic!("{} is not a cpio newc archive", original.display()));
    entries.retain(|(name, _, _)| {
        !bootargs
            .iter()
            .any(|(cell, _)| *name == format!("override/{cell}/bootargs"))
    });
    for (cell, args) in bootargs {
        entries.push((
            format!("override/{cell}/bootargs"),
            0o100644,
            args.as_bytes().to_vec(),
        ));
    }
    let name = std::thread::current()
        .name()
        .and_then(|name| name.rsplit("::").next())
        .unwrap_or("bundle")
        .to_owned();
    let directory = artifacts.out_dir.join("test-bundles");
    std::fs::create_dir_all(&directory)
        .unwrap_or_else(|error| panic!("cannot create {}: {error}", directory.display()));
    let path = directory.join(format!("{prefix}{name}.cpio"));
    std::fs::write(&path, cpio::archive(&entries))
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
    path
}

/// Just enough cpio "newc" to read a guest bundle's entries and write them back.
pub mod cpio {
    const MAGIC: &[u8] = b"070701";
    const HEADER_SIZE: usize = 110;
    const TRAILER: &str = "TRAILER!!!";

    /// An entry: name, mode, contents.
    pub type Entry = (String, u32, Vec<u8>);

    fn pad4(offset: usize) -> usize {
        offset.div_ceil(4) * 4
    }

    fn field(header: &[u8], index: usize) -> Option<usize> {
        let text = std::str::from_utf8(header.get(6 + index * 8..14 + index * 8)?).ok()?;
        usize::from_str_radix(text, 16).ok()
    }

    /// The entries of `archive` up to its trailer.
    pub fn entries(archive: &[u8]) -> Option<Vec<Entry>> {
        let mut entries = Vec::new();
        let mut offset = 0;
        loop {
            let header = archive.get(offset..offset + HEADER_SIZE)?;
            if &header[..6] != MAGIC {
                return None;
            }
            let (mode, size, name_size) =
                (field(header, 1)?, field(header, 6)?, field(header, 11)?);
            let name_start = offset + HEADER_SIZE;
            let name = archive.get(name_start..name_start + name_size.checked_sub(1)?)?;
            let name = String::from_utf8(name.to_vec()).ok()?;
            let data_start = pad4(name_start + name_size);
            if name == TRAILER {
                return Some(entries);
            }
            let data = archive.get(data_start..data_start + size)?.to_vec();
            entries.push((name, u32::try_from(mode).ok()?, data));
            offset = pad4(data_start + size);
        }
    }

    /// A newc archive of `entries` and the trailer.
    pub fn archive(entries: &[Entry]) -> Vec<u8> {
        let mut bytes = Vec::new();
        let trailer = (TRAILER.to_owned(), 0, Vec::new());
        for (inode, (name, mode, data)) in entries.iter().chain([&trailer]).enumerate() {
            let fields = [
                inode + 1,
                *mode as usize,
                0, // uid
                0, // gid
                1, // nlink
                0, // mtime
                data.len(),
                0, // devmajor
                0, // devminor
                0, // rdevmajor
                0, // rdevminor
                name.len() + 1,
                0, // check
            ];
            bytes.extend_from_slice(MAGIC);
            for value in fields {
                bytes.extend_from_slice(format!("{value:08X}").as_bytes());
            }
            bytes.extend_from_slice(name.as_bytes());
            bytes.push(0);
            bytes.resize(pad4(bytes.len()), 0);
            bytes.extend_from_slice(data);
            bytes.resize(pad4(bytes.len()), 0);
        }
        bytes
    }
}
