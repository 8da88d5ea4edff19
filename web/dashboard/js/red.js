// Rate, errors and duration (RED) of the selected protocol: three charts
// over the window, a services table and an endpoints table. Clicking a
// service or an endpoint focuses the charts (and the request tables) on it.

import { agentNow, records } from './api.js';
import { draw, palette, timeSeriesOption } from './charts.js';
import * as fmt from './format.js';
import { runPanelQueries } from './panel.js';
import * as sql from './sql.js';
import { renderTable } from './table.js';

/** Beyond this many services the rest of the traffic is one "other" line. */
const MAX_SERIES = 8;

export class RedView {
  /**
   * @param {import('./panel.js').Panel} panel
   * @param {{runQuery: Function, setFocus: (focus: object|null) => void}} deps
   */
  constructor(panel, { runQuery, setFocus }) {
    this.panel = panel;
    this.runQuery = runQuery;
    this.setFocus = setFocus;
    this.el = {
      rate: document.getElementById('chart-rate'),
      errors: document.getElementById('chart-errors'),
      endpointsHint: document.getElementById('endpoints-hint'),
      latency: document.getElementById('chart-latency'),
      errorCaption: document.getElementById('error-caption'),
      services: document.getElementById('services-table'),
      endpoints: document.getElementById('endpoints-table'),
      focus: document.getElementById('focus'),
    };
  }

  async refresh(state) {
    const { protocol, focus } = state;
    const win = sql.WINDOWS[state.window];
    const results = await runPanelQueries(this.panel, this.runQuery, [
      { name: 'series', title: 'Requests and errors over time', sql: sql.redSeries(protocol, win, focus) },
      { name: 'latency', title: 'Latency percentiles over time', sql: sql.latencySeries(protocol, win, focus) },
      { name: 'services', title: 'Services', sql: sql.services(protocol, win) },
      {
        name: 'endpoints',
        title: focus ? 'Endpoints of the focused service' : 'Endpoints',
        sql: protocol.endpoint ? sql.endpoints(protocol, win, focus) : null,
      },
    ]);
    const now = agentNow();
    const span = sql.windowSpan(win, now, state.dataStartMs);
    this.renderFocus(focus);
    this.el.endpointsHint.textContent = `${protocol.endpointNote ?? ''}; click to focus`;
    this.el.errorCaption.textContent = protocol.failed
      ? `Error rate (%) — ${protocol.failedNote}`
      : 'Error rate (%)';
    if (results.series) this.drawRequestCharts(records(results.series), span, protocol);
    if (results.latency) this.drawLatency(records(results.latency), span);
    if (results.services) this.renderServices(records(results.services), span, focus);
    if (protocol.endpoint) {
      if (results.endpoints) this.renderEndpoints(records(results.endpoints), span, focus);
    } else {
      renderTable(this.el.endpoints, [], [], { empty: `No endpoint view for ${protocol.label} yet: use the SQL console.` });
    }
  }

  drawRequestCharts(rows, span, protocol) {
    const bins = binStarts(span);
    const byService = new Map();
    for (const row of rows) {
      const key = `${row.comm} (${row.trace_role})`;
      let entry = byService.get(key);
      if (!entry) {
        entry = { total: 0, requests: new Map(), errors: new Map() };
        byService.set(key, entry);
      }
      const t = fmt.parseTime(row.t);
      entry.total += row.requests;
      entry.requests.set(t, (entry.requests.get(t) ?? 0) + row.requests);
      entry.errors.set(t, (entry.errors.get(t) ?? 0) + (row.errors ?? 0));
    }
    const groups = topWithOther([...byService.entries()], MAX_SERIES);
    const rateSeries = groups.map(([name, entry]) => ({
      name,
      data: bins.map((t) => [t, (entry.requests.get(t) ?? 0) / binSeconds(t, span)]),
    }));
    const errorSeries = groups.map(([name, entry]) => ({
      name,
      data: bins.map((t) => {
        const n = entry.requests.get(t) ?? 0;
        return [t, n > 0 && protocol.failed ? (100 * (entry.errors.get(t) ?? 0)) / n : null];
      }),
    }));
    const axis = { min: span.axisStart, max: span.end };
    draw(this.el.rate, timeSeriesOption(rateSeries, { ...axis, format: (v) => fmt.rate(v), stacked: true }));
    const errorOption = timeSeriesOption(errorSeries, { ...axis, format: (v) => `${fmt.percent(v / 100)}`, yMax: (v) => Math.max(5, Math.ceil(v.max)) });
    markSparsePoints(errorOption);
    if (!protocol.failed) {
      errorOption.graphic = noteGraphic(`no error definition for ${protocol.label} yet`);
    }
    draw(this.el.errors, errorOption);
  }

  drawLatency(rows, span) {
    const bins = binStarts(span);
    const byBin = new Map(rows.map((r) => [fmt.parseTime(r.t), r]));
    const colors = palette();
    const line = (key, color) => ({
      name: key,
      color,
      data: bins.map((t) => {
        const v = byBin.get(t)?.[key];
        return [t, v == null ? null : v / 1e6];
      }),
    });
    const series = [line('p50', colors.ok), line('p90', colors.warn), line('p99', colors.error)];
    const option = timeSeriesOption(series, {
      min: span.axisStart,
      max: span.end,
      format: (ms) => fmt.duration(ms * 1e6),
    });
    markSparsePoints(option);
    if (rows.length === 0) option.graphic = noteGraphic('no requests in this window');
    draw(this.el.latency, option);
  }

  renderServices(rows, span, focus) {
    renderTable(this.el.services, [
      { label: 'Service', value: (r) => `${r.comm} (${r.trace_role})`, className: () => 'strong' },
      {
        label: 'PID',
        value: (r) => (r.pids > 1 ? `${r.pid} +${r.pids - 1}` : r.pid),
        title: (r) => (r.pids > 1 ? `${r.pids} processes named ${r.comm}; lowest pid shown` : ''),
        numeric: true,
      },
      ...metricColumns(span),
    ], rows, {
      onClick: (r) => this.setFocus(sameService(focus, r) && focus.endpoint == null ? null : { comm: r.comm, role: r.trace_role }),
      isSelected: (r) => sameService(focus, r),
      empty: 'No traffic captured in this window.',
    });
  }

  renderEndpoints(rows, span, focus) {
    renderTable(this.el.endpoints, [
      { label: 'Service', value: (r) => `${r.comm} (${r.trace_role})` },
      { label: 'Endpoint', value: (r) => r.endpoint, className: () => 'mono clip', title: (r) => r.endpoint },
      ...metricColumns(span),
    ], rows, {
      onClick: (r) => {
        const selected = sameService(focus, r) && focus.endpoint === r.endpoint;
        this.setFocus(selected ? { comm: r.comm, role: r.trace_role } : { comm: r.comm, role: r.trace_role, endpoint: r.endpoint });
      },
      isSelected: (r) => sameService(focus, r) && focus.endpoint === r.endpoint,
      empty: 'No traffic captured in this window.',
    });
  }

  renderFocus(focus) {
    const parts = [];
    if (!focus) {
      const all = document.createElement('span');
      all.className = 'focus-all';
      all.textContent = 'All services';
      parts.push(all);
    } else {
      parts.push(chip(`${focus.comm} (${focus.role})`, () => this.setFocus(null)));
      if (focus.endpoint != null) {
        parts.push(chip(focus.endpoint, () => this.setFocus({ comm: focus.comm, role: focus.role })));
      }
    }
    this.el.focus.replaceChildren(...parts);
  }
}

function chip(text, onClear) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'chip-btn';
  b.title = 'Remove this filter';
  b.textContent = `${text} ✕`;
  b.addEventListener('click', onClear);
  return b;
}

function sameService(focus, row) {
  return focus != null && focus.comm === row.comm && focus.role === row.trace_role;
}

/** Requests per second, errors and latency percentiles, for both tables. */
function metricColumns(span) {
  const { seconds } = span;
  return [
    { label: 'Req/s', value: (r) => fmt.rate(r.requests / seconds), numeric: true, title: (r) => `${fmt.count(r.requests)} requests` },
    {
      label: 'Errors',
      value: (r) => (r.errors == null ? 'n/a' : fmt.percent(r.errors / r.requests)),
      numeric: true,
      className: (r) => (r.errors > 0 ? 'bad' : ''),
      title: (r) => (r.errors == null ? '' : `${fmt.count(r.errors)} of ${fmt.count(r.requests)}`),
    },
    { label: 'p50', value: (r) => fmt.duration(r.p50), numeric: true },
    { label: 'p90', value: (r) => fmt.duration(r.p90), numeric: true },
    { label: 'p99', value: (r) => fmt.duration(r.p99), numeric: true, className: () => 'strong' },
  ];
}

/** Starts of the bins date_bin gives in the window (aligned on the epoch). */
function binStarts(span) {
  const first = Math.floor(span.axisStart / span.binMs) * span.binMs;
  const out = [];
  for (let t = first; t <= span.end; t += span.binMs) out.push(t);
  return out;
}

/** Seconds of a bin inside the window: the first and last are partial. */
function binSeconds(binStart, span) {
  const from = Math.max(binStart, span.dataStart);
  const to = Math.min(binStart + span.binMs, span.end);
  return Math.max(1, (to - from) / 1000);
}

/** The `max` busiest entries, then the rest summed as "other". */
function topWithOther(entries, max) {
  entries.sort((a, b) => b[1].total - a[1].total);
  if (entries.length <= max) return entries;
  const other = { total: 0, requests: new Map(), errors: new Map() };
  for (const [, entry] of entries.slice(max - 1)) {
    other.total += entry.total;
    for (const [t, n] of entry.requests) other.requests.set(t, (other.requests.get(t) ?? 0) + n);
    for (const [t, n] of entry.errors) other.errors.set(t, (other.errors.get(t) ?? 0) + n);
  }
  return [...entries.slice(0, max - 1), ['other', other]];
}

/**
 * Bins without requests are gaps in latency and error lines, so a busy
 * bin between two quiet ones would be a line of no length: draw points.
 */
function markSparsePoints(option) {
  for (const s of option.series) {
    s.showSymbol = true;
    s.symbolSize = 3;
  }
}

function noteGraphic(text) {
  return {
    type: 'text',
    left: 'center',
    top: 'middle',
    style: { text, fill: palette().muted, fontSize: 13 },
  };
}
