//! `threshold demo`: the README's first command. A hub with embedded defaults, a
//! simulated home (a front door with camera, lock and door contact; a garage with its
//! camera and a garage-door opener) whose agents speak the real protocol
//! over the embedded broker, demo accounts and a delivery scheduled for now.
//!
//! Everything goes through the same paths a real deployment uses: accounts and the
//! delivery through the HTTP API, devices enrolled with pairing codes, messages signed
//! and sent over MQTT. A second run reuses the data folder (`--reset` starts afresh).

use crate::api_client::http;
use crate::demo_logins::ACCOUNTS;
use anyhow::Context;
use clap::Args;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use threshold_agent::{
    CameraConfig, ContactConfig, ContactDriverConfig, GarageConfig, GarageDriverConfig, LockConfig,
    LockDriverConfig, SimulatedGarage, SimulatedHome, SourceConfig,
};
use threshold_proto::body::BoltState;

/// `$XDG_DATA_HOME/threshold/demo`, else `~/.local/share/threshold/demo`; the system's
/// temporary folder when there is no home at all.
fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local").join("share"))
        })
        .unwrap_or_else(std::env::temp_dir);
    base.join("threshold").join("demo")
}

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Data folder for the demo (hub database, key, agents); default: `threshold/demo`
    /// in the user's data folder ($XDG_DATA_HOME, else ~/.local/share), never the
    /// working tree.
    #[arg(long, default_value_os_t = default_data_dir())]
    pub data_dir: PathBuf,
    /// HTTP address of the hub.
    #[arg(long, default_value = "127.0.0.1:8080", value_parser = crate::hub_cmd::socket_addr)]
    pub http_addr: SocketAddr,
    /// Embedded MQTT broker address (never 1883).
    #[arg(long, default_value = "127.0.0.1:18830", value_parser = crate::hub_cmd::socket_addr)]
    pub mqtt_addr: SocketAddr,
    /// Delete the data folder first.
    #[arg(long)]
    pub reset: bool,
    /// Serve the apps on the local network over HTTPS (on the machine's LAN address,
    /// with a certificate from a CA the hub makes for itself), so a phone can follow
    /// the courier flow with real geolocation. The demo's logins (random, made for
    /// its data folder and kept there) are printed at start: whoever sees them can
    /// use them from the network.
    #[arg(long)]
    pub lan: bool,
    /// Do not open and close the simulated door by itself after an unlock.
    #[arg(long)]
    pub no_auto_door: bool,
    /// Show the demo home in Home Assistant: its MQTT broker,
    /// mqtt[s]://[user@]host[:port] (password in THRESHOLD_HA_MQTT_PASSWORD); see
    /// docs/home-assistant.md.
    #[arg(long, env = "THRESHOLD_HA_MQTT_URL")]
    pub ha_mqtt_url: Option<String>,
    /// Home Assistant's discovery prefix (default homeassistant).
    #[arg(long, env = "THRESHOLD_HA_DISCOVERY_PREFIX")]
    pub ha_discovery_prefix: Option<String>,
    /// Prefix of the state topics for Home Assistant (default threshold).
    #[arg(long, env = "THRESHOLD_HA_TOPIC_PREFIX")]
    pub ha_topic_prefix: Option<String>,
}

pub const DEMO_HOME: (f64, f64) = (52.3731, 4.8922);
pub const DEMO_PARCEL: &str = "PARCEL-0001";
/// The label of the demo's delivery into the garage.
pub const DEMO_GARAGE_PARCEL: &str = "PARCEL-0002";

async fn login(base: &str, user: &str, pw: &str) -> anyhow::Result<String> {
    let (s, b) = http(
        "POST",
        format!("{base}/api/v1/auth/login"),
        None,
        Some(json!({"username": user, "password": pw})),
    )
    .await?;
    anyhow::ensure!(s == 200, "login as {user} failed: {b}");
    b["token"]
        .as_str()
        .map(str::to_owned)
        .context("login response without token")
}

/// Whether the agent in `dir` is enrolled. The demo may run its broker on another
/// address than last time (`--mqtt-addr`): point the stored enrolment at it.
fn enrolled(dir: &Path, mqtt_host: &str, mqtt_port: u16) -> bool {
    match threshold_agent::identity::load_enrolment(dir)
        .ok()
        .flatten()
    {
        Some(mut e) => {
            if e.mqtt.host != mqtt_host || e.mqtt.port != mqtt_port {
                e.mqtt.host = mqtt_host.to_owned();
                e.mqtt.port = mqtt_port;
                if let Err(err) = threshold_agent::identity::save_enrolment(dir, &e) {
                    tracing::warn!(error = %err, "could not update the demo agent's broker address");
                }
            }
            true
        }
        None => false,
    }
}

/// A pairing code for a device of the demo's front door.
/// The home's door called `name`, created (accepting deliveries) if it is not there.
async fn door_named(base: &str, owner: &str, home: &str, name: &str) -> anyhow::Result<String> {
    let (_, doors) = http(
        "GET",
        format!("{base}/api/v1/homes/{home}/doors"),
        Some(owner.to_owned()),
        None,
    )
    .await?;
    if let Some(id) = doors
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == name))
        .and_then(|d| d["id"].as_str())
    {
        return Ok(id.to_owned());
    }
    let (s, b) = http(
        "POST",
        format!("{base}/api/v1/homes/{home}/doors"),
        Some(owner.to_owned()),
        Some(json!({ "name": name })),
    )
    .await?;
    anyhow::ensure!(s == 201, "creating the door {name}: {b}");
    b["id"].as_str().map(str::to_owned).context("door id")
}

async fn pairing_code(
    base: &str,
    owner: &str,
    home: &str,
    door: &str,
    kind: &str,
    name: &str,
) -> anyhow::Result<String> {
    let (s, b) = http(
        "POST",
        format!("{base}/api/v1/homes/{home}/pairing-codes"),
        Some(owner.to_owned()),
        Some(json!({"kind": kind, "name": name, "door_id": door})),
    )
    .await?;
    anyhow::ensure!(s == 201, "pairing code: {b}");
    b["code"].as_str().map(str::to_owned).context("no code")
}

pub async fn run(a: DemoArgs) -> anyhow::Result<ExitCode> {
    if a.reset && a.data_dir.exists() {
        std::fs::remove_dir_all(&a.data_dir)
            .with_context(|| format!("cannot delete {}", a.data_dir.display()))?;
    }
    let lan = if a.lan { Some(lan_address()?) } else { None };
    let cfg = threshold_hub::HubConfig {
        data_dir: a.data_dir.join("hub"),
        http_addr: match lan {
            Some(_) => SocketAddr::new(std::net::Ipv4Addr::UNSPECIFIED.into(), a.http_addr.port()),
            None => a.http_addr,
        },
        embedded_mqtt_addr: a.mqtt_addr,
        tls: lan.is_some(),
        tls_names: lan.map(|ip| vec![ip.to_string()]).unwrap_or_default(),
        ha_mqtt_url: a.ha_mqtt_url.clone(),
        ha_mqtt_password: std::env::var("THRESHOLD_HA_MQTT_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty()),
        ..Default::default()
    };
    let mut cfg = cfg;
    if let Some(p) = &a.ha_discovery_prefix {
        cfg.ha_discovery_prefix = p.clone();
    }
    if let Some(p) = &a.ha_topic_prefix {
        cfg.ha_topic_prefix = p.clone();
    }
    let ca_pem = cfg.data_dir.join("tls").join("ca.pem");
    let hub = threshold_hub::start(cfg).await?;
    let base = match lan {
        Some(ip) => {
            crate::api_client::trust_ca(&ca_pem)?;
            format!("https://{}", SocketAddr::new(ip, hub.http_addr.port()))
        }
        None => format!("http://{}", hub.http_addr),
    };
    let hub_ca = lan.map(|_| ca_pem.clone());

    // Accounts: the admin is created directly (there is nobody to ask yet), the rest
    // through the API as an operator would.
    let store = hub.state.store.clone();
    let logins = crate::demo_logins::load_or_create(&a.data_dir)?;
    if logins.fresh {
        // A folder from a demo that still used fixed passwords: its accounts take
        // the new ones.
        for (_, user) in ACCOUNTS {
            if let Some(u) = store.user_by_name(user).await? {
                let hash = threshold_hub::auth::hash_password(logins.password(user))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                store.set_password_hash(&u.id, &hash).await?;
            }
        }
    }
    if store.user_by_name("admin").await?.is_none() {
        let hash = threshold_hub::auth::hash_password(logins.password("admin"))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        store
            .create_user(
                threshold_store::Role::Admin,
                "admin",
                "Administrator",
                &hash,
                crate::hub_cmd::now_ms(),
            )
            .await?;
    }
    let admin = login(&base, "admin", logins.password("admin")).await?;
    for (role, user) in &ACCOUNTS[1..] {
        let pw = logins.password(user);
        if store.user_by_name(user).await?.is_none() {
            let (s, b) = http(
                "POST",
                format!("{base}/api/v1/admin/users"),
                Some(admin.clone()),
                Some(json!({"role": role, "username": user, "password": pw})),
            )
            .await?;
            anyhow::ensure!(s == 201, "creating {user}: {b}");
        }
    }
    let owner = login(&base, "owner", logins.password("owner")).await?;
    let (_, homes) = http(
        "GET",
        format!("{base}/api/v1/homes"),
        Some(owner.clone()),
        None,
    )
    .await?;
    let home_id = match homes
        .as_array()
        .and_then(|h| h.first())
        .and_then(|h| h["id"].as_str())
    {
        Some(id) => id.to_owned(),
        None => {
            let (s, b) = http("POST", format!("{base}/api/v1/homes"), Some(owner.clone()), Some(json!({"name": "Demo home", "lat": DEMO_HOME.0, "lon": DEMO_HOME.1, "geofence_m": 75.0}))).await?;
            anyhow::ensure!(s == 201, "creating home: {b}");
            b["id"].as_str().context("home id")?.to_owned()
        }
    };

    // The front door (the hallway camera watches it; the lock and contact are on it)
    // and the garage (its own camera; a garage-door opener).
    let door_id = door_named(&base, &owner, &home_id, "Front door").await?;
    let garage_id = door_named(&base, &owner, &home_id, "Garage").await?;

    // Devices: enrol each simulated agent once, with a pairing code.
    let agents = a.data_dir.join("agents");
    let (cam_dir, lock_dir, contact_dir, garage_cam_dir, opener_dir) = (
        agents.join("camera"),
        agents.join("lock"),
        agents.join("contact"),
        agents.join("garage-camera"),
        agents.join("garage-opener"),
    );
    let home = SimulatedHome::new();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();

    let mut cam = CameraConfig::new(&cam_dir);
    cam.source = SourceConfig::Synthetic {
        width: 320,
        height: 240,
    };
    if !enrolled(&cam_dir, &hub.mqtt_host, hub.mqtt_port) {
        cam.common.hub_url = Some(base.clone());
        cam.common.hub_ca_file = hub_ca.clone();
        cam.common.pairing_code = Some(
            pairing_code(
                &base,
                &owner,
                &home_id,
                &door_id,
                "camera",
                "Hallway camera",
            )
            .await?,
        );
    }
    tasks.push(tokio::spawn(threshold_agent::run_camera(cam, rx.clone())));

    let mut lock = LockConfig::new(&lock_dir, LockDriverConfig::Simulator(home.clone()));
    if !enrolled(&lock_dir, &hub.mqtt_host, hub.mqtt_port) {
        lock.common.hub_url = Some(base.clone());
        lock.common.hub_ca_file = hub_ca.clone();
        lock.common.pairing_code =
            Some(pairing_code(&base, &owner, &home_id, &door_id, "lock", "Front door lock").await?);
    }
    tasks.push(tokio::spawn(threshold_agent::run_lock(lock, rx.clone())));

    let mut contact =
        ContactConfig::new(&contact_dir, ContactDriverConfig::Simulator(home.clone()));
    if !enrolled(&contact_dir, &hub.mqtt_host, hub.mqtt_port) {
        contact.common.hub_url = Some(base.clone());
        contact.common.hub_ca_file = hub_ca.clone();
        contact.common.pairing_code = Some(
            pairing_code(
                &base,
                &owner,
                &home_id,
                &door_id,
                "contact_sensor",
                "Front door contact",
            )
            .await?,
        );
    }
    tasks.push(tokio::spawn(threshold_agent::run_contact(
        contact,
        rx.clone(),
    )));

    let mut garage_cam = CameraConfig::new(&garage_cam_dir);
    garage_cam.source = SourceConfig::Synthetic {
        width: 320,
        height: 240,
    };
    if !enrolled(&garage_cam_dir, &hub.mqtt_host, hub.mqtt_port) {
        garage_cam.common.hub_url = Some(base.clone());
        garage_cam.common.hub_ca_file = hub_ca.clone();
        garage_cam.common.pairing_code = Some(
            pairing_code(
                &base,
                &owner,
                &home_id,
                &garage_id,
                "camera",
                "Garage camera",
            )
            .await?,
        );
    }
    tasks.push(tokio::spawn(threshold_agent::run_camera(
        garage_cam,
        rx.clone(),
    )));

    // A garage door takes a few seconds to travel, as a real one does.
    let garage = SimulatedGarage::new();
    garage.set_travel(Duration::from_secs(3));
    let mut opener = GarageConfig::new(&opener_dir, GarageDriverConfig::Simulator(garage));
    if !enrolled(&opener_dir, &hub.mqtt_host, hub.mqtt_port) {
        opener.common.hub_url = Some(base.clone());
        opener.common.hub_ca_file = hub_ca.clone();
        opener.common.pairing_code = Some(
            pairing_code(
                &base,
                &owner,
                &home_id,
                &garage_id,
                "garage_opener",
                "Garage opener",
            )
            .await?,
        );
    }
    tasks.push(tokio::spawn(threshold_agent::run_garage(
        opener,
        rx.clone(),
    )));

    // The owner trusts the demo's merchant to deliver inside.
    let dispatcher = login(&base, "dispatcher", logins.password("dispatcher")).await?;
    let (_, me) = http(
        "GET",
        format!("{base}/api/v1/me"),
        Some(dispatcher.clone()),
        None,
    )
    .await?;
    let dispatcher_id = me["id"].as_str().context("dispatcher id")?;
    let (s, b) = http(
        "PUT",
        format!("{base}/api/v1/homes/{home_id}/merchants/{dispatcher_id}"),
        Some(owner.clone()),
        None,
    )
    .await?;
    anyhow::ensure!(s == 200, "trusting the demo merchant: {b}");

    // A delivery for now, unless one is already waiting.
    let (_, couriers) = http(
        "GET",
        format!("{base}/api/v1/couriers"),
        Some(dispatcher.clone()),
        None,
    )
    .await?;
    let courier_id = couriers
        .as_array()
        .and_then(|c| c.iter().find(|u| u["username"] == "courier"))
        .and_then(|u| u["id"].as_str())
        .context("demo courier")?
        .to_owned();
    let (_, mine) = http(
        "GET",
        format!("{base}/api/v1/deliveries"),
        Some(dispatcher.clone()),
        None,
    )
    .await?;
    let now = crate::hub_cmd::now_ms();
    // One delivery to the front door and one into the garage, unless already waiting.
    for (door, parcel) in [(&door_id, DEMO_PARCEL), (&garage_id, DEMO_GARAGE_PARCEL)] {
        let waiting = mine.as_array().is_some_and(|d| {
            d.iter().any(|d| {
                d["state"] == "scheduled"
                    && d["parcel_ref"] == parcel
                    && d["window_end_ms"].as_i64().unwrap_or(0) > now
            })
        });
        if waiting {
            continue;
        }
        let body = json!({"home_id": home_id, "courier_id": courier_id, "door_id": door, "window_start_ms": now - 5 * 60_000, "window_end_ms": now + 2 * 3_600_000, "parcel_ref": parcel});
        let (s, b) = http(
            "POST",
            format!("{base}/api/v1/deliveries"),
            Some(dispatcher.clone()),
            Some(body),
        )
        .await?;
        anyhow::ensure!(s == 201, "creating delivery: {b}");
    }

    if !a.no_auto_door {
        tasks.push(tokio::spawn(auto_door(home.clone(), rx.clone())));
    }

    println!();
    println!("Threshold demo is running.");
    println!();
    println!(
        "  Owner app     {base}/            login owner / {}",
        logins.password("owner")
    );
    println!(
        "  Courier app   {base}/courier/    login courier / {}",
        logins.password("courier")
    );
    println!(
        "  Dispatcher    API key or login dispatcher / {}",
        logins.password("dispatcher")
    );
    println!("  Admin         login admin / {}", logins.password("admin"));
    if let Some(fp) = &hub.tls_fingerprint {
        println!("  Trust the hub {base}/trust  (open it on the phone; the hub CA's");
        println!("                SHA-256 fingerprint is {fp})");
    }
    println!("  API           {base}/api/v1/openapi.json");
    println!("  Metrics       {base}/metrics");
    println!(
        "  MQTT          {}:{} (the hub's own device endpoint)",
        hub.mqtt_host, hub.mqtt_port
    );
    println!();
    println!(
        "  The home is at lat {}, lon {}; the parcel labels read {DEMO_PARCEL} (front door)",
        DEMO_HOME.0, DEMO_HOME.1
    );
    println!("  and {DEMO_GARAGE_PARCEL} (garage).");
    println!("  After an unlock the simulated courier opens and closes the front door by itself;");
    println!("  the garage opens for its delivery and closes when the courier presses Delivered.");
    println!(
        "  Data folder: {} (reused next time; --reset starts afresh). Ctrl-C stops.",
        a.data_dir.display()
    );
    println!();

    crate::hub_cmd::shutdown_signal().await;
    eprintln!("stopping the demo");
    let _ = tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    hub.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// This machine's address on its local network: the source address the system would
/// use to reach a documentation address (nothing is sent).
fn lan_address() -> anyhow::Result<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0")?;
    s.connect("192.0.2.1:9")
        .context("--lan: this machine has no route to a local network")?;
    let ip = s.local_addr()?.ip();
    anyhow::ensure!(
        !ip.is_loopback() && !ip.is_unspecified(),
        "--lan: no local network address found"
    );
    Ok(ip)
}

/// The simulated courier: when the bolt retracts, open the door, wait, close it (the
/// lock then relocks by its own rule).
async fn auto_door(
    home: SimulatedHome,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            unlocked = home.wait_bolt(BoltState::Unlocked, Duration::from_secs(3600)) => {
                if unlocked {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    home.open_door();
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    home.close_door();
                    let _ = home.wait_bolt(BoltState::Locked, Duration::from_secs(30)).await;
                }
            }
        }
    }
}
