//! Reading the Arm generic timer's system counter on CPUs whose counter reads can be wrong.
//!
//! The Allwinner A64's counter (the DT's `allwinner,erratum-unknown1`) sometimes returns a value
//! whose low bits are all ones or all zeros while the upper bits have not yet caught up: the read
//! is off by up to 512 ticks, once in a while, and time seems to jump backwards or forwards. The
//! workaround (the one Linux's `arm_arch_timer` applies for this erratum) reads again while the
//! low 9 bits are `0x1ff` or `0x000`, a bounded number of times; a correct value with those low
//! bits is just read again and returned the next tick.

/// The low counter bits whose all-ones or all-zeros value may be a bad read.
const SUSPECT_BITS: u64 = 0x1ff;
/// Reads before a suspect value is accepted anyway (a counter stopped on such a value).
pub const RETRIES: u32 = 150;

/// Reads the counter through `read`. With `erratum` (`allwinner,erratum-unknown1`), reads again
/// while the value looks like a bad read of the A64's counter, up to [`RETRIES`] times in all.
pub fn read_counter(erratum: bool, mut read: impl FnMut() -> u64) -> u64 {
    let mut value = read();
    if !erratum {
        return value;
    }
    for _ in 1..RETRIES {
        if !suspect(value) {
            break;
        }
        value = read();
    }
    value
}

/// Whether `value`'s low 9 bits are all ones or all zeros.
fn suspect(value: u64) -> bool {
    (value.wrapping_add(1) & SUSPECT_BITS) <= 1
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake counter returning `values` in turn (then the last one), counting reads.
    fn fake(
        values: &[u64],
    ) -> (
        impl FnMut() -> u64 + '_,
        std::rc::Rc<std::cell::Cell<usize>>,
    ) {
        let reads = std::rc::Rc::new(std::cell::Cell::new(0));
        let counted = reads.clone();
        let read = move || {
            let n = counted.get();
            counted.set(n + 1);
            values[n.min(values.len() - 1)]
        };
        (read, reads)
    }

    #[test]
    fn without_the_erratum_the_first_read_is_the_value() {
        let (read, reads) = fake(&[0x1_01ff, 0x1_0200]);
        assert_eq!(read_counter(false, read), 0x1_01ff);
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn a_read_with_low_bits_all_ones_or_all_zeros_is_read_again() {
        // A bad read ahead by 0x1ff, then the true value.
        let (read, reads) = fake(&[0x2_01ff, 0x1_0203]);
        assert_eq!(read_counter(true, read), 0x1_0203);
        assert_eq!(reads.get(), 2);
        let (read, reads) = fake(&[0x1_0000, 0x1_0000, 0x1_0001]);
        assert_eq!(read_counter(true, read), 0x1_0001);
        assert_eq!(reads.get(), 3);
    }

    #[test]
    fn an_ordinary_read_is_taken_at_once() {
        let (read, reads) = fake(&[0x1_0123]);
        assert_eq!(read_counter(true, read), 0x1_0123);
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn a_counter_stuck_on_a_suspect_value_is_read_a_bounded_number_of_times() {
        let (read, reads) = fake(&[0x4_0000]);
        assert_eq!(read_counter(true, read), 0x4_0000);
        assert_eq!(reads.get(), RETRIES as usize);
    }
}
