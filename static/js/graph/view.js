// The graph panel's viewport: zoom, pan and fit (svg-pan-zoom, from npm via static/vendor),
// keyboard moves, and the default zoom that keeps labels readable.
//
// viz.js draws 14-unit text; at the default zoom a unit is at least READABLE/14 px, so a
// label is never under 10 px: a graph that fits the panel at that size is shown whole (at
// most 1:1), a bigger one from its inputs' end (the left), to be panned or fitted.

export const READABLE = 10.5; // px: the smallest label text at the default zoom
const FONT = 14; // viz.js's font size, in the SVG's units

let loading = null;

/** svg-pan-zoom is a classic (UMD) script that sets window.svgPanZoom: load it once. */
export function loadPanZoom() {
  loading ??= new Promise((resolve, reject) => {
    if (window.svgPanZoom) return resolve(window.svgPanZoom);
    const s = document.createElement("script");
    s.src = "/static/vendor/svg-pan-zoom.min.js";
    s.onload = () => resolve(window.svgPanZoom);
    s.onerror = () => reject(new Error("svg-pan-zoom failed to load"));
    document.head.append(s);
  });
  return loading;
}

export class GraphView {
  /** `box`: the element the SVG fills (its size is the view's). */
  constructor(box) {
    this.box = box;
    this.pz = null;
    this.svg = null;
    new ResizeObserver(() => this.resized()).observe(box);
    box.addEventListener("keydown", (ev) => this.onKey(ev));
  }

  /** Show a new SVG (replacing the last), at the default zoom. */
  async show(svg) {
    const svgPanZoom = await loadPanZoom();
    this.pz?.destroy();
    this.pz = null;
    const [, , w, h] = (svg.getAttribute("viewBox") || "0 0 1 1").split(/[\s,]+/).map(Number);
    this.natural = { w, h };
    // The view is as tall as the graph at 1:1, within limits; the SVG fills it.
    const tall = Math.min(Math.max(h + 24, 220), Math.round(window.innerHeight * 0.7));
    this.box.style.height = `${tall}px`;
    svg.removeAttribute("width");
    svg.removeAttribute("height");
    svg.setAttribute("width", "100%");
    svg.setAttribute("height", "100%");
    this.box.replaceChildren(svg);
    this.svg = svg;
    if (!this.box.clientWidth) return; // hidden: resized() starts it
    this.start(svgPanZoom);
  }

  start(svgPanZoom) {
    this.pz = svgPanZoom(this.svg, {
      fit: false,
      center: false,
      controlIconsEnabled: false,
      dblClickZoomEnabled: false,
      zoomScaleSensitivity: 0.25,
      // Relative to a state that resize() resets to the current zoom: wide enough for a
      // 6000-unit graph fitted in a phone's width and for reading one node of it.
      minZoom: 0.01,
      maxZoom: 100,
    });
    this.home();
  }

  resized() {
    if (!this.svg) return;
    if (!this.pz && this.box.clientWidth && window.svgPanZoom) this.start(window.svgPanZoom);
    else this.pz?.resize();
  }

  /** px per SVG unit now. */
  scale() {
    return this.pz ? this.pz.getSizes().realZoom : 1;
  }

  /** The default zoom: labels at least READABLE px, at most 1:1; whole if that fits. */
  home() {
    if (!this.pz) return;
    const { width, height } = this.pz.getSizes();
    const fit = Math.min(width / this.natural.w, height / this.natural.h);
    const s = Math.min(1, Math.max(fit, READABLE / FONT));
    this.pz.zoomBy(s / this.scale());
    const w = this.natural.w * s, h = this.natural.h * s;
    this.pz.pan({ x: w <= width ? (width - w) / 2 : 8, y: h <= height ? (height - h) / 2 : 8 });
  }

  fit() {
    if (!this.pz) return;
    this.pz.updateBBox();
    this.pz.fit();
    this.pz.center();
  }

  zoom(by) {
    this.pz?.zoomBy(by);
  }

  /** Pan so that an element of the SVG is in the middle of the view (if `always`, or when
   * it is not wholly in view). Reads the pan state, not the screen: svg-pan-zoom draws a
   * pan on the next animation frame, and steps may come faster. */
  reveal(el, always = true) {
    if (!this.pz || !el) return;
    const b = el.getBBox(), m = el.parentNode.getCTM(), root = this.pz.getSizes();
    const inner = this.svg.querySelector(".svg-pan-zoom_viewport").getCTM();
    // The element's box in the viewport group's units (the group's own CTM factored out).
    const toViewport = inner.inverse().multiply(m);
    const x0 = toViewport.a * b.x + toViewport.e, y0 = toViewport.d * b.y + toViewport.f;
    const s = root.realZoom, pan = this.pz.getPan();
    const left = pan.x + s * x0, top = pan.y + s * y0;
    const w = s * b.width * toViewport.a, h = s * b.height * toViewport.d;
    const inside = left >= 0 && top >= 0 && left + w <= root.width && top + h <= root.height;
    if (inside && !always) return;
    this.pz.pan({ x: pan.x + root.width / 2 - (left + w / 2), y: pan.y + root.height / 2 - (top + h / 2) });
  }

  // Arrows pan, + and - zoom, 0 fits, Home goes back to the default zoom.
  onKey(ev) {
    if (!this.pz || ev.target.closest("input, button")) return;
    const step = 60;
    const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (moves[ev.key]) this.pz.panBy({ x: moves[ev.key][0], y: moves[ev.key][1] });
    else if (ev.key === "+" || ev.key === "=") this.zoom(1.25);
    else if (ev.key === "-") this.zoom(0.8);
    else if (ev.key === "0") this.fit();
    else if (ev.key === "Home") this.home();
    else return;
    ev.preventDefault();
  }
}
