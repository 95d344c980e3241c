//! The web console at `/ui`: a static page (HTML, CSS and plain JavaScript embedded in the
//! binary, no build step) that talks to the same API as every client, with the caller's
//! bearer token; and the console's login (`cairn ui`, see [`login`]).
//!
//! The page itself needs no token: it is the same for everyone and holds no data. It is
//! served with a Content-Security-Policy that allows only this origin's own files (no inline
//! script, no frames), so a tenant's string that reached the page as markup could still not
//! run. Its routes are the console's own and are not in the API document.

mod login;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

/// What the console may load: only its own files, and the API on the same origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The console's routes, mounted at `/ui`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/app.js", get(app_js))
        .route("/tree.js", get(tree_js))
        .route("/style.css", get(style_css))
        .route("/login", post(login::create))
        .route("/session", post(login::exchange))
}

/// One embedded file with the console's headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /ui`: the page.
pub(crate) async fn index() -> Response {
    asset(
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    )
}

/// `GET /ui/app.js`: the page's script.
async fn app_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

/// `GET /ui/tree.js`: the lineage tree (the rules of `cairn snapshot tree`) drawn as SVG.
async fn tree_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/tree.js"),
    )
}

/// `GET /ui/style.css`: the page's style.
async fn style_css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}
