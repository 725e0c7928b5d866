// Computation graph panel: the articles' `label | data | grad` boxes, op nodes between them,
// rendered in the browser by viz.js; the data and grad fields update in place as
// `graph_values` events arrive.
//
// A small graph (at most COLLAPSE_ABOVE value nodes, e.g. the napkin neuron) is the server's
// DOT as it is. A bigger one (the micrograd classifier's 398 values) starts collapsed to one
// box per group (the event's `groups`, in their order), with the edges between groups;
// clicking a box expands it into its nodes inside a frame, clicking the frame's header
// collapses it again. That DOT is assembled here from the nodes' `record` labels (the
// server's own, as its DOT has them) and the edges; whether to collapse is this panel's call.
//
// Consumes (docs/events.md):
//   {"type": "graph", "step": 0, "data": {"kind": "scalar"|"tensor", "root": 12, "nodes":
//     [{"id", "label", "op", "group", "record", "data", "grad", ...}], "edges": [[child,
//     parent], ...], "groups": [{"name", "nodes": [id], "params": [id]}],
//     "dot": "digraph G {...}", "scope": "step"|"sample 0"}}
//   {"type": "graph_values", "step": 50, "data": {"data": [...], "grad": [...]}}  (node order)
// Backend route: GET /api/runs/{id}/snapshots/graph and .../graph_values?at=STEP
// Test hooks on the panel: data-nodes (value nodes in the graph), data-groups (layer boxes,
// 0 when not collapsible), data-expanded (layers expanded), data-shown (value nodes drawn),
// data-step (the step depicted), data-stepper ("off", "forward", "backward") and
// data-stepper-pos. In the SVG: layer boxes are `g.node[data-group]`, value and op nodes
// `g.node[data-node]` (the node's index; op nodes also data-part="op"), edges
// `g.edge[data-edge]` ("n3->n5_op"); viz's <title>s, internal ids, are removed.
//
// Around the SVG (graph/): zoom, pan and fit (view.js, svg-pan-zoom), hover tips, search by
// label, keyboard moves; on scalar graphs the chain-rule inspector (click a node) and the
// backprop stepper (stepper.js), both replaying GET /api/runs/{id}/graph/backprop.
// A FramePanel (frame.js): live, or the timeline's frame; the SVG is rendered again only when
// the graph event itself changes, a frame's values are written into it in place.
import { instance } from "/static/vendor/viz.js";
import { FramePanel } from "./frame.js";
import { chrome } from "../graph/chrome.js";
import { Explainer, tipText } from "../graph/explain.js";
import { GraphView } from "../graph/view.js";

export const COLLAPSE_ABOVE = 60; // value nodes; beyond it a graph is drawn one box per layer

let vizPromise = null;

function number(v) {
  return typeof v === "number" ? v.toFixed(4) : String(v);
}

// A tensor summary reads like the server's DOT: its values when it has up to 4, else mean/std.
function summary(v) {
  if (v === null || v === undefined) return "none";
  if (typeof v !== "object") return number(v);
  if (v.values && v.values.length <= 4) return `[${v.values.map(number).join(" ")}]`;
  return `mean ${number(v.mean)} std ${number(v.std)}`;
}

// A live value (graph_values events carry numbers) as the server's record shows it.
function field(name, v) {
  return `${name} ${summary(v)}`;
}

// A DOT quoted string: JSON's escapes of `"` and `\` are DOT's, and `\n` breaks a line.
function quoted(lines) {
  return JSON.stringify(lines.join("\n"));
}

function title(name) {
  return name === "loss" || name === "model" ? name : `layer ${name}`;
}

// Sum of squares of a node's gradient: exact for scalars, from mean and std for tensors.
function gradSquares(node, g) {
  if (typeof g === "number") return g * g;
  if (typeof g === "string") return NaN; // "nan", "inf": the norm is not finite either
  if (!g || typeof g !== "object" || typeof g.mean !== "number") return 0;
  const n = (node.shape || []).reduce((a, b) => a * b, 1);
  return n * (g.std * g.std + g.mean * g.mean);
}

// Whether two graph events are the same record (a frame's copy of the live one is).
function same(a, b) {
  return a === b || (a !== null && b !== null && a.step === b.step && a.seq === b.seq);
}

export default class GraphPanel extends FramePanel {
  constructor(el) {
    super(el);
    this.graph = null; // the graph event rendered
    this.values = null;
    this.stale = false; // the SVG needs (re)rendering
    this.token = 0; // the latest render; an older one still awaiting viz gives way
    this.groups = []; // [{name, nodes: [index], params: [index]}], empty: draw as is
    this.expanded = new Set(); // group indices
    this.texts = new Map(); // node index -> {data: <text>, grad: <text>}
    this.groupTexts = new Map(); // group index -> <text> of its live figure
    this.shapes = new Map(); // node index -> [its record's <g>, its op node's <g>]
    this.explain = new Explainer(this); // the tip, the inspector and the stepper
    this.runId = document.getElementById("run")?.dataset.runId ?? null;
    this.ui = chrome(this.body);
    this.view = new GraphView(this.ui.view);
    this.el.dataset.stepper = "off";
    this.body.addEventListener("click", (ev) => this.onClick(ev));
    // A drag that pans the view ends in a click on whatever is under it: not a click.
    this.body.addEventListener("pointerdown", (ev) => { this.down = [ev.clientX, ev.clientY]; });
    this.body.addEventListener("keydown", (ev) => this.onKey(ev));
    // Delegated to the body: its parts are built again after a "nothing recorded" text.
    this.body.addEventListener("pointerover",
      (ev) => this.explain.hover(ev.target.closest?.("g.node[data-node]"), ev));
    this.body.addEventListener("pointerout", (ev) => {
      if (!ev.relatedTarget?.closest?.("g.node[data-node]")) this.ui.tip.hidden = true;
    });
    this.body.addEventListener("focusin", (ev) => {
      const g = ev.target.closest?.("g.node[data-node]");
      if (g) { this.view.reveal(g, false); this.explain.hover(g, null); }
    });
  }

  // The shown graph and values; a new graph is rendered again (layers collapsed, unless it
  // has the same groups as the one drawn).
  pick() {
    const graph = this.get("graph");
    this.values = this.get("graph_values");
    if (same(graph, this.graph)) return;
    const groups = graph ? this.grouping(graph.data) : [];
    if (groups.length !== this.groups.length) this.expanded.clear();
    this.graph = graph;
    this.groups = groups;
    this.stale = true;
    this.explain.stop();
    this.explain.close();
  }

  // The server's groups as node indices; none (draw the DOT as it is) for a small graph, or
  // where one box would hide everything and show nothing.
  grouping({ nodes, groups }) {
    if (nodes.length <= COLLAPSE_ABOVE || !groups || groups.length < 2) return [];
    const index = new Map(nodes.map((n, i) => [n.id, i]));
    return groups.map((g) => ({ name: g.name, nodes: g.nodes.map((id) => index.get(id)),
      params: g.params.map((id) => index.get(id)) }));
  }

  onClick(ev) {
    const action = ev.target.closest("[data-graph-action]")?.dataset.graphAction;
    if (action) return this.act(action);
    const [x, y] = this.down ?? [ev.clientX, ev.clientY];
    if (ev.type === "click" && Math.hypot(ev.clientX - x, ev.clientY - y) > 4) return;
    const box = ev.target.closest("g.node[data-group-index]");
    if (box) {
      const k = Number(box.dataset.groupIndex);
      if (!this.expanded.delete(k)) this.expanded.add(k);
      return this.render().then(() => { // the layer's box (or header) stays in view
        const again = this.ui.view.querySelector(`g.node[data-group-index="${k}"]`);
        this.view.reveal(again, false);
        again?.focus({ preventScroll: true });
      });
    }
    const node = ev.target.closest("g.node[data-node]");
    if (node) this.explain.inspect(Number(node.dataset.node));
  }

  act(action) {
    const acts = {
      "expand-all": () => this.expandAll(),
      "collapse-all": () => { this.expanded.clear(); this.render(); },
      fit: () => this.view.fit(), "zoom-in": () => this.view.zoom(1.25),
      "zoom-out": () => this.view.zoom(0.8), home: () => this.view.home(),
      stepper: () => this.explain.start(), step: () => this.explain.move(1),
      back: () => this.explain.move(-1), play: () => this.explain.play(),
      stop: () => this.explain.stop(), close: () => this.explain.close(),
    };
    acts[action]?.();
  }

  expandAll() {
    this.expanded = new Set(this.groups.keys());
    return this.render();
  }

  // Enter or Space on a layer box toggles it, on a node explains it; Escape closes that.
  onKey(ev) {
    if (ev.key === "Enter" && ev.target === this.ui.search) {
      ev.preventDefault();
      return this.explain.find(this.ui.search.value);
    }
    const target = ev.target.closest("g.node[data-group-index], g.node[data-node]");
    if ((ev.key === "Enter" || ev.key === " ") && target) {
      ev.preventDefault();
      this.onClick(ev);
    } else if (ev.key === "Escape") this.explain.close();
  }

  draw() {
    this.pick();
    if (!this.graph) return this.nothing("computation graph");
    if (this.stale) this.render();
    else this.applyValues();
    this.stamp();
  }

  async render() {
    this.pick(); // the shown graph (live or the timeline's frame)
    this.stale = false;
    const token = ++this.token;
    vizPromise ??= instance();
    const viz = await vizPromise;
    if (token !== this.token || !this.graph) return;
    if (!this.body.contains(this.ui.view)) { // FramePanel's "nothing recorded" replaced them
      this.ui = chrome(this.body);
      this.view = new GraphView(this.ui.view);
    }
    const grouped = this.groups.length > 0;
    const svg = viz.renderSVGElement(grouped ? this.dot() : this.graph.data.dot);
    svg.classList.add("graph-svg");
    const { note, hint, layers, stepStart } = this.ui;
    note.hidden = this.graph.data.scope !== "sample 0";
    note.textContent = "The loss over one sample (the whole step's graph is too big to draw).";
    layers.hidden = !grouped;
    hint.textContent = `${this.graph.data.nodes.length} values in ${this.groups.length} groups: ` +
      "click a layer to expand it, its header to collapse it.";
    stepStart.hidden = this.graph.data.kind !== "scalar" || !this.runId;
    this.collect(svg);
    await this.view.show(svg);
    if (token !== this.token) return;
    this.el.dataset.nodes = this.graph.data.nodes.length;
    this.el.dataset.groups = this.groups.length;
    this.el.dataset.expanded = this.expanded.size;
    this.el.dataset.shown = this.texts.size;
    this.applyValues();
  }

  // Index the SVG: value nodes' data/grad texts, layer boxes' live figure and click target;
  // viz's <title>s (internal ids, shown as native tips) become data attributes.
  collect(svg) {
    this.texts.clear();
    this.groupTexts.clear();
    this.shapes.clear();
    const index = new Map(this.graph.data.nodes.map((n, i) => [n.id, i]));
    svg.querySelector("g.graph > title")?.remove(); // "G", shown on hovering empty space
    for (const g of svg.querySelectorAll("g.edge")) {
      const t = g.querySelector("title");
      g.dataset.edge = t?.textContent ?? "";
      t?.remove();
    }
    for (const g of svg.querySelectorAll("g.node")) {
      const t = g.querySelector("title");
      const id = t?.textContent ?? "";
      t?.remove();
      const group = /^grp(\d+)$/.exec(id);
      if (group) {
        const k = Number(group[1]);
        Object.assign(g.dataset, { groupIndex: k, group: this.groups[k].name,
          expanded: this.expanded.has(k) });
        g.setAttribute("tabindex", "0");
        g.setAttribute("role", "button");
        g.setAttribute("aria-label", `${this.expanded.has(k) ? "collapse" : "expand"} ` +
          title(this.groups[k].name));
        const live = [...g.querySelectorAll("text")].find((t) => /^(‖grad‖|data) /.test(t.textContent));
        if (live) this.groupTexts.set(k, live);
        continue;
      }
      const m = /^n(\d+)(_op)?$/.exec(id);
      if (!m || !index.has(Number(m[1]))) continue;
      const i = index.get(Number(m[1]));
      g.dataset.node = i;
      if (!this.shapes.has(i)) this.shapes.set(i, []);
      if (m[2]) { // the op node after the value node: shapes.get(i)[0] is the record
        this.shapes.get(i).push(g);
        g.dataset.part = "op";
        continue;
      }
      this.shapes.get(i).unshift(g);
      g.setAttribute("tabindex", "0");
      g.setAttribute("role", "button");
      const entry = {};
      for (const t of g.querySelectorAll("text")) {
        if (t.textContent.startsWith("data")) entry.data = t;
        if (t.textContent.startsWith("grad")) entry.grad = t;
      }
      this.texts.set(i, entry);
    }
  }

  // The values shown: the stepper's, else the frame's (or the graph event's own).
  shown() {
    if (this.explain.walk) return this.explain.walk.state();
    const v = this.values?.data;
    const nodes = this.graph.data.nodes;
    return { data: v?.data ?? nodes.map((n) => n.data), grad: v?.grad ?? nodes.map((n) => n.grad),
      current: null, edges: [] };
  }

  applyValues() {
    if (!this.graph) return;
    const { data, grad, current, edges } = this.shown();
    const unknown = (v) => (this.explain.walk && v === null ? "?" : null);
    for (const [i, t] of this.texts) {
      if (t.data) t.data.textContent = unknown(data[i]) ? "data ?" : field("data", data[i]);
      if (t.grad) t.grad.textContent = unknown(grad[i]) ? "grad ?" : field("grad", grad[i]);
      const node = this.shapes.get(i)?.[0];
      node?.setAttribute("aria-label", tipText(this.graph.data.nodes[i], data[i], grad[i]).join(", "));
    }
    if (this.values) {
      const { data: d, grad: g } = this.values.data;
      for (const [k, t] of this.groupTexts) t.textContent = this.figure(this.groups[k], d, g);
    }
    this.highlight(current, edges);
    this.stamp();
  }

  highlight(current, edges) {
    const svg = this.ui.view.querySelector("svg");
    if (!svg) return;
    for (const g of svg.querySelectorAll(".is-current")) g.classList.remove("is-current");
    for (const g of svg.querySelectorAll(".is-selected")) g.classList.remove("is-selected");
    for (const g of this.shapes.get(this.explain.selected) ?? []) g.classList.add("is-selected");
    if (current === null) return;
    for (const g of this.shapes.get(current) ?? []) g.classList.add("is-current");
    const nodes = this.graph.data.nodes;
    for (const [c, p] of edges) {
      svg.querySelector(`g.edge[data-edge="n${nodes[c].id}->n${nodes[p].id}_op"]`)?.classList.add("is-current");
    }
    this.view.reveal(this.shapes.get(current)?.[0], false);
  }

  // A collapsed layer's live figure: its parameters' gradient norm, or the loss's value.
  figure(group, data, grad) {
    const nodes = this.graph.data.nodes;
    if (group.params.length) {
      const sq = group.params.reduce(
        (s, i) => s + gradSquares(nodes[i], grad?.[i] ?? nodes[i].grad), 0);
      const norm = Math.sqrt(sq);
      // Vanishing gradients are the news here: 1.2e-9, not 0.0000.
      const tiny = norm > 0 && norm < 1e-3;
      return `‖grad‖ ${tiny ? norm.toExponential(2) : number(norm)}`;
    }
    const root = this.graph.data.root;
    const i = nodes.findIndex((n) => n.id === root);
    return group.nodes.includes(i) ? field("data", data?.[i] ?? nodes[i].data) : "data none";
  }

  // The DOT of the collapsed view: expanded layers in frames, the others one box each.
  dot() {
    const { nodes, edges } = this.graph.data;
    const groupOf = new Map();
    const index = new Map(nodes.map((n, i) => [n.id, i]));
    this.groups.forEach((g, k) => g.nodes.forEach((i) => groupOf.set(nodes[i].id, k)));
    const lines = ["digraph G {", "  rankdir=LR;", '  node [fontname="Helvetica"];'];
    this.groups.forEach((g, k) => {
      if (!this.expanded.has(k)) {
        const size = `${g.nodes.length} values` + (g.params.length ? ` · ${g.params.length} params` : "");
        const live = this.figure(g, null, null);
        lines.push(`  grp${k} [shape=box, style="rounded,filled", fillcolor="#e0f2fe", ` +
          `label=${quoted([`${title(g.name)} ▸`, size, live])}];`);
        return;
      }
      lines.push(`  subgraph cluster_${k} {`, '    style="rounded,filled"; color="#94a3b8"; ' +
        'fillcolor="#f8fafc"; label="";');
      lines.push(`    grp${k} [shape=box, style="rounded,filled", fillcolor="#bae6fd", ` +
        `label=${quoted([`${title(g.name)} ▾`, "click to collapse"])}];`);
      for (const i of g.nodes) lines.push(...this.nodeLines(nodes[i]));
      lines.push("  }");
    });
    const seen = new Set();
    for (const [c, p] of edges) {
      const gc = groupOf.get(c), gp = groupOf.get(p);
      const from = this.expanded.has(gc) ? `n${c}` : `grp${gc}`;
      const to = this.expanded.has(gp) ? `n${p}${nodes[index.get(p)].op ? "_op" : ""}` : `grp${gp}`;
      const line = `  ${from} -> ${to};`;
      if (from !== to && !seen.has(line)) { seen.add(line); lines.push(line); }
    }
    lines.push("}");
    return lines.join("\n") + "\n";
  }

  // One value node (and its op node) as engine/graph.py's to_dot draws it: its record label
  // is the server's.
  nodeLines(n) {
    const out = [`    n${n.id} [shape=record, label="${n.record}"];`];
    if (n.op) {
      out.push(`    n${n.id}_op [shape=ellipse, label=${quoted([n.op])}];`, `    n${n.id}_op -> n${n.id};`);
    }
    return out;
  }
}
