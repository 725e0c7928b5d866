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

export default class NetworkPanel extends FramePanel {
  constructor(el, hello) {
    super(el);
    this.runId = hello.run.id;
    this.mats = this.refs = null; // the drawn frame's weights, and where each one lives
  }

  draw() {
    const weights = this.get("weights");
    if (!weights) return this.nothing("weights");
    const { mats, refs } = layers(weights.data);
    Object.assign(this, { mats, refs });
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
    if (this.editing) this.showEdit(this.editing); // the weight's value in this frame
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
    svg.addEventListener("click", (ev) => {
      const d = ev.target.dataset;
      if (ev.target.tagName === "line") this.showEdit([Number(d.l), Number(d.o), Number(d.i)]);
    });
    this.body.replaceChildren(svg, this.caption, this.editor());
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
    if (w === undefined) return;
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
