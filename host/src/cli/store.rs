//! `kiln store check` and `kiln store backup`: see `store::check`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use super::client::{Client, ClientArgs};
use crate::config::Config;

#[derive(Subcommand)]
pub enum StoreCommand {
    /// Check the store with the daemon stopped: redb's integrity check, then
    /// every record of every table decoded. Exit 1 when anything is wrong.
    #[command(
        after_help = "Examples:\n  kiln store check --data-dir kiln-data     # with the daemon stopped\n  kiln store check --file kiln-2026-12-04.redb"
    )]
    Check {
        /// The store file to check (default: the data dir's `kiln.redb`), e.g. a backup.
        #[arg(long)]
        file: Option<PathBuf>,
        /// The daemon's config file, for its data dir.
        #[arg(long, env = "KILN_CONFIG")]
        config: Option<PathBuf>,
        /// The data dir (overrides the config's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Save a consistent copy of the store of a running daemon (admin token).
    #[command(after_help = "Example:\n  kiln store backup kiln-$(date +%F).redb")]
    Backup {
        #[command(flatten)]
        client: ClientArgs,
        /// Where to write the copy; an existing file is never overwritten.
        path: PathBuf,
    },
}

pub async fn run(cmd: StoreCommand) -> anyhow::Result<()> {
    match cmd {
        StoreCommand::Check { file, config, data_dir } => {
            let path = match file {
                Some(f) => f,
                None => {
                    let mut config = Config::load(config.as_deref())?;
                    if let Some(d) = data_dir {
                        config.data_dir = d;
                    }
                    config.db_path()
                }
            };
            check(&path).await
        }
        StoreCommand::Backup { client, path } => backup(&Client::new(&client), &path).await,
    }
}

async fn check(path: &Path) -> anyhow::Result<()> {
    let shown = path.to_path_buf();
    let report = tokio::task::spawn_blocking(move || crate::store::check_file(&shown)).await??;
    println!("{}: redb integrity check {}", path.display(), if report.integrity_ok { "passed" } else { "FAILED" });
    if let Some(e) = &report.integrity_error {
        println!("  {e}");
    }
    // Where the file's bytes go: a table's records as stored, and the pages
    // that hold them (their B-tree, with the room left in each page).
    let mb = |bytes: u64| bytes as f64 / 1e6;
    let mut in_tables = 0;
    for t in &report.tables {
        let pages = t.page_bytes;
        in_tables += pages;
        if t.records == 0 {
            println!("  {}: {} records", t.name, t.records);
            continue;
        }
        println!(
            "  {}: {} records; {:.1} MB stored ({} bytes each), {:.1} MB of pages ({} bytes each)",
            t.name,
            t.records,
            mb(t.stored_bytes),
            t.stored_bytes / t.records,
            mb(pages),
            pages / t.records
        );
    }
    println!(
        "  file: {:.1} MB, of which {:.1} MB in the tables' pages; the rest is redb's own (page tables, \
         and pages freed by earlier transactions, which it reuses)",
        mb(report.file_bytes),
        mb(in_tables)
    );
    for p in &report.problems {
        println!("  problem: {p}");
    }
    if report.problem_count > report.problems.len() as u64 {
        println!("  … and {} more problems", report.problem_count - report.problems.len() as u64);
    }
    if !report.is_clean() {
        bail!(
            "{} is damaged ({}{} records cannot be read): restore a backup (`kiln store backup`), or keep this file for inspection",
            path.display(),
            if report.integrity_ok { "" } else { "the integrity check failed; " },
            report.problem_count
        );
    }
    println!("ok: every record reads");
    Ok(())
}

async fn backup(client: &Client, path: &Path) -> anyhow::Result<()> {
    // Create first, so an existing file is refused before anything is sent.
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    if path.exists() {
        let _ = std::fs::remove_file(&partial);
        bail!("{} exists: choose a new path; a backup never overwrites a file", path.display());
    }
    let result = async {
        let mut resp = client.get_raw("/v1/store/backup", &[]).await?;
        let mut bytes = 0u64;
        while let Some(chunk) = resp.chunk().await? {
            file.write_all(&chunk)?;
            bytes += chunk.len() as u64;
        }
        file.sync_all()?;
        anyhow::Ok(bytes)
    }
    .await;
    match result {
        Ok(bytes) => {
            std::fs::rename(&partial, path)?;
            println!("{}: {} ({bytes} bytes)", path.display(), bytesize::ByteSize::b(bytes).display().iec());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}
