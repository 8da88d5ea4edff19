//! The capture thread: ring buffer → tracker → table store (and the export
//! tap), on its own thread so that queries never delay reading the ring
//! buffer (and the reverse).

use std::sync::Arc;
use std::time::Duration;

use aya::maps::{MapData, RingBuf};
use sonde_query::schema::CAPTURE_STATS;
use sonde_query::stats::{Counter, StatsRegistry};
use sonde_query::store::TableStore;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::loader::{Probes, process_alive};
use crate::clock::Clock;
use crate::export::{ReturnedRows, RowTap};
use crate::tracker::Tracker;

/// Rows buffered before a flush even if the second has not passed.
const FLUSH_ROWS: usize = 8192;
/// Records handled per wakeup before the loop lets the ticker run.
const DRAIN_BATCH: usize = 16_384;
/// How often the reader collects records the kernel wrote without waking it
/// (below `--ring-wakeup-bytes`): bounds how long a record waits at low load.
pub const COLLECT_EVERY: Duration = Duration::from_millis(20);
/// Ticks (seconds) between sweeps of the kernel connection map.
const SWEEP_EVERY_TICKS: u64 = 30;

pub struct Capture {
    pub probes: Probes,
    pub ring: RingBuf<MapData>,
    pub tracker: Tracker,
    pub store: Arc<TableStore>,
    pub stats: Arc<StatsRegistry>,
    /// Where protocol rows also go for OTLP export and RED metrics.
    pub tap: Option<RowTap>,
    /// The typed rows the export pipeline has read, back to be freed here.
    pub returned_rows: Option<ReturnedRows>,
    /// Collection period when the kernel wakes the reader in batches; None
    /// when every record may wake it.
    pub collect_every: Option<Duration>,
}

/// Runs until `shutdown` turns true; returns after a final flush.
pub fn run_blocking(capture: Capture, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(capture, shutdown))
}

async fn run(capture: Capture, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let Capture {
        mut probes,
        ring,
        mut tracker,
        store,
        stats,
        tap,
        returned_rows,
        collect_every,
    } = capture;
    let sink = Sink {
        store: &store,
        tap: tap.as_ref(),
        returned_rows: returned_rows.as_ref(),
    };
    let kernel_counters: Vec<Arc<Counter>> = sonde_ebpf::events::KERNEL_STATS
        .iter()
        .map(|&(_, name, help)| stats.counter(name, help))
        .collect();
    let counters = ReaderCounters {
        records_read: stats.counter("ring_records_read", "Records read from the BPF ring buffer"),
        copy_stop_failed: stats.counter(
            "conns_copy_stop_failed",
            "Opaque connections the kernel could not be told to stop copying (they go on being copied)",
        ),
    };
    // SAFETY: the ring buffer's fd stays open and unchanged for as long as the AsyncFd owns it.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .map_err(|e| anyhow::anyhow!("cannot poll the ring buffer: {}", e.into_parts().1))?;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u64;
    let mut collector = collect_every.map(|period| {
        let mut collector = tokio::time::interval(period);
        collector.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        collector
    });

    loop {
        tokio::select! {
            ready = ring.readable_mut() => {
                let mut guard = ready?;
                let empty = drain(guard.get_inner_mut(), &mut tracker, &mut probes, &sink, &counters);
                // Under sustained load the ring never empties: keep the
                // readiness and come back, so the ticker (flushes, counters,
                // timeouts) gets its turn in between.
                if empty {
                    guard.clear_ready();
                } else {
                    guard.retain_ready();
                }
            }
            _ = next_collection(collector.as_mut()) => {
                let _ = drain(ring.get_mut(), &mut tracker, &mut probes, &sink, &counters);
            }
            _ = ticker.tick() => {
                ticks += 1;
                // Wakeups can be coalesced; never leave records behind for long.
                let _ = drain(ring.get_mut(), &mut tracker, &mut probes, &sink, &counters);
                let gone = tracker.tick(Clock::monotonic_now(), process_alive);
                probes.forget_connections(&gone);
                if ticks.is_multiple_of(SWEEP_EVERY_TICKS) {
                    let swept = probes.sweep_dead_connections();
                    if swept > 0 {
                        tracing::debug!(swept, "removed kernel connection entries of exited processes");
                    }
                }
                mirror_kernel_counters(&probes, &kernel_counters);
                flush(&mut tracker, &sink, &stats);
            }
            _ = shutdown.changed() => break,
        }
    }
    // What is already in the ring buffer at shutdown (bounded: traffic goes on).
    for _ in 0..64 {
        if drain(ring.get_mut(), &mut tracker, &mut probes, &sink, &counters) {
            break;
        }
    }
    tracker.finish_all();
    mirror_kernel_counters(&probes, &kernel_counters);
    flush(&mut tracker, &sink, &stats);
    Ok(())
}

struct ReaderCounters {
    records_read: Arc<Counter>,
    copy_stop_failed: Arc<Counter>,
}

/// The next tick of the collection timer; never, without one.
async fn next_collection(collector: Option<&mut tokio::time::Interval>) {
    match collector {
        Some(collector) => {
            collector.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Handles up to DRAIN_BATCH records; true if the ring buffer was emptied.
fn drain(
    ring: &mut RingBuf<MapData>,
    tracker: &mut Tracker,
    probes: &mut Probes,
    sink: &Sink<'_>,
    counters: &ReaderCounters,
) -> bool {
    let mut gone = Vec::new();
    let mut empty = false;
    for _ in 0..DRAIN_BATCH {
        let Some(record) = ring.next() else {
            empty = true;
            break;
        };
        counters.records_read.inc();
        prefetch_next_record(&record);
        gone.extend(tracker.handle_record(&record));
        drop(record);
        // At once, not after the batch: the kernel copies the connection
        // until it is told.
        let opaque = tracker.take_stop_copying();
        if !opaque.is_empty() {
            counters.copy_stop_failed.add(probes.stop_copying(&opaque));
        }
        if tracker.pending_rows() >= FLUSH_ROWS {
            flush_rows(tracker, sink);
        }
    }
    if !gone.is_empty() {
        probes.forget_connections(&gone);
    }
    empty
}

/// Lines of the next record asked for ahead: its ring header, the event
/// header and the first bytes of its payload.
const PREFETCH_LINES: usize = 3;

/// Starts loading the record after `record` while this one is handled. A
/// record is written by the kernel on the traced process's CPU, so the
/// reader's first touch of it is a miss to another core's cache (the
/// largest self cost in `handle_record` in a profile under load); handling
/// one record takes long enough to hide the next one's.
fn prefetch_next_record(record: &[u8]) {
    // Records follow each other 8-byte aligned, each after its 8-byte ring
    // header; the data area is mapped twice in a row, so the address past
    // the end of the ring is its start.
    let next = record
        .as_ptr()
        .wrapping_add(record.len().next_multiple_of(8));
    for line in 0..PREFETCH_LINES {
        prefetch(next.wrapping_add(line * 64));
    }
}

#[cfg(target_arch = "x86_64")]
fn prefetch(address: *const u8) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: a prefetch is a hint: it loads nothing the program can
    // observe and never faults, whatever the address (here possibly past
    // what the producer has written yet).
    unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) }
}

#[cfg(not(target_arch = "x86_64"))]
fn prefetch(_address: *const u8) {}

fn mirror_kernel_counters(probes: &Probes, counters: &[Arc<Counter>]) {
    for (counter, value) in counters.iter().zip(probes.kernel_counters()) {
        counter.set(value);
    }
}

/// Where flushed rows go: the table store, and the export tap if any.
struct Sink<'a> {
    store: &'a TableStore,
    tap: Option<&'a RowTap>,
    returned_rows: Option<&'a ReturnedRows>,
}

fn flush_rows(tracker: &mut Tracker, sink: &Sink<'_>) {
    if let Some(returned) = sink.returned_rows {
        returned.take(|exchanges| tracker.recycle(exchanges));
    }
    for flushed in tracker.take_batches() {
        let table = flushed.table;
        let batch = flushed.batch.clone();
        if let (Some(tap), Some(exchanges)) = (sink.tap, flushed.exchanges) {
            tap.offer(table, flushed.batch, exchanges);
        }
        if let Err(err) = sink.store.append(table, batch) {
            tracker.counters().store_append_failures.inc();
            tracing::error!(%err, table, "batch refused by the store");
        }
    }
}

fn flush(tracker: &mut Tracker, sink: &Sink<'_>, stats: &StatsRegistry) {
    flush_rows(tracker, sink);
    let store = sink.store;
    {
        let now = Clock::sample().to_unix_ns(Clock::monotonic_now());
        if let Err(err) = store.append(CAPTURE_STATS, stats.to_record_batch(now)) {
            tracker.counters().store_append_failures.inc();
            tracing::error!(%err, "capture_stats batch refused by the store");
        }
    }
}
