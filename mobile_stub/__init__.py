"""Simulated shopper app: walks a venue, streams noisy fixes to mallfence, measures the events."""

from mobile_stub.summary import RunSummary, ShopperEvent
from mobile_stub.swarm import StubError, run_shoppers

__all__ = ["RunSummary", "ShopperEvent", "StubError", "run_shoppers"]
