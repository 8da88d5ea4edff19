//! Pairing of HTTP/1.x requests with their responses on one connection.
//! HTTP/1.x answers in order, which also covers pipelining: the oldest
//! request waiting is the one a response answers.

use super::{AnsweredMethod, HttpMessage};
use crate::held::{HeapSize, SizedQueue};

/// A request and its final response: one `http_events` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpExchange {
    pub request: Box<HttpMessage>,
    pub response: Box<HttpMessage>,
    /// Capture time of the request's first byte.
    pub req_ts: u64,
    /// Capture time of the response's last byte.
    pub resp_ts: u64,
    /// After this exchange the connection carries something else: a 101
    /// (Switching Protocols) or a 2xx to CONNECT (a tunnel).
    pub upgraded: bool,
}

/// What a response turned into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseOutcome {
    /// A complete exchange.
    Exchange(HttpExchange),
    /// An interim 1xx response (not 101): the final response follows.
    Interim,
    /// No request was waiting (it was lost, or came before the capture).
    Unmatched,
}

#[derive(Debug)]
struct Pending {
    request: Box<HttpMessage>,
    ts: u64,
}

impl HeapSize for Pending {
    fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>() + self.request.heap_size()
    }
}

/// Requests waiting for responses, oldest first. Bounded: beyond
/// `max_pending` the oldest is dropped and counted in [`overflowed`](Self::overflowed).
#[derive(Debug)]
pub struct HttpPairing {
    pending: SizedQueue<Pending>,
    max_pending: usize,
    overflowed: u64,
}

impl HttpPairing {
    pub fn new(max_pending: usize) -> Self {
        Self {
            pending: SizedQueue::default(),
            max_pending: max_pending.max(1),
            overflowed: 0,
        }
    }

    /// What the next response answers, as its decoder needs it.
    pub fn answering(&self) -> AnsweredMethod {
        self.pending
            .front()
            .map(|p| AnsweredMethod::of(&p.request.method))
            .unwrap_or_default()
    }

    /// A complete request whose first byte was captured at `ts`.
    pub fn on_request(&mut self, request: Box<HttpMessage>, ts: u64) {
        if self.pending.len() >= self.max_pending {
            self.pending.pop_front();
            self.overflowed += 1;
        }
        self.pending.push_back(Pending { request, ts });
    }

    /// A complete response whose last byte was captured at `ts`.
    pub fn on_response(&mut self, response: Box<HttpMessage>, ts: u64) -> ResponseOutcome {
        if (100..200).contains(&response.status) && response.status != 101 {
            return ResponseOutcome::Interim;
        }
        let Some(Pending {
            request,
            ts: req_ts,
        }) = self.pending.pop_front()
        else {
            return ResponseOutcome::Unmatched;
        };
        let upgraded = response.status == 101
            || (request.method.eq_ignore_ascii_case("CONNECT")
                && (200..300).contains(&response.status));
        ResponseOutcome::Exchange(HttpExchange {
            request,
            response,
            req_ts,
            resp_ts: ts,
            upgraded,
        })
    }

    /// The connection ended: the requests still waiting were never answered.
    /// Returns how many.
    pub fn finish(&mut self) -> usize {
        let unanswered = self.pending.len();
        self.pending.clear();
        unanswered
    }

    /// Requests dropped because too many were waiting.
    pub fn overflowed(&self) -> u64 {
        self.overflowed
    }

    /// Requests waiting now.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Bytes the waiting requests keep.
    pub fn held_bytes(&self) -> usize {
        self.pending.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MessageKind;

    fn message(kind: MessageKind, method: &str, status: u16) -> Box<HttpMessage> {
        Box::new(HttpMessage {
            kind,
            minor_version: 1,
            method: method.into(),
            path: "/".into(),
            status,
            reason: Default::default(),
            headers: crate::Headers::new(),
            content_type: Default::default(),
            body: Vec::new(),
            body_size: 0,
            body_incomplete: false,
        })
    }

    #[test]
    fn pairs_in_order_and_skips_interim_responses() {
        let mut p = HttpPairing::new(8);
        p.on_request(message(MessageKind::Request, "HEAD", 0), 10);
        p.on_request(message(MessageKind::Request, "GET", 0), 20);
        assert_eq!(p.answering(), AnsweredMethod::Head);
        assert_eq!(
            p.on_response(message(MessageKind::Response, "", 100), 25),
            ResponseOutcome::Interim
        );
        let ResponseOutcome::Exchange(first) =
            p.on_response(message(MessageKind::Response, "", 200), 30)
        else {
            panic!("an exchange")
        };
        assert_eq!(
            (first.request.method.as_str(), first.req_ts, first.resp_ts),
            ("HEAD", 10, 30)
        );
        assert!(!first.upgraded);
        assert_eq!(p.answering(), AnsweredMethod::Other);
        assert!(matches!(
            p.on_response(message(MessageKind::Response, "", 101), 40),
            ResponseOutcome::Exchange(e) if e.upgraded
        ));
        assert_eq!(
            p.on_response(message(MessageKind::Response, "", 200), 50),
            ResponseOutcome::Unmatched
        );
    }

    #[test]
    fn bounded_and_counted() {
        let mut p = HttpPairing::new(2);
        for ts in 0..5 {
            p.on_request(message(MessageKind::Request, "GET", 0), ts);
        }
        assert_eq!((p.pending(), p.overflowed()), (2, 3));
        assert_eq!(p.finish(), 2);
        assert_eq!(p.pending(), 0);
    }

    #[test]
    fn connect_answered_with_2xx_is_a_tunnel() {
        let mut p = HttpPairing::new(2);
        p.on_request(message(MessageKind::Request, "CONNECT", 0), 1);
        assert_eq!(p.answering(), AnsweredMethod::Connect);
        assert!(matches!(
            p.on_response(message(MessageKind::Response, "", 200), 2),
            ResponseOutcome::Exchange(e) if e.upgraded
        ));
    }
}
