// Health panel: per-parameter gradient norm and update/weight ratio (healthy around 1e-3),
// and the share of dead ReLU units per module, over steps (uPlot, log scale for the first
// two), with the latest record as a table below.
//
// Consumes (docs/events.md):
//   {"type": "health", "step": 50, "data": {"grad_norm": {"0.weight": 0.4},
//     "update_ratio": {"0.weight": 0.001}, "dead_relu": {"1": 0.05}}}
// Backend route: GET /api/runs/{id}/snapshots/health?at=STEP
// An update_ratio of null is unknown for that record (no update was seen): a gap in the line
// and a blank in the table, never a warning.
// A NaN/Inf failure (a `state` event "failed" naming the op) is shown by the page's banner.
// The charts start from the websocket hello's history (`grad_norm/<param>`,
// `update_ratio/<param>`, `dead_relu/<module>` series: each bucket's last value) and grow
// with live events; the table is the shown frame's record (frame.js), and a scrubbed panel
// marks the frame's step on the charts.
// Test hooks: the panel's data-records (records seen: seeded buckets and events),
// data-stored (records kept) and data-step; each chart's div has data-chart (the key),
// data-series, data-points and data-marker (the marked step, "" for none).
import { FramePanel } from "./frame.js";
import { CHART_EVERY, History, alignSeries, line, makeChart, reference } from "./chart.js";

// Records kept: at twice this many every other one is dropped and from then on only every
// second record is kept (then every fourth, ...), so a long run keeps its whole history,
// evenly spaced, at a coarser grain, and memory stays bounded (a chart.js History).
export const MAX_STORED = 2000;
export const MAX_SERIES = 10; // lines per chart; the table lists every parameter
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

export default class HealthPanel extends FramePanel {
  constructor(el) {
    super(el);
    this.history = new History(2 * MAX_STORED); // column 0: the step; then one per series
    this.columns = Object.fromEntries(CHARTS.map((c) => [c.key, new Map()])); // name -> column
    this.hidden = Object.fromEntries(CHARTS.map((c) => [c.key, new Set()])); // past MAX_SERIES
    this.plots = {}; // key -> {plot, div, caption, n}
    this.throttle = CHART_EVERY; // ms between live redraws (run.js): canvases are costly
    this.chartsEl = cell("div", "", "health-charts");
    this.tableEl = cell("div", "", "health-latest");
    this.body.append(this.chartsEl, this.tableEl);
  }

  // The column of a series, made on first sight (null: past MAX_SERIES, table only).
  column(key, name) {
    const m = this.columns[key];
    if (!m.has(name)) {
      if (m.size >= MAX_SERIES) { this.hidden[key].add(name); return null; }
      m.set(name, this.history.addColumn()); // a name that shows up late: gap before
    }
    return m.get(name);
  }

  add(e) {
    super.add(e);
    const row = [e.step]; // a name gone missing from this record: null, a gap in its line
    for (const { key } of CHARTS) {
      for (const [name, v] of Object.entries(e.data[key] || {})) {
        const k = this.column(key, name);
        if (k !== null) row[k] = finite(v);
      }
    }
    this.history.dropFrom(e.step); // a step recorded again replaces its row
    this.history.add(row);
  }

  /** The hello's history: each health series' buckets (their last values) as records. */
  seed(history) {
    const names = Object.keys(history?.series || {})
      .filter((n) => CHARTS.some(({ key }) => n.startsWith(`${key}/`)));
    if (!names.length) return;
    const cols = names.map((n) => {
      const slash = n.indexOf("/");
      return this.column(n.slice(0, slash), n.slice(slash + 1));
    });
    const { steps, cols: values } = alignSeries(history.series, names);
    steps.forEach((step, i) => {
      const row = [step];
      cols.forEach((k, j) => { if (k !== null) row[k] = finite(values[j][i]); });
      this.history.add(row);
    });
    this.el.hidden = false;
  }

  draw() {
    if (!this.history.n && !this.get("health")) return;
    for (const chart of CHARTS) this.drawChart(chart);
    this.drawTable();
    Object.assign(this.el.dataset, { records: this.history.count, stored: this.history.n });
    this.stamp();
  }

  drawChart(chart) {
    const m = this.columns[chart.key];
    if (!m.size) return;
    const names = [...m.keys()];
    let entry = this.plots[chart.key];
    if (!entry || entry.n !== names.length) entry = this.plots[chart.key] = this.makeChart(chart, names);
    const { cols } = this.history;
    const steps = cols[0];
    const data = [steps];
    for (const k of m.values()) {
      // A log axis has no place for 0; shares are drawn as percentages.
      data.push(cols[k].map((v) => (v === null || (chart.log && !(v > 0)) ? null : v * (chart.scale ?? 1))));
    }
    if (chart.ref) data.push(steps.map(() => chart.ref));
    entry.plot.setData(data);
    entry.plot.setMarker(this.scrubbed ? this.step : null);
    entry.div.dataset.points = steps.length;
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
      old.plot.destroy();
      old.fig.replaceWith(fig);
    } else {
      this.chartsEl.append(fig);
    }
    const series = [{}, ...names.map((name, i) =>
      line(chart.key === "dead_relu" ? `ReLU ${name}` : name, i, 1.5))];
    if (chart.ref) series.push(reference(`${chart.ref} (typical)`));
    const plot = makeChart(div, {
      height: HEIGHT,
      scales: { y: chart.log ? { distr: 3 } : { range: [0, 100] } },
      axes: [{ label: "step" }, { label: chart.label, size: 60,
        values: chart.log ? (u, vals) => vals.map(tick) : undefined }],
      series,
    }, [[], ...series.slice(1).map(() => [])]);
    return { plot, fig, div, caption, n: names.length };
  }

  drawTable() {
    const record = this.get("health");
    if (!record) {
      this.tableEl.replaceChildren(cell("p", `no health record by step ${this.step}`, "muted"));
      return;
    }
    const { grad_norm: g = {}, update_ratio: u = {}, dead_relu: d = {} } = record.data;
    const head = document.createElement("tr");
    head.append(cell("th", "parameter"), cell("th", "grad norm"), cell("th", "update/weight"));
    const rows = Object.keys(g).map((name) => {
      const ratio = u[name];
      const warn = typeof ratio === "number" && (ratio > 1e-1 || ratio < 1e-6) ? " warn" : "";
      const tr = document.createElement("tr");
      // null: unknown at this record (no update seen), shown blank, never a warning.
      tr.append(cell("th", name), cell("td", fmt(g[name]), "num"),
        cell("td", ratio === undefined || ratio === null ? "" : fmt(ratio), `num${warn}`));
      return tr;
    });
    const table = document.createElement("table");
    const thead = document.createElement("thead");
    const tbody = document.createElement("tbody");
    thead.append(head);
    tbody.append(...rows);
    table.append(thead, tbody);
    const parts = [cell("p", `as of step ${record.step}`, "muted"), table];
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
