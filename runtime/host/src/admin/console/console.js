// Weir console: polls the admin endpoint and renders pipelines, plugins and
// their reloads, partitions and failures by kind, with charts of the last
// minutes from /history (kept by the process). Text from the server is only
// ever set as textContent, never as HTML.
"use strict";

const REFRESH_MS = 2000;
/** Records/s is the committed offset's growth over about this long. */
const RATE_WINDOW_MS = 30000;

/** Parse the Prometheus text format into [{name, labels, value}]. */
function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const labels = {};
    const labelText = match[2] || "";
    const labelPattern = /(\w+)="((?:[^"\\]|\\.)*)"/g;
    let label;
    while ((label = labelPattern.exec(labelText)) !== null) {
      labels[label[1]] = label[2].replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

/** Sum of `name` per value of `label`. */
function sumBy(samples, name, label) {
  const sums = new Map();
  for (const s of samples) {
    if (s.name !== name) continue;
    const key = s.labels[label] ?? "";
    sums.set(key, (sums.get(key) ?? 0) + s.value);
  }
  return sums;
}

function cell(row, text, numeric) {
  const td = row.insertCell();
  td.textContent = text;
  if (numeric) td.className = "num";
  return td;
}

function fillTable(id, rows) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren();
  for (const build of rows) build(body.insertRow());
  if (rows.length === 0) {
    const td = body.insertRow().insertCell();
    td.colSpan = 8;
    td.className = "muted";
    td.textContent = "none yet";
  }
}

const number = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
const shortVersion = (v) => (v ? v.slice(0, 12) : "–");
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "–");

function renderPipelines(samples) {
  const groups = [...new Set(samples.filter((s) => s.labels.pipeline !== undefined).map((s) => s.labels.pipeline))].sort();
  const of = (name) => sumBy(samples, name, "pipeline");
  const consumed = of("weir_records_consumed_total");
  const produced = of("weir_records_produced_total");
  const dead = of("weir_records_dead_lettered_total");
  const failures = of("weir_record_failures_total");
  const inFlight = of("weir_in_flight_records");
  const paused = of("weir_paused_partitions");
  const restarts = of("weir_pipeline_restarts_total");
  fillTable("pipelines", groups.map((g) => (row) => {
    row.dataset.group = g;
    cell(row, g);
    for (const m of [consumed, produced, dead, failures, inFlight, paused, restarts]) cell(row, number(m.get(g) ?? 0), true);
  }));
}

function renderFailures(samples, history) {
  const rows = samples
    .filter((s) => s.name === "weir_record_failures_total" && s.value > 0)
    .sort((a, b) => (a.labels.pipeline + a.labels.kind).localeCompare(b.labels.pipeline + b.labels.kind));
  fillTable("failures", rows.map((s) => (row) => {
    row.dataset.kind = s.labels.kind ?? "";
    cell(row, s.labels.pipeline ?? "");
    cell(row, s.labels.kind ?? "");
    cell(row, number(s.value), true);
    // Failures per sample interval: the growth of the counter.
    const totals = history.map((p) => p.pipelines.find((q) => q.pipeline === s.labels.pipeline)?.failures[s.labels.kind] ?? 0);
    row.insertCell().append(sparkline(totals.slice(1).map((t, i) => Math.max(0, t - totals[i]))));
  }));
}

function sparkline(points) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 160 24");
  const max = Math.max(1, ...points);
  const step = points.length > 1 ? 160 / (points.length - 1) : 0;
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.map((p, i) => `${(i * step).toFixed(1)},${(23 - (p / max) * 22).toFixed(1)}`).join(" "));
  svg.append(line);
  return svg;
}

function renderPartitions(samples, history) {
  const byKey = new Map();
  for (const s of samples) {
    if (!["weir_consumer_lag", "weir_committed_offset", "weir_high_watermark", "weir_partition_paused"].includes(s.name)) continue;
    const key = `${s.labels.pipeline}|${s.labels.topic}|${s.labels.partition}`;
    const entry = byKey.get(key) ?? { group: s.labels.pipeline, topic: s.labels.topic, partition: Number(s.labels.partition) };
    entry[s.name] = s.value;
    byKey.set(key, entry);
  }
  const entries = [...byKey.values()].sort((a, b) =>
    a.group.localeCompare(b.group) || a.topic.localeCompare(b.topic) || a.partition - b.partition);
  fillTable("partitions", entries.map((e) => (row) => {
    const points = history
      .map((p) => ({ t: p.at_ms, at: p.partitions.find((q) => q.pipeline === e.group && q.topic === e.topic && q.partition === e.partition) }))
      .filter((p) => p.at !== undefined);
    const last = points[points.length - 1];
    const first = last && points.find((p) => last.t - p.t <= RATE_WINDOW_MS);
    const seconds = last ? (last.t - first.t) / 1000 : 0;
    const rate = seconds > 0 ? (last.at.committed - first.at.committed) / seconds : NaN;
    row.dataset.topic = e.topic;
    row.dataset.partition = String(e.partition);
    cell(row, e.group);
    cell(row, e.topic);
    cell(row, String(e.partition), true);
    cell(row, number(e.weir_committed_offset), true);
    cell(row, number(e.weir_high_watermark), true);
    cell(row, number(e.weir_consumer_lag), true).dataset.field = "lag";
    cell(row, Number.isFinite(rate) ? rate.toFixed(1) : "–", true);
    cell(row, e.weir_partition_paused === 1 ? "paused" : "").dataset.field = "paused";
    row.insertCell().append(sparkline(points.map((p) => p.at.lag)));
  }));
}

/** The admin token entered on the page, as request headers. */
function authHeaders() {
  const token = document.getElementById("token").value;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** A key or value preview ({size, cut, text | hex}) as an element. */
function previewElement(preview) {
  const out = document.createElement("span");
  if (!preview) {
    out.className = "muted";
    out.textContent = "null";
    return out;
  }
  let shown = preview.hex !== undefined ? `0x${preview.hex}` : preview.text;
  if (preview.text !== undefined) {
    try {
      const parsed = JSON.parse(preview.text);
      if (typeof parsed === "object" && parsed !== null) shown = JSON.stringify(parsed, null, 1);
    } catch {
      // Not JSON: shown as text.
    }
  }
  const pre = document.createElement("pre");
  pre.textContent = shown;
  out.append(pre);
  if (preview.cut) {
    const note = document.createElement("span");
    note.className = "muted";
    note.textContent = `… ${preview.size.toLocaleString("en-US")} bytes in all`;
    out.append(note);
  }
  return out;
}

async function loadLetters() {
  const status = document.getElementById("letters-status");
  const kind = document.getElementById("letter-kind").value;
  const query = `dead-letters?limit=20${kind ? `&kind=${encodeURIComponent(kind)}` : ""}`;
  const response = await fetch(query, { headers: authHeaders() });
  if (response.status === 404 || response.status === 405) {
    fillTable("letters", []);
    status.textContent = "dead letters carry record contents, so only the control endpoint (control_addr) serves them: open the console there";
    return;
  }
  if (!response.ok) {
    status.textContent = `${response.status}: ${await response.text()}`;
    return;
  }
  const body = await response.json();
  fillTable("letters", body.letters.map((l) => (row) => {
    row.dataset.letter = `${l.topic}/${l.partition}@${l.offset}`;
    row.dataset.kind = l.kind ?? "";
    cell(row, time(l.failed_at_ms));
    cell(row, row.dataset.letter);
    cell(row, l.kind ?? "");
    cell(row, l.source_topic ?? "");
    const key = row.insertCell();
    key.dataset.field = "key";
    key.append(previewElement(l.key));
    const value = row.insertCell();
    value.dataset.field = "value";
    value.append(previewElement(l.value));
    cell(row, l.message ?? "");
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = `${l.headers.length} weir.* headers`;
    const list = document.createElement("pre");
    list.textContent = l.headers.map(([k, v]) => `${k}: ${v}`).join("\n");
    details.append(summary, list);
    row.insertCell().append(details);
  }));
  status.textContent = `${body.letters.length} newest${kind ? ` of kind ${kind}` : ""}` +
    (body.errors.length ? `; could not read: ${body.errors.join("; ")}` : "");
  document.body.dataset.lettersLoaded = String(Number(document.body.dataset.lettersLoaded ?? 0) + 1);
}

async function action(plugin, verb) {
  const status = document.getElementById("action");
  const headers = authHeaders();
  status.textContent = `${verb} ${plugin}…`;
  try {
    const response = await fetch(`plugins/${encodeURIComponent(plugin)}/${verb}`, { method: "POST", headers });
    const body = await response.text();
    status.textContent = response.status === 404 || response.status === 405
      ? `${verb} needs the control endpoint (control_addr): open the console there`
      : `${verb} ${plugin}: ${response.status} ${body}`;
  } catch (error) {
    status.textContent = `${verb} ${plugin} failed: ${error}`;
  }
  refresh();
}

function renderReloads(plugins) {
  const events = plugins
    .flatMap((p) => (p.history ?? []).map((e) => ({ plugin: p.name, ...e })))
    .sort((a, b) => b.at_ms - a.at_ms);
  fillTable("reloads", events.map((e) => (row) => {
    row.dataset.outcome = e.outcome;
    if (e.outcome === "failed") row.className = "failed";
    cell(row, time(e.at_ms));
    cell(row, e.plugin);
    cell(row, e.trigger);
    cell(row, e.outcome);
    cell(row, shortVersion(e.version));
    cell(row, e.error ?? "");
  }));
}

function renderPlugins(plugins) {
  fillTable("plugins", plugins.map((p) => (row) => {
    row.dataset.plugin = p.name;
    cell(row, p.name);
    cell(row, shortVersion(p.current?.version)).dataset.field = "version";
    cell(row, time(p.current?.loaded_at_ms));
    cell(row, p.current?.path ?? "");
    cell(row, p.previous ? shortVersion(p.previous.version) : "–");
    cell(row, `${p.reloads_ok} / ${p.reloads_failed}`, true);
    const buttons = row.insertCell();
    for (const verb of ["reload", "rollback"]) {
      const button = document.createElement("button");
      button.textContent = verb;
      button.dataset.action = verb;
      button.disabled = verb === "rollback" && !p.previous;
      button.addEventListener("click", () => action(p.name, verb));
      buttons.append(button);
    }
  }));
}

async function refresh() {
  const now = Date.now();
  const [metrics, history, ready, plugins] = await Promise.all([
    fetch("metrics").then((r) => r.text()),
    fetch("history").then((r) => (r.ok ? r.json() : [])),
    fetch("readyz").then(async (r) => ({ ok: r.ok, text: await r.text() })),
    fetch("plugins").then((r) => (r.ok ? r.json() : [])),
  ]);
  const samples = parseMetrics(metrics);
  renderPipelines(samples);
  renderPartitions(samples, history);
  renderFailures(samples, history);
  renderPlugins(plugins);
  renderReloads(plugins);
  const badge = document.getElementById("ready");
  badge.textContent = ready.ok ? "ready" : "not ready";
  badge.title = ready.text;
  badge.className = `badge ${ready.ok ? "ok" : "bad"}`;
  document.getElementById("updated").textContent = `updated ${new Date(now).toLocaleTimeString()}`;
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed ?? 0) + 1);
}

/** Dead letters are read from Kafka: load them on demand and every 20 s. */
function lettersLoop() {
  loadLetters()
    .catch((error) => { document.getElementById("letters-status").textContent = `failed: ${error}`; })
    .finally(() => setTimeout(lettersLoop, 20000));
}
document.getElementById("letter-kind").addEventListener("change", () => loadLetters());
document.getElementById("letters-refresh").addEventListener("click", () => loadLetters());

function loop() {
  refresh()
    .catch((error) => {
      const badge = document.getElementById("ready");
      badge.textContent = "unreachable";
      badge.title = String(error);
      badge.className = "badge bad";
    })
    .finally(() => setTimeout(loop, REFRESH_MS));
}

loop();
lettersLoop();
