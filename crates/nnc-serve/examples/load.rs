//! A load test: 1,000 requests from 8 concurrent clients against a server on
//! 127.0.0.1, each client a thread sending its share over plain HTTP/1.1 (one
//! connection per request, as a browser's fresh fetch may), cycling through the panes
//! (check, grad, graph, compile) and the example models. Bounded: it stops after the
//! last request and fails (exit 1) if any request failed or got a status other than
//! 200. Prints the latency percentiles.
//!
//! `cargo run -p nnc-serve --example load --release [-- REQUESTS CLIENTS]`

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const PANES: [&str; 4] = ["/api/check", "/api/grad", "/api/graph", "/api/compile"];

/// One POST; the status code, or why there was none.
fn post(addr: SocketAddr, path: &str, body: &str) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&reply[..reply.len().min(32)]).into_owned();
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let requests: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8).max(1);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let mut bodies = Vec::new();
    for name in [
        "gates.nn",
        "logistic.nn",
        "svm.nn",
        "two_layer.nn",
        "spiral.nn",
    ] {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(source) => bodies.push(serde_json::json!({ "source": source }).to_string()),
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let server = match nnc_serve::spawn(([127, 0, 0, 1], 0).into(), nnc_serve::Config::default()) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("error: cannot start the server: {e}");
            return ExitCode::from(2);
        }
    };
    let addr = server.addr;
    let started = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|client| {
            let bodies = bodies.clone();
            std::thread::spawn(move || {
                let mut results = Vec::new();
                for i in (client..requests).step_by(clients) {
                    let path = PANES[i % PANES.len()];
                    let body = &bodies[(i / PANES.len()) % bodies.len()];
                    let sent = Instant::now();
                    let status = post(addr, path, body);
                    results.push((path, status, sent.elapsed()));
                }
                results
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let Ok(results) = worker.join() else {
            errors += 1;
            continue;
        };
        for (path, status, took) in results {
            if status != Ok(200) {
                errors += 1;
                eprintln!("error: {path}: {status:?}");
            }
            latencies.push(took);
        }
    }
    let wall = started.elapsed();
    latencies.sort();
    if latencies.is_empty() {
        eprintln!("error: no request completed");
        return ExitCode::FAILURE;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{} requests from {clients} clients in {:.2} s ({:.0} per second): {errors} errors; \
         latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        wall.as_secs_f64(),
        latencies.len() as f64 / wall.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.90)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );
    if errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
