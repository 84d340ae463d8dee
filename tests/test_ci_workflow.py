"""The GitHub Actions workflow in docs/ci.md, step by step: each `run:` script is run with bash as
the runner runs it (`shell: bash`: -eo pipefail), in a temporary git repository with a base
commit and a head commit that adds, modifies, renames and deletes model files, with the `${{ }}`
expressions replaced by the values the runner would give them. The install step downloads from
PyTorch's index, so it is checked word for word instead of run."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig

import pytest
import yaml

from tests._gl201 import BROKEN, HEALTHY, gl201

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "ci.md"
PATHS = ["**.py", "**.onnx", "pyproject.toml", ".github/workflows/gradlint.yml"]
PINNED = {  # looked up in each action's repository: the release tag and the commit it names
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-python": ("5fda3b95a4ea91299a34e894583c3862153e4b97", "v7.0.0"),
    "github/codeql-action/upload-sarif": ("8aad20d150bbac5944a9f9d289da16a4b0d87c1e", "v4.36.2"),
}
INSTALL = ("python -m pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu\n"
           'python -m pip install -e ".[dev]" torch==2.13.0+cpu\n')
ZERO = "0" * 40
GL201_HELP = '%0A  help: initialize at the critical scale%0A      nn.init.kaiming_normal_(self.fc1.weight, nonlinearity="relu")'
GONE = "import torch\n\nmodel = torch.nn.Linear(3, 3)\n"  # unlike the others: git pairs no rename with it
FAILS_TO_LOAD = "import torch\n\nraise RuntimeError('{}')\n\n\ndef build_model():\n    return torch.nn.Linear(4, 2)\n"

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def block() -> str:
    return re.search(r"```yaml\n(# \.github/workflows/gradlint\.yml\n.*?)```", DOCS.read_text(), re.DOTALL).group(1)


def workflow() -> dict:
    return yaml.safe_load(block())


def step(name: str) -> dict:
    (found,) = [s for s in workflow()["jobs"]["gradlint"]["steps"] if s.get("name") == name or s.get("id") == name]
    return found


def test_workflow_shape():
    flow = workflow()
    triggers = flow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers == {"pull_request": {"paths": PATHS}, "push": {"branches": ["main"], "paths": PATHS}}
    assert flow["permissions"] == {"contents": "read", "security-events": "write", "actions": "read"}
    assert flow["defaults"] == {"run": {"shell": "bash"}}  # -eo pipefail, which the tests below use
    steps = flow["jobs"]["gradlint"]["steps"]
    assert [s.get("id") or s.get("name") or s["uses"].split("@")[0] for s in steps] == [
        "actions/checkout", "changed", "actions/setup-python", "Install", "sarif", "gradlint, changed models",
        "Upload to code scanning"]
    assert steps[0]["with"] == {"fetch-depth": 0, "persist-credentials": False}
    for entry in steps:
        if "uses" in entry:
            action, _, ref = entry["uses"].partition("@")
            commit, tag = PINNED[action]
            assert ref == commit and f"{action}@{commit}  # {tag}\n" in block()
        else:  # expressions reach scripts only through env:, never pasted into the shell text
            assert "${{" not in entry["run"]
    assert step("gradlint, changed models")["if"] == "steps.changed.outputs.count != '0'"
    upload = step("Upload to code scanning")
    # After a failed gate too, but only with a SARIF file the SARIF step vouched for.
    assert upload["if"] == "always() && steps.sarif.outcome == 'success'"
    assert upload["with"] == {"sarif_file": "gradlint.sarif", "category": "gradlint"}
    assert "-o gradlint.sarif" in step("sarif")["run"]


def test_install_step_is_the_cpu_wheel():
    """Not run here: it downloads from download.pytorch.org and installs into the environment."""
    install = step("Install")
    assert install["run"] == INSTALL and set(install) == {"name", "run"}


# --- the steps, run ------------------------------------------------------------------------------

class Repo:
    """A git repository, the runner's temp folder and its GITHUB_OUTPUT file."""

    def __init__(self, tmp_path: pathlib.Path):
        self.path = tmp_path / "work"
        self.path.mkdir()
        self.temp = tmp_path / "runner-temp"
        self.temp.mkdir()
        self.output = tmp_path / "github-output"
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("GITHUB_", "RUNNER_"))}
        self.env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": str(tmp_path / "gitconfig"),
                         "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
                         "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
                         "RUNNER_TEMP": str(self.temp), "GITHUB_OUTPUT": str(self.output),
                         # setup-python and the install put python and gradlint on PATH
                         "PATH": os.pathsep.join([sysconfig.get_path("scripts"), os.path.dirname(sys.executable),
                                                  os.environ.get("PATH", "")])})
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, env=self.env, check=True, capture_output=True,
                              text=True).stdout

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)

    def commit(self) -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "change")
        return self.git("rev-parse", "HEAD").strip()

    def run(self, name: str, expressions: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the step's script as the runner would: its env: with each expression replaced by
        the value given for it (an expression not given fails the test), bash -eo pipefail."""
        entry = step(name)
        env = dict(self.env)
        for key, value in entry.get("env", {}).items():
            for expression in re.findall(r"\$\{\{.*?\}\}", value):
                value = value.replace(expression, (expressions or {})[expression])
            env[key] = value
        script = self.temp / "step.sh"
        script.write_text(entry["run"])
        return subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=self.path,
                              env=env, capture_output=True, text=True, timeout=900)

    def outputs(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in self.output.read_text().splitlines())

    def changed(self, base: str) -> list[str]:
        """Run `Changed model files` against `base`; the files it listed for the gate."""
        self.output.write_text("")
        result = self.run("changed", {"${{ github.event.pull_request.base.sha || github.event.before }}": base})
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        listed = (self.temp / "changed").read_text()
        names = listed.split("\0")[:-1] if listed else []
        assert self.outputs() == {"count": str(len(names))}
        return names


@pytest.fixture
def repo(tmp_path) -> tuple[Repo, str]:
    """A base commit, then a head commit that adds a broken model under a name with a space and
    an accent and one that fails to load, renames a model, deletes one, and edits a utility;
    an untouched model with a finding and an untouched one that fails to load stay as they are.
    Returns the repository and the base commit."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = Repo(tmp_path)
    repo.write({"pyproject.toml": '[tool.gradlint]\nselect = ["GL201"]\n', "README.md": "models\n",
                "models/old_bad.py": BROKEN, "models/stale.py": FAILS_TO_LOAD.format("stale"),
                "models/gone.py": GONE, "models/moved.py": HEALTHY, "utils.py": "def helper():\n    return 1\n"})
    base = repo.commit()
    (repo.path / "models" / "gone.py").unlink()
    repo.git("mv", "models/moved.py", "models/renamed.py")
    repo.write({"models/new bad é.py": BROKEN, "models/new_load.py": FAILS_TO_LOAD.format("new"),
                "utils.py": "def helper():\n    return 2\n"})
    repo.commit()
    return repo, base


CHANGED = ["models/new bad é.py", "models/new_load.py", "models/renamed.py", "utils.py"]
TRACKED = ["models/new bad é.py", "models/new_load.py", "models/old_bad.py", "models/renamed.py", "models/stale.py",
           "utils.py"]


def test_changed_files_of_a_pull_request(repo):
    """Deleted files are left out, a renamed one is listed by its new name, paths with spaces
    and non-ASCII characters come through unquoted."""
    repo, base = repo
    assert repo.git("diff", "--name-status", base, "HEAD").splitlines() == [
        "D\tmodels/gone.py", 'A\t"models/new bad \\303\\251.py"', "A\tmodels/new_load.py",
        "R100\tmodels/moved.py\tmodels/renamed.py", "M\tutils.py"]
    assert repo.changed(base) == CHANGED


def test_changed_files_without_a_known_base(repo):
    """The first push of a branch (github.event.before is forty zeros) and a force push (a
    before commit the clone lacks): every tracked model file."""
    repo, _ = repo
    assert repo.changed(ZERO) == TRACKED
    assert repo.changed("f" * 40) == TRACKED


def test_changed_files_when_no_model_file_changed(repo):
    repo, _ = repo
    head = repo.git("rev-parse", "HEAD").strip()
    repo.write({"README.md": "more\n"})
    repo.commit()
    assert repo.changed(head) == []  # the gate is skipped (count 0); the SARIF run still refreshes


def test_sarif_step_lints_every_model_and_names_load_errors(repo):
    repo, base = repo
    repo.changed(base)
    result = repo.run("sarif")
    # The untouched model that fails to load is a warning here; the changed one is the gate's.
    assert (result.returncode, result.stdout) == (0, "::warning title=gradlint (load error)::models/stale.py: "
                                                     "error while importing: RuntimeError: stale\n"), result.stderr
    (run,) = json.loads((repo.path / "gradlint.sarif").read_text())["runs"]
    located = sorted({(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])
                      for r in run["results"]})
    assert located == [("GL201", "models/new bad é.py"), ("GL201", "models/old_bad.py")]  # untouched ones too
    assert sorted(model["path"] for model in run["properties"]["models"]) == [
        "models/new bad é.py", "models/old_bad.py", "models/renamed.py"]  # gone.py is gone
    (invocation,) = run["invocations"]
    assert [n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for n in invocation["toolExecutionNotifications"]] == ["models/new_load.py", "models/stale.py"]


def test_sarif_step_passes_findings_and_fails_on_a_usage_error(repo):
    repo, base = repo
    (repo.path / "models" / "stale.py").unlink()
    (repo.path / "models" / "new_load.py").unlink()
    repo.changed(base)
    result = repo.run("sarif")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # findings: the gate decides
    (repo.path / "gradlint.sarif").unlink()

    repo.write({"pyproject.toml": '[tool.gradlint]\nselect = ["GL999"]\n'})
    result = repo.run("sarif")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("gradlint: error: ") and not (repo.path / "gradlint.sarif").exists()


def risks(repo: Repo, *paths: str) -> list[str]:
    document = json.loads(subprocess.run([sys.executable, "-m", "gradlint", "--format", "json", *paths],
                                         cwd=repo.path, capture_output=True, text=True, timeout=600).stdout)
    return [f"{m['risk']:.2f} ({m['level']}, incomplete: {', '.join(m['risk_incomplete'])})" for m in document["models"]]


def test_gate_annotates_the_changed_models_and_fails(repo):
    repo, base = repo
    repo.changed(base)
    message, _ = gl201()
    bad_risk, renamed_risk = risks(repo, "models/new bad é.py", "models/renamed.py")
    result = repo.run("gradlint, changed models")
    assert (result.returncode, result.stdout, result.stderr) == (2, (
        "::error file=models/new_load.py,title=gradlint (load error)::models/new_load.py: error: error while importing: "
        "RuntimeError: new\n"
        f"::error file=models/new bad é.py,line=8,col=20,title=gradlint (GL201)::models/new bad é.py:8:20: "
        f"GL201 [error] fc1: {message}{GL201_HELP}\n"
        f"::notice file=models/new bad é.py,line=5,title=gradlint risk%3A low::models/new bad é.py::build_model: "
        f"risk {bad_risk}; causes: GL201 init-scale-too-large\n"
        f"::notice file=models/renamed.py,line=5,title=gradlint risk%3A low::models/renamed.py::build_model: "
        f"risk {renamed_risk}\n"
        "Found 1 finding in 2 models (1 error); 1 target failed to load.\n"), "")


def test_gate_exit_codes(repo):
    """1 for a finding, 0 for healthy changed models; the untouched bad model never counts."""
    repo, base = repo
    (repo.path / "models" / "new_load.py").unlink()
    head = repo.commit()
    repo.changed(base)
    assert repo.run("gradlint, changed models").returncode == 1
    repo.write({"models/new bad é.py": HEALTHY})
    repo.commit()
    repo.changed(head)
    result = repo.run("gradlint, changed models")
    assert result.returncode == 0 and result.stdout.endswith("Found 0 findings in 1 model.\n"), result.stdout
