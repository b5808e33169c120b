//! `compress`: gzip, zstd and brotli compression, and decompression of all
//! three, streamed: memory stays the same whatever the object's size.
//!
//! | style | output |
//! |---|---|
//! | `compress` or `compress/gzip[,l_0..9]` (default 6) | `.gz` |
//! | `compress/zstd[,l_1..22]` | `.zst` |
//! | `compress/brotli[,q_0..11 or l_0..11]` (default 6) | `.br` |
//! | `compress/decompress` | the inner extension of the key (`a.txt.gz` → `txt`) |
//!
//! zstd is `structured-zstd`, a pure-Rust port of libzstd: each level runs
//! libzstd's parameters for that level (fast, dfast, greedy, lazy, lazy2,
//! btlazy2, btopt, btultra, btultra2), so sizes follow the C zstd's.
//! Decompression reads any zstd stream.

use std::cell::RefCell;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::rc::Rc;

use kiln_plugin_sdk::{Action, Input, ObjectInfo, Outputs, PluginInfo, ProcessError, Processor, Style, StyleError};

pub struct Compress;

const ACTIONS: &[&str] = &["gzip", "zstd", "brotli", "decompress"];

/// I/O buffer between the input and the codec.
const BUF: usize = 256 * 1024;

/// Largest zstd window accepted when decompressing (the format allows up to
/// 3.75 TiB; zstd's own CLI refuses more than 128 MiB without `--long`).
const ZSTD_MAX_WINDOW: u64 = 128 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Gzip { level: u32 },
    Zstd { level: i32 },
    Brotli { quality: u32 },
    Decompress,
}

fn parse(params: &str) -> Result<Mode, StyleError> {
    let style = Style::parse(params)?;
    if let [first, second, ..] = style.actions.as_slice() {
        return Err(StyleError::UnknownAction {
            action: second.name.clone(),
            expected: format!("nothing after `{}` (compress takes one action)", first.name),
        });
    }
    let Some(action) = style.actions.first() else {
        return Ok(Mode::Gzip { level: 6 });
    };
    Ok(match action.name.as_str() {
        "gzip" => {
            action.expect_keys(&["l"], false)?;
            Mode::Gzip { level: action.get_in::<u32>("l", 0..=9)?.unwrap_or(6) }
        }
        "zstd" => {
            action.expect_keys(&["l"], false)?;
            Mode::Zstd { level: action.get_in::<i32>("l", 1..=22)?.unwrap_or(3) }
        }
        "brotli" => {
            action.expect_keys(&["q", "l"], false)?;
            Mode::Brotli { quality: brotli_quality(action)? }
        }
        "decompress" => {
            action.expect_keys(&[], false)?;
            Mode::Decompress
        }
        other => return Err(kiln_plugin_sdk::style::unknown_action(other, ACTIONS)),
    })
}

fn brotli_quality(action: &Action) -> Result<u32, StyleError> {
    let q = action.get_in::<u32>("q", 0..=11)?;
    let l = action.get_in::<u32>("l", 0..=11)?;
    match (q, l) {
        (Some(_), Some(_)) => {
            Err(action.invalid("l", action.raw("l").unwrap_or_default(), "give either `q` or `l`, not both"))
        }
        (q, l) => Ok(q.or(l).unwrap_or(6)),
    }
}

impl Processor for Compress {
    fn info() -> PluginInfo {
        PluginInfo::new(
            "compress",
            env!("CARGO_PKG_VERSION"),
            "gzip, zstd and brotli compression and decompression, streamed",
        )
        .writes(&["gz", "zst", "br"])
    }

    fn validate(params: &str) -> Result<(), StyleError> {
        parse(params).map(|_| ())
    }

    /// What a dry run shows for `{autoext}`; decompressing keeps the inner
    /// name's extension, which depends on the object.
    fn extension(params: &str) -> Option<String> {
        match parse(params).ok()? {
            Mode::Gzip { .. } => Some("gz".into()),
            Mode::Zstd { .. } => Some("zst".into()),
            Mode::Brotli { .. } => Some("br".into()),
            Mode::Decompress => None,
        }
    }

    fn process(
        params: &str,
        object: &ObjectInfo,
        input: &mut Input<'_>,
        outputs: &mut Outputs<'_>,
    ) -> Result<(), ProcessError> {
        match parse(params)? {
            Mode::Gzip { level } => {
                let out = outputs.open(Some("gz"))?;
                let mut header = flate2::GzBuilder::new();
                if let Some(name) = file_name(&object.key).filter(|n| !n.is_empty() && !n.contains('\0')) {
                    header = header.filename(name);
                }
                if let Some(t) = object.last_modified.and_then(|t| u32::try_from(t).ok()) {
                    header = header.mtime(t);
                }
                let mut enc = header.write(out, flate2::Compression::new(level));
                pump(input, &mut enc)?;
                enc.finish()?;
            }
            Mode::Zstd { level } => {
                let out = outputs.open(Some("zst"))?;
                zstd_compress(level, object.size, input, out)?;
            }
            Mode::Brotli { quality } => {
                let mut out = outputs.open(Some("br"))?;
                let params =
                    brotli::enc::BrotliEncoderParams { quality: quality as i32, lgwin: 22, ..Default::default() };
                brotli::BrotliCompress(input, &mut out, &params)?;
            }
            Mode::Decompress => decompress(object, input, outputs)?,
        }
        Ok(())
    }
}

kiln_plugin_sdk::export!(Compress);

/// The last segment of an object key.
fn file_name(key: &str) -> Option<&str> {
    key.rsplit('/').next()
}

/// Copy `input` into `out` with a large buffer (std's `io::copy` uses 8 KiB).
fn pump(input: &mut impl Read, out: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; BUF];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        out.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// zstd at `level`, with the parameters (window, match finder, strategy) of
/// libzstd's level table, sized to the object when its size is known. The
/// memory the level needs is reserved first, so a level too large for the
/// task's memory limit is refused with a message rather than a crash.
fn zstd_compress(level: i32, size: Option<u64>, input: &mut Input<'_>, out: impl Write) -> Result<(), ProcessError> {
    use structured_zstd::encoding::{
        CompressionLevel, StreamingEncoder, estimated_compression_workspace_bytes_for_source,
    };
    let zl = CompressionLevel::from_level(level);
    let needed = estimated_compression_workspace_bytes_for_source(zl, size) as u64;
    kiln_plugin_sdk::memory::reserve(needed).map_err(|_| {
        let object = size.map_or_else(|| "an object of unknown size".to_string(), |n| format!("an object of {n} bytes"));
        ProcessError::unsupported(format!(
            "zstd level {level} needs about {} of memory for {object}, which the task's memory limit (limits.max_memory) refused: \
             use a lower level or raise the limit",
            kiln_plugin_sdk::memory::human_bytes(needed)
        ))
    })?;
    let zstd_error = |e: io::Error| ProcessError::failed(format!("zstd: {e}"));
    let mut enc = StreamingEncoder::new(out, zl);
    enc.set_content_checksum(true).map_err(zstd_error)?;
    if let Some(n) = size {
        enc.set_source_size_hint(n).map_err(zstd_error)?;
    }
    pump(input, &mut enc)?;
    enc.finish()?;
    Ok(())
}

/// Which codec a compressed object uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    Gzip,
    Zstd,
    Brotli,
}

impl Codec {
    fn name(self) -> &'static str {
        match self {
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Brotli => "brotli",
        }
    }
}

/// Detect the codec from the first bytes; brotli has no magic number, so it is
/// assumed only for keys ending in `.br`.
fn detect(head: &[u8], key_ext: Option<&str>) -> Option<Codec> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(Codec::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) || is_zstd_skippable(head) {
        Some(Codec::Zstd)
    } else if key_ext == Some("br") && !head.is_empty() {
        Some(Codec::Brotli)
    } else {
        None
    }
}

fn is_zstd_skippable(head: &[u8]) -> bool {
    head.len() >= 4 && head[0] & 0xf0 == 0x50 && head[1..4] == [0x2a, 0x4d, 0x18]
}

/// The extension of the decompressed object: the key without its compression
/// extension (`a.txt.gz` → `txt`, `a.tgz` → `tar`, `a.gz` → none); a key with
/// another extension keeps it (`data.json` stored gzip-encoded → `json`).
fn inner_extension(key: &str) -> Option<String> {
    let name = file_name(key).unwrap_or(key);
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, ext.to_ascii_lowercase()),
        _ => return None,
    };
    match ext.as_str() {
        "gz" | "gzip" | "zst" | "zstd" | "br" | "z" => match stem.rsplit_once('.') {
            Some((s, inner)) if !s.is_empty() && !inner.is_empty() => Some(inner.to_ascii_lowercase()),
            _ => None,
        },
        "tgz" | "tzst" | "tbr" => Some("tar".into()),
        _ => Some(ext),
    }
}

/// Reads the object and remembers whether an error came from the host (a
/// failure) rather than from the decoder (corrupt data).
struct SourceReader<'a, 'b> {
    input: &'a mut Input<'b>,
    failed: Rc<RefCell<bool>>,
}

impl Read for SourceReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf).inspect_err(|_| *self.failed.borrow_mut() = true)
    }
}

fn decompress(object: &ObjectInfo, input: &mut Input<'_>, outputs: &mut Outputs<'_>) -> Result<(), ProcessError> {
    let failed = Rc::new(RefCell::new(false));
    let source = SourceReader { input, failed: failed.clone() };
    let mut source = BufReader::with_capacity(BUF, source);
    let head = source.fill_buf().map_err(|e| ProcessError::failed(format!("reading the object: {e}")))?.to_vec();
    let key_ext = object.extension();
    let codec = match detect(&head, key_ext.as_deref()) {
        Some(c) => c,
        None if head.is_empty() => return Err(ProcessError::unsupported("the object is empty: nothing to decompress")),
        None => {
            return Err(ProcessError::unsupported(
                "not a gzip or zstd stream (no magic number), and brotli, which has none, is only assumed for keys ending in .br",
            ));
        }
    };
    let mut decoder: Box<dyn Read + '_> = match codec {
        Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(source)),
        Codec::Zstd => Box::new(ZstdFrames::new(source)),
        Codec::Brotli => Box::new(brotli::Decompressor::new(source, BUF)),
    };
    let mut out = outputs.open(inner_extension(&object.key).as_deref())?;
    let mut buf = vec![0u8; BUF];
    loop {
        let n = match decoder.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if *failed.borrow() => return Err(ProcessError::failed(format!("reading the object: {e}"))),
            Err(e) => return Err(ProcessError::unsupported(format!("corrupt {} data: {e}", codec.name()))),
        };
        out.write_all(&buf[..n])?;
    }
    Ok(())
}

/// All the frames of a zstd stream, as `zstd -d` reads them: concatenated
/// frames are decoded one after the other and skippable frames are skipped.
/// Content checksums are verified.
struct ZstdFrames<R: BufRead> {
    source: R,
    decoder: structured_zstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        let mut decoder = structured_zstd::decoding::FrameDecoder::new();
        // Cannot fail: the limit is within what the format allows.
        let _ = decoder.set_max_window_size(ZSTD_MAX_WINDOW);
        ZstdFrames { source, decoder, in_frame: false }
    }
}

fn invalid(msg: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use structured_zstd::decoding::BlockDecodingStrategy;
        use structured_zstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if self.source.fill_buf()?.is_empty() {
                    return Ok(0); // the end of the stream, between frames
                }
                match self.decoder.init(&mut self.source) {
                    Ok(()) => self.in_frame = true,
                    Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                        length, ..
                    })) => {
                        let skipped = io::copy(&mut (&mut self.source).take(u64::from(length)), &mut io::sink())?;
                        if skipped < u64::from(length) {
                            return Err(invalid("truncated skippable frame"));
                        }
                    }
                    Err(e) => return Err(invalid(e)),
                }
                continue;
            }
            while self.decoder.can_collect() == 0 && !self.decoder.is_finished() {
                self.decoder.decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1)).map_err(invalid)?;
            }
            let n = self.decoder.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.decoder.is_finished() && self.decoder.can_collect() == 0 {
                if let (Some(stored), Some(computed)) =
                    (self.decoder.get_checksum_from_data(), self.decoder.get_calculated_checksum())
                    && stored != computed
                {
                    return Err(invalid(format!(
                        "content checksum mismatch (stored {stored:08x}, computed {computed:08x})"
                    )));
                }
                self.in_frame = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_plugin_sdk::testing::{run, run_with};

    fn object(key: &str) -> ObjectInfo {
        ObjectInfo { bucket: "b".into(), key: key.into(), ..Default::default() }
    }

    /// Text-like data with repetition, plus some noise so it is not trivial.
    fn sample(len: usize) -> Vec<u8> {
        let words = ["kiln ", "fires ", "clay ", "at ", "1200 ", "degrees\n", "glaze ", "pots "];
        let mut x: u32 = 12345;
        let mut v = Vec::with_capacity(len);
        while v.len() < len {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            v.extend_from_slice(words[(x >> 16) as usize % words.len()].as_bytes());
            if x.is_multiple_of(7) {
                v.push((x >> 8) as u8);
            }
        }
        v.truncate(len);
        v
    }

    /// Prose-like text: made-up words drawn by Zipf's law, in sentences and
    /// paragraphs. On it, as on most text, zstd's levels rank as they should.
    fn prose(len: usize) -> Vec<u8> {
        let syllables =
            ["ka", "lo", "mi", "ren", "to", "sa", "vel", "di", "on", "ar", "ek", "shu", "po", "la", "tin", "gro"];
        let mut x: u32 = 2;
        let mut next = move || {
            x = x.wrapping_mul(1103515245).wrapping_add(12345);
            x >> 8
        };
        let vocab: Vec<String> = (0..400)
            .map(|_| (0..1 + next() % 3).map(|_| syllables[next() as usize % syllables.len()]).collect())
            .collect();
        let mut v = Vec::with_capacity(len + 100);
        let mut words = 0;
        while v.len() < len {
            let rank = (10_000.0 / f64::from(next() % 10_000 + 1)) as usize;
            let word = &vocab[rank.clamp(1, vocab.len()) - 1];
            v.extend_from_slice(word.as_bytes());
            if words == 0 {
                let at = v.len() - word.len();
                v[at].make_ascii_uppercase();
            }
            words += 1;
            let r = next() % 100;
            if words > 4 && r < 12 {
                v.extend_from_slice(if r < 2 { b".\n\n" } else { b". " });
                words = 0;
            } else {
                v.extend_from_slice(if r < 18 { b", " } else { b" " });
            }
        }
        v.truncate(len);
        v
    }

    fn round_trip(style: &str, ext: &str, data: &[u8]) -> Vec<u8> {
        let out = run::<Compress>(style, data).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].extension.as_deref(), Some(ext));
        let compressed = out[0].bytes.clone();
        let back =
            run_with::<Compress>("decompress", &object(&format!("dir/file.txt.{ext}")), &compressed[..]).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].extension.as_deref(), Some("txt"));
        assert!(back[0].bytes == data, "{style}: round trip differs");
        compressed
    }

    #[test]
    fn gzip_round_trip_and_standard_format() {
        let data = sample(300_000);
        let c = round_trip("gzip,l_6", "gz", &data);
        assert!(c.len() < data.len() / 2, "gzip did not compress: {}", c.len());
        assert_eq!(&c[..3], &[0x1f, 0x8b, 8]);
        // Readable by an independent decoder (flate2's single-member reader).
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&c[..]).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, data);
        // Default is gzip level 6; level 0 stores; level 9 is no larger than 1.
        assert_eq!(run::<Compress>("", &data).unwrap()[0].bytes, c);
        let stored = round_trip("gzip,l_0", "gz", &data);
        assert!(stored.len() > data.len());
        assert!(round_trip("gzip,l_9", "gz", &data).len() <= round_trip("gzip,l_1", "gz", &data).len());
    }

    #[test]
    fn gzip_keeps_the_file_name_in_the_header() {
        let obj = ObjectInfo { key: "logs/app.log".into(), last_modified: Some(1_700_000_000), ..Default::default() };
        let c = run_with::<Compress>("gzip", &obj, &b"hello"[..]).unwrap().remove(0).bytes;
        let mut d = flate2::read::GzDecoder::new(&c[..]);
        let mut s = String::new();
        d.read_to_string(&mut s).unwrap();
        assert_eq!(s, "hello");
        let h = d.header().unwrap();
        assert_eq!(h.filename(), Some(&b"app.log"[..]));
        assert_eq!(h.mtime(), 1_700_000_000);
    }

    #[test]
    fn zstd_round_trip_and_frame_format() {
        let data = sample(500_000);
        let c = round_trip("zstd,l_3", "zst", &data);
        assert_eq!(&c[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
        assert!(c.len() < data.len() / 2, "zstd did not compress: {}", c.len());
        round_trip("zstd", "zst", &data);
        round_trip("zstd,l_19", "zst", b"");
    }

    #[test]
    fn zstd_levels_are_real() {
        // Levels run libzstd's strategies: fast (1-2), dfast (3-4), greedy (5),
        // lazy (6-7), lazy2 (8-12), btlazy2 (13-15), btopt (16-17), btultra
        // (18), btultra2 (19-22). Neighbouring levels are not ordered on every
        // input (nor are they in C zstd: level 2 is often a little larger than
        // level 1); these, one per strategy band, are on text.
        let data = prose(300_000);
        let obj = ObjectInfo { key: "book.txt".into(), size: Some(data.len() as u64), ..Default::default() };
        let mut sizes = Vec::new();
        for level in [1, 3, 5, 9, 12, 16, 19, 22] {
            let c = run_with::<Compress>(&format!("zstd,l_{level}"), &obj, &data[..]).unwrap().remove(0).bytes;
            let back = run_with::<Compress>("decompress", &object("book.txt.zst"), &c[..]).unwrap().remove(0).bytes;
            assert!(back == data, "l_{level}: round trip differs");
            // Frame header descriptor: content checksum flag, as the zstd CLI writes.
            assert_eq!(c[4] & 0b100, 0b100, "l_{level}: no checksum");
            sizes.push((level, c.len()));
        }
        for pair in sizes.windows(2) {
            assert!(
                pair[1].1 <= pair[0].1,
                "l_{} gives {} bytes, more than l_{}: {sizes:?}",
                pair[1].0,
                pair[1].1,
                pair[0].0
            );
        }
        let (lowest, highest) = (sizes[0].1, sizes[sizes.len() - 1].1);
        assert!(highest * 10 < lowest * 8, "l_22 should be over 20% smaller than l_1: {sizes:?}");
        // Without the object's size the window and tables are the level's full ones.
        let no_size = run::<Compress>("zstd,l_9", &data).unwrap().remove(0).bytes;
        assert_eq!(run_with::<Compress>("decompress", &object("a.zst"), &no_size[..]).unwrap()[0].bytes, data);
    }

    #[test]
    fn zstd_concatenated_and_skippable_frames() {
        let a = run::<Compress>("zstd", b"first ").unwrap().remove(0).bytes;
        let b = run::<Compress>("zstd", b"second").unwrap().remove(0).bytes;
        let mut stream = a.clone();
        stream.extend_from_slice(&[0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]); // skippable frame
        stream.extend_from_slice(&b);
        let out = run_with::<Compress>("decompress", &object("x.zst"), &stream[..]).unwrap();
        assert_eq!(out[0].bytes, b"first second");
    }

    #[test]
    fn brotli_round_trip_with_levels() {
        let data = sample(200_000);
        let c = round_trip("brotli", "br", &data);
        assert!(c.len() < data.len() / 2);
        let q11 = round_trip("brotli,q_11", "br", &data);
        let l1 = round_trip("brotli,l_1", "br", &data);
        assert!(q11.len() <= l1.len(), "q11 {} > q1 {}", q11.len(), l1.len());
        round_trip("brotli,q_0", "br", b"");
    }

    #[test]
    fn gzip_concatenated_members_decompress_like_gzip_cli() {
        let mut a = run::<Compress>("gzip", b"one ").unwrap().remove(0).bytes;
        a.extend(run::<Compress>("gzip", b"two").unwrap().remove(0).bytes);
        assert_eq!(run_with::<Compress>("decompress", &object("a.gz"), &a[..]).unwrap()[0].bytes, b"one two");
    }

    #[test]
    fn decompress_output_extension_follows_the_key() {
        let gz = run::<Compress>("gzip", b"x").unwrap().remove(0).bytes;
        for (key, ext) in [
            ("a/b/report.csv.gz", Some("csv")),
            ("archive.tgz", Some("tar")),
            ("plain.gz", None),
            ("served.json", Some("json")),
            ("noext", None),
            (".gz", None),
        ] {
            let out = run_with::<Compress>("decompress", &object(key), &gz[..]).unwrap();
            assert_eq!(out[0].extension.as_deref(), ext, "{key}");
            assert_eq!(out[0].bytes, b"x");
        }
    }

    #[test]
    fn corrupt_and_unknown_input_is_unsupported() {
        let unsupported = |key: &str, data: &[u8]| match run_with::<Compress>("decompress", &object(key), data) {
            Err(ProcessError::UnsupportedInput(m)) => m,
            other => panic!("{key}: expected unsupported input, got {other:?}"),
        };
        assert!(unsupported("a.gz", b"").contains("empty"));
        assert!(unsupported("a.txt", b"hello world").contains("magic"));
        // Brotli is tried only for .br keys, and garbage is refused.
        assert!(unsupported("a.br", b"\xff\xff\xff\xffnot brotli at all").contains("brotli"));
        // Truncated and corrupted streams of every codec.
        let data = sample(100_000);
        for (style, key) in [("gzip", "a.gz"), ("zstd", "a.zst"), ("brotli", "a.br")] {
            let c = run::<Compress>(style, &data).unwrap().remove(0).bytes;
            let m = unsupported(key, &c[..c.len() / 2]);
            assert!(m.contains("corrupt"), "{style} truncated: {m}");
            let mut bad = c.clone();
            for i in (20..bad.len()).step_by(97) {
                bad[i] ^= 0x5a;
            }
            // Corruption must be reported (or, for brotli, at worst decode to something else), never panic.
            match run_with::<Compress>("decompress", &object(key), &bad[..]) {
                Err(ProcessError::UnsupportedInput(_)) => {}
                Ok(out) => assert_ne!(out[0].bytes, data, "{style}"),
                Err(e) => panic!("{style}: {e:?}"),
            }
        }
        // A gzip header followed by garbage.
        assert!(unsupported("a.gz", b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage").contains("corrupt gzip"));
        assert!(unsupported("a.zst", b"\x28\xb5\x2f\xfd\xff\xff\xff").contains("corrupt zstd"));
    }

    #[test]
    fn garbage_never_panics() {
        let mut x: u32 = 7;
        for len in [1usize, 2, 3, 4, 5, 10, 100, 1000] {
            for prefix in [&[0x1f, 0x8b][..], &[0x28, 0xb5, 0x2f, 0xfd][..], &[][..]] {
                let mut data = prefix.to_vec();
                while data.len() < len + prefix.len() {
                    x = x.wrapping_mul(1664525).wrapping_add(1013904223);
                    data.push((x >> 24) as u8);
                }
                for key in ["a.gz", "a.zst", "a.br", "a"] {
                    let _ = run_with::<Compress>("decompress", &object(key), &data[..]);
                }
            }
        }
    }

    #[test]
    fn corrupted_zstd_frames_never_panic() {
        let data = prose(40_000);
        let mut x: u32 = 99;
        let mut next = move || {
            x = x.wrapping_mul(1664525).wrapping_add(1013904223);
            (x >> 8) as usize
        };
        for level in [1, 9, 19] {
            let good = run::<Compress>(&format!("zstd,l_{level}"), &data).unwrap().remove(0).bytes;
            for _ in 0..600 {
                let mut bad = good.clone();
                for _ in 0..1 + next() % 4 {
                    let at = next() % bad.len();
                    bad[at] = next() as u8;
                }
                if next() % 4 == 0 {
                    bad.truncate(next() % bad.len());
                }
                match run_with::<Compress>("decompress", &object("a.zst"), &bad[..]) {
                    Ok(out) => assert!(out[0].bytes.len() <= data.len() * 2),
                    Err(ProcessError::UnsupportedInput(_)) => {}
                    Err(e) => panic!("l_{level}: {e:?}"),
                }
            }
        }
    }

    #[test]
    fn bad_params_are_refused() {
        let err = |p: &str| Compress::validate(p).unwrap_err().to_string();
        assert!(err("gzip,l_10").contains("`gzip`") && err("gzip,l_10").contains("`l`"));
        assert!(err("gzip,x_1").contains("unknown parameter `x`"));
        assert!(err("zstd,l_0").contains("between 1 and 22") && err("zstd,l_0").contains("`l`"));
        assert!(err("zstd,l_23").contains("between 1 and 22") && err("zstd,l_23").contains("`zstd`"));
        assert!(err("zstd,l_-5").contains("`l`"));
        assert!(err("brotli,q_12").contains("between 0 and 11"));
        assert!(err("brotli,q_5,l_5").contains("either"));
        assert!(err("lz4").contains("gzip, zstd, brotli, decompress"));
        assert!(err("gzip/zstd").contains("one action"));
        assert!(err("decompress,l_1").contains("`l`"));
        assert!(matches!(run::<Compress>("gzip,l_abc", b"x"), Err(ProcessError::InvalidParams(_))));
    }
}
