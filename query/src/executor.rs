//! The threads every query runs on.
//!
//! Parsing, planning, optimising and executing a query recurse over its
//! syntax tree and plans, and whoever writes the SQL decides how deep they
//! are. On the agent's own Tokio workers (2 MiB stacks, shared with the
//! API server and the exporter) a stack overflow aborts the whole process,
//! capture included. So queries run on a small runtime of their own whose
//! threads have a large, known stack: DataFusion's tasks spawned during
//! execution land there too (they spawn on the current runtime), and so
//! does the encoding of results. With that stack, the limits of
//! [`crate::limits`] leave a wide margin for every recursion, and
//! DataFusion's `recursive_protection` (stacker) still grows the stack on
//! the heap where it is annotated: stacker reads these threads' real stack
//! bounds like any other thread's.

use std::future::Future;

use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

use crate::engine::QueryError;

/// Stack of each query thread. Only the pages a query touches are ever
/// backed by memory; the rest is address space.
pub const QUERY_STACK_BYTES: usize = 256 << 20;

/// Threads that run queries, unless changed with [`QueryExecutor::new`].
/// Queries beyond this many wait for a thread; capture never does.
pub const DEFAULT_QUERY_THREADS: usize = 2;

/// A Tokio runtime reserved for queries: `threads` workers plus as many
/// blocking threads, all with [`QUERY_STACK_BYTES`] of stack.
#[derive(Debug)]
pub struct QueryExecutor {
    /// `None` only while dropping.
    runtime: Option<Runtime>,
}

impl QueryExecutor {
    /// Starts the query threads.
    ///
    /// # Panics
    /// When the operating system refuses to create the threads, as
    /// `#[tokio::main]` does: nothing can be served without them.
    pub fn new(threads: usize) -> Self {
        let threads = threads.max(1);
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(threads)
            .thread_stack_size(QUERY_STACK_BYTES)
            .thread_name("sonde-query")
            // I/O: a coordinator's plans read the agents' workers over the
            // network, and the servers `spawn` starts listen on sockets.
            .enable_io()
            .enable_time()
            .build()
            .unwrap_or_else(|err| panic!("cannot start the {threads} query threads: {err}"));
        Self {
            runtime: Some(runtime),
        }
    }

    /// Runs `future` on the query threads. Dropping the returned future
    /// (a client hanging up) cancels it there too. A panic in it becomes
    /// an internal error.
    pub async fn run<F>(&self, future: F) -> Result<F::Output, QueryError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let task = AbortOnDrop(self.runtime().spawn(future));
        join(task).await
    }

    /// Runs CPU-bound work (result encoding) on the query runtime's
    /// blocking threads, which have the same large stack.
    pub async fn run_blocking<F, T>(&self, work: F) -> Result<T, QueryError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let task = AbortOnDrop(self.runtime().spawn_blocking(work));
        join(task).await
    }

    /// Starts a long-lived task (a server) on the query threads; it runs
    /// until it ends or the executor is dropped.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(future)
    }

    fn runtime(&self) -> &Runtime {
        // Set in `new`, taken only in `drop`.
        self.runtime
            .as_ref()
            .unwrap_or_else(|| unreachable!("query runtime used while dropped"))
    }
}

impl Default for QueryExecutor {
    fn default() -> Self {
        Self::new(DEFAULT_QUERY_THREADS)
    }
}

impl Drop for QueryExecutor {
    /// Dropping a runtime blocks until its tasks end, which Tokio forbids
    /// inside async code (where engines are often dropped); running
    /// queries are cancelled instead.
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Aborts the task when the awaiting side goes away.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn join<T>(mut task: AbortOnDrop<T>) -> Result<T, QueryError> {
    (&mut task.0).await.map_err(|err| {
        if err.is_panic() {
            let panic = err.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            tracing::error!(%message, "query task panicked");
            QueryError::Internal(format!("query failed: {message}"))
        } else {
            QueryError::Internal("query cancelled: the query threads are shutting down".to_owned())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stack DataFusion's stacker sees on a query thread is the large
    /// one: its protection only allocates past it, and our margin is real.
    #[tokio::test]
    async fn query_threads_have_the_large_stack() {
        let executor = QueryExecutor::new(1);
        for remaining in [
            executor
                .run(async { stacker::remaining_stack() })
                .await
                .unwrap(),
            executor
                .run_blocking(stacker::remaining_stack)
                .await
                .unwrap(),
        ] {
            let remaining = remaining.expect("stacker knows the query thread's stack");
            assert!(
                remaining > QUERY_STACK_BYTES - (1 << 20) && remaining <= QUERY_STACK_BYTES,
                "remaining stack {remaining}"
            );
        }
    }

    #[tokio::test]
    async fn a_panic_is_an_internal_error() {
        let executor = QueryExecutor::new(1);
        let err = executor
            .run(async {
                if true {
                    panic!("boom");
                }
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&err, QueryError::Internal(m) if m == "query failed: boom"),
            "{err:?}"
        );
        // The thread survives and serves the next query.
        assert_eq!(executor.run(async { 7 }).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn dropping_the_caller_cancels_the_query() {
        let executor = QueryExecutor::new(1);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let pending = executor.run(async move {
            // Held until the task is dropped; then `rx` sees the close.
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        // Poll once so the task is spawned, then drop the caller.
        let mut pending = Box::pin(pending);
        assert!(futures::poll!(&mut pending).is_pending());
        drop(pending);
        assert!(
            rx.await.is_err(),
            "the task was aborted and dropped its sender"
        );
    }
}
