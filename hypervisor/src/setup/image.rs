//! Guest image placement: arm64 Image header parsing, or raw binaries.
//!
//! [`plan`] decides where in a cell's first RAM region the kernel, its device tree and its initrd
//! go, following Linux's arm64 boot protocol (Documentation/arch/arm64/booting.rst):
//!
//! - an arm64 `Image` (magic `ARM\x64` at byte 56) loads at a 2 MiB-aligned RAM base plus its
//!   `text_offset` and needs `image_size` bytes there (BSS included); the entry is its first byte;
//! - a file that starts like something else a kernel is shipped as (a gzip, xz, zstd, bzip2, LZ4
//!   or LZO stream, an ELF `vmlinux`, an EFI zboot image, a U-Boot uImage) is refused by name: it
//!   would not run from its first byte, and placing it as a raw binary would only hang the cell;
//! - anything else is a raw binary loaded at the 2 MiB-aligned start of RAM and entered at its first
//!   byte (cellvisor's test guests are linked for that address), on boards that allow raw
//!   binaries (`Board::raw_binaries`; `core::cell` refuses one elsewhere with
//!   [`ImageError::RawBinaryRefused`]);
//! - the device tree (at most 2 MiB, 8-byte aligned) gets the last whole 2 MiB block of RAM to itself;
//! - the initrd sits page-aligned directly below that block.
//!
//! Everything is checked arithmetic on guest-physical addresses; nothing is written here.
#![forbid(unsafe_code)]

use core::fmt;

use crate::mem::addr::GuestPhysAddr;

/// 2 MiB: kernel base alignment, and the window reserved for the device tree.
pub const BLOCK_SIZE: u64 = 2 * 1024 * 1024;
/// Largest device tree Linux accepts.
pub const MAX_DTB_SIZE: u64 = BLOCK_SIZE;
use crate::mem::PAGE_SIZE;
/// `text_offset` of kernels older than 3.17, whose header has `image_size` 0.
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// arm64 Image header magic, `ARM\x64` read little-endian.
pub const ARM64_IMAGE_MAGIC: u32 = 0x644d_5241;

/// Byte offsets inside the 64-byte arm64 Image header.
const HEADER_TEXT_OFFSET: usize = 8;
const HEADER_IMAGE_SIZE: usize = 16;
const HEADER_FLAGS: usize = 24;
const HEADER_MAGIC: usize = 56;
/// Header flag bit 0: the kernel is big-endian.
const FLAG_BIG_ENDIAN: u64 = 1;

/// A kernel container cellvisor recognises but does not unpack: the file must be turned into an
/// arm64 `Image` (or a raw binary) before it reaches a cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedKernel {
    /// A gzip stream (`Image.gz`, Debian's `vmlinuz` on some releases): magic `1f 8b`.
    Gzip,
    /// An xz stream: magic `fd 37 7a 58 5a 00`.
    Xz,
    /// A Zstandard frame: magic `28 b5 2f fd`.
    Zstd,
    /// A bzip2 stream: magic `BZh`.
    Bzip2,
    /// An LZ4 frame or Linux's legacy LZ4 stream: magic `04 22 4d 18` or `02 21 4c 18`.
    Lz4,
    /// An lzop stream: magic `89 4c 5a 4f`.
    Lzo,
    /// An ELF file (`vmlinux`): magic `7f 45 4c 46`.
    Elf,
    /// An EFI zboot image (`vmlinuz.efi`): `MZ` followed by `zimg` at byte 4.
    EfiZboot,
    /// A U-Boot legacy image (`uImage`): magic `27 05 19 56`.
    UImage,
}

impl PackedKernel {
    /// What the file starts like, from its first bytes; `None` for anything else.
    pub fn detect(kernel: &[u8]) -> Option<PackedKernel> {
        const MAGICS: [(&[u8], PackedKernel); 9] = [
            (&[0x1f, 0x8b], PackedKernel::Gzip),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], PackedKernel::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd], PackedKernel::Zstd),
            (b"BZh", PackedKernel::Bzip2),
            (&[0x04, 0x22, 0x4d, 0x18], PackedKernel::Lz4),
            (&[0x02, 0x21, 0x4c, 0x18], PackedKernel::Lz4),
            (&[0x89, b'L', b'Z', b'O'], PackedKernel::Lzo),
            (&[0x7f, b'E', b'L', b'F'], PackedKernel::Elf),
            (&[0x27, 0x05, 0x19, 0x56], PackedKernel::UImage),
        ];
        if kernel.starts_with(b"MZ") && kernel.get(4..8) == Some(&b"zimg"[..]) {
            return Some(PackedKernel::EfiZboot);
        }
        MAGICS
            .iter()
            .find(|(magic, _)| kernel.starts_with(magic))
            .map(|(_, format)| *format)
    }
}

impl fmt::Display for PackedKernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, fix) = match self {
            Self::Gzip => ("gzip-compressed", "decompress it (cargo xtask does this)"),
            Self::Xz => ("xz-compressed", "decompress it (xz -d)"),
            Self::Zstd => ("zstd-compressed", "decompress it (zstd -d)"),
            Self::Bzip2 => ("bzip2-compressed", "decompress it (bzip2 -d)"),
            Self::Lz4 => ("LZ4-compressed", "decompress it (lz4 -d)"),
            Self::Lzo => ("LZO-compressed", "decompress it (lzop -d)"),
            Self::Elf => (
                "an ELF file (vmlinux)",
                "use the kernel build's arch/arm64/boot/Image",
            ),
            Self::EfiZboot => (
                "an EFI zboot image",
                "build the kernel without CONFIG_EFI_ZBOOT or use its arch/arm64/boot/Image",
            ),
            Self::UImage => (
                "a U-Boot uImage",
                "strip its 64-byte header (dd bs=64 skip=1) to get the Image",
            ),
        };
        write!(
            f,
            "the kernel is {what}; give the cell an uncompressed arm64 Image: {fix}"
        )
    }
}

/// What kind of kernel image was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// An arm64 Linux `Image` with its header fields.
    Arm64Image {
        /// Offset of the load address from a 2 MiB-aligned base.
        text_offset: u64,
        /// Bytes the kernel occupies once running, BSS included (0 for kernels before 3.17).
        image_size: u64,
    },
    /// A raw binary without header.
    Raw,
}

/// Where everything goes, in guest-physical addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// What the kernel is.
    pub format: ImageFormat,
    /// Where the kernel file is copied.
    pub kernel_at: GuestPhysAddr,
    /// Bytes reserved for the kernel from `kernel_at` (at least the file length).
    pub kernel_footprint: u64,
    /// Where the vCPU starts (x0 = DTB address, per the boot protocol).
    pub entry: GuestPhysAddr,
    /// Where the device tree is copied (8-byte aligned, alone in its 2 MiB block).
    pub dtb_at: GuestPhysAddr,
    /// Where the initrd is copied, if there is one (page aligned).
    pub initrd_at: Option<GuestPhysAddr>,
}

/// Why a cell's images cannot be placed in its RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// The RAM region wraps the address space or has no 2 MiB-aligned start inside it.
    RamUnusable {
        /// RAM base.
        base: GuestPhysAddr,
        /// RAM size.
        size: u64,
    },
    /// The kernel header says the kernel is big-endian.
    BigEndianKernel,
    /// The kernel is neither an arm64 `Image` nor a raw binary but a container of one.
    PackedKernel(PackedKernel),
    /// The kernel has no arm64 `Image` header and the board boots no raw binaries.
    RawBinaryRefused,
    /// The kernel (with BSS) plus a 2 MiB device-tree block do not fit the RAM.
    KernelTooBig {
        /// Bytes needed from the RAM base, device-tree block included.
        needed: u64,
        /// Bytes of RAM.
        available: u64,
    },
    /// The device tree is larger than 2 MiB.
    DtbTooLarge {
        /// Its size.
        size: u64,
    },
    /// The initrd does not fit between the kernel and the device tree.
    InitrdTooBig {
        /// Its size.
        size: u64,
        /// Bytes free between the kernel and the device-tree block.
        available: u64,
    },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RamUnusable { base, size } => write!(
                f,
                "cell RAM at {base} of {size:#x} bytes holds no 2 MiB-aligned block: give the cell's first \
                 RAM region a 2 MiB-aligned base and at least 4 MiB"
            ),
            Self::BigEndianKernel => write!(
                f,
                "kernel image is big-endian: build a little-endian arm64 kernel"
            ),
            Self::PackedKernel(format) => write!(f, "{format}"),
            Self::RawBinaryRefused => write!(
                f,
                "the kernel is a raw binary (no arm64 Image header) and this board boots no raw binaries; \
                 give the cell an uncompressed arm64 Image (the kernel build's arch/arm64/boot/Image)"
            ),
            Self::KernelTooBig { needed, available } => write!(
                f,
                "kernel needs {needed:#x} bytes of RAM (with BSS and the device tree) but the cell's first \
                 region has {available:#x}: give the cell more RAM"
            ),
            Self::DtbTooLarge { size } => write!(
                f,
                "guest device tree is {size:#x} bytes, more than the 2 MiB Linux accepts: shorten the bootargs"
            ),
            Self::InitrdTooBig { size, available } => write!(
                f,
                "initrd of {size:#x} bytes does not fit the {available:#x} bytes between kernel and device \
                 tree: give the cell more RAM or shrink the initrd"
            ),
        }
    }
}

fn read_u64(bytes: &[u8], offset: usize) -> Option<u64> {
    let field = bytes.get(offset..offset + 8)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let field = bytes.get(offset..offset + 4)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

const fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    value
        .checked_add(align - 1)
        .map(|value| align_down(value, align))
}

/// Whether `kernel` starts with an arm64 `Image` header (magic `ARM\x64` at byte 56).
pub fn has_arm64_image_magic(kernel: &[u8]) -> bool {
    read_u32(kernel, HEADER_MAGIC) == Some(ARM64_IMAGE_MAGIC)
}

/// What the kernel file is, from its first 64 bytes.
pub fn detect(kernel: &[u8]) -> Result<ImageFormat, ImageError> {
    if !has_arm64_image_magic(kernel) {
        // An arm64 Image with an EFI stub starts with `MZ` too; only a headerless file is checked.
        if let Some(format) = PackedKernel::detect(kernel) {
            return Err(ImageError::PackedKernel(format));
        }
        return Ok(ImageFormat::Raw);
    }
    let (Some(text_offset), Some(image_size), Some(flags)) = (
        read_u64(kernel, HEADER_TEXT_OFFSET),
        read_u64(kernel, HEADER_IMAGE_SIZE),
        read_u64(kernel, HEADER_FLAGS),
    ) else {
        return Ok(ImageFormat::Raw);
    };
    if flags & FLAG_BIG_ENDIAN != 0 {
        return Err(ImageError::BigEndianKernel);
    }
    if image_size == 0 {
        // Before Linux 3.17 the header had no size and text_offset was 0x80000 in practice.
        return Ok(ImageFormat::Arm64Image {
            text_offset: LEGACY_TEXT_OFFSET,
            image_size: 0,
        });
    }
    Ok(ImageFormat::Arm64Image {
        text_offset,
        image_size,
    })
}

/// Places kernel, device tree and initrd in the RAM region `ram = (guest base, size)`.
pub fn plan(
    kernel: &[u8],
    initrd_len: Option<usize>,
    dtb_len: usize,
    ram: (GuestPhysAddr, u64),
) -> Result<LoadPlan, ImageError> {
    let (ram_base, ram_size) = ram;
    let unusable = ImageError::RamUnusable {
        base: ram_base,
        size: ram_size,
    };
    let ram_end = ram_base.raw().checked_add(ram_size).ok_or(unusable)?;
    let aligned_base = align_up(ram_base.raw(), BLOCK_SIZE).ok_or(unusable)?;
    // The device tree gets the last whole 2 MiB block of the region.
    let dtb_block = align_down(ram_end, BLOCK_SIZE)
        .checked_sub(BLOCK_SIZE)
        .filter(|block| *block >= aligned_base)
        .ok_or(unusable)?;

    let dtb_size = dtb_len as u64;
    if dtb_size > MAX_DTB_SIZE {
        return Err(ImageError::DtbTooLarge { size: dtb_size });
    }

    let format = detect(kernel)?;
    let file_size = kernel.len() as u64;
    let (load_offset, footprint) = match format {
        ImageFormat::Arm64Image {
            text_offset,
            image_size,
        } => (text_offset, image_size.max(file_size)),
        ImageFormat::Raw => (0, file_size),
    };
    let too_big = ImageError::KernelTooBig {
        needed: u64::MAX,
        available: ram_size,
    };
    let kernel_at = aligned_base.checked_add(load_offset).ok_or(too_big)?;
    let kernel_end = kernel_at.checked_add(footprint).ok_or(too_big)?;
    if kernel_end > dtb_block {
        return Err(ImageError::KernelTooBig {
            needed: (kernel_end - ram_base.raw()).saturating_add(ram_end - dtb_block),
            available: ram_size,
        });
    }

    let initrd_at = match initrd_len {
        None => None,
        Some(length) => {
            let size = length as u64;
            let free_start = align_up(kernel_end, PAGE_SIZE).unwrap_or(u64::MAX);
            let available = dtb_block.saturating_sub(free_start);
            let start = dtb_block
                .checked_sub(size)
                .map(|start| align_down(start, PAGE_SIZE))
                .filter(|start| *start >= kernel_end)
                .ok_or(ImageError::InitrdTooBig { size, available })?;
            Some(GuestPhysAddr::new(start))
        }
    };

    Ok(LoadPlan {
        format,
        kernel_at: GuestPhysAddr::new(kernel_at),
        kernel_footprint: footprint,
        entry: GuestPhysAddr::new(kernel_at),
        dtb_at: GuestPhysAddr::new(dtb_block),
        initrd_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use alloc::vec::Vec;

    const MIB: u64 = 1024 * 1024;
    const RAM: (GuestPhysAddr, u64) = (GuestPhysAddr::new(0x4000_0000), 64 * MIB);

    /// A kernel file of `file_size` bytes with an arm64 Image header.
    fn image(text_offset: u64, image_size: u64, flags: u64, file_size: usize) -> Vec<u8> {
        let mut kernel = vec![0u8; file_size.max(64)];
        kernel[HEADER_TEXT_OFFSET..][..8].copy_from_slice(&text_offset.to_le_bytes());
        kernel[HEADER_IMAGE_SIZE..][..8].copy_from_slice(&image_size.to_le_bytes());
        kernel[HEADER_FLAGS..][..8].copy_from_slice(&flags.to_le_bytes());
        kernel[HEADER_MAGIC..][..4].copy_from_slice(b"ARM\x64");
        kernel
    }

    #[test]
    fn magic_is_arm_x64() {
        assert_eq!(u32::from_le_bytes(*b"ARM\x64"), ARM64_IMAGE_MAGIC);
    }

    #[test]
    fn linux_image_loads_at_text_offset_with_room_for_bss() {
        // Debian-like: text_offset 0, image_size 30 MiB, file 27 MiB.
        let kernel = image(0, 30 * MIB, 0b1010, 27 * MIB as usize);
        let plan = plan(
            &kernel,
            Some(5 * MIB as usize),
            0x2000,
            (GuestPhysAddr::new(0x6000_0000), 768 * MIB),
        )
        .unwrap();
        assert_eq!(
            plan.format,
            ImageFormat::Arm64Image {
                text_offset: 0,
                image_size: 30 * MIB
            }
        );
        assert_eq!(plan.kernel_at, GuestPhysAddr::new(0x6000_0000));
        assert_eq!(plan.entry, plan.kernel_at);
        assert_eq!(plan.kernel_footprint, 30 * MIB);
        assert_eq!(plan.dtb_at, GuestPhysAddr::new(0x6000_0000 + 766 * MIB));
        assert_eq!(
            plan.initrd_at,
            Some(GuestPhysAddr::new(0x6000_0000 + 761 * MIB))
        );
    }

    #[test]
    fn text_offset_and_unaligned_ram_base() {
        let kernel = image(0x8_0000, 4 * MIB, 0, 0x1000);
        let plan = plan(
            &kernel,
            None,
            100,
            (GuestPhysAddr::new(0x4010_0000), 64 * MIB),
        )
        .unwrap();
        // Base rounded up to 0x4020_0000, plus text_offset.
        assert_eq!(plan.kernel_at, GuestPhysAddr::new(0x4028_0000));
        assert_eq!(plan.initrd_at, None);
        // RAM ends at 0x4410_0000, so the last whole 2 MiB block is 0x43E0_0000..0x4400_0000.
        assert_eq!(plan.dtb_at, GuestPhysAddr::new(0x43E0_0000));
    }

    #[test]
    fn pre_3_17_kernel_uses_legacy_text_offset() {
        let kernel = image(0x1234, 0, 0, 3 * MIB as usize);
        let plan = plan(&kernel, None, 100, RAM).unwrap();
        assert_eq!(plan.kernel_at, GuestPhysAddr::new(0x4008_0000));
        assert_eq!(plan.kernel_footprint, 3 * MIB);
    }

    #[test]
    fn raw_binary_starts_at_ram_base() {
        let guest = vec![0xd5u8; 12_345];
        let plan = plan(&guest, None, 0x1000, RAM).unwrap();
        assert_eq!(plan.format, ImageFormat::Raw);
        assert_eq!(plan.kernel_at, GuestPhysAddr::new(0x4000_0000));
        assert_eq!(plan.entry, GuestPhysAddr::new(0x4000_0000));
        assert_eq!(plan.kernel_footprint, 12_345);
        // Tiny or headerless inputs are raw, never a panic.
        assert_eq!(detect(&[]), Ok(ImageFormat::Raw));
        assert_eq!(detect(&image(0, 1, 0, 64)[..59]), Ok(ImageFormat::Raw));
    }

    #[test]
    fn regions_never_overlap() {
        let kernel = image(0, 20 * MIB, 0, MIB as usize);
        let plan = plan(&kernel, Some(30 * MIB as usize), 0x1_0000, RAM).unwrap();
        let kernel_end = plan.kernel_at.raw() + plan.kernel_footprint;
        let initrd = plan.initrd_at.unwrap().raw();
        assert!(initrd >= kernel_end);
        assert!(initrd + 30 * MIB <= plan.dtb_at.raw());
        assert!(plan.dtb_at.is_aligned(8) && initrd.is_multiple_of(PAGE_SIZE));
        assert!(plan.dtb_at.raw() + MAX_DTB_SIZE <= RAM.0.raw() + RAM.1);
    }

    #[test]
    fn bss_that_does_not_fit_is_refused() {
        // The file fits, but image_size (with BSS) runs into the device-tree block.
        let kernel = image(0, 63 * MIB, 0, MIB as usize);
        let error = plan(&kernel, None, 100, RAM).unwrap_err();
        assert_eq!(
            error,
            ImageError::KernelTooBig {
                needed: 65 * MIB,
                available: 64 * MIB
            }
        );
        let raw = vec![0u8; 63 * MIB as usize];
        assert!(matches!(
            plan(&raw, None, 100, RAM),
            Err(ImageError::KernelTooBig { .. })
        ));
    }

    #[test]
    fn initrd_that_does_not_fit_is_refused() {
        let kernel = image(0, 20 * MIB, 0, MIB as usize);
        let error = plan(&kernel, Some(43 * MIB as usize), 100, RAM).unwrap_err();
        assert_eq!(
            error,
            ImageError::InitrdTooBig {
                size: 43 * MIB,
                available: 42 * MIB
            }
        );
        assert!(plan(&kernel, Some(42 * MIB as usize), 100, RAM).is_ok());
    }

    #[test]
    fn other_refusals() {
        let kernel = image(0, MIB, FLAG_BIG_ENDIAN, 64);
        assert_eq!(
            plan(&kernel, None, 100, RAM),
            Err(ImageError::BigEndianKernel)
        );
        let small = image(0, MIB, 0, 64);
        assert_eq!(
            plan(&small, None, 3 * MIB as usize, RAM),
            Err(ImageError::DtbTooLarge { size: 3 * MIB })
        );
        // 3 MiB from an unaligned base: only one whole block, and it must hold the device tree.
        assert!(matches!(
            plan(
                &small,
                None,
                100,
                (GuestPhysAddr::new(0x4010_0000), 3 * MIB)
            ),
            Err(ImageError::KernelTooBig { .. })
        ));
        assert!(matches!(
            plan(&small, None, 100, (GuestPhysAddr::new(0x4010_0000), MIB)),
            Err(ImageError::RamUnusable { .. })
        ));
        assert!(matches!(
            plan(
                &small,
                None,
                100,
                (GuestPhysAddr::new(u64::MAX - MIB), 4 * MIB)
            ),
            Err(ImageError::RamUnusable { .. })
        ));
        let huge_offset = image(u64::MAX - 10, MIB, 0, 64);
        assert!(matches!(
            plan(&huge_offset, None, 100, RAM),
            Err(ImageError::KernelTooBig { .. })
        ));
    }

    #[test]
    fn packed_kernels_are_refused_by_name() {
        let mut gzip = vec![0x1f, 0x8b, 0x08, 0x00];
        gzip.resize(4096, 0);
        assert_eq!(
            plan(&gzip, None, 100, RAM),
            Err(ImageError::PackedKernel(PackedKernel::Gzip))
        );
        let line = ImageError::PackedKernel(PackedKernel::Gzip).to_string();
        assert!(
            line.starts_with("the kernel is gzip-compressed; "),
            "{line}"
        );
        assert!(
            line.contains("decompress it (cargo xtask does this)"),
            "{line}"
        );
        let samples: [(&[u8], PackedKernel); 10] = [
            (&[0x1f, 0x8b, 8], PackedKernel::Gzip),
            (b"\xfd7zXZ\x00\x00", PackedKernel::Xz),
            (&[0x28, 0xb5, 0x2f, 0xfd, 0], PackedKernel::Zstd),
            (b"BZh91AY", PackedKernel::Bzip2),
            (&[0x04, 0x22, 0x4d, 0x18], PackedKernel::Lz4),
            (&[0x02, 0x21, 0x4c, 0x18], PackedKernel::Lz4),
            (b"\x89LZO\x00", PackedKernel::Lzo),
            (b"\x7fELF\x02\x01", PackedKernel::Elf),
            (b"MZ\x00\x00zimg", PackedKernel::EfiZboot),
            (&[0x27, 0x05, 0x19, 0x56], PackedKernel::UImage),
        ];
        for (bytes, format) in samples {
            assert_eq!(PackedKernel::detect(bytes), Some(format), "{bytes:x?}");
            assert_eq!(detect(bytes), Err(ImageError::PackedKernel(format)));
        }
    }

    #[test]
    fn efi_stub_images_and_raw_code_are_not_mistaken_for_packed_kernels() {
        // Debian's arm64 Image has an EFI stub: it starts with `MZ` and carries the Image magic.
        let mut efi_stub = image(0, MIB, 0, 4096);
        efi_stub[..8].copy_from_slice(b"MZ@\xfaFcN\x14");
        assert!(matches!(
            detect(&efi_stub),
            Ok(ImageFormat::Arm64Image { .. })
        ));
        // `MZ` without the Image magic or zboot's `zimg` is an ordinary raw binary.
        assert_eq!(detect(b"MZ\x00\x00\x00\x00\x00\x00"), Ok(ImageFormat::Raw));
        // A raw test guest starting with ordinary A64 code (`mrs x0, mpidr_el1`; `b .`).
        let code = [0xa0, 0x00, 0x38, 0xd5, 0x00, 0x00, 0x00, 0x14];
        assert_eq!(PackedKernel::detect(&code), None);
        assert_eq!(detect(&code), Ok(ImageFormat::Raw));
        assert_eq!(PackedKernel::detect(&[0x1f]), None);
    }

    #[test]
    fn errors_are_one_line() {
        let errors = [
            ImageError::RamUnusable {
                base: GuestPhysAddr::new(0),
                size: 0,
            },
            ImageError::BigEndianKernel,
            ImageError::PackedKernel(PackedKernel::Gzip),
            ImageError::PackedKernel(PackedKernel::Elf),
            ImageError::PackedKernel(PackedKernel::EfiZboot),
            ImageError::PackedKernel(PackedKernel::UImage),
            ImageError::KernelTooBig {
                needed: 1,
                available: 0,
            },
            ImageError::DtbTooLarge { size: 1 },
            ImageError::InitrdTooBig {
                size: 1,
                available: 0,
            },
        ];
        for error in errors {
            let line = error.to_string();
            assert!(!line.contains('\n') && line.contains(": "), "{line}");
        }
    }
}
