// Small inline-SVG charts for the Lakestream dashboard: line, bars, timeline.
// No library and no network: every chart is built from data with DOM calls.
"use strict";

(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
                   "#db2777", "#65a30d", "#ea580c", "#475569"];
  const STATUS = { success: "#16a34a", failed: "#dc2626", running: "#d97706",
                   timeout: "#dc2626", cancelled: "#94a3b8", upstream_failed: "#f87171" };

  function el(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function svg(width, height, label) {
    return el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
                       "aria-label": label || "chart" });
  }

  function niceTicks(lo, hi, count) {
    if (!(hi > lo)) { hi = lo + 1; }
    const raw = (hi - lo) / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const ticks = [Math.floor(lo / step) * step];
    while (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
    return ticks.length > 1 ? ticks : [ticks[0], ticks[0] + step];
  }

  function short(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(0) + "k";
    return Number.isInteger(v) ? String(v) : v.toFixed(1);
  }

  function yAxis(root, ticks, y, x0, x1) {
    for (const t of ticks) {
      root.append(el("line", { x1: x0, x2: x1, y1: y(t), y2: y(t), class: "grid" }));
      root.append(el("text", { x: x0 - 6, y: y(t) + 4, "text-anchor": "end" }, short(t)));
    }
  }

  function legend(names, colorOf) {
    const box = document.createElement("div");
    box.className = "legend";
    for (const name of names) {
      const item = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = colorOf(name);
      item.append(swatch, document.createTextNode(name));
      box.append(item);
    }
    return box;
  }

  function timeLabel(ms, span) {
    const d = new Date(ms);
    const iso = d.toISOString();
    if (span > 3 * 86400e3) return iso.slice(5, 10);
    return span > 3600e3 ? iso.slice(5, 16).replace("T", " ") : iso.slice(11, 19);
  }

  // series: [{name, points: [[xMillis, y], ...]}]
  function line(series, opts) {
    const o = Object.assign({ width: 860, height: 260, label: "line chart" }, opts || {});
    const m = { l: 52, r: 12, t: 10, b: 28 };
    const pts = series.flatMap((s) => s.points);
    const root = svg(o.width, o.height, o.label);
    if (!pts.length) return root;
    const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
    const x0 = Math.min(...xs), x1 = Math.max(...xs) === x0 ? x0 + 1 : Math.max(...xs);
    const ticks = niceTicks(o.yMin ?? Math.min(...ys), o.yMax ?? Math.max(...ys), 5);
    const lo = ticks[0], hi = ticks[ticks.length - 1];
    const x = (v) => m.l + (v - x0) / (x1 - x0) * (o.width - m.l - m.r);
    const y = (v) => o.height - m.b - (v - lo) / (hi - lo || 1) * (o.height - m.t - m.b);
    yAxis(root, ticks, y, m.l, o.width - m.r);
    for (let i = 0; i <= 5; i++) {
      const v = x0 + (x1 - x0) * i / 5;
      const anchor = i === 0 ? "start" : i === 5 ? "end" : "middle";
      root.append(el("text", { x: x(v), y: o.height - 8, "text-anchor": anchor },
                     timeLabel(v, x1 - x0)));
    }
    series.forEach((s, i) => {
      const color = PALETTE[i % PALETTE.length];
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
      root.append(el("path", { d: d.join(""), fill: "none", stroke: color, "stroke-width": 2 }));
      for (const p of s.points.length <= 60 ? s.points : []) {
        const dot = el("circle", { cx: x(p[0]), cy: y(p[1]), r: 2.5, fill: color });
        dot.append(el("title", {}, `${s.name} ${new Date(p[0]).toISOString()}: ${p[1]}`));
        root.append(dot);
      }
    });
    const wrap = document.createElement("div");
    const names = series.map((s) => s.name);
    wrap.append(legend(names, (n) => PALETTE[names.indexOf(n) % PALETTE.length]), root);
    return wrap;
  }

  // items: [{label, value, title?}]
  function bars(items, opts) {
    const o = Object.assign({ width: 860, height: 240, label: "bar chart", color: PALETTE[0] },
                            opts || {});
    const m = { l: 56, r: 10, t: 10, b: items.length > 8 ? 90 : 30 };
    const root = svg(o.width, o.height, o.label);
    if (!items.length) return root;
    const ticks = niceTicks(0, Math.max(...items.map((i) => i.value), 0), 5);
    const hi = ticks[ticks.length - 1] || 1;
    const y = (v) => o.height - m.b - v / hi * (o.height - m.t - m.b);
    yAxis(root, ticks, y, m.l, o.width - m.r);
    const slot = (o.width - m.l - m.r) / items.length;
    items.forEach((it, i) => {
      const cx = m.l + slot * i + slot / 2;
      const bar = el("rect", { x: cx - slot * 0.35, y: y(it.value), width: slot * 0.7,
                               height: Math.max(y(0) - y(it.value), 0), fill: o.color, rx: 2 });
      bar.append(el("title", {}, it.title || `${it.label}: ${it.value}`));
      root.append(bar);
      const rotate = items.length > 8;
      const text = String(it.label);
      root.append(el("text", { x: cx, y: o.height - m.b + 14, "text-anchor": rotate ? "end" : "middle",
                               transform: rotate ? `rotate(-40 ${cx} ${o.height - m.b + 14})` : "" },
                     text.length > 18 ? `${text.slice(0, 17)}…` : text));
    });
    return root;
  }

  // items: [{label, start: ms, end: ms, status, title}]
  function timeline(items, opts) {
    const o = Object.assign({ width: 860, label: "timeline" }, opts || {});
    const row = 18, m = { l: 150, r: 12, t: 6, b: 24 };
    const height = m.t + m.b + row * Math.max(items.length, 1);
    const root = svg(o.width, height, o.label);
    if (!items.length) return root;
    const t0 = Math.min(...items.map((i) => i.start));
    const t1 = Math.max(...items.map((i) => i.end), t0 + 1000);
    const x = (v) => m.l + (v - t0) / (t1 - t0) * (o.width - m.l - m.r);
    for (let i = 0; i <= 4; i++) {
      const v = t0 + (t1 - t0) * i / 4;
      const anchor = i === 0 ? "start" : i === 4 ? "end" : "middle";
      root.append(el("line", { x1: x(v), x2: x(v), y1: m.t, y2: height - m.b, class: "grid" }));
      root.append(el("text", { x: x(v), y: height - 8, "text-anchor": anchor },
                     timeLabel(v, t1 - t0)));
    }
    items.forEach((it, i) => {
      const top = m.t + row * i;
      root.append(el("text", { x: m.l - 6, y: top + 13, "text-anchor": "end" },
                     String(it.label).slice(0, 24)));
      const rect = el("rect", { x: x(it.start), y: top + 3, height: row - 6, rx: 2,
                                width: Math.max(x(it.end) - x(it.start), 2),
                                fill: STATUS[it.status] || "#64748b" });
      rect.append(el("title", {}, it.title || it.label));
      root.append(rect);
    });
    return root;
  }

  window.Charts = { line, bars, timeline, PALETTE };
})();
