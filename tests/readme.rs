//! The README's five-minute tour, run as written: its shell blocks become one
//! script, with only what a reader fills in by hand filled in (the printed
//! admin token, the job's id, a photo folder and `cat.jpg`), and a free port
//! for `127.0.0.1:7878` so that the test never meets a daemon of the reader's.

use crate::common;

use std::path::Path;
use std::process::Command;

/// The `sh` blocks of the README's section `## A five-minute tour`.
fn tour_blocks() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let section = readme.split("\n## A five-minute tour").nth(1).expect("the README has a five-minute tour");
    let section = section.split("\n## ").next().unwrap();
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(start) = rest.find("```sh\n") {
        let body = &rest[start + 6..];
        let end = body.find("```").expect("a closed block");
        blocks.push(body[..end].to_string());
        rest = &body[end + 3..];
    }
    assert!(blocks.len() >= 2, "the tour and its next steps");
    blocks
}

/// The tour as a script: `kiln serve` in the background, its token read from
/// what it prints, `ID` the job the tour created.
fn script(blocks: &[String], url: &str) -> String {
    let mut out = String::from("set -euo pipefail\n");
    for block in blocks {
        for line in block.replace("\\\n", " ").lines() {
            let line = line.replace("http://127.0.0.1:7878", url);
            if line.trim_start().starts_with("kiln serve") {
                out.push_str("kiln serve > serve.out 2> serve.err &\necho $! > serve.pid\n");
                out.push_str(
                    "for _ in $(seq 1 600); do grep -q listening serve.out 2>/dev/null && break; sleep 0.1; done\n",
                );
                out.push_str("TOKEN=$(grep -o 'kiln_[0-9a-f]*' serve.err | head -1)\n");
                continue;
            }
            let line = line.replace("kiln_…", "$TOKEN");
            let line = line.split(' ').map(|w| if w == "ID" { "1" } else { w }).collect::<Vec<_>>().join(" ");
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn the_readme_tour_runs_as_written() {
    let blocks = tour_blocks();
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let home = work.join("home");
    std::fs::create_dir_all(home.join("Pictures")).unwrap();
    // Photos in `~/Pictures`, as the tour copies them from; `cat.jpg` beside the tour.
    let samples = work.join("samples");
    let made = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/make-samples.py"))
        .arg(&samples)
        .args(["4", "640", "480"])
        .status()
        .expect("python3 with Pillow (scripts/test installs it)");
    assert!(made.success());
    for folder in std::fs::read_dir(&samples).unwrap() {
        for photo in std::fs::read_dir(folder.unwrap().path()).unwrap() {
            let photo = photo.unwrap().path();
            std::fs::copy(&photo, home.join("Pictures").join(photo.file_name().unwrap())).unwrap();
            std::fs::copy(&photo, work.join("cat.jpg")).unwrap();
        }
    }

    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let url = format!("http://{listen}");
    let script = script(&blocks, &url);
    let bin = common::kiln_bin();
    let path = format!("{}:{}", bin.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(work)
        .env("HOME", &home)
        .env("PATH", path)
        .env("KILN_LISTEN", &listen)
        .env_remove("KILN_TOKEN")
        .env_remove("KILN_URL")
        .env_remove("KILN_ADMIN_TOKEN")
        .env("KILN_LOG", "warn")
        .output()
        .unwrap();
    if let Ok(pid) = std::fs::read_to_string(work.join("serve.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the tour failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");

    // Four photos, four thumbnails, in the bucket the tour made.
    let thumbs: Vec<_> = std::fs::read_dir(work.join("kiln-data/buckets/thumbs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(thumbs.len(), 4, "{thumbs:?}");
    assert!(thumbs.iter().all(|t| t.ends_with(".webp")), "{thumbs:?}");
    let report = std::fs::read_to_string(work.join("report.csv")).unwrap();
    assert_eq!(report.lines().count(), 5, "a header and a row per photo: {report}");
    let cat = std::fs::read(work.join("out/cat.webp")).expect("kiln process wrote out/cat.webp");
    assert_eq!(&cat[..4], b"RIFF");
    assert_eq!(&cat[8..12], b"WEBP");
}
