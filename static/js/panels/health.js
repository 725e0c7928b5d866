// Health panel: per-parameter gradient norm, update/weight ratio (healthy around 1e-3) and
// the share of dead ReLU units, as of the latest record.
//
// Consumes (docs/events.md):
//   {"type": "health", "step": 50, "data": {"grad_norm": {"0.weight": 0.4},
//     "update_ratio": {"0.weight": 0.001}, "dead_relu": {"1": 0.05}}}
// Backend route: GET /api/runs/{id}/snapshots/health?at=STEP
// A NaN/Inf failure (a `state` event "failed" naming the op) is shown by the page's banner.

import { LatestPanel } from "./latest.js";

function fmt(v) {
  if (typeof v !== "number") return String(v);
  return Math.abs(v) >= 1e-3 && Math.abs(v) < 1e4 ? v.toFixed(4) : v.toExponential(2);
}

export class HealthPanel extends LatestPanel {
  types = ["health"];

  draw() {
    const { grad_norm: g, update_ratio: u, dead_relu: d } = this.latest.data;
    const rows = Object.keys(g).map((name) => {
      const ratio = u[name];
      const warn = typeof ratio === "number" && (ratio > 1e-1 || ratio < 1e-6) ? " warn" : "";
      return `<tr><th>${name}</th><td class="num">${fmt(g[name])}</td>` +
        `<td class="num${warn}">${ratio === undefined ? "" : fmt(ratio)}</td></tr>`;
    });
    const dead = Object.entries(d).map(([m, f]) =>
      `<tr><th>ReLU ${m}</th><td class="num${f > 0.5 ? " warn" : ""}">${(100 * f).toFixed(1)}% dead</td></tr>`);
    this.body.innerHTML =
      `<p class="muted">as of step ${this.latest.step}</p>` +
      `<table><thead><tr><th>parameter</th><th>grad norm</th><th>update/weight</th></tr></thead>` +
      `<tbody>${rows.join("")}</tbody></table>` +
      (dead.length ? `<table><tbody>${dead.join("")}</tbody></table>` : "");
  }
}
