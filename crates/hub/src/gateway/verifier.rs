//! Signature checks for every ingest path, gathered into batches.
//!
//! Checking a message's signature is most of what it costs the hub (~80 % of the hub's
//! samples at 10 000 cameras, docs/performance.md). One equation for many signatures
//! costs less per signature (`threshold_proto::verify_many`), but a batch
//! exists only if someone gathers it: on the hub's own endpoint each connection has one
//! message in hand at a time (a device's uplink is acknowledged once handled). So every
//! check goes to one queue, and a few threads each take whatever is waiting there, up
//! to a batch, and check it at once. A hub with little to do checks each message alone
//! as soon as it comes; a busy one checks them many at a time. The threads are the
//! process's, shared by every hub state in it (checking needs no state).

use prometheus_client::metrics::counter::Counter;
use std::sync::{LazyLock, OnceLock};
use threshold_proto::envelope::MAX_BATCH;
use threshold_proto::{verify_many, PublicKey, SignedMessage, UnverifiedMessage, VerifyError};
use tokio::sync::oneshot;

/// Signatures checked, and the batches they were checked in (one alone is a batch of
/// one), by this process: every hub state in it shares them, as it shares the threads.
static CHECKED: LazyLock<Counter> = LazyLock::new(Counter::default);
static BATCHES: LazyLock<Counter> = LazyLock::new(Counter::default);

/// The counters of signatures checked and of their batches, for /metrics.
pub fn counters() -> (Counter, Counter) {
    (CHECKED.clone(), BATCHES.clone())
}

/// What the check of one message found.
pub type Verdict = Result<SignedMessage, VerifyError>;

/// Messages to check, with the keys to check them with, and where to answer.
struct Job {
    items: Vec<(UnverifiedMessage, PublicKey)>,
    reply: oneshot::Sender<Vec<Verdict>>,
}

/// Check one message's signature with `key` (`UnverifiedMessage::verify`'s answer).
pub async fn verify(msg: UnverifiedMessage, key: PublicKey) -> Verdict {
    verify_all(vec![(msg, key)])
        .await
        .pop()
        .unwrap_or(Err(VerifyError::BadSignature))
}

/// Check each message with its key; the verdicts in the order given.
///
/// Always through the queue, even alone: a lone check handed to another thread and
/// back costs more than checking it in place (at 2 000 cameras 33.8 % of a core against
/// 28.3 %), but checking in place whatever found nothing else being checked left
/// smaller batches under load (at 10 000 cameras batches of 3.5 and 101 % of a core,
/// against 8.2 and 93.5 % back to back; performance.md, History 2026-12-05 night), and load is what
/// a hub must be sized for.
pub async fn verify_all(items: Vec<(UnverifiedMessage, PublicKey)>) -> Vec<Verdict> {
    let Some(queue) = queue() else {
        return verify_many(items);
    };
    let n = items.len();
    let (reply, answer) = oneshot::channel();
    if let Err(flume::SendError(job)) = queue.send(Job { items, reply }) {
        // No checking thread is left: check here rather than refuse good messages.
        return verify_many(job.items);
    }
    match answer.await {
        Ok(verdicts) if verdicts.len() == n => verdicts,
        // A checking thread that died with the job: fail secure.
        _ => vec![Err(VerifyError::BadSignature); n],
    }
}

fn queue() -> Option<&'static flume::Sender<Job>> {
    static QUEUE: OnceLock<Option<flume::Sender<Job>>> = OnceLock::new();
    QUEUE.get_or_init(start).as_ref()
}

/// One checking thread per core: checks are pure CPU, and the queue is shared, so a
/// thread that is free takes the next batch.
fn start() -> Option<flume::Sender<Job>> {
    let (tx, rx) = flume::unbounded::<Job>();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut started = 0;
    for i in 0..threads {
        let rx = rx.clone();
        let thread = std::thread::Builder::new()
            .name(format!("threshold-verify-{i}"))
            .spawn(move || serve(&rx));
        match thread {
            Ok(_) => started += 1,
            Err(e) => tracing::error!(error = %e, "cannot start a signature checking thread"),
        }
    }
    (started > 0).then_some(tx)
}

fn serve(rx: &flume::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut n = jobs.iter().map(|j| j.items.len()).sum::<usize>();
        while n < MAX_BATCH {
            let Ok(job) = rx.try_recv() else { break };
            n += job.items.len();
            jobs.push(job);
        }
        answer(jobs, n);
    }
}

/// Check the jobs' messages together and give each job its verdicts.
fn answer(jobs: Vec<Job>, n: usize) {
    let mut items = Vec::with_capacity(n);
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        replies.push((job.items.len(), job.reply));
        items.extend(job.items);
    }
    CHECKED.inc_by(n as u64);
    BATCHES.inc_by(n.div_ceil(MAX_BATCH).max(1) as u64);
    let mut verdicts = verify_many(items).into_iter();
    for (size, reply) in replies {
        let _ = reply.send(verdicts.by_ref().take(size).collect());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threshold_proto::{DeviceKey, Kind};

    fn message(seed: u8, seq: u64, forged: bool) -> (UnverifiedMessage, PublicKey, u64) {
        let k = DeviceKey::from_seed(&[seed; 32]);
        let m = threshold_proto::SignedMessage::sign(
            &k,
            Kind::Heartbeat,
            k.device_id(),
            seq,
            1_700_000_000_000,
            b"{}".to_vec(),
        );
        let mut raw = m.into_bytes();
        if forged {
            if let Some(b) = raw.last_mut() {
                *b ^= 0x01;
            }
        }
        let u = UnverifiedMessage::decode(&raw).unwrap();
        (u, k.public(), seq)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_from_many_tasks_at_once_each_get_their_own_verdict() {
        // 300 concurrent checks (every 17th forged), one at a time and in groups, as
        // the endpoint's connections and the broker's workers send them.
        let mut tasks = Vec::new();
        for i in 0..300u64 {
            let (u, k, seq) = message((i % 11) as u8 + 1, i + 1, i % 17 == 5);
            tasks.push(tokio::spawn(async move {
                let v = verify(u, k).await;
                (seq, v.map(|m| m.seq))
            }));
        }
        let group: Vec<_> = (0..40u64)
            .map(|i| message((i % 5) as u8 + 20, 1000 + i, i == 13))
            .collect();
        let seqs: Vec<u64> = group.iter().map(|(_, _, s)| *s).collect();
        let grouped = verify_all(group.into_iter().map(|(u, k, _)| (u, k)).collect()).await;
        for (i, (seq, v)) in seqs.iter().zip(&grouped).enumerate() {
            let expected = if i == 13 {
                Err(VerifyError::BadSignature)
            } else {
                Ok(*seq)
            };
            assert_eq!(v.as_ref().map(|m| m.seq).map_err(Clone::clone), expected);
        }
        for t in tasks {
            let (seq, v) = t.await.unwrap();
            let forged = (seq - 1) % 17 == 5;
            assert_eq!(v.is_err(), forged, "message {seq}");
            if let Ok(s) = v {
                assert_eq!(s, seq);
            }
        }
    }
}
