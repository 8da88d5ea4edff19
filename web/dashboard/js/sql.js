// Every query the dashboard runs, built here and nowhere else, so the SQL
// a panel shows under its "SQL" toggle is exactly the SQL it ran. Keep the
// text readable: people copy it into the console and edit it.

import { sqlString } from './format.js';

/** Time windows: `binSeconds` gives about 60 points per chart. */
export const WINDOWS = {
  '5m': { label: '5 min', interval: "INTERVAL '5 minutes'", seconds: 300, binSeconds: 5 },
  '15m': { label: '15 min', interval: "INTERVAL '15 minutes'", seconds: 900, binSeconds: 15 },
  '1h': { label: '1 h', interval: "INTERVAL '1 hour'", seconds: 3600, binSeconds: 60 },
};

/**
 * The window in agent time (epoch ms). `dataStart` is where data can
 * begin: the window's start, or the agent's first sample if it started
 * later, so the rates of a young agent are not diluted by minutes it did
 * not run.
 */
export function windowSpan(win, nowMs, dataStartMs) {
  const start = nowMs - win.seconds * 1000;
  const binMs = win.binSeconds * 1000;
  const dataStart = dataStartMs != null && dataStartMs > start ? dataStartMs : start;
  return {
    start,
    end: nowMs,
    binMs,
    dataStart,
    /**
     * Where charts begin: the bin of `dataStart`. Before it the agent was
     * not running, and drawing zeros there would claim a quiet node.
     */
    axisStart: Math.floor(dataStart / binMs) * binMs,
    /** Seconds of the window the agent was running: the divisor of rates. */
    get seconds() { return Math.max(1, (this.end - this.dataStart) / 1000); },
  };
}

const PERCENTILES = [
  ['p50', 0.5],
  ['p90', 0.9],
  ['p99', 0.99],
];

// The node the dashboard is narrowed to (at a coordinator), or null for
// every node. Every query of the node's data goes through `inWindow` (or
// adds `nodeFilter` itself), so the filter is applied in one place.
let node = null;

/** Narrows every query to one node's rows; null: all nodes. */
export function setNode(name) {
  node = name ?? null;
}

function nodeFilter(prefix = '\n  AND ') {
  return node == null ? '' : `${prefix}node = ${sqlString(node)}`;
}

function bin(win, column = 'time_') {
  return `date_bin(INTERVAL '${win.binSeconds} seconds', ${column})`;
}

/**
 * Rows of the window (and, for a protocol, only its real exchanges; and
 * the chosen node's).
 */
function inWindow(win, protocol) {
  const time = `time_ > now() - ${win.interval}${nodeFilter()}`;
  return protocol?.filter ? `${time}\n  AND ${protocol.filter}` : time;
}

function percentiles(indent = '       ') {
  return PERCENTILES.map(([name, q]) => `${indent}approx_percentile_cont(latency, ${q}) AS ${name}`).join(',\n');
}

function errorCount(protocol) {
  return protocol.failed
    ? `sum(CASE WHEN ${protocol.failed} THEN 1 ELSE 0 END) AS errors`
    : 'CAST(NULL AS BIGINT) AS errors';
}

/**
 * Conditions narrowing to the focused service (comm + role) and, inside
 * it, endpoint; returns '' when nothing is focused.
 */
function focusFilter(protocol, focus, { withEndpoint = true } = {}) {
  if (!focus) return '';
  const parts = [`comm = ${sqlString(focus.comm)}`, `trace_role = ${sqlString(focus.role)}`];
  if (withEndpoint && focus.endpoint != null && protocol.endpoint) {
    parts.push(`${protocol.endpoint} = ${sqlString(focus.endpoint)}`);
  }
  return `\n  AND ${parts.join('\n  AND ')}`;
}

export function tables() {
  return "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name";
}

/** The nodes with recent counters: one at an agent, all at a coordinator. */
export function nodes() {
  return `SELECT DISTINCT node
FROM capture_stats
WHERE time_ > now() - INTERVAL '5 minutes' AND node IS NOT NULL
ORDER BY node`;
}

/** Requests and errors per bin and service: rate and error-rate charts. */
export function redSeries(protocol, win, focus) {
  return `SELECT ${bin(win)} AS t, comm, trace_role,
       count(*) AS requests,
       ${errorCount(protocol)}
FROM ${protocol.table}
WHERE ${inWindow(win, protocol)}${focusFilter(protocol, focus)}
GROUP BY 1, 2, 3
ORDER BY 1`;
}

/** Latency percentiles per bin: the latency chart. */
export function latencySeries(protocol, win, focus) {
  return `SELECT ${bin(win)} AS t,
${percentiles()}
FROM ${protocol.table}
WHERE ${inWindow(win, protocol)}${focusFilter(protocol, focus)}
GROUP BY 1
ORDER BY 1`;
}

/** One row per process name and side: the services table. */
export function services(protocol, win) {
  return `SELECT comm, trace_role,
       min(pid) AS pid, count(DISTINCT pid) AS pids,
       count(*) AS requests,
       ${errorCount(protocol)},
${percentiles()},
       max(time_) AS last_seen
FROM ${protocol.table}
WHERE ${inWindow(win, protocol)}
GROUP BY comm, trace_role
ORDER BY requests DESC
LIMIT 50`;
}

/** One row per endpoint of the focused service (or of all services). */
export function endpoints(protocol, win, focus) {
  return `SELECT comm, trace_role,
       ${protocol.endpoint} AS endpoint,
       count(*) AS requests,
       ${errorCount(protocol)},
${percentiles()}
FROM ${protocol.table}
WHERE ${inWindow(win, protocol)}${focusFilter(protocol, focus, { withEndpoint: false })}
GROUP BY 1, 2, 3
ORDER BY requests DESC
LIMIT 100`;
}

// The columns that identify a row for the drill-down, then the protocol's own.
function requestColumns(protocol) {
  const own = protocol.columns.map((c) => `${c.sql} AS ${c.as}, `).join('');
  return `time_, node, upid, pid, comm, trace_role, local_addr, local_port, remote_addr, remote_port,
       ${own}latency`;
}

export function slowest(protocol, win, focus) {
  return `SELECT ${requestColumns(protocol)}
FROM ${protocol.table}
WHERE ${inWindow(win, protocol)}${focusFilter(protocol, focus)}
ORDER BY latency DESC
LIMIT 20`;
}

/** The latest failures; null when the protocol has no notion of failure yet. */
export function failing(protocol, win, focus) {
  if (!protocol.failed) return null;
  return `SELECT ${requestColumns(protocol)}
FROM ${protocol.table}
WHERE ${inWindow(win, protocol)}${focusFilter(protocol, focus)}
  AND (${protocol.failed})
ORDER BY time_ DESC
LIMIT 50`;
}

/**
 * The full row behind a line of a request table. There is no row id:
 * the response time to the nanosecond, the process instance, the side and
 * both ports pin one exchange.
 */
export function drilldown(protocol, row) {
  return `SELECT *
FROM ${protocol.table}
WHERE time_ = TIMESTAMP ${sqlString(row.time_)}
  AND upid = ${sqlString(row.upid)}
  AND trace_role = ${sqlString(row.trace_role)}
  AND local_port = ${Number(row.local_port)}
  AND remote_port = ${Number(row.remote_port)}
  AND ${row.node == null ? 'node IS NULL' : `node = ${sqlString(row.node)}`}
LIMIT 1`;
}

/**
 * Edges of the service map. A client row is a call from its process to
 * remote_addr:remote_port; when a process on this node serves that address
 * (it has server rows with it as local address), the callee is named by
 * that process. A server row adds an edge only when its caller was not
 * traced on this node (else the caller's client row already has it); such
 * a caller is named by address alone, its port being ephemeral.
 */
export function serviceMap(protocol, win) {
  const failed = protocol.failed ?? 'false';
  return `WITH w AS (
  SELECT comm, trace_role, local_addr, local_port, remote_addr, remote_port, latency,
         ${failed} AS failed
  FROM ${protocol.table}
  WHERE ${inWindow(win, protocol).replace('\n', '\n  ')}
),
servers AS (
  SELECT local_addr, local_port, min(comm) AS comm
  FROM w WHERE trace_role = 'server'
  GROUP BY local_addr, local_port
),
clients AS (
  SELECT DISTINCT local_addr, local_port
  FROM w WHERE trace_role = 'client'
),
edges AS (
  SELECT w.comm AS source, 'process' AS source_kind,
         coalesce(s.comm, w.remote_addr || ':' || CAST(w.remote_port AS VARCHAR)) AS target,
         CASE WHEN s.comm IS NULL THEN 'peer' ELSE 'process' END AS target_kind,
         w.latency, w.failed
  FROM w LEFT JOIN servers s
    ON s.local_addr = w.remote_addr AND s.local_port = w.remote_port
  WHERE w.trace_role = 'client'
  UNION ALL
  SELECT w.remote_addr, 'peer', w.comm, 'process', w.latency, w.failed
  FROM w LEFT JOIN clients c
    ON c.local_addr = w.remote_addr AND c.local_port = w.remote_port
  WHERE w.trace_role = 'server' AND c.local_port IS NULL
)
SELECT source, source_kind, target, target_kind,
       count(*) AS requests,
       sum(CASE WHEN failed THEN 1 ELSE 0 END) AS errors,
       approx_percentile_cont(latency, 0.99) AS p99
FROM edges
GROUP BY 1, 2, 3, 4
ORDER BY requests DESC
LIMIT 200`;
}

/** Capture counters that mean rows are missing from the tables. */
export const LOSS_COUNTERS = [
  'kernel_ring_full_events',
  'kernel_conn_map_full',
  'kernel_active_map_full',
  'kernel_read_failures',
  'kernel_mmsg_truncated',
  'events_malformed',
  'events_unknown_conn',
  'stream_buffer_dropped_bytes',
  'http_parse_failures',
  'http_messages_lost',
  'dns_parse_failures',
  'dns_messages_lost',
  'mysql_parse_failures',
  'mysql_messages_lost',
  'redis_parse_failures',
  'redis_messages_lost',
  'conns_table_full',
];

export const EVENT_COUNTERS = ['events_open', 'events_data', 'events_close', 'events_proc_exit'];

const HEALTH_COUNTERS = [
  'probes_attached',
  'probes_failed',
  ...EVENT_COUNTERS,
  ...LOSS_COUNTERS,
  'stream_gaps',
  'kernel_bytes_not_copied',
];

/**
 * The capture counters over the window, one sample per bin and node (the
 * counters are cumulative, so the largest value of a bin is its last),
 * summed over the nodes. Rates come from consecutive samples, losses in
 * the window from the first and last.
 */
export function captureCounters(win) {
  const names = HEALTH_COUNTERS.map(sqlString).join(', ');
  return `SELECT t, name, max(at) AS at, sum(value) AS value
FROM (
  SELECT ${bin(win)} AS t, node, name, max(time_) AS at, max(value) AS value
  FROM capture_stats
  WHERE ${inWindow(win).replace('\n', '\n  ')}
    AND (name IN (${names})
         OR name LIKE 'evicted_rows_%')
  GROUP BY 1, 2, 3
)
GROUP BY 1, 2
ORDER BY 1`;
}

/** When the agent's counters start and end: start-up and staleness. */
export function captureSpan() {
  return `SELECT min(time_) AS first_sample, max(time_) AS last_sample FROM capture_stats${nodeFilter('\nWHERE ')}`;
}
