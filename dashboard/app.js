// The console's pages, rendered in the browser from the /ui/api JSON; server-sent events say when to refetch.
// Plain JavaScript, no build step and nothing fetched from elsewhere (docs/dashboard.md).
"use strict";

/** h("tag#id.class", {attr}, ...children): builds elements; text is always text (never parsed as HTML). */
function h(spec, attrs, ...kids) {
  const [head, ...cls] = spec.split(".");
  const [tag, id] = head.split("#");
  const el = document.createElement(tag);
  if (id) el.id = id;
  if (cls.length) el.className = cls.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v); else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const k of kids.flat()) if (k !== undefined && k !== null && k !== false) el.append(k instanceof Node ? k : String(k));
  return el;
}
const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

async function api(path, opts) {
  const r = await fetch(path, { credentials: "same-origin", ...opts, headers: { "x-ember-console": "1", ...(opts && opts.body ? { "content-type": "application/json" } : {}), ...((opts && opts.headers) || {}) } });
  if (r.status === 401) { const j = await r.json().catch(() => ({})); location.assign(`/ui/login?reason=${encodeURIComponent(j.error || "no_session")}&next=${encodeURIComponent(location.pathname)}`); throw new Error("session"); }
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.detail || j.error || `HTTP ${r.status}`);
  return j;
}

const ago = (iso) => {
  if (!iso) return "never";
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (s < 0) return `in ${dur(-s)}`;
  return `${dur(s)} ago`;
};
function dur(s) {
  s = Math.abs(Math.round(s));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ""}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
const ms = (x) => (x === undefined || x === null ? "–" : `${x < 10 ? x.toFixed(2) : x.toFixed(0)} ms`);
const time = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z") : "–");
const table = (cls, head, rows) => h(`table.${cls}`, {}, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))), h("tbody", {}, rows));
const nodeLink = (name) => h("a", { href: `/ui/nodes/${name}` }, name);

// ---------------------------------------------------------------------------------------- pages

const pages = {
  async overview() {
    const o = await api("/ui/api/overview");
    const byPair = new Map(o.links.map((l) => [`${l.from}>${l.to}`, l]));
    const names = o.nodes.map((n) => n.name);
    const nodeRows = o.nodes.map((n) => h("tr", { "data-node": n.name },
      h("td", {}, nodeLink(n.name)), h("td", {}, h(`span.badge.${n.online ? "ok" : "bad"}`, {}, n.online ? "online" : "offline")),
      h("td", {}, ago(n.lastSeen)), h("td", {}, n.tenant), h("td", {}, n.groups.join(", ")), h("td", {}, n.homeRelay || "–"), h("td", {}, n.natType || "–"),
      h("td", {}, n.problems.length ? n.problems.map((p) => h(`span.badge.${p.severity === "error" ? "bad" : "warn"}`, { title: p.summary }, p.code)) : h("span.muted", {}, "none"))));
    const linkRows = o.links.map((l) => h("tr", { "data-link": `${l.from}>${l.to}` },
      h("td", {}, nodeLink(l.from)), h("td", {}, nodeLink(l.to)), h("td", {}, h(`span.path.${l.kind}`, {}, l.path)), h("td", {}, l.state), h("td.num", {}, ms(l.rttMs)), h("td.num", {}, l.lossPct === undefined ? "–" : `${l.lossPct}%`)));
    // The latency matrix: a row per node, a column per peer; the cell is the path kind and the latency.
    const matrix = table("matrix", ["from \\ to", ...names], names.map((a) => h("tr", {}, h("th", {}, a), names.map((b) => {
      if (a === b) return h("td.self", {}, "");
      const l = byPair.get(`${a}>${b}`);
      return l ? h(`td.cell.${l.kind}`, { "data-pair": `${a}>${b}`, title: l.path }, `${l.kind === "direct" ? "D" : l.kind === "relay" ? "R" : "–"} ${ms(l.rttMs)}`) : h("td.cell.none", {}, "");
    }))));
    return [
      h("h1", {}, "Mesh"),
      h("p.muted", {}, `${o.nodes.length} nodes, ${o.nodes.filter((n) => n.online).length} online · policy ${o.policyHash}`),
      h("div.split", {}, h("section", {}, h("h2", {}, "Graph"), graph(o)), h("section", {}, h("h2", {}, "Latency matrix"), matrix,
        h("p.legend", {}, h("span.path.direct", {}, "D direct"), " ", h("span.path.relay", {}, "R relay")))),
      h("h2", {}, "Nodes"), table("nodes", ["node", "state", "last seen", "tenant", "groups", "home relay", "NAT", "problems"], nodeRows),
      h("h2", {}, "Paths"), table("links", ["from", "to", "path", "session", "latency", "loss"], linkRows),
    ];
  },

  async certificates() {
    const c = await api("/ui/api/certificates");
    return [
      h("h1", {}, "Certificates"),
      table("certs", ["node", "status", "serial", "valid from", "valid until", "next rotation", "expires in"], c.nodes.map((n) => h("tr", { "data-cert": n.name },
        h("td", {}, nodeLink(n.name)), h("td", {}, h(`span.badge.${n.status === "active" ? "ok" : "bad"}`, {}, n.status)), h("td.mono", {}, n.serial),
        h("td", {}, time(n.notBefore)), h("td", {}, time(n.notAfter)), h("td.rotation", { "data-at": n.nextRotation }, n.nextRotation ? `${time(n.nextRotation)} (${ago(n.nextRotation)})` : "–"),
        h("td", {}, n.expiresInS > 0 ? dur(n.expiresInS) : "expired")))),
      h("h2", {}, "Revocations"),
      c.revoked.length ? table("revoked", ["node", "serial", "revoked at", "certificate valid until"], c.revoked.map((r) => h("tr", {}, h("td", {}, r.name), h("td.mono", {}, r.serial), h("td", {}, time(r.revokedAt)), h("td", {}, time(r.notAfter)))))
        : h("p.muted", {}, "No certificate is revoked."),
    ];
  },

  async policy() {
    const [p, o] = await Promise.all([api("/ui/api/policy"), api("/ui/api/overview")]);
    const verdict = new URLSearchParams(location.search).get("verdict") || "";
    const decisions = verdict ? await api(`/ui/api/decisions?verdict=${verdict}`).then((d) => d.decisions) : p.decisions;
    const opts = (sel) => o.nodes.map((n) => h("option", { value: n.name, selected: n.name === sel }, n.name));
    const result = h("div#check-result.check-result", { "data-testid": "check-result", "data-keep": "check-result" });
    const form = h("form#flow-test.flow-test", { "data-keep": "flow-test",
      onsubmit: async (ev) => {
        ev.preventDefault();
        const f = new FormData(ev.target);
        result.replaceChildren(h("p", {}, "Checking…"));
        try {
          const r = await api("/ui/api/policy/check", { method: "POST", body: JSON.stringify({ from: f.get("from"), to: f.get("to"), protocol: f.get("protocol"), port: Number(f.get("port")) }) });
          result.replaceChildren(
            h(`p.verdict.${r.allow ? "allow" : "deny"}`, { "data-verdict": r.allow ? "allow" : "deny" }, r.allow ? "ALLOW" : "DENY", " ", `${r.from} → ${r.to}:${r.port}/${r.protocol}`),
            h("p", {}, r.reason), r.rule ? h("p.mono", {}, `rule ${r.rule.index} (line ${r.rule.line}): ${r.rule.text}`) : "",
            r.nearest ? h("div.nearest", {}, h("p", {}, `Nearest rule ${r.nearest.rule.index} (line ${r.nearest.rule.line}): `, h("code", {}, r.nearest.rule.text)), h("ul", {}, r.nearest.differences.map((d) => h("li", {}, d)))) : "");
        } catch (e) { result.replaceChildren(h("p.error", {}, e.message)); }
      },
    },
      h("label", {}, "from ", h("select", { name: "from", id: "flow-from" }, opts(o.nodes[0] && o.nodes[0].name))),
      h("label", {}, "to ", h("select", { name: "to", id: "flow-to" }, opts(o.nodes[1] && o.nodes[1].name))),
      h("label", {}, "protocol ", h("select", { name: "protocol", id: "flow-protocol" }, ["tcp", "https", "udp", "icmp"].map((x) => h("option", { value: x }, x)))),
      h("label", {}, "port ", h("input", { name: "port", id: "flow-port", type: "number", min: 1, max: 65535, value: 443 })),
      h("button", { type: "submit", id: "flow-submit" }, "Test flow"));
    return [
      h("h1", {}, "Policy"),
      h("p.muted", {}, `hash ${p.hash}${p.setAt ? ` · set ${time(p.setAt)} by ${p.setBy}` : ""}`),
      h("h2", {}, "Rules"),
      p.rules.length ? h("ol.rules", {}, p.rules.map((r) => h("li", { "data-rule": r.index }, h("code", {}, r.text), h("span.muted", {}, ` line ${r.line}`)))) : h("p.muted", {}, "No rules: every flow is denied."),
      h("h2", {}, "Test a flow against the live policy"), form, result,
      h("h2", {}, "Recent decisions"),
      h("p.filters", {}, ["", "allow", "deny"].map((v) => h(`a.filter${v === verdict ? ".on" : ""}`, { href: `/ui/policy${v ? `?verdict=${v}` : ""}`, "data-filter": v || "all" }, v || "all"))),
      decisions.length ? table("decisions", ["time", "node", "side", "verdict", "flow", "rule / reason"], decisions.map((d) => h("tr", { "data-verdict": d.allow ? "allow" : "deny" },
        h("td", {}, time(d.at)), h("td", {}, nodeLink(d.node)), h("td", {}, d.side || "–"), h("td", {}, h(`span.badge.${d.allow ? "ok" : "bad"}`, {}, d.allow ? "allow" : "deny")),
        h("td.mono", {}, d.flow || ""), h("td", {}, d.rule || d.reason || "")))) : h("p.muted", {}, "No decisions reported yet."),
    ];
  },

  async connections() {
    const q = new URLSearchParams(location.search);
    const ev = await api(`/ui/api/connections?${q}`);
    const o = await api("/ui/api/overview");
    const names = o.nodes.map((n) => n.name);
    const select = (name, values, label) => h("label", {}, `${label} `, h("select", { name, id: `filter-${name}` }, h("option", { value: "" }, "any"), values.map((v) => h("option", { value: v, selected: q.get(name) === v }, v))));
    const form = h("form.filters", { method: "get", action: "/ui/connections", "data-keep": "filters" },
      select("node", names, "node"), select("peer", names, "peer"), select("kind", ["handshake", "path", "coord"], "kind"), select("result", ["ok", "failed"], "result"),
      h("button", { type: "submit", id: "filter-apply" }, "Filter"));
    return [
      h("h1", {}, "Connection history"), form,
      ev.events.length ? table("history", ["time", "node", "event", "peer", "result", "detail"], ev.events.map((e) => h("tr", { "data-kind": e.kind },
        h("td", {}, time(e.at)), h("td", {}, nodeLink(e.node)), h("td", {}, e.kind === "path" ? (String(e.to || "").startsWith("relay") ? "relay fallback" : "path change") : e.kind),
        h("td", {}, e.peer ? nodeLink(e.peer) : "–"), h("td", {}, e.ok === undefined ? "–" : h(`span.badge.${e.ok ? "ok" : "bad"}`, {}, e.ok ? "ok" : "failed")),
        h("td.mono", {}, detail(e))))) : h("p.muted", {}, "No events match."),
    ];
  },

  async node() {
    const name = location.pathname.split("/").pop();
    const n = await api(`/ui/api/nodes/${name}`);
    return [
      h("h1", {}, n.name, " ", h(`span.badge.${n.online ? "ok" : "bad"}`, {}, n.online ? "online" : "offline")),
      h("p.muted", {}, `tenant ${n.tenant} · groups ${n.groups.join(", ") || "none"} · serial ${n.serial} · certificate until ${time(n.certExpires)} · last seen ${ago(n.lastSeen)}`),
      h("h2", {}, "Current problem"),
      n.problems.length ? h("div.problems", { "data-testid": "problems" }, n.problems.map((p) => h(`div.problem.${p.severity}`, { "data-code": p.code },
        h("p.summary", {}, h("strong", {}, p.code), " — ", p.summary), h("p.fix", {}, h("strong", {}, "Fix: "), p.fix))))
        : h("p.ok", { "data-testid": "no-problem" }, "No problem: this node is healthy."),
      h("h2", {}, "Peers"),
      table("peers", ["peer", "path", "session", "latency", "loss"], n.peers.map((p) => h("tr", {}, h("td", {}, nodeLink(p.name)), h("td", {}, h(`span.path.${p.path === "direct" ? "direct" : p.path.startsWith("relay") ? "relay" : "none"}`, {}, p.path)), h("td", {}, p.state), h("td.num", {}, ms(p.rttMs)), h("td.num", {}, p.lossPct === undefined ? "–" : `${p.lossPct}%`)))),
      h("p.muted", {}, `home relay ${n.homeRelay || "–"} · NAT ${n.natType || "–"} · clock offset ${n.clockOffsetMs === undefined ? "–" : `${(n.clockOffsetMs / 1000).toFixed(1)} s`} · telemetry ${ago(n.telemetryAt)}`),
      h("h2", {}, "Recent events"),
      table("history", ["time", "event", "peer", "result", "detail"], n.recent.map((e) => h("tr", {}, h("td", {}, time(e.at)), h("td", {}, e.kind), h("td", {}, e.peer || "–"),
        h("td", {}, e.ok === undefined ? "–" : e.ok ? "ok" : "failed"), h("td.mono", {}, detail(e))))),
    ];
  },
};

function detail(e) {
  const skip = new Set(["node", "at", "kind", "peer", "ok"]);
  return Object.entries(e).filter(([k, v]) => !skip.has(k) && v !== undefined && v !== null && typeof v !== "object").map(([k, v]) => `${k}=${v}`).join(" ");
}

/** Nodes on a circle, an edge per pair: green solid = direct, orange dashed = relay, labelled with the latency. */
function graph(o) {
  const W = 460, H = 340, cx = W / 2, cy = H / 2, R = Math.min(W, H) / 2 - 50;
  const pos = new Map(o.nodes.map((n, i) => {
    const a = (2 * Math.PI * i) / Math.max(1, o.nodes.length) - Math.PI / 2;
    return [n.name, { x: cx + R * Math.cos(a), y: cy + R * Math.sin(a), n }];
  }));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, class: "graph", role: "img", "aria-label": "mesh graph" });
  const drawn = new Set();
  for (const l of o.links) {
    const key = [l.from, l.to].sort().join("|");
    const a = pos.get(l.from), b = pos.get(l.to);
    if (!a || !b || drawn.has(key)) continue;
    drawn.add(key);
    svg.append(s("line", { x1: a.x, y1: a.y, x2: b.x, y2: b.y, class: `edge ${l.kind}`, "data-edge": key }));
    svg.append(s("text", { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 4, class: "edge-label" }, `${l.kind === "direct" ? "direct" : l.path} ${ms(l.rttMs)}`));
  }
  for (const { x, y, n } of pos.values()) {
    const g = s("g", { class: `node ${n.online ? "online" : "offline"}${n.problems.length ? " problem" : ""}` });
    g.append(s("circle", { cx: x, cy: y, r: 22 }), s("text", { x, y: y + 38, class: "node-label" }, n.name));
    const a = document.createElementNS(SVG, "a");
    a.setAttribute("href", `/ui/nodes/${n.name}`);
    a.append(g);
    svg.append(a);
  }
  return svg;
}

// ---------------------------------------------------------------------------------------- frame

const page = location.pathname === "/ui" || location.pathname === "/ui/" ? "overview" : location.pathname.startsWith("/ui/nodes/") ? "node" : location.pathname.slice(4);
for (const a of document.querySelectorAll("nav a")) if (a.dataset.page === page) a.classList.add("on");

let rendering = false, again = false;
async function render() {
  if (rendering) { again = true; return; }
  rendering = true;
  try {
    const kids = await pages[page]();
    const main = document.getElementById("main");
    // What a person is filling in or reading (the flow test form and its result, the filters) survives a
    // live refresh: the old elements, with their state and handlers, replace the freshly built ones.
    const keep = [...main.querySelectorAll("[data-keep]")];
    main.replaceChildren(...kids);
    for (const old of keep) { const fresh = main.querySelector(`[data-keep="${old.dataset.keep}"]`); if (fresh) fresh.replaceWith(old); }
    document.body.dataset.rendered = String(Date.now());
  } catch (e) {
    if (e.message !== "session") document.getElementById("main").replaceChildren(h("p.error", {}, e.message));
  } finally {
    rendering = false;
    if (again) { again = false; setTimeout(render, 200); }
  }
}

api("/ui/api/session").then((s) => { document.getElementById("who").textContent = `${s.user} (${s.method})`; }).catch(() => {});
document.getElementById("logout").addEventListener("click", async () => {
  await fetch("/ui/api/logout", { method: "POST", headers: { "x-ember-console": "1" }, credentials: "same-origin" });
  location.assign("/ui/login?reason=logged_out");
});

render();
let timer;
const events = new EventSource("/ui/api/events");
events.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(render, 300); });
events.onopen = () => document.getElementById("live").classList.add("on");
events.onerror = () => document.getElementById("live").classList.remove("on");
