"""depth rules."""
