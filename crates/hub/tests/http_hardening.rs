//! The HTTP surface against another site's page and careless caches, through a real
//! hub: a cookie-authenticated request from a foreign Origin changes nothing, a
//! WebSocket from one is refused, and every answer is JSON, `nosniff`, and (for the
//! API) never cached.

mod support;
use support::*;

use serde_json::{json, Value};
use threshold_hub::HubConfig;
use threshold_store::testing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sites_page_cannot_act_with_the_owners_cookie() {
    let dir = testing::TempDir::new("http-hardening").unwrap();
    let hub = threshold_hub::start(local_config(dir.path()))
        .await
        .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "olga")]).await.remove(0);
    let cookie = format!("threshold_session={owner}");
    let own_origin = base.clone();

    // Creating a home with the cookie: from the hub's own page it works...
    let (s, _, b) = request(
        "POST",
        format!("{base}/api/v1/homes"),
        vec![("Cookie", cookie.clone()), ("Origin", own_origin.clone())],
        Some(json!({"name": "Ours", "lat": 1.0, "lon": 1.0})),
    )
    .await;
    assert_eq!(s, 201, "{b}");
    // ... from another site's page, or one the browser calls cross-site, it does not.
    for extra in [
        ("Origin", "http://evil.example".to_owned()),
        ("Origin", "null".to_owned()),
        ("Sec-Fetch-Site", "cross-site".to_owned()),
    ] {
        let (s, hs, b) = request(
            "POST",
            format!("{base}/api/v1/homes"),
            vec![("Cookie", cookie.clone()), extra.clone()],
            Some(json!({"name": "Theirs", "lat": 1.0, "lon": 1.0})),
        )
        .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (403, Some("cross_origin")),
            "{extra:?}"
        );
        assert_eq!(header(&hs, "content-type"), Some("application/json"));
    }
    let (_, _, homes) = request(
        "GET",
        format!("{base}/api/v1/homes"),
        vec![("Authorization", format!("Bearer {owner}"))],
        None,
    )
    .await;
    assert_eq!(homes.as_array().map(Vec::len), Some(1), "{homes}");

    // The live events socket: not from another site's page.
    let (s, _, b) = request(
        "GET",
        format!("{base}/api/v1/events"),
        vec![
            ("Cookie", cookie.clone()),
            ("Origin", "http://evil.example".to_owned()),
            ("Connection", "Upgrade".to_owned()),
            ("Upgrade", "websocket".to_owned()),
            ("Sec-WebSocket-Version", "13".to_owned()),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".to_owned()),
        ],
        None,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (403, Some("cross_origin"))
    );

    // A sign-in answer (a session token) is never cached, nor sniffed.
    let (s, hs, _) = request(
        "POST",
        format!("{base}/api/v1/auth/login"),
        vec![],
        Some(json!({"username": "olga", "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(header(&hs, "cache-control"), Some("no-store"));
    assert_eq!(header(&hs, "x-content-type-options"), Some("nosniff"));

    // So is a query string that does not parse.
    let (s, hs, b) = request(
        "GET",
        format!("{base}/api/v1/alerts?limit=many"),
        vec![("Authorization", format!("Bearer {owner}"))],
        None,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some("invalid_request")),
        "{b}"
    );
    assert_eq!(header(&hs, "content-type"), Some("application/json"));

    // A method a route does not take is a JSON error too.
    let (s, hs, b) = request("PUT", format!("{base}/api/v1/homes"), vec![], None).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    assert_eq!(header(&hs, "content-type"), Some("application/json"));
    hub.stop().await;
}

/// What the hub creates on disk is its owner's only, and a key others can read is
/// refused at start, naming the file.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_its_secrets_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = testing::TempDir::new("private-data").unwrap();
    let data = dir.path().join("data");
    let cfg = local_config(&data);
    let hub = threshold_hub::start(cfg.clone()).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("threshold.db")), 0o600);
    assert_eq!(mode(&data.join("hub.key")), 0o600);
    hub.stop().await;

    std::fs::set_permissions(data.join("hub.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = threshold_hub::start(cfg).await.unwrap_err();
    let text = format!("{e:#}");
    assert!(
        text.contains("hub.key") && text.contains("chmod 600"),
        "{text}"
    );
}

/// Forty wrong passwords at once are forty attempts: the account's free budget lets
/// ten be checked, the rest are told to slow down, and after that the owner waits a
/// delay that doubles per failure (capped), never a lockout. On the hub's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_guesses_are_all_counted_and_slow_the_account_down() {
    let dir = testing::TempDir::new("login-throttle").unwrap();
    let clock = threshold_hub::clock::ManualClock::new(now_ms());
    let hub = threshold_hub::start_with_clock(local_config(dir.path()), clock.clone())
        .await
        .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    // A common password is refused when the account is made.
    for pw in ["Password123", "qwertyuiop", "aaaaaaaaaa"] {
        let (s, _, b) = request(
            "POST",
            format!("{base}/api/v1/admin/users"),
            vec![("Authorization", format!("Bearer {adm}"))],
            Some(json!({"role": "owner", "username": "ann", "password": pw})),
        )
        .await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (400, Some("weak_password")),
            "{pw}"
        );
    }
    accounts(&base, &adm, &[("owner", "ann")]).await;
    let guesses: Vec<_> = (0..40)
        .map(|i| {
            let url = format!("{base}/api/v1/auth/login");
            tokio::spawn(request(
                "POST",
                url,
                vec![],
                Some(json!({"username": "ann", "password": format!("guess-{i}")})),
            ))
        })
        .collect();
    let mut statuses = Vec::new();
    for g in guesses {
        statuses.push(g.await.unwrap().0);
    }
    let checked = statuses.iter().filter(|&&s| s == 401).count();
    let slowed = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((checked, slowed), (10, 30), "{statuses:?}");

    // Ann herself now waits a second, told so, then gets in.
    let login = || {
        request(
            "POST",
            format!("{base}/api/v1/auth/login"),
            vec![],
            Some(json!({"username": "ann", "password": PASSWORD})),
        )
    };
    let (s, hs, b) = login().await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (429, Some("too_many_attempts"))
    );
    assert_eq!(header(&hs, "retry-after"), Some("1"));
    clock.advance(1_000);
    let (s, _, b) = login().await;
    assert_eq!(s, 200, "{b}");
    hub.stop().await;
}

/// Signing out closes the sockets the session opened, within a second: an event
/// stream does not outlive the session that was checked at its upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_closes_open_sockets() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::Message;
    let dir = testing::TempDir::new("ws-session").unwrap();
    let hub = threshold_hub::start(local_config(dir.path()))
        .await
        .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "olga")]).await.remove(0);
    let mut req = format!("ws://{}/api/v1/events", hub.http_addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {owner}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    // The stream is up (its first ping).
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await;
    assert!(matches!(first, Ok(Some(Ok(Message::Text(_))))), "{first:?}");
    let (s, _) = call(
        "POST",
        format!("{base}/api/v1/auth/logout"),
        Some(&owner),
        None,
    )
    .await;
    assert_eq!(s, 204);
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(m) = ws.next().await {
            if let Ok(Message::Close(Some(f))) = m {
                return Some(f.code);
            }
        }
        None
    })
    .await;
    assert_eq!(closed, Ok(Some(CloseCode::from(4401))));
    hub.stop().await;
}

/// HTTPS only: the API answers over TLS with a certificate from the hub's own CA (and
/// HSTS, and a Secure cookie), a client that does not trust that CA gets nothing,
/// plain HTTP on the TLS port gets no answer, and the redirect port sends browsers to
/// HTTPS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_serves_https_only() {
    use rustls::pki_types::pem::PemObject;
    let dir = testing::TempDir::new("https").unwrap();
    let hub = threshold_hub::start(HubConfig {
        tls: true,
        http_redirect_addr: Some("127.0.0.1:0".parse().unwrap()),
        mqtt_tls_addr: Some("127.0.0.1:0".parse().unwrap()),
        ..local_config(dir.path())
    })
    .await
    .unwrap();
    let base = hub.base_url();
    assert!(base.starts_with("https://"), "{base}");
    let ca = std::fs::read(dir.path().join("tls").join("ca.pem")).unwrap();
    let fingerprint = threshold_hub::tls::fingerprint(
        &rustls::pki_types::CertificateDer::from_pem_slice(&ca).unwrap(),
    );
    assert_eq!(hub.tls_fingerprint.as_deref(), Some(fingerprint.as_str()));
    // A client as a device or a phone that installed the hub's CA: the public roots
    // plus that CA (the agent's own TLS client configuration).
    let ca_file = dir.path().join("tls").join("ca.pem");
    let tls_client = threshold_agent::tls::client_config(Some(&ca_file)).unwrap();
    let trusting = ureq::AgentBuilder::new()
        .tls_config(tls_client.clone())
        .redirects(0)
        .build();
    let adm = admin_over(&hub, &trusting).await;
    let (base2, agent) = (base.clone(), trusting.clone());
    let (status, hsts, cookie, ca_served) = tokio::task::spawn_blocking(move || {
        let r = agent.get(&format!("{base2}/healthz")).call().unwrap();
        let (status, hsts) = (
            r.status(),
            r.header("strict-transport-security").map(str::to_owned),
        );
        let r = agent
            .post(&format!("{base2}/api/v1/auth/login"))
            .send_json(json!({"username": "admin", "password": "admin-password"}))
            .unwrap();
        let cookie = r.header("set-cookie").map(str::to_owned);
        let ca_served = agent
            .get(&format!("{base2}/ca.pem"))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        (status, hsts, cookie, ca_served)
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert!(hsts.is_some_and(|h| h.starts_with("max-age=")));
    assert!(cookie.is_some_and(|c| c.contains("; Secure")));
    assert_eq!(ca_served.as_bytes(), ca.as_slice());
    assert!(!adm.is_empty());

    // Not trusted: the default roots do not know the hub's CA.
    let (b, http_base) = (base.clone(), format!("http://{}", hub.http_addr));
    let redirect = format!("http://{}/courier?x=1", hub.redirect_addr.unwrap());
    let (untrusted, plain, moved) = tokio::task::spawn_blocking(move || {
        let untrusted = ureq::get(&format!("{b}/healthz")).call().is_err();
        let plain = ureq::get(&format!("{http_base}/healthz")).call();
        let moved = ureq::AgentBuilder::new()
            .redirects(0)
            .build()
            .get(&redirect)
            .call();
        (untrusted, plain.is_err(), moved)
    })
    .await
    .unwrap();
    assert!(untrusted, "a client without the hub's CA is refused");
    assert!(plain, "plain HTTP on the HTTPS port gets no answer");
    let moved = match moved {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(moved.status(), 308);
    assert_eq!(
        moved.header("location"),
        Some(format!("https://127.0.0.1:{}/courier?x=1", hub.http_addr.port()).as_str())
    );

    // What an owner or operator pins: the certificate's fingerprint and the audit key.
    let (agent, url, token) = (
        trusting.clone(),
        format!("{base}/api/v1/hub/trust"),
        adm.clone(),
    );
    let pins: Value = tokio::task::spawn_blocking(move || {
        agent
            .get(&url)
            .set("Authorization", &format!("Bearer {token}"))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(pins["tls"]["fingerprint_sha256"], json!(fingerprint));
    assert_eq!(pins["tls"]["ca_url"], "/ca.pem");
    assert_eq!(
        pins["audit_key"],
        json!(hub.state.hub_key.public().to_hex())
    );

    // MQTT over TLS to the device endpoint, with the same certificate and the same
    // rules (an anonymous client is refused with a CONNACK, inside TLS).
    let mqtt_tls = hub.endpoint.as_ref().and_then(|e| e.tls_addr).unwrap();
    let code = mqtt_connect_over_tls(mqtt_tls, tls_client).await;
    assert_eq!(
        code,
        Some(rumqttc::v5::mqttbytes::v5::ConnectReturnCode::BadUserNamePassword)
    );
    hub.stop().await;
}

/// Send an anonymous MQTT 5 CONNECT over TLS (with `config`) and return the CONNACK's
/// code, or `None` if the TLS handshake or the CONNACK failed.
async fn mqtt_connect_over_tls(
    addr: std::net::SocketAddr,
    config: std::sync::Arc<rustls::ClientConfig>,
) -> Option<rumqttc::v5::mqttbytes::v5::ConnectReturnCode> {
    use futures_util::{SinkExt, StreamExt};
    use rumqttc::v5::mqttbytes::v5::{Codec, Connect, Packet};
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .ok()?;
    let mut wire = tokio_util::codec::Framed::new(
        tls,
        Codec {
            max_incoming_size: Some(1 << 16),
            max_outgoing_size: None,
        },
    );
    let connect = Connect {
        keep_alive: 30,
        client_id: "anonymous".into(),
        clean_start: true,
        properties: None,
    };
    wire.send(Packet::Connect(connect, None, None)).await.ok()?;
    match tokio::time::timeout(std::time::Duration::from_secs(10), wire.next()).await {
        Ok(Some(Ok(Packet::ConnAck(a)))) => Some(a.code),
        _ => None,
    }
}

/// The administrator of [`admin`], signed in over `agent` (HTTPS).
async fn admin_over(hub: &threshold_hub::Hub, agent: &ureq::Agent) -> String {
    let hash = threshold_hub::auth::hash_password("admin-password").unwrap();
    hub.state
        .store
        .create_user(threshold_store::Role::Admin, "admin", "Admin", &hash, 0)
        .await
        .unwrap();
    let (agent, base) = (agent.clone(), hub.base_url());
    tokio::task::spawn_blocking(move || {
        let r: Value = agent
            .post(&format!("{base}/api/v1/auth/login"))
            .send_json(json!({"username": "admin", "password": "admin-password"}))
            .unwrap()
            .into_json()
            .unwrap();
        r["token"].as_str().unwrap().to_owned()
    })
    .await
    .unwrap()
}

/// An administrator takes access away: a revoked API key and a disabled account stop
/// working at once (their sessions with them), and a disabled account cannot sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_keys_and_disabled_accounts_stop_working() {
    let dir = testing::TempDir::new("revoke-access").unwrap();
    let hub = threshold_hub::start(local_config(dir.path()))
        .await
        .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    let t = accounts(&base, &adm, &[("dispatcher", "dina"), ("owner", "olga")]).await;
    let me = |token: String| {
        let base = base.clone();
        async move {
            call("GET", format!("{base}/api/v1/me"), Some(&token), None)
                .await
                .0
        }
    };
    let (_, dina) = call("GET", format!("{base}/api/v1/me"), Some(&t[0]), None).await;
    let dina_id = dina["id"].as_str().unwrap().to_owned();
    let (s, k) = call(
        "POST",
        format!("{base}/api/v1/admin/users/{dina_id}/api-keys"),
        Some(&adm),
        None,
    )
    .await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_owned();
    assert_eq!(me(key.clone()).await, 200);
    let (_, list) = call(
        "GET",
        format!("{base}/api/v1/admin/users/{dina_id}/api-keys"),
        Some(&adm),
        None,
    )
    .await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert!(list[0].get("key").is_none(), "keys are never shown again");
    let (s, _) = call(
        "DELETE",
        format!(
            "{base}/api/v1/admin/users/{dina_id}/api-keys/{}",
            k["id"].as_str().unwrap()
        ),
        Some(&adm),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(me(key).await, 401);
    assert_eq!(me(t[0].clone()).await, 200, "her session is untouched");

    let (_, olga) = call("GET", format!("{base}/api/v1/me"), Some(&t[1]), None).await;
    let olga_id = olga["id"].as_str().unwrap().to_owned();
    let (s, _) = call(
        "POST",
        format!("{base}/api/v1/admin/users/{olga_id}/disable"),
        Some(&adm),
        None,
    )
    .await;
    assert_eq!(s, 204);
    assert_eq!(me(t[1].clone()).await, 401, "her session ended");
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/auth/login"),
        None,
        Some(json!({"username": "olga", "password": PASSWORD})),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some("bad_credentials"))
    );
    let (_, me_admin) = call("GET", format!("{base}/api/v1/me"), Some(&adm), None).await;
    let (s, b) = call(
        "POST",
        format!(
            "{base}/api/v1/admin/users/{}/disable",
            me_admin["id"].as_str().unwrap()
        ),
        Some(&adm),
        None,
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (409, Some("cannot_disable_self"))
    );
    hub.stop().await;
}

/// `/metrics` speaks what the scraper asks for: OpenMetrics (Prometheus 2 asks for it
/// first) or the Prometheus text format 0.0.4 (`Accept: text/plain`), each with the
/// standard `process_*` metrics and the hub's build info.
#[tokio::test]
async fn metrics_answer_in_the_format_asked_for() {
    let dir = testing::TempDir::new("metrics-formats").unwrap();
    let hub = threshold_hub::start(local_config(dir.path()))
        .await
        .unwrap();
    let url = format!("http://{}/metrics", hub.http_addr);
    let get = |accept: &'static str| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            let r = ureq::get(&url).set("Accept", accept).call().unwrap();
            let ct = r.header("content-type").unwrap_or("").to_owned();
            (ct, r.into_string().unwrap())
        })
    };
    let (ct, om) = get("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
        .await
        .unwrap();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(om.ends_with("# EOF\n"));
    assert!(om.contains("# TYPE threshold_messages_accepted counter\n"));
    let (ct, prom) = get("text/plain;version=0.0.4").await.unwrap();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    assert!(!prom.contains("# EOF") && !prom.contains("_created"));
    assert!(prom.contains("# TYPE threshold_messages_accepted_total counter\n"));
    assert!(prom.contains("# TYPE threshold_build_info gauge\n"));
    for text in [&om, &prom] {
        for family in [
            "process_cpu_seconds_total ",
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(family)),
                "{family} missing"
            );
        }
        let version = format!(
            "threshold_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.contains(&version), "{version} missing");
    }
    hub.stop().await;
}

/// A home's postal address: given at creation or in the settings, shown back, refused
/// when it is not an address (too long, too many lines, control characters).
#[tokio::test]
async fn a_home_address_is_kept_and_bad_ones_refused() {
    let dir = testing::TempDir::new("home-address").unwrap();
    let hub = threshold_hub::start(local_config(dir.path()))
        .await
        .unwrap();
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "oona")]).await.remove(0);
    for bad in ["a\nb\nc\nd\ne\nf", &"x".repeat(301), "bell\u{7}"] {
        let (s, b) = call(
            "POST",
            format!("{base}/api/v1/homes"),
            Some(&owner),
            Some(json!({"name": "H", "lat": 0.0, "lon": 0.0, "address": bad})),
        )
        .await;
        assert_eq!(
            (s, b["error"]["code"].clone()),
            (400, json!("invalid_field")),
            "{b}"
        );
    }
    let (s, h) = call(
        "POST",
        format!("{base}/api/v1/homes"),
        Some(&owner),
        Some(json!({"name": "H", "lat": 0.0, "lon": 0.0, "address": " 1 Main St\nTown "})),
    )
    .await;
    assert_eq!(
        (s, h["address"].clone()),
        (201, json!("1 Main St\nTown")),
        "{h}"
    );
    let id = h["id"].as_str().unwrap();
    let (s, h) = call(
        "PUT",
        format!("{base}/api/v1/homes/{id}/settings"),
        Some(&owner),
        Some(json!({"in_home_enabled": true, "address": "2 Side St"})),
    )
    .await;
    assert_eq!((s, h["address"].clone()), (200, json!("2 Side St")), "{h}");
    hub.stop().await;
}
