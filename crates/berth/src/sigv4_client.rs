//! The registry password for an access key, as `aws ecr get-login-password` gets it: a
//! SigV4-signed `GetAuthorizationToken` to the server. The canonical form comes from berth-iam's
//! verifier (the same code that checks it on the other side); only the signing key chain is here.

use anyhow::Context;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const TARGET: &str = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
const CONTENT: &str = "application/x-amz-json-1.1";

pub async fn registry_password(http: &reqwest::Client, base: &str, key_id: &str, secret: &str, region: &str) -> anyhow::Result<String> {
    let url = reqwest::Url::parse(base).with_context(|| format!("{base} is not a URL"))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_string(),
        (None, _) => anyhow::bail!("{base} has no host"),
    };
    let body = b"{}";
    let now = time::OffsetDateTime::now_utc();
    let date = format!("{:04}{:02}{:02}", now.year(), u8::from(now.month()), now.day());
    let amz_date = format!("{date}T{:02}{:02}{:02}Z", now.hour(), now.minute(), now.second());
    let scope = format!("{date}/{region}/ecr/aws4_request");
    let mut headers = http::HeaderMap::new();
    headers.insert("host", host.parse()?);
    headers.insert("x-amz-date", amz_date.parse()?);
    headers.insert("x-amz-target", TARGET.parse()?);
    headers.insert("content-type", CONTENT.parse()?);
    let signed = "content-type;host;x-amz-date;x-amz-target";
    // A placeholder signature lets berth-iam parse the request and build its string to sign.
    let placeholder = format!("AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={}", "0".repeat(64));
    headers.insert(http::header::AUTHORIZATION, placeholder.parse()?);
    let payload = hex::encode(Sha256::digest(body));
    let parts = berth_iam::sigv4::RequestParts { method: "POST", path: "/", query: None, headers: &headers, payload_sha256: &payload };
    let parsed = berth_iam::sigv4::parse(&parts).map_err(|e| anyhow::anyhow!("signing: {e:?}"))?;
    let to_sign = berth_iam::sigv4::string_to_sign(&parts, &parsed).map_err(|e| anyhow::anyhow!("signing: {e:?}"))?;
    let mut k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "ecr", "aws4_request"] {
        k = hmac(&k, part.as_bytes());
    }
    let signature = hex::encode(hmac(&k, to_sign.as_bytes()));
    let authorization = format!("AWS4-HMAC-SHA256 Credential={key_id}/{scope}, SignedHeaders={signed}, Signature={signature}");
    let resp = http
        .post(url)
        .header("content-type", CONTENT)
        .header("x-amz-target", TARGET)
        .header("x-amz-date", &amz_date)
        .header("authorization", authorization)
        .body(&body[..])
        .send()
        .await
        .with_context(|| format!("calling GetAuthorizationToken on {base}"))?;
    let code = resp.status();
    let text = resp.text().await.context("reading GetAuthorizationToken's answer")?;
    if !code.is_success() {
        anyhow::bail!("GetAuthorizationToken on {base} answered {code}: {}", text.trim());
    }
    let answer: serde_json::Value = serde_json::from_str(&text).context("parsing GetAuthorizationToken's answer")?;
    let token = answer["authorizationData"][0]["authorizationToken"].as_str().context("GetAuthorizationToken answered no token")?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(token).context("decoding the authorization token")?;
    let decoded = String::from_utf8(decoded).context("decoding the authorization token")?;
    let (_, password) = decoded.split_once(':').context("the authorization token is not AWS:<password>")?;
    Ok(password.to_string())
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length; the fallback keeps this total without an unwrap.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else { return Vec::new() };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}
