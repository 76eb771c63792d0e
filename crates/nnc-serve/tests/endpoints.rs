//! The endpoints' answers, checked by value: diagnostics with their position and
//! caret, a derivation rule, a graph's values, generated Rust, a gradient check; the
//! limits (body size, time budget, content types, hosts); file mode.

mod common;

use axum::http::StatusCode;
use common::{block_on, example, post, send};
use nnc_serve::Config;
use serde_json::json;
use std::time::Duration;

/// `x @ w` with 2 columns against 3 rows: a shape error on line 5.
pub const SHAPE_ERROR: &str = "model shapes {
    dtype f64;
    param x: [4, 2] = ones;
    param w: [3, 2] = ones;
    loss sum(x @ w);
}
";

#[test]
fn a_shape_error_comes_with_its_line_column_and_caret() {
    let reply = block_on(post(
        &Config::default(),
        "/api/check",
        json!({ "source": SHAPE_ERROR }),
    ));
    assert_eq!(reply.status, StatusCode::OK);
    let pane = reply.json();
    assert_eq!(pane["ok"], false);
    let text = reply.text();
    assert!(text.contains("model.nn:5:"), "{text}");
    assert!(text.contains('┬') && text.contains("x @ w"), "{text}");
    assert_eq!(pane["diagnostics"][0]["line"], 5, "{pane}");
    assert_eq!(pane["diagnostics"][0]["severity"], "error");
}

#[test]
fn a_clean_file_lists_its_models() {
    let reply = block_on(post(
        &Config::default(),
        "/api/check",
        json!({ "source": example("gates.nn") }),
    ));
    let pane = reply.json();
    assert_eq!(pane["ok"], true, "{pane}");
    assert_eq!(pane["models"], json!(["add_mul", "neuron", "neuron_gate"]));
    assert_eq!(reply.text(), "model.nn: ok\n");
}

#[test]
fn the_derivation_names_its_rules() {
    let reply = block_on(post(
        &Config::default(),
        "/api/grad",
        json!({ "source": example("gates.nn"), "model": "add_mul" }),
    ));
    let text = reply.text();
    assert!(text.contains("d_q = 1 * z"), "{text}");
    assert!(text.contains("// mul swaps"), "{text}");
    assert_eq!(reply.json()["model"], "add_mul");
}

#[test]
fn the_picked_model_is_the_one_derived() {
    let reply = block_on(post(
        &Config::default(),
        "/api/grad",
        json!({ "source": example("gates.nn"), "model": "neuron_gate" }),
    ));
    assert!(
        reply.text().starts_with("model neuron_gate"),
        "{}",
        reply.text()
    );
}

#[test]
fn the_graph_is_svg_with_the_forward_values_and_gradients() {
    let reply = block_on(post(
        &Config::default(),
        "/api/graph",
        json!({ "source": example("gates.nn") }),
    ));
    let pane = reply.json();
    assert_eq!(pane["ok"], true, "{pane}");
    let svg = pane["svg"].as_str().unwrap_or_default();
    assert!(svg.starts_with("<svg"), "{svg}");
    // q = x + y = 3, f = q z = -12; d f / d z = q = 3, d f / d q = z = -4.
    for value in [">3<", ">-12<", ">-4<"] {
        assert!(svg.contains(value), "{value} missing from {svg}");
    }
}

#[test]
fn random_inputs_are_said_to_be_random() {
    let reply = block_on(post(
        &Config::default(),
        "/api/graph",
        json!({ "source": example("logistic.nn"), "model": "linear_svm", "seed": 3 }),
    ));
    let pane = reply.json();
    assert_eq!(pane["ok"], true, "{pane}");
    let note = pane["note"].as_str().unwrap_or_default();
    assert!(note.contains("seed 3") && note.contains("upload"), "{note}");
}

#[test]
fn the_generated_rust_is_the_models() {
    let reply = block_on(post(
        &Config::default(),
        "/api/compile",
        json!({ "source": example("gates.nn"), "model": "neuron" }),
    ));
    let text = reply.text();
    assert_eq!(reply.json()["ok"], true, "{text}");
    assert!(text.contains("pub mod neuron"), "{text}");
    assert!(
        !text.contains("pub mod add_mul"),
        "only the picked model: {text}"
    );
}

#[test]
fn gradcheck_passes_on_the_gates() {
    let reply = block_on(post(
        &Config::default(),
        "/api/gradcheck",
        json!({ "source": example("gates.nn"), "model": "neuron" }),
    ));
    let pane = reply.json();
    assert_eq!(pane["ok"], true, "{pane}");
    let text = reply.text();
    assert!(text.starts_with("each probe compares"), "{text}");
    assert!(text.contains("w0"), "{text}");
}

#[test]
fn a_program_with_errors_gives_its_diagnostics_in_every_pane() {
    for path in ["/api/grad", "/api/graph", "/api/compile", "/api/gradcheck"] {
        let reply = block_on(post(
            &Config::default(),
            path,
            json!({ "source": SHAPE_ERROR }),
        ));
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(reply.json()["ok"], false, "{path}");
        assert!(
            reply.text().contains("model.nn:5:"),
            "{path}: {}",
            reply.text()
        );
    }
}

#[test]
fn a_body_over_the_limit_is_refused_with_413() {
    let source = "x".repeat(nnc_serve::SOURCE_BODY_LIMIT + 1);
    let reply = block_on(post(
        &Config::default(),
        "/api/check",
        json!({ "source": source }),
    ));
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[test]
fn bogus_json_is_a_client_error() {
    for body in [&b"{"[..], b"[]", b"{\"source\": 3}", b"\xff\xfe", b""] {
        let reply = block_on(send(
            &Config::default(),
            "POST",
            "/api/check",
            Some("application/json"),
            body.to_vec(),
            None,
        ));
        assert!(
            reply.status.is_client_error(),
            "{:?}: {}",
            body,
            reply.status
        );
    }
}

#[test]
fn only_json_is_taken_for_panes() {
    let reply = block_on(send(
        &Config::default(),
        "POST",
        "/api/check",
        Some("text/plain"),
        json!({ "source": "" }).to_string().into_bytes(),
        None,
    ));
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[test]
fn another_host_is_refused() {
    let config = Config::default();
    let ask = |host| block_on(send(&config, "GET", "/", None, Vec::new(), Some(host))).status;
    assert_eq!(ask("evil.example"), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(ask("evil.example:7878"), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(ask("localhost:7878"), StatusCode::OK);
    assert_eq!(ask("127.0.0.1:7878"), StatusCode::OK);
}

#[test]
fn the_page_and_its_assets_are_served() {
    let config = Config::default();
    let page = block_on(send(&config, "GET", "/", None, Vec::new(), None));
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type.starts_with("text/html"));
    assert!(page.body.contains("id=\"editor\""));
    let script = block_on(send(&config, "GET", "/app.js", None, Vec::new(), None));
    assert!(script.content_type.starts_with("text/javascript"));
    assert!(script.body.contains("/api/file/version"));
}

#[test]
fn work_not_done_within_the_budget_is_a_503() {
    let config = Config {
        budget: Duration::from_nanos(1),
        ..Config::default()
    };
    let reply = block_on(post(
        &config,
        "/api/gradcheck",
        json!({ "source": example("two_layer.nn") }),
    ));
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.text().contains("not done within"), "{}", reply.text());
}

#[test]
fn uploaded_inputs_are_used_by_the_graph() {
    use nnc_runtime::npz::NpzBundle;
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("inputs.npz");
    let x = ndarray::Array2::<f64>::from_elem((2, 20), 0.5).into_dyn();
    let y = ndarray::Array1::<f64>::from_vec(vec![1.0, -1.0]).into_dyn();
    let mut bundle = NpzBundle::new();
    bundle.float("x", x.view()).float("y", y.view());
    bundle.save(&path).expect("saved");
    let bytes = std::fs::read(&path).expect("read");
    // One router for both requests: the upload is the server's state.
    let router = nnc_serve::router(Config::default(), common::addr());
    let (uploaded, graph) = block_on(async {
        use axum::body::Body;
        use axum::http::Request;
        use tower::ServiceExt;
        let put = Request::put("/api/inputs")
            .header("content-type", "application/octet-stream")
            .body(Body::from(bytes))
            .expect("a request");
        let uploaded = router.clone().oneshot(put).await.expect("an answer");
        let body = json!({ "source": example("logistic.nn"), "uploaded": true });
        let post = Request::post("/api/graph")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("a request");
        let graph = router.oneshot(post).await.expect("an answer");
        let text = |r: axum::response::Response| async move {
            let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await;
            String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
        };
        (text(uploaded).await, text(graph).await)
    });
    assert!(uploaded.contains("inputs uploaded: x, y"), "{uploaded}");
    let pane: serde_json::Value = serde_json::from_str(&graph).expect("JSON");
    assert_eq!(pane["ok"], true, "{pane}");
    assert!(pane.get("note").is_none(), "no random inputs: {pane}");
    // The inputs uploaded, drawn as such: x's statistics, y written out; w = 0 and
    // b = 0 give f = 0 on both rows, the loss log 2 = 0.69.
    let svg = pane["svg"].as_str().unwrap_or_default();
    for drawn in ["[2×20] μ 0.50 σ 0", ">[1, -1]<", ">0.69<"] {
        assert!(svg.contains(drawn), "{drawn} missing from {svg}");
    }
}

#[test]
fn an_upload_that_is_not_npz_is_refused() {
    let reply = block_on(send(
        &Config::default(),
        "PUT",
        "/api/inputs",
        Some("application/octet-stream"),
        b"not a zip file".to_vec(),
        None,
    ));
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["ok"], false);
}

#[test]
fn file_mode_reads_saves_atomically_and_sees_changes_on_disk() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("edited.nn");
    std::fs::write(&path, example("gates.nn")).expect("written");
    let config = Config {
        file: Some(path.clone()),
        ..Config::default()
    };
    let get = |p| block_on(send(&config, "GET", p, None, Vec::new(), None));
    let loaded = get("/api/file").json();
    assert_eq!(loaded["text"], example("gates.nn"));
    let first = loaded["version"].clone();

    let saved = block_on(send(
        &config,
        "PUT",
        "/api/file",
        Some("application/json"),
        json!({ "text": SHAPE_ERROR }).to_string().into_bytes(),
        None,
    ));
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), SHAPE_ERROR);
    let second = saved.json()["version"].clone();
    assert_ne!(first, second);
    assert_eq!(get("/api/file/version").json()["version"], second);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("listed")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, ["edited.nn"]);

    // Another program changes the file: a new version, the new text.
    std::fs::write(&path, "// changed\n").expect("written");
    assert_ne!(get("/api/file/version").json()["version"], second);
    assert_eq!(get("/api/file").json()["text"], "// changed\n");
    // Diagnostics carry the file's name.
    let checked = block_on(post(
        &config,
        "/api/check",
        json!({ "source": SHAPE_ERROR }),
    ));
    assert!(
        checked.text().contains("edited.nn:5:"),
        "{}",
        checked.text()
    );
}

#[test]
fn a_file_not_there_yet_is_empty_until_saved() {
    let dir = tempfile::tempdir().expect("a directory");
    let path = dir.path().join("new.nn");
    let config = Config {
        file: Some(path.clone()),
        ..Config::default()
    };
    let loaded = block_on(send(&config, "GET", "/api/file", None, Vec::new(), None)).json();
    assert_eq!(loaded["text"], "");
    assert_eq!(loaded["version"], "absent");
}

#[test]
fn without_a_file_the_file_endpoints_are_404() {
    let reply = block_on(send(
        &Config::default(),
        "GET",
        "/api/file",
        None,
        Vec::new(),
        None,
    ));
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert!(reply.text().contains("nnc serve FILE"));
}
