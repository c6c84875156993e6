//! Index arithmetic of the SMMU's circular queues: a producer or consumer value is an index
//! (the low `log2_entries` bits) and a wrap bit above it, so full and empty differ (IHI 0070
//! section 3.5.1).
#![forbid(unsafe_code)]

/// The largest queue the architecture allows: 2^19 entries (`SMMU_IDR1.CMDQS`/`EVENTQS` max).
pub const MAX_LOG2_ENTRIES: u8 = 19;

/// Geometry of one queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Queue {
    log2_entries: u8,
}

impl Queue {
    /// A queue of 2^`log2_entries` entries, `None` beyond [`MAX_LOG2_ENTRIES`].
    pub fn new(log2_entries: u8) -> Option<Self> {
        (log2_entries <= MAX_LOG2_ENTRIES).then_some(Self { log2_entries })
    }

    /// A queue of 2^`log2_entries` entries, at most 2^[`MAX_LOG2_ENTRIES`].
    pub fn clamped(log2_entries: u8) -> Self {
        Self {
            log2_entries: log2_entries.min(MAX_LOG2_ENTRIES),
        }
    }

    /// log2 of the number of entries (the `LOG2SIZE` of the queue's base register).
    pub fn log2_entries(self) -> u8 {
        self.log2_entries
    }

    /// Number of entries.
    pub fn entries(self) -> u32 {
        1 << self.log2_entries
    }

    /// The bits of a PROD/CONS register that are index and wrap; others (`ERR`, overflow flags)
    /// are masked off.
    pub fn pointer_mask(self) -> u32 {
        (self.entries() << 1) - 1
    }

    /// Slot of `pointer`.
    pub fn index(self, pointer: u32) -> u32 {
        pointer & (self.entries() - 1)
    }

    /// Wrap bit of `pointer`.
    pub fn wrap(self, pointer: u32) -> bool {
        pointer & self.entries() != 0
    }

    /// Whether the queue holds no entries.
    pub fn is_empty(self, prod: u32, cons: u32) -> bool {
        (prod & self.pointer_mask()) == (cons & self.pointer_mask())
    }

    /// Whether every slot holds an entry: same index, different wrap.
    pub fn is_full(self, prod: u32, cons: u32) -> bool {
        self.index(prod) == self.index(cons) && self.wrap(prod) != self.wrap(cons)
    }

    /// Entries between `cons` and `prod`.
    pub fn occupied(self, prod: u32, cons: u32) -> u32 {
        let prod = prod & self.pointer_mask();
        let cons = cons & self.pointer_mask();
        prod.wrapping_sub(cons) & self.pointer_mask()
    }

    /// Free slots.
    pub fn free(self, prod: u32, cons: u32) -> u32 {
        self.entries() - self.occupied(prod, cons).min(self.entries())
    }

    /// `pointer` advanced by one slot, the wrap bit flipping at the end; other bits dropped.
    pub fn next(self, pointer: u32) -> u32 {
        (pointer.wrapping_add(1)) & self.pointer_mask()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let queue = Queue::new(3).unwrap();
        assert_eq!(queue.entries(), 8);
        assert_eq!(queue.pointer_mask(), 0xf);
        assert_eq!(Queue::new(19).unwrap().entries(), 1 << 19);
        assert_eq!(Queue::new(20), None);
        assert_eq!(Queue::new(0).unwrap().entries(), 1);
        assert_eq!(Queue::clamped(30).log2_entries(), 19);
        assert_eq!(Queue::clamped(7), Queue::new(7).unwrap());
    }

    #[test]
    fn empty_and_full() {
        let queue = Queue::new(2).unwrap();
        assert!(queue.is_empty(0, 0));
        assert!(!queue.is_full(0, 0));
        assert!(queue.is_full(0b100, 0b000), "same index, wrap differs");
        assert!(queue.is_full(0b011, 0b111));
        assert!(!queue.is_empty(0b100, 0b000));
        assert!(queue.is_empty(0b110, 0b110));
        assert_eq!(queue.occupied(0b100, 0), 4);
        assert_eq!(queue.free(0b100, 0), 0);
        assert_eq!(queue.free(0, 0), 4);
    }

    #[test]
    fn wraps() {
        let queue = Queue::new(2).unwrap();
        let mut pointer = 0;
        for expected in [1, 2, 3, 0b100, 0b101, 0b110, 0b111, 0] {
            pointer = queue.next(pointer);
            assert_eq!(pointer, expected);
        }
        assert_eq!(queue.index(0b110), 2);
        assert!(queue.wrap(0b110));
        // Producer wrapped, consumer not yet: 1 (index 1, wrap 1) - 3 (index 3, wrap 0) = 2.
        assert_eq!(queue.occupied(0b101, 0b011), 2);
        assert_eq!(queue.free(0b101, 0b011), 2);
    }

    #[test]
    fn ignores_flag_bits() {
        let queue = Queue::new(4).unwrap();
        let err_and_overflow = (1 << 31) | (0x7f << 24);
        assert!(queue.is_empty(5 | err_and_overflow, 5));
        assert_eq!(queue.next(0x1f | err_and_overflow), 0);
        assert_eq!(queue.occupied(3 | (1 << 31), 1), 2);
    }

    #[test]
    fn single_entry_queue() {
        let queue = Queue::new(0).unwrap();
        assert!(queue.is_empty(0, 0));
        assert_eq!(queue.next(0), 1);
        assert!(queue.is_full(1, 0));
        assert_eq!(queue.next(1), 0);
    }
}
