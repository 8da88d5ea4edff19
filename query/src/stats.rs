//! The agent's own counters (events seen, kernel drops, parse failures,
//! evictions, ...). They are exported two ways so loss is never silent:
//! as rows of the `capture_stats` table and as Prometheus text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arrow::array::{Int64Builder, StringArray, StringBuilder, TimestampNanosecondBuilder};
use arrow::record_batch::RecordBatch;

use crate::schema::capture_stats_schema;

/// Prefix of every exported Prometheus metric name.
const PROMETHEUS_PREFIX: &str = "sonde_";

/// A monotonically increasing count, or a mirror of a count kept elsewhere
/// (e.g. a kernel map) via [`Counter::set`]. Relaxed ordering: counters are
/// independent statistics, never used to synchronise other memory.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(&self) {
        self.add(1);
    }

    /// Lowers a gauge kept by `add`/`sub` pairs (saturating at zero). One
    /// atomic step each, so concurrent updaters never lose one another's
    /// change the way a computed `set` can.
    pub fn sub(&self, n: u64) {
        _ = self
            .0
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Overwrites the value; for counters whose source of truth lives
    /// outside the agent (kernel drop counters read from BPF maps).
    pub fn set(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub name: String,
    pub help: String,
    pub value: u64,
}

#[derive(Debug)]
struct Entry {
    help: String,
    counter: Arc<Counter>,
}

/// Named counters, created on first use and shared by name.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    // BTreeMap keeps exports sorted by name without sorting on each read.
    counters: Mutex<BTreeMap<String, Entry>>,
}

impl StatsRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the counter called `name`, creating it on first call; later
    /// calls with the same name return the same `Arc` (and keep the first
    /// help text). Names should be snake_case; any other character is
    /// replaced by `_` so every name is a valid Prometheus metric name.
    pub fn counter(&self, name: &str, help: &str) -> Arc<Counter> {
        let name = sanitize_name(name);
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = counters.entry(name).or_insert_with(|| Entry {
            help: help.to_owned(),
            counter: Arc::new(Counter::default()),
        });
        Arc::clone(&entry.counter)
    }

    /// All counters, sorted by name.
    pub fn snapshot(&self) -> Vec<CounterSnapshot> {
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .map(|(name, entry)| CounterSnapshot {
                name: name.clone(),
                help: entry.help.clone(),
                value: entry.counter.get(),
            })
            .collect()
    }

    /// One `capture_stats` row per counter, all stamped `time_ns` and this
    /// process's node ([`crate::node::local`]).
    pub fn to_record_batch(&self, time_ns: i64) -> RecordBatch {
        let snapshot = self.snapshot();
        let mut time =
            TimestampNanosecondBuilder::with_capacity(snapshot.len()).with_timezone("UTC");
        let mut names = StringBuilder::new();
        let mut values = Int64Builder::with_capacity(snapshot.len());
        for counter in &snapshot {
            time.append_value(time_ns);
            names.append_value(&counter.name);
            // The column is Int64 (SQL has no unsigned 64-bit type that every
            // client handles); a counter past i64::MAX saturates.
            values.append_value(i64::try_from(counter.value).unwrap_or(i64::MAX));
        }
        RecordBatch::try_new(
            capture_stats_schema(),
            vec![
                Arc::new(time.finish()),
                Arc::new(names.finish()),
                Arc::new(values.finish()),
                Arc::new(StringArray::from(vec![
                    crate::node::local();
                    snapshot.len()
                ])),
            ],
        )
        .expect("capture_stats columns are built to match capture_stats_schema")
    }

    /// Prometheus text exposition format (version 0.0.4), metric names
    /// prefixed with `sonde_`.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        for counter in self.snapshot() {
            let name = format!("{PROMETHEUS_PREFIX}{}", counter.name);
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP {name} {}", escape_help(&counter.help));
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", counter.value);
        }
        out
    }
}

/// Maps a name onto `[a-z0-9_]`, not starting with a digit.
fn sanitize_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// HELP text escaping required by the exposition format.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::TimestampNanosecondType;

    use super::*;

    #[test]
    fn same_name_returns_same_counter() {
        let stats = StatsRegistry::new();
        let a = stats.counter("events_total", "events");
        let b = stats.counter("events_total", "ignored second help");
        a.add(3);
        b.inc();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(a.get(), 4);
        b.set(10);
        assert_eq!(
            stats.snapshot(),
            vec![CounterSnapshot {
                name: "events_total".into(),
                help: "events".into(),
                value: 10
            }]
        );
    }

    #[test]
    fn names_are_sanitized() {
        let stats = StatsRegistry::new();
        stats.counter("Kernel-Drops.ring", "x");
        stats.counter("9lives", "y");
        stats.counter("", "z");
        let names: Vec<String> = stats.snapshot().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["_", "_9lives", "kernel_drops_ring"]);
    }

    #[test]
    fn record_batch_has_one_row_per_counter_sorted() {
        // The one name every test of this crate sets.
        crate::node::set_local("n1").unwrap();
        let stats = StatsRegistry::new();
        stats.counter("b_counter", "b").add(7);
        stats.counter("a_counter", "a").set(u64::MAX);
        let batch = stats.to_record_batch(1_000);
        assert_eq!(batch.schema(), capture_stats_schema());
        let nodes = batch.column(3).as_string::<i32>();
        assert_eq!(nodes.iter().collect::<Vec<_>>(), [Some("n1"), Some("n1")]);
        let time = batch.column(0).as_primitive::<TimestampNanosecondType>();
        assert_eq!(time.values().to_vec(), vec![1_000, 1_000]);
        let names = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(
            names.iter().collect::<Vec<_>>(),
            [Some("a_counter"), Some("b_counter")]
        );
        let values = batch
            .column(2)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        assert_eq!(values.values().to_vec(), vec![i64::MAX, 7]);
    }

    #[test]
    fn empty_registry_gives_empty_batch() {
        let batch = StatsRegistry::new().to_record_batch(5);
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.num_columns(), 4);
    }

    #[test]
    fn prometheus_text() {
        let stats = StatsRegistry::new();
        stats
            .counter("parse_failures", "Rows the parser\\rejected\nper protocol")
            .add(2);
        stats.counter("events", "Events read").add(41);
        assert_eq!(
            stats.render_prometheus(),
            "# HELP sonde_events Events read\n\
             # TYPE sonde_events counter\n\
             sonde_events 41\n\
             # HELP sonde_parse_failures Rows the parser\\\\rejected\\nper protocol\n\
             # TYPE sonde_parse_failures counter\n\
             sonde_parse_failures 2\n"
        );
    }
}
