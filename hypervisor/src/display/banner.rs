//! The banner frame: the focused cell's name, large, on the cell's colour, with a small
//! "cellvisor" line under it.
#![forbid(unsafe_code)]
//!
//! The glyphs are the public-domain 8x8 bitmap font of the `font8x8` crate (its `legacy` tables,
//! which need neither `std` nor its `unicode` feature): each glyph is 8 row bytes, bit 0 the
//! leftmost pixel. Characters outside ASCII are drawn as `?`. Everything is clipped to the
//! frame; no size of frame, buffer or name makes drawing fail.

use font8x8::legacy::BASIC_LEGACY;

use crate::dev::pl111::PixelFormat;

/// Side of a glyph cell in font pixels.
const GLYPH: u64 = 8;
/// The largest scale of the name (8×8 font pixels → 64×64 screen pixels per character).
const NAME_SCALE_MAX: u64 = 8;
/// The line under the name.
const FOOTER: &str = "cellvisor";

/// Pure white and pure black, 0xRRGGBB.
const WHITE: u32 = 0xFF_FFFF;
const BLACK: u32 = 0x00_0000;

/// The text colour that contrasts with `colour` (0xRRGGBB): black on a light colour, white on a
/// dark one, by the Rec. 601 luma 0.299 R + 0.587 G + 0.114 B in integers (per mille).
pub const fn text_colour(colour: u32) -> u32 {
    let red = (colour >> 16) & 0xFF;
    let green = (colour >> 8) & 0xFF;
    let blue = colour & 0xFF;
    let luma_per_mille = 299 * red + 587 * green + 114 * blue;
    if luma_per_mille >= 128 * 1000 {
        BLACK
    } else {
        WHITE
    }
}

/// The glyph of `character` (`?` for anything outside ASCII).
fn glyph(character: char) -> [u8; 8] {
    let index = if character.is_ascii() {
        character as usize
    } else {
        usize::from(b'?')
    };
    BASIC_LEGACY
        .get(index)
        .or_else(|| BASIC_LEGACY.get(usize::from(b'?')))
        .copied()
        .unwrap_or([0; 8])
}

/// A frame being drawn: the pixel words, the visible size, and the words per line.
struct Canvas<'a> {
    pixels: &'a mut [u32],
    width: u64,
    height: u64,
    stride: u64,
}

impl Canvas<'_> {
    /// Sets the pixel at (`x`, `y`) if it is inside the frame and the buffer.
    fn put(&mut self, x: u64, y: u64, value: u32) {
        if x >= self.width || y >= self.height {
            return;
        }
        let Some(index) = y
            .checked_mul(self.stride)
            .and_then(|row| row.checked_add(x))
            .and_then(|index| usize::try_from(index).ok())
        else {
            return;
        };
        if let Some(pixel) = self.pixels.get_mut(index) {
            *pixel = value;
        }
    }

    /// Fills the whole frame with `value`.
    fn fill(&mut self, value: u32) {
        for y in 0..self.height {
            let Some(start) = y
                .checked_mul(self.stride)
                .and_then(|start| usize::try_from(start).ok())
            else {
                return;
            };
            let Some(end) = usize::try_from(self.width)
                .ok()
                .and_then(|width| start.checked_add(width))
            else {
                return;
            };
            match self.pixels.get_mut(start..end) {
                Some(row) => row.fill(value),
                None => {
                    // The buffer ends inside this line: fill what there is, then stop.
                    if let Some(rest) = self.pixels.get_mut(start..) {
                        rest.fill(value);
                    }
                    return;
                }
            }
        }
    }

    /// Draws `text` at scale `scale` with its top edge at `top`, centred horizontally when it
    /// fits and starting at the left edge otherwise (clipped on the right).
    fn text(&mut self, text: &str, scale: u64, top: u64, value: u32) {
        let cell = GLYPH * scale;
        let characters = text.chars().count() as u64;
        let text_width = characters.saturating_mul(cell);
        let left = self.width.saturating_sub(text_width) / 2;
        for (position, character) in text.chars().enumerate() {
            let Some(x0) = (position as u64)
                .checked_mul(cell)
                .and_then(|offset| offset.checked_add(left))
            else {
                return;
            };
            if x0 >= self.width {
                return;
            }
            let rows = glyph(character);
            for (row, bits) in (0u64..).zip(rows) {
                for column in 0..GLYPH {
                    if bits & (1 << column) == 0 {
                        continue;
                    }
                    let x = x0 + column * scale;
                    let y = top.saturating_add(row * scale);
                    for dy in 0..scale {
                        for dx in 0..scale {
                            self.put(x + dx, y.saturating_add(dy), value);
                        }
                    }
                }
            }
        }
    }
}

/// Draws the banner of cell `name` on its `colour` (0xRRGGBB) into `pixels`, a frame of `width`
/// × `height` pixels whose lines are `stride_words` 32-bit words apart, in `format`.
///
/// The frame is filled with the colour; the name is drawn centred, as large as fits (up to ×8,
/// at least ×1: a name too long for the frame is cut on the right), in black or white, whichever
/// contrasts with the colour ([`text_colour`]); "cellvisor" in small letters below it when there
/// is room. Only the pixels that are both inside `width` × `height` (a stride below the width
/// narrows the frame to the stride) and inside `pixels` are written.
pub fn draw_banner(
    pixels: &mut [u32],
    width: u32,
    height: u32,
    stride_words: u32,
    format: PixelFormat,
    name: &str,
    colour: u32,
) {
    let mut canvas = Canvas {
        pixels,
        width: u64::from(width.min(stride_words)),
        height: u64::from(height),
        stride: u64::from(stride_words),
    };
    if canvas.width == 0 || canvas.height == 0 {
        return;
    }
    canvas.fill(format.pack(colour));
    let ink = format.pack(text_colour(colour));

    let characters = (name.chars().count() as u64).max(1);
    // The name takes at most 9/10 of the width and 1/3 of the height.
    let by_width = canvas.width * 9 / 10 / (characters * GLYPH);
    let by_height = canvas.height / 3 / GLYPH;
    let scale = by_width.min(by_height).clamp(1, NAME_SCALE_MAX);
    let name_height = GLYPH * scale;
    let footer_scale = (scale / 4).max(1);
    let footer_height = GLYPH * footer_scale;
    let gap = footer_height;
    let block = name_height + gap + footer_height;
    let top = canvas.height.saturating_sub(block) / 2;
    canvas.text(name, scale, top, ink);
    let footer_top = top + name_height + gap;
    if footer_top + footer_height <= canvas.height {
        canvas.text(FOOTER, footer_scale, footer_top, ink);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    const BLUE: u32 = 0x20_40C0;
    const YELLOW: u32 = 0xFF_E040;

    fn count(pixels: &[u32], value: u32) -> usize {
        pixels.iter().filter(|pixel| **pixel == value).count()
    }

    #[test]
    fn fills_with_the_colour_and_writes_the_name_in_the_centre() {
        let (width, height) = (640u32, 480u32);
        let mut pixels = vec![0u32; (width * height) as usize];
        let format = PixelFormat::Xrgb8888;
        draw_banner(&mut pixels, width, height, width, format, "alpha", BLUE);
        let background = format.pack(BLUE);
        let ink = format.pack(WHITE);
        let at = |x: u32, y: u32| pixels[(y * width + x) as usize];
        for (x, y) in [
            (0, 0),
            (width - 1, 0),
            (0, height - 1),
            (width - 1, height - 1),
        ] {
            assert_eq!(at(x, y), background, "corner {x},{y}");
        }
        // The centre band (around the name) holds text pixels.
        let centre: Vec<u32> = (height / 2 - 60..height / 2 + 20)
            .flat_map(|y| (width / 4..3 * width / 4).map(move |x| (x, y)))
            .map(|(x, y)| at(x, y))
            .collect();
        assert!(count(&centre, ink) > 500, "name drawn in the centre");
        assert_eq!(
            count(&pixels, ink) + count(&pixels, background),
            pixels.len()
        );
        // Only these two colours, and the footer is there too (ink below the name's block).
        let footer_rows = (height / 2 + 30..height / 2 + 60)
            .flat_map(|y| (0..width).map(move |x| (x, y)))
            .filter(|(x, y)| at(*x, *y) == ink)
            .count();
        assert!(footer_rows > 20, "cellvisor line drawn");
    }

    #[test]
    fn text_contrasts_with_the_colour() {
        assert_eq!(text_colour(BLUE), WHITE);
        assert_eq!(text_colour(YELLOW), BLACK);
        assert_eq!(text_colour(0xFFFFFF), BLACK);
        assert_eq!(text_colour(0x000000), WHITE);
        let mut pixels = vec![0u32; 320 * 200];
        draw_banner(
            &mut pixels,
            320,
            200,
            320,
            PixelFormat::Xbgr8888,
            "b",
            YELLOW,
        );
        let background = PixelFormat::Xbgr8888.pack(YELLOW);
        assert_eq!(pixels[0], background);
        assert_eq!(background, 0x40_E0FF);
        assert!(count(&pixels, 0) > 0, "black text");
        assert_eq!(count(&pixels, 0) + count(&pixels, background), pixels.len());
    }

    #[test]
    fn stride_beyond_width_is_left_alone() {
        let (width, height, stride) = (64u32, 48u32, 80u32);
        let mut pixels = vec![0xDEAD_BEEFu32; (stride * height) as usize];
        draw_banner(
            &mut pixels,
            width,
            height,
            stride,
            PixelFormat::Xrgb8888,
            "x",
            BLUE,
        );
        for y in 0..height {
            for x in 0..stride {
                let pixel = pixels[(y * stride + x) as usize];
                if x < width {
                    assert_ne!(pixel, 0xDEAD_BEEF, "{x},{y} drawn");
                } else {
                    assert_eq!(pixel, 0xDEAD_BEEF, "{x},{y} is padding");
                }
            }
        }
    }

    #[test]
    fn odd_sizes_never_panic() {
        let format = PixelFormat::Xrgb8888;
        draw_banner(&mut [], 0, 0, 0, format, "a", BLUE);
        draw_banner(&mut [], 640, 480, 640, format, "a", BLUE);
        let mut one = [0u32; 1];
        draw_banner(&mut one, 1, 1, 1, format, "a", BLUE);
        assert_eq!(one[0], format.pack(BLUE));
        let mut small = vec![0u32; 7 * 3];
        draw_banner(&mut small, 7, 3, 7, format, "", BLUE);
        draw_banner(&mut small, 7, 3, 0, format, "abc", BLUE);
        draw_banner(
            &mut small,
            u32::MAX,
            u32::MAX,
            u32::MAX,
            format,
            "abc",
            BLUE,
        );
        let huge: alloc::string::String = core::iter::repeat_n('W', 100_000).collect();
        let mut frame = vec![0u32; 64 * 64];
        draw_banner(&mut frame, 64, 64, 64, format, &huge, BLUE);
        assert!(count(&frame, format.pack(WHITE)) > 0, "cut, not dropped");
        draw_banner(&mut frame, 64, 64, 64, format, "ünïcødé ☃", 0xFFFFFFFF);
        // A buffer shorter than the frame: filled as far as it goes.
        let mut short = vec![0u32; 100];
        draw_banner(&mut short, 64, 64, 64, format, "short", BLUE);
        assert_eq!(count(&short, 0), 0);
    }
}
