// Lakestream dashboard: fetch the page's JSON, render it, poll again every few seconds.
// Text always goes in through textContent (never innerHTML), so data cannot inject markup.
"use strict";

(function () {
  function h(tag, attrs, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const kid of kids.flat(Infinity)) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return node;
  }

  const fmt = {
    int: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US")),
    num: (n, d = 2) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US",
      { minimumFractionDigits: d, maximumFractionDigits: d })),
    bytes(n) {
      if (n === null || n === undefined) return "–";
      const units = ["B", "kB", "MB", "GB", "TB"];
      let v = Number(n), i = 0;
      while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
      return `${i ? v.toFixed(1) : v} ${units[i]}`;
    },
    dur(s) {
      if (s === null || s === undefined) return "–";
      if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
      if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
      if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
      return `${Math.floor(s / 86400)} d ${Math.round((s % 86400) / 3600)} h`;
    },
    age: (s) => (s === null || s === undefined ? "–" : `${fmt.dur(s)} ago`),
    time: (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC") : "–"),
  };

  // columns: [{label, key, num, get(row) -> text|node, value(row) -> raw}]
  function table(columns, rows, opts) {
    const o = opts || {};
    if (!rows.length) return h("p", { class: "muted" }, o.empty || "Nothing yet.");
    const head = h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : null }, c.label)));
    const body = rows.map((row) => h("tr", { "data-row": o.rowKey ? o.rowKey(row) : null },
      columns.map((c) => {
        const raw = c.value ? c.value(row) : row[c.key];
        const shown = c.get ? c.get(row) : (c.num ? fmt.int(raw) : raw);
        return h("td", { class: c.num ? "num" : c.wrap ? "wrap" : null, "data-col": c.key || null,
                         "data-value": typeof raw === "object" ? null : raw }, shown);
      })));
    return h("table", { id: o.id || null }, h("thead", {}, head), h("tbody", {}, body));
  }

  const card = (label, value, key) => h("div", { class: "card", "data-card": key || null },
    h("div", { class: "label" }, label), h("div", { class: "value" }, value));
  const badge = (status) => h("span", { class: `badge ${status || ""}` }, status || "–");
  const panel = (title, ...kids) => h("section", { class: "panel" }, h("h2", {}, title), kids);
  const banner = (kind, text) => h("p", { class: `banner ${kind}` }, text);
  const link = (href, text, cls) => h("a", { href, class: cls || null }, text);
  const enc = encodeURIComponent;

  class ApiError extends Error {
    constructor(status, body) {
      super((body && body.error) || `HTTP ${status}`);
      this.status = status;
      this.hint = body && body.hint;
    }
  }

  async function get(url) {
    const response = await fetch(url, { credentials: "same-origin",
                                        headers: { Accept: "application/json" } });
    if (response.status === 401) {
      location.href = `/login?next=${enc(location.pathname + location.search)}`;
      throw new ApiError(401, { error: "not logged in" });
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  // Resolves to the body, or to the error (for sections that may be forbidden or empty).
  const attempt = (url) => get(url).catch((err) => err);
  const failed = (x) => x instanceof Error;
  const problem = (err) => banner([403, 404].includes(err.status) ? "warn" : "bad",
    err.message + (err.hint ? ` — ${err.hint}` : ""));

  function keepOpen(root, render) {
    const open = new Set([...root.querySelectorAll("details[open][data-key]")]
      .map((d) => d.dataset.key));
    const nodes = render().flat(Infinity).filter((n) => n !== null && n !== undefined && n !== false);
    root.replaceChildren(...nodes);
    for (const d of root.querySelectorAll("details[data-key]")) {
      if (open.has(d.dataset.key)) d.open = true;
    }
  }

  async function tick() {
    const body = document.body;
    const page = window.Pages && window.Pages[body.dataset.page];
    const root = document.getElementById("app");
    const pollMs = Number(body.dataset.pollMs) || 5000;
    if (!page || !root) return;
    if (!document.hidden) {
      try {
        const render = await page(body.dataset);
        keepOpen(root, render);
        document.getElementById("updated").textContent =
          `updated ${new Date().toLocaleTimeString()}`;
        body.dataset.loaded = String(Number(body.dataset.loaded || 0) + 1);
      } catch (err) {
        root.replaceChildren(problem(err));
      }
    }
    setTimeout(tick, pollMs);
  }

  window.Dash = { h, fmt, table, card, badge, panel, banner, link, enc, get, attempt, failed,
                  problem };
  document.addEventListener("DOMContentLoaded", tick);
})();
