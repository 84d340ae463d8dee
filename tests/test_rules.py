"""Every rule fires on each of its INVALID models and stays quiet on each VALID twin.

Also the registry's meta-checks (torchfix/Fixit style): codes and names are unique and
well-formed, every rule is documented in ruff's template and has examples.
"""

from __future__ import annotations

import pytest

from gradlint.registry import all_rules
from gradlint.rule import CODE_PATTERN, DOC_HEADINGS, NAME_PATTERN
from gradlint.testing import example_tests

RULES = [rule for rule in all_rules() if rule.code.startswith("GL")]  # a plugin's rules are its own tests

# The built-in rules' twin examples run through the same runner a plugin's test suite uses.
test_rule_example = example_tests("GL")


def test_codes_and_names_are_unique_and_well_formed():
    codes = [r.code for r in RULES]
    names = [r.name for r in RULES]
    assert len(codes) == len(set(codes))
    assert len(names) == len(set(names))
    for rule in RULES:
        assert CODE_PATTERN.match(rule.code), rule.code
        assert NAME_PATTERN.match(rule.name), rule.name


@pytest.mark.parametrize("rule", RULES, ids=[r.code for r in RULES])
def test_rule_is_documented_and_has_twins(rule):
    doc = rule.doc()
    for heading in DOC_HEADINGS:
        assert heading in doc, f"{rule.code} docstring lacks {heading!r}"
    assert rule.INVALID and rule.VALID, f"{rule.code} needs a triggering model and a healthy twin"
    assert rule.family in rule.__module__.split("."), f"{rule.code} lives outside rules/{rule.family}/"
    assert rule.summary()


def test_rule_modules_do_not_import_torch_at_import_time():
    import subprocess
    import sys

    code = ("import sys; from gradlint.registry import all_rules; all_rules(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
