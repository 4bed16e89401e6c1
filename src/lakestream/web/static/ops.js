// Pages of operations and data: runs, quality, charts.
"use strict";

(function () {
  const D = () => window.Dash;
  window.Pages = window.Pages || {};
  const ms = (iso) => Date.parse(iso);

  function taskTable(run) {
    const { h, fmt, table, badge } = D();
    return table([
      { label: "task", key: "task", get: (t) => h("span", { class: "mono" }, t.task) },
      { label: "attempt", key: "attempt", num: true },
      { label: "status", key: "status", get: (t) => badge(t.status) },
      { label: "started", key: "started_at", get: (t) => fmt.time(t.started_at) },
      { label: "duration", key: "duration_s", num: true, get: (t) => fmt.dur(t.duration_s) },
      { label: "rows in", key: "rows_in", num: true },
      { label: "rows out", key: "rows_out", num: true },
      { label: "error", key: "error", wrap: true, get: (t) => h("pre", {}, t.error || "") },
    ], run.tasks, { rowKey: (t) => `${t.task}#${t.attempt}` });
  }

  function runDetails(run) {
    const { h, fmt, badge, banner } = D();
    const timed = run.tasks.filter((t) => t.duration_s !== null);
    return h("details", { "data-key": run.run_id, id: run.run_id, class: "panel" },
      h("summary", {}, badge(run.status), " ", h("b", {}, run.pipeline), " ",
        h("span", { class: "mono" }, run.run_id), " · ", fmt.time(run.started_at), " · ",
        fmt.dur(run.duration_s), ` · ${run.tasks.length} task attempt(s)`),
      run.error ? banner("bad", run.error) : null,
      timed.length ? window.Charts.bars(timed.map((t) => ({
        label: t.task, value: t.duration_s, title: `${t.task} (attempt ${t.attempt}): ` +
          `${fmt.dur(t.duration_s)}, ${t.status}` })), { label: "task durations (s)", height: 200 })
        : null,
      taskTable(run));
  }

  window.Pages.runs = async function () {
    const { h, panel, banner, get } = D();
    const data = await get("/api/runs?limit=30");
    const runs = data.runs;
    const items = runs.slice().reverse().map((r) => ({
      label: `${r.pipeline} …${r.run_id.slice(-6)}`, start: ms(r.started_at),
      end: r.ended_at ? ms(r.ended_at) : Date.now(), status: r.status,
      title: `${r.pipeline} ${r.run_id}: ${r.status}` }));
    return () => [
      data.error ? banner("bad", `Run log unavailable: ${data.error}`) : null,
      panel("Timeline (oldest at the top)", items.length
        ? window.Charts.timeline(items, { label: "runs timeline" })
        : h("p", { class: "muted" }, "No runs logged yet.")),
      h("h2", {}, "Runs, newest first (open one for its tasks)"),
      h("div", { id: "run-list" }, runs.map(runDetails)),
    ];
  };

  function matrix(results) {
    const { h, table } = D();
    const runs = [...new Map(results.map((r) => [r.run_id, r.checked_at])).entries()]
      .sort((a, b) => ms(a[1]) - ms(b[1]));
    const checks = [...new Set(results.map((r) => r.check_name))].sort();
    const at = new Map(results.map((r) => [`${r.check_name}|${r.run_id}`, r]));
    if (!runs.length) return h("p", { class: "muted" }, "No quality results yet.");
    return h("table", { class: "matrix", id: "matrix" }, h("tbody", {}, checks.map((c) =>
      h("tr", { "data-row": c }, h("th", {}, c), runs.map(([run, when]) => {
        const r = at.get(`${c}|${run}`);
        return h("td", { class: `cell ${r ? r.status : "none"}`,
                         title: r ? `${when}: ${r.status} (${r.observed ?? "–"}) ${r.detail || ""}`
                                  : `${when}: not run` });
      })))));
  }

  function scoreSeries(results) {
    const byRun = new Map();
    for (const r of results) {
      const s = byRun.get(r.run_id) || { at: ms(r.checked_at), pass: 0, all: 0 };
      s.all += 1;
      s.pass += r.status === "pass" ? 1 : 0;
      byRun.set(r.run_id, s);
    }
    const points = [...byRun.values()].sort((a, b) => a.at - b.at)
      .map((s) => [s.at, Math.round(1000 * s.pass / s.all) / 10]);
    return [{ name: "checks passed (%)", points }];
  }

  function cityScores(daily) {
    if (D().failed(daily) || !daily.rows.length) return null;
    const i = daily.columns.indexOf("quality_score_avg"), c = daily.columns.indexOf("city");
    const d = daily.columns.indexOf("date");
    const cities = [...new Set(daily.rows.map((r) => r[c]))].sort();
    return cities.map((city) => ({ name: city, points: daily.rows.filter((r) => r[c] === city)
      .map((r) => [ms(r[d]), r[i]]) }));
  }

  window.Pages.quality = async function () {
    const { h, panel, banner, get, attempt } = D();
    const [data, daily] = await Promise.all([get("/api/quality?limit=30"),
                                             attempt("/api/charts/weather_daily")]);
    const results = data.results;
    const latestRun = results.length ? results[0].run_id : null;
    const latest = results.filter((r) => r.run_id === latestRun);
    const cities = cityScores(daily);
    return () => [
      data.error ? banner("bad", `Quality results unavailable: ${data.error}`) : null,
      h("div", { class: "grid2" },
        panel("Score per run: share of checks passed", results.length
          ? window.Charts.line(scoreSeries(results), { label: "quality score", height: 220,
                                                       yMin: 0, yMax: 100 })
          : h("p", { class: "muted" }, "No quality results yet (lakestream quality check).")),
        panel("Record quality score per city and day (silver, 100 = complete)", cities
          ? window.Charts.line(cities, { label: "record quality", height: 220 })
          : h("p", { class: "muted" }, "No silver weather data to score yet."))),
      panel("Checks over time (columns are runs, oldest first)", matrix(results)),
      panel("Latest run", latest.length ? D().table([
        { label: "check", key: "check_name" }, { label: "dataset", key: "dataset" },
        { label: "status", key: "status", get: (r) => D().badge(r.status) },
        { label: "observed", key: "observed", num: true, get: (r) => D().fmt.num(r.observed) },
        { label: "threshold", key: "threshold" }, { label: "detail", key: "detail", wrap: true },
      ], latest, { id: "latest", rowKey: (r) => r.check_name }) : h("p", { class: "muted" }, "–")),
    ];
  };

  const CHART_TABLES = {
    payment_methods: ["payment_method_name", "transaction_count", "total_amount", "avg_amount"],
    top_products: ["product_id", "product_name", "purchase_count", "total_revenue",
                   "unique_buyers"],
    currencies: ["currency", "transactions", "amount", "amount_usd"],
    weather_daily: ["date", "city", "observations", "temperature_avg", "temperature_min",
                    "temperature_max", "humidity_avg", "rain_total"],
  };

  function chartTable(c) {
    const { table, fmt } = D();
    const wanted = CHART_TABLES[c.chart];
    if (!wanted) return null;
    const rows = c.chart === "weather_daily" ? c.rows.slice(-20).reverse() : c.rows;
    return table(wanted.map((col) => {
      const i = c.columns.indexOf(col);
      const isNum = rows.length && typeof rows[0][i] === "number";
      const whole = isNum && rows.every((r) => Number.isInteger(r[i]));
      return { label: col.replaceAll("_", " "), key: col, num: isNum, value: (r) => r[i],
               get: (r) => (isNum ? (whole ? fmt.int(r[i]) : fmt.num(r[i])) : r[i]) };
    }), rows, { id: `table-${c.chart}`, rowKey: (r) => String(r[0]) });
  }

  function drawing(c) {
    const col = (name) => c.columns.indexOf(name);
    if (c.kind === "line") {
      const s = col(c.series), x = col(c.x), y = col(c.y[0]);
      const names = [...new Set(c.rows.map((r) => r[s]))].sort();
      return window.Charts.line(names.map((n) => ({ name: n, points: c.rows
        .filter((r) => r[s] === n).map((r) => [ms(r[x]), r[y]]) })), { label: c.title });
    }
    const x = col(c.x), y = col(c.y[0]);
    return window.Charts.bars(c.rows.map((r) => ({ label: r[x], value: r[y] })), { label: c.title });
  }

  window.Pages.charts = async function () {
    const { h, panel, attempt, failed, problem } = D();
    const names = ["weather_temperature", "weather_daily", "payment_methods", "top_products",
                   "currencies"];
    const charts = await Promise.all(names.map((n) => attempt(`/api/charts/${n}`)));
    return () => charts.map((c, i) => h("div", { id: `chart-${names[i]}` },
      failed(c) ? panel(names[i], problem(c))
        : panel(c.title, c.rows.length ? [drawing(c), chartTable(c)]
          : h("p", { class: "muted" }, `No data yet in ${c.dataset}.`))));
  };
})();
