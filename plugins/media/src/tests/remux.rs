//! `media/mp4` against ffmpeg's view of input and output.

use std::path::Path;
use std::process::Command;

use super::*;

fn streams(probe: &Value) -> &Vec<Value> {
    probe["streams"].as_array().unwrap()
}

/// A stream's language as ffprobe shows it, "und" and none being the same.
fn language(stream: &Value) -> String {
    stream["tags"]["language"].as_str().unwrap_or("und").to_string()
}

fn seconds(v: &Value) -> f64 {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN)
}

fn rotation(stream: &Value) -> i64 {
    stream["side_data_list"].as_array().and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64())).unwrap_or(0)
}

/// What a user checks after a remux: the same packets, durations, codecs,
/// languages and rotation; the index before the media.
fn assert_same_media(input: &Path, output: &Path) {
    assert_eq!(streamhash(input), streamhash(output), "packets differ");
    // And the packets decode without a complaint.
    let out =
        Command::new("ffmpeg").args(["-v", "error", "-i"]).arg(output).args(["-f", "null", "-"]).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(output).unwrap();
    let tops = top_boxes(&bytes);
    assert_eq!(tops[0], "ftyp", "{tops:?}");
    let moov = tops.iter().position(|k| k == "moov").unwrap();
    let mdat = tops.iter().position(|k| k == "mdat").unwrap();
    assert!(moov < mdat, "moov must precede mdat: {tops:?}");
    let (a, b) = (ffprobe(input), ffprobe(output));
    assert_eq!(b["format"]["tags"]["major_brand"], "isom");
    assert!((seconds(&a["format"]["duration"]) - seconds(&b["format"]["duration"])).abs() < 0.001);
    assert_eq!(streams(&a).len(), streams(&b).len());
    for (x, y) in streams(&a).iter().zip(streams(&b)) {
        for key in [
            "codec_name",
            "codec_type",
            "profile",
            "width",
            "height",
            "sample_rate",
            "channels",
            "avg_frame_rate",
            "nb_frames",
        ] {
            assert_eq!(x[key], y[key], "stream {} {key}", x["index"]);
        }
        assert!((seconds(&x["duration"]) - seconds(&y["duration"])).abs() < 0.001, "stream {} duration", x["index"]);
        assert_eq!(language(x), language(y), "stream {} language", x["index"]);
        assert_eq!(rotation(x), rotation(y), "stream {} rotation", x["index"]);
        assert_eq!(x["tags"]["creation_time"], y["tags"]["creation_time"]);
    }
}

#[test]
fn h264_aac_timecode_rotated_mov_to_faststart_mp4() {
    let Some(dir) = setup("h264_aac_timecode_rotated_mov_to_faststart_mp4") else { return };
    let input = rotated_mov(&dir);
    let tops = top_boxes(&std::fs::read(&input).unwrap());
    assert!(tops.iter().position(|k| k == "mdat") < tops.iter().position(|k| k == "moov"), "fixture: moov last");
    let output = dir.join("a.mp4");
    let ran = run_to("mp4", &input, &output);
    assert_eq!(ran.outputs[0].extension.as_deref(), Some("mp4"));
    assert_eq!(ran.outputs[0].content_type.as_deref(), Some("video/mp4"));
    assert_same_media(&input, &output);
    let probe = ffprobe(&output);
    let s = streams(&probe);
    assert_eq!(s.len(), 4);
    assert_eq!(rotation(&s[0]), 90);
    assert_eq!((language(&s[1]).as_str(), language(&s[2]).as_str()), ("eng", "fra"));
    assert_eq!(s[3]["codec_tag_string"], "tmcd");
    assert_eq!(s[3]["tags"]["timecode"], "01:00:00:00");
    let result = ran.result.unwrap();
    assert_eq!(result["tracks"], 4);
    assert_eq!(result["co64"], false);
    // Remuxing the MP4 again changes nothing.
    let again = run_file("mp4", &output).unwrap();
    assert_eq!(again.outputs[0].bytes, std::fs::read(&output).unwrap());
}

#[test]
fn hevc_mov_keeps_hvc1() {
    let Some(dir) = setup("hevc_mov_keeps_hvc1") else { return };
    let input = dir.join("h.mov");
    let x265 = ffmpeg_stdout(&["-encoders"]);
    if !String::from_utf8_lossy(&x265).contains("libx265") {
        eprintln!("SKIPPED hevc_mov_keeps_hvc1: this ffmpeg has no libx265");
        return;
    }
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=256x144:rate=25:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=d=1",
        "-c:v",
        "libx265",
        "-x265-params",
        "log-level=error",
        "-tag:v",
        "hvc1",
        "-c:a",
        "aac",
        input.to_str().unwrap(),
    ]);
    let output = dir.join("h.mp4");
    run_to("mp4", &input, &output);
    assert_same_media(&input, &output);
    assert_eq!(streams(&ffprobe(&output))[0]["codec_tag_string"], "hvc1");
    // `media/info` names HEVC and its profile as ffprobe does.
    super::info::assert_agrees(&input);
    super::info::assert_agrees(&output);
}

#[test]
fn pcm_tracks_are_refused_or_dropped() {
    let Some(dir) = setup("pcm_tracks_are_refused_or_dropped") else { return };
    let input = dir.join("pcm.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10:d=1",
        "-f",
        "lavfi",
        "-i",
        "sine=d=1",
        "-c:v",
        "libx264",
        "-c:a",
        "pcm_s16le",
        input.to_str().unwrap(),
    ]);
    // `media/info` reads what `mp4` refuses, in ffprobe's names (`pcm_s16le`).
    super::info::assert_agrees(&input);
    let err = run_file("mp4", &input).unwrap_err();
    let ProcessError::UnsupportedInput(msg) = &err else { panic!("{err:?}") };
    assert!(msg.contains("track 2") && msg.contains("pcm_s16le") && msg.contains("drop_unsupported"), "{msg}");
    let output = dir.join("pcm.mp4");
    let ran = run_to("mp4,drop_unsupported", &input, &output);
    assert_eq!(ran.result.unwrap()["dropped"][0], "track 2 (pcm_s16le (`sowt`))");
    let probe = ffprobe(&output);
    assert_eq!(streams(&probe).len(), 1);
    assert_eq!(streams(&probe)[0]["codec_name"], "h264");
}

#[test]
fn strip_metadata_drops_gps() {
    let Some(dir) = setup("strip_metadata_drops_gps") else { return };
    let input = dir.join("gps.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10:d=1",
        "-c:v",
        "libx264",
        "-metadata",
        "location=+48.8584+002.2945/",
        "-metadata",
        "make=Kiln",
        input.to_str().unwrap(),
    ]);
    let kept = dir.join("kept.mp4");
    run_to("mp4", &input, &kept);
    let tags = &ffprobe(&kept)["format"]["tags"];
    assert_eq!(tags["location"], "+48.8584+002.2945/", "{tags}");
    let stripped = dir.join("stripped.mp4");
    run_to("mp4,strip_metadata", &input, &stripped);
    let bytes = std::fs::read(&stripped).unwrap();
    assert!(!bytes.windows(4).any(|w| w == b"\xa9xyz"), "GPS left in the output");
    let tags = &ffprobe(&stripped)["format"]["tags"];
    assert!(tags.get("location").is_none() && tags.get("make").is_none(), "{tags}");
    assert_eq!(streamhash(&input), streamhash(&stripped));

    // Apple's keys (`meta` with `mdta` keys), as iPhones write the location.
    let apple = dir.join("apple.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10:d=1",
        "-c:v",
        "libx264",
        "-movflags",
        "use_metadata_tags",
        "-metadata",
        "com.apple.quicktime.location.ISO6709=+48.8584+002.2945+035.000/",
        "-metadata",
        "com.apple.quicktime.make=Apple",
        apple.to_str().unwrap(),
    ]);
    let key = "com.apple.quicktime.location.ISO6709";
    let kept = dir.join("apple-kept.mp4");
    run_to("mp4", &apple, &kept);
    assert_eq!(ffprobe(&kept)["format"]["tags"][key], "+48.8584+002.2945+035.000/");
    let stripped = dir.join("apple-stripped.mp4");
    run_to("mp4,strip_metadata", &apple, &stripped);
    let tags = &ffprobe(&stripped)["format"]["tags"];
    assert!(tags.get(key).is_none() && tags.get("com.apple.quicktime.make").is_none(), "{tags}");
    assert!(!std::fs::read(&stripped).unwrap().windows(4).any(|w| w == b"mdta"));
}

#[test]
fn offsets_past_32_bits_switch_to_co64() {
    let Some(dir) = setup("offsets_past_32_bits_switch_to_co64") else { return };
    let input = rotated_mov(&dir);
    let bytes = std::fs::read(&input).unwrap();
    let mut reader = kiln_plugin_sdk::Input::from_bytes(&bytes, true);
    let mut src = crate::boxes::Source::new(&mut reader).unwrap();
    // Pretend 32 bits end at 1,000 bytes: every offset needs `co64`.
    let prepared = crate::remux::prepare_with(&mut src, crate::remux::Options::default(), 1000).unwrap();
    assert_eq!(prepared.report["co64"], true);
    let mut out = Vec::new();
    crate::remux::write(&mut src, &prepared, &mut out).unwrap();
    assert!(out.windows(4).any(|w| w == b"co64") && !out.windows(4).any(|w| w == b"stco"));
    let output = dir.join("co64.mp4");
    std::fs::write(&output, &out).unwrap();
    assert_same_media(&input, &output);
}

#[test]
fn subtitles_3gp_and_m4v() {
    let Some(dir) = setup("subtitles_3gp_and_m4v") else { return };
    let srt = dir.join("s.srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:00,800\nHello\n\n2\n00:00:01,000 --> 00:00:01,500\nWorld\n")
        .unwrap();
    let video =
        ["-f", "lavfi", "-i", "testsrc=size=176x144:rate=15:d=2", "-f", "lavfi", "-i", "sine=d=2:sample_rate=16000"];
    // A MOV with a `tx3g` subtitle track in German (ffmpeg writes a Macintosh
    // language code in MOV, and has none for Swedish: it would write none).
    let subs = dir.join("subs.mov");
    let mut args = video.to_vec();
    args.extend(["-i", srt.to_str().unwrap(), "-map", "0", "-map", "1", "-map", "2", "-c:v", "libx264", "-c:a", "aac"]);
    args.extend(["-c:s", "mov_text", "-metadata:s:s:0", "language=ger", subs.to_str().unwrap()]);
    ffmpeg(&args);
    // 3GP and M4V, as phones and iTunes write them.
    let gp = dir.join("clip.3gp");
    let mut args = video.to_vec();
    args.extend(["-c:v", "libx264", "-c:a", "aac", "-ac", "1", gp.to_str().unwrap()]);
    ffmpeg(&args);
    let m4v = dir.join("clip.m4v");
    let mut args = video.to_vec();
    args.extend(["-c:v", "libx264", "-c:a", "aac", m4v.to_str().unwrap()]);
    ffmpeg(&args);
    for input in [&subs, &gp, &m4v] {
        let output = input.with_extension("out.mp4");
        run_to("mp4", input, &output);
        assert_same_media(input, &output);
        super::info::assert_agrees(input);
        super::info::assert_agrees(&output);
    }
    let probe = ffprobe(&subs.with_extension("out.mp4"));
    let s = &streams(&probe)[2];
    assert_eq!((s["codec_name"].as_str(), s["codec_tag_string"].as_str()), (Some("mov_text"), Some("tx3g")));
    assert_eq!(language(s), "ger");
}
