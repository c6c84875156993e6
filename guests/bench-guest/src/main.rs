//! The bench guest: a bare-metal EL1 program that times micro-operations (null hypercall, trapped
//! GIC distributor read and write, vUART read, virtual SGI and its EOI, IPI to the sibling vCPU,
//! virtual timer latency, a passed-through PCI disk's INTx) and prints one machine-readable line
//! per operation (see docs/benchmarks.md), then powers off.
//!
//! Linked at 0x4000_0000 and entered at its first byte at EL1h with MMU and caches off. Under
//! cellvisor x0 is the cell's device tree, whose `/chosen/bootargs` may say `iterations=N` (and `only=OP` to run one operation). Natively
//! (`qemu-system-aarch64 -M virt,gic-version=3 -cpu max,sve=off,sme=off -smp 2 -m 64M -kernel <ELF>`,
//! or `gic-version=2`: the guest finds its GIC at run time, see [`gic::detect`])
//! QEMU loads the ELF at the RAM base, passes no device tree (x0 = 0) and answers PSCI through HVC
//! itself; the bootargs then come from a NUL-terminated string at [`NATIVE_ARGS`], which `cargo
//! xtask bench` places with `-device loader,file=...,addr=0x43f00000,force-raw=on` (zero memory
//! means no arguments).
#![no_std]
#![no_main]

mod entry;
mod exception;
mod gic;
mod gicv2;
mod pci_intx;
mod sys;

use cellvisor_guest_support::{console, fdt, println};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use exception::{IPI_REPLY, TIMER_FIRED, TIMER_LATENCY};
use sys::{Pmu, Sample, write_sysreg};

/// Guest-physical base of RAM (cell view and QEMU virt).
const RAM_BASE: u64 = 0x4000_0000;
/// RAM the guest may assume (a bench cell has 64 MiB; natively `-m 64M`).
const RAM_SIZE: u64 = 64 * 1024 * 1024;
/// Where the native run's bootargs string is (63 MiB into RAM).
const NATIVE_ARGS: u64 = RAM_BASE + 63 * 1024 * 1024;
/// Longest bootargs string read from [`NATIVE_ARGS`].
const NATIVE_ARGS_MAX: usize = 256;
/// Iterations per operation unless `iterations=N` says otherwise.
const DEFAULT_ITERATIONS: u64 = 65_536;
/// Bound for polling loops that wait for the GIC or the sibling (never reached when things work).
const POLL_LIMIT: u64 = 10_000_000;

/// Set by vCPU 1 once its GIC interface is up.
static SECONDARY_READY: AtomicBool = AtomicBool::new(false);

unsafe extern "C" {
    /// End of everything the guest uses (image, .bss, stacks); from the linker script.
    static __image_end: u8;
}

/// How the figures of one run are to be read.
struct Run {
    native: bool,
    iterations: u64,
    frequency: u64,
    pmu: Pmu,
}

/// `value / divisor` with two decimals.
struct Fixed {
    hundredths: u128,
}

impl Fixed {
    fn ratio(value: u128, divisor: u128) -> Self {
        Self {
            hundredths: (value * 100 + divisor / 2) / divisor.max(1),
        }
    }
}

impl core::fmt::Display for Fixed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:02}", self.hundredths / 100, self.hundredths % 100)
    }
}

impl Run {
    /// Prints `bench: op=<op> iterations=N ticks=T ns_per_op=… cycles_per_op=… el2_instr_per_op=…`
    /// and any extra fields.
    fn report(&self, op: &str, total: Sample, extra: core::fmt::Arguments<'_>) {
        let iterations = u128::from(self.iterations);
        let nanoseconds = u128::from(total.ticks) * 1_000_000_000;
        let ns_per_op = Fixed::ratio(nanoseconds, u128::from(self.frequency) * iterations);
        let cycles = Fixed::ratio(u128::from(total.cycles), iterations);
        let el2 = Fixed::ratio(u128::from(total.el2), iterations);
        let mut line = LineBuffer::default();
        use core::fmt::Write as _;
        let _ = write!(
            line,
            "bench: op={op} iterations={} ticks={} ns_per_op={ns_per_op}",
            self.iterations, total.ticks
        );
        if self.pmu.cycles {
            let _ = write!(line, " cycles_per_op={cycles}");
        } else {
            let _ = write!(line, " cycles_per_op=-");
        }
        if self.pmu.el2_instructions && !self.native {
            let _ = write!(line, " el2_instr_per_op={el2}");
        } else {
            let _ = write!(line, " el2_instr_per_op=-");
        }
        let _ = write!(line, "{extra}");
        println!("{}", line.as_str());
    }

    fn per_op(&self, value: u64) -> Fixed {
        Fixed::ratio(u128::from(value), u128::from(self.iterations))
    }
}

/// A line assembled before printing, so one op's line reaches the console in one piece.
struct LineBuffer {
    bytes: [u8; 320],
    length: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self {
            bytes: [0; 320],
            length: 0,
        }
    }
}

impl LineBuffer {
    fn as_str(&self) -> &str {
        core::str::from_utf8(self.bytes.get(..self.length).unwrap_or(&[])).unwrap_or("")
    }
}

impl core::fmt::Write for LineBuffer {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        let end = self.length + text.len();
        let slot = self
            .bytes
            .get_mut(self.length..end)
            .ok_or(core::fmt::Error)?;
        slot.copy_from_slice(text.as_bytes());
        self.length = end;
        Ok(())
    }
}

/// vCPU 0's Rust entry: x0 as the guest was entered, and CNTVCT_EL0 at its first instruction.
extern "C" fn primary_main(device_tree: u64, entry_ticks: u64) -> ! {
    let native = device_tree == 0;
    let device_tree = if native {
        None
    } else {
        device_tree_blob(device_tree)
    };
    let bootargs = match device_tree {
        Some(blob) => fdt::chosen_bootargs(blob),
        None => native_args(),
    }
    .unwrap_or("");
    let iterations = bootargs
        .split_whitespace()
        .find_map(|word| word.strip_prefix("iterations="))
        .and_then(|value| value.parse::<u64>().ok())
        .filter(|&value| value > 0)
        .unwrap_or(DEFAULT_ITERATIONS);
    let pmu = Pmu::init();
    let run = Run {
        native,
        iterations,
        frequency: sys::frequency(),
        pmu,
    };
    gic::detect();
    gic::init_distributor();
    gic::init_this_cpu();
    println!(
        "bench: start env={} gic={} entry_ticks={entry_ticks} freq={} iterations={iterations} pmu_cycles={} el2_instructions={} bootargs=\"{bootargs}\"",
        if native { "native" } else { "cellvisor" },
        if gic::is_gicv2() { "v2" } else { "v3" },
        run.frequency,
        yes_no(pmu.cycles),
        yes_no(pmu.el2_instructions && !native),
    );
    let started = sys::hvc(
        sys::PSCI_CPU_ON,
        1,
        entry::secondary_entry as *const () as u64,
        0,
    );
    // Time-bounded, not count-bounded: under -icount QEMU runs vCPUs round-robin in time slices.
    let give_up = sys::counter() + 2 * run.frequency;
    let sibling = started == 0
        && (0..).any(|_: u64| SECONDARY_READY.load(Ordering::SeqCst) || sys::counter() > give_up)
        && SECONDARY_READY.load(Ordering::SeqCst);
    if !sibling {
        println!("bench: error: vcpu 1 did not start (CPU_ON returned {started})");
    }

    // `only=OP` runs just that operation (and `null`), e.g. for an exec trace of one path.
    let only = bootargs
        .split_whitespace()
        .find_map(|word| word.strip_prefix("only="));
    let selected = |op: &str| only.is_none_or(|only| only == op);
    let overhead = measure_overhead(&run);
    run.report("null", overhead, format_args!(" note=counter_read_pair"));
    if selected("hvc") {
        hypercall(&run);
    }
    if selected("gicd_read") {
        mmio_read(&run, "gicd_read", gic::GICD_BASE + gic::GICD_IIDR);
    }
    if selected("gicd_write") {
        gicd_write(&run);
    }
    if selected("uart_read") {
        mmio_read(&run, "uart_read", console::PL011_BASE + console::UARTFR);
    }
    if selected("sgi_self") {
        sgi_and_eoi(&run, overhead);
    }
    if sibling && selected("ipi") {
        ipi(&run);
    }
    if selected("timer") {
        timer(&run);
    }
    if selected("pci_intx") {
        pci_intx::run(&run, device_tree);
    }
    println!("bench: done");
    sys::system_off()
}

/// vCPU 1's Rust entry: bring up its GIC interface and answer IPIs from an idle loop.
extern "C" fn secondary_main(_context_id: u64, _index: u64) -> ! {
    Pmu::init();
    gic::init_this_cpu();
    SECONDARY_READY.store(true, Ordering::SeqCst);
    loop {
        sys::mask_irq();
        sys::wfi();
        sys::unmask_irq();
    }
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// Polls `condition` up to [`POLL_LIMIT`] times.
fn wait(mut condition: impl FnMut() -> bool) -> bool {
    (0..POLL_LIMIT).any(|_| condition())
}

/// The cost of one [`Sample::now`] pair, summed over the iterations.
fn measure_overhead(run: &Run) -> Sample {
    let mut total = Sample::default();
    for _ in 0..run.iterations {
        let before = Sample::now();
        let after = Sample::now();
        total.add(after.since(before));
    }
    total
}

/// Null hypercall: CELLVISOR_VERSION under cellvisor, PSCI_VERSION to QEMU's firmware natively
/// (an unknown SMCCC call through HVC is UNDEFINED there).
fn hypercall(run: &Run) {
    let function = if run.native {
        sys::PSCI_VERSION
    } else {
        sys::CELLVISOR_VERSION
    };
    let before = Sample::now();
    for _ in 0..run.iterations {
        sys::hvc(function, 0, 0, 0);
    }
    let total = Sample::now().since(before);
    let call = if run.native {
        "psci_version"
    } else {
        "cellvisor_version"
    };
    run.report("hvc", total, format_args!(" call={call}"));
}

/// A 32-bit read of a device register, `iterations` times.
fn mmio_read(run: &Run, op: &str, address: usize) {
    let before = Sample::now();
    for _ in 0..run.iterations {
        gic::read32(address);
    }
    let total = Sample::now().since(before);
    run.report(op, total, format_args!(" address={address:#x}"));
}

/// A 32-bit write of GICD_IPRIORITYR (SPIs 40..43, which nobody uses).
fn gicd_write(run: &Run) {
    let address = gic::GICD_BASE + gic::GICD_IPRIORITYR_SPI40;
    let before = Sample::now();
    for _ in 0..run.iterations {
        gic::write32(address, 0xA0A0_A0A0);
    }
    let total = Sample::now().since(before);
    run.report("gicd_write", total, format_args!(" address={address:#x}"));
}

/// Self-SGI with IRQs masked, polled with ICC_IAR1_EL1 and ended with ICC_EOIR1_EL1 (GICv2:
/// sent through GICD_SGIR, polled with GICC_IAR, ended with GICC_EOIR): the whole round is
/// `sgi_self`, the EOI alone (timed per iteration, minus the counter-read overhead) `eoi`.
fn sgi_and_eoi(run: &Run, overhead: Sample) {
    sys::mask_irq();
    let target = sys::vcpu_index();
    let value = gic::sgi_value(gic::SGI_SELF, target);
    let mut eoi = Sample::default();
    let mut failed = false;
    let before = Sample::now();
    for _ in 0..run.iterations {
        gic::send_sgi(value);
        let mut interrupt = gic::Interrupt::SPURIOUS;
        if !wait(|| {
            interrupt = gic::acknowledge();
            interrupt.intid != gic::SPURIOUS
        }) {
            failed = true;
            break;
        }
        let start = Sample::now();
        gic::end_of_interrupt(interrupt);
        let end = Sample::now();
        eoi.add(end.since(start));
    }
    let total = Sample::now().since(before);
    sys::unmask_irq();
    if failed {
        println!("bench: error: the self-SGI never became pending");
        return;
    }
    run.report("sgi_self", total, format_args!(" intid={}", gic::SGI_SELF));
    let eoi = Sample {
        ticks: eoi.ticks.saturating_sub(overhead.ticks),
        cycles: eoi.cycles.saturating_sub(overhead.cycles),
        el2: eoi.el2.saturating_sub(overhead.el2),
    };
    run.report("eoi", eoi, format_args!(" note=minus_counter_read_pair"));
}

/// IPI ping-pong: vCPU 0 sends SGI 0 to vCPU 1 and spins, interrupts unmasked, until vCPU 1's
/// handler's SGI 0 comes back; a figure is one round trip (two IPIs). EL2 instructions are
/// vCPU 0's: the send (the ICC_SGI1R_EL1 trap; GICv2: the GICD_SGIR trap) and the receive (the reply's physical interrupt
/// taken at EL2 while the guest runs, and its injection).
///
/// vCPU 0 spins rather than WFI: under `-icount`, QEMU's instruction counter is the machine's, so
/// a CPU idling at EL2 would count the other CPUs' instructions as its own EL2 instructions.
/// Even so, QEMU's round-robin sometimes hands the thread to vCPU 1 at the kick while vCPU 0 is
/// still at EL2, and vCPU 1's work then lands in vCPU 0's window (and a reply may arrive inside
/// the send's exit). Whether that happens depends on the exact instruction counts of the build, so
/// besides the means the op reports the median per-iteration counts (`el2_send_median`,
/// `el2_receive_median`), which stay the paths' typical costs while most iterations are clean.
fn ipi(run: &Run) {
    let value = gic::sgi_value(gic::SGI_IPI, 1);
    let mut send_el2 = 0;
    let send_bins = Histogram::new(&SEND_BINS);
    let receive_bins = Histogram::new(&RECEIVE_BINS);
    let mut failed = false;
    let before = Sample::now();
    for _ in 0..run.iterations {
        IPI_REPLY.store(false, Ordering::SeqCst);
        sys::mask_irq();
        let send_start = sys::el2_instructions();
        gic::send_sgi(value);
        let send_end = sys::el2_instructions();
        let send = send_end.wrapping_sub(send_start) & 0xFFFF_FFFF;
        send_el2 += send;
        send_bins.add(send);
        sys::unmask_irq();
        let replied = wait(|| {
            spin_yield();
            IPI_REPLY.load(Ordering::SeqCst)
        });
        receive_bins.add(sys::el2_instructions().wrapping_sub(send_end) & 0xFFFF_FFFF);
        if !replied {
            failed = true;
            break;
        }
    }
    let total = Sample::now().since(before);
    if failed {
        println!("bench: error: vcpu 1 did not answer the IPI");
        return;
    }
    if run.pmu.el2_instructions && !run.native {
        run.report(
            "ipi",
            total,
            format_args!(
                " note=round_trip el2_send_per_op={} el2_receive_per_op={} el2_send_median={} el2_receive_median={}",
                run.per_op(send_el2),
                run.per_op(total.el2.saturating_sub(send_el2)),
                send_bins.median(),
                receive_bins.median()
            ),
        );
    } else {
        run.report("ipi", total, format_args!(" note=round_trip"));
    }
}

/// Per-iteration EL2 counts below this are binned one by one; larger ones share the last bin.
const BINS: usize = 4096;
static SEND_BINS: [AtomicU32; BINS] = [const { AtomicU32::new(0) }; BINS];
static RECEIVE_BINS: [AtomicU32; BINS] = [const { AtomicU32::new(0) }; BINS];

/// A histogram of per-iteration counts in static bins (no allocation, nothing on the stack).
struct Histogram {
    bins: &'static [AtomicU32; BINS],
}

impl Histogram {
    /// Clears `bins` and uses them.
    fn new(bins: &'static [AtomicU32; BINS]) -> Self {
        bins.iter().for_each(|bin| bin.store(0, Ordering::Relaxed));
        Self { bins }
    }

    fn add(&self, value: u64) {
        let index = usize::try_from(value).unwrap_or(BINS - 1).min(BINS - 1);
        if let Some(bin) = self.bins.get(index) {
            bin.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The lower median of the values added (the last bin stands for "that much or more").
    fn median(&self) -> usize {
        let total: u64 = self
            .bins
            .iter()
            .map(|bin| u64::from(bin.load(Ordering::Relaxed)))
            .sum();
        let half = total.div_ceil(2);
        let mut seen = 0;
        for (value, bin) in self.bins.iter().enumerate() {
            seen += u64::from(bin.load(Ordering::Relaxed));
            if seen >= half && seen > 0 {
                return value;
            }
        }
        0
    }
}

/// The spin-wait hint. Under `-icount` QEMU runs the vCPUs round-robin on one thread and a YIELD
/// hands the thread to the next vCPU at once; without it a spinning vCPU would keep the thread for
/// its whole time slice and the round trip would measure QEMU's scheduling (elsewhere: a no-op).
#[inline(always)]
fn spin_yield() {
    // SAFETY: YIELD is a hint with no architectural effect.
    unsafe { core::arch::asm!("yield", options(nomem, nostack, preserves_flags)) };
}

/// Virtual timer: program CNTV_CVAL_EL0 a few microseconds ahead, spin with IRQs unmasked; the
/// figure is handler entry minus the deadline, averaged (ns_per_op); el2 per interrupt.
fn timer(run: &Run) {
    let delta = (run.frequency / 200_000).max(1);
    TIMER_LATENCY.store(0, Ordering::Relaxed);
    // The handler runs with IRQs unmasked (also when `only=timer` skipped the SGI op that
    // unmasks them first).
    sys::unmask_irq();
    let mut failed = false;
    let before = Sample::now();
    for _ in 0..run.iterations {
        TIMER_FIRED.store(false, Ordering::SeqCst);
        write_sysreg!("cntv_cval_el0", sys::counter() + delta);
        write_sysreg!("cntv_ctl_el0", 1);
        sys::isb();
        if !wait(|| TIMER_FIRED.load(Ordering::SeqCst)) {
            failed = true;
            break;
        }
    }
    let total = Sample::now().since(before);
    write_sysreg!("cntv_ctl_el0", 0);
    if failed {
        println!("bench: error: the virtual timer never fired");
        return;
    }
    let latency = TIMER_LATENCY.load(Ordering::Relaxed);
    let latency_sample = Sample {
        ticks: latency,
        ..total
    };
    run.report(
        "timer",
        latency_sample,
        format_args!(
            " note=deadline_to_handler deadline_delta_ns={} window_ns_per_op={}",
            u128::from(delta) * 1_000_000_000 / u128::from(run.frequency),
            Fixed::ratio(
                u128::from(total.ticks) * 1_000_000_000,
                u128::from(run.frequency) * u128::from(run.iterations)
            )
        ),
    );
}

/// The native run's bootargs: the NUL-terminated string at [`NATIVE_ARGS`], if any.
fn native_args() -> Option<&'static str> {
    // SAFETY: NATIVE_ARGS lies in RAM above the image and its stacks, never written by the guest,
    // so the 'static slice is not mutated while it lives.
    let bytes = unsafe { core::slice::from_raw_parts(NATIVE_ARGS as *const u8, NATIVE_ARGS_MAX) };
    let end = bytes.iter().position(|&byte| byte == 0)?;
    core::str::from_utf8(bytes.get(..end)?)
        .ok()
        .filter(|text| !text.is_empty())
}

/// The device tree at `address`, which must lie in RAM after the image.
fn device_tree_blob(address: u64) -> Option<&'static [u8]> {
    let image_end = (&raw const __image_end) as u64;
    let ram_end = RAM_BASE + RAM_SIZE;
    if !(image_end..ram_end).contains(&address) || !address.is_multiple_of(8) {
        println!("bench: error: device tree at {address:#x} is not in free RAM");
        return None;
    }
    let room = usize::try_from(ram_end - address).ok()?;
    // SAFETY: [address, ram_end) is RAM above everything the guest writes, so it is not mutated
    // while the 'static slices live; 8 bytes fit as `address` is 8-aligned below ram_end.
    let header = unsafe { core::slice::from_raw_parts(address as *const u8, 8) };
    let size = fdt::total_size(header).filter(|&size| size <= room)?;
    // SAFETY: as above, and `size` bytes fit before the end of RAM.
    Some(unsafe { core::slice::from_raw_parts(address as *const u8, size) })
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("bench: error: panic: {info}");
    sys::system_off()
}
