// /sweeps/{id}: what a sweep searches, its runs' states, its best run and best setting, as
// GET /api/sweeps/{id} says (the server picks the best); asked again, at most once a second,
// when one of its runs changes (the live run list, /ws/runs). The comparison below it is
// compare.js's, grouped by the swept keys.
// Test hooks: #sweep's data-state ("active" or "done") and data-best (the best run's id).
import { api } from "./api.js";
import { listStream, showMetric, showValue } from "./runinfo.js";

const root = document.getElementById("sweep");
const REFRESH_MS = 1000;
let runs = new Set();
let pending = null;

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function values(v) {
  return Object.entries(v).map(([k, x]) => `${k.split(".").pop()}=${showValue(x)}`).join(", ");
}

function space(spec) {
  const keys = Object.entries(spec.space).map(([k, v]) => (Array.isArray(v)
    ? `${k} ∈ {${v.map(showValue).join(", ")}}`
    : `${k} ∈ [${v.min}, ${v.max}]${v.log ? " (log)" : ""}`));
  const how = spec.samples ? `${spec.samples} random draws` : "grid";
  return `${keys.join("; ")} · ${how} · ${spec.seeds} seed${spec.seeds > 1 ? "s" : ""} each`
    + (spec.preset ? ` · preset ${spec.preset}` : "");
}

function render(s) {
  runs = new Set(s.runs.map((r) => r.id));
  root.dataset.state = s.state;
  document.getElementById("sweep-space").textContent = space(s.spec);
  document.getElementById("sweep-counts").textContent =
    Object.entries(s.counts).map(([state, n]) => `${n} ${state}`).join(", ") || "none";
  const best = s.runs.find((r) => r.id === s.best_run);
  const bestEl = document.getElementById("sweep-best");
  if (best) {
    root.dataset.best = best.id;
    bestEl.replaceChildren(el("a", { href: `/runs/${best.id}`, textContent: best.name }),
      ` · final ${s.metric} ${showMetric(s.metric, s.best_value)}${s.state === "active" ? " (so far)" : ""}`);
  } else {
    bestEl.textContent = `none yet (no run has a ${s.metric})`;
  }
  const setting = s.best_setting;
  document.getElementById("sweep-best-setting").textContent = setting
    ? `${values(setting.values)} · mean final ${s.metric} ${showMetric(s.metric, setting.mean)} over ${setting.runs.length} run${setting.runs.length > 1 ? "s" : ""}`
    : "none yet";
}

async function refresh() {
  try {
    render(await api.sweep(root.dataset.sweepId));
  } catch (err) {
    document.getElementById("sweep-counts").textContent = `cannot load the sweep: ${err.message}`;
  }
}

if (root) {
  refresh();
  // The live badge (#compare-status) is compare.js's, which watches the same list.
  listStream((data) => {
    if (![...data.runs.map((r) => r.id), ...data.deleted].some((id) => runs.has(id))) return;
    if (pending) return;
    pending = setTimeout(() => { pending = null; refresh(); }, REFRESH_MS);
  }, () => {});
}
