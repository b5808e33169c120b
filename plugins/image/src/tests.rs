use kiln_plugin_sdk::serde_json::json;
use kiln_plugin_sdk::testing::{run, run_full};
use kiln_plugin_sdk::{ProcessError, Processor};

use crate::ImagePlugin;
use crate::codec;
use crate::ops::Image;
use crate::params::{Limits, OutFormat};

const RED: [u8; 3] = [220, 30, 30];
const GREEN: [u8; 3] = [30, 200, 40];
const BLUE: [u8; 3] = [30, 40, 210];
const WHITE: [u8; 3] = [250, 250, 250];

/// An RGB image whose quadrants are red (top left), green (top right), blue
/// (bottom left) and white (bottom right), with a little noise.
fn quadrants(w: u32, h: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 3) as usize);
    let mut seed: u32 = 99;
    for y in 0..h {
        for x in 0..w {
            let c = match (x < w / 2, y < h / 2) {
                (true, true) => RED,
                (false, true) => GREEN,
                (true, false) => BLUE,
                (false, false) => WHITE,
            };
            seed = seed.wrapping_mul(1103515245).wrapping_add(12345);
            let n = ((seed >> 16) % 5) as i16 - 2;
            v.extend(c.iter().map(|&c| (c as i16 + n).clamp(0, 255) as u8));
        }
    }
    v
}

fn jpeg(w: u32, h: u32, rgb: &[u8], quality: u8, exif: Option<&[u8]>) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut buf, quality);
    if let Some(exif) = exif {
        enc.add_exif_metadata(exif).unwrap();
    }
    enc.encode(rgb, w as u16, h as u16, jpeg_encoder::ColorType::Rgb).unwrap();
    buf
}

fn png(w: u32, h: u32, ch: u8, data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = png::Encoder::new(&mut buf, w, h);
    enc.set_color(match ch {
        1 => png::ColorType::Grayscale,
        2 => png::ColorType::GrayscaleAlpha,
        3 => png::ColorType::Rgb,
        _ => png::ColorType::Rgba,
    });
    enc.set_depth(png::BitDepth::Eight);
    let mut wr = enc.write_header().unwrap();
    wr.write_image_data(data).unwrap();
    wr.finish().unwrap();
    buf
}

fn encoded(w: u32, h: u32, format: OutFormat) -> Vec<u8> {
    let img = Image::new(w, h, 3, quadrants(w, h)).unwrap();
    codec::encode(&img, format, 95).unwrap()
}

/// Decode with the plugin's own pipeline pieces (third-party decoders but BMP).
fn decode(bytes: &[u8]) -> (OutFormat, Image) {
    let format = codec::detect(bytes).expect("known signature");
    let header = codec::probe(bytes, format).unwrap();
    (format, codec::decode(bytes, &header, None, &Limits::default()).unwrap())
}

fn rgb_at(img: &Image, x: u32, y: u32) -> [u8; 3] {
    let ch = img.ch as usize;
    let i = (y * img.w + x) as usize * ch;
    let p = &img.data[i..i + ch];
    match ch {
        1 | 2 => [p[0]; 3],
        _ => [p[0], p[1], p[2]],
    }
}

fn near(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter().zip(b).all(|(&a, b)| (a as i32 - b as i32).abs() <= tol)
}

#[track_caller]
fn assert_near(img: &Image, x: u32, y: u32, want: [u8; 3]) {
    let got = rgb_at(img, x, y);
    assert!(near(got, want, 24), "pixel ({x},{y}) of {img:?} is {got:?}, expected about {want:?}");
}

/// Process and decode the single output.
fn process(style: &str, input: &[u8]) -> (String, OutFormat, Image) {
    let out = run::<ImagePlugin>(style, input).unwrap_or_else(|e| panic!("{style}: {e}"));
    assert_eq!(out.len(), 1);
    let (format, img) = decode(&out[0].bytes);
    (out[0].extension.clone().unwrap(), format, img)
}

fn dims(style: &str, input: &[u8]) -> (u32, u32) {
    let (_, _, img) = process(style, input);
    (img.w, img.h)
}

#[test]
fn resize_modes_and_sizes() {
    let src = png(400, 300, 3, &quadrants(400, 300));
    for (style, want) in [
        ("resize,w_200", (200, 150)),
        ("resize,h_100", (133, 100)),
        ("resize,w_100,h_100", (100, 75)),
        ("resize,w_100,h_100,m_lfit", (100, 75)),
        ("resize,w_100,h_100,m_mfit", (133, 100)),
        ("resize,w_100,h_100,m_fill", (100, 100)),
        ("resize,w_100,h_100,m_pad", (100, 100)),
        ("resize,w_50,h_70,m_fixed", (50, 70)),
        ("resize,p_50", (200, 150)),
        ("resize,l_200", (200, 150)),
        ("resize,s_150", (200, 150)),
        ("resize,l_100,s_100", (100, 75)),
        ("resize,w_800", (400, 300)),
        ("resize,p_200", (400, 300)),
        ("resize,w_800,limit_0", (800, 600)),
        ("resize,p_150,limit_0", (600, 450)),
        ("resize,w_400", (400, 300)),
        ("resize,w_200/resize,h_50", (67, 50)),
    ] {
        assert_eq!(dims(style, &src), want, "{style}");
    }
    // Fill and pad at many sizes: the crop box never strays past the edge.
    for (sw, sh) in [(97u32, 61u32), (61, 97), (128, 128), (333, 7)] {
        let src = png(sw, sh, 3, &quadrants(sw, sh));
        for (w, h) in [(10u32, 10u32), (17, 3), (3, 17), (96, 60), (50, 1), (1, 50), (33, 33)] {
            for m in ["fill", "pad", "fixed", "mfit", "lfit"] {
                let style = format!("resize,w_{w},h_{h},m_{m},limit_0");
                let (_, _, img) = process(&style, &src);
                if matches!(m, "fill" | "pad" | "fixed") {
                    assert_eq!((img.w, img.h), (w, h), "{style} on {sw}x{sh}");
                }
            }
        }
    }
    // Long and short sides follow the orientation of the picture.
    let portrait = png(300, 400, 3, &quadrants(300, 400));
    assert_eq!(dims("resize,l_200", &portrait), (150, 200));
    assert_eq!(dims("resize,s_150", &portrait), (150, 200));
    // The content is scaled, not cropped: quadrant colours stay in place.
    let (_, _, img) = process("resize,w_100", &src);
    assert_near(&img, 10, 10, RED);
    assert_near(&img, 90, 10, GREEN);
    assert_near(&img, 10, 65, BLUE);
    assert_near(&img, 90, 65, WHITE);
}

#[test]
fn fill_crops_the_centre_and_pad_uses_the_colour() {
    // 400x100: fill to 100x100 keeps the middle (the border between red/green and blue/white).
    let src = png(400, 100, 3, &quadrants(400, 100));
    let (_, _, img) = process("resize,w_100,h_100,m_fill", &src);
    assert_eq!((img.w, img.h), (100, 100));
    assert_near(&img, 10, 10, RED);
    assert_near(&img, 90, 10, GREEN);
    assert_near(&img, 90, 90, WHITE);
    // Pad: 100x25 of picture centred on 100x100 of colour.
    let (_, _, img) = process("resize,w_100,h_100,m_pad,color_0000FF", &src);
    assert_eq!((img.w, img.h), (100, 100));
    assert_near(&img, 50, 5, [0, 0, 255]);
    assert_near(&img, 50, 95, [0, 0, 255]);
    assert_near(&img, 10, 40, RED);
    assert_near(&img, 90, 58, WHITE);
    // Pad defaults to white.
    let (_, _, img) = process("resize,w_100,h_100,m_pad", &src);
    assert_near(&img, 50, 2, [255, 255, 255]);
}

#[test]
fn crop_with_gravity_and_offsets() {
    let src = png(100, 80, 3, &quadrants(100, 80));
    let crop = |style: &str| process(style, &src).2;
    let img = crop("crop,w_50,h_40");
    assert_eq!((img.w, img.h), (50, 40));
    assert_near(&img, 25, 20, RED);
    let img = crop("crop,w_50,h_40,g_se");
    assert_near(&img, 25, 20, WHITE);
    let img = crop("crop,w_50,h_40,g_ne");
    assert_near(&img, 25, 20, GREEN);
    let img = crop("crop,w_50,h_40,g_sw");
    assert_near(&img, 25, 20, BLUE);
    let img = crop("crop,w_20,h_20,g_center");
    assert_eq!((img.w, img.h), (20, 20));
    assert_near(&img, 2, 2, RED);
    assert_near(&img, 17, 17, WHITE);
    // Offsets move inward from the gravity corner.
    let img = crop("crop,x_60,y_50,w_10,h_10");
    assert_near(&img, 5, 5, WHITE);
    let img = crop("crop,x_60,y_50,w_10,h_10,g_se");
    assert_near(&img, 5, 5, RED);
    // Without a size, the crop runs to the edge; a region partly outside is clipped.
    let img = crop("crop,x_30,y_20");
    assert_eq!((img.w, img.h), (70, 60));
    let img = crop("crop,x_90,y_0,w_50,h_10");
    assert_eq!((img.w, img.h), (10, 10));
    // A region wholly outside is refused, naming the problem.
    match run::<ImagePlugin>("crop,x_100,y_0,w_10,h_10", &src) {
        Err(ProcessError::UnsupportedInput(m)) => assert!(m.contains("outside the 100x80 image"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn rotate_quarter_turns_and_any_angle() {
    let src = png(100, 60, 3, &quadrants(100, 60));
    let (_, _, img) = process("rotate,90", &src);
    assert_eq!((img.w, img.h), (60, 100));
    assert_near(&img, 10, 10, BLUE); // the bottom-left corner comes to the top left
    assert_near(&img, 50, 10, RED);
    assert_near(&img, 10, 90, WHITE);
    let (_, _, img) = process("rotate,180", &src);
    assert_eq!((img.w, img.h), (100, 60));
    assert_near(&img, 10, 10, WHITE);
    let (_, _, img) = process("rotate,270", &src);
    assert_eq!((img.w, img.h), (60, 100));
    assert_near(&img, 10, 10, GREEN);
    assert_eq!(dims("rotate,0", &src), (100, 60));
    assert_eq!(dims("rotate,360", &src), (100, 60));
    // 45 degrees: a larger canvas, corners filled with white, the centre kept.
    let (_, _, img) = process("rotate,45", &src);
    let side = ((100.0 + 60.0) * std::f64::consts::FRAC_1_SQRT_2).round() as u32;
    assert_eq!((img.w, img.h), (side, side));
    assert_near(&img, 1, 1, [255, 255, 255]);
    assert_near(&img, side - 2, side - 2, [255, 255, 255]);
    // An image with alpha gets transparent corners.
    let mut rgba = Vec::new();
    for p in quadrants(40, 40).chunks(3) {
        rgba.extend_from_slice(&[p[0], p[1], p[2], 200]);
    }
    let (_, _, img) = process("rotate,30", &png(40, 40, 4, &rgba));
    assert_eq!(img.ch, 4);
    assert_eq!(img.data[3], 0, "corner is transparent");
}

/// EXIF (TIFF, little-endian) with just an orientation tag.
fn exif_orientation(o: u16) -> Vec<u8> {
    let mut t = b"II*\0\x08\0\0\0".to_vec();
    t.extend_from_slice(&1u16.to_le_bytes()); // one entry
    t.extend_from_slice(&0x0112u16.to_le_bytes());
    t.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&o.to_le_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    t
}

#[test]
fn auto_orient_applies_exif_orientation() {
    // Stored landscape, EXIF 6: displayed rotated 90 degrees clockwise.
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(exif_orientation(6));
    let src = jpeg(80, 40, &quadrants(80, 40), 95, Some(&exif_orientation(6)));
    assert_eq!(codec::probe(&src, OutFormat::Jpeg).unwrap().orientation, 6);
    let (ext, format, img) = process("", &src);
    assert_eq!((ext.as_str(), format), ("jpg", OutFormat::Jpeg));
    assert_eq!((img.w, img.h), (40, 80));
    assert_near(&img, 5, 5, BLUE);
    let (_, _, img) = process("auto-orient,1", &src);
    assert_eq!((img.w, img.h), (40, 80));
    let (_, _, img) = process("auto-orient,0", &src);
    assert_eq!((img.w, img.h), (80, 40));
    assert_near(&img, 5, 5, RED);
    // Orientation is applied before the actions: w_ is the upright width.
    assert_eq!(dims("resize,w_20", &src), (20, 40));
    // Every orientation gives red at the top left of the upright picture.
    for o in 1..=8u16 {
        // Build the stored image from the upright one by the inverse transform.
        let upright = Image::new(60, 40, 3, quadrants(60, 40)).unwrap();
        let stored = match crate::ops::orientation_transform(o as u8) {
            None => upright,
            Some(t) => {
                let inverse = match t {
                    crate::ops::Transform::Rot90 => crate::ops::Transform::Rot270,
                    crate::ops::Transform::Rot270 => crate::ops::Transform::Rot90,
                    other => other,
                };
                crate::ops::transform(&upright, inverse)
            }
        };
        let src = jpeg(stored.w, stored.h, &stored.data, 95, Some(&exif_orientation(o)));
        let (_, _, img) = process("format,png", &src);
        assert_eq!((img.w, img.h), (60, 40), "orientation {o}");
        assert_near(&img, 5, 5, RED);
        assert_near(&img, 55, 35, WHITE);
        assert_near(&img, 55, 5, GREEN);
    }
}

#[test]
fn converts_between_all_formats_and_keeps_the_input_format() {
    let inputs = [OutFormat::Jpeg, OutFormat::Png, OutFormat::Webp, OutFormat::Gif, OutFormat::Bmp];
    for input in inputs {
        let src = encoded(64, 48, input);
        assert_eq!(codec::detect(&src), Some(input));
        let (ext, format, img) = process("resize,w_32", &src);
        assert_eq!((ext.as_str(), format), (input.extension(), input), "{input:?} kept");
        assert_eq!((img.w, img.h), (32, 24));
        for (name, output) in [
            ("jpg", OutFormat::Jpeg),
            ("png", OutFormat::Png),
            ("webp", OutFormat::Webp),
            ("gif", OutFormat::Gif),
            ("bmp", OutFormat::Bmp),
        ] {
            let (ext, format, img) = process(&format!("format,{name}"), &src);
            assert_eq!(ext, name);
            assert_eq!(format, output, "{input:?} -> {name}");
            assert_eq!((img.w, img.h), (64, 48));
            assert_near(&img, 8, 8, RED);
            assert_near(&img, 56, 40, WHITE);
        }
    }
    assert_eq!(process("format,jpeg", &encoded(8, 8, OutFormat::Png)).0, "jpg");
}

#[test]
fn alpha_is_kept_where_possible_and_flattened_for_jpeg() {
    let mut rgba = Vec::new();
    for (i, p) in quadrants(20, 20).chunks(3).enumerate() {
        let a = if i % 20 < 10 { 0 } else { 255 };
        rgba.extend_from_slice(&[p[0], p[1], p[2], a]);
    }
    let src = png(20, 20, 4, &rgba);
    for fmt in ["png", "webp", "bmp", "gif"] {
        let (_, _, img) = process(&format!("format,{fmt}"), &src);
        assert_eq!(img.ch, 4, "{fmt}");
        assert_eq!(img.data[3], 0, "{fmt}: left half transparent");
        assert_eq!(img.data[(10 * 20 + 15) * 4 + 3], 255, "{fmt}: right half opaque");
    }
    let (_, _, img) = process("resize,w_10/format,png", &src);
    assert_eq!((img.w, img.h, img.ch), (10, 10, 4));
    assert_near(&img, 8, 8, WHITE);
    assert_eq!(img.data[(8 * 10 + 8) * 4 + 3], 255);
    let (_, _, img) = process("format,jpg", &src);
    assert_eq!(img.ch, 3);
    assert_near(&img, 2, 2, [255, 255, 255]); // transparent over white
    assert_near(&img, 17, 17, WHITE);
    // Greyscale stays greyscale.
    let grey: Vec<u8> = (0..400).map(|i| (i % 256) as u8).collect();
    let (_, _, img) = process("format,png", &png(20, 20, 1, &grey));
    assert_eq!(img.ch, 1);
    assert_eq!(img.data, grey);
}

#[test]
fn quality_relative_and_absolute() {
    let w = 128;
    let rgb = quadrants(w, w);
    let src80 = jpeg(w, w, &rgb, 80, None);
    for q in [30u8, 50, 80, 95] {
        let est = codec::probe(&jpeg(w, w, &rgb, q, None), OutFormat::Jpeg).unwrap().quality.unwrap();
        assert!((est as i32 - q as i32).abs() <= 2, "quality {q} estimated as {est}");
    }
    let size = |style: &str, src: &[u8]| run::<ImagePlugin>(style, src).unwrap()[0].bytes.len();
    let png_src = png(w, w, 3, &rgb);
    assert!(size("format,jpg/quality,Q_95", &png_src) > size("format,jpg/quality,Q_20", &png_src));
    // Relative: 50% of the source's 80 is 40.
    let out = run::<ImagePlugin>("quality,q_50", &src80).unwrap().remove(0).bytes;
    let q = codec::probe(&out, OutFormat::Jpeg).unwrap().quality.unwrap();
    assert!((38..=42).contains(&q), "q_50 of 80 gave {q}");
    // Absolute: Q_95 does not raise a quality-80 source; Q_30 lowers it.
    let q = |style: &str| {
        codec::probe(&run::<ImagePlugin>(style, &src80).unwrap()[0].bytes, OutFormat::Jpeg).unwrap().quality.unwrap()
    };
    assert!((78..=82).contains(&q("quality,Q_95")));
    assert!((28..=32).contains(&q("quality,Q_30")));
    // Default: 85, or the source's quality if lower.
    assert!((78..=82).contains(&q("resize,w_64")));
    let q = codec::probe(&run::<ImagePlugin>("format,jpg", &png_src).unwrap()[0].bytes, OutFormat::Jpeg)
        .unwrap()
        .quality
        .unwrap();
    assert!((83..=87).contains(&q), "{q}");
    // WebP is lossy at the quality, with the same rules: default 80, `q_`
    // relative to a JPEG source's quality, `Q_` absolute.
    let webp =
        |style: &str, src: &[u8]| run::<ImagePlugin>(&format!("format,webp/{style}"), src).unwrap().remove(0).bytes;
    let sizes: Vec<usize> = [20, 80, 95].iter().map(|q| webp(&format!("quality,Q_{q}"), &png_src).len()).collect();
    assert!(sizes.windows(2).all(|p| p[0] < p[1]), "{sizes:?}");
    assert_eq!(webp("quality,Q_80", &png_src), webp("auto-orient,1", &png_src), "default 80");
    assert_eq!(webp("quality,q_50", &src80), webp("quality,Q_40", &src80), "50% of 80");
    assert_eq!(webp("quality,Q_95", &src80), webp("quality,Q_80", &src80), "not above the source's");
}

#[test]
fn info_reports_header_without_decoding() {
    let src = encoded(123, 45, OutFormat::Webp);
    // The answer is the task's result; no output is written.
    let ran = run_full::<ImagePlugin>("info", &src).unwrap();
    assert!(ran.outputs.is_empty());
    assert_eq!(ran.extension, None);
    assert_eq!(ran.result, Some(json!({ "width": 123, "height": 45, "format": "webp", "size": src.len() })));
    // `o_1` also writes it as the JSON output of contract 0.1.0, byte for byte.
    let ran = run_full::<ImagePlugin>("info,o_1", &src).unwrap();
    assert_eq!(ran.outputs[0].extension.as_deref(), Some("json"));
    assert_eq!(ran.extension.as_deref(), Some("json"));
    assert_eq!(
        String::from_utf8(ran.outputs[0].bytes.clone()).unwrap(),
        format!("{{\"width\":123,\"height\":45,\"format\":\"webp\",\"size\":{}}}\n", src.len())
    );
    assert_eq!(ran.result, Some(json!({ "width": 123, "height": 45, "format": "webp", "size": src.len() })));
    assert!(run::<ImagePlugin>("info,o_0/limits,mp_10", &src).unwrap().is_empty());
    assert!(ImagePlugin::validate("info,o_2").unwrap_err().to_string().contains("between 0 and 1"));
    for (format, name) in
        [(OutFormat::Jpeg, "jpeg"), (OutFormat::Png, "png"), (OutFormat::Gif, "gif"), (OutFormat::Bmp, "bmp")]
    {
        let json = info_json(&encoded(7, 5, format));
        assert!(json.starts_with(&format!("{{\"width\":7,\"height\":5,\"format\":\"{name}\"")), "{json}");
    }
    // Every action is described.
    let described: Vec<String> = ImagePlugin::info().actions.into_iter().map(|a| a.name).collect();
    assert_eq!(described, crate::params::ACTIONS);
    // The extension a dry run shows: the `format` action's; none where it depends on the object.
    assert_eq!(ImagePlugin::extension("resize,w_10/format,webp").as_deref(), Some("webp"));
    assert_eq!(ImagePlugin::extension("resize,w_10"), None);
    // info sees a bomb's header but still refuses it.
    assert!(matches!(
        run::<ImagePlugin>("info", &png_claiming(100_000, 100_000)),
        Err(ProcessError::UnsupportedInput(_))
    ));
}

#[test]
fn jpeg_is_decoded_at_reduced_scale_for_thumbnails() {
    let (w, h) = (2048, 1536);
    let src = jpeg(w, h, &quadrants(w, h), 90, None);
    let header = codec::probe(&src, OutFormat::Jpeg).unwrap();
    let limits = Limits::default();
    let at = |min| {
        let img = codec::decode(&src, &header, min, &limits).unwrap();
        (img.w, img.h)
    };
    assert_eq!(at(None), (2048, 1536));
    assert_eq!(at(Some((256, 192))), (256, 192)); // 1/8
    assert_eq!(at(Some((300, 192))), (512, 384)); // 1/4
    assert_eq!(at(Some((600, 100))), (1024, 768)); // 1/2
    assert_eq!(at(Some((1100, 100))), (2048, 1536));
    // End to end: a 256 px thumbnail, right size and content.
    let (ext, _, img) = process("resize,w_256", &src);
    assert_eq!(ext, "jpg");
    assert_eq!((img.w, img.h), (256, 192));
    assert_near(&img, 20, 20, RED);
    assert_near(&img, 236, 20, GREEN);
    assert_near(&img, 20, 172, BLUE);
    assert_near(&img, 236, 172, WHITE);
    // Fill from a reduced decode covers the box exactly.
    let (_, _, img) = process("resize,w_200,h_200,m_fill", &src);
    assert_eq!((img.w, img.h), (200, 200));
    assert_near(&img, 20, 20, RED);
    assert_near(&img, 180, 180, WHITE);
}

/// A valid PNG whose header claims `w`×`h` (and whose data is a 1x1 image).
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut p = png(1, 1, 3, &[1, 2, 3]);
    p[16..20].copy_from_slice(&w.to_be_bytes());
    p[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = codec::crc32(&p[12..29]);
    p[29..33].copy_from_slice(&crc.to_be_bytes());
    p
}

fn unsupported(style: &str, input: &[u8]) -> String {
    match run::<ImagePlugin>(style, input) {
        Err(ProcessError::UnsupportedInput(m)) => m,
        other => panic!("{style}: expected unsupported input, got {:?}", other.map(|o| o.len())),
    }
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    let m = unsupported("resize,w_100", &png_claiming(100_000, 100_000));
    assert!(m.contains("100000x100000") && m.contains("limit"), "{m}");
    let m = unsupported("", &png_claiming(20_000, 20_000));
    assert!(m.contains("400.0 MP") && m.contains("250 MP"), "{m}");
    let m = unsupported("", &png_claiming(40_000, 10));
    assert!(m.contains("30000 px per side"), "{m}");
    // BMP and GIF headers too.
    let mut bmp = encoded(4, 4, OutFormat::Bmp);
    bmp[18..22].copy_from_slice(&1_000_000i32.to_le_bytes());
    assert!(unsupported("", &bmp).contains("limit"));
    let mut gif = encoded(4, 4, OutFormat::Gif);
    gif[6..10].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    assert!(unsupported("", &gif).contains("limit"));
    // The limits are parameters.
    let two_mp = png(2000, 1000, 1, &vec![0u8; 2_000_000]);
    assert!(unsupported("limits,mp_1", &two_mp).contains("1 MP"));
    assert!(unsupported("limits,side_1000", &two_mp).contains("1000 px"));
    assert_eq!(dims("limits,mp_2,side_2000/resize,w_100", &two_mp), (100, 50));
    // Results are bounded as well.
    let small = encoded(100, 100, OutFormat::Png);
    assert!(unsupported("limits,mp_1/resize,w_2000,limit_0", &small).contains("the resized image"));
    assert!(unsupported("limits,side_120/rotate,45", &small).contains("the rotated image"));
}

/// The memory budget of `style` for `input`, as `run` reserves it.
fn budget(style: &str, input: &[u8]) -> u64 {
    let plan = crate::params::parse(style).unwrap();
    let header = codec::probe(input, codec::detect(input).unwrap()).unwrap();
    let d = crate::decoding(&plan, &header);
    crate::budget::peak_bytes(input, &header, &plan, d.jpeg_min, d.upright, plan.format.unwrap_or(header.format))
}

/// A JPEG whose header claims `w`×`h` (its data is that of a small image).
fn jpeg_claiming(w: u16, h: u16) -> Vec<u8> {
    let mut j = jpeg(64, 48, &quadrants(64, 48), 90, None);
    let sof = j.windows(2).position(|m| m == [0xff, 0xc0]).unwrap();
    j[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    j
}

#[test]
fn memory_is_budgeted_from_the_header() {
    const MIB: u64 = 1 << 20;
    // 240 MP: within the pixel limit, but its pixels alone are 720 MB.
    let png = png_claiming(20_000, 12_000);
    assert!(budget("", &png) > 900 * MIB, "{}", budget("", &png) / MIB);
    assert!(budget("resize,w_256", &png) > 900 * MIB);
    // A JPEG shrunk by its first action is decoded at 1/8 by the DC path, which
    // holds only the reduced planes; a full decode holds every component plane.
    let big = jpeg_claiming(20_000, 12_000);
    assert!(crate::jpeg_dc::accepts(&big));
    assert!(budget("resize,w_256", &big) < 64 * MIB, "{}", budget("resize,w_256", &big) / MIB);
    assert!(budget("format,png", &big) > 1200 * MIB);
    assert!(budget("resize,w_256/rotate,90", &big) < 64 * MIB);
    // Every action counts: a rotation by 45 degrees doubles the canvas.
    let photo = jpeg_claiming(4000, 3000);
    assert!(budget("rotate,45", &photo) > budget("rotate,90", &photo));
    assert!(budget("resize,w_8000,limit_0", &photo) > 4 * budget("resize,w_2000", &photo));
    // A 12 MP photo to a thumbnail needs a few tens of MiB at most.
    assert!(budget("resize,w_256/format,webp", &photo) < 40 * MIB);
    // The refusal names the image, the need and the limit to change.
    let m = crate::budget::reserve(u64::MAX, 20_000, 12_000).unwrap_err();
    for needle in ["20000x12000", "240.0 MP", "limits.max_memory", "limits,mp_"] {
        assert!(m.contains(needle), "{needle}: {m}");
    }
}

#[test]
fn corrupt_and_unknown_inputs_are_unsupported() {
    assert!(unsupported("", b"").contains("empty"));
    assert!(unsupported("", b"hello world, not an image").contains("not a JPEG, PNG, WebP, GIF or BMP"));
    for format in [OutFormat::Jpeg, OutFormat::Png, OutFormat::Webp, OutFormat::Gif, OutFormat::Bmp] {
        let good = encoded(64, 48, format);
        let m = unsupported("resize,w_10", &good[..good.len() / 3]);
        assert!(!m.is_empty());
        for cut in [2, 4, 12, 30] {
            let _ = run::<ImagePlugin>("resize,w_10", &good[..cut.min(good.len())]);
        }
    }
    assert!(unsupported("", b"\xff\xd8\xff\xe0\x00\x10JFIF").contains("corrupt JPEG"));
    // A GIF frame placed right of its screen (found by fuzzing) gives an empty canvas, not a panic.
    let mut gif = encoded(4, 4, OutFormat::Gif);
    let desc = 13 + gif[13..].iter().position(|&b| b == 0x2c).unwrap();
    gif[desc + 1..desc + 3].copy_from_slice(&100u16.to_le_bytes());
    let (_, _, img) = process("format,png", &gif);
    assert_eq!((img.w, img.h), (4, 4));
}

#[test]
fn garbage_never_panics() {
    let mut x: u32 = 5;
    let styles = ["", "resize,w_16", "info", "rotate,33/format,gif", "crop,w_5,h_5,g_center/format,bmp"];
    for format in [OutFormat::Jpeg, OutFormat::Png, OutFormat::Webp, OutFormat::Gif, OutFormat::Bmp] {
        let good = encoded(48, 32, format);
        for i in 0..120 {
            let mut d = good.clone();
            for _ in 0..(1 + i % 6) {
                x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                let at = (x as usize >> 8) % d.len();
                d[at] = (x >> 24) as u8;
            }
            let _ = run::<ImagePlugin>(styles[i % styles.len()], &d);
        }
    }
}

/// A hand-made 3x2 8-bit palette BMP (bottom-up, rows padded to 4 bytes).
#[test]
fn decodes_handmade_bmps() {
    let mut b = Vec::new();
    let palette: [[u8; 4]; 2] = [[255, 0, 0, 0], [0, 0, 255, 0]]; // BGRA: blue, red
    let offset = 14 + 40 + 8;
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&((offset + 8) as u32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&(offset as u32).to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&3i32.to_le_bytes());
    b.extend_from_slice(&2i32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(&[0; 4]); // BI_RGB
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&2u32.to_le_bytes()); // colours used
    b.extend_from_slice(&[0; 4]);
    for p in palette {
        b.extend_from_slice(&p);
    }
    b.extend_from_slice(&[0, 1, 0, 0]); // bottom row: blue red blue
    b.extend_from_slice(&[1, 1, 0, 0]); // top row: red red blue
    let (format, img) = decode(&b);
    assert_eq!(format, OutFormat::Bmp);
    assert_eq!((img.w, img.h, img.ch), (3, 2, 3));
    assert_eq!(img.data, vec![255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255, 255, 0, 0, 0, 0, 255]);
    // The same, RLE8-compressed, bottom row first: a run of blue, a run of red,
    // a run of blue, end of line; a run of two reds, a run of blue, end of bitmap.
    let mut rle = b[..offset].to_vec();
    rle[30..34].copy_from_slice(&1u32.to_le_bytes());
    rle.extend_from_slice(&[1, 0, 1, 1, 1, 0, 0, 0, 2, 1, 1, 0, 0, 1]);
    let (_, img) = decode(&rle);
    assert_eq!(img.data, vec![255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255, 255, 0, 0, 0, 0, 255]);
}

#[test]
fn bad_params_are_refused() {
    let err = |p: &str| ImagePlugin::validate(p).unwrap_err().to_string();
    let cases = [
        ("resize", "`w, h, l, s or p` is required"),
        ("resize,w_0", "between 1 and 65535"),
        ("resize,w_40000", "over the side limit of 30000"),
        ("resize,w_100,m_stretch", "expected one of: lfit, mfit, fill, pad, fixed"),
        ("resize,w_100,limit_2", "must be 0 or 1"),
        ("resize,w_100,color_red", "hex colour"),
        ("resize,p_50,w_10", "cannot be combined"),
        ("resize,l_50,w_10", "cannot be combined"),
        ("resize,p_1001", "between 1 and 1000"),
        ("resize,q_1", "unknown parameter `q`"),
        ("crop,g_middle", "expected one of: nw, north"),
        ("crop,w_abc", "`w`"),
        ("rotate", "`value` is required"),
        ("rotate,400", "between 0 and 360"),
        ("rotate,x_1", "unknown parameter `x`"),
        ("auto-orient,2", "must be 0 or 1"),
        ("format,tiff", "expected one of: jpg, png, webp, gif, bmp"),
        ("format", "`value` is required"),
        ("format,png,jpg", "unexpected value `jpg`"),
        ("quality", "`q or Q` is required"),
        ("quality,q_0", "between 1 and 100"),
        ("quality,q_50,Q_50", "either"),
        ("info/resize,w_10", "only `limits` next to `info`"),
        ("limits,mp_0", "between 1 and 1000"),
        ("limits,gb_1", "unknown parameter `gb`"),
        ("sharpen,100", "unknown action `sharpen`"),
    ];
    for (style, want) in cases {
        let e = err(style);
        assert!(e.contains(want), "{style}: {e}");
    }
    assert!(ImagePlugin::validate("limits,side_40000/resize,w_40000").is_ok());
    assert!(ImagePlugin::validate("resize,w_256,m_fill/format,webp/quality,q_80/auto-orient,0/limits,mp_100").is_ok());
    assert!(ImagePlugin::validate("info/limits,mp_10").is_ok());
    assert!(matches!(run::<ImagePlugin>("resize,w_x", b"x"), Err(ProcessError::InvalidParams(_))));
}

/// The 1/8 fast path agrees with the general decoder's 1/8 scaling.
#[test]
fn fast_dc_decoder_matches_the_general_decoder() {
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
    let check = |w: u32, h: u32, setup: &dyn Fn(&mut Encoder<&mut Vec<u8>>), color: ColorType| {
        let rgb = quadrants(w, h);
        let data: Vec<u8> = if color == ColorType::Luma { rgb.chunks(3).map(|p| p[1]).collect() } else { rgb };
        let mut buf = Vec::new();
        let mut enc = Encoder::new(&mut buf, 90);
        setup(&mut enc);
        enc.encode(&data, w as u16, h as u16, color).unwrap();
        let fast = crate::jpeg_dc::decode(&buf, 1);
        let mut dec = jpeg_decoder::Decoder::new(std::io::Cursor::new(&buf));
        dec.scale(w.div_ceil(8) as u16, h.div_ceil(8) as u16).unwrap();
        let reference = dec.decode().unwrap();
        // And at 1/4, against the general decoder's 2x2 IDCT.
        if let Some(fast4) = crate::jpeg_dc::decode(&buf, 2) {
            let mut dec = jpeg_decoder::Decoder::new(std::io::Cursor::new(&buf));
            dec.scale(w.div_ceil(4) as u16, h.div_ceil(4) as u16).unwrap();
            let reference4 = dec.decode().unwrap();
            assert_eq!(fast4.data.len(), reference4.len());
            let mean = fast4.data.iter().zip(&reference4).map(|(&a, &b)| (a as i32 - b as i32).abs()).sum::<i32>()
                as f64
                / reference4.len() as f64;
            eprintln!("1/4 scale of {w}x{h}: mean difference {mean:.2}");
            assert!(mean < 4.0, "1/4 scale of {w}x{h}: mean difference {mean}");
        }
        (fast, reference)
    };
    let compare = |fast: Option<Image>, reference: Vec<u8>, what: &str| {
        let fast = fast.unwrap_or_else(|| panic!("{what}: fast path refused"));
        assert_eq!(fast.data.len(), reference.len(), "{what}");
        let diff: Vec<i32> = fast.data.iter().zip(&reference).map(|(&a, &b)| (a as i32 - b as i32).abs()).collect();
        let mean = diff.iter().sum::<i32>() as f64 / diff.len() as f64;
        eprintln!("{what}: mean difference {mean:.2}");
        assert!(mean < 2.5, "{what}: mean difference {mean}");
        fast
    };
    let (f, r) = check(256, 192, &|_| {}, ColorType::Rgb);
    let img = compare(f, r, "4:2:0");
    assert_eq!((img.w, img.h, img.ch), (32, 24, 3));
    assert_near(&img, 3, 3, RED);
    assert_near(&img, 28, 20, WHITE);
    let (f, r) = check(1001, 777, &|e| e.set_sampling_factor(SamplingFactor::F_1_1), ColorType::Rgb);
    assert_eq!(compare(f, r, "4:4:4 odd size").w, 126);
    let (f, r) = check(640, 480, &|e| e.set_sampling_factor(SamplingFactor::F_2_1), ColorType::Rgb);
    compare(f, r, "4:2:2");
    let (f, r) = check(333, 222, &|e| e.set_restart_interval(3), ColorType::Rgb);
    compare(f, r, "restart interval");
    let (f, r) = check(200, 100, &|_| {}, ColorType::Luma);
    assert_eq!(compare(f, r, "greyscale").ch, 1);
    // Heavy noise: blocks without an end-of-block code, runs to coefficient 63.
    let noisy: Vec<u8> = (0..320 * 240 * 3).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let buf = jpeg(320, 240, &noisy, 95, None);
    let mut dec = jpeg_decoder::Decoder::new(std::io::Cursor::new(&buf));
    dec.scale(40, 30).unwrap();
    compare(crate::jpeg_dc::decode(&buf, 1), dec.decode().unwrap(), "noise");
    let mut dec = jpeg_decoder::Decoder::new(std::io::Cursor::new(&buf));
    dec.scale(80, 60).unwrap();
    compare(crate::jpeg_dc::decode(&buf, 2), dec.decode().unwrap(), "noise at 1/4");
    // Progressive JPEGs are left to the general decoder.
    let (f, _) = check(64, 64, &|e| e.set_progressive(true), ColorType::Rgb);
    assert!(f.is_none());
    // Truncated data is refused rather than guessed at.
    let full = jpeg(512, 384, &quadrants(512, 384), 90, None);
    assert!(crate::jpeg_dc::decode(&full[..full.len() / 2], 1).is_none());
    assert!(crate::jpeg_dc::decode(&full[..full.len() / 2], 2).is_none());
}

/// Timing of the thumbnail path (`cargo test --release -- --ignored thumbnail_timing --nocapture`).
#[test]
#[ignore]
fn thumbnail_timing() {
    let src = match std::env::var("KILN_BENCH_JPEG") {
        Ok(path) => std::fs::read(path).unwrap(),
        Err(_) => jpeg(2048, 1536, &quadrants(2048, 1536), 90, None),
    };
    let best = |f: &dyn Fn()| {
        (0..30)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1000.0
            })
            .fold(f64::MAX, f64::min)
    };
    eprintln!(
        "fast 1/8 decode: {:.2} ms",
        best(&|| drop(std::hint::black_box(crate::jpeg_dc::decode(&src, 1).unwrap())))
    );
    let thumb = crate::jpeg_dc::decode(&src, 1).unwrap();
    eprintln!(
        "encode jpeg {}x{}: {:.2} ms",
        thumb.w,
        thumb.h,
        best(&|| drop(std::hint::black_box(codec::encode(&thumb, OutFormat::Jpeg, 85).unwrap())))
    );
    eprintln!(
        "whole resize,w_256: {:.2} ms",
        best(&|| drop(std::hint::black_box(run::<ImagePlugin>("resize,w_256", &src).unwrap())))
    );
}

/// A longer mutation run (`KILN_FUZZ_ITERS=20000 cargo test -- --ignored fuzz --nocapture`).
#[test]
#[ignore]
fn fuzz_all_formats() {
    let iters: usize = std::env::var("KILN_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seeds: Vec<Vec<u8>> = [OutFormat::Jpeg, OutFormat::Png, OutFormat::Webp, OutFormat::Gif, OutFormat::Bmp]
        .iter()
        .map(|&f| encoded(40, 24, f))
        .collect();
    // A noisy baseline JPEG with restart markers, and a progressive one.
    let mut noisy = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut noisy, 90);
    enc.set_restart_interval(2);
    let rgb: Vec<u8> = (0..64 * 48 * 3).map(|i| ((i * 7919) % 251) as u8).collect();
    enc.encode(&rgb, 64, 48, jpeg_encoder::ColorType::Rgb).unwrap();
    seeds.push(noisy);
    let mut prog = Vec::new();
    let mut enc = jpeg_encoder::Encoder::new(&mut prog, 80);
    enc.set_progressive(true);
    enc.encode(&rgb, 64, 48, jpeg_encoder::ColorType::Rgb).unwrap();
    seeds.push(prog);
    let styles = [
        "resize,w_8",
        "resize,w_30,h_30,m_fill",
        "info",
        "rotate,17/format,gif",
        "crop,w_5,h_5,g_se/format,bmp",
        "format,webp",
        "format,png",
    ];
    for i in 0..iters {
        let mut d = seeds[i % seeds.len()].clone();
        match next() % 4 {
            0 => {
                for _ in 0..1 + next() % 8 {
                    let at = (next() as usize) % d.len();
                    d[at] = next() as u8;
                }
            }
            1 => d.truncate((next() as usize) % d.len()),
            2 => {
                let at = (next() as usize) % d.len();
                let len = (next() as usize) % 16;
                let chunk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                d.splice(at..at, chunk);
            }
            _ => {
                // Flip bits in a header-sized prefix.
                for _ in 0..3 {
                    let at = (next() as usize) % d.len().min(64);
                    d[at] ^= 1 << (next() % 8);
                }
            }
        }
        let _ = run::<ImagePlugin>(styles[i % styles.len()], &d);
        let _ = crate::jpeg_dc::decode(&d, 1);
        let _ = crate::jpeg_dc::decode(&d, 2);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).expect("marker present")
}

fn insert(d: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
    [&d[..at], bytes, &d[at..]].concat()
}

/// The JSON output of `info,o_1`, checked against the task's result.
fn info_json(input: &[u8]) -> String {
    let ran = run_full::<ImagePlugin>("info,o_1", input).unwrap_or_else(|e| panic!("info: {e}"));
    let object: kiln_plugin_sdk::Json = kiln_plugin_sdk::serde_json::from_slice(&ran.outputs[0].bytes).unwrap();
    assert_eq!(ran.result, Some(object));
    String::from_utf8(ran.outputs[0].bytes.clone()).unwrap()
}

/// JPEGs that libjpeg decodes with a warning, made from a valid one by byte
/// surgery: they were refused, even by `info`.
#[test]
fn jpegs_libjpeg_tolerates_are_decoded() {
    let good = jpeg(64, 48, &quadrants(64, 48), 90, None);
    let (_, want) = decode(&good);
    let (_, _, want_thumb) = process("resize,w_8/format,png", &good);

    // Stray bytes between two marker segments (before the quantisation tables).
    let stray = insert(&good, find(&good, &[0xff, 0xdb]), b"\x00\x12junk\x34");
    // A restart interval of 2 MCUs declared, and no restart marker in the scan.
    let dri = insert(&good, find(&good, &[0xff, 0xda]), &[0xff, 0xdd, 0, 4, 0, 2]);
    assert!(jpeg_decoder::Decoder::new(&dri[..]).decode().is_err(), "the codec alone refuses it");
    // Both at once, and the stray bytes after the last segment before the scan.
    let both = insert(&dri, find(&dri, &[0xff, 0xda]), b"\x01\x02\x03");

    for (name, damaged) in [("stray bytes", &stray), ("DRI without RST", &dri), ("both", &both)] {
        let info = info_json(damaged);
        assert_eq!(
            info,
            format!("{{\"width\":64,\"height\":48,\"format\":\"jpeg\",\"size\":{}}}\n", damaged.len()),
            "{name}"
        );
        // Every pixel as in the undamaged file, at full size and through the reduced-scale path.
        let (_, _, img) = process("format,png", damaged);
        assert_eq!((img.w, img.h, img.ch), (want.w, want.h, want.ch), "{name}");
        assert!(img.data == want.data, "{name}: the pixels differ from the undamaged JPEG's");
        let (_, _, thumb) = process("resize,w_8/format,png", damaged);
        assert!(thumb.data == want_thumb.data, "{name}: the thumbnail differs");
    }
    // A file that has nothing to repair is left as it is.
    assert!(codec::repair_jpeg(&good).is_none());
}

/// A PNG with the given colour type and bit depth, tRNS and raw (packed) rows.
fn png_raw(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, trns: Option<&[u8]>, data: &[u8]) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut enc = png::Encoder::new(&mut buf, w, h);
    enc.set_color(color);
    enc.set_depth(depth);
    if let Some(t) = trns {
        enc.set_trns(t.to_vec());
    }
    let mut wr = enc.write_header().unwrap();
    wr.write_image_data(data).unwrap();
    wr.finish().unwrap();
    buf
}

#[test]
fn one_bit_grey_png_keeps_its_transparent_colour() {
    // 8x2, 1 bit per pixel: row 0 alternates white/black, row 1 is 4 white then 4 black.
    // tRNS makes white transparent: as the value 1, or as 255, as Pillow writes
    // it (libpng keeps the bits of the sample depth; the PNG decoder compared 255
    // with 1 and lost the transparency).
    for trns in [[0, 1], [0, 255], [255, 255]] {
        let p = png_raw(8, 2, png::ColorType::Grayscale, png::BitDepth::One, Some(&trns), &[0b1010_1010, 0b1111_0000]);
        assert!(info_json(&p).starts_with("{\"width\":8,\"height\":2,\"format\":\"png\""));
        one_bit_grey_transparency(&p);
    }
    // 2-bit grey: only the exact value is transparent (here 2, written as 0xAA, its 8-bit scaling).
    for trns in [[0, 2], [0, 0xaa]] {
        let p2 = png_raw(4, 1, png::ColorType::Grayscale, png::BitDepth::Two, Some(&trns), &[0b00_01_10_11]);
        let (_, _, img) = process("format,png", &p2);
        assert_eq!(img.ch, 2);
        assert_eq!(img.data, vec![0, 255, 85, 255, 170, 0, 255, 255], "tRNS {trns:?}");
    }
}

fn one_bit_grey_transparency(p: &[u8]) {
    for style in ["format,png", "resize,w_8/format,png", "format,bmp"] {
        let (_, _, img) = process(style, p);
        assert!(img.ch == 2 || img.ch == 4, "{style}: alpha lost ({} channels)", img.ch);
        let alpha = |x: u32, y: u32| img.data[((y * img.w + x) * u32::from(img.ch)) as usize + img.ch as usize - 1];
        for (x, y, white) in [(0, 0, true), (1, 0, false), (3, 1, true), (4, 1, false)] {
            let want = if white { 0 } else { 255 };
            assert_eq!(alpha(x, y), want, "{style}: alpha of ({x},{y})");
            if !white {
                assert_eq!(rgb_at(&img, x, y), [0, 0, 0], "{style}: ({x},{y})");
            }
        }
    }
}

/// An 8-bit palette BMP header (two colours, BGRA blue and red) for `rows` of width 3.
fn bmp8(height: i32, compression: u32, bpp: u16, pixels: &[u8]) -> Vec<u8> {
    let offset = 14 + 40 + 8;
    let mut b = Vec::new();
    b.extend_from_slice(b"BM");
    b.extend_from_slice(&((offset + pixels.len()) as u32).to_le_bytes());
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&(offset as u32).to_le_bytes());
    b.extend_from_slice(&40u32.to_le_bytes());
    b.extend_from_slice(&3i32.to_le_bytes());
    b.extend_from_slice(&height.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&bpp.to_le_bytes());
    b.extend_from_slice(&compression.to_le_bytes());
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&2u32.to_le_bytes()); // colours used
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&[255, 0, 0, 0, 0, 0, 255, 0]); // blue, red
    b.extend_from_slice(pixels);
    b
}

#[test]
fn top_down_rle_bmps_are_the_right_way_up() {
    // Top row: red red blue; bottom row: blue red blue.
    let want = vec![255, 0, 0, 255, 0, 0, 0, 0, 255, 0, 0, 255, 255, 0, 0, 0, 0, 255];
    // Bottom-up RLE8 (the usual kind): bottom row first.
    let (_, img) = decode(&bmp8(2, 1, 8, &[1, 0, 1, 1, 1, 0, 0, 0, 2, 1, 1, 0, 0, 1]));
    assert_eq!(img.data, want);
    // Top-down RLE8 (negative height): top row first.
    let (_, img) = decode(&bmp8(-2, 1, 8, &[2, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1]));
    assert_eq!(img.data, want, "top-down RLE8 came out upside down");
    // Top-down RLE4: runs of alternating nibbles (2 × "1 1", then "0"), line end, then "0 1 0", end.
    let (_, img) = decode(&bmp8(-2, 2, 4, &[2, 0x11, 1, 0x00, 0, 0, 3, 0x01, 0, 1]));
    assert_eq!(img.data, want, "top-down RLE4 came out upside down");
    // Through the plugin, to PNG.
    let (_, _, img) = process("format,png", &bmp8(-2, 1, 8, &[2, 1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1]));
    assert_eq!(img.data, want);
}

#[test]
fn gif_without_colour_tables_is_greyscale() {
    // 4x1, colour indices 0, 85, 170, 255, no global and no local colour table;
    // index 85 is transparent. Written with a local table, which is then cut out.
    let mut buf = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut buf, 4, 1, &[]).unwrap();
        let frame = gif::Frame {
            width: 4,
            height: 1,
            buffer: std::borrow::Cow::Borrowed(&[0, 85, 170, 255]),
            palette: Some(vec![9; 768]),
            transparent: Some(85),
            ..Default::default()
        };
        enc.write_frame(&frame).unwrap();
    }
    if buf[10] & 0x80 != 0 {
        let n = 3 << ((buf[10] & 7) + 1);
        buf.drain(13..13 + n);
        buf[10] &= !0x87;
    }
    let desc = 13 + buf[13..].iter().position(|&b| b == 0x2c).unwrap();
    assert_eq!(buf[desc + 9] & 0x87, 0x87, "a local table of 256 colours");
    buf.drain(desc + 10..desc + 10 + 768);
    buf[desc + 9] &= !0x87;
    assert!(
        matches!(gif::DecodeOptions::new().read_info(&buf[..]).unwrap().next_frame_info(), Err(_)),
        "the codec alone refuses it"
    );
    assert!(info_json(&buf).starts_with("{\"width\":4,\"height\":1,\"format\":\"gif\""));
    let (_, _, img) = process("format,png", &buf);
    assert_eq!((img.w, img.h, img.ch), (4, 1, 4));
    assert_eq!(img.data, vec![0, 0, 0, 255, 85, 85, 85, 0, 170, 170, 170, 255, 255, 255, 255, 255]);
    // A GIF with a local colour table keeps its colours.
    let mut buf = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut buf, 2, 1, &[]).unwrap();
        let frame = gif::Frame {
            width: 2,
            height: 1,
            buffer: std::borrow::Cow::Borrowed(&[0, 1]),
            palette: Some(vec![200, 0, 0, 0, 0, 200]),
            ..Default::default()
        };
        enc.write_frame(&frame).unwrap();
    }
    let (_, _, img) = process("format,png", &buf);
    assert_eq!(img.data, vec![200, 0, 0, 0, 0, 200]);
}

#[test]
fn png_errors_are_plain_words() {
    let good = png(8, 8, 3, &quadrants(8, 8));
    let mut bad_crc = good.clone();
    let idat = find(&good, b"IDAT");
    let len = u32::from_be_bytes(good[idat - 4..idat].try_into().unwrap()) as usize;
    bad_crc[idat + 4 + len] ^= 0xff;
    let mut duplicate = good.clone();
    let ihdr = find(&good, b"IHDR");
    let ihdr_chunk = good[ihdr - 4..ihdr + 4 + 13 + 4].to_vec();
    duplicate.splice(idat - 4..idat - 4, ihdr_chunk);
    let mut deflate = good.clone();
    for b in &mut deflate[idat + 6..idat + 4 + len] {
        *b ^= 0x5a;
    }
    // The CRC has to match for the corrupt data to reach the inflater.
    let crc = codec::crc32(&deflate[idat..idat + 4 + len]);
    deflate[idat + 4 + len..idat + 8 + len].copy_from_slice(&crc.to_be_bytes());
    let cases: [(&[u8], &str); 4] =
        [(&bad_crc, "IDAT"), (&duplicate, "IHDR"), (&deflate, "corrupt"), (&good[..good.len() - 20], "corrupt PNG")];
    for (input, needle) in cases {
        let m = unsupported("format,jpg", input);
        assert!(m.starts_with("corrupt PNG: "), "{m}");
        assert!(m.contains(needle), "{needle}: {m}");
        assert!(!m.contains("ChunkType") && !m.contains('{') && !m.contains("::"), "debug text in: {m}");
        let words = m.trim_start_matches("corrupt PNG: ");
        assert!(
            !words.split(' ').any(|w| w.len() > 1
                && w.chars().next().unwrap().is_ascii_uppercase()
                && w.chars().skip(1).any(|c| c.is_ascii_uppercase())
                && w.chars().any(|c| c.is_ascii_lowercase())),
            "a Rust name in: {m}"
        );
    }
}
