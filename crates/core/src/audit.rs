//! The hash-chained audit log (law 8).
//!
//! Each entry's hash covers its own fields and the previous entry's hash, so changing,
//! removing or reordering any entry breaks every hash after it. Fields are
//! length-prefixed before hashing so no two different entries share the same bytes.
//!
//! Two forms of entry share one chain:
//!
//! - **v1** ([`EntryHome::Legacy`]), written by hubs before home commitments: the hash
//!   covers `seq`, `time_ms`, `kind`, `actor`, `subject`, `detail` and `prev_hash`.
//!   Still verified as it always was.
//! - **v2** (every entry written now): the hash covers `seq`, a *home tag* and a *body
//!   hash* and `prev_hash`, where the body hash covers `time_ms`, `kind`, `actor`,
//!   `subject`, `detail`, and the home tag commits to the home the entry belongs to
//!   (or to none: a hub-wide entry) and to `seq`. An entry of another home can then be
//!   shown as an [`AuditLink`] (`seq`, `home_tag`, `body_hash`, `prev_hash`, `hash`):
//!   the chain still recomputes through it, nothing of its contents shows, and whoever
//!   knows a home's id can tell that the link is *not* one of that home's entries
//!   (its tag differs from [`home_tag`] of that home at that `seq`). Home ids are 128
//!   random bits, so a link's tag says nothing about which other home it belongs to,
//!   and two links of one other home cannot be matched (the tag includes `seq`).

use sha2::{Digest, Sha256};

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// The home an entry belongs to, as committed in its hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryHome {
    /// A v1 entry: written before entries committed to a home; belongs to none that a
    /// verifier can tell.
    Legacy,
    /// A v2 entry about the hub or an account, not about any one home.
    Hub,
    /// A v2 entry about this home (its id).
    Home(String),
}

impl EntryHome {
    /// The home's id, for a v2 entry of a home.
    pub fn id(&self) -> Option<&str> {
        match self {
            EntryHome::Home(h) => Some(h),
            _ => None,
        }
    }

    pub fn is_legacy(&self) -> bool {
        matches!(self, EntryHome::Legacy)
    }

    /// The v2 form for an entry of `home` (`None`: hub-wide).
    pub fn of(home: Option<&str>) -> EntryHome {
        match home {
            Some(h) => EntryHome::Home(h.to_owned()),
            None => EntryHome::Hub,
        }
    }
}

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
    /// The home it belongs to (v2), or [`EntryHome::Legacy`] (v1).
    pub home: EntryHome,
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

/// An entry shown without its contents (a per-home export's entries of other homes):
/// enough to recompute its hash and so carry the chain through it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditLink {
    pub seq: u64,
    pub home_tag: [u8; 32],
    pub body_hash: [u8; 32],
    pub prev_hash: [u8; 32],
    pub hash: [u8; 32],
}

fn put(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_be_bytes());
    h.update(field);
}

/// The hash of a v1 entry with these fields following `prev_hash`.
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

/// A v2 entry's contents, hashed apart from its place in the chain.
pub fn body_hash(time_ms: i64, kind: &str, actor: &str, subject: &str, detail: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"threshold-audit-body-v2");
    h.update(time_ms.to_be_bytes());
    put(&mut h, kind.as_bytes());
    put(&mut h, actor.as_bytes());
    put(&mut h, subject.as_bytes());
    put(&mut h, detail.as_bytes());
    h.finalize().into()
}

/// The commitment of the v2 entry at `seq` to its home (`None`: hub-wide).
pub fn home_tag(seq: u64, home: Option<&str>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"threshold-audit-home-v2");
    h.update(seq.to_be_bytes());
    match home {
        Some(id) => {
            h.update([1u8]);
            put(&mut h, id.as_bytes());
        }
        None => h.update([0u8]),
    }
    h.finalize().into()
}

/// The hash of a v2 entry.
pub fn entry_hash_v2(
    seq: u64,
    home_tag: &[u8; 32],
    body_hash: &[u8; 32],
    prev_hash: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"threshold-audit-v2");
    h.update(seq.to_be_bytes());
    h.update(home_tag);
    h.update(body_hash);
    h.update(prev_hash);
    h.finalize().into()
}

impl AuditEntry {
    /// The v2 entry of `home` (`None`: hub-wide) that follows `prev` (or the first one
    /// when `prev` is `None`).
    pub fn next(
        prev: Option<(u64, [u8; 32])>,
        time_ms: i64,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: &str,
        home: Option<&str>,
    ) -> Self {
        Self::chained(
            prev,
            time_ms,
            kind,
            actor,
            subject,
            detail,
            EntryHome::of(home),
        )
    }

    /// The entry of this form that follows `prev`; [`EntryHome::Legacy`] makes a v1
    /// entry, as hubs wrote them before home commitments (kept for tests and tools).
    pub fn chained(
        prev: Option<(u64, [u8; 32])>,
        time_ms: i64,
        kind: &str,
        actor: &str,
        subject: &str,
        detail: &str,
        home: EntryHome,
    ) -> Self {
        let (seq, prev_hash) = match prev {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS),
        };
        let mut e = AuditEntry {
            seq,
            time_ms,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            subject: subject.to_owned(),
            detail: detail.to_owned(),
            home,
            prev_hash,
            hash: [0u8; 32],
        };
        e.hash = e.recompute();
        e
    }

    /// The v2 home tag of this entry (`None` for a v1 entry).
    pub fn home_tag(&self) -> Option<[u8; 32]> {
        match &self.home {
            EntryHome::Legacy => None,
            EntryHome::Hub => Some(home_tag(self.seq, None)),
            EntryHome::Home(h) => Some(home_tag(self.seq, Some(h))),
        }
    }

    /// This entry without its contents, for a per-home export (`None` for a v1 entry,
    /// whose hash cannot be recomputed without them).
    pub fn link(&self) -> Option<AuditLink> {
        Some(AuditLink {
            seq: self.seq,
            home_tag: self.home_tag()?,
            body_hash: body_hash(
                self.time_ms,
                &self.kind,
                &self.actor,
                &self.subject,
                &self.detail,
            ),
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }

    pub fn recompute(&self) -> [u8; 32] {
        match self.link() {
            Some(l) => l.recompute(),
            None => entry_hash(
                self.seq,
                self.time_ms,
                &self.kind,
                &self.actor,
                &self.subject,
                &self.detail,
                &self.prev_hash,
            ),
        }
    }
}

impl AuditLink {
    pub fn recompute(&self) -> [u8; 32] {
        entry_hash_v2(self.seq, &self.home_tag, &self.body_hash, &self.prev_hash)
    }

    /// Whether this is, in fact, an entry of `home`.
    pub fn is_of(&self, home: &str) -> bool {
        self.home_tag == home_tag(self.seq, Some(home))
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

    /// A verifier for the chain after entry `seq`, whose hash is `hash` (a signed
    /// checkpoint the caller checks itself).
    pub fn after(seq: u64, hash: [u8; 32]) -> Self {
        ChainVerifier {
            expected_seq: seq + 1,
            prev_hash: hash,
        }
    }

    fn place(&self, seq: u64, prev_hash: &[u8; 32]) -> Result<(), ChainBreak> {
        if seq != self.expected_seq {
            return Err(ChainBreak::SequenceGap {
                seq,
                expected: self.expected_seq,
            });
        }
        if *prev_hash != self.prev_hash {
            return Err(ChainBreak::BrokenLink { seq });
        }
        Ok(())
    }

    pub fn push(&mut self, e: &AuditEntry) -> Result<(), ChainBreak> {
        self.place(e.seq, &e.prev_hash)?;
        if e.recompute() != e.hash {
            return Err(ChainBreak::AlteredEntry { seq: e.seq });
        }
        self.expected_seq += 1;
        self.prev_hash = e.hash;
        Ok(())
    }

    /// An entry shown as a link: its hash is recomputed from the link's own fields, so
    /// a link cannot carry the chain anywhere its entry did not.
    pub fn push_link(&mut self, l: &AuditLink) -> Result<(), ChainBreak> {
        self.place(l.seq, &l.prev_hash)?;
        if l.recompute() != l.hash {
            return Err(ChainBreak::AlteredEntry { seq: l.seq });
        }
        self.expected_seq += 1;
        self.prev_hash = l.hash;
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

    fn chain_of(n: usize, home: impl Fn(usize) -> EntryHome) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 0..n {
            let prev = out.last().map(|e| (e.seq, e.hash));
            out.push(AuditEntry::chained(
                prev,
                1000 + i as i64,
                "login",
                "owner:1",
                "session",
                "{}",
                home(i),
            ));
        }
        out
    }

    fn chain(n: usize) -> Vec<AuditEntry> {
        chain_of(n, |_| EntryHome::Hub)
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
        assert_ne!(home_tag(1, Some("")), home_tag(1, None));
    }

    /// A v1 entry's hash is the formula hubs used before home commitments, byte for
    /// byte (a chain written then still verifies), and a chain may go on in v2.
    #[test]
    fn legacy_entries_keep_their_hash_and_chain_on_into_v2() {
        let c = chain_of(6, |i| {
            if i < 3 {
                EntryHome::Legacy
            } else {
                EntryHome::Home("aa".into())
            }
        });
        assert_eq!(
            c[0].hash,
            entry_hash(1, 1000, "login", "owner:1", "session", "{}", &GENESIS)
        );
        assert!(c[0].link().is_none(), "a v1 entry cannot be a link");
        assert_eq!(verify(&c), Ok(()));
        // Relabelling an entry's home (or turning it into v1) is an alteration.
        let mut relabelled = c.clone();
        relabelled[4].home = EntryHome::Home("bb".into());
        assert_eq!(
            verify(&relabelled),
            Err(ChainBreak::AlteredEntry { seq: 5 })
        );
        let mut legacy = c;
        legacy[4].home = EntryHome::Legacy;
        assert_eq!(verify(&legacy), Err(ChainBreak::AlteredEntry { seq: 5 }));
    }

    #[test]
    fn links_carry_the_chain_and_show_whose_they_are_not() {
        let c = chain_of(8, |i| match i % 3 {
            0 => EntryHome::Home("home-a".into()),
            1 => EntryHome::Home("home-b".into()),
            _ => EntryHome::Hub,
        });
        let mut v = ChainVerifier::new();
        for e in &c {
            if e.home.id() == Some("home-a") {
                v.push(e).unwrap();
            } else {
                let l = e.link().unwrap();
                assert!(!l.is_of("home-a"));
                v.push_link(&l).unwrap();
            }
        }
        assert_eq!(v.head(), (8, c[7].hash));
        // An entry of home A shown as a link says so.
        assert!(c[0].link().unwrap().is_of("home-a"));
        // A link whose hash was not computed from its fields carries nothing.
        let mut forged = c[1].link().unwrap();
        forged.hash = [7u8; 32];
        let mut v = ChainVerifier::new();
        v.push(&c[0]).unwrap();
        assert_eq!(
            v.push_link(&forged),
            Err(ChainBreak::AlteredEntry { seq: 2 })
        );
        // Tags of one home differ from entry to entry.
        assert_ne!(home_tag(1, Some("home-b")), home_tag(2, Some("home-b")));
    }

    #[test]
    fn a_verifier_may_start_after_a_known_entry() {
        let c = chain(6);
        let mut v = ChainVerifier::after(3, c[2].hash);
        assert!(c[3..].iter().all(|e| v.push(e).is_ok()));
        let mut wrong = ChainVerifier::after(3, [1u8; 32]);
        assert_eq!(wrong.push(&c[3]), Err(ChainBreak::BrokenLink { seq: 4 }));
    }
}
