//! The real binary: `threshold demo` starts, serves live devices and stops cleanly on
//! Ctrl-C, twice on the same data folder; `threshold serve` + `threshold user add` +
//! `threshold audit verify` detect a tampered audit log; `threshold door` works an
//! owner's doors through the API under the entry rule. Every process runs on ports 0
//! and is read back; the shared harness is `crates/hub/tests/support`.

#[path = "../../hub/tests/support/mod.rs"]
mod support;

use serde_json::Value;
use std::process::Command;
use support::process::{after, serve, user_add, Running};
use support::{call, eventually, login};

const BIN: &str = env!("CARGO_BIN_EXE_threshold");

async fn get(url: String, token: &str) -> Value {
    let (s, v) = call("GET", url, Some(token), None).await;
    assert_eq!(s, 200, "{v}");
    v
}

/// The password the demo printed for `user` (random, made for its data folder).
fn password(demo: &Running, user: &str) -> String {
    let marker = format!("login {user} / ");
    after(demo.line(&marker), &marker).to_owned()
}

/// Start the demo on `dir` (ports 0) and return it with its base URL once it printed
/// its banner.
fn start_demo(dir: &std::path::Path) -> (Running, String) {
    start_demo_with(dir, &[])
}

fn start_demo_with(dir: &std::path::Path, extra: &[&str]) -> (Running, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["demo", "--data-dir"]).arg(dir).args([
        "--http-addr",
        "127.0.0.1:0",
        "--mqtt-addr",
        "127.0.0.1:0",
    ]);
    cmd.args(extra);
    let demo = Running::until_printed(cmd, "Ctrl-C stops");
    let base = after(demo.line("Owner app"), "Owner app     ")
        .trim_end_matches('/')
        .to_owned();
    (demo, base)
}

/// The demo home's id once its five simulated devices are live (front door: camera,
/// lock, contact; garage: camera, opener).
async fn live_demo_home(base: &str, owner: &str) -> String {
    let homes = get(format!("{base}/api/v1/homes"), owner).await;
    assert_eq!(
        homes.as_array().map(|h| h.len()),
        Some(1),
        "one home: {homes}"
    );
    let home = homes[0]["id"].as_str().unwrap().to_owned();
    eventually(30, "the demo's devices live", || {
        let url = format!("{base}/api/v1/homes/{home}/devices");
        async move {
            let d = get(url, owner).await;
            d.as_array()
                .is_some_and(|a| a.len() == 5 && a.iter().all(|x| x["liveness"] == "live"))
                .then_some(())
        }
    })
    .await;
    home
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_stops_cleanly_and_reruns_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut owner_passwords = Vec::new();
    for round in 0..3 {
        if round == 2 {
            // A folder whose logins file is gone (as from a demo that used fixed
            // passwords): its accounts take new random ones.
            std::fs::remove_file(dir.path().join("demo-logins.json")).unwrap();
        }
        let (mut demo, base) = start_demo(dir.path());
        let text = demo.printed.join("\n");
        assert!(text.contains("login owner / "), "{text}");
        assert!(text.contains("/courier/"), "{text}");
        owner_passwords.push(password(&demo, "owner"));
        if round == 2 {
            let (s, _) = call(
                "POST",
                format!("{base}/api/v1/auth/login"),
                None,
                Some(serde_json::json!({"username": "owner", "password": owner_passwords[0]})),
            )
            .await;
            assert_eq!(
                s, 401,
                "the folder's old password no longer opens the owner's account"
            );
        }
        let owner = login(&base, "owner", &password(&demo, "owner")).await;
        live_demo_home(&base, &owner).await;
        let courier = login(&base, "courier", &password(&demo, "courier")).await;
        let deliveries = get(format!("{base}/api/v1/deliveries"), &courier).await;
        assert!(
            deliveries
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x["state"] == "scheduled")),
            "{deliveries}"
        );
        let status = demo.interrupt();
        assert!(status.success(), "round {round}: demo exited with {status}");
    }
    assert_eq!(
        owner_passwords[0], owner_passwords[1],
        "kept with the folder"
    );
    assert_ne!(
        owner_passwords[1], owner_passwords[2],
        "made anew with a new file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_the_first_broken_link() {
    let dir = tempfile::tempdir().unwrap();
    user_add(BIN, dir.path(), "admin", "root", "a-long-password");
    let (mut hub, base, _) = serve(BIN, dir.path());
    for _ in 0..3 {
        login(&base, "root", "a-long-password").await;
    }
    let (s, bad) = call(
        "POST",
        format!("{base}/api/v1/auth/login"),
        None,
        Some(serde_json::json!({"username": "root", "password": "nope-nope"})),
    )
    .await;
    assert_eq!(
        (s, bad["error"]["code"].as_str()),
        (401, Some("bad_credentials"))
    );
    assert!(hub.interrupt().success());

    let verify = |dir: &std::path::Path| {
        Command::new(BIN)
            .args(["audit", "verify", "--data-dir"])
            .arg(dir)
            .output()
            .unwrap()
    };
    let ok = verify(dir.path());
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact"));

    // Tamper with entry 2 behind the hub's back.
    let url = format!(
        "sqlite://{}?mode=rw",
        dir.path().join("threshold.db").display()
    );
    let store = threshold_store::Store::connect(&url).await.unwrap();
    store
        .tamper_audit_detail_for_tests(2, "{\"forged\":true}")
        .await
        .unwrap();
    store.close().await;
    let broken = verify(dir.path());
    assert_eq!(broken.status.code(), Some(1));
    let text = String::from_utf8_lossy(&broken.stdout);
    assert!(text.contains("entry 2"), "{text}");
}

/// `threshold door` with the owner's token in THRESHOLD_TOKEN; answers its exit
/// status, stdout and stderr.
fn door(base: &str, token: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["door", "--hub", base])
        .args(args)
        .env("THRESHOLD_TOKEN", token)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn door_cli_adds_binds_and_unlocks_under_the_entry_rule() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, base) = start_demo(dir.path());
    let owner = login(&base, "owner", &password(&demo, "owner")).await;
    let home = live_demo_home(&base, &owner).await;

    // No token: a clear error, nothing done.
    let out = Command::new(BIN)
        .args(["door", "--hub", &base, "list"])
        .env_remove("THRESHOLD_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("THRESHOLD_TOKEN"));

    let (ok, text, err) = door(&base, &owner, &["list"]);
    assert!(ok, "{err}");
    assert!(
        text.contains("Front door") && text.contains("Hallway camera"),
        "{text}"
    );

    // A second door, with the hallway camera watching it too (by name).
    let (ok, text, err) = door(&base, &owner, &["add", "--name", "Back door"]);
    assert!(ok && text.contains("added Back door"), "{text}{err}");
    let (ok, text, err) = door(
        &base,
        &owner,
        &["bind", "--door", "back door", "--camera", "Hallway camera"],
    );
    assert!(ok, "{err}");
    assert!(text.contains("Hallway camera"), "{text}");
    // It has no lock: nothing to unlock, said with the API's code.
    let (ok, _, err) = door(&base, &owner, &["unlock", "--door", "Back door"]);
    assert!(!ok && err.contains("no_lock"), "{err}");
    // A camera is not a lock.
    let (ok, _, err) = door(
        &base,
        &owner,
        &["bind", "--door", "Back door", "--lock", "Hallway camera"],
    );
    assert!(!ok && err.contains("no lock \"Hallway camera\""), "{err}");

    // The front door with no camera bound: the owner's unlock is refused ...
    let (ok, _, err) = door(
        &base,
        &owner,
        &["bind", "--door", "Front door", "--no-cameras"],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = door(&base, &owner, &["unlock", "--door", "Front door"]);
    assert!(!ok && err.contains("no_camera_bound"), "{err}");
    // ... unless explicitly overridden, which the timeline records as such.
    let (ok, text, err) = door(
        &base,
        &owner,
        &[
            "unlock",
            "--door",
            "Front door",
            "--without-camera",
            "--json",
        ],
    );
    assert!(ok, "{err}");
    let answer: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["camera_override"], true, "{answer}");
    let timeline = get(format!("{base}/api/v1/homes/{home}/timeline"), &owner).await;
    let overrides = timeline
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "owner.unlock" && e["detail"]["camera_override"] == true)
        .count();
    assert_eq!(overrides, 1, "the override is on the timeline: {timeline}");

    // Watched again: the plain unlock goes through with the camera's statement.
    let (ok, _, err) = door(
        &base,
        &owner,
        &["bind", "--door", "Front door", "--camera", "Hallway camera"],
    );
    assert!(ok, "{err}");
    let (ok, text, err) = door(&base, &owner, &["unlock", "--door", "Front door"]);
    assert!(ok && text.contains("camera's statement"), "{text}{err}");
    let (ok, _, err) = door(&base, &owner, &["lock", "--door", "Front door"]);
    assert!(ok, "{err}");

    assert!(demo.interrupt().success());
}

/// A hub given credentials in every URL and in the environment prints none of them,
/// even at debug level: not in its banner, not in its log, not when the broker or the
/// database connection is described.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_reaches_the_output() {
    if !support::mosquitto_up() {
        return;
    }
    let Some(pg) = threshold_store::testing::postgres_url().await.unwrap() else {
        return;
    };
    // This machine's PostgreSQL trusts local connections, so any password gets in:
    // the point is what the hub does with it.
    let pg = pg.replacen(
        "postgres://postgres@",
        "postgres://postgres:db-secret-4711@",
        1,
    );
    assert!(pg.contains("db-secret-4711"), "{pg}");
    let dir = threshold_store::testing::TempDir::new("secrets-log").unwrap();
    let out = dir.path().join("output.log");
    let log = std::fs::File::create(&out).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--http-addr", "127.0.0.1:0", "--database-url", &pg])
        .args(["--mqtt-url", "mqtt://hub:url-secret-4711@127.0.0.1:1883"])
        .env("THRESHOLD_MQTT_PASSWORD", "env-secret-4711")
        // Home Assistant's broker: nothing listens there, so its address is logged
        // as unreachable, again and again, never with its credentials.
        .args(["--ha-mqtt-url", "mqtt://ha:ha-url-secret-4711@127.0.0.1:9"])
        .env("THRESHOLD_HA_MQTT_PASSWORD", "ha-env-secret-4711")
        .env("THRESHOLD_LOG", "debug")
        .env(
            "THRESHOLD_MQTT_TOPIC_PREFIX",
            format!("thr-secrets-{}", threshold_store::new_id()),
        )
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let text = eventually(30, "the hub started", || {
        let out = out.clone();
        async move {
            let t = std::fs::read_to_string(&out).unwrap_or_default();
            t.contains("listening on").then_some(t)
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&out).unwrap_or(text);
    for secret in [
        "db-secret-4711",
        "url-secret-4711",
        "env-secret-4711",
        "ha-url-secret-4711",
        "ha-env-secret-4711",
    ] {
        assert!(!text.contains(secret), "{secret} printed:\n{text}");
    }
    assert!(
        text.contains("127.0.0.1:1883"),
        "the broker is named:\n{text}"
    );
    assert!(
        text.contains("Home Assistant discovery on broker=mqtt://ha:***@127.0.0.1:9"),
        "Home Assistant's broker is named:\n{text}"
    );
}

/// A history rewritten and re-signed with another key verifies with that key, and
/// fails against the key the owner pinned: `threshold audit verify --key`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_holds_history_to_the_pinned_key() {
    let run = |args: &[&str], dir: &std::path::Path| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir)
            .output()
            .unwrap()
    };
    // Two hubs, two keys, each with a signed history (a checkpoint per entry).
    let mut keys = Vec::new();
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    for dir in &dirs {
        let conf = dir.path().join("hub.toml");
        std::fs::write(&conf, "audit_checkpoint_every = 1\n").unwrap();
        user_add(BIN, dir.path(), "admin", "root", "a-long-password");
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--config"])
            .arg(&conf)
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "--http-addr",
                "127.0.0.1:0",
                "--embedded-mqtt-addr",
                "127.0.0.1:0",
            ]);
        let mut hub = Running::until_printed(cmd, "listening on http://");
        let base = format!(
            "http://{}",
            after(hub.line("listening on http://"), "listening on http://")
                .split(' ')
                .next()
                .unwrap()
        );
        for _ in 0..3 {
            login(&base, "root", "a-long-password").await;
        }
        assert!(hub.interrupt().success());
        let key = run(&["audit", "key"], dir.path());
        assert!(key.status.success());
        keys.push(String::from_utf8_lossy(&key.stdout).trim().to_owned());
    }
    assert_ne!(keys[0], keys[1]);
    let (a, b) = (dirs[0].path(), dirs[1].path());
    // Each verifies with its own key...
    let ok = run(&["audit", "verify", "--key", &keys[0]], a);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact"));
    // ... and B's history, as if written over A's database and re-signed, fails
    // against A's pinned key (given as hex, or as a file).
    let pinned_file = a.join("pinned.key");
    std::fs::write(&pinned_file, &keys[0]).unwrap();
    for key in [keys[0].as_str(), pinned_file.to_str().unwrap()] {
        let bad = run(&["audit", "verify", "--key", key], b);
        assert_eq!(
            bad.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&bad.stdout)
        );
        assert!(
            String::from_utf8_lossy(&bad.stdout).contains("another key"),
            "{}",
            String::from_utf8_lossy(&bad.stdout)
        );
    }

    // Exports, verified away from any database: A's untouched export passes with A's
    // key; B's fails with it; A's with one entry edited fails, naming the entry.
    let export = |dir: &std::path::Path, file: &std::path::Path| {
        let out = Command::new(BIN)
            .args(["audit", "export", "--data-dir"])
            .arg(dir)
            .arg("--out")
            .arg(file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let scratch = tempfile::tempdir().unwrap();
    let (fa, fb) = (
        scratch.path().join("a.jsonl"),
        scratch.path().join("b.jsonl"),
    );
    export(a, &fa);
    export(b, &fb);
    let verify_export = |file: &std::path::Path| {
        Command::new(BIN)
            .args(["audit", "verify", "--key", &keys[0], "--export"])
            .arg(file)
            .output()
            .unwrap()
    };
    let ok = verify_export(&fa);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let bad = verify_export(&fb);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("another key"));
    let text = std::fs::read_to_string(&fa).unwrap();
    let edited: Vec<String> = text
        .lines()
        .map(|l| {
            if l.contains("\"seq\":2,") && l.contains("\"type\":\"entry\"") {
                l.replacen("\"detail\":\"", "\"detail\":\"x", 1)
            } else {
                l.to_owned()
            }
        })
        .collect();
    assert_ne!(edited.join("\n"), text.trim_end(), "entry 2 was edited");
    let fe = scratch.path().join("edited.jsonl");
    std::fs::write(&fe, edited.join("\n")).unwrap();
    let broken = verify_export(&fe);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&broken.stdout).contains("entry 2"),
        "{}",
        String::from_utf8_lossy(&broken.stdout)
    );
}

/// `threshold demo --lan`: the apps over HTTPS on the machine's network address, with
/// the hub's own CA (its fingerprint printed, the CA served at /ca.pem); the simulated
/// devices enrol over HTTPS trusting it and come live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lan_demo_serves_https_with_its_own_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, base) = start_demo_with(dir.path(), &["--lan"]);
    assert!(base.starts_with("https://"), "{base}");
    assert!(!base.contains("127.0.0.1"), "a network address: {base}");
    let text = demo.printed.join("\n");
    assert!(text.contains("SHA-256 fingerprint"), "{text}");
    assert!(text.contains(&format!("{base}/trust")), "{text}");
    support::trust_ca(&dir.path().join("hub").join("tls").join("ca.pem"));
    let owner = login(&base, "owner", &password(&demo, "owner")).await;
    live_demo_home(&base, &owner).await;
    let (s, pem, _) = support::call_raw("GET", format!("{base}/ca.pem"), None, None).await;
    assert_eq!(s, 200);
    assert!(String::from_utf8_lossy(&pem).contains("BEGIN CERTIFICATE"));
    assert!(demo.interrupt().success());
}

/// A fleet node shares its database and broker with other nodes: on SQLite or the
/// embedded broker it refuses to start, and says why.
#[test]
fn a_fleet_node_refuses_sqlite_and_the_embedded_broker() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(BIN)
        .args(["serve", "--fleet-node", "a", "--data-dir"])
        .arg(dir.path())
        .args(["--http-addr", "127.0.0.1:0"])
        .output()
        .expect("run threshold serve");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("PostgreSQL") && err.contains("mqtt_url"),
        "{err}"
    );
}

/// What `threshold serve` writes to its standard error until it listens, then is
/// stopped (its standard error is a pipe, not a terminal).
fn serve_logs(dir: &std::path::Path, extra: &[&str]) -> String {
    use std::io::{BufRead, Read};
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args([
            "--http-addr",
            "127.0.0.1:0",
            "--embedded-mqtt-addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start threshold serve");
    let stdout = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(stdout).lines() {
        if line.unwrap().contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    err
}

/// Logs for a file or a collector: no colour codes when standard error is not a
/// terminal, and `--log-format json` writes one JSON object per line.
#[test]
fn logs_carry_no_colour_codes_off_a_terminal_and_can_be_json() {
    let dir = tempfile::tempdir().unwrap();
    let text = serve_logs(dir.path(), &[]);
    assert!(text.contains("hub started"), "{text}");
    assert!(!text.contains('\u{1b}'), "colour codes in: {text:?}");
    let dir = tempfile::tempdir().unwrap();
    let json = serve_logs(dir.path(), &["--log-format", "json"]);
    let lines: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "hub started" && l["level"] == "INFO"),
        "{json}"
    );
}

/// `threshold wids scan` exits 0 with no attack, 1 with attacks, 2 on an error; a file
/// that is not a capture (a README caught by a glob) is skipped with a warning.
#[test]
fn wids_scan_exit_codes_mean_something() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = threshold_capture_gen::write_corpus(dir.path()).unwrap();
    let attacked = corpus
        .iter()
        .find(|(_, exp)| !exp.is_empty())
        .map(|(p, _)| p.clone())
        .unwrap();
    let clean = corpus
        .iter()
        .find(|(_, exp)| exp.is_empty())
        .map(|(p, _)| p.clone())
        .unwrap();
    let readme = dir.path().join("README.md");
    std::fs::write(&readme, "# not a capture\n").unwrap();
    let scan = |files: &[&std::path::Path]| {
        let out = Command::new(BIN)
            .args(["wids", "scan"])
            .args(files)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, _) = scan(&[&attacked]);
    assert_eq!(code, Some(1), "{out}");
    let (code, _, err) = scan(&[&clean]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = scan(&[&readme, &clean]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: skipped") && err.contains("README.md"),
        "{err}"
    );
    let (code, _, err) = scan(&[&readme]);
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = scan(&[&dir.path().join("missing.pcap"), &attacked]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.matches("missing.pcap").count(), 1, "said once: {err}");
}

/// An unreachable PostgreSQL is said at once, once, and plainly.
#[test]
fn an_unreachable_database_is_one_plain_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = std::time::Instant::now();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--http-addr", "127.0.0.1:0", "--database-url"])
        .arg(format!("postgres://nobody@127.0.0.1:{port}/db"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(errors[0].matches("refused").count() == 1, "{err}");
}

/// Addresses may be names (`localhost:PORT`); a first start says how to create the
/// first administrator; commands that only touch the records list only their options.
#[test]
fn names_as_addresses_a_first_run_hint_and_only_relevant_options() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--data-dir"]).arg(dir.path()).args([
        "--http-addr",
        "localhost:0",
        "--embedded-mqtt-addr",
        "localhost:0",
    ]);
    let mut hub = Running::until_printed(cmd, "no administrator yet");
    assert!(hub.line("listening on http://").contains("127.0.0.1:"));
    assert!(hub
        .line("no administrator yet")
        .contains("user add --role admin"));
    hub.kill();
    for args in [
        &["user", "add", "--help"][..],
        &["audit", "verify", "--help"][..],
    ] {
        let help = Command::new(BIN).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        assert!(text.contains("--database-url"), "{text}");
        assert!(
            !text.contains("--mqtt-url") && !text.contains("--http-addr"),
            "{text}"
        );
    }
}

/// The demo's garage through the real binary: the courier's entry opens the garage
/// (the simulated opener travels), "Delivered" makes the hub close it, and the
/// delivery completes only once the opener reports it closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garage_delivery_through_the_demo() {
    let dir = tempfile::tempdir().unwrap();
    let (mut demo, base) = start_demo_with(dir.path(), &["--no-auto-door"]);
    let owner = login(&base, "owner", &password(&demo, "owner")).await;
    let home = live_demo_home(&base, &owner).await;
    let courier = login(&base, "courier", &password(&demo, "courier")).await;
    let deliveries = get(format!("{base}/api/v1/deliveries"), &courier).await;
    let d = deliveries
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["parcel_ref"] == "PARCEL-0002")
        .unwrap_or_else(|| panic!("the garage delivery: {deliveries}"));
    let id = d["id"].as_str().unwrap().to_owned();
    let garage = d["door_id"].as_str().unwrap().to_owned();
    let door = |want: &'static str| {
        let (base, owner, garage) = (base.clone(), owner.clone(), garage.clone());
        async move {
            eventually(30, want, || {
                let url = format!("{base}/api/v1/doors/{garage}/lock");
                let owner = owner.clone();
                async move {
                    let v = get(url, &owner).await;
                    (v["door"] == want && v["motion"].is_null()).then_some(v)
                }
            })
            .await
        }
    };
    let view = door("closed").await;
    assert_eq!(view["actuator"], "garage_opener", "{view}");

    let (s, decision) = call(
        "POST",
        format!("{base}/api/v1/deliveries/{id}/entry"),
        Some(&courier),
        Some(serde_json::json!({"lat": 52.3731, "lon": 4.8922, "accuracy_m": 5.0, "parcel_ref": "PARCEL-0002"})),
    )
    .await;
    assert_eq!(s, 200, "{decision}");
    assert_eq!(decision["allowed"], true, "{decision}");
    door("open").await;
    let (s, b) = call(
        "POST",
        format!("{base}/api/v1/deliveries/{id}/delivered"),
        Some(&courier),
        None,
    )
    .await;
    assert_eq!(s, 200, "{b}");
    door("closed").await;
    eventually(30, "the garage delivery completed", || {
        let url = format!("{base}/api/v1/deliveries/{id}");
        let owner = owner.clone();
        async move { (get(url, &owner).await["state"] == "completed").then_some(()) }
    })
    .await;
    // The opener's own signed log tells the story on the owner's timeline.
    let timeline = get(format!("{base}/api/v1/homes/{home}/timeline"), &owner).await;
    for kind in [
        "device.token_accepted",
        "device.door_opened",
        "device.close_commanded",
        "device.door_closed",
    ] {
        assert!(
            timeline
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["kind"] == kind),
            "{kind} on the timeline"
        );
    }
    assert!(demo.interrupt().success());
}

/// The binary runs on jemalloc with its memory-returning options (the hub's memory
/// per camera depends on them: docs/performance.md); jemalloc's own statistics, asked
/// for through its environment variable, say which options it started with.
#[test]
fn the_binary_allocates_with_jemalloc_returning_freed_memory_within_a_second() {
    let out = Command::new(BIN)
        .arg("--version")
        .env("_RJEM_MALLOC_CONF", "stats_print:true")
        .output()
        .expect("run the binary");
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stderr);
    for opt in [
        "opt.background_thread: true",
        "opt.dirty_decay_ms: 1000",
        "opt.muzzy_decay_ms: 0",
    ] {
        assert!(stats.contains(opt), "{opt} not in jemalloc's statistics");
    }
}

/// The running hub reports jemalloc's own account of its memory beside its resident
/// size (what it holds against what the allocator keeps), for operators and the soak.
#[tokio::test]
async fn the_hub_reports_its_allocator_s_account_of_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (_hub, base, _) = serve(BIN, dir.path());
    let (s, body, _) = support::call_raw("GET", format!("{base}/metrics"), None, None).await;
    assert_eq!(s, 200);
    let text = String::from_utf8_lossy(&body);
    let gauge = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
    };
    let (allocated, resident) = (
        gauge("threshold_allocator_allocated_bytes "),
        gauge("threshold_allocator_resident_bytes "),
    );
    assert!(
        allocated > 1_000_000.0,
        "a running hub holds more than 1 MB"
    );
    assert!(resident >= allocated, "{resident} < {allocated}");
    assert!(gauge("process_resident_memory_bytes ") > 0.0);
}
