// The graph panel's fixed parts around the SVG: the toolbar (layers, search, zoom, the
// stepper's start), the stepper's controls, the view, the inspector and the hover tip.

function button(text, action, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = text;
  b.dataset.graphAction = action;
  if (label) b.setAttribute("aria-label", label);
  return b;
}

/** Builds the panel body's parts once; returns them by name. */
export function chrome(body) {
  const note = document.createElement("p");
  note.className = "muted graph-note";
  note.hidden = true;

  const toolbar = document.createElement("div");
  toolbar.className = "toolbar graph-toolbar";
  const hint = document.createElement("p");
  hint.className = "muted";
  const layers = document.createElement("span");
  layers.className = "graph-layers";
  layers.append(hint, button("Expand all", "expand-all"), button("Collapse all", "collapse-all"));
  const search = document.createElement("input");
  search.type = "search";
  search.placeholder = "find a node by label";
  search.setAttribute("aria-label", "find a node by label (Enter: next match)");
  search.className = "graph-search";
  const zoom = document.createElement("span");
  zoom.className = "graph-zoom";
  zoom.append(button("Fit", "fit", "fit the whole graph in view"), button("−", "zoom-out", "zoom out"),
    button("+", "zoom-in", "zoom in"), button("Reset", "home", "reset the zoom"));
  const stepStart = button("Step through backprop", "stepper");
  toolbar.append(layers, search, zoom, stepStart);

  const stepper = document.createElement("div");
  stepper.className = "toolbar graph-stepper";
  stepper.hidden = true;
  const readout = document.createElement("output");
  readout.className = "mono graph-readout";
  stepper.append(button("◀ Back", "back"), button("Step ▶", "step"), button("Play", "play"),
    button("Done", "stop"), readout);

  const main = document.createElement("div");
  main.className = "graph-main";
  const view = document.createElement("div");
  view.className = "graph-view";
  view.tabIndex = 0;
  view.setAttribute("aria-label", "computation graph: arrows pan, + and - zoom, 0 fits, " +
    "Tab moves between nodes, Enter explains one");
  const inspect = document.createElement("aside");
  inspect.className = "graph-inspector";
  inspect.hidden = true;
  inspect.setAttribute("aria-live", "polite");
  main.append(view, inspect);

  const tip = document.createElement("div");
  tip.className = "graph-tip";
  tip.hidden = true;
  tip.setAttribute("role", "tooltip");

  body.replaceChildren(note, toolbar, stepper, main, tip);
  return { note, hint, layers, search, stepStart, stepper, readout, view, inspect, tip,
    play: stepper.querySelector("[data-graph-action=play]") };
}
