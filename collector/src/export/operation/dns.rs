//! DNS rows as operations: `DNS A`, the question, the answers, the rcode.

use opentelemetry::KeyValue;
use sonde_protocols::dns::type_label;
use sonde_query::records::DnsRow;

use super::{Exchange, Histogram, Operation, Role, SeriesInputs};

impl Exchange for DnsRow {
    fn latency_ns(&self) -> i64 {
        self.latency
    }

    fn describe(&self, op: &mut Operation) -> Option<()> {
        describe(self, op);
        Some(())
    }

    /// The first question's name and the response code (the error type).
    fn series_inputs(&self) -> Option<SeriesInputs<'_>> {
        Some(SeriesInputs::new(
            &self.conn,
            [
                self.req_body.first().map(|q| q.name.as_str()),
                None,
                None,
                None,
            ],
            [i64::from(self.resp_header.rcode), 0, 0, 0, 0],
        ))
    }
}

fn describe(row: &DnsRow, op: &mut Operation) {
    let question = row.req_body.first();
    let name = question.map_or("", |q| q.name.as_str());
    let qtype = question.map(|q| type_label(q.qtype)).unwrap_or_default();
    let qtype = qtype.as_str();
    let rcode = u64::from(row.resp_header.rcode);
    let answer_data: Vec<opentelemetry::StringValue> = row
        .resp_body
        .iter()
        .take(32)
        .map(|a| a.data.clone().into())
        .collect();
    op.name = if qtype.is_empty() {
        "DNS".to_string()
    } else {
        format!("DNS {qtype}")
    };
    op.attributes
        .push(KeyValue::new("dns.question.name", name.to_string()));
    if !qtype.is_empty() {
        op.attributes
            .push(KeyValue::new("dns.question.type", qtype.to_string()));
    }
    op.attributes.push(KeyValue::new(
        "dns.answers",
        opentelemetry::Value::Array(opentelemetry::Array::String(answer_data)),
    ));
    if rcode != 0 {
        op.error = Some(rcode_name(rcode).to_string());
    }
    if op.role == Role::Client {
        op.metric = Some((
            Histogram::DnsLookup,
            vec![KeyValue::new("dns.question.name", name.to_string())],
        ));
    }
}

fn rcode_name(rcode: u64) -> &'static str {
    match rcode {
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "rcode_other",
    }
}
