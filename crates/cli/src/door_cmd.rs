//! `threshold door`: an owner's doors from the command line, through the hub's HTTP API
//! (the same rules as the owner app). The session token comes from `THRESHOLD_TOKEN`,
//! never from a flag, so that it stays out of shell history and process lists.

use crate::api_client::{error_text, http};
use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use std::process::ExitCode;

#[derive(Args, Debug)]
pub struct DoorArgs {
    /// The hub's base URL.
    #[arg(long, env = "THRESHOLD_HUB", default_value = "http://127.0.0.1:8080")]
    hub: String,
    /// The home (id); may be left out when the account has one home.
    #[arg(long, global = true)]
    home: Option<String>,
    /// Print the API's JSON answer instead of words.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: DoorCmd,
}

#[derive(Subcommand, Debug)]
enum DoorCmd {
    /// The home's doors: lock, contact sensor, the cameras that watch each, its state.
    List,
    /// Add a door.
    Add {
        /// Its name, e.g. "Back door".
        #[arg(long)]
        name: String,
        /// Couriers may not be let in through it.
        #[arg(long)]
        no_deliveries: bool,
    },
    /// Set a door's lock, contact sensor or cameras (devices by id or by name).
    Bind {
        /// The door (id or name).
        #[arg(long)]
        door: String,
        /// The lock fitted to it ("none" to remove).
        #[arg(long)]
        lock: Option<String>,
        /// Its contact sensor ("none" to remove).
        #[arg(long)]
        contact: Option<String>,
        /// A camera that watches it; repeat for several. Replaces the current set.
        #[arg(long = "camera")]
        cameras: Vec<String>,
        /// No camera watches it any more (couriers cannot be let in).
        #[arg(long, conflicts_with = "cameras")]
        no_cameras: bool,
        /// Whether couriers may be let in through it.
        #[arg(long)]
        accepts_deliveries: Option<bool>,
    },
    /// Unlock a door remotely, under the entry rule (its camera must be watching).
    Unlock {
        /// The door (id or name).
        #[arg(long)]
        door: String,
        /// Unlock although no camera of the door is watching: recorded as such on
        /// the timeline, in the audit chain and in the lock's own log.
        #[arg(long)]
        without_camera: bool,
    },
    /// Lock a door.
    Lock {
        /// The door (id or name).
        #[arg(long)]
        door: String,
    },
}

/// The API, signed in.
struct Api {
    base: String,
    token: String,
}

impl Api {
    /// Call the API; a non-2xx answer is an error carrying the API's code and message.
    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let (status, answer) = http(
            method,
            format!("{}/api/v1{path}", self.base),
            Some(self.token.clone()),
            body,
        )
        .await?;
        anyhow::ensure!(
            (200..300).contains(&status),
            "{}",
            error_text(status, &answer)
        );
        Ok(answer)
    }

    /// The home named by `--home`, or the account's only home.
    async fn home(&self, chosen: Option<&str>) -> anyhow::Result<String> {
        if let Some(h) = chosen {
            return path_id("--home", h).map(str::to_owned);
        }
        let homes = self.call("GET", "/homes", None).await?;
        let homes = homes.as_array().cloned().unwrap_or_default();
        match homes.as_slice() {
            [one] => one["id"]
                .as_str()
                .map(str::to_owned)
                .context("home without id"),
            [] => anyhow::bail!("this account has no home"),
            _ => anyhow::bail!(
                "this account has {} homes: say which with --home ({})",
                homes.len(),
                ids_and_names(&homes)
            ),
        }
    }

    async fn doors(&self, home: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .call("GET", &format!("/homes/{home}/doors"), None)
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }

    async fn devices(&self, home: &str) -> anyhow::Result<Vec<Value>> {
        Ok(self
            .call("GET", &format!("/homes/{home}/devices"), None)
            .await?
            .as_array()
            .cloned()
            .unwrap_or_default())
    }
}

/// An id that goes into a URL path: letters, digits, `-` and `_` only, so that it
/// cannot change the path (`../`, `?`, `#`, `/`).
fn path_id<'a>(flag: &str, id: &'a str) -> anyhow::Result<&'a str> {
    anyhow::ensure!(
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{flag} {id:?} is not an id"
    );
    Ok(id)
}

/// The hub's base URL: plain `http://host[:port]` (this build speaks no TLS to the
/// API; put the hub behind a TLS proxy on the same machine for remote use).
fn hub_base(hub: &str) -> anyhow::Result<String> {
    let base = hub.trim_end_matches('/');
    match base.split_once("://") {
        Some(("http", rest)) if !rest.is_empty() && !rest.contains(['/', '?', '#', '@']) => {
            Ok(base.to_owned())
        }
        Some(("https", _)) => anyhow::bail!("--hub {hub}: this build of the CLI speaks http only"),
        _ => anyhow::bail!("--hub {hub}: expected http://host:port"),
    }
}

fn ids_and_names(items: &[Value]) -> String {
    items
        .iter()
        .map(|i| {
            format!(
                "{} \"{}\"",
                i["id"].as_str().unwrap_or("?"),
                i["name"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The one item whose id is `wanted`, or whose name is `wanted` (ignoring case).
fn pick<'a>(items: &'a [Value], wanted: &str, what: &str) -> anyhow::Result<&'a Value> {
    if let Some(i) = items.iter().find(|i| i["id"] == wanted) {
        return Ok(i);
    }
    let named: Vec<&Value> = items
        .iter()
        .filter(|i| {
            i["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
        })
        .collect();
    match named.as_slice() {
        [one] => Ok(one),
        [] => anyhow::bail!(
            "no {what} \"{wanted}\" in this home ({})",
            ids_and_names(items)
        ),
        _ => anyhow::bail!("several {what}s are named \"{wanted}\": use the id"),
    }
}

/// A device reference for `bind`: `none` clears it; otherwise an id or a name of a
/// device of `kind`.
fn device_ref(devices: &[Value], wanted: &str, kind: &str) -> anyhow::Result<Value> {
    if wanted.eq_ignore_ascii_case("none") {
        return Ok(Value::Null);
    }
    let of_kind: Vec<Value> = devices
        .iter()
        .filter(|d| d["kind"] == kind)
        .cloned()
        .collect();
    Ok(pick(&of_kind, wanted, kind)?["id"].clone())
}

/// One door in words.
fn describe(door: &Value, devices: &[Value]) -> String {
    let name_of = |id: &Value| {
        devices
            .iter()
            .find(|d| d["id"] == *id)
            .and_then(|d| d["name"].as_str())
            .map(|n| format!("{n} ({})", id.as_str().unwrap_or("")))
            .unwrap_or_else(|| id.as_str().unwrap_or("none").to_owned())
    };
    let cameras: Vec<String> = door["camera_ids"]
        .as_array()
        .map(|c| c.iter().map(name_of).collect())
        .unwrap_or_default();
    let lock = &door["lock"];
    format!(
        "{name}  [{id}]\n  lock:      {lock_dev}{bolt}\n  contact:   {contact}\n  cameras:   {cams}\n  deliveries: {deliveries}",
        name = door["name"].as_str().unwrap_or(""),
        id = door["id"].as_str().unwrap_or(""),
        lock_dev = if door["lock_id"].is_null() { "none".to_owned() } else { name_of(&door["lock_id"]) },
        bolt = lock["bolt"].as_str().map(|b| format!(", bolt {b}")).unwrap_or_default(),
        contact = if door["contact_id"].is_null() { "none".to_owned() } else { name_of(&door["contact_id"]) },
        cams = if cameras.is_empty() { "none (a courier cannot be let in)".to_owned() } else { cameras.join(", ") },
        deliveries = if door["accepts_deliveries"] == true { "accepted" } else { "not through this door" },
    )
}

pub async fn run(a: DoorArgs) -> anyhow::Result<ExitCode> {
    let token = std::env::var("THRESHOLD_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .context("set THRESHOLD_TOKEN to an owner's session token (POST /api/v1/auth/login)")?;
    let api = Api {
        base: hub_base(&a.hub)?,
        token,
    };
    let home = api.home(a.home.as_deref()).await?;
    let show = |v: &Value, words: String| {
        if a.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{words}");
        }
    };
    match a.cmd {
        DoorCmd::List => {
            let (doors, devices) = (api.doors(&home).await?, api.devices(&home).await?);
            let words = if doors.is_empty() {
                "no doors yet: threshold door add --name \"Front door\"".to_owned()
            } else {
                doors
                    .iter()
                    .map(|d| describe(d, &devices))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            show(&Value::Array(doors), words);
        }
        DoorCmd::Add {
            name,
            no_deliveries,
        } => {
            let door = api
                .call(
                    "POST",
                    &format!("/homes/{home}/doors"),
                    Some(json!({"name": name, "accepts_deliveries": !no_deliveries})),
                )
                .await?;
            let words = format!(
                "added {}  [{}]; bind its lock and cameras with threshold door bind",
                door["name"].as_str().unwrap_or(""),
                door["id"].as_str().unwrap_or("")
            );
            show(&door, words);
        }
        DoorCmd::Bind {
            door,
            lock,
            contact,
            cameras,
            no_cameras,
            accepts_deliveries,
        } => {
            let (doors, devices) = (api.doors(&home).await?, api.devices(&home).await?);
            let door_id = pick(&doors, &door, "door")?["id"].clone();
            let mut change = serde_json::Map::new();
            if let Some(l) = lock {
                change.insert("lock_id".into(), device_ref(&devices, &l, "lock")?);
            }
            if let Some(c) = contact {
                change.insert(
                    "contact_id".into(),
                    device_ref(&devices, &c, "contact_sensor")?,
                );
            }
            if no_cameras || !cameras.is_empty() {
                let ids = cameras
                    .iter()
                    .map(|c| device_ref(&devices, c, "camera"))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                change.insert("camera_ids".into(), Value::Array(ids));
            }
            if let Some(d) = accepts_deliveries {
                change.insert("accepts_deliveries".into(), Value::Bool(d));
            }
            anyhow::ensure!(
                !change.is_empty(),
                "nothing to change: give --lock, --contact, --camera, --no-cameras or --accepts-deliveries"
            );
            let id = door_id.as_str().unwrap_or("");
            let updated = api
                .call(
                    "PATCH",
                    &format!("/homes/{home}/doors/{id}"),
                    Some(Value::Object(change)),
                )
                .await?;
            let devices = api.devices(&home).await?;
            show(&updated, describe(&updated, &devices));
        }
        DoorCmd::Unlock {
            door,
            without_camera,
        } => {
            let doors = api.doors(&home).await?;
            let id = pick(&doors, &door, "door")?["id"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let body = without_camera.then(|| json!({"without_camera": true}));
            let out = api
                .call("POST", &format!("/doors/{id}/unlock"), body)
                .await?;
            let words = if out["camera_override"] == true {
                "unlock sent WITHOUT a watching camera (recorded as an override); the bolt reports when it moves".to_owned()
            } else {
                "unlock sent with the door camera's statement; the bolt reports when it moves"
                    .to_owned()
            };
            show(&out, words);
        }
        DoorCmd::Lock { door } => {
            let doors = api.doors(&home).await?;
            let id = pick(&doors, &door, "door")?["id"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            let out = api.call("POST", &format!("/doors/{id}/lock"), None).await?;
            show(
                &out,
                "lock sent; the state says locked only once the lock reports it".to_owned(),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Value> {
        vec![
            json!({"id": "a1", "name": "Front door", "kind": "camera"}),
            json!({"id": "b2", "name": "Back door", "kind": "camera"}),
            json!({"id": "c3", "name": "back door", "kind": "lock"}),
        ]
    }

    #[test]
    fn pick_finds_by_id_then_by_name_ignoring_case() {
        let i = items();
        assert_eq!(pick(&i, "b2", "door").unwrap()["id"], "b2");
        assert_eq!(pick(&i, "FRONT DOOR", "door").unwrap()["id"], "a1");
        let err = pick(&i, "back door", "door").unwrap_err().to_string();
        assert!(err.contains("several"), "{err}");
        let err = pick(&i, "garage", "door").unwrap_err().to_string();
        assert!(
            err.contains("no door \"garage\"") && err.contains("a1"),
            "{err}"
        );
    }

    #[test]
    fn ids_and_hub_urls_cannot_change_the_request() {
        assert!(path_id("--home", "0123abcd").is_ok());
        for bad in ["", "../admin", "a/b", "a?b", "a#b", "a b", &"x".repeat(65)] {
            assert!(path_id("--home", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            hub_base("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        for bad in [
            "https://hub",
            "127.0.0.1:8080",
            "http://",
            "http://h/api",
            "http://u@h",
        ] {
            assert!(hub_base(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn device_refs_are_of_the_right_kind_or_none() {
        let i = items();
        assert_eq!(device_ref(&i, "none", "lock").unwrap(), Value::Null);
        assert_eq!(device_ref(&i, "back door", "lock").unwrap(), "c3");
        assert!(
            device_ref(&i, "a1", "lock").is_err(),
            "a camera is not a lock"
        );
    }
}
