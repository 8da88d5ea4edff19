//! The row builders of every table the capture side fills.

use arrow::record_batch::RecordBatch;
use sonde_query::records::{
    ConnStatsBuilder, DnsEventsBuilder, HttpEventsBuilder, MysqlEventsBuilder, RedisEventsBuilder,
};
use sonde_query::schema::{CONN_STATS, DNS_EVENTS, HTTP_EVENTS, MYSQL_EVENTS, REDIS_EVENTS};

#[derive(Debug, Default)]
pub struct RowBuilders {
    pub http: HttpEventsBuilder,
    pub dns: DnsEventsBuilder,
    pub mysql: MysqlEventsBuilder,
    pub redis: RedisEventsBuilder,
    pub conn_stats: ConnStatsBuilder,
}

impl RowBuilders {
    /// Rows waiting to be flushed, all tables together.
    pub fn pending_rows(&self) -> usize {
        self.http.len()
            + self.dns.len()
            + self.mysql.len()
            + self.redis.len()
            + self.conn_stats.len()
    }

    /// The pending rows of each non-empty table, as batches (builders reset).
    pub fn take_batches(&mut self) -> Vec<(&'static str, RecordBatch)> {
        let mut batches = Vec::new();
        if !self.http.is_empty() {
            batches.push((HTTP_EVENTS, self.http.finish()));
        }
        if !self.dns.is_empty() {
            batches.push((DNS_EVENTS, self.dns.finish()));
        }
        if !self.mysql.is_empty() {
            batches.push((MYSQL_EVENTS, self.mysql.finish()));
        }
        if !self.redis.is_empty() {
            batches.push((REDIS_EVENTS, self.redis.finish()));
        }
        if !self.conn_stats.is_empty() {
            batches.push((CONN_STATS, self.conn_stats.finish()));
        }
        batches
    }
}
