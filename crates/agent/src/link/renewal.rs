//! When the link asks the hub for new broker credentials (docs/protocol.md §2.1,
//! §8.6): at the first refusal of a refusal episode (from the first refusal to the
//! next successful connection), at once; if the broker keeps refusing, again only
//! after 5 minutes, then 10, 20, 40, and at most once an hour. A device whose hub
//! says it is revoked, or a broker that still refuses a renewed password, never makes
//! it hammer the hub. Only when the hub could not answer at all (unreachable, or a 5xx
//! such as `broker_unavailable`) may the next refusal ask sooner: after 30 s, then
//! 1, 2, 4 minutes, never sooner than the link's own slow reconnection.
//!
//! The asking itself is a port, [`Renewer`] (the agent's is `crate::renew` over
//! HTTP): the link only hands its answer to the next connection.

use super::LinkSettings;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// After a renewal in a refusal episode, the next one waits at least this long...
pub const FIRST_RETRY: Duration = Duration::from_secs(5 * 60);
/// ... doubling up to this.
pub const MAX_RETRY: Duration = Duration::from_secs(60 * 60);

/// After a renewal the hub could not answer, the next one may come after this...
pub const UNANSWERED_RETRY: Duration = Duration::from_secs(30);

/// Why a renewal did not give new credentials.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct RenewFailure {
    /// The hub could not answer (unreachable, or its own trouble, 5xx): asking again
    /// soon may help. Otherwise it answered no (revoked, unknown, ...).
    pub unanswered: bool,
    pub reason: String,
}

pub type Renewing<'a> =
    Pin<Box<dyn Future<Output = Result<LinkSettings, RenewFailure>> + Send + 'a>>;

/// Gets the device new broker credentials (already stored durably when it answers),
/// as the settings of its next connection.
pub trait Renewer: Send + Sync {
    fn renew(&self) -> Renewing<'_>;
}

/// Whether a refusal leads to a renewal now.
#[derive(Clone, Debug)]
pub struct RenewalPolicy {
    /// No renewal before this (none asked yet in this episode: `None`).
    next_at: Option<Instant>,
    wait: Duration,
    unanswered_wait: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy {
            next_at: None,
            wait: FIRST_RETRY,
            unanswered_wait: UNANSWERED_RETRY,
        }
    }
}

impl RenewalPolicy {
    /// The broker refused the device at `now`: whether to ask for new credentials.
    /// Asking is counted here, answered or not.
    pub fn on_refused(&mut self, now: Instant) -> bool {
        if self.next_at.is_some_and(|t| now < t) {
            return false;
        }
        self.next_at = Some(now + self.wait);
        self.wait = (self.wait * 2).min(MAX_RETRY);
        true
    }

    /// The renewal asked at `now` got no answer from the hub: the next may come
    /// sooner than after an answered one (30 s, doubling up to [`FIRST_RETRY`]).
    pub fn unanswered(&mut self, now: Instant) {
        let soon = now + self.unanswered_wait;
        self.next_at = Some(self.next_at.map_or(soon, |t| t.min(soon)));
        self.unanswered_wait = (self.unanswered_wait * 2).min(FIRST_RETRY);
    }

    /// The link was up: the next refusal starts a new episode.
    pub fn connected(&mut self) {
        *self = RenewalPolicy::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refusal_asks_at_once_then_ever_more_rarely() {
        let t0 = Instant::now();
        let mut p = RenewalPolicy::default();
        assert!(p.on_refused(t0), "the first refusal of an episode");
        // The broker refuses the renewed password too: retried every minute, never
        // asked again before five.
        let mut asked = Vec::new();
        for minute in 1..=200u64 {
            let now = t0 + Duration::from_secs(60 * minute);
            if p.on_refused(now) {
                asked.push(minute);
            }
        }
        assert_eq!(asked, vec![5, 15, 35, 75, 135, 195]);
        assert!(asked.windows(2).all(|w| w[1] - w[0] <= 60));
    }

    #[test]
    fn a_connection_ends_the_episode() {
        let t0 = Instant::now();
        let mut p = RenewalPolicy::default();
        assert!(p.on_refused(t0));
        assert!(!p.on_refused(t0 + Duration::from_secs(1)));
        p.connected();
        assert!(
            p.on_refused(t0 + Duration::from_secs(2)),
            "a new refusal after being connected asks again"
        );
        assert!(!p.on_refused(t0 + Duration::from_secs(3)));
    }

    #[test]
    fn a_hub_that_could_not_answer_is_asked_again_sooner() {
        let t0 = Instant::now();
        let mut p = RenewalPolicy::default();
        let mut asked = Vec::new();
        // Refused every 10 s; the hub never answers.
        for tick in 0..=60u64 {
            let now = t0 + Duration::from_secs(10 * tick);
            if p.on_refused(now) {
                asked.push(10 * tick);
                p.unanswered(now);
            }
        }
        assert_eq!(asked, vec![0, 30, 90, 210, 450]);
        // An answer (a refusal by the hub) restores the long wait.
        let mut p = RenewalPolicy::default();
        assert!(p.on_refused(t0));
        assert!(!p.on_refused(t0 + Duration::from_secs(60)));
        assert!(p.on_refused(t0 + FIRST_RETRY));
    }

    /// Counts its calls and answers with `settings`.
    struct Counting {
        calls: std::sync::atomic::AtomicU32,
        settings: LinkSettings,
    }

    impl Renewer for Counting {
        fn renew(&self) -> Renewing<'_> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { Ok(self.settings.clone()) })
        }
    }

    /// A real link against a broker that refuses every CONNECT (CONNACK 0x86): it
    /// asks for new credentials once, connects with them at once, and when those are
    /// refused too does not ask again (the next time is minutes away).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_link_renews_once_and_uses_the_new_password() {
        use crate::outbox::{Outbox, SpaceConfig};
        use std::sync::{Arc, Mutex};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let connects = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let seen = connects.clone();
        let addr = crate::testutil::tcp_server(move |mut s| {
            let seen = seen.clone();
            async move {
                let mut buf = vec![0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                seen.lock().unwrap().push(buf[..n].to_vec());
                // CONNACK, MQTT 5: bad user name or password.
                let _ = s.write_all(&[0x20, 0x03, 0x00, 0x86, 0x00]).await;
                let _ = s.shutdown().await;
            }
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let key = threshold_proto::DeviceKey::from_seed(&[9; 32]);
        let id = key.device_id().to_hex();
        let settings = |password: &str| LinkSettings {
            host: addr.ip().to_string(),
            port: addr.port(),
            username: id.clone(),
            password: password.into(),
            topic_prefix: "t".into(),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_millis(100),
            keep_alive: Duration::from_secs(5),
            tls: None,
        };
        let renewer = Arc::new(Counting {
            calls: Default::default(),
            settings: settings("renewed-password"),
        });
        let tseq = crate::transport_seq::TransportSeq::open(&dir.path().join("tseq"), 1).unwrap();
        let outbox =
            Outbox::open(dir.path(), SpaceConfig::events(), SpaceConfig::frames()).unwrap();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let (_link, _events, task) = crate::link::spawn(crate::link::LinkParts {
            settings: settings("old-password"),
            signer: Arc::new(crate::signer::Signer::new(key.clone(), tseq)),
            outbox: Arc::new(Mutex::new(outbox)),
            hub_key: threshold_proto::DeviceKey::from_seed(&[8; 32]).public(),
            hello: threshold_proto::body::Hello {
                agent: "test".into(),
                kind: threshold_proto::body::DeviceKind::Camera,
                boot_id: "00".into(),
            },
            control: crate::link::LinkControl::new(),
            shutdown,
            renewer: Some(renewer.clone()),
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while connects.lock().unwrap().len() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the link kept connecting"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(true);
        let _ = task.await;
        let has = |c: &[u8], pw: &str| c.windows(pw.len()).any(|w| w == pw.as_bytes());
        let seen = connects.lock().unwrap().clone();
        assert!(has(&seen[0], "old-password"));
        assert!(
            has(&seen[1], "renewed-password"),
            "the renewed password is used next"
        );
        assert!(seen[1..].iter().all(|c| has(c, "renewed-password")));
        assert_eq!(
            renewer.calls.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "asked once for {} refusals",
            seen.len()
        );
    }
}
