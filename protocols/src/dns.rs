//! DNS: message parsing (RFC 1035 with name compression), JSON for the
//! `dns_events` columns, an incremental decoder for DNS over TCP (2-byte
//! length framing) and a bounded matcher pairing queries with responses.
//!
//! Over UDP the caller hands whole datagrams to [`parse_message`]; over TCP
//! it feeds the stream to a [`DnsTcpDecoder`] like the HTTP decoder. Both
//! kinds of messages go to a [`DnsMatcher`] keyed by the caller (e.g. by
//! connection or by client address and port) and by transaction id.

pub(crate) mod detect;
mod matcher;
mod parse;
mod tcp;

use std::fmt::{self, Write};

pub use matcher::{DnsExchange, DnsMatcher, Evicted};
pub use parse::parse_message;
pub use tcp::{DnsTcpDecoder, find_message_start};

pub(crate) use detect::{datagram_kind, tcp_verdict};

use crate::text::push_json_str;

/// Caps of the parser.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Questions kept (the rest are parsed and dropped). Default 8.
    pub max_questions: usize,
    /// Answer records kept (the rest are not parsed). Default 32.
    pub max_answers: usize,
    /// Longest rendered record data, in bytes (longer ends in "...").
    /// Default 256.
    pub max_data_len: usize,
    /// Largest DNS-over-TCP message accepted (the caller holds up to this
    /// many bytes of an incomplete message). Default 65535.
    pub max_tcp_message_len: usize,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            max_questions: 8,
            max_answers: 32,
            max_data_len: 256,
            max_tcp_message_len: 65535,
        }
    }
}

/// Why a message could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// The message ends inside the header or the question section.
    Truncated,
    /// A label type other than a plain label or a pointer (0x40, 0x80).
    InvalidLabel,
    /// A name longer than 255 bytes.
    NameTooLong,
    /// A compression pointer that does not point strictly before the
    /// previous one (which is how loops are made), or too many pointers.
    CompressionLoop,
    /// A TCP length prefix below the 12-byte header size.
    InvalidLength,
    /// A TCP message larger than `max_tcp_message_len`.
    TooLarge,
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DnsError::Truncated => "DNS message truncated",
            DnsError::InvalidLabel => "invalid DNS label type",
            DnsError::NameTooLong => "DNS name too long",
            DnsError::CompressionLoop => "DNS name compression loop",
            DnsError::InvalidLength => "DNS TCP length below header size",
            DnsError::TooLarge => "DNS TCP message too large",
        })
    }
}

impl std::error::Error for DnsError {}

/// Header flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DnsFlags {
    pub aa: bool,
    pub tc: bool,
    pub rd: bool,
    pub ra: bool,
    pub ad: bool,
    pub cd: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsQuestion {
    /// Dotted name without the final dot ("." for the root); bytes other
    /// than letters, digits and printable punctuation as `\DDD`.
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub name: String,
    pub rtype: u16,
    pub class: u16,
    pub ttl: u32,
    /// A and AAAA: the address; CNAME, NS, PTR, DNAME: the name; MX:
    /// "preference host"; TXT: the quoted strings joined by spaces; SRV:
    /// "priority weight port target"; SOA: "mname rname serial refresh
    /// retry expire minimum"; anything else (or malformed data): hex.
    pub data: String,
}

impl crate::held::HeapSize for DnsMessage {
    fn heap_size(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.questions.capacity() * std::mem::size_of::<DnsQuestion>()
            + self
                .questions
                .iter()
                .map(|q| q.name.capacity())
                .sum::<usize>()
            + self.answers.capacity() * std::mem::size_of::<DnsRecord>()
            + self
                .answers
                .iter()
                .map(|a| a.name.capacity() + a.data.capacity())
                .sum::<usize>()
    }
}

/// A parsed message. Authority and additional records are counted, not
/// parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsMessage {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub flags: DnsFlags,
    /// Counts from the header.
    pub question_count: u16,
    pub answer_count: u16,
    pub authority_count: u16,
    pub additional_count: u16,
    /// The first `max_questions` questions.
    pub questions: Vec<DnsQuestion>,
    /// The first `max_answers` answers (fewer if `partial`).
    pub answers: Vec<DnsRecord>,
    /// The message ended inside the answer section (e.g. a datagram copy cut
    /// short): `answers` holds the records that were complete.
    pub partial: bool,
}

/// The header fields of a message (what `dns_events.req_header` and
/// `resp_header` show).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DnsHeader {
    pub id: u16,
    pub is_response: bool,
    pub opcode: u8,
    pub rcode: u8,
    pub flags: DnsFlags,
    pub question_count: u16,
    pub answer_count: u16,
    pub authority_count: u16,
    pub additional_count: u16,
}

impl DnsHeader {
    /// `{"txid":..,"qr":0|1,"opcode":..,"aa":..,"tc":..,"rd":..,"ra":..,
    /// "ad":..,"cd":..,"rcode":..,"num_queries":..,"num_answers":..,
    /// "num_auth":..,"num_addl":..}` (counts from the header).
    pub fn write_json(&self, out: &mut impl Write) {
        let f = &self.flags;
        let b = u8::from;
        let _ = write!(
            out,
            "{{\"txid\":{},\"qr\":{},\"opcode\":{},\"aa\":{},\"tc\":{},\"rd\":{},\"ra\":{},\"ad\":{},\"cd\":{},\"rcode\":{},\"num_queries\":{},\"num_answers\":{},\"num_auth\":{},\"num_addl\":{}}}",
            self.id,
            b(self.is_response),
            self.opcode,
            b(f.aa),
            b(f.tc),
            b(f.rd),
            b(f.ra),
            b(f.ad),
            b(f.cd),
            self.rcode,
            self.question_count,
            self.answer_count,
            self.authority_count,
            self.additional_count,
        );
    }
}

/// `{"queries":[{"name":"example.com","type":"A"}]}`
pub fn write_questions_json(questions: &[DnsQuestion], out: &mut impl Write) {
    let _ = out.write_str("{\"queries\":[");
    for (i, q) in questions.iter().enumerate() {
        if i > 0 {
            let _ = out.write_char(',');
        }
        let _ = out.write_str("{\"name\":");
        push_json_str(out, &q.name);
        let _ = out.write_str(",\"type\":");
        push_json_str(out, &type_label(q.qtype));
        let _ = out.write_char('}');
    }
    let _ = out.write_str("]}");
}

/// `{"answers":[{"name":"example.com","type":"A","ttl":300,"data":"93.184.216.34"}]}`
pub fn write_answers_json(answers: &[DnsRecord], out: &mut impl Write) {
    let _ = out.write_str("{\"answers\":[");
    for (i, r) in answers.iter().enumerate() {
        if i > 0 {
            let _ = out.write_char(',');
        }
        let _ = out.write_str("{\"name\":");
        push_json_str(out, &r.name);
        let _ = out.write_str(",\"type\":");
        push_json_str(out, &type_label(r.rtype));
        let _ = write!(out, ",\"ttl\":{},\"data\":", r.ttl);
        push_json_str(out, &r.data);
        let _ = out.write_char('}');
    }
    let _ = out.write_str("]}");
}

impl DnsMessage {
    pub fn header(&self) -> DnsHeader {
        DnsHeader {
            id: self.id,
            is_response: self.is_response,
            opcode: self.opcode,
            rcode: self.rcode,
            flags: self.flags,
            question_count: self.question_count,
            answer_count: self.answer_count,
            authority_count: self.authority_count,
            additional_count: self.additional_count,
        }
    }

    /// [`DnsHeader::write_json`] as a string.
    pub fn header_json(&self) -> String {
        let mut out = String::new();
        self.header().write_json(&mut out);
        out
    }

    /// [`write_questions_json`] of this message's questions.
    pub fn questions_json(&self) -> String {
        let mut out = String::new();
        write_questions_json(&self.questions, &mut out);
        out
    }

    /// [`write_answers_json`] of this message's answers.
    pub fn answers_json(&self) -> String {
        let mut out = String::new();
        write_answers_json(&self.answers, &mut out);
        out
    }

    /// Mnemonic of a record type ("A", "AAAA", ...), "UNKNOWN" for others.
    pub fn type_name(t: u16) -> &'static str {
        match t {
            1 => "A",
            2 => "NS",
            5 => "CNAME",
            6 => "SOA",
            12 => "PTR",
            13 => "HINFO",
            15 => "MX",
            16 => "TXT",
            28 => "AAAA",
            33 => "SRV",
            35 => "NAPTR",
            39 => "DNAME",
            41 => "OPT",
            43 => "DS",
            46 => "RRSIG",
            47 => "NSEC",
            48 => "DNSKEY",
            50 => "NSEC3",
            52 => "TLSA",
            64 => "SVCB",
            65 => "HTTPS",
            99 => "SPF",
            251 => "IXFR",
            252 => "AXFR",
            255 => "ANY",
            257 => "CAA",
            _ => "UNKNOWN",
        }
    }
}

/// [`DnsMessage::type_name`], or "TYPE<n>" (RFC 3597) for unknown types.
pub fn type_label(t: u16) -> String {
    match DnsMessage::type_name(t) {
        "UNKNOWN" => format!("TYPE{t}"),
        name => name.to_owned(),
    }
}
