//! The rows the capture side fills: per table an Arrow builder (for the
//! table store) and, for the exchange tables, the same typed rows kept for
//! the exporter, so it never reads values back out of Arrow.

use arrow::record_batch::RecordBatch;
use sonde_query::records::{
    ConnStatsBuilder, DnsEventsBuilder, DnsRow, HttpEventsBuilder, HttpRow, MysqlEventsBuilder,
    MysqlRow, PgsqlEventsBuilder, PgsqlRow, RedisEventsBuilder, RedisRow, TableBuilder,
};

/// One table's pending rows.
#[derive(Debug)]
pub struct TableRows<B: TableBuilder> {
    builder: B,
    /// The typed rows, in builder order, when the exporter wants them.
    typed: Vec<B::Row>,
    keep_typed: bool,
    /// An emptied vector the exporter returned, for the next flush.
    spare: Option<Vec<B::Row>>,
}

/// Returned row vectors larger than this (after a burst) are not kept.
const MAX_SPARE_ROWS: usize = 64 * 1024;

impl<B: TableBuilder> Default for TableRows<B> {
    fn default() -> Self {
        Self {
            builder: B::default(),
            typed: Vec::new(),
            keep_typed: false,
            spare: None,
        }
    }
}

impl<B: TableBuilder> TableRows<B> {
    pub fn push(&mut self, row: B::Row) {
        self.builder.append(&row);
        if self.keep_typed {
            self.typed.push(row);
        }
    }

    pub fn len(&self) -> usize {
        self.builder.len()
    }

    pub fn is_empty(&self) -> bool {
        self.builder.is_empty()
    }

    /// The pending rows as a batch and their typed rows (empty unless kept).
    fn take(&mut self) -> Option<(RecordBatch, Vec<B::Row>)> {
        if self.builder.is_empty() {
            return None;
        }
        // The next flush likely holds as many rows: no regrowing from empty.
        let next = match self.spare.take() {
            Some(spare) => spare,
            None if self.keep_typed => Vec::with_capacity(self.typed.len().min(MAX_SPARE_ROWS)),
            None => Vec::new(),
        };
        let typed = std::mem::replace(&mut self.typed, next);
        Some((self.builder.finish(), typed))
    }

    /// Takes back typed rows the exporter has read: they are freed here
    /// and their vector is kept for a next flush.
    fn recycle(&mut self, mut rows: Vec<B::Row>) {
        rows.clear();
        if self.keep_typed && self.spare.is_none() && rows.capacity() <= MAX_SPARE_ROWS {
            self.spare = Some(rows);
        }
    }
}

/// Typed rows of one exchange table, in the order of its batch's rows.
#[derive(Debug)]
pub enum Exchanges {
    Http(Vec<HttpRow>),
    Dns(Vec<DnsRow>),
    Mysql(Vec<MysqlRow>),
    Redis(Vec<RedisRow>),
    Pgsql(Vec<PgsqlRow>),
}

impl Exchanges {
    pub fn len(&self) -> usize {
        match self {
            Exchanges::Http(rows) => rows.len(),
            Exchanges::Dns(rows) => rows.len(),
            Exchanges::Mysql(rows) => rows.len(),
            Exchanges::Redis(rows) => rows.len(),
            Exchanges::Pgsql(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One table's flushed rows: the batch for the store and, for exchange
/// tables when the exporter is on, the same rows typed.
#[derive(Debug)]
pub struct FlushedTable {
    pub table: &'static str,
    pub batch: RecordBatch,
    pub exchanges: Option<Exchanges>,
}

#[derive(Debug, Default)]
pub struct RowBuilders {
    pub http: TableRows<HttpEventsBuilder>,
    pub dns: TableRows<DnsEventsBuilder>,
    pub mysql: TableRows<MysqlEventsBuilder>,
    pub redis: TableRows<RedisEventsBuilder>,
    pub pgsql: TableRows<PgsqlEventsBuilder>,
    pub conn_stats: TableRows<ConnStatsBuilder>,
}

impl RowBuilders {
    /// Builders that also keep the typed exchange rows for the exporter.
    pub fn keeping_exchanges() -> Self {
        let mut rows = Self::default();
        rows.http.keep_typed = true;
        rows.dns.keep_typed = true;
        rows.mysql.keep_typed = true;
        rows.redis.keep_typed = true;
        rows.pgsql.keep_typed = true;
        rows
    }

    /// Rows waiting to be flushed, all tables together.
    pub fn pending_rows(&self) -> usize {
        self.http.len()
            + self.dns.len()
            + self.mysql.len()
            + self.redis.len()
            + self.pgsql.len()
            + self.conn_stats.len()
    }

    /// Takes back typed rows the exporter has read (see `TableRows::recycle`).
    pub fn recycle(&mut self, exchanges: Exchanges) {
        match exchanges {
            Exchanges::Http(rows) => self.http.recycle(rows),
            Exchanges::Dns(rows) => self.dns.recycle(rows),
            Exchanges::Mysql(rows) => self.mysql.recycle(rows),
            Exchanges::Redis(rows) => self.redis.recycle(rows),
            Exchanges::Pgsql(rows) => self.pgsql.recycle(rows),
        }
    }

    /// The pending rows of each non-empty table (builders reset).
    pub fn take(&mut self) -> Vec<FlushedTable> {
        let mut out = Vec::new();
        let mut add = |table, taken: Option<(RecordBatch, Option<Exchanges>)>| {
            if let Some((batch, exchanges)) = taken {
                out.push(FlushedTable {
                    table,
                    batch,
                    exchanges: exchanges.filter(|e| !e.is_empty()),
                });
            }
        };
        add(
            HttpEventsBuilder::TABLE,
            self.http
                .take()
                .map(|(b, rows)| (b, Some(Exchanges::Http(rows)))),
        );
        add(
            DnsEventsBuilder::TABLE,
            self.dns
                .take()
                .map(|(b, rows)| (b, Some(Exchanges::Dns(rows)))),
        );
        add(
            MysqlEventsBuilder::TABLE,
            self.mysql
                .take()
                .map(|(b, rows)| (b, Some(Exchanges::Mysql(rows)))),
        );
        add(
            RedisEventsBuilder::TABLE,
            self.redis
                .take()
                .map(|(b, rows)| (b, Some(Exchanges::Redis(rows)))),
        );
        add(
            PgsqlEventsBuilder::TABLE,
            self.pgsql
                .take()
                .map(|(b, rows)| (b, Some(Exchanges::Pgsql(rows)))),
        );
        add(
            ConnStatsBuilder::TABLE,
            self.conn_stats.take().map(|(b, _)| (b, None)),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sonde_query::records::{ConnFields, TraceRole};

    use super::*;

    fn row(path: &str) -> HttpRow {
        HttpRow {
            time_ns: 1,
            conn: Arc::new(ConnFields {
                upid: "1:1".into(),
                pid: 1,
                comm: "curl".into(),
                remote_addr: "127.0.0.1".into(),
                remote_port: 80,
                local_addr: "127.0.0.1".into(),
                local_port: 40000,
                trace_role: TraceRole::Client,
                encrypted: false,
                k8s: Default::default(),
            }),
            major_version: 1,
            minor_version: 1,
            content_type: Default::default(),
            req_headers: Default::default(),
            req_method: "GET".into(),
            req_path: path.into(),
            req_body: Vec::new(),
            req_body_size: 0,
            resp_headers: Default::default(),
            resp_status: 200,
            resp_message: "OK".into(),
            resp_body: Vec::new(),
            resp_body_size: 0,
            grpc_status: None,
            grpc_message: None,
            latency: 1,
        }
    }

    fn take_http(rows: &mut RowBuilders) -> Vec<HttpRow> {
        let mut flushed = rows.take();
        assert_eq!(flushed.len(), 1);
        match flushed.pop().and_then(|f| f.exchanges) {
            Some(Exchanges::Http(rows)) => rows,
            other => panic!("expected http rows, got {other:?}"),
        }
    }

    #[test]
    fn returned_rows_are_freed_and_their_vector_reused() {
        let mut rows = RowBuilders::keeping_exchanges();
        for path in ["/a", "/b", "/c"] {
            rows.http.push(row(path));
        }
        let first = take_http(&mut rows);
        assert_eq!(
            first
                .iter()
                .map(|r| r.req_path.as_str())
                .collect::<Vec<_>>(),
            ["/a", "/b", "/c"]
        );
        let returned = first.as_ptr();
        rows.recycle(Exchanges::Http(first));

        // The pending vector was made with room for three; the returned one
        // is kept for the flush after.
        rows.http.push(row("/d"));
        let second = take_http(&mut rows);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].req_path, "/d");
        rows.http.push(row("/e"));
        let third = take_http(&mut rows);
        assert_eq!(third.as_ptr(), returned, "the returned vector is reused");
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].req_path, "/e");
    }
}
