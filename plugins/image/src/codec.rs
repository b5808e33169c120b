//! Formats: detection by signature, header probing (size, orientation, JPEG
//! quality) without decoding, decoding and encoding.

use std::io::Cursor;

use crate::bmp;
use crate::ops::{Image, OpResult};
use crate::params::{Limits, OutFormat};

/// Detect the format from the first bytes.
pub fn detect(d: &[u8]) -> Option<OutFormat> {
    if d.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(OutFormat::Jpeg)
    } else if d.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(OutFormat::Png)
    } else if d.starts_with(b"GIF87a") || d.starts_with(b"GIF89a") {
        Some(OutFormat::Gif)
    } else if d.len() >= 12 && &d[..4] == b"RIFF" && &d[8..12] == b"WEBP" {
        Some(OutFormat::Webp)
    } else if d.starts_with(b"BM") && d.len() >= 26 {
        Some(OutFormat::Bmp)
    } else {
        None
    }
}

/// What the header says, read without decoding the pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: OutFormat,
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1..=8 (1 when absent).
    pub orientation: u8,
    /// Estimated IJG quality of a JPEG source.
    pub quality: Option<u8>,
    /// Channels of the decoded pixels, at most (4 where alpha may appear).
    pub channels: u8,
}

pub fn probe(d: &[u8], format: OutFormat) -> OpResult<Header> {
    let mut h = Header { format, width: 0, height: 0, orientation: 1, quality: None, channels: 4 };
    match format {
        OutFormat::Jpeg => {
            let j = scan_jpeg(d)?;
            (h.width, h.height) = (j.width, j.height);
            h.orientation = j.exif.and_then(exif_orientation).unwrap_or(1);
            h.quality = j.quality;
            h.channels = j.components.clamp(1, 4);
        }
        OutFormat::Png => {
            let mut dec = png::Decoder::new(Cursor::new(d));
            let info = dec.read_header_info().map_err(|e| format!("corrupt PNG: {e}"))?;
            (h.width, h.height) = (info.width, info.height);
            let color = info.color_type;
            // The eXIf and tRNS chunks come before the image data; reading them allocates nothing large.
            dec.set_limits(png::Limits { bytes: 64 << 20 });
            let mut transparency = true;
            if let Ok(reader) = dec.read_info() {
                h.orientation = reader.info().exif_metadata.as_deref().and_then(exif_orientation).unwrap_or(1);
                transparency = reader.info().trns.is_some();
            }
            h.channels = match color {
                png::ColorType::Grayscale => 1 + u8::from(transparency),
                png::ColorType::GrayscaleAlpha => 2,
                png::ColorType::Rgb | png::ColorType::Indexed => 3 + u8::from(transparency),
                png::ColorType::Rgba => 4,
            };
        }
        OutFormat::Gif => {
            let dec =
                gif_options(&Limits::default()).read_info(Cursor::new(d)).map_err(|e| format!("corrupt GIF: {e}"))?;
            (h.width, h.height) = (u32::from(dec.width()), u32::from(dec.height()));
        }
        OutFormat::Webp => {
            let mut dec = image_webp::WebPDecoder::new(Cursor::new(d)).map_err(|e| format!("corrupt WebP: {e}"))?;
            (h.width, h.height) = dec.dimensions();
            h.channels = if dec.has_alpha() { 4 } else { 3 };
            if let Ok(Some(exif)) = dec.exif_metadata() {
                let tiff = exif.strip_prefix(b"Exif\0\0").unwrap_or(&exif);
                h.orientation = exif_orientation(tiff).unwrap_or(1);
            }
        }
        OutFormat::Bmp => {
            let b = bmp::header(d)?;
            (h.width, h.height) = (b.width, b.height);
        }
    }
    if h.width == 0 || h.height == 0 {
        return Err(format!("the {} header gives an empty image ({}x{})", format.name(), h.width, h.height));
    }
    Ok(h)
}

struct JpegHeader<'a> {
    width: u32,
    height: u32,
    components: u8,
    exif: Option<&'a [u8]>,
    quality: Option<u8>,
}

/// Walk the JPEG markers up to the first scan.
fn scan_jpeg(d: &[u8]) -> OpResult<JpegHeader<'_>> {
    let mut out = JpegHeader { width: 0, height: 0, components: 3, exif: None, quality: None };
    let mut pos = 2;
    let mut sof = false;
    loop {
        // Markers may be preceded by fill bytes.
        while d.get(pos) == Some(&0xff) && d.get(pos + 1) == Some(&0xff) {
            pos += 1;
        }
        let (Some(&0xff), Some(&marker)) = (d.get(pos), d.get(pos + 1)) else {
            return Err("corrupt JPEG: no frame header before the end of the data".into());
        };
        pos += 2;
        match marker {
            0xd8 | 0x01 | 0xd0..=0xd7 => continue,
            0xd9 | 0xda => break,
            _ => {}
        }
        let len = d
            .get(pos..pos + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
            .ok_or("corrupt JPEG: truncated marker")?;
        let seg = d.get(pos + 2..pos + len.max(2)).ok_or("corrupt JPEG: truncated segment")?;
        match marker {
            0xe1 if seg.starts_with(b"Exif\0\0") && out.exif.is_none() => out.exif = Some(&seg[6..]),
            0xdb => {
                let mut s = seg;
                while let Some((&pq_tq, rest)) = s.split_first() {
                    let wide = pq_tq >> 4 != 0;
                    let n = if wide { 128 } else { 64 };
                    let Some(table) = rest.get(..n) else { break };
                    if pq_tq & 15 == 0 && out.quality.is_none() {
                        let sum: u32 = if wide {
                            table.chunks_exact(2).map(|c| u32::from(u16::from_be_bytes([c[0], c[1]]))).sum()
                        } else {
                            table.iter().map(|&v| u32::from(v)).sum()
                        };
                        out.quality = Some(estimate_quality(sum));
                    }
                    s = &rest[n..];
                }
            }
            0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                let b = seg.get(..6).ok_or("corrupt JPEG: truncated frame header")?;
                out.height = u32::from(u16::from_be_bytes([b[1], b[2]]));
                out.width = u32::from(u16::from_be_bytes([b[3], b[4]]));
                out.components = b[5];
                sof = true;
            }
            _ => {}
        }
        pos += len;
    }
    if !sof {
        return Err("corrupt JPEG: no frame header".into());
    }
    Ok(out)
}

/// The IJG quality whose luminance table has this sum of coefficients.
fn estimate_quality(sum: u32) -> u8 {
    // Sum of the standard (quality 50) luminance table of the JPEG spec, Annex K.
    const STD_SUM: f64 = 3688.0;
    if sum <= 64 {
        return 100; // every coefficient 1
    }
    let scale = f64::from(sum) * 100.0 / STD_SUM;
    let q = if scale <= 100.0 { (200.0 - scale) / 2.0 } else { 5000.0 / scale };
    q.round().clamp(1.0, 100.0) as u8
}

/// The orientation tag (0x0112) of IFD0 in EXIF data starting at the TIFF header.
pub fn exif_orientation(tiff: &[u8]) -> Option<u8> {
    let le = match tiff.get(..4)? {
        [b'I', b'I', 42, 0] => true,
        [b'M', b'M', 0, 42] => false,
        _ => return None,
    };
    let u16_at = |at: usize| {
        tiff.get(at..at + 2)
            .map(|b| if le { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_be_bytes([b[0], b[1]]) })
    };
    let u32_at = |at: usize| {
        tiff.get(at..at + 4).map(|b| {
            let a = [b[0], b[1], b[2], b[3]];
            if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
        })
    };
    let ifd = u32_at(4)? as usize;
    let count = u16_at(ifd)? as usize;
    for i in 0..count.min(512) {
        let entry = ifd.checked_add(2 + i * 12)?;
        if u16_at(entry)? == 0x0112 {
            let v = u16_at(entry + 8)?;
            return (1..=8).contains(&v).then_some(v as u8);
        }
    }
    None
}

fn gif_options(limits: &Limits) -> gif::DecodeOptions {
    let mut o = gif::DecodeOptions::new();
    o.set_color_output(gif::ColorOutput::RGBA);
    if let Some(bytes) = std::num::NonZeroU64::new(limits.max_pixels.saturating_mul(4)) {
        o.set_memory_limit(gif::MemoryLimit::Bytes(bytes));
    }
    o
}

/// Decode, reducing a JPEG by 1/2, 1/4 or 1/8 in the DCT when `jpeg_min`
/// (the smallest size wanted, in stored orientation) allows it.
pub fn decode(d: &[u8], header: &Header, jpeg_min: Option<(u32, u32)>, limits: &Limits) -> OpResult<Image> {
    let img = match header.format {
        OutFormat::Jpeg => decode_jpeg(d, header, jpeg_min)?,
        OutFormat::Png => {
            let budget =
                usize::try_from(limits.max_pixels.saturating_mul(8).saturating_add(64 << 20)).unwrap_or(usize::MAX);
            let mut dec = png::Decoder::new_with_limits(Cursor::new(d), png::Limits { bytes: budget });
            dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
            let mut reader = dec.read_info().map_err(|e| format!("corrupt PNG: {e}"))?;
            let size = reader.output_buffer_size().ok_or("PNG too large")?;
            let mut buf = vec![0u8; size];
            let frame = reader.next_frame(&mut buf).map_err(|e| format!("corrupt PNG: {e}"))?;
            let ch = match frame.color_type {
                png::ColorType::Grayscale => 1,
                png::ColorType::GrayscaleAlpha => 2,
                png::ColorType::Rgb => 3,
                png::ColorType::Rgba => 4,
                png::ColorType::Indexed => return Err("PNG palette was not expanded".into()),
            };
            let row = frame.width as usize * ch;
            if frame.line_size != row {
                let mut packed = Vec::with_capacity(row * frame.height as usize);
                for y in 0..frame.height as usize {
                    packed.extend_from_slice(
                        buf.get(y * frame.line_size..y * frame.line_size + row).ok_or("corrupt PNG: short rows")?,
                    );
                }
                buf = packed;
            }
            buf.truncate(row * frame.height as usize);
            Image::new(frame.width, frame.height, ch as u8, buf)?
        }
        OutFormat::Gif => {
            let mut dec = gif_options(limits).read_info(Cursor::new(d)).map_err(|e| format!("corrupt GIF: {e}"))?;
            let (sw, sh) = (u32::from(dec.width()), u32::from(dec.height()));
            let frame =
                dec.next_frame_info().map_err(|e| format!("corrupt GIF: {e}"))?.ok_or("the GIF has no frames")?;
            let (left, top, fw, fh) =
                (u32::from(frame.left), u32::from(frame.top), u32::from(frame.width), u32::from(frame.height));
            crate::ops::check_size(u64::from(fw.max(1)), u64::from(fh.max(1)), limits, "the GIF frame")?;
            let mut pixels = vec![0u8; fw as usize * fh as usize * 4];
            dec.read_into_buffer(&mut pixels).map_err(|e| format!("corrupt GIF: {e}"))?;
            let mut canvas = vec![0u8; sw as usize * sh as usize * 4];
            let n = fw.min(sw.saturating_sub(left)) as usize * 4;
            for y in 0..fh.min(sh.saturating_sub(top)) as usize {
                if n == 0 {
                    break; // the frame lies right of the screen
                }
                let s = y * fw as usize * 4;
                let dst = ((top as usize + y) * sw as usize + left as usize) * 4;
                canvas[dst..dst + n].copy_from_slice(&pixels[s..s + n]);
            }
            Image::new(sw, sh, 4, canvas)?
        }
        OutFormat::Webp => {
            let mut dec = image_webp::WebPDecoder::new(Cursor::new(d)).map_err(|e| format!("corrupt WebP: {e}"))?;
            dec.set_memory_limit(usize::try_from(limits.max_pixels.saturating_mul(8)).unwrap_or(usize::MAX));
            let (w, h) = dec.dimensions();
            let ch = if dec.has_alpha() { 4 } else { 3 };
            let size = dec.output_buffer_size().ok_or("WebP too large")?;
            let mut buf = vec![0u8; size];
            dec.read_image(&mut buf).map_err(|e| format!("corrupt WebP: {e}"))?;
            Image::new(w, h, ch, buf)?
        }
        OutFormat::Bmp => bmp::decode(d)?,
    };
    Ok(img.drop_opaque_alpha())
}

/// The DCT scale, in eighths, at which a JPEG of `w`×`h` is decoded when at
/// least `min` (stored orientation) is wanted: the smallest of 1, 2 and 4
/// that gives it, else 8 (full size).
pub fn jpeg_scale(w: u32, h: u32, min: Option<(u32, u32)>) -> u32 {
    let Some((mw, mh)) = min else { return 8 };
    [1u32, 2, 4].into_iter().find(|&e| scaled(w, e) >= mw && scaled(h, e) >= mh).unwrap_or(8)
}

/// `len` pixels scaled by `eighths`/8, rounded up.
pub fn scaled(len: u32, eighths: u32) -> u32 {
    (len * eighths).div_ceil(8)
}

fn decode_jpeg(d: &[u8], header: &Header, min: Option<(u32, u32)>) -> OpResult<Image> {
    let (w, h) = (header.width, header.height);
    let e = jpeg_scale(w, h, min);
    // Baseline JPEGs at 1/8 or 1/4 take the fast path.
    if e <= 2
        && let Some(img) = crate::jpeg_dc::decode(d, e as usize)
    {
        return Ok(img);
    }
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(d));
    dec.read_info().map_err(|e| format!("corrupt JPEG: {e}"))?;
    if e < 8 {
        dec.scale(scaled(w, e).min(65535) as u16, scaled(h, e).min(65535) as u16)
            .map_err(|e| format!("corrupt JPEG: {e}"))?;
    }
    let pixels = dec.decode().map_err(|e| format!("corrupt JPEG: {e}"))?;
    let info = dec.info().ok_or("corrupt JPEG: no frame")?;
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let n = w as usize * h as usize;
    use jpeg_decoder::PixelFormat as P;
    match info.pixel_format {
        P::L8 => Image::new(w, h, 1, pixels),
        P::RGB24 => Image::new(w, h, 3, pixels),
        P::L16 => {
            if pixels.len() != n * 2 {
                return Err("corrupt JPEG: short 16-bit image".into());
            }
            let samples: Vec<u16> = pixels.chunks_exact(2).map(|c| u16::from_ne_bytes([c[0], c[1]])).collect();
            let bits = 16 - samples.iter().copied().max().unwrap_or(0).leading_zeros();
            let shift = bits.saturating_sub(8);
            Image::new(w, h, 1, samples.iter().map(|&v| (v >> shift) as u8).collect())
        }
        P::CMYK32 => {
            if pixels.len() != n * 4 {
                return Err("corrupt JPEG: short CMYK image".into());
            }
            let rgb = pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = 255 - u32::from(p[3]);
                    [p[0], p[1], p[2]].map(|c| ((255 - u32::from(c)) * k / 255) as u8)
                })
                .collect();
            Image::new(w, h, 3, rgb)
        }
    }
}

/// Encode `img` as `format`. `quality` (1..=100) applies to JPEG and WebP.
pub fn encode(img: &Image, format: OutFormat, quality: u8) -> OpResult<Vec<u8>> {
    let mut buf = Vec::new();
    match format {
        OutFormat::Jpeg => {
            if img.w > 65_535 || img.h > 65_535 {
                return Err(format!("JPEG cannot store a {}x{} image (at most 65535 px per side)", img.w, img.h));
            }
            let flat;
            let img = if img.has_alpha() {
                flat = img.clone().flatten([255, 255, 255]);
                &flat
            } else {
                img
            };
            let color = if img.ch == 1 { jpeg_encoder::ColorType::Luma } else { jpeg_encoder::ColorType::Rgb };
            let mut enc = jpeg_encoder::Encoder::new(&mut buf, quality.clamp(1, 100));
            enc.set_optimized_huffman_tables(true);
            enc.encode(&img.data, img.w as u16, img.h as u16, color)
                .map_err(|e| format!("JPEG encoding failed: {e}"))?;
        }
        OutFormat::Png => {
            let mut enc = png::Encoder::new(&mut buf, img.w, img.h);
            enc.set_color(match img.ch {
                1 => png::ColorType::Grayscale,
                2 => png::ColorType::GrayscaleAlpha,
                3 => png::ColorType::Rgb,
                _ => png::ColorType::Rgba,
            });
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().map_err(|e| format!("PNG encoding failed: {e}"))?;
            writer.write_image_data(&img.data).map_err(|e| format!("PNG encoding failed: {e}"))?;
            writer.finish().map_err(|e| format!("PNG encoding failed: {e}"))?;
        }
        OutFormat::Webp => buf = crate::webp::encode(img, quality)?,
        OutFormat::Gif => {
            if img.w > 65_535 || img.h > 65_535 {
                return Err(format!("GIF cannot store a {}x{} image (at most 65535 px per side)", img.w, img.h));
            }
            let (w, h) = (img.w as u16, img.h as u16);
            let mut rgba = img.to_rgba();
            let frame = gif::Frame::from_rgba_speed(w, h, &mut rgba, 10);
            let mut enc = gif::Encoder::new(&mut buf, w, h, &[]).map_err(|e| format!("GIF encoding failed: {e}"))?;
            enc.write_frame(&frame).map_err(|e| format!("GIF encoding failed: {e}"))?;
        }
        OutFormat::Bmp => bmp::encode(img, &mut buf).map_err(|e| format!("BMP encoding failed: {e}"))?,
    }
    Ok(buf)
}
