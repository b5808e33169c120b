//! Sample entries (`stsd`): which codec a track holds, in ffprobe's names,
//! whether MP4 can carry it, and the QuickTime-to-MP4 rewrite of audio entries.

use crate::MediaError;
use crate::boxes::{Body, Cursor, FourCc, Node, parse_children};

/// Bytes of a visual sample entry before its child boxes (SampleEntry's 8 +
/// VisualSampleEntry's 70; QuickTime's video description has the same layout).
const VIDEO_FIXED: usize = 78;
/// Bytes of a version 0 audio sample entry before its child boxes; QuickTime
/// sound description version 1 adds 16 bytes, version 2 adds 36.
const AUDIO_FIXED: usize = 28;

/// What a track's handler says it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Video,
    Audio,
    Subtitle,
    Data,
}

impl Kind {
    pub fn from_handler(handler: &FourCc) -> Kind {
        match handler {
            b"vide" => Kind::Video,
            b"soun" => Kind::Audio,
            b"sbtl" | b"subt" | b"text" | b"clcp" => Kind::Subtitle,
            _ => Kind::Data,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Video => "video",
            Kind::Audio => "audio",
            Kind::Subtitle => "subtitle",
            Kind::Data => "data",
        }
    }
}

/// A sample entry, split into its fixed fields and its child boxes.
pub struct Entry {
    pub kind: FourCc,
    pub fixed: Vec<u8>,
    pub children: Vec<Node>,
}

impl Entry {
    /// Parse an entry of a track of `kind`; `None` for entries whose layout
    /// this crate does not split (timecode, subtitles, data): kept as bytes.
    pub fn parse(node: &Node, kind: Kind) -> Result<Option<Entry>, MediaError> {
        let bytes = node.payload();
        let fixed = match kind {
            Kind::Video => VIDEO_FIXED,
            Kind::Audio => {
                let version = Cursor::new(bytes.get(8..).unwrap_or(&[]), "audio sample entry").u16()?;
                match version {
                    0 => AUDIO_FIXED,
                    1 => AUDIO_FIXED + 16,
                    2 => AUDIO_FIXED + 36,
                    v => return Err(MediaError::Corrupt(format!("audio sample entry of unknown version {v}"))),
                }
            }
            _ => return Ok(None),
        };
        if bytes.len() < fixed {
            return Err(MediaError::Corrupt(format!("sample entry `{}` is cut short", crate::boxes::name(node.kind))));
        }
        let mut budget = 10_000;
        // Some writers leave bytes that are not boxes after the fields: keep
        // such an entry whole rather than fail.
        let Ok(mut children) = parse_children(&bytes[fixed..], 6, &mut budget) else { return Ok(None) };
        for child in &mut children {
            // QuickTime wraps an audio codec's boxes in `wave`.
            if &child.kind == b"wave"
                && let Ok(inner) = parse_children(child.payload(), 7, &mut budget)
            {
                child.body = Body::Tree { prefix: Vec::new(), children: inner };
            }
        }
        Ok(Some(Entry { kind: node.kind, fixed: bytes[..fixed].to_vec(), children }))
    }

    /// A child box, looking inside QuickTime's `wave` too.
    pub fn find(&self, kind: &FourCc) -> Option<&Node> {
        self.children
            .iter()
            .find(|n| &n.kind == kind)
            .or_else(|| self.children.iter().find(|n| &n.kind == b"wave")?.child(kind))
    }

    pub fn to_node(&self) -> Node {
        let mut payload = self.fixed.clone();
        for child in &self.children {
            child.write(&mut payload);
        }
        Node::leaf(&self.kind, payload)
    }

    /// Audio: (channels, sample rate) from the fixed fields.
    pub fn audio_format(&self) -> Option<(u32, f64)> {
        let f = &self.fixed;
        let version = u16::from_be_bytes([f[8], f[9]]);
        if version == 2 {
            let rate = f64::from_bits(u64::from_be_bytes(f.get(32..40)?.try_into().ok()?));
            let channels = u32::from_be_bytes(f.get(40..44)?.try_into().ok()?);
            Some((channels, rate))
        } else {
            let channels = u16::from_be_bytes([f[16], f[17]]);
            let rate = u32::from_be_bytes([f[24], f[25], f[26], f[27]]) >> 16;
            Some((u32::from(channels), f64::from(rate)))
        }
    }

    /// Video: coded width and height from the fixed fields.
    pub fn video_size(&self) -> (u16, u16) {
        let f = &self.fixed;
        (u16::from_be_bytes([f[24], f[25]]), u16::from_be_bytes([f[26], f[27]]))
    }

    /// Rewrite a QuickTime sound description (version 1 or 2, codec boxes
    /// wrapped in `wave`) as an MP4 AudioSampleEntry (version 0, codec boxes
    /// directly inside), as ffmpeg's MP4 muxer writes it. A no-op for version 0.
    pub fn audio_to_mp4(&mut self) -> Result<(), MediaError> {
        let (channels, rate) = self.audio_format().unwrap_or((0, 0.0));
        let version = u16::from_be_bytes([self.fixed[8], self.fixed[9]]);
        let mut fixed = self.fixed[..8].to_vec();
        fixed.extend_from_slice(&[0; 8]); // version, revision, vendor
        let channels16 = u16::try_from(channels).map_err(|_| MediaError::Corrupt("too many audio channels".into()))?;
        fixed.extend_from_slice(&channels16.to_be_bytes());
        fixed.extend_from_slice(&16u16.to_be_bytes()); // sample size, as MP4 fixes it
        fixed.extend_from_slice(&[0; 4]); // pre_defined, reserved
        // 16.16 fixed point; a rate over 65535 Hz does not fit, and MP4 says
        // to read the codec's configuration then: 0 is what writers put.
        let rate16 = if rate > 0.0 && rate < 65536.0 { (rate as u32) << 16 } else { 0 };
        fixed.extend_from_slice(&rate16.to_be_bytes());
        self.fixed = fixed;
        if version == 0 {
            return Ok(());
        }
        let mut children = Vec::with_capacity(self.children.len());
        for child in self.children.drain(..) {
            if &child.kind != b"wave" {
                children.push(child);
                continue;
            }
            if let Body::Leaf(_) = child.body {
                return Err(MediaError::Corrupt("QuickTime `wave` box is not a list of boxes".into()));
            }
            for inner in child.children().iter().cloned() {
                // `frma` repeats the entry's type, the inner `mp4a` is
                // QuickTime padding, `enda` the PCM byte order (PCM is refused
                // before this), type 0 the list's terminator.
                if !matches!(&inner.kind, b"frma" | b"mp4a" | b"enda" | b"\0\0\0\0") {
                    children.push(inner);
                }
            }
        }
        self.children = children;
        Ok(())
    }
}

/// The codec of a sample entry in ffprobe's names, given the MPEG-4 object
/// type of its `esds` when there is one. `None` when ffprobe names none
/// (a timecode track).
pub fn codec_name(fourcc: &FourCc, object_type: Option<u8>) -> Option<String> {
    let name = match fourcc {
        b"avc1" | b"avc3" => "h264",
        b"hvc1" | b"hev1" | b"dvh1" | b"dvhe" => "hevc",
        b"av01" => "av1",
        b"vp09" => "vp9",
        b"vp08" => "vp8",
        b"mp4v" => match object_type {
            Some(0x6A | 0x61..=0x65) => "mpeg2video",
            Some(0x6C) => "mjpeg",
            _ => "mpeg4",
        },
        b"apch" | b"apcn" | b"apcs" | b"apco" | b"ap4h" | b"ap4x" => "prores",
        b"jpeg" | b"mjpa" => "mjpeg",
        b"mp4a" => match object_type {
            Some(0x6B | 0x69) => "mp3",
            Some(0xA9) => "dts",
            Some(0xA5) => "ac3",
            Some(0xA6) => "eac3",
            Some(0xAD) => "opus",
            _ => "aac",
        },
        b".mp3" | b"ms\0U" => "mp3",
        b"alac" => "alac",
        b"ac-3" => "ac3",
        b"ec-3" => "eac3",
        b"Opus" => "opus",
        b"fLaC" => "flac",
        b"sowt" => "pcm_s16le",
        b"twos" => "pcm_s16be",
        b"in24" => "pcm_s24be",
        b"in32" => "pcm_s32be",
        b"fl32" => "pcm_f32be",
        b"fl64" => "pcm_f64be",
        b"raw " => "pcm_u8",
        b"ulaw" => "pcm_mulaw",
        b"alaw" => "pcm_alaw",
        b"lpcm" => "pcm_s16le",
        b"tx3g" | b"text" => "mov_text",
        b"wvtt" => "webvtt",
        b"c608" => "eia_608",
        b"tmcd" | b"mebx" => return None,
        other => return Some(crate::boxes::name(*other).trim().to_string()),
    };
    Some(name.to_string())
}

/// Whether an MP4 file can carry a track with this sample entry. Timecode
/// (`tmcd`) and Apple timed metadata (`mebx`) are QuickTime's, but ffmpeg
/// writes `tmcd` in MP4 too and both are ignored by players that do not
/// know them, so they are kept. PCM in QuickTime's entries (`twos`, `sowt`,
/// `in24`…), QuickTime text, ProRes and MJPEG are not MP4's.
pub fn mp4_carries(fourcc: &FourCc) -> bool {
    matches!(
        fourcc,
        b"avc1"
            | b"avc3"
            | b"hvc1"
            | b"hev1"
            | b"dvh1"
            | b"dvhe"
            | b"av01"
            | b"vp09"
            | b"vp08"
            | b"mp4v"
            | b"mp4a"
            | b"alac"
            | b"ac-3"
            | b"ec-3"
            | b"Opus"
            | b"fLaC"
            | b"ipcm"
            | b"fpcm"
            | b"tx3g"
            | b"wvtt"
            | b"stpp"
            | b"c608"
            | b"tmcd"
            | b"mebx"
    )
}

/// From an `esds` payload: the object type and the decoder-specific info
/// (for AAC, the AudioSpecificConfig).
pub fn parse_esds(payload: &[u8]) -> Option<(u8, Vec<u8>)> {
    let mut c = Cursor::new(payload, "esds");
    c.take(4).ok()?; // version, flags
    let (tag, _) = descriptor(&mut c)?;
    if tag != 3 {
        return None;
    }
    c.take(2).ok()?; // ES_ID
    let flags = c.u8().ok()?;
    if flags & 0x80 != 0 {
        c.take(2).ok()?;
    }
    if flags & 0x40 != 0 {
        let n = c.u8().ok()?;
        c.take(usize::from(n)).ok()?;
    }
    if flags & 0x20 != 0 {
        c.take(2).ok()?;
    }
    let (tag, _) = descriptor(&mut c)?;
    if tag != 4 {
        return None;
    }
    let object_type = c.u8().ok()?;
    c.take(12).ok()?;
    let specific = match descriptor(&mut c) {
        Some((5, len)) => c.take(len).ok()?.to_vec(),
        _ => Vec::new(),
    };
    Some((object_type, specific))
}

/// A descriptor's tag and length (the length in 1 to 4 bytes of 7 bits).
fn descriptor(c: &mut Cursor) -> Option<(u8, usize)> {
    let tag = c.u8().ok()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = c.u8().ok()?;
        len = (len << 7) | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            break;
        }
    }
    Some((tag, len))
}

/// AudioSpecificConfig: (audio object type, sample rate, channel configuration).
pub fn parse_asc(asc: &[u8]) -> Option<(u8, Option<u32>, u8)> {
    const RATES: [u32; 13] = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];
    let mut bits = Bits { bytes: asc, at: 0 };
    let mut aot = bits.read(5)? as u8;
    if aot == 31 {
        aot = 32 + bits.read(6)? as u8;
    }
    let index = bits.read(4)? as usize;
    let rate = if index == 15 { Some(bits.read(24)?) } else { RATES.get(index).copied() };
    let channels = bits.read(4)? as u8;
    Some((aot, rate, channels))
}

struct Bits<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: usize) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.bytes.get(self.at / 8)?;
            v = (v << 1) | u32::from((byte >> (7 - self.at % 8)) & 1);
            self.at += 1;
        }
        Some(v)
    }
}

/// The profile ffprobe names, from the codec's configuration box.
pub fn profile(codec: &str, entry: &Entry) -> Option<String> {
    let name = match codec {
        "h264" => {
            let c = entry.find(b"avcC")?.payload();
            let (profile, compat) = (*c.get(1)?, *c.get(2)?);
            let intra = compat & 0x10 != 0;
            match profile {
                66 if compat & 0x40 != 0 => "Constrained Baseline",
                66 => "Baseline",
                77 => "Main",
                88 => "Extended",
                100 => "High",
                110 if intra => "High 10 Intra",
                110 => "High 10",
                122 if intra => "High 4:2:2 Intra",
                122 => "High 4:2:2",
                244 if intra => "High 4:4:4 Intra",
                244 => "High 4:4:4 Predictive",
                44 => "CAVLC 4:4:4",
                _ => return None,
            }
        }
        "hevc" => {
            let c = entry.find(b"hvcC")?.payload();
            match c.get(1)? & 0x1F {
                1 => "Main",
                2 => "Main 10",
                3 => "Main Still Picture",
                4 => "Rext",
                9 => "SCC",
                _ => return None,
            }
        }
        "aac" => {
            let (_, asc) = parse_esds(entry.find(b"esds")?.payload())?;
            match parse_asc(&asc)?.0 {
                1 => "Main",
                2 => "LC",
                3 => "SSR",
                4 => "LTP",
                5 => "HE-AAC",
                29 => "HE-AACv2",
                23 => "LD",
                39 => "ELD",
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(name.to_string())
}
