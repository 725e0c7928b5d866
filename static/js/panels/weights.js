// Weights panel: each weight's trajectory for small models (the napkin neuron's four weights
// walking to 0.25, drawn with the target); per-layer histograms over time as a heat map for
// bigger ones.
//
// Consumes (docs/events.md):
//   {"type": "weights", "step": 5, "data": {"params": {"w0": [0.61], ...}, "shapes": {...}}}
//   {"type": "histograms", "step": 50, "data": {"layers": {"0.weight": {"edges": [...],
//     "counts": [...], "norm": 3.2, "sample": [...]}}}}
// Backend route: GET /api/runs/{id}/snapshots/weights|histograms?at=STEP
// Both histories are chart.js Histories: bounded, the newest record always shown.
// Test hooks: the panel's data-step and data-points (trajectory points held); each heat map's
// canvas has data-layer, data-columns (columns held) and data-last-step (its newest column).
import { History, line, makeChart, reference } from "./chart.js";

const MAX_SERIES = 24;
export const MAX_POINTS = 2000; // trajectory points held: at twice this many, thinned
export const MAX_COLUMNS = 300; // heat-map columns held per layer: at twice this many, thinned

export default class WeightsPanel {
  constructor(el, hello) {
    this.el = el;
    this.body = el.querySelector(".panel-body");
    const ds = hello.config.dataset;
    // The first article's neuron averages size*size pixels: every weight should reach 1/size².
    this.target = ds.name === "rectangles" && hello.config.model.hidden.length === 0
      ? 1 / (ds.size * ds.size) : null;
    this.names = null;
    this.trajectory = null; // History: column 0 the step, then one per weight shown
    this.hist = new Map(); // layer -> {edges, norm, history: History of [step, counts]}
  }

  add(e) {
    this.el.hidden = false;
    if (e.type === "weights") {
      const flat = [];
      const names = [];
      for (const [name, vals] of Object.entries(e.data.params)) {
        vals.forEach((v, i) => { names.push(vals.length > 1 ? `${name}[${i}]` : name); flat.push(v); });
      }
      if (!this.names) {
        this.names = names.slice(0, MAX_SERIES);
        this.trajectory = new History(2 * MAX_POINTS, 1 + this.names.length);
      }
      this.trajectory.add([e.step, ...flat.slice(0, this.names.length)]);
    } else {
      for (const [layer, h] of Object.entries(e.data.layers)) {
        const entry = this.hist.get(layer) ||
          { edges: h.edges, norm: 0, history: new History(2 * MAX_COLUMNS, 2) };
        entry.history.add([e.step, h.counts]);
        entry.norm = h.norm;
        this.hist.set(layer, entry);
      }
    }
  }

  draw() {
    if (this.names) this.drawTrajectories();
    if (this.hist.size) this.drawHeatmaps();
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
    this.legend.replaceChildren(...this.names.map((n, i) => {
      const tr = document.createElement("tr");
      const v = this.trajectory.last(i + 1);
      tr.innerHTML = `<th></th><td class="num" data-weight=""></td>`;
      tr.firstChild.textContent = n;
      tr.lastChild.dataset.weight = n;
      tr.lastChild.textContent = v.toFixed(4);
      return tr;
    }));
    this.el.dataset.step = this.trajectory.last(0);
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
    }
  }
}
