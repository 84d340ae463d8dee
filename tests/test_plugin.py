"""A third-party rule package, installed with pip as a user would (tests/plugin_example, the one
docs/writing-rules.md builds): listed, explained, selected, suppressed by `# noqa: XT101`, its own
test suite passing in one line, and ours still passing beside it. Plus the contract every rule is
held to when it is registered."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from gradlint.findings import Severity, Stage
from gradlint.rule import Rule, contract_problem

ROOT = pathlib.Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugin_example"

MODEL = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Net(nn.Module):{noqa}
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(x)


    def example_inputs():
        return (torch.randn(2, 16),)
    """)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A virtualenv that sees this gradlint (system site-packages) with the plugin installed into
    it from a copy (pip writes build files next to the sources)."""
    folder = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PLUGIN, folder / "plugin")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(folder / "venv")], check=True)
    python = folder / "venv" / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(folder / "plugin")],
                             capture_output=True, text=True)
    if install.returncode != 0:
        pytest.skip(f"pip could not build the example plugin here: {install.stderr.strip().splitlines()[-1:]}")
    return python, folder


def gradlint(venv, *args: str, cwd=None) -> subprocess.CompletedProcess:
    python, folder = venv
    return subprocess.run([str(python), "-m", "gradlint", "--isolated", *args], capture_output=True, text=True,
                          cwd=cwd or folder)


def test_the_plugin_is_listed_explained_and_selected(venv):
    listing = gradlint(venv, "--list-rules").stdout.splitlines()
    assert listing[-1].split()[:4] == ["XT101", "small-example-batch", "info", "static"]
    assert gradlint(venv, "--explain", "XT101").stdout.startswith("# small-example-batch (XT101)\n")
    _, folder = venv
    (folder / "model.py").write_text(MODEL.format(noqa=""))
    result = gradlint(venv, "--select", "XT", "-q", "model.py")
    assert (result.returncode, result.stdout, result.stderr) == (
        0, "model.py:5:1: XT101 [info] the example batch holds 2 samples: its statistics are noisy below 8\n", "")


def test_noqa_works_for_a_plugins_code(venv):
    _, folder = venv
    (folder / "model.py").write_text(MODEL.format(noqa="  # noqa: XT101"))
    assert gradlint(venv, "--select", "XT,GL901", "-q", "model.py").stdout == ""
    (folder / "model.py").write_text(MODEL.format(noqa="  # noqa: XT999"))  # unknown to every installed rule
    assert "GL901 [warning] unused `# noqa: XT999` (unknown: XT999)" in \
        gradlint(venv, "--select", "XT,GL901", "-q", "model.py").stdout


def test_the_plugins_own_tests_run_its_examples_in_one_line(venv):
    python, folder = venv
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                            capture_output=True, text=True, cwd=folder / "plugin")
    assert result.returncode == 0, result.stdout
    assert result.stdout.splitlines()[-1].startswith("2 passed")  # XT101's invalid and valid twins


def test_our_tests_pass_with_a_plugin_installed(venv):
    """The tests that read the registry, the rule listing and the CLI's exact output."""
    python, _ = venv
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                             "tests/test_rules.py", "tests/test_cli.py", "tests/test_suppressions.py"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:]


# -- the contract -----------------------------------------------------------------------------------

def rule(**attributes) -> type:
    base = {"code": "XT101", "name": "some-rule", "family": "inputs", "severity": Severity.INFO,
            "stages": frozenset({Stage.STATIC}), "check": lambda self, ctx: ()}
    return type("Custom", (Rule,), {**base, **attributes})


@pytest.mark.parametrize("attributes,problem", [
    ({}, None),
    ({"code": "GL201"}, "code 'GL201' is not the package's prefix XT followed by digits"),
    ({"code": "XT"}, "code 'XT' is not the package's prefix XT followed by digits"),
    ({"name": "SomeRule"}, "name 'SomeRule' is not a kebab-case name such as init-scale-too-large"),
    ({"family": None}, "family None is not a lower-case word such as init (families group rules in docs and "
                       "config)"),
    ({"severity": "info"}, "severity must be a gradlint.findings.Severity (ERROR, WARNING or INFO)"),
    ({"stages": frozenset()}, "stages must be a non-empty frozenset of gradlint.findings.Stage"),
    ({"check": Rule.check}, "it does not implement check(ctx)"),
])
def test_contract(attributes, problem):
    assert contract_problem(rule(**attributes), "XT") == problem


def test_a_broken_plugin_is_one_line_naming_it(tmp_path):
    """A rule without a family, registered through a real entry point: every command that loads
    the rules says which plugin and rule, and exits 2."""
    package = tmp_path / "broken"
    (package / "gradlint_broken").mkdir(parents=True)
    (package / "gradlint_broken" / "__init__.py").write_text(textwrap.dedent("""\
        from gradlint.findings import Stage
        from gradlint.rule import Rule


        class NoFamily(Rule):
            code, name, stages = "XB101", "no-family", frozenset({Stage.STATIC})

            def check(self, ctx):
                return ()
        """))
    dist = tmp_path / "site" / "gradlint_broken-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: gradlint-broken\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[gradlint.rules]\nXB = gradlint_broken\n")
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{package}", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "gradlint", "--list-rules"], capture_output=True, text=True,
                            env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == ("gradlint: error: plugin XB (gradlint_broken): rule gradlint_broken.NoFamily: family None "
                             "is not a lower-case word such as init (families group rules in docs and config)\n")


def test_a_code_claimed_twice_keeps_the_first_and_is_reported(monkeypatch):
    from gradlint import registry

    first, second = rule(), rule(name="other-rule")
    plugins = [registry.Plugin("XT", "first_pkg", lambda: first), registry.Plugin("XT", "second_pkg", lambda: second)]
    monkeypatch.setattr(registry, "_plugins", lambda: plugins)
    registry._registry.cache_clear()
    try:
        assert registry.all_rules() == (first,)
        assert registry.clashes() == ("rule XT101 is defined by plugin XT (first_pkg) and plugin XT (second_pkg); "
                                      "plugin XT (first_pkg)'s is used",)
    finally:
        registry._registry.cache_clear()


def test_the_prefix_gl_is_gradlints_own(monkeypatch):
    from gradlint import registry

    monkeypatch.setattr(registry, "_plugins", lambda: [registry.Plugin("GL", "someone_else", lambda: rule())])
    registry._registry.cache_clear()
    try:
        with pytest.raises(registry.PluginError, match=r"^plugin GL \(someone_else\): the prefix GL is gradlint's own"):
            registry.all_rules()
    finally:
        registry._registry.cache_clear()
