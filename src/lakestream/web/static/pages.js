// Pages of the lake: overview, dataset (feed), partition. Each returns a render function.
"use strict";

(function () {
  const D = () => window.Dash;
  window.Pages = window.Pages || {};

  function datasetColumns() {
    const { h, fmt, badge, link, enc } = D();
    return [
      { label: "dataset", key: "name", get: (r) => link(`/datasets/${enc(r.name)}`, r.name, "mono") },
      { label: "kind", key: "kind" },
      { label: "pipeline", key: "pipeline", get: (r) => r.pipeline || "–" },
      { label: "status", key: "status", get: (r) => badge(r.status) },
      { label: "records", key: "records", num: true },
      { label: "size", key: "bytes", num: true, get: (r) => fmt.bytes(r.bytes) },
      { label: "files", key: "files", num: true },
      { label: "partitions", key: "partitions", num: true,
        get: (r) => (r.current_version ? `${fmt.int(r.partitions)} (${r.current_version})`
                                       : fmt.int(r.partitions)) },
      { label: "DLQ", key: "dlq_records", num: true },
      { label: "last commit", key: "last_commit", get: (r) => h("span", { title: r.last_commit || "" },
                                                                  fmt.time(r.last_commit)) },
      { label: "freshness", key: "freshness_s", num: true, get: (r) => fmt.age(r.freshness_s) },
    ];
  }

  function lagPanel(lag) {
    const { fmt, table, panel, banner } = D();
    const rows = lag.partitions;
    return panel("Consumer lag per partition",
      lag.note ? banner("warn", lag.note) : null,
      lag.error ? banner("info", `Lag unavailable: ${lag.error}. Committed positions are shown.`)
                : null,
      table([
        { label: "sink", key: "sink" }, { label: "topic", key: "topic" },
        { label: "partition", key: "partition", num: true },
        { label: "committed position", key: "position", num: true },
        { label: "high watermark", key: "high", num: true },
        { label: "lag", key: "lag", num: true, get: (r) => (r.lag === null ? "–" : fmt.int(r.lag)) },
      ], rows, { id: "lag", empty: "No partition committed yet.",
                 rowKey: (r) => `${r.sink}:${r.topic}:${r.partition}` }));
  }

  function runsTable(runs) {
    const { h, fmt, table, badge } = D();
    return table([
      { label: "run", key: "run_id", get: (r) => h("a", { href: `/runs#${r.run_id}`, class: "mono",
                                                          title: r.run_id }, `…${r.run_id.slice(-10)}`) },
      { label: "pipeline", key: "pipeline" },
      { label: "status", key: "status", get: (r) => badge(r.status) },
      { label: "started", key: "started_at", get: (r) => fmt.time(r.started_at) },
      { label: "duration", key: "duration_s", num: true, get: (r) => fmt.dur(r.duration_s) },
      { label: "tasks", key: "tasks", num: true, value: (r) => r.tasks.length },
      { label: "error", key: "error", wrap: true, get: (r) => h("span", {}, r.error || "") },
    ], runs, { id: "runs", empty: "No runs logged yet (pipeline_execution_log is empty).",
               rowKey: (r) => r.run_id });
  }

  function checksTable(checks, id) {
    const { fmt, table, badge } = D();
    return table([
      { label: "check", key: "check_name", get: (r) => r.check_name },
      { label: "dataset", key: "dataset" },
      { label: "status", key: "status", get: (r) => badge(r.status) },
      { label: "observed", key: "observed", num: true, get: (r) => fmt.num(r.observed) },
      { label: "threshold", key: "threshold" },
      { label: "detail", key: "detail", wrap: true },
      { label: "checked", key: "checked_at", get: (r) => fmt.time(r.checked_at) },
    ], checks, { id, rowKey: (r) => r.check_name });
  }

  window.Pages.overview = async function () {
    const { h, fmt, card, table, panel, banner, get } = D();
    const o = await get("/api/overview");
    const sum = (area, key) => o.datasets.filter((d) => !area || d.area === area)
      .reduce((n, d) => n + (d[key] || 0), 0);
    const failing = o.failing_checks;
    return () => [
      h("div", { class: "cards" },
        card("datasets", fmt.int(o.datasets.length), "datasets"),
        card("stream records", fmt.int(sum("streams", "records")), "stream_records"),
        card("table rows", fmt.int(sum("tables", "records")), "table_rows"),
        card("lake size", fmt.bytes(sum(null, "bytes")), "bytes"),
        card("dead letters", fmt.int(sum("_dlq", "records")), "dead_letters"),
        card("consumer lag", o.lag.total === null ? "n/a" : fmt.int(o.lag.total), "lag")),
      o.errors.map((e) => banner("bad", e)),
      h("h2", {}, "Feeds and datasets"),
      table(datasetColumns(), o.datasets, { id: "datasets", rowKey: (r) => r.name }),
      h("div", { class: "grid2" },
        panel("Last runs", runsTable(o.runs)),
        panel("Failing quality checks",
          failing.length ? checksTable(failing, "failing")
            : h("p", { class: "muted", id: "no-failing" }, o.checks
              ? `All ${o.checks} checks of the latest quality run passed.`
              : "No quality results yet."))),
      lagPanel(o.lag),
    ];
  };

  function partitionColumns(name) {
    const { fmt, link, enc } = D();
    const sizes = (r) => r.file_sizes.length ? r.file_sizes : [0];
    return [
      { label: "partition", key: "partition",
        get: (r) => link(`/datasets/${enc(name)}/partitions/${enc(r.partition)}`, r.partition,
                         "mono") },
      { label: "records", key: "records", num: true },
      { label: "files", key: "files", num: true },
      { label: "size", key: "bytes", num: true, get: (r) => fmt.bytes(r.bytes) },
      { label: "smallest file", key: "min", num: true, value: (r) => Math.min(...sizes(r)),
        get: (r) => fmt.bytes(Math.min(...sizes(r))) },
      { label: "largest file", key: "max", num: true, value: (r) => Math.max(...sizes(r)),
        get: (r) => fmt.bytes(Math.max(...sizes(r))) },
    ];
  }

  function dlqPanel(dlq, count) {
    const { h, fmt, table, panel, failed, problem } = D();
    if (failed(dlq)) {
      return panel(`Dead letters (${fmt.int(count)})`,
        dlq.status === 400 ? h("p", { class: "muted" }, "This dataset has no dead-letter queue.")
                           : problem(dlq));
    }
    return panel(`Dead letters (${fmt.int(dlq.count)})`,
      table([
        { label: "reason", key: "reason", wrap: true },
        { label: "count", key: "count", num: true },
        { label: "first seen", key: "first_seen", get: (r) => fmt.time(r.first_seen) },
        { label: "last seen", key: "last_seen", get: (r) => fmt.time(r.last_seen) },
        { label: "offsets", key: "partitions", wrap: true,
          get: (r) => r.partitions.map((p) => `${p.topic}[${p.partition}] ${p.first_offset}…${p.last_offset}`)
                                  .join(", ") },
      ], dlq.reasons, { id: "dlq-reasons", empty: "No record was rejected.",
                        rowKey: (r) => r.reason }),
      dlq.count ? h("p", {}, "After a fix, replay them (those that pass land once, the others stay): ",
                    h("code", { class: "mono" }, dlq.replay)) : null,
      table([
      { label: "reason", key: "reason", wrap: true },
      { label: "raw", key: "raw", wrap: true, get: (r) => h("pre", {}, String(r.raw ?? "").slice(0, 300)) },
      { label: "partition", key: "_kafka_partition", num: true },
      { label: "offset", key: "_kafka_offset", num: true },
      { label: "rejected", key: "rejected_at", get: (r) => fmt.time(r.rejected_at) },
    ], dlq.samples, { id: "dlq", empty: "No record was rejected." }));
  }

  window.Pages.dataset = async function (data) {
    const { h, fmt, card, table, panel, badge, get, attempt, enc } = D();
    const name = data.name;
    const [d, dlq] = await Promise.all([get(`/api/datasets/${enc(name)}`),
                                        attempt(`/api/datasets/${enc(name)}/dlq?limit=5`)]);
    const s = d.summary;
    const parts = d.partitions;
    return () => [
      h("div", { class: "cards" },
        card("records", fmt.int(s.records), "records"), card("size", fmt.bytes(s.bytes), "bytes"),
        card("files", fmt.int(s.files), "files"), card("partitions", fmt.int(s.partitions), "partitions"),
        card("dead letters", fmt.int(s.dlq_records), "dlq"),
        card("status", badge(s.status), "status"),
        card("last commit", h("small", {}, fmt.time(s.last_commit)), "last_commit")),
      h("p", { class: "muted" }, `${s.kind} in ${s.path}`, s.topic ? ` · from topic ${s.topic}` : "",
        s.current_version ? ` · current version ${s.current_version}` : ""),
      h("div", { class: "grid2" },
        panel("Records per partition", window.Charts.bars(
          parts.map((p) => ({ label: p.partition, value: p.records || 0 })),
          { label: "records per partition" })),
        panel("Bytes per partition (file sizes below)", window.Charts.bars(
          parts.map((p) => ({ label: p.partition, value: p.bytes,
                              title: `${p.partition}: ${p.files} files, ${fmt.bytes(p.bytes)}` })),
          { label: "bytes per partition", color: window.Charts.PALETTE[2] }))),
      panel("Partitions", table(partitionColumns(name), parts.slice().reverse(),
                                { id: "partitions", rowKey: (r) => r.partition })),
      h("div", { class: "grid2" },
        panel("Schema", table([{ label: "column", key: "name" }, { label: "type", key: "type" }],
                              d.schema, { id: "schema" })),
        d.versions.length ? panel("Versions", table([
          { label: "version", key: "version" }, { label: "rows", key: "rows", num: true },
          { label: "size", key: "bytes", num: true, get: (r) => fmt.bytes(r.bytes) },
          { label: "created", key: "created_at", get: (r) => fmt.time(r.created_at) },
        ], d.versions.slice().reverse(), { id: "versions" }))
          : panel("Kafka offsets covered", table([
            { label: "topic:partition", key: "k" }, { label: "offsets", key: "v" }],
          Object.entries(d.kafka_offsets).map(([k, v]) => ({ k, v: typeof v === "object"
            ? `${fmt.int(v.first)} … ${fmt.int(v.last)}` : `next ${fmt.int(v)}` })),
          { empty: "None yet." }))),
      dlqPanel(dlq, s.dlq_records),
    ];
  };

  function cellText(v) {
    const text = v !== null && typeof v === "object" ? JSON.stringify(v) : String(v ?? "NULL");
    return D().h("span", { title: text.length > 60 ? text : null },
                 text.length > 60 ? `${text.slice(0, 59)}…` : text);
  }

  window.Pages.partition = async function (data) {
    const { h, fmt, card, table, panel, get, attempt, enc, failed, problem } = D();
    const name = enc(data.name), part = data.partition;
    const isDay = /^\d{4}-\d{2}-\d{2}$/.test(part);
    const [p, ds] = await Promise.all([get(`/api/datasets/${name}/partitions/${enc(part)}`),
                                       get(`/api/datasets/${name}`)]);
    const current = ds.summary.current_version === part;
    const rows = isDay || current ? await attempt(
      `/api/datasets/${name}/rows?limit=20${isDay ? `&date=${part}` : ""}`) : null;
    return () => [
      h("div", { class: "cards" }, card("records", fmt.int(p.records), "records"),
        card("size", fmt.bytes(p.bytes), "bytes"), card("files", fmt.int(p.files.length), "files")),
      h("p", { class: "muted mono" }, p.path),
      panel("Files", table([
        { label: "file", key: "name", get: (r) => h("span", { class: "mono" }, r.name) },
        { label: "records", key: "records", num: true },
        { label: "size", key: "bytes", num: true, get: (r) => fmt.bytes(r.bytes) },
        { label: "modified", key: "modified", get: (r) => fmt.time(r.modified) },
      ], p.files, { id: "files", rowKey: (r) => r.name })),
      rows === null ? null : panel(
        failed(rows) ? "First rows" : `First rows (${fmt.int(rows.rows.length)} of ${fmt.int(rows.total)},
          read from ${rows.files_read} file(s))`,
        failed(rows) ? problem(rows) : table(rows.columns.map((c, i) => ({
          label: c, key: c, value: (r) => r[i], get: (r) => cellText(r[i]) })),
        rows.rows, { id: "rows" })),
    ];
  };
})();
