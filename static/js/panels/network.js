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
import { api } from "../api.js";
import { FramePanel } from "./frame.js";

const SVG = "http://www.w3.org/2000/svg";
const MAX_UNITS = 24; // per column; bigger layers show their first units

/** Weight matrices W[layer][out][in] from a weights event, placed by its `structure`, and
 * beside them, where each weight lives: {param, index} as the interventions API names it. */
export function layers({ params, shapes, structure }) {
  const mats = [], refs = [];
  for (const [name, vals] of Object.entries(params)) {
    const s = structure?.[name];
    if (!s || s.kind !== "weight") continue;
    if (s.unit === null) { // a whole [out, in] matrix
      const [rows, cols] = shapes[name];
      mats[s.layer] = Array.from({ length: rows }, (_, r) => vals.slice(r * cols, (r + 1) * cols));
      refs[s.layer] = Array.from({ length: rows }, (_, r) =>
        Array.from({ length: cols }, (_, c) => ({ param: name, index: [r, c] })));
    } else {
      for (const m of [mats, refs]) {
        m[s.layer] ??= [];
        m[s.layer][s.unit] ??= [];
      }
      mats[s.layer][s.unit][s.input] = vals[0];
      refs[s.layer][s.unit][s.input] = { param: name, index: [] };
    }
  }
  return { mats: mats.filter(Boolean), refs: refs.filter(Boolean) };
}

// An edge's look: orange for +, blue for -, as thick as |w| relative to the largest.
function paint(line, w, max) {
  line.setAttribute("stroke", w >= 0 ? "#f28e2b" : "#4e79a7");
  line.setAttribute("stroke-width", (0.3 + 4 * Math.abs(w) / max).toFixed(2));
  line.dataset.w = w;
}

// Paint a unit's map (NeuronLayer image bytes: 127.5 is 0) on its canvas, coloured like the
// edges. A canvas per unit (in a foreignObject), not an <image>: a paced run repaints every
// map up to 60 times a second, and encoding and decoding images would not keep up.
// Each byte's colour as one RGBA word (little-endian: A B G R), computed once: 127.5 is
// white, 255 full orange (+), 0 full blue (-).
const COLOURS = new Uint32Array(256).map((_, v) => {
  const a = (v - 127.5) / 127.5;
  const [r, g, b] = a >= 0 ? [242, 142, 43] : [78, 121, 167];
  const t = Math.abs(a);
  const mix = (c) => Math.round(255 - t * (255 - c));
  return ((255 << 24) | (mix(b) << 16) | (mix(g) << 8) | mix(r)) >>> 0;
});

function paintMap(canvas, b64, side) {
  const text = atob(b64);
  if (canvas.width !== side) canvas.width = canvas.height = side;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(side, side);
  const words = new Uint32Array(img.data.buffer);
  for (let k = 0; k < text.length; k++) {
    // The grid's first row is its lowest y: flip it so that up is up.
    const row = side - 1 - Math.floor(k / side);
    words[row * side + (k % side)] = COLOURS[text.charCodeAt(k)];
  }
  ctx.putImageData(img, 0, 0);
}

const range = (n) => Array.from({ length: n }, (_, k) => k);

export default class NetworkPanel extends FramePanel {
  constructor(el, hello) {
    super(el);
    this.runId = hello.run.id;
    this.mats = this.refs = null; // the drawn frame's weights, and where each one lives
  }

  draw() {
    const weights = this.get("weights");
    const neurons = this.get("neurons")?.data ?? null;
    if (!weights && !neurons) return this.nothing("weights");
    // Every weight when the model is small (and so where each lives, for editing).
    const { mats, refs } = weights ? layers(weights.data) : { mats: null, refs: null };
    Object.assign(this, { mats, refs });
    // The columns' units and the edges between them: for 2-D data sets the server's choice
    // (a wide layer: the units that weigh most downstream) with their weights and maps, for
    // a network of any size; otherwise the first MAX_UNITS of each layer.
    let widths, shown;
    const edges = []; // [layer, out, in, w]
    if (neurons) {
      const inputs = neurons.layers[0].weights[0].length;
      widths = [inputs, ...neurons.layers.map((L) => L.units)];
      shown = [range(inputs), ...neurons.layers.map((L) => L.shown)];
      neurons.layers.forEach((L, l) => L.shown.forEach((o, a) =>
        shown[l].forEach((i, b) => edges.push([l, o, i, L.weights[a][b]]))));
    } else {
      if (!mats.length) return;
      widths = [mats[0][0].length, ...mats.map((m) => m.length)];
      shown = widths.map((n) => range(Math.min(n, MAX_UNITS)));
      mats.forEach((m, l) => {
        for (const o of shown[l + 1]) for (const i of shown[l]) edges.push([l, o, i, m[o][i]]);
      });
    }
    let max = 1e-9;
    for (const e of edges) max = Math.max(max, Math.abs(e[3]));
    // The same network as drawn (every frame of a run): repaint its edges in place; a
    // paced run redraws it up to 60 times a second.
    const key = `${shown.map((s) => s.join(",")).join("|")}:${Boolean(neurons)}`;
    if (key !== this.key || this.svg?.parentNode !== this.body) this.build(shown, edges, neurons);
    this.lines.forEach((line, k) => paint(line, edges[k][3], max));
    if (neurons && neurons !== this.mapped) this.paintMaps(neurons);
    if (this.editing) this.showEdit(this.editing); // the weight's value in this frame
    const hidden = widths.map((n, c) => n - shown[c].length).filter((h) => h > 0).length;
    const cut = hidden ? " · wide layers show the units that weigh most downstream" : "";
    this.caption.textContent = `step ${this.step} · units ${widths.map((n, c) =>
      shown[c].length < n ? `${shown[c].length} of ${n}` : n).join("–")}${cut} · ` +
      `orange positive, blue negative, width |w| (max ${max.toFixed(3)})` +
      (neurons ? " · each unit shows its output over the input plane" : "");
    this.key = key;
    this.stamp();
    this.el.dataset.edges = this.lines.length;
  }

  build(shown, edges, neurons) {
    const W = 520, H = 360, pad = 24;
    const x = (c) => pad + (c * (W - 2 * pad)) / Math.max(1, shown.length - 1);
    const pos = shown.map((units) => new Map(units.map((u, k) => [u, k])));
    const y = (c, unit) => (H * (pos[c].get(unit) + 1)) / (shown[c].length + 1);
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.classList.add("network");
    this.lines = edges.map(([l, o, i]) => {
      const line = document.createElementNS(SVG, "line");
      Object.assign(line.dataset, { l, o, i });
      line.setAttribute("x1", x(l)); line.setAttribute("y1", y(l, i));
      line.setAttribute("x2", x(l + 1)); line.setAttribute("y2", y(l + 1, o));
      line.setAttribute("stroke-opacity", "0.75");
      svg.append(line);
      return line;
    });
    // Wide transparent twins on top: a thin edge is still easy to click.
    for (const line of this.lines) {
      const hit = line.cloneNode();
      hit.setAttribute("class", "hit");
      svg.append(hit);
    }
    // Units: a map when the server sends one (every column but the inputs), else a circle.
    const side = Math.min(24, (H / (Math.max(...shown.map((s) => s.length)) + 1)) * 0.85);
    this.maps = [];
    shown.forEach((units, c) => {
      for (const u of units) {
        if (neurons && c > 0) {
          const box = document.createElementNS(SVG, "foreignObject");
          box.setAttribute("x", x(c) - side / 2); box.setAttribute("y", y(c, u) - side / 2);
          box.setAttribute("width", side); box.setAttribute("height", side);
          const canvas = document.createElement("canvas");
          canvas.className = "neuron-map";
          canvas.dataset.layer = c - 1;
          canvas.dataset.unit = u;
          box.append(canvas);
          this.maps.push(canvas);
          svg.append(box);
        } else {
          const circle = document.createElementNS(SVG, "circle");
          circle.setAttribute("cx", x(c)); circle.setAttribute("cy", y(c, u));
          circle.setAttribute("r", 7);
          circle.setAttribute("class", "neuron");
          svg.append(circle);
        }
      }
    });
    this.mapped = null;
    this.caption = document.createElement("p");
    this.caption.className = "muted";
    this.tip = document.createElement("p");
    this.tip.className = "network-tip muted";
    this.svg = svg;
    svg.addEventListener("click", (ev) => {
      const d = ev.target.dataset;
      if (ev.target.tagName === "line") this.showEdit([Number(d.l), Number(d.o), Number(d.i)]);
    });
    // Hovering an edge says its weight.
    svg.addEventListener("mouseover", (ev) => {
      const d = ev.target.dataset;
      if (ev.target.tagName !== "line") return;
      const line = this.lines.find((l) => l.dataset.l === d.l && l.dataset.o === d.o && l.dataset.i === d.i);
      const w = Number(line?.dataset.w);
      if (line) this.tip.textContent = `layer ${d.l}: input ${d.i} → unit ${d.o}, weight ${w.toPrecision(4)}`;
    });
    this.body.replaceChildren(svg, this.tip, this.caption, this.editor());
  }

  // Each unit's map of this frame (a new neurons event: the maps change with the weights).
  paintMaps(neurons) {
    for (const canvas of this.maps) {
      const layer = neurons.layers[canvas.dataset.layer];
      const k = layer?.shown.indexOf(Number(canvas.dataset.unit));
      if (k === undefined || k < 0) continue;
      paintMap(canvas, layer.images[k], neurons.grid);
      canvas.dataset.scale = layer.scale[k];
    }
    this.mapped = neurons;
    this.el.dataset.maps = this.maps.length;
  }

  // -- setting a weight by hand (a paused run): POST /api/runs/{id}/interventions ----------
  editor() {
    const form = document.createElement("form");
    form.className = "weight-edit";
    form.hidden = true;
    form.innerHTML = `<span class="which"></span>
      <input type="number" step="any" name="value" aria-label="new weight" required>
      <button type="submit">Set weight</button> <span class="msg muted" role="status"></span>`;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const [l, o, i] = this.editing;
      const ref = this.refs[l]?.[o]?.[i];
      const msg = form.querySelector(".msg");
      if (!ref) return;
      try {
        const edit = await api.intervene(this.runId, { ...ref, value: Number(form.value.value) });
        msg.textContent = `set at step ${edit.step}: ${edit.old.toPrecision(4)} → ${edit.new}`;
        form.dataset.done = String(edit.step);
      } catch (err) {
        msg.textContent = err.message;
      }
    });
    this.form = form;
    return form;
  }

  showEdit([l, o, i]) {
    const w = this.mats?.[l]?.[o]?.[i];
    if (w === undefined) return; // a big model: its weights are not all recorded, not editable
    this.editing = [l, o, i];
    const ref = this.refs[l][o][i];
    const where = ref.index.length ? `${ref.param}[${ref.index.join(", ")}]` : ref.param;
    this.form.querySelector(".which").textContent =
      `layer ${l}, input ${i} → unit ${o} (${where}) = ${w.toPrecision(4)}`;
    const key = `${l},${o},${i}`;
    for (const line of this.lines) {
      line.classList.toggle("selected", `${line.dataset.l},${line.dataset.o},${line.dataset.i}` === key);
    }
    this.form.hidden = false;
  }
}
