// A parallel-coordinates plot in plain SVG (/compare): an axis per config key that differs
// between the runs and a last one for a final figure; each run is a polyline across them.
// A numeric axis is linear, or logarithmic when its values are positive and span more than
// 20x (learning rates); any other axis spaces its distinct values evenly. Hovering a line
// names its run (an SVG <title>).
import { showValue } from "./runinfo.js";

const SVG = "http://www.w3.org/2000/svg";
const HEIGHT = 260, TOP = 34, BOTTOM = 26, SIDE = 48;

function node(tag, attrs = {}, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
  if (text !== undefined) n.textContent = text;
  return n;
}

/** An axis over `values` (one per run): position(v) in 0..1 (0 at the bottom) and ticks. */
function scale(values) {
  const known = values.filter((v) => v !== null && v !== undefined);
  if (known.length && known.every((v) => typeof v === "number")) {
    const lo = Math.min(...known), hi = Math.max(...known);
    const log = lo > 0 && hi / lo > 20;
    const f = log ? Math.log : (v) => v;
    const span = f(hi) - f(lo) || 1;
    const pos = (v) => (typeof v === "number" ? (f(v) - f(lo)) / span : null);
    const fmt = (v) => (Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(1) : String(+v.toPrecision(3)));
    const ticks = lo === hi ? [[0.5, fmt(lo)]] : [[0, fmt(lo)], [1, fmt(hi)]];
    return { pos: lo === hi ? (v) => (typeof v === "number" ? 0.5 : null) : pos, ticks, log };
  }
  const cats = [...new Set(values.map(showValue))];
  const at = (i) => (cats.length === 1 ? 0.5 : i / (cats.length - 1));
  return { pos: (v) => at(cats.indexOf(showValue(v))), ticks: cats.map((c, i) => [at(i), c]), log: false };
}

/**
 * Draw into `host`: `axes` is [{label, values}] (values one per run, in `runs` order),
 * `runs` [{name, color}]. Replaces what `host` held.
 */
export function drawParcoords(host, axes, runs) {
  const width = Math.max(300, host.clientWidth || 600);
  const svg = node("svg", { viewBox: `0 0 ${width} ${HEIGHT}`, class: "parcoords", role: "img" });
  svg.setAttribute("aria-label", `parallel coordinates of ${runs.length} runs over ${axes.length} axes`);
  const step = axes.length > 1 ? (width - 2 * SIDE) / (axes.length - 1) : 0;
  const x = (i) => (axes.length > 1 ? SIDE + i * step : width / 2);
  const y = (p) => TOP + (1 - p) * (HEIGHT - TOP - BOTTOM);
  const scales = axes.map((a) => scale(a.values));
  runs.forEach((run, r) => {
    const pts = [];
    axes.forEach((a, i) => {
      const p = scales[i].pos(a.values[r]);
      if (p !== null && p >= 0) pts.push(`${x(i).toFixed(1)},${y(p).toFixed(1)}`);
    });
    const line = node("polyline", { points: pts.join(" "), class: "run", stroke: run.color });
    line.dataset.run = run.id;
    line.append(node("title", {}, run.name));
    svg.append(line);
  });
  axes.forEach((a, i) => {
    const g = node("g", { class: "axis" });
    g.append(node("line", { x1: x(i), x2: x(i), y1: y(0), y2: y(1) }));
    const anchor = i === 0 ? "start" : i === axes.length - 1 ? "end" : "middle";
    const lx = i === 0 ? x(i) - SIDE + 4 : i === axes.length - 1 ? x(i) + SIDE - 4 : x(i);
    g.append(node("text", { x: lx, y: 12, "text-anchor": anchor, "font-weight": 600 },
      a.label + (scales[i].log ? " (log)" : "")));
    for (const [p, text] of scales[i].ticks) {
      g.append(node("text", { x: x(i) + 4, y: y(p) + 4 }, text.length > 14 ? `${text.slice(0, 13)}…` : text));
    }
    svg.append(g);
  });
  host.replaceChildren(svg);
  host.dataset.axes = axes.length;
  host.dataset.lines = runs.length;
}
