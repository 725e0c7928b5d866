// Confusion matrix panel (classification runs): the latest epoch's counts, rows the true
// label and columns the prediction, shaded by each row's share.
//
// Consumes (docs/events.md):
//   {"type": "confusion", "step": 938, "data": {"labels": [0, 1, ...], "matrix": [[int]]}}
// Backend route: GET /api/runs/{id}/snapshots/confusion?at=STEP

import { FramePanel } from "./frame.js";

export default class ConfusionPanel extends FramePanel {
  draw() {
    const confusion = this.get("confusion");
    if (!confusion) return this.nothing("confusion matrix");
    const { labels, matrix } = confusion.data;
    const table = document.createElement("table");
    table.className = "confusion";
    const head = document.createElement("tr");
    head.append(document.createElement("th"));
    for (const l of labels) {
      const th = document.createElement("th");
      th.textContent = `pred ${l}`;
      head.append(th);
    }
    table.append(head);
    let correct = 0, total = 0;
    matrix.forEach((row, i) => {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.textContent = `true ${labels[i]}`;
      tr.append(th);
      const sum = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((n, j) => {
        const td = document.createElement("td");
        td.className = "num";
        td.textContent = n;
        const share = n / sum;
        td.style.background = i === j ? `rgba(44,160,44,${share})` : `rgba(214,39,40,${Math.min(1, 3 * share)})`;
        tr.append(td);
        total += n;
        if (i === j) correct += n;
      });
      table.append(tr);
    });
    const caption = document.createElement("p");
    caption.className = "muted";
    // The matrix is the latest epoch end's: its own step may be before the frame's.
    const at = confusion.step === this.step ? "" : ` (matrix of step ${confusion.step})`;
    caption.textContent = `step ${this.step}${at}: ${correct} of ${total} right ` +
      `(${(100 * correct / Math.max(1, total)).toFixed(2)}%)`;
    this.body.replaceChildren(table, caption);
    this.stamp();
    this.el.dataset.correct = correct;
    this.el.dataset.total = total;
  }
}
