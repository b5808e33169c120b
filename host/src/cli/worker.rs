//! `kiln worker`: run a coordinator's tasks (see docs/cluster.md); `kiln
//! worker list`: the live workers, as the coordinator sees them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Args, Subcommand};

use super::client::{Client, ClientArgs};
use crate::config::Config;
use crate::objects::Buckets;
use crate::runtime::RuntimeConfig;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WorkerArgs {
    #[command(subcommand)]
    command: Option<WorkerCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum WorkerCommand {
    /// The live workers: name, version, slots, load, tasks done, buckets.
    #[command(after_help = "Examples:\n  kiln worker list\n  kiln worker list --json")]
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The coordinator's NATS server, `nats://host:4222`.
    #[arg(long, env = "KILN_NATS")]
    nats: Option<String>,
    /// TOML config: its buckets (with their secrets: they stay on this
    /// machine), `runtime` limits and `data_dir` (local buckets, compile cache).
    #[arg(long, short, env = "KILN_CONFIG")]
    config: Option<PathBuf>,
    /// Tasks run at once [default: the machine's cores].
    #[arg(long, env = "KILN_SLOTS")]
    slots: Option<usize>,
    /// This worker's name in `kiln worker list` [default: host name and process id].
    #[arg(long, env = "KILN_WORKER_NAME")]
    name: Option<String>,
    /// Data directory (local buckets, compile cache), as `kiln serve --data-dir`.
    #[arg(long, env = "KILN_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

pub async fn run(args: WorkerArgs) -> anyhow::Result<()> {
    match args.command {
        Some(WorkerCommand::List { client }) => list(&Client::new(&client)).await,
        None => work(args.run).await,
    }
}

async fn list(client: &Client) -> anyhow::Result<()> {
    let answer = client.get("/v1/workers", &[]).await?;
    client.print(&answer, |a| {
        let rows: Vec<Vec<String>> = a["workers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|w| {
                let buckets: Vec<&str> =
                    w["buckets"].as_array().into_iter().flatten().filter_map(|b| b.as_str()).collect();
                vec![
                    w["name"].as_str().unwrap_or_default().to_string(),
                    w["version"].as_str().unwrap_or_default().to_string(),
                    format!("{}/{}", w["busy"], w["slots"]),
                    w["done"].to_string(),
                    buckets.join(","),
                ]
            })
            .collect();
        if a["cluster"] == false {
            return "this daemon runs its tasks itself: no workers (see `[cluster] nats`)".into();
        }
        super::human::table(&["NAME", "VERSION", "BUSY", "DONE", "BUCKETS"], &rows)
    });
    Ok(())
}

/// How long a worker waits for a shared bucket to answer its probe at start.
const PROBE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn work(args: RunArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    let url = args.nats.or(config.cluster.nats.clone()).context("which NATS server? `--nats nats://host:4222`")?;
    let cache_dir = config.cache_dir();
    std::fs::create_dir_all(&cache_dir).with_context(|| format!("creating {}", cache_dir.display()))?;
    let slots = args.slots.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())).max(1);
    let runtime = Arc::new(crate::engine::plugin_runtime(RuntimeConfig {
        cache_dir: Some(cache_dir),
        max_instances: (slots as u32 + 2).max(config.runtime.max_instances),
        ..config.runtime.clone()
    })?);
    let js = crate::cluster::connect(&url).await?;
    // The coordinator's cloud buckets this worker's configuration does not
    // name: reached with this machine's own credentials, if it has them.
    let mut shared = Vec::new();
    for (name, definition) in crate::cluster::shared_buckets(&js).await? {
        if !config.buckets.contains_key(&name) && !config.local_buckets_dir().join(&name).is_dir() {
            config.buckets.insert(name.clone(), definition);
            shared.push(name);
        }
    }
    let buckets = Buckets::new(&config)?;
    let mut unreachable = Vec::new();
    for name in shared {
        let bucket = buckets.get(&name)?;
        let why = match tokio::time::timeout(PROBE_WAIT, bucket.probe()).await {
            Ok(Ok(())) => {
                tracing::info!(bucket = %name, "a bucket of the coordinator's, reached with this machine's credentials");
                continue;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {}s", PROBE_WAIT.as_secs()),
        };
        tracing::warn!(bucket = %name, %why, "a bucket of the coordinator's this worker cannot reach: its tasks go to other workers");
        unreachable.push(name);
    }
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    let name = args
        .name
        .unwrap_or_else(|| format!("{}-{}", if host.is_empty() { "worker" } else { &host }, std::process::id()));
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    tokio::spawn(async move {
        super::serve::signal().await;
        tracing::info!("stopping: taking no new task; running ones may finish");
        stopping.store(true, Ordering::SeqCst);
        super::serve::signal().await;
        std::process::exit(130);
    });
    let options = crate::cluster::worker::WorkerOptions { name, slots, grace: config.shutdown_grace, unreachable };
    crate::cluster::worker::run(js, runtime, buckets, options, stop).await
}
