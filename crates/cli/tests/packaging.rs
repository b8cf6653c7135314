//! The install paths shipped with the source: the container image (Dockerfile, built
//! where a Docker daemon answers, else linted), the Compose files and the systemd unit
//! (checked with `systemd-analyze verify` where it exists). Every `THRESHOLD_*`
//! variable they set is one the binary reads.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_threshold");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The environment variables the binary reads, as its help lists them.
fn known_variables() -> Vec<String> {
    let mut known = Vec::new();
    for args in [
        &["serve", "--help"][..],
        &["user", "add", "--help"][..],
        &["--help"][..],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        for part in text.split("env: ").skip(1) {
            let name: String = part
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            known.push(name);
        }
    }
    // Read by the binary outside clap: the new account's password, the broker password,
    // the log filter.
    known.extend(
        [
            "THRESHOLD_NEW_PASSWORD",
            "THRESHOLD_MQTT_PASSWORD",
            "THRESHOLD_LOG",
        ]
        .map(String::from),
    );
    known
}

fn variables_in(text: &str) -> Vec<String> {
    text.split("THRESHOLD_")
        .skip(1)
        .map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                .collect();
            format!("THRESHOLD_{name}")
        })
        // `THRESHOLD_...` in a comment names no variable.
        .filter(|v| v.len() > "THRESHOLD_".len())
        .collect()
}

#[test]
fn every_variable_the_packaging_sets_is_read_by_the_binary() {
    let known = known_variables();
    assert!(
        known.iter().any(|k| k == "THRESHOLD_DATABASE_URL"),
        "{known:?}"
    );
    for file in [
        "Dockerfile",
        "deploy/compose.yaml",
        "deploy/fleet/compose.yaml",
        "deploy/systemd/threshold.service",
    ] {
        for v in variables_in(&read(file)) {
            assert!(
                known.contains(&v),
                "{file} sets {v}, which the binary does not read"
            );
        }
    }
}

#[test]
fn the_dockerfile_builds_a_small_unprivileged_image() {
    let df = read("Dockerfile");
    let froms: Vec<&str> = df.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(froms[0].ends_with(" AS build"));
    assert!(
        froms[1].contains("-slim"),
        "a small runtime base: {}",
        froms[1]
    );
    assert!(df.contains("cargo build --locked --profile dist -p threshold-cli"));
    assert!(df.contains("COPY --from=build "));
    let runtime = &df[df.rfind("FROM ").unwrap()..];
    let user = runtime
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("the runtime stage sets a USER");
    assert!(user != "root" && user != "0");
    assert!(runtime.contains("ENTRYPOINT [\"/usr/local/bin/threshold\"]"));
    let ignore = read(".dockerignore");
    assert!(
        ignore.lines().any(|l| l == "target"),
        "the build context skips target/"
    );
    let manifest = read("Cargo.toml");
    let dist = &manifest[manifest.find("[profile.dist]").expect("a dist profile")..];
    assert!(dist.contains("lto = \"fat\"") && dist.contains("codegen-units = 1"));

    // Where a Docker daemon answers, the image is built for real.
    let daemon = Command::new("docker")
        .arg("info")
        .output()
        .is_ok_and(|o| o.status.success());
    if !daemon {
        eprintln!("skipping docker build: no Docker daemon here (the Dockerfile was linted)");
        return;
    }
    let built = Command::new("docker")
        .args(["build", "-q", "-t", "threshold:test"])
        .arg(repo())
        .status()
        .unwrap();
    assert!(built.success(), "docker build failed");
}

#[test]
fn the_compose_files_wire_the_hub_to_its_database_and_broker() {
    for file in ["deploy/compose.yaml", "deploy/fleet/compose.yaml"] {
        let text = read(file);
        assert!(text.contains("\nservices:\n"), "{file}");
        for service in ["postgres:", "mosquitto:"] {
            assert!(
                text.contains(&format!("\n  {service}\n")),
                "{file}: no {service}"
            );
        }
        assert!(
            text.contains("THRESHOLD_DATABASE_URL: postgres://")
                && text.contains("THRESHOLD_MQTT_URL: mqtt://mosquitto:1883"),
            "{file}"
        );
        assert!(
            text.contains("condition: service_healthy"),
            "{file}: waits for PostgreSQL"
        );
        assert!(
            !text.contains('\t'),
            "{file}: tabs are not YAML indentation"
        );
    }
    let fleet = read("deploy/fleet/compose.yaml");
    for node in ["node-a", "node-b", "node-c"] {
        assert!(fleet.contains(&format!("THRESHOLD_FLEET_NODE: {node}")));
    }
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let unit = read("deploy/systemd/threshold.service");
    for line in [
        "DynamicUser=yes",
        "StateDirectory=threshold",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line}");
    }
    let have = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("skipping systemd-analyze verify: not installed");
        return;
    }
    // The unit as installed, pointing at this build's binary.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("threshold.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/threshold", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
}
