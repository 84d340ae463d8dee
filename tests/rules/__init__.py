"""Focused tests per rule family."""
