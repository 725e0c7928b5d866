// Loss panel: train loss every step (raw, faint, with its min-max band) and an EMA-smoothed
// line, test loss each epoch; x by step, epoch (fractional: step / the hello's
// steps_per_epoch, corrected by the events' epoch field) or wall time; log scale toggle.
// uPlot draws it (chart.js).
//
// Consumes `metrics` events (docs/events.md):
//   {"type": "metrics", "step": 17, "t": 1795387176.2, "data": {"epoch": 0, "train_loss": 0.31}}
//   {"type": "metrics", "step": 938, "data": {"epoch": 1, "test_loss": 0.12, "test_acc": 0.96}}
// and, before them, the websocket hello's `history` (the run so far as at most 1,000 buckets a
// series, each with its min, max and last value): the band is each bucket's min..max, so a
// one-step spike stays visible however long the run; the raw line is each bucket's last.
// Backend routes: GET /api/runs/{id}/history?names=...&from=&to=&points= (zoom: drag across
// the chart to select steps, double-click or "Reset zoom" to return), /metrics for exports.
//
// Rendering budget: the page batches events and draws on requestAnimationFrame; this panel
// keeps the points in a History (MAX_HELD at most: past that every other one goes and
// from then on only every 2nd, 4th, ... step is kept, evenly spaced, the latest always) and
// draws at most MAX_DRAWN of them (each drawn point keeps its bucket's min and max), so a
// long run neither slows the page nor grows memory.
// Test hooks on the panel: data-step (the newest point's step, or the timeline's cursor step
// while scrubbed), data-points (train-loss points received: seeded buckets and events),
// data-held (kept), data-drawn (on screen), data-draws (draw calls), data-x (x mode),
// data-x-last (the last point's x), data-x-distinct (distinct x values drawn),
// data-steps-per-epoch, data-zoom ("FROM-TO" steps while zoomed, else ""), data-zoom-points
// (buckets the zoomed view drew).
import { api } from "../api.js";
import { CHART_EVERY, History, alignSeries, makeChart, line } from "./chart.js";

export const MAX_DRAWN = 4000; // points per series on screen
export const MAX_HELD = 1 << 18; // points kept in memory per series

const STEP = 0, TIME = 1, TRAIN = 2, SMOOTH = 3, LO = 4, HI = 5;
const RAW = "rgba(31,119,180,0.3)";
const BAND = "rgba(31,119,180,0.12)";

export default class LossPanel {
  constructor(el, hello) {
    this.el = el;
    el.hidden = false;
    this.runId = hello?.run?.id ?? null; // none (a panel made by hand): zoom stays local
    // step, seconds since the first live point (null for seeded buckets), last, smoothed,
    // min, max
    this.train = new History(MAX_HELD, 6);
    this.test = new History(MAX_HELD, 2); // step, test loss
    this.ema = null; // the smoothed loss over every point received, thinned or not
    this.spe = hello?.steps_per_epoch || 1; // the server's count (none: one step an epoch)
    this.epochAt = null; // [step, epoch] of the last train point, to spot an epoch's end
    this.alpha = 0.9; this.log = false; this.xMode = "step"; this.acc = null;
    this.cursor = null; // the timeline's step while scrubbed
    this.seededTo = null; // the last step the hello's summary covers (its buckets are
    // labelled by their first step)
    this.zoom = null; // {from, to, data, token} while zoomed (data: null until it arrives)
    this.zoomToken = 0;
    this.draws = 0;
    this.throttle = CHART_EVERY; // ms between live redraws (run.js): canvases are costly
    const body = el.querySelector(".panel-body");
    body.innerHTML = `
      <div class="toolbar">
        <label>smoothing <input type="range" min="0" max="0.99" step="0.01" value="0.9" name="smooth"></label>
        <label>x <select name="x"><option>step</option><option>epoch</option><option>time</option></select></label>
        <label class="inline"><input type="checkbox" name="log"> log scale</label>
        <button type="button" name="unzoom" hidden>Reset zoom</button>
        <span class="readout"></span>
      </div><div class="chart"></div>`;
    this.chartEl = body.querySelector(".chart");
    this.readout = body.querySelector(".readout");
    this.unzoomButton = body.querySelector("[name=unzoom]");
    this.unzoomButton.addEventListener("click", () => this.unzoom());
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

  /** The hello's history: train loss buckets (min, max, last), test loss, test accuracy. */
  seed(history) {
    const s = history?.series;
    if (!s) return;
    if (s.train_loss) {
      const { step, min, max, last } = s.train_loss;
      if (step.length) this.seededTo = history.to ?? step[step.length - 1];
      for (let i = 0; i < step.length; i++) this.push(step[i], null, last[i], min[i], max[i]);
    }
    if (s.test_loss) {
      const { steps, cols } = alignSeries(s, ["test_loss"]);
      steps.forEach((step, i) => this.test.add([step, cols[0][i]]));
    }
    const acc = s.test_acc?.last;
    if (acc?.length) this.acc = acc[acc.length - 1];
  }

  push(step, t, loss, lo = loss, hi = loss) {
    const v = typeof loss === "number" ? loss : null; // "nan", "inf": no point
    if (v !== null) this.ema = this.ema === null ? v : this.alpha * this.ema + (1 - this.alpha) * v;
    this.train.dropFrom(step); // a step recorded again (a resumed run) replaces the old one
    this.train.add([step, t, v, this.ema, typeof lo === "number" ? lo : v,
      typeof hi === "number" ? hi : v]);
  }

  add(e) {
    const d = e.data;
    if (typeof d.train_loss === "number" || typeof d.train_loss === "string") {
      if (this.t0 === null) this.t0 = e.t;
      // The epoch field counts completed epochs: where it ticks up from one step to the
      // next, that step is epoch * steps per epoch.
      if (this.epochAt && d.epoch > this.epochAt[1] && e.step === this.epochAt[0] + 1) {
        const spe = e.step / d.epoch;
        if (Number.isInteger(spe) && spe > 0) this.spe = spe;
      }
      this.epochAt = [e.step, d.epoch];
      this.push(e.step, e.t - this.t0, d.train_loss);
    }
    if (typeof d.test_loss === "number") {
      this.test.dropFrom(e.step);
      this.test.add([e.step, d.test_loss]);
    }
    if (typeof d.test_acc === "number") this.acc = d.test_acc;
  }

  /** The timeline's cursor: a vertical line at `step` (null: following live, none); drawn
   * by the next draw(). */
  setCursor(step) {
    this.cursor = step ?? null;
  }

  // The slider changed: smooth again over the points held (evenly spaced `stride` steps
  // apart, so one held point weighs as much as `stride` received ones would).
  resmooth() {
    const { n, stride, cols } = this.train;
    const a = this.alpha ** stride;
    let prev = null;
    for (let i = 0; i < n; i++) {
      const v = cols[TRAIN][i];
      if (v !== null) prev = prev === null ? v : a * prev + (1 - a) * v;
      cols[SMOOTH][i] = prev;
    }
    this.ema = prev;
  }

  rebuild() {
    this.plot?.destroy();
    this.zoom = null;
    this.plot = makeChart(this.chartEl, {
      height: 260,
      scales: { y: this.log ? { distr: 3 } : {} },
      axes: [{ label: this.xMode }, { label: "loss" }],
      series: [
        {},
        { ...line("train (raw)", 0, 1), stroke: RAW },
        line("train", 0),
        { label: "test", stroke: "#d62728", width: 2, spanGaps: true },
        { label: "train max", stroke: RAW, width: 0.5, points: { show: false } },
        { label: "train min", stroke: RAW, width: 0.5, points: { show: false } },
      ],
      bands: [{ series: [4, 5], fill: BAND }],
      hooks: { setSelect: [(u) => this.onSelect(u)] },
    }, [[], [], [], [], [], []]);
    // uPlot's double-click fits the x axis to the data drawn; from a zoom, the full view.
    this.plot.over.addEventListener("dblclick", () => this.unzoom());
    this.unzoomButton.hidden = true;
    this.draw();
  }

  x(i) {
    const c = this.train.cols;
    if (this.xMode === "time") return c[TIME][i];
    if (this.xMode === "epoch") return c[STEP][i] / this.spe; // fractional: within an epoch too
    return c[STEP][i];
  }

  // A step on the x axis (the cursor): time mode uses the nearest held point's time.
  stepX(step) {
    if (this.xMode === "step") return step;
    if (this.xMode === "epoch") return step / this.spe;
    const i = this.train.indexAt(step);
    return i < 0 ? null : this.train.cols[TIME][i];
  }

  // -- zoom: a drag across the chart selects steps; finer buckets come from the server -------
  onSelect(u) {
    if (u.select.width < 2) return;
    const a = u.posToVal(u.select.left, "x"), b = u.posToVal(u.select.left + u.select.width, "x");
    this.unzoomButton.hidden = false;
    if (this.xMode === "time" || this.runId === null) { // uPlot zooms the points held
      this.zoom = { from: a, to: b, data: null, local: true };
      return;
    }
    const k = this.xMode === "epoch" ? this.spe : 1;
    const from = Math.max(0, Math.floor(a * k)), to = Math.ceil(b * k);
    const token = ++this.zoomToken;
    this.zoom = { from, to, data: null };
    const points = Math.max(50, Math.round(this.plot.over.clientWidth || this.plot.width));
    api.history(this.runId, { names: ["train_loss", "test_loss"], from, to, points })
      .then((h) => {
        if (token !== this.zoomToken || !this.zoom) return; // a newer zoom, or reset
        this.zoom.data = h;
        this.draw();
      })
      .catch((err) => console.warn("zoom: history unavailable", err));
  }

  unzoom() {
    this.zoomToken++;
    if (!this.zoom) return;
    this.zoom = null;
    this.unzoomButton.hidden = true;
    this.draw();
  }

  // The zoomed range's buckets: raw (last), smoothed over them, test, max, min.
  zoomData() {
    const { series } = this.zoom.data;
    const k = this.xMode === "epoch" ? this.spe : 1;
    const tr = series.train_loss || { step: [], min: [], max: [], last: [] };
    const { steps, cols } = alignSeries(series, ["train_loss", "test_loss"]);
    const at = new Map(steps.map((s, i) => [s, i]));
    const keep = (v) => (typeof v !== "number" || (this.log && !(v > 0)) ? null : v);
    const n = steps.length;
    const raw = new Array(n).fill(null), lo = raw.slice(), hi = raw.slice(), sm = raw.slice();
    tr.step.forEach((s, i) => {
      const j = at.get(s);
      raw[j] = keep(tr.last[i]); lo[j] = keep(tr.min[i]); hi[j] = keep(tr.max[i]);
    });
    // Each bucket spans (to - from) / buckets steps: the EMA weighs it as that many steps.
    const a = this.alpha ** Math.max(1, (this.zoom.to - this.zoom.from) / Math.max(1, tr.step.length));
    let prev = null;
    for (let j = 0; j < n; j++) {
      if (raw[j] !== null) prev = prev === null ? raw[j] : a * prev + (1 - a) * raw[j];
      sm[j] = raw[j] === null ? null : prev;
    }
    return [steps.map((s) => s / k), raw, sm, cols[1].map(keep), hi, lo];
  }

  // Downsampled for display only: at most MAX_DRAWN buckets of the held rows, each drawn at
  // its last row with the bucket's min and max, and the last test loss that falls in it.
  fullData() {
    const { n, cols } = this.train;
    const xs = [], raw = [], sm = [], test = [], lo = [], hi = [];
    const keep = (v) => (v === null || (this.log && !(v > 0)) ? null : v);
    const tSteps = this.test.cols[0], tVals = this.test.cols[1];
    const timed = this.xMode === "time";
    const stride = Math.max(1, Math.ceil(n / MAX_DRAWN));
    let t = 0;
    while (t < this.test.n && n && tSteps[t] < cols[STEP][0]) t++;
    for (let first = 0; first < n; first += stride) {
      const last = Math.min(first + stride, n) - 1;
      let min = null, max = null;
      for (let i = first; i <= last; i++) {
        const a = keep(cols[LO][i]), b = keep(cols[HI][i]);
        if (a !== null && (min === null || a < min)) min = a;
        if (b !== null && (max === null || b > max)) max = b;
      }
      let v = null;
      for (; t < this.test.n && tSteps[t] <= cols[STEP][last]; t++) v = tVals[t];
      if (timed && cols[TIME][last] === null) continue; // a seeded bucket has no wall time
      xs.push(this.x(last)); raw.push(keep(cols[TRAIN][last])); sm.push(keep(cols[SMOOTH][last]));
      test.push(keep(v)); hi.push(max); lo.push(min);
    }
    return [xs, raw, sm, test, hi, lo];
  }

  draw() {
    const { n, cols } = this.train;
    const zoomed = this.zoom !== null;
    if (zoomed && this.zoom.data && !this.zoom.drawn) {
      const data = this.zoomData();
      const k = this.xMode === "epoch" ? this.spe : 1;
      this.plot.setData(data, false);
      this.plot.setScale("x", { min: this.zoom.from / k, max: this.zoom.to / k });
      this.zoom.drawn = data[0].length;
    } else if (!zoomed) {
      const data = this.fullData();
      this.plot.setData(data);
      this.xs = data[0];
    }
    // While zoomed, live points wait: the view stays on the range chosen.
    this.plot.setMarker(this.cursor === null ? null : this.stepX(this.cursor));
    const xs = this.xs || [];
    const newest = n ? Math.max(cols[STEP][n - 1], this.seededTo ?? -Infinity) : null;
    const shown = this.cursor ?? newest;
    if (shown !== null) this.el.dataset.step = shown;
    Object.assign(this.el.dataset, {
      points: this.train.count, held: n, drawn: xs.length, draws: ++this.draws, x: this.xMode,
      xLast: xs.length ? xs[xs.length - 1] : "", xDistinct: new Set(xs).size,
      stepsPerEpoch: this.spe,
      zoom: zoomed && !this.zoom.local ? `${this.zoom.from}-${this.zoom.to}` : "",
      zoomPoints: zoomed ? this.zoom.drawn ?? "" : "",
    });
    this.readout.textContent = this.describe(newest);
  }

  describe(newest) {
    if (newest === null) return "";
    const at = this.cursor === null ? this.train.n - 1 : this.train.indexAt(this.cursor);
    const loss = at < 0 ? null : this.train.cols[TRAIN][at];
    const where = this.cursor === null ? `step ${newest}` : `cursor at step ${this.cursor}`;
    return `${where} · loss ${loss === null ? "–" : loss.toPrecision(4)}` +
      (this.acc === null ? "" : ` · test acc ${(100 * this.acc).toFixed(1)}%`);
  }
}
