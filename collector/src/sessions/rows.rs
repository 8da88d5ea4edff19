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
}

impl<B: TableBuilder> Default for TableRows<B> {
    fn default() -> Self {
        Self {
            builder: B::default(),
            typed: Vec::new(),
            keep_typed: false,
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
        let capacity = if self.keep_typed { self.typed.len() } else { 0 };
        let typed = std::mem::replace(&mut self.typed, Vec::with_capacity(capacity));
        Some((self.builder.finish(), typed))
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
