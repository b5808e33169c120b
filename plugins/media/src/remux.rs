//! `media/mp4`: MOV/MP4/M4V/3GP to a faststart MP4 without re-encoding.
//!
//! The output is `ftyp` + `moov` + one `mdat`. The `moov` is the source's,
//! box for box, with only what MP4 requires changed (see `to_mp4`), and the
//! chunk offsets (`stco`/`co64`) moved to the new layout. The `mdat` is the
//! source's `mdat` payloads one after another, copied in bounded chunks:
//! memory is the index's size, never the media's.

use std::io::Write;

use kiln_plugin_sdk::serde_json::{Value, json};

use crate::MediaError;
use crate::boxes::{Body, Cursor, FourCc, Node, Source, TopBox, name, parse_moov, scan_top, write_header};
use crate::entries::{Entry, Kind, codec_name, mp4_carries, parse_esds};
use crate::lang;

/// The largest `moov` read into memory: a 10-hour video's index is a few
/// MiB; the tree and the rewritten copy make it about three times this.
pub const MAX_MOOV: u64 = 64 << 20;
/// Bytes copied per read of the media data: 1 MiB measured faster than 4
/// and 16 MiB through the host (2.9 s against 3.5 s for 200 MB) and keeps
/// the plugin's memory smaller.
const COPY_CHUNK: usize = 1 << 20;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Drop `udta` and `meta` (GPS `©xyz`, maker and model, Apple's keys).
    pub strip_metadata: bool,
    /// Drop tracks MP4 cannot carry instead of refusing the file.
    pub drop_unsupported: bool,
}

/// The file's boxes: where the `moov` is, and the `mdat`s the media is in.
pub struct Layout {
    pub tops: Vec<TopBox>,
    pub moov: Node,
}

/// Find and parse the `moov`, refusing fragmented and incomplete files.
pub fn read_layout(src: &mut Source) -> Result<Layout, MediaError> {
    let tops = scan_top(src)?;
    if tops.iter().any(|b| &b.kind == b"moof") {
        return Err(MediaError::Fragmented);
    }
    let mut moovs = tops.iter().filter(|b| &b.kind == b"moov");
    let moov = *moovs.next().ok_or(MediaError::NoMoov)?;
    if moovs.next().is_some() {
        return Err(MediaError::Corrupt("more than one `moov` box".into()));
    }
    let len = moov.size - moov.header;
    if len > MAX_MOOV {
        return Err(MediaError::Corrupt(format!(
            "the `moov` index is {len} bytes, over the {MAX_MOOV} this plugin reads"
        )));
    }
    // `len` <= MAX_MOOV fits in usize.
    let payload = src.read_exact_at(moov.payload_start(), len as usize)?;
    let moov = parse_moov(&payload)?;
    if moov.child(b"mvex").is_some() {
        return Err(MediaError::Fragmented);
    }
    if moov.child(b"cmov").is_some() {
        return Err(MediaError::Unsupported("a compressed `moov` (`cmov`, old QuickTime) is not supported".into()));
    }
    Ok(Layout { tops, moov })
}

/// A track's handler type (`vide`, `soun`, …) from `mdia/hdlr`.
pub fn handler(trak: &Node) -> FourCc {
    let p = trak.find(&[b"mdia", b"hdlr"]).map(Node::payload).unwrap_or(&[]);
    p.get(8..12).and_then(|s| s.try_into().ok()).unwrap_or(*b"    ")
}

/// The sample entries of a track.
pub fn sample_entries(trak: &Node) -> &[Node] {
    trak.find(&[b"mdia", b"minf", b"stbl", b"stsd"]).map(Node::children).unwrap_or(&[])
}

/// A remux ready to write: everything that can refuse the file is done.
pub struct Prepared {
    /// `ftyp`, `moov` and the `mdat` header.
    head: Vec<u8>,
    mdats: Vec<TopBox>,
    pub report: Value,
}

/// Read and rewrite the index; nothing is written yet.
pub fn prepare(src: &mut Source, opts: Options) -> Result<Prepared, MediaError> {
    prepare_with(src, opts, u64::from(u32::MAX))
}

/// `prepare`, with chunk offsets above `max32` written as 64-bit (`co64`):
/// `u32::MAX`, except in tests that check `co64` without a 4 GiB file.
pub(crate) fn prepare_with(src: &mut Source, opts: Options, max32: u64) -> Result<Prepared, MediaError> {
    let Layout { tops, mut moov } = read_layout(src)?;
    let dropped = to_mp4(&mut moov, opts)?;
    let mdats: Vec<TopBox> = tops.iter().filter(|b| &b.kind == b"mdat").copied().collect();
    let media: u64 = mdats.iter().map(|b| b.size - b.header).sum();

    // Chunk offsets relative to the start of the new `mdat`'s payload.
    let mut tables = Vec::new();
    let traks = moov.children_mut().ok_or(MediaError::NoMoov)?;
    for (n, trak) in traks.iter_mut().filter(|t| &t.kind == b"trak").enumerate() {
        let stbl = trak
            .find_mut(&[b"mdia", b"minf", b"stbl"])
            .ok_or_else(|| MediaError::Corrupt(format!("track {} has no sample table", n + 1)))?;
        check_tables(stbl)?;
        let offsets = chunk_offsets(stbl)?;
        let rel = offsets.iter().map(|&o| relative(o, &mdats, n)).collect::<Result<Vec<u64>, _>>()?;
        tables.push(rel);
    }

    let brands = brands(&moov);
    let ftyp = ftyp(&brands);
    let mdat_header = if crate::boxes::needs_large(media) { 16 } else { 8 };
    // The offsets depend on the `moov`'s size, which depends on whether they
    // need 64 bits: try 32 first, as ffmpeg does.
    let mut wide = false;
    for _ in 0..2 {
        set_offsets(&mut moov, &tables, 0, wide)?;
        let base = ftyp.len() as u64 + moov.size() + mdat_header;
        let max = tables.iter().flatten().max().copied().unwrap_or(0) + base;
        if wide || max <= max32 {
            set_offsets(&mut moov, &tables, base, wide)?;
            break;
        }
        wide = true;
    }

    let mut head = ftyp;
    moov.write(&mut head);
    write_header(&mut head, b"mdat", media);
    let report = json!({
        "tracks": tables.len(),
        "dropped": dropped,
        "co64": wide,
        "moov_bytes": moov.size(),
        "mdat_bytes": media,
        "size": head.len() as u64 + media,
    });
    Ok(Prepared { head, mdats, report })
}

/// Write the prepared head, then the media data in bounded chunks.
pub fn write(src: &mut Source, prepared: &Prepared, out: &mut impl Write) -> Result<(), MediaError> {
    out.write_all(&prepared.head).map_err(MediaError::Write)?;
    let mut buf = Vec::with_capacity(COPY_CHUNK);
    for mdat in &prepared.mdats {
        let mut at = mdat.payload_start();
        while at < mdat.end() {
            let n = (mdat.end() - at).min(COPY_CHUNK as u64) as usize;
            buf.clear();
            src.read_into(at, n, &mut buf)?;
            out.write_all(&buf).map_err(MediaError::Write)?;
            at += n as u64;
        }
    }
    Ok(())
}

/// Where a chunk at source offset `o` lands in the new `mdat` payload.
fn relative(o: u64, mdats: &[TopBox], track: usize) -> Result<u64, MediaError> {
    let mut before = 0;
    for m in mdats {
        if (m.payload_start()..=m.end()).contains(&o) {
            return Ok(before + o - m.payload_start());
        }
        before += m.size - m.header;
    }
    Err(MediaError::Corrupt(format!("track {} has a chunk at offset {o}, outside every `mdat`", track + 1)))
}

/// Check that the sample tables the output keeps as they are hold what they
/// claim, so a player of the output is not the first to meet a lie.
fn check_tables(stbl: &Node) -> Result<(), MediaError> {
    for (kind, entry) in [(b"stts", 8), (b"stsc", 12), (b"ctts", 8), (b"stss", 4)] {
        if let Some(table) = stbl.child(kind) {
            let mut c = Cursor::new(table.payload(), "sample table");
            c.take(4)?;
            c.count(entry).map_err(|_| {
                MediaError::Corrupt(format!(
                    "box `{}` claims {} entries, more than it holds",
                    name(*kind),
                    entry_count(table)
                ))
            })?;
        }
    }
    match stbl.child(b"stsz") {
        Some(stsz) => crate::info::sizes(stsz.payload()).map(|_| ()),
        // Compact sample sizes: rare, kept as they are.
        None if stbl.child(b"stz2").is_some() => Ok(()),
        None => Err(MediaError::Corrupt("a track has no sample sizes (`stsz`)".into())),
    }
}

fn entry_count(table: &Node) -> u32 {
    table.payload().get(4..8).map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The chunk offsets of a sample table, from `stco` or `co64`.
pub fn chunk_offsets(stbl: &Node) -> Result<Vec<u64>, MediaError> {
    if let Some(stco) = stbl.child(b"stco") {
        let mut c = Cursor::new(stco.payload(), "stco");
        c.take(4)?;
        let n = c.count(4)?;
        return (0..n).map(|_| c.u32().map(u64::from)).collect();
    }
    if let Some(co64) = stbl.child(b"co64") {
        let mut c = Cursor::new(co64.payload(), "co64");
        c.take(4)?;
        let n = c.count(8)?;
        return (0..n).map(|_| c.u64()).collect();
    }
    Err(MediaError::Corrupt("a track has no chunk offsets (`stco` or `co64`)".into()))
}

/// Replace each track's `stco`/`co64` with `base` + its relative offsets.
fn set_offsets(moov: &mut Node, tables: &[Vec<u64>], base: u64, wide: bool) -> Result<(), MediaError> {
    let traks = moov.children_mut().ok_or(MediaError::NoMoov)?;
    for (trak, rel) in traks.iter_mut().filter(|t| &t.kind == b"trak").zip(tables) {
        let Some(stbl) = trak.find_mut(&[b"mdia", b"minf", b"stbl"]) else { continue };
        let mut payload = Vec::with_capacity(8 + rel.len() * if wide { 8 } else { 4 });
        payload.extend_from_slice(&[0, 0, 0, 0]);
        payload.extend_from_slice(&(rel.len() as u32).to_be_bytes());
        for &r in rel {
            if wide {
                payload.extend_from_slice(&(base + r).to_be_bytes());
            } else {
                // Checked by the caller: with `wide` false every offset fits.
                payload.extend_from_slice(&((base + r) as u32).to_be_bytes());
            }
        }
        let kind = if wide { b"co64" } else { b"stco" };
        let children = stbl.children_mut().ok_or(MediaError::NoMoov)?;
        match children.iter_mut().find(|c| &c.kind == b"stco" || &c.kind == b"co64") {
            Some(table) => *table = Node::leaf(kind, payload),
            None => children.push(Node::leaf(kind, payload)),
        }
    }
    Ok(())
}

/// Make the `moov` MP4's: drop tracks MP4 cannot carry (or refuse), rewrite
/// QuickTime's audio entries, handlers, data references and languages, drop
/// padding and, if asked, metadata. The names of the dropped tracks.
fn to_mp4(moov: &mut Node, opts: Options) -> Result<Vec<String>, MediaError> {
    let children = moov.children_mut().ok_or(MediaError::NoMoov)?;
    let mut dropped = Vec::new();
    let mut number = 0;
    let mut kept = Vec::with_capacity(children.len());
    for mut node in children.drain(..) {
        match &node.kind {
            b"trak" => {
                number += 1;
                text_to_tx3g(&mut node);
                if let Some(codec) = unsupported(&node) {
                    if !opts.drop_unsupported {
                        return Err(MediaError::UnsupportedTrack { track: number, codec });
                    }
                    dropped.push(format!("track {number} ({codec})"));
                    continue;
                }
                trak_to_mp4(&mut node, number, opts)?;
                kept.push(node);
            }
            // QuickTime padding and preview atoms.
            b"free" | b"skip" | b"wide" | b"clip" | b"ctab" => {}
            b"udta" | b"meta" if opts.strip_metadata => {}
            _ => kept.push(node),
        }
    }
    if kept.iter().all(|n| &n.kind != b"trak") {
        return Err(MediaError::Corrupt("no track left to write".into()));
    }
    *children = kept;
    Ok(dropped)
}

/// ffmpeg's MOV muxer writes 3GPP timed text (`tx3g`'s layout, its `ftab`
/// included) under QuickTime's `text` type. MP4 calls it `tx3g`, with the
/// handler `sbtl` and a null media header, as ffmpeg's MP4 muxer writes it.
/// Genuine QuickTime text has another layout and stays unsupported.
fn text_to_tx3g(trak: &mut Node) {
    let Some(stsd) = trak.find_mut(&[b"mdia", b"minf", b"stbl", b"stsd"]) else { return };
    let mut changed = false;
    for entry in stsd.children_mut().into_iter().flatten() {
        // SampleEntry (8), display flags (4), justification (2), colour (4),
        // box (8), style (12), then the `ftab` box.
        if &entry.kind == b"text" && entry.payload().get(42..46) == Some(b"ftab") {
            entry.kind = *b"tx3g";
            changed = true;
        }
    }
    if !changed {
        return;
    }
    if let Some(hdlr) = trak.find_mut(&[b"mdia", b"hdlr"])
        && let Body::Leaf(p) = &mut hdlr.body
        && p.get(8..12) == Some(b"text")
    {
        p[8..12].copy_from_slice(b"sbtl");
    }
    if let Some(minf) = trak.find_mut(&[b"mdia", b"minf"]).and_then(Node::children_mut) {
        for child in minf.iter_mut().filter(|c| &c.kind == b"gmhd") {
            *child = Node::leaf(b"nmhd", vec![0; 4]);
        }
    }
}

/// The codec of a track's first sample entry MP4 cannot carry.
fn unsupported(trak: &Node) -> Option<String> {
    let kind = Kind::from_handler(&handler(trak));
    sample_entries(trak).iter().find(|e| !mp4_carries(&e.kind)).map(|e| {
        let object_type = Entry::parse(e, kind)
            .ok()
            .flatten()
            .and_then(|entry| entry.find(b"esds").and_then(|n| parse_esds(n.payload())).map(|(t, _)| t));
        let codec = codec_name(&e.kind, object_type).unwrap_or_default();
        format!("{codec} (`{}`)", name(e.kind))
    })
}

fn trak_to_mp4(trak: &mut Node, number: usize, opts: Options) -> Result<(), MediaError> {
    let kind = Kind::from_handler(&handler(trak));
    let corrupt = |what: &str| MediaError::Corrupt(format!("track {number} has no `{what}`"));
    if let Some(children) = trak.children_mut() {
        children.retain(|c| {
            let padding = matches!(&c.kind, b"free" | b"skip" | b"wide" | b"clip" | b"matt" | b"load" | b"imap");
            let metadata = opts.strip_metadata && matches!(&c.kind, b"udta" | b"meta");
            !padding && !metadata
        });
    }
    let mdia = trak.child_mut(b"mdia").ok_or_else(|| corrupt("mdia"))?;
    if let Some(mdhd) = mdia.child_mut(b"mdhd")
        && let Body::Leaf(p) = &mut mdhd.body
    {
        let at = if p.first() == Some(&1) { 32 } else { 20 };
        if let Some(code) = p.get_mut(at..at + 2) {
            let mp4 = lang::to_mp4(u16::from_be_bytes([code[0], code[1]]));
            code.copy_from_slice(&mp4.to_be_bytes());
        }
    }
    if let Some(hdlr) = mdia.child_mut(b"hdlr")
        && let Body::Leaf(p) = &mut hdlr.body
    {
        *p = hdlr_to_mp4(p);
    }
    let minf = mdia.child_mut(b"minf").ok_or_else(|| corrupt("minf"))?;
    // QuickTime's data handler (`dhlr`): MP4 has none in `minf`.
    minf.children_mut().ok_or_else(|| corrupt("minf"))?.retain(|c| &c.kind != b"hdlr");
    if let Some(dref) = minf.find_mut(&[b"dinf", b"dref"]) {
        for entry in dref.children_mut().into_iter().flatten() {
            let flags = entry.payload().get(3).copied().unwrap_or(0);
            if flags & 1 == 0 {
                return Err(MediaError::Unsupported(format!(
                    "track {number} refers to media in another file (`{}` data reference)",
                    name(entry.kind)
                )));
            }
            // QuickTime's self-reference is an alias record; MP4's is `url `.
            *entry = Node::leaf(b"url ", vec![0, 0, 0, 1]);
        }
    }
    if kind == Kind::Audio
        && let Some(stsd) = minf.find_mut(&[b"stbl", b"stsd"])
    {
        for node in stsd.children_mut().into_iter().flatten() {
            if let Some(mut entry) = Entry::parse(node, kind)? {
                entry.audio_to_mp4()?;
                *node = entry.to_node();
            }
        }
    }
    Ok(())
}

/// An MP4 `hdlr`: `pre_defined` and the reserved fields zero (QuickTime puts
/// the component type and manufacturer there), the name a C string
/// (QuickTime's is a Pascal string).
fn hdlr_to_mp4(p: &[u8]) -> Vec<u8> {
    if p.len() < 24 {
        return p.to_vec();
    }
    let mut out = vec![0u8; 24];
    out[..4].copy_from_slice(&p[..4]);
    out[8..12].copy_from_slice(&p[8..12]);
    let name = &p[24..];
    // ffmpeg's test: a first byte equal to the rest's length is a Pascal string.
    let text = match name.split_first() {
        Some((&len, rest)) if usize::from(len) == rest.len() => rest,
        _ => name.split(|&b| b == 0).next().unwrap_or(&[]),
    };
    out.extend_from_slice(text);
    out.push(0);
    out
}

/// The compatible brands: ffmpeg's MP4 set, with `avc1` for H.264.
fn brands(moov: &Node) -> Vec<FourCc> {
    let h264 = moov
        .children()
        .iter()
        .filter(|t| &t.kind == b"trak")
        .any(|t| sample_entries(t).iter().any(|e| &e.kind == b"avc1" || &e.kind == b"avc3"));
    let mut brands = vec![*b"isom", *b"iso2"];
    if h264 {
        brands.push(*b"avc1");
    }
    brands.extend([*b"mp41", *b"mp42"]);
    brands
}

fn ftyp(brands: &[FourCc]) -> Vec<u8> {
    let mut payload = b"isom".to_vec();
    payload.extend_from_slice(&512u32.to_be_bytes());
    for b in brands {
        payload.extend_from_slice(b);
    }
    let mut out = Vec::new();
    Node::leaf(b"ftyp", payload).write(&mut out);
    out
}
