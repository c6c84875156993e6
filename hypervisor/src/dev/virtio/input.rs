//! TEMPORARY stub.
#![allow(missing_docs)]
use alloc::vec::Vec;
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InputEvent { pub kind: u16, pub code: u16, pub value: u32 }
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InputConfig { pub name: Vec<u8>, pub serial: Vec<u8>, pub devids: [u8; 8], pub prop_bits: Vec<u8>, pub ev_bits: Vec<(u8, Vec<u8>)>, pub abs: Vec<(u8, [u8; 20])> }
impl InputConfig {
    pub fn from_query(mut query: impl FnMut(u8, u8, &mut [u8; 128]) -> u8) -> Self { let mut b=[0u8;128]; let n = query(1,0,&mut b); Self{ name: b[..n as usize].to_vec(), ..Self::default() } }
}
pub struct VirtioInput;
impl VirtioInput {
    pub fn new(config: alloc::sync::Arc<InputConfig>) -> Self { let _ = config; Self }
    pub fn push_event(&mut self, e: InputEvent) { let _ = e; }
    pub fn deliver(&mut self, q: &mut super::queue::Virtqueue, m: &mut dyn super::GuestMemory) -> Result<bool, super::VirtioError> { let _ = (q, m); Ok(false) }
}
