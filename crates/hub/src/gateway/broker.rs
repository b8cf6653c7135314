//! The embedded MQTT broker (rumqttd), used when no external broker is configured.
//!
//! It admits the hub itself (username `threshold-hub`, a password made at start) and
//! enrolled, unrevoked devices whose client id and username are their device id and
//! whose password matches the one issued at enrolment. The broker cannot restrict
//! topics per client; the hub does that at message level (a device's envelope must
//! match the topic it published on, and its signature must verify).

use crate::auth::{ct_eq, sha256_hex};
use crate::state::AppState;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use std::collections::HashMap;
use std::net::SocketAddr;
use threshold_proto::DeviceId;

pub const HUB_USERNAME: &str = "threshold-hub";

/// A port for the embedded broker when it was asked for port 0: the broker binds its
/// own listener from an address, so the system picks a free port, which is handed to
/// the broker at once (the hub then reports it as `Hub::mqtt_port`).
pub fn pick_port(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind(addr)?.local_addr()
}

pub fn start(addr: SocketAddr, state: AppState) -> Result<(), String> {
    // Fail early and clearly if the port is taken (rumqttd would only log it).
    std::net::TcpListener::bind(addr)
        .map_err(|e| format!("embedded MQTT broker cannot listen on {addr}: {e}"))?;
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 5000,
        max_payload_size: threshold_proto::MAX_MESSAGE_BYTES + 1024,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let st = state.clone();
    connections.set_auth_handler(move |client_id: String, user: String, pass: String| {
        let ok = authorize(&st, &client_id, &user, &pass);
        async move { ok }
    });
    let server = ServerSettings {
        name: "v5".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let router = RouterConfig {
        max_connections: 20_000,
        max_outgoing_packet_count: 1000,
        max_segment_size: 64 * 1024 * 1024,
        max_segment_count: 4,
        custom_segment: None,
        initialized_filters: None,
        shared_subscriptions_strategy: Default::default(),
    };
    let config = Config {
        id: 0,
        router,
        v4: None,
        v5: Some(HashMap::from([("v5".to_owned(), server)])),
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

fn authorize(state: &AppState, client_id: &str, user: &str, pass: &str) -> bool {
    if user == HUB_USERNAME {
        return ct_eq(pass, &state.hub_mqtt_password);
    }
    let Ok(id) = user.parse::<DeviceId>() else {
        return false;
    };
    if client_id != user {
        return false;
    }
    let hash = sha256_hex(pass);
    state
        .registry
        .with(&id, |e| !e.revoked && ct_eq(&e.mqtt_password_hash, &hash))
        .unwrap_or(false)
}
