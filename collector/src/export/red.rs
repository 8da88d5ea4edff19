//! RED (rate, errors, duration) histograms of every service, kept by the
//! OpenTelemetry SDK: one meter provider per service resource, read on
//! demand (a ManualReader) by the OTLP metric export and by `/metrics`.
//! Cumulative temporality, so both readers see the same totals.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use indexmap::IndexMap;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram as OtelHistogram, MeterProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::reader::MetricReader;
use opentelemetry_sdk::metrics::{
    Aggregation, Instrument, InstrumentKind, ManualReader, Pipeline, SdkMeterProvider, Stream,
    Temporality,
};
use sonde_query::stats::{Counter, StatsRegistry};

use super::operation::{Histogram, Operation, Process};
use super::spans::{ResourceDefaults, scope};

/// A ManualReader the registry keeps a handle to after giving it to a
/// meter provider (which takes its reader by value).
#[derive(Debug, Clone)]
struct SharedReader(Arc<ManualReader>);

impl MetricReader for SharedReader {
    fn register_pipeline(&self, pipeline: Weak<Pipeline>) {
        self.0.register_pipeline(pipeline);
    }
    fn collect(&self, rm: &mut ResourceMetrics) -> OTelSdkResult {
        self.0.collect(rm)
    }
    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn temporality(&self, kind: InstrumentKind) -> Temporality {
        self.0.temporality(kind)
    }
}

struct ServiceMeters {
    /// Kept alive: dropping the provider stops its instruments.
    _provider: SdkMeterProvider,
    reader: SharedReader,
    histograms: HashMap<Histogram, OtelHistogram<f64>>,
}

impl ServiceMeters {
    fn new(resource: opentelemetry_sdk::Resource) -> Self {
        let reader = SharedReader(Arc::new(
            ManualReader::builder()
                .with_temporality(Temporality::Cumulative)
                .build(),
        ));
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader.clone())
            .with_view(bounded_histograms)
            .build();
        let meter = provider.meter_with_scope(scope());
        let histograms = Histogram::ALL
            .into_iter()
            .map(|h| {
                let instrument = meter
                    .f64_histogram(h.name())
                    .with_unit("s")
                    .with_description(h.description())
                    .with_boundaries(h.boundaries())
                    .build();
                (h, instrument)
            })
            .collect();
        Self {
            _provider: provider,
            reader,
            histograms,
        }
    }
}

/// Measurements of one series in one flush from which binding the
/// attributes (sorting and copying them once) beats a lookup per value.
const MIN_MEASUREMENTS_TO_BIND: usize = 4;

/// Attribute sets kept per histogram per service; beyond, measurements go
/// to the SDK's overflow series (`otel.metric.overflow=true`), so memory
/// stays bounded whatever the routes look like.
const MAX_SERIES_PER_HISTOGRAM: usize = 200;

/// The conventions' buckets and the series cap, for each RED histogram.
fn bounded_histograms(instrument: &Instrument) -> Option<Stream> {
    let histogram = Histogram::ALL
        .into_iter()
        .find(|h| h.name() == instrument.name())?;
    Stream::builder()
        .with_aggregation(Aggregation::ExplicitBucketHistogram {
            boundaries: histogram.boundaries(),
            record_min_max: true,
        })
        .with_cardinality_limit(MAX_SERIES_PER_HISTOGRAM)
        .build()
        .ok()
}

/// The services whose names hash alike (almost always one).
type ServiceBucket = Vec<(Process, Arc<ServiceMeters>)>;

pub struct RedMetrics {
    defaults: ResourceDefaults,
    max_services: usize,
    /// The meters of each service (a process without its pid), by
    /// [`service_hash`]: looked up per exchange without copying the
    /// process's names.
    services: Mutex<HashMap<u64, ServiceBucket>>,
    service_count: AtomicUsize,
    agent: ServiceMeters,
    /// Kept so its callback stays registered.
    _agent_counters: opentelemetry::metrics::ObservableGauge<u64>,
    over_cap: Arc<Counter>,
    recorded: Arc<Counter>,
}

impl RedMetrics {
    /// `agent_service`: service.name of the agent's own counters, which are
    /// exported beside the RED histograms.
    pub fn new(
        defaults: ResourceDefaults,
        agent_service: &str,
        max_services: usize,
        stats: &Arc<StatsRegistry>,
    ) -> Self {
        let agent_process = Process {
            service: agent_service.to_string(),
            pid: std::process::id(),
            comm: "sonde".to_string(),
            pod: None,
            namespace: None,
            container: None,
            node: None,
        };
        let agent = ServiceMeters::new(defaults.resource(&agent_process, true));
        let registry = stats.clone();
        // Read at collection time, so counters registered later are included.
        let agent_counters = agent
            ._provider
            .meter_with_scope(scope())
            .u64_observable_gauge("sonde.agent.counter")
            .with_description("The agent's own counters (the rows of capture_stats)")
            .with_callback(move |observer| {
                for counter in registry.snapshot() {
                    observer.observe(counter.value, &[KeyValue::new("name", counter.name)]);
                }
            })
            .build();
        Self {
            defaults,
            max_services,
            services: Mutex::new(HashMap::new()),
            service_count: AtomicUsize::new(0),
            agent,
            _agent_counters: agent_counters,
            over_cap: stats.counter(
                "red_metrics_services_over_cap",
                "Measurements not recorded: more services than the RED metrics cap",
            ),
            recorded: stats.counter(
                "red_metrics_recorded",
                "Exchanges recorded in the RED duration histograms",
            ),
        }
    }

    /// Counts a flush's measurements, series by series in the order they
    /// first occurred (so which series overflow the cap is first come,
    /// first served): per series one lookup of the service's meters, and
    /// for a busy series one binding of its attributes, then a direct write
    /// per measurement.
    pub fn record(&self, batch: RedBatch) {
        for (key, seconds) in batch.series {
            let n = seconds.len() as u64;
            let Some(meters) = self.meters(&key.process.0) else {
                self.over_cap.add(n);
                continue;
            };
            let Some(instrument) = meters.histograms.get(&key.histogram) else {
                continue;
            };
            if seconds.len() < MIN_MEASUREMENTS_TO_BIND {
                // Binding allocates; a lookup of an existing series does not.
                for value in seconds {
                    instrument.record(value, &key.attributes);
                }
            } else {
                let bound = instrument.bind(&key.attributes);
                for value in seconds {
                    bound.record(value);
                }
            }
            self.recorded.add(n);
        }
    }

    /// The meters of the process's service, made on first use; None beyond
    /// the services cap.
    fn meters(&self, process: &Process) -> Option<Arc<ServiceMeters>> {
        let hash = service_hash(process);
        let mut services = self.services.lock().unwrap_or_else(|e| e.into_inner());
        let found = services.get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|(known, _)| same_service(known, process))
                .map(|(_, meters)| meters.clone())
        });
        if found.is_some() {
            return found;
        }
        if self.service_count.load(Ordering::Relaxed) >= self.max_services {
            return None;
        }
        let key = Process {
            pid: 0,
            ..process.clone()
        };
        let meters = Arc::new(ServiceMeters::new(self.defaults.resource(&key, false)));
        services
            .entry(hash)
            .or_default()
            .push((key, meters.clone()));
        self.service_count.fetch_add(1, Ordering::Relaxed);
        Some(meters)
    }

    /// Current totals of every service, plus the agent's own counters.
    pub fn collect(&self) -> Vec<ResourceMetrics> {
        let readers: Vec<SharedReader> = {
            let services = self.services.lock().unwrap_or_else(|e| e.into_inner());
            services
                .values()
                .flatten()
                .map(|(_, m)| m.reader.clone())
                .collect()
        };
        std::iter::once(self.agent.reader.clone())
            .chain(readers)
            .filter_map(|reader| {
                let mut rm = ResourceMetrics::default();
                reader.collect(&mut rm).ok()?;
                Some(rm)
            })
            .collect()
    }

    /// The RED histograms in the Prometheus text format
    /// (`http_server_request_duration_seconds_bucket{...}`), labelled with
    /// the resource's service and Kubernetes identity.
    pub fn render_prometheus(&self, out: &mut String) {
        let collected = self.collect();
        for histogram in Histogram::ALL {
            let base = prometheus_name(histogram.name());
            let mut wrote_header = false;
            for rm in &collected {
                let resource_labels = resource_labels(rm);
                let points = rm
                    .scope_metrics()
                    .flat_map(|s| s.metrics())
                    .filter(|m| m.name() == histogram.name());
                for metric in points {
                    let AggregatedMetrics::F64(MetricData::Histogram(data)) = metric.data() else {
                        continue;
                    };
                    if !wrote_header {
                        let _ = writeln!(out, "# HELP {base} {}", histogram.description());
                        let _ = writeln!(out, "# TYPE {base} histogram");
                        wrote_header = true;
                    }
                    for point in data.data_points() {
                        let mut labels = resource_labels.clone();
                        for kv in point.attributes() {
                            labels.push((prometheus_label(kv.key.as_str()), kv.value.to_string()));
                        }
                        let mut cumulative = 0u64;
                        for (bound, count) in point.bounds().zip(point.bucket_counts()) {
                            cumulative += count;
                            write_sample(
                                out,
                                &format!("{base}_bucket"),
                                &labels,
                                Some(&bound.to_string()),
                                cumulative,
                            );
                        }
                        write_sample(
                            out,
                            &format!("{base}_bucket"),
                            &labels,
                            Some("+Inf"),
                            point.count(),
                        );
                        let _ = writeln!(
                            out,
                            "{base}_sum{} {}",
                            label_text(&labels, None),
                            point.sum()
                        );
                        write_sample(out, &format!("{base}_count"), &labels, None, point.count());
                    }
                }
            }
        }
    }

    pub fn services(&self) -> usize {
        self.service_count.load(Ordering::Relaxed)
    }
}

impl sonde_web::PrometheusSource for RedMetrics {
    fn render_prometheus(&self, out: &mut String) {
        RedMetrics::render_prometheus(self, out);
    }
}

fn resource_labels(rm: &ResourceMetrics) -> Vec<(String, String)> {
    ["service.name", "k8s.namespace.name", "k8s.pod.name"]
        .iter()
        .filter_map(|key| {
            rm.resource()
                .get(&opentelemetry::Key::from_static_str(key))
                .map(|v| (prometheus_label(key), v.to_string()))
        })
        .collect()
}

/// `http.server.request.duration` (unit s) → `http_server_request_duration_seconds`.
fn prometheus_name(name: &str) -> String {
    format!("{}_seconds", prometheus_label(name))
}

fn prometheus_label(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn label_text(labels: &[(String, String)], le: Option<&str>) -> String {
    let mut text = String::from("{");
    let all = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(le.map(|le| ("le", le)));
    for (i, (key, value)) in all.enumerate() {
        if i > 0 {
            text.push(',');
        }
        let escaped = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(text, "{key}=\"{escaped}\"");
    }
    text.push('}');
    text
}

fn write_sample(
    out: &mut String,
    name: &str,
    labels: &[(String, String)],
    le: Option<&str>,
    value: u64,
) {
    let _ = writeln!(out, "{name}{} {value}", label_text(labels, le));
}

/// A process compared by address: [`super::operation::Processes`] shares
/// one `Arc` per process, so equal addresses are equal processes.
struct SameProcess(Arc<Process>);

impl PartialEq for SameProcess {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SameProcess {}

impl Hash for SameProcess {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state);
    }
}

#[derive(PartialEq, Eq, Hash)]
struct SeriesKey {
    process: SameProcess,
    histogram: Histogram,
    attributes: Vec<KeyValue>,
}

/// The RED measurements of one flush, grouped by series (process,
/// histogram, attributes) before they reach the SDK, which would otherwise
/// hash every measurement's attributes and take its locks per row.
#[derive(Default)]
pub struct RedBatch {
    /// In order of first occurrence (see [`RedMetrics::record`]).
    series: IndexMap<SeriesKey, Vec<f64>, foldhash::fast::RandomState>,
}

impl RedBatch {
    /// Adds the operation's measurement (if it has a histogram), taking its
    /// metric attributes; returns its series, for [`RedBatch::add_to`].
    pub fn add(&mut self, op: &mut Operation) -> Option<SeriesIndex> {
        let (histogram, attributes) = op.metric.take()?;
        let key = SeriesKey {
            process: SameProcess(Arc::clone(&op.process)),
            histogram,
            attributes,
        };
        let entry = self.series.entry(key);
        let index = SeriesIndex(entry.index());
        entry
            .or_default()
            .push(duration_seconds(op.start_ns, op.end_ns));
        Some(index)
    }

    /// Adds a measurement to a series `add` returned for this batch.
    pub fn add_to(&mut self, series: SeriesIndex, start_ns: i64, end_ns: i64) {
        if let Some((_, seconds)) = self.series.get_index_mut(series.0) {
            seconds.push(duration_seconds(start_ns, end_ns));
        }
    }
}

/// A series of one [`RedBatch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesIndex(usize);

fn duration_seconds(start_ns: i64, end_ns: i64) -> f64 {
    end_ns.saturating_sub(start_ns).max(0) as f64 / 1e9
}

/// A hash of what names a service: every field of the process but its pid.
fn service_hash(p: &Process) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &p.service,
        &p.comm,
        &p.pod,
        &p.namespace,
        &p.container,
        &p.node,
    )
        .hash(&mut hasher);
    hasher.finish()
}

fn same_service(a: &Process, b: &Process) -> bool {
    (
        &a.service,
        &a.comm,
        &a.pod,
        &a.namespace,
        &a.container,
        &a.node,
    ) == (
        &b.service,
        &b.comm,
        &b.pod,
        &b.namespace,
        &b.container,
        &b.node,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::operation::{Operation, Role};

    fn red() -> (RedMetrics, Arc<StatsRegistry>) {
        let stats = Arc::new(StatsRegistry::new());
        let defaults = ResourceDefaults {
            host_name: "node-1".into(),
            extra: Vec::new(),
        };
        (RedMetrics::new(defaults, "sonde", 2, &stats), stats)
    }

    fn op(service: &str, route: &str, latency_ns: i64) -> Operation {
        Operation {
            role: Role::Server,
            start_ns: 1_000,
            end_ns: 1_000 + latency_ns,
            name: String::new(),
            spans: false,
            addressed: true,
            attributes: Vec::new(),
            metric: Some((
                Histogram::HttpServer,
                vec![KeyValue::new("http.route", route.to_string())],
            )),
            error: None,
            parent: None,
            process: Arc::new(Process {
                service: service.into(),
                pid: 1,
                comm: service.into(),
                pod: None,
                namespace: None,
                container: None,
                node: None,
            }),
        }
    }

    fn record(red: &RedMetrics, ops: impl IntoIterator<Item = Operation>) {
        let mut batch = RedBatch::default();
        for mut op in ops {
            batch.add(&mut op);
        }
        red.record(batch);
    }

    #[test]
    fn prometheus_text_of_one_series() {
        let (red, _) = red();
        // One series, both in one flush (one binding, two measurements).
        let first = op("web", "/a", 20_000_000);
        let second = Operation {
            end_ns: 1_000 + 3_000_000_000,
            ..first.clone()
        };
        record(&red, [first, second]);
        let mut text = String::new();
        red.render_prometheus(&mut text);
        let base = "http_server_request_duration_seconds";
        let labels = "service_name=\"web\",http_route=\"/a\"";
        assert!(
            text.contains(&format!("# TYPE {base} histogram\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{base}_bucket{{{labels},le=\"0.01\"}} 0\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{base}_bucket{{{labels},le=\"0.025\"}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{base}_bucket{{{labels},le=\"2.5\"}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{base}_bucket{{{labels},le=\"5\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{base}_bucket{{{labels},le=\"+Inf\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{base}_sum{{{labels}}} 3.02\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{base}_count{{{labels}}} 2\n")),
            "{text}"
        );
        assert!(
            !text.contains("db_client"),
            "only histograms with data: {text}"
        );
    }

    /// Each histogram point of the service: its count and `http.route`.
    fn points_of(red: &RedMetrics, service: &str) -> Vec<(u64, Option<String>)> {
        let resource = red
            .collect()
            .into_iter()
            .find(|rm| {
                rm.resource()
                    .get(&opentelemetry::Key::from_static_str("service.name"))
                    .is_some_and(|v| v.as_str() == service)
            })
            .unwrap();
        resource
            .scope_metrics()
            .flat_map(|s| s.metrics())
            .filter_map(|m| match m.data() {
                AggregatedMetrics::F64(MetricData::Histogram(h)) => Some(h),
                _ => None,
            })
            .flat_map(|h| h.data_points())
            .map(|p| {
                let route = p
                    .attributes()
                    .find(|kv| kv.key.as_str() == "http.route")
                    .map(|kv| kv.value.to_string());
                (p.count(), route)
            })
            .collect()
    }

    fn counter(stats: &StatsRegistry, name: &str) -> Option<u64> {
        stats
            .snapshot()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
    }

    #[test]
    fn flushes_add_up_in_one_series() {
        let (red, stats) = red();
        // A busy series (bound once) and then a sparse one (looked up).
        record(&red, (0..5).map(|_| op("web", "/a", 1_000)));
        record(&red, [op("web", "/a", 1_000)]);
        assert_eq!(points_of(&red, "web"), [(6, Some("/a".to_string()))]);
        assert_eq!(counter(&stats, "red_metrics_recorded"), Some(6));
    }

    #[test]
    fn series_and_services_are_capped() {
        let (red, stats) = red();
        record(&red, (0..300).map(|i| op("web", &format!("/r{i}"), 1_000)));
        record(&red, [op("api", "/", 1_000)]);
        record(&red, [op("third", "/", 1_000)]);
        assert_eq!(red.services(), 2);
        assert_eq!(counter(&stats, "red_metrics_services_over_cap"), Some(1));
        assert_eq!(counter(&stats, "red_metrics_recorded"), Some(301));
        let points = points_of(&red, "web");
        // The cap, plus the one overflow series (otel.metric.overflow=true).
        assert_eq!(points.len(), MAX_SERIES_PER_HISTOGRAM + 1);
        assert_eq!(
            points.iter().map(|(count, _)| count).sum::<u64>(),
            300,
            "overflowing measurements are kept in the overflow series"
        );
        // First come, first served: the routes that came first have series.
        let mut routes: Vec<u32> = points
            .iter()
            .filter_map(|(_, route)| route.as_deref()?.strip_prefix("/r")?.parse().ok())
            .collect();
        routes.sort_unstable();
        let first: Vec<u32> = (0..MAX_SERIES_PER_HISTOGRAM as u32).collect();
        assert_eq!(routes, first);
    }
}
