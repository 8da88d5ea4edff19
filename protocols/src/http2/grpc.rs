//! gRPC over HTTP/2: the call's method from the path, its status from the
//! trailers, and the length-prefixed message framing of its bodies
//! (1 flag byte, 4-byte big-endian length, the message), read from the DATA
//! bytes that were captured without buffering any message.

/// What gRPC adds to a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrpcCall {
    /// `package.Service` of a `/package.Service/Method` path ("" if the
    /// path has another shape).
    pub service: String,
    /// `Method` of the path ("" if the path has another shape).
    pub method: String,
    /// `grpc-status` from the trailers (or a trailers-only response); None
    /// when absent or not a number.
    pub status: Option<u32>,
    /// `grpc-message`, percent-decoded; None when absent.
    pub message: Option<String>,
    pub request_messages: GrpcMessages,
    pub response_messages: GrpcMessages,
}

/// Messages in one direction of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GrpcMessages {
    /// Messages whose 5-byte prefix was read.
    pub count: u64,
    /// Sum of their declared lengths (prefixes excluded).
    pub bytes: u64,
    /// How many were flagged compressed.
    pub compressed: u64,
    /// Every prefix was read and the body ended on a message boundary:
    /// `count` and `bytes` are exact. False when a prefix fell in bytes that
    /// were not captured (the counts are then lower bounds).
    pub exact: bool,
}

/// Reads the message framing of one direction of one call.
#[derive(Debug, Clone, Default)]
pub(super) struct GrpcScanner {
    messages: GrpcMessages,
    /// Bytes of the current message still to come, or (when 0) the prefix
    /// bytes read so far.
    remaining: u64,
    prefix: [u8; 5],
    prefix_len: usize,
    lost: bool,
}

impl GrpcScanner {
    /// Captured body bytes, in order.
    pub(super) fn feed(&mut self, mut bytes: &[u8]) {
        while !self.lost && !bytes.is_empty() {
            if self.remaining > 0 {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                bytes = bytes.get(n..).unwrap_or_default();
                continue;
            }
            let n = bytes.len().min(5 - self.prefix_len);
            if let (Some(dst), Some(src)) = (
                self.prefix.get_mut(self.prefix_len..self.prefix_len + n),
                bytes.get(..n),
            ) {
                dst.copy_from_slice(src);
            }
            self.prefix_len += n;
            bytes = bytes.get(n..).unwrap_or_default();
            if self.prefix_len == 5 {
                let [flag, a, b, c, d] = self.prefix;
                let len = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.messages.count += 1;
                self.messages.bytes += len;
                self.messages.compressed += u64::from(flag & 1);
                self.remaining = len;
                self.prefix_len = 0;
            }
        }
    }

    /// `n` body bytes that were not captured. Harmless inside a message;
    /// over a prefix the framing is lost for the rest of the body.
    pub(super) fn skip(&mut self, n: u64) {
        if n == 0 || self.lost {
            return;
        }
        if self.prefix_len == 0 && n <= self.remaining {
            self.remaining -= n;
        } else {
            self.lost = true;
        }
    }

    /// The counts at the end of the body (`ended`: the sender ended its
    /// side; otherwise the body may go on and the counts are not exact).
    pub(super) fn finish(&self, ended: bool) -> GrpcMessages {
        GrpcMessages {
            exact: ended && !self.lost && self.remaining == 0 && self.prefix_len == 0,
            ..self.messages
        }
    }
}

/// A content type of gRPC (`application/grpc`, `application/grpc+proto`,
/// `application/grpc-web...`).
pub(super) fn is_grpc_content_type(value: &str) -> bool {
    value
        .get(..16)
        .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
}

/// `("package.Service", "Method")` of `/package.Service/Method`.
pub(super) fn split_path(path: &str) -> (String, String) {
    let Some(rest) = path.strip_prefix('/') else {
        return (String::new(), String::new());
    };
    match rest.split_once('/') {
        Some((service, method)) if !service.is_empty() && !method.contains('/') => {
            (service.into(), method.into())
        }
        _ => (String::new(), String::new()),
    }
}

/// `grpc-status`: a decimal number.
pub(super) fn parse_status(value: &str) -> Option<u32> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// `grpc-message` is percent-encoded UTF-8; a malformed escape is kept as
/// it is (as the gRPC spec asks).
pub(super) fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |at: usize| bytes.get(at).and_then(|&h| char::from(h).to_digit(16));
        match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(flag: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![flag];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn framing_across_any_split() {
        let mut body = message(0, b"hello");
        body.extend(message(1, &[7; 300]));
        body.extend(message(0, b""));
        for split in 0..=body.len() {
            let mut s = GrpcScanner::default();
            let (a, b) = body.split_at(split);
            s.feed(a);
            s.feed(b);
            assert_eq!(
                s.finish(true),
                GrpcMessages {
                    count: 3,
                    bytes: 305,
                    compressed: 1,
                    exact: true
                },
                "split {split}"
            );
        }
    }

    #[test]
    fn uncaptured_bytes() {
        // Lost bytes inside a message body keep the count exact.
        let mut s = GrpcScanner::default();
        s.feed(&[0, 0, 0, 0, 10, 1, 2]);
        s.skip(8);
        s.feed(&message(0, b"x"));
        assert_eq!(s.finish(true).count, 2);
        assert!(s.finish(true).exact);
        assert!(!s.finish(false).exact);
        // Over a prefix: counting stops.
        s.skip(3);
        s.feed(&message(0, b"y"));
        assert_eq!(
            s.finish(true),
            GrpcMessages {
                count: 2,
                bytes: 11,
                compressed: 0,
                exact: false
            }
        );
        // A body that ends inside a message is not exact.
        let mut s = GrpcScanner::default();
        s.feed(&[0, 0, 0, 0, 10, 1]);
        assert!(!s.finish(true).exact);
    }

    #[test]
    fn headers() {
        assert!(is_grpc_content_type("application/grpc"));
        assert!(is_grpc_content_type("Application/GRPC+proto"));
        assert!(!is_grpc_content_type("application/json"));
        assert!(!is_grpc_content_type("application/grp"));
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            ("helloworld.Greeter".into(), "SayHello".into())
        );
        assert_eq!(split_path("/a/b/c"), (String::new(), String::new()));
        assert_eq!(split_path("//m"), (String::new(), String::new()));
        assert_eq!(parse_status("14"), Some(14));
        assert_eq!(parse_status("-1"), None);
        assert_eq!(parse_status(""), None);
        assert_eq!(percent_decode("caf%C3%A9 50%25 %zz%4"), "café 50% %zz%4");
    }
}
