//! Guest image placement: arm64 Image header parsing, or raw binaries.
