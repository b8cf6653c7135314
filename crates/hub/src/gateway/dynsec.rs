//! Per-device rights on an external Mosquitto through its dynamic-security plugin
//! (`$CONTROL/dynamic-security/v1`, Mosquitto 2.0+), so that a device on an external
//! broker is held to the same rights as on the hub's own endpoint
//! (`endpoint::rights`): its own uplink to publish, its own downlink to read.
//!
//! The hub's broker user must hold the plugin's admin role. At connection the hub
//! gives itself a role to read every uplink and write every downlink of its topic
//! prefix; at enrolment it creates the device's client (user name = device id, its
//! enrolment password) with a role of its own two topics; at a credential renewal it
//! sets the client's new password (creating client and role where missing); at
//! revocation it deletes both, which also disconnects the device.
//!
//! The commands are built by pure functions ([`commands`]); [`Dynsec`] sends them and
//! matches each answer to its command by correlation data.

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::AsyncClient;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

pub const CONTROL_TOPIC: &str = "$CONTROL/dynamic-security/v1";
pub const RESPONSE_TOPIC: &str = "$CONTROL/dynamic-security/v1/response";

/// How long the broker has to answer one batch of commands.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DynsecError {
    #[error("the broker did not answer the dynamic-security command in time (is the plugin loaded and the hub's user its admin?)")]
    NoAnswer,
    #[error("the hub's connection to the broker is down")]
    NotConnected,
    #[error("the broker refused {command}: {error}")]
    Refused { command: String, error: String },
}

/// The plugin's commands for Threshold's rights.
pub mod commands {
    use super::*;

    /// The role of the hub's own user: read every uplink, write every downlink.
    pub fn hub_role(prefix: &str) -> String {
        format!("threshold-hub-{}", role_safe(prefix))
    }

    pub fn device_role(device: &str) -> String {
        format!("threshold-device-{device}")
    }

    fn role_safe(prefix: &str) -> String {
        prefix.replace('/', "_")
    }

    fn acl(acltype: &str, topic: &str) -> Value {
        json!({"acltype": acltype, "topic": topic, "allow": true})
    }

    /// Give the hub's user the rights it needs on `prefix`.
    pub fn hub_setup(prefix: &str, hub_user: &str) -> Vec<Value> {
        let up = format!("{prefix}/v1/dev/+/up");
        let down = format!("{prefix}/v1/dev/+/down");
        let role = hub_role(prefix);
        vec![
            json!({"command": "createRole", "rolename": role, "acls": [
                acl("subscribePattern", &up),
                acl("publishClientReceive", &up),
                acl("publishClientSend", &down),
            ]}),
            json!({"command": "addClientRole", "username": hub_user, "rolename": role}),
        ]
    }

    /// A newly enrolled device's client and role.
    pub fn grant(prefix: &str, device: &str, password: &str) -> Vec<Value> {
        let role = device_role(device);
        vec![
            json!({"command": "createRole", "rolename": role, "acls": [
                acl("publishClientSend", &format!("{prefix}/v1/dev/{device}/up")),
                acl("subscribeLiteral", &format!("{prefix}/v1/dev/{device}/down")),
                acl("publishClientReceive", &format!("{prefix}/v1/dev/{device}/down")),
            ]}),
            json!({"command": "createClient", "username": device, "clientid": device,
                   "password": password, "roles": [{"rolename": role}]}),
        ]
    }

    /// A device's renewed password (docs/protocol.md §8.6): its role and client (with
    /// that role) are created if they are missing (a device enrolled before dynamic
    /// security was switched on, or whose client was lost), then its password is set.
    /// Run with [`harmless_on_renew`]. (Not `addClientRole` for a client that exists:
    /// Mosquitto 2.0 answers "Internal error" when the client has the role already.)
    pub fn renew(prefix: &str, device: &str, password: &str) -> Vec<Value> {
        let mut c = grant(prefix, device, password);
        c.push(json!({"command": "setClientPassword", "username": device, "password": password}));
        c
    }

    /// A revoked device: its client (which disconnects it) and its role.
    pub fn revoke(device: &str) -> Vec<Value> {
        vec![
            json!({"command": "deleteClient", "username": device}),
            json!({"command": "deleteRole", "rolename": device_role(device)}),
        ]
    }

    /// Whether an error answer still leaves things as wanted: creating what exists
    /// (a restart), adding a role the user already has, deleting what is gone.
    pub fn harmless(command: &str, error: &str) -> bool {
        let e = error.to_ascii_lowercase();
        match command {
            "createRole" | "addClientRole" => e.contains("already"),
            "deleteClient" | "deleteRole" => e.contains("not found"),
            _ => false,
        }
    }

    /// [`harmless`], and in a renewal also creating a client that exists: its
    /// password is set by the next command.
    pub fn harmless_on_renew(command: &str, error: &str) -> bool {
        harmless(command, error)
            || (command == "createClient" && error.to_ascii_lowercase().contains("already"))
    }
}

/// Sends command batches on the hub's broker connection and waits for the answers.
#[derive(Debug)]
pub struct Dynsec {
    client: AsyncClient,
    next: AtomicU64,
    waiting: Mutex<HashMap<String, oneshot::Sender<Value>>>,
    /// Whether the connection is up with its subscription to the answers in place:
    /// a command sent before that would be answered to nobody.
    ready: tokio::sync::watch::Sender<bool>,
}

impl Dynsec {
    pub fn new(client: AsyncClient) -> Dynsec {
        Dynsec {
            client,
            next: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
            ready: tokio::sync::watch::channel(false).0,
        }
    }

    /// The connection's subscription to the answers is in place (true), or the
    /// connection is gone (false).
    pub fn set_ready(&self, ready: bool) {
        self.ready.send_replace(ready);
    }

    /// Run `commands` in order; an error answer that is not [`commands::harmless`]
    /// is returned. Secrets in the commands (a device's password) are never logged.
    pub async fn run(&self, commands: Vec<Value>) -> Result<(), DynsecError> {
        self.run_with(commands, commands::harmless).await
    }

    /// [`Dynsec::run`], with `harmless` deciding which error answers still leave
    /// things as wanted.
    pub async fn run_with(
        &self,
        commands: Vec<Value>,
        harmless: fn(&str, &str) -> bool,
    ) -> Result<(), DynsecError> {
        let mut ready = self.ready.subscribe();
        if tokio::time::timeout(ANSWER_WITHIN, ready.wait_for(|r| *r))
            .await
            .map_or(true, |r| r.is_err())
        {
            return Err(DynsecError::NotConnected);
        }
        let mut answers = Vec::new();
        let mut batch = Vec::new();
        for mut c in commands {
            let tag = format!("thr-{}", self.next.fetch_add(1, Ordering::Relaxed));
            c["correlationData"] = Value::String(tag.clone());
            let (tx, rx) = oneshot::channel();
            self.table().insert(tag.clone(), tx);
            answers.push((tag, c["command"].as_str().unwrap_or("").to_owned(), rx));
            batch.push(c);
        }
        let payload = json!({ "commands": batch }).to_string();
        let sent = self
            .client
            .publish(CONTROL_TOPIC, QoS::AtLeastOnce, false, payload)
            .await;
        let result = match sent {
            Err(_) => Err(DynsecError::NotConnected),
            // The connection dropping (a role change makes Mosquitto drop it) ends the
            // wait at once: its answers will not come.
            Ok(()) => tokio::select! {
                r = self.collect(&mut answers, harmless) => r,
                _ = ready.wait_for(|r| !*r) => Err(DynsecError::NotConnected),
            },
        };
        let mut t = self.table();
        for (tag, _, _) in &answers {
            t.remove(tag);
        }
        result
    }

    async fn collect(
        &self,
        answers: &mut [(String, String, oneshot::Receiver<Value>)],
        harmless: fn(&str, &str) -> bool,
    ) -> Result<(), DynsecError> {
        let deadline = tokio::time::Instant::now() + ANSWER_WITHIN;
        for (_, command, rx) in answers.iter_mut() {
            let answer = tokio::time::timeout_at(deadline, rx)
                .await
                .map_err(|_| DynsecError::NoAnswer)?
                .map_err(|_| DynsecError::NoAnswer)?;
            if let Some(error) = answer.get("error").and_then(Value::as_str) {
                if !harmless(command, error) {
                    return Err(DynsecError::Refused {
                        command: command.clone(),
                        error: error.chars().take(200).collect(),
                    });
                }
            }
        }
        Ok(())
    }

    /// An answer published on [`RESPONSE_TOPIC`]; unknown or malformed ones are
    /// ignored (they may be answers to another admin's commands).
    pub fn on_response(&self, payload: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(payload) else {
            return;
        };
        let Some(list) = v.get("responses").and_then(Value::as_array) else {
            return;
        };
        let mut t = self.table();
        for r in list {
            if let Some(tx) = r
                .get("correlationData")
                .and_then(Value::as_str)
                .and_then(|tag| t.remove(tag))
            {
                let _ = tx.send(r.clone());
            }
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Value>>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;

    const DEV: &str = "65b60673d6ed884bf01c2c222d82ada0";

    #[test]
    fn a_device_role_names_its_own_two_topics_only() {
        let c = grant("threshold", DEV, "pw");
        let acls = c[0]["acls"].as_array().unwrap();
        let topics: Vec<(&str, &str)> = acls
            .iter()
            .map(|a| (a["acltype"].as_str().unwrap(), a["topic"].as_str().unwrap()))
            .collect();
        assert_eq!(
            topics,
            vec![
                (
                    "publishClientSend",
                    "threshold/v1/dev/65b60673d6ed884bf01c2c222d82ada0/up"
                ),
                (
                    "subscribeLiteral",
                    "threshold/v1/dev/65b60673d6ed884bf01c2c222d82ada0/down"
                ),
                (
                    "publishClientReceive",
                    "threshold/v1/dev/65b60673d6ed884bf01c2c222d82ada0/down"
                ),
            ]
        );
        assert!(topics
            .iter()
            .all(|(_, t)| !t.contains('+') && !t.contains('#')));
        assert_eq!(c[1]["command"], "createClient");
        assert_eq!(c[1]["username"], DEV);
        assert_eq!(c[1]["clientid"], DEV, "the client id is bound too");
        assert_eq!(c[1]["roles"][0]["rolename"], c[0]["rolename"]);
    }

    #[test]
    fn renewing_creates_what_is_missing_then_sets_the_password() {
        let c = renew("threshold", DEV, "new-pw");
        let names: Vec<&str> = c.iter().map(|x| x["command"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            vec!["createRole", "createClient", "setClientPassword"]
        );
        assert_eq!(c[..2], grant("threshold", DEV, "new-pw")[..]);
        assert_eq!(c[2]["username"], DEV);
        assert_eq!(c[2]["password"], "new-pw");
        // An existing client is no failure in a renewal (its password is set next),
        // but still is at enrolment; other refusals are failures in both.
        assert!(harmless_on_renew("createClient", "Client already exists"));
        assert!(!harmless("createClient", "Client already exists"));
        assert!(!harmless_on_renew("setClientPassword", "Client not found"));
        assert!(!harmless_on_renew("createClient", "Permission denied"));
        assert!(harmless_on_renew("createRole", "Role already exists"));
    }

    #[test]
    fn revoking_deletes_client_then_role() {
        let c = revoke(DEV);
        assert_eq!(c[0]["command"], "deleteClient");
        assert_eq!(c[1]["command"], "deleteRole");
        assert_eq!(c[1]["rolename"], device_role(DEV));
    }

    #[test]
    fn the_hub_reads_uplinks_and_writes_downlinks_of_its_prefix() {
        let c = hub_setup("acme/site1", "hub");
        assert_eq!(c[0]["rolename"], "threshold-hub-acme_site1");
        let acls = c[0]["acls"].to_string();
        assert!(acls.contains("acme/site1/v1/dev/+/up"));
        assert!(acls.contains("acme/site1/v1/dev/+/down"));
        assert_eq!(c[1]["username"], "hub");
    }

    #[test]
    fn restarts_and_repeats_are_harmless_other_errors_are_not() {
        assert!(harmless("createRole", "Role already exists"));
        assert!(harmless("addClientRole", "Client is already in this role"));
        assert!(harmless("deleteClient", "Client not found"));
        assert!(!harmless("createClient", "Client already exists"));
        assert!(!harmless("createRole", "Permission denied"));
    }
}
