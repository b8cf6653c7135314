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
        }
    }

    /// The connection was up: both rates start over.
    pub fn connected(&mut self) {
        self.fast = self.min;
        self.slow = SLOW_MIN;
    }

    /// The wait after a connection ended so, before jitter.
    pub fn after(&mut self, ending: Ending) -> Duration {
        match ending {
            Ending::Lost => {
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
