// Wiring: sign in with an operator key, pick a venue and a level, and keep the plan, the zone panel, the live
// view and the analytics on that choice. Everything goes through the public API with the key as a bearer.
import { Analytics } from "./analytics.js";
import { api, credentials, venuePath } from "./api.js";
import { $, el } from "./dom.js";
import { DrawingTool } from "./draw.js";
import { ZoneEditor } from "./editor.js";
import { LiveView } from "./live.js";
import { FloorPlan } from "./plan.js";

const state = { me: null, venues: [], venue: null, level: null, zones: [], beacons: [], codes: [] };

let messageTimer;
function say(text, { error = false } = {}) {
  const box = $("#message");
  clearTimeout(messageTimer);
  box.textContent = text;
  box.className = error ? "error" : "info";
  box.hidden = !text;
  if (text && !error) messageTimer = setTimeout(() => { box.hidden = true; }, 4000);
}
const fail = (text) => say(text, { error: true });

const plan = new FloorPlan($("#plan"), { onZoneClick: (id) => selectZone(id) });
const drawing = new DrawingTool(plan, {
  onFinish: (corners) => { $("#draw-hint").hidden = true; editor.drawn(corners); },
  onCancel: () => { $("#draw-hint").hidden = true; if (!editor.zone) editor.close(); },
  onProblem: fail,
});
const editor = new ZoneEditor({
  drawing,
  onSaved: async (zone, what) => {
    await loadLevel(); // the plan shows the change by the time the message says it happened
    if (zone) selectZone(zone.id);
    say(zone ? `Zone "${zone.name}" ${what}.` : `Zone ${what}.`);
  },
  onError: fail,
  onClose: () => { plan.select(null); $("#draw-hint").hidden = true; },
});
const live = new LiveView({ plan, list: $("#events"), status: $("#live-status"), count: $("#live-count") });
const analytics = new Analytics({ plan, message: $("#analytics-message"), footfall: $("#footfall"),
  campaignSelect: $("#campaign"), funnel: $("#funnel") });

// -- signing in ---------------------------------------------------------------------------------
async function signIn(key) {
  let me;
  try {
    me = await api("/v1/me", { key });
  } catch (err) {
    if (err.status === 401) credentials.forget(); // a revoked key is not retried on every reload
    fail(`Sign-in failed: ${err.message}`);
    return;
  }
  if (me.kind !== "operator") {
    fail("This is a staff credential: the console needs an operator key (mfk_…).");
    return;
  }
  credentials.key = key;
  state.me = me;
  $("#login").hidden = true;
  $("#who").hidden = false;
  $("#who-name").textContent = `${me.name} · ${me.role}${me.role === "analyst" ? " (read-only)" : ""}`;
  say("");
  await loadVenues();
}

function signOut() {
  credentials.forget();
  live.close();
  location.reload();
}

// -- venue and level ----------------------------------------------------------------------------
async function loadVenues() {
  try {
    state.venues = await api("/v1/venues");
  } catch (err) {
    fail(`Venues not loaded: ${err.message}`);
    return;
  }
  const select = $("#venue");
  select.replaceChildren(...state.venues.map((v) => el("option", { value: v.slug }, `${v.name} (${v.slug})`)));
  select.disabled = !state.venues.length;
  if (!state.venues.length) {
    fail("This key sees no venue.");
    return;
  }
  const remembered = sessionStorage.getItem("mallfence.venue");
  select.value = state.venues.some((v) => v.slug === remembered) ? remembered : state.venues[0].slug;
  await chooseVenue(select.value);
}

async function chooseVenue(slug) {
  sessionStorage.setItem("mallfence.venue", slug);
  state.venue = state.venues.find((v) => v.slug === slug);
  const levels = [...state.venue.levels].sort((a, b) => b.ordinal - a.ordinal);
  const select = $("#level");
  select.replaceChildren(...levels.map((l) => el("option", { value: l.ordinal },
    `${l.short_name || l.ordinal} · ${l.name}`)));
  select.disabled = !levels.length;
  const ground = levels.find((l) => l.ordinal === 0) || levels[levels.length - 1];
  state.level = ground ? ground.ordinal : null;
  if (ground) select.value = String(ground.ordinal);
  $("#new-zone").disabled = state.me.role !== "admin" || state.level === null;
  $("#show-heat").disabled = false;
  $("#show-heat").checked = false;
  await loadLevel();
  live.connect(slug, credentials.key);
  analytics.loadCampaigns(slug);
}

async function loadLevel() {
  const slug = state.venue.slug;
  try {
    state.zones = await api(venuePath(slug, "/zones"));
  } catch (err) {
    fail(`Zones not loaded: ${err.message}`);
    return;
  }
  // markers are extras: a plan without them is still a plan
  const [beacons, codes] = await Promise.allSettled([api(venuePath(slug, "/beacons")), api(venuePath(slug, "/qr-codes"))]);
  state.beacons = beacons.status === "fulfilled" ? beacons.value : [];
  state.codes = codes.status === "fulfilled" ? codes.value : [];
  render();
}

function render() {
  const onLevel = (item) => item.level === state.level;
  const zones = state.zones.filter((z) => onLevel(z) || z.level === null);
  // a code without a position of its own hangs in its zone (or its store's zone), on that zone's level
  const codes = state.codes.map((c) => ({ ...c, zone: state.zones.find((z) => z.id === c.zone_id
    || (c.store_id !== null && z.store && z.store.id === c.store_id)) }))
    .filter((c) => (c.level ?? c.zone?.level) === state.level);
  plan.render({ anchor: state.venue.anchor, zones, beacons: state.beacons.filter(onLevel), codes });
  plan.heat($("#show-heat").checked ? analytics.visits : null);
  live.showLevel(state.level, zones);
  editor.setContext({ slug: state.venue.slug, level: state.level, plan, readOnly: state.me.role !== "admin" });
  renderLegend(zones);
}

function renderLegend(zones) {
  const kinds = [...new Set(zones.map((z) => z.kind))].sort();
  $("#legend").replaceChildren(
    ...kinds.map((k) => el("li", {}, el("span", { class: `swatch kind-${k}` }), k.replace("_", " "))),
    el("li", {}, el("span", { class: "swatch beacon" }), "beacon"),
    el("li", {}, el("span", { class: "swatch qr" }), "QR code"),
    el("li", {}, el("span", { class: "swatch dot" }), "shopper (live)"));
  if ($("#show-heat").checked && analytics.visits) {
    const max = Math.max(0, ...analytics.visits.values());
    $("#legend").append(el("li", {}, el("span", { class: "swatch heat" }), `footfall: white 0 to red ${max} visits`));
  }
}

function selectZone(id) {
  const zone = state.zones.find((z) => z.id === id);
  if (!zone) return;
  plan.select(id);
  editor.open(zone);
}

async function showHeat() {
  if (!$("#show-heat").checked) {
    paintHeat();
    return;
  }
  const ok = await analytics.loadFootfall(state.venue.slug, Number($("#period").value));
  if (!ok) $("#show-heat").checked = false;
  paintHeat();
}

// heat only: an open zone form or a drawing in progress stays as it is
function paintHeat() {
  plan.heat($("#show-heat").checked ? analytics.visits : null);
  renderLegend(state.zones.filter((z) => z.level === state.level || z.level === null));
}

// -- events ------------------------------------------------------------------------------------
$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("#key").value.trim());
});
$("#logout").addEventListener("click", signOut);
$("#venue").addEventListener("change", (ev) => chooseVenue(ev.target.value));
$("#level").addEventListener("change", (ev) => {
  state.level = Number(ev.target.value);
  render();
});
$("#new-zone").addEventListener("click", () => {
  editor.close();
  $("#draw-hint").hidden = false;
  drawing.start();
});
$("#zone-redraw").addEventListener("click", () => { $("#draw-hint").hidden = false; });
$("#show-heat").addEventListener("change", showHeat);
$("#period").addEventListener("change", () => {
  if ($("#show-heat").checked) showHeat();
  if ($("#campaign").value) analytics.loadFunnel(state.venue.slug, $("#campaign").value, Number($("#period").value));
});
$("#campaign").addEventListener("change", (ev) =>
  analytics.loadFunnel(state.venue.slug, ev.target.value, Number($("#period").value)));

if (credentials.key) signIn(credentials.key);
