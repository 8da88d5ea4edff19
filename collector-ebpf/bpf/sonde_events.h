/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * The one definition of what Sonde's kernel programs send to userspace.
 *
 * Every struct here has a #[repr(C)] mirror in collector-ebpf/src/events.rs.
 * Both sides assert the same sizes and field offsets (the _Static_asserts at the
 * bottom of this file and the const asserts in events.rs), so a change on one
 * side that is not made on the other fails the build.
 */
#ifndef SONDE_EVENTS_H
#define SONDE_EVENTS_H

/* Payload bytes carried by one data event. A syscall moving more bytes is split
 * into several events, up to the per-call cap (sonde_max_bytes_per_call). Must be
 * a power of two: the verifier bound on the copy length relies on it. */
#define SONDE_CHUNK_MAX 8192
#define SONDE_COMM_LEN 16

enum sonde_event_kind {
	SONDE_EV_OPEN = 1,
	SONDE_EV_DATA = 2,
	SONDE_EV_CLOSE = 3,
	SONDE_EV_PROC_EXIT = 4,
};

enum sonde_role {
	SONDE_ROLE_UNKNOWN = 0,
	SONDE_ROLE_CLIENT = 1,
	SONDE_ROLE_SERVER = 2,
};

enum sonde_direction {
	SONDE_DIR_EGRESS = 0,  /* the traced process sent these bytes */
	SONDE_DIR_INGRESS = 1, /* the traced process received these bytes */
};

/* Which syscall produced a data event (diagnostics only). */
enum sonde_syscall {
	SONDE_SYS_READ = 1,
	SONDE_SYS_WRITE = 2,
	SONDE_SYS_READV = 3,
	SONDE_SYS_WRITEV = 4,
	SONDE_SYS_RECVFROM = 5,
	SONDE_SYS_SENDTO = 6,
	SONDE_SYS_RECVMSG = 7,
	SONDE_SYS_SENDMSG = 8,
	SONDE_SYS_RECVMMSG = 9,
	SONDE_SYS_SENDMMSG = 10,
	SONDE_SYS_SENDFILE = 11,
	/* Not data syscalls; only used to match an exit to its enter. */
	SONDE_SYS_CONNECT = 12,
	SONDE_SYS_ACCEPT = 13,
	SONDE_SYS_CLOSE = 14,
	/* Plaintext from a TLS library probe (the data event has SONDE_DATA_TLS). */
	SONDE_SYS_SSL_READ = 15,
	SONDE_SYS_SSL_WRITE = 16,
};

/* Data event flags. */
#define SONDE_DATA_LAST 0x1 /* last event of its syscall: [position+copied, call_end) was not copied */
/* Plaintext of a TLS library call (SSL_read/SSL_write...). Its positions count
 * the connection's plaintext stream, apart from the bytes on the wire. */
#define SONDE_DATA_TLS 0x2

/* Kernel-side loss and health counters (a per-CPU array indexed by these). */
enum sonde_stat {
	SONDE_STAT_RING_FULL_EVENTS = 0, /* events lost because the ring buffer was full */
	SONDE_STAT_RING_FULL_BYTES,      /* payload bytes in those lost data events */
	SONDE_STAT_CONN_MAP_FULL,        /* connections not tracked: connection map full */
	SONDE_STAT_ACTIVE_MAP_FULL,      /* syscalls not traced: in-flight syscall map full */
	SONDE_STAT_BYTES_NOT_COPIED,     /* bytes over the per-call cap (accounted by size only) */
	SONDE_STAT_READ_FAILURES,        /* bpf_probe_read_user failures (bytes become a gap) */
	SONDE_STAT_SENDFILE_BYTES,       /* bytes sent by sendfile (no user buffer to copy) */
	SONDE_STAT_MMSG_TRUNCATED,       /* messages of sendmmsg/recvmmsg beyond the per-call limit */
	SONDE_STAT_TLS_ACTIVE_MAP_FULL,  /* TLS calls not traced: in-flight TLS call map full */
	SONDE_STAT_TLS_NO_SOCKET,        /* TLS calls whose socket could not be found (plaintext lost) */
	SONDE_STAT_TLS_FD_FALLBACK,      /* TLS calls tied to their socket by the SSL object (no nested syscall) */
	SONDE_STAT_EXEC_RING_FULL,       /* exec events lost (new processes scanned late or not at all) */
	SONDE_STAT_SEEDS_USED,           /* syscalls in flight at start, traced from their seeded arguments */
	SONDE_STAT_SEEDS_STALE,          /* seeded arguments dropped: the thread had moved on */
	SONDE_STAT_UNCOPIED_BYTES,       /* bytes of connections userspace stopped copying (sizes only) */
	SONDE_STAT_COUNT,
};

struct sonde_conn_id {
	__u32 tgid;
	__s32 fd;
	__u64 proc_start_ns; /* process start, ns since boot (start_boottime, as /proc/PID/stat) */
	__u64 generation;    /* unique per connection: fd or pid reuse never merges two */
};

struct sonde_event_header {
	__u32 kind; /* enum sonde_event_kind */
	__u32 cpu;
	__u64 timestamp_ns; /* CLOCK_MONOTONIC */
	struct sonde_conn_id conn;
};

struct sonde_open_event {
	struct sonde_event_header hdr;
	__u16 family; /* AF_INET or AF_INET6 */
	__u16 role;   /* enum sonde_role */
	__u16 local_port;
	__u16 remote_port;
	__u8 local_addr[16];  /* 4 bytes used for AF_INET */
	__u8 remote_addr[16];
	__u32 sock_type; /* SOCK_STREAM, SOCK_DGRAM */
	__u32 pad;
	char comm[SONDE_COMM_LEN];
};

/* The peer of one datagram (sendto/recvfrom/sendmsg/recvmsg address), so a UDP
 * socket talking to several peers gets each datagram attributed right.
 * family 0: no address given (stream sockets, connected UDP): use the connection's. */
struct sonde_peer {
	__u16 family;
	__u16 port; /* host byte order */
	__u32 pad;
	__u8 addr[16];
};

struct sonde_data_event {
	struct sonde_event_header hdr;
	__u64 position; /* stream offset of payload[0] in this direction */
	__u64 call_end; /* stream offset just past all bytes of the syscall */
	__u32 copied;   /* payload bytes that follow */
	__u8 direction; /* enum sonde_direction */
	__u8 syscall;   /* enum sonde_syscall */
	__u16 flags;    /* SONDE_DATA_* */
	struct sonde_peer peer;
	__u8 payload[SONDE_CHUNK_MAX];
};

/* A process called exec: userspace looks for TLS libraries it maps. Sent on
 * its own small ring buffer (sonde_execs), read by the TLS attacher. */
struct sonde_exec_event {
	__u32 tgid;
	__u32 pad;
	__u64 timestamp_ns;
};

/* Slots of the sonde_seeds array: seeds userspace put in sonde_active at
 * start (written by userspace only), and seeds exits took out (incremented
 * by the programs only). Exits look for seeds while taken < inserted. */
enum sonde_seed_count {
	SONDE_SEEDS_INSERTED = 0,
	SONDE_SEEDS_TAKEN = 1,
};

/* Arguments of a socket syscall in flight, stashed per thread at enter and
 * read at exit (the default object keeps it in the thread's task storage,
 * the compat object in sonde_active keyed by pid_tgid). Userspace writes
 * these too, into sonde_active: at start it seeds the calls of threads
 * already blocked in a socket syscall (their enter was before the probes),
 * with `seeded` set; the exit program checks a seeded call against the
 * task's saved registers before using it. */
struct sonde_active_call {
	__u64 ts_enter; /* only for calls that send (their event time); 0 otherwise */
	__u64 buf;    /* user buffer, iovec array, msghdr or mmsghdr array */
	__u64 count;  /* buffer size, iovec count or message count */
	__u64 addr;   /* sendto/recvfrom: user sockaddr of the peer */
	__u64 sk;     /* struct sock *; 0 when seeded (found again at exit) */
	__s32 fd;
	__u8 syscall; /* enum sonde_syscall */
	__u8 seeded;
	__u8 pad[2];
};

struct sonde_close_event {
	struct sonde_event_header hdr;
	__u64 bytes_egress;
	__u64 bytes_ingress;
};

#define SONDE_DATA_HEADER_SIZE 88

_Static_assert(sizeof(struct sonde_conn_id) == 24, "sonde_conn_id layout");
_Static_assert(sizeof(struct sonde_event_header) == 40, "sonde_event_header layout");
_Static_assert(sizeof(struct sonde_open_event) == 104, "sonde_open_event layout");
_Static_assert(__builtin_offsetof(struct sonde_open_event, local_addr) == 48, "open.local_addr");
_Static_assert(__builtin_offsetof(struct sonde_open_event, comm) == 88, "open.comm");
_Static_assert(__builtin_offsetof(struct sonde_data_event, payload) == SONDE_DATA_HEADER_SIZE, "data header");
_Static_assert(__builtin_offsetof(struct sonde_data_event, copied) == 56, "data.copied");
_Static_assert(__builtin_offsetof(struct sonde_data_event, peer) == 64, "data.peer");
_Static_assert(sizeof(struct sonde_peer) == 24, "sonde_peer layout");
_Static_assert(sizeof(struct sonde_close_event) == 56, "sonde_close_event layout");
_Static_assert(sizeof(struct sonde_exec_event) == 16, "sonde_exec_event layout");
_Static_assert(sizeof(struct sonde_active_call) == 48, "sonde_active_call layout");

#endif /* SONDE_EVENTS_H */
