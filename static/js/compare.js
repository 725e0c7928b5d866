// /compare?runs=a,b,...: any metric of several runs on one chart, a line per run or per group
// of runs (a mean with a min–max or ± std band over the group: the seeds of one setting),
// with smoothing, a log scale and step or time on x; the hyperparameters and final figures
// (only the config keys that differ), and parallel coordinates of config against a final
// figure. Every number comes from GET /api/compare (the server groups, aligns and averages;
// the page smooths for display); the live run list (/ws/runs) says when a compared run
// changed, and the page asks again (at most once a second). The choices live in the URL.
// Test hooks: #compare's data-ready and data-fetches (answers drawn); the chart's
// data-series (JSON: [{label, band, points}] of the lines drawn).
import uPlot from "/static/vendor/uPlot.esm.js";
import { api } from "./api.js";
import { drawParcoords } from "./parcoords.js";
import { color, ema, makeChart } from "./panels/chart.js";
import {
  configValue, differingKeys, durationOf, flatConfig, listStream, shortKeys, showDuration,
  showMetric, showValue,
} from "./runinfo.js";

const root = document.getElementById("compare");
const REFRESH_MS = 1000; // live: at most one request a second
const FIGURES = [ // [summary metric, field, header, data-final hook]
  ["train_loss", "final", "final train loss", "train_loss"],
  ["train_loss", "best", "best train loss", "best_train_loss"],
  ["test_loss", "final", "test loss", "test_loss"],
  ["test_acc", "final", "test acc", "test_acc"],
  ["test_acc", "best", "best test acc", "best_test_acc"],
];

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

const $ = (id) => document.getElementById(id);
const controls = { metric: $("metric"), group: $("group"), band: $("band"), x: $("x-axis"),
  smooth: $("smooth"), log: $("log"), pc: $("pc-metric") };
const chartEl = $("compare-chart");
const errorEl = $("compare-error");
let ids = root ? root.dataset.runs.split(",") : [];
let last = null; // the last answer
let plot = null, plotShape = "";
let fetching = false, again = false, lastFetch = 0, fetches = 0;

function readUrl() {
  const q = new URLSearchParams(location.search);
  for (const [k, c] of Object.entries({ metric: controls.metric, group: controls.group,
    band: controls.band, x: controls.x })) {
    if (!q.has(k)) continue;
    if (![...c.options].some((o) => o.value === q.get(k))) c.append(el("option", { value: q.get(k), textContent: q.get(k) }));
    c.value = q.get(k);
  }
  if (q.has("smooth")) controls.smooth.value = q.get("smooth");
  controls.log.checked = q.get("log") === "1";
}

function writeUrl() {
  const q = new URLSearchParams({ runs: ids.join(",") });
  if (controls.metric.value !== "train_loss") q.set("metric", controls.metric.value);
  if (controls.group.value) q.set("group", controls.group.value);
  if (controls.band.value !== "minmax") q.set("band", controls.band.value);
  if (controls.x.value !== "step") q.set("x", controls.x.value);
  if (Number(controls.smooth.value)) q.set("smooth", controls.smooth.value);
  if (controls.log.checked) q.set("log", "1");
  history.replaceState(null, "", `${location.pathname}?${q}`); // /compare, or a sweep's page
}

async function refresh() {
  if (fetching) { again = true; return; }
  fetching = true;
  const wait = lastFetch + REFRESH_MS - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  lastFetch = Date.now();
  try {
    const points = Math.min(2000, Math.max(100, Math.round(chartEl.clientWidth || 800)));
    last = await api.compare({ runs: ids, metric: controls.metric.value,
      group: controls.group.value || null, x: controls.x.value, points });
    errorEl.textContent = "";
    render();
  } catch (err) {
    errorEl.textContent = `cannot compare these runs: ${err.message}`;
  } finally {
    fetching = false;
    if (again) { again = false; refresh(); }
  }
}

function render() {
  const runs = last.runs;
  const keys = differingKeys(runs);
  options(keys, last.metrics);
  drawChart();
  drawTable(runs, keys);
  drawPc(runs, keys);
  root.dataset.fetches = ++fetches;
  root.dataset.ready = "true";
}

// The metric and group choices: the series these runs record; the keys that differ, and
// "everything but the seeds" (each setting's seeds averaged into one line).
function options(keys, metrics) {
  const fill = (select, items) => {
    const value = select.value;
    const fixed = [...select.options].filter((o) => o.dataset.fixed !== undefined);
    select.replaceChildren(...fixed, ...items.map(([v, t]) => el("option", { value: v, textContent: t })));
    if (![...select.options].some((o) => o.value === value)) select.append(el("option", { value, textContent: value }));
    select.value = value;
  };
  fill(controls.metric, metrics.map((m) => [m, m]));
  const notSeeds = keys.filter((k) => k.split(".").pop() !== "seed");
  const groups = [];
  if (notSeeds.length && notSeeds.length < keys.length) {
    groups.push([notSeeds.join(","), `everything but the seed (${notSeeds.join(", ")})`]);
  }
  groups.push(...keys.map((k) => [k, k]));
  fill(controls.group, groups);
}

// -- the chart ------------------------------------------------------------------------------
function drawChart() {
  const { lines } = last;
  const band = controls.band.value, grouped = last.group.length > 0;
  const alpha = Number(controls.smooth.value), log = controls.log.checked;
  const keep = (v) => (typeof v !== "number" || (log && !(v > 0)) ? null : v);
  const showBand = grouped && band !== "none"; // a group of one run: its line, no band
  const tables = lines.map((line) => {
    const xs = controls.x.value === "time" ? line.t : line.step;
    const mean = ema(line.mean, alpha);
    const cols = [xs, mean.map(keep)];
    if (showBand) {
      const { min = null, max = null, std = null } = line;
      const none = line.mean.map(() => null);
      const lo = !std ? none : band === "std" ? line.mean.map((m, i) => m - std[i]) : min;
      const hi = !std ? none : band === "std" ? line.mean.map((m, i) => m + std[i]) : max;
      cols.push(ema(lo, alpha).map(keep), ema(hi, alpha).map(keep));
    }
    // uPlot.join wants each table's x ascending and known
    const order = xs.map((_, i) => i).filter((i) => typeof xs[i] === "number");
    return cols.map((c) => order.map((i) => c[i]));
  });
  const data = tables.length ? uPlot.join(tables) : [[]];
  const series = [{ label: controls.x.value === "time" ? "seconds" : "step" }];
  const bands = [];
  lines.forEach((line, i) => {
    const label = grouped ? `${line.key} (${line.runs.length} run${line.runs.length > 1 ? "s" : ""})` : line.key;
    series.push({ label, stroke: color(i), width: 2, spanGaps: true, points: { show: false } });
    if (showBand) {
      const edge = { label: `${line.key} band`, stroke: color(i), width: 0.5, spanGaps: true,
        points: { show: false }, alpha: 0.5 };
      series.push({ ...edge }, { ...edge });
      const n = series.length;
      bands.push({ series: [n - 1, n - 2], fill: `${color(i)}2e` });
    }
  });
  const shape = JSON.stringify([series.map((s) => s.label), log, controls.x.value, showBand]);
  if (plot && shape === plotShape) {
    plot.setData(data);
  } else {
    plot?.destroy();
    plot = makeChart(chartEl, {
      height: 340,
      scales: { y: log ? { distr: 3 } : {} },
      axes: [{ label: controls.x.value === "time" ? "seconds since start" : "step" },
        { label: controls.metric.value }],
      series, bands,
    }, data);
    plotShape = shape;
    // The band edges have no legend rows of their own: the group's line names the band.
    const rows = plot.root.querySelectorAll(".u-legend .u-series");
    series.forEach((s, i) => { if (s.label?.endsWith(" band") && rows[i]) rows[i].style.display = "none"; });
  }
  chartEl.dataset.series = JSON.stringify(lines.map((l) => ({
    label: l.key, runs: l.runs.length, band: showBand, points: l.step.length })));
  $("compare-note").textContent = grouped
    ? `Each line is the mean of its group's runs at each step; the band spans their ${band === "std" ? "mean ± std" : "min to max"}.`
    : "";
}

// -- the hyperparameter table and the config that is the same ------------------------------
function drawTable(runs, keys) {
  const table = $("compare-table");
  const short = shortKeys(keys);
  const groupOf = new Map(last.lines.flatMap((l, i) => l.runs.map((id) => [id, i])));
  const heads = ["", "run", "tags", "state", "step", ...keys.map((k) => short.get(k)),
    ...FIGURES.map((f) => f[2]), "duration"];
  table.querySelector("thead").replaceChildren(el("tr", {}, ...heads.map((h, i) => {
    const th = el("th", { textContent: h });
    if (keys[i - 5]) th.title = keys[i - 5];
    return th;
  })));
  table.querySelector("tbody").replaceChildren(...runs.map((r) => {
    const tr = el("tr");
    tr.dataset.runId = r.id;
    const swatch = el("td", { className: "group-swatch" });
    swatch.style.background = color(groupOf.get(r.id) ?? 0);
    const cells = [
      ["run", el("a", { href: `/runs/${r.id}`, textContent: r.name })],
      ["tags", r.tags.join(", ")],
      ["state", r.state],
      ["step", `${r.step} / ${r.total_steps}`],
      ...keys.map((k) => [short.get(k), showValue(configValue(r.config, k))]),
    ];
    tr.append(swatch, ...cells.map(([label, v]) => {
      const td = el("td", {}, v);
      td.dataset.label = label;
      if (label === "run") td.dataset.col = "name";
      return td;
    }));
    for (const [metric, field, label, hook] of FIGURES) {
      const td = el("td", { className: "num", textContent: showMetric(metric, r.summary?.[metric]?.[field]) });
      td.dataset.final = hook;
      td.dataset.label = label;
      tr.append(td);
    }
    const td = el("td", { className: "num", textContent: showDuration(durationOf(r)) });
    td.dataset.label = "duration";
    tr.append(td);
    return tr;
  }));
  const flat = flatConfig(runs[0].config).filter(([k]) => !keys.includes(k));
  const same = $("same-keys");
  same.querySelector("summary").textContent = `The same in every run (${flat.length} settings)`;
  same.querySelector("dl").replaceChildren(...flat.map(([k, v]) =>
    el("div", {}, el("dt", { textContent: k }), el("dd", { textContent: showValue(v) }))));
}

function drawPc(runs, keys) {
  const [metric, field] = controls.pc.value.split(":");
  const groupOf = new Map(last.lines.flatMap((l, i) => l.runs.map((id) => [id, i])));
  const short = shortKeys(keys);
  const axes = [...keys.map((k) => ({ label: short.get(k), values: runs.map((r) => configValue(r.config, k)) })),
    { label: controls.pc.selectedOptions[0].textContent,
      values: runs.map((r) => r.summary?.[metric]?.[field] ?? null) }];
  drawParcoords($("parcoords"), axes,
    runs.map((r) => ({ id: r.id, name: r.name, color: color(groupOf.get(r.id) ?? 0) })));
}

// -- wiring ---------------------------------------------------------------------------------
if (root) {
  readUrl();
  for (const c of [controls.metric, controls.group, controls.x]) {
    c.addEventListener("change", () => { writeUrl(); refresh(); });
  }
  for (const c of [controls.band, controls.smooth, controls.log]) {
    c.addEventListener(c === controls.smooth ? "input" : "change", () => {
      writeUrl();
      if (last) drawChart();
    });
  }
  controls.pc.addEventListener("change", () => last && drawPc(last.runs, differingKeys(last.runs)));
  refresh();
  const status = $("compare-status");
  listStream((data) => {
    const gone = data.deleted.filter((id) => ids.includes(id));
    if (gone.length) {
      ids = ids.filter((id) => !gone.includes(id));
      errorEl.textContent = `deleted meanwhile: ${gone.join(", ")}`;
      writeUrl();
    }
    if (!ids.length) return;
    const seen = new Map((last?.runs || []).map((r) => [r.id, r.last_seq]));
    if (gone.length || data.runs.some((r) => seen.has(r.id) && seen.get(r.id) !== r.last_seq)) refresh();
  }, (s) => { status.textContent = s === "live" ? "live" : s; });
}
