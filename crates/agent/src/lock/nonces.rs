//! Used unlock nonces, on disk, so a token cannot be replayed even across an agent
//! restart (law 3). Append-only text file, one `nonce expires_at_ms` per line, fsynced
//! before the bolt moves. Entries are dropped on open once their token could no longer
//! pass the expiry check anyway.

use crate::fsutil::write_atomic;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// How long past expiry (beyond any skew) an entry is kept.
const KEEP_AFTER_EXPIRY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug)]
pub struct NonceStore {
    path: PathBuf,
    seen: HashMap<String, i64>,
    file: File,
}

impl NonceStore {
    pub fn open(path: &Path, now_ms: i64) -> std::io::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let mut seen = HashMap::new();
        for line in text.lines() {
            let mut it = line.split_whitespace();
            if let (Some(n), Some(exp)) = (it.next(), it.next().and_then(|e| e.parse::<i64>().ok()))
            {
                seen.insert(n.to_ascii_lowercase(), exp);
            }
        }
        let before = seen.len();
        seen.retain(|_, exp| exp.saturating_add(KEEP_AFTER_EXPIRY_MS) > now_ms);
        if seen.len() != before || text.lines().count() != seen.len() {
            let body: String = seen.iter().map(|(n, e)| format!("{n} {e}\n")).collect();
            write_atomic(path, body.as_bytes(), false, true)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(NonceStore {
            path: path.to_path_buf(),
            seen,
            file,
        })
    }

    pub fn contains(&self, nonce: &str) -> bool {
        self.seen.contains_key(&nonce.to_ascii_lowercase())
    }

    /// Record `nonce` durably. Only after this returns Ok may the bolt move.
    pub fn record(&mut self, nonce: &str, expires_at_ms: i64) -> std::io::Result<()> {
        let n = nonce.to_ascii_lowercase();
        self.file
            .write_all(format!("{n} {expires_at_ms}\n").as_bytes())?;
        self.file.sync_data()?;
        self.seen.insert(n, expires_at_ms);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_survive_restart_and_old_ones_are_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nonces");
        let mut s = NonceStore::open(&p, 0).unwrap();
        s.record("AABB", 1_000).unwrap();
        s.record("ccdd", 10 * KEEP_AFTER_EXPIRY_MS).unwrap();
        drop(s);
        let s = NonceStore::open(&p, 2_000).unwrap();
        assert!(s.contains("aabb") && s.contains("CCDD"));
        drop(s);
        let s = NonceStore::open(&p, 2 * KEEP_AFTER_EXPIRY_MS).unwrap();
        assert!(!s.contains("aabb"));
        assert!(s.contains("ccdd"));
        std::fs::write(&p, "garbage line\n\n").unwrap();
        assert!(NonceStore::open(&p, 0).is_ok(), "garbage lines are ignored");
    }
}
