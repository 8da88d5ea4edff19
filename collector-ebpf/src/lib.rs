//! Sonde's kernel side: the compiled BPF object and the Rust mirrors of the
//! events it sends (see `bpf/sonde_events.h`, the one definition of the layouts).

pub mod events;

/// A compiled BPF object (ELF) from `OUT_DIR`, aligned as aya's object parser requires.
macro_rules! bpf_object {
    ($file:literal) => {{
        #[repr(C, align(32))]
        struct Aligned<T: ?Sized>(T);
        static ALIGNED: &Aligned<[u8]> =
            &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/", $file)));
        &ALIGNED.0
    }};
}

/// The BPF object for kernels with `bpf_loop` (Linux 5.17) and atomic
/// fetch-and-add (5.12).
pub static BPF_OBJECT: &[u8] = bpf_object!("sonde.bpf.o");

/// The same programs and maps for older kernels (5.8 to 5.16), built with
/// `-DSONDE_COMPAT`: a bounded copy loop instead of `bpf_loop`, and stream
/// positions read then added to instead of atomic fetch-and-add.
pub static BPF_OBJECT_COMPAT: &[u8] = bpf_object!("sonde-compat.bpf.o");

/// Names of the maps and globals in the object, shared by loader and tests.
pub mod names {
    pub const EVENTS_MAP: &str = "sonde_events";
    pub const CONNS_MAP: &str = "sonde_conns";
    pub const UNCOPIED_MAP: &str = "sonde_uncopied";
    pub const UNCOPIED_EPOCH_MAP: &str = "sonde_uncopied_epoch";
    pub const ACTIVE_MAP: &str = "sonde_active";
    pub const SEEDS_MAP: &str = "sonde_seeds";
    pub const STATS_MAP: &str = "sonde_stats";
    pub const SELF_TGID: &str = "sonde_self_tgid";
    pub const MAX_BYTES_PER_CALL: &str = "sonde_max_bytes_per_call";
    pub const WAKEUP_BYTES: &str = "sonde_wakeup_bytes";
    pub const EXECS_MAP: &str = "sonde_execs";
}

/// The SSL BIO's write method (`bwrite` of the table `BIO_f_ssl()` returns).
pub const BIO_SSL_WRITE: &str = "BIO_f_ssl.bwrite";
/// The SSL BIO's read method (`bread` of the table `BIO_f_ssl()` returns).
pub const BIO_SSL_READ: &str = "BIO_f_ssl.bread";

/// The TLS library uprobes: (entry program, return program, function). Each is
/// attached to every OpenSSL library or binary that defines the function.
/// SSL_do_handshake carries no plaintext: its socket syscalls tie the SSL
/// object to its socket (and its ciphertext is not traced).
///
/// The SSL BIO (`BIO_f_ssl`, used by e.g. `openssl s_server -www` and
/// `BIO_new_ssl_connect` clients) moves its plaintext through libssl's
/// internal read/write functions, never through `SSL_read*`/`SSL_write*`:
/// its two methods are probed too. They are static functions, found through
/// the method table, and have the `_ex` signatures with a `BIO *` in place
/// of the `SSL *`, so the `_ex` programs serve them (keyed by the BIO).
pub const TLS_UPROBES: &[(&str, &str, &str)] = &[
    ("ssl_write_enter", "ssl_write_exit", "SSL_write"),
    ("ssl_read_enter", "ssl_read_exit", "SSL_read"),
    ("ssl_write_ex_enter", "ssl_write_ex_exit", "SSL_write_ex"),
    ("ssl_read_ex_enter", "ssl_read_ex_exit", "SSL_read_ex"),
    (
        "ssl_handshake_enter",
        "ssl_handshake_exit",
        "SSL_do_handshake",
    ),
    ("ssl_write_ex_enter", "ssl_write_ex_exit", BIO_SSL_WRITE),
    ("ssl_read_ex_enter", "ssl_read_ex_exit", BIO_SSL_READ),
];

/// The enter programs of the calls that receive, which only the compat
/// object has: the default object's exits read those calls' arguments from
/// the registers the syscall saved (`ingress_exit_conn` in `sonde.bpf.c`).
pub const COMPAT_ONLY_TRACEPOINTS: &[&str] = &[
    "sys_enter_read",
    "sys_enter_recvfrom",
    "sys_enter_readv",
    "sys_enter_recvmsg",
    "sys_enter_recvmmsg",
];

/// Every tracepoint program in the compat object: (program name, category,
/// tracepoint). The default object has all but [`COMPAT_ONLY_TRACEPOINTS`].
/// The program name is the C function name.
pub const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sys_enter_connect", "syscalls", "sys_enter_connect"),
    ("sys_exit_connect", "syscalls", "sys_exit_connect"),
    ("sys_enter_accept", "syscalls", "sys_enter_accept"),
    ("sys_exit_accept", "syscalls", "sys_exit_accept"),
    ("sys_enter_accept4", "syscalls", "sys_enter_accept4"),
    ("sys_exit_accept4", "syscalls", "sys_exit_accept4"),
    ("sys_enter_close", "syscalls", "sys_enter_close"),
    ("sys_exit_close", "syscalls", "sys_exit_close"),
    ("sys_enter_read", "syscalls", "sys_enter_read"),
    ("sys_exit_read", "syscalls", "sys_exit_read"),
    ("sys_enter_write", "syscalls", "sys_enter_write"),
    ("sys_exit_write", "syscalls", "sys_exit_write"),
    ("sys_enter_recvfrom", "syscalls", "sys_enter_recvfrom"),
    ("sys_exit_recvfrom", "syscalls", "sys_exit_recvfrom"),
    ("sys_enter_sendto", "syscalls", "sys_enter_sendto"),
    ("sys_exit_sendto", "syscalls", "sys_exit_sendto"),
    ("sys_enter_readv", "syscalls", "sys_enter_readv"),
    ("sys_exit_readv", "syscalls", "sys_exit_readv"),
    ("sys_enter_writev", "syscalls", "sys_enter_writev"),
    ("sys_exit_writev", "syscalls", "sys_exit_writev"),
    ("sys_enter_recvmsg", "syscalls", "sys_enter_recvmsg"),
    ("sys_exit_recvmsg", "syscalls", "sys_exit_recvmsg"),
    ("sys_enter_sendmsg", "syscalls", "sys_enter_sendmsg"),
    ("sys_exit_sendmsg", "syscalls", "sys_exit_sendmsg"),
    ("sys_enter_recvmmsg", "syscalls", "sys_enter_recvmmsg"),
    ("sys_exit_recvmmsg", "syscalls", "sys_exit_recvmmsg"),
    ("sys_enter_sendmmsg", "syscalls", "sys_enter_sendmmsg"),
    ("sys_exit_sendmmsg", "syscalls", "sys_exit_sendmmsg"),
    ("sys_enter_sendfile64", "syscalls", "sys_enter_sendfile64"),
    ("sys_exit_sendfile64", "syscalls", "sys_exit_sendfile64"),
    ("sched_process_exit", "sched", "sched_process_exit"),
    ("sched_process_exec", "sched", "sched_process_exec"),
];
