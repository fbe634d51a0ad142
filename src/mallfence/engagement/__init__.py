"""Engagement: campaigns and offers, the one push budget per shopper, segments, decisions explained."""
