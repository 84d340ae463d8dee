"""What each published pre-commit hook costs a user: the first install and the commits after it.

    python benchmarks/bench_precommit.py [--variants system,isolated,unpinned] [--commits 5]

The hooks come from a git copy of this working tree (what a user's `rev:` clones), named by a
fresh repository's .pre-commit-config.yaml. For each variant:
1. `pre-commit install-hooks` into an empty PRE_COMMIT_HOME: wall time, then the size of
   PRE_COMMIT_HOME (`du -sh`, and bytes), and the torch the hook's environment got.
2. The median wall time of COMMITS `git commit`s that each change only a file without a model
   (`utils.py`, no torch in it), against the same commit with `--no-verify` (git alone).

Variants: `system` is the `gradlint` hook (the environment's gradlint, here this interpreter's);
`isolated` is `gradlint-isolated` (its own virtualenv, CPU torch pinned); `unpinned` is the hook
as published before the pin (`gradlint-isolated` without additional_dependencies: pip takes the
newest torch it may, on Linux the CUDA build with its nvidia wheels), for the comparison; it
needs several GB of disk. pip's cache is off (PIP_NO_CACHE_DIR), as on a first install; wheels
come from wherever the machine's pip configuration finds them (on the development machine, local
disk first), so the times leave out most of the download a user's first install also pays.

Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOOKS = {"system": "gradlint", "isolated": "gradlint-isolated", "unpinned": "gradlint-unpinned"}


def sh(args: list[str], cwd: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


def base_env(home: str) -> dict:
    env = {**os.environ, "PRE_COMMIT_COLOR": "never", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.path.join(home, "gitconfig"), "PIP_NO_CACHE_DIR": "1",
           "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@example.com",
           "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}
    env.pop("PRE_COMMIT", None)
    # This interpreter's environment first on PATH, as an activated virtualenv: the system hook
    # runs its gradlint.
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), os.path.dirname(sys.executable), env["PATH"]])
    return env


def hook_repo(folder: str, env: dict) -> tuple[str, str]:
    """This working tree, committed to a repository of its own, with the unpinned variant added
    to its manifest. Returns (url, rev)."""
    repo = os.path.join(folder, "gradlint")
    listed = sh(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], ROOT, env).stdout
    for name in filter(None, listed.split("\0")):
        if os.path.isfile(os.path.join(ROOT, name)):
            os.makedirs(os.path.dirname(os.path.join(repo, name)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, name), os.path.join(repo, name))
    manifest_path = os.path.join(repo, ".pre-commit-hooks.yaml")
    with open(manifest_path) as handle:
        manifest = yaml.safe_load(handle)
    (isolated,) = [hook for hook in manifest if hook["id"] == "gradlint-isolated"]
    unpinned = {key: value for key, value in isolated.items() if key != "additional_dependencies"}
    manifest.append({**unpinned, "id": "gradlint-unpinned"})
    with open(manifest_path, "w") as handle:
        yaml.safe_dump(manifest, handle, sort_keys=False)
    for command in (["git", "init", "-q", "-b", "main"], ["git", "add", "-A"], ["git", "commit", "-q", "-m", "hooks"]):
        sh(command, repo, env)
    return "file://" + repo, sh(["git", "rev-parse", "HEAD"], repo, env).stdout.strip()


def du(path: str) -> tuple[str, int]:
    human = subprocess.run(["du", "-sh", path], capture_output=True, text=True, check=True).stdout.split()[0]
    size = subprocess.run(["du", "-sb", path], capture_output=True, text=True, check=True).stdout.split()[0]
    return human, int(size)


def torch_of(store: str) -> str:
    pythons = [os.path.join(store, d, e, "bin", "python") for d in os.listdir(store)
               if os.path.isdir(os.path.join(store, d)) for e in os.listdir(os.path.join(store, d))
               if e.startswith("py_env-")]
    if not pythons:
        return "the environment's: " + subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True).stdout.strip()
    listed = json.loads(subprocess.run([pythons[0], "-m", "pip", "list", "--format", "json"], capture_output=True,
                                       text=True, check=True).stdout)
    versions = {p["name"].lower(): p["version"] for p in listed}
    cuda = sorted(name for name in versions if name.startswith("nvidia") or name == "triton")
    return f"{versions.get('torch')}" + (f" + {len(cuda)} nvidia/triton packages" if cuda else "")


def measure(variant: str, url: str, rev: str, commits: int, folder: str) -> dict:
    home = os.path.join(folder, variant)
    store, repo = os.path.join(home, "cache"), os.path.join(home, "repo")
    os.makedirs(repo)
    env = {**base_env(home), "PRE_COMMIT_HOME": store}
    sh(["git", "init", "-q", "-b", "main"], repo, env)
    with open(os.path.join(repo, ".pre-commit-config.yaml"), "w") as handle:
        yaml.safe_dump({"repos": [{"repo": url, "rev": rev, "hooks": [{"id": HOOKS[variant]}]}]}, handle)
    sh([sys.executable, "-m", "pre_commit", "install"], repo, env)

    start = time.perf_counter()
    sh([sys.executable, "-m", "pre_commit", "install-hooks"], repo, env)
    install = time.perf_counter() - start
    human, size = du(store)
    result = {"variant": variant, "hook": HOOKS[variant], "install_s": round(install, 1), "size": human,
              "size_bytes": size, "torch": torch_of(store)}
    if variant == "unpinned" or commits == 0:
        return result

    def timed_commit(*extra: str) -> float:
        with open(os.path.join(repo, "utils.py"), "a") as handle:
            handle.write("def helper():\n    return 1\n")
        sh(["git", "add", "utils.py", ".pre-commit-config.yaml"], repo, env)
        begin = time.perf_counter()
        sh(["git", "commit", "-q", "-m", "utils", *extra], repo, env)
        return time.perf_counter() - begin

    timed_commit()  # the first commit warms the file cache, as a user's later commits find it
    result["commit_s"] = round(statistics.median(timed_commit() for _ in range(commits)), 3)
    result["no_verify_s"] = round(statistics.median(timed_commit("--no-verify") for _ in range(commits)), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="system,isolated", help="comma-separated: system, isolated, unpinned")
    parser.add_argument("--commits", type=int, default=5, help="commits timed per variant (median)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (prints its path)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="bench-precommit-")
    try:
        url, rev = hook_repo(folder, base_env(folder))
        results = [measure(v, url, rev, args.commits, folder) for v in args.variants.split(",")]
    finally:
        if args.keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"pre-commit {sh([sys.executable, '-m', 'pre_commit', '--version'], ROOT, os.environ).stdout.strip()}, "
          f"python {sys.version.split()[0]}, cpus {os.cpu_count()}, commits timed: {args.commits} (median)\n")
    print("| hook | first `pre-commit install-hooks` | PRE_COMMIT_HOME (`du -sh`) | torch in the hook's environment "
          "| commit of a file without a model | same commit, `--no-verify` |")
    print("|---|---|---|---|---|---|")
    for r in results:
        commit = f"{r['commit_s']:.2f} s" if "commit_s" in r else "-"
        no_verify = f"{r['no_verify_s']:.2f} s" if "no_verify_s" in r else "-"
        print(f"| `{r['hook']}` | {r['install_s']:.1f} s | {r['size']} ({r['size_bytes'] / 1e6:.1f} MB) | {r['torch']} "
              f"| {commit} | {no_verify} |")
    print("\n" + json.dumps(results))


if __name__ == "__main__":
    main()
