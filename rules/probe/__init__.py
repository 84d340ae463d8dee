"""probe rules."""
