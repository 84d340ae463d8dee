"""Exact output of each format and each exit code (flake8-style integration tests).

Only GL201 is selected so these stay exact while other rules evolve.
"""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from gradlint.cli import main
from tests.conftest import no_evidence_risk, risk_text

BROKEN = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(64, 64)
            self.fc2 = nn.Linear(64, 4)
            nn.init.normal_(self.fc1.weight, std=1.0)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))


    def build_model():
        return Net()


    def example_inputs():
        return (torch.randn(8, 64, generator=torch.Generator().manual_seed(0)),)
    """)
HEALTHY = BROKEN.replace("nn.init.normal_(self.fc1.weight, std=1.0)",
                         'nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")')


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "healthy.py").write_text(HEALTHY)
    (tmp_path / "bad.py").write_text("import torch\ndef build_model(:\n")
    return tmp_path


def gradlint(*args: str):
    result = CliRunner().invoke(main, ["--select", "GL201", *args])
    return result.exit_code, result.output


def measured(workdir) -> tuple[str, str]:
    """GL201's message and the risk depend on the seeded init and the risk model's calibration:
    read them once from json, then check every format renders them exactly."""
    code, out = gradlint("--format", "json", "broken.py")
    model = json.loads(out)["models"][0]
    return model["findings"][0]["message"], risk_text(model)


def test_concise(workdir):
    message, risk = measured(workdir)
    code, out = gradlint("broken.py", "healthy.py")
    assert code == 1
    assert out == (
        f"broken.py:8:20: GL201 [error] fc1: {message}\n"
        f"broken.py::build_model: risk {risk}; causes: GL201 init-scale-too-large\n"
        "  assumed optimizer: AdamW(lr=0.001) (no configure_optimizers)\n"
        "  assumed loss: cross-entropy against random labels (no loss_fn)\n"
        f"healthy.py::build_model: {no_evidence_risk('GL201')}\n"
        "  assumed optimizer: AdamW(lr=0.001) (no configure_optimizers)\n"
        "  assumed loss: cross-entropy against random labels (no loss_fn)\n"
        "Found 1 finding in 2 models (1 error).\n"
    )


def test_concise_quiet(workdir):
    message, _ = measured(workdir)
    assert gradlint("-q", "broken.py", "healthy.py") == (1, f"broken.py:8:20: GL201 [error] fc1: {message}\n")


def test_full(workdir):
    message, risk = measured(workdir)
    code, out = gradlint("--format", "full", "broken.py")
    assert code == 1
    assert out == (
        f"GL201 [error] init-scale-too-large: {message}\n"
        "  --> broken.py:8:20\n"
        "  |\n"
        "8 |         self.fc1 = nn.Linear(64, 64)\n"
        "  |                    ^\n"
        "  = module: fc1\n"
        "  help: initialize at the critical scale\n"
        '      nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")\n'
        "\n"
        f"broken.py::build_model: risk {risk}; causes: GL201 init-scale-too-large\n"
        "  assumed optimizer: AdamW(lr=0.001) (no configure_optimizers)\n"
        "  assumed loss: cross-entropy against random labels (no loss_fn)\n"
        "  cost: 1 forward, 0 backward pass(es)\n"
        "\n"
        "Found 1 finding in 1 model (1 error).\n"
    )


def test_json(workdir):
    code, out = gradlint("--format", "json", "broken.py::build_model", "bad.py")
    assert code == 2
    document = json.loads(out)
    broken, bad = document["models"]
    assert broken["target"] == "broken.py::build_model"
    assert broken["level"] in {"low", "medium", "high"} and 0.0 < broken["risk"] <= 1.0
    assert broken["assumptions"] == ["optimizer: AdamW(lr=0.001) (no configure_optimizers)",
                                     "loss: cross-entropy against random labels (no loss_fn)"]
    (finding,) = broken["findings"]
    assert {k: finding[k] for k in ("code", "name", "severity", "path", "line", "col", "module")} == {
        "code": "GL201", "name": "init-scale-too-large", "severity": "error", "path": "broken.py",
        "line": 8, "col": 20, "module": "fc1"}
    assert finding["fix"] == {"message": "initialize at the critical scale",
                              "code": 'nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")'}
    assert bad == {"target": "bad.py", "error": "syntax error at line 2: invalid syntax"}
    assert document["summary"] == {"models": 1, "errors_loading": 1, "findings": 1,
                                   "by_severity": {"error": 1, "warning": 0, "info": 0}}


@pytest.mark.parametrize("args,expected", [
    (["healthy.py"], 0),
    (["broken.py"], 1),
    (["broken.py", "--exit-zero"], 0),
    (["broken.py", "--fail-on", "error"], 1),
    (["bad.py"], 2),
    (["bad.py", "--exit-zero"], 2),
    (["broken.py", "bad.py"], 2),
    (["--select", "GL9999", "healthy.py"], 2),
    (["nope.py"], 2),
    ([], 2),
])
def test_exit_codes(workdir, args, expected):
    result = CliRunner().invoke(main, ["--select", "GL201", *args] if "--select" not in args else args)
    assert result.exit_code == expected, result.output


def test_fail_on_threshold(workdir):
    # GL201 at a ratio between 4 and 16 (here 0.25 * 64 / 2 = 8) is a warning: fails at --fail-on warning, not at error.
    (workdir / "mild.py").write_text(BROKEN.replace("std=1.0", "std=0.5"))
    assert gradlint("mild.py", "--fail-on", "warning")[0] == 1
    assert gradlint("mild.py", "--fail-on", "error")[0] == 0


def healthy_concise() -> str:
    """healthy.py's concise report under --select GL201: no finding, the base-rate risk."""
    return (f"healthy.py::build_model: {no_evidence_risk('GL201')}\n"
            "  assumed optimizer: AdamW(lr=0.001) (no configure_optimizers)\n"
            "  assumed loss: cross-entropy against random labels (no loss_fn)\n"
            "Found 0 findings in 1 model.\n")


def test_fail_risk_fails_a_model_at_or_above_the_threshold(workdir):
    # healthy.py has no finding, and under --select GL201 its risk is the calibration's base rate, exactly
    # risk.combine([], {}); a threshold at that value fails it (>=), the next float above does not. The
    # output is the same either way: only the exit code says the risk crossed the threshold.
    import math

    from gradlint import risk

    base = risk.combine([], {})
    assert gradlint("healthy.py", "--fail-risk", repr(base)) == (1, healthy_concise())
    assert gradlint("healthy.py", "--fail-risk", repr(math.nextafter(base, 1.0))) == (0, healthy_concise())
    assert gradlint("healthy.py", "--fail-risk", repr(base), "--exit-zero") == (0, healthy_concise())


def test_fail_risk_fails_a_run_the_findings_do_not(workdir):
    # broken.py's GL201 finding, made an info, no longer fails the run at --fail-on error, but its weight
    # still lifts the risk above healthy.py's base rate: a threshold between the two fails broken.py alone.
    message, _ = measured(workdir)
    model = json.loads(gradlint("--format", "json", "broken.py")[1])["models"][0]
    between = f"{(model['risk'] + risk_of_base()) / 2:.4f}"
    quiet = ["-q", "--severity", "GL201=info", "--fail-on", "error"]
    line = f"broken.py:8:20: GL201 [info] fc1: {message}\n"
    assert gradlint(*quiet, "broken.py") == (0, line)
    assert gradlint(*quiet, "broken.py", "--fail-risk", between) == (1, line)
    assert gradlint(*quiet, "healthy.py", "--fail-risk", between) == (0, "")


def test_fail_risk_ignores_models_without_a_risk(workdir):
    # --no-probe runs no model, so there is no risk to hold against the threshold.
    code, out = gradlint("--no-probe", "-q", "healthy.py", "--fail-risk", "0.0001")
    assert (code, out) == (0, "")


def risk_of_base() -> float:
    from gradlint import risk

    return risk.combine([], {})


def test_unknown_selector_message(workdir):
    result = CliRunner().invoke(main, ["--select", "GL9999", "healthy.py"])
    assert result.output == ("gradlint: error: unknown rule selector 'GL9999': matches no rule code or name "
                             "(see gradlint --list-rules)\n")


def test_explain():
    code, out = CliRunner().invoke(main, ["--explain", "GL201"]).exit_code, \
        CliRunner().invoke(main, ["--explain", "GL201"]).output
    assert code == 0
    assert out.startswith("# init-scale-too-large (GL201)\n\nFamily: init. Default severity: warning. "
                          "Needs: trace.\n\n## What it does\n")
    assert "## Triggering model" in out and "## Healthy twin" in out
    assert CliRunner().invoke(main, ["--explain", "init-scale-too-large"]).output == out


def test_list_rules_names_every_rule():
    from gradlint.registry import all_rules

    out = CliRunner().invoke(main, ["--list-rules"]).output
    lines = out.splitlines()
    assert lines[0].split() == ["code", "name", "severity", "needs", "summary"]
    assert [line.split()[0] for line in lines[1:]] == [r.code for r in all_rules()]


def test_python_m_gradlint(workdir):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "gradlint", "--select", "GL201", "-q", "healthy.py"],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, "")


# -- colour, as ruff: on a terminal, unless NO_COLOR; FORCE_COLOR colours a pipe ----------------------

def test_force_color_colours_the_text_formats_only(workdir, monkeypatch):
    message, _ = measured(workdir)
    monkeypatch.setenv("FORCE_COLOR", "1")
    code, out = gradlint("-q", "broken.py")
    assert (code, out) == (1, f"\x1b[1mbroken.py\x1b[0m:8:20: \x1b[31m\x1b[1mGL201 [error]\x1b[0m fc1: {message}\n")
    assert "\x1b[" not in gradlint("--format", "json", "broken.py")[1]
    monkeypatch.setenv("NO_COLOR", "1")  # no-color.org: wins over FORCE_COLOR
    assert gradlint("-q", "broken.py") == (1, f"broken.py:8:20: GL201 [error] fc1: {message}\n")


def test_colour_follows_the_terminal():
    from gradlint.emit.style import PLAIN, Colors, palette_for

    class Terminal:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    assert isinstance(palette_for(Terminal(True), environ={}), Colors)
    assert palette_for(Terminal(False), environ={}) is PLAIN
    assert palette_for(Terminal(True), environ={"NO_COLOR": "1"}) is PLAIN
    assert isinstance(palette_for(Terminal(False), environ={"FORCE_COLOR": "1"}), Colors)


# -- settings that cannot be trained with are usage errors, before any model is imported ------------

@pytest.mark.parametrize("args,message", [
    (["--lr", "-1"], "--lr -1: the learning rate must be a positive finite number"),
    (["--lr", "0"], "--lr 0: the learning rate must be a positive finite number"),
    (["--lr", "nan"], "--lr nan: the learning rate must be a positive finite number"),
    (["--seed", "-1"], "--seed -1: the seed must be an integer from 0 to 2**64 - 1"),
    (["--timeout", "-5"], "--timeout -5: give a number of seconds, or 0 for no limit"),
    (["--max-memory", "lots"], "--max-memory: 'lots' is not a memory size such as 8GB or 512MB"),
    (["-j", "0"], "Invalid value for '-j' / '--jobs': 0 is not in the range x>=1."),
    (["--fail-risk", "0"], "--fail-risk 0: give a risk above 0 and at most 1, such as 0.5"),
    (["--fail-risk", "1.5"], "--fail-risk 1.5: give a risk above 0 and at most 1, such as 0.5"),
    (["--fail-risk", "nan"], "--fail-risk nan: give a risk above 0 and at most 1, such as 0.5"),
    (["--fail-risk", "high"], "Invalid value for '--fail-risk': 'high' is not a valid float."),
    (["--nope"], "No such option '--nope'. (Did you mean one of: '--ignore', '--no-probe'?) (see gradlint --help)"),
])
def test_bad_settings_are_one_line_usage_errors(workdir, args, message):
    result = CliRunner().invoke(main, [*args, "broken.py"])
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"gradlint: error: {message}\n")
