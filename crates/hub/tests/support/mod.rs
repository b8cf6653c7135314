//! What every end-to-end test needs: HTTP calls against a running hub,
//! waiting for a condition with a deadline (never a fixed sleep), signing in, and
//! whether this machine's Mosquitto is there. `sim` runs a hub in simulated time,
//! `house` is a furnished home on it, `process` runs the real binary.
#![allow(dead_code)]

pub mod agents;
pub mod house;
pub mod mosquitto;
pub mod process;
pub mod sim;
pub mod wire;

use serde_json::{json, Value};
use std::future::Future;
use std::time::Duration;

/// The reason codes of an entry decision (`{"reasons":[{"code":…}]}`), in order.
pub fn reasons(d: &Value) -> Vec<String> {
    d["reasons"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// This machine's Mosquitto on 127.0.0.1:1883. Without it a test skips, unless
/// THRESHOLD_REQUIRE_SERVICES=1, under which it fails.
pub fn mosquitto_up() -> bool {
    let up = std::net::TcpStream::connect_timeout(
        &"127.0.0.1:1883".parse().unwrap(),
        Duration::from_secs(1),
    )
    .is_ok();
    if !up {
        assert!(
            !threshold_store::testing::services_required(),
            "Mosquitto required on 127.0.0.1:1883"
        );
        eprintln!("skipping: Mosquitto not reachable on 127.0.0.1:1883");
    }
    up
}

/// One HTTP call with an optional bearer token and JSON body; returns the status, the
/// body's bytes (up to 512 MiB) and its content type.
pub async fn call_raw(
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Vec<u8>, String) {
    use std::io::Read;
    let method = method.to_owned();
    let token = token.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let mut req = agent().request(&method, &url);
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = resp.status();
        let ct = resp.content_type().to_owned();
        let mut bytes = Vec::new();
        resp.into_reader()
            .take(512 * 1024 * 1024)
            .read_to_end(&mut bytes)
            .unwrap();
        (status, bytes, ct)
    })
    .await
    .unwrap()
}

/// The hub CA a TLS test trusts (besides the public roots), for its own calls and its
/// real agents; one per test process.
static TRUSTED_CA: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Trust the CA in `pem` (a hub's `tls/ca.pem`) for every call this test makes.
pub fn trust_ca(pem: &std::path::Path) {
    let _ = TRUSTED_CA.set(pem.to_owned());
}

pub fn trusted_ca() -> Option<std::path::PathBuf> {
    TRUSTED_CA.get().cloned()
}

/// A ureq agent that trusts [`trusted_ca`] too.
fn agent() -> ureq::Agent {
    match trusted_ca() {
        None => ureq::agent(),
        Some(ca) => ureq::AgentBuilder::new()
            .tls_config(threshold_agent::tls::client_config(Some(&ca)).expect("the trusted CA"))
            .build(),
    }
}

/// One HTTP call; returns the status and the JSON body (or null).
pub async fn call(
    method: &str,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let (s, b, _) = call_raw(method, url, token, body).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

/// Wait until `f` yields a value, re-checking it each time the in-process hub `hub`
/// announces something: an event on its live event bus (a device's event record, a
/// liveness or lock change, an alert, a delivery step) or a new live camera frame
/// (cameras stream several a second); fail after `secs`. No timer: the wait is woken by
/// the system under test, so a condition that changes with no announcement at all times
/// out loudly instead of being polled.
pub async fn eventually_on<T, F, Fut>(
    hub: &threshold_hub::AppState,
    secs: u64,
    what: &str,
    mut f: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    use tokio::sync::broadcast::error::RecvError;
    // Subscribed before the first check: nothing announced meanwhile is missed.
    let mut events = hub.bus.subscribe();
    let mut frames = hub.live.subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        let woken = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                e = events.recv() => !matches!(e, Err(RecvError::Closed)),
                f = frames.recv() => !matches!(f, Err(RecvError::Closed)),
            }
        })
        .await;
        match woken {
            Ok(true) => {}
            Ok(false) => panic!("the hub stopped while waiting for: {what}"),
            // No last look: a condition that came true unannounced must fail here, not
            // pass silently after the whole deadline.
            Err(_) => {
                panic!("timed out waiting for: {what} (nothing the hub announced made it true)")
            }
        }
    }
}

/// [`eventually_on`] for a condition.
pub async fn until_on<F, Fut>(hub: &threshold_hub::AppState, secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_on(hub, secs, what, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Wait until `f` yields a value when nothing announces it: a system under test in
/// ANOTHER process (the real `threshold` binary the command-line tests start), or a
/// fact no notification carries (a rejected message only counted in `/metrics`, a mark
/// the hub's periodic task writes to the database, a push subscription removed after
/// the push service's answer, a real device agent's own counters). So `f` is
/// re-checked on a bounded interval (every 50 ms) until the deadline of `secs`. This is
/// the suite's only re-check timer; whatever an in-process hub announces is waited on
/// with [`eventually_on`] instead.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut recheck = tokio::time::interval(Duration::from_millis(50));
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::timeout_at(deadline, recheck.tick())
            .await
            .is_err()
        {
            match f().await {
                Some(v) => return v,
                None => panic!("timed out waiting for: {what}"),
            }
        }
    }
}

/// [`eventually`] for a condition (another process; see there).
pub async fn until<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(secs, what, || {
        let fut = f();
        async move { fut.await.then_some(()) }
    })
    .await
}

pub async fn login(base: &str, user: &str, pw: &str) -> String {
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/auth/login"),
        None,
        Some(json!({"username": user, "password": pw})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b["token"].as_str().unwrap().to_owned()
}

/// A hub on `data_dir` with everything on loopback ports picked by the system (HTTP
/// and its own device endpoint), otherwise the defaults.
pub fn local_config(data_dir: &std::path::Path) -> threshold_hub::HubConfig {
    threshold_hub::HubConfig {
        data_dir: data_dir.to_owned(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        embedded_mqtt_addr: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    }
}

/// The password of every account the helpers below create.
pub const PASSWORD: &str = "a-long-password";

/// Create an administrator directly in the hub's store (there is nobody to ask yet)
/// and sign in as it.
pub async fn admin(hub: &threshold_hub::Hub) -> String {
    let hash = threshold_hub::auth::hash_password("admin-password").unwrap();
    hub.state
        .store
        .create_user(threshold_store::Role::Admin, "admin", "Admin", &hash, 0)
        .await
        .unwrap();
    login(&hub.base_url(), "admin", "admin-password").await
}

/// Create `(role, username)` accounts through the admin API, then sign each in;
/// returns their session tokens in the same order.
pub async fn accounts(base: &str, admin: &str, who: &[(&str, &str)]) -> Vec<String> {
    let mut tokens = Vec::new();
    for (role, name) in who {
        let (s, b) = call(
            "POST",
            format!("{base}/api/v1/admin/users"),
            Some(admin),
            Some(json!({"role": role, "username": name, "password": PASSWORD})),
        )
        .await;
        assert_eq!(s, 201, "{b}");
    }
    for (_, name) in who {
        tokens.push(login(base, name, PASSWORD).await);
    }
    tokens
}

/// An owner's new home with one door, "Front door"; returns the home's id.
pub async fn home(base: &str, owner: &str, name: &str, lat: f64, lon: f64) -> String {
    let (s, home) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(owner),
        Some(json!({"name": name, "lat": lat, "lon": lon})),
    )
    .await;
    assert_eq!(s, 201, "{home}");
    let id = home["id"].as_str().unwrap().to_owned();
    let (s, door) = call(
        "POST",
        format!("{base}/api/v1/homes/{id}/doors"),
        Some(owner),
        Some(json!({"name": "Front door"})),
    )
    .await;
    assert_eq!(s, 201, "{door}");
    id
}

/// The id of the home's only door, if it has exactly one.
pub async fn only_door(base: &str, owner: &str, home_id: &str) -> Option<String> {
    let (s, doors) = call(
        "GET",
        format!("{base}/api/v1/homes/{home_id}/doors"),
        Some(owner),
        None,
    )
    .await;
    assert_eq!(s, 200, "{doors}");
    let doors = doors.as_array().cloned().unwrap_or_default();
    (doors.len() == 1).then(|| doors[0]["id"].as_str().unwrap().to_owned())
}

/// The owner trusts the dispatcher (signed in as `dispatcher`) to deliver inside.
pub async fn trust(base: &str, owner: &str, home_id: &str, dispatcher: &str) {
    let (_, me) = call("GET", format!("{base}/api/v1/me"), Some(dispatcher), None).await;
    let id = me["id"].as_str().unwrap();
    let (s, b) = call(
        "PUT",
        format!("{base}/api/v1/homes/{home_id}/merchants/{id}"),
        Some(owner),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
}

/// A one-time pairing code for a device of `kind` in the owner's home.
pub async fn pairing_code(
    base: &str,
    owner: &str,
    home_id: &str,
    kind: &str,
    name: &str,
) -> String {
    // A device of the home's only door (a lock on it, a camera watching it).
    let door = only_door(base, owner, home_id).await;
    let (s, pc) = call(
        "POST",
        format!("{base}/api/v1/homes/{home_id}/pairing-codes"),
        Some(owner),
        Some(json!({"kind": kind, "name": name, "door_id": door})),
    )
    .await;
    assert_eq!(s, 201, "{pc}");
    pc["code"].as_str().unwrap().to_owned()
}

/// One request with the given extra headers, redirects not followed; status,
/// headers and JSON body.
pub async fn request(
    method: &'static str,
    url: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Value>,
) -> (u16, Vec<(String, String)>, Value) {
    tokio::task::spawn_blocking(move || {
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let mut req = agent.request(method, &url);
        for (k, v) in &headers {
            req = req.set(k, v);
        }
        let r = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let resp = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{e}"),
        };
        let status = resp.status();
        let hs = resp
            .headers_names()
            .into_iter()
            .map(|n| {
                let v = resp.header(&n).unwrap_or_default().to_owned();
                (n, v)
            })
            .collect();
        let text = resp.into_string().unwrap_or_default();
        (
            status,
            hs,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    })
    .await
    .unwrap()
}

pub fn header<'a>(hs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    hs.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}
