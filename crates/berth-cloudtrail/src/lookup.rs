//! LookupEvents: CloudTrail's input checks and exceptions, and its output shape.

use berth_aws::error::AwsError;
use berth_aws::operation::Authorizer;
use berth_core::audit::{LookupRequest, PageToken, MAX_RESULTS};
use berth_core::auth::{Principal, Resource};
use berth_core::{Registry, RegistryRef};
use berth_store::{AuditAttribute, AuditEventRow};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct Input {
    #[serde(default)]
    lookup_attributes: Vec<Attribute>,
    start_time: Option<f64>,
    end_time: Option<f64>,
    event_category: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attribute {
    attribute_key: String,
    attribute_value: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> AwsError {
    AwsError::new(code, message)
}

/// CloudTrail takes one attribute; its value 1 to 2000 characters.
fn attribute(given: &[Attribute]) -> Result<Option<AuditAttribute>, AwsError> {
    let [a] = given else {
        return match given.len() {
            0 => Ok(None),
            _ => Err(invalid("InvalidLookupAttributesException", "You cannot specify more than one lookup attribute.")),
        };
    };
    berth_core::audit::lookup_attribute(&a.attribute_key, &a.attribute_value)
        .map(Some)
        .map_err(|why| invalid("InvalidLookupAttributesException", why))
}

fn millis(seconds: Option<f64>) -> Option<i64> {
    seconds.map(|s| (s * 1000.0).floor() as i64)
}

fn request(input: &Input) -> Result<LookupRequest, AwsError> {
    if input.event_category.as_deref().is_some_and(|c| c != "insight") {
        return Err(invalid("InvalidEventCategoryException", "EventCategory must be insight."));
    }
    let max_results = match input.max_results {
        None => None,
        Some(n) if (1..=i64::from(MAX_RESULTS)).contains(&n) => Some(n as u32),
        Some(_) => return Err(invalid("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")),
    };
    let (start, end) = (millis(input.start_time), millis(input.end_time));
    if let (Some(s), Some(e)) = (start, end) {
        if s > e {
            return Err(invalid("InvalidTimeRangeException", "The start time must not be after the end time."));
        }
    }
    let next_token = match input.next_token.as_deref() {
        None | Some("") => None,
        Some(t) => Some(PageToken::decode(t).ok_or_else(|| invalid("InvalidNextTokenException", "The NextToken is not valid."))?),
    };
    Ok(LookupRequest { attribute: attribute(&input.lookup_attributes)?, start, end, max_results, next_token })
}

fn event(row: &AuditEventRow) -> Value {
    let resources: Vec<Value> =
        row.event.resources.iter().map(|(name, kind)| json!({ "ResourceType": kind, "ResourceName": name })).collect();
    let mut e = json!({
        "EventId": row.event.event_id,
        "EventName": row.event.event_name,
        "ReadOnly": if row.event.read_only { "true" } else { "false" },
        "EventTime": row.event.event_time as f64 / 1000.0,
        "EventSource": row.event.event_source,
        "Username": row.event.username,
        "Resources": resources,
        "CloudTrailEvent": row.event.record,
    });
    if !row.event.access_key_id.is_empty() {
        e["AccessKeyId"] = json!(row.event.access_key_id);
    }
    e
}

pub(crate) async fn lookup_events(
    registry: &Registry,
    principal: &Principal,
    auth: &Authorizer<'_>,
    body: &[u8],
) -> Result<Value, AwsError> {
    let body = if body.is_empty() { b"{}".as_slice() } else { body };
    let input: Input =
        serde_json::from_slice(body).map_err(|e| AwsError::new("SerializationException", format!("could not read the request: {e}")))?;
    let request = request(&input)?;
    // berth records no Insights events: that category is always empty.
    if input.event_category.is_some() {
        return Ok(json!({ "Events": [] }));
    }
    // An account's trail: the caller's own account, in the region it signed for.
    let region = principal.region.clone().unwrap_or_else(|| registry.config().default_registry.region.clone());
    let scope = RegistryRef { account: principal.account.clone(), region };
    auth.allow(Resource::Registry(&scope)).await.map_err(crate::from_registry)?;
    let page = registry.lookup_account_audit_events(&principal.account, request).await.map_err(crate::from_registry)?;
    let mut out = json!({ "Events": page.events.iter().map(event).collect::<Vec<_>>() });
    if let Some(token) = page.next_token {
        out["NextToken"] = json!(token);
    }
    Ok(out)
}
