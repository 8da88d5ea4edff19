//! How the coordinator splits a query over the nodes: the handlers it
//! gives the distributed planner, and the per-query list of nodes they
//! read.
//!
//! A table scan must run once on every node, each node reading its own
//! store, so the planner's stage holding a scan runs as many tasks as there
//! are nodes (a hard maximum: no more, and fewer fails the query rather
//! than silently skipping nodes), task `i` carries the scan variant for
//! node `i` and is routed there. Other stages (final aggregates, joins) run
//! wherever the planner puts them among the nodes.
//!
//! One quirk of the planner: it removes a network boundary between one
//! producer task and one consumer task, which would run a single node's
//! scan on the coordinator, where there is no store. With one node the
//! scan stage therefore runs two tasks, both on that node, the second
//! reading nothing ([`ScanTarget::Empty`]).

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionConfig;
use datafusion_distributed::{
    DesiredTaskCountEvent, DesiredTaskCountEventResponse, DistributedLeafExec, NetworkBoundaryExt,
    RouteTasksEvent, RouteTasksEventResponse, ScaleUpLeafNodeEvent, ScaleUpLeafNodeEventResponse,
    WorkerResolver,
};
use url::Url;

use super::scan::{ClusterScanExec, ScanTarget};

/// A node that answered when the query started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    pub(crate) name: String,
    pub(crate) url: Url,
}

/// The nodes one query runs on, in task order. Kept in the query's
/// session configuration, where the handlers below find it.
#[derive(Debug, Clone)]
pub(crate) struct Members {
    nodes: Vec<Member>,
}

impl Members {
    /// `nodes` must not be empty.
    pub(crate) fn new(nodes: Vec<Member>) -> Self {
        debug_assert!(!nodes.is_empty());
        Self { nodes }
    }

    /// Tasks of a scan stage: one per node, at least two (see the module
    /// documentation).
    fn scan_tasks(&self) -> usize {
        self.nodes.len().max(2)
    }

    fn from_config(config: &SessionConfig) -> Result<Arc<Members>> {
        config.get_extension::<Members>().ok_or_else(|| {
            DataFusionError::Internal("the query's list of nodes is missing".to_owned())
        })
    }
}

/// The workers the planner may use: every node, one twice when it is
/// alone (so that the scan stage can have its two tasks).
impl WorkerResolver for Members {
    fn get_urls(&self) -> Result<Vec<Url>> {
        let mut urls: Vec<Url> = self.nodes.iter().map(|node| node.url.clone()).collect();
        if urls.len() == 1 {
            urls.extend(urls.clone());
        }
        Ok(urls)
    }
}

/// A scan stage has exactly one task per node.
pub(crate) fn desired_task_count(
    event: DesiredTaskCountEvent,
) -> Option<Result<DesiredTaskCountEventResponse>> {
    event.plan.downcast_ref::<ClusterScanExec>()?;
    let members = match Members::from_config(event.session_config) {
        Ok(members) => members,
        Err(err) => return Some(Err(err)),
    };
    Some(Ok(DesiredTaskCountEventResponse::maximum(
        members.scan_tasks(),
    )))
}

/// Splits a scan into one variant per node (and empty ones beyond).
pub(crate) fn scale_up_scan(
    event: ScaleUpLeafNodeEvent,
) -> Option<Result<ScaleUpLeafNodeEventResponse>> {
    let scan = event.plan.downcast_ref::<ClusterScanExec>()?;
    Some(split_scan(
        scan,
        event.plan,
        event.task_count,
        event.session_config,
    ))
}

fn split_scan(
    scan: &ClusterScanExec,
    plan: &Arc<dyn ExecutionPlan>,
    task_count: usize,
    config: &SessionConfig,
) -> Result<ScaleUpLeafNodeEventResponse> {
    let members = Members::from_config(config)?;
    if task_count != members.scan_tasks() {
        // A stage the planner must run in fewer tasks (a join that
        // collects one side, with broadcasting impossible) would read
        // only some nodes: refuse rather than answer for part of them.
        return Err(DataFusionError::Plan(format!(
            "this query cannot run over {} nodes: its plan reads a table in {task_count} task(s) \
             (some joins collect one side whole); rewrite the join, or query the nodes one by one",
            members.nodes.len()
        )));
    }
    let variants = (0..task_count).map(|task| {
        let target = match members.nodes.get(task) {
            Some(node) => ScanTarget::Node {
                name: node.name.clone(),
                url: node.url.to_string(),
            },
            None => ScanTarget::Empty,
        };
        Arc::new(scan.for_target(target)) as Arc<dyn ExecutionPlan>
    });
    let leaf = DistributedLeafExec::try_new(Arc::clone(plan), variants)?;
    Ok(ScaleUpLeafNodeEventResponse::new(Arc::new(leaf)))
}

/// Sends each scan task to the node whose rows it reads; other stages are
/// left to the planner's own routing.
pub(crate) fn route_scan_tasks(event: RouteTasksEvent) -> Option<Result<RouteTasksEventResponse>> {
    let variants = scan_variants(event.plan)?;
    let members = match Members::from_config(event.task_ctx.session_config()) {
        Ok(members) => members,
        Err(err) => return Some(Err(err)),
    };
    if variants.len() != event.task_count {
        return Some(Err(DataFusionError::Internal(format!(
            "a scan stage has {} tasks for {} scan variants",
            event.task_count,
            variants.len()
        ))));
    }
    let urls = variants
        .iter()
        .map(|target| match target {
            ScanTarget::Node { url, .. } => Url::parse(url)
                .map_err(|err| DataFusionError::Internal(format!("bad node URL {url}: {err}"))),
            // An empty task runs on the first node; it reads nothing.
            _ => Ok(members.nodes[0].url.clone()),
        })
        .collect::<Result<Vec<Url>>>();
    Some(urls.map(RouteTasksEventResponse::new))
}

/// The targets of the scan variants in this stage's plan (not looking into
/// the stages below its network boundaries), if it scans a table.
fn scan_variants(plan: &Arc<dyn ExecutionPlan>) -> Option<Vec<ScanTarget>> {
    let mut found = None;
    // The closure never fails.
    let _ = plan.apply(|node| {
        if node.is_network_boundary() {
            return Ok(TreeNodeRecursion::Jump);
        }
        if let Some(leaf) = node.downcast_ref::<DistributedLeafExec>()
            && leaf.original().is::<ClusterScanExec>()
        {
            found = Some(
                leaf.variants()
                    .iter()
                    .filter_map(|variant| variant.downcast_ref::<ClusterScanExec>())
                    .map(|scan| scan.request().target.clone())
                    .collect(),
            );
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, port: u16) -> Member {
        Member {
            name: name.into(),
            url: Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        }
    }

    #[test]
    fn a_lone_node_is_listed_twice() {
        let one = Members::new(vec![member("n1", 1)]);
        assert_eq!(one.scan_tasks(), 2);
        assert_eq!(one.get_urls().unwrap().len(), 2);
        let three = Members::new(vec![member("n1", 1), member("n2", 2), member("n3", 3)]);
        assert_eq!(three.scan_tasks(), 3);
        let urls = three.get_urls().unwrap();
        assert_eq!(urls[2].as_str(), "http://127.0.0.1:3/");
    }
}
