//! Authentication, retries and redirects against one small in-test registry: what CNCF
//! distribution cannot be configured to do here (token auth, failing on purpose).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use berth_oci_client::{ClientError, ClientOptions, Credentials, Endpoint, OciClient};
use futures::TryStreamExt;
use sha2::{Digest, Sha256};

const PASSWORD: &str = "s3cr3t-Passw0rd-do-not-print";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY-do-not-print";
const TOKEN: &str = "issued-token-do-not-print";
const ECR_PASSWORD: &str = "ecr-password-do-not-print";
const BLOB: &[u8] = b"redirected blob bytes";

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Bearer,
    Basic,
    Ecr,
    /// `GET /v2/` answers 503 this many times, then 200.
    Unavailable(usize),
    /// `GET /v2/` answers 429 with `Retry-After: 0` once, then 200.
    RateLimited,
    /// A blob GET redirects to another origin, which must not see our Authorization.
    Redirect,
    /// The first blob upload PUT answers 503 (after taking the body), the next one checks it.
    FlakyUpload,
    /// A blob upload PUT takes the body and never answers; a blob GET never answers.
    Hanging,
}

struct Mock {
    mode: Mode,
    base: String,
    /// Same port, another host name: another origin for redirects.
    other_origin: String,
    hits: AtomicUsize,
    token_requests: AtomicUsize,
    ecr_requests: AtomicUsize,
    token_scopes: Mutex<Vec<String>>,
    redirect_saw_authorization: Mutex<Option<bool>>,
    puts: AtomicUsize,
}

async fn start(mode: Mode) -> Arc<Mock> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mock = Arc::new(Mock {
        mode,
        base: format!("http://127.0.0.1:{port}"),
        other_origin: format!("http://localhost:{port}"),
        hits: AtomicUsize::new(0),
        token_requests: AtomicUsize::new(0),
        ecr_requests: AtomicUsize::new(0),
        token_scopes: Mutex::new(Vec::new()),
        redirect_saw_authorization: Mutex::new(None),
        puts: AtomicUsize::new(0),
    });
    let app = axum::Router::new().fallback(handle).with_state(mock.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    mock
}

fn connect(mock: &Mock, credentials: Credentials) -> OciClient {
    let endpoint = Endpoint { base: url::Url::parse(&mock.base).unwrap(), credentials, allow_insecure: true };
    let options = ClientOptions { backoff_base: Duration::from_millis(1), backoff_max: Duration::from_millis(20), ..Default::default() };
    OciClient::new(endpoint, options).unwrap()
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

fn auth_header(headers: &HeaderMap) -> Option<String> {
    headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn oci_error(status: StatusCode, code: &str, extra: &[(&str, String)]) -> Response {
    let mut resp = (status, format!(r#"{{"errors":[{{"code":"{code}","message":"{code} from the mock"}}]}}"#)).into_response();
    for (name, value) in extra {
        resp.headers_mut().insert(axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    resp
}

async fn handle(State(mock): State<Arc<Mock>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 16 << 20).await.unwrap();
    let path = parts.uri.path().to_string();
    let host = parts.headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let auth = auth_header(&parts.headers);

    if host.starts_with("localhost") && path == "/object" {
        *mock.redirect_saw_authorization.lock().unwrap() = Some(auth.is_some());
        return (StatusCode::OK, BLOB).into_response();
    }
    if path == "/token" {
        mock.token_requests.fetch_add(1, Ordering::SeqCst);
        if auth.as_deref() != Some(basic("alice", PASSWORD).as_str()) {
            return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
        }
        let query = parts.uri.query().unwrap_or_default();
        let scopes: Vec<String> = form_pairs(query).into_iter().filter(|(k, _)| k == "scope").map(|(_, v)| v).collect();
        assert!(form_pairs(query).contains(&("service".into(), "mock registry".into())), "{query}");
        mock.token_scopes.lock().unwrap().extend(scopes);
        return axum::Json(serde_json::json!({"access_token": TOKEN, "expires_in": 300})).into_response();
    }
    if parts.method == "POST" && path == "/" {
        return ecr_api(&mock, &parts, &body);
    }
    mock.hits.fetch_add(1, Ordering::SeqCst);
    let hits = mock.hits.load(Ordering::SeqCst);
    let challenge = |value: String| oci_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", &[("www-authenticate", value)]);
    let expected = match mock.mode {
        Mode::Bearer => Some(format!("Bearer {TOKEN}")),
        Mode::Basic | Mode::Redirect => Some(basic("alice", PASSWORD)),
        Mode::Ecr => Some(basic("AWS", ECR_PASSWORD)),
        _ => None,
    };
    if expected.is_some() && auth != expected {
        return challenge(match mock.mode {
            Mode::Bearer => {
                let scope = path.strip_prefix("/v2/").and_then(|p| p.split_once("/blobs/")).map(|(repo, _)| repo);
                let scope = scope.map(|r| format!(r#","scope="repository:{r}:pull""#)).unwrap_or_default();
                format!(r#"Bearer realm="{}/token",service="mock registry"{scope}"#, mock.base)
            }
            Mode::Ecr => r#"Basic realm="https://127.0.0.1/",service="ecr.amazonaws.com""#.into(),
            _ => r#"Basic realm="mock, with a comma""#.into(),
        });
    }
    match mock.mode {
        Mode::Unavailable(n) if hits <= n => return oci_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", &[]),
        Mode::RateLimited if hits == 1 => {
            return oci_error(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", &[("retry-after", "0".into())])
        }
        Mode::Redirect if path.contains("/blobs/") => {
            let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
            resp.headers_mut().insert("location", format!("{}/object?X-Amz-Signature=abc", mock.other_origin).parse().unwrap());
            return resp;
        }
        _ => {}
    }
    if parts.method == "POST" && path.ends_with("/blobs/uploads/") {
        let location = format!("{path}session-1?_state=opaque");
        return Response::builder().status(202).header("location", location).body(Body::empty()).unwrap();
    }
    if parts.method == "PUT" && path.contains("/blobs/uploads/") {
        let n = mock.puts.fetch_add(1, Ordering::SeqCst) + 1;
        if mock.mode == Mode::Hanging {
            return futures::future::pending().await;
        }
        if mock.mode == Mode::FlakyUpload && n == 1 {
            return oci_error(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", &[]);
        }
        let query = form_pairs(parts.uri.query().unwrap_or_default());
        assert!(query.contains(&("_state".into(), "opaque".into())), "{query:?}");
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if !query.contains(&("digest".into(), digest)) {
            return oci_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID", &[]);
        }
        return StatusCode::CREATED.into_response();
    }
    if path == "/v2/" {
        return (StatusCode::OK, "{}").into_response();
    }
    if mock.mode == Mode::Hanging && parts.method == "GET" && path.contains("/blobs/") {
        return futures::future::pending().await;
    }
    if parts.method == "HEAD" && path.contains("/blobs/") {
        return Response::builder().status(200).header("content-length", "42").body(Body::empty()).unwrap();
    }
    oci_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN", &[])
}

/// ECR's GetAuthorizationToken, checking the SigV4 signature the way berth does.
fn ecr_api(mock: &Mock, parts: &axum::http::request::Parts, body: &[u8]) -> Response {
    mock.ecr_requests.fetch_add(1, Ordering::SeqCst);
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    assert_eq!(target, "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken");
    let payload = hex::encode(Sha256::digest(body));
    let req = berth_iam::sigv4::RequestParts { method: "POST", path: "/", query: None, headers: &parts.headers, payload_sha256: &payload };
    let verified = berth_iam::sigv4::parse(&req).and_then(|parsed| {
        assert_eq!(parsed.credential().access_key_id, "AKIDMOCK");
        assert_eq!(parsed.credential().region, "eu-central-1");
        assert_eq!(parsed.credential().service, "ecr");
        berth_iam::sigv4::verify(&req, &parsed, SECRET_KEY, time::OffsetDateTime::now_utc())
    });
    if verified.is_err() {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"__type": "InvalidSignatureException", "message": "bad signature"})),
        )
            .into_response();
    }
    let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{ECR_PASSWORD}"));
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + 12 * 3600;
    axum::Json(serde_json::json!({"authorizationData": [{"authorizationToken": token, "expiresAt": expires, "proxyEndpoint": mock.base}]}))
        .into_response()
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

fn alice() -> Credentials {
    Credentials::Basic { username: "alice".into(), password: PASSWORD.into() }
}

const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

#[tokio::test]
async fn bearer_token_is_fetched_with_basic_scoped_and_cached() {
    let mock = start(Mode::Bearer).await;
    let client = connect(&mock, alice());
    client.ping().await.unwrap();
    assert_eq!(client.head_blob("team/app", DIGEST).await.unwrap(), Some(42));
    assert_eq!(client.head_blob("team/app", DIGEST).await.unwrap(), Some(42));
    // One token for /v2/ (no scope), one for the repository, reused by the second HEAD.
    assert_eq!(mock.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(*mock.token_scopes.lock().unwrap(), vec!["repository:team/app:pull".to_string()]);
    // ping: 401 + retry; first HEAD: up front with a new token for its scope; second: cached.
    assert_eq!(mock.hits.load(Ordering::SeqCst), 4);

    // A wrong password: the token service refuses it.
    let wrong = connect(&mock, Credentials::Basic { username: "alice".into(), password: "wrong".into() });
    let err = wrong.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn basic_challenge_is_answered_then_sent_up_front() {
    let mock = start(Mode::Basic).await;
    let client = connect(&mock, alice());
    client.ping().await.unwrap();
    assert_eq!(client.head_blob("team/app", DIGEST).await.unwrap(), Some(42));
    assert_eq!(mock.hits.load(Ordering::SeqCst), 3, "401 + retry for ping, then Basic up front");

    let anonymous = connect(&mock, Credentials::Anonymous);
    assert!(matches!(anonymous.ping().await, Err(ClientError::Unauthorized { .. })));
    let wrong = connect(&mock, Credentials::Basic { username: "alice".into(), password: "nope".into() });
    assert!(matches!(wrong.ping().await, Err(ClientError::Unauthorized { .. })));
}

#[tokio::test]
async fn ecr_credentials_get_a_signed_authorization_token_once() {
    let mock = start(Mode::Ecr).await;
    let credentials = Credentials::Ecr {
        access_key_id: "AKIDMOCK".into(),
        secret_access_key: SECRET_KEY.into(),
        region: "eu-central-1".into(),
        api_endpoint: None,
    };
    let client = connect(&mock, credentials);
    client.ping().await.unwrap();
    assert_eq!(client.head_blob("team/app", DIGEST).await.unwrap(), Some(42));
    assert_eq!(mock.ecr_requests.load(Ordering::SeqCst), 1, "the ECR token is cached");

    let wrong = connect(
        &mock,
        Credentials::Ecr {
            access_key_id: "AKIDMOCK".into(),
            secret_access_key: "wrong".into(),
            region: "eu-central-1".into(),
            api_endpoint: None,
        },
    );
    let err = wrong.ping().await.unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let mock = start(Mode::Unavailable(2)).await;
    connect(&mock, Credentials::Anonymous).ping().await.unwrap();
    assert_eq!(mock.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let mock = start(Mode::Unavailable(100)).await;
    let endpoint = Endpoint { base: url::Url::parse(&mock.base).unwrap(), credentials: Credentials::Anonymous, allow_insecure: true };
    let options = ClientOptions { max_attempts: 3, backoff_base: Duration::from_millis(1), ..Default::default() };
    let err = OciClient::new(endpoint, options).unwrap().ping().await.unwrap_err();
    assert!(matches!(&err, ClientError::Remote { status: 503, code: Some(c), .. } if c == "UNAVAILABLE"), "{err:?}");
    assert_eq!(mock.hits.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn rate_limit_with_retry_after_zero_is_retried() {
    let mock = start(Mode::RateLimited).await;
    connect(&mock, Credentials::Anonymous).ping().await.unwrap();
    assert_eq!(mock.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn redirect_to_another_origin_gets_no_authorization() {
    let mock = start(Mode::Redirect).await;
    let client = connect(&mock, alice());
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(BLOB)));
    let blob = client.get_blob("team/app", &digest).await.unwrap();
    assert_eq!(blob.size, BLOB.len() as u64);
    let bytes: Vec<u8> = blob.stream.map_ok(|b| b.to_vec()).try_concat().await.unwrap();
    assert_eq!(bytes, BLOB);
    assert_eq!(*mock.redirect_saw_authorization.lock().unwrap(), Some(false));

    // The same bytes under another digest: the stream's last item is the mismatch.
    let blob = client.get_blob("team/app", DIGEST).await.unwrap();
    let err = blob.stream.map_ok(|b| b.to_vec()).try_concat().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    assert!(err.to_string().contains("digest mismatch"), "{err}");
}

/// Every Debug and Display a caller could log: the client, its endpoint, each error,
/// including errors from failed authentication, never show a password, secret or token.
#[tokio::test]
async fn secrets_never_appear_in_debug_or_display() {
    let mut shown = String::new();
    for mode in [Mode::Bearer, Mode::Basic, Mode::Ecr] {
        let mock = start(mode).await;
        for credentials in [
            alice(),
            Credentials::Basic { username: "alice".into(), password: format!("{PASSWORD}-wrong") },
            Credentials::Ecr {
                access_key_id: "AKIDMOCK".into(),
                secret_access_key: SECRET_KEY.into(),
                region: "eu-central-1".into(),
                api_endpoint: None,
            },
        ] {
            let client = connect(&mock, credentials.clone());
            let _ = client.ping().await;
            let result = client.head_blob("team/app", DIGEST).await;
            shown += &format!("{client:?}\n{client:#?}\n{:?}\n{credentials:?}\n{result:?}\n", client.endpoint());
            if let Err(e) = result {
                shown += &format!("{e}\n{e:?}\n");
            }
            if let Err(e) = client.get_manifest("team/app", "latest").await {
                shown += &format!("{e}\n{e:?}\n");
            }
        }
    }
    let errors = [
        ClientError::Unauthorized { message: "m".into() },
        ClientError::Denied { message: "m".into() },
        ClientError::NotFound { code: Some("BLOB_UNKNOWN".into()) },
        ClientError::TooManyRequests { retry_after: Some(Duration::from_secs(1)) },
        ClientError::Remote { status: 500, code: Some("X".into()), message: Some("y".into()) },
        ClientError::DigestMismatch { expected: "a".into(), actual: "b".into() },
        ClientError::Timeout("t".into()),
        ClientError::Transport("t".into()),
        ClientError::Insecure("http://x".into()),
        ClientError::Config("c".into()),
        ClientError::Protocol("p".into()),
    ];
    for e in &errors {
        shown += &format!("{e}\n{e:?}\n");
    }
    assert!(shown.contains("alice") && shown.contains("AKIDMOCK"), "the test formatted what it meant to");
    for secret in [PASSWORD, SECRET_KEY, TOKEN, ECR_PASSWORD] {
        assert!(!shown.contains(secret), "{secret} leaked into:\n{shown}");
    }
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("alice:{PASSWORD}"));
    assert!(!shown.contains(&encoded));
}

#[tokio::test]
async fn a_failed_upload_is_sent_again_from_a_reopened_stream() {
    let mock = start(Mode::FlakyUpload).await;
    let client = connect(&mock, Credentials::Anonymous);
    let data = bytes::Bytes::from(vec![7u8; 300 * 1024]);
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
    let opened = AtomicUsize::new(0);
    client
        .push_blob("team/app", &digest, data.len() as u64, || {
            opened.fetch_add(1, Ordering::SeqCst);
            let chunks: Vec<std::io::Result<bytes::Bytes>> = data.chunks(64 * 1024).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
            async move { Ok(futures::stream::iter(chunks)) }
        })
        .await
        .unwrap();
    assert_eq!(opened.load(Ordering::SeqCst), 2, "the body was opened once per attempt");
    assert_eq!(mock.puts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn uploads_and_downloads_without_an_answer_time_out() {
    let mock = start(Mode::Hanging).await;
    let endpoint = Endpoint { base: url::Url::parse(&mock.base).unwrap(), credentials: Credentials::Anonymous, allow_insecure: true };
    let options = ClientOptions { request_timeout: Duration::from_millis(300), max_attempts: 1, ..Default::default() };
    let client = OciClient::new(endpoint, options).unwrap();
    let data = bytes::Bytes::from_static(b"hello");
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
    let err = client
        .push_blob("team/app", &digest, 5, || {
            let data = data.clone();
            async move { Ok(futures::stream::iter([Ok(data)])) }
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(mock.puts.load(Ordering::SeqCst), 1);
    // A blob GET has no whole-request limit, but its answer must come within the timeout.
    let err = client.get_blob("team/app", &digest).await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout(_)), "{err:?}");
}
