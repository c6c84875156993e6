//! The one `cfg(target_arch)` boundary: hardware access for the aarch64 EL2 build.
