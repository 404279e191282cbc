//! The web console at `/console/`: the ECR console flows, server-rendered, every page and
//! action authorized by the registry service like any API call.

use std::sync::Arc;

use axum::Router;
use berth_core::Registry;

/// How the console is served.
#[derive(Debug, Clone, Default)]
pub struct ConsoleSettings {
    /// Served over TLS: session cookies get `Secure`.
    pub tls: bool,
}

/// The console's routes, to be nested at `/console`.
pub fn router(registry: Arc<Registry>, settings: ConsoleSettings) -> Router {
    let _ = (registry, settings);
    Router::new()
}
