// The capture health strip: is the agent seeing everything? From the
// capture_stats table (cumulative counters, one sample per counter per
// second): rates come from consecutive samples, losses in the window from
// its first and last samples. Any loss turns the strip red and says what
// is missing, so nobody reads an incomplete window as a quiet one.

import { agentNow, records } from './api.js';
import * as fmt from './format.js';
import { runPanelQueries } from './panel.js';
import * as sql from './sql.js';

/** Seconds without a new sample before the counters count as stale. */
const STALE_AFTER_S = 10;

// Counters grouped as the strip shows them. `unit` words the banner.
const GROUPS = [
  {
    id: 'kernel-drops',
    label: 'Kernel drops',
    counters: ['kernel_ring_full_events', 'kernel_conn_map_full', 'kernel_active_map_full', 'kernel_read_failures', 'kernel_mmsg_truncated'],
    unit: 'events lost in the kernel',
  },
  {
    // A gap inside a body of known length loses only body bytes (the row is
    // complete); only gaps that lost a whole message count here.
    id: 'stream-gaps',
    label: 'Messages lost',
    counters: ['http_messages_lost', 'dns_messages_lost', 'mysql_messages_lost', 'redis_messages_lost'],
    unit: 'messages lost in stream gaps',
    also: ['stream_gaps', 'stream_buffer_dropped_bytes'],
  },
  {
    id: 'parse-losses',
    label: 'Parse losses',
    counters: [
      'http_parse_failures', 'dns_parse_failures', 'mysql_parse_failures', 'redis_parse_failures',
      'events_malformed', 'events_unknown_conn', 'conns_table_full',
    ],
    unit: 'messages or connections not parsed',
  },
  {
    id: 'evictions',
    label: 'Evicted rows',
    prefix: 'evicted_rows_',
    unit: 'rows evicted by the memory budget',
  },
];

export class HealthView {
  constructor(panel, { runQuery, onDataStart }) {
    this.panel = panel;
    this.runQuery = runQuery;
    this.onDataStart = onDataStart;
    this.chips = document.getElementById('health-chips');
    this.banner = document.getElementById('health-banner');
    this.since = document.getElementById('health-since');
  }

  async refresh(state) {
    const win = sql.WINDOWS[state.window];
    const results = await runPanelQueries(this.panel, this.runQuery, [
      { name: 'counters', title: 'Capture counters in the window', sql: sql.captureCounters(win) },
      { name: 'span', title: 'First and last counter samples', sql: sql.captureSpan() },
    ]);
    if (!results.counters || !results.span) return;
    const span = records(results.span)[0] ?? {};
    const series = samplesByName(records(results.counters));
    const first = fmt.parseTime(span.first_sample);
    const last = fmt.parseTime(span.last_sample);
    // The first sample is the agent's start unless the memory budget has
    // evicted the oldest samples.
    const agentStart = (series.get('evicted_rows_capture_stats')?.at(-1)?.value ?? 0) > 0 ? null : first;
    this.onDataStart(agentStart);
    const windowStart = agentNow() - win.seconds * 1000;
    // Counters start at zero with the agent: if it started inside the
    // window, everything it counted happened in the window.
    const startedInWindow = agentStart != null && agentStart > windowStart;
    this.render(series, { first: agentStart, last, startedInWindow, win });
  }

  render(series, { first, last, startedInWindow, win }) {
    const latest = (name) => series.get(name)?.at(-1)?.value ?? null;
    const inWindow = (name) => {
      const s = series.get(name);
      if (!s?.length) return 0;
      return s.at(-1).value - (startedInWindow ? 0 : s[0].value);
    };
    const namesOf = (group) => (group.prefix
      ? [...series.keys()].filter((n) => n.startsWith(group.prefix))
      : group.counters);

    const chips = [];
    const problems = [];

    const attached = latest('probes_attached');
    const failed = latest('probes_failed') ?? 0;
    chips.push(chip({
      id: 'probes',
      label: 'Probes attached',
      value: attached == null ? '—' : String(attached),
      sub: failed > 0 ? `${failed} failed` : 'none failed',
      status: attached == null || attached === 0 ? 'bad' : failed > 0 ? 'warn' : 'ok',
      valueId: 'probes-attached',
    }));
    if (attached === 0) problems.push('no probes are attached: nothing is captured');
    else if (failed > 0) problems.push(`${failed} probes could not attach: some syscalls are not traced`);

    const eventsRate = rateOf(series, sql.EVENT_COUNTERS);
    chips.push(chip({
      id: 'events',
      label: 'Events / s',
      value: eventsRate == null ? '—' : fmt.rate(eventsRate).replace('/s', ''),
      sub: 'from the kernel',
      status: 'neutral',
    }));

    for (const group of GROUPS) {
      const names = namesOf(group);
      const total = names.reduce((sum, n) => sum + inWindow(n), 0);
      const detail = [...names, ...(group.also ?? [])]
        .map((n) => `${n}: ${fmt.count(inWindow(n))} in window, ${fmt.count(latest(n) ?? 0)} since start`)
        .join('\n');
      chips.push(chip({
        id: group.id,
        label: group.label,
        value: fmt.count(total),
        sub: `in ${win.label}`,
        status: total > 0 ? 'bad' : 'ok',
        title: detail,
      }));
      if (total > 0) problems.push(`${fmt.count(total)} ${group.unit}`);
    }

    const gaps = inWindow('stream_gaps');
    chips.push(chip({
      id: 'gaps',
      label: 'Stream gaps',
      value: fmt.count(gaps),
      sub: 'skipped or lost',
      status: 'neutral',
      title: 'Byte ranges not captured (over the per-call cap, sendfile, ring buffer drops). Inside a body they are skipped and the row is complete; a gap that loses a message is counted under Messages lost.',
    }));

    const notCopied = inWindow('kernel_bytes_not_copied');
    chips.push(chip({
      id: 'not-copied',
      label: 'Bytes not copied',
      value: fmt.bytes(notCopied),
      sub: 'over the per-call cap',
      status: 'neutral',
      title: 'Payload beyond --max-bytes-per-call is accounted by size only: bodies are cut, rows are complete.',
    }));

    const ageS = last == null ? null : (agentNow() - last) / 1000;
    if (last == null) problems.push('no capture counters yet: the agent has not sampled them');
    else if (ageS > STALE_AFTER_S) problems.push(`the latest capture counters are ${Math.round(ageS)} s old: the capture loop may be stuck`);

    this.chips.replaceChildren(...chips);
    this.since.textContent = first == null ? '' : `agent started ${new Date(first).toLocaleString()}`;
    this.banner.hidden = problems.length === 0;
    this.banner.textContent = problems.length === 0
      ? ''
      : `Data is incomplete for this window: ${problems.join(' · ')}. Counts and rates below are lower bounds.`;
    this.panel.root.classList.toggle('incomplete', problems.length > 0);
  }
}

/** name -> [{at, value}] in time order (one sample per bin). */
function samplesByName(rows) {
  const out = new Map();
  for (const row of rows) {
    if (!out.has(row.name)) out.set(row.name, []);
    out.get(row.name).push({ at: fmt.parseTime(row.at), value: row.value });
  }
  return out;
}

/** Per-second rate of the sum of `names` between the last two samples. */
function rateOf(series, names) {
  let delta = 0;
  let seconds = null;
  for (const name of names) {
    const s = series.get(name);
    if (!s || s.length < 2) continue;
    const [a, b] = s.slice(-2);
    delta += b.value - a.value;
    seconds = Math.max(seconds ?? 0, (b.at - a.at) / 1000);
  }
  return seconds ? delta / seconds : null;
}

function chip({ id, label, value, sub, status, title, valueId }) {
  const el = document.createElement('div');
  el.className = `chip ${status}`;
  el.dataset.testid = id;
  if (title) el.title = title;
  const l = document.createElement('div');
  l.className = 'chip-label';
  l.textContent = label;
  const v = document.createElement('div');
  v.className = 'chip-value';
  v.textContent = value;
  if (valueId) v.dataset.testid = valueId;
  const s = document.createElement('div');
  s.className = 'chip-sub';
  s.textContent = sub;
  el.append(l, v, s);
  return el;
}
