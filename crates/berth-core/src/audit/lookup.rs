//! LookupEvents: an account's records, newest first, by one attribute and a time range, in
//! pages of at most 50 with an opaque token.

use base64::Engine;
use berth_store::{AuditAttribute, AuditEventRow, AuditQuery};

use crate::auth::{Principal, Resource};
use crate::error::Result;
use crate::names::RegistryRef;
use crate::Registry;

/// CloudTrail's MaxResults bound.
pub const MAX_RESULTS: u32 = 50;
/// The lookup attribute keys, as CloudTrail names them.
pub const ATTRIBUTE_KEYS: [&str; 8] =
    ["EventName", "Username", "ResourceName", "ResourceType", "EventSource", "EventId", "ReadOnly", "AccessKeyId"];

/// One lookup attribute from its key and value (CloudTrail's rules: a known key, a value of 1
/// to 2000 characters, ReadOnly `true` or `false`); Err says what is wrong.
pub fn lookup_attribute(key: &str, value: &str) -> std::result::Result<AuditAttribute, String> {
    if value.is_empty() || value.chars().count() > 2000 {
        return Err("AttributeValue must be 1 to 2000 characters.".into());
    }
    let v = value.to_string();
    Ok(match key {
        "EventName" => AuditAttribute::EventName(v),
        "Username" => AuditAttribute::Username(v),
        "ResourceName" => AuditAttribute::ResourceName(v),
        "ResourceType" => AuditAttribute::ResourceType(v),
        "EventSource" => AuditAttribute::EventSource(v),
        "EventId" => AuditAttribute::EventId(v),
        "AccessKeyId" => AuditAttribute::AccessKeyId(v),
        "ReadOnly" => match value {
            "true" => AuditAttribute::ReadOnly(true),
            "false" => AuditAttribute::ReadOnly(false),
            _ => return Err("The ReadOnly attribute value must be true or false.".into()),
        },
        other => return Err(format!("{other} is not a valid lookup attribute key.")),
    })
}

#[derive(Debug, Clone, Default)]
pub struct LookupRequest {
    pub attribute: Option<AuditAttribute>,
    /// Inclusive, milliseconds.
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub max_results: Option<u32>,
    /// A page token from the previous page (see `PageToken`).
    pub next_token: Option<(i64, i64)>,
}

#[derive(Debug, Clone)]
pub struct LookupPage {
    pub events: Vec<AuditEventRow>,
    pub next_token: Option<String>,
}

/// The page token: where the previous page ended (event time, seq), opaque to clients.
pub struct PageToken;

impl PageToken {
    pub fn encode(event_time: i64, seq: i64) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("audit1:{event_time}:{seq}"))
    }

    /// None for anything `encode` did not make.
    pub fn decode(token: &str) -> Option<(i64, i64)> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.strip_prefix("audit1:")?.split(':');
        let (t, s) = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        parts.next().is_none().then_some((t, s))
    }
}

impl Registry {
    /// The caller's account's records (`cloudtrail:LookupEvents` in the caller's registry).
    pub async fn lookup_audit_events(&self, principal: &Principal, region: &str, request: LookupRequest) -> Result<LookupPage> {
        let scope = RegistryRef { account: principal.account.clone(), region: region.to_string() };
        self.authorize(principal, "cloudtrail:LookupEvents", Resource::Registry(&scope)).await?;
        self.lookup_account_audit_events(&principal.account, request).await
    }

    /// An account's records, for a caller already authorized (the console's page).
    pub async fn lookup_account_audit_events(&self, account: &str, request: LookupRequest) -> Result<LookupPage> {
        let limit = request.max_results.unwrap_or(MAX_RESULTS).clamp(1, MAX_RESULTS);
        let query = AuditQuery {
            account: account.to_string(),
            attribute: request.attribute,
            start: request.start,
            end: request.end,
            before: request.next_token,
            limit: limit + 1,
        };
        let mut events = self.meta.lookup_audit_events(&query).await?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next_token = if more { events.last().map(|e| PageToken::encode(e.event.event_time, e.seq)) } else { None };
        Ok(LookupPage { events, next_token })
    }
}
