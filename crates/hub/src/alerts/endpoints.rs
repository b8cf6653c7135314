//! The owners' webhook endpoints, held in memory: every published event asks which
//! endpoints want it, and reading them from the database each time put a query in
//! front of every device coming online and every entry decision (at ten thousand
//! cameras coming live at once, the reactions queued behind ten thousand reads:
//! docs/performance.md). Read whole at start, reloaded per owner when endpoints change
//! (on any node of a fleet, through its change announcements) and whole when a node
//! catches up.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use threshold_store::WebhookEndpointRow;

/// Owner -> their endpoints (owners without any are absent). Every hub reads it whole
/// before it serves anything (`load_devices`).
#[derive(Debug, Default)]
pub struct WebhookDirectory {
    by_owner: RwLock<HashMap<String, Arc<[WebhookEndpointRow]>>>,
}

impl WebhookDirectory {
    /// `owner`'s endpoints.
    pub fn of(&self, owner: &str) -> Arc<[WebhookEndpointRow]> {
        self.by_owner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(owner)
            .cloned()
            .unwrap_or_else(|| Arc::from([]))
    }

    /// Every endpoint, as just read from the database.
    pub fn set_all(&self, rows: Vec<WebhookEndpointRow>) {
        let mut map: HashMap<String, Vec<WebhookEndpointRow>> = HashMap::new();
        for r in rows {
            map.entry(r.owner_id.clone()).or_default().push(r);
        }
        *self.by_owner.write().unwrap_or_else(|p| p.into_inner()) =
            map.into_iter().map(|(o, v)| (o, v.into())).collect();
    }

    /// `owner`'s endpoints, as just read from the database.
    pub fn set_owner(&self, owner: &str, rows: Vec<WebhookEndpointRow>) {
        let mut map = self.by_owner.write().unwrap_or_else(|p| p.into_inner());
        if rows.is_empty() {
            map.remove(owner);
        } else {
            map.insert(owner.to_owned(), rows.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(id: &str, owner: &str) -> WebhookEndpointRow {
        WebhookEndpointRow {
            id: id.into(),
            owner_id: owner.into(),
            url: format!("https://example.com/{id}"),
            secret: "whsec_x".into(),
            description: String::new(),
            created_ms: 0,
            event_types: String::new(),
        }
    }

    fn ids(d: &WebhookDirectory, owner: &str) -> Vec<String> {
        d.of(owner).iter().map(|e| e.id.clone()).collect()
    }

    #[test]
    fn read_whole_it_answers_for_every_owner() {
        let d = WebhookDirectory::default();
        d.set_owner("o9", vec![ep("z", "o9")]);
        d.set_all(vec![ep("a", "o1"), ep("b", "o1"), ep("c", "o2")]);
        assert_eq!(ids(&d, "o1"), ["a", "b"]);
        assert_eq!(ids(&d, "o2"), ["c"]);
        assert!(ids(&d, "o3").is_empty());
        assert!(ids(&d, "o9").is_empty(), "a whole read replaces everything");
    }

    #[test]
    fn an_owner_s_change_replaces_only_that_owner() {
        let d = WebhookDirectory::default();
        d.set_all(vec![ep("a", "o1"), ep("c", "o2")]);
        d.set_owner("o1", vec![]);
        assert!(ids(&d, "o1").is_empty());
        d.set_owner("o3", vec![ep("d", "o3")]);
        assert_eq!(ids(&d, "o3"), ["d"]);
        assert_eq!(ids(&d, "o2"), ["c"]);
    }
}
