//! The bundled `media` plugin end to end, through jobs of a real daemon on a
//! local bucket and on S3 (moto): MOV to a faststart MP4 without re-encoding,
//! media info as the task's result, and audio to FLAC. Inputs are made, and
//! outputs checked, by Debian's `ffmpeg`/`ffprobe` (`scripts/test` installs
//! them; without them the test is skipped and says so, unless
//! `KILN_MEDIA_REQUIRE_FFMPEG` is set, as in CI).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Daemon;
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(300);

fn have_ffmpeg() -> bool {
    let ok = |tool: &str| Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success());
    if ok("ffmpeg") && ok("ffprobe") {
        return true;
    }
    assert!(std::env::var_os("KILN_MEDIA_REQUIRE_FFMPEG").is_none(), "ffmpeg/ffprobe not on PATH");
    eprintln!("SKIPPED: ffmpeg/ffprobe not on PATH (apt-get install -y ffmpeg)");
    false
}

fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let o = Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error", "-y"]).args(args).output().unwrap();
    assert!(o.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// Every stream's packets hashed: equal for a lossless remux.
fn streamhash(path: &Path) -> String {
    String::from_utf8(ffmpeg(&["-i", path.to_str().unwrap(), "-map", "0", "-c", "copy", "-f", "streamhash", "-"]))
        .unwrap()
}

fn ffprobe(path: &Path) -> Value {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-show_format", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "ffprobe: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The types of the top-level boxes, in file order.
fn top_level_boxes(bytes: &[u8]) -> Vec<String> {
    let mut at = 0usize;
    let mut boxes = Vec::new();
    while at + 8 <= bytes.len() {
        let size32 = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        boxes.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        let size = match size32 {
            1 => u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize,
            0 => bytes.len() - at,
            n => n,
        };
        at += size.max(8);
    }
    boxes
}

async fn run(d: &Daemon, spec: Value) -> (Value, Vec<Value>) {
    let (done, tasks) = d.run_job(spec, LONG).await;
    assert_eq!(done["state"], "succeeded", "{done}\n{tasks:?}");
    (done, tasks)
}

/// The mp4 is a faststart remux of `mov`: the same packets, `moov` before `mdat`, the same duration.
fn assert_remux_of(mov: &Path, mp4: &Path) {
    assert_eq!(streamhash(mp4), streamhash(mov), "{} is not a lossless remux", mp4.display());
    let boxes = top_level_boxes(&std::fs::read(mp4).unwrap());
    let (moov, mdat) = (boxes.iter().position(|b| b == "moov"), boxes.iter().position(|b| b == "mdat"));
    assert!(moov.is_some() && moov < mdat, "moov must precede mdat: {boxes:?}");
    let (a, b) = (ffprobe(mov), ffprobe(mp4));
    let duration = |p: &Value| p["format"]["duration"].as_str().unwrap().parse::<f64>().unwrap();
    assert!((duration(&a) - duration(&b)).abs() < 0.05, "durations {} vs {}", duration(&a), duration(&b));
    assert_eq!(b["streams"][1]["tags"]["language"], "fra", "{b}");
    assert!(b["format"]["format_name"].as_str().unwrap().contains("mp4"), "{b}");
}

#[tokio::test]
async fn mov_to_mp4_media_info_and_audio_through_jobs_on_local_and_s3() {
    if !have_ffmpeg() {
        return;
    }
    let Some(emu) = common::cloud::moto_with_buckets().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let videos = data.join("buckets/videos");
    std::fs::create_dir_all(videos.join("clips")).unwrap();
    std::fs::create_dir_all(videos.join("sound")).unwrap();
    std::fs::create_dir_all(data.join("buckets/out")).unwrap();
    // H.264 + AAC in QuickTime, `moov` written last (ffmpeg's default for .mov).
    let mov = videos.join("clips/a.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=25:duration=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:duration=2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-metadata:s:a:0",
        "language=fra",
        mov.to_str().unwrap(),
    ]);
    let boxes = top_level_boxes(&std::fs::read(&mov).unwrap());
    assert!(boxes.iter().position(|b| b == "moov") > boxes.iter().position(|b| b == "mdat"), "{boxes:?}");
    let wav = videos.join("sound/tone.wav");
    ffmpeg(&["-f", "lavfi", "-i", "sine=frequency=300:duration=1", "-c:a", "pcm_s16le", wav.to_str().unwrap()]);

    let config = format!(
        "[buckets.s3in]\nkind = \"s3\"\nbucket = \"photos\"\nendpoint = \"{url}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\npath_style = true\nallow_http = true\n\
         [buckets.s3out]\nkind = \"s3\"\nbucket = \"results\"\nendpoint = \"{url}\"\naccess_key_id = \"test\"\nsecret_access_key = \"test\"\npath_style = true\nallow_http = true\n",
        url = emu.url
    );
    let mut parsed: kiln::config::Config = toml::from_str(&config).unwrap();
    parsed.data_dir = dir.path().join("client");
    let buckets = kiln::objects::Buckets::new(&parsed).unwrap();
    let (s3in, s3out) = (buckets.get("s3in").unwrap(), buckets.get("s3out").unwrap());
    s3in.put("trip/a.mov", std::fs::read(&mov).unwrap().into()).await.unwrap();
    let d = Daemon::start(&data, Some(&config));

    // The seed's job: every .mov to an .mp4 beside it, on a local bucket.
    let (done, _) = run(
        &d,
        json!({"input": {"bucket": "videos", "suffixes": ".mov"}, "style": "media/mp4",
               "output": {"bucket": "out", "template": "{dirname}/{barename}.mp4"}}),
    )
    .await;
    assert_eq!(done["counters"]["succeeded"], 1, "{done}");
    assert_remux_of(&mov, &data.join("buckets/out/clips/a.mp4"));

    // The same from S3 to S3: the moov found with ranged reads.
    run(
        &d,
        json!({"input": {"bucket": "s3in", "prefix": "trip/"}, "style": "media/mp4",
               "output": {"bucket": "s3out", "template": "mp4/{barename}.mp4"}}),
    )
    .await;
    let from_s3 = dir.path().join("from-s3.mp4");
    std::fs::write(&from_s3, s3out.get_bytes("mp4/a.mp4").await.unwrap()).unwrap();
    assert_remux_of(&mov, &from_s3);

    // media/info: the task's result agrees with ffprobe; no object is written.
    let (_, tasks) = run(
        &d,
        json!({"input": {"bucket": "videos", "keys": ["clips/a.mov"]}, "style": "media/info",
               "output": {"bucket": "out", "template": "info/{key}.json"}}),
    )
    .await;
    let info = common::task_result(&tasks[0]);
    let probe = ffprobe(&mov);
    assert_eq!(info["streams"][0]["codec_name"], probe["streams"][0]["codec_name"], "{info}");
    assert_eq!(info["streams"][0]["width"], 320, "{info}");
    assert_eq!(info["streams"][1]["codec_name"], "aac", "{info}");
    assert_eq!(info["streams"][1]["language"], "fra", "{info}");
    let probed: f64 = probe["format"]["duration"].as_str().unwrap().parse().unwrap();
    assert!((info["format"]["duration"].as_f64().unwrap() - probed).abs() < 0.01, "{info}");
    assert!(tasks[0]["outputs"].as_array().unwrap().is_empty(), "{:?}", tasks[0]);
    assert!(!data.join("buckets/out/info").exists());

    // media/audio: WAV to FLAC, sample for sample.
    run(
        &d,
        json!({"input": {"bucket": "videos", "prefix": "sound/"}, "style": "media/audio,f_flac",
               "output": {"bucket": "out", "template": "audio/{barename}.{autoext}"}}),
    )
    .await;
    let flac = data.join("buckets/out/audio/tone.flac");
    let pcm = |p: &Path| ffmpeg(&["-i", p.to_str().unwrap(), "-f", "s16le", "-"]);
    assert_eq!(pcm(&flac), pcm(&wav), "FLAC decodes to the WAV's samples");

    // A video larger than its job's output limit fails whole: nothing is written.
    let (status, job) = d
        .post(
            "/v1/jobs",
            json!({"input": {"bucket": "videos", "suffixes": ".mov"}, "style": "media/mp4", "limits": {"max_output": 4096},
                   "output": {"bucket": "out", "template": "small/{barename}.mp4"}}),
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let id = job["id"].as_u64().unwrap();
    assert_eq!(d.wait_job(id, LONG).await["state"], "failed");
    let failed = d.all_tasks(id, "&state=failed").await;
    assert!(failed[0]["error"]["message"].as_str().unwrap().contains("output limit of 4096 bytes"), "{failed:?}");
    assert!(!data.join("buckets/out/small").exists());
}
