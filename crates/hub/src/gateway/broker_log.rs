//! Refusals at an external Mosquitto, as the hub can see them: Mosquitto publishes its
//! notice-level log lines on `$SYS/broker/log/N` when configured with
//! `log_dest topic`, and a client it turned away at connection (no credentials, a
//! wrong password, a revoked device) leaves the line
//! `Client <id> disconnected, not authorised.` The hub counts each such line in
//! `threshold_broker_refused_total{reason="external_not_authorised"}` and logs them
//! with the endpoint's once-a-minute rule, naming nothing the client sent.
//!
//! What Mosquitto 2.0 refuses after a connection (a publish or subscription outside a
//! device's rights) it logs at debug level only, which it never publishes on `$SYS`:
//! those refusals stay in the broker's own log (docs/operations.md).

/// The topic Mosquitto publishes its notice-level log lines on.
pub const NOTICE_TOPIC: &str = "$SYS/broker/log/N";

/// The reason label for a client the external broker refused at connection.
pub const NOT_AUTHORISED: &str = "external_not_authorised";

/// The refusal a broker log line reports, if any. A line is
/// `<unix seconds>: <text>`; only the text is judged.
pub fn refusal(line: &[u8]) -> Option<&'static str> {
    let line = std::str::from_utf8(line).ok()?;
    let text = line.split_once(": ").map_or(line, |(_, t)| t);
    (text.starts_with("Client ") && text.trim_end().ends_with(" disconnected, not authorised."))
        .then_some(NOT_AUTHORISED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_told_from_every_other_notice() {
        // Lines as Mosquitto 2.0.11 published them on $SYS/broker/log/N (captured).
        assert_eq!(
            refusal(b"1796416166: Client <unknown> disconnected, not authorised."),
            Some(NOT_AUTHORISED)
        );
        assert_eq!(
            refusal(b"1796416166: Client a1b2 disconnected, not authorised.\n"),
            Some(NOT_AUTHORISED)
        );
        for other in [
            &b"1796416165: New connection from 127.0.0.1:55972 on port 18831."[..],
            b"1796416165: New client connected from 127.0.0.1:55972 as dev1 (p2, c1, k60, u'dev1').",
            b"1796416165: Client dev1 disconnected.",
            b"1796416165: Client not authorised. disconnected, fine",
            b"",
            b"\xff\xfe: Client x disconnected, not authorised.",
        ] {
            assert_eq!(refusal(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
