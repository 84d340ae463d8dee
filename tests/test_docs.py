"""Generated documentation stays generated: the README's rule table and docs/rules/ match the
registry (as ruff's CI fails on stale rule docs). Run `python -m gradlint.docgen` to refresh."""

from __future__ import annotations

from gradlint import docgen


def test_rule_docs_are_fresh():
    assert docgen.stale(docgen.builtin_rules()) == [], "run: python -m gradlint.docgen"


def test_every_rule_has_a_page_and_a_row():
    files = docgen.expected_files(docgen.builtin_rules())
    for rule in docgen.builtin_rules():
        assert files[f"docs/rules/{rule.code}-{rule.name}.md"].startswith(f"# {rule.name} ({rule.code})\n")
        assert f"| [{rule.code}](docs/rules/{rule.code}-{rule.name}.md) | `{rule.name}` |" in files["README.md"]
