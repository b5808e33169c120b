//! `kiln bench`: measurements reported as ratios against a baseline measured
//! in the same run. Not timed tests: the machine is noisy, so each figure is
//! the median of several rounds.

use std::time::Instant;

use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::StreamExt;

use crate::bundled;
use crate::runtime::{InputSource, Limits, ObjectMeta, OutputTarget, OutputWriter, Runtime, RuntimeConfig, Task};

#[derive(Args)]
pub struct BenchArgs {
    /// Which benchmark to run.
    #[arg(value_enum, default_value_t = Bench::Runtime)]
    bench: Bench,
    /// Rounds per figure; the median is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Tasks per round of the per-task overhead benchmark.
    #[arg(long, default_value_t = 20_000)]
    tasks: usize,
    /// `copy-native`: the source folder.
    #[arg(long)]
    from: Option<std::path::PathBuf>,
    /// `copy-native`: the destination folder.
    #[arg(long)]
    to: Option<std::path::PathBuf>,
    /// `style`: the style to run, e.g. `image/resize,w_256`.
    #[arg(long)]
    style: Option<String>,
    /// `style`: tasks in flight.
    #[arg(long, default_value_t = 2)]
    parallel: usize,
    /// `runtime`: also measure this component's per-task overhead over the same
    /// 1 KiB, in the same rounds (e.g. a plugin of the other contract version); repeatable.
    #[arg(long)]
    compare: Vec<std::path::PathBuf>,
    /// `runtime`: the parameters for each `--compare` plugin, in the same order (default: none).
    #[arg(long, requires = "compare")]
    compare_params: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Bench {
    /// Per-task overhead (instantiate + call over 1 KiB) and copy throughput (64 MiB), against native Rust.
    Runtime,
    /// The native baseline of `scripts/bench-jobs`: copy every file under `--from` to `--to`
    /// with a plain Rust loop (read, create folders, write), printing the seconds taken.
    CopyNative,
    /// Run a bundled style over every file under `--from` with both cores busy
    /// (2 tasks in flight), discarding outputs; prints the seconds taken.
    /// `scripts/bench-styles` compares it with ImageMagick, vips and gzip.
    Style,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.bench {
        Bench::Runtime => runtime_bench(&args).await,
        Bench::Style => style_bench(&args).await,
        Bench::CopyNative => {
            let (Some(from), Some(to)) = (&args.from, &args.to) else {
                anyhow::bail!("copy-native needs --from DIR and --to DIR");
            };
            let started = Instant::now();
            let n = copy_tree(from, from, to)?;
            println!("{:.3}", started.elapsed().as_secs_f64());
            eprintln!("copied {n} files");
            Ok(())
        }
    }
}

/// The native loop: walk, read each file whole, write it under `to`.
fn copy_tree(root: &std::path::Path, dir: &std::path::Path, to: &std::path::Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            n += copy_tree(root, &path, to)?;
        } else {
            let dest = to.join(path.strip_prefix(root)?);
            std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
            std::fs::write(&dest, std::fs::read(&path)?)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Discards outputs, counting bytes: the benchmark measures the runtime, not a disk.
struct Discard;
struct DiscardWriter(u64);

#[async_trait::async_trait]
impl OutputTarget for Discard {
    async fn open(&mut self, _index: u32, _extension: Option<&str>) -> Result<Box<dyn OutputWriter>, String> {
        Ok(Box::new(DiscardWriter(0)))
    }
}

#[async_trait::async_trait]
impl OutputWriter for DiscardWriter {
    async fn write(&mut self, bytes: Bytes) -> Result<(), String> {
        self.0 += bytes.len() as u64;
        Ok(())
    }
    async fn commit(self: Box<Self>) -> Result<String, String> {
        Ok(self.0.to_string())
    }
    async fn abort(self: Box<Self>) {}
}

/// The same bytes as a stream of 64 KiB chunks, as an object store delivers them.
fn chunked(data: &Bytes) -> InputSource {
    let chunks: Vec<std::io::Result<Bytes>> =
        (0..data.len()).step_by(64 << 10).map(|at| Ok(data.slice(at..(at + (64 << 10)).min(data.len())))).collect();
    InputSource::new(futures::stream::iter(chunks).boxed())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

async fn runtime_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let runtime = Runtime::new(RuntimeConfig { max_instances: 8, ..RuntimeConfig::default() })?;
    let plugin = runtime.load(bundled::get("copy").expect("copy is bundled")).await?;
    let limits = Limits::default();
    let task = |input: InputSource| Task {
        params: String::new(),
        object: ObjectMeta { bucket: "bench".into(), key: "x.bin".into(), ..Default::default() },
        input,
        target: Box::new(Discard),
        limits,
    };

    // Per-task overhead: instantiate from the InstancePre, call `process` over 1 KiB, commit.
    let kib = Bytes::from(vec![7u8; 1024]);
    let mut wasm_rates = Vec::new();
    let mut native_rates = Vec::new();
    let mut compared = Vec::new();
    for (i, path) in args.compare.iter().enumerate() {
        let params = args.compare_params.get(i).cloned().unwrap_or_default();
        compared.push((runtime.load(&std::fs::read(path)?).await?, params, Vec::new()));
    }
    for _ in 0..args.rounds {
        let started = Instant::now();
        for _ in 0..args.tasks {
            runtime.run(&plugin, task(InputSource::from_bytes(kib.clone()))).await?;
        }
        wasm_rates.push(args.tasks as f64 / started.elapsed().as_secs_f64());

        for (other, params, rates) in &mut compared {
            let started = Instant::now();
            for _ in 0..args.tasks {
                let run = Task { params: params.clone(), ..task(InputSource::from_bytes(kib.clone())) };
                runtime.run(other, run).await?;
            }
            rates.push(args.tasks as f64 / started.elapsed().as_secs_f64());
        }

        // Native: the same read-copy-write of 1 KiB through the same output path.
        let started = Instant::now();
        for _ in 0..args.tasks {
            let mut input = InputSource::from_bytes(kib.clone());
            let mut out = Discard.open(1, Some("bin")).await.map_err(anyhow::Error::msg)?;
            loop {
                let chunk = input.read(64 << 10).await?;
                if chunk.is_empty() {
                    break;
                }
                out.write(Bytes::copy_from_slice(&chunk)).await.map_err(anyhow::Error::msg)?;
            }
            std::hint::black_box(out.commit().await.map_err(anyhow::Error::msg)?);
        }
        native_rates.push(args.tasks as f64 / started.elapsed().as_secs_f64());
    }
    let (wasm, native) = (median(wasm_rates), median(native_rates));
    println!("per-task overhead, 1 KiB through `copy`, 1 thread, median of {} rounds:", args.rounds);
    println!("  kiln (instantiate + process + commit): {wasm:>12.0} tasks/s  ({:.1} us/task)", 1e6 / wasm);
    println!("  native Rust loop, same I/O path:        {native:>12.0} tasks/s");
    println!("  ratio kiln/native: {:.3}   goal: >= 50000 tasks/s", wasm / native);
    for (other, params, rates) in compared {
        let rate = median(rates);
        println!(
            "  `{}/{params}` (contract {}): {rate:>12.0} tasks/s  ({:.1} us/task), ratio to `copy` ({}): {:.3}",
            other.info.name,
            other.info.contract.as_str(),
            1e6 / rate,
            plugin.info.contract.as_str(),
            rate / wasm
        );
    }

    // Copy throughput over 64 MiB.
    let big = Bytes::from((0..64u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let mut wasm_tp = Vec::new();
    let mut native_tp = Vec::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        let outcome = runtime.run(&plugin, task(chunked(&big))).await?;
        assert_eq!(outcome.bytes_out, big.len() as u64);
        wasm_tp.push(big.len() as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let mut input = chunked(&big);
        let mut out = Discard.open(1, None).await.map_err(anyhow::Error::msg)?;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let chunk = input.read(64 << 10).await?;
            if chunk.is_empty() {
                break;
            }
            // One copy in, one copy out: what the guest's read and write do.
            buf[..chunk.len()].copy_from_slice(&chunk);
            out.write(Bytes::copy_from_slice(&buf[..chunk.len()])).await.map_err(anyhow::Error::msg)?;
        }
        std::hint::black_box(out.commit().await.map_err(anyhow::Error::msg)?);
        native_tp.push(big.len() as f64 / started.elapsed().as_secs_f64());
    }
    let (wasm, native) = (median(wasm_tp), median(native_tp));
    println!("copy throughput, 64 MiB in 64 KiB chunks, median of {} rounds:", args.rounds);
    println!("  kiln `copy` plugin: {:>8.2} GB/s", wasm / 1e9);
    println!("  native Rust loop:   {:>8.2} GB/s", native / 1e9);
    println!("  ratio kiln/native: {:.3}   goal: >= 0.5 (within 2x of native)", wasm / native);
    Ok(())
}

/// Files under `dir`, recursively (the caller sorts once).
fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

async fn style_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let (Some(from), Some(style)) = (&args.from, &args.style) else {
        anyhow::bail!("style needs --from DIR and --style NAME/params");
    };
    let (name, params) = bundled::split_style(style);
    let wasm = bundled::get(name).ok_or_else(|| anyhow::anyhow!("no bundled plugin `{name}`"))?;
    let runtime = std::sync::Arc::new(Runtime::new(RuntimeConfig { max_instances: 8, ..RuntimeConfig::default() })?);
    let plugin = runtime.load(wasm).await?;
    let mut all = Vec::new();
    files(from, &mut all)?;
    all.sort();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(all));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.parallel.max(1) {
        let (runtime, plugin, queue, params) = (runtime.clone(), plugin.clone(), queue.clone(), params.to_string());
        workers.push(tokio::spawn(async move {
            loop {
                let Some(path) = queue.lock().unwrap().pop() else { return Ok::<u64, anyhow::Error>(0) };
                let file = tokio::fs::File::open(&path).await?;
                let object = ObjectMeta { key: path.to_string_lossy().into_owned(), ..Default::default() };
                // Large inputs (1 GiB for gzip) need more than the default deadline.
                let limits = Limits {
                    deadline: std::time::Duration::from_secs(3600),
                    max_output: u64::MAX,
                    ..Limits::default()
                };
                let task = Task {
                    params: params.clone(),
                    object,
                    input: InputSource::from_reader(file),
                    target: Box::new(Discard),
                    limits,
                };
                runtime.run(&plugin, task).await.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    println!("{:.3}", started.elapsed().as_secs_f64());
    Ok(())
}
