"""pyproject.toml lists gradlint's packages by hand (find() would also pick up rules/ as a
top-level package): every folder with an __init__.py under gradlint/ and rules/ must be listed,
and nothing else."""

from __future__ import annotations

import os
import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_every_package_folder_is_listed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(project["packages"])
    found = set()
    for top, dotted in (("gradlint", "gradlint"), ("rules", "gradlint.rules")):
        for folder, _, files in os.walk(ROOT / top):
            if "__init__.py" in files and "__pycache__" not in folder:
                relative = pathlib.Path(folder).relative_to(ROOT / top)
                found.add(".".join([dotted, *relative.parts]))
    assert listed == found
    assert project["package-dir"] == {"gradlint": "gradlint", "gradlint.rules": "rules"}
