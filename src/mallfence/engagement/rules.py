"""The push budget: which candidates go out for one trigger, which are held back, and exactly why. PURE.

One budget per shopper across every campaign and channel (``Policy``): at most ``max_per_day`` and
``max_per_week`` marketing-budget pushes (local calendar day; rolling 7 days), never two within
``min_gap_s``, none in quiet hours (venue time), a campaign not again to the same shopper within its
cooldown, marketing only with marketing consent and never for a position that looks spoofed, nothing
from a topic the shopper opted out of, no offer for a product that is out in that store. Service pushes
(an order is ready) bypass the budget and quiet hours: the shopper asked for them; they still count as
"a push just happened" for the gap.

Of the candidates that pass, every service push goes, and of the rest only the highest priority one:
a shopper gets one marketing push per moment. Each loser is recorded with the winner that beat it.
Time is seconds since the epoch; days and quiet hours are in the venue's timezone (DST included).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from mallfence.engagement.candidates import PushCandidate

WEEK_S = 7 * 86400.0

# Reasons, in the order they are checked; the first that applies is the one recorded.
NO_CONSENT = "no_marketing_consent"
SUSPECT = "suspect_location"  # the trigger came from a fix the spoofing checks flagged (tracking/suspect.py)
OPTED_OUT = "opted_out"
OUT_OF_STOCK = "out_of_stock"
COOLDOWN = "campaign_cooldown"
QUIET_HOURS = "quiet_hours"
MIN_GAP = "min_gap"
DAILY_CAP = "daily_cap"
WEEKLY_CAP = "weekly_cap"
OUTRANKED = "outranked"


@dataclass(frozen=True, slots=True)
class Policy:
    """A venue's push budget per shopper."""

    tz: ZoneInfo
    max_per_day: int = 2
    max_per_week: int = 5
    min_gap_s: float = 1800.0
    quiet_start: time | None = time(21, 0)  # local; a window may wrap midnight
    quiet_end: time | None = time(9, 0)

    def quiet_at(self, ts: float) -> bool:
        if self.quiet_start is None or self.quiet_end is None or self.quiet_start == self.quiet_end:
            return False
        now = _local(ts, self.tz).time()
        if self.quiet_start < self.quiet_end:
            return self.quiet_start <= now < self.quiet_end
        return now >= self.quiet_start or now < self.quiet_end

    def day_start(self, ts: float) -> float:
        """Epoch seconds of local midnight of ``ts``'s day (DST days are 23 or 25 h long)."""
        local = datetime.fromtimestamp(ts, self.tz)
        midnight = datetime.combine(local.date(), time(0), self.tz)
        return midnight.timestamp()


@dataclass(frozen=True, slots=True)
class Sent:
    at: float
    category: str
    campaign_id: int | None


@dataclass(slots=True)
class Ledger:
    """The pushes one shopper got in the last 7 days (what the budget counts), oldest first."""

    sent: list[Sent] = field(default_factory=list)

    def record(self, at: float, category: str, campaign_id: int | None) -> None:
        self.sent.append(Sent(at, category, campaign_id))

    def forget(self, at: float, campaign_id: int | None) -> None:
        """Take back a push recorded at ``at`` that did not go after all (a holdout)."""
        for i in range(len(self.sent) - 1, -1, -1):
            if self.sent[i].at == at and self.sent[i].campaign_id == campaign_id:
                del self.sent[i]
                return

    def trim(self, now: float) -> None:
        cutoff = now - WEEK_S
        if self.sent and self.sent[0].at < cutoff:
            self.sent = [s for s in self.sent if s.at >= cutoff]


@dataclass(frozen=True, slots=True)
class Audience:
    """The shopper as the budget sees them at decision time."""

    marketing_consent: bool = False
    opt_out: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Verdict:
    candidate: PushCandidate
    sent: bool
    reason: str | None = None  # None when sent
    detail: dict[str, object] = field(default_factory=dict)


def _budgeted(c: PushCandidate) -> bool:
    return c.category != "service"


def _hold(c: PushCandidate, audience: Audience, ledger: Ledger, policy: Policy, now: float,
          out_of_stock: Callable[[int, Sequence[str]], set[str]] | None,
          suspect: Sequence[str] = ()) -> tuple[str, dict[str, object]] | None:
    """The first rule that holds ``c`` back, with the numbers behind it; None if it may go."""
    if c.category == "marketing" and not audience.marketing_consent:
        return NO_CONSENT, {}
    if c.category == "marketing" and suspect:
        return SUSPECT, {"flags": list(suspect)}
    if c.topic is not None and c.topic in audience.opt_out:
        return OPTED_OUT, {"topic": c.topic}
    if c.skus and c.store_id is not None and out_of_stock is not None:
        gone = out_of_stock(c.store_id, c.skus)
        if gone:
            return OUT_OF_STOCK, {"skus": sorted(gone), "store_id": c.store_id}
    if not _budgeted(c):
        return None
    cooldown = c.cooldown_s
    if c.campaign_id is not None and cooldown > 0:
        last = max((s.at for s in ledger.sent if s.campaign_id == c.campaign_id), default=None)
        if last is not None and now - last < cooldown:
            return COOLDOWN, {"cooldown_s": cooldown, "last_sent_s_ago": round(now - last, 1)}
    if policy.quiet_at(now):
        return QUIET_HOURS, {"quiet": f"{policy.quiet_start}-{policy.quiet_end}", "tz": str(policy.tz)}
    last_any = ledger.sent[-1].at if ledger.sent else None
    if last_any is not None and now - last_any < policy.min_gap_s:
        return MIN_GAP, {"min_gap_s": policy.min_gap_s, "last_push_s_ago": round(now - last_any, 1)}
    counted = [s for s in ledger.sent if s.category != "service"]
    today = sum(1 for s in counted if s.at >= policy.day_start(now))
    if today >= policy.max_per_day:
        return DAILY_CAP, {"sent_today": today, "max_per_day": policy.max_per_day}
    week = sum(1 for s in counted if s.at > now - WEEK_S)
    if week >= policy.max_per_week:
        return WEEKLY_CAP, {"sent_7_days": week, "max_per_week": policy.max_per_week}
    return None


def decide(candidates: Sequence[PushCandidate], audience: Audience, ledger: Ledger, policy: Policy, now: float, *,
           out_of_stock: Callable[[int, Sequence[str]], set[str]] | None = None,
           suspect: Sequence[str] = ()) -> list[Verdict]:
    """Verdicts for everything that wants to push at ``now``; records what is sent in ``ledger``.

    Verdicts come back in the candidates' order. ``out_of_stock(store_id, skus)`` names the SKUs that
    are out in that store now; ``suspect``: the spoofing flags of the fix behind the trigger (marketing
    waits for a position that is not in doubt, service pushes go).
    """
    ledger.trim(now)
    held: dict[int, tuple[str, dict[str, object]]] = {}
    for i, c in enumerate(candidates):
        hold = _hold(c, audience, ledger, policy, now, out_of_stock, suspect)
        if hold is not None:
            held[i] = hold
    passing = [i for i in range(len(candidates)) if i not in held]
    winners = {i for i in passing if not _budgeted(candidates[i])}
    budgeted = sorted((i for i in passing if _budgeted(candidates[i])),
                      key=lambda i: (-candidates[i].priority, i))
    if budgeted:
        winners.add(budgeted[0])
        top = candidates[budgeted[0]]
        for i in budgeted[1:]:
            held[i] = (OUTRANKED, {"winner": top.title, "winner_key": top.dedupe_key,
                                   "winner_priority": top.priority, "priority": candidates[i].priority})
    out = []
    for i, c in enumerate(candidates):
        if i in winners:
            ledger.record(now, c.category, c.campaign_id)
            out.append(Verdict(c, True))
        else:
            reason, detail = held[i]
            out.append(Verdict(c, False, reason, detail))
    return out


# -- schedules -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Schedule:
    """When a campaign may fire: dates (aware, absolute), weekdays and a daily window in venue time."""

    tz: ZoneInfo
    starts_at: float | None = None
    ends_at: float | None = None
    days: frozenset[int] = frozenset()  # 0 Monday .. 6 Sunday; empty: every day
    start: time | None = None  # daily window; end <= start wraps midnight (e.g. 22:00-02:00)
    end: time | None = None

    def closed_because(self, ts: float) -> str | None:
        """None when open at ``ts``; otherwise a short reason an operator understands."""
        if self.starts_at is not None and ts < self.starts_at:
            return "not started yet"
        if self.ends_at is not None and ts >= self.ends_at:
            return "ended"
        if not self.days and self.start is None:
            return None
        local = _local(ts, self.tz)  # every campaign listening to one event asks about the same instant
        day, now = local.weekday(), local.time()
        if self.start is not None and self.end is not None and self.start != self.end:
            if self.start < self.end:
                inside = self.start <= now < self.end
            else:  # wraps midnight: the night belongs to the day it started
                inside = now >= self.start or now < self.end
                if now < self.end:
                    day = (local - timedelta(days=1)).weekday()
            if not inside:
                return _outside(self.start, self.end)
        if self.days and day not in self.days:
            return "not on this weekday"
        return None


@lru_cache(maxsize=256)
def _local(ts: float, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(ts, tz)


@lru_cache(maxsize=1024)
def _outside(start: time, end: time) -> str:
    return f"outside {start.strftime('%H:%M')}-{end.strftime('%H:%M')}"
