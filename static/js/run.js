// The run page: one websocket feeds every panel (routed by the registry the template
// rendered); panels draw on requestAnimationFrame. The transport (transport.js) drives the
// run; the timeline (timeline.js) shows any recorded frame on every panel at once.
//
// A panel (docs/panels.md) has add(e) for live events and draw(); it may have seed(history)
// (the hello's bucketed series), seedFrame(events, step) (the hello's frame: its state at the
// head), follow(step) (the newest live frame's step), showFrame(events, step) (a recorded
// frame; null: back to live) and setCursor(step) (the timeline's position; null: none).
import { api } from "./api.js";
import { setEdits } from "./edits.js";
import { RunStream } from "./stream.js";
import { Timeline } from "./timeline.js";
import { Transport } from "./transport.js";

const root = document.getElementById("run");
const runId = root.dataset.runId;
const badge = document.getElementById("state-badge");
const counter = document.getElementById("step-counter");
const conn = document.getElementById("conn-status");
const nanBanner = document.getElementById("nan-banner");
const goneBanner = document.getElementById("gone-banner");
const downloadBanner = document.getElementById("download-banner");
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
const frameTypes = new Set(); // the event types of panels that show frames (showFrame)
let dirty = new Set();
let frame = 0;
// Live events wait here for the next animation frame, which takes them up to the next
// frame's first event: a batch holding several paced steps is played one step a screen
// frame, so every step is seen (a server hiccup may deliver several at once). At most
// MAX_BEHIND frames wait (a fifth of a second at 60 a second): see play().
let queue = [];
const MAX_BEHIND = 12;
let liveFrame = null; // the step of the newest frame played: what every frame panel depicts
let step = Number(counter.textContent) || 0; // the newest step seen: the head
let stream = null;
let gone = false;

// Panels with a `throttle` (ms: the time-series charts, whose canvases cost the most to
// paint) redraw for live data at most that often, so a paced run's 30-60 frames a second
// leave the screen frames to the frame panels; they still draw the last data (the panel stays
// dirty until then), and at once for the timeline (`urgent`).
let urgent = new Set();
const drawn = new Map(); // panel -> when it last drew

function schedule() {
  if (frame) return;
  frame = requestAnimationFrame((now) => {
    frame = 0;
    if (queue.length) play();
    const todo = dirty, rush = urgent;
    dirty = new Set();
    urgent = new Set();
    for (const p of todo) {
      if (p.throttle && !rush.has(p) && now - (drawn.get(p) ?? -Infinity) < p.throttle) {
        dirty.add(p); // later, with whatever else arrives meanwhile
        continue;
      }
      drawn.set(p, now);
      try { p.draw(); } catch (err) { console.warn("panel draw failed", err); }
    }
    if (dirty.size) schedule();
    counter.textContent = step;
  });
}

function redrawAll() {
  for (const { panel } of panels) {
    dirty.add(panel);
    urgent.add(panel);
  }
  schedule();
}

// A panel's own events of a frame.
function own(events, types) {
  return events.filter((e) => types.has(e.type));
}

// A missing data set fetched before the first step (the worker's `download` events): which
// file and how far it got. It goes once the run leaves the queue (trains, or fails).
function showDownload(d) {
  const unit = (d.total || d.done) < 1e6 ? [1e3, "kB"] : [1e6, "MB"];
  const size = (bytes) => (bytes / unit[0]).toFixed(1);
  const bar = downloadBanner.querySelector("progress");
  const of = d.total
    ? ` of ${size(d.total)} ${unit[1]} (${Math.floor((100 * d.done) / d.total)}%)`
    : ` ${unit[1]}`;
  downloadBanner.querySelector("span").textContent =
    `Downloading ${d.file} before training starts: ${size(d.done)}${of}`;
  if (d.total) {
    bar.max = d.total;
    bar.value = d.done;
  } else {
    bar.removeAttribute("value"); // an indeterminate bar: the mirror did not say the size
  }
  downloadBanner.hidden = false;
}

function setState(state, data = {}) {
  if (gone) return;
  if (state !== "queued") downloadBanner.hidden = true;
  badge.textContent = state;
  badge.dataset.state = state;
  transport.setState(state);
  if (state === "failed") {
    nanBanner.hidden = false;
    nanBanner.textContent = data.op
      ? `Training failed: ${data.message} (op: ${data.op})`
      : `Training failed: ${data.message || "see the run record"}`;
  }
}

function setHead(s) {
  if (!(s > step)) return;
  step = s;
  timeline.setHead(s);
  transport.setStep(s);
}

// Deleted (here, in another tab, or through the API): said plainly, nothing left to click.
function setGone() {
  if (gone) return;
  badge.textContent = "deleted";
  badge.dataset.state = "deleted";
  gone = true;
  goneBanner.hidden = false;
  conn.textContent = "run deleted";
  conn.dataset.status = "gone";
  transport.disable();
  timeline.disable();
  stream?.close();
}

const transport = new Transport(runId, {
  run: (run) => {
    setState(run.state, { message: run.error, op: run.error_op });
    setHead(run.step);
    schedule();
  },
  gone: setGone,
  error: (message) => { controlError.textContent = message; },
  // Playing or stepping shows what happens next: back to live.
  action: () => timeline.goLive(),
});

const timeline = new Timeline(runId, {
  cursor: (s) => {
    for (const { panel } of panels) panel.setCursor?.(s);
    redrawAll();
  },
  frame: (f) => {
    for (const { panel, events } of panels) panel.showFrame?.(own(f.events, events), f.step);
    redrawAll();
  },
  live: () => {
    for (const { panel } of panels) {
      panel.showFrame?.(null);
      panel.setCursor?.(null);
    }
    redrawAll();
  },
});

// The steps where a weight was set by hand: every chart marks them (chart.js).
const editSteps = new Set();

async function loadEdits() {
  try {
    for (const e of (await api.interventions(runId)).interventions) editSteps.add(e.step);
    setEdits(editSteps);
  } catch (err) {
    console.warn("could not list the run's edits", err);
  }
}

function onHello(hello, first) {
  if (first) {
    sections.forEach((el, i) => {
      const Panel = modules[i]?.default;
      if (!Panel) return;
      const events = new Set(el.dataset.events.split(" "));
      try {
        const panel = new Panel(el, hello);
        // A server that sends them: the run so far (bucketed) and every panel's state now;
        // what follows is live. An older one replays every event instead.
        panel.seed?.(hello.history);
        if (hello.frame) {
          panel.seedFrame?.(own(hello.frame.events, events), hello.frame.step);
          panel.follow?.(hello.frame.step);
        }
        panels.push({ panel, events });
        if (panel.showFrame) for (const t of events) frameTypes.add(t);
      } catch (err) {
        console.warn(`panel ${el.dataset.panel} failed to start`, err);
      }
    });
    redrawAll();
    loadEdits();
  }
  transport.setStep(step, hello.steps_per_epoch);
  transport.setPace(hello.config?.pace ?? null);
  setState(hello.run.state, { message: hello.run.error, op: hello.run.error_op });
  setHead(Math.max(hello.run.step, hello.history?.to ?? 0, hello.frame?.step ?? 0));
  schedule();
}

// Hands the queued events to their panels, up to (not into) the next frame's step. More than
// MAX_BEHIND frames waiting (a burst after a hiccup), the oldest are passed at once so that
// MAX_BEHIND remain, still shown one a screen frame: a lag never grows, and few steps are lost.
function play() {
  let frames = 0, prev = null;
  for (const e of queue) {
    if (frameTypes.has(e.type) && e.step !== prev) { frames++; prev = e.step; }
  }
  const take = Math.max(1, frames - MAX_BEHIND); // frames to hand over now
  let seen = 0, i = 0;
  prev = null;
  for (; i < queue.length; i++) {
    const e = queue[i];
    if (frameTypes.has(e.type) && e.step !== prev) {
      if (seen === take) break;
      seen++;
      prev = e.step;
    }
    apply(e);
  }
  queue = i === queue.length ? [] : queue.slice(i);
  if (queue.length) schedule(); // the rest on the next screen frame
}

// A frame's events may not include every type (a confusion matrix is made at epoch ends,
// pause and stop): each frame panel depicts the newest frame's step, with its latest event
// at or before it, as a recorded frame does.
function follow(step) {
  if (step === liveFrame) return;
  liveFrame = step;
  for (const { panel } of panels) {
    if (panel.follow) {
      panel.follow(step);
      if (!panel.scrubbed) dirty.add(panel);
    }
  }
}

function apply(e) {
  setHead(e.step);
  if (e.type === "state") setState(e.data.state, e.data);
  if (e.type === "download" && badge.dataset.state === "queued") showDownload(e.data);
  if (e.type === "intervention") {
    editSteps.add(e.step);
    setEdits(editSteps);
  }
  if (frameTypes.has(e.type)) follow(e.step);
  for (const { panel, events } of panels) {
    if (events.has(e.type)) {
      panel.add(e);
      // A scrubbed panel shows its frame: only its charts (if any) change.
      if (!panel.scrubbed || panel.throttle) dirty.add(panel);
    }
  }
}

function onEvents(events) {
  for (const e of events) queue.push(e);
  schedule();
}

loading.then((loaded) => {
  modules = loaded;
  if (gone) return;
  stream = new RunStream(runId, {
    onHello,
    onEvents,
    onStatus: (s) => {
      if (s === "gone") return setGone();
      conn.textContent = s === "live" ? "live" : "reconnecting…";
      conn.dataset.status = s;
    },
  });
});
