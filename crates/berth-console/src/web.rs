//! Request plumbing shared by every page: the session (cookie → principal), POST forms with
//! their CSRF check, errors as pages, redirects.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use berth_core::auth::{Principal, Resource, Transport};
use berth_core::observe::{CallError, CallFacts};
use berth_core::{Param, Registry, RegistryError, RegistryRef, Repo, RepositoryName};
use http::request::Parts;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

/// The session cookie (Path=/console).
pub const COOKIE: &str = "berth_console";
/// Largest form body accepted (policies are at most 10 KiB, lifecycle policies 30 KiB).
const MAX_FORM: usize = 256 * 1024;

#[derive(Clone)]
pub struct App {
    pub registry: Arc<Registry>,
    pub tls: bool,
}

impl App {
    /// The `Set-Cookie` value for a session (None: clear it).
    pub fn session_cookie(&self, value: Option<(&str, i64)>) -> String {
        let secure = if self.tls { "; Secure" } else { "" };
        match value {
            Some((v, max_age)) => format!("{COOKIE}={v}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"),
            None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
        }
    }

    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }
}

/// A signed-in user on this request.
pub struct Session {
    pub app: App,
    pub principal: Principal,
    pub cookie: String,
    pub csrf: String,
    /// The caller's registry: its account, in the default region.
    pub registry: RegistryRef,
    /// The Host the browser used (the registry host when no template is configured).
    pub host: String,
    /// What this request did, for the audit trail (see [`console_calls`]).
    call: CallSlot,
}

impl Session {
    pub fn registry(&self) -> &Registry {
        &self.app.registry
    }

    /// May the caller perform `action` on `resource`? (for showing controls; the action checks
    /// again). A storage outage is an error page (503), not a control silently hidden.
    pub async fn may(&self, action: &str, resource: Resource<'_>) -> Result<bool, Fail> {
        Ok(self.registry().permits(&self.principal, action, resource).await?)
    }

    /// Authorizes `action` or fails with the service's refusal.
    pub async fn allow(&self, action: &str, resource: Resource<'_>) -> Result<(), Fail> {
        Ok(self.registry().authorize(&self.principal, action, resource).await?)
    }

    /// Records this request in the audit trail as the API call it mirrors: `action` (an ECR,
    /// ECR Public or KMS action, `ecr:CreateRepository`) on `resource`, with the fields the API
    /// request would carry (`params`, redacted as the API's are). Called where the console is
    /// about to make the change, after any confirmation; a refusal after it is recorded with
    /// its exception name.
    pub fn audit(&self, action: &str, resource: &Resource<'_>, params: serde_json::Value) {
        let mut facts = CallFacts { action: action.to_string(), region: Some(self.registry.region.clone()), ..CallFacts::default() };
        facts.caller(&self.principal);
        facts.from_console = true;
        let arn = resource.arn();
        if arn != "*" {
            facts.resources = vec![arn];
        }
        facts.request_parameters = serde_json::to_vec(&params).ok().and_then(|body| berth_core::audit::redacted_parameters(&body));
        if let Ok(mut slot) = self.call.0.lock() {
            *slot = Some(facts);
        }
    }

    /// [`Session::audit`], then [`Session::allow`]: a refused authorization is recorded too.
    pub async fn audit_allow(&self, action: &str, resource: Resource<'_>, params: serde_json::Value) -> Result<(), Fail> {
        self.audit(action, &resource, params);
        self.allow(action, resource).await
    }

    pub fn repo(&self, name: &str) -> Result<Repo, RegistryError> {
        Ok(Repo::new(&self.registry, RepositoryName::parse(name)?))
    }

    /// The host clients log in to (`docker login HOST`).
    pub fn registry_host(&self) -> String {
        self.registry().registry_host(&self.registry, &self.host)
    }

    /// What this registry's repository URIs start with (`host/` or `host/<account>/<region>/`).
    pub fn uri_prefix(&self) -> String {
        self.registry().repository_uri_prefix(&self.registry, &self.host)
    }

    /// A repository's `repositoryUri`, as the API gives it.
    pub fn repository_uri(&self, repo: &Repo) -> String {
        self.registry().repository_uri(repo.key(), &self.host)
    }

    /// The ECR API endpoint this console was reached on.
    pub fn endpoint_url(&self) -> String {
        format!("{}://{}", self.app.scheme(), self.host)
    }

    /// A short name for the header: the user name of the ARN.
    pub fn user_name(&self) -> &str {
        self.principal.arn.rsplit_once('/').map(|(_, n)| n).unwrap_or(&self.principal.arn)
    }
}

pub fn request_host(parts: &Parts) -> String {
    parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| "localhost".into())
}

pub fn transport(parts: &Parts) -> Transport {
    Transport::of(&parts.extensions)
}

pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_string())
}

impl Session {
    async fn open(app: &App, cookie: String, transport: Transport, host: String) -> Result<Session, RegistryError> {
        let principal = app.registry.authenticate_console_session(&cookie, transport).await?;
        let csrf = app.registry.console_csrf_token(&cookie)?;
        let registry = RegistryRef { account: principal.account.clone(), region: app.registry.config().default_registry.region.clone() };
        Ok(Session { app: app.clone(), principal, cookie, csrf, registry, host, call: CallSlot::default() })
    }
}

impl FromRequestParts<App> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        let Some(cookie) = cookie_value(&parts.headers, COOKIE) else {
            return Err(to_signin(parts, app, false));
        };
        match Session::open(app, cookie, transport(parts), request_host(parts)).await {
            Ok(mut s) => {
                if let Some(slot) = parts.extensions.get::<CallSlot>() {
                    s.call = slot.clone();
                }
                Ok(s)
            }
            Err(RegistryError::Unauthenticated(_)) => Err(to_signin(parts, app, true)),
            Err(e) => Err(Fail::from(e).into_response()),
        }
    }
}

/// Error pages of a signed-in user keep the console's navigation and Sign out: a [`Fail`] is
/// rendered bare (it has no session), then shown again in the shell when the request's session
/// is good.
pub async fn error_chrome(axum::extract::State(app): axum::extract::State<App>, req: Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = req.into_parts();
    let (cookie, transport, host) = (cookie_value(&parts.headers, COOKIE), transport(&parts), request_host(&parts));
    let resp = next.run(Request::from_parts(parts, body)).await;
    let (Some(shown), Some(cookie)) = (resp.extensions().get::<Shown>().cloned(), cookie) else { return resp };
    let Ok(s) = Session::open(&app, cookie, transport, host).await else { return resp };
    let page = crate::view::Page {
        title: shown.title,
        nav: crate::view::Nav::Repositories,
        crumbs: Vec::new(),
        notice: None,
        body: crate::view::error_body(shown.title, &shown.message),
    };
    let mut out = crate::view::render(&s, page).await;
    *out.status_mut() = resp.status();
    // What the audit trail needs of the call survives the new page.
    if let Some(facts) = resp.extensions().get::<CallFacts>().cloned() {
        out.extensions_mut().insert(facts);
    }
    if let Some(error) = resp.extensions().get::<CallError>().cloned() {
        out.extensions_mut().insert(error);
    }
    out
}

/// Where a handler notes the API call it made ([`Session::audit`]), for [`console_calls`].
#[derive(Clone, Default)]
struct CallSlot(Arc<std::sync::Mutex<Option<CallFacts>>>);

/// Console actions in the audit trail: the call a handler noted goes on the response as
/// `CallFacts` (marked as the console's), which the request middleware records like an API
/// call, with the refusal's exception name when the handler answered one (`CallError`).
pub async fn console_calls(mut req: Request, next: axum::middleware::Next) -> Response {
    let slot = CallSlot::default();
    req.extensions_mut().insert(slot.clone());
    let mut resp = next.run(req).await;
    let noted = slot.0.lock().ok().and_then(|mut s| s.take());
    if let Some(facts) = noted {
        if resp.status().is_client_error() || resp.status().is_server_error() {
            // A refusal shown without a service error (a form the console itself rejected).
            if resp.extensions().get::<CallError>().is_none() {
                let status = resp.status();
                let code = if status == StatusCode::FORBIDDEN { "AccessDeniedException" } else { "InvalidParameterException" };
                resp.extensions_mut().insert(CallError::new(code, status.to_string()));
            }
        }
        resp.extensions_mut().insert(facts);
    }
    resp
}

/// The exception name (and message) the ECR API answers for a service refusal.
pub fn call_error(e: RegistryError) -> CallError {
    let e = berth_ecr::EcrError::from(e);
    CallError::new(e.type_name, e.message).with_store(e.store)
}

/// A page shown for a refusal (a form again, with the service's message), carrying the
/// refusal's exception name for the audit trail.
pub fn refused_page(mut resp: Response, e: RegistryError) -> Response {
    resp.extensions_mut().insert(call_error(e));
    resp
}

/// A failure as shown, kept on the response for [`error_chrome`].
#[derive(Clone)]
struct Shown {
    title: &'static str,
    message: String,
}

/// Not signed in (or the session ended): to the sign-in page, coming back here after a GET.
fn to_signin(parts: &Parts, app: &App, expired: bool) -> Response {
    let mut url = String::from("/console/signin");
    let mut query = form_urlencoded::Serializer::new(String::new());
    if parts.method == Method::GET {
        // Nested at /console: the original URI has the full path.
        let uri = parts.extensions.get::<axum::extract::OriginalUri>().map(|o| &o.0).unwrap_or(&parts.uri);
        let here = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/console/");
        query.append_pair("next", here);
    }
    if expired {
        query.append_pair("expired", "1");
    }
    let query = query.finish();
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    let mut resp = see_other(&url);
    if expired {
        if let Ok(v) = HeaderValue::from_str(&app.session_cookie(None)) {
            resp.headers_mut().insert(header::SET_COOKIE, v);
        }
    }
    resp
}

/// A form-encoded body, keeping repeated fields (`image=…&image=…`) in order.
#[derive(Debug, Default)]
pub struct FormData(Vec<(String, String)>);

impl FormData {
    pub fn parse(body: &[u8]) -> Self {
        FormData(form_urlencoded::parse(body).into_owned().collect())
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// The field, trimmed; "" when absent.
    pub fn text(&self, key: &str) -> String {
        self.get(key).unwrap_or("").trim().to_string()
    }
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }
    pub fn checked(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| !v.is_empty())
    }
}

async fn read_form(body: axum::body::Body) -> Result<FormData, Response> {
    let bytes = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| Fail::new(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.").into_response())?;
    Ok(FormData::parse(&bytes))
}

/// A signed-in POST whose CSRF token has been checked.
pub struct Post {
    pub session: Session,
    pub form: FormData,
}

impl FromRequest<App> for Post {
    type Rejection = Response;

    async fn from_request(req: Request, app: &App) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let session = Session::from_request_parts(&mut parts, app).await?;
        let form = read_form(body).await?;
        app.registry.check_console_csrf(&session.cookie, form.get("csrf").unwrap_or("")).map_err(|e| Fail::from(e).into_response())?;
        Ok(Post { session, form })
    }
}

/// A POST before sign-in (the sign-in form itself).
pub struct AnonymousPost {
    pub form: FormData,
    pub transport: Transport,
}

impl FromRequest<App> for AnonymousPost {
    type Rejection = Response;

    async fn from_request(req: Request, _app: &App) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        if !same_origin(&parts.headers, &request_host(&parts)) {
            return Err(Fail::new(StatusCode::FORBIDDEN, "Sign-in is only accepted from the console's own sign-in page.").into_response());
        }
        let transport = transport(&parts);
        Ok(AnonymousPost { form: read_form(body).await?, transport })
    }
}

/// Login CSRF: is a sign-in POST from a page of this console? Browsers send `Origin` on every
/// POST (`Referer` is the fallback when it is absent); a request with neither does not come from
/// a browser a foreign page could drive, so it passes. `Origin: null` (sandboxed or opaque
/// pages) never matches. The scheme is not compared: behind a TLS-terminating proxy the browser
/// says https while the console sees plain HTTP; the port is (default by the origin's scheme).
pub fn same_origin(headers: &HeaderMap, host: &str) -> bool {
    let Some(claimed) = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER)) else { return true };
    let Some(origin) = claimed.to_str().ok().and_then(|c| c.parse::<http::Uri>().ok()) else { return false };
    let (Some(scheme), Some(authority)) = (origin.scheme_str(), origin.authority()) else { return false };
    let Ok(host) = host.parse::<http::uri::Authority>() else { return false };
    let default_port = match scheme {
        "https" => 443,
        "http" => 80,
        _ => return false,
    };
    authority.host().eq_ignore_ascii_case(host.host())
        && authority.port_u16().unwrap_or(default_port) == host.port_u16().unwrap_or(default_port)
        && !authority.as_str().contains('@')
}

/// A page that could not be shown: status and the service's message.
#[derive(Debug)]
pub struct Fail {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
    /// The API's exception name for a service refusal (the audit trail's errorCode).
    pub error: Option<CallError>,
}

impl Fail {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let title = match status {
            StatusCode::FORBIDDEN => "Access denied",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::UNAUTHORIZED => "Sign-in required",
            s if s.is_server_error() => "Something went wrong",
            _ => "That did not work",
        };
        Fail { status, title, message: message.into(), error: None }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

/// The HTTP status a service refusal is shown with.
pub fn status_of(e: &RegistryError) -> StatusCode {
    use RegistryError as R;
    match e {
        R::Denied(_) => StatusCode::FORBIDDEN,
        R::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        R::NameUnknown(_)
        | R::ManifestUnknown(_)
        | R::ImageNotFound(_)
        | R::BlobUnknown(_)
        | R::BlobQuarantined(_)
        | R::PolicyNotFound(_)
        | R::RegistryPolicyNotFound(_)
        | R::LifecyclePolicyNotFound(_)
        | R::LifecyclePreviewNotFound(_)
        | R::TemplateNotFound(_)
        | R::ExclusionNotFound(_) => StatusCode::NOT_FOUND,
        R::RepositoryExists(_)
        | R::RepositoryNotEmpty(_)
        | R::TagImmutable { .. }
        | R::ImageAlreadyExists(_)
        | R::LifecyclePreviewInProgress(_)
        | R::TemplateAlreadyExists(_)
        | R::ExclusionExists(_) => StatusCode::CONFLICT,
        // Every variant is named, so that a new one is a decision here rather than a silent 400.
        R::NameInvalid(_)
        | R::TagInvalid(_)
        | R::InvalidParameter(_)
        | R::Validation(_)
        | R::TooManyTags(_)
        | R::InvalidTagParameter(_)
        | R::LayerPartTooSmall(_)
        | R::LayerAlreadyExists(_)
        | R::EmptyUpload(_)
        | R::ImageDigestMismatch(_)
        | R::InvalidLayerPart { .. }
        | R::DigestInvalid(_)
        | R::BlobUploadUnknown
        | R::BlobUploadInvalid(_)
        | R::UploadRangeInvalid { .. }
        | R::RangeNotSatisfiable { .. }
        | R::ImageReferencedByIndex { .. }
        | R::ImageArchived(_)
        | R::ScanNotFound(_)
        | R::UnsupportedImageType(_)
        | R::Kms { .. }
        | R::LimitExceeded(_)
        | R::ManifestInvalid(_)
        | R::ManifestBlobUnknown(_)
        | R::ManifestChildUnknown(_)
        | R::ManifestTooLarge { .. }
        | R::SizeInvalid(_)
        | R::Unsupported(_)
        | R::PullThrough { .. } => StatusCode::BAD_REQUEST,
        R::Upstream(_) => StatusCode::BAD_GATEWAY,
        // An outage (disk full, database or bucket unreachable) is not the caller's fault.
        R::Store(berth_store::StoreError::Unavailable { .. }) => StatusCode::SERVICE_UNAVAILABLE,
        R::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        R::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
    }
}

/// The message shown for a service error: its own words, except storage failures (logged).
pub fn message_of(e: &RegistryError) -> String {
    match e {
        RegistryError::Store(inner @ berth_store::StoreError::Unavailable { .. }) => {
            tracing::error!(error = %inner, "console request failed: storage unavailable");
            if inner.is_disk_full() {
                "The registry's disk is full, so nothing can be saved right now; reading still works. Try again once space is freed.".into()
            } else {
                "The registry's storage is unreachable right now; try again in a moment.".into()
            }
        }
        RegistryError::Store(inner) => {
            tracing::error!(error = %inner, "console request failed in storage");
            "The registry could not read or write its storage; the server log has the details.".into()
        }
        RegistryError::NameUnknown(name) => format!("The repository with name '{name}' does not exist in the registry"),
        RegistryError::Denied(why) => denied_sentence(why),
        RegistryError::InvalidParameter(why) => why.param.as_ref().and_then(mutability_sentence).unwrap_or_else(|| e.to_string()),
        other => other.to_string(),
    }
}

/// The tag-mutability refusals in the words of the console's form (the API's own wording names
/// request members people never see here).
fn mutability_sentence(param: &Param) -> Option<String> {
    match param {
        Param::ExclusionFilterCount => Some(
            "The \"with exclusions\" settings need 1 to 5 exclusion filters: add a tag pattern such as latest or dev-*, \
             or choose Mutable or Immutable."
                .into(),
        ),
        Param::ExclusionFiltersUnexpected => Some(
            "Exclusion filters apply only to the \"with exclusions\" settings: clear the filters, or choose one of those settings.".into(),
        ),
        Param::ExclusionFilter(filter) => Some(format!(
            "The exclusion filter {filter:?} must be 1 to 128 letters, digits, dots, dashes, underscores or * wildcards (at most two *)."
        )),
        _ => None,
    }
}

/// A refusal in plain words: what was refused and what to do, not the IAM message with ARNs.
fn denied_sentence(why: &str) -> String {
    let Some((_, rest)) = why.split_once("is not authorized to perform: ") else {
        // The service's other refusal: a form without a valid CSRF token.
        return "This form has expired or did not come from this console. Reload the page and try again.".into();
    };
    let (action, rest) = rest.split_once(" on resource: ").unwrap_or((rest, ""));
    let arn = rest.split(' ').next().unwrap_or("");
    let target = match arn.split_once(":repository/") {
        Some((_, name)) => format!(" on the repository {name}"),
        None if arn.ends_with(":registry") || arn.contains(":registry/") => " on this registry".into(),
        None => String::new(),
    };
    let fix = if why.contains("explicit deny") {
        "A policy explicitly denies it; an administrator can change that policy."
    } else {
        "Ask an administrator to allow it in your user's policy or the repository's policy."
    };
    format!("You do not have permission for this ({action}{target}). {fix}")
}

impl From<RegistryError> for Fail {
    fn from(e: RegistryError) -> Self {
        let mut fail = Fail::new(status_of(&e), message_of(&e));
        fail.error = Some(call_error(e));
        fail
    }
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        let mut resp = (self.status, crate::view::error_page(self.title, &self.message)).into_response();
        resp.extensions_mut().insert(Shown { title: self.title, message: self.message });
        if let Some(error) = self.error {
            resp.extensions_mut().insert(error);
        }
        resp
    }
}

pub type PageResult = Result<Response, Fail>;

/// 303 See Other: the answer to a form POST.
pub fn see_other(location: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

/// `?key=value` appended to a URL, value encoded.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    let q = s.finish();
    if q.is_empty() {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&{q}")
    } else {
        format!("{url}?{q}")
    }
}

/// Query-string values of a GET.
pub fn query_pairs(parts: Option<&str>) -> Vec<(String, String)> {
    parts.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}
