//! Footprint: hypervisor image section sizes, stage-2 table sizes per cell, hypervisor SLOC.
use std::collections::BTreeMap;
use std::path::Path;

use cellvisor::mem::addr::{GuestPhysAddr, PhysAddr};
use cellvisor::mem::stage2::Stage2;

use crate::elf;
use crate::images;
use crate::util::{self, Context, Result};

/// Stage-2 figures of one cell: (layout, cell, RAM bytes, table bytes, blocks, pages).
pub(super) type Stage2Row = (String, String, u64, u64, u64, u64);

/// Image footprint: text, read-only data, data, bss (without heap and stacks), heap, stacks.
pub(super) fn image_footprint(path: &Path) -> Result<BTreeMap<&'static str, u64>> {
    let data = std::fs::read(path).context(|| format!("cannot read {}", path.display()))?;
    let mut sizes = BTreeMap::new();
    for section in elf::sections(&data, "the hypervisor ELF")? {
        let (name, flags) = (&section.name, section.flags);
        if flags & elf::SHF_ALLOC == 0 {
            continue;
        }
        let class = if name.contains("heap") {
            "heap"
        } else if name.contains("stack") {
            "stacks"
        } else if section.kind == elf::SHT_NOBITS {
            "bss"
        } else if flags & elf::SHF_EXECINSTR != 0 {
            "text"
        } else if flags & elf::SHF_WRITE != 0 {
            "data"
        } else {
            "rodata"
        };
        *sizes.entry(class).or_insert(0) += section.size;
    }
    Ok(sizes)
}

/// Per cell of a layout: (layout, cell, RAM bytes, table bytes, blocks, pages).
pub(super) fn stage2_footprint() -> Result<Vec<Stage2Row>> {
    let mut rows = Vec::new();
    for layout in images::layouts() {
        for (index, cell) in layout.cells.iter().enumerate() {
            let vmid = u16::try_from(index + 1).unwrap_or(1);
            let mut stage2 =
                Stage2::new(vmid).map_err(|error| util::Error(format!("{error:?}")))?;
            let mut ram = 0;
            for region in cell.memory {
                stage2
                    .map_ram(
                        GuestPhysAddr::new(region.guest_base()),
                        PhysAddr::new(region.physical.base),
                        region.physical.size,
                    )
                    .map_err(|error| util::Error(format!("{error:?}")))?;
                ram += region.physical.size;
            }
            let stats = stage2.stats();
            rows.push((
                layout.name.to_owned(),
                cell.name.to_owned(),
                ram,
                stats.table_bytes,
                stats.block_descriptors,
                stats.page_descriptors,
            ));
        }
    }
    Ok(rows)
}

/// Source lines of hypervisor/src without blank lines, comments, tests.rs files and the trailing
/// `#[cfg(test)]` modules.
pub(super) fn hypervisor_sloc() -> Result<u64> {
    fn walk(dir: &Path, total: &mut u64) -> Result<()> {
        let entries =
            std::fs::read_dir(dir).context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, total)?;
            } else if path.extension().is_some_and(|ext| ext == "rs")
                && path.file_name().is_some_and(|name| name != "tests.rs")
            {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for line in text.lines() {
                    let line = line.trim();
                    if line == "#[cfg(test)]" {
                        break;
                    }
                    if !line.is_empty() && !line.starts_with("//") {
                        *total += 1;
                    }
                }
            }
        }
        Ok(())
    }
    let mut total = 0;
    walk(
        &util::workspace_root().join("hypervisor").join("src"),
        &mut total,
    )?;
    Ok(total)
}
