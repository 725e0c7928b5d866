// Loss panel: train loss every step (raw, faint) with an EMA-smoothed line, test loss each
// epoch; x by step, epoch (fractional: step / the hello's steps_per_epoch, corrected by the
// events' epoch field) or wall time; log scale toggle. uPlot draws it (chart.js).
//
// Consumes `metrics` events (docs/events.md):
//   {"type": "metrics", "step": 17, "t": 1795387176.2, "data": {"epoch": 0, "train_loss": 0.31}}
//   {"type": "metrics", "step": 938, "data": {"epoch": 1, "test_loss": 0.12, "test_acc": 0.96}}
// Backend route for the same data: GET /api/runs/{id}/metrics?since=SEQ&names=...
//
// Rendering budget: the page batches events and draws on requestAnimationFrame; this panel
// keeps the points in a History (MAX_HELD at most: past that every other one goes and
// from then on only every 2nd, 4th, ... step is kept, evenly spaced, the latest always) and
// draws at most MAX_DRAWN of them, so a long run neither slows the page nor grows memory.
// Test hooks on the panel: data-points (train-loss points received), data-held (kept),
// data-drawn (on screen), data-draws (draw calls), data-x (x mode), data-x-last (the last
// point's x), data-x-distinct (distinct x values drawn), data-steps-per-epoch.
import { History, drawnRows, makeChart, line } from "./chart.js";

export const MAX_DRAWN = 4000; // points per series on screen
export const MAX_HELD = 1 << 18; // points kept in memory per series

const STEP = 0, TIME = 1, TRAIN = 2, SMOOTH = 3;

export default class LossPanel {
  constructor(el, hello) {
    this.el = el;
    el.hidden = false;
    this.train = new History(MAX_HELD, 4); // step, seconds since the first point, loss, smoothed
    this.test = new History(MAX_HELD, 2); // step, test loss
    this.ema = null; // the smoothed loss over every point received, thinned or not
    this.spe = hello?.steps_per_epoch || 1; // the server's count (none: one step an epoch)
    this.epochAt = null; // [step, epoch] of the last train point, to spot an epoch's end
    this.alpha = 0.9; this.log = false; this.xMode = "step"; this.acc = null;
    this.draws = 0;
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
  }

  add(e) {
    const d = e.data;
    if (typeof d.train_loss === "number") {
      if (this.t0 === null) this.t0 = e.t;
      const loss = d.train_loss;
      this.ema = this.ema === null ? loss : this.alpha * this.ema + (1 - this.alpha) * loss;
      // The epoch field counts completed epochs: where it ticks up from one step to the
      // next, that step is epoch * steps per epoch.
      if (this.epochAt && d.epoch > this.epochAt[1] && e.step === this.epochAt[0] + 1) {
        const spe = e.step / d.epoch;
        if (Number.isInteger(spe) && spe > 0) this.spe = spe;
      }
      this.epochAt = [e.step, d.epoch];
      this.train.add([e.step, e.t - this.t0, loss, this.ema]);
    }
    if (typeof d.test_loss === "number") this.test.add([e.step, d.test_loss]);
    if (typeof d.test_acc === "number") this.acc = d.test_acc;
  }

  // The slider changed: smooth again over the points held (evenly spaced `stride` steps
  // apart, so one held point weighs as much as `stride` received ones would).
  resmooth() {
    const { n, stride, cols } = this.train;
    const a = this.alpha ** stride;
    let prev = cols[TRAIN][0];
    for (let i = 0; i < n; i++) cols[SMOOTH][i] = prev = a * prev + (1 - a) * cols[TRAIN][i];
    this.ema = n ? prev : null;
  }

  rebuild() {
    this.plot?.destroy();
    this.plot = makeChart(this.chartEl, {
      height: 260,
      scales: { y: this.log ? { distr: 3 } : {} },
      axes: [{ label: this.xMode }, { label: "loss" }],
      series: [
        {},
        { ...line("train (raw)", 0, 1), stroke: "rgba(31,119,180,0.25)" },
        line("train", 0),
        { label: "test", stroke: "#d62728", width: 2, spanGaps: true },
      ],
    }, [[], [], [], []]);
    this.draw();
  }

  x(i) {
    const c = this.train.cols;
    if (this.xMode === "time") return c[TIME][i];
    if (this.xMode === "epoch") return c[STEP][i] / this.spe; // fractional: within an epoch too
    return c[STEP][i];
  }

  // Downsampled for display only: the last point of each of at most MAX_DRAWN buckets, and
  // the last test loss that falls in a bucket's steps.
  draw() {
    const { n, cols } = this.train;
    const xs = [], raw = [], sm = [], test = [];
    const keep = (v) => (this.log && !(v > 0) ? null : v);
    const tSteps = this.test.cols[0], tVals = this.test.cols[1];
    let t = 0;
    while (t < this.test.n && n && tSteps[t] < cols[STEP][0]) t++;
    for (const last of drawnRows(n, MAX_DRAWN)) {
      xs.push(this.x(last)); raw.push(keep(cols[TRAIN][last])); sm.push(keep(cols[SMOOTH][last]));
      let v = null;
      for (; t < this.test.n && tSteps[t] <= cols[STEP][last]; t++) v = tVals[t];
      test.push(keep(v));
    }
    this.plot.setData([xs, raw, sm, test]);
    Object.assign(this.el.dataset, {
      points: this.train.count, held: n, drawn: xs.length, draws: ++this.draws, x: this.xMode,
      xLast: xs.length ? xs[xs.length - 1] : "", xDistinct: new Set(xs).size,
      stepsPerEpoch: this.spe,
    });
    this.readout.textContent = n === 0 ? "" :
      `step ${this.train.last(STEP)} · loss ${this.train.last(TRAIN).toPrecision(4)}` +
      (this.acc === null ? "" : ` · test acc ${(100 * this.acc).toFixed(1)}%`);
  }
}
