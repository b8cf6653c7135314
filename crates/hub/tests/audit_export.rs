//! The audit record an owner can verify without trusting the hub: one home's export
//! (its entries in full, every other entry as a link) verifies end to end with the
//! pinned key and shows nothing of other homes; a hub that hides one of the home's
//! entries, drops one, or passes one home's export off as another's is caught; a
//! chain begun before entries named their home still verifies, and homes export from
//! the checkpoint signed at its end; checkpoints reach an HTTPS witness despite
//! failures, which /metrics counts.

mod support;
use support::*;

use serde_json::{json, Value};
use std::time::Duration;
use threshold_core::audit::AuditLink;
use threshold_hub::audit::{export, witness};
use threshold_hub::HubConfig;
use threshold_store::testing;

fn verify_text(text: &str, hub: &threshold_hub::Hub) -> threshold_hub::audit::VerifyReport {
    export::verify(text.as_bytes(), &hub.state.hub_key.public()).expect("a readable export")
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn hex32(v: &Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap(), &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_home_export_shows_its_entries_and_hides_the_rest() {
    let dir = testing::TempDir::new("audit-home-export").unwrap();
    let hub = threshold_hub::start(HubConfig {
        audit_checkpoint_every: 3,
        ..local_config(dir.path())
    })
    .await
    .unwrap();
    let base = hub.base_url();
    let adm = admin(&hub).await;
    let tokens = accounts(&base, &adm, &[("owner", "olga"), ("owner", "boris")]).await;
    let (olga, boris) = (&tokens[0], &tokens[1]);
    let a = home(&base, olga, "Olga's flat", 1.0, 1.0).await;
    let b = home(&base, boris, "Boris's house", 2.0, 2.0).await;
    let b_door = only_door(&base, boris, &b).await.unwrap();
    pairing_code(&base, olga, &a, "camera", "Hall camera").await;
    pairing_code(&base, boris, &b, "lock", "Boris-secret-lock").await;

    // The owner downloads the home's record; another owner cannot.
    let url = format!("{base}/api/v1/homes/{a}/audit/export");
    let (s, body, ct) = call_raw("GET", url.clone(), Some(olga), None).await;
    assert_eq!(s, 200);
    assert_eq!(ct, "application/x-ndjson");
    let (s, _, _) = call_raw("GET", url, Some(boris), None).await;
    assert_eq!(s, 404, "another owner's home");
    let text = String::from_utf8(body).unwrap();

    // It verifies with the hub's key alone, and is home A's.
    let r = verify_text(&text, &hub);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.home.as_deref(), Some(a.as_str()));
    // Home A: created, its door, the pairing code.
    assert_eq!(r.home_entries, Some(3), "{text}");
    assert!(r.links.unwrap() >= 5, "B's entries and the logins: {r:?}");
    assert!(r.signed_through >= 3, "{r:?}");
    // Nothing of home B, its owner or its devices.
    for secret in [
        b.as_str(),
        b_door.as_str(),
        "boris",
        "Boris",
        "Boris-secret-lock",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} in home A's export:\n{text}"
        );
    }

    // The whole log verifies too, and names B.
    let mut whole = Vec::new();
    export::write(&hub.state.store, &mut whole, 0)
        .await
        .unwrap();
    let whole = String::from_utf8(whole).unwrap();
    assert!(verify_text(&whole, &hub).ok);
    assert!(whole.contains(&b));

    let ls = lines(&text);
    let rejoin = |ls: &[Value]| {
        ls.iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    // A hub that shows one of A's entries as a link (to hide it) is caught: the link's
    // home tag is A's.
    let i = ls
        .iter()
        .position(|l| l["type"] == "entry" && l["kind"] == "pairing_code.created")
        .unwrap();
    let e = &ls[i];
    let seq = e["seq"].as_u64().unwrap();
    let link = AuditLink {
        seq,
        home_tag: threshold_core::audit::home_tag(seq, Some(&a)),
        body_hash: threshold_core::audit::body_hash(
            e["time_ms"].as_i64().unwrap(),
            e["kind"].as_str().unwrap(),
            e["actor"].as_str().unwrap(),
            e["subject"].as_str().unwrap(),
            e["detail"].as_str().unwrap(),
        ),
        prev_hash: hex32(&e["prev_hash"]),
        hash: hex32(&e["hash"]),
    };
    assert_eq!(link.recompute(), link.hash, "a faithful link");
    let mut hidden = ls.clone();
    hidden[i] = json!({"type": "link", "seq": seq, "home_tag": hex::encode(link.home_tag),
        "body_hash": hex::encode(link.body_hash), "prev_hash": hex::encode(link.prev_hash), "hash": hex::encode(link.hash)});
    let r = verify_text(&rejoin(&hidden), &hub);
    assert!(!r.ok);
    assert!(
        r.first_break.as_deref().unwrap().contains(&format!(
            "entry {seq}: an entry of this home shown without its contents"
        )),
        "{r:?}"
    );
    // Dropped: a gap.
    let mut dropped = ls.clone();
    dropped.remove(i);
    let r = verify_text(&rejoin(&dropped), &hub);
    assert!(
        r.first_break
            .as_deref()
            .unwrap()
            .contains("entries missing or reordered"),
        "{r:?}"
    );
    // Passed off as home B's: A's entries are not B's.
    let mut relabelled = ls.clone();
    relabelled[0]["home"] = json!(b);
    let e =
        export::verify(rejoin(&relabelled).as_bytes(), &hub.state.hub_key.public()).unwrap_err();
    assert!(e.to_string().contains("is not an entry of home"), "{e}");
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_begun_before_home_commitments_verifies_and_homes_export_after_it() {
    let dir = testing::TempDir::new("audit-legacy").unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    // A hub of before: three v1 entries about a home.
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("threshold.db").display()
    );
    let store = threshold_store::Store::connect(&url).await.unwrap();
    let hash = threshold_hub::auth::hash_password(PASSWORD).unwrap();
    let owner = store
        .create_user(threshold_store::Role::Owner, "olga", "Olga", &hash, 0)
        .await
        .unwrap();
    let h = testing::home(&store, &owner.id).await.unwrap();
    let drafts: Vec<threshold_store::AuditDraft> = (0..3)
        .map(|i| threshold_store::AuditDraft {
            time_ms: i,
            kind: "home.settings".into(),
            actor: format!("owner:{}", owner.id),
            subject: format!("home:{}", h.id),
            detail: "{\"old\":true}".into(),
            home: None,
        })
        .collect();
    store.append_legacy_audit_for_tests(&drafts).await.unwrap();
    // An export made then, in the format of then, still verifies.
    let mut old = Vec::new();
    export::write(&store, &mut old, 0).await.unwrap();
    let old = String::from_utf8(old)
        .unwrap()
        .replace(export::FORMAT, export::FORMAT_V1);
    assert!(!old.contains("\"v\":"), "v1 entries carry no form:\n{old}");
    store.close().await;

    // The upgraded hub signs a checkpoint at entry 3 before appending anything.
    let hub = threshold_hub::start(HubConfig {
        audit_checkpoint_every: 2,
        ..local_config(dir.path())
    })
    .await
    .unwrap();
    let base = hub.base_url();
    let olga = login(&base, "olga", PASSWORD).await;
    let (s, _) = call(
        "PUT",
        format!("{base}/api/v1/homes/{}/settings", h.id),
        Some(&olga),
        Some(json!({"in_home_enabled": true})),
    )
    .await;
    assert_eq!(s, 200);
    let cps = hub.state.store.checkpoints().await.unwrap();
    assert!(cps.iter().any(|c| c.seq == 3), "{cps:?}");

    let key = hub.state.hub_key.public();
    let r = export::verify(old.as_bytes(), &key).unwrap();
    assert!(r.ok && r.entries == 3, "{r:?}");
    let db = threshold_hub::audit::verify(&hub.state.store, &key)
        .await
        .unwrap();
    assert!(db.ok, "v1 and v2 entries in one chain: {db:?}");
    let mut whole = Vec::new();
    export::write(&hub.state.store, &mut whole, 0)
        .await
        .unwrap();
    assert!(export::verify(&whole[..], &key).unwrap().ok);

    let mut mine = Vec::new();
    let w = export::write_scoped(&hub.state.store, &mut mine, 0, Some(&h.id))
        .await
        .unwrap();
    assert_eq!(w.from_seq, 4, "{w:?}");
    let text = String::from_utf8(mine).unwrap();
    assert!(
        !text.contains("\"old\""),
        "v1 entries are before it:\n{text}"
    );
    let r = export::verify(text.as_bytes(), &key).unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!((r.from_seq, r.home_entries), (4, Some(1)), "{r:?}");
    // Starting anywhere else needs a checkpoint signed there.
    // (entry 4, a sign-in, is signed: every second entry is; entry 5 is not)
    let unanchored = text.replace("\"from_seq\":4", "\"from_seq\":6");
    let r = export::verify(unanchored.as_bytes(), &key).unwrap();
    assert!(
        !r.ok
            && r.first_break
                .as_deref()
                .unwrap()
                .contains("no checkpoint signed at entry 5"),
        "{r:?}"
    );
    hub.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_reach_an_https_witness_through_failures() {
    let dir = testing::TempDir::new("audit-witness-https").unwrap();
    // The witness: HTTPS on a private CA; its first answer is an error.
    let recv_tls =
        threshold_hub::tls::local_ca(&dir.path().join("receiver"), &["127.0.0.1".to_owned()])
            .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let app = axum::Router::new().route(
        "/witness",
        axum::routing::post(move |body: String| {
            let (tx, calls) = (tx.clone(), calls.clone());
            async move {
                if calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let _ = tx.send(body);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}/witness?token=witness-secret",
        l.local_addr().unwrap().port()
    );
    let listener = threshold_hub::tls::TlsListener::new(l, recv_tls.config.clone()).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let hub = threshold_hub::start(HubConfig {
        audit_checkpoint_every: 1,
        audit_witness: Some(url),
        outbound_ca_file: Some(dir.path().join("receiver").join("ca.pem")),
        ..local_config(&dir.path().join("hub"))
    })
    .await
    .unwrap();
    let base = hub.base_url();
    admin(&hub).await;
    login(&base, "admin", "admin-password").await;
    // Two checkpoints (two logins); the first was refused once and retried.
    let mut got = Vec::new();
    while got.len() < 2 {
        let body = tokio::time::timeout(Duration::from_secs(20), rx.recv())
            .await
            .expect("the witness got the checkpoints")
            .unwrap();
        got.push(body);
    }
    let seen = witness::read(got.join("\n").as_bytes(), &hub.state.hub_key.public()).unwrap();
    let mut seqs: Vec<u64> = seen.iter().map(|s| s.seq).collect();
    seqs.sort();
    assert_eq!(seqs, vec![1, 2]);
    let r = threshold_hub::audit::verify_with_witness(
        &hub.state.store,
        &hub.state.hub_key.public(),
        Some(&seen),
    )
    .await
    .unwrap();
    assert!(r.ok, "{r:?}");
    assert_eq!(r.witness.as_ref().map(|w| w.compared), Some(2));
    let (_, metrics, _) = call_raw("GET", format!("{base}/metrics"), None, None).await;
    let metrics = String::from_utf8(metrics).unwrap();
    assert!(
        metrics.contains("threshold_audit_witness_failures_total{reason=\"attempt\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("threshold_audit_witness_sent_total 2"),
        "{metrics}"
    );
    hub.stop().await;
}
