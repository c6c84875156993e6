//! Links the hypervisor image at the board's load address with cellvisor's linker script.
use std::{env, path::PathBuf};

fn main() {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("../../hypervisor/src/arch/aarch64/image.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=src/lib.rs");
    // Keep in sync with `qemu_virt::LOAD_ADDRESS`; a const assert in the image checks it.
    println!("cargo:rustc-link-arg-bins=--defsym=LOAD_ADDRESS=0x40200000");
    // Offset of the load address from the 2 MiB-aligned RAM base QEMU/booti place the image at.
    println!("cargo:rustc-link-arg-bins=--defsym=__text_offset=0x200000");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
}
