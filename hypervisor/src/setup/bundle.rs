//! Guest bundle: the cpio (newc) archive of guest images that the boot loader passes as initrd.
//!
//! The archive is uncompressed cpio "newc", read with [`cpio::read`]. Entry names are the board's image names (`linux`, `initrd-personal`,
//! `test-guest`, ...) and per-cell overrides `override/<cell>/kernel`, `override/<cell>/initrd`,
//! `override/<cell>/bootargs`. Only regular files are kept; a leading `./` is ignored.
//!
//! The archive comes from the boot loader, but it is parsed as if hostile: every length is checked
//! and garbage gives a [`BundleError`], never a panic.
#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::board::CellConfig;
use crate::setup::cpio::{self, CpioError};

/// Why the guest bundle could not be read or lacks something.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleError {
    /// The archive ends inside an entry or before `TRAILER!!!`.
    Truncated {
        /// Offset of the entry that is cut short.
        offset: usize,
    },
    /// An entry does not start with the newc magic `070701`.
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
    /// Two regular files have the same name.
    DuplicateEntry(String),
    /// A cell's image is not in the bundle.
    MissingEntry {
        /// The cell.
        cell: String,
        /// The entry that was looked for.
        entry: String,
    },
    /// `override/<cell>/bootargs` is not UTF-8.
    BadBootargs {
        /// The cell.
        cell: String,
    },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const REBUILD: &str = "rebuild it with `cargo xtask build`";
        match self {
            Self::Truncated { offset } => write!(
                f,
                "guest bundle is truncated at byte {offset:#x}: {REBUILD} and load all of it"
            ),
            Self::BadMagic { offset } => write!(
                f,
                "guest bundle entry at byte {offset:#x} is not cpio newc (070701): {REBUILD}"
            ),
            Self::BadHeaderField { offset } => write!(
                f,
                "guest bundle entry at byte {offset:#x} has a malformed header: {REBUILD}"
            ),
            Self::BadName { offset } => write!(
                f,
                "guest bundle entry at byte {offset:#x} has a malformed name: {REBUILD}"
            ),
            Self::DuplicateEntry(name) => write!(f, "guest bundle holds {name:?} twice: {REBUILD}"),
            Self::MissingEntry { cell, entry } => write!(
                f,
                "guest bundle has no {entry:?} for cell {cell:?}: run `cargo xtask build` or pass \
                 --kernel {cell}=PATH"
            ),
            Self::BadBootargs { cell } => write!(
                f,
                "guest bundle entry \"override/{cell}/bootargs\" is not UTF-8: write it as plain text"
            ),
        }
    }
}

impl From<CpioError> for BundleError {
    fn from(error: CpioError) -> Self {
        match error {
            CpioError::Truncated { offset } => Self::Truncated { offset },
            CpioError::BadMagic { offset } => Self::BadMagic { offset },
            CpioError::BadHeaderField { offset } => Self::BadHeaderField { offset },
            CpioError::BadName { offset } => Self::BadName { offset },
        }
    }
}

/// One regular file of the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry<'a> {
    name: &'a str,
    data: &'a [u8],
}

/// A parsed guest bundle, borrowing the archive bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle<'a> {
    entries: Vec<Entry<'a>>,
}

/// What a cell boots, taken from the bundle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellImages<'a> {
    /// The kernel (or bare-metal guest) image.
    pub kernel: &'a [u8],
    /// The initrd, if the cell has one.
    pub initrd: Option<&'a [u8]>,
    /// Kernel command line: the bundle's override, or the board's.
    pub bootargs: &'a str,
}

impl<'a> Bundle<'a> {
    /// Reads a cpio newc archive.
    pub fn parse(archive: &'a [u8]) -> Result<Self, BundleError> {
        let mut entries: Vec<Entry<'a>> = Vec::new();
        for entry in cpio::read(archive) {
            let entry = entry?;
            if entry.is_regular_file() {
                let name = entry.name.strip_prefix("./").unwrap_or(entry.name);
                if entries.iter().any(|entry| entry.name == name) {
                    return Err(BundleError::DuplicateEntry(String::from(name)));
                }
                entries.push(Entry {
                    name,
                    data: entry.data,
                });
            }
        }
        Ok(Self { entries })
    }

    /// The contents of the regular file `name`.
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.entries
            .iter()
            .find(|entry| entry.name == name)
            .map(|entry| entry.data)
    }

    /// Names of the regular files, in archive order.
    pub fn names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.entries.iter().map(|entry| entry.name)
    }

    /// The images a cell boots: per-cell overrides first, then the board's names.
    pub fn cell_images(&self, cell: &CellConfig) -> Result<CellImages<'a>, BundleError> {
        let missing = |entry: &str| BundleError::MissingEntry {
            cell: String::from(cell.name),
            entry: String::from(entry),
        };
        let override_of = |what: &str| self.get(&format!("override/{}/{what}", cell.name));

        let kernel = match override_of("kernel") {
            Some(kernel) => kernel,
            None => self.get(cell.kernel).ok_or_else(|| missing(cell.kernel))?,
        };
        let initrd = match (override_of("initrd"), cell.initrd) {
            (Some(initrd), _) => Some(initrd),
            (None, Some(name)) => Some(self.get(name).ok_or_else(|| missing(name))?),
            (None, None) => None,
        };
        let bootargs = match override_of("bootargs") {
            Some(bytes) => core::str::from_utf8(bytes)
                .map_err(|_| BundleError::BadBootargs {
                    cell: String::from(cell.name),
                })?
                .trim_end_matches(['\n', '\r', '\0']),
            None => cell.bootargs,
        };
        Ok(CellImages {
            kernel,
            initrd,
            bootargs,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::board::{CellMemory, CellPolicy, GuestPlacement, MemRange};
    use alloc::string::ToString;

    /// A newc archive of regular files `(name, data)`, as `cargo xtask build` writes one (also
    /// used by the run-loop tests in `core/tests`).
    pub(crate) fn archive(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut writer = cpio::Writer::new();
        writer.directory("override", 0o755);
        for (name, data) in files {
            writer.file(name, 0o644, data);
        }
        writer.finish()
    }

    const CELL: CellConfig = CellConfig {
        name: "personal",
        cpus: &[0],
        memory: &[CellMemory {
            physical: MemRange::new(0x6000_0000, 0x100_0000),
            placement: GuestPlacement::Identity,
        }],
        devices: &[],
        kernel: "linux",
        initrd: Some("initrd-personal"),
        bootargs: "console=ttyAMA0",
        policy: CellPolicy::ALL,
        trusted_with_all_memory: false,
    };

    #[test]
    fn reads_entries_with_odd_sizes() {
        let bytes = archive(&[
            ("linux", b"kernel!"),
            ("./initrd-personal", b"12345"),
            ("x", b""),
        ]);
        let bundle = Bundle::parse(&bytes).unwrap();
        assert_eq!(bundle.get("linux"), Some(&b"kernel!"[..]));
        assert_eq!(bundle.get("initrd-personal"), Some(&b"12345"[..]));
        assert_eq!(bundle.get("x"), Some(&b""[..]));
        assert_eq!(bundle.get("override"), None, "directories are not files");
        assert_eq!(bundle.get("missing"), None);
        assert_eq!(
            bundle.names().collect::<Vec<_>>(),
            ["linux", "initrd-personal", "x"]
        );
    }

    /// Made by GNU cpio: `printf '...' | cpio -o -H newc --reproducible` (see the test below for
    /// the contents); padded to 512-byte blocks after the trailer.
    const GNU_CPIO_FIXTURE: &[u8] = include_bytes!("../../tests/data/bundle-gnu-cpio.cpio");

    #[test]
    fn reads_an_archive_written_by_gnu_cpio() {
        let bundle = Bundle::parse(GNU_CPIO_FIXTURE).unwrap();
        assert_eq!(
            bundle.names().collect::<Vec<_>>(),
            [
                "test-guest",
                "override/personal/bootargs",
                "initrd-corporate"
            ]
        );
        assert_eq!(bundle.get("test-guest"), Some(&b"fake kernel"[..]));
        assert_eq!(bundle.get("initrd-corporate"), Some(&b"abc"[..]));
        let cell = CellConfig {
            kernel: "test-guest",
            initrd: None,
            ..CELL
        };
        let images = bundle.cell_images(&cell).unwrap();
        assert_eq!(images.kernel, b"fake kernel");
        assert_eq!(images.bootargs, "quiet loglevel=0");
    }

    #[test]
    fn board_names_are_used_without_overrides() {
        let bytes = archive(&[("linux", b"K"), ("initrd-personal", b"I")]);
        let images = Bundle::parse(&bytes).unwrap().cell_images(&CELL).unwrap();
        assert_eq!(
            images,
            CellImages {
                kernel: b"K",
                initrd: Some(b"I"),
                bootargs: "console=ttyAMA0"
            }
        );
    }

    #[test]
    fn overrides_win() {
        let bytes = archive(&[
            ("linux", b"K"),
            ("initrd-personal", b"I"),
            ("override/personal/kernel", b"K2"),
            ("override/personal/initrd", b"I2"),
            ("override/personal/bootargs", b"quiet\n"),
            ("override/corporate/kernel", b"other"),
        ]);
        let images = Bundle::parse(&bytes).unwrap().cell_images(&CELL).unwrap();
        assert_eq!(
            images,
            CellImages {
                kernel: b"K2",
                initrd: Some(b"I2"),
                bootargs: "quiet"
            }
        );
    }

    #[test]
    fn an_initrd_override_serves_a_cell_without_board_initrd() {
        let cell = CellConfig {
            initrd: None,
            ..CELL
        };
        let bytes = archive(&[("linux", b"K")]);
        assert_eq!(
            Bundle::parse(&bytes)
                .unwrap()
                .cell_images(&cell)
                .unwrap()
                .initrd,
            None
        );
        let bytes = archive(&[("linux", b"K"), ("override/personal/initrd", b"I")]);
        assert_eq!(
            Bundle::parse(&bytes)
                .unwrap()
                .cell_images(&cell)
                .unwrap()
                .initrd,
            Some(&b"I"[..])
        );
    }

    #[test]
    fn missing_images_name_the_entry_and_the_fix() {
        let bytes = archive(&[("initrd-personal", b"I")]);
        let error = Bundle::parse(&bytes)
            .unwrap()
            .cell_images(&CELL)
            .unwrap_err();
        assert_eq!(
            error,
            BundleError::MissingEntry {
                cell: "personal".into(),
                entry: "linux".into()
            }
        );
        assert_eq!(
            error.to_string(),
            "guest bundle has no \"linux\" for cell \"personal\": run `cargo xtask build` or pass \
             --kernel personal=PATH"
        );
        let bytes = archive(&[("linux", b"K")]);
        let error = Bundle::parse(&bytes)
            .unwrap()
            .cell_images(&CELL)
            .unwrap_err();
        assert!(
            matches!(error, BundleError::MissingEntry { ref entry, .. } if entry == "initrd-personal")
        );
    }

    #[test]
    fn bootargs_override_must_be_text() {
        let bytes = archive(&[
            ("linux", b"K"),
            ("initrd-personal", b"I"),
            ("override/personal/bootargs", b"\xff"),
        ]);
        let error = Bundle::parse(&bytes)
            .unwrap()
            .cell_images(&CELL)
            .unwrap_err();
        assert_eq!(
            error,
            BundleError::BadBootargs {
                cell: "personal".into()
            }
        );
    }

    #[test]
    fn malformed_archives_are_refused() {
        let good = archive(&[("linux", b"kernel")]);
        assert_eq!(
            Bundle::parse(&[]),
            Err(BundleError::Truncated { offset: 0 })
        );
        assert!(matches!(
            Bundle::parse(&good[..good.len() - 120]),
            Err(BundleError::Truncated { .. })
        ));
        let mut bad_magic = good.clone();
        bad_magic[0] = b'1';
        assert_eq!(
            Bundle::parse(&bad_magic),
            Err(BundleError::BadMagic { offset: 0 })
        );
        let mut bad_field = good.clone();
        bad_field[6 + 6 * 8] = b'g';
        assert_eq!(
            Bundle::parse(&bad_field),
            Err(BundleError::BadHeaderField { offset: 0 })
        );
        let mut writer = cpio::Writer::new();
        writer.file("linux", 0o644, b"");
        let mut bad_name = writer.finish();
        bad_name[cpio::HEADER_SIZE + 5] = b'x'; // overwrite the name's NUL
        assert_eq!(
            Bundle::parse(&bad_name),
            Err(BundleError::BadName { offset: 0 })
        );
        let twice = archive(&[("linux", b"a"), ("./linux", b"b")]);
        assert_eq!(
            Bundle::parse(&twice),
            Err(BundleError::DuplicateEntry("linux".into()))
        );
        let errors = [
            BundleError::Truncated { offset: 0 },
            BundleError::BadMagic { offset: 0 },
            BundleError::BadHeaderField { offset: 0 },
            BundleError::BadName { offset: 0 },
            BundleError::DuplicateEntry("x".into()),
            BundleError::BadBootargs { cell: "c".into() },
        ];
        for error in errors {
            let line = error.to_string();
            assert!(!line.contains('\n') && line.contains(": "), "{line}");
        }
    }

    /// xorshift64: deterministic noise without a dependency.
    fn noise(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn garbage_never_panics() {
        let good = archive(&[("linux", b"kernel image"), ("initrd-personal", &[7; 33])]);
        let mut state = 0x2545_f491_4f6c_dd1d;
        // Every truncation of a good archive.
        for length in 0..good.len() {
            assert!(Bundle::parse(&good[..length]).is_err());
        }
        // Random corruptions of a good archive, including huge hex sizes.
        for _ in 0..5000 {
            let mut bytes = good.clone();
            for _ in 0..1 + noise(&mut state) % 4 {
                let position = (noise(&mut state) % bytes.len() as u64) as usize;
                bytes[position] = match noise(&mut state) % 3 {
                    0 => b'F',
                    1 => b'0',
                    _ => noise(&mut state) as u8,
                };
            }
            if let Ok(bundle) = Bundle::parse(&bytes) {
                let _ = bundle.cell_images(&CELL);
            }
        }
        // Pure noise, some of it starting with the magic.
        for round in 0..2000 {
            let length = (noise(&mut state) % 400) as usize;
            let mut bytes: Vec<u8> = (0..length).map(|_| noise(&mut state) as u8).collect();
            if round % 2 == 0 && bytes.len() >= 6 {
                bytes[..6].copy_from_slice(cpio::MAGIC_NEWC);
            }
            let _ = Bundle::parse(&bytes);
        }
    }
}
