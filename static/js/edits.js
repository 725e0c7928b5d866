// The steps where a person set a weight by hand (intervention events) and the charts that
// mark them: run.js sets the steps (from GET /api/runs/{id}/interventions and live events),
// every chart made by panels/chart.js registers itself and draws them.
export const edits = { steps: [], charts: new Map() }; // chart -> its element

/** The steps every chart marks as edited by hand (an intervention's step). */
export function setEdits(steps) {
  edits.steps = [...steps];
  for (const [plot, el] of edits.charts) {
    el.dataset.edits = edits.steps.join(",");
    plot.redraw(false);
  }
}
