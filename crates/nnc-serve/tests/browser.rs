//! The page in a real browser: Debian's headless Chromium, driven over the DevTools
//! protocol (headless_chrome, which downloads nothing). The test types a model with a
//! shape error, sees the diagnostic point at the right line, fixes it by typing,
//! sees the derivation and the graph with the expected values, and keeps a
//! screenshot in `target/nnc-serve-artefacts/serve.png`. Then, for each example
//! model, it measures how long after a keystroke every pane has been updated.
//!
//! Without Chromium the test fails under CI (`CI` set: CI must run it) and is
//! skipped with a note elsewhere.

use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `x` has 2 columns, `w` 3 rows: a shape error at `x @ w`, on line 6.
const TYPED: &str = "// A neuron on two inputs.
model neuron {
    dtype f64;
    param x: [1, 2] = -1;
    param w: [3, 1] = 2;
    loss sum(sigmoid(x @ w + 1));
}
";

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    path.exists().then_some(path)
}

fn artefacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("nnc-serve-artefacts")
}

/// Evaluates `expression` in the page until it gives a string that `done` accepts;
/// the last value seen on failure.
fn wait_for(tab: &Tab, expression: &str, done: impl Fn(&str) -> bool) -> anyhow::Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = String::new();
    while Instant::now() < deadline {
        let value = tab.evaluate(expression, false)?.value;
        last = match value {
            Some(serde_json::Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => String::new(),
        };
        if done(&last) {
            return Ok(last);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    anyhow::bail!("timed out waiting for `{expression}`; last value:\n{last}")
}

fn text_of(id: &str) -> String {
    format!("document.getElementById('{id}').textContent")
}

/// Headless Chromium, or `None` (with the note) where the test is skipped; under CI
/// a missing Chromium fails the test.
fn launch() -> anyhow::Result<Option<Browser>> {
    let Some(chromium) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser test: install Debian's chromium (.ci/run does)"
        );
        eprintln!("skipped: install chromium (apt-get install chromium) to run the browser test");
        return Ok(None);
    };
    let browser = Browser::new(
        LaunchOptions::default_builder()
            .path(Some(chromium))
            .headless(true)
            // Root in CI: Chromium's sandbox refuses to run as root.
            .sandbox(false)
            .window_size(Some((1600, 1000)))
            .idle_browser_timeout(Duration::from_secs(120))
            .build()?,
    )?;
    Ok(Some(browser))
}

#[test]
fn typing_a_model_shows_its_error_then_its_derivation_and_graph() -> anyhow::Result<()> {
    let Some(browser) = launch()? else {
        return Ok(());
    };
    let server = nnc_serve::spawn(([127, 0, 0, 1], 0).into(), nnc_serve::Config::default())?;
    let tab = browser.new_tab()?;
    tab.navigate_to(&server.url())?.wait_until_navigated()?;
    // The sample model loads first; then the whole text is replaced by typing.
    wait_for(&tab, &text_of("diagnostics"), |t| t.contains("ok"))?;
    tab.wait_for_element("#editor")?.click()?;
    tab.evaluate("document.getElementById('editor').select()", false)?;
    tab.type_str(TYPED)?;
    let typed = tab.evaluate("document.getElementById('editor').value", false)?;
    assert_eq!(typed.value, Some(serde_json::Value::from(TYPED)));

    let diagnostics = wait_for(&tab, &text_of("diagnostics"), |t| t.contains("model.nn:"))?;
    assert!(diagnostics.contains("model.nn:6:"), "{diagnostics}");
    assert!(
        diagnostics.contains("x @ w") && diagnostics.contains('┬'),
        "{diagnostics}"
    );
    // The position is a link that moves the caret to line 6.
    tab.wait_for_element("#diagnostics a[data-line='6']")?
        .click()?;
    let caret = tab.evaluate(
        "(() => { const e = document.getElementById('editor'); \
         return e.value.slice(0, e.selectionStart).split('\\n').length; })()",
        false,
    )?;
    assert_eq!(caret.value, Some(serde_json::Value::from(6)));

    // Fix it: select the `3` of `[3, 1]` and type `2`.
    tab.evaluate(
        "(() => { const e = document.getElementById('editor'); \
         const at = e.value.indexOf('[3, 1]') + 1; e.focus(); e.setSelectionRange(at, at + 1); })()",
        false,
    )?;
    tab.type_str("2")?;
    let diagnostics = wait_for(&tab, &text_of("diagnostics"), |t| {
        t.contains("model.nn: ok")
    })?;
    assert!(!diagnostics.contains('┬'), "{diagnostics}");
    let derivation = wait_for(&tab, &text_of("derivation"), |t| t.contains("backward"))?;
    assert!(derivation.starts_with("model neuron"), "{derivation}");
    assert!(derivation.contains("d_w = x.T @ d_t4"), "{derivation}");
    assert!(
        derivation.contains("// matmul: g @ b.T and a.T @ g"),
        "{derivation}"
    );
    // x @ w = -1*2 - 1*2 = -4, + 1 = -3, the loss sigmoid(-3) = 0.047 (values to two
    // decimals); its gradient sigmoid'(-3) = 0.045, times w = 2 on each x: 0.09.
    let svg = wait_for(
        &tab,
        "document.querySelector('#graph svg')?.outerHTML ?? ''",
        |t| t.contains("<svg"),
    )?;
    for drawn in [">[-4]<", ">[-3]<", ">0.05<", ">[0.09, 0.09]<"] {
        assert!(svg.contains(drawn), "{drawn} missing from {svg}");
    }
    wait_for(&tab, &text_of("rust"), |t| t.contains("pub mod neuron"))?;

    tab.wait_for_element("#gradcheck-run")?.click()?;
    let report = wait_for(&tab, &text_of("gradcheck"), |t| t.contains("each probe"))?;
    assert!(report.contains("w"), "{report}");

    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)?;
    std::fs::create_dir_all(artefacts())?;
    let shot = artefacts().join("serve.png");
    std::fs::write(&shot, &png)?;
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    println!("screenshot: {}", shot.display());

    measure_each_example(&tab)?;
    Ok(())
}

/// File mode: the page shows the file, reloads it when another program changes it,
/// and Ctrl-S saves what was typed.
#[test]
fn the_page_edits_its_file() -> anyhow::Result<()> {
    let Some(browser) = launch()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("edited.nn");
    let gates = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/gates.nn"),
    )?;
    std::fs::write(&path, &gates)?;
    let config = nnc_serve::Config {
        file: Some(path.clone()),
        ..nnc_serve::Config::default()
    };
    let server = nnc_serve::spawn(([127, 0, 0, 1], 0).into(), config)?;
    let tab = browser.new_tab()?;
    tab.navigate_to(&server.url())?.wait_until_navigated()?;
    let value = "document.getElementById('editor').value";
    wait_for(&tab, value, |t| t == gates)?;
    wait_for(&tab, &text_of("file-name"), |t| t.ends_with("edited.nn"))?;
    let models = "Array.from(document.getElementById('model').options).map(o => o.value).join(',')";
    wait_for(&tab, models, |t| t == "add_mul,neuron,neuron_gate")?;

    // Another program rewrites the file: the page follows within a poll or two.
    std::fs::write(&path, TYPED)?;
    wait_for(&tab, value, |t| t == TYPED)?;
    wait_for(&tab, &text_of("diagnostics"), |t| {
        t.contains("edited.nn:6:")
    })?;

    // Typing, then Ctrl-S, saves the text as shown.
    tab.evaluate(
        "(() => { const e = document.getElementById('editor'); e.focus(); \
         e.setSelectionRange(0, 0); })()",
        false,
    )?;
    tab.type_str("// saved from the page\n")?;
    tab.press_key_with_modifiers(
        "s",
        Some(&[headless_chrome::browser::tab::ModifierKey::Ctrl]),
    )?;
    let expected = format!("// saved from the page\n{TYPED}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&path)? != expected {
        anyhow::ensure!(Instant::now() < deadline, "the page did not save");
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_for(&tab, &text_of("status"), |t| t.starts_with("saved"))?;
    Ok(())
}

/// Loads each example model, types one character, and reports how long until every
/// pane showed the result (the page's own clock: keystroke to last pane drawn,
/// including the 100 ms debounce).
fn measure_each_example(tab: &Tab) -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .collect();
    files.sort();
    for file in files {
        let source = std::fs::read_to_string(&file)?;
        let load = format!(
            "(() => {{ const e = document.getElementById('editor'); e.value = {}; \
             e.focus(); e.setSelectionRange(e.value.length, e.value.length); }})()",
            serde_json::Value::from(source)
        );
        tab.evaluate(&load, false)?;
        tab.type_str(" ")?;
        let settled = wait_for(tab, "String(window.nnc.settledAfter)", |t| t != "null")?;
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        let replies = tab
            .evaluate(
                "JSON.stringify([window.nnc.timings, window.nnc.trace])",
                false,
            )?
            .value
            .unwrap_or_default();
        println!(
            "{}: every pane updated {settled} ms after the keystroke (replies in ms: {replies})",
            name.unwrap_or_default()
        );
        let ms: u64 = settled.parse()?;
        // Generous: the budget the issue sets is 500 ms on the developer's machine;
        // CI machines are slower and busier, so only a broken page fails here.
        assert!(ms < 5000, "{ms} ms");
    }
    Ok(())
}
