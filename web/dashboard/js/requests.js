// The slowest and the latest failing requests of the window (within the
// focus, if any); a click opens the full row in the drill-down drawer.

import { records } from './api.js';
import * as fmt from './format.js';
import { runPanelQueries } from './panel.js';
import * as sql from './sql.js';
import { renderTable } from './table.js';

export class RequestsView {
  /**
   * @param {import('./panel.js').Panel} panel
   * @param {{runQuery: Function, openRequest: (protocol: object, row: object) => void}} deps
   */
  constructor(panel, { runQuery, openRequest }) {
    this.panel = panel;
    this.runQuery = runQuery;
    this.openRequest = openRequest;
    this.slowEl = document.getElementById('slow-table');
    this.failingEl = document.getElementById('failing-table');
    this.failingHint = document.getElementById('failing-hint');
  }

  async refresh(state) {
    const { protocol, focus } = state;
    const win = sql.WINDOWS[state.window];
    const failingSql = sql.failing(protocol, win, focus);
    const results = await runPanelQueries(this.panel, this.runQuery, [
      { name: 'slow', title: 'Slowest requests', sql: sql.slowest(protocol, win, focus) },
      { name: 'failing', title: 'Latest failing requests', sql: failingSql },
    ]);
    // At a coordinator, which node each request was captured on.
    const columns = requestColumns(protocol, state.cluster);
    const open = (row) => this.openRequest(protocol, row);
    if (results.slow) {
      renderTable(this.slowEl, columns, records(results.slow), { onClick: open });
    }
    this.failingHint.textContent = protocol.failed ? protocol.failedNote : '';
    if (!failingSql) {
      renderTable(this.failingEl, [], [], { empty: `No error definition for ${protocol.label} yet.` });
    } else if (results.failing) {
      renderTable(this.failingEl, columns, records(results.failing), {
        onClick: open,
        empty: 'No failing requests in this window.',
      });
    }
  }
}

function requestColumns(protocol, showNode) {
  const own = protocol.columns.map((c) => ({
    label: c.label,
    value: (r) => r[c.as],
    className: (r) => [c.long ? 'mono clip' : '', c.tone?.(r[c.as]) ?? ''].filter(Boolean).join(' '),
    title: (r) => (c.long ? String(r[c.as] ?? '') : ''),
  }));
  const node = showNode ? [{ label: 'Node', value: (r) => r.node }] : [];
  return [
    { label: 'Time', value: (r) => fmt.clock(r.time_), className: () => 'mono' },
    ...node,
    { label: 'Service', value: (r) => `${r.comm} (${r.trace_role})`, title: (r) => `pid ${r.pid}` },
    ...own,
    { label: 'Latency', value: (r) => fmt.duration(r.latency), numeric: true, className: () => 'strong' },
  ];
}
