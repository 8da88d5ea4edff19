//! Low-cardinality route templates from raw request paths (`/users/42` →
//! `/users/{id}`), for span names and metric attributes: a metric series per
//! distinct URL would be unbounded.

/// Segments kept before the rest of a path collapses into `/{rest}`.
const MAX_SEGMENTS: usize = 12;
/// Longest segment kept verbatim; longer ones are treated as identifiers.
const MAX_SEGMENT_LEN: usize = 40;

/// A request path (see [`request_path`]: the caller has it for the span
/// too) with identifier-like segments (numbers, UUIDs, hex digests, long
/// tokens mixing letters and digits) replaced by `{id}`.
pub fn route_template(path: &str) -> String {
    if path == "*" {
        return "*".to_string();
    }
    let mut route = String::with_capacity(path.len().min(256));
    for (index, segment) in path.split('/').skip(1).enumerate() {
        if index == MAX_SEGMENTS {
            route.push_str("/{rest}");
            break;
        }
        route.push('/');
        if looks_like_identifier(segment) {
            route.push_str("{id}");
        } else {
            route.push_str(segment);
        }
    }
    if route.is_empty() {
        route.push('/');
    }
    route
}

/// The path of a request target: without query string or fragment, and
/// without the scheme and authority of an absolute-form target.
pub fn request_path(target: &str) -> &str {
    strip_query(strip_origin(target))
}

fn strip_origin(target: &str) -> &str {
    // Origin form, nearly every request: a "://" further on is in the
    // query or the path (`/login?next=http://a/b`), not an origin.
    if target.starts_with('/') {
        return target;
    }
    let Some(scheme_end) = target.find("://") else {
        return target;
    };
    let after = target.get(scheme_end + 3..).unwrap_or("");
    match after.find('/') {
        Some(slash) => after.get(slash..).unwrap_or("/"),
        None => "/",
    }
}

fn strip_query(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

fn looks_like_identifier(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return true;
    }
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    if digits == segment.len() {
        return true;
    }
    if is_uuid(segment) {
        return true;
    }
    let hex = segment.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && segment.len() >= 16 {
        return true;
    }
    // Tokens such as `a1b2c3d4e5`: long, alphanumeric, with digits in them.
    let alnum = segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    alnum && segment.len() >= 16 && digits >= 4
}

fn is_uuid(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let cases = [
            ("/", "/"),
            ("", "/"),
            ("*", "*"),
            ("/users/42", "/users/{id}"),
            ("/users/42/orders/7?x=1", "/users/{id}/orders/{id}"),
            ("/index.html#top", "/index.html"),
            ("/api/v1/items", "/api/v1/items"),
            ("/o/123e4567-e89b-12d3-a456-426614174000", "/o/{id}"),
            ("/blob/0123456789abcdef0123", "/blob/{id}"),
            ("/t/abc123def456ghi789", "/t/{id}"),
            ("/static/app-v2.js", "/static/app-v2.js"),
            ("http://example.com/a/1?q", "/a/{id}"),
            ("http://example.com", "/"),
            ("/login?next=http://example.com/home", "/login"),
            ("/go/http://example.com/x", "/go/http://example.com/x"),
            ("/a//b/", "/a//b/"),
            (
                "/1/2/3/4/5/6/7/8/9/10/11/12/13/14",
                "/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{id}/{rest}",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(template(input), want, "{input}");
        }
    }

    /// The template of a raw request target, as the exporter makes it.
    fn template(target: &str) -> String {
        route_template(request_path(target))
    }

    #[test]
    fn request_paths() {
        let cases = [
            ("/users/42?x=1", "/users/42"),
            ("/a#top", "/a"),
            ("http://example.com/a/1?q", "/a/1"),
            ("http://example.com", "/"),
            ("/login?next=http://example.com/home", "/login"),
            ("*", "*"),
        ];
        for (input, want) in cases {
            assert_eq!(request_path(input), want, "{input}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for input in ["://", "http://", "?", "/é/ü?ß", "/\u{0}/x", "a://b?c"] {
            let _ = template(input);
        }
        assert_eq!(template("/é/ü?ß"), "/é/ü");
    }
}
