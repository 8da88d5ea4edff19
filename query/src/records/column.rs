//! The values a protocol table column holds, and how each is written into
//! its Arrow builder. Typed protocol values (header lists, DNS sections,
//! Redis arguments) are rendered straight into the column's buffer: no
//! intermediate string, and the typed value stays available to the exporter.

use std::fmt::Write;

use arrayvec::ArrayVec;
use arrow::array::{ArrayBuilder, BooleanBuilder, Int64Builder, StringBuilder};
use arrow::datatypes::DataType;
use sonde_protocols::Headers;
use sonde_protocols::dns::{
    DnsHeader, DnsQuestion, DnsRecord, write_answers_json, write_questions_json,
};
use sonde_protocols::mysql::MysqlStatus;
use sonde_protocols::redis::write_args_json;

use super::builder_room::FinishKeepingRoom;

/// A value type a protocol table column can hold after the common columns.
pub trait ColumnValue {
    type Builder: Default + FinishKeepingRoom;
    fn data_type() -> DataType;
    /// Whether the column may hold nulls (the `Option` values).
    const NULLABLE: bool = false;
    /// Appends the value; returns the bytes it adds (values and offsets),
    /// for the store's approximate accounting.
    fn append_to(&self, builder: &mut Self::Builder) -> usize;
}

/// Bytes of an offset entry in a Utf8 column.
const OFFSET_BYTES: usize = 4;

/// Runs `write` into the builder's current value and finishes the value.
fn append_written(builder: &mut StringBuilder, write: impl FnOnce(&mut StringBuilder)) -> usize {
    let before = builder.values_slice().len();
    write(builder);
    builder.append_value("");
    builder.values_slice().len() - before + OFFSET_BYTES
}

impl ColumnValue for String {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        builder.append_value(self);
        self.len() + OFFSET_BYTES
    }
}

impl ColumnValue for compact_str::CompactString {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        builder.append_value(self);
        self.len() + OFFSET_BYTES
    }
}

impl ColumnValue for &'static str {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        builder.append_value(self);
        self.len() + OFFSET_BYTES
    }
}

impl ColumnValue for i64 {
    type Builder = Int64Builder;
    fn data_type() -> DataType {
        DataType::Int64
    }
    fn append_to(&self, builder: &mut Int64Builder) -> usize {
        builder.append_value(*self);
        8
    }
}

impl ColumnValue for bool {
    type Builder = BooleanBuilder;
    fn data_type() -> DataType {
        DataType::Boolean
    }
    fn append_to(&self, builder: &mut BooleanBuilder) -> usize {
        builder.append_value(*self);
        1
    }
}

impl ColumnValue for Option<String> {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    const NULLABLE: bool = true;
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        builder.append_option(self.as_deref());
        self.as_ref().map_or(0, String::len) + OFFSET_BYTES
    }
}

impl ColumnValue for Option<i64> {
    type Builder = Int64Builder;
    fn data_type() -> DataType {
        DataType::Int64
    }
    const NULLABLE: bool = true;
    fn append_to(&self, builder: &mut Int64Builder) -> usize {
        builder.append_option(*self);
        8
    }
}

/// Bytes captured from the wire (a body prefix), stored as lossy UTF-8 text.
impl ColumnValue for Vec<u8> {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        match std::str::from_utf8(self) {
            Ok(text) => {
                builder.append_value(text);
                text.len() + OFFSET_BYTES
            }
            Err(_) => {
                let text = String::from_utf8_lossy(self);
                builder.append_value(&text);
                text.len() + OFFSET_BYTES
            }
        }
    }
}

/// Header fields in wire order (names as sent, values redacted), stored as
/// a JSON object keyed by name. A name that occurs more than once (compared
/// exactly, as received) gets its values joined with ", " in wire order —
/// the combination RFC 9110 §5.3 defines, so no value is lost. Keys are
/// sorted bytewise, making the text deterministic.
impl ColumnValue for Headers {
    type Builder = HeadersJsonBuilder;
    fn data_type() -> DataType {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    }
    fn append_to(&self, builder: &mut HeadersJsonBuilder) -> usize {
        builder.append(self)
    }
}

/// The builder of a header list column: a dictionary whose values are the
/// JSON texts, keyed per row. A list equal to the previous row's is not
/// written again: its row takes the same key. Consecutive rows often carry
/// the very same fields (the client row and the server row of one
/// exchange on this host, a client's repeated requests, a service's
/// responses within one second), and comparing two lists costs a fraction
/// of sorting and writing one, in time and in store bytes. Other repeats
/// get a value each (a dictionary may list a text twice).
#[derive(Debug, Default)]
pub struct HeadersJsonBuilder {
    /// Per row, the index of its JSON in `values`.
    keys: Vec<i32>,
    values: StringBuilder,
    /// The list whose JSON is the last of `values`, if it is remembered.
    last: Option<Headers>,
}

/// Header lists with more text are not remembered (bounds what a column
/// keeps beside its rows; real lists are far shorter).
const REMEMBERED_HEADERS_TEXT_BYTES: usize = 4096;

/// Bytes of a row's key in a dictionary column.
const KEY_BYTES: usize = 4;

impl HeadersJsonBuilder {
    /// Appends `headers`' row; returns the bytes it adds (key, and the
    /// value and its offset when it is new).
    fn append(&mut self, headers: &Headers) -> usize {
        let mut added = KEY_BYTES;
        if self.last.as_ref() != Some(headers) {
            added += append_written(&mut self.values, |out| write_headers_json(headers, out));
            if headers.text_len() <= REMEMBERED_HEADERS_TEXT_BYTES {
                // Reuses the remembered list's two buffers.
                self.last.get_or_insert_default().clone_from(headers);
            } else {
                self.last = None;
            }
        }
        // The ring reader flushes every 8 192 rows: a batch never nears
        // 2^31 values.
        let key = i32::try_from(self.values.len().saturating_sub(1)).unwrap_or(i32::MAX);
        self.keys.push(key);
        added
    }
}

impl FinishKeepingRoom for HeadersJsonBuilder {
    fn finish_keeping_room(&mut self) -> arrow::array::ArrayRef {
        let rows = self.keys.len().min(super::builder_room::MAX_KEPT_ROWS);
        let keys = std::mem::replace(&mut self.keys, Vec::with_capacity(rows));
        let values = self.values.finish_keeping_room();
        // The next batch's dictionary starts empty.
        self.last = None;
        std::sync::Arc::new(
            arrow::array::DictionaryArray::<arrow::datatypes::Int32Type>::try_new(
                arrow::array::Int32Array::from(keys),
                values,
            )
            .expect("every key indexes a value of the batch"),
        )
    }
}

/// [`ColumnValue`] of a header list as a string (tests, tools).
pub fn headers_to_json(headers: &Headers) -> String {
    let mut out = String::new();
    write_headers_json(headers, &mut out);
    out
}

/// Header lists up to this long are sorted on the stack (one row of a busy
/// table must not cost an allocation for it).
const HEADERS_SORTED_ON_STACK: usize = 32;

fn write_headers_json(headers: &Headers, out: &mut impl Write) {
    // Names and values almost never need escaping: one scan over all of
    // their text decides for the whole list, so each field is then a plain
    // copy (a scan per field cost more than the copies on short fields).
    let escaped = needs_json_escape(headers.text().as_bytes());
    if headers.len() <= HEADERS_SORTED_ON_STACK {
        // Only the slots in use are written (a zeroed 32-slot array cost
        // more than the sort), and in place: `collect()` builds the 1 KiB
        // array and then moves it, a copy per row that showed in profiles.
        let mut fields: ArrayVec<SortedField<'_>, HEADERS_SORTED_ON_STACK> = ArrayVec::new();
        for field in headers.iter() {
            let _ = fields.try_push(SortedField::new(field));
        }
        write_sorted_fields_json(&mut fields, escaped, out);
    } else {
        let mut fields: Vec<SortedField<'_>> = headers.iter().map(SortedField::new).collect();
        write_sorted_fields_json(&mut fields, escaped, out);
    }
}

/// A header field with the first eight bytes of its name as a big-endian
/// integer (zero-padded), so most comparisons of the sort are one integer
/// comparison rather than a `memcmp` call. Same order as comparing the
/// names bytewise: where two prefixes differ, the first differing byte
/// decides, and a name that ends first pads with zeros, ordering before.
struct SortedField<'a> {
    prefix: u64,
    name: &'a str,
    value: &'a str,
}

impl<'a> SortedField<'a> {
    fn new((name, value): (&'a str, &'a str)) -> Self {
        // One load for a long name; shifts for a short one (copying it into
        // a zeroed array became a `memcpy` call whose byte stores the 8-byte
        // load then stalled on: half of this function's time).
        let bytes = name.as_bytes();
        let prefix = match bytes.first_chunk::<8>() {
            Some(head) => u64::from_be_bytes(*head),
            None => bytes
                .iter()
                .zip((0..8).rev())
                .fold(0, |prefix, (&byte, place)| {
                    prefix | u64::from(byte) << (8 * place)
                }),
        };
        Self {
            prefix,
            name,
            value,
        }
    }

    fn order(&self, other: &Self) -> std::cmp::Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then_with(|| self.name.cmp(other.name))
    }
}

/// `escaped`: some name or value holds a byte JSON must escape; when
/// false, each is copied as it is.
fn write_sorted_fields_json<W: Write>(fields: &mut [SortedField<'_>], escaped: bool, out: &mut W) {
    // Stable: fields of the same name stay in wire order.
    fields.sort_by(SortedField::order);
    let write_text = |text: &str, out: &mut W| {
        if escaped {
            write_json_str_content(text, out);
        } else {
            let _ = out.write_str(text);
        }
    };
    // Each punctuation run is one write (every write is a bounds check and
    // a copy into the column).
    let mut previous: Option<&str> = None;
    for field in fields.iter() {
        if previous == Some(field.name) {
            let _ = out.write_str(", ");
        } else {
            let _ = out.write_str(if previous.is_some() { "\",\"" } else { "{\"" });
            write_text(field.name, out);
            let _ = out.write_str("\":\"");
        }
        write_text(field.value, out);
        previous = Some(field.name);
    }
    let _ = out.write_str(if previous.is_some() { "\"}" } else { "{}" });
}

/// A JSON string literal, escaped as serde_json does.
pub fn write_json_str(s: &str, out: &mut impl Write) {
    let _ = out.write_char('"');
    write_json_str_content(s, out);
    let _ = out.write_char('"');
}

fn write_json_str_content(s: &str, out: &mut impl Write) {
    // Header values and names almost never need escaping: one pass the
    // compiler vectorises decides, and the text is written at once.
    if !needs_json_escape(s.as_bytes()) {
        let _ = out.write_str(s);
        return;
    }
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        let _ = out.write_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            let _ = out.write_str(escape);
        }
        start = i + 1;
    }
    let _ = out.write_str(s.get(start..).unwrap_or_default());
}

/// Any byte JSON strings must escape (`"`, `\\`, control characters)?
/// Deliberately without an early exit, so the loop vectorises.
fn needs_json_escape(bytes: &[u8]) -> bool {
    bytes.iter().fold(false, |found, &b| {
        found | (b < 0x20) | (b == b'"') | (b == b'\\')
    })
}

/// A DNS message header, as `{"txid":..,"qr":..,...}`.
impl ColumnValue for DnsHeader {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        append_written(builder, |out| self.write_json(out))
    }
}

/// A query's questions, as `{"queries":[{"name","type"}]}`.
impl ColumnValue for Vec<DnsQuestion> {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        append_written(builder, |out| write_questions_json(self, out))
    }
}

/// A response's answers, as `{"answers":[{"name","type","ttl","data"}]}`.
impl ColumnValue for Vec<DnsRecord> {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        append_written(builder, |out| write_answers_json(self, out))
    }
}

/// `redis_events.req_args`: a command's arguments, or what a push carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisArgs {
    /// Arguments after the (sub)command (secrets redacted); `omitted` more
    /// were on the wire but not kept.
    Command { args: Vec<String>, omitted: u64 },
    /// A server push: its kind ("message", "invalidate", ...) and channel.
    Push {
        kind: String,
        channel: Option<String>,
    },
}

/// As a JSON array: the arguments (`"... N more"` last when some were
/// omitted), or `[kind, channel]` (`null` without a channel) for a push.
impl ColumnValue for RedisArgs {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        append_written(builder, |out| match self {
            RedisArgs::Command { args, omitted } => write_args_json(args, *omitted, out),
            RedisArgs::Push { kind, channel } => {
                let _ = out.write_char('[');
                write_json_str(kind, out);
                let _ = out.write_char(',');
                match channel {
                    Some(channel) => write_json_str(channel, out),
                    None => {
                        let _ = out.write_str("null");
                    }
                }
                let _ = out.write_char(']');
            }
        })
    }
}

/// `OK`, `ERR`, `RESULTSET` or `NONE`.
impl ColumnValue for MysqlStatus {
    type Builder = StringBuilder;
    fn data_type() -> DataType {
        DataType::Utf8
    }
    fn append_to(&self, builder: &mut StringBuilder) -> usize {
        let text = match self {
            MysqlStatus::Ok => "OK",
            MysqlStatus::Err => "ERR",
            MysqlStatus::ResultSet => "RESULTSET",
            MysqlStatus::None => "NONE",
        };
        builder.append_value(text);
        text.len() + OFFSET_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    #[test]
    fn headers_json_joins_repeats_and_sorts() {
        let headers: Headers = [("b", "1"), ("a", "\"q\""), ("b", "2")]
            .into_iter()
            .collect();
        assert_eq!(headers_to_json(&headers), r#"{"a":"\"q\"","b":"1, 2"}"#);
        assert_eq!(headers_to_json(&Headers::new()), "{}");
    }

    /// The values of a finished header column, in row order, and how many
    /// texts its dictionary holds.
    fn finished_values(builder: &mut HeadersJsonBuilder) -> (Vec<String>, usize) {
        let array = builder.finish_keeping_room();
        let dictionary = array.as_dictionary::<arrow::datatypes::Int32Type>();
        let texts = dictionary.values().len();
        let strings = arrow::compute::cast(&array, &DataType::Utf8).unwrap();
        let rows = strings.as_string::<i32>().iter();
        (rows.map(|v| v.unwrap().to_string()).collect(), texts)
    }

    #[test]
    fn a_header_column_writes_each_list_as_its_own_json_whatever_came_before() {
        let list = |fields: &[(&str, &str)]| -> Headers { fields.iter().copied().collect() };
        let a = list(&[("server", "nginx"), ("content-length", "5")]);
        // The same text as `a`, split into other fields: not the same list.
        let a_split_otherwise = list(&[("servernginx", ""), ("content-", "length5")]);
        let b = list(&[("host", "h")]);
        let long_value = "v".repeat(REMEMBERED_HEADERS_TEXT_BYTES);
        let large = list(&[("x-large", &long_value)]);
        let lists = [
            a.clone(),
            a.clone(),
            a_split_otherwise,
            a.clone(),
            b,
            Headers::new(),
            Headers::new(),
            large.clone(),
            large,
            a.clone(),
        ];
        let mut builder = HeadersJsonBuilder::default();
        let mut added = 0;
        for headers in &lists {
            added += headers.append_to(&mut builder);
        }
        let expected: Vec<String> = lists.iter().map(headers_to_json).collect();
        // Written once per run of equal lists (the large one each time).
        let written = [0, 2, 3, 4, 5, 7, 8, 9];
        assert_eq!(
            finished_values(&mut builder),
            (expected.clone(), written.len())
        );
        assert_eq!(
            added,
            KEY_BYTES * lists.len()
                + written
                    .iter()
                    .map(|&i| expected[i].len() + OFFSET_BYTES)
                    .sum::<usize>()
        );
        // The next batch has a dictionary of its own.
        a.append_to(&mut builder);
        a.append_to(&mut builder);
        let json = headers_to_json(&a);
        assert_eq!(finished_values(&mut builder), (vec![json.clone(), json], 1));
        assert_eq!(finished_values(&mut builder), (vec![], 0));
    }

    #[test]
    fn header_names_sort_bytewise() {
        // Names that share, end within or run past the 8-byte prefix the
        // sort compares first, and a NUL (which equals the prefix's padding).
        let names = [
            "content-type",
            "content-length",
            "content",
            "Content-Type",
            "a",
            "a\u{0}",
            "a\u{0}b",
            "ab",
            "x-forwarded-for",
            "x-forwarded-fo",
            "x-forwarded-form",
            "é",
            "",
        ];
        let headers: Headers = names.iter().map(|&name| (name, "v")).collect();
        let mut sorted = names.to_vec();
        sorted.sort();
        let expected: Vec<String> = sorted
            .iter()
            .map(|name| format!("{}:\"v\"", serde_json::to_string(name).unwrap()))
            .collect();
        assert_eq!(
            headers_to_json(&headers),
            format!("{{{}}}", expected.join(","))
        );
    }

    #[test]
    fn long_header_lists_render_like_short_ones() {
        // Past the on-stack sort: same rendering rules.
        let names: Vec<String> = (0..HEADERS_SORTED_ON_STACK + 8)
            .map(|i| format!("x-{:02}", (i * 7) % 20))
            .collect();
        let headers: Headers = names
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), if i % 2 == 0 { "a" } else { "b" }))
            .collect();
        let mut expected = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            let value = if i % 2 == 0 { "a" } else { "b" };
            expected
                .entry(name.clone())
                .and_modify(|v| *v = format!("{}, {value}", v.as_str().unwrap()).into())
                .or_insert_with(|| value.into());
        }
        assert_eq!(
            headers_to_json(&headers),
            serde_json::Value::Object(expected).to_string()
        );
    }

    #[test]
    fn json_strings_escape_as_serde_json_does() {
        for text in [
            "plain",
            "quote \" and \\ backslash",
            "controls \u{1} \u{8} \u{c} \n \r \t \u{1f}",
            "del \u{7f} and unicode é ✓",
            "",
        ] {
            let mut ours = String::new();
            write_json_str(text, &mut ours);
            assert_eq!(ours, serde_json::to_string(text).unwrap(), "{text:?}");
        }
        let headers: Headers = [("X-B", "v\u{1}"), ("X-A", "é"), ("X-B", "w")]
            .into_iter()
            .collect();
        let mut object = serde_json::Map::new();
        object.insert("X-A".into(), "é".into());
        object.insert("X-B".into(), "v\u{1}, w".into());
        assert_eq!(
            headers_to_json(&headers),
            serde_json::Value::Object(object).to_string()
        );
        // Only a name needs escaping: the plain values around it are
        // written on the same escaping path, unchanged.
        let headers: Headers = [("b", "2"), ("a\"\\", "1")].into_iter().collect();
        assert_eq!(headers_to_json(&headers), r#"{"a\"\\":"1","b":"2"}"#);
    }

    #[test]
    fn written_values_finish_one_row_each() {
        let mut builder = StringBuilder::new();
        let args = RedisArgs::Push {
            kind: "message".into(),
            channel: None,
        };
        let bytes = args.append_to(&mut builder);
        RedisArgs::Command {
            args: vec!["k".into()],
            omitted: 2,
        }
        .append_to(&mut builder);
        let array = builder.finish();
        assert_eq!(array.value(0), r#"["message",null]"#);
        assert_eq!(bytes, array.value(0).len() + OFFSET_BYTES);
        assert_eq!(array.value(1), r#"["k","... 2 more"]"#);
    }
}
