// Who talks to whom on this node: processes and the peers they call or
// are called by, as an ECharts graph. The layout is layered (callers left,
// callees right) and computed here rather than force-directed: it is the
// same on every refresh, so nodes do not wander while the data updates.

import { agentNow, records } from './api.js';
import { draw, palette } from './charts.js';
import * as fmt from './format.js';
import { runPanelQueries } from './panel.js';
import * as sql from './sql.js';
import { renderTable } from './table.js';

export class ServiceMapView {
  constructor(panel, { runQuery }) {
    this.panel = panel;
    this.runQuery = runQuery;
    this.chartEl = document.getElementById('chart-map');
    this.edgesEl = document.getElementById('map-edges');
  }

  async refresh(state) {
    const { protocol } = state;
    const win = sql.WINDOWS[state.window];
    const results = await runPanelQueries(this.panel, this.runQuery, [
      { name: 'edges', title: 'Service map edges', sql: sql.serviceMap(protocol, win) },
    ]);
    if (!results.edges) return;
    const span = sql.windowSpan(win, agentNow(), state.dataStartMs);
    const edges = records(results.edges).map((e) => ({ ...e, rate: e.requests / span.seconds }));
    draw(this.chartEl, graphOption(edges, { width: this.chartEl.clientWidth, height: this.chartEl.clientHeight }));
    renderTable(this.edgesEl, [
      { label: 'From', value: (e) => e.source, className: (e) => (e.source_kind === 'process' ? 'strong' : 'mono') },
      { label: 'To', value: (e) => e.target, className: (e) => (e.target_kind === 'process' ? 'strong' : 'mono') },
      { label: 'Req/s', value: (e) => fmt.rate(e.rate), numeric: true, title: (e) => `${fmt.count(e.requests)} requests` },
      { label: 'Errors', value: (e) => fmt.percent(e.errors / e.requests), numeric: true, className: (e) => (e.errors > 0 ? 'bad' : '') },
      { label: 'p99', value: (e) => fmt.duration(e.p99), numeric: true },
    ], edges, { empty: 'No calls in this window.' });
  }
}

const nodeId = (kind, name) => `${kind}:${name}`;

function graphOption(edges, size) {
  const colors = palette();
  const nodes = new Map();
  const addNode = (kind, name) => {
    const id = nodeId(kind, name);
    if (!nodes.has(id)) nodes.set(id, { id, kind, name, requests: 0, errors: 0 });
    return nodes.get(id);
  };
  for (const e of edges) {
    addNode(e.source_kind, e.source);
    const target = addNode(e.target_kind, e.target);
    target.requests += e.requests;
    target.errors += e.errors;
  }
  const positions = layeredLayout(
    [...nodes.keys()],
    edges.map((e) => [nodeId(e.source_kind, e.source), nodeId(e.target_kind, e.target)]),
    size,
  );
  const maxRate = Math.max(...edges.map((e) => e.rate), 1e-9);

  const data = [...nodes.values()].map((n) => {
    const isProcess = n.kind === 'process';
    return {
      id: n.id,
      name: n.name,
      x: positions.get(n.id).x,
      y: positions.get(n.id).y,
      symbol: isProcess ? 'circle' : 'roundRect',
      symbolSize: isProcess ? 26 : [18, 14],
      itemStyle: {
        color: isProcess ? colors.accent : colors.muted,
        borderColor: n.errors > 0 ? colors.error : 'transparent',
        borderWidth: n.errors > 0 ? 3 : 0,
      },
      label: {
        show: true,
        position: 'bottom',
        color: colors.text,
        fontWeight: isProcess ? 'bold' : 'normal',
        fontFamily: isProcess ? undefined : 'monospace',
        formatter: () => n.name,
      },
      tooltip: { formatter: () => nodeTooltip(n) },
      kind: n.kind,
    };
  });
  const links = edges.map((e) => ({
    source: nodeId(e.source_kind, e.source),
    target: nodeId(e.target_kind, e.target),
    lineStyle: {
      width: 1 + 5 * Math.sqrt(e.rate / maxRate),
      color: e.errors > 0 ? colors.error : colors.muted,
      opacity: 0.8,
    },
    label: {
      show: true,
      color: e.errors > 0 ? colors.error : colors.text,
      fontSize: 11,
      formatter: () => `${fmt.rate(e.rate)} · ${fmt.percent(e.errors / e.requests)} · p99 ${fmt.duration(e.p99)}`,
    },
    tooltip: { formatter: () => edgeTooltip(e) },
  }));

  return {
    tooltip: { confine: true },
    graphic: edges.length === 0
      ? { type: 'text', left: 'center', top: 'middle', style: { text: 'no calls in this window', fill: colors.muted, fontSize: 13 } }
      : undefined,
    series: [{
      type: 'graph',
      layout: 'none',
      roam: true,
      draggable: false,
      // The nodes' box; positions are in its pixels (see layeredLayout),
      // so the chart draws them 1:1 and labels keep their font size.
      left: MARGIN.x,
      right: MARGIN.x,
      top: MARGIN.top,
      bottom: MARGIN.bottom,
      edgeSymbol: ['none', 'arrow'],
      edgeSymbolSize: 8,
      emphasis: { focus: 'adjacency', lineStyle: { opacity: 1 } },
      // Calls both ways between two nodes get two separate arcs.
      autoCurveness: true,
      data,
      links,
    }],
  };
}

function nodeTooltip(n) {
  const what = n.kind === 'process' ? 'process on this node' : 'peer';
  const lines = [`<b>${fmt.escapeHtml(n.name)}</b> (${what})`];
  if (n.requests > 0) {
    lines.push(`${fmt.count(n.requests)} requests received, ${fmt.count(n.errors)} errors`);
  }
  return lines.join('<br>');
}

function edgeTooltip(e) {
  return [
    `<b>${fmt.escapeHtml(e.source)}</b> → <b>${fmt.escapeHtml(e.target)}</b>`,
    `${fmt.count(e.requests)} requests (${fmt.escapeHtml(fmt.rate(e.rate))})`,
    `${fmt.count(e.errors)} errors (${fmt.escapeHtml(fmt.percent(e.errors / e.requests))})`,
    `p99 ${fmt.escapeHtml(fmt.duration(e.p99))}`,
  ].join('<br>');
}

/** Room kept around the nodes for their labels, in pixels. */
const MARGIN = { x: 90, top: 30, bottom: 40 };

/**
 * Columns by call depth: a node's column is one past the deepest of its
 * callers. Cycles (A calls B calls A) are broken by placing the node with
 * the fewest unplaced callers next. Within a column nodes are sorted by
 * name and spread evenly over the height.
 * @param {{width: number, height: number}} size  of the chart, in pixels
 * @returns {Map<string, {x: number, y: number}>}
 */
export function layeredLayout(ids, pairs, size) {
  const preds = new Map(ids.map((id) => [id, new Set()]));
  const succs = new Map(ids.map((id) => [id, new Set()]));
  for (const [from, to] of pairs) {
    if (from === to) continue;
    preds.get(to).add(from);
    succs.get(from).add(to);
  }
  const depth = new Map();
  const remaining = new Set(ids);
  const unplacedPreds = (id) => [...preds.get(id)].filter((p) => remaining.has(p)).length;
  while (remaining.size > 0) {
    let ready = [...remaining].filter((id) => unplacedPreds(id) === 0);
    if (ready.length === 0) {
      const fewest = Math.min(...[...remaining].map(unplacedPreds));
      ready = [[...remaining].filter((id) => unplacedPreds(id) === fewest).sort()[0]];
    }
    for (const id of ready) {
      const placed = [...preds.get(id)].filter((p) => depth.has(p)).map((p) => depth.get(p) + 1);
      depth.set(id, Math.max(0, ...placed));
      remaining.delete(id);
    }
  }
  const columns = new Map();
  for (const [id, d] of depth) {
    if (!columns.has(d)) columns.set(d, []);
    columns.get(d).push(id);
  }
  const width = Math.max(200, size.width - 2 * MARGIN.x);
  const height = Math.max(100, size.height - MARGIN.top - MARGIN.bottom);
  const lastColumn = Math.max(1, ...columns.keys());
  const positions = new Map();
  for (const [d, column] of columns) {
    column.sort();
    column.forEach((id, i) => {
      positions.set(id, {
        x: (d / lastColumn) * width,
        y: ((i + 0.5) / column.length) * height,
      });
    });
  }
  return positions;
}
