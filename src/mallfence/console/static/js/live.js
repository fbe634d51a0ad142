// The venue's live websocket (WS /v1/venues/{slug}/live, the key as a subprotocol): shoppers as dots on the plan, zone events as a
// list, newest first. Reconnects with backoff unless the server refused the key or the venue.
import { el } from "./dom.js";

const MAX_EVENTS = 100;
const FORGET_AFTER_MS = 120_000; // a shopper silent this long leaves the plan
const REFUSED = { 4401: "key not accepted", 4403: "no access to this venue", 4404: "unknown venue" };

export class LiveView {
  constructor({ plan, list, status, count }) {
    Object.assign(this, { plan, list, status, count });
    this.socket = null;
    this.shoppers = new Map(); // pseudonym -> { at: [x, y], floor, seen }
    this.level = null;
    this.zoneNames = new Map();
    setInterval(() => this.forgetSilent(), 10_000);
  }

  connect(slug, key) {
    this.close();
    this.wanted = { slug, key };
    this.attempt = 0;
    this.open();
  }

  open() {
    const { slug, key } = this.wanted;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    // the key goes as a subprotocol, not in the URL, where access logs would keep it
    const socket = new WebSocket(`${scheme}://${location.host}/v1/venues/${encodeURIComponent(slug)}/live`,
      ["mallfence.bearer", key]);
    this.socket = socket;
    this.setStatus("connecting", "live: connecting…");
    socket.addEventListener("message", (ev) => this.receive(JSON.parse(ev.data)));
    socket.addEventListener("close", (ev) => {
      if (this.socket !== socket) return; // replaced or closed on purpose
      if (REFUSED[ev.code]) {
        this.setStatus("off", `live: refused (${REFUSED[ev.code]})`);
        return;
      }
      const delay = Math.min(30, 2 ** this.attempt++) * 1000;
      this.setStatus("off", `live: disconnected, retrying in ${delay / 1000} s`);
      this.retry = setTimeout(() => this.open(), delay);
    });
  }

  close() {
    clearTimeout(this.retry);
    const socket = this.socket;
    this.socket = null;
    socket?.close();
    for (const id of this.shoppers.keys()) this.plan.removeDot(id);
    this.shoppers.clear();
    this.list.replaceChildren();
    this.setStatus("off", "live: off");
    this.updateCount();
  }

  setStatus(state, text) {
    this.status.className = `status ${state}`;
    this.status.textContent = text;
  }

  showLevel(level, zones) {
    this.level = level;
    this.zoneNames = new Map(zones.map((z) => [z.id, z.name]));
    for (const id of this.shoppers.keys()) this.draw(id);
    this.updateCount();
  }

  receive(message) {
    if (message.type === "hello") {
      this.attempt = 0;
      this.setStatus("on", "live: connected");
    } else if (message.type === "position") {
      this.shoppers.set(message.shopper, { lonLat: [message.lon, message.lat], floor: message.floor,
        seen: Date.now() });
      this.draw(message.shopper);
      this.updateCount();
    } else if (message.type === "event") {
      this.addEvent(message);
    }
  }

  // A shopper on another floor is not drawn; one without a floor (plain GPS) is drawn hollow on every level.
  draw(id) {
    const s = this.shoppers.get(id);
    if (!this.plan.project || (s.floor !== null && s.floor !== undefined && s.floor !== this.level)) {
      this.plan.removeDot(id);
      return;
    }
    this.plan.placeDot(id, this.plan.local(s.lonLat), { stale: s.floor === null || s.floor === undefined });
  }

  addEvent(event) {
    const zone = event.zone || {};
    const time = new Date(event.at).toLocaleTimeString([], { hour12: false });
    const where = zone.level === null || zone.level === undefined ? "venue" : `level ${zone.level}`;
    const item = el("li", { class: `event kind-${event.kind}`, "data-zone-id": zone.id },
      el("time", { datetime: event.at }, time), " ", el("b", {}, event.kind), " ",
      el("span", { class: "zone-name" }, zone.name || (zone.id ? `zone ${zone.id}` : "no zone")), ` (${where}) · ${event.shopper}`);
    this.list.prepend(item);
    while (this.list.children.length > MAX_EVENTS) this.list.lastChild.remove();
    if (event.kind === "enter" && zone.level === this.level) this.plan.flash(zone.id);
  }

  forgetSilent() {
    const now = Date.now();
    for (const [id, s] of this.shoppers) {
      if (now - s.seen > FORGET_AFTER_MS) {
        this.shoppers.delete(id);
        this.plan.removeDot(id);
      }
    }
    this.updateCount();
  }

  updateCount() {
    const here = [...this.shoppers.values()].filter((s) => s.floor === this.level).length;
    this.count.textContent = this.shoppers.size ? `${this.shoppers.size} shoppers, ${here} on this level` : "";
  }
}
