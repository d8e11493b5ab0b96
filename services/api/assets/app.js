// The live page: polls /orders and /stats once a second and redraws the two tables.
// Every value is inserted with textContent, never as HTML: a tenant named
// <img src=x onerror=alert(1)> shows as those characters.
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

function renderOrders(data) {
  const tbody = $("orders").tBodies[0];
  const rows = data.orders.map((o) => {
    const key = o.tenant + "\u0000" + o.order_id;
    const before = previousStatus.get(key);
    previousStatus.set(key, o.status);
    const tr = document.createElement("tr");
    if (before !== undefined && before !== o.status) tr.className = "changed";
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

async function refresh() {
  const q = new URLSearchParams();
  if ($("tenant").value) q.set("tenant", $("tenant").value);
  if ($("status").value) q.set("status", $("status").value);
  q.set("limit", $("limit").value);
  try {
    const [orders, stats] = await Promise.all([getJSON("/orders?" + q), getJSON("/stats")]);
    renderStats(stats);
    renderOrders(orders);
    $("asof").textContent = "as of batch " + orders.as_of_batch + " · " + new Date().toLocaleTimeString(undefined, { hour12: false });
    setConnection(true);
  } catch (e) {
    setConnection(false, e.name === "AbortError" ? "API not answering" : "unavailable: " + e.message);
  }
}

let timer = null;
function schedule() {
  clearTimeout(timer);
  timer = setTimeout(async () => { await refresh(); schedule(); }, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["tenant", "status", "limit"]) $(id).addEventListener("change", () => { refresh(); schedule(); });
  refresh().then(schedule);
});
