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

/// One audit entry to append; the journal gives it its time and place in the chain.
#[derive(Clone, Debug)]
pub struct Record {
    pub(super) kind: String,
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
