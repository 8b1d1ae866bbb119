/* tunnelmux admin dashboard: polls /api/clients every second and renders it. Every value that
 * comes from the server (client names, addresses, request paths: attacker-controlled) is put in
 * the page with textContent only, never parsed as HTML. */
"use strict";

const POLL_MS = 1000;
const armed = new Map(); /* client name -> timer of a first "disconnect" click awaiting confirmation */

function $(id) { return document.getElementById(id); }

function fmtBytes(n) {
  if (n == null) return "–";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(1)) + " " + u[i];
}
// smoothed RTT with the minimum of the last 5-10 s (queueing shows as the gap between them)
function fmtRtt(c) {
  if (c.rtt_smoothed_ms == null) return c.rtt_ms == null ? "–" : c.rtt_ms + " ms";
  return c.rtt_smoothed_ms + " ms (min " + c.rtt_min_ms + ")";
}

function fmtRate(n) { return n == null ? "–" : fmtBytes(n) + "/s"; }
function fmtDuration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d > 0) return d + "d " + h + "h";
  if (h > 0) return h + "h " + m + "m";
  return m + "m " + (s % 60) + "s";
}
function fmtTime(ms) { return new Date(ms).toLocaleTimeString(); }

/* A cell whose text is |text| (set with textContent: never interpreted as HTML). */
function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function classes(c) {
  const b = c.requests_by_class || {};
  return (b["2xx"] || 0) + " / " + (b["4xx"] || 0) + " / " + (b["5xx"] || 0);
}

function disconnectButton(name) {
  const btn = document.createElement("button");
  btn.type = "button";
  btn.className = "disconnect";
  btn.dataset.client = name;
  btn.textContent = armed.has(name) ? "confirm" : "disconnect";
  if (armed.has(name)) btn.classList.add("confirm");
  btn.addEventListener("click", () => onDisconnect(name));
  return btn;
}

async function onDisconnect(name) {
  if (!armed.has(name)) { /* first click arms, a second within 5 s disconnects */
    armed.set(name, setTimeout(() => { armed.delete(name); refresh(); }, 5000));
    refresh();
    return;
  }
  clearTimeout(armed.get(name));
  armed.delete(name);
  try {
    const r = await fetch("/api/clients/" + encodeURIComponent(name) + "/disconnect",
                          { method: "POST", headers: { "X-TM-Admin": "1" }, cache: "no-store" });
    const body = await r.json().catch(() => ({}));
    $("message").textContent = r.ok ? "Disconnected " + name + "." : "Disconnect of " + name + " failed: " + (body.error || r.status);
  } catch (e) {
    $("message").textContent = "Disconnect of " + name + " failed: " + e;
  }
  refresh();
}

let last = null;

function render(data) {
  last = data;
  const s = data.server;
  $("t-clients").textContent = s.connected_clients;
  $("t-requests").textContent = s.requests_total;
  $("t-classes").textContent = classes(s);
  $("t-bytes").textContent = fmtBytes(s.bytes_in) + " / " + fmtBytes(s.bytes_out);
  const refusals = Object.values(s.refusals || {}).reduce((a, b) => a + b, 0);
  $("t-reconnects").textContent = s.reconnects + " / " + refusals;
  $("t-uptime").textContent = fmtDuration(s.uptime_s);

  const tbody = $("clients").tBodies[0];
  const rows = [];
  const clients = data.clients.slice().sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  for (const c of clients) {
    const tr = document.createElement("tr");
    tr.dataset.client = c.name;
    const r = c.rates || {};
    tr.append(cell(c.name, "name"), cell(c.address, "address"), cell(new Date(c.connected_since_unix_ms).toLocaleString(), "since"),
              cell(c.streams_active, "num streams"), cell(c.requests_total, "num requests"), cell(classes(c), "num classes"),
              cell(r.requests_per_s == null ? "–" : r.requests_per_s.toFixed(1), "num rps"),
              cell(fmtRate(r.bytes_in_per_s), "num rin"), cell(fmtRate(r.bytes_out_per_s), "num rout"),
              cell(fmtRtt(c), "num rtt"), cell(c.flow_blocked_ms + " ms", "num blocked"), cell(fmtQueue(c), "num queue"),
              cell(c.reconnects, "num reconnects"));
    const td = document.createElement("td");
    td.append(disconnectButton(c.name));
    tr.append(td);
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  $("no-clients").hidden = data.clients.length > 0;

  const rbody = $("recent").tBodies[0];
  const rrows = [];
  for (const q of data.recent.slice(0, 30)) {
    const tr = document.createElement("tr");
    const st = cell(q.status || "–", "num status s" + Math.floor((q.status || 0) / 100));
    const path = cell(q.path, "path");
    path.title = q.path;
    tr.append(cell(fmtTime(q.at_unix_ms)), cell(q.client || "–", "client"), cell(q.method, "method"), path, st,
              cell(q.duration_ms.toFixed(1) + " ms", "num"),
              cell(q.queue_wait_ms == null ? "–" : q.queue_wait_ms + " ms", "num queued"), cell(fmtBytes(q.bytes_out), "num"));
    rrows.push(tr);
  }
  rbody.replaceChildren(...rrows);
}

// The client's local connection queue (LOCAL_MAX_CONNECTIONS) as its response heads report it:
// "waiting now · average / longest wait"; "–" for a client that does not report it.
function fmtQueue(c) {
  const q = c.local_queue;
  if (!q || q.length == null) return "–";
  return q.length + " · " + (q.wait_ms_avg == null ? 0 : q.wait_ms_avg).toFixed(0) + " / " + q.wait_ms_max + " ms";
}

async function refresh() {
  try {
    const r = await fetch("/api/clients", { cache: "no-store" });
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    $("status").textContent = "live · updated " + new Date().toLocaleTimeString();
    $("status").className = "status ok";
  } catch (e) {
    $("status").textContent = "connection lost (" + e.message + ")";
    $("status").className = "status bad";
    if (last) render(last);
  }
}

refresh();
setInterval(refresh, POLL_MS);
