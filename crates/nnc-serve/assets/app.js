// nnc serve: the page. Sends the editor's text to the server's panes (debounced) and
// shows what comes back; in file mode, saves the file and reloads it when it changes
// on disk. Plain JS, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const editor = $("editor");
const gutter = $("gutter");

const SAMPLE = `// f(x, y, z) = (x + y) * z at x = -2, y = 5, z = -4.
model add_mul {
    dtype f64;
    param x: [] = -2;
    param y: [] = 5;
    param z: [] = -4;

    let q = x + y;
    let f = q * z;
    output q;
    loss f;
}
`;

const DEBOUNCE_MS = 100;
const state = {
  generation: 0, // the latest edit; replies for older ones are dropped
  timer: null,
  inFlight: null, // an AbortController for the panes' requests of the latest edit
  uploaded: false,
  file: null, // file mode: { path, version }
  dirty: false,
  timings: {}, // pane -> milliseconds of its last reply
  editedAt: 0, // when the text last changed (performance.now())
  settledAfter: null, // milliseconds from that edit to the last pane updated for it
  trace: [], // [what, milliseconds since the edit] for the last edit's requests and panes
};
const PANES = ["diagnostics", "derivation", "graph", "rust"];
// For the browser test and the curious: when each pane last changed.
window.nnc = state;

// ---- requests ---------------------------------------------------------------------

function settings() {
  return {
    source: editor.value,
    model: $("model").value || null,
    seed: Math.max(0, parseInt($("seed").value, 10) || 0),
    batch: Math.max(1, parseInt($("batch").value, 10) || 4),
    backward: $("backward").checked,
    expand: $("expand").checked,
    uploaded: state.uploaded,
  };
}

// POSTs to a pane's endpoint; resolves to a pane ({ok, text, ...}), or to null when
// a newer edit aborted the request.
async function pane(name, body, signal) {
  const started = performance.now();
  try {
    const reply = await fetch(`/api/${name}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      signal,
    });
    const type = reply.headers.get("content-type") || "";
    const result = type.includes("json")
      ? await reply.json()
      : { ok: false, text: `error: ${reply.status} ${await reply.text()}` };
    state.timings[name] = Math.round(performance.now() - started);
    return result;
  } catch (e) {
    if (e.name === "AbortError") return null;
    return { ok: false, text: `error: the server did not answer (${e})` };
  }
}

function mark(what) {
  state.trace.push([what, Math.round(performance.now() - state.editedAt)]);
}

function refresh() {
  const generation = ++state.generation;
  state.trace = [];
  mark("sent");
  const body = settings();
  state.settledAfter = null;
  for (const id of PANES) {
    $(id).classList.add("stale");
  }
  // Replies for an older edit are not wanted: cancel them, so that the browser and
  // the server work on the latest text only.
  if (state.inFlight) state.inFlight.abort();
  state.inFlight = new AbortController();
  const signal = state.inFlight.signal;
  const current = (p) => p !== null && generation === state.generation;
  pane("check", body, signal).then((p) => current(p) && showCheck(p));
  pane("grad", body, signal).then((p) => current(p) && showText("derivation", p));
  pane("graph", body, signal).then((p) => current(p) && showGraph(p));
  pane("compile", body, signal).then((p) => current(p) && showRust(p));
  showStatus();
}

function schedule() {
  clearTimeout(state.timer);
  state.timer = setTimeout(refresh, DEBOUNCE_MS);
}

// ---- panes --------------------------------------------------------------------------

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function settle(id, p) {
  const el = $(id);
  el.classList.remove("stale");
  el.classList.toggle("failed", !p.ok);
  el.dataset.updated = String(state.generation);
  mark(id);
  if (PANES.every((id) => $(id).dataset.updated === el.dataset.updated)) {
    state.settledAfter = Math.round(performance.now() - state.editedAt);
  }
  return el;
}

function showText(id, p) {
  settle(id, p).textContent = p.text;
  showStatus();
}

// The diagnostics as the CLI renders them; each `file:line:col` moves the caret there.
function showCheck(p) {
  const el = settle("diagnostics", p);
  const clean = p.ok && !(p.diagnostics || []).length;
  el.classList.toggle("clean", clean);
  el.innerHTML = escapeHtml(p.text).replace(
    /([\w.\-]+\.nn):(\d+):(\d+)/g,
    (all, _file, line, col) => `<a data-line="${line}" data-col="${col}">${all}</a>`,
  );
  if (p.models && p.models.length) {
    setModels(p.models);
  }
  showStatus();
}

function setModels(models) {
  const picker = $("model");
  const chosen = picker.value;
  const same = models.length === picker.options.length &&
    models.every((m, i) => picker.options[i].value === m);
  if (same) return;
  picker.innerHTML = models.map((m) => `<option>${escapeHtml(m)}</option>`).join("");
  // A model no longer in the file: the server showed the first, as the picker now
  // does, so the panes need no second round.
  picker.value = models.includes(chosen) ? chosen : models[0];
}

function showGraph(p) {
  const el = settle("graph", p);
  $("graph-note").textContent = p.note || "";
  if (p.ok && p.svg) {
    // The server's own SVG (nnc-graph escapes every label it draws).
    el.innerHTML = p.svg;
  } else {
    el.innerHTML = `<pre>${escapeHtml(p.text)}</pre>`;
  }
  showStatus();
}

const RUST_KEYWORDS = new Set(("as break const continue crate else enum extern false fn for if impl in " +
  "let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use " +
  "where while dyn").split(" "));
const RUST_TOKEN = /(\/\/[^\n]*|\/\*[\s\S]*?\*\/)|("(?:\\.|[^"\\])*")|(\b\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?(?:f32|f64|usize|u\d+|i\d+)?\b)|([A-Za-z_][A-Za-z0-9_]*)/g;

// A small tokenizer is enough to tell keywords, types, comments, strings and numbers.
function highlightRust(text) {
  let html = "";
  let last = 0;
  for (const m of text.matchAll(RUST_TOKEN)) {
    html += escapeHtml(text.slice(last, m.index));
    const [token, comment, string, number, word] = m;
    const span = (cls) => `<span class="${cls}">${escapeHtml(token)}</span>`;
    if (comment) html += span("cm");
    else if (string) html += span("st");
    else if (number) html += span("nu");
    else if (RUST_KEYWORDS.has(word)) html += span("kw");
    else if (/^[A-Z]/.test(word)) html += span("ty");
    else html += escapeHtml(token);
    last = m.index + token.length;
  }
  return html + escapeHtml(text.slice(last));
}

function showRust(p) {
  const el = settle("rust", p);
  el.innerHTML = p.ok ? highlightRust(p.text) : escapeHtml(p.text);
  showStatus();
}

function showStatus() {
  const t = Object.entries(state.timings).map(([k, v]) => `${k} ${v} ms`).join(" · ");
  const file = state.file ? (state.dirty ? "unsaved · " : "saved · ") : "";
  $("status").textContent = file + t;
}

// ---- the editor -------------------------------------------------------------------

function renumber() {
  const lines = editor.value.split("\n").length;
  if (gutter.dataset.lines !== String(lines)) {
    gutter.dataset.lines = String(lines);
    gutter.textContent = Array.from({ length: lines }, (_, i) => i + 1).join("\n");
  }
  gutter.scrollTop = editor.scrollTop;
}

// Moves the caret to a 1-based line and column.
function goTo(line, col) {
  const lines = editor.value.split("\n");
  let offset = 0;
  for (let i = 0; i < Math.min(line - 1, lines.length); i++) offset += lines[i].length + 1;
  offset += Math.max(0, col - 1);
  editor.focus();
  editor.setSelectionRange(offset, offset);
  const lineHeight = parseFloat(getComputedStyle(editor).lineHeight) || 18;
  editor.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

function edited() {
  state.editedAt = performance.now();
  state.settledAfter = null;
  renumber();
  if (state.file) {
    state.dirty = true;
  }
  schedule();
}

editor.addEventListener("input", edited);
editor.addEventListener("scroll", () => { gutter.scrollTop = editor.scrollTop; });
editor.addEventListener("keydown", (e) => {
  if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    document.execCommand("insertText", false, "    ");
  }
  if ((e.ctrlKey || e.metaKey) && e.key === "s") {
    e.preventDefault();
    save();
  }
});
$("diagnostics").addEventListener("click", (e) => {
  const a = e.target.closest("a[data-line]");
  if (a) goTo(Number(a.dataset.line), Number(a.dataset.col));
});
for (const id of ["model", "seed", "batch", "backward", "expand"]) {
  $(id).addEventListener("change", schedule);
}

// ---- gradcheck and inputs -------------------------------------------------------------

$("gradcheck-run").addEventListener("click", async () => {
  const out = $("gradcheck");
  out.textContent = "checking…";
  out.classList.remove("failed");
  const p = await pane("gradcheck", settings(), undefined);
  out.textContent = p.text;
  out.classList.toggle("failed", !p.ok);
  showStatus();
});

$("npz").addEventListener("change", async () => {
  const file = $("npz").files[0];
  if (!file) return;
  const reply = await fetch("/api/inputs", {
    method: "PUT",
    headers: { "content-type": "application/octet-stream" },
    body: file,
  }).catch(() => null);
  const p = reply ? await reply.json().catch(() => ({ ok: false, text: "error" })) : { ok: false, text: "no answer" };
  state.uploaded = p.ok;
  $("graph-note").textContent = p.text;
  schedule();
});

$("npz-clear").addEventListener("click", async () => {
  await fetch("/api/inputs", { method: "DELETE" }).catch(() => null);
  $("npz").value = "";
  state.uploaded = false;
  schedule();
});

// ---- file mode --------------------------------------------------------------------

async function save() {
  if (!state.file) return;
  const reply = await fetch("/api/file", {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text: editor.value }),
  }).catch(() => null);
  const body = reply ? await reply.json().catch(() => null) : null;
  if (reply && reply.ok && body) {
    state.file.version = body.version;
    state.dirty = false;
    showStatus();
  } else {
    $("status").textContent = (body && body.text) || "error: not saved";
  }
}

$("save").addEventListener("click", save);

function load(loaded) {
  state.file = { path: loaded.path, version: loaded.version };
  editor.value = loaded.text;
  state.dirty = false;
  renumber();
  refresh();
}

// Polls the file's version; a change on disk reloads the text unless it has edits
// not saved, which are kept (saving then overwrites the file).
async function poll() {
  const reply = await fetch("/api/file/version").catch(() => null);
  const body = reply && reply.ok ? await reply.json().catch(() => null) : null;
  if (body && body.version !== state.file.version) {
    if (state.dirty) {
      $("status").textContent = "the file changed on disk; Save overwrites it";
      state.file.version = body.version;
    } else {
      const again = await fetch("/api/file").catch(() => null);
      if (again && again.ok) load(await again.json());
    }
  }
  setTimeout(poll, 1000);
}

async function start() {
  const reply = await fetch("/api/file").catch(() => null);
  if (reply && reply.ok) {
    const loaded = await reply.json();
    $("file-name").textContent = loaded.path;
    $("save").hidden = false;
    load(loaded);
    setTimeout(poll, 1000);
  } else {
    editor.value = SAMPLE;
    renumber();
    refresh();
  }
}

start();
