//! `kiln serve`: the daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::api::{AppState, router};
use crate::config::Config;
use crate::jobs::{Jobs, Plugins};
use crate::model::{StyleRecord, now};
use crate::objects::Buckets;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::store::Store;

#[derive(Args)]
pub struct ServeArgs {
    /// TOML config file.
    #[arg(long, short, env = "KILN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on (port 0 picks a free port, printed at start).
    #[arg(long, env = "KILN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory: the redb file, the compile cache, local buckets.
    #[arg(long, env = "KILN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Tasks in flight across the daemon.
    #[arg(long, env = "KILN_WORKERS")]
    workers: Option<usize>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(w) = args.workers {
        config.workers = w;
    }
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir).with_context(|| format!("creating data dir {}", config.data_dir.display()))?;

    let store = Store::open(&config.db_path())?;
    let buckets = Arc::new(Buckets::new(&config)?);
    let runtime = Arc::new(Runtime::new(RuntimeConfig {
        cache_dir: Some(config.cache_dir()),
        max_instances: (config.workers as u32 + 8).max(config.runtime.max_instances),
        ..config.runtime.clone()
    })?);
    let plugins = Plugins::load_bundled(&runtime).await?;
    plugins.load_dir(&runtime, &config.plugins_dir()).await?;
    // Each bundled plugin is also a style of the same name with no parameters.
    for name in plugins.names() {
        let n = name.clone();
        if store.call(move |s| s.get_style(&n)).await?.is_none() {
            let style = StyleRecord { name: name.clone(), plugin: name, params: String::new(), created_at: now() };
            store.call(move |s| s.put_style(&style)).await?;
        }
    }
    let jobs = Jobs::start(&config, store, buckets, runtime, plugins).await?;

    let listener = tokio::net::TcpListener::bind(config.listen).await.with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Printed on stdout, so scripts and tests can find a port picked with `:0`.
    println!("kiln listening on http://{addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), workers = config.workers, "kiln serving");
    axum::serve(listener, router(AppState { jobs }))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("kiln stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: in-flight tasks are re-run at next start");
}
