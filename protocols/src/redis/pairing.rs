//! Pairing of requests with replies on one connection.

use super::command::redact_reply;
use super::{RedisCommand, RespValue, render};
use crate::held::{HeapSize, SizedQueue};

/// What a reply (or push) turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisEvent {
    /// A request and its reply.
    Exchange {
        cmd: RedisCommand,
        /// Rendered reply ([`render`]), secrets of CONFIG GET / ACL replies
        /// redacted.
        reply: String,
        is_error: bool,
        req_ts: u64,
        resp_ts: u64,
    },
    /// Data the server sent on its own: a pub/sub message ("message",
    /// "pmessage", "smessage"), an unsolicited (un)subscribe notice, a RESP3
    /// push such as "invalidate", or a MONITOR line ("monitor").
    Push {
        kind: String,
        channel: Option<String>,
        payload: String,
        ts: u64,
    },
    /// A reply with no request to answer (its request was lost, or came
    /// before the capture started).
    UnmatchedReply {
        reply: String,
        is_error: bool,
        ts: u64,
    },
}

#[derive(Debug)]
struct Pending {
    cmd: RedisCommand,
    ts: u64,
}

impl HeapSize for Pending {
    fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            - std::mem::size_of::<String>()
            - std::mem::size_of::<Vec<String>>()
            + self.cmd.cmd.heap_size()
            + self.cmd.args.heap_size()
    }
}

/// Confirmations still expected after the first one of a (un)subscribe
/// command answered: one per channel.
#[derive(Debug)]
struct Swallow {
    kind: String,
    /// `None`: until the subscription count reaches 0 (UNSUBSCRIBE without
    /// channels).
    remaining: Option<u64>,
}

/// Pairs the requests and replies of one connection, in order (Redis answers
/// in order, also when pipelined). Knows pub/sub: subscribe confirmations
/// answer their command (one per channel), messages are pushes, in RESP2
/// once subscribed and in RESP3 as `>` pushes. Knows MONITOR and
/// CLIENT REPLY OFF/SKIP. Bounded: at most `max_pending` requests wait.
#[derive(Debug)]
pub struct RedisPairing {
    pending: SizedQueue<Pending>,
    max_pending: usize,
    max_reply_len: usize,
    /// Channels + patterns subscribed, per the server's last confirmation.
    subscriptions: i64,
    swallow: Option<Swallow>,
    /// RESP3 in use (HELLO 3 or a push seen): arrays are never pushes.
    resp3: bool,
    monitoring: bool,
    replies_off: bool,
    skip_next: bool,
    overflowed: u64,
}

impl RedisPairing {
    /// `max_pending` requests may wait for replies (older ones are dropped
    /// beyond that); replies are rendered to at most `max_reply_len` bytes.
    pub fn new(max_pending: usize, max_reply_len: usize) -> Self {
        Self {
            pending: SizedQueue::default(),
            max_pending: max_pending.max(1),
            max_reply_len,
            subscriptions: 0,
            swallow: None,
            resp3: false,
            monitoring: false,
            replies_off: false,
            skip_next: false,
            overflowed: 0,
        }
    }

    /// A request value, stamped with the time its first byte was seen.
    /// Values that are not commands are ignored.
    pub fn on_request(&mut self, value: RespValue, start_ts: u64) {
        let Some(cmd) = RedisCommand::from_value(&value) else {
            return;
        };
        if cmd.cmd == "CLIENT REPLY" {
            match cmd.args.first().map(|a| a.to_ascii_uppercase()).as_deref() {
                // OFF and SKIP are not answered; SKIP also silences the next.
                Some("OFF") => {
                    self.replies_off = true;
                    return;
                }
                Some("SKIP") => {
                    self.skip_next = !self.replies_off;
                    return;
                }
                Some("ON") => {
                    self.replies_off = false;
                    self.skip_next = false;
                }
                _ => {}
            }
        }
        if self.replies_off {
            return;
        }
        if self.skip_next {
            self.skip_next = false;
            return;
        }
        if cmd.cmd == "HELLO" {
            // The protocol switches with the reply, but no RESP2 reply can
            // be mistaken for RESP3 pushes in the meantime.
            self.resp3 = cmd.args.first().is_some_and(|v| v == "3");
        }
        if self.pending.len() >= self.max_pending {
            self.pending.pop_front();
            self.overflowed += 1;
        }
        self.pending.push_back(Pending { cmd, ts: start_ts });
    }

    /// A reply value, stamped with the time its last byte was seen.
    /// Returns `None` only for a subscribe confirmation absorbed into the
    /// exchange of its command.
    pub fn on_reply(&mut self, mut value: RespValue, end_ts: u64) -> Option<RedisEvent> {
        if let Some(outcome) = self.pubsub(&value, end_ts) {
            return outcome;
        }
        if self.monitoring
            && let RespValue::SimpleString(line) = &value
            && is_monitor_line(line)
        {
            return Some(RedisEvent::Push {
                kind: "monitor".into(),
                channel: None,
                payload: render(&value, self.max_reply_len),
                ts: end_ts,
            });
        }
        let is_error = value.is_error();
        // A reply cannot end before its request started: then it answers a
        // request that was lost (or not seen).
        if self.pending.front().is_none_or(|p| p.ts > end_ts) {
            return Some(RedisEvent::UnmatchedReply {
                reply: render(&value, self.max_reply_len),
                is_error,
                ts: end_ts,
            });
        }
        let pending = self.pending.pop_front()?;
        match pending.cmd.cmd.as_str() {
            "MONITOR" if !is_error => self.monitoring = true,
            "RESET" => {
                self.subscriptions = 0;
                self.swallow = None;
                self.monitoring = false;
                self.resp3 = false;
            }
            "HELLO" if is_error => self.resp3 = false,
            _ => {}
        }
        redact_reply(&pending.cmd.cmd, &mut value);
        Some(RedisEvent::Exchange {
            reply: render(&value, self.max_reply_len),
            cmd: pending.cmd,
            is_error,
            req_ts: pending.ts,
            resp_ts: end_ts,
        })
    }

    /// Handles pub/sub replies and pushes: `Some(event or None)` when the
    /// value was one, `None` when it is an ordinary reply.
    fn pubsub(&mut self, value: &RespValue, ts: u64) -> Option<Option<RedisEvent>> {
        let (is_push, items) = match value {
            RespValue::Push(agg) => {
                self.resp3 = true;
                (true, &agg.items)
            }
            RespValue::Array(agg) if !self.resp3 => (false, &agg.items),
            _ => return None,
        };
        let kind = items
            .first()
            .and_then(RespValue::as_bytes)
            .filter(|k| k.len() <= 16)
            .map(|k| String::from_utf8_lossy(k).to_ascii_lowercase())?;
        let max = self.max_reply_len;
        let text = |v: Option<&RespValue>| v.map(|v| render(v, max));
        let subscribed = is_push || self.subscriptions > 0;
        match (kind.as_str(), items.len()) {
            ("message" | "smessage", 3) if subscribed => Some(Some(RedisEvent::Push {
                channel: text(items.get(1)),
                payload: text(items.get(2)).unwrap_or_default(),
                kind,
                ts,
            })),
            ("pmessage", 4) if subscribed => Some(Some(RedisEvent::Push {
                channel: text(items.get(2)),
                payload: text(items.get(3)).unwrap_or_default(),
                kind,
                ts,
            })),
            (
                "subscribe" | "psubscribe" | "ssubscribe" | "unsubscribe" | "punsubscribe"
                | "sunsubscribe",
                3,
            ) => self.confirmation(value, kind, ts),
            _ if is_push => Some(Some(RedisEvent::Push {
                channel: None,
                payload: render(value, self.max_reply_len),
                kind,
                ts,
            })),
            _ => None,
        }
    }

    /// A (un)subscribe confirmation: the reply to its command (the first
    /// one), absorbed (the following ones, one per channel), or a notice.
    fn confirmation(
        &mut self,
        value: &RespValue,
        kind: String,
        ts: u64,
    ) -> Option<Option<RedisEvent>> {
        let items = value.elements()?;
        let count = match items.get(2) {
            Some(RespValue::Integer(n)) => *n,
            _ => return None,
        };
        let answers_front = self
            .pending
            .front()
            .is_some_and(|p| p.ts <= ts && p.cmd.cmd.eq_ignore_ascii_case(&kind));
        if !answers_front
            && self.swallow.is_none()
            && self.subscriptions == 0
            && !matches!(value, RespValue::Push(_))
        {
            // An ordinary array that happens to look like a confirmation.
            return None;
        }
        self.subscriptions = count;
        if answers_front {
            let pending = self.pending.pop_front()?;
            let channels = pending.cmd.args.len() as u64 + pending.cmd.omitted_args;
            let remaining = if channels == 0 {
                None
            } else {
                Some(channels - 1)
            };
            self.swallow = match remaining {
                Some(0) => None,
                None if count == 0 => None,
                remaining => Some(Swallow {
                    kind: kind.clone(),
                    remaining,
                }),
            };
            return Some(Some(RedisEvent::Exchange {
                cmd: pending.cmd,
                reply: render(value, self.max_reply_len),
                is_error: false,
                req_ts: pending.ts,
                resp_ts: ts,
            }));
        }
        if let Some(swallow) = &mut self.swallow
            && swallow.kind == kind
        {
            match &mut swallow.remaining {
                Some(n) => {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.swallow = None;
                    }
                }
                None if count == 0 => self.swallow = None,
                None => {}
            }
            return Some(None);
        }
        Some(Some(RedisEvent::Push {
            channel: items.get(1).map(|v| render(v, self.max_reply_len)),
            payload: count.to_string(),
            kind,
            ts,
        }))
    }

    /// Requests waiting for a reply.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes the waiting requests keep.
    pub fn held_bytes(&self) -> usize {
        self.pending.bytes()
    }

    /// Requests dropped unanswered because `max_pending` were waiting.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Bytes of either direction were lost: the order of replies is no
    /// longer known, so waiting requests are dropped. Returns how many.
    pub fn on_gap(&mut self) -> usize {
        self.swallow = None;
        self.finish()
    }

    /// The connection closed: drops waiting requests and returns how many
    /// were never answered.
    pub fn finish(&mut self) -> usize {
        let n = self.pending.len();
        self.pending.clear();
        n
    }
}

/// `1700000000.123456 [0 127.0.0.1:50000] "get" "k"`
fn is_monitor_line(line: &str) -> bool {
    let mut parts = line.splitn(2, ' ');
    let stamp = parts.next().unwrap_or_default();
    let rest = parts.next().unwrap_or_default();
    stamp.contains('.')
        && stamp.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && rest.starts_with('[')
}
