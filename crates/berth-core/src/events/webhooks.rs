//! Webhooks as accounts configure them (`berth admin add-webhook`, the console): the URL, the
//! detail-types wanted, the signing secret (generated or given; sealed under a root-key
//! derivation bound to the webhook, never stored, logged or listed in clear), and the queueing
//! of an event for the webhooks that want it.

use std::sync::Arc;

use berth_store::{DeliveryRow, QueuedJob, WebhookRow};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{Event, DELIVERY_JOB, DETAIL_TYPES};
use crate::error::Result;
use crate::{Registry, RegistryError};

/// The root key derivation of webhook secrets.
pub(super) const SECRET_PURPOSE: &str = "berth webhook secret v1";
/// Attempts kept per webhook for its history.
pub(super) const HISTORY_KEPT: u32 = 50;

pub(super) fn secret_aad(account: &str, id: &str) -> Vec<u8> {
    format!("{account}\n{id}").into_bytes()
}

/// What `add_webhook` needs.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub account: String,
    pub url: String,
    /// Empty: every detail-type.
    pub detail_types: Vec<String>,
    /// None: generate one (returned once).
    pub secret: Option<Zeroizing<String>>,
}

/// A webhook as listed: never its secret.
#[derive(Debug, Clone, Serialize)]
pub struct Webhook {
    pub id: String,
    pub account: String,
    pub url: String,
    pub detail_types: Vec<String>,
    pub created_at: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub last_success_at: Option<i64>,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Webhook {
            id: r.id,
            account: r.account,
            url: r.url,
            detail_types: r.detail_types,
            created_at: r.created_at,
            last_error: r.last_error,
            last_error_at: r.last_error_at,
            last_success_at: r.last_success_at,
        }
    }
}

/// One delivery attempt as listed.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookDelivery {
    pub event_id: String,
    pub detail_type: String,
    pub attempt: i64,
    pub at: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub outcome: String,
}

impl From<DeliveryRow> for WebhookDelivery {
    fn from(r: DeliveryRow) -> Self {
        WebhookDelivery {
            event_id: r.event_id,
            detail_type: r.detail_type,
            attempt: r.attempt,
            at: r.at,
            status_code: r.status_code,
            error: r.error,
            outcome: r.outcome,
        }
    }
}

/// A delivery job's payload: the exact body to send (so every attempt signs the same bytes).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct DeliveryJob {
    pub webhook: String,
    pub event_id: String,
    pub detail_type: String,
    pub body: String,
    pub queued_at: i64,
}

/// An http(s) URL with a host and no fragment; loopback and private addresses are allowed (a
/// receiver beside berth is the common case).
fn check_url(url: &str) -> Result<()> {
    let parsed = url::Url::parse(url).map_err(|e| RegistryError::invalid(format!("webhook URL {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none_or(str::is_empty) {
        return Err(RegistryError::invalid(format!("webhook URL {url:?} is not an http:// or https:// URL")));
    }
    if parsed.fragment().is_some() {
        return Err(RegistryError::invalid(format!("webhook URL {url:?} has a fragment")));
    }
    Ok(())
}

fn check_detail_types(types: &[String]) -> Result<()> {
    match types.iter().find(|t| !DETAIL_TYPES.contains(&t.as_str())) {
        Some(t) => Err(RegistryError::invalid(format!("unknown detail-type {t:?}; berth emits {}", DETAIL_TYPES.join(", ")))),
        None => Ok(()),
    }
}

fn generated_secret() -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(format!("whsec_{}", hex::encode(crate::auth::random_bytes::<32>()?))))
}

impl Registry {
    /// Adds a webhook; returns it and the secret when berth generated it (shown once).
    pub async fn add_webhook(&self, new: NewWebhook) -> Result<(Webhook, Option<Zeroizing<String>>)> {
        if !crate::addressing::is_account_id(&new.account) {
            return Err(RegistryError::invalid(format!("account {:?} is not 12 digits", new.account)));
        }
        check_url(&new.url)?;
        check_detail_types(&new.detail_types)?;
        let (secret, generated) = match new.secret {
            Some(s) if s.trim().is_empty() => return Err(RegistryError::invalid("the webhook secret is empty")),
            Some(s) => (s, false),
            None => (generated_secret()?, true),
        };
        let id = uuid::Uuid::new_v4().to_string();
        let sealed_secret =
            self.seal_own_secret(SECRET_PURPOSE, &secret_aad(&new.account, &id), secret.as_bytes()).map_err(crate::kms::for_repository)?;
        let mut detail_types = new.detail_types;
        detail_types.sort();
        detail_types.dedup();
        let row = WebhookRow {
            id,
            account: new.account,
            url: new.url,
            detail_types,
            sealed_secret,
            created_at: self.now(),
            last_error: None,
            last_error_at: None,
            last_success_at: None,
        };
        self.meta.put_webhook(&row).await?;
        self.caches.invalidate_webhooks(&row.account);
        Ok((row.into(), generated.then_some(secret)))
    }

    /// The account's webhooks, oldest first.
    pub async fn list_webhooks(&self, account: &str) -> Result<Vec<Webhook>> {
        Ok(self.meta.webhooks(account).await?.into_iter().map(Webhook::from).collect())
    }

    /// The webhook's newest attempts (newest first); empty when the account has no such webhook.
    pub async fn webhook_deliveries(&self, account: &str, id: &str, limit: u32) -> Result<Vec<WebhookDelivery>> {
        match self.meta.webhook(id).await? {
            Some(w) if w.account == account => {
                Ok(self.meta.deliveries(id, limit.min(HISTORY_KEPT)).await?.into_iter().map(WebhookDelivery::from).collect())
            }
            _ => Ok(Vec::new()),
        }
    }

    /// False when the account has no such webhook. Its queued deliveries end unsent.
    pub async fn remove_webhook(&self, account: &str, id: &str) -> Result<bool> {
        let removed = self.meta.delete_webhook(account, id).await?;
        self.caches.invalidate_webhooks(account);
        Ok(removed)
    }

    /// The account's webhooks for queueing events, from the cache (a push in an account without
    /// webhooks costs one map lookup): this process's changes show at once, another process's
    /// (`berth admin`, another node) within the cache's few seconds.
    pub(crate) async fn account_webhooks(&self, account: &str) -> Result<Arc<[WebhookRow]>> {
        if let Some(hit) = self.caches.webhooks.get(account) {
            return Ok(hit);
        }
        let generation = self.caches.generation();
        let hooks: Arc<[WebhookRow]> = self.meta.webhooks(account).await?.into();
        self.caches.fill(&self.caches.webhooks, generation, account.to_string(), hooks.clone());
        Ok(hooks)
    }

    /// One delivery job per webhook of the account that wants the event, in one transaction;
    /// how many.
    pub(super) async fn queue_event(&self, event: &Event) -> Result<usize> {
        let hooks = self.account_webhooks(&event.account).await?;
        let jobs = delivery_jobs(&hooks, std::slice::from_ref(event), self.now())?;
        if !jobs.is_empty() {
            self.meta.queue_deliveries(&jobs, self.now()).await?;
        }
        Ok(jobs.len())
    }
}

/// The outbox jobs of `events`: one per (event, webhook that wants its detail-type), each
/// carrying the exact body every attempt sends.
pub(super) fn delivery_jobs(hooks: &[WebhookRow], events: &[Event], now: i64) -> Result<Vec<QueuedJob>> {
    let mut jobs = Vec::new();
    for event in events {
        let wanted = hooks.iter().filter(|w| w.detail_types.is_empty() || w.detail_types.contains(&event.detail_type));
        let mut body = None;
        for w in wanted {
            let body = match &body {
                Some(b) => b,
                None => {
                    body.insert(serde_json::to_string(event).map_err(|e| RegistryError::Validation(format!("encoding an event: {e}")))?)
                }
            };
            let payload = DeliveryJob {
                webhook: w.id.clone(),
                event_id: event.id.clone(),
                detail_type: event.detail_type.clone(),
                body: body.clone(),
                queued_at: now,
            };
            let payload = serde_json::to_string(&payload).map_err(|e| RegistryError::Validation(format!("encoding a delivery: {e}")))?;
            jobs.push(QueuedJob { kind: DELIVERY_JOB.into(), key: format!("{}/{}", event.id, w.id), payload });
        }
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_or_https_with_a_host() {
        assert!(check_url("http://127.0.0.1:8080/hook").is_ok());
        assert!(check_url("https://hooks.example/x?token=1").is_ok());
        for bad in ["ftp://x/", "file:///etc/passwd", "http://", "not a url", "https://x/#frag", "javascript:alert(1)"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn detail_types_are_ecr_names() {
        assert!(check_detail_types(&["ECR Image Action".into(), "ECR Image Scan".into()]).is_ok());
        assert!(check_detail_types(&["ECR Image Push".into()]).is_err());
    }
}
