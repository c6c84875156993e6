//! Builds a Linux cell's initramfs from `guests/linux/common/` and `guests/linux/<cell>/`, reproducibly.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cpio::{self, Node};
use crate::debian::{KernelPin, LinuxGuest};
use crate::fail;
use crate::prereq;
use crate::util::{self, Context, Result};

/// The recipe directory of a cell.
pub fn recipe_dir(cell: &str) -> PathBuf {
    util::workspace_root()
        .join("guests")
        .join("linux")
        .join(cell)
}

/// Adds the files under `dir` to `tree` at `prefix`, replacing entries already there.
fn add_dir(tree: &mut BTreeMap<String, Node>, dir: &Path, prefix: &str) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| entry.ok())
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let archive_path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let meta = std::fs::symlink_metadata(&path)
            .context(|| format!("cannot stat {}", path.display()))?;
        if meta.is_dir() {
            tree.insert(archive_path.clone(), Node::Directory(0o755));
            add_dir(tree, &path, &archive_path)?;
        } else if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path)
                .context(|| format!("cannot read link {}", path.display()))?;
            tree.insert(
                archive_path,
                Node::Symlink(target.to_string_lossy().into_owned()),
            );
        } else {
            use std::os::unix::fs::PermissionsExt;
            let executable = meta.permissions().mode() & 0o111 != 0;
            let data =
                std::fs::read(&path).context(|| format!("cannot read {}", path.display()))?;
            tree.insert(
                archive_path,
                Node::File(if executable { 0o755 } else { 0o644 }, data),
            );
        }
    }
    Ok(())
}

/// A module name as the kernel compares them (`virtio-mmio` and `virtio_mmio` are one module),
/// from a name or a path (`kernel/drivers/virtio/virtio_mmio.ko.xz`).
fn module_name(name_or_path: &str) -> String {
    let file = name_or_path.rsplit('/').next().unwrap_or(name_or_path);
    file.split(".ko").next().unwrap_or(file).replace('-', "_")
}

/// Module paths (relative to `lib/modules/<release>/`) for `names`, dependencies first; names in
/// `builtin` (the kernel's `modules.builtin`: built into the kernel, nothing to load) are left out.
fn module_load_order(modules_dep: &str, builtin: &str, names: &[String]) -> Result<Vec<String>> {
    let dependencies: BTreeMap<&str, Vec<&str>> = modules_dep
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(module, deps)| (module.trim(), deps.split_whitespace().collect()))
        .collect();
    let builtin: Vec<String> = builtin.lines().map(module_name).collect();
    let mut order: Vec<String> = Vec::new();
    fn visit<'a>(
        module: &'a str,
        dependencies: &BTreeMap<&'a str, Vec<&'a str>>,
        order: &mut Vec<String>,
    ) {
        if order.iter().any(|done| done == module) {
            return;
        }
        // modules.dep lists the full closure, deepest dependency last.
        for dependency in dependencies.get(module).into_iter().flatten().rev() {
            visit(dependency, dependencies, order);
        }
        if !order.iter().any(|done| done == module) {
            order.push(module.to_owned());
        }
    }
    for name in names {
        let wanted = module_name(name);
        let Some(module) = dependencies
            .keys()
            .find(|module| module_name(module) == wanted)
        else {
            if builtin.contains(&wanted) {
                continue;
            }
            fail!("kernel module `{name}` is not in the Debian kernel package's modules.dep");
        };
        visit(module, &dependencies, &mut order);
    }
    Ok(order)
}

/// The uncompressed bytes of the module at `path` under `modules_root`: the file itself, or its
/// xz-compressed form (`<path>.xz`, how Debian ships modules since 6.x) decompressed with `xz`.
fn module_bytes(modules_root: &Path, path: &str) -> Result<Vec<u8>> {
    let file = modules_root.join(path);
    let compressed = if path.ends_with(".xz") {
        file
    } else if file.is_file() {
        return std::fs::read(&file).context(|| format!("cannot read module {path}"));
    } else {
        modules_root.join(format!("{path}.xz"))
    };
    prereq::tool("xz", "xz-utils")?;
    let output = Command::new("xz")
        .args(["-d", "-c"])
        .arg(&compressed)
        .stdin(Stdio::null())
        .output()
        .context(|| "cannot run xz".to_owned())?;
    if !output.status.success() {
        fail!(
            "cannot decompress module {}: {}",
            compressed.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// The value of the `depends=` field in a module's `.modinfo` section (comma-separated names).
fn modinfo_depends(module: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\0depends=";
    let start = module.windows(KEY.len()).position(|window| window == KEY)? + KEY.len();
    let length = module[start..].iter().position(|&byte| byte == 0)?;
    Some(String::from_utf8_lossy(&module[start..start + length]).into_owned())
}

/// `modules.dep` lines (`path: dependency paths`) for `names` and everything they depend on, read
/// from `modules.order` and each module's `depends=` field, as `depmod` would write them.
fn modules_dep_from_modinfo(modules_root: &Path, names: &[String]) -> Result<String> {
    let order = std::fs::read_to_string(modules_root.join("modules.order")).context(|| {
        format!(
            "cannot read {}",
            modules_root.join("modules.order").display()
        )
    })?;
    let path_of: BTreeMap<String, &str> = order
        .lines()
        .map(str::trim)
        .filter(|line| line.ends_with(".ko"))
        .map(|path| (module_name(path), path))
        .collect();
    let mut lines = BTreeMap::new();
    let mut pending: Vec<String> = names.iter().map(|name| module_name(name)).collect();
    while let Some(name) = pending.pop() {
        // Unknown names are left for `module_load_order` to report; built-in dependencies have no file.
        let Some(&path) = path_of.get(&name) else {
            continue;
        };
        if lines.contains_key(path) {
            continue;
        }
        let data = module_bytes(modules_root, path)?;
        let depends = modinfo_depends(&data).unwrap_or_default();
        let dependency_paths: Vec<&str> = depends
            .split(',')
            .map(|dependency| module_name(dependency.trim()))
            .filter(|dependency| !dependency.is_empty())
            .filter_map(|dependency| {
                pending.push(dependency.clone());
                path_of.get(&dependency).copied()
            })
            .collect();
        lines.insert(path, dependency_paths.join(" "));
    }
    Ok(lines
        .iter()
        .map(|(path, dependencies)| format!("{path}: {dependencies}\n"))
        .collect())
}

/// The programs built from this workspace that go into every Linux cell's initramfs.
#[derive(Clone, Debug)]
pub struct Tools {
    /// The static `vsock` tool (guests/linux/vsock-tool), installed as `/bin/vsock`.
    pub vsock: PathBuf,
}

/// The uncompressed initramfs of `cell`.
pub fn archive(cell: &str, guest: &LinuxGuest, tools: &Tools) -> Result<Vec<u8>> {
    let recipe = recipe_dir(cell);
    if !recipe.is_dir() {
        fail!(
            "no initramfs recipe for cell `{cell}`: create {} (see guests/linux/README.md)",
            util::pretty(&recipe)
        );
    }
    let mut tree = BTreeMap::new();
    for dir in [
        "bin", "dev", "etc", "proc", "root", "run", "sbin", "sys", "tmp", "usr/bin", "usr/sbin",
    ] {
        tree.insert(dir.to_owned(), Node::Directory(0o755));
    }
    tree.insert("tmp".to_owned(), Node::Directory(0o1777));
    tree.insert("root".to_owned(), Node::Directory(0o700));
    tree.insert("dev/console".to_owned(), Node::CharacterDevice(0o600, 5, 1));
    tree.insert("dev/null".to_owned(), Node::CharacterDevice(0o666, 1, 3));
    let busybox = std::fs::read(&guest.busybox)
        .context(|| format!("cannot read {}", guest.busybox.display()))?;
    tree.insert("bin/busybox".to_owned(), Node::File(0o755, busybox));
    tree.insert("bin/sh".to_owned(), Node::Symlink("busybox".to_owned()));
    let vsock =
        std::fs::read(&tools.vsock).context(|| format!("cannot read {}", tools.vsock.display()))?;
    tree.insert("bin/vsock".to_owned(), Node::File(0o755, vsock));
    add_dir(&mut tree, &recipe.with_file_name("common"), "")?;
    add_dir(&mut tree, &recipe, "")?;
    if !matches!(tree.get("init"), Some(Node::File(0o755, _))) {
        fail!(
            "the initramfs of `{cell}` has no executable /init (expected guests/linux/common/init)"
        );
    }
    if let Some(Node::File(_, list)) = tree.remove("modules") {
        let names: Vec<String> = String::from_utf8_lossy(&list)
            .lines()
            .map(|line| line.trim().to_owned())
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .collect();
        let release = guest.kernel_release.as_deref().unwrap_or("unknown");
        let modules_root = guest
            .kernel_tree
            .as_ref()
            .map(|tree| tree.join("lib/modules").join(release))
            .filter(|root| root.is_dir());
        let Some(modules_root) = modules_root else {
            // A kernel from the environment with no Debian package of its release beside it.
            eprintln!(
                "note: no Debian modules of the kernel's release ({release}): the initramfs of `{cell}` loads none, so the kernel needs {} built in",
                names.join(", ")
            );
            return Ok(cpio::archive_tree(&tree));
        };
        // Debian's package has no modules.dep (depmod writes it when the package is installed):
        // rebuild the part we need from the modules' own `depends=` fields.
        let modules_dep = match std::fs::read_to_string(modules_root.join("modules.dep")) {
            Ok(text) => text,
            Err(_) => modules_dep_from_modinfo(&modules_root, &names).map_err(|error| {
                util::Error(format!(
                    "cannot work out module dependencies of {release}: {error}"
                ))
            })?,
        };
        let builtin =
            std::fs::read_to_string(modules_root.join("modules.builtin")).unwrap_or_default();
        let order = module_load_order(&modules_dep, &builtin, &names)?;
        let mut loaded = Vec::new();
        for module in &order {
            let data = module_bytes(&modules_root, module)?;
            // Compressed modules go in decompressed, so any insmod loads them.
            let module = module.trim_end_matches(".xz");
            tree.insert(format!("lib/modules/{module}"), Node::File(0o644, data));
            loaded.push(module);
        }
        tree.insert(
            "etc/cellvisor-modules".to_owned(),
            Node::File(0o644, (loaded.join("\n") + "\n").into_bytes()),
        );
    }
    Ok(cpio::archive_tree(&tree))
}

/// Compresses with `gzip -9 -n` (no name or timestamp in the header, so output is reproducible).
pub fn gzip(data: &[u8], scratch: &Path) -> Result<Vec<u8>> {
    util::write_if_changed(scratch, data)?;
    let output = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(scratch)
        .stdin(Stdio::null())
        .output()
        .context(|| {
            "cannot run gzip (apt-get install -y --no-install-recommends gzip)".to_owned()
        })?;
    if !output.status.success() {
        fail!(
            "gzip failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output.stdout)
}

/// Builds `target/cellvisor/initrd-<cell>.cpio.gz` (for the kernel of `pin`:
/// `initrd-<cell>-<variant>.cpio.gz`) and returns its path.
pub fn build(cell: &str, guest: &LinuxGuest, tools: &Tools, pin: &KernelPin) -> Result<PathBuf> {
    let out = util::out_dir();
    let archive = archive(cell, guest, tools)?;
    let compressed = gzip(
        &archive,
        &out.join(pin.file_name(&format!("initrd-{cell}.cpio"))),
    )?;
    let path = out.join(pin.file_name(&format!("initrd-{cell}.cpio.gz")));
    util::write_if_changed(&path, &compressed)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake module: some ELF-ish bytes, then a `.modinfo`-style run of NUL-terminated fields.
    fn module(depends: &str) -> Vec<u8> {
        let mut bytes = b"\x7fELF junk depends=not-this\0".to_vec();
        bytes.extend_from_slice(format!("license=GPL\0depends={depends}\0intree=Y\0").as_bytes());
        bytes
    }

    #[test]
    fn dependencies_come_from_modinfo_without_modules_dep() {
        let root = std::env::temp_dir().join(format!("xtask-modinfo-{}", std::process::id()));
        let files = [
            ("kernel/drivers/virtio/virtio.ko", "virtio_ring"),
            ("kernel/drivers/virtio/virtio_ring.ko", ""),
            ("kernel/drivers/virtio/virtio_mmio.ko", "virtio,virtio_ring"),
            ("kernel/net/core/failover.ko", ""),
            ("kernel/drivers/net/net_failover.ko", "failover"),
            (
                "kernel/drivers/net/virtio_net.ko",
                "virtio_ring,virtio,net_failover",
            ),
            ("kernel/drivers/block/virtio_blk.ko", "virtio,virtio_ring"),
        ];
        let mut order = String::new();
        for (path, depends) in files {
            let file = root.join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(&file, module(depends)).unwrap();
            order.push_str(path);
            order.push('\n');
        }
        std::fs::write(root.join("modules.order"), order).unwrap();
        let names = ["virtio-mmio".to_owned(), "virtio_net".to_owned()];
        let dep = modules_dep_from_modinfo(&root, &names).unwrap();
        assert!(!dep.contains("virtio_blk"), "only what is needed: {dep}");
        let order = module_load_order(&dep, "", &names).unwrap();
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_mmio.ko",
                "kernel/net/core/failover.ko",
                "kernel/drivers/net/net_failover.ko",
                "kernel/drivers/net/virtio_net.ko",
            ]
        );
        assert_eq!(modinfo_depends(&module("a,b")).as_deref(), Some("a,b"));
        assert!(module_load_order(&dep, "", &["nonexistent".into()]).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn modules_load_dependencies_first_and_once() {
        let dep = "kernel/drivers/virtio/virtio.ko:\n\
                   kernel/drivers/virtio/virtio_ring.ko:\n\
                   kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n\
                   kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n";
        let order = module_load_order(dep, "", &["virtio-mmio".into(), "virtio_blk".into()])
            .expect("order");
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio.ko",
                "kernel/drivers/virtio/virtio_ring.ko",
                "kernel/drivers/virtio/virtio_mmio.ko",
                "kernel/drivers/block/virtio_blk.ko"
            ]
        );
        assert!(module_load_order(dep, "", &["nonexistent".into()]).is_err());
    }

    #[test]
    fn built_in_modules_are_skipped_and_xz_modules_decompressed() {
        // Linux 6.12 builds virtio and virtio_ring in and ships the rest as `.ko.xz`.
        let root = std::env::temp_dir().join(format!("xtask-xz-modules-{}", std::process::id()));
        let directory = root.join("kernel/drivers/virtio");
        std::fs::create_dir_all(&directory).unwrap();
        let plain = directory.join("virtio_mmio.ko");
        std::fs::write(&plain, module("")).unwrap();
        let status = Command::new("xz").arg(&plain).status().expect("xz runs");
        assert!(status.success() && !plain.exists());
        std::fs::write(
            root.join("modules.order"),
            "kernel/drivers/virtio/virtio_mmio.ko\n",
        )
        .unwrap();
        let builtin = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n";
        let names = [
            "virtio".to_owned(),
            "virtio_ring".to_owned(),
            "virtio_mmio".to_owned(),
        ];
        let dep = modules_dep_from_modinfo(&root, &names).unwrap();
        let order = module_load_order(&dep, builtin, &names).unwrap();
        assert_eq!(order, ["kernel/drivers/virtio/virtio_mmio.ko"]);
        assert_eq!(module_bytes(&root, &order[0]).unwrap(), module(""));
        assert!(
            module_load_order(&dep, "", &names).is_err(),
            "virtio is neither built in nor a module"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
