//! A real hub behind a reverse proxy (issue 15), the proxy played by this test on
//! 127.0.0.1: with `trusted_proxies` listing it, the hub believes its
//! `X-Forwarded-For`, `-Proto` and `-Host`, so clients behind it are throttled each on
//! their own, a client on HTTPS at the proxy gets a `Secure` cookie and HSTS, and the
//! origin check compares with the host the browser asked for. Without the setting,
//! or from a peer not listed, the same headers change nothing. The hub's clock is a
//! manual one: throttle delays do not run out while a test runs.

mod support;
use support::*;

use serde_json::json;
use threshold_hub::clock::ManualClock;
use threshold_hub::HubConfig;
use threshold_store::testing;

/// A hub on a manual clock with these `trusted_proxies`.
async fn hub_with(dir: &testing::TempDir, proxies: &[&str]) -> threshold_hub::Hub {
    threshold_hub::start_with_clock(
        HubConfig {
            trusted_proxies: proxies.iter().map(|s| (*s).to_owned()).collect(),
            ..local_config(dir.path())
        },
        ManualClock::new(now_ms()),
    )
    .await
    .unwrap()
}

/// A wrong password for a made-up account (so only the source's count grows), sent
/// with `X-Forwarded-For: xff`; the status.
async fn wrong_password(base: &str, account: &str, xff: &str) -> u16 {
    request(
        "POST",
        format!("{base}/api/v1/auth/login"),
        vec![("X-Forwarded-For", xff.to_owned())],
        Some(json!({"username": account, "password": "not-the-password"})),
    )
    .await
    .0
}

/// The free failures of one source address (`auth::throttle::Limits::SOURCE`).
const SOURCE_FREE: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_behind_a_trusted_proxy_are_throttled_each_on_their_own() {
    let dir = testing::TempDir::new("proxy-throttle").unwrap();
    let hub = hub_with(&dir, &["127.0.0.1/32"]).await;
    let base = format!("http://{}", hub.http_addr);
    // Client A uses up its source's free failures, across accounts.
    for i in 0..SOURCE_FREE {
        let s = wrong_password(&base, &format!("ghost-{i}"), "198.51.100.1").await;
        assert_eq!(s, 401, "attempt {i}");
    }
    // A is slowed down now, also when it writes a made-up address of its own in
    // front of the one the proxy appended (the walk starts from the right).
    assert_eq!(wrong_password(&base, "ghost-a", "198.51.100.1").await, 429);
    assert_eq!(
        wrong_password(&base, "ghost-b", "203.0.113.66, 198.51.100.1").await,
        429
    );
    // Client B, behind the same proxy, is not.
    assert_eq!(wrong_password(&base, "ghost-c", "198.51.100.2").await, 401);
    assert_eq!(
        wrong_password(&base, "ghost-d", "2001:db8::2, 127.0.0.1").await,
        401,
        "a trusted hop is skipped"
    );
    // The audit log names the client, not the proxy.
    let entries = hub.state.store.audit_page(0, 1000).await.unwrap();
    let failed: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == "login.failed")
        .map(|e| e.detail.as_str())
        .collect();
    assert!(
        failed
            .iter()
            .any(|d| d.contains("\"from\":\"198.51.100.1\"")),
        "{failed:?}"
    );
    assert!(
        failed
            .iter()
            .any(|d| d.contains("\"from\":\"2001:db8::2\"")),
        "{failed:?}"
    );
    assert!(
        !failed.iter().any(|d| d.contains("127.0.0.1")),
        "{failed:?}"
    );
    hub.stop().await;
}

/// `X-Forwarded-For` from a peer that is not a listed proxy (or with no proxy
/// listed) is ignored: a client that changes it on every guess is still one source.
async fn spoofed_addresses_are_one_source(proxies: &[&str]) {
    let dir = testing::TempDir::new("proxy-spoof").unwrap();
    let hub = hub_with(&dir, proxies).await;
    let base = format!("http://{}", hub.http_addr);
    for i in 0..SOURCE_FREE {
        let s = wrong_password(&base, &format!("ghost-{i}"), &format!("198.51.100.{i}")).await;
        assert_eq!(s, 401, "attempt {i}");
    }
    assert_eq!(
        wrong_password(&base, "ghost-x", "192.0.2.200").await,
        429,
        "a new X-Forwarded-For is not a new source ({proxies:?})"
    );
    let entries = hub.state.store.audit_page(0, 1000).await.unwrap();
    assert!(entries
        .iter()
        .filter(|e| e.kind == "login.failed")
        .all(|e| e.detail.contains("\"from\":\"127.0.0.1\"")));
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_not_listed_cannot_choose_its_address() {
    spoofed_addresses_are_one_source(&["10.0.0.0/8", "fd00::/8"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    spoofed_addresses_are_one_source(&[]).await;
}

/// Sign in as `admin` with these extra headers: the Set-Cookie and HSTS headers.
async fn sign_in(
    base: &str,
    extra: Vec<(&'static str, String)>,
) -> (Option<String>, Option<String>) {
    let (s, hs, b) = request(
        "POST",
        format!("{base}/api/v1/auth/login"),
        extra,
        Some(json!({"username": "admin", "password": "admin-password"})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    (
        header(&hs, "set-cookie").map(str::to_owned),
        header(&hs, "strict-transport-security").map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_at_a_trusted_proxy_means_a_secure_cookie_and_hsts() {
    let https = || vec![("X-Forwarded-Proto", "https".to_owned())];
    // Behind the listed proxy.
    let dir = testing::TempDir::new("proxy-https").unwrap();
    let hub = hub_with(&dir, &["127.0.0.1"]).await;
    let base = format!("http://{}", hub.http_addr);
    admin(&hub).await;
    let (cookie, hsts) = sign_in(&base, https()).await;
    assert!(
        cookie.as_deref().is_some_and(|c| c.contains("; Secure")),
        "{cookie:?}"
    );
    assert!(
        hsts.as_deref().is_some_and(|h| h.starts_with("max-age=")),
        "{hsts:?}"
    );
    // Every answer to that client, not only the sign-in.
    let (_, hs, _) = request("GET", format!("{base}/healthz"), https(), None).await;
    assert!(header(&hs, "strict-transport-security").is_some());
    // Plain HTTP at the proxy: neither.
    let (cookie, hsts) = sign_in(&base, vec![("X-Forwarded-Proto", "http".to_owned())]).await;
    assert!(
        cookie.as_deref().is_some_and(|c| !c.contains("Secure")),
        "{cookie:?}"
    );
    assert_eq!(hsts, None);
    hub.stop().await;

    // The same header from a peer not listed: plain HTTP, as it is.
    let dir = testing::TempDir::new("proxy-https-spoof").unwrap();
    let hub = hub_with(&dir, &["10.0.0.0/8"]).await;
    let base = format!("http://{}", hub.http_addr);
    admin(&hub).await;
    let (cookie, hsts) = sign_in(&base, https()).await;
    assert!(
        cookie.as_deref().is_some_and(|c| !c.contains("Secure")),
        "{cookie:?}"
    );
    assert_eq!(hsts, None);
    hub.stop().await;
}

/// Behind a proxy that sends its upstream address as `Host` and the browser's host as
/// `X-Forwarded-Host`, the hub's own pages may act and open sockets, and another
/// site's still may not; from a peer not listed, `X-Forwarded-Host` counts for
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_check_compares_with_the_host_the_browser_asked_the_proxy_for() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let public = "https://hub.example.org";
    let forwarded = |origin: &str| {
        vec![
            ("Origin", origin.to_owned()),
            ("X-Forwarded-Host", "hub.example.org".to_owned()),
            ("X-Forwarded-Proto", "https".to_owned()),
            ("X-Forwarded-For", "198.51.100.1".to_owned()),
        ]
    };
    let create_home = |base: String, token: String, headers: Vec<(&'static str, String)>| async move {
        let mut h = headers;
        h.push(("Cookie", format!("threshold_session={token}")));
        let (s, _, b) = request(
            "POST",
            format!("{base}/api/v1/homes"),
            h,
            Some(json!({"name": "Home", "lat": 1.0, "lon": 1.0})),
        )
        .await;
        (s, b["error"]["code"].as_str().map(str::to_owned))
    };
    let socket = |addr: std::net::SocketAddr,
                  token: String,
                  headers: Vec<(&'static str, String)>| async move {
        let mut req = format!("ws://{addr}/api/v1/events")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Authorization", format!("Bearer {token}").parse().unwrap());
        for (k, v) in headers {
            req.headers_mut().insert(k, v.parse().unwrap());
        }
        match tokio_tungstenite::connect_async(req).await {
            Ok(_) => 101,
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => r.status().as_u16(),
            Err(e) => panic!("{e}"),
        }
    };

    let dir = testing::TempDir::new("proxy-origin").unwrap();
    let hub = hub_with(&dir, &["127.0.0.1"]).await;
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "olga")]).await.remove(0);
    assert_eq!(
        create_home(base.clone(), owner.clone(), forwarded(public)).await,
        (201, None)
    );
    assert_eq!(
        create_home(
            base.clone(),
            owner.clone(),
            forwarded("https://evil.example")
        )
        .await,
        (403, Some("cross_origin".into()))
    );
    // Without X-Forwarded-Host the Host (the proxy's upstream address) is compared.
    let no_host = vec![("Origin", public.to_owned())];
    assert_eq!(
        create_home(base.clone(), owner.clone(), no_host.clone()).await,
        (403, Some("cross_origin".into()))
    );
    assert_eq!(
        socket(hub.http_addr, owner.clone(), forwarded(public)).await,
        101
    );
    assert_eq!(
        socket(
            hub.http_addr,
            owner.clone(),
            forwarded("https://evil.example")
        )
        .await,
        403
    );
    hub.stop().await;

    // A peer not listed: its X-Forwarded-Host is not read.
    let dir = testing::TempDir::new("proxy-origin-spoof").unwrap();
    let hub = hub_with(&dir, &["10.0.0.0/8"]).await;
    let base = format!("http://{}", hub.http_addr);
    let adm = admin(&hub).await;
    let owner = accounts(&base, &adm, &[("owner", "olga")]).await.remove(0);
    assert_eq!(
        create_home(base.clone(), owner.clone(), forwarded(public)).await,
        (403, Some("cross_origin".into()))
    );
    assert_eq!(
        socket(hub.http_addr, owner.clone(), forwarded(public)).await,
        403
    );
    // Its own address still works, as for any direct client.
    assert_eq!(
        create_home(base.clone(), owner.clone(), vec![("Origin", base.clone())]).await,
        (201, None)
    );
    hub.stop().await;
}

/// A hub serving TLS with its plain-HTTP redirect port: a trusted proxy that already
/// speaks HTTPS to its client and was pointed at the redirect port is told so (421),
/// not redirected round again; a browser on plain HTTP is still redirected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redirect_port_does_not_send_a_proxy_round_again() {
    let dir = testing::TempDir::new("proxy-redirect").unwrap();
    let hub = threshold_hub::start_with_clock(
        HubConfig {
            tls: true,
            http_redirect_addr: Some("127.0.0.1:0".parse().unwrap()),
            trusted_proxies: vec!["127.0.0.1".into()],
            ..local_config(dir.path())
        },
        ManualClock::new(now_ms()),
    )
    .await
    .unwrap();
    let url = format!("http://{}/courier", hub.redirect_addr.unwrap());
    let (s, _, b) = request(
        "GET",
        url.clone(),
        vec![("X-Forwarded-Proto", "https".to_owned())],
        None,
    )
    .await;
    assert_eq!((s, b["error"]["code"].as_str()), (421, Some("misdirected")));
    let (s, hs, _) = request("GET", url, vec![], None).await;
    assert_eq!(s, 308);
    assert!(header(&hs, "location").is_some_and(|l| l.starts_with("https://")));
    hub.stop().await;
}
