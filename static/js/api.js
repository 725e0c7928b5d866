// The REST API, as the pages use it. Errors become Error objects carrying the server's
// message and the HTTP status (`err.status`: 404 means the run is gone, 409 a state conflict).

async function request(method, path, body) {
  const init = { method, headers: {} };
  if (body instanceof Blob) { // a file, sent as it is (an uploaded CSV)
    init.headers["content-type"] = "text/csv";
    init.body = body;
  } else if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const err = new Error(describe(data.detail) || `${response.status} ${response.statusText}`);
    err.status = response.status;
    throw err;
  }
  return data;
}

function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${d.field || (d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return "";
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null) q.set(k, Array.isArray(v) ? v.join(",") : v);
  }
  return q.toString();
}

export const api = {
  presets: () => request("GET", "/api/presets"),
  runs: () => request("GET", "/api/runs"),
  run: (id) => request("GET", `/api/runs/${id}`),
  create: (body) => request("POST", "/api/runs", body),
  control: (id, action) => request("POST", `/api/runs/${id}/${action}`),
  step: (id, n) => request("POST", `/api/runs/${id}/step`, { n }),
  /** Change a run live: {pace: steps per second, or null for full speed}. */
  patch: (id, changes) => request("PATCH", `/api/runs/${id}`, changes),
  remove: (id) => request("DELETE", `/api/runs/${id}`),
  metrics: (id, since = 0) => request("GET", `/api/runs/${id}/metrics?since=${since}`),
  /** Series as min/max/last buckets: {names: [...], from, to, points}. */
  history: (id, params) => request("GET", `/api/runs/${id}/history?${query(params)}`),
  /** Runs' metric on one step grid, a line per run or per group (a mean with a band):
   * params {runs, metric, group, x, points, from, to} (GET /api/compare). */
  compare: (params) => request("GET", `/api/compare?${query(params)}`),
  /** A sweep, its runs as they are now, its best run and setting (GET /api/sweeps/{id}). */
  sweep: (id) => request("GET", `/api/sweeps/${id}`),
  /** Uploaded 2-D data sets (CSV): list, upload a File (its name names it), delete. */
  datasets: () => request("GET", "/api/datasets"),
  uploadDataset: (file) => request("POST", `/api/datasets?${query({ name: file.name })}`, file),
  deleteDataset: (id) => request("DELETE", `/api/datasets/${id}`),
  /** Set one weight of a paused run: {param, index, value} -> the recorded edit; or a point:
   * {what: "point", row?, x1, x2, label}. */
  intervene: (id, body) => request("POST", `/api/runs/${id}/interventions`, body),
  /** A new run from this one's state at `step`, with config changes: {step, config}. */
  fork: (id, body) => request("POST", `/api/runs/${id}/fork`, body),
  /** Every edit made to a run by hand, oldest first. */
  interventions: (id) => request("GET", `/api/runs/${id}/interventions`),
  /** The loss landscape around a recorded step; `params` a query string (at, params, n). */
  landscape: (id, params) => request("GET", `/api/runs/${id}/landscape?${params}`),
  /** The top Hessian eigenvalue at up to `points` recorded steps, and the 2 / lr line. */
  sharpness: (id, points) => request("GET", `/api/runs/${id}/sharpness?${query({ points })}`),
  /** The recorded frame at or before `at`, or the first after `after`; null when none (a
   * deleted run also answers 404: its websocket's close says so). */
  frame: async (id, { at, after }) => {
    try {
      return await request("GET", `/api/runs/${id}/frame?${query({ at, after })}`);
    } catch (err) {
      if (err.status === 404) return null;
      throw err;
    }
  },
};
