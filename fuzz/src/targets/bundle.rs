//! `cpio::read` and `bundle::Bundle::parse` on valid cpio newc archives and on flipped, truncated and spliced ones.
#![forbid(unsafe_code)]

use cellvisor::board::{CellConfig, CellPolicy};
use cellvisor::setup::cpio;

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Bundle;

/// An archive and, when it was left intact, the regular files it must yield.
#[derive(Clone)]
pub struct Archive {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// `Some(files)` for an unmutated archive: exactly these regular files, in order.
    pub expected: Option<Vec<(String, Vec<u8>)>>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Archive ({} bytes, intact: {})",
            self.bytes.len(),
            self.expected.is_some()
        )?;
        for (row, chunk) in self.bytes.chunks(32).enumerate() {
            let hex: String = chunk.iter().map(|byte| format!("{byte:02x}")).collect();
            let text: String = chunk
                .iter()
                .map(|&byte| {
                    if byte.is_ascii_graphic() {
                        byte as char
                    } else {
                        '.'
                    }
                })
                .collect();
            writeln!(f, "{:06x}  {hex:<64}  {text}", row * 32)?;
        }
        Ok(())
    }
}

const NAMES: &[&str] = &[
    "linux",
    "test-guest",
    "initrd-personal",
    "./linux",
    "override/personal/kernel",
    "override/personal/initrd",
    "override/personal/bootargs",
    "override/corporate/bootargs",
    "dir",
    "a",
];

fn valid_archive(rng: &mut Rng) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let mut writer = cpio::Writer::new();
    // Entries whose magic becomes `070702` (checksum present, not checked).
    let mut with_crc = Vec::new();
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    for _ in 0..rng.range(0, 6) {
        let name = rng.pick(NAMES);
        let regular = rng.chance(4, 5);
        let mode = if regular {
            0o100_644
        } else {
            rng.pick(&[0o040_755, 0o120_777, 0o020_644])
        };
        let data = if rng.chance(1, 3) {
            b"console=ttyAMA0 rdinit=/init\n".to_vec()
        } else {
            let length = rng.below(70) as usize;
            rng.bytes(length)
        };
        let stripped = name.strip_prefix("./").unwrap_or(name);
        if regular && files.iter().any(|(existing, _)| existing == stripped) {
            continue;
        }
        if rng.coin() {
            with_crc.push(writer.position());
        }
        writer.entry(name, mode, &data);
        if regular {
            files.push((stripped.to_string(), data));
        }
    }
    let mut bytes = writer.finish();
    for entry in with_crc {
        bytes[entry..][..6].copy_from_slice(cpio::MAGIC_NEWC_CRC);
    }
    if rng.chance(1, 4) {
        // Padding after the trailer, as cpio writes it.
        bytes.resize(bytes.len().next_multiple_of(512), 0);
    }
    (bytes, files)
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..rng.range(1, 4) {
        if bytes.is_empty() {
            bytes.push(rng.next_u64() as u8);
        }
        let at = rng.index(bytes.len());
        match rng.below(7) {
            0 => bytes[at] ^= 1 << rng.below(8),
            1 => bytes[at] = rng.pick(b"0789AaFfGg\0/ "),
            2 => bytes.truncate(at),
            3 => {
                // An 8-digit header field rewritten with a hex number, often a huge one.
                let value: u32 = if rng.coin() {
                    rng.next_u32()
                } else {
                    rng.below(300) as u32
                };
                let digits = format!("{value:08X}");
                let end = (at + 8).min(bytes.len());
                bytes[at..end].copy_from_slice(&digits.as_bytes()[..end - at]);
            }
            4 => {
                let length = rng.index(bytes.len() - at + 1);
                let chunk = bytes[at..at + length].to_vec();
                let into = rng.index(bytes.len() + 1);
                bytes.splice(into..into, chunk);
            }
            5 => {
                let length = rng.index(bytes.len() - at + 1);
                bytes.drain(at..at + length);
            }
            _ => {
                let length = rng.index(16);
                let extra = rng.bytes(length);
                bytes.splice(at..at, extra);
            }
        }
    }
}

impl FuzzTarget for Bundle {
    type Input = Archive;
    const NAME: &'static str = "bundle";
    const SUMMARY: &'static str = "cpio newc bundle: no panic, intact archives read back exactly, every entry lies inside the input";

    fn generate(rng: &mut Rng) -> Archive {
        if rng.chance(1, 20) {
            let length = rng.index(300);
            return Archive {
                bytes: rng.bytes(length),
                expected: None,
            };
        }
        let (mut bytes, files) = valid_archive(rng);
        if rng.chance(1, 5) {
            return Archive {
                bytes,
                expected: Some(files),
            };
        }
        mutate(rng, &mut bytes);
        Archive {
            bytes,
            expected: None,
        }
    }

    fn check(archive: &Archive) -> Result<(), String> {
        let input = archive.bytes.as_slice();
        let inside = |data: &[u8]| {
            let start = input.as_ptr() as usize;
            let at = data.as_ptr() as usize;
            data.is_empty() || (at >= start && at + data.len() <= start + input.len())
        };
        for entry in cpio::read(input).flatten() {
            ensure!(
                inside(entry.name.as_bytes()) && inside(entry.data),
                "cpio entry {:?} lies outside the input",
                entry.name
            );
        }
        let parsed = cellvisor::setup::bundle::Bundle::parse(input);
        if let Some(files) = &archive.expected {
            let Ok(bundle) = &parsed else {
                return Err(format!("intact archive refused: {parsed:?}"));
            };
            let names: Vec<&str> = bundle.names().collect();
            let expected: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
            ensure!(names == expected, "names {names:?}, expected {expected:?}");
            for (name, data) in files {
                ensure!(
                    bundle.get(name) == Some(data.as_slice()),
                    "entry {name:?} reads back wrong"
                );
            }
        }
        let bundle = match parsed {
            Ok(bundle) => bundle,
            Err(error) => {
                let text = error.to_string();
                ensure!(!text.contains('\n'), "error text has a newline: {text:?}");
                return Ok(());
            }
        };
        for name in bundle.names() {
            // An interior NUL is allowed through (the name simply matches nothing the board asks for).
            ensure!(!name.is_empty(), "empty entry name");
            ensure!(
                inside(name.as_bytes()),
                "name {name:?} is not inside the input"
            );
            let data = bundle
                .get(name)
                .ok_or_else(|| format!("listed entry {name:?} not found"))?;
            ensure!(inside(data), "entry {name:?} data lies outside the input");
        }
        for cell in ["personal", "corporate"] {
            let config = CellConfig {
                name: cell,
                cpus: &[0],
                memory: &[],
                devices: &[],
                kernel: "linux",
                initrd: Some("initrd-personal"),
                bootargs: "console=ttyAMA0",
                policy: CellPolicy::ALL,
                trusted_with_all_memory: false,
            };
            if let Ok(images) = bundle.cell_images(&config) {
                ensure!(inside(images.kernel), "{cell} kernel outside the input");
                ensure!(
                    images.initrd.is_none_or(inside),
                    "{cell} initrd outside the input"
                );
            }
        }
        Ok(())
    }
}
