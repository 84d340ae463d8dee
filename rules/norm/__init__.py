"""norm rules."""
