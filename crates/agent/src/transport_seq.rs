//! The transport sequence counter shared by `hello`, `heartbeat` and `state`.
//!
//! The hub rejects any transport seq it has seen before (a replay window plus a
//! persisted high-water mark), so the counter must be strictly increasing across agent
//! restarts, crashes included. Writing it on every message would cost an fsync per
//! heartbeat; instead the file holds a *reservation*: a number the counter will not pass
//! before the file is rewritten. After a crash the agent starts above the reservation,
//! and above `unix_ms * 1000`, so even a lost data dir does not repeat numbers as long
//! as the clock is sane.

use crate::fsutil::write_atomic;
use std::path::{Path, PathBuf};

/// How many numbers one file write reserves.
const RESERVE: u64 = 1_000_000;

#[derive(Debug)]
pub struct TransportSeq {
    path: PathBuf,
    next: u64,
    reserved: u64,
}

impl TransportSeq {
    /// Open the counter stored at `path`, starting above both the stored reservation
    /// and `now_ms * 1000`.
    pub fn open(path: &Path, now_ms: i64) -> std::io::Result<Self> {
        let stored: u64 = match std::fs::read_to_string(path) {
            Ok(s) => s.trim().parse().unwrap_or(0),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let clock = u64::try_from(now_ms).unwrap_or(0).saturating_mul(1000);
        let next = stored.saturating_add(1).max(clock).max(1);
        let mut t = TransportSeq {
            path: path.to_path_buf(),
            next,
            reserved: 0,
        };
        t.reserve()?;
        Ok(t)
    }

    fn reserve(&mut self) -> std::io::Result<()> {
        let upto = self.next.saturating_add(RESERVE);
        write_atomic(&self.path, upto.to_string().as_bytes(), false, true)?;
        self.reserved = upto;
        Ok(())
    }

    /// The next number. If the reservation cannot be extended (disk full) numbering
    /// continues anyway: it stays correct while the process lives, and after a restart
    /// the clock term (`unix_ms * 1000`) still moves past it.
    pub fn next_seq(&mut self) -> u64 {
        if self.next >= self.reserved {
            if let Err(e) = self.reserve() {
                tracing::warn!(error = %e, "could not persist transport seq reservation");
            }
        }
        let n = self.next;
        self.next = self.next.saturating_add(1);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increasing_across_restarts_even_with_clock_going_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tseq");
        let mut t = TransportSeq::open(&p, 1_000).unwrap();
        let a = t.next_seq();
        let b = t.next_seq();
        assert!(b > a && a >= 1_000_000);
        drop(t);
        // Restart with the clock set back to the epoch.
        let mut t = TransportSeq::open(&p, 0).unwrap();
        let c = t.next_seq();
        assert!(c > b);
        // Crossing a reservation boundary rewrites the file.
        for _ in 0..(RESERVE + 5) {
            t.next_seq();
        }
        let last = t.next_seq();
        drop(t);
        let mut t = TransportSeq::open(&p, 0).unwrap();
        assert!(t.next_seq() > last);
    }

    #[test]
    fn clock_term_moves_past_a_lost_counter() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = TransportSeq::open(&dir.path().join("a"), 1_700_000_000_000).unwrap();
        let first = t.next_seq();
        let mut u = TransportSeq::open(&dir.path().join("b"), 1_700_000_000_001).unwrap();
        assert!(u.next_seq() > first);
    }
}
