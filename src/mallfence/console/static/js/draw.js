// Drawing a polygon on the plan: click corners, double-click or Enter to finish, Backspace to undo the last
// corner, Escape to cancel. Yields the corners in local metres; what they become is the caller's business.
import { svg } from "./dom.js";
import { FloorPlan } from "./plan.js";

export class DrawingTool {
  constructor(plan, { onFinish, onCancel, onProblem }) {
    this.plan = plan;
    this.callbacks = { onFinish, onCancel, onProblem };
    this.active = false;
    this.points = [];
    const root = plan.root;
    root.addEventListener("click", (ev) => {
      if (!this.active || ev.detail > 1) return; // the second click of a double-click finishes instead
      this.points.push(plan.pointerToLocal(ev));
      this.redraw();
    });
    root.addEventListener("dblclick", (ev) => {
      if (!this.active) return;
      ev.preventDefault();
      this.finish();
    });
    root.addEventListener("mousemove", (ev) => {
      if (this.active && this.points.length) this.redraw(plan.pointerToLocal(ev));
    });
    document.addEventListener("keydown", (ev) => {
      if (!this.active || ev.target.closest("input, select, textarea")) return;
      if (ev.key === "Enter") this.finish();
      else if (ev.key === "Escape") this.cancel();
      else if (ev.key === "Backspace") { this.points.pop(); this.redraw(); }
      else return;
      ev.preventDefault();
    });
  }

  start() {
    this.active = true;
    this.points = [];
    this.plan.picking = false;
    this.plan.root.classList.add("drawing");
    this.redraw();
  }

  finish() {
    if (this.points.length < 3) {
      this.callbacks.onProblem("a zone needs at least three corners");
      return;
    }
    this.stop();
    this.redraw();
    this.callbacks.onFinish(this.points);
  }

  cancel() {
    this.stop();
    this.clear();
    this.callbacks.onCancel();
  }

  stop() {
    this.active = false;
    this.plan.picking = true;
    this.plan.root.classList.remove("drawing");
  }

  clear() {
    this.points = [];
    this.plan.layers.draft.replaceChildren();
  }

  redraw(cursor) {
    const pts = cursor ? [...this.points, cursor] : this.points;
    const coords = pts.map((p) => FloorPlan.toSvg(p).map((v) => v.toFixed(2)).join(",")).join(" ");
    const layer = this.plan.layers.draft;
    layer.replaceChildren();
    if (pts.length > 1) layer.append(svg(this.active ? "polyline" : "polygon", { class: "draft", points: coords }));
    for (const p of this.points) {
      const [x, y] = FloorPlan.toSvg(p);
      layer.append(svg("circle", { class: "corner", cx: x, cy: y, r: 0.5 }));
    }
  }
}
