/* KayGraph dashboard: a small single-page app with no dependencies.
 *
 * Safety rules this file keeps: every value from a run (state, ids, errors) reaches the page as
 * text (textContent / SVG text nodes, never innerHTML); links are built only from encoded ids;
 * the token lives in sessionStorage and travels as an Authorization header, never in a cookie.
 */
"use strict";

const TOKEN_KEY = "kaygraph.token";
const BASE = new URL(".", location.href).pathname; // works when the app is mounted under a prefix
const state = { session: null, route: null, cleanup: [] };

// -- tiny DOM helpers ------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "href") el.setAttribute("href", safeHref(value));
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function safeHref(value) {
  const text = String(value);
  return text.startsWith("#/") || text.startsWith(BASE) ? text : "#/";
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const $ = (selector, root = document) => root.querySelector(selector);
const main = () => $("#main");

function toast(message, bad = false) {
  const el = h("div", { class: "toast" + (bad ? " bad" : ""), role: "status" }, message);
  document.body.append(el);
  setTimeout(() => el.remove(), bad ? 7000 : 3500);
}

// -- formatting -----------------------------------------------------------------------------

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 0.001) return "<1 ms";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return Math.round(seconds % 60) ? `${minutes} min ${Math.round(seconds % 60)} s` : `${minutes} min`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function fmtAgo(epoch) {
  if (!epoch) return "—";
  const delta = Date.now() / 1000 - epoch;
  if (delta < 5) return "just now";
  if (delta < 60) return `${Math.round(delta)} s ago`;
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.round(delta / 3600)} h ago`;
  return new Date(epoch * 1000).toLocaleDateString();
}

const fmtTime = (epoch) => (epoch ? new Date(epoch * 1000).toLocaleString() : "—");
const pill = (status) => h("span", { class: `pill ${status}`, "data-status": status }, status);

/* JSON, indented, but arrays of plain values stay on one (wrapping) line: embeddings and id
 * lists read as data, not as a column of numbers. */
function jsonText(value, indent = "") {
  const scalar = (v) => v === null || typeof v !== "object";
  if (scalar(value)) return JSON.stringify(value);
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    if (value.every(scalar)) return "[" + value.map((v) => JSON.stringify(v)).join(", ") + "]";
    return "[\n" + value.map((v) => inner + jsonText(v, inner)).join(",\n") + "\n" + indent + "]";
  }
  const keys = Object.keys(value);
  if (!keys.length) return "{}";
  return "{\n" + keys.map((k) => `${inner}${JSON.stringify(k)}: ${jsonText(value[k], inner)}`).join(",\n") + "\n" + indent + "}";
}

// -- API ------------------------------------------------------------------------------------

class ApiFailure extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.culprit = error.culprit;
  }
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: { ...authHeaders() } };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(BASE + path.replace(/^\//, ""), init);
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    const failure = new ApiFailure(response.status, body);
    if (response.status === 401 && !options.noLogin) showLogin(failure.message);
    throw failure;
  }
  return body;
}

/* Server-sent events over fetch (so the token can go in a header), resumed with Last-Event-ID. */
function subscribe(path, onEvent, onState) {
  let stopped = false;
  let lastId = null;
  let controller = null;
  async function connect() {
    while (!stopped) {
      controller = new AbortController();
      try {
        const headers = { ...authHeaders(), Accept: "text/event-stream" };
        if (lastId !== null) headers["Last-Event-ID"] = lastId;
        const response = await fetch(BASE + path, { headers, signal: controller.signal });
        if (response.status === 401) { showLogin("Your token was refused."); return; }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        onState(true);
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            const event = { id: null, type: "message", data: "" };
            for (const line of block.split("\n")) {
              if (line.startsWith("id: ")) event.id = line.slice(4);
              else if (line.startsWith("event: ")) event.type = line.slice(7);
              else if (line.startsWith("data: ")) event.data += line.slice(6);
            }
            if (event.id !== null) lastId = event.id;
            if (event.data) {
              try { onEvent(JSON.parse(event.data)); } catch (err) { console.error(err); }
            }
          }
        }
      } catch (err) {
        if (stopped) return;
      }
      if (stopped) return;
      onState(false);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
  connect();
  const stop = () => { stopped = true; if (controller) controller.abort(); };
  state.cleanup.push(stop);
  return stop;
}

function setLive(on) {
  const el = $("#live");
  el.classList.remove("hidden");
  el.classList.toggle("on", on);
  el.classList.toggle("off", !on);
  el.textContent = on ? "live" : "reconnecting…";
}

// -- login ----------------------------------------------------------------------------------

function showLogin(message) {
  stopPage();
  const input = h("input", { type: "password", id: "token", placeholder: "token", autocomplete: "current-password", required: true });
  const error = h("div", { class: "form-error", id: "login-error" }, message && sessionStorage.getItem(TOKEN_KEY) ? message : "");
  const form = h("form", {
    class: "panel login",
    onsubmit: async (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      try {
        await api("api/session", { noLogin: true });
        await boot();
      } catch (err) {
        sessionStorage.removeItem(TOKEN_KEY);
        error.textContent = err.status === 401 ? "Token refused: it matches neither the admin nor the read-only token." : err.message;
        input.select();
      }
    },
  },
    h("div", { class: "panel-head" }, h("h2", {}, "Sign in to the KayGraph dashboard")),
    h("div", { class: "panel-body" },
      h("p", { class: "muted" }, "This dashboard is protected. Paste the token it was started with (ui.token or ui.read_token, KAYGRAPH_UI_TOKEN). It is kept only in this tab."),
      h("label", { class: "field", for: "token" }, "Token", input),
      error,
      h("div", {}, h("button", { class: "btn primary", type: "submit" }, "Sign in"))));
  main().replaceChildren(form);
  input.focus();
}

// -- routing --------------------------------------------------------------------------------

function stopPage() {
  for (const stop of state.cleanup.splice(0)) stop();
  $("#live").classList.add("hidden"); // shown again by the next page's stream
}

async function route() {
  stopPage();
  const hash = location.hash || "#/runs";
  const parts = hash.slice(2).split("?")[0].split("/").map(decodeURIComponent);
  for (const link of document.querySelectorAll("[data-nav]")) link.classList.toggle("active", link.dataset.nav === parts[0]);
  try {
    if (parts[0] === "runs" && parts[1]) await runPage(parts[1]);
    else if (parts[0] === "graphs") await graphsPage(parts[1]);
    else if (parts[0] === "schedules") await schedulesPage();
    else await runsPage();
  } catch (err) {
    if (err.status === 401) return;
    main().replaceChildren(h("div", { class: "panel pad" }, h("h2", {}, "Something went wrong"), h("p", { class: "form-error" }, err.message)));
  }
}

const canWrite = () => state.session && state.session.role === "admin";

// -- runs list ------------------------------------------------------------------------------

const STATUSES = ["running", "succeeded", "failed", "cancelled", "pending"];

async function runsPage() {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const filters = { graph: params.get("graph") || "", status: params.get("status") || "" };
  const setFilter = (key, value) => {
    filters[key] = value;
    const query = new URLSearchParams(Object.entries(filters).filter(([, v]) => v)).toString();
    location.hash = "#/runs" + (query ? "?" + query : "");
  };

  const countsBox = h("div", { class: "counts", id: "counts" });
  const tbody = h("tbody", { id: "runs-body" });
  const moreBox = h("div", { class: "more hidden" });
  const graphSelect = h("select", { id: "filter-graph", onchange: (e) => setFilter("graph", e.target.value) },
    h("option", { value: "" }, "All graphs"), state.session.graphs.map((g) => h("option", { value: g, selected: g === filters.graph }, g)));
  const head = h("div", { class: "page-head" }, h("h1", {}, "Runs"), h("span", { class: "grow" }), graphSelect,
    canWrite() && state.session.graphs.length ? h("button", { class: "btn primary", id: "start-run", onclick: () => startDialog(filters.graph) }, "▶ Start run") : null);
  const table = h("div", { class: "panel" }, h("div", { class: "table-wrap" }, h("table", { id: "runs" },
    h("thead", {}, h("tr", {}, h("th", {}, "Status"), h("th", {}, "Run"), h("th", {}, "Graph"), h("th", {}, "Started"),
      h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Steps"), h("th", {}, "Error"))), tbody)), moreBox);
  main().replaceChildren(head, countsBox, table);

  const rows = new Map();
  const renderRow = (run) => {
    const tr = h("tr", { class: "clickable", "data-run": run.run_id, onclick: () => { location.hash = "#/runs/" + encodeURIComponent(run.run_id); } },
      h("td", {}, pill(run.status)),
      h("td", { class: "mono" }, h("a", { href: "#/runs/" + encodeURIComponent(run.run_id) }, run.run_id)),
      h("td", {}, run.graph || "—"),
      h("td", { title: fmtTime(run.created_at) }, fmtAgo(run.created_at)),
      h("td", { class: "num" }, run.status === "running" ? fmtDuration(Date.now() / 1000 - run.created_at) : fmtDuration(run.duration)),
      h("td", { class: "num" }, String(run.steps)),
      h("td", {}, run.error ? h("div", { class: "err-snippet", title: run.error }, run.error) : ""));
    return tr;
  };
  const put = (run, flash) => {
    const row = renderRow(run);
    const old = rows.get(run.run_id);
    if (old) old.replaceWith(row); else if (flash) tbody.prepend(row); else tbody.append(row);
    if (flash) row.classList.add("flash");
    rows.set(run.run_id, row);
  };

  const loadCounts = async () => {
    const { counts } = await api("api/counts" + (filters.graph ? "?graph=" + encodeURIComponent(filters.graph) : ""));
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const chip = (key, label, n) => h("button", { class: `count ${key}` + (filters.status === key ? " active" : ""), type: "button",
      "data-count": key || "all", onclick: () => setFilter("status", key) }, h("span", { class: "n" }, String(n)), h("span", { class: "l" }, label));
    countsBox.replaceChildren(chip("", "all runs", total), ...STATUSES.map((s) => chip(s, s, counts[s] || 0)));
  };

  let cursor = null;
  const loadPage = async () => {
    const query = new URLSearchParams({ limit: "50" });
    if (filters.graph) query.set("graph", filters.graph);
    if (filters.status) query.set("status", filters.status);
    if (cursor) query.set("cursor", cursor);
    const page = await api("api/runs?" + query);
    page.runs.forEach((run) => put(run, false));
    cursor = page.next_cursor;
    moreBox.replaceChildren(h("button", { class: "btn", onclick: loadPage }, "Load more"));
    moreBox.classList.toggle("hidden", !cursor);
    if (!rows.size) tbody.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No runs yet. Durable runs appear here as soon as they start.")));
  };
  await Promise.all([loadCounts(), loadPage()]);

  let countsTimer = null;
  subscribe("api/events", (run) => {
    if (run.type !== "run") return;
    if ((filters.graph && run.graph !== filters.graph) || (filters.status && run.status !== filters.status)) {
      if (rows.has(run.run_id)) { rows.get(run.run_id).remove(); rows.delete(run.run_id); }
    } else {
      if (!rows.size) tbody.replaceChildren();
      put(run, !rows.has(run.run_id));
    }
    clearTimeout(countsTimer);
    countsTimer = setTimeout(loadCounts, 300);
  }, setLive);
}

async function startDialog(graph) {
  const graphs = state.session.graphs;
  const select = h("select", { id: "start-graph" }, graphs.map((g) => h("option", { value: g, selected: g === graph }, g)));
  const shared = h("textarea", { id: "start-shared", spellcheck: "false" }, "{}");
  const error = h("div", { class: "form-error" });
  const close = () => overlay.remove();
  const submit = async () => {
    let body;
    try { body = JSON.parse(shared.value || "{}"); } catch (err) { error.textContent = "Shared store: " + err.message; return; }
    try {
      const answer = await api("api/runs", { method: "POST", body: { graph: select.value, shared: body } });
      close();
      location.hash = "#/runs/" + encodeURIComponent(answer.run_id);
    } catch (err) { error.textContent = err.message; }
  };
  const overlay = h("div", { class: "overlay", onclick: (e) => { if (e.target === overlay) close(); } },
    h("div", { class: "dialog", role: "dialog", "aria-label": "Start a run" },
      h("div", { class: "panel-head" }, h("h2", {}, "Start a run")),
      h("div", { class: "panel-body" }, h("label", { class: "field" }, "Graph", select),
        h("label", { class: "field" }, "Shared store (JSON object)", shared), error),
      h("div", { class: "foot" }, h("button", { class: "btn", onclick: close }, "Cancel"),
        h("button", { class: "btn primary", id: "start-submit", onclick: submit }, "Start"))));
  document.body.append(overlay);
  shared.focus();
}

// -- graph drawing --------------------------------------------------------------------------

/* Layered layout: depth = BFS distance from the start node; edges to a shallower (or the same)
 * layer are drawn as arcs on the right. Returns an <svg> with data-node attributes per node. */
function drawGraph(graph, highlight = {}) {
  const nodes = graph.nodes || [];
  const edges = graph.edges || [];
  if (!nodes.length) return h("p", { class: "muted pad" }, "This graph has no nodes.");
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const start = nodes.find((n) => n.start) || nodes[0];
  const depth = new Map([[start.id, 0]]);
  const queue = [start.id];
  while (queue.length) {
    const id = queue.shift();
    for (const e of edges) if (e.source === id && !depth.has(e.target)) { depth.set(e.target, depth.get(id) + 1); queue.push(e.target); }
  }
  let extra = Math.max(...depth.values()) + 1;
  for (const n of nodes) if (!depth.has(n.id)) depth.set(n.id, extra++);
  const layers = [];
  for (const n of nodes) (layers[depth.get(n.id)] = layers[depth.get(n.id)] || []).push(n);

  const W = (n) => Math.max(96, Math.min(240, 14 + 7.4 * Math.max(n.id.length, (n.type || "").length * 0.85)));
  const H = 44, GAP_X = 34, GAP_Y = 62, PAD = 28;
  const pos = new Map();
  const widths = layers.map((layer) => layer.reduce((sum, n) => sum + W(n), 0) + GAP_X * (layer.length - 1));
  const maxWidth = Math.max(...widths);
  layers.forEach((layer, i) => {
    let x = PAD + (maxWidth - widths[i]) / 2;
    for (const n of layer) { pos.set(n.id, { x, y: PAD + i * (H + GAP_Y), w: W(n), h: H }); x += W(n) + GAP_X; }
  });
  const backCount = edges.filter((e) => (depth.get(e.target) <= depth.get(e.source))).length;
  const width = maxWidth + PAD * 2 + 40 + backCount * 14;
  const height = PAD * 2 + layers.length * H + (layers.length - 1) * GAP_Y;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `graph ${graph.name || ""}` });
  root.append(svg("defs", {},
    svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 9, markerHeight: 9, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, svg("path", { d: "M0 0L10 5L0 10z", class: "arrow" })),
    svg("marker", { id: "arrow-taken", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse" }, svg("path", { d: "M0 0L10 5L0 10z", class: "arrow taken" }))));

  const taken = highlight.taken || new Set();
  const edgeLayer = svg("g", {});
  const labelLayer = svg("g", {});
  let back = 0;
  const outgoing = new Map();
  for (const e of edges) (outgoing.get(e.source) || outgoing.set(e.source, []).get(e.source)).push(e);
  for (const e of edges) {
    const a = pos.get(e.source), b = pos.get(e.target);
    if (!a || !b) continue;
    const isTaken = taken.has(`${e.source}\u0000${e.action}\u0000${e.target}`);
    let d, lx, ly;
    if (e.source === e.target) {
      const x = a.x + a.w, y = a.y + a.h / 2;
      d = `M${x} ${y - 9} C${x + 44} ${y - 30}, ${x + 44} ${y + 30}, ${x} ${y + 9}`;
      lx = x + 36; ly = y;
    } else if (depth.get(e.target) > depth.get(e.source)) {
      const siblings = outgoing.get(e.source).filter((o) => depth.get(o.target) > depth.get(o.source));
      const k = siblings.indexOf(e), spread = (k - (siblings.length - 1) / 2) * 16;
      const x1 = a.x + a.w / 2 + spread, y1 = a.y + a.h, x2 = b.x + b.w / 2, y2 = b.y;
      const my = (y1 + y2) / 2;
      d = `M${x1} ${y1} C${x1} ${my}, ${x2} ${my}, ${x2} ${y2 - 1}`;
      lx = (x1 + x2) / 2; ly = my;
    } else {
      back += 1;
      const xr = maxWidth + PAD + 20 + back * 14;
      const y1 = a.y + a.h / 2, y2 = b.y + b.h / 2;
      d = `M${a.x + a.w} ${y1} C${xr} ${y1}, ${xr} ${y2}, ${b.x + b.w} ${y2}`;
      lx = xr - 10; ly = (y1 + y2) / 2;
    }
    edgeLayer.append(svg("g", { class: "edge" + (isTaken ? " taken" : ""), "data-edge": `${e.source}>${e.target}` },
      svg("path", { d, "marker-end": isTaken ? "url(#arrow-taken)" : "url(#arrow)" })));
    if (e.action && e.action !== "default") {
      const text = svg("text", { x: lx, y: ly + 3.5, "text-anchor": "middle" }, e.action);
      const tw = e.action.length * 6.2 + 8;
      labelLayer.append(svg("g", { class: "edge" + (isTaken ? " taken" : "") }, svg("rect", { x: lx - tw / 2, y: ly - 8, width: tw, height: 15, rx: 4 }), text));
    }
  }
  root.append(edgeLayer, labelLayer);
  const visited = highlight.visited || new Set();
  for (const n of nodes) {
    const p = pos.get(n.id);
    const classes = ["node"];
    if (n.start) classes.push("start");
    if (n.graph) classes.push("subgraph");
    if (visited.has(n.id)) classes.push("visited");
    if (highlight.failed === n.id) classes.push("failed");
    if (highlight.current === n.id) classes.push("current");
    if (highlight.selected === n.id) classes.push("selected");
    const label = n.id.length > 30 ? n.id.slice(0, 29) + "…" : n.id;
    const showKind = n.graph || n.type !== n.id.replace(/_\d+$/, "");
    const group = svg("g", { class: classes.join(" "), "data-node": n.id, transform: `translate(${p.x},${p.y})` },
      svg("title", {}, `${n.id} (${n.type})`),
      svg("rect", { width: p.w, height: p.h, rx: 9 }),
      showKind ? svg("text", { x: p.w / 2, y: 19, "text-anchor": "middle" }, label) : svg("text", { x: p.w / 2, y: 26.5, "text-anchor": "middle" }, label),
      showKind ? svg("text", { x: p.w / 2, y: 33, "text-anchor": "middle", class: "kind" }, n.graph ? `graph · ${n.type}` : n.type) : null);
    if (highlight.onNode) group.addEventListener("click", () => highlight.onNode(n.id));
    root.append(group);
  }
  return root;
}

// -- run page -------------------------------------------------------------------------------

async function runPage(runId) {
  const enc = encodeURIComponent(runId);
  let run = await api(`api/runs/${enc}`);
  let graph = null;
  if (run.served) {
    try { graph = await api(`api/graphs/${encodeURIComponent(run.graph)}`); } catch (err) { graph = null; }
  }
  const steps = [];
  const seen = new Set();
  const retries = new Map(); // step number -> retries seen before it
  let pendingRetries = 0;
  let startedNode = null;
  let selected = null;
  let view = "state";
  let stepsCursor = null;

  const header = h("div", {});
  const graphBox = h("div", { class: "graph-box", id: "graph" });
  const timeline = h("div", { class: "timeline", id: "timeline" });
  const stepsMore = h("div", { class: "more hidden" });
  const stateTitle = h("h2", { class: "grow", id: "state-title" }, "State");
  const tabState = h("button", { class: "tab active", id: "tab-state", onclick: () => { view = "state"; showSelected(); } }, "State");
  const tabDiff = h("button", { class: "tab", id: "tab-diff", onclick: () => { view = "diff"; showSelected(); } }, "Diff");
  const stateBody = h("div", { id: "state" }, h("p", { class: "muted pad" }, "Pick a step in the timeline."));
  const graphAt = h("span", { class: "graph-at hidden", id: "graph-at" });

  main().replaceChildren(header, h("div", { class: "run-grid" },
    h("div", { class: "stack" },
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", { class: "grow" }, "Graph"), graphAt, h("span", { class: "muted mono" }, run.graph || "")),
        graphBox, h("div", { class: "legend" }, h("span", {}, h("i", { class: "v" }), "visited"), h("span", {}, h("i", { class: "c" }), "current"),
          h("span", {}, h("i", { class: "s" }), "selected step"))),
      h("section", { class: "panel" }, h("div", { class: "panel-head" }, h("h2", { class: "grow" }, "Timeline"), h("span", { class: "muted", id: "step-count" }, "")), timeline, stepsMore)),
    h("section", { class: "panel" }, h("div", { class: "panel-head" }, stateTitle, h("div", { class: "tabs" }, tabState, tabDiff)), stateBody)));

  /* The step the graph is drawn up to: the selected one, or null (the whole run, live) when nothing
   * or the latest step is selected. */
  const pinnedStep = () => (selected === null || selected === steps[steps.length - 1]?.step ? null : selected);
  function highlight() {
    const upTo = pinnedStep();
    const shown = upTo === null ? steps : steps.filter((s) => s.step <= upTo);
    const visited = new Set(shown.map((s) => s.path[0]).filter(Boolean));
    // The top-level nodes in the order they ran: a subgraph's inner steps enter it before its own step ends it.
    const hops = [];
    let inside = false;
    for (const s of shown) {
      const node = s.path[0];
      if (!node) continue;
      if (!inside || hops[hops.length - 1].node !== node) hops.push({ node, action: null });
      inside = s.path.length > 1;
      if (!inside) hops[hops.length - 1].action = s.action;
    }
    const taken = new Set();
    for (let i = 0; i + 1 < hops.length; i++) taken.add(`${hops[i].node}\u0000${hops[i].action || "default"}\u0000${hops[i + 1].node}`);
    const top = shown.filter((s) => s.path.length === 1);
    if (upTo !== null) return { visited, taken, selected: (shown[shown.length - 1] || { path: [] }).path[0] };
    let current = null;
    if (run.status === "running") {
      if (startedNode) current = startedNode;
      else if (graph && top.length) {
        const last = top[top.length - 1];
        const next = graph.edges.find((e) => e.source === last.path[0] && e.action === (last.action || "default"));
        current = next ? next.target : null;
      } else if (graph) current = (graph.nodes.find((n) => n.start) || {}).id;
    }
    const failed = run.status === "failed" && run.failed_node ? run.failed_node : null;
    return { visited, taken, current, failed };
  }
  function drawGraphBox() {
    const upTo = pinnedStep();
    graphAt.classList.toggle("hidden", upTo === null);
    if (upTo !== null) graphAt.replaceChildren(`path up to step ${upTo}`,
      h("button", { class: "btn small", id: "graph-latest", onclick: () => selectStep(steps[steps.length - 1].step) }, "Show whole run"));
    if (!graph) {
      graphBox.replaceChildren(h("p", { class: "muted pad" }, `Graph ${run.graph || ""} is not served by this dashboard; start it with --graphs module:attr to see it drawn.`));
      return;
    }
    graphBox.replaceChildren(drawGraph(graph, highlight()));
  }

  /* The header is rebuilt only when what it shows changes (status, steps, error...), and the
   * running duration is updated in place: buttons stay put while events stream in. */
  let headerKey = null;
  let durationEl = null;
  let stepsEl = null;
  const runDuration = () => (run.status === "running" ? fmtDuration(Date.now() / 1000 - run.created_at) : fmtDuration(run.duration));
  function renderHeader() {
    const key = JSON.stringify([run.status, run.error, run.traceback, run.served, run.graph_ref, steps.length > 0, run.duration]);
    if (key === headerKey) { // only numbers moved: update them in place
      if (durationEl) durationEl.textContent = runDuration();
      if (stepsEl) stepsEl.textContent = String(run.steps);
      return;
    }
    headerKey = key;
    const actions = h("div", { class: "actions" });
    if (canWrite()) {
      if (run.status === "running") actions.append(h("button", { class: "btn danger", id: "cancel", onclick: cancelRun }, "■ Cancel"));
      if (["failed", "cancelled", "pending"].includes(run.status) && run.served) actions.append(h("button", { class: "btn", id: "resume", onclick: resumeRun }, "↻ Resume"));
      if (run.served && steps.length) actions.append(h("button", { class: "btn", id: "fork", onclick: forkDialog }, "Fork…"));
    }
    const meta = (k, v) => h("div", { class: "meta" }, h("span", { class: "k" }, k), h("span", { class: "v" }, v));
    durationEl = h("span", { class: "v", id: "run-duration" }, runDuration());
    stepsEl = h("span", { class: "v", id: "run-steps" }, String(run.steps));
    header.replaceChildren(h("div", { class: "panel" },
      h("div", { class: "panel-head" }, h("a", { href: "#/runs" }, "Runs"), h("span", { class: "muted" }, "/"),
        h("h1", { class: "mono", id: "run-id" }, run.run_id), pill(run.status), h("span", { class: "grow" }), actions),
      h("div", { class: "run-meta" },
        meta("Graph", run.graph || "—"), meta("Reference", run.graph_ref || "—"), meta("Started", fmtTime(run.created_at)),
        h("div", { class: "meta" }, h("span", { class: "k" }, "Duration"), durationEl), h("div", { class: "meta" }, h("span", { class: "k" }, "Steps"), stepsEl),
        run.parent_run_id ? meta("Forked from", h("a", { href: "#/runs/" + encodeURIComponent(run.parent_run_id) }, `${run.parent_run_id} (record ${run.parent_seq})`)) : null),
      run.error ? h("div", { class: "panel-body" }, h("div", { class: "error-box", id: "run-error" }, h("strong", {}, "Error"),
        h("pre", {}, run.traceback ? run.traceback : run.error))) : null));
  }

  /* Events can arrive by the hundred: draw at most ~8 times a second. */
  let renderTimer = null;
  function scheduleRender() {
    if (renderTimer) return;
    renderTimer = setTimeout(() => { renderTimer = null; drawGraphBox(); renderTimeline(); renderHeader(); }, 120);
  }
  state.cleanup.push(() => clearTimeout(renderTimer));

  function stepRow(step) {
    const maxDuration = Math.max(1e-6, ...steps.map((s) => s.duration || 0));
    const bar = h("div", {});
    bar.style.width = `${Math.max(1, Math.round(100 * (step.duration || 0) / maxDuration))}%`;
    const since = step.time - run.created_at;
    const offset = !run.created_at ? "" : since < 1 ? `+${Math.max(0, Math.round(since * 1000))} ms` : since < 120 ? `+${since.toFixed(2)} s` : `+${fmtDuration(since)}`;
    const tags = [];
    const r = step.attempts > 1 ? step.attempts - 1 : retries.get(step.step);
    if (r) tags.push(h("span", { class: "tag retry" }, `${r} ${r === 1 ? "retry" : "retries"}`));
    return h("div", { class: "step" + (selected === step.step ? " selected" : ""), "data-step": step.step, title: `${fmtTime(step.time)} (${offset})`,
      onclick: () => selectStep(step.step) },
      h("span", { class: "no" }, `#${step.step}`),
      h("span", { class: "node-id", title: step.path.join(" › ") },
        step.path.length > 1 ? h("span", { class: "parent" }, step.path.slice(0, -1).join(" › ") + " › ") : null, step.node_id || step.kind),
      h("span", { class: "action" }, step.action ? h("span", {}, step.action) : ""),
      h("div", { class: "bar", title: fmtDuration(step.duration) }, bar),
      h("span", { class: "dur" }, fmtDuration(step.duration)),
      h("span", { class: "at" }, offset),
      tags.length ? h("div", { class: "tags" }, tags) : null);
  }
  function selectStep(step) { selected = step; renderTimeline(); drawGraphBox(); showSelected(); }
  function renderTimeline() {
    const rows = steps.map(stepRow);
    if (run.status === "running") rows.push(h("div", { class: "step marker" }, h("span", {}, ""), h("span", {}, startedNode ? `running ${startedNode}…` : "running…")));
    if (!steps.length && run.status !== "running") rows.push(h("p", { class: "muted pad" }, "No steps were recorded for this run."));
    const follow = timeline.scrollTop + timeline.clientHeight >= timeline.scrollHeight - 4; // at the end: keep following
    timeline.replaceChildren(...rows);
    if (follow && run.status === "running") timeline.scrollTop = timeline.scrollHeight;
    $("#step-count").textContent = steps.length ? `${steps.length} steps` : "";
  }

  async function showSelected() {
    tabState.classList.toggle("active", view === "state");
    tabDiff.classList.toggle("active", view === "diff");
    if (selected === null) return;
    const step = selected;
    stateTitle.textContent = view === "state" ? `State after step ${step}` : `Changes in step ${step}`;
    try {
      const previous = steps.filter((s) => s.step < step).map((s) => s.step).pop();
      const from = previous === undefined ? Math.max(0, step - 1) : previous;
      if (view === "state") {
        const [answer, diff] = await Promise.all([
          api(`api/runs/${enc}/steps/${step}/state`),
          from < step ? api(`api/runs/${enc}/diff?from=${from}&to=${step}`).catch(() => null) : null,
        ]);
        if (selected === step && view === "state") stateBody.replaceChildren(stateTable(answer.state, step, diff));
      } else {
        const answer = await api(`api/runs/${enc}/diff?from=${from}&to=${step}`);
        if (selected === step && view === "diff") stateBody.replaceChildren(diffTable(answer));
      }
    } catch (err) {
      if (selected === step) stateBody.replaceChildren(h("p", { class: "form-error pad" }, err.message));
    }
  }

  function valueCell(key, value, step) {
    const cell = h("div", { class: "val" });
    if (value && typeof value === "object" && value.$truncated) {
      const pre = h("pre", {}, value.preview.slice(0, 600) + "…");
      const more = h("button", { class: "btn small", onclick: async () => {
        const whole = await api(`api/runs/${enc}/steps/${step}/state?key=${encodeURIComponent(key)}`);
        pre.textContent = jsonText(whole.value);
        more.remove(); note.remove();
      } }, "Load whole value");
      const note = h("div", { class: "trunc" }, `${(value.size / 1024).toFixed(1)} kB, truncated `);
      append(cell, [pre, note, more]);
    } else if (value === "***") {
      cell.append(h("span", { class: "redacted" }, "*** (hidden: the key looks secret)"));
    } else {
      cell.append(h("pre", {}, jsonText(value)));
    }
    return cell;
  }
  function stateTable(values, step, diff) {
    const keys = Object.keys(values);
    if (!keys.length) return h("p", { class: "muted pad" }, "The shared store is empty after this step.");
    const mark = (key) => (diff && key in diff.added ? "added" : diff && key in diff.changed ? "changed" : "");
    const badge = (key) => (mark(key) ? h("span", { class: `badge ${mark(key)}` }, mark(key) === "added" ? "new" : "changed") : null);
    const removed = diff ? Object.keys(diff.removed) : [];
    return h("div", { class: "kv", id: "state-table" },
      keys.map((key) => [h("div", { class: `key ${mark(key)}` }, key, badge(key)), h("div", { class: mark(key) }, valueCell(key, values[key], step))]),
      removed.length ? h("div", { class: "removed-note" }, `Removed in this step: ${removed.join(", ")}`) : null);
  }
  function diffTable(diff) {
    const rows = [];
    for (const [key, value] of Object.entries(diff.added)) rows.push(h("div", { class: "key added" }, h("span", { class: "sign" }, "+"), key), h("div", { class: "added" }, valueCell(key, value, diff.to)));
    for (const [key, value] of Object.entries(diff.removed)) rows.push(h("div", { class: "key removed" }, h("span", { class: "sign" }, "−"), key), h("div", { class: "removed" }, valueCell(key, value, diff.from)));
    for (const [key, change] of Object.entries(diff.changed)) rows.push(h("div", { class: "key changed" }, h("span", { class: "sign" }, "~"), key),
      h("div", { class: "changed" }, h("div", { class: "from" }, valueCell(key, change.from, diff.from)), h("div", { class: "to" }, valueCell(key, change.to, diff.to))));
    if (!rows.length) return h("p", { class: "muted pad" }, `No top-level key changed between step ${diff.from} and step ${diff.to}.`);
    return h("div", { class: "kv", id: "diff-table" }, rows);
  }

  function addStep(step) {
    if (seen.has(step.step)) return false;
    seen.add(step.step);
    if (pendingRetries) { retries.set(step.step, pendingRetries); pendingRetries = 0; }
    steps.push(step);
    steps.sort((a, b) => a.step - b.step);
    return true;
  }
  let lastSeq = -1;
  async function loadSteps() {
    for (let pages = 0; pages < 20; pages++) {
      const page = await api(`api/runs/${enc}/steps?limit=500` + (stepsCursor ? `&cursor=${encodeURIComponent(stepsCursor)}` : ""));
      page.steps.forEach(addStep);
      if (page.last_seq !== null && page.last_seq !== undefined) lastSeq = page.last_seq;
      stepsCursor = page.next_cursor;
      if (!stepsCursor) break;
    }
  }

  let refreshTimer = null;
  const refreshRun = () => {
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(async () => {
      try { run = await api(`api/runs/${enc}`); renderHeader(); drawGraphBox(); renderTimeline(); } catch (err) { /* shown on next action */ }
    }, 120);
  };
  function onEvent(event) {
    if (event.type === "node_start") { if ((event.path || []).length <= 1) startedNode = event.node_id; }
    else if (event.type === "retry") pendingRetries += 1;
    else if (event.type === "node_end" || event.type === "step") {
      if ((event.path || []).length <= 1) startedNode = null;
      if (event.step !== undefined && event.step !== null && addStep(event)) {
        run.steps = Math.max(run.steps, event.step);
        if (selected === null || selected === steps[steps.length - 2]?.step) { selected = event.step; showSelected(); }
      }
    } else if (event.type === "node_error") {
      run.failed_node = event.node_id;
    }
    if (["run_end", "run_start", "run_resume", "status", "node_error"].includes(event.type)) refreshRun();
    scheduleRender();
  }

  async function cancelRun() {
    try { await api(`api/runs/${enc}/cancel`, { method: "POST", body: { reason: "cancelled from the dashboard" } }); toast("Cancel requested"); refreshRun(); }
    catch (err) { toast(err.message, true); }
  }
  async function resumeRun() {
    try { await api(`api/runs/${enc}/resume`, { method: "POST" }); toast("Resumed"); refreshRun(); }
    catch (err) { toast(err.message, true); }
  }
  function forkDialog() {
    const stepSelect = h("select", { id: "fork-step" }, steps.map((s) => h("option", { value: s.step, selected: s.step === selected }, `#${s.step} ${s.node_id || s.kind}`)));
    const patch = h("textarea", { id: "fork-patch", spellcheck: "false" }, "{}");
    const error = h("div", { class: "form-error" });
    const close = () => overlay.remove();
    const submit = async () => {
      let body;
      try { body = JSON.parse(patch.value || "{}"); } catch (err) { error.textContent = "Patch: " + err.message; return; }
      try {
        const answer = await api(`api/runs/${enc}/fork`, { method: "POST", body: { step: Number(stepSelect.value), patch: body } });
        close(); location.hash = "#/runs/" + encodeURIComponent(answer.run_id);
      } catch (err) { error.textContent = err.message; }
    };
    const overlay = h("div", { class: "overlay", onclick: (e) => { if (e.target === overlay) close(); } },
      h("div", { class: "dialog", role: "dialog", "aria-label": "Fork this run" },
        h("div", { class: "panel-head" }, h("h2", {}, "Fork from a step")),
        h("div", { class: "panel-body" }, h("p", { class: "muted" }, "A new run continues from the state after the chosen step, with the patch's top-level keys set."),
          h("label", { class: "field" }, "Step", stepSelect), h("label", { class: "field" }, "State patch (JSON object)", patch), error),
        h("div", { class: "foot" }, h("button", { class: "btn", onclick: close }, "Cancel"), h("button", { class: "btn primary", id: "fork-submit", onclick: submit }, "Fork"))));
    document.body.append(overlay);
  }

  await loadSteps();
  if (steps.length) selected = steps[steps.length - 1].step;
  renderHeader(); drawGraphBox(); renderTimeline(); showSelected();
  subscribe(`api/runs/${enc}/events?after=${lastSeq}`, onEvent, setLive); // history loaded up to lastSeq
  const ticker = setInterval(() => { if (run.status === "running") renderHeader(); }, 1000);
  state.cleanup.push(() => clearInterval(ticker));
}

// -- graphs ---------------------------------------------------------------------------------

async function graphsPage() {
  const { graphs } = await api("api/graphs");
  const cards = h("div", { class: "cards" });
  main().replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Graphs"), h("span", { class: "muted" }, `${graphs.length} served`)), cards);
  if (!graphs.length) {
    cards.replaceChildren(h("div", { class: "panel empty" }, "No graphs are served. Start the dashboard with --graphs package.module:attr to show and start them."));
    return;
  }
  for (const summary of graphs) {
    const graph = await api(`api/graphs/${encodeURIComponent(summary.name)}`);
    cards.append(h("section", { class: "panel", "data-graph": summary.name },
      h("div", { class: "panel-head" }, h("h2", { class: "grow" }, summary.name), h("span", { class: "muted mono" }, summary.ref || summary.type),
        h("a", { class: "btn small", href: "#/runs?graph=" + encodeURIComponent(summary.name) }, "Runs"),
        canWrite() ? h("button", { class: "btn small primary", onclick: () => startDialog(summary.name) }, "▶ Start") : null),
      h("div", { class: "graph-box" }, drawGraph(graph)),
      h("details", {}, h("summary", {}, "Mermaid"), h("pre", {}, graph.mermaid))));
  }
}

// -- schedules ------------------------------------------------------------------------------

async function schedulesPage() {
  const answer = await api("api/schedules");
  const head = h("div", { class: "page-head" }, h("h1", {}, "Schedules"));
  if (!answer.available) {
    main().replaceChildren(head, h("div", { class: "panel empty" }, answer.reason));
    return;
  }
  const act = async (name, action) => {
    try { await api(`api/schedules/${encodeURIComponent(name)}/${action}`, { method: "POST" }); toast(`${name}: ${action} done`); schedulesPage(); }
    catch (err) { toast(err.message, true); }
  };
  const trig = (t, text) => {
    if (text) return text;
    if (!t) return "—";
    if (t.expression) return `cron ${t.expression}` + (t.timezone && t.timezone !== "UTC" ? ` (${t.timezone})` : "");
    if (t.seconds) return `every ${fmtDuration(t.seconds)}`;
    return t.type || "—";
  };
  const rows = answer.schedules.map((s) => h("tr", { "data-schedule": s.name },
    h("td", {}, h("strong", {}, s.name)), h("td", { class: "mono" }, s.graph_ref), h("td", { class: "mono" }, String(trig(s.trigger, s.trigger_text))),
    h("td", { title: fmtTime(s.next_fire_at) }, s.paused ? h("span", { class: "pill cancelled" }, "paused") : fmtTime(s.next_fire_at)),
    h("td", {}, canWrite() ? h("div", { class: "actions" },
      s.paused ? h("button", { class: "btn small", onclick: () => act(s.name, "resume") }, "Resume") : h("button", { class: "btn small", onclick: () => act(s.name, "pause") }, "Pause"),
      h("button", { class: "btn small primary", onclick: () => act(s.name, "trigger") }, "Trigger now")) : "")));
  main().replaceChildren(head, h("div", { class: "panel" }, h("div", { class: "table-wrap" }, h("table", { id: "schedules" },
    h("thead", {}, h("tr", {}, h("th", {}, "Schedule"), h("th", {}, "Graph"), h("th", {}, "Trigger"), h("th", {}, "Next fire"), h("th", {}, ""))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 5, class: "empty" }, "No schedules yet.")))))));
}

// -- start ----------------------------------------------------------------------------------

async function boot() {
  try {
    state.session = await api("api/session");
  } catch (err) {
    if (err.status !== 401) main().replaceChildren(h("p", { class: "form-error pad" }, err.message));
    return;
  }
  $("#store").textContent = state.session.store;
  $("#store").title = state.session.store;
  $("#role").textContent = state.session.role === "admin" ? "admin" : "read-only";
  $("#logout").classList.toggle("hidden", !state.session.auth_required);
  document.title = `${state.session.title} dashboard`;
  await route();
}

window.addEventListener("hashchange", () => { if (state.session) route(); });
document.addEventListener("DOMContentLoaded", () => {
  $("#logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); state.session = null; showLogin(""); });
  boot();
});
