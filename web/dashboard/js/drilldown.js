// The drill-down drawer: one captured exchange, every column of its row.
// Laid out from the row itself, not from a list of HTTP columns, so rows of
// the protocols to come show up without changes here: JSON text (headers)
// is pretty-printed, long text and bodies get their own block, the rest
// goes in a key/value grid.

import { records } from './api.js';
import * as fmt from './format.js';
import * as sql from './sql.js';

/** Text longer than this is a block of its own rather than a grid cell. */
const LONG_TEXT = 120;

export class Drilldown {
  /**
   * @param {import('./panel.js').Panel} panel  the drawer's panel chrome
   * @param {{runQuery: Function}} deps
   */
  constructor(panel, { runQuery }) {
    this.panel = panel;
    this.runQuery = runQuery;
    this.drawer = document.getElementById('drawer');
    this.backdrop = document.getElementById('drawer-backdrop');
    this.body = document.getElementById('drawer-body');
    this.title = document.getElementById('drawer-title');
    this.returnFocus = null;
    this.request = 0;
    document.getElementById('drawer-close').addEventListener('click', () => this.close());
    this.backdrop.addEventListener('click', () => this.close());
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && !this.drawer.hidden) this.close();
    });
  }

  async open(protocol, row) {
    const request = ++this.request;
    this.returnFocus = document.activeElement;
    this.drawer.hidden = false;
    this.backdrop.hidden = false;
    this.title.textContent = summaryTitle(protocol, row);
    this.body.replaceChildren(note('Loading…'));
    document.getElementById('drawer-close').focus();
    const query = sql.drilldown(protocol, row);
    this.panel.setQueries([{ title: 'This request', sql: query }]);
    this.panel.setError(null);
    try {
      const result = await this.runQuery(query);
      if (request !== this.request) return; // another row was opened meanwhile
      const [full] = records(result);
      if (!full) {
        this.body.replaceChildren(note('This row is no longer in the store (evicted by the memory budget).'));
        return;
      }
      this.body.replaceChildren(...renderRow(full, result.columns));
    } catch (err) {
      if (request !== this.request) return;
      this.panel.setError(err);
      this.body.replaceChildren();
    }
  }

  close() {
    this.request++;
    this.drawer.hidden = true;
    this.backdrop.hidden = true;
    this.returnFocus?.focus?.();
  }
}

function summaryTitle(protocol, row) {
  const own = protocol.columns.map((c) => row[c.as]).filter((v) => v != null);
  return own.length ? own.join(' ') : `${protocol.label} request`;
}

function note(text) {
  const p = document.createElement('p');
  p.className = 'empty';
  p.textContent = text;
  return p;
}

function renderRow(row, columns) {
  const grid = document.createElement('dl');
  grid.className = 'kv';
  const blocks = [];
  const add = (label, value) => {
    const dt = document.createElement('dt');
    dt.textContent = label;
    const dd = document.createElement('dd');
    dd.textContent = value;
    grid.append(dt, dd);
  };

  add('peers', peers(row));
  for (const { name, type } of columns) {
    const value = row[name];
    const json = asJson(value);
    if (name.endsWith('_body')) {
      const text = String(value ?? '');
      const size = row[`${name}_size`];
      // The store keeps a prefix of each body; say so when this is one.
      const caption = size != null && size > text.length
        ? `first ${fmt.count(text.length)} characters of ${fmt.bytes(size)}`
        : '';
      const shown = json !== undefined ? JSON.stringify(json, null, 2) : text;
      blocks.push(block(name, shown === '' ? '(empty)' : shown, caption));
    } else if (json !== undefined) {
      blocks.push(block(name, JSON.stringify(json, null, 2), jsonCaption(json)));
    } else if (typeof value === 'string' && value.length > LONG_TEXT) {
      blocks.push(block(name, value, ''));
    } else {
      add(name, cell(name, type, value));
    }
  }
  return [grid, ...blocks];
}

/** Who called whom, from the side that recorded the row. */
function peers(row) {
  const local = `${row.local_addr}:${row.local_port}`;
  const remote = `${row.remote_addr}:${row.remote_port}`;
  const self = `${row.comm} (pid ${row.pid}) ${local}`;
  if (row.trace_role === 'server') return `${remote} → ${self}`;
  if (row.trace_role === 'client') return `${self} → ${remote}`;
  return `${self} ↔ ${remote}`;
}

function cell(name, type, value) {
  if (value == null) return '—';
  if (name === 'latency') return `${fmt.duration(value)} (${fmt.count(value)} ns)`;
  if (name.endsWith('_size')) return `${fmt.bytes(value)}`;
  if (type.startsWith('Timestamp')) return `${value} (${fmt.clock(value)} local)`;
  return String(value);
}

/** The parsed value when `value` is JSON object or array text. */
function asJson(value) {
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  if (!(text.startsWith('{') || text.startsWith('['))) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function jsonCaption(json) {
  if (Array.isArray(json)) return `${json.length} items`;
  return `${Object.keys(json).length} entries`;
}

function block(title, text, caption) {
  const section = document.createElement('section');
  section.className = 'drawer-block';
  const h = document.createElement('h3');
  h.textContent = title;
  if (caption) {
    const span = document.createElement('span');
    span.className = 'hint';
    span.textContent = caption;
    h.append(' ', span);
  }
  const pre = document.createElement('pre');
  pre.textContent = text;
  section.append(h, pre);
  return section;
}
