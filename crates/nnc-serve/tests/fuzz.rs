//! Hostile and random requests at every endpoint: none may panic the server or get a
//! 500 (a 503 for work over the budget is intended). Bounded and seeded, so a failure
//! reproduces.

mod common;

use axum::http::StatusCode;
use common::{block_on, example, send};
use nnc_serve::Config;
use serde_json::json;
use std::time::Duration;

/// xorshift64*: enough randomness for bodies, and reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A model with a few random edits: deletions, duplications, stray characters.
fn mutated(rng: &mut Rng, source: &str) -> String {
    let mut chars: Vec<char> = source.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(chars.len());
        match rng.below(4) {
            0 => {
                let end = (at + rng.below(12)).min(chars.len());
                chars.drain(at..end);
            }
            1 => {
                let end = (at + rng.below(20)).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
            2 => chars.insert(
                at,
                ['(', ')', '[', ']', ';', '@', '^', '0', '\u{0}', 'é'][rng.below(10)],
            ),
            _ => {
                if at < chars.len() {
                    chars[at] = ['{', '}', ',', ':', '-', '9', 'N', ' '][rng.below(8)];
                }
            }
        }
    }
    chars.into_iter().collect()
}

/// A body for a pane: random bytes, broken JSON, wrong types, extreme settings, or
/// a mutated example model with random settings.
fn body(rng: &mut Rng, models: &[String]) -> Vec<u8> {
    let model = &models[rng.below(models.len())];
    match rng.below(8) {
        0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
        1 => {
            let text = json!({ "source": model }).to_string();
            text.as_bytes()[..rng.below(text.len())].to_vec()
        }
        2 => json!({ "source": 7, "model": [], "seed": "x" })
            .to_string()
            .into_bytes(),
        3 => json!({ "source": model, "seed": u64::MAX, "batch": 0 })
            .to_string()
            .into_bytes(),
        4 => json!({ "source": model, "batch": 1u64 << 40, "uploaded": true })
            .to_string()
            .into_bytes(),
        5 => json!({ "source": model, "model": "no_such_model", "expand": true, "backward": true })
            .to_string()
            .into_bytes(),
        _ => json!({
            // `text` too, so that saving the file (PUT /api/file) gets fuzzed text.
            "text": mutated(rng, model),
            "source": mutated(rng, model),
            "seed": rng.next() % 100,
            "batch": 1 + rng.below(8),
            "backward": rng.below(2) == 1,
            "expand": rng.below(2) == 1,
        })
        .to_string()
        .into_bytes(),
    }
}

fn assert_handled(status: StatusCode, what: &str) {
    assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR
            && (status.as_u16() < 500 || status == StatusCode::SERVICE_UNAVAILABLE),
        "{what}: {status}"
    );
}

#[test]
fn random_and_hostile_bodies_never_crash_the_server() {
    let models: Vec<String> = [
        "gates.nn",
        "logistic.nn",
        "spiral.nn",
        "activations.nn",
        "svm.nn",
    ]
    .iter()
    .map(|f| example(f))
    .collect();
    let dir = tempfile::tempdir().expect("a directory");
    let file = dir.path().join("fuzzed.nn");
    let config = Config {
        file: Some(file),
        budget: Duration::from_secs(5),
        ..Config::default()
    };
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let panes = [
        "/api/check",
        "/api/grad",
        "/api/graph",
        "/api/compile",
        "/api/gradcheck",
    ];
    let content_types = [
        Some("application/json"),
        Some("text/plain"),
        None,
        Some("application/octet-stream"),
    ];
    for round in 0..300 {
        let (method, path) = match round % 8 {
            n @ 0..5 => ("POST", panes[n]),
            5 => ("PUT", "/api/inputs"),
            6 => (["PUT", "GET"][rng.below(2)], "/api/file"),
            _ => (
                ["GET", "DELETE", "PATCH"][rng.below(3)],
                ["/api/file/version", "/api/inputs", "/nope", "/"][rng.below(4)],
            ),
        };
        let body = body(&mut rng, &models);
        // Mostly the right content type, so the bodies reach the handlers.
        let content_type = if rng.below(4) == 0 {
            content_types[rng.below(content_types.len())]
        } else if path == "/api/inputs" {
            Some("application/octet-stream")
        } else {
            Some("application/json")
        };
        let reply = block_on(send(
            &config,
            method,
            path,
            content_type,
            body.clone(),
            None,
        ));
        assert_handled(
            reply.status,
            &format!(
                "round {round}: {method} {path} {}",
                String::from_utf8_lossy(&body)
            ),
        );
    }
}
