//! `threshold serve`, `threshold audit verify`, `threshold user add`.

use anyhow::Context;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use threshold_hub::{HubConfig, Overrides};

/// Hub options. Each flag can also be set as an environment variable, and in the TOML
/// file given with --config (flags win over the environment, which wins over the file).
#[derive(Args, Debug, Clone, Default)]
pub struct HubArgs {
    /// TOML configuration file (unknown keys are refused).
    #[arg(long, env = "THRESHOLD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder (SQLite database, hub key, media).
    #[arg(long, env = "THRESHOLD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// HTTP listen address.
    #[arg(long, env = "THRESHOLD_HTTP_ADDR", value_parser = socket_addr)]
    pub http_addr: Option<SocketAddr>,
    /// Database URL: sqlite://PATH or postgres://...
    #[arg(long, env = "THRESHOLD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// External MQTT broker, mqtt://[user@]host:port (default: the hub's own device
    /// endpoint). Put the password in THRESHOLD_MQTT_PASSWORD or --mqtt-password-file,
    /// not in a URL on the command line.
    #[arg(long, env = "THRESHOLD_MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// User name on the external broker.
    #[arg(long, env = "THRESHOLD_MQTT_USERNAME")]
    pub mqtt_username: Option<String>,
    /// File holding the password on the external broker (the environment variable
    /// THRESHOLD_MQTT_PASSWORD also works). Refused if others can read it.
    #[arg(long, env = "THRESHOLD_MQTT_PASSWORD_FILE")]
    pub mqtt_password_file: Option<PathBuf>,
    /// Give each device its own rights on the external broker through Mosquitto's
    /// dynamic-security plugin (the hub's broker user must be its admin).
    #[arg(long, env = "THRESHOLD_MQTT_DYNSEC")]
    pub mqtt_dynsec: bool,
    /// Where the hub's own device endpoint listens (never port 1883).
    #[arg(long, env = "THRESHOLD_EMBEDDED_MQTT_ADDR", value_parser = socket_addr)]
    pub embedded_mqtt_addr: Option<SocketAddr>,
    /// MQTT topic prefix.
    #[arg(long, env = "THRESHOLD_MQTT_TOPIC_PREFIX")]
    pub mqtt_topic_prefix: Option<String>,
    /// Serve HTTPS (with --tls-cert-file/--tls-key-file, or else a certificate from
    /// the hub's own local CA, made in <data-dir>/tls/ and served at /ca.pem).
    #[arg(long, env = "THRESHOLD_TLS")]
    pub tls: bool,
    /// PEM certificate chain for HTTPS.
    #[arg(long, env = "THRESHOLD_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for HTTPS (readable by its owner only).
    #[arg(long, env = "THRESHOLD_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
    /// A name or address the local CA's certificate is also for (repeatable), e.g.
    /// the hub's LAN address so phones can reach it.
    #[arg(long)]
    pub tls_name: Vec<String>,
    /// With HTTPS: listen here on plain HTTP only to redirect to HTTPS.
    #[arg(long, env = "THRESHOLD_HTTP_REDIRECT_ADDR", value_parser = socket_addr)]
    pub http_redirect_addr: Option<SocketAddr>,
    /// A reverse proxy in front of the hub (an address or CIDR range; repeatable, or a
    /// comma-separated list): its X-Forwarded-For, -Proto and -Host name the client.
    #[arg(long = "trusted-proxy", env = "THRESHOLD_TRUSTED_PROXIES")]
    pub trusted_proxies: Vec<String>,
    /// With --tls: devices may also connect to the hub's own endpoint here with MQTT
    /// over TLS (the HTTPS certificate; 8883 is the usual port).
    #[arg(long, env = "THRESHOLD_MQTT_TLS_ADDR", value_parser = socket_addr)]
    pub mqtt_tls_addr: Option<SocketAddr>,
    /// Live window in milliseconds.
    #[arg(long, env = "THRESHOLD_LIVE_WINDOW_MS")]
    pub live_window_ms: Option<i64>,
    /// Heartbeat period devices are told to use, in milliseconds.
    #[arg(long, env = "THRESHOLD_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<i64>,
    /// Run as one node of a fleet under this name (unique among the nodes); needs
    /// --database-url postgres://... and --mqtt-url shared with the other nodes.
    #[arg(long, env = "THRESHOLD_FLEET_NODE")]
    pub fleet_node: Option<String>,
    /// Home Assistant's MQTT broker, mqtt[s]://[user@]host[:port]: publish MQTT
    /// discovery there (docs/home-assistant.md). Put the password in
    /// THRESHOLD_HA_MQTT_PASSWORD or --ha-mqtt-password-file.
    #[arg(long, env = "THRESHOLD_HA_MQTT_URL")]
    pub ha_mqtt_url: Option<String>,
    /// User name on Home Assistant's broker.
    #[arg(long, env = "THRESHOLD_HA_MQTT_USERNAME")]
    pub ha_mqtt_username: Option<String>,
    /// File holding the password on Home Assistant's broker (the environment variable
    /// THRESHOLD_HA_MQTT_PASSWORD also works). Refused if others can read it.
    #[arg(long, env = "THRESHOLD_HA_MQTT_PASSWORD_FILE")]
    pub ha_mqtt_password_file: Option<PathBuf>,
    /// With mqtts://: a PEM file of CA certificates to trust for Home Assistant's
    /// broker.
    #[arg(long, env = "THRESHOLD_HA_MQTT_CA_FILE")]
    pub ha_mqtt_ca_file: Option<PathBuf>,
    /// Home Assistant's discovery prefix (default homeassistant).
    #[arg(long, env = "THRESHOLD_HA_DISCOVERY_PREFIX")]
    pub ha_discovery_prefix: Option<String>,
    /// Prefix of the state topics for Home Assistant (default threshold).
    #[arg(long, env = "THRESHOLD_HA_TOPIC_PREFIX")]
    pub ha_topic_prefix: Option<String>,
    /// An external witness of the signed audit checkpoints: a file (a JSON line
    /// appended per checkpoint, fsync'd) or an https:// URL (each checkpoint POSTed).
    /// Check the chain against it with `threshold audit verify --witness`.
    #[arg(long, env = "THRESHOLD_AUDIT_WITNESS")]
    pub audit_witness: Option<String>,
}

/// An address to listen on: `IP:PORT`, or `NAME:PORT` (such as `localhost:8080`)
/// resolved now, an IPv4 address preferred.
pub fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    let all: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| format!("{e} (expected HOST:PORT, such as 127.0.0.1:8080 or localhost:8080)"))?
        .collect();
    all.iter()
        .find(|a| a.is_ipv4())
        .or(all.first())
        .copied()
        .ok_or_else(|| format!("{s}: the name has no address"))
}

/// A password from a private file (`flag` names it in errors), else from the
/// environment variable `env`.
fn password(file: Option<&PathBuf>, flag: &str, env: &str) -> anyhow::Result<Option<String>> {
    if let Some(path) = file {
        let text = threshold_hub::secrets::read_private(path)
            .with_context(|| format!("{flag} {}", path.display()))?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_owned()));
    }
    Ok(std::env::var(env).ok().filter(|p| !p.is_empty()))
}

impl HubArgs {
    /// The broker password from --mqtt-password-file or THRESHOLD_MQTT_PASSWORD.
    fn mqtt_password(&self) -> anyhow::Result<Option<String>> {
        password(
            self.mqtt_password_file.as_ref(),
            "--mqtt-password-file",
            "THRESHOLD_MQTT_PASSWORD",
        )
    }

    /// Home Assistant's broker password from --ha-mqtt-password-file or
    /// THRESHOLD_HA_MQTT_PASSWORD.
    fn ha_mqtt_password(&self) -> anyhow::Result<Option<String>> {
        password(
            self.ha_mqtt_password_file.as_ref(),
            "--ha-mqtt-password-file",
            "THRESHOLD_HA_MQTT_PASSWORD",
        )
    }

    pub fn resolve(&self) -> anyhow::Result<HubConfig> {
        Ok(HubConfig::resolve(
            self.config.as_deref(),
            Overrides {
                data_dir: self.data_dir.clone(),
                http_addr: self.http_addr,
                database_url: self.database_url.clone(),
                mqtt_url: self.mqtt_url.clone(),
                mqtt_username: self.mqtt_username.clone(),
                mqtt_password: self.mqtt_password()?,
                mqtt_dynsec: self.mqtt_dynsec,
                tls: self.tls,
                tls_cert_file: self.tls_cert_file.clone(),
                tls_key_file: self.tls_key_file.clone(),
                tls_names: self.tls_name.clone(),
                http_redirect_addr: self.http_redirect_addr,
                trusted_proxies: self.trusted_proxies.clone(),
                mqtt_tls_addr: self.mqtt_tls_addr,
                embedded_mqtt_addr: self.embedded_mqtt_addr,
                mqtt_topic_prefix: self.mqtt_topic_prefix.clone(),
                live_window_ms: self.live_window_ms,
                heartbeat_ms: self.heartbeat_ms,
                fleet_node: self.fleet_node.clone(),
                ha_mqtt_url: self.ha_mqtt_url.clone(),
                ha_mqtt_username: self.ha_mqtt_username.clone(),
                ha_mqtt_password: self.ha_mqtt_password()?,
                ha_mqtt_ca_file: self.ha_mqtt_ca_file.clone(),
                ha_discovery_prefix: self.ha_discovery_prefix.clone(),
                ha_topic_prefix: self.ha_topic_prefix.clone(),
                audit_witness: self.audit_witness.clone(),
            },
        )?)
    }
}

/// Where the hub keeps its records, for the commands that only read or change them
/// (no addresses, broker or TLS settings: they would not apply).
#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// TOML configuration file (its data folder and database are used).
    #[arg(long, env = "THRESHOLD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data folder (SQLite database, hub key).
    #[arg(long, env = "THRESHOLD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://...
    #[arg(long, env = "THRESHOLD_DATABASE_URL")]
    pub database_url: Option<String>,
}

impl StoreArgs {
    pub fn resolve(&self) -> anyhow::Result<HubConfig> {
        Ok(HubConfig::resolve(
            self.config.as_deref(),
            Overrides {
                data_dir: self.data_dir.clone(),
                database_url: self.database_url.clone(),
                ..Default::default()
            },
        )?)
    }
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub hub: HubArgs,
}

pub async fn serve(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = a.hub.resolve()?;
    // Rehearsing a fleet whose clocks disagree (docs/operations.md): this process's
    // clock runs off by the given milliseconds. Not for production.
    let hub = match std::env::var("THRESHOLD_CLOCK_OFFSET_MS") {
        Ok(v) => {
            let offset: i64 = v
                .trim()
                .parse()
                .context("THRESHOLD_CLOCK_OFFSET_MS must be an integer (milliseconds)")?;
            tracing::warn!(
                offset_ms = offset,
                "this hub's clock is deliberately off (THRESHOLD_CLOCK_OFFSET_MS)"
            );
            threshold_hub::start_with_clock(
                cfg,
                std::sync::Arc::new(threshold_hub::clock::OffsetClock(offset)),
            )
            .await?
        }
        Err(_) => threshold_hub::start(cfg).await?,
    };
    println!(
        "threshold hub listening on {} (MQTT {}:{})",
        hub.base_url(),
        hub.mqtt_host,
        hub.mqtt_port
    );
    if let Some(fp) = &hub.tls_fingerprint {
        println!("TLS certificate fingerprint (SHA-256): {fp}");
    }
    if let Some(t) = hub.endpoint.as_ref().and_then(|e| e.tls_addr) {
        println!("devices: MQTT over TLS on {t}");
    }
    if let Some(r) = hub.redirect_addr {
        println!("plain HTTP on {r} redirects to HTTPS");
    }
    // A first start: nobody can sign in yet.
    if matches!(
        hub.state.store.users_by_role(threshold_store::Role::Admin).await,
        Ok(admins) if admins.is_empty()
    ) {
        println!(
            "no administrator yet: create one with `THRESHOLD_NEW_PASSWORD=... {} user add --role admin --username NAME` (same --data-dir / --database-url), then sign in at {}",
            std::env::args().next().unwrap_or_else(|| "threshold".into()),
            hub.base_url()
        );
    }
    shutdown_signal().await;
    eprintln!("stopping");
    hub.stop().await;
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Recompute the audit hash chain and check every signed checkpoint with a pinned
    /// key (--key, else this hub's key file; never a key stored in the database);
    /// names the first broken link. Exit status 1 if the chain is broken.
    Verify {
        #[command(flatten)]
        hub: StoreArgs,
        /// The hub's audit public key to pin: 64 hex characters, or a file holding
        /// them (as printed by `threshold audit key`).
        #[arg(long)]
        key: Option<String>,
        /// Verify this export file (from `threshold audit export`, of the whole log or
        /// of one home) instead of the database; needs --key.
        #[arg(long, requires = "key")]
        export: Option<PathBuf>,
        /// With --export: the file must be the export of this home (its id).
        #[arg(long, requires = "export")]
        home: Option<String>,
        /// A witness log (the file `audit_witness` wrote, or the lines a witness URL
        /// received): every checkpoint it saw must still be in the chain, with the same
        /// hash. Catches a history rewritten and signed again with the hub's own key.
        #[arg(long)]
        witness: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the whole audit log and its signed checkpoints to a file, to verify
    /// elsewhere with `threshold audit verify --export FILE --key KEY`; with --home,
    /// one home's entries in full and every other entry as a link only.
    Export {
        #[command(flatten)]
        hub: StoreArgs,
        /// The file to write (replaced if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Export only this home's entries (its id); the rest of the chain is kept as
        /// links, without their contents, so the file still verifies end to end.
        #[arg(long)]
        home: Option<String>,
    },
    /// Print the hub's audit public key (to pin now and verify with later).
    Key {
        #[command(flatten)]
        hub: StoreArgs,
    },
}

/// The pinned key: `--key` as hex or a file of hex, else the hub's key file.
fn pinned_key(
    key: Option<&str>,
    cfg: &threshold_hub::HubConfig,
) -> anyhow::Result<threshold_proto::PublicKey> {
    let text = match key {
        Some(k) if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) => k.to_owned(),
        Some(path) => std::fs::read_to_string(path).with_context(|| {
            format!("--key {path}: neither 64 hex characters nor a readable file")
        })?,
        None => {
            let file = cfg.hub_key_file();
            anyhow::ensure!(
                file.exists(),
                "no hub key file at {}: pass the pinned key with --key",
                file.display()
            );
            return Ok(threshold_hub::hubkey::load_or_create(&file)?.public());
        }
    };
    text.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--key: not an Ed25519 public key (64 hex characters)"))
}

pub async fn audit(a: AuditCmd) -> anyhow::Result<ExitCode> {
    let (hub, key, export, home, witness, json) = match a {
        AuditCmd::Key { hub } => {
            let cfg = hub.resolve()?;
            println!("{}", pinned_key(None, &cfg)?.to_hex());
            return Ok(ExitCode::SUCCESS);
        }
        AuditCmd::Export { hub, out, home } => {
            let cfg = hub.resolve()?;
            let store = threshold_store::Store::connect(&cfg.database_url())
                .await
                .context("cannot open the database")?;
            // Written beside the target and renamed into place: a failed export leaves
            // no half file behind under the name asked for.
            let partial = out.with_extension("partial");
            let file = std::fs::File::create(&partial)
                .with_context(|| format!("--out {}", out.display()))?;
            let mut w = std::io::BufWriter::new(file);
            let written = threshold_hub::audit::export::write_scoped(
                &store,
                &mut w,
                now_ms(),
                home.as_deref(),
            )
            .await;
            drop(w);
            let written = match written {
                Ok(x) => x,
                Err(e) => {
                    let _ = std::fs::remove_file(&partial);
                    return Err(e.into());
                }
            };
            std::fs::rename(&partial, &out).with_context(|| format!("--out {}", out.display()))?;
            match home {
                None => println!(
                    "wrote {} entries and {} signed checkpoints to {}",
                    written.entries,
                    written.checkpoints,
                    out.display()
                ),
                Some(h) => println!(
                    "wrote home {h}'s {} entries, {} other entries as links only, and {} signed checkpoints (from entry {}) to {}",
                    written.entries,
                    written.links,
                    written.checkpoints,
                    written.from_seq,
                    out.display()
                ),
            }
            return Ok(ExitCode::SUCCESS);
        }
        AuditCmd::Verify {
            hub,
            key,
            export,
            home,
            witness,
            json,
        } => (hub, key, export, home, witness, json),
    };
    let cfg = hub.resolve()?;
    let pinned = pinned_key(key.as_deref(), &cfg)?;
    let seen = match &witness {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("--witness {}", path.display()))?;
            Some(
                threshold_hub::audit::witness::read(std::io::BufReader::new(file), &pinned)
                    .with_context(|| format!("--witness {}", path.display()))?,
            )
        }
        None => None,
    };
    let report = match export {
        Some(path) => {
            let file = std::fs::File::open(&path)
                .with_context(|| format!("--export {}", path.display()))?;
            threshold_hub::audit::export::verify_with_witness(
                std::io::BufReader::new(file),
                &pinned,
                seen.as_deref(),
            )?
        }
        None => {
            let store = threshold_store::Store::connect(&cfg.database_url())
                .await
                .context("cannot open the database")?;
            threshold_hub::audit::verify_with_witness(&store, &pinned, seen.as_deref()).await?
        }
    };
    if let Some(want) = &home {
        anyhow::ensure!(
            report.home.as_deref() == Some(want.as_str()),
            "--home {want}: the export is {}",
            match &report.home {
                Some(h) => format!("home {h}'s"),
                None => "of the whole log".into(),
            }
        );
    }
    let scope = match (&report.home, report.home_entries, report.links) {
        (Some(h), Some(n), Some(l)) => format!(
            " for home {h} ({n} of its entries in full, {l} other entries as links{})",
            if report.from_seq > 1 {
                format!(", from entry {}", report.from_seq)
            } else {
                String::new()
            }
        ),
        _ => String::new(),
    };
    let witnessed = match &report.witness {
        Some(w) if w.ok => format!(
            "; all {} checkpoints the witness saw match{}",
            w.compared,
            if w.before_range > 0 {
                format!(" ({} earlier ones are before this export)", w.before_range)
            } else {
                String::new()
            }
        ),
        _ => String::new(),
    };
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else if report.ok {
        println!(
            "audit log intact{scope}: {} entries, {} signed checkpoints verified with key {} (signed through entry {}){witnessed}",
            report.entries, report.checkpoints, report.key, report.signed_through
        );
    } else {
        println!(
            "audit log BROKEN after {} good entries: {}",
            report.entries,
            report.first_break.as_deref().unwrap_or("?")
        );
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create an account (owner, courier, dispatcher or admin).
    Add {
        #[command(flatten)]
        hub: StoreArgs,
        /// owner, courier, dispatcher or admin.
        #[arg(long)]
        role: String,
        /// The name to sign in with (case does not matter).
        #[arg(long)]
        username: String,
        /// Read the password from this environment variable (never from a flag, so it
        /// stays out of shell history and process lists).
        #[arg(long, default_value = "THRESHOLD_NEW_PASSWORD")]
        password_env: String,
    },
}

pub async fn user(a: UserCmd) -> anyhow::Result<ExitCode> {
    let UserCmd::Add {
        hub,
        role,
        username,
        password_env,
    } = a;
    let cfg = hub.resolve()?;
    let password = std::env::var(&password_env)
        .with_context(|| format!("set the password in ${password_env}"))?;
    let role = threshold_store::Role::parse(&role)
        .context("role must be owner, courier, dispatcher or admin")?;
    threshold_hub::auth::policy::check(&password, &username)
        .map_err(|e| anyhow::anyhow!("${password_env}: {e}"))?;
    std::fs::create_dir_all(&cfg.data_dir)?;
    let store = threshold_store::Store::connect(&cfg.database_url())
        .await
        .context("cannot open the database")?;
    let hash = threshold_hub::auth::hash_password(&password).map_err(|e| anyhow::anyhow!("{e}"))?;
    let u = store
        .create_user(
            role,
            &username.to_ascii_lowercase(),
            &username,
            &hash,
            now_ms(),
        )
        .await?;
    println!("{}", u.id);
    Ok(ExitCode::SUCCESS)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
