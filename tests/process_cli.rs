//! `kiln process`: the real binary, bundled styles and plugin files.

use crate::common;

use common::kiln;
use kiln_test_plugins as plugins;

#[test]
fn bundled_style_writes_into_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("notes.md");
    std::fs::write(&input, "hello").unwrap();
    let out = dir.path().join("out/");
    let o = kiln(&["process", "--style", "copy", input.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(out.join("notes.md")).unwrap(), "hello");
}

#[test]
fn plugin_file_with_several_outputs_numbers_them() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "abc").unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let o = kiln(&[
        "process",
        "--plugin",
        plugins::ECHO,
        "--params",
        "repeat,n_3",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for name in ["in.txt", "in-2.txt", "in-3.txt"] {
        assert_eq!(std::fs::read_to_string(out.join(name)).unwrap(), "abc", "{name}");
    }
}

#[test]
fn stdin_to_stdout() {
    use std::io::Write;
    let mut child = std::process::Command::new(common::kiln_bin())
        .args(["process", "--plugin", plugins::ECHO])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped bytes").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, b"piped bytes");
}

#[test]
fn errors_name_the_plugin_the_parameter_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "abc").unwrap();
    let input = input.to_str().unwrap();

    let o = kiln(&["process", "--plugin", plugins::ECHO, "--params", "repeat,n_0", input]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("plugin `echo` refused the parameters") && err.contains("`n`"), "{err}");

    let o = kiln(&["process", "--style", "nosuch/thing", input]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("unknown style `nosuch`"), "{err}");

    let out = dir.path().join("out/");
    let o = kiln(&[
        "process",
        "--plugin",
        plugins::HOSTILE,
        "--params",
        "loop",
        "--deadline",
        "1s",
        input,
        "-o",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("plugin `hostile`") && err.contains("deadline of 1s exceeded"),
        "{err}"
    );

    let o = kiln(&[
        "process",
        "--plugin",
        plugins::HOSTILE,
        "--params",
        "flood",
        "--max-output",
        "1MiB",
        input,
        "-o",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("output limit"), "{err}");
    // A failed task leaves no file behind, not even a partial one.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);

    // A plugin that reads a file of the host gets an error, never the file:
    // its filesystem holds no directory.
    let o = kiln(&["process", "--plugin", plugins::FS_IMPORT, input]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && !err.contains("root:"), "{err}");
    assert!(o.stdout.is_empty());
}

/// `-o /dev/null` writes into the device; it must never be replaced by a file.
#[test]
fn output_to_a_device_writes_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "abc").unwrap();
    let o = kiln(&["process", "--style", "copy", input.to_str().unwrap(), "-o", "/dev/null"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null").unwrap().file_type().is_char_device(), "/dev/null must stay a device");
}

/// The plugin author's loop: the second run of a plugin comes from the
/// compile cache in the user's cache folder; `--no-cache` compiles afresh.
#[test]
fn process_keeps_a_compile_cache_in_the_users_cache_folder() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "hi").unwrap();
    let run = |extra: &[&str]| {
        let o = std::process::Command::new(common::kiln_bin())
            .args(["process", "--plugin", plugins::ECHO, "--json", input.to_str().unwrap(), "-o", "/dev/null"])
            .args(extra)
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .env("KILN_LOG", "warn")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let line = String::from_utf8_lossy(&o.stderr).lines().last().unwrap().to_string();
        serde_json::from_str::<serde_json::Value>(&line).unwrap()["compile_cache"].as_str().unwrap().to_string()
    };
    assert_eq!(run(&[]), "compiled");
    assert!(dir.path().join("cache/kiln").is_dir(), "the cache lives in $XDG_CACHE_HOME/kiln");
    assert_eq!(run(&[]), "hit");
    assert_eq!(run(&["--no-cache"]), "compiled");
}

/// Outputs are ordinary files: 0666 less the umask, not tempfile's 0600.
#[cfg(unix)]
#[test]
fn process_writes_files_with_the_users_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("a.txt");
    std::fs::write(&input, "x").unwrap();
    let out = dir.path().join("out/");
    let o = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("umask 022 && exec \"$0\" process --style copy {} -o {}", input.display(), out.display()),
        ])
        .arg(common::kiln_bin())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mode = std::fs::metadata(out.join("a.txt")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "{mode:o}");
}

/// A command piped into `head` ends quietly, as every Unix tool does.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.txt");
    std::fs::write(&input, "line\n".repeat(200_000)).unwrap();
    let o = std::process::Command::new("sh")
        .args(["-c", &format!("\"$0\" process --style copy {} | head -c 10 > /dev/null", input.display())])
        .arg(common::kiln_bin())
        .env("XDG_CACHE_HOME", dir.path().join("cache"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "{stderr}");
}
