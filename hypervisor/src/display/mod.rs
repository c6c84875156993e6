//! TEMPORARY stub.
#![allow(missing_docs)]
pub mod banner;
