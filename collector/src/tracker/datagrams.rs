//! UDP sockets: every datagram is a whole message with its own peer (no
//! stream to reassemble). DNS is parsed per datagram; anything else is
//! counted as unknown bytes.

use sonde_ebpf::events::DataEventHeader;
use sonde_protocols::{Protocol, detect_datagram};

use super::Context;
use super::connection::{Connection, ip_from};
use crate::sessions::Dir;
use crate::sessions::dns::Peer;

pub(super) fn on_datagram(
    conn: &mut Connection,
    dir: Dir,
    header: &DataEventHeader,
    payload: &[u8],
    ctx: &mut Context,
) {
    let is_dns = detect_datagram(payload).is_some_and(|d| d.protocol == Protocol::Dns);
    let peer = if header.peer.family == 0 {
        Peer {
            addr: conn.fields.remote_addr.clone(),
            port: conn.fields.remote_port,
        }
    } else {
        Peer {
            addr: ip_from(header.peer.family, &header.peer.addr).to_string(),
            port: i64::from(header.peer.port),
        }
    };
    let parsed = is_dns && {
        let datagrams = conn.datagrams.get_or_insert_with(Box::default);
        let mut sink = ctx.sink(&conn.fields);
        datagrams.on_datagram(dir, peer, payload, header.hdr.timestamp_ns, &mut sink)
    };
    if parsed {
        conn.last_protocol = Some(Protocol::Dns);
    } else {
        ctx.counters
            .protocol_unknown_bytes
            .add(payload.len() as u64);
    }
}
