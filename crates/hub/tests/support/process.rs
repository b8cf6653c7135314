//! The real `threshold` binary as a child process, for the command-line tests: started
//! on ports 0, its addresses read back from what it prints, and killed when the test
//! ends, even when an assertion fails first.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where a child's log (its stderr) goes: dropped, or with `THRESHOLD_TEST_LOG_DIR` set,
/// a file of its own in that folder, to see what several hub processes did when a
/// test failed (`THRESHOLD_LOG` sets how much they say).
fn log_sink() -> Stdio {
    let Some(dir) = std::env::var_os("THRESHOLD_TEST_LOG_DIR") else {
        return Stdio::null();
    };
    static STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::path::Path::new(&dir).join(format!("{}-{n}.log", std::process::id()));
    std::fs::File::create(&file)
        .map(Stdio::from)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()))
}

/// A running child and the lines it has printed so far.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub printed: Vec<String>,
}

impl Running {
    /// Spawn `cmd` (stdout piped, stderr dropped) and wait until it prints a line
    /// containing `ready`.
    pub fn until_printed(mut cmd: Command, ready: &str) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(log_sink())
            .spawn()
            .expect("spawn the binary");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let mut running = Running {
            child,
            lines: rx,
            printed: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match running.lines.recv_timeout(left) {
                Ok(l) => {
                    let done = l.contains(ready);
                    running.printed.push(l);
                    if done {
                        return running;
                    }
                }
                Err(_) => panic!(
                    "the binary did not print {ready:?}; it printed:\n{}",
                    running.printed.join("\n")
                ),
            }
        }
    }

    /// The first printed line containing `marker`.
    pub fn line(&self, marker: &str) -> &str {
        self.printed
            .iter()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no line with {marker:?} in {:?}", self.printed))
    }

    /// Ctrl-C, then wait (20 s at most) for it to exit.
    pub fn interrupt(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        self.wait_exit(Duration::from_secs(20))
    }

    /// SIGKILL: no shutdown path runs, nothing is flushed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its stdout closes when it exits: read to the end (within `limit`), then reap it.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.printed.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the binary did not stop"),
            }
        }
        self.child.wait().expect("child status")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// The word after `prefix` in `line` (up to a space, `)` or the end).
pub fn after<'a>(line: &'a str, prefix: &str) -> &'a str {
    let start = line
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} not in {line:?}"))
        + prefix.len();
    let rest = &line[start..];
    let end = rest.find([' ', ')']).unwrap_or(rest.len());
    &rest[..end]
}

/// `threshold serve` on ports 0: returns it with its base URL and broker port, read
/// from its "listening on http://ADDR (MQTT HOST:PORT)" line.
pub fn serve(bin: &str, data_dir: &std::path::Path) -> (Running, String, u16) {
    let mut cmd = Command::new(bin);
    cmd.args(["serve", "--data-dir"]).arg(data_dir).args([
        "--http-addr",
        "127.0.0.1:0",
        "--embedded-mqtt-addr",
        "127.0.0.1:0",
    ]);
    let hub = Running::until_printed(cmd, "listening on http://");
    let line = hub.line("listening on http://").to_owned();
    let base = format!("http://{}", after(&line, "listening on http://"));
    let mqtt = after(&line, "(MQTT ")
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("broker port");
    (hub, base, mqtt)
}

/// `threshold user add` on `data_dir`, the password given the way an operator gives it
/// (an environment variable); panics with the binary's error if it fails.
pub fn user_add(bin: &str, data_dir: &std::path::Path, role: &str, username: &str, password: &str) {
    let add = Command::new(bin)
        .args(["user", "add", "--data-dir"])
        .arg(data_dir)
        .args(["--role", role, "--username", username])
        .env("THRESHOLD_NEW_PASSWORD", password)
        .output()
        .expect("run threshold user add");
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
}
