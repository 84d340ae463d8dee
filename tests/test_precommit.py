"""The published pre-commit hooks (.pre-commit-hooks.yaml), installed by the real `pre-commit`
from a git copy of this tree into fresh repositories, as a user's `.pre-commit-config.yaml` names
them: the default hooks run the environment's gradlint, the -isolated ones a virtualenv of their
own that must get the CPU torch wheel. Each commit's exit code and hook output are checked whole."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest
import yaml

from tests._gl201 import BROKEN, HEALTHY, finding

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
EXAMPLE = ROOT / "tests" / "example_repo"
TORCH_PINS = ['torch==2.13.0+cpu; sys_platform == "linux"', 'torch==2.13.0; sys_platform != "linux"']
UTILS = "import os\n\n\ndef helper():\n    return os.sep\n"

# Records, in the file named by $IMPORT_LOG, every Python process that starts and every attempt
# to import torch (a meta-path finder is asked only when torch is not imported yet), through
# PYTHONPATH, so it sees gradlint, its fork server and its workers, in either hook's interpreter.
SITECUSTOMIZE = textwrap.dedent("""\
    import os
    import sys


    def _log(text):
        with open(os.environ["IMPORT_LOG"], "a") as handle:
            handle.write(f"{os.getpid()} {text}\\n")


    class _WatchTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch":
                _log("imports torch")
            return None


    if os.environ.get("IMPORT_LOG"):
        _log("runs " + " ".join(sys.orig_argv))
        sys.meta_path.insert(0, _WatchTorch())
    """)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _system() -> str:
    """What the installed pre-commit makes of `language: system`: 4.4 renamed it."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("pre-commit").split(".")[:2])
    return "unsupported" if (major, minor) >= (4, 4) else "system"


SYSTEM = _system()


def raw_manifest() -> list[dict]:
    return yaml.safe_load(MANIFEST.read_text())


def hooks() -> dict:
    from pre_commit.clientlib import load_manifest

    return {hook["id"]: hook for hook in load_manifest(str(MANIFEST))}  # raises on a schema error


def test_manifest_matches_pre_commits_schema():
    published = hooks()
    assert list(published) == ["gradlint", "gradlint-onnx", "gradlint-isolated", "gradlint-onnx-isolated"]
    for suffix, language in (("", SYSTEM), ("-isolated", "python")):
        python, onnx = published[f"gradlint{suffix}"], published[f"gradlint-onnx{suffix}"]
        assert python["entry"] == "gradlint --skip-non-models --force-exclude --quiet"
        assert python["types"] == ["python"] and python["files"] == ""
        assert onnx["entry"] == "gradlint --force-exclude --quiet"
        assert onnx["files"] == r"\.onnx$" and onnx["types"] == ["file"]
        for hook in (python, onnx):
            assert hook["language"] == language
            assert hook["require_serial"] is True  # torch imported once, not once per CPU
            assert "--thorough" not in hook["entry"] and not hook["args"]  # the default run stays fast
            assert hook["pass_filenames"] and hook["name"] and hook["description"]
            assert hook["additional_dependencies"] == (TORCH_PINS if suffix else [])


def test_system_hooks_use_the_name_every_pre_commit_reads():
    """`unsupported` is the 4.4 name, and releases before 4.4 reject it (checked by hand with
    3.5.0 and 4.3.0: "Expected one of ... but got: 'unsupported'"); 4.4 and later still read
    `system`, so the file says `system`."""
    languages = {hook["id"]: hook["language"] for hook in raw_manifest()}
    assert languages == {"gradlint": "system", "gradlint-onnx": "system",
                         "gradlint-isolated": "python", "gradlint-onnx-isolated": "python"}


def test_the_isolated_pin_admits_only_the_cpu_build_on_linux():
    """On Linux, PyPI's torch is the CUDA build: only a `+cpu` version may satisfy the pin (PyPI
    has none, so a PyPI-only install fails). macOS and Windows wheels on PyPI are CPU builds
    without the label. Each platform gets exactly one requirement, and pyproject's admits it."""
    from packaging.requirements import Requirement

    (ours,) = [r for r in tomllib_load()["project"]["dependencies"] if r.startswith("torch")]
    for platform, admitted, refused in (
            ("linux", ["2.13.0+cpu"], ["2.13.0", "2.13.0+cu130", "2.13.1+cpu", "2.14.1"]),
            ("darwin", ["2.13.0"], ["2.14.1"]),
            ("win32", ["2.13.0", "2.13.0+cpu"], ["2.14.1"])):
        requirements = [Requirement(r) for r in TORCH_PINS]
        (active,) = [r for r in requirements if r.marker.evaluate({"sys_platform": platform})]
        assert [v for v in admitted + refused if active.specifier.contains(v)] == admitted, platform
        assert all(Requirement(ours).specifier.contains(v) for v in admitted)


def tomllib_load() -> dict:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_docs_show_the_published_pins():
    """A user who adds packages to the isolated hook replaces its additional_dependencies, so the
    documented example must carry the same torch pins, or it installs CUDA again."""
    docs = (ROOT / "docs" / "pre-commit.md").read_text()
    hooks = []
    for block in docs.split("```yaml\n")[1:]:
        loaded = yaml.safe_load(textwrap.dedent(block.split("```", 1)[0]))
        # a whole config, or a fragment: the hooks of one repository
        hooks += [h for r in loaded["repos"] for h in r["hooks"]] if isinstance(loaded, dict) else loaded
    isolated = [hook for hook in hooks if hook["id"] == "gradlint-isolated"]
    with_dependencies = [hook["additional_dependencies"] for hook in isolated if "additional_dependencies" in hook]
    assert len(isolated) == 2 and with_dependencies == [TORCH_PINS + ["transformers==5.23.0"]]


# --- real pre-commit, real commits -------------------------------------------------------------

@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> tuple[str, str]:
    """This working tree (tracked and untracked files, as it is now) committed to a repository
    of its own: the `repo:` and `rev:` a user's config names. Returns (url, rev)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path_factory.mktemp("hook") / "gradlint"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, repo / name)
    env = git_env(repo.parent)
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "hooks"]):
        subprocess.run(command, cwd=repo, env=env, check=True, capture_output=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, env=env, check=True, capture_output=True, text=True)
    return repo.as_uri(), rev.stdout.strip()


def git_env(home: pathlib.Path) -> dict:
    env = {**os.environ, "PRE_COMMIT_COLOR": "never", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": str(home / "gitconfig"),
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    for name in ("PRE_COMMIT", "PYTHONPATH", "IMPORT_LOG", "VIRTUAL_ENV"):
        env.pop(name, None)
    # The environment pre-commit runs in first on PATH, as an activated virtualenv puts it: the
    # system hooks find its `gradlint` there.
    scripts = sysconfig.get_path("scripts")
    env["PATH"] = os.pathsep.join([scripts, os.path.dirname(sys.executable), env.get("PATH", "")])
    return env


class UserRepo:
    """A fresh git repository whose .pre-commit-config.yaml names one published hook."""

    def __init__(self, path: pathlib.Path, hook_repo: tuple[str, str], hook: dict, home: pathlib.Path):
        self.path = path
        self.env = {**git_env(path.parent), "PRE_COMMIT_HOME": str(home)}
        path.mkdir(parents=True, exist_ok=True)
        self.sh("git", "init", "-q", "-b", "main")
        url, rev = hook_repo
        config = {"repos": [{"repo": url, "rev": rev, "hooks": [hook]}]}
        (path / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        self.sh("git", "add", ".pre-commit-config.yaml")
        # --install-hooks: the clone (and the isolated hooks' virtualenv) now, not in the first commit
        installed = self.sh(sys.executable, "-m", "pre_commit", "install", "--install-hooks")
        assert installed.returncode == 0, installed.stdout + installed.stderr

    def sh(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=self.path, env={**self.env, **env}, capture_output=True, text=True,
                              timeout=900)

    def write(self, name: str, text: str) -> None:
        (self.path / name).parent.mkdir(parents=True, exist_ok=True)
        (self.path / name).write_text(text)

    def commit(self, *names: str, **env: str) -> tuple[int, str]:
        """Stage `names`, commit; (exit code, what the hook printed: git passes it on stderr)."""
        assert self.sh("git", "add", "--", *names).returncode == 0
        result = self.sh("git", "commit", "-q", "-m", "change", **env)
        assert result.stdout == "", result.stdout  # -q: git prints nothing of its own
        return result.returncode, result.stderr

    def committed(self) -> list[str]:
        return self.sh("git", "ls-tree", "-r", "--name-only", "HEAD").stdout.splitlines()

    def watch_imports(self) -> tuple[dict, pathlib.Path]:
        folder = self.path.parent / "watch"
        folder.mkdir(exist_ok=True)
        (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
        log = folder / "imports.log"
        log.unlink(missing_ok=True)
        return {"PYTHONPATH": str(folder), "IMPORT_LOG": str(log)}, log


def banner(name: str, result: str) -> str:
    """pre-commit's status line: the hook's name padded with dots to 79 columns."""
    return f"{name}{'.' * (79 - len(name) - len(result))}{result}\n"


def failed(hook_id: str, code: int, output: str, name: str = "gradlint") -> str:
    """pre-commit's report of a failed hook, around `output`: what the hook printed."""
    return f"{banner(name, 'Failed')}- hook id: {hook_id}\n- exit code: {code}\n\n{output}\n"


PYTHON = os.path.realpath(sys.executable)  # a console script's shebang may name python3.11 for python


def processes(log: pathlib.Path) -> list[str]:
    """The watch's log without the pids and without pre-commit's own process (git's hook script
    starts it with the same environment); each interpreter by its real path."""
    lines = []
    for line in log.read_text().splitlines():
        verb, program, *rest = line.split(" ", 1)[1].split(" ")
        lines.append(" ".join([verb, os.path.realpath(program) if verb == "runs" else program, *rest]))
    return [line for line in lines if not line.startswith(f"runs {PYTHON} -mpre_commit ")]


SELECT_GL201 = ["--select", "GL201"]  # the rule whose output is stable while others are written


@pytest.fixture
def system_repo(tmp_path, hook_repo):
    def make(hook_id: str = "gradlint", args=SELECT_GL201, path: pathlib.Path | None = None) -> UserRepo:
        return UserRepo(path or tmp_path / "repo", hook_repo, {"id": hook_id, "args": list(args)}, tmp_path / "cache")

    return make


def test_system_hook_blocks_an_exploding_model_and_passes_its_fix(system_repo):
    repo = system_repo()
    repo.write("utils.py", UTILS)
    repo.write("net.py", BROKEN)
    assert repo.commit("utils.py", "net.py") == (1, failed("gradlint", 1, finding("net.py")))
    assert repo.committed() == []

    repo.write("net.py", HEALTHY)
    assert repo.commit("net.py") == (0, banner("gradlint", "Passed"))
    assert repo.committed() == [".pre-commit-config.yaml", "net.py", "utils.py"]


def test_system_hook_runs_the_environments_gradlint(system_repo):
    """No environment is installed for it: the store holds the clone of the hook's repository
    and nothing else, and the gradlint that runs is the one on PATH."""
    repo = system_repo()
    repo.write("net.py", BROKEN)
    env, log = repo.watch_imports()
    assert repo.commit("net.py", **env)[0] == 1
    assert processes(log)[0] == f"runs {PYTHON} {shutil.which('gradlint', path=repo.env['PATH'])} " \
                                "--skip-non-models --force-exclude --quiet --select GL201 net.py"
    store = pathlib.Path(repo.env["PRE_COMMIT_HOME"])
    (clone,) = [p for p in store.iterdir() if p.is_dir()]
    assert not list(clone.glob("py_env-*"))


def test_system_hook_never_imports_torch_for_files_without_a_model(system_repo):
    repo = system_repo()
    repo.write("utils.py", UTILS)
    repo.write("config.py", "# the learning rate torch uses, and no model\nLR = 3e-4\n")
    env, log = repo.watch_imports()
    assert repo.commit("utils.py", "config.py", **env) == (0, banner("gradlint", "Passed"))
    assert processes(log) == [
        f"runs {PYTHON} {shutil.which('gradlint', path=repo.env['PATH'])} "
        "--skip-non-models --force-exclude --quiet --select GL201 config.py utils.py"]

    # The watch does see torch when a model is committed: its silence above is not an accident.
    repo.write("net.py", HEALTHY)
    assert repo.commit("net.py", **env)[0] == 0
    assert "imports torch" in processes(log)


def test_onnx_hook_blocks_a_model_that_fails_to_load(system_repo):
    repo = system_repo("gradlint-onnx", args=[])
    shutil.copy(ROOT / "tests" / "bad_inputs" / "lfs_pointer.onnx", repo.path / "exported.onnx")
    repo.write("utils.py", UTILS)  # not an .onnx file: never passed to this hook
    assert repo.commit("exported.onnx", "utils.py") == (1, failed(
        "gradlint-onnx", 2, "exported.onnx: error: a Git LFS pointer, not the model: run `git lfs pull` to fetch the file\n",
        name="gradlint (ONNX)"))


def test_the_example_repository_through_the_hook(system_repo, tmp_path):
    """tests/example_repo committed through the system hook with the repository's own config
    (GL201 only, experiments/ excluded): the one bad model blocks the commit and nothing else is
    reported; the layers that need arguments, the parameter-free activations, the utility, the
    excluded scratch file and the script importing the package pass."""
    path = tmp_path / "example"
    shutil.copytree(EXAMPLE, path)
    repo = system_repo(args=[], path=path)
    everything = ["README.md", "pyproject.toml", "experiments", "mylab", "scripts"]
    message = wide_finding(path)
    assert repo.commit(*everything) == (1, failed("gradlint", 1, f"mylab/models/wide.py:10:19: GL201 [error] fc: {message}\n"))

    assert repo.sh("git", "reset", "-q", "--", "mylab/models/wide.py").returncode == 0
    assert repo.commit() == (0, banner("gradlint", "Passed"))
    assert repo.committed() == [".pre-commit-config.yaml", "README.md", "experiments/scratch.py", "mylab/__init__.py",
                                "mylab/activations.py", "mylab/layers.py", "mylab/models/__init__.py",
                                "mylab/models/mlp.py", "mylab/utils.py", "pyproject.toml", "scripts/config.py",
                                "scripts/train.py"]

    # Only files without a model staged: skipped and counted by gradlint, quiet in the hook.
    # A commit of files without a model only: gradlint skips and counts them, the hook passes.
    edited = ["mylab/layers.py", "mylab/activations.py", "mylab/utils.py"]
    for name in edited:
        (path / name).write_text((path / name).read_text() + "\n# edited\n")
    assert repo.commit(*edited) == (0, banner("gradlint", "Passed"))
    assert repo.sh("git", "status", "--porcelain").stdout == "?? mylab/models/wide.py\n"


def wide_finding(folder: pathlib.Path) -> str:
    """GL201's message for mylab/models/wide.py: it depends on the seeded init, so it is read once
    (from json, with the repository's config) and then checked exactly."""
    result = subprocess.run([sys.executable, "-m", "gradlint", "--format", "json", "mylab/models/wide.py"],
                            cwd=folder, capture_output=True, text=True, timeout=600)
    (model,) = json.loads(result.stdout)["models"]
    return model["findings"][0]["message"]


# --- the isolated hook: its own virtualenv, CPU torch --------------------------------------------

@pytest.fixture(scope="module")
def isolated_store(tmp_path_factory, hook_repo) -> pathlib.Path:
    """One PRE_COMMIT_HOME with the isolated hook installed (a minute: torch is ~190 MB), shared
    by the tests below as one user's machine shares it between repositories."""
    home = tmp_path_factory.mktemp("isolated") / "cache"
    UserRepo(home.parent / "first", hook_repo, {"id": "gradlint-isolated"}, home)
    return home


def hook_python(store: pathlib.Path) -> pathlib.Path:
    (python,) = store.glob("*/py_env-*/bin/python")
    return python


def test_isolated_hook_installs_the_cpu_wheel(isolated_store):
    python = hook_python(isolated_store)
    probe = subprocess.run([str(python), "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
                           capture_output=True, text=True, timeout=300)
    assert probe.stdout == "2.13.0+cpu None\n", probe.stderr
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                            timeout=300)
    names = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert {"gradlint", "torch", "onnx", "click"} <= names
    assert not {name for name in names if name.startswith("nvidia") or name == "triton"}


def test_isolated_hook_blocks_an_exploding_model_and_passes_its_fix(isolated_store, hook_repo, tmp_path):
    repo = UserRepo(tmp_path / "repo", hook_repo, {"id": "gradlint-isolated", "args": SELECT_GL201}, isolated_store)
    repo.write("net.py", BROKEN)
    repo.write("utils.py", UTILS)
    env, log = repo.watch_imports()
    assert repo.commit("utils.py", **env) == (0, banner("gradlint", "Passed"))
    # Its own interpreter ran gradlint, and never imported torch for a file without a model.
    assert processes(log) == [(f"runs {os.path.realpath(hook_python(isolated_store))} "
                               f"{hook_python(isolated_store).parent}/gradlint "
                                     "--skip-non-models --force-exclude --quiet --select GL201 utils.py")]

    assert repo.commit("net.py") == (1, failed("gradlint-isolated", 1, finding("net.py")))
    repo.write("net.py", HEALTHY)
    assert repo.commit("net.py") == (0, banner("gradlint", "Passed"))
    assert repo.committed() == [".pre-commit-config.yaml", "net.py", "utils.py"]


def test_isolated_hook_cannot_import_the_users_packages(isolated_store, hook_repo, system_repo, tmp_path):
    """Why the system hook is the default: a model that imports a package of the user's
    environment (here pyyaml, installed where pre-commit runs) fails to load in the isolated
    hook's virtualenv, and passes the system hook."""
    model = "import yaml\n" + HEALTHY
    repo = UserRepo(tmp_path / "repo", hook_repo, {"id": "gradlint-isolated", "args": SELECT_GL201}, isolated_store)
    repo.write("net.py", model)
    assert repo.commit("net.py") == (1, failed(
        "gradlint-isolated", 2, "net.py: error: import failed: ModuleNotFoundError: No module named 'yaml'\n"))

    repo = system_repo(path=tmp_path / "system")
    repo.write("net.py", model)
    assert repo.commit("net.py") == (0, banner("gradlint", "Passed"))
