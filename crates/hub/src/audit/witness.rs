//! An external witness of the signed checkpoints (`audit_witness`): every checkpoint,
//! once on the hub's disk, is appended as one JSON line to a file (fsync'd), or POSTed
//! as JSON to an `https://` URL. Whoever later holds the hub's key can rewrite the
//! chain and sign it again; they cannot take back what the witness already saw
//! (`threshold audit verify --witness FILE`, `compare`).
//!
//! The journal never waits for the witness: checkpoints go through a bounded queue to
//! a task of their own, which retries each one with backoff. What could not be handed
//! over is counted in `threshold_audit_witness_failures_total{reason}` and logged
//! (the URL without credentials or query).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use threshold_store::CheckpointRow;
use tokio::sync::mpsc;

use crate::metrics::ReasonLabel;

/// Where checkpoints go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// Append a line per checkpoint to this file.
    File(PathBuf),
    /// POST each checkpoint to this `https://` URL (or `http://` to this machine).
    Url(String),
}

impl Target {
    /// `https://…` (or `http://` to a loopback address), else a file path.
    pub fn parse(s: &str) -> Result<Target, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("audit_witness: empty".into());
        }
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            let u = url::Url::parse(s).map_err(|e| format!("audit_witness: {e}"))?;
            let loopback = match u.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if u.scheme() == "http" && !loopback {
                return Err(
                    "audit_witness: an http:// URL only to this machine; use https://".into(),
                );
            }
            return Ok(Target::Url(s.to_owned()));
        }
        if lower.contains("://") {
            return Err("audit_witness: a file path or an https:// URL".into());
        }
        Ok(Target::File(PathBuf::from(s)))
    }

    /// For logs: a file's path, or the URL's scheme, host, port and path (never a
    /// user, password or query).
    pub fn display(&self) -> String {
        match self {
            Target::File(p) => p.display().to_string(),
            Target::Url(u) => redact(u),
        }
    }
}

/// A URL without its credentials, query and fragment.
pub fn redact(u: &str) -> String {
    match url::Url::parse(u) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".into(),
    }
}

/// The witness's counters, registered in `/metrics` (`metrics::Metrics`).
#[derive(Clone, Debug, Default)]
pub struct WitnessMetrics {
    /// Checkpoints the witness took.
    pub sent: Counter,
    /// `attempt`: an attempt failed (retried); `dropped`: a checkpoint given up on
    /// after every attempt, or refused because the queue was full.
    pub failures: Family<ReasonLabel, Counter>,
}

impl WitnessMetrics {
    fn fail(&self, reason: &str) {
        self.failures
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }
}

/// How often one checkpoint is tried, and the waits between tries.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl Default for Retry {
    /// 8 attempts, waiting 1 s, 2 s, 4 s … up to 60 s: about three minutes.
    fn default() -> Self {
        Retry {
            attempts: 8,
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
        }
    }
}

/// Checkpoints waiting for the witness beyond this are dropped (and counted).
const QUEUE: usize = 1024;

/// A handle to the witness task.
#[derive(Clone, Debug)]
pub struct Witness {
    tx: mpsc::Sender<CheckpointRow>,
    metrics: WitnessMetrics,
    target: Arc<Target>,
}

impl Witness {
    /// Start the task (within a tokio runtime). `tls` is the hub's outbound client
    /// configuration (`outbound`).
    pub fn start(
        target: Target,
        tls: Arc<rustls::ClientConfig>,
        metrics: WitnessMetrics,
        retry: Retry,
    ) -> Witness {
        let (tx, rx) = mpsc::channel(QUEUE);
        let target = Arc::new(target);
        tokio::spawn(run(rx, target.clone(), tls, metrics.clone(), retry));
        Witness {
            tx,
            metrics,
            target,
        }
    }

    /// Hand a checkpoint over; never waits.
    pub fn offer(&self, c: CheckpointRow) {
        if self.tx.try_send(c).is_err() {
            self.metrics.fail("dropped");
            tracing::error!(witness = %self.target.display(), "audit witness queue full; a checkpoint was not witnessed");
        }
    }
}

/// One checkpoint as the witness gets it: the export's checkpoint line.
pub fn line(c: &CheckpointRow) -> String {
    super::export::checkpoint_line(c)
}

async fn run(
    mut rx: mpsc::Receiver<CheckpointRow>,
    target: Arc<Target>,
    tls: Arc<rustls::ClientConfig>,
    metrics: WitnessMetrics,
    retry: Retry,
) {
    let agent = crate::outbound::agent(&tls, Duration::from_secs(10));
    while let Some(c) = rx.recv().await {
        let body = line(&c);
        let mut wait = retry.first_wait;
        let mut attempt = 1;
        loop {
            let (t, b, a) = (target.clone(), body.clone(), agent.clone());
            let result = tokio::task::spawn_blocking(move || hand_over(&t, &b, &a))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            match result {
                Ok(()) => {
                    metrics.sent.inc();
                    break;
                }
                Err(e) if attempt < retry.attempts => {
                    metrics.fail("attempt");
                    tracing::warn!(witness = %target.display(), seq = c.seq, attempt, error = %e, "audit witness did not take a checkpoint; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(retry.max_wait);
                    attempt += 1;
                }
                Err(e) => {
                    metrics.fail("attempt");
                    metrics.fail("dropped");
                    tracing::error!(witness = %target.display(), seq = c.seq, attempts = attempt, error = %e, "audit witness did not take a checkpoint; given up");
                    break;
                }
            }
        }
    }
}

/// Append the line and fsync, or POST it; errors name no secret.
fn hand_over(target: &Target, body: &str, agent: &ureq::Agent) -> Result<(), String> {
    match target {
        Target::File(path) => append(path, body).map_err(|e| e.to_string()),
        Target::Url(url) => match agent
            .post(url)
            .set("content-type", "application/json")
            .send_string(body)
        {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) => Err(format!("answered {code}")),
            // A transport error's text may quote the URL: keep only its kind.
            Err(ureq::Error::Transport(t)) => Err(format!("{:?}", t.kind())),
        },
    }
}

fn append(path: &Path, line: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}

/// A checkpoint the witness saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub seq: u64,
    pub hash: [u8; 32],
    /// Its line in the witness file.
    pub line: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    #[error("cannot read the witness log: {0}")]
    Io(#[from] std::io::Error),
    #[error("witness log line {line}: {message}")]
    Malformed { line: usize, message: String },
}

/// Read a witness log (one checkpoint line each), keeping only checkpoints signed by
/// `pinned`: a line anyone else wrote could only raise a false alarm, and is named as
/// such.
pub fn read(
    input: impl BufRead,
    pinned: &threshold_proto::PublicKey,
) -> Result<Vec<Seen>, WitnessError> {
    let mut out = Vec::new();
    for (i, text) in input.lines().enumerate() {
        let text = text?;
        let n = i + 1;
        if text.trim().is_empty() {
            continue;
        }
        let c = super::export::parse_checkpoint_line(&text)
            .map_err(|message| WitnessError::Malformed { line: n, message })?;
        if !super::verify::signed_by(&c, pinned) {
            return Err(WitnessError::Malformed {
                line: n,
                message: format!(
                    "checkpoint at entry {} is not signed by the pinned key",
                    c.seq
                ),
            });
        }
        let mut hash = [0u8; 32];
        hex::decode_to_slice(&c.hash, &mut hash).map_err(|_| WitnessError::Malformed {
            line: n,
            message: "a hash is not 64 hex characters".into(),
        })?;
        out.push(Seen {
            seq: c.seq as u64,
            hash,
            line: n,
        });
    }
    Ok(out)
}

/// What comparing a chain with its witness found.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// Checkpoints in the witness log.
    pub witnessed: u64,
    /// Of those, the ones the chain was compared at.
    pub compared: u64,
    /// Witnessed before the part of the chain at hand (a per-home export's start).
    pub before_range: u64,
    pub ok: bool,
    /// The first witnessed checkpoint the chain no longer has.
    pub first_rewritten: Option<String>,
}

/// Compare the witness log with the chain's hashes (`hash_at(seq)`: the hash of entry
/// `seq` in the chain at hand, `None` when the chain has no such entry). Entries
/// before `from_seq` are outside the chain at hand and not compared.
pub fn compare(
    seen: &[Seen],
    from_seq: u64,
    hash_at: impl Fn(u64) -> Option<[u8; 32]>,
) -> Comparison {
    let mut sorted: Vec<&Seen> = seen.iter().collect();
    sorted.sort_by_key(|s| s.seq);
    let (mut compared, mut before) = (0u64, 0u64);
    let mut first = None;
    for s in sorted {
        if s.seq < from_seq {
            before += 1;
            continue;
        }
        compared += 1;
        let problem = match hash_at(s.seq) {
            None => Some("the chain no longer reaches it (entries were removed)"),
            Some(h) if h != s.hash => Some("the chain's hash there differs"),
            Some(_) => None,
        };
        if let (Some(p), None) = (problem, &first) {
            first = Some(format!(
                "checkpoint at entry {} (witness line {}): {p}: the history was rewritten after the witness saw it",
                s.seq, s.line
            ));
        }
    }
    Comparison {
        witnessed: seen.len() as u64,
        compared,
        before_range: before,
        ok: first.is_none(),
        first_rewritten: first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_show_no_secret() {
        assert_eq!(
            Target::parse("/var/lib/w.jsonl"),
            Ok(Target::File("/var/lib/w.jsonl".into()))
        );
        let t = Target::parse("https://bob:s3cret@witness.example/cp?token=abc").unwrap();
        let shown = t.display();
        assert!(!shown.contains("s3cret") && !shown.contains("abc") && !shown.contains("bob"));
        assert!(shown.starts_with("https://witness.example/cp"), "{shown}");
        assert!(Target::parse("http://192.168.1.5/cp").is_err());
        assert!(Target::parse("http://127.0.0.1:9/cp").is_ok());
        assert!(Target::parse("ftp://x/y").is_err());
    }

    #[test]
    fn comparison_names_the_first_rewritten_checkpoint() {
        let seen = |seq, b| Seen {
            seq,
            hash: [b; 32],
            line: seq as usize,
        };
        let log = vec![seen(4, 4), seen(2, 2), seen(6, 6)];
        let chain = |s: u64| (s <= 5).then_some([s as u8; 32]);
        let c = compare(&log, 1, chain);
        assert!(!c.ok);
        assert!(
            c.first_rewritten.as_deref().unwrap().contains("entry 6"),
            "{c:?}"
        );
        let rewritten = |s: u64| Some(if s >= 4 { [0; 32] } else { [s as u8; 32] });
        let c = compare(&log, 1, rewritten);
        assert!(c.first_rewritten.unwrap().contains("entry 4"));
        let c = compare(&log, 3, |s| Some([s as u8; 32]));
        assert!(c.ok);
        assert_eq!((c.compared, c.before_range), (2, 1));
    }
}
