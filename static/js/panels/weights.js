// Weights panel: each weight's trajectory for small models (the napkin neuron's four weights
// walking to 0.25, drawn with the target); per-layer histograms over time as a heat map for
// bigger ones.
//
// Consumes (docs/events.md):
//   {"type": "weights", "step": 5, "data": {"params": {"w0": [0.61], ...}, "shapes": {...}}}
//   {"type": "histograms", "step": 50, "data": {"layers": {"0.weight": {"edges": [...],
//     "counts": [...], "norm": 3.2, "sample": [...]}}}}
// Backend route: GET /api/runs/{id}/snapshots/weights|histograms?at=STEP
// Both histories are chart.js Histories: bounded, the newest record always shown. The
// trajectories start from the websocket hello's history (`weight/<name>` and
// `weight/<name>[i]` series, the first 24 weights: each bucket's last value) and grow with
// live events; the table is the shown frame's weights (frame.js), and a scrubbed panel marks
// the frame's step on the chart and the heat maps.
// Test hooks: the panel's data-step and data-points (trajectory points held); each heat map's
// canvas has data-layer, data-columns (columns held) and data-last-step (its newest column).
import { FramePanel } from "./frame.js";
import { CHART_EVERY, History, alignSeries, line, makeChart, reference } from "./chart.js";

const MAX_SERIES = 24;
export const MAX_POINTS = 2000; // trajectory points held: at twice this many, thinned
export const MAX_COLUMNS = 300; // heat-map columns held per layer: at twice this many, thinned

// An event's weights flattened, by the names the history uses: `name`, or `name[i]` for
// a parameter of several values.
function flatten(params) {
  const out = new Map();
  for (const [name, vals] of Object.entries(params)) {
    vals.forEach((v, i) => out.set(vals.length > 1 ? `${name}[${i}]` : name, v));
  }
  return out;
}

export default class WeightsPanel extends FramePanel {
  constructor(el, hello) {
    super(el);
    const ds = hello.config.dataset;
    // The first article's neuron averages size*size pixels: every weight should reach 1/size².
    this.target = ds.name === "rectangles" && hello.config.model.hidden.length === 0
      ? 1 / (ds.size * ds.size) : null;
    this.names = null;
    this.trajectory = null; // History: column 0 the step, then one per weight shown
    this.hist = new Map(); // layer -> {edges, norm, history: History of [step, counts]}
    this.throttle = CHART_EVERY; // ms between live redraws (run.js): canvases are costly
  }

  start(names) {
    this.names = names.slice(0, MAX_SERIES);
    this.trajectory = new History(2 * MAX_POINTS, 1 + this.names.length);
  }

  add(e) {
    super.add(e);
    if (e.type === "weights") {
      const flat = flatten(e.data.params);
      if (!this.names) this.start([...flat.keys()]);
      this.trajectory.dropFrom(e.step); // a step recorded again replaces its row
      this.trajectory.add([e.step, ...this.names.map((n) => flat.get(n))]);
    } else {
      this.addHistograms(e);
    }
  }

  addHistograms(e) {
    for (const [layer, h] of Object.entries(e.data.layers)) {
      const entry = this.hist.get(layer) ||
        { edges: h.edges, norm: 0, history: new History(2 * MAX_COLUMNS, 2) };
      entry.history.dropFrom(e.step);
      entry.history.add([e.step, h.counts]);
      entry.norm = h.norm;
      this.hist.set(layer, entry);
    }
  }

  /** The hello's history: the weight series' buckets (their last values) as trajectory points. */
  seed(history) {
    const names = Object.keys(history?.series || {}).filter((n) => n.startsWith("weight/"));
    if (!names.length) return;
    this.start(names.map((n) => n.slice("weight/".length)));
    const { steps, cols } = alignSeries(history.series, names.slice(0, this.names.length));
    steps.forEach((step, i) => this.trajectory.add([step, ...cols.map((c) => c[i])]));
    this.el.hidden = false;
  }

  /** The hello's frame: the live state, and its histograms the heat maps' first column (the
   * history has no histogram series). */
  seedFrame(events, step) {
    super.seedFrame(events, step);
    for (const e of events) if (e.type === "histograms") this.addHistograms(e);
  }

  draw() {
    if (this.names) this.drawTrajectories();
    if (this.hist.size) this.drawHeatmaps();
    this.stamp();
  }

  drawTrajectories() {
    if (!this.plot) {
      const series = [{}, ...this.names.map((n, i) => line(n, i))];
      const data = [[], ...this.names.map(() => [])];
      if (this.target !== null) {
        series.push(reference(`target ${this.target}`));
        data.push([]);
      }
      this.chartEl = document.createElement("div");
      this.legend = document.createElement("table");
      this.legend.className = "weights-table";
      const many = this.names.length > 8;
      if (many) { // a long list of weights: latest values folded away, no chart legend
        const details = document.createElement("details");
        const summary = document.createElement("summary");
        summary.textContent = `latest values (first ${this.names.length} weights)`;
        details.append(summary, this.legend);
        this.body.append(this.chartEl, details);
      } else {
        this.body.append(this.chartEl, this.legend);
      }
      this.plot = makeChart(this.chartEl, { height: 240, legend: { show: !many },
        axes: [{ label: "step" }, { label: "weight" }], series }, data);
    }
    const data = [...this.trajectory.cols]; // step, then each weight
    if (this.target !== null) data.push(data[0].map(() => this.target));
    this.plot.setData(data);
    this.plot.setMarker(this.scrubbed ? this.step : null);
    // The table: the shown frame's weights (live: the latest event; before any, the
    // trajectory's newest point).
    const shown = this.get("weights");
    const flat = shown ? flatten(shown.data.params) : null;
    this.legend.replaceChildren(...this.names.map((n, i) => {
      const tr = document.createElement("tr");
      const v = flat ? flat.get(n) : this.trajectory.last(i + 1);
      tr.innerHTML = `<th></th><td class="num" data-weight=""></td>`;
      tr.firstChild.textContent = n;
      tr.lastChild.dataset.weight = n;
      tr.lastChild.textContent = typeof v === "number" ? v.toFixed(4) : String(v ?? "");
      return tr;
    }));
    if (this.step === null) this.el.dataset.step = this.trajectory.last(0);
    this.el.dataset.points = this.trajectory.n;
  }

  drawHeatmaps() {
    for (const [layer, h] of this.hist) {
      let canvas = this.body.querySelector(`canvas[data-layer="${CSS.escape(layer)}"]`);
      if (!canvas) {
        const fig = document.createElement("figure");
        canvas = document.createElement("canvas");
        canvas.dataset.layer = layer;
        canvas.width = 480; canvas.height = 120;
        const cap = document.createElement("figcaption");
        fig.append(canvas, cap);
        this.body.append(fig);
      }
      const [steps, columns] = h.history.cols;
      const last = steps[steps.length - 1];
      canvas.nextSibling.textContent =
        `${layer}: histogram over time (x: step ${steps[0]}…${last}, ` +
        `y: weight ${h.edges[0].toFixed(2)}…${h.edges[h.edges.length - 1].toFixed(2)}), norm ${h.norm.toFixed(3)}`;
      Object.assign(canvas.dataset, { columns: columns.length, lastStep: last });
      const ctx = canvas.getContext("2d");
      const cols = columns.length, bins = columns[0].length;
      const w = canvas.width / cols, hh = canvas.height / bins;
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      columns.forEach((counts, c) => {
        const max = Math.max(1, ...counts);
        counts.forEach((n, b) => {
          const a = Math.sqrt(n / max);
          ctx.fillStyle = `rgba(31,119,180,${a})`;
          ctx.fillRect(c * w, canvas.height - (b + 1) * hh, Math.ceil(w), Math.ceil(hh));
        });
      });
      if (this.scrubbed) { // the frame's column, marked like the charts' cursor
        const c = h.history.indexAt(this.step);
        if (c >= 0) {
          ctx.strokeStyle = "#111827";
          ctx.setLineDash([4, 3]);
          ctx.strokeRect(c * w + 0.5, 0.5, Math.max(1, Math.ceil(w) - 1), canvas.height - 1);
          ctx.setLineDash([]);
        }
      }
    }
  }
}
