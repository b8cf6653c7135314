//! The protocol document is tested the way a third party uses it: the independent
//! Python device in tools/thirdparty_device, written from docs/protocol.md alone,
//! rebuilds every test vector from its stated inputs and runs the lock's checks on
//! them. If the document and the reference implementation drift apart, or the document
//! stops being enough to build a device, this fails.
//!
//! Needs `python3` with the `cryptography` package (Debian: python3-cryptography); it
//! skips without them unless THRESHOLD_REQUIRE_SERVICES=1, under which it fails.

use std::path::Path;
use std::process::Command;

#[test]
fn the_independent_device_passes_its_self_test_against_the_document() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let required = std::env::var("THRESHOLD_REQUIRE_SERVICES").is_ok_and(|v| v == "1");
    let usable = Command::new("python3")
        .args(["-c", "import cryptography"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !usable {
        assert!(
            !required,
            "python3 with the cryptography package is required"
        );
        eprintln!("skipping: python3 with the cryptography package not found");
        return;
    }
    let out = Command::new("python3")
        .arg(root.join("tools/thirdparty_device/device.py"))
        .args(["selftest", "--doc"])
        .arg(root.join("docs/protocol.md"))
        .output()
        .expect("run python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "self-test failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = text
        .lines()
        .rev()
        .find(|l| l.starts_with("selftest:"))
        .unwrap_or("");
    assert!(summary.ends_with(" 0 failures"), "{summary}");
}
