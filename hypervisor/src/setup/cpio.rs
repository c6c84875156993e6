//! cpio "newc" archives: a reader that treats its input as hostile, and a reproducible writer.
//!
//! The format is uncompressed cpio "newc" (`070701`, or `070702` whose checksum is not checked):
//! per entry a 110-byte header (the magic, then 13 fields of 8 ASCII-hex digits), the NUL-terminated
//! name, the data, name and data each padded to 4 bytes, until the `TRAILER!!!` entry. It is the
//! format of Linux initramfs and of cellvisor's guest bundle.
//!
//! [`read`] checks every length against the input and turns garbage into a [`CpioError`], never a
//! panic. [`Writer`] (used by the host tools) produces output that depends only on the entries added:
//! every timestamp is 0 and every owner is root.
#![forbid(unsafe_code)]

use alloc::vec::Vec;
use core::fmt;

/// Length of a newc header.
pub const HEADER_SIZE: usize = 110;
/// Magic of a newc header without checksum.
pub const MAGIC_NEWC: &[u8; 6] = b"070701";
/// Magic of a newc header with checksum (the checksum is not checked).
pub const MAGIC_NEWC_CRC: &[u8; 6] = b"070702";
/// Name of the entry that ends the archive.
pub const TRAILER: &str = "TRAILER!!!";
/// File-type bits of `c_mode`.
pub const MODE_TYPE_MASK: u32 = 0o170_000;
/// `c_mode` file type of a directory (`S_IFDIR`).
pub const MODE_DIRECTORY: u32 = 0o040_000;
/// `c_mode` file type of a regular file (`S_IFREG`).
pub const MODE_REGULAR_FILE: u32 = 0o100_000;
/// `c_mode` file type of a symbolic link (`S_IFLNK`).
pub const MODE_SYMLINK: u32 = 0o120_000;
/// `c_mode` file type of a character device (`S_IFCHR`).
pub const MODE_CHARACTER_DEVICE: u32 = 0o020_000;

/// Indices of the 8-digit hex fields of a newc header, after the 6-byte magic.
const FIELD_MODE: usize = 1;
const FIELD_FILE_SIZE: usize = 6;
const FIELD_NAME_SIZE: usize = 11;
/// Digits of one header field.
const FIELD_DIGITS: usize = 8;

/// Why an archive could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpioError {
    /// The archive ends inside an entry or before `TRAILER!!!`.
    Truncated {
        /// Offset of the entry that is cut short.
        offset: usize,
    },
    /// An entry does not start with the newc magic `070701` (or `070702`).
    BadMagic {
        /// Offset of the entry.
        offset: usize,
    },
    /// A header field is not 8 hexadecimal digits.
    BadHeaderField {
        /// Offset of the entry.
        offset: usize,
    },
    /// An entry name is empty, lacks its NUL or is not UTF-8.
    BadName {
        /// Offset of the entry.
        offset: usize,
    },
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated { offset } => {
                write!(f, "cpio archive is truncated at byte {offset:#x}")
            }
            Self::BadMagic { offset } => {
                write!(f, "cpio entry at byte {offset:#x} is not newc (070701)")
            }
            Self::BadHeaderField { offset } => {
                write!(f, "cpio entry at byte {offset:#x} has a malformed header")
            }
            Self::BadName { offset } => {
                write!(f, "cpio entry at byte {offset:#x} has a malformed name")
            }
        }
    }
}

/// One entry of an archive (any file type), borrowing the archive bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The name, as stored (without its NUL).
    pub name: &'a str,
    /// `c_mode`: file type and permissions.
    pub mode: u32,
    /// The data (a symbolic link's target; empty for directories and devices).
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// Whether the entry is a regular file.
    pub fn is_regular_file(&self) -> bool {
        self.mode & MODE_TYPE_MASK == MODE_REGULAR_FILE
    }
}

/// The entries of an archive up to (not including) its trailer; see [`read`].
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    archive: &'a [u8],
    offset: usize,
    finished: bool,
}

/// Reads `archive` entry by entry. The iterator yields each entry before the trailer, or one
/// error and then nothing; bytes after the trailer (block padding) are ignored.
pub fn read(archive: &[u8]) -> Reader<'_> {
    Reader {
        archive,
        offset: 0,
        finished: false,
    }
}

/// Rounds `value` up to a multiple of 4, or `None` on overflow.
fn align4(value: usize) -> Option<usize> {
    value.checked_add(3).map(|value| value & !3)
}

/// Parses the `index`-th 8-digit hex field of the header `header` (of the entry at `offset`).
fn hex_field(header: &[u8], index: usize, offset: usize) -> Result<u32, CpioError> {
    let start = MAGIC_NEWC.len() + index * FIELD_DIGITS;
    let digits = header
        .get(start..start + FIELD_DIGITS)
        .ok_or(CpioError::Truncated { offset })?;
    let text = core::str::from_utf8(digits).map_err(|_| CpioError::BadHeaderField { offset })?;
    if !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(CpioError::BadHeaderField { offset });
    }
    u32::from_str_radix(text, 16).map_err(|_| CpioError::BadHeaderField { offset })
}

impl<'a> Reader<'a> {
    /// Reads the entry at `self.offset`: the entry and the offset of the next one.
    fn entry(&self) -> Result<(Entry<'a>, usize), CpioError> {
        let archive = self.archive;
        let offset = self.offset;
        let truncated = CpioError::Truncated { offset };
        let header = archive
            .get(offset..)
            .and_then(|rest| rest.get(..HEADER_SIZE))
            .ok_or(truncated)?;
        let magic = &header[..MAGIC_NEWC.len()];
        if magic != MAGIC_NEWC && magic != MAGIC_NEWC_CRC {
            return Err(CpioError::BadMagic { offset });
        }
        let mode = hex_field(header, FIELD_MODE, offset)?;
        let file_size = hex_field(header, FIELD_FILE_SIZE, offset)? as usize;
        let name_size = hex_field(header, FIELD_NAME_SIZE, offset)? as usize;

        let name_start = offset + HEADER_SIZE;
        let name_end = name_start.checked_add(name_size).ok_or(truncated)?;
        let name_bytes = archive.get(name_start..name_end).ok_or(truncated)?;
        let name = match name_bytes.split_last() {
            Some((0, name)) if !name.is_empty() => {
                core::str::from_utf8(name).map_err(|_| CpioError::BadName { offset })?
            }
            _ => return Err(CpioError::BadName { offset }),
        };

        let data_start = align4(name_end).ok_or(truncated)?;
        let data_end = data_start.checked_add(file_size).ok_or(truncated)?;
        let data = archive.get(data_start..data_end).ok_or(truncated)?;
        let next = align4(data_end).ok_or(truncated)?;
        Ok((Entry { name, mode, data }, next))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        match self.entry() {
            Ok((entry, _)) if entry.name == TRAILER => {
                self.finished = true;
                None
            }
            Ok((entry, next)) => {
                self.offset = next;
                Some(Ok(entry))
            }
            Err(error) => {
                self.finished = true;
                Some(Err(error))
            }
        }
    }
}

/// An archive being written. Inodes count up from 1 in the order entries are added (the trailer's
/// is 0); directories have 2 links, everything else 1.
#[derive(Clone, Debug)]
pub struct Writer {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends `value` as 8 upper-case hex digits.
fn push_hex(bytes: &mut Vec<u8>, value: u32) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for shift in (0..FIELD_DIGITS as u32).rev() {
        bytes.push(DIGITS[((value >> (shift * 4)) & 0xF) as usize]);
    }
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Self {
        Self {
            bytes: Vec::new(),
            next_inode: 1,
        }
    }

    /// Bytes written so far: the offset at which the next entry starts.
    pub fn position(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one entry with device number `rdev` (major, minor).
    ///
    /// # Panics
    ///
    /// If `name` or `data` is 4 GiB or longer, which newc cannot describe.
    fn push(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let (Ok(file_size), Ok(name_size)) =
            (u32::try_from(data.len()), u32::try_from(name.len() + 1))
        else {
            panic!("cpio newc entries and names are limited to 4 GiB ({name:?})");
        };
        let inode = if name == TRAILER { 0 } else { self.next_inode };
        self.next_inode = self.next_inode.wrapping_add(1);
        let nlink = if mode & MODE_TYPE_MASK == MODE_DIRECTORY {
            2
        } else {
            1
        };
        let fields = [
            inode, mode, 0, // uid
            0, // gid
            nlink, 0, // mtime
            file_size, 0, // devmajor
            0, // devminor
            rdev.0, rdev.1, name_size, 0, // check
        ];
        self.bytes.extend_from_slice(MAGIC_NEWC);
        for field in fields {
            push_hex(&mut self.bytes, field);
        }
        self.bytes.extend_from_slice(name.as_bytes());
        self.bytes.push(0);
        self.pad();
        self.bytes.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
    }

    /// Adds an entry with a `c_mode` of any file type (as [`read`] returns it) and device number 0.
    ///
    /// # Panics
    ///
    /// If `name` or `data` is 4 GiB or longer.
    pub fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.push(name, mode, (0, 0), data);
    }

    /// Adds a directory.
    pub fn directory(&mut self, name: &str, permissions: u32) {
        self.push(name, MODE_DIRECTORY | permissions, (0, 0), &[]);
    }

    /// Adds a regular file.
    ///
    /// # Panics
    ///
    /// If `name` or `data` is 4 GiB or longer.
    pub fn file(&mut self, name: &str, permissions: u32, data: &[u8]) {
        self.push(name, MODE_REGULAR_FILE | permissions, (0, 0), data);
    }

    /// Adds a symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.push(name, MODE_SYMLINK | 0o777, (0, 0), target.as_bytes());
    }

    /// Adds a character device node.
    pub fn character_device(&mut self, name: &str, permissions: u32, major: u32, minor: u32) {
        self.push(
            name,
            MODE_CHARACTER_DEVICE | permissions,
            (major, minor),
            &[],
        );
    }

    /// Ends the archive with the trailer and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.push(TRAILER, 0, (0, 0), &[]);
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_and_padding() {
        let mut writer = Writer::new();
        writer.file("ab", 0o644, b"hello");
        let bytes = writer.finish();
        assert_eq!(&bytes[..6], b"070701");
        // inode 1, mode 0100644, uid, gid, nlink 1, mtime 0, size 5.
        assert_eq!(
            &bytes[6..62],
            [
                "00000001", "000081A4", "00000000", "00000000", "00000001", "00000000", "00000005"
            ]
            .concat()
            .as_bytes()
        );
        // namesize 3 ("ab\0") at field 12.
        assert_eq!(&bytes[94..102], b"00000003");
        // 110 + 3 = 113 -> padded to 116; data at 116, 5 bytes, padded to 124.
        assert_eq!(&bytes[110..113], b"ab\0");
        assert_eq!(&bytes[116..121], b"hello");
        assert_eq!(&bytes[121..124], b"\0\0\0");
        assert_eq!(&bytes[124..130], b"070701");
        // The trailer has inode 0.
        assert_eq!(&bytes[130..138], b"00000000");
        assert_eq!(&bytes[234..245], b"TRAILER!!!\0");
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn devices_and_directories_have_their_fields() {
        let mut writer = Writer::new();
        writer.directory("dev", 0o755);
        let device_at = writer.position();
        writer.character_device("dev/null", 0o666, 1, 3);
        let bytes = writer.finish();
        // Directory: mode 040755, nlink 2.
        assert_eq!(&bytes[14..22], b"000041ED");
        assert_eq!(&bytes[38..46], b"00000002");
        let device = &bytes[device_at..];
        assert_eq!(&device[6..14], b"00000002", "second inode");
        assert_eq!(&device[14..22], b"000021B6");
        assert_eq!(&device[78..94], b"0000000100000003", "rdevmajor, rdevminor");
    }

    #[test]
    fn entries_read_back_in_order() {
        let mut writer = Writer::new();
        writer.directory("bin", 0o755);
        writer.file("bin/busybox", 0o755, b"\x7fELF...");
        writer.symlink("bin/sh", "busybox");
        writer.entry("odd", 0o100_600, b"12345");
        writer.character_device("console", 0o600, 5, 1);
        let mut bytes = writer.finish();
        bytes.resize(bytes.len().next_multiple_of(512), 0);
        let entries: Vec<Entry> = read(&bytes).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            entries,
            [
                Entry {
                    name: "bin",
                    mode: 0o040_755,
                    data: b""
                },
                Entry {
                    name: "bin/busybox",
                    mode: 0o100_755,
                    data: b"\x7fELF..."
                },
                Entry {
                    name: "bin/sh",
                    mode: 0o120_777,
                    data: b"busybox"
                },
                Entry {
                    name: "odd",
                    mode: 0o100_600,
                    data: b"12345"
                },
                Entry {
                    name: "console",
                    mode: 0o020_600,
                    data: b""
                },
            ]
        );
        let regular: Vec<&str> = entries
            .iter()
            .filter(|entry| entry.is_regular_file())
            .map(|entry| entry.name)
            .collect();
        assert_eq!(regular, ["bin/busybox", "odd"]);
    }

    #[test]
    fn errors_end_the_iteration() {
        assert_eq!(
            read(b"").collect::<Vec<_>>(),
            [Err(CpioError::Truncated { offset: 0 })]
        );
        assert_eq!(
            read(&[b'x'; HEADER_SIZE]).collect::<Vec<_>>(),
            [Err(CpioError::BadMagic { offset: 0 })]
        );
        let mut writer = Writer::new();
        writer.file("a", 0o644, b"1");
        let second = writer.position();
        writer.file("b", 0o644, b"2");
        let trailer = writer.position();
        let mut bytes = writer.finish();
        // The trailer is missing.
        bytes.truncate(trailer);
        let read_back: Vec<_> = read(&bytes).collect();
        assert_eq!(read_back.len(), 3);
        assert_eq!(read_back[2], Err(CpioError::Truncated { offset: trailer }));
        // A name without its NUL.
        bytes[second + HEADER_SIZE + 1] = b'x';
        assert_eq!(
            read(&bytes).nth(1),
            Some(Err(CpioError::BadName { offset: second }))
        );
        assert!(read(MAGIC_NEWC_CRC).next().unwrap().is_err());
    }
}
