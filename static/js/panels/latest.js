// Base for panels that show only the latest event of their types: the page feeds `add`,
// and `draw` (on the next animation frame) renders `this.latest`.

export class LatestPanel {
  constructor(el) {
    this.el = el;
    this.body = el.querySelector(".panel-body");
    this.latest = null;
  }

  add(e) {
    this.el.hidden = false;
    this.latest = e;
  }
}
