#![allow(missing_docs)]
pub struct Virtqueue;
