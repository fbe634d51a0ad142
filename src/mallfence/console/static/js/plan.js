// The floor plan: one level's zones as SVG in local metres (y flipped: north is up), beacons and QR codes
// as markers, and a layer for live dots. It draws what it is given; main.js decides what that is.
import { svg } from "./dom.js";
import { area, bounds, centroid, polygons, projection } from "./geo.js";

const PAD_M = 5;
const LAYERS = ["zones", "labels", "markers", "draft", "dots"];

export class FloorPlan {
  constructor(root, { onZoneClick }) {
    this.root = root;
    this.layers = Object.fromEntries(LAYERS.map((name) => [name, svg("g", { class: `layer-${name}` })]));
    root.append(...Object.values(this.layers));
    this.shapes = new Map(); // zone id -> its SVG shape
    this.project = null;
    this.picking = true; // false while the drawing tool owns the clicks
    root.addEventListener("click", (ev) => {
      if (!this.picking) return;
      // a marker or a dot over a zone still picks the zone: the topmost zone under the pointer
      const shape = document.elementsFromPoint(ev.clientX, ev.clientY).find((e) => e.matches(".zone"));
      if (shape && !shape.matches(".kind-venue")) onZoneClick(Number(shape.dataset.zoneId));
    });
  }

  // From local metres to SVG user units and back, and from a mouse event to local metres.
  static toSvg([x, y]) { return [x, -y]; }

  pointerToLocal(ev) {
    const p = new DOMPoint(ev.clientX, ev.clientY).matrixTransform(this.root.getScreenCTM().inverse());
    return [p.x, -p.y];
  }

  local(lonLat) { return this.project.toLocal(lonLat); }

  render({ anchor, zones, beacons, codes }) {
    this.project = projection(anchor);
    for (const name of ["zones", "labels", "markers"]) this.layers[name].replaceChildren();
    this.shapes.clear();
    const extent = [];
    // the venue outline first, so stores and corridors sit on top of it
    const ordered = [...zones].sort((a, b) => (a.kind === "venue" ? -1 : 0) - (b.kind === "venue" ? -1 : 0));
    for (const zone of ordered) {
      const { shape, outline, main } = this.shape(zone);
      this.shapes.set(zone.id, shape);
      this.layers.zones.append(shape);
      extent.push(...outline);
      if (zone.kind !== "venue") this.label(zone.name, main);
    }
    for (const beacon of beacons) {
      const [x, y] = FloorPlan.toSvg(this.local(beacon.position));
      this.layers.markers.append(svg("circle", { class: "beacon", cx: x, cy: y, r: 0.45, "data-beacon": beacon.key },
        svg("title", {}, `beacon ${beacon.name || beacon.external_id || beacon.key}`)));
    }
    for (const code of codes) {
      // without a position of its own: in its zone, just below the label
      const centre = this.centreOf(code.zone);
      const at = code.position ? this.local(code.position) : centre && [centre[0], centre[1] - 1.8];
      if (!at) continue;
      const [x, y] = FloorPlan.toSvg(at);
      this.layers.markers.append(svg("rect", { class: "qr", x: x - 0.8, y: y - 0.8, width: 1.6, height: 1.6,
        "data-qr": code.code }, svg("title", {}, `QR ${code.label || code.code}`)));
    }
    if (extent.length) {
      const b = bounds(extent);
      const w = b.maxX - b.minX + 2 * PAD_M;
      const h = b.maxY - b.minY + 2 * PAD_M;
      this.root.setAttribute("viewBox", `${b.minX - PAD_M} ${-b.maxY - PAD_M} ${w} ${h}`);
    }
  }

  shape(zone) {
    const attrs = { class: `zone kind-${zone.kind}${zone.active ? "" : " inactive"}`, "data-zone-id": zone.id };
    const title = svg("title", {}, `${zone.name} (${zone.kind})`);
    if (zone.geometry.type === "Point") {
      const [x, y] = this.local(zone.geometry.coordinates);
      const r = zone.radius_m || 1;
      const outline = [[x - r, y - r], [x + r, y + r]];
      const [cx, cy] = FloorPlan.toSvg([x, y]);
      return { shape: svg("circle", { ...attrs, cx, cy, r }, title), outline, main: outline };
    }
    const outline = []; // every outer ring: the plan's extent
    let main = []; // the largest outer ring carries the label
    let d = "";
    for (const rings of polygons(zone.geometry)) {
      rings.forEach((ring, i) => {
        const pts = ring.map((p) => this.local(p));
        if (i === 0) {
          outline.push(...pts);
          if (area(pts) > area(main)) main = pts;
        }
        d += pts.map((p, j) => `${j ? "L" : "M"}${FloorPlan.toSvg(p).map((v) => v.toFixed(2)).join(" ")}`).join("") + "Z";
      });
    }
    return { shape: svg("path", { ...attrs, d, "fill-rule": "evenodd" }, title), outline, main };
  }

  centreOf(zone) {
    if (!zone) return null;
    if (zone.geometry.type === "Point") return this.local(zone.geometry.coordinates);
    const first = polygons(zone.geometry)[0];
    return first ? centroid(first[0].map((p) => this.local(p))) : null;
  }

  // A name at the centre, sized to fit the zone's width; none where it would be unreadably small.
  label(text, outline) {
    if (outline.length < 2) return;
    const b = bounds(outline);
    const size = Math.min((b.maxX - b.minX) / (text.length * 0.6), (b.maxY - b.minY) * 0.45, 2.4);
    if (size < 0.7) return;
    const [x, y] = FloorPlan.toSvg(outline.length > 2 ? centroid(outline) : [(b.minX + b.maxX) / 2, (b.minY + b.maxY) / 2]);
    this.layers.labels.append(svg("text", { x, y, "font-size": size.toFixed(2), class: "label" }, text));
  }

  select(zoneId) {
    for (const [id, shape] of this.shapes) shape.classList.toggle("selected", id === zoneId);
  }

  flash(zoneId) {
    const shape = this.shapes.get(zoneId);
    if (!shape) return;
    shape.classList.remove("flash");
    void shape.getBBox(); // restart the animation
    shape.classList.add("flash");
  }

  // Footfall as fill colour: white to deep red by visits relative to the busiest zone; null clears it.
  heat(visitsByZone) {
    const max = visitsByZone ? Math.max(1, ...visitsByZone.values()) : 1;
    for (const [id, shape] of this.shapes) {
      const visits = visitsByZone ? visitsByZone.get(id) : undefined;
      shape.classList.toggle("heat", visits !== undefined);
      shape.style.fill = visits === undefined ? "" : heatColour(visits / max);
      shape.dataset.visits = visits === undefined ? "" : String(visits);
    }
  }

  placeDot(id, at, { stale = false } = {}) {
    let dot = this.layers.dots.querySelector(`[data-shopper="${CSS.escape(id)}"]`);
    if (!dot) {
      dot = svg("circle", { class: "dot", r: 1.1, cx: 0, cy: 0, "data-shopper": id }, svg("title", {}, `shopper ${id}`));
      this.layers.dots.append(dot);
    }
    const [x, y] = FloorPlan.toSvg(at);
    dot.style.transform = `translate(${x.toFixed(2)}px, ${y.toFixed(2)}px)`;
    dot.dataset.x = at[0].toFixed(2);
    dot.dataset.y = at[1].toFixed(2);
    dot.classList.toggle("stale", stale);
  }

  removeDot(id) {
    this.layers.dots.querySelector(`[data-shopper="${CSS.escape(id)}"]`)?.remove();
  }
}

function heatColour(share) {
  const t = Math.max(0, Math.min(1, share));
  const channel = (from, to) => Math.round(from + (to - from) * t);
  return `rgb(${channel(255, 190)}, ${channel(247, 20)}, ${channel(236, 30)})`;
}
