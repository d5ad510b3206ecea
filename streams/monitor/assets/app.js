// The hotelbus dashboard: renders the monitor's snapshots, received as server-sent events from
// /events, and journeys from /api/journey. Plain DOM, no framework; all data goes through
// textContent, never through HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
const SVGNS = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") e.className = v;
    else if (k === "onclick") e.addEventListener("click", v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

const fmtInt = (n) => Number(n).toLocaleString("en-US");
const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r.toFixed(1));
const fmtSec = (s) => (s === 0 ? "0" : s < 10 ? s.toFixed(3) : s.toFixed(1));
// RFC 3339 times are shown in UTC to the millisecond.
const fmtTime = (t) => (t && !t.startsWith("0001") ? t.replace("T", " ").replace(/(\.\d{3})\d*/, "$1").replace("Z", "") : "—");

let source = null;
let filter = new URLSearchParams();

function connect() {
  if (source) source.close();
  const status = $("#status");
  status.className = "status connecting";
  status.textContent = "connecting…";
  source = new EventSource("events?" + filter.toString());
  source.addEventListener("snapshot", (ev) => {
    const s = JSON.parse(ev.data);
    render(s);
    status.dataset.version = String(s.version);
    status.className = "status " + (s.error ? "error" : "live");
    status.textContent = s.error ? "poll failed: " + s.error : "live · " + fmtTime(s.at) + " UTC";
  });
  source.onerror = () => {
    status.className = "status error";
    status.textContent = "disconnected, retrying…";
  };
}

function render(s) {
  $("#rate-window").textContent = "rates over the last " + s.rateWindowSeconds + " s, updated every " + s.intervalSeconds + " s";
  renderFlow(s);
  renderSystems(s);
  renderFlowTable(s);
  renderGroups(s);
  renderDeadLetters(s);
  renderTail(s);
}

// Node positions: the corners of a rectangle for four systems, a circle otherwise.
function positions(n) {
  if (n === 4) return [[170, 80], [730, 80], [730, 340], [170, 340]];
  const out = [];
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * i) / n - Math.PI / 2;
    out.push([450 + 300 * Math.cos(a), 210 + 150 * Math.sin(a)]);
  }
  return out;
}

function renderFlow(s) {
  const root = $("#flow");
  root.replaceChildren();
  const defs = svg("defs", {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
      svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#64748b" })));
  root.append(defs);
  const pos = {};
  positions(s.systems.length).forEach((p, i) => (pos[s.systems[i].name] = p));
  const W = 190, H = 70;
  for (const f of s.flows) {
    const [x1, y1] = pos[f.from] || [0, 0];
    const [x2, y2] = pos[f.to] || [0, 0];
    const cls = "edge" + (f.rate > 0 ? " active" : "") + (f.lag > 0 ? " lagging" : "");
    const g = svg("g", { class: cls, "data-from": f.from, "data-to": f.to });
    const label = fmtRate(f.rate) + "/s" + (f.lag > 0 ? " · lag " + fmtInt(f.lag) : "");
    if (f.from === f.to) {
      const d = `M${x1 - 30},${y1 - H / 2} C${x1 - 60},${y1 - H / 2 - 60} ${x1 + 60},${y1 - H / 2 - 60} ${x1 + 30},${y1 - H / 2}`;
      g.append(svg("path", { d, "marker-end": "url(#arrow)" }), svg("text", { x: x1, y: y1 - H / 2 - 48 }, label));
    } else {
      // Offset each direction sideways so the two directions of a pair do not overlap, and clip
      // the line at the boxes' borders.
      const dx = x2 - x1, dy = y2 - y1, len = Math.hypot(dx, dy) || 1;
      const nx = -dy / len * 10, ny = dx / len * 10;
      const clip = (x, y, sx, sy) => {
        const t = Math.min(Math.abs((W / 2 + 4) / (sx || 1e-9)), Math.abs((H / 2 + 4) / (sy || 1e-9)));
        return [x + sx * t, y + sy * t];
      };
      const [ax, ay] = clip(x1 + nx, y1 + ny, dx / len, dy / len);
      const [bx, by] = clip(x2 + nx, y2 + ny, -dx / len, -dy / len);
      g.append(svg("path", { d: `M${ax},${ay} L${bx},${by}`, "marker-end": "url(#arrow)" }),
        // The label sits short of the middle, so the labels of the two directions do not meet.
        svg("text", { x: ax + (bx - ax) * 0.35 + nx * 1.6, y: ay + (by - ay) * 0.35 + ny * 1.6 + 4 }, label));
    }
    g.append(svg("title", {}, `${f.from} → ${f.to}: ${f.eventTypes.join(", ")}`));
    root.append(g);
  }
  for (const sys of s.systems) {
    const [x, y] = pos[sys.name];
    root.append(svg("g", { class: "node", "data-system": sys.name },
      svg("rect", { x: x - W / 2, y: y - H / 2, width: W, height: H }),
      svg("text", { class: "name", x, y: y - 12 }, sys.name),
      svg("text", { x, y: y + 6 }, "out " + fmtRate(sys.publishRate) + "/s · in " + fmtRate(sys.consumeRate) + "/s"),
      svg("text", { x, y: y + 23 }, "lag " + fmtInt(sys.lag) + " (" + fmtSec(sys.lagSeconds) + " s) · dlq " + fmtInt(sys.deadLetters))));
  }
}

function renderSystems(s) {
  const box = $("#systems");
  box.replaceChildren(...s.systems.map((sys) => {
    const row = (label, field, value, cls) => [el("dt", {}, label), el("dd", { "data-field": field, class: cls }, value)];
    return el("div", { class: "system", "data-system": sys.name, title: sys.description },
      el("h3", {}, sys.name),
      el("dl", {},
        ...row("published", "published", fmtInt(sys.published)),
        ...row("publish rate", "publishRate", fmtRate(sys.publishRate) + "/s"),
        ...row("consumed", "consumed", fmtInt(sys.consumed)),
        ...row("consume rate", "consumeRate", fmtRate(sys.consumeRate) + "/s"),
        ...row("group", "groupState", stateLabel(sys.groupState) + " · " + sys.members + " members", "state-" + sys.groupState),
        ...row("lag", "lag", fmtInt(sys.lag), sys.lag > 0 ? "lagging" : ""),
        ...row("lag seconds", "lagSeconds", fmtSec(sys.lagSeconds), sys.lagSeconds > 0 ? "lagging" : ""),
        ...row("dead letters", "deadLetters", fmtInt(sys.deadLetters), sys.deadLetters > 0 ? "lagging" : "")));
  }));
}

function renderFlowTable(s) {
  $("#flows tbody").replaceChildren(...s.flows.map((f) =>
    el("tr", { "data-from": f.from, "data-to": f.to },
      el("td", {}, f.from), el("td", {}, f.to), el("td", { class: "muted" }, f.eventTypes.join(", ")),
      el("td", { class: "num" }, fmtInt(f.consumed)), el("td", { class: "num" }, fmtRate(f.rate)),
      el("td", { class: "num" + (f.lag > 0 ? " lagging" : "") }, fmtInt(f.lag)), el("td", { class: "num" }, fmtSec(f.lagSeconds)))));
}

function renderGroups(s) {
  const rows = [];
  for (const g of s.groups) {
    const members = g.members.map((m) => m.clientId + "@" + m.host + " (" + m.partitions + ")").join(", ");
    rows.push(el("tr", { class: "group-head", "data-group": g.group },
      el("td", {}, g.group), el("td", { class: "state-" + g.state }, stateLabel(g.state)), el("td", {}, g.members.length),
      el("td", { colspan: "4", class: "muted" }, g.error || members), el("td", { class: "num" + (g.lag > 0 ? " lagging" : ""), "data-field": "lag" }, fmtInt(g.lag)),
      el("td", { class: "num", "data-field": "lagSeconds" }, fmtSec(g.lagSeconds)), el("td", {}, "")));
    for (const p of g.partitions) {
      rows.push(el("tr", { "data-group": g.group, "data-topic": p.topic, "data-partition": p.partition },
        el("td", {}, ""), el("td", {}, ""), el("td", {}, ""), el("td", {}, p.topic), el("td", { class: "num" }, p.partition),
        el("td", { class: "num", "data-field": "committed" }, p.committed < 0 ? "—" : fmtInt(p.committed)),
        el("td", { class: "num", "data-field": "end" }, fmtInt(p.end)),
        el("td", { class: "num" + (p.lag > 0 ? " lagging" : ""), "data-field": "lag" }, p.error ? p.error : fmtInt(p.lag)),
        el("td", { class: "num", "data-field": "lagSeconds" }, fmtSec(p.lagSeconds)), el("td", { class: "muted" }, p.member || "")));
    }
  }
  $("#groups tbody").replaceChildren(...rows);
}

function renderDeadLetters(s) {
  $("#deadletters").replaceChildren(...s.deadLetters.map((d) =>
    el("div", { class: "card" + (d.total > 0 ? " has" : ""), "data-system": d.system },
      el("div", {}, el("strong", {}, d.system), " ", el("span", { class: "muted" }, d.topic)),
      el("div", { class: "total", "data-field": "total" }, fmtInt(d.total)),
      el("ul", {}, ...d.byClass.map((c) => el("li", { "data-class": c.class }, c.class + ": " + fmtInt(c.count)))),
      el("div", { class: "muted" }, "last " + fmtTime(d.last)))));
}

function renderTail(s) {
  $("#tail-source").dataset.source = s.tailSource;
  $("#tail-source").textContent = s.tailSource === "audit" ? "from the audit log" :
    s.tailSource === "events" ? "from the event topics' headers (the audit log is empty)" : "nothing yet";
  $("#tail tbody").replaceChildren(...s.tail.map((e) =>
    el("tr", { "data-event-id": e.eventId },
      el("td", {}, fmtTime(e.time)), el("td", { class: "outcome-" + e.outcome, title: e.error || "" }, e.outcome + (e.error ? " (" + e.error + ")" : "")),
      el("td", {}, e.system + (e.group ? " · " + e.group : "")), el("td", {}, e.eventType), el("td", {}, e.tenantId),
      el("td", {}, el("a", { class: "corr", onclick: () => showJourney(e.correlationId) }, e.correlationId)),
      el("td", { class: "muted" }, e.eventId), el("td", { class: "num" }, e.attempt || ""),
      el("td", { class: "num" }, e.latencyMs ? e.latencyMs.toFixed(1) : ""),
      el("td", { class: "muted" }, e.topic ? e.topic + "/" + e.partition + "@" + e.offset : ""))));
}

// byTime orders deliveries by their first record; pending ones, which have none, come last.
function byTime(deliveries) {
  const key = (d) => (d.first ? Date.parse(d.first) : Infinity);
  return [...deliveries].sort((a, b) => key(a) - key(b) || 0);
}

async function showJourney(id) {
  $("#j-corr").value = id;
  const out = $("#journey");
  out.replaceChildren(el("p", { class: "muted" }, "reading the audit log…"));
  let j;
  try {
    const resp = await fetch("api/journey?correlationId=" + encodeURIComponent(id));
    j = await resp.json();
    if (!resp.ok) throw new Error(j.detail || j.error || resp.statusText);
  } catch (err) {
    out.replaceChildren(el("p", { class: "outcome-failed" }, String(err.message || err)));
    return;
  }
  if (j.events.length === 0) {
    out.replaceChildren(el("p", { class: "muted" }, "no audit records for " + id));
    return;
  }
  out.replaceChildren(
    el("p", {}, j.events.length + " events across " + j.systems.join(", ")),
    ...j.events.map((e) => {
      const p = e.published;
      return el("div", { class: "event", "data-event-id": e.eventId },
        el("h3", {}, e.eventType + " ", el("span", { class: "muted" }, e.eventId + " · tenant " + e.tenantId)),
        el("table", { class: "grid" },
          el("thead", {}, el("tr", {}, el("th", {}, "when"), el("th", {}, "system"), el("th", {}, "outcome"), el("th", { class: "num" }, "attempts"),
            el("th", { class: "num" }, "latency ms"), el("th", {}, "detail"))),
          el("tbody", {},
            p ? el("tr", { "data-system": p.system, "data-outcome": p.outcome }, el("td", {}, fmtTime(p.at)), el("td", {}, p.system),
              el("td", { class: "outcome-" + p.outcome }, p.outcome), el("td", {}, ""), el("td", {}, ""),
              el("td", { class: "muted" }, p.partition >= 0 ? p.topic + "/" + p.partition + "@" + p.offset : p.error || p.topic))
              : el("tr", {}, el("td", { colspan: "6", class: "muted" }, "no publish record")),
            ...byTime(e.deliveries).map((d) => el("tr", { "data-system": d.system, "data-outcome": d.outcome },
              el("td", {}, fmtTime(d.last)), el("td", {}, d.system), el("td", { class: "outcome-" + d.outcome }, d.outcome),
              el("td", { class: "num" }, d.attempts || ""), el("td", { class: "num" }, d.latencyMs ? d.latencyMs.toFixed(1) : ""),
              el("td", { class: "muted" }, (d.runs > 1 ? d.runs + " runs" : "") + (d.runs > 1 && d.error ? " · " : "") + (d.error || "")))))));
    }));
}

$("#tail-filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  filter = new URLSearchParams();
  for (const [k, v] of new FormData(ev.target)) if (v.trim()) filter.set(k, v.trim());
  connect();
});
$("#tail-filter").addEventListener("reset", () => {
  filter = new URLSearchParams();
  connect();
});
$("#journey-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const id = $("#j-corr").value.trim();
  if (id) showJourney(id);
});

connect();

// stateLabel names a group state for people: NotStarted is a group that never committed while
// records wait for it (its lag counts them all).
function stateLabel(state) {
  if (!state) return "—";
  return state === "NotStarted" ? "not started" : state;
}
