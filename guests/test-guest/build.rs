//! Links the test guest with its own linker script (only for the bare-metal target), as a
//! position-independent executable: the image is linked at 0x4000_0000 but applies its own
//! `R_AARCH64_RELATIVE` relocations at entry (see `cellvisor_guest_support::guest_entry!`), so one
//! binary runs at whatever RAM base a cell places it (an identity-mapped cell's RAM is not at
//! 0x4000_0000, which is cellvisor's own).
fn main() {
    println!("cargo:rerun-if-changed=test-guest.ld");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        println!("cargo:rustc-link-arg-bins=-T{dir}/test-guest.ld");
        // --pie: pointers in data become R_AARCH64_RELATIVE entries in .rela.dyn (the code is
        // PC-relative already). -z notext: some of them lie in .rodata, which a guest running with
        // its MMU off can write anyway. --apply-dynamic-relocs: the file also holds the values for
        // the link address, so the ELF runs unrelocated where it is linked (plain QEMU).
        // --no-dynamic-linker: no PT_INTERP; nothing but the guest's own entry code relocates it.
        for arg in [
            "--pie",
            "-znotext",
            "--apply-dynamic-relocs",
            "--no-dynamic-linker",
        ] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
    }
}
