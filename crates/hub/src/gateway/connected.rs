//! Whether the hub's own broker connection is up.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Whether the hub currently has a broker connection with its subscription in place
/// (for /healthz, and so start-up can wait for it).
#[derive(Debug, Default)]
pub struct Connected(pub AtomicBool, pub tokio::sync::Notify);

impl Connected {
    /// Wait until subscribed, at most `limit`. Returns whether it is.
    pub async fn wait(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.1.notified();
            if self.0.load(Ordering::SeqCst) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.0.load(Ordering::SeqCst);
            }
        }
    }
}
