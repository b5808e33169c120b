//! The web console: static HTML, CSS and ES modules from `host/console/`,
//! served at `/` and `/console/…` with a strict Content-Security-Policy.
//!
//! Release builds embed the files; debug builds read them from the source
//! folder, so editing a page needs no rebuild. `KILN_CONSOLE_DIR` serves them
//! from another folder at run time (for working on the console in a checkout
//! other than the one the binary was built from).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use super::AppState;

#[derive(rust_embed::Embed)]
#[folder = "console/"]
struct Embedded;

/// No inline script or style, nothing from elsewhere, never in a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/console/{*path}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

/// The folder named by `KILN_CONSOLE_DIR`, read once.
fn override_dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os("KILN_CONSOLE_DIR").filter(|d| !d.is_empty()).map(PathBuf::from)).as_ref()
}

/// A path made of plain segments: no `..`, no hidden files, no backslashes.
fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= 256
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

fn load(path: &str) -> Option<Cow<'static, [u8]>> {
    match override_dir() {
        Some(dir) => std::fs::read(dir.join(path)).ok().map(Cow::Owned),
        None => Embedded::get(path).map(|f| f.data),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// Headers every console response carries, the 404 too.
fn guarded(status: StatusCode, mut headers: HeaderMap, body: Vec<u8>) -> Response {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (status, headers, body).into_response()
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(data) = safe_path(path).then(|| load(path)).flatten() else {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
        return guarded(StatusCode::NOT_FOUND, headers, format!("no console file `{path}`\n").into_bytes());
    };
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(&data)[..16]));
    let mut headers = HeaderMap::new();
    headers.insert(header::ETAG, HeaderValue::from_str(&etag).expect("hex is a valid header"));
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if unchanged {
        return guarded(StatusCode::NOT_MODIFIED, headers, Vec::new());
    }
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    guarded(StatusCode::OK, headers, data.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_are_served() {
        for good in ["index.html", "app.js", "views/jobs.js", "a-b_c.v2.css"] {
            assert!(safe_path(good), "{good}");
        }
        for bad in ["", "../Cargo.toml", "a/../../b", ".hidden", "a//b", "a\\b", "/etc/passwd", "a/./b", "%2e%2e/x"] {
            assert!(!safe_path(bad), "{bad}");
        }
    }

    #[test]
    fn the_index_is_embedded_and_typed() {
        let got = serve("index.html", &HeaderMap::new());
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(got.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(got.headers()[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));
        let etag = got.headers()[header::ETAG].clone();
        let mut again = HeaderMap::new();
        again.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve("index.html", &again).status(), StatusCode::NOT_MODIFIED);
        assert_eq!(serve("missing.js", &HeaderMap::new()).status(), StatusCode::NOT_FOUND);
    }
}
