//! The real binary: `threshold audit export --home` writes one home's record that
//! `threshold audit verify --export --home` checks with the pinned key and that shows
//! nothing of other homes; `threshold serve --audit-witness FILE` hands every signed
//! checkpoint to a witness, and `threshold audit verify --witness` catches a history
//! rewritten and signed again with the hub's own key, which the key alone cannot; a
//! witness URL that fails is counted and logged without its secret; `GET /trust` over
//! HTTPS shows the fingerprint the hub printed and a QR code of its own address.

#[path = "../../hub/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};
use support::process::{after, Running};
use support::{call, call_raw, login, until, PASSWORD};

const BIN: &str = env!("CARGO_BIN_EXE_threshold");

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `threshold serve` on ports 0 with `extra` flags and a config file of `toml`, once it
/// printed `ready`; the running hub and its base URL.
fn serve_until(
    dir: &std::path::Path,
    toml: &str,
    extra: &[&str],
    ready: &str,
) -> (Running, String) {
    let conf = dir.join("hub.toml");
    std::fs::write(&conf, toml).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"])
        .arg(&conf)
        .arg("--data-dir")
        .arg(dir)
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--embedded-mqtt-addr",
            "127.0.0.1:0",
        ])
        .args(extra);
    let hub = Running::until_printed(cmd, ready);
    let line = hub.line("listening on http").to_owned();
    let scheme = if line.contains("https://") {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{}", after(&line, "://"));
    (hub, base)
}

fn serve_with(dir: &std::path::Path, toml: &str, extra: &[&str]) -> (Running, String) {
    serve_until(dir, toml, extra, "listening on http")
}

fn d(dir: &std::path::Path) -> &str {
    dir.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_export_verifies_alone_and_shows_no_other_home() {
    let dir = tempfile::tempdir().unwrap();
    support::process::user_add(BIN, dir.path(), "admin", "root", PASSWORD);
    let (mut hub, base) = serve_with(dir.path(), "audit_checkpoint_every = 2\n", &[]);
    let root = login(&base, "root", PASSWORD).await;
    let tokens = support::accounts(&base, &root, &[("owner", "olga"), ("owner", "boris")]).await;
    let a = support::home(&base, &tokens[0], "Olga's flat", 1.0, 1.0).await;
    let b = support::home(&base, &tokens[1], "Boris's house", 2.0, 2.0).await;
    let (s, _) = call(
        "PUT",
        format!("{base}/api/v1/homes/{b}/settings"),
        Some(&tokens[1]),
        Some(serde_json::json!({"in_home_enabled": true})),
    )
    .await;
    assert_eq!(s, 200);
    // The same file from the owner's download and from the command line.
    let (s, download, _) = call_raw(
        "GET",
        format!("{base}/api/v1/homes/{a}/audit/export"),
        Some(&tokens[0]),
        None,
    )
    .await;
    assert_eq!(s, 200);
    assert!(hub.interrupt().success());

    let key = String::from_utf8(run(&["audit", "key", "--data-dir", d(dir.path())]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("olga.jsonl");
    let exported = run(&[
        "audit",
        "export",
        "--data-dir",
        d(dir.path()),
        "--home",
        &a,
        "--out",
        d(&file),
    ]);
    assert!(exported.status.success(), "{}", out(&exported));
    assert!(
        out(&exported).contains(&format!("wrote home {a}'s 2 entries")),
        "{}",
        out(&exported)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    for secret in [b.as_str(), "Boris", "in_home_enabled"] {
        assert!(
            !text.contains(secret),
            "{secret} in home A's export:\n{text}"
        );
    }
    let downloaded = scratch.path().join("download.jsonl");
    std::fs::write(&downloaded, download).unwrap();
    for f in [&file, &downloaded] {
        let ok = run(&[
            "audit",
            "verify",
            "--key",
            &key,
            "--export",
            d(f),
            "--home",
            &a,
        ]);
        assert!(ok.status.success(), "{}", out(&ok));
        assert!(
            out(&ok).contains(&format!(
                "audit log intact for home {a} (2 of its entries in full"
            )),
            "{}",
            out(&ok)
        );
    }
    // Passed off as home B's record: refused.
    let wrong = run(&[
        "audit",
        "verify",
        "--key",
        &key,
        "--export",
        d(&file),
        "--home",
        &b,
    ]);
    assert!(!wrong.status.success());
    assert!(
        out(&wrong).contains("the export is home"),
        "{}",
        out(&wrong)
    );
    // An unknown home is named, not taken for an empty record.
    let none = run(&[
        "audit",
        "export",
        "--data-dir",
        d(dir.path()),
        "--home",
        "00000000000000000000000000000000",
        "--out",
        d(&scratch.path().join("none.jsonl")),
    ]);
    assert!(!none.status.success());
    assert!(out(&none).contains("no such home"), "{}", out(&none));
    assert!(!scratch.path().join("none.jsonl").exists());
}

/// Rewrite entry 2 and everything after it, and sign every checkpoint again with
/// `key`, as someone holding that key would.
async fn rewrite(dir: &std::path::Path, key: &threshold_proto::DeviceKey) {
    let url = format!("sqlite://{}?mode=rw", dir.join("threshold.db").display());
    let store = threshold_store::Store::connect(&url).await.unwrap();
    let sign = |seq: u64, hash: &[u8; 32], t: i64| {
        let sig = key.sign(&threshold_core::audit::checkpoint_message(seq, hash, t));
        (key.public().to_hex(), hex::encode(sig))
    };
    store
        .rewrite_audit_for_tests(2, "{\"forged\":true}", &sign)
        .await
        .unwrap();
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_witness_catches_a_history_resigned_with_the_hub_key() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let witness = scratch.path().join("witness.jsonl");
    support::process::user_add(BIN, dir.path(), "admin", "root", PASSWORD);
    let (mut hub, base) = serve_with(
        dir.path(),
        "audit_checkpoint_every = 1\n",
        &["--audit-witness", d(&witness)],
    );
    for _ in 0..3 {
        login(&base, "root", PASSWORD).await;
    }
    // Three sign-ins, three signed checkpoints, each appended once on disk.
    until(20, "the witness holds three checkpoints", || {
        let w = witness.clone();
        async move {
            std::fs::read_to_string(&w)
                .map(|t| t.lines().count() == 3)
                .unwrap_or(false)
        }
    })
    .await;
    // Counted once written (the count follows the append, so wait for it too).
    until(10, "three checkpoints counted as sent", || {
        let url = format!("{base}/metrics");
        async move {
            let (_, metrics, _) = call_raw("GET", url, None, None).await;
            String::from_utf8_lossy(&metrics).contains("threshold_audit_witness_sent_total 3")
        }
    })
    .await;
    assert!(hub.interrupt().success());

    let key = String::from_utf8(run(&["audit", "key", "--data-dir", d(dir.path())]).stdout)
        .unwrap()
        .trim()
        .to_owned();
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            "--data-dir",
            d(dir.path()),
            "--key",
            &key,
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    let ok = verify(&["--witness", d(&witness)]);
    assert!(ok.status.success(), "{}", out(&ok));
    assert!(
        out(&ok).contains("all 3 checkpoints the witness saw match"),
        "{}",
        out(&ok)
    );

    // Someone with the hub's key rewrites entry 2 and signs everything again: the key
    // alone cannot tell...
    let hub_key = threshold_hub::hubkey::load_or_create(&dir.path().join("hub.key")).unwrap();
    rewrite(dir.path(), &hub_key).await;
    let fooled = verify(&[]);
    assert!(fooled.status.success(), "{}", out(&fooled));
    assert!(out(&fooled).contains("intact"));
    // ... the witness can, in the database and in an export.
    let caught = verify(&["--witness", d(&witness)]);
    assert_eq!(caught.status.code(), Some(1), "{}", out(&caught));
    assert!(
        out(&caught).contains("checkpoint at entry 2 (witness line 2)")
            && out(&caught).contains("rewritten after the witness saw it"),
        "{}",
        out(&caught)
    );
    let export = scratch.path().join("all.jsonl");
    let e = run(&[
        "audit",
        "export",
        "--data-dir",
        d(dir.path()),
        "--out",
        d(&export),
    ]);
    assert!(e.status.success(), "{}", out(&e));
    let caught = run(&[
        "audit",
        "verify",
        "--key",
        &key,
        "--export",
        d(&export),
        "--witness",
        d(&witness),
    ]);
    assert_eq!(caught.status.code(), Some(1), "{}", out(&caught));
    assert!(
        out(&caught).contains("checkpoint at entry 2"),
        "{}",
        out(&caught)
    );

    // Signed with a new key instead: nothing passes.
    let other = threshold_proto::DeviceKey::generate().unwrap();
    rewrite(dir.path(), &other).await;
    for extra in [&[][..], &["--witness", d(&witness)][..]] {
        let bad = verify(extra);
        assert_eq!(bad.status.code(), Some(1), "{}", out(&bad));
        assert!(out(&bad).contains("another key"), "{}", out(&bad));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_witness_url_is_counted_and_logged_without_its_secret() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    support::process::user_add(BIN, dir.path(), "admin", "root", PASSWORD);
    let log = dir.path().join("stderr.log");
    let conf = dir.path().join("hub.toml");
    std::fs::write(&conf, "audit_checkpoint_every = 1\n").unwrap();
    // Nothing listens on the discard port of this machine: every attempt fails.
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&conf)
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--embedded-mqtt-addr",
            "127.0.0.1:0",
            "--audit-witness",
            "https://witness-user:pw-4711@127.0.0.1:9/cp?token=witness-secret-4711",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let base = format!("http://{}", after(&first, "listening on http://"));
    login(&base, "root", PASSWORD).await;
    until(20, "a failed witness attempt in the log", || {
        let log = log.clone();
        async move {
            std::fs::read_to_string(&log)
                .is_ok_and(|t| t.contains("audit witness did not take a checkpoint"))
        }
    })
    .await;
    let (_, metrics, _) = call_raw("GET", format!("{base}/metrics"), None, None).await;
    assert!(
        String::from_utf8_lossy(&metrics)
            .contains("threshold_audit_witness_failures_total{reason=\"attempt\"}"),
        "{}",
        String::from_utf8_lossy(&metrics)
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.contains("https://127.0.0.1:9/cp"), "{text}");
    for secret in ["witness-secret-4711", "pw-4711", "witness-user"] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
}

/// The dark modules of the trust page's QR code (one `M{x} {y}h1v1h-1z` per module),
/// drawn four pixels a module and read back.
fn decode_qr(svg: &str) -> String {
    let size: usize = svg
        .split("viewBox=\"0 0 ")
        .nth(1)
        .and_then(|v| v.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("an SVG with a square viewBox");
    let path = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let mut dark = vec![false; size * size];
    for m in path.split('M').filter(|m| !m.is_empty()) {
        let (x, y) = m.trim_end_matches("h1v1h-1z").split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        dark[y * size + x] = true;
    }
    let px = size * 4;
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(px, px, |x, y| {
        if dark[(y / 4) * size + x / 4] {
            0
        } else {
            255
        }
    });
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().expect("a readable QR code").1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trust_page_shows_the_printed_fingerprint_and_its_address_as_a_qr_code() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let (mut hub, base) = serve_until(
        dir.path(),
        "",
        &["--tls", "--tls-name", "hub.example.test"],
        "TLS certificate fingerprint",
    );
    assert!(base.starts_with("https://"), "{base}");
    let fp = after(
        hub.line("fingerprint (SHA-256): "),
        "fingerprint (SHA-256): ",
    )
    .to_owned();
    support::trust_ca(&dir.path().join("tls").join("ca.pem"));
    let (s, page, ct) = call_raw("GET", format!("{base}/trust"), None, None).await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/html"), "{ct}");
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains(&format!("data-fingerprint=\"{fp}\"")),
        "{fp} not on the page:\n{page}"
    );
    // The phone's address: the hub's network name, on its HTTPS port.
    let port = base.rsplit(':').next().unwrap();
    let svg = &page[page.find("<svg").unwrap()..page.find("</svg>").unwrap() + 6];
    assert_eq!(
        decode_qr(svg),
        format!("https://hub.example.test:{port}/trust")
    );
    // The certificate it links to is the one with that fingerprint.
    let (s, der, ct) = call_raw("GET", format!("{base}/ca.crt"), None, None).await;
    assert_eq!((s, ct.as_str()), (200, "application/x-x509-ca-cert"));
    let hex_fp: String = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    assert_eq!(hex_fp, fp);
    assert!(hub.interrupt().success());
}
