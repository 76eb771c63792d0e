//! Requests against the router without a socket (tower's `oneshot`), and the example
//! models. Each test file declares `mod common;`; not every file uses every helper.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use nnc_serve::Config;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tower::ServiceExt;

/// The address the routers under test believe they serve.
pub fn addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7878))
}

/// The text of `examples/models/<file>`.
pub fn example(file: &str) -> String {
    let path = repo().join("examples/models").join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A multi-threaded runtime, as the server runs on (the panes need its blocking pool).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A reply: status, content type and body text.
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub body: String,
}

impl Reply {
    /// The body as JSON; panics (failing the test) when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `text` field of a pane.
    pub fn text(&self) -> String {
        self.json()["text"].as_str().unwrap_or_default().to_string()
    }
}

/// One request to a fresh router for `config`.
pub async fn send(
    config: &Config,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
    host: Option<&str>,
) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(t) = content_type {
        request = request.header(header::CONTENT_TYPE, t);
    }
    if let Some(h) = host {
        request = request.header(header::HOST, h);
    }
    let request = request.body(Body::from(body)).expect("a request");
    let response = nnc_serve::router(config.clone(), addr())
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .expect("a body");
    Reply {
        status,
        content_type,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// POSTs JSON to a pane.
pub async fn post(config: &Config, path: &str, json: serde_json::Value) -> Reply {
    send(
        config,
        "POST",
        path,
        Some("application/json"),
        json.to_string().into_bytes(),
        Some("127.0.0.1:7878"),
    )
    .await
}
