//! The dashboard page: one self-contained HTML document (no external
//! script or style) that polls `/api/state` twice a second and draws the
//! probes with their health, their applications, the latest alerts and
//! the controller's counters.
//!
//! Elements carry stable hooks for tests: `tr.probe[data-probe][data-health]`,
//! `.app[data-app][data-state]` inside a probe's row, `li.alert[data-probe]
//! [data-app]` in `#alerts`, and `#updated` (the last refresh's time).

/// The page.
pub const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>streamon controller</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .2em; }
h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
table { border-collapse: collapse; }
th, td { text-align: left; padding: .25em .7em; border-bottom: 1px solid #ddd; vertical-align: top; }
.health { font-weight: 600; }
tr[data-health="up"] .health { color: #1a7f37; }
tr[data-health="down"] .health { color: #cf222e; }
tr[data-health="unknown"] .health { color: #888; }
.app { display: inline-block; margin: 0 .4em .2em 0; padding: 0 .4em; border-radius: 3px; background: #eef; }
.app[data-state="failed"] { background: #fdd; }
.app[data-state="pending"] { background: #ffe8b0; }
#alerts { list-style: none; padding: 0; max-height: 24em; overflow-y: auto; }
.alert { padding: .2em 0; border-bottom: 1px solid #eee; font-family: ui-monospace, monospace; font-size: 13px; }
.muted { color: #777; }
</style>
</head>
<body>
<h1>streamon controller <span id="controller" class="muted"></span></h1>
<div class="muted">updated <span id="updated">never</span> <span id="error"></span></div>
<h2>Probes</h2>
<table id="probes">
<thead><tr><th>probe</th><th>health</th><th>last seen</th><th>applications</th><th>packets</th><th>events received</th><th>down / rejoined</th></tr></thead>
<tbody></tbody>
</table>
<h2>Live alerts</h2>
<ul id="alerts"></ul>
<h2>Counters</h2>
<pre id="counters" class="muted"></pre>
<script>
"use strict";
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function ago(ms) {
  if (!ms) return "never";
  const s = Math.max(0, (Date.now() - ms) / 1000);
  return s < 1 ? "now" : s.toFixed(0) + " s ago";
}
function draw(state) {
  document.getElementById("controller").textContent = state.controller;
  const body = document.querySelector("#probes tbody");
  body.replaceChildren();
  for (const p of Object.values(state.probes)) {
    const tr = el("tr", { class: "probe", "data-probe": p.name, "data-health": p.health });
    tr.append(el("td", { class: "name" }, p.name));
    tr.append(el("td", { class: "health" }, p.health));
    tr.append(el("td", { class: "seen" }, ago(p.last_seen_ms)));
    const apps = el("td", { class: "apps" });
    for (const a of p.apps) {
      const run = a.running === null ? "absent" : (a.running ? "running" : "stopped");
      const span = el("span", { class: "app", "data-app": a.name, "data-state": a.state, "data-running": run },
        a.name + " (" + run + ", " + a.state + ")");
      if (a.error) span.title = a.error;
      apps.append(span);
    }
    tr.append(apps);
    tr.append(el("td", { class: "packets" }, String(p.packets)));
    tr.append(el("td", { class: "events" }, String(p.events_received)));
    tr.append(el("td", {}, p.times_down + " / " + p.rejoins));
    body.append(tr);
  }
  const ul = document.getElementById("alerts");
  ul.replaceChildren();
  for (const a of state.alerts.slice().reverse()) {
    ul.append(el("li", { class: "alert", "data-probe": a.probe, "data-app": a.app, "data-key": a.key },
      new Date(a.received_ms).toISOString() + "  " + a.probe + "  " + a.app + "  [" + a.code + " " +
      a.level + "]  " + a.key + ": " + a.text));
  }
  document.getElementById("counters").textContent = JSON.stringify(state.counters, null, 1);
  document.getElementById("updated").textContent = new Date().toISOString();
  document.getElementById("error").textContent = "";
}
async function refresh() {
  try {
    const r = await fetch("/api/state", { cache: "no-store" });
    draw(await r.json());
  } catch (e) {
    document.getElementById("error").textContent = "(controller unreachable: " + e + ")";
  }
  setTimeout(refresh, 500);
}
refresh();
</script>
</body>
</html>
"##;
