"""Example gradlint rules (prefix XT)."""
