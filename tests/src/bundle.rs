//! Guest bundles with per-test overrides: a copy of a layout's bundle (the uncompressed cpio newc
//! archive QEMU passes as `-initrd`) with `override/<cell>/bootargs` entries added.

use std::path::{Path, PathBuf};

use crate::Artifacts;

/// The contents of entry `name` of the bundle at `path`.
///
/// Panics if the bundle cannot be read, is not a newc archive or has no such entry.
pub fn entry(path: &Path, name: &str) -> Vec<u8> {
    let archive = std::fs::read(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
    cpio::entries(&archive)
        .unwrap_or_else(|| panic!("{} is not a cpio newc archive", path.display()))
        .into_iter()
        .find(|(entry, _, _)| entry == name)
        .map(|(_, _, data)| data)
        .unwrap_or_else(|| panic!("{} has no entry `{name}`", path.display()))
}

/// The release an uncompressed Linux `Image` names in its banner (`Linux version
/// 6.1.0-56-cloud-arm64 (...)`: what `uname -r` prints in the guest), if it has one.
pub fn linux_release(image: &[u8]) -> Option<String> {
    const BANNER: &[u8] = b"Linux version ";
    let start = image
        .windows(BANNER.len())
        .position(|window| window == BANNER)?
        + BANNER.len();
    let length = image[start..]
        .iter()
        .take(256)
        .position(|&byte| !byte.is_ascii_graphic())?;
    (length > 0).then(|| String::from_utf8_lossy(&image[start..start + length]).into_owned())
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_comes_from_the_linux_banner() {
        let mut image = b"MZ not a banner".to_vec();
        assert_eq!(linux_release(&image), None);
        image.extend_from_slice(
            b"\0Linux version 6.12.95+deb12-cloud-arm64 (debian-kernel@lists.debian.org)\0",
        );
        assert_eq!(
            linux_release(&image).as_deref(),
            Some("6.12.95+deb12-cloud-arm64")
        );
        assert_eq!(linux_release(b"Linux version \0"), None);
    }
}
