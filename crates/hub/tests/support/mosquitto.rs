//! A Mosquitto of the test's own, with its own configuration: the dynamic-security
//! plugin, no anonymous clients, one admin. Killed when dropped.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const ADMIN: &str = "threshold-admin";

pub struct OwnMosquitto {
    child: Child,
    pub port: u16,
    pub admin_password: String,
    pub log: PathBuf,
    conf: PathBuf,
}

impl OwnMosquitto {
    /// Kill it (SIGKILL) and start it again on the same port and configuration: a
    /// broker restart as clients see it.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..50 {
            if let Some(child) = launch(&self.conf, &self.log) {
                self.child = child;
                return;
            }
            // The port may linger for a moment after the kill.
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mosquitto did not start again");
    }
}

impl Drop for OwnMosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where Debian (or another layout) installed the plugin.
fn dynsec_plugin() -> Option<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib"), PathBuf::from("/usr/local/lib")];
    for d in ["/usr/lib", "/usr/lib64"] {
        if let Ok(entries) = std::fs::read_dir(d) {
            dirs.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
        }
    }
    dirs.into_iter()
        .map(|d| d.join("mosquitto_dynamic_security.so"))
        .find(|p| p.exists())
}

/// Start one, or `None` (the test skips) when Mosquitto or its plugin is missing;
/// under THRESHOLD_REQUIRE_SERVICES=1 that fails instead.
pub fn start(dir: &Path) -> Option<OwnMosquitto> {
    start_with(dir, None)
}

/// Like [`start`], its listener speaking TLS with `tls` (certificate chain and key
/// PEM files) when given.
pub fn start_with(dir: &Path, tls: Option<(&Path, &Path)>) -> Option<OwnMosquitto> {
    let required = threshold_store::testing::services_required();
    let plugin = dynsec_plugin();
    let have = plugin.is_some()
        && Command::new("mosquitto_ctrl")
            .arg("--help")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
    if !have {
        assert!(
            !required,
            "mosquitto with its dynamic-security plugin required"
        );
        eprintln!("skipping: mosquitto's dynamic-security plugin not installed");
        return None;
    }
    let plugin = plugin?;
    let admin_password = format!("admin-{}", threshold_store::new_id());
    let state = dir.join("dynsec.json");
    let init = Command::new("mosquitto_ctrl")
        .args(["dynsec", "init"])
        .arg(&state)
        .args([ADMIN, admin_password.as_str()])
        .stdout(Stdio::null())
        .status()
        .expect("mosquitto_ctrl runs");
    assert!(init.success(), "mosquitto_ctrl dynsec init failed");
    let conf_body = format!(
        "{}allow_anonymous false\nplugin {}\nplugin_opt_config_file {}\n",
        tls.map(|(c, k)| format!("certfile {}\nkeyfile {}\n", c.display(), k.display()))
            .unwrap_or_default(),
        plugin.display(),
        state.display()
    );
    Some(run(dir, &conf_body, admin_password))
}

/// One without access rules (anonymous clients may do anything), for tests about
/// something else than the broker's rights (several hubs sharing it); `None` (the test
/// skips) when Mosquitto is missing, a failure under THRESHOLD_REQUIRE_SERVICES=1.
pub fn start_anonymous(dir: &Path) -> Option<OwnMosquitto> {
    let have = Command::new("mosquitto")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !have {
        assert!(
            !threshold_store::testing::services_required(),
            "mosquitto required"
        );
        eprintln!("skipping: mosquitto not installed");
        return None;
    }
    Some(run(dir, "allow_anonymous true\n", String::new()))
}

/// Start Mosquitto on a free port with `conf_body` (listener, logging and persistence
/// are added here) and wait until it runs.
fn run(dir: &Path, conf_body: &str, admin_password: String) -> OwnMosquitto {
    // Mosquitto cannot report a port it chose, so take a free one and retry on the
    // rare clash with another process.
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let conf = dir.join("mosquitto.conf");
        let log = dir.join("mosquitto.log");
        std::fs::write(
            &conf,
            format!(
                "user root\nlistener {port} 127.0.0.1\npersistence false\n{conf_body}log_dest stderr\nlog_dest topic\nlog_type all\n"
            ),
        )
        .unwrap();
        if let Some(child) = launch(&conf, &log) {
            return OwnMosquitto {
                child,
                port,
                admin_password,
                log,
                conf,
            };
        }
    }
    panic!("mosquitto did not start");
}

/// Start Mosquitto with `conf`, its log appended to `log`; `None` if it did not say it
/// runs within 10 s (a clash on the port ends the process, which ends the log).
fn launch(conf: &Path, log: &Path) -> Option<Child> {
    let mut child = Command::new("mosquitto")
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto starts");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("stderr");
    let log_path = log.to_owned();
    std::thread::spawn(move || {
        use std::io::{BufRead, Write};
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .ok();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if let Some(f) = file.as_mut() {
                let _ = writeln!(f, "{line}");
            }
            if line.contains("running") {
                let _ = tx.send(());
            }
        }
    });
    if rx.recv_timeout(Duration::from_secs(10)).is_ok() {
        Some(child)
    } else {
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}
