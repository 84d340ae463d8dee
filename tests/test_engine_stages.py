"""Cheap before expensive: the static rules run before the model does, and their findings
survive a model whose forward raises (exit code 2, the error and the findings both printed).

GL401 (batchnorm-batch-size-one) is the static rule: a BatchNorm layer with an example batch of
one sample. GL201 (a trace rule) is selected with it so that the model has to run.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from gradlint.discover import Target
from gradlint.engine import ModelFailed, Settings, lint_spec, lint_target
from gradlint.errors import LoadError
from gradlint.findings import Severity, Stage
from gradlint.load import load_target
from gradlint.overrides import Overrides
from gradlint.registry import all_rules, rule_by_code
from gradlint.rule import Rule, RuleContext
from tests.conftest import risk_text

# The head reads 16 features where the pooled convolution gives 8: forward raises. The BatchNorm
# layer with a batch of one sample is GL401's, whether or not the forward works.
FAILING = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            features = torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3))
            if features.shape[1] != self.head.in_features:
                raise ValueError(f"head expects {self.head.in_features} features, got {features.shape[1]}")
            return self.head(features)


    def build_model():
        return Net()


    def example_inputs():
        return (torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(0)),)
    """)
WORKING = FAILING.replace("nn.Linear(16, 4)", "nn.Linear(8, 4)")
ERROR = "forward raised ValueError: head expects 16 features, got 8"

# BatchNorm1d on a (1, C) batch: torch itself raises in training mode, the case GL401 explains.
BATCHNORM1D = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 32)
            self.bn = nn.BatchNorm1d(32)
            self.head = nn.Linear(32, 4)

        def forward(self, x):
            return self.head(torch.relu(self.bn(self.fc(x))))


    def build_model():
        return Net()


    def example_inputs():
        return (torch.randn(1, 16),)
    """)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "failing.py").write_text(FAILING)
    (tmp_path / "working.py").write_text(WORKING)
    (tmp_path / "bn1d.py").write_text(BATCHNORM1D)
    return tmp_path


def gradlint(*args: str, select: str = "GL201,GL401"):
    result = CliRunner().invoke(main, ["--isolated", "--select", select, *args])
    return result.exit_code, result.output


def measured(path: str) -> tuple[str, str]:
    """GL401's message and the risk (the risk model's calibration): read them once from json,
    then check the text formats render them exactly."""
    _, out = gradlint("--format", "json", path)
    model = json.loads(out)["models"][0]
    (finding,) = model["findings"]
    return finding["message"], risk_text(model) if model["risk"] is not None else None


def test_failing_forward_keeps_the_static_findings(workdir):
    """The static findings stand; a risk does not: it is fitted on what running the model shows."""
    message, risk = measured("failing.py")
    assert "BatchNorm2d bn" in message and risk is None
    code, out = gradlint("failing.py")
    assert code == 2
    assert out == (
        f"failing.py: error: {ERROR}\n"
        f"failing.py:9:19: GL401 [warning] bn: {message}\n"
        "Found 1 finding in 1 model (1 warning); 1 target failed to load.\n"
    )


def test_quiet_still_prints_the_error_and_the_findings(workdir):
    message, _ = measured("failing.py")
    assert gradlint("-q", "failing.py") == (
        2, f"failing.py: error: {ERROR}\nfailing.py:9:19: GL401 [warning] bn: {message}\n")


def test_working_twin_has_the_finding_and_no_error(workdir):
    message, risk = measured("working.py")
    code, out = gradlint("working.py")
    assert code == 1
    assert out == (
        f"working.py:9:19: GL401 [warning] bn: {message}\n"
        f"working.py::build_model: risk {risk}; causes: GL401 batchnorm-batch-size-one\n"
        "  assumed optimizer: AdamW(lr=0.001) (no configure_optimizers)\n"
        "  assumed loss: cross-entropy against random labels (no loss_fn)\n"
        "Found 1 finding in 1 model (1 warning).\n"
    )


def test_exit_zero_and_fail_on_do_not_hide_the_error(workdir):
    assert gradlint("--exit-zero", "failing.py")[0] == 2
    assert gradlint("--fail-on", "error", "failing.py")[0] == 2
    assert gradlint("--fail-on", "error", "working.py")[0] == 0


def test_static_rules_alone_never_run_the_model(workdir):
    """Only static rules selected (or --no-probe): the forward is not run, so it cannot fail."""
    for args in (["failing.py"], ["--no-probe", "failing.py"]):
        code, out = gradlint(*args, select="GL401" if args == ["failing.py"] else "GL201,GL401")
        assert code == 1
        assert "error:" not in out and "failing.py:9:19: GL401 [warning] bn: " in out


def test_batchnorm1d_with_one_sample(workdir):
    code, out = gradlint("bn1d.py")
    assert code == 2
    lines = out.splitlines()
    assert lines[0].startswith("bn1d.py: error: forward raised ValueError: Expected more than 1 value per channel "
                               "when training")
    assert lines[1].startswith("bn1d.py:9:19: GL401 [error] bn: the example batch holds 1 sample: BatchNorm1d bn ")
    assert lines[1].endswith("(a (1, C) input raises in BatchNorm1d)")
    assert lines[-1] == "Found 1 finding in 1 model (1 error); 1 target failed to load."


def test_full(workdir):
    message, _ = measured("failing.py")
    code, out = gradlint("--format", "full", "failing.py")
    assert code == 2
    assert out == (
        f"failing.py: error: {ERROR}\n"
        "\n"
        f"GL401 [warning] batchnorm-batch-size-one: {message}\n"
        "  --> failing.py:9:19\n"
        "  |\n"
        "9 |         self.bn = nn.BatchNorm2d(8)\n"
        "  |                   ^\n"
        "  = module: bn\n"
        "  help: use a batch-independent normalization if training really uses batches of 1; otherwise return a "
        "batch of the training size from example_inputs()\n"
        "      self.bn = nn.GroupNorm(8, 8)\n"
        "\n"
        "Found 1 finding in 1 model (1 warning); 1 target failed to load.\n"
    )


def test_json(workdir):
    code, out = gradlint("--format", "json", "failing.py", "working.py")
    assert code == 2
    document = json.loads(out)
    failing, working = document["models"]
    assert failing["error"] == ERROR and "error" not in working
    assert failing["assumptions"] == ["optimizer: AdamW(lr=0.001) (no configure_optimizers)",
                                      "static rules only: the model failed to run, so 1 trace and probe rule did not"]
    assert failing["passes"] == {"forward": 0, "backward": 0}
    assert [(f["code"], f["line"], f["module"]) for f in failing["findings"]] == [("GL401", 9, "bn")]
    assert [{**f, "path": ""} for f in failing["findings"]] == [{**f, "path": ""} for f in working["findings"]]
    assert failing["causes"] == working["causes"]
    assert failing["risk"] is None and failing["level"] is None
    assert failing["risk_incomplete"] == ["the model failed to run"]
    assert 0.0 < working["risk"] <= 1.0 and working["level"] in {"low", "medium", "high"}
    assert document["summary"] == {"models": 2, "errors_loading": 1, "findings": 2,
                                   "by_severity": {"error": 0, "warning": 2, "info": 0}}


def test_json_lines(workdir):
    code, out = gradlint("--format", "json-lines", "failing.py")
    assert code == 2
    error, finding = (json.loads(line) for line in out.splitlines())
    assert error == {"target": "failing.py::build_model", "path": "failing.py", "error": ERROR}
    assert (finding["target"], finding["code"], finding["line"]) == ("failing.py::build_model", "GL401", 9)


def test_sarif(workdir):
    code, out = gradlint("--format", "sarif", "failing.py")
    assert code == 2
    (run,) = json.loads(out)["runs"]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False
    (notification,) = invocation["toolExecutionNotifications"]
    assert notification["message"]["text"] == f"failing.py: {ERROR}"
    assert notification["descriptor"]["id"] == "load-error"
    assert [rule["id"] for rule in run["tool"]["driver"]["rules"]] == ["GL401"]
    assert [(r["ruleId"], r["ruleIndex"], r["locations"][0]["physicalLocation"]["region"]["startLine"])
            for r in run["results"]] == [("GL401", 0, 9)]


def test_github(workdir):
    message, _ = measured("failing.py")
    code, out = gradlint("--format", "github", "failing.py")
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == f"::error file=failing.py,title=gradlint (load error)::failing.py: error: {ERROR}"
    assert lines[1].startswith(f"::warning file=failing.py,line=9,col=19,title=gradlint (GL401)::failing.py:9:19: "
                               f"GL401 [warning] bn: {message}%0A  help: ")
    assert lines[2] == "Found 1 finding in 1 model (1 warning); 1 target failed to load."


def test_statistics(workdir):
    assert gradlint("--statistics", "failing.py") == (
        2, f"failing.py: error: {ERROR}\n1\tGL401\tbatchnorm-batch-size-one\n")


def test_suppression_of_a_rule_that_could_not_run_is_not_unused(workdir):
    """GL201 did not run, so a `# noqa: GL201` is not reported unused (GL901); GL401's is used."""
    source = FAILING.replace("nn.Conv2d(3, 8, 3, padding=1)", "nn.Conv2d(3, 8, 3, padding=1)  # noqa: GL201")
    (workdir / "noqa.py").write_text(source.replace("nn.BatchNorm2d(8)", "nn.BatchNorm2d(8)  # noqa: GL401"))
    code, out = gradlint("noqa.py", select="GL201,GL401,GL901")
    assert code == 2
    assert out.splitlines()[0] == f"noqa.py: error: {ERROR}"
    assert "GL901" not in out and "GL401 [" not in out
    _, out = gradlint("--format", "json", "noqa.py", select="GL201,GL401,GL901")
    assert "static rules only: the model failed to run, so 1 trace and probe rule did not" in \
        json.loads(out)["models"][0]["assumptions"]


def test_a_model_that_fails_to_load_is_still_one_line(workdir):
    (workdir / "bad.py").write_text("import torch\ndef build_model(:\n")
    assert gradlint("bad.py") == (2, "bad.py: error: syntax error at line 2: invalid syntax\n"
                                     "Found 0 findings in 0 models; 1 target failed to load.\n")


# -- the engine: one context per model, shared by both stages -------------------------------------


class _StaticProbe(Rule):
    """Records what the static stage sees (test-only rule, never registered)."""

    code, name, family = "GL991", "test-static", "meta"
    stages = frozenset({Stage.STATIC})
    seen: list = []

    def check(self, ctx: RuleContext):
        type(self).seen.append(ctx)
        ctx.measure("static.value", lambda: 42)
        ctx.record("static_measure", 0.5)
        ctx.count_passes(forward=1)
        yield self.finding(ctx, "static finding", location=ctx.spec.model_location, weight=0.1)


class _TraceProbe(Rule):
    code, name, family = "GL992", "test-trace", "meta"
    stages = frozenset({Stage.TRACE})
    seen: list = []

    def check(self, ctx: RuleContext):
        type(self).seen.append(ctx)
        ctx.record("trace_measure", 0.25)
        yield self.finding(ctx, f"shared {ctx.shared.get('static.value')}", location=ctx.spec.model_location,
                           severity=Severity.INFO)


@pytest.fixture
def probes():
    _StaticProbe.seen, _TraceProbe.seen = [], []
    return _StaticProbe, _TraceProbe


def test_static_and_trace_rules_share_one_context(workdir, probes):
    report = lint_spec(load_target(Target("working.py")), Settings(rules=probes))
    (static_ctx,), (trace_ctx,) = _StaticProbe.seen, _TraceProbe.seen
    assert static_ctx.trace is None and static_ctx.probe is None
    assert trace_ctx.trace is not None and trace_ctx.probe is None  # a trace rule gets no probe
    assert trace_ctx.shared is static_ctx.shared and trace_ctx.evidence is static_ctx.evidence
    assert trace_ctx.passes is static_ctx.passes
    assert [f.message for f in report.findings] == ["static finding", "shared 42"]
    assert {"m:static_measure": 0.5, "m:trace_measure": 0.25}.items() <= report.evidence.items()
    assert report.passes == {"forward": 2, "backward": 0}  # the rule's pass and the trace's
    assert report.error is None and report.not_run is None


def test_lint_spec_raises_with_the_static_report(workdir, probes):
    """`gradlint.check` callers still get the LoadError; lint_target keeps its report."""
    with pytest.raises(LoadError, match=f"^{ERROR}$") as info:
        lint_spec(load_target(Target("failing.py")), Settings(rules=probes))
    assert isinstance(info.value, ModelFailed)
    report = info.value.report
    assert report.error == ERROR and report.linted
    assert [f.message for f in report.findings] == ["static finding"]
    assert report.evidence["m:static_measure"] == 0.5 and report.passes == {"forward": 1, "backward": 0}
    assert report.not_run == "static rules only: the model failed to run, so 1 trace and probe rule did not"
    assert _TraceProbe.seen == []
    assert lint_target(Target("failing.py"), Settings(rules=probes), Overrides()) == report


def test_gl401_is_static():
    assert rule_by_code("GL401").stages == frozenset({Stage.STATIC})
    assert rule_by_code("GL201").needs(Stage.TRACE)


# -- a rule that fails costs only its own evidence ------------------------------------------------

RULES = all_rules()


def test_a_rule_out_of_memory_is_skipped_and_the_rest_reported(workdir, monkeypatch):
    """torch's CPU allocator raises RuntimeError when an allocation is refused: the rule is
    skipped for memory, the others' findings and the risk stay, and the risk names the gap."""
    def refuse(self, ctx):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: "
                           "you tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(rule_by_code("GL604"), "check", refuse)
    rules = tuple(r for r in RULES if r.code in {"GL401", "GL604", "GL902"})
    report = lint_target(Target("working.py"), Settings(rules=rules), Overrides())
    assert report.error is None and [f.code for f in report.findings] == ["GL401"]
    assert report.risk is not None and report.incomplete[-1] == "GL604 out of memory"
    assert report.assumptions[-1] == (
        "rule GL604 skipped: out of memory (RuntimeError: [enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: "
        "can't allocate memory: you tried to allocate 4294967296 bytes. Error code 12 (Cannot allocate memory))")


def test_a_rule_that_raises_is_gl902_and_the_risk_says_so(workdir, monkeypatch):
    def crash(self, ctx):
        raise ValueError("math domain error")

    monkeypatch.setattr(rule_by_code("GL604"), "check", crash)
    rules = tuple(r for r in RULES if r.code in {"GL401", "GL604", "GL902"})
    report = lint_target(Target("working.py"), Settings(rules=rules), Overrides())
    assert report.error is None
    failed, batchnorm = report.findings  # by line: the model's class (line 5), then the BatchNorm
    assert (failed.code, failed.location.line, batchnorm.code) == ("GL902", 5, "GL401")
    assert failed.message == "rule GL604 (lookahead-diverges) could not run on this model: ValueError: math domain error"
    assert report.risk is not None and report.incomplete[-1] == "GL604 failed"
    # Without GL902 selected, the failure is still stated, among the assumptions.
    report = lint_target(Target("working.py"), Settings(rules=rules[:2]), Overrides())
    assert report.assumptions[-1] == "rule GL604 failed: ValueError: math domain error"
