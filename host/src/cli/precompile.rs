//! `kiln precompile`: fill a compile cache with the bundled plugins for this
//! machine, so that a daemon's first start on it is ready at once.
//!
//! The bundled components ship as WebAssembly, not as machine code: compiled
//! for this engine they take 96 MB against 44 MB (the `doc` plugin alone,
//! with Typst, 81 MB), and an artifact is tied to the CPU features of the
//! machine that compiled it. So they are compiled where they run: by the
//! daemon at its first start (in the background, `/readyz` answering 503
//! until they are ready), or ahead of it by this command, in an image build
//! or an install script, into the cache the daemon will use.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::runtime::RuntimeConfig;

#[derive(Args)]
pub struct PrecompileArgs {
    /// Configuration file (TOML), for its `data_dir`, `cache_dir` and `[runtime]`.
    #[arg(long, short, env = "KILN_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory: the cache is `<data_dir>/cache` unless `--cache-dir` says otherwise.
    #[arg(long, env = "KILN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Folder of the compile cache, as `kiln serve --cache-dir`.
    #[arg(long, env = "KILN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
}

pub async fn run(args: PrecompileArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(c) = args.cache_dir {
        config.cache_dir = Some(c);
    }
    let cache_dir = config.cache_dir();
    std::fs::create_dir_all(&cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
    // The engine as `kiln serve` builds it: artifacts are keyed by its compatibility hash.
    let runtime =
        crate::engine::plugin_runtime(RuntimeConfig { cache_dir: Some(cache_dir.clone()), ..config.runtime.clone() })?;
    let started = Instant::now();
    for (name, wasm) in crate::bundled::BUNDLED {
        let sha256 = hex::encode(Sha256::digest(wasm));
        let (was_compiled, one) = (runtime.is_compiled(&sha256), Instant::now());
        runtime.load(wasm).await.map_err(|e| anyhow::anyhow!("bundled plugin `{name}`: {e}"))?;
        let how =
            if was_compiled { "already compiled".to_string() } else { format!("compiled in {:.1?}", one.elapsed()) };
        println!("{name:<10} {:>6.1} MB  {how}", wasm.len() as f64 / 1e6);
    }
    println!(
        "{} bundled plugins ready in {} ({:.1?})",
        crate::bundled::BUNDLED.len(),
        cache_dir.display(),
        started.elapsed()
    );
    Ok(())
}
