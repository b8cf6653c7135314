//! Appending to the audit log, with a signed checkpoint of the chain head every N
//! entries, and verifying the whole chain.

use crate::clock::Clock;
use crate::state::AppState;
use std::sync::Arc;
use threshold_core::audit::{checkpoint_message, AuditEntry, ChainBreak, ChainVerifier};
use threshold_proto::{DeviceKey, PublicKey};
use threshold_store::{
    AuditDraft, CheckpointRow, EntryClaim, JobOutcome, JournalJob, NewDeviceEvent, NewTimelineRow,
    Store, StoreError,
};
use tokio::sync::{mpsc, oneshot};

/// Record a security-relevant event. Failures are logged loudly but do not fail the
/// action that caused them (the action itself is already durable in its own table).
pub async fn record(
    state: &AppState,
    kind: &str,
    actor: &str,
    subject: &str,
    detail: serde_json::Value,
) {
    record_all(
        state,
        vec![Record::new(kind, actor, subject, detail)],
        Vec::new(),
    )
    .await;
}

/// Record several audit entries (consecutive in the chain) and timeline rows in one
/// commit, e.g. a decision and the token it issued. Failures are logged, as for
/// [`record`].
pub async fn record_all(state: &AppState, audit: Vec<Record>, timeline: Vec<NewTimelineRow>) {
    let kinds: Vec<String> = audit.iter().map(|r| r.kind.clone()).collect();
    if let Err(err) = state.journal.write(audit, timeline).await {
        tracing::error!(error = %err, audit = ?kinds, "could not append to the audit log and timeline");
    }
}

/// One audit entry to append; the journal gives it its time and place in the chain.
#[derive(Clone, Debug)]
pub struct Record {
    kind: String,
    actor: String,
    subject: String,
    detail: String,
}

impl Record {
    pub fn new(kind: &str, actor: &str, subject: &str, detail: serde_json::Value) -> Self {
        Record {
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            subject: subject.to_owned(),
            detail: detail.to_string(),
        }
    }

    fn draft(&self, time_ms: i64) -> AuditDraft {
        AuditDraft {
            time_ms,
            kind: self.kind.clone(),
            actor: self.actor.clone(),
            subject: self.subject.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// Group commit for the audit log: one task appends everything submitted while its
/// previous commit was running in a single transaction, in submission order, so the
/// chain is written by one writer per process and concurrent requests share a commit
/// instead of queueing for one each. Every caller still waits until its own entries are
/// durable (a decision is in the log before the courier hears of it).
#[derive(Clone, Debug)]
pub struct Journal {
    jobs: mpsc::Sender<Job>,
}

#[derive(Debug)]
struct Job {
    claim: Option<EntryClaim>,
    event: Option<NewDeviceEvent>,
    audit: Vec<Record>,
    timeline: Vec<NewTimelineRow>,
    done: oneshot::Sender<Result<JobOutcome, String>>,
}

/// Most jobs in one commit: bounds a transaction's size and the wait of its first job.
const MAX_BATCH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("the audit journal has stopped")]
    Stopped,
    #[error("{0}")]
    Store(String),
}

impl Journal {
    /// Start the writer task (within a tokio runtime). It ends once every handle is
    /// dropped and the queue is drained.
    pub fn start(
        store: Store,
        key: DeviceKey,
        clock: Arc<dyn Clock>,
        checkpoint_every: u64,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(run(rx, store, key, clock, checkpoint_every));
        Journal { jobs }
    }

    /// Append `audit` to the chain and add `timeline`, durably, in one commit.
    pub async fn write(
        &self,
        audit: Vec<Record>,
        timeline: Vec<NewTimelineRow>,
    ) -> Result<Vec<AuditEntry>, JournalError> {
        match self.submit(None, None, audit, timeline).await? {
            JobOutcome::Written(entries) => Ok(entries),
            other => Err(JournalError::Store(format!(
                "unconditional write answered {other:?}"
            ))),
        }
    }

    /// Claim a delivery's entry and, only if the claim holds, write the records with
    /// it in the same commit. `None`: another request claimed it first; nothing was
    /// written.
    pub async fn write_claimed(
        &self,
        claim: EntryClaim,
        audit: Vec<Record>,
        timeline: Vec<NewTimelineRow>,
    ) -> Result<Option<Vec<AuditEntry>>, JournalError> {
        match self.submit(Some(claim), None, audit, timeline).await? {
            JobOutcome::Written(entries) => Ok(Some(entries)),
            JobOutcome::ClaimLost => Ok(None),
            JobOutcome::EventKnown => {
                Err(JournalError::Store("a claim answered EventKnown".into()))
            }
        }
    }

    /// Store a device's event record and, only if it is new, the records it causes
    /// (its timeline row, its audit entry), in one commit. False: the record was
    /// already stored; nothing was written.
    pub async fn write_event(
        &self,
        event: NewDeviceEvent,
        audit: Vec<Record>,
        timeline: Vec<NewTimelineRow>,
    ) -> Result<bool, JournalError> {
        match self.submit(None, Some(event), audit, timeline).await? {
            JobOutcome::Written(_) => Ok(true),
            JobOutcome::EventKnown => Ok(false),
            JobOutcome::ClaimLost => Err(JournalError::Store("an event answered ClaimLost".into())),
        }
    }

    async fn submit(
        &self,
        claim: Option<EntryClaim>,
        event: Option<NewDeviceEvent>,
        audit: Vec<Record>,
        timeline: Vec<NewTimelineRow>,
    ) -> Result<JobOutcome, JournalError> {
        let (done, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                claim,
                event,
                audit,
                timeline,
                done,
            })
            .await
            .map_err(|_| JournalError::Stopped)?;
        answer
            .await
            .map_err(|_| JournalError::Stopped)?
            .map_err(JournalError::Store)
    }
}

async fn run(
    mut rx: mpsc::Receiver<Job>,
    store: Store,
    key: DeviceKey,
    clock: Arc<dyn Clock>,
    checkpoint_every: u64,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let now = clock.now_ms();
        let drafts: Vec<JournalJob> = jobs.iter().map(|j| j.draft(now)).collect();
        // Committed here, confirmed on disk below by a task of its own: the next batch
        // is prepared and committed while the disk works on this one.
        let results: Vec<Result<JobOutcome, String>> = match store
            .write_journal_unsynced(&drafts)
            .await
        {
            Ok(outcomes) if outcomes.len() == jobs.len() => outcomes.into_iter().map(Ok).collect(),
            Ok(_) => {
                vec![Err("journal answered for the wrong number of jobs".into()); jobs.len()]
            }
            // One bad job must not sink the others: retry each on its own. Not a
            // batch that may have been committed: its records would be written twice.
            Err(e) if jobs.len() > 1 && !matches!(e, StoreError::Indeterminate(_)) => {
                let mut out = Vec::with_capacity(jobs.len());
                for d in &drafts {
                    let r = store.write_journal_unsynced(std::slice::from_ref(d)).await;
                    out.push(match r {
                        Ok(mut o) => o.pop().ok_or_else(|| "journal wrote nothing".to_owned()),
                        Err(e) => Err(e.to_string()),
                    });
                }
                out
            }
            Err(e) => vec![Err(e.to_string())],
        };
        for result in &results {
            if let Ok(JobOutcome::Written(entries)) = result {
                for e in entries {
                    if checkpoint_every > 0 && e.seq % checkpoint_every == 0 {
                        // Made durable by this batch's sync below, not waited for here:
                        // the next batch is not held up by a disk write.
                        if let Err(err) = checkpoint(&store, &key, e.seq, &e.hash, now).await {
                            tracing::error!(error = %err, "could not write audit checkpoint");
                        }
                    }
                }
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            // Nobody hears of a record before it is on disk.
            let synced = store.sync().await.map_err(|e| e.to_string());
            for (job, result) in jobs.into_iter().zip(results) {
                let result = match &synced {
                    Ok(()) => result,
                    Err(e) => Err(e.clone()),
                };
                // The caller may have gone away; its records are written all the same.
                let _ = job.done.send(result);
            }
        });
    }
}

impl Job {
    fn draft(&self, now: i64) -> JournalJob {
        JournalJob {
            claim: self.claim.clone(),
            event: self.event.clone(),
            audit: self.audit.iter().map(|r| r.draft(now)).collect(),
            timeline: self.timeline.clone(),
        }
    }
}

/// Sign and store a checkpoint of the chain at `seq`; durable at the next
/// [`Store::sync`].
async fn checkpoint(
    store: &Store,
    key: &DeviceKey,
    seq: u64,
    hash: &[u8; 32],
    now: i64,
) -> Result<(), StoreError> {
    let sig = key.sign(&checkpoint_message(seq, hash, now));
    store
        .add_checkpoint_unsynced(&CheckpointRow {
            seq: seq as i64,
            hash: hex::encode(hash),
            time_ms: now,
            hub_key: key.public().to_hex(),
            signature: hex::encode(sig),
        })
        .await
}

#[derive(Debug, serde::Serialize)]
pub struct VerifyReport {
    pub entries: u64,
    pub checkpoints: u64,
    pub ok: bool,
    pub first_break: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailure {
    #[error("{0}")]
    Chain(#[from] ChainBreak),
    #[error("checkpoint at entry {0}: signature does not verify")]
    BadCheckpointSignature(i64),
    #[error("checkpoint at entry {0}: the chain's hash there differs from the signed one (history was rewritten)")]
    CheckpointMismatch(i64),
    #[error("checkpoint at entry {0}: no such entry (the log was truncated)")]
    CheckpointBeyondEnd(i64),
}

/// Recompute the whole chain and check every signed checkpoint against it.
pub async fn verify(store: &Store) -> Result<VerifyReport, StoreError> {
    let checkpoints = store.checkpoints().await?;
    let mut v = ChainVerifier::new();
    let mut hashes_at_checkpoints = std::collections::HashMap::new();
    let wanted: std::collections::HashSet<i64> = checkpoints.iter().map(|c| c.seq).collect();
    let mut after = 0u64;
    let mut failure: Option<VerifyFailure> = None;
    'outer: loop {
        let page = store.audit_page(after, 1000).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            if let Err(b) = v.push(e) {
                failure = Some(b.into());
                break 'outer;
            }
            if wanted.contains(&(e.seq as i64)) {
                hashes_at_checkpoints.insert(e.seq as i64, e.hash);
            }
            after = e.seq;
        }
    }
    if failure.is_none() {
        for c in &checkpoints {
            let key: Option<PublicKey> = c.hub_key.parse().ok();
            let mut sig = [0u8; 64];
            let mut hash = [0u8; 32];
            let parsed = hex::decode_to_slice(&c.signature, &mut sig).is_ok()
                && hex::decode_to_slice(&c.hash, &mut hash).is_ok();
            let sig_ok = parsed
                && key.is_some_and(|k| {
                    let s = ed25519_dalek_sig(&sig);
                    k.0.verify_strict(&checkpoint_message(c.seq as u64, &hash, c.time_ms), &s)
                        .is_ok()
                });
            if !sig_ok {
                failure = Some(VerifyFailure::BadCheckpointSignature(c.seq));
                break;
            }
            match hashes_at_checkpoints.get(&c.seq) {
                None => {
                    failure = Some(VerifyFailure::CheckpointBeyondEnd(c.seq));
                    break;
                }
                Some(h) if *h != hash => {
                    failure = Some(VerifyFailure::CheckpointMismatch(c.seq));
                    break;
                }
                Some(_) => {}
            }
        }
    }
    Ok(VerifyReport {
        entries: v.head().0,
        checkpoints: checkpoints.len() as u64,
        ok: failure.is_none(),
        first_break: failure.map(|f| f.to_string()),
    })
}

fn ed25519_dalek_sig(b: &[u8; 64]) -> threshold_proto_sig::Signature {
    threshold_proto_sig::Signature::from_bytes(b)
}

mod threshold_proto_sig {
    pub use ed25519_dalek::Signature;
}
