//! The cells on the channel, from the device tree's `cellvisor,cells` property ("NAME:CID"
//! strings, NUL-separated as Linux shows them under /proc/device-tree).
use std::path::{Path, PathBuf};

/// Where Linux shows the device tree.
pub const DEVICE_TREE: &str = "/proc/device-tree";

/// The property naming the cells on the channel.
const PROPERTY: &str = "cellvisor,cells";

/// How many node levels below the root are searched for [`PROPERTY`].
const MAX_DEPTH: usize = 3;

/// The first `cellvisor,cells` file in `root` or its nodes down to [`MAX_DEPTH`] levels, nodes in
/// name order (the virtio-mmio node's name is not relied on).
pub fn find(root: &Path) -> Option<PathBuf> {
    fn search(dir: &Path, depth: usize) -> Option<PathBuf> {
        let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
        entries.sort_by_key(|entry| entry.file_name());
        let is_dir = |entry: &std::fs::DirEntry| entry.file_type().is_ok_and(|kind| kind.is_dir());
        if let Some(entry) = entries
            .iter()
            .find(|entry| entry.file_name() == PROPERTY && !is_dir(entry))
        {
            return Some(entry.path());
        }
        if depth == MAX_DEPTH {
            return None;
        }
        entries
            .iter()
            .filter(|entry| is_dir(entry))
            .find_map(|entry| search(&entry.path(), depth + 1))
    }
    search(root, 0)
}

/// The `(name, cid)` pairs of a `cellvisor,cells` value; malformed strings are skipped.
pub fn parse(value: &[u8]) -> Vec<(String, u32)> {
    value
        .split(|&byte| byte == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .filter_map(|entry| {
            let (name, cid) = entry.rsplit_once(':')?;
            Some((name.trim().to_owned(), cid.trim().parse().ok()?))
        })
        .filter(|(name, _)| !name.is_empty())
        .collect()
}

/// The cells on the channel of the device tree at `root`.
pub fn read(root: &Path) -> Result<Vec<(String, u32)>, String> {
    let Some(file) = find(root) else {
        return Err(format!(
            "no vsock channel ({PROPERTY} not found under {})",
            root.display()
        ));
    };
    let value = std::fs::read(&file).map_err(|error| format!("{}: {error}", file.display()))?;
    Ok(parse(&value))
}

/// The CID of `peer`: a number as it is, a cell name looked up in the device tree at `root`.
pub fn resolve(root: &Path, peer: &str) -> Result<u32, String> {
    if let Ok(cid) = peer.parse() {
        return Ok(cid);
    }
    let cells = read(root)?;
    match cells.iter().find(|(name, _)| name == peer) {
        Some(&(_, cid)) => Ok(cid),
        None => {
            let known: Vec<String> = cells
                .iter()
                .map(|(name, cid)| format!("{name}:{cid}"))
                .collect();
            Err(format!(
                "no cell `{peer}` on the channel (cells: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("vsock-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("scratch directory");
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn cells_come_from_the_property_wherever_the_node_is() {
        let tree = Scratch::new("dt");
        let root = &tree.0;
        for node in ["cpus/cpu@0", "pl011@9000000", "soc/virtio_mmio@a000000"] {
            std::fs::create_dir_all(root.join(node)).unwrap();
            std::fs::write(root.join(node).join("compatible"), b"x\0").unwrap();
        }
        // Not at a fixed name: found by searching.
        std::fs::create_dir_all(root.join("soc/channel@c020000")).unwrap();
        std::fs::write(
            root.join("soc/channel@c020000").join(PROPERTY),
            b"personal:3\0corporate:4\0",
        )
        .unwrap();
        assert_eq!(
            find(root),
            Some(root.join("soc/channel@c020000").join(PROPERTY))
        );
        assert_eq!(
            read(root).unwrap(),
            [("personal".to_owned(), 3), ("corporate".to_owned(), 4)]
        );
        assert_eq!(resolve(root, "corporate"), Ok(4));
        assert_eq!(resolve(root, "personal"), Ok(3));
        assert_eq!(resolve(root, "17"), Ok(17));
        assert_eq!(
            resolve(root, "banking"),
            Err("no cell `banking` on the channel (cells: personal:3, corporate:4)".to_owned())
        );
    }

    #[test]
    fn too_deep_or_missing_is_no_channel() {
        let tree = Scratch::new("dt-deep");
        let root = &tree.0;
        let deep = root.join("a/b/c/d");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join(PROPERTY), b"personal:3\0").unwrap();
        assert_eq!(find(root), None);
        let error = resolve(root, "personal").unwrap_err();
        assert!(error.starts_with("no vsock channel (cellvisor,cells not found under"));
        // Three levels down is still found.
        std::fs::rename(deep.join(PROPERTY), root.join("a/b/c").join(PROPERTY)).unwrap();
        assert_eq!(resolve(root, "personal"), Ok(3));
        assert_eq!(resolve(&root.join("nonexistent"), "3"), Ok(3));
    }

    #[test]
    fn malformed_entries_are_skipped() {
        assert_eq!(
            parse(b"personal:3\0:5\0nocid\0corporate:x\0\xff:1\0corporate:4"),
            [("personal".to_owned(), 3), ("corporate".to_owned(), 4)]
        );
        assert!(parse(b"").is_empty());
    }
}
