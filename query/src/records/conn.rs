//! The connection identity shared by every protocol table (the columns of
//! [`crate::schema::common_fields`]) and a builder for them.

use super::builder_room::FinishKeepingRoom;

use arrow::array::{
    ArrayRef, BooleanBuilder, Int64Builder, StringBuilder, TimestampNanosecondBuilder,
    UInt32Builder,
};

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

/// Fixed-width bytes per row in the common columns: time_ 8, pid 4,
/// two ports 8 each, encrypted ~1, plus a 4-byte offset per string column (5).
const FIXED_ROW_BYTES: usize = 8 + 4 + 8 + 8 + 1 + 5 * 4;

/// Builds the common first columns (`time_` … `encrypted`) of any protocol
/// table; protocol builders append their own columns after these.
#[derive(Debug)]
pub struct ConnColumnsBuilder {
    time: TimestampNanosecondBuilder,
    upid: StringBuilder,
    pid: UInt32Builder,
    comm: StringBuilder,
    remote_addr: StringBuilder,
    remote_port: Int64Builder,
    local_addr: StringBuilder,
    local_port: Int64Builder,
    trace_role: StringBuilder,
    encrypted: BooleanBuilder,
    /// In K8S_COLUMNS order.
    k8s: [StringBuilder; 7],
    /// Per Kubernetes column, the nulls of rows appended since its last
    /// value, not in the builder yet: outside Kubernetes only `node` has a
    /// value, inside one a client's `remote_*` often have none, and one bulk
    /// append per column (before its next value, or at finish) cost less
    /// than a null append per row and column (2 % of the capture thread).
    k8s_pending_nulls: [usize; 7],
}

impl Default for ConnColumnsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

/// Appends a column's deferred nulls. None pending appends nothing: even
/// `append_nulls(0)` would give a column without nulls a validity bitmap.
fn append_pending_nulls(builder: &mut StringBuilder, pending: &mut usize) {
    if *pending > 0 {
        builder.append_nulls(std::mem::take(pending));
    }
}

impl ConnColumnsBuilder {
    pub fn new() -> Self {
        Self {
            time: TimestampNanosecondBuilder::new().with_timezone("UTC"),
            upid: StringBuilder::new(),
            pid: UInt32Builder::new(),
            comm: StringBuilder::new(),
            remote_addr: StringBuilder::new(),
            remote_port: Int64Builder::new(),
            local_addr: StringBuilder::new(),
            local_port: Int64Builder::new(),
            trace_role: StringBuilder::new(),
            encrypted: BooleanBuilder::new(),
            k8s: Default::default(),
            k8s_pending_nulls: [0; 7],
        }
    }

    /// Appends one row; returns the approximate bytes it added.
    pub fn append(&mut self, time_ns: i64, conn: &ConnFields) -> usize {
        self.time.append_value(time_ns);
        self.upid.append_value(&conn.upid);
        self.pid.append_value(conn.pid);
        self.comm.append_value(&conn.comm);
        self.remote_addr.append_value(&conn.remote_addr);
        self.remote_port.append_value(conn.remote_port);
        self.local_addr.append_value(&conn.local_addr);
        self.local_port.append_value(conn.local_port);
        let role = conn.trace_role.as_str();
        self.trace_role.append_value(role);
        self.encrypted.append_value(conn.encrypted);
        let k = &conn.k8s;
        let k8s = [
            &k.pod,
            &k.namespace,
            &k.container,
            &k.node,
            &k.service,
            &k.remote_pod,
            &k.remote_service,
        ];
        let mut k8s_bytes = 4 * k8s.len();
        for ((builder, pending), value) in self
            .k8s
            .iter_mut()
            .zip(&mut self.k8s_pending_nulls)
            .zip(k8s)
        {
            match value {
                None => *pending += 1,
                Some(value) => {
                    append_pending_nulls(builder, pending);
                    builder.append_value(value);
                    k8s_bytes += value.len();
                }
            }
        }
        k8s_bytes
            + FIXED_ROW_BYTES
            + conn.upid.len()
            + conn.comm.len()
            + conn.remote_addr.len()
            + conn.local_addr.len()
            + role.len()
    }

    fn append_k8s_pending_nulls(&mut self) {
        for (builder, pending) in self.k8s.iter_mut().zip(&mut self.k8s_pending_nulls) {
            append_pending_nulls(builder, pending);
        }
    }

    /// The finished columns in schema order; resets the builder.
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.append_k8s_pending_nulls();
        let columns: [ArrayRef; 10] = [
            self.time.finish_keeping_room(),
            self.upid.finish_keeping_room(),
            self.pid.finish_keeping_room(),
            self.comm.finish_keeping_room(),
            self.remote_addr.finish_keeping_room(),
            self.remote_port.finish_keeping_room(),
            self.local_addr.finish_keeping_room(),
            self.local_port.finish_keeping_room(),
            self.trace_role.finish_keeping_room(),
            self.encrypted.finish_keeping_room(),
        ];
        columns
            .into_iter()
            .chain(self.k8s.iter_mut().map(|b| b.finish_keeping_room()))
            .collect()
    }
}
