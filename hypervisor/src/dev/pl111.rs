//! An emulated Arm PrimeCell PL111 colour LCD controller (CLCD) per cell: the register model only.
#![forbid(unsafe_code)]
//!
//! The controller never fetches pixels itself. The guest's driver (Linux's `amba-clcd` fbdev
//! driver, `CONFIG_FB_ARMCLCD`) allocates its framebuffer in the cell's RAM, programs the panel
//! timing, LCDUPBASE and LCDControl; [`Pl111::frame`] then says which guest-physical frame the
//! scanout (QEMU's `ramfb`, see [`crate::drivers::fw_cfg`]) may show without conversion, and
//! [`Pl111::write`] says when that may have changed so the caller re-validates and repoints it.
//!
//! Registers (ARM PrimeCell PL111 TRM, DDI0293; semantics as QEMU's `hw/display/pl110.c` in its
//! PL111 variant): LCDTiming0-3, LCDUPBASE, LCDLPBASE, LCDControl at 0x018 and LCDIMSC at 0x01C
//! (the PL111 order, which Linux uses for designer 0x41 part 0x111), LCDRIS/LCDMIS/LCDICR,
//! LCDUPCURR/LCDLPCURR (which read back the base registers: there is no scan position), the
//! 256-entry palette, the hardware cursor's registers (stored and read back; the cursor image RAM
//! at 0x800-0xBFF reads as zero and ignores writes: no cursor is drawn), and the peripheral and
//! PrimeCell IDs, so Linux's AMBA bus reads designer 0x41, part 0x111, revision 2.
//!
//! No interrupt is ever raised: the fbdev driver polls none, so LCDRIS stays 0 and LCDMIS =
//! LCDRIS & LCDIMSC is 0 too, while LCDIMSC is stored and read back.
//!
//! Only naturally aligned 32-bit accesses are accepted (the TRM's registers are word-wide; Linux
//! uses `readl`/`writel`); other widths, misaligned accesses and offsets outside the 4 KiB window
//! are errors. Reserved offsets inside the window read as zero and ignore writes, and so do the
//! read-only registers on a write.

use crate::dev::mmio::{AccessWidth, MmioError};

/// Size of the controller's register window.
pub const WINDOW_SIZE: u64 = 0x1000;

/// LCDTiming0: horizontal axis panel control.
const TIMING0: u64 = 0x000;
/// LCDTiming1: vertical axis panel control.
const TIMING1: u64 = 0x004;
/// LCDTiming2: clock and signal polarity control.
const TIMING2: u64 = 0x008;
/// LCDTiming3: line end control.
const TIMING3: u64 = 0x00C;
/// LCDUPBASE: upper panel frame base address.
const UPBASE: u64 = 0x010;
/// LCDLPBASE: lower panel frame base address.
const LPBASE: u64 = 0x014;
/// LCDControl (PL111 offset).
const CONTROL: u64 = 0x018;
/// LCDIMSC: interrupt mask set/clear (PL111 offset).
const IMSC: u64 = 0x01C;
/// LCDRIS: raw interrupt status (read-only).
const RIS: u64 = 0x020;
/// LCDMIS: masked interrupt status (read-only).
const MIS: u64 = 0x024;
/// LCDICR: interrupt clear (write-only).
const ICR: u64 = 0x028;
/// LCDUPCURR: upper panel current address (read-only).
const UPCURR: u64 = 0x02C;
/// LCDLPCURR: lower panel current address (read-only).
const LPCURR: u64 = 0x030;
/// First palette register (two 16-bit entries per word).
const PALETTE_START: u64 = 0x200;
/// Number of palette words (256 entries).
const PALETTE_WORDS: usize = 128;
/// First cursor register (ClcdCrsrCtrl).
const CURSOR_START: u64 = 0xC00;
/// Number of cursor register words (0xC00-0xC2C).
const CURSOR_WORDS: usize = 12;
/// ClcdCrsrICR, write-only.
const CURSOR_ICR: usize = 9;
/// ClcdCrsrRIS and ClcdCrsrMIS, read-only (always 0: no cursor interrupt is raised).
const CURSOR_RIS: usize = 10;
const CURSOR_MIS: usize = 11;
/// Writable bits of each cursor register: Ctrl, Config, Palette0, Palette1, XY, Clip, two
/// reserved words, IMSC, ICR, RIS, MIS.
const CURSOR_MASKS: [u32; CURSOR_WORDS] = [
    0x0000_0031,
    0x0000_0003,
    0x00FF_FFFF,
    0x00FF_FFFF,
    0x0FFF_0FFF,
    0x0000_3F3F,
    0,
    0,
    0x0000_0001,
    0,
    0,
    0,
];
/// First identification register (PeriphID0).
const ID_START: u64 = 0xFE0;

/// PeriphID0-3 then PCellID0-3, one byte per word (QEMU's `pl111_id`): part 0x111, designer 0x41,
/// revision 2, configuration 0; PrimeCell ID 0xB105F00D.
pub const ID_BYTES: [u8; 8] = [0x11, 0x11, 0x24, 0x00, 0x0D, 0xF0, 0x05, 0xB1];

/// Writable bits of LCDTiming0 (bits 1:0 are reserved).
const TIMING0_MASK: u32 = 0xFFFF_FFFC;
/// Writable bits of LCDTiming2 (bit 15 is reserved).
const TIMING2_MASK: u32 = 0xFFFF_7FFF;
/// Writable bits of LCDTiming3 (LED 6:0, LEE 16).
const TIMING3_MASK: u32 = 0x0001_007F;
/// Writable bits of the frame base registers (doubleword aligned: bits 2:0 are reserved).
const BASE_MASK: u32 = 0xFFFF_FFF8;
/// Writable bits of LCDControl (16:0 without the reserved 15:14).
const CONTROL_MASK: u32 = 0x0001_3FFF;
/// Writable bits of LCDIMSC (FUFIM, LNBUIM, VCompIM, MBERRIM).
const IMSC_MASK: u32 = 0x0000_001E;

/// LCDControl.LcdEn: the controller's signals are enabled.
pub const CONTROL_LCDEN: u32 = 1 << 0;
/// LCDControl.LcdBpp (bits 3:1).
const CONTROL_BPP_SHIFT: u32 = 1;
const CONTROL_BPP_MASK: u32 = 0b111;
/// LcdBpp = 0b101: 24 bpp, one pixel per 32-bit word (TFT only).
pub const BPP_24: u32 = 0b101;
/// LCDControl.LcdTFT: a TFT panel (pixels go out as they are, no STN dithering).
pub const CONTROL_TFT: u32 = 1 << 5;
/// LCDControl.LcdDual: a dual-panel STN display (two frames, upper and lower).
pub const CONTROL_DUAL: u32 = 1 << 7;
/// LCDControl.BGR: swaps the red and blue lanes of a pixel (see [`PixelFormat`]).
pub const CONTROL_BGR: u32 = 1 << 8;
/// LCDControl.BEBO: big-endian byte order in memory.
pub const CONTROL_BEBO: u32 = 1 << 9;
/// LCDControl.LcdPwr: the panel's power is on.
pub const CONTROL_LCDPWR: u32 = 1 << 11;

/// A DRM fourcc code: the four characters, first in the least significant byte.
const fn fourcc(code: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*code)
}

/// How the 32-bit words of a frame hold a pixel, named by the DRM format of the same memory
/// layout (each pixel a little-endian 32-bit word, the top byte unused).
///
/// Which one a PL111 frame is follows from what Linux tells user space (`fb_var_screeninfo`'s
/// red/blue offsets), so that a pixel user space writes as "red" shows red on the scanout. In
/// Linux 6.1's `drivers/video/fbdev/amba-clcd.c` with a device-tree panel, `clcdfb_of_get_board`
/// gives the board `CLCD_CAP_ALL` and `clcdfb_of_init_tft_panel` (pads `<0 8 16>`, part 0x111)
/// gives the panel the 888 caps, both RGB and BGR. `clcdfb_set_bitfields` then reports, for
/// 32 bpp, `blue.offset = 0, green.offset = 8, red.offset = 16` when BGR is possible and the
/// requested `blue.offset` is 0 (the default: the `clcd_fb` is zero-allocated at probe), and
/// `red.offset = 0, green.offset = 8, blue.offset = 16` when user space asks for red at offset 0.
/// `clcdfb_decode` (in `include/linux/amba/clcd.h`) turns that into the BGR bit: `red.offset ==
/// 0` clears `CNTL_BGR`, any other red offset sets it (no `bgr_connection` with pads `<0 8 16>`).
/// So:
///
/// | LCDControl.BGR | red bits Linux reports | format |
/// | --- | --- | --- |
/// | 1 (Linux's default) | 23:16, blue 7:0 | [`PixelFormat::Xrgb8888`] (`XR24`) |
/// | 0 | 7:0, blue 23:16 | [`PixelFormat::Xbgr8888`] (`XB24`) |
///
/// This also agrees with the TRM's 24 bpp TFT lane order (BGR = 0: red in bits 7:0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Red in bits 23:16, green 15:8, blue 7:0 (`DRM_FORMAT_XRGB8888`): LCDControl.BGR = 1.
    Xrgb8888,
    /// Red in bits 7:0, green 15:8, blue 23:16 (`DRM_FORMAT_XBGR8888`): LCDControl.BGR = 0.
    Xbgr8888,
}

impl PixelFormat {
    /// The DRM fourcc of the format: `XR24` = 0x3432_5258, `XB24` = 0x3432_4258.
    pub const fn fourcc(self) -> u32 {
        match self {
            Self::Xrgb8888 => fourcc(b"XR24"),
            Self::Xbgr8888 => fourcc(b"XB24"),
        }
    }

    /// The pixel word of colour `rgb` (0xRRGGBB; bits 31:24 are ignored) in this format.
    pub const fn pack(self, rgb: u32) -> u32 {
        let rgb = rgb & 0x00FF_FFFF;
        match self {
            Self::Xrgb8888 => rgb,
            Self::Xbgr8888 => ((rgb & 0xFF) << 16) | (rgb & 0x00_FF00) | ((rgb >> 16) & 0xFF),
        }
    }
}

/// A frame the scanout can show as it is: what [`Pl111::frame`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameRequest {
    /// Guest-physical address of the first pixel (LCDUPBASE). The caller checks that the whole
    /// frame (`stride * height` bytes) lies in the cell's RAM before showing it.
    pub base: u64,
    /// Pixels per line (the panel's width).
    pub width: u32,
    /// Lines (the panel's height).
    pub height: u32,
    /// Bytes from one line to the next (`width * 4`: the PL111 reads lines back to back).
    pub stride: u32,
    /// How the pixel words hold the colour.
    pub format: PixelFormat,
}

/// Whether a `width` × `height` panel can be described by the PL111's timing registers and is
/// accepted by Linux's driver (`clcdfb_check`): a width that is a multiple of 16 up to 1024
/// (LCDTiming0.PPL is 6 bits of 16-pixel groups) and an even height up to 1024 (LCDTiming1.LPP
/// is 10 bits; the driver rounds the height up to even).
pub const fn panel_supported(width: u32, height: u32) -> bool {
    width >= 16
        && width <= 1024
        && width.is_multiple_of(16)
        && height >= 2
        && height <= 1024
        && height.is_multiple_of(2)
}

/// The register state of one emulated PL111 driving a fixed-size panel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pl111 {
    width: u32,
    height: u32,
    timing: [u32; 4],
    upbase: u32,
    lpbase: u32,
    control: u32,
    imsc: u32,
    palette: [u32; PALETTE_WORDS],
    cursor: [u32; CURSOR_WORDS],
}

impl Pl111 {
    /// A controller in its power-on state for a panel of `width` × `height` pixels. A size that
    /// [`panel_supported`] refuses is kept, but then [`Pl111::frame`] never finds a frame.
    pub const fn new(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            timing: [0; 4],
            upbase: 0,
            lpbase: 0,
            control: 0,
            imsc: 0,
            palette: [0; PALETTE_WORDS],
            cursor: [0; CURSOR_WORDS],
        }
    }

    /// The panel's size in pixels, as given to [`Pl111::new`].
    pub const fn panel(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Returns every register to its power-on state (all zero: controller disabled and unpowered).
    pub fn reset(&mut self) {
        *self = Self::new(self.width, self.height);
    }

    /// LCDControl as the guest last wrote it.
    pub const fn control(&self) -> u32 {
        self.control
    }

    /// Checks an access: inside the window, 32 bits wide, naturally aligned.
    fn check(offset: u64, width: AccessWidth) -> Result<(), MmioError> {
        if offset >= WINDOW_SIZE {
            return Err(MmioError::BadOffset);
        }
        if width != AccessWidth::Word {
            return Err(MmioError::BadWidth);
        }
        if !width.is_aligned(offset) {
            return Err(MmioError::Unaligned);
        }
        Ok(())
    }

    /// Index of a word in a register array starting at `start`, if `offset` is inside it.
    fn word_index(offset: u64, start: u64, words: usize) -> Option<usize> {
        let index = usize::try_from(offset.checked_sub(start)? / 4).ok()?;
        (index < words).then_some(index)
    }

    /// Emulates a 32-bit read at `offset`.
    pub fn read(&self, offset: u64, width: AccessWidth) -> Result<u32, MmioError> {
        Self::check(offset, width)?;
        let value = match offset {
            TIMING0 | TIMING1 | TIMING2 | TIMING3 => Self::word_index(offset, TIMING0, 4)
                .and_then(|index| self.timing.get(index))
                .copied()
                .unwrap_or(0),
            UPBASE | UPCURR => self.upbase,
            LPBASE | LPCURR => self.lpbase,
            CONTROL => self.control,
            IMSC => self.imsc,
            // No interrupt is ever raised.
            RIS | MIS | ICR => 0,
            _ => {
                if let Some(index) = Self::word_index(offset, PALETTE_START, PALETTE_WORDS) {
                    self.palette.get(index).copied().unwrap_or(0)
                } else if let Some(index) = Self::word_index(offset, CURSOR_START, CURSOR_WORDS) {
                    match index {
                        CURSOR_ICR | CURSOR_RIS | CURSOR_MIS => 0,
                        _ => self.cursor.get(index).copied().unwrap_or(0),
                    }
                } else if let Some(index) = Self::word_index(offset, ID_START, ID_BYTES.len()) {
                    ID_BYTES.get(index).copied().map(u32::from).unwrap_or(0)
                } else {
                    // Reserved offsets and the cursor image RAM (0x800-0xBFF).
                    0
                }
            }
        };
        Ok(value)
    }

    /// Emulates a 32-bit write of `value` at `offset`. Returns whether the frame the scanout
    /// shows may have changed (a timing, base or control register changed), so the caller asks
    /// [`Pl111::frame`] again.
    pub fn write(
        &mut self,
        offset: u64,
        width: AccessWidth,
        value: u32,
    ) -> Result<bool, MmioError> {
        Self::check(offset, width)?;
        let slot: Option<(&mut u32, u32, bool)> = match offset {
            TIMING0 => self
                .timing
                .get_mut(0)
                .map(|slot| (slot, TIMING0_MASK, true)),
            TIMING1 => self.timing.get_mut(1).map(|slot| (slot, u32::MAX, true)),
            TIMING2 => self
                .timing
                .get_mut(2)
                .map(|slot| (slot, TIMING2_MASK, false)),
            TIMING3 => self
                .timing
                .get_mut(3)
                .map(|slot| (slot, TIMING3_MASK, false)),
            UPBASE => Some((&mut self.upbase, BASE_MASK, true)),
            LPBASE => Some((&mut self.lpbase, BASE_MASK, false)),
            CONTROL => Some((&mut self.control, CONTROL_MASK, true)),
            IMSC => Some((&mut self.imsc, IMSC_MASK, false)),
            // LCDICR clears raw status bits, and none is ever set; the rest are read-only.
            RIS | MIS | ICR | UPCURR | LPCURR => None,
            _ => {
                if let Some(index) = Self::word_index(offset, PALETTE_START, PALETTE_WORDS) {
                    self.palette
                        .get_mut(index)
                        .map(|slot| (slot, u32::MAX, false))
                } else if let Some(index) = Self::word_index(offset, CURSOR_START, CURSOR_WORDS) {
                    let mask = CURSOR_MASKS.get(index).copied().unwrap_or(0);
                    self.cursor.get_mut(index).map(|slot| (slot, mask, false))
                } else {
                    // The cursor image, the ID registers and reserved offsets.
                    None
                }
            }
        };
        let Some((slot, mask, affects_frame)) = slot else {
            return Ok(false);
        };
        let new = value & mask;
        let changed = *slot != new;
        *slot = new;
        Ok(changed && affects_frame)
    }

    /// The frame to show, if the guest has set the controller up in a mode the scanout shows
    /// without conversion: enabled and powered (LcdEn and LcdPwr), a single TFT panel, 24 bpp
    /// (one pixel per 32-bit word), little-endian bytes (BEBO clear), and timing registers that
    /// give exactly the panel's size (width = (PPL + 1) × 16, height = LPP + 1). `None` otherwise
    /// (the caller shows something else, e.g. its banner).
    pub fn frame(&self) -> Option<FrameRequest> {
        let control = self.control;
        let powered = CONTROL_LCDEN | CONTROL_LCDPWR;
        if control & powered != powered
            || control & CONTROL_TFT == 0
            || control & (CONTROL_DUAL | CONTROL_BEBO) != 0
            || (control >> CONTROL_BPP_SHIFT) & CONTROL_BPP_MASK != BPP_24
        {
            return None;
        }
        let [timing0, timing1, ..] = self.timing;
        let ppl = (timing0 >> 2) & 0x3F;
        let lpp = timing1 & 0x3FF;
        let width = (ppl + 1) * 16;
        let height = lpp + 1;
        if width != self.width || height != self.height {
            return None;
        }
        let format = if control & CONTROL_BGR != 0 {
            PixelFormat::Xrgb8888
        } else {
            PixelFormat::Xbgr8888
        };
        Some(FrameRequest {
            base: u64::from(self.upbase),
            width,
            height,
            stride: width.checked_mul(4)?,
            format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: AccessWidth = AccessWidth::Word;

    /// LCDControl as Linux's `clcdfb_decode` + `clcdfb_enable` leave it for a 32 bpp TFT panel
    /// with its default (BGR) bitfields: TFT, VComp 1, BGR, 24 bpp, enabled, powered.
    const LINUX_CONTROL: u32 =
        CONTROL_TFT | (1 << 12) | CONTROL_BGR | (BPP_24 << 1) | CONTROL_LCDEN | CONTROL_LCDPWR;

    /// Programs `clcd` as Linux's `clcdfb_set_par` does for 640x480 (VGA porches).
    fn program_linux(clcd: &mut Pl111, control: u32) {
        let timing0 = ((640 / 16 - 1) << 2) | ((96 - 1) << 8) | ((16 - 1) << 16) | ((48 - 1) << 24);
        let timing1 = (480 - 1) | ((2 - 1) << 10) | (10 << 16) | (33 << 24);
        clcd.write(TIMING0, W, timing0).unwrap();
        clcd.write(TIMING1, W, timing1).unwrap();
        clcd.write(TIMING2, W, (1 << 26) | (1 << 13) | ((640 - 1) << 16))
            .unwrap();
        clcd.write(TIMING3, W, 0).unwrap();
        clcd.write(UPBASE, W, 0x4800_0000).unwrap();
        clcd.write(LPBASE, W, 0x4800_0000 + 640 * 4 * 240).unwrap();
        // Enabled first, then powered, as clcdfb_enable does.
        clcd.write(CONTROL, W, control & !CONTROL_LCDPWR).unwrap();
        clcd.write(CONTROL, W, control).unwrap();
    }

    #[test]
    fn identifies_as_arm_pl111() {
        let clcd = Pl111::new(640, 480);
        let id = |base: u64| -> u32 {
            (0..4)
                .map(|i| (clcd.read(base + 4 * i, W).unwrap() & 0xFF) << (8 * i))
                .fold(0, |acc, byte| acc | byte)
        };
        let periph = id(0xFE0);
        assert_eq!(periph & 0xFFF, 0x111, "part number");
        assert_eq!((periph >> 12) & 0xFF, 0x41, "designer");
        assert_eq!((periph >> 20) & 0xF, 2, "revision");
        assert_eq!(id(0xFF0), 0xB105_F00D);
        // Linux's ID table: id 0x00041110, mask 0x000ffffe.
        assert_eq!(periph & 0x000F_FFFE, 0x0004_1110);
    }

    #[test]
    fn linux_programming_gives_the_frame() {
        let mut clcd = Pl111::new(640, 480);
        assert_eq!(clcd.frame(), None);
        program_linux(&mut clcd, LINUX_CONTROL);
        assert_eq!(
            clcd.frame(),
            Some(FrameRequest {
                base: 0x4800_0000,
                width: 640,
                height: 480,
                stride: 2560,
                format: PixelFormat::Xrgb8888,
            })
        );
        assert_eq!(clcd.read(UPCURR, W), Ok(0x4800_0000));
        assert_eq!(clcd.read(LPCURR, W), Ok(0x4800_0000 + 640 * 4 * 240));
        program_linux(&mut clcd, LINUX_CONTROL & !CONTROL_BGR);
        assert_eq!(clcd.frame().unwrap().format, PixelFormat::Xbgr8888);
    }

    #[test]
    fn no_frame_unless_enabled_powered_tft_24bpp_panel_sized() {
        let mut clcd = Pl111::new(640, 480);
        for control in [
            LINUX_CONTROL & !CONTROL_LCDEN,
            LINUX_CONTROL & !CONTROL_LCDPWR,
            LINUX_CONTROL & !CONTROL_TFT,
            LINUX_CONTROL | CONTROL_BEBO,
            LINUX_CONTROL | CONTROL_DUAL,
            (LINUX_CONTROL & !(0b111 << 1)) | (0b100 << 1), // 16 bpp
            (LINUX_CONTROL & !(0b111 << 1)) | (0b110 << 1), // 16 bpp 565
        ] {
            program_linux(&mut clcd, control);
            assert_eq!(clcd.frame(), None, "control {control:#x}");
        }
        program_linux(&mut clcd, LINUX_CONTROL);
        assert!(clcd.frame().is_some());
        // A different line length or line count than the panel's.
        let timing0 = clcd.read(TIMING0, W).unwrap();
        clcd.write(TIMING0, W, timing0 + (1 << 2)).unwrap();
        assert_eq!(clcd.frame(), None);
        clcd.write(TIMING0, W, timing0).unwrap();
        let timing1 = clcd.read(TIMING1, W).unwrap();
        clcd.write(TIMING1, W, timing1 - 1).unwrap();
        assert_eq!(clcd.frame(), None);
        // A panel the registers cannot describe never has a frame.
        let mut odd = Pl111::new(650, 480);
        program_linux(&mut odd, LINUX_CONTROL);
        assert_eq!(odd.frame(), None);
    }

    #[test]
    fn write_reports_changes_of_the_frame() {
        let mut clcd = Pl111::new(640, 480);
        assert_eq!(clcd.write(UPBASE, W, 0x4000_0000), Ok(true));
        assert_eq!(clcd.write(UPBASE, W, 0x4000_0000), Ok(false));
        assert_eq!(
            clcd.write(UPBASE, W, 0x4000_0004),
            Ok(false),
            "bits 2:0 reserved"
        );
        assert_eq!(clcd.read(UPBASE, W), Ok(0x4000_0000));
        assert_eq!(clcd.write(CONTROL, W, LINUX_CONTROL), Ok(true));
        assert_eq!(clcd.write(CONTROL, W, LINUX_CONTROL), Ok(false));
        assert_eq!(clcd.write(TIMING0, W, 0x9c << 2), Ok(true));
        assert_eq!(clcd.write(TIMING1, W, 479), Ok(true));
        assert_eq!(clcd.write(TIMING2, W, 0x1234), Ok(false));
        assert_eq!(clcd.write(PALETTE_START, W, 0x7FFF_001F), Ok(false));
        assert_eq!(clcd.write(IMSC, W, 0xFF), Ok(false));
        assert_eq!(clcd.write(ICR, W, 0xFF), Ok(false));
    }

    #[test]
    fn registers_read_back_with_their_masks() {
        let mut clcd = Pl111::new(640, 480);
        clcd.write(TIMING0, W, u32::MAX).unwrap();
        clcd.write(TIMING1, W, u32::MAX).unwrap();
        clcd.write(TIMING2, W, u32::MAX).unwrap();
        clcd.write(TIMING3, W, u32::MAX).unwrap();
        clcd.write(CONTROL, W, u32::MAX).unwrap();
        clcd.write(IMSC, W, u32::MAX).unwrap();
        assert_eq!(clcd.read(TIMING0, W), Ok(TIMING0_MASK));
        assert_eq!(clcd.read(TIMING1, W), Ok(u32::MAX));
        assert_eq!(clcd.read(TIMING2, W), Ok(TIMING2_MASK));
        assert_eq!(clcd.read(TIMING3, W), Ok(TIMING3_MASK));
        assert_eq!(clcd.read(CONTROL, W), Ok(CONTROL_MASK));
        assert_eq!(clcd.read(IMSC, W), Ok(IMSC_MASK));
        // Nothing is ever raised: RIS and MIS stay 0 whatever the mask.
        assert_eq!(clcd.read(RIS, W), Ok(0));
        assert_eq!(clcd.read(MIS, W), Ok(0));
        assert_eq!(clcd.read(ICR, W), Ok(0));
        // Palette: all 128 words.
        for index in 0..128u64 {
            clcd.write(PALETTE_START + 4 * index, W, 0x1000_0000 | index as u32)
                .unwrap();
        }
        for index in 0..128u64 {
            assert_eq!(
                clcd.read(PALETTE_START + 4 * index, W),
                Ok(0x1000_0000 | index as u32)
            );
        }
        // Cursor registers: stored with their masks; ICR/RIS/MIS read 0.
        for index in 0..12u64 {
            clcd.write(CURSOR_START + 4 * index, W, u32::MAX).unwrap();
        }
        for (index, mask) in CURSOR_MASKS.iter().enumerate() {
            let expected = if matches!(index, CURSOR_ICR | CURSOR_RIS | CURSOR_MIS) {
                0
            } else {
                *mask
            };
            assert_eq!(clcd.read(CURSOR_START + 4 * index as u64, W), Ok(expected));
        }
        // The cursor image, reserved offsets and the IDs ignore writes.
        clcd.write(0x800, W, u32::MAX).unwrap();
        clcd.write(0x100, W, u32::MAX).unwrap();
        clcd.write(0xFE0, W, 0).unwrap();
        assert_eq!(clcd.read(0x800, W), Ok(0));
        assert_eq!(clcd.read(0x100, W), Ok(0));
        assert_eq!(clcd.read(0xFE0, W), Ok(0x11));
        // Read-only registers ignore writes.
        clcd.write(UPBASE, W, 0x4000_0000).unwrap();
        clcd.write(UPCURR, W, 0).unwrap();
        assert_eq!(clcd.read(UPCURR, W), Ok(0x4000_0000));
    }

    #[test]
    fn reset_is_power_on() {
        let mut clcd = Pl111::new(640, 480);
        program_linux(&mut clcd, LINUX_CONTROL);
        clcd.write(PALETTE_START, W, 1).unwrap();
        clcd.reset();
        assert_eq!(clcd, Pl111::new(640, 480));
        assert_eq!(clcd.frame(), None);
        assert_eq!(clcd.panel(), (640, 480));
    }

    #[test]
    fn refuses_other_widths_misalignment_and_outside() {
        let mut clcd = Pl111::new(640, 480);
        for width in [
            AccessWidth::Byte,
            AccessWidth::Halfword,
            AccessWidth::Doubleword,
        ] {
            assert_eq!(clcd.read(CONTROL, width), Err(MmioError::BadWidth));
            assert_eq!(clcd.write(CONTROL, width, 1), Err(MmioError::BadWidth));
        }
        assert_eq!(clcd.read(0x1A, W), Err(MmioError::Unaligned));
        assert_eq!(clcd.write(0x11, W, 0), Err(MmioError::Unaligned));
        assert_eq!(clcd.read(0x1000, W), Err(MmioError::BadOffset));
        assert_eq!(clcd.write(u64::MAX, W, 0), Err(MmioError::BadOffset));
        assert_eq!(clcd.read(0xFFC, W), Ok(0xB1));
        assert_eq!(clcd.control(), 0);
    }

    #[test]
    fn pixel_formats() {
        assert_eq!(PixelFormat::Xrgb8888.fourcc(), 0x3432_5258);
        assert_eq!(PixelFormat::Xbgr8888.fourcc(), 0x3432_4258);
        assert_eq!(PixelFormat::Xrgb8888.pack(0xFF_8000), 0x00FF_8000);
        assert_eq!(PixelFormat::Xbgr8888.pack(0xFF_8001), 0x0001_80FF);
        assert_eq!(PixelFormat::Xrgb8888.pack(0xAB12_3456), 0x0012_3456);
    }

    #[test]
    fn panel_sizes() {
        assert!(panel_supported(640, 480));
        assert!(panel_supported(1024, 768));
        assert!(panel_supported(16, 2));
        assert!(!panel_supported(0, 480));
        assert!(!panel_supported(650, 480));
        assert!(!panel_supported(1040, 480));
        assert!(!panel_supported(640, 481));
        assert!(!panel_supported(640, 1026));
    }
}
