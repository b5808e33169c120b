//! BMP: a decoder for the common variants (1, 4, 8, 16, 24 and 32 bits per
//! pixel; uncompressed, RLE4, RLE8 and bit fields; all header versions) and a
//! 24-bit / 32-bit encoder.

use std::io::{self, Write};

use crate::ops::{Image, OpResult};

fn u16_at(d: &[u8], at: usize) -> OpResult<u16> {
    d.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).ok_or_else(|| "truncated BMP header".to_string())
}

fn u32_at(d: &[u8], at: usize) -> OpResult<u32> {
    d.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| "truncated BMP header".to_string())
}

pub struct Header {
    pub width: u32,
    pub height: u32,
    top_down: bool,
    bpp: u16,
    compression: u32,
    data_offset: usize,
    palette_offset: usize,
    palette_entry: usize,
    colors: usize,
    masks: Option<[u32; 4]>,
}

pub fn header(d: &[u8]) -> OpResult<Header> {
    if !d.starts_with(b"BM") {
        return Err("not a BMP (no `BM` signature)".into());
    }
    let data_offset = u32_at(d, 10)? as usize;
    let dib = u32_at(d, 14)? as usize;
    let (width, height, bpp, compression, colors_used, palette_entry) = match dib {
        12 => (i64::from(u16_at(d, 18)?), i64::from(u16_at(d, 20)?), u16_at(d, 24)?, 0, 0, 3),
        40 | 52 | 56 | 64 | 108 | 124 => {
            let w = i64::from(u32_at(d, 18)? as i32);
            let h = i64::from(u32_at(d, 22)? as i32);
            (w, h, u16_at(d, 28)?, u32_at(d, 30)?, u32_at(d, 46)? as usize, 4)
        }
        other => return Err(format!("unsupported BMP header size {other}")),
    };
    if width <= 0 || height == 0 || height == i64::from(i32::MIN) {
        return Err(format!("invalid BMP dimensions {width}x{height}"));
    }
    let masks = match compression {
        3 | 6 => {
            // Masks follow a 40-byte header, or are part of the larger headers.
            let at = 14 + 40;
            let alpha = if compression == 6 || dib >= 56 { u32_at(d, at + 12)? } else { 0 };
            Some([u32_at(d, at)?, u32_at(d, at + 4)?, u32_at(d, at + 8)?, alpha])
        }
        _ => None,
    };
    let extra_masks = match (dib, compression) {
        (40, 3) => 12,
        (40, 6) => 16,
        _ => 0,
    };
    let colors = if bpp <= 8 {
        let max = 1usize << bpp;
        if colors_used == 0 || colors_used > max { max } else { colors_used }
    } else {
        0
    };
    Ok(Header {
        width: width as u32,
        height: height.unsigned_abs() as u32,
        top_down: height < 0,
        bpp,
        compression,
        data_offset,
        palette_offset: 14 + dib + extra_masks,
        palette_entry,
        colors,
        masks,
    })
}

fn channel(px: u32, mask: u32) -> Option<u8> {
    if mask == 0 {
        return None;
    }
    let shift = mask.trailing_zeros();
    let bits = (mask >> shift).trailing_ones();
    let v = (px & mask) >> shift;
    let max = if bits >= 32 { u32::MAX } else { (1u32 << bits) - 1 };
    Some(((u64::from(v) * 255 + u64::from(max) / 2) / u64::from(max)) as u8)
}

pub fn decode(d: &[u8]) -> OpResult<Image> {
    let hd = header(d)?;
    let (w, h) = (hd.width as usize, hd.height as usize);
    let mut palette = vec![[0u8; 3]; 256];
    for (i, entry) in palette.iter_mut().enumerate().take(hd.colors) {
        let at = hd.palette_offset + i * hd.palette_entry;
        if let Some(b) = d.get(at..at + 3) {
            *entry = [b[2], b[1], b[0]];
        }
    }
    let pixels = d.get(hd.data_offset..).ok_or("BMP pixel data offset is past the end of the file")?;
    match (hd.compression, hd.bpp) {
        (1, 8) | (2, 4) => return Ok(rle(pixels, &hd, &palette)),
        (0, 1 | 2 | 4 | 8 | 16 | 24 | 32) | (3 | 6, 16 | 32) => {}
        (c, b) => return Err(format!("unsupported BMP variant (compression {c}, {b} bits per pixel)")),
    }
    let stride = (hd.bpp as usize * w).div_ceil(32) * 4;
    let needed = stride.checked_mul(h).ok_or("BMP too large")?;
    // Some writers omit the padding of the last row; anything shorter is truncated.
    if pixels.len() + (stride - (hd.bpp as usize * w).div_ceil(8)) < needed {
        return Err(format!("truncated BMP pixel data ({} of {needed} bytes)", pixels.len()));
    }
    let masks = hd.masks.unwrap_or(if hd.bpp == 16 {
        [0x7c00, 0x03e0, 0x001f, 0]
    } else {
        [0x00ff_0000, 0x0000_ff00, 0x0000_00ff, 0]
    });
    let alpha = masks[3] != 0;
    let ch = if alpha { 4 } else { 3 };
    let mut out = vec![0u8; w * h * ch];
    for row in 0..h {
        let src_row = if hd.top_down { row } else { h - 1 - row };
        let line = &pixels[src_row * stride..];
        let dst = &mut out[row * w * ch..(row + 1) * w * ch];
        for x in 0..w {
            let px = &mut dst[x * ch..x * ch + ch];
            match hd.bpp {
                1 | 2 | 4 | 8 => {
                    let bits = hd.bpp as usize;
                    let byte = line.get(x * bits / 8).copied().unwrap_or(0);
                    let shift = 8 - bits - (x * bits % 8);
                    let idx = (byte >> shift) as usize & ((1 << bits) - 1);
                    px[..3].copy_from_slice(&palette[idx]);
                }
                24 => {
                    let b = line.get(x * 3..x * 3 + 3).unwrap_or(&[0, 0, 0]);
                    px[..3].copy_from_slice(&[b[2], b[1], b[0]]);
                }
                16 | 32 => {
                    let n = hd.bpp as usize / 8;
                    let mut v = [0u8; 4];
                    if let Some(b) = line.get(x * n..x * n + n) {
                        v[..n].copy_from_slice(b);
                    }
                    let v = u32::from_le_bytes(v);
                    px[0] = channel(v, masks[0]).unwrap_or(0);
                    px[1] = channel(v, masks[1]).unwrap_or(0);
                    px[2] = channel(v, masks[2]).unwrap_or(0);
                    if alpha {
                        px[3] = channel(v, masks[3]).unwrap_or(255);
                    }
                }
                _ => {}
            }
        }
    }
    // An alpha mask with every pixel transparent is an unused alpha channel.
    if alpha && out.chunks_exact(4).all(|p| p[3] == 0) {
        out.chunks_exact_mut(4).for_each(|p| p[3] = 255);
    }
    Image::new(hd.width, hd.height, ch as u8, out)
}

/// RLE8 / RLE4. The format says bottom-up, but writers also store them
/// top-down (a negative height), which is honoured as for uncompressed BMPs.
fn rle(data: &[u8], hd: &Header, palette: &[[u8; 3]]) -> Image {
    let (w, h) = (hd.width as usize, hd.height as usize);
    let mut idx = vec![0u8; w * h];
    let (mut x, mut y) = (0usize, 0usize);
    let mut i = 0usize;
    let four = hd.bpp == 4;
    let top_down = hd.top_down;
    let mut put = |x: &mut usize, y: usize, v: u8| {
        if *x < w && y < h {
            let row = if top_down { y } else { h - 1 - y };
            idx[row * w + *x] = v;
        }
        *x += 1;
    };
    while i + 1 < data.len() && y < h {
        let (n, v) = (data[i] as usize, data[i + 1]);
        i += 2;
        if n > 0 {
            for k in 0..n {
                let c = if four { if k % 2 == 0 { v >> 4 } else { v & 15 } } else { v };
                put(&mut x, y, c);
            }
            continue;
        }
        match v {
            0 => {
                x = 0;
                y += 1;
            }
            1 => break,
            2 => {
                let (dx, dy) = (data.get(i).copied().unwrap_or(0), data.get(i + 1).copied().unwrap_or(0));
                i += 2;
                x += dx as usize;
                y += dy as usize;
            }
            count => {
                let count = count as usize;
                let bytes = if four { count.div_ceil(2) } else { count };
                for k in 0..count {
                    let b = data.get(i + if four { k / 2 } else { k }).copied().unwrap_or(0);
                    let c = if four { if k % 2 == 0 { b >> 4 } else { b & 15 } } else { b };
                    put(&mut x, y, c);
                }
                i += bytes + (bytes & 1);
            }
        }
    }
    let data = idx.iter().flat_map(|&c| palette[c as usize]).collect();
    Image { w: hd.width, h: hd.height, ch: 3, data }
}

/// Write a bottom-up BMP: 24-bit for opaque images, 32-bit with an alpha
/// mask (BITMAPV4HEADER) otherwise.
pub fn encode(img: &Image, out: &mut impl Write) -> io::Result<()> {
    let alpha = img.has_alpha();
    let (w, h) = (img.w as usize, img.h as usize);
    let bpp = if alpha { 32 } else { 24 };
    let stride = (bpp * w).div_ceil(32) * 4;
    let dib = if alpha { 108 } else { 40 };
    let offset = 14 + dib;
    let size = offset as u64 + stride as u64 * h as u64;
    let size = u32::try_from(size).map_err(|_| io::Error::other("image too large for BMP (over 4 GiB)"))?;
    let mut head = Vec::with_capacity(offset);
    head.extend_from_slice(b"BM");
    head.extend_from_slice(&size.to_le_bytes());
    head.extend_from_slice(&[0; 4]);
    head.extend_from_slice(&(offset as u32).to_le_bytes());
    head.extend_from_slice(&(dib as u32).to_le_bytes());
    head.extend_from_slice(&(w as i32).to_le_bytes());
    head.extend_from_slice(&(h as i32).to_le_bytes());
    head.extend_from_slice(&1u16.to_le_bytes());
    head.extend_from_slice(&(bpp as u16).to_le_bytes());
    head.extend_from_slice(&(if alpha { 3u32 } else { 0 }).to_le_bytes());
    head.extend_from_slice(&((stride * h) as u32).to_le_bytes());
    head.extend_from_slice(&2835u32.to_le_bytes()); // 72 dpi
    head.extend_from_slice(&2835u32.to_le_bytes());
    head.extend_from_slice(&[0; 8]);
    if alpha {
        for mask in [0x00ff_0000u32, 0x0000_ff00, 0x0000_00ff, 0xff00_0000] {
            head.extend_from_slice(&mask.to_le_bytes());
        }
        head.extend_from_slice(b"BGRs"); // LCS_sRGB, little-endian 'sRGB'
        head.extend_from_slice(&[0; 48]);
    }
    out.write_all(&head)?;
    let rgba;
    let rgb;
    let (src, ch): (&[u8], usize) = if alpha {
        rgba = img.to_rgba();
        (&rgba, 4)
    } else {
        rgb = img.to_rgb();
        (&rgb, 3)
    };
    let mut line = vec![0u8; stride];
    for y in (0..h).rev() {
        for x in 0..w {
            let p = &src[(y * w + x) * ch..(y * w + x + 1) * ch];
            let d = &mut line[x * ch..x * ch + ch];
            d[0] = p[2];
            d[1] = p[1];
            d[2] = p[0];
            if ch == 4 {
                d[3] = p[3];
            }
        }
        out.write_all(&line)?;
    }
    Ok(())
}
