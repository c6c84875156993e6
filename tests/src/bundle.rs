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

/// A guest bundle's entries as owned values, read and written with cellvisor's
/// [`cellvisor::setup::cpio`].
pub mod cpio {
    use cellvisor::setup::cpio::{self as newc, Writer};

    /// An entry: name, mode, contents.
    pub type Entry = (String, u32, Vec<u8>);

    /// The entries of `archive` up to its trailer, of every file type; `None` if it is not a
    /// newc archive.
    pub fn entries(archive: &[u8]) -> Option<Vec<Entry>> {
        newc::read(archive)
            .map(|entry| {
                let entry = entry.ok()?;
                Some((entry.name.to_owned(), entry.mode, entry.data.to_vec()))
            })
            .collect()
    }

    /// A newc archive of `entries` and the trailer.
    pub fn archive(entries: &[Entry]) -> Vec<u8> {
        let mut writer = Writer::new();
        for (name, mode, data) in entries {
            writer.entry(name, *mode, data);
        }
        writer.finish()
    }
}
