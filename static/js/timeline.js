// The run page's one timeline: a range from step 0 to the head (the newest step seen). Live,
// it follows the head and the panels follow live events; dragged to step s, it asks the
// server for the frame at or before s (GET /api/runs/{id}/frame?at=s) and every frame panel
// shows that one frame while the loss chart draws a cursor at s. ArrowLeft / ArrowRight walk
// frame by frame (?at=shown-1, ?after=shown); "Live" (or End) returns to the head.
//
// Requests go one at a time; while one is out, only the latest position wanted waits, so
// a fast drag neither floods the server nor lets an older answer overwrite a newer one.
// Test hooks on #timeline: data-mode ("live" | "scrubbed"), data-frame-step (the step of
// the frame shown, "" while live).
//
// "Fork here" (#fork-form, POST /api/runs/{id}/fork) starts a new run from this one's state
// at the step shown (the frame's, scrubbed; the head, live), with the learning rate typed
// (empty: this run's), and opens it. The server says what is wrong (a step it cannot fork
// at, a bad rate) in #fork-error. Test hook: #fork's data-step (the step, "" live).
import { api } from "./api.js";

export class Timeline {
  /** `on`: cursor(step) at once on a move, frame(frame) when its frame arrives (`{step,
   * events}`; no events where none was recorded yet), live() back at the head. */
  constructor(runId, on) {
    this.runId = runId;
    this.on = on;
    this.input = document.getElementById("timeline");
    this.readout = document.getElementById("timeline-step");
    this.liveButton = document.getElementById("live");
    this.head = Number(this.input.max) || 0;
    this.live = true;
    this.frameStep = null; // the step of the frame shown while scrubbed
    this.want = null; // {at} or {after} (walk: by the arrows): the latest asked, not yet sent
    this.busy = false;
    this.gen = 0; // bumped on going live: answers to older requests are dropped
    this.input.addEventListener("input", () => this.scrub(Number(this.input.value)));
    this.liveButton.addEventListener("click", () => this.goLive());
    // Arrows walk frames (not steps: at full speed frames are several steps apart), on the
    // timeline or anywhere on the page but another field (a button is fine).
    document.addEventListener("keydown", (ev) => {
      const field = ev.target.closest?.("input, select, textarea, [contenteditable]");
      if ((field && field !== this.input) || ev.altKey || ev.ctrlKey || ev.metaKey) return;
      if (this.input.disabled) return;
      if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") {
        ev.preventDefault();
        this.walk(ev.key === "ArrowLeft" ? -1 : 1);
      } else if (ev.key === "End" && ev.target === this.input) {
        ev.preventDefault();
        this.goLive();
      }
    });
    this.forkForm = document.getElementById("fork-form");
    this.forkButton = document.getElementById("fork");
    this.forkForm?.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.fork();
    });
    this.render();
  }

  /** The step a fork starts from: the frame shown (scrubbed) or the head (live). */
  forkStep() {
    if (this.live) return this.head;
    return this.frameStep ?? Number(this.input.value);
  }

  async fork() {
    const error = document.getElementById("fork-error");
    const lr = this.forkForm.elements.lr.value.trim();
    const body = { step: this.forkStep() };
    if (lr !== "") body.config = { optimizer: { lr: Number(lr) } };
    error.textContent = "";
    this.forkButton.disabled = true;
    try {
      const child = await api.fork(this.runId, body);
      location.href = `/runs/${child.id}`;
    } catch (err) {
      error.textContent = err.message;
      this.forkButton.disabled = this.input.disabled;
    }
  }

  /** The newest step seen: the range's end (and, live, its position). */
  setHead(step) {
    if (step <= this.head) return;
    this.head = Math.max(this.head, step);
    this.input.max = this.head;
    if (this.live) this.input.value = this.head;
    this.render();
  }

  scrub(step) {
    const s = Math.max(0, Math.min(this.head, Math.round(step)));
    this.live = false;
    this.input.value = s;
    this.on.cursor(s);
    this.ask({ at: s });
    this.render();
  }

  // One frame back or forward from the one shown (live: from the head).
  walk(dir) {
    const cur = this.live ? this.head : this.frameStep ?? Number(this.input.value);
    if (dir < 0) {
      if (cur <= 0) return;
      if (this.live) this.live = false;
      this.ask({ at: cur - 1, walk: true });
    } else {
      if (this.live) return;
      this.ask({ after: cur, walk: true });
    }
    this.render();
  }

  goLive() {
    if (this.live) return;
    this.live = true;
    this.gen++;
    this.want = null;
    this.frameStep = null;
    this.input.value = this.head;
    this.on.live();
    this.render();
  }

  disable() {
    this.goLive();
    this.input.disabled = true;
    this.liveButton.disabled = true;
    if (this.forkButton) this.forkButton.disabled = true;
  }

  ask(want) {
    this.want = want;
    if (!this.busy) this.pump();
  }

  async pump() {
    this.busy = true;
    while (this.want) {
      const want = this.want, gen = this.gen;
      this.want = null;
      let frame;
      try {
        frame = await api.frame(this.runId, want);
      } catch (err) {
        console.warn("timeline: no frame", err);
        continue;
      }
      if (gen !== this.gen || this.live) continue; // back to live meanwhile
      if (frame === null && want.after !== undefined) { // nothing after it: the head's frame
        if (!this.want) this.goLive();
        continue;
      }
      const step = frame ? frame.step : want.at;
      this.frameStep = step;
      if (want.walk) { // walked by frames: the range and the cursor move to the frame found
        this.input.value = step;
        this.on.cursor(step);
      }
      this.on.frame({ step, events: frame ? frame.events : [] });
      this.render();
    }
    this.busy = false;
  }

  render() {
    this.input.dataset.mode = this.live ? "live" : "scrubbed";
    this.input.dataset.frameStep = this.live || this.frameStep === null ? "" : this.frameStep;
    this.liveButton.disabled = this.live || this.input.disabled;
    // Scrubbed, the button names the frame's step; live it forks at the head, which a paced
    // run moves every step: not redrawn each time (data-step: "" live).
    const at = this.live ? "" : String(this.forkStep());
    if (this.forkButton && this.forkButton.dataset.step !== at) {
      this.forkButton.dataset.step = at;
      this.forkButton.textContent = at === "" ? "Fork here" : `Fork at step ${at}`;
    }
    this.readout.textContent = this.live
      ? `live · step ${this.head}`
      : `step ${this.input.value}` +
        (this.frameStep !== null && this.frameStep !== Number(this.input.value)
          ? ` (frame of step ${this.frameStep})` : "");
  }
}
