// The zone panel: facts about the selected zone, and the form that creates, renames, redraws or deletes one
// through the zones API. API refusals (a 422 naming the field, a 403 for a read-only key) go to onError.
import { api, venuePath } from "./api.js";
import { $, el } from "./dom.js";

export const KINDS = ["store", "corridor", "entrance", "pickup", "food_court", "department", "parking", "custom",
  "venue"];

export class ZoneEditor {
  constructor({ drawing, onSaved, onError, onClose }) {
    this.drawing = drawing;
    this.callbacks = { onSaved, onError, onClose };
    this.form = $("#zone-form");
    this.name = $("#zone-name");
    this.kind = $("#zone-kind");
    this.kind.append(...KINDS.map((k) => el("option", { value: k }, k.replace("_", " "))));
    this.zone = null; // the zone being edited; null for a new one
    this.corners = null; // corners drawn (local metres), not saved yet
    this.context = null; // { slug, level, plan, readOnly }
    this.form.addEventListener("submit", (ev) => { ev.preventDefault(); this.save(); });
    $("#zone-cancel").addEventListener("click", () => this.close());
    $("#zone-redraw").addEventListener("click", () => this.drawing.start());
    $("#zone-delete").addEventListener("click", () => this.remove());
  }

  setContext(context) {
    this.context = context;
    this.close();
  }

  // After a new polygon is drawn, or a zone redrawn.
  drawn(corners) {
    this.corners = corners;
    this.open(this.zone);
    if (!this.zone) this.name.focus();
  }

  open(zone) {
    this.zone = zone;
    this.form.hidden = false;
    $("#zone-hint").textContent = zone ? "" : "New zone: name it and choose its kind.";
    if (zone) {
      this.name.value = zone.name;
      this.kind.value = zone.kind;
    } else if (!this.corners) {
      this.name.value = "";
      this.kind.value = "custom";
    }
    const facts = zone ? [["id", zone.id], ["level", zone.level ?? "venue-wide"], ["external id", zone.external_id],
      ["tags", zone.tags.join(", ")], ["store", zone.store && zone.store.name], ["active", zone.active ? "yes" : "no"]]
      : [["corners", this.corners ? this.corners.length : 0], ["level", this.context.level]];
    $("#zone-facts").replaceChildren(...facts.filter(([, v]) => v !== null && v !== undefined && v !== "")
      .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const readOnly = this.context.readOnly;
    for (const id of ["#zone-save", "#zone-redraw", "#zone-delete"]) $(id).disabled = readOnly;
    $("#zone-delete").hidden = !zone;
    $("#zone-redraw").hidden = !zone;
  }

  close() {
    this.zone = null;
    this.corners = null;
    this.form.hidden = true;
    this.drawing.clear();
    if (this.drawing.active) this.drawing.stop();
    $("#zone-hint").textContent = this.context && !this.context.readOnly
      ? "Click a zone on the plan, or draw a new one." : "Click a zone on the plan.";
    this.callbacks.onClose();
  }

  geometry() {
    const ring = this.corners.map((p) => this.context.plan.project.toLonLat(p).map((v) => Number(v.toFixed(8))));
    return { type: "Polygon", coordinates: [[...ring, ring[0]]] };
  }

  async save() {
    const { slug, level } = this.context;
    const body = { name: this.name.value.trim(), kind: this.kind.value };
    if (this.corners) body.geometry = this.geometry();
    try {
      let saved;
      if (this.zone) {
        if (this.corners && this.zone.radius_m !== null) body.radius_m = null; // a redrawn circle is a polygon now
        saved = await api(venuePath(slug, `/zones/${this.zone.id}`), { method: "PATCH", body });
      } else {
        saved = await api(venuePath(slug, "/zones"), { method: "POST", body: { ...body, level } });
      }
      const what = !this.zone ? "created" : this.corners ? "redrawn" : "saved";
      this.corners = null;
      this.drawing.clear();
      this.callbacks.onSaved(saved, what);
    } catch (err) {
      this.callbacks.onError(`Zone not saved: ${err.message}`);
    }
  }

  async remove() {
    const zone = this.zone;
    if (!zone || !window.confirm(`Delete zone "${zone.name}"?`)) return;
    try {
      await api(venuePath(this.context.slug, `/zones/${zone.id}`), { method: "DELETE" });
      this.zone = null;
      this.callbacks.onSaved(null, `deleted "${zone.name}"`);
    } catch (err) {
      this.callbacks.onError(`Zone not deleted: ${err.message}`);
    }
  }
}
