//! Capture time from RTCP sender reports (RFC 3550 §6.4.1).
//!
//! An RTP timestamp says when a picture was sampled on the stream's media clock
//! (90 kHz for video), from an arbitrary random start. Only a sender report ties that
//! clock to wall time: "RTP timestamp `r` is NTP time `n`" on the camera's clock. A
//! picture with RTP timestamp `t` was therefore captured at
//! `n + (t - r) / clock_rate`, where `t - r` is taken modulo 2^32 as a signed number
//! (RTP timestamps are 32 bits and wrap around every 13 h at 90 kHz; a picture is
//! never half a wrap away from the newest report).
//!
//! Until a report has arrived there is no capture time at all, and none is invented
//! (the arrival time is not a capture time: a camera can deliver a buffered, old
//! picture). An NTP time outside 2020..2100 is refused as nonsense (a camera that never
//! synchronised its clock sends 1900 or 1970 + uptime).

/// Seconds from 1900-01-01 (NTP's epoch) to 1970-01-01 (Unix's).
pub const NTP_UNIX_OFFSET_S: u64 = 2_208_988_800;
/// 2020-01-01T00:00:00Z: an earlier capture time is a camera without a set clock.
pub const MIN_PLAUSIBLE_MS: i64 = 1_577_836_800_000;
/// 2100-01-01T00:00:00Z.
pub const MAX_PLAUSIBLE_MS: i64 = 4_102_444_800_000;

/// Unix milliseconds of a 64-bit NTP timestamp (32.32 fixed point seconds since 1900),
/// or `None` when it is zero or outside 2020..2100. NTP era 1 (from 2036-02-07, when
/// the seconds field wraps) is recognised by a clear top bit (RFC 4330 §3), so a camera
/// counting from 1900 + uptime reads as 2036 + uptime: a capture time in the future,
/// which the source refuses against the agent's own clock (`MAX_AHEAD_MS`).
pub fn ntp_to_unix_ms(ntp: u64) -> Option<i64> {
    // Zero means "not synchronised" (RFC 4330 §3).
    if ntp == 0 {
        return None;
    }
    let mut secs = ntp >> 32;
    if secs & 0x8000_0000 == 0 {
        secs += 1 << 32;
    }
    let frac = ntp & 0xFFFF_FFFF;
    let unix_s = i64::try_from(secs.checked_sub(NTP_UNIX_OFFSET_S)?).ok()?;
    let ms = unix_s
        .checked_mul(1000)?
        .checked_add(i64::try_from((frac * 1000 + (1 << 31)) >> 32).ok()?)?;
    (MIN_PLAUSIBLE_MS..MAX_PLAUSIBLE_MS)
        .contains(&ms)
        .then_some(ms)
}

/// The 64-bit NTP timestamp of Unix milliseconds `ms` (era 0 or 1 wrapped into 64 bits).
pub fn unix_ms_to_ntp(ms: i64) -> u64 {
    let secs = (ms.div_euclid(1000) as u64).wrapping_add(NTP_UNIX_OFFSET_S) & 0xFFFF_FFFF;
    let frac = ((ms.rem_euclid(1000) as u64) << 32) / 1000;
    (secs << 32) | frac
}

/// Why a sender report was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SrError {
    #[error("the camera's sender report carries an implausible NTP time (raw {0:#018x}): its clock is not set (set up NTP on the camera)")]
    ImplausibleNtp(u64),
}

/// The newest sender report of one RTP stream, and the mapping it gives.
#[derive(Debug, Clone)]
pub struct SrClock {
    clock_rate: u32,
    anchor: Option<(u32, i64)>,
    reports: u64,
}

impl SrClock {
    /// A clock for a stream whose RTP clock runs at `clock_rate` Hz (must be > 0).
    pub fn new(clock_rate: u32) -> Option<Self> {
        (clock_rate > 0).then_some(SrClock {
            clock_rate,
            anchor: None,
            reports: 0,
        })
    }

    /// A sender report: NTP time `ntp` (camera clock) corresponds to RTP timestamp
    /// `rtp`. An implausible NTP time forgets the mapping the stream had: a camera
    /// whose clock is reset is not believed with an older mapping either.
    pub fn on_sender_report(&mut self, ntp: u64, rtp: u32) -> Result<(), SrError> {
        match ntp_to_unix_ms(ntp) {
            Some(ms) => {
                self.anchor = Some((rtp, ms));
                self.reports += 1;
                Ok(())
            }
            None => {
                self.anchor = None;
                Err(SrError::ImplausibleNtp(ntp))
            }
        }
    }

    /// Whether any usable sender report has arrived.
    pub fn synced(&self) -> bool {
        self.anchor.is_some()
    }

    /// How many usable sender reports have arrived.
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// Camera-clock capture time (Unix ms) of a picture with RTP timestamp `rtp`, or
    /// `None` before the first sender report.
    pub fn capture_ms(&self, rtp: u32) -> Option<i64> {
        let (sr_rtp, sr_ms) = self.anchor?;
        // Signed distance modulo 2^32: wraparound between report and picture is fine.
        let delta = i64::from(rtp.wrapping_sub(sr_rtp) as i32);
        let offset_ms = (delta * 1000).div_euclid(i64::from(self.clock_rate));
        sr_ms.checked_add(offset_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_123; // 2023-11-14T22:13:20.123Z

    #[test]
    fn ntp_round_trips_and_refuses_nonsense() {
        let ntp = unix_ms_to_ntp(T);
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET_S);
        assert_eq!(ntp_to_unix_ms(ntp), Some(T));
        // A camera that never set its clock: 1900 + uptime, or 1970 + uptime.
        assert_eq!(ntp_to_unix_ms(0), None);
        assert_eq!(ntp_to_unix_ms(unix_ms_to_ntp(86_400_000)), None);
        assert_eq!(
            ntp_to_unix_ms(unix_ms_to_ntp(1_500_000_000_000)),
            None,
            "2017"
        );
        // 1900 + uptime reads as era 1 (2036 + uptime): in the future, refused by the
        // source against the agent's clock.
        assert!(ntp_to_unix_ms(5 << 32).unwrap() > 2_085_978_496_000);
        // After NTP's era rollover (2036-02-07T06:28:16Z) the seconds field restarts.
        let after = 2_085_978_496_000 + 10_000; // 2036-02-07T06:28:26Z
        let ntp = unix_ms_to_ntp(after);
        assert!(ntp >> 32 < 100, "wrapped: {}", ntp >> 32);
        assert_eq!(ntp_to_unix_ms(ntp), Some(after));
    }

    #[test]
    fn no_capture_time_before_the_first_report() {
        let mut c = SrClock::new(90_000).unwrap();
        assert!(SrClock::new(0).is_none());
        assert!(!c.synced());
        assert_eq!(c.capture_ms(1234), None);
        c.on_sender_report(unix_ms_to_ntp(T), 1000).unwrap();
        assert!(c.synced());
        assert_eq!(c.capture_ms(1000), Some(T));
        // One second of 90 kHz later and earlier.
        assert_eq!(c.capture_ms(91_000), Some(T + 1000));
        assert_eq!(c.capture_ms(1000u32.wrapping_sub(9000)), Some(T - 100));
    }

    #[test]
    fn rtp_wraparound_on_either_side_of_the_report() {
        let mut c = SrClock::new(90_000).unwrap();
        let sr_rtp = u32::MAX - 44_999; // half a second before the wrap
        c.on_sender_report(unix_ms_to_ntp(T), sr_rtp).unwrap();
        // A picture one second after the report has wrapped past zero.
        let later = sr_rtp.wrapping_add(90_000);
        assert!(later < sr_rtp);
        assert_eq!(c.capture_ms(later), Some(T + 1000));
        // The report after the wrap; a picture from before it.
        c.on_sender_report(unix_ms_to_ntp(T + 2000), 100).unwrap();
        assert_eq!(c.capture_ms(100u32.wrapping_sub(180_000)), Some(T));
        assert_eq!(c.reports(), 2);
    }

    #[test]
    fn newest_report_wins_and_a_nonsense_one_forgets_the_mapping() {
        let mut c = SrClock::new(90_000).unwrap();
        c.on_sender_report(unix_ms_to_ntp(T), 0).unwrap();
        // The camera's clock was stepped by NTP: the newest report rules.
        c.on_sender_report(unix_ms_to_ntp(T + 5000), 90_000)
            .unwrap();
        assert_eq!(c.capture_ms(90_000), Some(T + 5000));
        assert!(matches!(
            c.on_sender_report(0, 180_000),
            Err(SrError::ImplausibleNtp(0))
        ));
        assert_eq!(
            c.capture_ms(180_000),
            None,
            "no capture time without evidence"
        );
        // Other clock rates.
        let mut a = SrClock::new(8000).unwrap();
        a.on_sender_report(unix_ms_to_ntp(T), 0).unwrap();
        assert_eq!(a.capture_ms(8000), Some(T + 1000));
        assert_eq!(a.capture_ms(4), Some(T));
    }
}
