//! The committer: records task results in groups, one transaction for up to
//! `commit_batch` results or `commit_delay_ms`, whichever comes first.

use super::*;

/// Group commit: gather results for up to `commit_delay`, then one transaction.
pub(super) struct Committer {
    pub(super) inner: Arc<Inner>,
    pub(super) rx: mpsc::UnboundedReceiver<TaskResult>,
    /// The batch being gathered: the first result, which `wait` received.
    pub(super) batch: Vec<TaskResult>,
}

impl crate::background::Background for Committer {
    fn name(&self) -> String {
        "committer".into()
    }

    async fn wait(&mut self) -> bool {
        match self.rx.recv().await {
            Some(first) => {
                self.batch.push(first);
                true
            }
            None => false,
        }
    }

    async fn round(&mut self) -> Result<(), String> {
        let inner = &self.inner;
        let mut batch = std::mem::take(&mut self.batch);
        worker::gather(&mut self.rx, &mut batch, inner.commit_batch, inner.commit_delay).await;
        let batch = Arc::new(batch);
        // Until it commits: the batch's claims are held in memory until they
        // are recorded, so dropping a batch would strand its tasks until a
        // restart. A replay is harmless: each result applies only to a task
        // in the state it expects. (A crash meanwhile re-runs them, as ever.)
        let mut backoff = Duration::from_millis(50);
        let touched = loop {
            let committed = {
                let batch = batch.clone();
                inner.store.call(move |s| s.commit_results(&batch)).await
            };
            match committed {
                Ok(touched) => break touched,
                Err(e) => {
                    tracing::error!(error = %e, results = batch.len(), retry_in = ?backoff, "group commit failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        };
        inner.claims.committed(&batch);
        inner.uncommitted.fetch_sub(batch.len(), std::sync::atomic::Ordering::SeqCst);
        for job in &touched {
            publish(inner, job);
        }
        report::jobs_changed(inner, &touched);
        inner.wake.notify_one();
        Ok(())
    }
}
