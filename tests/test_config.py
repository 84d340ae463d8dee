"""[tool.gradlint] in pyproject.toml: discovery, precedence against the command line, each key,
and exact messages for broken configs (exit 2)."""

from __future__ import annotations

import pathlib
import textwrap

import pytest

from tests._gl201 import ASSUMED, BROKEN, HEALTHY, finding, gl201, run
from tests.conftest import no_evidence_risk

NO_INPUTS = BROKEN[:BROKEN.index("\n\ndef example_inputs")] + "\n"  # gradlint infers a batch


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(BROKEN)
    return tmp_path


def config(folder, text: str, name: str = "pyproject.toml"):
    (folder / name).write_text(textwrap.dedent(text))


# -- discovery ------------------------------------------------------------------------------------

def test_nearest_config_above_the_file_wins(workdir):
    (workdir / "a" / "b").mkdir(parents=True)
    (workdir / "a" / "b" / "model.py").write_text(BROKEN)
    config(workdir, '[tool.gradlint]\nignore = ["GL201"]\n')
    assert run("-q", "a/b/model.py", select=None) == (0, "", "")
    config(workdir / "a", '[tool.gradlint]\nselect = ["GL201"]\n')  # nearer
    assert run("-q", "a/b/model.py", select=None) == (1, finding("a/b/model.py"), "")
    config(workdir / "a" / "b", '[project]\nname = "x"\n')  # no [tool.gradlint]: keep walking up
    assert run("-q", "a/b/model.py", select=None) == (1, finding("a/b/model.py"), "")


def test_files_of_one_run_use_their_own_configs(workdir):
    (workdir / "quiet").mkdir()
    (workdir / "quiet" / "model.py").write_text(BROKEN)
    config(workdir / "quiet", '[tool.gradlint]\nignore = ["GL2"]\n')
    assert run("-q", "model.py", "quiet/model.py", select=None) == (1, finding(), "")


def test_config_option_and_isolated(workdir):
    config(workdir, '[tool.gradlint]\nignore = ["GL201"]\n')
    assert run("-q", "model.py", select=None) == (0, "", "")
    assert run("-q", "--isolated", "model.py", select=None) == (1, finding(), "")
    (workdir / "other").mkdir()
    config(workdir / "other", 'ignore = ["GL201"]\n', name="gradlint.toml")  # keys at the top level
    config(workdir, '[tool.gradlint]\nselect = ["GL201"]\n')
    assert run("-q", "--config", "other/gradlint.toml", "model.py", select=None) == (0, "", "")
    assert run("--config", "x.toml", "--isolated", "model.py") == (
        2, "", "gradlint: error: --config and --isolated cannot be used together\n")
    assert run("--config", "missing.toml", "model.py") == (
        2, "", "gradlint: error: missing.toml: config file not found\n")


# -- precedence: the command line beats the file (ruff's layering) ---------------------------------

@pytest.mark.parametrize("file,args,fires", [
    ('select = ["GL201"]', [], True),
    ('ignore = ["GL201"]', [], False),
    ('ignore = ["GL201"]', ["--select", "GL201"], True),  # a CLI select starts afresh
    ('select = ["GL901"]', [], False),
    ('select = ["GL901"]', ["--extend-select", "GL201"], True),
    ('select = ["GL201"]', ["--ignore", "GL2"], False),
    ('select = ["GL2"]\nignore = ["GL201"]', ["--extend-select", "init-scale-too-large"], True),
    ('extend-select = ["GL201"]\nignore = ["GL2"]', [], True),  # the more specific selector wins
])
def test_selection_layers(workdir, file, args, fires):
    config(workdir, f"[tool.gradlint]\n{file}\n")
    assert run("-q", *args, "model.py", select=None) == ((1, finding(), "") if fires else (0, "", ""))


def test_fail_on_and_output_format_from_the_file(workdir):
    (workdir / "mild.py").write_text(BROKEN.replace("std=1.0", "std=0.5"))  # a GL201 warning
    config(workdir, '[tool.gradlint]\nfail-on = "error"\noutput-format = "json-lines"\n')
    code, out, _ = run("mild.py")
    assert code == 0 and out.startswith('{"target": "mild.py::build_model", "code": "GL201"')
    assert run("--fail-on", "warning", "--format", "concise", "-q", "mild.py")[0] == 1


def test_fail_risk_from_the_file(workdir):
    # model.py's GL201 error fails the run; made an info, only the risk can, and a threshold of 1 (no
    # risk reaches it) or the command line's own threshold decides. The base rate of a model with no
    # evidence is below any risk GL201's finding gives.
    config(workdir, '[tool.gradlint]\nfail-on = "error"\nfail-risk = 0.0001\n[tool.gradlint.severity]\nGL201 = "info"\n')
    assert run("-q", "model.py")[0] == 1
    assert run("-q", "model.py", "--fail-risk", "1")[0] == 0  # the command line beats the file
    config(workdir, '[tool.gradlint]\nfail-on = "error"\nfail-risk = 1\n[tool.gradlint.severity]\nGL201 = "info"\n')
    assert run("-q", "model.py")[0] == 0
    assert "fail-risk = 1.0\n" in run("--show-settings", "model.py")[1]


@pytest.mark.parametrize("file,cli,severity", [
    ('GL201 = "warning"', [], "warning"),
    ('GL2 = "info"', [], "info"),
    ('init = "warning"', [], "warning"),  # a family
    ('init-scale-too-large = "info"\nGL2 = "warning"', [], "info"),  # a name beats a prefix
    ('GL201 = "info"', ["--severity", "GL2=warning"], "warning"),  # the command line beats the file
])
def test_severity_overrides(workdir, file, cli, severity):
    config(workdir, f"[tool.gradlint.severity]\n{file}\n")
    code, out, _ = run("-q", *cli, "model.py", "--fail-on", "error")
    assert (code, out) == (int(severity == "error"), finding().replace("[error]", f"[{severity}]"))


def test_probe_settings(workdir):
    (workdir / "model.py").write_text(NO_INPUTS)
    config(workdir, '[tool.gradlint.probe]\nbatch-size = 3\nseed = 0\ndevice = "cpu"\nthorough = false\n')
    code, out, _ = run("--no-probe", "model.py")
    assert "  assumed inputs: random batch of shape (3, 64) inferred from the first layer fc1 (Linear); " \
           "define example_inputs() for a real one\n" in out
    assert "shape (5, 64)" in run("--no-probe", "--batch-size", "5", "model.py")[1]


def test_model_settings_for_files_off_the_conventions(workdir):
    source = NO_INPUTS.replace("def __init__(self):", "def __init__(self, width):").replace(
        "def build_model():\n    return Net()", "def make_net():\n    return Net(64)")
    (workdir / "odd.py").write_text(source)
    # No build_model and a class that needs arguments: a layers file as far as gradlint can tell.
    assert run("--no-probe", "odd.py") == (0, "Found 0 findings in 0 models; 1 file without a model skipped.\n", "")
    config(workdir, """\
        [tool.gradlint.models."odd.py"]
        factory = "make_net"
        input-shape = [2, 64]
        optimizer = "SGD"
        lr = 0.5
        """)
    _, risk = gl201()
    assert run("odd.py") == (1, finding("odd.py") +
                             f"odd.py::make_net: risk {risk}; causes: GL201 init-scale-too-large\n"
                             "  assumed inputs: random normal of shape (2, 64) (--input-shape)\n"
                             "  assumed loss: cross-entropy against random labels (no loss_fn)\n"
                             "Found 1 finding in 1 model (1 error).\n", "")
    # Named in the config, the file is linted even by a pre-commit run that skips non-models.
    assert run("-q", "--skip-non-models", "odd.py")[1] == finding("odd.py")
    assert run("-q", "--skip-non-models", "odd.py::build_model")[1].startswith("odd.py: error: no name 'build_model'")


def test_healthy_model_with_full_config(workdir):
    (workdir / "model.py").write_text(HEALTHY)
    config(workdir, """\
        [tool.gradlint]
        select = ["GL2", "GL9"]
        extend-select = []
        ignore = []
        external = ["GL77"]
        fail-on = "warning"
        output-format = "concise"

        [tool.gradlint.per-file-ignores]
        "legacy/**" = ["GL2"]
        "!models/*.py" = ["GL901"]

        [tool.gradlint.severity]
        GL9 = "info"

        [tool.gradlint.probe]
        batch-size = 8
        """)
    assert run("model.py", select=None) == (0, f"model.py::build_model: {no_evidence_risk('GL2')}\n" + ASSUMED +
                                            "Found 0 findings in 1 model.\n", "")


# -- broken configs: usage errors naming the key --------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ('[tool.gradlint\nselect = ["GL2"]\n',
     "invalid TOML: Expected ']' at the end of a table declaration (at line 1, column 15)"),
    ('[tool.gradlint]\nselct = ["GL2"]\n', "unknown key tool.gradlint.selct; did you mean 'select'?"),
    ('[tool.gradlint]\nfail_on = "error"\n', "unknown key tool.gradlint.fail_on; did you mean 'fail-on'?"),
    ('[tool.gradlint]\nxyz = 1\n', "unknown key tool.gradlint.xyz (expected one of: select, extend-select, ignore, "
                                   "external, per-file-ignores, severity, fail-on, fail-risk, output-format, baseline, "
                                   "probe, "
                                   "models, jobs, timeout, max-memory, exclude, extend-exclude, force-exclude, respect-gitignore)"),
    ('[tool.gradlint]\nselect = "GL2"\n', "tool.gradlint.select must be a list of strings, not a string"),
    ('[tool.gradlint]\nselect = ["GL299"]\n', "tool.gradlint.select: unknown rule selector 'GL299': matches no "
                                              "rule code or name (see gradlint --list-rules)"),
    ('[tool.gradlint]\nignore = ["init-scale-too-big"]\n', "tool.gradlint.ignore: unknown rule selector "
     "'INIT-SCALE-TOO-BIG': matches no rule code or name (see gradlint --list-rules)"),
    ('[tool.gradlint]\nfail-on = "fatal"\n', "tool.gradlint.fail-on: unknown severity 'fatal' "
                                             "(expected error, warning or info)"),
    ('[tool.gradlint]\nfail-risk = 0\n', "tool.gradlint.fail-risk must be a probability above 0 and at most 1, "
                                         "not 0.0"),
    ('[tool.gradlint]\nfail-risk = 1.5\n', "tool.gradlint.fail-risk must be a probability above 0 and at most 1, "
                                           "not 1.5"),
    ('[tool.gradlint]\nfail-risk = "high"\n', "tool.gradlint.fail-risk must be a number, not a string"),
    ('[tool.gradlint]\noutput-format = "xml"\n', "tool.gradlint.output-format: 'xml' is not one of concise, full, "
                                                 "json, json-lines, sarif, github, html"),
    ('[tool.gradlint]\nbaseline = 1\n', "tool.gradlint.baseline must be a string, not an integer"),
    ('[tool.gradlint.severity]\nGL201 = "fatal"\n', "tool.gradlint.severity.GL201: unknown severity 'fatal' "
                                                    "(expected error, warning or info)"),
    ('[tool.gradlint.severity]\nGL299 = "info"\n', "tool.gradlint.severity.GL299: unknown rule selector 'GL299': "
                                                   "matches no rule code or name (see gradlint --list-rules)"),
    ('[tool.gradlint.per-file-ignores]\n"a/*.py" = "GL2"\n',
     'tool.gradlint.per-file-ignores."a/*.py" must be a list of strings, not a string'),
    ('[tool.gradlint.per-file-ignores]\n"a/*.py" = ["GL299"]\n', 'tool.gradlint.per-file-ignores."a/*.py": '
     "unknown rule selector 'GL299': matches no rule code or name (see gradlint --list-rules)"),
    ('[tool.gradlint.probe]\nbatch-size = 0\n', "tool.gradlint.probe.batch-size must be positive, not 0"),
    ('[tool.gradlint.probe]\nbatch = 4\n', "unknown key tool.gradlint.probe.batch; did you mean 'batch-size'?"),
    ('[tool.gradlint.probe]\nseed = "0"\n', "tool.gradlint.probe.seed must be an integer, not a string"),
    ('[tool.gradlint]\nprobe = 4\n', "tool.gradlint.probe must be a table, not an integer"),
    ('[tool.gradlint.models."odd.py"]\ninput-shape = [8, 0]\n',
     'tool.gradlint.models."odd.py".input-shape must be a list of positive integers such as [8, 3, 32, 32]'),
    ('[tool.gradlint.models."odd.py"]\nfactory = 3\n',
     'tool.gradlint.models."odd.py".factory must be a string, not an integer'),
    ('[tool.gradlint.models."odd.py"]\nfactry = "make"\n',
     "unknown key tool.gradlint.models.\"odd.py\".factry; did you mean 'factory'?"),
])
def test_broken_config_is_a_usage_error(workdir, text, message):
    config(workdir, text)
    assert run("model.py") == (2, "", f"gradlint: error: pyproject.toml: {message}\n")


# TOML has nan and inf, and integers past torch.manual_seed's range (it wraps negatives around 2**64).
@pytest.mark.parametrize("text,message", [
    ('[tool.gradlint.models."odd.py"]\nlr = nan\n',
     'tool.gradlint.models."odd.py".lr must be a positive finite number, not nan'),
    ('[tool.gradlint.models."odd.py"]\nlr = inf\n',
     'tool.gradlint.models."odd.py".lr must be a positive finite number, not inf'),
    ('[tool.gradlint.models."odd.py"]\ngradient-clip-val = inf\n',
     'tool.gradlint.models."odd.py".gradient-clip-val must be a positive finite number, not inf'),
    ('[tool.gradlint.models."odd.py"]\ngradient-clip-val = -nan\n',
     'tool.gradlint.models."odd.py".gradient-clip-val must be a positive finite number, not nan'),
    ('[tool.gradlint.probe]\nseed = -1\n',
     "tool.gradlint.probe.seed must be an integer from 0 to 2**64 - 1 (torch.manual_seed's range), not -1"),
    ('[tool.gradlint.probe]\nseed = 18446744073709551616\n',
     "tool.gradlint.probe.seed must be an integer from 0 to 2**64 - 1 (torch.manual_seed's range), "
     "not 18446744073709551616"),
])
def test_non_finite_numbers_and_seeds_out_of_range_are_usage_errors(workdir, text, message):
    config(workdir, text)
    assert run("model.py") == (2, "", f"gradlint: error: pyproject.toml: {message}\n")


@pytest.mark.parametrize("args,message", [
    (["--select", "GL9999"], "unknown rule selector 'GL9999': matches no rule code or name "
                             "(see gradlint --list-rules)"),
    (["--severity", "GL201"], "--severity 'GL201': expected CODE=LEVEL, e.g. GL3=info"),
    (["--severity", "GL201=loud"], "--severity 'GL201=loud': unknown severity 'loud' "
                                   "(expected error, warning or info)"),
    (["--severity", "GL299=info"], "--severity 'GL299=info': unknown rule selector 'GL299': matches no rule code or "
                                   "name (see gradlint --list-rules)"),
    (["--input-shape", "8,a"], "--input-shape '8,a' is not a shape such as 8,3,32,32"),
])
def test_bad_options_are_usage_errors(workdir, args, message):
    assert run(*args, "model.py", select=None) == (2, "", f"gradlint: error: {message}\n")


def test_the_documented_example_is_valid(tmp_path):
    import re

    from gradlint.config import load_config

    docs = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "configuration.md").read_text()
    (tmp_path / "pyproject.toml").write_text(re.search(r"```toml\n(.*?)```", docs, re.DOTALL).group(1))
    loaded = load_config(str(tmp_path / "pyproject.toml"))
    assert loaded.ignore == ("GL3",) and len(loaded.per_file_ignores) == 4 and loaded.models[0][1].lr == 0.1


def test_probe_settings_reach_the_engine(workdir):
    from gradlint.cli import _plan
    from gradlint.config import CliOptions, ConfigFinder
    from gradlint.discover import Target

    config(workdir, '[tool.gradlint.probe]\nbatch-size = 3\nseed = 7\ndevice = "cuda:1"\nthorough = true\n')
    _, settings, overrides = _plan(Target("model.py"), ConfigFinder(), CliOptions())
    assert (settings.device, settings.seed, settings.thorough, overrides.seed, overrides.batch_size) == (
        "cuda:1", 7, True, 7, 3)
    cli = CliOptions(device="cpu", seed=0, batch_size=5)
    _, settings, overrides = _plan(Target("model.py"), ConfigFinder(), cli)
    assert (settings.device, settings.seed, overrides.seed, overrides.batch_size) == ("cpu", 0, 0, 5)
