//! What every board crate's `build.rs` does (included with `#[path]`): link the hypervisor image
//! at the board's load address with cellvisor's linker script, for the bare-metal target only.
use std::{env, path::PathBuf};

/// Links the board's image binaries at `load_address`, with arm64 `text_offset` `text_offset`.
pub fn link_image(load_address: u64, text_offset: u64) {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("../../hypervisor/src/arch/aarch64/image.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=src/image_address.rs");
    println!("cargo:rustc-link-arg-bins=--defsym=LOAD_ADDRESS={load_address:#x}");
    println!("cargo:rustc-link-arg-bins=--defsym=__text_offset={text_offset:#x}");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
}
