//! The sandboxed runtime with real components built from source: well-behaved
//! and hostile plugins, load-time checks, limits, and the compile cache.

use crate::common;

use std::time::Duration;

use common::MemoryTarget;
use kiln::runtime::{
    CacheOutcome, InputSource, LimitHit, Limits, LoadError, ObjectMeta, Plugin, Runtime, RuntimeConfig, Task,
    TaskError, TaskErrorKind,
};
use kiln_test_plugins as plugins;

fn limits() -> Limits {
    Limits {
        deadline: Duration::from_secs(2),
        max_memory: 64 << 20,
        max_output: 1 << 20,
        max_console: 1024,
        read_factor: 4,
    }
}

fn runtime() -> Runtime {
    Runtime::new(RuntimeConfig { limits: limits(), max_instances: 8, ..RuntimeConfig::default() }).unwrap()
}

async fn load(rt: &Runtime, path: &str) -> Plugin {
    common::load_plugin(rt, path).await
}

async fn run(
    rt: &Runtime,
    plugin: &Plugin,
    params: &str,
    key: &str,
    input: &[u8],
) -> (Result<kiln::runtime::TaskOutcome, TaskError>, MemoryTarget) {
    common::run_in_memory(rt, plugin, params, key, input, limits()).await
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
    assert_eq!(target.0.lock().unwrap().committed, vec![(1, Some("txt".into()), b"hello kiln".to_vec())]);

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
    type Expected<'a> = &'a dyn Fn(&TaskError) -> bool;
    let cases: &[(&str, Expected, &str)] = &[
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
        {
            let rec = target.0.lock().unwrap();
            assert!(rec.committed.is_empty(), "{action}: a failed task commits nothing");
            assert_eq!(rec.aborted, rec.opened, "{action}: every opened output is aborted");
        }

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

    // The filesystem is linked with no directory in it: the plugin loads, and
    // reading a file of the host fails (`process_cli.rs` runs it).
    rt.load(&std::fs::read(plugins::FS_IMPORT).unwrap()).await.unwrap();

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

    let first_rt = Runtime::new(config.clone()).unwrap();
    let first = first_rt.load(&wasm).await.unwrap();
    assert_eq!(first.cache, CacheOutcome::Compiled);
    // Compiled, it is served from the file it was written to (mapped, as a
    // warm start would): it runs as the compiled copy did.
    let (ok, _) = run(&first_rt, &first, "", "a.txt", b"compiled").await;
    assert!(ok.is_ok());
    // A new runtime, as after a restart, finds the artifact on disk.
    let rt = Runtime::new(config).unwrap();
    let second = rt.load(&wasm).await.unwrap();
    assert_eq!(second.cache, CacheOutcome::Hit);
    assert_eq!(first.sha256, second.sha256);
    assert!(second.load_time < first.load_time, "{:?} vs {:?}", second.load_time, first.load_time);
    let (ok, _) = run(&rt, &second, "", "a.txt", b"cached").await;
    assert!(ok.is_ok());
}

/// The largest single allocation made on this thread since the last reset:
/// the runtime's own copies of what a plugin returns happen on the caller's
/// thread (the guest's memory is mapped by wasmtime, not allocated here).
mod largest_allocation {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    thread_local! { static LARGEST: Cell<usize> = const { Cell::new(0) }; }

    struct Tracking;

    fn note(size: usize) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }

    // SAFETY: every call is passed on unchanged to the system allocator.
    unsafe impl GlobalAlloc for Tracking {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc(layout) }
        }
        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            unsafe { System.alloc_zeroed(layout) }
        }
        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            unsafe { System.realloc(ptr, layout, new_size) }
        }
        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Tracking = Tracking;

    pub fn reset() {
        LARGEST.with(|l| l.set(0));
    }
    pub fn get() -> usize {
        LARGEST.with(|l| l.get())
    }
}

/// A runtime whose plugins have room for 100 MB of text (the hostile plugin's).
/// Its control deadline is long: `validate` builds a 100 MB refusal, which on
/// a loaded machine can outlast the default 1 s, and the caps, not the
/// deadline (tested below), are what these tests check.
fn roomy_runtime() -> Runtime {
    let limits = Limits { max_memory: 512 << 20, ..limits() };
    let control_deadline = Duration::from_secs(30);
    Runtime::new(RuntimeConfig { limits, max_instances: 4, control_deadline, ..RuntimeConfig::default() }).unwrap()
}

/// Every string a plugin hands the host is cut to its cap, on a character
/// boundary with a marker, and never copied whole first.
#[tokio::test(flavor = "current_thread")]
async fn plugin_text_is_capped_and_never_copied_whole() {
    let rt = roomy_runtime();
    let caps = rt.config().text;
    let hostile = load(&rt, plugins::HOSTILE).await;
    let mut task_limits = limits();
    task_limits.max_memory = 512 << 20;

    // A 100 MB error from `process`.
    largest_allocation::reset();
    let target = MemoryTarget::default();
    let task = Task {
        params: "bigerror".into(),
        object: ObjectMeta { bucket: "b".into(), key: "k".into(), ..Default::default() },
        input: InputSource::from_bytes(b"x".to_vec()),
        target: Box::new(target.clone()),
        limits: task_limits,
    };
    let err = rt.run(&hostile, task).await.unwrap_err();
    let largest = largest_allocation::get();
    let msg = err.to_string();
    assert_eq!(err.kind(), TaskErrorKind::Failed);
    assert!(msg.len() < caps.max_message + 200, "{} bytes", msg.len());
    // The hostile plugin's message is 112 MiB and a little more.
    let marker = format!("[cut at {} of ", caps.max_message);
    let whole: u64 =
        msg.split(&marker).nth(1).and_then(|r| r.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(whole > 100_000_000, "{}", &msg[msg.len().saturating_sub(80)..]);
    assert!(largest < 8 << 20, "the host copied {largest} bytes at once: the whole error?");

    // One 100 MB log line: cut before it is copied; the task succeeds.
    largest_allocation::reset();
    let task = Task {
        params: "biglog".into(),
        object: ObjectMeta { bucket: "b".into(), key: "k".into(), ..Default::default() },
        input: InputSource::from_bytes(b"x".to_vec()),
        target: Box::new(MemoryTarget::default()),
        limits: task_limits,
    };
    rt.run(&hostile, task).await.unwrap();
    let largest = largest_allocation::get();
    assert!(largest < 8 << 20, "the host copied {largest} bytes at once: the whole log line?");

    // A 100 MB refusal from `validate`.
    largest_allocation::reset();
    let refusal = rt.validate(&hostile, "bigrefusal").await.unwrap().unwrap_err();
    let largest = largest_allocation::get();
    assert!(refusal.len() < caps.max_message + 100, "{} bytes", refusal.len());
    assert!(refusal.contains("[cut at"), "{refusal:.200}");
    assert!(largest < 8 << 20, "the host copied {largest} bytes at once: the whole refusal?");

    // An `info()` of 42 MB and 100,000 formats.
    largest_allocation::reset();
    let bigmouth = load(&rt, plugins::BIGMOUTH).await;
    let largest = largest_allocation::get();
    assert_eq!(bigmouth.info.name, "bigmouth");
    assert!(bigmouth.info.description.len() < caps.max_info_field + 100);
    assert!(bigmouth.info.description.ends_with("of 41943040 bytes]"), "{:.100}", bigmouth.info.description);
    assert_eq!(bigmouth.info.reads.len(), caps.max_info_formats + 1);
    assert_eq!(bigmouth.info.reads.last().unwrap(), &format!("… [{} more not shown]", 100_000 - caps.max_info_formats));
    assert!(largest < 8 << 20, "the host copied {largest} bytes at once: the whole info?");
}

/// `info` and `validate` answer API requests: a plugin that hangs in them is
/// stopped at the control deadline, not the task deadline.
#[tokio::test]
async fn info_and_validate_that_hang_are_stopped_at_the_control_deadline() {
    let config = RuntimeConfig {
        limits: Limits { deadline: Duration::from_secs(30), ..limits() },
        control_deadline: Duration::from_millis(500),
        max_instances: 4,
        ..RuntimeConfig::default()
    };
    let rt = Runtime::new(config).unwrap();
    let started = std::time::Instant::now();
    let err = rt.load(&std::fs::read(plugins::STALL_INFO).unwrap()).await.unwrap_err();
    assert!(matches!(err, LoadError::Info(_)), "{err:?}");
    assert!(err.to_string().contains("runtime.control_deadline"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    let hostile = load(&rt, plugins::HOSTILE).await;
    let started = std::time::Instant::now();
    let err = rt.validate(&hostile, "hang").await.unwrap_err();
    assert!(err.to_string().contains("runtime.control_deadline"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // A plugin reloaded from its record is not called at all: its recorded info stands.
    let recorded = kiln::runtime::PluginInfo {
        name: "stall".into(),
        version: "1".into(),
        description: "recorded at upload".into(),
        reads: vec![],
        writes: vec![],
        contract: kiln::runtime::Contract::V1,
        variables: vec![],
        actions: vec![],
    };
    let started = std::time::Instant::now();
    let plugin = rt.reload(&std::fs::read(plugins::STALL_INFO).unwrap(), recorded.clone()).await.unwrap();
    // The contract version is read from the component itself, not the record.
    assert_eq!(kiln::runtime::PluginInfo { contract: recorded.contract, ..plugin.info.clone() }, recorded);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// A plugin that swallows a refused `outputs.open` and returns `ok` fails its
/// task; one that calls `exit(0)` is reported as such, without a backtrace.
#[tokio::test]
async fn ignoring_a_refused_open_or_exiting_fails_the_task_in_plain_words() {
    let rt = runtime();
    let hostile = load(&rt, plugins::HOSTILE).await;
    let (result, target) = run(&rt, &hostile, "ignore-refused", "a.txt", b"x").await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Failed);
    assert!(err.to_string().contains("after the host refused to open an output"), "{err}");
    assert!(err.to_string().contains("invalid extension `not/an/extension`"), "{err}");
    assert!(target.0.lock().unwrap().committed.is_empty());

    let (result, _) = run(&rt, &hostile, "exit", "a.txt", b"x").await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), TaskErrorKind::Crashed);
    assert_eq!(err.to_string(), "the plugin exited (status 0) before returning");
}
