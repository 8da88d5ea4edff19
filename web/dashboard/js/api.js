// The only way the dashboard gets data: the agent's public SQL endpoint,
// the same one `sonde query` and curl use. Relative URL, so the page also
// works behind a path prefix (kubectl proxy, an ingress).

const ENDPOINT = 'api/v1/query';

/** A query the API refused (400, the SQL's fault) or failed (500). */
export class QueryError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'QueryError';
    this.status = status;
  }
}

// The API's bearer token, when the agent requires one (--auth-token-file).
// Kept for this browser tab only: it opens captured traffic.
const TOKEN_KEY = 'sonde.token';
let unauthorizedHandler = () => {};

export function setToken(token) {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

// Warnings of the answers (at a coordinator: nodes that did not answer).
let warningHandler = () => {};

/** Called with the warnings of every answer that has some. */
export function onWarnings(handler) {
  warningHandler = handler;
}

/** Called with the API's message when it answers 401 (no or wrong token). */
export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

// Agent clock minus browser clock, from the Date header of the answers.
// The charts place their time windows by the agent's clock (the SQL uses
// its now()), so a browser whose clock is off still sees the right bins.
let clockOffsetMs = 0;

/** Milliseconds since the epoch by the agent's clock, as best known. */
export function agentNow() {
  return Date.now() + clockOffsetMs;
}

function noteServerDate(response) {
  const date = Date.parse(response.headers.get('date') ?? '');
  if (Number.isNaN(date)) return;
  const offset = date - Date.now();
  // The header has one-second resolution: smaller offsets are noise.
  clockOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
}

/**
 * Runs one SQL statement. Resolves to `{columns, rows, truncated,
 * warnings?}`; rejects with a QueryError carrying the API's own error
 * text, unchanged. At a coordinator, partial results are asked for: a node
 * that does not answer leaves a warning (shown in a banner) rather than
 * an empty dashboard.
 */
export async function runQuery(sql, { signal } = {}) {
  const headers = { 'content-type': 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(ENDPOINT, {
      method: 'POST',
      headers,
      body: JSON.stringify({ sql, partial: true }),
      signal,
    });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new QueryError(`cannot reach the Sonde agent: ${err.message}`, 0);
  }
  noteServerDate(response);
  let body;
  try {
    body = await response.json();
  } catch {
    throw new QueryError(`HTTP ${response.status}: the answer is not JSON`, response.status);
  }
  if (!response.ok) {
    const error = new QueryError(body?.error ?? `HTTP ${response.status}`, response.status);
    if (response.status === 401) unauthorizedHandler(error.message);
    throw error;
  }
  if (body.warnings?.length) warningHandler(body.warnings);
  return body;
}

/** Rows as objects keyed by column name, for code that reads by name. */
export function records(result) {
  const names = result.columns.map((c) => c.name);
  return result.rows.map((row) => {
    const record = {};
    names.forEach((name, i) => { record[name] = row[i]; });
    return record;
  });
}
