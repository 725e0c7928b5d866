// /compare?runs=a,b: every run's training loss on one chart (uPlot), final figures in the table.
// Data: GET /api/runs/{id}/metrics (series of `metrics` events, docs/events.md).
import uPlot from "/static/vendor/uPlot.esm.js";
import { api } from "./api.js";
import { drawnRows, line, makeChart } from "./panels/chart.js";

const MAX_DRAWN = 4000;
const root = document.getElementById("compare");

// For display only: the last point of each of at most MAX_DRAWN buckets.
function thin(xs, ys) {
  const rows = drawnRows(xs.length, MAX_DRAWN);
  return [rows.map((j) => xs[j]), rows.map((j) => ys[j])];
}

if (root) {
  const ids = root.dataset.runs.split(",");
  const results = await Promise.all(ids.map((id) => api.metrics(id)));
  const curves = results.map((m) => {
    const s = m.series.train_loss || { step: [], value: [] };
    return thin(s.step, s.value.map(Number));
  });
  const data = uPlot.join(curves);
  const chart = document.getElementById("compare-chart");
  makeChart(chart, {
    height: 320, axes: [{ label: "step" }, { label: "train loss" }],
    series: [{}, ...ids.map((id, i) => ({ ...line(id, i), spanGaps: true }))],
  }, data);
  results.forEach((m, i) => {
    const row = document.querySelector(`tr[data-run-id="${ids[i]}"]`);
    for (const cell of row.querySelectorAll("[data-final]")) {
      const s = m.series[cell.dataset.final];
      const v = s && s.value.length ? Number(s.value[s.value.length - 1]) : null;
      cell.textContent = v === null ? "–" :
        cell.dataset.final === "test_acc" ? `${(100 * v).toFixed(2)}%` : v.toPrecision(4);
    }
  });
  root.dataset.ready = "true";
}
