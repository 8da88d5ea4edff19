//! Evidence that bytes start a Redis request or reply, and resync.

use crate::MessageKind;
use crate::Verdict;

/// Top-level command names that make an array of bulk strings a request
/// (Redis 7.x, Valkey, common module-free set).
const COMMANDS: &[&str] = &[
    "ACL",
    "APPEND",
    "ASKING",
    "AUTH",
    "BGREWRITEAOF",
    "BGSAVE",
    "BITCOUNT",
    "BITFIELD",
    "BITFIELD_RO",
    "BITOP",
    "BITPOS",
    "BLMOVE",
    "BLMPOP",
    "BLPOP",
    "BRPOP",
    "BRPOPLPUSH",
    "BZMPOP",
    "BZPOPMAX",
    "BZPOPMIN",
    "CLIENT",
    "CLUSTER",
    "COMMAND",
    "CONFIG",
    "COPY",
    "DBSIZE",
    "DEBUG",
    "DECR",
    "DECRBY",
    "DEL",
    "DISCARD",
    "DUMP",
    "ECHO",
    "EVAL",
    "EVALSHA",
    "EVALSHA_RO",
    "EVAL_RO",
    "EXEC",
    "EXISTS",
    "EXPIRE",
    "EXPIREAT",
    "EXPIRETIME",
    "FAILOVER",
    "FCALL",
    "FCALL_RO",
    "FLUSHALL",
    "FLUSHDB",
    "FUNCTION",
    "GEOADD",
    "GEODIST",
    "GEOHASH",
    "GEOPOS",
    "GEORADIUS",
    "GEORADIUSBYMEMBER",
    "GEOSEARCH",
    "GEOSEARCHSTORE",
    "GET",
    "GETBIT",
    "GETDEL",
    "GETEX",
    "GETRANGE",
    "GETSET",
    "HDEL",
    "HELLO",
    "HEXISTS",
    "HEXPIRE",
    "HGET",
    "HGETALL",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HKEYS",
    "HLEN",
    "HMGET",
    "HMSET",
    "HRANDFIELD",
    "HSCAN",
    "HSET",
    "HSETNX",
    "HSTRLEN",
    "HTTL",
    "HVALS",
    "INCR",
    "INCRBY",
    "INCRBYFLOAT",
    "INFO",
    "KEYS",
    "LASTSAVE",
    "LATENCY",
    "LCS",
    "LINDEX",
    "LINSERT",
    "LLEN",
    "LMOVE",
    "LMPOP",
    "LOLWUT",
    "LPOP",
    "LPOS",
    "LPUSH",
    "LPUSHX",
    "LRANGE",
    "LREM",
    "LSET",
    "LTRIM",
    "MEMORY",
    "MGET",
    "MIGRATE",
    "MODULE",
    "MONITOR",
    "MOVE",
    "MSET",
    "MSETNX",
    "MULTI",
    "OBJECT",
    "PERSIST",
    "PEXPIRE",
    "PEXPIREAT",
    "PEXPIRETIME",
    "PFADD",
    "PFCOUNT",
    "PFMERGE",
    "PING",
    "PSETEX",
    "PSUBSCRIBE",
    "PSYNC",
    "PTTL",
    "PUBLISH",
    "PUBSUB",
    "PUNSUBSCRIBE",
    "QUIT",
    "RANDOMKEY",
    "READONLY",
    "READWRITE",
    "RENAME",
    "RENAMENX",
    "REPLCONF",
    "REPLICAOF",
    "RESET",
    "RESTORE",
    "ROLE",
    "RPOP",
    "RPOPLPUSH",
    "RPUSH",
    "RPUSHX",
    "SADD",
    "SAVE",
    "SCAN",
    "SCARD",
    "SCRIPT",
    "SDIFF",
    "SDIFFSTORE",
    "SELECT",
    "SENTINEL",
    "SET",
    "SETBIT",
    "SETEX",
    "SETNX",
    "SETRANGE",
    "SHUTDOWN",
    "SINTER",
    "SINTERCARD",
    "SINTERSTORE",
    "SISMEMBER",
    "SLAVEOF",
    "SLOWLOG",
    "SMEMBERS",
    "SMISMEMBER",
    "SMOVE",
    "SORT",
    "SORT_RO",
    "SPOP",
    "SPUBLISH",
    "SRANDMEMBER",
    "SREM",
    "SSCAN",
    "SSUBSCRIBE",
    "STRLEN",
    "SUBSCRIBE",
    "SUBSTR",
    "SUNION",
    "SUNIONSTORE",
    "SUNSUBSCRIBE",
    "SWAPDB",
    "SYNC",
    "TIME",
    "TOUCH",
    "TTL",
    "TYPE",
    "UNLINK",
    "UNSUBSCRIBE",
    "UNWATCH",
    "WAIT",
    "WAITAOF",
    "WATCH",
    "XACK",
    "XADD",
    "XAUTOCLAIM",
    "XCLAIM",
    "XDEL",
    "XGROUP",
    "XINFO",
    "XLEN",
    "XPENDING",
    "XRANGE",
    "XREAD",
    "XREADGROUP",
    "XREVRANGE",
    "XSETID",
    "XTRIM",
    "ZADD",
    "ZCARD",
    "ZCOUNT",
    "ZDIFF",
    "ZDIFFSTORE",
    "ZINCRBY",
    "ZINTER",
    "ZINTERCARD",
    "ZINTERSTORE",
    "ZLEXCOUNT",
    "ZMPOP",
    "ZMSCORE",
    "ZPOPMAX",
    "ZPOPMIN",
    "ZRANDMEMBER",
    "ZRANGE",
    "ZRANGEBYLEX",
    "ZRANGEBYSCORE",
    "ZRANGESTORE",
    "ZRANK",
    "ZREM",
    "ZREMRANGEBYLEX",
    "ZREMRANGEBYRANK",
    "ZREMRANGEBYSCORE",
    "ZREVRANGE",
    "ZREVRANGEBYLEX",
    "ZREVRANGEBYSCORE",
    "ZREVRANK",
    "ZSCAN",
    "ZSCORE",
    "ZUNION",
    "ZUNIONSTORE",
];

/// Error prefixes Redis (and Valkey) replies use: strong evidence.
const ERROR_PREFIXES: &[&str] = &[
    "ERR",
    "WRONGTYPE",
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
    "MOVED",
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "CROSSSLOT",
    "LOADING",
    "BUSY",
    "BUSYKEY",
    "BUSYGROUP",
    "NOGROUP",
    "NOSCRIPT",
    "READONLY",
    "MASTERDOWN",
    "MISCONF",
    "EXECABORT",
    "OOM",
    "NOREPLICAS",
    "NOTBUSY",
    "UNKILLABLE",
    "NOPROTO",
    "UNBLOCKED",
];

/// First element of a push or array that marks a pub/sub delivery.
const PUSH_KINDS: &[&str] = &["message", "pmessage", "smessage", "invalidate"];

/// Longest line looked at for evidence.
const MAX_LINE: usize = 128;

pub(crate) fn is_known_command(name: &[u8]) -> bool {
    name.len() <= 20
        && COMMANDS
            .iter()
            .any(|c| c.as_bytes().eq_ignore_ascii_case(name))
}

/// Result of reading one CRLF-terminated line for evidence.
enum Line<'a> {
    Complete(&'a [u8], &'a [u8]),
    Partial,
    Invalid,
}

/// The line at the start of `input` (without CRLF) and what follows it.
fn line(input: &[u8]) -> Line<'_> {
    let window = input.get(..MAX_LINE).unwrap_or(input);
    match window.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(cr) => match (input.get(cr), input.get(cr + 1)) {
            (Some(b'\r'), Some(b'\n')) => Line::Complete(
                input.get(..cr).unwrap_or_default(),
                input.get(cr + 2..).unwrap_or_default(),
            ),
            (Some(b'\r'), None) => Line::Partial,
            _ => Line::Invalid,
        },
        None if window.len() >= MAX_LINE => Line::Invalid,
        None => Line::Partial,
    }
}

/// A length line `<tag><digits>\r\n` with the value in `range`.
fn length(
    input: &[u8],
    tag: u8,
    range: std::ops::RangeInclusive<i64>,
) -> Result<(i64, &[u8]), Verdict> {
    match input.first() {
        None => return Err(Verdict::Maybe),
        Some(&t) if t != tag => return Err(Verdict::No),
        Some(_) => {}
    }
    let body = input.get(1..).unwrap_or_default();
    match line(body) {
        Line::Partial => {
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            let digits = body.strip_prefix(b"-").unwrap_or(body);
            if digits.len() <= 12 && digits.iter().all(u8::is_ascii_digit) {
                Err(Verdict::Maybe)
            } else {
                Err(Verdict::No)
            }
        }
        Line::Invalid => Err(Verdict::No),
        Line::Complete(text, rest) => match super::resp::parse_i64(text) {
            Some(n) if range.contains(&n) && !text.starts_with(b"+") => Ok((n, rest)),
            _ => Err(Verdict::No),
        },
    }
}

/// A bulk string `$M\r\n<M bytes>\r\n` with 1 <= M <= 32 (a name).
fn short_bulk(input: &[u8]) -> Result<(&[u8], &[u8]), Verdict> {
    let (len, rest) = length(input, b'$', 1..=32)?;
    let len = usize::try_from(len).map_err(|_| Verdict::No)?;
    let Some(name) = rest.get(..len) else {
        return Err(Verdict::Maybe);
    };
    match rest.get(len..len + 2) {
        Some(b"\r\n") => Ok((name, rest.get(len + 2..).unwrap_or_default())),
        Some(_) => Err(Verdict::No),
        None if rest.get(len).is_some_and(|&b| b != b'\r') => Err(Verdict::No),
        None => Err(Verdict::Maybe),
    }
}

fn is_name(name: &[u8]) -> bool {
    name.iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'|'))
}

/// `*N\r\n$M\r\n<name>\r\n`: Strong for a known command, Weak for another
/// plausible name (module commands such as "JSON.SET").
pub(crate) fn request_verdict(input: &[u8]) -> Verdict {
    if let Err(v) = length(input, b'*', 1..=1 << 20) {
        return v;
    }
    let Line::Complete(_, rest) = line(input.get(1..).unwrap_or_default()) else {
        return Verdict::No;
    };
    match short_bulk(rest) {
        Err(v) => v,
        Ok((name, _)) if is_known_command(name) => Verdict::Strong,
        Ok((name, _)) if is_name(name) => Verdict::Weak,
        Ok(_) => Verdict::No,
    }
}

/// An inline command (`PING\r\n`, `GET key\r\n`): Weak when the first word
/// is a known command and the line is printable. Only considered with a
/// Redis port hint.
pub(crate) fn inline_verdict(input: &[u8]) -> Verdict {
    let word_len = input
        .iter()
        .position(|&b| matches!(b, b' ' | b'\r' | b'\n'))
        .unwrap_or(input.len());
    let word = input.get(..word_len).unwrap_or_default();
    if word_len == input.len() {
        // The first word is still arriving: a prefix of a known command?
        let open = COMMANDS.iter().any(|c| {
            c.as_bytes()
                .get(..word.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(word))
        });
        return if open { Verdict::Maybe } else { Verdict::No };
    }
    if !is_known_command(word) {
        return Verdict::No;
    }
    match line(input) {
        Line::Partial => {
            if input
                .iter()
                .all(|&b| (0x20..0x7f).contains(&b) || b == b'\r')
            {
                Verdict::Maybe
            } else {
                Verdict::No
            }
        }
        Line::Invalid => Verdict::No,
        Line::Complete(text, _) if text.iter().all(|&b| (0x20..0x7f).contains(&b)) => Verdict::Weak,
        Line::Complete(..) => Verdict::No,
    }
}

/// Evidence for a reply. Strong: a Redis error prefix, `+PONG`, `+QUEUED`,
/// a RESP3 HELLO map (`%N` whose first key is "server"), a pub/sub delivery.
/// Weak: any well-formed RESP header line.
pub(crate) fn response_verdict(input: &[u8]) -> Verdict {
    let Some((&tag, body)) = input.split_first() else {
        return Verdict::Maybe;
    };
    let text = match tag {
        b'+' | b'-' | b':' | b',' | b'(' | b'#' | b'_' => match line(body) {
            Line::Partial => {
                // Rule out as early as a byte allows.
                let body = body.strip_suffix(b"\r").unwrap_or(body);
                return if scalar_prefix_ok(tag, body) {
                    Verdict::Maybe
                } else {
                    Verdict::No
                };
            }
            Line::Invalid => return Verdict::No,
            Line::Complete(text, _) => text,
        },
        b'$' | b'!' | b'=' => {
            return match length(input, tag, -1..=1 << 32) {
                Ok(_) => Verdict::Weak,
                Err(v) => v,
            };
        }
        b'*' | b'%' | b'~' | b'>' | b'|' => return aggregate_verdict(input, tag),
        _ => return Verdict::No,
    };
    if !text.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return Verdict::No;
    }
    match tag {
        b'+' if text == b"PONG" || text == b"QUEUED" => Verdict::Strong,
        b'+' => Verdict::Weak,
        b'-' => {
            let word = text.split(|&b| b == b' ').next().unwrap_or_default();
            if ERROR_PREFIXES.iter().any(|p| p.as_bytes() == word) {
                Verdict::Strong
            } else if !word.is_empty() && word.iter().all(u8::is_ascii_uppercase) {
                Verdict::Weak
            } else {
                Verdict::No
            }
        }
        b':' | b'(' if super::resp::parse_i64(text).is_some() => Verdict::Weak,
        b',' if !text.is_empty() => Verdict::Weak,
        b'#' if text == b"t" || text == b"f" => Verdict::Weak,
        b'_' if text.is_empty() => Verdict::Weak,
        _ => Verdict::No,
    }
}

/// Whether `body` can still begin the line of a scalar of type `tag`.
fn scalar_prefix_ok(tag: u8, body: &[u8]) -> bool {
    match tag {
        b'+' | b'-' => body.iter().all(|&b| (0x20..0x7f).contains(&b)),
        b':' | b'(' => {
            let digits = body
                .strip_prefix(b"-")
                .or_else(|| body.strip_prefix(b"+"))
                .unwrap_or(body);
            digits.len() <= 40 && digits.iter().all(u8::is_ascii_digit)
        }
        b',' => body.iter().all(|b| b".0123456789eE+-infa".contains(b)),
        b'#' => matches!(body, b"" | b"t" | b"f"),
        _ => body.is_empty(),
    }
}

fn aggregate_verdict(input: &[u8], tag: u8) -> Verdict {
    let (count, rest) = match length(input, tag, -1..=1 << 32) {
        Ok(found) => found,
        Err(v) => return v,
    };
    if count <= 0 || !matches!(tag, b'*' | b'%' | b'>') {
        return Verdict::Weak;
    }
    // Look at the first element when it is a short bulk string.
    if rest.first().is_some_and(|&b| b != b'$') {
        return Verdict::Weak;
    }
    match short_bulk(rest) {
        Err(Verdict::Maybe) => Verdict::Maybe,
        Err(_) => Verdict::Weak,
        Ok((name, _)) => {
            let strong = match tag {
                b'%' => name == b"server",
                _ => PUSH_KINDS.iter().any(|k| k.as_bytes() == name),
            };
            if strong {
                Verdict::Strong
            } else {
                Verdict::Weak
            }
        }
    }
}

/// Resync: the offset of the first plausible start of a message of `kind`
/// at a line start (offset 0, or just after "\n"): a request array naming a
/// known command, or a reply with strong evidence (see [`crate::detect`]).
/// `None` if there is none yet; a caller that discards data on `None`
/// should keep the bytes after the last "\n".
pub fn find_message_start(input: &[u8], kind: MessageKind) -> Option<usize> {
    let verdict = match kind {
        MessageKind::Request => request_verdict,
        MessageKind::Response => response_verdict,
    };
    let line_starts = input
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1);
    std::iter::once(0).chain(line_starts).find(|&start| {
        input
            .get(start..)
            .is_some_and(|rest| verdict(rest) == Verdict::Strong)
    })
}
