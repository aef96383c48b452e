"""Usage reported by generation apps (issue 11): events in, per-model figures out."""
