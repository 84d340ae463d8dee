"""activation rules."""
