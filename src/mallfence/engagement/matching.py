"""Which campaigns a zone event triggers for a shopper, and the push each would send. PURE.

A venue's active campaigns are indexed by (trigger, zone) when its snapshot is built, so an event
that no campaign listens to costs one dict lookup. A campaign that listens but may not fire now
(schedule, audience, dwell too short) says why: operators see "why did my offer not go" in the
decision log, not silence.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from mallfence.engagement.candidates import PushCandidate
from mallfence.engagement.rules import Schedule

TRIGGERS = ("enter", "dwell", "exit", "qr_scan", "first_visit")
SCHEDULE = "schedule"
AUDIENCE = "audience"
TOO_SHORT = "stay_too_short"
BUDGET = "campaign_budget"


@dataclass(frozen=True, slots=True)
class Text:
    title: str
    body: str


@dataclass(frozen=True, slots=True)
class Incentive:
    """An incentive tier: for ``segment`` ("*": anyone), when its decline is at least ``min_decline``."""

    segment: str
    text: str
    min_decline: float | None = None


@dataclass(frozen=True, slots=True)
class CampaignRule:
    id: int
    name: str
    trigger: str
    zone_ids: frozenset[int]
    schedule: Schedule
    text: Text
    texts: dict[str, Text]  # by app language ("da", "de"); ``text`` otherwise
    priority: int = 0
    min_stay_s: float | None = None  # dwell: the stay the dwell event reports; exit: the visit's length
    segments: frozenset[str] = frozenset()  # empty: every segment
    visitors: str = "all"  # all | new | returning
    incentives: tuple[Incentive, ...] = ()
    cooldown_s: float = 0.0
    budget: int | None = None
    holdout: float = 0.0
    skus: tuple[str, ...] = ()
    topic: str = "offers"
    deep_link: str | None = None
    image_url: str | None = None
    ttl_s: float = 3600.0


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str  # an event kind, or first_visit
    zone_id: int
    at: float  # device time, epoch seconds
    event_id: int
    duration_s: float | None = None
    store_id: int | None = None  # the store occupying the zone, if any


@dataclass(frozen=True, slots=True)
class Profile:
    """The shopper as campaigns target them."""

    shopper_id: str
    segment: str | None = None
    decline: float | None = None  # lapsing: how far visit frequency fell (0.4 = 40 %)
    language: str | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    rule: CampaignRule
    reason: str
    detail: dict[str, object]


class CampaignIndex:
    """A venue's active campaigns by (trigger, zone); immutable once built."""

    def __init__(self, rules: Iterable[CampaignRule] = ()):
        self.rules = tuple(rules)
        by: dict[tuple[str, int], list[CampaignRule]] = defaultdict(list)
        for rule in self.rules:
            for zone in rule.zone_ids:
                by[(rule.trigger, zone)].append(rule)
        self._by = {k: tuple(sorted(v, key=lambda r: (-r.priority, r.id))) for k, v in by.items()}
        self.triggers = frozenset(r.trigger for r in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def listening(self, kind: str, zone_id: int) -> tuple[CampaignRule, ...]:
        return self._by.get((kind, zone_id), ())


def held_out(campaign_id: int, shopper_id: str, share: float) -> bool:
    """Whether the shopper is in the campaign's control group: stable per (campaign, shopper), ``share`` of all."""
    if share <= 0:
        return False
    digest = hashlib.blake2b(f"{campaign_id}:{shopper_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < share


def _incentive(rule: CampaignRule, profile: Profile) -> Incentive | None:
    for tier in rule.incentives:
        if tier.segment not in ("*", profile.segment):
            continue
        if tier.min_decline is not None and (profile.decline is None or profile.decline < tier.min_decline):
            continue
        return tier
    return None


def _audience(rule: CampaignRule, profile: Profile) -> str | None:
    if rule.segments and profile.segment not in rule.segments:
        return f"segment {profile.segment or 'unknown'} is not one of {', '.join(sorted(rule.segments))}"
    if rule.visitors == "new" and profile.segment != "new":
        return "for new visitors only"
    if rule.visitors == "returning" and profile.segment in (None, "new"):
        return "for returning visitors only"
    return None


def candidate(rule: CampaignRule, trigger: Trigger, profile: Profile, incentive: Incentive | None) -> PushCandidate:
    """The push ``rule`` sends for ``trigger``: text in the shopper's language, incentive filled in."""
    text = rule.texts.get(profile.language or "", rule.text)
    fill = incentive.text if incentive is not None else ""
    explain: dict[str, object] = {"trigger": trigger.kind, "zone_id": trigger.zone_id, "event_id": trigger.event_id,
                                  "segment": profile.segment, "language": profile.language if text is not rule.text
                                  else None}
    if incentive is not None:
        explain["incentive"] = {"segment": incentive.segment, "min_decline": incentive.min_decline,
                                "text": incentive.text}
        if profile.decline is not None:
            explain["decline"] = profile.decline
    data = {"campaign_id": str(rule.id), "zone_id": str(trigger.zone_id)}
    if rule.skus:
        data["skus"] = ",".join(rule.skus)
    return PushCandidate(
        kind="campaign", category="marketing", title=text.title.replace("{incentive}", fill),
        body=text.body.replace("{incentive}", fill),
        dedupe_key=f"cmp:{rule.id}:{profile.shopper_id}:{trigger.event_id}",
        priority=rule.priority, data=data, deep_link=rule.deep_link, image_url=rule.image_url, ttl_s=rule.ttl_s,
        topic=rule.topic, skus=rule.skus, store_id=trigger.store_id, campaign_id=rule.id, cooldown_s=rule.cooldown_s,
        explain={**explain, "holdout": True} if held_out(rule.id, profile.shopper_id, rule.holdout) else explain,
    )


def match(trigger: Trigger, index: CampaignIndex, profile: Profile,
          exhausted: frozenset[int] = frozenset()) -> tuple[list[PushCandidate], list[Skipped]]:
    """(pushes the listening campaigns would send, campaigns that listen but may not fire now and why).

    ``exhausted``: campaigns whose total budget is spent.
    """
    out: list[PushCandidate] = []
    skipped: list[Skipped] = []
    for rule in index.listening(trigger.kind, trigger.zone_id):
        closed = rule.schedule.closed_because(trigger.at)
        if closed is not None:
            skipped.append(Skipped(rule, SCHEDULE, {"why": closed}))
            continue
        if rule.min_stay_s is not None and (trigger.duration_s or 0.0) < rule.min_stay_s:
            skipped.append(Skipped(rule, TOO_SHORT, {"stay_s": trigger.duration_s, "min_stay_s": rule.min_stay_s}))
            continue
        why = _audience(rule, profile)
        if why is not None:
            skipped.append(Skipped(rule, AUDIENCE, {"why": why, "segment": profile.segment}))
            continue
        tier = _incentive(rule, profile)
        if rule.incentives and tier is None:
            skipped.append(Skipped(rule, AUDIENCE, {"why": f"no incentive tier for segment {profile.segment}",
                                                    "segment": profile.segment, "decline": profile.decline}))
            continue
        if rule.id in exhausted:
            skipped.append(Skipped(rule, BUDGET, {"budget": rule.budget}))
            continue
        out.append(candidate(rule, trigger, profile, tier))
    return out, skipped
