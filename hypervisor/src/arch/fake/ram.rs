//! Fake physical RAM: sparse 4 KiB pages inside the ranges a test declares, zero until written.
//!
//! Only the declared ranges (the cells' RAM) exist: an access anywhere else panics, so a core
//! that writes hypervisor memory, a device window or another cell's RAM by mistake fails its test
//! instead of corrupting nothing silently. Pages never written read as zero and take no memory,
//! so a 768 MiB cell costs only what was loaded into it.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::board::MemRange;
use crate::mem::PAGE_SIZE;
use crate::mem::addr::PhysAddr;

/// One page of fake RAM.
type Page = [u8; PAGE_SIZE as usize];

/// Sparse physical memory limited to the declared ranges.
#[derive(Debug, Default)]
pub struct FakeRam {
    ranges: Vec<MemRange>,
    /// Pages that were written, by page number (address / [`PAGE_SIZE`]).
    pages: BTreeMap<u64, Box<Page>>,
}

impl FakeRam {
    /// RAM that exists only in `ranges`.
    pub fn new(ranges: Vec<MemRange>) -> Self {
        Self {
            ranges,
            pages: BTreeMap::new(),
        }
    }

    /// Panics unless `[address, address + length)` lies inside one declared range.
    fn check(&self, address: PhysAddr, length: u64, what: &str) {
        let end = address.raw().checked_add(length);
        let inside = self.ranges.iter().any(|range| {
            address.raw() >= range.base
                && end.is_some_and(|end| end <= range.base.saturating_add(range.size))
        });
        assert!(
            inside,
            "fake RAM: {what} of {length:#x} bytes at {:#x} is outside the cells' RAM {:x?}",
            address.raw(),
            self.ranges
        );
    }

    /// Copies `bytes` to `address`.
    pub fn write(&mut self, address: PhysAddr, bytes: &[u8]) {
        self.check(address, bytes.len() as u64, "write");
        for (offset, &byte) in (0u64..).zip(bytes) {
            let at = address.raw() + offset;
            let page = self
                .pages
                .entry(at / PAGE_SIZE)
                .or_insert_with(|| Box::new([0; PAGE_SIZE as usize]));
            page[(at % PAGE_SIZE) as usize] = byte;
        }
    }

    /// Reads `length` bytes at `address`.
    pub fn read(&self, address: PhysAddr, length: u64) -> Vec<u8> {
        self.check(address, length, "read");
        (address.raw()..address.raw() + length)
            .map(|at| {
                self.pages
                    .get(&(at / PAGE_SIZE))
                    .map_or(0, |page| page[(at % PAGE_SIZE) as usize])
            })
            .collect()
    }

    /// Zeroes `length` bytes at `address`: whole pages are dropped, partial ones cleared.
    pub fn zero(&mut self, address: PhysAddr, length: u64) {
        self.check(address, length, "zeroing");
        let (start, end) = (address.raw(), address.raw() + length);
        let touched: Vec<u64> = self
            .pages
            .range(start / PAGE_SIZE..end.div_ceil(PAGE_SIZE))
            .map(|(&number, _)| number)
            .collect();
        for number in touched {
            let page_start = number * PAGE_SIZE;
            let from = start.max(page_start) - page_start;
            let to = end.min(page_start + PAGE_SIZE) - page_start;
            if from == 0 && to == PAGE_SIZE {
                self.pages.remove(&number);
            } else if let Some(page) = self.pages.get_mut(&number) {
                page[from as usize..to as usize].fill(0);
            }
        }
    }

    /// Counts the non-zero bytes in `length` bytes at `address`.
    pub fn count_nonzero(&self, address: PhysAddr, length: u64) -> u64 {
        self.check(address, length, "verification");
        let (start, end) = (address.raw(), address.raw() + length);
        self.pages
            .range(start / PAGE_SIZE..end.div_ceil(PAGE_SIZE))
            .map(|(&number, page)| {
                let page_start = number * PAGE_SIZE;
                let from = (start.max(page_start) - page_start) as usize;
                let to = (end.min(page_start + PAGE_SIZE) - page_start) as usize;
                page[from..to].iter().filter(|&&byte| byte != 0).count() as u64
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram() -> FakeRam {
        FakeRam::new(vec![MemRange::new(0x6000_0000, 0x10_0000)])
    }

    #[test]
    fn writes_read_back_and_zeroing_clears_partial_and_whole_pages() {
        let mut ram = ram();
        ram.write(PhysAddr::new(0x6000_0ffe), &[1, 2, 3, 4]);
        ram.write(PhysAddr::new(0x6000_3000), &[9; 0x1000]);
        assert_eq!(ram.read(PhysAddr::new(0x6000_0ffd), 6), [0, 1, 2, 3, 4, 0]);
        assert_eq!(
            ram.count_nonzero(PhysAddr::new(0x6000_0000), 0x10_0000),
            0x1004
        );
        ram.zero(PhysAddr::new(0x6000_0fff), 0x2801);
        assert_eq!(ram.read(PhysAddr::new(0x6000_0ffe), 4), [1, 0, 0, 0]);
        assert_eq!(
            ram.count_nonzero(PhysAddr::new(0x6000_0000), 0x10_0000),
            1 + 0x800
        );
    }

    #[test]
    #[should_panic(expected = "outside the cells' RAM")]
    fn a_write_past_the_declared_ranges_panics() {
        ram().write(PhysAddr::new(0x600f_fffc), &[0; 8]);
    }
}
