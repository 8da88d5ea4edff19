//! The export pipeline, apart from capture so that a slow or absent
//! backend never slows it:
//!
//! capture thread ──RowTap (bounded, try_send)──▶ intake task
//!   intake: edge filters → RED histograms; spans → bounded span queue
//!   sender task: one batch at a time → OTLP (retries with backoff inside
//!     the exporter, then a pause before the next batch after a failure)
//!   metrics task: every interval, collect the histograms → OTLP
//!
//! Every row or span that does not make it is counted.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::BooleanArray;
use arrow::record_batch::RecordBatch;
use opentelemetry_otlp::{
    MetricExporter, RetryPolicy, SpanExporter, WithExportConfig, WithHttpConfig, WithTonicConfig,
};
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{RandomIdGenerator, SpanData, SpanExporter as _};
use sonde_query::row_filter::RowFilter;
use sonde_query::stats::{Counter, StatsRegistry};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::config::{ExportArgs, OtlpProtocol, Signal};
use super::operation::{
    Exchange, Operation, Process, Processes, SeriesInputs, ServiceNaming, exchange_bounds,
    operation,
};
use super::red::{RedBatch, RedMetrics, SeriesIndex};
use super::spans::{ResourceDefaults, scope, span};
use crate::sessions::Exchanges;

/// Batches waiting between capture and the intake task.
const TAP_CAPACITY: usize = 256;
/// Spans per export request.
const MAX_EXPORT_BATCH: usize = 2048;
/// Longest pause after failed exports before the next attempt.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Spans with the process each is exported under.
type SpanBatch = Vec<(Arc<Process>, SpanData)>;

/// Per-table edge filters of one signal (absent: every row passes).
pub type TableFilters = HashMap<&'static str, Vec<RowFilter>>;

/// One flushed exchange table: its batch (for the edge filters, which are
/// SQL predicates over the table's columns) and the same rows typed.
struct Flushed {
    table: &'static str,
    batch: RecordBatch,
    exchanges: Exchanges,
}

/// The capture thread's end: hands each flushed exchange table to the
/// export pipeline without ever waiting.
#[derive(Clone)]
pub struct RowTap {
    tx: mpsc::Sender<Flushed>,
    dropped_rows: Arc<Counter>,
}

/// Typed rows the pipeline is done with, on their way back to the capture
/// thread, which allocated their strings: freeing them there is the
/// allocator's fast path (on another thread it is a locked, consolidating
/// one), and their vectors are reused with their capacity. As many are in
/// flight as the tap holds, so the channel is bounded by the tap's capacity.
pub struct ReturnedRows(std::sync::mpsc::Receiver<Exchanges>);

impl ReturnedRows {
    pub fn take(&self, mut each: impl FnMut(Exchanges)) {
        while let Ok(exchanges) = self.0.try_recv() {
            each(exchanges);
        }
    }
}

impl RowTap {
    pub fn offer(&self, table: &'static str, batch: RecordBatch, exchanges: Exchanges) {
        let rows = exchanges.len();
        if rows == 0 || rows != batch.num_rows() {
            return;
        }
        let flushed = Flushed {
            table,
            batch,
            exchanges,
        };
        if self.tx.try_send(flushed).is_err() {
            self.dropped_rows.add(rows as u64);
        }
    }
}

struct Counters {
    spans_created: Arc<Counter>,
    spans_queued: Arc<Counter>,
    spans_exported: Arc<Counter>,
    spans_dropped_queue_full: Arc<Counter>,
    spans_dropped_export_failed: Arc<Counter>,
    span_export_failures: Arc<Counter>,
    rows_filtered_out: Arc<Counter>,
    filter_errors: Arc<Counter>,
    metric_exports: Arc<Counter>,
    metric_export_failures: Arc<Counter>,
}

impl Counters {
    fn register(stats: &StatsRegistry) -> Self {
        Self {
            spans_created: stats.counter(
                "otlp_spans_created",
                "Spans made from captured rows (exported + dropped + queued)",
            ),
            spans_queued: stats.counter(
                "otlp_spans_queued",
                "Spans waiting for export now, including the batch being sent (a gauge)",
            ),
            spans_exported: stats
                .counter("otlp_spans_exported", "Spans accepted by the OTLP backend"),
            spans_dropped_queue_full: stats.counter(
                "otlp_spans_dropped_queue_full",
                "Spans dropped because the export queue was full (backend slow or down)",
            ),
            spans_dropped_export_failed: stats.counter(
                "otlp_spans_dropped_export_failed",
                "Spans dropped after their export failed (retries exhausted)",
            ),
            span_export_failures: stats.counter(
                "otlp_span_export_failures",
                "Span export requests that failed after retries",
            ),
            rows_filtered_out: stats.counter(
                "otlp_rows_filtered_out",
                "Rows kept local by a --traces-filter (not a loss)",
            ),
            filter_errors: stats.counter(
                "otlp_filter_errors",
                "Batches an edge filter failed to evaluate (their rows were not exported)",
            ),
            metric_exports: stats.counter("otlp_metric_exports", "Metric export requests accepted"),
            metric_export_failures: stats.counter(
                "otlp_metric_export_failures",
                "Metric export requests that failed (the next export carries the totals)",
            ),
        }
    }
}

pub struct Pipeline {
    pub tap: RowTap,
    /// For the capture thread (taken once).
    pub returned_rows: Option<ReturnedRows>,
    pub red: Arc<RedMetrics>,
    tasks: Vec<JoinHandle<()>>,
}

pub struct PipelineConfig {
    pub naming: ServiceNaming,
    pub defaults: ResourceDefaults,
    pub traces_filters: TableFilters,
    pub metrics_filters: TableFilters,
    pub max_services: usize,
}

impl Pipeline {
    /// Starts the tasks on the current tokio runtime. Exporters are built
    /// here, so a malformed endpoint is an error at startup.
    pub fn start(
        args: &ExportArgs,
        config: PipelineConfig,
        stats: &Arc<StatsRegistry>,
    ) -> anyhow::Result<Self> {
        let counters = Arc::new(Counters::register(stats));
        let red = Arc::new(RedMetrics::new(
            config.defaults.clone(),
            &args.otel_service_name,
            config.max_services,
            stats,
        ));
        let (tx, rx) = mpsc::channel(TAP_CAPACITY);
        let (return_tx, return_rx) = std::sync::mpsc::channel();
        let tap = RowTap {
            tx,
            dropped_rows: stats.counter(
                "otlp_rows_dropped_tap_full",
                "Rows not handed to the export pipeline because its intake queue was full",
            ),
        };
        let mut tasks = Vec::new();
        let span_tx = match args
            .endpoint_for(Signal::Traces)
            .filter(|_| args.exports(Signal::Traces))
        {
            Some(endpoint) => {
                let exporter = span_exporter(args, &endpoint)?;
                tracing::info!(%endpoint, protocol = ?args.otlp_protocol, "exporting spans over OTLP");
                let (span_tx, span_rx) = mpsc::channel::<SpanBatch>(1);
                tasks.push(tokio::spawn(send_spans(
                    exporter,
                    span_rx,
                    config.defaults.clone(),
                    counters.clone(),
                )));
                Some(span_tx)
            }
            None => None,
        };
        if let Some(endpoint) = args
            .endpoint_for(Signal::Metrics)
            .filter(|_| args.exports(Signal::Metrics))
        {
            let exporter = metric_exporter(args, &endpoint)?;
            tracing::info!(%endpoint, protocol = ?args.otlp_protocol, "exporting metrics over OTLP");
            tasks.push(tokio::spawn(export_metrics(
                exporter,
                red.clone(),
                args.metrics_interval(),
                args.timeout(),
                counters.clone(),
            )));
        }
        let intake = Intake {
            processes: Processes::new(config.naming),
            traces_filters: config.traces_filters,
            metrics_filters: config.metrics_filters,
            red: red.clone(),
            counters,
            queue: VecDeque::new(),
            max_queued: usize::try_from(args.otlp_max_queued_spans).unwrap_or(usize::MAX),
            span_tx,
            ids: RandomIdGenerator::default(),
            scope: scope(),
            returns: return_tx,
        };
        tasks.push(tokio::spawn(intake.run(rx)));
        Ok(Self {
            tap,
            returned_rows: Some(ReturnedRows(return_rx)),
            red,
            tasks,
        })
    }

    /// Waits (bounded) for queued spans to go out once the tap is closed.
    pub async fn finish(self, deadline: Duration) {
        let Pipeline { tap, tasks, .. } = self;
        drop(tap);
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(deadline, all).await.is_err() {
            tracing::warn!("OTLP export did not finish in time at shutdown; queued spans dropped");
        }
    }
}

/// Which rows of a batch a signal takes.
enum Selection {
    All,
    Rows(BooleanArray),
    Nothing,
}

impl Selection {
    fn selects(&self, row: usize) -> bool {
        match self {
            Selection::All => true,
            Selection::Rows(mask) => row < mask.len() && mask.value(row),
            Selection::Nothing => false,
        }
    }
}

struct Intake {
    processes: Processes,
    traces_filters: TableFilters,
    metrics_filters: TableFilters,
    red: Arc<RedMetrics>,
    counters: Arc<Counters>,
    queue: VecDeque<(Arc<Process>, SpanData)>,
    max_queued: usize,
    span_tx: Option<mpsc::Sender<SpanBatch>>,
    ids: RandomIdGenerator,
    scope: opentelemetry::InstrumentationScope,
    /// Read rows go back to the capture thread (see [`ReturnedRows`]).
    returns: std::sync::mpsc::Sender<Exchanges>,
}

impl Intake {
    async fn run(mut self, mut rx: mpsc::Receiver<Flushed>) {
        let mut ticker = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(flushed) => self.take(flushed),
                    None => break,
                },
                _ = ticker.tick() => self.hand_over(),
            }
        }
        // Shutdown: what is queued goes out, batch by batch.
        if let Some(tx) = self.span_tx.take() {
            while !self.queue.is_empty() {
                let n = self.queue.len().min(MAX_EXPORT_BATCH);
                if tx.send(self.queue.drain(..n).collect()).await.is_err() {
                    break;
                }
            }
        }
    }

    fn take(&mut self, flushed: Flushed) {
        let Flushed {
            table,
            batch,
            exchanges,
        } = flushed;
        match &exchanges {
            Exchanges::Http(rows) => self.take_rows(table, &batch, rows),
            Exchanges::Dns(rows) => self.take_rows(table, &batch, rows),
            Exchanges::Mysql(rows) => self.take_rows(table, &batch, rows),
            Exchanges::Redis(rows) => self.take_rows(table, &batch, rows),
            Exchanges::Pgsql(rows) => self.take_rows(table, &batch, rows),
        }
        // Without a capture thread to take them (shutdown), they drop here.
        let _ = self.returns.send(exchanges);
    }

    /// Each row is described once (an operation) and then counted in the
    /// RED histograms and/or queued as a span, as the signals' filters say.
    fn take_rows<R: Exchange>(&mut self, table: &'static str, batch: &RecordBatch, rows: &[R]) {
        let metrics = self.selection(table, batch, Signal::Metrics);
        let traces = if self.span_tx.is_some() {
            let traces = self.selection(table, batch, Signal::Traces);
            let kept = (0..batch.num_rows())
                .filter(|&row| traces.selects(row))
                .count();
            self.counters
                .rows_filtered_out
                .add((batch.num_rows() - kept) as u64);
            traces
        } else {
            Selection::Nothing
        };
        let mut red = RedBatch::default();
        // The series of each distinct set of inputs met in this batch (None:
        // no histogram): a row for the metrics only, whose inputs were met
        // before, is counted there without being described again (building
        // and hashing its attributes was most of the export's time).
        let mut described: HashMap<
            SeriesInputs<'_>,
            Option<SeriesIndex>,
            foldhash::fast::RandomState,
        > = HashMap::default();
        for (index, row) in rows.iter().enumerate() {
            let (for_metrics, for_traces) = (metrics.selects(index), traces.selects(index));
            if !for_metrics && !for_traces {
                continue;
            }
            let inputs = if for_traces {
                None
            } else {
                row.series_inputs()
            };
            if let Some(known) = inputs.and_then(|inputs| described.get(&inputs)) {
                if let Some(series) = *known {
                    let (start_ns, end_ns) = exchange_bounds(row);
                    red.add_to(series, start_ns, end_ns);
                }
                continue;
            }
            let Some(mut op) = operation(row, &mut self.processes, for_traces) else {
                continue;
            };
            if for_metrics {
                let series = red.add(&mut op);
                if let Some(inputs) = inputs {
                    described.insert(inputs, series);
                }
            }
            if for_traces {
                self.enqueue(op);
            }
        }
        self.red.record(red);
        if self.queue.len() >= MAX_EXPORT_BATCH {
            self.hand_over();
        }
    }

    fn enqueue(&mut self, op: Operation) {
        if self.queue.len() >= self.max_queued {
            self.queue.pop_front();
            self.counters.spans_dropped_queue_full.inc();
            self.counters.spans_queued.sub(1);
        }
        self.queue.push_back(span(op, &self.ids, &self.scope));
        self.counters.spans_created.inc();
        self.counters.spans_queued.inc();
    }

    /// The rows of `batch` that pass every filter of the signal for `table`
    /// (a filter that fails to evaluate selects nothing, and is counted).
    fn selection(&self, table: &str, batch: &RecordBatch, signal: Signal) -> Selection {
        let filters = match signal {
            Signal::Traces => &self.traces_filters,
            Signal::Metrics => &self.metrics_filters,
        };
        let mut selection = Selection::All;
        for filter in filters.get(table).into_iter().flatten() {
            let mask = filter.matches(batch).and_then(|mask| match &selection {
                Selection::Rows(before) => arrow::compute::and(before, &mask).map_err(|e| {
                    sonde_query::RowFilterError::Evaluation {
                        predicate: filter.predicate().to_string(),
                        reason: e.to_string(),
                    }
                }),
                _ => Ok(mask),
            });
            match mask {
                Ok(mask) => selection = Selection::Rows(mask),
                Err(err) => {
                    self.counters.filter_errors.inc();
                    tracing::warn!(%err, table, "edge filter failed");
                    return Selection::Nothing;
                }
            }
        }
        selection
    }

    /// Gives the sender the next batch if it is free; otherwise spans wait
    /// in the (bounded) queue.
    fn hand_over(&mut self) {
        let Some(tx) = &self.span_tx else { return };
        if self.queue.is_empty() {
            return;
        }
        let Ok(permit) = tx.try_reserve() else { return };
        let n = self.queue.len().min(MAX_EXPORT_BATCH);
        permit.send(self.queue.drain(..n).collect());
    }
}

/// Exports span batches one at a time, grouped by resource (the exporter
/// holds one resource per request).
async fn send_spans(
    mut exporter: SpanExporter,
    mut rx: mpsc::Receiver<SpanBatch>,
    defaults: ResourceDefaults,
    counters: Arc<Counters>,
) {
    let mut backoff = Duration::ZERO;
    while let Some(batch) = rx.recv().await {
        let mut groups: BTreeMap<Arc<Process>, Vec<SpanData>> = BTreeMap::new();
        for (process, span) in batch {
            groups.entry(process).or_default().push(span);
        }
        let mut failed = false;
        for (process, spans) in groups {
            let n = spans.len() as u64;
            // A span leaves the `otlp_spans_queued` gauge when its fate is
            // counted: exported or dropped.
            counters.spans_queued.sub(n);
            if failed {
                counters.spans_dropped_export_failed.add(n);
                continue;
            }
            exporter.set_resource(&defaults.resource(&process, true));
            match exporter.export(spans).await {
                Ok(()) => counters.spans_exported.add(n),
                Err(err) => {
                    failed = true;
                    counters.span_export_failures.inc();
                    counters.spans_dropped_export_failed.add(n);
                    tracing::warn!(%err, spans = n, "span export failed");
                }
            }
        }
        // After a failure, wait before the next batch (doubling up to a cap)
        // so a down backend is not hammered; spans queue meanwhile.
        backoff = if failed {
            (backoff * 2).clamp(Duration::from_secs(1), MAX_BACKOFF)
        } else {
            Duration::ZERO
        };
        if !backoff.is_zero() {
            tokio::time::sleep(backoff).await;
        }
    }
}

async fn export_metrics(
    exporter: MetricExporter,
    red: Arc<RedMetrics>,
    interval: Duration,
    timeout: Duration,
    counters: Arc<Counters>,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        for rm in red.collect() {
            match tokio::time::timeout(timeout, exporter.export(&rm)).await {
                Ok(Ok(())) => counters.metric_exports.inc(),
                Ok(Err(err)) => {
                    counters.metric_export_failures.inc();
                    tracing::warn!(%err, "metric export failed");
                    break;
                }
                Err(_) => {
                    counters.metric_export_failures.inc();
                    tracing::warn!("metric export timed out");
                    break;
                }
            }
        }
    }
}

/// Few retries: the queue, not the exporter, absorbs a long outage.
fn retry_policy() -> RetryPolicy {
    RetryPolicy::recommended()
        .with_max_retries(2)
        .with_initial_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(2))
}

fn is_https(endpoint: &str) -> bool {
    endpoint
        .get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
}

fn extra_ca(args: &ExportArgs) -> anyhow::Result<Option<Vec<u8>>> {
    args.otlp_certificate
        .as_deref()
        .map(super::client_tls::load_ca_file)
        .transpose()
}

/// The settings both exporters share, on a gRPC builder.
fn tonic_settings<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    args: &ExportArgs,
    endpoint: &str,
    ca: Option<&[u8]>,
) -> anyhow::Result<B> {
    let mut builder = builder
        .with_endpoint(endpoint)
        .with_timeout(args.timeout())
        .with_metadata(grpc_metadata(&args.otlp_headers)?)
        .with_retry_policy(retry_policy());
    if is_https(endpoint) {
        builder = builder.with_tls_config(super::client_tls::grpc_tls(ca));
    }
    Ok(builder)
}

/// The settings both exporters share, on an HTTP/protobuf builder.
fn http_settings<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    args: &ExportArgs,
    endpoint: &str,
    ca: Option<&[u8]>,
) -> anyhow::Result<B> {
    Ok(builder
        .with_endpoint(endpoint)
        .with_timeout(args.timeout())
        .with_headers(args.otlp_headers.iter().cloned().collect())
        .with_http_client(http_client(args, ca)?)
        .with_retry_policy(retry_policy()))
}

fn span_exporter(args: &ExportArgs, endpoint: &str) -> anyhow::Result<SpanExporter> {
    let ca = extra_ca(args)?;
    let ca = ca.as_deref();
    Ok(match args.otlp_protocol {
        OtlpProtocol::Grpc => {
            tonic_settings(SpanExporter::builder().with_tonic(), args, endpoint, ca)?.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            http_settings(SpanExporter::builder().with_http(), args, endpoint, ca)?.build()?
        }
    })
}

fn metric_exporter(args: &ExportArgs, endpoint: &str) -> anyhow::Result<MetricExporter> {
    let ca = extra_ca(args)?;
    let ca = ca.as_deref();
    Ok(match args.otlp_protocol {
        OtlpProtocol::Grpc => {
            tonic_settings(MetricExporter::builder().with_tonic(), args, endpoint, ca)?.build()?
        }
        OtlpProtocol::HttpProtobuf => {
            http_settings(MetricExporter::builder().with_http(), args, endpoint, ca)?.build()?
        }
    })
}

fn http_client(
    args: &ExportArgs,
    extra_ca: Option<&[u8]>,
) -> anyhow::Result<
    opentelemetry_http::hyper::HyperClient<
        hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    >,
> {
    Ok(opentelemetry_http::hyper::HyperClient::new(
        super::client_tls::https_connector(extra_ca)?,
        args.timeout(),
        None,
    ))
}

fn grpc_metadata(headers: &[(String, String)]) -> anyhow::Result<tonic::metadata::MetadataMap> {
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (key, value) in headers {
        let key =
            tonic::metadata::AsciiMetadataKey::from_bytes(key.to_ascii_lowercase().as_bytes())
                .map_err(|_| anyhow::anyhow!("`{key}` is not a valid gRPC metadata key"))?;
        let value = value.parse().map_err(|_| {
            anyhow::anyhow!("the value of header `{key}` is not valid gRPC metadata")
        })?;
        metadata.insert(key, value);
    }
    Ok(metadata)
}
