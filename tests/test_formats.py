"""Exact output of the CI formats (json-lines, sarif, github), --statistics and -o, load errors in
every format, and the GitHub Actions workflow in docs/ci.md."""

from __future__ import annotations

import json
import pathlib
import re

import pytest

from gradlint.emit import FORMATS, github
from gradlint.findings import Finding, Fix, Location, ModelReport, Severity
from tests._gl201 import BROKEN, FC2, HEALTHY, gl201, run, with_comment
from tests.conftest import no_evidence_risk

ROOT = pathlib.Path(__file__).resolve().parent.parent
SYNTAX_ERROR = "syntax error at line 2: invalid syntax"
FIX_CODE = 'nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")'


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "healthy.py").write_text(HEALTHY)
    (tmp_path / "stale.py").write_text(with_comment(HEALTHY, FC2, "# noqa: GL201"))
    (tmp_path / "bad.py").write_text("import torch\ndef build_model(:\n")
    return tmp_path


def model_risks(*paths: str) -> dict[str, dict]:
    """target -> its risk fields, as `--format json` reports them."""
    models = json.loads(run("--format", "json", *paths)[1])["models"]
    return {m["target"]: {"risk": m["risk"], "level": m["level"], "causes": m["causes"],
                          "risk_incomplete": m["risk_incomplete"], "suggestion": m["suggestion"]} for m in models}


def test_json_lines(workdir):
    message, _ = gl201()
    risks = model_risks("broken.py", "healthy.py")
    code, out, _ = run("--format", "json-lines", "broken.py", "healthy.py", "bad.py")
    assert code == 2
    assert [json.loads(line) for line in out.splitlines()] == [
        {"target": "broken.py::build_model", "code": "GL201", "name": "init-scale-too-large", "severity": "error",
         "message": message, "path": "broken.py", "line": 8, "col": 20, "module": "fc1",
         "fix": {"message": "initialize at the critical scale", "code": FIX_CODE}},
        {"target": "broken.py::build_model", "path": "broken.py", **risks["broken.py::build_model"]},
        {"target": "healthy.py::build_model", "path": "healthy.py", **risks["healthy.py::build_model"]},
        {"target": "bad.py", "path": "bad.py", "error": SYNTAX_ERROR},
    ]
    assert risks["healthy.py::build_model"]["risk_incomplete"] == ["29 of 30 rules not selected"]
    assert risks["healthy.py::build_model"]["suggestion"] is None  # a suggestion needs the whole risk
    assert out.splitlines()[3] == f'{{"target": "bad.py", "path": "bad.py", "error": "{SYNTAX_ERROR}"}}'


# -- SARIF ---------------------------------------------------------------------------------------

def rule_descriptor(code: str) -> dict:
    from gradlint.registry import rule_by_code

    rule = rule_by_code(code)
    level = {"error": "error", "warning": "warning", "info": "note"}[rule.severity.value]
    return {
        "id": rule.code, "name": rule.name,
        "shortDescription": {"text": rule.summary()},
        "fullDescription": {"text": rule.doc().partition("## What it does")[2].split("\n## ")[0].strip()},
        "help": {"text": rule.doc(), "markdown": rule.doc()},
        "defaultConfiguration": {"level": level},
        "properties": {"tags": ["gradlint", rule.family], "problem.severity": rule.severity.value},
    }


def test_sarif(workdir):
    message, _ = gl201()
    risks = {target: {"risk": r["risk"], "riskLevel": r["level"], "riskIncomplete": r["risk_incomplete"]}
             for target, r in model_risks("broken.py", "stale.py").items()}
    code, out, _ = run("--format", "sarif", "broken.py", "stale.py", "bad.py")
    assert code == 2
    document = json.loads(out)
    fingerprints = [r["partialFingerprints"]["gradlintFinding/v1"] for r in document["runs"][0]["results"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}:1", fp) for fp in fingerprints) and len(set(fingerprints)) == 2
    assert document == {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "gradlint", "version": "0.1.0", "semanticVersion": "0.1.0",
                                "rules": [rule_descriptor("GL201"), rule_descriptor("GL901")]}},
            "invocations": [{"executionSuccessful": False, "toolExecutionNotifications": [{
                "level": "error",
                "message": {"text": f"bad.py: {SYNTAX_ERROR}"},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": "bad.py"}}}],
                "descriptor": {"id": "load-error"},
            }]}],
            "results": [
                {"ruleId": "GL201", "ruleIndex": 0, "level": "error",
                 "message": {"text": f"fc1: {message}\nhelp: initialize at the critical scale: {FIX_CODE}"},
                 "locations": [{
                     "physicalLocation": {"artifactLocation": {"uri": "broken.py"},
                                          "region": {"startLine": 8, "startColumn": 20, "endLine": 8,
                                                     "endColumn": 37}},
                     "logicalLocations": [{"fullyQualifiedName": "fc1", "kind": "module"}]}],
                 "partialFingerprints": {"gradlintFinding/v1": fingerprints[0]},
                 "properties": risks["broken.py::build_model"]},
                {"ruleId": "GL901", "ruleIndex": 1, "level": "warning",
                 "message": {"text": "unused `# noqa: GL201` (unused: GL201)\nhelp: remove the comment"},
                 "locations": [{"physicalLocation": {"artifactLocation": {"uri": "stale.py"},
                                                     "region": {"startLine": 9, "startColumn": 38, "endLine": 9,
                                                                "endColumn": 51}}}],
                 "partialFingerprints": {"gradlintFinding/v1": fingerprints[1]},
                 "properties": risks["stale.py::build_model"]},
            ],
            "properties": {"models": [{"target": "broken.py::build_model", "path": "broken.py",
                                       **risks["broken.py::build_model"]},
                                      {"target": "stale.py::build_model", "path": "stale.py",
                                       **risks["stale.py::build_model"]}]},
        }],
    }
    assert out.startswith('{\n  "$schema": "https://json.schemastore.org/sarif-2.1.0.json",\n  "version": "2.1.0",\n')
    assert_github_accepts(document)


def assert_github_accepts(document: dict) -> None:
    """The properties GitHub code scanning requires (docs: "SARIF support for code scanning"),
    none of them an empty string."""
    def text(obj: dict, *keys: str) -> None:
        for key in keys:
            obj = obj[key]
        assert isinstance(obj, str) and obj, keys

    assert document["$schema"] and document["version"] == "2.1.0"
    (run_,) = document["runs"]
    driver = run_["tool"]["driver"]
    text(driver, "name")
    ids = [rule["id"] for rule in driver["rules"]]
    assert len(ids) == len(set(ids))
    for rule in driver["rules"]:
        text(rule, "id")
        text(rule, "name")
        text(rule, "shortDescription", "text")
        assert len(rule["shortDescription"]["text"]) <= 1024
        text(rule, "fullDescription", "text")
        text(rule, "help", "text")
        assert rule["defaultConfiguration"]["level"] in {"note", "warning", "error"}
    for result in run_["results"]:
        text(result, "ruleId")
        assert driver["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in {"note", "warning", "error"}
        text(result, "message", "text")
        assert 1 <= len(result["locations"]) <= 10
        physical = result["locations"][0]["physicalLocation"]
        uri = physical["artifactLocation"]["uri"]
        assert uri and not uri.startswith(("/", "file:")) and "\\" not in uri  # relative to the repository root
        region = physical["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
        assert region["endLine"] >= region["startLine"] and region["endColumn"] > region["startColumn"]
        assert result["partialFingerprints"] and all(isinstance(v, str) and v
                                                     for v in result["partialFingerprints"].values())


def test_sarif_paths_are_relative_to_the_repository_root(workdir, monkeypatch):
    (workdir / ".git").mkdir()
    (workdir / "models").mkdir()
    (workdir / "models" / "broken.py").write_text(BROKEN)
    monkeypatch.chdir(workdir / "models")
    document = json.loads(run("--format", "sarif", "broken.py")[1])
    uri = document["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == "models/broken.py"
    assert run("--format", "github", "broken.py")[1].startswith("::error file=models/broken.py,line=8,col=20,")


def test_sarif_of_a_clean_run(workdir):
    document = json.loads(run("--format", "sarif", "healthy.py")[1])
    assert document["runs"][0]["tool"]["driver"]["rules"] == [] and document["runs"][0]["results"] == []
    assert document["runs"][0]["invocations"] == [{"executionSuccessful": True, "toolExecutionNotifications": []}]


# -- GitHub annotations --------------------------------------------------------------------------

def test_github(workdir):
    message, _ = gl201()
    code, out, _ = run("--format", "github", "stale.py", "broken.py", "bad.py")
    assert code == 2
    assert out == (
        "::error file=bad.py,title=gradlint (load error)::bad.py: error: syntax error at line 2: invalid syntax\n"
        f"::error file=broken.py,line=8,col=20,title=gradlint (GL201)::broken.py:8:20: GL201 [error] fc1: {message}"
        f"%0A  help: initialize at the critical scale%0A      {FIX_CODE}\n"
        "::warning file=stale.py,line=9,col=38,title=gradlint (GL901)::stale.py:9:38: GL901 [warning] "
        "unused `# noqa: GL201` (unused: GL201)%0A  help: remove the comment\n"
        f"::notice file=stale.py,line=5,title=gradlint risk%3A low::stale.py::build_model: "
        f"risk {no_evidence_risk('GL201')[5:]}\n"
        f"::notice file=broken.py,line=5,title=gradlint risk%3A low::broken.py::build_model: risk {gl201()[1]}; "
        "causes: GL201 init-scale-too-large\n"
        "Found 2 findings in 2 models (1 error, 1 warning); 1 target failed to load.\n"
    )


def synthetic(severity: Severity, n: int, path: str = "m.py") -> list[Finding]:
    return [Finding("GL201", "init-scale-too-large", severity, f"layer {i}: 100%, a:b", Location(path, i, 5),
                    module=f"layers.{i}", fix=Fix("rescale")) for i in range(1, n + 1)]


def report(*findings: Finding) -> ModelReport:
    return ModelReport(target="m.py::build_model", path="m.py", risk=0.5, level="medium", findings=findings,
                       linted=True)


def test_github_escapes_and_orders(workdir):
    findings = [*synthetic(Severity.INFO, 1, "a,b:c.py"), *synthetic(Severity.WARNING, 1),
                *synthetic(Severity.ERROR, 1)]
    assert github.render([report(*findings)], quiet=True) == (
        "::error file=m.py,line=1,col=5,title=gradlint (GL201)::m.py:1:5: GL201 [error] layers.1: "
        "layer 1: 100%25, a:b%0A  help: rescale\n"
        "::warning file=m.py,line=1,col=5,title=gradlint (GL201)::m.py:1:5: GL201 [warning] layers.1: "
        "layer 1: 100%25, a:b%0A  help: rescale\n"
        "::notice file=a%2Cb%3Ac.py,line=1,col=5,title=gradlint (GL201)::a,b:c.py:1:5: GL201 [info] layers.1: "
        "layer 1: 100%25, a:b%0A  help: rescale\n"
    )


def test_github_says_how_many_were_not_annotated(workdir):
    findings = [*synthetic(Severity.ERROR, 12), *synthetic(Severity.WARNING, 3), *synthetic(Severity.INFO, 10)]
    lines = github.render([report(*findings)]).splitlines()
    commands = [line.split(" ")[0] for line in lines]
    # 10 errors, every warning, 9 notices (the model's risk first; one is kept for the message),
    # then plain log lines.
    assert commands[:22] == ["::error"] * 10 + ["::warning"] * 3 + ["::notice"] * 9
    assert lines[13] == "::notice file=m.py,title=gradlint risk%3A medium::m.py::build_model: risk 0.50 (medium)"
    assert lines[22:26] == ["m.py:11:5: GL201 [error] layers.11: layer 11: 100%, a:b",
                            "m.py:12:5: GL201 [error] layers.12: layer 12: 100%, a:b",
                            "m.py:9:5: GL201 [info] layers.9: layer 9: 100%, a:b",
                            "m.py:10:5: GL201 [info] layers.10: layer 10: 100%, a:b"]
    assert lines[26:] == [
        "::notice title=gradlint::4 more findings not annotated (GitHub shows 10 annotations per level per step); "
        "they are listed in the log above; upload --format sarif to code scanning to see all of them",
        "Found 25 findings in 1 model (12 errors, 3 warnings, 10 info).",
    ]


# -- statistics and the output file --------------------------------------------------------------

def test_statistics(workdir):
    (workdir / "stale2.py").write_text(with_comment(HEALTHY, FC2, "# gradlint: ignore[GL201]"))
    args = ("--statistics", "broken.py", "stale.py", "stale2.py", "bad.py")
    assert run(*args) == (2, f"bad.py: error: {SYNTAX_ERROR}\n2\tGL901\tunused-suppression\n"
                             "1\tGL201\tinit-scale-too-large\n", "")
    code, out, _ = run(*args, "--format", "json")
    assert json.loads(out) == {
        "statistics": [{"code": "GL901", "name": "unused-suppression", "count": 2},
                       {"code": "GL201", "name": "init-scale-too-large", "count": 1}],
        "errors": [{"target": "bad.py", "path": "bad.py", "error": SYNTAX_ERROR}],
    }
    assert run("--statistics", "healthy.py") == (0, "", "")


@pytest.mark.parametrize("output_format", list(FORMATS))
def test_output_file(workdir, output_format):
    code, stdout, _ = run("--format", output_format, "broken.py")
    assert run("--format", output_format, "-o", "out.txt", "broken.py") == (code, "", "")
    assert (workdir / "out.txt").read_text() == stdout
    assert run("-o", "missing/out.txt", "broken.py") == (
        2, "", "gradlint: error: cannot write missing/out.txt: No such file or directory\n")


# -- load errors appear in every format ----------------------------------------------------------

@pytest.mark.parametrize("output_format,expected", [
    ("concise", f"bad.py: error: {SYNTAX_ERROR}\nFound 0 findings in 0 models; 1 target failed to load.\n"),
    ("full", f"bad.py: error: {SYNTAX_ERROR}\n\nFound 0 findings in 0 models; 1 target failed to load.\n"),
    ("json-lines", f'{{"target": "bad.py", "path": "bad.py", "error": "{SYNTAX_ERROR}"}}\n'),
    ("github", f"::error file=bad.py,title=gradlint (load error)::bad.py: error: {SYNTAX_ERROR}\n"
               "Found 0 findings in 0 models; 1 target failed to load.\n"),
])
def test_load_error_in_text_formats(workdir, output_format, expected):
    assert run("--format", output_format, "bad.py") == (2, expected, "")


def test_load_error_in_json_and_sarif(workdir):
    document = json.loads(run("--format", "json", "bad.py")[1])
    assert document["models"] == [{"target": "bad.py", "error": SYNTAX_ERROR}]
    assert document["summary"]["errors_loading"] == 1
    notifications = json.loads(run("--format", "sarif", "bad.py")[1])["runs"][0]["invocations"][0]
    assert notifications["toolExecutionNotifications"][0]["message"]["text"] == f"bad.py: {SYNTAX_ERROR}"


# -- docs/ci.md ----------------------------------------------------------------------------------

def test_ci_workflow_in_the_docs():
    yaml = pytest.importorskip("yaml")
    text = (ROOT / "docs" / "ci.md").read_text()
    block = re.search(r"```yaml\n(# \.github/workflows/gradlint\.yml\n.*?)```", text, re.DOTALL).group(1)
    workflow = yaml.safe_load(block)
    assert set(workflow[True]) == {"pull_request", "push"}  # YAML 1.1 reads the key `on` as True
    assert workflow["permissions"]["security-events"] == "write"
    assert workflow["permissions"]["contents"] == "read"
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    assert all("uses" in step or "run" in step for step in steps)
    runs = " ".join(step.get("run", "") for step in steps)
    assert "--format sarif" in runs and "-o gradlint.sarif" in runs and "--format github" in runs
    upload = next(step for step in steps if step.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert upload["with"]["sarif_file"] == "gradlint.sarif" and upload["if"].startswith("always()")
