// The dashboard in a real browser (Debian's Chromium, driven by Playwright)
// against a real agent that captured real traffic. scripts/browser-test.sh
// sets everything up; run it rather than this file.
//
// Env: SONDE_URL (agent base URL), SONDE_SCREENSHOT_DIR, CHROMIUM_PATH;
// SONDE_COORDINATOR_URL (a coordinator over that agent, node "a", and a
// second one, node "b", whose pid is SONDE_STOPPABLE_AGENT_PID).

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { chromium } from 'playwright-core';

const AGENT_URL = process.env.SONDE_URL;
const COORDINATOR_URL = process.env.SONDE_COORDINATOR_URL;
const SCREENSHOTS = process.env.SONDE_SCREENSHOT_DIR ?? join(process.cwd(), 'screenshots');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Data reaches the store within a second or two, then the next refresh
// (every 5 s) draws it: 30 s is ample even on a loaded CI machine.
const DATA_TIMEOUT = 30_000;

if (!AGENT_URL) throw new Error('SONDE_URL is not set: run scripts/browser-test.sh');

let context;
let page;
let userDataDir;
const pageErrors = [];

before(async () => {
  mkdirSync(SCREENSHOTS, { recursive: true });
  // A fresh profile per run: no cache, storage or theme choice carried over.
  userDataDir = mkdtempSync(join(tmpdir(), 'sonde-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    // --no-sandbox: Chromium refuses to run as root with its sandbox.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Chromium still looks up Google services (sign-in, autofill,
      // updates); those lookups would leave the machine and show up in
      // dns_events. Only the agent's 127.0.0.1 address is used here.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
    ],
    viewport: { width: 1280, height: 800 },
    colorScheme: 'dark',
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on('pageerror', (err) => pageErrors.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // The console tests send bad SQL on purpose and the token test has
    // queries refused; Chromium logs each 400 and 401. At the coordinator,
    // a query under way when a node stops fails naming it (503).
    const expected = /Failed to load resource: .* status of (40[01]|503)/.test(msg.text());
    if (msg.type() === 'error' && !expected) pageErrors.push(`console error: ${msg.text()}`);
  });
  await page.goto(AGENT_URL);
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

/** Saves a full-page screenshot under SONDE_SCREENSHOT_DIR. */
async function screenshot(name, { fullPage = true } = {}) {
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage });
}

/** The series of an ECharts chart, read through the library's own API. */
async function chartSeries(id) {
  return page.evaluate((elementId) => {
    const chart = globalThis.echarts?.getInstanceByDom(document.getElementById(elementId));
    if (!chart) return null;
    return chart.getOption().series.map((s) => ({ name: s.name, type: s.type, data: s.data, links: s.links }));
  }, id);
}

async function apiError(sql) {
  const response = await fetch(new URL('api/v1/query', AGENT_URL), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sql }),
  });
  assert.equal(response.status, 400);
  return (await response.json()).error;
}

// The default BPF object's tracepoints: 32 but the five enter programs of
// the calls that receive, which only the compat object has.
test('the health strip shows the 27 attached probes', async () => {
  const probes = page.getByTestId('probes-attached');
  await probes.waitFor({ timeout: DATA_TIMEOUT });
  await page.waitForFunction(
    () => document.querySelector('[data-testid="probes-attached"]')?.textContent === '27',
    null,
    { timeout: DATA_TIMEOUT },
  );
  assert.equal(await probes.textContent(), '27');
  // Events are flowing, so the rate is a number.
  const events = await page.getByTestId('events').locator('.chip-value').textContent();
  assert.match(events, /^[<\d]/, `events/s is "${events}"`);
});

test('the latency chart draws p50/p90/p99 with data points', async () => {
  await page.waitForFunction(() => {
    const chart = globalThis.echarts?.getInstanceByDom(document.getElementById('chart-latency'));
    return chart?.getOption().series.some((s) => s.data.some((point) => point[1] != null));
  }, null, { timeout: DATA_TIMEOUT });
  const series = await chartSeries('chart-latency');
  assert.deepEqual(series.map((s) => s.name), ['p50', 'p90', 'p99']);
  for (const s of series) {
    const points = s.data.filter((point) => point[1] != null);
    assert.ok(points.length > 0, `${s.name} has no data points`);
    assert.ok(points.every((point) => point[1] > 0), `${s.name} has non-positive latencies`);
  }
  // The slow requests (up to 1.5 s) sit in the p99 line.
  const p99max = Math.max(...series[2].data.map((point) => point[1] ?? 0));
  assert.ok(p99max >= 300, `p99 peaks at ${p99max} ms, expected the slow requests`);
  // Drawn, not just configured: the canvas has a size.
  const canvas = await page.locator('#chart-latency canvas').first().boundingBox();
  assert.ok(canvas.width > 100 && canvas.height > 100);

  // One line per service (the busiest eight, then "other"), with traffic.
  const rate = await chartSeries('chart-rate');
  assert.ok(rate.length > 0 && rate.length <= 8, `rate series: ${rate.map((s) => s.name)}`);
  assert.ok(rate.some((s) => s.data.some((point) => point[1] > 0)), 'no request rate above 0');
});

test('services and endpoints list nginx with templated paths', async () => {
  const services = page.locator('#services-table');
  await services.getByText('nginx (server)', { exact: true }).first().waitFor({ timeout: DATA_TIMEOUT });
  await services.getByText('curl (client)', { exact: true }).first().waitFor();
  await services.getByText('python3 (server)', { exact: true }).first().waitFor();
  const endpoints = page.locator('#endpoints-table');
  // /api/items/1 … /api/items/<uuid> collapse to one endpoint.
  await endpoints.getByText('GET /api/items/{id}').first().waitFor({ timeout: DATA_TIMEOUT });
  assert.equal(await endpoints.getByText('/api/items/1', { exact: false }).count(), 0);
});

test('the slowest-requests table lists the slow requests', async () => {
  const pathCells = '#slow-table tbody tr td:nth-child(4)';
  await page.waitForFunction(
    (selector) => [...document.querySelectorAll(selector)].some((td) => td.textContent.endsWith('/slow/1500?ms=1500')),
    pathCells,
    { timeout: DATA_TIMEOUT },
  );
  const paths = await page.locator(pathCells).allTextContents();
  // Each slow request is seen four times: curl, nginx (server and client),
  // python3. The 1.5 s one first, whatever else the node did meanwhile.
  assert.match(paths[0], /\/slow\/1500\?ms=1500$/);
  for (const ms of [800, 1500]) {
    const rows = paths.filter((p) => p.endsWith(`/slow/${ms}?ms=${ms}`));
    assert.ok(rows.length >= 2, `${rows.length} rows of /slow/${ms} in ${paths}`);
  }
});

test('the failing table shows the 5xx and 4xx', async () => {
  const failing = page.locator('#failing-table');
  await failing.getByText('503').first().waitFor({ timeout: DATA_TIMEOUT });
  await failing.getByText('/api/boom').first().waitFor();
  // 404s are failures for the client (curl) only.
  const rows = await failing.locator('tbody tr').allTextContents();
  const notFound = rows.filter((r) => r.includes('/missing'));
  assert.ok(notFound.length > 0, 'no /missing row');
  assert.ok(notFound.every((r) => r.includes('(client)')), `a server-side 404 counted as failure: ${notFound}`);
});

test('clicking a request opens the drill-down with its headers', async () => {
  await page.locator('#slow-table tbody tr', { hasText: '/slow/1500' }).first().click();
  const drawer = page.locator('#drawer');
  await drawer.waitFor({ state: 'visible' });
  const headers = drawer.locator('.drawer-block', { hasText: 'req_headers' }).locator('pre');
  await headers.waitFor({ timeout: DATA_TIMEOUT });
  const text = await headers.textContent();
  // Pretty-printed JSON of the request's headers.
  assert.match(text, /^\{\n {2}"/);
  const parsed = JSON.parse(text);
  assert.ok('Host' in parsed, `no Host header in ${text}`);
  // curl sent it (nginx passes the User-Agent on to the backend).
  assert.match(parsed['User-Agent'] ?? '', /^curl\//);
  await drawer.locator('.drawer-block', { hasText: 'resp_body' }).waitFor();
  assert.match(await drawer.locator('.kv').textContent(), /latency/);
  assert.match(await drawer.locator('#drawer-title').textContent(), /GET .*\/slow\/1500/);
  await screenshot('drilldown-dark', { fullPage: false });
  await page.keyboard.press('Escape');
  await drawer.waitFor({ state: 'hidden' });
});

test('the service map shows nginx, curl and the backend, with edges', async () => {
  await page.waitForFunction(() => {
    const chart = globalThis.echarts?.getInstanceByDom(document.getElementById('chart-map'));
    const names = chart?.getOption().series[0].data.map((n) => n.name) ?? [];
    return names.includes('nginx') && names.includes('curl');
  }, null, { timeout: DATA_TIMEOUT });
  const [graph] = await chartSeries('chart-map');
  assert.equal(graph.type, 'graph');
  const names = graph.data.map((n) => n.name);
  assert.ok(names.includes('nginx') && names.includes('curl'), `nodes: ${names}`);
  const edge = (from, to) => graph.links.some((l) => l.source === `process:${from}` && l.target === `process:${to}`);
  assert.ok(edge('curl', 'nginx'), 'no curl → nginx edge');
  assert.ok(names.includes('python3'), `nodes: ${names}`);
  assert.ok(edge('nginx', 'python3'), 'no nginx → python3 edge');
});

test('the SQL console runs a query and shows its result', async () => {
  const editor = page.locator('#console-sql');
  await editor.fill('SELECT count(*) AS n FROM http_events');
  await editor.press('Control+Enter');
  const cell = page.locator('#console-result tbody td').first();
  await cell.waitFor({ timeout: DATA_TIMEOUT });
  const n = Number(await cell.textContent());
  assert.ok(n > 0, `count(*) is ${n}`);
  assert.match(await page.locator('#console-status').textContent(), /1 rows/);
});

test('the SQL console shows the API error text for bad SQL', async () => {
  const bad = 'SELECT no_such_column FROM http_events';
  const expected = await apiError(bad);
  await page.locator('#console-sql').fill(bad);
  await page.locator('#console-run').click();
  const error = page.locator('#console-error');
  await error.waitFor({ state: 'visible', timeout: DATA_TIMEOUT });
  assert.equal(await error.textContent(), expected);
  assert.equal(await page.locator('#console-result').textContent(), '');

  const write = 'DROP TABLE http_events';
  const refused = await apiError(write);
  await page.locator('#console-sql').fill(write);
  await page.locator('#console-sql').press('Control+Enter');
  await page.waitForFunction((text) => document.getElementById('console-error').textContent === text, refused);
});

test('each panel shows the SQL it runs', async () => {
  const panel = page.locator('#red');
  await panel.locator('.sql-toggle').click();
  const sql = await panel.locator('.panel-sql pre').allTextContents();
  assert.ok(sql.some((s) => s.includes('approx_percentile_cont(latency, 0.99)')), 'no percentile query');
  assert.ok(sql.some((s) => s.includes('regexp_replace(')), 'no path template query');
  // The shown SQL runs as is.
  for (const text of sql) {
    const response = await fetch(new URL('api/v1/query', AGENT_URL), {
      method: 'POST',
      body: JSON.stringify({ sql: text }),
    });
    assert.equal(response.status, 200, text);
  }
  await panel.locator('.sql-toggle').click();
});

test('DNS and Redis tabs show their services, endpoints and failures', async () => {
  const tab = (id) => page.locator(`#protocol-tabs button[data-protocol="${id}"]`);
  const services = page.locator('#services-table');
  const failing = page.locator('#failing-table');

  await tab('dns').click();
  await services.getByText('dig (client)', { exact: true }).waitFor({ timeout: DATA_TIMEOUT });
  await services.getByText('dnsmasq (server)', { exact: true }).waitFor();
  await page.locator('#endpoints-table').getByText('A api.sonde.test').first().waitFor();
  // NXDOMAIN fails the client (rcode 3), not the server.
  await failing.getByText('A missing1.sonde.test').first().waitFor({ timeout: DATA_TIMEOUT });
  const dnsFailures = await failing.locator('tbody tr').allTextContents();
  assert.ok(dnsFailures.some((r) => r.includes('dig (client)') && r.includes('missing1.sonde.test')));
  assert.ok(!dnsFailures.some((r) => r.includes('dnsmasq (server)')), `${dnsFailures}`);
  await screenshot('dns-dark', { fullPage: false });

  await tab('redis').click();
  await services.getByText('redis-cli (client)', { exact: true }).waitFor({ timeout: DATA_TIMEOUT });
  await services.getByText('redis-server (server)', { exact: true }).waitFor();
  await page.locator('#endpoints-table').getByText('SET', { exact: true }).first().waitFor();
  await failing.getByText(/^WRONGTYPE/).first().waitFor({ timeout: DATA_TIMEOUT });
  await failing.getByText(/^ERR value is not an integer/).first().waitFor();

  // No MySQL traffic here: the tab works and says so, with no SQL error.
  await tab('mysql').click();
  await services.getByText('No traffic captured in this window.').waitFor({ timeout: DATA_TIMEOUT });
  for (const panel of ['#red', '#requests', '#map']) {
    assert.ok(await page.locator(`${panel} .panel-error`).isHidden(), `${panel} shows an error`);
  }

  await tab('http').click();
  await services.getByText('nginx (server)', { exact: true }).first().waitFor({ timeout: DATA_TIMEOUT });
});

test('a table the agent does not have is marked not captured yet', async () => {
  // Every protocol table exists in this agent: hide one from the page's
  // information_schema query to see how an older agent looks.
  const pattern = '**/api/v1/query';
  await page.route(pattern, async (route) => {
    if (!route.request().postData()?.includes('information_schema.tables')) return route.continue();
    const response = await route.fetch();
    const body = await response.json();
    body.rows = body.rows.filter(([name]) => name !== 'mysql_events');
    return route.fulfill({ response, json: body });
  });
  const mysql = page.locator('#protocol-tabs button[data-protocol="mysql"]');
  await page.waitForFunction(
    () => document.querySelector('#protocol-tabs button[data-protocol="mysql"]')?.classList.contains('not-captured'),
    null,
    { timeout: DATA_TIMEOUT },
  );
  await mysql.click();
  const note = page.locator('#protocol-missing');
  await note.waitFor({ state: 'visible' });
  assert.match(await note.textContent(), /not captured yet.*mysql_events/);
  assert.ok(await page.locator('#red').isHidden());
  // Let handlers still under way finish before the real API is used again.
  await page.unrouteAll({ behavior: 'wait' });
  await page.locator('#protocol-tabs button[data-protocol="http"]').click();
  await page.locator('#red').waitFor({ state: 'visible' });
});

test('an agent that requires a token: the page asks for it and sends it', async () => {
  // This agent runs without --auth-token-file; answer as one with a token
  // would (collector/src/auth.rs), to see the page's side of it.
  const token = 'browser-test-token-0123456789';
  const seen = [];
  const pattern = '**/api/v1/query';
  await page.route(pattern, (route) => {
    const auth = route.request().headers().authorization;
    seen.push(auth);
    if (auth === `Bearer ${token}`) return route.continue();
    return route.fulfill({
      status: 401,
      headers: { 'www-authenticate': 'Bearer' },
      json: { error: 'missing or wrong bearer token' },
    });
  });
  const form = page.locator('#token-form');
  await form.waitFor({ state: 'visible', timeout: DATA_TIMEOUT });
  assert.equal(await page.locator('#token-error').textContent(), 'missing or wrong bearer token');
  await page.locator('#token-input').fill(token);
  await page.locator('#token-input').press('Enter');
  await form.waitFor({ state: 'hidden' });
  await page.waitForFunction(() => document.querySelector('#health .panel-error').hidden, null, { timeout: DATA_TIMEOUT });
  assert.ok(seen.includes(`Bearer ${token}`));
  // Let handlers still under way finish before the real API is used again.
  await page.unrouteAll({ behavior: 'wait' });
  await page.evaluate(() => sessionStorage.removeItem('sonde.token'));
});

test('focusing a service narrows the charts', async () => {
  await page.locator('#services-table tbody tr', { hasText: 'python3 (server)' }).first().click();
  await page.locator('#focus').getByText('python3 (server)').waitFor();
  await page.waitForFunction(() => {
    const chart = globalThis.echarts?.getInstanceByDom(document.getElementById('chart-rate'));
    const names = chart?.getOption().series.map((s) => s.name) ?? [];
    return names.length === 1 && names[0] === 'python3 (server)';
  }, null, { timeout: DATA_TIMEOUT });
  await page.locator('#focus button').first().click();
  await page.locator('#focus').getByText('All services').waitFor();
});

test('dark and light themes (screenshots)', async () => {
  // Wait for a full refresh so the screenshot is of settled panels.
  await page.waitForFunction(() => !document.getElementById('refresh-state').textContent.startsWith('—'));
  await page.waitForTimeout(1500);
  assert.equal(await page.evaluate(() => document.documentElement.dataset.theme), 'dark');
  await screenshot('dashboard-dark');
  await screenshot('dashboard-dark-viewport', { fullPage: false });

  // The system preference is followed ("auto")...
  await page.emulateMedia({ colorScheme: 'light' });
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'light');
  await page.waitForTimeout(1500);
  await screenshot('dashboard-light');
  await screenshot('dashboard-light-viewport', { fullPage: false });

  // ...and the toggle overrides it: auto -> dark.
  await page.locator('#theme').click();
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark');
  assert.match(await page.locator('#theme').textContent(), /dark/);
});

test('pause stops the refresh', async () => {
  await page.locator('#pause').click();
  assert.match(await page.locator('#refresh-state').textContent(), /paused/);
  // A refresh already under way may still land; none may start after it.
  await page.waitForTimeout(2000);
  const before = await page.locator('#refresh-state').textContent();
  await page.waitForTimeout(6000);
  assert.equal(await page.locator('#refresh-state').textContent(), before);
  await page.locator('#pause').click();
  await page.waitForFunction((text) => document.getElementById('refresh-state').textContent !== text, before);
});

test('at a coordinator: every node, a node picker, a banner for a missing node', {
  skip: !COORDINATOR_URL && 'SONDE_COORDINATOR_URL is not set',
}, async () => {
  await page.goto(COORDINATOR_URL);
  const picker = page.locator('#node-picker');
  await picker.waitFor({ state: 'visible', timeout: DATA_TIMEOUT });
  assert.deepEqual(await picker.locator('option').allTextContents(), ['All nodes', 'a', 'b']);
  // Both nodes' requests, each in the Node column (after Time).
  const nodeCells = '#slow-table tbody tr td:nth-child(2)';
  const nodesShown = (selector) => [...new Set(
    [...document.querySelectorAll(selector)].map((td) => td.textContent),
  )].sort().join(',');
  await page.waitForFunction((selector) => {
    const cells = [...document.querySelectorAll(selector)].map((td) => td.textContent);
    return cells.includes('a') && cells.includes('b');
  }, nodeCells, { timeout: DATA_TIMEOUT });
  assert.equal(await page.evaluate(nodesShown, nodeCells), 'a,b');
  await screenshot('coordinator-dark');

  // One node: every view narrowed to its rows.
  await picker.selectOption('b');
  await page.waitForFunction((selector) => {
    const cells = [...document.querySelectorAll(selector)].map((td) => td.textContent);
    return cells.length > 0 && cells.every((c) => c === 'b');
  }, nodeCells, { timeout: DATA_TIMEOUT });
  await picker.selectOption('');

  // A node stops: the next refresh answers from the other and says so.
  process.kill(Number(process.env.SONDE_STOPPABLE_AGENT_PID), 'SIGTERM');
  const banner = page.locator('#cluster-banner');
  await banner.waitFor({ state: 'visible', timeout: DATA_TIMEOUT });
  assert.match(
    await banner.textContent(),
    /^partial results: 1 of 2 nodes did not answer and their rows are missing: b \(http:\/\/127\.0\.0\.1:\d+\)/,
  );
  await page.waitForFunction((selector) => {
    const cells = [...document.querySelectorAll(selector)].map((td) => td.textContent);
    return cells.length > 0 && cells.every((c) => c === 'a');
  }, nodeCells, { timeout: DATA_TIMEOUT });
  await screenshot('coordinator-node-missing', { fullPage: false });
});

test('no script errors on the page', () => {
  assert.deepEqual(pageErrors, []);
});
