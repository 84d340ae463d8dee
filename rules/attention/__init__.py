"""attention rules."""
