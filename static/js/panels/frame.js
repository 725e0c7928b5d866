// Base of the panels that depict a frame: the latest snapshot event of each of their types
// at one step (docs/panels.md, "Frames"). A panel holds two such states:
//   live  - what `add` (live events) and `seedFrame` (the websocket hello's frame) gave it;
//   frame - a recorded frame the timeline asked for (`showFrame`), null while following live.
// `get(type)` and `step` read whichever is shown, so a panel's draw() is the same for both,
// and a scrubbed panel keeps feeding its time series from live events without showing them.

export class FramePanel {
  constructor(el) {
    this.el = el;
    this.body = el.querySelector(".panel-body");
    this.live = new Map(); // type -> the latest live event
    this.liveStep = null;
    this.frame = null; // {step, events: Map type -> event}
  }

  /** A live event (cheap: draw() renders it). */
  add(e) {
    this.el.hidden = false;
    this.live.set(e.type, e);
    this.liveStep = e.step;
  }

  /** The hello's frame (this panel's events of it): the live state to start from. */
  seedFrame(events, step) {
    if (!events.length) return;
    this.el.hidden = false;
    for (const e of events) this.live.set(e.type, e);
    this.liveStep = step;
  }

  /** The newest live frame's step (the page's): this panel depicts it, with its latest event
   * at or before it (a frame need not hold every type: confusion comes at epoch ends). */
  follow(step) {
    if (this.live.size) this.liveStep = step;
  }

  /** Show a recorded frame (this panel's events of it, maybe none) as of `step`; null goes
   * back to the live state. Histories are not touched. */
  showFrame(events, step) {
    if (events === null) {
      this.frame = null;
      return;
    }
    if (events.length) this.el.hidden = false;
    this.frame = { step, events: new Map(events.map((e) => [e.type, e])) };
  }

  /** The shown event of a type (the frame's when scrubbed), or null. */
  get(type) {
    return (this.frame ? this.frame.events : this.live).get(type) ?? null;
  }

  /** The step the panel depicts: the frame's, or the latest live event's. */
  get step() {
    return this.frame ? this.frame.step : this.liveStep;
  }

  get scrubbed() {
    return this.frame !== null;
  }

  /** Writes data-step, the test hook every panel has (docs/panels.md). */
  stamp() {
    if (this.step !== null) this.el.dataset.step = this.step;
  }

  /** The body says there is nothing of this kind at the shown step (a frame before the first
   * snapshot of a type). */
  nothing(what) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = `no ${what} recorded by step ${this.step}`;
    this.body.replaceChildren(p);
    this.stamp();
  }
}
