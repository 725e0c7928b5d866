// CNN panel: the first conv layer's kernels as images (what each filter looks for), and one
// fixed test digit's feature maps after every conv and pool layer (what each layer sees of
// it), for the frame the timeline shows.
//
// Consumes (docs/events.md):
//   {"type": "first_layer", "step": 500, "data": {"shape": [5, 5], "units": [0, ...],
//    "scale": [0.31, ...], "images": ["<base64 of 25 uint8, 127.5 = weight 0>", ...]}}
//   {"type": "feature_maps", "step": 500, "data": {"index": 0, "label": 7,
//    "image": "<base64 of 784 uint8, 255 = ink>", "layers": [{"name": "conv 1 (relu)",
//    "shape": [8, 28, 28], "low": [0, ...], "high": [2.1, ...],
//    "images": ["<base64 of 784 uint8, 0 = low, 255 = high>", ...]}, ...]}}
// Backend routes: GET /api/runs/{id}/snapshots/first_layer and .../snapshots/feature_maps
// A FramePanel (frame.js): live, or the timeline's frame. Test hooks: the panel's data-step;
// .kernels and .fmaps carry data-step (their own event's) and data-count; each layer's row
// (.fmap-layer) its data-layer name and data-count.
import { FramePanel } from "./frame.js";
import { bytesOf, cells, paint, weightRGB } from "./images.js";

// A map's own range, low black to high white: where the filter fires, on the digit's frame.
function grayRGB(b) {
  return [b, b, b];
}

export default class CnnPanel extends FramePanel {
  constructor(el) {
    super(el);
    const h1 = document.createElement("h3");
    h1.textContent = "First-layer kernels (red +, blue −)";
    this.kernels = document.createElement("div");
    this.kernels.className = "digit-grid kernels";
    this.kernelsCaption = document.createElement("p");
    this.kernelsCaption.className = "muted";
    this.mapsTitle = document.createElement("h3");
    this.mapsTitle.textContent = "What each layer sees of a test digit";
    this.maps = document.createElement("div");
    this.maps.className = "fmaps";
    this.mapsCaption = document.createElement("p");
    this.mapsCaption.className = "muted";
    this.body.replaceChildren(
      h1, this.kernels, this.kernelsCaption, this.mapsTitle, this.maps, this.mapsCaption,
    );
    this.shown = { first_layer: null, feature_maps: null }; // the events painted
  }

  // first_layer comes from MLP runs too: only a run with feature maps (a CNN) shows the panel.
  add(e) {
    super.add(e);
    this.reveal(e.type === "feature_maps");
  }

  seedFrame(events, step) {
    super.seedFrame(events, step);
    this.reveal(events.some((e) => e.type === "feature_maps"));
  }

  showFrame(events, step) {
    super.showFrame(events, step);
    this.reveal(Boolean(events?.some((e) => e.type === "feature_maps")));
  }

  reveal(cnn) {
    this.cnn = this.cnn || cnn;
    this.el.hidden = !this.cnn;
  }

  draw() {
    const kernels = this.get("first_layer"), maps = this.get("feature_maps");
    if (kernels !== this.shown.first_layer) this.drawKernels(kernels);
    if (maps !== this.shown.feature_maps) this.drawMaps(maps);
    this.shown = { first_layer: kernels, feature_maps: maps };
    this.stamp();
  }

  drawKernels(e) {
    if (!e) {
      cells(this.kernels, 0);
      this.kernelsCaption.textContent = `no kernels recorded by step ${this.step}`;
      return;
    }
    const { step, data } = e;
    const [h, w] = data.shape;
    cells(this.kernels, data.images.length).forEach((fig, i) => {
      const [canvas, cap] = fig.children;
      paint(canvas, bytesOf(data.images[i]), [h, w], weightRGB);
      cap.textContent = `${data.units[i]}`;
      fig.title = `kernel ${data.units[i]} (${h}×${w}): ±${Number(data.scale[i]).toPrecision(3)}`;
    });
    this.kernelsCaption.textContent =
      `step ${step}: ${data.images.length} kernels of ${h}×${w}, each on its own scale`;
    this.kernels.dataset.step = step;
    this.kernels.dataset.count = data.images.length;
  }

  // One row per layer: the digit first, then each layer's maps, one small image per channel.
  drawMaps(e) {
    if (!e) {
      this.maps.replaceChildren();
      this.mapsCaption.textContent = `no feature maps recorded by step ${this.step}`;
      return;
    }
    const { step, data } = e;
    const rows = [{ name: `test digit #${data.index} (a ${data.label})`, shape: [1, 28, 28] }, ...data.layers];
    while (this.maps.children.length > rows.length) this.maps.lastChild.remove();
    rows.forEach((layer, r) => {
      let row = this.maps.children[r];
      if (!row) {
        row = document.createElement("section");
        row.className = "fmap-layer";
        const cap = document.createElement("p");
        const grid = document.createElement("div");
        grid.className = "digit-grid";
        row.append(cap, grid);
        this.maps.append(row);
      }
      const [cap, grid] = row.children;
      const [c, h, w] = layer.shape;
      const images = r === 0 ? [data.image] : layer.images;
      row.dataset.layer = layer.name;
      row.dataset.count = images.length;
      cap.textContent = r === 0 ? layer.name : `${layer.name} · ${c}×${h}×${w}`;
      cells(grid, images.length).forEach((fig, i) => {
        const [canvas, label] = fig.children;
        paint(canvas, bytesOf(images[i]), [h, w], grayRGB);
        canvas.style.width = canvas.style.height = `${Math.max(28, Math.min(56, 2 * w))}px`;
        label.textContent = r === 0 ? "" : `${i}`;
        fig.title = r === 0 ? layer.name
          : `${layer.name}, channel ${i}: ${layer.low[i]} (black) to ${layer.high[i]} (white)`;
      });
    });
    this.mapsTitle.textContent = `What each layer sees of test digit #${data.index} (a ${data.label})`;
    this.mapsCaption.textContent = `step ${step}: each map on its own scale, black its lowest ` +
      `value and white its highest (hover for the range)`;
    this.maps.dataset.step = step;
    this.maps.dataset.count = data.layers.length;
  }
}
