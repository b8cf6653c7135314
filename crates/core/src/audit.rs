//! The hash-chained audit log (law 8).
//!
//! Each entry's hash covers its own fields and the previous entry's hash, so changing,
//! removing or reordering any entry breaks every hash after it. Fields are
//! length-prefixed before hashing so no two different entries share the same bytes.

use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0u8; 32];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: u64,
    pub time_ms: i64,
    /// What happened, e.g. `device.enrolled`, `decision`, `alert`.
    pub kind: String,
    /// Who did it: `owner:<id>`, `courier:<id>`, `device:<id>`, `hub`.
    pub actor: String,
    /// What it was done to.
    pub subject: String,
    /// JSON details, as stored.
    pub detail: String,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

fn put(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_be_bytes());
    h.update(field);
}

/// The hash of an entry with these fields following `prev_hash`.
pub fn entry_hash(
    seq: u64,
    time_ms: i64,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: &str,
    prev_hash: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"threshold-audit-v1");
    h.update(seq.to_be_bytes());
    h.update(time_ms.to_be_bytes());
    put(&mut h, kind.as_bytes());
    put(&mut h, actor.as_bytes());
    put(&mut h, subject.as_bytes());
    put(&mut h, detail.as_bytes());
    h.update(prev_hash);
    h.finalize().into()
}

impl AuditEntry {
    /// The entry that follows `prev` (or the first one when `prev` is `None`).
    pub fn next(
        prev: Option<(u64, [u8; 32])>,
        time_ms: i64,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: &str,
    ) -> Self {
        let (seq, prev_hash) = match prev {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS),
        };
        let hash = entry_hash(seq, time_ms, kind, actor, subject, detail, &prev_hash);
        AuditEntry {
            seq,
            time_ms,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            subject: subject.to_owned(),
            detail: detail.to_owned(),
            prev_hash,
            hash,
        }
    }

    pub fn recompute(&self) -> [u8; 32] {
        entry_hash(
            self.seq,
            self.time_ms,
            &self.kind,
            &self.actor,
            &self.subject,
            &self.detail,
            &self.prev_hash,
        )
    }
}

/// The first place the chain breaks, and how.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("entry {seq}: its stored hash does not match its contents (the entry was altered)")]
    AlteredEntry { seq: u64 },
    #[error("entry {seq}: does not link to the previous entry's hash (an entry before it was removed, inserted or altered)")]
    BrokenLink { seq: u64 },
    #[error("entry {seq}: expected sequence number {expected} (entries missing or reordered)")]
    SequenceGap { seq: u64, expected: u64 },
}

/// Walks entries in order and stops at the first break.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    expected_seq: u64,
    prev_hash: [u8; 32],
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            expected_seq: 1,
            prev_hash: GENESIS,
        }
    }
}

impl ChainVerifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        if e.seq != self.expected_seq {
            return Err(ChainBreak::SequenceGap {
                seq: e.seq,
                expected: self.expected_seq,
            });
        }
        if e.prev_hash != self.prev_hash {
            return Err(ChainBreak::BrokenLink { seq: e.seq });
        }
        if e.recompute() != e.hash {
            return Err(ChainBreak::AlteredEntry { seq: e.seq });
        }
        self.expected_seq += 1;
        self.prev_hash = e.hash;
        Ok(())
    }

    /// Sequence and hash of the last good entry.
    pub fn head(&self) -> (u64, [u8; 32]) {
        (self.expected_seq - 1, self.prev_hash)
    }
}

/// Bytes a checkpoint signature covers: the chain head at `seq`.
pub fn checkpoint_message(seq: u64, hash: &[u8; 32], time_ms: i64) -> Vec<u8> {
    let mut m = b"threshold-audit-checkpoint-v1".to_vec();
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(hash);
    m.extend_from_slice(&time_ms.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash));
            out.push(AuditEntry::next(
                prev,
                1000 + i as i64,
                "login",
                "owner:1",
                "session",
                "{}",
            ));
        }
        out
    }

    fn verify(entries: &[AuditEntry]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::new();
        entries.iter().try_for_each(|e| v.push(e))
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(verify(&chain(10)), Ok(()));
    }

    #[test]
    fn altered_detail_is_named() {
        let mut c = chain(10);
        c[4].detail = "{\"x\":1}".into();
        assert_eq!(verify(&c), Err(ChainBreak::AlteredEntry { seq: 5 }));
    }

    #[test]
    fn rehashed_alteration_breaks_the_next_link() {
        let mut c = chain(10);
        c[4].actor = "owner:2".into();
        c[4].hash = c[4].recompute();
        assert_eq!(verify(&c), Err(ChainBreak::BrokenLink { seq: 6 }));
    }

    #[test]
    fn removed_entry_is_a_gap() {
        let mut c = chain(10);
        c.remove(3);
        assert_eq!(
            verify(&c),
            Err(ChainBreak::SequenceGap {
                seq: 5,
                expected: 4
            })
        );
    }

    #[test]
    fn field_boundaries_matter() {
        let a = entry_hash(1, 0, "ab", "c", "", "", &GENESIS);
        let b = entry_hash(1, 0, "a", "bc", "", "", &GENESIS);
        assert_ne!(a, b);
    }
}
