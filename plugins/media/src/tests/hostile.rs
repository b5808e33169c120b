//! Truncated, corrupt and hostile files: refused quickly with
//! `unsupported-input`, never a panic.

use std::time::Instant;

use super::*;

/// Run both styles on `bytes`; both must refuse it as unsupported input,
/// quickly. The message, for the caller to check.
fn refused(bytes: &[u8]) -> String {
    refused_by(&["mp4", "info"], bytes)
}

fn refused_by(styles: &[&str], bytes: &[u8]) -> String {
    let start = Instant::now();
    let mut last = String::new();
    for &params in styles {
        match run_full::<Media>(params, bytes) {
            Err(ProcessError::UnsupportedInput(m)) => last = m,
            other => panic!("{params}: expected unsupported input, got {:?}", other.map(|r| r.result)),
        }
    }
    assert!(start.elapsed().as_secs() < 2, "took {:?}", start.elapsed());
    last
}

fn find(bytes: &[u8], kind: &[u8; 4]) -> usize {
    bytes.windows(4).position(|w| w == kind).unwrap() - 4
}

fn set_u32(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

fn box_(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
    b.extend_from_slice(kind);
    b.extend_from_slice(payload);
    b
}

#[test]
fn hand_made_hostile_files() {
    assert!(refused(b"hello, not a video").contains("not an MP4"));
    assert!(refused(b"").contains("not an MP4"));
    // A `moov` 1,000 levels deep.
    let mut nested = box_(b"mvhd", &[0; 100]);
    for _ in 0..1000 {
        nested = box_(b"trak", &nested);
    }
    let mut file = box_(b"ftyp", b"isom\0\0\0\0isom");
    file.extend(box_(b"moov", &nested));
    assert!(refused(&file).contains("deeper"));
    // A box claiming more than the file holds.
    let mut file = box_(b"ftyp", b"qt  \0\0\0\0qt  ");
    let mut mdat = box_(b"mdat", &[0; 64]);
    set_u32(&mut mdat, 0, 1 << 30);
    file.extend(mdat);
    assert!(refused(&file).contains("past the end"));
    // Size 1 (64-bit) cut short, a size below the header's.
    let mut file = box_(b"ftyp", b"isom\0\0\0\0isom");
    file.extend([0, 0, 0, 1, b'm', b'd', b'a', b't', 0, 0]);
    refused(&file);
    let mut file = box_(b"ftyp", b"isom\0\0\0\0isom");
    file.extend([0, 0, 0, 4, b'f', b'r', b'e', b'e']);
    assert!(refused(&file).contains("less than its header"));
    // Fragmented.
    let mut file = box_(b"ftyp", b"iso6\0\0\0\0iso6");
    file.extend(box_(b"moov", &box_(b"mvex", &[])));
    file.extend(box_(b"moof", &[]));
    assert!(refused(&file).contains("fragmented"));
    // An old QuickTime compressed index.
    let mut file = box_(b"ftyp", b"qt  \0\0\0\0qt  ");
    file.extend(box_(b"moov", &box_(b"cmov", &[0; 32])));
    assert!(refused(&file).contains("cmov"));
    // A million empty boxes: refused at the ten-thousandth, quickly.
    let mut file = box_(b"ftyp", b"isom\0\0\0\0isom");
    for _ in 0..1_000_000 {
        file.extend(box_(b"free", &[]));
    }
    assert!(refused(&file).contains("top-level boxes"));
    // No `moov` at all.
    let mut file = box_(b"ftyp", b"isom\0\0\0\0isom");
    file.extend(box_(b"mdat", &[1; 100]));
    assert!(refused(&file).contains("no `moov`"));
}

#[test]
fn edited_real_files() {
    let Some(dir) = setup("edited_real_files") else { return };
    let good = std::fs::read(rotated_mov(&dir)).unwrap();

    // Truncated in the middle of the media, and in the middle of the index.
    refused(&good[..good.len() / 2]);
    refused(&good[..good.len() - 100]);

    // An `stsz` and an `stco` claiming 2^32 - 1 entries.
    for kind in [b"stsz", b"stco"] {
        let mut bad = good.clone();
        let at = find(&bad, kind);
        let count = if kind == b"stsz" { at + 16 } else { at + 12 };
        set_u32(&mut bad, count, u32::MAX);
        // `info` reads no chunk offsets: only `mp4` meets the bad `stco`.
        let styles: &[&str] = if kind == b"stsz" { &["mp4", "info"] } else { &["mp4"] };
        let msg = refused_by(styles, &bad);
        assert!(msg.contains("4294967295 entries"), "{msg}");
    }

    // A chunk offset outside the media data.
    let mut bad = good.clone();
    let at = find(&bad, b"stco");
    set_u32(&mut bad, at + 16, u32::MAX - 8);
    assert!(run_full::<Media>("mp4", &bad).unwrap_err().to_string().contains("outside every `mdat`"));

    // A `trak` whose size runs past the `moov`.
    let mut bad = good.clone();
    let at = find(&bad, b"trak");
    set_u32(&mut bad, at, 1 << 24);
    assert!(refused(&bad).contains("past the end"));

    // A real fragmented MP4, as ffmpeg writes it for streaming.
    let frag = dir.join("frag.mp4");
    let a = dir.join("a.mov");
    ffmpeg(&[
        "-i",
        a.to_str().unwrap(),
        "-map",
        "0:v",
        "-map",
        "0:a",
        "-c",
        "copy",
        "-movflags",
        "frag_keyframe+empty_moov",
        frag.to_str().unwrap(),
    ]);
    assert!(refused(&std::fs::read(&frag).unwrap()).contains("fragmented"));

    // A stream without random access cannot reach the `moov`.
    let err = kiln_plugin_sdk::testing::Harness::new("mp4", &good).without_size().run::<Media>().unwrap_err();
    assert!(err.to_string().contains("random access"), "{err}");
}

#[test]
fn random_damage_to_the_index_never_panics() {
    let Some(dir) = setup("random_damage_to_the_index_never_panics") else { return };
    let good = std::fs::read(rotated_mov(&dir)).unwrap();
    let moov = find(&good, b"moov");
    let start = Instant::now();
    let mut seed = 12_345u32;
    for case in 0..300 {
        let mut bad = good.clone();
        for _ in 0..1 + case % 8 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let at = moov + (seed as usize >> 4) % (good.len() - moov);
            bad[at] = (seed >> 24) as u8;
        }
        for params in ["mp4", "info"] {
            match run_full::<Media>(params, &bad) {
                Ok(_) | Err(ProcessError::UnsupportedInput(_)) => {}
                Err(e) => panic!("case {case} {params}: {e:?}"),
            }
        }
    }
    assert!(start.elapsed().as_secs() < 60, "took {:?}", start.elapsed());
}
