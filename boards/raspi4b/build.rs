//! Links the hypervisor image at the board's load address with cellvisor's linker script.
use std::{env, path::PathBuf};

#[path = "src/image_address.rs"]
mod image_address;

fn main() {
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("none") {
        return;
    }
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let script = manifest.join("../../hypervisor/src/arch/aarch64/image.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=src/image_address.rs");
    println!(
        "cargo:rustc-link-arg-bins=--defsym=LOAD_ADDRESS={:#x}",
        image_address::LOAD_ADDRESS
    );
    println!(
        "cargo:rustc-link-arg-bins=--defsym=__text_offset={:#x}",
        image_address::TEXT_OFFSET
    );
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
}
