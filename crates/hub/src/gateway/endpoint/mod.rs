//! The hub's own MQTT 5 endpoint for devices, used when no external broker is
//! configured.
//!
//! The hub is the only party its devices talk to, so it serves them itself instead
//! of relaying through a general-purpose broker: every device connects as itself,
//! publishes only on its own uplink topic and subscribes only to its own downlink
//! topic ([`rights`]); there is no anonymous client and no user that may read other
//! devices' topics. Revoking a device closes its connection at once. Uplinks go
//! straight to verification (`gateway::ingest`), without a second hop through a
//! broker and the hub's own client connection.
//!
//! MQTT framing is rumqttc's (`mqttbytes::v5::Codec`); what is written here is only
//! the session rules of protocol §2.

mod codec;
pub mod rights;
mod session;
pub mod sessions;

use crate::state::AppState;
use sessions::Sessions;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use threshold_proto::DeviceId;

/// A listening endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// Where devices connect over TLS (MQTT over TLS), when configured.
    pub tls_addr: Option<SocketAddr>,
    pub sessions: Arc<Sessions>,
}

/// Take the endpoint's address before anything else starts, so that a port asked for
/// as 0 is known (and handed to devices at enrolment) without a second bind racing
/// other processes. Fails naming the address.
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, String> {
    let l = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("device MQTT endpoint cannot listen on {addr}: {e}"))?;
    Ok(l)
}

/// Serve devices on `listener` (from [`bind`]) until the hub stops; with `tls`, also
/// on a second listener where every connection starts with a TLS handshake.
pub fn start(
    listener: std::net::TcpListener,
    tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    state: AppState,
) -> Result<Endpoint, String> {
    let sessions = Arc::new(Sessions::default());
    let log = Arc::new(RefusalLog::default());
    let addr = accept_loop(listener, None, &state, &sessions, &log)?;
    let tls_addr = match tls {
        Some((l, config)) => Some(accept_loop(
            l,
            Some(tokio_rustls::TlsAcceptor::from(config)),
            &state,
            &sessions,
            &log,
        )?),
        None => None,
    };
    Ok(Endpoint {
        addr,
        tls_addr,
        sessions,
    })
}

fn accept_loop(
    listener: std::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: &AppState,
    sessions: &Arc<Sessions>,
    log: &Arc<RefusalLog>,
) -> Result<SocketAddr, String> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (state, sessions, log) = (state.clone(), sessions.clone(), log.clone());
    tokio::spawn(async move {
        let mut stop = state.shutdown.subscribe();
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stop.changed() => {
                    sessions.close_all();
                    return;
                }
            };
            match accepted {
                Ok((socket, peer)) => {
                    // Downlinks (unlock tokens) are small: Nagle would hold each one
                    // until the device acknowledged earlier data.
                    let _ = socket.set_nodelay(true);
                    let (state, sessions, log) = (state.clone(), sessions.clone(), log.clone());
                    match &tls {
                        None => {
                            tokio::spawn(session::serve(socket, peer, state, sessions, log));
                        }
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                match tokio::time::timeout(
                                    crate::tls::HANDSHAKE_WITHIN,
                                    acceptor.accept(socket),
                                )
                                .await
                                {
                                    Ok(Ok(tls)) => {
                                        session::serve(tls, peer, state, sessions, log).await
                                    }
                                    _ => {
                                        state.metrics.broker_refusal("tls_handshake");
                                        log.note("tls_handshake", Some(peer), None);
                                    }
                                }
                            });
                        }
                    }
                }
                Err(e) => {
                    // Out of file descriptors, most often: wait for some to close
                    // rather than spin.
                    tracing::warn!(error = %e, "device endpoint cannot accept; pausing");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(addr)
}

/// Refusals are counted every time (`threshold_broker_refused_total`) but logged once
/// per reason per minute with how many there were, so a device or scanner hammering
/// the endpoint cannot flood the log. Nothing a client sent is logged but its address
/// and, once it is authenticated, its device id.
#[derive(Debug, Default)]
pub struct RefusalLog(Mutex<HashMap<&'static str, (Option<Instant>, u64)>>);

const LOG_EVERY: Duration = Duration::from_secs(60);

impl RefusalLog {
    pub fn note(&self, reason: &'static str, peer: Option<SocketAddr>, device: Option<&DeviceId>) {
        let now = Instant::now();
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (last, count) = t.entry(reason).or_insert((None, 0));
        *count += 1;
        if last.is_some_and(|l| now.duration_since(l) < LOG_EVERY) {
            return;
        }
        let n = std::mem::take(count);
        *last = Some(now);
        drop(t);
        match (peer, device) {
            (Some(p), Some(d)) => {
                tracing::warn!(reason, peer = %p.ip(), device = %d, count = n, "device endpoint refused")
            }
            (Some(p), None) => {
                tracing::warn!(reason, peer = %p.ip(), count = n, "device endpoint refused")
            }
            // Seen through an external broker's log: who it was is the broker's to say.
            (None, _) => tracing::warn!(reason, count = n, "broker refused a client"),
        }
    }
}
