// What the run table (index.js) and /compare both use of runs: the live run list (/ws/runs),
// a config as dotted keys, the keys whose values differ across a set of runs, and figures
// formatted for a cell. Presentation only: every figure comes from the server (a run's
// `summary`, its timestamps).

/** Follow /ws/runs: `onMessage` gets each message ({full?, runs, deleted}), `onStatus`
 * "live" or "reconnecting…"; it reconnects with a growing wait (the first message after a
 * reconnect is the full list). */
export function listStream(onMessage, onStatus, retry = 250) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/runs`);
  ws.onopen = () => { onStatus("live"); retry = 250; };
  ws.onmessage = (msg) => onMessage(JSON.parse(msg.data));
  ws.onclose = () => {
    onStatus("reconnecting…");
    setTimeout(() => listStream(onMessage, onStatus, Math.min(retry * 2, 5000)), retry);
  };
}

/** A config as [dotted key, value] pairs of its leaves (lists are leaves). */
export function flatConfig(config, prefix = "") {
  const out = [];
  for (const [k, v] of Object.entries(config || {})) {
    if (v && typeof v === "object" && !Array.isArray(v)) out.push(...flatConfig(v, `${prefix}${k}.`));
    else out.push([`${prefix}${k}`, v]);
  }
  return out;
}

/** The value of a config leaf as text ("16,16"; "none" for null or an empty list). */
export function showValue(v) {
  if (Array.isArray(v)) return v.length ? v.join(",") : "none";
  return v === null || v === undefined ? "none" : String(v);
}

// Settings that never change what a run computes (its pace is bit-identical at any speed):
// never listed as a difference.
const NOT_HYPERPARAMETERS = new Set(["name", "pace", "start_paused"]);

/** The dotted config keys whose values differ across `runs` (none for one run), leaving
 * out the settings that do not change what is computed: the keys with the most distinct
 * values first (a sweep's learning rates before its data set), then in config order. */
export function differingKeys(runs) {
  const flats = runs.map((r) => new Map(flatConfig(r.config)
    .filter(([k]) => !NOT_HYPERPARAMETERS.has(k))));
  const keys = [...new Set(flats.flatMap((f) => [...f.keys()]))];
  const distinct = new Map(keys.map((k) => [k, new Set(flats.map((f) => showValue(f.get(k)))).size]));
  return keys.filter((k) => distinct.get(k) > 1).sort((a, b) => distinct.get(b) - distinct.get(a));
}

/** Short names for dotted keys: the last part, or the whole key where two would clash. */
export function shortKeys(keys) {
  const last = (k) => k.split(".").pop();
  const count = new Map();
  for (const k of keys) count.set(last(k), (count.get(last(k)) || 0) + 1);
  return new Map(keys.map((k) => [k, count.get(last(k)) > 1 ? k : last(k)]));
}

/** A config key's value in a run's config. */
export function configValue(config, key) {
  return key.split(".").reduce((o, k) => (o == null ? undefined : o[k]), config);
}

/** A metric for a cell: accuracies as percentages, the rest to 4 significant digits. */
export function showMetric(name, v) {
  if (typeof v !== "number") return "–";
  if (name.endsWith("_acc")) return `${(100 * v).toFixed(2)}%`;
  return v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(3) : v.toPrecision(4);
}

/** Seconds a run has trained: from its start to its end (or to now while it is active). */
export function durationOf(run, now = Date.now() / 1000) {
  if (run.started_at == null) return null;
  const end = run.finished_at ?? (["running", "paused"].includes(run.state) ? now : run.updated_at);
  return Math.max(0, end - run.started_at);
}

/** Seconds as "42 s", "3 m 07 s", "2 h 05 m". */
export function showDuration(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60), h = Math.floor(m / 60);
  if (h) return `${h} h ${String(m % 60).padStart(2, "0")} m`;
  return `${m} m ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
}
