// Weights panel: each weight's trajectory for small models (the napkin neuron's four weights
// walking to 0.25, drawn with the target); per-layer histograms over time as a heat map for
// bigger ones.
//
// Consumes (docs/events.md):
//   {"type": "weights", "step": 5, "data": {"params": {"w0": [0.61], ...}, "shapes": {...}}}
//   {"type": "histograms", "step": 50, "data": {"layers": {"0.weight": {"edges": [...],
//     "counts": [...], "norm": 3.2, "sample": [...]}}}}
// Backend route: GET /api/runs/{id}/snapshots/weights|histograms?at=STEP
import uPlot from "/static/vendor/uPlot.esm.js";

const MAX_SERIES = 24;
const MAX_COLUMNS = 300;
const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
  "#7f7f7f", "#bcbd22", "#17becf"];

export class WeightsPanel {
  types = ["weights", "histograms"];

  constructor(el, hello) {
    this.el = el;
    this.body = el.querySelector(".panel-body");
    const ds = hello.config.dataset;
    // The first article's neuron averages size*size pixels: every weight should reach 1/size².
    this.target = ds.name === "rectangles" && hello.config.model.hidden.length === 0
      ? 1 / (ds.size * ds.size) : null;
    this.steps = []; this.names = null; this.values = [];
    this.hist = new Map(); // layer -> {edges, columns: [counts...], steps: []}
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
        this.values = this.names.map(() => []);
      }
      this.steps.push(e.step);
      this.names.forEach((_, i) => this.values[i].push(flat[i]));
    } else {
      for (const [layer, h] of Object.entries(e.data.layers)) {
        const entry = this.hist.get(layer) || { edges: h.edges, columns: [], steps: [], norm: 0 };
        entry.columns.push(h.counts);
        entry.steps.push(e.step);
        if (entry.columns.length > 2 * MAX_COLUMNS) { // thin out: memory stays bounded
          entry.columns = entry.columns.filter((_, i) => i % 2 === 1);
          entry.steps = entry.steps.filter((_, i) => i % 2 === 1);
        }
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
      const series = [{}, ...this.names.map((n, i) => ({
        label: n, stroke: COLORS[i % COLORS.length], width: 2, points: { show: false } }))];
      const data = [[], ...this.names.map(() => [])];
      if (this.target !== null) {
        series.push({ label: `target ${this.target}`, stroke: "#000", dash: [6, 4], width: 1,
          points: { show: false } });
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
      this.plot = new uPlot({ width: Math.max(300, this.body.clientWidth || 560), height: 240,
        legend: { show: !many },
        scales: { x: { time: false } }, axes: [{ label: "step" }, { label: "weight" }], series },
      data, this.chartEl);
      new ResizeObserver(() => {
        const width = Math.max(300, this.chartEl.clientWidth);
        if (Math.abs(width - this.plot.width) > 4) this.plot.setSize({ width, height: 240 });
      }).observe(this.chartEl);
    }
    const data = [this.steps, ...this.values];
    if (this.target !== null) data.push(this.steps.map(() => this.target));
    this.plot.setData(data);
    this.legend.replaceChildren(...this.names.map((n, i) => {
      const tr = document.createElement("tr");
      const v = this.values[i][this.values[i].length - 1];
      tr.innerHTML = `<th></th><td class="num" data-weight=""></td>`;
      tr.firstChild.textContent = n;
      tr.lastChild.dataset.weight = n;
      tr.lastChild.textContent = v.toFixed(4);
      return tr;
    }));
    this.el.dataset.step = this.steps[this.steps.length - 1];
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
      canvas.nextSibling.textContent =
        `${layer}: histogram over time (x: step ${h.steps[0]}…${h.steps[h.steps.length - 1]}, ` +
        `y: weight ${h.edges[0].toFixed(2)}…${h.edges[h.edges.length - 1].toFixed(2)}), norm ${h.norm.toFixed(3)}`;
      const ctx = canvas.getContext("2d");
      const cols = h.columns.length, bins = h.columns[0].length;
      const w = canvas.width / cols, hh = canvas.height / bins;
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      h.columns.forEach((counts, c) => {
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
