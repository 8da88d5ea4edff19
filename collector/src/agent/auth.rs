//! Bearer-token protection of the API. Required when the agent listens beyond
//! loopback (the API serves captured traffic); probes stay open because the
//! kubelet's liveness and readiness checks carry no token.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

/// Paths answered without a token: probes, and the dashboard's static files
/// (no captured data; the page asks for the token before it queries).
const OPEN_PATHS: &[&str] = &["/healthz", "/readyz", "/"];
const OPEN_PREFIXES: &[&str] = &["/assets/"];

/// Reads the token (surrounding whitespace trimmed) and checks it is usable.
pub fn load_token(path: &Path) -> anyhow::Result<String> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the API token file {}", path.display()))?;
    let token = token.trim().to_string();
    if token.len() < 16 {
        bail!(
            "the API token in {} is shorter than 16 characters",
            path.display()
        );
    }
    Ok(token)
}

/// Refuses to expose the API beyond loopback without a token.
pub fn check_exposure(listen: SocketAddr, token: Option<&str>) -> anyhow::Result<()> {
    check_exposure_of("--listen", listen, token)
}

/// Refuses to expose an endpoint (`flag`, the option that sets it) beyond
/// loopback without a token: each serves captured traffic.
pub fn check_exposure_of(
    flag: &str,
    listen: SocketAddr,
    token: Option<&str>,
) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() && token.is_none() {
        bail!(
            "{flag} {listen} is reachable from other hosts and serves captured traffic: \
             set --auth-token-file (env SONDE_AUTH_TOKEN_FILE) to require a bearer token"
        );
    }
    Ok(())
}

pub fn require_token(router: Router, token: String) -> Router {
    router.layer(middleware::from_fn_with_state(
        Arc::new(token),
        check_request,
    ))
}

async fn check_request(State(token): State<Arc<String>>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if OPEN_PATHS.contains(&path) || OPEN_PREFIXES.iter().any(|prefix| path.starts_with(prefix)) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.as_bytes())) => {
            next.run(request).await
        }
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({"error": "missing or wrong bearer token"})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    const TOKEN: &str = "0123456789abcdef-secret";

    fn app() -> Router {
        let router = Router::new()
            .route("/api", get(|| async { "data" }))
            .route("/api/v1/query", get(|| async { "data" }))
            .route("/healthz", get(|| async { "ok" }))
            .route("/", get(|| async { "page" }))
            .route("/assets/{file}", get(|| async { "js" }));
        require_token(router, TOKEN.to_string())
    }

    async fn status(auth: Option<&str>, path: &str) -> StatusCode {
        let mut request = Request::builder().uri(path);
        if let Some(auth) = auth {
            request = request.header(header::AUTHORIZATION, auth);
        }
        app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn requests_need_the_right_token() {
        assert_eq!(status(None, "/api").await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(Some("Bearer wrong"), "/api").await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(status(Some(TOKEN), "/api").await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(Some(&format!("Bearer {TOKEN}")), "/api").await,
            StatusCode::OK
        );
        assert_eq!(status(None, "/healthz").await, StatusCode::OK);
        assert_eq!(status(None, "/").await, StatusCode::OK);
        assert_eq!(status(None, "/assets/app.js").await, StatusCode::OK);
        assert_eq!(
            status(None, "/api/v1/query").await,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn exposure_beyond_loopback_needs_a_token() {
        assert!(check_exposure("127.0.0.1:9700".parse().unwrap(), None).is_ok());
        assert!(check_exposure("[::1]:9700".parse().unwrap(), None).is_ok());
        let err = check_exposure("0.0.0.0:9700".parse().unwrap(), None).unwrap_err();
        assert!(err.to_string().contains("--auth-token-file"), "{err}");
        let err =
            check_exposure_of("--pg-listen", "0.0.0.0:9701".parse().unwrap(), None).unwrap_err();
        assert!(
            err.to_string().starts_with("--pg-listen 0.0.0.0:9701"),
            "{err}"
        );
        assert!(check_exposure("0.0.0.0:9700".parse().unwrap(), Some("t")).is_ok());
    }

    #[test]
    fn short_or_missing_token_files_are_errors() {
        let dir = std::env::temp_dir().join(format!("sonde-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token");
        std::fs::write(&path, "short\n").unwrap();
        assert!(
            load_token(&path)
                .unwrap_err()
                .to_string()
                .contains("shorter than 16")
        );
        std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
        assert_eq!(load_token(&path).unwrap(), TOKEN);
        assert!(load_token(&dir.join("missing")).is_err());
    }
}
