//! Device-tree nodes of a cell's display devices: the emulated PL111 CLCD with its panel
//! ([`write_display`]) and a virtio-mmio transport ([`write_virtio_mmio`]), written into a cell's
//! tree under construction (as [`crate::setup::guest_fdt`] writes the rest).
#![forbid(unsafe_code)]
//!
//! The CLCD nodes are what Linux 6.1's fbdev driver (`drivers/video/fbdev/amba-clcd.c`,
//! `CONFIG_FB_ARMCLCD`) needs to probe the emulated [`crate::dev::pl111::Pl111`]:
//!
//! - `clcd@<addr>`: `compatible = "arm,pl111", "arm,primecell"` (the AMBA bus matches the part
//!   and designer it reads from the ID registers against the driver's table), `reg`, and
//!   `clocks = <&clk &clk>` with `clock-names = "clcdclk", "apb_pclk"` (the AMBA bus enables
//!   `apb_pclk` before reading the IDs; the driver takes the first clock). No `memory-region`:
//!   without it `clcdfb_of_get_board` picks `clcdfb_of_dma_setup`, which `dma_alloc_coherent`s
//!   the framebuffer in the cell's own RAM (below 4 GiB: the driver sets a 32-bit DMA mask) and
//!   programs LCDUPBASE with it. No `dma-coherent` either: the scanout reads memory, not caches,
//!   so the guest must map the framebuffer non-cacheable, which is what a non-coherent device's
//!   coherent allocation gives it. No `interrupts`: the driver requests none.
//! - `clcd@<addr>/port/endpoint`: `remote-endpoint` to the panel's endpoint, and
//!   `arm,pl11x,tft-r0g0b0-pads = <0 8 16>`, which `clcdfb_of_init_display` reads from the
//!   endpoint (not the controller node); in `clcdfb_of_init_tft_panel`'s table, part 0x111 with
//!   pads `<0 8 16>` is the one entry with `CLCD_CAP_888` (with 444, 5551 and 565), so the
//!   driver's default 32 bpp mode is allowed, and `r0 = 0` means no `bgr_connection`.
//! - `panel`: `compatible = "panel-dpi"` (the only kind `clcdfb_of_get_mode` accepts), with a
//!   `port/endpoint` whose `remote-endpoint` points back, and a `panel-timing` subnode with every
//!   property `of_get_display_timing` requires: `clock-frequency`, `hactive`, `vactive`,
//!   `hfront-porch`, `hback-porch`, `hsync-len`, `vfront-porch`, `vback-porch`, `vsync-len`. The
//!   porches and sync lengths are VGA's (16/96/48 and 10/2/33), inside what `clcdfb_check`
//!   accepts (horizontal ones 6..=256, vertical porches up to 255, vsync up to 32), and the
//!   pixel clock gives 60 frames a second (25.2 MHz for 640x480).

use alloc::format;
use alloc::string::String;
use core::fmt;

use vm_fdt::FdtWriter;

use crate::dev::gic::SPI_BASE_INTID;
use crate::dev::pl111;
use crate::setup::guest_fdt::GuestFdtError;

/// GIC interrupt specifier: an SPI.
const SPECIFIER_SPI: u32 = 0;
/// Interrupt flags: level-sensitive, active high.
const LEVEL_HIGH: u32 = 4;
/// The first INTID past the SPIs.
const SPI_END_INTID: u32 = 1020;

/// The pads the panel's red, green and blue lines start at: the 888 wiring of a PL111.
pub const TFT_PADS: [u32; 3] = [0, 8, 16];

/// Horizontal front porch, sync length and back porch in pixels (VGA's).
const H_FRONT: u32 = 16;
const H_SYNC: u32 = 96;
const H_BACK: u32 = 48;
/// Vertical front porch, sync length and back porch in lines (VGA's).
const V_FRONT: u32 = 10;
const V_SYNC: u32 = 2;
const V_BACK: u32 = 33;
/// Frames per second the pixel clock is chosen for.
const REFRESH_HZ: u32 = 60;

// Linux's `clcdfb_check` refuses horizontal porches and sync lengths outside 6..=256, vertical
// porches above 255 and a vertical sync above 32.
const _: () = assert!(H_FRONT >= 6 && H_FRONT <= 256 && H_SYNC >= 6 && H_SYNC <= 256);
const _: () = assert!(H_BACK >= 6 && H_BACK <= 256);
const _: () = assert!(V_FRONT <= 255 && V_BACK <= 255 && V_SYNC <= 32);

/// Why display nodes could not be written.
#[derive(Debug, PartialEq, Eq)]
pub enum DisplayFdtError {
    /// The panel size is not one the PL111 and Linux's driver can drive
    /// ([`pl111::panel_supported`]).
    UnsupportedPanel {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// The CLCD's window is not the PL111's 4 KiB ([`pl111::WINDOW_SIZE`]): Linux's AMBA bus reads
    /// the ID registers in the window's last 32 bytes.
    WrongWindowSize(u64),
    /// The interrupt is not an SPI (INTIDs 32..1020).
    NotAnSpi(u32),
    /// No phandle is left to allocate.
    PhandlesExhausted,
    /// The device-tree writer refused.
    Writer(vm_fdt::Error),
}

impl fmt::Display for DisplayFdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedPanel { width, height } => write!(
                f,
                "display panel {width}x{height} is not supported: use a width that is a multiple \
                 of 16 up to 1024 and an even height up to 1024"
            ),
            Self::WrongWindowSize(size) => write!(
                f,
                "display controller window of {size:#x} bytes: the PL111's is 0x1000, use that"
            ),
            Self::NotAnSpi(intid) => write!(
                f,
                "virtio-mmio interrupt {intid} is not an SPI: choose an INTID from 32 to 1019"
            ),
            Self::PhandlesExhausted => {
                f.write_str("guest device tree ran out of phandles: write fewer nodes")
            }
            Self::Writer(error) => write!(
                f,
                "display device-tree nodes could not be written ({error})"
            ),
        }
    }
}

impl From<vm_fdt::Error> for DisplayFdtError {
    fn from(error: vm_fdt::Error) -> Self {
        Self::Writer(error)
    }
}

impl From<DisplayFdtError> for GuestFdtError {
    fn from(error: DisplayFdtError) -> Self {
        match error {
            DisplayFdtError::Writer(error) => Self::Writer(error),
            DisplayFdtError::UnsupportedPanel { .. } => Self::ValueTooLarge("display panel size"),
            DisplayFdtError::WrongWindowSize(_) => Self::ValueTooLarge("display window size"),
            DisplayFdtError::NotAnSpi(_) => Self::ValueTooLarge("virtio-mmio SPI"),
            DisplayFdtError::PhandlesExhausted => Self::ValueTooLarge("phandle"),
        }
    }
}

/// The pixel clock in Hz of a `width` × `height` panel with the porches and sync lengths above,
/// at [`REFRESH_HZ`] frames a second.
fn pixel_clock(width: u32, height: u32) -> Option<u32> {
    let total_width = width.checked_add(H_FRONT + H_SYNC + H_BACK)?;
    let total_height = height.checked_add(V_FRONT + V_SYNC + V_BACK)?;
    total_width
        .checked_mul(total_height)?
        .checked_mul(REFRESH_HZ)
}

/// Takes the next free phandle.
fn allocate(next_phandle: &mut u32) -> Result<u32, DisplayFdtError> {
    let phandle = *next_phandle;
    if phandle == 0 || phandle == u32::MAX {
        return Err(DisplayFdtError::PhandlesExhausted);
    }
    *next_phandle = phandle + 1;
    Ok(phandle)
}

fn strings(values: &[&str]) -> alloc::vec::Vec<String> {
    values.iter().map(|value| String::from(*value)).collect()
}

/// Writes, under the node currently open in `fdt` (the root), the emulated PL111 at `window`
/// (`(base, size)`, the size [`pl111::WINDOW_SIZE`]) and the `width` × `height` DPI panel it drives (see the module
/// documentation for every property). `clock_phandle` is a fixed clock's (the cell's
/// `apb-pclk`, [`crate::setup::guest_fdt::CLOCK_PHANDLE`]); the two endpoint phandles are taken
/// from `next_phandle`, which is left at the next free one.
pub fn write_display(
    fdt: &mut FdtWriter,
    window: (u64, u64),
    width: u32,
    height: u32,
    clock_phandle: u32,
    next_phandle: &mut u32,
) -> Result<(), DisplayFdtError> {
    let unsupported = DisplayFdtError::UnsupportedPanel { width, height };
    if !pl111::panel_supported(width, height) {
        return Err(unsupported);
    }
    let clock = pixel_clock(width, height).ok_or(unsupported)?;
    let (base, size) = window;
    if size != pl111::WINDOW_SIZE {
        return Err(DisplayFdtError::WrongWindowSize(size));
    }
    let clcd_endpoint = allocate(next_phandle)?;
    let panel_endpoint = allocate(next_phandle)?;

    let clcd = fdt.begin_node(&format!("clcd@{base:x}"))?;
    fdt.property_string_list("compatible", strings(&["arm,pl111", "arm,primecell"]))?;
    fdt.property_array_u64("reg", &[base, size])?;
    fdt.property_array_u32("clocks", &[clock_phandle, clock_phandle])?;
    fdt.property_string_list("clock-names", strings(&["clcdclk", "apb_pclk"]))?;
    let port = fdt.begin_node("port")?;
    let endpoint = fdt.begin_node("endpoint")?;
    fdt.property_u32("remote-endpoint", panel_endpoint)?;
    fdt.property_array_u32("arm,pl11x,tft-r0g0b0-pads", &TFT_PADS)?;
    fdt.property_phandle(clcd_endpoint)?;
    fdt.end_node(endpoint)?;
    fdt.end_node(port)?;
    fdt.end_node(clcd)?;

    let panel = fdt.begin_node("panel")?;
    fdt.property_string("compatible", "panel-dpi")?;
    let port = fdt.begin_node("port")?;
    let endpoint = fdt.begin_node("endpoint")?;
    fdt.property_u32("remote-endpoint", clcd_endpoint)?;
    fdt.property_phandle(panel_endpoint)?;
    fdt.end_node(endpoint)?;
    fdt.end_node(port)?;
    let timing = fdt.begin_node("panel-timing")?;
    fdt.property_u32("clock-frequency", clock)?;
    fdt.property_u32("hactive", width)?;
    fdt.property_u32("vactive", height)?;
    fdt.property_u32("hfront-porch", H_FRONT)?;
    fdt.property_u32("hback-porch", H_BACK)?;
    fdt.property_u32("hsync-len", H_SYNC)?;
    fdt.property_u32("vfront-porch", V_FRONT)?;
    fdt.property_u32("vback-porch", V_BACK)?;
    fdt.property_u32("vsync-len", V_SYNC)?;
    fdt.end_node(timing)?;
    fdt.end_node(panel)?;
    Ok(())
}

/// Writes, under the node currently open in `fdt` (the root), a virtio-mmio transport at `base`
/// (`size` bytes) whose interrupt is SPI INTID `spi_intid`, level-sensitive, in the
/// `<0 n 4>` form the cell's other SPIs use, and which is DMA-coherent (an emulated device reads
/// the guest's queues through the CPU's caches).
pub fn write_virtio_mmio(
    fdt: &mut FdtWriter,
    base: u64,
    size: u64,
    spi_intid: u32,
    strings: Option<(&str, alloc::vec::Vec<String>)>,
) -> Result<(), DisplayFdtError> {
    if !(SPI_BASE_INTID..SPI_END_INTID).contains(&spi_intid) {
        return Err(DisplayFdtError::NotAnSpi(spi_intid));
    }
    let node = fdt.begin_node(&format!("virtio_mmio@{base:x}"))?;
    fdt.property_string("compatible", "virtio,mmio")?;
    fdt.property_array_u64("reg", &[base, size])?;
    fdt.property_array_u32(
        "interrupts",
        &[SPECIFIER_SPI, spi_intid - SPI_BASE_INTID, LEVEL_HIGH],
    )?;
    fdt.property_null("dma-coherent")?;
    if let Some((name, values)) = strings {
        fdt.property_string_list(name, values)?;
    }
    fdt.end_node(node)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::setup::guest_fdt::tests::{flatten, property};
    use alloc::vec::Vec;

    fn has(flat: &[(String, String, Vec<u8>)], path: &str, name: &str) -> bool {
        flat.iter()
            .any(|(node, property, _)| node == path && property == name)
    }

    fn cells(values: &[u32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|value| value.to_be_bytes())
            .collect()
    }

    fn cells64(values: &[u64]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|value| value.to_be_bytes())
            .collect()
    }

    /// A small tree with a root, a fixed clock (phandle 2) and the display nodes.
    fn tree(width: u32, height: u32) -> Result<(Vec<u8>, u32), DisplayFdtError> {
        let mut fdt = FdtWriter::new()?;
        let root = fdt.begin_node("")?;
        fdt.property_u32("#address-cells", 2)?;
        fdt.property_u32("#size-cells", 2)?;
        let clock = fdt.begin_node("apb-pclk")?;
        fdt.property_string("compatible", "fixed-clock")?;
        fdt.property_u32("#clock-cells", 0)?;
        fdt.property_u32("clock-frequency", 24_000_000)?;
        fdt.property_phandle(2)?;
        fdt.end_node(clock)?;
        let mut next = 3;
        write_display(&mut fdt, (0x0a00_0000, 0x1000), width, height, 2, &mut next)?;
        write_virtio_mmio(&mut fdt, 0x0a00_1000, 0x200, 32 + 48, None)?;
        fdt.end_node(root)?;
        Ok((fdt.finish()?, next))
    }

    #[test]
    fn clcd_panel_and_virtio_nodes() {
        let (dtb, next) = tree(640, 480).unwrap();
        assert_eq!(next, 5, "two endpoint phandles taken");
        let flat = flatten(&dtb);
        let clcd = "/clcd@a000000";
        assert_eq!(
            property(&flat, clcd, "compatible"),
            b"arm,pl111\0arm,primecell\0"
        );
        assert_eq!(
            property(&flat, clcd, "reg"),
            cells64(&[0x0a00_0000, 0x1000])
        );
        assert_eq!(property(&flat, clcd, "clocks"), cells(&[2, 2]));
        assert_eq!(property(&flat, clcd, "clock-names"), b"clcdclk\0apb_pclk\0");
        assert!(!has(&flat, clcd, "memory-region"));
        assert!(!has(&flat, clcd, "dma-coherent"));
        let clcd_endpoint = "/clcd@a000000/port/endpoint";
        assert_eq!(
            property(&flat, clcd_endpoint, "arm,pl11x,tft-r0g0b0-pads"),
            cells(&[0, 8, 16])
        );
        assert_eq!(
            property(&flat, clcd_endpoint, "remote-endpoint"),
            cells(&[4])
        );
        assert_eq!(property(&flat, clcd_endpoint, "phandle"), cells(&[3]));
        let panel_endpoint = "/panel/port/endpoint";
        assert_eq!(property(&flat, "/panel", "compatible"), b"panel-dpi\0");
        assert_eq!(
            property(&flat, panel_endpoint, "remote-endpoint"),
            cells(&[3])
        );
        assert_eq!(property(&flat, panel_endpoint, "phandle"), cells(&[4]));
        let timing = "/panel/panel-timing";
        for (name, value) in [
            ("clock-frequency", 25_200_000),
            ("hactive", 640),
            ("vactive", 480),
            ("hfront-porch", 16),
            ("hback-porch", 48),
            ("hsync-len", 96),
            ("vfront-porch", 10),
            ("vback-porch", 33),
            ("vsync-len", 2),
        ] {
            assert_eq!(property(&flat, timing, name), cells(&[value]), "{name}");
        }
        let virtio = "/virtio_mmio@a001000";
        assert_eq!(property(&flat, virtio, "compatible"), b"virtio,mmio\0");
        assert_eq!(
            property(&flat, virtio, "reg"),
            cells64(&[0x0a00_1000, 0x200])
        );
        assert_eq!(property(&flat, virtio, "interrupts"), cells(&[0, 48, 4]));
        assert_eq!(property(&flat, virtio, "dma-coherent"), b"");
    }

    #[test]
    fn pixel_clock_and_largest_panels() {
        assert_eq!(
            pixel_clock(1024, 1024),
            Some((1024 + 160) * (1024 + 45) * 60)
        );
        let (dtb, _) = tree(1024, 768).unwrap();
        let flat = flatten(&dtb);
        assert_eq!(
            property(&flat, "/panel/panel-timing", "hactive"),
            cells(&[1024])
        );
    }

    #[test]
    fn refuses_bad_panels_interrupts_and_phandles() {
        assert_eq!(
            tree(650, 480).unwrap_err(),
            DisplayFdtError::UnsupportedPanel {
                width: 650,
                height: 480
            }
        );
        assert!(tree(0, 0).is_err());
        assert!(tree(2048, 480).is_err());
        let mut fdt = FdtWriter::new().unwrap();
        let root = fdt.begin_node("").unwrap();
        assert_eq!(
            write_virtio_mmio(&mut fdt, 0, 0x200, 31, None),
            Err(DisplayFdtError::NotAnSpi(31))
        );
        assert_eq!(
            write_virtio_mmio(&mut fdt, 0, 0x200, 1020, None),
            Err(DisplayFdtError::NotAnSpi(1020))
        );
        let mut next = 3;
        assert_eq!(
            write_display(&mut fdt, (0, 0x2000), 640, 480, 2, &mut next),
            Err(DisplayFdtError::WrongWindowSize(0x2000))
        );
        let mut next = u32::MAX;
        assert_eq!(
            write_display(&mut fdt, (0, 0x1000), 640, 480, 2, &mut next),
            Err(DisplayFdtError::PhandlesExhausted)
        );
        fdt.end_node(root).unwrap();
        assert!(matches!(
            GuestFdtError::from(DisplayFdtError::NotAnSpi(1)),
            GuestFdtError::ValueTooLarge(_)
        ));
    }
}
