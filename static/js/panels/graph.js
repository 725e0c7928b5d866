// Computation graph panel: the server's Graphviz DOT (the articles' `label | data | grad`
// boxes, op nodes between them) rendered in the browser by viz.js; the data and grad fields
// update in place as `graph_values` events arrive.
//
// Consumes (docs/events.md):
//   {"type": "graph", "step": 0, "data": {"kind": "scalar"|"tensor", "nodes": [{"id", "label",
//     "op", "data", "grad", ...}], "edges": [...], "dot": "digraph G {...}", "scope": "step"}}
//   {"type": "graph_values", "step": 50, "data": {"data": [...], "grad": [...]}}  (node order)
// Backend route: GET /api/runs/{id}/snapshots/graph and .../graph_values?at=STEP
import { instance } from "/static/vendor/viz.js";

let vizPromise = null;

function number(v) {
  return typeof v === "number" ? v.toFixed(4) : String(v);
}

function field(name, v) {
  if (v === null || v === undefined) return `${name} none`;
  if (typeof v === "object") return `${name} mean ${number(v.mean)} std ${number(v.std)}`;
  return `${name} ${number(v)}`;
}

export class GraphPanel {
  types = ["graph", "graph_values"];

  constructor(el) {
    this.el = el;
    this.body = el.querySelector(".panel-body");
    this.graph = null;
    this.values = null;
    this.rendered = false;
    this.texts = new Map(); // node id -> {data: <text>, grad: <text>}
  }

  add(e) {
    this.el.hidden = false;
    if (e.type === "graph") {
      this.graph = e;
      this.rendered = false;
    } else {
      this.values = e;
    }
  }

  async draw() {
    if (this.graph && !this.rendered) {
      this.rendered = true;
      vizPromise ??= instance();
      const viz = await vizPromise;
      const svg = viz.renderSVGElement(this.graph.data.dot);
      svg.classList.add("graph-svg");
      const scope = this.graph.data.scope === "sample 0"
        ? "The loss over one sample (the whole step's graph is too big to draw)." : "";
      this.body.replaceChildren(svg);
      if (scope) {
        const p = document.createElement("p");
        p.className = "muted";
        p.textContent = scope;
        this.body.prepend(p);
      }
      this.texts.clear();
      for (const g of svg.querySelectorAll("g.node")) {
        const id = g.querySelector("title")?.textContent ?? "";
        if (!/^n\d+$/.test(id)) continue;
        const entry = {};
        for (const t of g.querySelectorAll("text")) {
          if (t.textContent.startsWith("data")) entry.data = t;
          if (t.textContent.startsWith("grad")) entry.grad = t;
        }
        this.texts.set(Number(id.slice(1)), entry);
      }
      this.el.dataset.nodes = this.graph.data.nodes.length;
    }
    if (this.values && this.rendered && this.texts.size) {
      const { data, grad } = this.values.data;
      this.graph.data.nodes.forEach((node, i) => {
        const t = this.texts.get(node.id);
        if (!t) return;
        if (t.data) t.data.textContent = field("data", data[i]);
        if (t.grad) t.grad.textContent = field("grad", grad[i]);
      });
      this.el.dataset.step = this.values.step;
    }
  }
}
