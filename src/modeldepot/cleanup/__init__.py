"""Storage quota, pins and safe cleanup of unused models (issue 11)."""
