// The live run page: one websocket feeds every panel (routed by the registry the template
// rendered); panels draw on requestAnimationFrame.
import { api } from "./api.js";
import { RunStream } from "./stream.js";

const root = document.getElementById("run");
const runId = root.dataset.runId;
const badge = document.getElementById("state-badge");
const counter = document.getElementById("step-counter");
const conn = document.getElementById("conn-status");
const nanBanner = document.getElementById("nan-banner");
const controlError = document.getElementById("control-error");

// The panel registry (server/web/panels.py) as the template rendered it: each section names
// its module and its events. A module that fails to load leaves its panel hidden. The stream
// opens once they are in; the controls work before (they are set up without waiting).
const sections = [...document.querySelectorAll("[data-panel]")];
const loading = Promise.all(sections.map((el) => import(el.dataset.module).catch((err) => {
  console.warn(`panel ${el.dataset.panel} failed to load`, err);
  return null;
})));
let modules = [];
const panels = []; // [{panel, events: Set}]
let dirty = new Set();
let frame = 0;
let step = 0;

function schedule() {
  if (frame) return;
  frame = requestAnimationFrame(() => {
    frame = 0;
    const todo = dirty;
    dirty = new Set();
    for (const p of todo) {
      try { p.draw(); } catch (err) { console.warn("panel draw failed", err); }
    }
    counter.textContent = step;
  });
}

function setState(state, data = {}) {
  badge.textContent = state;
  badge.dataset.state = state;
  if (state === "failed") {
    nanBanner.hidden = false;
    nanBanner.textContent = data.op
      ? `Training failed: ${data.message} (op: ${data.op})`
      : `Training failed: ${data.message || "see the run record"}`;
  }
}

function onHello(hello) {
  if (!panels.length) {
    sections.forEach((el, i) => {
      const Panel = modules[i]?.default;
      if (Panel) panels.push({ panel: new Panel(el, hello), events: new Set(el.dataset.events.split(" ")) });
    });
  }
  setState(hello.run.state, { message: hello.run.error, op: hello.run.error_op });
}

function onEvents(events) {
  for (const e of events) {
    if (e.step > step) step = e.step;
    if (e.type === "state") setState(e.data.state, e.data);
    for (const { panel, events } of panels) {
      if (events.has(e.type)) {
        panel.add(e);
        dirty.add(panel);
      }
    }
  }
  schedule();
}

let stream = null;
loading.then((loaded) => {
  modules = loaded;
  stream = new RunStream(runId, {
    onHello,
    onEvents,
    onStatus: (s) => {
      conn.textContent = s === "live" ? "live" : s === "gone" ? "run deleted" : "reconnecting…";
      conn.dataset.status = s;
    },
  });
});

// -- controls: each calls the REST API; the stream shows the effect ---------------------------
document.getElementById("controls").addEventListener("click", async (ev) => {
  const action = ev.target.dataset?.action;
  if (!action) return;
  controlError.textContent = "";
  try {
    if (action === "step") {
      const n = Number(document.getElementById("step-n").value) || 1;
      const run = await api.step(runId, n);
      step = Math.max(step, run.step);
      counter.textContent = run.step;
    } else if (action === "delete") {
      if (!confirm("Delete this run and its history?")) return;
      stream?.close();
      await api.remove(runId);
      location.href = "/";
    } else {
      const run = await api.control(runId, action);
      setState(run.state);
    }
  } catch (err) {
    controlError.textContent = err.message;
  }
});
