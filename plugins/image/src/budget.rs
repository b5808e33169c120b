//! The memory a style needs for an image, worked out from the header before
//! any pixel is decoded, so that an image too large for the task's memory
//! limit is refused with a message instead of crashing the task halfway.
//!
//! The figure is the peak of the stages, each measured (natively, with a
//! counting allocator) on 12 MP images of every format: decoding (the
//! decoder's own buffers and the pixels), the copies made after it (alpha
//! dropped, EXIF orientation), each geometry action (source, its copy for the
//! resampler, the result) and encoding. It errs on the large side by a little.

use crate::codec::{self, Header};
use crate::jpeg_dc;
use crate::ops;
use crate::params::{Op, OutFormat, Plan};

/// Bytes needed at the peak of decoding, processing and encoding `bytes`.
/// `jpeg_min` is the smallest size wanted from a JPEG (decoded at reduced
/// scale), `upright` the image's size once oriented.
pub fn peak_bytes(
    bytes: &[u8],
    header: &Header,
    plan: &Plan,
    jpeg_min: Option<(u32, u32)>,
    upright: (u32, u32),
    out: OutFormat,
) -> u64 {
    let ch = u64::from(header.channels.clamp(1, 4));
    let (w, h) = (header.width, header.height);
    // JPEGs are decoded at reduced scale when the first action shrinks them.
    let e = if header.format == OutFormat::Jpeg { codec::jpeg_scale(w, h, jpeg_min) } else { 8 };
    let decoded = area(codec::scaled(w, e), codec::scaled(h, e));
    let full = area(w, h);
    let decode = match header.format {
        // The DC fast path: planes at the reduced size, then the pixels.
        OutFormat::Jpeg if e <= 2 && jpeg_dc::accepts(bytes) => decoded * ch * 2,
        // jpeg-decoder: full-size component planes, then the (scaled) pixels.
        OutFormat::Jpeg => full * ch + decoded * ch,
        // The pixels, and a row or two.
        OutFormat::Png => full * (ch + 1),
        // The frame and the screen, both RGBA.
        OutFormat::Gif => full * 10,
        // Lossless: ARGB words; lossy: the YUV planes.
        OutFormat::Webp => full * (ch + 4),
        // The rows read, then the pixels.
        OutFormat::Bmp => full * 12,
    };
    // An opaque alpha channel dropped, or the EXIF orientation applied: a copy.
    let alpha = matches!(header.channels, 2 | 4);
    let copies = alpha || header.orientation != 1;
    let mut peak = if copies { decode.max(decoded * ch * 2) } else { decode };
    let mut cur = (codec::scaled(w, e), codec::scaled(h, e));
    let mut logical = upright;
    for op in &plan.ops {
        let (result, working) = match op {
            Op::Resize(r) => match ops::resize_geometry(r, logical.0, logical.1) {
                // The source, the resampler's copy of it, its horizontal pass
                // (new width, old height), the result and a padded canvas.
                Some(g) => (g.canvas, 2 * area(cur.0, cur.1) + area(g.scaled.0, cur.1) + area(g.scaled.0, g.scaled.1)),
                None => (logical, area(cur.0, cur.1) * 2),
            },
            Op::Crop(c) => {
                (ops::crop_region(c, logical.0, logical.1).map_or(logical, |(_, _, w, h)| (w, h)), area(cur.0, cur.1))
            }
            Op::Rotate(deg) => {
                let (w, h) = ops::rotated_size(logical.0, logical.1, *deg);
                ((w.min(u64::from(u32::MAX)) as u32, h.min(u64::from(u32::MAX)) as u32), area(cur.0, cur.1))
            }
        };
        peak = peak.max((working + area(result.0, result.1)) * ch);
        (cur, logical) = (result, result);
    }
    peak.max(
        area(cur.0, cur.1)
            * match out {
                // Flattened over white, then the encoder's component blocks.
                OutFormat::Jpeg => ch + 3 * u64::from(alpha) + 9,
                // The frame padded to macroblocks as RGB, its YUV planes, the
                // encoder's per-macroblock state, and the alpha plane.
                OutFormat::Webp => ch + 6,
                // RGBA, the quantiser's palette map, the indices.
                OutFormat::Gif => ch + 7,
                OutFormat::Png => ch + 1,
                // The rows, padded to 4 bytes, then the file.
                OutFormat::Bmp => 3 * ch + 1,
            },
    )
}

fn area(w: u32, h: u32) -> u64 {
    u64::from(w) * u64::from(h)
}

/// Reserve `bytes` for an image of `w`×`h`, or say why it cannot be had.
pub fn reserve(bytes: u64, w: u32, h: u32) -> Result<(), String> {
    kiln_plugin_sdk::memory::reserve(bytes).map_err(|_| {
        format!(
            "the image is {w}x{h} ({:.1} MP) and this style needs about {} of memory for it, which the task's memory limit \
             (limits.max_memory) refused: set a lower pixel limit (`limits,mp_N`) to refuse such images up front, \
             or raise limits.max_memory",
            area(w, h) as f64 / 1e6,
            kiln_plugin_sdk::memory::human_bytes(bytes)
        )
    })
}
