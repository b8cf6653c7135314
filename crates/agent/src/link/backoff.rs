//! How long the link waits before it connects again (protocol §2.1, §2.4): fast after
//! a lost connection (200 ms doubling to 2 s), slow after the hub refused the device
//! (1 s doubling to 60 s, with jitter), because a revoked device or wrong credentials
//! will not fix themselves in a second, and a second agent with the same key must not
//! fight the first for the session.

use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, DisconnectReasonCode};
use rumqttc::v5::{ConnectionError, StateError};
use std::time::Duration;

/// Why a connection ended, as far as the wait before the next one is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The network or the hub went away.
    Lost,
    /// The hub refused the device: bad credentials, or revoked (CONNACK 0x86 / 0x87,
    /// DISCONNECT 0x87).
    Refused,
    /// Another connection with this device's key took the session (DISCONNECT 0x8E).
    TakenOver,
    /// The broker closed the connection after our CONNECT without any CONNACK. Once is
    /// a hiccup; several in a row is how some brokers refuse (no reason code), so
    /// [`Backoff::judge`] counts them as a refusal from the third on.
    Unanswered,
}

/// Closes after CONNECT, in a row, that count as a refusal.
pub const UNANSWERED_IS_REFUSAL: u32 = 3;

/// Whether `e`, while waiting for CONNACK, means the broker took the connection and
/// the CONNECT and then closed it unanswered (rather than not being reachable at all,
/// a TLS failure or a timeout, which say nothing about this device's credentials).
pub fn unanswered(e: &ConnectionError) -> bool {
    matches!(
        e,
        ConnectionError::MqttState(
            StateError::ConnectionAborted | StateError::Io(_) | StateError::Deserialization(_)
        )
    )
}

/// What a connection error means for the wait.
pub fn classify(e: &ConnectionError) -> Ending {
    match e {
        ConnectionError::ConnectionRefused(
            ConnectReturnCode::BadUserNamePassword
            | ConnectReturnCode::NotAuthorized
            | ConnectReturnCode::ClientIdentifierNotValid
            | ConnectReturnCode::Banned,
        ) => Ending::Refused,
        ConnectionError::MqttState(StateError::ServerDisconnect { reason_code, .. }) => {
            on_disconnect(*reason_code)
        }
        _ => Ending::Lost,
    }
}

/// What a DISCONNECT from the hub means for the wait.
pub fn on_disconnect(code: DisconnectReasonCode) -> Ending {
    match code {
        DisconnectReasonCode::NotAuthorized => Ending::Refused,
        DisconnectReasonCode::SessionTakenOver => Ending::TakenOver,
        _ => Ending::Lost,
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    fast: Duration,
    slow: Duration,
    /// Connections closed unanswered after CONNECT since the last other ending.
    unanswered: u32,
}

pub const SLOW_MIN: Duration = Duration::from_secs(1);
pub const SLOW_MAX: Duration = Duration::from_secs(60);

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            fast: min,
            slow: SLOW_MIN,
            unanswered: 0,
        }
    }

    /// The connection was up: both rates start over.
    pub fn connected(&mut self) {
        self.fast = self.min;
        self.slow = SLOW_MIN;
        self.unanswered = 0;
    }

    /// What an ending counts as: an unanswered close is a loss, until the
    /// [`UNANSWERED_IS_REFUSAL`]th in a row, which is a refusal.
    pub fn judge(&mut self, ending: Ending) -> Ending {
        if ending != Ending::Unanswered {
            self.unanswered = 0;
            return ending;
        }
        self.unanswered = self.unanswered.saturating_add(1);
        if self.unanswered >= UNANSWERED_IS_REFUSAL {
            Ending::Refused
        } else {
            Ending::Lost
        }
    }

    /// The wait after a connection ended so, before jitter.
    pub fn after(&mut self, ending: Ending) -> Duration {
        match ending {
            Ending::Lost | Ending::Unanswered => {
                let w = self.fast;
                self.fast = (self.fast * 2).min(self.max);
                w
            }
            Ending::Refused | Ending::TakenOver => {
                let w = self.slow;
                self.slow = (self.slow * 2).min(SLOW_MAX);
                w
            }
        }
    }
}

/// `wait` plus up to a quarter more, so that devices refused together do not all
/// come back at the same instant.
pub fn jitter(wait: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::getrandom(&mut b);
    let frac = f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) * 0.25;
    wait + wait.mul_f64(frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_back_off_to_a_minute_losses_stay_fast() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        let refused: Vec<u64> = (0..8).map(|_| b.after(Ending::Refused).as_secs()).collect();
        assert_eq!(refused, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        let lost: Vec<u128> = (0..5).map(|_| b.after(Ending::Lost).as_millis()).collect();
        assert_eq!(lost, vec![200, 400, 800, 1600, 2000]);
        b.connected();
        assert_eq!(b.after(Ending::Refused), SLOW_MIN);
        assert_eq!(b.after(Ending::Lost), Duration::from_millis(200));
    }

    #[test]
    fn the_hubs_answers_are_read() {
        assert_eq!(
            classify(&ConnectionError::ConnectionRefused(
                ConnectReturnCode::BadUserNamePassword
            )),
            Ending::Refused
        );
        assert_eq!(
            classify(&ConnectionError::ConnectionRefused(
                ConnectReturnCode::NotAuthorized
            )),
            Ending::Refused
        );
        assert_eq!(
            classify(&ConnectionError::ConnectionRefused(
                ConnectReturnCode::ServerBusy
            )),
            Ending::Lost
        );
        assert_eq!(classify(&ConnectionError::RequestsDone), Ending::Lost);
        assert_eq!(
            on_disconnect(DisconnectReasonCode::NotAuthorized),
            Ending::Refused
        );
        assert_eq!(
            on_disconnect(DisconnectReasonCode::SessionTakenOver),
            Ending::TakenOver
        );
        assert_eq!(
            on_disconnect(DisconnectReasonCode::ServerShuttingDown),
            Ending::Lost
        );
    }

    #[test]
    fn a_broker_that_closes_without_connack_three_times_has_refused() {
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_secs(2));
        assert_eq!(b.judge(Ending::Unanswered), Ending::Lost);
        assert_eq!(b.judge(Ending::Unanswered), Ending::Lost);
        assert_eq!(b.judge(Ending::Unanswered), Ending::Refused);
        assert_eq!(b.judge(Ending::Unanswered), Ending::Refused);
        // Anything else in between starts the count again.
        assert_eq!(b.judge(Ending::Lost), Ending::Lost);
        assert_eq!(b.judge(Ending::Unanswered), Ending::Lost);
        b.connected();
        assert_eq!(b.judge(Ending::Unanswered), Ending::Lost);
        assert_eq!(b.judge(Ending::TakenOver), Ending::TakenOver);
        assert!(unanswered(&ConnectionError::MqttState(
            StateError::ConnectionAborted
        )));
        assert!(!unanswered(&ConnectionError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(!unanswered(&ConnectionError::ConnectionRefused(
            ConnectReturnCode::NotAuthorized
        )));
    }

    /// rumqttc's own error when a real socket is closed after CONNECT is one that
    /// [`unanswered`] recognises (and a port nobody listens on is not).
    #[tokio::test]
    async fn a_real_close_after_connect_is_recognised() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = [0u8; 64];
                let _ = sock.read(&mut buf).await; // the CONNECT, then close unanswered
            }
        });
        let poll_once = |port: u16| async move {
            let opts = rumqttc::v5::MqttOptions::new("d", "127.0.0.1", port);
            let (_c, mut ev) = rumqttc::v5::AsyncClient::new(opts, 4);
            ev.poll().await.expect_err("no CONNACK, no connection")
        };
        let e = poll_once(port).await;
        assert!(unanswered(&e), "{e:?}");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nobody = closed.local_addr().unwrap().port();
        drop(closed);
        let e = poll_once(nobody).await;
        assert!(!unanswered(&e), "{e:?}");
    }

    #[test]
    fn jitter_adds_at_most_a_quarter() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(4));
            assert!(
                j >= Duration::from_secs(4) && j <= Duration::from_secs(5),
                "{j:?}"
            );
        }
    }
}
