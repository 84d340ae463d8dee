"""Initialization: weight scales against the critical values for the activations that follow."""
