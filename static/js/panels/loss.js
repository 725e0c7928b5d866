// Loss panel: train loss every step (raw, faint) with an EMA-smoothed line, test loss each
// epoch; x by step, epoch or wall time; log scale toggle. uPlot draws it.
//
// Consumes `metrics` events (docs/events.md):
//   {"type": "metrics", "step": 17, "t": 1795387176.2, "data": {"epoch": 0, "train_loss": 0.31}}
//   {"type": "metrics", "step": 938, "data": {"epoch": 1, "test_loss": 0.12, "test_acc": 0.96}}
// Backend route for the same data: GET /api/runs/{id}/metrics?since=SEQ&names=...
import uPlot from "/static/vendor/uPlot.esm.js";

const MAX_DRAWN = 4000; // points per series on screen; every point is kept in memory

export class LossPanel {
  types = ["metrics"];

  constructor(el, hello) {
    this.el = el;
    el.hidden = false;
    this.steps = []; this.times = []; this.epochs = []; this.train = []; this.smooth = [];
    this.test = new Map(); // step -> test loss
    this.alpha = 0.9; this.log = false; this.xMode = "step"; this.acc = null;
    const body = el.querySelector(".panel-body");
    body.innerHTML = `
      <div class="toolbar">
        <label>smoothing <input type="range" min="0" max="0.99" step="0.01" value="0.9" name="smooth"></label>
        <label>x <select name="x"><option>step</option><option>epoch</option><option>time</option></select></label>
        <label><input type="checkbox" name="log"> log scale</label>
        <span class="readout"></span>
      </div><div class="chart"></div>`;
    this.chartEl = body.querySelector(".chart");
    this.readout = body.querySelector(".readout");
    body.querySelector("[name=smooth]").addEventListener("input", (e) => {
      this.alpha = Number(e.target.value);
      this.resmooth();
      this.draw();
    });
    body.querySelector("[name=x]").addEventListener("change", (e) => {
      this.xMode = e.target.value;
      this.rebuild();
    });
    body.querySelector("[name=log]").addEventListener("change", (e) => {
      this.log = e.target.checked;
      this.rebuild();
    });
    this.t0 = null;
    this.rebuild();
    // Panels share the grid: follow the width the layout gives us.
    new ResizeObserver(() => {
      const width = Math.max(300, this.chartEl.clientWidth);
      if (this.plot && Math.abs(width - this.plot.width) > 4) this.plot.setSize({ width, height: 260 });
    }).observe(this.chartEl);
  }

  add(e) {
    const d = e.data;
    if (typeof d.train_loss === "number") {
      if (this.t0 === null) this.t0 = e.t;
      this.steps.push(e.step);
      this.times.push(e.t - this.t0);
      this.epochs.push(d.epoch);
      this.train.push(d.train_loss);
      const prev = this.smooth.length ? this.smooth[this.smooth.length - 1] : d.train_loss;
      this.smooth.push(this.alpha * prev + (1 - this.alpha) * d.train_loss);
    }
    if (typeof d.test_loss === "number") this.test.set(e.step, d.test_loss);
    if (typeof d.test_acc === "number") this.acc = d.test_acc;
  }

  resmooth() {
    let prev = this.train[0];
    this.smooth = this.train.map((v) => (prev = this.alpha * prev + (1 - this.alpha) * v));
  }

  rebuild() {
    this.plot?.destroy();
    const width = Math.max(300, this.chartEl.clientWidth || 560);
    this.plot = new uPlot({
      width, height: 260,
      scales: { x: { time: false }, y: this.log ? { distr: 3 } : {} },
      axes: [{ label: this.xMode }, { label: "loss" }],
      series: [
        {},
        { label: "train (raw)", stroke: "rgba(31,119,180,0.25)", width: 1, points: { show: false } },
        { label: "train", stroke: "#1f77b4", width: 2, points: { show: false } },
        { label: "test", stroke: "#d62728", width: 2, spanGaps: true },
      ],
    }, [[], [], [], []], this.chartEl);
    this.draw();
  }

  x(i) {
    if (this.xMode === "time") return this.times[i];
    if (this.xMode === "epoch") return this.epochs[i] + 0; // completed epochs at that step
    return this.steps[i];
  }

  draw() {
    const n = this.steps.length;
    const stride = Math.max(1, Math.ceil(n / MAX_DRAWN));
    const xs = [], raw = [], sm = [], test = [];
    const keep = (v) => (this.log && !(v > 0) ? null : v);
    for (let i = 0; i < n; i += stride) {
      const last = Math.min(i + stride, n) - 1;
      xs.push(this.x(last)); raw.push(keep(this.train[last])); sm.push(keep(this.smooth[last]));
      let t = null;
      for (let j = i; j <= last; j++) if (this.test.has(this.steps[j])) t = this.test.get(this.steps[j]);
      test.push(keep(t));
    }
    this.plot.setData([xs, raw, sm, test]);
    this.el.dataset.points = n;
    const last = n ? this.train[n - 1] : null;
    this.readout.textContent = last === null ? "" :
      `step ${this.steps[n - 1]} · loss ${last.toPrecision(4)}` +
      (this.acc === null ? "" : ` · test acc ${(100 * this.acc).toFixed(1)}%`);
  }
}
