//! The connection identity shared by every protocol table (the columns of
//! [`crate::schema::common_fields`]) and a builder for them.

use std::collections::HashMap;
use std::sync::Arc;

use super::builder_room::FinishKeepingRoom;

use arrow::array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, Int32Array, Int64Array, StringArray,
    TimestampNanosecondBuilder, UInt32Array,
};
use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Int32Type};

/// Which side of the connection the traced process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceRole {
    Client,
    Server,
    Unknown,
}

impl TraceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TraceRole::Client => "client",
            TraceRole::Server => "server",
            TraceRole::Unknown => "unknown",
        }
    }
}

/// Kubernetes identity of the traced process and of its peer; all `None`
/// outside Kubernetes (the columns are null, never errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct K8sFields {
    pub pod: Option<String>,
    pub namespace: Option<String>,
    pub container: Option<String>,
    pub node: Option<String>,
    /// `namespace/name` of a service selecting this pod.
    pub service: Option<String>,
    /// `namespace/name` of the pod at `remote_addr`, when known.
    pub remote_pod: Option<String>,
    /// `namespace/name` of the service at `remote_addr` (cluster IP or endpoint).
    pub remote_service: Option<String>,
}

impl K8sFields {
    /// The values in `K8S_COLUMNS` order.
    pub fn values(&self) -> [Option<&str>; K8S_COLUMN_COUNT] {
        [
            self.pod.as_deref(),
            self.namespace.as_deref(),
            self.container.as_deref(),
            self.node.as_deref(),
            self.service.as_deref(),
            self.remote_pod.as_deref(),
            self.remote_service.as_deref(),
        ]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConnFields {
    /// `pid:start_time`, unique across pid reuse.
    pub upid: String,
    pub pid: u32,
    pub comm: String,
    pub remote_addr: String,
    pub remote_port: i64,
    pub local_addr: String,
    pub local_port: i64,
    pub trace_role: TraceRole,
    pub encrypted: bool,
    pub k8s: K8sFields,
}

/// Bytes per row in the common columns: `time_` 8, the connection's key 4.
/// The per-connection columns are counted once per connection and batch.
const ROW_BYTES: usize = 8 + 4;

/// Bytes of one connection's entry in the batch: its strings, pid 4, two
/// ports 16, encrypted 1, and a 4-byte offset per string column (12).
fn conn_entry_bytes(conn: &ConnFields) -> usize {
    let k8s: usize = conn.k8s.values().iter().flatten().map(|v| v.len()).sum();
    4 + 16
        + 1
        + 12 * 4
        + conn.upid.len()
        + conn.comm.len()
        + conn.remote_addr.len()
        + conn.local_addr.len()
        + conn.trace_role.as_str().len()
        + k8s
}

/// The type of every connection string column: a dictionary of the batch's
/// connections, keyed per row.
pub fn conn_string_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// Builds the common first columns (`time_` … `remote_service`) of any
/// protocol table; protocol builders append their own columns after these.
///
/// A row only records its time and which of the batch's connections it
/// belongs to (every row of a connection shares one `Arc<ConnFields>`). At
/// finish, each string column is a dictionary over the batch's connections
/// with those keys (one keys buffer shared by every such column), and the
/// numeric ones are gathered through them: a connection's strings are
/// copied once per batch, not once per row (appending them per row was 6 %
/// of the capture thread), and stored once per batch.
#[derive(Debug)]
pub struct ConnColumnsBuilder {
    time: TimestampNanosecondBuilder,
    /// Per row, the index of its connection in `conns`.
    keys: Vec<i32>,
    /// The batch's connections, in the order of their first row. Holding
    /// them keeps each address unique within the batch.
    conns: Vec<Arc<ConnFields>>,
    /// A connection's address → its index in `conns`.
    index: HashMap<usize, i32, foldhash::fast::FixedState>,
    /// The last row's connection and index: rows of a connection often
    /// come in runs (a pipelined or a busy connection).
    last: Option<(usize, i32)>,
}

impl Default for ConnColumnsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnColumnsBuilder {
    pub fn new() -> Self {
        Self {
            time: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            keys: Vec::new(),
            conns: Vec::new(),
            index: HashMap::default(),
            last: None,
        }
    }

    /// Appends one row; returns the approximate bytes it added.
    pub fn append(&mut self, time_ns: i64, conn: &Arc<ConnFields>) -> usize {
        self.time.append_value(time_ns);
        let address = Arc::as_ptr(conn) as usize;
        let mut bytes = ROW_BYTES;
        let key = match self.last {
            Some((last, key)) if last == address => key,
            _ => {
                let next = self.conns.len();
                let key = *self.index.entry(address).or_insert_with(|| {
                    // The ring reader flushes every 8 192 rows: a batch
                    // never nears 2^31 connections.
                    i32::try_from(next).unwrap_or(i32::MAX)
                });
                if key as usize == next {
                    self.conns.push(Arc::clone(conn));
                    bytes += conn_entry_bytes(conn);
                }
                self.last = Some((address, key));
                key
            }
        };
        self.keys.push(key);
        bytes
    }

    /// The finished columns in schema order; resets the builder.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        let rows = self.keys.len();
        let keys = ScalarBuffer::<i32>::from(Buffer::from_slice_ref(&self.keys));
        let conns = std::mem::take(&mut self.conns);
        self.keys.clear();
        self.index.clear();
        self.last = None;
        let conn_of = |key: &i32| &conns[*key as usize];
        // A string column from its value per connection: the dictionary
        // over those values, keyed by the rows' shared keys.
        let dictionary = |values: StringArray| -> ArrayRef {
            let nulls = match values.null_count() {
                0 => None,
                n if n == values.len() => Some(NullBuffer::new_null(rows)),
                _ => Some(NullBuffer::from(BooleanBuffer::collect_bool(rows, |row| {
                    values.is_valid(keys[row] as usize)
                }))),
            };
            let keys = Int32Array::new(keys.clone(), nulls);
            Arc::new(
                DictionaryArray::<Int32Type>::try_new(keys, Arc::new(values))
                    .expect("every key indexes the batch's connections"),
            )
        };
        let mut columns: Vec<ArrayRef> = vec![
            self.time.finish_keeping_room(),
            dictionary(conns.iter().map(|c| Some(c.upid.as_str())).collect()),
            Arc::new(UInt32Array::from_iter_values(
                keys.iter().map(|k| conn_of(k).pid),
            )),
            dictionary(conns.iter().map(|c| Some(c.comm.as_str())).collect()),
            dictionary(conns.iter().map(|c| Some(c.remote_addr.as_str())).collect()),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| conn_of(k).remote_port),
            )),
            dictionary(conns.iter().map(|c| Some(c.local_addr.as_str())).collect()),
            Arc::new(Int64Array::from_iter_values(
                keys.iter().map(|k| conn_of(k).local_port),
            )),
            dictionary(conns.iter().map(|c| Some(c.trace_role.as_str())).collect()),
            Arc::new(BooleanArray::new(
                BooleanBuffer::collect_bool(rows, |row| conn_of(&keys[row]).encrypted),
                None,
            )),
        ];
        // In K8S_COLUMNS order; each connection's values listed once.
        let k8s: Vec<[Option<&str>; K8S_COLUMN_COUNT]> =
            conns.iter().map(|c| c.k8s.values()).collect();
        columns.extend(
            (0..K8S_COLUMN_COUNT)
                .map(|column| dictionary(k8s.iter().map(|values| values[column]).collect())),
        );
        columns
    }
}

/// How many Kubernetes columns follow the connection's identity.
const K8S_COLUMN_COUNT: usize = crate::schema::K8S_COLUMNS.len();

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::AsArray;

    fn conn(pid: u32, comm: &str, pod: Option<&str>) -> Arc<ConnFields> {
        Arc::new(ConnFields {
            upid: format!("{pid}:7"),
            pid,
            comm: comm.into(),
            remote_addr: "10.0.0.2".into(),
            remote_port: 443,
            local_addr: "10.0.0.1".into(),
            local_port: 40_000 + i64::from(pid),
            trace_role: TraceRole::Client,
            encrypted: pid.is_multiple_of(2),
            k8s: K8sFields {
                pod: pod.map(str::to_owned),
                ..Default::default()
            },
        })
    }

    fn dictionary(column: &ArrayRef) -> &DictionaryArray<Int32Type> {
        column.as_dictionary::<Int32Type>()
    }

    /// A connection's strings are in the batch once, however many rows it
    /// has; every string column is keyed by the same buffer; the numeric
    /// columns hold each row's connection's values.
    #[test]
    fn a_connection_is_stored_once_per_batch() {
        let curl = conn(1, "curl", None);
        let nginx = conn(2, "nginx", Some("web-0"));
        let mut builder = ConnColumnsBuilder::new();
        for (time, conn) in [(10, &curl), (11, &nginx), (12, &nginx), (13, &curl)] {
            assert!(builder.append(time, conn) >= ROW_BYTES);
        }
        let columns = builder.finish();
        assert_eq!(columns.len(), 17);
        let comm = dictionary(&columns[3]);
        assert_eq!(comm.keys().values().to_vec(), [0, 1, 1, 0]);
        assert_eq!(
            comm.values().as_string::<i32>().iter().collect::<Vec<_>>(),
            [Some("curl"), Some("nginx")]
        );
        let upid = dictionary(&columns[1]);
        assert_eq!(
            upid.keys().values().inner().as_ptr(),
            comm.keys().values().inner().as_ptr(),
            "one keys buffer for every string column"
        );
        assert_eq!(
            columns[2]
                .as_primitive::<arrow::datatypes::UInt32Type>()
                .values()
                .to_vec(),
            [1, 2, 2, 1]
        );
        assert_eq!(
            columns[7]
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec(),
            [40_001, 40_002, 40_002, 40_001]
        );
        assert_eq!(
            columns[9].as_boolean().iter().collect::<Vec<_>>(),
            [Some(false), Some(true), Some(true), Some(false)]
        );
        let pod = dictionary(&columns[10]);
        assert_eq!(
            (0..4).map(|row| pod.is_valid(row)).collect::<Vec<_>>(),
            [false, true, true, false]
        );
        for column in &columns {
            assert_eq!(column.len(), 4);
        }

        // The next batch starts its own dictionary.
        builder.append(20, &nginx);
        let columns = builder.finish();
        let comm = dictionary(&columns[3]);
        assert_eq!(comm.keys().values().to_vec(), [0]);
        assert_eq!(comm.values().len(), 1);
        assert_eq!(builder.finish()[3].len(), 0);
    }
}
