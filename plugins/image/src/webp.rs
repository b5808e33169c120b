//! Lossy WebP output: a VP8 key frame at a quality, with the alpha channel,
//! if any, stored losslessly beside it (an `ALPH` chunk), as libwebp does.
//!
//! The VP8 frame is made by `vaam-image-webp` (image-webp's lossy encoder,
//! which upstream has not released). Its RGB to YUV conversion takes pixels
//! in pairs and leaves the last column and row of an odd-sized image black,
//! so the image is first extended to whole 16x16 macroblocks by repeating its
//! edge pixels, and the frame header then gets the true size back: a VP8
//! decoder sizes its macroblock grid from the header and crops the decoded
//! grid to it, so the extension is never shown. The container is written
//! here, since the alpha plane must be coded at the true size; it is coded
//! with image-webp's lossless encoder.

use crate::ops::{Image, OpResult};

/// Largest side of a VP8 frame (14 bits).
pub const MAX_SIDE: u32 = 16_383;

/// Encode `img` as a lossy WebP at `quality` (1-100, libwebp's scale).
pub fn encode(img: &Image, quality: u8) -> OpResult<Vec<u8>> {
    let (w, h) = (img.w, img.h);
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(format!("lossy WebP cannot store a {w}x{h} image (at most {MAX_SIDE} px per side)"));
    }
    let mut frame = vp8_frame(img, quality)?;
    set_frame_size(&mut frame, w, h)?;
    let alpha = if img.has_alpha() { Some(alpha_chunk(img)?) } else { None };
    Ok(container(&frame, alpha.as_deref(), w, h))
}

/// The VP8 frame of the colour channels, coded at the macroblock-aligned size.
fn vp8_frame(img: &Image, quality: u8) -> OpResult<Vec<u8>> {
    let (pw, ph) = (aligned(img.w), aligned(img.h));
    let rgb = padded_rgb(img, pw, ph);
    let mut riff = Vec::new();
    let mut enc = webp_lossy::WebPEncoder::new(&mut riff);
    let mut params = webp_lossy::EncoderParams::default();
    params.use_lossy = true;
    params.lossy_quality = quality.clamp(1, 100);
    enc.set_params(params);
    enc.encode(&rgb, pw, ph, webp_lossy::ColorType::Rgb8).map_err(|e| format!("WebP encoding failed: {e}"))?;
    chunk(&riff, b"VP8 ")
        .map(<[u8]>::to_vec)
        .ok_or_else(|| "WebP encoding failed: no VP8 frame in the encoder's output".into())
}

/// `len` rounded up to whole macroblocks, at most 16384 (whose 14-bit field
/// is rewritten with the true size anyway).
fn aligned(len: u32) -> u32 {
    len.div_ceil(16).saturating_mul(16).min(MAX_SIDE + 1)
}

/// The colour channels as RGB on a `pw`×`ph` canvas, the edges repeated.
fn padded_rgb(img: &Image, pw: u32, ph: u32) -> Vec<u8> {
    let (w, h, ch) = (img.w as usize, img.h as usize, img.ch as usize);
    let (pw, ph) = (pw as usize, ph as usize);
    let mut out = Vec::with_capacity(pw * ph * 3);
    for y in 0..h {
        let row = &img.data[y * w * ch..(y + 1) * w * ch];
        for p in row.chunks_exact(ch) {
            match ch {
                1 | 2 => out.extend_from_slice(&[p[0]; 3]),
                _ => out.extend_from_slice(&p[..3]),
            }
        }
        let last: [u8; 3] = out[out.len() - 3..].try_into().unwrap_or_default();
        for _ in w..pw {
            out.extend_from_slice(&last);
        }
    }
    let row = pw * 3;
    for _ in h..ph {
        out.extend_from_within(out.len() - row..);
    }
    out
}

/// Write the true size into a VP8 key frame's header (scale bits zero).
fn set_frame_size(frame: &mut [u8], w: u32, h: u32) -> OpResult<()> {
    // Frame tag (3 bytes, key frame: bit 0 clear), start code, width, height.
    match frame.get(..10) {
        Some(head) if head[0] & 1 == 0 && head[3..6] == [0x9d, 0x01, 0x2a] => {}
        _ => return Err("WebP encoding failed: the encoder's frame has no key frame header".into()),
    }
    frame[6..8].copy_from_slice(&(w as u16).to_le_bytes());
    frame[8..10].copy_from_slice(&(h as u16).to_le_bytes());
    Ok(())
}

/// The `ALPH` chunk's payload: the alpha plane as a lossless image stream
/// (the VP8L bitstream without its 5-byte header: the size is the canvas').
fn alpha_chunk(img: &Image) -> OpResult<Vec<u8>> {
    let ch = img.ch as usize;
    let plane: Vec<u8> = img.data.chunks_exact(ch).map(|p| p[ch - 1]).collect();
    let mut riff = Vec::new();
    image_webp::WebPEncoder::new(&mut riff)
        .encode(&plane, img.w, img.h, image_webp::ColorType::L8)
        .map_err(|e| format!("WebP alpha encoding failed: {e}"))?;
    let vp8l = chunk(&riff, b"VP8L")
        .filter(|d| d.len() > 5 && d[0] == 0x2f)
        .ok_or("WebP alpha encoding failed: no VP8L stream")?;
    // Header byte: no pre-processing, no filtering, compression 1 (lossless).
    let mut alph = Vec::with_capacity(vp8l.len() - 4);
    alph.push(1);
    alph.extend_from_slice(&vp8l[5..]);
    Ok(alph)
}

/// The payload of the first chunk `fourcc` of a RIFF WebP file.
fn chunk<'a>(riff: &'a [u8], fourcc: &[u8; 4]) -> Option<&'a [u8]> {
    if riff.get(..4)? != b"RIFF" || riff.get(8..12)? != b"WEBP" {
        return None;
    }
    let mut at = 12;
    while let Some(head) = riff.get(at..at + 8) {
        let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let data = riff.get(at + 8..at + 8 + len)?;
        if &head[..4] == fourcc {
            return Some(data);
        }
        at += 8 + len + len % 2;
    }
    None
}

/// A still WebP file: the simple format, or the extended one (`VP8X`) when
/// there is an alpha chunk.
fn container(frame: &[u8], alpha: Option<&[u8]>, w: u32, h: u32) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, fourcc: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(fourcc);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        if data.len() % 2 == 1 {
            out.push(0);
        }
    }
    let mut body = Vec::with_capacity(frame.len() + alpha.map_or(0, <[u8]>::len) + 48);
    body.extend_from_slice(b"WEBP");
    if let Some(alpha) = alpha {
        let mut vp8x = vec![0x10, 0, 0, 0]; // flags: alpha
        vp8x.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
        put(&mut body, b"VP8X", &vp8x);
        put(&mut body, b"ALPH", alpha);
    }
    put(&mut body, b"VP8 ", frame);
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Decode a WebP file with image-webp's decoder (for the tests, and to read
/// the frame of our own output back).
#[cfg(test)]
pub fn decode(bytes: &[u8]) -> Image {
    let mut dec = image_webp::WebPDecoder::new(std::io::Cursor::new(bytes)).expect("a WebP header");
    let (w, h) = dec.dimensions();
    let ch = if dec.has_alpha() { 4 } else { 3 };
    let mut buf = vec![0; dec.output_buffer_size().expect("a size")];
    dec.read_image(&mut buf).expect("a decodable WebP");
    Image::new(w, h, ch, buf).expect("the decoded size")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A smooth RGB image: gradients and a slow wave, no edges.
    fn smooth(w: u32, h: u32) -> Image {
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32 / w as f32, y as f32 / h as f32);
                data.extend_from_slice(&[
                    (128.0 + 100.0 * (fx * 6.0).sin() * (fy * 3.0).cos()) as u8,
                    (255.0 * fx * fy) as u8,
                    (60.0 + 120.0 * ((fx + fy) * 4.0).cos().abs()) as u8,
                ]);
            }
        }
        Image::new(w, h, 3, data).unwrap()
    }

    /// PSNR of the colour channels, in dB.
    fn psnr(a: &Image, b: &Image) -> f64 {
        assert_eq!((a.w, a.h), (b.w, b.h));
        let (ca, cb) = (a.ch as usize, b.ch as usize);
        let (mut sum, mut n) = (0f64, 0f64);
        for (p, q) in a.data.chunks_exact(ca).zip(b.data.chunks_exact(cb)) {
            for c in 0..3 {
                let d = f64::from(p[c.min(ca - 1)]) - f64::from(q[c.min(cb - 1)]);
                sum += d * d;
                n += 1.0;
            }
        }
        if sum == 0.0 { 99.0 } else { 10.0 * (255.0 * 255.0 / (sum / n)).log10() }
    }

    #[test]
    fn lossy_at_the_quality_asked_and_close_to_the_source() {
        // Odd sizes, not whole macroblocks: the edges must survive.
        // Measured: q10 630 B 25.5 dB, q30 686 B 29.2 dB, q50 874 B 31.7 dB,
        // q80 1344 B 37.3 dB, q95 2516 B 42.6 dB (libwebp decodes the same).
        let src = smooth(301, 203);
        let (mut last_size, mut last_db) = (0, 0.0);
        for (q, min_db) in [(10, 24.0), (30, 28.0), (50, 30.0), (80, 35.0), (95, 40.0)] {
            let bytes = encode(&src, q).unwrap();
            assert_eq!(&bytes[12..16], b"VP8 ", "q{q}: a lossy frame");
            let out = decode(&bytes);
            assert_eq!((out.w, out.h, out.ch), (301, 203, 3));
            let db = psnr(&src, &out);
            assert!(db > min_db && db > last_db, "q{q}: PSNR {db:.1} dB");
            assert!(
                bytes.len() > last_size,
                "q{q}: {} bytes, not more than at the quality below ({last_size})",
                bytes.len()
            );
            (last_size, last_db) = (bytes.len(), db);
        }
        // Far smaller than lossless.
        let mut lossless = Vec::new();
        image_webp::WebPEncoder::new(&mut lossless).encode(&src.data, 301, 203, image_webp::ColorType::Rgb8).unwrap();
        assert!(encode(&src, 80).unwrap().len() * 4 < lossless.len());
        // The last column and row are as good as the rest.
        let out = decode(&encode(&src, 80).unwrap());
        for (x, y) in [(300, 0), (300, 202), (0, 202), (150, 202), (300, 100)] {
            let i = ((y * 301 + x) * 3) as usize;
            for c in 0..3 {
                let d = (i32::from(src.data[i + c]) - i32::from(out.data[i + c])).abs();
                assert!(d <= 12, "pixel ({x}, {y}) channel {c}: {} vs {}", src.data[i + c], out.data[i + c]);
            }
        }
    }

    #[test]
    fn alpha_is_kept_exactly_beside_the_lossy_colour() {
        let (w, h) = (37, 21);
        let mut data = Vec::new();
        for y in 0..h {
            for x in 0..w {
                data.extend_from_slice(&[200, (x * 6) as u8, (y * 10) as u8, ((x * 7 + y * 3) % 256) as u8]);
            }
        }
        let src = Image::new(w, h, 4, data).unwrap();
        let bytes = encode(&src, 75).unwrap();
        assert_eq!(&bytes[12..16], b"VP8X");
        let out = decode(&bytes);
        assert_eq!((out.w, out.h, out.ch), (w, h, 4));
        let alpha = |img: &Image| img.data.chunks_exact(4).map(|p| p[3]).collect::<Vec<_>>();
        assert_eq!(alpha(&out), alpha(&src), "alpha is lossless");
        assert!(psnr(&src, &out) > 30.0);
        // Grey, and grey with alpha.
        let grey = Image::new(20, 9, 1, (0..180).map(|i| (i * 7 % 256) as u8).collect()).unwrap();
        assert_eq!(decode(&encode(&grey, 90).unwrap()).ch, 3);
        let grey_alpha =
            Image::new(3, 3, 2, vec![10, 255, 20, 0, 30, 128, 40, 255, 50, 255, 60, 255, 70, 1, 80, 255, 90, 255])
                .unwrap();
        let out = decode(&encode(&grey_alpha, 90).unwrap());
        assert_eq!(
            out.data.chunks_exact(4).map(|p| p[3]).collect::<Vec<_>>(),
            vec![255, 0, 128, 255, 255, 255, 1, 255, 255]
        );
    }

    #[test]
    fn every_small_size_decodes_at_its_size() {
        for (w, h) in [(1, 1), (1, 17), (16, 16), (17, 1), (15, 33), (33, 15), (64, 3)] {
            let data = (0..w * h).flat_map(|i| [(i % w * 3) as u8, (i / w * 5) as u8, 100]).collect();
            let src = Image::new(w, h, 3, data).unwrap();
            let out = decode(&encode(&src, 60).unwrap());
            assert_eq!((out.w, out.h), (w, h));
            assert!(psnr(&src, &out) > 26.0, "{w}x{h}: {:.1} dB", psnr(&src, &out));
        }
        assert!(encode(&smooth(16_384, 1), 80).unwrap_err().contains("16383"));
    }
}
