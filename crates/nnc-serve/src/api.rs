//! The router: the page's assets, the panes' endpoints, the uploaded inputs, the
//! edited file; and the rules every request goes through (host check, body limits,
//! the time budget, panics turned into 500s).

use crate::panes::{self, Pane, PaneRequest};
use crate::{Config, SOURCE_BODY_LIMIT, UPLOAD_BODY_LIMIT, assets, file};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) config: Arc<Config>,
    /// The program's name in diagnostics and generated code.
    file_name: Arc<str>,
    /// One permit per compile allowed to run at once.
    permits: Arc<Semaphore>,
    /// The last `.npz` file of inputs uploaded, kept on disk for the runtime's reader.
    uploaded: Arc<Mutex<Option<Arc<tempfile::TempPath>>>>,
    /// The address served, for the host check.
    addr: SocketAddr,
}

/// The server's routes for `config`, serving at `addr` (which the `Host` header of a
/// request must name, or `localhost`).
pub fn router(config: Config, addr: SocketAddr) -> Router {
    let state = AppState {
        file_name: config.file_name().into(),
        permits: Arc::new(Semaphore::new(config.workers.max(1))),
        config: Arc::new(config),
        uploaded: Arc::new(Mutex::new(None)),
        addr,
    };
    let source_limit = || DefaultBodyLimit::max(SOURCE_BODY_LIMIT);
    Router::new()
        .route("/", get(assets::index))
        .route("/app.js", get(assets::script))
        .route("/style.css", get(assets::style))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/check", post(check).layer(source_limit()))
        .route("/api/grad", post(grad).layer(source_limit()))
        .route("/api/graph", post(graph).layer(source_limit()))
        .route("/api/compile", post(compile).layer(source_limit()))
        .route("/api/gradcheck", post(gradcheck).layer(source_limit()))
        .route(
            "/api/inputs",
            put(upload)
                .delete(forget)
                .layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .route(
            "/api/file",
            get(file::read).put(file::save).layer(source_limit()),
        )
        .route("/api/file/version", get(file::version))
        .layer(middleware::from_fn_with_state(state.clone(), host_guard))
        .with_state(state)
}

/// Refuses a request whose `Host` names anything but the server (DNS rebinding).
async fn host_guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .map(|h| h.to_str().unwrap_or("\u{0}"));
    match host {
        Some(host) if !allowed_host(&state, host) => (
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers only for the address it serves\n",
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

fn allowed_host(state: &AppState, host: &str) -> bool {
    // Served on every interface (`--host 0.0.0.0`): the names it is reached by are not
    // known here, and the user chose to be reachable.
    if state.addr.ip().is_unspecified() {
        return true;
    }
    // `name`, `name:port`, `[v6]`, `[v6]:port`.
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.contains(']') => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    let served = state.addr.ip().to_string();
    name.eq_ignore_ascii_case("localhost")
        || name == served
        || state
            .config
            .hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(name))
}

/// Why a request's work gave no pane.
enum Failure {
    /// No worker free, or the work not done, within the budget.
    OutOfTime(std::time::Duration),
    /// The library panicked: a bug, reported rather than crashing the server.
    Panicked(String),
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Failure::OutOfTime(budget) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "error: not done within {:.1} s (the model is too large for the page, or the server is busy)",
                    budget.as_secs_f64()
                ),
            ),
            Failure::Panicked(message) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "internal error: nnc panicked: {message}\nthis is a bug in nnc; please report it with the program"
                ),
            ),
        };
        (status, Json(Pane::error(text))).into_response()
    }
}

impl AppState {
    /// Runs `work` on the blocking pool once a worker is free, within the budget.
    async fn budgeted<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Failure> {
        let budget = self.config.budget;
        let deadline = tokio::time::Instant::now() + budget;
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| Failure::OutOfTime(budget))?
            .map_err(|_| Failure::OutOfTime(budget))?;
        let task = tokio::task::spawn_blocking(move || {
            // Held until the work ends, even when the request has given up on it.
            let _permit = permit;
            work()
        });
        match tokio::time::timeout_at(deadline, task).await {
            Err(_) => Err(Failure::OutOfTime(budget)),
            Ok(Err(joined)) => Err(Failure::Panicked(panic_message(joined))),
            Ok(Ok(value)) => Ok(value),
        }
    }

    /// A pane computed by `work` from the request and the program's name.
    async fn pane(
        &self,
        request: PaneRequest,
        work: impl FnOnce(&PaneRequest, &str) -> Pane + Send + 'static,
    ) -> Response {
        let name = self.file_name.clone();
        match self.budgeted(move || work(&request, &name)).await {
            Ok(pane) => Json(pane).into_response(),
            Err(failure) => failure.into_response(),
        }
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    if !error.is_panic() {
        return "the work was cancelled".to_string();
    }
    let payload = error.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}

async fn check(State(state): State<AppState>, Json(request): Json<PaneRequest>) -> Response {
    state.pane(request, panes::check).await
}

async fn grad(State(state): State<AppState>, Json(request): Json<PaneRequest>) -> Response {
    state.pane(request, panes::grad).await
}

async fn compile(State(state): State<AppState>, Json(request): Json<PaneRequest>) -> Response {
    state.pane(request, panes::compile).await
}

async fn graph(State(state): State<AppState>, Json(request): Json<PaneRequest>) -> Response {
    let inputs = state.uploaded.lock().ok().and_then(|u| u.clone());
    state
        .pane(request, move |request, name| {
            panes::graph(request, name, inputs.as_deref().map(|p| p.as_ref()))
        })
        .await
}

async fn gradcheck(State(state): State<AppState>, Json(request): Json<PaneRequest>) -> Response {
    // The checker's own clock stops it well within the request's budget.
    let max_time = state.config.budget.mul_f64(0.6);
    state
        .pane(request, move |request, name| {
            panes::gradcheck(request, name, max_time)
        })
        .await
}

/// `PUT /api/inputs`: keeps an `.npz` file of inputs for the graph pane; answers
/// with the arrays it holds. Only `application/octet-stream` bodies, so that a page
/// of another origin cannot send one without a preflight.
async fn upload(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let octets = headers
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.eq_ignore_ascii_case("application/octet-stream"));
    if !octets {
        let text = "send the .npz file as application/octet-stream";
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Json(Pane::error(text))).into_response();
    }
    match state.budgeted(move || keep_upload(&body)).await {
        Ok(Ok((path, names))) => {
            if let Ok(mut slot) = state.uploaded.lock() {
                *slot = Some(Arc::new(path));
            }
            let text = format!("inputs uploaded: {}", names.join(", "));
            Json(Pane {
                ok: true,
                text,
                ..Pane::default()
            })
            .into_response()
        }
        Ok(Err(message)) => (StatusCode::BAD_REQUEST, Json(Pane::error(message))).into_response(),
        Err(failure) => failure.into_response(),
    }
}

/// Writes the upload to a temporary file and reads its names, which checks it is an
/// `.npz` file.
fn keep_upload(bytes: &[u8]) -> Result<(tempfile::TempPath, Vec<String>), String> {
    use std::io::Write;
    let mut file = tempfile::Builder::new()
        .prefix(".nnc-serve-")
        .suffix(".npz")
        .tempfile()
        .map_err(|e| format!("cannot keep the upload: {e}"))?;
    file.write_all(bytes)
        .and_then(|()| file.flush())
        .map_err(|e| format!("cannot keep the upload: {e}"))?;
    let path = file.into_temp_path();
    let npz = nnc_runtime::npz::NpzReader::open(&path).map_err(|e| format!("error: {e}"))?;
    let names = npz.names().to_vec();
    Ok((path, names))
}

/// `DELETE /api/inputs`: back to random inputs.
async fn forget(State(state): State<AppState>) -> StatusCode {
    if let Ok(mut slot) = state.uploaded.lock() {
        *slot = None;
    }
    StatusCode::NO_CONTENT
}

/// A JSON error reply with `status` (file endpoints).
pub(crate) fn refuse(status: StatusCode, text: impl Into<String>) -> Response {
    (status, Json(Pane::error(text))).into_response()
}

impl AppState {
    /// Runs blocking file work within the budget, without taking a compile's worker.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Response> {
        let budget = self.config.budget;
        match tokio::time::timeout(budget, tokio::task::spawn_blocking(work)).await {
            Err(_) => Err(Failure::OutOfTime(budget).into_response()),
            Ok(Err(joined)) => Err(Failure::Panicked(panic_message(joined)).into_response()),
            Ok(Ok(value)) => Ok(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn state(budget: Duration) -> AppState {
        AppState {
            config: Arc::new(Config {
                budget,
                ..Config::default()
            }),
            file_name: "model.nn".into(),
            permits: Arc::new(Semaphore::new(1)),
            uploaded: Arc::new(Mutex::new(None)),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(future)
    }

    #[test]
    fn hosts_are_checked_against_the_address_served() {
        let local = state(Duration::from_secs(1));
        for host in ["localhost", "LOCALHOST:80", "127.0.0.1", "127.0.0.1:7878"] {
            assert!(allowed_host(&local, host), "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.2:7878",
            "[::1]:7878",
            "localhost.evil.example",
        ] {
            assert!(!allowed_host(&local, host), "{host}");
        }
        let v6 = AppState {
            addr: SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 7878)),
            ..local.clone()
        };
        assert!(allowed_host(&v6, "[::1]:7878"));
        let everywhere = AppState {
            addr: SocketAddr::from(([0, 0, 0, 0], 7878)),
            ..local
        };
        assert!(allowed_host(&everywhere, "192.168.1.5:7878"));
    }

    #[test]
    fn a_panic_in_the_work_is_a_500_with_its_message_and_the_server_goes_on() {
        let state = state(Duration::from_secs(5));
        let (status, after) = block_on(async {
            let failed = state
                .pane(
                    serde_json::from_str(r#"{"source": ""}"#).expect("a request"),
                    |_, _| panic!("a bug in a rule"),
                )
                .await;
            let after = state.budgeted(|| 1 + 1).await.ok();
            (failed.status(), after)
        });
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        // The permit the panicking work held was given back.
        assert_eq!(after, Some(2));
    }

    #[test]
    fn work_waiting_for_a_busy_worker_past_the_budget_is_refused() {
        let state = state(Duration::from_millis(200));
        let outcome = block_on(async {
            let busy = state.clone();
            let long = tokio::spawn(async move {
                busy.budgeted(|| std::thread::sleep(Duration::from_millis(600)))
                    .await
                    .is_ok()
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            let waiting = state.budgeted(|| ()).await;
            (long.await.ok(), waiting.is_err())
        });
        // The long work is over its own budget too; the second never got a worker.
        assert_eq!(outcome, (Some(false), true));
    }
}
