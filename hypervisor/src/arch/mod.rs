//! The one `cfg(target_arch)` boundary: hardware access for the aarch64 EL2 build, and the fake
//! arch the host tests drive the run loop with.
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
pub mod aarch64;
#[cfg(test)]
pub mod fake;

/// How a CPU waits for a spin lock another CPU holds: with the architecture's spin-wait hint
/// (YIELD on aarch64, which QEMU's TCG answers by running the other emulated CPUs, so the holder
/// gets to release it), elsewhere the host's spin-loop hint. For the locks one CPU may hold
/// while another cell's CPU waits for them (the channel's switch and devices).
pub struct Relax;

impl spin::RelaxStrategy for Relax {
    #[inline(always)]
    fn relax() {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        aarch64::cache::spin_wait_hint();
        #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
        core::hint::spin_loop();
    }
}

/// A spin lock whose waiters use [`Relax`].
pub type RelaxedMutex<T> = spin::mutex::Mutex<T, Relax>;
