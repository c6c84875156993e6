//! Deterministic host fuzzing of every cellvisor module that decodes guest (or boot-loader) input.
#![forbid(unsafe_code)]
//!
//! cargo-fuzz needs a nightly toolchain, so this crate brings its own small harness: a seeded
//! PRNG ([`rng::Rng`]), structure-aware generators, and one [`FuzzTarget`] per decoder with the
//! invariants that decoder must keep. Every iteration draws its input from
//! `Rng::for_iteration(seed, iteration)`, so a failure is replayed exactly with the same seed and
//! iteration number (`cellvisor-fuzz --target NAME --seed S --replay I`).
//!
//! A target's [`FuzzTarget::check`] returns `Err(reason)` for a broken invariant; a panic inside
//! the code under test is caught and reported the same way, with the input that caused it.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

pub mod rng;
pub mod targets;

pub use rng::Rng;

/// Returns `Err(format!(...))` from the enclosing check when `condition` is false.
#[macro_export]
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

/// One fuzz target: how to make an input and which invariants the code under test must keep on it.
pub trait FuzzTarget {
    /// Everything one iteration feeds to the code under test; its `Debug` form is what a failure
    /// report prints.
    type Input: fmt::Debug;
    /// Name on the command line.
    const NAME: &'static str;
    /// One line: what is fuzzed and what is checked.
    const SUMMARY: &'static str;
    /// Draws one input.
    fn generate(rng: &mut Rng) -> Self::Input;
    /// Runs the code under test on `input`; `Err` names the invariant that broke.
    fn check(input: &Self::Input) -> Result<(), String>;
}

/// A type-erased [`FuzzTarget`], as listed in [`TARGETS`].
#[derive(Clone, Copy)]
pub struct Target {
    /// Name on the command line.
    pub name: &'static str,
    /// One line: what is fuzzed and what is checked.
    pub summary: &'static str,
    iteration: fn(u64, u64) -> Result<(), Failure>,
    describe: fn(u64, u64) -> String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl Target {
    /// The erased form of `T`.
    pub const fn of<T: FuzzTarget>() -> Self {
        Self {
            name: T::NAME,
            summary: T::SUMMARY,
            iteration: run_iteration::<T>,
            describe: describe_input::<T>,
        }
    }

    /// Runs iteration `iteration` of a run seeded with `seed`.
    pub fn run_iteration(&self, seed: u64, iteration: u64) -> Result<(), Failure> {
        (self.iteration)(seed, iteration)
    }

    /// The `Debug` form of the input of iteration `iteration` of a run seeded with `seed`.
    pub fn describe(&self, seed: u64, iteration: u64) -> String {
        (self.describe)(seed, iteration)
    }

    /// Runs iterations `0..` until `budget` is spent or one fails.
    pub fn run(&self, seed: u64, budget: Budget) -> Result<Stats, Failure> {
        let start = Instant::now();
        let mut iteration = 0u64;
        loop {
            let done = match budget {
                Budget::Iterations(count) => iteration >= count,
                // Checking the clock every 64 iterations keeps its cost out of the measurement.
                Budget::Time(limit) => iteration.is_multiple_of(64) && start.elapsed() >= limit,
            };
            if done {
                return Ok(Stats {
                    iterations: iteration,
                    elapsed: start.elapsed(),
                });
            }
            self.run_iteration(seed, iteration)?;
            iteration += 1;
        }
    }
}

/// How long a run lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    /// This many iterations.
    Iterations(u64),
    /// At least this long (checked every 64 iterations).
    Time(Duration),
}

/// What a completed run did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Iterations run.
    pub iterations: u64,
    /// Wall-clock time taken.
    pub elapsed: Duration,
}

impl Stats {
    /// Iterations per second.
    pub fn rate(&self) -> f64 {
        self.iterations as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A broken invariant or a panic, with everything needed to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The target.
    pub target: &'static str,
    /// The run's seed.
    pub seed: u64,
    /// The failing iteration.
    pub iteration: u64,
    /// What went wrong: the invariant, or the panic message.
    pub reason: String,
    /// The input, in `Debug` form (cut at [`MAX_INPUT_REPORT`] bytes).
    pub input: String,
}

/// Longest input description a [`Failure`] keeps.
pub const MAX_INPUT_REPORT: usize = 16 * 1024;

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "target {} failed at seed {:#x} iteration {}: {}",
            self.target, self.seed, self.iteration, self.reason
        )?;
        writeln!(f, "input: {}", self.input)?;
        write!(
            f,
            "replay: cargo run -p cellvisor-fuzz -- --target {} --seed {:#x} --replay {}",
            self.target, self.seed, self.iteration
        )
    }
}

fn run_iteration<T: FuzzTarget>(seed: u64, iteration: u64) -> Result<(), Failure> {
    let mut input = None;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut rng = Rng::for_iteration(seed, iteration);
        T::check(input.insert(T::generate(&mut rng)))
    }));
    let reason = match outcome {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(reason)) => format!("invariant violated: {reason}"),
        Err(payload) => format!("panic: {}", panic_message(payload.as_ref())),
    };
    let mut description = match &input {
        Some(input) => format!("{input:#?}"),
        None => String::from("(the generator itself panicked)"),
    };
    if description.len() > MAX_INPUT_REPORT {
        let mut cut = MAX_INPUT_REPORT;
        while !description.is_char_boundary(cut) {
            cut -= 1;
        }
        description.truncate(cut);
        description.push_str(" …(cut)");
    }
    Err(Failure {
        target: T::NAME,
        seed,
        iteration,
        reason,
        input: description,
    })
}

fn describe_input<T: FuzzTarget>(seed: u64, iteration: u64) -> String {
    format!(
        "{:#?}",
        T::generate(&mut Rng::for_iteration(seed, iteration))
    )
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        String::from(*message)
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        String::from("(non-string panic payload)")
    }
}

/// Every target, in the order `--target all` runs them.
pub const TARGETS: &[Target] = &[
    Target::of::<targets::esr::Esr>(),
    Target::of::<targets::mmio::Mmio>(),
    Target::of::<targets::smccc::SmcccPsci>(),
    Target::of::<targets::inject::Inject>(),
    Target::of::<targets::vuart::Vuart>(),
    Target::of::<targets::console::Console>(),
    Target::of::<targets::vgic::Vgic>(),
    Target::of::<targets::bundle::Bundle>(),
    Target::of::<targets::platform::Platform>(),
    Target::of::<targets::guest_fdt::GuestFdt>(),
    Target::of::<targets::partition::Partition>(),
    Target::of::<targets::image::Image>(),
    Target::of::<targets::virtio::Virtio>(),
    Target::of::<targets::vsock::Vsock>(),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|target| target.name == name)
}
