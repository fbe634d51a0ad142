"""Footfall, dwell, paths, peak hours and campaign funnels, from events, decisions and purchases."""
