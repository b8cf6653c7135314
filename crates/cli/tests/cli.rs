//! The real binary: `threshold demo` starts, serves live devices and stops cleanly on
//! Ctrl-C, twice on the same data folder; `threshold serve` + `threshold user add` +
//! `threshold audit verify` detect a tampered audit log.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_threshold");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tmp(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!(
        "threshold-cli-{tag}-{}-{}",
        std::process::id(),
        free_port()
    ));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn get(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut r = ureq::get(url).timeout(Duration::from_secs(10));
    if let Some(t) = token {
        r = r.set("Authorization", &format!("Bearer {t}"));
    }
    match r.call() {
        Ok(resp) => (resp.status(), resp.into_json().unwrap_or_default()),
        Err(ureq::Error::Status(s, resp)) => (s, resp.into_json().unwrap_or_default()),
        Err(_) => (0, serde_json::Value::Null),
    }
}

fn login(base: &str, user: &str, pw: &str) -> String {
    let resp = ureq::post(&format!("{base}/api/v1/auth/login"))
        .send_json(serde_json::json!({"username": user, "password": pw}))
        .unwrap();
    resp.into_json::<serde_json::Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn wait_for_or(secs: u64, mut f: impl FnMut() -> bool) -> Result<(), ()> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(())
}

/// A child process that is killed if the test ends early (a failed assertion must not
/// leave a hub running).
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn interrupt(running: &mut Running) -> std::process::ExitStatus {
    let child = &mut running.0;
    let _ = Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "did not stop after Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start the demo and return it once it printed its banner.
fn start_demo(dir: &std::path::Path, http: u16, mqtt: u16) -> (Running, Vec<String>) {
    let mut child = Running(
        Command::new(BIN)
            .args(["demo", "--data-dir"])
            .arg(dir)
            .args([
                "--http-addr",
                &format!("127.0.0.1:{http}"),
                "--mqtt-addr",
                &format!("127.0.0.1:{mqtt}"),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let out = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let done = l.contains("Ctrl-C stops");
            lines.push(l);
            if done {
                let _ = tx.send(lines.clone());
            }
        }
    });
    let lines = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("demo printed its banner");
    (child, lines)
}

#[test]
fn demo_runs_stops_cleanly_and_reruns_on_the_same_data() {
    let dir = tmp("demo");
    for round in 0..2 {
        let (http, mqtt) = (free_port(), free_port());
        let (mut child, banner) = start_demo(&dir, http, mqtt);
        let text = banner.join("\n");
        assert!(text.contains("login owner / "), "{text}");
        assert!(text.contains("/courier/"), "{text}");
        let base = format!("http://127.0.0.1:{http}");
        let owner = login(&base, "owner", "threshold-owner");
        let homes = get(&format!("{base}/api/v1/homes"), Some(&owner)).1;
        assert_eq!(
            homes.as_array().map(|h| h.len()),
            Some(1),
            "round {round}: one home, reused"
        );
        let home = homes[0]["id"].as_str().unwrap().to_owned();
        let mut last = serde_json::Value::Null;
        wait_for_or(30, || {
            last = get(&format!("{base}/api/v1/homes/{home}/devices"), Some(&owner)).1;
            last.as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|x| x["liveness"] == "live"))
        })
        .unwrap_or_else(|_| panic!("round {round}: simulated devices not all live: {last}"));
        let courier = login(&base, "courier", "threshold-courier");
        let deliveries = get(&format!("{base}/api/v1/deliveries"), Some(&courier)).1;
        assert!(
            deliveries
                .as_array()
                .is_some_and(|d| d.iter().any(|x| x["state"] == "scheduled")),
            "{deliveries}"
        );
        let status = interrupt(&mut child);
        assert!(status.success(), "round {round}: demo exited with {status}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn audit_verify_names_the_first_broken_link() {
    let dir = tmp("audit");
    let http = free_port();
    let mqtt = free_port();
    let add = Command::new(BIN)
        .args(["user", "add", "--data-dir"])
        .arg(&dir)
        .args(["--role", "admin", "--username", "root"])
        .env("THRESHOLD_NEW_PASSWORD", "a-long-password")
        .output()
        .unwrap();
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let mut serve = Running(
        Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(&dir)
            .args([
                "--http-addr",
                &format!("127.0.0.1:{http}"),
                "--embedded-mqtt-addr",
                &format!("127.0.0.1:{mqtt}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{http}");
    wait_for(30, "hub healthy", || {
        get(&format!("{base}/healthz"), None).0 == 200
    });
    for _ in 0..3 {
        login(&base, "root", "a-long-password");
    }
    let (s, bad) = match ureq::post(&format!("{base}/api/v1/auth/login"))
        .send_json(serde_json::json!({"username": "root", "password": "nope-nope"}))
    {
        Err(ureq::Error::Status(s, r)) => (s, r.into_json::<serde_json::Value>().unwrap()),
        other => panic!("expected 401, got {other:?}"),
    };
    assert_eq!(
        (s, bad["error"]["code"].as_str()),
        (401, Some("bad_credentials"))
    );
    assert!(interrupt(&mut serve).success());

    let verify = |dir: &std::path::Path| {
        Command::new(BIN)
            .args(["audit", "verify", "--data-dir"])
            .arg(dir)
            .output()
            .unwrap()
    };
    let ok = verify(&dir);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("intact"));

    // Tamper with entry 2 behind the hub's back.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}?mode=rw", dir.join("threshold.db").display());
        let store = threshold_store::Store::connect(&url).await.unwrap();
        store
            .tamper_audit_detail_for_tests(2, "{\"forged\":true}")
            .await
            .unwrap();
        store.close().await;
    });
    let broken = verify(&dir);
    assert_eq!(broken.status.code(), Some(1));
    let text = String::from_utf8_lossy(&broken.stdout);
    assert!(text.contains("entry 2"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
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

#[test]
fn door_cli_adds_binds_and_unlocks_under_the_entry_rule() {
    let dir = tmp("door");
    let (http, mqtt) = (free_port(), free_port());
    let (mut child, _) = start_demo(&dir, http, mqtt);
    let base = format!("http://127.0.0.1:{http}");
    let owner = login(&base, "owner", "threshold-owner");
    let homes = get(&format!("{base}/api/v1/homes"), Some(&owner)).1;
    let home = homes[0]["id"].as_str().unwrap().to_owned();
    wait_for(30, "the demo's devices live", || {
        get(&format!("{base}/api/v1/homes/{home}/devices"), Some(&owner))
            .1
            .as_array()
            .is_some_and(|a| a.len() == 3 && a.iter().all(|x| x["liveness"] == "live"))
    });

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
    let timeline = get(
        &format!("{base}/api/v1/homes/{home}/timeline"),
        Some(&owner),
    )
    .1;
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

    assert!(interrupt(&mut child).success());
    let _ = std::fs::remove_dir_all(&dir);
}
