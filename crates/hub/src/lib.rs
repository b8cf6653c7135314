//! The Threshold hub: HTTP/WebSocket API, MQTT device gateway, liveness, policy,
//! alerts and the audit log. [`start`] wires the parts together from a [`HubConfig`].
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used))]
// Live-view tuples are read once, next to where they are built.
#![allow(clippy::type_complexity)]

pub mod access;
pub mod alerts;
pub mod allocator;
pub mod audit;
pub mod auth;
pub mod broker_url;
pub mod clock;
pub mod config;
pub mod events;
pub mod fleet;
pub mod gateway;
pub mod homeassistant;
pub mod http;
pub mod hubkey;
pub mod media;
pub mod metrics;
pub mod metrics_text;
pub mod outbound;
pub mod process_metrics;
pub mod reactions;
pub mod secrets;
pub mod state;
pub mod text;
pub mod tls;
pub mod wifi;
pub mod wifi_recent;

pub use config::{HubConfig, Overrides};
pub use state::AppState;

use anyhow::Context;
use clock::{Clock, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a stopping hub waits for its background tasks to finish what they hold.
const STOP_TASKS_WITHIN: Duration = Duration::from_secs(10);

/// A running hub.
#[derive(Debug)]
pub struct Hub {
    pub state: AppState,
    pub http_addr: SocketAddr,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    /// The hub's own device endpoint, when no external broker is configured.
    pub endpoint: Option<gateway::endpoint::Endpoint>,
    /// With HTTPS: the SHA-256 fingerprint a client checks (the local CA's, or the
    /// operator's certificate's).
    pub tls_fingerprint: Option<String>,
    /// With HTTPS and `http_redirect_addr`: where plain HTTP is redirected from.
    pub redirect_addr: Option<SocketAddr>,
    /// With `ha_mqtt_url`: the Home Assistant discovery bridge.
    pub home_assistant: Option<homeassistant::Bridge>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<()>,
}

impl Hub {
    /// The base URL of the API and web apps (`https://` when serving TLS).
    pub fn base_url(&self) -> String {
        let scheme = if self.tls_fingerprint.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.http_addr)
    }

    /// Stop serving HTTP and devices.
    pub async fn stop(mut self) {
        let _ = self.state.shutdown.send(true);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.server).await;
        // Home Assistant hears "offline" before the hub is gone.
        if let Some(b) = self.home_assistant.take() {
            b.stop().await;
        }
        // What the background tasks hold (liveness changes decided before the stop, a
        // watcher pass under way) is applied before the store closes; a task stuck on
        // a slow database is not waited for beyond the bound.
        self.state.tasks.close();
        if tokio::time::timeout(STOP_TASKS_WITHIN, self.state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.state.tasks.len(),
                "background tasks still working when the hub stopped"
            );
        }
        // Persist the replay marks one last time, so nothing accepted before the stop
        // can be replayed after the next start.
        gateway::monitor::flush_hwm(&self.state).await;
        self.state.store.close().await;
    }
}

/// Start a hub with the system clock.
pub async fn start(config: HubConfig) -> anyhow::Result<Hub> {
    start_with_clock(config, Arc::new(SystemClock)).await
}

/// What [`assemble`] builds: the state, and where the hub's own broker connection
/// goes.
pub struct Assembled {
    pub state: AppState,
    mqtt: gateway::mqtt::MqttTarget,
    connected: Arc<gateway::connected::Connected>,
}

/// Open the database, load every device and door, and build the hub's state, without
/// starting anything: no broker, no HTTP server, no background task. [`start`] runs
/// it; story tests drive it by hand on a manual clock (`testing`).
pub async fn assemble(config: HubConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Assembled> {
    config.validate()?;
    let new_folder = !config.data_dir.exists();
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data folder {}", config.data_dir.display()))?;
    if new_folder {
        secrets::make_private(&config.data_dir)?;
    }
    let sqlite_file = config
        .database_url
        .is_none()
        .then(|| config.data_dir.join("threshold.db"))
        .filter(|f| !f.exists());
    let store = threshold_store::Store::connect(&config.database_url())
        .await
        .context("cannot open the database")?;
    // A database the hub created is its owner's only (it holds password hashes,
    // device keys and the audit log).
    if let Some(f) = sqlite_file {
        for suffix in ["", "-wal", "-shm"] {
            let p = std::path::PathBuf::from(format!("{}{suffix}", f.display()));
            if p.exists() {
                secrets::make_private(&p)?;
            }
        }
    }
    store.setting_init("schema", "1").await?;
    let hub_key = hubkey::load_or_create(&config.hub_key_file())?;

    // With an external broker the hub connects to it as a client; otherwise devices
    // connect to the hub's own endpoint (`gateway::endpoint`).
    let (mqtt_host, mqtt_port, username, password, mqtt_tls) = match &config.mqtt_url {
        Some(url) => {
            let url = broker_url::BrokerUrl::parse(url).map_err(anyhow::Error::msg)?;
            let tls = if url.tls {
                let client = config
                    .mqtt_client_cert_file
                    .as_deref()
                    .zip(config.mqtt_client_key_file.as_deref());
                Some(
                    outbound::with_client_cert(
                        config.mqtt_ca_file.as_deref(),
                        "mqtt_ca_file",
                        client,
                    )
                    .map_err(anyhow::Error::msg)?,
                )
            } else {
                None
            };
            (
                url.host,
                url.port,
                config.mqtt_username.clone().or(url.username),
                config.mqtt_password.clone().or(url.password),
                tls,
            )
        }
        None => (
            config.embedded_mqtt_addr.ip().to_string(),
            config.embedded_mqtt_addr.port(),
            None,
            None,
            None,
        ),
    };
    let (device_host, device_port) = match &config.device_mqtt_addr {
        Some(a) => {
            let (h, p) = a
                .rsplit_once(':')
                .context("device_mqtt_addr must be host:port")?;
            (h.to_owned(), p.parse().context("device_mqtt_addr port")?)
        }
        None => (mqtt_host.clone(), mqtt_port),
    };
    let connected = Arc::new(gateway::connected::Connected::default());
    let metrics = metrics::Metrics::new();
    let outbound_tls =
        outbound::client_config(config.outbound_ca_file.as_deref()).map_err(anyhow::Error::msg)?;
    let witness = match &config.audit_witness {
        Some(w) => Some(audit::witness::Witness::start(
            audit::witness::Target::parse(w).map_err(anyhow::Error::msg)?,
            outbound_tls.clone(),
            metrics.witness.clone(),
            audit::witness::Retry::default(),
        )),
        None => None,
    };
    let journal = audit::Journal::start(
        store.clone(),
        hub_key.clone(),
        clock.clone(),
        config.audit_checkpoint_every,
        witness,
    );
    // A fleet's nodes count sign-in attempts together; a single hub in memory.
    let shared_store = store.clone();
    let throttle = |limits, scope| match config.fleet_node {
        Some(_) => auth::throttle::Throttle::shared(limits, shared_store.clone(), scope),
        None => auth::throttle::Throttle::new(limits),
    };
    let state = AppState::new(state::Inner {
        downlink: gateway::downlink::Downlink::new(clock.now_ms()),
        config: config.clone(),
        store,
        clock,
        metrics,
        hub_key,
        registry: gateway::registry::Registry::new(),
        bus: events::EventBus::new(),
        live: media::live::LiveFrames::default(),
        recorder: media::recorder::Recorder::default(),
        stream_leases: Default::default(),
        webhooks: alerts::webhooks::Webhooks::default(),
        gaps: alerts::gaps::PendingGaps::default(),
        device_mqtt_host: device_host,
        device_mqtt_port: device_port,
        device_mqtt_tls_port: config.mqtt_tls_addr.map(|a| a.port()),
        journal,
        sign_in_accounts: throttle(auth::throttle::Limits::ACCOUNT, "account"),
        sign_in_sources: throttle(auth::throttle::Limits::SOURCE, "source"),
        proxies: http::proxies::Proxies::new(config.trusted_proxies()?),
        password_checks: auth::PasswordChecks::default(),
        outbound_tls,
        guest_limiter: match config.fleet_node {
            Some(_) => auth::AttemptLimiter::shared(shared_store.clone(), "guest"),
            None => auth::AttemptLimiter::local("guest"),
        },
        credential_limiter: match config.fleet_node {
            Some(_) => auth::AttemptLimiter::shared(shared_store.clone(), "credentials"),
            None => auth::AttemptLimiter::local("credentials"),
        },
        shutdown: tokio::sync::watch::channel(false).0,
        tasks: tokio_util::task::TaskTracker::new(),
        effects: std::sync::OnceLock::new(),
        mqtt_connected: connected.clone(),
        wifi_attacks: wifi_recent::RecentAttacks::default(),
        load: gateway::lag::Load::new(config.live_window_ms),
        access: access::AccessState::new(config.live_window_ms),
        reactions: std::sync::Arc::new(reactions::HubReactions),
        fleet: match &config.fleet_node {
            Some(node) => fleet::ownership::Ownership::node(node, config.fleet_partitions),
            None => fleet::ownership::Ownership::single(),
        },
    });
    state
        .metrics
        .fleet_partitions
        .set(state.fleet.held().len() as i64);
    if state.fleet.node_id().is_some() {
        // Any node may command any lock: numbers from one counter per device.
        state.downlink.share_numbers(state.store.clone());
    }
    load_devices(&state).await?;
    state
        .wifi_attacks
        .load(&state.store, state.clock.now_ms())
        .await?;
    Ok(Assembled {
        state,
        mqtt: gateway::mqtt::MqttTarget {
            host: mqtt_host,
            port: mqtt_port,
            username,
            password,
            dynsec: config.mqtt_dynsec,
            tls: mqtt_tls,
        },
        connected,
    })
}

pub async fn start_with_clock(mut config: HubConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Hub> {
    // The device endpoint's port is taken first, so that one asked for as 0 is the
    // port devices are told at enrolment.
    let device_listener = match config.mqtt_url {
        None => {
            let l =
                gateway::endpoint::bind(config.embedded_mqtt_addr).map_err(anyhow::Error::msg)?;
            config.embedded_mqtt_addr = l.local_addr()?;
            Some(l)
        }
        Some(_) => None,
    };
    let device_tls_listener = match config.mqtt_tls_addr {
        Some(addr) => {
            let l = gateway::endpoint::bind(addr).map_err(anyhow::Error::msg)?;
            config.mqtt_tls_addr = Some(l.local_addr()?);
            Some(l)
        }
        None => None,
    };
    // The certificate first: a bad one stops the start before anything serves.
    config.validate()?;
    let served = if config.https() {
        Some(match (&config.tls_cert_file, &config.tls_key_file) {
            (Some(c), Some(k)) => tls::from_files(c, k)?,
            _ => tls::local_ca(
                &config.data_dir.join("tls"),
                &tls::default_names(&config.tls_names),
            )?,
        })
    } else {
        None
    };
    let Assembled {
        state,
        mqtt,
        connected,
    } = assemble(config.clone(), clock).await?;
    let (mqtt_host, mqtt_port) = (mqtt.host.clone(), mqtt.port);
    fleet::spawn(&state);
    gateway::monitor::spawn(
        state.clone(),
        Duration::from_millis(50),
        |st, batch| async move { reactions::on_transitions(&st, batch).await },
    );
    media::recording::spawn(state.clone());
    alerts::webhooks::spawn(state.clone());
    access::watcher::spawn(state.clone());
    let endpoint = match device_listener {
        Some(listener) => {
            let tls = device_tls_listener.zip(served.as_ref().map(|s| s.config.clone()));
            let e = gateway::endpoint::start(listener, tls, state.clone())
                .map_err(anyhow::Error::msg)?;
            state
                .downlink
                .connect(Arc::new(gateway::endpoint::sessions::EndpointLink(
                    e.sessions.clone(),
                )));
            connected.0.store(true, std::sync::atomic::Ordering::SeqCst);
            state.access.set_vouching(true, state.clock.now_ms());
            Some(e)
        }
        None => {
            gateway::mqtt::spawn(state.clone(), mqtt, connected.clone());
            // Devices may publish as soon as we answer HTTP; be subscribed before that.
            // A broker that is down is not fatal: the hub keeps retrying and /healthz
            // says so.
            if !connected.wait(Duration::from_secs(10)).await {
                tracing::error!(broker = %format!("{mqtt_host}:{mqtt_port}"), "MQTT broker not reachable yet; retrying in the background");
            }
            None
        }
    };

    let listener = tokio::net::TcpListener::bind(config.http_addr)
        .await
        .with_context(|| format!("cannot listen on {}", config.http_addr))?;
    let http_addr = listener.local_addr()?;
    let redirect = match (config.http_redirect_addr, &served) {
        (Some(addr), Some(_)) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on http_redirect_addr {addr}"))?,
        ),
        _ => None,
    };
    let push = alerts::push::start(&state).await;
    let home_assistant = homeassistant::spawn(&state)?;
    let mut app = http::router(state.clone(), push);
    if let Some(s) = &served {
        app = http::tls_routes(app, s.ca_pem.clone());
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async move {
        let _ = rx.await;
    };
    let redirect_addr = match redirect {
        Some(l) => {
            let a = l.local_addr()?;
            http::redirect::spawn(
                l,
                http_addr.port(),
                state.proxies.trusted.clone(),
                state.shutdown.subscribe(),
            );
            Some(a)
        }
        None => None,
    };
    let server = match &served {
        None => {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "HTTP server stopped");
                }
            })
        }
        Some(s) => {
            use axum::serve::ListenerExt;
            let tls_listener = tls::TlsListener::new(listener, s.config.clone())?.tap_io(|_| {});
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move {
                if let Err(e) = axum::serve(tls_listener, app)
                    .with_graceful_shutdown(stop)
                    .await
                {
                    tracing::error!(error = %e, "HTTPS server stopped");
                }
            })
        }
    };
    tracing::info!(%http_addr, mqtt = %format!("{mqtt_host}:{mqtt_port}"), "hub started");
    Ok(Hub {
        state,
        http_addr,
        mqtt_host,
        mqtt_port,
        endpoint,
        tls_fingerprint: served.map(|s| s.fingerprint),
        redirect_addr,
        home_assistant,
        shutdown: Some(tx),
        server,
    })
}

/// Load every enrolled device into the gateway, and every door. Nobody is live yet:
/// each device must prove itself with a fresh signed message (law 9), and a message
/// signed before this start is refused as a possible replay (the restart fence).
async fn load_devices(state: &AppState) -> anyhow::Result<()> {
    for row in state.store.all_devices().await? {
        // Every device is fenced, even one whose replay mark was never saved: a crash
        // before the first save leaves a mark of 0 behind messages that were accepted
        // and acted on (found by the kill -9 test).
        match gateway::loading::fenced_entry(state, &row).await? {
            Some(e) => state.registry.insert(e),
            None => {
                tracing::error!(device = %row.id, "stored device has an unreadable id, key or kind; ignored")
            }
        }
    }
    {
        let _newest_wins = state.access.doors.reloading().await;
        state.access.doors.set_all(&state.store.all_doors().await?);
    }
    state
        .webhooks
        .endpoints
        .set_all(state.store.all_webhook_endpoints().await?);
    Ok(())
}
