// The one chart helper of every uPlot chart (the loss, weights and health panels, /compare):
// uPlot at its element's width and kept there on resize, a step marker (the timeline's
// cursor), the palette, series styles, the display downsampling, History (the bounded
// history a panel keeps of its events) and alignSeries (the server's bucketed history as
// columns).
import uPlot from "/static/vendor/uPlot.esm.js";
import { edits } from "../edits.js";

export const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939"];
// A chart panel redraws for live data at most this often (ms; run.js): 12 repaints a second
// look continuous, and leave a paced run's screen frames to the panels that show each step.
export const CHART_EVERY = 80;
const MIN_WIDTH = 300; // px; a narrower chart has no room for its axes
const FALLBACK_WIDTH = 560; // px, while the element is not laid out yet (a hidden panel)

/** The i-th colour of the palette, cycling. */
export function color(i) {
  return PALETTE[i % PALETTE.length];
}

/** A solid line series in the palette's i-th colour, without point markers. */
export function line(label, i, width = 2) {
  return { label, stroke: color(i), width, points: { show: false } };
}

/** A dashed black reference line (a target, a typical value). */
export function reference(label) {
  return { label, stroke: "#000", dash: [6, 4], width: 1, points: { show: false } };
}

// Draws a dashed vertical line at the x value `marker.x` (null: none), over the series.
function markerPlugin(marker) {
  return {
    hooks: {
      draw: (u) => {
        if (marker.x === null) return;
        const px = u.valToPos(marker.x, "x", true);
        const { left, top, width, height } = u.bbox;
        if (!(px >= left - 1 && px <= left + width + 1)) return; // off the (zoomed) range
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#111827";
        ctx.lineWidth = Math.max(1, devicePixelRatio * 1.5);
        ctx.setLineDash([5 * devicePixelRatio, 3 * devicePixelRatio]);
        ctx.beginPath();
        ctx.moveTo(Math.round(px), top);
        ctx.lineTo(Math.round(px), top + height);
        ctx.stroke();
        ctx.restore();
      },
    },
  };
}

// Edits made by hand (intervention events): every chart marks their steps, a solid orange
// line each (the steps come from ../edits.js, which run.js feeds).
function editsPlugin() {
  return {
    hooks: {
      draw: (u) => {
        const { left, top, width, height } = u.bbox;
        const ctx = u.ctx;
        ctx.save();
        ctx.strokeStyle = "#ea580c";
        ctx.fillStyle = "#ea580c";
        ctx.lineWidth = Math.max(1, devicePixelRatio * 1.5);
        for (const step of edits.steps) {
          const px = Math.round(u.valToPos(step, "x", true));
          if (!(px >= left - 1 && px <= left + width + 1)) continue;
          ctx.beginPath();
          ctx.moveTo(px, top);
          ctx.lineTo(px, top + height);
          ctx.stroke();
          ctx.beginPath(); // a small flag at the top: "edited here"
          ctx.moveTo(px, top);
          ctx.lineTo(px + 7 * devicePixelRatio, top + 4 * devicePixelRatio);
          ctx.lineTo(px, top + 8 * devicePixelRatio);
          ctx.fill();
        }
        ctx.restore();
      },
    },
  };
}

/**
 * A uPlot chart in `el`, as wide as `el` and following its width as the layout changes;
 * `opts` is uPlot's, with `height` required and a numeric (not time) x scale by default.
 * `destroy()` also stops following. `setMarker(x)` draws a vertical line at x (the step a
 * scrubbed timeline shows; null removes it) without touching the data.
 */
export function makeChart(el, opts, data) {
  const width = Math.max(MIN_WIDTH, el.clientWidth || FALLBACK_WIDTH);
  const marker = { x: null };
  const plot = new uPlot({ width, ...opts, scales: { x: { time: false }, ...opts.scales },
    plugins: [...(opts.plugins || []), markerPlugin(marker), editsPlugin()] }, data, el);
  edits.charts.set(plot, el);
  el.dataset.edits = edits.steps.join(",");
  plot.setMarker = (x) => {
    const v = x ?? null;
    if (v === marker.x) return;
    marker.x = v;
    el.dataset.marker = v === null ? "" : v;
    plot.redraw(false);
  };
  const resize = new ResizeObserver(() => {
    const w = Math.max(MIN_WIDTH, el.clientWidth);
    if (Math.abs(w - plot.width) > 4) plot.setSize({ width: w, height: plot.height });
  });
  resize.observe(el);
  const destroy = plot.destroy.bind(plot);
  plot.destroy = () => {
    resize.disconnect();
    edits.charts.delete(plot);
    destroy();
  };
  return plot;
}

/** For display only: the index of the last of each of at most `max` equal buckets of n rows
 * (the newest row always among them). */
export function drawnRows(n, max) {
  const stride = Math.max(1, Math.ceil(n / max));
  const rows = [];
  for (let i = 0; i < n; i += stride) rows.push(Math.min(i + stride, n) - 1);
  return rows;
}

/**
 * A panel's history as columns of values, at most `cap` rows. Every stride-th row added is
 * kept, and the newest row always, as a tail the next row replaces. At `cap` rows every other
 * one goes (the newest stays) and the stride doubles: a long run keeps its whole span, evenly
 * spaced at a coarser grain, and memory stays bounded.
 */
export class History {
  constructor(cap, width = 1) {
    this.cap = cap;
    this.cols = Array.from({ length: width }, () => []);
    this.count = 0; // rows added
    this.stride = 1;
    this.tail = false; // the newest row is off the stride
  }

  /** Rows held. */
  get n() {
    return this.cols[0].length;
  }

  /** A new column, null in the rows held so far; its index. */
  addColumn() {
    this.cols.push(new Array(this.n).fill(null));
    return this.cols.length - 1;
  }

  /** Adds one row, a value per column (a missing one is null). */
  add(row) {
    if (this.tail) for (const c of this.cols) c.pop();
    this.cols.forEach((c, k) => c.push(row[k] ?? null));
    this.tail = this.count % this.stride !== 0;
    this.count++;
    if (this.n >= this.cap) this.thin();
  }

  thin() {
    const last = this.n - 1;
    const keep = (_, i) => i % 2 === 0 || i === last;
    this.cols = this.cols.map((c) => c.filter(keep));
    this.stride *= 2;
    this.tail = (this.count - 1) % this.stride !== 0;
  }

  /** Drops the rows whose first column (the step) is `x` or later, so a step received again
   * (live after the hello's summary, or redone by a run resumed from its checkpoint)
   * replaces its row; `count` forgets them (exactly while nothing is thinned). */
  dropFrom(x) {
    let n = this.n;
    if (!n || !(this.cols[0][n - 1] >= x)) return;
    while (n && this.cols[0][n - 1] >= x) {
      for (const c of this.cols) c.pop();
      n--;
      this.count--;
    }
    this.tail = false;
  }

  /** The index of the last row whose first column is at most x; -1 if none. */
  indexAt(x) {
    const s = this.cols[0];
    let lo = 0, hi = s.length - 1, found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] <= x) { found = mid; lo = mid + 1; } else hi = mid - 1;
    }
    return found;
  }

  /** Column k's newest value. */
  last(k) {
    return this.cols[k][this.n - 1];
  }
}

/**
 * The server's history (the websocket hello's `history.series`, or GET .../history's: name ->
 * {step, min, max, last}) as one table: `steps`, the union of the named series' steps in
 * order, and per name its `field` at each of them (null where that series has no bucket).
 */
export function alignSeries(series, names, field = "last") {
  const steps = [...new Set(names.flatMap((n) => series[n]?.step || []))].sort((a, b) => a - b);
  const at = new Map(steps.map((s, i) => [s, i]));
  const cols = names.map((n) => {
    const col = new Array(steps.length).fill(null);
    const src = series[n];
    if (src) src.step.forEach((s, i) => { col[at.get(s)] = src[field][i] ?? null; });
    return col;
  });
  return { steps, cols };
}

/** An exponential moving average of `values` (alpha: the weight of the past; 0: none),
 * nulls kept as nulls and skipped over. */
export function ema(values, alpha) {
  let prev = null;
  return values.map((v) => {
    if (typeof v !== "number") return null;
    prev = prev === null || !alpha ? v : alpha * prev + (1 - alpha) * v;
    return prev;
  });
}
