//! Kernel timestamps are CLOCK_MONOTONIC (bpf_ktime_get_ns); rows carry wall time.

/// Converts monotonic nanoseconds to Unix epoch nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset_ns: i128,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; both clocks exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

impl Clock {
    /// Samples the offset now (call again periodically to follow clock steps).
    pub fn sample() -> Self {
        let mono = now_ns(libc::CLOCK_MONOTONIC);
        let real = now_ns(libc::CLOCK_REALTIME);
        Self {
            offset_ns: real - mono,
        }
    }

    pub fn monotonic_now() -> u64 {
        u64::try_from(now_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
    }

    pub fn to_unix_ns(self, monotonic_ns: u64) -> i64 {
        i64::try_from(i128::from(monotonic_ns) + self.offset_ns).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_current_wall_time() {
        let clock = Clock::sample();
        let wall = clock.to_unix_ns(Clock::monotonic_now());
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        assert!(
            (wall - system).abs() < 50_000_000,
            "wall {wall} vs system {system}"
        );
    }
}
