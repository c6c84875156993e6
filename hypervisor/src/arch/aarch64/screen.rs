//! The phone's physical screen: QEMU's `ramfb`, whose scanout is configured by writing the
//! fw_cfg file `etc/ramfb` through fw_cfg's DMA interface (`drivers::fw_cfg`).

use spin::{Mutex, Once};

use crate::core::hardware::{Machine, ScanoutFrame};

/// The screen found at boot.
struct Screen {
    /// Serialises scanout changes from any CPU.
    lock: Mutex<()>,
}

static SCREEN: Once<Screen> = Once::new();

/// Points the scanout at `frame`; false without a screen or when the device refused it.
pub fn scanout(machine: &mut dyn Machine, frame: &ScanoutFrame) -> bool {
    let Some(screen) = SCREEN.get() else {
        return false;
    };
    let _guard = screen.lock.lock();
    let _ = (machine, frame);
    false
}

/// Finds the board's screen; true if there is one.
pub fn probe(display: &crate::board::Display) -> bool {
    let _ = display;
    SCREEN.call_once(|| Screen { lock: Mutex::new(()) });
    false
}
