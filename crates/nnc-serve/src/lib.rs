//! # nnc-serve: `nnc serve`, a local page for writing a model
//!
//! Takes a [`Config`] (optionally a `.nn` file to edit) and gives an HTTP server,
//! [`router`], that serves one page (HTML, CSS and JS embedded in the binary) and the
//! JSON endpoints the page calls as the user types: the diagnostics, the derivation,
//! the computational graph as SVG, the generated Rust and a gradient check, each from
//! the library calls the CLI makes ([`panes`]), never by running `nnc`.
//!
//! | endpoint | body | gives |
//! | --- | --- | --- |
//! | `GET /` , `/app.js`, `/style.css` | | the page |
//! | `POST /api/check`, `/api/grad`, `/api/graph`, `/api/compile`, `/api/gradcheck` | [`panes::PaneRequest`] | [`panes::Pane`] |
//! | `PUT /api/inputs` | an `.npz` file (`application/octet-stream`) | the input names it holds |
//! | `DELETE /api/inputs` | | forgets them |
//! | `GET /api/file`, `GET /api/file/version`, `PUT /api/file` | `{"text": ...}` | the edited file, its version, saving it |
//!
//! The server must not be held by one request: every compile runs on tokio's
//! blocking pool, at most [`Config::workers`] at once, and a request whose work is
//! not done within [`Config::budget`] gets 503 (the work finishes in the background
//! and keeps its slot until then: the library's own limits, memory budgets and the
//! gradient check's clock, bound it). A panic in the library becomes a 500 with its
//! message. Request bodies are limited ([`SOURCE_BODY_LIMIT`], [`UPLOAD_BODY_LIMIT`]).
//!
//! Only requests whose `Host` is the address served (or `localhost`) are answered,
//! so another site cannot reach the server by rebinding a name to 127.0.0.1; the
//! endpoints that change anything need a JSON or octet-stream body, which a page of
//! another origin cannot send without a CORS preflight the server never grants.

mod api;
mod assets;
mod file;
pub mod panes;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use api::router;

/// The largest request body with a program: a source of [`nnc_syntax::MAX_SOURCE_BYTES`]
/// and room for its JSON escaping and the settings.
pub const SOURCE_BODY_LIMIT: usize = nnc_syntax::MAX_SOURCE_BYTES as usize + (1 << 20);

/// The largest uploaded `.npz` file of inputs.
pub const UPLOAD_BODY_LIMIT: usize = 64 << 20;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The `.nn` file the page edits; `None` for a scratch page.
    pub file: Option<PathBuf>,
    /// The longest a request may take (waiting for a worker included).
    pub budget: Duration,
    /// At most this many compiles at once.
    pub workers: usize,
    /// Host names the `Host` header may carry besides `localhost` and the address
    /// served (the `--host` given, say).
    pub hosts: Vec<String>,
}

impl Default for Config {
    /// A scratch page, 5 s a request, one worker per core.
    fn default() -> Config {
        Config {
            file: None,
            budget: Duration::from_secs(5),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            hosts: Vec::new(),
        }
    }
}

impl Config {
    /// The name diagnostics and generated code give the program: the file's name,
    /// or `model.nn` on a scratch page.
    pub fn file_name(&self) -> String {
        self.file
            .as_ref()
            .and_then(|f| f.file_name())
            .map_or("model.nn".to_string(), |n| n.to_string_lossy().into_owned())
    }
}

/// Serves on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, config: Config) -> io::Result<()> {
    let addr = listener.local_addr()?;
    axum::serve(listener, router(config, addr)).await
}

/// Binds `addr` and serves there, blocking the calling thread; `ready` is called
/// with the address bound (port 0 gives a free one) once connections are accepted.
pub fn run(addr: SocketAddr, config: Config, ready: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let runtime = runtime()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        ready(listener.local_addr()?);
        serve(listener, config).await
    })
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .enable_time()
        .build()
}

/// A server running on a thread of its own (tests, the load example). Dropping it
/// stops accepting connections; the thread ends once the open ones close (it is not
/// waited for: a browser may keep a connection open).
pub struct Running {
    /// The address it serves.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Starts a server on `addr` (`127.0.0.1:0` for a free port) on a new thread.
pub fn spawn(addr: SocketAddr, config: Config) -> io::Result<Running> {
    let runtime = runtime()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        runtime.block_on(async move {
            axum::serve(listener, router(config, addr))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        })
    });
    Ok(Running {
        addr,
        stop: Some(stop),
    })
}

impl Running {
    /// The page's address.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
