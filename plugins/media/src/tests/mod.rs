//! Native tests. Fixtures are made at test time by Debian's `ffmpeg`, and
//! outputs are checked with `ffmpeg`/`ffprobe`, as a user would. A test that
//! needs them prints why and passes when they are absent, unless
//! `KILN_MEDIA_REQUIRE_FFMPEG` is set (for CI), when it fails.

mod audio;
mod hostile;
mod info;
mod remux;

use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_plugin_sdk::serde_json::{self, Value};
use kiln_plugin_sdk::testing::{Ran, run_full};
use kiln_plugin_sdk::{ProcessError, Processor};

use crate::Media;

/// Whether `ffmpeg` and `ffprobe` are on PATH; prints the skip otherwise.
fn have_ffmpeg(test: &str) -> bool {
    let ok = |tool: &str| Command::new(tool).arg("-version").output().is_ok_and(|o| o.status.success());
    if ok("ffmpeg") && ok("ffprobe") {
        return true;
    }
    // CI sets this so that a missing install fails instead of passing quietly.
    assert!(
        std::env::var_os("KILN_MEDIA_REQUIRE_FFMPEG").is_none(),
        "{test}: ffmpeg/ffprobe not found on PATH and KILN_MEDIA_REQUIRE_FFMPEG is set"
    );
    eprintln!("SKIPPED {test}: ffmpeg/ffprobe not found on PATH (apt-get install -y ffmpeg)");
    false
}

/// A fresh directory for one test's files, removed when the test passes
/// (kept after a failure, to look at).
pub struct Workdir(PathBuf);

impl std::ops::Deref for Workdir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// `ffmpeg` is there and a fresh folder for `test`, or `None` (and the skip
/// printed).
pub fn setup(test: &str) -> Option<Workdir> {
    have_ffmpeg(test).then(|| workdir(test))
}

pub fn workdir(test: &str) -> Workdir {
    let dir = std::env::temp_dir().join(format!("kiln-media-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Workdir(dir)
}

/// Run ffmpeg with `args` (quiet, overwriting); panics with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error", "-y"]).args(args).output().unwrap();
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// ffmpeg's output on stdout for `args`.
pub fn ffmpeg_stdout(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg").args(["-hide_banner", "-loglevel", "error"]).args(args).output().unwrap();
    assert!(out.status.success(), "ffmpeg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `ffprobe -show_streams -show_format -of json`.
pub fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-show_format", "-of", "json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe {}: {}", path.display(), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every stream's packets hashed, as `-f streamhash` prints them.
pub fn streamhash(path: &Path) -> String {
    let p = path.to_str().unwrap();
    String::from_utf8(ffmpeg_stdout(&["-i", p, "-map", "0", "-c", "copy", "-f", "streamhash", "-"])).unwrap()
}

/// Run the plugin on a file.
pub fn run_file(params: &str, path: &Path) -> Result<Ran, ProcessError> {
    run_full::<Media>(params, &std::fs::read(path).unwrap())
}

/// Run the plugin and write its one output beside the input.
pub fn run_to(params: &str, input: &Path, output: &Path) -> Ran {
    let ran = run_file(params, input).unwrap_or_else(|e| panic!("{params} on {}: {e}", input.display()));
    assert_eq!(ran.outputs.len(), 1);
    std::fs::write(output, &ran.outputs[0].bytes).unwrap();
    ran
}

/// The top-level box types of a file, in order.
pub fn top_boxes(bytes: &[u8]) -> Vec<String> {
    let mut at = 0usize;
    let mut kinds = Vec::new();
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as u64;
        let size = match size {
            1 => u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()),
            0 => (bytes.len() - at) as u64,
            n => n,
        };
        kinds.push(String::from_utf8_lossy(&bytes[at + 4..at + 8]).into_owned());
        at += size as usize;
    }
    kinds
}

/// A test clip: H.264 + two AAC tracks (eng, fra) + timecode, QuickTime
/// with the `moov` last (ffmpeg's default for .mov), rotated 90°.
pub fn rotated_mov(dir: &Path) -> PathBuf {
    let plain = dir.join("plain.mov");
    let out = dir.join("a.mov");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=30000/1001:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:d=2",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=660:d=2:sample_rate=48000",
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        "-metadata:s:a:0",
        "language=eng",
        "-metadata:s:a:1",
        "language=fra",
        "-timecode",
        "01:00:00:00",
        "-metadata",
        "creation_time=2024-05-06T07:08:09Z",
        plain.to_str().unwrap(),
    ]);
    // ffmpeg 5 sets the display matrix from `rotate` only when copying.
    ffmpeg(&[
        "-i",
        plain.to_str().unwrap(),
        "-map",
        "0",
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        out.to_str().unwrap(),
    ]);
    out
}

#[test]
fn styles_validate() {
    for ok in
        ["mp4", "mp4,strip_metadata", "mp4,drop_unsupported,strip_1", "info", "audio", "audio,f_wav,ar_22050,ac_1"]
    {
        Media::validate(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in ["", "mp4/info", "mp4,strip_gps", "info,x_1", "audio,f_mp3", "audio,ac_3", "audio,ar_100", "video"] {
        assert!(Media::validate(bad).is_err(), "{bad} should be refused");
    }
    assert_eq!(Media::extension("mp4").as_deref(), Some("mp4"));
    assert_eq!(Media::extension("audio,f_wav").as_deref(), Some("wav"));
    assert_eq!(Media::extension("info"), None);
}
