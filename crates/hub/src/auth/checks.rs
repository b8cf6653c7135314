//! The bounded pool password checks run on.

/// Password checks (argon2id, ~19 MiB and tens of milliseconds each) run on a bounded
/// pool: at most one per core at a time and [`PasswordChecks::MAX_WAITING`] queued, so
/// a flood of sign-ins costs bounded memory and CPU instead of one hash each at once.
#[derive(Debug)]
pub struct PasswordChecks {
    permits: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
}

/// The pool is full: answer "busy" rather than queue without bound.
#[derive(Debug, thiserror::Error)]
#[error("too many sign-ins at once; try again in a moment")]
pub struct Busy;

impl Default for PasswordChecks {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        PasswordChecks {
            permits: tokio::sync::Semaphore::new(cores),
            waiting: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

impl PasswordChecks {
    pub const MAX_WAITING: usize = 64;

    /// Whether `password` matches the PHC string `hash`.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        use std::sync::atomic::Ordering;
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= Self::MAX_WAITING {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy);
        }
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        let Ok(_permit) = permit else {
            return Err(Busy);
        };
        Ok(
            tokio::task::spawn_blocking(move || super::verify_password(&password, &hash))
                .await
                .unwrap_or(false),
        )
    }
}
