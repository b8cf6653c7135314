//! Group commit for the audit log, with a signed checkpoint of the chain head every N
//! entries.

use crate::clock::Clock;
use std::sync::Arc;
use threshold_core::audit::{checkpoint_message, AuditEntry};
use threshold_proto::DeviceKey;
use threshold_store::{
    AuditDraft, CheckpointRow, EntryClaim, JobOutcome, JournalJob, NewDeviceEvent, NewTimelineRow,
    Store, StoreError,
};
use tokio::sync::{mpsc, oneshot};

use super::witness::Witness;

/// One audit entry to append; the journal gives it its time and place in the chain.
#[derive(Clone, Debug)]
pub struct Record {
    pub(super) kind: String,
    actor: String,
    pub(super) subject: String,
    detail: String,
    /// The home the entry belongs to, committed in its hash (`None`: hub-wide).
    pub(super) home: Option<String>,
}

impl Record {
    /// An entry about `subject`. The home it belongs to (committed in its hash, and
    /// what puts it in that home's export) is taken from the subject when it is
    /// `home:<id>`, else from a `home_id` string in `detail`; otherwise name it with
    /// [`Record::in_home`] (`audit::record_all` also looks up `device:<id>` and
    /// `door:<id>` subjects). An entry of no home is hub-wide.
    pub fn new(kind: &str, actor: &str, subject: &str, detail: serde_json::Value) -> Self {
        let home = subject
            .strip_prefix("home:")
            .map(str::to_owned)
            .or_else(|| {
                detail
                    .get("home_id")
                    .and_then(|h| h.as_str())
                    .map(str::to_owned)
            })
            .filter(|h| !h.is_empty());
        Record {
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            subject: subject.to_owned(),
            detail: detail.to_string(),
            home,
        }
    }

    /// The entry belongs to this home.
    pub fn in_home(mut self, home_id: &str) -> Self {
        self.home = Some(home_id.to_owned());
        self
    }

    /// The home the entry belongs to, if any.
    pub fn home(&self) -> Option<&str> {
        self.home.as_deref()
    }

    fn draft(&self, time_ms: i64) -> AuditDraft {
        AuditDraft {
            time_ms,
            kind: self.kind.clone(),
            actor: self.actor.clone(),
            subject: self.subject.clone(),
            detail: self.detail.clone(),
            home: self.home.clone(),
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
    /// dropped and the queue is drained. Every signed checkpoint, once on disk, is
    /// offered to `witness` (never waited for).
    pub fn start(
        store: Store,
        key: DeviceKey,
        clock: Arc<dyn Clock>,
        checkpoint_every: u64,
        witness: Option<Witness>,
    ) -> Self {
        let (jobs, rx) = mpsc::channel(4096);
        tokio::spawn(run(rx, store, key, clock, checkpoint_every, witness));
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
    witness: Option<Witness>,
) {
    // A chain written before home commitments gets a signed checkpoint at its last
    // v1 entry before anything is appended: per-home exports start there.
    match legacy_anchor(&store, &key, clock.now_ms()).await {
        Ok(Some(c)) => {
            if let Some(w) = &witness {
                w.offer(c);
            }
        }
        Ok(None) => {}
        Err(err) => {
            tracing::error!(error = %err, "could not sign the audit checkpoint ending the chain's v1 entries")
        }
    }
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
            // One bad job must not sink the others: retry each on its own (the
            // batch's transaction was rolled back as a whole).
            Err(_) if jobs.len() > 1 => {
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
        let mut signed = Vec::new();
        for result in &results {
            if let Ok(JobOutcome::Written(entries)) = result {
                for e in entries {
                    if checkpoint_every > 0 && e.seq % checkpoint_every == 0 {
                        // Made durable by this batch's sync below, not waited for here:
                        // the next batch is not held up by a disk write.
                        match checkpoint(&store, &key, e.seq, &e.hash, now).await {
                            Ok(c) => signed.push(c),
                            Err(err) => {
                                tracing::error!(error = %err, "could not write audit checkpoint")
                            }
                        }
                    }
                }
            }
        }
        let store = store.clone();
        let witness = witness.clone();
        tokio::spawn(async move {
            // Nobody hears of a record before it is on disk.
            let synced = store.sync().await.map_err(|e| e.to_string());
            // Nor does the witness: a checkpoint it saw is never lost in a crash.
            if let (Ok(()), Some(w)) = (&synced, &witness) {
                for c in signed {
                    w.offer(c);
                }
            }
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
) -> Result<CheckpointRow, StoreError> {
    let sig = key.sign(&checkpoint_message(seq, hash, now));
    let row = CheckpointRow {
        seq: seq as i64,
        hash: hex::encode(hash),
        time_ms: now,
        hub_key: key.public().to_hex(),
        signature: hex::encode(sig),
    };
    store.add_checkpoint_unsynced(&row).await?;
    Ok(row)
}

/// When the chain's newest entry is a v1 one (a hub upgraded from before home
/// commitments, starting for the first time) and no checkpoint covers it exactly,
/// sign one there, durably.
async fn legacy_anchor(
    store: &Store,
    key: &DeviceKey,
    now: i64,
) -> Result<Option<CheckpointRow>, StoreError> {
    let (Some(last_legacy), Some((head, hash))) = (
        store.last_legacy_audit_seq().await?,
        store.audit_head().await?,
    ) else {
        return Ok(None);
    };
    if head != last_legacy
        || store
            .checkpoints()
            .await?
            .iter()
            .any(|c| c.seq as u64 == head)
    {
        return Ok(None);
    }
    let row = checkpoint(store, key, head, &hash, now).await?;
    store.sync().await?;
    tracing::info!(
        seq = head,
        "signed an audit checkpoint at the last entry written before home commitments"
    );
    Ok(Some(row))
}
