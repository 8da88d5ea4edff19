// ECharts instances of the page: created lazily, resized with the window,
// and rebuilt when the colour theme changes (an ECharts theme is fixed at
// init). Each chart keeps its last option so a rebuild redraws it as was.

import { escapeHtml } from './format.js';

/* global echarts -- loaded by a classic script in index.html */

const charts = new Map(); // element -> { instance, option }
let dark = false;

function init(el) {
  const instance = echarts.init(el, dark ? 'dark' : null, { renderer: 'canvas' });
  return instance;
}

/** Draws `option` in `el` (replacing, not merging, the previous one). */
export function draw(el, option) {
  let entry = charts.get(el);
  if (!entry) {
    entry = { instance: init(el), option: null };
    charts.set(el, entry);
  }
  entry.option = option;
  entry.instance.setOption(withBase(option), { notMerge: true, lazyUpdate: false });
  return entry.instance;
}

export function setDarkTheme(isDark) {
  if (isDark === dark) return;
  dark = isDark;
  for (const [el, entry] of charts) {
    entry.instance.dispose();
    entry.instance = init(el);
    if (entry.option) entry.instance.setOption(withBase(entry.option), { notMerge: true });
  }
}

window.addEventListener('resize', () => {
  for (const { instance } of charts.values()) instance.resize();
});

// Refreshes every few seconds make animation a distraction, and the
// theme's own background would hide the panel's.
function withBase(option) {
  return { animation: false, backgroundColor: 'transparent', ...option };
}

/** Theme colours for what a chart draws itself (matches style.css). */
export function palette() {
  return dark
    ? { panel: '#161b22', text: '#c9d1d9', muted: '#8b949e', grid: '#30363d', error: '#f85149', ok: '#3fb950', warn: '#d29922', accent: '#58a6ff' }
    : { panel: '#ffffff', text: '#1f2328', muted: '#59636e', grid: '#d0d7de', error: '#cf222e', ok: '#1a7f37', warn: '#9a6700', accent: '#0969da' };
}

/**
 * A time-series line chart option.
 * @param {{name: string, data: [number, number|null][], color?: string}[]} series  x in epoch ms
 * @param {{min: number, max: number, format: (v: number) => string, yMax?: number, stacked?: boolean}} axis
 */
export function timeSeriesOption(series, { min, max, format, yMax, stacked = false }) {
  const colors = palette();
  return {
    grid: { left: 8, right: 28, top: 36, bottom: 4, containLabel: true },
    legend: {
      type: 'scroll',
      top: 6,
      left: 0,
      right: 0,
      textStyle: { color: colors.text, fontSize: 11 },
      itemHeight: 8,
      itemWidth: 14,
      pageTextStyle: { color: colors.muted },
    },
    tooltip: {
      trigger: 'axis',
      confine: true,
      // Series names are process names and paths from captured traffic.
      formatter: (items) => tooltip(items, format),
    },
    xAxis: {
      type: 'time',
      min,
      max,
      axisLabel: { color: colors.muted, hideOverlap: true },
      axisLine: { lineStyle: { color: colors.grid } },
      splitLine: { show: false },
    },
    yAxis: {
      type: 'value',
      min: 0,
      max: yMax,
      axisLabel: { color: colors.muted, formatter: (v) => format(v) },
      splitLine: { lineStyle: { color: colors.grid, type: 'dashed' } },
    },
    series: series.map((s) => ({
      name: s.name,
      type: 'line',
      showSymbol: false,
      symbolSize: 5,
      connectNulls: false,
      stack: stacked ? 'total' : undefined,
      areaStyle: stacked ? { opacity: 0.25 } : undefined,
      lineStyle: { width: 1.5 },
      color: s.color,
      emphasis: { focus: 'series' },
      data: s.data,
    })),
  };
}

function tooltip(items, format) {
  if (!items.length) return '';
  const time = new Date(items[0].value[0]).toLocaleTimeString();
  const lines = items
    .filter((item) => item.value[1] != null)
    .map((item) => `${item.marker}${escapeHtml(item.seriesName)}: <b>${escapeHtml(format(item.value[1]))}</b>`);
  return [escapeHtml(time), ...lines].join('<br>');
}
