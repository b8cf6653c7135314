//! Which homes had a Wi-Fi attack in the last minutes, in memory (`wifi` ties camera
//! outages to attacks; this spares it a database read per liveness change elsewhere).

/// How far back an attack can explain a camera outage (and the other way round): the
/// camera's liveness history read before an attack, and the attacks read after an
/// outage.
pub const LOOKBACK_MS: i64 = 10 * 60_000;

/// Which homes have Wi-Fi attack evidence, and the newest attack's start: so that a
/// camera's liveness change looks in the database only in a home with an attack in
/// the last minutes (at ten thousand cameras, a read per change was thousands a
/// second). Loaded at start from the database, kept by `wifi::apply`.
#[derive(Debug, Default)]
pub struct RecentAttacks(std::sync::Mutex<std::collections::HashMap<String, i64>>);

impl RecentAttacks {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, i64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An attack in `home_id` started at `start_ms`.
    pub fn note(&self, home_id: &str, start_ms: i64) {
        let mut m = self.map();
        let newest = m.entry(home_id.to_owned()).or_insert(start_ms);
        *newest = (*newest).max(start_ms);
    }

    /// Whether `home_id` may have an attack that started at or after `since_ms`.
    pub fn any_since(&self, home_id: &str, since_ms: i64) -> bool {
        self.map().get(home_id).is_some_and(|&s| s >= since_ms)
    }

    /// What the database knows of the last minutes, at start.
    pub async fn load(
        &self,
        store: &threshold_store::Store,
        now: i64,
    ) -> Result<(), threshold_store::StoreError> {
        for (home, start) in store.wifi_attack_homes_since(now - LOOKBACK_MS).await? {
            self.note(&home, start);
        }
        Ok(())
    }
}
