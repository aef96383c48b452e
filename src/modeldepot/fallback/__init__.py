"""Fallback suggestions (and, next, the wait queue): what an app should do when the model it
wants is not there yet (issue 12)."""
