//! The one `cfg(target_arch)` boundary: hardware access for the aarch64 EL2 build, and the fake
//! arch the host tests drive the run loop with.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
#[cfg(test)]
pub mod fake;
