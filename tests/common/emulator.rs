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
    /// How it was started (args with the port filled in), for [`Emulator::restart`].
    command: (PathBuf, Vec<String>),
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
        let args: Vec<String> = args.iter().map(|a| a.replace("{port}", &port.to_string())).collect();
        let child = spawn(program, &args, dir.path());
        let command = (program.to_path_buf(), args);
        let mut emulator = Emulator { child, command, port, url: format!("http://127.0.0.1:{port}"), dir };
        emulator.wait_listening();
        emulator
    }

    /// Kill it (`kill -9`) and start it again on the same port and work dir
    /// (what it stored on disk is still there).
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(&self.command.0, &self.command.1, self.dir.path());
        self.wait_listening();
    }

    fn wait_listening(&mut self) {
        let (program, port) = (self.command.0.clone(), self.port);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status} before listening:\n{}", program.display(), self.log());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not listen on port {port}:\n{}",
                program.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the emulator printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("emulator.log")).unwrap_or_default()
    }
}

/// Start `program` in `dir`, its output appended to `emulator.log` there.
fn spawn(program: &std::path::Path, args: &[String], dir: &std::path::Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("emulator.log")).unwrap();
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", program.display()))
}
