// Sharpness panel: the top eigenvalue of the loss Hessian at the recorded steps (power
// iteration on Hessian-vector products, computed by the server), against the stability
// limit 2 / lr: gradient descent on a valley sharper than 2 / lr overshoots further at every
// step and diverges (Cohen et al. 2021, "edge of stability"). Log scale.
//
// Backend route: GET /api/runs/{id}/sharpness?points=100 (docs/panels.md). Nothing is
// computed until the panel is opened (its button); open, it asks again as new frames come
// (at most once a second, one request at a time: the server computes only the new steps),
// and marks the timeline's frame step.
// Consumes (docs/events.md): weights / histograms (a new frame: time to ask again).
// Test hooks on the section: data-state (closed | loading | ready | error), data-step,
// data-points, data-last (the newest value), data-limit (2 / lr, "" for Adam); the chart's
// div has data-marker (chart.js).
import { api } from "../api.js";
import { FramePanel } from "./frame.js";
import { line, makeChart, reference } from "./chart.js";

const EVERY = 1000; // ms between requests while a run goes
const HEIGHT = 220;

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

export default class SharpnessPanel extends FramePanel {
  constructor(el, hello) {
    super(el);
    this.runId = hello?.run?.id ?? document.getElementById("run")?.dataset.runId;
    this.open = false;
    this.busy = false;
    this.asked = -Infinity; // when the last request went out
    this.askedFor = null; // the newest step it covered
    this.timer = 0;
    this.plot = null;
    this.el.dataset.state = "closed";
    this.button = document.createElement("button");
    this.button.type = "button";
    this.button.textContent = "Compute the sharpness";
    this.button.addEventListener("click", () => { this.open = true; this.button.hidden = true; this.request(); });
    this.status = document.createElement("p");
    this.status.className = "muted";
    this.status.textContent = "The top Hessian eigenvalue at each recorded step, against 2 / lr.";
    this.chartEl = document.createElement("div");
    this.chartEl.className = "chart";
    this.body.replaceChildren(this.button, this.status, this.chartEl);
  }

  draw() {
    if (this.open) this.request();
    if (this.plot) this.plot.setMarker(this.scrubbed ? this.step : null);
    this.stamp();
  }

  // Asks again when frames came since the last answer, at most every EVERY ms.
  request() {
    const head = this.liveStep;
    if (this.busy || this.runId === undefined || (this.askedFor !== null && head === this.askedFor)) return;
    const wait = this.asked + EVERY - performance.now();
    if (wait > 0) {
      if (!this.timer) this.timer = setTimeout(() => { this.timer = 0; this.request(); }, wait);
      return;
    }
    this.fetch(head);
  }

  async fetch(head) {
    this.busy = true;
    this.asked = performance.now();
    if (!this.plot) {
      this.el.dataset.state = "loading";
      this.status.textContent = "Computing the sharpness…";
    }
    try {
      const data = await api.sharpness(this.runId, 100);
      this.askedFor = head;
      this.render(data);
    } catch (err) {
      this.askedFor = head;
      this.el.dataset.state = "error";
      this.status.textContent = `No sharpness: ${err.message}`;
    }
    this.busy = false;
    if (this.liveStep !== this.askedFor) this.request();
  }

  render(d) {
    const values = d.values.map(num);
    const data = [d.steps, values.map((v) => (v !== null && v > 0 ? v : null))];
    if (d.limit !== null) data.push(d.steps.map(() => d.limit));
    if (!this.plot || this.plot.series.length !== data.length) {
      this.plot?.destroy();
      const series = [{ label: "step" }, line("sharpness", 0)];
      if (d.limit !== null) series.push(reference("2 / lr"));
      this.plot = makeChart(this.chartEl, {
        height: HEIGHT,
        series,
        scales: { y: { distr: 3 } },
        axes: [{ label: "step" }, { label: "top Hessian eigenvalue" }],
      }, data);
    } else {
      this.plot.setData(data);
    }
    this.plot.setMarker(this.scrubbed ? this.step : null);
    const last = values[values.length - 1];
    const ds = this.el.dataset;
    Object.assign(ds, { state: "ready", points: d.steps.length, last: last ?? "", limit: d.limit ?? "" });
    const sub = d.samples < d.train_size ? ` (on ${d.samples} of ${d.train_size} training rows)` : "";
    const where = last === null ? "" : d.limit === null
      ? `now ${last.toPrecision(3)}; ${d.optimizer} rescales its steps, so 2 / lr does not apply`
      : last > d.limit
        ? `now ${last.toPrecision(3)}, above 2 / lr = ${d.limit.toPrecision(3)}: steps of lr ${d.lr} overshoot and grow`
        : `now ${last.toPrecision(3)}, below 2 / lr = ${d.limit.toPrecision(3)}: lr ${d.lr} is stable here`;
    this.status.textContent = `Sharpness ${where}${sub}.`;
    this.stamp();
  }
}
