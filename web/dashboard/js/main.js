// Wires the dashboard together: shared state (window, protocol, focus),
// the refresh loop, the theme, and the protocol tabs. Panels own their
// queries and drawing; this file only decides when they refresh.

import { QueryError, onUnauthorized, onWarnings, records, runQuery, setToken } from './api.js';
import { setDarkTheme } from './charts.js';
import { SqlConsole } from './console.js';
import { Drilldown } from './drilldown.js';
import { HealthView } from './health.js';
import { Panel } from './panel.js';
import { PROTOCOLS, protocolById } from './protocols.js';
import { RedView } from './red.js';
import { RequestsView } from './requests.js';
import { ServiceMapView } from './servicemap.js';
import * as sql from './sql.js';

const REFRESH_MS = 5000;

const stored = (key, fallback, allowed) => {
  const value = localStorage.getItem(`sonde.${key}`);
  return allowed.includes(value) ? value : fallback;
};

const state = {
  window: stored('window', '5m', Object.keys(sql.WINDOWS)),
  protocol: PROTOCOLS[0],
  /** {comm, role, endpoint?} or null for all services. */
  focus: null,
  paused: false,
  /** Agent clock of its first capture sample (ms), for rates. */
  dataStartMs: null,
  /** Tables the agent has, from information_schema. */
  tables: new Set(),
  /** Nodes with recent data: one at an agent, every one at a coordinator. */
  nodes: [],
  /**
   * Whether more than one node has been seen (a coordinator): the node
   * picker and column stay when a node stops answering.
   */
  cluster: false,
  /** The node the views are narrowed to; null for all. */
  node: null,
};

// Warnings of the current refresh's answers (at a coordinator: nodes that
// did not answer, whose rows are missing), shown in one banner.
const clusterBanner = document.getElementById('cluster-banner');
let refreshWarnings = new Set();
onWarnings((warnings) => {
  for (const w of warnings) refreshWarnings.add(w);
});
function showWarnings() {
  clusterBanner.hidden = refreshWarnings.size === 0;
  clusterBanner.textContent = [...refreshWarnings].join(' · ');
}

const sqlConsole = new SqlConsole({ runQuery });
const openInConsole = (text) => {
  // The drawer would cover the console.
  if (!document.getElementById('drawer').hidden) drilldown.close();
  sqlConsole.load(text);
};
const panel = (id) => new Panel(document.getElementById(id), { openInConsole });

const health = new HealthView(panel('health'), {
  runQuery,
  onDataStart: (ms) => { state.dataStartMs = ms; },
});
const drilldown = new Drilldown(panel('drawer'), { runQuery });
const red = new RedView(panel('red'), { runQuery, setFocus });
const requests = new RequestsView(panel('requests'), {
  runQuery,
  openRequest: (protocol, row) => drilldown.open(protocol, row),
});
const serviceMap = new ServiceMapView(panel('map'), { runQuery });

// ---- refresh loop ---------------------------------------------------------

let inFlight = null;
let queued = false;
let lastRefresh = null;
const refreshState = document.getElementById('refresh-state');

/**
 * Refreshes every panel. A refresh asked for while one runs (a click
 * during a slow query) runs right after it instead of in parallel.
 */
async function refresh() {
  if (inFlight) {
    queued = true;
    return inFlight;
  }
  inFlight = (async () => {
    refreshWarnings = new Set();
    try {
      // Tables and health first: they tell which views exist and since
      // when the agent has data, which the rates of the others depend on.
      const first = await Promise.allSettled([
        refreshTables(), refreshNodes(), health.refresh(state),
      ]);
      const views = [];
      if (state.tables.has(state.protocol.table)) {
        views.push(red.refresh(state), requests.refresh(state), serviceMap.refresh(state));
      }
      const results = [...first, ...(await Promise.allSettled(views))];
      // Panels show their own query errors; what lands here is a bug.
      for (const r of results) if (r.status === 'rejected') console.error(r.reason);
      lastRefresh = new Date();
    } finally {
      inFlight = null;
    }
    showWarnings();
    showRefreshState();
    if (queued) {
      queued = false;
      await refresh();
    }
  })();
  return inFlight;
}

async function refreshTables() {
  try {
    const result = await runQuery(sql.tables());
    state.tables = new Set(records(result).map((r) => r.table_name));
  } catch (err) {
    // The panels' own queries fail the same way and show it; keep the
    // last known tables meanwhile. Anything else is a bug.
    if (!(err instanceof QueryError)) console.error(err);
  }
  renderProtocolTabs();
  sqlConsole.showTables([...state.tables]);
}

// ---- nodes ----------------------------------------------------------------

const nodePicker = document.getElementById('node-picker');

async function refreshNodes() {
  try {
    const result = await runQuery(sql.nodes());
    state.nodes = records(result).map((r) => r.node);
    if (state.nodes.length > 1) state.cluster = true;
  } catch (err) {
    if (!(err instanceof QueryError)) console.error(err);
  }
  renderNodePicker();
}

/** The picker appears once more than one node has been seen (a coordinator). */
function renderNodePicker() {
  const names = [...state.nodes];
  if (state.node != null && !names.includes(state.node)) names.push(state.node);
  nodePicker.hidden = !state.cluster;
  const options = [new Option('All nodes', '')];
  for (const name of names) options.push(new Option(name, name));
  nodePicker.replaceChildren(...options);
  nodePicker.value = state.node ?? '';
}

nodePicker.addEventListener('change', () => {
  state.node = nodePicker.value || null;
  sql.setNode(state.node);
  state.focus = null;
  refresh();
});

function showRefreshState() {
  const at = lastRefresh ? lastRefresh.toLocaleTimeString() : '—';
  refreshState.textContent = state.paused
    ? `paused · data of ${at}`
    : `every ${REFRESH_MS / 1000} s · ${at}`;
}

setInterval(() => {
  // A hidden tab need not poll the agent.
  if (!state.paused && !document.hidden) refresh();
}, REFRESH_MS);
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && !state.paused) refresh();
});

// ---- controls -------------------------------------------------------------

function setFocus(focus) {
  state.focus = focus;
  refresh();
}

const windowPicker = document.getElementById('window-picker');
function showWindow() {
  for (const b of windowPicker.querySelectorAll('button')) {
    b.setAttribute('aria-pressed', String(b.dataset.window === state.window));
  }
}
windowPicker.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-window]');
  if (!button) return;
  state.window = button.dataset.window;
  localStorage.setItem('sonde.window', state.window);
  showWindow();
  refresh();
});

const pauseButton = document.getElementById('pause');
pauseButton.addEventListener('click', () => {
  state.paused = !state.paused;
  pauseButton.textContent = state.paused ? 'Resume' : 'Pause';
  pauseButton.setAttribute('aria-pressed', String(state.paused));
  showRefreshState();
  if (!state.paused) refresh();
});

// Theme: 'auto' follows the system's prefers-color-scheme.
const THEMES = ['auto', 'dark', 'light'];
let theme = stored('theme', 'auto', THEMES);
const systemDark = window.matchMedia('(prefers-color-scheme: dark)');
const themeButton = document.getElementById('theme');
function applyTheme() {
  const dark = theme === 'dark' || (theme === 'auto' && systemDark.matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  themeButton.textContent = `Theme: ${theme}`;
  setDarkTheme(dark);
}
themeButton.addEventListener('click', () => {
  theme = THEMES[(THEMES.indexOf(theme) + 1) % THEMES.length];
  localStorage.setItem('sonde.theme', theme);
  applyTheme();
  // Chart colours are part of each chart's option: redraw with the new ones.
  refresh();
});
systemDark.addEventListener('change', () => { applyTheme(); refresh(); });

const tabs = document.getElementById('protocol-tabs');
const missing = document.getElementById('protocol-missing');
function renderProtocolTabs() {
  const buttons = PROTOCOLS.map((p) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.setAttribute('role', 'tab');
    b.dataset.protocol = p.id;
    const captured = state.tables.has(p.table);
    b.className = captured ? '' : 'not-captured';
    b.textContent = p.label;
    b.title = captured ? `${p.table}` : `${p.table}: not captured yet`;
    b.setAttribute('aria-selected', String(p.id === state.protocol.id));
    b.addEventListener('click', () => {
      state.protocol = protocolById(p.id);
      state.focus = null;
      renderProtocolTabs();
      refresh();
    });
    return b;
  });
  tabs.replaceChildren(...buttons);
  const available = state.tables.has(state.protocol.table);
  missing.hidden = available;
  missing.textContent = available
    ? ''
    : `${state.protocol.label} is not captured yet: this agent has no ${state.protocol.table} table. `
      + 'Its views appear here as soon as the agent records it.';
  for (const id of ['red', 'requests', 'map']) {
    document.getElementById(id).hidden = !available;
  }
}

// An agent started with --auth-token-file answers 401 until the page
// sends its token: ask for it once, then refresh everything with it.
const tokenForm = document.getElementById('token-form');
const tokenInput = document.getElementById('token-input');
onUnauthorized((message) => {
  if (!tokenForm.hidden) return;
  tokenForm.hidden = false;
  document.getElementById('token-error').textContent = message;
  tokenInput.focus();
});
tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  tokenInput.value = '';
  tokenForm.hidden = true;
  refresh();
});

document.getElementById('host').textContent = window.location.host;
applyTheme();
showWindow();
refresh();
