//! Socket syscalls already in flight when the probes attach.
//!
//! A thread blocked in `recvfrom` on a keep-alive connection entered the
//! syscall before the enter program existed, so its exit would find no
//! stashed arguments and its bytes (the next request) would be lost. Right
//! after attaching, the agent reads each thread's current syscall from
//! /proc/PID/task/TID/syscall (the kernel shows the number and arguments of
//! a blocked task) and seeds the kernel's in-flight map for the ones on a
//! socket. The exit program checks a seed against the task's saved
//! registers before using it, so a thread that moved on meanwhile is never
//! attributed another call's bytes. Done once, at start. The default
//! object's exits look for a seed only on threads that have not stashed a
//! call since the probes attached, and only while seeds are left (the
//! `sonde_seeds` counts). It takes seeds only for calls that send: its
//! exits of calls that receive read the arguments from the saved registers
//! themselves, so those need none.

use std::path::Path;

use sonde_ebpf::events::{self, ActiveCall};

/// Threads looked at, at most (a bound on the work at start).
const MAX_TASKS: usize = 200_000;

/// What one thread is blocked in, from its /proc syscall file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockedCall {
    pub tid: u32,
    pub call: ActiveCall,
}

/// The Sonde syscall id of an x86-64 syscall number, for the data syscalls
/// the probes trace.
fn data_syscall(nr: u64) -> Option<u8> {
    Some(match nr {
        0 => events::SYS_READ,
        1 => events::SYS_WRITE,
        19 => events::SYS_READV,
        20 => events::SYS_WRITEV,
        44 => events::SYS_SENDTO,
        45 => events::SYS_RECVFROM,
        46 => events::SYS_SENDMSG,
        47 => events::SYS_RECVMSG,
        299 => events::SYS_RECVMMSG,
        307 => events::SYS_SENDMMSG,
        _ => return None,
    })
}

/// Whether a data syscall (Sonde's id) receives bytes.
pub fn receives(syscall: u8) -> bool {
    matches!(
        syscall,
        events::SYS_READ
            | events::SYS_READV
            | events::SYS_RECVFROM
            | events::SYS_RECVMSG
            | events::SYS_RECVMMSG
    )
}

/// Parses /proc/PID/task/TID/syscall ("NR ARG1 ... ARG6 SP PC" in hex for a
/// blocked task; "running" or "-1 ..." otherwise) into the seed of a data
/// syscall, without checking that its fd is a socket.
pub fn parse_syscall_line(text: &str, now_ns: u64) -> Option<ActiveCall> {
    let mut fields = text.split_ascii_whitespace();
    let nr: u64 = fields.next()?.parse().ok()?;
    let syscall = data_syscall(nr)?;
    let mut args = [0u64; 6];
    for arg in args.iter_mut() {
        *arg = u64::from_str_radix(fields.next()?.strip_prefix("0x")?, 16).ok()?;
    }
    let [fd, buf, count, _, addr, _] = args;
    // sendto/recvfrom carry the peer's address in their fifth argument.
    let addr = if matches!(nr, 44 | 45) { addr } else { 0 };
    Some(ActiveCall {
        ts_enter: now_ns,
        buf,
        count,
        addr,
        sk: 0,
        fd: i32::try_from(fd).ok()?,
        syscall,
        seeded: 1,
        pad: [0; 2],
    })
}

/// Every thread of every process (but `self_tgid`) blocked in a data
/// syscall on a socket, with the key the kernel map uses (pid_tgid).
pub fn blocked_socket_calls(
    proc_root: &Path,
    self_tgid: u32,
    now_ns: u64,
) -> Vec<(u64, ActiveCall)> {
    let mut out = Vec::new();
    let Ok(processes) = std::fs::read_dir(proc_root) else {
        return out;
    };
    let mut tasks = 0usize;
    for process in processes.flatten() {
        let Some(tgid) = process
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if tgid == self_tgid {
            continue;
        }
        let Ok(threads) = std::fs::read_dir(process.path().join("task")) else {
            continue;
        };
        for thread in threads.flatten() {
            tasks += 1;
            if tasks > MAX_TASKS {
                return out;
            }
            let Some(tid) = thread
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(thread.path().join("syscall")) else {
                continue;
            };
            let Some(call) = parse_syscall_line(&text, now_ns) else {
                continue;
            };
            if is_socket(&process.path(), call.fd) {
                out.push(((u64::from(tgid) << 32) | u64::from(tid), call));
            }
        }
    }
    out
}

/// Whether the process's `fd` is a socket (its /proc link reads `socket:[..]`).
fn is_socket(process: &Path, fd: i32) -> bool {
    std::fs::read_link(process.join("fd").join(fd.to_string()))
        .is_ok_and(|target| target.to_string_lossy().starts_with("socket:["))
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn only_reads_and_receives_receive() {
        let receiving: Vec<u64> = [0u64, 1, 19, 20, 44, 45, 46, 47, 299, 307]
            .into_iter()
            .filter(|&nr| data_syscall(nr).is_some_and(receives))
            .collect();
        assert_eq!(receiving, [0, 19, 45, 47, 299]);
    }

    #[test]
    fn syscall_lines_of_data_calls_become_seeds() {
        let line = "45 0x4 0x7f12a000 0x2000 0x0 0x7ffd10 0x7ffd20 0x7ffd00 0x7f0012\n";
        let call = parse_syscall_line(line, 99).unwrap();
        assert_eq!(
            call,
            ActiveCall {
                ts_enter: 99,
                buf: 0x7f12_a000,
                count: 0x2000,
                addr: 0x7f_fd10,
                sk: 0,
                fd: 4,
                syscall: events::SYS_RECVFROM,
                seeded: 1,
                pad: [0; 2],
            }
        );
        let read = parse_syscall_line("0 0x7 0x10 0x40 0x0 0x0 0x0 0x1 0x2", 1).unwrap();
        assert_eq!((read.fd, read.syscall, read.addr), (7, events::SYS_READ, 0));
        // Not blocked, not a data syscall, malformed: no seed.
        assert_eq!(parse_syscall_line("running\n", 1), None);
        assert_eq!(parse_syscall_line("-1 0x7ffd 0x7f00\n", 1), None);
        assert_eq!(
            parse_syscall_line("232 0x5 0x0 0x0 0x0 0x0 0x0 0x1 0x2", 1),
            None
        );
        assert_eq!(parse_syscall_line("0 0x7 0x10", 1), None);
        assert_eq!(parse_syscall_line("0 7 16 64 0 0 0 1 2", 1), None);
    }

    /// This test process's own thread, blocked in a read on a socket, is
    /// found with its fd (and nothing is seeded for the agent itself).
    #[test]
    fn a_thread_blocked_in_a_socket_read_is_found() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 16];
            conn.read(&mut buf).unwrap()
        });
        let mut client = TcpStream::connect(addr).unwrap();
        let me = std::process::id();
        let proc_root = Path::new("/proc");
        let found = loop {
            let calls = blocked_socket_calls(proc_root, 0, 5);
            let mine: Vec<_> = calls
                .into_iter()
                .filter(|(key, _)| key >> 32 == u64::from(me))
                .collect();
            if !mine.is_empty() {
                break mine;
            }
            std::thread::yield_now();
        };
        assert_eq!(found.len(), 1, "{found:?}");
        let (_, call) = found[0];
        assert_eq!(call.count, 16);
        assert!(matches!(
            call.syscall,
            events::SYS_RECVFROM | events::SYS_READ
        ));
        assert!(
            blocked_socket_calls(proc_root, me, 5)
                .iter()
                .all(|(key, _)| key >> 32 != u64::from(me))
        );
        std::io::Write::write_all(&mut client, b"x").unwrap();
        assert_eq!(reader.join().unwrap(), 1);
    }
}
