// The REST API, as the pages use it. Errors become Error objects carrying the server's message.

async function request(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (response.status === 204) return null;
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(describe(data.detail) || `${response.status} ${response.statusText}`);
  return data;
}

function describe(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${d.field || (d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
  }
  return "";
}

export const api = {
  presets: () => request("GET", "/api/presets"),
  runs: () => request("GET", "/api/runs"),
  run: (id) => request("GET", `/api/runs/${id}`),
  create: (body) => request("POST", "/api/runs", body),
  control: (id, action) => request("POST", `/api/runs/${id}/${action}`),
  step: (id, n) => request("POST", `/api/runs/${id}/step`, { n }),
  remove: (id) => request("DELETE", `/api/runs/${id}`),
  metrics: (id, since = 0) => request("GET", `/api/runs/${id}/metrics?since=${since}`),
};
