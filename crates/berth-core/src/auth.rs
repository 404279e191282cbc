//! Identity and authorization: who is calling, and may they do this.
//!
//! Every adapter authenticates through [`Registry::authenticate_sigv4`] (ECR
//! API) or [`Registry::authenticate_token`] (`/v2/` Basic auth), then asks
//! [`Registry::authorize`] with the ECR action the request is. That is the
//! only place a permission is decided: identity policies of the principal,
//! the repository policy and the registry policy, with IAM semantics
//! (explicit Deny wins, default deny, cross-account needs both sides).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine;
use berth_iam::policy::{self, AuthzRequest, Decision, Policy};
use berth_iam::{sigv4, token};
use time::OffsetDateTime;

use crate::cache::RepoAuthz;
use crate::error::Result;
use crate::names::{RegistryRef, Repo};
use crate::{Registry, RegistryError};
use berth_store::AccessKeyRow;

/// Why a caller is not authenticated; adapters map each to their protocol.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthFailure {
    #[error("missing authentication")]
    Missing,
    #[error("the security token included in the request is invalid")]
    UnknownAccessKey,
    #[error("{0}")]
    BadSignature(String),
    #[error("{0}")]
    SignatureExpired(String),
    #[error("{0}")]
    Malformed(String),
    #[error("the registry token is invalid")]
    TokenInvalid,
    #[error("the registry token has expired; run aws ecr get-login-password again")]
    TokenExpired,
    #[error("the access key, user name or password is wrong")]
    BadCredentials,
    #[error("the console session is invalid or has expired; sign in again")]
    SessionInvalid,
    /// A download URL's capability is refused (invalid, expired, or for another blob).
    #[error("{0}")]
    DownloadUrl(String),
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub arn: String,
    pub account: String,
    pub access_key_id: String,
    /// The region the caller signed for (SigV4 scope), when known.
    pub region: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub secure_transport: bool,
}

impl Principal {
    /// The caller a verified registry token or console session names.
    pub(crate) fn from_claims(claims: token::TokenClaims, transport: Transport) -> Principal {
        Principal {
            arn: claims.principal_arn,
            account: claims.account,
            access_key_id: claims.access_key_id,
            region: None,
            source_ip: transport.source_ip,
            secure_transport: transport.secure,
        }
    }
}

/// What a request acts on, for authorization.
pub enum Resource<'a> {
    Repository(&'a Repo),
    /// Registry-wide actions (GetAuthorizationToken, DescribeRegistry, registry policy, catalog).
    Registry(&'a RegistryRef),
    /// Every repository of a registry (`…:repository/*`), for listings.
    AllRepositories(&'a RegistryRef),
    /// A KMS key; its key policy is the resource policy, and a required one (see
    /// `berth_iam::policy::authorize_with_key_policy`).
    KmsKey {
        arn: &'a str,
        account: &'a str,
        region: &'a str,
        policy: &'a str,
    },
    /// A Secrets Manager secret (IAM policies decide; no resource policy yet).
    Secret {
        arn: &'a str,
        account: &'a str,
        region: &'a str,
    },
}

impl Resource<'_> {
    /// The resource's ARN as IAM policies name it (`*` for registry-wide actions, as ECR
    /// documents them).
    pub fn arn(&self) -> String {
        match self {
            Resource::Repository(repo) => repo.arn(),
            Resource::Registry(_) => "*".to_string(),
            Resource::AllRepositories(r) => r.repository_arn("*"),
            Resource::KmsKey { arn, .. } | Resource::Secret { arn, .. } => arn.to_string(),
        }
    }
}

/// A SigV4 request whose headers name an active access key, its signature not yet checked
/// (see [`Registry::sigv4_caller`]).
pub struct SigV4Caller {
    parsed: sigv4::ParsedSignature,
    key: Arc<AccessKeyRow>,
}

/// Transport facts an adapter knows about a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Transport {
    pub source_ip: Option<IpAddr>,
    pub secure: bool,
}

impl Transport {
    /// The facts `berth serve` attached to the request as it arrived (peer address, TLS): the
    /// one place they are assembled. A request that did not come through it knows neither.
    pub fn of(extensions: &http::Extensions) -> Transport {
        extensions.get::<Transport>().copied().unwrap_or_default()
    }
}

const ADMIN_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
/// Registry tokens live 12 hours, as ECR's.
pub const TOKEN_TTL_SECS: i64 = 12 * 3600;
/// Signing keys that verify tokens: the current one and the one before it.
const SIGNING_KEYS_KEPT: usize = 2;
/// A token no loaded key verifies makes the node re-read the keys (another node may have
/// rotated them), at most this often, so forged tokens cannot turn into database load.
const KEY_RELOAD_MILLIS: i64 = 5_000;

pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| {
        RegistryError::Store(berth_store::StoreError::io("reading system randomness", std::io::Error::other(e.to_string())))
    })?;
    Ok(b)
}

/// A new access key pair in AWS's shapes (AKIA + 16 base32 characters; 40-character secret).
pub fn new_access_key() -> Result<(String, String)> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let id_bytes = random_bytes::<16>()?;
    let id: String =
        std::iter::once("AKIA".to_string()).chain(id_bytes.iter().map(|b| (ALPHABET[(*b as usize) % 32] as char).to_string())).collect();
    let secret = base64::engine::general_purpose::STANDARD.encode(random_bytes::<30>()?);
    Ok((id, secret))
}

pub fn user_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

/// Documents to attach to a user: each an identity policy within IAM's limits (see
/// `Policy::parse_identity`).
fn validate_identity_policies(policies: &[(String, String)]) -> Result<()> {
    for (name, doc) in policies {
        Policy::parse_identity(doc).map_err(|e| RegistryError::invalid(format!("policy {name}: {e}")))?;
    }
    Ok(())
}

fn valid_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

impl Registry {
    /// Loads (or creates) the token signing keys. Called once at start-up.
    pub async fn init_identity(&self) -> Result<()> {
        self.reload_signing_keys().await
    }

    /// Reads the signing keys again (another node or `berth admin rotate-signing-key` may have
    /// rotated them).
    pub async fn reload_signing_keys(&self) -> Result<()> {
        let keys = self.meta.signing_keys(&random_bytes::<32>()?, self.now()).await?;
        *self.signing_keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        self.keys_loaded_at.store(self.now(), std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// Makes a new signing key current for new tokens, keeping the previous one so tokens
    /// issued before (valid for 12 hours) still verify; older keys are retired. Returns how
    /// many keys verify tokens now.
    pub async fn rotate_signing_key(&self) -> Result<usize> {
        let keys = self.meta.rotate_signing_key(&random_bytes::<32>()?, self.now(), SIGNING_KEYS_KEPT).await?;
        let n = keys.len();
        *self.signing_keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        Ok(n)
    }

    /// Makes sure the default account has an admin with full access. With `key` given, that
    /// access key is ensured; otherwise a key is generated if the admin has none. Returns a
    /// newly generated key pair (to be shown once).
    pub async fn bootstrap_admin(&self, key: Option<(String, String)>) -> Result<Option<(String, String)>> {
        let account = self.config.default_registry.account.clone();
        let arn = user_arn(&account, "admin");
        let now = self.now();
        self.meta.ensure_account(&account, now).await?;
        let created = self.meta.create_user(&account, "admin", &arn, now).await?;
        self.meta.put_user_policy(&arn, "AdministratorAccess", ADMIN_POLICY).await?;
        match key {
            Some((id, secret)) => {
                match self.meta.get_access_key(&id).await? {
                    Some(existing) if existing.user_arn == arn => {
                        if !constant_time_eq(existing.secret.as_bytes(), secret.as_bytes()) {
                            return Err(RegistryError::invalid(format!(
                                "access key {id} already exists with another secret; remove it or use another key id"
                            )));
                        }
                    }
                    Some(_) => return Err(RegistryError::invalid(format!("access key {id} belongs to another user"))),
                    None => self.meta.create_access_key(&id, &secret, &arn, now).await?,
                }
                Ok(None)
            }
            None if created => {
                let (id, secret) = new_access_key()?;
                self.meta.create_access_key(&id, &secret, &arn, now).await?;
                Ok(Some((id, secret)))
            }
            None => Ok(None),
        }
    }

    /// Creates a user (and its account if new) with a fresh access key and the given policies
    /// (managed policy names or JSON documents, validated).
    pub async fn create_user(&self, account: &str, name: &str, policies: &[(String, String)]) -> Result<(String, String, String)> {
        if !valid_account(account) {
            return Err(RegistryError::invalid(format!("account {account:?} is not a 12-digit id")));
        }
        if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)) {
            return Err(RegistryError::invalid(format!("user name {name:?} is not a valid IAM user name")));
        }
        validate_identity_policies(policies)?;
        let now = self.now();
        let arn = user_arn(account, name);
        self.meta.ensure_account(account, now).await?;
        self.meta.create_user(account, name, &arn, now).await?;
        for (pname, doc) in policies {
            self.meta.put_user_policy(&arn, pname, doc).await?;
        }
        let (id, secret) = new_access_key()?;
        self.meta.create_access_key(&id, &secret, &arn, now).await?;
        Ok((arn, id, secret))
    }

    pub async fn create_account(&self, account: &str) -> Result<()> {
        if !valid_account(account) {
            return Err(RegistryError::invalid(format!("account {account:?} is not a 12-digit id")));
        }
        Ok(self.meta.ensure_account(account, self.now()).await?)
    }

    /// A further access key for an existing user.
    pub async fn create_access_key(&self, user_arn: &str) -> Result<(String, String)> {
        if !self.user_exists(user_arn).await? {
            return Err(RegistryError::invalid(format!("no user {user_arn}")));
        }
        let (id, secret) = new_access_key()?;
        self.meta.create_access_key(&id, &secret, user_arn, self.now()).await?;
        Ok((id, secret))
    }

    async fn user_exists(&self, user_arn: &str) -> Result<bool> {
        Ok(self.meta.user_account(user_arn).await?.is_some())
    }

    /// Attaches (or replaces, by name) identity policies on a user.
    pub async fn attach_policies(&self, user_arn: &str, policies: &[(String, String)]) -> Result<()> {
        if !self.user_exists(user_arn).await? {
            return Err(RegistryError::invalid(format!("no user {user_arn}")));
        }
        validate_identity_policies(policies)?;
        for (name, doc) in policies {
            self.meta.put_user_policy(user_arn, name, doc).await?;
        }
        self.caches.bump();
        self.caches.user_policies.invalidate(user_arn);
        Ok(())
    }

    /// Verifies a SigV4-signed request and returns its principal.
    /// Verifies a SigV4-signed call to the AWS service whose signing name is `service`
    /// (`ecr`, `sts`, …): a signature scoped to another service is refused, as AWS does.
    pub async fn authenticate_sigv4(&self, req: &sigv4::RequestParts<'_>, service: &str, transport: Transport) -> Result<Principal> {
        let caller = self.sigv4_caller(req, service).await?;
        self.verify_sigv4(req, caller, transport)
    }

    /// The first half of SigV4 authentication, from the headers alone: the signature is well
    /// formed, scoped to `service` and a region, and names an active access key. Adapters call
    /// it before reading a body, so that only a known key's requests are buffered; the
    /// signature itself (which covers the body's hash) is checked by [`Registry::verify_sigv4`].
    /// `req.payload_sha256` is not read here.
    pub async fn sigv4_caller(&self, req: &sigv4::RequestParts<'_>, service: &str) -> Result<SigV4Caller> {
        let parsed = sigv4::parse(req).map_err(sig_failure)?;
        let cred = parsed.credential();
        if cred.service != service {
            return Err(RegistryError::Unauthenticated(AuthFailure::BadSignature(format!(
                "Credential should be scoped to correct service: '{service}'."
            ))));
        }
        // Regions are path components of repository addresses (see addressing.rs).
        if !crate::addressing::is_region_name(&cred.region) {
            return Err(RegistryError::Unauthenticated(AuthFailure::Malformed(format!(
                "berth serves regions named like AWS regions (lowercase letters, digits and '-'), not {:?}",
                cred.region
            ))));
        }
        let key = self.access_key(&cred.access_key_id).await?;
        let Some(key) = key.filter(|k| k.active) else {
            return Err(RegistryError::Unauthenticated(AuthFailure::UnknownAccessKey));
        };
        Ok(SigV4Caller { parsed, key })
    }

    /// The second half: the signature over the whole request (with its body's hash) is the key's.
    pub fn verify_sigv4(&self, req: &sigv4::RequestParts<'_>, caller: SigV4Caller, transport: Transport) -> Result<Principal> {
        let SigV4Caller { parsed, key } = caller;
        let now = OffsetDateTime::from_unix_timestamp(self.now() / 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        sigv4::verify(req, &parsed, &key.secret, now).map_err(sig_failure)?;
        Ok(Principal {
            arn: key.user_arn.clone(),
            account: key.account.clone(),
            access_key_id: key.access_key_id.clone(),
            region: Some(parsed.credential().region.clone()),
            source_ip: transport.source_ip,
            secure_transport: transport.secure,
        })
    }

    pub(crate) fn current_signing_key(&self) -> Result<Vec<u8>> {
        let keys = self.signing_keys.read().unwrap_or_else(|p| p.into_inner());
        keys.first().cloned().ok_or_else(|| RegistryError::invalid("token signing keys are not loaded"))
    }

    /// Whether a value no loaded key verifies may make this node re-read the keys now.
    pub(crate) fn may_reload_signing_keys(&self) -> bool {
        let loaded_at = self.keys_loaded_at.load(std::sync::atomic::Ordering::SeqCst);
        self.now() - loaded_at >= KEY_RELOAD_MILLIS
    }

    pub(crate) fn all_signing_keys(&self) -> Vec<Vec<u8>> {
        self.signing_keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Issues a registry password for `principal` (GetAuthorizationToken). Returns
    /// (password, expires_at unix seconds).
    pub fn issue_token(&self, principal: &Principal) -> Result<(String, i64)> {
        let expires_at = self.now() / 1000 + TOKEN_TTL_SECS;
        let keys = self.signing_keys.read().unwrap_or_else(|p| p.into_inner());
        let key = keys.first().ok_or_else(|| RegistryError::invalid("token signing keys are not loaded"))?;
        let claims = token::TokenClaims {
            account: principal.account.clone(),
            principal_arn: principal.arn.clone(),
            access_key_id: principal.access_key_id.clone(),
            expires_at,
        };
        Ok((token::issue(key, &claims), expires_at))
    }

    fn verify_token(&self, password: &str) -> std::result::Result<token::TokenClaims, AuthFailure> {
        let now = self.now() / 1000;
        let keys = self.signing_keys.read().unwrap_or_else(|p| p.into_inner());
        for key in keys.iter() {
            match token::verify(key, password, now) {
                Ok(c) => return Ok(c),
                Err(token::TokenError::Expired { .. }) => return Err(AuthFailure::TokenExpired),
                Err(_) => {}
            }
        }
        Err(AuthFailure::TokenInvalid)
    }

    /// Verifies `/v2/` Basic credentials (`AWS:<registry token>`).
    pub async fn authenticate_token(&self, user: &str, password: &str, transport: Transport) -> Result<Principal> {
        if user != token::USERNAME {
            return Err(RegistryError::Unauthenticated(AuthFailure::TokenInvalid));
        }
        let mut claims = self.verify_token(password);
        if matches!(claims, Err(AuthFailure::TokenInvalid)) && self.may_reload_signing_keys() {
            self.reload_signing_keys().await?;
            claims = self.verify_token(password);
        }
        let claims = claims.map_err(RegistryError::Unauthenticated)?;
        // A token dies with its access key.
        match self.access_key(&claims.access_key_id).await? {
            Some(k) if k.active && k.user_arn == claims.principal_arn => {}
            _ => return Err(RegistryError::Unauthenticated(AuthFailure::TokenInvalid)),
        }
        Ok(Principal::from_claims(claims, transport))
    }

    /// Authorizes a push action (`ecr:InitiateLayerUpload`, `ecr:PutImage`, …) into `repo`. A push
    /// into a repository that does not exist creates it, so it also needs `ecr:CreateRepository`
    /// (and is refused outright when pushes may not create repositories).
    pub async fn authorize_push(&self, principal: &Principal, action: &str, repo: &Repo) -> Result<()> {
        self.authorize(principal, action, Resource::Repository(repo)).await?;
        if !self.repository_exists(repo).await? {
            if !self.config.create_repository_on_push {
                return Err(RegistryError::NameUnknown(repo.clone()));
            }
            self.authorize(principal, "ecr:CreateRepository", Resource::Repository(repo)).await?;
        }
        Ok(())
    }

    /// Whether `principal` may perform `action` on `resource`, for callers that choose what to
    /// show or try: a refusal is `false`, but an outage (a store unavailable) stays an error
    /// rather than passing for a refusal.
    pub async fn permits(&self, principal: &Principal, action: &str, resource: Resource<'_>) -> Result<bool> {
        match self.authorize(principal, action, resource).await {
            Ok(()) => Ok(true),
            Err(RegistryError::Denied(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The one authorization decision: may `principal` perform `action` (e.g. `ecr:PutImage`) on `resource`?
    pub async fn authorize(&self, principal: &Principal, action: &str, resource: Resource<'_>) -> Result<()> {
        let arn = resource.arn();
        let (account, region) = match &resource {
            Resource::Repository(repo) => (repo.key().account.clone(), repo.key().region.clone()),
            Resource::Registry(r) | Resource::AllRepositories(r) => (r.account.clone(), r.region.clone()),
            Resource::KmsKey { account, region, .. } | Resource::Secret { account, region, .. } => {
                (account.to_string(), region.to_string())
            }
        };
        let identity = self.user_policies(&principal.arn).await?;
        let repo_authz = match &resource {
            Resource::Repository(repo) => Some(self.repo_authz(repo).await?),
            Resource::Registry(_) | Resource::AllRepositories(_) | Resource::KmsKey { .. } | Resource::Secret { .. } => None,
        };
        // A key's policy was validated when written; one that no longer parses grants nothing.
        let key_policy = match &resource {
            Resource::KmsKey { policy, .. } => Some(
                parse_stored(policy, "key policy")
                    .ok_or_else(|| RegistryError::Denied(format!("the key policy of {arn} cannot be read, so it grants nothing")))?,
            ),
            _ => None,
        };
        let registry_policy = match &resource {
            // The registry policy is ECR's; it says nothing about keys or secrets.
            Resource::KmsKey { .. } | Resource::Secret { .. } => Arc::new(None),
            _ => self.registry_policy_parsed(&account, &region).await?,
        };
        let resource_policies: Vec<&Policy> =
            repo_authz.as_ref().and_then(|a| a.policy.as_deref()).into_iter().chain(registry_policy.as_ref().as_ref()).collect();
        let mut context: HashMap<String, Vec<String>> = HashMap::new();
        let now = OffsetDateTime::from_unix_timestamp(self.now() / 1000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        if let Ok(t) = now.format(&time::format_description::well_known::Rfc3339) {
            context.insert("aws:CurrentTime".into(), vec![t]);
        }
        context.insert("aws:EpochTime".into(), vec![(self.now() / 1000).to_string()]);
        context.insert("aws:SecureTransport".into(), vec![principal.secure_transport.to_string()]);
        if let Some(ip) = principal.source_ip {
            context.insert("aws:SourceIp".into(), vec![ip.to_string()]);
        }
        for (k, v) in repo_authz.iter().flat_map(|a| a.tags.iter()) {
            context.insert(format!("aws:ResourceTag/{k}"), vec![v.clone()]);
            context.insert(format!("ecr:ResourceTag/{k}"), vec![v.clone()]);
        }
        let iam_principal = policy::Principal { arn: principal.arn.clone(), account: principal.account.clone() };
        let req = AuthzRequest { principal: &iam_principal, action, resource: &arn, resource_account: &account, context: &context };
        let identity_refs: Vec<&Policy> = identity.iter().collect();
        let decision = match &key_policy {
            Some(key_policy) => policy::authorize_with_key_policy(&req, &identity_refs, key_policy),
            None => policy::authorize(&req, &identity_refs, &resource_policies),
        };
        match decision {
            Decision::Allow => Ok(()),
            Decision::ExplicitDeny => Err(RegistryError::Denied(format!(
                "User: {} is not authorized to perform: {action} on resource: {arn} with an explicit deny",
                principal.arn
            ))),
            Decision::ImplicitDeny => Err(RegistryError::Denied(format!(
                "User: {} is not authorized to perform: {action} on resource: {arn} because no {} policy allows the {action} action",
                principal.arn,
                if principal.account == account { "identity-based or resource-based" } else { "resource-based" }
            ))),
        }
    }
}

impl Registry {
    pub(crate) async fn access_key(&self, id: &str) -> Result<Option<Arc<AccessKeyRow>>> {
        if let Some(k) = self.caches.access_keys.get(id) {
            return Ok(Some(k));
        }
        let generation = self.caches.generation();
        let Some(row) = self.meta.get_access_key(id).await? else { return Ok(None) };
        let row = Arc::new(row);
        self.caches.fill(&self.caches.access_keys, generation, id.to_string(), row.clone());
        Ok(Some(row))
    }

    async fn user_policies(&self, arn: &str) -> Result<Arc<Vec<Policy>>> {
        if let Some(p) = self.caches.user_policies.get(arn) {
            return Ok(p);
        }
        let generation = self.caches.generation();
        // Stored documents were validated when written; one that no longer parses grants nothing.
        let docs = self.meta.user_policies(arn).await?;
        let parsed = Arc::new(docs.iter().filter_map(|(name, d)| parse_stored(d, name)).collect::<Vec<_>>());
        self.caches.fill(&self.caches.user_policies, generation, arn.to_string(), parsed.clone());
        Ok(parsed)
    }

    async fn repo_authz(&self, repo: &Repo) -> Result<Arc<RepoAuthz>> {
        if let Some(a) = self.caches.repo_authz.get(repo.key()) {
            return Ok(a);
        }
        let generation = self.caches.generation();
        let policy = self
            .meta
            .get_repository(repo.key())
            .await?
            .and_then(|r| r.policy)
            .and_then(|d| parse_stored(&d, "repository policy"))
            .map(Arc::new);
        let tags = self.meta.list_resource_tags(repo.key()).await?;
        let authz = Arc::new(RepoAuthz { policy, tags });
        self.caches.fill(&self.caches.repo_authz, generation, repo.key().clone(), authz.clone());
        Ok(authz)
    }

    async fn registry_policy_parsed(&self, account: &str, region: &str) -> Result<Arc<Option<Policy>>> {
        let key = (account.to_string(), region.to_string());
        if let Some(p) = self.caches.registry_policies.get(&key) {
            return Ok(p);
        }
        let generation = self.caches.generation();
        let parsed = Arc::new(self.meta.get_registry_policy(account, region).await?.and_then(|d| parse_stored(&d, "registry policy")));
        self.caches.fill(&self.caches.registry_policies, generation, key, parsed.clone());
        Ok(parsed)
    }
}

/// A stored document, parsed once per cache fill. Documents were bounded when written
/// (`parse_identity`/`parse_resource`); one stored before berth bounded them still means what
/// it says (a Deny in it must not vanish), but every statement is matched on every request,
/// so the operator is told to replace it.
fn parse_stored(doc: &str, what: &str) -> Option<Policy> {
    let policy = Policy::parse(doc).ok()?;
    if policy.statements().len() > policy::MAX_STATEMENTS {
        tracing::warn!(
            policy = what,
            statements = policy.statements().len(),
            limit = policy::MAX_STATEMENTS,
            "a stored policy has more statements than berth now accepts and slows every authorization; replace it"
        );
    }
    Some(policy)
}

fn sig_failure(e: sigv4::SigError) -> RegistryError {
    RegistryError::Unauthenticated(match e {
        sigv4::SigError::Missing => AuthFailure::Missing,
        sigv4::SigError::Malformed(m) => AuthFailure::Malformed(m),
        sigv4::SigError::Expired(m) => AuthFailure::SignatureExpired(m),
        sigv4::SigError::PayloadHashMismatch { .. } => AuthFailure::BadSignature("the request body does not match x-amz-content-sha256".into()),
        sigv4::SigError::SignatureMismatch => AuthFailure::BadSignature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.".into(),
        ),
    })
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// STS GetCallerIdentity's answer for a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    pub account: String,
    pub arn: String,
    /// IAM's unique id of a user: `AIDA` and 17 more characters, stable for the ARN.
    pub user_id: String,
}

impl Registry {
    /// Who the caller is. Like STS, this needs no permission: every authenticated principal
    /// may ask, and the answer only names the caller itself.
    pub fn caller_identity(&self, principal: &Principal) -> CallerIdentity {
        use sha2::Digest as _;
        // berth keeps no separate user id; derive one from the ARN so it is stable (a user
        // deleted and re-created gets the same id, unlike IAM — documented in the README).
        const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let hash = sha2::Sha256::digest(principal.arn.as_bytes());
        let suffix: String = hash.iter().take(17).map(|b| ALPHABET[(*b & 31) as usize] as char).collect();
        CallerIdentity { account: principal.account.clone(), arn: principal.arn.clone(), user_id: format!("AIDA{suffix}") }
    }
}
