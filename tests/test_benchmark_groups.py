"""The corpus evaluation leaves twins out together (benchmarks/evaluate.py twin_groups).

A twin left in the calibration that scores its sibling leaks the one factor they differ in, so
the cross-validated AUROC could flatter gradlint. These tests hold the grouping to the twins the
case files declare.
"""

import ast
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
CASES = BENCHMARKS / "cases"
sys.path.insert(0, str(BENCHMARKS))

from evaluate import twin_groups  # noqa: E402

CASE_NAMES = sorted(p.stem for p in CASES.glob("*.py") if not p.name.startswith("_"))
# "Twin: a.", "Twins: a (lr), b (init).", "Boundary twin: a.", "Related: a (short documents)."
DECLARATION = re.compile(r"^(?:Boundary )?(?:Twins?|twins?|Related):(.*?)(?:\.$|\.\n|\Z)", re.M | re.S)


def declared(name: str) -> list[str]:
    doc = ast.get_docstring(ast.parse((CASES / f"{name}.py").read_text())) or ""
    return [word for line in DECLARATION.findall(doc) for word in re.findall(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b", line)]


def write_case(folder: Path, name: str, doc: str) -> None:
    (folder / f"{name}.py").write_text(f'"""{doc}"""\n\nTRAIN_STEPS = 100\n')


def test_stems_and_named_twins_are_joined_transitively(tmp_path):
    write_case(tmp_path, "mlp_sgd_lr0p1", "Base.\nTwin: mlp_sgd_lr1.")
    write_case(tmp_path, "mlp_sgd_lr1", "Risky.")
    write_case(tmp_path, "cnn_deep_kaiming", "Twin: cnn_deep_normal_init.")
    write_case(tmp_path, "cnn_deep_normal_init", "Related: cnn_bn_other.")
    write_case(tmp_path, "cnn_bn_other", "No declaration.")
    write_case(tmp_path, "rnn_alone", "Mentions no_such_case, which is not in the corpus.")
    names = ["cnn_bn_other", "cnn_deep_kaiming", "cnn_deep_normal_init", "mlp_sgd_lr0p1", "mlp_sgd_lr1", "rnn_alone"]

    groups = dict(zip(names, twin_groups(names, str(tmp_path))))

    assert groups == {"cnn_bn_other": "cnn_bn_other", "cnn_deep_kaiming": "cnn_bn_other",
                      "cnn_deep_normal_init": "cnn_bn_other", "mlp_sgd_lr0p1": "mlp_sgd_lr0p1",
                      "mlp_sgd_lr1": "mlp_sgd_lr0p1", "rnn_alone": "rnn_alone"}


def test_every_declared_twin_is_a_case():
    dangling = {name: [t for t in declared(name) if t not in CASE_NAMES] for name in CASE_NAMES}
    assert {name: twins for name, twins in dangling.items() if twins} == {}


@pytest.fixture(scope="module")
def corpus_groups() -> dict[str, str]:
    return dict(zip(CASE_NAMES, twin_groups(CASE_NAMES, str(CASES))))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_declared_twins_are_left_out_together(name, corpus_groups):
    twins = declared(name)
    assert {twin: corpus_groups[twin] for twin in twins} == {twin: corpus_groups[name] for twin in twins}


def test_the_corpus_declares_twins():
    # Guards the two tests above against a declaration pattern that matches nothing.
    assert sum(bool(declared(name)) for name in CASE_NAMES) >= 100
