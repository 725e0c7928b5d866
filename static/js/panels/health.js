// Health panel: per-parameter gradient norm and update/weight ratio (healthy around 1e-3),
// and the share of dead ReLU units per module, over steps (uPlot, log scale for the first
// two), with the latest record as a table below.
//
// Consumes (docs/events.md):
//   {"type": "health", "step": 50, "data": {"grad_norm": {"0.weight": 0.4},
//     "update_ratio": {"0.weight": 0.001}, "dead_relu": {"1": 0.05}}}
// Backend route: GET /api/runs/{id}/snapshots/health?at=STEP
// A NaN/Inf failure (a `state` event "failed" naming the op) is shown by the page's banner.
// Test hooks: the panel's data-records (events seen), data-stored (records kept) and
// data-step; each chart's div has data-chart (the key), data-series and data-points.
import uPlot from "/static/vendor/uPlot.esm.js";

// Records kept: at twice this many every other one is dropped and from then on only every
// second record is kept (then every fourth, ...), so a long run keeps its whole history,
// evenly spaced, at a coarser grain, and memory stays bounded.
export const MAX_STORED = 2000;
export const MAX_SERIES = 10; // lines per chart; the table lists every parameter
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];
const CHARTS = [
  { key: "grad_norm", label: "gradient norm", log: true },
  { key: "update_ratio", label: "update / weight", log: true, ref: 1e-3 },
  { key: "dead_relu", label: "dead ReLU %", log: false, scale: 100 },
];
const HEIGHT = 190;

function fmt(v) {
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4 ? v.toFixed(4) : v.toExponential(2);
}

// Log-axis ticks span decades: 0.001 reads fine, 1e-7 is shorter than 0.0000001.
function tick(v) {
  if (v === null) return "";
  return v >= 1e-3 && v < 1e4 ? String(Number(v.toPrecision(3))) : v.toExponential(0);
}

// Non-finite values arrive as the strings "nan", "inf", "-inf": no point on the chart.
function finite(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function cell(tag, text, cls = "") {
  const c = document.createElement(tag);
  c.textContent = text;
  if (cls) c.className = cls;
  return c;
}

export class HealthPanel {
  types = ["health"];

  constructor(el) {
    this.el = el;
    this.body = el.querySelector(".panel-body");
    this.latest = null;
    this.records = 0;
    this.stride = 1; // records per kept point
    this.tail = false; // the last point is the latest record, off the stride
    this.steps = [];
    this.series = Object.fromEntries(CHARTS.map((c) => [c.key, new Map()])); // name -> values
    this.hidden = Object.fromEntries(CHARTS.map((c) => [c.key, new Set()])); // past MAX_SERIES
    this.plots = {}; // key -> {plot, div, caption, n}
    this.chartsEl = cell("div", "", "health-charts");
    this.tableEl = cell("div", "", "health-latest");
    this.body.append(this.chartsEl, this.tableEl);
  }

  add(e) {
    this.el.hidden = false;
    this.latest = e;
    // Every stride-th record is kept; the latest one too, until the next replaces it.
    if (this.tail) this.pop();
    this.tail = this.records % this.stride !== 0;
    this.records++;
    const n = this.steps.length;
    this.steps.push(e.step);
    for (const { key } of CHARTS) {
      const m = this.series[key];
      for (const [name, v] of Object.entries(e.data[key] || {})) {
        if (!m.has(name)) {
          if (m.size >= MAX_SERIES) { this.hidden[key].add(name); continue; }
          m.set(name, new Array(n).fill(null)); // a name that shows up late: gap before
        }
        m.get(name).push(finite(v));
      }
      for (const vs of m.values()) if (vs.length === n) vs.push(null); // a name gone missing
    }
    if (this.steps.length >= 2 * MAX_STORED) this.thin();
  }

  pop() {
    this.steps.pop();
    for (const m of Object.values(this.series)) for (const vs of m.values()) vs.pop();
  }

  // Every other kept record goes, the stride doubles: the history stays evenly spaced.
  // The latest record stays, as the tail if it is off the new stride.
  thin() {
    const last = this.steps.length - 1;
    const keep = (_, i) => i % 2 === 0 || i === last;
    this.steps = this.steps.filter(keep);
    for (const m of Object.values(this.series)) {
      for (const [name, vs] of m) m.set(name, vs.filter(keep));
    }
    this.stride *= 2;
    this.tail = (this.records - 1) % this.stride !== 0;
  }

  draw() {
    if (!this.latest) return;
    for (const chart of CHARTS) this.drawChart(chart);
    this.drawTable();
    Object.assign(this.el.dataset, { records: this.records, stored: this.steps.length,
      step: this.latest.step });
  }

  drawChart(chart) {
    const m = this.series[chart.key];
    if (!m.size) return;
    const names = [...m.keys()];
    let entry = this.plots[chart.key];
    if (!entry || entry.n !== names.length) entry = this.plots[chart.key] = this.makeChart(chart, names);
    const data = [this.steps];
    for (const vs of m.values()) {
      // A log axis has no place for 0; shares are drawn as percentages.
      data.push(vs.map((v) => (v === null || (chart.log && !(v > 0)) ? null : v * (chart.scale ?? 1))));
    }
    if (chart.ref) data.push(this.steps.map(() => chart.ref));
    entry.plot.setData(data);
    entry.div.dataset.points = this.steps.length;
    const more = this.hidden[chart.key].size ? ` (the first ${names.length}; the table has them all)` : "";
    entry.caption.textContent = `${chart.label} over steps${chart.log ? ", log scale" : ""}${more}`;
  }

  makeChart(chart, names) {
    const fig = document.createElement("figure");
    const caption = cell("figcaption", "");
    const div = cell("div", "", "chart health-chart");
    div.dataset.chart = chart.key;
    div.dataset.series = names.length;
    fig.append(caption, div);
    const old = this.plots[chart.key];
    if (old) { // a new name showed up: a new chart in the old one's place
      old.resize.disconnect();
      old.plot.destroy();
      old.fig.replaceWith(fig);
    } else {
      this.chartsEl.append(fig);
    }
    const series = [{}, ...names.map((name, i) => ({
      label: chart.key === "dead_relu" ? `ReLU ${name}` : name,
      stroke: COLORS[i % COLORS.length], width: 1.5, points: { show: false },
    }))];
    if (chart.ref) {
      series.push({ label: `${chart.ref} (typical)`, stroke: "#000", dash: [6, 4], width: 1,
        points: { show: false } });
    }
    const plot = new uPlot({
      width: Math.max(300, this.body.clientWidth || 560), height: HEIGHT,
      scales: { x: { time: false }, y: chart.log ? { distr: 3 } : { range: [0, 100] } },
      axes: [{ label: "step" }, { label: chart.label, size: 60,
        values: chart.log ? (u, vals) => vals.map(tick) : undefined }],
      series,
    }, [[], ...series.slice(1).map(() => [])], div);
    const resize = new ResizeObserver(() => {
      const width = Math.max(300, div.clientWidth);
      if (Math.abs(width - plot.width) > 4) plot.setSize({ width, height: HEIGHT });
    });
    resize.observe(div);
    return { plot, fig, div, caption, resize, n: names.length };
  }

  drawTable() {
    const { grad_norm: g = {}, update_ratio: u = {}, dead_relu: d = {} } = this.latest.data;
    const head = document.createElement("tr");
    head.append(cell("th", "parameter"), cell("th", "grad norm"), cell("th", "update/weight"));
    const rows = Object.keys(g).map((name) => {
      const ratio = u[name];
      const warn = typeof ratio === "number" && (ratio > 1e-1 || ratio < 1e-6) ? " warn" : "";
      const tr = document.createElement("tr");
      tr.append(cell("th", name), cell("td", fmt(g[name]), "num"),
        cell("td", ratio === undefined ? "" : fmt(ratio), `num${warn}`));
      return tr;
    });
    const table = document.createElement("table");
    const thead = document.createElement("thead");
    const tbody = document.createElement("tbody");
    thead.append(head);
    tbody.append(...rows);
    table.append(thead, tbody);
    const parts = [cell("p", `as of step ${this.latest.step}`, "muted"), table];
    const dead = Object.entries(d).map(([m, f]) => {
      const tr = document.createElement("tr");
      const share = typeof f === "number" ? `${(100 * f).toFixed(1)}% dead` : String(f);
      tr.append(cell("th", `ReLU ${m}`), cell("td", share, `num${f > 0.5 ? " warn" : ""}`));
      return tr;
    });
    if (dead.length) {
      const t = document.createElement("table");
      const b = document.createElement("tbody");
      b.append(...dead);
      t.append(b);
      parts.push(t);
    }
    this.tableEl.replaceChildren(...parts);
  }
}
