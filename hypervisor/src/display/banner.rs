#![allow(missing_docs, unused)]
use crate::dev::pl111::PixelFormat;
pub fn draw_banner(pixels: &mut [u32], width: u32, height: u32, stride_words: u32, format: PixelFormat, name: &str, colour: u32) {}
