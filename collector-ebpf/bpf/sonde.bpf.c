// SPDX-License-Identifier: GPL-2.0
/*
 * Sonde socket capture: syscall tracepoints only (no kprobes, no fentry), so it
 * runs on kernels built without them.
 *
 * Each traced syscall has an enter program that stashes its arguments per
 * thread (only when the fd is an AF_INET/AF_INET6 stream socket, decided from
 * the fd's file) and an exit program that reads the return value and emits
 * events to the ring buffer. In the default object, the calls that receive
 * have only the exit program, which reads the arguments from the registers
 * the syscall saved (ingress_exit_conn). Connections are tracked per
 * (tgid, fd) and checked against the socket pointer, so a reused fd starts
 * a new connection.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "sonde_events.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115
/* sendmmsg/recvmmsg: messages followed per call; the rest are counted. */
#define MAX_MMSG 8
/* Upper bound of the per-call cap, whatever userspace sets. */
#define MAX_BYTES_PER_CALL_LIMIT (1 << 20)
/* Copy-loop iterations per call: one per chunk, plus one per iovec crossed. */
#define MAX_COPY_ITERATIONS (MAX_BYTES_PER_CALL_LIMIT / SONDE_CHUNK_MAX + 2 + 1024)

/*
 * Kernel variants. build.rs compiles this file twice and the loader picks one
 * object after probing the kernel (collector/src/kernel_features.rs):
 * - the default object uses bpf_loop (Linux 5.17) and atomic fetch-and-add
 *   (BPF_ATOMIC with BPF_FETCH, Linux 5.12);
 * - SONDE_COMPAT, for 5.8 to 5.16, uses neither: the copy loop is a bounded
 *   loop over a global function (verified once, Linux 5.6) and stream
 *   positions are read, then added to (two calls racing on one socket may see
 *   the same start position; userspace drops the overlap and counts it in
 *   stream_duplicate_bytes).
 */
#ifdef SONDE_COMPAT
static __always_inline __u64 fetch_add(__u64 *p, __u64 n)
{
	__u64 old = *(volatile __u64 *)p;
	__sync_fetch_and_add(p, n); /* result unused: the plain atomic add (BPF_XADD) */
	return old;
}
#else
static __always_inline __u64 fetch_add(__u64 *p, __u64 n)
{
	return __sync_fetch_and_add(p, n);
}
#endif

/* Set by the loader (EbpfLoader::override_global). */
volatile const __u32 sonde_self_tgid = 0;
volatile const __u32 sonde_max_bytes_per_call = 32768;
/* The kernel stack size (THREAD_SIZE: 16 KiB on x86-64 without KASAN): the
 * task's saved user registers sit at its top. Only used to check seeded
 * calls; a wrong value makes the check fail, never read wrong data. */
volatile const __u64 sonde_thread_size = 16384;

/* Unread ring bytes at which a record wakes the reader. Below it records go
 * in without a wakeup and the reader collects them on its short timer, so a
 * busy node wakes it per batch, not per record. 0: every record may wake it
 * (the kernel's default: a record wakes the reader if it had read all). */
volatile const __u64 sonde_wakeup_bytes = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 << 20); /* resized by the loader */
} sonde_events SEC(".maps");

/* Bytes this CPU has written to sonde_events since it last looked at the
 * ring's fill (ring_wakeup_flags). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sonde_unchecked_bytes SEC(".maps");

/* The flags of an output of `size` bytes to sonde_events (see
 * sonde_wakeup_bytes). Each CPU looks at the ring's unread bytes once per
 * sixteenth of the threshold it writes, not per record: the query reads the
 * reader's position, a cache line the reader keeps writing from another CPU
 * (~5 % of the programs' time when it was per record). It wakes the reader
 * when the unread bytes have reached the threshold. So a wakeup comes within
 * a sixteenth of the threshold per CPU after the crossing, and while the
 * reader is behind, at most one per sixteenth per CPU: never one per record,
 * which queued an irq_work (a self-interrupt, a VM exit under
 * virtualization) per record and cost more than the programs' own work.
 * Below the threshold the reader's timer (ring_reader::COLLECT_EVERY)
 * collects the records. */
static __always_inline __u64 ring_wakeup_flags(__u64 size)
{
	if (sonde_wakeup_bytes == 0)
		return 0;
	__u32 zero = 0;
	__u64 *unchecked = bpf_map_lookup_elem(&sonde_unchecked_bytes, &zero);
	if (!unchecked)
		return BPF_RB_NO_WAKEUP;
	*unchecked += size;
	if (*unchecked < sonde_wakeup_bytes / 16)
		return BPF_RB_NO_WAKEUP;
	*unchecked = 0;
	__u64 unread = bpf_ringbuf_query(&sonde_events, BPF_RB_AVAIL_DATA);
	return unread + size >= sonde_wakeup_bytes ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

struct conn_key {
	__u32 tgid;
	__s32 fd;
};

struct conn_state {
	struct sonde_conn_id id;
	__u64 sk;       /* struct sock *, to tell a reused fd from the same connection */
	/* The struct file the fd held at open and its struct socket (0 when the
	 * fd no longer held this sock then): what entry_inet_sock checks. */
	__u64 file;
	__u64 sock;
	/* sonde_uncopied_epoch when this connection last looked in
	 * sonde_uncopied, and whether it was there (then for good). */
	__u64 uncopied_epoch;
	__u64 uncopied;
	__u64 bytes[2]; /* stream positions, by enum sonde_direction */
	__u64 tls_bytes[2]; /* plaintext stream positions (TLS library probes) */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, struct conn_state);
} sonde_conns SEC(".maps");

/* Connections whose bytes userspace no longer wants (no protocol it parses):
 * their syscalls are accounted by size only, so conn_stats stays exact at no
 * copy cost. Value: the connection's generation, so a reused fd is copied
 * again. LRU: a stale entry can never block a new one. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct conn_key);
	__type(value, __u64);
} sonde_uncopied SEC(".maps");

/* Bumped by userspace after each batch it adds to sonde_uncopied: a
 * connection looks there only when this moved since it last looked, so a
 * copied call pays an array read instead of a hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sonde_uncopied_epoch SEC(".maps");

/* Arguments of a syscall in flight (struct sonde_active_call in the shared
 * header), keyed by pid_tgid: userspace's seeds of calls in flight at start,
 * and in the compat object every stashed call. The default object stashes
 * in task storage (sonde_task_call) and takes only seeds from here. */
#define active_call sonde_active_call

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct active_call);
} sonde_active SEC(".maps");

/* The default object stashes in task storage and looks in sonde_active
 * only for userspace's seeds, and only while some are left (enum
 * sonde_seed_count: one writer per slot). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} sonde_seeds SEC(".maps");

#ifndef SONDE_COMPAT
/* The syscall in flight of each thread, in the thread itself: a pointer
 * from the task, no hash update, lookup and delete per call (~150 ns of an
 * entry and as much of an exit with the hash). The slot stays allocated
 * while the thread lives; `syscall` 0 marks it empty. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct active_call);
} sonde_task_call SEC(".maps");
#endif

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SONDE_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} sonde_stats SEC(".maps");

/* Scratch space for building a data event (too large for the BPF stack). The
 * slack after the payload lets the verifier accept a copy of up to
 * SONDE_CHUNK_MAX bytes at any offset within the payload: the copy loop
 * never fills past the payload itself. */
struct data_scratch {
	struct sonde_data_event ev;
	__u8 slack[SONDE_CHUNK_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct data_scratch);
} sonde_scratch SEC(".maps");

/* One global counter: connection generations. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sonde_generation SEC(".maps");

/* --- TLS library probes (OpenSSL SSL_read/SSL_write and their _ex forms) ---
 *
 * The _ex programs also serve the SSL BIO's read/write methods (BIO_f_ssl),
 * which have the _ex signatures with a BIO * first: for those calls "ssl" is
 * the BIO, which stands for its SSL object here (one SSL per SSL BIO).
 *
 * The uprobe on entry stashes the call per thread; the socket syscalls the
 * library makes inside the call see it, record their fd in it (and in
 * sonde_tls_fds, the fallback for calls that make no syscall, e.g. an SSL_read
 * served from already-decrypted bytes) and emit nothing: that ciphertext is not
 * a stream Sonde parses. The uretprobe emits the plaintext for that fd with
 * SONDE_DATA_TLS, positioned in the connection's plaintext stream.
 * SSL_do_handshake (also behind SSL_connect and SSL_accept) is followed the
 * same way without plaintext: its ciphertext is not traced, and its socket is
 * known before the first SSL_read, which may make no syscall at all. */
struct tls_call {
	__u64 ssl;      /* SSL * (or the SSL BIO's BIO *), the first argument */
	__u64 buf;      /* plaintext buffer */
	__u64 len_ptr;  /* _ex forms: user address of the size_t moved; 0 otherwise */
	__u64 ts_enter;
	__s32 fd;       /* socket of a nested syscall, -1 until one is seen */
	__u16 depth;    /* nested SSL_* entries on the same SSL (emitted once, by the outer) */
	__u8 handshake; /* SSL_do_handshake: no plaintext; its syscalls only tie SSL to fd */
	__u8 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct tls_call);
} sonde_tls_active SEC(".maps");

/* How many entries sonde_tls_active holds. While none, no thread is inside
 * a TLS call and the entry of a data syscall skips the lookup (a hash lookup
 * on every traced call of every process, TLS or not). Counted where an entry
 * is created or deleted; one a missed return probe leaves behind only keeps
 * the lookups on. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} sonde_tls_calls SEC(".maps");

static __always_inline bool tls_calls_active(void)
{
	__u32 zero = 0;
	__u64 *calls = bpf_map_lookup_elem(&sonde_tls_calls, &zero);
	return !calls || *calls != 0;
}

static __always_inline void tls_calls_add(__s64 n)
{
	__u32 zero = 0;
	__u64 *calls = bpf_map_lookup_elem(&sonde_tls_calls, &zero);
	if (calls)
		__sync_fetch_and_add(calls, (__u64)n);
}

struct tls_ssl_key {
	__u64 ssl;
	__u32 tgid;
	__u32 pad;
};

/* Last socket seen under each SSL object. LRU: entries of freed SSL objects age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct tls_ssl_key);
	__type(value, __s32);
} sonde_tls_fds SEC(".maps");

/* Exec notifications for the TLS attacher (small: one 16-byte record per exec). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 << 10);
} sonde_execs SEC(".maps");

static __always_inline void stat_add(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&sonde_stats, &which);
	if (v)
		*v += n;
}

/* Writes one record of `size` bytes to sonde_events; false (counted in
 * ring_full_events) when the ring has no room. */
static __always_inline bool ring_output(void *data, __u64 size)
{
	if (bpf_ringbuf_output(&sonde_events, data, size, ring_wakeup_flags(size)) == 0)
		return true;
	stat_add(SONDE_STAT_RING_FULL_EVENTS, 1);
	return false;
}

static __always_inline bool is_self(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == sonde_self_tgid;
}

/* The struct file behind fd in the calling thread's fd table, or NULL. Runs
 * on every traced syscall's entry. The default object walks the task's
 * BTF-typed pointers with plain loads (bpf_get_current_task_btf, Linux 5.11;
 * the verifier turns them into fault-safe loads): a probe-read helper call
 * per pointer costs ~25 ns each, a tenth of an entry program. The compat
 * object keeps the helper calls. */
static __always_inline struct file *fd_file(int fd)
{
	if (fd < 0)
		return NULL;
#ifdef SONDE_COMPAT
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt)
		return NULL;
	unsigned int max_fds = BPF_CORE_READ(fdt, max_fds);
	struct file **fds = BPF_CORE_READ(fdt, fd);
#else
	struct files_struct *files = bpf_get_current_task_btf()->files;
	if (!files)
		return NULL;
	struct fdtable *fdt = files->fdt;
	if (!fdt)
		return NULL;
	unsigned int max_fds = fdt->max_fds;
	struct file **fds = fdt->fd;
#endif
	if ((unsigned int)fd >= max_fds)
		return NULL;
	struct file *file = NULL;
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]))
		return NULL;
	return file;
}

/* The struct sock of an AF_INET/AF_INET6 TCP or UDP socket open as file, or NULL. */
static __always_inline struct sock *file_inet_sock(struct file *file)
{
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	if (!sock)
		return NULL;
	short type = BPF_CORE_READ(sock, type);
	if (type != SOCK_STREAM && type != SOCK_DGRAM)
		return NULL;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	return sk;
}

/* The struct sock of an AF_INET/AF_INET6 TCP or UDP socket behind fd, or NULL. */
static __always_inline struct sock *fd_to_inet_sock(int fd)
{
	struct file *file = fd_file(fd);
	return file ? file_inet_sock(file) : NULL;
}

/* `timed`: the call sends, so its event time is now (a clock read saved
 * on every other entry). */
static __always_inline void stash(__u8 syscall, int fd, __u64 buf, __u64 count, __u64 addr, struct sock *sk,
				  bool timed)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct active_call call = {
		.ts_enter = timed ? bpf_ktime_get_ns() : 0,
		.buf = buf,
		.count = count,
		.addr = addr,
		.sk = (__u64)sk,
		.fd = fd,
		.syscall = syscall,
	};
#ifdef SONDE_COMPAT
	if (bpf_map_update_elem(&sonde_active, &id, &call, BPF_ANY))
		stat_add(SONDE_STAT_ACTIVE_MAP_FULL, 1);
#else
	(void)id;
	/* NULL only when out of memory, or (kernels before 6.2) when another
	 * program on this CPU is inside task storage: the call goes untraced. */
	struct active_call *slot = bpf_task_storage_get(&sonde_task_call, bpf_get_current_task_btf(), 0,
							BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (slot)
		*slot = call;
	else
		stat_add(SONDE_STAT_ACTIVE_MAP_FULL, 1);
#endif
}

/* This thread's entry in sonde_active, taken out: the seed userspace wrote
 * for its call in flight at start (see seed_is_current), or in the compat
 * object also a call its enter stashed. */
static __always_inline bool take_seed(struct active_call *out)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct active_call *call = bpf_map_lookup_elem(&sonde_active, &id);
	if (!call)
		return false;
	*out = *call;
	return bpf_map_delete_elem(&sonde_active, &id) == 0;
}

/* Pops the stashed call of this thread into *out; false unless it is the
 * syscall whose exit this is (an enter whose exit was never seen must not be
 * mistaken for another syscall's arguments). */
static __always_inline bool unstash(__u8 syscall, struct active_call *out)
{
#ifdef SONDE_COMPAT
	if (!take_seed(out))
		return false;
#else
	struct active_call *slot = bpf_task_storage_get(&sonde_task_call, bpf_get_current_task_btf(), 0, 0);
	if (slot) {
		if (!slot->syscall)
			return false;
		*out = *slot;
		slot->syscall = 0;
		return out->syscall == syscall;
	}
	/* No slot: the thread has not entered a traced call since the probes
	 * attached, so this exit may end the call it was blocked in then, which
	 * userspace may have seeded. (Once a thread has a slot, any seed of it
	 * is stale and never looked at.) */
	__u32 inserted_key = SONDE_SEEDS_INSERTED, taken_key = SONDE_SEEDS_TAKEN;
	__u64 *inserted = bpf_map_lookup_elem(&sonde_seeds, &inserted_key);
	__u64 *taken = bpf_map_lookup_elem(&sonde_seeds, &taken_key);
	if (!inserted || !taken || *taken >= *inserted)
		return false;
	if (!take_seed(out))
		return false;
	__sync_fetch_and_add(taken, 1);
#endif
	return out->syscall == syscall;
}

static __always_inline void fill_header(struct sonde_event_header *hdr, __u32 kind, __u64 ts,
					const struct sonde_conn_id *conn)
{
	hdr->kind = kind;
	hdr->cpu = bpf_get_smp_processor_id();
	hdr->timestamp_ns = ts;
	hdr->conn = *conn;
}

static __always_inline void emit_close(const struct conn_state *c)
{
	struct sonde_close_event ev = {};
	fill_header(&ev.hdr, SONDE_EV_CLOSE, bpf_ktime_get_ns(), &c->id);
	ev.bytes_egress = c->bytes[SONDE_DIR_EGRESS];
	ev.bytes_ingress = c->bytes[SONDE_DIR_INGRESS];
	ring_output(&ev, sizeof(ev));
}

/* Starts tracking a connection (replacing, and closing, whatever the fd held). */
static __always_inline struct conn_state *conn_open(int fd, struct sock *sk, __u16 role)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};

	struct conn_state *old = bpf_map_lookup_elem(&sonde_conns, &key);
	if (old)
		emit_close(old);

	__u32 zero = 0;
	__u64 *gen = bpf_map_lookup_elem(&sonde_generation, &zero);
	if (!gen)
		return NULL;

	struct conn_state c = {};
	c.id.tgid = key.tgid;
	c.id.fd = fd;
	c.id.proc_start_ns = BPF_CORE_READ(task, group_leader, start_boottime);
	c.id.generation = fetch_add(gen, 1) + 1;
	c.sk = (__u64)sk;
	/* A new generation is in no sonde_uncopied entry yet. */
	__u64 *epoch = bpf_map_lookup_elem(&sonde_uncopied_epoch, &zero);
	c.uncopied_epoch = epoch ? *epoch : 0;
	/* Once per connection: the file and socket entry_inet_sock checks. */
	struct file *file = fd_file(fd);
	if (file) {
		struct socket *sock = BPF_CORE_READ(file, private_data);
		if (sock && BPF_CORE_READ(sock, sk) == sk) {
			c.file = (__u64)file;
			c.sock = (__u64)sock;
		}
	}
	if (bpf_map_update_elem(&sonde_conns, &key, &c, BPF_ANY)) {
		stat_add(SONDE_STAT_CONN_MAP_FULL, 1);
		return NULL;
	}

	struct sonde_open_event ev = {};
	fill_header(&ev.hdr, SONDE_EV_OPEN, bpf_ktime_get_ns(), &c.id);
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	ev.family = family;
	ev.role = role;
	ev.sock_type = BPF_CORE_READ(sk, sk_type);
	ev.local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	ev.remote_port = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		BPF_CORE_READ_INTO(&ev.local_addr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO(&ev.remote_addr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&ev.local_addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&ev.remote_addr, sk, __sk_common.skc_v6_daddr);
	}
	BPF_CORE_READ_INTO(&ev.comm, task, group_leader, comm);
	ring_output(&ev, sizeof(ev));

	return bpf_map_lookup_elem(&sonde_conns, &key);
}

/* The tracked connection on fd, opened now (role unknown) if it predates us. */
static __always_inline struct conn_state *conn_get(int fd, struct sock *sk)
{
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
	struct conn_state *c = bpf_map_lookup_elem(&sonde_conns, &key);
	if (c && c->sk == (__u64)sk)
		return c;
	return conn_open(fd, sk, SONDE_ROLE_UNKNOWN);
}

/* --- copying payloads: one loop iteration emits at most one chunk --- */

struct copy_state {
	struct sonde_conn_id conn;
	__u64 ts;
	__u64 position; /* stream position of the next byte */
	__u64 call_end;
	__u64 iov;      /* user address of the iovec array, 0 for a single buffer */
	__u64 iov_count;
	__u64 iov_index;
	__u64 iov_offset;  /* offset within the current iovec (or buffer) */
	__u64 single_base; /* single buffer */
	__u64 remaining;   /* bytes still to copy under the cap */
	__u64 copied;
	__u64 pending;     /* bytes copied into the scratch event, not yet sent */
	struct sonde_peer peer;
	__u16 flags; /* SONDE_DATA_* carried by every event of the call (besides LAST) */
	__u8 direction;
	__u8 syscall;
	bool failed;
};

/* The copy state lives in a per-CPU map, not on the stack: values loaded from
 * a map are unknown to the verifier, so the loop body is verified once instead
 * of once per distinct (known) remaining length. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct copy_state);
} sonde_copy SEC(".maps");

/* This CPU's scratch event (a data event with SONDE_CHUNK_MAX bytes of
 * slack after its payload), or NULL. */
static __always_inline struct sonde_data_event *scratch_event(void)
{
	__u32 zero = 0;
	struct data_scratch *scratch = bpf_map_lookup_elem(&sonde_scratch, &zero);
	return scratch ? &scratch->ev : NULL;
}

/* The header of a data event of the call in *s: `copied` bytes from stream
 * position `position`, flagged `last` (SONDE_DATA_LAST or 0) besides the
 * call's own flags. */
static __always_inline void fill_data_header(struct sonde_data_event *ev, const struct copy_state *s,
					     __u64 position, __u32 copied, __u16 last)
{
	fill_header(&ev->hdr, SONDE_EV_DATA, s->ts, &s->conn);
	ev->position = position;
	ev->call_end = s->call_end;
	ev->copied = copied;
	ev->direction = s->direction;
	ev->syscall = s->syscall;
	ev->peer = s->peer;
	ev->flags = last | s->flags;
}

/* Sends the bytes gathered in the scratch event as one record: they are the
 * stream's bytes from position - pending on. */
static __always_inline void flush_pending(struct copy_state *s)
{
	struct sonde_data_event *ev = scratch_event();
	if (!ev)
		return;
	/* The mask restates the bound for the verifier: pending <= SONDE_CHUNK_MAX. */
	__u32 len = s->pending & (2 * SONDE_CHUNK_MAX - 1);
	if (len == 0 || len > SONDE_CHUNK_MAX)
		return;
	s->pending = 0;
	/* LAST only when the call is complete; otherwise emit_tail sends the
	 * header-only event that ends the call (and declares the uncopied rest). */
	fill_data_header(ev, s, s->position - len, len, s->position == s->call_end ? SONDE_DATA_LAST : 0);
	if (!ring_output(ev, SONDE_DATA_HEADER_SIZE + len))
		stat_add(SONDE_STAT_RING_FULL_BYTES, len);
}

/* Copies the next piece of the call (up to the end of the current buffer or
 * iovec, of the cap, or of the scratch event's room) after the bytes already
 * gathered. Returns 1 once nothing more is to be copied. */
static __always_inline long copy_step(struct copy_state *s)
{
	if (s->remaining == 0 || s->failed)
		return 1;

	__u64 base, seg_len;
	if (s->iov) {
		if (s->iov_index >= s->iov_count)
			return 1;
		struct iovec v;
		if (bpf_probe_read_user(&v, sizeof(v), (void *)(s->iov + s->iov_index * sizeof(struct iovec)))) {
			s->failed = true;
			return 1;
		}
		base = (__u64)v.iov_base;
		seg_len = v.iov_len;
	} else {
		base = s->single_base;
		seg_len = s->iov_offset + s->remaining;
	}
	if (s->iov_offset >= seg_len) {
		s->iov_index++;
		s->iov_offset = 0;
		return 0;
	}

	__u64 n = seg_len - s->iov_offset;
	if (n > s->remaining)
		n = s->remaining;
	if (n > SONDE_CHUNK_MAX - s->pending)
		n = SONDE_CHUNK_MAX - s->pending;

	struct sonde_data_event *ev = scratch_event();
	if (!ev)
		return 1;
	/* The masks restate the bounds for the verifier: the piece starts within
	 * the payload and is at most SONDE_CHUNK_MAX long, so with the slack
	 * after the payload it stays inside the scratch value. */
	__u32 offset = s->pending & (SONDE_CHUNK_MAX - 1);
	__u32 len = n & (2 * SONDE_CHUNK_MAX - 1);
	if (len > SONDE_CHUNK_MAX)
		return 1;
	if (bpf_probe_read_user(ev->payload + offset, len, (void *)(base + s->iov_offset))) {
		s->failed = true;
		return 1;
	}
	s->remaining -= len;
	s->iov_offset += len;
	s->position += len;
	s->copied += len;
	s->pending += len;
	if (s->iov && s->iov_offset >= seg_len) {
		/* Past this iovec: the next iteration reads the next one. */
		s->iov_index++;
		s->iov_offset = 0;
	}
	return 0;
}

/* One iteration of the copy loop: a step, and a record whenever the scratch
 * event is full or the call's copy ends. So all the iovecs of a writev (a
 * response head and its body) go out as one record, not one each. */
static long copy_one_chunk(__u32 index, void *ctx)
{
	__u32 zero = 0;
	struct copy_state *s = bpf_map_lookup_elem(&sonde_copy, &zero);
	if (!s)
		return 1;
	long done = copy_step(s);
	if (s->pending >= SONDE_CHUNK_MAX || (done && s->pending))
		flush_pending(s);
	return done;
}

#ifdef SONDE_COMPAT
/* Global functions (not static): the verifier checks each once per program,
 * not once per call site (sendmmsg has eight) and loop iteration. */
__attribute__((noinline)) int copy_chunk(__u32 index)
{
	return copy_one_chunk(index, NULL);
}

__attribute__((noinline)) int copy_chunks(__u32 iterations)
{
#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < MAX_COPY_ITERATIONS; i++) {
		if (i >= iterations || copy_chunk(i))
			break;
	}
	return 0;
}
#endif

/* Runs copy_one_chunk up to `iterations` times, until it returns nonzero. */
static __always_inline void copy_loop(__u32 iterations)
{
	if (iterations > MAX_COPY_ITERATIONS)
		iterations = MAX_COPY_ITERATIONS;
#ifdef SONDE_COMPAT
	copy_chunks(iterations);
#else
	bpf_loop(iterations, copy_one_chunk, NULL, 0);
#endif
}

/* A header-only data event: tells userspace where a call ended when its tail
 * (or all of it) was not copied. */
static __always_inline void emit_tail(struct copy_state *s)
{
	struct sonde_data_event *ev = scratch_event();
	if (!ev)
		return;
	fill_data_header(ev, s, s->position, 0, SONDE_DATA_LAST);
	ring_output(ev, SONDE_DATA_HEADER_SIZE);
}

/* Reads a user sockaddr (AF_INET or AF_INET6) into *peer; leaves family 0 otherwise. */
static __always_inline void read_peer(__u64 uaddr, struct sonde_peer *peer)
{
	peer->family = 0;
	if (!uaddr)
		return;
	__u16 family = 0;
	if (bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
		return;
	if (family == AF_INET) {
		struct sockaddr_in sin;
		if (bpf_probe_read_user(&sin, sizeof(sin), (void *)uaddr))
			return;
		peer->port = __builtin_bswap16(sin.sin_port);
		__builtin_memcpy(peer->addr, &sin.sin_addr, 4);
		peer->family = AF_INET;
	} else if (family == AF_INET6) {
		struct sockaddr_in6 sin6;
		if (bpf_probe_read_user(&sin6, sizeof(sin6), (void *)uaddr))
			return;
		peer->port = __builtin_bswap16(sin6.sin6_port);
		__builtin_memcpy(peer->addr, &sin6.sin6_addr, 16);
		peer->family = AF_INET6;
	}
}

/* --- calls that fit one record: copied without the loop ---
 *
 * Most calls move a request or a response head: a few hundred bytes in one
 * buffer or in a few iovecs (a head and a body). Such a call is copied
 * into the scratch event and sent as its one record right here: no bpf_loop
 * call, no callback and copy state per piece, no separate tail record (the
 * record is marked LAST and carries call_end). Bigger calls, and iovec
 * arrays longer than DIRECT_MAX_IOVECS, take the copy loop.
 *
 * The bytes still go through the scratch event (bpf_ringbuf_output copies
 * them once more) rather than straight into a record reserved in the ring:
 * the verifier takes only constant reservation sizes, so a reserved record
 * is rounded up to a size class and, for iovecs, doubled (it bounds each
 * iovec's offset and length separately). Measured (BENCHMARKS.md,
 * 2026-12-01), the wasted ring space (about twice the bytes for wrk
 * against nginx) cost the reader more than the second copy of a few
 * hundred bytes costs the kernel. */
#define DIRECT_MAX_IOVECS 4

/* The one-pass copy of an iovec array (at most DIRECT_MAX_IOVECS iovecs,
 * remaining < SONDE_CHUNK_MAX bytes in all) into ev's payload, the array
 * read with one probe read; returns the bytes copied. */
static __always_inline __u64 direct_copy_iovecs(struct copy_state *s, struct sonde_data_event *ev,
						__u64 remaining)
{
	struct iovec v[DIRECT_MAX_IOVECS] = {};
	__u64 count = s->iov_count;
	if (count > DIRECT_MAX_IOVECS)
		count = DIRECT_MAX_IOVECS;
	if (count && bpf_probe_read_user(v, count * sizeof(struct iovec), (void *)s->iov)) {
		s->failed = true;
		return 0;
	}
	__u64 off = 0;
#pragma unroll
	for (__u32 i = 0; i < DIRECT_MAX_IOVECS; i++) {
		if (i >= count || off >= remaining)
			break;
		__u64 len = v[i].iov_len;
		if (len > remaining - off)
			len = remaining - off;
		/* The masks restate for the verifier what holds already (off and
		 * len below SONDE_CHUNK_MAX), on the registers the call takes:
		 * a bound checked on a value the compiler spilled to the stack
		 * is lost on older verifiers. With the scratch's slack after the
		 * payload, the piece stays inside the scratch value. */
		if (len && bpf_probe_read_user(ev->payload + (off & (SONDE_CHUNK_MAX - 1)), len & (SONDE_CHUNK_MAX - 1),
					       v[i].iov_base)) {
			s->failed = true;
			break;
		}
		off += len;
	}
	return off;
}

/* Copies the call described by *s (s->remaining < SONDE_CHUNK_MAX) into
 * the scratch event and sends it as one record marked LAST. */
static __always_inline void emit_direct(struct copy_state *s)
{
	struct sonde_data_event *ev = scratch_event();
	if (!ev)
		return;
	__u64 remaining = s->remaining;
	__u64 off = 0;
	if (!s->iov) {
		/* The mask restates remaining < SONDE_CHUNK_MAX for the verifier. */
		__u64 len = remaining & (SONDE_CHUNK_MAX - 1);
		if (bpf_probe_read_user(ev->payload, len, (void *)s->single_base))
			s->failed = true;
		else
			off = len;
	} else {
		off = direct_copy_iovecs(s, ev, remaining);
	}
	off &= SONDE_CHUNK_MAX - 1; /* restated for the verifier: off <= remaining */
	fill_data_header(ev, s, s->position, off, SONDE_DATA_LAST);
	/* A record the full ring refused counts its bytes in ring_full_bytes,
	 * as the copy loop's do, not as bytes left uncopied. */
	if (!ring_output(ev, SONDE_DATA_HEADER_SIZE + off))
		stat_add(SONDE_STAT_RING_FULL_BYTES, off);
	s->position += off;
	s->copied = off;
}

/* True if the call fits one record and was sent by emit_direct. */
static __always_inline bool emit_direct_if_fits(struct copy_state *s)
{
	if (s->remaining >= SONDE_CHUNK_MAX || (s->iov && s->iov_count > DIRECT_MAX_IOVECS))
		return false;
	emit_direct(s);
	return true;
}

/* Emits the first min(total, cap) bytes of a call, from a single buffer (iov == 0)
 * or an iovec array, and accounts the whole call in the stream position (the
 * plaintext stream's for SONDE_DATA_TLS). */
static __always_inline void emit_data(struct conn_state *c, __u8 direction, __u8 syscall, __u64 ts,
				      __u64 buf, __u64 iov, __u64 iov_count, __u64 total, __u64 peer_addr,
				      __u16 flags, bool small_calls_direct)
{
	__u32 cap = sonde_max_bytes_per_call;
	if (cap > MAX_BYTES_PER_CALL_LIMIT)
		cap = MAX_BYTES_PER_CALL_LIMIT;
	__u32 zero = 0;
	bool uncopied = false;
	if (!(flags & SONDE_DATA_TLS)) {
		__u64 *epoch = c->uncopied ? NULL : bpf_map_lookup_elem(&sonde_uncopied_epoch, &zero);
		if (epoch && *epoch != c->uncopied_epoch) {
			c->uncopied_epoch = *epoch;
			struct conn_key key = {.tgid = c->id.tgid, .fd = c->id.fd};
			__u64 *gen = bpf_map_lookup_elem(&sonde_uncopied, &key);
			if (gen && *gen == c->id.generation)
				c->uncopied = 1;
		}
		if (c->uncopied) {
			cap = 0;
			uncopied = true;
		}
	}
	__u64 start;
	if (flags & SONDE_DATA_TLS)
		start = fetch_add(&c->tls_bytes[direction & 1], total);
	else
		start = fetch_add(&c->bytes[direction & 1], total);

	struct copy_state *s = bpf_map_lookup_elem(&sonde_copy, &zero);
	if (!s)
		return;
	s->conn = c->id;
	s->ts = ts;
	s->position = start;
	s->call_end = start + total;
	s->iov = iov;
	s->iov_count = iov_count;
	s->iov_index = 0;
	s->iov_offset = 0;
	s->single_base = buf;
	s->remaining = total < cap ? total : cap;
	s->copied = 0;
	s->pending = 0;
	s->direction = direction;
	s->syscall = syscall;
	s->flags = flags;
	s->failed = false;
	read_peer(peer_addr, &s->peer);

	bool direct = s->remaining > 0 && small_calls_direct && emit_direct_if_fits(s);
	if (s->remaining > 0 && !direct) {
		/* One iteration per record's worth of bytes, plus one per iovec:
		 * a piece ends at a record's end or at an iovec's, and an empty
		 * iovec takes an iteration to step past. */
		__u32 loops = s->remaining / SONDE_CHUNK_MAX + 2;
		if (iov)
			loops += iov_count < 1024 ? iov_count : 1024;
		copy_loop(loops);
		/* Bytes gathered when the iterations ran out (thousands of tiny
		 * iovecs): sent, and the rest declared by emit_tail below. */
		if (s->pending)
			flush_pending(s);
	}
	if (s->failed)
		stat_add(SONDE_STAT_READ_FAILURES, 1);
	if (s->copied < total) {
		stat_add(uncopied ? SONDE_STAT_UNCOPIED_BYTES : SONDE_STAT_BYTES_NOT_COPIED, total - s->copied);
		/* A direct record is its call's last: it already carries call_end. */
		if (!direct)
			emit_tail(s);
	}
}

/* --- connect / accept / close --- */

SEC("tracepoint/syscalls/sys_enter_connect")
int sys_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	if (is_self())
		return 0;
	int fd = ctx->args[0];
	struct sock *sk = fd_to_inet_sock(fd);
	if (sk)
		stash(SONDE_SYS_CONNECT, fd, 0, 0, 0, sk, false);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int sys_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	struct active_call call;
	if (!unstash(SONDE_SYS_CONNECT, &call))
		return 0;
	if (ctx->ret == 0 || ctx->ret == -EINPROGRESS)
		conn_open(call.fd, (struct sock *)call.sk, SONDE_ROLE_CLIENT);
	return 0;
}

static __always_inline int enter_accept(void)
{
	if (is_self())
		return 0;
	stash(SONDE_SYS_ACCEPT, -1, 0, 0, 0, NULL, false);
	return 0;
}

static __always_inline int exit_accept(long ret)
{
	struct active_call call;
	if (!unstash(SONDE_SYS_ACCEPT, &call) || ret < 0)
		return 0;
	int fd = ret;
	struct sock *sk = fd_to_inet_sock(fd);
	if (sk)
		conn_open(fd, sk, SONDE_ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_accept")
int sys_enter_accept(struct trace_event_raw_sys_enter *ctx) { return enter_accept(); }

SEC("tracepoint/syscalls/sys_exit_accept")
int sys_exit_accept(struct trace_event_raw_sys_exit *ctx) { return exit_accept(ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_accept4")
int sys_enter_accept4(struct trace_event_raw_sys_enter *ctx) { return enter_accept(); }

SEC("tracepoint/syscalls/sys_exit_accept4")
int sys_exit_accept4(struct trace_event_raw_sys_exit *ctx) { return exit_accept(ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_close")
int sys_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	if (is_self())
		return 0;
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = ctx->args[0]};
	if (bpf_map_lookup_elem(&sonde_conns, &key))
		stash(SONDE_SYS_CLOSE, key.fd, 0, 0, 0, NULL, false);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_close")
int sys_exit_close(struct trace_event_raw_sys_exit *ctx)
{
	struct active_call call;
	if (!unstash(SONDE_SYS_CLOSE, &call) || ctx->ret != 0)
		return 0;
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = call.fd};
	struct conn_state *c = bpf_map_lookup_elem(&sonde_conns, &key);
	if (c) {
		emit_close(c);
		bpf_map_delete_elem(&sonde_conns, &key);
	}
	return 0;
}

/* --- data syscalls --- */

/* tls_call.fd of a call whose only nested I/O was on fds Sonde does not trace
 * (unix sockets, files): its plaintext is dropped without counting a loss. */
#define TLS_FD_UNTRACED -2
/* A TLS call this old no longer claims syscalls: should its return probe
 * have been missed (a stack switch, longjmp), the thread's socket syscalls
 * are traced again (as ciphertext, counted, not parsed) instead of being
 * suppressed for good. A blocking call's first syscall comes long before.
 * A receive is looked at only when it returns (tls_claims' at_exit), maybe
 * after blocking for longer: there the age is waived while the call has
 * made no other syscall or only ones on that fd, so a missed return keeps
 * claiming at most the one socket it was reading, which carried TLS. */
#define TLS_CALL_CLAIM_NS (10ULL * 1000 * 1000 * 1000)

/* True if this thread is inside a TLS library call: the syscall moves its
 * ciphertext. Ties the call to this socket (sk: an inet socket Sonde traces)
 * instead of tracing the syscall. `at_exit`: asked when the syscall returns
 * (the receives of the default object), when a blocking read inside the
 * call may have waited longer than TLS_CALL_CLAIM_NS: the call still claims
 * it if it has made no other syscall or only ones on this fd. */
static __always_inline bool tls_claims(int fd, struct sock *sk, bool at_exit)
{
	if (!tls_calls_active())
		return false;
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *t = bpf_map_lookup_elem(&sonde_tls_active, &id);
	if (!t)
		return false;
	if (bpf_ktime_get_ns() - t->ts_enter > TLS_CALL_CLAIM_NS && !(at_exit && (t->fd == -1 || t->fd == fd)))
		return false;
	struct tls_ssl_key key = {.ssl = t->ssl, .tgid = id >> 32};
	if (!sk) {
		/* A unix socket, or e.g. a config file read: never overrides a
		 * socket already seen, in this call or under this SSL object. */
		if (t->fd == -1) {
			t->fd = TLS_FD_UNTRACED;
			__s32 untraced = TLS_FD_UNTRACED;
			bpf_map_update_elem(&sonde_tls_fds, &key, &untraced, BPF_NOEXIST);
		}
		return true;
	}
	t->fd = fd;
	bpf_map_update_elem(&sonde_tls_fds, &key, &fd, BPF_ANY);
	return true;
}

/* fd_to_inet_sock for the entry of every data call, with a shortcut for a
 * connection already tracked on fd: if the fd still holds the file it held
 * when the connection opened, and that file still holds its struct socket,
 * the socket is the connection's (a struct socket only ever belongs to one
 * socket file, for the file's life; an fd closed unseen and reused by a
 * file at the same address fails the second check, since no other kind of
 * file points at a struct socket). Two loads instead of seven on the busiest
 * path; other fds pay one hash lookup more. */
static __always_inline struct sock *tracked_inet_sock(int fd, struct conn_state **tracked)
{
	*tracked = NULL;
	struct file *file = fd_file(fd);
	if (!file)
		return NULL;
	struct conn_key key = {.tgid = bpf_get_current_pid_tgid() >> 32, .fd = fd};
	struct conn_state *c = bpf_map_lookup_elem(&sonde_conns, &key);
	if (c && c->file == (__u64)file && (__u64)BPF_CORE_READ(file, private_data) == c->sock) {
		*tracked = c;
		return (struct sock *)c->sk;
	}
	return file_inet_sock(file);
}

static __always_inline struct sock *entry_inet_sock(int fd)
{
	struct conn_state *tracked;
	return tracked_inet_sock(fd, &tracked);
}

static __always_inline int enter_data(__u8 syscall, __u8 direction, int fd, __u64 buf, __u64 count,
				      __u64 addr)
{
	if (is_self())
		return 0;
	struct sock *sk = entry_inet_sock(fd);
	if (!tls_claims(fd, sk, false) && sk)
		stash(syscall, fd, buf, count, addr, sk, direction == SONDE_DIR_EGRESS);
	return 0;
}

/* The start of every data exit: the stashed call (false unless it is this
 * syscall and it moved bytes), its connection, and the event time: the enter
 * time for what the process sends, the exit time for what it receives. */
/* A call seeded by userspace at start (the thread was already blocked in it
 * when the probes attached) is this thread's current syscall only if the
 * saved user registers still hold its first two arguments (x86-64: rdi,
 * rsi). Otherwise the thread finished that call before the seed landed and
 * this is another one: the seed is dropped. */
static __always_inline bool seed_is_current(const struct active_call *call)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	void *stack = BPF_CORE_READ(task, stack);
	if (!stack)
		return false;
	struct pt_regs *regs = (struct pt_regs *)(stack + sonde_thread_size) - 1;
	__u64 di = 0, si = 0;
	if (bpf_probe_read_kernel(&di, sizeof(di), &regs->di) ||
	    bpf_probe_read_kernel(&si, sizeof(si), &regs->si))
		return false;
	return (__s32)di == call->fd && si == call->buf;
}

#ifndef SONDE_COMPAT
/* The start of an ingress data exit in the default object, which has no
 * enter program for what a process receives: the exit reads the call's
 * arguments from the registers the syscall saved on entry (x86-64: rdi,
 * rsi, rdx; recvfrom's peer address in r8), which the kernel keeps until
 * the return to user space. An ingress call's event time is its exit
 * anyway, so the enter program only stashed arguments: without it each
 * received message costs one program run, one task storage write and read
 * and one connection lookup less, and a call that moved nothing (EAGAIN)
 * or a file or pipe read costs one run instead of two. A call already in
 * flight at start needs no seed either. */
static __always_inline struct conn_state *ingress_exit_conn(__u8 syscall, long ret, struct active_call *call,
							    __u64 *ts)
{
	/* A call inside a TLS library call may move no bytes and still tie
	 * the SSL object to its socket (tls_claims), as its enter did. */
	if ((ret <= 0 && !tls_calls_active()) || is_self())
		return NULL;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	if (!regs)
		return NULL;
	int fd = regs->di;
	call->fd = fd;
	call->buf = regs->si;
	call->count = regs->dx;
	call->addr = syscall == SONDE_SYS_RECVFROM ? regs->r8 : 0;
	call->syscall = syscall;
	struct conn_state *tracked;
	struct sock *sk = tracked_inet_sock(fd, &tracked);
	if (tls_claims(fd, sk, true) || ret <= 0 || !sk)
		return NULL;
	*ts = bpf_ktime_get_ns();
	return tracked ? tracked : conn_get(fd, sk);
}
#endif

static __always_inline struct conn_state *data_exit_conn(__u8 syscall, long ret, __u8 direction,
							 struct active_call *call, __u64 *ts)
{
#ifndef SONDE_COMPAT
	if (direction == SONDE_DIR_INGRESS)
		return ingress_exit_conn(syscall, ret, call, ts);
#endif
	if (!unstash(syscall, call) || ret <= 0)
		return NULL;
	if (call->seeded) {
		struct sock *sk = seed_is_current(call) ? fd_to_inet_sock(call->fd) : NULL;
		stat_add(sk ? SONDE_STAT_SEEDS_USED : SONDE_STAT_SEEDS_STALE, 1);
		if (!sk)
			return NULL;
		call->sk = (__u64)sk;
	}
	*ts = direction == SONDE_DIR_EGRESS ? call->ts_enter : bpf_ktime_get_ns();
	return conn_get(call->fd, (struct sock *)call->sk);
}

/* Exit of read/write/recvfrom/sendto (single buffer) and readv/writev (iovec). */
static __always_inline int exit_data(__u8 syscall, long ret, __u8 direction, bool vectored)
{
	struct active_call call;
	__u64 ts;
	struct conn_state *c = data_exit_conn(syscall, ret, direction, &call, &ts);
	if (!c)
		return 0;
	if (vectored)
		emit_data(c, direction, call.syscall, ts, 0, call.buf, call.count, ret, 0, 0, true);
	else
		emit_data(c, direction, call.syscall, ts, call.buf, 0, 0, ret, call.addr, 0, true);
	return 0;
}

/* Exit of sendmsg/recvmsg: the payload is in the msghdr's iovecs. */
static __always_inline int exit_msg(__u8 syscall, long ret, __u8 direction)
{
	struct active_call call;
	__u64 ts;
	struct conn_state *c = data_exit_conn(syscall, ret, direction, &call, &ts);
	if (!c)
		return 0;
	struct user_msghdr msg;
	if (bpf_probe_read_user(&msg, sizeof(msg), (void *)call.buf)) {
		/* Nothing to copy from: the bytes still advance the stream. */
		stat_add(SONDE_STAT_READ_FAILURES, 1);
		emit_data(c, direction, call.syscall, ts, 0, 0, 0, ret, 0, 0, true);
		return 0;
	}
	emit_data(c, direction, call.syscall, ts, 0, (__u64)msg.msg_iov, msg.msg_iovlen, ret, (__u64)msg.msg_name,
		  0, true);
	return 0;
}

/* Exit of sendmmsg/recvmmsg: ret is the number of messages; each has its msg_len. */
static __always_inline int exit_mmsg(__u8 syscall, long ret, __u8 direction)
{
	/* Zeroed: left uninitialised, clang merges the early return with the
	 * loop's exit through a register the verifier sees as unset. */
	struct active_call call = {};
	__u64 ts;
	struct conn_state *c = data_exit_conn(syscall, ret, direction, &call, &ts);
	if (!c)
		return 0;
	if (ret > MAX_MMSG)
		stat_add(SONDE_STAT_MMSG_TRUNCATED, ret - MAX_MMSG);
	for (int i = 0; i < MAX_MMSG; i++) {
		if (i >= ret)
			break;
		struct mmsghdr m;
		if (bpf_probe_read_user(&m, sizeof(m), (void *)(call.buf + i * sizeof(struct mmsghdr)))) {
			stat_add(SONDE_STAT_READ_FAILURES, 1);
			break;
		}
		if (m.msg_len == 0)
			continue;
		/* The copy loop only, as before: inside this loop the direct
		 * path would be verified once per message (MAX_MMSG times). */
		emit_data(c, direction, call.syscall, ts, 0, (__u64)m.msg_hdr.msg_iov, m.msg_hdr.msg_iovlen,
			  m.msg_len, (__u64)m.msg_hdr.msg_name, 0, false);
	}
	return 0;
}

#define DATA_PROBES(name, sys, addr_arg, exit_fn, dir, ...)                                  \
	SEC("tracepoint/syscalls/sys_enter_" #name)                                                   \
	int sys_enter_##name(struct trace_event_raw_sys_enter *ctx)                                   \
	{                                                                                             \
		return enter_data(sys, dir, ctx->args[0], ctx->args[1], ctx->args[2], addr_arg);      \
	}                                                                                             \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                    \
	int sys_exit_##name(struct trace_event_raw_sys_exit *ctx)                                     \
	{                                                                                             \
		return exit_fn(sys, ctx->ret, dir, ##__VA_ARGS__);                                    \
	}

/* What a process receives: the compat object stashes the arguments on
 * entry; the default object has only the exit (ingress_exit_conn), and
 * sonde_ebpf::COMPAT_ONLY_TRACEPOINTS lists the enter programs it lacks. */
#ifdef SONDE_COMPAT
#define INGRESS_PROBES(name, sys, addr_arg, exit_fn, ...) \
	DATA_PROBES(name, sys, addr_arg, exit_fn, SONDE_DIR_INGRESS, ##__VA_ARGS__)
#else
#define INGRESS_PROBES(name, sys, addr_arg, exit_fn, ...)                                            \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                                    \
	int sys_exit_##name(struct trace_event_raw_sys_exit *ctx)                                     \
	{                                                                                             \
		return exit_fn(sys, ctx->ret, SONDE_DIR_INGRESS, ##__VA_ARGS__);                      \
	}
#endif

INGRESS_PROBES(read, SONDE_SYS_READ, 0, exit_data, false)
DATA_PROBES(write, SONDE_SYS_WRITE, 0, exit_data, SONDE_DIR_EGRESS, false)
INGRESS_PROBES(recvfrom, SONDE_SYS_RECVFROM, ctx->args[4], exit_data, false)
DATA_PROBES(sendto, SONDE_SYS_SENDTO, ctx->args[4], exit_data, SONDE_DIR_EGRESS, false)
INGRESS_PROBES(readv, SONDE_SYS_READV, 0, exit_data, true)
DATA_PROBES(writev, SONDE_SYS_WRITEV, 0, exit_data, SONDE_DIR_EGRESS, true)
INGRESS_PROBES(recvmsg, SONDE_SYS_RECVMSG, 0, exit_msg)
DATA_PROBES(sendmsg, SONDE_SYS_SENDMSG, 0, exit_msg, SONDE_DIR_EGRESS)
INGRESS_PROBES(recvmmsg, SONDE_SYS_RECVMMSG, 0, exit_mmsg)
DATA_PROBES(sendmmsg, SONDE_SYS_SENDMMSG, 0, exit_mmsg, SONDE_DIR_EGRESS)

/* sendfile(out_fd, in_fd, offset, count): the bytes come from a file, not user
 * memory, so only their size is accounted (userspace sees a gap it can skip). */
SEC("tracepoint/syscalls/sys_enter_sendfile64")
int sys_enter_sendfile64(struct trace_event_raw_sys_enter *ctx)
{
	return enter_data(SONDE_SYS_SENDFILE, SONDE_DIR_EGRESS, ctx->args[0], 0, ctx->args[3], 0);
}

SEC("tracepoint/syscalls/sys_exit_sendfile64")
int sys_exit_sendfile64(struct trace_event_raw_sys_exit *ctx)
{
	struct active_call call;
	if (!unstash(SONDE_SYS_SENDFILE, &call) || ctx->ret <= 0)
		return 0;
	struct conn_state *c = conn_get(call.fd, (struct sock *)call.sk);
	if (!c)
		return 0;
	stat_add(SONDE_STAT_SENDFILE_BYTES, ctx->ret);
	__u32 zero = 0;
	struct copy_state *s = bpf_map_lookup_elem(&sonde_copy, &zero);
	if (!s)
		return 0;
	s->conn = c->id;
	s->ts = call.ts_enter;
	s->position = fetch_add(&c->bytes[SONDE_DIR_EGRESS], ctx->ret);
	s->call_end = s->position + ctx->ret;
	s->direction = SONDE_DIR_EGRESS;
	s->syscall = SONDE_SYS_SENDFILE;
	s->flags = 0;
	emit_tail(s);
	return 0;
}

/* A process is gone: userspace finalizes and forgets its connections. */
SEC("tracepoint/sched/sched_process_exit")
int sched_process_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	/* A thread that dies inside a TLS call must not leave it claiming the
	 * syscalls of a later thread with the same id. */
	if (bpf_map_delete_elem(&sonde_tls_active, &id) == 0)
		tls_calls_add(-1);
	if ((__u32)id != (__u32)(id >> 32))
		return 0; /* a thread, not the process */
	struct sonde_conn_id conn = {.tgid = id >> 32, .fd = -1};
	struct sonde_event_header ev = {};
	fill_header(&ev, SONDE_EV_PROC_EXIT, bpf_ktime_get_ns(), &conn);
	ring_output(&ev, sizeof(ev));
	return 0;
}

/* A new program image: userspace scans it (and the libraries it maps) for TLS
 * libraries to probe. */
SEC("tracepoint/sched/sched_process_exec")
int sched_process_exec(void *ctx)
{
	if (is_self())
		return 0;
	struct sonde_exec_event ev = {
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.timestamp_ns = bpf_ktime_get_ns(),
	};
	if (bpf_ringbuf_output(&sonde_execs, &ev, sizeof(ev), 0))
		stat_add(SONDE_STAT_EXEC_RING_FULL, 1);
	return 0;
}

/* --- TLS library uprobes --- */

static __always_inline int tls_enter(struct pt_regs *ctx, __u64 len_ptr, bool handshake)
{
	if (is_self())
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ssl = PT_REGS_PARM1(ctx);
	struct tls_call *outer = bpf_map_lookup_elem(&sonde_tls_active, &id);
	if (outer && outer->ssl == ssl && bpf_ktime_get_ns() - outer->ts_enter <= TLS_CALL_CLAIM_NS) {
		/* e.g. a wrapper calling SSL_read_ex from SSL_read: the outer call emits. */
		outer->depth++;
		return 0;
	}
	struct tls_call call = {
		.ssl = ssl,
		.buf = handshake ? 0 : PT_REGS_PARM2(ctx),
		.len_ptr = len_ptr,
		.ts_enter = bpf_ktime_get_ns(),
		.fd = -1,
		.handshake = handshake,
	};
	/* Replacing a stale entry of this thread (a missed return) adds none. */
	if (bpf_map_update_elem(&sonde_tls_active, &id, &call, BPF_ANY))
		stat_add(SONDE_STAT_TLS_ACTIVE_MAP_FULL, 1);
	else if (!outer)
		tls_calls_add(1);
	return 0;
}

static __always_inline int tls_exit(struct pt_regs *ctx, __u8 direction, __u8 syscall, bool ex)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_call *active = bpf_map_lookup_elem(&sonde_tls_active, &id);
	if (!active)
		return 0;
	if (active->depth > 0) {
		active->depth--;
		return 0;
	}
	struct tls_call call = *active;
	if (bpf_map_delete_elem(&sonde_tls_active, &id) == 0)
		tls_calls_add(-1);
	if (call.handshake)
		return 0;

	__u64 total;
	long ret = PT_REGS_RC(ctx);
	if (ex) {
		/* int SSL_read_ex(SSL *, void *, size_t, size_t *readbytes): 1 on success. */
		if ((int)ret != 1 || !call.len_ptr)
			return 0;
		__u64 moved = 0;
		if (bpf_probe_read_user(&moved, sizeof(moved), (void *)call.len_ptr)) {
			stat_add(SONDE_STAT_READ_FAILURES, 1);
			return 0;
		}
		total = moved;
	} else {
		/* int SSL_read(SSL *, void *, int): bytes moved, <= 0 on error or retry. */
		int moved = (int)ret;
		if (moved <= 0)
			return 0;
		total = moved;
	}
	if (total == 0)
		return 0;

	int fd = call.fd;
	if (fd < 0) {
		struct tls_ssl_key key = {.ssl = call.ssl, .tgid = id >> 32};
		__s32 *known = bpf_map_lookup_elem(&sonde_tls_fds, &key);
		if (!known) {
			if (fd != TLS_FD_UNTRACED)
				stat_add(SONDE_STAT_TLS_NO_SOCKET, 1);
			return 0;
		}
		fd = *known;
		if (fd == TLS_FD_UNTRACED)
			return 0;
		stat_add(SONDE_STAT_TLS_FD_FALLBACK, 1);
	}
	struct sock *sk = fd_to_inet_sock(fd);
	if (!sk) {
		stat_add(SONDE_STAT_TLS_NO_SOCKET, 1);
		return 0;
	}
	struct conn_state *c = conn_get(fd, sk);
	if (!c)
		return 0;
	__u64 ts = direction == SONDE_DIR_EGRESS ? call.ts_enter : bpf_ktime_get_ns();
	emit_data(c, direction, syscall, ts, call.buf, 0, 0, total, 0, SONDE_DATA_TLS, true);
	return 0;
}

/* int SSL_write(SSL *, const void *buf, int num) and SSL_read(SSL *, void *buf, int num) */
SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx) { return tls_enter(ctx, 0, false); }

SEC("uretprobe")
int ssl_write_exit(struct pt_regs *ctx) { return tls_exit(ctx, SONDE_DIR_EGRESS, SONDE_SYS_SSL_WRITE, false); }

SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx) { return tls_enter(ctx, 0, false); }

SEC("uretprobe")
int ssl_read_exit(struct pt_regs *ctx) { return tls_exit(ctx, SONDE_DIR_INGRESS, SONDE_SYS_SSL_READ, false); }

/* int SSL_write_ex(SSL *, const void *buf, size_t num, size_t *written) and
 * int SSL_read_ex(SSL *, void *buf, size_t num, size_t *readbytes) */
SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx) { return tls_enter(ctx, PT_REGS_PARM4(ctx), false); }

SEC("uretprobe")
int ssl_write_ex_exit(struct pt_regs *ctx) { return tls_exit(ctx, SONDE_DIR_EGRESS, SONDE_SYS_SSL_WRITE, true); }

SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx) { return tls_enter(ctx, PT_REGS_PARM4(ctx), false); }

SEC("uretprobe")
int ssl_read_ex_exit(struct pt_regs *ctx) { return tls_exit(ctx, SONDE_DIR_INGRESS, SONDE_SYS_SSL_READ, true); }

/* int SSL_do_handshake(SSL *): SSL_connect and SSL_accept tail-call it. */
SEC("uprobe")
int ssl_handshake_enter(struct pt_regs *ctx) { return tls_enter(ctx, 0, true); }

SEC("uretprobe")
int ssl_handshake_exit(struct pt_regs *ctx) { return tls_exit(ctx, SONDE_DIR_EGRESS, 0, false); }
