//! The phone's physical screen: QEMU's `ramfb`, whose scanout is configured by writing the
//! fw_cfg file `etc/ramfb` through fw_cfg's DMA interface ([`crate::drivers::fw_cfg`]). The DMA
//! descriptor and payload go to a scratch block in cellvisor's heap, which no cell can reach.

use alloc::boxed::Box;

use spin::{Mutex, Once};

use crate::board::Display;
use crate::core::hardware::{Machine, ScanoutFrame};
use crate::drivers::fw_cfg::{self, FwCfg, RamfbConfig};
use crate::mem::addr::PhysAddr;

/// The DMA scratch block: [`fw_cfg::SCRATCH_SIZE`] bytes, 16-byte aligned.
#[repr(C, align(64))]
struct Scratch([u8; fw_cfg::SCRATCH_SIZE as usize]);

/// The screen found at boot.
struct Screen {
    /// The fw_cfg device and ramfb's item, behind the lock that serialises scanout changes from
    /// any CPU (each is one DMA transfer using the one scratch block).
    device: Mutex<(FwCfg, u16)>,
}

static SCREEN: Once<Screen> = Once::new();

/// Points the scanout at `frame`; false without a screen or when the device refused it.
pub fn scanout(machine: &mut dyn Machine, frame: &ScanoutFrame) -> bool {
    let Some(screen) = SCREEN.get() else {
        return false;
    };
    let config = RamfbConfig {
        address: frame.address.raw(),
        fourcc: frame.fourcc,
        width: frame.width,
        height: frame.height,
        stride: frame.stride,
    };
    let device = screen.device.lock();
    let (fw_cfg, select) = &*device;
    fw_cfg
        .write_file(machine, *select, &config.to_bytes())
        .is_ok()
}

/// Finds the board's screen: QEMU's fw_cfg at `display.fw_cfg` with the `etc/ramfb` file. True if
/// there is one. Call once, at boot, with the fw_cfg registers mapped as device memory.
pub fn probe(display: &Display, machine: &mut dyn Machine) -> bool {
    // The block lives for the rest of the hypervisor's life; EL2 maps its heap identity.
    let scratch: &'static mut Scratch = Box::leak(Box::new(Scratch([0; 64])));
    let scratch = PhysAddr::new(scratch as *mut Scratch as u64);
    let base = PhysAddr::new(display.fw_cfg.base);
    let found = FwCfg::probe(machine, base, scratch).and_then(|device| {
        Ok(device
            .find_file(machine, fw_cfg::RAMFB_FILE)?
            .map(|(select, _)| (device, select)))
    });
    match found {
        Ok(Some(device)) => {
            SCREEN.call_once(|| Screen {
                device: Mutex::new(device),
            });
            log::info!(
                "screen: ramfb through fw_cfg at {:#x}, {}x{}",
                display.fw_cfg.base,
                display.width,
                display.height
            );
            true
        }
        Ok(None) => {
            log::info!("screen: no ramfb (QEMU: -device ramfb): cells get no screen");
            false
        }
        Err(error) => {
            log::warn!("screen: fw_cfg at {:#x}: {error}", display.fw_cfg.base);
            false
        }
    }
}
