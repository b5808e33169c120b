//! The sandboxed runtime with real components built from source: well-behaved
//! and hostile plugins, load-time checks, limits, and the compile cache.

mod common;

use std::time::Duration;

use common::MemoryTarget;
use kiln::runtime::{
    CacheOutcome, InputSource, LimitHit, Limits, LoadError, ObjectMeta, Plugin, Runtime, RuntimeConfig, Task,
    TaskError, TaskErrorKind,
};
use kiln_test_plugins as plugins;

fn limits() -> Limits {
    Limits { deadline: Duration::from_secs(2), max_memory: 64 << 20, max_output: 1 << 20, max_console: 1024 }
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig { limits: limits(), max_instances: 8, ..RuntimeConfig::default() }).unwrap()
}

async fn load(rt: &Runtime, path: &str) -> Plugin {
    rt.load(&std::fs::read(path).unwrap()).await.unwrap()
}

async fn run(
    rt: &Runtime,
    plugin: &Plugin,
    params: &str,
    key: &str,
    input: &[u8],
) -> (Result<kiln::runtime::TaskOutcome, TaskError>, MemoryTarget) {
    let target = MemoryTarget::default();
    let task = Task {
        params: params.into(),
        object: ObjectMeta {
            bucket: "b".into(),
            key: key.into(),
            size: Some(input.len() as u64),
            ..Default::default()
        },
        input: InputSource::from_bytes(input.to_vec()),
        target: Box::new(target.clone()),
        limits: limits(),
    };
    (rt.run(plugin, task).await, target)
}

#[tokio::test]
async fn well_behaved_plugin_writes_one_or_several_outputs() {
    let rt = runtime();
    let echo = load(&rt, plugins::ECHO).await;
    assert_eq!(echo.info.name, "echo");
    assert_eq!(echo.info.writes, vec!["txt"]);

    let (outcome, target) = run(&rt, &echo, "", "a/b.txt", b"hello kiln").await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.bytes_in, 10);
    assert_eq!(outcome.bytes_out, 10);
    let rec = target.0.lock().unwrap();
    assert_eq!(rec.committed, vec![(1, Some("txt".into()), b"hello kiln".to_vec())]);
    drop(rec);

    let (outcome, target) = run(&rt, &echo, "repeat,n_3", "a/b.txt", b"xy").await;
    let outcome = outcome.unwrap();
    assert_eq!(outcome.outputs.iter().map(|o| o.index).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(target.0.lock().unwrap().committed.len(), 3);
    assert_eq!(outcome.bytes_out, 6);
}

#[tokio::test]
async fn input_larger_than_a_chunk_streams_through_unchanged() {
    let rt = runtime();
    let echo = load(&rt, plugins::ECHO).await;
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (outcome, target) = run(&rt, &echo, "", "big.bin", &big).await;
    assert_eq!(outcome.unwrap().bytes_in, big.len() as u64);
    assert_eq!(target.0.lock().unwrap().committed[0].2, big);
}

#[tokio::test]
async fn plugin_errors_keep_their_kind_and_commit_nothing() {
    let rt = runtime();
    let echo = load(&rt, plugins::ECHO).await;
    let (result, target) = run(&rt, &echo, "reject", "x.txt", b"data").await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::UnsupportedInput);
    assert!(err.to_string().contains("echo refuses `x.txt`"), "{err}");
    assert!(target.0.lock().unwrap().committed.is_empty());

    let (result, _) = run(&rt, &echo, "fail-on,k_bad", "dir/bad-1.txt", b"data").await;
    assert_eq!(result.unwrap_err().kind(), TaskErrorKind::Failed);
}

#[tokio::test]
async fn validate_names_the_action_and_key() {
    let rt = runtime();
    let echo = load(&rt, plugins::ECHO).await;
    assert_eq!(rt.validate(&echo, "repeat,n_2").await.unwrap(), Ok(()));
    let refusal = rt.validate(&echo, "repeat,n_0").await.unwrap().unwrap_err();
    assert!(
        refusal.contains("`repeat`") && refusal.contains("`n`") && refusal.contains("between 1 and 1000"),
        "{refusal}"
    );
    let refusal = rt.validate(&echo, "explode").await.unwrap().unwrap_err();
    assert!(refusal.contains("unknown action `explode`"), "{refusal}");
}

/// Every hostile behaviour fails its own task with an error that names the
/// limit, and the runtime serves the next task normally.
#[tokio::test]
async fn hostile_plugins_fail_their_task_and_the_host_goes_on() {
    let rt = runtime();
    let hostile = load(&rt, plugins::HOSTILE).await;
    let echo = load(&rt, plugins::ECHO).await;
    let cases: &[(&str, &dyn Fn(&TaskError) -> bool, &str)] = &[
        ("loop", &|e| matches!(e, TaskError::Limit { hit: LimitHit::Deadline(_), .. }), "deadline of 2s exceeded"),
        (
            "alloc",
            &|e| matches!(e, TaskError::Limit { hit: LimitHit::Memory { .. }, .. }),
            "memory limit of 67108864 bytes exceeded",
        ),
        ("recurse", &|e| matches!(e, TaskError::Limit { hit: LimitHit::Stack(_), .. }), "stack limit"),
        ("panic", &|e| matches!(e, TaskError::Crashed { .. }), "hostile plugin panicked on purpose"),
        (
            "flood",
            &|e| matches!(e, TaskError::Limit { hit: LimitHit::Output(_), .. }),
            "output limit of 1048576 bytes exceeded",
        ),
        ("noise", &|e| matches!(e, TaskError::Crashed { .. }), "panicked after the noise"),
    ];
    for (action, is_expected, needle) in cases {
        let started = std::time::Instant::now();
        let (result, target) = run(&rt, &hostile, action, "victim.txt", b"x").await;
        let err = result.expect_err(action);
        let msg = err.to_string();
        assert!(is_expected(&err), "{action}: unexpected error {err:?}");
        assert!(msg.contains(needle), "{action}: `{msg}` should contain `{needle}`");
        assert!(msg.len() < 2000, "{action}: the error must stay bounded, got {} bytes", msg.len());
        assert!(started.elapsed() < Duration::from_secs(10), "{action} took {:?}", started.elapsed());
        let rec = target.0.lock().unwrap();
        assert!(rec.committed.is_empty(), "{action}: a failed task commits nothing");
        assert_eq!(rec.aborted, rec.opened, "{action}: every opened output is aborted");
        drop(rec);

        let (ok, _) = run(&rt, &echo, "", "after.txt", b"still serving").await;
        assert!(ok.is_ok(), "after {action}, the runtime must go on: {ok:?}");
    }
}

#[tokio::test]
async fn bad_components_are_refused_at_load_with_a_clear_error() {
    let rt = runtime();
    let err = rt.load(plugins::RANDOM_BYTES).await.unwrap_err();
    assert_eq!(err, LoadError::NotWasm);
    assert!(err.to_string().contains("not a WebAssembly binary"));

    let err = rt.load(plugins::CORE_MODULE).await.unwrap_err();
    assert_eq!(err, LoadError::CoreModule);
    assert!(err.to_string().contains("core WebAssembly module, not a component"));

    let mut truncated = std::fs::read(plugins::ECHO).unwrap();
    truncated.truncate(truncated.len() / 2);
    let err = rt.load(&truncated).await.unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err:?}");

    let err = rt.load(&std::fs::read(plugins::FS_IMPORT).unwrap()).await.unwrap_err().to_string();
    assert!(err.contains("wasi:filesystem/"), "{err}");
    assert!(err.contains("no filesystem"), "{err}");

    let err = rt.load(&std::fs::read(plugins::NET_IMPORT).unwrap()).await.unwrap_err().to_string();
    assert!(err.contains("wasi:sockets/"), "{err}");
    assert!(err.contains("no network"), "{err}");

    let small = Runtime::new(RuntimeConfig { max_plugin_size: 1000, ..RuntimeConfig::default() }).unwrap();
    let err = small.load(&std::fs::read(plugins::ECHO).unwrap()).await.unwrap_err();
    assert!(matches!(err, LoadError::TooLarge { limit: 1000, .. }), "{err:?}");
}

#[tokio::test]
async fn compile_cache_spares_the_second_load() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        RuntimeConfig { cache_dir: Some(dir.path().to_path_buf()), max_instances: 4, ..RuntimeConfig::default() };
    let wasm = std::fs::read(plugins::ECHO).unwrap();

    let first = Runtime::new(config.clone()).unwrap().load(&wasm).await.unwrap();
    assert_eq!(first.cache, CacheOutcome::Compiled);
    // A new runtime, as after a restart, finds the artifact on disk.
    let rt = Runtime::new(config).unwrap();
    let second = rt.load(&wasm).await.unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);
    assert_eq!(first.sha256, second.sha256);
    assert!(second.load_time < first.load_time, "{:?} vs {:?}", second.load_time, first.load_time);
    let (ok, _) = run(&rt, &second, "", "a.txt", b"cached").await;
    assert!(ok.is_ok());
}
