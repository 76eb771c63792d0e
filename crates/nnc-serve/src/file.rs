//! File mode (`nnc serve FILE`): the page edits one file. It reads it at start,
//! saves it atomically (the runtime's writer: readers see the old text or the new,
//! never half), and polls [`version`] about once a second to reload a change made on
//! disk. Polling a file's modification time and size is cheaper to get right than a
//! file watcher (no extra dependency, no platform differences, the same answer after
//! an editor's save-by-rename) and a second's delay is fine for a person.

use crate::api::{AppState, refuse};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::path::Path;
use std::time::UNIX_EPOCH;

/// The edited file as the page loads it.
#[derive(Serialize, Deserialize)]
pub struct Loaded {
    /// The path as given on the command line.
    pub path: String,
    /// Its text; empty for a file not created yet.
    pub text: String,
    /// See [`Version`].
    pub version: String,
}

/// What changes whenever the file changes: its modification time and size, or
/// `absent` for a file not there.
#[derive(Serialize, Deserialize)]
pub struct Version {
    pub version: String,
}

/// The page's text to save.
#[derive(Deserialize)]
pub struct Save {
    pub text: String,
}

fn version_of(path: &Path) -> io::Result<String> {
    match std::fs::metadata(path) {
        Ok(meta) => {
            let modified = meta
                .modified()?
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            Ok(format!("{modified}-{}", meta.len()))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok("absent".to_string()),
        Err(e) => Err(e),
    }
}

fn load(path: &Path) -> Result<Loaded, String> {
    // The version first: a change between the two reads shows as a newer version
    // at the next poll, which reloads.
    let version = version_of(path).map_err(|e| e.to_string())?;
    let text = if version == "absent" {
        String::new()
    } else {
        nnc_syntax::read_source(path)?
    };
    Ok(Loaded {
        path: path.display().to_string(),
        text,
        version,
    })
}

fn store(path: &Path, text: &str) -> Result<Version, String> {
    nnc_runtime::atomic::write_atomically(path, |file| file.write_all(text.as_bytes()))
        .map_err(|e| e.to_string())?;
    let version = version_of(path).map_err(|e| e.to_string())?;
    Ok(Version { version })
}

/// The 404 of the file endpoints on a scratch page.
fn no_file() -> Response {
    refuse(
        StatusCode::NOT_FOUND,
        "no file: start `nnc serve FILE` to edit one",
    )
}

fn cannot(what: &str, path: &Path, why: String) -> Response {
    refuse(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("error: cannot {what} {}: {why}", path.display()),
    )
}

/// `GET /api/file`.
pub(crate) async fn read(State(state): State<AppState>) -> Response {
    let Some(path) = state.config.file.clone() else {
        return no_file();
    };
    let read = path.clone();
    match state.blocking(move || load(&read)).await {
        Ok(Ok(loaded)) => Json(loaded).into_response(),
        Ok(Err(why)) => cannot("read", &path, why),
        Err(response) => response,
    }
}

/// `GET /api/file/version`.
pub(crate) async fn version(State(state): State<AppState>) -> Response {
    let Some(path) = state.config.file.clone() else {
        return no_file();
    };
    let read = path.clone();
    match state.blocking(move || version_of(&read)).await {
        Ok(Ok(version)) => Json(Version { version }).into_response(),
        Ok(Err(why)) => cannot("read", &path, why.to_string()),
        Err(response) => response,
    }
}

/// `PUT /api/file`: saves atomically; answers with the new version.
pub(crate) async fn save(State(state): State<AppState>, Json(save): Json<Save>) -> Response {
    let Some(path) = state.config.file.clone() else {
        return no_file();
    };
    if save.text.len() as u64 > nnc_syntax::MAX_SOURCE_BYTES {
        let text = format!(
            "error: the text is larger than {} bytes",
            nnc_syntax::MAX_SOURCE_BYTES
        );
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, text);
    }
    let write = path.clone();
    match state.blocking(move || store(&write, &save.text)).await {
        Ok(Ok(version)) => Json(version).into_response(),
        Ok(Err(why)) => cannot("write", &path, why),
        Err(response) => response,
    }
}
