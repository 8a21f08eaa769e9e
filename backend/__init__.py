"""Fitboard's service: HTTP API, domain, database layer and the experiment spec."""
