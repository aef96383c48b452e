"""Analytics that draw on several capabilities (usage, health, downloads, revisions)."""
