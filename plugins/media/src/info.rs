//! `media/info`: the container and its streams from the `moov` alone, in the
//! names and units `ffprobe -show_format -show_streams` uses.

use kiln_plugin_sdk::serde_json::{Map, Value, json};

use crate::MediaError;
use crate::boxes::{Cursor, Node, Source, name};
use crate::entries::{Entry, Kind, codec_name, parse_asc, parse_esds, profile};
use crate::lang;
use crate::remux::{handler, read_layout, sample_entries};

/// Seconds from 1904-01-01 (QuickTime's epoch) to 1970-01-01.
const EPOCH_1904: i64 = 2_082_844_800;

/// The header fields of `mvhd` or `mdhd`: (creation time, timescale, duration).
fn times(payload: &[u8], what: &'static str) -> Result<(u64, u32, u64), MediaError> {
    let mut c = Cursor::new(payload, what);
    let version = c.u8()?;
    c.take(3)?;
    if version == 1 {
        let created = c.u64()?;
        c.u64()?;
        Ok((created, c.u32()?, c.u64()?))
    } else {
        let created = u64::from(c.u32()?);
        c.u32()?;
        Ok((created, c.u32()?, u64::from(c.u32()?)))
    }
}

/// The JSON answer for the file behind `src`.
pub fn info(src: &mut Source) -> Result<Value, MediaError> {
    let layout = read_layout(src)?;
    let moov = &layout.moov;
    let mut format = Map::new();
    if let Some(ftyp) = layout.tops.iter().find(|b| &b.kind == b"ftyp") {
        let len = (ftyp.size - ftyp.header).min(1024) as usize;
        let p = src.read_exact_at(ftyp.payload_start(), len)?;
        let mut c = Cursor::new(&p, "ftyp");
        format.insert("major_brand".into(), json!(name(c.fourcc()?)));
        format.insert("minor_version".into(), json!(c.u32()?));
        let brands: Vec<String> = p[8..].chunks_exact(4).map(|b| name([b[0], b[1], b[2], b[3]])).collect();
        format.insert("compatible_brands".into(), json!(brands));
    }
    let mvhd = moov.child(b"mvhd").ok_or(MediaError::Corrupt("no `mvhd` in the `moov`".into()))?;
    let (created, timescale, duration) = times(mvhd.payload(), "mvhd")?;
    let movie_scale = f64::from(timescale.max(1));
    let seconds = duration as f64 / movie_scale;
    format.insert("duration".into(), json!(seconds));
    if seconds > 0.0 {
        format.insert("bit_rate".into(), json!((src.size as f64 * 8.0 / seconds) as u64));
    }
    if created > 0 {
        format.insert("creation_time".into(), json!(rfc3339(created as i64 - EPOCH_1904)));
    }
    format.insert("size".into(), json!(src.size));
    let traks = moov.children().iter().filter(|t| &t.kind == b"trak");
    let streams = traks.enumerate().map(|(i, t)| stream(i, t, movie_scale)).collect::<Result<Vec<_>, _>>()?;
    format.insert("nb_streams".into(), json!(streams.len()));
    Ok(json!({ "format": format, "streams": streams, "bytes_read": src.bytes_read }))
}

fn stream(index: usize, trak: &Node, movie_scale: f64) -> Result<Value, MediaError> {
    let kind = Kind::from_handler(&handler(trak));
    let mut s = Map::new();
    s.insert("index".into(), json!(index));
    s.insert("codec_type".into(), json!(kind.name()));
    let mdhd =
        trak.find(&[b"mdia", b"mdhd"]).ok_or(MediaError::Corrupt(format!("track {} has no `mdhd`", index + 1)))?;
    let (_, scale, media_duration) = times(mdhd.payload(), "mdhd")?;
    let scale = f64::from(scale.max(1));
    let at = if mdhd.payload().first() == Some(&1) { 32 } else { 20 };
    if let Some(code) = mdhd.payload().get(at..at + 2)
        && let Some(language) = lang::to_iso(u16::from_be_bytes([code[0], code[1]]))
    {
        s.insert("language".into(), json!(language));
    }

    // ffmpeg takes a stream's duration from its edit list when it has one.
    let edited = trak.find(&[b"edts", b"elst"]).and_then(|e| edit_duration(e.payload()).ok()).filter(|&d| d > 0);
    let duration = edited.map_or(media_duration as f64 / scale, |d| d as f64 / movie_scale);
    s.insert("duration".into(), json!(duration));

    let stbl = trak.find(&[b"mdia", b"minf", b"stbl"]);
    let (frames, bytes) =
        stbl.and_then(|t| t.child(b"stsz")).map(|z| sizes(z.payload())).transpose()?.unwrap_or((0, 0));
    s.insert("nb_frames".into(), json!(frames));
    if duration > 0.0 && bytes > 0 {
        s.insert("bit_rate".into(), json!((bytes as f64 * 8.0 / (media_duration as f64 / scale)) as u64));
    }

    let Some(first) = sample_entries(trak).first() else { return Ok(Value::Object(s)) };
    s.insert("codec_tag_string".into(), json!(name(first.kind)));
    let entry = Entry::parse(first, kind)?;
    let esds = entry.as_ref().and_then(|e| e.find(b"esds")).and_then(|n| parse_esds(n.payload()));
    let codec = codec_name(&first.kind, esds.as_ref().map(|(t, _)| *t));
    if let Some(codec) = &codec {
        s.insert("codec_name".into(), json!(codec));
        if let Some(p) = entry.as_ref().and_then(|e| profile(codec, e)) {
            s.insert("profile".into(), json!(p));
        }
    }
    match (kind, &entry) {
        (Kind::Video, Some(e)) => {
            let (w, h) = e.video_size();
            s.insert("width".into(), json!(w));
            s.insert("height".into(), json!(h));
            if let Some(stts) = stbl.and_then(|t| t.child(b"stts")) {
                let (count, total) = deltas(stts.payload())?;
                if count > 0 && total > 0 {
                    let (num, den) = reduce(u128::from(scale as u64) * u128::from(count), u128::from(total));
                    s.insert("avg_frame_rate".into(), json!(format!("{num}/{den}")));
                    s.insert("frame_rate".into(), json!(num as f64 / den as f64));
                }
            }
            let rotation = trak.child(b"tkhd").map(|t| rotation(t.payload())).transpose()?.unwrap_or(0.0);
            s.insert("rotation".into(), json!(rotation));
        }
        (Kind::Audio, Some(e)) => {
            let (mut channels, mut rate) = e.audio_format().unwrap_or((0, 0.0));
            if let Some((_, rate_asc, ch)) = esds.as_ref().and_then(|(_, asc)| parse_asc(asc)) {
                rate = rate_asc.map_or(rate, f64::from);
                if ch > 0 {
                    channels = u32::from(ch);
                }
            }
            if rate == 0.0 {
                rate = scale;
            }
            s.insert("sample_rate".into(), json!(rate as u64));
            s.insert("channels".into(), json!(channels));
        }
        _ if &first.kind == b"tmcd" => {
            // Timecode: its frame rate is the entry's timescale over its frame duration.
            let mut c = Cursor::new(first.payload(), "tmcd");
            c.take(16)?;
            let (rate, frame) = (u64::from(c.u32()?), u64::from(c.u32()?));
            if rate > 0 && frame > 0 {
                let (num, den) = reduce(u128::from(rate), u128::from(frame));
                s.insert("avg_frame_rate".into(), json!(format!("{num}/{den}")));
                s.insert("frame_rate".into(), json!(num as f64 / den as f64));
            }
        }
        _ => {}
    }
    Ok(Value::Object(s))
}

/// The sum of an edit list's segment durations, in the movie's timescale.
fn edit_duration(elst: &[u8]) -> Result<u64, MediaError> {
    let mut c = Cursor::new(elst, "elst");
    let version = c.u8()?;
    c.take(3)?;
    let n = c.count(if version == 1 { 20 } else { 12 })?;
    let mut total = 0u64;
    for _ in 0..n {
        let (d, media_time) =
            if version == 1 { (c.u64()?, c.u64()? as i64) } else { (u64::from(c.u32()?), i64::from(c.u32()? as i32)) };
        c.u32()?; // rate
        // An empty edit (media time -1) delays the start; ffmpeg counts it
        // as the start time, not the duration.
        if media_time != -1 {
            total = total.saturating_add(d);
        }
    }
    Ok(total)
}

/// `stsz`: the sample count and their total size in bytes.
pub fn sizes(stsz: &[u8]) -> Result<(u64, u64), MediaError> {
    let mut c = Cursor::new(stsz, "stsz");
    c.take(4)?;
    let fixed = c.u32()?;
    if fixed != 0 {
        let n = u64::from(c.u32()?);
        return Ok((n, n * u64::from(fixed)));
    }
    let n = c.count(4)?;
    let mut total = 0u64;
    for _ in 0..n {
        total += u64::from(c.u32()?);
    }
    Ok((n as u64, total))
}

/// `stts`: the sample count and the sum of their durations.
fn deltas(stts: &[u8]) -> Result<(u64, u64), MediaError> {
    let mut c = Cursor::new(stts, "stts");
    c.take(4)?;
    let n = c.count(8)?;
    let (mut count, mut total) = (0u64, 0u64);
    for _ in 0..n {
        let k = u64::from(c.u32()?);
        let d = u64::from(c.u32()?);
        count += k;
        total = total.saturating_add(k * d);
    }
    Ok((count, total))
}

fn reduce(a: u128, b: u128) -> (u128, u128) {
    let (mut x, mut y) = (a, b);
    while y != 0 {
        (x, y) = (y, x % y);
    }
    let g = x.max(1);
    (a / g, b / g)
}

/// The display rotation as ffprobe reports it (`side_data rotation`:
/// counter-clockwise degrees, so an iPhone portrait clip is -90), from the
/// `tkhd` matrix as ffmpeg's `av_display_rotation_get` computes it.
fn rotation(tkhd: &[u8]) -> Result<f64, MediaError> {
    let at = if tkhd.first() == Some(&1) { 52 } else { 40 };
    let mut c = Cursor::new(tkhd, "tkhd");
    c.take(at)?;
    let fixed = |v: u32| f64::from(v as i32) / 65536.0;
    let (a, b) = (fixed(c.u32()?), fixed(c.u32()?));
    c.u32()?;
    let (cc, d) = (fixed(c.u32()?), fixed(c.u32()?));
    let (s0, s1) = (a.hypot(cc), b.hypot(d));
    if s0 == 0.0 || s1 == 0.0 {
        return Ok(0.0);
    }
    let degrees = -(b / s1).atan2(a / s0).to_degrees();
    // Whole degrees, and no negative zero.
    Ok(degrees.round() + 0.0)
}

/// Seconds since the Unix epoch as RFC 3339 UTC (`2024-05-06T07:08:09Z`).
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}
