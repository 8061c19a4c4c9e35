//! Security headers on every response (issue 12 item 6).
//!
//! The page is static and loads nothing from elsewhere, so the policy can
//! be strict: scripts, styles and images from this origin only (no inline
//! script or style, no `eval`), WebSocket connections to any host (the
//! gate hands out connector addresses at run time; which gate the page may
//! use is checked by the page against `/gates.json`), never framed
//! (clickjacking), no MIME sniffing, no referrer (the URL may carry
//! `?gate=`).

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use tower_http::set_header::SetResponseHeaderLayer;

/// The Content-Security-Policy of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Every header set on every response, with its value.
pub const HEADERS: [(HeaderName, &str); 5] = [
    (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    // For browsers without CSP frame-ancestors.
    (header::X_FRAME_OPTIONS, "DENY"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
];

/// `router` with [`HEADERS`] set on every response it gives, 404s and
/// errors included (a layer per header, overriding any value a handler set).
pub fn apply(mut router: Router) -> Router {
    for (name, value) in HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}
