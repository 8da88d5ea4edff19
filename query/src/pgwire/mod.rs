//! The PostgreSQL wire protocol, so psql, Grafana's PostgreSQL data
//! source, DBeaver and any Postgres driver can query Sonde.
//!
//! The protocol is `pgwire`'s; the SQL clients send is rewritten for
//! DataFusion by `datafusion-pg-catalog`'s parser, which also provides the
//! `pg_catalog` tables and functions their catalog queries read (see
//! [`crate::catalog`]); rows are encoded by `arrow-pg`. Every statement
//! then runs through [`QueryEngine`] like an HTTP query: the same
//! read-only gate, size and nesting limits, time limit, row cap, memory
//! pool and query threads. (`datafusion-postgres`'s own handlers are not
//! used: they run queries on the connection's task against one shared
//! session, around all of that.)
//!
//! Session statements drivers send (`SET`, `SHOW`, `BEGIN`, `COMMIT`,
//! `ROLLBACK`, `DISCARD`) are answered per connection ([`session`]) and
//! never change the engine's configuration.

mod auth;
mod handler;
mod session;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::engine::QueryEngine;
use handler::{ConnectionHandlers, PgService};

/// Connections served at once; more are closed as they arrive (counted in
/// the log) so that idle clients cannot take the agent's memory.
pub const DEFAULT_MAX_CONNECTIONS: usize = 64;

/// Settings of the PostgreSQL endpoint.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// When set, clients must give it as their password (any user name);
    /// it is checked with SCRAM-SHA-256, so it never crosses the network.
    pub token: Option<String>,
    pub max_connections: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            token: None,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serves PostgreSQL clients on `listener` until `shutdown` resolves.
/// Connections run on the caller's runtime; their queries on the engine's
/// query threads.
pub async fn serve(
    engine: Arc<QueryEngine>,
    listener: TcpListener,
    config: PgConfig,
    shutdown: impl Future<Output = ()>,
) {
    let service = Arc::new(PgService::new(engine));
    let authenticator = config.token.as_deref().map(auth::Authenticator::new);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let (socket, peer) = tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "PostgreSQL endpoint: accept failed");
                    // Out of file descriptors: give the others time to close.
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, max = config.max_connections, "PostgreSQL endpoint: too many connections; closing");
            continue;
        };
        let handlers = ConnectionHandlers::new(Arc::clone(&service), authenticator.clone());
        tokio::spawn(async move {
            let _slot = slot;
            if let Err(err) = ::pgwire::tokio::process_socket(socket, None, handlers).await {
                tracing::debug!(%peer, %err, "PostgreSQL connection ended with an error");
            }
        });
    }
}
