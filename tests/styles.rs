//! The first-party styles end to end through the runtime, as bundled in the
//! `kiln` binary: real inputs made by the test, real content checked.

use crate::common;

use std::path::Path;

use common::kiln;

fn process(style: &str, input: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["process", "--style", style, input.to_str().unwrap()];
    args.extend_from_slice(extra);
    kiln(&args)
}

fn ok(o: std::process::Output) -> Vec<u8> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn compress_round_trips_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let original: Vec<u8> =
        (0..300_000u32).flat_map(|i| format!("line {} of a compressible log\n", i % 977).into_bytes()).collect();
    let input = dir.path().join("app.log");
    std::fs::write(&input, &original).unwrap();
    for (style, ext) in [("compress/gzip,l_6", "gz"), ("compress/zstd,l_3", "zst"), ("compress/brotli", "br")] {
        let out = dir.path().join(format!("out-{ext}/"));
        ok(process(style, &input, &["-o", out.to_str().unwrap()]));
        let packed = out.join(format!("app.{ext}"));
        let size = std::fs::metadata(&packed).unwrap().len();
        assert!(size < original.len() as u64 / 5, "{style}: {size} bytes is not compressed");
        let back = ok(process("compress/decompress", &packed, &[]));
        assert!(back == original, "{style}: round trip changed the bytes");
    }
    let garbage = dir.path().join("noise.gz");
    std::fs::write(&garbage, b"definitely not gzip").unwrap();
    let o = process("compress/decompress", &garbage, &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unsupported input"), "{}", String::from_utf8_lossy(&o.stderr));
    let o = process("compress/gzip,l_42", &input, &[]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("`l`"), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn zstd_levels_trade_speed_for_size() {
    let dir = tempfile::tempdir().unwrap();
    // Text with repetition at many distances, where deeper searches pay.
    let words = ["kiln", "glaze", "clay", "fires", "at", "cone", "six", "the", "pots", "cool", "slowly", "overnight"];
    let mut x: u32 = 7;
    let mut text = String::new();
    while text.len() < 400_000 {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        text.push_str(words[(x >> 16) as usize % words.len()]);
        text.push_str(if x.is_multiple_of(11) { ".\n" } else { " " });
    }
    let input = dir.path().join("notes.txt");
    std::fs::write(&input, &text).unwrap();
    let mut sizes = Vec::new();
    for level in [1, 9, 19] {
        let out = dir.path().join(format!("l{level}/"));
        ok(process(&format!("compress/zstd,l_{level}"), &input, &["-o", out.to_str().unwrap()]));
        let packed = out.join("notes.zst");
        assert!(
            ok(process("compress/decompress", &packed, &[])) == text.as_bytes(),
            "l_{level}: round trip changed the bytes"
        );
        sizes.push(std::fs::metadata(&packed).unwrap().len());
    }
    assert!(sizes[0] > sizes[1] && sizes[1] > sizes[2], "higher levels must be smaller: {sizes:?}");

    // Level 22 on a 40 MiB object wants a 64 MiB window and its tables, over
    // the default 512 MiB memory limit: refused up front, with the way out.
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(40 << 20).unwrap();
    let o = process("compress/zstd,l_22", &big, &["-o", dir.path().join("big/").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("unsupported input"), "{err}");
    assert!(
        err.contains("zstd level 22 needs about") && err.contains("limits.max_memory") && err.contains("lower level"),
        "{err}"
    );
    let o = process("compress/zstd,l_23", &input, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("`zstd`") && err.contains("`l`") && err.contains("between 1 and 22"),
        "{err}"
    );
}

#[test]
fn checksum_gives_known_digests() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("abc.txt");
    std::fs::write(&input, "abc").unwrap();
    let cases = [
        // The answer is the task's result; `o_1` also writes it as the output these tests read.
        ("checksum/sha256,o_1", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("checksum/sha1,o_1", "a9993e364706816aba3e25717850c26c9cd0d89d"),
        ("checksum/md5,o_1", "900150983cd24fb0d6963f7d28e17f72"),
        ("checksum/crc32c,o_1", "364b3fb7"),
    ];
    for (style, hex) in cases {
        let out: serde_json::Value = serde_json::from_slice(&ok(process(style, &input, &[]))).unwrap();
        assert_eq!(out["hex"], hex, "{style}: {out}");
        assert_eq!(out["size"], 3);
    }
    let o = process("checksum/sha3", &input, &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("sha3"));
}

#[test]
fn markdown_renders_gfm_to_html() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.md");
    std::fs::write(
        &input,
        "# Release & notes\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n- [x] done\n- [ ] todo\n\n~~old~~ new\n",
    )
    .unwrap();
    let html = String::from_utf8(ok(process("markdown", &input, &[]))).unwrap();
    assert!(html.contains("<table>") && html.contains("<td>1</td>"), "{html}");
    assert!(html.contains("type=\"checkbox\""), "{html}");
    assert!(html.contains("<del>old</del>"), "{html}");
    assert!(!html.contains("<html"), "a fragment without page_1");
    let page = String::from_utf8(ok(process("markdown/page_1", &input, &[]))).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert!(page.contains("<title>Release &amp; notes</title>"), "{page}");
    let bad = dir.path().join("bin.md");
    std::fs::write(&bad, [0xff, 0xfe, 0x00, 0x80]).unwrap();
    let o = process("markdown", &bad, &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unsupported input"));
}

/// A small DOCX, built with Python's zipfile (the test machine has Python).
fn make_docx(path: &Path) {
    let document = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Quarterly report</w:t></w:r></w:p>
<w:p><w:r><w:t>Sales grew.</w:t></w:r></w:p>
<w:p><w:pPr><w:numPr><w:ilvl w:val="0"/><w:numId w:val="1"/></w:numPr></w:pPr><w:r><w:t>First point</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Region</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Total</w:t></w:r></w:p></w:tc></w:tr>
<w:tr><w:tc><w:p><w:r><w:t>North</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>42</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
</w:body></w:document>"#;
    let script = format!(
        "import zipfile,sys\nz=zipfile.ZipFile(sys.argv[1],'w',zipfile.ZIP_DEFLATED)\nz.writestr('[Content_Types].xml','<Types/>')\nz.writestr('word/document.xml',{document:?})\nz.close()\n"
    );
    let st = std::process::Command::new("python3").args(["-c", &script]).arg(path).status().unwrap();
    assert!(st.success());
}

#[test]
fn doc_converts_docx_to_text_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("report.docx");
    make_docx(&input);
    let md = String::from_utf8(ok(process("doc/markdown", &input, &[]))).unwrap();
    assert!(md.contains("# Quarterly report"), "{md}");
    assert!(md.contains("Sales grew."), "{md}");
    assert!(md.contains("- First point") || md.contains("1. First point"), "{md}");
    assert!(md.contains("| Region | Total |") && md.contains("| North | 42 |"), "{md}");
    let text = String::from_utf8(ok(process("doc/text", &input, &[]))).unwrap();
    assert!(text.contains("Quarterly report") && text.contains("North\t42"), "{text}");
    let bad = dir.path().join("broken.docx");
    std::fs::write(&bad, b"PK\x03\x04 not really a zip").unwrap();
    let o = process("doc/text", &bad, &[]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("unsupported input"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A 24-bit BMP of `w`×`h` with a colour gradient, written by hand: the test
/// needs no image library, and the plugin converts it into the other formats.
fn bmp(w: u32, h: u32) -> Vec<u8> {
    let row = (w * 3).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut b = Vec::with_capacity(size as usize);
    b.extend_from_slice(b"BM");
    for v in [size, 0, 54, 40] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&(w as i32).to_le_bytes());
    b.extend_from_slice(&(h as i32).to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&24u16.to_le_bytes());
    for v in [0u32, row * h, 2835, 2835, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for y in 0..h {
        for x in 0..w {
            b.extend_from_slice(&[(x * 255 / w) as u8, (y * 255 / h) as u8, 128]);
        }
        b.resize(b.len() + (row - w * 3) as usize, 0);
    }
    b
}

fn info(path: &Path) -> serde_json::Value {
    // `info` answers with the task's result; `o_1` also writes it as the output read here.
    serde_json::from_slice(&ok(process("image/info,o_1", path, &[]))).unwrap()
}

/// A temporary folder holding `name`, a `w`×`h` BMP made by [`bmp`].
fn bmp_source(name: &str, w: u32, h: u32) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join(name);
    std::fs::write(&src, bmp(w, h)).unwrap();
    (dir, src)
}

#[test]
fn image_converts_resizes_crops_rotates_and_reports() {
    let (dir, src) = bmp_source("grad.bmp", 640, 480);
    let out = dir.path().join("out/");
    let o = out.to_str().unwrap();
    assert_eq!(info(&src)["width"], 640);

    // Each output format, resized; {autoext} follows the format.
    for (fmt, ext) in [("jpg", "jpg"), ("png", "png"), ("webp", "webp"), ("gif", "gif"), ("bmp", "bmp")] {
        let style = format!("image/resize,w_160/format,{fmt}");
        ok(process(&style, &src, &["-o", o]));
        let i = info(&out.join(format!("grad.{ext}")));
        assert_eq!((i["width"].as_u64(), i["height"].as_u64()), (Some(160), Some(120)), "{style}: {i}");
        let expected = if fmt == "jpg" { "jpeg" } else { fmt };
        assert_eq!(i["format"], expected, "{style}: {i}");
    }
    // A JPEG in, made smaller (the DCT-scaled path), fill mode crops to the box.
    let jpg = out.join("grad.jpg");
    let thumbs = dir.path().join("thumbs/");
    ok(process("image/resize,w_64,h_64,m_fill/format,png", &jpg, &["-o", thumbs.to_str().unwrap()]));
    let i = info(&thumbs.join("grad.png"));
    assert_eq!((i["width"].as_u64(), i["height"].as_u64()), (Some(64), Some(64)), "{i}");

    let crops = dir.path().join("crops/");
    ok(process("image/crop,w_100,h_50,g_center/format,png", &src, &["-o", crops.to_str().unwrap()]));
    let i = info(&crops.join("grad.png"));
    assert_eq!((i["width"].as_u64(), i["height"].as_u64()), (Some(100), Some(50)), "{i}");

    let rot = dir.path().join("rot/");
    ok(process("image/rotate,90/format,png", &src, &["-o", rot.to_str().unwrap()]));
    let i = info(&rot.join("grad.png"));
    assert_eq!((i["width"].as_u64(), i["height"].as_u64()), (Some(480), Some(640)), "{i}");
}

/// PSNR in dB between two 24-bit BMPs of the same size, header excluded.
fn bmp_psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let sum: f64 = a[54..].iter().zip(&b[54..]).map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2)).sum();
    10.0 * (255.0 * 255.0 / (sum / (a.len() - 54) as f64)).log10()
}

#[test]
fn image_writes_lossy_webp_at_the_quality() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("grad.bmp");
    let original = bmp(640, 480);
    std::fs::write(&src, &original).unwrap();
    let mut results = Vec::new();
    for style in [
        "image/format,webp/quality,Q_30",
        "image/format,webp/quality,Q_80",
        "image/format,webp",
        "image/format,webp/quality,Q_95",
    ] {
        let out = dir.path().join(format!("{}/", results.len()));
        ok(process(style, &src, &["-o", out.to_str().unwrap()]));
        let webp = std::fs::read(out.join("grad.webp")).unwrap();
        assert_eq!(&webp[12..16], b"VP8 ", "{style}: a lossy frame");
        // Back to BMP through the plugin's WebP decoder, to compare pixels.
        ok(process("image/format,bmp", &out.join("grad.webp"), &["-o", out.to_str().unwrap()]));
        let back = std::fs::read(out.join("grad.bmp")).unwrap();
        results.push((style, webp, bmp_psnr(&original, &back)));
    }
    let [q30, q80, default, q95] = &results[..] else { unreachable!() };
    assert!(
        q30.1.len() < q80.1.len() && q80.1.len() < q95.1.len(),
        "{:?}",
        results.iter().map(|r| r.1.len()).collect::<Vec<_>>()
    );
    assert_eq!(default.1, q80.1, "the default quality is 80");
    assert!(q30.2 > 28.0 && q80.2 > 35.0 && q95.2 > q80.2, "{:?}", results.iter().map(|r| r.2).collect::<Vec<_>>());
    // Lossless would be several times larger: 921 600 bytes of pixels.
    assert!(q80.1.len() < 40_000, "{}", q80.1.len());
}

/// The WebP output decodes with libwebp, the reference decoder (through
/// Pillow, which `scripts/test` installs), at the right size and close to the
/// source: odd dimensions, which are not whole macroblocks, included.
#[test]
fn image_webp_output_decodes_with_libwebp() {
    let (dir, src) = bmp_source("odd.bmp", 333, 211);
    let out = dir.path().join("out/");
    ok(process("image/format,webp/quality,Q_80", &src, &["-o", out.to_str().unwrap()]));
    let script = "import math, sys\n\
        from PIL import Image, features\n\
        a = Image.open(sys.argv[1]).convert('RGB')\n\
        b = Image.open(sys.argv[2]); b.load()\n\
        mse = sum((x - y) ** 2 for x, y in zip(a.tobytes(), b.convert('RGB').tobytes())) / (a.width * a.height * 3)\n\
        print(b.format, b.width, b.height, features.version('webp'), round(10 * math.log10(255 * 255 / mse), 1))\n";
    let o = std::process::Command::new("python3")
        .args(["-c", script, src.to_str().unwrap(), out.join("odd.webp").to_str().unwrap()])
        .output()
        .expect("python3 is needed (with Pillow: `pip install pillow`; scripts/test installs it)");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "Pillow could not decode the WebP (is Pillow installed?): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let fields: Vec<&str> = stdout.split_whitespace().collect();
    assert_eq!(fields[..3], ["WEBP", "333", "211"], "{stdout}");
    let psnr: f64 = fields[4].parse().unwrap();
    assert!(psnr > 35.0, "libwebp {}: PSNR {psnr} dB", fields[3]);
}

/// A baseline JPEG of `w`×`h` in mid grey, written by hand so that it stays
/// small: three components, one Huffman code per table (DC difference 0, end
/// of block), so every block is two zero bits.
fn grey_jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut j = vec![0xff, 0xd8];
    let mut segment = |marker: u8, body: &[u8]| {
        j.extend_from_slice(&[0xff, marker]);
        j.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
        j.extend_from_slice(body);
    };
    segment(0xdb, &[[0u8].as_slice(), &[1; 64]].concat());
    let [hh, hl] = h.to_be_bytes();
    let [wh, wl] = w.to_be_bytes();
    segment(0xc0, &[8, hh, hl, wh, wl, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
    let one_code = |class: u8| [[class].as_slice(), &[1], &[0; 15], &[0]].concat();
    segment(0xc4, &[one_code(0x00), one_code(0x10)].concat());
    segment(0xda, &[3, 1, 0, 2, 0, 3, 0, 0, 63, 0]);
    let blocks = usize::from(w).div_ceil(8) * usize::from(h).div_ceil(8) * 3;
    j.resize(j.len() + (blocks * 2).div_ceil(8), 0);
    j.extend_from_slice(&[0xff, 0xd9]);
    j
}

#[test]
fn image_too_large_for_the_memory_limit_is_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("huge.jpg");
    let jpeg = grey_jpeg(20_000, 12_000);
    assert!(jpeg.len() < 3 << 20);
    std::fs::write(&src, &jpeg).unwrap();
    let i = info(&src);
    assert_eq!((i["width"].as_u64(), i["height"].as_u64()), (Some(20_000), Some(12_000)), "{i}");

    // 240 MP is within the pixel limit, but decoding it whole takes over a
    // GiB: refused before decoding, with what to change (not a trap).
    let out = dir.path().join("out/");
    let o = process("image/format,png", &src, &["-o", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("unsupported input"), "{err}");
    for needle in ["20000x12000", "240.0 MP", "GiB of memory", "limits.max_memory", "limits,mp_"] {
        assert!(err.contains(needle), "`{needle}` missing: {err}");
    }
    assert!(!err.contains("memory limit of"), "a clean refusal, not the limiter's trap: {err}");

    // A thumbnail of it is decoded at 1/8 scale and fits.
    ok(process("image/resize,w_256", &src, &["-o", out.to_str().unwrap()]));
    let i = info(&out.join("huge.jpg"));
    assert_eq!((i["width"].as_u64(), i["height"].as_u64()), (Some(256), Some(154)), "{i}");
}

#[test]
fn image_refuses_bad_parameters_corrupt_input_and_bombs() {
    let (dir, src) = bmp_source("grad.bmp", 64, 48);
    let o = process("image/resize,m_stretch", &src, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("`resize`") && err.contains("`m`"), "{err}");
    let o = process("image/format,tiff", &src, &[]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("tiff"));

    let junk = dir.path().join("junk.jpg");
    std::fs::write(&junk, b"\xff\xd8\xff\xe0 truncated jpeg").unwrap();
    let o = process("image/resize,w_10", &junk, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("unsupported input"), "{err}");

    // A header that claims 40000 x 40000 pixels: refused before decoding.
    let mut bomb = bmp(4, 4);
    bomb[18..22].copy_from_slice(&40_000i32.to_le_bytes());
    bomb[22..26].copy_from_slice(&40_000i32.to_le_bytes());
    let bomb_path = dir.path().join("bomb.bmp");
    std::fs::write(&bomb_path, bomb).unwrap();
    let o = process("image/resize,w_10", &bomb_path, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("unsupported input"), "{err}");
}
