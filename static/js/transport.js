// The run page's transport, as TensorFlow Playground has one: play/pause (one button), step 1,
// step 10, step to the epoch's end, stop, delete, and the speed (steps per second on a log
// scale, the rightmost position "max": no pace). Every button that does not apply to the
// run's state is disabled, so no reasonable click earns a 409; a 404 means the run is gone.
import { api } from "./api.js";

const SPEED_POSITIONS = 100; // the speed slider's last position is "max" (pace null)
const DECADES = 3; // positions 0 .. SPEED_POSITIONS - 1 span 1 .. 10^DECADES steps a second
const LIVE = ["queued", "running", "paused"];
const RESUMABLE = ["paused", "interrupted", "crashed"]; // resume continues a broken run too

// Which controls apply in which state (what the server's run manager accepts).
const APPLIES = {
  toggle: (s) => s === "running" || RESUMABLE.includes(s),
  step: (s) => s === "paused",
  stop: (s) => LIVE.includes(s) || s === "interrupted" || s === "crashed",
  speed: (s) => LIVE.includes(s) || s === "interrupted" || s === "crashed",
  delete: () => true,
};

/** The pace at a speed-slider position: 1 .. 1000 steps/s, two significant digits; null
 * (full speed) at the last position. */
export function paceAt(position) {
  if (position >= SPEED_POSITIONS) return null;
  const v = 10 ** ((DECADES * position) / (SPEED_POSITIONS - 1));
  return Number(v.toPrecision(2));
}

/** The speed-slider position nearest a pace (null: the last). */
export function positionOf(pace) {
  if (pace === null || pace === undefined) return SPEED_POSITIONS;
  const p = Math.round(((SPEED_POSITIONS - 1) * Math.log10(pace)) / DECADES);
  return Math.min(SPEED_POSITIONS - 1, Math.max(0, p));
}

function speedText(pace) {
  return pace === null ? "max" : `${pace} steps/s`;
}

export class Transport {
  /**
   * `on`: run(run) after a control's answer, gone() when the run is deleted, error(message),
   * action(name) before a play or step (the page returns to live to watch it).
   */
  constructor(runId, on) {
    this.runId = runId;
    this.on = on;
    this.root = document.getElementById("controls");
    this.toggle = this.root.querySelector("[data-action=toggle]");
    this.buttons = [...this.root.querySelectorAll("button[data-action]")];
    this.epochButton = this.root.querySelector("[data-n=epoch]");
    this.speed = document.getElementById("speed");
    this.speedValue = document.getElementById("speed-value");
    this.speed.max = SPEED_POSITIONS;
    this.state = document.getElementById("state-badge").dataset.state;
    this.step = 0;
    this.spe = null;
    this.busy = false; // a control request is in flight: the buttons wait for its answer
    this.gone = false;
    this.pace = undefined; // unknown until the hello's config
    this.sending = null; // the pace being sent, and the latest wanted after it
    this.wanted = undefined;
    this.root.addEventListener("click", (ev) => {
      const button = ev.target.closest("button[data-action]");
      if (button && !button.disabled) this.act(button);
    });
    this.speed.addEventListener("input", () => {
      this.speedValue.textContent = speedText(paceAt(Number(this.speed.value)));
    });
    this.speed.addEventListener("change", () => this.sendPace(paceAt(Number(this.speed.value))));
    this.render();
  }

  setState(state) {
    this.state = state;
    this.render();
  }

  setStep(step, spe = this.spe) {
    this.step = step;
    this.spe = spe;
    this.render();
  }

  /** The run's pace as the server has it (the hello's config, a PATCH's answer). */
  setPace(pace) {
    this.pace = pace ?? null;
    if (this.sending === null) { // not while the user's own change is on its way
      this.speed.value = positionOf(this.pace);
      this.speedValue.textContent = speedText(this.pace);
    }
  }

  // The steps to the end of the current epoch (a whole epoch at its start).
  epochSteps() {
    const spe = this.spe || 1;
    return spe - (this.step % spe);
  }

  render() {
    const s = this.state;
    const off = this.gone || this.busy;
    for (const b of this.buttons) {
      const kind = b.dataset.action;
      b.disabled = this.gone || (off && kind !== "delete") || !APPLIES[kind](s);
    }
    // One button: pause a running (or queued) run, resume anything resumable.
    const pausing = s === "running" || s === "queued";
    this.toggle.querySelector(".label").textContent = pausing ? "Pause" : "Resume";
    this.toggle.querySelector(".icon").textContent = pausing ? "❚❚" : "▶";
    this.toggle.dataset.does = pausing ? "pause" : "resume";
    this.speed.disabled = this.gone || !APPLIES.speed(s);
    const n = this.epochSteps();
    this.epochButton.title = `step to the end of this epoch: ${n} step${n === 1 ? "" : "s"}`;
    this.epochButton.dataset.steps = n;
  }

  disable() {
    this.gone = true;
    this.render();
  }

  async act(button) {
    const kind = button.dataset.action;
    if (kind === "delete") return this.remove();
    this.on.error("");
    let call;
    if (kind === "toggle") {
      const does = button.dataset.does;
      if (does === "resume") this.on.action("resume");
      call = () => api.control(this.runId, does);
    } else if (kind === "step") {
      const n = button.dataset.n === "epoch" ? this.epochSteps() : Number(button.dataset.n);
      this.on.action("step");
      call = () => api.step(this.runId, n);
    } else {
      call = () => api.control(this.runId, kind);
    }
    this.busy = true;
    this.render();
    try {
      this.on.run(await call());
    } catch (err) {
      await this.failed(err);
    } finally {
      this.busy = false;
      this.render();
    }
  }

  // A refused control: a 404 is a deleted run; anything else is said, and the state is read
  // again (another tab may have changed it).
  async failed(err) {
    if (err.status === 404) return this.on.gone();
    this.on.error(err.message);
    try {
      this.on.run(await api.run(this.runId));
    } catch (again) {
      if (again.status === 404) this.on.gone();
    }
  }

  async remove() {
    if (!confirm("Delete this run and its history?")) return;
    try {
      await api.remove(this.runId);
      location.href = "/";
    } catch (err) {
      if (err.status === 404) this.on.gone();
      else this.on.error(err.message);
    }
  }

  // PATCH the pace; a change made while one is on its way is sent after it (the latest wins).
  async sendPace(pace) {
    this.wanted = pace;
    if (this.sending !== null) return;
    while (this.wanted !== undefined) {
      const p = this.wanted;
      this.wanted = undefined;
      this.sending = { pace: p };
      try {
        const run = await api.patch(this.runId, { pace: p });
        this.sending = null;
        if (this.wanted === undefined) this.setPace(run.config?.pace ?? p);
        this.on.run(run);
      } catch (err) {
        this.sending = null;
        this.wanted = undefined;
        await this.failed(err);
        this.setPace(this.pace); // back to what the server has
      }
    }
  }
}
