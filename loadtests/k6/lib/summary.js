// handleSummary: the summary JSON, a self-contained HTML report (no CDN) and a short
// text summary on stdout. k6 still exits 99 when a threshold failed.

import { BASE_URL, PROFILE, SUMMARY_HTML, SUMMARY_JSON } from "./config.js";

const SHOWN = [
  "http_req_duration", "http_req_failed", "http_reqs", "iterations", "vus_max", "checks",
  "orders_settled", "orders_confirmed", "orders_rejected", "order_settle_ms",
];

function escape(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function format(name, values) {
  if (name === "http_req_duration" || name === "order_settle_ms") {
    return ["avg", "med", "p(90)", "p(95)", "p(99)", "max"]
      .filter((k) => k in values).map((k) => `${k}=${values[k].toFixed(1)}ms`).join(" ");
  }
  if ("rate" in values && "passes" in values) {
    return `${(values.rate * 100).toFixed(2)}% (${values.passes} of ${values.passes + values.fails})`;
  }
  if ("rate" in values && "count" in values) return `${values.count} (${values.rate.toFixed(1)}/s)`;
  if ("max" in values && "value" in values) return `${values.value} (max ${values.max})`;
  return Object.entries(values).map(([k, v]) => `${k}=${v}`).join(" ");
}

function thresholdRows(data) {
  const rows = [];
  for (const [name, metric] of Object.entries(data.metrics)) {
    for (const [expression, result] of Object.entries(metric.thresholds || {})) {
      rows.push({ name, expression, ok: result.ok });
    }
  }
  return rows;
}

function text(data, thresholds) {
  const lines = [`k6 ${PROFILE} profile against ${BASE_URL}`];
  for (const name of SHOWN) {
    if (data.metrics[name]) lines.push(`  ${name.padEnd(20)} ${format(name, data.metrics[name].values)}`);
  }
  for (const row of thresholds) {
    lines.push(`  threshold ${row.name} ${row.expression}: ${row.ok ? "passed" : "FAILED"}`);
  }
  lines.push(`  summary: ${SUMMARY_JSON}, report: ${SUMMARY_HTML}`);
  return lines.join("\n") + "\n";
}

function html(data, thresholds) {
  const metricRows = Object.keys(data.metrics).sort().map((name) =>
    `<tr><td>${escape(name)}</td><td>${escape(format(name, data.metrics[name].values))}</td></tr>`);
  const thresholdRowsHtml = thresholds.map((row) =>
    `<tr class="${row.ok ? "ok" : "failed"}"><td>${escape(row.name)}</td>` +
    `<td>${escape(row.expression)}</td><td>${row.ok ? "passed" : "failed"}</td></tr>`);
  const checks = (data.root_group.checks || []).concat(
    ...(data.root_group.groups || []).map((g) => g.checks || []));
  const checkRows = checks.map((c) =>
    `<tr class="${c.fails ? "failed" : "ok"}"><td>${escape(c.name)}</td>` +
    `<td>${c.passes}</td><td>${c.fails}</td></tr>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>highscale load test</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:2em}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
tr.ok td:last-child{color:#1a7f37}tr.failed td{color:#cf222e;font-weight:bold}
</style></head><body>
<h1>highscale load test</h1>
<p>Profile <b>${escape(PROFILE)}</b> against <code>${escape(BASE_URL)}</code>,
${(data.state.testRunDurationMs / 1000).toFixed(1)} s.</p>
<h2>Thresholds</h2><table><tr><th>metric</th><th>threshold</th><th>result</th></tr>${thresholdRowsHtml.join("")}</table>
<h2>Checks</h2><table><tr><th>check</th><th>passes</th><th>fails</th></tr>${checkRows.join("")}</table>
<h2>Metrics</h2><table><tr><th>metric</th><th>values</th></tr>${metricRows.join("")}</table>
</body></html>
`;
}

export function handleSummary(data) {
  const thresholds = thresholdRows(data);
  return {
    stdout: text(data, thresholds),
    [SUMMARY_JSON]: JSON.stringify(data, null, 2),
    [SUMMARY_HTML]: html(data, thresholds),
  };
}
