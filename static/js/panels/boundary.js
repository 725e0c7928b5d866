// Decision boundary panel (2-D data sets): a heat map of what the model says over a grid,
// with the data points on top, redrawn live. Two classes: the probability of class 1; more:
// the likeliest class, paler where it is less sure; a regression: the predicted value.
//
// Consumes (docs/events.md):
//   {"type": "dataset", "step": 0, "data": {"points": [[x, y, label], ...], "bounds": [x0, x1, y0, y1],
//     "test": [[x, y, label], ...], "classes": k or null}}
//   {"type": "boundary", "step": 50, "data": {"grid": 40, "bounds": [...], "values": [n*n],
//     "kind"?: "classes" | "value", "classes"?: [n*n], "range"?: [lo, hi]}}
//     values are row-major with y outer, the first row at y0.
// Backend route: GET /api/runs/{id}/snapshots/boundary?at=STEP (and .../dataset)
// Page toggles (presentation only, never config): "show test data", "discretize output".
// On a paused run a click adds a training point of the chosen class (or target value) and a
// drag moves one: POST /api/runs/{id}/interventions {what: "point", row?, x1, x2, label}.
// A FramePanel (frame.js): live, or the timeline's frame. Test hooks: data-step (the step
// depicted), data-classified (the share of points on the right side), data-points.
import { api } from "../api.js";
import { FramePanel } from "./frame.js";

const SIZE = 360;
const PICK = 7; // pixels: a press this close to a point drags it
// Class colours (class 0 blue, 1 orange, as two-class runs always drew them).
const PALETTE = [[49, 130, 189], [230, 85, 13], [49, 163, 84], [117, 107, 177], [214, 39, 40],
  [140, 86, 75], [227, 119, 194], [99, 99, 99], [188, 189, 34], [23, 190, 207]];

// class 1 -> orange, class 0 -> blue, 0.5 -> white
function rgb(p) {
  const r = Math.round(255 * Math.min(1, 2 * p) * 0.3 + 255 * 0.7 * (p > 0.5 ? 1 : 2 * p));
  const b = Math.round(255 * Math.min(1, 2 * (1 - p)) * 0.3 + 255 * 0.7 * (p < 0.5 ? 1 : 2 * (1 - p)));
  return [r, Math.round((r + b) / 2.2), b];
}

// A class colour faded towards white by (1 - confidence), relative to chance (1/k).
function classRgb(c, confidence, k) {
  const base = PALETTE[c % PALETTE.length];
  const t = Math.max(0, Math.min(1, (confidence - 1 / k) / (1 - 1 / k)));
  return base.map((v) => Math.round(255 - (255 - v) * (0.25 + 0.75 * t)));
}

// A value on [lo, hi] as the two-class scale (lo blue, hi orange).
function valueShare(v, [lo, hi]) {
  return hi > lo ? Math.max(0, Math.min(1, (v - lo) / (hi - lo))) : 0.5;
}

export default class BoundaryPanel extends FramePanel {
  constructor(el, hello) {
    super(el);
    this.runId = hello?.run?.id ?? document.getElementById("run")?.dataset.runId;
  }

  draw() {
    const dataset = this.get("dataset");
    this.points = dataset?.data.points ?? null;
    this.classes = dataset?.data.classes === undefined ? 2 : dataset.data.classes;
    this.latest = this.get("boundary");
    this.bounds = (this.latest ?? dataset)?.data.bounds ?? null;
    if (!this.canvas) this.build();
    if (this.canvas.parentNode !== this.body) this.body.replaceChildren(this.tools, this.canvas, this.caption);
    this.syncTools();
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, SIZE, SIZE);
    if (this.latest) {
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.heat(this.latest.data), 0, 0, SIZE, SIZE);
    }
    const test = this.showTest.checked ? dataset?.data.test ?? [] : [];
    if (this.points && this.bounds) ctx.drawImage(this.dots(this.points, test, this.bounds), 0, 0);
    const share = this.latest && this.points ? this.rightShare(this.latest.data) : null;
    if (share !== null) {
      this.el.dataset.classified = share.toFixed(4);
      this.caption.textContent =
        `step ${this.step}: ${(100 * share).toFixed(1)}% of the points on the right side`;
    } else if (this.latest) {
      this.caption.textContent = `step ${this.step}: the predicted value (blue low, orange high)`;
    } else {
      this.caption.textContent = `step ${this.step}: no boundary recorded yet`;
    }
    this.el.dataset.points = this.points?.length ?? 0;
    this.stamp();
  }

  build() {
    this.canvas = document.createElement("canvas");
    this.canvas.width = SIZE; this.canvas.height = SIZE;
    this.canvas.className = "boundary-map";
    this.caption = document.createElement("p");
    this.caption.className = "muted";
    this.tools = document.createElement("div");
    this.tools.className = "boundary-tools";
    this.tools.innerHTML = `<label class="inline check"><input type="checkbox" class="show-test"> show test data</label>
      <label class="inline check"><input type="checkbox" class="discretize"> discretize output</label>
      <label class="inline new-point">new point <select class="point-class" aria-label="class of a new point"></select>
        <input type="number" step="any" class="point-value" value="0" aria-label="target of a new point" hidden></label>
      <span class="muted edit-msg" role="status">pause the run to add (click) or drag points</span>`;
    this.showTest = this.tools.querySelector(".show-test");
    this.discretize = this.tools.querySelector(".discretize");
    this.msg = this.tools.querySelector(".edit-msg");
    for (const box of [this.showTest, this.discretize]) box.addEventListener("change", () => this.draw());
    this.canvas.addEventListener("pointerdown", (ev) => this.press(ev));
    this.canvas.addEventListener("pointerup", (ev) => this.release(ev));
  }

  syncTools() {
    const select = this.tools.querySelector(".point-class");
    const k = this.classes ?? 0;
    if (select.options.length !== k) {
      select.replaceChildren(...Array.from({ length: k }, (_, c) => new Option(`class ${c}`, c)));
    }
    select.hidden = k === 0;
    this.tools.querySelector(".point-value").hidden = k !== 0;
  }

  // The share of training points the map puts in their own class (null: a regression).
  rightShare({ grid: n, values, bounds, classes }) {
    if (this.classes === null) return null;
    let correct = 0;
    for (const [x, y, label] of this.points) {
      const gi = Math.min(n - 1, Math.max(0, Math.floor(((x - bounds[0]) / (bounds[1] - bounds[0])) * n)));
      const gj = Math.min(n - 1, Math.max(0, Math.floor(((y - bounds[2]) / (bounds[3] - bounds[2])) * n)));
      const cell = gj * n + gi;
      const guess = classes ? classes[cell] : Number(values[cell]) > 0.5 ? 1 : 0;
      if (guess === label) correct++;
    }
    return correct / Math.max(1, this.points.length);
  }

  // The grid as an n x n image, the first row (y0) at the bottom.
  heat({ grid: n, values, kind, classes, range }) {
    if (this.heatCanvas?.width !== n) {
      this.heatCanvas = document.createElement("canvas");
      this.heatCanvas.width = this.heatCanvas.height = n;
    }
    const hctx = this.heatCanvas.getContext("2d");
    const img = hctx.createImageData(n, n);
    const steps = this.discretize.checked;
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < n; i++) {
        const v = Number(values[j * n + i]);
        let color;
        if (kind === "classes") color = classRgb(classes[j * n + i], steps ? 1 : v, this.classes || 3);
        else if (kind === "value") {
          const share = valueShare(v, range);
          color = rgb(steps ? Math.round(share * 5) / 5 : share);
        } else color = rgb(steps ? (v > 0.5 ? 1 : 0) : v);
        const k = 4 * ((n - 1 - j) * n + i);
        img.data[k] = color[0]; img.data[k + 1] = color[1]; img.data[k + 2] = color[2]; img.data[k + 3] = 255;
      }
    }
    hctx.putImageData(img, 0, 0);
    return this.heatCanvas;
  }

  pointColor(label) {
    if (this.classes === null) {
      const range = this.latest?.data.range ?? [-1, 1];
      const [r, g, b] = rgb(valueShare(label, range));
      return `rgb(${r},${g},${b})`;
    }
    const [r, g, b] = PALETTE[label % PALETTE.length];
    return `rgb(${r},${g},${b})`;
  }

  // The data points (test points with a white ring), drawn again only when they change.
  dots(points, test, bounds) {
    const key = [points, test, bounds.join(), this.latest?.data.range?.join()];
    if (this.dotsFor && key.every((k, i) => k === this.dotsFor[i])) return this.dotsCanvas;
    this.dotsCanvas ??= document.createElement("canvas");
    this.dotsCanvas.width = this.dotsCanvas.height = SIZE;
    const ctx = this.dotsCanvas.getContext("2d");
    for (const [list, ring] of [[points, "#111"], [test, "#fff"]]) {
      ctx.strokeStyle = ring;
      ctx.lineWidth = list === test ? 1.5 : 1;
      for (const [x, y, label] of list) {
        const [px, py] = this.toPixel(x, y, bounds);
        ctx.beginPath();
        ctx.arc(px, py, 3, 0, 2 * Math.PI);
        ctx.fillStyle = this.pointColor(label);
        ctx.fill(); ctx.stroke();
      }
    }
    this.dotsFor = key;
    return this.dotsCanvas;
  }

  toPixel(x, y, [x0, x1, y0, y1]) {
    return [((x - x0) / (x1 - x0)) * SIZE, SIZE - ((y - y0) / (y1 - y0)) * SIZE];
  }

  // -- adding and dragging points (a paused run) -----------------------------------------------
  where(ev) {
    const box = this.canvas.getBoundingClientRect();
    const px = ((ev.clientX - box.left) / box.width) * SIZE;
    const py = ((ev.clientY - box.top) / box.height) * SIZE;
    const [x0, x1, y0, y1] = this.bounds;
    return { px, py, x: x0 + (px / SIZE) * (x1 - x0), y: y0 + ((SIZE - py) / SIZE) * (y1 - y0) };
  }

  press(ev) {
    if (!this.bounds || !this.points) return;
    const { px, py } = this.where(ev);
    let best = null, bestD = PICK;
    this.points.forEach(([x, y], row) => {
      const [qx, qy] = this.toPixel(x, y, this.bounds);
      const d = Math.hypot(qx - px, qy - py);
      if (d <= bestD) { best = row; bestD = d; }
    });
    this.dragging = best;
    this.pressedAt = [px, py];
  }

  async release(ev) {
    if (!this.bounds || !this.points) return;
    const paused = document.getElementById("state-badge")?.dataset.state === "paused";
    if (!paused) {
      this.msg.textContent = "pause the run to add (click) or drag points";
      this.dragging = null;
      return;
    }
    const { x, y, px, py } = this.where(ev);
    const row = this.dragging;
    this.dragging = null;
    const [qx, qy] = this.pressedAt ?? [px, py];
    if (row !== null && Math.hypot(px - qx, py - qy) < 3) return; // a click on a point: no drag
    const label = row !== null ? this.points[row][2]
      : this.classes === null ? Number(this.tools.querySelector(".point-value").value)
      : Number(this.tools.querySelector(".point-class").value);
    const body = { what: "point", x1: Number(x.toFixed(4)), x2: Number(y.toFixed(4)), label };
    if (row !== null) body.row = row;
    try {
      const edit = await api.intervene(this.runId, body);
      this.msg.textContent = row !== null
        ? `moved point ${edit.index[0]} at step ${edit.step}`
        : `added point ${edit.index[0]} at step ${edit.step}`;
      this.el.dataset.edited = String(edit.index[0]);
    } catch (err) {
      this.msg.textContent = err.message;
    }
  }
}
