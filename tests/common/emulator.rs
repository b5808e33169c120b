//! Storage emulators for the cloud-bucket tests: found where `scripts/test`
//! installs them, started on a free loopback port, killed on drop.
//!
//! A test whose emulator is missing is skipped with a loud message, unless the
//! environment variable `CI` is set: then a missing emulator fails the test.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Whether we run under CI, where nothing may be skipped.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Where `scripts/test` puts the npm-installed emulators.
pub fn emulators_dir() -> PathBuf {
    std::env::var_os("KILN_EMULATORS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/emulators"))
}

/// The emulator `name`: under `emulators_dir()/node_modules/.bin`, else on
/// `PATH`. `None` means "skip this test" (already announced); under CI a
/// missing emulator panics instead.
pub fn find(name: &str, install: &str) -> Option<PathBuf> {
    let local = emulators_dir().join("node_modules/.bin").join(name);
    let found = if local.is_file() {
        Some(local)
    } else {
        std::env::var_os("PATH")
            .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()))
    };
    if found.is_none() {
        assert!(!under_ci(), "emulator `{name}` is missing and CI is set, so this test may not be skipped: {install}");
        eprintln!(
            "\n{0}\nSKIPPED: emulator `{name}` not found (install: {install}; `scripts/test` does)\n{0}\n",
            "!".repeat(72)
        );
    }
    found
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running emulator, killed (with its work dir removed) on drop.
pub struct Emulator {
    child: Child,
    pub port: u16,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Emulator {
    /// Run `program ARGS` (where `{port}` in an arg becomes the port) in a
    /// fresh work dir, and wait until it accepts connections.
    pub fn start(program: &std::path::Path, args: &[&str]) -> Emulator {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("emulator.log")).unwrap();
        let child = Command::new(program)
            .args(args.iter().map(|a| a.replace("{port}", &port.to_string())))
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()));
        let mut emulator = Emulator { child, port, url: format!("http://127.0.0.1:{port}"), dir };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = emulator.child.try_wait() {
                panic!("{} exited with {status} before listening:\n{}", program.display(), emulator.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not listen on port {port}:\n{}",
                program.display(),
                emulator.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        emulator
    }

    /// What the emulator printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }
}
