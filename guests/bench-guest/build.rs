//! Links the bench guest with its own linker script (only for the bare-metal target).
fn main() {
    println!("cargo:rerun-if-changed=bench-guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        println!("cargo:rustc-link-arg-bins=-T{dir}/bench-guest.ld");
    }
}
