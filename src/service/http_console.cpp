// The web console served at / (tether/service/http.hpp): one static page, no external
// resources, polling /status.json once a second.

#include "tether/service/http.hpp"

namespace tether::http {

namespace {
constexpr std::string_view kPage = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>tether console</title><link rel="icon" href="data:,">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .3em}h2{font-size:1.05em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:right}
th{background:#f0f0f0}td.l,th.l{text-align:left}.bad{color:#b00}.ok{color:#070}
#figures span{display:inline-block;margin-right:1.5em}#figures b{font-size:1.2em}
canvas{border:1px solid #ddd;background:#fff}pre{margin:0;white-space:pre-wrap}
</style></head><body>
<h1>tether · <span id="service">…</span> <span id="state"></span></h1>
<div id="figures">
<span>connections <b id="connections-open">0</b></span>
<span>requests <b id="requests-total">0</b></span>
<span>errors <b id="errors-total">0</b></span>
<span>in flight <b id="in-flight">0</b></span>
<span>calls/s <b id="rate">0</b></span>
<span>up <b id="uptime">0</b> s</span></div>
<h2>calls per second</h2><canvas id="spark" width="600" height="60"></canvas>
<h2>methods</h2>
<table id="methods"><thead><tr><th class="l">method</th><th class="l">handler</th><th>calls</th><th>calls/s</th>
<th>errors</th><th>p50 µs</th><th>p90 µs</th><th>p99 µs</th><th>p99.9 µs</th></tr></thead><tbody></tbody></table>
<h2>connections</h2>
<table id="connections"><thead><tr><th>id</th><th class="l">peer</th><th>gen</th><th>age s</th><th>calls</th>
<th>errors</th><th>bytes in</th><th>bytes out</th></tr></thead><tbody></tbody></table>
<h2>loop threads</h2>
<table id="loops"><thead><tr><th>loop</th><th>lag avg µs</th><th>lag max µs</th><th>lag samples</th>
<th>busy-poll ms</th><th>caught</th><th>missed</th><th>workers queued</th><th>workers running</th></tr></thead>
<tbody></tbody></table>
<h2>connections closed</h2>
<table id="closed"><thead><tr><th class="l">reason</th><th>connections</th></tr></thead><tbody></tbody></table>
<h2>registry</h2><p id="registry">none configured</p>
<h2>recent errors</h2>
<table id="errors"><thead><tr><th class="l">time</th><th class="l">peer</th><th class="l">method</th>
<th class="l">type</th><th class="l">message</th></tr></thead><tbody></tbody></table>
<p id="poll">waiting for /status.json</p>
<script>
"use strict";
let last = null, prev = {}, history = [];
function cell(row, text, left) {
  const td = document.createElement("td");
  td.textContent = text;
  if (left) td.className = "l";
  row.appendChild(td);
  return td;
}
function us(s) { return (s * 1e6).toFixed(1); }
function fill(id, rows, make) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  for (const r of rows) { const tr = document.createElement("tr"); make(tr, r); body.appendChild(tr); }
}
function spark() {
  const c = document.getElementById("spark"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const top = Math.max(1, ...history), step = c.width / 99;
  g.beginPath();
  history.forEach((v, i) => {
    const x = c.width - (history.length - 1 - i) * step, y = c.height - 2 - (c.height - 4) * v / top;
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.strokeStyle = "#06c"; g.lineWidth = 2; g.stroke();
  g.fillStyle = "#555"; g.font = "11px sans-serif"; g.fillText(top.toFixed(0) + "/s", 4, 12);
}
function show(s, now) {
  const t = s.totals, dt = last ? (now - last.at) / 1000 : 0;
  const rate = last && dt > 0 ? (t.requests - last.requests) / dt : 0;
  document.getElementById("service").textContent = s.service;
  const st = document.getElementById("state");
  st.textContent = s.draining ? "draining" : s.ready ? "ready" : "not ready";
  st.className = s.ready ? "ok" : "bad";
  document.getElementById("connections-open").textContent = t.connections_open;
  document.getElementById("requests-total").textContent = t.requests;
  document.getElementById("errors-total").textContent = t.errors;
  document.getElementById("in-flight").textContent = t.in_flight;
  document.getElementById("rate").textContent = rate.toFixed(1);
  document.getElementById("uptime").textContent = s.uptime_seconds.toFixed(0);
  if (last) { history.push(rate); if (history.length > 100) history.shift(); spark(); }
  const next = {};
  fill("methods", s.methods, (tr, m) => {
    const key = m.handler + "/" + m.method;
    next[key] = m.calls;
    tr.dataset.method = m.method; tr.dataset.handler = m.handler;
    cell(tr, m.method || "-", true); cell(tr, m.handler, true);
    cell(tr, m.calls).className = "calls";
    cell(tr, dt > 0 && key in prev ? ((m.calls - prev[key]) / dt).toFixed(1) : "-");
    const e = cell(tr, m.errors); e.classList.add("errors"); if (m.errors) e.classList.add("bad");
    cell(tr, us(m.p50)); cell(tr, us(m.p90)); cell(tr, us(m.p99)); cell(tr, us(m.p999));
  });
  prev = next;
  fill("connections", s.connections, (tr, c) => {
    tr.dataset.id = c.id;
    cell(tr, c.id); cell(tr, c.peer, true); cell(tr, c.generation || "?"); cell(tr, c.age_seconds.toFixed(1));
    cell(tr, c.calls).className = "calls"; cell(tr, c.errors); cell(tr, c.wire_bytes_in); cell(tr, c.wire_bytes_out);
  });
  fill("loops", s.loops, (tr, l) => {
    tr.dataset.loop = l.loop;
    cell(tr, l.loop); cell(tr, us(l.lag_avg_seconds)); cell(tr, us(l.lag_max_seconds)); cell(tr, l.lag_samples);
    cell(tr, (l.busy_poll_seconds * 1e3).toFixed(1)); cell(tr, l.busy_poll_caught); cell(tr, l.busy_poll_missed);
    cell(tr, l.worker_queued); cell(tr, l.worker_running);
  });
  fill("closed", Object.entries(s.closed_by_reason), (tr, [reason, n]) => {
    tr.dataset.reason = reason; cell(tr, reason, true); cell(tr, n);
  });
  const reg = s.registry, rp = document.getElementById("registry");
  if (reg.configured) {
    rp.textContent = (reg.registered ? "registered" : "NOT registered") + " with " + reg.registry +
      (reg.last_announce ? ", last announced " + new Date(reg.last_announce * 1000).toISOString() : "") +
      " (" + reg.announcements + " announcements, " + reg.failures + " failed" +
      (reg.last_error ? ": " + reg.last_error : "") + ")";
    rp.className = reg.registered ? "ok" : "bad";
  }
  fill("errors", s.recent_errors.slice().reverse(), (tr, e) => {
    cell(tr, new Date(e.time * 1000).toISOString(), true); cell(tr, e.peer, true);
    cell(tr, e.method || e.handler, true); cell(tr, e.type, true);
    const pre = document.createElement("pre"); pre.textContent = e.message; cell(tr, "", true).appendChild(pre);
  });
  last = { at: now, requests: t.requests };
}
async function poll() {
  try {
    const r = await fetch("status.json", { cache: "no-store" });
    const s = await r.json();
    show(s, performance.now());
    const p = document.getElementById("poll");
    p.textContent = "updated " + new Date().toISOString();
    p.dataset.polls = String(Number(p.dataset.polls || 0) + 1);
  } catch (e) {
    document.getElementById("poll").textContent = "poll failed: " + e;
  }
  setTimeout(poll, 1000);
}
poll();
</script></body></html>
)HTML";
}  // namespace

std::string_view console_page() noexcept { return kPage; }

}  // namespace tether::http
