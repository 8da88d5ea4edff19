//! The web dashboard: static HTML, CSS and JavaScript compiled into the
//! binary, so the agent serves it offline with nothing to install. The
//! page reads everything through the public `POST /api/v1/query` endpoint;
//! this module only serves files.
//!
//! Sources live in `web/dashboard/` (vendored libraries in `vendor/`,
//! refreshed by `update-vendor.sh`). A file added there must be listed in
//! [`ASSETS`]; a unit test fails otherwise.

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Captured traffic (paths, headers, bodies) is shown on the page, so the
/// policy forbids any script but our own files even if some text slipped
/// into the DOM as markup. Inline styles stay allowed: the charting library
/// positions its tooltips with them.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

struct Asset {
    /// Path under `web/dashboard/`, also its URL under `/assets/`.
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/dashboard/", $path)),
        }
    };
}

const INDEX: &str = "index.html";

static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("style.css", CSS),
    asset!("js/api.js", JS),
    asset!("js/charts.js", JS),
    asset!("js/console.js", JS),
    asset!("js/drilldown.js", JS),
    asset!("js/format.js", JS),
    asset!("js/health.js", JS),
    asset!("js/main.js", JS),
    asset!("js/panel.js", JS),
    asset!("js/protocols.js", JS),
    asset!("js/red.js", JS),
    asset!("js/requests.js", JS),
    asset!("js/servicemap.js", JS),
    asset!("js/sql.js", JS),
    asset!("js/table.js", JS),
    asset!("vendor/VERSIONS", TEXT),
    asset!("vendor/echarts/echarts.min.js", JS),
    asset!("vendor/echarts/LICENSE", TEXT),
    asset!("vendor/echarts/LICENSE-d3", TEXT),
    asset!("vendor/echarts/NOTICE", TEXT),
];

/// `/` (the page) and `/assets/*` (everything it loads).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/assets/{*path}", get(asset))
}

async fn index(headers: HeaderMap) -> Response {
    serve(find(INDEX), &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(find(&path), &headers)
}

fn find(path: &str) -> Option<(usize, &'static Asset)> {
    ASSETS.iter().enumerate().find(|(_, a)| a.path == path)
}

fn serve(found: Option<(usize, &'static Asset)>, request: &HeaderMap) -> Response {
    let Some((index, asset)) = found else {
        return (StatusCode::NOT_FOUND, "no such dashboard asset").into_response();
    };
    let etag = &etags()[index];
    // `no-cache` means "revalidate", not "do not store": after an agent
    // upgrade the browser picks up the new files at once, and until then
    // a reload costs a 304 instead of the charting library again.
    let mut response = if not_modified(request, etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.bytes).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    if asset.content_type == HTML {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    response
}

/// Whether `If-None-Match` lists this entity tag (or `*`). Weak tags
/// (`W/"..."`) match too: the comparison for GET is the weak one.
fn not_modified(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// Entity tags by position in [`ASSETS`], hashed on first use: the files
/// are fixed for the life of the binary.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{:016x}\"", fnv1a(a.bytes)))
            .collect()
    })
}

/// FNV-1a, 64 bits: stable across builds and Rust versions (unlike
/// `DefaultHasher`), and ample to tell versions of a file apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::*;

    fn dashboard_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboard")
    }

    fn files_under(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files_under(&path, base, out);
            } else {
                let relative = path.strip_prefix(base).unwrap();
                out.insert(relative.to_str().unwrap().replace('\\', "/"));
            }
        }
    }

    /// Every file of the dashboard sources is served (a file forgotten in
    /// `ASSETS` would be a 404 only a browser notices), and nothing else.
    #[test]
    fn every_dashboard_file_is_embedded() {
        let dir = dashboard_dir();
        let mut on_disk = BTreeSet::new();
        files_under(&dir, &dir, &mut on_disk);
        // Tooling, not part of the page.
        on_disk.remove("update-vendor.sh");
        let embedded: BTreeSet<String> = ASSETS.iter().map(|a| a.path.to_owned()).collect();
        assert_eq!(embedded, on_disk);
    }

    /// The page loads its files by relative `assets/...` URLs; each must exist.
    #[test]
    fn index_references_resolve() {
        let html = std::str::from_utf8(find(INDEX).unwrap().1.bytes).unwrap();
        let mut referenced = 0;
        for part in html.split("\"assets/").skip(1) {
            let path = part.split('"').next().unwrap();
            assert!(
                find(path).is_some(),
                "index.html loads missing assets/{path}"
            );
            referenced += 1;
        }
        assert!(
            referenced >= 3,
            "index.html should load CSS, the library and the app"
        );
    }

    #[test]
    fn etags_differ_between_files() {
        let tags: BTreeSet<&String> = etags().iter().collect();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
