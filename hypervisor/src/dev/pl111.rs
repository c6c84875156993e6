//! TEMPORARY stub.
#![allow(missing_docs, unused)]
use crate::dev::mmio::{AccessWidth, MmioError};
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelFormat { Xrgb8888, Xbgr8888 }
impl PixelFormat { pub fn fourcc(self) -> u32 { 0x34325258 } }
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRequest { pub base: u64, pub width: u32, pub height: u32, pub stride: u32, pub format: PixelFormat }
pub struct Pl111;
impl Pl111 {
    pub fn new(width: u32, height: u32) -> Self { Self }
    pub fn read(&self, offset: u64, width: AccessWidth) -> Result<u32, MmioError> { Ok(0) }
    pub fn write(&mut self, offset: u64, width: AccessWidth, value: u32) -> Result<bool, MmioError> { Ok(false) }
    pub fn frame(&self) -> Option<FrameRequest> { None }
    pub fn reset(&mut self) {}
}
