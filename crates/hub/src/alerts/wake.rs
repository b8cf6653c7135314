//! Wakes the webhook sender when something is queued (held by the hub's state; the
//! sender is in `webhooks`).

#[derive(Debug, Default)]
pub struct Webhooks {
    pub(crate) wake: tokio::sync::Notify,
    /// Which endpoints each owner has (see `endpoints`).
    pub(crate) endpoints: crate::alerts::endpoints::WebhookDirectory,
}
