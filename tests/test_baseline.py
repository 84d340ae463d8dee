"""--write-baseline / --baseline: known findings are hidden, new ones fail, fixed ones are counted."""

from __future__ import annotations

import json

import pytest

from tests._gl201 import ASSUMED, BROKEN, HEALTHY, finding, gl201, run

SECOND_BAD_LAYER = BROKEN.replace("nn.init.normal_(self.fc1.weight, std=1.0)",
                                  "nn.init.normal_(self.fc1.weight, std=1.0)\n"
                                  "        self.fc3 = nn.Linear(64, 64)\n"
                                  "        nn.init.normal_(self.fc3.weight, std=1.0)").replace(
    "self.fc2(torch.relu(self.fc1(x)))", "self.fc2(torch.relu(self.fc3(torch.relu(self.fc1(x)))))")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "legacy.py").write_text(BROKEN)
    (tmp_path / "models" / "new.py").write_text(HEALTHY)
    return tmp_path


def test_write_then_check(workdir):
    assert run("-q", "--write-baseline", "baseline.json", "models/") == (
        0, "", "gradlint: wrote 1 finding to baseline.json\n")
    assert json.loads((workdir / "baseline.json").read_text()) == {
        "gradlint-baseline": 1, "findings": {"models/legacy.py": {"GL201": {"fc1": 1}}}}
    assert (workdir / "baseline.json").read_text() == (
        '{\n  "findings": {\n    "models/legacy.py": {\n      "GL201": {\n        "fc1": 1\n      }\n    }\n  },\n'
        '  "gradlint-baseline": 1\n}\n')
    _, risk = gl201()
    assert run("--baseline", "baseline.json", "models/legacy.py") == (
        0, f"models/legacy.py::build_model: risk {risk}; causes: GL201 init-scale-too-large\n" + ASSUMED +
        "Found 0 findings in 1 model.\nBaseline baseline.json: 1 known finding hidden.\n", "")


def test_new_findings_fail(workdir):
    run("--write-baseline", "baseline.json", "models/")
    # Lines move and a second bad layer appears: the known one stays hidden, the new one fails.
    (workdir / "models" / "legacy.py").write_text("\n\n" + SECOND_BAD_LAYER)
    code, out, _ = run("-q", "--baseline", "baseline.json", "models/")
    assert code == 1
    assert out.startswith("models/legacy.py:13:20: GL201 [error] fc3: ")
    assert len(out.splitlines()) == 1
    (workdir / "models" / "new.py").write_text(BROKEN)  # a new file with a finding
    assert run("-q", "--baseline", "baseline.json", "models/new.py") == (1, finding("models/new.py"), "")


def test_fixed_entries_are_counted(workdir):
    run("--write-baseline", "baseline.json", "models/")
    (workdir / "models" / "legacy.py").write_text(HEALTHY)
    code, out, _ = run("--baseline", "baseline.json", "models/legacy.py")
    assert code == 0
    assert out.endswith("Found 0 findings in 1 model.\n"
                        "Baseline baseline.json: 0 known findings hidden, 1 entry fixed "
                        "(update it with --write-baseline).\n")
    # Not fixed when the rule did not run (static rules only), or when the file was not linted.
    assert run("--no-probe", "--baseline", "baseline.json", "models/legacy.py")[1].endswith(
        "Baseline baseline.json: 0 known findings hidden.\n")
    assert run("--baseline", "baseline.json", "models/new.py")[1].endswith(
        "Baseline baseline.json: 0 known findings hidden.\n")
    code, out, _ = run("--format", "json", "--baseline", "baseline.json", "models/legacy.py")
    assert json.loads(out)["summary"]["baseline"] == {"path": "baseline.json", "hidden": 0, "fixed": 1}


def test_rewriting_from_a_partial_run_keeps_other_files(workdir):
    (workdir / "models" / "new.py").write_text(BROKEN)
    run("--write-baseline", "baseline.json", "models/")
    (workdir / "models" / "legacy.py").write_text(HEALTHY)
    code, _, err = run("--write-baseline", "baseline.json", "models/legacy.py")
    assert (code, err) == (0, "gradlint: wrote 1 finding to baseline.json\n")
    assert json.loads((workdir / "baseline.json").read_text())["findings"] == {
        "models/new.py": {"GL201": {"fc1": 1}}}


def test_baseline_from_the_config_and_paths_relative_to_it(workdir, monkeypatch):
    (workdir / "pyproject.toml").write_text('[tool.gradlint]\nbaseline = "ci/baseline.json"\n')
    (workdir / "ci").mkdir()
    run("--write-baseline", "ci/baseline.json", "models/legacy.py")
    assert json.loads((workdir / "ci" / "baseline.json").read_text())["findings"] == {
        "../models/legacy.py": {"GL201": {"fc1": 1}}}
    assert run("-q", "models/legacy.py") == (0, "", "")
    monkeypatch.chdir(workdir / "models")  # the same from another folder
    assert run("-q", "legacy.py", "--config", "../pyproject.toml") == (0, "", "")


def test_suppressed_findings_are_not_recorded(workdir):
    (workdir / "models" / "legacy.py").write_text(BROKEN.replace(
        "self.fc1 = nn.Linear(64, 64)", "self.fc1 = nn.Linear(64, 64)  # noqa: GL201"))
    assert run("--write-baseline", "b.json", "models/")[2] == "gradlint: wrote 0 findings to b.json\n"


@pytest.mark.parametrize("content,message", [
    (None, "baseline b.json not found (create it with --write-baseline b.json)"),
    ("{", "baseline b.json is not valid JSON: Expecting property name enclosed in double quotes: "
          "line 1 column 2 (char 1)"),
    ('{"findings": {}}', "baseline b.json is not a gradlint baseline (write one with --write-baseline)"),
    ('{"gradlint-baseline": 1, "findings": {"a.py": {"GL201": {"fc1": "1"}}}}',
     "baseline b.json is not a gradlint baseline (write one with --write-baseline)"),
])
def test_bad_baseline_is_a_usage_error(workdir, content, message):
    if content is not None:
        (workdir / "b.json").write_text(content)
    assert run("--baseline", "b.json", "models/new.py") == (2, "", f"gradlint: error: {message}\n")


def test_counts_per_module(workdir):
    (workdir / "models" / "legacy.py").write_text(SECOND_BAD_LAYER)
    run("--write-baseline", "b.json", "models/legacy.py")
    assert json.loads((workdir / "b.json").read_text())["findings"]["models/legacy.py"] == {
        "GL201": {"fc1": 1, "fc3": 1}}
