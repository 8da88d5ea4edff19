//! The small types every protocol module shares: which protocol, which
//! direction of its exchange, how strongly bytes point at it, and the
//! outcome shapes of the stream decoders. A leaf: it imports nothing from
//! the crate, so protocol modules and `detect` can all depend on it without
//! depending on each other.

/// Application protocols Sonde understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// HTTP/1.x.
    Http,
    /// HTTP/2 (h2c, h2 over TLS through the TLS library probes, gRPC).
    Http2,
    Dns,
    Mysql,
    Redis,
    /// PostgreSQL's frontend/backend protocol 3.
    Pgsql,
}

/// Direction of a message within its protocol's request/response exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Request,
    Response,
}

/// Result of a successful [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detection {
    pub protocol: Protocol,
    pub kind: MessageKind,
}

/// How strongly a prefix points at one candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Ruled out.
    No,
    /// Undecided: more bytes are needed.
    Maybe,
    /// Well-formed, but common enough elsewhere that only a port hint may
    /// pick it.
    Weak,
    /// Strong evidence on its own.
    Strong,
}

/// Outcome of one `decode` call of the DNS, MySQL and Redis stream decoders
/// (the HTTP decoder has its own, same-shaped [`http::Decoded`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<T> {
    /// Nothing consumed; more bytes are needed.
    NeedMore,
    /// `consumed` bytes of the input belong to the current message; `message`
    /// is Some when it completed. `consumed` is 0 only when a message
    /// completed by a gap is handed out.
    Progress { consumed: usize, message: Option<T> },
}

/// Outcome of a decoder's `skip_gap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GapOutcome {
    /// The lost bytes were payload of the message in progress, which goes on.
    Absorbed,
    /// A message (or the start of one) was lost; the decoder is idle and the
    /// caller must resync.
    MessageLost,
}

/// Value that replaces secrets (passwords, auth responses) in every output.
pub const REDACTED: &str = "<redacted>";
