//! Whose each home is, remembered. A home's owner never changes (no statement updates
//! it, and homes are not deleted), so once read it is known for good: a delivery's
//! reactions (its transition's events, its alert) find whom to tell without a database
//! read, which under load queued behind the hub's other statements while a camera
//! lost mid-delivery waited to be alerted.

use std::collections::HashMap;
use std::sync::RwLock;
use threshold_store::{Store, StoreError};

#[derive(Debug, Default)]
pub struct HomeOwners(RwLock<HashMap<String, String>>);

impl HomeOwners {
    fn known(&self, home_id: &str) -> Option<String> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(home_id)
            .cloned()
    }

    /// The owner of `home_id`: remembered, or read once (`NotFound` for no such home).
    pub async fn of(&self, store: &Store, home_id: &str) -> Result<String, StoreError> {
        if let Some(owner) = self.known(home_id) {
            return Ok(owner);
        }
        let owner = store.home_any(home_id).await?.owner_id;
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(home_id.to_owned(), owner.clone());
        Ok(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_a_home_s_owner_once_and_knows_no_home_that_is_not() {
        let (store, _db) = threshold_store::testing::sqlite().await.unwrap();
        let owners = HomeOwners::default();
        assert!(matches!(
            owners.of(&store, "nope").await,
            Err(StoreError::NotFound)
        ));
        let u = store
            .create_user(threshold_store::Role::Owner, "o", "O", "$argon2id$x", 1)
            .await
            .unwrap();
        let home = threshold_store::testing::home(&store, &u.id).await.unwrap();
        assert_eq!(owners.of(&store, &home.id).await.unwrap(), u.id);
        // Remembered: answered with the database closed.
        store.close().await;
        assert_eq!(owners.of(&store, &home.id).await.unwrap(), u.id);
        assert!(owners.of(&store, "nope").await.is_err());
    }
}
