// Scenes: the whole new-run form as a link, so a teacher can share a setup. Every control is
// one query parameter with the text it holds (`/?preset=moons&dataset.name=spiral&
// model.hidden=8,8&dataset.features=x1,x2,x1^2`), `start_paused=1` ticks "start paused" and
// `hide=optimizer.name,loss` hides those controls for a lesson. Opening the link fills the
// form with exactly those texts; what differs from the preset is sent as overrides, as when
// typed by hand (index.js).

/** The form's named controls but the preset: [name, element]. */
function controls(form) {
  return [...form.querySelectorAll("[name]")].filter((f) => f.name !== "preset").map((f) => [f.name, f]);
}

/** What shows a control: its label, or the fieldset of a list of choices. */
function wrapper(field) {
  return field.closest("fieldset.choices") ?? field.closest("label");
}

/** One checkbox per control in `container`: ticked ones are hidden by the link. */
export function setupHiding(form, container) {
  for (const [name, field] of controls(form)) {
    const label = document.createElement("label");
    label.className = "inline check";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = name;
    const title = wrapper(field)?.querySelector("legend")?.textContent ?? wrapper(field)?.firstChild?.textContent;
    label.append(box, ` ${(title ?? name).trim()}`);
    container.append(label);
  }
}

/** The link to this form as it is now (on this server). */
export function sceneLink(form, startPaused) {
  const params = new URLSearchParams();
  params.set("preset", form.preset.value);
  for (const [name, field] of controls(form)) params.set(name, field.value);
  if (startPaused) params.set("start_paused", "1");
  const hidden = [...form.querySelectorAll("#hide-list input:checked")].map((b) => b.value);
  if (hidden.length) params.set("hide", hidden.join(","));
  return `${location.origin}/?${params}`;
}

/** Fill the form from a link's parameters and hide what it hides; whether it held any. */
export function applyScene(form, params, startPausedBox) {
  let applied = false;
  for (const [name, field] of controls(form)) {
    if (!params.has(name)) continue;
    const value = params.get(name);
    if (field.tagName === "SELECT" && ![...field.options].some((o) => o.value === value)) {
      field.add(new Option(value, value)); // an uploaded set not listed (yet): kept as given
    }
    field.value = value;
    applied = true;
  }
  if (params.get("start_paused") === "1") startPausedBox.checked = applied = true;
  const hide = new Set((params.get("hide") ?? "").split(",").filter(Boolean));
  for (const [name, field] of controls(form)) {
    if (!hide.has(name)) continue;
    const shown = wrapper(field);
    if (shown) shown.hidden = true;
    const box = form.querySelector(`#hide-list input[value="${CSS.escape(name)}"]`);
    if (box) box.checked = true;
  }
  if (hide.size) form.dataset.hidden = [...hide].join(",");
  return applied;
}
