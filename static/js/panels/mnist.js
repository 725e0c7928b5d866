// MNIST panel: the first layer's weights as 28x28 images (what each unit looks for), and a
// strip of the test digits the model gets most confidently wrong, per epoch.
//
// Consumes (docs/events.md):
//   {"type": "first_layer", "step": 500, "data": {"shape": [28, 28], "units": [0, ...],
//    "scale": [0.08, ...], "images": ["<base64 of 784 uint8, 127.5 = weight 0>", ...]}}
//   {"type": "misclassified", "step": 938, "data": {"shape": [28, 28], "total": 312,
//    "items": [{"index": 3206, "label": 8, "pred": 3, "confidence": 0.99}, ...],
//    "images": ["<base64 of 784 uint8, 255 = ink>", ...]}}
// Backend routes: GET /api/runs/{id}/snapshots/first_layer and .../snapshots/misclassified
// A FramePanel (frame.js): live, or the timeline's frame. Test hooks: the panel's data-step;
// each strip's data-step (its own event's) and data-count.
import { FramePanel } from "./frame.js";
import { bytesOf, cells, paint, weightRGB } from "./images.js";

// Ink as MNIST stores it (255 = ink), shown dark on light like paper.
function inkRGB(b) {
  const g = 255 - b;
  return [g, g, g];
}

export default class MnistPanel extends FramePanel {
  constructor(el) {
    super(el);
    this.units = document.createElement("div");
    this.units.className = "digit-grid units";
    this.unitsCaption = document.createElement("p");
    this.unitsCaption.className = "muted";
    this.misses = document.createElement("div");
    this.misses.className = "digit-grid misses";
    this.missesCaption = document.createElement("p");
    this.missesCaption.className = "muted";
    const h1 = document.createElement("h3");
    h1.textContent = "First-layer weights (red +, blue −)";
    const h2 = document.createElement("h3");
    h2.textContent = "Most confident mistakes on the test set";
    this.body.replaceChildren(h1, this.units, this.unitsCaption, h2, this.misses, this.missesCaption);
    this.shown = { first_layer: null, misclassified: null }; // the events painted
  }

  // Repaint a strip only when its event changed: images are the costly part.
  draw() {
    const weights = this.get("first_layer"), wrong = this.get("misclassified");
    if (weights !== this.shown.first_layer) this.drawUnits(weights);
    if (wrong !== this.shown.misclassified) this.drawMisses(wrong);
    this.shown = { first_layer: weights, misclassified: wrong };
    this.stamp();
  }

  drawUnits(e) {
    if (!e) {
      cells(this.units, 0);
      this.unitsCaption.textContent = `no first-layer images recorded by step ${this.step}`;
      return;
    }
    const { step, data } = e;
    const figs = cells(this.units, data.images.length);
    data.images.forEach((b64, i) => {
      const [canvas, cap] = figs[i].children;
      paint(canvas, bytesOf(b64), data.shape, weightRGB);
      cap.textContent = `unit ${data.units[i]}`;
      figs[i].title = `unit ${data.units[i]}: ±${Number(data.scale[i]).toPrecision(3)}`;
    });
    this.unitsCaption.textContent = `step ${step}: ${data.images.length} units, each on its own scale`;
    this.units.dataset.step = step;
    this.units.dataset.count = data.images.length;
  }

  drawMisses(e) {
    if (!e) {
      cells(this.misses, 0);
      this.missesCaption.textContent = `no test-set mistakes recorded by step ${this.step}`;
      return;
    }
    const { step, data } = e;
    const figs = cells(this.misses, data.images.length);
    data.items.forEach((item, i) => {
      const [canvas, cap] = figs[i].children;
      paint(canvas, bytesOf(data.images[i]), data.shape, inkRGB);
      cap.textContent = `${item.label}→${item.pred} ${(100 * item.confidence).toFixed(0)}%`;
      figs[i].title = `test digit #${item.index}: a ${item.label}, predicted ${item.pred}`;
    });
    this.missesCaption.textContent = `step ${step}: ${data.total} of the test digits wrong; ` +
      `shown: the ${data.items.length} the model was surest of (true→predicted, confidence)`;
    this.misses.dataset.step = step;
    this.misses.dataset.count = data.items.length;
    this.misses.dataset.total = data.total;
  }
}
