// The backprop stepper and the chain-rule inspector: both replay the server's walk over a
// scalar graph (GET /api/runs/{id}/graph/backprop, engine/backprop.py), never computing it.
//
// The walk has 2n positions after the start: the forward pass fills data in topological
// order (n steps), then the backward pass fills grads in reverse topological order (n
// steps; a node's turn comes once every consumer has passed its grad down). Position p shows
// the first min(p, n) data and the first max(p - n, 0) grads; the rest read "?".

export function fmt(v, digits = 4) {
  return typeof v === "number" ? (v + 0).toFixed(digits) : String(v);
}

/** A node's expression from its operands, e.g. "a * b", "tanh(n)", "x**2". */
function expression(trace, i, operands) {
  const op = trace.ops[i], names = operands.map((c) => trace.names[c]);
  if (op === "+" || op === "*") return names.join(` ${op} `);
  if (op.startsWith("**")) return `${names[0]}${op}`;
  return `${op}(${names[0]})`;
}

export class Walk {
  /** trace: the route's answer; edges: the graph event's [child, parent] pairs. */
  constructor(trace, edges) {
    this.t = trace;
    this.n = trace.forward.length;
    this.pos = 0;
    this.operands = Array.from({ length: this.n }, () => []);
    for (const [c, p] of edges) this.operands[p].push(c);
    this.turn = new Map(trace.backward.map((s, k) => [s.node, k])); // node -> backward step
  }

  get end() {
    return 2 * this.n;
  }

  get phase() {
    return this.pos <= this.n ? "forward" : "backward";
  }

  /** What position pos shows: data and grad per node (null: not yet), the current node and
   * the edges that feed it ([child, parent]: operands forward, consumers backward). */
  state() {
    const { t, n, pos } = this;
    const data = new Array(n).fill(null), grad = new Array(n).fill(null);
    const f = Math.min(pos, n), b = Math.max(pos - n, 0);
    for (let k = 0; k < f; k++) data[t.forward[k]] = t.data[t.forward[k]];
    for (let k = 0; k < b; k++) grad[t.backward[k].node] = t.backward[k].grad;
    let current = null, edges = [];
    if (b > 0) {
      current = t.backward[b - 1].node;
      edges = t.backward[b - 1].terms.map((x) => [current, x.consumer]);
    } else if (f > 0) {
      current = t.forward[f - 1];
      edges = this.operands[current].map((c) => [c, current]);
    }
    return { data, grad, current, edges };
  }

  /** The readout: what the current step did, with its numbers. */
  say() {
    const { t, n, pos } = this;
    if (pos === 0) return `Forward pass: ${n} nodes to compute, inputs first. Press Step.`;
    if (pos <= n) {
      const i = t.forward[pos - 1], name = t.names[i];
      const how = t.ops[i] ? `${name} = ${expression(t, i, this.operands[i])}` : `${name} is an input`;
      return `forward ${pos}/${n}: ${how} = ${fmt(t.data[i])}`;
    }
    const k = pos - n - 1, s = t.backward[k], name = t.names[s.node];
    if (!s.terms.length) return `backward ${k + 1}/${n}: ${name}.grad = 1 (the output: d${name}/d${name})`;
    const rule = s.terms.map((x) => `${t.names[x.consumer]}.grad × ${x.local_rule}`).join(" + ");
    const sum = s.terms.map((x) => `${fmt(x.upstream)} × ${fmt(x.local)}`).join(" + ");
    return `backward ${k + 1}/${n}: ${name}.grad = ${rule} = ${sum} = ${fmt(s.grad)}`;
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

/** The inspector for node i: its grad as the chain rule's sum, with the nudge check. */
export function inspector(trace, i, nudge) {
  const box = el("div", "graph-inspect");
  const name = trace.names[i];
  box.append(el("h3", "", `${name}${trace.ops[i] ? ` (${trace.ops[i]})` : ""}`));
  box.append(el("p", "mono", `data ${fmt(trace.data[i])} · grad ${fmt(trace.grad[i])}`));
  const step = trace.backward.find((s) => s.node === i);
  const rule = el("div", "graph-rule");
  if (i === trace.root) {
    rule.append(el("p", "mono", `${name}.grad = 1 (the output: d${name}/d${name} = 1)`));
  } else {
    rule.append(el("p", "muted", `${name}.grad = Σ over the nodes that use ${name}: their grad × ` +
      "the local derivative"));
    for (const x of step.terms) {
      const line = el("p", "mono graph-term");
      line.append(el("span", "", x.rule), document.createElement("br"),
        el("span", "", `  = ${fmt(x.upstream)} × ${fmt(x.local)} = ${fmt(x.contribution)}`));
      rule.append(line);
    }
    rule.append(el("p", "mono graph-total", `${name}.grad = ${fmt(step.grad)}`));
  }
  box.append(rule);
  const check = el("div", "graph-nudge");
  const root = trace.names[trace.root];
  if (!nudge) check.append(el("p", "muted", "nudge check: computing…"));
  else if (nudge.slope === null) check.append(el("p", "muted", "nudge check: an op fails at ±h"));
  else {
    check.append(el("p", "muted", `Rise over run: nudge ${name} by h = ${nudge.h} and re-run ` +
      `what depends on it.`));
    check.append(el("p", "mono", `${root}(${name} + h) = ${fmt(nudge.plus, 8)}, ` +
      `${root}(${name} − h) = ${fmt(nudge.minus, 8)}`));
    const ok = nudge.agree ? "✓ agrees" : "✗ differs";
    const p = el("p", "mono", `(${root}(+h) − ${root}(−h)) / 2h = ${fmt(nudge.slope, 6)} ` +
      `vs ${name}.grad = ${fmt(nudge.grad, 6)}  ${ok}`);
    p.dataset.agree = nudge.agree;
    check.append(p);
  }
  box.append(check);
  return box;
}
