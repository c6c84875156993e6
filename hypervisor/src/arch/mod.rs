//! The one `cfg(target_arch)` boundary: hardware access for the aarch64 EL2 build.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
