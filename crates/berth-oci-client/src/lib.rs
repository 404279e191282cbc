//! The one client berth uses to talk to another OCI registry: replication to a remote,
//! later the pull-through cache. Another berth, Amazon ECR, CNCF distribution and the
//! registries that follow the distribution spec.
//!
//! # Authentication
//! A request goes out with whatever the remote asked for last time (nothing at first).
//! On `401` the `WWW-Authenticate` challenges are parsed (several challenges, quoted values
//! with commas) and answered once:
//! - `Bearer realm=…,service=…[,scope=…]`: a token is fetched from the realm for the
//!   operation's scopes (`repository:<name>:pull` or `pull,push`, plus the source repository
//!   of a mount, plus any scope the challenge names), with our Basic credentials when we have
//!   some; `token` or `access_token` is accepted and cached per scope set until shortly
//!   before `expires_in` (60 s when absent). The request is then sent again with it.
//! - `Basic`: sent again with Basic credentials; from then on Basic goes up front.
//!
//! [`Credentials::Ecr`] turns an AWS access key into Basic `AWS:<token>`, the token coming
//! from the ECR API's `GetAuthorizationToken` (SigV4-signed, see `sigv4`), cached until five
//! minutes before it expires. That is how berth itself and Amazon ECR authenticate `/v2/`.
//! A second `401` means the credentials are wrong: cached tokens are dropped and the caller
//! gets [`ClientError::Unauthorized`].
//!
//! # Retries
//! Each operation is one unit under a retry loop: up to [`ClientOptions::max_attempts`]
//! attempts while the error [`is_retryable`](ClientError::is_retryable) (5xx, 429,
//! timeouts, connection failures), sleeping an exponential backoff with jitter, or the
//! remote's `Retry-After` (a longer one than `backoff_max` is returned to the caller rather
//! than slept). A blob push retries POST and PUT together, with a new upload session.
//!
//! # Streaming
//! Blobs are never held in memory. [`OciClient::push_blob`] takes a factory of byte
//! streams, so a retry re-opens the source and sends it from the start in one `PUT` with
//! `Content-Length`. [`OciClient::get_blob`] returns a stream that checks length and
//! sha256 as it goes and withholds the chunk that completes the blob unless both match.
//! Redirects are followed by hand: our `Authorization` is only sent to the registry's own
//! origin (never to an object store's presigned URL), and plain HTTP is refused unless
//! `allow_insecure`. Streams fail after [`ClientOptions::request_timeout`] without progress;
//! other requests are bounded by it as a whole.
//!
//! No `Debug` or `Display` here shows a password, secret key or token.

mod auth;
mod client;
mod ecr;
mod error;
mod hashing;
mod names;
mod sigv4;
mod streams;

pub use auth::Credentials;
pub use client::{BlobStream, ClientOptions, Endpoint, Manifest, ManifestInfo, OciClient, MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};
pub use error::ClientError;
