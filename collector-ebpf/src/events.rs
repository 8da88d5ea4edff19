//! `#[repr(C)]` mirrors of `bpf/sonde_events.h` and a safe decoder for the raw
//! ring-buffer records. The sizes and offsets asserted here are the same ones the
//! C header asserts with `_Static_assert`, so the two cannot drift apart silently.

use std::mem::{offset_of, size_of};

/// Constants and struct layouts generated from `bpf/sonde_events.h` at
/// build time (see build.rs).
pub mod generated {
    include!(concat!(env!("OUT_DIR"), "/sonde_events.rs"));
}
use generated as h;

pub const CHUNK_MAX: usize = h::SONDE_CHUNK_MAX as usize;
pub const COMM_LEN: usize = h::SONDE_COMM_LEN as usize;

pub const EV_OPEN: u32 = h::SONDE_EV_OPEN as u32;
pub const EV_DATA: u32 = h::SONDE_EV_DATA as u32;
pub const EV_CLOSE: u32 = h::SONDE_EV_CLOSE as u32;
pub const EV_PROC_EXIT: u32 = h::SONDE_EV_PROC_EXIT as u32;

pub const ROLE_UNKNOWN: u16 = h::SONDE_ROLE_UNKNOWN as u16;
pub const ROLE_CLIENT: u16 = h::SONDE_ROLE_CLIENT as u16;
pub const ROLE_SERVER: u16 = h::SONDE_ROLE_SERVER as u16;

pub const DIR_EGRESS: u8 = h::SONDE_DIR_EGRESS as u8;
pub const DIR_INGRESS: u8 = h::SONDE_DIR_INGRESS as u8;

pub const DATA_LAST: u16 = h::SONDE_DATA_LAST as u16;
/// Plaintext of a TLS library call; positions count the plaintext stream.
pub const DATA_TLS: u16 = h::SONDE_DATA_TLS as u16;

/// `ActiveCall::syscall` of the data syscalls (the kernel's enum sonde_syscall).
/// Slots of the `sonde_seeds` array (`enum sonde_seed_count`).
pub const SEEDS_INSERTED: u32 = h::SONDE_SEEDS_INSERTED as u32;
pub const SEEDS_TAKEN: u32 = h::SONDE_SEEDS_TAKEN as u32;

pub const SYS_READ: u8 = h::SONDE_SYS_READ as u8;
pub const SYS_WRITE: u8 = h::SONDE_SYS_WRITE as u8;
pub const SYS_READV: u8 = h::SONDE_SYS_READV as u8;
pub const SYS_WRITEV: u8 = h::SONDE_SYS_WRITEV as u8;
pub const SYS_RECVFROM: u8 = h::SONDE_SYS_RECVFROM as u8;
pub const SYS_SENDTO: u8 = h::SONDE_SYS_SENDTO as u8;
pub const SYS_RECVMSG: u8 = h::SONDE_SYS_RECVMSG as u8;
pub const SYS_SENDMSG: u8 = h::SONDE_SYS_SENDMSG as u8;
pub const SYS_RECVMMSG: u8 = h::SONDE_SYS_RECVMMSG as u8;
pub const SYS_SENDMMSG: u8 = h::SONDE_SYS_SENDMMSG as u8;

/// `DataEventHeader::syscall` of TLS plaintext (diagnostics only).
pub const SYS_SSL_READ: u8 = h::SONDE_SYS_SSL_READ as u8;
pub const SYS_SSL_WRITE: u8 = h::SONDE_SYS_SSL_WRITE as u8;

/// Linux's values (not Sonde's): the kernel reports them as they are.
pub const AF_INET: u16 = 2;
pub const AF_INET6: u16 = 10;

pub const SOCK_STREAM: u32 = 1;
pub const SOCK_DGRAM: u32 = 2;

/// Kernel-side counters, by index in the `sonde_stats` per-CPU array:
/// (index, counter name, help).
pub const KERNEL_STATS: &[(u32, &str, &str)] = &[
    (
        h::SONDE_STAT_RING_FULL_EVENTS as u32,
        "kernel_ring_full_events",
        "Events lost because the BPF ring buffer was full",
    ),
    (
        h::SONDE_STAT_RING_FULL_BYTES as u32,
        "kernel_ring_full_bytes",
        "Payload bytes in data events lost to a full ring buffer",
    ),
    (
        h::SONDE_STAT_CONN_MAP_FULL as u32,
        "kernel_conn_map_full",
        "Connections not tracked because the kernel connection map was full",
    ),
    (
        h::SONDE_STAT_ACTIVE_MAP_FULL as u32,
        "kernel_active_map_full",
        "Socket syscalls not traced because their arguments could not be stashed (in-flight map full; or no per-thread slot: out of memory, or busy on kernels before 6.2)",
    ),
    (
        h::SONDE_STAT_BYTES_NOT_COPIED as u32,
        "kernel_bytes_not_copied",
        "Payload bytes over the per-call copy cap (accounted by size only)",
    ),
    (
        h::SONDE_STAT_READ_FAILURES as u32,
        "kernel_read_failures",
        "Failed reads of user memory (the bytes become a stream gap)",
    ),
    (
        h::SONDE_STAT_SENDFILE_BYTES as u32,
        "kernel_sendfile_bytes",
        "Bytes sent with sendfile (no user buffer to copy; a gap the parsers skip)",
    ),
    (
        h::SONDE_STAT_MMSG_TRUNCATED as u32,
        "kernel_mmsg_truncated",
        "Messages of sendmmsg/recvmmsg beyond the per-call limit of 8",
    ),
    (
        h::SONDE_STAT_TLS_ACTIVE_MAP_FULL as u32,
        "kernel_tls_active_map_full",
        "TLS library calls not traced because the in-flight TLS call map was full",
    ),
    (
        h::SONDE_STAT_TLS_NO_SOCKET as u32,
        "kernel_tls_no_socket",
        "TLS library calls whose socket could not be found (their plaintext is lost)",
    ),
    (
        h::SONDE_STAT_TLS_FD_FALLBACK as u32,
        "kernel_tls_fd_fallback",
        "TLS library calls without a nested socket syscall, tied to the socket last seen under their SSL object",
    ),
    (
        h::SONDE_STAT_EXEC_RING_FULL as u32,
        "kernel_exec_ring_full",
        "Exec notifications lost (those processes are not scanned for TLS libraries)",
    ),
    (
        h::SONDE_STAT_SEEDS_USED as u32,
        "kernel_seeded_calls_used",
        "Socket syscalls already in flight when the agent started, traced from arguments seeded at start",
    ),
    (
        h::SONDE_STAT_SEEDS_STALE as u32,
        "kernel_seeded_calls_stale",
        "Seeded syscall arguments dropped because the thread had moved on to another call",
    ),
    (
        h::SONDE_STAT_UNCOPIED_BYTES as u32,
        "kernel_uncopied_bytes",
        "Bytes of connections no parser wants (no protocol recognised), accounted by size without copying",
    ),
];
pub const KERNEL_STAT_COUNT: u32 = h::SONDE_STAT_COUNT as u32;
const _: () = assert!(KERNEL_STATS.len() == KERNEL_STAT_COUNT as usize);

/// Field order matters: connections sort by (tgid, fd, ...), so one process's
/// connections, or one fd's generations, are a range.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub tgid: u32,
    pub fd: i32,
    pub proc_start_ns: u64,
    pub generation: u64,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EventHeader {
    pub kind: u32,
    pub cpu: u32,
    pub timestamp_ns: u64,
    pub conn: ConnId,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct OpenEvent {
    pub hdr: EventHeader,
    pub family: u16,
    pub role: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
    pub sock_type: u32,
    pub pad: u32,
    pub comm: [u8; COMM_LEN],
}

/// The peer of one datagram; `family == 0` means "the connection's peer".
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peer {
    pub family: u16,
    pub port: u16,
    pub pad: u32,
    pub addr: [u8; 16],
}

/// The fixed part of a data event; `copied` payload bytes follow it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DataEventHeader {
    pub hdr: EventHeader,
    pub position: u64,
    pub call_end: u64,
    pub copied: u32,
    pub direction: u8,
    pub syscall: u8,
    pub flags: u16,
    pub peer: Peer,
}

/// A process called exec (sent on the separate `sonde_execs` ring buffer).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecEvent {
    pub tgid: u32,
    pub pad: u32,
    pub timestamp_ns: u64,
}

impl ExecEvent {
    /// Decodes one `sonde_execs` record; `None` if it is too short.
    pub fn decode(record: &[u8]) -> Option<Self> {
        read_pod(record)
    }
}

/// Arguments of a socket syscall in flight (the value of the per-thread
/// stash, and of `sonde_active`, keyed by pid_tgid, where userspace writes
/// seeded ones at start).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ActiveCall {
    pub ts_enter: u64,
    pub buf: u64,
    pub count: u64,
    pub addr: u64,
    pub sk: u64,
    pub fd: i32,
    pub syscall: u8,
    pub seeded: u8,
    pub pad: [u8; 2],
}

impl ActiveCall {
    /// The value as the kernel map stores it (six 64-bit words).
    pub fn to_words(&self) -> [u64; 6] {
        let bytes = record_bytes(self, &[]);
        let mut words = [0u64; 6];
        for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(chunk);
            *word = u64::from_ne_bytes(le);
        }
        words
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CloseEvent {
    pub hdr: EventHeader,
    pub bytes_egress: u64,
    pub bytes_ingress: u64,
}

/// Asserts at compile time that a Rust mirror has the C struct's size and
/// every one of its fields at the C offset (the layouts come from the C
/// compiler, see build.rs). `.. before field` mirrors the part of a C struct
/// in front of a trailing field (the data event's payload).
macro_rules! mirrors {
    ($rust:ty = $c:ident { $($field:ident),* $(,)? }) => {
        const _: () = {
            use generated::layout::$c as c;
            assert!(size_of::<$rust>() == c::SIZE);
            assert!([$(stringify!($field)),*].len() == c::FIELDS);
            $(assert!(offset_of!($rust, $field) == c::$field);)*
        };
    };
    ($rust:ty = $c:ident .. before $tail:ident { $($field:ident),* $(,)? }) => {
        const _: () = {
            use generated::layout::$c as c;
            assert!(size_of::<$rust>() == c::$tail);
            assert!([$(stringify!($field)),*].len() + 1 == c::FIELDS);
            $(assert!(offset_of!($rust, $field) == c::$field);)*
        };
    };
}

mirrors!(
    ConnId = sonde_conn_id {
        tgid,
        fd,
        proc_start_ns,
        generation
    }
);
mirrors!(
    EventHeader = sonde_event_header {
        kind,
        cpu,
        timestamp_ns,
        conn
    }
);
mirrors!(
    OpenEvent = sonde_open_event {
        hdr,
        family,
        role,
        local_port,
        remote_port,
        local_addr,
        remote_addr,
        sock_type,
        pad,
        comm,
    }
);
mirrors!(
    Peer = sonde_peer {
        family,
        port,
        pad,
        addr
    }
);
mirrors!(DataEventHeader = sonde_data_event .. before payload {
    hdr, position, call_end, copied, direction, syscall, flags, peer,
});
mirrors!(
    ExecEvent = sonde_exec_event {
        tgid,
        pad,
        timestamp_ns
    }
);
mirrors!(
    CloseEvent = sonde_close_event {
        hdr,
        bytes_egress,
        bytes_ingress
    }
);
const _: () = assert!(size_of::<DataEventHeader>() == h::SONDE_DATA_HEADER_SIZE as usize);

/// Marker for the plain-old-data event structs above: every bit pattern is a
/// valid value (integers and byte arrays only, no padding read as data).
///
/// # Safety
/// Implement only for `#[repr(C)]` structs made of integers and integer arrays.
pub unsafe trait Pod: Copy {}
unsafe impl Pod for EventHeader {}
unsafe impl Pod for OpenEvent {}
unsafe impl Pod for DataEventHeader {}
unsafe impl Pod for CloseEvent {}
unsafe impl Pod for ExecEvent {}
unsafe impl Pod for ActiveCall {}

/// The raw bytes of an event, as the kernel would write them (for tests,
/// benchmarks and replaying recorded streams).
pub fn record_bytes<T: Pod>(value: &T, payload: &[u8]) -> Vec<u8> {
    // SAFETY: T is Pod: plain integers with no padding, so every byte is initialised.
    let head =
        unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) };
    let mut bytes = Vec::with_capacity(head.len() + payload.len());
    bytes.extend_from_slice(head);
    bytes.extend_from_slice(payload);
    bytes
}

/// Ring-buffer records built the way the kernel writes them: for tests,
/// benchmarks and replaying recorded streams.
pub mod build {
    use super::*;

    fn header(kind: u32, conn: ConnId, timestamp_ns: u64) -> EventHeader {
        EventHeader {
            kind,
            cpu: 0,
            timestamp_ns,
            conn,
        }
    }

    /// An IPv4 connection opening, with the process name and both ends.
    pub fn open_ipv4(
        conn: ConnId,
        timestamp_ns: u64,
        role: u16,
        comm: &str,
        local: ([u8; 4], u16),
        remote: ([u8; 4], u16),
    ) -> Vec<u8> {
        let mut comm_bytes = [0u8; COMM_LEN];
        for (dst, src) in comm_bytes.iter_mut().zip(comm.bytes().take(COMM_LEN - 1)) {
            *dst = src;
        }
        let mut local_addr = [0u8; 16];
        local_addr[..4].copy_from_slice(&local.0);
        let mut remote_addr = [0u8; 16];
        remote_addr[..4].copy_from_slice(&remote.0);
        let ev = OpenEvent {
            hdr: header(EV_OPEN, conn, timestamp_ns),
            family: AF_INET,
            role,
            local_port: local.1,
            remote_port: remote.1,
            local_addr,
            remote_addr,
            sock_type: SOCK_STREAM,
            pad: 0,
            comm: comm_bytes,
        };
        record_bytes(&ev, &[])
    }

    /// The last data event of a syscall that moved `call_end - position`
    /// bytes, of which `bytes` were copied (the rest is a gap).
    pub fn data(
        conn: ConnId,
        direction: u8,
        timestamp_ns: u64,
        position: u64,
        bytes: &[u8],
        call_end: u64,
    ) -> Vec<u8> {
        let span = (position, call_end);
        last_data(conn, direction, timestamp_ns, span, bytes, 1, DATA_LAST)
    }

    /// Like [`data`], but the plaintext of a TLS library call
    /// (`DATA_TLS`; positions in the plaintext stream).
    pub fn tls_data(
        conn: ConnId,
        direction: u8,
        timestamp_ns: u64,
        position: u64,
        bytes: &[u8],
        call_end: u64,
    ) -> Vec<u8> {
        let syscall = if direction == DIR_EGRESS {
            SYS_SSL_WRITE
        } else {
            SYS_SSL_READ
        };
        let span = (position, call_end);
        let flags = DATA_LAST | DATA_TLS;
        last_data(conn, direction, timestamp_ns, span, bytes, syscall, flags)
    }

    fn last_data(
        conn: ConnId,
        direction: u8,
        timestamp_ns: u64,
        (position, call_end): (u64, u64),
        bytes: &[u8],
        syscall: u8,
        flags: u16,
    ) -> Vec<u8> {
        let ev = DataEventHeader {
            hdr: header(EV_DATA, conn, timestamp_ns),
            position,
            call_end,
            copied: bytes.len() as u32,
            direction,
            syscall,
            flags,
            peer: Peer::default(),
        };
        record_bytes(&ev, bytes)
    }

    pub fn close(
        conn: ConnId,
        timestamp_ns: u64,
        bytes_egress: u64,
        bytes_ingress: u64,
    ) -> Vec<u8> {
        let ev = CloseEvent {
            hdr: header(EV_CLOSE, conn, timestamp_ns),
            bytes_egress,
            bytes_ingress,
        };
        record_bytes(&ev, &[])
    }

    pub fn proc_exit(tgid: u32, timestamp_ns: u64) -> Vec<u8> {
        let conn = ConnId {
            tgid,
            fd: -1,
            proc_start_ns: 0,
            generation: 0,
        };
        record_bytes(&header(EV_PROC_EXIT, conn, timestamp_ns), &[])
    }
}

/// Reads a `T` from the front of `bytes`, if it is long enough.
fn read_pod<T: Pod>(bytes: &[u8]) -> Option<T> {
    if bytes.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: the length is checked above, `T: Pod` accepts any bit pattern, and
    // read_unaligned has no alignment requirement.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// One decoded ring-buffer record, borrowing the payload.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    Open(OpenEvent),
    Data {
        header: DataEventHeader,
        payload: &'a [u8],
    },
    Close(CloseEvent),
    ProcExit(EventHeader),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is too short for its kind")]
    Truncated { len: usize },
    #[error("unknown event kind {kind}")]
    UnknownKind { kind: u32 },
    #[error("data event claims {copied} payload bytes but carries {available}")]
    BadLength { copied: u32, available: usize },
}

impl<'a> Event<'a> {
    /// Decodes one record; never panics, whatever the bytes.
    pub fn decode(record: &'a [u8]) -> Result<Self, DecodeError> {
        let truncated = DecodeError::Truncated { len: record.len() };
        let header: EventHeader = read_pod(record).ok_or(truncated)?;
        match header.kind {
            EV_OPEN => read_pod(record).map(Event::Open).ok_or(truncated),
            EV_CLOSE => read_pod(record).map(Event::Close).ok_or(truncated),
            EV_PROC_EXIT => Ok(Event::ProcExit(header)),
            EV_DATA => {
                let data: DataEventHeader = read_pod(record).ok_or(truncated)?;
                let available = record.len() - size_of::<DataEventHeader>();
                let payload = record
                    .get(size_of::<DataEventHeader>()..)
                    .and_then(|rest| rest.get(..data.copied as usize))
                    .ok_or(DecodeError::BadLength {
                        copied: data.copied,
                        available,
                    })?;
                Ok(Event::Data {
                    header: data,
                    payload,
                })
            }
            kind => Err(DecodeError::UnknownKind { kind }),
        }
    }
}

/// The process name in an open event (NUL-terminated in the kernel).
pub fn comm_str(comm: &[u8; COMM_LEN]) -> String {
    let end = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(comm.get(..end).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of<T: Pod>(value: &T) -> Vec<u8> {
        record_bytes(value, &[])
    }

    fn header(kind: u32) -> EventHeader {
        EventHeader {
            kind,
            cpu: 1,
            timestamp_ns: 42,
            conn: ConnId {
                tgid: 7,
                fd: 3,
                proc_start_ns: 9,
                generation: 11,
            },
        }
    }

    #[test]
    fn decodes_data_with_payload() {
        let data = DataEventHeader {
            hdr: header(EV_DATA),
            position: 100,
            call_end: 105,
            copied: 5,
            direction: DIR_INGRESS,
            syscall: 1,
            flags: DATA_LAST,
            peer: Peer::default(),
        };
        let mut record = bytes_of(&data);
        record.extend_from_slice(b"hello");
        match Event::decode(&record).unwrap() {
            Event::Data { header, payload } => {
                assert_eq!(header.position, 100);
                assert_eq!(header.hdr.conn.generation, 11);
                assert_eq!(payload, b"hello");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rejects_short_and_lying_records() {
        assert_eq!(
            Event::decode(&[1, 0, 0]).unwrap_err(),
            DecodeError::Truncated { len: 3 }
        );
        let mut data = DataEventHeader {
            hdr: header(EV_DATA),
            position: 0,
            call_end: 10,
            copied: 10,
            direction: DIR_EGRESS,
            syscall: 2,
            flags: 0,
            peer: Peer::default(),
        };
        let record = bytes_of(&data);
        assert_eq!(
            Event::decode(&record).unwrap_err(),
            DecodeError::BadLength {
                copied: 10,
                available: 0
            }
        );
        data.hdr.kind = 99;
        assert_eq!(
            Event::decode(&bytes_of(&data)).unwrap_err(),
            DecodeError::UnknownKind { kind: 99 }
        );
    }

    #[test]
    fn never_panics_on_arbitrary_records() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        for len in 0..400 {
            let record: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = Event::decode(&record);
            let mut typed = record.clone();
            if typed.len() >= 4 {
                typed[..4].copy_from_slice(&EV_DATA.to_ne_bytes());
                let _ = Event::decode(&typed);
            }
        }
    }

    #[test]
    fn decodes_exec_events() {
        let ev = ExecEvent {
            tgid: 77,
            pad: 0,
            timestamp_ns: 5,
        };
        assert_eq!(ExecEvent::decode(&bytes_of(&ev)), Some(ev));
        assert_eq!(ExecEvent::decode(&[1, 2, 3]), None);
    }

    #[test]
    fn tls_data_carries_its_flag() {
        let conn = header(EV_DATA).conn;
        let record = build::tls_data(conn, DIR_INGRESS, 9, 3, b"abc", 6);
        match Event::decode(&record).unwrap() {
            Event::Data { header, payload } => {
                assert_eq!(header.flags, DATA_LAST | DATA_TLS);
                assert_eq!(header.syscall, SYS_SSL_READ);
                assert_eq!((header.position, header.call_end), (3, 6));
                assert_eq!(payload, b"abc");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn objects_are_embedded() {
        for object in [crate::BPF_OBJECT, crate::BPF_OBJECT_COMPAT] {
            assert_eq!(object.get(..4), Some(&b"\x7fELF"[..]));
            assert_eq!(object.as_ptr() as usize % 32, 0);
        }
        assert_ne!(crate::BPF_OBJECT, crate::BPF_OBJECT_COMPAT);
    }

    #[test]
    fn comm_stops_at_nul() {
        let mut comm = [0u8; COMM_LEN];
        comm[..4].copy_from_slice(b"curl");
        assert_eq!(comm_str(&comm), "curl");
        assert_eq!(comm_str(&[b'a'; COMM_LEN]), "aaaaaaaaaaaaaaaa");
    }
}
