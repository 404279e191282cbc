//! ECR `GetAuthorizationToken`: an AWS access key turned into a registry password.

use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use serde::Deserialize;
use time::OffsetDateTime;
use url::Url;

use crate::error::ClientError;
use crate::sigv4::{amz_date, authorization, SigningKey};

const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
const CONTENT: &str = "application/x-amz-json-1.1";
/// Renew this long before the token expires, so a long replication does not cross it.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

pub(crate) struct EcrToken {
    pub password: String,
    pub refresh_at: Instant,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Output {
    #[serde(default)]
    authorization_data: Vec<AuthorizationData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorizationData {
    authorization_token: Option<String>,
    /// Epoch seconds (the JSON 1.1 timestamp form).
    expires_at: Option<f64>,
}

#[derive(Deserialize)]
struct AwsError {
    #[serde(rename = "__type", default)]
    kind: String,
    #[serde(alias = "Message", default)]
    message: String,
}

pub(crate) async fn get_authorization_token(
    http: &reqwest::Client,
    api: &Url,
    key: &SigningKey<'_>,
    timeout: Duration,
) -> Result<EcrToken, ClientError> {
    let host = match (api.host_str(), api.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => return Err(ClientError::Config(format!("ECR API endpoint {api} has no host"))),
    };
    let body = b"{}";
    let date = amz_date(OffsetDateTime::now_utc());
    let signed = [("host", host.as_str()), ("x-amz-date", date.as_str()), ("x-amz-target", TARGET), ("content-type", CONTENT)];
    let auth = authorization(key, "POST", api, &signed, body);
    let resp = http
        .post(api.clone())
        .timeout(timeout)
        .header(CONTENT_TYPE, CONTENT)
        .header("x-amz-target", TARGET)
        .header("x-amz-date", &date)
        .header(AUTHORIZATION, auth)
        .body(&body[..])
        .send()
        .await
        .map_err(ClientError::from_reqwest)?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(ClientError::from_reqwest)?;
    if !status.is_success() {
        return Err(map_error(status, &bytes));
    }
    parse_output(&bytes, OffsetDateTime::now_utc(), Instant::now())
}

fn parse_output(bytes: &[u8], now: OffsetDateTime, now_instant: Instant) -> Result<EcrToken, ClientError> {
    let out: Output = serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol(format!("GetAuthorizationToken output: {e}")))?;
    let data = out
        .authorization_data
        .into_iter()
        .next()
        .ok_or_else(|| ClientError::Protocol("GetAuthorizationToken returned no authorizationData".into()))?;
    let encoded =
        data.authorization_token.ok_or_else(|| ClientError::Protocol("GetAuthorizationToken returned no authorizationToken".into()))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ClientError::Protocol("authorizationToken is not base64 text".into()))?;
    let password = match decoded.split_once(':') {
        Some(("AWS", password)) if !password.is_empty() => password.to_string(),
        _ => return Err(ClientError::Protocol("authorizationToken is not AWS:<password>".into())),
    };
    let remaining = data.expires_at.map(|at| at - now.unix_timestamp() as f64).unwrap_or(0.0).max(0.0);
    let refresh_at = now_instant + Duration::from_secs_f64(remaining).saturating_sub(RENEW_BEFORE);
    Ok(EcrToken { password, refresh_at })
}

fn map_error(status: StatusCode, body: &[u8]) -> ClientError {
    let err = serde_json::from_slice::<AwsError>(body).unwrap_or(AwsError { kind: String::new(), message: String::new() });
    // `__type` may be prefixed with a namespace (`com.amazonaws...#Name`).
    let kind = err.kind.rsplit('#').next().unwrap_or_default().to_string();
    let message = if err.message.is_empty() {
        format!("GetAuthorizationToken: {kind}")
    } else {
        format!("GetAuthorizationToken: {kind}: {}", err.message)
    };
    match kind.as_str() {
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "IncompleteSignature"
        | "MissingAuthenticationTokenException"
        | "ExpiredTokenException" => ClientError::Unauthorized { message },
        "AccessDeniedException" => ClientError::Denied { message },
        "ThrottlingException" => ClientError::TooManyRequests { retry_after: None },
        _ if status == StatusCode::TOO_MANY_REQUESTS => ClientError::TooManyRequests { retry_after: None },
        _ => ClientError::Remote { status: status.as_u16(), code: (!kind.is_empty()).then_some(kind), message: Some(message) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_decoded_and_renewed_five_minutes_early() {
        let now = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let instant = Instant::now();
        let body = format!(
            r#"{{"authorizationData":[{{"authorizationToken":"{}","expiresAt":{}.5,"proxyEndpoint":"https://x"}}]}}"#,
            base64::engine::general_purpose::STANDARD.encode("AWS:pass:with:colons"),
            1_700_000_000 + 12 * 3600
        );
        let t = parse_output(body.as_bytes(), now, instant).unwrap();
        assert_eq!(t.password, "pass:with:colons");
        let ahead = t.refresh_at - instant;
        assert!(ahead > Duration::from_secs(12 * 3600 - 301) && ahead < Duration::from_secs(12 * 3600 - 299), "{ahead:?}");
        let bad = format!(
            r#"{{"authorizationData":[{{"authorizationToken":"{}"}}]}}"#,
            base64::engine::general_purpose::STANDARD.encode("bob:x")
        );
        assert!(matches!(parse_output(bad.as_bytes(), now, instant), Err(ClientError::Protocol(_))));
    }

    #[test]
    fn aws_errors_map_to_what_callers_act_on() {
        let e = map_error(
            StatusCode::BAD_REQUEST,
            br#"{"__type":"UnrecognizedClientException","message":"The security token included in the request is invalid."}"#,
        );
        assert!(matches!(e, ClientError::Unauthorized { .. }), "{e:?}");
        let e = map_error(StatusCode::BAD_REQUEST, br#"{"__type":"com.amazon.coral#AccessDeniedException","Message":"no"}"#);
        assert!(matches!(e, ClientError::Denied { .. }), "{e:?}");
        let e = map_error(StatusCode::INTERNAL_SERVER_ERROR, br#"{"__type":"ServerException","message":"x"}"#);
        assert!(e.is_retryable());
        assert_eq!(e.code(), Some("ServerException"));
    }
}
