//! The name of the node this process serves, stamped on the rows of the
//! agent's own tables (`capture_stats`, `probe_status`) so that a query over
//! every node can tell them apart.
//!
//! It is one value per process, set once by the agent at start (from
//! `--node-name`, else the host name) before any row is built; rows built
//! before that, or in a process that is not an agent, carry a null `node`.

use std::sync::OnceLock;

static LOCAL_NODE: OnceLock<String> = OnceLock::new();

/// Sets this process's node name. The first call wins: `Err` with the name
/// already set when it differs from `name`.
pub fn set_local(name: &str) -> Result<(), String> {
    let set = LOCAL_NODE.get_or_init(|| name.to_owned());
    if set == name {
        Ok(())
    } else {
        Err(set.clone())
    }
}

/// This process's node name, once set.
pub fn local() -> Option<&'static str> {
    LOCAL_NODE.get().map(String::as_str)
}

/// The host name (`uname -n`), the default node name outside Kubernetes.
pub fn host_name() -> Option<String> {
    let mut name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    name.truncate(name.trim_end().len());
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_name_wins_and_host_name_is_known() {
        assert_eq!(set_local("n1"), Ok(()));
        assert_eq!(set_local("n1"), Ok(()));
        assert_eq!(set_local("n2"), Err("n1".to_owned()));
        assert_eq!(local(), Some("n1"));
        let host = host_name().expect("this machine has a host name");
        assert!(!host.is_empty() && !host.ends_with('\n'), "{host:?}");
    }
}
