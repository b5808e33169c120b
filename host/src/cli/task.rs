//! `kiln task …`: a job's tasks, listed and shown.

use clap::Subcommand;

use super::client::{Client, paged};
use crate::model::TaskState;

#[derive(Subcommand)]
pub enum TaskCommand {
    /// A page of a job's tasks.
    #[command(
        after_help = "Examples:\n  kiln task list 7 --state failed\n  kiln task list 7 --prefix trip-1/ --limit 20\n  kiln task list 7 --error decode"
    )]
    List {
        /// The job's id.
        job: u64,
        /// Only tasks in this state.
        #[arg(long, value_enum)]
        state: Option<TaskState>,
        /// Source keys containing this.
        #[arg(long)]
        search: Option<String>,
        /// Source keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Error kind or message containing this.
        #[arg(long)]
        error: Option<String>,
        /// Tasks per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Where the page starts: the `next` of the page before.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// One task: its source, state, attempts, outputs and error.
    #[command(after_help = "Example:\n  kiln task get 7 42")]
    Get {
        /// The job's id.
        job: u64,
        /// The task's number within the job.
        seq: u64,
    },
}

pub async fn task(client: &Client, cmd: TaskCommand) -> anyhow::Result<()> {
    match cmd {
        TaskCommand::List { job, state, search, prefix, error, limit, cursor } => {
            let mut q = vec![("limit", limit.to_string())];
            for (k, v) in [("search", search), ("prefix", prefix), ("error", error), ("cursor", cursor)] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            if let Some(s) = state {
                q.push(("state", s.as_str().into()));
            }
            let path = format!("/v1/jobs/{job}/tasks");
            let mut page = client.get(&path, &q).await?;
            // A page examines a bounded number of tasks and may come back short
            // with a `next` (docs/api.md): fill it from the next ones, as the console does.
            for _ in 1..20 {
                let got = page["items"].as_array().map_or(0, Vec::len);
                let Some(next) = page["next"].as_str().map(str::to_string).filter(|_| got < limit) else { break };
                q.retain(|(k, _)| *k != "cursor" && *k != "limit");
                q.push(("cursor", next));
                q.push(("limit", (limit - got).to_string()));
                let more = client.get(&path, &q).await?;
                if let (Some(items), Some(extra)) = (page["items"].as_array_mut(), more["items"].as_array()) {
                    items.extend(extra.iter().cloned());
                }
                page["next"] = more["next"].clone();
            }
            client.print(&page, |p| paged(p, super::human::task_table));
        }
        TaskCommand::Get { job, seq } => {
            let t = client.get(&format!("/v1/jobs/{job}/tasks/{seq}"), &[]).await?;
            client.print(&t, super::human::task_summary);
        }
    }
    Ok(())
}
