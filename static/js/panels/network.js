// Network diagram, like TensorFlow Playground: neurons as circles in columns, every edge
// coloured by its weight's sign (orange +, blue -) and as thick as its size, redrawn live.
// Small models only (they record every weight).
//
// Consumes (docs/events.md): the `weights` event, whose `structure` says where each
// parameter sits, so no name is parsed here:
//   {"type": "weights", "step": 5, "data": {"params": {"0.weight": [...], "0.bias": [...]},
//     "shapes": {"0.weight": [out, in], ...},
//     "structure": {"0.weight": {"layer": 0, "unit": null, "input": null, "kind": "weight"}}}}
//   (scalar runs: one entry per weight, e.g. "L0.N1.w2": {"layer": 0, "unit": 1, "input": 2})
// Backend route: GET /api/runs/{id}/snapshots/weights?at=STEP
import { FramePanel } from "./frame.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_UNITS = 24; // per column; bigger layers show their first units

/** Weight matrices W[layer][out][in] from a weights event, placed by its `structure`. */
export function layers({ params, shapes, structure }) {
  const mats = [];
  for (const [name, vals] of Object.entries(params)) {
    const s = structure?.[name];
    if (!s || s.kind !== "weight") continue;
    if (s.unit === null) { // a whole [out, in] matrix
      const [rows, cols] = shapes[name];
      mats[s.layer] = Array.from({ length: rows }, (_, r) => vals.slice(r * cols, (r + 1) * cols));
    } else {
      mats[s.layer] ??= [];
      mats[s.layer][s.unit] ??= [];
      mats[s.layer][s.unit][s.input] = vals[0];
    }
  }
  return mats.filter(Boolean);
}

// An edge's look: orange for +, blue for -, as thick as |w| relative to the largest.
function paint(line, w, max) {
  line.setAttribute("stroke", w >= 0 ? "#f28e2b" : "#4e79a7");
  line.setAttribute("stroke-width", (0.3 + 4 * Math.abs(w) / max).toFixed(2));
  line.dataset.w = w;
}

export default class NetworkPanel extends FramePanel {
  draw() {
    const weights = this.get("weights");
    if (!weights) return this.nothing("weights");
    const mats = layers(weights.data);
    if (!mats.length) return;
    const sizes = [mats[0][0].length, ...mats.map((m) => m.length)].map((n) => Math.min(n, MAX_UNITS));
    const edges = []; // [layer, out, in, w]
    mats.forEach((m, l) => {
      for (let o = 0; o < Math.min(m.length, MAX_UNITS); o++) {
        for (let i = 0; i < Math.min(m[o].length, MAX_UNITS); i++) edges.push([l, o, i, m[o][i]]);
      }
    });
    let max = 1e-9;
    for (const e of edges) max = Math.max(max, Math.abs(e[3]));
    // The same network as drawn (every frame of a run): repaint its edges in place; a
    // paced run redraws it up to 60 times a second.
    const key = `${sizes.join("-")}:${edges.length}`;
    if (key !== this.key || this.svg?.parentNode !== this.body) this.build(sizes, edges);
    this.lines.forEach((line, k) => paint(line, edges[k][3], max));
    this.caption.textContent = `step ${this.step} · layers ${sizes.join("–")} · ` +
      `orange positive, blue negative, width |w| (max ${max.toFixed(3)})`;
    this.key = key;
    this.stamp();
    this.el.dataset.edges = this.lines.length;
  }

  build(sizes, edges) {
    const W = 520, H = 260, pad = 24;
    const x = (c) => pad + (c * (W - 2 * pad)) / Math.max(1, sizes.length - 1);
    const y = (c, i) => (H * (i + 1)) / (sizes[c] + 1);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.classList.add("network");
    this.lines = edges.map(([l, o, i]) => {
      const line = document.createElementNS(SVG, "line");
      line.setAttribute("x1", x(l)); line.setAttribute("y1", y(l, i));
      line.setAttribute("x2", x(l + 1)); line.setAttribute("y2", y(l + 1, o));
      line.setAttribute("stroke-opacity", "0.75");
      svg.append(line);
      return line;
    });
    sizes.forEach((n, c) => {
      for (let i = 0; i < n; i++) {
        const circle = document.createElementNS(SVG, "circle");
        circle.setAttribute("cx", x(c)); circle.setAttribute("cy", y(c, i));
        circle.setAttribute("r", 7);
        circle.setAttribute("class", "neuron");
        svg.append(circle);
      }
    });
    this.caption = document.createElement("p");
    this.caption.className = "muted";
    this.svg = svg;
    this.body.replaceChildren(svg, this.caption);
  }
}
