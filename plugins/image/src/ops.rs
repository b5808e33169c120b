//! Pixels and the operations on them: resize, crop, rotate, orientation,
//! padding and alpha flattening. 8 bits per channel; 1 (grey), 2 (grey and
//! alpha), 3 (RGB) or 4 (RGBA) channels.

use fast_image_resize as fr;

use crate::params::{Crop, Limits, Resize};

#[derive(Clone, PartialEq, Eq)]
pub struct Image {
    pub w: u32,
    pub h: u32,
    pub ch: u8,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Image {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Image({}x{}x{})", self.w, self.h, self.ch)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeMode {
    Lfit,
    Mfit,
    Fill,
    Pad,
    Fixed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gravity {
    NorthWest,
    North,
    NorthEast,
    West,
    Center,
    East,
    SouthWest,
    South,
    SouthEast,
}

/// Error messages here become `unsupported-input`.
pub type OpResult<T> = Result<T, String>;

/// Check that an image of `w`×`h` may be created.
pub fn check_size(w: u64, h: u64, limits: &Limits, what: &str) -> OpResult<()> {
    if w == 0 || h == 0 {
        return Err(format!("{what} would be empty ({w}x{h})"));
    }
    if w > u64::from(limits.max_side) || h > u64::from(limits.max_side) {
        return Err(format!(
            "{what} is {w}x{h}, over the limit of {} px per side (see the `limits` action)",
            limits.max_side
        ));
    }
    if w * h > limits.max_pixels {
        return Err(format!(
            "{what} is {w}x{h} ({:.1} MP), over the limit of {} MP (see the `limits` action)",
            (w * h) as f64 / 1e6,
            limits.max_pixels / 1_000_000
        ));
    }
    Ok(())
}

impl Image {
    pub fn new(w: u32, h: u32, ch: u8, data: Vec<u8>) -> OpResult<Image> {
        let expected = w as usize * h as usize * ch as usize;
        if data.len() != expected || !(1..=4).contains(&ch) {
            return Err(format!("decoder returned {} bytes for a {w}x{h} image with {ch} channels", data.len()));
        }
        Ok(Image { w, h, ch, data })
    }

    pub fn has_alpha(&self) -> bool {
        self.ch == 2 || self.ch == 4
    }

    /// Drop an alpha channel that is opaque everywhere.
    pub fn drop_opaque_alpha(self) -> Image {
        if !self.has_alpha() {
            return self;
        }
        let ch = self.ch as usize;
        if !self.data.chunks_exact(ch).all(|p| p[ch - 1] == 255) {
            return self;
        }
        let data = self.data.chunks_exact(ch).flat_map(|p| p[..ch - 1].iter().copied()).collect();
        Image { w: self.w, h: self.h, ch: self.ch - 1, data }
    }

    /// Composite over an opaque background colour, removing the alpha channel.
    pub fn flatten(self, bg: [u8; 3]) -> Image {
        match self.ch {
            2 => {
                let grey = ((u32::from(bg[0]) * 299 + u32::from(bg[1]) * 587 + u32::from(bg[2]) * 114) / 1000) as u8;
                let data = self.data.chunks_exact(2).map(|p| blend(p[0], grey, p[1])).collect();
                Image { w: self.w, h: self.h, ch: 1, data }
            }
            4 => {
                let mut data = Vec::with_capacity(self.w as usize * self.h as usize * 3);
                for p in self.data.chunks_exact(4) {
                    data.extend_from_slice(&[
                        blend(p[0], bg[0], p[3]),
                        blend(p[1], bg[1], p[3]),
                        blend(p[2], bg[2], p[3]),
                    ]);
                }
                Image { w: self.w, h: self.h, ch: 3, data }
            }
            _ => self,
        }
    }

    /// Expand to 4 channels (RGBA).
    pub fn to_rgba(&self) -> Vec<u8> {
        let n = self.w as usize * self.h as usize;
        let mut out = Vec::with_capacity(n * 4);
        match self.ch {
            1 => self.data.iter().for_each(|&v| out.extend_from_slice(&[v, v, v, 255])),
            2 => self.data.chunks_exact(2).for_each(|p| out.extend_from_slice(&[p[0], p[0], p[0], p[1]])),
            3 => self.data.chunks_exact(3).for_each(|p| out.extend_from_slice(&[p[0], p[1], p[2], 255])),
            _ => out.extend_from_slice(&self.data),
        }
        out
    }

    /// Expand to 3 channels (RGB); alpha is flattened over white first.
    pub fn to_rgb(&self) -> Vec<u8> {
        match self.ch {
            3 => self.data.clone(),
            1 => self.data.iter().flat_map(|&v| [v, v, v]).collect(),
            _ => self.clone().flatten([255, 255, 255]).to_rgb(),
        }
    }
}

fn blend(fg: u8, bg: u8, alpha: u8) -> u8 {
    let a = u32::from(alpha);
    ((u32::from(fg) * a + u32::from(bg) * (255 - a) + 127) / 255) as u8
}

// ---------------------------------------------------------------- resize

/// Where a resize puts the scaled source: the scaled size, the canvas size
/// and the scaled image's offset in the canvas (negative: cropped).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub scaled: (u32, u32),
    pub canvas: (u32, u32),
    pub offset: (i64, i64),
}

fn scale_dim(d: u32, s: f64) -> u32 {
    ((f64::from(d) * s).round() as u32).max(1)
}

/// The geometry of `r` for a source of `sw`×`sh`, or `None` when nothing is
/// to be done (same size, or an enlargement refused by `limit_1`).
pub fn resize_geometry(r: &Resize, sw: u32, sh: u32) -> Option<Geometry> {
    let (sw_f, sh_f) = (f64::from(sw), f64::from(sh));
    let (w, h) = match (r.long, r.short) {
        (None, None) => (r.w, r.h),
        (l, s) if sw >= sh => (l, s),
        (l, s) => (s, l),
    };
    let g = if let Some(p) = r.percent {
        let s = f64::from(p) / 100.0;
        let scaled = (scale_dim(sw, s), scale_dim(sh, s));
        Geometry { scaled, canvas: scaled, offset: (0, 0) }
    } else {
        match (w, h) {
            (Some(w), None) => {
                let scaled = (w, scale_dim(sh, f64::from(w) / sw_f));
                Geometry { scaled, canvas: scaled, offset: (0, 0) }
            }
            (None, Some(h)) => {
                let scaled = (scale_dim(sw, f64::from(h) / sh_f), h);
                Geometry { scaled, canvas: scaled, offset: (0, 0) }
            }
            (Some(w), Some(h)) => {
                let (fw, fh) = (f64::from(w) / sw_f, f64::from(h) / sh_f);
                match r.mode {
                    ResizeMode::Lfit | ResizeMode::Mfit => {
                        let s = if r.mode == ResizeMode::Lfit { fw.min(fh) } else { fw.max(fh) };
                        let scaled = (scale_dim(sw, s), scale_dim(sh, s));
                        Geometry { scaled, canvas: scaled, offset: (0, 0) }
                    }
                    ResizeMode::Fill | ResizeMode::Pad => {
                        let s = if r.mode == ResizeMode::Fill { fw.max(fh) } else { fw.min(fh) };
                        let scaled = (scale_dim(sw, s), scale_dim(sh, s));
                        let offset =
                            ((i64::from(w) - i64::from(scaled.0)) / 2, (i64::from(h) - i64::from(scaled.1)) / 2);
                        Geometry { scaled, canvas: (w, h), offset }
                    }
                    ResizeMode::Fixed => Geometry { scaled: (w, h), canvas: (w, h), offset: (0, 0) },
                }
            }
            (None, None) => return None,
        }
    };
    if r.limit && (g.scaled.0 > sw || g.scaled.1 > sh) {
        return None;
    }
    if g.scaled == (sw, sh) && g.canvas == (sw, sh) {
        return None;
    }
    Some(g)
}

fn pixel_type(ch: u8) -> fr::PixelType {
    match ch {
        1 => fr::PixelType::U8,
        2 => fr::PixelType::U8x2,
        3 => fr::PixelType::U8x3,
        _ => fr::PixelType::U8x4,
    }
}

/// Premultiply colour by alpha (done here rather than by fast_image_resize:
/// its SIMD128 alpha division is miscompiled by Rust 1.95/1.96).
fn premultiply(data: &mut [u8], ch: usize) {
    for p in data.chunks_exact_mut(ch) {
        let a = u32::from(p[ch - 1]);
        for c in &mut p[..ch - 1] {
            *c = ((u32::from(*c) * a + 127) / 255) as u8;
        }
    }
}

fn unpremultiply(data: &mut [u8], ch: usize) {
    for p in data.chunks_exact_mut(ch) {
        let a = u32::from(p[ch - 1]);
        if a == 0 {
            p[..ch - 1].fill(0);
        } else if a < 255 {
            for c in &mut p[..ch - 1] {
                *c = ((u32::from(*c) * 255 + a / 2) / a).min(255) as u8;
            }
        }
    }
}

/// Resample the part `crop` (left, top, width, height in source pixels) of
/// `src` to `w`×`h`.
pub fn resample(src: &Image, crop: (f64, f64, f64, f64), w: u32, h: u32) -> OpResult<Image> {
    let ch = src.ch as usize;
    let mut data = src.data.clone();
    if src.has_alpha() {
        premultiply(&mut data, ch);
    }
    let src_img = fr::images::Image::from_vec_u8(src.w, src.h, data, pixel_type(src.ch)).map_err(|e| e.to_string())?;
    let mut dst = fr::images::Image::new(w, h, pixel_type(src.ch));
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3)).use_alpha(false);
    // Floating-point error must not push the box past the edge (fast_image_resize refuses that).
    let (sw, sh) = (f64::from(src.w), f64::from(src.h));
    let left = crop.0.clamp(0.0, sw - 1.0);
    let top = crop.1.clamp(0.0, sh - 1.0);
    let options = options.crop(left, top, crop.2.clamp(1e-3, sw - left), crop.3.clamp(1e-3, sh - top));
    let mut resizer = fr::Resizer::new();
    resizer.resize(&src_img, &mut dst, &options).map_err(|e| format!("resize failed: {e}"))?;
    let mut out = dst.into_vec();
    if src.has_alpha() {
        unpremultiply(&mut out, ch);
    }
    Image::new(w, h, src.ch, out)
}

/// Apply a resize. `logical` is the size the geometry is computed for when
/// `img` was decoded at a reduced scale (JPEG DCT scaling): the result is the
/// same as resizing the full-size image.
pub fn resize(img: Image, r: &Resize, logical: Option<(u32, u32)>, limits: &Limits) -> OpResult<Image> {
    let (lw, lh) = logical.unwrap_or((img.w, img.h));
    let Some(g) = resize_geometry(r, lw, lh) else {
        if logical.is_some() && (img.w, img.h) != (lw, lh) {
            // Decoded smaller than the (unchanged) logical size: back to it.
            check_size(u64::from(lw), u64::from(lh), limits, "the resized image")?;
            return resample(&img, (0.0, 0.0, f64::from(img.w), f64::from(img.h)), lw, lh);
        }
        return Ok(img);
    };
    check_size(u64::from(g.canvas.0), u64::from(g.canvas.1), limits, "the resized image")?;
    check_size(u64::from(g.scaled.0), u64::from(g.scaled.1), limits, "the resized image")?;
    // Scale from source pixels (of the possibly reduced decode) to scaled pixels.
    let (sx, sy) = (f64::from(g.scaled.0) / f64::from(img.w), f64::from(g.scaled.1) / f64::from(img.h));
    if g.canvas.0 <= g.scaled.0 && g.canvas.1 <= g.scaled.1 {
        // Fill (or plain) resize: resample just the visible part of the source.
        let (vw, vh) = (g.canvas.0.min(g.scaled.0), g.canvas.1.min(g.scaled.1));
        let crop = ((-g.offset.0) as f64 / sx, (-g.offset.1) as f64 / sy, f64::from(vw) / sx, f64::from(vh) / sy);
        return resample(&img, crop, vw, vh);
    }
    // Pad: resize, then centre on a canvas of the background colour.
    let scaled = resample(&img, (0.0, 0.0, f64::from(img.w), f64::from(img.h)), g.scaled.0, g.scaled.1)?;
    Ok(pad(&scaled, g.canvas, g.offset, r.color))
}

/// Place `img` at `offset` on a canvas of `size` filled with `color`.
fn pad(img: &Image, size: (u32, u32), offset: (i64, i64), color: [u8; 3]) -> Image {
    let ch = img.ch as usize;
    let bg: Vec<u8> = match img.ch {
        1 => vec![((u32::from(color[0]) * 299 + u32::from(color[1]) * 587 + u32::from(color[2]) * 114) / 1000) as u8],
        2 => vec![
            ((u32::from(color[0]) * 299 + u32::from(color[1]) * 587 + u32::from(color[2]) * 114) / 1000) as u8,
            255,
        ],
        3 => color.to_vec(),
        _ => vec![color[0], color[1], color[2], 255],
    };
    let (cw, chh) = (size.0 as usize, size.1 as usize);
    let mut data = Vec::with_capacity(cw * chh * ch);
    for _ in 0..cw * chh {
        data.extend_from_slice(&bg);
    }
    let ox = offset.0.max(0) as usize;
    let oy = offset.1.max(0) as usize;
    let row = img.w as usize * ch;
    for y in 0..img.h as usize {
        let dy = oy + y;
        if dy >= chh || ox >= cw {
            break;
        }
        let n = row.min((cw - ox) * ch);
        let d = (dy * cw + ox) * ch;
        data[d..d + n].copy_from_slice(&img.data[y * row..y * row + n]);
    }
    Image { w: size.0, h: size.1, ch: img.ch, data }
}

// ---------------------------------------------------------------- crop

/// The region of a crop in a `w`×`h` image: x, y, width, height.
pub fn crop_region(c: &Crop, w: u32, h: u32) -> OpResult<(u32, u32, u32, u32)> {
    fn axis(start: u32, len: Option<u32>, size: u32, anchor: u8) -> Option<(u32, u32)> {
        let (size, start) = (i64::from(size), i64::from(start));
        let len = i64::from(len.unwrap_or(size as u32));
        let origin = match anchor {
            0 => start,
            1 => (size - len) / 2 + start,
            _ => size - len - start,
        };
        let lo = origin.max(0);
        let hi = (origin + len).min(size);
        (hi > lo).then_some((lo as u32, (hi - lo) as u32))
    }
    let (hx, vy) = match c.gravity {
        Gravity::NorthWest => (0, 0),
        Gravity::North => (1, 0),
        Gravity::NorthEast => (2, 0),
        Gravity::West => (0, 1),
        Gravity::Center => (1, 1),
        Gravity::East => (2, 1),
        Gravity::SouthWest => (0, 2),
        Gravity::South => (1, 2),
        Gravity::SouthEast => (2, 2),
    };
    match (axis(c.x, c.w, w, hx), axis(c.y, c.h, h, vy)) {
        (Some((x, cw)), Some((y, ch))) => Ok((x, y, cw, ch)),
        _ => Err(format!("the crop region (x {}, y {}) lies outside the {w}x{h} image", c.x, c.y)),
    }
}

pub fn crop(img: Image, c: &Crop) -> OpResult<Image> {
    let (x, y, w, h) = crop_region(c, img.w, img.h)?;
    if (x, y, w, h) == (0, 0, img.w, img.h) {
        return Ok(img);
    }
    Ok(sub_image(&img, x, y, w, h))
}

fn sub_image(img: &Image, x: u32, y: u32, w: u32, h: u32) -> Image {
    let ch = img.ch as usize;
    let row = img.w as usize * ch;
    let mut data = Vec::with_capacity(w as usize * h as usize * ch);
    for yy in y as usize..(y + h) as usize {
        let start = yy * row + x as usize * ch;
        data.extend_from_slice(&img.data[start..start + w as usize * ch]);
    }
    Image { w, h, ch: img.ch, data }
}

// ---------------------------------------------------------------- orientation and rotation

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    FlipH,
    FlipV,
    Rot90,
    Rot180,
    Rot270,
    Transpose,
    Transverse,
}

/// The transform that displays an image with this EXIF orientation upright.
pub fn orientation_transform(orientation: u8) -> Option<Transform> {
    match orientation {
        2 => Some(Transform::FlipH),
        3 => Some(Transform::Rot180),
        4 => Some(Transform::FlipV),
        5 => Some(Transform::Transpose),
        6 => Some(Transform::Rot90),
        7 => Some(Transform::Transverse),
        8 => Some(Transform::Rot270),
        _ => None,
    }
}

impl Transform {
    pub fn swaps_sides(self) -> bool {
        matches!(self, Transform::Rot90 | Transform::Rot270 | Transform::Transpose | Transform::Transverse)
    }
}

/// Exact flips and quarter turns (clockwise).
pub fn transform(img: &Image, t: Transform) -> Image {
    let (w, h, ch) = (img.w as usize, img.h as usize, img.ch as usize);
    let (ow, oh) = if t.swaps_sides() { (h, w) } else { (w, h) };
    let mut data = vec![0u8; img.data.len()];
    for y in 0..oh {
        for x in 0..ow {
            let (sx, sy) = match t {
                Transform::FlipH => (w - 1 - x, y),
                Transform::FlipV => (x, h - 1 - y),
                Transform::Rot180 => (w - 1 - x, h - 1 - y),
                Transform::Rot90 => (y, h - 1 - x),
                Transform::Rot270 => (w - 1 - y, x),
                Transform::Transpose => (y, x),
                Transform::Transverse => (w - 1 - y, h - 1 - x),
            };
            let s = (sy * w + sx) * ch;
            let d = (y * ow + x) * ch;
            data[d..d + ch].copy_from_slice(&img.data[s..s + ch]);
        }
    }
    Image { w: ow as u32, h: oh as u32, ch: img.ch, data }
}

/// The size of a `w`×`h` image rotated by `deg` degrees: the bounding box of
/// the rotated image.
pub fn rotated_size(w: u32, h: u32, deg: u32) -> (u64, u64) {
    match deg % 360 {
        0 | 180 => return (u64::from(w), u64::from(h)),
        90 | 270 => return (u64::from(h), u64::from(w)),
        _ => {}
    }
    let (sin, cos) = f64::from(deg).to_radians().sin_cos();
    let (w, h) = (f64::from(w), f64::from(h));
    let ow = (w * cos.abs() + h * sin.abs()).round().max(1.0);
    let oh = (w * sin.abs() + h * cos.abs()).round().max(1.0);
    (ow as u64, oh as u64)
}

/// Rotate clockwise by `deg` degrees. Quarter turns are exact; other angles
/// are resampled bilinearly onto a canvas large enough for the whole image,
/// filled with white (or transparency for images with alpha).
pub fn rotate(img: Image, deg: u32, limits: &Limits) -> OpResult<Image> {
    match deg % 360 {
        0 => return Ok(img),
        90 => return Ok(transform(&img, Transform::Rot90)),
        180 => return Ok(transform(&img, Transform::Rot180)),
        270 => return Ok(transform(&img, Transform::Rot270)),
        _ => {}
    }
    let theta = f64::from(deg).to_radians();
    let (sin, cos) = theta.sin_cos();
    let (w, h) = (f64::from(img.w), f64::from(img.h));
    let (ow, oh) = rotated_size(img.w, img.h, deg);
    check_size(ow, oh, limits, "the rotated image")?;
    let (ow, oh) = (ow as usize, oh as usize);
    let ch = img.ch as usize;
    let bg: [f32; 4] = if img.has_alpha() { [0.0; 4] } else { [255.0; 4] };
    let (cx, cy) = (w / 2.0, h / 2.0);
    let (ocx, ocy) = (ow as f64 / 2.0, oh as f64 / 2.0);
    let iw = img.w as i64;
    let ih = img.h as i64;
    let fetch = |x: i64, y: i64, c: usize| -> f32 {
        if x < 0 || y < 0 || x >= iw || y >= ih { bg[c] } else { f32::from(img.data[((y * iw + x) as usize) * ch + c]) }
    };
    let mut data = vec![0u8; ow * oh * ch];
    for y in 0..oh {
        for x in 0..ow {
            // Inverse rotation (counter-clockwise) of the destination pixel centre.
            let dx = x as f64 + 0.5 - ocx;
            let dy = y as f64 + 0.5 - ocy;
            let sx = dx * cos + dy * sin + cx - 0.5;
            let sy = -dx * sin + dy * cos + cy - 0.5;
            let (x0, y0) = (sx.floor(), sy.floor());
            let (fx, fy) = ((sx - x0) as f32, (sy - y0) as f32);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let d = (y * ow + x) * ch;
            for c in 0..ch {
                let top = fetch(x0, y0, c) * (1.0 - fx) + fetch(x0 + 1, y0, c) * fx;
                let bottom = fetch(x0, y0 + 1, c) * (1.0 - fx) + fetch(x0 + 1, y0 + 1, c) * fx;
                data[d + c] = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
    Ok(Image { w: ow as u32, h: oh as u32, ch: img.ch, data })
}
