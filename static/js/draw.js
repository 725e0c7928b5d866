// /draw: draw a digit (mouse, touch or pen, through pointer events) and see the model's answer.
// Each pause in drawing (debounced) sends the canvas as a PNG to POST /api/predict; the answer
// fills the digit, a bar per class and the 28x28 image the model saw (server/digits.py framed
// it like MNIST). GET /api/models fills the picker: the bundled MLP and CNN and finished MNIST
// runs. Inside the model: each layer's activations as the server sent them (a conv or pool
// layer's [channels, height, width] as one small map per channel).

const STROKE = 22; // px on the 280 px pad: about MNIST's pen, 2-3 px on a digit 20 px tall
const DEBOUNCE_MS = 120; // ask once the pen pauses this long...
const MAX_WAIT_MS = 400; // ...or at least this often during a long stroke
const MAP_PX = 42; // css px a feature map is drawn at (a 5x5 map and a 28x28 one alike)

const canvas = document.getElementById("draw-canvas");
const ctx = canvas.getContext("2d");
const picker = document.getElementById("model-picker");
const prediction = document.getElementById("prediction");
const confidence = document.getElementById("confidence");
const preview = document.getElementById("preview");
const previewCtx = preview.getContext("2d");
const bars = [...document.querySelectorAll("#bars li")];
const errorBox = document.getElementById("draw-error");
const modelInfo = document.getElementById("model-info");
const typicalBox = document.getElementById("typical");
const typicalScore = document.getElementById("typical-score");
const layersBox = document.getElementById("layers");
const insideNote = document.getElementById("inside-note");

let drawing = false;
let last = null;
let inked = false;
let timer = null;
let waitingSince = 0;
let seq = 0; // bumped by every request and by clear: only the latest answer is shown
const models = new Map();

// -- the pad ------------------------------------------------------------------------------
function blank() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.strokeStyle = ctx.fillStyle = "#000";
  ctx.lineWidth = STROKE;
  ctx.lineCap = ctx.lineJoin = "round";
}

function point(e) {
  const r = canvas.getBoundingClientRect();
  return {
    x: ((e.clientX - r.left) * canvas.width) / r.width,
    y: ((e.clientY - r.top) * canvas.height) / r.height,
  };
}

function dot(p) {
  ctx.beginPath();
  ctx.arc(p.x, p.y, STROKE / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function segment(a, b) {
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x, b.y);
  ctx.stroke();
}

canvas.addEventListener("pointerdown", (e) => {
  if (e.pointerType === "mouse" && e.button !== 0) return;
  e.preventDefault();
  canvas.setPointerCapture(e.pointerId);
  drawing = true;
  last = point(e);
  dot(last);
  inked = true;
  schedule();
});

canvas.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const coalesced = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const ev of coalesced.length ? coalesced : [e]) {
    const p = point(ev);
    segment(last, p);
    last = p;
  }
  schedule();
});

function endStroke() {
  if (!drawing) return;
  drawing = false;
  last = null;
  schedule(0);
}
for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
  canvas.addEventListener(type, endStroke);
}

document.getElementById("draw-clear").addEventListener("click", clear);

function clear() {
  seq += 1;
  clearTimeout(timer);
  timer = null;
  drawing = false;
  inked = false;
  blank();
  reset();
}

// -- asking the server --------------------------------------------------------------------
function schedule(ms = DEBOUNCE_MS) {
  const now = performance.now();
  if (timer === null) waitingSince = now;
  else if (ms > 0 && now - waitingSince >= MAX_WAIT_MS) return; // let the pending one fire
  clearTimeout(timer);
  timer = setTimeout(predict, ms);
}

function detail(data) {
  if (typeof data.detail === "string") return data.detail;
  if (Array.isArray(data.detail)) return data.detail.map((d) => d.msg).join("; ");
  return "";
}

async function predict() {
  timer = null;
  if (!inked) return;
  const id = ++seq;
  prediction.dataset.state = "pending";
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  if (id !== seq) return;
  try {
    const url = `/api/predict?activations=1&model=${encodeURIComponent(picker.value)}`;
    const res = await fetch(url, { method: "POST", headers: { "content-type": "image/png" }, body: blob });
    const data = await res.json().catch(() => ({}));
    if (id !== seq) return;
    if (!res.ok) throw new Error(detail(data) || `${res.status} ${res.statusText}`);
    show(data);
  } catch (err) {
    if (id !== seq) return;
    prediction.dataset.state = "error";
    errorBox.textContent = err.message;
  }
}

// -- showing the answer -------------------------------------------------------------------
function show(data) {
  const p = data.probabilities;
  errorBox.textContent = "";
  prediction.textContent = String(data.digit);
  prediction.dataset.digit = String(data.digit);
  prediction.dataset.state = "done";
  prediction.dataset.model = data.model;
  const model = models.get(data.model);
  confidence.textContent = `${(p[data.digit] * 100).toFixed(1)}% sure · ${model ? model.label : data.model}`;
  bars.forEach((li, d) => {
    li.dataset.p = String(p[d]);
    li.classList.toggle("top", d === data.digit);
    li.querySelector(".bar-fill").style.width = `${(p[d] * 100).toFixed(1)}%`;
    li.querySelector(".bar-value").textContent = `${(p[d] * 100).toFixed(1)}%`;
  });
  const image = previewCtx.createImageData(28, 28);
  data.input.flat().forEach((v, i) => {
    const g = Math.round(Math.min(Math.max(v, 0), 1) * 255);
    image.data.set([g, g, g, 255], i * 4);
  });
  previewCtx.putImageData(image, 0, 0);
  preview.dataset.filled = "true";
  const t = data.typical;
  typicalBox.hidden = !t.unlike_digits;
  typicalBox.dataset.unlike = String(t.unlike_digits);
  typicalScore.textContent = ` (distance ${t.score.toFixed(2)} from MNIST's digits; real ones stay under ${t.threshold.toFixed(2)})`;
  if (t.unlike_digits) confidence.textContent += " · unlike any digit";
  showLayers(data.layers || []);
}

// -- inside the model: each layer's activations, as the server computed them ----------------
// Colour by the value against the layer's largest magnitude: blue positive, red negative.
function paint(ctx, values, w, h, scale) {
  const image = ctx.createImageData(w, h);
  values.forEach((v, i) => {
    const a = Math.min(Math.abs(v) / scale, 1);
    const rgb = v >= 0 ? [255 - 218 * a, 255 - 156 * a, 255 - 20 * a] : [255 - 35 * a, 255 - 217 * a, 255 - 217 * a];
    image.data.set([...rgb.map(Math.round), 255], i * 4);
  });
  ctx.putImageData(image, 0, 0);
}

function canvasOf(w, h, cssScale) {
  const c = document.createElement("canvas");
  c.width = w;
  c.height = h;
  c.style.width = `${w * cssScale}px`;
  c.style.height = `${h * cssScale}px`;
  return c;
}

function layerFigure(layer) {
  const fig = document.createElement("figure");
  fig.className = "layer";
  fig.dataset.layer = layer.name;
  const size = layer.shape.reduce((a, b) => a * b, 1);
  const scale = Math.max(1e-9, ...layer.values.map(Math.abs));
  const cap = document.createElement("figcaption");
  const cut = layer.shown < size ? ` · first ${layer.shown} values shown (GRADSCOPE_MAX_ACTIVATION_VALUES)` : "";
  cap.textContent = `${layer.name} · ${layer.shape.join("×")} · largest |value| ${scale.toFixed(2)}${cut}`;
  if (layer.name === "logits") {
    const list = document.createElement("ol");
    list.className = "logits";
    list.start = 0;
    layer.values.forEach((v) => {
      const li = document.createElement("li");
      li.textContent = v.toFixed(2);
      list.append(li);
    });
    fig.append(list);
  } else if (layer.shape.length === 3) {
    // Feature maps: one small image per channel, each on its own scale (a quiet channel
    // would be blank on the layer's).
    const [, h, w] = layer.shape;
    const maps = document.createElement("div");
    maps.className = "maps";
    fig.dataset.maps = String(Math.ceil(layer.shown / (h * w)));
    for (let c = 0; c * h * w < layer.shown; c++) {
      const cv = canvasOf(w, h, MAP_PX / w); // every map as large, whatever its resolution
      const values = layer.values.slice(c * h * w, (c + 1) * h * w);
      const own = Math.max(1e-9, ...values.map(Math.abs));
      paint(cv.getContext("2d"), values, w, h, own);
      cv.title = `channel ${c}: largest |value| ${own.toFixed(2)}`;
      maps.append(cv);
    }
    fig.append(maps);
  } else {
    // A dense layer: its units in a grid, one cell each.
    const cols = Math.min(32, layer.shown);
    const rows = Math.ceil(layer.shown / cols);
    const cv = canvasOf(cols, rows, 10);
    const cells = [...layer.values, ...new Array(cols * rows - layer.shown).fill(0)];
    paint(cv.getContext("2d"), cells, cols, rows, scale);
    fig.append(cv);
  }
  fig.prepend(cap);
  return fig;
}

function showLayers(layers) {
  layersBox.replaceChildren(...layers.map(layerFigure));
  insideNote.textContent = layers.length
    ? "Each unit coloured by its activation for this drawing (blue positive, red negative), left to right from the input; a conv or pool layer as one map per channel, each on its own scale."
    : "Draw a digit to see what each layer makes of it.";
}

function reset() {
  errorBox.textContent = "";
  prediction.textContent = "–";
  prediction.dataset.digit = "";
  prediction.dataset.model = "";
  prediction.dataset.state = "idle";
  confidence.textContent = "draw a digit";
  for (const li of bars) {
    li.dataset.p = "0";
    li.classList.remove("top");
    li.querySelector(".bar-fill").style.width = "0";
    li.querySelector(".bar-value").textContent = "–";
  }
  previewCtx.clearRect(0, 0, 28, 28);
  preview.dataset.filled = "false";
  typicalBox.hidden = true;
  typicalBox.dataset.unlike = "";
  showLayers([]);
}

// -- the model picker ---------------------------------------------------------------------
function describe(m) {
  const parts = [];
  if (m.sizes) parts.push(`${m.net === "cnn" ? "CNN " : ""}${m.sizes.join("-")}`);
  if (m.preset) parts.push(m.preset);
  if (m.test_acc != null) parts.push(`${(m.test_acc * 100).toFixed(2)}% on the MNIST test set`);
  if (m.kind === "run") parts.push(`run ${m.id}, step ${m.step}`);
  return parts.join(" · ");
}

async function loadModels() {
  const wanted = new URLSearchParams(location.search).get("model");
  try {
    const res = await fetch("/api/models");
    const data = await res.json();
    if (!res.ok) throw new Error(detail(data) || `${res.status}`);
    picker.replaceChildren();
    for (const m of data.models) {
      m.label = m.kind === "bundled" ? m.name : `run ${m.name} (${m.id})`;
      models.set(m.id, m);
      picker.append(new Option(m.label, m.id));
    }
    if (wanted && models.has(wanted)) picker.value = wanted;
    picker.dataset.loaded = "true";
    showModel();
  } catch (err) {
    modelInfo.textContent = `could not list the models: ${err.message}`;
  }
}

function showModel() {
  const m = models.get(picker.value);
  modelInfo.textContent = m ? `Model: ${describe(m)}` : "";
}

picker.addEventListener("change", () => {
  const url = new URL(location.href);
  if (picker.value === "bundled") url.searchParams.delete("model");
  else url.searchParams.set("model", picker.value);
  history.replaceState(null, "", url);
  showModel();
  if (inked) schedule(0);
});

blank();
reset();
loadModels();
