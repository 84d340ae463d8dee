"""Every rule fires on each of its INVALID models and stays quiet on each VALID twin.

Also the registry's meta-checks (torchfix/Fixit style): codes and names are unique and
well-formed, every rule is documented in ruff's template and has examples.
"""

from __future__ import annotations

import re

import pytest

from gradlint.registry import all_rules
from gradlint.rule import CODE_PATTERN, DOC_HEADINGS, NAME_PATTERN
from tests.conftest import lint_source

RULES = all_rules()
CASES = [(rule, "invalid", i, src) for rule in RULES for i, src in enumerate(rule.INVALID)] + \
        [(rule, "valid", i, src) for rule in RULES for i, src in enumerate(rule.VALID)]
EXPECT = re.compile(r"#\s*expect:\s*(GL\d{3})")


@pytest.mark.parametrize("rule,kind,index,source", CASES, ids=[f"{r.code}-{k}{i}" for r, k, i, _ in CASES])
def test_rule_example(tmp_path, rule, kind, index, source):
    report = lint_source(tmp_path, source, select=[rule.code, *rule.EXAMPLE_SELECT])
    assert report.error is None, report.error
    hits = [f for f in report.findings if f.code == rule.code]
    if kind == "valid":
        assert hits == [], [f.message for f in hits]
        return
    assert hits, f"{rule.code} did not fire on its invalid example {index}"
    expected_lines = [n for n, line in enumerate(source.splitlines(), start=1) if EXPECT.search(line)
                      and EXPECT.search(line).group(1) == rule.code]
    if expected_lines:
        assert {f.location.line for f in hits} <= set(expected_lines), \
            f"{rule.code} pointed at {[f.location.line for f in hits]}, expected {expected_lines}"
        assert {f.location.line for f in hits}, "no finding at the marked line"


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
