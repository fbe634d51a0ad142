"""A push something wants to send: what campaigns and commerce (wishlists, orders) hand the decision engine.

The engine (``engagement.rules``) decides, per shopper and trigger, which candidates go out and which are
suppressed and why, under one push budget (caps, minimum gap, quiet hours, consent, opt-outs). Nothing
sends a push around it: a candidate that is not decided does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Notification categories: "service" pushes (an order is ready) are what the shopper asked for and need no
# marketing consent; "marketing" (offers) needs it; "wishlist" alerts are a service the shopper switched on
# by saving an item, but count against the budget and can be turned off like a topic.
CATEGORIES = ("service", "marketing", "wishlist")


@dataclass(frozen=True, slots=True)
class PushCandidate:
    kind: str  # campaign | wishlist_in_stock | wishlist_reminder | order_ready
    category: str  # one of CATEGORIES
    title: str
    body: str
    dedupe_key: str  # the same decision twice gives one notification (e.g. "order-ready:{order}:{day}")
    priority: int = 0  # when several fire at once, the highest priority wins
    data: dict[str, str] = field(default_factory=dict)  # deep-link payload for the app; string values (FCM)
    deep_link: str | None = None
    image_url: str | None = None
    ttl_s: float = 3600.0
    topic: str | None = None  # what a shopper may opt out of ("offers", "wishlist"); None: cannot opt out
    skus: tuple[str, ...] = ()  # products named: an offer is suppressed where they are out of stock
    store_id: int | None = None  # the store the push is about (stock checks, staff context)
    campaign_id: int | None = None
    cooldown_s: float = 0.0  # this campaign not again to the same shopper within this long
    explain: dict[str, object] = field(default_factory=dict)  # why this candidate exists (rule inputs)
