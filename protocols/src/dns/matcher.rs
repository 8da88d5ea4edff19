//! Pairing of queries with responses.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::DnsMessage;
use crate::held::HeapSize;

/// A query paired with its response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsExchange {
    pub query: DnsMessage,
    pub response: DnsMessage,
    pub query_ts: u64,
    pub response_ts: u64,
}

/// A query dropped unanswered: replaced by a query with the same key and id
/// (a retransmission), or the oldest when `max_pending` were waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evicted<K> {
    pub key: K,
    pub query: DnsMessage,
    pub query_ts: u64,
}

#[derive(Debug)]
struct Pending {
    seq: u64,
    query: DnsMessage,
    ts: u64,
    /// What this entry weighs (counted in `held_bytes`).
    weight: usize,
}

/// Pairs queries with responses by (caller's key, transaction id). Bounded:
/// at most `max_pending` queries wait; [`expire`](Self::expire) drops those
/// older than the timeout.
#[derive(Debug)]
pub struct DnsMatcher<K: Eq + Hash + Clone> {
    pending: HashMap<(K, u16), Pending>,
    /// Arrival order, for eviction and expiry.
    order: BTreeMap<u64, (K, u16)>,
    next_seq: u64,
    max_pending: usize,
    timeout_ns: u64,
    unmatched_responses: u64,
    held_bytes: usize,
}

impl<K: Eq + Hash + Clone> DnsMatcher<K> {
    pub fn new(max_pending: usize, timeout_ns: u64) -> Self {
        Self {
            pending: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            max_pending: max_pending.max(1),
            timeout_ns,
            unmatched_responses: 0,
            held_bytes: 0,
        }
    }

    /// Bytes the waiting queries keep.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Removes a waiting query (the one way entries leave `pending`).
    fn take(&mut self, slot: &(K, u16)) -> Option<Pending> {
        let pending = self.pending.remove(slot)?;
        self.held_bytes -= pending.weight;
        Some(pending)
    }

    /// A query seen at `ts`. Returns the query it displaced, if any.
    pub fn on_query(&mut self, key: K, msg: DnsMessage, ts: u64) -> Option<Evicted<K>> {
        let slot = (key, msg.id);
        let evicted = if let Some(old) = self.take(&slot) {
            self.order.remove(&old.seq);
            Some(Evicted {
                key: slot.0.clone(),
                query: old.query,
                query_ts: old.ts,
            })
        } else if self.pending.len() >= self.max_pending {
            self.evict_oldest()
        } else {
            None
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.order.insert(seq, slot.clone());
        // The entry, its key and its place in `order`.
        let weight = msg.heap_size() + 2 * std::mem::size_of::<(u64, (K, u16))>();
        self.held_bytes += weight;
        self.pending.insert(
            slot,
            Pending {
                seq,
                query: msg,
                ts,
                weight,
            },
        );
        evicted
    }

    fn evict_oldest(&mut self) -> Option<Evicted<K>> {
        let (_, slot) = self.order.pop_first()?;
        let old = self.take(&slot)?;
        Some(Evicted {
            key: slot.0,
            query: old.query,
            query_ts: old.ts,
        })
    }

    /// A response seen at `ts`: the exchange if a query with the same key
    /// and id waits and asked the same first question (name compared
    /// case-insensitively, and type). Otherwise `None`, counted in
    /// [`unmatched_responses`](Self::unmatched_responses).
    pub fn on_response(&mut self, key: K, msg: DnsMessage, ts: u64) -> Option<DnsExchange> {
        let slot = (key, msg.id);
        let same_question = self.pending.get(&slot).is_some_and(|p| {
            match (p.query.questions.first(), msg.questions.first()) {
                (Some(q), Some(r)) => q.qtype == r.qtype && q.name.eq_ignore_ascii_case(&r.name),
                _ => true,
            }
        });
        if !same_question {
            self.unmatched_responses += 1;
            return None;
        }
        let pending = self.take(&slot)?;
        self.order.remove(&pending.seq);
        Some(DnsExchange {
            query: pending.query,
            response: msg,
            query_ts: pending.ts,
            response_ts: ts,
        })
    }

    /// Drops queries that waited longer than the timeout at `now`; returns
    /// how many (unanswered queries).
    pub fn expire(&mut self, now: u64) -> usize {
        let mut dropped = 0;
        while let Some((&seq, slot)) = self.order.first_key_value() {
            let expired = self
                .pending
                .get(slot)
                .is_none_or(|p| p.ts.saturating_add(self.timeout_ns) < now);
            if !expired {
                break;
            }
            if let Some(slot) = self.order.remove(&seq)
                && self.take(&slot).is_some()
            {
                dropped += 1;
            }
        }
        dropped
    }

    /// Queries waiting for a response.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Responses that matched no waiting query so far.
    pub fn unmatched_responses(&self) -> u64 {
        self.unmatched_responses
    }
}
