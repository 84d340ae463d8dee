"""Bad and hostile model files, each linted beside a good one in one call, as a CI job would.

Every case in tests/bad_inputs/ opens with what it expects:
  `# expect: error: TEXT`   the file gets exactly the line `FILE: error: TEXT` (exit code 2);
  `# expect: skipped: TEXT` the file holds no model gradlint can build by itself: it is counted
                             as skipped, with this reason (-v, json), and is no error;
  `# expect: lints [CODES]` the file's code is hostile (it prints, exits from a thread, changes
                             global torch state or the working directory...) but its model is
                             fine: it is linted, with these codes among its findings.
Files that cannot carry such a line (binary, FIFO, symbolic links, ONNX) are made by GENERATED.
For each case: the exit code, exactly the expected error lines and no traceback, a JSON report
that parses, and the good model's findings and risk exactly as when it is linted alone. Time is
bounded by --timeout (the cases that hang need it), never measured.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from gradlint.cli import main

HERE = pathlib.Path(__file__).parent / "bad_inputs"
GOOD = "_good_model.py"
TIMEOUT = 5  # seconds: the good model needs well under one; the cases that hang need the limit
LIMITS = ["--timeout", str(TIMEOUT), "--max-memory", "512MB"]
EXPECT = re.compile(r"^# expect: (?:error: (?P<error>.+)|skipped: (?P<skipped>.+)|lints(?P<codes>(?: GL\d{3})*))$")


def _onnx_model_bytes() -> bytes:
    import onnx
    from onnx import TensorProto, helper

    weight = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], [0.1] * 8)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 2])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _class_flood(path: pathlib.Path) -> None:
    # The directory scan's model check used to backtrack over every `class A(` line: 33 s for 8,000.
    path.write_text("import torch\n" + "class A(\n" * 8000)


GENERATED = {
    "fifo.py": (lambda p: os.mkfifo(p), "not a regular file (a FIFO)"),
    "zero.py": (lambda p: p.symlink_to("/dev/zero"), "not a regular file (a character device)"),
    "loop.py": (lambda p: (p.symlink_to(p.with_name("loop2.py")), p.with_name("loop2.py").symlink_to(p)),
                "symbolic link loop"),
    "missing.py": (lambda p: None, "no such file or directory"),
    "missing_folder": (lambda p: None, "no such file or directory"),
    "binary.py": (lambda p: p.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))),
                  "not Python source: source code cannot contain null bytes (a binary or UTF-16 file?)"),
    "utf16.py": (lambda p: p.write_bytes("import torch\nmodel = torch.nn.Linear(4, 2)\n".encode("utf-16")),
                 "not Python source: a UTF-16 file (Python reads UTF-8, or the encoding a PEP 263 coding line "
                 "names)"),
    "latin1.py": (lambda p: p.write_bytes(b"import torch\n# caf\xe9\nmodel = torch.nn.Linear(4, 2)\n"),
                  "cannot decode as UTF-8 (byte 0xe9 at line 2) and no PEP 263 coding line"),
    "class_flood.py": (_class_flood, "syntax error at line 202: too many nested parentheses"),
    "truncated.onnx": (lambda p: p.write_bytes(_onnx_model_bytes()[:40]),
                       "not an ONNX model (protobuf parse failed: Error parsing message with type "
                       "'onnx.ModelProto': Wire format was corrupt); truncated or another format?"),
}


def _committed_cases() -> dict[str, tuple[str, str | None, tuple[str, ...]]]:
    """name -> ("error", text, ()), ("skipped", reason, ()) or ("lints", None, codes), from each
    file's first line."""
    cases = {}
    for path in sorted(HERE.iterdir()):
        if path.name == GOOD or path.suffix != ".py":
            continue
        match = EXPECT.match(path.read_text().splitlines()[0])
        assert match, f"{path.name} does not open with an `# expect:` line"
        if match["error"]:
            cases[path.name] = ("error", match["error"], ())
        elif match["skipped"]:
            cases[path.name] = ("skipped", match["skipped"], ())
        else:
            cases[path.name] = ("lints", None, tuple(match["codes"].split()))
    return cases


COMMITTED = _committed_cases()
CASES = {**COMMITTED, **{name: ("error", text, ()) for name, (_, text) in GENERATED.items()},
         "lfs_pointer.onnx": ("error", "a Git LFS pointer, not the model: run `git lfs pull` to fetch the file", ())}


def test_there_are_forty_bad_inputs():
    assert len(CASES) >= 40


def gradlint(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["--isolated", *LIMITS, *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(HERE / GOOD, tmp_path / GOOD)
    return tmp_path


def place(folder: pathlib.Path, name: str) -> None:
    if name in GENERATED:
        GENERATED[name][0](folder / name)
    else:
        shutil.copy(HERE / name, folder / name)


@pytest.fixture(scope="module")
def good_alone(tmp_path_factory):
    """The good model's JSON report when it is linted on its own."""
    folder = tmp_path_factory.mktemp("alone")
    shutil.copy(HERE / GOOD, folder / GOOD)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        code, out, _ = gradlint("--format", "json", GOOD)
    finally:
        os.chdir(cwd)
    assert code == 1  # GL201 fires on it
    (model,) = json.loads(out)["models"]
    return model


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_beside_a_good_model(folder, good_alone, name):
    kind, error, codes = CASES[name]
    place(folder, name)

    code, out, err = gradlint(name, GOOD)
    assert "Traceback" not in out + err
    errors = [line for line in out.splitlines() if ": error: " in line]
    if kind == "error":
        assert (code, errors) == (2, [f"{name}: error: {error}"])
    elif kind == "skipped":
        assert (code, errors) == (1, [])
        assert out.endswith("; 1 file without a model skipped.\n") and name not in out
    else:
        assert (code, errors) == (1, [])
        assert re.search(rf"^{re.escape(name)}::build_model: risk \d\.\d\d ", out, re.MULTILINE), out

    code, out, _ = gradlint("--format", "json", name, GOOD)
    document = json.loads(out)
    if kind == "skipped":
        assert document["skipped"] == [{"path": name, "reason": error}]
        (good,) = document["models"]
        assert good == good_alone
        return
    bad, good = document["models"]
    assert good == good_alone
    if kind == "error":
        assert bad["error"] == error
    else:
        assert "error" not in bad and bad["risk"] is not None
        assert set(codes) <= {f["code"] for f in bad["findings"]}


# -- what only a real process shows ----------------------------------------------------------------

def run_gradlint(*args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gradlint", "--isolated", *LIMITS, *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_output_of_the_model_code_never_reaches_stdout(folder):
    """The model file writes to sys.stdout and straight to file descriptors 1 and 2: gradlint's
    JSON on the real stdout still parses, and -v shows that output on stderr instead."""
    place(folder, "prints_everywhere.py")
    result = run_gradlint("--format", "json", "prints_everywhere.py", GOOD, cwd=folder)
    assert result.returncode == 1, result.stderr
    assert [m["target"] for m in json.loads(result.stdout)["models"]] == ["prints_everywhere.py::build_model",
                                                                         f"{GOOD}::build_model"]
    assert "noise" not in result.stdout + result.stderr
    verbose = run_gradlint("-v", "--format", "json", "prints_everywhere.py", cwd=folder)
    json.loads(verbose.stdout)
    assert "--- prints_everywhere.py: output of the model's code ---\nimport-time noise\n" in verbose.stderr
    assert "raw bytes on fd 1" in verbose.stderr and "forward noise" in verbose.stderr


def test_processes_the_model_started_are_gone_after_the_run(folder):
    place(folder, "starts_subprocess.py")
    run_gradlint("starts_subprocess.py", cwd=folder)
    assert not [pid for pid in os.listdir("/proc") if pid.isdigit() and _cmdline(pid).count(
        "gradlint-bad-input-helper")]


def _cmdline(pid: str) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.parametrize("signum,code,message", [(signal.SIGINT, 130, "gradlint: interrupted"),
                                                  (signal.SIGTERM, 143, "gradlint: terminated")])
def test_interrupting_the_run(folder, signum, code, message):
    """Ctrl-C (or a cancelled CI job's SIGTERM) while a model hangs: one line, the shell's exit
    code for that signal (128 + its number, never 1, which means findings), and no worker left."""
    place(folder, "hangs_in_forward.py")
    process = subprocess.Popen([sys.executable, "-m", "gradlint", "--isolated", "--timeout", "120",
                                "hangs_in_forward.py"], cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # the fork server starts and the worker reaches the hanging forward
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (code, message + "\n")
    assert out == ""


def test_a_directory_scan_skips_what_is_not_a_regular_file(folder):
    os.mkfifo(folder / "fifo.py")
    (folder / "zero.py").symlink_to("/dev/zero")
    code, out, _ = gradlint("--format", "json", ".")
    assert code == 1
    assert [m["target"] for m in json.loads(out)["models"]] == [f"{GOOD}::build_model"]
