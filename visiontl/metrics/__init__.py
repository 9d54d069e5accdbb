"""Metrics computed from predictions (numpy; no torch needed)."""
