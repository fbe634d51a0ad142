// Footfall per zone (a heatmap on the plan and a top list) and a campaign's funnel, from the analytics API:
//   GET …/analytics/footfall?from=&to=&bucket=hour|day -> {zones: [{zone_id, name, kind, visits, unique_shoppers, series}]}
//   GET …/analytics/campaigns/{id}/funnel?from=&to=    -> stages (decided … purchased), holdout rates, lift
// A server without that API answers 404: the panel says so and the rest of the console carries on.
import { api, ApiError, venuePath } from "./api.js";
import { el } from "./dom.js";

export const STAGES = ["decided", "sent", "delivered", "opened", "visited", "purchased"];
const UNAVAILABLE = "Analytics not available on this server yet (no analytics API): the plan, zones and live view "
  + "work without it.";

export function period(days) {
  const to = new Date();
  const from = new Date(to.getTime() - days * 86_400_000);
  return { from: from.toISOString(), to: to.toISOString() };
}

export class Analytics {
  constructor({ plan, message, footfall, campaignSelect, funnel }) {
    Object.assign(this, { plan, message, footfall, campaignSelect, funnel });
    this.visits = null; // Map zone id -> visits, once loaded
  }

  say(text) {
    this.message.hidden = !text;
    this.message.textContent = text || "";
  }

  // Returns false when the analytics API is not there (or refuses), after saying why.
  failed(err) {
    this.say(err instanceof ApiError && (err.status === 404 || err.status === 405) ? UNAVAILABLE
      : `Analytics failed: ${err.message}`);
    return false;
  }

  async loadFootfall(slug, days) {
    this.say("");
    let data;
    try {
      data = await api(venuePath(slug, "/analytics/footfall"), { query: { ...period(days), bucket: days > 2 ? "day" : "hour" } });
    } catch (err) {
      this.visits = null;
      this.footfall.replaceChildren();
      return this.failed(err);
    }
    const zones = Array.isArray(data?.zones) ? data.zones : [];
    this.visits = new Map(zones.map((z) => [z.zone_id, Number(z.visits) || 0]));
    const top = [...zones].sort((a, b) => b.visits - a.visits).slice(0, 8);
    const max = Math.max(1, ...top.map((z) => z.visits));
    this.footfall.replaceChildren(...top.map((z) => el("li", {},
      el("span", { class: "name" }, z.name), el("meter", { min: 0, max, value: z.visits }),
      el("span", { class: "num" }, `${z.visits} visits · ${z.unique_shoppers} shoppers`))));
    if (!top.length) this.footfall.append(el("li", { class: "hint" }, "no visits in this period"));
    return true;
  }

  async loadCampaigns(slug) {
    let campaigns = [];
    try {
      campaigns = await api(venuePath(slug, "/campaigns"));
    } catch (err) {
      this.say(`Campaigns not loaded: ${err.message}`);
    }
    this.campaignSelect.replaceChildren(el("option", { value: "" }, campaigns.length ? "choose a campaign" : "no campaigns"),
      ...campaigns.map((c) => el("option", { value: c.id }, `${c.name} (${c.status})`)));
    this.campaignSelect.disabled = !campaigns.length;
    this.funnel.replaceChildren();
  }

  async loadFunnel(slug, campaignId, days) {
    this.funnel.replaceChildren();
    if (!campaignId) return;
    let data;
    try {
      data = await api(venuePath(slug, `/analytics/campaigns/${encodeURIComponent(campaignId)}/funnel`),
        { query: period(days) });
    } catch (err) {
      this.failed(err);
      return;
    }
    this.say("");
    const stages = funnelStages(data);
    const top = Math.max(1, ...stages.map((s) => s.count));
    const rows = stages.map((s, i) => {
      const previous = i ? stages[i - 1].count : null;
      const rate = previous ? ` (${Math.round((100 * s.count) / previous)} %)` : "";
      return el("div", { class: "stage", "data-stage": s.name },
        el("span", { class: "name" }, s.name), el("meter", { min: 0, max: top, value: s.count }),
        el("span", { class: "num" }, `${s.count}${rate}`));
    });
    const groups = data?.groups ?? {};
    const lift = data?.lift ?? {};
    const facts = [...numbers("treatment", groups.treatment), ...numbers("holdout", groups.holdout ?? data?.holdout),
      ...numbers("visit lift", lift.visit), ...numbers("purchase lift", lift.purchase),
      ...verdicts(lift)];
    this.funnel.append(...rows, el("dl", {}, ...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])));
  }
}

// Stages as [{name, count}] in funnel order, from a list of {stage|name, count} or an object of counts.
export function funnelStages(data) {
  const stages = data?.stages ?? data;
  if (Array.isArray(stages)) {
    return stages.map((s) => ({ name: String(s.stage ?? s.name), count: Number(s.count ?? 0) }));
  }
  if (stages && typeof stages === "object") {
    return STAGES.filter((k) => k in stages).map((k) => {
      const v = stages[k];
      return { name: k, count: Number(typeof v === "object" && v !== null ? v.count : v) || 0 };
    });
  }
  return [];
}

// Numeric facts of a value (a number, or an object of numbers): rates as percentages.
function numbers(label, value) {
  if (typeof value === "number") return [[label, format(label, value)]];
  if (!value || typeof value !== "object") return [];
  return Object.entries(value).filter(([, v]) => typeof v === "number")
    .map(([k, v]) => [`${label} ${k.replaceAll("_", " ")}`, format(k, v)]);
}

// The analytics API says in words whether a lift is known ("too few to tell", ...): shown as it is.
function verdicts(lift) {
  return Object.entries(lift).filter(([, v]) => v && typeof v.verdict === "string")
    .map(([k, v]) => [`${k} verdict`, v.verdict]);
}

function format(key, v) {
  return /rate|share/.test(key) ? `${(100 * v).toFixed(1)} %` : String(Math.round(v * 1000) / 1000);
}
