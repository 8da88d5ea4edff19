// Number, time and text formatting shared by the panels.

/** Nanoseconds as a short human duration: 850 µs, 12.3 ms, 1.25 s. */
export function duration(ns) {
  if (ns == null || Number.isNaN(ns)) return '—';
  if (ns === 0) return '0';
  const abs = Math.abs(ns);
  if (abs < 1e3) return `${Math.round(ns)} ns`;
  if (abs < 1e6) return `${trim(ns / 1e3)} µs`;
  if (abs < 1e9) return `${trim(ns / 1e6)} ms`;
  return `${trim(ns / 1e9)} s`;
}

/** Three significant digits at most, no trailing zeros. */
function trim(value) {
  const abs = Math.abs(value);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  return Number(value.toFixed(digits)).toString();
}

export function rate(perSecond) {
  if (perSecond == null || Number.isNaN(perSecond)) return '—';
  if (perSecond === 0) return '0/s';
  if (perSecond < 0.01) return '<0.01/s';
  return `${trim(perSecond)}/s`;
}

export function percent(fraction) {
  if (fraction == null || Number.isNaN(fraction)) return '—';
  if (fraction === 0) return '0%';
  if (fraction < 0.001) return '<0.1%';
  return `${trim(fraction * 100)}%`;
}

export function count(n) {
  if (n == null) return '—';
  return Number(n).toLocaleString('en-US');
}

export function bytes(n) {
  if (n == null) return '—';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${trim(n / 1024)} KiB`;
  return `${trim(n / 1024 / 1024)} MiB`;
}

/**
 * An RFC 3339 timestamp from the API (nanosecond fraction) as epoch ms.
 * Date.parse is only specified for up to millisecond fractions.
 */
export function parseTime(text) {
  if (text == null) return null;
  const trimmed = String(text).replace(/(\.\d{3})\d+/, '$1');
  const ms = Date.parse(trimmed);
  return Number.isNaN(ms) ? null : ms;
}

/** Wall-clock time of an API timestamp, with milliseconds. */
export function clock(text) {
  const ms = parseTime(text);
  if (ms == null) return String(text ?? '—');
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** For the few places (chart tooltips) where the library wants HTML. */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

/** A SQL string literal: captured values go into drill-down queries. */
export function sqlString(text) {
  return `'${String(text).replaceAll("'", "''")}'`;
}
