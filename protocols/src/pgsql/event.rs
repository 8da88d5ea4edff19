//! What the session hands out: events (rows), the encryption state and
//! counters of what it dropped.

/// What an event is about: the request's message (or the statement's kind
/// for COPY), or what the server sent on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgCommand {
    /// StartupMessage through authentication to the first ReadyForQuery
    /// (or the error that refused the login).
    Startup,
    SslRequest,
    GssEncRequest,
    /// A request to cancel another connection's query (no response).
    CancelRequest,
    /// One statement of a simple query.
    Query,
    /// Parse, Bind, Describe or Close: only when they fail (a successful
    /// one shows in the Execute it leads to).
    Parse,
    Bind,
    Describe,
    Close,
    /// One Execute of the extended protocol.
    Execute,
    /// A COPY statement (simple or extended) that read from the client,
    /// wrote to it, or both (replication).
    CopyIn,
    CopyOut,
    CopyBoth,
    FunctionCall,
    /// The client closed the session (no response).
    Terminate,
    /// A notice, notification or error the server sent outside any request.
    Notice,
    Notification,
    Error,
}

impl PgCommand {
    /// The name shown in `req_cmd`.
    pub fn name(self) -> &'static str {
        match self {
            PgCommand::Startup => "Startup",
            PgCommand::SslRequest => "SSLRequest",
            PgCommand::GssEncRequest => "GSSENCRequest",
            PgCommand::CancelRequest => "CancelRequest",
            PgCommand::Query => "Query",
            PgCommand::Parse => "Parse",
            PgCommand::Bind => "Bind",
            PgCommand::Describe => "Describe",
            PgCommand::Close => "Close",
            PgCommand::Execute => "Execute",
            PgCommand::CopyIn => "CopyIn",
            PgCommand::CopyOut => "CopyOut",
            PgCommand::CopyBoth => "CopyBoth",
            PgCommand::FunctionCall => "FunctionCall",
            PgCommand::Terminate => "Terminate",
            PgCommand::Notice => "Notice",
            PgCommand::Notification => "Notification",
            PgCommand::Error => "Error",
        }
    }
}

/// One exchange: a `pgsql_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgEvent {
    pub command: PgCommand,
    /// Statement text (for Execute with its bound parameters: `... -- params:
    /// [42, 'abc', NULL]`); for Startup the parameters (`user=.. database=..`);
    /// never a password. Ends in "..." when cut.
    pub req: String,
    /// The CommandComplete tag (`INSERT 0 1`), `SEVERITY: message` of an
    /// error, `OK (SCRAM-SHA-256)` of a login; notices follow after "; ".
    pub resp: String,
    /// SQLSTATE of the error (or of a notice sent on its own); `None` on
    /// success.
    pub sqlstate: Option<String>,
    /// Rows from the CommandComplete tag (or counted, for a suspended
    /// portal); `None` when the tag has no count.
    pub rows: Option<u64>,
    /// CopyData bytes of a COPY.
    pub copy_bytes: Option<u64>,
    pub req_ts: u64,
    pub resp_ts: u64,
}

/// Whether (and how) the connection's bytes turned into ciphertext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    None,
    /// TLS after an accepted SSLRequest (or direct TLS): libpq's plaintext
    /// is seen through the OpenSSL probes.
    Tls,
    /// GSSAPI encryption: not followed.
    Gss,
}

/// What the session dropped or could not pair. The caller adds the changes
/// to its own counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PgCounters {
    /// Requests dropped without their response (lost in a gap, answers
    /// lost, connection state unknown).
    pub unanswered: u64,
    /// Requests dropped because `max_pending` were waiting.
    pub pending_evicted: u64,
    /// Prepared statements forgotten because `max_statements` were kept.
    pub statements_evicted: u64,
    /// Portals forgotten because `max_portals` were kept.
    pub portals_evicted: u64,
    /// Binds and Executes naming a statement or portal not seen (prepared
    /// before the capture started, or evicted).
    pub unknown_statements: u64,
    /// Responses with no request waiting for them.
    pub unmatched_responses: u64,
    /// Simple queries whose statements the split did not match one to one
    /// with the server's completions (or with more than
    /// `max_query_statements`).
    pub split_mismatches: u64,
}
