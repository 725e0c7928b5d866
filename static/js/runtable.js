// The home page's run table: name, tags, state, step, final and best loss and accuracy (each
// run's `summary`, kept by the server), the config keys that differ among the runs shown,
// duration and age. Click a header to sort (again: the other way); type in the filter
// (every word must match the name, a tag, the state, the preset or a config key=value);
// tick runs (or the header box: every run shown) and compare them; ✎ renames and tags a
// run (PATCH /api/runs/{id}). Fed by the live run list (index.js, /ws/runs).
// Test hooks: the table's data-sort ("key:asc|desc") and data-shown (rows shown); each row's
// data-run-id, each cell's data-col.
import { api } from "./api.js";
import {
  configValue, differingKeys, durationOf, flatConfig, shortKeys, showDuration, showMetric,
  showValue,
} from "./runinfo.js";

const num = (v) => (typeof v === "number" ? v : null);
const figure = (metric, field) => (r) => num(r.summary?.[metric]?.[field]);
// [key, header, sort value (null: sorts last), numeric]
const COLUMNS = [
  ["name", "Run", (r) => r.name.toLowerCase(), false],
  ["tags", "Tags", (r) => (r.tags.length ? r.tags.join(",").toLowerCase() : null), false],
  ["state", "State", (r) => r.state, false],
  ["step", "Step", (r) => r.step, true],
  ["loss", "Loss", figure("train_loss", "final"), true],
  ["best_loss", "Best loss", figure("train_loss", "best"), true],
  ["test_loss", "Test loss", figure("test_loss", "final"), true],
  ["acc", "Test acc", figure("test_acc", "final"), true],
  ["best_acc", "Best acc", figure("test_acc", "best"), true],
  ["config", "Config that differs", null, false],
  ["duration", "Duration", (r) => durationOf(r), true],
  ["created", "Created", (r) => r.created_at, true],
];
const CREATED = { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
const MAX_CHIPS = 6; // config differences shown in a row (filtering narrows them down)
const METRIC_OF = { loss: "train_loss", best_loss: "train_loss", test_loss: "test_loss",
  acc: "test_acc", best_acc: "test_acc" };

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

export class RunTable {
  constructor(root) {
    this.table = root.querySelector("#run-list");
    this.tbody = this.table.querySelector("tbody");
    this.filterInput = root.querySelector("#run-filter");
    this.count = root.querySelector("#run-count");
    this.compareButton = root.querySelector("#compare-button");
    this.runs = new Map();
    this.selected = new Set();
    this.sort = { key: "created", dir: -1 };
    this.editing = null; // {id, row}: the row being renamed keeps its inputs across renders
    this.frame = 0;
    this.compareButton.addEventListener("click", () => {
      location.href = `/compare?runs=${this.selectedShown().join(",")}`;
    });
    this.filterInput.addEventListener("input", () => this.schedule());
    this.header();
  }

  /** The live list's message: a full list or changes, and deletions. */
  apply(data) {
    if (data.full) this.runs.clear();
    for (const r of data.runs) this.runs.set(r.id, r);
    for (const id of data.deleted) { this.runs.delete(id); this.selected.delete(id); }
    this.schedule();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  header() {
    this.all = el("input", { type: "checkbox", title: "select every run shown" });
    this.all.setAttribute("aria-label", "select every run shown");
    this.all.addEventListener("change", () => {
      for (const r of this.shown) {
        if (this.all.checked) this.selected.add(r.id); else this.selected.delete(r.id);
      }
      this.render();
    });
    const cells = [el("th", {}, this.all)];
    for (const [key, label, value] of COLUMNS) {
      const th = el("th", { className: value && COLUMNS.find((c) => c[0] === key)[3] ? "num" : "" });
      th.dataset.col = key;
      if (value) {
        const b = el("button", { type: "button", className: "sort", textContent: label });
        b.addEventListener("click", () => {
          this.sort = { key, dir: this.sort.key === key ? -this.sort.dir : (key === "name" ? 1 : -1) };
          this.render();
        });
        th.append(b);
      } else {
        th.textContent = label;
      }
      cells.push(th);
    }
    this.table.querySelector("thead").replaceChildren(el("tr", {}, ...cells));
  }

  /** Every word of the filter is in the run's name, a tag, its state, preset or config. */
  matches(r, words) {
    if (!words.length) return true;
    const text = [r.name, r.state, r.preset || "custom", ...r.tags.map((t) => `#${t}`),
      ...flatConfig(r.config).map(([k, v]) => `${k}=${showValue(v)}`)].join(" ").toLowerCase();
    return words.every((w) => text.includes(w));
  }

  selectedShown() {
    return this.shown.filter((r) => this.selected.has(r.id)).map((r) => r.id);
  }

  render() {
    const words = this.filterInput.value.toLowerCase().split(/\s+/).filter(Boolean);
    const [, , value] = COLUMNS.find((c) => c[0] === this.sort.key);
    const { dir } = this.sort;
    this.shown = [...this.runs.values()].filter((r) => this.matches(r, words)).sort((a, b) => {
      const x = value(a), y = value(b);
      if (x === y) return b.created_at - a.created_at;
      if (x === null) return 1; // unknown figures last, either way
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    const keys = differingKeys(this.shown);
    const short = shortKeys(keys);
    const rows = this.shown.map((r) => (this.editing?.id === r.id ? this.editing.row : this.row(r, keys, short)));
    if (!rows.length) {
      const why = this.runs.size ? "No run matches the filter." : "No runs yet: start one below.";
      rows.push(el("tr", { className: "empty" }, el("td", { colSpan: COLUMNS.length + 1, textContent: why })));
    }
    this.tbody.replaceChildren(...rows);
    for (const th of this.table.querySelectorAll("th[data-col]")) {
      const on = th.dataset.col === this.sort.key;
      th.setAttribute("aria-sort", on ? (dir > 0 ? "ascending" : "descending") : "none");
    }
    const chosen = this.selectedShown().length;
    this.all.checked = this.shown.length > 0 && chosen === this.shown.length;
    this.all.indeterminate = chosen > 0 && chosen < this.shown.length;
    this.compareButton.disabled = chosen < 2;
    this.count.textContent = (words.length ? `${this.shown.length} of ${this.runs.size}` : `${this.runs.size}`) +
      ` run${this.runs.size === 1 ? "" : "s"}` + (chosen ? ` · ${chosen} selected` : "");
    this.table.dataset.sort = `${this.sort.key}:${dir > 0 ? "asc" : "desc"}`;
    this.table.dataset.shown = this.shown.length;
  }

  row(r, keys, short) {
    const tr = el("tr");
    tr.dataset.runId = r.id;
    const box = el("input", { type: "checkbox", checked: this.selected.has(r.id) });
    box.setAttribute("aria-label", `select ${r.name}`);
    box.addEventListener("change", () => {
      if (box.checked) this.selected.add(r.id); else this.selected.delete(r.id);
      this.render();
    });
    tr.append(el("td", { className: "select" }, box));
    for (const [key, label] of COLUMNS) {
      const td = el("td");
      td.dataset.col = key;
      td.dataset.label = label;
      if (key in METRIC_OF) {
        td.className = "num";
        td.textContent = showMetric(METRIC_OF[key], COLUMNS.find((c) => c[0] === key)[2](r));
      } else if (key === "name") {
        const edit = el("button", { type: "button", className: "edit", textContent: "✎" });
        edit.setAttribute("aria-label", `rename or tag ${r.name}`);
        edit.addEventListener("click", () => this.edit(r));
        td.append(el("a", { href: `/runs/${r.id}`, textContent: r.name }), " ", edit);
      } else if (key === "tags") {
        for (const t of r.tags) {
          const chip = el("button", { type: "button", className: "tag", textContent: t });
          chip.title = `show the runs tagged ${t}`;
          chip.addEventListener("click", () => { this.filterInput.value = `#${t}`; this.render(); });
          td.append(chip, " ");
        }
      } else if (key === "state") {
        td.className = `state ${r.state}`;
        td.textContent = r.state;
      } else if (key === "step") {
        td.className = "num";
        td.textContent = `${r.step} / ${r.total_steps}`;
      } else if (key === "config") {
        const kv = (k) => `${short.get(k)}=${showValue(configValue(r.config, k))}`;
        for (const k of keys.slice(0, MAX_CHIPS)) {
          td.append(el("span", { className: "kv", title: k, textContent: kv(k) }), " ");
        }
        if (keys.length > MAX_CHIPS) { // the rest on hover: filter the runs for fewer
          td.append(el("span", { className: "muted", textContent: `+${keys.length - MAX_CHIPS} more`,
            title: keys.slice(MAX_CHIPS).map(kv).join("\n") }));
        }
        if (!keys.length) td.textContent = r.preset || "custom";
      } else if (key === "duration") {
        td.className = "num";
        td.textContent = showDuration(durationOf(r));
      } else if (key === "created") {
        td.textContent = new Date(r.created_at * 1000).toLocaleString(undefined, CREATED);
      }
      tr.append(td);
    }
    return tr;
  }

  // -- rename and tag ------------------------------------------------------------------------
  edit(r) {
    const name = el("input", { name: "name", value: r.name, maxLength: 200 });
    name.setAttribute("aria-label", "name");
    const tags = el("input", { name: "tags", value: r.tags.join(", "), placeholder: "tags, comma-separated" });
    tags.setAttribute("aria-label", "tags");
    const save = el("button", { type: "submit", textContent: "Save" });
    const cancel = el("button", { type: "button", textContent: "Cancel" });
    const error = el("span", { className: "form-error", role: "alert" });
    const form = el("form", { className: "edit-run" }, name, tags, save, cancel, error);
    const row = el("tr", { className: "editing" }, el("td", { colSpan: COLUMNS.length + 1 }, form));
    row.dataset.runId = r.id;
    const done = () => { this.editing = null; this.render(); };
    cancel.addEventListener("click", done);
    form.addEventListener("keydown", (e) => { if (e.key === "Escape") done(); });
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      save.disabled = true;
      try {
        const list = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
        const run = await api.patch(r.id, { name: name.value, tags: list });
        this.runs.set(run.id, run);
        done();
      } catch (err) {
        error.textContent = err.message;
        save.disabled = false;
      }
    });
    this.editing = { id: r.id, row };
    this.render();
    name.focus();
  }
}
