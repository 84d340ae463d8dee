"""optimizer rules."""
