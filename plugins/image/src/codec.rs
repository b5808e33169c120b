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
            let info = dec.read_header_info().map_err(|e| format!("corrupt PNG: {}", png_error(&e)))?;
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

/// The file repaired where a mature decoder tolerates what this one's codec
/// refuses, or `None` when it needs nothing: see [`repair_jpeg`] and
/// [`gif_default_palette`].
pub fn repair(d: &[u8], format: OutFormat) -> Option<Vec<u8>> {
    match format {
        OutFormat::Jpeg => repair_jpeg(d),
        OutFormat::Gif => gif_default_palette(d),
        OutFormat::Png => png_low_depth_trns(d),
        _ => None,
    }
}

/// A grey PNG of 1, 2 or 4 bits whose tRNS value has bits above the sample
/// depth (Pillow writes 255 for white in a 1-bit image) gets the value masked
/// to the depth, as libpng does: the PNG decoder compares the whole value and
/// would find no transparent pixel.
pub fn png_low_depth_trns(d: &[u8]) -> Option<Vec<u8>> {
    // IHDR is the first chunk: bit depth at 24, colour type at 25.
    let (depth, color) = (*d.get(24)?, *d.get(25)?);
    if color != 0 || !matches!(depth, 1 | 2 | 4) {
        return None;
    }
    let mut pos = 8;
    while let Some(head) = d.get(pos..pos + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        if kind == b"IDAT" || kind == b"IEND" {
            return None;
        }
        if kind == b"tRNS" && len == 2 {
            let value = u16::from_be_bytes([*d.get(pos + 8)?, *d.get(pos + 9)?]);
            let masked = value & ((1 << depth) - 1);
            if masked == value {
                return None;
            }
            let mut out = d.to_vec();
            out[pos + 8..pos + 10].copy_from_slice(&masked.to_be_bytes());
            let crc = crc32(&out[pos + 4..pos + 10]);
            out.get_mut(pos + 10..pos + 14)?.copy_from_slice(&crc.to_be_bytes());
            return Some(out);
        }
        pos = pos.checked_add(12 + len)?;
    }
    None
}

/// CRC-32 of a PNG chunk (ISO 3309), bit by bit: used on a few bytes only.
pub(crate) fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A GIF with neither a global colour table nor, for its frames, local ones
/// is given a global table of 256 greys, entry `i` = (i, i, i): the GIF
/// specification leaves the colours to the decoder, and this is what Pillow
/// shows (a greyscale image whose grey level is the colour index). Frames
/// with a local colour table keep it.
pub fn gif_default_palette(d: &[u8]) -> Option<Vec<u8>> {
    let flags = *d.get(10)?;
    if flags & 0x80 != 0 || d.len() < 13 {
        return None;
    }
    let mut out = Vec::with_capacity(d.len() + 768);
    out.extend_from_slice(&d[..13]);
    out[10] = flags | 0x87; // a global table of 2^(7+1) entries
    out.extend((0..=255u8).flat_map(|i| [i, i, i]));
    out.extend_from_slice(&d[13..]);
    Some(out)
}

/// A PNG decoding error in plain words: the `png` crate prints some of its
/// errors with Rust debug text (`ChunkType { type: IDAT, critical: true, … }`,
/// `Corrupt deflate stream. InvalidDistanceCode`).
pub fn png_error(e: &png::DecodingError) -> String {
    let text = match e {
        png::DecodingError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            return "the file ends before the image does (truncated)".into();
        }
        png::DecodingError::LimitsExceeded => return "the image needs more memory than the decoder may use".into(),
        other => other.to_string(),
    };
    // `ChunkType { type: IDAT, critical: true, private: false, … }` → `IDAT`.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("ChunkType {") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let end = after.find('}').map_or(after.len(), |i| i + 1);
        let name = after
            .split_once("type: ")
            .and_then(|(_, t)| t.split([',', ' ', '}']).next())
            .filter(|n| !n.is_empty())
            .unwrap_or("?");
        out.push('`');
        out.push_str(name);
        out.push('`');
        rest = &after[end..];
    }
    out.push_str(rest);
    // Debug names of enums (`InvalidDistanceCode`, `GrayscaleAlpha`, `Sixteen`) → words.
    let words: Vec<String> = out
        .split(' ')
        .map(|w| {
            let core = w.trim_end_matches(['.', ',', ':', ')']);
            let tail = &w[core.len()..];
            let named = match core {
                "Grayscale" => Some("greyscale".to_string()),
                "GrayscaleAlpha" => Some("greyscale with alpha".into()),
                "Rgb" => Some("RGB".into()),
                "Rgba" => Some("RGBA".into()),
                "Indexed" => Some("palette".into()),
                _ => None,
            };
            if let Some(n) = named {
                return format!("{n}{tail}");
            }
            let camel = core.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && core.chars().skip(1).any(|c| c.is_ascii_uppercase())
                && core.chars().any(|c| c.is_ascii_lowercase())
                && core.chars().all(|c| c.is_ascii_alphanumeric());
            if !camel {
                return w.to_string();
            }
            let mut spaced = String::new();
            for (i, c) in core.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    spaced.push(' ');
                }
                spaced.push(c.to_ascii_lowercase());
            }
            format!("{spaced}{tail}")
        })
        .collect();
    let mut out = words.join(" ");
    out = out.replace("Corrupt deflate stream. ", "corrupt compressed image data: ");
    let out = out.trim_end_matches('.');
    let mut chars = out.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => "unknown error".into(),
    }
}

/// A JPEG rewritten the way libjpeg tolerates two kinds of damage it
/// decodes with only a warning, or `None` when there is nothing to repair:
///
/// - stray bytes between marker segments (libjpeg: "extraneous bytes before
///   marker") are dropped;
/// - a restart interval (DRI) declared for a scan that holds no restart
///   markers at all is set to 0 for that scan, so that the whole scan is
///   decoded. (libjpeg looks for the first restart marker, does not find it,
///   skips to the end of the scan and leaves the rest of the image grey;
///   decoding the entropy data that is there gives the picture instead.)
///
/// Anything it does not understand is copied as it is, for the decoder to judge.
pub fn repair_jpeg(d: &[u8]) -> Option<Vec<u8>> {
    // A first pass only looks, so that a sound file is not copied.
    if !walk_jpeg(d, &mut None)? {
        return None;
    }
    let mut out = Vec::with_capacity(d.len() + 16);
    walk_jpeg(d, &mut Some(&mut out))?;
    Some(out)
}

/// Walk the segments of a JPEG, writing the repaired file to `out` if given;
/// whether anything needs repair.
fn walk_jpeg(d: &[u8], out: &mut Option<&mut Vec<u8>>) -> Option<bool> {
    let mut emit = |bytes: &[u8]| {
        if let Some(out) = out.as_deref_mut() {
            out.extend_from_slice(bytes);
        }
    };
    emit(d.get(..2)?);
    let mut changed = false;
    let mut pos = 2;
    // The interval the file declares, and the one the copy declares so far.
    let (mut declared, mut written) = (0u16, 0u16);
    while pos < d.len() {
        if d[pos] != 0xff || d.get(pos + 1) == Some(&0x00) {
            // Stray bytes (or a stuffed zero) between segments.
            let skip = d[pos + 1..].iter().position(|&b| b == 0xff).map_or(d.len() - pos, |i| i + 1);
            let skip = if d[pos] == 0xff { skip.max(2) } else { skip };
            pos += skip;
            changed = true;
            continue;
        }
        let mut m = pos + 1;
        while d.get(m) == Some(&0xff) {
            m += 1;
        }
        let Some(&marker) = d.get(m) else { break };
        if marker == 0x00 {
            pos = m + 1;
            changed = true;
            continue;
        }
        match marker {
            0xd9 => {
                emit(&d[pos..]);
                return Some(changed);
            }
            0x01 | 0xd0..=0xd8 => {
                emit(&d[pos..m + 1]);
                pos = m + 1;
                continue;
            }
            _ => {}
        }
        let len = match d.get(m + 1..m + 3) {
            Some(b) => usize::from(u16::from_be_bytes([b[0], b[1]])),
            None => break,
        };
        let end = (m + 1 + len).min(d.len());
        if marker == 0xdd && len >= 4 && end >= m + 5 {
            declared = u16::from_be_bytes([d[m + 3], d[m + 4]]);
            written = declared;
            emit(&d[pos..end]);
            pos = end;
            continue;
        }
        if marker != 0xda {
            emit(&d[pos..end]);
            pos = end;
            continue;
        }
        // A scan: its header, then entropy-coded data up to the next marker
        // that is not a restart marker.
        let mut data_end = end;
        let mut restarts = false;
        while data_end < d.len() {
            match memchr_ff(&d[data_end..]) {
                None => data_end = d.len(),
                Some(i) => {
                    let at = data_end + i;
                    match d.get(at + 1) {
                        Some(0x00 | 0xff) => data_end = at + 1,
                        Some(0xd0..=0xd7) => {
                            restarts = true;
                            data_end = at + 2;
                        }
                        _ => {
                            data_end = at;
                            break;
                        }
                    }
                }
            }
        }
        let wanted = if declared > 0 && !restarts { 0 } else { declared };
        if wanted != written {
            emit(&[0xff, 0xdd, 0, 4]);
            emit(&wanted.to_be_bytes());
            written = wanted;
            changed = true;
        }
        emit(&d[pos..data_end]);
        pos = data_end;
    }
    // Truncated: copy what is left for the decoder to judge.
    emit(&d[pos.min(d.len())..]);
    Some(changed)
}

fn memchr_ff(d: &[u8]) -> Option<usize> {
    d.iter().position(|&b| b == 0xff)
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
            let mut reader = dec.read_info().map_err(|e| format!("corrupt PNG: {}", png_error(&e)))?;
            let size = reader.output_buffer_size().ok_or("PNG too large")?;
            let mut buf = vec![0u8; size];
            let frame = reader.next_frame(&mut buf).map_err(|e| format!("corrupt PNG: {}", png_error(&e)))?;
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
