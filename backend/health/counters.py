"""Prometheus counters the domain bumps as it works (no web framework here)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

REGISTRY = CollectorRegistry()
POINTS_INGESTED = Counter(
    "fitboard_api_points_ingested",
    "Metric points taken in over the API by this process (external runs, FitboardCallback)",
    registry=REGISTRY,
)
