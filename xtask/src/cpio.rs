//! File trees as cpio "newc" archives (Linux initramfs), written with cellvisor's
//! [`cellvisor::setup::cpio::Writer`]: output depends only on the tree.
use std::collections::BTreeMap;

use cellvisor::setup::cpio::Writer;

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
