//! `image::plan` on random kernels (arm64 Image headers and raw binaries), initrd/DTB sizes and RAM.
#![forbid(unsafe_code)]

use cellvisor::mem::PAGE_SIZE;
use cellvisor::mem::addr::GuestPhysAddr;
use cellvisor::setup::image::{self, ARM64_IMAGE_MAGIC, BLOCK_SIZE, ImageFormat, PackedKernel};

use crate::{FuzzTarget, Rng, ensure};

/// The target.
pub struct Image;

/// One placement request.
#[derive(Clone)]
pub struct Request {
    /// The kernel file (only its header and length matter).
    pub kernel: Vec<u8>,
    /// Initrd length.
    pub initrd_len: Option<usize>,
    /// Device tree length.
    pub dtb_len: usize,
    /// RAM: guest base and size.
    pub ram: (GuestPhysAddr, u64),
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("kernel_len", &self.kernel.len())
            .field(
                "kernel_header",
                &format_args!("{:02x?}", &self.kernel[..self.kernel.len().min(64)]),
            )
            .field("initrd_len", &self.initrd_len)
            .field("dtb_len", &self.dtb_len)
            .field(
                "ram",
                &format_args!("({:#x}, {:#x})", self.ram.0.raw(), self.ram.1),
            )
            .finish()
    }
}

const MIB: u64 = 1 << 20;

fn size(rng: &mut Rng) -> u64 {
    match rng.below(5) {
        0 => rng.interesting_u64(),
        1 => rng.below(4 * MIB),
        2 => rng.below(64) * BLOCK_SIZE,
        _ => rng.below(256 * MIB),
    }
}

impl FuzzTarget for Image {
    type Input = Request;
    const NAME: &'static str = "image";
    const SUMMARY: &'static str =
        "kernel/DTB/initrd placement: every range inside the RAM given, none overlapping";

    fn generate(rng: &mut Rng) -> Request {
        let length = if rng.chance(1, 8) {
            rng.index(64)
        } else {
            rng.range(64, 2048) as usize
        };
        let mut kernel = rng.bytes(length);
        if kernel.len() >= 64 && rng.chance(3, 4) {
            kernel[56..60].copy_from_slice(&ARM64_IMAGE_MAGIC.to_le_bytes());
            let text_offset = match rng.below(3) {
                0 => 0x8_0000,
                1 => rng.below(BLOCK_SIZE / 4096) * 4096,
                _ => rng.interesting_u64(),
            };
            kernel[8..16].copy_from_slice(&text_offset.to_le_bytes());
            kernel[16..24].copy_from_slice(&size(rng).to_le_bytes());
            let flags = if rng.chance(1, 8) {
                rng.next_u64()
            } else {
                rng.next_u64() & !1
            };
            kernel[24..32].copy_from_slice(&flags.to_le_bytes());
        }
        let base = match rng.below(4) {
            0 => rng.interesting_u64(),
            1 => rng.below(1 << 20) * 4096,
            _ => rng.below(1 << 12) * BLOCK_SIZE,
        };
        Request {
            kernel,
            initrd_len: rng.coin().then(|| size(rng) as usize),
            dtb_len: if rng.chance(1, 8) {
                size(rng) as usize
            } else {
                rng.below(BLOCK_SIZE + 2) as usize
            },
            ram: (GuestPhysAddr::new(base), size(rng)),
        }
    }

    fn check(request: &Request) -> Result<(), String> {
        let Ok(plan) = image::plan(
            &request.kernel,
            request.initrd_len,
            request.dtb_len,
            request.ram,
        ) else {
            return Ok(());
        };
        let (base, size) = (request.ram.0.raw(), request.ram.1);
        let end = base
            .checked_add(size)
            .ok_or("accepted a wrapping RAM region")?;
        let inside = |start: u64, length: u64| {
            start >= base && start.checked_add(length).is_some_and(|stop| stop <= end)
        };
        ensure!(
            plan.format != ImageFormat::Raw || PackedKernel::detect(&request.kernel).is_none(),
            "a packed kernel placed as a raw binary"
        );
        let kernel = (plan.kernel_at.raw(), plan.kernel_footprint);
        ensure!(
            kernel.1 >= request.kernel.len() as u64,
            "footprint below the file size"
        );
        ensure!(inside(kernel.0, kernel.1), "kernel {kernel:x?} outside RAM");
        ensure!(
            plan.entry == plan.kernel_at,
            "entry is not the kernel start"
        );
        // The DTB owns its whole 2 MiB block.
        let dtb = (plan.dtb_at.raw(), BLOCK_SIZE);
        ensure!(
            plan.dtb_at.is_aligned(8),
            "DTB at {:#x} not 8-byte aligned",
            dtb.0
        );
        ensure!(
            request.dtb_len as u64 <= BLOCK_SIZE,
            "DTB of {} bytes accepted",
            request.dtb_len
        );
        ensure!(inside(dtb.0, dtb.1), "DTB block {dtb:x?} outside RAM");
        let overlap = |a: (u64, u64), b: (u64, u64)| {
            a.1 != 0 && b.1 != 0 && a.0 < b.0 + b.1 && b.0 < a.0 + a.1
        };
        ensure!(
            !overlap(kernel, dtb),
            "kernel {kernel:x?} overlaps the DTB {dtb:x?}"
        );
        match (plan.initrd_at, request.initrd_len) {
            (Some(at), Some(length)) => {
                let initrd = (at.raw(), length as u64);
                ensure!(
                    at.is_aligned(PAGE_SIZE),
                    "initrd at {:#x} not page aligned",
                    initrd.0
                );
                ensure!(inside(initrd.0, initrd.1), "initrd {initrd:x?} outside RAM");
                ensure!(
                    !overlap(initrd, kernel),
                    "initrd {initrd:x?} overlaps the kernel {kernel:x?}"
                );
                ensure!(
                    !overlap(initrd, dtb),
                    "initrd {initrd:x?} overlaps the DTB {dtb:x?}"
                );
            }
            (None, None) => {}
            (at, length) => return Err(format!("initrd placed at {at:?} for length {length:?}")),
        }
        Ok(())
    }
}
