//! The coordinator's `workers` loop: the live workers, from their beats.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Remote;
use crate::jobs::Inner;

/// Follows the workers' beats (`workers`): the window of tasks the
/// scheduler may claim grows and shrinks with the live workers' slots.
pub(in crate::jobs) struct Workers {
    pub inner: Arc<Inner>,
    pub remote: Arc<Remote>,
    pub first: bool,
}

impl crate::background::Background for Workers {
    fn name(&self) -> String {
        "workers".into()
    }

    async fn wait(&mut self) -> bool {
        if !std::mem::replace(&mut self.first, false) {
            tokio::time::sleep(crate::cluster::BEAT / 2).await;
        }
        true
    }

    async fn round(&mut self) -> Result<(), String> {
        let version = crate::cluster::WIRE_VERSION;
        // Workers check it at start: one of another version refuses to run.
        let coordinator = serde_json::json!({"version": version}).to_string();
        self.remote
            .workers
            .put(crate::cluster::COORDINATOR_KEY, coordinator.into())
            .await
            .map_err(|e| e.to_string())?;
        let listed = crate::cluster::live_workers(&self.remote.workers).await;
        let mut beats = match listed {
            Ok(beats) => beats,
            Err(e) => {
                *self.remote.beats.lock().unwrap() = Err(format!("{e:#}"));
                return Err(format!("{e:#}"));
            }
        };
        beats.retain(|b| b.version == version);
        let slots = beats.iter().map(|b| b.slots).sum();
        *self.remote.beats.lock().unwrap() = Ok(beats);
        if self.remote.live_slots.swap(slots, Ordering::SeqCst) != slots {
            self.inner.wake.notify_one();
        }
        // More slots may leave room in the tenants' shares.
        self.remote.pump(&self.inner);
        Ok(())
    }
}
