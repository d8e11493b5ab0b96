// The live page: rides on GET /stream (docs/contracts.md, "HTTP API"): loads /orders, /stats and
// /batches once, then merges each pushed batch into them and flashes the rows it changed; the
// processor's state comes from the stream's status events. When the stream is unavailable it
// polls the three once a second, trying the stream again every 15 s; the header says which
// ("push" or "polling"). It redraws the two tables, says what the processor is doing (the badge
// says "live" only while it is running) and draws the last minutes of input vs processed rate
// and lag as plain SVG.
// Every value is inserted with textContent, never as HTML: a tenant named
// <img src=x onerror=alert(1)> shows as those characters. The charts get numbers only.
"use strict";

const $ = (id) => document.getElementById(id);
const previousStatus = new Map(); // "tenant\u0000order" -> status, to highlight changes
let knownTenants = [];

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function money(cents, currency) {
  const amount = Number(cents) / 100;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: String(currency) }).format(amount);
  } catch (_) {
    return amount.toFixed(2) + " " + String(currency);
  }
}

function shortTime(iso) {
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleTimeString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

async function getJSON(path) {
  const ctrl = new AbortController();
  const timer = setTimeout(() => ctrl.abort(), 2500);
  try {
    const r = await fetch(path, { signal: ctrl.signal, cache: "no-store" });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || ("HTTP " + r.status));
    return body;
  } finally {
    clearTimeout(timer);
  }
}

function renderStats(data) {
  const tbody = $("stats").tBodies[0];
  const rows = data.tenants.map((t) => {
    const tr = document.createElement("tr");
    tr.append(
      cell(t.tenant),
      cell(String(t.orders), "num"),
      cell(money(t.revenue_cents, "USD"), "num"),
      cell(String(t.by_status.order_placed), "num"),
      cell(String(t.by_status.order_paid), "num"),
      cell(String(t.by_status.order_shipped), "num"),
      cell(String(t.by_status.order_cancelled), "num"),
    );
    return tr;
  });
  tbody.replaceChildren(...rows);

  // Keep the tenant filter's options in step with the tenants that exist.
  const names = data.tenants.map((t) => t.tenant);
  if (names.join("\u0000") !== knownTenants.join("\u0000")) {
    knownTenants = names;
    const select = $("tenant");
    const chosen = select.value;
    const options = [new Option("all", "")].concat(names.map((n) => new Option(n, n)));
    select.replaceChildren(...options);
    select.value = names.includes(chosen) ? chosen : "";
  }
}

const orderKey = (o) => o.tenant + "\u0000" + o.order_id;

// `changed`: the keys of the orders a pushed batch changed (they flash). Polled, a row flashes
// when its status differs from the last time it was drawn.
function renderOrders(data, changed) {
  const tbody = $("orders").tBodies[0];
  const rows = data.orders.map((o) => {
    const key = orderKey(o);
    const before = previousStatus.get(key);
    previousStatus.set(key, o.status);
    const tr = document.createElement("tr");
    const flash = changed ? changed.has(key) : before !== undefined && before !== o.status;
    if (flash) tr.className = "changed";
    const status = cell(o.status.replace("order_", ""), "badge " + o.status);
    tr.append(
      cell(shortTime(o.updated_at), "time"),
      cell(o.tenant),
      cell(o.order_id, "mono"),
      status,
      cell(money(o.amount_cents, o.currency), "num"),
    );
    return tr;
  });
  tbody.replaceChildren(...rows);
  $("empty").hidden = data.orders.length > 0;
  if (previousStatus.size > 20000) previousStatus.clear();
}

function setConnection(ok, message) {
  const pill = $("conn");
  pill.textContent = ok ? "live" : message;
  pill.className = "pill " + (ok ? "ok" : "down");
}

// An age in seconds as people read it: "41 s", "12 min", "5 h".
function age(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s)) return "?";
  if (s < 10) return s.toFixed(1) + " s";
  if (s < 120) return Math.round(s) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}

// The badge: "live" only while the processor is running (a batch committed lately and no
// records left waiting too long); otherwise its state and how old its last batch is.
function setProcessor(p) {
  const pill = $("conn");
  const details = $("pstate");
  if (!p || typeof p.state !== "string") {
    pill.textContent = "unknown";
    pill.className = "pill unknown";
    details.textContent = "the API does not say what the processor is doing";
    return;
  }
  const last = p.last_batch_age_s == null ? "no batch yet" : "last batch " + age(p.last_batch_age_s) + " ago";
  const known = ["running", "idle", "stalled", "down"].includes(p.state);
  if (p.state === "running") {
    pill.textContent = "live";
    pill.className = "pill ok";
  } else {
    pill.textContent = (known ? p.state : "unknown") + " · " + last;
    pill.className = "pill " + (p.state === "idle" ? "idle" : known ? "down" : "unknown");
  }
  const parts = [known ? p.state : "unknown", last];
  if (p.event_time_lag_s != null) parts.push("fresh " + age(p.event_time_lag_s));
  if (p.lag_records != null) parts.push("lag " + Number(p.lag_records));
  if (Array.isArray(p.replicas)) parts.push(p.replicas.length + (p.replicas.length === 1 ? " replica" : " replicas"));
  details.textContent = parts.join(" · ");
}

// The last minutes, one sample a poll: records/s arriving (from the partitions' live ends),
// records/s committed (rows of the batches new since the last poll) and the lag.
const WINDOW_S = 180;
const samples = [];
let previous = null; // {t, ends, lastBatch}

function sample(batches) {
  const t = Date.now() / 1000;
  const ends = new Map();
  let live = (batches.partitions || []).length > 0; // no partitions: the arrival rate is unknown
  for (const p of batches.partitions || []) {
    if (p.high_watermark == null || p.high_watermark_source === "stored") live = false;
    ends.set(p.topic + "\u0000" + p.partition, Number(p.high_watermark));
  }
  const lastBatch = Math.max(0, ...batches.batches.map((b) => Number(b.batch_id)));
  const proc = batches.processor || {};
  let lag = proc.lag_records;
  if (lag == null) {
    const lags = (batches.partitions || []).map((p) => p.lag).filter((l) => l != null);
    lag = lags.length ? lags.reduce((a, b) => a + Number(b), 0) : null;
  }
  if (previous) {
    const dt = t - previous.t;
    let arrived = 0;
    for (const [k, v] of ends) arrived += v - (previous.ends.get(k) ?? v);
    const rows = batches.batches
      .filter((b) => Number(b.batch_id) > previous.lastBatch)
      .reduce((a, b) => a + Number(b.input_rows), 0);
    samples.push({
      t,
      // A log that shrank (a re-created topic) gives no rate, rather than a made-up 0.
      input: live && previous.live && arrived >= 0 ? arrived / dt : null,
      done: rows / dt,
      lag: lag == null ? null : Number(lag),
    });
  }
  previous = { t, ends, lastBatch: Math.max(lastBatch, previous ? previous.lastBatch : 0), live };
  while (samples.length && samples[0].t < t - WINDOW_S) samples.shift();
}

// A polyline's points for one series: x by time over the window, y on a shared scale.
function points(key, now, max) {
  return samples
    .filter((s) => s[key] != null && Number.isFinite(s[key]))
    .map((s) => {
      const x = 300 - ((now - s.t) / WINDOW_S) * 300;
      const y = 58 - (s[key] / max) * 54;
      return x.toFixed(1) + "," + y.toFixed(1);
    })
    .join(" ");
}

function drawCharts() {
  const now = Date.now() / 1000;
  const rateMax = Math.max(1, ...samples.flatMap((s) => [s.input, s.done].filter((v) => v != null)));
  const lagMax = Math.max(1, ...samples.map((s) => s.lag).filter((v) => v != null));
  $("in-line").setAttribute("points", points("input", now, rateMax));
  $("done-line").setAttribute("points", points("done", now, rateMax));
  $("lag-line").setAttribute("points", points("lag", now, lagMax));
  const latest = (key) => {
    const known = samples.filter((s) => s[key] != null).slice(-5);
    return known.length ? known.reduce((a, s) => a + s[key], 0) / known.length : null;
  };
  const show = (v) => (v == null ? "–" : v >= 100 ? Math.round(v).toString() : v.toFixed(1));
  $("in-now").textContent = show(latest("input"));
  $("done-now").textContent = show(latest("done"));
  const lag = samples.length ? samples[samples.length - 1].lag : null;
  $("lag-now").textContent = lag == null ? "–" : String(lag);
}

function filterQuery() {
  const q = new URLSearchParams();
  if ($("tenant").value) q.set("tenant", $("tenant").value);
  if ($("status").value) q.set("status", $("status").value);
  q.set("limit", $("limit").value);
  return q;
}

function showAsOf(batch) {
  $("asof").textContent = "as of batch " + batch + " · " + new Date().toLocaleTimeString(undefined, { hour12: false });
}

function showBatches(batches) {
  setProcessor(batches.processor);
  const errors = (batches.partitions || []).filter((p) => p.lag_error);
  if (errors.length) {
    $("pstate").textContent += " · lag error: partition " + errors[0].partition + ": " + errors[0].lag_error;
  }
}

function apiDown(e) {
  setConnection(false, e.name === "AbortError" ? "API not answering" : "unavailable: " + e.message);
  $("pstate").textContent = "processor state unknown: the API does not answer";
}

// The three answers, fetched together: what polling draws every second, and what the stream's
// batches are merged into.
async function fetchAll() {
  const [orders, stats, batches] = await Promise.all([
    getJSON("/orders?" + filterQuery()), getJSON("/stats"), getJSON("/batches?limit=" + BATCHES_KEPT),
  ]);
  return { orders, stats, batches };
}

function drawAll(view, changed) {
  renderStats(view.stats);
  renderOrders(view.orders, changed);
  showAsOf(view.orders.as_of_batch);
  showBatches(view.batches);
}

// ---- polling: the fallback -------------------------------------------------------------------

async function refresh() {
  try {
    const view = await fetchAll();
    drawAll(view, null);
    sample(view.batches);
    drawCharts();
  } catch (e) {
    apiDown(e);
  }
}

let timer = null;
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => { await refresh(); if (mode === "polling") schedule(); }, 1000);
}

// ---- push: GET /stream -----------------------------------------------------------------------

const BATCHES_KEPT = 200; // enough for the processed rate between two status events
const OPEN_WITHIN_MS = 3000;
const RETRY_STREAM_MS = 15000;
let mode = "connecting"; // "push" | "polling" | "connecting"
let source = null;
let view = null; // {orders, stats, batches} as of view.orders.as_of_batch, null while loading
let queued = []; // batch events that came while the view was loading
let loading = null;
let again = false;
let retry = null;

function setMode(m) {
  mode = m;
  const pill = $("mode");
  pill.textContent = m;
  pill.className = "pill mode " + m;
  $("how").textContent = m === "push"
    ? "Pushed by /stream as each batch commits; loaded from"
    : "Refreshed every second from";
}

function matches(o) {
  return (!$("tenant").value || o.tenant === $("tenant").value)
    && (!$("status").value || o.status === $("status").value);
}

// The orders a batch changed, merged into the list: upserted by tenant and order id, kept only
// if they match the filter (a row that no longer does leaves), sorted as /orders sorts them and
// cut to the number of rows asked for.
function mergeOrders(list, changed, limit) {
  const byKey = new Map(list.map((o) => [orderKey(o), o]));
  for (const o of changed) {
    if (matches(o)) byKey.set(orderKey(o), o);
    else byKey.delete(orderKey(o));
  }
  const time = (o) => Date.parse(o.updated_at);
  // Within a millisecond the API's own text (microseconds, UTC) still orders them.
  const cmp = (x, y) => (x < y ? -1 : x > y ? 1 : 0);
  return [...byKey.values()]
    .sort((a, b) => (time(b) - time(a)) || cmp(b.updated_at, a.updated_at)
      || cmp(a.tenant, b.tenant)
      || cmp(a.order_id, b.order_id))
    .slice(0, limit);
}

function applyBatch(event) {
  if (!view || event.as_of_batch <= view.orders.as_of_batch) return;
  if (event.orders_truncated) { reload(); return; }
  const limit = Number($("limit").value);
  view.orders = { orders: mergeOrders(view.orders.orders, event.orders, limit), as_of_batch: event.as_of_batch };
  view.stats = event.stats;
  const batches = view.batches.batches.filter((b) => b.batch_id !== event.batch.batch_id);
  view.batches.batches = [event.batch, ...batches].slice(0, BATCHES_KEPT);
  drawAll(view, new Set(event.orders.map(orderKey)));
}

function applyStatus(status) {
  if (!view) return;
  view.batches.processor = status.processor;
  view.batches.partitions = status.partitions;
  showBatches(view.batches);
  // About once a second, like a poll: one point of the charts.
  sample(view.batches);
  drawCharts();
}

// Loads the three answers as the ground the stream's batches are merged into; the batches
// that came meanwhile are applied after it (those it already has are skipped).
function reload() {
  if (loading) {
    // A filter changed while loading: load again once this ends, with the new filter.
    again = true;
    return loading;
  }
  again = false;
  view = null;
  loading = fetchAll()
    .then((fresh) => {
      view = fresh;
      drawAll(view, null);
      const pending = queued;
      queued = [];
      for (const event of pending) applyBatch(event);
    })
    .catch((e) => { apiDown(e); fallBack(); })
    .finally(() => {
      loading = null;
      if (again && source) reload();
    });
  return loading;
}

function openStream() {
  clearTimeout(retry);
  // Every tenant's and every status's: the stats it carries are the whole table's, like /stats,
  // and the page narrows the orders itself.
  const es = new EventSource("/stream");
  source = es;
  let opened = false;
  let errors = 0;
  const giveUp = setTimeout(() => { if (!opened) fallBack(); }, OPEN_WITHIN_MS);
  es.onopen = () => {
    opened = true;
    errors = 0;
    clearTimeout(giveUp);
    clearTimeout(timer);
    setMode("push");
  };
  es.onerror = () => {
    errors += 1;
    // Closed: the answer was not a stream (no /stream here). Otherwise the browser reconnects
    // by itself with Last-Event-ID; after a few failures in a row, poll instead.
    if (es.readyState === EventSource.CLOSED || errors >= 3) fallBack();
  };
  es.addEventListener("reset", () => { reload(); });
  es.addEventListener("batch", (e) => {
    const event = JSON.parse(e.data);
    if (view) applyBatch(event);
    else queued.push(event);
  });
  es.addEventListener("status", (e) => applyStatus(JSON.parse(e.data)));
}

function fallBack() {
  if (source) source.close();
  source = null;
  view = null;
  queued = [];
  if (mode !== "polling") {
    setMode("polling");
    refresh().then(schedule);
  }
  clearTimeout(retry);
  retry = setTimeout(openStream, RETRY_STREAM_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["tenant", "status", "limit"]) {
    $(id).addEventListener("change", () => {
      if (mode === "push") reload();
      else { refresh(); schedule(); }
    });
  }
  setMode("connecting");
  openStream();
});
