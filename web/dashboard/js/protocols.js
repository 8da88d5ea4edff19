// What the RED views know about each protocol table. The views themselves
// (sql.js, red.js, requests.js, servicemap.js) only use the columns every
// traffic table shares — time_, upid, pid, comm, local_/remote_addr and
// _port, trace_role, latency — plus the expressions declared here. Adding a
// protocol is adding an entry; a table the agent does not have is shown as
// "not captured yet" (checked in information_schema.tables on every
// refresh, so a tab comes alive as soon as the agent gains its table).

// A path segment that is an identifier: all digits, a UUID, or a long hex
// string (hashes, object ids). Matched with its leading slash and the slash
// or end that follows; the Rust regex engine behind regexp_replace has no
// look-ahead, so the trailing slash is captured and put back.
const ID_SEGMENT =
  '/([0-9]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{16,})(/|$)';

/**
 * SQL for a low-cardinality path template: query string dropped, id
 * segments collapsed to {id}. Applied twice because a match consumes the
 * slash after it, so in /a/1/2 one pass would leave the 2.
 */
export function pathTemplateSql(column) {
  const once = (inner) => `regexp_replace(${inner}, '${ID_SEGMENT}', '/{id}\\2', 'g')`;
  return once(once(`split_part(${column}, '?', 1)`));
}

/**
 * SQL for a statement's shape: literals become ?, IN lists (?), spaces
 * collapse, bound parameters of executes are dropped; cut to 100 chars.
 */
export function statementDigestSql(column) {
  const steps = [
    [' -- params: .*$', ''],
    ["'(?:[^'\\\\]|\\\\.|'')*'", '?'],
    ['\\b[0-9]+(?:\\.[0-9]+)?\\b', '?'],
    ['\\(\\s*\\?(?:\\s*,\\s*\\?)*\\s*\\)', '(?)'],
    ['\\s+', ' '],
  ];
  const sqlText = (s) => `'${s.replaceAll("'", "''")}'`;
  const digest = steps.reduce(
    (inner, [pattern, replacement]) => `regexp_replace(${inner}, ${sqlText(pattern)}, ${sqlText(replacement)}, 'g')`,
    column,
  );
  return `left(${digest}, 100)`;
}

/** The first match group of `pattern` in a JSON text column. */
function jsonField(column, field) {
  return `regexp_replace(${column}, '^.*?"${field}":"?([^",}]*).*$', '\\1')`;
}

/**
 * @typedef Column  shown in the request tables (and the drill-down title)
 * @property {string} sql
 * @property {string} as
 * @property {string} label
 * @property {boolean} [long]  clipped to one line, full text on hover
 * @property {(value: any) => string} [tone]  'bad' | 'warn' | ''
 *
 * @typedef Protocol
 * @property {string} id
 * @property {string} label
 * @property {string} table
 * @property {string|null} endpoint  SQL naming the operation (low cardinality), or null
 * @property {string} [endpointNote]  what the endpoint column is, in words
 * @property {string|null} failed    SQL boolean: this row is an error, or null if unknown
 * @property {string} failedNote     what counts as an error, shown beside the chart
 * @property {string|null} [filter]  SQL condition: rows that are exchanges at all
 * @property {Column[]} columns
 */

// An HTTP/2 row that is a gRPC call: it has a grpc-status (from its
// trailers, or from a reset), or a gRPC content type.
const GRPC_CALL = "(grpc_status IS NOT NULL OR content_type LIKE 'application/grpc%')";

/** @type {Protocol[]} */
export const PROTOCOLS = [
  {
    id: 'http',
    label: 'HTTP',
    table: 'http_events',
    // gRPC calls are named by their method (`gRPC package.Service/Method`),
    // HTTP requests by method and path template.
    endpoint: `CASE WHEN ${GRPC_CALL} THEN 'gRPC ' || substr(req_path, 2)\n`
      + `       ELSE req_method || ' ' || ${pathTemplateSql('req_path')} END`,
    endpointNote: 'method and path template (ids collapsed to {id}), or gRPC service/method',
    // A gRPC call failed when its status is not OK (0). Otherwise a server
    // is at fault for its 5xx only; a client did not get what it asked for
    // on any 4xx or 5xx.
    failed: 'CASE WHEN grpc_status IS NOT NULL THEN grpc_status <> 0 '
      + "WHEN trace_role = 'server' THEN resp_status >= 500 ELSE resp_status >= 400 END",
    failedNote: 'gRPC status ≠ 0, server 5xx, client 4xx/5xx',
    columns: [
      { sql: 'req_method', as: 'method', label: 'Method' },
      { sql: 'req_path', as: 'path', label: 'Path', long: true },
      { sql: 'resp_status', as: 'status', label: 'Status', tone: (v) => (v >= 500 ? 'bad' : v >= 400 ? 'warn' : '') },
      { sql: 'grpc_status', as: 'grpc_status', label: 'gRPC', tone: (v) => (v != null && v !== 0 ? 'bad' : '') },
    ],
  },
  {
    id: 'dns',
    label: 'DNS',
    table: 'dns_events',
    // Query type and name, e.g. "A example.com" (names are what a node
    // resolves: few enough to group by).
    endpoint: `${jsonField('req_body', 'type')} || ' ' || ${jsonField('req_body', 'name')}`,
    endpointNote: 'query type and name',
    // SERVFAIL is the server's failure; NXDOMAIN or REFUSED are answers
    // it gave, but the client did not get an address.
    failed: `CASE WHEN trace_role = 'server' THEN ${jsonField('resp_header', 'rcode')} = '2' `
      + `ELSE ${jsonField('resp_header', 'rcode')} <> '0' END`,
    failedNote: 'server SERVFAIL, client any rcode ≠ 0',
    columns: [
      { sql: `${jsonField('req_body', 'type')} || ' ' || ${jsonField('req_body', 'name')}`, as: 'query', label: 'Query', long: true },
      { sql: jsonField('resp_header', 'rcode'), as: 'rcode', label: 'Rcode', tone: (v) => (v !== '0' ? 'bad' : '') },
    ],
  },
  {
    id: 'mysql',
    label: 'MySQL',
    table: 'mysql_events',
    endpoint: `trim(req_cmd || ' ' || ${statementDigestSql('req_body')})`,
    endpointNote: 'command and statement shape (literals as ?)',
    failed: "resp_status = 'ERR'",
    failedNote: 'ERR responses',
    columns: [
      { sql: 'req_cmd', as: 'command', label: 'Command' },
      { sql: 'req_body', as: 'statement', label: 'Statement', long: true },
      { sql: 'resp_status', as: 'status', label: 'Status', tone: (v) => (v === 'ERR' ? 'bad' : '') },
    ],
  },
  {
    id: 'pgsql',
    label: 'PostgreSQL',
    table: 'pgsql_events',
    endpoint: `trim(req_cmd || ' ' || ${statementDigestSql('req')})`,
    endpointNote: 'command and statement shape (literals as ?)',
    failed: 'sqlstate IS NOT NULL',
    failedNote: 'errors (any SQLSTATE)',
    columns: [
      { sql: 'req_cmd', as: 'command', label: 'Command' },
      { sql: 'req', as: 'statement', label: 'Statement', long: true },
      { sql: 'sqlstate', as: 'sqlstate', label: 'SQLSTATE', tone: (v) => (v ? 'bad' : '') },
    ],
  },
  {
    id: 'redis',
    label: 'Redis',
    table: 'redis_events',
    endpoint: 'req_cmd',
    endpointNote: 'command',
    // resp_error is the reply's RESP type (simple or blob error), not a
    // guess from its text.
    failed: 'resp_error',
    failedNote: 'error replies (ERR, WRONGTYPE, …)',
    // Server pushes (pub/sub messages) answer no command: no latency, no error.
    filter: "req_cmd <> 'PUSH'",
    columns: [
      { sql: 'req_cmd', as: 'command', label: 'Command' },
      { sql: 'req_args', as: 'args', label: 'Arguments', long: true },
      { sql: 'resp', as: 'reply', label: 'Reply', long: true },
    ],
  },
];

export function protocolById(id) {
  return PROTOCOLS.find((p) => p.id === id) ?? PROTOCOLS[0];
}
