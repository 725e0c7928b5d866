// Loss panel: train loss every step (raw, faint) with an EMA-smoothed line, test loss each
// epoch; x by step, epoch (fractional: step / steps per epoch) or wall time; log scale
// toggle. uPlot draws it.
//
// Consumes `metrics` events (docs/events.md):
//   {"type": "metrics", "step": 17, "t": 1795387176.2, "data": {"epoch": 0, "train_loss": 0.31}}
//   {"type": "metrics", "step": 938, "data": {"epoch": 1, "test_loss": 0.12, "test_acc": 0.96}}
// Backend route for the same data: GET /api/runs/{id}/metrics?since=SEQ&names=...
//
// Rendering budget: the page batches events and draws on requestAnimationFrame; this panel
// keeps the points in typed arrays (MAX_HELD at most: past that every other one goes and
// from then on only every 2nd, 4th, ... step is kept, evenly spaced, the latest always) and
// draws at most MAX_DRAWN of them, so a long run neither slows the page nor grows memory.
// Test hooks on the panel: data-points (train-loss points received), data-held (kept),
// data-drawn (on screen), data-draws (draw calls), data-x (x mode), data-x-last (the last
// point's x), data-x-distinct (distinct x values drawn), data-steps-per-epoch.
import uPlot from "/static/vendor/uPlot.esm.js";

export const MAX_DRAWN = 4000; // points per series on screen
export const MAX_HELD = 1 << 18; // points kept in memory per series

const MNIST_TRAIN = 60000;

// Columns of numbers in Float64Arrays that double as they fill, up to MAX_HELD rows. Every
// stride-th row added is kept; the latest row always, as a tail the next one replaces.
class Columns {
  constructor(width, size = 1024) {
    this.cols = Array.from({ length: width }, () => new Float64Array(size));
    this.n = 0; // rows held
    this.count = 0; // rows added
    this.stride = 1;
    this.tail = false;
  }

  add(...values) {
    if (this.tail) this.n--;
    if (this.n === this.cols[0].length) this.grow();
    values.forEach((v, k) => { this.cols[k][this.n] = v; });
    this.n++;
    this.tail = this.count % this.stride !== 0;
    this.count++;
    if (this.n >= MAX_HELD) this.thin();
  }

  grow() {
    const size = Math.min(MAX_HELD, 2 * this.cols[0].length);
    this.cols = this.cols.map((c) => {
      const bigger = new Float64Array(size);
      bigger.set(c);
      return bigger;
    });
  }

  thin() {
    const last = this.n - 1;
    let j = 0;
    for (let i = 0; i < this.n; i++) {
      if (i % 2 !== 0 && i !== last) continue;
      for (const c of this.cols) c[j] = c[i];
      j++;
    }
    this.n = j;
    this.stride *= 2;
    this.tail = (this.count - 1) % this.stride !== 0;
  }

  last(k) {
    return this.cols[k][this.n - 1];
  }
}

// Steps in one pass over the training set, as server/config.py's steps_per_epoch counts it;
// the metrics events' epoch field corrects it when an epoch ends (see `add`).
export function stepsPerEpoch(config) {
  if (!config || !config.batch_size) return 1; // full batch: one step per epoch
  const ds = config.dataset || {};
  const n = ds.name === "tiny" ? 4
    : ds.name === "mnist" ? (ds.mnist_train_limit || MNIST_TRAIN) : ds.n;
  return n > 0 ? Math.ceil(n / config.batch_size) : 1;
}

const STEP = 0, TIME = 1, TRAIN = 2, SMOOTH = 3;

export class LossPanel {
  types = ["metrics"];

  constructor(el, hello) {
    this.el = el;
    el.hidden = false;
    this.train = new Columns(4); // step, seconds since the first point, loss, smoothed
    this.test = new Columns(2, 64); // step, test loss
    this.ema = null; // the smoothed loss over every point received, thinned or not
    this.spe = stepsPerEpoch(hello?.config);
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
      const loss = d.train_loss;
      this.ema = this.ema === null ? loss : this.alpha * this.ema + (1 - this.alpha) * loss;
      // The epoch field counts completed epochs: where it ticks up from one step to the
      // next, that step is epoch * steps per epoch.
      if (this.epochAt && d.epoch > this.epochAt[1] && e.step === this.epochAt[0] + 1) {
        const spe = e.step / d.epoch;
        if (Number.isInteger(spe) && spe > 0) this.spe = spe;
      }
      this.epochAt = [e.step, d.epoch];
      this.train.add(e.step, e.t - this.t0, loss, this.ema);
    }
    if (typeof d.test_loss === "number") this.test.add(e.step, d.test_loss);
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
    const c = this.train.cols;
    if (this.xMode === "time") return c[TIME][i];
    if (this.xMode === "epoch") return c[STEP][i] / this.spe; // fractional: within an epoch too
    return c[STEP][i];
  }

  // Downsampled for display only: the last point of each of at most MAX_DRAWN buckets, and
  // the last test loss that falls in a bucket's steps.
  draw() {
    const { n, cols } = this.train;
    const stride = Math.max(1, Math.ceil(n / MAX_DRAWN));
    const xs = [], raw = [], sm = [], test = [];
    const keep = (v) => (this.log && !(v > 0) ? null : v);
    const tSteps = this.test.cols[0], tVals = this.test.cols[1];
    let t = 0;
    while (t < this.test.n && n && tSteps[t] < cols[STEP][0]) t++;
    for (let i = 0; i < n; i += stride) {
      const last = Math.min(i + stride, n) - 1;
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
