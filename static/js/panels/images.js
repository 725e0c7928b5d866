// The image panels' shared pieces (mnist.js, cnn.js): base64 bytes of an event's image,
// the diverging weight colours, painting bytes onto a canvas through a colour function, and
// a grid's reused figures.

/** The bytes of a base64 string (an event's uint8 image). */
export function bytesOf(b64) {
  const s = atob(b64);
  const out = new Uint8ClampedArray(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Diverging map for weights (byte 127.5 = 0): negative blue, zero white, positive red. */
export function weightRGB(b) {
  const v = (b - 127.5) / 127.5;
  return v >= 0 ? [255, 255 * (1 - v), 255 * (1 - v)] : [255 * (1 + v), 255 * (1 + v), 255];
}

/** Paint `bytes` (row-major, h x w) on `canvas`, each through `colour` (byte -> [r, g, b]). */
export function paint(canvas, bytes, [h, w], colour) {
  canvas.width = w;
  canvas.height = h;
  const ctx = canvas.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < w * h; i++) {
    const [r, g, b] = colour(bytes[i]);
    img.data[4 * i] = r;
    img.data[4 * i + 1] = g;
    img.data[4 * i + 2] = b;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

/** The first n figures (canvas + caption) of `grid`, made or removed as needed: a new
 * snapshot only repaints them, so memory stays flat while a run streams or is scrubbed. */
export function cells(grid, n) {
  while (grid.children.length < n) {
    const fig = document.createElement("figure");
    fig.append(document.createElement("canvas"), document.createElement("figcaption"));
    grid.append(fig);
  }
  while (grid.children.length > n) grid.lastChild.remove();
  return [...grid.children];
}
