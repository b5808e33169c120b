//! `media/info` agrees with ffprobe on every field it reports.

use super::*;

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        Value::Number(n) => n.as_f64().unwrap(),
        _ => f64::NAN,
    }
}

/// Compare `ours` (our info) with ffprobe's answer for the same file.
pub(super) fn assert_agrees(path: &Path) {
    let ran = run_file("info", path).unwrap();
    assert!(ran.outputs.is_empty());
    let ours = ran.result.unwrap();
    let theirs = ffprobe(path);
    let (f, g) = (&ours["format"], &theirs["format"]);
    let tags = &g["tags"];
    assert_eq!(f["major_brand"], tags["major_brand"]);
    assert_eq!(f["minor_version"].to_string(), tags["minor_version"].as_str().unwrap());
    let brands: String = f["compatible_brands"].as_array().unwrap().iter().map(|b| b.as_str().unwrap()).collect();
    assert_eq!(brands, tags["compatible_brands"].as_str().unwrap());
    assert!((num(&f["duration"]) - num(&g["duration"])).abs() < 0.001, "{f} vs {g}");
    assert!((num(&f["bit_rate"]) / num(&g["bit_rate"]) - 1.0).abs() < 0.001, "{f} vs {g}");
    assert_eq!(num(&f["size"]), num(&g["size"]));
    assert_eq!(f["nb_streams"], g["nb_streams"]);
    if let Some(t) = tags["creation_time"].as_str() {
        // ffprobe adds microseconds: 2024-05-06T07:08:09.000000Z.
        assert_eq!(f["creation_time"].as_str().unwrap(), t.replace(".000000Z", "Z"));
    }
    for (s, t) in ours["streams"].as_array().unwrap().iter().zip(theirs["streams"].as_array().unwrap()) {
        let at = format!("stream {}: ours {s}\nffprobe {t}", t["index"]);
        assert_eq!(s["index"], t["index"], "{at}");
        assert_eq!(s["codec_type"], t["codec_type"], "{at}");
        assert_eq!(s["codec_tag_string"], t["codec_tag_string"], "{at}");
        for key in ["codec_name", "profile", "avg_frame_rate"] {
            if t[key] != "0/0" {
                assert_eq!(s[key], t[key], "{key} {at}");
            }
        }
        for key in ["width", "height", "channels", "sample_rate", "nb_frames"] {
            if !t[key].is_null() {
                assert_eq!(num(&s[key]), num(&t[key]), "{key} {at}");
            }
        }
        assert!((num(&s["duration"]) - num(&t["duration"])).abs() < 0.001, "duration {at}");
        if t["codec_type"] != "data" {
            assert!((num(&s["bit_rate"]) / num(&t["bit_rate"]) - 1.0).abs() < 0.01, "bit_rate {at}");
        }
        assert_eq!(s["language"].as_str(), t["tags"]["language"].as_str(), "language {at}");
        if s["codec_type"] == "video" {
            let rotation = t["side_data_list"].as_array().and_then(|l| l.iter().find_map(|d| d["rotation"].as_i64()));
            assert_eq!(num(&s["rotation"]), rotation.unwrap_or(0) as f64, "rotation {at}");
            let rate = num(&s["frame_rate"]);
            let (n, d) = t["avg_frame_rate"].as_str().unwrap().split_once('/').unwrap();
            assert!((rate - n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap()).abs() < 1e-9, "{at}");
        }
    }
    // Only the index is read.
    let read = ours["bytes_read"].as_u64().unwrap();
    assert!(read < 64 << 10, "read {read} bytes");
}

#[test]
fn info_agrees_with_ffprobe() {
    let Some(dir) = setup("info_agrees_with_ffprobe") else { return };
    let mov = rotated_mov(&dir);
    assert_agrees(&mov);
    let mp4 = dir.join("a.mp4");
    run_to("mp4", &mov, &mp4);
    assert_agrees(&mp4);
    let m4a = dir.join("s.m4a");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=d=3:sample_rate=48000",
        "-ac",
        "2",
        "-c:a",
        "aac",
        "-metadata:s:a",
        "language=deu",
        m4a.to_str().unwrap(),
    ]);
    assert_agrees(&m4a);
}

#[test]
fn info_reads_a_small_fraction_of_a_large_file() {
    let Some(dir) = setup("info_reads_a_small_fraction_of_a_large_file") else { return };
    let big = dir.join("big.mov");
    // Noise does not compress: about 8 MB of media data.
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "nullsrc=size=320x240:rate=25:d=4,geq=random(1)*255:128:128",
        "-c:v",
        "libx264",
        "-qp",
        "0",
        big.to_str().unwrap(),
    ]);
    let size = std::fs::metadata(&big).unwrap().len();
    let ours = run_file("info", &big).unwrap().result.unwrap();
    let read = ours["bytes_read"].as_u64().unwrap();
    assert!(size > 4 << 20 && read * 100 < size, "read {read} of {size}");
}
