//! HTTP/2 through the tracker: the recordings of real stacks in
//! `protocols/tests/data/http2/` replayed as kernel records of the server's
//! side of each connection, checked as `http_events` rows, counters and
//! conn_stats.

use super::*;
use arrow::array::Array;

/// One read of a recording.
struct Read {
    client: bool,
    ts: u64,
    bytes: Vec<u8>,
}

/// The reads of each connection of a recording, in order.
fn load(name: &str) -> Vec<Vec<Read>> {
    let path = format!(
        "{}/../protocols/tests/data/http2/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut conns: BTreeMap<u32, Vec<Read>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let parts: Vec<&str> = line.split(' ').collect();
        if parts[1] == "end" {
            continue;
        }
        let hex = parts[3];
        conns
            .entry(parts[0].parse().unwrap())
            .or_default()
            .push(Read {
                client: parts[1] == "c",
                ts: parts[2].parse().unwrap(),
                bytes: (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
            });
    }
    conns.into_values().collect()
}

/// Feeds `reads` as the server side of connection `id` (client bytes come
/// in, server bytes go out), positions counted from 0 in each direction.
fn replay(t: &mut Tracker, id: ConnId, reads: &[Read]) {
    t.handle_record(&open(id, events::ROLE_SERVER));
    let mut position = [0u64; 2];
    for read in reads {
        let (dir, at) = if read.client {
            (IN, &mut position[0])
        } else {
            (OUT, &mut position[1])
        };
        let end = *at + read.bytes.len() as u64;
        t.handle_record(&data(id, dir, read.ts, *at, &read.bytes, end));
        *at = end;
    }
}

/// The h2-specific view of each pending row: (major_version, method, path,
/// status, req_body_size, resp_body_size, grpc_status, grpc_message,
/// resp_message).
type H2Row = (
    i64,
    String,
    String,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    String,
);

fn h2_rows(t: &Taken) -> Vec<H2Row> {
    let batch = t.batch.as_ref().expect("rows");
    let status = batch
        .column_by_name("grpc_status")
        .unwrap()
        .as_primitive::<Int64Type>();
    let message = batch
        .column_by_name("grpc_message")
        .unwrap()
        .as_string::<i32>();
    (0..t.len())
        .map(|i| {
            (
                t.int("major_version", i),
                t.text("req_method", i),
                t.text("req_path", i),
                t.int("resp_status", i),
                t.int("req_body_size", i),
                t.int("resp_body_size", i),
                status.is_valid(i).then(|| status.value(i)),
                message.is_valid(i).then(|| message.value(i).to_string()),
                t.text("resp_message", i),
            )
        })
        .collect()
}

fn h2(
    method: &str,
    path: &str,
    status: i64,
    req: i64,
    resp: i64,
    grpc: Option<(i64, &str)>,
    end: &str,
) -> H2Row {
    (
        2,
        method.into(),
        path.into(),
        status,
        req,
        resp,
        grpc.map(|g| g.0),
        grpc.map(|g| g.1.to_string()),
        end.into(),
    )
}

#[test]
fn prior_knowledge_streams_become_rows() {
    let (mut t, stats) = tracker();
    let conns = load("curl_nginx.cap");
    for (i, reads) in conns.iter().enumerate() {
        replay(&mut t, conn(20 + i as i32, 1), reads);
    }
    let taken = Taken::of(&mut t, "http_events");
    assert_eq!(
        h2_rows(&taken),
        [
            h2("GET", "/hello.txt", 200, 0, 14, None, ""),
            h2("GET", "/big.bin", 200, 0, 100_000, None, ""),
            h2("GET", "/missing", 404, 0, 153, None, ""),
            h2("POST", "/created", 201, 20_000, 8, None, ""),
        ]
    );
    // The authority leads the request's headers (it is HTTP/1's Host);
    // secrets are redacted as in HTTP/1.
    assert_eq!(
        taken.text("req_headers", 0),
        r#"{":authority":"127.0.0.1:18180",":scheme":"http","accept":"*/*","authorization":"<redacted>","cookie":"<redacted>","user-agent":"curl/7.88.1"}"#
    );
    assert_eq!(taken.text("resp_body", 0), "hello, http/2\n");
    assert_eq!(taken.text("content_type", 0), "text/plain");
    assert_eq!(taken.text("trace_role", 0), "server");
    assert_eq!(taken.int("minor_version", 0), 0);
    // From the client's HEADERS (in its first read) to nginx's last DATA.
    assert_eq!(taken.int("latency", 0), 122_997_830 - 119_693_793);
    assert_eq!(counter(&stats, "http_rows"), 4);
    for id in 0..4 {
        t.handle_record(&close(conn(20 + id, 1)));
    }
    let protocols: Vec<String> = conn_stats(&mut t).into_iter().map(|r| r.0).collect();
    assert_eq!(protocols, ["http2"; 4]);
    assert_eq!(counter(&stats, "http2_parse_failures"), 0);
    assert_eq!(counter(&stats, "http2_resyncs"), 0);
}

#[test]
fn grpc_calls_carry_their_status() {
    let (mut t, stats) = tracker();
    for (name, fd) in [("grpcio.cap", 30), ("grpc_js.cap", 31)] {
        replay(&mut t, conn(fd, 1), &load(name)[0]);
        t.handle_record(&close(conn(fd, 1)));
    }
    let taken = Taken::of(&mut t, "http_events");
    assert_eq!(
        h2_rows(&taken),
        [
            h2("POST", "/demo.Echo/Unary", 200, 15, 15, Some((0, "")), ""),
            h2(
                "POST",
                "/demo.Echo/ServerStream",
                200,
                6,
                85,
                Some((0, "")),
                ""
            ),
            h2(
                "POST",
                "/demo.Echo/ClientStream",
                200,
                615,
                9,
                Some((0, "")),
                ""
            ),
            h2(
                "POST",
                "/demo.Echo/Fail",
                200,
                12,
                0,
                Some((5, "no such item: café 100%")),
                ""
            ),
            // Cancelled by the client after three messages: gRPC's status
            // for a call reset with CANCEL, no message.
            (
                2,
                "POST".into(),
                "/demo.Echo/Endless".into(),
                200,
                5,
                315,
                Some(1),
                None,
                "RST_STREAM CANCEL by client".into()
            ),
            h2("POST", "/demo.Echo/Unary", 200, 18, 18, Some((0, "OK")), ""),
            h2(
                "POST",
                "/demo.Echo/ServerStream",
                200,
                6,
                106,
                Some((0, "OK")),
                ""
            ),
            h2(
                "POST",
                "/demo.Echo/ClientStream",
                200,
                710,
                9,
                Some((0, "OK")),
                ""
            ),
            h2(
                "POST",
                "/demo.Echo/Fail",
                200,
                6,
                0,
                Some((7, "denied: 50% off")),
                ""
            ),
        ]
    );
    // The trailers are in the response headers.
    assert_eq!(
        taken.text("resp_headers", 3),
        r#"{"content-type":"application/grpc","grpc-message":"no such item: caf%C3%A9 100%25","grpc-status":"5"}"#
    );
    assert_eq!(taken.text("content_type", 0), "application/grpc");
    assert_eq!(counter(&stats, "http2_streams_reset"), 1);
    assert_eq!(counter(&stats, "http_rows"), 9);
}

#[test]
fn upgrade_to_h2c_hands_the_connection_over() {
    let (mut t, stats) = tracker();
    let id = conn(40, 1);
    replay(&mut t, id, &load("curl_upgrade_apache.cap")[0]);
    let taken = Taken::of(&mut t, "http_events");
    // One row: the upgraded request with its HTTP/2 response (no row for
    // the 101, whose request it is).
    assert_eq!(
        h2_rows(&taken),
        [h2("GET", "/hello.txt", 200, 0, 14, None, "")]
    );
    assert_eq!(taken.text("resp_body", 0), "hello, http/2\n");
    let headers = taken.text("req_headers", 0);
    assert!(
        headers.starts_with(r#"{":authority":"127.0.0.1:18182",":scheme":"http","#)
            && headers.contains(r#""upgrade":"h2c""#),
        "{headers}"
    );
    t.handle_record(&close(id));
    assert_eq!(conn_stats(&mut t)[0].0, "http2");
    assert_eq!(counter(&stats, "protocol_unknown_bytes"), 0);
    assert_eq!(counter(&stats, "http2_parse_failures"), 0);
}

#[test]
fn a_connection_joined_mid_way_is_followed() {
    let (mut t, stats) = tracker();
    let reads = load("h2load_nginx.cap").remove(0);
    // Join at the client's second write: 20 requests (streams 41..79) whose
    // headers refer to dynamic table entries of the first 20.
    let at = reads
        .iter()
        .enumerate()
        .filter(|(_, r)| r.client)
        .nth(1)
        .map(|(i, _)| i)
        .unwrap();
    replay(&mut t, conn(50, 1), &reads[at..]);
    t.handle_record(&close(conn(50, 1)));
    let taken = Taken::of(&mut t, "http_events");
    // Streams 41..79: the method and the path are literal or static; the
    // authority, user-agent and x-load were indexed before the join: they
    // are marked undecoded (3 per request), not guessed.
    assert_eq!(
        h2_rows(&taken),
        vec![h2("GET", "/hello.txt", 200, 0, 14, None, ""); 20]
    );
    for i in 0..20 {
        assert_eq!(
            taken.text("req_headers", i),
            r#"{":scheme":"http","<undecoded>":"3"}"#
        );
        assert_eq!(taken.text("trace_role", i), "server");
    }
    assert_eq!(counter(&stats, "http2_hpack_unknown_fields"), 60);
    assert_eq!(counter(&stats, "http2_parse_failures"), 0);
}

#[test]
fn reads_split_anywhere_give_the_same_rows() {
    let reads = load("grpcio.cap").remove(0);
    let whole = {
        let (mut t, _) = tracker();
        replay(&mut t, conn(60, 1), &reads);
        t.handle_record(&close(conn(60, 1)));
        h2_rows(&Taken::of(&mut t, "http_events"))
    };
    for piece in [1, 7, 100] {
        let split: Vec<Read> = reads
            .iter()
            .flat_map(|r| {
                r.bytes.chunks(piece).map(|bytes| Read {
                    client: r.client,
                    ts: r.ts,
                    bytes: bytes.to_vec(),
                })
            })
            .collect();
        let (mut t, stats) = tracker();
        replay(&mut t, conn(61, 1), &split);
        t.handle_record(&close(conn(61, 1)));
        assert_eq!(h2_rows(&Taken::of(&mut t, "http_events")), whole, "{piece}");
        assert_eq!(counter(&stats, "http2_parse_failures"), 0);
    }
    assert_eq!(whole.len(), 5);
}
