//! What cellvisor itself puts on the screen: the banner frame shown on every focus switch, before
//! the focused cell's own framebuffer (its emulated PL111's, [`crate::dev::pl111`]) is scanned out.
#![forbid(unsafe_code)]

pub mod banner;
