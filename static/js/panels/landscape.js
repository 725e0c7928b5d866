// Loss landscape panel: the true loss around the weights of the step shown, as a heat map
// with contours, the path gradient descent took drawn over it, and beside it the loss along
// the negative gradient with where a step of the learning rate lands (an lr too large
// overshoots the valley and the loss goes up, as in the first article).
//
// Backend route: GET /api/runs/{id}/landscape?at=STEP&params=w0,w1&n=41 (docs/panels.md):
// nothing is computed until the panel is opened (its button), so a run nobody looks at
// costs nothing. Open, it follows the frame shown (live or the timeline's), one request at
// a time, the newest step wanted winning.
// Consumes (docs/events.md): weights / histograms (only to know a frame's step and whether
// frames hold the weights; a large model's landscapes come from its checkpoints).
// Test hooks on the section: data-state (closed | loading | ready | error), data-step (the
// frame step the panel follows, as every frame panel), data-drawn-step (the step of the
// landscape drawn: the same once its answer is in), data-path-end and data-min ("x,y"), data-start-loss, data-step-loss,
// data-valley-t, data-step-t; the canvases are .landscape-map and .landscape-slice.
import { api } from "../api.js";
import { FramePanel } from "./frame.js";

const MAP = 360; // px of the heat map (square)
const SLICE_W = 300, SLICE_H = 220;
const PAD = 54; // room for the axes' numbers
const RANDOM = ""; // the select's value for the random directions

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

function fmt(v) {
  if (num(v) === null) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e4) ? v.toExponential(2) : Number(v.toPrecision(4)).toString();
}

// Low loss dark blue through teal and yellow to high (viridis-like), t in [0, 1].
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function colour(t) {
  const x = Math.min(1, Math.max(0, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x)), f = x - i;
  return STOPS[i].map((c, k) => Math.round(c + f * (STOPS[i + 1][k] - c)));
}

export default class LandscapePanel extends FramePanel {
  constructor(el, hello) {
    super(el);
    this.runId = hello?.run?.id ?? document.getElementById("run")?.dataset.runId;
    this.open = false;
    this.data = null; // the last landscape drawn
    this.error = null;
    this.busy = false;
    this.want = null; // the request waiting: {key}, its query string
    this.shownKey = null;
    this.el.dataset.state = "closed";
    this.build();
  }

  build() {
    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.className = "landscape-open";
    this.button.textContent = "Show the loss landscape";
    this.button.addEventListener("click", () => this.show());
    this.controls = document.createElement("div");
    this.controls.className = "landscape-controls";
    this.xSel = document.createElement("select");
    this.ySel = document.createElement("select");
    this.xSel.setAttribute("aria-label", "x axis");
    this.ySel.setAttribute("aria-label", "y axis");
    for (const s of [this.xSel, this.ySel]) s.addEventListener("change", () => this.request());
    const lx = document.createElement("label"), ly = document.createElement("label");
    lx.append("x ", this.xSel);
    ly.append("y ", this.ySel);
    this.controls.append(lx, ly);
    this.controls.hidden = true;
    this.status = document.createElement("p");
    this.status.className = "muted landscape-status";
    this.status.textContent = "Computed on demand from the recorded weights (a few hundred ms).";
    this.map = document.createElement("canvas");
    this.map.className = "landscape-map";
    this.slice = document.createElement("canvas");
    this.slice.className = "landscape-slice";
    const ratio = window.devicePixelRatio || 1;
    for (const [c, w, h] of [[this.map, MAP + PAD, MAP + PAD], [this.slice, SLICE_W, SLICE_H]]) {
      c.width = w * ratio; c.height = h * ratio;
      c.style.width = `${w}px`; c.style.aspectRatio = `${w} / ${h}`;
      c.hidden = true;
    }
    this.figures = document.createElement("div");
    this.figures.className = "landscape-figures";
    this.figures.append(this.map, this.slice);
    this.caption = document.createElement("p");
    this.caption.className = "muted landscape-caption";
    this.body.replaceChildren(this.button, this.controls, this.status, this.figures, this.caption);
  }

  show() {
    this.open = true;
    this.button.hidden = true;
    this.request();
  }

  draw() {
    if (this.open) this.request();
    this.stamp();
  }

  // The landscape of the step shown, unless it is the one drawn or already asked for.
  request() {
    if (!this.open || this.step === null || this.runId === undefined) return;
    // A small model's frames hold its weights: the frame's step. A large one's do not: its
    // latest checkpoint (the server says which step that is).
    const at = this.get("weights") ? this.step : null;
    const params = this.xSel.value && this.ySel.value && this.xSel.value !== this.ySel.value
      ? `${this.xSel.value},${this.ySel.value}` : null;
    const q = new URLSearchParams({ n: "41" });
    if (at !== null) q.set("at", at);
    if (params) q.set("params", params);
    const key = q.toString();
    if (key === this.shownKey || key === this.want?.key) return;
    this.want = { key };
    if (!this.busy) this.pump();
  }

  async pump() {
    this.busy = true;
    while (this.want) {
      const { key } = this.want;
      this.want = null;
      this.el.dataset.state = "loading";
      this.status.textContent = "Computing the landscape…";
      try {
        const data = await api.landscape(this.runId, key);
        this.data = data;
        this.error = null;
        this.shownKey = key;
        this.render();
      } catch (err) {
        this.error = err.message;
        this.shownKey = key;
        this.el.dataset.state = "error";
        this.status.textContent = `No landscape: ${err.message}`;
      }
    }
    this.busy = false;
  }

  // The axis choices: the model's weights (small models), or the random directions.
  fillSelects(d) {
    const names = d.parameters ?? [];
    const key = names.join(" ");
    if (this.selFor === key) return;
    this.selFor = key;
    for (const [sel, pick] of [[this.xSel, 0], [this.ySel, 1]]) {
      const opts = [[RANDOM, "random direction"], ...names.map((n) => [n, n])];
      sel.replaceChildren(...opts.map(([v, t]) => Object.assign(document.createElement("option"), { value: v, textContent: t })));
      sel.value = names.length >= 2 ? names[pick] : RANDOM;
    }
    this.controls.hidden = false;
    // The first answer was the default (random directions): a small model starts on its
    // first two weights, as the article's figures do.
    if (names.length >= 2 && d.mode !== "weights") this.request();
  }

  render() {
    const d = this.data;
    this.fillSelects(d);
    this.map.hidden = this.slice.hidden = false;
    this.drawMap(d);
    this.drawSlice(d.slice);
    const ds = this.el.dataset;
    ds.state = "ready";
    ds.drawnStep = d.step;
    const last = d.path.x.length - 1;
    ds.pathEnd = `${d.path.x[last]},${d.path.y[last]}`;
    ds.min = `${d.min.x},${d.min.y}`;
    ds.startLoss = d.slice?.start_loss ?? "";
    ds.stepLoss = d.slice?.step_loss ?? "";
    ds.stepT = d.slice?.step_t ?? "";
    ds.valleyT = d.slice?.valley_t ?? "";
    const sub = d.samples < d.train_size ? ` (${d.samples} of ${d.train_size} training rows)` : "";
    this.status.textContent = `Step ${d.step}: loss ${fmt(d.point.loss)}${sub}.`;
    const s = d.slice;
    if (s) {
      const up = num(s.step_loss) !== null && num(s.start_loss) !== null && s.step_loss > s.start_loss;
      this.caption.textContent = `Second plot: the loss along the negative gradient. A step of lr ${s.lr} moves ` +
        `${fmt(s.step_t)} and lands at loss ${fmt(s.step_loss)} (from ${fmt(s.start_loss)}): ` +
        (up ? "it overshoots the valley and the loss goes up." : "down into the valley.");
    } else {
      this.caption.textContent = "The gradient is zero here: no step to take.";
    }
  }

  // Pixel position of slice coordinates on the map.
  toMap(d, x, y) {
    const [x0, x1, y0, y1] = d.bounds;
    return [PAD + ((x - x0) / (x1 - x0)) * MAP, MAP - ((y - y0) / (y1 - y0)) * MAP];
  }

  drawMap(d) {
    const ratio = this.map.width / (MAP + PAD);
    const ctx = this.map.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, MAP + PAD, MAP + PAD);
    const n = d.n, vals = d.loss.map(num);
    const levels = d.levels;
    const lo = levels[0] ?? 0, hi = levels[levels.length - 1] ?? 1;
    // Colour by log distance above the minimum, as the levels are spaced.
    const scale = (v) => (v === null ? 1 : Math.log10(Math.max(v - lo, (hi - lo) * 1e-3) / (hi - lo)) / 3 + 1);
    const img = new ImageData(n, n);
    for (let j = 0; j < n; j++) {
      for (let i = 0; i < n; i++) {
        const [r, g, b] = colour(scale(vals[j * n + i]));
        const k = 4 * ((n - 1 - j) * n + i);
        img.data[k] = r; img.data[k + 1] = g; img.data[k + 2] = b; img.data[k + 3] = 255;
      }
    }
    const tile = document.createElement("canvas");
    tile.width = tile.height = n;
    tile.getContext("2d").putImageData(img, 0, 0);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(tile, PAD, 0, MAP, MAP);
    this.contours(ctx, d, vals, levels);
    // The path, its start, the step shown, where the next plain step lands, the grid's minimum.
    const pts = d.path.x.map((x, k) => [num(x), num(d.path.y[k])]).filter(([x, y]) => x !== null && y !== null);
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD, 0, MAP, MAP);
    ctx.clip();
    ctx.lineWidth = 2;
    ctx.strokeStyle = "#fff";
    ctx.beginPath();
    pts.forEach(([x, y], k) => { const [px, py] = this.toMap(d, x, y); k ? ctx.lineTo(px, py) : ctx.moveTo(px, py); });
    ctx.stroke();
    const dot = (x, y, r, fill, stroke = "#111") => {
      const [px, py] = this.toMap(d, x, y);
      ctx.beginPath(); ctx.arc(px, py, r, 0, 2 * Math.PI);
      ctx.fillStyle = fill; ctx.fill(); ctx.strokeStyle = stroke; ctx.lineWidth = 1.5; ctx.stroke();
    };
    if (pts.length) dot(pts[0][0], pts[0][1], 4, "#fff");
    if (d.next && num(d.next.x) !== null) {
      const [ax, ay] = this.toMap(d, d.point.x, d.point.y), [bx, by] = this.toMap(d, d.next.x, d.next.y);
      ctx.strokeStyle = "#e6550d"; ctx.lineWidth = 2; ctx.setLineDash([4, 3]);
      ctx.beginPath(); ctx.moveTo(ax, ay); ctx.lineTo(bx, by); ctx.stroke(); ctx.setLineDash([]);
    }
    const [mx, my] = this.toMap(d, d.min.x, d.min.y);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(mx - 5, my - 5); ctx.lineTo(mx + 5, my + 5); ctx.moveTo(mx + 5, my - 5); ctx.lineTo(mx - 5, my + 5); ctx.stroke();
    dot(d.point.x, d.point.y, 6, "#e6550d", "#fff");
    ctx.restore();
    // Axes: the bounds and the axes' names.
    ctx.fillStyle = "#333";
    ctx.font = "12px system-ui, sans-serif";
    const [x0, x1, y0, y1] = d.bounds;
    ctx.textAlign = "left"; ctx.fillText(fmt(x0), PAD, MAP + 14);
    ctx.textAlign = "right"; ctx.fillText(fmt(x1), PAD + MAP, MAP + 14);
    ctx.textAlign = "center"; ctx.fillText(d.axes[0].name, PAD + MAP / 2, MAP + 28);
    ctx.save(); ctx.translate(10, MAP / 2); ctx.rotate(-Math.PI / 2); ctx.fillText(d.axes[1].name, 0, 0); ctx.restore();
    ctx.textAlign = "right"; ctx.fillText(fmt(y1), PAD - 3, 12); ctx.fillText(fmt(y0), PAD - 3, MAP);
  }

  // Isolines by marching squares over the grid, one per level.
  contours(ctx, d, vals, levels) {
    const n = d.n, cell = MAP / (n - 1);
    const px = (i) => PAD + i * cell, py = (j) => MAP - j * cell;
    ctx.save();
    ctx.strokeStyle = "rgba(255,255,255,0.55)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (const L of levels) {
      for (let j = 0; j < n - 1; j++) {
        for (let i = 0; i < n - 1; i++) {
          const c = [vals[j * n + i], vals[j * n + i + 1], vals[(j + 1) * n + i + 1], vals[(j + 1) * n + i]];
          if (c.some((v) => v === null)) continue;
          // The corners (0,0) (1,0) (1,1) (0,1); a crossing on each edge whose ends straddle L.
          const corners = [[0, 0], [1, 0], [1, 1], [0, 1]];
          const cuts = [];
          for (let e = 0; e < 4; e++) {
            const a = c[e], b = c[(e + 1) % 4];
            if ((a < L) !== (b < L)) {
              const f = (L - a) / (b - a);
              const [ax, ay] = corners[e], [bx, by] = corners[(e + 1) % 4];
              cuts.push([px(i + ax + f * (bx - ax)), py(j + ay + f * (by - ay))]);
            }
          }
          for (let k = 0; k + 1 < cuts.length; k += 2) {
            ctx.moveTo(...cuts[k]); ctx.lineTo(...cuts[k + 1]);
          }
        }
      }
    }
    ctx.stroke();
    ctx.restore();
  }

  drawSlice(s) {
    const ratio = this.slice.width / SLICE_W;
    const ctx = this.slice.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, SLICE_W, SLICE_H);
    if (!s) return;
    const ts = s.t, ls = s.loss.map(num);
    const fin = ls.filter((v) => v !== null);
    const lo = Math.min(...fin, num(s.step_loss) ?? Infinity), hi = Math.max(...fin);
    const L = 58, R = 10, T = 12, B = 30, w = SLICE_W - L - R, h = SLICE_H - T - B;
    const X = (t) => L + ((t - ts[0]) / (ts[ts.length - 1] - ts[0])) * w;
    const Y = (v) => T + h - ((v - lo) / (hi - lo || 1)) * h;
    ctx.strokeStyle = "#999"; ctx.lineWidth = 1;
    ctx.strokeRect(L, T, w, h);
    ctx.strokeStyle = "#1f77b4"; ctx.lineWidth = 2;
    ctx.beginPath();
    let on = false;
    ts.forEach((t, k) => {
      const v = ls[k];
      if (v === null) { on = false; return; }
      on ? ctx.lineTo(X(t), Y(v)) : ctx.moveTo(X(t), Y(v));
      on = true;
    });
    ctx.stroke();
    // The step: from the start (t = 0) to where lr * |g| lands.
    const start = [X(0), Y(s.start_loss)], land = [X(s.step_t), Y(s.step_loss)];
    ctx.strokeStyle = "#e6550d"; ctx.setLineDash([4, 3]);
    ctx.beginPath(); ctx.moveTo(...start); ctx.lineTo(...land); ctx.stroke(); ctx.setLineDash([]);
    for (const [p, fill] of [[start, "#fff"], [land, "#e6550d"]]) {
      ctx.beginPath(); ctx.arc(p[0], p[1], 4.5, 0, 2 * Math.PI);
      ctx.fillStyle = fill; ctx.fill(); ctx.strokeStyle = "#e6550d"; ctx.lineWidth = 1.5; ctx.stroke();
    }
    ctx.fillStyle = "#333"; ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "right"; ctx.fillText(fmt(hi), L - 3, T + 8); ctx.fillText(fmt(lo), L - 3, T + h);
    ctx.textAlign = "center";
    ctx.fillText("distance along −gradient", L + w / 2, SLICE_H - 6);
    ctx.fillText("start", start[0], Math.min(T + h + 13, start[1] + 16));
    ctx.fillText(`after lr ${s.lr}`, land[0], Math.max(T + 9, land[1] - 8));
  }
}
