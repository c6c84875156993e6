//! Kernels as users have them: a gzip-compressed arm64 `Image` (`Image.gz`, magic `1f 8b`) is
//! decompressed here, before it goes into a guest bundle; cellvisor itself places only uncompressed
//! arm64 Images and raw binaries, and refuses a gzip stream at boot.
use std::io::Read;
use std::path::Path;

use cellvisor::setup::image::has_arm64_image_magic;
use flate2::read::MultiGzDecoder;

use crate::fail;
use crate::util::{Context, Result};

/// gzip's magic, the first two bytes of every gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Largest decompressed kernel accepted: far above any arm64 Image (Debian's is ~30 MiB), low
/// enough that a corrupt or hostile stream cannot fill the disk or memory.
const MAX_IMAGE_BYTES: u64 = 512 << 20;

/// Whether `data` starts like a gzip stream.
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&GZIP_MAGIC)
}

/// Decompresses the gzip stream `data` (named `what` in errors) and checks that it holds an arm64
/// `Image`.
pub fn gunzip_image(data: &[u8], what: &str) -> Result<Vec<u8>> {
    let mut image = Vec::new();
    MultiGzDecoder::new(data)
        .take(MAX_IMAGE_BYTES + 1)
        .read_to_end(&mut image)
        .context(|| format!("cannot decompress {what} (gzip)"))?;
    if image.len() as u64 > MAX_IMAGE_BYTES {
        fail!(
            "{what} decompresses to more than {} MiB: not a kernel",
            MAX_IMAGE_BYTES >> 20
        );
    }
    if !has_arm64_image_magic(&image) {
        fail!(
            "{what} is gzip-compressed but not an arm64 Image inside (no \"ARM\\x64\" magic at offset 56)"
        );
    }
    Ok(image)
}

/// The kernel at `path` as it goes into a bundle: a gzip stream decompressed (and checked to be an
/// arm64 Image), anything else unchanged (cellvisor tells an Image from a raw binary at boot).
pub fn load(path: &Path) -> Result<Vec<u8>> {
    let data = std::fs::read(path).context(|| format!("cannot read {}", path.display()))?;
    if is_gzip(&data) {
        return gunzip_image(&data, &path.display().to_string());
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    /// A small file with an arm64 Image header and some text.
    fn fake_image() -> Vec<u8> {
        let mut image = vec![0u8; 64];
        image[..2].copy_from_slice(b"MZ");
        image[56..60].copy_from_slice(b"ARM\x64");
        image.extend(std::iter::repeat_n(0xd5u8, 100_000));
        image
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).expect("gzip in memory");
        encoder.finish().expect("gzip in memory")
    }

    #[test]
    fn a_gzip_image_is_decompressed() {
        let image = fake_image();
        let packed = gzip(&image);
        assert!(is_gzip(&packed) && !is_gzip(&image));
        assert_eq!(
            gunzip_image(&packed, "Image.gz").expect("decompresses"),
            image
        );
    }

    #[test]
    fn load_decompresses_gzip_files_and_passes_others_through() {
        let dir =
            std::env::temp_dir().join(format!("cellvisor-kernel-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let image = fake_image();
        let packed = dir.join("Image.gz");
        let raw = dir.join("guest.bin");
        std::fs::write(&packed, gzip(&image)).expect("write");
        std::fs::write(&raw, b"\xa0\x00\x38\xd5raw guest").expect("write");
        assert_eq!(load(&packed).expect("loads"), image);
        assert_eq!(load(&raw).expect("loads"), b"\xa0\x00\x38\xd5raw guest");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_gzip_stream_without_an_image_or_corrupt_is_a_one_line_error() {
        let not_image = gzip(b"hello, world: not a kernel at all, just text in a gzip stream");
        let mut truncated = gzip(&fake_image());
        truncated.truncate(truncated.len() / 2);
        let mut corrupt = gzip(&fake_image());
        corrupt[20] ^= 0xff;
        for (bad, expected) in [
            (not_image, "not an arm64 Image inside"),
            (truncated, "cannot decompress"),
            (corrupt, "cannot decompress"),
        ] {
            let error = gunzip_image(&bad, "k.gz").expect_err("refused").to_string();
            assert!(error.contains(expected) && !error.contains('\n'), "{error}");
            assert!(error.contains("k.gz"), "{error}");
        }
    }
}
