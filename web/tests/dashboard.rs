//! The dashboard's files as the router serves them. What the page does
//! with them is tested in a real browser: tests/browser/.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use http_body_util::BodyExt;
use sonde_query::{QueryEngine, StatsRegistry, StoreConfig, TableStore};
use sonde_web::{AppState, router};
use tower::ServiceExt;

fn state() -> AppState {
    let stats = Arc::new(StatsRegistry::new());
    let store = Arc::new(TableStore::new(StoreConfig::default(), Arc::clone(&stats)));
    AppState {
        engine: Arc::new(QueryEngine::new(store)),
        stats,
        ready: Arc::new(AtomicBool::new(true)),
        degraded: Default::default(),
        extra_metrics: Vec::new(),
    }
}

async fn get(uri: &str) -> Response {
    router(state())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn text(response: Response) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn header_of(response: &Response, name: header::HeaderName) -> &str {
    response.headers()[name].to_str().unwrap()
}

#[tokio::test]
async fn root_serves_the_page() {
    let response = get("/").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        header_of(&response, header::CONTENT_TYPE),
        "text/html; charset=utf-8"
    );
    let csp = header_of(&response, header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = text(response).await;
    assert!(html.contains("<title>Sonde"), "{html}");
    assert!(html.contains("assets/js/main.js"));
}

#[tokio::test]
async fn assets_have_their_content_types() {
    for (uri, content_type, needle) in [
        (
            "/assets/js/main.js",
            "text/javascript; charset=utf-8",
            "import",
        ),
        (
            "/assets/vendor/echarts/echarts.min.js",
            "text/javascript; charset=utf-8",
            "echarts",
        ),
        ("/assets/style.css", "text/css; charset=utf-8", "--bg"),
        (
            "/assets/vendor/echarts/LICENSE",
            "text/plain; charset=utf-8",
            "Apache License",
        ),
    ] {
        let response = get(uri).await;
        assert_eq!(response.status(), StatusCode::OK, "{uri}");
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            content_type,
            "{uri}"
        );
        assert_eq!(
            header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
            "nosniff"
        );
        assert!(text(response).await.contains(needle), "{uri}");
    }
}

#[tokio::test]
async fn unknown_asset_is_404_and_paths_do_not_escape() {
    for uri in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/%2e%2e/src/lib.rs",
        "/assets/update-vendor.sh",
    ] {
        assert_eq!(get(uri).await.status(), StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn revalidation_answers_304() {
    let first = get("/assets/vendor/echarts/echarts.min.js").await;
    assert_eq!(header_of(&first, header::CACHE_CONTROL), "no-cache");
    let etag = header_of(&first, header::ETAG).to_owned();
    let again = router(state())
        .oneshot(
            Request::get("/assets/vendor/echarts/echarts.min.js")
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header_of(&again, header::ETAG), etag);
    assert!(text(again).await.is_empty());
}

/// The dashboard must not take over the API's paths.
#[tokio::test]
async fn api_routes_are_unchanged() {
    assert_eq!(get("/healthz").await.status(), StatusCode::OK);
    assert_eq!(get("/readyz").await.status(), StatusCode::OK);
    assert_eq!(
        get("/api/v1/query").await.status(),
        StatusCode::METHOD_NOT_ALLOWED
    );
}
