//! Per-cell stage-2 translation tables (built with aarch64-paging).
