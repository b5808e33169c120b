//! `media/audio` against ffmpeg's decode of the same files.

use super::*;

/// ffmpeg's decode of `path` as interleaved s16 at `extra` options.
fn s16(path: &Path, extra: &[&str]) -> Vec<i16> {
    let mut args = vec!["-i", path.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "s16le", "-"]);
    ffmpeg_stdout(&args).chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// A two-second stereo source with different tones left and right.
fn source(dir: &Path, name: &str, codec: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:d=2:sample_rate=44100",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=1000:d=2:sample_rate=44100",
        "-filter_complex",
        "[0][1]amerge=inputs=2",
    ];
    args.extend_from_slice(codec);
    args.push(path.to_str().unwrap());
    ffmpeg(&args);
    path
}

/// The largest sample difference between `a` and `b` at the best alignment
/// within `max_shift` frames (lossy decoders disagree on the encoder delay),
/// over the middle of the signal, and the shift.
fn best_diff(a: &[i16], b: &[i16], channels: usize, max_shift: usize) -> (i32, isize) {
    let frames = a.len().min(b.len()) / channels;
    let window = (frames / 2).min(8192);
    let start = frames / 4;
    let mut best = (i32::MAX, 0isize);
    for shift in -(max_shift as isize)..=(max_shift as isize) {
        let Some(from) = start.checked_add_signed(shift) else { continue };
        if from + window > b.len() / channels {
            continue;
        }
        let d = (0..window * channels)
            .map(|i| (i32::from(a[start * channels + i]) - i32::from(b[from * channels + i])).abs())
            .max()
            .unwrap_or(0);
        if d < best.0 {
            best = (d, shift);
        }
    }
    best
}

#[test]
fn lossless_sources_decode_sample_for_sample() {
    let Some(dir) = setup("lossless_sources_decode_sample_for_sample") else { return };
    for (name, codec) in [("s.wav", &["-c:a", "pcm_s16le"][..]), ("s.flac", &["-c:a", "flac"][..])] {
        let input = source(&dir, name, codec);
        let want = s16(&input, &[]);
        for (format, extra) in [("wav", ""), ("flac", ""), ("flac", ",l_1")] {
            let output = dir.join(format!("{name}{extra}.out.{format}"));
            let ran = run_to(&format!("audio,f_{format}{extra}"), &input, &output);
            let result = ran.result.unwrap();
            assert_eq!(result["channels"], 2);
            assert_eq!(result["sample_rate"], 44100);
            assert_eq!(result["frames"].as_u64().unwrap() as usize * 2, want.len(), "{name} → {format}");
            assert_eq!(s16(&output, &[]), want, "{name} → {format}");
            // The header says the length: ffprobe knows the duration.
            let probe = ffprobe(&output);
            assert_eq!(probe["streams"][0]["duration"].as_str(), Some("2.000000"), "{name} → {format}");
        }
    }
}

#[test]
fn lossy_sources_decode_within_tolerance() {
    let Some(dir) = setup("lossy_sources_decode_within_tolerance") else { return };
    for (name, codec) in [
        ("s.mp3", &["-c:a", "libmp3lame", "-b:a", "192k"][..]),
        ("s.m4a", &["-c:a", "aac", "-b:a", "192k"][..]),
        ("s.ogg", &["-c:a", "libvorbis", "-q:a", "6"][..]),
    ] {
        let input = source(&dir, name, codec);
        let want = s16(&input, &[]);
        let output = dir.join(format!("{name}.wav"));
        run_to("audio,f_wav", &input, &output);
        let got = s16(&output, &[]);
        let frames = (want.len() / 2) as f64;
        assert!(
            ((got.len() / 2) as f64 - frames).abs() < 0.05 * 44100.0,
            "{name}: {} vs {frames} frames",
            got.len() / 2
        );
        let (diff, shift) = best_diff(&want, &got, 2, 3000);
        // Full scale is 32768; decoders of the same stream agree within rounding.
        assert!(diff <= 64, "{name}: differs by up to {diff} at shift {shift}");
    }
}

#[test]
fn resample_and_mix_down() {
    let Some(dir) = setup("resample_and_mix_down") else { return };
    let input = source(&dir, "s.flac", &["-c:a", "flac"]);
    let output = dir.join("mono.flac");
    let ran = run_to("audio,f_flac,ar_22050,ac_1", &input, &output);
    assert_eq!(ran.outputs[0].extension.as_deref(), Some("flac"));
    let probe = ffprobe(&output);
    let s = &probe["streams"][0];
    assert_eq!(
        (s["codec_name"].as_str(), s["sample_rate"].as_str(), s["channels"].as_i64()),
        (Some("flac"), Some("22050"), Some(1))
    );
    let got = s16(&output, &[]);
    assert_eq!(got.len(), 44100, "2 s at 22050 Hz");
    // ffmpeg's own resample and mix, compared loosely: a different filter.
    let want = s16(&input, &["-ac", "1", "-ar", "22050"]);
    let (diff, _) = best_diff(&want, &got, 1, 64);
    assert!(diff < 1200, "differs by up to {diff}");
}

#[test]
fn not_audio_is_refused() {
    let err = run_full::<Media>("audio", b"definitely not audio").unwrap_err();
    assert!(matches!(err, ProcessError::UnsupportedInput(_)), "{err:?}");
}

/// The RIFF and `data` sizes of a 44-byte-header WAV.
fn wav_sizes(bytes: &[u8]) -> (u32, u32) {
    let le = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(&bytes[36..40], b"data");
    (le(4), le(40))
}

#[test]
fn wav_sizes_exact_with_random_access_unknown_on_a_stream() {
    let Some(dir) = setup("wav_sizes_exact_with_random_access_unknown_on_a_stream") else { return };
    let input = source(&dir, "s.mp3", &["-c:a", "libmp3lame"]);
    for params in ["audio,f_wav", "audio,f_wav,ar_16000,ac_1"] {
        let ran = run_file(params, &input).unwrap();
        let bytes = &ran.outputs[0].bytes;
        assert_eq!(wav_sizes(bytes), (bytes.len() as u32 - 8, bytes.len() as u32 - 44), "{params}");
        assert_eq!(ran.result.unwrap()["length_in_header"], true);
    }
    // A stream cannot be read twice: the sizes are "unknown", as on a pipe.
    let bytes = std::fs::read(&input).unwrap();
    let ran = kiln_plugin_sdk::testing::Harness::streamed("audio,f_wav", &bytes[..]).run::<Media>().unwrap();
    assert_eq!(wav_sizes(&ran.outputs[0].bytes), (u32::MAX, u32::MAX));
    let output = dir.join("streamed.wav");
    std::fs::write(&output, &ran.outputs[0].bytes).unwrap();
    // ffmpeg reads it to its end, to the same samples as the sized one.
    let sized = dir.join("sized.wav");
    run_to("audio,f_wav", &input, &sized);
    assert_eq!(s16(&output, &[]), s16(&sized, &[]));
}

#[test]
fn damaged_audio_is_refused_or_decoded_never_a_panic() {
    let Some(dir) = setup("damaged_audio_is_refused_or_decoded_never_a_panic") else { return };
    let sources = [
        source(&dir, "s.mp3", &["-c:a", "libmp3lame"]),
        source(&dir, "s.flac", &["-c:a", "flac"]),
        source(&dir, "s.m4a", &["-c:a", "aac"]),
        source(&dir, "s.ogg", &["-c:a", "libvorbis"]),
        source(&dir, "s.wav", &["-c:a", "pcm_s16le"]),
    ];
    for path in &sources {
        let good = std::fs::read(path).unwrap();
        let mut cases = vec![good[..good.len() / 2].to_vec(), good[..good.len().min(100)].to_vec()];
        // Bytes overwritten with a pattern here and there.
        let mut seed = 7u32;
        for _ in 0..4 {
            let mut bad = good.clone();
            for _ in 0..64 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                let at = (seed as usize >> 4) % bad.len();
                bad[at] ^= (seed >> 24) as u8 | 1;
            }
            cases.push(bad);
        }
        for (i, bytes) in cases.iter().enumerate() {
            match run_full::<Media>("audio,f_wav", bytes) {
                Ok(_) | Err(ProcessError::UnsupportedInput(_)) => {}
                Err(e) => panic!("{} case {i}: {e:?}", path.display()),
            }
        }
    }
}
