//! A writer for uncompressed cpio "newc" archives (the format of Linux initramfs and cellvisor's guest
//! bundle). Output depends only on the entries added: every timestamp is 0 and owner is root.
use std::collections::BTreeMap;

/// `S_IFDIR`, `S_IFREG`, `S_IFLNK`, `S_IFCHR`.
const DIRECTORY: u32 = 0o040000;
const REGULAR: u32 = 0o100000;
const SYMLINK: u32 = 0o120000;
const CHARACTER_DEVICE: u32 = 0o020000;

/// An archive being written.
#[derive(Debug, Default)]
pub struct Writer {
    bytes: Vec<u8>,
    next_inode: u32,
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Writer {
        Writer {
            bytes: Vec::new(),
            next_inode: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let inode = if name == "TRAILER!!!" {
            0
        } else {
            self.next_inode
        };
        self.next_inode += 1;
        let nlink = if mode & 0o170000 == DIRECTORY { 2 } else { 1 };
        let fields = [
            inode,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.bytes.extend_from_slice(b"070701");
        for field in fields {
            self.bytes
                .extend_from_slice(format!("{field:08X}").as_bytes());
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

    /// Adds a directory.
    pub fn directory(&mut self, name: &str, permissions: u32) {
        self.entry(name, DIRECTORY | permissions, (0, 0), &[]);
    }

    /// Adds a regular file.
    pub fn file(&mut self, name: &str, permissions: u32, data: &[u8]) {
        assert!(
            data.len() <= u32::MAX as usize,
            "cpio newc entries are limited to 4 GiB"
        );
        self.entry(name, REGULAR | permissions, (0, 0), data);
    }

    /// Adds a symbolic link to `target`.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, SYMLINK | 0o777, (0, 0), target.as_bytes());
    }

    /// Adds a character device node.
    pub fn character_device(&mut self, name: &str, permissions: u32, major: u32, minor: u32) {
        self.entry(name, CHARACTER_DEVICE | permissions, (major, minor), &[]);
    }

    /// Ends the archive with the trailer and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.bytes
    }
}

/// One entry of a file tree to archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory with these permissions.
    Directory(u32),
    /// A file with these permissions and contents.
    File(u32, Vec<u8>),
    /// A symbolic link.
    Symlink(String),
    /// A character device (permissions, major, minor).
    CharacterDevice(u32, u32, u32),
}

/// Archives a tree given as path → node (paths without a leading `/`), in sorted order, adding the
/// parent directories that are not listed.
pub fn archive_tree(tree: &BTreeMap<String, Node>) -> Vec<u8> {
    let mut complete = tree.clone();
    for path in tree.keys() {
        let mut parent = path.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            complete
                .entry(up.to_owned())
                .or_insert(Node::Directory(0o755));
            parent = up;
        }
    }
    let mut writer = Writer::new();
    for (path, node) in &complete {
        match node {
            Node::Directory(permissions) => writer.directory(path, *permissions),
            Node::File(permissions, data) => writer.file(path, *permissions, data),
            Node::Symlink(target) => writer.symlink(path, target),
            Node::CharacterDevice(permissions, major, minor) => {
                writer.character_device(path, *permissions, *major, *minor)
            }
        }
    }
    writer.finish()
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
        assert_eq!(&bytes[234..245], b"TRAILER!!!\0");
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn tree_adds_parents_in_sorted_order() {
        let mut tree = BTreeMap::new();
        tree.insert("bin/sh".to_owned(), Node::Symlink("busybox".into()));
        tree.insert("dev/console".to_owned(), Node::CharacterDevice(0o600, 5, 1));
        let bytes = archive_tree(&tree);
        let text = String::from_utf8_lossy(&bytes);
        let order: Vec<usize> = [
            "bin\0",
            "bin/sh\0",
            "dev\0",
            "dev/console\0",
            "TRAILER!!!\0",
        ]
        .iter()
        .map(|name| text.find(name).expect(name))
        .collect();
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
        assert_eq!(archive_tree(&tree), bytes, "reproducible");
    }
}
