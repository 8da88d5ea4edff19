//! Spans from operations: one span per captured exchange, with the caller's
//! trace context when the request carried one, and the resource (service,
//! process, host, Kubernetes) it is exported under.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData, SpanEvents, SpanLinks};

use super::operation::{Operation, Process, Role};

/// What every exported resource gets besides its process's identity.
#[derive(Debug, Clone)]
pub struct ResourceDefaults {
    pub host_name: String,
    /// OTEL_RESOURCE_ATTRIBUTES; never overrides the service or process keys.
    pub extra: Vec<(String, String)>,
}

impl ResourceDefaults {
    /// The resource of a process's spans (with its pid) or of a service's
    /// metrics (without: a pid per series would multiply them).
    pub fn resource(&self, process: &Process, with_pid: bool) -> Resource {
        let mut attrs = vec![
            KeyValue::new("service.name", process.service.clone()),
            KeyValue::new("host.name", self.host_name.clone()),
            KeyValue::new("process.executable.name", process.comm.clone()),
            KeyValue::new("telemetry.distro.name", "sonde"),
            KeyValue::new("telemetry.distro.version", env!("CARGO_PKG_VERSION")),
        ];
        if with_pid {
            attrs.push(KeyValue::new("process.pid", i64::from(process.pid)));
        }
        let k8s = [
            ("k8s.pod.name", &process.pod),
            ("k8s.namespace.name", &process.namespace),
            ("k8s.container.name", &process.container),
            ("k8s.node.name", &process.node),
        ];
        for (key, value) in k8s {
            if let Some(value) = value {
                attrs.push(KeyValue::new(key, value.clone()));
            }
        }
        for (key, value) in &self.extra {
            if !attrs.iter().any(|kv| kv.key.as_str() == key) {
                attrs.push(KeyValue::new(key.clone(), value.clone()));
            }
        }
        Resource::builder_empty().with_attributes(attrs).build()
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("sonde")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn unix_time(ns: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(ns).unwrap_or(0))
}

/// The span of one operation, with the process it is exported under.
/// Without a trace context in the request it starts a new trace.
pub fn span(
    op: Operation,
    ids: &RandomIdGenerator,
    scope: &InstrumentationScope,
) -> (Arc<Process>, SpanData) {
    let (trace_id, parent_span_id, flags, remote) = match op.parent {
        Some(parent) => (parent.trace_id, parent.span_id, parent.flags, true),
        None => (
            ids.new_trace_id(),
            SpanId::INVALID,
            TraceFlags::SAMPLED,
            false,
        ),
    };
    let span_kind = match op.role {
        Role::Client => SpanKind::Client,
        Role::Server => SpanKind::Server,
        Role::Unknown => SpanKind::Internal,
    };
    let status = match op.error {
        Some(error) => Status::error(error),
        None => Status::Unset,
    };
    let data = SpanData {
        span_context: SpanContext::new(
            trace_id,
            ids.new_span_id(),
            flags,
            false,
            TraceState::default(),
        ),
        parent_span_id,
        parent_span_is_remote: remote,
        span_kind,
        name: Cow::Owned(op.name),
        start_time: unix_time(op.start_ns),
        end_time: unix_time(op.end_ns),
        attributes: op.attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    };
    (op.process, data)
}
