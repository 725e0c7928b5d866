// The run list page: featured presets, the live run table (runtable.js, fed by /ws/runs)
// and the new-run form.
import { api } from "./api.js";
import { listStream } from "./runinfo.js";
import { RunTable } from "./runtable.js";

const listStatus = document.getElementById("list-status");
const form = document.getElementById("new-run");
const formError = document.getElementById("form-error");
const table = new RunTable(document.getElementById("runs"));
let presets = {};

// One run per click: while a create is on its way (a double-click, an impatient second
// click), every start button waits with it.
const startButtons = [...document.querySelectorAll("button.feature, #new-run button[type=submit]")];
let starting = false;

async function start(body) {
  if (starting) return;
  starting = true;
  for (const b of startButtons) b.disabled = true;
  formError.textContent = "";
  try {
    const run = await api.create(body);
    location.href = `/runs/${run.id}`;
  } catch (err) {
    formError.textContent = err.message;
    starting = false;
    for (const b of startButtons) b.disabled = false;
  }
}

for (const button of document.querySelectorAll("button.feature")) {
  button.addEventListener("click", () => start({ preset: button.dataset.preset }));
}

// -- the form: a preset fills the fields; what the user changes is sent as overrides ----------
function get(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

// The run being cloned (/?clone=<id>, the run page's "Clone and edit"): its whole config is
// what the form starts from and what its changes are made to.
let cloned = null;

function fill(name, config = presets[name]) {
  if (!config) return;
  for (const field of form.querySelectorAll("[name]")) {
    if (field.name === "preset") continue;
    const value = get(config, field.name);
    field.value = Array.isArray(value) ? value.join(",") : value ?? "";
  }
}

// What an empty field means: a list, none ("Hidden layers" cleared: no hidden layer); a
// nullable number, null (batch size: the full batch); anything else, the preset's value.
function overrides() {
  const config = {};
  const base = cloned ?? presets[form.preset.value] ?? {};
  for (const field of form.querySelectorAll("[name]")) {
    if (field.name === "preset") continue;
    let value = field.value;
    if (field.dataset.kind === "array") { // a list of numbers, typed as "16,16"
      value = value.split(",").map((s) => s.trim()).filter(Boolean).map(Number);
    } else if (value === "") {
      if (!("nullable" in field.dataset)) continue;
      value = null;
    } else if (field.type === "number") {
      value = Number(value);
    }
    if (value === null && get(base, field.name) == null) continue;
    if (JSON.stringify(value) === JSON.stringify(get(base, field.name))) continue;
    const keys = field.name.split(".");
    let node = config;
    for (const k of keys.slice(0, -1)) node = node[k] ??= {};
    node[keys[keys.length - 1]] = value;
  }
  return config;
}

form.preset.addEventListener("change", () => {
  cloned = null; // a preset picked: start from it
  formNote.textContent = "";
  fill(form.preset.value);
});

function merge(into, changes) {
  for (const [k, v] of Object.entries(changes)) {
    if (v && typeof v === "object" && !Array.isArray(v) && into[k] && typeof into[k] === "object") {
      merge(into[k], v);
    } else {
      into[k] = v;
    }
  }
  return into;
}

// Steps and epochs are two ways to say how long: filling one clears the other, so one never
// silently wins over the other.
const [stepsField, epochsField] = [form.elements.steps, form.elements.epochs];
stepsField.addEventListener("input", () => { if (stepsField.value) epochsField.value = ""; });
epochsField.addEventListener("input", () => { if (epochsField.value) stepsField.value = ""; });

// A bound the schema makes exclusive (a learning rate > 0) is refused here, with the reason,
// rather than by the server after the click.
for (const field of form.querySelectorAll("[data-gt]")) {
  field.addEventListener("input", () => {
    const gt = Number(field.dataset.gt);
    const bad = field.value !== "" && Number(field.value) <= gt;
    field.setCustomValidity(bad ? `must be greater than ${gt}` : "");
  });
}
// "start paused": the run waits at step 0, its first frame drawn, for play or step.
const startPaused = document.getElementById("start-paused");
form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if (!form.reportValidity()) return;
  const config = cloned ? merge(structuredClone(cloned), overrides()) : overrides();
  if (startPaused.checked) config.start_paused = true;
  start({ preset: form.preset.value, config });
});

const formNote = document.getElementById("form-note");

async function cloneRun(id) {
  try {
    const run = await api.run(id);
    if (run.preset && run.preset in presets) form.preset.value = run.preset;
    cloned = run.config;
    fill(form.preset.value, cloned);
    formNote.textContent = `Cloned from ${run.name}: change what you like, then start.`;
    form.scrollIntoView();
  } catch (err) {
    formError.textContent = `cannot clone run ${id}: ${err.message}`;
  }
}

api.presets().then((data) => {
  presets = Object.fromEntries(data.presets.map((p) => [p.name, p.config]));
  fill(form.preset.value);
  const cloneId = new URLSearchParams(location.search).get("clone");
  if (cloneId) cloneRun(cloneId);
  form.dataset.ready = "true";
});

// -- the live run list ------------------------------------------------------------------------
listStream((data) => table.apply(data), (status) => { listStatus.textContent = status; });
