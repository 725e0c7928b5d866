// /compare?runs=a,b: every run's training loss on one chart (uPlot), final figures in the table.
// Data: GET /api/runs/{id}/metrics (series of `metrics` events, docs/events.md).
import uPlot from "/static/vendor/uPlot.esm.js";
import { api } from "./api.js";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
const MAX_DRAWN = 4000;
const root = document.getElementById("compare");

function thin(xs, ys) {
  const stride = Math.max(1, Math.ceil(xs.length / MAX_DRAWN));
  const tx = [], ty = [];
  for (let i = 0; i < xs.length; i += stride) {
    const j = Math.min(i + stride, xs.length) - 1;
    tx.push(xs[j]); ty.push(ys[j]);
  }
  return [tx, ty];
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
  new uPlot({
    width: Math.max(400, chart.clientWidth), height: 320,
    scales: { x: { time: false } }, axes: [{ label: "step" }, { label: "train loss" }],
    series: [{}, ...ids.map((id, i) => ({ label: id, stroke: COLORS[i % COLORS.length], width: 2,
      spanGaps: true, points: { show: false } }))],
  }, data, chart);
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
