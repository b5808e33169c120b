//! Track languages in `mdhd`: ISO 639-2/T packed in 3×5 bits (MP4), or a
//! Macintosh language code below 0x400 (QuickTime, which ffmpeg's MOV muxer
//! still writes, e.g. 0 for English).

/// Macintosh language codes 0..=138 as ISO 639-2 (the table QuickTime's
/// documentation gives; "" where there is no ISO code).
const MAC: [&str; 139] = [
    "eng", "fra", "ger", "ita", "dut", "sve", "spa", "dan", "por", "nor", // 0
    "heb", "jpn", "ara", "fin", "gre", "ice", "mlt", "tur", "hr ", "chi", // 10
    "urd", "hin", "tha", "kor", "lit", "pol", "hun", "est", "lav", "", // 20
    "fo ", "", "rus", "chi", "", "iri", "alb", "ron", "ces", "slk", // 30
    "slv", "yid", "sr ", "mac", "bul", "ukr", "bel", "uzb", "kaz", "aze", // 40
    "aze", "arm", "geo", "mol", "kir", "tgk", "tuk", "mon", "", "pus", // 50
    "kur", "kas", "snd", "tib", "nep", "san", "mar", "ben", "asm", "guj", // 60
    "pa ", "ori", "mal", "kan", "tam", "tel", "", "bur", "khm", "lao", // 70
    "vie", "ind", "tgl", "may", "may", "amh", "tir", "orm", "som", "swa", // 80
    "", "run", "", "mlg", "epo", "", "", "", "", "", // 90
    "", "", "", "", "", "", "", "", "", "", // 100
    "", "", "", "", "", "", "", "", "", "", // 110
    "", "", "", "", "", "", "", "", "wel", "baq", // 120
    "cat", "lat", "que", "grn", "aym", "tat", "uig", "dzo", "jav", // 130
];

/// "und", packed: what MP4 writers put for no language.
pub const UND: u16 = 0x55C4;

/// The language of an `mdhd` code, as ffprobe reports it; `None` for none.
pub fn to_iso(code: u16) -> Option<String> {
    if code >= 0x400 && code != 0x7FFF {
        let c = |shift: u16| char::from(0x60 + ((code >> shift) & 0x1F) as u8);
        let s: String = [c(10), c(5), c(0)].into_iter().collect();
        return s.chars().all(|ch| ch.is_ascii_lowercase()).then_some(s);
    }
    MAC.get(usize::from(code)).filter(|s| !s.is_empty()).map(|s| s.trim().to_string())
}

/// The MP4 (packed ISO) code for an `mdhd` code of either kind.
pub fn to_mp4(code: u16) -> u16 {
    if code >= 0x400 && code != 0x7FFF {
        return code;
    }
    match MAC.get(usize::from(code)).map(|s| s.as_bytes()) {
        Some(&[a, b, c]) if [a, b, c].iter().all(u8::is_ascii_lowercase) => {
            (u16::from(a - 0x60) << 10) | (u16::from(b - 0x60) << 5) | u16::from(c - 0x60)
        }
        _ => UND,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_and_iso_codes() {
        assert_eq!(to_iso(0).as_deref(), Some("eng"));
        assert_eq!(to_mp4(0), 0x15C7); // "eng"
        assert_eq!(to_iso(0x15C7).as_deref(), Some("eng"));
        assert_eq!(to_iso(UND).as_deref(), Some("und"));
        assert_eq!(to_mp4(0x7FFF), UND);
        assert_eq!(to_mp4(29), UND);
        assert_eq!(to_iso(138).as_deref(), Some("jav"));
    }
}
