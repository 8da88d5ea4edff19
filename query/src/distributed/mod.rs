//! One query over every node: the coordinator's planning and the agents'
//! worker endpoint, on `datafusion-distributed`.
//!
//! This module is the one place that knows that library (its API changes
//! between major versions). The rest of the crate sees:
//! - [`Cluster`]: the coordinator's view of the nodes, which the engine
//!   (`QueryEngine::cluster`) uses to list tables and to prepare each
//!   query's session;
//! - [`serve_worker`]: the agent's endpoint.
//!
//! Each query starts by asking every node who it is ([`Cluster::prepare`]),
//! within a timeout. A node that does not answer fails the query with a
//! message naming it — or, when the caller allows partial results, is
//! left out and named in the answer's warnings. The query then runs on the
//! nodes that answered: scans, filters and partial aggregates on each node
//! (see [`planning`]), the rest where the planner puts it.

mod channels;
mod planning;
mod scan;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::SchemaRef;
use datafusion::catalog::TableProvider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::Explain;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion_distributed::{DistributedExt, SessionStateBuilderExt};
use url::Url;

pub use channels::ClusterClientConfig;
pub use worker::{WorkerConfig, serve_worker};

use crate::engine::{QueryError, QueryOptions};
use channels::ClusterChannels;
use planning::{Member, Members};
use scan::{ClusterTable, ScanCodec};

/// How long a node may take to answer the question every query starts with.
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// A node the coordinator queries: its worker's URL and, when the source
/// of the list knows it, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub url: Url,
    pub name: Option<String>,
}

/// Where the list of nodes comes from: fixed (`--peers`) or kept current
/// from Kubernetes (the agents' headless Service).
pub trait PeerSource: Send + Sync + fmt::Debug {
    /// The nodes now; `Err` when the list cannot be had.
    fn peers(&self) -> Result<Vec<Peer>, String>;
}

/// A fixed list of nodes.
#[derive(Debug, Clone)]
pub struct StaticPeers(pub Vec<Peer>);

impl PeerSource for StaticPeers {
    fn peers(&self) -> Result<Vec<Peer>, String> {
        Ok(self.0.clone())
    }
}

/// The coordinator's view of the cluster.
#[derive(Debug)]
pub struct Cluster {
    peers: Box<dyn PeerSource>,
    tables: Vec<(String, SchemaRef)>,
    channels: ClusterChannels,
    timeout: Duration,
    /// Names learnt from nodes that answered, to name them when they stop.
    names: Mutex<HashMap<Url, String>>,
}

/// A query's session, ready to run over the nodes that answered.
pub(crate) struct PreparedQuery {
    pub(crate) state: SessionState,
    pub(crate) warnings: Vec<String>,
}

impl Cluster {
    /// A cluster of `peers` serving `tables` (every agent has the same).
    pub fn new(
        peers: Box<dyn PeerSource>,
        tables: Vec<(String, SchemaRef)>,
        client: &ClusterClientConfig,
        timeout: Duration,
    ) -> Result<Self, String> {
        Ok(Self {
            peers,
            tables,
            channels: ClusterChannels::new(client)?,
            timeout,
            names: Mutex::new(HashMap::new()),
        })
    }

    pub(crate) fn providers(&self) -> Vec<(String, Arc<dyn TableProvider>)> {
        self.tables
            .iter()
            .map(|(name, schema)| {
                let table = ClusterTable::new(name, Arc::clone(schema));
                (name.clone(), Arc::new(table) as Arc<dyn TableProvider>)
            })
            .collect()
    }

    pub(crate) fn schemas(&self) -> Vec<(String, SchemaRef)> {
        self.tables.clone()
    }

    /// Asks every node who it is and readies `state` to run over those
    /// that answered. Fails naming the others unless partial results are
    /// allowed, in which case the warnings name them.
    pub(crate) async fn prepare(
        &self,
        state: SessionState,
        options: QueryOptions,
    ) -> Result<PreparedQuery, QueryError> {
        let (members, missing) = self.poll().await?;
        let warnings = if missing.is_empty() {
            Vec::new()
        } else if options.partial_results && !members.is_empty() {
            vec![format!(
                "partial results: {} of {} nodes did not answer and their rows are missing: {}",
                missing.len(),
                missing.len() + members.len(),
                missing.join("; ")
            )]
        } else {
            return Err(QueryError::Unavailable(format!(
                "{} of {} nodes did not answer: {}{}",
                missing.len(),
                missing.len() + members.len(),
                missing.join("; "),
                if members.is_empty() {
                    ""
                } else {
                    " (allow partial results to answer from the others)"
                }
            )));
        };
        let members = Members::new(members);
        let mut builder = SessionStateBuilder::new_from_existing(state)
            .with_distributed_planner()
            .with_distributed_worker_resolver(members.clone())
            .with_distributed_channel_resolver(self.channels.clone())
            .with_distributed_user_codec(ScanCodec::coordinator())
            .with_distributed_desired_task_count_handler(planning::desired_task_count)
            .with_distributed_scale_up_leaf_node_handler(planning::scale_up_scan)
            .with_distributed_route_tasks_handler(planning::route_scan_tasks)
            // A UNION's branches each read tables on every node: each runs
            // in all of the stage's tasks, rather than each in a share.
            .with_distributed_children_isolator_unions(false)
            .map_err(QueryError::from)?;
        builder
            .config()
            .get_or_insert_default()
            .set_extension(Arc::new(members));
        let mut state = builder.build();
        state.mark_start_execution();
        Ok(PreparedQuery { state, warnings })
    }

    /// The nodes that answered (named), and a description of each that did
    /// not.
    async fn poll(&self) -> Result<(Vec<Member>, Vec<String>), QueryError> {
        let peers = self
            .peers
            .peers()
            .map_err(|err| QueryError::Unavailable(format!("cannot list the nodes: {err}")))?;
        if peers.is_empty() {
            return Err(QueryError::Unavailable(
                "the cluster has no nodes to query".to_owned(),
            ));
        }
        let answers = futures::future::join_all(
            peers
                .iter()
                .map(|peer| self.channels.probe(&peer.url, self.timeout)),
        )
        .await;
        let mut names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
        let mut members = Vec::new();
        let mut missing = Vec::new();
        for (peer, answer) in peers.into_iter().zip(answers) {
            match answer {
                Ok(version) => {
                    let name = worker::node_of_version(&version)
                        .map(str::to_owned)
                        .or(peer.name)
                        .unwrap_or_else(|| peer.url.to_string());
                    names.insert(peer.url.clone(), name.clone());
                    members.push(Member {
                        name,
                        url: peer.url,
                    });
                }
                Err(reason) => {
                    let name = peer.name.or_else(|| names.get(&peer.url).cloned());
                    missing.push(describe(name.as_deref(), &peer.url, &reason));
                }
            }
        }
        Ok((members, missing))
    }

    /// Names the node a failure came from (a node that stopped answering
    /// during the query): the one its message shows, else those that no
    /// longer answer now.
    pub(crate) async fn explain_failure(&self, err: QueryError) -> QueryError {
        let (QueryError::Internal(message) | QueryError::Sql(message)) = &err else {
            return err;
        };
        let first_line = message.lines().next().unwrap_or_default();
        let named = {
            let names = self.names.lock().unwrap_or_else(PoisonError::into_inner);
            names
                .iter()
                .find(|(url, _)| {
                    let url = url.as_str();
                    message.contains(url) || message.contains(url.trim_end_matches('/'))
                })
                .map(|(url, name)| describe_node(Some(name), url))
        };
        if let Some(node) = named {
            return QueryError::Unavailable(format!(
                "node {node} failed during the query: {first_line}"
            ));
        }
        // A transport error often does not say which peer it came from.
        match self.poll().await {
            Ok((members, missing)) if !missing.is_empty() => QueryError::Unavailable(format!(
                "{} of {} nodes stopped answering during the query: {} (query error: {first_line})",
                missing.len(),
                missing.len() + members.len(),
                missing.join("; ")
            )),
            _ => err,
        }
    }
}

/// EXPLAIN over the cluster: the optimized logical plan and the
/// distributed physical plan, with its stages, as `EXPLAIN` shows them
/// (`plan_type`, `plan`).
pub(crate) async fn explain(
    state: &SessionState,
    explain: &Explain,
) -> datafusion::error::Result<SendableRecordBatchStream> {
    let logical = state.optimize(&explain.plan)?;
    let physical = state.create_physical_plan(&logical).await?;
    let rows = [
        ("logical_plan", logical.display_indent().to_string()),
        (
            "physical_plan",
            datafusion_distributed::display_plan_ascii(physical.as_ref(), false),
        ),
    ];
    let schema = explain.schema.inner().clone();
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| &r.1))),
        ],
    )?;
    Ok(Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter([Ok(batch)]),
    )))
}

fn describe_node(name: Option<&str>, url: &Url) -> String {
    let url = url.as_str().trim_end_matches('/');
    match name {
        Some(name) if name != url => format!("{name} ({url})"),
        _ => url.to_owned(),
    }
}

fn describe(name: Option<&str>, url: &Url, reason: &str) -> String {
    format!("{}: {reason}", describe_node(name, url))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_named_with_their_url() {
        let url = Url::parse("http://10.0.0.2:9702").unwrap();
        assert_eq!(
            describe(Some("n2"), &url, "connection refused"),
            "n2 (http://10.0.0.2:9702): connection refused"
        );
        assert_eq!(
            describe(None, &url, "timed out"),
            "http://10.0.0.2:9702: timed out"
        );
    }
}
