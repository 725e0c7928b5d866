// The graph panel's explanations: the hover tip and the search by label (any graph); on
// scalar graphs the chain-rule inspector (click or Enter on a node) and the backprop
// stepper's controls, whose numbers come from GET /api/runs/{id}/graph/backprop (stepper.js
// replays them).
import { Walk, fmt, inspector } from "./stepper.js";

// What the hover tip says of a node: label, op, data and grad (a tensor's shape and summaries).
export function tipText(node, data, grad) {
  const what = node.op ? `op ${node.op}` : "leaf (no op)";
  const lines = [node.label || "(unnamed)", what];
  if (node.shape) lines.push(`shape ${node.shape.join("×") || "scalar"} ${node.dtype}`);
  for (const [name, v] of [["data", data], ["grad", grad]]) {
    if (v && typeof v === "object") {
      lines.push(`${name} mean ${fmt(v.mean)} std ${fmt(v.std)}`,
        `  min ${fmt(v.min)} max ${fmt(v.max)}`);
    } else lines.push(`${name} ${v === null || v === undefined ? "?" : fmt(v)}`);
  }
  return lines;
}

export class Explainer {
  constructor(panel) {
    this.p = panel;
    this.walk = null; // the stepper's Walk while stepping
    this.selected = null; // the inspected node's index
    this.timer = null; // playing
    this.found = -1; // the last search match
  }

  async fetch(node) {
    const at = this.walk ? this.walk.t.step : this.p.step;
    const q = new URLSearchParams({ at: String(at) });
    if (node !== undefined) q.set("node", String(node));
    const r = await fetch(`/api/runs/${this.p.runId}/graph/backprop?${q}`);
    const body = await r.json();
    if (!r.ok) throw new Error(typeof body.detail === "string" ? body.detail : `${r.status}`);
    return body;
  }

  async inspect(i) {
    this.selected = i;
    this.p.applyValues();
    const box = this.p.ui.inspect;
    if (this.p.graph.data.kind !== "scalar" || !this.p.runId) {
      box.replaceChildren(...tipText(this.p.graph.data.nodes[i], ...this.pair(i)).map((l) => {
        const p = document.createElement("p");
        p.className = "mono";
        p.textContent = l;
        return p;
      }));
    } else {
      box.textContent = "…";
      box.hidden = false;
      try {
        const t = await this.fetch(i);
        if (this.selected !== i) return;
        box.replaceChildren(inspector(t, i, t.nudge));
      } catch (err) {
        box.textContent = `cannot explain this node: ${err.message}`;
      }
    }
    const close = document.createElement("button");
    close.type = "button";
    close.dataset.graphAction = "close";
    close.textContent = "Close";
    box.append(close);
    box.hidden = false;
    box.dataset.node = i;
    this.p.view.pz?.resize(); // the inspector took some of the view's width
    this.p.view.reveal(this.p.shapes.get(i)?.[0], false);
  }

  pair(i) {
    const { data, grad } = this.p.shown();
    return [data[i], grad[i]];
  }

  close() {
    if (!this.p.ui) return;
    this.p.ui.inspect.hidden = true;
    this.selected = null;
    if (this.p.graph && !this.p.stale) this.p.applyValues();
  }

  async start() {
    try {
      const t = await this.fetch();
      this.walk = new Walk(t, this.p.graph.data.edges);
    } catch (err) {
      this.p.ui.readout.textContent = `cannot step this graph: ${err.message}`;
      this.p.ui.stepper.hidden = false;
      return;
    }
    if (this.p.groups.length) await this.p.expandAll();
    this.p.ui.stepper.hidden = false;
    this.p.ui.stepStart.hidden = true;
    this.move(0);
  }

  move(by) {
    const w = this.walk;
    if (!w) return;
    w.pos = Math.max(0, Math.min(w.end, w.pos + by));
    this.p.el.dataset.stepper = w.pos ? w.phase : "forward";
    this.p.el.dataset.stepperPos = w.pos;
    this.p.ui.readout.textContent = w.say();
    if (w.pos === w.end) this.pause();
    this.p.applyValues();
  }

  play() {
    if (this.timer) return this.pause();
    if (this.walk.pos === this.walk.end) this.walk.pos = 0;
    this.p.ui.play.textContent = "Pause";
    this.timer = setInterval(() => this.move(1), 700);
  }

  pause() {
    clearInterval(this.timer);
    this.timer = null;
    if (this.p.ui) this.p.ui.play.textContent = "Play";
  }

  stop() {
    this.pause();
    if (!this.walk) return;
    this.walk = null;
    this.p.el.dataset.stepper = "off";
    delete this.p.el.dataset.stepperPos;
    this.p.ui.stepper.hidden = true;
    this.p.ui.stepStart.hidden = false;
    if (this.p.graph && !this.p.stale) this.p.applyValues();
  }

  hover(g, ev) {
    const tip = this.p.ui.tip;
    if (!g) { tip.hidden = true; return; }
    const i = Number(g.dataset.node);
    const { data, grad } = this.p.shown();
    tip.replaceChildren(...tipText(this.p.graph.data.nodes[i], data[i], grad[i]).map((line, k) => {
      const div = document.createElement("div");
      div.textContent = line;
      if (k === 0) div.className = "graph-tip-label";
      return div;
    }));
    tip.hidden = false;
    const r = g.getBoundingClientRect(), box = this.p.body.getBoundingClientRect();
    const x = ev ? ev.clientX : r.right, y = ev ? ev.clientY : r.bottom;
    tip.style.left = `${Math.min(x - box.left + 12, box.width - 220)}px`;
    tip.style.top = `${y - box.top + 12}px`;
  }

  // Search by label: the next node whose label holds the text (exact matches first); a
  // node inside a collapsed layer expands it.
  async find(text) {
    const q = text.trim().toLowerCase();
    if (!q || !this.p.graph) return;
    const nodes = this.p.graph.data.nodes;
    const hits = nodes.map((n, i) => i).filter((i) => nodes[i].label.toLowerCase().includes(q));
    const exact = (i) => nodes[i].label.toLowerCase() === q;
    hits.sort((a, b) => exact(b) - exact(a));
    this.p.ui.search.setCustomValidity(hits.length ? "" : "no such label");
    if (!hits.length) return;
    const i = hits[(hits.indexOf(this.found) + 1) % hits.length];
    this.found = i;
    const k = this.p.groups.findIndex((g) => g.nodes.includes(i));
    if (k >= 0 && !this.p.expanded.has(k)) { this.p.expanded.add(k); await this.p.render(); }
    const g = this.p.shapes.get(i)?.[0];
    this.selected = i;
    this.p.applyValues();
    this.p.view.reveal(g);
    g?.focus({ preventScroll: true });
  }
}
