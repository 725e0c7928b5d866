// Decision boundary panel (2-D data sets): a heat map of the model's probability of class 1
// over a grid, with the data points on top, redrawn live.
//
// Consumes (docs/events.md):
//   {"type": "dataset", "step": 0, "data": {"points": [[x, y, label], ...], "bounds": [x0, x1, y0, y1]}}
//   {"type": "boundary", "step": 50, "data": {"grid": 40, "bounds": [...], "values": [n*n]}}
//     values are row-major with y outer, the first row at y0.
// Backend route: GET /api/runs/{id}/snapshots/boundary?at=STEP (and .../dataset)

const SIZE = 360;

export default class BoundaryPanel {
  constructor(el) {
    this.el = el;
    this.body = el.querySelector(".panel-body");
    this.points = null;
    this.latest = null;
  }

  add(e) {
    this.el.hidden = false;
    if (e.type === "dataset") this.points = e.data.points;
    else this.latest = e;
  }

  draw() {
    if (!this.canvas) {
      this.canvas = document.createElement("canvas");
      this.canvas.width = SIZE; this.canvas.height = SIZE;
      this.caption = document.createElement("p");
      this.caption.className = "muted";
      this.body.append(this.canvas, this.caption);
    }
    const ctx = this.canvas.getContext("2d");
    ctx.clearRect(0, 0, SIZE, SIZE);
    let correct = 0;
    if (this.latest) {
      const { grid: n, values, bounds } = this.latest.data;
      const cell = SIZE / n;
      for (let j = 0; j < n; j++) {
        for (let i = 0; i < n; i++) {
          const p = Number(values[j * n + i]);
          // class 1 -> orange, class 0 -> blue, 0.5 -> white
          const r = Math.round(255 * Math.min(1, 2 * p) * 0.3 + 255 * 0.7 * (p > 0.5 ? 1 : 2 * p));
          const b = Math.round(255 * Math.min(1, 2 * (1 - p)) * 0.3 + 255 * 0.7 * (p < 0.5 ? 1 : 2 * (1 - p)));
          const g = Math.round((r + b) / 2.2);
          ctx.fillStyle = `rgb(${r},${g},${b})`;
          ctx.fillRect(i * cell, SIZE - (j + 1) * cell, Math.ceil(cell), Math.ceil(cell));
        }
      }
      if (this.points) {
        for (const [x, y, label] of this.points) {
          const gi = Math.min(n - 1, Math.max(0, Math.floor(((x - bounds[0]) / (bounds[1] - bounds[0])) * n)));
          const gj = Math.min(n - 1, Math.max(0, Math.floor(((y - bounds[2]) / (bounds[3] - bounds[2])) * n)));
          if ((Number(values[gj * n + gi]) > 0.5) === (label === 1)) correct++;
        }
      }
      this.bounds = bounds;
    }
    if (this.points && this.bounds) {
      const [x0, x1, y0, y1] = this.bounds;
      for (const [x, y, label] of this.points) {
        ctx.beginPath();
        ctx.arc(((x - x0) / (x1 - x0)) * SIZE, SIZE - ((y - y0) / (y1 - y0)) * SIZE, 3, 0, 2 * Math.PI);
        ctx.fillStyle = label === 1 ? "#e6550d" : "#3182bd";
        ctx.strokeStyle = "#111";
        ctx.fill(); ctx.stroke();
      }
    }
    if (this.latest && this.points) {
      const share = correct / this.points.length;
      this.el.dataset.step = this.latest.step;
      this.el.dataset.classified = share.toFixed(4);
      this.caption.textContent =
        `step ${this.latest.step}: ${(100 * share).toFixed(1)}% of the points on the right side`;
    }
  }
}
