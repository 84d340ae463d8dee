"""recurrent rules."""
