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
use crate::runtime::RuntimeConfig;
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
    /// Folder of the compile cache (default `<data_dir>/cache`). Daemons may
    /// share one: entries are keyed by component and engine, written atomically.
    #[arg(long, env = "KILN_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Tasks in flight across the daemon.
    #[arg(long, env = "KILN_WORKERS")]
    workers: Option<usize>,
    /// The admin's bearer token (at least 16 characters). Without it, one is
    /// generated at first start and printed once.
    #[arg(long, env = "KILN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Let webhooks go to loopback, private, link-local and other non-public
    /// addresses (`[webhooks] allow_private_networks`).
    #[arg(long, env = "KILN_WEBHOOKS_ALLOW_PRIVATE_NETWORKS")]
    webhooks_allow_private_networks: bool,
    /// Coordinate `kiln worker`s through the NATS server at this URL
    /// (`[cluster] nats`): tasks run on them instead of here.
    #[arg(long, env = "KILN_NATS")]
    nats: Option<String>,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(c) = args.cache_dir {
        config.cache_dir = Some(c);
    }
    if let Some(w) = args.workers {
        config.workers = w;
    }
    if let Some(n) = args.nats {
        config.cluster.nats = Some(n);
    }
    if let Some(t) = args.admin_token {
        config.admin_token = Some(t);
    }
    config.webhooks.allow_private_networks |= args.webhooks_allow_private_networks;
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;

    refuse_a_lost_store(&config)?;
    let store = open_store(&config).await?;
    tokio::spawn(store.clone().watch_health());
    let buckets = Arc::new(Buckets::new(&config)?);
    let runtime = Arc::new(crate::engine::plugin_runtime(RuntimeConfig {
        cache_dir: Some(config.cache_dir()),
        // Up to twice `workers` tasks may run while a tenant under its fair share
        // starts beside a busy one (jobs::dispatch), plus `info`/`validate` calls.
        max_instances: (2 * config.workers as u32 + 8).max(config.runtime.max_instances),
        ..config.runtime.clone()
    })?);
    let plugins = Plugins::new(config.plugin_blobs_dir());
    plugins.load_bundled(&runtime, &store).await?;
    plugins.load_dir(&runtime, &config.plugins_dir()).await?;
    plugins.load_uploaded(&runtime, &store).await?;
    // Each plugin installed with the daemon is also a shared style of the same name with no parameters.
    let installed_with_daemon: Vec<String> =
        plugins.visible(None).into_iter().filter(|p| p.bundled).map(|p| p.name).collect();
    for name in installed_with_daemon {
        let n = name.clone();
        if store.call(move |s| s.get_style(None, &n)).await?.is_none() {
            let style =
                StyleRecord { name: name.clone(), owner: None, plugin: name, params: String::new(), created_at: now() };
            store.call(move |s| s.put_style(&style)).await?;
        }
    }
    let admin_digest = admin_token_digest(&config, &store).await?;
    let jobs = Jobs::start(&config, store, buckets, runtime, plugins).await?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Printed on stdout, so scripts and tests can find a port picked with `:0`.
    println!("kiln listening on http://{addr}");
    tracing::info!(%addr, data_dir = %config.data_dir.display(), workers = config.workers, "kiln serving");
    let shutdown = tokio_util::sync::CancellationToken::new();
    let state = AppState {
        jobs: jobs.clone(),
        admin_digest: Arc::new(admin_digest),
        default_quotas: config.tenant_quotas,
        shutdown: shutdown.clone(),
        plugin_upload_wait: config.plugin_upload_wait,
    };
    tokio::spawn(on_signals(jobs.clone(), shutdown.clone(), config.shutdown_grace));
    let stopping = shutdown.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { stopping.cancelled().await })
        .await
        .context("serving HTTP")?;
    // Every connection is closed (live streams ended with a `shutdown` event):
    // now the tasks in flight get their grace period.
    let still_running = jobs.drain(config.shutdown_grace).await;
    if still_running > 0 {
        tracing::warn!(tasks = still_running, grace = ?config.shutdown_grace, "grace period over; these tasks run again at the next start");
    }
    tracing::info!("kiln stopped");
    Ok(())
}

/// How long a start waits for a daemon that is still stopping to let go of the store.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Open the store; while another process holds it (a daemon still stopping
/// after its grace period), wait for it, saying so, for up to [`LOCK_WAIT`].
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let started = std::time::Instant::now();
    let mut said = false;
    loop {
        match Store::open(&config.db_path()) {
            Err(crate::store::StoreError::Locked { path }) if started.elapsed() < LOCK_WAIT => {
                if !said {
                    eprintln!(
                        "kiln: {path} is open in another process (a daemon still stopping?); waiting up to {LOCK_WAIT:?}"
                    );
                    said = true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            result => {
                return result.with_context(|| {
                    format!("`kiln store check --data-dir {}` says what is wrong", config.data_dir.display())
                });
            }
        }
    }
}

/// The first SIGTERM or Ctrl-C begins a graceful stop: no task is claimed
/// any more, live streams end, in-flight tasks get `grace` to finish. A
/// second one exits at once (in-flight tasks run again at the next start).
async fn on_signals(jobs: Jobs, shutdown: tokio_util::sync::CancellationToken, grace: std::time::Duration) {
    signal().await;
    tracing::info!(
        ?grace,
        "shutting down: claiming no more tasks; in-flight tasks may finish within the grace period (signal again to exit now)"
    );
    jobs.stop_claiming();
    shutdown.cancel();
    signal().await;
    tracing::warn!("second signal: exiting now; in-flight tasks run again at the next start");
    std::process::exit(130);
}

/// The admin token's digest: from the config, or generated at first start,
/// printed once on stderr, and kept only as its digest.
async fn admin_token_digest(config: &Config, store: &Store) -> anyhow::Result<String> {
    if let Some(token) = &config.admin_token {
        return Ok(crate::auth::token_digest(token));
    }
    if let Some(digest) = store.call(|s| s.admin_token_digest()).await? {
        return Ok(digest);
    }
    let token = crate::auth::generate_token();
    let digest = crate::auth::token_digest(&token);
    let d = digest.clone();
    store.call(move |s| s.set_admin_token_digest(&d)).await?;
    eprintln!(
        "\nkiln: generated the admin token (shown only this once; Kiln keeps only its SHA-256):\n\n    {token}\n\n\
         Use it as `export KILN_TOKEN={token}` for the CLI, or set your own with KILN_ADMIN_TOKEN.\n"
    );
    Ok(digest)
}

pub(super) async fn signal() {
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
}

/// An empty (0-byte) or missing `kiln.redb` beside the state of an earlier
/// daemon means the store was lost: starting would silently forget every
/// job, tenant and token, so refuse and say what to do.
fn refuse_a_lost_store(config: &Config) -> anyhow::Result<()> {
    let db = config.db_path();
    let len = match std::fs::metadata(&db) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", db.display())),
    };
    if len.is_some_and(|n| n > 0) {
        return Ok(());
    }
    let non_empty = |dir: std::path::PathBuf| std::fs::read_dir(&dir).is_ok_and(|mut d| d.next().is_some());
    let mut state = Vec::new();
    if non_empty(config.plugin_blobs_dir()) {
        state.push(config.plugin_blobs_dir());
    }
    // A cache elsewhere may be shared: it says nothing of this data dir.
    if len == Some(0) && config.cache_dir.is_none() && non_empty(config.cache_dir()) {
        state.push(config.cache_dir());
    }
    if state.is_empty() {
        return Ok(());
    }
    let shown: Vec<String> = state.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "the store {} is {} but the data dir holds an earlier daemon's state ({}): every job, tenant and token would be lost. \
         Restore the store from a backup (`kiln store backup`), or, to start afresh on purpose, move {} aside",
        db.display(),
        if len == Some(0) { "empty (0 bytes)" } else { "missing" },
        shown.join(", "),
        if len == Some(0) { format!("{} and {}", db.display(), shown.join(" and ")) } else { shown.join(" and ") },
    )
}
