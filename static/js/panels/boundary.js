// Decision boundary panel (2-D data sets): a heat map of the model's probability of class 1
// over a grid, with the data points on top, redrawn live.
//
// Consumes (docs/events.md):
//   {"type": "dataset", "step": 0, "data": {"points": [[x, y, label], ...], "bounds": [x0, x1, y0, y1]}}
//   {"type": "boundary", "step": 50, "data": {"grid": 40, "bounds": [...], "values": [n*n]}}
//     values are row-major with y outer, the first row at y0.
// Backend route: GET /api/runs/{id}/snapshots/boundary?at=STEP (and .../dataset)
// A FramePanel (frame.js): live, or the timeline's frame. Test hooks: data-step (the step
// depicted), data-classified (the share of points on the right side).
import { FramePanel } from "./frame.js";

const SIZE = 360;

// class 1 -> orange, class 0 -> blue, 0.5 -> white
function rgb(p) {
  const r = Math.round(255 * Math.min(1, 2 * p) * 0.3 + 255 * 0.7 * (p > 0.5 ? 1 : 2 * p));
  const b = Math.round(255 * Math.min(1, 2 * (1 - p)) * 0.3 + 255 * 0.7 * (p < 0.5 ? 1 : 2 * (1 - p)));
  return [r, Math.round((r + b) / 2.2), b];
}

// A paced run redraws this up to 60 times a second: the grid is painted as one n x n image
// scaled up (hard edges), and the data points, which never change, are drawn once.
export default class BoundaryPanel extends FramePanel {
  draw() {
    const dataset = this.get("dataset");
    this.points = dataset?.data.points ?? null;
    this.latest = this.get("boundary");
    this.bounds = (this.latest ?? dataset)?.data.bounds ?? null;
    if (!this.canvas) {
      this.canvas = document.createElement("canvas");
      this.canvas.width = SIZE; this.canvas.height = SIZE;
      this.caption = document.createElement("p");
      this.caption.className = "muted";
    }
    if (this.canvas.parentNode !== this.body) this.body.replaceChildren(this.canvas, this.caption);
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, SIZE, SIZE);
    let correct = 0;
    if (this.latest) {
      const { grid: n, values, bounds } = this.latest.data;
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.heat(n, values), 0, 0, SIZE, SIZE);
      if (this.points) {
        for (const [x, y, label] of this.points) {
          const gi = Math.min(n - 1, Math.max(0, Math.floor(((x - bounds[0]) / (bounds[1] - bounds[0])) * n)));
          const gj = Math.min(n - 1, Math.max(0, Math.floor(((y - bounds[2]) / (bounds[3] - bounds[2])) * n)));
          if ((Number(values[gj * n + gi]) > 0.5) === (label === 1)) correct++;
        }
      }
    }
    if (this.points && this.bounds) ctx.drawImage(this.dots(this.points, this.bounds), 0, 0);
    if (this.latest && this.points) {
      const share = correct / this.points.length;
      this.el.dataset.classified = share.toFixed(4);
      this.caption.textContent =
        `step ${this.step}: ${(100 * share).toFixed(1)}% of the points on the right side`;
    } else {
      this.caption.textContent = `step ${this.step}: no boundary recorded yet`;
    }
    this.stamp();
  }

  // The probabilities as an n x n image, the first row (y0) at the bottom.
  heat(n, values) {
    if (this.heatCanvas?.width !== n) {
      this.heatCanvas = document.createElement("canvas");
      this.heatCanvas.width = this.heatCanvas.height = n;
    }
    const hctx = this.heatCanvas.getContext("2d");
    const img = hctx.createImageData(n, n);
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < n; i++) {
        const [r, g, b] = rgb(Number(values[j * n + i]));
        const k = 4 * ((n - 1 - j) * n + i);
        img.data[k] = r; img.data[k + 1] = g; img.data[k + 2] = b; img.data[k + 3] = 255;
      }
    }
    hctx.putImageData(img, 0, 0);
    return this.heatCanvas;
  }

  // The data points, drawn once for these points and bounds.
  dots(points, bounds) {
    if (this.dotsFor?.[0] === points && this.dotsFor[1].join() === bounds.join()) return this.dotsCanvas;
    this.dotsCanvas ??= document.createElement("canvas");
    this.dotsCanvas.width = this.dotsCanvas.height = SIZE;
    const ctx = this.dotsCanvas.getContext("2d");
    const [x0, x1, y0, y1] = bounds;
    ctx.strokeStyle = "#111";
    for (const [x, y, label] of points) {
      ctx.beginPath();
      ctx.arc(((x - x0) / (x1 - x0)) * SIZE, SIZE - ((y - y0) / (y1 - y0)) * SIZE, 3, 0, 2 * Math.PI);
      ctx.fillStyle = label === 1 ? "#e6550d" : "#3182bd";
      ctx.fill(); ctx.stroke();
    }
    this.dotsFor = [points, bounds];
    return this.dotsCanvas;
  }
}
