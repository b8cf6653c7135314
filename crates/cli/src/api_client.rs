//! The hub's HTTP API as the command line speaks it: one blocking call, run off the
//! async workers, answering the status and the JSON body (`null` when there is none).

use serde_json::Value;
use std::time::Duration;

/// The hub CA this process trusts for `https://` calls besides the public roots (the
/// demo's own hub, or `--hub-ca`); set once.
static HUB_CA: std::sync::OnceLock<std::sync::Arc<threshold_agent::tls::ClientConfig>> =
    std::sync::OnceLock::new();

/// Trust the CA certificate in `pem` for every later call.
pub fn trust_ca(pem: &std::path::Path) -> anyhow::Result<()> {
    let config = threshold_agent::tls::client_config(Some(pem))?;
    let _ = HUB_CA.set(config);
    Ok(())
}

fn agent() -> ureq::Agent {
    match HUB_CA.get() {
        Some(c) => ureq::AgentBuilder::new().tls_config(c.clone()).build(),
        None => ureq::agent(),
    }
}

/// One HTTP call with an optional bearer token and JSON body.
pub async fn http(
    method: &'static str,
    url: String,
    token: Option<String>,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    tokio::task::spawn_blocking(move || -> anyhow::Result<(u16, Value)> {
        let mut req = agent()
            .request(method, &url)
            .timeout(Duration::from_secs(15));
        if let Some(t) = &token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let resp = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(anyhow::anyhow!("{method} {url}: {e}")),
        };
        let status = resp.status();
        let text = resp.into_string().unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    })
    .await?
}

/// The API's error as one line: its stable code and its message.
pub fn error_text(status: u16, body: &Value) -> String {
    match (
        body["error"]["code"].as_str(),
        body["error"]["message"].as_str(),
    ) {
        (Some(code), Some(msg)) => format!("{msg} ({code}, HTTP {status})"),
        _ => format!("HTTP {status}: {body}"),
    }
}
