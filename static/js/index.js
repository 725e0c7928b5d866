// The run list page: featured presets, the live run table (runtable.js, fed by /ws/runs)
// and the new-run form.
import { api } from "./api.js";
import { listStream } from "./runinfo.js";
import { RunTable } from "./runtable.js";
import { applyScene, sceneLink, setupHiding } from "./scene.js";

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
    if (field.name === "dataset.id" && value) ensureOption(field, value);
    field.value = Array.isArray(value) ? value.join(",") : value ?? "";
  }
  syncChoices();
}

// A list of choices (input features) is a hidden input holding "x1,x2" and its checkboxes.
function syncChoices() {
  for (const set of form.querySelectorAll("fieldset.choices")) {
    const chosen = new Set(form.elements[set.dataset.for].value.split(",").filter(Boolean));
    for (const box of set.querySelectorAll("input[type=checkbox]")) box.checked = chosen.has(box.value);
  }
}
for (const set of form.querySelectorAll("fieldset.choices")) {
  set.addEventListener("change", () => {
    const boxes = [...set.querySelectorAll("input[type=checkbox]:checked")];
    form.elements[set.dataset.for].value = boxes.map((b) => b.value).join(",");
  });
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
    } else if (field.dataset.kind === "choices") { // a list of names: "x1,x2,x1^2"
      value = value.split(",").filter(Boolean);
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

// -- your own data: upload a CSV, pick it as the data set, delete it --------------------------
const idField = form.elements["dataset.id"];
const csvStatus = document.getElementById("csv-status");

function ensureOption(select, value, text = value) {
  if (![...select.options].some((o) => o.value === value)) select.add(new Option(text, value));
}

async function listUploads() {
  const { datasets } = await api.datasets();
  const list = document.getElementById("csv-list");
  list.replaceChildren();
  const chosen = idField.value;
  idField.replaceChildren(new Option("none", ""));
  for (const d of datasets) {
    const what = d.kind === "y" ? "regression" : `${d.classes} classes`;
    idField.add(new Option(`${d.name} (${d.rows} rows)`, d.id));
    const li = document.createElement("li");
    li.dataset.id = d.id;
    li.textContent = `${d.name}: ${d.rows} rows, ${what} `;
    const del = document.createElement("button");
    del.type = "button";
    del.textContent = "Delete";
    del.addEventListener("click", async () => {
      try {
        await api.deleteDataset(d.id);
        csvStatus.textContent = `deleted ${d.name}`;
        await listUploads();
      } catch (err) {
        csvStatus.textContent = err.message;
      }
    });
    li.append(del);
    list.append(li);
  }
  if (chosen) ensureOption(idField, chosen);
  idField.value = chosen;
}

document.getElementById("csv-upload").addEventListener("click", async () => {
  const file = document.getElementById("csv-file").files[0];
  if (!file) { csvStatus.textContent = "choose a CSV file first"; return; }
  csvStatus.textContent = "uploading…";
  try {
    const d = await api.uploadDataset(file);
    await listUploads();
    form.elements["dataset.name"].value = "csv";
    idField.value = d.id;
    form.elements["dataset.classes"].value = d.classes ?? "";
    csvStatus.textContent = `uploaded ${d.name}: ${d.rows} rows; it is the data set now`;
  } catch (err) {
    csvStatus.textContent = err.message;
  }
});

// -- scenes: the form as a link (scene.js), and controls hidden for a lesson ------------------
const shareLink = document.getElementById("share-link");
setupHiding(form, document.getElementById("hide-list"));
document.getElementById("share-make").addEventListener("click", () => {
  shareLink.value = sceneLink(form, startPaused.checked);
  shareLink.select();
});

api.presets().then(async (data) => {
  presets = Object.fromEntries(data.presets.map((p) => [p.name, p.config]));
  const params = new URLSearchParams(location.search);
  if (params.has("preset") && params.get("preset") in presets) form.preset.value = params.get("preset");
  fill(form.preset.value);
  await listUploads().catch((err) => { csvStatus.textContent = err.message; });
  if (applyScene(form, params, startPaused)) {
    syncChoices();
    formNote.textContent = "This setup came with the link: change what you like, then start.";
  }
  const cloneId = params.get("clone");
  if (cloneId) await cloneRun(cloneId);
  form.dataset.ready = "true";
});

// -- the live run list ------------------------------------------------------------------------
listStream((data) => table.apply(data), (status) => { listStatus.textContent = status; });
